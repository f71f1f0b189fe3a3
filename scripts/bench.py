"""Benchmarks: ``ape run bench [--network ...] [--output STEM] [--no-scan | --scan-only]`` (``make bench``).

Two parts:

- gas: deploys two fresh systems with Ape's test accounts on the connected
  network, measures the gas of each user-facing operation and writes
  ``bench/gas.md`` and ``bench/gas.json`` (on another network than the local
  one: ``bench/gas-<ecosystem>-<network>-<provider>``). Logic in
  :mod:`margin_engine.bench`.
- scan: starts its own anvil node (whatever ``--network`` says), fills the
  engine with 1,000 then 10,000 accounts with open positions and times the
  liquidator bot's scan; writes ``bench/scan.md`` and ``bench/scan.json``.
  Logic in :mod:`margin_engine.bench_scan`; it needs anvil (``make node``).

Transaction logs are hidden; ``-v INFO`` shows them. The gas part on anvil:
``ape run bench --network ethereum:local:foundry --no-scan``.
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, ape_cli_context


def _sizes(ctx, param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part.replace("_", "")) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not sizes or sizes[0] <= 0 or sizes[-1] > 65_536:
        raise click.BadParameter("sizes must be between 1 and 65,536")
    return sizes


@click.command(cls=ConnectedProviderCommand, short_help="Measure the engine's gas and the bot's scan")
@ape_cli_context(default_log_level="WARNING")
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Gas report path without suffix (writes .md and .json). Default: bench/gas.",
)
@click.option("--no-scan", "no_scan", is_flag=True, help="Skip the scan benchmark (no anvil needed).")
@click.option("--scan-only", "scan_only", is_flag=True, help="Run the scan benchmark only.")
@click.option(
    "--scan-accounts",
    "scan_accounts",
    default="1000,10000",
    show_default=True,
    callback=_sizes,
    help="Numbers of accounts scanned, comma-separated (populated in increasing order).",
)
@click.option(
    "--scan-output",
    "scan_output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Scan report path without suffix. Default: bench/scan.",
)
def cli(cli_ctx, network, provider, output, no_scan, scan_only, scan_accounts, scan_output):
    if no_scan and scan_only:
        raise click.UsageError("--no-scan and --scan-only exclude each other")
    if not network.is_dev:
        raise click.UsageError(
            "the bench mints mock tokens with test accounts: use a development network, "
            f"not {network.choice}"
        )
    from ape import project

    if not scan_only:
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

    if not no_scan:
        from margin_engine.anvil import AnvilNotFoundError
        from margin_engine.bench_scan import render_scan_console, run_scan_bench, write_scan_outputs

        if not scan_only:
            click.echo("")
        try:
            scan = run_scan_bench(echo=click.echo, sizes=scan_accounts)
        except AnvilNotFoundError as err:
            raise click.ClickException(f"{err} (or skip this part: --no-scan)") from err
        click.echo("")
        click.echo(render_scan_console(scan))
        md, js = write_scan_outputs(scan, scan_output or Path(project.path) / "bench" / "scan")
        click.echo("")
        click.echo(f"written: {md} and {js}")
