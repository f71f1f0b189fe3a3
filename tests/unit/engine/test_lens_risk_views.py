"""`MarginLens` views of markets that use the risk model (docs/risk-model.md
sections 10 and 11): `market_risk`, `market_params` (base rates in force),
`account_rates`, `quote_liquidation` and `max_position_size` on tiered and
volatility markets, against the `RiskModel` state and the reference model.

Default system (funding off): BTC (market 0) at 60,000 and ETH (market 1) at
3,000, imr 10 %, mmr 5 %, fee 0.1 %, liq_fee 2 %, min_notional 10 USD.
"""

from __future__ import annotations

import ape
import pytest

from margin_engine.model import base_rates, mul_div_up, tier_requirement
from margin_engine.volatility import VolParams, VolState, im_rate, seed_var

# The lock-step mirror of tests/unit/risk/conftest.py (pytest puts tests/unit on sys.path).
from risk.conftest import DAY, HOUR, VOL, Mirror, addr

from .conftest import BTC, ETH, WAD

USDC = 10**6
UINT_MAX = 2**256 - 1
HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
TIERS = ([50_000, 200_000], [200, 500])  # BTC: 10 %, 20 %, 50 % of the base rate above 50k and 200k USD


@pytest.fixture
def mirror(ctx, chain) -> Mirror:
    """Prices fresh 60 s into an epoch, so that a test's actions share one epoch."""
    m = Mirror(ctx.system, ctx.lens, chain, ctx.admin, ctx.risk_manager, ctx.guardian)
    m.at((m.head // HOUR + 1) * HOUR + 60)
    m.set_price(BTC, 60_000)
    m.set_price(ETH, 3_000)
    return m


def next_epoch(mirror: Mirror, offset: int = 60) -> int:
    t = (mirror.head // HOUR + 1) * HOUR + offset
    mirror.at(t)
    return t


def risk_tuple(r) -> tuple:
    return (
        r.im_rate, r.mm_rate, r.uses_risk_model, r.var, r.sigma_daily, r.vol_im_rate, r.vol_mm_rate,
        r.vol_mm_target, r.vol_ramp_end, tuple(r.mm_ramp), r.tiers, r.old_tiers, r.tiers_ramp_start, r.tiers_ramp_end,
    )  # fmt: skip


def expected_risk(mirror: Mirror, market: int) -> tuple:
    """`market_risk` from the RiskModel's own views."""
    risk = mirror.risk
    rates = mirror.rates_word(market)
    flagged = bool(rates >> 63 & 1)
    if flagged:
        im, mm = risk.base_rates(market, rates)
    else:
        im, mm = rates & (2**63 - 1), (rates >> 64) & (2**64 - 1)
    var, sigma, _, _, vol_im, vol_mm, target, end = risk.volatility(market)
    return (
        im, mm, flagged, var, sigma, vol_im, vol_mm, target, end, tuple(risk.mm_ramp(market)), *risk.tiers(market),
    )  # fmt: skip


# --------------------------------------------------------------------------
#                         market_risk, market_params
# --------------------------------------------------------------------------


def test_market_risk__fields_equal_the_risk_model_state_and_the_model(mirror, trader, liquidator):
    lens = mirror.lens
    assert risk_tuple(lens.market_risk(ETH)) == (WAD // 10, WAD // 20, False, *(0,) * 6, (0, 0, 0, 0), 0, 0, 0, 0)
    mirror.set_volatility(BTC, VOL, seed_var(VOL, 12 * WAD // 100))
    mirror.set_tiers(BTC, *TIERS)
    mirror.update_volatility(BTC, liquidator)
    mirror.deposit(trader, 100_000 * USDC)
    mirror.trade(trader, BTC, WAD)
    next_epoch(mirror)
    mirror.set_price(BTC, 64_000)
    mirror.update_volatility(BTC, liquidator)  # a volatility MM ramp
    mirror.set_market_params(BTC, mmr=7 * WAD // 100)  # a static mmr ramp (5 % -> 7 %)
    mirror.set_tiers(BTC, [40_000, 150_000, 400_000], [150, 400, 800])  # a tier ramp (open interest)
    t0 = mirror.head
    for elapsed in (0, 1_000, DAY // 3, DAY - 10, DAY + 5):
        if elapsed:
            mirror.mine(t0 + elapsed)
        got = risk_tuple(lens.market_risk(BTC))
        assert got == expected_risk(mirror, BTC)
        market = mirror.model.markets[BTC]
        mirror.sync()
        vol = mirror.expected_volatility(BTC)
        ramp = market.mm_ramp or (0, 0, 0, 0)
        assert got[:2] == base_rates(market, mirror.model.now)
        assert got[3:9] == (vol[0], vol[1], vol[4], vol[5], vol[6], vol[7])
        assert got[9] == ramp and ramp[1] == 7 * WAD // 100 and ramp[3] > t0
        assert got[10:] == (market.tiers & (2**192 - 1), market.old_tiers, market.tiers >> 192 & (2**32 - 1), market.tiers >> 224)
        if elapsed < DAY - 5:  # all three ramps on (they started within 3 s of t0)
            assert got[8] > mirror.head and got[13] > mirror.head and got[9][3] > mirror.head
    # the base rates: the volatility IM (above 10 %), MM the larger of the two ramps in force
    assert got[0] == got[5] > WAD // 10 and got[1] == max(7 * WAD // 100, got[6])


def test_market_params__imr_mmr_are_the_base_rates_in_force(mirror, trader, liquidator):
    lens = mirror.lens
    # Volatility below the static rates: the static 10 % / 5 % are the floors.
    low = VolParams(**{**vars(VOL), "floor": WAD // 100})
    mirror.set_volatility(BTC, low, seed_var(low, 3 * WAD // 100))
    params = lens.market_params(BTC)
    assert (params.imr, params.mmr) == (WAD // 10, WAD // 20)
    static = mirror.static_params(BTC)
    assert (params.fee_rate, params.liq_fee, params.max_oi, params.min_notional, params.funding_rate_max) == (
        static.fee_rate, static.liq_fee, static.max_oi, static.min_notional, static.funding_rate_max,
    )  # fmt: skip
    # A static mmr ramp 5 % -> 7 %: the rate in force (down).
    mirror.deposit(trader, 100_000 * USDC)
    mirror.trade(trader, BTC, WAD)
    t0 = mirror.set_market_params(BTC, mmr=7 * WAD // 100).timestamp
    mirror.mine(t0 + DAY // 3)
    mirror.sync()
    params = lens.market_params(BTC)
    assert (params.imr, params.mmr) == (WAD // 10, WAD // 20 + 2 * WAD // 100 * (DAY // 3) // DAY)
    assert (params.imr, params.mmr) == base_rates(mirror.model.markets[BTC], mirror.model.now)
    # Volatility above them (ETH, seeded at 40 %): IM 40 % at once, MM 20 % (no open interest: no ramp).
    mirror.set_volatility(ETH, VOL, seed_var(VOL, 4 * WAD // 10))
    params = lens.market_params(ETH)
    im = im_rate(VolState(seed_var(VOL, 4 * WAD // 10)), VOL)
    assert (params.imr, params.mmr) == (im, mul_div_up(im, VOL.mm_fraction, WAD)) and im >= 4 * WAD // 10
    assert (params.fee_rate, params.liq_fee, params.min_notional) == (WAD // 1000, WAD // 50, 10 * WAD)


# --------------------------------------------------------------------------
#                               account_rates
# --------------------------------------------------------------------------


def test_account_rates__requirements_over_notional(mirror, trader, other_trader, liquidator):
    lens = mirror.lens
    flat = lens.account_rates(other_trader, 0)
    assert (flat.notional, flat.im_required, flat.mm_required, flat.im_rate, flat.mm_rate, flat.prices_ok) == (
        0, 0, 0, 0, 0, True,
    )  # fmt: skip
    mirror.set_volatility(BTC, VOL, seed_var(VOL, 12 * WAD // 100))
    mirror.set_tiers(BTC, *TIERS)
    mirror.update_volatility(BTC, liquidator)
    mirror.deposit(trader, 200_000 * USDC)
    mirror.trade(trader, BTC, 5 * WAD)  # 300,000 USD in three brackets
    mirror.trade(trader, ETH, -10 * WAD)  # 30,000 USD static
    mirror.set_price(BTC, 61_111)
    mirror.set_price(ETH, 2_987)
    state = mirror.assert_account(trader)
    rates = lens.account_rates(trader, 0)
    notional = mul_div_up(5 * WAD, 61_111 * WAD, WAD) + mul_div_up(10 * WAD, 2_987 * WAD, WAD)
    assert (rates.notional, rates.im_required, rates.mm_required, rates.prices_ok) == (
        notional, state.im_required, state.mm_required, True,
    )  # fmt: skip
    assert rates.im_rate == state.im_required * WAD // notional
    assert rates.mm_rate == state.mm_required * WAD // notional
    # BTC tiered on its base IM, ETH static: the effective rate is above every base rate
    base_im = mirror.risk.base_rates(BTC, mirror.rates_word(BTC))[0]
    btc_im = tier_requirement(5 * 61_111 * WAD, base_im, TIERS)
    assert state.im_required == btc_im + mul_div_up(10 * 2_987 * WAD, WAD // 10, WAD)
    assert rates.im_rate > base_im > WAD // 10


# --------------------------------------------------------------------------
#                             quote_liquidation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tiered", "volatility", "both"])
def test_quote_liquidation__equals_the_liquidation_event(mirror, trader, liquidator, kind):
    lens = mirror.lens
    if kind != "tiered":
        # seeded at 30 %, anchored, then sampled a flat epoch later: var falls, so the
        # new (lower) MM applies at once and nothing ramps while we quote.
        mirror.set_volatility(BTC, VOL, seed_var(VOL, 3 * WAD // 10))
        mirror.update_volatility(BTC, liquidator)
        next_epoch(mirror)
        mirror.set_price(BTC, 60_006)
        receipt = mirror.update_volatility(BTC, liquidator)
        assert receipt.events.filter(mirror.risk.VolatilityUpdated)[0].ramp_end == receipt.timestamp
    if kind != "volatility":
        mirror.set_tiers(BTC, *TIERS)
    mirror.deposit(trader, 150_000 * USDC)
    mirror.trade(trader, BTC, 4 * WAD)  # 240,000 USD
    opened = mirror.price(BTC)
    base_im, base_mm = mirror.risk.base_rates(BTC, mirror.rates_word(BTC))
    im = mirror.assert_account(trader).im_required
    # a drop to just below MM (found on the model)
    for price in range(60_000, 10_000, -250):
        mirror.model.markets[BTC].price = price * WAD
        if mirror.model.account(addr(trader), 0).status >= LIQUIDATABLE:
            break
    mirror.model.markets[BTC].price = opened
    mirror.set_price(BTC, price)
    state = mirror.assert_account(trader)
    assert state.status == LIQUIDATABLE
    if kind != "volatility":  # the average MM rate is above the base rate
        assert state.mm_required * WAD // mul_div_up(4 * WAD, price * WAD, WAD) > base_mm
    else:
        assert im == mul_div_up(mul_div_up(4 * WAD, opened, WAD), base_im, WAD) and base_im > WAD // 4
    assert mirror.risk.volatility(BTC)[7] <= mirror.head and mirror.risk.tiers(BTC)[3] <= mirror.head  # no ramp
    quote = lens.quote_liquidation(trader, 0, BTC)
    assert quote.liquidatable and 0 < quote.size < 4 * WAD
    insurance = mirror.engine.insurance_fund()
    receipt, reward = mirror.liquidate(liquidator, trader, BTC, 4 * WAD)
    [event] = receipt.events.filter(mirror.engine.Liquidation)
    got = (event.size_closed, event.price, event.penalty, event.reward, event.insurance_share)
    assert got == (quote.size, quote.price, quote.penalty, quote.reward, quote.insurance_share)
    model = mirror.model_events("Liquidation")[-1]
    assert got == (model["size_closed"], model["price"], model["penalty"], model["reward"], model["insurance_share"])
    assert reward == event.reward and mirror.engine.insurance_fund() == insurance + quote.insurance_share
    mirror.assert_account(trader)
    mirror.assert_ledgers()


# --------------------------------------------------------------------------
#                             max_position_size
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tiered", "tiered-volatility"])
def test_max_position_size__tiered_market__accepted_and_0_1_percent_more_refused(
    mirror, trader, other_trader, liquidator, kind
):
    if kind == "tiered-volatility":
        mirror.set_volatility(BTC, VOL, seed_var(VOL, 15 * WAD // 100))
        mirror.update_volatility(BTC, liquidator)
    mirror.set_tiers(BTC, *TIERS)
    mirror.deposit(trader, 50_000 * USDC)
    mirror.deposit(other_trader, 30_000 * USDC)
    mirror.trade(other_trader, BTC, -WAD // 2)  # an existing short: the maximum is an increase
    mirror.set_price(BTC, 59_000)
    for who, is_long in ((trader, True), (other_trader, False)):
        q = mirror.lens.max_position_size(who, 0, BTC, is_long)
        assert q > WAD  # well into the upper brackets
        delta = q if is_long else -q
        more = delta + delta // 1_000
        mirror.expect_revert(
            "engine: unhealthy",
            lambda: mirror.engine.modify_position(who, 0, BTC, more, UINT_MAX if is_long else 0, sender=who),
            lambda: mirror.model.modify_position(addr(who), 0, BTC, more, UINT_MAX if is_long else 0),
        )
        mirror.trade(who, BTC, delta)
        state = mirror.assert_account(who)
        assert state.status == HEALTHY
        # nearly all the margin is used (the lens keeps 3 token units and 8 wei aside)
        assert 0 <= state.equity_init - state.im_required < WAD // 100
    mirror.assert_ledgers()


def test_max_position_size__during_a_tier_ramp__im_uses_the_new_schedule(mirror, trader, other_trader):
    mirror.set_tiers(BTC, *TIERS)
    mirror.deposit(other_trader, 30_000 * USDC)
    mirror.trade(other_trader, BTC, WAD // 10)  # open interest: the next schedule ramps (MM only)
    mirror.set_tiers(BTC, [20_000, 100_000], [300, 1_000])
    assert mirror.risk.tiers(BTC)[3] > mirror.head
    mirror.deposit(trader, 50_000 * USDC)
    q = mirror.lens.max_position_size(trader, 0, BTC, True)
    with ape.reverts("engine: unhealthy"):
        mirror.engine.modify_position(trader, 0, BTC, q + q // 1_000, UINT_MAX, sender=trader)
    mirror.trade(trader, BTC, q)  # IM follows the new schedule at once
    assert mirror.assert_account(trader).status == HEALTHY
