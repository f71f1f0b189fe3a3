"""Unit tests of the configurator's risk-model parameters (docs/risk-model.md
sections 10 and 11): `set_volatility`, `set_tiers` and `set_call_params` --
their bounds, roles, delays and steps, the events they log here and in the
RiskModel, and the flagging of a market (RISK_BIT, bit 63 of the imr field
of the engine's rates word), which must leave every other parameter as it was.

How the RiskModel computes requirements from these parameters is tested in
`tests/unit/risk/`; the margin-call band itself in `test_margin_call.py`.
"""

from __future__ import annotations

import ape
import pytest

from margin_engine import volatility
from margin_engine.model import pack_tiers, vol_after_sample

from .conftest import BTC, ETH, MAX_UINT, RISK_BIT, WAD

DAY = 86_400
HOUR = 3_600
MISSING_ROLE = "access_control: account is missing role"
BAD_PARAMS = "configurator: bad params"
MAX_RATE_STEP = WAD // 20
MAX_VAR = 333_333_333_333_333_334
FIELDS = ("epoch", "decay", "z", "horizon", "floor", "cap", "mm_fraction")
# The calibrated BTC parameters (docs/risk-model.md section 9).
VOL = {
    "epoch": HOUR,
    "decay": 997_939_188_356_834_408,
    "z": 45 * WAD // 10,
    "horizon": DAY,
    "floor": WAD // 10,
    "cap": WAD // 2,
    "mm_fraction": WAD // 2,
}
SEED = 28_935_185_185  # about 5 % a day: IM about 4.5 x 5 % = 22.5 %
EDGES, MULTIPLIERS = [100_000, 1_000_000], [150, 300]
OFF = dict.fromkeys(FIELDS, 0)


# --------------------------------------------------------------------------
#                                 Helpers
# --------------------------------------------------------------------------


def vol(**changes) -> tuple:
    """The VolatilityParams struct in field order, VOL with `changes`."""
    values = {**VOL, **changes}
    return tuple(values[f] for f in FIELDS)


def set_vol(ctx, market=BTC, seed=SEED, sender=None, **changes):
    return ctx.configurator.set_volatility(market, vol(**changes), seed, sender=sender or ctx.risk_manager)


def set_tiers(ctx, market=BTC, edges=EDGES, multipliers=MULTIPLIERS, sender=None):
    return ctx.configurator.set_tiers(market, edges, multipliers, sender=sender or ctx.risk_manager)


def vol_rates(params: dict, var: int, timestamp: int, ramp: int = 0) -> tuple:
    """The RiskModel's volatility rates `(im, mm_from, mm_to, start, end)`
    after a parameter change from a zero rates word (section 10.1,
    `margin_engine.model.vol_after_sample`)."""
    vp = volatility.VolParams(**params)
    im = volatility.im_rate(volatility.VolState(var=var), vp)
    return vol_after_sample((0, 0, 0, 0, 0), im, vp.mm_fraction, timestamp, ramp)


def expected_vol_update(ctx, market, params: dict, var: int, timestamp: int, ramp: int = 0):
    """The VolatilityUpdated the RiskModel logs for that change."""
    im, mm_from, mm_to, start, end = vol_rates(params, var, timestamp, ramp)
    return ctx.risk.VolatilityUpdated(
        market=market,
        var=var,
        anchor_price=0,
        im_rate=im,
        mm_rate_from=mm_from,
        mm_rate_to=mm_to,
        ramp_start=start,
        ramp_end=end,
    )


def flag_events(ctx, market: int) -> list:
    """What flagging a market logs first: the engine's funding accrual and
    the configurator's MarketParamsSet with the parameters as stored."""
    return [
        ctx.engine.FundingAccrued(market=market, index=ctx.lens.market_state(market).funding_index),
        ctx.configurator.MarketParamsSet(market=market, **ctx.stored_params(market)),
    ]


def open_interest(ctx, trader, market=BTC):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, market, WAD // 100)
    assert ctx.oi(market) != (0, 0)


@pytest.fixture
def actors(admin, guardian, trader):
    return {"admin": admin, "guardian": guardian, "trader": trader}


# --------------------------------------------------------------------------
#                              set_volatility
# --------------------------------------------------------------------------

