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
2. ``EngineConfigurator.deploy()`` (the deployer becomes its DEFAULT_ADMIN),
   ``RiskModel.deploy(configurator)``, ``CollateralManager.deploy(configurator)``,
   ``MarginEngine.deploy(settlement_asset, configurator, risk_model, collateral)`` and
   ``configurator.set_engine(engine)`` (which also connects the risk model
   and the collateral manager);
3. ``LiquidityVault.deploy(engine, vault_name, vault_symbol)``, then
   ``configurator.set_vault(vault)``, and ``MarginLens.deploy(engine)``;
4. the deployer grants itself ``RISK_MANAGER_ROLE`` (roles live on the configurator);
5. per market: a ``MockAggregator`` when ``feed`` is ``None``, then
   ``configurator.add_market(feed, heartbeat, min_price, max_price, MarketParams)``;
6. per collateral asset: when ``address`` is ``None`` a ``MockERC20(name, name,
   decimals)`` (for a vault share: a ``MockERC20`` underlying and
   ``MockERC4626(underlying, name, name)``), a ``MockAggregator`` when
   ``feed`` is ``None``, then ``configurator.list_collateral(asset, feed,
   heartbeat, min_price, max_price, CollateralParams, vault, max_rate_growth)``
   (:func:`list_collateral`, which also lists an asset on an existing deployment);
7. ``configurator.set_liquidation_params(...)``, ``configurator.set_reserve_factor(...)``
   and, when set, ``configurator.set_margin_params(upnl_haircut, transfer_margin_ratio)``
   and ``configurator.set_call_params(...)``;
8. roles from the configuration; the deployer renounces ``RISK_MANAGER_ROLE``
   when another risk manager is configured.

Ape is imported inside the functions, so importing this module is cheap.
The same sequence deploys on titanoboa (the fuzzing and differential
harnesses): pass ``contracts=`` a function from a contract name to something
with ``deploy(*args, sender=...)``, e.g. ``boa.load_partial(path)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from margin_engine.config import CollateralAssetConfig, DeployConfig

if TYPE_CHECKING:
    from ape.api import AccountAPI
    from ape.contracts import ContractInstance

__all__ = ["Deployment", "deploy", "list_collateral"]


@dataclass
class Deployment:
    """The contracts of one deployment."""

    settlement: ContractInstance
    """The settlement token (a ``MockERC20`` ABI; only ERC-20 calls work on a real token)."""
    engine: ContractInstance
    configurator: ContractInstance
    """Writes markets and parameters into the engine (``EngineConfigurator``)."""
    risk: ContractInstance
    """Volatility margin, size tiers and MM ramps of flagged markets (``RiskModel``)."""
    collateral: ContractInstance
    """The ledger of the collateral assets other than the settlement asset (``CollateralManager``)."""
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
    collaterals: dict[str, ContractInstance] = field(default_factory=dict)
    """Collateral asset name -> token (``MockERC20`` ABI, ``MockERC4626`` for a vault share)."""
    collateral_feeds: dict[str, ContractInstance] = field(default_factory=dict)
    """Collateral asset name -> price feed (``MockAggregator`` ABI; of the underlying for a vault share)."""
    collateral_underlyings: dict[str, ContractInstance] = field(default_factory=dict)
    """Vault share name -> the ``MockERC20`` underlying of a freshly deployed ``MockERC4626``."""
    mock_collaterals: set[str] = field(default_factory=set)
    """Names of the collateral assets whose token is a freshly deployed mock."""
    mock_collateral_feeds: set[str] = field(default_factory=set)
    """Names of the collateral assets whose feed is a freshly deployed ``MockAggregator``."""

    def addresses(self) -> dict[str, str]:
        """Every address, by role: ``settlement_asset``, ``engine``, ``vault``, ``feed:<market>``,
        ``collateral:<asset>``, ``collateral_feed:<asset>``, ``underlying:<vault share>``."""
        out = {
            "settlement_asset": str(self.settlement.address),
            "engine": str(self.engine.address),
            "configurator": str(self.configurator.address),
            "risk_model": str(self.risk.address),
            "collateral_manager": str(self.collateral.address),
            "vault": str(self.vault.address),
            "lens": str(self.lens.address),
        }
        for name, feed in self.feeds.items():
            out[f"feed:{name}"] = str(feed.address)
        for name, token in self.collaterals.items():
            out[f"collateral:{name}"] = str(token.address)
        for name, feed in self.collateral_feeds.items():
            out[f"collateral_feed:{name}"] = str(feed.address)
        for name, token in self.collateral_underlyings.items():
            out[f"underlying:{name}"] = str(token.address)
        return out


