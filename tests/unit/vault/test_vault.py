"""Unit tests of `LiquidityVault` (ERC-4626 over the engine's ledger).

Conversions use snekmate's virtual offset (`DECIMALS_OFFSET = 6`):

    shares = assets * (supply + 10**6) / (totalAssets + 1)
    assets = shares * (totalAssets + 1) / (supply + 10**6)

rounded down for deposit / redeem and up for mint / withdraw.
`totalAssets()` is the engine's `vault_assets()` ledger entry.

Default system: `lp` deposited 1,000,000 USDC into the empty vault and holds
1,000,000 x 10**6 x 10**6 / 1 = 10**18 shares (12 decimals).
"""

from __future__ import annotations

import ape
import pytest

WAD = 10**18
USDC = 10**6
BTC = 0
FEED = 10**8
VIRTUAL_SHARES = 10**6
LP_SHARES = 10**18
MAX_UINT = 2**256 - 1


# --------------------------------------------------------------------------
#                                 Helpers
# --------------------------------------------------------------------------


def to_shares(assets, supply, total, up=False):
    num, den = assets * (supply + VIRTUAL_SHARES), total + 1
    return -(-num // den) if up else num // den


def to_assets(shares, supply, total, up=False):
    num, den = shares * (total + 1), supply + VIRTUAL_SHARES
    return -(-num // den) if up else num // den


def totals(vault):
    return vault.totalSupply(), vault.totalAssets()


@pytest.fixture
def give(usdc):
    """give(account, amount, spender): mint tokens and approve `spender`."""

    def give(account, amount, spender):
        usdc.mint(account, amount, sender=account)
        usdc.approve(spender, amount, sender=account)

    return give


@pytest.fixture
def no_funding(configurator, lens, risk_manager):
    p = lens.market_params(BTC)
    configurator.set_market_params(
        BTC, (p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, 0), sender=risk_manager
    )


@pytest.fixture
def fees_paid(no_funding, trader, fund, open_position, engine):
    """A trader opens and closes 1 BTC at $60,000: the vault earns 120 USDC of
    fees, so one share is no longer worth a round number of assets."""
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    engine.close_position(trader, 0, BTC, 0, sender=trader)


# --------------------------------------------------------------------------
#                                 Metadata
# --------------------------------------------------------------------------


def test_vault__metadata_and_initial_state(vault, usdc, engine, lp):
    assert vault.asset() == usdc.address
    assert vault.ENGINE() == engine.address
    assert vault.decimals() == 12  # 6 + DECIMALS_OFFSET
    assert vault.DECIMALS_OFFSET() == 6
    assert engine.vault() == vault.address
    assert totals(vault) == (LP_SHARES, 1_000_000 * USDC)
    assert vault.balanceOf(lp) == LP_SHARES
    # the engine holds the tokens, the vault none
    assert usdc.balanceOf(vault) == 0
    assert usdc.balanceOf(engine) == 1_000_000 * USDC


# --------------------------------------------------------------------------
#                     deposit / mint / withdraw / redeem
# --------------------------------------------------------------------------


@pytest.mark.parametrize("to_self", [True, False])
def test_deposit__shares_rounded_down_with_virtual_offset(
    vault, usdc, engine, depositor, operator, give, fees_paid, to_self
):
    receiver = depositor if to_self else operator
    supply, total = totals(vault)
    assert (supply, total) == (LP_SHARES, 1_000_120 * USDC)
    assets = 1_234_567_891  # 1,234.567891 USDC
    # 1,234,567,891 x (10**18 + 10**6) / 1,000,120,000,001, rounded down
    shares = to_shares(assets, supply, total)
    assert shares == 1_234_419_760_628_724
    assert (assets * (supply + VIRTUAL_SHARES)) % (total + 1) != 0  # the rounding matters
    assert vault.previewDeposit(assets) == vault.convertToShares(assets) == shares
    give(depositor, assets, vault)

    receipt = vault.deposit(assets, receiver, sender=depositor)

    assert receipt.events.filter(vault.Deposit) == [
        vault.Deposit(sender=depositor, owner=receiver, assets=assets, shares=shares)
    ]
    assert receipt.events.filter(vault.Transfer) == [
        vault.Transfer(sender="0x0000000000000000000000000000000000000000", receiver=receiver, value=shares)
    ]
    assert receipt.events.filter(engine.VaultTransfer) == [engine.VaultTransfer(receiver=vault, amount=assets)]
    assert vault.balanceOf(receiver) == shares
    assert vault.balanceOf(depositor) == (shares if to_self else 0)
    assert totals(vault) == (supply + shares, total + assets)
    assert usdc.balanceOf(depositor) == 0
    assert usdc.balanceOf(vault) == 0


def test_mint__assets_rounded_up(vault, usdc, depositor, give, fees_paid):
    supply, total = totals(vault)
    shares = 10**15 + 1
    # (10**15 + 1) x 1,000,120,000,001 / (10**18 + 10**6), rounded up
    assets = to_assets(shares, supply, total, up=True)
    assert assets == 1_000_120_001
    assert to_assets(shares, supply, total) == assets - 1  # rounding up costs one unit
    assert vault.previewMint(shares) == assets
    give(depositor, 2 * assets, vault)

    receipt = vault.mint(shares, depositor, sender=depositor)

    assert receipt.events.filter(vault.Deposit) == [
        vault.Deposit(sender=depositor, owner=depositor, assets=assets, shares=shares)
    ]
    assert vault.balanceOf(depositor) == shares
    assert usdc.balanceOf(depositor) == assets
    assert totals(vault) == (supply + shares, total + assets)


def test_withdraw__shares_rounded_up(vault, usdc, engine, lp, fees_paid):
    supply, total = totals(vault)
    assets = 1_234_567_891
    shares = to_shares(assets, supply, total, up=True)
    assert shares == to_shares(assets, supply, total) + 1 == 1_234_419_760_628_725
    assert vault.previewWithdraw(assets) == shares

    receipt = vault.withdraw(assets, lp, lp, sender=lp)

    assert receipt.events.filter(vault.Withdraw) == [
        vault.Withdraw(sender=lp, receiver=lp, owner=lp, assets=assets, shares=shares)
    ]
    assert receipt.events.filter(engine.VaultTransfer) == [engine.VaultTransfer(receiver=lp, amount=-assets)]
    assert usdc.balanceOf(lp) == assets
    assert vault.balanceOf(lp) == LP_SHARES - shares
    assert totals(vault) == (supply - shares, total - assets)


def test_redeem__assets_rounded_down(vault, usdc, lp, operator, fees_paid):
    supply, total = totals(vault)
    shares = 10**15 + 1
    assets = to_assets(shares, supply, total)
    assert assets == 1_000_120_000
    assert vault.previewRedeem(shares) == vault.convertToAssets(shares) == assets

    receipt = vault.redeem(shares, operator, lp, sender=lp)

    assert receipt.events.filter(vault.Withdraw) == [
        vault.Withdraw(sender=lp, receiver=operator, owner=lp, assets=assets, shares=shares)
    ]
    assert usdc.balanceOf(operator) == assets
    assert usdc.balanceOf(lp) == 0
    assert totals(vault) == (supply - shares, total - assets)


def test_deposit_then_redeem__round_trip_never_profits(vault, usdc, depositor, give, fees_paid):
    assets = 999_999_999
    give(depositor, assets, vault)
    vault.deposit(assets, depositor, sender=depositor)

    vault.redeem(vault.balanceOf(depositor), depositor, depositor, sender=depositor)

    assert usdc.balanceOf(depositor) == assets - 1  # rounding kept by the vault
    assert vault.balanceOf(depositor) == 0


@pytest.mark.parametrize("action", ["deposit", "mint", "withdraw", "redeem"])
def test_zero_amount__reverts(vault, lp, action):
    with ape.reverts("vault: zero amount"):
        if action in ("deposit", "mint"):
            getattr(vault, action)(0, lp, sender=lp)
        else:
            getattr(vault, action)(0, lp, lp, sender=lp)


def test_redeem__shares_worth_less_than_one_unit__reverts(vault, lp, fees_paid):
    # 1 share is worth 1,000,120,000,001 / (10**18 + 10**6) < 1 unit: rounds to 0 assets
    assert vault.previewRedeem(1) == 0
    with ape.reverts("vault: zero amount"):
        vault.redeem(1, lp, lp, sender=lp)


# --------------------------------------------------------------------------
#                         Third-party withdrawals
# --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["withdraw", "redeem"])
def test_third_party__without_allowance__reverts(vault, lp, operator, action):
    with ape.reverts("erc20: insufficient allowance"):
        getattr(vault, action)(1_000 * USDC, operator, lp, sender=operator)
    assert vault.balanceOf(lp) == LP_SHARES


def test_third_party_withdraw__spends_the_allowance(vault, usdc, lp, operator):
    supply, total = totals(vault)
    assets = 1_000 * USDC
    shares = to_shares(assets, supply, total, up=True)
    vault.approve(operator, shares + 5, sender=lp)

    receipt = vault.withdraw(assets, operator, lp, sender=operator)

    assert receipt.events.filter(vault.Withdraw) == [
        vault.Withdraw(sender=operator, receiver=operator, owner=lp, assets=assets, shares=shares)
    ]
    assert vault.allowance(lp, operator) == 5
    assert usdc.balanceOf(operator) == assets
    assert vault.balanceOf(lp) == LP_SHARES - shares
    # the rest of the allowance does not cover another withdrawal
    with ape.reverts("erc20: insufficient allowance"):
        vault.withdraw(assets, operator, lp, sender=operator)


def test_third_party_redeem__infinite_allowance_not_spent(vault, usdc, lp, operator):
    vault.approve(operator, MAX_UINT, sender=lp)

    vault.redeem(10**15, operator, lp, sender=operator)

    assert vault.allowance(lp, operator) == MAX_UINT
    assert usdc.balanceOf(operator) == 1_000 * USDC  # 10**15 x (10**12 + 1) / (10**18 + 10**6)
    assert vault.balanceOf(lp) == LP_SHARES - 10**15


# --------------------------------------------------------------------------
#                            The open-interest reserve
# --------------------------------------------------------------------------


@pytest.fixture
def skewed(no_funding, trader, fund, open_position):
    """10 BTC long, nobody short: 600,000 USD of skew reserves 50 % = 300,000
    USDC; the vault holds 1,000,600 USDC (opening fee 600), 700,600 free."""
    fund(trader, 61_000 * USDC)
    open_position(trader, BTC, 10 * WAD)


def test_reserve__max_withdraw_and_max_redeem_capped_by_free_assets(vault, engine, lp, depositor, give, skewed):
    free = 700_600 * USDC
    assert vault.free_assets() == free
    supply, total = totals(vault)
    assert total == 1_000_600 * USDC
    assert vault.maxWithdraw(lp) == free  # its shares are worth ~1,000,600
    assert vault.maxRedeem(lp) == to_shares(free, supply, total)
    # a small LP is limited by its own shares only
    give(depositor, 1_000 * USDC, vault)
    vault.deposit(1_000 * USDC, depositor, sender=depositor)
    supply, total = totals(vault)
    own = to_assets(vault.balanceOf(depositor), supply, total)
    assert own == 1_000 * USDC - 1
    assert vault.maxWithdraw(depositor) == own
    assert vault.maxRedeem(depositor) == vault.balanceOf(depositor)


def test_reserve__withdraw_above_free_assets__reverts(vault, engine, usdc, lp, skewed):
    free = 700_600 * USDC
    with ape.reverts("vault: reserved"):
        vault.withdraw(free + 1, lp, lp, sender=lp)
    assert vault.balanceOf(lp) == LP_SHARES

    vault.withdraw(free, lp, lp, sender=lp)

    assert usdc.balanceOf(lp) == free
    assert vault.free_assets() == 0
    assert vault.maxWithdraw(lp) == 0
    assert vault.maxRedeem(lp) == 0
    with ape.reverts("vault: reserved"):
        vault.withdraw(1, lp, lp, sender=lp)


def test_reserve__redeem_max_redeem__passes_then_nothing_more(vault, engine, lp, skewed):
    shares = vault.maxRedeem(lp)
    assets = vault.previewRedeem(shares)
    assert assets <= 700_600 * USDC

    vault.redeem(shares, lp, lp, sender=lp)

    free = vault.free_assets()
    assert free == 700_600 * USDC - assets
    with ape.reverts("vault: reserved"):
        vault.withdraw(free + 1, lp, lp, sender=lp)


def test_reserve__released_when_the_trader_closes(vault, engine, lp, trader, skewed):
    engine.close_position(trader, 0, BTC, 0, sender=trader)
    # fees 600 + 600, no reserve left
    assert vault.free_assets() == 1_001_200 * USDC
    assert vault.maxWithdraw(lp) == to_assets(LP_SHARES, *totals(vault))


# --------------------------------------------------------------------------
#                          totalAssets and share price
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "close_answer, trader_pnl",
    [
        (59_000 * FEED, -1_000),  # the trader loses 1,000: the vault gains it
        (61_000 * FEED, 1_000),  # the trader gains 1,000: the vault pays it
    ],
)
def test_total_assets__follows_fees_and_realised_trader_pnl(
    vault, engine, btc_feed, admin, trader, fund, open_position, no_funding, close_answer, trader_pnl
):
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    assert vault.totalAssets() == 1_000_060 * USDC  # opening fee 0.1 % of 60,000

    btc_feed.set_answer(close_answer, sender=admin)
    # unrealised PnL does not move the ledger
    assert vault.totalAssets() == 1_000_060 * USDC

    engine.close_position(trader, 0, BTC, 0, sender=trader)

    close_fee = close_answer // FEED // 1_000
    total = (1_000_060 + close_fee - trader_pnl) * USDC
    assert vault.totalAssets() == engine.vault_assets() == total
    assert vault.totalSupply() == LP_SHARES
    assert vault.convertToAssets(LP_SHARES) == to_assets(LP_SHARES, LP_SHARES, total)
    assert engine.balance_of(trader, 0, engine.SETTLEMENT_ASSET()) == (10_000 - 60 - close_fee + trader_pnl) * USDC


@pytest.mark.parametrize("target", ["vault", "engine"])
def test_donation__changes_neither_total_assets_nor_share_price(
    vault, engine, usdc, attacker, depositor, give, fees_paid, target
):
    supply, total = totals(vault)
    price = vault.convertToAssets(10**12)
    preview = vault.previewDeposit(1_000 * USDC)
    usdc.mint(attacker, 500_000 * USDC, sender=attacker)

    usdc.transfer(vault if target == "vault" else engine, 500_000 * USDC, sender=attacker)

    assert totals(vault) == (supply, total)
    assert engine.vault_assets() == total
    assert vault.convertToAssets(10**12) == price
    assert vault.previewDeposit(1_000 * USDC) == preview
    # a deposit after the donation gets exactly the shares it would have got
    give(depositor, 1_000 * USDC, vault)
    vault.deposit(1_000 * USDC, depositor, sender=depositor)
    assert vault.balanceOf(depositor) == preview
    assert vault.totalAssets() == total + 1_000 * USDC


def test_first_depositor_inflation_attack__victim_keeps_its_deposit_attacker_loses(make_system, attacker, depositor):
    system = make_system(6, vault_funding=0)
    vault, engine, usdc = system.vault, system.engine, system.settlement
    assert totals(vault) == (0, 0)
    donation = 1_000_000 * USDC
    usdc.mint(attacker, 1 + 2 * donation, sender=attacker)
    usdc.approve(vault, 1, sender=attacker)

    # 1. one unit for 1 x (0 + 10**6) / (0 + 1) = 10**6 shares
    vault.deposit(1, attacker, sender=attacker)
    assert vault.balanceOf(attacker) == VIRTUAL_SHARES
    # 2. a large donation to both contracts: the ledger does not see it
    usdc.transfer(vault, donation, sender=attacker)
    usdc.transfer(engine, donation, sender=attacker)
    assert totals(vault) == (VIRTUAL_SHARES, 1)
    # 3. the victim deposits 1,000 USDC: 10**9 x (10**6 + 10**6) / (1 + 1) = 10**15 shares
    usdc.mint(depositor, 1_000 * USDC, sender=depositor)
    usdc.approve(vault, 1_000 * USDC, sender=depositor)
    vault.deposit(1_000 * USDC, depositor, sender=depositor)
    assert vault.balanceOf(depositor) == 10**15

    # 4. both leave
    vault.redeem(VIRTUAL_SHARES, attacker, attacker, sender=attacker)
    vault.redeem(10**15, depositor, depositor, sender=depositor)

    # the attacker gets its 1 unit back and loses both donations
    assert usdc.balanceOf(attacker) == 1
    assert usdc.balanceOf(depositor) == 1_000 * USDC
    assert totals(vault) == (0, 0)


# --------------------------------------------------------------------------
#                      Engine entry points reserved to the vault
# --------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["lp", "attacker", "admin"])
def test_engine_vault_entry_points__not_the_vault__revert(engine, usdc, lp, attacker, admin, caller):
    account = {"lp": lp, "attacker": attacker, "admin": admin}[caller]
    usdc.mint(account, 10 * USDC, sender=account)
    usdc.approve(engine, 10 * USDC, sender=account)
    with ape.reverts("engine: not vault"):
        engine.vault_transfer(account, 10 * USDC, sender=account)
    with ape.reverts("engine: not vault"):
        engine.vault_transfer(account, -10 * USDC, sender=account)
    assert engine.vault_assets() == 1_000_000 * USDC


@pytest.mark.xfail(
    strict=True,
    reason="totalAssets() is the realised ledger only: a deposit made while traders hold "
    "unrealised losses buys shares below their value and captures part of the loss when "
    "it is realised, at the expense of the LPs who carried the position",
)
def test_deposit_before_a_trader_loss_is_realised__round_trip_captures_no_old_pnl(
    vault, engine, usdc, btc_feed, admin, attacker, trader, fund, open_position, give, no_funding
):
    fund(trader, 61_000 * USDC)
    open_position(trader, BTC, 10 * WAD)  # vault: 1,000,600
    btc_feed.set_answer(57_000 * FEED, sender=admin)  # the trader is 30,000 USDC down, unrealised
    give(attacker, 1_000_000 * USDC, vault)
    vault.deposit(1_000_000 * USDC, attacker, sender=attacker)

    engine.close_position(trader, 0, BTC, 0, sender=trader)  # +30,000 loss, +570 fee to the vault
    vault.redeem(vault.balanceOf(attacker), attacker, attacker, sender=attacker)

    # at most its deposit plus the whole closing fee; today it leaves with ~15,280 USDC more
    assert usdc.balanceOf(attacker) <= 1_000_570 * USDC
