"""MarginLens views of multi-collateral accounts (docs/collateral.md):
`max_withdraw` of a collateral asset (and of the settlement asset next to
collateral), `collateral_of`, and the `collateral` flag of the account
snapshots. The answer of `max_withdraw` must always be accepted by
`withdraw`, and a little more must not.
"""

from __future__ import annotations

import ape
import pytest

from .conftest import WAD

BTC, ETH = 0, 1
USDC = 10**6
SHORT_LIMIT = 0
LONG_LIMIT = 2**255


@pytest.fixture(scope="module", autouse=True)
def _resolve(col, trader, other_trader, liquidator, chain):
    """Resolve the module fixtures before the first test (Ape isolation)."""


def buy(col, account, market, size, sub=0):
    limit = LONG_LIMIT if size > 0 else SHORT_LIMIT
    return col.engine.modify_position(account, sub, market, size, limit, sender=account)


def hedged_buy(col, account, other, size):
    """`account` buys `size` BTC and `other` sells as much: open interest is
    balanced, so no funding accrues between a view and the next block (a
    view answers for its own block only)."""
    col.give_usdc(other, 100_000 * USDC)
    buy(col, other, BTC, -size)
    buy(col, account, BTC, size)


def set_margin(col, haircut: int, ratio: int):
    col.configurator.set_margin_params(haircut, ratio, sender=col.risk_manager)


