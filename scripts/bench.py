"""Gas benchmark: ``ape run bench [--network ...] [--output STEM]`` (``make bench``).

Deploys two fresh systems with Ape's test accounts, measures the gas of each
user-facing operation and writes ``bench/gas.md`` and ``bench/gas.json`` (on
another network than the local one: ``bench/gas-<ecosystem>-<network>-<provider>``).
The logic lives in :mod:`margin_engine.bench`. Transaction logs are hidden;
``-v INFO`` shows them.

On anvil: ``ape run bench --network ethereum:local:foundry``.
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, ape_cli_context


@click.command(cls=ConnectedProviderCommand, short_help="Measure the engine's gas")
@ape_cli_context(default_log_level="WARNING")
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output path without suffix (writes .md and .json). Default: bench/gas.",
)
def cli(cli_ctx, network, provider, output):
    if not network.is_dev:
        raise click.UsageError(
            "the bench mints mock tokens with test accounts: use a development network, "
            f"not {network.choice}"
        )
    from ape import project

    from margin_engine.bench import render_console, run_bench, write_outputs

    if output is None:
        name = "gas"
        if (network.ecosystem.name, network.name, provider.name) != ("ethereum", "local", "test"):
            name = f"gas-{network.ecosystem.name}-{network.name}-{provider.name}"
        output = Path(project.path) / "bench" / name

    result = run_bench(echo=click.echo)
    click.echo("")
    click.echo(render_console(result))
    md, js = write_outputs(result, output)
    click.echo("")
    click.echo(f"written: {md} and {js}")
