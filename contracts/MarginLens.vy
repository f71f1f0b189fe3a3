# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title MarginLens
@notice Read-only views over a MarginEngine that would not fit in the
        engine's 24,576 bytes: decoded market configuration and state, a
        sub-account's open markets and mode, and liquidation prices.
@dev    Stateless; it reads only the engine's public views, so it can be
        redeployed at will. Nothing here can stop new risk or exits: it has
        no state-changing function.
"""

from .interfaces import IMarginEngine

WAD: constant(uint256) = 10**18
MASK16: constant(uint256) = 2**16 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK160: constant(uint256) = 2**160 - 1
MAX_POSITIONS: constant(uint256) = 8


interface IEngineWords:
    def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def account_meta(owner: address, sub: uint16) -> uint256: view
    def oracle_price(market: uint256) -> (uint256, bool): view


# @dev The engine read by every view.
ENGINE: public(immutable(address))


@deploy
def __init__(engine: address):
    """
    @notice Deploy a lens over `engine`.
    @param engine The MarginEngine.
    """
    ENGINE = engine


@view
@external
def market_params(market: uint256) -> IMarginEngine.MarketParams:
    """
    @notice A market's risk parameters.
    @param market The market id.
    @return The parameters.
    """
    words: uint256[6] = self._words(market)
    return IMarginEngine.MarketParams(
        imr=words[2] & MASK64,
        mmr=(words[2] >> 64) & MASK64,
        fee_rate=(words[2] >> 128) & MASK64,
        liq_fee=words[2] >> 192,
        max_oi=words[3] & MASK128,
        min_notional=words[3] >> 128,
        funding_rate_max=words[5] >> 192,
    )


@view
@external
def oracle_config(market: uint256) -> IMarginEngine.OracleConfig:
    """
    @notice A market's feed, heartbeat, feed decimals and price bounds.
    @param market The market id.
    @return The oracle configuration.
    """
    words: uint256[6] = self._words(market)
    multiplier: uint256 = words[0] >> 192
    digits: uint256 = 0
    for i: uint256 in range(18):
        if multiplier <= 1:
            break
        multiplier //= 10
        digits += 1
    return IMarginEngine.OracleConfig(
        feed=convert(convert(words[0] & MASK160, uint160), address),
        heartbeat=(words[0] >> 160) & MASK32,
        decimals=18 - digits,
        min_price=words[1] & MASK128,
        max_price=words[1] >> 128,
    )


@view
@external
def market_state(market: uint256) -> IMarginEngine.MarketState:
    """
    @notice A market's open interest and stored funding index.
    @param market The market id.
    @return Long and short OI (base units), index and last accrual time.
    """
    words: uint256[6] = self._words(market)
    return IMarginEngine.MarketState(
        long_oi=words[4] & MASK128,
        short_oi=words[4] >> 128,
        funding_index=convert(convert((words[5] & MASK128) << 128, bytes32), int256) >> 128,
        last_funding_time=(words[5] >> 128) & MASK64,
    )


@view
@external
def open_markets(owner: address, sub: uint16) -> DynArray[uint256, MAX_POSITIONS]:
    """
    @notice Market ids in which the sub-account has a position.
    @param owner The account owner.
    @param sub The sub-account.
    @return The market ids.
    """
    meta: uint256 = staticcall IEngineWords(ENGINE).account_meta(owner, sub)
    result: DynArray[uint256, MAX_POSITIONS] = []
    for i: uint256 in range(MAX_POSITIONS):
        if i >= meta & 255:
            break
        result.append((meta >> (16 + 16 * i)) & MASK16)
    return result


@view
@external
def margin_mode(owner: address, sub: uint16) -> bool:
    """
    @notice True when the sub-account is isolated.
    @param owner The account owner.
    @param sub The sub-account.
    @return The isolated flag.
    """
    return (staticcall IEngineWords(ENGINE).account_meta(owner, sub)) & 256 != 0


@view
@external
def liquidation_price(owner: address, sub: uint16, market: uint256) -> uint256:
    """
    @notice The price of `market` at which the account reaches its
            maintenance margin, other prices unchanged.
    @dev slack = equity_maint - mm_required;
         long:  P - slack * WAD / (|s| (1 - mmr)),
         short: P + slack * WAD / (|s| (1 + mmr)), floored (docs/engine-spec.md).
         Ignores rounding and funding accrued later. 0 when there is none or
         a price is invalid.
    @param owner The account owner.
    @param sub The sub-account.
    @param market The market id.
    @return Price (WAD), or 0.
    """
    pos: IMarginEngine.Position = staticcall IMarginEngine(ENGINE).position(owner, sub, market)
    if pos.size == 0 or not pos.price_ok:
        return 0
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    if not state.prices_ok:
        return 0
    price: uint256 = 0
    ok: bool = False
    price, ok = staticcall IEngineWords(ENGINE).oracle_price(market)
    mmr: uint256 = (self._words(market)[2] >> 64) & MASK64
    slack: int256 = state.equity_maint - convert(state.mm_required, int256)
    result: int256 = 0
    if pos.size > 0:
        denom: int256 = pos.size * convert(WAD - mmr, int256) // 10**18
        if denom == 0:
            return 0
        result = convert(price, int256) - self._floor_div(slack * 10**18, denom)
    else:
        denom: int256 = -pos.size * convert(WAD + mmr, int256) // 10**18
        if denom == 0:
            return 0
        result = convert(price, int256) + self._floor_div(slack * 10**18, denom)
    if result <= 0:
        return 0
    return convert(result, uint256)


@view
@internal
def _words(market: uint256) -> uint256[6]:
    a: uint256 = 0
    b: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    e: uint256 = 0
    f: uint256 = 0
    a, b, c, d, e, f = staticcall IEngineWords(ENGINE).market_words(market)
    return [a, b, c, d, e, f]


@pure
@internal
def _floor_div(x: int256, d: int256) -> int256:
    # floor(x / d) for d > 0 (signed // truncates toward zero)
    q: int256 = x // d
    if x < 0 and q * d != x:
        q -= 1
    return q
