"""Liquidator and keeper loop: ``ape run liquidator --network ... --deployment FILE``.

A plain polling loop over :class:`margin_engine.runner.LiquidatorBot` for any
node (the Silverback app in ``bot.py`` is the event-driven alternative). Each
round reads every account with open positions through ``MarginLens`` in batch
calls at one block, values them with the reference model (the engine's own
valuation and quotes in markets that use the risk model), liquidates the
profitable ones and margin-calls the accounts in the band whose fee beats
the gas (each after a dry run on the latest state), samples volatility once
per epoch where no trade did, and accrues funding where it is due. Addresses come from the JSON that ``ape run deploy --output``
writes. On a development network without ``--account`` the second test
account sends (the first one deployed).
"""

import json
import time
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context
from ape.cli.choices import AccountAliasPromptChoice

from margin_engine.model import WAD
from margin_engine.runner import BotSettings, CircuitOpen, LiquidatorBot


@click.command(cls=ConnectedProviderCommand, short_help="Run the liquidator and keeper loop")
@ape_cli_context()
@account_option(prompt=False)
@click.option(
    "--deployment",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Addresses written by `ape run deploy --output FILE`.",
)
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between rounds.")
@click.option("--rounds", type=int, default=0, help="Stop after this many rounds (0: run until stopped).")
@click.option("--gas-per-liquidation", type=int, default=BotSettings.gas_per_liquidation, show_default=True)
@click.option("--min-profit", type=float, default=0.0, show_default=True, help="Minimum profit per liquidation (USD).")
@click.option("--native-market", type=str, default="ETH", show_default=True, help="Market pricing the gas token.")
@click.option("--funding-max-age", type=int, default=3_600, show_default=True, help="Accrue older funding (s; 0: never).")
@click.option("--close-bankrupt/--no-close-bankrupt", default=False, help="Also close accounts that pay no reward.")
@click.option(
    "--margin-calls/--no-margin-calls", default=True, show_default=True, help="Reduce accounts in the margin-call band."
)
@click.option("--gas-per-margin-call", type=int, default=BotSettings.gas_per_margin_call, show_default=True)
@click.option(
    "--volatility-updates/--no-volatility-updates",
    default=True,
    show_default=True,
    help="Sample each volatility market once per epoch when no trade did.",
)
@click.option(
    "--collateral-liquidations/--no-collateral-liquidations",
    default=True,
    show_default=True,
    help="Liquidate the collateral assets of accounts with settlement debt (from sub-account 0's funds).",
)
@click.option("--max-failures", type=int, default=BotSettings.max_failures, show_default=True)
def cli(
    cli_ctx,
    network,
    provider,
    account,
    deployment,
    interval,
    rounds,
    gas_per_liquidation,
    min_profit,
    native_market,
    funding_max_age,
    close_bankrupt,
    margin_calls,
    gas_per_margin_call,
    volatility_updates,
    collateral_liquidations,
    max_failures,
):
    from ape import project

    data = json.loads(deployment.read_text(encoding="utf-8"))
    addresses, markets = data["addresses"], data.get("markets", {})
    if account is None:
        if network.is_dev:
            account = cli_ctx.account_manager.test_accounts[1]
        else:
            account = AccountAliasPromptChoice().select_account()

    settings = BotSettings(
        gas_per_liquidation=gas_per_liquidation,
        native_market=markets.get(native_market),
        min_profit_usd_wad=int(min_profit * WAD),
        funding_max_age=funding_max_age or None,
        close_bankrupt=close_bankrupt,
        margin_calls=margin_calls,
        gas_per_margin_call=gas_per_margin_call,
        volatility_updates=volatility_updates,
        collateral_liquidations=collateral_liquidations,
        max_failures=max_failures,
    )
    engine = project.MarginEngine.at(addresses["engine"], fetch_from_explorer=False)
    lens = project.MarginLens.at(addresses["lens"], fetch_from_explorer=False)
    bot = LiquidatorBot(engine, lens, account, settings, log=lambda msg: click.echo(msg, err=False))
    click.echo(f"liquidator {account.address} on {network.choice}:{provider.name}, engine {engine.address}")

    done = 0
    while rounds == 0 or done < rounds:
        try:
            report = bot.run_round()
        except CircuitOpen as exc:
            click.secho(f"circuit breaker open, stopping: {exc}", fg="red", err=True)
            raise SystemExit(2) from exc
        snap = report.snapshot
        click.echo(
            f"block {snap.block}: {snap.total_active} active, {len(snap.assessments)} checked "
            f"in {snap.seconds:.2f}s ({snap.rpc_calls} calls), "
            f"{len(report.liquidated)} liquidated, {len(report.margin_calls)} margin calls, "
            f"{len(report.volatility_sampled)} sampled, {len(report.round.skipped)} skipped"
        )
        done += 1
        if rounds == 0 or done < rounds:
            time.sleep(interval)
