"""Deployment of the margin engine from a :class:`~margin_engine.config.DeployConfig`.

Uses Ape's project (the contracts under ``contracts/``) and the connected
provider: call it from an Ape script (``ape run deploy``), a test or the
console, with a connected network::

    from margin_engine.config import default_config
    from margin_engine.deploy import deploy

    d = deploy(default_config(), accounts.test_accounts[0])
    d.engine.modify_position(...)

Order of operations:

1. the settlement token (a ``MockERC20`` "USD Coin"/"USDC" when
   ``settlement_asset`` is ``None``);
2. ``MarginEngine.deploy(settlement_asset)`` (the deployer is the admin);
3. ``LiquidityVault.deploy(engine, vault_name, vault_symbol)``, then
   ``engine.set_vault(vault)``, and ``MarginLens.deploy(engine)``;
4. the deployer grants itself ``RISK_MANAGER_ROLE``;
5. per market: a ``MockAggregator`` when ``feed`` is ``None``, then
   ``engine.add_market(feed, heartbeat, min_price, max_price, MarketParams)``;
6. ``engine.set_liquidation_params(...)``, ``engine.set_reserve_factor(...)``;
7. roles from the configuration; the deployer renounces ``RISK_MANAGER_ROLE``
   when another risk manager is configured.

Ape is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from margin_engine.config import DeployConfig

if TYPE_CHECKING:
    from ape.api import AccountAPI
    from ape.contracts import ContractInstance

__all__ = ["Deployment", "deploy"]


@dataclass
class Deployment:
    """The contracts of one deployment."""

    settlement: ContractInstance
    """The settlement token (a ``MockERC20`` ABI; only ERC-20 calls work on a real token)."""
    engine: ContractInstance
    vault: ContractInstance
    lens: ContractInstance
    """Read-only views over the engine (``MarginLens``)."""
    feeds: dict[str, ContractInstance] = field(default_factory=dict)
    """Market name -> price feed (``MockAggregator`` ABI; reads work on a real feed)."""
    markets: dict[str, int] = field(default_factory=dict)
    """Market name -> market id."""
    config: DeployConfig | None = None
    deployer: Any = None
    mock_settlement: bool = False
    """True when the settlement token is a freshly deployed ``MockERC20``."""
    mock_feeds: set[str] = field(default_factory=set)
    """Names of the markets whose feed is a freshly deployed ``MockAggregator``."""

    def addresses(self) -> dict[str, str]:
        """Every address, by role: ``settlement_asset``, ``engine``, ``vault``, ``feed:<market>``."""
        out = {
            "settlement_asset": str(self.settlement.address),
            "engine": str(self.engine.address),
            "vault": str(self.vault.address),
            "lens": str(self.lens.address),
        }
        for name, feed in self.feeds.items():
            out[f"feed:{name}"] = str(feed.address)
        return out


def _echo(msg: str) -> None:
    print(msg, flush=True)


def _market_id_from_receipt(engine: Any, receipt: Any) -> int | None:
    """The id in the engine's ``MarketAdded`` log, if the receipt carries it."""
    try:
        logs = receipt.events.filter(engine.MarketAdded)
    except Exception:  # noqa: BLE001 - no such event / logs unavailable
        return None
    if not logs:
        return None
    return int(logs[-1].market)


def deploy(
    config: DeployConfig,
    deployer: AccountAPI,
    *,
    log: Callable[[str], None] | None = _echo,
) -> Deployment:
    """Deploys and configures the engine, its vault and (mock) feeds.

    Args:
        config: the deployment configuration.
        deployer: the sending account; it becomes the engine's admin.
        log: progress printer (``None`` for silence).

    Returns:
        The :class:`Deployment` (contract instances and market ids).
    """
    from ape import project

    say: Callable[[str], None] = log or (lambda _msg: None)
    tx = {"sender": deployer}

    # 1. Settlement token.
    if config.settlement_asset is None:
        settlement = project.MockERC20.deploy(
            "USD Coin", "USDC", config.settlement_decimals, **tx
        )
        mock_settlement = True
        say(f"MockERC20 USDC ({config.settlement_decimals} decimals): {settlement.address}")
    else:
        settlement = project.MockERC20.at(config.settlement_asset, fetch_from_explorer=False)
        mock_settlement = False
        say(f"settlement asset: {settlement.address}")

    # 2-3. Engine and vault.
    engine = project.MarginEngine.deploy(settlement.address, **tx)
    say(f"MarginEngine: {engine.address}")
    vault = project.LiquidityVault.deploy(
        engine.address, config.vault_name, config.vault_symbol, **tx
    )
    say(f"LiquidityVault ({config.vault_symbol}): {vault.address}")
    engine.set_vault(vault.address, **tx)
    lens = project.MarginLens.deploy(engine.address, **tx)
    say(f"MarginLens: {lens.address}")

    # 4. The deployer configures risk as risk manager.
    risk_role = engine.RISK_MANAGER_ROLE()
    if not engine.hasRole(risk_role, deployer.address):
        engine.grantRole(risk_role, deployer.address, **tx)

    deployment = Deployment(
        settlement=settlement,
        engine=engine,
        vault=vault,
        lens=lens,
        config=config,
        deployer=deployer,
        mock_settlement=mock_settlement,
    )

    # 5. Markets.
    for index, market in enumerate(config.markets):
        if market.feed is None:
            feed = project.MockAggregator.deploy(
                market.feed_decimals, market.mock_answer(), **tx
            )
            feed.set_description(f"{market.name} / USD", **tx)
            deployment.mock_feeds.add(market.name)
            say(f"MockAggregator {market.name} / USD ({market.mock_price}): {feed.address}")
        else:
            feed = project.MockAggregator.at(market.feed, fetch_from_explorer=False)
        receipt = engine.add_market(
            feed.address,
            market.heartbeat,
            market.min_price,
            market.max_price,
            market.params(),
            **tx,
        )
        market_id = _market_id_from_receipt(engine, receipt)
        if market_id is None:
            market_id = index  # ids are given in listing order on a fresh engine
        deployment.feeds[market.name] = feed
        deployment.markets[market.name] = market_id
        say(f"market {market_id}: {market.name}")

    # 6. Global risk parameters.
    engine.set_liquidation_params(config.liquidation.params(), **tx)
    engine.set_reserve_factor(config.reserve_factor, **tx)

    # 7. Roles.
    roles = config.roles
    if roles.guardian is not None:
        engine.grantRole(engine.GUARDIAN_ROLE(), roles.guardian, **tx)
        say(f"GUARDIAN_ROLE -> {roles.guardian}")
    if roles.risk_manager is not None and roles.risk_manager != deployer.address:
        engine.grantRole(risk_role, roles.risk_manager, **tx)
        engine.renounceRole(risk_role, deployer.address, **tx)
        say(f"RISK_MANAGER_ROLE -> {roles.risk_manager} (deployer renounced)")

    return deployment