def _echo(msg: str) -> None:
    print(msg, flush=True)


def _ape_contracts(name: str) -> Any:
    """The contract ``name`` of Ape's project."""
    from ape import project

    return getattr(project, name)


def deploy(
    config: DeployConfig,
    deployer: AccountAPI,
    *,
    log: Callable[[str], None] | None = _echo,
    contracts: Callable[[str], Any] | None = None,
) -> Deployment:
    """Deploys and configures the engine, its vault and (mock) feeds.

    Args:
        config: the deployment configuration.
        deployer: the sending account; it becomes the engine's admin.
        log: progress printer (``None`` for silence).
        contracts: contract name -> deployer (default: Ape's ``project``);
            only fresh mocks can be deployed this way (``settlement_asset``,
            every ``feed`` and every collateral ``address`` must be ``None``).

    Returns:
        The :class:`Deployment` (contract instances and market ids).
    """
    if contracts is None:
        contracts = _ape_contracts
    say: Callable[[str], None] = log or (lambda _msg: None)
    tx = {"sender": deployer}
    deployer_address = getattr(deployer, "address", deployer)

    # 1. Settlement token.
    if config.settlement_asset is None:
        settlement = contracts("MockERC20").deploy(
            "USD Coin", "USDC", config.settlement_decimals, **tx
        )
        mock_settlement = True
        say(f"MockERC20 USDC ({config.settlement_decimals} decimals): {settlement.address}")
    else:
        settlement = contracts("MockERC20").at(config.settlement_asset, fetch_from_explorer=False)
        mock_settlement = False
        say(f"settlement asset: {settlement.address}")

    # 2-3. Engine and vault.
    configurator = contracts("EngineConfigurator").deploy(**tx)
    say(f"EngineConfigurator: {configurator.address}")
    risk = contracts("RiskModel").deploy(configurator.address, **tx)
    say(f"RiskModel: {risk.address}")
    collateral = contracts("CollateralManager").deploy(configurator.address, **tx)
    say(f"CollateralManager: {collateral.address}")
    engine = contracts("MarginEngine").deploy(
        settlement.address, configurator.address, risk.address, collateral.address, **tx
    )
    say(f"MarginEngine: {engine.address}")
    configurator.set_engine(engine.address, **tx)
    vault = contracts("LiquidityVault").deploy(
        engine.address, config.vault_name, config.vault_symbol, **tx
    )
    say(f"LiquidityVault ({config.vault_symbol}): {vault.address}")
    configurator.set_vault(vault.address, **tx)
    lens = contracts("MarginLens").deploy(engine.address, **tx)
    say(f"MarginLens: {lens.address}")

    # 4. The deployer configures risk as risk manager.
    risk_role = configurator.RISK_MANAGER_ROLE()
    if not configurator.hasRole(risk_role, deployer_address):
        configurator.grantRole(risk_role, deployer_address, **tx)

    deployment = Deployment(
        settlement=settlement,
        engine=engine,
        configurator=configurator,
        risk=risk,
        collateral=collateral,
        vault=vault,
        lens=lens,
        config=config,
        deployer=deployer,
        mock_settlement=mock_settlement,
    )

    # 5. Markets.
    for market in config.markets:
        if market.feed is None:
            feed = contracts("MockAggregator").deploy(
                market.feed_decimals, market.mock_answer(), **tx
            )
            feed.set_description(f"{market.name} / USD", **tx)
            deployment.mock_feeds.add(market.name)
            say(f"MockAggregator {market.name} / USD ({market.mock_price}): {feed.address}")
        else:
            feed = contracts("MockAggregator").at(market.feed, fetch_from_explorer=False)
        configurator.add_market(
            feed.address,
            market.heartbeat,
            market.min_price,
            market.max_price,
            market.params(),
            **tx,
        )
        market_id = engine.market_count() - 1  # ids are given in listing order
        deployment.feeds[market.name] = feed
        deployment.markets[market.name] = market_id
        say(f"market {market_id}: {market.name}")
        if market.volatility is not None:
            configurator.set_volatility(market_id, market.volatility.params(), market.volatility.seed_var, **tx)
            say(f"market {market_id}: volatility margin")
        if market.tiers is not None:
            configurator.set_tiers(market_id, market.tiers.edges, market.tiers.multipliers, **tx)
            say(f"market {market_id}: tiers at {market.tiers.edges}")

    # 6. Collateral assets.
    for asset in config.collateral:
        list_collateral(deployment, asset, log=log, contracts=contracts)

    # 7. Global risk parameters.
    configurator.set_liquidation_params(config.liquidation.params(), **tx)
    configurator.set_reserve_factor(config.reserve_factor, **tx)
    if config.upnl_haircut or config.transfer_margin_ratio:
        configurator.set_margin_params(config.upnl_haircut, config.transfer_margin_ratio, **tx)
    if config.call_buffer:
        configurator.set_call_params(config.call_buffer, config.call_fee_share, config.call_fraction, **tx)

    # 8. Roles.
    roles = config.roles
    if roles.guardian is not None:
        configurator.grantRole(configurator.GUARDIAN_ROLE(), roles.guardian, **tx)
        say(f"GUARDIAN_ROLE -> {roles.guardian}")
    if roles.risk_manager is not None and roles.risk_manager != deployer_address:
        configurator.grantRole(risk_role, roles.risk_manager, **tx)
        configurator.renounceRole(risk_role, deployer_address, **tx)
        say(f"RISK_MANAGER_ROLE -> {roles.risk_manager} (deployer renounced)")

    return deployment


