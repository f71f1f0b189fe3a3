"""Ramped maintenance-rate changes (grandfathering, DESIGN.md section 10):
the risk manager's rate changes move at most `MAX_RATE_STEP`, at least
`MIN_RATE_CHANGE_DELAY` apart, never set mmr above the imr in force; a higher
mmr ramps in linearly over `mm_ramp_duration`, a higher imr applies at once
(to new risk), a lower rate applies at once.

A ramp lives in the RiskModel (`risk.mm_ramp`, mirrored by
`configurator.mm_ramp`); the market is flagged with RISK_BIT
(`configurator.uses_risk_model`, never cleared) and the engine's rates word
keeps the target mmr; `lens.market_params(m).mmr` is the rate in force. A
flagged market's liquidation sizes with the position's average MM rate
(docs/risk-model.md 10.3)."""

import ape
import pytest

from margin_engine.model import (
    LIQUIDATABLE as MODEL_LIQUIDATABLE,
    Engine,
    LiquidationParams,
    Market,
    MarketParams,
    Position,
    average_mm_rate,
    liquidation_size,
    mmr_in_force,
    mul_div_up,
)

WAD = 10**18
USDC = 10**6
FEED = 10**8
BTC, ETH = 0, 1
DAY = 86_400
MISSING_ROLE = "access_control: account is missing role"
PARAMS = {  # the default BTC market, funding off so that equity is frozen with the price
    "imr": WAD // 10,
    "mmr": WAD // 20,
    "fee_rate": WAD // 1000,
    "liq_fee": WAD // 50,
    "max_oi": 1_000 * WAD,
    "min_notional": 10 * WAD,
    "funding_rate_max": 0,
}
TIGHTER = {**PARAMS, "imr": WAD * 15 // 100, "mmr": WAD // 10}
HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
RISK_BIT = 2**63  # top bit of the imr field of the engine's rates word
MASK64 = 2**64 - 1
UINT_MAX = 2**256 - 1
NO_RAMP = (0, 0, 0, 0)


def mm_ramp(configurator, risk, market):
    """The market's ramp (old, new, start, end): the risk model's, which the
    configurator's view must mirror."""
    ramp = tuple(risk.mm_ramp(market))
    assert tuple(configurator.mm_ramp(market)) == ramp
    return ramp


@pytest.fixture
def at(chain, btc_feed, admin):
    """`at(t)`: the head block is at timestamp t, with a fresh BTC round at
    `btc` (the next transaction mines at t + 1)."""

    def move(timestamp: int, btc: int = 60_000):
        chain.pending_timestamp = timestamp
        btc_feed.set_answer(btc * FEED, sender=admin)

    return move


@pytest.fixture
def start(configurator, risk_manager, chain):
    """Funding off on BTC (a non-rate change: no delay), an hour before the test."""
    configurator.set_market_params(BTC, PARAMS, sender=risk_manager)
    return chain.pending_timestamp + 3_600


def test_ramp__higher_mmr_ramps_in_linearly_imr_at_once(
    configurator, engine, lens, risk, risk_manager, trader, fund, open_position, at, start
):
    fund(trader, 6_860 * USDC)
    open_position(trader, BTC, WAD)  # E 6,800, IM 6,000, MM 3,000
    at(start)
    assert not configurator.uses_risk_model(BTC)
    assert engine.market_words(BTC)[2] & RISK_BIT == 0
    assert mm_ramp(configurator, risk, BTC) == NO_RAMP

    receipt = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager)

    t0 = receipt.timestamp
    end = t0 + DAY
    assert receipt.events.filter(configurator.MaintenanceRamp) == [
        configurator.MaintenanceRamp(market=BTC, old_mmr=WAD // 20, new_mmr=WAD // 10, start=t0, end=end)
    ]
    assert mm_ramp(configurator, risk, BTC) == (WAD // 20, WAD // 10, t0, end)
    # the market now takes its requirements from the risk model; the engine
    # stores the static imr and the ramp's target
    assert configurator.uses_risk_model(BTC)
    rates = engine.market_words(BTC)[2]
    assert rates & RISK_BIT == RISK_BIT
    assert (rates & (RISK_BIT - 1), (rates >> 64) & MASK64) == (TIGHTER["imr"], WAD // 10)
    assert lens.market_params(BTC).imr == TIGHTER["imr"]  # IM at once: 9,000 > 6,800
    assert lens.market_params(BTC).mmr == WAD // 20
    assert engine.status(trader, 0) == MARGIN_CALL
    # A quarter of the way: 5 % + 5 % x 1/4 (rounded down).
    at(t0 + DAY // 4)
    assert lens.market_params(BTC).mmr == WAD // 20 + WAD // 20 // 4
    # the engine requires the rate in force: MM 6.25 % x 60,000
    assert engine.account(trader, 0).mm_required == 3_750 * WAD
    # At the end and after: the new rate. MM 6,000 <= 6,800: a healthy account never
    # becomes liquidatable at the same price (mmr never exceeds the old imr).
    at(end)
    assert lens.market_params(BTC).mmr == WAD // 10
    account = engine.account(trader, 0)
    assert (account.mm_required, account.status) == (6_000 * WAD, MARGIN_CALL)
    at(end + DAY)
    assert lens.market_params(BTC).mmr == WAD // 10


def test_ramp__an_account_below_the_new_mm_has_until_the_crossing_point(
    configurator, engine, risk_manager, trader, fund, open_position, at, start
):
    fund(trader, 6_860 * USDC)
    open_position(trader, BTC, WAD)
    at(start, btc=57_800)  # E 4,600; MM 5 % x 57,800 = 2,890
    t0 = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager).timestamp

    # MM crosses 4,600 when mmr > 7.958 %: 59.2 % of the way through the day.
    at(t0 + DAY // 2, btc=57_800)
    assert engine.status(trader, 0) == MARGIN_CALL
    at(t0 + DAY * 3 // 4, btc=57_800)
    assert engine.status(trader, 0) == LIQUIDATABLE


def test_ramp__same_target_again_keeps_the_ramp_lower_mmr_applies_at_once(
    configurator, engine, lens, risk, risk_manager, at, start
):
    at(start)
    t0 = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager).timestamp
    # A non-rate change later (funding) keeps the ramp as it is.
    at(t0 + 600)
    receipt = configurator.set_market_params(BTC, {**TIGHTER, "funding_rate_max": 10**9}, sender=risk_manager)
    assert receipt.events.filter(configurator.MaintenanceRamp) == []
    assert mm_ramp(configurator, risk, BTC) == (WAD // 20, WAD // 10, t0, t0 + DAY)
    assert lens.market_params(BTC).funding_rate_max == 10**9

    # A lower mmr, an hour after the last rate change: at once, the ramp is gone.
    at(t0 + 3_600)
    configurator.set_market_params(BTC, {**TIGHTER, "mmr": WAD * 4 // 100}, sender=risk_manager)
    assert mm_ramp(configurator, risk, BTC) == NO_RAMP
    assert lens.market_params(BTC).mmr == WAD * 4 // 100
    # the flag is never cleared
    assert configurator.uses_risk_model(BTC)
    assert engine.market_words(BTC)[2] & RISK_BIT == RISK_BIT


def test_ramp__a_new_target_mid_ramp_restarts_from_the_rate_in_force(configurator, risk, lens, risk_manager, at, start):
    at(start)
    t0 = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager).timestamp
    at(t0 + DAY // 2)  # about 7.5 % in force
    t1 = configurator.set_market_params(BTC, {**TIGHTER, "mmr": WAD * 12 // 100}, sender=risk_manager).timestamp
    in_force = WAD // 20 + (WAD // 20) * (t1 - t0) // DAY
    assert mm_ramp(configurator, risk, BTC) == (in_force, WAD * 12 // 100, t1, t1 + DAY)
    assert lens.market_params(BTC).mmr == in_force


def test_ramp__other_market_untouched(configurator, engine, lens, risk, risk_manager, at, start):
    eth_words = engine.market_words(ETH)
    at(start)
    configurator.set_market_params(BTC, TIGHTER, sender=risk_manager)
    assert not configurator.uses_risk_model(ETH)
    assert mm_ramp(configurator, risk, ETH) == NO_RAMP
    assert engine.market_words(ETH) == eth_words


def test_liquidate__during_a_ramp__sized_with_the_average_mm_rate_in_force(
    chain, configurator, engine, lens, risk, usdc, risk_manager, trader, liquidator, fund, open_position, at, start
):
    fund(trader, 6_860 * USDC)
    open_position(trader, BTC, WAD)  # balance 6,800
    at(start)
    t0 = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager).timestamp
    ramp = (WAD // 20, WAD // 10, t0, t0 + DAY)
    # Three quarters of the way, at 57,800: E 4,600 < MM (about 8.75 %) 5,057.
    at(t0 + DAY * 3 // 4, btc=57_800)
    assert engine.status(trader, 0) == LIQUIDATABLE
    pos = engine.position(trader, 0, BTC)
    state = lens.market_state(BTC)
    lp = engine.liquidation_params()
    model = Engine(
        token_decimals=6,
        liq_params=LiquidationParams(lp.buffer, lp.liquidator_share, lp.reward_floor, lp.reward_cap),
        reserve_factor=engine.reserve_factor(),
    )
    model.markets[BTC] = Market(
        params=MarketParams(**TIGHTER),  # the stored (target) mmr, with the ramp
        price=57_800 * WAD,
        long_oi=state.long_oi,
        short_oi=state.short_oi,
        funding_index=state.funding_index,
        last_funding_time=state.last_funding_time,
        mm_ramp=ramp,
        risk=True,
    )
    account = model._account(trader.address, 0)
    account.balance = engine.balance_of(trader, 0, usdc)
    account.positions[BTC] = Position(pos.size, pos.entry_price, pos.funding_index)
    model.insurance, model.vault_assets = engine.insurance_fund(), engine.vault_assets()
    # the model agrees with the engine's view (at the head block: MM 8.75 %)
    model.now = chain.blocks.head.timestamp
    view, mstate = engine.account(trader, 0), model.account(trader.address, 0)
    assert (mstate.equity_maint, mstate.mm_required) == (view.equity_maint, view.mm_required)
    assert (view.equity_maint, view.mm_required) == (4_600 * WAD, 5_057_500 * WAD // 1_000)

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    model.now = now = receipt.timestamp
    mstate = model.account(trader.address, 0)
    assert mstate.status == MODEL_LIQUIDATABLE
    model.liquidate(liquidator.address, trader.address, 0, BTC, UINT_MAX)
    (fields,) = [fields for name, fields in model.events if name == "Liquidation"]
    assert receipt.events.filter(engine.Liquidation) == [engine.Liquidation(**fields)]
    q = fields["size_closed"]
    assert 0 < q < WAD
    assert engine.position(trader, 0, BTC).size == WAD - q
    assert engine.balance_of(trader, 0, usdc) == model.balance_of(trader.address, 0)
    assert engine.balance_of(liquidator, 0, usdc) == model.balance_of(liquidator.address, 0)
    assert engine.insurance_fund() == model.insurance
    # Without tiers the average rate is the ramp's rate in force, neither the
    # old nor the target rate: the size closed differs from both.
    notional = mul_div_up(WAD, 57_800 * WAD, WAD)
    market = model.markets[BTC]
    in_force = mmr_in_force(market, now)
    assert WAD // 20 < in_force < WAD // 10
    assert average_mm_rate(market, notional, now) == in_force
    liq = model.liq_params
    for static in (WAD // 20, WAD // 10):
        static_market = Market(params=MarketParams(**{**TIGHTER, "mmr": static}), price=57_800 * WAD)
        q_static = liquidation_size(mstate, Position(WAD, 60_000 * WAD, 0), static_market, liq, UINT_MAX, 10**12)
        assert q_static != q
    assert engine.status(trader, 0) != LIQUIDATABLE


@pytest.mark.parametrize(
    "change",
    [
        {"imr": WAD * 16 // 100},  # +6 points
        {"imr": WAD // 10 + WAD // 20 + 1, "mmr": WAD // 20},
        {"mmr": WAD // 10 + 1, "imr": WAD * 15 // 100},  # above the imr in force (10 %)
        {"liq_fee": WAD // 50 + WAD // 20 + 1, "mmr": WAD // 10, "imr": WAD * 15 // 100},
    ],
)
def test_set_market_params__rate_step_too_large__reverts(configurator, lens, risk_manager, at, start, change):
    at(start)
    with ape.reverts("configurator: step"):
        configurator.set_market_params(BTC, {**PARAMS, **change}, sender=risk_manager)
    assert lens.market_params(BTC).imr == PARAMS["imr"]


def test_set_market_params__rates_again_within_an_hour__reverts_other_fields_do_not(
    configurator, lens, risk_manager, at, start
):
    at(start)
    t0 = configurator.set_market_params(BTC, {**PARAMS, "imr": WAD * 12 // 100}, sender=risk_manager).timestamp
    # the fee, OI cap, minimum notional and funding are not rates: no delay
    at(t0 + 600)
    configurator.set_market_params(BTC, {**PARAMS, "imr": WAD * 12 // 100, "fee_rate": WAD // 500}, sender=risk_manager)
    # the other market has its own clock
    configurator.set_market_params(ETH, {**PARAMS, "imr": WAD * 12 // 100, "max_oi": 10_000 * WAD}, sender=risk_manager)
    at(t0 + 3_590)
    with ape.reverts("configurator: too soon"):
        configurator.set_market_params(BTC, {**PARAMS, "imr": WAD * 11 // 100}, sender=risk_manager)
    at(t0 + 3_599)  # mines at t0 + 3,600
    configurator.set_market_params(BTC, {**PARAMS, "imr": WAD * 11 // 100}, sender=risk_manager)
    assert lens.market_params(BTC).imr == WAD * 11 // 100


def test_set_market_params__higher_mmr_with_liq_fee_above_the_rate_in_force__reverts(configurator, risk_manager, at, start):
    at(start)
    # 5 % in force: a liq_fee of 6 % would let a liquidation during the ramp worsen the account
    with ape.reverts("configurator: bad params"):
        configurator.set_market_params(BTC, {**TIGHTER, "liq_fee": WAD * 6 // 100}, sender=risk_manager)


def test_set_mm_ramp_duration__admin_within_bounds(configurator, engine, risk, admin, risk_manager, at, start):
    assert configurator.mm_ramp_duration() == DAY
    assert risk.ramp_duration() == DAY
    with ape.reverts(MISSING_ROLE):
        configurator.set_mm_ramp_duration(7 * DAY, sender=risk_manager)
    for bad in (3_599, 30 * DAY + 1):
        with ape.reverts("configurator: bad params"):
            configurator.set_mm_ramp_duration(bad, sender=admin)

    receipt = configurator.set_mm_ramp_duration(7 * DAY, sender=admin)

    assert receipt.events == [configurator.RampDurationSet(duration=7 * DAY)]
    assert configurator.mm_ramp_duration() == risk.ramp_duration() == 7 * DAY
    at(start)
    t0 = configurator.set_market_params(BTC, TIGHTER, sender=risk_manager).timestamp
    assert mm_ramp(configurator, risk, BTC)[3] == t0 + 7 * DAY
