# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title RiskModel
@notice The volatility margin and the size tiers of a MarginEngine's markets:
        an on-chain EWMA of each market's squared oracle returns, updated at
        most once per epoch, sets the market's base IM rate
        (`clamp(z * sigma * sqrt(horizon), floor, cap)`) at once and its
        MM rate through a ramp; tiers raise the rate of the notional above
        each bracket edge, marginally, like tax brackets.
@dev    The engine asks `requirements` for every position in a market whose
        rates word has `RISK_BIT` set, and calls `sample` with the valid
        price of every trade and liquidation there. Parameters are written by
        the engine's `EngineConfigurator` alone, which holds the roles and
        checks the bounds. The exact integer math, with its rounding, is
        specified in `docs/risk-model.md` (sections 3, 4, 10) and mirrored by
        `margin_engine/model.py` and `margin_engine/volatility.py`.
"""


interface IEngine:
    def oracle_price(market: uint256) -> (uint256, bool): view


# --------------------------------------------------------------------------
#                                 Constants
# --------------------------------------------------------------------------

WAD: constant(uint256) = 10**18
MASK32: constant(uint256) = 2**32 - 1
MASK63: constant(uint256) = 2**63 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK192: constant(uint256) = 2**192 - 1
MAX_TIERS: public(constant(uint256)) = 4
# A sampled return's magnitude is clamped at 1,000 %.
MAX_RETURN: constant(uint256) = 10 * 10**18


# --------------------------------------------------------------------------
#                                  Events
# --------------------------------------------------------------------------

event VolatilityUpdated:
    market: indexed(uint256)
    var: uint256
    anchor_price: uint256
    im_rate: uint256
    mm_rate_from: uint256
    mm_rate_to: uint256
    ramp_start: uint256
    ramp_end: uint256

event TiersRamp:
    market: indexed(uint256)
    old_tiers: uint256
    new_tiers: uint256
    ramp_start: uint256
    ramp_end: uint256


# --------------------------------------------------------------------------
#                                  Storage
# --------------------------------------------------------------------------

# @dev The engine whose markets these are (set once by the configurator).
engine: public(address)
# @dev The only writer of parameters.
configurator: public(address)
# @dev How long a rise of a volatility MM rate or a tier schedule ramps in (s).
ramp_duration: public(uint256)

# @dev var (64 bits, WAD per second) | next sample time << 64 (64 bits)
#      | anchor price << 128; zero = no volatility margin
_vol_state: HashMap[uint256, uint256]
# @dev decay | z << 64 | epoch << 128 (32 bits) | horizon << 160 (32 bits)
_vol_params: HashMap[uint256, uint256]
# @dev floor | cap << 64 | mm_fraction << 128, each WAD
_vol_limits: HashMap[uint256, uint256]
# @dev im rate | mm from << 64 | mm to << 128 | ramp start << 192 | end << 224
_vol_rates: HashMap[uint256, uint256]
# @dev edges (4 x 32 bits, whole settlement units) | multipliers << 128
#      (4 x 16 bits, percent) | ramp start << 192 | ramp end << 224
_tiers: HashMap[uint256, uint256]
# @dev The schedule (bits 0-191) MM ramps away from until the ramp's end.
_old_tiers: HashMap[uint256, uint256]
# @dev A rise of the engine's static mmr, read as a linear interpolation:
#      old mmr | new mmr << 64 | start << 128 | end << 192; 0 = none
_mm_ramps: HashMap[uint256, uint256]


@deploy
def __init__(configurator: address):
    """
    @param configurator The `EngineConfigurator` that writes parameters and
           names the engine.
    """
    assert configurator != empty(address), "risk: zero address"
    self.configurator = configurator


# --------------------------------------------------------------------------
#                        Anyone: sampling the price
# --------------------------------------------------------------------------

@external
def update_volatility(market: uint256):
    """
    @notice Sample `market`'s oracle price into its volatility estimate. At
            most one sample per epoch counts; a call within the epoch of the
            last sample changes nothing.
    @dev Keepers call this every epoch (trades and liquidations of the market
         sample too). Within the epoch of the last sample it returns at once;
         otherwise it reverts unless the engine reports a valid price.
    @param market The market id.
    """
    state: uint256 = self._vol_state[market]
    assert state != 0, "risk: no volatility"
    if block.timestamp < (state >> 64) & MASK64:
        return
    price: uint256 = 0
    ok: bool = False
    price, ok = staticcall IEngine(self.engine).oracle_price(market)
    assert ok, "risk: price"
    self._sample(market, price)


@external
def sample(market: uint256, price: uint256):
    """
    @notice The engine's sample at the valid price of a trade or liquidation.
    @dev Cheap when there is nothing to do: one slot read.
    """
    assert msg.sender == self.engine, "risk: not the engine"
    self._sample(market, price)


# --------------------------------------------------------------------------
#                      Configurator: parameters
# --------------------------------------------------------------------------

@external
def set_engine(engine: address):
    """
    @notice Name the engine, at the configurator's `set_engine`: once, or
            again with the same engine (a successor configurator connecting).
    """
    self._only_configurator()
    assert self.engine == empty(address) or self.engine == engine, "risk: engine set"
    self.engine = engine


@external
def set_configurator(configurator: address):
    """
    @notice Hand governance to another configurator (its `migrate`).
    """
    self._only_configurator()
    assert configurator != empty(address), "risk: zero address"
    self.configurator = configurator


@external
def store_ramp_duration(duration: uint256):
    self._only_configurator()
    self.ramp_duration = duration


@external
def store_mm_ramp(market: uint256, ramp: uint256):
    """
    @notice A rise of the market's static maintenance rate (the engine's
            `mmr`, already the new one): until `end` the rate in force is
            `old + (new - old) * (now - start) / (end - start)`, rounded down.
    """
    self._only_configurator()
    self._mm_ramps[market] = ramp


@external
def store_volatility(market: uint256, params: uint256, limits: uint256, seed: uint256, ramp: bool):
    """
    @notice Set (or, all zero, remove) a market's volatility parameters.
    @dev A non-zero `seed` replaces the variance; the anchor is always
         cleared, so the next valid price starts a new sample series. The
         IM rate follows at once, a higher MM rate ramps in (10.1) when
         `ramp` (the market has open interest).
    """
    self._only_configurator()
    self._vol_params[market] = params
    self._vol_limits[market] = limits
    if params == 0:
        self._vol_state[market] = 0
        self._vol_rates[market] = 0
        log VolatilityUpdated(
            market=market, var=0, anchor_price=0, im_rate=0, mm_rate_from=0, mm_rate_to=0, ramp_start=0, ramp_end=0
        )
        return
    var: uint256 = self._vol_state[market] & MASK64
    if seed != 0:
        var = seed
    assert var != 0, "risk: seed"
    self._vol_state[market] = var
    duration: uint256 = 0
    if ramp:
        duration = self.ramp_duration
    self._set_vol_rates(market, var, 0, params, limits, duration)


@external
def store_tiers(market: uint256, schedule: uint256, ramp: bool):
    """
    @notice Replace a market's tier schedule (bits 0-191 of the tiers word).
    @dev IM uses it at once; with `ramp` (the market has open interest) MM
         moves from the old schedule's to the new one's linearly until
         `now + ramp_duration`.
    """
    self._only_configurator()
    word: uint256 = self._tiers[market]
    assert block.timestamp >= word >> 224, "risk: ramp on"
    end: uint256 = block.timestamp
    if ramp:
        end += self.ramp_duration
    self._old_tiers[market] = word & MASK192
    self._tiers[market] = schedule | (block.timestamp << 192) | (end << 224)
    log TiersRamp(market=market, old_tiers=word & MASK192, new_tiers=schedule, ramp_start=block.timestamp, ramp_end=end)


# --------------------------------------------------------------------------
#                                  Views
# --------------------------------------------------------------------------

@view
@external
def requirements(market: uint256, notional: uint256, rates: uint256) -> (uint256, uint256):
    """
    @notice The initial and maintenance requirement of a position of
            `notional` (WAD USD) in `market`, given the engine's rates word
            with the static MM rate in force.
    @return (im, mm), WAD USD, each rounded up once.
    """
    base_im: uint256 = 0
    base_mm: uint256 = 0
    base_im, base_mm = self._base_rates(market, rates)
    word: uint256 = self._tiers[market]
    im: uint256 = self._tiered(notional, base_im, word)
    mm: uint256 = self._tiered(notional, base_mm, word)
    end: uint256 = word >> 224
    if block.timestamp < end:
        start: uint256 = (word >> 192) & MASK32
        old: uint256 = self._tiered(notional, base_mm, self._old_tiers[market])
        if mm >= old:
            mm = old + (mm - old) * (block.timestamp - start) // (end - start)
        else:
            mm = old - self._div_up((old - mm) * (block.timestamp - start), end - start)
    return im, mm


@view
@external
def base_rates(market: uint256, rates: uint256) -> (uint256, uint256):
    """
    @notice The market's base IM and MM rates now (the first bracket's),
            given the engine's rates word with the static MM rate in force.
    """
    return self._base_rates(market, rates)


@view
@external
def mm_ramp(market: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @notice The ramp of a market's static maintenance rate (all zero when none).
    @return old, new (WAD rates), start, end (timestamps).
    """
    ramp: uint256 = self._mm_ramps[market]
    return ramp & MASK64, (ramp >> 64) & MASK64, (ramp >> 128) & MASK64, ramp >> 192


