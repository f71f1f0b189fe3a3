"""A guided scenario on a fresh deployment: ``ape run demo`` (``make demo``).

An LP funds the vault; alice buys BTC at 8x leverage and bob sells some; the
BTC price falls in steps and, at each step, a table shows every account's
health. alice goes from HEALTHY to MARGIN_CALL to LIQUIDATABLE, a liquidator
closes part of her position (twice), the insurance fund grows, and the run ends
with the final accounts, the vault and a custody check.

Everything is read back from the contracts (no number is precomputed here), so
the script doubles as a smoke test of the deployment: it raises
:class:`DemoError` when the chain does not behave as the story says.

Ape is imported inside the functions: importing this module does not need a
network.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from margin_engine.config import default_config
from margin_engine.model import HEALTHY, LIQUIDATABLE, MARGIN_CALL, STATUS_NAMES
from margin_engine.report import (
    WAD,
    fmt_ratio,
    fmt_size,
    fmt_tokens,
    fmt_wad,
    render_table,
)

__all__ = ["DemoError", "run_demo"]

Echo = Callable[[str], None]

MARKET = "BTC"
SLIPPAGE_BPS = 100  # 1 % limit-price tolerance on every trade
WIDTH = 100  # text wrap

# The story, in human units.
LP_FUNDING = 1_000_000  # USDC into the vault
ALICE_DEPOSIT = 7_500  # USDC
ALICE_SIZE = 1 * WAD  # +1 BTC at 60,000: 60,000 notional on 7,500 = 8x
BOB_DEPOSIT = 10_000
BOB_SIZE = -WAD // 2  # -0.5 BTC: 30,000 notional on 10,000 = 3x
PRICE_PATH = [58_000, 56_000, 55_000, 53_500]


class DemoError(RuntimeError):
    """The chain did not behave as the scenario expects."""


@dataclass
class _Ctx:
    echo: Echo
    engine: Any
    vault: Any
    usdc: Any
    lens: Any
    feed: Any
    market: int
    admin: Any
    decimals: int
    params: Any  # the market's MarketConfig
    actors: dict[str, Any] = field(default_factory=dict)  # name -> account, table order

    def usdc_amount(self, whole: int) -> int:
        return whole * 10**self.decimals

    def tokens(self, amount: int, signed: bool = False) -> str:
        return fmt_tokens(amount, self.decimals, 2, signed)


# --------------------------------------------------------------------------
#                                   Steps
# --------------------------------------------------------------------------


def _say(echo: Echo, text: str, first: str = "   ", rest: str = "   ") -> None:
    """Echo `text` wrapped to WIDTH columns."""
    for line in textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest):
        echo(line)


def _step(ctx: _Ctx, title: str, text: str) -> None:
    ctx.echo("")
    ctx.echo(f"== {title}")
    _say(ctx.echo, text)


def _set_price(ctx: _Ctx, usd: int) -> None:
    answer = usd * 10 ** int(ctx.feed.decimals())
    ctx.feed.set_answer(answer, sender=ctx.admin)


def _deposit(ctx: _Ctx, name: str, whole: int) -> None:
    account = ctx.actors[name]
    amount = ctx.usdc_amount(whole)
    ctx.usdc.mint(account, amount, sender=account)
    ctx.usdc.approve(ctx.engine, amount, sender=account)
    ctx.engine.deposit(0, ctx.usdc, amount, sender=account)
    ctx.echo(f"   {name} deposits {ctx.tokens(amount)} USDC")


def _trade(ctx: _Ctx, name: str, size_delta: int) -> None:
    account = ctx.actors[name]
    price, _ok = ctx.engine.oracle_price(ctx.market)
    if size_delta > 0:  # a buy: at most 1 % above the oracle price
        limit = price * (10_000 + SLIPPAGE_BPS) // 10_000
    else:  # a sell: at least 1 % below
        limit = price * (10_000 - SLIPPAGE_BPS) // 10_000
    receipt = ctx.engine.modify_position(account, 0, ctx.market, size_delta, limit, sender=account)
    _report_fill(ctx, name, receipt)


def _close(ctx: _Ctx, name: str) -> None:
    account = ctx.actors[name]
    size = int(ctx.engine.position(account, 0, ctx.market).size)
    price, _ok = ctx.engine.oracle_price(ctx.market)
    # Closing a long sells (limit below), closing a short buys (limit above).
    bps = 10_000 - SLIPPAGE_BPS if size > 0 else 10_000 + SLIPPAGE_BPS
    receipt = ctx.engine.close_position(account, 0, ctx.market, price * bps // 10_000, sender=account)
    _report_fill(ctx, name, receipt)


def _report_fill(ctx: _Ctx, name: str, receipt: Any) -> None:
    event = receipt.events.filter(ctx.engine.PositionModified)[0]
    side = "buys" if event.size_delta > 0 else "sells"
    text = (
        f"{name} {side} {fmt_size(abs(int(event.size_delta)), MARKET, signed=False)} "
        f"at {fmt_wad(event.price)}: fee {ctx.tokens(event.fee)} USDC"
    )
    if event.realized_pnl != 0:
        text += f", realised PnL {ctx.tokens(event.realized_pnl, signed=True)} USDC"
    funding = int(event.funding_paid)
    if funding != 0:
        # Funding is tiny over a few blocks: show every decimal of the token.
        verb = "paid" if funding > 0 else "received"
        text += f", {verb} funding {fmt_tokens(abs(funding), ctx.decimals, ctx.decimals)} USDC"
    size = int(event.size)
    text += f"; position now {fmt_size(size, MARKET) if size else 'flat'}"
    _say(ctx.echo, text, rest="     ")


def _liquidate(ctx: _Ctx, liquidator_name: str, name: str) -> None:
    """One round of the liquidator bot (margin_engine.runner), which must
    liquidate `name` and nobody else."""
    from margin_engine.runner import LiquidatorBot

    owner = ctx.actors[name]
    liquidator = ctx.actors[liquidator_name]
    size = int(ctx.engine.position(owner, 0, ctx.market).size)
    insurance_before = int(ctx.engine.insurance_fund())
    bot = LiquidatorBot(ctx.engine, ctx.lens, liquidator, log=None)
    report = bot.run_round()
    snap = report.snapshot
    _say(
        ctx.echo,
        f"The {liquidator_name}'s bot reads the {snap.total_active} accounts with open positions"
        f" in {snap.rpc_calls} calls at block {snap.block}, values them with the reference"
        f" model and sends {len(report.liquidated)} liquidation(s):",
    )
    if [(p.owner, p.sub) for p, _ in report.liquidated] != [(str(owner), 0)]:
        raise DemoError(f"the bot should liquidate {name} only, it sent {report.liquidated}")
    plan, _ = report.liquidated[0]
    ctx.echo(
        f"     quoted before sending: close {fmt_size(plan.quote.size, MARKET, signed=False)},"
        f" reward {ctx.tokens(plan.quote.reward)} USDC, gas {fmt_wad(plan.gas_cost_usd)} USD"
    )
    receipt = report.receipts[0]
    events = receipt.events.filter(ctx.engine.Liquidation)
    if len(events) != 1:
        raise DemoError(f"expected one Liquidation event, got {len(events)}")
    event = events[0]
    insurance_after = int(ctx.engine.insurance_fund())
    closed = fmt_size(int(event.size_closed), MARKET, signed=False)
    ctx.echo(f"   {liquidator_name} liquidates {name} (from the Liquidation event):")
    of = fmt_size(abs(size), MARKET, signed=False)
    ctx.echo(f"     size closed      {closed} of {of} at {fmt_wad(event.price)}")
    ctx.echo(
        f"     penalty          {ctx.tokens(event.penalty)} USDC"
        f" ({_pct(ctx.params.liq_fee)} of the closed notional, paid by {name})"
    )
    ctx.echo(f"     reward           {ctx.tokens(event.reward)} USDC to {liquidator_name}")
    ctx.echo(f"     insurance share  {ctx.tokens(event.insurance_share)} USDC")
    before, after = ctx.tokens(insurance_before), ctx.tokens(insurance_after)
    ctx.echo(f"     insurance fund   {before} -> {after} USDC")
    for bad in receipt.events.filter(ctx.engine.BadDebt):
        ctx.echo(
            f"     bad debt         {ctx.tokens(bad.amount)} USDC (insurance paid "
            f"{ctx.tokens(bad.insurance_paid)}, vault lost {ctx.tokens(bad.vault_loss)})"
        )
    if insurance_after <= insurance_before:
        raise DemoError("the insurance fund did not grow after a liquidation")


# --------------------------------------------------------------------------
#                                  Reports
# --------------------------------------------------------------------------


def _health_table(ctx: _Ctx) -> dict[str, int]:
    """Prints every account's health; returns each account's status code."""
    headers = [
        "account",
        "position",
        "collateral",
        "equity",
        "IM req.",
        "MM req.",
        "margin ratio",
        "status",
        "liq. price",
    ]
    rows = []
    statuses: dict[str, int] = {}
    for name, account in ctx.actors.items():
        state = ctx.engine.account(account, 0)
        pos = ctx.engine.position(account, 0, ctx.market)
        balance = int(ctx.engine.balance_of(account, 0, ctx.usdc))
        liq = int(ctx.lens.liquidation_price(account, 0, ctx.market)) if pos.size != 0 else 0
        status = int(state.status)
        statuses[name] = status
        rows.append(
            [
                name,
                fmt_size(int(pos.size), MARKET),
                ctx.tokens(balance),
                fmt_wad(state.equity_maint),
                fmt_wad(state.im_required),
                fmt_wad(state.mm_required),
                fmt_ratio(int(state.equity_maint), int(state.mm_required)),
                STATUS_NAMES[status],
                fmt_wad(liq) if liq else "-",
            ]
        )
    price, _ok = ctx.engine.oracle_price(ctx.market)
    ctx.echo(f"   {MARKET} = {fmt_wad(price)} USD. Account health (USD):")
    ctx.echo(render_table(headers, rows, align="llrrrrrlr", indent="   "))
    return statuses


def _explain(ctx: _Ctx, name: str) -> None:
    state = ctx.engine.account(ctx.actors[name], 0)
    status = int(state.status)
    equity, im, mm = fmt_wad(state.equity_maint), fmt_wad(state.im_required), fmt_wad(state.mm_required)
    if status == HEALTHY:
        text = f"{name} is HEALTHY: equity {equity} covers the initial margin {im}."
    elif status == MARGIN_CALL:
        text = (
            f"{name} is in MARGIN_CALL: equity {equity} is below the initial margin {im} "
            f"but above the maintenance margin {mm}. She can no longer open, increase or "
            "withdraw; she may add collateral or reduce. Nobody can liquidate her yet."
        )
    elif status == LIQUIDATABLE:
        text = (
            f"{name} is LIQUIDATABLE: equity {equity} is below the maintenance margin {mm}. "
            "Anyone may now close part of her position."
        )
    else:
        text = f"{name} is BANKRUPT: equity {equity} is negative."
    _say(ctx.echo, text, first="   -> ", rest="      ")


def _vault_state(ctx: _Ctx) -> None:
    vault_decimals = int(ctx.vault.decimals())
    total_assets = int(ctx.vault.totalAssets())
    supply = int(ctx.vault.totalSupply())
    one_share = int(ctx.vault.convertToAssets(10**vault_decimals))
    ctx.echo(f"   vault totalAssets    {ctx.tokens(total_assets)} USDC")
    ctx.echo(f"   vault totalSupply    {fmt_tokens(supply, vault_decimals, 2)} {ctx.vault.symbol()}")
    price = fmt_tokens(one_share, ctx.decimals, 6)
    ctx.echo(f"   share price          {price} USDC per {ctx.vault.symbol()}")
    free = ctx.tokens(int(ctx.vault.free_assets()))
    ctx.echo(f"   free to withdraw     {free} USDC (assets minus the open-interest reserve)")
    ctx.echo(f"   insurance fund       {ctx.tokens(int(ctx.engine.insurance_fund()))} USDC")


def _custody_check(ctx: _Ctx) -> None:
    held = int(ctx.usdc.balanceOf(ctx.engine))
    balances = sum(int(ctx.engine.balance_of(a, 0, ctx.usdc)) for a in ctx.actors.values())
    insurance = int(ctx.engine.insurance_fund())
    vault_assets = int(ctx.engine.vault_assets())
    _say(
        ctx.echo,
        f"custody check: the engine holds {ctx.tokens(held)} USDC = accounts {ctx.tokens(balances)}"
        f" + insurance {ctx.tokens(insurance)} + vault {ctx.tokens(vault_assets)}",
    )
    if held != balances + insurance + vault_assets:
        raise DemoError(
            f"custody mismatch: held {held} != {balances} + {insurance} + {vault_assets}"
        )


def _expect(statuses: dict[str, int], name: str, allowed: set[int], when: str) -> None:
    if statuses[name] not in allowed:
        names = "/".join(STATUS_NAMES[s] for s in sorted(allowed))
        raise DemoError(f"{when}: expected {name} {names}, got {STATUS_NAMES[statuses[name]]}")


# --------------------------------------------------------------------------
#                                  Scenario
# --------------------------------------------------------------------------


def run_demo(echo: Echo = print) -> None:
    """Deploys a fresh system on the connected (development) network and plays the scenario."""
    from ape import accounts, chain, project

    from margin_engine.deploy import deploy

    admin, lp, alice, bob, liquidator = accounts.test_accounts[:5]
    config = default_config()
    params = next(m for m in config.markets if m.name == MARKET)
    liq = config.liquidation
    start_price = params.mock_price_wad()

    echo(f"Margin engine demo: leveraged {MARKET} perpetuals on a local chain.")
    _say(
        echo,
        f"IM = initial margin ({_pct(params.imr)} of notional: {WAD // params.imr}x max leverage),"
        f" MM = maintenance margin ({_pct(params.mmr)}). Margin ratio = equity / MM: below 1.00x"
        f" the account is LIQUIDATABLE. Values in USD (USDC, 2 decimals), sizes in {MARKET};"
        " + is long, - is short.",
        first="",
        rest="",
    )

    echo("")
    echo("== 1. Deploy")
    echo("   The admin deploys mock USDC, the engine, the vault, mock BTC/ETH feeds and a lens.")
    system = deploy(config, admin, log=lambda msg: echo(f"   {msg}"))
    lens = getattr(system, "lens", None)
    if lens is None:  # older deployments did not include the lens
        lens = project.MarginLens.deploy(system.engine, sender=admin)
        echo(f"   MarginLens: {lens.address}")

    ctx = _Ctx(
        echo=echo,
        engine=system.engine,
        vault=system.vault,
        usdc=system.settlement,
        lens=lens,
        feed=system.feeds[MARKET],
        market=system.markets[MARKET],
        admin=admin,
        decimals=int(system.settlement.decimals()),
        params=params,
        actors={"alice": alice, "bob": bob, "liquidator": liquidator},
    )

    _step(
        ctx,
        "2. The LP funds the vault",
        "The vault (ERC-4626) is the counterparty of every trade: it pays trader"
        " profits and receives losses and fees. The LP deposits USDC and gets shares.",
    )
    amount = ctx.usdc_amount(LP_FUNDING)
    ctx.usdc.mint(lp, amount, sender=lp)
    ctx.usdc.approve(ctx.vault, amount, sender=lp)
    ctx.vault.deposit(amount, lp, sender=lp)
    echo(f"   lp deposits {ctx.tokens(amount)} USDC")
    _vault_state(ctx)

    alice_notional = abs(ALICE_SIZE) * start_price // WAD**2
    bob_notional = abs(BOB_SIZE) * start_price // WAD**2
    _step(
        ctx,
        f"3. Traders deposit and open positions at {MARKET} = {start_price // WAD:,}",
        f"alice buys {fmt_size(ALICE_SIZE, MARKET, 1, signed=False)} ({alice_notional:,} notional)"
        f" on {ALICE_DEPOSIT:,} USDC: {alice_notional / ALICE_DEPOSIT:g}x leverage. bob sells"
        f" {fmt_size(-BOB_SIZE, MARKET, 1, signed=False)} ({bob_notional:,} notional) on"
        f" {BOB_DEPOSIT:,} USDC: {bob_notional / BOB_DEPOSIT:g}x. Each trade pays a"
        f" {_pct(params.fee_rate)} fee to the vault.",
    )
    _deposit(ctx, "alice", ALICE_DEPOSIT)
    _deposit(ctx, "bob", BOB_DEPOSIT)
    _trade(ctx, "alice", ALICE_SIZE)
    _trade(ctx, "bob", BOB_SIZE)
    statuses = _health_table(ctx)
    _expect(statuses, "alice", {HEALTHY}, "after opening")
    _explain(ctx, "alice")

    liquidations = 0
    for number, usd in enumerate(PRICE_PATH, start=4):
        _step(
            ctx,
            f"{number}. BTC falls to {usd:,}",
            _price_note(usd, params),
        )
        _set_price(ctx, usd)
        statuses = _health_table(ctx)
        _explain(ctx, "alice")
        if statuses["alice"] >= LIQUIDATABLE:
            echo("")
            _say(
                echo,
                "The liquidator closes the smallest part of alice's position that brings her"
                f" equity back to MM x {1 + Decimal(liq.buffer) / WAD:g}; she pays a"
                f" {_pct(params.liq_fee)} penalty on the closed notional:"
                f" {_pct(liq.liquidator_share)} to the liquidator, the rest to the insurance fund.",
            )
            _liquidate(ctx, "liquidator", "alice")
            liquidations += 1
            statuses = _health_table(ctx)
            _explain(ctx, "alice")
        _expect(statuses, "bob", {HEALTHY}, f"at BTC {usd}")

    if liquidations < 1:
        raise DemoError("alice was never liquidated")

    _step(
        ctx,
        f"{len(PRICE_PATH) + 4}. Everyone closes",
        "alice closes what is left of her long at a loss; bob closes his short at a profit."
        " The liquidator's rewards sit in its engine account, ready to withdraw.",
    )
    _close(ctx, "alice")
    _close(ctx, "bob")
    _health_table(ctx)

    _step(
        ctx,
        f"{len(PRICE_PATH) + 5}. The vault and the insurance fund",
        "The vault earned alice's losses and every fee and paid bob's profit; the"
        " insurance fund kept its share of the liquidation penalties.",
    )
    _vault_state(ctx)
    _custody_check(ctx)
    echo("")
    echo(f"Done: {liquidations} liquidation(s), chain at block {chain.blocks.height}.")


def _pct(wad: int) -> str:
    """A WAD rate as a percentage: ``10 %``."""
    return f"{Decimal(wad) * 100 / WAD:g} %"


def _price_note(usd: int, params: Any) -> str:
    notes = {
        58_000: f"alice loses 2,000: her equity drops below the {_pct(params.imr)} initial margin.",
        56_000: f"Still above the {_pct(params.mmr)} maintenance margin: a margin call, not yet"
        " a liquidation.",
        55_000: "alice's equity falls below the maintenance margin.",
        53_500: "The fall continues: alice's smaller position is under water again.",
    }
    return notes.get(usd, "The oracle reports a new price.")
