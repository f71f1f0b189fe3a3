"""Unit and property tests of the reference model (``margin_engine.model``).

Plain pytest + hypothesis: no Ape fixture, no chain. Expected numbers are
written out by hand (the comment above each one shows the arithmetic).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    MAX_POSITIONS,
    WAD,
    AccountState,
    Engine,
    LiquidationParams,
    Market,
    MarketParams,
    ModelRevert,
    Position,
    account_state,
    accrue,
    accrue_index,
    average_entry,
    ceil_div,
    current_index,
    floor_div,
    funding_rate,
    funding_tokens,
    liquidation_notional,
    liquidation_price,
    liquidation_size,
    mul_div_down,
    mul_div_up,
    penalty_tokens,
    position_value,
    realised_pnl,
    reserved_tokens,
    reward_split,
    trade_fee_tokens,
)

USD = WAD  # one dollar in WAD
ETH = WAD  # one base unit (18 decimals)
UINT_MAX = 2**256 - 1

PARAMS = MarketParams(
    imr=WAD // 10,  # 10%
    mmr=WAD // 20,  # 5%
    fee_rate=WAD // 1000,  # 0.1%
    liq_fee=WAD // 100,  # 1%
    max_oi=1_000 * ETH,
    min_notional=10 * USD,
    funding_rate_max=10**12,  # 1e-6 per second at full skew
)
LIQ = LiquidationParams(buffer=WAD // 10, liquidator_share=WAD // 2, reward_floor=1_000_000, reward_cap=500_000_000)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_engine(decimals: int = 6, params: MarketParams = PARAMS, price: int = 2_000 * USD) -> Engine:
    """An engine with one market (id 0), vault capital and an insurance fund."""
    engine = Engine(token_decimals=decimals, liq_params=LIQ, reserve_factor=WAD // 2, now=1_000)
    engine.add_market(params, price)
    engine.vault_deposit(10**9 * 10**decimals)
    engine.fund_insurance(10**6 * 10**decimals)
    return engine


# --------------------------------------------------------------------------
#                              Rounding helpers
# --------------------------------------------------------------------------


def test_floor_div__rounds_toward_minus_infinity() -> None:
    assert floor_div(7, 2) == 3
    assert floor_div(-7, 2) == -4
    assert floor_div(-8, 2) == -4
    assert floor_div(-1, WAD) == -1
    assert floor_div(0, 5) == 0


def test_ceil_div__rounds_toward_plus_infinity() -> None:
    assert ceil_div(7, 2) == 4
    assert ceil_div(-7, 2) == -3
    assert ceil_div(-8, 2) == -4
    assert ceil_div(1, WAD) == 1
    assert ceil_div(-1, WAD) == 0
    assert ceil_div(0, 5) == 0


def test_mul_div__round_down_and_up() -> None:
    assert mul_div_down(7, 3, 2) == 10  # 21 / 2 = 10.5
    assert mul_div_up(7, 3, 2) == 11
    assert mul_div_down(6, 3, 2) == mul_div_up(6, 3, 2) == 9


@pytest.mark.parametrize("args", [(-1, 1, 1), (1, -1, 1), (1, 1, 0)])
def test_mul_div__bad_arguments__raise(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        mul_div_down(*args)
    with pytest.raises(ValueError):
        mul_div_up(*args)


@given(x=st.integers(-(2**255), 2**255), d=st.integers(1, 2**128))
def test_floor_ceil_div__bracket_the_quotient(x: int, d: int) -> None:
    lo, hi = floor_div(x, d), ceil_div(x, d)
    assert lo * d <= x < (lo + 1) * d
    assert (hi - 1) * d < x <= hi * d
    assert hi - lo == (0 if x % d == 0 else 1)


@given(a=st.integers(0, 2**128), b=st.integers(0, 2**128), d=st.integers(1, 2**128))
def test_mul_div__bracket_the_product(a: int, b: int, d: int) -> None:
    down, up = mul_div_down(a, b, d), mul_div_up(a, b, d)
    assert down * d <= a * b < (down + 1) * d
    assert (up - 1) * d < a * b <= up * d


# --------------------------------------------------------------------------
#                             Position valuation
# --------------------------------------------------------------------------


def test_position_value__long_in_profit_owing_funding() -> None:
    # 2 ETH long from 2,000, price 2,100, index moved +5 USD per ETH.
    pos = Position(size=2 * ETH, entry_price=2_000 * USD, funding_index=7 * USD)
    v = position_value(pos, 2_100 * USD, 12 * USD, PARAMS)
    assert v.notional == 4_200 * USD  # 2 x 2,100
    assert v.pnl == 200 * USD  # 2 x (2,100 - 2,000)
    assert v.funding == 10 * USD  # 2 x (12 - 7), owed
    assert v.upnl == 190 * USD
    assert v.im == 420 * USD  # 10% of 4,200
    assert v.mm == 210 * USD  # 5% of 4,200


def test_position_value__short_in_profit_receiving_funding() -> None:
    # 3 ETH short from 2,000, price 1,900, index moved +2 USD (shorts receive).
    pos = Position(size=-3 * ETH, entry_price=2_000 * USD, funding_index=0)
    v = position_value(pos, 1_900 * USD, 2 * USD, PARAMS)
    assert v.notional == 5_700 * USD
    assert v.pnl == 300 * USD  # -3 x (1,900 - 2,000)
    assert v.funding == -6 * USD  # -3 x 2: received
    assert v.upnl == 306 * USD
    assert v.im == 570 * USD
    assert v.mm == 285 * USD


def test_position_value__rounding_favours_the_protocol() -> None:
    # 3 wei short at a price of 0.666...667: notional 2.000...001 wei -> 3 wei (up);
    # pnl -3 x (P - 1.0) = 0.999...999 wei -> 0 (down);
    # funding -3 x (-1) = 3 / 1e18 wei -> 1 wei owed (up); margins 0.3 wei -> 1 (up).
    price = 666_666_666_666_666_667
    pos = Position(size=-3, entry_price=WAD, funding_index=0)
    v = position_value(pos, price, -1, PARAMS)
    assert v == (3, 0, 1, -1, 1, 1)
    # a 1-wei loss of value is a full wei: 1 x (1.0 - 2.0) / 1e18 = -1e-18 ... -> -1
    v = position_value(Position(size=1, entry_price=WAD + 1, funding_index=0), WAD, 0, PARAMS)
    assert v.pnl == -1


def test_account_state__sums_positions_and_scales_balance() -> None:
    markets = {
        0: Market(params=PARAMS, price=2_100 * USD, long_oi=2 * ETH, last_funding_time=100),
        1: Market(params=PARAMS, price=1_900 * USD, short_oi=3 * ETH, last_funding_time=100),
    }
    positions = {
        0: Position(2 * ETH, 2_000 * USD, 0),
        1: Position(-3 * ETH, 2_000 * USD, 0),
    }
    # 1,000 USDC (6 decimals): 1e9 tokens x 1e12 = 1,000 USD; no time elapsed, no funding.
    state = account_state(1_000 * 10**6, positions, markets, 10**12, now=100)
    assert state.equity_maint == state.equity_init == (1_000 + 200 + 300) * USD
    assert state.im_required == (420 + 570) * USD
    assert state.mm_required == (210 + 285) * USD
    assert state.status == HEALTHY
    assert state.positions == 2


# --------------------------------------------------------------------------
#                              Status boundaries
# --------------------------------------------------------------------------


def _state_with_equity(equity: int) -> AccountState:
    """One 1 ETH long at 1,000 (IM 100 USD, MM 50 USD), an 18-decimal token, equity set exactly."""
    markets = {0: Market(params=PARAMS, price=1_000 * USD, long_oi=ETH)}
    positions = {0: Position(ETH, 1_000 * USD, 0)}
    return account_state(equity, positions, markets, scale=1, now=0)


@pytest.mark.parametrize(
    ("equity", "status"),
    [
        (100 * USD + 1, HEALTHY),
        (100 * USD, HEALTHY),  # exactly at IM
        (100 * USD - 1, MARGIN_CALL),  # one wei below IM
        (50 * USD, MARGIN_CALL),  # exactly at MM
        (50 * USD - 1, LIQUIDATABLE),  # one wei below MM
        (0, LIQUIDATABLE),
        (-1, BANKRUPT),
    ],
)
def test_status__boundaries(equity: int, status: int) -> None:
    state = _state_with_equity(equity)
    assert state.im_required == 100 * USD and state.mm_required == 50 * USD
    assert state.status == status


def test_status__no_positions() -> None:
    assert account_state(0, {}, {}, 10**12, 0).status == HEALTHY
    assert account_state(5, {}, {}, 10**12, 0).status == HEALTHY
    assert account_state(-1, {}, {}, 10**12, 0).status == BANKRUPT


def test_status__token_granularity() -> None:
    # 6-decimal token: one token unit is 1e12 wei of equity.
    markets = {0: Market(params=PARAMS, price=1_000 * USD, long_oi=ETH)}
    positions = {0: Position(ETH, 1_000 * USD, 0)}
    assert account_state(100 * 10**6, positions, markets, 10**12, 0).status == HEALTHY
    assert account_state(100 * 10**6 - 1, positions, markets, 10**12, 0).status == MARGIN_CALL


# --------------------------------------------------------------------------
#                                  Funding
# --------------------------------------------------------------------------


def test_funding__long_skew_raises_the_index() -> None:
    market = Market(params=PARAMS, price=2_000 * USD, long_oi=3 * ETH, short_oi=ETH, funding_index=5)
    # rate = floor(1e12 x 2 / 4) = 5e11; dI = 2,000e18 x 5e11 x 100 / 1e18 = 1e17
    assert funding_rate(market) == 5 * 10**11
    assert accrue_index(market, 100) == 5 + 10**17
    assert current_index(market, 100) == 5 + 10**17
    assert market.funding_index == 5 and market.last_funding_time == 0  # not written
    assert accrue(market, 100) == 5 + 10**17
    assert (market.funding_index, market.last_funding_time) == (5 + 10**17, 100)
    assert accrue(market, 100) == 5 + 10**17  # no time elapsed: unchanged


def test_funding__short_skew_lowers_the_index_rounding_down() -> None:
    market = Market(params=PARAMS, price=WAD, long_oi=1, short_oi=2)
    # rate = floor(1e12 x (-1) / 3) = -333,333,333,334 (toward -inf)
    assert funding_rate(market) == -333_333_333_334
    # dI = floor(1e18 x -333,333,333,334 x 1 / 1e18)
    assert accrue_index(market, 1) == -333_333_333_334


def test_funding__no_open_interest__index_stays_but_time_moves() -> None:
    market = Market(params=PARAMS, price=WAD, funding_index=42, last_funding_time=10)
    assert accrue(market, 1_000) == 42
    assert market.last_funding_time == 1_000


def test_funding_tokens__payer_rounds_up_receiver_rounds_down() -> None:
    # owed 1.5e12 + 1 wei -> 2 tokens (6 decimals); received 1.5e12 wei -> 1 token
    assert funding_tokens(Position(ETH, 0, 0), 1_500_000_000_001, 10**12) == 2
    assert funding_tokens(Position(-ETH, 0, 0), 1_500_000_000_000, 10**12) == -1


sizes = st.integers(1, 10**24)
prices = st.integers(WAD // 100, 10**5 * WAD)


@FAST
@given(
    longs=st.lists(sizes, min_size=1, max_size=6),
    shorts=st.lists(sizes, max_size=6),
    price=prices,
    elapsed=st.integers(1, 30 * 86_400),
    rate_max=st.integers(1, 10**14),
    decimals=st.sampled_from([6, 8, 18]),
)
def test_funding__longs_pay_when_longs_dominate(
    longs: list[int], shorts: list[int], price: int, elapsed: int, rate_max: int, decimals: int
) -> None:
    assume(sum(longs) > sum(shorts))
    params = MarketParams(WAD // 10, WAD // 20, 0, WAD // 100, 2**128, 0, rate_max)
    market = Market(params=params, price=price, long_oi=sum(longs), short_oi=sum(shorts), funding_index=-7)
    index = accrue_index(market, elapsed)
    assert index >= -7  # rate >= 0 with a long skew
    scale = 10 ** (18 - decimals)
    long_tokens = [funding_tokens(Position(s, price, -7), index, scale) for s in longs]
    short_tokens = [funding_tokens(Position(-s, price, -7), index, scale) for s in shorts]
    assert all(t >= 0 for t in long_tokens)  # longs pay...
    assert all(t <= 0 for t in short_tokens)  # ...shorts receive
    assert sum(long_tokens) >= -sum(short_tokens)


@FAST
@given(
    steps=st.lists(st.tuples(st.booleans(), sizes, st.integers(0, 86_400), prices), min_size=1, max_size=12),
    final_elapsed=st.integers(0, 86_400),
    rate_max=st.integers(0, 10**14),
    decimals=st.sampled_from([6, 8, 18]),
)
def test_funding__payers_pay_at_least_what_receivers_get(
    steps: list[tuple[bool, int, int, int]], final_elapsed: int, rate_max: int, decimals: int
) -> None:
    """Positions open one by one (funding accrues between openings, at moving
    prices, with the skew changing sign); at the end the tokens owed by payers
    cover the tokens received, because every interval's index move has the
    sign of that interval's skew."""
    scale = 10 ** (18 - decimals)
    params = MarketParams(WAD // 10, WAD // 20, 0, WAD // 100, 2**128, 0, rate_max)
    market = Market(params=params, price=WAD)
    book: list[Position] = []
    now = 0
    for is_long, size, dt, price in steps:
        now += dt
        before = market.funding_index
        skew = market.long_oi - market.short_oi
        index = accrue(market, now)
        assert (index - before) * skew >= 0  # the index moves with the skew's sign
        if skew < 0 and dt > 0 and rate_max > 0:
            assert index < before  # the floor makes any short skew charge shorts
        book.append(Position(size if is_long else -size, price, index))
        if is_long:
            market.long_oi += size
        else:
            market.short_oi += size
        market.price = price
    index = accrue(market, now + final_elapsed)
    owed = [funding_tokens(pos, index, scale) for pos in book]
    paid = sum(t for t in owed if t > 0)
    received = -sum(t for t in owed if t < 0)
    assert paid >= received


# --------------------------------------------------------------------------
#                                Trade pieces
# --------------------------------------------------------------------------


def test_average_entry__rounds_up_for_longs_down_for_shorts() -> None:
    # (1 x 1 + 2 x 2) / 3 = 5/3 wei
    assert average_entry(1, 1, 2, 2) == 2
    assert average_entry(-1, 1, -2, 2) == 1
    assert average_entry(0, 0, 5 * ETH, 2_000 * USD) == 2_000 * USD
    # 1 ETH at 2,000 + 3 ETH at 2,100 -> 8,300 / 4 = 2,075
    assert average_entry(ETH, 2_000 * USD, 3 * ETH, 2_100 * USD) == 2_075 * USD


def test_realised_pnl__floors() -> None:
    assert realised_pnl(2 * ETH, 2_000 * USD, 2_100 * USD, ETH) == 100 * USD
    assert realised_pnl(-2 * ETH, 2_000 * USD, 2_100 * USD, ETH) == -100 * USD
    assert realised_pnl(1, WAD + 1, WAD, 1) == -1  # 1e-18 wei loss -> -1 wei
    assert realised_pnl(1, WAD - 1, WAD, 1) == 0  # 1e-18 wei gain -> 0


def test_trade_fee_tokens__ceil() -> None:
    # 1 ETH x 2,000 x 0.1% = 2 USD = 2,000,000 tokens exactly
    assert trade_fee_tokens(-ETH, 2_000 * USD, WAD // 1000, 10**12) == 2_000_000
    # one more wei of size: 2.000000000000000002 USD... -> rounds up to the next token
    assert trade_fee_tokens(ETH + 1, 2_000 * USD, WAD // 1000, 10**12) == 2_000_001
    assert trade_fee_tokens(ETH, 2_000 * USD, 0, 10**12) == 0


def test_penalty_and_reward_split() -> None:
    # 2 ETH x 1,500 x 1% = 30 USD = 30,000,000 tokens
    assert penalty_tokens(2 * ETH, 1_500 * USD, WAD // 100, 10**12) == 30_000_000
    # half to the liquidator, half to insurance
    assert reward_split(30_000_000, LIQ) == (15_000_000, 15_000_000)
    # floor: 0.5 x 1,000 = 500 < 1,000,000 -> the floor, but never above the penalty
    assert reward_split(1_000, LIQ) == (1_000, 0)
    # floor between half and all of the penalty: 0.5 x 1,500,000 < 1,000,000 <= 1,500,000
    assert reward_split(1_500_000, LIQ) == (1_000_000, 500_000)
    # cap: 0.5 x 2e9 = 1e9 > 5e8
    assert reward_split(2 * 10**9, LIQ) == (500_000_000, 1_500_000_000)


def test_reserved_tokens() -> None:
    markets = {
        0: Market(params=PARAMS, price=2_000 * USD, long_oi=3 * ETH, short_oi=ETH),
        1: Market(params=PARAMS, price=WAD, long_oi=1, short_oi=0),
    }
    # |3 - 1| x 2,000 x 50% = 2,000 USD = 2e9 tokens; 1 wei x 1.0 x 50% -> 1 wei -> 1 token
    assert reserved_tokens(markets, 10**12, WAD // 2) == 2_000_000_001


# --------------------------------------------------------------------------
#                             Liquidation sizing
# --------------------------------------------------------------------------


def test_liquidation_size__hand_example() -> None:
    # 10 ETH long, price 1,000: notional 10,000, MM 500; equity 400 (18-decimal token).
    market = Market(params=PARAMS, price=1_000 * USD, long_oi=10 * ETH)
    pos = Position(10 * ETH, 1_000 * USD, 0)
    state = account_state(400 * USD, {0: pos}, {0: market}, 1, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (400 * USD, 500 * USD, LIQUIDATABLE)
    # target = 500 x 1.1 = 550; deficit = 150; denom = 5% x 1.1 - 1% = 4.5%
    # N = 150 / 0.045 = 3,333.33... -> 3333333333333333333334 wei; q = N / 1,000 rounded up
    # (+ the rounding allowance 3 * scale + 8 = 11 wei at scale 1: 150e18 + 11 wei)
    assert liquidation_notional(state, PARAMS, LIQ, 1) == 3_333_333_333_333_333_333_578
    q = liquidation_size(state, pos, market, LIQ, UINT_MAX, 1)
    assert q == 3_333_333_333_333_333_334
    # capped by the liquidator, leaving a remainder above min_notional
    assert liquidation_size(state, pos, market, LIQ, ETH, 1) == ETH


def test_liquidation_size__small_remainder_is_closed_too() -> None:
    market = Market(params=PARAMS, price=1_000 * USD, long_oi=ETH)
    # 1 ETH, equity 0: N = (50 x 1.1) / 0.045 = 1,222.2 > notional -> all of it
    pos = Position(ETH, 1_000 * USD, 0)
    state = account_state(0, {0: pos}, {0: market}, 1, 0)
    assert liquidation_size(state, pos, market, LIQ, UINT_MAX, 1) == ETH
    # 1.00999 ETH (1,009.99 USD, MM 50.4995, target 55.54945), equity 10.32445:
    # deficit 45.225 -> N = 1,005 -> q = 1.005 ETH, leaving 4.99 USD < 10: closed in full
    big = Position(1_009_990_000_000_000_000, 1_000 * USD, 0)
    market.long_oi = big.size
    state = account_state(10_324_450_000_000_000_000, {0: big}, {0: market}, 1, 0)
    # deficit + 11 wei -> N = 1,005 USD + 245 wei (11 / 0.045 rounded up)
    assert liquidation_notional(state, PARAMS, LIQ, 1) == 1_005 * USD + 245
    assert liquidation_size(state, big, market, LIQ, UINT_MAX, 1) == big.size
    # with min_notional 4.98 USD the remainder (4.98999... USD) is kept
    market.params = PARAMS.__class__(**{**vars(PARAMS), "min_notional": 4_980_000_000_000_000_000})
    assert liquidation_size(state, big, market, LIQ, UINT_MAX, 1) == 1_005_000_000_000_000_001


def test_liquidation_size__capped_remainder_below_min_notional__dust() -> None:
    market = Market(params=PARAMS, price=1_000 * USD, long_oi=ETH)
    pos = Position(ETH, 1_000 * USD, 0)
    state = account_state(0, {0: pos}, {0: market}, 1, 0)
    # leaving 0.005 ETH = 5 USD < 10 USD
    with pytest.raises(ModelRevert, match="engine: dust"):
        liquidation_size(state, pos, market, LIQ, ETH - 5 * 10**15, 1)
    # leaving exactly 10 USD is fine
    assert liquidation_size(state, pos, market, LIQ, ETH - 10**16, 1) == ETH - 10**16


@st.composite
def liquidatable_engines(draw: st.DrawFn) -> tuple[Engine, int]:
    """A random account ``("trader", 0)`` below maintenance (white-box setup:
    positions are written into the ledger with matching open interest)."""
    decimals = draw(st.sampled_from([6, 8, 18]))
    liq = LiquidationParams(
        buffer=draw(st.integers(0, WAD // 5)),
        liquidator_share=draw(st.integers(0, WAD)),
        reward_floor=draw(st.integers(0, 10**6)),
        reward_cap=draw(st.integers(10**6, 10**12)),
    )
    engine = Engine(token_decimals=decimals, liq_params=liq, now=1_000)
    engine.fund_insurance(draw(st.integers(1, 10**12)))
    # Vault capital well above any trader profit here: a short vault withholds
    # profit (VaultShortfall), which is tested on its own.
    engine.vault_deposit(10**15 * 10**decimals)
    acct = engine._account("trader", 0)
    for _ in range(draw(st.integers(1, 3))):
        mmr = draw(st.integers(WAD // 200, WAD // 5))
        params = MarketParams(
            imr=2 * mmr,
            mmr=mmr,
            fee_rate=0,
            liq_fee=draw(st.integers(0, mmr - 1)),
            max_oi=2**200,
            min_notional=draw(st.sampled_from([0, USD, 10 * USD])),
            funding_rate_max=draw(st.integers(0, 10**13)),
        )
        price = draw(prices)
        market_id = engine.add_market(params, price)
        notional_usd = draw(st.integers(1, 10**7))
        size = (notional_usd * WAD * WAD // price + draw(st.integers(0, 10**15))) * draw(st.sampled_from([1, -1]))
        entry = draw(st.integers(price // 2, price * 3 // 2))
        market = engine.markets[market_id]
        market.funding_index = draw(st.integers(-(10**18), 10**18))
        acct.positions[market_id] = Position(size, entry, draw(st.integers(-(10**18), 10**18)))
        market.long_oi = max(size, 0) + draw(sizes)
        market.short_oi = max(-size, 0) + draw(sizes)
    engine.advance(draw(st.integers(0, 86_400)))
    market_id = draw(st.sampled_from(sorted(acct.positions)))
    state = engine.account("trader", 0)
    m = state.mm_required
    # Choose the balance so that equity lands in [-M, M) (LIQUIDATABLE or BANKRUPT);
    # mostly where closing part of the chosen position reaches the target.
    market = engine.markets[market_id]
    denom = mul_div_down(market.params.mmr, WAD + liq.buffer, WAD) - market.params.liq_fee
    notional = abs(acct.positions[market_id].size) * market.price // WAD
    reach = max(notional - market.params.min_notional, 0) * denom // WAD * 9 // 10
    lowest = max(-m, mul_div_up(m, WAD + liq.buffer, WAD) - reach)
    if lowest < m and draw(st.integers(0, 4)) > 0:
        equity = draw(st.integers(lowest, m - 1))
    else:
        equity = draw(st.integers(-m, m - 1))
    acct.balance = floor_div(equity - state.equity_maint, engine.scale)
    return engine, market_id


def _target(engine: Engine, state: AccountState) -> int:
    return mul_div_up(state.mm_required, WAD + engine.liq_params.buffer, WAD)


def _closed(engine: Engine) -> int:
    return next(f["size_closed"] for name, f in reversed(engine.events) if name == "Liquidation")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=liquidatable_engines())
def test_liquidation__restores_the_buffer_and_is_minimal(case: tuple[Engine, int]) -> None:
    """After closing the uncapped ``q`` (position not closed in full), equity is
    back at ``mm_required * (1 + buffer)`` rounded up (the deficit carries an
    allowance for the token roundings of funding, PnL and penalty); and ``q - 1`` would not have sufficed (up to ``N / WAD`` wei, the
    floor in ``denom``)."""
    engine, market_id = case
    before = engine.account("trader", 0)
    assert before.status in (LIQUIDATABLE, BANKRUPT)
    pristine = copy.deepcopy(engine)
    pos = engine.position("trader", 0, market_id)
    assert pos is not None
    market = engine.markets[market_id]
    n = liquidation_notional(before, market.params, engine.liq_params, engine.scale)

    engine.liquidate("liquidator", "trader", 0, market_id, UINT_MAX)
    q = _closed(engine)
    # q is the smallest size whose notional covers N (exact, at the formula level)
    denom = mul_div_down(market.params.mmr, WAD + engine.liq_params.buffer, WAD) - market.params.liq_fee
    deficit = _target(engine, before) - before.equity_maint + 3 * engine.scale + 8
    assert (n - 1) * denom < deficit * WAD <= n * denom
    event("closed in full" if q == abs(pos.size) else "partial")
    if q == abs(pos.size):
        return  # closed in full: the target was out of reach (or the rest was dust)
    assert q * market.price >= n * WAD > (q - 1) * market.price
    after = engine.account("trader", 0)
    assert after.equity_maint >= _target(engine, after)
    assert after.equity_maint >= after.mm_required or engine.liq_params.buffer * after.mm_required < (
        3 * engine.scale + 6
    ) * WAD  # out of LIQUIDATABLE unless the buffer is smaller than the rounding

    if q > 1:
        try:
            pristine.liquidate("liquidator", "trader", 0, market_id, q - 1)
        except ModelRevert as exc:
            event("q - 1 leaves dust")
            assert str(exc) == "engine: dust"
            return
        short = pristine.account("trader", 0)
        # q - 1 falls short of the target plus the rounding allowance
        assert short.equity_maint < _target(pristine, short) + n // WAD + 8 + 3 * pristine.scale + 8


def test_liquidation_price__hand_example() -> None:
    # 1 ETH long at 1,000, equity 100 (18-dec), M = 50: p = 1,000 - 50 / 0.95 = 947.368...
    market = Market(params=PARAMS, price=1_000 * USD, long_oi=ETH)
    pos = Position(ETH, 1_000 * USD, 0)
    state = account_state(100 * USD, {0: pos}, {0: market}, 1, 0)
    assert liquidation_price(state, pos, market) == 1_000 * USD - 52_631_578_947_368_421_052
    # short: p = 1,000 + 50 / 1.05 = 1,047.619...; rounded down
    short = Position(-ETH, 1_000 * USD, 0)
    state = account_state(100 * USD, {0: short}, {0: market}, 1, 0)
    assert liquidation_price(state, short, market) == 1_000 * USD + 47_619_047_619_047_619_047
    # no position, or a result <= 0: 0
    assert liquidation_price(state, Position(0, 0, 0), market) == 0
    rich = account_state(10**6 * USD, {0: pos}, {0: market}, 1, 0)
    assert liquidation_price(rich, pos, market) == 0


def test_liquidation_price__is_where_the_account_turns_liquidatable() -> None:
    engine = make_engine(decimals=18)
    engine.deposit("trader", 0, 700 * USD)
    engine.modify_position("trader", 0, 0, 3 * ETH, UINT_MAX)
    p = engine.liquidation_price("trader", 0, 0)
    engine.set_price(0, p + 1)
    assert engine.status("trader", 0) == MARGIN_CALL
    engine.set_price(0, p - 1)
    assert engine.status("trader", 0) == LIQUIDATABLE


# --------------------------------------------------------------------------
#                                 Simulator
# --------------------------------------------------------------------------


def test_engine__open_move_close__exact_ledger() -> None:
    engine = make_engine()
    vault0 = engine.vault_assets
    engine.deposit("trader", 0, 1_000 * 10**6)
    assert engine.modify_position("trader", 0, 0, 2 * ETH, 2_001 * USD) == 2_000 * USD
    # fee: 4,000 x 0.1% = 4 USD
    assert engine.balance_of("trader", 0) == 996 * 10**6
    pos = engine.position("trader", 0, 0)
    assert pos == Position(2 * ETH, 2_000 * USD, 0)
    assert engine.markets[0].long_oi == 2 * ETH
    # one hour at full long skew; funding accrues at the price of the touch (2,100):
    # dI = 2,100 x 1e-6 x 3,600 = 7.56 USD per ETH -> 15.12 USD owed
    engine.advance(3_600)
    engine.set_price(0, 2_100 * USD)
    state = engine.account("trader", 0)
    assert state.equity_maint == (996 + 200) * USD - 15_120_000_000_000_000_000
    # close: funding 15.12, pnl +200, fee 4,200 x 0.1% = 4.2
    engine.close_position("trader", 0, 0, 0)
    assert engine.position("trader", 0, 0) is None
    assert engine.markets[0].long_oi == 0
    assert engine.markets[0].funding_index == 7_560_000_000_000_000_000
    assert engine.balance_of("trader", 0) == 996 * 10**6 - 15_120_000 + 200 * 10**6 - 4_200_000
    assert engine.vault_assets == vault0 + 4 * 10**6 + 15_120_000 - 200 * 10**6 + 4_200_000
    assert engine.events[-1] == (
        "PositionModified",
        {
            "owner": "trader", "sub": 0, "market": 0, "size_delta": -2 * ETH, "size": 0, "entry_price": 0,
            "price": 2_100 * USD, "fee": 4_200_000, "realized_pnl": 200 * 10**6, "funding_paid": 15_120_000,
        },
    )  # fmt: skip
    # the trader withdraws everything
    engine.withdraw("trader", 0, engine.balance_of("trader", 0))
    assert engine.balance_of("trader", 0) == 0


def test_engine__flip_and_reduce_entries() -> None:
    engine = make_engine(decimals=18)
    engine.deposit("trader", 0, 10_000 * USD)
    engine.modify_position("trader", 0, 0, 2 * ETH, UINT_MAX)
    engine.set_price(0, 2_100 * USD)
    engine.modify_position("trader", 0, 0, -ETH, 0)  # reduce: entry kept
    assert engine.position("trader", 0, 0) == Position(ETH, 2_000 * USD, 0)
    engine.modify_position("trader", 0, 0, -3 * ETH, 0)  # flip: entry = price
    assert engine.position("trader", 0, 0) == Position(-2 * ETH, 2_100 * USD, 0)
    assert (engine.markets[0].long_oi, engine.markets[0].short_oi) == (0, 2 * ETH)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (lambda e: e.modify_position("trader", 0, 0, ETH, 1_999 * USD), "engine: slippage"),
        (lambda e: e.modify_position("trader", 0, 0, -ETH, 2_001 * USD), "engine: slippage"),
        (lambda e: e.modify_position("trader", 0, 0, 0, UINT_MAX), "engine: zero size"),
        (lambda e: e.modify_position("trader", 0, 0, 6 * ETH, UINT_MAX), "engine: unhealthy"),
        (lambda e: e.modify_position("trader", 0, 0, 1_001 * ETH, UINT_MAX), "engine: oi cap"),
        (lambda e: e.close_position("trader", 0, 0, 0), "engine: no position"),
        (lambda e: e.withdraw("trader", 0, 0), "engine: zero amount"),
        (lambda e: e.withdraw("trader", 0, 1_000 * 10**6 + 1), "engine: insufficient balance"),
        (lambda e: e.deposit("trader", 0, 0), "engine: zero amount"),
        (lambda e: e.liquidate("liquidator", "trader", 0, 0, ETH), "engine: no position"),
        (lambda e: e.liquidate("liquidator", "trader", 0, 0, 0), "engine: zero size"),
        (lambda e: e.vault_withdraw(e.vault_assets + 1), "vault: reserved"),
    ],
)
def test_engine__reverts(action: Callable[[Engine], object], reason: str) -> None:
    engine = make_engine()
    engine.deposit("trader", 0, 1_000 * 10**6)
    snapshot = copy.deepcopy(engine.__dict__)
    with pytest.raises(ModelRevert, match=reason):
        action(engine)
    assert engine.__dict__ == snapshot  # a revert changes nothing


def test_engine__paused_blocks_new_risk_only() -> None:
    engine = make_engine()
    engine.deposit("trader", 0, 1_000 * 10**6)
    engine.modify_position("trader", 0, 0, ETH, UINT_MAX)
    engine.pause()
    with pytest.raises(ModelRevert, match="engine: paused"):
        engine.modify_position("trader", 0, 0, ETH, UINT_MAX)
    engine.deposit("trader", 0, 10**6)
    engine.modify_position("trader", 0, 0, -ETH // 2, 0)  # reductions still run
    engine.withdraw("trader", 0, 10**6)


def test_engine__too_many_positions() -> None:
    engine = Engine(token_decimals=18, now=1)
    for _ in range(MAX_POSITIONS + 1):
        engine.add_market(PARAMS, 100 * USD)
    engine.deposit("trader", 0, 10**6 * USD)
    for market_id in range(MAX_POSITIONS):
        engine.modify_position("trader", 0, market_id, ETH, UINT_MAX)
    with pytest.raises(ModelRevert, match="engine: too many positions"):
        engine.modify_position("trader", 0, MAX_POSITIONS, ETH, UINT_MAX)
    engine.modify_position("trader", 0, 0, ETH, UINT_MAX)  # increasing an open one is fine


def test_engine__reduction_allowed_below_margin_when_ratio_does_not_fall() -> None:
    engine = make_engine(decimals=18)
    engine.deposit("trader", 0, 1_000 * USD)
    engine.modify_position("trader", 0, 0, 4 * ETH, UINT_MAX)  # IM 800 with 996 equity
    engine.set_price(0, 1_800 * USD)  # equity 196, MM 360: liquidatable
    assert engine.status("trader", 0) == LIQUIDATABLE
    engine.modify_position("trader", 0, 0, -ETH, 0)
    with pytest.raises(ModelRevert, match="engine: unhealthy"):  # adding risk is not
        engine.modify_position("trader", 0, 0, ETH, UINT_MAX)
    engine.set_price(0, 1_700 * USD)  # equity < 0: any partial reduction lowers E/M
    assert engine.status("trader", 0) == BANKRUPT
    with pytest.raises(ModelRevert, match="engine: unhealthy"):
        engine.modify_position("trader", 0, 0, -ETH, 0)
    engine.close_position("trader", 0, 0, 0)  # closing in full always passes


def test_engine__bad_debt_insurance_then_vault() -> None:
    engine = make_engine(decimals=18)
    engine.custody -= engine.insurance  # white-box: empty the fund
    engine.insurance = 0
    engine.fund_insurance(10 * USD)
    vault0 = engine.vault_assets
    engine.deposit("trader", 0, 110 * USD)
    engine.modify_position("trader", 0, 0, ETH // 2, UINT_MAX)  # 1,000 notional, fee 1, IM 100
    engine.set_price(0, 1_700 * USD)  # loss 150 > 109
    engine.close_position("trader", 0, 0, 0)  # fee 0.85
    # balance 110 - 1 - 150 - 0.85 = -41.85: insurance pays 10, the vault 31.85
    assert engine.balance_of("trader", 0) == 0
    assert engine.insurance == 0
    # vault: fees 1 + 0.85, the loss 150, minus 31.85 of bad debt = +120 (= 110 deposit + 10 insurance)
    assert engine.vault_assets == vault0 + USD + 150 * USD + 85 * 10**16 - 31_850 * 10**15 == vault0 + 120 * USD
    assert engine.events[-1] == (
        "BadDebt",
        {
            "owner": "trader",
            "sub": 0,
            "amount": 41_850 * 10**15,
            "insurance_paid": 10 * USD,
            "vault_loss": 31_850 * 10**15,
        },
    )


def test_engine__liquidation_pays_the_liquidator_sub_account_zero() -> None:
    engine = make_engine()
    engine.deposit("trader", 3, 1_000 * 10**6)
    engine.modify_position("trader", 3, 0, 4 * ETH, UINT_MAX)
    engine.set_price(0, 1_780 * USD)
    insurance0 = engine.insurance
    reward = engine.liquidate("liquidator", "trader", 3, 0, UINT_MAX)
    name, ev = engine.events[-1]
    assert name == "Liquidation"
    assert reward == ev["reward"] == engine.balance_of("liquidator", 0)
    assert ev["penalty"] == penalty_tokens(ev["size_closed"], 1_780 * USD, PARAMS.liq_fee, engine.scale)
    assert engine.insurance - insurance0 == ev["insurance_share"] == ev["penalty"] - reward
    assert engine.status("trader", 3) in (HEALTHY, MARGIN_CALL)
    with pytest.raises(ModelRevert, match="engine: not liquidatable"):
        engine.liquidate("liquidator", "trader", 3, 0, UINT_MAX)


def test_liquidation__dust_sized_capped_liquidation__reverts_dust() -> None:
    """A capped liquidation must close at least min_notional: 1-wei calls would
    only round against the account (a penalty unit and a PnL unit each)."""
    engine = make_engine()
    engine.deposit("trader", 0, 1_000 * 10**6)
    engine.modify_position("trader", 0, 0, 4 * ETH, UINT_MAX)
    engine.set_price(0, 1_780 * USD)
    insurance0 = engine.insurance
    with pytest.raises(ModelRevert, match="engine: dust"):
        engine.liquidate("liquidator", "trader", 0, 0, 1)
    # 10 USD at 1,780 is 0.005617... ETH: one wei less closes 9.99... USD
    smallest = mul_div_up(10 * USD, WAD, 1_780 * USD)
    with pytest.raises(ModelRevert, match="engine: dust"):
        engine.liquidate("liquidator", "trader", 0, 0, smallest - 1)
    engine.liquidate("liquidator", "trader", 0, 0, smallest)
    assert engine.insurance >= insurance0  # a reward never exceeds the penalty paid


def test_liquidation__zero_buffer__account_leaves_liquidatable() -> None:
    engine = make_engine()
    engine.liq_params = LiquidationParams(0, WAD // 2, 10**6, 10**9)
    engine.deposit("trader", 0, 1_000 * 10**6)
    engine.modify_position("trader", 0, 0, 4 * ETH, UINT_MAX)
    engine.set_price(0, 1_780 * USD)
    engine.liquidate("liquidator", "trader", 0, 0, UINT_MAX)
    assert engine.status("trader", 0) == MARGIN_CALL  # the rounding allowance restores MM


# --------------------------------------------------------------------------
#                      Ledger conservation (stateful fuzz)
# --------------------------------------------------------------------------

TRADERS = ("alice", "bob", "carol")


class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of every engine action; after each step the ledger
    holds exactly what came in minus what went out."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(
            token_decimals=6,
            liq_params=LiquidationParams(WAD // 20, WAD // 2, 10**6, 10**9),
            reserve_factor=WAD // 5,
            now=1_000,
        )
        for price in (2_000 * USD, 30_000 * USD):
            self.engine.add_market(
                MarketParams(WAD // 10, WAD // 20, WAD // 1000, WAD // 100, 10**6 * ETH, 10 * USD, 10**11),
                price,
            )
        self.deposits = 0
        self.withdrawals = 0
        self.vault_capital = 0

    @initialize()
    def fund(self) -> None:
        """Vault capital, and 10,000 USDC in every trader's sub-accounts 0 and 1."""
        self.engine.vault_deposit(10**12)
        self.vault_capital += 10**12
        for who in TRADERS:
            for sub in (0, 1):
                self.engine.deposit(who, sub, 10**10)
                self.deposits += 10**10

    def _try(self, action: Callable[[], object]) -> bool:
        try:
            action()
        except ModelRevert as exc:
            event(f"revert {exc}")
            return False
        return True

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), amount=st.integers(0, 10**10))
    def deposit(self, who: str, sub: int, amount: int) -> None:
        if self._try(lambda: self.engine.deposit(who, sub, amount)):
            self.deposits += amount

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), amount=st.integers(0, 10**10))
    def withdraw(self, who: str, sub: int, amount: int) -> None:
        if self._try(lambda: self.engine.withdraw(who, sub, amount)):
            self.withdrawals += amount

    @rule(who=st.sampled_from(TRADERS), amount=st.integers(0, 10**9))
    def transfer(self, who: str, amount: int) -> None:
        self._try(lambda: self.engine.transfer_collateral(who, 0, 1, amount))

    @rule(amount=st.integers(0, 10**12))
    def vault_deposit(self, amount: int) -> None:
        if self._try(lambda: self.engine.vault_deposit(amount)):
            self.vault_capital += amount

    @rule(amount=st.integers(0, 10**12))
    def vault_withdraw(self, amount: int) -> None:
        if self._try(lambda: self.engine.vault_withdraw(amount)):
            self.vault_capital -= amount

    @rule(amount=st.integers(0, 10**9))
    def fund_insurance(self, amount: int) -> None:
        if self._try(lambda: self.engine.fund_insurance(amount)):
            self.deposits += amount

    @rule(
        who=st.sampled_from(TRADERS),
        sub=st.integers(0, 1),
        market=st.integers(0, 1),
        delta=st.integers(-(10**19), 10**19),
    )
    def trade(self, who: str, sub: int, market: int, delta: int) -> None:
        limit = UINT_MAX if delta > 0 else 0
        self._try(lambda: self.engine.modify_position(who, sub, market, delta, limit))

    @rule(
        who=st.sampled_from(TRADERS),
        sub=st.integers(0, 1),
        market=st.integers(0, 1),
        leverage=st.sampled_from([-12, -9, -5, -2, 2, 5, 9, 12]),
    )
    def trade_levered(self, who: str, sub: int, market: int, leverage: int) -> None:
        """Open or add about ``leverage`` times the account's balance (often near IM)."""
        balance = self.engine.balance_of(who, sub)
        price = self.engine.markets[market].price
        delta = leverage * max(balance, 0) * self.engine.scale * WAD // price
        limit = UINT_MAX if delta > 0 else 0
        self._try(lambda: self.engine.modify_position(who, sub, market, delta, limit))

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), market=st.integers(0, 1))
    def close(self, who: str, sub: int, market: int) -> None:
        pos = self.engine.position(who, sub, market)
        limit = UINT_MAX if pos is not None and pos.size < 0 else 0
        self._try(lambda: self.engine.close_position(who, sub, market, limit))

    @rule(market=st.integers(0, 1), move=st.integers(-300, 300))
    def move_price(self, market: int, move: int) -> None:
        """Move a price by ``move`` per mille (at least 1 USD)."""
        price = self.engine.markets[market].price
        self.engine.set_price(market, max(WAD, price * (1_000 + move) // 1_000))

    @rule(market=st.integers(0, 1), up=st.booleans())
    def shock_price(self, market: int, up: bool) -> None:
        """A 25% jump: enough to push a 9x account past maintenance."""
        self.move_price(market, 250 if up else -250)

    @rule(
        who=st.sampled_from(TRADERS),
        sub=st.integers(0, 1),
        market=st.integers(0, 1),
        long=st.booleans(),
        max_size=st.sampled_from([1, 10**17, UINT_MAX]),
    )
    def crash_and_liquidate(self, who: str, sub: int, market: int, long: bool, max_size: int) -> None:
        """Open at 9x, move the price 25% against it, liquidate: the path to bad debt."""
        self.trade_levered(who, sub, market, 9 if long else -9)
        self.shock_price(market, up=not long)
        self.liquidate(who, sub, market, max_size)

    @rule(seconds=st.integers(0, 7 * 86_400))
    def advance(self, seconds: int) -> None:
        self.engine.advance(seconds)

    @rule(
        who=st.sampled_from(TRADERS),
        sub=st.integers(0, 1),
        market=st.integers(0, 1),
        max_size=st.sampled_from([1, 10**17, UINT_MAX]),
    )
    def liquidate(self, who: str, sub: int, market: int, max_size: int) -> None:
        n_events = len(self.engine.events)
        if self._try(lambda: self.engine.liquidate("keeper", who, sub, market, max_size)):
            event("liquidation")
            if any(name == "BadDebt" for name, _ in self.engine.events[n_events:]):
                event("bad debt")

    @rule()
    def toggle_pause(self) -> None:
        if self.engine.paused:
            self.engine.unpause()
        else:
            self.engine.pause()

    @rule(max_size=st.sampled_from([1, 10**17, UINT_MAX]))
    def liquidate_first_liquidatable(self, max_size: int) -> None:
        """Liquidate the first account below maintenance, in its first market."""
        for (who, sub), acct in list(self.engine.accounts.items()):
            if acct.positions and self.engine.status(who, sub) in (LIQUIDATABLE, BANKRUPT):
                self.liquidate(who, sub, min(acct.positions), max_size)
                return

    @invariant()
    def tokens_are_conserved(self) -> None:
        e = self.engine
        total = sum(a.balance for a in e.accounts.values()) + e.insurance + e.vault_assets
        assert total == self.deposits - self.withdrawals + self.vault_capital == e.custody

    @invariant()
    def open_interest_matches_positions(self) -> None:
        for market_id, market in self.engine.markets.items():
            sizes = [a.positions[market_id].size for a in self.engine.accounts.values() if market_id in a.positions]
            assert market.long_oi == sum(s for s in sizes if s > 0)
            assert market.short_oi == -sum(s for s in sizes if s < 0)

    @invariant()
    def no_flat_debt_and_no_negative_insurance(self) -> None:
        assert self.engine.insurance >= 0
        for acct in self.engine.accounts.values():
            assert acct.positions or acct.balance >= 0
            assert len(acct.positions) <= MAX_POSITIONS
            assert all(p.size != 0 for p in acct.positions.values())


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)


def test_engine__profit_beyond_vault_assets__shortfall_withheld_and_logged() -> None:
    """The vault pays at most what it holds: a winner is credited the vault's
    whole assets and no more, so balances never exceed custody."""
    engine = Engine(token_decimals=6, liq_params=LIQ, now=1_000)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.vault_deposit(100 * 10**6)
    engine.deposit("trader", 0, 1_000 * 10**6)
    engine.modify_position("trader", 0, 0, ETH, UINT_MAX)  # fee 2 USDC to the vault
    assert engine.vault_assets == 102 * 10**6
    engine.set_price(0, 2_500 * USD)  # +500 USDC, the vault holds 102
    engine.close_position("trader", 0, 0, 0)  # fee 2.5 USDC
    # net owed by the vault: 500 - 2.5 = 497.5; it pays its 102 and no more
    assert engine.vault_assets == 0
    assert engine.balance_of("trader", 0) == (1_000 - 2 + 102) * 10**6
    assert ("VaultShortfall", {"owner": "trader", "sub": 0, "market": 0, "amount": 395_500_000}) in engine.events
    assert engine.balance_of("trader", 0) + engine.insurance + engine.vault_assets == engine.custody
