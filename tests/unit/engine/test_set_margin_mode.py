"""MarginEngine.set_margin_mode(sub, isolated): cross (default) or isolated,
changeable only while the sub-account holds no positions."""

import ape
import pytest

from .conftest import BTC, ETH, WAD


def test_set_margin_mode__default__is_cross(ctx, trader):
    assert ctx.lens.margin_mode(trader, 0) is False
    assert ctx.engine.account(trader, 0).positions == 0


def test_set_margin_mode__isolated__sets_the_flag_and_logs(ctx, trader):
    receipt = ctx.engine.set_margin_mode(1, True, sender=trader)
    assert ctx.lens.margin_mode(trader, 1) is True
    assert ctx.lens.open_markets(trader, 1) == []
    assert ctx.lens.margin_mode(trader, 0) is False
    assert list(receipt.events) == [ctx.engine.MarginModeSet(owner=trader, sub=1, isolated=True)]


def test_set_margin_mode__back_to_cross__clears_the_flag_and_logs(ctx, trader):
    ctx.engine.set_margin_mode(1, True, sender=trader)
    receipt = ctx.engine.set_margin_mode(1, False, sender=trader)
    assert ctx.lens.margin_mode(trader, 1) is False
    assert list(receipt.events) == [ctx.engine.MarginModeSet(owner=trader, sub=1, isolated=False)]


def test_set_margin_mode__acts_on_the_caller_only(ctx, trader, other_trader, operator):
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.engine.set_margin_mode(0, True, sender=other_trader)
    ctx.engine.set_margin_mode(0, True, sender=operator)
    assert ctx.lens.margin_mode(other_trader, 0) is True
    assert ctx.lens.margin_mode(operator, 0) is True
    assert ctx.lens.margin_mode(trader, 0) is False


def test_set_margin_mode__keeps_the_balance(ctx, trader):
    ctx.fund(trader, ctx.tok("123.456"), sub=2)
    ctx.engine.set_margin_mode(2, True, sender=trader)
    assert ctx.engine.balance_of(trader, 2, ctx.token) == ctx.tok("123.456")


@pytest.mark.parametrize("isolated", [True, False])
def test_set_margin_mode__cross_with_open_position__reverts(ctx, trader, isolated):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.trade(trader, ETH, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: open positions"):
        ctx.engine.set_margin_mode(0, isolated, sender=trader)
    assert ctx.snapshot(trader) == before
    assert ctx.lens.margin_mode(trader, 0) is False


@pytest.mark.parametrize("isolated", [True, False])
def test_set_margin_mode__isolated_with_open_position__reverts(ctx, trader, isolated):
    ctx.engine.set_margin_mode(1, True, sender=trader)
    ctx.fund(trader, ctx.tok("1000"), sub=1)
    ctx.trade(trader, ETH, WAD, sub=1)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: open positions"):
        ctx.engine.set_margin_mode(1, isolated, sender=trader)
    assert ctx.snapshot(trader) == before
    assert ctx.lens.margin_mode(trader, 1) is True


def test_set_margin_mode__after_closing_the_last_position__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.trade(trader, ETH, WAD)
    ctx.engine.close_position(trader, 0, ETH, 0, sender=trader)
    ctx.engine.set_margin_mode(0, True, sender=trader)
    assert ctx.lens.margin_mode(trader, 0) is True


def test_set_margin_mode__isolated__holds_one_market_only(ctx, trader):
    ctx.engine.set_margin_mode(1, True, sender=trader)
    ctx.fund(trader, ctx.tok("20000"), sub=1)
    ctx.trade(trader, BTC, WAD // 10, sub=1)
    ctx.trade(trader, BTC, WAD // 10, sub=1)  # the same market may grow
    before = ctx.snapshot(trader)
    with ape.reverts("engine: isolated"):
        ctx.trade(trader, ETH, WAD, sub=1)
    assert ctx.snapshot(trader) == before
    assert ctx.lens.open_markets(trader, 1) == [BTC]
    assert ctx.position(trader, BTC, sub=1) == (WAD // 5, 60_000 * WAD, 0)


def test_set_margin_mode__isolated_after_switching_markets__accepts_the_new_market(ctx, trader):
    ctx.engine.set_margin_mode(1, True, sender=trader)
    ctx.fund(trader, ctx.tok("2000"), sub=1)
    ctx.trade(trader, ETH, WAD, sub=1)
    ctx.trade(trader, ETH, -WAD, sub=1)
    ctx.trade(trader, BTC, WAD // 100, sub=1)
    assert ctx.lens.open_markets(trader, 1) == [BTC]
    assert ctx.lens.margin_mode(trader, 1) is True


def test_set_margin_mode__cross__holds_several_markets(ctx, trader):
    ctx.fund(trader, ctx.tok("20000"), sub=1)
    ctx.trade(trader, BTC, WAD // 10, sub=1)
    ctx.trade(trader, ETH, WAD, sub=1)
    assert ctx.lens.open_markets(trader, 1) == [BTC, ETH]
