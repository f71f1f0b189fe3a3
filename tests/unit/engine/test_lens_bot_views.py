"""MarginLens batch views for liquidator bots: `accounts`, `active_accounts`
(pages of the engine's list of accounts with open positions), `markets` and
`quote_liquidation`, which must equal what `liquidate` then does, to the wei.
"""

import pytest

from margin_engine import liquidator as bot

from .conftest import BTC, ETH, FUNDING_RATE_MAX, WAD

HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = range(4)
UINT_MAX = 2**256 - 1


@pytest.fixture
def ctx(ctx_decimals):
    return ctx_decimals


def state_tuple(state) -> tuple:
    return (
        state.equity_init, state.equity_maint, state.im_required, state.mm_required,
        state.status, state.prices_ok, state.positions,
    )  # fmt: skip


def assert_snapshot(ctx, snap, owner, sub):
    """A snapshot equals the engine's own views of the account."""
    engine = ctx.engine
    assert (snap.owner, snap.sub, snap.ok) == (str(owner), sub, True)
    assert snap.balance == engine.balance_of(owner, sub, ctx.token)
    assert snap.isolated == ctx.lens.margin_mode(owner, sub)
    assert state_tuple(snap.state) == state_tuple(engine.account(owner, sub))
    markets = list(ctx.lens.open_markets(owner, sub))
    assert [p.market for p in snap.positions] == markets
    for p in snap.positions:
        assert (p.size, p.entry_price, p.funding_index) == ctx.position(owner, p.market, sub)


