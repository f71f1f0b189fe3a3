"""Scan throughput of the liquidator bot on anvil: part of ``ape run bench``.

Starts an anvil node (:class:`margin_engine.anvil.Anvil`: auto-mining, anvil's
default 30M block gas limit, which is also its gas cap for ``eth_call``),
connects Ape to it in this process, deploys the default system
(:func:`margin_engine.deploy.deploy`), funds the vault and fills the engine
with accounts holding open positions through the test-only
``contracts/test/BenchPopulator.vy``: one transaction opens as many accounts
as fit in 85 % of a block (~180). Those transactions go over plain JSON-RPC
(``eth_sendTransaction`` from an unlocked test account): through Ape each one
would take ~10x longer, because Ape traces every transaction it sends to a
contract and builds the call tree in time quadratic in the number of calls.
A bigger block gas limit does not help Ape for the same reason (measured: 190
accounts per transaction 0.4 s, 1,900 accounts ~20 s), while anvil executes
either at ~0.12 ms per account.

At each size (1,000, then 9,000 more: 10,000) it times
``LiquidatorBot.scan()`` with pages of 100 and 200 accounts, counts the
JSON-RPC requests that reach the node (anvil logs one line per request) and
the time spent in ``eth_call``, and times a reference read of the same data
decoded by ``eth_abi`` instead of Ape.

The accounts cycle through :data:`PROFILE_SPECS` (both markets, 1.5x to 9.5x,
some with two positions). They are opened at the configured prices; the
scans run after a sharp move (:data:`STRESS`: BTC -11 %, ETH +8 %), which
leaves a mix of healthy, margin-call, liquidatable and bankrupt accounts.
Before more accounts are opened the prices go back to where they were.

Every scan is checked: it must return each of the engine's
``active_count()`` accounts once (exactly the populator's sub-accounts), with
no status disagreement between the reference model and the engine
(``assessment.mismatch``); a sample of statuses is also compared with
``engine.status`` at the scanned block, and the reference read must give the
same status for every account.

Ape is imported inside the functions.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from margin_engine.liquidator import page_ranges
from margin_engine.report import fmt_int, render_markdown_table, render_table

__all__ = [
    "PAGE_SIZES",
    "PROFILE_SPECS",
    "SIZES",
    "STRESS",
    "ProfileSpec",
    "ScanBenchResult",
    "build_profiles",
    "render_scan_console",
    "render_scan_markdown",
    "run_scan_bench",
    "write_scan_outputs",
]

Echo = Callable[[str], None]

WAD = 10**18
SIZES: tuple[int, ...] = (1_000, 10_000)
"""Numbers of accounts scanned (populated in increasing order, never removed)."""
PAGE_SIZES: tuple[int, ...] = (100, 200)
"""Accounts per ``lens.active_accounts`` call (200 is the lens's ``MAX_BATCH``)."""
REPEATS = 3
"""Timed scans per (size, page size) up to 2,000 accounts (one untimed scan warms Ape up first)."""
REPEATS_LARGE = 2
"""Timed scans per (size, page size) above 2,000 accounts (a scan of 10,000 takes ~20 s)."""
STRESS: dict[str, Fraction] = {"BTC": Fraction(89, 100), "ETH": Fraction(108, 100)}
"""Price multipliers applied before the scans (BTC -11 %, ETH +8 %)."""
VAULT_FUNDING = 50_000_000
"""Whole tokens the LP deposits into the vault."""
FIRST_BATCH = 50
"""Accounts in the first populate transaction (it measures the gas per account)."""
BLOCK_SHARE = Fraction(85, 100)
"""Share of the block gas limit one populate transaction is sized to use."""
STATUS_SAMPLE = 40
"""Accounts whose scanned status is compared with ``engine.status`` directly."""


@dataclass(frozen=True)
class ProfileSpec:
    """One kind of account: its positions and leverage at opening."""

    legs: tuple[tuple[str, int], ...]
    """(market name, +1 long / -1 short); the notional is split evenly."""
    leverage: Fraction
    """Total notional / collateral at opening (at most ~9.9x: IM is 10 % after the fee)."""
    notional_usd: int

    @property
    def label(self) -> str:
        legs = " + ".join(f"{m} {'long' if s > 0 else 'short'}" for m, s in self.legs)
        return f"{legs} {float(self.leverage):g}x"


def _spec(legs: str, leverage: str, notional: int) -> ProfileSpec:
    parsed = tuple((leg[:-1], 1 if leg[-1] == "+" else -1) for leg in legs.split())
    return ProfileSpec(parsed, Fraction(leverage), notional)


# Statuses after STRESS (fee 0.1 %, IM 10 %, MM 5 %): a BTC long is HEALTHY
# up to 4x, MARGIN_CALL at 6x, LIQUIDATABLE at 7-8x, BANKRUPT at 9.5x; an ETH
# short is HEALTHY up to 5x, MARGIN_CALL at 6-7x, LIQUIDATABLE from 8x;
# BTC shorts and ETH longs gain. 11 of 20 end HEALTHY, 4 MARGIN_CALL,
# 4 LIQUIDATABLE, 1 BANKRUPT; 4 of 20 hold two positions.
PROFILE_SPECS: list[ProfileSpec] = [
    _spec("BTC+", "2", 2_000),
    _spec("ETH-", "3", 3_000),
    _spec("BTC-", "4", 1_500),
    _spec("ETH+", "2", 4_000),
    _spec("BTC+", "4", 5_000),
    _spec("ETH-", "5", 2_500),
    _spec("BTC+ ETH-", "4", 6_000),
    _spec("BTC- ETH+", "3", 3_000),
    _spec("BTC+", "6", 2_000),
    _spec("ETH-", "6", 3_500),
    _spec("BTC+", "1.5", 1_000),
    _spec("ETH+", "5", 2_000),
    _spec("BTC+ ETH-", "6", 4_000),
    _spec("ETH-", "7", 1_500),
    _spec("BTC+", "7", 3_000),
    _spec("ETH-", "8", 2_500),
    _spec("BTC-", "8", 2_000),
    _spec("BTC+ ETH-", "8", 5_000),
    _spec("BTC+", "9.5", 1_200),
    _spec("ETH-", "9.5", 2_200),
]
"""Account kinds, cycled through by sub-account id."""


def build_profiles(
    specs: Sequence[ProfileSpec], prices: dict[str, int], markets: dict[str, int], decimals: int
) -> list[tuple[int, list[int]]]:
    """``BenchPopulator`` profiles: (collateral in token units, size by market id).

    ``prices`` are WAD prices by market name at which the accounts open.
    """
    width = max(markets.values()) + 1
    out = []
    for spec in specs:
        sizes = [0] * width
        leg_notional = spec.notional_usd * WAD // len(spec.legs)
        for name, side in spec.legs:
            sizes[markets[name]] = side * (leg_notional * WAD // prices[name])
        collateral = -(-Fraction(spec.notional_usd * 10**decimals) / spec.leverage // 1)
        out.append((int(collateral), sizes))
    return out


# --------------------------------------------------------------------------
#                                  Results
# --------------------------------------------------------------------------


@dataclass
class PopulateRun:
    accounts_before: int
    accounts_added: int
    transactions: int
    largest_batch: int
    gas_total: int
    gas_per_account: int
    seconds: float


@dataclass
class ScanSample:
    seconds: float
    bot_rpc_calls: int
    requests: int
    requests_by_method: dict[str, int]
    eth_call_seconds: float


@dataclass
class ScanRun:
    accounts: int
    page_size: int
    pages: int
    samples: list[ScanSample]
    reader: str = "bot"
    """"bot": ``LiquidatorBot.scan()``; "eth_abi": the reference read (:meth:`_Bench.raw_scan`)."""

    @property
    def median_seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def accounts_per_second(self) -> float:
        return self.accounts / self.median_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "accounts": self.accounts,
            "page_size": self.page_size,
            "pages": self.pages,
            "seconds_median": round(self.median_seconds, 4),
            "seconds_min": round(min(s.seconds for s in self.samples), 4),
            "seconds_max": round(max(s.seconds for s in self.samples), 4),
            "accounts_per_second": round(self.accounts_per_second),
            "samples": [
                {**asdict(s), "seconds": round(s.seconds, 4), "eth_call_seconds": round(s.eth_call_seconds, 4)}
                for s in self.samples
            ],
        }


@dataclass
class ScanBenchResult:
    machine: dict[str, Any]
    node: dict[str, Any]
    populate: list[PopulateRun]
    scans: list[ScanRun]
    statuses: dict[int, dict[str, int]]
    lens_gas: dict[str, int]
    checks: list[str]
    profiles: list[dict[str, Any]]
    ape_batch: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "node": self.node,
            "populate": [asdict(p) | {"seconds": round(p.seconds, 3)} for p in self.populate],
            "scans": [s.to_json() for s in self.scans],
            "statuses_at_scan": {str(n): s for n, s in self.statuses.items()},
            "lens_gas": self.lens_gas,
            "populate_one_batch_through_ape": self.ape_batch,
            "checks": self.checks,
            "profiles": self.profiles,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------
#                         Counting JSON-RPC requests
# --------------------------------------------------------------------------

_METHOD = re.compile(r"^[a-z0-9]+_[A-Za-z0-9]+$")


class RequestLog:
    """Requests that reached the node, read from anvil's log (one line each)."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> Counter[str]:
        with open(self.path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return Counter(line.strip() for line in text.splitlines() if _METHOD.match(line.strip()))


@contextmanager
def _timed_eth_calls(provider: Any) -> Iterator[list[float]]:
    """Wall time of each ``eth_call`` Ape sends (HTTP round trip and node execution)."""
    inner = provider.web3.provider
    original = inner.make_request
    spent: list[float] = []

    def make_request(method: Any, params: Any) -> Any:
        if method != "eth_call":
            return original(method, params)
        began = time.perf_counter()
        try:
            return original(method, params)
        finally:
            spent.append(time.perf_counter() - began)

    inner.make_request = make_request
    try:
        yield spent
    finally:
        del inner.make_request


# --------------------------------------------------------------------------
#                                Environment
# --------------------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "ape": installed("eth-ape"),
        "ape_foundry": installed("ape-foundry"),
        "web3": installed("web3"),
    }


def anvil_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown"
    match = re.search(r"anvil Version: (\S+)", out)
    return match.group(1) if match else out.strip().splitlines()[0] if out.strip() else "unknown"


# --------------------------------------------------------------------------
#                                  The run
# --------------------------------------------------------------------------


class _Bench:
    def __init__(self, node: Any, echo: Echo):
        from ape import accounts, chain, project

        from margin_engine.config import default_config
        from margin_engine.deploy import deploy

        self.node = node
        self.echo = echo
        self.log = RequestLog(Path(node.log_path))
        self.provider = chain.provider
        test_accounts = accounts.test_accounts
        self.admin, self.lp, self.keeper = test_accounts[0], test_accounts[3], test_accounts[6]
        config = default_config()
        self.d = deploy(config, self.admin, log=None)
        self.engine, self.lens, self.usdc = self.d.engine, self.d.lens, self.d.settlement
        self.decimals = int(self.usdc.decimals())
        self.base = {m.name: m.mock_price_wad() for m in config.markets}
        self.feed_decimals = {m.name: m.feed_decimals for m in config.markets}

        amount = VAULT_FUNDING * 10**self.decimals
        self.usdc.mint(self.lp, amount, sender=self.lp)
        self.usdc.approve(self.d.vault, amount, sender=self.lp)
        self.d.vault.deposit(amount, self.lp, sender=self.lp)

        self.populator = project.BenchPopulator.deploy(self.engine, self.usdc, sender=self.admin)
        self.profiles = build_profiles(PROFILE_SPECS, self.base, self.d.markets, self.decimals)
        self.block_gas_limit = int(chain.blocks.head.gas_limit)
        self.scale = int(self.engine.SCALE())
        self.per_account_gas = 0
        self.warm = False
        self.last_statuses: dict[Any, int | None] = {}

    # -- state --

    def set_prices(self, factors: dict[str, Fraction] | None) -> None:
        for name, feed in self.d.feeds.items():
            price = Fraction(self.base[name]) * (factors or {}).get(name, 1)
            answer = int(price * 10 ** self.feed_decimals[name] / WAD)
            feed.set_answer(answer, sender=self.admin)

    def send_batch(self, first: int, count: int) -> int:
        """One ``populate`` transaction sent over JSON-RPC (anvil's test accounts
        are unlocked: ``eth_sendTransaction``); returns its gas. Not through Ape:
        Ape traces every transaction it sends to a contract (see the report),
        which takes longer than the batch itself.

        The gas limit is the block's: the node's estimate is made at the
        pending block's time and the trades accrue funding, so a batch can
        need a little more gas once mined (a nested call then runs short and
        the whole batch reverts)."""
        data = "0x" + bytes(self.populator.populate.encode_input(first, count, self.profiles)).hex()
        tx = {
            "from": str(self.admin.address),
            "to": str(self.populator.address),
            "data": data,
            "gas": hex(self.block_gas_limit),
        }
        tx_hash = self.node.rpc("eth_sendTransaction", tx, timeout=120)
        deadline = time.monotonic() + 120
        while (receipt := self.node.rpc("eth_getTransactionReceipt", tx_hash)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"scan bench: populate transaction {tx_hash} not mined")
            time.sleep(0.002)
        if int(receipt["status"], 16) != 1:
            raise RuntimeError(f"scan bench: populate({first}, {count}) reverted ({tx_hash})")
        return int(receipt["gasUsed"], 16)

    def batch_size(self, remaining: int) -> int:
        if self.per_account_gas == 0:
            return max(1, min(FIRST_BATCH, remaining))
        return max(1, min(int(BLOCK_SHARE * self.block_gas_limit // self.per_account_gas), remaining))

    def populate(self, target: int) -> PopulateRun:
        before = int(self.populator.populated())
        done, txs, gas, largest = before, 0, 0, 0
        began = time.perf_counter()
        while done < target:
            batch = self.batch_size(target - done)
            used = self.send_batch(done, batch)
            self.per_account_gas = max(self.per_account_gas, -(-used // batch))
            done, txs, gas, largest = done + batch, txs + 1, gas + used, max(largest, batch)
        seconds = time.perf_counter() - began
        if int(self.populator.populated()) != target:
            raise RuntimeError(f"scan bench: the populator opened {self.populator.populated()} accounts, not {target}")
        return PopulateRun(
            accounts_before=before,
            accounts_added=target - before,
            transactions=txs,
            largest_batch=largest,
            gas_total=gas,
            gas_per_account=gas // max(target - before, 1),
            seconds=seconds,
        )

    def ape_batch(self) -> dict[str, Any]:
        """One full batch through Ape (``populator.populate(..., sender=...)``) and
        the same through JSON-RPC, for comparison (run last: it adds accounts)."""
        batch = self.batch_size(10**9)
        first = int(self.populator.populated())
        began = time.perf_counter()
        receipt = self.populator.populate(first, batch, self.profiles, sender=self.admin)
        ape_seconds = time.perf_counter() - began
        began = time.perf_counter()
        self.send_batch(first + batch, batch)
        raw_seconds = time.perf_counter() - began
        return {
            "accounts": batch,
            "gas": int(receipt.gas_used),
            "ape_seconds": round(ape_seconds, 3),
            "json_rpc_seconds": round(raw_seconds, 3),
        }

    # -- checks --

    def check(self, snapshot: Any, expected: int) -> dict[str, int]:
        from margin_engine.model import STATUS_NAMES

        owner = str(self.populator.address)
        keys = [a.key for a in snapshot.assessments]
        if int(self.engine.active_count(block_id=snapshot.block)) != expected or snapshot.total_active != expected:
            raise RuntimeError(f"scan bench: engine lists {snapshot.total_active} accounts, expected {expected}")
        if len(keys) != expected or set(keys) != {(owner, s) for s in range(expected)}:
            raise RuntimeError(f"scan bench: the scan returned {len(keys)} accounts ({len(set(keys))} distinct)")
        bad = [a.key for a in snapshot.assessments if a.mismatch or a.status is None]
        if bad:
            raise RuntimeError(f"scan bench: model and engine disagree (or no status) on {len(bad)} accounts: {bad[:5]}")
        step = max(1, expected // STATUS_SAMPLE)
        for a in snapshot.assessments[::step]:
            direct = int(self.engine.status(*a.key, block_id=snapshot.block))
            if direct != a.status:
                raise RuntimeError(f"scan bench: {a.key}: scan says {a.status}, engine.status {direct}")
        counts = Counter(STATUS_NAMES[a.status] for a in snapshot.assessments)
        return {name: counts.get(name, 0) for name in STATUS_NAMES.values()}

    # -- measurements --

    def scan(self, accounts: int, page_size: int, repeats: int) -> tuple[ScanRun, dict[str, int]]:
        from margin_engine.runner import BotSettings, LiquidatorBot

        bot = LiquidatorBot(self.engine, self.lens, self.keeper, BotSettings(page_size=page_size), log=None)
        if not self.warm:  # once: Ape's first calls fill its caches
            self.check(bot.scan(), accounts)
            self.warm = True
        samples, statuses = [], None
        for _ in range(repeats):
            mark = self.log.mark()
            with _timed_eth_calls(self.provider) as calls:
                snapshot = bot.scan()
            requests = self.log.since(mark)
            counts = self.check(snapshot, accounts)
            if statuses is not None and counts != statuses:
                raise RuntimeError("scan bench: two scans of the same state disagree")
            statuses = counts
            self.last_statuses = {a.key: a.status for a in snapshot.assessments}
            samples.append(
                ScanSample(
                    seconds=snapshot.seconds,
                    bot_rpc_calls=snapshot.rpc_calls,
                    requests=sum(requests.values()),
                    requests_by_method=dict(sorted(requests.items())),
                    eth_call_seconds=sum(calls),
                )
            )
        assert statuses is not None
        return ScanRun(accounts, page_size, len(list(page_ranges(accounts, page_size))), samples), statuses

    def raw_scan(self, accounts: int, page_size: int, repeats: int) -> ScanRun:
        """A reference, not the bot: the same reads at one block (head, liquidation
        parameters, markets, pages), each one ``eth_call`` decoded by ``eth_abi``
        into plain tuples, then the same conversion and model as the bot."""
        from margin_engine import liquidator as logic
        from margin_engine.runner import LiquidatorBot

        read = LiquidatorBot(self.engine, self.lens, self.keeper, log=None).read_view
        samples = []
        for _ in range(repeats):
            mark = self.log.mark()
            with _timed_eth_calls(self.provider) as calls:
                began = time.perf_counter()
                head = self.provider.make_request("eth_getBlockByNumber", ["latest", False])
                block, now = int(head["number"], 16), int(head["timestamp"], 16)
                logic.liq_params_from_tuple(read(self.engine, "liquidation_params", block)[0])
                markets = logic.markets_from_lens(read(self.lens, "markets", block)[0])
                snapshots: list[Any] = []
                for start, count in logic.page_ranges(accounts, page_size):
                    total, page = read(self.lens, "active_accounts", block, start, count)
                    snapshots.extend(page)
                assessed = [logic.assess(a, markets, self.scale, now) for a in logic.accounts_from_lens(snapshots)]
                seconds = time.perf_counter() - began
            requests = self.log.since(mark)
            if {a.key: a.status for a in assessed} != self.last_statuses or int(total) != accounts:
                raise RuntimeError("scan bench: the reference read disagrees with the bot's scan")
            samples.append(
                ScanSample(
                    seconds=seconds,
                    bot_rpc_calls=3 + len(list(logic.page_ranges(accounts, page_size))),
                    requests=sum(requests.values()),
                    requests_by_method=dict(sorted(requests.items())),
                    eth_call_seconds=sum(calls),
                )
            )
        pages = len(list(logic.page_ranges(accounts, page_size)))
        return ScanRun(accounts, page_size, pages, samples, reader="eth_abi")

    def estimate(self, contract: Any, method: str, *args: Any) -> int:
        data = getattr(contract, method).encode_input(*args)
        tx = {"to": str(contract.address), "data": "0x" + bytes(data).hex()}
        return int(self.node.rpc("eth_estimateGas", tx), 16)

    def lens_gas(self, accounts: int) -> dict[str, int]:
        """Gas of the bot's lens calls (eth_estimateGas: 21,000 and calldata included),
        and the warm cost of one more account with 1 or 2 positions in a batch
        (the difference between ``lens.accounts`` of 100 and of 50 such keys)."""
        owner = str(self.populator.address)
        out = {
            "markets": self.estimate(self.lens, "markets"),
            "liquidation_params": self.estimate(self.engine, "liquidation_params"),
        }
        for page in PAGE_SIZES:
            out[f"active_accounts_page_{page}"] = self.estimate(self.lens, "active_accounts", 0, page)
        lo, hi = min(PAGE_SIZES), max(PAGE_SIZES)
        out["per_account_in_page"] = (out[f"active_accounts_page_{hi}"] - out[f"active_accounts_page_{lo}"]) // (hi - lo)
        for legs in (1, 2):
            subs = [s for s in range(accounts) if len(PROFILE_SPECS[s % len(PROFILE_SPECS)].legs) == legs]
            if len(subs) < 100:
                continue
            big = self.estimate(self.lens, "accounts", [(owner, s) for s in subs[:100]])
            small = self.estimate(self.lens, "accounts", [(owner, s) for s in subs[:50]])
            out[f"accounts_100_keys_{legs}_position"] = big
            out[f"per_account_{legs}_position"] = (big - small) // 50
        if "per_account_1_position" in out and "per_account_2_position" in out:
            out["per_extra_position"] = out["per_account_2_position"] - out["per_account_1_position"]
        return out


def run_scan_bench(
    echo: Echo = print,
    sizes: Sequence[int] = SIZES,
    page_sizes: Sequence[int] = PAGE_SIZES,
    repeats: int | None = None,
) -> ScanBenchResult:
    """Runs the whole scan benchmark on a new anvil node (stopped at the end)."""
    from ape import networks

    from margin_engine.anvil import APE_NETWORK, Anvil, find_anvil

    sizes = sorted(sizes)
    if not sizes or sizes[0] <= 0 or sizes[-1] > 65_536:
        raise ValueError(f"sizes must be in 1 .. 65,536 (one populator's sub-accounts), got {sizes}")
    binary = find_anvil()
    with Anvil(binary=binary) as node:
        echo(f"scan bench: anvil {anvil_version(binary)} at {node.uri} (log {node.log_path})")
        with networks.parse_network_choice(APE_NETWORK, provider_settings=node.ape_provider_settings()):
            began = time.perf_counter()
            bench = _Bench(node, echo)
            setup_seconds = time.perf_counter() - began
            echo(f"deployed in {setup_seconds:.1f} s; block gas limit {bench.block_gas_limit:,}")
            populate: list[PopulateRun] = []
            scans: list[ScanRun] = []
            statuses: dict[int, dict[str, int]] = {}
            lens_gas: dict[str, int] = {}
            for size in sizes:
                bench.set_prices(None)
                run = bench.populate(size)
                populate.append(run)
                echo(
                    f"populated {run.accounts_added:,} accounts in {run.seconds:.1f} s"
                    f" ({run.transactions} transactions, {run.gas_per_account:,} gas per account)"
                )
                bench.set_prices(STRESS)
                times = repeats or (REPEATS if size <= 2_000 else REPEATS_LARGE)
                for page in page_sizes:
                    result, statuses[size] = bench.scan(size, page, times)
                    scans.append(result)
                    echo(
                        f"scan of {size:,} accounts, pages of {page}: {result.median_seconds:.2f} s"
                        f" ({result.accounts_per_second:,.0f} accounts/s,"
                        f" {result.samples[0].requests} JSON-RPC requests)"
                    )
                result = bench.raw_scan(size, max(page_sizes), times)
                scans.append(result)
                echo(
                    f"reference read (eth_abi) of {size:,} accounts, pages of {max(page_sizes)}:"
                    f" {result.median_seconds:.2f} s ({result.accounts_per_second:,.0f} accounts/s)"
                )
                if not lens_gas:
                    lens_gas = bench.lens_gas(size)
            bench.set_prices(None)  # the profiles open at these prices
            ape_batch = bench.ape_batch()
            echo(
                f"one batch of {ape_batch['accounts']} accounts: {ape_batch['ape_seconds']:.2f} s through Ape,"
                f" {ape_batch['json_rpc_seconds']:.2f} s over JSON-RPC"
            )
            node_info = {
                "anvil": anvil_version(binary),
                "binary": str(binary),
                "mining": "auto-mining (one block per transaction)",
                "block_gas_limit": bench.block_gas_limit,
                "setup_seconds": round(setup_seconds, 2),
            }
            profiles = [
                {
                    "sub_mod_20": i,
                    "profile": spec.label,
                    "notional_usd": spec.notional_usd,
                    "collateral": collateral,
                    "sizes": sizes_,
                }
                for i, (spec, (collateral, sizes_)) in enumerate(zip(PROFILE_SPECS, bench.profiles, strict=True))
            ]
    checks = [
        f"every scan returned each of the engine's active_count() accounts once ({', '.join(f'{n:,}' for n in sizes)}),"
        " exactly the populator's sub-accounts 0 .. N-1",
        "no status disagreement between the reference model and the engine (assessment.mismatch) in any scan",
        f"about {STATUS_SAMPLE} scanned statuses per scan compared with engine.status at the scanned block: equal",
    ]
    return ScanBenchResult(
        machine=describe_machine(),
        node=node_info,
        populate=populate,
        scans=scans,
        statuses=statuses,
        lens_gas=lens_gas,
        checks=checks,
        profiles=profiles,
        ape_batch=ape_batch,
        notes=_notes(scans, lens_gas, node_info["block_gas_limit"]),
    )


def _per_scan(samples: Sequence[ScanSample]) -> str:
    total: Counter[str] = Counter()
    for x in samples:
        total.update(x.requests_by_method)
    return ", ".join(f"{m} {c / max(len(samples), 1):g}" for m, c in sorted(total.items()))


def _notes(scans: Sequence[ScanRun], lens_gas: dict[str, int], block_gas_limit: int) -> list[str]:
    bot = [s for s in scans if s.reader == "bot"]
    ref = [s for s in scans if s.reader != "bot"]
    notes = [
        "s per scan: `Snapshot.seconds`, the wall time of `LiquidatorBot.scan()` from reading the head"
        " block to the assessed accounts: JSON-RPC round trips, anvil's execution of the lens, ABI"
        " decoding and the reference model's valuation of every account. eth_call s: the part spent"
        " in `eth_call` requests (HTTP on the loopback and anvil's execution); the rest is Python.",
        "Bot RPC calls: `Snapshot.rpc_calls` (head block, position logs since the last scan, liquidation"
        " parameters, margin terms and margin-call band (`engine.margin_words`), markets, one"
        " `engine.market_words` per market not yet seen flagged for the risk model (none is here), one per"
        " page). JSON-RPC requests: the lines anvil logged during the scan, one per request that reached"
        " the node.",
    ]
    if bot:
        first = bot[0]
        notes.append(
            f"Per scan of {first.accounts:,} accounts in pages of {first.page_size}, the node received:"
            f" {_per_scan(first.samples)}. The bot sends each view as one raw `eth_call` at the scanned"
            " block and decodes it with `eth_abi` (`LiquidatorBot.read_view`): a call through Ape's contract"
            " objects costs 3 requests on a development network (`eth_getBlockByNumber` for a gas limit"
            " it then drops, `eth_getCode`, the `eth_call`), a call through web3's middleware 3 as well"
            " (two `eth_chainId`), and Ape's struct decoding was ~15x slower than `eth_abi` here (it builds"
            " a new dataclass type per decoded struct, ~3 per account)."
        )
    if bot and ref:
        a = next((s for s in bot if s.accounts == ref[-1].accounts and s.page_size == ref[-1].page_size), bot[-1])
        r = ref[-1]
        notes.append(
            f"Where a scan's time goes ({a.accounts:,} accounts, pages of {a.page_size}): the bot takes"
            f" {a.median_seconds:.2f} s, of which {statistics.median(x.eth_call_seconds for x in a.samples):.2f} s"
            " in eth_call requests. The `eth_abi` rows are a reference read without the bot's bookkeeping"
            " (no log read, no account book): the same calls at one block decoded into plain tuples, then the"
            f" same conversion and model ({r.median_seconds:.2f} s, the same statuses for every account)."
        )
    notes.append(
        "Ape drops any gas field from `eth_call`, so the node's cap applies: anvil gives a call the block"
        f" gas limit ({block_gas_limit:,}); geth's default `--rpc.gascap` is 50,000,000."
    )
    per_account = lens_gas.get("per_account_in_page", 0)
    per_position = lens_gas.get("per_extra_position", 0)
    if per_account and per_position:
        eight = lens_gas["per_account_1_position"] + 7 * per_position
        notes.append(
            f"Lens gas: about {per_account:,} gas per account in an `active_accounts` page of this mix"
            f" (1.2 positions on average; a page of 200: {lens_gas.get('active_accounts_page_200', 0) / 1e6:.1f}M)."
            f" In a batch, an account costs {lens_gas['per_account_1_position']:,} with 1 position and"
            f" {per_position:,} more per extra position; an account with 8 positions would cost about"
            f" {eight:,}, so a page of 200 such accounts (~{200 * eight / 1e6:.0f}M gas)"
            + (
                " fits in anvil's 30M call cap."
                if 200 * eight <= 30_000_000
                else f" would exceed anvil's 30M call cap (pages of {30_000_000 // eight} fit)"
                + (
                    " and geth's 50M." if 200 * eight > 50_000_000 else f" but fit in geth's 50M."
                )
            )
        )
    return notes


# --------------------------------------------------------------------------
#                                   Output
# --------------------------------------------------------------------------


def _scan_rows(result: ScanBenchResult) -> list[list[str]]:
    rows = []
    for s in result.scans:
        times = [x.seconds for x in s.samples]
        first = s.samples[0]
        rows.append(
            [
                "bot" if s.reader == "bot" else "eth_abi (reference)",
                fmt_int(s.accounts),
                str(s.page_size),
                str(s.pages),
                f"{s.median_seconds:.2f}",
                f"{min(times):.2f} - {max(times):.2f}",
                fmt_int(round(s.accounts_per_second)),
                str(first.bot_rpc_calls),
                str(first.requests),
                f"{statistics.median(x.eth_call_seconds for x in s.samples):.2f}",
            ]
        )
    return rows


SCAN_HEADERS = [
    "reader",
    "accounts",
    "page size",
    "pages",
    "s per scan (median)",
    "min - max",
    "accounts/s",
    "RPC calls",
    "JSON-RPC requests",
    "eth_call s",
]
SCAN_ALIGN = "lrrrrrrrrr"


def _populate_rows(result: ScanBenchResult) -> list[list[str]]:
    return [
        [
            f"{fmt_int(p.accounts_before)} -> {fmt_int(p.accounts_before + p.accounts_added)}",
            str(p.transactions),
            fmt_int(p.largest_batch),
            fmt_int(p.gas_per_account),
            f"{p.seconds:.1f}",
            fmt_int(round(p.accounts_added / p.seconds)) if p.seconds else "-",
        ]
        for p in result.populate
    ]


POPULATE_HEADERS = ["accounts", "transactions", "largest batch", "gas per account", "seconds", "accounts/s"]


def _ape_batch_line(ape: dict[str, Any]) -> str:
    if not ape:
        return ""
    return (
        f"The same transaction through Ape (`populator.populate(..., sender=admin)`, {ape['accounts']} accounts,"
        f" {fmt_int(ape['gas'])} gas): {ape['ape_seconds']:.2f} s, against {ape['json_rpc_seconds']:.2f} s over"
        " JSON-RPC. After every transaction to a contract Ape fetches its `trace_transaction` to print"
        " Vyper debug logs (`_post_send_transaction`, not configurable) and builds the call tree from it,"
        " in time quadratic in the number of calls (`evm_trace.parity.get_calltree_from_parity_trace`;"
        " about 7 calls per account here), so through Ape a bigger batch costs more per account."
    )


def render_scan_console(result: ScanBenchResult) -> str:
    out = [render_table(SCAN_HEADERS, _scan_rows(result), align=SCAN_ALIGN), ""]
    out.append(render_table(POPULATE_HEADERS, _populate_rows(result), align="lrrrrr"))
    if result.ape_batch:
        a = result.ape_batch
        out.append(
            f"  one batch of {a['accounts']} accounts: {a['ape_seconds']:.2f} s through Ape,"
            f" {a['json_rpc_seconds']:.2f} s over JSON-RPC"
        )
    return "\n".join(out)


def render_scan_markdown(result: ScanBenchResult) -> str:
    m, n = result.machine, result.node
    lines = [
        "# Liquidator scan benchmark",
        "",
        "Written by `ape run bench` (`make bench`; `ape run bench --scan-only` runs this part alone);"
        " do not edit by hand. The gas benchmark is in `gas.md`.",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['system']}; Python {m['python']},"
        f" Ape {m['ape']} (ape-foundry {m['ape_foundry']}), web3.py {m['web3']}.",
        f"- Node: anvil {n['anvil']} from npm (`@foundry-rs/anvil-linux-amd64`), {n['mining']},"
        f" block gas limit {fmt_int(n['block_gas_limit'])} (anvil's default); the bot runs in the benchmark's process"
        " and talks to anvil over HTTP on the loopback interface.",
        "- Bot: `LiquidatorBot(engine, lens, sender).scan()`: every `MarginLens.active_accounts(start, count)`"
        " page, `lens.markets()`, `engine.liquidation_params()`, the margin terms, the markets' risk-model"
        " flags and the margin-call band read at one block, then each account valued by the reference model.",
        f"- Accounts: sub-accounts of one `BenchPopulator` (contracts/test), cycling through {len(result.profiles)}"
        " profiles (BTC and ETH, long and short, 1.5x to 9.5x, 4 in 20 with two positions), opened at"
        " $60,000 / $3,000 and scanned after BTC -11 % and ETH +8 %.",
        f"- Timed scans per row: {REPEATS} up to 2,000 accounts, {REPEATS_LARGE} above (median shown),"
        " after one untimed scan that warms Ape's caches. Reader `bot`: `LiquidatorBot.scan()`;"
        " `eth_abi (reference)`: the same reads decoded without Ape (see the notes).",
        "",
        "## Scan throughput",
        "",
        render_markdown_table(SCAN_HEADERS, _scan_rows(result), align=SCAN_ALIGN),
        "",
        "## Statuses at the scanned block",
        "",
    ]
    names = list(next(iter(result.statuses.values())).keys()) if result.statuses else []
    rows = [[fmt_int(size), *(fmt_int(c[name]) for name in names), "0"] for size, c in result.statuses.items()]
    lines.append(render_markdown_table(["accounts", *names, "model/engine mismatches"], rows, align="r" * (len(names) + 2)))
    lines += [
        "",
        "## Populating (BenchPopulator.populate, one transaction per batch)",
        "",
        render_markdown_table(POPULATE_HEADERS, _populate_rows(result), align="lrrrrr"),
        "",
        f"Setup before the first batch (deployment, vault funding, populator): {n['setup_seconds']:.1f} s."
        " Batches are sent with `eth_sendTransaction` (anvil's test accounts are unlocked) and sized to"
        f" {float(BLOCK_SHARE):.0%} of the block gas limit after the first ({FIRST_BATCH} accounts) measured"
        " the gas per account.",
        "",
        _ape_batch_line(result.ape_batch),
        "",
        "## Lens gas (eth_estimateGas, 21,000 and calldata included)",
        "",
    ]
    labels = {
        "markets": "`lens.markets()` (2 markets)",
        "liquidation_params": "`engine.liquidation_params()`",
        "per_account_in_page": "per account in an `active_accounts` page (this mix; page 200 - page 100)",
        "accounts_100_keys_1_position": "`lens.accounts(keys)`, 100 accounts with 1 position",
        "per_account_1_position": "per account with 1 position in a batch (100 keys - 50 keys)",
        "accounts_100_keys_2_position": "`lens.accounts(keys)`, 100 accounts with 2 positions",
        "per_account_2_position": "per account with 2 positions in a batch (100 keys - 50 keys)",
        "per_extra_position": "per extra position of an account",
    }
    rows = []
    for key, gas in result.lens_gas.items():
        label = labels.get(key)
        if label is None and key.startswith("active_accounts_page_"):
            label = f"`lens.active_accounts(0, {key.rsplit('_', 1)[1]})`"
        rows.append([label or key, fmt_int(gas)])
    lines.append(render_markdown_table(["call", "gas"], rows, align="lr"))
    lines += ["", "## Checks", ""]
    lines += [f"- {c}" for c in result.checks]
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_scan_outputs(result: ScanBenchResult, stem: Path) -> tuple[Path, Path]:
    """Writes ``<stem>.md`` and ``<stem>.json``; returns their paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    js = stem.with_suffix(".json")
    md.write_text(render_scan_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return md, js
