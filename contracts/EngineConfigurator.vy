# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EngineConfigurator
@notice Governance of a MarginEngine: listing markets, setting oracles and
        risk parameters within hard bounds, the liquidation parameters, the
        vault reserve, connecting the vault, and the guardian's pause.
@dev    The engine keeps the roles (snekmate `access_control`: DEFAULT_ADMIN,
        RISK_MANAGER, GUARDIAN) and stores only what this contract hands it
        (`store_*`, callable by the engine's `configurator` alone), so every
        bound is enforced here and every change is logged here. Keeping this
        logic out of the engine keeps the engine's bytecode under EIP-170.
        The contract has no state of its own: the admin may replace it with
        `MarginEngine.set_configurator`.
"""

from .interfaces import IMarginEngine


interface IRoles:
    def hasRole(role: bytes32, account: address) -> bool: view


interface IEngineStore:
    def market_count() -> uint256: view
    def vault() -> address: view
    def paused() -> bool: view
    def reserve_factor() -> uint256: view
    def liquidation_params() -> IMarginEngine.LiquidationParams: view
    def store_oracle(market: uint256, oracle: uint256, bounds: uint256): nonpayable
    def store_market_params(market: uint256, rates: uint256, limits: uint256, funding_rate_max: uint256): nonpayable
    def store_globals(liq_rates: uint256, liq_rewards: uint256, reserve_factor: uint256): nonpayable
    def store_vault(vault: address): nonpayable
    def store_paused(paused: bool): nonpayable


interface AggregatorDecimals:
    def decimals() -> uint8: view


# --------------------------------------------------------------------------
#                                 Constants
# --------------------------------------------------------------------------

WAD: constant(uint256) = 10**18
MASK128: constant(uint256) = 2**128 - 1

DEFAULT_ADMIN_ROLE: constant(bytes32) = empty(bytes32)
RISK_MANAGER_ROLE: constant(bytes32) = keccak256("RISK_MANAGER")
GUARDIAN_ROLE: constant(bytes32) = keccak256("GUARDIAN")

# Hard bounds on risk parameters.
MAX_FEE_RATE: public(constant(uint256)) = 10**16                      # 1 % of notional
MAX_FUNDING_RATE: public(constant(uint256)) = 10**18 // 100 // 3600   # 1 % per hour at full skew
MAX_HEARTBEAT: public(constant(uint256)) = 2**32 - 1
MAX_FEED_DECIMALS: public(constant(uint256)) = 18


# @dev The engine configured (and whose roles are checked).
ENGINE: public(immutable(address))


@deploy
def __init__(engine: address):
    """
    @notice Deploy a configurator for `engine`; the engine's admin then
            connects it with `set_configurator`.
    @param engine The MarginEngine.
    """
    assert engine != empty(address), "configurator: zero address"
    ENGINE = engine


# --------------------------------------------------------------------------
#                               Admin: markets
# --------------------------------------------------------------------------

@external
def add_market(
    feed: address,
    heartbeat: uint256,
    min_price: uint256,
    max_price: uint256,
    params: IMarginEngine.MarketParams,
) -> uint256:
    """
    @notice List a perpetual market priced by a Chainlink feed.
    @dev DEFAULT_ADMIN only. At most `MAX_MARKETS` markets.
    @param feed AggregatorV3Interface of the base asset in USD.
    @param heartbeat Seconds a round stays valid.
    @param min_price Lowest valid price (WAD).
    @param max_price Highest valid price (WAD).
    @param params The market's risk parameters (bounded as in `set_market_params`).
    @return The new market id.
    """
    self._check_role(DEFAULT_ADMIN_ROLE)
    market: uint256 = staticcall IEngineStore(ENGINE).market_count()
    self._set_oracle(market, feed, heartbeat, min_price, max_price)
    self._set_market_params(market, params)
    log IMarginEngine.MarketAdded(market=market, feed=feed)
    return market


@external
def set_oracle(market: uint256, feed: address, heartbeat: uint256, min_price: uint256, max_price: uint256):
    """
    @notice Replace a market's price feed and its validity bounds.
    @dev DEFAULT_ADMIN only. Funding is not accrued (the old feed may be broken).
    @param market The market id.
    @param feed AggregatorV3Interface of the base asset in USD.
    @param heartbeat Seconds a round stays valid.
    @param min_price Lowest valid price (WAD).
    @param max_price Highest valid price (WAD).
    """
    self._check_role(DEFAULT_ADMIN_ROLE)
    assert market < staticcall IEngineStore(ENGINE).market_count(), "configurator: unknown market"
    self._set_oracle(market, feed, heartbeat, min_price, max_price)


@external
def set_market_params(market: uint256, params: IMarginEngine.MarketParams):
    """
    @notice Set a market's risk parameters within hard bounds.
    @dev RISK_MANAGER only. The engine accrues funding at the old rate
         first, which needs a valid price when the market has open interest.
         Bounds: 0 < liq_fee < mmr < imr <= 1, fee_rate <= 1 %,
         funding_rate_max <= 1 % per hour at full skew.
    @param market The market id.
    @param params The new parameters.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert market < staticcall IEngineStore(ENGINE).market_count(), "configurator: unknown market"
    self._set_market_params(market, params)


# --------------------------------------------------------------------------
#                           Admin: engine-wide values
# --------------------------------------------------------------------------

@external
def set_liquidation_params(params: IMarginEngine.LiquidationParams):
    """
    @notice Set the liquidation buffer, liquidator share and reward bounds.
    @dev RISK_MANAGER only. buffer <= 1, liquidator_share <= 1, floor <= cap.
    @param params The new parameters.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert (
        params.buffer <= WAD
        and params.liquidator_share <= WAD
        and params.reward_floor <= params.reward_cap
        and params.reward_cap <= MASK128
    ), "configurator: bad params"
    extcall IEngineStore(ENGINE).store_globals(
        params.buffer | (params.liquidator_share << 128),
        params.reward_floor | (params.reward_cap << 128),
        staticcall IEngineStore(ENGINE).reserve_factor(),
    )
    log IMarginEngine.LiquidationParamsSet(
        buffer=params.buffer,
        liquidator_share=params.liquidator_share,
        reward_floor=params.reward_floor,
        reward_cap=params.reward_cap,
    )


@external
def set_reserve_factor(reserve_factor: uint256):
    """
    @notice Set the share of the vault's net exposure LPs cannot withdraw.
    @dev RISK_MANAGER only; at most 1 (WAD).
    @param reserve_factor WAD fraction.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert reserve_factor <= WAD, "configurator: bad params"
    p: IMarginEngine.LiquidationParams = staticcall IEngineStore(ENGINE).liquidation_params()
    extcall IEngineStore(ENGINE).store_globals(
        p.buffer | (p.liquidator_share << 128), p.reward_floor | (p.reward_cap << 128), reserve_factor
    )
    log IMarginEngine.ReserveFactorSet(reserve_factor=reserve_factor)


@external
def set_vault(vault: address):
    """
    @notice Connect the liquidity vault; once only.
    @dev DEFAULT_ADMIN only.
    @param vault The LiquidityVault deployed over the engine.
    """
    self._check_role(DEFAULT_ADMIN_ROLE)
    assert vault != empty(address), "configurator: zero address"
    assert staticcall IEngineStore(ENGINE).vault() == empty(address), "configurator: vault set"
    extcall IEngineStore(ENGINE).store_vault(vault)
    log IMarginEngine.VaultSet(vault=vault)


# --------------------------------------------------------------------------
#                                  Guardian
# --------------------------------------------------------------------------

@external
def pause():
    """
    @notice Stop new risk (opens and increases). Exits keep working.
    @dev GUARDIAN only.
    """
    self._check_role(GUARDIAN_ROLE)
    extcall IEngineStore(ENGINE).store_paused(True)
    log IMarginEngine.Paused(account=msg.sender)


@external
def unpause():
    """
    @notice Allow new risk again.
    @dev GUARDIAN only.
    """
    self._check_role(GUARDIAN_ROLE)
    extcall IEngineStore(ENGINE).store_paused(False)
    log IMarginEngine.Unpaused(account=msg.sender)


# --------------------------------------------------------------------------
#                                  Internal
# --------------------------------------------------------------------------

@view
@internal
def _check_role(role: bytes32):
    assert staticcall IRoles(ENGINE).hasRole(role, msg.sender), "access_control: account is missing role"


@internal
def _set_oracle(market: uint256, feed: address, heartbeat: uint256, min_price: uint256, max_price: uint256):
    assert (
        heartbeat > 0 and heartbeat <= MAX_HEARTBEAT and min_price > 0 and min_price < max_price and max_price <= MASK128
    ), "configurator: bad oracle"
    decimals: uint256 = convert(staticcall AggregatorDecimals(feed).decimals(), uint256)
    assert decimals <= MAX_FEED_DECIMALS, "configurator: bad oracle"
    extcall IEngineStore(ENGINE).store_oracle(
        market,
        convert(convert(feed, uint160), uint256) | (heartbeat << 160) | (10 ** (18 - decimals) << 192),
        min_price | (max_price << 128),
    )
    log IMarginEngine.OracleSet(
        market=market, feed=feed, heartbeat=heartbeat, min_price=min_price, max_price=max_price
    )


@internal
def _set_market_params(market: uint256, p: IMarginEngine.MarketParams):
    # Hard bounds: 0 < liq_fee < mmr < imr <= 1, fee <= 1 %, funding <= 1 %/hour.
    assert (
        p.liq_fee > 0
        and p.liq_fee < p.mmr
        and p.mmr < p.imr
        and p.imr <= WAD
        and p.fee_rate <= MAX_FEE_RATE
        and p.funding_rate_max <= MAX_FUNDING_RATE
        and p.max_oi <= MASK128
        and p.min_notional <= MASK128
    ), "configurator: bad params"
    extcall IEngineStore(ENGINE).store_market_params(
        market,
        p.imr | (p.mmr << 64) | (p.fee_rate << 128) | (p.liq_fee << 192),
        p.max_oi | (p.min_notional << 128),
        p.funding_rate_max,
    )
    log IMarginEngine.MarketParamsSet(
        market=market,
        imr=p.imr,
        mmr=p.mmr,
        fee_rate=p.fee_rate,
        liq_fee=p.liq_fee,
        max_oi=p.max_oi,
        min_notional=p.min_notional,
        funding_rate_max=p.funding_rate_max,
    )