@view
@external
def volatility(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice A market's volatility state and the rates it gives now.
    @return (var per second WAD, daily sigma WAD (up), anchor price,
            next sample time, IM rate, MM rate in force, MM rate target,
            MM ramp end); all zero without volatility.
    """
    state: uint256 = self._vol_state[market]
    rates: uint256 = self._vol_rates[market]
    var: uint256 = state & MASK64
    return (
        var,
        self._sqrt_up(var * 86_400 * WAD),
        state >> 128,
        (state >> 64) & MASK64,
        rates & MASK64,
        self._vol_mm(rates),
        (rates >> 128) & MASK64,
        rates >> 224,
    )


@view
@external
def volatility_params(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @return (epoch s, decay WAD, z WAD, horizon s, floor, cap, mm_fraction WAD).
    """
    params: uint256 = self._vol_params[market]
    limits: uint256 = self._vol_limits[market]
    return (
        (params >> 128) & MASK32,
        params & MASK64,
        (params >> 64) & MASK64,
        params >> 160,
        limits & MASK64,
        (limits >> 64) & MASK64,
        limits >> 128,
    )


@view
@external
def tiers(market: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @notice A market's tier schedule word, the schedule MM ramps away from,
            and the ramp's start and end (edges: whole settlement units, 32
            bits each; multipliers: percent of the base rate, 16 bits each
            from bit 128).
    """
    word: uint256 = self._tiers[market]
    return word & MASK192, self._old_tiers[market], (word >> 192) & MASK32, word >> 224


# --------------------------------------------------------------------------
#                                 Internal
# --------------------------------------------------------------------------

@view
@internal
def _only_configurator():
    assert msg.sender == self.configurator, "risk: not the configurator"


@view
@internal
def _base_rates(market: uint256, rates: uint256) -> (uint256, uint256):
    """
    @dev max(static imr, volatility IM), max(static mmr in force, volatility MM in force).
    """
    mmr: uint256 = (rates >> 64) & MASK64
    ramp: uint256 = self._mm_ramps[market]
    if block.timestamp < ramp >> 192:
        old: uint256 = ramp & MASK64
        mmr = old + (mmr - old) * (block.timestamp - ((ramp >> 128) & MASK64)) // ((ramp >> 192) - ((ramp >> 128) & MASK64))
    vol: uint256 = self._vol_rates[market]
    return max(rates & MASK63, vol & MASK64), max(mmr, self._vol_mm(vol))


@view
@internal
def _vol_mm(rates: uint256) -> uint256:
    """
    @dev The volatility MM rate in force: from + (to - from) * elapsed / span,
         rounded down.
    """
    to: uint256 = (rates >> 128) & MASK64
    end: uint256 = rates >> 224
    if block.timestamp >= end:
        return to
    start: uint256 = (rates >> 192) & MASK32
    begin: uint256 = (rates >> 64) & MASK64
    return begin + (to - begin) * (block.timestamp - start) // (end - start)


@pure
@internal
def _tiered(notional: uint256, base: uint256, word: uint256) -> uint256:
    """
    @dev ceil(sum_i rate_i * seg_i / WAD): rate_0 = base, rate_i =
         min(ceil(base * m_i / 100), WAD) above edge i (10.2).
    """
    total: uint256 = 0
    lower: uint256 = 0
    rate: uint256 = base
    for i: uint256 in range(MAX_TIERS + 1):
        upper: uint256 = max_value(uint256)
        if i < MAX_TIERS:
            edge: uint256 = (word >> (32 * i)) & MASK32
            if edge != 0:
                upper = edge * WAD
        if notional <= upper:
            return self._div_up(total + rate * (notional - lower), WAD)
        total += rate * (upper - lower)
        lower = upper
        rate = min(self._div_up(base * ((word >> (128 + 16 * i)) & 65535), 100), WAD)
    return self._div_up(total, WAD)  # unreachable: the last bracket is unbounded


@internal
def _sample(market: uint256, price: uint256):
    """
    @dev The update of docs/risk-model.md section 3, then the rates (10.1).
    """
    state: uint256 = self._vol_state[market]
    if state == 0 or block.timestamp < (state >> 64) & MASK64:
        return
    params: uint256 = self._vol_params[market]
    epoch: uint256 = (params >> 128) & MASK32
    k: uint256 = block.timestamp // epoch
    var: uint256 = state & MASK64
    anchor: uint256 = state >> 128
    if anchor != 0:
        n: uint256 = k + 1 - ((state >> 64) & MASK64) // epoch
        r: uint256 = min(self._div_up(self._diff(price, anchor) * WAD, anchor), MAX_RETURN)
        x: uint256 = self._div_up(r * r, WAD * n * epoch)
        d: uint256 = self._wad_pow(params & MASK64, n, x < var)
        var = self._div_up(var * d + x * (WAD - d), WAD)
    self._vol_state[market] = var | (((k + 1) * epoch) << 64) | (price << 128)
    if anchor != 0:
        self._set_vol_rates(market, var, price, params, self._vol_limits[market], self.ramp_duration)


@internal
def _set_vol_rates(market: uint256, var: uint256, price: uint256, params: uint256, limits: uint256, duration: uint256):
    """
    @dev im = clamp(ceil(z * sqrt_up(var * horizon * WAD) / WAD), floor, cap),
         target = ceil(im * mm_fraction / WAD); a target above the MM rate in
         force ramps in from it, a lower one applies at once.
    """
    im: uint256 = min(
        max(
            self._div_up(((params >> 64) & MASK64) * self._sqrt_up(var * (params >> 160) * WAD), WAD),
            limits & MASK64,
        ),
        (limits >> 64) & MASK64,
    )
    target: uint256 = self._div_up(im * (limits >> 128), WAD)
    current: uint256 = self._vol_mm(self._vol_rates[market])
    begin: uint256 = target
    end: uint256 = block.timestamp
    if target > current:
        begin = current
        end += duration
    self._vol_rates[market] = im | (begin << 64) | (target << 128) | (block.timestamp << 192) | (end << 224)
    log VolatilityUpdated(
        market=market,
        var=var,
        anchor_price=price,
        im_rate=im,
        mm_rate_from=begin,
        mm_rate_to=target,
        ramp_start=block.timestamp,
        ramp_end=end,
    )


@pure
@internal
def _wad_pow(base: uint256, n: uint256, up: bool) -> uint256:
    """
    @dev (base / WAD) ** n by squaring, every product rounded the same way.
    """
    result: uint256 = WAD
    b: uint256 = base
    e: uint256 = n
    for i: uint256 in range(64):
        if e & 1 == 1:
            result = self._mul_wad(result, b, up)
        e = e >> 1
        if e == 0:
            break
        b = self._mul_wad(b, b, up)
    return result


@pure
@internal
def _mul_wad(a: uint256, b: uint256, up: bool) -> uint256:
    if up:
        return self._div_up(a * b, WAD)
    return a * b // WAD


@pure
@internal
def _sqrt_up(a: uint256) -> uint256:
    root: uint256 = isqrt(a)
    if root * root < a:
        return root + 1
    return root


@pure
@internal
def _div_up(x: uint256, d: uint256) -> uint256:
    return (x + d - 1) // d


@pure
@internal
def _diff(a: uint256, b: uint256) -> uint256:
    if a > b:
        return a - b
    return b - a
