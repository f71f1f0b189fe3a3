"""Whole life of a market: LP capital, two traders, a margin call, a partial
then a full liquidation, the liquidator's reward, the insurance fund, and the
LP leaving with its capital plus the traders' losses and fees, to the unit.

Default system (6-decimal USDC, BTC $60,000, imr 10 %, mmr 5 %, fee 0.1 %,
liq_fee 2 %, buffer 10 %, liquidator share 50 %, min notional $10), funding
off (`no_funding`) so that no amount depends on block times.
"""

from __future__ import annotations

import ape
import pytest

WAD = 10**18
USDC = 10**6
BTC = 0
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = 0, 1, 2, 3
MAX = 2**256 - 1


@pytest.fixture(autouse=True)
def _funding_off(no_funding):
    pass


def test_lifecycle__margin_call_then_partial_and_full_liquidation__lp_redeems_capital_plus_losses_and_fees(
    engine,
    vault,
    usdc,
    lp,
    trader,
    other_trader,
    liquidator,
    fund,
    open_position,
    set_price,
    withdraw_all,
    assert_conserved,
):
    # The LP funded the vault with 1,000,000 USDC: shares = 1e12 * 10**6 / (0 + 1).
    assert vault.totalAssets() == 1_000_000 * USDC
    assert vault.balanceOf(lp) == 10**18

    # Two traders deposit 10,000 USDC each and take both sides of 1 BTC.
    fund(trader, 10_000 * USDC)
    fund(other_trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    open_position(other_trader, BTC, -WAD)
    # Fee: 60,000 x 0.1 % = 60 USDC each, to the vault.
    assert engine.balance_of(trader, 0, usdc) == 9_940 * USDC
    assert engine.balance_of(other_trader, 0, usdc) == 9_940 * USDC
    assert engine.vault_assets() == 1_000_120 * USDC

    # BTC $55,000: equity 9,940 - 5,000 = 4,940 < IM 5,500, >= MM 2,750.
    set_price("BTC", 55_000)
    state = engine.account(trader, 0)
    assert (state.equity_maint, state.im_required, state.mm_required, state.status) == (
        4_940 * WAD,
        5_500 * WAD,
        2_750 * WAD,
        MARGIN_CALL,
    )
    with ape.reverts("engine: not liquidatable"):
        engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    with ape.reverts("engine: unhealthy"):
        engine.withdraw(0, usdc, 1, sender=trader)
    with ape.reverts("engine: unhealthy"):
        open_position(trader, BTC, WAD // 100)

    # BTC $52,000: equity 1,940 < MM 2,600.
    set_price("BTC", 52_000)
    state = engine.account(trader, 0)
    assert (state.equity_maint, state.mm_required, state.status) == (1_940 * WAD, 2_600 * WAD, LIQUIDATABLE)

    # Partial liquidation: deficit = 2,600 x 1.1 - 1,940 USD (+ 3e12 + 8 wei),
    # N = deficit / (5 % x 1.1 - 2 %) = 26,285.714... USD, q = N / 52,000 (up).
    receipt = engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    q1 = 505_494_507_142_857_143
    # penalty = 2 % of q1 x 52,000 = 525.714288 USDC (up); reward half (down).
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=q1,
            price=52_000 * WAD,
            penalty=525_714_288,
            reward=262_857_144,
            insurance_share=262_857_144,
        )
    ]
    assert engine.position(trader, 0, BTC).size == WAD - q1
    # 9,940 - 4,043.956058 (q1 x 8,000 realised, floored) - 525.714288.
    assert engine.balance_of(trader, 0, usdc) == 5_370_329_654
    state = engine.account(trader, 0)
    # Equity 1,414.285711... restores more than MM x 1.1 = 1,414.285709...
    assert (state.equity_maint, state.mm_required, state.status) == (
        1_414_285_711_142_857_144_000,
        1_285_714_281_428_571_428_200,
        MARGIN_CALL,
    )

    # BTC $49,500: equity 178.02 > 0 but below 2 % of the notional, so the
    # next liquidation closes everything and the penalty is the whole equity
    # less an allowance for what the funding and PnL conversions may round away.
    set_price("BTC", 49_500)
    assert engine.status(trader, 0) == LIQUIDATABLE
    receipt = engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=WAD - q1,
            price=49_500 * WAD,
            penalty=178_021_977,
            reward=89_010_988,
            insurance_share=89_010_989,
        )
    ]
    assert receipt.events.filter(engine.BadDebt) == []
    # 5,370.329654 - 5,192.307675 (realised) - 178.021977 (penalty) = 0.000002.
    assert engine.balance_of(trader, 0, usdc) == 2
    assert engine.position(trader, 0, BTC).size == 0
    assert engine.status(trader, 0) == HEALTHY

    # The insurance fund grew by both insurance shares.
    assert engine.insurance_fund() == 262_857_144 + 89_010_989

    # The liquidator withdraws its rewards.
    before = usdc.balanceOf(liquidator)
    assert withdraw_all(liquidator) == 262_857_144 + 89_010_988
    assert usdc.balanceOf(liquidator) - before == 351_868_132

    # The short closes at $49,500: +10,500 USDC, fee 49.5 USDC.
    engine.close_position(other_trader, 0, BTC, 2**255, sender=other_trader)
    before = usdc.balanceOf(other_trader)
    assert withdraw_all(other_trader) == 20_390_500_000  # 9,940 + 10,500 - 49.5
    assert usdc.balanceOf(other_trader) - before == 20_390_500_000

    # Vault: 1,000,000 + fees (60 + 60 + 49.5) + the long's realised losses
    # (4,043.956058 + 5,192.307675) - the short's profit (10,500).
    expected_vault = 1_000_000 * USDC + 169_500_000 + 9_236_263_733 - 10_500 * USDC
    assert engine.vault_assets() == expected_vault == 998_905_763_733
    assert_conserved((trader, 0), (other_trader, 0), (liquidator, 0))

    # The LP redeems every share: 1e18 x (A + 1) / (1e18 + 10**6) rounds to A.
    before = usdc.balanceOf(lp)
    vault.redeem(10**18, lp, lp, sender=lp)
    assert usdc.balanceOf(lp) - before == 998_905_763_733
    assert vault.totalSupply() == 0
    assert engine.vault_assets() == 0
    # What is left in custody is the insurance fund and the long's 2 units.
    assert engine.insurance_fund() == 351_868_133
    assert usdc.balanceOf(engine) == engine.insurance_fund() + 2
    assert_conserved((trader, 0), (other_trader, 0), (liquidator, 0))
