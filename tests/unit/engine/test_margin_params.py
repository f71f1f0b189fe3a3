"""The initial-margin terms (`EngineConfigurator.set_margin_params`): a
haircut on positive unrealised PnL in `equity_init` (the IM test of new risk
and of transfers out) and a transfer margin ratio (withdrawals and transfers
out need `equity_init >= max(im_required, ratio x notional)`), so unrealised
profit cannot be pulled out down to maintenance. Neither ever makes an
account liquidatable."""

import ape
import pytest

from .conftest import BTC, ETH, WAD

HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
MISSING_ROLE = "access_control: account is missing role"


@pytest.fixture
def ctx(ctx6):
    return ctx6


def set_margin(ctx, haircut: int, ratio: int):
    return ctx.configurator.set_margin_params(haircut, ratio, sender=ctx.risk_manager)


def margin_params(ctx) -> tuple[int, int]:
    """The terms as the configurator keeps them; the lens reads the same."""
    stored = tuple(ctx.configurator.margin_params())
    assert tuple(ctx.lens.margin_params()) == stored
    return stored


def test_set_margin_params__stored_logged_and_kept_by_the_other_setters(ctx, trader):
    # An account whose equity_init shows the haircut the engine applies.
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 64_000)  # upnl +4,000: E 10,000
    assert ctx.engine.account(trader, 0).equity_init == 10_000 * WAD

    receipt = set_margin(ctx, WAD // 4, WAD * 12 // 100)

    assert receipt.events == [ctx.configurator.MarginParamsSet(upnl_haircut=WAD // 4, transfer_margin_ratio=WAD * 12 // 100)]
    assert margin_params(ctx) == (WAD // 4, WAD * 12 // 100)
    assert ctx.engine.account(trader, 0).equity_init == 9_000 * WAD  # 10,000 - 4,000 / 4
    liq = tuple(ctx.engine.liquidation_params())
    ctx.configurator.set_reserve_factor(WAD // 3, sender=ctx.risk_manager)
    ctx.configurator.set_liquidation_params(liq, sender=ctx.risk_manager)
    ctx.configurator.set_call_params(WAD // 10, WAD // 4, WAD // 4, sender=ctx.risk_manager)
    assert margin_params(ctx) == (WAD // 4, WAD * 12 // 100)
    assert ctx.engine.reserve_factor() == WAD // 3
    # the engine's copy is kept too: the haircut still applies...
    assert ctx.engine.account(trader, 0).equity_init == 9_000 * WAD
    # ...and so does the transfer margin ratio: E_init 9,000 - 12 % x 64,000
    # (7,680, above IM 6,400) = 1,320 tokens may leave, not one unit more
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("1320") + 1, sender=trader)
    ctx.engine.withdraw(0, ctx.token, ctx.tok("1320"), sender=trader)


@pytest.mark.parametrize("haircut, ratio", [(WAD + 1, 0), (0, WAD + 1)])
def test_set_margin_params__above_one__reverts(ctx, haircut, ratio):
    with ape.reverts("configurator: bad params"):
        set_margin(ctx, haircut, ratio)
    assert margin_params(ctx) == (0, 0)


def test_set_margin_params__one__accepted(ctx):
    set_margin(ctx, WAD, WAD)
    assert margin_params(ctx) == (WAD, WAD)


def test_set_margin_params__not_risk_manager__reverts(ctx, trader):
    for who in (ctx.admin, ctx.guardian, trader):
        with ape.reverts(MISSING_ROLE):
            ctx.configurator.set_margin_params(WAD // 2, 0, sender=who)
    assert margin_params(ctx) == (0, 0)


def test_haircut__profit_counts_partly_toward_im_not_toward_mm(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)  # E 6,000 = IM 6,000
    ctx.set_price(BTC, 64_000)  # upnl +4,000: E 10,000, IM 6,400
    set_margin(ctx, WAD // 2, 0)

    state = ctx.engine.account(trader, 0)

    assert (state.equity_maint, state.equity_init) == (10_000 * WAD, 8_000 * WAD)
    assert state.status == HEALTHY
    # Adding 0.3 BTC: IM 8,320 > 8,000 - 19.2 fee: refused with the haircut...
    with ape.reverts("engine: unhealthy"):
        ctx.trade(trader, BTC, WAD * 3 // 10)
    # ...accepted without it (IM 8,320 <= 9,980.8).
    set_margin(ctx, 0, 0)
    ctx.trade(trader, BTC, WAD * 3 // 10)


def test_haircut__margin_call_not_liquidation(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 61_000)  # E 7,000, IM 6,100, MM 3,050
    set_margin(ctx, WAD, 0)  # no credit for the 1,000 profit: equity_init 6,000 < 6,100

    state = ctx.engine.account(trader, 0)

    assert (state.equity_init, state.status) == (6_000 * WAD, MARGIN_CALL)
    assert ctx.engine.status(trader, 0) != LIQUIDATABLE
    assert tuple(ctx.lens.quote_liquidation(trader, 0, BTC))[0] is False


def test_haircut__negative_upnl_counts_in_full(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, WAD)
    ctx.set_price(ETH, 2_900)
    set_margin(ctx, WAD, 0)
    state = ctx.engine.account(trader, 0)
    assert state.equity_init == state.equity_maint == (10_000 - 3 - 100) * WAD


def test_transfer_margin__withdrawal_limited_by_the_ratio_exactly(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD // 10)  # 6,000 notional, IM 600, E 9,994
    set_margin(ctx, 0, WAD // 5)  # transfers out keep E_init >= 20 % x 6,000 = 1,200

    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("8794") + 1, sender=trader)
    with ape.reverts("engine: unhealthy"):
        ctx.engine.transfer_collateral(0, 1, ctx.token, ctx.tok("8794") + 1, sender=trader)

    ctx.engine.withdraw(0, ctx.token, ctx.tok("8794"), sender=trader)

    state = ctx.engine.account(trader, 0)
    assert (state.equity_init, state.status) == (1_200 * WAD, HEALTHY)
    # The ratio does not bind trades: 0.05 BTC more needs IM 900 <= E 1,197.
    ctx.trade(trader, BTC, WAD // 20)


def test_transfer_margin__profit_cannot_be_pulled_down_to_maintenance(ctx, trader):
    ctx.fund(trader, ctx.tok("6060"))
    ctx.trade(trader, BTC, WAD)
    ctx.set_price(BTC, 66_000)  # E 12,000, IM 6,600, MM 3,300
    set_margin(ctx, WAD // 2, WAD // 10)  # E_init = 12,000 - 3,000 = 9,000

    # at most 9,000 - max(6,600, 6,600) = 2,400 tokens may leave
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, ctx.tok("2400") + 1, sender=trader)
    ctx.engine.withdraw(0, ctx.token, ctx.tok("2400"), sender=trader)
    assert ctx.engine.account(trader, 0).equity_init == 6_600 * WAD


def test_lens_max_withdraw__the_exact_boundary_of_withdraw(ctx, trader, other_trader):
    lens = ctx.lens
    ctx.fund(other_trader, ctx.tok("123.45"), sub=2)
    assert lens.max_withdraw(other_trader, 2, ctx.token) == ctx.tok("123.45")  # flat: the balance
    assert lens.max_withdraw(other_trader, 2, trader) == 0  # not a listed asset
    assert lens.max_withdraw(other_trader, 3, ctx.token) == 0  # empty

    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, BTC, WAD // 10)
    ctx.set_price(BTC, 61_000)  # upnl +100
    set_margin(ctx, WAD // 2, WAD // 5)  # E_init 10,044; required max(610, 1,220)

    amount = lens.max_withdraw(trader, 0, ctx.token)

    assert amount == ctx.tok("8824")
    with ape.reverts("engine: unhealthy"):
        ctx.engine.withdraw(0, ctx.token, amount + 1, sender=trader)
    ctx.engine.withdraw(0, ctx.token, amount, sender=trader)
    assert lens.max_withdraw(trader, 0, ctx.token) == 0
    # an invalid price: nothing can be withdrawn, and the view says so
    ctx.break_oracle(BTC, "stale")
    assert lens.max_withdraw(trader, 0, ctx.token) == 0


# --------------------------------------------------------------------------
#                        Lens max_position_size
# --------------------------------------------------------------------------


def assert_largest(ctx, owner, market, is_long, q, sub=0):
    """`q` is accepted; one part in a thousand more (and at least 10**15) is not."""
    more = q + max(q // 1_000, 10**15)
    sign = 1 if is_long else -1
    with ape.reverts():
        ctx.trade(owner, market, sign * more, sub=sub)
    ctx.trade(owner, market, sign * q, sub=sub)


@pytest.mark.parametrize("is_long", [True, False])
def test_max_position_size__flat_account__largest_accepted(ctx, trader, is_long):
    ctx.fund(trader, ctx.tok("6000"))

    q = ctx.lens.max_position_size(trader, 0, BTC, is_long)

    # 6,000 - 3 units = q P (10 % + 0.1 %): 0.990099 BTC
    assert 9_900 * WAD // 10_000 < q < 9_901 * WAD // 10_000
    assert_largest(ctx, trader, BTC, is_long, q)


def test_max_position_size__existing_positions_and_haircut(ctx, trader):
    ctx.fund(trader, ctx.tok("10000"))
    ctx.trade(trader, ETH, WAD)
    ctx.trade(trader, BTC, WAD // 10)
    ctx.set_price(ETH, 3_300)  # upnl +300 in ETH
    set_margin(ctx, WAD // 2, 0)

    q = ctx.lens.max_position_size(trader, 0, BTC, True)

    assert q > 0
    assert_largest(ctx, trader, BTC, True, q)


def test_max_position_size__opposite_position__closes_and_flips(ctx, trader):
    ctx.fund(trader, ctx.tok("3000"))
    ctx.trade(trader, ETH, 5 * WAD)  # 15,000 long on 2,985

    q = ctx.lens.max_position_size(trader, 0, ETH, False)

    assert q > 5 * WAD  # closes the 5 ETH long and opens a short
    assert_largest(ctx, trader, ETH, False, q)
    assert ctx.engine.position(trader, 0, ETH).size < 0


def test_max_position_size__oi_cap_binds(ctx, trader, other_trader):
    ctx.set_params(ETH, max_oi=3 * WAD)
    ctx.fund(other_trader, ctx.tok("100000"))
    ctx.trade(other_trader, ETH, 2 * WAD)
    ctx.fund(trader, ctx.tok("1000000"))

    assert ctx.lens.max_position_size(trader, 0, ETH, True) == WAD
    assert ctx.lens.max_position_size(trader, 0, ETH, False) == 3 * WAD
    with ape.reverts("engine: oi cap"):
        ctx.trade(trader, ETH, WAD + 1)
    ctx.trade(trader, ETH, WAD)


def test_max_position_size__nothing_fits_or_not_allowed(ctx, trader, other_trader):
    # too little collateral for the minimum notional (10 USD needs 1.01 USD + 3 units)
    ctx.fund(trader, ctx.tok("1"))
    assert ctx.lens.max_position_size(trader, 0, BTC, True) == 0
    # paused: nothing new
    ctx.fund(other_trader, ctx.tok("10000"))
    ctx.pause()
    assert ctx.lens.max_position_size(other_trader, 0, BTC, True) == 0
