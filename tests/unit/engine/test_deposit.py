"""MarginEngine.deposit(sub, asset, amount): credits what arrives, always runs."""

import ape
import pytest

from .conftest import BTC, ETH, ORACLE_FAULTS, WAD, dec6_only, usd


@pytest.fixture
def ctx(ctx_decimals):
    return ctx_decimals


def test_deposit__settlement_asset__credits_sub_account_and_pulls_tokens(ctx, trader):
    engine, token = ctx.engine, ctx.token
    amount = ctx.tok("1234.5")
    wallet, held, vault_assets = token.balanceOf(trader), token.balanceOf(engine), engine.vault_assets()

    receipt = engine.deposit(0, token, amount, sender=trader)

    assert engine.balance_of(trader, 0, token) == amount
    assert engine.balance_of(trader, 1, token) == 0
    assert token.balanceOf(trader) == wallet - amount
    assert token.balanceOf(engine) == held + amount
    assert engine.vault_assets() == vault_assets
    assert engine.insurance_fund() == 0
    ctx.assert_ledger((trader, 0))
    assert ctx.engine_logs(receipt) == [engine.Deposit(owner=trader, sub=0, asset=token, amount=amount)]
    assert receipt.events.filter(token.Transfer) == [token.Transfer(sender=trader, receiver=engine, value=amount)]
    state = engine.account(trader, 0)
    assert (state.equity_init, state.equity_maint, state.im_required, state.status, state.positions) == (
        usd("1234.5"), usd("1234.5"), 0, 0, 0,
    )


