"""MarginEngine.modify_position(owner, sub, market, size_delta, limit_price).

Numbers follow docs/engine-spec.md ("Trade"): entry averaged up for longs and
down for shorts, realised PnL floored to token units, fee = 0.1 % of notional
rounded up to token units, the entry becomes the price on a flip. Funding is
off in these systems except in the funding test, so balances are exact.
"""

import ape
import pytest

from margin_engine.model import average_entry, ceil_div, floor_div, mul_div_up

from .conftest import (
    BTC,
    ETH,
    FEE_RATE,
    FUNDING_RATE_MAX,
    MAX_UINT,
    ORACLE_FAULTS,
    WAD,
    answer,
    dec6_only,
    usd,
)


@pytest.fixture
def ctx(ctx_decimals):
    return ctx_decimals


def modified(ctx, owner, market, delta, size, entry, price, fee, realized=0, funding=0, sub=0):
    return ctx.engine.PositionModified(
        owner=owner, sub=sub, market=market, size_delta=delta, size=size, entry_price=entry,
        price=price, fee=fee, realized_pnl=realized, funding_paid=funding,
    )


# --------------------------------------------------------------------------
#                                  Success
# --------------------------------------------------------------------------


def test_modify_position__open_long__records_position_fee_and_open_interest(ctx, trader):
    engine = ctx.engine
    ctx.fund(trader, ctx.tok("10000"))
    vault_assets, held = engine.vault_assets(), ctx.token.balanceOf(engine)

    # The return value (the execution price) of the same call, dry-run first.
    assert engine.modify_position.call(trader, 0, BTC, WAD, usd(60000), sender=trader) == usd(60000)
    receipt = engine.modify_position(trader, 0, BTC, WAD, usd(60000), sender=trader)

    assert ctx.position(trader, BTC) == (WAD, usd(60000), 0)
    view = engine.position(trader, 0, BTC)
    assert (view.notional, view.unrealized_pnl, view.funding_owed, view.price_ok) == (usd(60000), 0, 0, True)
    # fee = 60,000 * 0.1 % = 60
    assert engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940")
    assert engine.vault_assets() == vault_assets + ctx.tok("60")
    assert ctx.token.balanceOf(engine) == held
    ctx.assert_ledger((trader, 0))
    assert ctx.oi(BTC) == (WAD, 0)
    assert ctx.oi(ETH) == (0, 0)
    state = engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.mm_required, state.status, state.positions) == (
        usd(9940), usd(6000), usd(3000), 0, 1,
    )
    assert ctx.lens.open_markets(trader, 0) == [BTC]
    assert list(receipt.events) == [
        modified(ctx, trader, BTC, WAD, WAD, usd(60000), usd(60000), ctx.tok("60"))
    ]


def test_modify_position__open_short__records_position_fee_and_open_interest(ctx, trader):
    ctx.fund(trader, ctx.tok("1000"), sub=3)
    vault_assets = ctx.engine.vault_assets()
    assert ctx.engine.modify_position.call(trader, 3, ETH, -2 * WAD, usd(3000), sender=trader) == usd(3000)
    receipt = ctx.engine.modify_position(trader, 3, ETH, -2 * WAD, usd(3000), sender=trader)
    assert ctx.position(trader, ETH, sub=3) == (-2 * WAD, usd(3000), 0)
    assert ctx.engine.balance_of(trader, 3, ctx.token) == ctx.tok("994")
    assert ctx.engine.vault_assets() == vault_assets + ctx.tok("6")
    assert ctx.oi(ETH) == (0, 2 * WAD)
    assert ctx.lens.open_markets(trader, 3) == [ETH]
    assert list(receipt.events) == [
        modified(ctx, trader, ETH, -2 * WAD, -2 * WAD, usd(3000), usd(3000), ctx.tok("6"), sub=3)
    ]


