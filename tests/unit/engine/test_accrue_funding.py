"""MarginEngine.accrue_funding(market): anyone (a keeper) brings a market's
funding index forward to now, so that funding follows the price path between
trades (docs/engine-spec.md "Funding")."""

import ape
import pytest

from margin_engine.model import Market, MarketParams, accrue_index

from .conftest import BTC, ETH, FUNDING_RATE_MAX, ORACLE_FAULTS, WAD


@pytest.fixture
def ctx(ctx6):
    return ctx6


@pytest.fixture
def funding_on(ctx):
    for market in (BTC, ETH):
        ctx.set_params(market, funding_rate_max=FUNDING_RATE_MAX)


def model_market(ctx, market: int, price: int) -> Market:
    p = ctx.lens.market_params(market)
    state = ctx.lens.market_state(market)
    return Market(
        params=MarketParams(p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, p.funding_rate_max),
        price=price,
        long_oi=state.long_oi,
        short_oi=state.short_oi,
        funding_index=state.funding_index,
        last_funding_time=state.last_funding_time,
    )


def test_accrue_funding__open_interest__index_follows_the_price_path(ctx, funding_on, trader, other_trader, liquidator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, 2 * WAD)
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.trade(other_trader, ETH, -WAD // 2)
    opened = ctx.lens.market_state(ETH).last_funding_time

    # At 3,000 for ten minutes, then at 3,300: the keeper accrues at each step.
    ctx.chain.pending_timestamp = opened + 600
    expected = accrue_index(model_market(ctx, ETH, 3_000 * WAD), opened + 600)
    receipt = ctx.engine.accrue_funding(ETH, sender=liquidator)

    assert receipt.events == [ctx.engine.FundingAccrued(market=ETH, index=expected)]
    state = ctx.lens.market_state(ETH)
    assert (state.funding_index, state.last_funding_time) == (expected, opened + 600)
    assert expected > 0  # longs dominate: longs pay

    ctx.set_price(ETH, 3_300)
    at = ctx.lens.market_state(ETH).last_funding_time + 300
    ctx.chain.pending_timestamp = at
    second = accrue_index(model_market(ctx, ETH, 3_300 * WAD), at)
    ctx.engine.accrue_funding(ETH, sender=liquidator)
    assert ctx.lens.market_state(ETH).funding_index == second > expected
    # positions owe exactly the accrued index (rounded up)
    assert ctx.engine.position(trader, 0, ETH).funding_owed == -(-2 * WAD * second // WAD)


def test_accrue_funding__no_open_interest__moves_the_clock_only(ctx, funding_on, liquidator):
    before = ctx.lens.market_state(BTC)
    receipt = ctx.engine.accrue_funding(BTC, sender=liquidator)
    after = ctx.lens.market_state(BTC)
    assert (after.funding_index, after.long_oi, after.short_oi) == (before.funding_index, 0, 0)
    assert after.last_funding_time == receipt.timestamp
    assert ctx.lens.market_params(BTC).funding_rate_max == FUNDING_RATE_MAX  # the rate is kept


@pytest.mark.parametrize("fault", sorted(ORACLE_FAULTS))
def test_accrue_funding__invalid_price_with_open_interest__reverts(ctx, funding_on, trader, liquidator, fault):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, WAD)
    ctx.break_oracle(ETH, fault)
    before = ctx.snapshot(trader)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.engine.accrue_funding(ETH, sender=liquidator)
    assert ctx.snapshot(trader) == before


def test_accrue_funding__unknown_market__reverts(ctx, liquidator):
    with ape.reverts("engine: unknown market"):
        ctx.engine.accrue_funding(2, sender=liquidator)
