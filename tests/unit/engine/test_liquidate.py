"""Unit tests of `MarginEngine.liquidate` (docs/engine-spec.md, "Liquidation").

Default system: BTC (market 0) at $60,000, imr 10 %, mmr 5 %, fee 0.1 %,
liq_fee 2 %, min_notional $10; buffer 10 %, liquidator share 50 %, reward
floor 1 USDC, cap 10,000 USDC; 6-decimal USDC.

The base scenario: the trader deposits 6,100 USDC and buys 1 BTC at $60,000
(fee 60 USDC, balance 6,040). Its equity is `6,040 + (P - 60,000)` and its
maintenance requirement `5 % x P`, so it turns LIQUIDATABLE below $56,800.

Tests that check numbers by hand switch funding off for the market
(`funding_rate_max = 0`) so that the time between blocks does not move equity;
the tests compared with the reference model keep funding on and value the
model at the liquidation block's timestamp.
"""

from __future__ import annotations

import ape
import pytest

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    Engine,
    LiquidationParams,
    Market,
    MarketParams,
    Position,
    ceil_div,
    liquidation_notional,
    liquidation_size,
    mul_div_up,
)

WAD = 10**18
USDC = 10**6  # one token unit of 6-decimal USDC
SCALE = 10**12  # token units -> WAD
BTC, ETH = 0, 1
UINT_MAX = 2**256 - 1
FEED = 10**8  # mock feeds have 8 decimals

BUFFER = WAD // 10
MMR = WAD // 20
LIQ_FEE = WAD // 50
MIN_NOTIONAL = 10 * WAD


# --------------------------------------------------------------------------
#                                 Helpers
# --------------------------------------------------------------------------


def set_funding_rate(configurator, lens, risk_manager, market, rate):
    p = lens.market_params(market)
    params = (p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, rate)
    configurator.set_market_params(market, params, sender=risk_manager)


@pytest.fixture
def no_funding(configurator, lens, risk_manager):
    """Funding off in both markets: equity no longer moves with block time."""
    set_funding_rate(configurator, lens, risk_manager, BTC, 0)
    set_funding_rate(configurator, lens, risk_manager, ETH, 0)


@pytest.fixture
def price(btc_feed, eth_feed, admin):
    """price(market, answer): a fresh round with an 8-decimal answer."""

    def set_answer(market, answer):
        feed = btc_feed if market == BTC else eth_feed
        feed.set_answer(answer, sender=admin)

    return set_answer


@pytest.fixture
def long_btc(no_funding, trader, fund, open_position):
    """The base scenario, funding off: 6,100 USDC in, 1 BTC long at $60,000
    (balance 6,040)."""
    fund(trader, 6_100 * USDC)
    open_position(trader, BTC, WAD)


def ledger(engine, lens, usdc, actors):
    """Everything a liquidation may touch, for before/after comparisons."""
    return {
        "balances": [engine.balance_of(a, sub, usdc) for a, sub in actors],
        "positions": [
            (pos.size, pos.entry_price, pos.funding_index)
            for a, sub in actors
            for pos in (engine.position(a, sub, m) for m in (BTC, ETH))
        ],
        "insurance": engine.insurance_fund(),
        "vault": engine.vault_assets(),
        "oi": [(lens_state.long_oi, lens_state.short_oi) for lens_state in map(lens.market_state, (BTC, ETH))],
        "tokens": usdc.balanceOf(engine),
    }


def model_from_chain(engine, lens, usdc, actors) -> Engine:
    """The reference model loaded with the chain's current ledger."""
    lp = engine.liquidation_params()
    model = Engine(
        token_decimals=usdc.decimals(),
        liq_params=LiquidationParams(lp.buffer, lp.liquidator_share, lp.reward_floor, lp.reward_cap),
        reserve_factor=engine.reserve_factor(),
    )
    for market in range(engine.market_count()):
        p = lens.market_params(market)
        state = lens.market_state(market)
        model.markets[market] = Market(
            params=MarketParams(p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, p.funding_rate_max),
            price=engine.oracle_price(market)[0],
            long_oi=state.long_oi,
            short_oi=state.short_oi,
            funding_index=state.funding_index,
            last_funding_time=state.last_funding_time,
        )
    for actor, sub in actors:
        acct = model._account(actor.address, sub)
        acct.balance = engine.balance_of(actor, sub, usdc)
        acct.isolated = lens.margin_mode(actor, sub)
        for market in lens.open_markets(actor, sub):
            pos = engine.position(actor, sub, market)
            acct.positions[market] = Position(pos.size, pos.entry_price, pos.funding_index)
    model.insurance = engine.insurance_fund()
    model.vault_assets = engine.vault_assets()
    return model