def open_three(ctx, trader, other_trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD // 10)
    ctx.trade(trader, ETH, -WAD)
    ctx.fund(other_trader, ctx.tok("5000"), sub=2)
    ctx.engine.set_margin_mode(2, True, sender=other_trader)
    ctx.trade(other_trader, ETH, 2 * WAD, sub=2)
    ctx.fund(operator, ctx.tok("1000"))
    ctx.trade(operator, BTC, -WAD // 20)
    return [(trader, 0), (other_trader, 2), (operator, 0)]


# --------------------------------------------------------------------------
#                          accounts, active_accounts
# --------------------------------------------------------------------------


def test_active_accounts__pages_cover_the_list_in_order(ctx, trader, other_trader, operator):
    keys = open_three(ctx, trader, other_trader, operator)

    total, page = ctx.lens.active_accounts(0, 200)

    assert total == 3 == ctx.engine.active_count()
    assert [(s.owner, s.sub) for s in page] == [(str(o), s) for o, s in keys]
    for snap, (owner, sub) in zip(page, keys):
        assert_snapshot(ctx, snap, owner, sub)
    # pages of two: [0, 1], [2]; past the end: empty
    assert [(s.owner, s.sub) for s in ctx.lens.active_accounts(0, 2)[1]] == [(str(o), s) for o, s in keys[:2]]
    assert [(s.owner, s.sub) for s in ctx.lens.active_accounts(2, 2)[1]] == [(str(keys[2][0]), 0)]
    assert ctx.lens.active_accounts(3, 10) == (3, [])
    assert ctx.lens.active_accounts(0, 0) == (3, [])


def test_accounts__any_keys_including_flat_and_unknown(ctx, trader, other_trader, operator, liquidator):
    keys = open_three(ctx, trader, other_trader, operator)
    ctx.fund(liquidator, ctx.tok("7"), sub=4)  # flat, with a balance
    keys += [(liquidator, 4), (liquidator, 9)]  # and one never used

    snaps = ctx.lens.accounts([(str(o), s) for o, s in keys])

    assert len(snaps) == 5
    for snap, (owner, sub) in zip(snaps, keys):
        assert_snapshot(ctx, snap, owner, sub)
    assert (snaps[3].balance, snaps[3].positions) == (ctx.tok("7"), [])
    assert snaps[2].state.status == HEALTHY


@pytest.mark.dec6_only
def test_accounts__a_reverting_feed_clears_ok_for_its_accounts_only(ctx, trader, other_trader, operator):
    keys = open_three(ctx, trader, other_trader, operator)
    # ETH's feed replaced by a contract without latestRoundData: every read reverts.
    ctx.configurator.set_oracle(ETH, ctx.token, 3600, 1, 10**30, sender=ctx.admin)

    snaps = ctx.lens.accounts([(str(o), s) for o, s in keys])

    assert [s.ok for s in snaps] == [False, False, True]  # trader and other_trader hold ETH
    assert snaps[0].balance == ctx.engine.balance_of(trader, 0, ctx.token)
    assert (state_tuple(snaps[0].state), snaps[0].positions) == ((0, 0, 0, 0, 0, False, 0), [])
    assert_snapshot(ctx, snaps[2], operator, 0)
    markets = ctx.lens.markets()
    assert [(m.price_ok, m.price) for m in markets] == [(True, 60_000 * WAD), (False, 0)]


# --------------------------------------------------------------------------
#                                   markets
# --------------------------------------------------------------------------


def test_markets__equal_the_single_market_views(ctx, trader, other_trader, operator):
    open_three(ctx, trader, other_trader, operator)
    ctx.break_oracle(BTC, "stale")

    markets = ctx.lens.markets()

    assert [m.market for m in markets] == [BTC, ETH]
    for m in markets:
        assert (m.price, m.price_ok) == tuple(ctx.engine.oracle_price(m.market))
        assert tuple(m.params) == tuple(ctx.lens.market_params(m.market))
        state = ctx.lens.market_state(m.market)
        assert (m.long_oi, m.short_oi, m.funding_index, m.last_funding_time) == tuple(state)
    assert (markets[BTC].price_ok, markets[ETH].price_ok) == (False, True)


# --------------------------------------------------------------------------
#                              quote_liquidation
# --------------------------------------------------------------------------


def liquidate_and_compare(ctx, owner, sub, market, liquidator_account):
    """Quote, then liquidate in the next block with the same timestamp
    (funding switched off or time pinned): the event equals the quote."""
    quote = ctx.lens.quote_liquidation(owner, sub, market)
    assert quote.liquidatable
    size = abs(ctx.engine.position(owner, sub, market).size)
    receipt = ctx.engine.liquidate(owner, sub, market, size, sender=liquidator_account)
    [event] = receipt.events.filter(ctx.engine.Liquidation)
    assert (event.size_closed, event.price, event.penalty, event.reward, event.insurance_share) == (
        quote.size, quote.price, quote.penalty, quote.reward, quote.insurance_share,
    )  # fmt: skip
    return quote


def test_quote_liquidation__healthy_or_margin_call__zero(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.trade(trader, ETH, 3 * WAD)  # 9,000 notional: IM 900, MM 450
    assert tuple(ctx.lens.quote_liquidation(trader, 0, ETH)) == (False, 0, 0, 0, 0, 0)
    ctx.set_price(ETH, 2_950)  # equity 841 < IM 885
    assert ctx.engine.status(trader, 0) == MARGIN_CALL
    assert tuple(ctx.lens.quote_liquidation(trader, 0, ETH)) == (False, 0, 0, 0, 0, 0)
    # liquidatable, but no position in BTC: nothing to close there
    ctx.set_price(ETH, 2_800)
    assert ctx.engine.status(trader, 0) == LIQUIDATABLE
    assert tuple(ctx.lens.quote_liquidation(trader, 0, BTC)) == (True, 0, 0, 0, 0, 0)


def test_quote_liquidation__partial__equals_the_liquidation(ctx, trader, liquidator):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.trade(trader, ETH, 3 * WAD)
    ctx.set_price(ETH, 2_800)  # equity 391 < MM 420

    quote = liquidate_and_compare(ctx, trader, 0, ETH, liquidator)

    assert 0 < quote.size < 3 * WAD
    assert quote.penalty > 0 and quote.reward + quote.insurance_share == quote.penalty


def test_quote_liquidation__dust_remainder_closed__equals_the_liquidation(ctx, trader, liquidator):
    ctx.fund(trader, ctx.tok("6.5"))
    ctx.trade(trader, ETH, WAD // 50)  # 0.02 ETH: 60 notional, fee 0.06
    ctx.set_price(ETH, 2_750)  # equity 1.44 < MM 2.75
    assert ctx.engine.status(trader, 0) == LIQUIDATABLE

    quote = liquidate_and_compare(ctx, trader, 0, ETH, liquidator)

    # ~0.0165 ETH would do, but it would leave 9.7 USD < min_notional: all of it
    assert quote.size == WAD // 50
    assert ctx.engine.position(trader, 0, ETH).size == 0


def test_quote_liquidation__bankrupt__no_penalty_no_reward(ctx, trader, liquidator):
    ctx.fund(trader, ctx.tok("320"))
    ctx.trade(trader, ETH, WAD)
    ctx.set_price(ETH, 2_600)
    assert ctx.engine.status(trader, 0) == BANKRUPT

    quote = liquidate_and_compare(ctx, trader, 0, ETH, liquidator)

    assert (quote.size, quote.penalty, quote.reward) == (WAD, 0, 0)


@pytest.mark.dec6_only
def test_quote_liquidation__cross_account_with_funding__equals_the_liquidation_and_the_bot_model(
    ctx, trader, other_trader, liquidator
):
    ctx.set_params(ETH, funding_rate_max=FUNDING_RATE_MAX)
    ctx.set_params(BTC, funding_rate_max=FUNDING_RATE_MAX)
    ctx.fund(trader, ctx.tok("2000"))
    ctx.trade(trader, ETH, 3 * WAD)
    ctx.trade(trader, BTC, -WAD // 10)
    ctx.set_price(ETH, 2_600)  # equity ~685 < MM ~695
    ctx.set_price(BTC, 61_000)
    at = ctx.chain.pending_timestamp + 1_800  # within the feeds' heartbeat
    ctx.chain.mine(timestamp=at)
    assert ctx.engine.status(trader, 0) == LIQUIDATABLE

    # The bot's reference-model quote from one batch read equals the lens quote.
    markets = bot.markets_from_lens(ctx.lens.markets())
    [account] = bot.accounts_from_lens(ctx.lens.accounts([(str(trader), 0)]))
    assessment = bot.assess(account, markets, 10**12, at)
    assert assessment.status == LIQUIDATABLE and not assessment.mismatch
    params = bot.liq_params_from_tuple(ctx.engine.liquidation_params())
    model_quotes = {q.market: q for q in bot.quote(assessment, markets, params, 10**12)}
    for market in (ETH, BTC):
        lens_quote = ctx.lens.quote_liquidation(trader, 0, market)
        mine = model_quotes[market]
        assert (lens_quote.size, lens_quote.price, lens_quote.penalty, lens_quote.reward, lens_quote.insurance_share) == (
            mine.size, mine.price, mine.penalty, mine.reward, mine.insurance_share,
        )  # fmt: skip

    # The liquidation mined a second later does what the model, brought
    # forward one second from the same read, predicts.
    later = bot.quote(bot.assess(account, markets, 10**12, at + 1), markets, params, 10**12)
    [expected] = [q for q in later if q.market == ETH]
    ctx.chain.pending_timestamp = at + 1
    receipt = ctx.engine.liquidate(trader, 0, ETH, 3 * WAD, sender=liquidator)
    [event] = receipt.events.filter(ctx.engine.Liquidation)
    assert (event.size_closed, event.price, event.penalty, event.reward, event.insurance_share) == (
        expected.size, expected.price, expected.penalty, expected.reward, expected.insurance_share,
    )  # fmt: skip
