"""Unit and property tests of the volatility margin model (``margin_engine.volatility``).

Plain pytest + hypothesis: no Ape fixture, no chain, no compilation. Exact
references use ``fractions.Fraction``; float references use ``math.exp``/``log``.
Hand-computed expectations show their arithmetic in a comment.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from margin_engine.calibration import CHOSEN, Bar, Count, Day, count, onchain_params, replay
from margin_engine.volatility import (
    MAX_CAP,
    MAX_DECAY,
    MAX_EPOCH,
    MAX_HORIZON,
    MAX_MM_FRACTION,
    MAX_PRICE,
    MAX_RETURN,
    MAX_VAR,
    MAX_Z,
    MIN_DECAY,
    MIN_EPOCH,
    MIN_FLOOR,
    MIN_HORIZON,
    MIN_MM_FRACTION,
    MIN_Z,
    WAD,
    VolParams,
    VolState,
    decay_from_half_life,
    im_rate,
    mm_rate,
    period_return_up,
    seed_var,
    sigma_horizon,
    sqrt_up,
    update,
    wad_pow,
)

HOUR = 3_600
DAY = 86_400
UINT256_MAX = 2**256 - 1

PARAMS = VolParams(
    epoch=HOUR,
    decay=WAD // 2,  # half-life of one epoch
    z=3 * WAD,
    horizon=10_000,
    floor=WAD // 20,  # 5%
    cap=WAD // 2,  # 50%
    mm_fraction=WAD // 2,
)

# --------------------------------------------------------------------------
#                               Strategies
# --------------------------------------------------------------------------


@st.composite
def params_st(draw: st.DrawFn) -> VolParams:
    floor = draw(st.integers(MIN_FLOOR, MAX_CAP))
    return VolParams(
        epoch=draw(st.integers(MIN_EPOCH, MAX_EPOCH)),
        decay=draw(st.integers(MIN_DECAY, MAX_DECAY)),
        z=draw(st.integers(MIN_Z, MAX_Z)),
        horizon=draw(st.integers(MIN_HORIZON, MAX_HORIZON)),
        floor=floor,
        cap=draw(st.integers(floor, MAX_CAP)),
        mm_fraction=draw(st.integers(MIN_MM_FRACTION, MAX_MM_FRACTION)),
    )


prices = st.integers(10**9, 10**30)  # 1e-9 .. 1e12 USD
variances = st.integers(0, MAX_VAR)
realistic_variances = st.integers(0, WAD // DAY)  # daily volatility up to 100%
epochs_ahead = st.integers(1, 5_000)


def moved(anchor: int, move: int) -> int:
    """``anchor * (1 + move)``, ``move`` in WAD, at least 1 wei."""
    return max(anchor * (WAD + move) // WAD, 1)


moves = st.integers(-WAD + WAD // 1000, 5 * WAD)  # -99.9% .. +500%


def anchored(var: int, anchor: int, epoch_index: int = 1_000) -> VolState:
    return VolState(var=var, anchor_price=anchor, anchor_epoch=epoch_index)


def exact_update(state: VolState, params: VolParams, price: int, n: int) -> Fraction:
    """The rational EWMA of the brief: ``var * d**n + x * (1 - d**n)``, unrounded."""
    r = Fraction(abs(price - state.anchor_price), state.anchor_price)
    r = min(r, Fraction(MAX_RETURN, WAD))
    x = r * r * WAD / (n * params.epoch)
    retention = Fraction(params.decay, WAD) ** n
    return state.var * retention + x * (1 - retention)


# --------------------------------------------------------------------------
#                            Integer helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "root"),
    [(0, 0), (1, 1), (2, 2), (4, 2), (5, 3), (10**36, 10**18), (10**36 + 1, 10**18 + 1)],
)
def test_sqrt_up__rounds_up_unless_perfect_square(a: int, root: int) -> None:
    assert sqrt_up(a) == root


@given(st.integers(0, 2**256))
def test_sqrt_up__is_the_ceiling(a: int) -> None:
    root = sqrt_up(a)
    assert root * root >= a
    assert root == 0 or (root - 1) * (root - 1) < a


def test_wad_pow__small_exact_cases() -> None:
    assert wad_pow(WAD // 3, 0, round_up=False) == WAD
    assert wad_pow(WAD // 3, 1, round_up=True) == WAD // 3  # a product by WAD is exact
    assert wad_pow(WAD // 2, 3, round_up=False) == WAD // 8  # 0.5**3 = 0.125 exactly
    # 0.7**2 = 0.49 and 0.7**3 = 0.343, exact in WAD
    assert wad_pow(7 * WAD // 10, 3, round_up=False) == 343 * WAD // 1000
    assert wad_pow(WAD, 2**64 - 1, round_up=True) == WAD
    with pytest.raises(ValueError):
        wad_pow(WAD + 1, 2, round_up=False)
    with pytest.raises(ValueError):
        wad_pow(WAD // 2, 2**64, round_up=False)


@given(st.integers(MIN_DECAY, WAD), st.integers(0, 3_000))
def test_wad_pow__brackets_the_exact_power_within_n_wei(base: int, n: int) -> None:
    exact = Fraction(base, WAD) ** n * WAD
    down, up = wad_pow(base, n, round_up=False), wad_pow(base, n, round_up=True)
    assert down <= exact <= up
    assert exact - down <= max(n - 1, 0)
    assert up - exact <= max(n - 1, 0) + Fraction(n * n, WAD)


@given(st.integers(MIN_DECAY, MAX_DECAY), st.integers(0, 2_000), st.integers(0, 2_000), st.booleans())
def test_wad_pow__composition_of_two_decays_matches_within_a_plus_b_wei(
    decay: int, a: int, b: int, round_up: bool
) -> None:
    # d^a * d^b vs d^(a+b): both within (a - 1) + (b - 1) + 1 and (a + b - 1) wei of the exact power, on the same side
    pa, pb = wad_pow(decay, a, round_up), wad_pow(decay, b, round_up)
    composed = (pa * pb + (WAD - 1 if round_up else 0)) // WAD
    assert abs(composed - wad_pow(decay, a + b, round_up)) <= a + b


def test_period_return_up__rounds_up_and_clamps() -> None:
    assert period_return_up(100 * WAD, 110 * WAD) == WAD // 10  # +10%, exact
    assert period_return_up(100 * WAD, 90 * WAD) == WAD // 10  # -10%: magnitude
    assert period_return_up(3, 4) == WAD // 3 + 1  # 1/3 rounded up
    assert period_return_up(WAD, 1_000 * WAD) == MAX_RETURN  # +99,900% clamped at 1,000%


# --------------------------------------------------------------------------
#                           Parameters and bounds
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epoch", MIN_EPOCH - 1),
        ("epoch", MAX_EPOCH + 1),
        ("decay", MIN_DECAY - 1),
        ("decay", MAX_DECAY + 1),
        ("decay", WAD),
        ("z", MIN_Z - 1),
        ("z", MAX_Z + 1),
        ("horizon", MIN_HORIZON - 1),
        ("horizon", MAX_HORIZON + 1),
        ("floor", MIN_FLOOR - 1),
        ("floor", PARAMS.cap + 1),
        ("cap", MAX_CAP + 1),
        ("mm_fraction", MIN_MM_FRACTION - 1),
        ("mm_fraction", MAX_MM_FRACTION + 1),
    ],
)
def test_params__outside_bounds__raise(field: str, value: int) -> None:
    fields = {**PARAMS.__dict__, field: value}
    with pytest.raises(ValueError, match=field):
        VolParams(**fields)


def test_params__at_bounds__accepted() -> None:
    VolParams(MIN_EPOCH, MIN_DECAY, MIN_Z, MIN_HORIZON, MIN_FLOOR, MIN_FLOOR, MIN_MM_FRACTION)
    VolParams(MAX_EPOCH, MAX_DECAY, MAX_Z, MAX_HORIZON, MAX_CAP, MAX_CAP, MAX_MM_FRACTION)


def test_state__outside_bounds__raise() -> None:
    with pytest.raises(ValueError, match="var"):
        VolState(var=MAX_VAR + 1)
    with pytest.raises(ValueError, match="var"):
        VolState(var=-1)
    with pytest.raises(ValueError, match="anchor_price"):
        VolState(var=0, anchor_price=MAX_PRICE + 1)


def test_bounds__every_intermediate_fits_in_uint256() -> None:
    # the products the Vyper code forms, at their largest
    n_max = 2**64 - 1
    sigma_max = sigma_horizon(MAX_VAR, MAX_HORIZON)
    worst = [
        MAX_PRICE * WAD,  # |price - anchor| * WAD
        MAX_RETURN * MAX_RETURN,  # r * r
        WAD * n_max * MAX_EPOCH,  # WAD * n * epoch
        MAX_VAR * WAD + MAX_VAR * WAD,  # var * D + x * (WAD - D), x <= MAX_VAR
        WAD * WAD,  # wad_pow products
        MAX_VAR * MAX_HORIZON * WAD,  # var * horizon * WAD
        MAX_Z * sigma_max,  # z * sigma
        MAX_CAP * MAX_MM_FRACTION,  # im * mm_fraction
    ]
    assert max(worst) <= UINT256_MAX


def test_decay_from_half_life__values() -> None:
    assert decay_from_half_life(1) == WAD // 2
    assert decay_from_half_life(2) == 707_106_781_186_547_524  # floor(1e18 / sqrt(2)) = floor(707106781186547524.4008)
    with pytest.raises(ValueError):
        decay_from_half_life(0)


@given(st.integers(1, 2_000))
def test_decay_from_half_life__is_the_largest_integer_below_the_root(h: int) -> None:
    y = decay_from_half_life(h)
    assert 2 * y**h <= WAD**h < 2 * (y + 1) ** h
    assert MIN_DECAY <= y <= MAX_DECAY


# --------------------------------------------------------------------------
#                              update: units
# --------------------------------------------------------------------------


def test_update__first_sample__sets_the_anchor_and_keeps_var() -> None:
    state = update(VolState(var=123), PARAMS, 100 * WAD, 10 * HOUR + 59)
    assert state == VolState(var=123, anchor_price=100 * WAD, anchor_epoch=10)


def test_update__one_epoch_later__hand_computed() -> None:
    state = anchored(0, 100 * WAD, epoch_index=10)
    # r = 10% = 1e17; x = ceil(1e34 / (1e18 * 1 * 3600)) = ceil(2,777,777,777,777.78) = 2,777,777,777,778
    # D = 0.5 (n = 1, exact); var' = ceil((0 * D + x * 0.5e18) / 1e18) = ceil(1,388,888,888,889) = 1,388,888,888,889
    new = update(state, PARAMS, 110 * WAD, 11 * HOUR)
    assert new == VolState(var=1_388_888_888_889, anchor_price=110 * WAD, anchor_epoch=11)


def test_update__gap_of_three_epochs__hand_computed() -> None:
    state = anchored(8_000, 100 * WAD, epoch_index=10)
    # r = 20%; x = ceil(4e34 / (1e18 * 3 * 3600)) = ceil(3,703,703,703,703.7) = 3,703,703,703,704
    # x >= var: D = 0.5**3 = 0.125 (rounded down, exact);
    # var' = ceil((8,000 * 0.125e18 + x * 0.875e18) / 1e18) = ceil(1,000 + 3,240,740,740,741) = 3,240,740,741,741
    new = update(state, PARAMS, 80 * WAD, 13 * HOUR + 1)
    assert new == VolState(var=3_240_740_741_741, anchor_price=80 * WAD, anchor_epoch=13)


def test_update__constant_price__hand_computed_decay() -> None:
    state = anchored(1_000_001, 100 * WAD, epoch_index=10)
    # x = 0 < var: D = 0.5 (rounded up, exact); var' = ceil(1,000,001 / 2) = 500,001
    assert update(state, PARAMS, 100 * WAD, 11 * HOUR).var == 500_001


def test_update__same_epoch__unchanged() -> None:
    state = anchored(5_000, 100 * WAD, epoch_index=10)
    assert update(state, PARAMS, 150 * WAD, 10 * HOUR) is state
    assert update(state, PARAMS, 1, 11 * HOUR - 1) is state
    assert update(state, PARAMS, 150 * WAD, 9 * HOUR) is state  # an earlier time too


@pytest.mark.parametrize("price", [0, MAX_PRICE + 1])
def test_update__price_outside_bounds__raises(price: int) -> None:
    with pytest.raises(ValueError, match="price"):
        update(anchored(0, WAD), PARAMS, price, 2_000 * HOUR)


def test_update__huge_move__return_clamped() -> None:
    state = anchored(0, WAD, epoch_index=10)
    # r = MAX_RETURN = 10e18; x = ceil(1e38 / (1e18 * 3600)) = 27,777,777,777,777,778; var' = ceil(x / 2)
    assert update(state, PARAMS, 10**6 * WAD, 11 * HOUR).var == 13_888_888_888_888_889


# --------------------------------------------------------------------------
#                           update: properties
# --------------------------------------------------------------------------


@given(
    params_st(),
    variances,
    prices,
    st.lists(st.tuples(st.integers(0, 40 * DAY), moves), min_size=1, max_size=30),
)
def test_update__splitting_calls__only_the_first_call_of_each_epoch_counts(
    params: VolParams, var: int, anchor: int, calls: list[tuple[int, int]]
) -> None:
    # (1) any sequence of calls equals the sequence of the first call in each epoch
    calls = sorted(calls, key=lambda call: call[0])
    every, firsts = anchored(var, anchor, epoch_index=0), anchored(var, anchor, epoch_index=0)
    seen: set[int] = {0}
    for now, move in calls:
        price = moved(anchor, move)
        every = update(every, params, price, now)
        if now // params.epoch not in seen:
            seen.add(now // params.epoch)
            firsts = update(firsts, params, price, now)
    assert every == firsts


@given(params_st(), variances, prices, moves, moves, st.integers(1, 10**6), st.integers(0, MAX_EPOCH))
def test_update__second_call_in_the_same_epoch__changes_nothing(
    params: VolParams, var: int, anchor: int, move1: int, move2: int, n: int, offset: int
) -> None:
    start = anchored(var, anchor, epoch_index=10)
    t1 = (10 + n) * params.epoch + offset % params.epoch
    t2 = (10 + n + 1) * params.epoch - 1
    once = update(start, params, moved(anchor, move1), t1)
    assert update(once, params, moved(anchor, move2), t2) == once


@given(params_st(), variances, prices, moves, epochs_ahead)
def test_update__n_epochs__is_never_below_the_exact_ewma_and_close_to_it(
    params: VolParams, var: int, anchor: int, move: int, n: int
) -> None:
    # (2) waiting n epochs then sampling gives var * D^n + x * (1 - D^n)
    state = anchored(var, anchor)
    price = moved(anchor, move)
    new = update(state, params, price, (1_000 + n) * params.epoch)
    exact = exact_update(state, params, price, n)
    r = period_return_up(anchor, price)
    x = -(-(r * r) // (WAD * n * params.epoch))
    assert exact <= new.var
    # roundings: r (+1 wei: x grows by (2r + 1) / (WAD n epoch) < 1), x (+1), D (n - 1 wei of var or x), final ceil (+1)
    assert new.var - exact <= 3 + Fraction(max(var, x) * n, WAD)
    assert (new.anchor_price, new.anchor_epoch) == (price, 1_000 + n)


@given(params_st(), variances, prices, moves, epochs_ahead)
def test_update__new_var__lies_between_old_var_and_the_observation(
    params: VolParams, var: int, anchor: int, move: int, n: int
) -> None:
    price = moved(anchor, move)
    r = period_return_up(anchor, price)
    x = -(-(r * r) // (WAD * n * params.epoch))
    new = update(anchored(var, anchor), params, price, (1_000 + n) * params.epoch).var
    assert min(var, x) <= new <= max(var, x)


@given(params_st(), variances, prices, st.integers(1, 300))
def test_update__constant_price_each_epoch_or_once__agree(params: VolParams, var: int, anchor: int, n: int) -> None:
    # (2) path independence: n one-epoch decays vs one n-epoch decay (price unchanged)
    stepped = anchored(var, anchor)
    for k in range(1, n + 1):
        stepped = update(stepped, params, anchor, (1_000 + k) * params.epoch)
    jumped = update(anchored(var, anchor), params, anchor, (1_000 + n) * params.epoch)
    assert stepped.anchor_epoch == jumped.anchor_epoch
    # each step's ceil adds < 1 wei (then decays), the jump's D is within n - 1 wei of d^n
    assert abs(stepped.var - jumped.var) <= n + 1 + var * n // WAD


@given(params_st(), variances, st.integers(1, 400))
def test_update__constant_price__var_decays_monotonically_and_stays_non_negative(
    params: VolParams, var: int, epochs: int
) -> None:
    # (3) a constant price never raises var; it strictly falls while var >= WAD / (WAD - d)
    state = anchored(var, WAD)
    stuck = -(-WAD // (WAD - params.decay))
    for k in range(1, epochs + 1):
        new = update(state, params, WAD, (1_000 + k) * params.epoch)
        assert 0 <= new.var <= state.var
        if state.var >= stuck:
            assert new.var < state.var
        state = new
    # v_k+1 = ceil(v_k d) <= v_k d + 1, so v_n <= var d^n + n
    assert state.var <= var * Fraction(params.decay, WAD) ** epochs + epochs


@given(params_st(), variances, prices, moves, moves, epochs_ahead)
def test_update__bigger_move__never_smaller_var(
    params: VolParams, var: int, anchor: int, move1: int, move2: int, n: int
) -> None:
    # (6) at the same times, a larger |price - anchor| gives a var at least as large (either direction)
    p1, p2 = moved(anchor, move1), moved(anchor, move2)
    assume(abs(p1 - anchor) <= abs(p2 - anchor))
    now = (1_000 + n) * params.epoch
    small = update(anchored(var, anchor), params, p1, now)
    big = update(anchored(var, anchor), params, p2, now)
    assert small.var <= big.var
    assert im_rate(small, params) <= im_rate(big, params)


@given(params_st(), variances, variances, prices, moves, epochs_ahead)
def test_update__higher_old_var__never_smaller_new_var(
    params: VolParams, var1: int, var2: int, anchor: int, move: int, n: int
) -> None:
    low, high = sorted((var1, var2))
    now = (1_000 + n) * params.epoch
    price = moved(anchor, move)
    new_low = update(anchored(low, anchor), params, price, now)
    assert new_low.var <= update(anchored(high, anchor), params, price, now).var


@given(params_st(), realistic_variances, prices, st.integers(-WAD // 2, WAD), epochs_ahead)
def test_update__matches_a_float_reference(params: VolParams, var: int, anchor: int, move: int, n: int) -> None:
    # (5) float: var * exp(n ln d) + r^2 / (n epoch) * (1 - exp(n ln d))
    price = moved(anchor, move)
    new = update(anchored(var, anchor), params, price, (1_000 + n) * params.epoch).var
    retention = math.exp(n * math.log(params.decay / WAD))
    r = abs(price - anchor) / anchor
    expected = var * retention + r * r * WAD / (n * params.epoch) * (1 - retention)
    assert new == pytest.approx(expected, rel=1e-9, abs=4)


# --------------------------------------------------------------------------
#                                  Rates
# --------------------------------------------------------------------------


def test_im_rate__hand_computed() -> None:
    state = VolState(var=25 * 10**10)
    # sigma = ceil(sqrt(25e10 * 10,000 * 1e18)) = sqrt(25e32) = 5e16 (5%); base = 3 * 5% = 15%
    assert sigma_horizon(state.var, PARAMS.horizon) == 5 * 10**16
    assert im_rate(state, PARAMS) == 15 * 10**16
    assert mm_rate(state, PARAMS) == 75 * 10**15  # 15% * 0.5


def test_im_rate__floor_and_cap_bind() -> None:
    assert im_rate(VolState(var=0), PARAMS) == PARAMS.floor
    assert im_rate(VolState(var=MAX_VAR), PARAMS) == PARAMS.cap


def test_rates__round_up() -> None:
    params = replace(PARAMS, mm_fraction=WAD // 3)
    state = VolState(var=25 * 10**10 + 1)
    # var * horizon * WAD = 2,500,000,000,010,000e18; isqrt = 50,000,000,000,099,999 (not a square): sigma = ...100,000
    assert sigma_horizon(state.var, params.horizon) == 50_000_000_000_100_000
    # im = ceil(3 * sigma) = 150,000,000,000,300,000 (exact)
    assert im_rate(state, params) == 150_000_000_000_300_000
    # mm = ceil(150,000,000,000,300,000 * 333,333,333,333,333,333 / 1e18) = ceil(50,000,000,000,099,999.9499...)
    assert mm_rate(state, params) == 50_000_000_000_100_000


@given(params_st(), variances, variances)
def test_im_rate__monotone_in_var_and_within_floor_and_cap(params: VolParams, var1: int, var2: int) -> None:
    # (4)
    low, high = sorted((var1, var2))
    im_low, im_high = im_rate(VolState(var=low), params), im_rate(VolState(var=high), params)
    assert params.floor <= im_low <= im_high <= params.cap
    mm = mm_rate(VolState(var=high), params)
    assert mm < im_high or im_high == 0
    assert mm * WAD >= im_high * params.mm_fraction


@given(params_st(), variances)
def test_im_rate__never_below_the_exact_rate_and_matches_a_float_reference(params: VolParams, var: int) -> None:
    # (5) rates round up: im >= clamp(z * sqrt(var * horizon)) exactly, and within 1e-9 of the float value
    im = im_rate(VolState(var=var), params)
    exact_sq = Fraction(params.z, WAD) ** 2 * Fraction(var * params.horizon, WAD)  # (z sigma)^2, as a fraction of 1
    if exact_sq <= Fraction(params.cap, WAD) ** 2:
        assert Fraction(im, WAD) ** 2 >= exact_sq
    expected = min(max(params.z / WAD * math.sqrt(var * params.horizon / WAD) * WAD, params.floor), params.cap)
    assert im == pytest.approx(expected, rel=1e-9, abs=2)


@given(params_st(), st.data())
def test_seed_var__gives_the_requested_rate(params: VolParams, data: st.DataObject) -> None:
    rate = data.draw(st.integers(params.floor, params.cap))
    var = seed_var(params, rate)
    assume(var < MAX_VAR)  # not clamped
    im = im_rate(VolState(var=var), params)
    # var is within 1 wei (relative 1 / var) of the exact seed, so sigma within 1 / (2 var); ceilings add <= z + 1 wei
    assert rate <= im <= rate + rate // (2 * var) + params.z // WAD + 2


# --------------------------------------------------------------------------
#                      Calibration replay (synthetic bars)
# --------------------------------------------------------------------------


def _bars(closes: list[int]) -> list[Bar]:
    """Consecutive days from 2017-01-01; high and low 5% around the close."""
    start = date(2017, 1, 1)
    return [Bar(start + timedelta(days=i), c, c * 105 // 100, c * 95 // 100, c) for i, c in enumerate(closes)]


@given(st.lists(st.integers(50, 150), min_size=4, max_size=40), st.data())
def test_calibration__replay__uses_no_data_after_the_close(closes: list[int], data: st.DataObject) -> None:
    params = CHOSEN["BTC"].params(DAY)
    cut = data.draw(st.integers(0, len(closes) - 2))
    changed = closes[: cut + 1] + [c * 3 for c in closes[cut + 1 :]]
    before = replay(_bars([c * WAD for c in closes]), params, params.cap)
    after = replay(_bars([c * WAD for c in changed]), params, params.cap)
    assert [d.im for d in before[: cut + 1]] == [d.im for d in after[: cut + 1]]


def test_calibration__exceedance__is_strict_and_exact() -> None:
    day = Day(date(2020, 3, 11), im=WAD // 10, mm=WAD // 20, close=100 * WAD, next_open=100 * WAD,
              next_high=110 * WAD, next_low=90 * WAD)  # fmt: skip
    # both moves are exactly 10%: not above a 10% rate, above 10% - 1 wei
    assert not day.long_exceeds(WAD // 10) and not day.short_exceeds(WAD // 10)
    assert day.long_exceeds(WAD // 10 - 1) and day.short_exceeds(WAD // 10 - 1)
    assert count([day], lambda d: d.mm) == Count(days=1, long=1, short=1, either=1)


@pytest.mark.parametrize("asset", sorted(CHOSEN))
def test_calibration__defaults__hourly_and_daily_decay_agree(asset: str) -> None:
    hourly, daily = CHOSEN[asset].params(HOUR), onchain_params(asset, epoch=DAY)
    assert onchain_params(asset) == hourly
    # d_hourly = floor(d_exact^(1/24)) loses < 24 wei over 24 products; wad_pow loses < 23 more
    assert abs(wad_pow(hourly.decay, 24, round_up=False) - daily.decay) <= 48
    assert (hourly.z, hourly.horizon, hourly.floor, hourly.cap) == (daily.z, daily.horizon, daily.floor, daily.cap)