def assert_chain_matches_model(model, engine, lens, usdc, actors):
    for actor, sub in actors:
        assert engine.balance_of(actor, sub, usdc) == model.balance_of(actor.address, sub)
        for market in model.markets:
            pos = engine.position(actor, sub, market)
            expected = model.position(actor.address, sub, market) or Position(0, 0, 0)
            assert (pos.size, pos.entry_price, pos.funding_index) == (
                expected.size,
                expected.entry_price,
                expected.funding_index if expected.size else 0,
            )
    for market, m in model.markets.items():
        state = lens.market_state(market)
        assert (state.long_oi, state.short_oi, state.funding_index) == (m.long_oi, m.short_oi, m.funding_index)
    assert engine.insurance_fund() == model.insurance
    assert engine.vault_assets() == model.vault_assets


def model_events(engine, model, name):
    return [getattr(engine, n)(**fields) for n, fields in model.events if n == name]


def liquidate_like_model(engine, lens, usdc, owner, sub, market, liquidator, max_size=UINT_MAX):
    """Liquidate on chain and in the model (valued at the block's timestamp);
    assert that ledgers and events agree; return (receipt, model)."""
    actors = [(owner, sub), (liquidator, 0)]
    model = model_from_chain(engine, lens, usdc, actors)
    receipt = engine.liquidate(owner, sub, market, max_size, sender=liquidator)
    model.now = receipt.timestamp
    model.liquidate(liquidator.address, owner.address, sub, market, max_size)
    assert_chain_matches_model(model, engine, lens, usdc, actors)
    assert receipt.events.filter(engine.Liquidation) == model_events(engine, model, "Liquidation")
    assert receipt.events.filter(engine.BadDebt) == model_events(engine, model, "BadDebt")
    return receipt, model


def target(state):
    """mm_required x (1 + buffer), rounded up (spec step 3)."""
    return mul_div_up(state.mm_required, WAD + BUFFER, WAD)


# --------------------------------------------------------------------------
#                       Who may be liquidated, and when
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, status",
    [
        (60_000 * FEED, HEALTHY),
        (58_000 * FEED, MARGIN_CALL),  # equity 4,040 < IM 5,800, >= MM 2,900
        (56_800 * FEED, MARGIN_CALL),  # equity 2,840 == MM 2,840: not below MM
    ],
)
def test_liquidate__not_below_maintenance__reverts_and_changes_nothing(
    engine, lens, usdc, trader, liquidator, long_btc, price, answer, status
):
    price(BTC, answer)
    assert engine.status(trader, 0) == status
    before = ledger(engine, lens, usdc, [(trader, 0), (liquidator, 0)])

    with ape.reverts("engine: not liquidatable"):
        engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    assert ledger(engine, lens, usdc, [(trader, 0), (liquidator, 0)]) == before


def test_liquidate__one_tick_below_maintenance__liquidates(engine, usdc, trader, liquidator, long_btc, price):
    # $56,799.99999999: equity 2,839.99999999 < MM 2,839.9999999995
    price(BTC, 56_800 * FEED - 1)
    state = engine.account(trader, 0)
    assert state.equity_maint == 2_839_999_999_990_000_000_000
    assert state.mm_required == 2_839_999_999_999_500_000_000
    assert state.status == LIQUIDATABLE

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    assert len(receipt.events.filter(engine.Liquidation)) == 1
    assert engine.status(trader, 0) == MARGIN_CALL


