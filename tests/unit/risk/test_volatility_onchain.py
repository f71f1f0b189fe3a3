"""The volatility margin on chain (`RiskModel.vy`; docs/risk-model.md sections
3, 4 and 10.1) against the integer reference model, to the wei.

- `update_volatility` and trades sample the oracle price at most once per
  epoch: the state (`risk.volatility`) follows `volatility.update` step by
  step over a price path with same-epoch calls, epoch edges and gaps;
- IM is `volatility.im_rate` at once; a higher MM target ramps from the rate
  in force over `ramp_duration`, a lower one applies at once;
- a sample never raises MM at its own timestamp (statuses at the same price
  survive a volatility jump) but raises IM at once (a trade that fit is refused);
- access and price checks.
"""

from __future__ import annotations

import random

import ape
import pytest

from margin_engine.model import vol_after_sample, vol_mm_in_force
from margin_engine.volatility import VolState, im_rate, mm_rate, seed_var, update

from .conftest import (
    BTC,
    DAY,
    ETH,
    HEALTHY,
    HOUR,
    LIQUIDATABLE,
    MARGIN_CALL,
    VOL,
    WAD,
    addr,
    answer,
)

SEED_12 = seed_var(VOL, 12 * WAD // 100)  # IM 12 %, MM 6 % (above the static 10 % / 5 %)
USDC = 10**6


def epoch_start(timestamp: int, later: int = 1) -> int:
    """The first second of the `later`-th epoch after the one of `timestamp`."""
    return (timestamp // HOUR + later) * HOUR


def vol_events(mirror, receipt) -> list[tuple]:
    return [
        (e.market, e.var, e.anchor_price, e.im_rate, e.mm_rate_from, e.mm_rate_to, e.ramp_start, e.ramp_end)
        for e in receipt.events.filter(mirror.risk.VolatilityUpdated)
    ]


def expected_event(mirror, market: int) -> tuple:
    m = mirror.model.markets[market]
    return (market, m.vol_state.var, m.vol_state.anchor_price, *m.vol_rates)


@pytest.fixture
def start(mirror):
    """100 s into a fresh epoch: BTC gets the volatility margin (seed: IM 12 %)."""
    t0 = epoch_start(mirror.head) + 100
    mirror.at(t0)
    mirror.set_volatility(BTC, VOL, SEED_12)
    return t0


# --------------------------------------------------------------------------
#                          Sampling (section 3)
# --------------------------------------------------------------------------


def test_set_volatility__seed_gives_the_rates_no_anchor_no_ramp_without_open_interest(mirror, start):
    var, sigma, anchor, next_sample, im, mm, target, ramp_end = mirror.assert_volatility(BTC)
    state = VolState(var=SEED_12)
    assert (var, anchor, next_sample) == (SEED_12, 0, 0)
    assert im == im_rate(state, VOL) and im > 12 * WAD // 100 - 10**6
    assert mm == target == mm_rate(state, VOL)
    assert ramp_end == start  # no open interest: the new MM applies at once
    assert mirror.risk.volatility_params(BTC) == (
        VOL.epoch, VOL.decay, VOL.z, VOL.horizon, VOL.floor, VOL.cap, VOL.mm_fraction,
    )  # fmt: skip
    # the market is flagged: its base rates are the volatility ones (above the static floors)
    assert mirror.rates_word(BTC) >> 63 & 1 == 1
    assert tuple(mirror.risk.base_rates(BTC, mirror.rates_word(BTC))) == (im, mm)


# Steps of the price path: each publishes a round at `t` and samples at `t + 1`.
#   next: somewhere in the next epoch;  same: later in the same epoch (ignored);
#   edge: the round in the last second of the epoch, the sample in the first
#   second of the next one;  gap: 2 to 6 epochs later.
PLAN = (
    ["next", "same", "next", "next", "gap", "same", "next", "edge", "same", "next"]
    + ["gap", "next", "next", "same", "same", "next", "gap", "edge", "next", "next"]
    + ["gap", "next", "same", "next", "next", "next", "gap", "next", "edge", "next"]
)


def test_update_volatility_and_trades__random_path__state_equals_volatility_update(
    mirror, start, liquidator, other_trader
):
    rng = random.Random(20_240_501)
    mirror.deposit(other_trader, 200_000 * USDC)
    direct = VolState(var=SEED_12)  # `volatility.update` alone, independently of the model engine
    rates = mirror.model.markets[BTC].vol_rates
    price = answer(60_000)
    # The first sample only sets the anchor: var and the rates word are kept, no event.
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    receipt = mirror.update_volatility(BTC, liquidator)
    direct = update(direct, VOL, price * 10**10, receipt.timestamp)
    assert vol_events(mirror, receipt) == []
    assert direct == VolState(SEED_12, price * 10**10, receipt.timestamp // HOUR)
    mirror.assert_volatility(BTC)

    samples = updates = 0
    long_open = False
    last = receipt.timestamp  # the last sampling call
    for i, kind in enumerate(PLAN):
        if kind == "same":
            t = last + rng.randint(1, 60)
            assert t + 1 < epoch_start(last)  # the round and the sample stay in the epoch
        elif kind == "next":
            t = epoch_start(last) + rng.randint(0, HOUR - 1_000)
        elif kind == "edge":  # the round at the epoch's last second, the sample at the next one's first
            t = epoch_start(last, 2) - 1
        else:
            t = epoch_start(last, rng.randint(2, 6)) + rng.randint(0, HOUR - 1_000)
        price = price * (1_000_000 + round(rng.gauss(0, 15_000))) // 1_000_000
        mirror.at(t)
        mirror.set_answer(BTC, price)
        before = direct
        if i % 3 == 2:  # a trade samples too (it opens or closes 0.01 BTC)
            receipt = mirror.trade(other_trader, BTC, -(WAD // 100) if long_open else WAD // 100)
            long_open = not long_open
        else:
            receipt = mirror.update_volatility(BTC, liquidator)
        now = last = receipt.timestamp
        if kind == "edge":
            assert now % HOUR == 0
        direct = update(direct, VOL, price * 10**10, now)
        samples += 1
        if direct != before:
            updates += 1
            rates = vol_after_sample(rates, im_rate(direct, VOL), VOL.mm_fraction, now, DAY)
            assert vol_events(mirror, receipt) == [(BTC, direct.var, price * 10**10, *rates)]
        else:
            assert kind == "same"
            assert vol_events(mirror, receipt) == []
        # chain == model engine == `volatility.update` and `vol_after_sample` alone
        got = mirror.assert_volatility(BTC)
        assert mirror.model.markets[BTC].vol_state == direct
        assert mirror.model.markets[BTC].vol_rates == rates
        assert got[0] == direct.var and got[2] == direct.anchor_price
        assert got[3] == (direct.anchor_epoch + 1) * HOUR
        assert got[4] == im_rate(direct, VOL) and got[6] == mm_rate(direct, VOL)
        assert got[5] == vol_mm_in_force(rates, now)
    mirror.assert_account(other_trader)
    mirror.assert_ledgers()
    assert updates == samples - PLAN.count("same")
    # the path moved the estimate both ways and off the floor
    assert direct.var != SEED_12 and VOL.floor < im_rate(direct, VOL) < VOL.cap


def test_update_volatility__second_call_in_the_epoch__changes_nothing(mirror, start, liquidator):
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    mirror.update_volatility(BTC, liquidator)  # anchor
    mirror.at(epoch_start(start) + 5)
    mirror.set_price(BTC, 63_000)
    first = mirror.update_volatility(BTC, liquidator)
    assert vol_events(mirror, first) == [expected_event(mirror, BTC)]
    state = tuple(mirror.risk.volatility(BTC))
    # A much larger move later in the same epoch: no event, the state is that of the first call.
    mirror.at(epoch_start(start, 2) - 2)
    mirror.set_price(BTC, 40_000)
    second = mirror.update_volatility(BTC, liquidator)
    assert vol_events(mirror, second) == []
    now = mirror.assert_volatility(BTC)
    assert now[:5] + now[6:] == state[:5] + state[6:]  # all but the MM in force, which follows its ramp
    # The next epoch's first call samples 40,000 against the 63,000 anchor (one epoch).
    third = mirror.update_volatility(BTC, liquidator)
    assert third.timestamp == epoch_start(start, 2)
    assert vol_events(mirror, third) == [expected_event(mirror, BTC)]
    var = mirror.assert_volatility(BTC)[0]
    assert var == update(VolState(state[0], 63_000 * WAD, epoch_start(start) // HOUR), VOL, 40_000 * WAD, third.timestamp).var


def test_update_volatility__gap_of_epochs__one_sample_with_n_epochs(mirror, start, liquidator):
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    mirror.update_volatility(BTC, liquidator)
    anchor = VolState(SEED_12, 60_000 * WAD, (start + 11) // HOUR)
    mirror.at(epoch_start(start, 5) + 1_000)
    mirror.set_price(BTC, 57_000)
    receipt = mirror.update_volatility(BTC, liquidator)
    expected = update(anchor, VOL, 57_000 * WAD, receipt.timestamp)
    assert expected.anchor_epoch - anchor.anchor_epoch == 5
    assert mirror.assert_volatility(BTC)[0] == expected.var
    assert vol_events(mirror, receipt) == [expected_event(mirror, BTC)]


# --------------------------------------------------------------------------
#                     Rates: IM at once, MM ramps (10.1)
# --------------------------------------------------------------------------


def test_mm_ramp__higher_target_ramps_from_the_rate_in_force_lower_applies_at_once(
    mirror, start, trader, liquidator
):
    lens = mirror.lens
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    mirror.update_volatility(BTC, liquidator)
    mirror.deposit(trader, 50_000 * USDC)
    mirror.trade(trader, BTC, WAD // 2)
    mm_before = mirror.assert_volatility(BTC)[5]

    # +10 % in one epoch: IM jumps at once, MM ramps from the rate in force.
    mirror.at(epoch_start(start) + 30)
    mirror.set_price(BTC, 66_000)
    receipt = mirror.update_volatility(BTC, liquidator)
    t1 = receipt.timestamp
    [(_, var, _, im, mm_from, mm_to, ramp_start, ramp_end)] = vol_events(mirror, receipt)
    assert (mm_from, ramp_start, ramp_end) == (mm_before, t1, t1 + DAY)
    assert mm_to == mm_rate(VolState(var), VOL) > mm_from and im == im_rate(VolState(var), VOL) > 2 * 12 * WAD // 100
    assert mirror.assert_volatility(BTC)[5] == mm_from  # nothing rises at the sample's timestamp
    assert lens.market_params(BTC).imr == im
    for elapsed in (1, DAY // 4, DAY // 2 - 7):
        mirror.at(t1 + elapsed)
        mirror.set_price(BTC, 66_000)  # a fresh round (no sample) for the account's valuation
        in_force = mirror.assert_volatility(BTC)[5]
        assert in_force == mm_from + (mm_to - mm_from) * elapsed // DAY
        assert lens.market_params(BTC).mmr == max(WAD // 20, in_force)
        mirror.assert_account(trader)

    # Half-way, 12 flat epochs later: a lower variance, but a target still above
    # the rate in force: the ramp restarts from the rate in force.
    mirror.at(t1 + DAY // 2)
    mirror.set_price(BTC, 66_000)
    receipt = mirror.update_volatility(BTC, liquidator)
    t2 = receipt.timestamp
    [(_, var2, _, im2, from2, to2, start2, end2)] = vol_events(mirror, receipt)
    assert var2 < var and im2 < im
    assert from2 == mm_from + (mm_to - mm_from) * (t2 - t1) // DAY  # the rate in force at t2
    assert to2 > from2 and (start2, end2) == (t2, t2 + DAY)
    mirror.assert_volatility(BTC)
    mirror.assert_account(trader)

    # Three flat days later: the target is below the rate in force and applies at once.
    mirror.at(t2 + 3 * DAY)
    mirror.set_price(BTC, 66_000)
    receipt = mirror.update_volatility(BTC, liquidator)
    t3 = receipt.timestamp
    [(_, _, _, im3, from3, to3, start3, end3)] = vol_events(mirror, receipt)
    assert to3 < vol_mm_in_force((im2, from2, to2, start2, end2), t3)
    assert (from3, start3, end3) == (to3, t3, t3)
    assert mirror.assert_volatility(BTC)[5] == to3 == mm_rate(mirror.model.markets[BTC].vol_state, VOL)
    assert lens.market_params(BTC).imr == max(WAD // 10, im3)
    mirror.assert_account(trader)
    mirror.assert_ledgers()


def test_set_volatility__market_with_open_interest__mm_ramps_in_from_zero(mirror, trader):
    t0 = epoch_start(mirror.head) + 100
    mirror.at(t0)
    mirror.set_price(ETH, 3_000)
    mirror.deposit(trader, 1_000 * USDC)
    mirror.trade(trader, ETH, WAD)
    receipt = mirror.set_volatility(ETH, VOL, seed_var(VOL, VOL.cap))
    t = receipt.timestamp
    im, target = VOL.cap, mm_rate(VolState(seed_var(VOL, VOL.cap)), VOL)
    assert vol_events(mirror, receipt) == [(ETH, seed_var(VOL, VOL.cap), 0, im, 0, target, t, t + DAY)]
    assert mirror.assert_volatility(ETH)[4:] == (im, 0, target, t + DAY)
    # IM 50 % at once (MARGIN_CALL); MM is the static 5 % until the ramp passes it
    account = mirror.assert_account(trader)
    assert account.status == MARGIN_CALL and account.mm_required == 3_000 * WAD // 20
    mirror.at(t + DAY // 2)
    mirror.set_price(ETH, 3_000)
    in_force = vol_mm_in_force((im, 0, target, t, t + DAY), t + DAY // 2)
    assert in_force > WAD // 20
    account = mirror.assert_account(trader)
    assert account.status == MARGIN_CALL and account.mm_required == -(-3_000 * WAD * in_force // WAD)


# --------------------------------------------------------------------------
#            A sample never raises MM at its timestamp; IM at once
# --------------------------------------------------------------------------


def test_volatility_jump__statuses_kept_at_the_same_price_im_rises_at_once(
    mirror, start, trader, other_trader, operator, attacker, liquidator
):
    a, b, c, d = trader, other_trader, operator, attacker
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    mirror.update_volatility(BTC, liquidator)  # anchor at 60,000
    for who, amount in ((a, 9_860), (b, 11_860), (c, 8_000), (d, 8_000)):
        mirror.deposit(who, amount * USDC)
    mirror.trade(a, BTC, WAD)
    mirror.trade(b, BTC, WAD)
    # -8 % within the anchor's epoch: no sample; C's trade fits the 12 % IM.
    mirror.set_price(BTC, 55_200)
    mirror.trade(c, BTC, WAD)
    assert mirror.assert_volatility(BTC)[7] <= mirror.head  # no ramp on: the state does not move with time

    # The next epoch, same price: before any sample.
    mirror.at(epoch_start(start) + 20)
    mirror.set_price(BTC, 55_200)
    before = {who: mirror.assert_account(who) for who in (a, b, c)}
    assert [before[w].status for w in (a, b, c)] == [MARGIN_CALL, HEALTHY, HEALTHY]
    # D's identical trade samples first: IM jumps, the trade is refused.
    mirror.expect_revert(
        "engine: unhealthy",
        lambda: mirror.engine.modify_position(d, 0, BTC, WAD, 2**256 - 1, sender=d),
        lambda: mirror.model.modify_position(addr(d), 0, BTC, WAD, 2**256 - 1),
    )
    receipt = mirror.update_volatility(BTC, liquidator)
    [(_, _, _, im, mm_from, mm_to, _, _)] = vol_events(mirror, receipt)
    assert im > 3 * 12 * WAD // 100 - 10**6 and mm_to > mm_from
    after = {who: mirror.assert_account(who) for who in (a, b, c)}
    for who in (a, b, c):
        assert after[who].mm_required == before[who].mm_required  # MM never rises at the sample
        assert after[who].im_required > 3 * before[who].im_required - WAD  # IM at once
        assert after[who].status == MARGIN_CALL  # A kept it; B and C lost HEALTHY, none is liquidatable
    # The ramp is what protected them: a day later, same price, MM has risen.
    mirror.at(receipt.timestamp + DAY)
    mirror.set_price(BTC, 55_200)  # a fresh round, no sample
    assert mirror.assert_account(a).status == LIQUIDATABLE
    mirror.assert_ledgers()


# --------------------------------------------------------------------------
#                                 Reverts
# --------------------------------------------------------------------------


def test_update_volatility__market_without_volatility__reverts(mirror, risk_system, liquidator):
    with ape.reverts("risk: no volatility"):
        risk_system.risk.update_volatility(ETH, sender=liquidator)
    mirror.set_tiers(ETH, [1_000], [200])  # flagged, but tiers only
    with ape.reverts("risk: no volatility"):
        risk_system.risk.update_volatility(ETH, sender=liquidator)


def test_update_volatility__turned_off__reverts(mirror, start, liquidator):
    mirror.at(start + HOUR)
    mirror.configurator.set_volatility(BTC, (0,) * 7, 0, sender=mirror.risk_manager)
    assert tuple(mirror.risk.volatility(BTC)) == (0,) * 8
    with ape.reverts("risk: no volatility"):
        mirror.risk.update_volatility(BTC, sender=liquidator)


@pytest.mark.parametrize("fault", ["stale", "zero", "below_min"])
def test_update_volatility__invalid_price__reverts(mirror, start, liquidator, fault):
    mirror.at(start + 10)
    mirror.set_price(BTC, 60_000)
    feed = mirror.feed(BTC)
    if fault == "stale":
        mirror.at(start + 10 + 3_601)  # one second past the heartbeat
    elif fault == "zero":
        feed.set_answer(0, sender=mirror.admin)
    else:
        feed.set_answer(answer(600) - 1, sender=mirror.admin)  # 1 % of 60,000 is the lower bound
    with ape.reverts("risk: price"):
        mirror.risk.update_volatility(BTC, sender=liquidator)


def test_sample__not_the_engine__reverts(mirror, start, attacker):
    with ape.reverts("risk: not the engine"):
        mirror.risk.sample(BTC, 60_000 * WAD, sender=attacker)
    assert mirror.risk.volatility(BTC)[2] == 0  # nothing anchored


@pytest.mark.parametrize(
    "call",
    [
        lambda risk, who: risk.store_volatility(BTC, 1, 1, 1, False, sender=who),
        lambda risk, who: risk.store_tiers(BTC, 1, False, sender=who),
        lambda risk, who: risk.store_mm_ramp(BTC, 1, sender=who),
        lambda risk, who: risk.store_ramp_duration(1, sender=who),
        lambda risk, who: risk.set_engine(who, sender=who),
        lambda risk, who: risk.set_configurator(who, sender=who),
    ],
    ids=["store_volatility", "store_tiers", "store_mm_ramp", "store_ramp_duration", "set_engine", "set_configurator"],
)
def test_store__not_the_configurator__reverts(risk_system, attacker, risk_manager, call):
    for who in (attacker, risk_manager):  # the configurator's risk manager is not the configurator either
        with ape.reverts("risk: not the configurator"):
            call(risk_system.risk, who)