def expected_collateral_max(col, account, asset, sub=0) -> int:
    """The lens formula, from the engine's and the manager's own views."""
    state = col.engine.account(account, sub)
    notional = sum(col.engine.position(account, sub, m).notional for m in col.lens.open_markets(account, sub))
    _haircut, ratio = col.lens.margin_params()
    required = max(state.im_required, -(-notional * ratio // WAD))
    slack_init = state.equity_init - required
    slack_maint = state.equity_maint - state.mm_required
    if slack_init < 2 or slack_maint < 2:
        return 0
    price, ok = col.manager.collateral_price(asset.token)
    assert ok
    unit = 10 ** (18 - asset.decimals) * price
    x_init = (slack_init - 2) * WAD // asset.w_init * WAD // unit
    x_maint = (slack_maint - 2) * WAD // asset.w_maint * WAD // unit
    return min(x_init, x_maint, col.engine.balance_of(account, sub, asset.token))


def assert_boundary(col, account, asset, answer: int, more: int, sub=0):
    """`answer + more` reverts "engine: unhealthy"; `answer` is withdrawn."""
    with ape.reverts("engine: unhealthy"):
        col.engine.withdraw(sub, asset.token, answer + more, sender=account)
    before = asset.token.balanceOf(account)
    col.engine.withdraw(sub, asset.token, answer, sender=account)
    assert asset.token.balanceOf(account) == before + answer


def make_debt(col, account, set_price):
    """A flat account with 1 WETH and about 111 USDC of settlement debt."""
    col.give(account, col.weth, WAD)
    buy(col, account, BTC, WAD // 10)
    set_price("BTC", 59_000)
    col.engine.close_position(account, 0, BTC, SHORT_LIMIT, sender=account)
    assert col.engine.account(account, 0).positions == 0
    assert col.engine.balance_of(account, 0, col.usdc) < 0


# --------------------------------------------------------------------------
#                               max_withdraw
# --------------------------------------------------------------------------


def test_max_withdraw__flat_without_debt__the_whole_balances(col, trader):
    col.give(trader, col.weth, 2 * WAD)
    col.give(trader, col.wbtc, col.wbtc.units("0.5"))
    col.give_usdc(trader, 10 * USDC)

    assert col.lens.max_withdraw(trader, 0, col.weth.token) == 2 * WAD
    assert col.lens.max_withdraw(trader, 0, col.wbtc.token) == col.wbtc.units("0.5")
    assert col.lens.max_withdraw(trader, 0, col.usdc) == 10 * USDC  # collateral, no positions: unchecked
    assert col.lens.max_withdraw(trader, 1, col.weth.token) == 0  # another sub-account
    assert col.lens.max_withdraw(trader, 0, col.susd.token) == 0  # not held

    col.engine.withdraw(0, col.usdc, 10 * USDC, sender=trader)
    col.engine.withdraw(0, col.weth.token, 2 * WAD, sender=trader)
    assert col.lens.max_withdraw(trader, 0, col.weth.token) == 0


def test_max_withdraw__flat_with_debt__keeps_the_debt_backed(col, trader, set_price):
    make_debt(col, trader, set_price)
    answer = col.lens.max_withdraw(trader, 0, col.weth.token)

    assert 0 < answer < WAD
    assert answer == expected_collateral_max(col, trader, col.weth)
    assert col.lens.max_withdraw(trader, 0, col.usdc) == 0  # a debt: no settlement balance
    # one WETH wei is worth 2,400 wei of value_init: two more are above the slack
    assert_boundary(col, trader, col.weth, answer, 2)
    assert col.lens.max_withdraw(trader, 0, col.weth.token) <= 1
    assert col.engine.account(trader, 0).equity_init >= 0


def test_max_withdraw__with_positions_and_transfer_margin(col, trader, other_trader):
    col.give(trader, col.weth, 2 * WAD)
    col.give(trader, col.wbtc, col.wbtc.units("0.1"))
    hedged_buy(col, trader, other_trader, WAD // 4)  # 15,000 notional, IM 1,500
    set_margin(col, WAD // 2, WAD // 5)  # transfer margin 3,000 binds

    answer = col.lens.max_withdraw(trader, 0, col.wbtc.token)
    assert answer == col.wbtc.units("0.1")  # the WETH alone covers 3,000
    col.engine.withdraw(0, col.wbtc.token, answer, sender=trader)

    answer = col.lens.max_withdraw(trader, 0, col.weth.token)
    assert 0 < answer < 2 * WAD
    assert answer == expected_collateral_max(col, trader, col.weth)
    assert_boundary(col, trader, col.weth, answer, 2)
    state = col.engine.account(trader, 0)
    assert 0 <= state.equity_init - 3_000 * WAD < 5_000


def test_max_withdraw__wbtc_with_positions__one_unit_more_reverts(col, trader, other_trader):
    col.give(trader, col.wbtc, col.wbtc.units("0.2"))  # 12,000 USD, value_init 9,000
    hedged_buy(col, trader, other_trader, WAD // 2)  # 30,000 notional, IM 3,000

    answer = col.lens.max_withdraw(trader, 0, col.wbtc.token)
    assert 0 < answer < col.wbtc.units("0.2")
    assert answer == expected_collateral_max(col, trader, col.wbtc)
    assert_boundary(col, trader, col.wbtc, answer, 1)


def test_max_withdraw__settlement_next_to_collateral_with_positions(col, trader, other_trader):
    col.give(trader, col.weth, WAD)
    col.give_usdc(trader, 1_000 * USDC)
    hedged_buy(col, trader, other_trader, WAD // 4)  # IM 1,500, fee 15
    set_margin(col, 0, WAD // 5)  # required 3,000 of E_init 985 + 2,400

    answer = col.lens.max_withdraw(trader, 0, col.usdc)
    state = col.engine.account(trader, 0)
    assert answer == (state.equity_init - 3_000 * WAD) // col.scale
    assert 0 < answer < col.engine.balance_of(trader, 0, col.usdc)
    with ape.reverts("engine: unhealthy"):
        col.engine.withdraw(0, col.usdc, answer + 1, sender=trader)
    col.engine.withdraw(0, col.usdc, answer, sender=trader)


def test_max_withdraw__vault_share(col, trader, other_trader, chain, set_price):
    col.give(trader, col.susd, col.susd.units("10000"))
    # a donation raises the live rate; the bounded rate follows at g per second
    col.susd.underlying.mint(col.susd.token, col.susd.units("500"), sender=trader)
    chain.pending_timestamp += 86_400
    col.susd.feed.set_answer(10**8, sender=col.admin)  # keep the feeds fresh
    set_price("BTC", 60_000)
    set_price("ETH", 3_000)
    hedged_buy(col, trader, other_trader, WAD // 10)  # IM 600

    price, ok = col.manager.collateral_price(col.susd.token)
    assert ok and WAD < price < 105 * WAD // 100
    answer = col.lens.max_withdraw(trader, 0, col.susd.token)
    assert 0 < answer < col.engine.balance_of(trader, 0, col.susd.token)
    assert answer == expected_collateral_max(col, trader, col.susd)
    # each second the bounded rate rises by g: about 30 units' worth of
    # value_init more by the time a transaction runs (in the account's favour)
    assert_boundary(col, trader, col.susd, answer, 1_000)


def test_max_withdraw__invalid_price__zero(col, trader, set_price):
    make_debt(col, trader, set_price)
    col.give(trader, col.wbtc, col.wbtc.units("0.01"))
    assert col.lens.max_withdraw(trader, 0, col.weth.token) > 0

    col.set_price(col.wbtc, 0)  # another asset's price invalid: the account cannot be valued
    assert col.engine.account(trader, 0).prices_ok is False
    assert col.lens.max_withdraw(trader, 0, col.weth.token) == 0
    assert col.lens.max_withdraw(trader, 0, col.wbtc.token) == 0

    col.set_price(col.wbtc, 60_000)
    col.set_price(col.weth, 0)
    assert col.lens.max_withdraw(trader, 0, col.weth.token) == 0


def test_max_withdraw__flat_without_debt__invalid_price__still_the_balance(col, trader):
    col.give(trader, col.weth, WAD)
    col.set_price(col.weth, 0)
    assert col.lens.max_withdraw(trader, 0, col.weth.token) == WAD  # the engine does not value it
    col.engine.withdraw(0, col.weth.token, WAD, sender=trader)


def test_max_withdraw__unlisted_asset__zero(col, trader, other_trader):
    col.give(trader, col.weth, WAD)
    assert col.lens.max_withdraw(trader, 0, other_trader) == 0


# --------------------------------------------------------------------------
#                        collateral_of and snapshots
# --------------------------------------------------------------------------


def test_collateral_of__each_held_asset_valued_as_the_manager(col, trader):
    assert list(col.lens.collateral_of(trader, 0)) == []
    col.give(trader, col.weth, 3 * WAD // 2)
    col.give(trader, col.wbtc, col.wbtc.units("0.01234567"))
    col.give(trader, col.susd, col.susd.units("123.456789"))

    holdings = list(col.lens.collateral_of(trader, 0))
    assets = [col.weth, col.wbtc, col.susd]  # id order
    assert [h.asset for h in holdings] == [a.token.address for a in assets]
    for h, a in zip(holdings, assets):
        price, ok = col.manager.collateral_price(a.token)
        usd = h.balance * 10 ** (18 - a.decimals) * price // WAD
        assert h.balance == col.engine.balance_of(trader, 0, a.token)
        assert (h.price, h.price_ok) == (price, True)
        assert (h.value_init, h.value_maint) == (usd * a.w_init // WAD, usd * a.w_maint // WAD)
    assert holdings[0].value_init == 3_600 * WAD  # 1.5 WETH at 3,000, w_init 0.80
    vi, vm = col.value(trader)
    assert (sum(h.value_init for h in holdings), sum(h.value_maint for h in holdings)) == (vi, vm)


def test_collateral_of__invalid_price__zero_values(col, trader):
    col.give(trader, col.weth, WAD)
    col.give(trader, col.wbtc, col.wbtc.units("1"))
    col.set_price(col.wbtc, 0)

    weth, wbtc = col.lens.collateral_of(trader, 0)
    assert weth.price_ok and weth.value_maint == 2_550 * WAD
    assert wbtc.balance == col.wbtc.units("1")
    assert (wbtc.price, wbtc.price_ok, wbtc.value_init, wbtc.value_maint) == (0, False, 0, 0)
    # after withdrawing the WETH only the WBTC is listed
    col.engine.withdraw(0, col.weth.token, WAD, sender=trader)
    assert [h.asset for h in col.lens.collateral_of(trader, 0)] == [col.wbtc.token.address]


def test_account_snapshot__collateral_flag(col, trader, other_trader):
    col.give(trader, col.weth, WAD)
    col.give_usdc(other_trader, 10 * USDC)
    mine, theirs = col.lens.accounts([(trader, 0), (other_trader, 0)])
    assert mine.collateral is True
    assert theirs.collateral is False
    col.engine.withdraw(0, col.weth.token, WAD, sender=trader)
    assert col.lens.accounts([(trader, 0)])[0].collateral is False
