"""A guided scenario on a fresh deployment: ``ape run demo`` (``make demo``).

An LP funds the vault; alice buys BTC at 8x leverage and bob sells some; the
BTC price falls in steps and, at each step, a table shows every account's
health. alice goes from HEALTHY to MARGIN_CALL to LIQUIDATABLE, the
liquidator's bot closes part of her position (twice), the insurance fund
grows, and the act ends with the final accounts, the vault and a custody
check.

A second deployment with the risk model on (``risk_config()``) then shows size
tiers, a volatility shock (IM at once, MM ramping) and a margin call.

Last, back on the first deployment, the admin lists WETH as a collateral asset
(``deploy.list_collateral``). erin deposits WETH only and buys BTC; a realised
loss leaves her a USDC debt backed by the WETH, a fall of ETH makes her
LIQUIDATABLE, and a keeper repays part of the debt from its sub-account 0 for
WETH at a discount (``liquidate_collateral``), which brings her back above the
maintenance margin. Custody checks for USDC and WETH close the run.

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

from margin_engine.config import CollateralAssetConfig, default_config, risk_config
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
    system: Any  # the Deployment (configurator, collateral manager, listed assets)
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


def _set_price(ctx: _Ctx, usd: int, feed: Any = None) -> None:
    """The admin publishes `usd` on `feed` (default: the market's)."""
    feed = ctx.feed if feed is None else feed
    feed.set_answer(usd * 10 ** int(feed.decimals()), sender=ctx.admin)


def _deposit(ctx: _Ctx, name: str, whole: int, asset: str | None = None) -> None:
    """`name` mints `whole` tokens of USDC (or of the listed `asset`) and
    deposits them into sub-account 0."""
    account = ctx.actors[name]
    token = ctx.usdc if asset is None else ctx.system.collaterals[asset]
    amount = whole * 10 ** int(token.decimals())
    token.mint(account, amount, sender=account)
    token.approve(ctx.engine, amount, sender=account)
    ctx.engine.deposit(0, token, amount, sender=account)
    ctx.echo(f"   {name} deposits {_amount(ctx, amount, asset)}")


def _units(ctx: _Ctx, amount: int, asset: str | None = None, signed: bool = False) -> str:
    """Token units of USDC (2 decimals) or of the listed `asset` (4 decimals)."""
    if asset is None:
        return ctx.tokens(amount, signed)
    return fmt_tokens(amount, int(ctx.system.collaterals[asset].decimals()), 4, signed)


def _amount(ctx: _Ctx, amount: int, asset: str | None = None, signed: bool = False) -> str:
    """:func:`_units` with the symbol: ``5.0000 WETH``."""
    return f"{_units(ctx, amount, asset, signed)} {asset or 'USDC'}"


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


def _health_table(ctx: _Ctx, names: list[str] | None = None, asset: str | None = None) -> dict[str, int]:
    """Prints the health of every account (or of `names`); returns each one's status code.

    With `asset` (a listed collateral asset) the table shows each account's
    balance of it and its value at w_init and at w_maint (as the engine
    counts it, from the lens) instead of the liquidation price.
    """
    headers = ["account", "position", "USDC" if asset else "collateral"]
    if asset:
        headers += [asset, "at w_init", "at w_maint"]
    headers += ["equity", "IM req.", "MM req.", "margin ratio", "status"]
    if not asset:
        headers.append("liq. price")
    rows = []
    statuses: dict[str, int] = {}
    for name in names or list(ctx.actors):
        account = ctx.actors[name]
        state = ctx.engine.account(account, 0)
        pos = ctx.engine.position(account, 0, ctx.market)
        balance = int(ctx.engine.balance_of(account, 0, ctx.usdc))
        status = int(state.status)
        statuses[name] = status
        row = [name, fmt_size(int(pos.size), MARKET), ctx.tokens(balance)]
        if asset:
            units, value_init, value_maint = _holding(ctx, account, asset)
            row += [_units(ctx, units, asset), fmt_wad(value_init), fmt_wad(value_maint)]
        row += [
            fmt_wad(state.equity_maint),
            fmt_wad(state.im_required),
            fmt_wad(state.mm_required),
            fmt_ratio(int(state.equity_maint), int(state.mm_required)),
            STATUS_NAMES[status],
        ]
        if not asset:
            liq = int(ctx.lens.liquidation_price(account, 0, ctx.market)) if pos.size != 0 else 0
            row.append(fmt_wad(liq) if liq else "-")
        rows.append(row)
    price, _ok = ctx.engine.oracle_price(ctx.market)
    prices = f"{MARKET} = {fmt_wad(price)} USD"
    if asset:
        asset_price, _ok = ctx.system.collateral.collateral_price(ctx.system.collaterals[asset])
        prices += f", {asset} = {fmt_wad(asset_price)} USD"
    ctx.echo(f"   {prices}. Account health (USD):")
    align = "llr" + ("rrr" if asset else "") + "rrrrl" + ("" if asset else "r")
    ctx.echo(render_table(headers, rows, align=align, indent="   "))
    return statuses


def _holding(ctx: _Ctx, account: Any, asset: str) -> tuple[int, int, int]:
    """An account's balance of the listed `asset` (token units) and its value at
    w_init and at w_maint (WAD USD), from the lens's ``collateral_of``."""
    token = str(ctx.system.collaterals[asset].address)
    for holding in ctx.lens.collateral_of(account, 0):
        if str(holding.asset) == token:
            return int(holding.balance), int(holding.value_init), int(holding.value_maint)
    return 0, 0, 0


def _explain(ctx: _Ctx, name: str) -> None:
    state = ctx.engine.account(ctx.actors[name], 0)
    status = int(state.status)
    equity, im, mm = fmt_wad(state.equity_maint), fmt_wad(state.im_required), fmt_wad(state.mm_required)
    # IM is held against equity_init (collateral assets at w_init), MM against
    # equity_maint (at w_maint); without collateral assets they are the same.
    if int(state.equity_init) == int(state.equity_maint):
        equity_init, but = equity, "but"
    else:
        equity_init, but = f"{fmt_wad(state.equity_init)} (at w_init)", f"but {equity} (at w_maint) is"
        equity += " (at w_maint)"
    if status == HEALTHY:
        text = f"{name} is HEALTHY: equity {equity_init} covers the initial margin {im}."
    elif status == MARGIN_CALL:
        text = (
            f"{name} is in MARGIN_CALL: equity {equity_init} is below the initial margin {im} "
            f"{but} above the maintenance margin {mm}. She can no longer open, increase or "
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


def _custody_check(ctx: _Ctx, asset: str | None = None) -> None:
    """The engine's token balance equals its ledgers: for USDC the accounts'
    balances (debts negative), the insurance fund and the vault's assets; for
    a listed `asset` the manager's total deposits, itself the sum of the
    accounts' balances."""
    token = ctx.usdc if asset is None else ctx.system.collaterals[asset]
    held = int(token.balanceOf(ctx.engine))
    balances = {name: int(ctx.engine.balance_of(a, 0, token)) for name, a in ctx.actors.items()}
    if asset is None:
        parts = {
            "accounts": sum(balances.values()),
            "insurance": int(ctx.engine.insurance_fund()),
            "vault": int(ctx.engine.vault_assets()),
        }
        detail = ""
    else:
        parts = {"the manager's total deposits": int(ctx.system.collateral.collateral(token).total)}
        holders = " + ".join(f"{name} {_units(ctx, b, asset)}" for name, b in balances.items() if b)
        detail = f" ({holders})"
        if sum(balances.values()) != sum(parts.values()):
            raise DemoError(f"{asset} ledger mismatch: accounts {balances} != {parts}")
    terms = " + ".join(f"{label} {_units(ctx, value, asset)}" for label, value in parts.items())
    _say(ctx.echo, f"custody check: the engine holds {_amount(ctx, held, asset)} = {terms}{detail}")
    if held != sum(parts.values()):
        raise DemoError(f"{asset or 'USDC'} custody mismatch: held {held} != {parts}")


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

    admin, lp, alice, bob, liquidator, carol, dave, keeper, erin = accounts.test_accounts[:9]
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
        system=system,
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
    next_step = _risk_act(echo, admin, lp, carol, dave, keeper, first_step=len(PRICE_PATH) + 6)
    ctx.actors.update(erin=erin, keeper=keeper)
    _collateral_act(ctx, first_step=next_step)
    echo("")
    echo(
        f"Done: {liquidations} liquidation(s), a margin call and a collateral liquidation,"
        f" chain at block {chain.blocks.height}."
    )


def _pct(wad: int) -> str:
    """A WAD rate as a percentage: ``10 %``."""
    return f"{Decimal(wad) * 100 / WAD:g} %"


def _pct2(wad: int) -> str:
    """A WAD rate as a percentage with two decimals: ``15.10 %``."""
    return f"{Decimal(int(wad)) * 100 / WAD:.2f} %"


def _price_note(usd: int, params: Any) -> str:
    notes = {
        58_000: f"alice loses 2,000: her equity drops below the {_pct(params.imr)} initial margin.",
        56_000: f"Still above the {_pct(params.mmr)} maintenance margin: a margin call, not yet"
        " a liquidation.",
        55_000: "alice's equity falls below the maintenance margin.",
        53_500: "The fall continues: alice's smaller position is under water again.",
    }
    return notes.get(usd, "The oracle reports a new price.")


# --------------------------------------------------------------------------
#                        Second act: the risk model
# --------------------------------------------------------------------------

WHALE_SIZE = 40 * WAD  # 2.4M notional at 60,000: across the 1M tier edge
DAVE_DEPOSIT = 20_000
SHOCK = [63_600, 59_800, 64_000, 59_500, 63_500, 60_000]  # hourly closes, about +-6 %


def _risk_act(echo: Echo, admin: Any, lp: Any, carol: Any, dave: Any, keeper: Any, first_step: int) -> int:
    """A deployment with the risk model on (``risk_config()``): size tiers, a
    volatility shock that raises IM at once while MM ramps, and a margin call.
    Returns the next step number."""
    from ape import chain

    from margin_engine.deploy import deploy

    config = risk_config()
    system = deploy(config, admin, log=None)
    engine, risk, lens, feed, usdc = system.engine, system.risk, system.lens, system.feeds[MARKET], system.settlement
    market = system.markets[MARKET]
    decimals = int(usdc.decimals())
    one = 10**decimals

    def fund(account: Any, whole: int) -> None:
        usdc.mint(account, whole * one, sender=account)
        usdc.approve(engine, whole * one, sender=account)
        engine.deposit(0, usdc, whole * one, sender=account)

    def buy(account: Any, size: int) -> None:
        price = int(engine.oracle_price(market)[0])
        engine.modify_position(account, 0, market, size, price * 101 // 100, sender=account)

    def set_price(usd: int) -> None:
        feed.set_answer(usd * 10 ** int(feed.decimals()), sender=admin)

    def rates_line() -> str:
        r = lens.market_risk(market)
        ramp = ""
        if int(r.vol_ramp_end) > chain.pending_timestamp:
            hours = (int(r.vol_ramp_end) - chain.pending_timestamp) / 3600
            ramp = f", ramping to {_pct2(r.vol_mm_target)} over the next {hours:.0f} h"
        return (
            f"sigma {_pct2(r.sigma_daily)} a day -> base IM {_pct2(r.im_rate)} (now), base MM"
            f" {_pct2(r.mm_rate)}{ramp}"
        )

    echo("")
    echo(f"== {first_step}. The risk model: a second deployment with deploy/risk.yaml")
    _say(
        echo,
        "Same markets, now with the volatility margin calibrated on 2017-2024 BTC data (IM ="
        " z x daily sigma, at least 10 %, MM half of it), size tiers (1.25x, 1.5x and 2x the base"
        " rate above 1M, 5M and 20M USD of notional) and the margin-call band (25 % above MM).",
    )
    usdc.mint(lp, 20_000_000 * one, sender=lp)
    usdc.approve(system.vault, 20_000_000 * one, sender=lp)
    system.vault.deposit(20_000_000 * one, lp, sender=lp)
    echo(f"   {MARKET}: {rates_line()}")

    echo("")
    echo(f"== {first_step + 1}. Size tiers")
    fund(carol, 1_000_000)
    buy(carol, WHALE_SIZE)
    rates = lens.account_rates(carol, 0)
    base = int(lens.market_risk(market).im_rate)
    _say(
        echo,
        f"carol buys {fmt_size(WHALE_SIZE, MARKET, signed=False)} ({fmt_wad(rates.notional)} USD):"
        f" the first 1M pays the base IM rate {_pct2(base)}, the rest 1.25x that, so her IM is"
        f" {fmt_wad(rates.im_required)} USD, an effective {_pct2(rates.im_rate)} instead of"
        f" {_pct2(base)} (MM {fmt_wad(rates.mm_required)}, {_pct2(rates.mm_rate)}).",
    )
    if not int(rates.im_rate) > base:
        raise DemoError("the tiers did not raise carol's effective IM rate")

    echo("")
    echo(f"== {first_step + 2}. A volatility shock")
    fund(dave, DAVE_DEPOSIT)
    buy(dave, WAD)
    state = engine.account(dave, 0)
    _say(
        echo,
        f"dave buys 1 {MARKET} on {DAVE_DEPOSIT:,} USDC (IM {fmt_wad(state.im_required)}, MM"
        f" {fmt_wad(state.mm_required)}). Then {MARKET} swings about 6 % every hour for"
        f" {len(SHOCK)} hours; a keeper samples the price each hour (`update_volatility`).",
    )
    im_before = int(lens.market_risk(market).im_rate)
    for usd in SHOCK:
        chain.pending_timestamp += 3_600
        set_price(usd)
        risk.update_volatility(market, sender=keeper)
    after = lens.market_risk(market)
    echo(f"   {MARKET}: {rates_line()}")
    state = engine.account(dave, 0)
    _say(
        echo,
        f"dave's IM is now {fmt_wad(state.im_required)} and his MM {fmt_wad(state.mm_required)}:"
        " IM applies at once to new risk, while MM climbs linearly, so the shock alone"
        " liquidates nobody who was healthy before it.",
    )
    if not (int(after.im_rate) > im_before and int(after.vol_mm_target) > int(after.vol_mm_rate)):
        raise DemoError("the shock should raise IM at once and ramp MM")

    echo("")
    echo(f"== {first_step + 3}. A margin call")
    # The price at which dave's equity is 10 % above his MM (one long BTC, below the first tier).
    state = engine.account(dave, 0)
    price = int(engine.oracle_price(market)[0])
    mm_rate = int(state.mm_required) * WAD // price
    target = (price - int(state.equity_maint)) * WAD // (WAD - 11 * mm_rate // 10)
    chain.pending_timestamp += 60
    set_price(target // WAD)
    state = engine.account(dave, 0)
    _say(
        echo,
        f"{MARKET} falls to {fmt_wad(target // WAD * WAD)}: dave's equity {fmt_wad(state.equity_maint)} is"
        f" below IM but within 25 % of his MM {fmt_wad(state.mm_required)}: the margin-call band."
        " Anyone may now cut his position by up to a quarter for a quarter of the liquidation fee,"
        " before he becomes liquidatable.",
    )
    receipt = engine.margin_call(dave, 0, market, WAD, sender=keeper)
    event = receipt.events.filter(engine.MarginCall)[0]
    state = engine.account(dave, 0)
    _say(
        echo,
        f"The keeper's margin call closes {fmt_size(int(event.size_closed), MARKET, signed=False)} at"
        f" {fmt_wad(event.price)} for a fee of {fmt_tokens(int(event.fee), decimals, 2)} USDC;"
        f" dave now has equity {fmt_wad(state.equity_maint)} against MM {fmt_wad(state.mm_required)}"
        f" ({STATUS_NAMES[int(state.status)]}).",
    )
    if int(state.status) >= LIQUIDATABLE or int(event.size_closed) != WAD // 4:
        raise DemoError("the margin call should close a quarter and leave dave above MM")
    return first_step + 4


# --------------------------------------------------------------------------
#                    Third act: a multi-collateral account
# --------------------------------------------------------------------------

ASSET = "WETH"
WETH_CONFIG = CollateralAssetConfig(
    name=ASSET,
    decimals=18,
    mock_price=Decimal(3_000),
    feed_decimals=8,
    heartbeat=3_600,
    min_price=30 * WAD,
    max_price=300_000 * WAD,
    w_init=80 * WAD // 100,
    w_maint=85 * WAD // 100,
    discount=5 * WAD // 100,
    cap=10_000 * WAD,
)
ERIN_WETH = 5  # whole WETH (15,000 USD at 3,000), and no USDC
ERIN_SIZE = WAD  # +1 BTC at BTC_OPEN
ERIN_CUT = -WAD // 2  # she halves it in the margin call
BTC_OPEN, BTC_LOW = 60_000, 52_000
WETH_LOW = 2_150  # then ETH falls: just below her maintenance margin
KEEPER_FUNDS = 5_000  # USDC in the keeper's sub-account 0


def _collateral_act(ctx: _Ctx, first_step: int) -> None:
    """Back on the first deployment: the admin lists WETH, erin trades BTC on
    WETH alone, a loss leaves her with a USDC debt backed by the WETH, a fall
    of ETH makes her liquidatable and the keeper repays part of the debt for
    WETH at a discount (``liquidate_collateral``)."""
    from margin_engine.deploy import list_collateral

    manager = ctx.system.collateral
    _step(
        ctx,
        f"{first_step}. Multi-collateral: the admin lists {ASSET}",
        f"Back on the first deployment. Besides USDC, an account may hold any asset the admin"
        f" lists, each on its own oracle; it counts at its price times a weight. The admin lists"
        f" {ASSET} (a mock 18-decimal token on a mock feed) with `configurator.list_collateral`:",
    )
    weth = list_collateral(ctx.system, WETH_CONFIG, log=lambda msg: ctx.echo(f"     {msg}"))
    feed = ctx.system.collateral_feeds[ASSET]
    listed = manager.collateral(weth)
    _say(
        ctx.echo,
        f"{ASSET} counts at w_init {_pct(listed.w_init)} of its value towards the initial margin"
        f" (opening, withdrawing) and at w_maint {_pct(listed.w_maint)} towards the maintenance"
        f" margin; a liquidator repaying a debt receives it at a {_pct(listed.discount)} discount;"
        f" at most {_amount(ctx, int(listed.cap), ASSET)} may be deposited in all.",
    )

    _step(
        ctx,
        f"{first_step + 1}. erin trades on {ASSET} alone",
        f"{MARKET} is back at {BTC_OPEN:,}. erin deposits {ERIN_WETH} {ASSET} and no USDC, then buys"
        f" {fmt_size(ERIN_SIZE, MARKET, 1, signed=False)}. Losses, fees and funding are paid in"
        " USDC, so the fee already leaves her USDC balance negative: a debt, backed by her"
        f" {ASSET}.",
    )
    _set_price(ctx, BTC_OPEN)
    _deposit(ctx, "erin", ERIN_WETH, ASSET)
    _trade(ctx, "erin", ERIN_SIZE)
    statuses = _health_table(ctx, ["erin"], ASSET)
    _expect(statuses, "erin", {HEALTHY}, "after opening on WETH")
    opening_debt = _debt(ctx, "erin")
    _explain(ctx, "erin")
    free = int(ctx.lens.max_withdraw(ctx.actors["erin"], 0, weth))
    ctx.echo(f"      She could still withdraw {_amount(ctx, free, ASSET)} (the lens's `max_withdraw`).")

    _step(
        ctx,
        f"{first_step + 2}. {MARKET} falls to {BTC_LOW:,}: erin halves her position",
        f"In the margin call she sells half her long: the loss on that half is realised, in USDC"
        f" she does not have, so her debt grows; her {ASSET} still backs it.",
    )
    _set_price(ctx, BTC_LOW)
    _expect(_health_table(ctx, ["erin"], ASSET), "erin", {MARGIN_CALL}, f"at {MARKET} {BTC_LOW}")
    _trade(ctx, "erin", ERIN_CUT)
    _expect(_health_table(ctx, ["erin"], ASSET), "erin", {HEALTHY, MARGIN_CALL}, "after halving")
    _explain(ctx, "erin")
    if _debt(ctx, "erin") <= opening_debt:
        raise DemoError("the realised loss should have grown erin's debt")

    _step(
        ctx,
        f"{first_step + 3}. ETH falls to {WETH_LOW:,}",
        f"Her {ASSET} is worth less: her equity falls below the maintenance margin.",
    )
    _set_price(ctx, WETH_LOW, feed)
    statuses = _health_table(ctx, ["erin"], ASSET)
    _expect(statuses, "erin", {LIQUIDATABLE}, f"at ETH {WETH_LOW}")
    debt = _debt(ctx, "erin")
    _explain(ctx, "erin")
    units, _value_init, value_maint = _holding(ctx, ctx.actors["erin"], ASSET)
    _say(
        ctx.echo,
        f"Her debt: {_amount(ctx, debt)}, backed by {_amount(ctx, units, ASSET)} that count"
        f" {fmt_wad(value_maint)} USD at w_maint.",
        first="      ",
        rest="      ",
    )

    _step(
        ctx,
        f"{first_step + 4}. The keeper liquidates {ASSET}",
        f"The keeper repays part of erin's debt from its own sub-account 0 and receives her {ASSET}"
        f" at the oracle price less the {_pct(listed.discount)} discount (`liquidate_collateral`),"
        " never more than brings her equity back to MM x"
        f" {1 + Decimal(int(ctx.engine.liquidation_params().buffer)) / WAD:g}. No token moves:"
        " both sides are booked in the engine.",
    )
    _deposit(ctx, "keeper", KEEPER_FUNDS)
    repaid = _liquidate_collateral(ctx, "keeper", "erin", ASSET, debt)
    statuses = _health_table(ctx, ["erin", "keeper"], ASSET)
    _expect(statuses, "erin", {HEALTHY, MARGIN_CALL}, "after the collateral liquidation")
    if repaid >= debt:
        raise DemoError("the repayment should stop at MM x (1 + buffer), short of the whole debt")
    _explain(ctx, "erin")
    _say(
        ctx.echo,
        "She is above the maintenance margin again: her position stays open, no position"
        " liquidation is needed.",
        first="      ",
        rest="      ",
    )

    _step(
        ctx,
        f"{first_step + 5}. Custody",
        f"The engine holds every token; the collateral manager keeps the {ASSET} ledger.",
    )
    _custody_check(ctx)
    _custody_check(ctx, ASSET)


def _debt(ctx: _Ctx, name: str) -> int:
    """`name`'s settlement debt (USDC units); raises DemoError when there is none."""
    debt = -int(ctx.engine.balance_of(ctx.actors[name], 0, ctx.usdc))
    if debt <= 0:
        raise DemoError(f"{name} should owe USDC, her balance is {-debt}")
    return debt


def _liquidate_collateral(ctx: _Ctx, keeper_name: str, name: str, asset: str, max_repay: int) -> int:
    """`keeper_name` repays up to `max_repay` of `name`'s debt for `asset`
    (``liquidate_collateral``); prints the manager's ``CollateralLiquidated``
    event, checks that both accounts' balances moved by exactly what it says
    and returns the amount repaid (USDC units)."""
    owner, keeper = ctx.actors[name], ctx.actors[keeper_name]
    token = ctx.system.collaterals[asset]
    manager = ctx.system.collateral

    def balances() -> tuple[int, int, int, int]:
        return (
            int(ctx.engine.balance_of(owner, 0, ctx.usdc)),
            int(ctx.engine.balance_of(owner, 0, token)),
            int(ctx.engine.balance_of(keeper, 0, ctx.usdc)),
            int(ctx.engine.balance_of(keeper, 0, token)),
        )

    before = balances()
    price, _ok = manager.collateral_price(token)
    discount = int(manager.collateral(token).discount)
    receipt = ctx.engine.liquidate_collateral(owner, 0, token, max_repay, sender=keeper)
    events = receipt.events.filter(manager.CollateralLiquidated)
    if len(events) != 1:
        raise DemoError(f"expected one CollateralLiquidated event, got {len(events)}")
    event = events[0]
    seized, repaid = int(event.seized), int(event.repaid)
    worth = seized * 10 ** (18 - int(token.decimals())) * int(price) // WAD  # WAD USD
    paid = repaid * 10 ** (18 - ctx.decimals)  # WAD USD
    left = _amount(ctx, -(before[0] + repaid))
    ctx.echo(f"   {keeper_name} liquidates {name}'s {asset} (from the CollateralLiquidated event):")
    ctx.echo(f"     repaid           {_amount(ctx, repaid)} of {_amount(ctx, -before[0])} debt ({left} left)")
    ctx.echo(f"     seized           {_amount(ctx, seized, asset)}, worth {fmt_wad(worth)} USD at {fmt_wad(price)}")
    ctx.echo(
        f"     discount         {_pct(discount)}: {keeper_name} paid {fmt_wad(paid)} USD,"
        f" {fmt_wad(worth - paid)} below the oracle value"
    )
    after = balances()
    expected = (before[0] + repaid, before[1] - seized, before[2] - repaid, before[3] + seized)
    if seized <= 0 or repaid <= 0 or after != expected:
        raise DemoError(f"collateral liquidation: balances {before} -> {after}, event {seized=} {repaid=}")
    return repaid

