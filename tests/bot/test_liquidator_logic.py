"""The liquidator's decision logic (``margin_engine.liquidator``) against the simulator.

Pure Python: accounts are built with the reference simulator
(``margin_engine.model.Engine``), turned into lens-shaped snapshots
(``sim_lens``), assessed and quoted by the bot's logic, then liquidated in a
copy of the simulator: the quote must be what the liquidation does, to the wei.
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
    active_accounts,
    active_keys,
    as_dict,
    as_tuple,
    markets_snapshot,
)

import margin_engine.liquidator as liq
from margin_engine.liquidator import (
    AccountBook,
    Assessment,
    FailureTracker,
    MarketView,
    SkipReason,
    accounts_from_lens,
    assess,
    evaluate,
    funding_due,
    liq_params_from_tuple,
    markets_from_lens,
    page_ranges,
    plan,
    quote,
)
from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    STATUS_NAMES,
    WAD,
    Engine,
    LiquidationParams,
    MarketParams,
    liquidation_notional,
    mul_div_up,
)

USD = WAD
ETH = WAD
ETH_MARKET, BTC_MARKET, DUSTY_MARKET = 0, 1, 2
DAY = 86_400

ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (
    to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6)
)
KEEPER = to_checksum_address("0x" + "0f" * 20)

PARAMS = MarketParams(
    imr=WAD // 10,  # 10%
    mmr=WAD // 20,  # 5%
    fee_rate=WAD // 1000,  # 0.1%
    liq_fee=WAD // 100,  # 1%
    max_oi=1_000 * ETH,
    min_notional=10 * USD,
    funding_rate_max=10**12,  # 1e-6 per second at full skew
)
# A remainder below 1,800 USD is closed too.
DUSTY = MarketParams(**{**vars(PARAMS), "min_notional": 1_800 * USD})

GAS = 400_000
GWEI = 10**9
NATIVE_USD = 3_000 * USD  # 400k gas x 1 gwei x 3,000 USD = 1.2 USD


def liq_params(decimals: int) -> LiquidationParams:
    """10% buffer, half the penalty to the liquidator, floor 1 token, cap 500 tokens."""
    return LiquidationParams(
        buffer=WAD // 10, liquidator_share=WAD // 2, reward_floor=10**decimals, reward_cap=500 * 10**decimals
    )


def make_sim(decimals: int = 6) -> Engine:
    """ETH (0) at 2,000, BTC (1) at 40,000 and a dusty ETH-like market (2) at 2,000."""
    sim = Engine(token_decimals=decimals, liq_params=liq_params(decimals), now=1_000)
    sim.add_market(PARAMS, 2_000 * USD)
    sim.add_market(PARAMS, 40_000 * USD)
    sim.add_market(DUSTY, 2_000 * USD)
    sim.vault_deposit(10**9 * 10**decimals)
    sim.fund_insurance(10**6 * 10**decimals)
    return sim


def trader(sim: Engine, owner: str, deposit_tokens: int, market: int, size: int, sub: int = 0) -> None:
    """Deposit ``deposit_tokens`` whole tokens and trade ``size`` at the oracle price."""
    sim.deposit(owner, sub, deposit_tokens * 10 ** sim.token_decimals)
    sim.modify_position(owner, sub, market, size, 2**255 if size > 0 else 0)


def view(sim: Engine, invalid: tuple[int, ...] = ()) -> tuple[dict, list]:
    """(markets, accounts) as the bot sees them through the lens, now."""
    markets = markets_from_lens(markets_snapshot(sim, invalid))
    accounts = accounts_from_lens(accounts_snapshot(sim, sorted(sim.accounts), invalid))
    return markets, accounts


def assessments(sim: Engine, invalid: tuple[int, ...] = ()) -> dict[tuple[str, int], Assessment]:
    markets, accounts = view(sim, invalid)
    return {a.key: assess(a, markets, sim.scale, sim.now) for a in accounts}


def liquidation_event(sim: Engine, owner: str, sub: int, market: int, max_size: int) -> tuple[int, dict[str, Any]]:
    """Liquidate in a copy of ``sim``: (returned reward, the Liquidation event's fields)."""
    sim = copy.deepcopy(sim)
    reward = sim.liquidate(KEEPER, owner, sub, market, max_size)
    name, fields = next(e for e in reversed(sim.events) if e[0] == "Liquidation")
    return reward, fields


def assert_quote_is_liquidation(sim: Engine, q: liq.Quote) -> None:
    reward, event = liquidation_event(sim, q.owner, q.sub, q.market, abs(q.position_size))
    assert reward == q.reward
    assert (event["size_closed"], event["price"], event["penalty"], event["reward"], event["insurance_share"]) == (
        q.size,
        q.price,
        q.penalty,
        q.reward,
        q.insurance_share,
    )


def round_for(sim: Engine, gas_price: int = GWEI, **kw: Any) -> liq.Round:
    markets, accounts = view(sim, kw.pop("invalid", ()))
    found = [assess(a, markets, sim.scale, sim.now) for a in accounts]
    return evaluate(found, markets, sim.liq_params, sim.scale, gas_price, GAS, NATIVE_USD, **kw)


# --------------------------------------------------------------------------
#                                Converters
# --------------------------------------------------------------------------


def test_converters__objects_tuples_and_dicts_agree() -> None:
    sim = make_sim()
    trader(sim, ALICE, 1_000, ETH_MARKET, 2 * ETH)
    sim.modify_position(ALICE, 0, BTC_MARKET, -ETH // 100, 0)
    sim.advance(600)
    markets = markets_snapshot(sim, invalid=[BTC_MARKET])
    accounts = accounts_snapshot(sim, [(ALICE, 0)], invalid=[BTC_MARKET])

    by_object = (markets_from_lens(markets), accounts_from_lens(accounts))
    by_tuple = (markets_from_lens(as_tuple(markets)), accounts_from_lens(as_tuple(accounts)))
    by_dict = (markets_from_lens(as_dict(markets)), accounts_from_lens(as_dict(accounts)))
    assert by_object == by_tuple == by_dict

    m = by_object[0]
    assert isinstance(m[ETH_MARKET], MarketView) and m[ETH_MARKET].price_ok
    assert m[ETH_MARKET].params == PARAMS and m[ETH_MARKET].long_oi == 2 * ETH
    # invalid price: kept, flagged, price 0
    assert not m[BTC_MARKET].price_ok and m[BTC_MARKET].price == 0 and m[BTC_MARKET].short_oi == ETH // 100

    (a,) = by_object[1]
    assert a.key == (ALICE, 0)
    assert a.balance == sim.balance_of(ALICE, 0)
    assert a.positions == {m: sim.position(ALICE, 0, m) for m in (ETH_MARKET, BTC_MARKET)}
    assert a.engine_state == sim.account(ALICE, 0) and not a.engine_prices_ok


def test_converters__owner_checksummed_and_failed_view_has_no_state() -> None:
    sim = make_sim()
    snap = as_dict(account_snapshot(sim, ALICE))
    snap["owner"] = ALICE.lower()
    snap["ok"] = False
    (a,) = accounts_from_lens([snap])
    assert a.owner == ALICE
    assert a.engine_state is None and a.positions == {}


def test_liq_params_from_tuple() -> None:
    expected = LiquidationParams(buffer=1, liquidator_share=2, reward_floor=3, reward_cap=4)
    assert liq_params_from_tuple((1, 2, 3, 4)) == expected
    assert liq_params_from_tuple({"buffer": 1, "liquidator_share": 2, "reward_floor": 3, "reward_cap": 4}) == expected


# --------------------------------------------------------------------------
#                                 Health
# --------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [6, 18])
def test_assess__status_follows_the_simulator_through_every_band(decimals: int) -> None:
    # 1 ETH long at 2,000 with 250 tokens: equity 248 after the 2 fee, MM 5%.
    sim = make_sim(decimals)
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    for price, expected in [(2_000, HEALTHY), (1_900, MARGIN_CALL), (1_840, LIQUIDATABLE), (1_700, BANKRUPT)]:
        sim.set_price(ETH_MARKET, price * USD)
        a = assessments(sim)[(ALICE, 0)]
        assert a.status == expected == sim.status(ALICE, 0)
        assert a.state == sim.account(ALICE, 0)
        assert a.engine_status == expected and not a.mismatch


def test_assess__funding_brought_forward_to_now() -> None:
    # A lone 1 ETH long pays the full rate: 2,000 x 1e-6 = 0.002 USD a second,
    # 172.8 USD a day; the stored index is a day old.
    sim = make_sim()
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    stored_at = sim.markets[ETH_MARKET].last_funding_time
    sim.advance(DAY)
    markets, (alice,) = view(sim)
    assert markets[ETH_MARKET].last_funding_time == stored_at  # the lens gives stored values

    now = assess(alice, markets, sim.scale, sim.now)
    assert now.status == LIQUIDATABLE == sim.status(ALICE, 0)
    assert now.state == sim.account(ALICE, 0)
    # valued with the stale index, the account would look fine
    assert assess(alice, markets, sim.scale, stored_at).status == HEALTHY

    (q,) = quote(now, markets, sim.liq_params, sim.scale)
    assert_quote_is_liquidation(sim, q)


def test_assess__invalid_price_gives_unknown_status_never_acted_on() -> None:
    sim = make_sim()
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    trader(sim, BOB, 250, BTC_MARKET, ETH // 20)
    sim.set_price(ETH_MARKET, 1_840 * USD)
    sim.set_price(BTC_MARKET, 36_800 * USD)
    found = assessments(sim, invalid=(ETH_MARKET,))
    assert found[(ALICE, 0)].status is None and "price invalid" in found[(ALICE, 0)].unknown_reason
    assert found[(ALICE, 0)].engine_status is None and not found[(ALICE, 0)].mismatch
    assert found[(BOB, 0)].status == LIQUIDATABLE  # another market's price is not needed

    r = round_for(sim, invalid=(ETH_MARKET,))
    assert r.skip_reason(ALICE, 0) is SkipReason.PRICE_INVALID
    assert [(p.owner, p.market) for p in r.plans] == [(BOB, BTC_MARKET)]

    # the engine's own flag is enough (the lens read markets and accounts in one block)
    markets = markets_from_lens(markets_snapshot(sim))
    snap = account_snapshot(sim, ALICE)
    snap.state.prices_ok = False
    a = assess(accounts_from_lens([snap])[0], markets, sim.scale, sim.now)
    assert a.status is None and a.unknown_reason == "engine reports an invalid price"


def test_assess__mismatch_with_the_engine_is_flagged_and_skipped() -> None:
    sim = make_sim()
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    sim.set_price(ETH_MARKET, 1_840 * USD)
    markets = markets_from_lens(markets_snapshot(sim))
    snap = account_snapshot(sim, ALICE)
    snap.state.status = MARGIN_CALL  # the engine disagrees
    a = assess(accounts_from_lens([snap])[0], markets, sim.scale, sim.now)
    assert a.status == LIQUIDATABLE and a.engine_status == MARGIN_CALL and a.mismatch
    assert a.log_fields()["mismatch"] is True and a.log_fields()["engine_status"] == "MARGIN_CALL"
    r = evaluate([a], markets, sim.liq_params, sim.scale, 0, GAS, NATIVE_USD)
    assert r.plans == [] and r.skip_reason(ALICE, 0) is SkipReason.MISMATCH


# --------------------------------------------------------------------------
#                                  Quotes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [6, 18])
def test_quote__partial_liquidation_equals_the_simulator(decimals: int) -> None:
    # 10 ETH long with 2,500: at 1,800 equity 480 < MM 900; closing ~6.3 ETH restores MM x 1.1.
    sim = make_sim(decimals)
    trader(sim, ALICE, 2_500, ETH_MARKET, 10 * ETH)
    sim.set_price(ETH_MARKET, 1_800 * USD)
    a = assessments(sim)[(ALICE, 0)]
    markets, _ = view(sim)
    (q,) = quote(a, markets, sim.liq_params, sim.scale)
    assert 0 < q.size < 10 * ETH and not q.closes_position
    assert q.reward == q.penalty // 2 and q.insurance_share == q.penalty - q.reward
    assert_quote_is_liquidation(sim, q)
    # and the simulator's account is back above maintenance afterwards
    after = copy.deepcopy(sim)
    after.liquidate(KEEPER, ALICE, 0, ETH_MARKET, 10 * ETH)
    assert after.status(ALICE, 0) in (HEALTHY, MARGIN_CALL)


def test_quote__dust_remainder_is_closed_too() -> None:
    # Market 2 closes any remainder below 1,800 USD: 1 ETH at 1,840 needs ~0.16 ETH
    # closed, which would leave ~1,546 USD.
    sim = make_sim()
    trader(sim, ALICE, 250, DUSTY_MARKET, ETH)
    sim.set_price(DUSTY_MARKET, 1_840 * USD)
    a = assessments(sim)[(ALICE, 0)]
    markets, _ = view(sim)
    natural = mul_div_up(liquidation_notional(a.state, DUSTY, sim.liq_params, sim.scale), WAD, 1_840 * USD)
    assert natural < ETH
    (q,) = quote(a, markets, sim.liq_params, sim.scale)
    assert q.size == ETH and q.closes_position
    assert_quote_is_liquidation(sim, q)


@pytest.mark.parametrize(
    "price, penalty, reward",
    [
        (1_840, 293_335, 293_335),  # half the penalty is below the 1-token floor: the whole penalty
        (1_800, 1_133_335, 1_000_000),  # half is 0.57 token: the floor, 1 token
    ],
)
def test_quote__reward_floor_never_above_the_penalty(price: int, penalty: int, reward: int) -> None:
    # 0.1 ETH long with 25 USDC: the penalty is 1% of the closed notional.
    sim = make_sim()
    trader(sim, ALICE, 25, ETH_MARKET, ETH // 10)
    sim.set_price(ETH_MARKET, price * USD)
    a = assessments(sim)[(ALICE, 0)]
    (q,) = quote(a, view(sim)[0], sim.liq_params, sim.scale)
    assert (q.penalty, q.reward, q.insurance_share) == (penalty, reward, penalty - reward)
    assert_quote_is_liquidation(sim, q)


@pytest.mark.parametrize("decimals", [6, 18])
def test_quote__bankrupt_account_pays_no_penalty_and_is_unprofitable(decimals: int) -> None:
    sim = make_sim(decimals)
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    sim.set_price(ETH_MARKET, 1_700 * USD)
    a = assessments(sim)[(ALICE, 0)]
    assert a.status == BANKRUPT
    (q,) = quote(a, view(sim)[0], sim.liq_params, sim.scale)
    assert (q.penalty, q.reward, q.insurance_share) == (0, 0, 0) and q.size == ETH
    assert_quote_is_liquidation(sim, q)

    r = round_for(sim, gas_price=GWEI)
    assert r.plans == [] and r.skip_reason(ALICE, 0) is SkipReason.UNPROFITABLE
    assert round_for(sim, gas_price=0).skip_reason(ALICE, 0) is SkipReason.UNPROFITABLE  # profit 0


def test_quote__cross_account_every_market_equals_the_simulator_and_plan_picks_the_best() -> None:
    # Long 5 ETH and short 0.25 BTC on 2,100: ETH falls and BTC rises.
    sim = make_sim()
    trader(sim, ALICE, 2_100, ETH_MARKET, 5 * ETH)
    sim.modify_position(ALICE, 0, BTC_MARKET, -ETH // 4, 0)
    sim.advance(3_600)
    sim.set_price(ETH_MARKET, 1_780 * USD)
    sim.set_price(BTC_MARKET, 42_000 * USD)
    a = assessments(sim)[(ALICE, 0)]
    assert a.status == LIQUIDATABLE == sim.status(ALICE, 0)
    markets, _ = view(sim)
    quotes = quote(a, markets, sim.liq_params, sim.scale)
    assert [q.market for q in quotes] == [ETH_MARKET, BTC_MARKET]
    for q in quotes:
        assert_quote_is_liquidation(sim, q)
    (p,) = plan([a], markets, sim.liq_params, sim.scale, GWEI, GAS, NATIVE_USD)
    best = max(quotes, key=lambda q: q.reward)
    assert p.quote == best and p.market == best.market and p.max_size == abs(best.position_size)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    decimals=st.sampled_from([6, 18]),
    size_milli=st.integers(50, 20_000),  # 0.05 to 20 ETH
    long=st.booleans(),
    margin_bp=st.integers(1_015, 2_500),  # deposit: 10.15% to 25% of the notional
    equity_bp=st.integers(-300, 800),  # equity left after the price move, in bp of the notional
    price_dust=st.integers(0, WAD),  # odd wei in the price
    other_milli=st.one_of(st.just(0), st.integers(10, 20_000)),  # other side: funding either way
    elapsed=st.integers(0, 2 * DAY),
)
def test_quote__always_equals_the_simulators_liquidation(
    decimals: int,
    size_milli: int,
    long: bool,
    margin_bp: int,
    equity_bp: int,
    price_dust: int,
    other_milli: int,
    elapsed: int,
) -> None:
    sim = make_sim(decimals)
    side = 1 if long else -1
    sim.deposit(ALICE, 0, 2_000 * size_milli * margin_bp // 10_000 * 10**decimals // 1_000)
    sim.modify_position(ALICE, 0, ETH_MARKET, side * size_milli * ETH // 1_000, 2**255 if long else 0)
    if other_milli:
        trader(sim, BOB, 10**6, ETH_MARKET, -side * other_milli * ETH // 1_000)
    sim.advance(elapsed)
    adverse_bp = margin_bp - equity_bp  # the price move against the position
    sim.set_price(ETH_MARKET, 2_000 * USD * (10_000 - side * adverse_bp) // 10_000 + price_dust)

    a = assessments(sim)[(ALICE, 0)]
    assert a.status == sim.status(ALICE, 0) and a.state == sim.account(ALICE, 0) and not a.mismatch
    event(STATUS_NAMES[a.status])
    for q in quote(a, view(sim)[0], sim.liq_params, sim.scale):
        event("closes the position" if q.closes_position else "partial")
        assert_quote_is_liquidation(sim, q)


# --------------------------------------------------------------------------
#                          Ranking and profitability
# --------------------------------------------------------------------------


def test_plan__ranks_by_profit_and_skips_what_gas_eats() -> None:
    sim = make_sim()
    trader(sim, ALICE, 250, ETH_MARKET, ETH)  # reward 5.67 tokens at 1,800
    trader(sim, BOB, 2_500, ETH_MARKET, 10 * ETH)  # 56.67
    trader(sim, CAROL, 1_250, ETH_MARKET, 5 * ETH)  # 28.33
    trader(sim, DAVE, 10_000, ETH_MARKET, 2 * ETH)  # healthy
    trader(sim, ERIN, 25, ETH_MARKET, ETH // 10)  # liquidatable, reward: the 1-token floor
    trader(sim, FRANK, 300, ETH_MARKET, ETH // 10 * 9)  # margin call
    sim.set_price(ETH_MARKET, 1_800 * USD)

    r = round_for(sim, gas_price=GWEI)  # gas 1.2 USD
    assert [p.owner for p in r.plans] == [BOB, CAROL, ALICE]
    profits = [p.profit_usd for p in r.plans]
    assert profits == sorted(profits, reverse=True)
    for p in r.plans:
        assert p.gas_cost_usd == GAS * GWEI * NATIVE_USD // WAD == 12 * USD // 10
        assert p.reward_usd == p.quote.reward * sim.scale
        assert p.profit_usd == p.reward_usd - p.gas_cost_usd
        assert_quote_is_liquidation(sim, p.quote)
    assert r.skip_reason(DAVE, 0) is SkipReason.NOT_LIQUIDATABLE
    assert r.skip_reason(FRANK, 0) is SkipReason.NOT_LIQUIDATABLE
    assert r.skip_reason(ERIN, 0) is SkipReason.UNPROFITABLE  # 1 USD reward < 1.2 USD gas
    assert round_for(sim, gas_price=0).plans[-1].owner == ERIN  # free gas: worth it

    # at 5 gwei gas costs 6 USD: ALICE's 5.67 USD reward no longer pays
    r = round_for(sim, gas_price=5 * GWEI)
    assert [p.owner for p in r.plans] == [BOB, CAROL]
    assert r.skip_reason(ALICE, 0) is SkipReason.UNPROFITABLE

    # a minimum profit and a round limit
    bob_profit = r.plans[0].profit_usd
    r = round_for(sim, gas_price=5 * GWEI, min_profit_usd_wad=bob_profit)
    assert [p.owner for p in r.plans] == [BOB]
    r = round_for(sim, gas_price=GWEI, max_per_round=2)
    assert [p.owner for p in r.plans] == [BOB, CAROL]
    assert r.skip_reason(ALICE, 0) is SkipReason.ROUND_LIMIT

    # a cheaper settlement token (0.5 USD) halves the reward in USD
    half = round_for(sim, gas_price=0, token_usd_wad=WAD // 2)
    full = round_for(sim, gas_price=0)
    assert [p.reward_usd * 2 for p in half.plans] == [p.reward_usd for p in full.plans]


def test_plan__ties_break_by_owner_then_sub_deterministically() -> None:
    sim = make_sim()
    for owner, sub in [(CAROL, 1), (ALICE, 0), (CAROL, 0), (BOB, 0)]:
        trader(sim, owner, 250, ETH_MARKET, ETH, sub=sub)
    sim.set_price(ETH_MARKET, 1_840 * USD)
    markets, accounts = view(sim)
    found = [assess(a, markets, sim.scale, sim.now) for a in accounts]
    first = plan(found, markets, sim.liq_params, sim.scale, GWEI, GAS, NATIVE_USD)
    again = plan(list(reversed(found)), markets, sim.liq_params, sim.scale, GWEI, GAS, NATIVE_USD)
    assert [(p.owner, p.sub) for p in first] == [(ALICE, 0), (BOB, 0), (CAROL, 0), (CAROL, 1)]
    assert first == again


def test_plan__engine_view_failure_is_skipped() -> None:
    sim = make_sim()
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    sim.set_price(ETH_MARKET, 1_840 * USD)
    markets = markets_from_lens(markets_snapshot(sim))
    snap = account_snapshot(sim, ALICE)
    snap.ok = False
    a = assess(accounts_from_lens([snap])[0], markets, sim.scale, sim.now)
    r = evaluate([a], markets, sim.liq_params, sim.scale, 0, GAS, NATIVE_USD)
    assert r.plans == [] and r.skip_reason(ALICE, 0) is SkipReason.ENGINE_VIEW_FAILED


def test_plan__each_plan_executes_in_order_with_the_quoted_rewards() -> None:
    # Executing the round in order: the accounts are independent, so every
    # liquidation pays exactly its quote and leaves its account out of MM.
    sim = make_sim(18)
    trader(sim, ALICE, 250, ETH_MARKET, ETH)
    trader(sim, BOB, 2_500, ETH_MARKET, 10 * ETH)
    trader(sim, CAROL, 420, BTC_MARKET, -ETH // 10)
    sim.advance(DAY // 4)
    sim.set_price(ETH_MARKET, 1_800 * USD)
    sim.set_price(BTC_MARKET, 42_500 * USD)
    plans = round_for(sim).plans
    assert {p.owner for p in plans} == {ALICE, BOB, CAROL}
    for p in plans:
        assert sim.liquidate(KEEPER, p.owner, p.sub, p.market, p.max_size) == p.quote.reward
        assert sim.status(p.owner, p.sub) not in (LIQUIDATABLE, BANKRUPT)
    assert sim.balance_of(KEEPER, 0) == sum(p.quote.reward for p in plans)


# --------------------------------------------------------------------------
#                                Discovery
# --------------------------------------------------------------------------


def test_page_ranges() -> None:
    assert list(page_ranges(0)) == []
    assert list(page_ranges(200)) == [(0, 200)]
    assert list(page_ranges(450)) == [(0, 200), (200, 200), (400, 50)]
    assert list(page_ranges(5, 2)) == [(0, 2), (2, 2), (4, 1)]
    with pytest.raises(ValueError):
        list(page_ranges(5, 0))


def scan(sim: Engine, page_size: int = 2) -> list[tuple[int, list]]:
    total, _ = active_accounts(sim, 0, 0)
    return [active_accounts(sim, start, count) for start, count in page_ranges(total, page_size)]


def test_account_book__clean_scan_is_authoritative() -> None:
    sim = make_sim()
    for owner in (ALICE, BOB, CAROL):
        trader(sim, owner, 1_000, ETH_MARKET, ETH)
    book = AccountBook()
    assert book.needs_rescan
    assert book.apply_scan(scan(sim), start_block=10)
    assert book.keys == sorted(active_keys(sim), key=lambda k: k[0].lower()) and not book.needs_rescan

    # CAROL closes, DAVE opens (seen at block 12): the next clean scan at 15
    # drops CAROL and keeps DAVE (the scan lists him); a candidate after 15 stays.
    sim.close_position(CAROL, 0, ETH_MARKET, 0)
    trader(sim, DAVE, 1_000, ETH_MARKET, ETH)
    book.add(DAVE, 0, block=12)
    book.add(ERIN, 3, block=16)
    assert (CAROL, 0) in book and (DAVE, 0) in book
    assert book.apply_scan(scan(sim), start_block=15)
    assert book.keys == [(ALICE, 0), (BOB, 0), (DAVE, 0), (ERIN, 3)]


def test_account_book__unclean_scan_only_adds() -> None:
    sim = make_sim()
    for owner in (ALICE, BOB, CAROL):
        trader(sim, owner, 1_000, ETH_MARKET, ETH)
    book = AccountBook()
    book.add(ERIN, 0, block=5)
    pages = scan(sim)
    # the list's length changed between pages
    assert not book.apply_scan([pages[0], (4, pages[1][1])], start_block=10, end_block=11)
    assert (ERIN, 0) in book and len(book) == 4
    # an event inside the scan window: an account may have moved across pages
    book.add(DAVE, 0, block=11)
    assert not book.apply_scan(pages, start_block=10, end_block=12)
    assert (ERIN, 0) in book
    # a missing page
    assert not book.apply_scan(pages[:1], start_block=20)
    assert book.needs_rescan
    # the same scan read in one block is clean and drops ERIN (not in the list)
    assert book.apply_scan(pages, start_block=20)
    assert book.keys == [(ALICE, 0), (BOB, 0), (CAROL, 0)]


def test_account_book__events_idempotent_and_reorg_safe() -> None:
    book = AccountBook(confirmations=3)
    event = {"owner": ALICE.lower(), "sub": 0, "block_number": 100}
    book.add_event(event)
    book.add_event(event)
    book.add(ALICE, 0, 100)

    class Log:  # an Ape ContractLog: event arguments and block number as attributes
        owner, sub, block_number = BOB, 2, 101

    book.add_event(Log())
    book.add(CAROL, 0, 103)
    assert book.keys == [(ALICE, 0), (BOB, 2), (CAROL, 0)]

    book.set_head(103)  # final: <= 100
    assert book.pending_blocks == [101, 103]
    assert book.is_final(100, 103) and not book.is_final(101, 103)
    book.rollback(101)  # block 103 was reorged away
    assert book.keys == [(ALICE, 0), (BOB, 2)]
    book.apply_scan([(0, [])], start_block=99)
    assert not book.needs_rescan
    book.rollback(90)  # deeper than the confirmations: final records stay, rescan asked
    assert book.keys == [(ALICE, 0)] and book.needs_rescan


# --------------------------------------------------------------------------
#                              Keeper duties
# --------------------------------------------------------------------------


def test_funding_due__stale_markets_with_open_interest_oldest_first() -> None:
    sim = make_sim()
    trader(sim, ALICE, 100_000, BTC_MARKET, ETH)  # BTC touched at 1,000
    sim.advance(500)
    trader(sim, BOB, 1_000, ETH_MARKET, ETH)  # ETH touched at 1,500; DUSTY: no OI
    sim.advance(3_000)  # now 4,500
    markets = markets_from_lens(markets_snapshot(sim))
    assert funding_due(markets, sim.now, 3_600) == []  # BTC 3,500 s old: not yet
    assert funding_due(markets, sim.now, 2_999) == [BTC_MARKET, ETH_MARKET]
    assert funding_due(markets, sim.now, 3_000) == [BTC_MARKET]  # ETH exactly 3,000 s: not older
    invalid = markets_from_lens(markets_snapshot(sim, invalid=[BTC_MARKET]))
    assert funding_due(invalid, sim.now, 0) == [ETH_MARKET]  # accrue_funding needs a price


def test_failure_tracker() -> None:
    t = FailureTracker(max_consecutive=3)
    t.record_failure("revert: engine: not liquidatable")
    t.record_failure("rpc timeout")
    assert not t.tripped
    t.record_success()
    t.record_failure("a")
    t.record_failure("b")
    assert not t.tripped and t.consecutive == 2
    t.record_failure("c")
    assert t.tripped and t.reasons == ["a", "b", "c"] and t.last_reason == "c" and t.total_failures == 5
    t.reset()
    assert not t.tripped and t.consecutive == 0
    with pytest.raises(ValueError):
        FailureTracker(0)
