"""MarginEngine.fund_insurance(amount): settlement tokens into the insurance
fund, the first payer of bad debt; anyone may fund it, also while paused."""

import ape

from .conftest import BTC, WAD


def test_fund_insurance__amount__credits_the_fund_and_pulls_tokens(ctx, other_trader):
    engine, token = ctx.engine, ctx.token
    wallet, held, vault_assets = token.balanceOf(other_trader), token.balanceOf(engine), engine.vault_assets()

    receipt = engine.fund_insurance(ctx.tok("2500.5"), sender=other_trader)

    assert engine.insurance_fund() == ctx.tok("2500.5")
    assert token.balanceOf(other_trader) == wallet - ctx.tok("2500.5")
    assert token.balanceOf(engine) == held + ctx.tok("2500.5")
    # Neither the vault nor the funder's account is credited.
    assert engine.vault_assets() == vault_assets
    assert engine.balance_of(other_trader, 0, token) == 0
    ctx.assert_ledger()
    assert ctx.engine_logs(receipt) == [engine.InsuranceFunded(funder=other_trader, amount=ctx.tok("2500.5"))]
    assert receipt.events.filter(token.Transfer) == [
        token.Transfer(sender=other_trader, receiver=engine, value=ctx.tok("2500.5"))
    ]


def test_fund_insurance__several_funders__adds_up(ctx, trader, other_trader):
    ctx.engine.fund_insurance(ctx.tok("100"), sender=trader)
    receipt = ctx.engine.fund_insurance(1, sender=other_trader)
    assert ctx.engine.insurance_fund() == ctx.tok("100") + 1
    assert ctx.engine_logs(receipt) == [ctx.engine.InsuranceFunded(funder=other_trader, amount=1)]


def test_fund_insurance__while_paused__credits(ctx, trader):
    ctx.pause()
    ctx.engine.fund_insurance(ctx.tok("10"), sender=trader)
    assert ctx.engine.insurance_fund() == ctx.tok("10")


def test_fund_insurance__zero_amount__reverts(ctx, trader):
    before = ctx.snapshot(trader)
    with ape.reverts("engine: zero amount"):
        ctx.engine.fund_insurance(0, sender=trader)
    assert ctx.snapshot(trader) == before


def test_fund_insurance__without_allowance__reverts(ctx, attacker):
    ctx.token.mint(attacker, ctx.tok("100"), sender=attacker)
    before = ctx.snapshot(attacker)
    with ape.reverts("erc20: insufficient allowance"):
        ctx.engine.fund_insurance(ctx.tok("100"), sender=attacker)
    assert ctx.snapshot(attacker) == before


def test_fund_insurance__more_than_the_wallet__reverts(ctx, trader):
    before = ctx.snapshot(trader)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        ctx.engine.fund_insurance(ctx.token.balanceOf(trader) + 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_fund_insurance__does_not_change_any_account(ctx, trader, other_trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    state = ctx.engine.account(trader, 0)
    ctx.engine.fund_insurance(ctx.tok("5000"), sender=other_trader)
    assert ctx.engine.account(trader, 0) == state
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940")


def test_fund_insurance__pays_bad_debt_before_the_vault(ctx, trader, other_trader):
    # 6,060 in, 1 BTC long (balance 6,000); closed at 53,000: balance -1,053.
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.engine.fund_insurance(ctx.tok("1000"), sender=other_trader)
    ctx.set_price(BTC, 53_000)
    vault_assets = ctx.engine.vault_assets()
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.engine.insurance_fund() == 0
    # +7,000 realised loss, +53 fee, -53 bad debt left after the insurance fund's 1,000
    assert ctx.engine.vault_assets() == vault_assets + ctx.tok("7000")


def test_fund_insurance__at_the_127_bit_limit__passes_and_one_more_unit_reverts(ctx, trader):
    # The fund is stored in 127 bits of token units.
    limit = 2**127 - 1
    ctx.token.mint(trader, limit, sender=trader)
    ctx.engine.fund_insurance(limit, sender=trader)
    assert ctx.engine.insurance_fund() == limit
    before = ctx.snapshot(trader)
    with ape.reverts():
        ctx.engine.fund_insurance(1, sender=trader)
    assert ctx.snapshot(trader) == before
    assert ctx.engine.paused() is False
