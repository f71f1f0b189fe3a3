"""MarginEngine.withdraw(sub, asset, amount): from the caller's own sub-account,
leaving it HEALTHY when it holds positions."""

import ape
import pytest

from .conftest import BTC, ETH, ORACLE_FAULTS, WAD, dec6_only, usd


@pytest.fixture
def ctx(ctx_decimals):
    return ctx_decimals


@pytest.fixture
def at_initial_margin(ctx, trader):
    """10,000 deposited, 1 BTC long at 60,000 (fee 60): balance 9,940, IM 6,000,
    so exactly 3,940 is free."""
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    return ctx.tok("3940")


def test_withdraw__no_positions__pays_the_caller(ctx, trader):
    engine, token = ctx.engine, ctx.token
    ctx.fund(trader, ctx.tok("1000"))
    wallet, held, vault_assets = token.balanceOf(trader), token.balanceOf(engine), engine.vault_assets()

    receipt = engine.withdraw(0, token, ctx.tok("400.5"), sender=trader)

    assert engine.balance_of(trader, 0, token) == ctx.tok("599.5")
    assert token.balanceOf(trader) == wallet + ctx.tok("400.5")
    assert token.balanceOf(engine) == held - ctx.tok("400.5")
    assert engine.vault_assets() == vault_assets
    ctx.assert_ledger((trader, 0))
    assert ctx.engine_logs(receipt) == [engine.Withdraw(owner=trader, sub=0, asset=token, amount=ctx.tok("400.5"))]
    assert receipt.events.filter(token.Transfer) == [
        token.Transfer(sender=engine, receiver=trader, value=ctx.tok("400.5"))
    ]


def test_withdraw__whole_balance__leaves_zero(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"))
    wallet = ctx.token.balanceOf(trader)
    ctx.engine.withdraw(0, ctx.token, ctx.tok("1000"), sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0
    assert ctx.token.balanceOf(trader) == wallet + ctx.tok("1000")
    assert ctx.engine.account(trader, 0).status == 0


def test_withdraw__other_sub_account__leaves_sub_zero(ctx, trader):
    ctx.fund(trader, ctx.tok("100"), sub=0)
    ctx.fund(trader, ctx.tok("30"), sub=4)
    receipt = ctx.engine.withdraw(4, ctx.token, ctx.tok("30"), sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("100")
    assert ctx.engine.balance_of(trader, 4, ctx.token) == 0
    assert ctx.engine_logs(receipt) == [ctx.engine.Withdraw(owner=trader, sub=4, asset=ctx.token, amount=ctx.tok("30"))]


def test_withdraw__down_to_initial_margin__passes(ctx, trader, at_initial_margin):
    receipt = ctx.engine.withdraw(0, ctx.token, at_initial_margin, sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("6000")
    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.status) == (usd(6000), usd(6000), 0)
    assert ctx.engine_logs(receipt) == [
        ctx.engine.Withdraw(owner=trader, sub=0, asset=ctx.token, amount=at_initial_margin)
    ]


def test_withdraw__one_unit_below_initial_margin__reverts(ctx, trader, at_initial_margin):
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, at_initial_margin + 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_withdraw__margin_call_account__any_amount_reverts(ctx, trader, at_initial_margin):
    ctx.engine.withdraw(0, ctx.token, at_initial_margin, sender=trader)
    ctx.set_price(BTC, "59999.99")
    assert ctx.engine.status(trader, 0) == 1
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_withdraw__unrealised_profit_covers_initial_margin__whole_balance_passes(ctx, trader):
    # Positive unrealised PnL counts toward IM (README, known limitations):
    # 6,060 deposit, 1 BTC long, price 70,000: equity 6,000 + 10,000, IM 7,000.
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 70_000)
    ctx.engine.withdraw(0, ctx.token, ctx.tok("6000"), sender=trader)
    state = ctx.engine.account(trader, 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0
    assert (state.equity_init, state.im_required, state.status) == (usd(10000), usd(7000), 0)


def test_withdraw__unrealised_profit_beyond_the_balance__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 70_000)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("6000") + 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_withdraw__position_in_another_sub_account__does_not_restrict(ctx, trader, at_initial_margin):
    ctx.fund(trader, ctx.tok("500"), sub=1)
    ctx.engine.withdraw(1, ctx.token, ctx.tok("500"), sender=trader)
    assert ctx.engine.balance_of(trader, 1, ctx.token) == 0
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940")


@dec6_only
def test_withdraw__zero_amount__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: zero amount"):
        ctx.engine.withdraw(0, ctx.token, 0, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_withdraw__unknown_asset__reverts(ctx, project, trader):
    other = project.MockERC20.deploy("Other USD", "OUSD", ctx.decimals, sender=trader)
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader)
    with ape.reverts("collateral: unknown asset"):
        ctx.engine.withdraw(0, other, ctx.tok("100"), sender=trader)
    assert ctx.snapshot(trader) == before


def test_withdraw__more_than_the_balance__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("100") + 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_withdraw__empty_sub_account__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"), sub=0)
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.withdraw(1, ctx.token, 1, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


@dec6_only
def test_withdraw__by_approved_operator__acts_on_the_operators_own_account(ctx, trader, operator):
    # Operators trade for the owner but never withdraw: withdraw always debits msg.sender.
    ctx.fund(trader, ctx.tok("1000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    before = ctx.snapshot(trader, operator)
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("1"), sender=operator)
    assert ctx.snapshot(trader, operator) == before
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("1000")


def test_withdraw__while_paused__free_collateral_passes(ctx, trader, at_initial_margin):
    ctx.pause()
    receipt = ctx.engine.withdraw(0, ctx.token, at_initial_margin, sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("6000")
    assert ctx.engine_logs(receipt) == [
        ctx.engine.Withdraw(owner=trader, sub=0, asset=ctx.token, amount=at_initial_margin)
    ]


@dec6_only
def test_withdraw__while_paused__below_initial_margin_reverts(ctx, trader, at_initial_margin):
    ctx.pause()
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, at_initial_margin + 1, sender=trader)


@dec6_only
@pytest.mark.parametrize("fault", sorted(ORACLE_FAULTS))
def test_withdraw__invalid_price_of_an_open_position__reverts(ctx, trader, at_initial_margin, fault):
    ctx.break_oracle(BTC, fault)
    before = ctx.snapshot(trader)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.engine.withdraw(0, ctx.token, 1, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_withdraw__invalid_price_of_another_open_market__reverts(ctx, trader, at_initial_margin):
    # The ETH position must be valued too, so its stale feed stops the withdrawal.
    ctx.trade(trader, ETH, WAD)
    ctx.break_oracle(ETH, "stale")
    before = ctx.snapshot(trader)
    with ape.reverts("oracle: stale"):
        ctx.engine.withdraw(0, ctx.token, 1, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_withdraw__invalid_price_without_positions__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    ctx.break_oracle(BTC, "stale")
    ctx.break_oracle(ETH, "zero")
    ctx.engine.withdraw(0, ctx.token, ctx.tok("100"), sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0


def test_withdraw__after_closing_at_a_loss__pays_what_is_left(ctx, trader):
    # 10,000 in, 1 BTC long at 60,000 (fee 60), closed at 59,000 (loss 1,000, fee 59).
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 59_000)
    ctx.trade(trader, BTC, -WAD)
    left = ctx.tok("8881")
    assert ctx.engine.balance_of(trader, 0, ctx.token) == left
    wallet = ctx.token.balanceOf(trader)
    ctx.engine.withdraw(0, ctx.token, left, sender=trader)
    assert ctx.token.balanceOf(trader) == wallet + left
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0
