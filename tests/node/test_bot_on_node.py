"""The liquidator and keeper bot end to end on a real node (anvil).

Each test deploys a fresh system with ``ape run deploy`` (so the tests share
no state with each other or with the session's ``deployment``), funds the
vault, opens a book of positions, starts one front end of the bot as its own
process (the Silverback app ``bot.py``, or ``ape run liquidator``), moves
the oracle prices, and checks on chain what the bot did:

- every account the move made LIQUIDATABLE or BANKRUPT is liquidated by
  ``accounts[1]`` (the bot's sender), within a few blocks and seconds, and
  ends below the liquidation threshold (or flat);
- no other account is touched (no ``Liquidation`` nor ``PositionModified``
  for it after the move, its positions unchanged);
- with funding on and open interest, the keeper accrues funding once it is
  older than the configured age;
- on ``deploy/risk.yaml`` (volatility margin, tiers, margin-call band) the
  plain loop liquidates and margin-calls exactly the accounts that need it,
  for exactly the quoted reward and fee, and samples each market's
  volatility once in an epoch no trade sampled.

Both prices move in one block (auto-mining paused for the two transactions,
sent from one of anvil's unlocked accounts), so the statuses at that block
are the ones the bot acts on. Before the move no account is at risk and no
funding is due, so the bot sends nothing while auto-mining is paused.

The book (default config: BTC 60,000 and ETH 3,000; IM 10%, MM 5%, fee 0.1%)
and its statuses after ETH 2,690 and BTC 67,500::

    safe         a3/0   long 1 ETH, 3,000 USDC                   HEALTHY
    call         a3/1   long 2 ETH, 1,000                        MARGIN_CALL
    thin_eth     a4/0   long 5 ETH, 2,000                        LIQUIDATABLE
    bankrupt     a5/1   long 3 ETH, 910                          BANKRUPT
    thin_btc     a6/0   short 0.1 BTC, 1,000                     LIQUIDATABLE
    cross        a7/0   long 1 ETH, 1,000                        HEALTHY
    isolated     a7/3   isolated short 0.1 BTC, 1,000            LIQUIDATABLE
    hedged       a8/0   long 0.1 BTC + short 2 ETH, 1,500        HEALTHY
    two_markets  a8/2   long 4 ETH + short 0.05 BTC, 2,000       LIQUIDATABLE

``two_markets`` takes two liquidations in two rounds (the bot sends at most
one per account and round): closing all of its ETH, the larger reward,
leaves it still below maintenance.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from margin_engine.anvil import APE_NETWORK, Anvil

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

BTC, ETH = 0, 1
WAD = 10**18
USDC = 10**6
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = range(4)
BUY_LIMIT, SELL_LIMIT = 2**256 - 1, 0
FEED_DECIMALS = 8

START = {"ETH": 3_000, "BTC": 60_000}
MOVED = {"ETH": 2_690, "BTC": 67_500}
LP_FUNDING = 1_000_000 * USDC

MAX_LAG_BLOCKS = 5
"""Blocks mined by others (here: empty blocks the test mines, one a second)
that the bot may let pass after the price move before it has handled it."""
MAX_SECONDS = 60.0
"""Wall-clock bound for the bot to handle the price move."""
STARTUP_TIMEOUT = 60.0

Key = tuple[str, int]  # (owner address, sub-account)

ROUND_LINE = re.compile(
    r"^block (\d+): (\d+) active, (\d+) checked in [0-9.]+s \(\d+ calls\), (\d+) liquidated, "
    r"\d+ margin calls, \d+ sampled, (\d+) skipped$",
    re.MULTILINE,
)
"""The line ``ape run liquidator`` prints after each round."""
LIQUIDATED_LINE = re.compile(r"^(?:\S+\s+)?liquidated 0x[0-9a-fA-F]{40}/\d+ market \d+: ", re.MULTILINE)


@dataclass(frozen=True)
class Holding:
    """One sub-account of the book."""

    name: str
    owner: int  # index into the test accounts
    sub: int
    collateral: int  # USDC
    positions: tuple[tuple[int, int], ...]  # (market, size in WAD base units)
    expected: int  # status after MOVED
    isolated: bool = False


BOOK = (
    Holding("safe", 3, 0, 3_000, ((ETH, WAD),), HEALTHY),
    Holding("call", 3, 1, 1_000, ((ETH, 2 * WAD),), MARGIN_CALL),
    Holding("thin_eth", 4, 0, 2_000, ((ETH, 5 * WAD),), LIQUIDATABLE),
    Holding("bankrupt", 5, 1, 910, ((ETH, 3 * WAD),), BANKRUPT),
    Holding("thin_btc", 6, 0, 1_000, ((BTC, -WAD // 10),), LIQUIDATABLE),
    Holding("cross", 7, 0, 1_000, ((ETH, WAD),), HEALTHY),
    Holding("isolated", 7, 3, 1_000, ((BTC, -WAD // 10),), LIQUIDATABLE, isolated=True),
    Holding("hedged", 8, 0, 1_500, ((BTC, WAD // 10), (ETH, -2 * WAD)), HEALTHY),
    Holding("two_markets", 8, 2, 2_000, ((ETH, 4 * WAD), (BTC, -WAD // 20)), LIQUIDATABLE),
)
AT_RISK = frozenset(h.name for h in BOOK if h.expected >= LIQUIDATABLE)


# --------------------------------------------------------------------------
#                         Chain set-up and reading
# --------------------------------------------------------------------------


@dataclass
class System:
    """A fresh deployment, as contract instances of this process's Ape."""

    path: Path
    engine: Any
    lens: Any
    vault: Any
    usdc: Any
    feeds: dict[str, Any]


