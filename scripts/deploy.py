"""Deploy the margin engine: ``ape run deploy [--config PATH] [--account ALIAS] [--network ...]``.

Thin wrapper over :func:`margin_engine.deploy.deploy`. Without ``--config`` it
deploys the built-in local default (:func:`margin_engine.config.default_config`:
mock USDC, BTC and ETH markets on mock feeds). On a local/dev network without
``--account`` the first test account deploys; elsewhere an account is asked for.
"""

import json
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context
from ape.cli.choices import AccountAliasPromptChoice

from margin_engine.config import default_config, load_config
from margin_engine.deploy import deploy


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the margin engine")
@ape_cli_context()
@account_option(prompt=False)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deployment configuration (YAML or JSON). Default: the built-in local config.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the addresses to this JSON file.",
)
def cli(cli_ctx, network, provider, account, config_path, output):
    where = f"{network.choice}:{provider.name}"
    config = load_config(config_path) if config_path else default_config()

    if account is None:
        if network.is_dev:
            account = cli_ctx.account_manager.test_accounts[0]
        else:
            account = AccountAliasPromptChoice().select_account()

    mocks = [m.name for m in config.markets if m.feed is None]
    if not network.is_dev and (config.settlement_asset is None or mocks):
        click.secho(
            f"WARNING: deploying mock contracts (anyone can mint / set prices) on "
            f"{where}: settlement mock={config.settlement_asset is None}, "
            f"mock feeds={mocks}",
            fg="yellow",
            err=True,
        )

    click.echo(f"Deploying on {where} from {account.address}")
    deployment = deploy(config, account)

    addresses = deployment.addresses()
    click.echo("")
    for key, address in addresses.items():
        click.echo(f"{key:<20} {address}")
    for name, market_id in deployment.markets.items():
        click.echo(f"market {market_id:<13} {name}")

    if output is not None:
        data = {
            "network": where,
            "deployer": str(account.address),
            "addresses": addresses,
            "markets": deployment.markets,
        }
        output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        click.echo(f"addresses written to {output}")