def test_liquidate__zero_max_size__reverts(engine, trader, liquidator, long_btc, price):
    price(BTC, 56_000 * FEED)
    with ape.reverts("engine: zero size"):
        engine.liquidate(trader, 0, BTC, 0, sender=liquidator)


def test_liquidate__unknown_market__reverts(engine, trader, liquidator, long_btc, price):
    price(BTC, 56_000 * FEED)
    assert engine.market_count() == 2
    with ape.reverts("engine: unknown market"):
        engine.liquidate(trader, 0, 2, UINT_MAX, sender=liquidator)


def test_liquidate__market_without_position__reverts(engine, trader, other_trader, liquidator, long_btc, price, fund):
    price(BTC, 56_000 * FEED)
    assert engine.status(trader, 0) == LIQUIDATABLE
    # liquidatable account, but nothing open in ETH
    with ape.reverts("engine: no position"):
        engine.liquidate(trader, 0, ETH, UINT_MAX, sender=liquidator)
    # an account with collateral and no position at all
    fund(other_trader, 100 * USDC)
    with ape.reverts("engine: no position"):
        engine.liquidate(other_trader, 0, BTC, UINT_MAX, sender=liquidator)


@pytest.mark.parametrize(
    "answer, age, reason",
    [
        (56_000 * FEED, 3_601, "oracle: stale"),  # older than the 3,600 s heartbeat
        (0, 0, "oracle: price"),
        (599 * FEED, 0, "oracle: bounds"),  # below the $600 floor (1 % of $60,000)
    ],
)
def test_liquidate__invalid_price__reverts(
    chain, engine, lens, usdc, trader, liquidator, long_btc, btc_feed, admin, answer, age, reason
):
    now = chain.pending_timestamp
    btc_feed.set_round(answer, now - age, sender=admin)
    before = ledger(engine, lens, usdc, [(trader, 0), (liquidator, 0)])

    with ape.reverts(reason):
        engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    assert ledger(engine, lens, usdc, [(trader, 0), (liquidator, 0)]) == before


def test_liquidate__other_market_of_the_account_stale__reverts(
    chain, engine, trader, liquidator, fund, open_position, no_funding, price, eth_feed, admin
):
    # the account is valued in full: one stale feed blocks its liquidation in every market
    fund(trader, 9_200 * USDC)
    open_position(trader, BTC, WAD)
    open_position(trader, ETH, 10 * WAD)
    price(BTC, 55_000 * FEED)
    eth_feed.set_round(3_000 * FEED, chain.pending_timestamp - 3_601, sender=admin)
    # the view leaves ETH out and still sees the BTC loss
    assert engine.account(trader, 0).prices_ok is False

    with ape.reverts("oracle: stale"):
        engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)


# --------------------------------------------------------------------------
#                            Partial liquidation
# --------------------------------------------------------------------------