def list_collateral(
    deployment: Deployment,
    asset: CollateralAssetConfig,
    *,
    log: Callable[[str], None] | None = _echo,
    contracts: Callable[[str], Any] | None = None,
) -> ContractInstance:
    """Lists one collateral asset on a deployment (step 6 of :func:`deploy`).

    Deploys its mock token (and the underlying of a mock vault share) when
    ``address`` is ``None`` and its ``MockAggregator`` when ``feed`` is
    ``None``, calls ``configurator.list_collateral`` as the deployment's
    deployer (who must hold ``DEFAULT_ADMIN_ROLE`` on the configurator), and
    records the token and the feed in ``deployment.collaterals`` and
    ``deployment.collateral_feeds`` (``deployment.config`` is left as it was).

    Args:
        deployment: the deployment to list the asset on.
        asset: the asset's configuration.
        log: progress printer (``None`` for silence).
        contracts: contract name -> deployer, as for :func:`deploy`.

    Returns:
        The listed token.
    """
    if contracts is None:
        contracts = _ape_contracts
    say: Callable[[str], None] = log or (lambda _msg: None)
    tx = {"sender": deployment.deployer}
    if asset.address is not None:
        kind = "MockERC4626" if asset.vault else "MockERC20"
        token = contracts(kind).at(asset.address, fetch_from_explorer=False)
    elif asset.vault:
        underlying = contracts("MockERC20").deploy(
            asset.underlying_name, asset.underlying_name, asset.underlying_decimals, **tx
        )
        token = contracts("MockERC4626").deploy(underlying.address, asset.name, asset.name, **tx)
        deployment.collateral_underlyings[asset.name] = underlying
        deployment.mock_collaterals.add(asset.name)
        say(f"MockERC20 {asset.underlying_name} ({asset.underlying_decimals} decimals): {underlying.address}")
        say(f"MockERC4626 {asset.name}: {token.address}")
    else:
        token = contracts("MockERC20").deploy(asset.name, asset.name, asset.decimals, **tx)
        deployment.mock_collaterals.add(asset.name)
        say(f"MockERC20 {asset.name} ({asset.decimals} decimals): {token.address}")
    if asset.feed is None:
        priced = (asset.underlying_name or asset.name) if asset.vault else asset.name
        feed = contracts("MockAggregator").deploy(asset.feed_decimals, asset.mock_answer(), **tx)
        feed.set_description(f"{priced} / USD", **tx)
        deployment.mock_collateral_feeds.add(asset.name)
        say(f"MockAggregator {priced} / USD ({asset.mock_price}): {feed.address}")
    else:
        feed = contracts("MockAggregator").at(asset.feed, fetch_from_explorer=False)
    deployment.configurator.list_collateral(
        token.address,
        feed.address,
        asset.heartbeat,
        asset.min_price,
        asset.max_price,
        asset.params(),
        asset.vault,
        asset.max_rate_growth,
        **tx,
    )
    deployment.collaterals[asset.name] = token
    deployment.collateral_feeds[asset.name] = feed
    say(f"collateral {asset.name}: listed")
    return token
