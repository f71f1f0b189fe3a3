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

from margin_engine.config import DeployConfig, RolesConfig, default_config
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


def system_config(decimals: int) -> DeployConfig:
    """``default_config()`` with the settlement decimals and token-unit reward bounds scaled."""
    config = default_config()
    return config.model_copy(
        update={
            "settlement_decimals": decimals,
            "liquidation": config.liquidation.model_copy(
                update={"reward_floor": 10**decimals, "reward_cap": 10_000 * 10**decimals}
            ),
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


def deploy_system(decimals: int = 6, vault_funding: int = 1_000_000) -> System:
    """Deploy and configure the system (see the module docstring).

    ``vault_funding`` is in whole tokens; 0 leaves the vault empty.
    """
    config = system_config(decimals)
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
    )


@functools.cache
def deployed_system(decimals: int = 6, vault_funding: int = 1_000_000) -> tuple[Any, System]:
    """``deploy_system`` run once per arguments in its own titanoboa
    environment, returned with it: a stateful example enters the environment
    (``boa.swap_env``) and an anchor, and leaves both at its teardown, so
    every example starts from the same freshly deployed state without paying
    for the deployment (the global environment is left alone)."""
    env = boa.Env()
    with boa.swap_env(env):
        system = deploy_system(decimals, vault_funding)
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
