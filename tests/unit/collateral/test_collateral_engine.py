"""Multi-collateral accounts through the engine (docs/collateral.md 4-6):
haircut-weighted value in the margin math, settlement debt, withdrawals
checked against it, collateral liquidation with its caps and rounding, bad
debt, and the ERC-4626 rate bound. Expected amounts come from the reference
model's formulas (`margin_engine.model`).
"""

from __future__ import annotations

import ape
import pytest

from margin_engine import model

from .conftest import MAX_UINT, WAD

BTC, ETH = 0, 1
USDC = 10**6
SHORT_LIMIT = 0
LONG_LIMIT = 2**255


@pytest.fixture(scope="module", autouse=True)
def _resolve(col, trader, other_trader, liquidator, attacker, chain):
    """Resolve the module fixtures before the first test (Ape isolation)."""


def buy(col, account, market, size, sub=0):
    limit = LONG_LIMIT if size > 0 else SHORT_LIMIT
    return col.engine.modify_position(account, sub, market, size, limit, sender=account)


def fund_keeper(col, keeper, amount=100_000 * USDC):
    col.give_usdc(keeper, amount)


# --------------------------------------------------------------------------
#                                 Valuation
# --------------------------------------------------------------------------


def test_deposit__credits_the_ledger_and_values_with_weights(col, trader):
    receipt_amount = 2 * WAD
    col.give(trader, col.weth, receipt_amount)

    assert col.engine.balance_of(trader, 0, col.weth.token) == receipt_amount
    assert col.manager.balance_of(trader, 0, col.weth.token) == receipt_amount
    assert col.manager.total_deposits(col.manager.asset_id(col.weth.token)) == receipt_amount
    assert col.weth.token.balanceOf(col.engine) == receipt_amount
    state = col.engine.account(trader, 0)
    # 2 WETH at 3,000: 6,000 USD, maintenance weight 0.85, initial 0.80
    assert state.equity_maint == 5_100 * WAD
    assert state.equity_init == 4_800 * WAD
    assert (state.im_required, state.mm_required, state.status, state.prices_ok) == (0, 0, 0, True)