def test_liquidate__partial__closes_the_spec_size_worked_by_hand(
    engine, lens, usdc, trader, liquidator, long_btc, price
):
    price(BTC, 56_000 * FEED)
    # E = 6,040 - 4,000 = 2,040; M = 5 % x 56,000 = 2,800
    state = engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (2_040 * WAD, 2_800 * WAD, LIQUIDATABLE)
    vault_before = engine.vault_assets()
    # target = 2,800 x 1.1 = 3,080; deficit = 3,080 - 2,040 + 3 token units + 8 wei
    #        = 1,040.000000000003000008 USD; denom = 5 % x 1.1 - 2 % = 3.5 %
    # N = deficit / 0.035 = 29,714.2858000000000002285... USD, rounded up (WAD)
    n = 29_714_285_800_000_000_000_229
    # q = N / 56,000 = 0.53061224642857142857... BTC, rounded up
    q = 530_612_246_428_571_429
    # closed notional = q x 56,000 = 29,714.285800000000024 USD; penalty 2 %
    # = 594.28571600000000048 USD -> 594.285717 USDC (rounded up)
    penalty = 594_285_717
    reward = 297_142_858  # 50 %, rounded down; between the 1 and 10,000 USDC bounds
    # realised = q x (56,000 - 60,000) = -2,122.448985714285716 USD -> -2,122.448986 USDC (floored)
    realised = -2_122_448_986
    # the reference model agrees with the hand numbers
    pos = engine.position(trader, 0, BTC)
    model = model_from_chain(engine, lens, usdc, [(trader, 0)])
    market = model.markets[BTC]
    mstate = model.account(trader.address, 0)
    liq = LiquidationParams(BUFFER, WAD // 2, USDC, 10_000 * USDC)
    model_pos = Position(pos.size, pos.entry_price, pos.funding_index)
    assert liquidation_notional(mstate, market.params, liq, SCALE) == n
    assert liquidation_size(mstate, model_pos, market, liq, UINT_MAX, SCALE) == q
    assert engine.liquidate.call(trader, 0, BTC, UINT_MAX, sender=liquidator) == reward

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    assert receipt.events == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=q,
            price=56_000 * WAD,
            penalty=penalty,
            reward=reward,
            insurance_share=penalty - reward,
        )
    ]
    assert engine.position(trader, 0, BTC).size == WAD - q
    assert engine.position(trader, 0, BTC).entry_price == 60_000 * WAD
    assert engine.balance_of(trader, 0, usdc) == 6_040 * USDC + realised - penalty == 3_323_265_297
    assert engine.balance_of(liquidator, 0, usdc) == reward
    assert engine.insurance_fund() == penalty - reward == 297_142_859
    # the vault is the counterparty: it receives the realised loss
    assert engine.vault_assets() == vault_before - realised
    market_state = lens.market_state(BTC)
    assert (market_state.long_oi, market_state.short_oi) == (WAD - q, 0)


@pytest.mark.parametrize("answer", [56_000 * FEED, 56_800 * FEED - 1, 55_500 * FEED])
def test_liquidate__partial__restores_the_buffer_and_is_strictly_healthier(
    engine, usdc, trader, liquidator, long_btc, price, answer
):
    price(BTC, answer)
    before = engine.account(trader, 0)
    assert before.status == LIQUIDATABLE

    engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    after = engine.account(trader, 0)
    assert after.positions == 1
    assert after.status == MARGIN_CALL
    # strictly healthier: E/M rises
    assert after.equity_maint * before.mm_required > before.equity_maint * after.mm_required
    # back at mm_required x (1 + buffer), token roundings included
    assert after.equity_maint >= target(after)
    # no dust: the remainder is worth at least min_notional
    assert engine.position(trader, 0, BTC).notional >= MIN_NOTIONAL


