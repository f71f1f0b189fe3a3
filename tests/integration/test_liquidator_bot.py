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
    # head block, position logs, liquidation params, markets, margin terms, one page
    assert snapshot.rpc_calls == 6


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
