"""Fixture-free deployment of the whole system on titanoboa (``import boa``).

The stateful tests need a fresh system for every hypothesis example, and
pytest fixtures are set up once per test function, not once per example
(the reason Curve's ``twocrypto-ng`` stateful tests use strategies instead of
fixtures). So the deployment is a plain function, :func:`deploy_system`,
which runs ``margin_engine.deploy.deploy`` (the sequence the scripts use) on
boa's in-process EVM, with ``margin_engine.config.default_config()``: mock
USDC with ``decimals`` decimals, BTC (market 0) and ETH (market 1) on 8-decimal
mock feeds, reward floor 1 token and cap 10,000 tokens, ``RISK_MANAGER_ROLE``
with ``risk_manager`` (the admin renounces it) and ``GUARDIAN_ROLE`` with
``guardian``; then ``lp`` mints and deposits ``vault_funding`` tokens into the
vault.

Compilation is cached per process (``boa.load_partial``); a deployment is a
few dozen boa transactions.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boa
from eth_utils import keccak, to_checksum_address
from hypothesis import settings

from margin_engine.config import CollateralAssetConfig, DeployConfig, RolesConfig, default_config
from margin_engine.deploy import deploy

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"

WAD = 10**18
BTC, ETH = 0, 1
UINT256_MAX = 2**256 - 1


@functools.cache
def deployer(name: str) -> Any:
    """The compiled contract ``name`` (``contracts/<name>.vy`` or ``contracts/test/<name>.vy``)."""
    path = CONTRACTS / f"{name}.vy"
    if not path.exists():
        path = CONTRACTS / "test" / f"{name}.vy"
    return boa.load_partial(str(path))


COLLATERAL_GROWTH = 3_170_979_198  # 10 % a year, WAD per second


def collateral_assets() -> list[CollateralAssetConfig]:
    """The collateral assets of :func:`deploy_system` with ``collateral=True``
    (docs/collateral.md): an 18-decimal WETH at $3,000 and an 8-decimal WBTC
    at $60,000 on their own 8-decimal feeds, and an ERC-4626 share ``yUSD``
    (6 decimals) over a 6-decimal dollar ``USDX`` at $1 (rate bounded at
    10 %/year)."""
    common = {"heartbeat": 3600, "feed_decimals": 8}
    return [
        CollateralAssetConfig(
            name="WETH", decimals=18, mock_price=3000, min_price=30 * WAD, max_price=300_000 * WAD,
            w_init=8 * WAD // 10, w_maint=85 * WAD // 100, discount=5 * WAD // 100, cap=10_000 * WAD, **common,
        ),
        CollateralAssetConfig(
            name="WBTC", decimals=8, mock_price=60_000, min_price=600 * WAD, max_price=6_000_000 * WAD,
            w_init=7 * WAD // 10, w_maint=75 * WAD // 100, discount=10 * WAD // 100, cap=500 * 10**8, **common,
        ),
        CollateralAssetConfig(
            name="yUSD", decimals=6, mock_price=1, min_price=WAD // 100, max_price=100 * WAD,
            w_init=9 * WAD // 10, w_maint=95 * WAD // 100, discount=5 * WAD // 100, cap=10**16,
            vault=True, underlying_name="USDX", underlying_decimals=6, max_rate_growth=COLLATERAL_GROWTH,
            **common,
        ),
    ]  # fmt: skip


def system_config(decimals: int, collateral: bool = False) -> DeployConfig:
    """``default_config()`` with the settlement decimals and token-unit reward
    bounds scaled; with ``collateral`` the assets of :func:`collateral_assets`."""
    config = default_config()
    return config.model_copy(
        update={
            "settlement_decimals": decimals,
            "liquidation": config.liquidation.model_copy(
                update={"reward_floor": 10**decimals, "reward_cap": 10_000 * 10**decimals}
            ),
            "collateral": collateral_assets() if collateral else [],
        }
    )


@dataclass
class Actors:
    """Addresses by role (distinct; generated deterministically by boa)."""

    admin: Any
    risk_manager: Any
    guardian: Any
    lp: Any
    other_lp: Any
    liquidator: Any
    traders: dict[str, Any] = field(default_factory=dict)


def _address(name: str) -> str:
    """A fixed address per role name (boa's own address generator is left
    alone, so other boa tests see the same addresses whatever runs first)."""
    address = to_checksum_address(keccak(text=f"margin engine fuzz actor: {name}")[-20:])
    boa.env.alias(address, name)
    return address


@functools.cache
def actors(trader_names: tuple[str, ...] = ("alice", "bob", "carol")) -> Actors:
    """The same addresses for every deployment."""
    new = _address
    return Actors(
        admin=new("admin"),
        risk_manager=new("risk_manager"),
        guardian=new("guardian"),
        lp=new("lp"),
        other_lp=new("other_lp"),
        liquidator=new("liquidator"),
        traders={name: new(name) for name in trader_names},
    )


@dataclass
class System:
    """One deployment on boa."""

    decimals: int
    config: DeployConfig
    actors: Actors
    usdc: Any
    engine: Any
    configurator: Any
    risk: Any
    vault: Any
    lens: Any
    feeds: list[Any]
    deployed_at: int
    manager: Any = None
    """The ``CollateralManager``."""
    assets: dict[str, Any] = field(default_factory=dict)
    """Collateral asset name -> token (``MockERC4626`` for a vault share)."""
    asset_feeds: dict[str, Any] = field(default_factory=dict)
    """Collateral asset name -> its feed (of the underlying for a vault share)."""
    underlyings: dict[str, Any] = field(default_factory=dict)
    """Vault share name -> its ``MockERC20`` underlying."""

    @property
    def unit(self) -> int:
        """One whole token in token units."""
        return 10**self.decimals

    @property
    def scale(self) -> int:
        """Token units to WAD."""
        return 10 ** (18 - self.decimals)

    def fund(self, account: Any, amount: int, sub: int = 0) -> None:
        """Mint ``amount`` tokens to ``account``, approve and deposit them into ``sub``."""
        self.usdc.mint(account, amount, sender=account)
        self.usdc.approve(self.engine.address, amount, sender=account)
        self.engine.deposit(sub, self.usdc.address, amount, sender=account)


def deploy_system(decimals: int = 6, vault_funding: int = 1_000_000, collateral: bool = False) -> System:
    """Deploy and configure the system (see the module docstring).

    ``vault_funding`` is in whole tokens; 0 leaves the vault empty. With
    ``collateral`` the assets of :func:`collateral_assets` are listed.
    """
    config = system_config(decimals, collateral)
    who = actors()
    admin = who.admin

    config = config.model_copy(
        update={"roles": RolesConfig(guardian=who.guardian, risk_manager=who.risk_manager)}
    )
    deployment = deploy(config, admin, log=None, contracts=deployer)
    usdc, engine, vault = deployment.settlement, deployment.engine, deployment.vault

    if vault_funding:
        amount = vault_funding * 10**decimals
        usdc.mint(who.lp, amount, sender=who.lp)
        usdc.approve(vault.address, amount, sender=who.lp)
        vault.deposit(amount, who.lp, sender=who.lp)

    return System(
        decimals=decimals,
        config=config,
        actors=who,
        usdc=usdc,
        engine=engine,
        configurator=deployment.configurator,
        risk=deployment.risk,
        vault=vault,
        lens=deployment.lens,
        feeds=list(deployment.feeds.values()),
        deployed_at=boa.env.timestamp,
        manager=deployment.collateral,
        assets=dict(deployment.collaterals),
        asset_feeds=dict(deployment.collateral_feeds),
        underlyings=dict(deployment.collateral_underlyings),
    )


@functools.cache
def deployed_system(decimals: int = 6, vault_funding: int = 1_000_000, collateral: bool = False) -> tuple[Any, System]:
    """``deploy_system`` run once per arguments in its own titanoboa
    environment, returned with it: a stateful example enters the environment
    (``boa.swap_env``) and an anchor, and leaves both at its teardown, so
    every example starts from the same freshly deployed state without paying
    for the deployment (the global environment is left alone)."""
    env = boa.Env()
    with boa.swap_env(env):
        system = deploy_system(decimals, vault_funding, collateral)
    return env, system


def revert_reason(error: Exception) -> str:
    """The revert string of a ``boa.BoaError`` (``"<no reason>"`` for a bare revert)."""
    frame = error.stack_trace.last_frame  # type: ignore[attr-defined]
    if isinstance(frame, str):
        return frame
    try:
        return frame.pretty_vm_reason
    except Exception:  # noqa: BLE001 - a revert without an Error(string) payload
        return "<no reason>"


def machine_settings() -> settings:
    """The hypothesis profile named by ``HYPOTHESIS_PROFILE`` (``default`` when unset).

    ``default`` and ``fuzz`` are registered by ``tests/fuzz/conftest.py`` (as
    ``fuzz-default`` and ``fuzz``); any other registered profile name works too.
    """
    name = os.environ.get("HYPOTHESIS_PROFILE", "default")
    return settings.get_profile({"default": "fuzz-default"}.get(name, name))
