"""The liquidator bot (`margin_engine.runner.LiquidatorBot`) on the local
chain: it finds the accounts with open positions from the engine's list,
liquidates exactly the ones below maintenance, leaves the others alone,
skips what does not pay for its gas, and pokes funding when it is due.
"""

from __future__ import annotations

import pytest

from margin_engine.runner import BotSettings, CircuitOpen, LiquidatorBot

BTC, ETH = 0, 1
WAD = 10**18
USDC = 10**6
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = range(4)


@pytest.fixture
def book(accounts, engine, fund, open_position, no_funding):
    """Five accounts: three long ETH at rising leverage, one short BTC, one
    isolated long BTC. Returns {name: (account, sub)}."""
    a = accounts
    plan = {
        "safe": (a[4], 0, ETH, WAD, 3_000),  # 1 ETH on 3,000: 1x
        "thin": (a[5], 0, ETH, 5 * WAD, 2_000),  # 15,000 on 2,000: 7.5x
        "thinner": (a[6], 1, ETH, 3 * WAD, 910),  # 9,000 on 910: 10x (901 after the fee)
        "short": (a[7], 0, BTC, -WAD // 10, 1_000),  # 6,000 on 1,000: 6x
        "isolated": (a[8], 3, BTC, WAD // 10, 700),  # 6,000 on 700: 8.6x
    }
    out = {}
    for name, (who, sub, market, size, collateral) in plan.items():
        if name == "isolated":
            engine.set_margin_mode(sub, True, sender=who)
        fund(who, collateral * USDC, sub=sub)
        open_position(who, market, size, sub=sub)
        out[name] = (who, sub)
    return out


@pytest.fixture
def bot(engine, lens, liquidator):
    return LiquidatorBot(engine, lens, liquidator, BotSettings(gas_per_liquidation=300_000), log=None)


def statuses(engine, book):
    return {name: engine.status(who, sub) for name, (who, sub) in book.items()}


def test_bot__scan__reads_every_active_account_in_one_block(engine, bot, book):
    snapshot = bot.scan()

    assert snapshot.total_active == engine.active_count() == 5
    assert {a.key for a in (s.account for s in snapshot.assessments)} == {
        (str(who), sub) for who, sub in book.values()
    }
    for assessment in snapshot.assessments:
        who, sub = assessment.key
        assert assessment.status == engine.status(who, sub) == assessment.engine_status
        assert not assessment.mismatch
    # head block, position logs, liquidation params, markets, margin terms and
    # margin-call band (engine.margin_words), two market flags
    # (engine.market_words), one page
    assert snapshot.rpc_calls == 8
    assert not any(a.flagged for a in snapshot.assessments)
    assert snapshot.call_params is not None and not snapshot.call_params.on  # default config: band off


def test_bot__price_drop__liquidates_exactly_the_accounts_below_maintenance(
    engine, bot, book, set_price, liquidator, usdc
):
    set_price("ETH", 2_690)  # thin: 1,985 - 1,550 = 435 < MM 672.5; thinner: 901 - 930 < 0
    before = statuses(engine, book)
    assert before == {"safe": HEALTHY, "thin": LIQUIDATABLE, "thinner": BANKRUPT, "short": HEALTHY, "isolated": HEALTHY}
    reward_before = engine.balance_of(liquidator, 0, usdc)

    report = bot.run_round()

    sent = {(p.owner, p.sub) for p, _ in report.liquidated}
    assert sent == {(str(book["thin"][0]), 0)}  # the bankrupt account pays no reward: not worth the gas
    assert report.round.skip_reason(str(book["thinner"][0]), 1).value == "unprofitable"
    assert engine.status(*book["thinner"]) == BANKRUPT
    assert report.failed == [] and report.dropped == []
    # The reward is what the model quoted, to the wei.
    [(plan, reward)] = report.liquidated
    assert reward == plan.quote.reward > 0
    assert engine.balance_of(liquidator, 0, usdc) == reward_before + reward
    after = statuses(engine, book)
    assert after["thin"] == MARGIN_CALL or after["thin"] == HEALTHY
    assert {k: after[k] for k in ("safe", "short", "isolated")} == {"safe": 0, "short": 0, "isolated": 0}


def test_bot__close_bankrupt__the_keeper_closes_a_bankrupt_account_at_a_loss(
    engine, lens, liquidator, book, set_price, usdc
):
    set_price("ETH", 2_690)
    keeper = LiquidatorBot(engine, lens, liquidator, BotSettings(close_bankrupt=True), log=None)

    report = keeper.run_round()

    rewards = {(p.owner, p.sub): reward for p, reward in report.liquidated}
    assert rewards.keys() == {(str(book["thin"][0]), 0), (str(book["thinner"][0]), 1)}
    assert rewards[str(book["thinner"][0]), 1] == 0
    assert engine.position(*book["thinner"], ETH).size == 0  # closed: bad debt settled
    assert engine.balance_of(*book["thinner"], usdc) == 0


def test_bot__several_markets_move__every_liquidatable_account_handled(engine, bot, book, set_price):
    set_price("ETH", 2_800)  # thin: 1,985 - 1,000 = 985 > MM 700; thinner: 901 - 600 = 301 < MM 420
    set_price("BTC", 67_500)  # short: 994 - 750 = 244 < MM 337.5; isolated long: 694 + 750, fine
    before = statuses(engine, book)
    liquidatable = {name for name, status in before.items() if status >= LIQUIDATABLE}
    assert liquidatable == {"thinner", "short"}

    report = bot.run_round()

    assert {(p.owner, p.sub) for p, _ in report.liquidated} == {
        (str(book[name][0]), book[name][1]) for name in liquidatable
    }
    after = statuses(engine, book)
    assert all(after[name] < LIQUIDATABLE for name in after)
    # a second round finds nothing to do
    assert bot.run_round().liquidated == []


def test_bot__min_profit__skips_small_rewards(engine, lens, liquidator, book, set_price):
    set_price("ETH", 2_690)
    greedy = LiquidatorBot(engine, lens, liquidator, BotSettings(min_profit_usd_wad=10**9 * WAD), log=None)

    report = greedy.run_round()

    assert report.liquidated == []
    assert report.round.skip_reason(str(book["thin"][0]), 0).value == "unprofitable"
    assert engine.status(*book["thin"]) == LIQUIDATABLE


def test_bot__funding_due__accrued_by_the_keeper(chain, engine, lens, liquidator, configurator, risk_manager, book):
    for market in (BTC, ETH):
        p = lens.market_params(market)
        configurator.set_market_params(
            market, (p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, WAD // 10**7), sender=risk_manager
        )
    keeper = LiquidatorBot(engine, lens, liquidator, BotSettings(funding_max_age=600), log=None)
    chain.mine(timestamp=chain.pending_timestamp + 900)

    report = keeper.run_round()

    assert sorted(report.funding_accrued) == [BTC, ETH]
    head = chain.blocks.head.timestamp
    assert lens.market_state(ETH).last_funding_time == head or lens.market_state(BTC).last_funding_time == head
    # fresh now: nothing due in the next round
    assert keeper.run_round().funding_accrued == []


def test_bot__breaker__stops_sending_after_repeated_failures(engine, lens, liquidator, book):
    bot = LiquidatorBot(engine, lens, liquidator, BotSettings(max_failures=2), log=None)
    bot.breaker.record_failure("nonce too low")
    bot.breaker.record_failure("nonce too low")

    with pytest.raises(CircuitOpen):
        bot.run_round()


def test_bot__events_between_scans__candidates_and_a_chain_going_back_forgets_them(
    chain, engine, bot, book, accounts, fund, open_position
):
    bot.scan()
    newcomer = (str(accounts[9]), 7)
    snapshot_id = chain.snapshot()
    fund(accounts[9], 1_000 * USDC, sub=7)
    open_position(accounts[9], ETH, WAD // 10, sub=7)

    found = bot.scan()

    assert newcomer in bot.book
    assert newcomer in {a.key for a in found.assessments}

    # The chain goes back below the block that held the position (a reorg).
    chain.restore(snapshot_id)
    again = bot.scan()

    assert newcomer not in bot.book
    assert newcomer not in {a.key for a in again.assessments}
    assert again.total_active == 5


def test_bot__block_notifications__late_ones_are_not_reorgs_repeated_ones_are(bot):
    someone = "0x" + "ab" * 20
    bot.on_block(100)
    bot.book.add(someone, 1, 102)

    bot.on_block(101)  # late (a round may already have read block 102): no reorg

    assert any(key[1] == 1 for key in bot.book.keys)

    bot.on_block(101)  # the same height again: blocks after 100 were replaced

    assert not any(key[1] == 1 for key in bot.book.keys)


# --------------------------------------------------------------------------
#                  Risk-model markets, margin calls, volatility
# --------------------------------------------------------------------------

TIER_EDGES, TIER_MULTS = [10_000, 20_000], [150, 300]  # 1.5x the base rate above 10,000 USD, 3x above 20,000


@pytest.fixture
def risk(system):
    return system.risk


@pytest.fixture
def tiered_eth(configurator, risk_manager, no_funding, engine):
    """ETH gets size tiers (before anyone holds it: no MM ramp); the market is flagged."""
    configurator.set_tiers(ETH, TIER_EDGES, TIER_MULTS, sender=risk_manager)
    assert int(engine.market_words(ETH)[2]) & 2**63
    return ETH


def test_bot__tiered_market__liquidates_exactly_what_the_engine_does(
    engine, lens, liquidator, accounts, fund, open_position, set_price, tiered_eth, usdc
):
    # 10 ETH long at 3,000 on 6,000 (IM 1,000 + 1,500 + 3,000 = 5,500). At 2,600:
    # equity 1,970 < MM 500 + 750 + 900 = 2,150 with the tiers; the base rate
    # alone (MM 1,300) would call it MARGIN_CALL.
    trader = accounts[4]
    fund(trader, 6_000 * USDC)
    open_position(trader, ETH, 10 * WAD)
    set_price("ETH", 2_600)
    state = engine.account(trader, 0)
    assert state.status == LIQUIDATABLE and state.mm_required == 2_150 * WAD
    bot = LiquidatorBot(engine, lens, liquidator, BotSettings(), log=None)

    snapshot = bot.scan()

    [found] = [a for a in snapshot.assessments if a.key == (str(trader), 0)]
    assert found.source == "engine" and found.flagged == (ETH,)
    assert found.status == LIQUIDATABLE and not found.mismatch
    assert snapshot.markets[ETH].flagged and not snapshot.markets[BTC].flagged
    quote = snapshot.lens_quotes[(str(trader), 0, ETH)]
    assert 0 < quote.size < 10 * WAD

    reward_before = engine.balance_of(liquidator, 0, usdc)
    report = bot.act(snapshot)

    [(plan, reward)] = report.liquidated
    assert plan.quote == quote and report.failed == [] and report.dropped == []
    [event] = report.receipts[0].events.filter(engine.Liquidation)
    assert (event.size_closed, event.price, event.penalty, event.reward, event.insurance_share) == (
        quote.size, quote.price, quote.penalty, quote.reward, quote.insurance_share,
    )  # fmt: skip
    assert reward == quote.reward > 0
    assert engine.balance_of(liquidator, 0, usdc) == reward_before + reward
    assert engine.account(trader, 0).status < LIQUIDATABLE
    assert bot.run_round().liquidated == []


def test_bot__margin_call__reduces_an_account_in_the_band_for_the_fee(
    engine, lens, liquidator, accounts, fund, open_position, set_price, configurator, risk_manager, no_funding, usdc
):
    configurator.set_call_params(WAD // 4, WAD // 4, WAD // 4, sender=risk_manager)  # band to 1.25 x MM
    trader, calm = accounts[4], accounts[5]
    # 0.1 BTC long at 60,000 on 700: at 56,000 equity 294, MM 280, band to 350.
    fund(trader, 700 * USDC)
    open_position(trader, BTC, WAD // 10)
    fund(calm, 2_000 * USDC)  # 0.1 BTC on 2,000: MARGIN_CALL-free
    open_position(calm, BTC, WAD // 10)
    set_price("BTC", 56_000)
    assert engine.account(trader, 0).status == MARGIN_CALL
    bot = LiquidatorBot(engine, lens, liquidator, BotSettings(), log=None)
    fee_before = engine.balance_of(liquidator, 0, usdc)

    report = bot.run_round()

    assert report.liquidated == [] and report.failed == [] and report.dropped == []
    [(call, fee)] = report.margin_calls
    assert (call.owner, call.sub, call.market) == (str(trader), 0, BTC)
    # a quarter of the position, 0.5 % (2 % x 25 %) of its 1,400 USD: 7 USDC
    assert call.quote.size == WAD // 40 and call.quote.fee == fee == 7 * USDC
    [event] = report.call_receipts[0].events.filter(engine.MarginCall)
    assert (event.owner, event.caller, event.size_closed, event.fee) == (
        str(trader), str(liquidator), call.quote.size, call.quote.fee,
    )  # fmt: skip
    assert engine.balance_of(liquidator, 0, usdc) == fee_before + fee
    assert engine.position(trader, 0, BTC).size == WAD // 10 - WAD // 40
    assert engine.position(calm, 0, BTC).size == WAD // 10
    assert report.round.skip_reason(str(calm), 0).value == "not liquidatable"

    # With the setting off, or above the band after the call, nothing more is sent.
    off = LiquidatorBot(engine, lens, liquidator, BotSettings(margin_calls=False), log=None)
    assert off.run_round().margin_calls == [] and off.scan().call_params is None


def test_bot__volatility__sampled_once_per_epoch_when_no_trade_did(
    chain, engine, lens, liquidator, risk, configurator, risk_manager, set_price, accounts, fund, open_position
):
    from margin_engine.calibration import onchain_params
    from margin_engine.volatility import seed_var

    p = onchain_params("BTC")  # hourly epochs
    configurator.set_volatility(
        BTC, (p.epoch, p.decay, p.z, p.horizon, p.floor, p.cap, p.mm_fraction), seed_var(p, p.cap), sender=risk_manager
    )
    bot = LiquidatorBot(engine, lens, liquidator, BotSettings(funding_max_age=None), log=None)

    first = bot.run_round()  # a new series: due at once (the sample sets the anchor)

    assert first.volatility_sampled == [BTC] and first.failed == []
    next_time = int(risk.volatility(BTC)[3])
    assert next_time == (chain.blocks.head.timestamp // p.epoch + 1) * p.epoch
    assert bot.run_round().volatility_sampled == []  # within the epoch: nothing to do

    # The next epoch: due again, unless a trade samples first.
    chain.mine(timestamp=next_time)
    set_price("BTC", 60_600)  # a fresh round inside the heartbeat
    fund(accounts[4], 10_000 * USDC)
    open_position(accounts[4], BTC, WAD // 10)  # samples
    assert int(risk.volatility(BTC)[3]) == next_time + p.epoch
    assert bot.run_round().volatility_sampled == []

    chain.mine(timestamp=next_time + p.epoch)
    set_price("BTC", 61_000)
    snapshot = bot.scan()
    assert snapshot.markets[BTC].volatility and snapshot.markets[BTC].next_sample_time == next_time + p.epoch
    report = bot.act(snapshot)
    assert report.volatility_sampled == [BTC]
    assert int(risk.volatility(BTC)[3]) == next_time + 2 * p.epoch
    assert report.failed == []
