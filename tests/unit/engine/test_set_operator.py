"""MarginEngine.set_operator(operator, approved): an operator trades for the
owner (modify_position, close_position) and never moves the owner's collateral."""

import ape

from .conftest import BTC, ETH, WAD, ZERO_ADDRESS, usd


def test_set_operator__approve__sets_the_flag_and_logs(ctx, trader, operator):
    receipt = ctx.engine.set_operator(operator, True, sender=trader)
    assert ctx.engine.operators(trader, operator) is True
    assert ctx.engine.operators(operator, trader) is False
    assert list(receipt.events) == [ctx.engine.OperatorSet(owner=trader, operator=operator, approved=True)]


def test_set_operator__revoke__clears_the_flag_and_logs(ctx, trader, operator):
    ctx.engine.set_operator(operator, True, sender=trader)
    receipt = ctx.engine.set_operator(operator, False, sender=trader)
    assert ctx.engine.operators(trader, operator) is False
    assert list(receipt.events) == [ctx.engine.OperatorSet(owner=trader, operator=operator, approved=False)]


def test_set_operator__per_owner__other_owners_unchanged(ctx, trader, other_trader, operator):
    ctx.engine.set_operator(operator, True, sender=trader)
    assert ctx.engine.operators(other_trader, operator) is False


def test_set_operator__zero_address__reverts(ctx, trader):
    with ape.reverts("engine: zero address"):
        ctx.engine.set_operator(ZERO_ADDRESS, True, sender=trader)
    assert ctx.engine.operators(trader, ZERO_ADDRESS) is False


def test_set_operator__approved_operator__opens_in_the_owners_account(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    receipt = ctx.trade(trader, BTC, WAD, sender=operator)
    assert ctx.position(trader, BTC) == (WAD, usd(60000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940")
    assert ctx.position(operator, BTC) == (0, 0, 0)
    assert ctx.engine.balance_of(operator, 0, ctx.token) == 0
    assert ctx.engine.account(operator, 0).positions == 0
    assert ctx.engine_logs(receipt) == [
        ctx.engine.PositionModified(
            owner=trader, sub=0, market=BTC, size_delta=WAD, size=WAD, entry_price=usd(60000),
            price=usd(60000), fee=ctx.tok("60"), realized_pnl=0, funding_paid=0,
        )
    ]


def test_set_operator__approved_operator__trades_any_sub_account_of_the_owner(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("1000"), sub=9)
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.trade(trader, ETH, -WAD, sub=9, sender=operator)
    assert ctx.position(trader, ETH, sub=9) == (-WAD, usd(3000), 0)


def test_set_operator__approved_operator__closes_the_owners_position(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.set_price(BTC, 61_000)
    ctx.engine.close_position(trader, 0, BTC, 0, sender=operator)
    assert ctx.position(trader, BTC) == (0, 0, 0)
    # 9,940 + 1,000 profit - 61 fee
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("10879")
    assert ctx.engine.balance_of(operator, 0, ctx.token) == 0


def test_set_operator__unapproved__cannot_trade(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader, operator)
    with ape.reverts("engine: not authorized"):
        ctx.trade(trader, BTC, WAD, sender=operator)
    assert ctx.snapshot(trader, operator) == before


def test_set_operator__revoked__cannot_trade_or_close(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.engine.set_operator(operator, False, sender=trader)
    before = ctx.snapshot(trader, operator)
    with ape.reverts("engine: not authorized"):
        ctx.trade(trader, BTC, WAD, sender=operator)
    with ape.reverts("engine: not authorized"):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=operator)
    assert ctx.snapshot(trader, operator) == before


def test_set_operator__approval_of_one_owner__does_not_cover_another(ctx, trader, other_trader, operator):
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    before = ctx.snapshot(other_trader)
    with ape.reverts("engine: not authorized"):
        ctx.trade(other_trader, BTC, WAD, sender=operator)
    assert ctx.snapshot(other_trader) == before


def test_set_operator__approved_operator__cannot_withdraw_or_move_the_owners_collateral(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    before = ctx.snapshot(trader, operator)
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("1000"), sender=operator)
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("1000"), sender=operator)
    assert ctx.snapshot(trader, operator) == before


def test_set_operator__approved_operator__withdraws_its_own_deposit_only(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.fund(operator, ctx.tok("5"))
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.engine.withdraw(0, ctx.token, ctx.tok("5"), sender=operator)
    assert ctx.engine.balance_of(operator, 0, ctx.token) == 0
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("1000")
