"""The liquidator and keeper bot as a Silverback app (``bot``).

Run it from the repository root against any node, e.g. anvil::

    MARGIN_ENGINE_DEPLOYMENT=deployment.json \\
        silverback run bot:bot --network ethereum:local:foundry --account TEST::1

``MARGIN_ENGINE_DEPLOYMENT`` is the JSON that ``ape run deploy --output``
writes. Every new block (and every oracle update of a listed feed) runs one
round of :class:`margin_engine.runner.LiquidatorBot`: read all accounts with
open positions in batch lens calls at one block, value them with the
reference model (with the engine's own valuation and liquidation quotes in
markets that use the risk model), liquidate the profitable ones and
margin-call the accounts in the band whose fee beats the gas, each after a
dry run on the latest state, sample the volatility of markets no trade has
sampled this epoch, accrue funding where it is due. ``PositionModified`` logs add
candidate accounts (kept reorg-safe by the account book). Transactions use
``bot.nonce``. The app stops itself (``CircuitBreaker``) after
``MARGIN_ENGINE_MAX_FAILURES`` consecutive failed transactions.

Settings (environment): ``MARGIN_ENGINE_MIN_PROFIT`` (USD, default 0),
``MARGIN_ENGINE_GAS_PER_LIQUIDATION`` (default 250000),
``MARGIN_ENGINE_FUNDING_MAX_AGE`` (seconds, default 3600, 0 = never),
``MARGIN_ENGINE_CLOSE_BANKRUPT`` (1 = also close accounts that pay no reward),
``MARGIN_ENGINE_MARGIN_CALLS`` (default 1; 0 = no margin calls),
``MARGIN_ENGINE_GAS_PER_MARGIN_CALL`` (default 250000),
``MARGIN_ENGINE_VOLATILITY_UPDATES`` (default 1; 0 = never sample volatility),
``MARGIN_ENGINE_COLLATERAL_LIQUIDATIONS`` (default 1; 0 = no collateral liquidations),
``MARGIN_ENGINE_MAX_FAILURES`` (default 3). Use a fresh
``SILVERBACK_BOT_NAME`` per chain: Silverback keeps its state (the last
nonce among it) under ``.silverback-sessions/<name>/``.
"""

import json
import os
import threading
from pathlib import Path

from ape import chain, project
from ape.logging import logger
from silverback import CircuitBreaker, SilverbackBot, StateSnapshot

from margin_engine.model import WAD
from margin_engine.runner import BotSettings, CircuitOpen, LiquidatorBot

bot = SilverbackBot()

_deployment = json.loads(Path(os.environ["MARGIN_ENGINE_DEPLOYMENT"]).read_text(encoding="utf-8"))
_addresses = _deployment["addresses"]
engine = project.MarginEngine.at(_addresses["engine"], fetch_from_explorer=False)
lens = project.MarginLens.at(_addresses["lens"], fetch_from_explorer=False)
feeds = [
    project.MockAggregator.at(address, fetch_from_explorer=False)
    for key, address in _addresses.items()
    if key.startswith("feed:")
]

settings = BotSettings(
    gas_per_liquidation=int(os.environ.get("MARGIN_ENGINE_GAS_PER_LIQUIDATION", BotSettings.gas_per_liquidation)),
    native_market=_deployment.get("markets", {}).get(os.environ.get("MARGIN_ENGINE_NATIVE_MARKET", "ETH")),
    min_profit_usd_wad=int(float(os.environ.get("MARGIN_ENGINE_MIN_PROFIT", "0")) * WAD),
    funding_max_age=int(os.environ.get("MARGIN_ENGINE_FUNDING_MAX_AGE", "3600")) or None,
    close_bankrupt=os.environ.get("MARGIN_ENGINE_CLOSE_BANKRUPT", "0") == "1",
    margin_calls=os.environ.get("MARGIN_ENGINE_MARGIN_CALLS", "1") == "1",
    collateral_liquidations=os.environ.get("MARGIN_ENGINE_COLLATERAL_LIQUIDATIONS", "1") == "1",
    gas_per_margin_call=int(os.environ.get("MARGIN_ENGINE_GAS_PER_MARGIN_CALL", BotSettings.gas_per_margin_call)),
    volatility_updates=os.environ.get("MARGIN_ENGINE_VOLATILITY_UPDATES", "1") == "1",
    max_failures=int(os.environ.get("MARGIN_ENGINE_MAX_FAILURES", BotSettings.max_failures)),
)
# Handlers run in a thread pool: one round at a time (a busy round skips a trigger).
_round_lock = threading.Lock()
runner: LiquidatorBot | None = None


@bot.on_startup()
def startup(startup_state: StateSnapshot):
    global runner
    runner = LiquidatorBot(engine, lens, bot.signer, settings, log=logger.info)
    bot.state.rounds = 0
    bot.state.liquidations = 0
    bot.state.margin_calls = 0
    bot.state.volatility_samples = 0
    logger.info(f"liquidator {bot.signer.address} watching engine {engine.address} ({startup_state!r})")


def _round(trigger: str) -> dict:
    assert runner is not None
    if not _round_lock.acquire(blocking=False):
        return {}
    try:
        report = runner.run_round(tx_fields=lambda: {"nonce": bot.nonce})
    except CircuitOpen as exc:
        raise CircuitBreaker(str(exc)) from exc
    finally:
        _round_lock.release()
    bot.state.rounds += 1
    bot.state.liquidations += len(report.liquidated)
    bot.state.margin_calls += len(report.margin_calls)
    bot.state.volatility_samples += len(report.volatility_sampled)
    snap = report.snapshot
    logger.info(
        f"{trigger}: block {snap.block}, {len(snap.assessments)} accounts in {snap.seconds:.2f}s "
        f"({snap.rpc_calls} calls), {len(report.liquidated)} liquidated, "
        f"{len(report.margin_calls)} margin calls, {len(report.volatility_sampled)} volatility samples"
    )
    return {
        "accounts": len(snap.assessments),
        "liquidated": len(report.liquidated),
        "margin_calls": len(report.margin_calls),
        "volatility_samples": len(report.volatility_sampled),
        "scan_seconds": snap.seconds,
    }


@bot.on_(chain.blocks)
def on_block(block):
    assert runner is not None
    runner.on_block(int(block.number))
    return _round(f"block {block.number}")


@bot.on_(engine.PositionModified)
def on_position(log):
    assert runner is not None
    runner.on_position_event(log)


def _watch_feed(index: int, feed) -> None:
    def on_price(log):
        return _round(f"price update of {log.contract_address}")

    on_price.__name__ = f"on_price_{index}"  # Silverback names tasks after handlers
    bot.on_(feed.AnswerUpdated)(on_price)


for _index, _feed in enumerate(feeds):
    _watch_feed(_index, _feed)


@bot.on_shutdown()
def shutdown():
    logger.info(
        f"stopped after {bot.state.rounds} rounds, {bot.state.liquidations} liquidations, "
        f"{bot.state.margin_calls} margin calls, {bot.state.volatility_samples} volatility samples"
    )
