"""The bot's decisions on risk-model markets, margin calls and volatility samples.

Pure Python, like ``test_liquidator_logic``: accounts are built with the
reference simulator (``margin_engine.model.Engine``, which runs tiers,
volatility and the margin-call band), turned into lens-shaped snapshots
(``sim_lens``), and decided on by ``margin_engine.liquidator``; every quote
is checked against the simulator's own liquidation or margin call, to the wei.

The tiered market (id 3, ETH-like at 2,000): base IM 10 %, MM 5 %, 1.5x the
base rate above 10,000 USD of notional and 3x above 20,000. A 20 ETH long at
1,700 (notional 34,000) needs MM 500 + 750 + 2,100 = 3,350, where the base
rate alone would say 1,700.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sim_lens import (
    account_snapshot,
    accounts_snapshot,
    as_dict,
    as_tuple,
    market_words,
    markets_snapshot,
    quote_liquidation,
    volatility,
)

import margin_engine.liquidator as liq
from margin_engine.liquidator import (
    CallParams,
    MarketView,
    SkipReason,
    accounts_from_lens,
    assess,
    call_params_from_tuple,
    evaluate,
    lens_quote_keys,
    mark_risk,
    market_words_flagged,
    markets_from_lens,
    quote,
    quote_from_lens,
    volatility_due,
    volatility_from_tuple,
)
from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    WAD,
    Engine,
    LiquidationParams,
    MarketParams,
    tier_requirement,
)
from margin_engine.volatility import VolParams, seed_var

USD = WAD
ETH = WAD
ETH_MARKET, BTC_MARKET, TIER_MARKET, VOL_MARKET = 0, 1, 2, 3
DAY = 86_400

ALICE, BOB, CAROL, DAVE = (to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0xA1, 0xB2, 0xC3, 0xD4))
KEEPER = to_checksum_address("0x" + "0f" * 20)

PARAMS = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=WAD // 1000, liq_fee=WAD // 100,
    max_oi=10_000 * ETH, min_notional=10 * USD, funding_rate_max=0,
)  # fmt: skip
EDGES, MULTS = (10_000, 20_000), (150, 300)
VOL = VolParams(
    epoch=3_600, decay=WAD * 97 // 100, z=4 * WAD, horizon=DAY, floor=WAD // 10, cap=WAD // 2, mm_fraction=WAD // 2
)
CALLS = CallParams(buffer=WAD // 4, fee_share=WAD // 4, fraction=WAD // 4)  # band to 1.25 x MM, 25 % per call

GAS = 400_000
GWEI = 10**9
NATIVE_USD = 3_000 * USD  # 400k gas x 1 gwei x 3,000 USD = 1.2 USD


def make_sim(decimals: int = 6, calls: CallParams | None = CALLS) -> Engine:
    """ETH (0) 2,000, BTC (1) 40,000, the tiered market (2) 2,000 and a volatility market (3) 2,000."""
    liq_params = LiquidationParams(
        buffer=WAD // 10, liquidator_share=WAD // 2, reward_floor=10**decimals, reward_cap=500 * 10**decimals
    )
    sim = Engine(token_decimals=decimals, liq_params=liq_params, now=1_000_000)
    sim.add_market(PARAMS, 2_000 * USD)
    sim.add_market(PARAMS, 40_000 * USD)
    sim.add_market(PARAMS, 2_000 * USD)
    sim.add_market(PARAMS, 2_000 * USD)
    sim.set_tiers(TIER_MARKET, EDGES, MULTS)
    sim.set_volatility(VOL_MARKET, VOL, seed_var(VOL, WAD // 10))
    sim.advance(sim.ramp_duration)  # past the MM ramps the simulator starts on each change
    if calls is not None:
        sim.set_call_params(calls.buffer, calls.fee_share, calls.fraction)
    sim.vault_deposit(10**9 * 10**decimals)
    sim.fund_insurance(10**6 * 10**decimals)
    return sim


def trader(sim: Engine, owner: str, deposit: int, market: int, size: int, sub: int = 0) -> None:
    sim.deposit(owner, sub, deposit * 10**sim.token_decimals)
    sim.modify_position(owner, sub, market, size, 2**255 if size > 0 else 0)


def lens_markets(sim: Engine, flags: bool = True) -> dict:
    """``lens.markets()`` marked as the runner does (``engine.market_words``, ``risk.volatility``);
    ``flags=False``: the bot before the risk model (nothing marked)."""
    markets = markets_from_lens(markets_snapshot(sim))
    if not flags:
        return markets
    flagged = [m for m in markets if market_words_flagged(market_words(sim, m))]
    vol = {m: volatility_from_tuple(volatility(sim, m)) for m in flagged}
    return mark_risk(markets, flagged, vol)


def lens_quotes(sim: Engine, found: list[liq.Assessment], markets: dict) -> dict:
    """``lens.quote_liquidation`` for every key ``lens_quote_keys`` asks for."""
    out = {}
    for owner, sub, market in lens_quote_keys(found, markets):
        size = sim.position(owner, sub, market).size
        out[(owner, sub, market)] = quote_from_lens(owner, sub, market, size, quote_liquidation(sim, owner, sub, market))
    return out


def decide(sim: Engine, gas_price: int = GWEI, flags: bool = True, **kw: Any) -> liq.Round:
    markets = lens_markets(sim, flags)
    accounts = accounts_from_lens(accounts_snapshot(sim, sorted(sim.accounts)))
    found = [assess(a, markets, sim.scale, sim.now) for a in accounts]
    kw.setdefault("lens_quotes", lens_quotes(sim, found, markets))
    kw.setdefault("call_params", CALLS)
    return evaluate(found, markets, sim.liq_params, sim.scale, gas_price, GAS, NATIVE_USD, now=sim.now, **kw)


def assessment(sim: Engine, owner: str, sub: int = 0, flags: bool = True) -> liq.Assessment:
    markets = lens_markets(sim, flags)
    (a,) = accounts_from_lens([account_snapshot(sim, owner, sub)])
    return assess(a, markets, sim.scale, sim.now)


def liquidation_event(sim: Engine, owner: str, sub: int, market: int, max_size: int) -> dict[str, Any]:
    trial = copy.deepcopy(sim)
    reward = trial.liquidate(KEEPER, owner, sub, market, max_size)
    _, fields = next(e for e in reversed(trial.events) if e[0] == "Liquidation")
    assert fields["reward"] == reward
    return fields


def margin_call_event(sim: Engine, owner: str, sub: int, market: int, max_size: int) -> dict[str, Any]:
    trial = copy.deepcopy(sim)
    fee = trial.margin_call(KEEPER, owner, sub, market, max_size)
    _, fields = next(e for e in reversed(trial.events) if e[0] == "MarginCall")
    assert fields["fee"] == fee and trial.balance_of(KEEPER, 0) == fee
    return fields


def assert_is_liquidation(sim: Engine, q: liq.Quote) -> None:
    e = liquidation_event(sim, q.owner, q.sub, q.market, abs(q.position_size))
    assert (e["size_closed"], e["price"], e["penalty"], e["reward"], e["insurance_share"]) == (
        q.size, q.price, q.penalty, q.reward, q.insurance_share,
    )  # fmt: skip


def tiered_long(sim: Engine, owner: str = ALICE, price: int = 1_700) -> None:
    """20 ETH long on the tiered market with 9,000 (IM 8,500 at 2,000), then the price to ``price``."""
    trader(sim, owner, 9_000, TIER_MARKET, 20 * ETH)
    sim.set_price(TIER_MARKET, price * USD)


# --------------------------------------------------------------------------
#                                Converters
# --------------------------------------------------------------------------


def test_converters__market_flags_volatility_call_params() -> None:
    sim = make_sim()
    assert [market_words_flagged(market_words(sim, m)) for m in range(4)] == [False, False, True, True]
    assert volatility_from_tuple(volatility(sim, ETH_MARKET)) == (False, 0)
    assert volatility_from_tuple(volatility(sim, TIER_MARKET)) == (False, 0)  # flagged, no volatility
    assert volatility_from_tuple(volatility(sim, VOL_MARKET)) == (True, 0)  # a new series: due at once
    assert call_params_from_tuple((1, 2, 3)) == CallParams(1, 2, 3)
    assert not CallParams(0, 2, 3).on and CallParams(1, 0, 3).on

    markets = lens_markets(sim)
    assert [liq.is_flagged(markets[m]) for m in range(4)] == [False, False, True, True]
    assert markets[VOL_MARKET].volatility and markets[VOL_MARKET].next_sample_time == 0
    assert not markets[TIER_MARKET].volatility and markets[TIER_MARKET].next_sample_time == 0
    assert markets[ETH_MARKET].next_sample_time is None
    # marking keeps everything the lens gave
    plain = markets_from_lens(markets_snapshot(sim))
    for m in range(4):
        assert (markets[m].params, markets[m].price, markets[m].funding_index) == (
            plain[m].params, plain[m].price, plain[m].funding_index,
        )  # fmt: skip
    # a plain model.Market is converted when marked
    marked = mark_risk({5: sim.markets[ETH_MARKET]}, [5])
    assert isinstance(marked[5], MarketView) and marked[5].flagged and marked[5].market_id == 5


def test_converters__lens_quote_as_object_tuple_and_dict() -> None:
    sim = make_sim()
    tiered_long(sim)
    raw = quote_liquidation(sim, ALICE, 0, TIER_MARKET)
    quotes = {
        quote_from_lens(ALICE.lower(), 0, TIER_MARKET, 20 * ETH, r) for r in (raw, as_tuple(raw), as_dict(raw))
    }
    assert len(quotes) == 1
    (q,) = quotes
    assert q.owner == ALICE and q.size > 0 and q.position_size == 20 * ETH
    assert_is_liquidation(sim, q)
    # not liquidatable: a zero quote
    healthy = quote_from_lens(BOB, 0, TIER_MARKET, ETH, quote_liquidation(sim, BOB, 0, TIER_MARKET))
    assert (healthy.size, healthy.reward, healthy.penalty) == (0, 0, 0)


# --------------------------------------------------------------------------
#                       Flagged markets: the engine's state
# --------------------------------------------------------------------------


def test_assess__tiered_market__engine_state_trusted_where_base_rates_would_be_wrong() -> None:
    sim = make_sim()
    tiered_long(sim)  # equity 2,960 < MM 3,350 (tiers); the base rate alone: MM 1,700
    assert sim.status(ALICE, 0) == LIQUIDATABLE

    # Before the risk model the bot valued it with the base rates: MARGIN_CALL, a mismatch.
    blind = assessment(sim, ALICE, flags=False)
    assert blind.source == "model" and blind.status == MARGIN_CALL and blind.mismatch

    a = assessment(sim, ALICE)
    assert a.source == "engine" and a.flagged == (TIER_MARKET,)
    assert a.status == LIQUIDATABLE == a.engine_status and not a.mismatch
    assert a.state == sim.account(ALICE, 0)
    assert a.log_fields()["source"] == "engine"


def test_assess__flagged__equity_disagreement_and_failed_view() -> None:
    sim = make_sim()
    tiered_long(sim)
    markets = lens_markets(sim)
    snap = account_snapshot(sim, ALICE)
    snap.state.equity_maint += 1  # the engine's equity is not the model's
    a = assess(accounts_from_lens([snap])[0], markets, sim.scale, sim.now)
    assert a.mismatch and a.source == "engine"
    r = evaluate([a], markets, sim.liq_params, sim.scale, 0, GAS, NATIVE_USD, lens_quotes={})
    assert r.skip_reason(ALICE, 0) is SkipReason.MISMATCH

    snap = account_snapshot(sim, ALICE)
    snap.ok = False  # without the engine's valuation a flagged account is unknown
    a = assess(accounts_from_lens([snap])[0], markets, sim.scale, sim.now)
    assert a.status is None and a.state is None and "engine view failed" in (a.unknown_reason or "")
    r = evaluate([a], markets, sim.liq_params, sim.scale, 0, GAS, NATIVE_USD)
    assert r.skip_reason(ALICE, 0) is SkipReason.ENGINE_VIEW_FAILED


@pytest.mark.parametrize("decimals", [6, 18])
def test_plan__tiered_market__the_lens_quote_is_the_liquidation(decimals: int) -> None:
    sim = make_sim(decimals)
    tiered_long(sim)
    markets = lens_markets(sim)
    a = assessment(sim, ALICE)
    assert lens_quote_keys([a], markets) == [(ALICE, 0, TIER_MARKET)]

    r = decide(sim)
    [p] = r.plans
    assert (p.owner, p.market, p.status) == (ALICE, TIER_MARKET, LIQUIDATABLE) and not p.samples
    assert 0 < p.quote.size < 20 * ETH
    assert_is_liquidation(sim, p.quote)
    # sized with the base rate (what the bot did before) it would close more
    # than needed: closing the top of a tiered position frees more MM per unit
    blind = liq.quote_position(ALICE, 0, TIER_MARKET, a.state, sim.position(ALICE, 0, TIER_MARKET),
                               markets[TIER_MARKET], sim.liq_params, sim.scale)  # fmt: skip
    assert blind.size > p.quote.size
    # executing the plan restores the account
    sim.liquidate(KEEPER, ALICE, 0, TIER_MARKET, p.max_size)
    assert sim.status(ALICE, 0) in (HEALTHY, MARGIN_CALL)

    # no lens quote, no plan
    sim2 = make_sim(decimals)
    tiered_long(sim2)
    r = decide(sim2, lens_quotes={})
    assert r.plans == [] and r.skip_reason(ALICE, 0) is SkipReason.QUOTE_FAILED


def test_plan__mixed_account__model_quotes_its_static_market_from_the_engine_state() -> None:
    # BOB: the tiered long and 5 ETH long on the static ETH market, both falling.
    sim = make_sim()
    sim.deposit(BOB, 0, 10_500 * 10**6)
    sim.modify_position(BOB, 0, TIER_MARKET, 20 * ETH, 2**255)
    sim.modify_position(BOB, 0, ETH_MARKET, 5 * ETH, 2**255)
    sim.set_price(TIER_MARKET, 1_700 * USD)  # equity 10,450 - 6,750 = 3,700 < MM 3,350 + 462.5
    sim.set_price(ETH_MARKET, 1_850 * USD)
    assert sim.status(BOB, 0) == LIQUIDATABLE
    markets = lens_markets(sim)
    a = assessment(sim, BOB)
    assert a.source == "engine" and a.flagged == (TIER_MARKET,)
    quotes = lens_quotes(sim, [a], markets)
    assert list(quotes) == [(BOB, 0, TIER_MARKET)]  # one lens read: the static market is the model's
    both = quote(a, markets, sim.liq_params, sim.scale, quotes)
    assert [q.market for q in both] == [ETH_MARKET, TIER_MARKET]
    for q in both:
        assert_is_liquidation(sim, q)
    [p] = decide(sim).plans
    assert p.quote == max(both, key=lambda q: q.reward)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tier_size=st.integers(1, 40),  # ETH on the tiered market
    eth_size=st.integers(0, 10),  # ETH on the static market
    short=st.booleans(),
    extra=st.integers(1, 30),  # deposit above the IM, percent
    adverse=st.integers(0, 250),  # adverse price move, tenths of a percent
    decimals=st.sampled_from([6, 18]),
)
def test_assess_and_quote__flagged_accounts_always_agree_with_the_simulator(
    tier_size: int, eth_size: int, short: bool, extra: int, adverse: int, decimals: int
) -> None:
    sim = make_sim(decimals)
    sign = -1 if short else 1
    im = tier_requirement(tier_size * 2_000 * USD, PARAMS.imr, (EDGES, MULTS)) + eth_size * 200 * USD
    fees = (tier_size + eth_size) * 2 * USD
    deposit = (im + fees) * (100 + extra) // 100 // USD + 1
    sim.deposit(CAROL, 0, deposit * 10**decimals)
    sim.modify_position(CAROL, 0, TIER_MARKET, sign * tier_size * ETH, 2**255 if sign > 0 else 0)
    if eth_size:
        sim.modify_position(CAROL, 0, ETH_MARKET, sign * eth_size * ETH, 2**255 if sign > 0 else 0)
    price = 2_000 * USD * (1_000 - sign * adverse) // 1_000
    sim.set_price(TIER_MARKET, price)
    sim.set_price(ETH_MARKET, price)
    a = assessment(sim, CAROL)
    assert a.source == "engine" and not a.mismatch
    assert a.status == sim.status(CAROL, 0) and a.state == sim.account(CAROL, 0)
    event(f"status {a.status}")
    if not a.liquidatable:
        return
    markets = lens_markets(sim)
    for q in quote(a, markets, sim.liq_params, sim.scale, lens_quotes(sim, [a], markets)):
        assert_is_liquidation(sim, q)


# --------------------------------------------------------------------------
#                               Margin calls
# --------------------------------------------------------------------------


def band_long(sim: Engine, owner: str = ALICE, market: int = ETH_MARKET, price: int = 1_910) -> None:
    """10 ETH long with 2,100 (equity 2,080 at 2,000); at 1,910: equity 1,180,
    MM 955, band up to 1,193.75."""
    trader(sim, owner, 2_100, market, 10 * ETH)
    sim.set_price(market, price * USD)


@pytest.mark.parametrize("decimals", [6, 18])
def test_margin_call__account_in_the_band_is_called_for_the_simulators_fee(decimals: int) -> None:
    sim = make_sim(decimals)
    band_long(sim)
    assert sim.status(ALICE, 0) == MARGIN_CALL and sim.in_band(ALICE, 0)

    r = decide(sim)
    assert r.plans == []
    [c] = r.calls
    assert (c.owner, c.sub, c.market, c.max_size) == (ALICE, 0, ETH_MARKET, 10 * ETH)
    assert c.quote.size == 10 * ETH // 4  # call_fraction
    e = margin_call_event(sim, ALICE, 0, ETH_MARKET, c.max_size)
    assert (e["size_closed"], e["price"], e["fee"]) == (c.quote.size, c.quote.price, c.quote.fee)
    # 2.5 ETH x 1,910 x 1 % x 25 % = 11.9375 USD, all of it the caller's
    assert c.quote.fee * sim.scale == 119_375 * WAD // 10_000
    assert c.fee_usd == c.quote.fee * sim.scale and c.profit_usd == c.fee_usd - c.gas_cost_usd
    assert c.gas_cost_usd == GAS * GWEI * NATIVE_USD // WAD


def test_margin_call__outside_the_band_or_band_off_nothing_to_do() -> None:
    sim = make_sim()
    band_long(sim, price=1_915)  # equity 1,230 >= 1.25 x 957.5: MARGIN_CALL, not in the band
    assert sim.status(ALICE, 0) == MARGIN_CALL and not sim.in_band(ALICE, 0)
    r = decide(sim)
    assert r.calls == [] and r.skip_reason(ALICE, 0) is SkipReason.NOT_LIQUIDATABLE

    sim = make_sim()
    band_long(sim)
    for off in (None, CallParams(0, WAD // 4, WAD // 4)):
        r = decide(sim, call_params=off)
        assert r.calls == [] and r.skip_reason(ALICE, 0) is SkipReason.NOT_LIQUIDATABLE


def test_margin_call__unprofitable_and_dust() -> None:
    sim = make_sim()
    band_long(sim)
    r = decide(sim, gas_price=10 * GWEI)  # 12 USD of gas > 11.94 USD of fee
    assert r.calls == [] and r.skip_reason(ALICE, 0) is SkipReason.UNPROFITABLE
    c = decide(sim).calls[0]
    r = decide(sim, min_profit_usd_wad=c.profit_usd + 1)
    assert r.calls == [] and r.skip_reason(ALICE, 0) is SkipReason.UNPROFITABLE

    # A quarter of a small position is below min_notional (10 USD) and the
    # rest is not: the call would revert. 0.015 ETH (30 USD) on 4 tokens; at
    # 1,840 equity 1.57, MM 1.38 (band to 1.725); a call of 6.9 USD is dust.
    sim = make_sim()
    trader(sim, BOB, 4, ETH_MARKET, 15 * ETH // 1_000)
    sim.set_price(ETH_MARKET, 1_840 * USD)
    assert sim.status(BOB, 0) == MARGIN_CALL and sim.in_band(BOB, 0)
    with pytest.raises(Exception, match="engine: dust"):
        sim.margin_call(KEEPER, BOB, 0, ETH_MARKET, 15 * ETH // 1_000)
    r = decide(sim, gas_price=0)
    assert r.calls == [] and r.skip_reason(BOB, 0) is SkipReason.CALL_DUST


def test_margin_call__ranked_like_liquidations_after_them_within_the_round_limit() -> None:
    sim = make_sim()
    band_long(sim, ALICE)
    trader(sim, BOB, 4_200, BTC_MARKET, ETH)  # 40,000 of BTC on 4,200
    sim.set_price(BTC_MARKET, 38_000 * USD)  # equity 2,160 < 1.25 x MM 1,900: in the band, fee 23.75
    trader(sim, CAROL, 250, ETH_MARKET, ETH // 2)
    sim.set_price(ETH_MARKET, 1_910 * USD)
    trader(sim, DAVE, 9_000, TIER_MARKET, 20 * ETH)
    sim.set_price(TIER_MARKET, 1_700 * USD)  # liquidatable (tiers)
    assert [sim.in_band(o, 0) for o in (ALICE, BOB)] == [True, True]

    r = decide(sim)
    assert [p.owner for p in r.plans] == [DAVE]
    assert [c.owner for c in r.calls] == [BOB, ALICE]  # the larger fee first
    profits = [c.profit_usd for c in r.calls]
    assert profits == sorted(profits, reverse=True)
    for c in r.calls:
        e = margin_call_event(sim, c.owner, c.sub, c.market, c.max_size)
        assert (e["size_closed"], e["fee"]) == (c.quote.size, c.quote.fee)

    r = decide(sim, max_per_round=2)
    assert [p.owner for p in r.plans] == [DAVE] and [c.owner for c in r.calls] == [BOB]
    assert r.skip_reason(ALICE, 0) is SkipReason.ROUND_LIMIT
    r = decide(sim, max_per_round=1)
    assert [p.owner for p in r.plans] == [DAVE] and r.calls == []


def test_margin_call__tiered_market__band_from_the_engine_state() -> None:
    # 20 ETH long on the tiered market at 1,740: equity 3,760, MM 3,470 (tiers),
    # in the band (< 4,337.5); by the base rate alone (MM 1,740) it would be HEALTHY-ish.
    sim = make_sim()
    tiered_long(sim, price=1_740)
    assert sim.status(ALICE, 0) == MARGIN_CALL and sim.in_band(ALICE, 0)
    assert decide(sim, flags=False).skip_reason(ALICE, 0) is SkipReason.MISMATCH
    [c] = decide(sim).calls
    assert c.market == TIER_MARKET and c.quote.size == 5 * ETH
    e = margin_call_event(sim, ALICE, 0, TIER_MARKET, c.max_size)
    assert (e["size_closed"], e["fee"]) == (c.quote.size, c.quote.fee)


# --------------------------------------------------------------------------
#                            Volatility samples
# --------------------------------------------------------------------------


def view_market(market_id: int, next_time: int | None, vol: bool = True, ok: bool = True) -> MarketView:
    return MarketView(
        params=PARAMS, price=2_000 * USD if ok else 0, market_id=market_id, price_ok=ok,
        flagged=True, volatility=vol, next_sample_time=next_time,
    )  # fmt: skip


def test_volatility_due__once_per_epoch_most_overdue_first() -> None:
    now = 10 * 3_600 + 5
    markets = {
        0: view_market(0, 10 * 3_600),  # the epoch started 5 s ago: due
        1: view_market(1, 11 * 3_600),  # sampled this epoch: not due
        2: view_market(2, 0),  # a new series: due, most overdue
        3: view_market(3, 9 * 3_600, vol=False),  # no volatility margin
        4: view_market(4, 9 * 3_600, ok=False),  # invalid price: the call would revert
        5: view_market(5, None),  # not read
        6: view_market(6, now),  # due exactly now
        7: MarketView(params=PARAMS, price=2_000 * USD, market_id=7),  # unflagged
    }
    assert volatility_due(markets, now) == [2, 0, 6]
    assert volatility_due(markets, now, skip=[0]) == [2, 6]  # sampled by this round's liquidation
    assert volatility_due(markets, 10 * 3_600 - 1) == [2]


def test_volatility_due__follows_the_simulators_samples() -> None:
    sim = make_sim()
    assert volatility_due(lens_markets(sim), sim.now) == [VOL_MARKET]  # set, never sampled
    sim.update_volatility(VOL_MARKET)  # the first sample of the series: the anchor
    assert volatility_due(lens_markets(sim), sim.now) == []
    next_time = lens_markets(sim)[VOL_MARKET].next_sample_time
    assert next_time == (sim.now // VOL.epoch + 1) * VOL.epoch
    sim.advance(next_time - sim.now - 1)
    assert volatility_due(lens_markets(sim), sim.now) == []
    sim.advance(1)
    assert volatility_due(lens_markets(sim), sim.now) == [VOL_MARKET]
    trader(sim, ALICE, 1_000, VOL_MARKET, ETH)  # a trade samples: nothing left for the keeper
    assert volatility_due(lens_markets(sim), sim.now) == []


def test_plan__liquidation_in_a_market_due_for_a_sample_is_marked() -> None:
    sim = make_sim()
    trader(sim, ALICE, 250, VOL_MARKET, ETH)  # samples (anchor); next sample next epoch
    sim.advance((sim.now // VOL.epoch + 1) * VOL.epoch - sim.now)
    sim.set_price(VOL_MARKET, 1_820 * USD)
    assert sim.status(ALICE, 0) >= LIQUIDATABLE
    [p] = decide(sim).plans
    assert p.market == VOL_MARKET and p.samples
    sim.update_volatility(VOL_MARKET)
    [p] = decide(sim).plans
    assert not p.samples
    assert_is_liquidation(sim, p.quote)
    assert p.status in (LIQUIDATABLE, BANKRUPT)


def test_converters__engine_margin_words() -> None:
    margin = 3 | 7 << 128  # haircut 3, transfer ratio 7
    call = CALLS.buffer | CALLS.fee_share << 64 | CALLS.fraction << 128
    assert liq.margin_words_from_tuple((margin, call)) == (3, CALLS)
    assert liq.margin_words_from_tuple((0, 0)) == (0, CallParams(0, 0, 0))
