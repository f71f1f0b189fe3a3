"""The engine's on-chain list of sub-accounts with open positions
(`active_count`, `active_accounts(i)`): bots page over it from empty state.

An account joins when its first position opens and leaves when its last
position closes, by trade or by liquidation; leaving swaps the list's last
entry into its place, and that account's word records its new index
(bits 80-111 of `account_meta`).
"""

import pytest

from .conftest import BTC, ETH, WAD

MASK160 = 2**160 - 1


@pytest.fixture
def ctx(ctx6):
    return ctx6


def entry(owner, sub: int) -> int:
    return int(str(owner), 16) | (sub << 160)


def active(ctx) -> list[int]:
    engine = ctx.engine
    return [engine.active_accounts(i) for i in range(engine.active_count())]


def index_of(ctx, owner, sub: int) -> int:
    return (ctx.engine.account_meta(owner, sub) >> 80) & (2**32 - 1)


def assert_consistent(ctx, *accounts):
    """The list holds exactly `accounts` (in any order), and each account's
    word points at its own entry."""
    listed = active(ctx)
    assert sorted(listed) == sorted(entry(o, s) for o, s in accounts)
    for owner, sub in accounts:
        assert listed[index_of(ctx, owner, sub)] == entry(owner, sub)


def test_active__first_position_joins_once__further_positions_do_not(ctx, trader):
    assert active(ctx) == []
    ctx.fund(trader, ctx.tok("10000"), sub=3)

    ctx.trade(trader, BTC, WAD // 10, sub=3)

    assert active(ctx) == [entry(trader, 3)]
    assert index_of(ctx, trader, 3) == 0
    # the entry decodes to the owner and the sub-account
    assert (active(ctx)[0] & MASK160, active(ctx)[0] >> 160) == (int(str(trader), 16), 3)

    ctx.trade(trader, ETH, WAD, sub=3)
    ctx.trade(trader, BTC, WAD // 10, sub=3)

    assert active(ctx) == [entry(trader, 3)]


def test_active__sub_accounts_are_listed_separately(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"), sub=0)
    ctx.fund(trader, ctx.tok("10000"), sub=1)

    ctx.trade(trader, BTC, WAD // 10, sub=0)
    ctx.trade(trader, BTC, -WAD // 10, sub=1)

    assert active(ctx) == [entry(trader, 0), entry(trader, 1)]
    assert_consistent(ctx, (trader, 0), (trader, 1))


def test_active__last_position_closed__leaves_and_the_last_entry_moves_in(ctx, trader, other_trader, operator):
    for who in (trader, other_trader, operator):
        ctx.fund(who, ctx.tok("10000"))
        ctx.trade(who, ETH, WAD)
    assert active(ctx) == [entry(trader, 0), entry(other_trader, 0), entry(operator, 0)]

    # Closing one of two positions keeps the account listed.
    ctx.trade(trader, BTC, WAD // 10)
    ctx.engine.close_position(trader, 0, ETH, 0, sender=trader)
    assert active(ctx) == [entry(trader, 0), entry(other_trader, 0), entry(operator, 0)]

    # The first account closes its last position: the last entry takes index 0.
    ctx.engine.close_position(trader, 0, BTC, 0, sender=trader)

    assert active(ctx) == [entry(operator, 0), entry(other_trader, 0)]
    assert_consistent(ctx, (operator, 0), (other_trader, 0))
    assert index_of(ctx, trader, 0) == 0  # cleared with the account's last position

    # The last entry leaves: nothing moves.
    ctx.trade(other_trader, ETH, -WAD)
    assert active(ctx) == [entry(operator, 0)]
    assert_consistent(ctx, (operator, 0))

    # Re-opening joins at the end again.
    ctx.trade(trader, ETH, -WAD)
    assert active(ctx) == [entry(operator, 0), entry(trader, 0)]
    assert_consistent(ctx, (operator, 0), (trader, 0))


def test_active__flip_through_zero__stays_listed(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, WAD)

    ctx.trade(trader, ETH, -2 * WAD)

    assert active(ctx) == [entry(trader, 0)]


def test_active__full_liquidation__leaves(ctx, trader, other_trader, liquidator):
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.trade(other_trader, ETH, WAD)
    ctx.fund(trader, ctx.tok("320"))
    ctx.trade(trader, ETH, WAD)  # 3,000 notional on 317 of equity
    ctx.set_price(ETH, 2_600)  # bankrupt: equity 317 - 400 < 0
    assert ctx.engine.status(trader, 0) == 3

    ctx.engine.liquidate(trader, 0, ETH, 10 * WAD, sender=liquidator)

    assert ctx.engine.position(trader, 0, ETH).size == 0
    assert active(ctx) == [entry(other_trader, 0)]
    assert_consistent(ctx, (other_trader, 0))


def test_active__reverted_trade__list_unchanged(ctx, trader, other_trader):
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.trade(other_trader, ETH, WAD)
    ctx.fund(trader, ctx.tok("10"))
    before = ctx.snapshot(trader, other_trader)

    with pytest.raises(Exception, match="engine: unhealthy"):
        ctx.trade(trader, ETH, WAD)

    assert ctx.snapshot(trader, other_trader) == before
    assert active(ctx) == [entry(other_trader, 0)]