def test_value__rounds_each_asset_down(col, trader):
    col.give(trader, col.wbtc, 12_345_679)  # 0.12345679 WBTC (8 decimals)
    col.give(trader, col.weth, 10**18 // 3)
    vi, vm = col.value(trader)
    balances = {"wbtc": 12_345_679, "weth": 10**18 // 3}
    assets = {
        "wbtc": model.CollateralAsset(decimals=8, price=60_000 * WAD, w_init=col.wbtc.w_init, w_maint=col.wbtc.w_maint, discount=0, cap=1),
        "weth": model.CollateralAsset(decimals=18, price=3_000 * WAD, w_init=col.weth.w_init, w_maint=col.weth.w_maint, discount=0, cap=1),
    }
    assert (vi, vm) == model.collateral_values(balances, assets, 0)
    assert col.engine.account(trader, 0).equity_maint == vm


def test_collateral_alone_backs_a_position_and_the_fee_becomes_debt(col, trader):
    col.give(trader, col.weth, WAD)  # initial value 2,400 USD
    buy(col, trader, BTC, WAD // 4)  # 15,000 notional: IM 1,500, fee 15 USDC

    assert col.engine.balance_of(trader, 0, col.usdc) == -15 * USDC
    state = col.engine.account(trader, 0)
    assert state.status == 0
    # maintenance: 2,550 - 15 of debt, less the funding owed since the trade
    assert 2_534 * WAD < state.equity_maint <= 2_535 * WAD
    # initial: the haircut gap 2,550 - 2,400 less (no positive PnL here)
    assert state.equity_init == state.equity_maint - 150 * WAD
    # more risk than the initial weight allows: IM 2,700 > 2,379
    with ape.reverts("engine: unhealthy"):
        buy(col, trader, BTC, WAD // 5)


def test_invalid_collateral_price__views_leave_it_out_and_actions_revert(col, trader, chain):
    col.give(trader, col.weth, WAD)
    buy(col, trader, BTC, WAD // 10)
    col.weth.feed.set_round(3_000 * 10**8, chain.pending_timestamp - 7_200, sender=col.admin)

    state = col.engine.account(trader, 0)
    assert state.prices_ok is False
    # the WETH is left out: the settlement debt (the fee) and the PnL only
    upnl = col.engine.position(trader, 0, BTC).unrealized_pnl
    assert state.equity_maint == col.engine.balance_of(trader, 0, col.usdc) * col.scale + upnl < 0
    with ape.reverts("oracle: stale"):
        col.engine.withdraw(0, col.weth.token, 1, sender=trader)
    with ape.reverts("oracle: stale"):
        buy(col, trader, BTC, WAD // 100)


# --------------------------------------------------------------------------
#                           Withdrawals and debt
# --------------------------------------------------------------------------


def test_withdraw_collateral__with_positions__must_stay_healthy(col, trader):
    col.give(trader, col.weth, 2 * WAD)
    buy(col, trader, BTC, WAD // 4)  # IM 1,500 (transfer margin 0 by default)

    with ape.reverts("engine: unhealthy"):
        col.engine.withdraw(0, col.weth.token, 3 * WAD // 2, sender=trader)
    col.engine.withdraw(0, col.weth.token, WAD // 2, sender=trader)

    assert col.weth.token.balanceOf(trader) == WAD // 2
    assert col.engine.balance_of(trader, 0, col.weth.token) == 3 * WAD // 2


def test_withdraw_collateral__more_than_every_account_holds__reverts_insufficient_balance(col, trader):
    # found by the stateful fuzzer: the ledger total used to be reduced before
    # the balance was checked, so this reverted with a bare underflow
    col.give(trader, col.weth, WAD)
    with ape.reverts("collateral: insufficient balance"):
        col.engine.withdraw(0, col.weth.token, WAD + 1, sender=trader)
    assert col.manager.total_deposits(col.manager.asset_id(col.weth.token)) == WAD


def test_withdraw_settlement__never_creates_debt(col, trader):
    col.give(trader, col.weth, WAD)
    col.give_usdc(trader, 10 * USDC)
    with ape.reverts("engine: insufficient balance"):
        col.engine.withdraw(0, col.usdc, 10 * USDC + 1, sender=trader)
    with ape.reverts("engine: insufficient balance"):
        col.engine.transfer_collateral(0, 1, col.usdc, 10 * USDC + 1, sender=trader)


def test_flat_account_with_debt__keeps_it_and_is_checked_until_repaid(col, trader, set_price):
    col.give(trader, col.weth, WAD)
    buy(col, trader, BTC, WAD // 10)  # 6,000 notional, fee 6
    set_price("BTC", 59_000)
    col.engine.close_position(trader, 0, BTC, SHORT_LIMIT, sender=trader)  # loss 100, fee 5.9

    balance = col.engine.balance_of(trader, 0, col.usdc)
    assert -112 * USDC < balance < -111 * USDC  # fees, the loss and funding: a debt, not bad debt
    assert col.engine.account(trader, 0).positions == 0
    # the WETH backs the debt: it cannot all leave
    with ape.reverts("engine: unhealthy"):
        col.engine.withdraw(0, col.weth.token, WAD, sender=trader)
    with ape.reverts("engine: unhealthy"):
        col.engine.transfer_collateral(0, 1, col.weth.token, WAD, sender=trader)
    # repaying the debt frees it
    col.give_usdc(trader, -balance)
    assert col.engine.balance_of(trader, 0, col.usdc) == 0
    col.engine.withdraw(0, col.weth.token, WAD, sender=trader)
    assert col.weth.token.balanceOf(trader) == WAD
    assert col.manager.holdings(trader, 0) == 0


def test_transfer_collateral__moves_between_sub_accounts(col, trader):
    col.give(trader, col.wbtc, 10**8)
    receipt = col.engine.transfer_collateral(0, 3, col.wbtc.token, 4 * 10**7, sender=trader)

    assert receipt.events.filter(col.engine.CollateralTransferred) == [
        col.engine.CollateralTransferred(owner=trader, from_sub=0, to_sub=3, asset=col.wbtc.token, amount=4 * 10**7)
    ]
    assert col.engine.balance_of(trader, 0, col.wbtc.token) == 6 * 10**7
    assert col.engine.balance_of(trader, 3, col.wbtc.token) == 4 * 10**7
    # the ledger total is unchanged; each sub-account values only its own
    assert col.manager.total_deposits(col.manager.asset_id(col.wbtc.token)) == 10**8
    assert col.engine.account(trader, 3).equity_maint == 4 * 10**7 * 10**10 * 60_000 * 80 // 100


# --------------------------------------------------------------------------
#                           Collateral liquidation
# --------------------------------------------------------------------------


def _flat_with_debt(col, trader, set_price, loss_price=55_000):
    """Trader: 1 WETH, a BTC long closed at a loss: a flat account with debt."""
    col.give(trader, col.weth, WAD)
    buy(col, trader, BTC, WAD // 5)  # 12,000 notional
    set_price("BTC", loss_price)
    col.engine.close_position(trader, 0, BTC, SHORT_LIMIT, sender=trader)
    set_price("BTC", 60_000)
    return -col.engine.balance_of(trader, 0, col.usdc)


def test_liquidate_collateral__flat_account__repays_the_debt_at_the_discount(col, trader, liquidator, set_price):
    debt = _flat_with_debt(col, trader, set_price)  # about 1,000 + fees
    fund_keeper(col, liquidator)
    price = 3_000 * WAD
    expected_seized, expected_repaid = model.seize_amounts(
        MAX_UINT, debt, None, WAD, price, 1, col.weth.discount, col.weth.w_maint, col.scale
    )
    assert expected_repaid == debt

    receipt = col.engine.liquidate_collateral(trader, 0, col.weth.token, MAX_UINT, sender=liquidator)

    assert receipt.events.filter(col.manager.CollateralLiquidated) == [
        col.manager.CollateralLiquidated(
            owner=trader, sub=0, asset=col.weth.token, liquidator=liquidator,
            seized=expected_seized, repaid=expected_repaid,
        )
    ]  # fmt: skip
    assert col.engine.balance_of(trader, 0, col.usdc) == 0
    assert col.engine.balance_of(trader, 0, col.weth.token) == WAD - expected_seized
    assert col.engine.balance_of(liquidator, 0, col.usdc) == 100_000 * USDC - debt
    assert col.engine.balance_of(liquidator, 0, col.weth.token) == expected_seized
    # the liquidator's gain is the discount: seized value * (1 - d) <= repaid
    assert expected_seized * price // WAD * (WAD - col.weth.discount) // WAD <= debt * col.scale
    # and it can take the asset home; no token moved inside the liquidation
    assert not receipt.events.filter(col.weth.token.Transfer)
    col.engine.withdraw(0, col.weth.token, expected_seized, sender=liquidator)
    assert col.weth.token.balanceOf(liquidator) == expected_seized


def test_liquidate_collateral__capped_by_max_repay(col, trader, liquidator, set_price):
    debt = _flat_with_debt(col, trader, set_price)
    fund_keeper(col, liquidator)
    col.engine.liquidate_collateral(trader, 0, col.weth.token, 100 * USDC, sender=liquidator)
    assert col.engine.balance_of(trader, 0, col.usdc) == -(debt - 100 * USDC)


def test_liquidate_collateral__more_debt_than_collateral__rest_is_bad_debt(col, trader, liquidator, set_price):
    col.give(trader, col.wbtc, 10**6)  # 0.01 WBTC: 600 USD, maintenance 480
    buy(col, trader, ETH, WAD)  # 3,000 notional, IM 300 <= 450
    set_price("ETH", 2_600)  # loss 400: equity about 480 - 403 > MM 130? no: liquidatable soon
    set_price("ETH", 2_400)
    state = col.engine.account(trader, 0)
    assert state.status >= 2
    col.engine.liquidate(trader, 0, ETH, MAX_UINT, sender=liquidator)
    assert col.engine.account(trader, 0).positions == 0
    debt = -col.engine.balance_of(trader, 0, col.usdc)
    assert debt * col.scale > 10**6 * 10**10 * 60_000  # more than the collateral is worth
    fund_keeper(col, liquidator)
    insurance = col.engine.insurance_fund()

    receipt = col.engine.liquidate_collateral(trader, 0, col.wbtc.token, MAX_UINT, sender=liquidator)

    event = receipt.events.filter(col.manager.CollateralLiquidated)[0]
    seized, repaid = event.seized, event.repaid
    assert seized == 10**6  # all of it
    _seized, expected_repaid = model.seize_amounts(
        MAX_UINT, debt, None, 10**6, 60_000 * WAD, 10**10, col.wbtc.discount, col.wbtc.w_maint, col.scale
    )
    assert repaid == expected_repaid
    left = debt - repaid
    bad = receipt.events.filter(col.engine.BadDebt)
    assert len(bad) == 1 and bad[0].amount == left
    assert bad[0].insurance_paid == min(insurance, left)
    assert col.engine.balance_of(trader, 0, col.usdc) == 0
    assert col.manager.holdings(trader, 0) == 0


def test_liquidate_collateral__liquidatable_account__repays_only_what_is_needed(
    col, trader, other_trader, liquidator, set_price
):
    col.give(trader, col.wbtc, 10**8)  # 1 WBTC: 60,000 USD, initial 45,000, maintenance 48,000
    col.give_usdc(other_trader, 1_000_000 * USDC)
    # an ETH long closed at a loss leaves a debt of 10,050; an equal short
    # by another trader keeps the market balanced (no funding accrues)
    buy(col, other_trader, ETH, -10 * WAD)
    buy(col, trader, ETH, 10 * WAD)
    set_price("ETH", 2_000)
    col.engine.close_position(trader, 0, ETH, SHORT_LIMIT, sender=trader)
    buy(col, other_trader, ETH, 5 * WAD)
    buy(col, trader, ETH, 5 * WAD)  # 10,000 notional: MM 500
    assert col.engine.balance_of(trader, 0, col.usdc) == -10_060 * USDC
    col.set_price(col.wbtc, 13_000)  # maintenance value 10,400: equity 340 < MM 500
    state = col.engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (340 * WAD, 500 * WAD, 2)
    buffer = col.engine.liquidation_params().buffer
    deficit = model.mul_div_up(state.mm_required, WAD + buffer, WAD) - state.equity_maint
    fund_keeper(col, liquidator)
    seized, repaid = model.seize_amounts(
        MAX_UINT, 10_060 * USDC, deficit, 10**8, 13_000 * WAD, 10**10, col.wbtc.discount, col.wbtc.w_maint, col.scale
    )
    # need = 210 * 0.95 / 0.15 = 1,330 USDC: far below the debt
    assert repaid == 1_330 * USDC

    col.engine.liquidate_collateral(trader, 0, col.wbtc.token, MAX_UINT, sender=liquidator)

    after = col.engine.account(trader, 0)
    assert col.engine.balance_of(trader, 0, col.wbtc.token) == 10**8 - seized
    assert col.engine.balance_of(trader, 0, col.usdc) == -10_060 * USDC + repaid
    # restored to the target, above it only by rounding in the account's
    # favour: the need up by < 1 USDC unit (1e12 wei * 0.15 / 0.95) and the
    # seized amount down by < 1 WBTC unit (kept: 1e10 * 13,000 * 0.8 wei)
    target = model.mul_div_up(after.mm_required, WAD + buffer, WAD)
    assert target <= after.equity_maint < target + 10**12 * 15 // 95 + 10**10 * 13_000 * 8 // 10 + 1
    assert after.status == 1
    # a second call finds nothing to do
    with ape.reverts("collateral: not liquidatable"):
        col.engine.liquidate_collateral(trader, 0, col.wbtc.token, MAX_UINT, sender=liquidator)


@pytest.mark.parametrize(
    "case, reason",
    [
        ("zero", "collateral: zero amount"),
        ("no_debt", "collateral: no debt"),
        ("healthy", "collateral: not liquidatable"),
        ("unknown", "collateral: unknown asset"),
        ("not_held", "collateral: nothing to seize"),
        ("keeper_poor", "engine: liquidator balance"),
        ("keeper_positions", "engine: liquidator balance"),
    ],
)
def test_liquidate_collateral__reverts(col, trader, liquidator, set_price, case, reason):
    if case == "no_debt":
        col.give(trader, col.weth, WAD)
    elif case == "healthy":
        col.give(trader, col.weth, WAD)
        buy(col, trader, BTC, WAD // 100)  # debt: the fee
    else:
        _flat_with_debt(col, trader, set_price)
    if case != "keeper_poor":
        fund_keeper(col, liquidator)
    if case == "keeper_positions":
        buy(col, liquidator, ETH, WAD // 100)
    asset = col.weth.token
    if case == "unknown":
        asset = col.usdc
    elif case == "not_held":
        asset = col.wbtc.token
    before = (col.engine.balance_of(trader, 0, col.usdc), col.engine.balance_of(trader, 0, col.weth.token))
    with ape.reverts(reason):
        col.engine.liquidate_collateral(trader, 0, asset, 0 if case == "zero" else MAX_UINT, sender=liquidator)
    assert (col.engine.balance_of(trader, 0, col.usdc), col.engine.balance_of(trader, 0, col.weth.token)) == before


def test_settle_collateral__only_the_manager(col, attacker):
    with ape.reverts("engine: not collateral"):
        col.engine.settle_collateral(attacker, 0, 10**12, True, sender=attacker)
    with ape.reverts("collateral: not engine"):
        col.manager.liquidate(attacker, attacker, 0, col.weth.token, 1, sender=attacker)
    with ape.reverts("collateral: not engine"):
        col.manager.credit(attacker, 0, col.weth.token, 10**30, True, sender=attacker)
    with ape.reverts("collateral: not engine"):
        col.manager.debit(attacker, 0, col.weth.token, 0, True, sender=attacker)


# --------------------------------------------------------------------------
#                            ERC-4626 collateral
# --------------------------------------------------------------------------


def test_vault_share__donation_reaches_the_value_only_at_the_bounded_rate(col, trader, attacker, chain):
    share, dollar = col.susd.token, col.susd.underlying
    col.give(trader, col.susd, 1_000 * USDC)
    rate_word = col.manager.asset_words(share)[5]
    last_rate, last_time = rate_word & (2**128 - 1), rate_word >> 128
    assert last_rate == WAD  # 1 dollar per share, stored at the deposit
    before = col.engine.account(trader, 0).equity_maint

    # a donation doubles the live rate
    dollar.mint(attacker, 1_000 * USDC, sender=attacker)
    dollar.transfer(share, 1_000 * USDC, sender=attacker)
    assert share.convertToAssets(USDC) > 19 * USDC // 10
    chain.pending_timestamp += 3_600
    col.set_price(col.susd, 1)  # a fresh round

    growth = col.manager.collateral(share).max_rate_growth
    now = chain.blocks.head.timestamp
    bound = last_rate + last_rate * growth * (now - last_time) // WAD
    assert col.manager.collateral_price(share) == (bound, True)
    after = col.engine.account(trader, 0).equity_maint
    assert after - before == 1_000 * USDC * 10**12 * bound // WAD * 95 // 100 - 1_000 * USDC * 10**12 * 95 // 100
    assert after - before < 2 * WAD  # an hour of 10 %/year on 950 USD: cents, not 950 USD

    # a keeper's update stores the bounded rate at its block, never the live one
    receipt = col.manager.update_rate(share, sender=attacker)
    then = chain.blocks[receipt.block_number].timestamp
    stored = last_rate + last_rate * growth * (then - last_time) // WAD
    assert col.manager.asset_words(share)[5] == stored | (then << 128)
    assert receipt.events.filter(col.manager.RateUpdated) == [
        col.manager.RateUpdated(asset=share, live_rate=share.convertToAssets(USDC) * 10**12, rate=stored)
    ]


def test_vault_share__falling_rate_applies_at_once(col, trader):
    share = col.susd.token
    col.give(trader, col.susd, 1_000 * USDC)
    share.set_rate_override(USDC * 8 // 10, sender=col.admin)  # 0.8 dollar per share

    assert col.manager.collateral_price(share) == (8 * WAD // 10, True)
    assert col.engine.account(trader, 0).equity_maint == 1_000 * WAD * 8 // 10 * 95 // 100


def test_update_rate__plain_token__reverts(col, attacker):
    with ape.reverts("collateral: not a vault"):
        col.manager.update_rate(col.weth.token, sender=attacker)
