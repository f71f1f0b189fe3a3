"""Tier schedules of the risk model (``docs/risk-model.md`` section 10.2) in the
reference model: packing, bounds, the bracketed requirement ``req(n, base)``,
the MM ramp of a schedule change and ``Engine.set_tiers``.

Plain pytest + hypothesis, no chain. Hand-computed expectations show their
arithmetic in a comment.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from margin_engine.model import (
    HEALTHY,
    LIQUIDATABLE,
    TIER_SCHEDULE_MASK,
    WAD,
    Engine,
    Market,
    MarketParams,
    ModelRevert,
    Position,
    check_tiers,
    mul_div_up,
    pack_tiers,
    ramped_tier_requirement,
    requirements,
    tier_rates,
    tier_requirement,
    tiers_ramp,
    unpack_tiers,
)

USD = WAD
DAY = 86_400
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARAMS = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=0, liq_fee=WAD // 100,
    max_oi=2**200, min_notional=10 * USD, funding_rate_max=0,
)  # fmt: skip

# --------------------------------------------------------------------------
#                               Strategies
# --------------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn, min_k: int = 0, max_edge: int = 10**7) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A valid schedule ``(edges, mults)`` of ``k`` used brackets (no padding)."""
    k = draw(st.integers(min_k, 4))
    top = draw(st.sampled_from([max_edge, 2**32 - 1]))
    edges = tuple(sorted(draw(st.sets(st.integers(1, top), min_size=k, max_size=k))))
    mults = tuple(sorted(draw(st.lists(st.integers(100, 10_000), min_size=k, max_size=k))))
    return edges, mults


bases = st.integers(0, WAD)
notionals = st.integers(0, 10**34)  # up to 1e16 USD


def reference_requirement(n: int, base: int, edges: tuple[int, ...], mults: tuple[int, ...]) -> int:
    """Independent reference: walk up the brackets, adding each one's slice at its rate (exact), then round up."""
    rates = [Fraction(base, WAD)] + [min(Fraction(mul_div_up(base, m, 100), WAD), Fraction(1)) for m in mults]
    bounds = [0] + [e * WAD for e in edges] + [None]
    total = Fraction(0)
    for i, rate in enumerate(rates):
        lo, hi = bounds[i], bounds[i + 1]
        if n <= lo:
            break
        total += rate * ((n if hi is None else min(n, hi)) - lo)
    return -(-total.numerator // total.denominator)


# --------------------------------------------------------------------------
#                                 Packing
# --------------------------------------------------------------------------


def test_pack_tiers__layout() -> None:
    word = pack_tiers((10, 20, 30, 40), (100, 200, 300, 400), start=7, end=9)
    assert word == (
        10 | 20 << 32 | 30 << 64 | 40 << 96 | 100 << 128 | 200 << 144 | 300 << 160 | 400 << 176 | 7 << 192 | 9 << 224
    )
    assert unpack_tiers(word) == ((10, 20, 30, 40), (100, 200, 300, 400))
    assert tiers_ramp(word) == (7, 9)
    assert word & TIER_SCHEDULE_MASK == pack_tiers((10, 20, 30, 40), (100, 200, 300, 400))
    # unused brackets: the first zero edge ends the schedule
    assert unpack_tiers(pack_tiers((5, 0, 0, 0), (150, 0, 0, 0))) == ((5,), (150,))
    assert unpack_tiers(0) == ((), ())
    assert pack_tiers((), ()) == 0


@pytest.mark.parametrize(
    ("edges", "mults", "start", "end"),
    [
        ((2**32,), (100,), 0, 0),
        ((1,), (2**16,), 0, 0),
        ((1,) * 5, (100,) * 5, 0, 0),
        ((), (), 2**32, 0),
        ((-1,), (100,), 0, 0),
    ],
)
def test_pack_tiers__field_overflow__raises(
    edges: tuple[int, ...], mults: tuple[int, ...], start: int, end: int
) -> None:
    with pytest.raises(ValueError):
        pack_tiers(edges, mults, start, end)


@given(schedule=schedules(), start=st.integers(0, 2**32 - 1), end=st.integers(0, 2**32 - 1))
def test_pack_unpack__round_trip(schedule: tuple[tuple[int, ...], tuple[int, ...]], start: int, end: int) -> None:
    edges, mults = schedule
    word = pack_tiers(edges, mults, start, end)
    assert unpack_tiers(word) == (edges, mults)
    assert tiers_ramp(word) == (start, end)
    padded = (edges + (0,) * 4)[:4], (mults + (0,) * 4)[:4]
    assert pack_tiers(*padded, start, end) == word
    check_tiers(edges, mults)
    check_tiers(*padded)


# --------------------------------------------------------------------------
#                             Bounds (configurator)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "mults"),
    [
        ((), ()),  # no tiers
        ((1,), (100,)),
        ((10, 20, 0, 0), (100, 150, 0, 0)),  # padded
        ((1, 2, 3, 2**32 - 1), (100, 100, 10_000, 10_000)),  # equal multipliers allowed
    ],
)
def test_check_tiers__accepts(edges: tuple[int, ...], mults: tuple[int, ...]) -> None:
    check_tiers(edges, mults)