def load_system(project: Any, path: Path) -> System:
    data = json.loads(path.read_text())
    a = data["addresses"]
    return System(
        path=path,
        engine=project.MarginEngine.at(a["engine"]),
        lens=project.MarginLens.at(a["lens"]),
        vault=project.LiquidityVault.at(a["vault"]),
        usdc=project.MockERC20.at(a["settlement_asset"]),
        feeds={name: project.MockAggregator.at(a[f"feed:{name}"]) for name in data["markets"]},
    )


@pytest.fixture
def fresh_deployment(run_ape, tmp_path) -> Path:
    """A new system deployed by ``ape run deploy`` for this test alone."""
    output = tmp_path / "deployment.json"
    run_ape("run", "deploy", "--output", str(output))
    return output


def fund_vault(system: System, lp: Any, amount: int = LP_FUNDING) -> None:
    system.usdc.mint(lp, amount, sender=lp)
    system.usdc.approve(system.vault, amount, sender=lp)
    system.vault.deposit(amount, lp, sender=lp)


def open_book(system: System, accounts: Any, book: tuple[Holding, ...] = BOOK) -> dict[str, Key]:
    """Deposit and trade every holding; returns ``{name: (owner, sub)}``."""
    engine, usdc = system.engine, system.usdc
    totals: dict[int, int] = {}
    for h in book:
        totals[h.owner] = totals.get(h.owner, 0) + h.collateral * USDC
    for index, total in totals.items():
        usdc.mint(accounts[index], total, sender=accounts[index])
        usdc.approve(engine, total, sender=accounts[index])
    holdings = {}
    for h in book:
        who = accounts[h.owner]
        if h.isolated:
            engine.set_margin_mode(h.sub, True, sender=who)
        engine.deposit(h.sub, usdc, h.collateral * USDC, sender=who)
        for market, size in h.positions:
            engine.modify_position(who, h.sub, market, size, BUY_LIMIT if size > 0 else SELL_LIMIT, sender=who)
        holdings[h.name] = (str(who.address), h.sub)
    return holdings


