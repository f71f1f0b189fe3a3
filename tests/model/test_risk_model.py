"""The volatility margin in the engine model (``docs/risk-model.md`` sections
10.1 and 10.3): the volatility rates word and its MM ramp, ``set_volatility``
and sampling in the simulator, base rates with the static rates as floors,
and liquidation sizing with the average MM rate in flagged markets.

Plain pytest + hypothesis, no chain. Hand-computed expectations show their
arithmetic in a comment.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    WAD,
    AccountState,
    Engine,
    LiquidationParams,
    Market,
    MarketParams,
    ModelRevert,
    Position,
    average_mm_rate,
    base_rates,
    floor_div,
    liquidation_notional,
    liquidation_size,
    mul_div_down,
    mul_div_up,
    pack_tiers,
    pack_vol_rates,
    requirements,
    tier_requirement,
    unpack_vol_rates,
    vol_after_sample,
    vol_mm_in_force,
)
from margin_engine.volatility import (
    MAX_DECAY,
    MAX_VAR,
    MIN_DECAY,
    VolParams,
    VolState,
    im_rate,
    mm_rate,
    seed_var,
    update,
)

USD = WAD
HOUR = 3_600
DAY = 86_400
UINT_MAX = 2**256 - 1
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARAMS = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=0, liq_fee=WAD // 100,
    max_oi=2**200, min_notional=10 * USD, funding_rate_max=0,
)  # fmt: skip
VOL = VolParams(
    epoch=HOUR,
    decay=WAD // 2,  # half-life of one epoch: reacts within a few samples
    z=3 * WAD,
    horizon=DAY,
    floor=WAD // 20,  # 5%
    cap=WAD // 2,  # 50%
    mm_fraction=WAD // 2,
)
T0 = 1_000 * HOUR  # an epoch boundary


@st.composite
def vol_params(draw: st.DrawFn) -> VolParams:
    floor = draw(st.integers(WAD // 200, WAD // 2))
    return VolParams(
        epoch=draw(st.sampled_from([300, HOUR, DAY])),
        decay=draw(st.integers(MIN_DECAY, MAX_DECAY)),
        z=draw(st.integers(WAD, 10 * WAD)),
        horizon=draw(st.sampled_from([HOUR, DAY, 7 * DAY])),
        floor=floor,
        cap=draw(st.integers(floor, WAD)),
        mm_fraction=draw(st.integers(WAD // 10, 9 * WAD // 10)),
    )


def vol_engine(params: MarketParams = PARAMS, vol: VolParams = VOL, rate: int = WAD // 10) -> Engine:
    """Market 0 with volatility seeded at base IM ``rate``, anchored at 2,000 USD at ``T0``."""
    engine = Engine(token_decimals=6, now=T0)
    engine.add_market(params, 2_000 * USD)
    engine.vault_deposit(10**15)
    engine.set_volatility(0, vol, seed_var(vol, rate))
    engine.update_volatility(0)  # first sample: the anchor only
    return engine


# --------------------------------------------------------------------------
#                          The volatility rates word
# --------------------------------------------------------------------------


def test_vol_rates_word__layout_and_round_trip() -> None:
    rates = (7, 3, 5, 100, 200)
    word = pack_vol_rates(rates)
    assert word == 7 | 3 << 64 | 5 << 128 | 100 << 192 | 200 << 224
    assert unpack_vol_rates(word) == rates
    assert vol_mm_in_force(word, 150) == vol_mm_in_force(rates, 150) == 3 + 2 * 50 // 100  # 4
    with pytest.raises(ValueError):
        pack_vol_rates((2**64, 0, 0, 0, 0))


def test_vol_mm_in_force__linear_rounded_down_then_the_target() -> None:
    rates = (WAD // 5, WAD // 20, WAD // 10, 1_000, 1_000 + DAY)
    assert vol_mm_in_force(rates, 1_000) == WAD // 20
    # 5% + 5% x 1/3 of the day, rounded down
    assert vol_mm_in_force(rates, 1_000 + DAY // 3) == WAD // 20 + (WAD // 20) * (DAY // 3) // DAY
    assert vol_mm_in_force(rates, 1_000 + DAY) == vol_mm_in_force(rates, 10**9) == WAD // 10
    assert vol_mm_in_force((0, 0, 0, 0, 0), 5) == 0  # volatility off


def test_vol_after_sample__higher_target_ramps_from_the_rate_in_force_lower_applies_at_once() -> None:
    rates = (WAD // 5, WAD // 20, WAD // 10, 0, DAY)
    now = DAY // 2
    cur = vol_mm_in_force(rates, now)  # 7.5%
    assert cur == 75 * WAD // 1_000
    # IM 30%, fraction 50%: target 15% > 7.5% -> ramp (30%, 7.5%, 15%, now, now + D)
    assert vol_after_sample(rates, 3 * WAD // 10, WAD // 2, now, HOUR) == (
        3 * WAD // 10, cur, 15 * WAD // 100, now, now + HOUR
    )  # fmt: skip
    # IM 12%: target 6% <= 7.5% -> at once
    assert vol_after_sample(rates, 12 * WAD // 100, WAD // 2, now, HOUR) == (
        12 * WAD // 100, 6 * WAD // 100, 6 * WAD // 100, now, now
    )  # fmt: skip
    # target rounded up: 1 wei x 50% -> 1 wei
    assert vol_after_sample((0, 0, 0, 0, 0), 1, WAD // 2, 7, HOUR) == (1, 0, 1, 7, 7 + HOUR)


@FAST
@given(
    im=st.integers(0, WAD),
    fraction=st.integers(WAD // 10, 9 * WAD // 10),
    old=st.tuples(st.integers(0, WAD), st.integers(0, WAD), st.integers(0, WAD)),
    start=st.integers(0, 10**6),
    span=st.integers(0, 30 * DAY),
    at=st.integers(0, 40 * DAY),
    later=st.integers(0, 40 * DAY),
    duration=st.integers(HOUR, 30 * DAY),
)
def test_vol_after_sample__continuous_at_the_sample_then_at_most_the_target(
    im: int,
    fraction: int,
    old: tuple[int, int, int],
    start: int,
    span: int,
    at: int,
    later: int,
    duration: int,
) -> None:
    """A sample never raises MM at its own timestamp (it restarts from the
    rate in force or applies a lower target), MM never exceeds the target
    ``mm_fraction * im < im`` and moves monotonically toward it."""
    o_im, o_from, o_to = old
    assume(o_from <= o_to)  # a stored ramp always rises
    rates = (o_im, o_from, o_to, start, start + span)
    now = start + at
    new = vol_after_sample(rates, im, fraction, now, duration)
    assert new[0] == im
    assert vol_mm_in_force(new, now) <= vol_mm_in_force(rates, now)
    target = mul_div_up(im, fraction, WAD)
    assert new[2] == target and target <= im
    assert vol_mm_in_force(new, now) <= vol_mm_in_force(new, now + later) <= target
    assert vol_mm_in_force(new, now + duration) == target


# --------------------------------------------------------------------------
#                            Base rates (floors)
# --------------------------------------------------------------------------


def test_base_rates__static_rates_are_floors() -> None:
    market = Market(params=PARAMS, price=WAD, risk=True, vol_rates=(WAD // 20, WAD // 50, WAD // 40, 0, DAY))
    # vol IM 5% < imr 10%; vol MM at 0 is 2% < mmr 5%
    assert base_rates(market, 0) == (WAD // 10, WAD // 20)
    market.vol_rates = (WAD // 4, WAD // 10, WAD // 8, 0, DAY)
    assert base_rates(market, 0) == (WAD // 4, WAD // 10)
    assert base_rates(market, DAY) == (WAD // 4, WAD // 8)
    # a static mmr ramp is the floor in force
    market.vol_rates = (0, 0, 0, 0, 0)
    market.mm_ramp = (WAD // 20, WAD // 10, 0, DAY)
    assert base_rates(market, DAY // 2) == (WAD // 10, WAD // 20 + WAD // 40)


def test_requirements__vol_and_tiers_compose() -> None:
    market = Market(
        params=PARAMS, price=WAD, risk=True,
        vol_rates=(WAD // 5, WAD // 10, WAD // 10, 0, 0), tiers=pack_tiers((100,), (200,)),
    )  # fmt: skip
    # 1,000 USD: IM 100 at 20% + 900 at 40% = 380; MM 100 at 10% + 900 at 20% = 190
    assert requirements(market, 1_000 * USD, 5) == (380 * USD, 190 * USD)
    assert average_mm_rate(market, 1_000 * USD, 5) == 19 * WAD // 100


# --------------------------------------------------------------------------
#                       Engine: set_volatility, sampling
# --------------------------------------------------------------------------


def test_set_volatility__seeds_clears_the_anchor_and_ramps_mm() -> None:
    engine = Engine(token_decimals=6, now=T0)
    engine.add_market(PARAMS, 2_000 * USD)
    market = engine.markets[0]
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        engine.set_volatility(0, VOL, 0)  # turning it on needs a seed
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        engine.set_volatility(0, VOL, MAX_VAR + 1)
    assert not market.risk
    market.long_oi = 10**18  # white box: someone holds the market, so MM ramps
    seed = seed_var(VOL, VOL.cap)
    engine.set_volatility(0, VOL, seed)
    assert market.risk and market.vol_state == VolState(var=seed)
    im = im_rate(market.vol_state, VOL)
    assert im == VOL.cap
    # IM at once, MM ramps from 0 (nothing in force) to 25%
    assert market.vol_rates == (im, 0, mm_rate(market.vol_state, VOL), T0, T0 + DAY)
    assert requirements(market, 1_000 * USD, T0) == (500 * USD, 50 * USD)  # IM 50%; MM the static 5%
    engine.update_volatility(0)
    assert market.vol_state == VolState(var=seed, anchor_price=2_000 * USD, anchor_epoch=T0 // HOUR)
    # parameters again, no seed: var kept, anchor cleared, ramp restarted from the rate in force
    engine.now = T0 + DAY // 2
    cur = vol_mm_in_force(market.vol_rates, engine.now)
    engine.set_volatility(0, VOL, 0)
    assert market.vol_state == VolState(var=seed)
    assert market.vol_rates == (im, cur, VOL.cap // 2, engine.now, engine.now + DAY)
    # off: words zero, flag kept; on again needs a seed
    engine.set_volatility(0, None, 0)
    assert market.risk and market.vol_params is None and market.vol_state is None
    assert market.vol_rates == (0, 0, 0, 0, 0)
    assert requirements(market, 1_000 * USD, engine.now) == (100 * USD, 50 * USD)
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        engine.set_volatility(0, VOL, 0)


def test_sample__first_anchors_then_once_per_epoch() -> None:
    engine = Engine(token_decimals=6, now=T0 + 10)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.set_volatility(0, VOL, seed_var(VOL, WAD // 10))
    market = engine.markets[0]
    rates = market.vol_rates
    engine.sample(0)  # first: anchor only, rates word kept
    assert market.vol_state.anchor_price == 2_000 * USD and market.vol_rates == rates
    engine.set_price(0, 2_400 * USD)
    engine.now = T0 + HOUR - 1  # same epoch: nothing
    state = market.vol_state
    engine.update_volatility(0)
    assert market.vol_state is state and market.vol_rates == rates
    engine.now = T0 + HOUR  # next epoch: +20%
    engine.update_volatility(0)
    expected = update(state, VOL, 2_400 * USD, T0 + HOUR)
    assert market.vol_state == expected
    assert market.vol_rates == vol_after_sample(rates, im_rate(expected, VOL), VOL.mm_fraction, T0 + HOUR, DAY)


def test_sample__static_and_tiers_only_markets_do_nothing() -> None:
    engine = Engine(token_decimals=6, now=T0)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.set_tiers(1, (10,), (200,))
    for m in (0, 1):
        before = copy.deepcopy(engine.markets[m])
        engine.sample(m)
        assert vars(engine.markets[m]) == vars(before)
        with pytest.raises(ModelRevert, match="risk: no volatility"):
            engine.update_volatility(m)


def test_jump_in_sigma__im_at_once_mm_ramps() -> None:
    engine = vol_engine(rate=WAD // 10)
    market = engine.markets[0]
    n = 10_000 * USD
    engine.now = T0 + HOUR
    before_im, before_mm = requirements(market, n, engine.now)
    engine.set_price(0, 2_600 * USD)  # +30% in an hour
    engine.update_volatility(0)
    im = im_rate(market.vol_state, VOL)
    target = mul_div_up(im, VOL.mm_fraction, WAD)
    assert im == VOL.cap  # the jump reaches the cap
    im_now, mm_now = requirements(market, n, engine.now)
    assert im_now == mul_div_up(n, im, WAD) > before_im  # IM at once
    assert mm_now == before_mm  # MM unchanged at the sample
    start = engine.now
    for el in (1, DAY // 4, DAY // 2, DAY - 1):
        cur = market.vol_rates[1] + (target - market.vol_rates[1]) * el // DAY
        assert requirements(market, n, start + el)[1] == mul_div_up(n, max(cur, PARAMS.mmr), WAD)
    assert requirements(market, n, start + DAY)[1] == mul_div_up(n, target, WAD)


def test_trades_and_liquidations_sample_before_valuation() -> None:
    engine = vol_engine(rate=WAD // 10)
    market = engine.markets[0]
    engine.deposit("trader", 0, 2_000 * 10**6)
    engine.modify_position("trader", 0, 0, 9 * WAD, 2**255)  # 18,000 USD at IM 10%: HEALTHY
    engine.now = T0 + HOUR
    engine.set_price(0, 2_400 * USD)  # +20%: the sample lifts IM far above 10%
    assert engine.account("trader", 0).status == HEALTHY  # the view does not sample
    state = copy.deepcopy(market)
    with pytest.raises(ModelRevert, match="engine: unhealthy"):
        engine.modify_position("trader", 0, 0, WAD // 10, 2**255)  # valued after the sample
    assert vars(market) == vars(state)  # a reverted trade does not sample
    engine.modify_position("trader", 0, 0, -WAD, 0)  # a reduction samples
    assert market.vol_state.anchor_price == 2_400 * USD and market.vol_state.anchor_epoch == T0 // HOUR + 1
    assert market.vol_rates[0] == im_rate(market.vol_state, VOL) > WAD // 10


# --------------------------------------------------------------------------
#            Volatility alone never liquidates a healthy account
# --------------------------------------------------------------------------


@st.composite
def vol_accounts(draw: st.DrawFn) -> Engine:
    """An account ``("trader", 0)`` in 1-2 volatility markets (some tiered),
    funding off, after a random history of samples."""
    engine = Engine(token_decimals=draw(st.sampled_from([6, 18])), now=draw(st.integers(10**6, 10**9)))
    engine.ramp_duration = draw(st.integers(HOUR, 30 * DAY))
    acct = engine._account("trader", 0)
    for _ in range(draw(st.integers(1, 2))):
        mmr = draw(st.integers(WAD // 200, WAD // 10))
        params = MarketParams(**{**vars(PARAMS), "imr": draw(st.integers(mmr, WAD // 5)), "mmr": mmr})
        price = draw(st.integers(10**17, 10**23))
        m = engine.add_market(params, price)
        vol = draw(vol_params())
        engine.set_volatility(m, vol, draw(st.integers(1, seed_var(vol, vol.cap))))
        if draw(st.booleans()):
            engine.set_tiers(m, (draw(st.integers(1, 10**5)),), (draw(st.integers(100, 1_000)),))
        size = draw(st.integers(10**15, 10**24)) * draw(st.sampled_from([1, -1]))
        acct.positions[m] = Position(size, draw(st.integers(price // 2, price * 3 // 2)), 0)
        for _ in range(draw(st.integers(0, 4))):
            engine.advance(draw(st.integers(0, 2 * vol.epoch)))
            engine.set_price(m, max(price * draw(st.integers(500, 2_000)) // 1_000, 1))
            engine.sample(m)
    acct.balance = draw(st.integers(0, 10**10)) * 10 ** draw(st.integers(0, 12))
    return engine


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine=vol_accounts(), data=st.data())
def test_sample__never_raises_mm_at_its_timestamp(engine: Engine, data: st.DataObject) -> None:
    """Valued at the same price and time, the account's MM just after a sample
    is at most what it was just before (IM may jump): a sample alone never
    makes an account LIQUIDATABLE that was not a moment before."""
    m = data.draw(st.sampled_from(sorted(engine.markets)))
    engine.advance(data.draw(st.integers(0, 3 * engine.markets[m].vol_params.epoch)))
    price = engine.markets[m].price
    engine.set_price(m, max(price * data.draw(st.integers(100, 5_000)) // 1_000, 1))  # -90% .. +400%
    before = engine.account("trader", 0)
    engine.update_volatility(m)
    after = engine.account("trader", 0)
    assert after.equity_maint == before.equity_maint
    assert after.mm_required <= before.mm_required
    event("IM rose" if after.im_required > before.im_required else "IM did not rise")
    if before.status != LIQUIDATABLE:
        assert after.status != LIQUIDATABLE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine=vol_accounts(), data=st.data())
def test_vol_ramp__healthy_after_a_sample_never_liquidatable_at_frozen_prices(
    engine: Engine, data: st.DataObject
) -> None:
    """HEALTHY right after a sample (the new IM applies at once) means never
    LIQUIDATABLE while MM ramps, at frozen prices and without a new sample:
    ``E >= IM >= MM(t)`` since ``vol_mm(t) <= mm_fraction * vol_im``."""
    m = data.draw(st.sampled_from(sorted(engine.markets)))
    engine.advance(data.draw(st.integers(0, 3 * engine.markets[m].vol_params.epoch)))
    engine.set_price(m, max(engine.markets[m].price * data.draw(st.integers(100, 5_000)) // 1_000, 1))
    for market_id in engine.markets:
        engine.sample(market_id)
    assume(engine.status("trader", 0) == HEALTHY)
    start = engine.now
    for t in sorted(data.draw(st.lists(st.integers(0, 40 * DAY), max_size=6))):
        engine.now = start + t
        assert engine.status("trader", 0) != LIQUIDATABLE


# --------------------------------------------------------------------------
#             Liquidation sizing with the average MM rate (10.3)
# --------------------------------------------------------------------------


def test_liquidation_size__uses_the_average_rate_in_a_flagged_market() -> None:
    market = Market(params=PARAMS, price=1_000 * USD, long_oi=10 * WAD, risk=True, tiers=pack_tiers((5_000,), (300,)))
    pos = Position(10 * WAD, 1_000 * USD, 0)
    # notional 10,000: MM 5,000 at 5% + 5,000 at 15% = 1,000, average 10%
    mmr_avg = average_mm_rate(market, 10_000 * USD, 0)
    assert mmr_avg == WAD // 10
    state = AccountState(
        equity_init=900 * USD, equity_maint=900 * USD, im_required=0, mm_required=1_000 * USD, status=LIQUIDATABLE
    )
    liq = LiquidationParams(buffer=0, liquidator_share=WAD // 2, reward_floor=0, reward_cap=2**255)
    n = liquidation_notional(state, PARAMS, liq, 1, mmr=mmr_avg)
    # deficit 100 USD + 3 + 8 wei over (10% - 1%)
    assert n == mul_div_up(100 * USD + 11, WAD, WAD // 10 - WAD // 100)
    assert liquidation_size(state, pos, market, liq, UINT_MAX, 1, now=0) == mul_div_up(n, WAD, 1_000 * USD)
    with pytest.raises(ValueError):
        liquidation_size(state, pos, market, liq, UINT_MAX, 1)  # a flagged market needs `now`


@st.composite
def flagged_liquidatable_engines(draw: st.DrawFn) -> tuple[Engine, int]:
    """A random account ``("trader", 0)`` below maintenance, in markets with
    tiers and/or volatility (ramps possibly running), white-box setup."""
    decimals = draw(st.sampled_from([6, 8, 18]))
    liq = LiquidationParams(
        buffer=draw(st.integers(0, WAD // 5)),
        liquidator_share=draw(st.integers(0, WAD)),
        reward_floor=draw(st.integers(0, 10**6)),
        reward_cap=draw(st.integers(10**6, 10**12)),
    )
    engine = Engine(token_decimals=decimals, liq_params=liq, now=draw(st.integers(10**6, 10**9)))
    engine.ramp_duration = draw(st.integers(HOUR, 30 * DAY))
    engine.fund_insurance(draw(st.integers(1, 10**12)))
    engine.vault_deposit(10**15 * 10**decimals)
    acct = engine._account("trader", 0)
    for _ in range(draw(st.integers(1, 3))):
        mmr = draw(st.integers(WAD // 200, WAD // 5))
        params = MarketParams(
            imr=2 * mmr, mmr=mmr, fee_rate=0, liq_fee=draw(st.integers(0, mmr - 1)), max_oi=2**200,
            min_notional=draw(st.sampled_from([0, USD, 10 * USD])), funding_rate_max=draw(st.integers(0, 10**13)),
        )  # fmt: skip
        price = draw(st.integers(10**15, 10**24))
        m = engine.add_market(params, price)
        kind = draw(st.sampled_from(["tiers", "vol", "both", "flag only"]))
        if kind in ("tiers", "both"):
            k = draw(st.integers(1, 4))
            edges = sorted(draw(st.sets(st.integers(1, 10**6), min_size=k, max_size=k)))
            mults = sorted(draw(st.lists(st.integers(100, 10_000), min_size=k, max_size=k)))
            engine.set_tiers(m, edges, mults)
            if draw(st.booleans()):  # a second schedule, ramping from the first
                engine.advance(engine.ramp_duration)
                edges = sorted(draw(st.sets(st.integers(1, 10**6), min_size=k, max_size=k)))
                engine.set_tiers(m, edges, mults)
        if kind in ("vol", "both"):
            vol = draw(vol_params())
            engine.set_volatility(m, vol, draw(st.integers(1, seed_var(vol, vol.cap))))
        if kind == "flag only":
            engine.markets[m].risk = True
        notional_usd = draw(st.integers(1, 10**7))
        size = (notional_usd * WAD * WAD // price + draw(st.integers(0, 10**15))) * draw(st.sampled_from([1, -1]))
        entry = draw(st.integers(price // 2, price * 3 // 2))
        market = engine.markets[m]
        market.funding_index = draw(st.integers(-(10**18), 10**18))
        acct.positions[m] = Position(size, entry, draw(st.integers(-(10**18), 10**18)))
        market.long_oi = max(size, 0) + draw(st.integers(0, 10**24))
        market.short_oi = max(-size, 0) + draw(st.integers(0, 10**24))
    engine.advance(draw(st.integers(0, 2 * engine.ramp_duration)))
    for m in engine.markets:
        engine.sample(m)  # the liquidation's own sample is then a no-op
    market_id = draw(st.sampled_from(sorted(acct.positions)))
    state = engine.account("trader", 0)
    big_m = state.mm_required
    market = engine.markets[market_id]
    notional = mul_div_up(abs(acct.positions[market_id].size), market.price, WAD)
    rate = average_mm_rate(market, notional, engine.now)
    denom = mul_div_down(rate, WAD + liq.buffer, WAD) - market.params.liq_fee
    reach = max(notional - market.params.min_notional, 0) * denom // WAD * 9 // 10
    lowest = max(-big_m, mul_div_up(big_m, WAD + liq.buffer, WAD) - reach)
    if lowest < big_m and draw(st.integers(0, 4)) > 0:
        equity = draw(st.integers(lowest, big_m - 1))
    else:
        equity = draw(st.integers(-big_m, big_m - 1))
    acct.balance = floor_div(equity - state.equity_maint, engine.scale)
    return engine, market_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=flagged_liquidatable_engines())
def test_liquidation__average_rate_restores_the_buffer(case: tuple[Engine, int]) -> None:
    """In a flagged market, closing the uncapped ``q`` (position not closed in
    full) brings equity back to ``mm_required * (1 + buffer)`` (rounded up):
    the requirement is convex in the notional, so closing the top part lowers
    it by at least the average rate times the notional closed."""
    engine, market_id = case
    before = engine.account("trader", 0)
    assert before.status in (LIQUIDATABLE, BANKRUPT)
    pos = engine.position("trader", 0, market_id)
    assert pos is not None
    engine.liquidate("liquidator", "trader", 0, market_id, UINT_MAX)
    q = next(f["size_closed"] for name, f in reversed(engine.events) if name == "Liquidation")
    event("closed in full" if q == abs(pos.size) else "partial")
    if q == abs(pos.size):
        return
    after = engine.account("trader", 0)
    target = mul_div_up(after.mm_required, WAD + engine.liq_params.buffer, WAD)
    assert after.equity_maint >= target


def test_static_markets__unchanged_by_the_risk_fields() -> None:
    """A static market valued through ``requirements`` gives the engine-spec formulas."""
    market = Market(params=PARAMS, price=3_000 * USD, long_oi=WAD)
    pos = Position(WAD, 3_000 * USD, 0)
    state = AccountState(equity_init=0, equity_maint=100 * USD, im_required=0, mm_required=150 * USD, status=2)
    liq = LiquidationParams(buffer=WAD // 10, liquidator_share=WAD // 2, reward_floor=0, reward_cap=2**255)
    assert liquidation_size(state, pos, market, liq, UINT_MAX, 1) == liquidation_size(
        state, pos, market, liq, UINT_MAX, 1, now=123
    )
    assert requirements(market, 3_000 * USD, 0) == (300 * USD, 150 * USD)
    assert tier_requirement(3_000 * USD, PARAMS.mmr, 0) == 150 * USD
    assert Fraction(average_mm_rate(market, 3_000 * USD, 0), WAD) == Fraction(1, 20)