def test_deposit__twice__adds_up(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    receipt = ctx.fund(trader, ctx.tok("0.25"))
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("100.25")
    assert ctx.engine_logs(receipt) == [
        ctx.engine.Deposit(owner=trader, sub=0, asset=ctx.token, amount=ctx.tok("0.25"))
    ]


def test_deposit__other_sub_account__keeps_sub_accounts_apart(ctx, trader):
    ctx.fund(trader, ctx.tok("100"), sub=0)
    receipt = ctx.fund(trader, ctx.tok("7"), sub=65535)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("100")
    assert ctx.engine.balance_of(trader, 65535, ctx.token) == ctx.tok("7")
    assert ctx.engine.balance_of(trader, 1, ctx.token) == 0
    assert ctx.engine_logs(receipt) == [
        ctx.engine.Deposit(owner=trader, sub=65535, asset=ctx.token, amount=ctx.tok("7"))
    ]


def test_deposit__one_token_unit__credits_one_unit(ctx, trader):
    receipt = ctx.fund(trader, 1)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 1
    assert ctx.engine.account(trader, 0).equity_maint == ctx.scale
    assert ctx.engine_logs(receipt) == [ctx.engine.Deposit(owner=trader, sub=0, asset=ctx.token, amount=1)]


@dec6_only
def test_deposit__credits_the_caller_only(ctx, trader, operator):
    ctx.engine.set_operator(operator, True, sender=trader)
    ctx.fund(operator, ctx.tok("50"))
    assert ctx.engine.balance_of(operator, 0, ctx.token) == ctx.tok("50")
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0


def test_deposit__zero_amount__reverts(ctx, trader):
    before = ctx.snapshot(trader)
    with ape.reverts("engine: zero amount"):
        ctx.engine.deposit(0, ctx.token, 0, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_deposit__unknown_asset__reverts(ctx, project, trader):
    other = project.MockERC20.deploy("Other USD", "OUSD", ctx.decimals, sender=trader)
    other.mint(trader, ctx.tok("100"), sender=trader)
    other.approve(ctx.engine, ctx.tok("100"), sender=trader)
    before = ctx.snapshot(trader)
    with ape.reverts("collateral: unknown asset"):
        ctx.engine.deposit(0, other, ctx.tok("100"), sender=trader)
    assert ctx.snapshot(trader) == before
    assert other.balanceOf(trader) == ctx.tok("100")
    assert ctx.engine.balance_of(trader, 0, other) == 0


@dec6_only
def test_deposit__without_allowance__reverts(ctx, attacker):
    ctx.token.mint(attacker, ctx.tok("100"), sender=attacker)
    before = ctx.snapshot(attacker)
    with ape.reverts("erc20: insufficient allowance"):
        ctx.engine.deposit(0, ctx.token, ctx.tok("100"), sender=attacker)
    assert ctx.snapshot(attacker) == before


def test_deposit__more_than_the_wallet__reverts(ctx, trader):
    wallet = ctx.token.balanceOf(trader)
    before = ctx.snapshot(trader)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        ctx.engine.deposit(0, ctx.token, wallet + 1, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_deposit__while_paused__credits(ctx, trader):
    ctx.pause()
    receipt = ctx.fund(trader, ctx.tok("500"))
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("500")
    assert ctx.engine_logs(receipt) == [ctx.engine.Deposit(owner=trader, sub=0, asset=ctx.token, amount=ctx.tok("500"))]


@dec6_only
@pytest.mark.parametrize("fault", ["stale", "incomplete", "negative", "below_min"])
def test_deposit__invalid_price_of_an_open_position__credits(ctx, trader, fault):
    # Deposits need no price: adding margin always works.
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.break_oracle(BTC, fault)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.trade(trader, BTC, WAD // 10)  # the fault is real
    ctx.fund(trader, ctx.tok("1000"))
    # 10,000 - 60 fee + 1,000
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("10940")


def test_deposit__margin_call_account__restores_health_exactly(ctx, trader):
    # 6,060 deposit, 1 BTC long at 60,000 (fee 60): equity 6,000 = IM.
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 59_000)
    state = ctx.engine.account(trader, 0)
    # equity 6,000 - 1,000 = 5,000; IM 5,900; MM 2,950
    assert (state.equity_init, state.im_required, state.mm_required, state.status) == (
        usd(5000), usd(5900), usd(2950), 1,
    )
    ctx.fund(trader, ctx.tok("899.99"))
    assert ctx.engine.status(trader, 0) == 1
    ctx.fund(trader, ctx.tok("0.01"))
    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.status) == (usd(5900), 0)


def test_deposit__open_position_in_other_market__leaves_positions_and_open_interest(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, -2 * WAD)
    oi, position = ctx.oi(ETH), ctx.position(trader, ETH)
    ctx.fund(trader, ctx.tok("1"))
    assert ctx.oi(ETH) == oi == (0, 2 * WAD)
    assert ctx.position(trader, ETH) == position == (-2 * WAD, usd(3000), 0)
    # 10,000 - 6 fee + 1
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9995")


def test_deposit__isolated_sub_account_with_a_position__keeps_mode_and_position(ctx, trader):
    ctx.engine.set_margin_mode(2, True, sender=trader)
    ctx.fund(trader, ctx.tok("1000"), sub=2)
    ctx.trade(trader, ETH, WAD, sub=2)
    ctx.fund(trader, ctx.tok("0.5"), sub=2)
    assert ctx.engine.balance_of(trader, 2, ctx.token) == ctx.tok("997.5")
    assert ctx.lens.margin_mode(trader, 2) is True
    assert ctx.lens.open_markets(trader, 2) == [ETH]
    assert ctx.position(trader, ETH, sub=2) == (WAD, usd(3000), 0)


@dec6_only
def test_deposit__balance_at_the_int112_limit__passes_and_one_more_unit_reverts(ctx, trader):
    # Balances are stored as int112 token units: the largest is 2**111 - 1.
    limit = 2**111 - 1
    ctx.token.mint(trader, limit, sender=trader)
    ctx.fund(trader, limit)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == limit
    before = ctx.snapshot(trader)
    with ape.reverts():
        ctx.fund(trader, 1)
    assert ctx.snapshot(trader) == before
