"""Size tiers on chain (`RiskModel.requirements`; docs/risk-model.md 10.2)
against the integer reference model, to the wei:

- `requirements(m, n, rates)` equals `model.tier_requirement` at every bracket
  edge (E - 1, E, E + 1 wei) and at random notionals, for schedules of 0 to 4
  brackets with multipliers up to 10,000 % (bracket rates capped at 100 %);
- during a tier ramp IM follows the new schedule at once and MM moves linearly
  (rounded down) from the old schedule's, both ways;
- `engine.account()` of an account with tiered (and volatility) positions
  equals the model's `account_state`.
"""

from __future__ import annotations

import random

import ape
import pytest

from margin_engine.model import (
    account_state,
    pack_tiers,
    ramped_tier_requirement,
    requirements,
    tier_requirement,
)
from margin_engine.volatility import seed_var

from .conftest import BTC, DAY, ETH, HOUR, VOL, WAD, addr

RISK_BIT = 2**63
USDC = 10**6

SCHEDULES = [
    ([], []),  # flagged, no brackets: the static formula
    ([1_000], [200]),
    ([100, 10_000], [150, 400]),
    ([50, 500, 5_000], [100, 250, 10_000]),
    ([1, 2, 3, 2**32 - 1], [100, 5_000, 10_000, 10_000]),
    ([10, 20, 40, 80], [101, 333, 999, 10_000]),
]
# (imr, mmr) base rates passed in the rates word: round, odd (rounding), and
# high enough that every multiplier above 1.67x caps the bracket rate at 100 %.
BASES = [
    (WAD // 10, WAD // 20),
    (33_333_333_333_333_337, 17_777_777_777_777_771),
    (6 * WAD // 10, 45 * WAD // 100),
]


def notionals(edges: list[int], rng: random.Random) -> list[int]:
    points = {0, 1, WAD - 1, WAD, 10**40}
    for e in edges:
        points |= {e * WAD - 1, e * WAD, e * WAD + 1}
    top = (edges[-1] if edges else 10_000) * WAD
    points |= {rng.randint(1, 2 * top) for _ in range(6)}
    points |= {rng.randint(0, 10**24) for _ in range(2)}
    return sorted(points)


@pytest.mark.parametrize(("edges", "mults"), SCHEDULES, ids=[f"{len(s[0])}-brackets" for s in SCHEDULES])
def test_requirements__edges_and_random_points__equal_tier_requirement(mirror, edges, mults):
    rng = random.Random(len(edges) * 7 + sum(mults))
    receipt = mirror.set_tiers(ETH, edges, mults)
    t = receipt.timestamp
    # no open interest: no ramp; the word is the packed schedule
    assert tuple(mirror.risk.tiers(ETH)) == (pack_tiers(edges, mults), 0, t, t)
    assert mirror.rates_word(ETH) & RISK_BIT
    for imr, mmr in BASES:
        rates = RISK_BIT | imr | mmr << 64
        for n in notionals(edges, rng):
            expected = (tier_requirement(n, imr, (edges, mults)), tier_requirement(n, mmr, (edges, mults)))
            assert tuple(mirror.risk.requirements(ETH, n, rates)) == expected, (n, imr, mmr)
            if not edges:
                assert expected == (-(-n * imr // WAD), -(-n * mmr // WAD))
    # the engine's own rates word gives the model market's requirements
    mirror.sync()
    market = mirror.model.markets[ETH]
    for n in notionals(edges, rng):
        assert tuple(mirror.risk.requirements(ETH, n, mirror.rates_word(ETH))) == requirements(market, n, mirror.model.now)


def test_requirements__capped_bracket_rate_is_100_percent(mirror):
    mirror.set_tiers(ETH, [1_000], [10_000])  # 100x the base rate, capped at 100 %
    rates = RISK_BIT | WAD // 10 | WAD // 20 << 64
    # 1,000 USD at 10 % / 5 % then 1,000 USD at 100 %
    assert tuple(mirror.risk.requirements(ETH, 2_000 * WAD, rates)) == (1_100 * WAD, 1_050 * WAD)
    # one wei above the edge costs one wei
    assert tuple(mirror.risk.requirements(ETH, 1_000 * WAD + 1, rates)) == (100 * WAD + 1, 50 * WAD + 1)


@pytest.mark.parametrize("direction", ["tighter", "looser"])
def test_tier_ramp__im_at_once_mm_linear_rounded_down(mirror, trader, direction):
    rng = random.Random(direction)
    first = ([1_000, 5_000], [200, 400])
    second = ([500, 2_000, 8_000], [300, 600, 1_000]) if direction == "tighter" else ([8_000], [150])
    mirror.at(mirror.head + 100)
    mirror.set_price(ETH, 3_000)
    mirror.set_tiers(ETH, *first)  # no open interest: at once
    mirror.deposit(trader, 20_000 * USDC)
    mirror.trade(trader, ETH, 3 * WAD)  # 9,000 USD across the brackets
    receipt = mirror.set_tiers(ETH, *second)  # open interest: MM ramps over a day
    t0 = receipt.timestamp
    old, new = pack_tiers(*first), pack_tiers(*second)
    assert tuple(mirror.risk.tiers(ETH)) == (new, old, t0, t0 + DAY)
    [event] = receipt.events.filter(mirror.risk.TiersRamp)
    assert (event.old_tiers, event.new_tiers, event.ramp_start, event.ramp_end) == (old, new, t0, t0 + DAY)
    rates = mirror.rates_word(ETH)
    word = new | t0 << 192 | (t0 + DAY) << 224
    points = [n for n in notionals(first[0] + second[0], rng) if n < 10**30]
    for elapsed in sorted({0, 1, DAY - 1, *(rng.randint(10, DAY - 10) for _ in range(4))}):
        if elapsed:
            mirror.at(t0 + elapsed)
            mirror.set_price(ETH, 3_000)  # a fresh round: views then run at t0 + elapsed
        now = mirror.head
        assert now == t0 + elapsed
        for n in points:
            mm_old, mm_new = tier_requirement(n, WAD // 20, old), tier_requirement(n, WAD // 20, new)
            linear = mm_old + (mm_new - mm_old) * elapsed // DAY  # floor, both ways
            expected = (tier_requirement(n, WAD // 10, new), linear)
            assert ramped_tier_requirement(n, WAD // 20, word, old, now) == linear
            assert tuple(mirror.risk.requirements(ETH, n, rates)) == expected, (n, elapsed)
        account = mirror.assert_account(trader)
        if elapsed == 0:  # IM follows the new schedule at once, MM not yet
            assert account.mm_required == tier_requirement(9_000 * WAD, WAD // 20, old)
            assert account.im_required == tier_requirement(9_000 * WAD, WAD // 10, new)
        if elapsed == 1:  # (the attempt would mine at t0 + 2)
            with ape.reverts("configurator: ramp on"):
                mirror.configurator.set_tiers(ETH, *first, sender=mirror.risk_manager)
    # At the end: the new schedule, and a new change is accepted again.
    mirror.at(t0 + DAY)
    mirror.set_price(ETH, 3_000)
    assert tuple(mirror.risk.requirements(ETH, 9_000 * WAD, rates)) == (
        tier_requirement(9_000 * WAD, WAD // 10, new), tier_requirement(9_000 * WAD, WAD // 20, new),
    )  # fmt: skip
    mirror.assert_account(trader)
    mirror.set_tiers(ETH, *first)
    assert tuple(mirror.risk.tiers(ETH))[:2] == (old, new)


def test_account__tiered_and_volatility_positions__equal_model_account_state(mirror, trader, other_trader, liquidator):
    mirror.at((mirror.head // HOUR + 1) * HOUR + 60)
    mirror.set_price(BTC, 60_000)
    mirror.set_price(ETH, 3_000)
    mirror.set_volatility(BTC, VOL, seed_var(VOL, 12 * WAD // 100))
    mirror.set_tiers(BTC, [50_000, 200_000, 1_000_000], [150, 300, 1_000])  # 12 %, 18 %, 36 %, 100 % (capped)
    mirror.set_tiers(ETH, [5_000, 20_000], [200, 10_000])  # 10 %, 20 %, 100 % (capped)
    mirror.update_volatility(BTC, liquidator)
    mirror.deposit(trader, 400_000 * USDC)
    mirror.deposit(other_trader, 100_000 * USDC)
    mirror.trade(trader, BTC, 5 * WAD)  # 300,000 USD: three brackets
    mirror.trade(trader, ETH, -10 * WAD)  # 30,000 USD: three brackets
    mirror.trade(other_trader, ETH, 4 * WAD)
    mirror.trade(other_trader, BTC, -WAD // 2)
    for step, (btc, eth) in enumerate([(60_000, 3_000), (61_250, 2_950), (57_000, 3_100), (52_000, 3_333)]):
        mirror.at((mirror.head // HOUR + 1) * HOUR + 17 * step)  # a new epoch: trades sample a new var
        mirror.set_price(BTC, btc)
        mirror.set_price(ETH, eth)
        mirror.trade(other_trader, BTC, WAD // 100)
        for who in (trader, other_trader):
            got = mirror.assert_account(who)
            acct = mirror.model.accounts[(addr(who), 0)]
            want = account_state(acct.balance, acct.positions, mirror.model.markets, mirror.scale, mirror.model.now)
            assert (got.im_required, got.mm_required, got.equity_maint) == (
                want.im_required, want.mm_required, want.equity_maint,
            )  # fmt: skip
        # the tiers bind: more than the base rates on the same notional
        notional = 5 * btc * WAD
        base_im, _ = mirror.risk.base_rates(BTC, mirror.rates_word(BTC))
        assert mirror.engine.account(trader, 0).im_required > notional * base_im // WAD + 10 * eth * WAD // 10
    mirror.assert_ledgers()
