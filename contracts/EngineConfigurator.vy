# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EngineConfigurator
@notice Governance of a MarginEngine: listing markets, setting oracles and
        risk parameters within hard bounds, the liquidation parameters, the
        vault reserve, connecting the vault, listing collateral assets in
        the engine's CollateralManager, and the guardian's pause.
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
from ethereum.ercs import IERC4626
from .interfaces import ICollateralManager
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
    def store_market_params(market: uint256, rates: uint256, limits: uint256, funding_rate_max: uint256): nonpayable
    def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def store_globals(
        liq_rates: uint256, liq_rewards: uint256, reserve_factor: uint256, margin_params: uint256, call_params: uint256
    ): nonpayable
    def RISK_MODEL() -> address: view
    def COLLATERAL() -> address: view
    def MAX_MARKETS() -> uint256: view
    def margin_words() -> (uint256, uint256): view
    def store_vault(vault: address): nonpayable
    def store_paused(paused: bool): nonpayable


interface IRiskStore:
    def set_engine(engine: address): nonpayable
    def set_configurator(configurator: address): nonpayable
    def store_ramp_duration(duration: uint256): nonpayable
    def store_volatility(market: uint256, params: uint256, limits: uint256, seed: uint256, ramp: bool): nonpayable
    def store_tiers(market: uint256, schedule: uint256, ramp: bool): nonpayable
    def store_mm_ramp(market: uint256, ramp: uint256): nonpayable
    def tiers(market: uint256) -> (uint256, uint256, uint256, uint256): view
    def volatility_params(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256): view
    def mm_ramp(market: uint256) -> (uint256, uint256, uint256, uint256): view


interface ICollateralStore:
    def set_engine(engine: address): nonpayable
    def set_configurator(configurator: address): nonpayable
    def store_asset(
        asset: address, oracle: uint256, bounds: uint256, weights: uint256, limits: uint256, vault_word: uint256
    ): nonpayable
    def asset_count() -> uint256: view
    def assets(id: uint256) -> address: view
    def asset_id(asset: address) -> uint256: view
    def asset_words(asset: address) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def total_deposits(id: uint256) -> uint256: view


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
RISK_FLAG: constant(uint256) = 2**63  # top bit of the imr field: the risk model sets requirements
MASK63: constant(uint256) = 2**63 - 1
# Volatility margin (docs/risk-model.md section 2).
MIN_EPOCH: public(constant(uint256)) = 300
MAX_EPOCH: public(constant(uint256)) = 86_400
MIN_DECAY: public(constant(uint256)) = 10**18 // 2
MAX_DECAY: public(constant(uint256)) = 10**18 - 10**18 // 100_000
MIN_Z: public(constant(uint256)) = 10**18
MAX_Z: public(constant(uint256)) = 10 * 10**18
MIN_HORIZON: public(constant(uint256)) = 3_600
MAX_HORIZON: public(constant(uint256)) = 30 * 86_400
MIN_FLOOR: public(constant(uint256)) = 10**18 // 200
MIN_MM_FRACTION: public(constant(uint256)) = 10**18 // 10
MAX_MM_FRACTION: public(constant(uint256)) = 9 * 10**18 // 10
# ceil(MAX_RETURN**2 / (WAD * MIN_EPOCH)) with MAX_RETURN = 10 WAD: the largest variance.
MAX_VAR: public(constant(uint256)) = 333_333_333_333_333_334
# Tiers (section 10.2): multipliers in percent of the base rate.
MAX_TIERS: public(constant(uint256)) = 4
MIN_MULTIPLIER: public(constant(uint256)) = 100
MAX_MULTIPLIER: public(constant(uint256)) = 10_000
# Margin-call band (section 11).
MAX_CALL_FEE_SHARE: public(constant(uint256)) = 10**18 // 2
MIN_CALL_FRACTION: public(constant(uint256)) = 10**18 // 100
MAX_CALL_FRACTION: public(constant(uint256)) = 10**18 // 2
MASK64: constant(uint256) = 2**64 - 1
# Collateral assets (docs/collateral.md section 2).
MAX_COLLATERAL_ASSETS: constant(uint256) = 16  # CollateralManager.MAX_ASSETS
MAX_TOKEN_DECIMALS: public(constant(uint256)) = 18
MAX_DISCOUNT: public(constant(uint256)) = 10**18 // 5                # 20 %
MAX_WEIGHT_STEP: public(constant(uint256)) = 10**18 // 20            # a w_maint decrease, 5 points
MAX_RATE_GROWTH: public(constant(uint256)) = 10**18 // 31_536_000    # 100 % per year, WAD per second
ENABLED_BIT: constant(uint256) = 2**128