def set_prices_in_one_block(anvil: Anvil, system: System, prices: dict[str, float], sender: str) -> int:
    """Post every price of ``prices`` in one block; returns its number.

    Auto-mining is paused for these few transactions (sent from ``sender``,
    one of anvil's unlocked accounts) and back on before this returns.
    """
    calls = []
    for name, usd in prices.items():
        feed = system.feeds[name]
        data = bytes(feed.set_answer.encode_input(int(round(usd * 10**FEED_DECIMALS))))
        calls.append({"from": sender, "to": str(feed.address), "data": "0x" + data.hex(), "gas": hex(200_000)})
    anvil.set_automine(False)
    try:
        hashes = [anvil.rpc("eth_sendTransaction", call) for call in calls]
        anvil.mine(1)
    finally:
        anvil.set_automine(True)
    receipts = [anvil.rpc("eth_getTransactionReceipt", h) for h in hashes]
    assert all(r is not None and r["status"] == "0x1" for r in receipts), receipts
    blocks = {int(r["blockNumber"], 16) for r in receipts}
    assert len(blocks) == 1, f"price updates landed in blocks {sorted(blocks)}"
    return blocks.pop()


def statuses_at(system: System, holdings: dict[str, Key], block: int | str = "latest") -> dict[str, int]:
    return {name: int(system.engine.status(*key, block_id=block)) for name, key in holdings.items()}


def positions_of(system: System, key: Key) -> dict[int, tuple[int, int]]:
    """``{market: (size, entry price)}``."""
    out = {}
    for market in (BTC, ETH):
        p = system.engine.position(*key, market)
        out[market] = (int(p.size), int(p.entry_price))
    return out


def is_below_risk(system: System, key: Key) -> bool:
    """Status below LIQUIDATABLE, or no open position left."""
    state = system.engine.account(*key)
    return int(state.status) < LIQUIDATABLE or int(state.positions) == 0


def tx_sender(anvil: Anvil, tx_hash: Any) -> str:
    h = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    return anvil.rpc("eth_getTransactionByHash", h)["from"].lower()


def accruals_by(anvil: Anvil, system: System, sender: str, start: int) -> list[Any]:
    """``FundingAccrued`` logs from ``start`` on, in transactions sent by ``sender``."""
    logs = system.engine.FundingAccrued.range(start, anvil.block_number() + 1)
    return [e for e in logs if tx_sender(anvil, e.transaction_hash) == sender.lower()]


def prepare(system: System, accounts: Any) -> tuple[dict[str, Key], dict[str, dict[int, tuple[int, int]]]]:
    """Vault funded by accounts[2], the book opened (all HEALTHY); returns the
    holdings and their positions."""
    fund_vault(system, accounts[2])
    holdings = open_book(system, accounts)
    assert set(statuses_at(system, holdings).values()) == {HEALTHY}
    before = {name: positions_of(system, key) for name, key in holdings.items()}
    return holdings, before


def move_prices(anvil: Anvil, system: System, holdings: dict[str, Key], sender: str) -> int:
    """Both prices to MOVED in one block; checks the book's statuses at that block."""
    move_block = set_prices_in_one_block(anvil, system, MOVED, sender)
    at_move = statuses_at(system, holdings, move_block)
    assert at_move == {h.name: h.expected for h in BOOK}, f"book statuses at the move: {at_move}"
    return move_block


# --------------------------------------------------------------------------
#                            The bot's process
# --------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def bot_env(anvil: Anvil, **extra: str) -> dict[str, str]:
    """Environment of a bot process on the node (repository importable)."""
    env = {**os.environ, **anvil.ape_env(), **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore:Field 'import_remapping' has an incomplete definition")
    return env


class BotProcess:
    """A front end of the bot as a child process (its own session), its
    output in ``log_path``. Use ``kill()`` in a ``finally``."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.cmd = cmd
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self, lines: int = 200) -> str:
        """The command, its state and the end of its log (without Silverback's
        per-task metrics blocks), for failure messages."""
        status = "running" if self.running else f"exited with {self.process.returncode}"
        kept: list[str] = []
        in_metrics = False
        for line in self.log().splitlines():
            if line.endswith("- Metrics collected"):
                in_metrics = True
                continue
            if in_metrics and line.startswith("  "):
                continue
            in_metrics = False
            kept.append(line)
        tail = "\n".join(kept[-lines:])
        return f"{' '.join(self.cmd)} ({status})\n--- its log {self.log_path} (tail)\n{tail}"

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the log, waiting up to ``timeout`` s."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            if match := regex.search(self.log()):
                return match
            if not self.running:
                pytest.fail(f"the bot exited before logging {pattern!r}\n{self.describe()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} in the log within {timeout:g} s\n{self.describe()}", pytrace=False)
            time.sleep(0.1)

    def wait_exit(self, timeout: float, poke: Callable[[], None] | None = None) -> int | None:
        """The exit status, waiting up to ``timeout`` s (None: still running);
        ``poke`` (e.g. mine a block) is called about once a second meanwhile."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            if poke is not None:
                poke()
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        return self.process.poll()

    def kill(self) -> None:
        """SIGKILL the child's process group if the child still runs."""
        if self.running:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)


