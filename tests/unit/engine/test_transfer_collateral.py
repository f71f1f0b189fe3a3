"""MarginEngine.transfer_collateral(from_sub, to_sub, asset, amount): between
the caller's own sub-accounts, the source checked like a withdrawal."""

import ape
import pytest

from .conftest import BTC, ETH, ORACLE_FAULTS, WAD, usd


@pytest.fixture
def at_initial_margin(ctx, trader):
    """Sub 0: 10,000 deposited, 1 BTC long at 60,000 (fee 60): 3,940 free."""
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    return ctx.tok("3940")


def test_transfer_collateral__free_balance__moves_between_sub_accounts(ctx, trader):
    engine, token = ctx.engine, ctx.token
    ctx.fund(trader, ctx.tok("1000"))
    wallet, held, vault_assets = token.balanceOf(trader), token.balanceOf(engine), engine.vault_assets()

    receipt = engine.transfer_collateral(0, 3, token, ctx.tok("250.75"), sender=trader)

    assert engine.balance_of(trader, 0, token) == ctx.tok("749.25")
    assert engine.balance_of(trader, 3, token) == ctx.tok("250.75")
    # No token moves: the engine keeps custody.
    assert token.balanceOf(trader) == wallet
    assert token.balanceOf(engine) == held
    assert engine.vault_assets() == vault_assets
    ctx.assert_ledger((trader, 0), (trader, 3))
    assert list(receipt.events) == [
        engine.CollateralTransferred(owner=trader, from_sub=0, to_sub=3, asset=token, amount=ctx.tok("250.75"))
    ]


def test_transfer_collateral__whole_balance__empties_the_source(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"), sub=2)
    ctx.fund(trader, ctx.tok("1"), sub=0)
    ctx.engine.transfer_collateral(2, 0, ctx.token, ctx.tok("1000"), sender=trader)
    assert ctx.engine.balance_of(trader, 2, ctx.token) == 0
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("1001")


def test_transfer_collateral__down_to_initial_margin__passes(ctx, trader, at_initial_margin):
    receipt = ctx.engine.transfer_collateral(0, 1, ctx.token, at_initial_margin, sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("6000")
    assert ctx.engine.balance_of(trader, 1, ctx.token) == at_initial_margin
    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.status) == (usd(6000), usd(6000), 0)
    assert ctx.engine_logs(receipt) == [
        ctx.engine.CollateralTransferred(owner=trader, from_sub=0, to_sub=1, asset=ctx.token, amount=at_initial_margin)
    ]


def test_transfer_collateral__one_unit_below_initial_margin__reverts(ctx, trader, at_initial_margin):
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: unhealthy"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, at_initial_margin + 1, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__into_a_margin_call_sub_account__restores_it(ctx, trader):
    # Sub 1: 6,060 in, 1 BTC long (equity 6,000 = IM); BTC to 59,000: IM 5,900, equity 5,000.
    ctx.fund(trader, ctx.tok("6060"), sub=1)
    ctx.trade(trader, BTC, WAD, sub=1)
    ctx.fund(trader, ctx.tok("900"), sub=0)
    ctx.set_price(BTC, 59_000)
    assert ctx.engine.status(trader, 1) == 1
    ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("900"), sender=trader)
    state = ctx.engine.account(trader, 1)
    assert (state.equity_init, state.im_required, state.status) == (usd(5900), usd(5900), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0


def test_transfer_collateral__zero_amount__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: zero amount"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, 0, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__unknown_asset__reverts(ctx, project, trader):
    other = project.MockERC20.deploy("Other USD", "OUSD", 6, sender=trader)
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("collateral: unknown asset"):
        ctx.engine.transfer_collateral(0, 1, other, ctx.tok("100"), sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__same_sub_account__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: same account"):
        ctx.engine.transfer_collateral(0, 0, ctx.token, ctx.tok("100"), sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__more_than_the_balance__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("100") + 1, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__unrealised_profit_beyond_the_balance__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 70_000)
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("6000") + 1, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__by_approved_operator__moves_only_its_own_collateral(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    before = ctx.snapshot(trader, operator, subs=(0, 1))
    with ape.reverts("engine: insufficient balance"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("1"), sender=operator)
    assert ctx.snapshot(trader, operator, subs=(0, 1)) == before


def test_transfer_collateral__while_paused__free_collateral_passes(ctx, trader, at_initial_margin):
    ctx.pause()
    ctx.engine.transfer_collateral(0, 1, ctx.token, at_initial_margin, sender=trader)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("6000")
    assert ctx.engine.balance_of(trader, 1, ctx.token) == at_initial_margin


@pytest.mark.parametrize("fault", sorted(ORACLE_FAULTS))
def test_transfer_collateral__invalid_price_of_an_open_position__reverts(ctx, trader, at_initial_margin, fault):
    ctx.break_oracle(BTC, fault)
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.engine.transfer_collateral(0, 1, ctx.token, 1, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


def test_transfer_collateral__invalid_price_in_the_destination__passes(ctx, trader):
    # Only the source is checked: sub 1's stale ETH position does not block it.
    ctx.fund(trader, ctx.tok("1000"), sub=1)
    ctx.trade(trader, ETH, WAD, sub=1)
    ctx.fund(trader, ctx.tok("50"), sub=0)
    ctx.break_oracle(ETH, "stale")
    ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("50"), sender=trader)
    # 1,000 - 3 fee + 50
    assert ctx.engine.balance_of(trader, 1, ctx.token) == ctx.tok("1047")
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0


def test_transfer_collateral__out_of_an_isolated_sub_account__checked_like_a_withdrawal(ctx, trader):
    ctx.engine.set_margin_mode(1, True, sender=trader)
    ctx.fund(trader, ctx.tok("1000"), sub=1)
    ctx.trade(trader, ETH, 2 * WAD, sub=1)  # fee 6, IM 600: 394 free
    with ape.reverts("engine: unhealthy"):
        ctx.engine.transfer_collateral(1, 0, ctx.token, ctx.tok("394") + 1, sender=trader)
    ctx.engine.transfer_collateral(1, 0, ctx.token, ctx.tok("394"), sender=trader)
    assert ctx.engine.balance_of(trader, 1, ctx.token) == ctx.tok("600")
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("394")