def test_liquidate__zero_buffer__leaves_the_account_at_maintenance_not_below(
    configurator,
    engine, usdc, trader, liquidator, risk_manager, long_btc, price
):
    configurator.set_liquidation_params((0, WAD // 2, USDC, 10_000 * USDC), sender=risk_manager)
    price(BTC, 56_000 * FEED)
    assert engine.status(trader, 0) == LIQUIDATABLE

    engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    # target = M exactly: the token roundings must not leave it a hair below
    after = engine.account(trader, 0)
    assert after.positions == 1
    assert after.equity_maint >= after.mm_required
    assert after.status == MARGIN_CALL


@pytest.mark.parametrize("case", ["long_btc_price_down", "short_btc_price_up", "cross_liquidate_eth"])
def test_liquidate__partial__matches_the_reference_model(
    chain, engine, lens, usdc, trader, liquidator, fund, open_position, price, case
):
    # funding stays on: the model values the account at the liquidation block
    if case == "long_btc_price_down":
        fund(trader, 6_100 * USDC)
        open_position(trader, BTC, WAD)
        chain.pending_timestamp += 1_800
        price(BTC, 56_000 * FEED)
        market = BTC
    elif case == "short_btc_price_up":
        fund(trader, 6_100 * USDC)
        open_position(trader, BTC, -WAD)
        chain.pending_timestamp += 1_800
        price(BTC, 64_000 * FEED)  # E ~ 2,040 < M 3,200
        market = BTC
    else:
        # 1 BTC and 10 ETH long, 9,200 USDC: a BTC drop makes the account
        # liquidatable, and the liquidator reduces the ETH position
        fund(trader, 9_200 * USDC)
        open_position(trader, BTC, WAD)
        open_position(trader, ETH, 10 * WAD)
        chain.pending_timestamp += 1_800
        price(BTC, 55_000 * FEED)  # E ~ 4,110 < M 2,750 + 1,500
        price(ETH, 3_000 * FEED)
        market = ETH
    before = engine.account(trader, 0)
    assert before.status == LIQUIDATABLE

    receipt, model = liquidate_like_model(engine, lens, usdc, trader, 0, market, liquidator)

    assert receipt.events.filter(engine.Liquidation)[0].size_closed > 0
    assert model.position(trader.address, 0, market) is not None  # partial: something is left
    after = engine.account(trader, 0)
    assert after.equity_maint * before.mm_required > before.equity_maint * after.mm_required
    assert after.equity_maint >= target(after)
    assert after.status in (HEALTHY, MARGIN_CALL)
    assert engine.position(trader, 0, market).notional >= MIN_NOTIONAL


def test_liquidate__max_size_below_needed__closes_exactly_max_size(
    engine, lens, usdc, trader, liquidator, long_btc, price
):
    price(BTC, 56_000 * FEED)
    max_size = WAD // 10  # the formula asks for 0.5306 BTC

    receipt, _ = liquidate_like_model(engine, lens, usdc, trader, 0, BTC, liquidator, max_size)

    # 0.1 BTC closed: penalty 2 % x 5,600 = 112 USDC, reward 56 USDC
    assert receipt.events == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=max_size,
            price=56_000 * WAD,
            penalty=112 * USDC,
            reward=56 * USDC,
            insurance_share=56 * USDC,
        )
    ]
    # 6,040 - 400 realised - 112 penalty; still below MM: E 1,928 < M 2,520
    assert engine.balance_of(trader, 0, usdc) == 5_528 * USDC
    assert engine.status(trader, 0) == LIQUIDATABLE