def test_modify_position__increase_long__averages_entry_rounding_up(ctx, trader):
    ctx.fund(trader, ctx.tok("30000"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 60_001)
    receipt = ctx.trade(trader, BTC, 2 * WAD)
    # (1 * 60,000 + 2 * 60,001) / 3 = 60,000.666..., rounded up for a long
    entry = 60000666666666666666667
    assert entry == average_entry(WAD, usd(60000), 2 * WAD, usd(60001))
    assert ctx.position(trader, BTC) == (3 * WAD, entry, 0)
    # fees 60 + 120.002
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("29819.998")
    assert ctx.oi(BTC) == (3 * WAD, 0)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, 2 * WAD, 3 * WAD, entry, usd(60001), ctx.tok("120.002"))
    ]


def test_modify_position__increase_short__averages_entry_rounding_down(ctx, trader):
    ctx.fund(trader, ctx.tok("30000"))
    ctx.trade(trader, BTC, -WAD)
    ctx.set_price(BTC, 60_001)
    receipt = ctx.trade(trader, BTC, -2 * WAD)
    entry = 60000666666666666666666
    assert entry == average_entry(-WAD, usd(60000), -2 * WAD, usd(60001))
    assert ctx.position(trader, BTC) == (-3 * WAD, entry, 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("29819.998")
    assert ctx.oi(BTC) == (0, 3 * WAD)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, -2 * WAD, -3 * WAD, entry, usd(60001), ctx.tok("120.002"))
    ]


def test_modify_position__small_increase__fee_rounds_up_to_a_token_unit(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    delta = 123456789012345678
    # notional 7,407.40734074074068; fee 7.40734074074074068 USD
    fee = {6: 7407408, 18: 7407407340740740680}[ctx.decimals]
    assert fee == ceil_div(mul_div_up(mul_div_up(delta, usd(60000), WAD), FEE_RATE, WAD), ctx.scale)
    receipt = ctx.trade(trader, BTC, delta)
    assert ctx.position(trader, BTC) == (WAD + delta, usd(60000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940") - fee
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, delta, WAD + delta, usd(60000), usd(60000), fee)
    ]


@pytest.mark.parametrize(
    "price, realized, fee",
    [
        # floor(333333333333333333 * 0.5) = 166666666666666666 WAD -> floored to tokens
        ("60000.5", {6: 166666, 18: 166666666666666666}, {6: 20000167, 18: 20000166666666666647}),
        # floor(-166666666666666666.5) = -166666666666666667 WAD -> floored to tokens
        ("59999.5", {6: -166667, 18: -166666666666666667}, {6: 19999834, 18: 19999833333333333314}),
    ],
    ids=["profit", "loss"],
)
def test_modify_position__reduce_long__realises_pnl_floored_to_token_units(ctx, trader, price, realized, fee):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, price)
    vault_assets = ctx.engine.vault_assets()
    delta = -333333333333333333
    realized, fee = realized[ctx.decimals], fee[ctx.decimals]
    assert realized == floor_div(floor_div(-delta * (usd(price) - usd(60000)), WAD), ctx.scale)
    assert fee == ceil_div(mul_div_up(mul_div_up(-delta, usd(price), WAD), FEE_RATE, WAD), ctx.scale)

    assert ctx.engine.modify_position.call(trader, 0, BTC, delta, usd(price), sender=trader) == usd(price)
    receipt = ctx.trade(trader, BTC, delta)

    assert ctx.position(trader, BTC) == (WAD + delta, usd(60000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940") + realized - fee
    assert ctx.engine.vault_assets() == vault_assets - realized + fee
    ctx.assert_ledger((trader, 0))
    assert ctx.oi(BTC) == (WAD + delta, 0)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, delta, WAD + delta, usd(60000), usd(price), fee, realized)
    ]