VOL_BOUNDS = [
    # (field, value, accepted); the other fields keep VOL
    ("epoch", 300, True),
    ("epoch", 299, False),
    ("epoch", DAY, True),
    ("epoch", DAY + 1, False),
    ("decay", WAD // 2, True),
    ("decay", WAD // 2 - 1, False),
    ("decay", WAD - WAD // 100_000, True),
    ("decay", WAD - WAD // 100_000 + 1, False),
    ("z", WAD, True),
    ("z", WAD - 1, False),
    ("z", 10 * WAD, True),
    ("z", 10 * WAD + 1, False),
    ("horizon", HOUR, True),
    ("horizon", HOUR - 1, False),
    ("horizon", 30 * DAY, True),
    ("horizon", 30 * DAY + 1, False),
    ("floor", WAD // 200, True),  # 0.5 % <= floor
    ("floor", WAD // 200 - 1, False),
    ("floor", WAD // 2, True),  # floor <= cap (50 %)
    ("floor", WAD // 2 + 1, False),
    ("cap", WAD // 10, True),  # cap >= floor (10 %)
    ("cap", WAD // 10 - 1, False),
    ("cap", WAD, True),  # cap <= 1
    ("cap", WAD + 1, False),
    ("mm_fraction", WAD // 10, True),
    ("mm_fraction", WAD // 10 - 1, False),
    ("mm_fraction", 9 * WAD // 10, True),
    ("mm_fraction", 9 * WAD // 10 + 1, False),
]


@pytest.mark.parametrize("field, value, accepted", VOL_BOUNDS)
def test_set_volatility__param_bounds(ctx, field, value, accepted):
    params = {**VOL, field: value}
    if not accepted:
        with ape.reverts(BAD_PARAMS):
            set_vol(ctx, **params)
        assert not ctx.configurator.uses_risk_model(BTC)
        assert ctx.engine.market_words(BTC)[2] & RISK_BIT == 0
        assert tuple(ctx.risk.volatility_params(BTC)) == (0,) * 7
        return

    receipt = set_vol(ctx, **params)

    assert receipt.events.filter(ctx.configurator.VolatilityParamsSet) == [
        ctx.configurator.VolatilityParamsSet(market=BTC, **params, seed_var=SEED)
    ]
    assert receipt.events.filter(ctx.risk.VolatilityUpdated) == [
        expected_vol_update(ctx, BTC, params, SEED, receipt.timestamp)
    ]
    assert tuple(ctx.risk.volatility_params(BTC)) == vol(**params)
    assert ctx.configurator.uses_risk_model(BTC)


@pytest.mark.parametrize("seed, accepted", [(1, True), (MAX_VAR, True), (MAX_VAR + 1, False), (0, False)])
def test_set_volatility__seed_bounds_and_required_when_turning_on(ctx, seed, accepted):
    if not accepted:
        with ape.reverts(BAD_PARAMS):
            set_vol(ctx, seed=seed)
        assert not ctx.configurator.uses_risk_model(BTC)
        return

    receipt = set_vol(ctx, seed=seed)

    assert receipt.events.filter(ctx.risk.VolatilityUpdated) == [
        expected_vol_update(ctx, BTC, VOL, seed, receipt.timestamp)
    ]


def test_set_volatility__unflagged_market__logged_flagged_and_stored(ctx):
    before = ctx.engine.market_words(BTC)
    expected_flag = flag_events(ctx, BTC)

    receipt = set_vol(ctx)

    t = receipt.timestamp
    # IM ceil(4.5 x sqrt_up(var x 1 day)), about 22.5 %, MM half of it; no
    # open interest: the MM rate applies at once (the ramp ends where it starts)
    im, mm_from, mm_to, start, end = vol_rates(VOL, SEED, t)
    assert abs(im - 225 * WAD // 1000) < 10**9
    assert (mm_from, mm_to, start, end) == (0, (im + 1) // 2, t, t)
    assert receipt.events == [
        *expected_flag,
        expected_vol_update(ctx, BTC, VOL, SEED, t),
        ctx.configurator.VolatilityParamsSet(market=BTC, **VOL, seed_var=SEED),
    ]
    assert ctx.configurator.volatility_changed_at(BTC) == t
    assert ctx.configurator.uses_risk_model(BTC)
    words = ctx.engine.market_words(BTC)
    assert words[2] == before[2] | RISK_BIT
    assert (words[0], words[1], words[3], words[4], words[5] >> 192) == (
        before[0],
        before[1],
        before[3],
        before[4],
        before[5] >> 192,
    )
    # ETH untouched
    assert not ctx.configurator.uses_risk_model(ETH)
    assert ctx.engine.market_words(ETH)[2] & RISK_BIT == 0


def test_set_volatility__open_interest__mm_ramps_in(ctx, trader):
    open_interest(ctx, trader)

    receipt = set_vol(ctx)

    assert receipt.events.filter(ctx.risk.VolatilityUpdated) == [
        expected_vol_update(ctx, BTC, VOL, SEED, receipt.timestamp, ramp=DAY)
    ]
    # the MM rate climbs from zero (the static mmr floors it) over a day
    im, mm_from, mm_to, start, end = vol_rates(VOL, SEED, receipt.timestamp, ramp=DAY)
    assert (mm_from, start, end) == (0, receipt.timestamp, receipt.timestamp + DAY)


@pytest.mark.parametrize("caller", ["admin", "guardian", "trader"])
def test_set_volatility__not_risk_manager__reverts(ctx, actors, caller):
    with ape.reverts(MISSING_ROLE):
        set_vol(ctx, sender=actors[caller])
    assert not ctx.configurator.uses_risk_model(BTC)
    assert ctx.configurator.volatility_changed_at(BTC) == 0


def test_set_volatility__unknown_market__reverts(ctx):
    assert ctx.engine.market_count() == 2
    with ape.reverts("configurator: unknown market"):
        set_vol(ctx, market=2)


def test_set_volatility__again_within_the_delay__too_soon(ctx):
    t0 = set_vol(ctx).timestamp

    # any change, even of z alone or turning it off, waits MIN_RATE_CHANGE_DELAY
    ctx.chain.pending_timestamp = t0 + HOUR - 10
    with ape.reverts("configurator: too soon"):
        ctx.configurator.set_volatility(BTC, tuple(OFF.values()), 0, sender=ctx.risk_manager)
    ctx.chain.pending_timestamp = t0 + HOUR - 1
    with ape.reverts("configurator: too soon"):
        set_vol(ctx, seed=0, z=4 * WAD)
    # (a reverted transaction is mined: the next one is at t0 + HOUR)

    receipt = set_vol(ctx, seed=0, z=4 * WAD)

    assert receipt.timestamp == t0 + HOUR
    assert ctx.configurator.volatility_changed_at(BTC) == t0 + HOUR
    assert ctx.risk.volatility_params(BTC)[2] == 4 * WAD


def test_set_volatility__off_and_on_again__waits_the_delay(ctx):
    # Turning volatility off and straight back on must not skip the step
    # bound of a live market: the second call waits the delay too.
    t0 = set_vol(ctx).timestamp
    ctx.chain.pending_timestamp = t0 + HOUR
    ctx.configurator.set_volatility(BTC, tuple(OFF.values()), 0, sender=ctx.risk_manager)
    with ape.reverts("configurator: too soon"):
        set_vol(ctx, floor=WAD, cap=WAD)
    assert ctx.risk.volatility_params(BTC) == (0,) * 7


def test_set_volatility__the_delay_is_per_market(ctx):
    set_vol(ctx, market=BTC)
    receipt = set_vol(ctx, market=ETH)
    assert ctx.configurator.volatility_changed_at(ETH) == receipt.timestamp


@pytest.mark.parametrize(
    "change, accepted",
    [
        ({"floor": WAD // 10 + MAX_RATE_STEP}, True),
        ({"floor": WAD // 10 + MAX_RATE_STEP + 1}, False),
        ({"floor": WAD // 10 - MAX_RATE_STEP}, True),
        ({"floor": WAD // 10 - MAX_RATE_STEP - 1}, False),
        ({"cap": WAD // 2 + MAX_RATE_STEP}, True),
        ({"cap": WAD // 2 + MAX_RATE_STEP + 1}, False),
        ({"cap": WAD // 2 - MAX_RATE_STEP}, True),
        ({"cap": WAD // 2 - MAX_RATE_STEP - 1}, False),
        ({"floor": WAD // 10 + MAX_RATE_STEP, "cap": WAD // 2 - MAX_RATE_STEP}, True),
    ],
)
def test_set_volatility__live_market__floor_and_cap_move_one_step_at_most(ctx, change, accepted):
    t0 = set_vol(ctx).timestamp
    ctx.chain.pending_timestamp = t0 + HOUR
    if not accepted:
        with ape.reverts("configurator: step"):
            set_vol(ctx, seed=0, **change)
        assert tuple(ctx.risk.volatility_params(BTC)) == vol()
        assert ctx.configurator.volatility_changed_at(BTC) == t0
        return

    receipt = set_vol(ctx, seed=0, **change)

    # seed 0 keeps the estimate
    (update,) = receipt.events.filter(ctx.risk.VolatilityUpdated)
    assert update.var == SEED
    assert tuple(ctx.risk.volatility_params(BTC)) == vol(**change)


def test_set_volatility__live_market__new_seed_replaces_the_estimate(ctx):
    t0 = set_vol(ctx).timestamp
    ctx.chain.pending_timestamp = t0 + HOUR

    receipt = set_vol(ctx, seed=4 * SEED)

    assert receipt.events.filter(ctx.risk.VolatilityUpdated)[0].var == 4 * SEED
    assert receipt.events.filter(ctx.configurator.VolatilityParamsSet)[0].seed_var == 4 * SEED


def test_set_volatility__turned_off_then_on__needs_a_seed_again(ctx):
    t0 = set_vol(ctx).timestamp
    ctx.chain.pending_timestamp = t0 + HOUR

    receipt = ctx.configurator.set_volatility(BTC, tuple(OFF.values()), 0, sender=ctx.risk_manager)

    assert receipt.events == [
        ctx.risk.VolatilityUpdated(
            market=BTC, var=0, anchor_price=0, im_rate=0, mm_rate_from=0, mm_rate_to=0, ramp_start=0, ramp_end=0
        ),
        ctx.configurator.VolatilityParamsSet(market=BTC, **OFF, seed_var=0),
    ]
    assert tuple(ctx.risk.volatility_params(BTC)) == (0,) * 7
    # the flag stays; the rates in force are the static ones again
    assert ctx.configurator.uses_risk_model(BTC)
    assert ctx.engine.market_words(BTC)[2] & RISK_BIT == RISK_BIT
    assert (ctx.lens.market_params(BTC).imr, ctx.lens.market_params(BTC).mmr) == (WAD // 10, WAD // 20)
    # on again: after the delay (no bypass of the step bound by off-and-on),
    # then with a seed and no step bound
    ctx.chain.pending_timestamp = receipt.timestamp + HOUR - 10
    with ape.reverts("configurator: too soon"):
        set_vol(ctx, floor=WAD // 5, cap=WAD)
    ctx.chain.pending_timestamp = receipt.timestamp + HOUR
    with ape.reverts(BAD_PARAMS):
        set_vol(ctx, seed=0)
    receipt = set_vol(ctx, floor=WAD // 5, cap=WAD)  # floor and cap far from the old ones
    assert receipt.events.filter(ctx.risk.VolatilityUpdated)[0].var == SEED


@pytest.mark.parametrize("field", FIELDS)
def test_set_volatility__some_fields_zero__reverts(ctx, field):
    # only all-zero parameters mean "off"
    with ape.reverts(BAD_PARAMS):
        set_vol(ctx, **{field: 0})


# --------------------------------------------------------------------------
#                                 set_tiers
# --------------------------------------------------------------------------

TIER_BOUNDS = [
    # (edges, multipliers, accepted)
    ([1], [100], True),  # smallest edge and multiplier
    ([0], [100], False),  # edges > 0
    ([2**32 - 1], [100], True),  # edges < 2**32
    ([2**32], [100], False),
    ([100], [99], False),  # multipliers >= 100
    ([100], [10_000], True),  # multipliers <= 10,000
    ([100], [10_001], False),
    ([100, 101], [150, 150], True),  # edges strictly increasing, multipliers non-decreasing
    ([100, 100], [150, 150], False),
    ([101, 100], [150, 150], False),
    ([100, 200], [150, 149], False),
    ([1, 2, 3, 2**32 - 1], [100, 100, 100, 10_000], True),  # four brackets
    ([1, 2, 3, 4], [100, 200, 300, 10_001], False),
    ([100], [], False),  # one multiplier per edge
    ([100, 200], [150], False),
    ([], [150], False),
    ([], [], True),  # no tiers
]


@pytest.mark.parametrize("edges, multipliers, accepted", TIER_BOUNDS)
def test_set_tiers__bounds(ctx, edges, multipliers, accepted):
    if not accepted:
        with ape.reverts(BAD_PARAMS):
            set_tiers(ctx, edges=edges, multipliers=multipliers)
        assert not ctx.configurator.uses_risk_model(BTC)
        assert ctx.engine.market_words(BTC)[2] & RISK_BIT == 0
        return

    receipt = set_tiers(ctx, edges=edges, multipliers=multipliers)

    assert receipt.events.filter(ctx.configurator.TiersSet) == [
        ctx.configurator.TiersSet(market=BTC, edges=edges, multipliers=multipliers)
    ]
    t = receipt.timestamp
    schedule = pack_tiers(edges, multipliers)
    assert receipt.events.filter(ctx.risk.TiersRamp) == [
        ctx.risk.TiersRamp(market=BTC, old_tiers=0, new_tiers=schedule, ramp_start=t, ramp_end=t)
    ]
    assert tuple(ctx.risk.tiers(BTC)) == (schedule, 0, t, t)
    assert ctx.configurator.uses_risk_model(BTC)


def test_set_tiers__five_brackets__reverts(ctx):
    # the arrays hold four at most: the call does not decode
    with ape.reverts():
        set_tiers(ctx, edges=[1, 2, 3, 4, 5], multipliers=[100] * 5)
    assert not ctx.configurator.uses_risk_model(BTC)


def test_set_tiers__unflagged_market__logged_flagged_and_stored(ctx):
    before = ctx.engine.market_words(BTC)
    expected_flag = flag_events(ctx, BTC)

    receipt = set_tiers(ctx)

    t = receipt.timestamp
    assert receipt.events == [
        *expected_flag,
        ctx.risk.TiersRamp(market=BTC, old_tiers=0, new_tiers=pack_tiers(EDGES, MULTIPLIERS), ramp_start=t, ramp_end=t),
        ctx.configurator.TiersSet(market=BTC, edges=EDGES, multipliers=MULTIPLIERS),
    ]
    words = ctx.engine.market_words(BTC)
    assert words[2] == before[2] | RISK_BIT
    assert (words[0], words[1], words[3], words[4], words[5] >> 192) == (
        before[0],
        before[1],
        before[3],
        before[4],
        before[5] >> 192,
    )
    assert not ctx.configurator.uses_risk_model(ETH)


def test_set_tiers__no_open_interest__applies_at_once_and_may_change_again(ctx):
    first = set_tiers(ctx)
    old = pack_tiers(EDGES, MULTIPLIERS)

    receipt = set_tiers(ctx, edges=[50_000], multipliers=[200])

    t = receipt.timestamp
    assert t > first.timestamp
    new = pack_tiers([50_000], [200])
    # already flagged: nothing written to the engine this time
    assert receipt.events == [
        ctx.risk.TiersRamp(market=BTC, old_tiers=old, new_tiers=new, ramp_start=t, ramp_end=t),
        ctx.configurator.TiersSet(market=BTC, edges=[50_000], multipliers=[200]),
    ]
    assert tuple(ctx.risk.tiers(BTC)) == (new, old, t, t)


def test_set_tiers__open_interest__ramp_on_until_its_end(ctx, trader):
    open_interest(ctx, trader)
    receipt = set_tiers(ctx)
    t0 = receipt.timestamp
    old = pack_tiers(EDGES, MULTIPLIERS)
    assert receipt.events.filter(ctx.risk.TiersRamp) == [
        ctx.risk.TiersRamp(market=BTC, old_tiers=0, new_tiers=old, ramp_start=t0, ramp_end=t0 + DAY)
    ]

    ctx.chain.pending_timestamp = t0 + DAY - 10
    with ape.reverts("configurator: ramp on"):
        set_tiers(ctx, edges=[], multipliers=[])
    # the other market has its own schedule
    set_tiers(ctx, market=ETH)
    ctx.chain.pending_timestamp = t0 + DAY - 1
    with ape.reverts("configurator: ramp on"):
        set_tiers(ctx, edges=[50_000], multipliers=[200])
    # (a reverted transaction is mined: the next one is at t0 + DAY)

    receipt = set_tiers(ctx, edges=[50_000], multipliers=[200])

    t1 = receipt.timestamp
    assert t1 == t0 + DAY
    new = pack_tiers([50_000], [200])
    assert receipt.events.filter(ctx.risk.TiersRamp) == [
        ctx.risk.TiersRamp(market=BTC, old_tiers=old, new_tiers=new, ramp_start=t1, ramp_end=t1 + DAY)
    ]


def test_set_tiers__ramp_follows_mm_ramp_duration(ctx, trader):
    ctx.configurator.set_mm_ramp_duration(7 * DAY, sender=ctx.admin)
    open_interest(ctx, trader)

    receipt = set_tiers(ctx)

    assert receipt.events.filter(ctx.risk.TiersRamp)[0].ramp_end == receipt.timestamp + 7 * DAY


@pytest.mark.parametrize("caller", ["admin", "guardian", "trader"])
def test_set_tiers__not_risk_manager__reverts(ctx, actors, caller):
    with ape.reverts(MISSING_ROLE):
        set_tiers(ctx, sender=actors[caller])
    assert not ctx.configurator.uses_risk_model(BTC)


def test_set_tiers__unknown_market__reverts(ctx):
    with ape.reverts("configurator: unknown market"):
        set_tiers(ctx, market=2)


# --------------------------------------------------------------------------
#                    Flagging keeps the market's parameters
# --------------------------------------------------------------------------


@pytest.mark.parametrize("setter", ["volatility", "tiers"])
def test_flagging__market_params_unchanged(ctx, trader, setter):
    # distinctive values in every field (not rates: no delay)
    ctx.set_params(BTC, fee_rate=WAD // 500, max_oi=77 * WAD, min_notional=25 * WAD, funding_rate_max=10**9)
    open_interest(ctx, trader)
    stored = ctx.stored_params(BTC)
    in_force = ctx.lens.market_params(BTC)
    rates = ctx.engine.market_words(BTC)[2]

    receipt = set_vol(ctx) if setter == "volatility" else set_tiers(ctx)

    assert receipt.events.filter(ctx.configurator.MarketParamsSet) == [
        ctx.configurator.MarketParamsSet(market=BTC, **stored)
    ]
    assert ctx.engine.market_words(BTC)[2] == rates | RISK_BIT
    assert ctx.stored_params(BTC) == stored
    after = ctx.lens.market_params(BTC)
    for field in ("fee_rate", "liq_fee", "max_oi", "min_notional", "funding_rate_max"):
        assert getattr(after, field) == getattr(in_force, field), field
    if setter == "tiers":  # no volatility: the base rates are the static ones
        assert (after.imr, after.mmr) == (in_force.imr, in_force.mmr)
    else:  # the volatility IM (about 22.5 %) is above the static 10 %
        assert after.imr == vol_rates(VOL, SEED, receipt.timestamp)[0] > WAD // 5
    # they still apply: the OI cap and the minimum notional
    with ape.reverts("engine: oi cap"):
        ctx.trade(trader, BTC, 77 * WAD)
    with ape.reverts("engine: dust"):
        ctx.trade(trader, BTC, -WAD // 100 + WAD // 10_000)


def test_flagging__once_only__set_volatility_after_tiers_writes_no_market_params(ctx):
    set_tiers(ctx)
    rates = ctx.engine.market_words(BTC)[2]

    receipt = set_vol(ctx)

    assert receipt.events.filter(ctx.configurator.MarketParamsSet) == []
    assert receipt.events.filter(ctx.engine.FundingAccrued) == []
    assert ctx.engine.market_words(BTC)[2] == rates


def test_flagging__later_set_market_params_keeps_the_flag(ctx):
    set_tiers(ctx)

    ctx.set_params(BTC, fee_rate=WAD // 500)

    assert ctx.engine.market_words(BTC)[2] & RISK_BIT == RISK_BIT
    assert ctx.stored_params(BTC)["fee_rate"] == WAD // 500
    assert ctx.lens.market_params(BTC).imr == WAD // 10


# --------------------------------------------------------------------------
#                              set_call_params
# --------------------------------------------------------------------------

CALL_BOUNDS = [
    # (call_buffer, fee_share, fraction, accepted)
    (0, 0, WAD // 100, True),  # band off, smallest fraction
    (WAD, WAD // 2, WAD // 2, True),  # every upper bound
    (WAD + 1, WAD // 2, WAD // 2, False),  # call_buffer <= 1
    (WAD, WAD // 2 + 1, WAD // 2, False),  # fee_share <= 50 %
    (WAD, WAD // 2, WAD // 2 + 1, False),  # fraction <= 50 %
    (0, 0, WAD // 100 - 1, False),  # fraction >= 1 %
    (0, 0, 0, False),
]


@pytest.mark.parametrize("buffer, fee_share, fraction, accepted", CALL_BOUNDS)
def test_set_call_params__bounds(ctx, buffer, fee_share, fraction, accepted):
    liq = tuple(ctx.engine.liquidation_params())
    reserve = ctx.engine.reserve_factor()
    if not accepted:
        with ape.reverts(BAD_PARAMS):
            ctx.configurator.set_call_params(buffer, fee_share, fraction, sender=ctx.risk_manager)
        assert tuple(ctx.configurator.call_params()) == (0, 0, 0)
        return

    receipt = ctx.configurator.set_call_params(buffer, fee_share, fraction, sender=ctx.risk_manager)

    assert receipt.events == [ctx.configurator.CallParamsSet(call_buffer=buffer, fee_share=fee_share, fraction=fraction)]
    assert tuple(ctx.configurator.call_params()) == (buffer, fee_share, fraction)
    # the other global words are rewritten as they were
    assert tuple(ctx.engine.liquidation_params()) == liq
    assert ctx.engine.reserve_factor() == reserve


@pytest.mark.parametrize("caller", ["admin", "guardian", "trader"])
def test_set_call_params__not_risk_manager__reverts(ctx, actors, caller):
    with ape.reverts(MISSING_ROLE):
        ctx.configurator.set_call_params(WAD // 10, WAD // 4, WAD // 4, sender=actors[caller])
    assert tuple(ctx.configurator.call_params()) == (0, 0, 0)


def test_set_call_params__reach_the_engine_and_survive_the_other_global_setters(ctx, trader, liquidator):
    ctx.fund(trader, ctx.tok("6860"))
    ctx.trade(trader, BTC, WAD)  # balance 6,800
    ctx.set_price(BTC, 57_000)  # E 3,800; MM 2,850 <= E < IM 5,700
    # the default band is off
    with ape.reverts("engine: not in band"):
        ctx.engine.margin_call(trader, 0, BTC, MAX_UINT, sender=liquidator)
    ctx.configurator.set_call_params(WAD // 2, WAD // 4, WAD // 4, sender=ctx.risk_manager)  # band up to 4,275
    # every other setter of the engine's global words keeps the call params
    ctx.configurator.set_reserve_factor(WAD // 3, sender=ctx.risk_manager)
    ctx.configurator.set_liquidation_params(tuple(ctx.engine.liquidation_params()), sender=ctx.risk_manager)
    ctx.configurator.set_margin_params(WAD // 10, 0, sender=ctx.risk_manager)
    assert tuple(ctx.configurator.call_params()) == (WAD // 2, WAD // 4, WAD // 4)

    receipt = ctx.engine.margin_call(trader, 0, BTC, MAX_UINT, sender=liquidator)

    # a quarter of the position; fee 14,250 x 2 % x 25 % = 71.25
    assert receipt.events.filter(ctx.engine.MarginCall) == [
        ctx.engine.MarginCall(
            owner=trader,
            sub=0,
            market=BTC,
            caller=liquidator,
            size_closed=WAD // 4,
            price=57_000 * WAD,
            fee=ctx.tok("71.25"),
        )
    ]
    assert ctx.engine.reserve_factor() == WAD // 3