@pytest.fixture
def bot_name() -> Iterator[str]:
    """A unique ``SILVERBACK_BOT_NAME``; its state folder is removed afterwards
    (and ``.silverback-sessions`` too when this test created it)."""
    name = f"node-test-{uuid.uuid4().hex[:12]}"
    sessions = ROOT / ".silverback-sessions"
    existed = sessions.exists()
    yield name
    shutil.rmtree(sessions / name, ignore_errors=True)
    if not existed:
        try:
            sessions.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------
#                       Waiting for and checking the bot
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened on chain after the price move."""

    move_block: int
    seconds: float
    pokes: list[int]  # empty blocks the test mined
    events: list[Any]  # Liquidation logs since the move

    def lag_blocks(self, block: int) -> int:
        """Blocks mined by the test (not by the bot) between the move and ``block``."""
        return sum(1 for p in self.pokes if self.move_block < p < block)

    def summary(self) -> str:
        rel = sorted(int(e.block_number) - self.move_block for e in self.events)
        return (
            f"price move in block {self.move_block}; {len(self.events)} liquidations at +{rel} blocks; "
            f"empty blocks mined by the test {self.pokes}; all handled after {self.seconds:.2f} s"
        )


def wait_until_handled(
    anvil: Anvil,
    system: System,
    holdings: dict[str, Key],
    move_block: int,
    started: float,
    bot: BotProcess,
    poke_every: float | None,
) -> Outcome:
    """Wait until every account at risk is below risk again. With
    ``poke_every``, mine an empty block every so many seconds meanwhile,
    failing after ``MAX_LAG_BLOCKS`` of them."""
    pokes: list[int] = []
    last_poke = time.monotonic()
    while pending := [n for n in sorted(AT_RISK) if not is_below_risk(system, holdings[n])]:
        elapsed = time.monotonic() - started
        if elapsed > MAX_SECONDS or not bot.running:
            pytest.fail(
                f"not handled after {elapsed:.1f} s and {len(pokes)} empty blocks: {pending}\n{bot.describe()}",
                pytrace=False,
            )
        if poke_every is not None and time.monotonic() - last_poke >= poke_every:
            if len(pokes) >= MAX_LAG_BLOCKS:
                pytest.fail(
                    f"still not handled after {len(pokes)} more blocks: {pending}\n{bot.describe()}", pytrace=False
                )
            anvil.mine(1)
            pokes.append(anvil.block_number())
            last_poke = time.monotonic()
        time.sleep(0.1)
    seconds = time.monotonic() - started
    events = list(system.engine.Liquidation.range(move_block, anvil.block_number() + 1))
    return Outcome(move_block, seconds, pokes, events)


def check_outcome(
    anvil: Anvil,
    system: System,
    holdings: dict[str, Key],
    before: dict[str, dict[int, tuple[int, int]]],
    outcome: Outcome,
    liquidator: str,
    bot: BotProcess,
) -> None:
    """What both front ends must have done after the move."""
    context = f"{outcome.summary()}\n{bot.describe()}"
    names = {key: name for name, key in holdings.items()}

    def name_of(log: Any) -> str:
        return names.get((str(log.owner), int(log.sub)), f"unknown {log.owner}/{log.sub}")

    events = outcome.events
    # Exactly the accounts at risk, all by the bot's sender.
    assert {name_of(e) for e in events} == AT_RISK, context
    assert {str(e.liquidator).lower() for e in events} == {liquidator.lower()}, context
    assert {tx_sender(anvil, e.transaction_hash) for e in events} == {liquidator.lower()}, context
    # The bankrupt account is closed (keeper duty), for no reward; the others
    # paid at least the reward floor (1 USDC), credited to the bot's sub-account 0.
    assert [int(e.reward) for e in events if name_of(e) == "bankrupt"] == [0], context
    assert int(system.engine.account(*holdings["bankrupt"]).positions) == 0, context
    assert all(int(e.reward) >= USDC for e in events if name_of(e) != "bankrupt"), context
    rewards = sum(int(e.reward) for e in events)
    assert int(system.engine.balance_of(liquidator, 0, system.usdc)) == rewards, context
    # two_markets: its ETH (the larger reward) first, then BTC in a later round.
    two = sorted((int(e.block_number), int(e.market)) for e in events if name_of(e) == "two_markets")
    assert [market for _, market in two] == [ETH, BTC], context

    # Every account at risk ends below risk; nobody else was touched.
    for name in AT_RISK:
        assert is_below_risk(system, holdings[name]), f"{name}\n{context}"
    modified = {name_of(e) for e in system.engine.PositionModified.range(outcome.move_block, anvil.block_number() + 1)}
    untouched = set(holdings) - AT_RISK
    assert not modified & untouched, context
    for name in untouched:
        assert positions_of(system, holdings[name]) == before[name], f"{name}\n{context}"
    assert {n: s for n, s in statuses_at(system, holdings).items() if n in untouched} == {
        h.name: h.expected for h in BOOK if h.name in untouched
    }, context

    # Within a few blocks and seconds of the move. Each liquidation is a
    # block of its own (auto-mining): count only the blocks others mined.
    first = min(int(e.block_number) for e in events)
    assert first - outcome.move_block <= 1 + outcome.lag_blocks(first), context
    assert max(outcome.lag_blocks(int(e.block_number)) for e in events) <= MAX_LAG_BLOCKS, context
    assert outcome.seconds <= MAX_SECONDS, context


# --------------------------------------------------------------------------
#                                  Tests
# --------------------------------------------------------------------------


def test_silverback_bot_liquidates_exactly_the_accounts_the_move_put_at_risk(
    anvil, fresh_deployment, on_node, project, accounts, bot_name, tmp_path
):
    with on_node():
        system = load_system(project, fresh_deployment)
        holdings, before = prepare(system, accounts)
        liquidator = str(accounts[1].address)

        env = bot_env(
            anvil,
            MARGIN_ENGINE_DEPLOYMENT=str(fresh_deployment),
            MARGIN_ENGINE_CLOSE_BANKRUPT="1",
            SILVERBACK_BOT_NAME=bot_name,
        )
        cmd = [str(BIN / "silverback"), "run", "bot:bot", "--network", APE_NETWORK, "--account", "TEST::1"]
        bot = BotProcess(cmd, env, tmp_path / "silverback.log")
        try:
            began = time.monotonic()
            bot.wait_for(r"Startup complete", STARTUP_TIMEOUT)
            # Subscribed once a new block gets its round.
            anvil.mine(1)
            bot.wait_for(rf"^\S+\s+block {anvil.block_number()}: block \d+, {len(BOOK)} accounts", 30.0)
            startup = time.monotonic() - began

            started = time.monotonic()
            move_block = move_prices(anvil, system, holdings, str(accounts[0].address))
            outcome = wait_until_handled(anvil, system, holdings, move_block, started, bot, poke_every=1.0)
            check_outcome(anvil, system, holdings, before, outcome, liquidator, bot)
            log = bot.log()
            assert len(LIQUIDATED_LINE.findall(log)) == len(outcome.events), bot.describe()
            assert "FAILED" not in log and "dry run reverts" not in log, bot.describe()

            # A clean stop: SIGTERM, then a block wakes the app's loop.
            stopping = time.monotonic()
            bot.process.send_signal(signal.SIGTERM)
            code = bot.wait_exit(20.0, poke=lambda: anvil.mine(1))
            assert code == 0, f"exit status {code} (None: still running 20 s after SIGTERM)\n{bot.describe()}"
            stop = time.monotonic() - stopping
            log = bot.log()
            assert "SIGTERM signal received" in log, bot.describe()
            assert re.search(rf"stopped after \d+ rounds, {len(outcome.events)} liquidations", log), bot.describe()
        finally:
            bot.kill()
    print(f"\nsilverback: up after {startup:.1f} s, stopped in {stop:.1f} s; {outcome.summary()}")


def test_ape_run_liquidator_loop_liquidates_exactly_the_accounts_the_move_put_at_risk(
    anvil, fresh_deployment, on_node, project, accounts, tmp_path
):
    rounds = 10  # at 0.5 s: ~5 s left after the first round for the move and two rounds
    with on_node():
        system = load_system(project, fresh_deployment)
        holdings, before = prepare(system, accounts)
        liquidator = str(accounts[1].address)

        cmd = [
            str(BIN / "ape"), "run", "liquidator",
            "--deployment", str(fresh_deployment),
            "--rounds", str(rounds),
            "--interval", "0.5",
            "--close-bankrupt",
            "--network", APE_NETWORK,
        ]  # fmt: skip
        bot = BotProcess(cmd, bot_env(anvil), tmp_path / "liquidator.log")
        try:
            began = time.monotonic()
            bot.wait_for(ROUND_LINE.pattern, STARTUP_TIMEOUT)
            startup = time.monotonic() - began

            started = time.monotonic()
            move_block = move_prices(anvil, system, holdings, str(accounts[0].address))
            outcome = wait_until_handled(anvil, system, holdings, move_block, started, bot, poke_every=None)
            check_outcome(anvil, system, holdings, before, outcome, liquidator, bot)

            code = bot.wait_exit(30.0)
            assert code == 0, f"exit status {code}\n{bot.describe()}"
        finally:
            bot.kill()

    out = bot.log()
    assert f"liquidator {liquidator} on {APE_NETWORK}" in out, out
    lines = ROUND_LINE.findall(out)
    assert len(lines) == rounds, out
    assert all(active == checked for _, active, checked, _, _ in lines), out
    assert [int(b) for b, *_ in lines] == sorted(int(b) for b, *_ in lines), out
    # All nine accounts were read before the move; the bankrupt one is flat after it.
    assert int(lines[0][1]) == len(BOOK) and int(lines[-1][1]) == len(BOOK) - 1, out
    assert sum(int(n) for _, _, _, n, _ in lines) == len(outcome.events), out
    assert len(LIQUIDATED_LINE.findall(out)) == len(outcome.events), out
    assert "FAILED" not in out and "circuit breaker" not in out, out
    print(f"\nape run liquidator: first round after {startup:.1f} s; {outcome.summary()}")


def test_keeper_accrues_funding_older_than_the_max_age(anvil, fresh_deployment, on_node, project, accounts, tmp_path):
    max_age, jump = 600, 900  # the jump stays inside the feeds' 3,600 s heartbeat
    rounds = 10
    with on_node():
        system = load_system(project, fresh_deployment)
        fund_vault(system, accounts[2])
        # Long-skewed open interest in both markets: the funding index moves.
        skewed = Holding("skewed", 3, 0, 5_000, ((ETH, 4 * WAD), (BTC, WAD // 10)), HEALTHY)
        open_book(system, accounts, (skewed,))
        keeper = str(accounts[1].address)
        index_before = {m: int(system.lens.market_state(m).funding_index) for m in (BTC, ETH)}

        cmd = [
            str(BIN / "ape"), "run", "liquidator",
            "--deployment", str(fresh_deployment),
            "--rounds", str(rounds),
            "--interval", "0.5",
            "--funding-max-age", str(max_age),
            "--network", APE_NETWORK,
        ]  # fmt: skip
        bot = BotProcess(cmd, bot_env(anvil), tmp_path / "keeper.log")
        try:
            bot.wait_for(ROUND_LINE.pattern, STARTUP_TIMEOUT)
            assert accruals_by(anvil, system, keeper, 0) == [], bot.describe()  # nothing due yet

            anvil.rpc("evm_increaseTime", jump)
            # The next block carries the new time: fresh answers in it.
            jump_block = set_prices_in_one_block(anvil, system, START, str(accounts[0].address))
            deadline = time.monotonic() + 30.0
            while {int(e.market) for e in accruals_by(anvil, system, keeper, jump_block)} != {BTC, ETH}:
                if time.monotonic() > deadline or not bot.running:
                    pytest.fail(f"no funding accrual by the bot\n{bot.describe()}", pytrace=False)
                time.sleep(0.2)
            code = bot.wait_exit(30.0)
            assert code == 0, f"exit status {code}\n{bot.describe()}"
        finally:
            bot.kill()

        # Once per market over all the rounds (fresh afterwards).
        accruals = accruals_by(anvil, system, keeper, jump_block)
        assert sorted(int(e.market) for e in accruals) == [BTC, ETH], bot.describe()
        jump_time = int(project.provider.get_block(jump_block).timestamp)
        for market in (BTC, ETH):
            state = system.lens.market_state(market)
            assert int(state.last_funding_time) >= jump_time
            assert int(state.funding_index) != index_before[market], market
    out = bot.log()
    assert re.search(r"^accrued funding of market 0$", out, re.MULTILINE), out
    assert re.search(r"^accrued funding of market 1$", out, re.MULTILINE), out
    assert len(ROUND_LINE.findall(out)) == rounds, out


def test_keeper_on_risk_markets_margin_calls_liquidates_and_samples_volatility(
    anvil, run_ape, on_node, project, accounts, tmp_path
):
    """``deploy/risk.yaml`` (volatility margin, tiers and the margin-call band on
    both markets) and ``ape run liquidator``: after ETH -13 % the bot
    liquidates the account below maintenance and margin-calls the one in the
    band (once: a quarter closed lifts it out), touching nothing else (the
    liquidated account lands at MM x 1.1, inside the band, and may take one
    call too); in the next epoch (fresh prices, no trade) it samples each
    market's volatility once."""
    deployment = tmp_path / "risk-deployment.json"
    run_ape("run", "deploy", "--config", str(ROOT / "deploy" / "risk.yaml"), "--output", str(deployment))
    moved = 2_600
    with on_node():
        system = load_system(project, deployment)
        risk = project.RiskModel.at(str(system.engine.RISK_MODEL()))
        fund_vault(system, accounts[2])
        rates = system.lens.market_risk(ETH)
        assert rates.uses_risk_model and rates.var > 0
        im, mm = int(rates.im_rate), int(rates.mm_rate)

        def collateral(size_eth: int, ratio_pct: int) -> int:
            """USDC that leaves equity = ratio x MM at the moved price (the 3 USDC fee per ETH paid)."""
            per_eth = ratio_pct * mm * moved // (100 * WAD) + 3_000 - moved + 3
            assert per_eth * WAD > im * 3_000, "cannot open that position"
            return size_eth * per_eth + 1

        book = (
            Holding("called", 3, 0, collateral(2, 112), ((ETH, 2 * WAD),), MARGIN_CALL),
            Holding("liquidated", 4, 0, collateral(2, 80), ((ETH, 2 * WAD),), LIQUIDATABLE),
            Holding("safe", 5, 0, 3_000, ((ETH, WAD),), HEALTHY),
            Holding("btc", 6, 0, 20_000, ((BTC, WAD // 10),), HEALTHY),
        )
        holdings = open_book(system, accounts, book)
        before = {name: positions_of(system, key) for name, key in holdings.items()}
        keeper = str(accounts[1].address)

        cmd = [
            str(BIN / "ape"), "run", "liquidator",
            "--deployment", str(deployment),
            "--rounds", "30",
            "--interval", "0.5",
            "--funding-max-age", "0",
            "--network", APE_NETWORK,
        ]  # fmt: skip
        bot = BotProcess(cmd, bot_env(anvil), tmp_path / "risk-keeper.log")
        try:
            bot.wait_for(ROUND_LINE.pattern, STARTUP_TIMEOUT)
            move_block = set_prices_in_one_block(anvil, system, {"ETH": moved}, str(accounts[0].address))
            at_move = statuses_at(system, holdings, move_block)
            assert at_move == {h.name: h.expected for h in book}, at_move
            assert system.engine.account(*holdings["called"], block_id=move_block).equity_maint < (
                system.engine.account(*holdings["called"], block_id=move_block).mm_required * 5 // 4
            )
            deadline = time.monotonic() + MAX_SECONDS
            while not (
                list(system.engine.MarginCall.range(move_block, anvil.block_number() + 1))
                and is_below_risk(system, holdings["liquidated"])
            ):
                if time.monotonic() > deadline or not bot.running:
                    pytest.fail(f"no margin call and liquidation\n{bot.describe()}", pytrace=False)
                time.sleep(0.2)

            # The next epoch, fresh prices in its first block: both markets are due.
            epoch = int(risk.volatility_params(ETH)[0])
            now = int(project.provider.get_block("latest").timestamp)
            anvil.rpc("evm_increaseTime", (now // epoch + 1) * epoch - now)
            sample_block = set_prices_in_one_block(
                anvil, system, {"ETH": moved, "BTC": START["BTC"]}, str(accounts[0].address)
            )
            sample_time = int(project.provider.get_block(sample_block).timestamp)
            deadline = time.monotonic() + 30.0
            while not all(int(risk.volatility(m)[3]) > sample_time for m in (BTC, ETH)):
                if time.monotonic() > deadline or not bot.running:
                    pytest.fail(f"no volatility sample by the bot\n{bot.describe()}", pytrace=False)
                time.sleep(0.2)
            code = bot.wait_exit(60.0)
            assert code == 0, f"exit status {code}\n{bot.describe()}"
        finally:
            bot.kill()

        context = bot.describe()
        names = {key: name for name, key in holdings.items()}
        end = anvil.block_number() + 1
        calls = list(system.engine.MarginCall.range(move_block, end))
        liquidations = list(system.engine.Liquidation.range(move_block, end))
        assert {str(e.caller).lower() for e in calls} == {keeper.lower()}, context
        [called] = [e for e in calls if names[(str(e.owner), int(e.sub))] == "called"]
        assert int(called.size_closed) == 2 * WAD // 4 and int(called.fee) > 0, context
        assert [(names[(str(e.owner), int(e.sub))], str(e.liquidator).lower()) for e in liquidations] == [
            ("liquidated", keeper.lower())
        ], context
        # A liquidation restores MM x 1.1, inside this band (MM x 1.25): the
        # liquidated account may take one margin call after it, nobody else any.
        later = [e for e in calls if names[(str(e.owner), int(e.sub))] == "liquidated"]
        assert len(later) <= 1 and all(int(e.block_number) > int(liquidations[0].block_number) for e in later), context
        assert len(calls) == 1 + len(later), context
        assert statuses_at(system, holdings)["called"] in (HEALTHY, MARGIN_CALL), context  # out of the band
        for name in ("safe", "btc"):
            assert positions_of(system, holdings[name]) == before[name], context
        fees = sum(int(e.fee) for e in calls) + int(liquidations[0].reward)
        assert int(system.engine.balance_of(keeper, 0, system.usdc)) == fees, context
        # Each market sampled once by the bot in the new epoch.
        for market in (BTC, ETH):
            assert int(risk.volatility(market)[3]) == (sample_time // epoch + 1) * epoch, context
        # One sample per market in the new epoch, all in the bot's transactions:
        # BTC had no trade, so the keeper's update_volatility; ETH that, or a
        # margin call or liquidation of the new epoch (which samples first).
        samples = list(risk.VolatilityUpdated.range(sample_block, end))
        assert sorted(int(e.market) for e in samples) == [BTC, ETH], context
        assert {tx_sender(anvil, e.transaction_hash) for e in samples} == {keeper.lower()}, context
    out = bot.log()
    assert re.search(r"^margin call 0x[0-9a-fA-F]{40}/0 market 1: ", out, re.MULTILINE), out
    assert re.search(r"^sampled the volatility of market 0$", out, re.MULTILINE), out
    assert "FAILED" not in out and "dry run reverts" not in out, out