def test_modify_position__reduce_short_at_a_profit__realises_and_keeps_entry(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, -WAD)
    ctx.set_price(BTC, 59_000)
    vault_assets = ctx.engine.vault_assets()
    receipt = ctx.trade(trader, BTC, WAD // 4)
    # realised 0.25 * 1,000 = 250; fee 0.25 * 59,000 * 0.1 % = 14.75
    assert ctx.position(trader, BTC) == (-3 * WAD // 4, usd(60000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("10175.25")
    assert ctx.engine.vault_assets() == vault_assets - ctx.tok("250") + ctx.tok("14.75")
    assert ctx.oi(BTC) == (0, 3 * WAD // 4)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, WAD // 4, -3 * WAD // 4, usd(60000), usd(59000), ctx.tok("14.75"), ctx.tok("250"))
    ]


def test_modify_position__flip_long_to_short__realises_and_enters_at_the_price(ctx, trader):
    ctx.fund(trader, ctx.tok("20000"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 61_000)
    vault_assets = ctx.engine.vault_assets()
    receipt = ctx.trade(trader, BTC, -3 * WAD)
    # realised 1 * 1,000; fee on the whole 3 BTC: 183
    assert ctx.position(trader, BTC) == (-2 * WAD, usd(61000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("20757")
    assert ctx.engine.vault_assets() == vault_assets - ctx.tok("1000") + ctx.tok("183")
    ctx.assert_ledger((trader, 0))
    assert ctx.oi(BTC) == (0, 2 * WAD)
    assert ctx.lens.open_markets(trader, 0) == [BTC]
    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.status) == (usd(20757), usd(12200), 0)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, -3 * WAD, -2 * WAD, usd(61000), usd(61000), ctx.tok("183"), ctx.tok("1000"))
    ]


def test_modify_position__flip_short_to_long__realises_and_enters_at_the_price(ctx, trader):
    ctx.fund(trader, ctx.tok("2000"))
    ctx.trade(trader, ETH, -WAD)
    ctx.set_price(ETH, 3_100)
    receipt = ctx.trade(trader, ETH, 3 * WAD)
    # realised -100; fee 3 * 3,100 * 0.1 % = 9.3
    assert ctx.position(trader, ETH) == (2 * WAD, usd(3100), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("1887.7")
    assert ctx.oi(ETH) == (2 * WAD, 0)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, ETH, 3 * WAD, 2 * WAD, usd(3100), usd(3100), ctx.tok("9.3"), -ctx.tok("100"))
    ]


def test_modify_position__exact_close__deletes_the_position(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.trade(trader, ETH, WAD)
    ctx.set_price(BTC, 60_500)
    receipt = ctx.trade(trader, BTC, -WAD)
    # 10,000 - 60 - 3 + 500 - 60.5
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("10376.5")
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.oi(BTC) == (0, 0)
    assert ctx.lens.open_markets(trader, 0) == [ETH]
    assert ctx.engine.account(trader, 0).positions == 1
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, -WAD, 0, 0, usd(60500), ctx.tok("60.5"), ctx.tok("500"))
    ]


def test_modify_position__open_at_exactly_initial_margin__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))  # IM 6,000 + fee 60
    ctx.trade(trader, BTC, WAD)
    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.status) == (usd(6000), usd(6000), 0)


def test_modify_position__by_approved_operator__trades_for_the_owner(ctx, trader, operator):
    ctx.fund(trader, ctx.tok("1000"))
    ctx.engine.set_operator(operator, True, sender=trader)
    assert ctx.engine.modify_position.call(trader, 0, ETH, WAD, usd(3000), sender=operator) == usd(3000)
    receipt = ctx.engine.modify_position(trader, 0, ETH, WAD, usd(3000), sender=operator)
    assert ctx.position(trader, ETH) == (WAD, usd(3000), 0)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("997")
    assert ctx.engine.account(operator, 0).positions == 0
    assert ctx.engine.balance_of(operator, 0, ctx.token) == 0
    assert ctx.engine_logs(receipt) == [modified(ctx, trader, ETH, WAD, WAD, usd(3000), usd(3000), ctx.tok("3"))]


