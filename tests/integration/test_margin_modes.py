"""Cross and isolated sub-accounts of one owner.

An isolated sub-account risks only its own collateral: its bad debt never
touches the owner's other sub-accounts. A cross account nets its markets: the
profit of one backs the margin of another. Default system, funding off.
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


def _state(engine, owner, sub):
    s = engine.account(owner, sub)
    return (s.equity_maint, s.im_required, s.mm_required, s.status)


def test_isolated_sub_account__gap_to_bad_debt__other_sub_accounts_of_the_owner_untouched(
    engine, lens, usdc, trader, liquidator, fund, open_position, set_price, assert_conserved
):
    # Sub-account 0 (cross): 10 ETH long on 5,000 USDC (fee 30).
    fund(trader, 5_000 * USDC, sub=0)
    open_position(trader, ETH, 10 * WAD, sub=0)
    # Sub-account 1 (isolated): 1 BTC long on 6,100 USDC (fee 60).
    receipt = engine.set_margin_mode(1, True, sender=trader)
    assert receipt.events.filter(engine.MarginModeSet) == [engine.MarginModeSet(owner=trader, sub=1, isolated=True)]
    assert lens.margin_mode(trader, 1) is True
    assert lens.margin_mode(trader, 0) is False
    fund(trader, 6_100 * USDC, sub=1)
    open_position(trader, BTC, WAD, sub=1)
    # One market only in an isolated sub-account.
    with ape.reverts("engine: isolated"):
        open_position(trader, ETH, WAD, sub=1)
    # The mode cannot change with an open position.
    with ape.reverts("engine: open positions"):
        engine.set_margin_mode(1, False, sender=trader)

    # BTC gaps to $50,000: sub-account 1 is bankrupt (6,040 - 10,000).
    set_price("BTC", 50_000)
    assert _state(engine, trader, 1) == (-3_960 * WAD, 5_000 * WAD, 2_500 * WAD, BANKRUPT)
    # Sub-account 0 does not see it.
    assert _state(engine, trader, 0) == (4_970 * WAD, 3_000 * WAD, 1_500 * WAD, HEALTHY)
    with ape.reverts("engine: not liquidatable"):
        engine.liquidate(trader, 0, ETH, MAX, sender=liquidator)

    receipt = engine.liquidate(trader, 1, BTC, MAX, sender=liquidator)
    # The empty insurance fund pays nothing; the vault takes the 3,960.
    assert receipt.events.filter(engine.BadDebt) == [
        engine.BadDebt(owner=trader, sub=1, amount=3_960 * USDC, insurance_paid=0, vault_loss=3_960 * USDC)
    ]
    assert engine.balance_of(trader, 1, usdc) == 0
    # Sub-account 0: same balance, same position, same equity.
    assert engine.balance_of(trader, 0, usdc) == 4_970 * USDC
    assert engine.position(trader, 0, ETH).size == 10 * WAD
    assert _state(engine, trader, 0) == (4_970 * WAD, 3_000 * WAD, 1_500 * WAD, HEALTHY)
    # 1,000,000 + fees 30 + 60 + the long's 10,000 loss - 3,960 of bad debt.
    assert engine.vault_assets() == (1_000_000 + 90 + 10_000 - 3_960) * USDC
    assert_conserved((trader, 0), (trader, 1), (liquidator, 0))


def test_cross_account__profit_in_one_market__backs_margin_in_another(
    engine, usdc, other_trader, liquidator, fund, open_position, set_price, assert_conserved
):
    # Cross sub-account 0: 1 BTC long and 10 ETH short on 10,000 USDC
    # (fees 60 + 30; IM 6,000 + 3,000).
    fund(other_trader, 10_000 * USDC)
    open_position(other_trader, BTC, WAD)
    open_position(other_trader, ETH, -10 * WAD)
    assert _state(engine, other_trader, 0) == (9_910 * WAD, 9_000 * WAD, 4_500 * WAD, HEALTHY)
    # The same ETH short alone in an isolated sub-account on 3,100 USDC.
    engine.set_margin_mode(1, True, sender=other_trader)
    fund(other_trader, 3_100 * USDC, sub=1)
    open_position(other_trader, ETH, -10 * WAD, sub=1)
    assert _state(engine, other_trader, 1) == (3_070 * WAD, 3_000 * WAD, 1_500 * WAD, HEALTHY)

    # ETH +10 %: each short loses 3,000. Isolated: 70 of equity, liquidatable.
    # Cross: 6,910, the BTC margin keeps it above maintenance (4,650).
    set_price("ETH", 3_300)
    assert _state(engine, other_trader, 1) == (70 * WAD, 3_300 * WAD, 1_650 * WAD, LIQUIDATABLE)
    assert _state(engine, other_trader, 0) == (6_910 * WAD, 9_300 * WAD, 4_650 * WAD, MARGIN_CALL)
    with ape.reverts("engine: not liquidatable"):
        engine.liquidate(other_trader, 0, ETH, MAX, sender=liquidator)
    with ape.reverts("engine: unhealthy"):
        open_position(other_trader, ETH, -3 * WAD)

    # BTC +4,000: the profit restores the cross account and backs more ETH.
    set_price("BTC", 64_000)
    assert _state(engine, other_trader, 0) == (10_910 * WAD, 9_700 * WAD, 4_850 * WAD, HEALTHY)
    receipt = open_position(other_trader, ETH, -3 * WAD)
    # Short entry averaged down: (10 x 3,000 + 3 x 3,300) / 13 = 3,069.2307...
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=other_trader,
            sub=0,
            market=ETH,
            size_delta=-3 * WAD,
            size=-13 * WAD,
            entry_price=3_069_230_769_230_769_230_769,
            price=3_300 * WAD,
            fee=9_900_000,
            realized_pnl=0,
            funding_paid=0,
        )
    ]
    # 9,910 - 9.9 + 4,000 - 13 x (3,300 - 3,069.23...) = 10,900.1 less 3 wei
    # of entry rounding; IM 6,400 + 4,290.
    assert _state(engine, other_trader, 0) == (
        10_900_099_999_999_999_999_997,
        10_690 * WAD,
        5_345 * WAD,
        HEALTHY,
    )

    # The isolated short is liquidated in full; its penalty is its equity (70)
    # less an allowance for what the funding and PnL conversions may round away
    # (floor((70e18 - 2 x 10**12 - 2) / 10**12) = 69.999997).
    receipt = engine.liquidate(other_trader, 1, ETH, MAX, sender=liquidator)
    assert receipt.events.filter(engine.Liquidation) == [
        engine.Liquidation(
            owner=other_trader,
            sub=1,
            market=ETH,
            liquidator=liquidator,
            size_closed=10 * WAD,
            price=3_300 * WAD,
            penalty=69_999_997,
            reward=34_999_998,
            insurance_share=34_999_999,
        )
    ]
    assert engine.balance_of(other_trader, 1, usdc) == 3
    assert engine.balance_of(other_trader, 0, usdc) == 9_900_100_000
    assert engine.insurance_fund() == 34_999_999
    # 1,000,000 + fees 60 + 30 + 30 + 9.9 + the isolated short's 3,000 loss.
    assert engine.vault_assets() == 1_003_129_900_000
    assert_conserved((other_trader, 0), (other_trader, 1), (liquidator, 0))
