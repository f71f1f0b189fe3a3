"""Gas benchmark of the margin engine: ``ape run bench`` (``make bench``).

Deploys the default system (:func:`margin_engine.config.default_config`) on the
connected network, lists six more markets so that an account can hold
``MAX_POSITIONS`` (8) positions, and records ``receipt.gas_used`` of each
user-facing operation. ``gas_used`` is what the sender pays for: the 21,000
intrinsic gas and the calldata included, storage refunds (EIP-3529) deducted.

Storage costs depend on the state a transaction finds (EIP-2929: a slot is
cold on its first access in each transaction; EIP-2200: writing a zero slot
costs 20,000, a non-zero one 2,900). Each "first" case therefore starts from
storage that really is empty (a new account, a market with no open interest,
an empty insurance fund), and the whole sequence runs twice, on two freshly
deployed systems, which must agree.

Targets and reference figures are in :data:`TARGETS` and :data:`REFERENCES`.
Ape is imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from margin_engine.config import default_config
from margin_engine.report import fmt_int, render_markdown_table, render_table

__all__ = [
    "REFERENCES",
    "TARGETS",
    "BenchResult",
    "Measurement",
    "run_bench",
    "write_outputs",
]

Echo = Callable[[str], None]

WAD = 10**18
EXTRA_MARKET_PRICE = 100  # USD, the six markets listed for the health-check runs
HEALTH_CHECK_SIZES = range(1, 9)  # positions per account: 1 .. MAX_POSITIONS
BLOCK_TIME = 12  # seconds between the previous block and each measured transaction

TARGETS: dict[str, int] = {
    "deposit_first": 75_000,
    "deposit_repeat": 55_000,
    "open_first_cold_market": 140_000,
    "open_first": 140_000,
    "increase": 85_000,
    "reduce": 80_000,
    "close": 70_000,
    "liquidate_partial_first": 80_000,
    "liquidate_partial": 80_000,
    "liquidate_full_bad_debt": 80_000,
    "health_check_per_position": 16_000,
}
"""Gas targets by measurement key."""

REFERENCES: list[tuple[str, str, str]] = [
    ("GMX v1", "open long (increasePosition)", "~356,000"),
    ("GMX v1", "increase position", "248,000 - 278,000"),
    ("GMX v1", "close position", "~209,000"),
    ("GMX v1", "liquidate", "~195,000"),
    ("Compound v3", "first supply", "~115,000"),
    ("Compound v3", "repeat supply", "~77,000"),
    ("Compound v3", "withdraw with a collateral check", "~104,000"),
]
"""Published figures of other protocols, for comparison (mainnet receipts)."""

# key, operation, case (in table order)
OPERATIONS: list[tuple[str, str, str]] = [
    ("deposit_first", "deposit", "first into a new account (balance slot 0 -> x)"),
    ("deposit_repeat", "deposit", "repeat (balance slot x -> y)"),
    ("withdraw_flat", "withdraw", "no open position (no health check)"),
    ("withdraw_1pos", "withdraw", "one open position (full health check)"),
    ("open_first_cold_market", "open", "first position, market without open interest"),
    ("open_first", "open", "first position of the account, market already traded (appended to the active list)"),
    (
        "open_first_appends",
        "open",
        "first position of a sub-account, 1 ETH: appended to the active list (a never-used list slot)",
    ),
    (
        "open_second_position",
        "open",
        "1 ETH in a sub-account already holding BTC: no list change; the health check values 2 positions",
    ),
    ("increase", "increase", "same market, same side"),
    ("reduce", "reduce", "partial (half of the position)"),
    (
        "close",
        "close",
        "close_position of the account's only position (slots cleared, refunds);"
        " it leaves the active list, the list's last entry moves into its place",
    ),
    ("close_keeps_other", "close", "1 ETH of a sub-account that keeps its BTC position: no list change"),
    (
        "close_last_swap",
        "close",
        "1 ETH, the sub-account's last position: it leaves the list, the last entry moves into its place",
    ),
    (
        "close_last_tail",
        "close",
        "1 ETH, the last position of the list's last entry: it leaves the list, nothing moves",
    ),
    (
        "liquidate_partial_first",
        "liquidate",
        "partial; first in the system (insurance fund and liquidator balance 0 -> x)",
    ),
    ("liquidate_partial", "liquidate", "partial; insurance fund and liquidator balance already non-zero"),
    ("liquidate_full_bad_debt", "liquidate", "full close, bad debt paid by the insurance fund"),
    ("accrue_funding", "accrue_funding", "keeper poke: ETH (open interest), 12 s after its last update"),
    # The risk model (docs/risk-model.md 10-11): three more $100 markets, a static twin,
    # one with a volatility margin and one with size tiers; run after the rows above.
    ("risk_static_increase", "increase", "static $100 market, +$1,000 on $10,000 (the baseline of the rows below)"),
    (
        "vol_increase_no_sample",
        "increase",
        "volatility market, +$1,000 on $10,000 within the epoch of the last sample (the sample reads one slot)",
    ),
    (
        "vol_increase_sample",
        "increase",
        "volatility market, +$1,000 on $11,000, first trade of a new epoch: it samples"
        " (variance and volatility rates written, VolatilityUpdated logged)",
    ),
    (
        "tier_increase",
        "increase",
        "tiered market (edges $1,000 / $5,000 / $20,000), +$1,000 on $20,000: the position spans all 4 brackets",
    ),
    ("account_static", "account()", "the view sent as a transaction: one position in the static twin"),
    ("account_vol", "account()", "the view sent as a transaction: one position in the volatility market"),
    ("account_tiered", "account()", "the view sent as a transaction: one position in the tiered market (4 brackets)"),
    (
        "margin_call_static",
        "margin_call",
        "static twin: a quarter of a $9,400 long in the band; caller's balance already non-zero",
    ),
    ("margin_call_tiered", "margin_call", "tiered market: a quarter of an $18,600 long in the band"),
    ("update_volatility", "update_volatility", "keeper sample, the first call of a new epoch (no trade sampled it)"),
    ("update_volatility_noop", "update_volatility", "again within the same epoch: nothing changes"),
    # Multi-collateral (docs/collateral.md): WETH listed at $3,000 (weights 0.80 / 0.85, discount 5 %).
    ("collateral_deposit_first", "deposit", "WETH into a new sub-account (manager balance, holdings and total 0 -> x)"),
    ("collateral_increase", "increase", "same as 'increase' in a sub-account holding WETH and a debt (one more valuation call)"),
    ("collateral_withdraw_1pos", "withdraw", "WETH out of a sub-account with one position (health check values the WETH)"),
    ("liquidate_collateral", "liquidate_collateral", "repay a flat account's whole debt, seize WETH into the keeper's sub-account 0"),
]

# Differences between two rows above: (key, operation, case, minuend, subtrahend).
DERIVED: list[tuple[str, str, str, str, str]] = [
    (
        "risk_flag_overhead",
        "derived",
        "flagged market, no sample due: volatility increase - static increase"
        " (RiskModel.sample and RiskModel.requirements calls)",
        "vol_increase_no_sample",
        "risk_static_increase",
    ),
    (
        "vol_sample_extra",
        "derived",
        "a volatility sample inside a trade: sampling increase - increase within the epoch",
        "vol_increase_sample",
        "vol_increase_no_sample",
    ),
    ("tier_overhead", "derived", "tiered increase - static increase", "tier_increase", "risk_static_increase"),
    (
        "collateral_valuation_overhead",
        "derived",
        "an increase in a sub-account holding WETH - a plain one (CollateralManager.value: one asset, one feed)",
        "collateral_increase",
        "increase",
    ),
    (
        "account_tier_extra",
        "derived",
        "account() of a tiered position - of a static one (the risk model's requirements call)",
        "account_tiered",
        "account_static",
    ),
]


@dataclass
class Measurement:
    key: str
    operation: str
    case: str
    gas: int
    gas_second_system: int | None
    target: int | None
    within_target: bool | None


@dataclass
class BenchResult:
    network: str
    provider: str
    evm_fork: str
    compiler: str
    measurements: list[Measurement]
    health_check: dict[str, Any]
    runs_agree: bool
    differences: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "provider": self.provider,
            "evm_fork": self.evm_fork,
            "compiler": self.compiler,
            "gas_metric": "receipt.gas_used (intrinsic 21,000 and calldata included, refunds deducted)",
            "operations": [asdict(m) for m in self.measurements],
            "health_check": self.health_check,
            "runs_agree": self.runs_agree,
            "differences": {
                k: {"first_system": a, "second_system": b} for k, (a, b) in self.differences.items()
            },
            "references": [
                {"protocol": p, "operation": o, "gas": g} for p, o, g in REFERENCES
            ],
            "notes": self.notes,
            "gas_breakdown": self.profiles,
        }


# --------------------------------------------------------------------------
#                                 One system
# --------------------------------------------------------------------------


@dataclass
class _Actors:
    admin: Any
    lp: Any
    alice: Any  # deposits, open in a fresh market, increase, reduce, close
    bob: Any  # open in a traded market, withdraw with one position
    carol: Any  # health-check accounts: sub-account n holds n positions
    dave: Any  # first liquidation
    erin: Any  # repeat liquidation
    frank: Any  # full liquidation with bad debt
    liquidator: Any


class _System:
    """A fresh deployment with 8 markets and a funded vault."""

    def __init__(self, actors: _Actors, echo: Echo):
        from ape import project

        from margin_engine.deploy import deploy

        self.actors = actors
        self.echo = echo
        config = default_config()
        self.d = deploy(config, actors.admin, log=None)
        self.engine = self.d.engine
        self.usdc = self.d.settlement
        self.unit = 10 ** int(self.usdc.decimals())
        self.feeds: dict[int, Any] = {self.d.markets[n]: f for n, f in self.d.feeds.items()}
        self.prices: dict[int, int] = {
            self.d.markets[m.name]: m.mock_price_wad() for m in config.markets
        }

        # Six more markets (ETH's parameters, $100), listed by the admin.
        template = config.markets[1]
        price = EXTRA_MARKET_PRICE * WAD
        while int(self.engine.market_count()) < int(self.engine.MAX_POSITIONS()):
            feed = project.MockAggregator.deploy(8, EXTRA_MARKET_PRICE * 10**8, sender=actors.admin)
            self.d.configurator.add_market(
                feed.address, 3600, price // 100, price * 100, template.params(), sender=actors.admin
            )
            market = int(self.engine.market_count()) - 1
            self.feeds[market] = feed
            self.prices[market] = price

        # The risk model's markets (ETH's parameters, $100): a static twin, one
        # with a volatility margin and one with tiers; configured in `_run_risk`.
        self.risk_markets: dict[str, int] = {}
        for name in ("static", "vol", "tier"):
            feed = project.MockAggregator.deploy(8, EXTRA_MARKET_PRICE * 10**8, sender=actors.admin)
            self.d.configurator.add_market(
                feed.address, 3600, price // 100, price * 100, template.params(), sender=actors.admin
            )
            market = int(self.engine.market_count()) - 1
            self.feeds[market] = feed
            self.prices[market] = price
            self.risk_markets[name] = market

        # The LP funds the vault.
        self.fund_vault(1_000_000)

    # -- helpers (not measured) --

    def fund_vault(self, whole: int) -> None:
        lp, vault = self.actors.lp, self.d.vault
        amount = whole * self.unit
        self.usdc.mint(lp, amount, sender=lp)
        self.usdc.approve(vault, amount, sender=lp)
        vault.deposit(amount, lp, sender=lp)

    def give(self, account: Any, whole: int) -> None:
        """Mint tokens and approve the engine without limit (a wallet's usual approval)."""
        self.usdc.mint(account, whole * self.unit, sender=account)
        self.usdc.approve(self.engine, 2**256 - 1, sender=account)

    def deposit(self, account: Any, whole: int, sub: int = 0) -> Any:
        return self.engine.deposit(sub, self.usdc, whole * self.unit, sender=account)

    def limit(self, market: int, buy: bool) -> int:
        """A wallet's limit price: 1 % worse than the oracle (realistic calldata)."""
        return self.prices[market] * (101 if buy else 99) // 100

    def trade(self, account: Any, market: int, size: int, sub: int = 0) -> Any:
        limit = self.limit(market, size > 0)
        return self.engine.modify_position(account, sub, market, size, limit, sender=account)

    def size_for(self, market: int, usd: int) -> int:
        """Base units worth `usd` dollars at the market's current price."""
        return usd * WAD * WAD // self.prices[market]

    def set_price(self, market: int, usd: int) -> None:
        feed = self.feeds[market]
        feed.set_answer(usd * 10 ** int(feed.decimals()), sender=self.actors.admin)
        self.prices[market] = usd * WAD

    def at(self, timestamp: int) -> None:
        """The next transaction mines at `timestamp`."""
        from ape import chain

        chain.pending_timestamp = timestamp

    # -- the measured sequence --

    def measure(self, key: str, send: Callable[[], Any]) -> Any:
        """Sends one transaction and records its gas (and profile) under `key`."""
        from ape import chain

        # A later block than the market's last update, as on a live chain: the
        # funding index accrues and the market's funding slot really changes.
        chain.pending_timestamp = chain.blocks.head.timestamp + BLOCK_TIME
        if self.profiler is not None:
            self.profiler.start()
        receipt = send()
        self.gas[key] = int(receipt.gas_used)
        if self.profiler is not None:
            self.profiles[key] = self.profiler.last(receipt).summary()
        return receipt

    def run(self, profiler: GasProfiler | None = None) -> tuple[dict[str, int], dict[int, int]]:
        a = self.actors
        engine, usdc, unit = self.engine, self.usdc, self.unit
        btc = self.d.markets["BTC"]
        self.profiler = profiler
        self.gas: dict[str, int] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        measure = self.measure

        # Deposits: alice's account is new. Every trader keeps some tokens in
        # the wallet, so no token balance goes from or to zero.
        self.give(a.alice, 40_000)
        measure("deposit_first", lambda: self.deposit(a.alice, 10_000))
        measure("deposit_repeat", lambda: self.deposit(a.alice, 10_000))
        measure("withdraw_flat", lambda: engine.withdraw(0, usdc, 100 * unit, sender=a.alice))

        # Trading: alice opens the market's first position, then bob opens his first.
        measure("open_first_cold_market", lambda: self.trade(a.alice, btc, WAD))
        self.give(a.bob, 21_000)
        self.deposit(a.bob, 20_000)
        measure("open_first", lambda: self.trade(a.bob, btc, WAD // 2))
        measure("increase", lambda: self.trade(a.alice, btc, WAD // 2))
        measure("reduce", lambda: self.trade(a.alice, btc, -(3 * WAD // 4)))
        close_limit = self.limit(btc, buy=False)  # closing a long sells
        measure("close", lambda: engine.close_position(a.alice, 0, btc, close_limit, sender=a.alice))
        measure("withdraw_1pos", lambda: engine.withdraw(0, usdc, 100 * unit, sender=a.bob))

        # Health check: sub-account n of carol holds n positions of $1,000 in
        # markets 0 .. n-1; the cost of a withdrawal grows with n.
        self.give(a.carol, 50_000)
        markets = sorted(set(self.feeds) - set(self.risk_markets.values()))
        health: dict[int, int] = {}
        for n in HEALTH_CHECK_SIZES:
            self.deposit(a.carol, 1_000 * n, sub=n)
            for market in markets[:n]:
                self.trade(a.carol, market, self.size_for(market, 1_000), sub=n)
            receipt = measure(f"health_check_{n}", lambda n=n: engine.withdraw(n, usdc, unit, sender=a.carol))
            health[n] = int(receipt.gas_used)

        # Liquidations: three longs of 1 BTC at 60,000 on 7,500 (8x).
        for trader in (a.dave, a.erin, a.frank):
            self.give(trader, 8_000)
            self.deposit(trader, 7_500)
            self.trade(trader, btc, WAD)
        self.set_price(btc, 55_000)  # below maintenance: partial liquidations
        liquidate = engine.liquidate
        measure("liquidate_partial_first", lambda: liquidate(a.dave, 0, btc, WAD, sender=a.liquidator))
        measure("liquidate_partial", lambda: liquidate(a.erin, 0, btc, WAD, sender=a.liquidator))
        # Equity 7,440 - 7,700 < 0: a bankrupt account, closed in full; its
        # 260 of bad debt is within the insurance fund's share of the penalties.
        self.set_price(btc, 52_300)
        receipt = measure(
            "liquidate_full_bad_debt", lambda: liquidate(a.frank, 0, btc, WAD, sender=a.liquidator)
        )
        self._check_liquidations(receipt)
        self._run_active_list()
        self._run_risk()
        self._run_collateral()
        gas = {k: v for k, v in self.gas.items() if not k.startswith("health_check_")}
        return gas, health

    def _run_risk(self) -> None:
        """The risk model's rows: trades on a volatility market with and without
        a sample, on a tiered market and on a static twin, `account()` of each,
        margin calls and `update_volatility`. Alice's sub-accounts 1-3 hold the
        traded positions, dave's and erin's sub-account 1 the margin calls."""
        from ape import chain

        from margin_engine.calibration import onchain_params
        from margin_engine.volatility import seed_var

        a, engine, cfg, risk = self.actors, self.engine, self.d.configurator, self.d.risk
        static, vol, tier = (self.risk_markets[n] for n in ("static", "vol", "tier"))
        measure = self.measure
        p = onchain_params("ETH")  # hourly epochs, seeded at ETH's median IM rate (17.1 %)
        epoch = p.epoch

        # Start just after an epoch boundary (the feeds refreshed there), so that
        # the rows "within the epoch" are, and configure the markets.
        self.at((int(chain.blocks.head.timestamp) // epoch + 1) * epoch + 1)
        for market in (static, vol, tier):
            self.set_price(market, EXTRA_MARKET_PRICE)
        cfg.set_volatility(
            vol, (p.epoch, p.decay, p.z, p.horizon, p.floor, p.cap, p.mm_fraction), seed_var(p, 171 * WAD // 1000),
            sender=a.admin,
        )  # fmt: skip
        cfg.set_tiers(tier, [1_000, 5_000, 20_000], [125, 150, 200], sender=a.admin)
        cfg.set_call_params(WAD // 4, WAD // 4, WAD // 4, sender=a.admin)  # band 25 %, fee 1/4 of liq_fee, 1/4 per call

        alice = a.alice
        self.give(alice, 40_000)
        for sub, market, usd in ((1, static, 10_000), (2, vol, 10_000), (3, tier, 20_000)):
            self.deposit(alice, 10_000, sub=sub)
            self.trade(alice, market, self.size_for(market, usd), sub=sub)  # the vol market: its first sample (anchor)
        one_k = self.size_for(static, 1_000)
        measure("risk_static_increase", lambda: self.trade(alice, static, one_k, sub=1))
        measure("vol_increase_no_sample", lambda: self.trade(alice, vol, one_k, sub=2))
        measure("tier_increase", lambda: self.trade(alice, tier, one_k, sub=3))
        measure("account_static", lambda: engine.account.transact(alice, 1, sender=a.liquidator))
        measure("account_vol", lambda: engine.account.transact(alice, 2, sender=a.liquidator))
        measure("account_tiered", lambda: engine.account.transact(alice, 3, sender=a.liquidator))

        # The next epoch: the first trade samples (the price moved 1 %).
        next_sample = int(risk.volatility(vol)[3])
        self.at(next_sample - BLOCK_TIME)
        self.set_price(vol, EXTRA_MARKET_PRICE + 1)
        measure("vol_increase_sample", lambda: self.trade(alice, vol, one_k, sub=2))
        if int(risk.volatility(vol)[3]) != next_sample + epoch:
            raise RuntimeError("bench: the trade of a new epoch did not sample")

        # And the one after: the keeper samples, then calls again in vain.
        next_sample += epoch
        self.at(next_sample - BLOCK_TIME)
        self.set_price(vol, EXTRA_MARKET_PRICE)
        measure("update_volatility", lambda: risk.update_volatility(vol, sender=a.liquidator))
        measure("update_volatility_noop", lambda: risk.update_volatility(vol, sender=a.liquidator))
        if int(risk.volatility(vol)[3]) != next_sample + epoch:
            raise RuntimeError("bench: update_volatility did not sample")

        # Margin calls. Static twin: $10,000 long on 1,150, at 94 equity 540, MM 470
        # (band to 587.5). Tiered: $20,000 long on 3,000, at 93 equity 1,580, MM
        # 50 + 250 + 7.5 % x 13,600 = 1,320 (band to 1,650). Fresh prices first
        # (two epochs passed: beyond the feeds' heartbeat).
        self.set_price(static, EXTRA_MARKET_PRICE)
        self.set_price(tier, EXTRA_MARKET_PRICE)
        for trader, market, usd, deposit in ((a.dave, static, 10_000, 1_150), (a.erin, tier, 20_000, 3_000)):
            self.give(trader, deposit)
            self.deposit(trader, deposit, sub=1)
            self.trade(trader, market, self.size_for(market, usd), sub=1)
        self.set_price(static, 94)
        self.set_price(tier, 93)
        for key, trader, market in (("margin_call_static", a.dave, static), ("margin_call_tiered", a.erin, tier)):
            size = int(engine.position(trader, 1, market).size)
            receipt = measure(key, lambda t=trader, m=market, s=size: engine.margin_call(t, 1, m, s, sender=a.liquidator))
            [call] = receipt.events.filter(engine.MarginCall)
            if int(call.size_closed) != size // 4 or int(call.fee) == 0:
                raise RuntimeError(f"bench: unexpected {key}: size {call.size_closed} of {size}, fee {call.fee}")

    def _run_collateral(self) -> None:
        """Collateral rows: WETH listed by the admin; alice's sub-account 5
        deposits it and trades BTC on it alone (the fee becomes a debt); erin's
        sub-account 2 ends flat with a debt that the liquidator repays."""
        from ape import project

        a, engine, cfg = self.actors, self.engine, self.d.configurator
        measure, btc = self.measure, self.d.markets["BTC"]
        weth = project.MockERC20.deploy("Wrapped Ether", "WETH", 18, sender=a.admin)
        feed = project.MockAggregator.deploy(8, 3_000 * 10**8, sender=a.admin)
        params = (80 * WAD // 100, 85 * WAD // 100, 5 * WAD // 100, 10**30, True)
        cfg.list_collateral(weth, feed, 3_600, 30 * WAD, 300_000 * WAD, params, False, 0, sender=a.admin)
        self.set_price(btc, 60_000)
        for trader in (a.alice, a.erin):
            weth.mint(trader, 100 * WAD, sender=trader)
            weth.approve(engine, 2**256 - 1, sender=trader)
        measure("collateral_deposit_first", lambda: engine.deposit(5, weth, 10 * WAD, sender=a.alice))
        self.trade(a.alice, btc, WAD // 2, sub=5)
        measure("collateral_increase", lambda: self.trade(a.alice, btc, WAD // 2, sub=5))
        measure("collateral_withdraw_1pos", lambda: engine.withdraw(5, weth, WAD, sender=a.alice))

        self.give(a.liquidator, 1_000)
        self.deposit(a.liquidator, 1_000)  # the repayment comes from its sub-account 0
        engine.deposit(2, weth, WAD, sender=a.erin)
        self.trade(a.erin, btc, WAD // 10, sub=2)
        self.set_price(btc, 57_000)
        engine.close_position(a.erin, 2, btc, 0, sender=a.erin)  # a loss of 300: the debt
        self.set_price(btc, 60_000)
        if int(engine.balance_of(a.erin, 2, self.usdc)) >= 0:
            raise RuntimeError("bench: no debt to repay")
        receipt = measure(
            "liquidate_collateral",
            lambda: engine.liquidate_collateral(a.erin, 2, weth, 2**256 - 1, sender=a.liquidator),
        )
        if int(engine.balance_of(a.erin, 2, self.usdc)) != 0 or not receipt.events.filter(
            self.d.collateral.CollateralLiquidated
        ):
            raise RuntimeError("bench: the collateral liquidation did not repay the debt")

    def _run_active_list(self) -> None:
        """Opens and closes around the engine's list of accounts with positions,
        and a funding poke; bob's sub-accounts 1-3, 1 ETH (or 0.05 BTC) on 10,000."""
        a, engine = self.actors, self.engine
        btc, eth = self.d.markets["BTC"], self.d.markets["ETH"]
        bob, measure = a.bob, self.measure
        self.give(bob, 30_000)
        for sub in (1, 2, 3):
            self.deposit(bob, 10_000, sub=sub)
        self.trade(bob, btc, WAD // 20, sub=1)  # sub 1 joins the list (a slot used before)
        measure("open_first_appends", lambda: self.trade(bob, eth, WAD, sub=2))
        measure("open_second_position", lambda: self.trade(bob, eth, WAD, sub=1))
        self.trade(bob, eth, WAD, sub=3)  # sub 3: the list's last entry
        measure("accrue_funding", lambda: engine.accrue_funding(eth, sender=a.liquidator))
        close_limit = self.limit(eth, buy=False)
        measure("close_keeps_other", lambda: engine.close_position(bob, 1, eth, close_limit, sender=bob))
        measure("close_last_swap", lambda: engine.close_position(bob, 2, eth, close_limit, sender=bob))
        measure("close_last_tail", lambda: engine.close_position(bob, 3, eth, close_limit, sender=bob))
        self._check_active_list()

    def _check_active_list(self) -> None:
        """Sub 1 is listed (BTC), subs 2 and 3 are not; every listed entry points back at its index."""
        bob, engine = self.actors.bob, self.engine
        count = int(engine.active_count())
        entries = [int(engine.active_accounts(i)) for i in range(count)]
        keys = [(entry & (2**160 - 1), entry >> 160) for entry in entries]
        listed = {sub for owner, sub in keys if owner == int(str(bob.address), 16)}
        if listed != {0, 1}:
            raise RuntimeError(f"bench: bob's listed sub-accounts are {sorted(listed)}, expected [0, 1]")
        for i, entry in enumerate(entries):
            owner = "0x" + f"{entry & (2**160 - 1):040x}"
            index = (int(engine.account_meta(owner, entry >> 160)) >> 80) & (2**32 - 1)
            if index != i:
                raise RuntimeError(f"bench: list entry {i} records index {index}")

    def contract_names(self) -> dict[str, str]:
        names = {
            str(self.engine.address): "engine",
            str(self.usdc.address): "usdc",
            str(self.d.vault.address): "vault",
            str(self.d.risk.address): "risk",
        }
        for market, feed in self.feeds.items():
            names[str(feed.address)] = "feed"
        return names

    def _check_liquidations(self, full_receipt: Any) -> None:
        a, engine = self.actors, self.engine
        btc = self.d.markets["BTC"]
        for name, trader in (("dave", a.dave), ("erin", a.erin)):
            size = int(engine.position(trader, 0, btc).size)
            if not 0 < size < WAD:
                raise RuntimeError(f"bench: {name}'s liquidation was not partial (size {size})")
        if int(engine.position(a.frank, 0, btc).size) != 0:
            raise RuntimeError("bench: frank's liquidation did not close the position")
        bad = full_receipt.events.filter(engine.BadDebt)
        if len(bad) != 1 or int(bad[0].vault_loss) != 0:
            raise RuntimeError("bench: expected bad debt fully paid by the insurance fund")


# --------------------------------------------------------------------------
#                        Where the gas goes (py-evm only)
# --------------------------------------------------------------------------

_SLOAD, _SSTORE = 0x54, 0x55
_LOGS = range(0xA0, 0xA5)
_CALLS = {0xF1: "CALL", 0xF2: "CALLCODE", 0xF4: "DELEGATECALL", 0xFA: "STATICCALL"}
_COLD_SLOAD = 2_100
_COLD_ACCOUNT = 2_600


@dataclass
class GasProfile:
    """Storage, call and log costs of one transaction, by contract."""

    sload_cold: dict[str, int] = field(default_factory=dict)
    sload_warm: dict[str, int] = field(default_factory=dict)
    sstore_new: dict[str, int] = field(default_factory=dict)  # 0 -> x
    sstore_update: dict[str, int] = field(default_factory=dict)  # x -> y, first write in the tx
    sstore_clear: dict[str, int] = field(default_factory=dict)  # x -> 0 (refund)
    sstore_dirty: dict[str, int] = field(default_factory=dict)  # written again in the same tx
    calls_cold: int = 0
    calls_warm: int = 0
    sload_gas: int = 0
    sstore_gas: int = 0
    call_access_gas: int = 0
    log_gas: int = 0
    execution_gas: int = 0  # all opcodes, before the refund
    refund_counter: int = 0  # EIP-3529 refund counter at the end of the transaction
    refund: int = 0  # refund applied (capped at a fifth of the gas)
    intrinsic_gas: int = 0

    def summary(self) -> dict[str, Any]:
        def total(d: dict[str, int]) -> int:
            return sum(d.values())

        return {
            "cold_slots_read": dict(self.sload_cold),
            "warm_reads": total(self.sload_warm),
            "slots_written_new": dict(self.sstore_new),
            "slots_written_update": dict(self.sstore_update),
            "slots_cleared": dict(self.sstore_clear),
            "slots_rewritten": total(self.sstore_dirty),
            "external_calls_cold": self.calls_cold,
            "external_calls_warm": self.calls_warm,
            "gas_intrinsic_and_calldata": self.intrinsic_gas,
            "gas_sload": self.sload_gas,
            "gas_sstore": self.sstore_gas,
            "gas_call_access": self.call_access_gas,
            "gas_logs": self.log_gas,
            "gas_other_execution": self.execution_gas
            - self.sload_gas
            - self.sstore_gas
            - self.call_access_gas
            - self.log_gas,
            "refund": self.refund,
        }


class _Probe:
    """Wraps one py-evm opcode and records its gas into the profiler."""

    def __init__(self, inner: Any, code: int, profiler: GasProfiler):
        self.inner = inner
        self.code = code
        self.profiler = profiler
        self.mnemonic = getattr(inner, "mnemonic", "")
        self.gas_cost = getattr(inner, "gas_cost", 0)

    def __call__(self, computation: Any) -> None:
        self.profiler.record(self, computation)


class GasProfiler:
    """Counts storage reads/writes, cold calls and logs of transactions run by
    Ape's local chain (eth-tester over py-evm), by patching the opcode table
    and ``apply_transaction`` of the running fork for the duration of a
    ``with`` block.

    Opcodes are grouped by the hash of the transaction being applied; a later
    application of the same transaction (when the block is mined) replaces
    the earlier one, and gas estimates (unsigned transactions) are ignored.
    """

    def __init__(self, provider: Any, names: dict[str, str]):
        vm = provider.evm_backend.chain.get_vm()
        self.state_class = type(vm.state)
        self.opcodes: dict[int, Any] = vm.state.computation_class.opcodes
        self.names = {bytes.fromhex(a[2:].lower()): n for a, n in names.items()}
        self.saved: dict[int, Any] = {}
        self.saved_apply: Any = None
        self.profiles: dict[bytes, GasProfile] = {}
        self.current: GasProfile | None = None

    def __enter__(self) -> GasProfiler:
        for code in [_SLOAD, _SSTORE, *_LOGS, *_CALLS]:
            self.saved[code] = self.opcodes[code]
            self.opcodes[code] = _Probe(self.opcodes[code], code, self)
        self.saved_apply = self.state_class.__dict__.get("apply_transaction")
        original = self.state_class.apply_transaction
        profiler = self

        def apply_transaction(state: Any, transaction: Any) -> Any:
            try:
                key = bytes(transaction.hash)
            except Exception:  # noqa: BLE001 - a spoofed (estimate/call) transaction
                key = None
            previous = profiler.current
            profiler.current = None
            if key is not None:
                profiler.current = profiler.profiles[key] = GasProfile()
            try:
                return original(state, transaction)
            finally:
                profiler.current = previous

        self.state_class.apply_transaction = apply_transaction
        return self

    def __exit__(self, *exc: Any) -> None:
        self.opcodes.update(self.saved)
        self.saved.clear()
        if self.saved_apply is None:
            del self.state_class.apply_transaction
        else:
            self.state_class.apply_transaction = self.saved_apply

    def start(self) -> None:
        """Forget earlier transactions."""
        self.profiles.clear()

    def last(self, receipt: Any) -> GasProfile:
        """The profile of the transaction of `receipt`."""
        key = bytes.fromhex(str(receipt.txn_hash).removeprefix("0x"))
        profile = self.profiles.get(key)
        if profile is None:
            raise RuntimeError(f"bench: no profile for transaction {receipt.txn_hash}")
        data = bytes(receipt.transaction.data)
        profile.intrinsic_gas = 21_000 + sum(4 if b == 0 else 16 for b in data)
        # gas_used = total - min(counter, total // 5), total = intrinsic + execution.
        used = int(receipt.gas_used)
        counter = max(profile.refund_counter, 0)
        if counter * 5 <= used + counter:
            refund = counter
        else:  # capped: used = total - total // 5
            total = used * 5 // 4
            while total - total // 5 < used:
                total += 1
            refund = total // 5
        profile.refund = refund
        profile.execution_gas = used + refund - profile.intrinsic_gas
        return profile

    def _name(self, address: bytes) -> str:
        return self.names.get(bytes(address), "0x" + bytes(address).hex()[:8])

    def record(self, probe: _Probe, computation: Any) -> None:
        profile = self.current
        if profile is None:  # not a signed transaction: run the opcode unobserved
            probe.inner(computation=computation)
            return
        code = probe.code
        who = self._name(computation.msg.storage_address)
        warm_before = None
        if code in _CALLS:
            raw = computation._stack.values[-2]
            target = raw[-20:] if isinstance(raw, bytes) else (raw % 2**160).to_bytes(20, "big")
            warm_before = computation.state.is_address_warm(target)
        meter = computation._gas_meter
        gas0, refund0 = meter.gas_remaining, meter.gas_refunded
        probe.inner(computation=computation)
        if code in _CALLS:
            # The access cost only: the callee's own opcodes are recorded under its name.
            if warm_before:
                profile.calls_warm += 1
                profile.call_access_gas += 100
            else:
                profile.calls_cold += 1
                profile.call_access_gas += _COLD_ACCOUNT
            return
        spent = gas0 - meter.gas_remaining
        refunded = meter.gas_refunded - refund0
        profile.refund_counter += refunded
        if code == _SLOAD:
            profile.sload_gas += spent
            bucket = profile.sload_cold if spent >= _COLD_SLOAD else profile.sload_warm
        elif code == _SSTORE:
            profile.sstore_gas += spent
            base = spent - _COLD_SLOAD if spent > _COLD_SLOAD and spent not in (2_900, 20_000) else spent
            if base >= 20_000:
                bucket = profile.sstore_new
            elif base >= 2_900:
                bucket = profile.sstore_clear if refunded > 0 else profile.sstore_update
            else:
                bucket = profile.sstore_dirty
        else:
            profile.log_gas += spent
            return
        bucket[who] = bucket.get(who, 0) + 1


# --------------------------------------------------------------------------
#                                 Environment
# --------------------------------------------------------------------------


def describe_fork(provider: Any) -> str:
    """The hardfork whose gas rules the provider applies, when it can be found."""
    # Ape's local chain: eth-tester over py-evm.
    try:
        vm = provider.evm_backend.chain.get_vm()
        return f"{vm.fork} (py-evm {type(vm).__name__})"
    except Exception:  # noqa: BLE001 - not a py-evm provider
        pass
    # anvil
    try:
        info = provider.make_request("anvil_nodeInfo", [])
        fork = info.get("hardFork") or info.get("hard_fork")
        if fork:
            return f"{str(fork).lower()} (anvil)"
    except Exception:  # noqa: BLE001 - not anvil
        pass
    return "unknown"


def describe_compiler(root: Path | None = None) -> str:
    """Compiler version, EVM version and the engine's optimisation pragma."""
    try:
        import vyper
        from vyper.evm.opcodes import DEFAULT_EVM_VERSION
    except Exception:  # noqa: BLE001 - no compiler in this environment
        return "unknown"
    text = f"vyper {vyper.__version__}, evm_version {DEFAULT_EVM_VERSION} (default)"
    engine = (root or Path.cwd()) / "contracts" / "MarginEngine.vy"
    try:
        for line in engine.read_text(encoding="utf-8").splitlines():
            if line.startswith("# pragma optimize"):
                mode = line.split()[-1]
                text += f"; MarginEngine.vy: `optimize {mode}`"
                break
    except OSError:
        pass
    return text


# --------------------------------------------------------------------------
#                                   Driver
# --------------------------------------------------------------------------


def _within(gas: int | None, target: int | None) -> bool | None:
    if gas is None or target is None:
        return None
    return gas <= target


def run_bench(echo: Echo = print, profile: bool = True) -> BenchResult:
    """Runs the measured sequence on two fresh systems and collects the results.

    With `profile` on Ape's local chain, the first system's transactions are
    also broken down into storage reads and writes (:class:`GasProfiler`);
    the second runs unpatched, so agreement also shows the profiler changes
    no gas.
    """
    from ape import accounts, chain, project

    test_accounts = accounts.test_accounts
    if len(test_accounts) < 9:
        raise RuntimeError("the bench needs 9 test accounts (ape-config.yaml: test.number_of_accounts)")
    actors = _Actors(*test_accounts[:9])

    provider = chain.provider
    network = f"{provider.network.ecosystem.name}:{provider.network.name}"
    echo(f"bench on {network}:{provider.name}, EVM rules: {describe_fork(provider)}")

    runs = []
    profiles: dict[str, dict[str, Any]] = {}
    for label in ("first", "second"):
        echo(f"deploying the {label} system ...")
        system = _System(actors, echo)
        echo(f"measuring on the {label} system (engine {system.engine.address}) ...")
        profiler = None
        if profile and label == "first" and hasattr(provider, "evm_backend"):
            profiler = GasProfiler(provider, system.contract_names())
        if profiler is None:
            runs.append(system.run())
        else:
            with profiler:
                runs.append(system.run(profiler))
            profiles = system.profiles

    (gas_a, health_a), (gas_b, health_b) = runs
    differences = {k: (gas_a[k], gas_b[k]) for k in gas_a if gas_a[k] != gas_b[k]}
    differences.update(
        {f"health_check_{n}": (health_a[n], health_b[n]) for n in health_a if health_a[n] != health_b[n]}
    )

    measurements = [
        Measurement(
            key=key,
            operation=op,
            case=case,
            gas=gas_a[key],
            gas_second_system=gas_b[key],
            target=TARGETS.get(key),
            within_target=_within(max(gas_a[key], gas_b[key]), TARGETS.get(key)),
        )
        for key, op, case in OPERATIONS
    ]

    sizes = list(HEALTH_CHECK_SIZES)
    first, last = sizes[0], sizes[-1]
    marginal = (health_a[last] - health_a[first]) / (last - first)
    steps = {n: health_a[n] - health_a[n - 1] for n in sizes[1:]}
    target = TARGETS["health_check_per_position"]
    health = {
        "operation": "withdraw (runs the full health check)",
        "gas_by_positions": {str(n): health_a[n] for n in sizes},
        "gas_by_positions_second_system": {str(n): health_b[n] for n in sizes},
        "step_by_positions": {str(n): g for n, g in steps.items()},
        "marginal_per_position": round(marginal),
        "marginal_per_position_max_step": max(steps.values()),
        "target_per_position": target,
        "within_target": max(steps.values()) <= target,
    }
    measurements.append(
        Measurement(
            key="health_check_per_position",
            operation="health check",
            case=f"per extra position (withdraw, {first} -> {last} positions, average)",
            gas=round(marginal),
            gas_second_system=round((health_b[last] - health_b[first]) / (last - first)),
            target=target,
            within_target=health["within_target"],
        )
    )

    # The active-list append, derived: a first open less a second-market open
    # whose health check values one more position (the 1 -> 2 step above).
    def append_cost(gas: dict[str, int], health_gas: dict[int, int]) -> int:
        return gas["open_first_appends"] - (gas["open_second_position"] - (health_gas[2] - health_gas[1]))

    index = next(i for i, m in enumerate(measurements) if m.key == "open_second_position") + 1
    measurements.insert(
        index,
        Measurement(
            key="open_first_list_append",
            operation="open",
            case="derived: first open - (second-market open - one health-check position step)"
            " = the active-list append on a first open",
            gas=append_cost(gas_a, health_a),
            gas_second_system=append_cost(gas_b, health_b),
            target=None,
            within_target=None,
        ),
    )
    measurements += [
        Measurement(
            key=key,
            operation=op,
            case=case,
            gas=gas_a[plus] - gas_a[minus],
            gas_second_system=gas_b[plus] - gas_b[minus],
            target=None,
            within_target=None,
        )
        for key, op, case, plus, minus in DERIVED
    ]

    notes = [
        "gas = receipt.gas_used: includes the 21,000 intrinsic gas and calldata, after EIP-3529 refunds.",
        "Token: the MockERC20 settlement token with an unlimited approval (no allowance write);"
        " a real USDC transfer costs more (proxy, blacklist checks).",
        "Every measured transaction runs on one of two freshly deployed systems; 'first' cases start"
        " from empty storage slots (EIP-2200: 20,000 gas to write a zero slot, 2,900 otherwise) and every"
        " slot is cold on its first access in a transaction (EIP-2929: 2,100 per slot, 2,600 per"
        " contract called).",
        f"Each measured transaction is mined {BLOCK_TIME} s after the previous block, so the"
        " market's funding index accrues and its funding slot changes, as when a market was last"
        " touched in an earlier block (a second trade in the same block skips that work: about"
        " 2,800 gas less for the slot write and ~1,000 for the accrual).",
        "Health-check sizes: sub-account n holds n positions of $1,000 in markets 0..n-1"
        " (BTC, ETH and six $100 markets listed with add_market); the withdrawal of 1 USDC runs the check.",
        "Active list: an account's first open appends it (a new entry slot and the count);"
        " closing its last position removes it: the list's last entry moves into its place (a slot"
        " write and the mover's account word) unless it was the last entry. Removed entries are not"
        " cleared, so a later append into a used slot costs a non-zero write (2,900) instead of 20,000;"
        " the rows above append into a never-used slot. The list rows run after the liquidations,"
        " on bob's sub-accounts 1-3.",
        "Risk-model rows (docs/risk-model.md 10-11): three more $100 markets with ETH's parameters are listed"
        " at deployment (a static twin, one given a volatility margin with ETH's calibrated hourly parameters,"
        " one given tiers of 1.25x, 1.5x and 2x the base rate above $1,000, $5,000 and $20,000) and configured"
        " after every row above, which they do not touch (the health-check accounts use the first 8 markets);"
        " the margin-call band is 25 % above MM, a quarter of liq_fee, a quarter of a position per call. A"
        " flagged market's trade calls RiskModel.sample (one slot read unless a new epoch began) and"
        " RiskModel.requirements for its position; a static market's trade calls neither.",
        "Collateral rows: WETH (18 decimals, $3,000, weights 0.80 / 0.85, discount 5 %) listed after the"
        " risk-model rows; the liquidator repays from its sub-account 0, already holding the rewards of the"
        " liquidations above.",
        "account(): the view sent as a transaction (gas_used: 21,000 and calldata included), so that it is"
        " measured like the other rows; eth_estimateGas of the call gives the same execution plus the"
        " 63/64 call-gas headroom.",
    ]
    return BenchResult(
        network=network,
        provider=provider.name,
        evm_fork=describe_fork(provider),
        compiler=describe_compiler(Path(project.path)),
        measurements=measurements,
        health_check=health,
        runs_agree=not differences,
        differences=differences,
        notes=notes,
        profiles=profiles,
    )


# --------------------------------------------------------------------------
#                                   Output
# --------------------------------------------------------------------------


def _verdict(m: Measurement) -> str:
    if m.within_target is None:
        return "-"
    return "yes" if m.within_target else "**no**"


BREAKDOWN_INTRO = (
    "Measured on the first system by counting the opcodes py-evm executes (local chain only)."
    " *cold reads*: storage slots read for the first time in the transaction (2,100 gas each),"
    " by contract; *writes*: slots written from zero (20,000), updated (2,900) or cleared"
    " (2,900, refund 4,800), first write in the transaction, plus 2,100 when the slot was still cold;"
    " *calls*: external calls and their cold-account cost (2,600; 100 when warm; a contract the engine reaches"
    " with a Vyper `extcall`/`staticcall`, such as the risk model, is warmed by the EXTCODESIZE check before"
    " the call, whose 2,600 land in *other*, so its call counts as warm);"
    " *other*: all remaining execution (arithmetic, memory, ABI, warm reads, call stipends)."
)


def _per_contract(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    total = sum(counts.values())
    parts = ", ".join(f"{who} {n}" for who, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{total} ({parts})"


def render_breakdown(result: BenchResult, markdown: bool = False) -> str:
    """The storage/call/log breakdown of every profiled measurement."""
    labels = {m.key: f"{m.operation}: {m.case}" for m in result.measurements}
    for n in HEALTH_CHECK_SIZES:
        labels[f"health_check_{n}"] = f"withdraw with {n} position{'s' if n > 1 else ''}"
    order = [m.key for m in result.measurements if m.key in result.profiles]
    order += [k for k in result.profiles if k.startswith("health_check_") and k not in order]
    headers = [
        "operation",
        "gas",
        "21k+calldata",
        "cold reads",
        "SLOAD gas",
        "writes new/upd/clr",
        "SSTORE gas",
        "calls (cold)",
        "call access",
        "logs",
        "other",
        "refund",
    ]
    rows = []
    for key in order:
        p = result.profiles[key]
        gas = next((m.gas for m in result.measurements if m.key == key), None)
        if gas is None:
            gas = int(result.health_check["gas_by_positions"][key.rsplit("_", 1)[1]])
        new = sum(p["slots_written_new"].values())
        upd = sum(p["slots_written_update"].values())
        clr = sum(p["slots_cleared"].values())
        rows.append(
            [
                labels.get(key, key),
                fmt_int(gas),
                fmt_int(p["gas_intrinsic_and_calldata"]),
                _per_contract(p["cold_slots_read"]),
                fmt_int(p["gas_sload"]),
                f"{new}/{upd}/{clr}",
                fmt_int(p["gas_sstore"]),
                f"{p['external_calls_cold'] + p['external_calls_warm']} ({p['external_calls_cold']})",
                fmt_int(p["gas_call_access"]),
                fmt_int(p["gas_logs"]),
                fmt_int(p["gas_other_execution"]),
                fmt_int(-p["refund"]) if p["refund"] else "0",
            ]
        )
    align = "lrrlrrrrrrrr"
    if markdown:
        return render_markdown_table(headers, rows, align=align)
    return render_table(headers, rows, align=align)


def render_console(result: BenchResult) -> str:
    rows = [
        [
            m.operation,
            m.case,
            fmt_int(m.gas),
            fmt_int(m.target),
            "-" if m.within_target is None else ("yes" if m.within_target else "NO"),
        ]
        for m in result.measurements
    ]
    out = [render_table(["operation", "case", "gas", "target", "within?"], rows, align="llrrl")]
    hc = result.health_check
    rows = [
        [n, fmt_int(g), fmt_int(hc["step_by_positions"].get(n))]
        for n, g in hc["gas_by_positions"].items()
    ]
    out.append("")
    out.append(render_table(["positions", "withdraw gas", "step"], rows, align="rrr"))
    if not result.runs_agree:
        out.append("")
        out.append(f"  the two systems differ: {result.differences}")
    return "\n".join(out)


def render_markdown(result: BenchResult) -> str:
    hc = result.health_check
    lines = [
        "# Gas benchmark",
        "",
        "Written by `ape run bench` (`make bench`); do not edit by hand. Another network:"
        " `ape run bench --network ethereum:local:foundry` (anvil) writes"
        " `bench/gas-<ecosystem>-<network>-<provider>.md`.",
        "",
        f"- Network: `{result.network}`, provider `{result.provider}`",
        f"- EVM rules: {result.evm_fork}",
        f"- Compiler: {result.compiler}",
        "- Two freshly deployed systems ran the same sequence: "
        + ("identical gas." if result.runs_agree else f"differences {result.differences}."),
        "",
        "## Operations",
        "",
    ]
    rows = [
        [
            m.operation,
            m.case,
            fmt_int(m.gas),
            fmt_int(m.target),
            _verdict(m),
        ]
        for m in result.measurements
    ]
    headers = ["operation", "case", "gas", "target", "within target?"]
    lines.append(render_markdown_table(headers, rows, align="llrrl"))
    lines += [
        "",
        "## Health check by number of positions",
        "",
        f"{hc['operation']}; target {fmt_int(hc['target_per_position'])} gas per extra position;"
        f" average {fmt_int(hc['marginal_per_position'])}, largest step"
        f" {fmt_int(hc['marginal_per_position_max_step'])}.",
        "",
    ]
    rows = [
        [n, fmt_int(g), fmt_int(hc["step_by_positions"].get(n))]
        for n, g in hc["gas_by_positions"].items()
    ]
    lines.append(render_markdown_table(["positions", "withdraw gas", "step"], rows, align="rrr"))
    if result.profiles:
        lines += ["", "## Where the gas goes", "", BREAKDOWN_INTRO, ""]
        lines.append(render_breakdown(result, markdown=True))
    lines += [
        "",
        "## Reference figures (other protocols, mainnet)",
        "",
        render_markdown_table(["protocol", "operation", "gas"], [list(r) for r in REFERENCES], align="llr"),
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_outputs(result: BenchResult, stem: Path) -> tuple[Path, Path]:
    """Writes ``<stem>.md`` and ``<stem>.json``; returns their paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    js = stem.with_suffix(".json")
    md.write_text(render_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return md, js