def test_modify_position__settles_funding_accrued_since_the_last_touch(ctx, chain, trader):
    ctx.set_params(BTC, funding_rate_max=FUNDING_RATE_MAX)
    ctx.fund(trader, ctx.tok("10000"))
    opened = ctx.trade(trader, BTC, WAD)
    chain.pending_timestamp = opened.timestamp + 1_000
    vault_assets = ctx.engine.vault_assets()

    receipt = ctx.trade(trader, BTC, -WAD // 2)

    # All open interest is long: rate = funding_rate_max = 138888888888 per second;
    # index = 60,000 * rate * 1,000 s; the long owes 1 BTC * index, rounded up to tokens.
    index = 60_000 * 138888888888 * 1_000
    assert index == 8333333333280000000
    funding = {6: 8333334, 18: 8333333333280000000}[ctx.decimals]
    assert funding == ceil_div(index, ctx.scale)
    assert receipt.timestamp == opened.timestamp + 1_000
    assert ctx.position(trader, BTC) == (WAD // 2, usd(60000), index)
    state = ctx.lens.market_state(BTC)
    assert (state.long_oi, state.short_oi, state.funding_index, state.last_funding_time) == (
        WAD // 2, 0, index, receipt.timestamp,
    )
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9940") - funding - ctx.tok("30")
    assert ctx.engine.vault_assets() == vault_assets + funding + ctx.tok("30")
    ctx.assert_ledger((trader, 0))
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, -WAD // 2, WAD // 2, usd(60000), usd(60000), ctx.tok("30"), 0, funding)
    ]


# --------------------------------------------------------------------------
#                      Reductions of an unhealthy account
# --------------------------------------------------------------------------


@pytest.fixture
def thin_long(ctx, trader):
    """6,100 deposited, 1 BTC long at 60,000: balance 6,040, liquidatable below 56,800
    (6,040 + P - 60,000 < 5 % of P)."""
    ctx.fund(trader, ctx.tok("6100"))
    ctx.trade(trader, BTC, WAD)


@pytest.mark.parametrize("price, status", [(54_000, 2), (53_900, 3)], ids=["liquidatable", "bankrupt"])
def test_modify_position__reduction_lowering_the_maintenance_ratio__reverts(ctx, trader, thin_long, price, status):
    # At 54,000: equity 40, MM 2,700. Selling 0.5 costs a 27 fee: 13 / 1,350 < 40 / 2,700.
    # At 53,900: equity -60, MM 2,695; after: -86.95 / 1,347.5 < -60 / 2,695.
    ctx.set_price(BTC, price)
    assert ctx.engine.status(trader, 0) == status
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.trade(trader, BTC, -WAD // 2)
    assert ctx.snapshot(trader) == before


def test_modify_position__reduction_raising_the_maintenance_ratio__passes(ctx, trader, thin_long):
    # At 54,100: equity 140, MM 2,705 (liquidatable). Selling 0.5: realised -2,950,
    # fee 27.05; after: equity 112.95, MM 1,352.5, a higher ratio, still liquidatable.
    ctx.set_price(BTC, 54_100)
    assert ctx.engine.status(trader, 0) == 2
    receipt = ctx.trade(trader, BTC, -WAD // 2)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("3062.95")
    assert ctx.position(trader, BTC) == (WAD // 2, usd(60000), 0)
    state = ctx.engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (usd("112.95"), usd("1352.5"), 2)
    assert ctx.engine_logs(receipt) == [
        modified(ctx, trader, BTC, -WAD // 2, WAD // 2, usd(60000), usd(54100), ctx.tok("27.05"), -ctx.tok("2950"))
    ]


def test_modify_position__reduction_to_flat_of_a_liquidatable_account__passes_with_bad_debt(ctx, trader, thin_long):
    # At 54,000 closing realises -6,000 and pays 54: balance 6,040 - 6,054 = -14, covered by the vault.
    ctx.set_price(BTC, 54_000)
    vault_assets = ctx.engine.vault_assets()
    receipt = ctx.trade(trader, BTC, -WAD)
    assert ctx.engine.balance_of(trader, 0, ctx.token) == 0
    assert ctx.position(trader, BTC) == (0, 0, 0)
    assert ctx.engine.vault_assets() == vault_assets + ctx.tok("6000") + ctx.tok("54") - ctx.tok("14")
    ctx.assert_ledger((trader, 0))
    assert ctx.engine_logs(receipt) == [
        ctx.engine.BadDebt(owner=trader, sub=0, amount=ctx.tok("14"), insurance_paid=0, vault_loss=ctx.tok("14")),
        modified(ctx, trader, BTC, -WAD, 0, 0, usd(54000), ctx.tok("54"), -ctx.tok("6000")),
    ]


# --------------------------------------------------------------------------
#                                  Reverts
# --------------------------------------------------------------------------


@dec6_only
def test_modify_position__not_owner_or_operator__reverts(ctx, trader, attacker):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader, attacker)
    with ape.reverts("engine: not authorized"):
        ctx.trade(trader, BTC, -WAD, sender=attacker)
    with ape.reverts("engine: not authorized"):
        ctx.trade(trader, ETH, WAD, sender=attacker)
    assert ctx.snapshot(trader, attacker) == before


@dec6_only
def test_modify_position__zero_size__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: zero size"):
        ctx.engine.modify_position(trader, 0, BTC, 0, usd(60000), sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
@pytest.mark.parametrize("market", [2, 2**16, MAX_UINT])
def test_modify_position__unknown_market__reverts(ctx, trader, market):
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unknown market"):
        ctx.engine.modify_position(trader, 0, market, WAD, MAX_UINT, sender=trader)
    assert ctx.snapshot(trader) == before


def test_modify_position__buy_above_the_limit__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: slippage"):
        ctx.engine.modify_position(trader, 0, BTC, WAD, usd(60000) - 1, sender=trader)
    assert ctx.snapshot(trader) == before


def test_modify_position__sell_below_the_limit__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: slippage"):
        ctx.engine.modify_position(trader, 0, BTC, -WAD, usd(60000) + 1, sender=trader)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_modify_position__reducing_sell_below_the_limit__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: slippage"):
        ctx.engine.modify_position(trader, 0, BTC, -WAD // 2, usd(60000) + 1, sender=trader)
    assert ctx.snapshot(trader) == before


@pytest.mark.parametrize("delta", [WAD, -WAD], ids=["buy", "sell"])
def test_modify_position__limit_equal_to_the_price__passes(ctx, trader, delta):
    ctx.fund(trader, ctx.tok("10000"))
    assert ctx.engine.modify_position.call(trader, 0, BTC, delta, usd(60000), sender=trader) == usd(60000)
    ctx.engine.modify_position(trader, 0, BTC, delta, usd(60000), sender=trader)
    assert ctx.position(trader, BTC) == (delta, usd(60000), 0)


@dec6_only
@pytest.mark.parametrize("fault", sorted(ORACLE_FAULTS))
def test_modify_position__invalid_price__reverts(ctx, trader, fault):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.break_oracle(BTC, fault)
    before = ctx.snapshot(trader)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.trade(trader, BTC, WAD)
    assert ctx.snapshot(trader) == before


@dec6_only
@pytest.mark.parametrize("fault", ["stale", "zero", "above_max"])
def test_modify_position__invalid_price_of_another_open_market__reverts(ctx, trader, fault):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, WAD)
    ctx.break_oracle(ETH, fault)
    before = ctx.snapshot(trader)
    with ape.reverts(ORACLE_FAULTS[fault]):
        ctx.trade(trader, BTC, WAD // 10)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_modify_position__round_exactly_one_heartbeat_old__passes(ctx, chain, trader):
    ctx.fund(trader, ctx.tok("10000"))
    updated = chain.pending_timestamp
    ctx.feed(BTC).set_round(answer(60000), updated, sender=ctx.admin)
    chain.pending_timestamp = updated + 3600
    ctx.trade(trader, BTC, WAD)
    assert ctx.position(trader, BTC) == (WAD, usd(60000), 0)


@dec6_only
def test_modify_position__round_one_second_past_the_heartbeat__reverts(ctx, chain, trader):
    ctx.fund(trader, ctx.tok("10000"))
    updated = chain.pending_timestamp
    ctx.feed(BTC).set_round(answer(60000), updated, sender=ctx.admin)
    chain.pending_timestamp = updated + 3601
    before = ctx.snapshot(trader)
    with ape.reverts("oracle: stale"):
        ctx.trade(trader, BTC, WAD)
    assert ctx.snapshot(trader) == before


@dec6_only
@pytest.mark.parametrize("price", ["600", "6000000"], ids=["min_price", "max_price"])
def test_modify_position__price_on_a_bound__passes(ctx, trader, price):
    ctx.fund(trader, ctx.tok("100000"))
    ctx.set_price(BTC, price)
    ctx.trade(trader, BTC, WAD // 10)
    assert ctx.position(trader, BTC) == (WAD // 10, usd(price), 0)


def test_modify_position__long_side_above_the_oi_cap__reverts(ctx, trader, other_trader):
    ctx.set_params(BTC, max_oi=2 * WAD)
    ctx.fund(trader, ctx.tok("20000"))
    ctx.fund(other_trader, ctx.tok("20000"))
    ctx.trade(trader, BTC, 2 * WAD)  # exactly at the cap
    assert ctx.oi(BTC) == (2 * WAD, 0)
    before = ctx.snapshot(trader, other_trader)
    with ape.reverts("engine: oi cap"):
        ctx.trade(other_trader, BTC, WAD // 1000)
    assert ctx.snapshot(trader, other_trader) == before
    ctx.trade(other_trader, BTC, -WAD // 1000)  # the short side is free
    assert ctx.oi(BTC) == (2 * WAD, WAD // 1000)


@dec6_only
def test_modify_position__short_side_above_the_oi_cap__reverts(ctx, trader):
    ctx.set_params(ETH, max_oi=10 * WAD)
    ctx.fund(trader, ctx.tok("20000"))
    ctx.trade(trader, ETH, -10 * WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: oi cap"):
        ctx.trade(trader, ETH, -WAD // 100)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_modify_position__flip_beyond_the_oi_cap__reverts(ctx, trader):
    ctx.set_params(BTC, max_oi=WAD)
    ctx.fund(trader, ctx.tok("50000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: oi cap"):
        ctx.trade(trader, BTC, -5 * WAD // 2)  # short 1.5 > cap 1
    assert ctx.snapshot(trader) == before
    ctx.trade(trader, BTC, -2 * WAD)  # short 1 = cap
    assert ctx.oi(BTC) == (0, WAD)


@dec6_only
def test_modify_position__reduction_above_a_lowered_oi_cap__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("20000"))
    ctx.trade(trader, BTC, 2 * WAD)
    ctx.set_params(BTC, max_oi=WAD)
    ctx.trade(trader, BTC, -WAD // 2)
    assert ctx.oi(BTC) == (3 * WAD // 2, 0)
    with ape.reverts("engine: oi cap"):
        ctx.trade(trader, BTC, WAD // 1000)


@dec6_only
def test_modify_position__ninth_position__reverts(ctx, project, trader):
    assert ctx.engine.MAX_POSITIONS() == 8
    markets = [BTC, ETH] + [ctx.add_market(project, 100) for _ in range(7)]
    assert markets[2:] == [2, 3, 4, 5, 6, 7, 8]
    ctx.fund(trader, ctx.tok("10000"))
    for market in markets[:8]:
        ctx.trade(trader, market, WAD // 10 if market == BTC else WAD)
    assert ctx.engine.account(trader, 0).positions == 8
    before = ctx.snapshot(trader)
    with ape.reverts("engine: too many positions"):
        ctx.trade(trader, markets[8], WAD)
    assert ctx.snapshot(trader) == before
    ctx.trade(trader, markets[7], WAD)  # an open market may still grow
    assert ctx.lens.open_markets(trader, 0) == markets[:8]


@dec6_only
def test_modify_position__second_market_in_isolated_sub_account__reverts(ctx, trader):
    ctx.engine.set_margin_mode(2, True, sender=trader)
    ctx.fund(trader, ctx.tok("10000"), sub=2)
    ctx.trade(trader, ETH, WAD, sub=2)
    before = ctx.snapshot(trader, subs=(2,))
    with ape.reverts("engine: isolated"):
        ctx.trade(trader, BTC, WAD // 10, sub=2)
    assert ctx.snapshot(trader, subs=(2,)) == before


def test_modify_position__open_one_unit_short_of_initial_margin__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("6060") - 1)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.trade(trader, BTC, WAD)
    assert ctx.snapshot(trader) == before


def test_modify_position__increase_beyond_initial_margin__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.trade(trader, BTC, WAD // 10)
    assert ctx.snapshot(trader) == before


def test_modify_position__flip_beyond_initial_margin__reverts(ctx, trader):
    # 6,100 in, 1 BTC long; selling 3 costs 180 and needs IM 12,000 for the 2 BTC short.
    ctx.fund(trader, ctx.tok("6100"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: unhealthy"):
        ctx.trade(trader, BTC, -3 * WAD)
    assert ctx.snapshot(trader) == before


@pytest.mark.parametrize(
    "delta",
    [WAD, 2 * WAD, -2 * WAD],
    ids=["increase", "increase_after_reduce", "flip"],
)
@dec6_only
def test_modify_position__risk_increase_while_paused__reverts(ctx, trader, delta):
    ctx.fund(trader, ctx.tok("50000"))
    ctx.trade(trader, BTC, WAD)
    if delta == 2 * WAD:
        ctx.trade(trader, BTC, -WAD // 2)
    ctx.pause()
    before = ctx.snapshot(trader)
    with ape.reverts("engine: paused"):
        ctx.trade(trader, BTC, delta)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_modify_position__open_while_paused__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.pause()
    before = ctx.snapshot(trader)
    with ape.reverts("engine: paused"):
        ctx.trade(trader, ETH, -WAD)
    assert ctx.snapshot(trader) == before


def test_modify_position__reduce_and_close_while_paused__pass(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    ctx.pause()
    ctx.trade(trader, BTC, -WAD // 4)
    assert ctx.position(trader, BTC) == (3 * WAD // 4, usd(60000), 0)
    ctx.trade(trader, BTC, -3 * WAD // 4)
    assert ctx.position(trader, BTC) == (0, 0, 0)
    # fees 60 + 15 + 45
    assert ctx.engine.balance_of(trader, 0, ctx.token) == ctx.tok("9880")


# min_notional is 10 USD: at 60,000 the smallest position is 166666666666667
# base units (notional rounded up 10.00000000000002), one unit less is dust.
MIN_BTC = 166666666666667


@dec6_only
def test_modify_position__open_at_the_minimum_notional__passes(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    ctx.trade(trader, BTC, MIN_BTC)
    assert ctx.position(trader, BTC) == (MIN_BTC, usd(60000), 0)
    assert ctx.engine.position(trader, 0, BTC).notional == 10000000000000020000


@dec6_only
def test_modify_position__open_below_the_minimum_notional__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("100"))
    before = ctx.snapshot(trader)
    with ape.reverts("engine: dust"):
        ctx.trade(trader, BTC, MIN_BTC - 1)
    assert ctx.snapshot(trader) == before


@dec6_only
def test_modify_position__reduction_leaving_dust__reverts(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD)
    before = ctx.snapshot(trader)
    with ape.reverts("engine: dust"):
        ctx.trade(trader, BTC, -(WAD - MIN_BTC + 1))
    assert ctx.snapshot(trader) == before
    ctx.trade(trader, BTC, -(WAD - MIN_BTC))
    assert ctx.position(trader, BTC) == (MIN_BTC, usd(60000), 0)
