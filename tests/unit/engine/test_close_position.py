"""MarginEngine.close_position(owner, sub, market, limit_price): the whole
position at the oracle price; an account left flat with a negative balance is
bad debt (insurance fund first, then the vault)."""

import ape
import pytest

from .conftest import BTC, ETH, MAX_UINT, ORACLE_FAULTS, WAD, dec6_only, usd


@pytest.fixture
def ctx(ctx_decimals):
    return ctx_decimals


def modified(ctx, owner, market, delta, price, fee, realized, sub=0):
    # A close always ends flat: size 0, entry 0.
    return ctx.engine.PositionModified(
        owner=owner, sub=sub, market=market, size_delta=delta, size=0, entry_price=0,
        price=price, fee=fee, realized_pnl=realized, funding_paid=0,
    )


def test_close_position__long_at_a_profit__realises_and_deletes(ctx, trader):
    engine = ctx.engine
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 62_000)
    vault_assets, held = engine.vault_assets(), ctx.token.balanceOf(engine)

    # The return value (the execution price) of the same call, dry-run first.
    assert engine.close_position.call(trader, 0, BTC, usd(62000), sender=trader) == usd(62000)
    receipt = engine.close_position(trader, 0, BTC, usd(62000), sender=trader)

    # 9,940 + 2,000 realised - 62 fee
    assert engine.balance_of(trader, 0, ctx.token) == ctx.tok("11878")
    assert engine.vault_assets() == vault_assets - ctx.tok("2000") + ctx.tok("62")
    assert ctx.token.balanceOf(engine) == held
    ctx.assert_ledger((trader, 0))
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.oi(BTC) == (0, 0)
    assert ctx.lens.open_markets(trader, 0) == []
    state = engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.mm_required, state.status, state.positions) == (
        usd(11878), 0, 0, 0, 0,
    )
    assert list(receipt.events) == [modified(ctx, trader, BTC, -WAD, usd(62000), ctx.tok("62"), ctx.tok("2000"))]


def test_close_position__short_at_a_loss__realises_and_deletes(ctx, trader):
    ctx.fund(trader, ctx.tok("5000"), sub=5)
    ctx.trade(trader, ETH, -2 * WAD, sub=5)
    ctx.set_price(ETH, "3150.5")
    vault_assets = ctx.engine.vault_assets()
    assert ctx.engine.close_position.call(trader, 5, ETH, usd("3150.5"), sender=trader) == usd("3150.5")
    receipt = ctx.engine.close_position(trader, 5, ETH, usd("3150.5"), sender=trader)
    # 4,994 - 301 realised - 6.301 fee
    assert ctx.engine.balance_of(trader, 5, ctx.token) == ctx.tok("4686.699")
    assert ctx.engine.vault_assets() == vault_assets + ctx.tok("301") + ctx.tok("6.301")
    assert ctx.position(trader, ETH, sub=5) == (0, 0, 0)
    assert ctx.oi(ETH) == (0, 0)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, ETH, 2 * WAD, usd("3150.5"), ctx.tok("6.301"), -ctx.tok("301"), sub=5)
    ]