# @dev The engine configured; set once (`set_engine`).
engine: public(address)
# @dev How long a rise of a market's maintenance rate takes to apply in full.
mm_ramp_duration: public(uint256)
# @dev When the risk manager last changed a market's imr, mmr or liq_fee.
rates_changed_at: public(HashMap[uint256, uint256])
# @dev The engine's RiskModel (volatility and tiers), named by the engine.
risk_model: public(address)
# @dev The engine's `CollateralManager` (read from the engine at `set_engine`).
collateral_manager: public(address)
# @dev When the risk manager last changed a market's volatility parameters.
volatility_changed_at: public(HashMap[uint256, uint256])
# @dev When the risk manager last lowered a collateral asset's w_maint.
collateral_changed_at: public(HashMap[address, uint256])


struct VolatilityParams:
    epoch: uint256        # sampling period (s)
    decay: uint256        # per-epoch retention of the old estimate (WAD)
    z: uint256            # multiplier of the horizon's standard deviation (WAD)
    horizon: uint256      # liquidation horizon IM covers (s)
    floor: uint256        # lowest base IM rate (WAD)
    cap: uint256          # highest base IM rate (WAD)
    mm_fraction: uint256  # MM rate as a fraction of the IM rate (WAD)


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


event CallParamsSet:
    call_buffer: uint256
    fee_share: uint256
    fraction: uint256


event VolatilityParamsSet:
    market: indexed(uint256)
    epoch: uint256
    decay: uint256
    z: uint256
    horizon: uint256
    floor: uint256
    cap: uint256
    mm_fraction: uint256
    seed_var: uint256


event TiersSet:
    market: indexed(uint256)
    edges: DynArray[uint256, 4]
    multipliers: DynArray[uint256, 4]


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
    risk: address = staticcall IEngineStore(engine).RISK_MODEL()
    self.risk_model = risk
    extcall IRiskStore(risk).set_engine(engine)
    extcall IRiskStore(risk).store_ramp_duration(self.mm_ramp_duration)
    manager: address = staticcall IEngineStore(engine).COLLATERAL()
    self.collateral_manager = manager
    extcall ICollateralStore(manager).set_engine(engine)
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
    assert configurator != empty(address), "configurator: zero address"
    extcall IEngineStore(self.engine).set_configurator(configurator)
    extcall IRiskStore(self.risk_model).set_configurator(configurator)
    extcall ICollateralStore(self.collateral_manager).set_configurator(configurator)
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
    assert market < staticcall IEngineStore(self.engine).MAX_MARKETS(), "configurator: too many markets"
    self._set_oracle(market, feed, heartbeat, min_price, max_price)
    self._set_market_params(market, params, 0, False)
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
    imr: uint256 = rates & MASK63
    target: uint256 = (rates >> 64) & MASK64  # the engine stores the ramp's target
    liq_fee: uint256 = rates >> 192
    old: uint256 = 0
    new: uint256 = 0
    start: uint256 = 0
    end: uint256 = 0
    old, new, start, end = self._ramp(market)
    mmr: uint256 = target  # in force now
    if block.timestamp < end:
        mmr = old + (new - old) * (block.timestamp - start) // (end - start)
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
    self._set_market_params(market, params, ramp, rates & RISK_FLAG != 0)


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
    if self.risk_model != empty(address):
        extcall IRiskStore(self.risk_model).store_ramp_duration(duration)
    log RampDurationSet(duration=duration)


@view
@external
def uses_risk_model(market: uint256) -> bool:
    """
    @notice True once the market's requirements come from the risk model
            (volatility, tiers or an MM ramp); it stays so.
    """
    return self._flagged(market)