def test_liquidate__max_size_above_needed__closes_only_the_needed_size(
    engine, usdc, trader, liquidator, long_btc, price
):
    price(BTC, 56_000 * FEED)
    receipt = engine.liquidate(trader, 0, BTC, 9 * WAD // 10, sender=liquidator)
    assert receipt.events.filter(engine.Liquidation)[0].size_closed == 530_612_246_428_571_429


def test_liquidate__capped_below_min_notional__reverts_dust(engine, usdc, trader, liquidator, long_btc, price):
    price(BTC, 56_000 * FEED)
    balance = engine.balance_of(trader, 0, usdc)

    # 1 wei, and one wei short of 10 USD at 56,000: too small to liquidate
    smallest = (10 * WAD * WAD + 56_000 * WAD - 1) // (56_000 * WAD)
    for max_size in (1, smallest - 1):
        with ape.reverts("engine: dust"):
            engine.liquidate(trader, 0, BTC, max_size, sender=liquidator)
    assert engine.balance_of(trader, 0, usdc) == balance

    receipt = engine.liquidate(trader, 0, BTC, smallest, sender=liquidator)
    # notional 10 USD + a few wei: penalty 0.200001 USDC; the 1 USDC floor
    # lifts the liquidator's half to the whole penalty, the fund keeps nothing
    event = receipt.events.filter(engine.Liquidation)[0]
    assert (event.size_closed, event.penalty, event.reward, event.insurance_share) == (smallest, 200_001, 200_001, 0)
    assert engine.balance_of(liquidator, 0, usdc) == 200_001
    assert engine.insurance_fund() == 0


# --------------------------------------------------------------------------
#                              Dust and full closes
# --------------------------------------------------------------------------

# At $55,061.40 the formula closes all but ~$4.91 of the position (< $10):
# E = 6,040 - 4,938.60 = 1,101.40, M = 2,753.07, target 3,028.377,
# N = (3,028.377 - 1,101.40 + 3e-12) / 0.035 = 55,056.4858... USD.
DUST_ANSWER = 5_506_140 * FEED // 100
DUST_PRICE = DUST_ANSWER * 10**10


def test_liquidate__remainder_below_min_notional__closes_everything(
    engine, lens, usdc, trader, liquidator, long_btc, price
):
    price(BTC, DUST_ANSWER)
    state = model_from_chain(engine, lens, usdc, [(trader, 0)]).account(trader.address, 0)
    assert state.status == LIQUIDATABLE
    params = MarketParams(WAD // 10, MMR, WAD // 1000, LIQ_FEE, 0, MIN_NOTIONAL, 0)
    n = liquidation_notional(state, params, LiquidationParams(BUFFER, WAD // 2, USDC, 10_000 * USDC), SCALE)
    q_formula = mul_div_up(n, WAD, DUST_PRICE)
    assert q_formula < WAD
    assert mul_div_up(WAD - q_formula, DUST_PRICE, WAD) < MIN_NOTIONAL  # the rest would be dust

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    # closed in full: penalty 2 % x 55,061.40 = 1,101.228 USDC, reward 550.614
    assert receipt.events == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=WAD,
            price=DUST_PRICE,
            penalty=1_101_228_000,
            reward=550_614_000,
            insurance_share=550_614_000,
        )
    ]
    assert engine.account(trader, 0).positions == 0
    assert engine.position(trader, 0, BTC).size == 0
    assert lens.open_markets(trader, 0) == []
    # 6,040 - 4,938.60 realised - 1,101.228 penalty
    assert engine.balance_of(trader, 0, usdc) == 172_000
    assert lens.market_state(BTC).long_oi == 0


def test_liquidate__max_size_leaving_dust__reverts(engine, trader, liquidator, long_btc, price):
    price(BTC, DUST_ANSWER)
    # leaves 0.0001 BTC = $5.51 < $10
    with ape.reverts("engine: dust"):
        engine.liquidate(trader, 0, BTC, WAD - WAD // 10_000, sender=liquidator)


def test_liquidate__max_size_leaving_exactly_min_notional__closes_max_size(
    engine, usdc, trader, liquidator, long_btc, price
):
    price(BTC, DUST_ANSWER)
    # the smallest remainder worth $10 at 55,061.40 (notional rounded up)
    rest = ceil_div(MIN_NOTIONAL * WAD, DUST_PRICE)
    assert mul_div_up(rest, DUST_PRICE, WAD) >= MIN_NOTIONAL > mul_div_up(rest - 1, DUST_PRICE, WAD)
    with ape.reverts("engine: dust"):
        engine.liquidate(trader, 0, BTC, WAD - rest + 1, sender=liquidator)

    receipt = engine.liquidate(trader, 0, BTC, WAD - rest, sender=liquidator)

    assert receipt.events.filter(engine.Liquidation)[0].size_closed == WAD - rest
    assert engine.position(trader, 0, BTC).size == rest


# --------------------------------------------------------------------------
#                          Penalty, reward, insurance
# --------------------------------------------------------------------------


def test_liquidate__reward_above_cap__capped_and_insurance_keeps_the_rest(
    configurator,
    engine, usdc, trader, liquidator, risk_manager, long_btc, price
):
    configurator.set_liquidation_params((BUFFER, WAD // 2, USDC, 100 * USDC), sender=risk_manager)
    price(BTC, 56_000 * FEED)

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    # penalty 594.285717 USDC; 50 % = 297.14 capped at 100
    log = receipt.events.filter(engine.Liquidation)[0]
    assert (log.penalty, log.reward, log.insurance_share) == (594_285_717, 100 * USDC, 494_285_717)
    assert engine.balance_of(liquidator, 0, usdc) == 100 * USDC
    assert engine.insurance_fund() == 494_285_717


def fund_insurance(engine, usdc, funder, amount):
    usdc.mint(funder, amount, sender=funder)
    usdc.approve(engine, amount, sender=funder)
    engine.fund_insurance(amount, sender=funder)


# Small ETH accounts at $2,800 (entry $3,000, funding off):
# - 0.01 ETH with 3.10 USDC (balance 3.07): E = 1.07, M = 1.40,
#   q = 0.004795948979591837 ETH, penalty 2 % x 13.4286571428571436 USD
#   = 0.268574 USDC; half of it (0.134287) is below the 1 USDC floor, so the
#   liquidator keeps the whole penalty and the fund gets nothing.
# - 0.05 ETH with 15.225 USDC (balance 15.075): E = 5.075, M = 7.00,
#   q = 0.026785744897959184 ETH, penalty 2 % x 75.0000857142857152 USD
#   = 1.500002 USDC; half is below the floor, the floor is below the penalty:
#   reward 1 USDC, the fund keeps 0.500002.
@pytest.mark.parametrize(
    "size, deposit, closed, penalty, reward",
    [
        (WAD // 100, 3_100_000, 4_795_948_979_591_837, 268_574, 268_574),
        (WAD // 20, 15_225_000, 26_785_744_897_959_184, 1_500_002, USDC),
    ],
)
@pytest.mark.parametrize("insurance", [0, 10 * USDC])
def test_liquidate__reward_below_floor__floor_paid_from_the_penalty_never_from_the_fund(
    engine,
    usdc,
    admin,
    trader,
    liquidator,
    fund,
    open_position,
    no_funding,
    price,
    size,
    deposit,
    closed,
    penalty,
    reward,
    insurance,
):
    if insurance:
        fund_insurance(engine, usdc, admin, insurance)
    fund(trader, deposit)
    open_position(trader, ETH, size)
    price(ETH, 2_800 * FEED)
    assert engine.status(trader, 0) == LIQUIDATABLE
    tokens_before = usdc.balanceOf(engine)

    receipt = engine.liquidate(trader, 0, ETH, UINT_MAX, sender=liquidator)

    assert receipt.events == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=ETH,
            liquidator=liquidator,
            size_closed=closed,
            price=2_800 * WAD,
            penalty=penalty,
            reward=reward,
            insurance_share=penalty - reward,
        )
    ]
    assert engine.balance_of(liquidator, 0, usdc) == reward
    assert engine.insurance_fund() == insurance + penalty - reward
    # no token moves inside a liquidation
    assert usdc.balanceOf(engine) == tokens_before
    assert usdc.balanceOf(liquidator) == 0


# --------------------------------------------------------------------------
#                                  Bad debt
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "insurance, insurance_paid, vault_loss",
    [
        # debt 3,960 (a bankrupt account pays no penalty); the fund pays what it holds
        (0, 0, 3_960 * USDC),
        (1_000 * USDC, 1_000 * USDC, 2_960 * USDC),
        (10_000 * USDC, 3_960 * USDC, 0),
    ],
)
def test_liquidate__price_gap_past_zero_equity__bad_debt_insurance_first_then_vault(
    engine, lens, usdc, admin, trader, liquidator, long_btc, price, insurance, insurance_paid, vault_loss
):
    if insurance:
        fund_insurance(engine, usdc, admin, insurance)
    vault_before = engine.vault_assets()
    assert vault_before == 1_000_060 * USDC  # LP capital + the opening fee
    # a gap from 60,000 to 50,000: E = 6,040 - 10,000 = -3,960
    price(BTC, 50_000 * FEED)
    state = engine.account(trader, 0)
    assert (state.equity_maint, state.status) == (-3_960 * WAD, BANKRUPT)

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    # everything closed: realised -10,000; the account is bankrupt, so it pays no
    # penalty and the liquidator earns nothing; balance 6,040 - 10,000 = -3,960 is bad debt
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=WAD,
            price=50_000 * WAD,
            penalty=0,
            reward=0,
            insurance_share=0,
        )
    ]
    assert receipt.events.filter(engine.BadDebt) == [
        engine.BadDebt(owner=trader, sub=0, amount=3_960 * USDC, insurance_paid=insurance_paid, vault_loss=vault_loss)
    ]
    assert engine.balance_of(trader, 0, usdc) == 0
    assert engine.account(trader, 0).positions == 0
    assert engine.status(trader, 0) == HEALTHY
    assert engine.balance_of(liquidator, 0, usdc) == 0
    assert engine.insurance_fund() == insurance - insurance_paid
    # the vault receives the realised 10,000 and loses what insurance could not pay
    assert engine.vault_assets() == vault_before + 10_000 * USDC - vault_loss
    # every token held is still owed to someone
    assert usdc.balanceOf(engine) == (
        engine.balance_of(liquidator, 0, usdc) + engine.insurance_fund() + engine.vault_assets()
    )


def test_liquidate__bad_debt_with_funding__matches_the_reference_model(
    chain, engine, lens, usdc, trader, liquidator, fund, open_position, price
):
    fund(trader, 6_100 * USDC)
    open_position(trader, BTC, WAD)
    chain.pending_timestamp += 3_000
    price(BTC, 50_000 * FEED)
    assert engine.status(trader, 0) == BANKRUPT

    receipt, model = liquidate_like_model(engine, lens, usdc, trader, 0, BTC, liquidator)

    assert len(receipt.events.filter(engine.BadDebt)) == 1
    assert model.balance_of(trader.address, 0) == 0


# --------------------------------------------------------------------------
#                        Pause and self-liquidation
# --------------------------------------------------------------------------


def test_liquidate__while_paused__works(configurator, engine, usdc, trader, liquidator, guardian, long_btc, price, open_position):
    price(BTC, 56_000 * FEED)
    configurator.pause(sender=guardian)
    assert engine.paused()

    receipt = engine.liquidate(trader, 0, BTC, UINT_MAX, sender=liquidator)

    log = receipt.events.filter(engine.Liquidation)[0]
    assert (log.size_closed, log.penalty, log.reward) == (530_612_246_428_571_429, 594_285_717, 297_142_858)
    assert engine.balance_of(trader, 0, usdc) == 3_323_265_297
    # new risk is still refused
    with ape.reverts("engine: paused"):
        open_position(trader, BTC, WAD // 100)


@pytest.mark.parametrize("sub", [0, 1])
def test_liquidate__self_liquidation__owner_ends_poorer_by_penalty_minus_reward(
    engine, usdc, trader, no_funding, price, fund, open_position, sub
):
    fund(trader, 6_100 * USDC, sub=sub)
    open_position(trader, BTC, WAD, sub=sub)
    price(BTC, 56_000 * FEED)

    def wealth():
        # the liquidated sub-account's equity plus the reward account (sub 0)
        total = engine.account(trader, sub).equity_maint
        if sub != 0:
            total += engine.balance_of(trader, 0, usdc) * SCALE
        return total

    before = wealth()
    assert before == 2_040 * WAD

    # 0.1 BTC: realised -400 exactly, penalty 112, reward 56 (to sub 0)
    receipt = engine.liquidate(trader, sub, BTC, WAD // 10, sender=trader)

    log = receipt.events.filter(engine.Liquidation)[0]
    assert (log.liquidator, log.penalty, log.reward) == (trader, 112 * USDC, 56 * USDC)
    assert wealth() == before - (112 - 56) * WAD
    assert engine.insurance_fund() == 56 * USDC
    if sub == 0:
        assert engine.balance_of(trader, 0, usdc) == (6_040 - 400 - 112 + 56) * USDC
    else:
        assert engine.balance_of(trader, 1, usdc) == (6_040 - 400 - 112) * USDC
        assert engine.balance_of(trader, 0, usdc) == 56 * USDC


def test_liquidate__self_liquidation_of_a_bankrupt_account__owner_gains_nothing(
    engine, usdc, trader, no_funding, price, fund, open_position
):
    fund(trader, 6_100 * USDC, sub=1)
    open_position(trader, BTC, WAD, sub=1)
    price(BTC, 50_000 * FEED)
    assert engine.account(trader, 1).equity_maint == -3_960 * WAD  # nothing left to withdraw

    engine.liquidate(trader, 1, BTC, UINT_MAX, sender=trader)

    assert engine.balance_of(trader, 1, usdc) == 0
    # a bankrupt account pays no penalty, so its liquidator (here its owner) earns nothing
    assert engine.balance_of(trader, 0, usdc) == 0