def test_close_position__one_of_two_markets__keeps_the_other(ctx, trader, other_trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD // 10)
    ctx.trade(trader, ETH, -WAD)
    ctx.trade(other_trader, BTC, WAD // 5)
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.position(trader, ETH) == (-WAD, usd(3000), 0)
    assert ctx.lens.open_markets(trader, 0) == [ETH]
    assert ctx.oi(BTC) == (WAD // 5, 0)
    assert ctx.oi(ETH) == (0, WAD)
    # fees 6 + 3 + 6
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9985")


def test_close_position__while_paused__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.trade(trader, ETH, WAD)
    ctx.pause()
    ctx.engine.close_position(trader, 0, ETH, usd(3000), sender=trader)
    assert ctx.position(trader, ETH) == (0, 0, 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("994")


def test_close_position__liquidatable_account__passes(ctx, trader):
    # 6,100 in, 1 BTC long (balance 6,040); at 56,000: equity 2,040 < MM 2,800.
    ctx.fund(trader, ctx.tok("6100"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 56_000)
    assert ctx.engine.status(trader, 0) == 2
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    # 6,040 - 4,000 - 56
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("1984")
    assert ctx.engine.status(trader, 0) == 0


@pytest.mark.parametrize(
    "insurance, paid, loss",
    [("0", "0", "1053"), ("500", "500", "553"), ("2000", "1053", "0")],
    ids=["vault_only", "insurance_then_vault", "insurance_only"],
)
def test_close_position__bankrupt_account__clears_bad_debt(ctx, trader, other_trader, insurance, paid, loss):
    # 6,060 in, 1 BTC long (balance 6,000); at 53,000 equity is -1,000.
    # Closing realises -7,000 and pays 53: balance -1,053, the bad debt.
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    if insurance != "0":
        ctx.engine.fund_insurance(ctx.tok(insurance), sender=other_trader)
    ctx.set_price(BTC, 53_000)
    assert ctx.engine.status(trader, 0) == 3
    vault_assets, held = ctx.engine.vault_assets(), ctx.token.balanceOf(ctx.engine)

    receipt = ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)

    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0
    assert ctx.engine.insurance_fund() == ctx.tok(insurance) - ctx.tok(paid)
    assert ctx.engine.vault_assets() == vault_assets + ctx.tok("7000") + ctx.tok("53") - ctx.tok(loss)
    assert ctx.token.balanceOf(ctx.engine) == held
    ctx.assert_ledger((trader, 0))
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.engine.account(trader, 0).status == 0
    assert ctx.engine_logs(receipt) == [
        ctx.engine.BadDebt(
            owner=trader, sub=0, amount=ctx.tok("1053"), insurance_paid=ctx.tok(paid), vault_loss=ctx.tok(loss)
        ),
        modified(ctx, trader, BTC, -WAD, usd(53000), ctx.tok("53"), -ctx.tok("7000")),
    ]


def test_close_position__one_of_two_lowering_the_maintenance_ratio__reverts(ctx, trader):
    # 9,100 in, 1 BTC and 1 ETH long (balance 9,037). BTC at 51,000: equity 37, MM 2,700.
    # Closing BTC: -14 / 150; closing ETH: 34 / 2,550; both below 37 / 2,700.
    ctx.fund(trader, ctx.tok("9100"))
    ctx.trade(trader, BTC, WAD)
    ctx.trade(trader, ETH, WAD)
    ctx.set_price(BTC, 51_000)
    state = ctx.engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (usd(37), usd(2700), 2)
    before = ctx.snapshot(trader)
    for market in (BTC, ETH):
        with ape.reverts("engine: unhealthy"):
            ctx.engine.close_position(trader, 0, market, 0, sender=trader)
    assert ctx.snapshot(trader) == before


def test_close_position__one_of_two_raising_the_maintenance_ratio__passes(ctx, trader):
    # BTC at 51,050: equity 87, MM 2,702.5; closing ETH (fee 3): 84 / 2,552.5, a higher ratio.
    ctx.fund(trader, ctx.tok("9100"))
    ctx.trade(trader, BTC, WAD)
    ctx.trade(trader, ETH, WAD)
    ctx.set_price(BTC, 51_050)
    assert ctx.engine.status(trader, 0) == 2
    ctx.engine.close_position(trader, 0, ETH, 0, sender=trader)
    state = ctx.engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (usd(84), usd("2552.5"), 2)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9034")


@dec6_only
def test_close_position__first_of_three__moves_the_last_market_into_its_slot(ctx, project, trader):
    third = ctx.add_market(project, 100)
    ctx.fund(trader, ctx.tok("10000"))
    for market in (BTC, ETH, third):
        ctx.trade(trader, market, WAD // 10 if market == BTC else WAD)
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.lens.open_markets(trader, 0) == [third, ETH]
    ctx.engine.close_position(trader, 0, ETH, 0, sender=trader)
    assert ctx.lens.open_markets(trader, 0) == [third]
    ctx.trade(trader, BTC, WAD // 10)
    assert ctx.lens.open_markets(trader, 0) == [third, BTC]
    assert ctx.position(trader, third) == (WAD, usd(100), 0)
    # fees: 6 + 3 + 0.1 opening, 6 + 3 closing, 6 reopening
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9975.9")


@dec6_only
def test_close_position__bankrupt_isolated_sub_account__stays_isolated(ctx, trader):
    ctx.engine.set_margin_mode(4, True, sender=trader)
    ctx.fund(trader, ctx.tok("6060"), sub=4)
    ctx.trade(trader, BTC, WAD, sub=4)
    ctx.set_price(BTC, 53_000)
    ctx.engine.close_position(trader, 4, BTC, 0, sender=trader)
    assert ctx.engine.balance_of(trader, 4, ctx.token) == 0
    assert ctx.lens.margin_mode(trader, 4) is True
    assert ctx.lens.open_markets(trader, 4) == []


# --------------------------------------------------------------------------
#                                  Reverts
# --------------------------------------------------------------------------


def test_close_position__long_with_limit_above_the_price__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: slippage"):
        ctx.engine.close_position(trader, 0, BTC, usd(60000) + 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_close_position__short_with_limit_below_the_price__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, -WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: slippage"):
        ctx.engine.close_position(trader, 0, BTC, usd(60000) - 1, sender=trader)
    assert ctx.snapshot(trader) == before
    ctx.engine.close_position(trader, 0, BTC, usd(60000), sender=trader)
    assert ctx.position(trader, BTC) == (0, 0, 0)


@dec6_only
def test_close_position__no_position__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"), sub=1)
    ctx.trade(trader, BTC, WAD, sub=1)
    before = ctx.snapshot(trader, subs=(0, 1))
    with ape.reverts("engine: no position"):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    with ape.reverts("engine: no position"):
        ctx.engine.close_position(trader, 1, ETH, 0, sender=trader)
    assert ctx.snapshot(trader, subs=(0, 1)) == before


@dec6_only
def test_close_position__already_closed__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: no position"):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
@pytest.mark.parametrize("market", [2, MAX_UINT])
def test_close_position__unknown_market__reverts_with_no_position(ctx, trader, market):
    # The size is read before the market id is checked: an unknown market has no position.
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: no position"):
        ctx.engine.close_position(trader, 0, market, 0, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_close_position__not_owner_or_operator__reverts(ctx, trader, attacker):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader, attacker)
    with ape.reverts("engine: not authorized"):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=attacker)
    assert ctx.snapshot(trader, attacker) == before


@dec6_only
def test_close_position__by_approved_operator__closes_for_the_owner(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, -WAD)
    ctx.engine.set_operator(operator, True, sender=trader)
    receipt = ctx.engine.close_position(trader, 0, BTC, MAX_UINT, sender=operator)
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9880")
    assert ctx.engine_logs(receipt) == [modified(ctx, trader, BTC, WAD, usd(60000), ctx.tok("60"), 0)]


@dec6_only
@pytest.mark.parametrize("fault", sorted(ORACLE_FAULTS))
def test_close_position__invalid_price__reverts(ctx, trader, fault):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.break_oracle(BTC, fault)
    before = ctx.snapshot(trader)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_close_position__invalid_price_of_another_open_market__reverts(ctx, trader):
    # Closing BTC leaves the ETH position, which must be valued: its stale feed blocks the close.
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.trade(trader, ETH, WAD)
    ctx.break_oracle(ETH, "stale")
    before = ctx.snapshot(trader)
    with ape.reverts("oracle: stale"):
        ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert ctx.snapshot(trader) == before
