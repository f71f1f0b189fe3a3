"""Engine transactions per second on titanoboa and on Ape's test provider.

Not a test (pytest does not collect it). From the repository root::

    PATH=$PWD/.venv/bin:$PATH .venv/bin/python tests/fuzz/throughput.py [boa|ape|both] [--trades N]

Both back ends deploy the default system (``default_config()``, 6-decimal
USDC), fund one trader, then time ``N`` trades: ``N / 2`` rounds of opening
0.1 BTC (``modify_position``) and closing it (``close_position``), each sent
as its own transaction and waited for. Deployment and compilation are not
timed. The numbers are wall-clock and depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UINT256_MAX = 2**256 - 1
SIZE = 10**17  # 0.1 BTC


def measure_boa(trades: int) -> float:
    """Trades per second on boa's in-process EVM."""
    sys.path.insert(0, str(HERE))
    from boa_system import BTC, deploy_system

    system = deploy_system(6)
    trader = system.actors.traders["alice"]
    system.fund(trader, 100_000 * 10**6)
    engine = system.engine
    start = time.perf_counter()
    for _ in range(trades // 2):
        engine.modify_position(trader, 0, BTC, SIZE, UINT256_MAX, sender=trader)
        engine.close_position(trader, 0, BTC, 0, sender=trader)
    return (trades // 2 * 2) / (time.perf_counter() - start)


def measure_ape(trades: int) -> float:
    """Trades per second on Ape's local test provider (the one ``ape test`` uses)."""
    from ape import accounts, networks
    from ape.logging import logger

    logger.set_level("ERROR")  # no line per confirmed transaction
    from margin_engine.config import default_config
    from margin_engine.deploy import deploy

    with networks.ethereum.local.use_provider("test"):
        admin, trader = accounts.test_accounts[0], accounts.test_accounts[4]
        system = deploy(default_config(), admin, log=None)
        amount = 100_000 * 10**6
        system.settlement.mint(trader, amount, sender=trader)
        system.settlement.approve(system.engine, amount, sender=trader)
        system.engine.deposit(0, system.settlement, amount, sender=trader)
        engine = system.engine
        start = time.perf_counter()
        for _ in range(trades // 2):
            engine.modify_position(trader, 0, 0, SIZE, UINT256_MAX, sender=trader)
            engine.close_position(trader, 0, 0, 0, sender=trader)
        return (trades // 2 * 2) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", nargs="?", choices=["boa", "ape", "both"], default="both")
    parser.add_argument("--trades", type=int, default=200)
    args = parser.parse_args()
    results = {}
    if args.backend in ("boa", "both"):
        results["titanoboa"] = measure_boa(args.trades)
    if args.backend in ("ape", "both"):
        results["ape (test provider)"] = measure_ape(args.trades)
    for name, rate in results.items():
        print(f"{name}: {rate:.1f} engine transactions/s ({args.trades} open/close trades)")
    if len(results) == 2:
        print(f"ratio: {results['titanoboa'] / results['ape (test provider)']:.1f}x")


if __name__ == "__main__":
    main()
