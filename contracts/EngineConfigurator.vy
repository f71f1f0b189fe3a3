# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EngineConfigurator
@notice Governance of a MarginEngine: listing markets, setting oracles and
        risk parameters within hard bounds, the liquidation parameters, the
        vault reserve, connecting the vault, and the guardian's pause.
@dev    The roles live here (snekmate `access_control`: DEFAULT_ADMIN,
        RISK_MANAGER, GUARDIAN). The engine stores only what this contract
        hands it (`store_*`, callable by the engine's `configurator` alone),
        so every bound is enforced here and every change is logged here.
        Keeping this logic out of the engine keeps the engine's bytecode
        under EIP-170. Deployment: this contract first (the deployer is
        DEFAULT_ADMIN), then `MarginEngine(settlement_asset, configurator)`,
        then `set_engine(engine)` once. The admin may hand governance to
        another configurator with `migrate`.
"""

from snekmate.auth import access_control
from .interfaces import IMarginEngine

initializes: access_control

exports: (
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.supportsInterface,
)


interface IEngineStore:
    def configurator() -> address: view
    def set_configurator(configurator: address): nonpayable
    def market_count() -> uint256: view
    def vault() -> address: view
    def paused() -> bool: view
    def reserve_factor() -> uint256: view
    def liquidation_params() -> IMarginEngine.LiquidationParams: view
    def store_oracle(market: uint256, oracle: uint256, bounds: uint256): nonpayable
    def store_market_params(
        market: uint256, rates: uint256, limits: uint256, funding_rate_max: uint256, mm_ramp: uint256
    ): nonpayable
    def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def mm_ramp(market: uint256) -> (uint256, uint256, uint256, uint256): view
    def store_globals(liq_rates: uint256, liq_rewards: uint256, reserve_factor: uint256, margin_params: uint256): nonpayable
    def margin_params() -> (uint256, uint256): view
    def store_vault(vault: address): nonpayable
    def store_paused(paused: bool): nonpayable


interface AggregatorDecimals:
    def decimals() -> uint8: view


# --------------------------------------------------------------------------
#                                 Constants
# --------------------------------------------------------------------------

WAD: constant(uint256) = 10**18
MASK128: constant(uint256) = 2**128 - 1

RISK_MANAGER_ROLE: public(constant(bytes32)) = keccak256("RISK_MANAGER")
GUARDIAN_ROLE: public(constant(bytes32)) = keccak256("GUARDIAN")

# Hard bounds on risk parameters.
MAX_FEE_RATE: public(constant(uint256)) = 10**16                      # 1 % of notional
MAX_FUNDING_RATE: public(constant(uint256)) = 10**18 // 100 // 3600   # 1 % per hour at full skew
MAX_HEARTBEAT: public(constant(uint256)) = 2**32 - 1
MAX_FEED_DECIMALS: public(constant(uint256)) = 18
# Changes of imr, mmr or liq_fee by the risk manager: at most 5 points each,
# at least an hour apart per market, and a higher mmr ramps in.
MAX_RATE_STEP: public(constant(uint256)) = 10**18 // 20
MIN_RATE_CHANGE_DELAY: public(constant(uint256)) = 3_600
MIN_RAMP_DURATION: public(constant(uint256)) = 3_600
MAX_RAMP_DURATION: public(constant(uint256)) = 30 * 86_400
RAMP_FLAG: constant(uint256) = 2**63  # top bit of the mmr field: a ramp is on
MASK64: constant(uint256) = 2**64 - 1


# @dev The engine configured; set once (`set_engine`).
engine: public(address)
# @dev How long a rise of a market's maintenance rate takes to apply in full.
mm_ramp_duration: public(uint256)
# @dev When the risk manager last changed a market's imr, mmr or liq_fee.
rates_changed_at: public(HashMap[uint256, uint256])


event EngineSet:
    engine: address


event Migrated:
    configurator: address


event MaintenanceRamp:
    market: indexed(uint256)
    old_mmr: uint256
    new_mmr: uint256
    start: uint256
    end: uint256


event RampDurationSet:
    duration: uint256


event MarginParamsSet:
    upnl_haircut: uint256
    transfer_margin_ratio: uint256


@deploy
def __init__():
    """
    @notice Deploy a configurator; the deployer becomes DEFAULT_ADMIN.
    """
    access_control.__init__()
    self.mm_ramp_duration = 86_400


# --------------------------------------------------------------------------
#                           Admin: the engine link
# --------------------------------------------------------------------------

@external
def set_engine(engine: address):
    """
    @notice Connect the engine this contract governs; once only.
    @dev DEFAULT_ADMIN only. The engine must name this contract as its
         configurator (its constructor argument).
    @param engine The MarginEngine.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    assert self.engine == empty(address), "configurator: engine set"
    assert engine != empty(address), "configurator: zero address"
    configurator: address = staticcall IEngineStore(engine).configurator()
    assert configurator == self, "configurator: not the engine's"
    self.engine = engine
    log EngineSet(engine=engine)


@external
def migrate(configurator: address):
    """
    @notice Hand the engine's governance to another configurator (which
            holds its own roles); this one can write nothing afterwards.
    @dev DEFAULT_ADMIN only.
    @param configurator The new configurator.
    """
    access_control._check_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    extcall IEngineStore(self.engine).set_configurator(configurator)
    log Migrated(configurator=configurator)


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
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    market: uint256 = staticcall IEngineStore(self.engine).market_count()
    self._set_oracle(market, feed, heartbeat, min_price, max_price)
    self._set_market_params(market, params, 0)
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
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    assert market < staticcall IEngineStore(self.engine).market_count(), "configurator: unknown market"
    self._set_oracle(market, feed, heartbeat, min_price, max_price)


@external
def set_market_params(market: uint256, params: IMarginEngine.MarketParams):
    """
    @notice Set a market's risk parameters within hard bounds.
    @dev RISK_MANAGER only. The engine accrues funding at the old rate
         first, which needs a valid price when the market has open interest.
         Bounds: 0 < liq_fee < mmr < imr <= 1, fee_rate <= 1 %,
         funding_rate_max <= 1 % per hour at full skew. A change of imr, mmr
         or liq_fee moves each by at most `MAX_RATE_STEP` from the rates in
         force, at least `MIN_RATE_CHANGE_DELAY` after the last one, and
         never sets mmr above the imr in force (an account that met IM
         cannot be ramped into liquidation at the same prices). A higher
         imr applies at once (to new risk); a higher mmr ramps in linearly
         over `mm_ramp_duration` from the rate in force (grandfathering); a
         lower one applies at once.
    @param market The market id.
    @param params The new parameters.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert market < staticcall IEngineStore(self.engine).market_count(), "configurator: unknown market"
    self._check_bounds(params)
    a: uint256 = 0
    b: uint256 = 0
    rates: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    e: uint256 = 0
    a, b, rates, c, d, e = staticcall IEngineStore(self.engine).market_words(market)
    imr: uint256 = rates & MASK64
    mmr: uint256 = (rates >> 64) & MASK64  # in force now
    liq_fee: uint256 = rates >> 192
    old: uint256 = 0
    new: uint256 = 0
    start: uint256 = 0
    end: uint256 = 0
    old, new, start, end = staticcall IEngineStore(self.engine).mm_ramp(market)
    target: uint256 = mmr
    if end != 0:
        target = new
    if params.imr != imr or params.mmr != target or params.liq_fee != liq_fee:
        assert block.timestamp >= self.rates_changed_at[market] + MIN_RATE_CHANGE_DELAY, "configurator: too soon"
        assert (
            self._diff(params.imr, imr) <= MAX_RATE_STEP
            and self._diff(params.mmr, mmr) <= MAX_RATE_STEP
            and self._diff(params.liq_fee, liq_fee) <= MAX_RATE_STEP
            and params.mmr <= imr
        ), "configurator: step"
        self.rates_changed_at[market] = block.timestamp
    ramp: uint256 = 0
    if params.mmr > mmr:
        # A tighter MM ramps in from the rate in force (liq_fee stays below it).
        assert params.liq_fee < mmr, "configurator: bad params"
        if end > block.timestamp and params.mmr == new:
            ramp = old | (new << 64) | (start << 128) | (end << 192)  # unchanged
        else:
            end = block.timestamp + self.mm_ramp_duration
            ramp = mmr | (params.mmr << 64) | (block.timestamp << 128) | (end << 192)
            log MaintenanceRamp(market=market, old_mmr=mmr, new_mmr=params.mmr, start=block.timestamp, end=end)
    self._set_market_params(market, params, ramp)


@external
def set_mm_ramp_duration(duration: uint256):
    """
    @notice Set how long a rise of a maintenance rate takes to apply in full.
    @dev DEFAULT_ADMIN only; between one hour and 30 days. Ramps already on
         keep their end.
    @param duration Seconds.
    """
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    assert duration >= MIN_RAMP_DURATION and duration <= MAX_RAMP_DURATION, "configurator: bad params"
    self.mm_ramp_duration = duration
    log RampDurationSet(duration=duration)


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
    reserve_factor: uint256 = staticcall IEngineStore(self.engine).reserve_factor()
    extcall IEngineStore(self.engine).store_globals(
        params.buffer | (params.liquidator_share << 128),
        params.reward_floor | (params.reward_cap << 128),
        reserve_factor,
        self._margin_word(),
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
    self._store_globals(reserve_factor, self._margin_word())
    log IMarginEngine.ReserveFactorSet(reserve_factor=reserve_factor)


@external
def set_margin_params(upnl_haircut: uint256, transfer_margin_ratio: uint256):
    """
    @notice Set the initial-margin terms: the haircut on positive unrealised
            PnL (it counts toward IM at weight 1 - haircut) and the transfer
            margin ratio (withdrawals and transfers out need equity_init >=
            max(im_required, ratio * notional)), so unrealised profit cannot
            be pulled out down to the maintenance margin.
    @dev RISK_MANAGER only; each at most 1 (WAD). A higher haircut only
         limits new risk and transfers out: it never makes an account
         liquidatable.
    @param upnl_haircut WAD fraction of positive unrealised PnL left out of equity_init.
    @param transfer_margin_ratio WAD fraction of the total notional.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert upnl_haircut <= WAD and transfer_margin_ratio <= WAD, "configurator: bad params"
    self._store_globals(staticcall IEngineStore(self.engine).reserve_factor(), upnl_haircut | (transfer_margin_ratio << 128))
    log MarginParamsSet(upnl_haircut=upnl_haircut, transfer_margin_ratio=transfer_margin_ratio)


@external
def set_vault(vault: address):
    """
    @notice Connect the liquidity vault; once only.
    @dev DEFAULT_ADMIN only.
    @param vault The LiquidityVault deployed over the engine.
    """
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    assert vault != empty(address), "configurator: zero address"
    assert staticcall IEngineStore(self.engine).vault() == empty(address), "configurator: vault set"
    extcall IEngineStore(self.engine).store_vault(vault)
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
    extcall IEngineStore(self.engine).store_paused(True)
    log IMarginEngine.Paused(account=msg.sender)


@external
def unpause():
    """
    @notice Allow new risk again.
    @dev GUARDIAN only.
    """
    self._check_role(GUARDIAN_ROLE)
    extcall IEngineStore(self.engine).store_paused(False)
    log IMarginEngine.Unpaused(account=msg.sender)


# --------------------------------------------------------------------------
#                                  Internal
# --------------------------------------------------------------------------

@view
@internal
def _margin_word() -> uint256:
    haircut: uint256 = 0
    ratio: uint256 = 0
    haircut, ratio = staticcall IEngineStore(self.engine).margin_params()
    return haircut | (ratio << 128)


@internal
def _store_globals(reserve_factor: uint256, margin_word: uint256):
    # The liquidation words as they are, with a new reserve factor and margin word.
    p: IMarginEngine.LiquidationParams = staticcall IEngineStore(self.engine).liquidation_params()
    extcall IEngineStore(self.engine).store_globals(
        p.buffer | (p.liquidator_share << 128), p.reward_floor | (p.reward_cap << 128), reserve_factor, margin_word
    )


@pure
@internal
def _check_bounds(p: IMarginEngine.MarketParams):
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


@pure
@internal
def _diff(a: uint256, b: uint256) -> uint256:
    if a > b:
        return a - b
    return b - a


@view
@internal
def _check_role(role: bytes32):
    access_control._check_role(role, msg.sender)


@internal
def _set_oracle(market: uint256, feed: address, heartbeat: uint256, min_price: uint256, max_price: uint256):
    assert (
        heartbeat > 0 and heartbeat <= MAX_HEARTBEAT and min_price > 0 and min_price < max_price and max_price <= MASK128
    ), "configurator: bad oracle"
    decimals: uint256 = convert(staticcall AggregatorDecimals(feed).decimals(), uint256)
    assert decimals <= MAX_FEED_DECIMALS, "configurator: bad oracle"
    extcall IEngineStore(self.engine).store_oracle(
        market,
        convert(convert(feed, uint160), uint256) | (heartbeat << 160) | (10 ** (18 - decimals) << 192),
        min_price | (max_price << 128),
    )
    log IMarginEngine.OracleSet(
        market=market, feed=feed, heartbeat=heartbeat, min_price=min_price, max_price=max_price
    )


@internal
def _set_market_params(market: uint256, p: IMarginEngine.MarketParams, mm_ramp: uint256):
    self._check_bounds(p)
    mm_field: uint256 = p.mmr
    if mm_ramp != 0:
        mm_field |= RAMP_FLAG
    extcall IEngineStore(self.engine).store_market_params(
        market,
        p.imr | (mm_field << 64) | (p.fee_rate << 128) | (p.liq_fee << 192),
        p.max_oi | (p.min_notional << 128),
        p.funding_rate_max,
        mm_ramp,
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
