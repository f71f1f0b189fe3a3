"""An approved operator trades for an owner; it never moves the owner's
collateral, and a revoked or unapproved address cannot trade. Default
system, funding off.
"""

from __future__ import annotations

import ape
import pytest

WAD = 10**18
USDC = 10**6
BTC = 0
ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture(autouse=True)
def _funding_off(no_funding):
    pass


def test_operator__trades_for_owner__owner_keeps_custody_and_revokes(
    engine, usdc, trader, operator, attacker, fund, set_price, withdraw_all, assert_conserved
):
    fund(trader, 10_000 * USDC)
    with ape.reverts("engine: not authorized"):
        engine.modify_position(trader, 0, BTC, WAD, 2**255, sender=operator)

    receipt = engine.set_operator(operator, True, sender=trader)
    assert receipt.events.filter(engine.OperatorSet) == [
        engine.OperatorSet(owner=trader, operator=operator, approved=True)
    ]
    assert engine.operators(trader, operator) is True
    with ape.reverts("engine: zero address"):
        engine.set_operator(ZERO, True, sender=trader)

    # The operator opens 1 BTC long on the trader's account; the fee is the trader's.
    operator_tokens = usdc.balanceOf(operator)
    receipt = engine.modify_position(trader, 0, BTC, WAD, 2**255, sender=operator)
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=trader,
            sub=0,
            market=BTC,
            size_delta=WAD,
            size=WAD,
            entry_price=60_000 * WAD,
            price=60_000 * WAD,
            fee=60 * USDC,
            realized_pnl=0,
            funding_paid=0,
        )
    ]
    assert engine.balance_of(trader, 0, usdc) == 9_940 * USDC
    assert engine.position(trader, 0, BTC).size == WAD
    assert engine.position(operator, 0, BTC).size == 0
    assert engine.balance_of(operator, 0, usdc) == 0

    # An unapproved address can neither trade nor close for the trader.
    with ape.reverts("engine: not authorized"):
        engine.modify_position(trader, 0, BTC, WAD, 2**255, sender=attacker)
    with ape.reverts("engine: not authorized"):
        engine.close_position(trader, 0, BTC, 0, sender=attacker)
    # The operator cannot move the trader's collateral: withdrawals and
    # transfers only ever act on the caller's own accounts.
    with ape.reverts("engine: insufficient balance"):
        engine.withdraw(0, usdc, 1, sender=operator)
    with ape.reverts("engine: insufficient balance"):
        engine.transfer_collateral(0, 1, usdc, 1, sender=operator)
    assert engine.balance_of(trader, 0, usdc) == 9_940 * USDC

    # At $61,000 the operator closes for the trader: +1,000, fee 61.
    set_price("BTC", 61_000)
    engine.close_position(trader, 0, BTC, 0, sender=operator)
    assert engine.balance_of(trader, 0, usdc) == 10_879 * USDC
    assert usdc.balanceOf(operator) == operator_tokens

    # Revoked, the operator is refused.
    receipt = engine.set_operator(operator, False, sender=trader)
    assert receipt.events.filter(engine.OperatorSet) == [
        engine.OperatorSet(owner=trader, operator=operator, approved=False)
    ]
    with ape.reverts("engine: not authorized"):
        engine.modify_position(trader, 0, BTC, WAD, 2**255, sender=operator)

    before = usdc.balanceOf(trader)
    assert withdraw_all(trader) == 10_879 * USDC
    assert usdc.balanceOf(trader) - before == 10_879 * USDC
    # 1,000,000 + fees 60 + 61 - the trader's 1,000 profit.
    assert engine.vault_assets() == 999_121 * USDC
    assert_conserved((trader, 0), (operator, 0), (attacker, 0))
