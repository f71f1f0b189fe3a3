"""Guided margin engine scenario: ``ape run demo`` (``make demo``).

Deploys a fresh system on the local chain (or another development network
given with ``--network``) with Ape's test accounts and walks through deposits,
leverage, margin calls and liquidations. The logic lives in
:mod:`margin_engine.demo`. Transaction logs are hidden; ``-v INFO`` shows them.
"""

import click
from ape.cli import ConnectedProviderCommand, ape_cli_context


@click.command(cls=ConnectedProviderCommand, short_help="Run the margin engine demo")
@ape_cli_context(default_log_level="WARNING")
def cli(cli_ctx, network, provider):
    if not network.is_dev:
        raise click.UsageError(
            "the demo mints mock tokens with test accounts: use a development network, "
            f"not {network.choice}"
        )
    from margin_engine.demo import run_demo

    run_demo(echo=click.echo)
