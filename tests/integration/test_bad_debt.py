"""A price gap past zero equity: the bankrupt account is liquidated, its bad
debt is paid by the insurance fund first and by the vault for the rest
(BadDebt logged), and the LPs' share price falls by exactly the uncovered part.

Default system, funding off. Both bad-debt flows hedge the vault with an
opposite position, so the vault's result is fees minus its bad-debt loss.
"""

from __future__ import annotations

import pytest

WAD = 10**18
USDC = 10**6
BTC = 0
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = 0, 1, 2, 3
MAX = 2**256 - 1


@pytest.fixture(autouse=True)
def _funding_off(no_funding):
    pass


@pytest.fixture
def fund_insurance(engine, usdc, admin):
    def fund_insurance(amount):
        usdc.mint(admin, amount, sender=admin)
        usdc.approve(engine, amount, sender=admin)
        return engine.fund_insurance(amount, sender=admin)

    return fund_insurance


@pytest.fixture
def gapped_long(engine, trader, other_trader, fund, open_position, set_price):
    """trader: 6,100 USDC, 1 BTC long at $60,000 (fee 60, equity 6,040 just
    above IM 6,000); other_trader: 10,000 USDC, 1 BTC short. Then BTC gaps to
    $50,000: the long's equity is 6,040 - 10,000 = -3,960."""

    def gap():
        fund(trader, 6_100 * USDC)
        open_position(trader, BTC, WAD)
        fund(other_trader, 10_000 * USDC)
        open_position(other_trader, BTC, -WAD)
        assert engine.status(trader, 0) == HEALTHY
        assets_before_gap = engine.vault_assets()
        set_price("BTC", 50_000)
        state = engine.account(trader, 0)
        assert (state.equity_maint, state.status) == (-3_960 * WAD, BANKRUPT)
        return assets_before_gap

    return gap


def test_gap_to_bad_debt__beyond_insurance_fund__insurance_then_vault_pay_share_price_drops_by_uncovered_part(
    engine,
    vault,
    usdc,
    lp,
    trader,
    other_trader,
    liquidator,
    fund_insurance,
    gapped_long,
    withdraw_all,
    assert_conserved,
):
    fund_insurance(1_000 * USDC)
    assert engine.insurance_fund() == 1_000 * USDC
    assets_before_gap = gapped_long()
    # 1,000,000 + two opening fees of 60.
    assert assets_before_gap == 1_000_120 * USDC
    # shares x (A + 1) / (supply + 10**6), rounded down.
    assert vault.convertToAssets(vault.balanceOf(lp)) == 1_000_119_999_999

    receipt = engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    # The whole position is closed; a bankrupt account pays no penalty (it
    # has no equity left), so the liquidator earns nothing here.
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=WAD,
            price=50_000 * WAD,
            penalty=0,
            reward=0,
            insurance_share=0,
        )
    ]
    # Debt 6,040 - 10,000 = -3,960: the fund's 1,000 first, the vault 2,960.
    assert receipt.events.filter(engine.BadDebt) == [
        engine.BadDebt(owner=trader, sub=0, amount=3_960 * USDC, insurance_paid=1_000 * USDC, vault_loss=2_960 * USDC)
    ]
    assert engine.balance_of(trader, 0, usdc) == 0
    assert engine.status(trader, 0) == HEALTHY
    assert engine.balance_of(liquidator, 0, usdc) == 0
    assert engine.insurance_fund() == 0
    # The vault took the long's 10,000 realised loss and paid 2,960 of debt.
    assert engine.vault_assets() == (1_000_120 + 10_000 - 2_960) * USDC

    # The short closes at $50,000 (+10,000, fee 50) and leaves.
    engine.close_position(other_trader, 0, BTC, 2**255, sender=other_trader)
    assert withdraw_all(other_trader) == 19_890 * USDC
    # Hedged, the vault would have ended at 1,000,120 + 50 in fees; it ends
    # exactly the uncovered 2,960 lower.
    assert engine.vault_assets() == assets_before_gap + 50 * USDC - 2_960 * USDC == 997_210 * USDC
    assert vault.totalAssets() == 997_210 * USDC
    assert vault.convertToAssets(vault.balanceOf(lp)) == 997_210 * USDC
    assert_conserved((trader, 0), (other_trader, 0), (liquidator, 0))


def test_gap_to_bad_debt__within_insurance_fund__insurance_pays_all_vault_keeps_fees(
    engine, vault, usdc, trader, other_trader, liquidator, fund_insurance, gapped_long, withdraw_all, assert_conserved
):
    fund_insurance(5_000 * USDC)
    assets_before_gap = gapped_long()

    receipt = engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    assert receipt.events.filter(engine.BadDebt) == [
        engine.BadDebt(owner=trader, sub=0, amount=3_960 * USDC, insurance_paid=3_960 * USDC, vault_loss=0)
    ]
    assert engine.insurance_fund() == 1_040 * USDC
    engine.close_position(other_trader, 0, BTC, 2**255, sender=other_trader)
    assert withdraw_all(other_trader) == 19_890 * USDC
    # No vault loss: 1,000,120 + 50 in fees.
    assert engine.vault_assets() == assets_before_gap + 50 * USDC == 1_000_170 * USDC
    assert_conserved((trader, 0), (other_trader, 0), (liquidator, 0))


def test_profit_beyond_vault_assets__winner_paid_what_the_vault_holds__others_stay_withdrawable(
    engine, usdc, trader, other_trader, fund, open_position, set_price, withdraw_all, assert_conserved
):
    # The vault holds 1,000,000 USDC. A 150 BTC long ($9M notional, 900,000
    # IM, fee 9,000) is within max_oi (1,000 BTC) and healthy.
    fund(trader, 1_000_000 * USDC)
    open_position(trader, BTC, 150 * WAD)
    fund(other_trader, 100_000 * USDC)
    assert engine.vault_assets() == 1_009_000 * USDC
    set_price("BTC", 70_000)
    # +1,500,000 USDC profit less a 10,500 fee: the vault owes 1,489,500 but
    # holds 1,009,000, so 480,500 is withheld from the winner and logged.
    receipt = engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert receipt.events.filter(engine.VaultShortfall) == [
        engine.VaultShortfall(owner=trader, sub=0, market=BTC, amount=480_500 * USDC)
    ]
    assert engine.vault_assets() == 0
    assert engine.balance_of(trader, 0, usdc) == (991_000 + 1_500_000 - 10_500 - 480_500) * USDC
    assert usdc.balanceOf(engine) == 2_100_000 * USDC
    assert_conserved((trader, 0), (other_trader, 0))
    # Both can take out everything credited to them.
    assert withdraw_all(trader) == 2_000_000 * USDC
    assert withdraw_all(other_trader) == 100_000 * USDC
    assert usdc.balanceOf(engine) == 0