@view
@external
def mm_ramp(market: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @notice A market's static maintenance-rate ramp: the rate rises linearly
            from `old` at `start` to `new` at `end` (all zero when none is on).
    @param market The market id.
    @return old, new (WAD rates), start, end (timestamps).
    """
    return self._ramp(market)


# --------------------------------------------------------------------------
#                  Risk manager: volatility, tiers, margin calls
# --------------------------------------------------------------------------

@external
def set_volatility(market: uint256, params: VolatilityParams, seed_var: uint256):
    """
    @notice Give a market a volatility margin (or, all parameters zero, take
            it away): its base IM rate becomes max(imr, clamp(z * sigma *
            sqrt(horizon), floor, cap)), its MM rate max(mmr, mm_fraction of
            that), with MM rises ramping in (docs/risk-model.md).
    @dev RISK_MANAGER only. Bounds: the `MIN_*`/`MAX_*` constants, floor <=
         cap <= 1, seed_var <= MAX_VAR (required when turning it on). Every
         change after the first comes at least `MIN_RATE_CHANGE_DELAY` after
         the last (turning it off and on again included); on a live market
         floor and cap move each by at most `MAX_RATE_STEP`. A non-zero seed
         replaces the estimate; the next valid price starts a new sample
         series either way.
    @param market The market id.
    @param params The parameters.
    @param seed_var Variance per second (WAD) to start from; 0 keeps the estimate.
    """
    self._check_role(RISK_MANAGER_ROLE)
    self._check_market(market)
    p: VolatilityParams = params
    packed: uint256 = p.decay | (p.z << 64) | (p.epoch << 128) | (p.horizon << 160)
    limits: uint256 = p.floor | (p.cap << 64) | (p.mm_fraction << 128)
    if packed != 0 or limits != 0:
        assert (
            p.epoch >= MIN_EPOCH and p.epoch <= MAX_EPOCH
            and p.decay >= MIN_DECAY and p.decay <= MAX_DECAY
            and p.z >= MIN_Z and p.z <= MAX_Z
            and p.horizon >= MIN_HORIZON and p.horizon <= MAX_HORIZON
            and p.floor >= MIN_FLOOR and p.floor <= p.cap and p.cap <= WAD
            and p.mm_fraction >= MIN_MM_FRACTION and p.mm_fraction <= MAX_MM_FRACTION
            and seed_var <= MAX_VAR
        ), "configurator: bad params"
    epoch: uint256 = 0
    decay: uint256 = 0
    z: uint256 = 0
    horizon: uint256 = 0
    old_floor: uint256 = 0
    old_cap: uint256 = 0
    fraction: uint256 = 0
    epoch, decay, z, horizon, old_floor, old_cap, fraction = staticcall IRiskStore(self.risk_model).volatility_params(market)
    # Every change after the first waits the delay, turning volatility back
    # on included (off and on again in one block would skip the step bound).
    changed_at: uint256 = self.volatility_changed_at[market]
    assert changed_at == 0 or block.timestamp >= changed_at + MIN_RATE_CHANGE_DELAY, "configurator: too soon"
    if epoch != 0:
        assert (
            packed == 0 or self._diff(p.floor, old_floor) <= MAX_RATE_STEP and self._diff(p.cap, old_cap) <= MAX_RATE_STEP
        ), "configurator: step"
    else:
        assert packed == 0 or seed_var != 0, "configurator: bad params"
    self.volatility_changed_at[market] = block.timestamp
    if packed != 0:
        self._use_risk_model(market)
    extcall IRiskStore(self.risk_model).store_volatility(market, packed, limits, seed_var, self._has_open_interest(market))
    log VolatilityParamsSet(
        market=market,
        epoch=p.epoch,
        decay=p.decay,
        z=p.z,
        horizon=p.horizon,
        floor=p.floor,
        cap=p.cap,
        mm_fraction=p.mm_fraction,
        seed_var=seed_var,
    )


@external
def set_tiers(market: uint256, edges: DynArray[uint256, MAX_TIERS], multipliers: DynArray[uint256, MAX_TIERS]):
    """
    @notice Set a market's size tiers: above `edges[i]` (whole settlement
            units of notional) the rate is `multipliers[i]` percent of the
            base rate (at most 100 %), applied marginally like tax brackets.
            Empty arrays remove the tiers.
    @dev RISK_MANAGER only. Edges strictly increasing, non-zero, below
         2**32; multipliers non-decreasing, 100 to 10,000. IM follows at
         once; MM moves from the old schedule to the new over
         `mm_ramp_duration`, and no new schedule is accepted until then
         ("configurator: ramp on").
    @param market The market id.
    @param edges Bracket lower edges (whole settlement units).
    @param multipliers Rate of each bracket, percent of the base rate.
    """
    self._check_role(RISK_MANAGER_ROLE)
    self._check_market(market)
    assert len(edges) == len(multipliers), "configurator: bad params"
    schedule: uint256 = 0
    last_edge: uint256 = 0
    last_multiplier: uint256 = MIN_MULTIPLIER
    for i: uint256 in range(MAX_TIERS):
        if i >= len(edges):
            break
        assert (
            edges[i] > last_edge
            and edges[i] < 2**32
            and multipliers[i] >= last_multiplier
            and multipliers[i] <= MAX_MULTIPLIER
        ), "configurator: bad params"
        last_edge = edges[i]
        last_multiplier = multipliers[i]
        schedule |= (edges[i] << (32 * i)) | (multipliers[i] << (128 + 16 * i))
    a: uint256 = 0
    b: uint256 = 0
    c: uint256 = 0
    end: uint256 = 0
    a, b, c, end = staticcall IRiskStore(self.risk_model).tiers(market)
    assert block.timestamp >= end, "configurator: ramp on"
    self._use_risk_model(market)
    extcall IRiskStore(self.risk_model).store_tiers(market, schedule, self._has_open_interest(market))
    log TiersSet(market=market, edges=edges, multipliers=multipliers)


@external
def set_call_params(call_buffer: uint256, fee_share: uint256, fraction: uint256):
    """
    @notice Set the margin-call band: accounts below
            `mm_required * (1 + call_buffer)` but not liquidatable may be
            reduced by anyone (`engine.margin_call`), at most `fraction` of a
            position per call, for a fee of `fee_share` of the market's
            liquidation fee rate.
    @dev RISK_MANAGER only. call_buffer <= 1 (0 turns the band off),
         fee_share <= 50 %, fraction 1 % to 50 %.
    @param call_buffer WAD.
    @param fee_share WAD fraction of liq_fee.
    @param fraction WAD fraction of a position.
    """
    self._check_role(RISK_MANAGER_ROLE)
    assert (
        call_buffer <= WAD
        and fee_share <= MAX_CALL_FEE_SHARE
        and fraction >= MIN_CALL_FRACTION
        and fraction <= MAX_CALL_FRACTION
    ), "configurator: bad params"
    self._store_globals(
        staticcall IEngineStore(self.engine).reserve_factor(),
        self._margin_word(),
        call_buffer | (fee_share << 64) | (fraction << 128),
    )
    log CallParamsSet(call_buffer=call_buffer, fee_share=fee_share, fraction=fraction)


@view
@external
def margin_params() -> (uint256, uint256):
    """
    @notice The initial-margin terms: the haircut on positive unrealised PnL
            (equity_init = equity - upnl * haircut when upnl > 0) and the
            transfer margin ratio (withdrawals and transfers out need
            equity_init >= max(im_required, ratio * notional)).
    @return haircut, ratio (WAD).
    """
    word: uint256 = self._margin_word()
    return word & MASK128, word >> 128


@view
@external
def call_params() -> (uint256, uint256, uint256):
    """
    @notice The margin-call band: call buffer, fee share, fraction (WAD).
    """
    word: uint256 = self._call_word()
    return word & MASK64, (word >> 64) & MASK64, word >> 128


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
    margin_word: uint256 = 0
    call_word: uint256 = 0
    margin_word, call_word = staticcall IEngineStore(self.engine).margin_words()
    extcall IEngineStore(self.engine).store_globals(
        params.buffer | (params.liquidator_share << 128),
        params.reward_floor | (params.reward_cap << 128),
        staticcall IEngineStore(self.engine).reserve_factor(),
        margin_word,
        call_word,
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
    margin_word: uint256 = 0
    call_word: uint256 = 0
    margin_word, call_word = staticcall IEngineStore(self.engine).margin_words()
    self._store_globals(reserve_factor, margin_word, call_word)
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
    self._store_globals(
        staticcall IEngineStore(self.engine).reserve_factor(),
        upnl_haircut | (transfer_margin_ratio << 128),
        self._call_word(),
    )
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
#                             Collateral assets
# --------------------------------------------------------------------------

@external
def list_collateral(
    asset: address,
    feed: address,
    heartbeat: uint256,
    min_price: uint256,
    max_price: uint256,
    params: ICollateralManager.CollateralParams,
    vault: bool,
    max_rate_growth: uint256,
):
    """
    @notice List a collateral asset in the engine's CollateralManager
            (docs/collateral.md section 2): a plain ERC-20 priced by its
            Chainlink feed, or (`vault`) an ERC-4626 share priced by its
            underlying's feed times its share rate, which rises at most
            `max_rate_growth` per second.
    @dev DEFAULT_ADMIN only. Bounds: a non-zero asset not listed yet, token
         (and a vault's underlying) decimals <= 18, the oracle as for
         markets, params as in `set_collateral_params`, 0 < max_rate_growth
         <= `MAX_RATE_GROWTH` for a vault and 0 for a plain token. The
         manager refuses the settlement asset and a 17th asset. Rebasing
         tokens must not be listed (policy; the contract cannot tell).
    @param asset The token (an ERC-4626 share when `vault`).
    @param feed AggregatorV3Interface of the token (of the underlying for a vault share) in USD.
    @param heartbeat Seconds a round stays valid.
    @param min_price Lowest valid feed price (WAD).
    @param max_price Highest valid feed price (WAD).
    @param params Weights, discount, supply cap and the enable flag.
    @param vault True for an ERC-4626 share.
    @param max_rate_growth Fastest rise of the share rate (WAD per second); 0 for a plain token.
    """
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    assert asset != empty(address), "configurator: zero address"
    manager: address = self.collateral_manager
    count: uint256 = staticcall ICollateralStore(manager).asset_count()
    for id: uint256 in range(MAX_COLLATERAL_ASSETS):
        if id >= count:
            break
        assert staticcall ICollateralStore(manager).assets(id) != asset, "configurator: listed"
    vault_word: uint256 = 0
    if vault:
        assert max_rate_growth > 0 and max_rate_growth <= MAX_RATE_GROWTH, "configurator: bad collateral"
        vault_word = max_rate_growth | (self._scale(staticcall IERC4626(asset).asset()) << 64)
    else:
        assert max_rate_growth == 0, "configurator: bad collateral"
    token_scale: uint256 = self._scale(asset)
    weights: uint256 = self._weights_word(params, token_scale)
    oracle: uint256 = self._oracle_word(asset, feed, heartbeat, min_price, max_price)
    self._store_collateral(asset, oracle, min_price | (max_price << 128), weights, params, vault_word)


@external
def set_collateral_params(asset: address, params: ICollateralManager.CollateralParams):
    """
    @notice Change a listed collateral asset's weights, discount, supply cap
            and enable flag (disabling stops deposits only).
    @dev RISK_MANAGER only. Bounds: 0 < w_init <= w_maint <= 1, discount <=
         `MAX_DISCOUNT`, w_maint + discount <= 1, 0 < cap < 2**128. While
         the asset has deposits, a lower w_maint falls at most
         `MAX_WEIGHT_STEP` per change and at least `MIN_RATE_CHANGE_DELAY`
         after the asset's previous w_maint decrease; rises and the other
         fields apply at once. Oracle and vault terms are kept. Reverts
         "collateral: unknown asset" for an asset not listed.
    @param asset The listed token.
    @param params The new parameters.
    """
    self._check_role(RISK_MANAGER_ROLE)
    manager: address = self.collateral_manager
    oracle: uint256 = 0
    bounds: uint256 = 0
    weights: uint256 = 0
    limits: uint256 = 0
    vault_word: uint256 = 0
    rate: uint256 = 0
    oracle, bounds, weights, limits, vault_word, rate = staticcall ICollateralStore(manager).asset_words(asset)
    old_maint: uint256 = (weights >> 64) & MASK64
    if params.w_maint < old_maint:
        # Every decrease is timed; those that hit deposits are bounded.
        id: uint256 = staticcall ICollateralStore(manager).asset_id(asset)
        if staticcall ICollateralStore(manager).total_deposits(id) > 0:
            assert (
                block.timestamp >= self.collateral_changed_at[asset] + MIN_RATE_CHANGE_DELAY
            ), "configurator: too soon"
            assert old_maint - params.w_maint <= MAX_WEIGHT_STEP, "configurator: weight step"
        self.collateral_changed_at[asset] = block.timestamp
    self._store_collateral(asset, oracle, bounds, self._weights_word(params, weights >> 192), params, vault_word)


@external
def set_collateral_oracle(asset: address, feed: address, heartbeat: uint256, min_price: uint256, max_price: uint256):
    """
    @notice Replace a listed collateral asset's price feed and its validity
            bounds (for a vault share, the feed of its underlying).
    @dev DEFAULT_ADMIN only. Bounds as for markets. Weights, limits and
         vault terms are kept. Reverts "collateral: unknown asset" for an
         asset not listed.
    @param asset The listed token.
    @param feed AggregatorV3Interface in USD.
    @param heartbeat Seconds a round stays valid.
    @param min_price Lowest valid feed price (WAD).
    @param max_price Highest valid feed price (WAD).
    """
    self._check_role(access_control.DEFAULT_ADMIN_ROLE)
    manager: address = self.collateral_manager
    oracle: uint256 = 0
    bounds: uint256 = 0
    weights: uint256 = 0
    limits: uint256 = 0
    vault_word: uint256 = 0
    rate: uint256 = 0
    oracle, bounds, weights, limits, vault_word, rate = staticcall ICollateralStore(manager).asset_words(asset)
    extcall ICollateralStore(manager).store_asset(
        asset,
        self._oracle_word(asset, feed, heartbeat, min_price, max_price),
        min_price | (max_price << 128),
        weights,
        limits,
        vault_word,
    )


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
    # Read back from the engine, so that a successor configurator keeps it.
    return (staticcall IEngineStore(self.engine).margin_words())[0]


@view
@internal
def _call_word() -> uint256:
    return (staticcall IEngineStore(self.engine).margin_words())[1]


@internal
def _store_globals(reserve_factor: uint256, margin_word: uint256, call_word: uint256):
    # The liquidation words as they are, with new reserve factor, margin and call words.
    p: IMarginEngine.LiquidationParams = staticcall IEngineStore(self.engine).liquidation_params()
    extcall IEngineStore(self.engine).store_globals(
        p.buffer | (p.liquidator_share << 128),
        p.reward_floor | (p.reward_cap << 128),
        reserve_factor,
        margin_word,
        call_word,
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


@view
@internal
def _scale(token: address) -> uint256:
    """
    @dev 10**(18 - decimals) of an ERC-20 with at most 18 decimals.
    """
    decimals: uint256 = convert(staticcall AggregatorDecimals(token).decimals(), uint256)
    assert decimals <= MAX_TOKEN_DECIMALS, "configurator: decimals"
    return 10 ** (18 - decimals)


@internal
def _oracle_word(asset: address, feed: address, heartbeat: uint256, min_price: uint256, max_price: uint256) -> uint256:
    """
    @dev Check a collateral asset's oracle as `_set_oracle` does a market's,
         log it, and return the manager's oracle word.
    """
    assert (
        heartbeat > 0 and heartbeat <= MAX_HEARTBEAT and min_price > 0 and min_price < max_price and max_price <= MASK128
    ), "configurator: bad oracle"
    decimals: uint256 = convert(staticcall AggregatorDecimals(feed).decimals(), uint256)
    assert decimals <= MAX_FEED_DECIMALS, "configurator: bad oracle"
    log ICollateralManager.CollateralOracleSet(
        asset=asset, feed=feed, heartbeat=heartbeat, min_price=min_price, max_price=max_price
    )
    return convert(convert(feed, uint160), uint256) | (heartbeat << 160) | (10 ** (18 - decimals) << 192)


@pure
@internal
def _weights_word(p: ICollateralManager.CollateralParams, token_scale: uint256) -> uint256:
    """
    @dev Check a collateral asset's parameters (docs/collateral.md section 2)
         and return the manager's weights word.
    """
    assert (
        p.w_init > 0
        and p.w_init <= p.w_maint
        and p.w_maint <= WAD
        and p.discount <= MAX_DISCOUNT
        and p.w_maint + p.discount <= WAD
        and p.cap > 0
        and p.cap <= MASK128
    ), "configurator: bad collateral"
    return p.w_init | (p.w_maint << 64) | (p.discount << 128) | (token_scale << 192)


@internal
def _store_collateral(
    asset: address,
    oracle: uint256,
    bounds: uint256,
    weights: uint256,
    p: ICollateralManager.CollateralParams,
    vault_word: uint256,
):
    """
    @dev Write a collateral asset's words into the manager and log its parameters.
    """
    limits: uint256 = p.cap
    if p.enabled:
        limits |= ENABLED_BIT
    extcall ICollateralStore(self.collateral_manager).store_asset(asset, oracle, bounds, weights, limits, vault_word)
    log ICollateralManager.CollateralParamsSet(
        asset=asset, w_init=p.w_init, w_maint=p.w_maint, discount=p.discount, cap=p.cap, enabled=p.enabled
    )


@view
@internal
def _check_market(market: uint256):
    assert market < staticcall IEngineStore(self.engine).market_count(), "configurator: unknown market"


@view
@internal
def _has_open_interest(market: uint256) -> bool:
    """
    @dev Without open interest no account holds the market: a tighter MM
         needs no ramp.
    """
    a: uint256 = 0
    b: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    oi: uint256 = 0
    e: uint256 = 0
    a, b, c, d, oi, e = staticcall IEngineStore(self.engine).market_words(market)
    return oi != 0


@view
@internal
def _ramp(market: uint256) -> (uint256, uint256, uint256, uint256):
    return staticcall IRiskStore(self.risk_model).mm_ramp(market)


@view
@internal
def _ramp_word(market: uint256) -> uint256:
    old: uint256 = 0
    new: uint256 = 0
    start: uint256 = 0
    end: uint256 = 0
    old, new, start, end = self._ramp(market)
    return old | (new << 64) | (start << 128) | (end << 192)


@view
@internal
def _flagged(market: uint256) -> bool:
    a: uint256 = 0
    b: uint256 = 0
    rates: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    e: uint256 = 0
    a, b, rates, c, d, e = staticcall IEngineStore(self.engine).market_words(market)
    return rates & RISK_FLAG != 0


@internal
def _use_risk_model(market: uint256):
    """
    @dev Flag the market in the engine's rates word (once): from now on its
         requirements come from the risk model.
    """
    a: uint256 = 0
    b: uint256 = 0
    rates: uint256 = 0
    limits: uint256 = 0
    c: uint256 = 0
    funding: uint256 = 0
    a, b, rates, limits, c, funding = staticcall IEngineStore(self.engine).market_words(market)
    if rates & RISK_FLAG != 0:
        return
    self._set_market_params(
        market,
        IMarginEngine.MarketParams(
            imr=rates & MASK63,
            mmr=(rates >> 64) & MASK64,
            fee_rate=(rates >> 128) & MASK64,
            liq_fee=rates >> 192,
            max_oi=limits & MASK128,
            min_notional=limits >> 128,
            funding_rate_max=funding >> 192,
        ),
        self._ramp_word(market),
        True,
    )


@internal
def _set_market_params(market: uint256, p: IMarginEngine.MarketParams, mm_ramp: uint256, flag: bool):
    self._check_bounds(p)
    flagged: bool = flag
    if mm_ramp != self._ramp_word(market):
        # MM ramps live in the risk model, which the engine consults for
        # flagged markets only.
        flagged = True
        extcall IRiskStore(self.risk_model).store_mm_ramp(market, mm_ramp)
    im_field: uint256 = p.imr
    if flagged:
        im_field |= RISK_FLAG
    extcall IEngineStore(self.engine).store_market_params(
        market,
        im_field | (p.mmr << 64) | (p.fee_rate << 128) | (p.liq_fee << 192),
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
