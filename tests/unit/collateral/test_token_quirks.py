"""Token quirks through the whole collateral flow (docs/collateral.md 7).

Each case lists a collateral token with one quirk (QuirkToken, or the
USDT-like NoReturnToken) and runs deposit -> trade (the settlement balance
goes negative through a realised loss and fees; the account stays healthy
thanks to the collateral) -> partial withdrawal -> price drop -> position
liquidation -> collateral price drop -> collateral liquidation (the
liquidator repays from its USDC-funded sub-account 0) -> the liquidator
withdraws the seized collateral. Every flow ends with the custody check:
for every collateral token `balanceOf(engine) == total_deposits == sum of
the ledgers touched`, and for USDC `balanceOf(engine) == sum of the account
balances touched (signed) + vault_assets() + insurance_fund()`.

Also: returns-false and fail-all tokens (the pull and the push revert
"engine: transfer failed" and change nothing), a blocklisted account
(its position and collateral liquidations and other users' withdrawals
work, its own withdrawal fails and changes nothing), max-means-balance,
revert-on-zero (no zero transfer is ever attempted), a benign hook (no
liquidation moves a token), and the settlement-side quirks (fee on
transfer, no return value) on a second engine stack deployed by
`margin_engine.deploy.deploy` around an existing settlement token.

The session system is shared; every token is deployed and listed inside
its test, which Ape's chain isolation rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ape
import pytest

from margin_engine.config import default_config
from margin_engine.deploy import deploy

WAD = 10**18
MAX_UINT = 2**256 - 1
USDC = 10**6
ETH = 1  # market id
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = range(4)

PRICE = 2_000  # USD per whole collateral token
W_INIT = 80 * WAD // 100
W_MAINT = 85 * WAD // 100
DISCOUNT = 5 * WAD // 100
TRANSFER_FAILED = "engine: transfer failed"


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures(system, engine, configurator, manager, usdc, vault, eth_feed, admin, lp, trader, other_trader, liquidator):
    """Resolve the session fixtures before the first test (Ape isolates each
    test from the state they leave)."""


@dataclass
class Listed:
    token: Any
    feed: Any
    decimals: int

    def units(self, whole: int | float) -> int:
        return int(whole * 10**self.decimals)


@dataclass
class Ctx:
    project: Any
    system: Any
    engine: Any
    manager: Any
    configurator: Any
    usdc: Any
    admin: Any
    trader: Any
    other_trader: Any
    liquidator: Any

    # ------------------------------------------------------------------ setup
    def list_token(self, token, decimals: int, price: int = PRICE) -> Listed:
        feed = self.project.MockAggregator.deploy(8, price * 10**8, sender=self.admin)
        params = {"w_init": W_INIT, "w_maint": W_MAINT, "discount": DISCOUNT, "cap": 10**36, "enabled": True}
        self.configurator.list_collateral(
            token, feed, 3_600, WAD // 10**6, 10**12 * WAD, params, False, 0, sender=self.admin
        )
        return Listed(token, feed, decimals)

    def quirk(self, decimals: int = 18) -> Any:
        return self.project.QuirkToken.deploy("Quirk", "QRK", decimals, sender=self.admin)

    def set_col_price(self, asset: Listed, usd: int | float) -> None:
        asset.feed.set_answer(int(round(usd * 10**8)), sender=self.admin)

    def set_eth(self, usd: int) -> None:
        self.system.feeds["ETH"].set_answer(usd * 10**8, sender=self.system.deployer)

    def give_usdc(self, account, amount: int, sub: int = 0) -> None:
        self.usdc.mint(account, amount, sender=account)
        self.usdc.approve(self.engine, MAX_UINT, sender=account)
        self.engine.deposit(sub, self.usdc, amount, sender=account)

    # ---------------------------------------------------------------- reading
    def col_balance(self, account, asset: Listed, sub: int = 0) -> int:
        return self.engine.balance_of(account, sub, asset.token)

    def usdc_balance(self, account, sub: int = 0) -> int:
        return self.engine.balance_of(account, sub, self.usdc)

    def total(self, asset: Listed) -> int:
        return self.manager.total_deposits(self.manager.asset_id(asset.token))

    def snapshot(self, asset: Listed, accounts) -> dict:
        return {
            "ledger": {str(a): self.col_balance(a, asset) for a in accounts},
            "usdc": {str(a): self.usdc_balance(a) for a in accounts},
            "tokens": {str(a): asset.token.balanceOf(a) for a in accounts},
            "engine_tokens": asset.token.balanceOf(self.engine),
            "total": self.total(asset),
        }

    def custody(self, assets: list[Listed], accounts, exact: bool = True) -> None:
        """The custody check over the accounts touched (sub-account 0)."""
        for asset in assets:
            held = asset.token.balanceOf(self.engine)
            total = self.total(asset)
            assert held >= total
            ledgers = sum(self.col_balance(a, asset) for a in accounts)
            assert ledgers == total
            if exact:
                assert held == total
        balances = sum(self.usdc_balance(a) for a in accounts)
        assert self.engine.vault_assets() > 0  # not clamped: the sum is exact
        assert self.usdc.balanceOf(self.engine) == balances + self.engine.vault_assets() + self.engine.insurance_fund()


@pytest.fixture
def ctx(project, system, engine, manager, configurator, usdc, admin, trader, other_trader, liquidator) -> Ctx:
    return Ctx(project, system, engine, manager, configurator, usdc, admin, trader, other_trader, liquidator)


# --------------------------------------------------------------------------
#                                  The cases
# --------------------------------------------------------------------------


def _plain(decimals):
    def make(ctx: Ctx):
        return ctx.list_token(ctx.quirk(decimals), decimals), {}

    return make


def _fee(ctx: Ctx):
    token = ctx.quirk(18)
    token.set_fee(100, sender=ctx.admin)  # 1 %
    return ctx.list_token(token, 18), {"fee_bps": 100}


def _no_return(ctx: Ctx):
    token = ctx.project.NoReturnToken.deploy("Tether", "USDT", 6, sender=ctx.admin)
    return ctx.list_token(token, 6), {}


def _max_means_balance(ctx: Ctx):
    token = ctx.quirk(18)
    token.set_max_means_balance(True, sender=ctx.admin)
    return ctx.list_token(token, 18), {"deposit_max": True}


def _max_means_balance_fee(ctx: Ctx):
    token = ctx.quirk(8)
    token.set_max_means_balance(True, sender=ctx.admin)
    token.set_fee(50, sender=ctx.admin)
    return ctx.list_token(token, 8), {"deposit_max": True, "fee_bps": 50}


def _revert_on_zero(ctx: Ctx):
    token = ctx.quirk(18)
    token.set_revert_on_zero(True, sender=ctx.admin)
    return ctx.list_token(token, 18), {}


def _return_false(ctx: Ctx):
    token = ctx.quirk(6)
    token.set_return_false(True, sender=ctx.admin)
    return ctx.list_token(token, 6), {}


def _hook(ctx: Ctx):
    token = ctx.quirk(18)
    hook = ctx.project.ReentrantHook.deploy(sender=ctx.admin)
    token.set_hook(hook, sender=ctx.admin)
    return ctx.list_token(token, 18), {"hook": hook}


CASES = {
    "decimals-2": _plain(2),
    "decimals-6": _plain(6),
    "decimals-8": _plain(8),
    "decimals-18": _plain(18),
    "fee-on-transfer": _fee,
    "no-return-value": _no_return,
    "max-means-balance": _max_means_balance,
    "max-means-balance-with-fee": _max_means_balance_fee,
    "revert-on-zero": _revert_on_zero,
    "return-false-mode": _return_false,
    "hook": _hook,
}


def _after_fee(amount: int, fee_bps: int) -> int:
    return amount - amount * fee_bps // 10_000


def _deposit(ctx: Ctx, asset: Listed, account, whole: int, opts: dict, sub: int = 0) -> int:
    """Mint `whole` tokens to `account` and deposit them; returns the units credited."""
    token = asset.token
    amount = asset.units(whole)
    token.mint(account, amount, sender=account)
    token.approve(ctx.engine, MAX_UINT, sender=account)
    before_ledger = ctx.engine.balance_of(account, sub, token)
    before_engine = token.balanceOf(ctx.engine)
    requested = MAX_UINT if opts.get("deposit_max") else amount
    tx = ctx.engine.deposit(sub, token, requested, sender=account)
    credited = ctx.engine.balance_of(account, sub, token) - before_ledger
    arrived = token.balanceOf(ctx.engine) - before_engine
    assert credited == arrived == _after_fee(amount, opts.get("fee_bps", 0))
    assert token.balanceOf(account) == 0  # the whole (max-means-balance) or exact amount left
    [log] = [e for e in tx.events if e.event_name == "Deposit"]
    assert log.amount == credited
    return credited


def _withdraw(ctx: Ctx, asset: Listed, account, amount: int, opts: dict, sub: int = 0) -> None:
    token = asset.token
    before_ledger = ctx.engine.balance_of(account, sub, token)
    before_wallet = token.balanceOf(account)
    before_engine = token.balanceOf(ctx.engine)
    ctx.engine.withdraw(sub, token, amount, sender=account)
    assert ctx.engine.balance_of(account, sub, token) == before_ledger - amount
    assert before_engine - token.balanceOf(ctx.engine) == amount
    assert token.balanceOf(account) - before_wallet == _after_fee(amount, opts.get("fee_bps", 0))


def _flow(ctx: Ctx, asset: Listed, opts: dict) -> None:
    """deposit -> loss and fees (debt) -> withdraw -> liquidate -> liquidate_collateral -> withdraw seized."""
    engine, trader, liquidator = ctx.engine, ctx.trader, ctx.liquidator
    hook = opts.get("hook")
    accounts = [trader, liquidator, ctx.other_trader]

    # 1. Deposit 5 tokens (10,000 USD) as the only collateral.
    credited = _deposit(ctx, asset, trader, 5, opts)
    ctx.custody([asset], accounts)

    # 2. Long 20 ETH on the collateral alone (the fee makes a debt), then a
    #    realised loss: ETH 3,000 -> 2,900, close 5 ETH.
    engine.modify_position(trader, 0, ETH, 20 * WAD, 2**255, sender=trader)
    assert ctx.usdc_balance(trader) < 0
    ctx.set_eth(2_900)
    engine.modify_position(trader, 0, ETH, -5 * WAD, 0, sender=trader)
    debt = -ctx.usdc_balance(trader)
    assert debt > 500 * USDC  # the realised loss and both fees
    state = engine.account(trader, 0)
    assert state.status == HEALTHY and state.positions == 1
    ctx.custody([asset], accounts)

    # 3. A withdrawal of 5 % of the collateral keeps it healthy.
    _withdraw(ctx, asset, trader, credited * 5 // 100, opts)
    held = credited - credited * 5 // 100
    assert engine.status(trader, 0) == HEALTHY
    ctx.custody([asset], accounts)

    # 4. ETH 2,600: liquidatable; the position is liquidated (partially),
    #    the reward credited to the liquidator's sub-account 0 (no token moves).
    calls = hook.calls() if hook else 0
    ctx.set_eth(2_600)
    assert engine.status(trader, 0) == LIQUIDATABLE
    engine.liquidate(trader, 0, ETH, 20 * WAD, sender=liquidator)
    assert engine.position(trader, 0, ETH).size > 0
    assert engine.status(trader, 0) < LIQUIDATABLE
    assert ctx.usdc_balance(liquidator) > 0
    ctx.custody([asset], accounts)

    # 5. The collateral falls 5 %: liquidatable again; the liquidator funds
    #    its sub-account 0 and repays debt against the collateral.
    ctx.set_col_price(asset, PRICE * 95 // 100)
    assert engine.status(trader, 0) == LIQUIDATABLE
    ctx.give_usdc(liquidator, 10_000 * USDC)
    debt = -ctx.usdc_balance(trader)
    liq_before = ctx.usdc_balance(liquidator)
    tx = engine.liquidate_collateral(trader, 0, asset.token, 10_000 * USDC, sender=liquidator)
    [log] = [e for e in tx.events if e.event_name == "CollateralLiquidated"]
    seized, repaid = log.seized, log.repaid
    assert 0 < repaid <= debt
    price = PRICE * 95 // 100 * WAD
    scale, token_scale = engine.SCALE(), 10 ** (18 - asset.decimals)
    assert seized == repaid * scale * WAD // (WAD - DISCOUNT) * WAD // (price * token_scale)
    assert ctx.col_balance(trader, asset) == held - seized
    assert ctx.col_balance(liquidator, asset) == seized
    assert ctx.usdc_balance(trader) == -debt + repaid
    assert ctx.usdc_balance(liquidator) == liq_before - repaid
    if repaid < debt:  # the repayment that restores mm * (1 + buffer)
        assert engine.status(trader, 0) < LIQUIDATABLE
    if hook:
        assert hook.calls() == calls  # no liquidation moved a token
    ctx.custody([asset], accounts)

    # 6. The liquidator withdraws what it seized.
    _withdraw(ctx, asset, liquidator, seized, opts)
    assert ctx.col_balance(liquidator, asset) == 0
    if hook:
        assert hook.calls() == calls + 1
        assert hook.last_sender() == engine.address and hook.last_receiver() == liquidator.address
        assert hook.last_amount() == seized
    ctx.custody([asset], accounts)


@pytest.mark.parametrize("case", list(CASES))
def test_flow__deposit_trade_withdraw_liquidate(ctx, case):
    asset, opts = CASES[case](ctx)
    _flow(ctx, asset, opts)


def test_flow__weth_and_wbtc_together(ctx):
    """Two quirky assets in one account (18-decimal fee token and an
    8-decimal no-return token): the flow with a collateral liquidation of
    each, custody over both."""
    fee = ctx.quirk(18)
    fee.set_fee(30, sender=ctx.admin)
    a = ctx.list_token(fee, 18)
    b = ctx.list_token(ctx.project.NoReturnToken.deploy("WBTC", "WBTC", 8, sender=ctx.admin), 8)
    accounts = [ctx.trader, ctx.liquidator, ctx.other_trader]
    _deposit(ctx, a, ctx.trader, 3, {"fee_bps": 30})
    _deposit(ctx, b, ctx.trader, 2, {})
    engine = ctx.engine
    engine.modify_position(ctx.trader, 0, ETH, 20 * WAD, 2**255, sender=ctx.trader)
    ctx.set_eth(2_900)
    engine.modify_position(ctx.trader, 0, ETH, -5 * WAD, 0, sender=ctx.trader)
    assert ctx.usdc_balance(ctx.trader) < 0 and engine.status(ctx.trader, 0) == HEALTHY
    ctx.set_eth(2_600)
    assert engine.status(ctx.trader, 0) == LIQUIDATABLE
    engine.liquidate(ctx.trader, 0, ETH, 20 * WAD, sender=ctx.liquidator)
    ctx.set_col_price(a, 1_800)
    ctx.set_col_price(b, 1_800)
    assert engine.status(ctx.trader, 0) >= LIQUIDATABLE
    ctx.give_usdc(ctx.liquidator, 10_000 * USDC)
    engine.liquidate_collateral(ctx.trader, 0, a.token, 300 * USDC, sender=ctx.liquidator)
    engine.liquidate_collateral(ctx.trader, 0, b.token, 300 * USDC, sender=ctx.liquidator)
    assert ctx.col_balance(ctx.liquidator, a) > 0 and ctx.col_balance(ctx.liquidator, b) > 0
    ctx.custody([a, b], accounts)
    _withdraw(ctx, a, ctx.liquidator, ctx.col_balance(ctx.liquidator, a), {"fee_bps": 30})
    _withdraw(ctx, b, ctx.liquidator, ctx.col_balance(ctx.liquidator, b), {})
    ctx.custody([a, b], accounts)


# --------------------------------------------------------------------------
#                      Returns false / fail-all: nothing changes
# --------------------------------------------------------------------------


def test_return_false__deposit_without_allowance__reverts_and_changes_nothing(ctx):
    asset = ctx.list_token(ctx.quirk(6), 6)
    asset.token.set_return_false(True, sender=ctx.admin)
    amount = asset.units(5)
    asset.token.mint(ctx.trader, amount, sender=ctx.trader)
    asset.token.approve(ctx.engine, amount - 1, sender=ctx.trader)  # short by one unit
    accounts = [ctx.trader]
    before = ctx.snapshot(asset, accounts)
    with ape.reverts(TRANSFER_FAILED):
        ctx.engine.deposit(0, asset.token, amount, sender=ctx.trader)
    # More than the balance: also returns False.
    asset.token.approve(ctx.engine, MAX_UINT, sender=ctx.trader)
    with ape.reverts(TRANSFER_FAILED):
        ctx.engine.deposit(0, asset.token, amount + 1, sender=ctx.trader)
    assert ctx.snapshot(asset, accounts) == before
    assert asset.token.allowance(ctx.trader, ctx.engine) == MAX_UINT
    ctx.custody([asset], accounts)


@pytest.mark.parametrize("return_false", [False, True], ids=["fail-all", "fail-all+return-false"])
def test_fail_all__deposit_and_withdrawal_revert_and_change_nothing(ctx, return_false):
    asset = ctx.list_token(ctx.quirk(18), 18)
    token = asset.token
    token.set_return_false(return_false, sender=ctx.admin)
    accounts = [ctx.trader, ctx.liquidator, ctx.other_trader]
    credited = _deposit(ctx, asset, ctx.trader, 5, {})
    token.mint(ctx.trader, asset.units(1), sender=ctx.trader)
    token.set_fail_all(True, sender=ctx.admin)
    before = ctx.snapshot(asset, accounts)
    with ape.reverts(TRANSFER_FAILED):
        ctx.engine.deposit(0, token, asset.units(1), sender=ctx.trader)
    with ape.reverts(TRANSFER_FAILED):
        ctx.engine.withdraw(0, token, credited, sender=ctx.trader)
    with ape.reverts(TRANSFER_FAILED):
        ctx.engine.withdraw(0, token, 1, sender=ctx.trader)
    assert ctx.snapshot(asset, accounts) == before
    # Moving it between sub-accounts moves no token: still works.
    ctx.engine.transfer_collateral(0, 1, token, credited, sender=ctx.trader)
    assert ctx.col_balance(ctx.trader, asset, 1) == credited
    token.set_fail_all(False, sender=ctx.admin)
    _withdraw(ctx, asset, ctx.trader, credited, {}, sub=1)
    ctx.custody([asset], accounts)


# --------------------------------------------------------------------------
#                                   Blocklist
# --------------------------------------------------------------------------


@pytest.mark.parametrize("return_false", [False, True], ids=["reverting", "return-false"])
def test_blocklist__liquidations_work_others_withdraw_own_withdrawal_fails(ctx, return_false):
    asset = ctx.list_token(ctx.quirk(18), 18)
    token, engine, trader, other, liquidator = asset.token, ctx.engine, ctx.trader, ctx.other_trader, ctx.liquidator
    token.set_return_false(return_false, sender=ctx.admin)
    accounts = [trader, liquidator, other]
    held = _deposit(ctx, asset, trader, 5, {})
    other_held = _deposit(ctx, asset, other, 2, {})
    engine.modify_position(trader, 0, ETH, 20 * WAD, 2**255, sender=trader)
    ctx.set_eth(2_900)
    engine.modify_position(trader, 0, ETH, -5 * WAD, 0, sender=trader)
    assert ctx.usdc_balance(trader) < 0

    token.set_blocked(trader, True, sender=ctx.admin)
    # Its own withdrawal fails (health-wise allowed) and changes nothing.
    before = ctx.snapshot(asset, accounts)
    with ape.reverts(TRANSFER_FAILED if return_false else "quirk: blocked"):
        engine.withdraw(0, token, held // 100, sender=trader)
    assert ctx.snapshot(asset, accounts) == before

    # Its position liquidation works.
    ctx.set_eth(2_600)
    assert engine.status(trader, 0) == LIQUIDATABLE
    engine.liquidate(trader, 0, ETH, 20 * WAD, sender=liquidator)
    # Its collateral liquidation works.
    ctx.set_col_price(asset, PRICE * 95 // 100)
    assert engine.status(trader, 0) == LIQUIDATABLE
    ctx.give_usdc(liquidator, 10_000 * USDC)
    ctx.engine.liquidate_collateral(trader, 0, token, 10_000 * USDC, sender=liquidator)
    seized = ctx.col_balance(liquidator, asset)
    assert seized > 0 and ctx.col_balance(trader, asset) == held - seized
    ctx.custody([asset], accounts)

    # Another user's withdrawal and the liquidator's are not blocked.
    _withdraw(ctx, asset, other, other_held, {})
    _withdraw(ctx, asset, liquidator, seized, {})
    # Still blocked (prices back up: the withdrawal is healthy): nothing changes.
    ctx.set_eth(3_000)
    ctx.set_col_price(asset, PRICE)
    assert engine.status(trader, 0) == HEALTHY
    before = ctx.snapshot(asset, accounts)
    with ape.reverts(TRANSFER_FAILED if return_false else "quirk: blocked"):
        engine.withdraw(0, token, 1, sender=trader)
    assert ctx.snapshot(asset, accounts) == before
    ctx.custody([asset], accounts)


def test_blocklist__no_positions_debt_collateral_liquidation(ctx):
    """A blocklisted account left with debt and collateral but no positions
    (it closed at a loss) is collateral-liquidated to the end."""
    asset = ctx.list_token(ctx.quirk(8), 8)
    token, engine, trader, liquidator = asset.token, ctx.engine, ctx.trader, ctx.liquidator
    _deposit(ctx, asset, trader, 5, {})
    engine.modify_position(trader, 0, ETH, 10 * WAD, 2**255, sender=trader)
    ctx.set_eth(2_800)
    engine.close_position(trader, 0, ETH, 0, sender=trader)
    assert engine.account(trader, 0).positions == 0
    debt = -ctx.usdc_balance(trader)
    assert debt > 2_000 * USDC
    token.set_blocked(trader, True, sender=ctx.admin)
    ctx.give_usdc(liquidator, 10_000 * USDC)
    engine.liquidate_collateral(trader, 0, token, 10**12 * USDC, sender=liquidator)
    assert ctx.usdc_balance(trader) == 0  # the whole debt repaid (healthy: no sizing limit)
    assert ctx.usdc_balance(liquidator) == 10_000 * USDC - debt
    ctx.custody([asset], [trader, liquidator])
    _withdraw(ctx, asset, liquidator, ctx.col_balance(liquidator, asset), {})
    ctx.custody([asset], [trader, liquidator])


# --------------------------------------------------------------------------
#                      Max-means-balance and revert-on-zero
# --------------------------------------------------------------------------


def test_max_means_balance__withdraw_max_reverts_and_moves_nothing(ctx):
    asset = ctx.list_token(ctx.quirk(18), 18)
    asset.token.set_max_means_balance(True, sender=ctx.admin)
    credited = _deposit(ctx, asset, ctx.trader, 5, {"deposit_max": True})
    assert credited == asset.units(5)
    accounts = [ctx.trader]
    before = ctx.snapshot(asset, accounts)
    with ape.reverts():
        ctx.engine.withdraw(0, asset.token, MAX_UINT, sender=ctx.trader)
    assert ctx.snapshot(asset, accounts) == before
    # A max deposit with nothing to move: "nothing received".
    with ape.reverts("engine: nothing received"):
        ctx.engine.deposit(0, asset.token, MAX_UINT, sender=ctx.trader)
    assert ctx.snapshot(asset, accounts) == before
    ctx.custody([asset], accounts)


def test_revert_on_zero__zero_amounts_refused_before_the_token(ctx):
    asset = ctx.list_token(ctx.quirk(18), 18)
    asset.token.set_revert_on_zero(True, sender=ctx.admin)
    _deposit(ctx, asset, ctx.trader, 1, {})
    with ape.reverts("engine: zero amount"):
        ctx.engine.deposit(0, asset.token, 0, sender=ctx.trader)
    with ape.reverts("engine: zero amount"):
        ctx.engine.withdraw(0, asset.token, 0, sender=ctx.trader)
    with ape.reverts("engine: zero amount"):
        ctx.engine.withdraw(0, ctx.usdc, 0, sender=ctx.trader)


def test_revert_on_zero__bad_debt_liquidation_pushes_nothing(ctx):
    """A bankrupt account: its position and then all its collateral are
    liquidated, the rest is bad debt; no zero (or any) transfer happens."""
    asset = ctx.list_token(ctx.quirk(18), 18)
    token = asset.token
    token.set_revert_on_zero(True, sender=ctx.admin)
    hook = ctx.project.ReentrantHook.deploy(sender=ctx.admin)
    token.set_hook(hook, sender=ctx.admin)
    engine, trader, liquidator = ctx.engine, ctx.trader, ctx.liquidator
    _deposit(ctx, asset, trader, 5, {})
    calls = hook.calls()
    engine.modify_position(trader, 0, ETH, 20 * WAD, 2**255, sender=trader)
    ctx.set_eth(2_400)
    ctx.set_col_price(asset, 1_000)
    assert engine.status(trader, 0) == BANKRUPT
    engine.liquidate(trader, 0, ETH, 20 * WAD, sender=liquidator)
    assert engine.account(trader, 0).positions == 0
    ctx.give_usdc(liquidator, 20_000 * USDC)
    engine.liquidate_collateral(trader, 0, token, 10**12 * USDC, sender=liquidator)
    assert ctx.col_balance(trader, asset) == 0
    assert ctx.usdc_balance(trader) == 0  # the rest cleared as bad debt
    assert hook.calls() == calls
    ctx.custody([asset], [trader, liquidator])
    _withdraw(ctx, asset, liquidator, ctx.col_balance(liquidator, asset), {})
    ctx.custody([asset], [trader, liquidator])


# --------------------------------------------------------------------------
#                   Settlement-side quirks (a second engine stack)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fee-on-transfer", "no-return-value"])
def test_settlement_quirk__vault_deposit_trade_withdraw_custody(project, admin, risk_manager, guardian, lp, trader, liquidator, kind):
    if kind == "fee-on-transfer":
        token = project.QuirkToken.deploy("Fee Dollar", "FUSD", 6, sender=admin)
        token.set_fee(100, sender=admin)
        fee_bps = 100
    else:
        token = project.NoReturnToken.deploy("Tether", "USDT", 6, sender=admin)
        fee_bps = 0
    config = default_config()
    config = config.model_copy(
        update={
            "settlement_asset": token.address,
            "roles": config.roles.model_copy(update={"risk_manager": risk_manager.address, "guardian": guardian.address}),
        }
    )
    s = deploy(config, admin, log=None)
    engine, vault = s.engine, s.vault

    def usdc_sum(accounts):
        return sum(engine.balance_of(a, 0, token) for a in accounts) + engine.vault_assets() + engine.insurance_fund()

    # LP: two hops (LP -> vault -> engine) with a fee each.
    token.mint(lp, 1_000_000 * USDC, sender=lp)
    token.approve(vault, MAX_UINT, sender=lp)
    vault.deposit(1_000_000 * USDC, lp, sender=lp)
    expected = _after_fee(_after_fee(1_000_000 * USDC, fee_bps), fee_bps)
    assert engine.vault_assets() == expected == token.balanceOf(engine)
    assert token.balanceOf(vault) == 0

    # Trader: credited what arrived.
    token.mint(trader, 10_000 * USDC, sender=trader)
    token.approve(engine, MAX_UINT, sender=trader)
    engine.deposit(0, token, 10_000 * USDC, sender=trader)
    assert engine.balance_of(trader, 0, token) == _after_fee(10_000 * USDC, fee_bps)
    token.mint(liquidator, 1_000 * USDC, sender=liquidator)
    token.approve(engine, MAX_UINT, sender=liquidator)
    engine.fund_insurance(1_000 * USDC, sender=liquidator)
    assert engine.insurance_fund() == _after_fee(1_000 * USDC, fee_bps)
    accounts = [trader, liquidator]
    assert token.balanceOf(engine) == usdc_sum(accounts)

    engine.modify_position(trader, 0, ETH, 10 * WAD, 2**255, sender=trader)
    s.feeds["ETH"].set_answer(2_900 * 10**8, sender=admin)
    engine.close_position(trader, 0, ETH, 0, sender=trader)
    assert token.balanceOf(engine) == usdc_sum(accounts)

    balance = engine.balance_of(trader, 0, token)
    wallet = token.balanceOf(trader)
    engine.withdraw(0, token, balance, sender=trader)
    assert token.balanceOf(trader) - wallet == _after_fee(balance, fee_bps)
    assert engine.balance_of(trader, 0, token) == 0
    assert token.balanceOf(engine) == usdc_sum(accounts)

    shares = vault.balanceOf(lp)
    vault.redeem(shares // 2, lp, lp, sender=lp)
    assert token.balanceOf(engine) == usdc_sum(accounts)
