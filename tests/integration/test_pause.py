"""A guardian pauses during a crash: new risk stops, exits keep working.

While paused: opening, increasing and flipping revert "engine: paused";
deposits, reductions, closes, withdrawals of free collateral, liquidations and
LP withdrawals all run, to the unit. Default system, funding off.
"""

from __future__ import annotations

import ape
import pytest

WAD = 10**18
USDC = 10**6
BTC, ETH = 0, 1
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = 0, 1, 2, 3
MAX = 2**256 - 1


@pytest.fixture(autouse=True)
def _funding_off(no_funding):
    pass


def test_pause_during_crash__exits_deposits_and_liquidations_run__new_risk_reverts(
    configurator,
    engine,
    vault,
    usdc,
    guardian,
    lp,
    trader,
    other_trader,
    liquidator,
    attacker,
    fund,
    open_position,
    set_price,
    withdraw_all,
    assert_conserved,
):
    # trader: 1 BTC long on 10,000 (fee 60); other_trader: 0.5 BTC long (fee 30).
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    fund(other_trader, 10_000 * USDC)
    open_position(other_trader, BTC, WAD // 2)

    receipt = configurator.pause(sender=guardian)
    assert receipt.events.filter(configurator.Paused) == [configurator.Paused(account=guardian)]
    assert engine.paused()

    # Crash to $52,500: trader equity 9,940 - 7,500 = 2,440 < MM 2,625;
    # other_trader 9,970 - 3,750 = 6,220 >= IM 2,625.
    set_price("BTC", 52_500)
    assert engine.status(trader, 0) == LIQUIDATABLE
    assert engine.status(other_trader, 0) == HEALTHY

    # New risk reverts: open, increase, flip.
    fund(attacker, 10_000 * USDC)
    with ape.reverts("engine: paused"):
        open_position(attacker, ETH, WAD)
    with ape.reverts("engine: paused"):
        open_position(other_trader, BTC, WAD // 10)
    with ape.reverts("engine: paused"):
        open_position(other_trader, BTC, -WAD)  # 0.5 long -> 0.5 short

    # Deposit, reduce, withdraw free collateral.
    fund(other_trader, 1_000 * USDC)
    receipt = open_position(other_trader, BTC, -WAD // 5)
    # 0.2 x (52,500 - 60,000) = -1,500 realised; fee 0.2 x 52,500 x 0.1 % = 10.5.
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=other_trader,
            sub=0,
            market=BTC,
            size_delta=-WAD // 5,
            size=3 * WAD // 10,
            entry_price=60_000 * WAD,
            price=52_500 * WAD,
            fee=10_500_000,
            realized_pnl=-1_500 * USDC,
            funding_paid=0,
        )
    ]
    assert engine.balance_of(other_trader, 0, usdc) == 9_459_500_000  # 11,000 - 30 - 1,500 - 10.5
    # Equity 9,459.5 - 0.3 x 7,500 = 7,209.5; IM 0.3 x 52,500 x 10 % = 1,575.
    before = usdc.balanceOf(other_trader)
    engine.withdraw(0, usdc, 5_000 * USDC, sender=other_trader)
    assert usdc.balanceOf(other_trader) - before == 5_000 * USDC
    # 634.5 of free margin left: 1,000 more would leave it below IM.
    with ape.reverts("engine: unhealthy"):
        engine.withdraw(0, usdc, 1_000 * USDC, sender=other_trader)

    # The LP withdraws within the reserve: 50 % of the 1.3 BTC net long.
    # Vault 1,000,000 + 60 + 30 + 10.5 + 1,500 = 1,001,600.5; burns
    # ceil(100,000e6 x (1e18 + 10**6) / (1,001,600.5e6 + 1)) shares.
    assert vault.free_assets() == 1_001_600_500_000 - 34_125 * USDC
    before = usdc.balanceOf(lp)
    vault.withdraw(100_000 * USDC, lp, lp, sender=lp)
    assert usdc.balanceOf(lp) - before == 100_000 * USDC
    assert vault.balanceOf(lp) == 10**18 - 99_840_205_750_696_171
    assert engine.vault_assets() == 901_600_500_000

    # The liquidation runs while paused.
    receipt = engine.liquidate(trader, 0, BTC, MAX, sender=liquidator)
    # deficit = 2,625 x 1.1 - 2,440 (+ 3e12 + 8 wei); N = deficit / 0.035;
    # q = N / 52,500 rounded up; penalty 2 % of q x 52,500, reward half.
    q = 243_537_416_598_639_456
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=trader,
            sub=0,
            market=BTC,
            liquidator=liquidator,
            size_closed=q,
            price=52_500 * WAD,
            penalty=255_714_288,
            reward=127_857_144,
            insurance_share=127_857_144,
        )
    ]
    assert engine.status(trader, 0) == MARGIN_CALL

    # The trader deposits and closes the rest while paused.
    fund(trader, 2_000 * USDC)
    receipt = engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=trader,
            sub=0,
            market=BTC,
            size_delta=-(WAD - q),
            size=0,
            entry_price=0,
            price=52_500 * WAD,
            fee=39_714_286,
            realized_pnl=-5_673_469_376,
            funding_paid=0,
        )
    ]
    # 10,000 - 60 - 1,826.530625 (liquidated part) - 255.714288 + 2,000
    # - 5,673.469376 - 39.714286.
    assert withdraw_all(trader) == 4_144_571_425

    # other_trader closes too (0.3 x -7,500 realised, fee 15.75) and leaves.
    engine.close_position(other_trader, 0, BTC, 0, sender=other_trader)
    assert withdraw_all(other_trader) == 9_459_500_000 - 5_000 * USDC - 2_250 * USDC - 15_750_000

    # Unpaused, new risk runs again.
    configurator.unpause(sender=guardian)
    open_position(attacker, ETH, WAD)
    assert engine.position(attacker, 0, ETH).size == WAD

    assert engine.insurance_fund() == 127_857_144
    assert engine.balance_of(liquidator, 0, usdc) == 127_857_144
    assert_conserved((trader, 0), (other_trader, 0), (liquidator, 0), (attacker, 0))