@pytest.mark.parametrize(
    ("edges", "mults"),
    [
        ((10,), ()),  # lengths differ
        ((10, 20), (100,)),
        ((1, 2, 3, 4, 5), (100,) * 5),  # five brackets
        ((20, 10), (100, 200)),  # edges not increasing
        ((10, 10), (100, 200)),  # equal edges
        ((0, 10), (0, 200)),  # a used edge after a zero
        ((10, 0, 30), (100, 0, 300)),
        ((2**32,), (100,)),  # edge beyond 32 bits
        ((10,), (99,)),  # multiplier below 1x
        ((10,), (10_001,)),  # above 100x
        ((10, 20), (200, 150)),  # multipliers falling
        ((10, 0), (100, 150)),  # an unused bracket with a multiplier
    ],
)
def test_check_tiers__rejects(edges: tuple[int, ...], mults: tuple[int, ...]) -> None:
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        check_tiers(edges, mults)


# --------------------------------------------------------------------------
#                           The requirement req(n)
# --------------------------------------------------------------------------


def test_tier_requirement__hand_example() -> None:
    # base 10%, edges 5 and 20 units, 2x and 4x: 5 at 10% + 15 at 20% + 9,980 at 40%
    # = 0.5 + 3 + 3,992 = 3,995.5 USD for a notional of 10,000 USD
    schedule = ((5, 20), (200, 400))
    assert tier_requirement(10_000 * USD, WAD // 10, schedule) == 3_995_500_000_000_000_000_000
    assert tier_requirement(10_000 * USD, WAD // 10, pack_tiers(*schedule)) == 3_995_500_000_000_000_000_000
    # one rounding, up: base 1 wei per WAD, n = 3 wei -> 3e-18 wei, rounded up to 1
    assert tier_requirement(3, 1, schedule) == 1
    # bracket rates are capped at 100%: base 40% at 4x
    assert tier_rates(4 * WAD // 10, (400,)) == (4 * WAD // 10, WAD)
    assert tier_requirement(3 * USD, 4 * WAD // 10, ((1,), (400,))) == 2_400_000_000_000_000_000  # 0.4 + 2 x 1


@given(n=notionals, base=bases)
def test_tier_requirement__no_brackets_is_the_static_formula(n: int, base: int) -> None:
    assert tier_requirement(n, base, ((), ())) == tier_requirement(n, base, 0) == mul_div_up(n, base, WAD)


@given(n=notionals, base=bases, schedule=schedules())
def test_tier_requirement__matches_a_bracket_walk(
    n: int, base: int, schedule: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    assert tier_requirement(n, base, schedule) == reference_requirement(n, base, *schedule)


@FAST
@given(base=bases, schedule=schedules(min_k=1), d=st.integers(0, 10**24), data=st.data())
def test_tier_requirement__continuous_at_each_edge(
    base: int, schedule: tuple[tuple[int, ...], tuple[int, ...]], d: int, data: st.DataObject
) -> None:
    """No jump at an edge: one wei across it moves the requirement by at most
    ``top rate / WAD + 1`` wei (at most 1, since rates are at most 100%), and
    a window ``[E - d, E + d]`` by at most its notional at the two rates plus one wei."""
    edges, mults = schedule
    rates = tier_rates(base, mults)
    i = data.draw(st.integers(0, len(edges) - 1))
    edge = edges[i] * WAD
    req = lambda n: tier_requirement(n, base, schedule)  # noqa: E731
    assert 0 <= req(edge + 1) - req(edge) <= rates[i + 1] // WAD + 1
    assert req(edge + 1) - req(edge) <= 1 and req(edge) - req(edge - 1) <= 1
    below = edges[i - 1] * WAD if i > 0 else 0
    above = edges[i + 1] * WAD if i + 1 < len(edges) else edge + d
    d = min(d, edge - below, above - edge)  # the window stays within the two brackets
    low = edge - d
    window = req(edge + d) - req(low)
    exact = Fraction(d * rates[i] + d * rates[i + 1], WAD)  # d below at rate_i, d above at rate_(i+1)
    assert exact - 1 < window < exact + 1


@FAST
@given(base=bases, schedule=schedules(), n=notionals, d=st.integers(0, 10**30))
def test_tier_requirement__non_decreasing_and_lipschitz(
    base: int, schedule: tuple[tuple[int, ...], tuple[int, ...]], n: int, d: int
) -> None:
    rise = tier_requirement(n + d, base, schedule) - tier_requirement(n, base, schedule)
    top = tier_rates(base, schedule[1])[-1]
    assert 0 <= rise <= mul_div_up(d, top, WAD) + 1


@FAST
@given(base=bases, schedule=schedules(), n=notionals, h=st.integers(0, 10**30))
def test_tier_requirement__convex(base: int, schedule: tuple[tuple[int, ...], tuple[int, ...]], n: int, h: int) -> None:
    """Second differences are at least -1 wei (the exact sum is convex; the final ceil moves each term by < 1)."""
    req = lambda x: tier_requirement(x, base, schedule)  # noqa: E731
    assert req(n) - 2 * req(n + h) + req(n + 2 * h) >= -1


@FAST
@given(base=bases, schedule=schedules(), n=st.integers(1, 10**34), x=st.integers(0, 10**34))
def test_tier_requirement__average_rate_bounds_the_drop(
    base: int, schedule: tuple[tuple[int, ...], tuple[int, ...]], n: int, x: int
) -> None:
    """Closing the top ``x`` of ``n`` lowers the requirement by at least
    ``x * req(n) / n`` less 2 wei (convexity with ``req(0) = 0``): what the
    liquidation's average rate relies on (section 10.3)."""
    x = min(x, n)
    req = lambda v: tier_requirement(v, base, schedule)  # noqa: E731
    assert (req(n) - req(n - x) + 2) * n >= x * req(n)
    assert req(n) * WAD // n >= base  # the average rate is at least the base rate


# --------------------------------------------------------------------------
#                     requirements() of a flagged market
# --------------------------------------------------------------------------


def risk_market(tiers: int = 0, old_tiers: int = 0, params: MarketParams = PARAMS) -> Market:
    return Market(params=params, price=2_000 * USD, risk=True, tiers=tiers, old_tiers=old_tiers)


@given(n=notionals, imr_bps=st.integers(1, 10_000), mmr_bps=st.integers(1, 10_000))
def test_requirements__flag_without_tiers_or_volatility_is_static(n: int, imr_bps: int, mmr_bps: int) -> None:
    params = MarketParams(**{**vars(PARAMS), "imr": imr_bps * WAD // 10_000, "mmr": mmr_bps * WAD // 10_000})
    static = Market(params=params, price=WAD)
    assert requirements(risk_market(params=params), n, 5) == requirements(static, n, 5) == (
        mul_div_up(n, params.imr, WAD),
        mul_div_up(n, params.mmr, WAD),
    )


@given(n=notionals, schedule=schedules(), old=schedules(), mmr_bps=st.integers(1, 1_000), t=st.integers(0, 2 * DAY))
def test_requirements__im_at_least_mm_outside_a_loosening_ramp(
    n: int,
    schedule: tuple[tuple[int, ...], tuple[int, ...]],
    old: tuple[tuple[int, ...], tuple[int, ...]],
    mmr_bps: int,
    t: int,
) -> None:
    """IM >= MM whenever no tier ramp runs, or the old schedule asks no more
    than the new one's IM at that notional (``mm_old(n) <= im(n)``)."""
    params = MarketParams(**{**vars(PARAMS), "mmr": mmr_bps * WAD // 10_000, "imr": WAD // 10})
    ramping = risk_market(pack_tiers(*schedule, 0, DAY), pack_tiers(*old), params)
    im, mm = requirements(ramping, n, t)
    if t >= DAY or tier_requirement(n, params.mmr, old) <= im:
        assert im >= mm
    settled = risk_market(pack_tiers(*schedule), 0, params)
    assert requirements(settled, n, t)[0] >= requirements(settled, n, t)[1]


def test_requirements__a_loosening_ramp_can_put_mm_above_im() -> None:
    """Documented behaviour (section 10.2): MM eases into a looser schedule
    while IM takes it at once, so MM may exceed IM during the ramp. The
    status stays consistent (LIQUIDATABLE is tested first)."""
    tight, loose = pack_tiers((1,), (10_000,)), pack_tiers((1_000,), (100,))
    market = risk_market(loose | 0 << 192 | DAY << 224, tight)
    im, mm = requirements(market, 100 * USD, 0)
    # IM: 100 at 10% = 10; MM at the start: 1 at 5% + 99 at 100% (5% x 100 capped) = 99.05
    assert (im, mm) == (10 * USD, 99_050_000_000_000_000_000)
    assert requirements(market, 100 * USD, DAY)[1] == 5 * USD


# --------------------------------------------------------------------------
#                                MM ramp
# --------------------------------------------------------------------------


def test_ramped_tier_requirement__floor_in_both_directions() -> None:
    base = WAD // 10
    low, high = pack_tiers((), ()), pack_tiers((1,), (300,))
    n = 3 * USD + 1  # low: ceil(0.1 x n) = 3e17 + 1 wei; high: 1 USD at 10% + (2 USD + 1 wei) at 30%
    r_low = tier_requirement(n, base, low)
    r_high = tier_requirement(n, base, high)
    assert (r_low, r_high) == (300_000_000_000_000_001, 700_000_000_000_000_001)  # 0.1 + 0.6 + 0.3 wei, up
    el, dur = 1, 3
    # rising: floor(old + (new - old) / 3)
    up = ramped_tier_requirement(n, base, high | 0 << 192 | dur << 224, low, el)
    assert up == r_low + (r_high - r_low) // 3
    # falling: old - ceil((old - new) / 3), the floor of the exact value
    down = ramped_tier_requirement(n, base, low | 0 << 192 | dur << 224, high, el)
    assert down == r_high - -(-(r_high - r_low) // 3)
    assert down == (Fraction(r_high) + Fraction(r_low - r_high, 3)).__floor__()
    # at start the old schedule, from end on the new one
    assert ramped_tier_requirement(n, base, low | 0 << 192 | dur << 224, high, 0) == r_high
    assert ramped_tier_requirement(n, base, low | 0 << 192 | dur << 224, high, dur) == r_low


@FAST
@given(
    n=notionals,
    base=bases,
    new=schedules(),
    old=schedules(),
    start=st.integers(0, 10**6),
    dur=st.integers(1, 30 * DAY),
    a=st.integers(0, 31 * DAY),
    b=st.integers(0, 31 * DAY),
)
def test_ramped_tier_requirement__between_the_schedules_monotone_in_time(
    n: int,
    base: int,
    new: tuple[tuple[int, ...], tuple[int, ...]],
    old: tuple[tuple[int, ...], tuple[int, ...]],
    start: int,
    dur: int,
    a: int,
    b: int,
) -> None:
    word, old_word = pack_tiers(*new, start, start + dur), pack_tiers(*old)
    r_old, r_new = tier_requirement(n, base, old_word), tier_requirement(n, base, word)
    early, late = sorted((a, b))
    m_early = ramped_tier_requirement(n, base, word, old_word, start + early)
    m_late = ramped_tier_requirement(n, base, word, old_word, start + late)
    assert min(r_old, r_new) <= m_early <= max(r_old, r_new)
    assert (m_late - m_early) * (r_new - r_old) >= 0  # moves toward the new schedule
    exact = Fraction(r_old) + Fraction((r_new - r_old) * min(early, dur), dur)
    assert m_early == exact.__floor__()


# --------------------------------------------------------------------------
#                            Engine.set_tiers
# --------------------------------------------------------------------------


def tiered_engine(now: int = 1_000) -> Engine:
    engine = Engine(token_decimals=6, now=now)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.vault_deposit(10**15)
    return engine


def test_set_tiers__flags_the_market_and_ramps_mm_only() -> None:
    engine = tiered_engine()
    market = engine.markets[0]
    assert not market.risk
    market.long_oi = WAD  # white box: someone holds the market, so MM ramps
    engine.set_tiers(0, (10, 100), (200, 500))
    assert market.risk
    assert market.tiers == pack_tiers((10, 100), (200, 500), 1_000, 1_000 + DAY)
    assert market.old_tiers == 0
    n = 1_000 * USD
    new_im = tier_requirement(n, PARAMS.imr, market.tiers)
    # IM at once; MM from the static formula (no old tiers) toward the new schedule
    assert requirements(market, n, 1_000) == (new_im, mul_div_up(n, PARAMS.mmr, WAD))
    assert requirements(market, n, 1_000 + DAY) == (new_im, tier_requirement(n, PARAMS.mmr, market.tiers))
    # a change while the ramp runs reverts and leaves everything as it was
    before = copy.deepcopy(market)
    engine.now = 1_000 + DAY - 1
    with pytest.raises(ModelRevert, match="configurator: ramp on"):
        engine.set_tiers(0, (10,), (100,))
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        engine.set_tiers(0, (10,), (99,))
    assert vars(market) == vars(before)
    # after the end: the previous schedule (without its ramp bits) becomes `old`
    engine.now = 1_000 + DAY
    engine.ramp_duration = 3_600
    engine.set_tiers(0, (), ())
    assert market.old_tiers == pack_tiers((10, 100), (200, 500))
    assert market.tiers == pack_tiers((), (), 1_000 + DAY, 1_000 + DAY + 3_600)
    assert engine.mm_ramp_duration == 3_600
    assert requirements(market, n, engine.now) == (
        mul_div_up(n, PARAMS.imr, WAD),
        tier_requirement(n, PARAMS.mmr, market.old_tiers),
    )
    assert market.risk  # never cleared


def test_set_tiers__static_markets_unchanged() -> None:
    engine = tiered_engine()
    engine.add_market(PARAMS, 3_000 * USD)
    engine.set_tiers(1, (1,), (10_000,))
    assert not engine.markets[0].risk and engine.markets[0].tiers == 0


# --------------------------------------------------------------------------
#          A tier ramp at frozen prices (no funding): what it guarantees
# --------------------------------------------------------------------------


@st.composite
def tiered_accounts(draw: st.DrawFn) -> tuple[Engine, int]:
    """An account ``("trader", 0)`` with 1 to 3 positions in tiered markets
    (funding off: prices and index frozen), white-box setup; returns the
    engine and the market whose schedule will change."""
    engine = Engine(token_decimals=draw(st.sampled_from([6, 18])), now=1_000)
    engine.ramp_duration = draw(st.integers(3_600, 30 * DAY))
    acct = engine._account("trader", 0)
    for _ in range(draw(st.integers(1, 3))):
        mmr = draw(st.integers(WAD // 200, WAD // 5))
        params = MarketParams(**{**vars(PARAMS), "imr": draw(st.integers(mmr, WAD // 2)), "mmr": mmr})
        price = draw(st.integers(10**15, 10**23))
        market_id = engine.add_market(params, price)
        if draw(st.booleans()):
            engine.set_tiers(market_id, *draw(schedules(max_edge=10**6)))
        size = draw(st.integers(10**15, 10**24)) * draw(st.sampled_from([1, -1]))
        acct.positions[market_id] = Position(size, draw(st.integers(price // 2, price * 3 // 2)), 0)
        market = engine.markets[market_id]  # its open interest: schedule changes ramp
        if size > 0:
            market.long_oi += size
        else:
            market.short_oi -= size
    engine.now += 31 * DAY  # every ramp over
    acct.balance = draw(st.integers(0, 10**10)) * 10 ** draw(st.integers(0, 12))
    return engine, draw(st.sampled_from(sorted(acct.positions)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiered_accounts(), new=schedules(max_edge=10**6), points=st.lists(st.floats(0, 1.2), max_size=8))
def test_tier_ramp__mm_required_is_below_the_linear_path(
    case: tuple[Engine, int], new: tuple[tuple[int, ...], tuple[int, ...]], points: list[float]
) -> None:
    """At frozen prices, ``mm_required(t)`` lies on or below the straight line
    from ``M_old`` (before the change) to ``M_new`` (from the end on), less
    than one wei below it. Hence an account not LIQUIDATABLE before
    the change and not LIQUIDATABLE under the new schedule is never
    LIQUIDATABLE during the ramp."""
    engine, market_id = case
    before = engine.account("trader", 0)
    engine.set_tiers(market_id, *new)
    start, dur = engine.now, engine.ramp_duration
    engine.now = start + dur
    after = engine.account("trader", 0)
    for p in sorted(points):
        el = int(p * dur)
        engine.now = start + el
        state = engine.account("trader", 0)
        assert state.equity_maint == before.equity_maint  # frozen
        line = Fraction(before.mm_required) + Fraction((after.mm_required - before.mm_required) * min(el, dur), dur)
        assert line - 1 < state.mm_required <= line  # one market ramps: one floor
        if before.status != LIQUIDATABLE and after.status != LIQUIDATABLE:
            assert state.status != LIQUIDATABLE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiered_accounts(), new=schedules(max_edge=10**6), points=st.lists(st.integers(0, 40 * DAY), max_size=8))
def test_tier_ramp__healthy_right_after_the_change_is_never_liquidatable(
    case: tuple[Engine, int], new: tuple[tuple[int, ...], tuple[int, ...]], points: list[int]
) -> None:
    """The property the ramp can promise: an account HEALTHY right after a
    schedule change (the new IM applies at once, MM starts from the old
    schedule) is never LIQUIDATABLE at frozen prices, during the ramp or
    after, since ``E >= IM_new >= MM_new`` and ``E >= MM_old``."""
    engine, market_id = case
    engine.set_tiers(market_id, *new)
    assume(engine.status("trader", 0) == HEALTHY)
    start = engine.now
    for t in sorted(points):
        engine.now = start + t
        assert engine.status("trader", 0) != LIQUIDATABLE
