"""The liquidator and keeper bot over a connected Ape provider.

:class:`LiquidatorBot` is the thin I/O layer over the decisions in
:mod:`margin_engine.liquidator`: it reads the chain through ``MarginLens`` in
a few batch calls, lets those functions decide, and sends what they decided,
after a dry run against the latest state. Two front ends drive it:

- ``bot.py``, the Silverback app ``bot`` (new blocks and position events);
- ``ape run liquidator --network ...``, a plain polling loop for any node.

One round::

    snapshot = bot.scan()          # pages of lens.active_accounts + lens.markets (one block)
    report = bot.act(snapshot)     # liquidate the profitable accounts, margin-call the
                                   # accounts in the band, sample volatility and poke
                                   # funding when due

Markets flagged for the risk model (size tiers, volatility) are valued by the
engine itself: the scan reads which markets are flagged, an account holding
one is assessed with the engine's ``account()`` of the lens snapshot, and the
liquidations in flagged markets are quoted by ``lens.quote_liquidation`` at
the scan block (see :mod:`margin_engine.liquidator`).

Nothing is sent that the latest state says would revert (each transaction
is first run with ``.call()``); consecutive failures trip a breaker, after
which the bot refuses to send anything until it is reset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from margin_engine import liquidator as logic
from margin_engine import model
from margin_engine.model import WAD

__all__ = ["BotSettings", "LiquidatorBot", "RoundReport", "Snapshot"]


@dataclass(frozen=True)
class BotSettings:
    """How the bot trades off gas against rewards, and its keeper duties."""

    page_size: int = 100
    """Accounts per lens call (at most the lens's ``MAX_BATCH``, 200). A call
    costs ~28k gas per account plus ~20k per extra position: 100 accounts of
    8 positions (~17M) stay under anvil's 30M call cap, 200 would not; the
    scan is hardly slower (bench/scan.md)."""
    gas_per_liquidation: int = 250_000
    """Gas budgeted per liquidation when ranking by profit."""
    native_usd_wad: int = 3_000 * WAD
    """Price of the gas token in USD (WAD) when no market gives it."""
    native_market: int | None = None
    """A market whose oracle price is the gas token's (e.g. ETH): overrides ``native_usd_wad``."""
    min_profit_usd_wad: int = 0
    """Skip liquidations earning less than this after gas (WAD USD)."""
    max_per_round: int | None = None
    """Most liquidations and margin calls sent per round (liquidations first)."""
    close_bankrupt: bool = False
    """Keeper duty: liquidate BANKRUPT accounts although they pay no reward
    (their deficit, bad debt of the insurance fund and the vault, keeps growing)."""
    margin_calls: bool = True
    """Reduce accounts in the margin-call band (``engine.margin_call``) when the
    fee, credited in full to the sender's sub-account 0, beats the gas; ranked
    like liquidations, after them. Nothing to do while the band is off
    (buffer 0)."""
    gas_per_margin_call: int = 250_000
    """Gas budgeted per margin call when ranking by profit."""
    collateral_liquidations: bool = True
    """Keeper duty, after the position liquidations: for each account holding
    collateral with settlement debt that is LIQUIDATABLE / BANKRUPT or has no
    positions (``logic.collateral_candidates``), ``engine.liquidate_collateral``
    of its asset with the largest maintenance value (``lens.collateral_of``),
    repaying up to the debt from the sender's sub-account 0, which must hold
    settlement funds and no positions (skipped with a log line otherwise).
    The seized asset (at the oracle price less the discount) lands in that
    sub-account 0. Accounts seen with collateral and debt are read by every
    scan until repaid (a flat one is in neither the engine's list nor the
    book)."""
    volatility_updates: bool = True
    """Keeper duty: ``risk.update_volatility(m)`` once per epoch in every market
    with a volatility margin that no trade or liquidation has sampled yet (one
    more call per flagged market and scan, to read its next sample time)."""
    funding_max_age: int | None = 3_600
    """Accrue a market's funding when it is older than this many seconds (None: never)."""
    confirmations: int = 2
    """Blocks after which a position event is final (reorg safety)."""
    events: bool = True
    """Also read ``PositionModified`` logs since the last scan (one ``eth_getLogs``
    per round, re-reading the last ``confirmations`` blocks) as candidates."""
    max_failures: int = 3
    """Consecutive failed sends that trip the circuit breaker."""


@dataclass
class Snapshot:
    """One consistent read of the chain (every call at ``block``)."""

    block: int
    now: int
    markets: dict[int, model.Market]
    """``lens.markets()``, flagged markets marked (``logic.mark_risk``)."""
    assessments: list[logic.Assessment]
    total_active: int
    rpc_calls: int
    seconds: float
    lens_quotes: dict[logic.QuoteKey, logic.Quote] = field(default_factory=dict)
    """``lens.quote_liquidation`` of each position in a flagged market of a liquidatable account."""
    call_params: logic.CallParams | None = None
    """The margin-call band (None: margin calls off in the settings)."""


@dataclass
class RoundReport:
    """What one round did."""

    snapshot: Snapshot
    round: logic.Round
    liquidated: list[tuple[logic.LiquidationPlan, int]] = field(default_factory=list)
    """Plans sent and mined, with the reward the engine logged."""
    receipts: list[Any] = field(default_factory=list)
    """The receipts of the liquidations, in ``liquidated`` order."""
    dropped: list[tuple[logic.LiquidationPlan | logic.MarginCallPlan, str]] = field(default_factory=list)
    """Plans whose dry run reverted on the latest state (not sent)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Transactions sent that failed: (what, why)."""
    margin_calls: list[tuple[logic.MarginCallPlan, int]] = field(default_factory=list)
    """Margin calls sent and mined, with the fee the engine logged."""
    call_receipts: list[Any] = field(default_factory=list)
    """The receipts of the margin calls, in ``margin_calls`` order."""
    volatility_sampled: list[int] = field(default_factory=list)
    """Markets sampled by ``risk.update_volatility``."""
    funding_accrued: list[int] = field(default_factory=list)
    collateral_liquidated: list[tuple[str, int, str, int, int]] = field(default_factory=list)
    """Collateral liquidations mined: (owner, sub, asset, seized, repaid) as the engine logged."""


class CircuitOpen(RuntimeError):
    """The bot stopped sending transactions after repeated failures."""


class LiquidatorBot:
    """Scans the engine, liquidates profitable accounts, keeps funding fresh.

    Args:
        engine: the ``MarginEngine`` contract instance.
        lens: the ``MarginLens`` contract instance.
        sender: the account that sends liquidations (it receives the rewards
            in its engine sub-account 0).
        settings: :class:`BotSettings`.
        log: a printer for one-line messages (``None`` for silence).
        risk: the ``RiskModel`` instance (default: the project's at
            ``engine.RISK_MODEL()``, resolved when first needed).
    """

    def __init__(
        self,
        engine: Any,
        lens: Any,
        sender: Any,
        settings: BotSettings | None = None,
        log: Callable[[str], None] | None = print,
        risk: Any = None,
    ) -> None:
        self.engine = engine
        self.lens = lens
        self._risk = risk
        self._flagged: set[int] = set()  # RISK_BIT is never cleared: once seen, kept
        self.sender = sender
        self.settings = settings or BotSettings()
        self.say: Callable[[str], None] = log or (lambda _msg: None)
        self.book = logic.AccountBook(confirmations=self.settings.confirmations)
        self.breaker = logic.FailureTracker(self.settings.max_failures)
        self.scale = int(engine.SCALE())
        self._liq_params: model.LiquidationParams | None = None
        self.last_block: int | None = None
        self._next_log_block: int | None = None
        self._raw_rpc = True
        self._last_notified: int | None = None
        self._settlement: str | None = None
        self._manager_contract: Any = None
        self._debtors: set[logic.Key] = set()
        """Accounts seen holding collateral with settlement debt: read by every
        scan until repaid (a flat one leaves the engine's list and the book)."""

    # ------------------------------------------------------------- reading

    def scan(self) -> Snapshot:
        """Read every account with open positions and every market at one block.

        RPC calls: one for the head block, one for the liquidation
        parameters, one for the margin terms and the margin-call band
        (``engine.margin_words``), one for all markets, one per market not
        yet seen flagged (``engine.market_words``), one per flagged market
        (``risk.volatility``, with ``settings.volatility_updates``), one per
        page of accounts, one for the position logs since the last scan
        (``settings.events``), one per page of candidates from those logs
        that the list no longer holds (and of the accounts with collateral
        and settlement debt the collateral duty tracks), and one per
        position in a flagged market of a liquidatable account
        (``lens.quote_liquidation``).
        """
        from ape import chain

        started = time.perf_counter()
        head = chain.blocks.head
        block, now = int(head.number), int(head.timestamp)
        calls = 1
        if self.last_block is not None and block < self.last_block:
            self.book.rollback(block)  # the chain went back: forget what it undid
        if self.settings.events:
            # Re-read the unconfirmed tail each time: a reorg may have changed it.
            start = block if self._next_log_block is None else self._next_log_block - self.settings.confirmations
            for log in self.engine.PositionModified.range(max(start, 0), block + 1):
                self.book.add_event(log)
            self._next_log_block = block + 1
            calls += 1
        self.last_block = block
        self._liq_params = logic.liq_params_from_tuple(self.read_view(self.engine, "liquidation_params", block)[0])
        markets = logic.markets_from_lens(self.read_view(self.lens, "markets", block)[0])
        haircut, band = logic.margin_words_from_tuple(self.read_view(self.engine, "margin_words", block))
        call_params = band if self.settings.margin_calls else None
        calls += 3
        markets, risk_calls = self._read_risk(markets, block)
        calls += risk_calls
        pages: list[tuple[int, Any]] = []
        total, first = self.read_view(self.lens, "active_accounts", block, 0, self.settings.page_size)
        calls += 1
        pages.append((int(total), first))
        for start, count in logic.page_ranges(int(total), self.settings.page_size):
            if start == 0:
                continue
            pages.append(self.read_view(self.lens, "active_accounts", block, start, count))  # type: ignore[arg-type]
            calls += 1
        self.book.set_head(block)
        self.book.apply_scan(pages, block)
        snapshots = [item for _, items in pages for item in items]
        listed = {logic.account_key(s) for s in snapshots}
        # Candidates from events that the list does not hold (e.g. flat since).
        extra = [key for key in self.book.keys if key not in listed]
        extra += [key for key in sorted(self._debtors) if key not in listed and key not in extra]
        for start in range(0, len(extra), self.settings.page_size):
            chunk = extra[start : start + self.settings.page_size]
            snapshots.extend(self.read_view(self.lens, "accounts", block, [list(k) for k in chunk])[0])
            calls += 1
        accounts = logic.accounts_from_lens(snapshots)
        assessments = [logic.assess(a, markets, self.scale, now, haircut) for a in accounts]
        # Liquidations in flagged markets: the lens's quote, at the same block.
        by_key = {a.key: a for a in accounts}
        lens_quotes: dict[logic.QuoteKey, logic.Quote] = {}
        for owner, sub, market in logic.lens_quote_keys(assessments, markets):
            raw = self.read_view(self.lens, "quote_liquidation", block, owner, sub, market)[0]
            size = by_key[(owner, sub)].positions[market].size
            lens_quotes[(owner, sub, market)] = logic.quote_from_lens(owner, sub, market, size, raw)
            calls += 1
        return Snapshot(
            block=block,
            now=now,
            markets=markets,
            assessments=assessments,
            total_active=int(total),
            rpc_calls=calls,
            seconds=time.perf_counter() - started,
            lens_quotes=lens_quotes,
            call_params=call_params,
        )

    def _read_risk(self, markets: dict[int, model.Market], block: int) -> tuple[dict[int, model.Market], int]:
        """``markets`` with the flagged ones marked and, with
        ``settings.volatility_updates``, their volatility and next sample time;
        and the number of calls made."""
        calls = 0
        volatility: dict[int, tuple[bool, int]] = {}
        for market in sorted(markets):
            if market not in self._flagged:
                calls += 1
                if logic.market_words_flagged(self.read_view(self.engine, "market_words", block, market)):
                    self._flagged.add(market)
            if market in self._flagged and self.settings.volatility_updates:
                calls += 1
                volatility[market] = logic.volatility_from_tuple(self.read_view(self.risk, "volatility", block, market))
        return logic.mark_risk(markets, self._flagged & markets.keys(), volatility), calls

    @property
    def risk(self) -> Any:
        """The engine's ``RiskModel`` (``engine.RISK_MODEL()``)."""
        if self._risk is None:
            from ape import project

            self._risk = project.RiskModel.at(str(self.engine.RISK_MODEL()), fetch_from_explorer=False)
        return self._risk

    def on_position_event(self, log: Any) -> None:
        """Record a ``PositionModified`` log as a candidate account."""
        self.book.add_event(log)

    # ------------------------------------------------------------- acting

    def decide(self, snapshot: Snapshot) -> logic.Round:
        """The liquidations and margin calls worth sending now, ranked (no I/O but the gas price)."""
        from ape import chain

        assert self._liq_params is not None, "scan() first"
        settings = self.settings
        native = settings.native_usd_wad
        if settings.native_market is not None:
            market = snapshot.markets.get(settings.native_market)
            if market is not None and logic.price_ok(market):
                native = market.price
        provider = chain.provider
        gas_price = int(provider.base_fee) + int(getattr(provider, "priority_fee", 0) or 0)
        return logic.evaluate(
            snapshot.assessments,
            snapshot.markets,
            self._liq_params,
            self.scale,
            gas_price_wei=gas_price,
            gas_per_liquidation=settings.gas_per_liquidation,
            native_usd_wad=native,
            min_profit_usd_wad=settings.min_profit_usd_wad,
            max_per_round=settings.max_per_round,
            close_bankrupt=settings.close_bankrupt,
            lens_quotes=snapshot.lens_quotes,
            call_params=snapshot.call_params if settings.margin_calls else None,
            gas_per_margin_call=settings.gas_per_margin_call,
            now=snapshot.now,
        )

    def act(self, snapshot: Snapshot, tx_fields: Callable[[], dict[str, Any]] | None = None) -> RoundReport:
        """Send the round's liquidations, then its margin calls, the due
        volatility samples and the due funding accruals.

        ``tx_fields`` gives extra fields for each transaction, asked anew
        before every send (a Silverback app passes ``{"nonce": bot.nonce}``).
        Raises :class:`CircuitOpen` when the breaker is tripped.
        """
        fields: Callable[[], dict[str, Any]] = tx_fields or dict
        if self.breaker.tripped:
            raise CircuitOpen(f"{self.breaker.consecutive} consecutive failures: {self.breaker.last_reason}")
        decided = self.decide(snapshot)
        report = RoundReport(snapshot=snapshot, round=decided)
        touched: set[int] = set()  # markets a mined liquidation or margin call sampled
        for plan in decided.plans:
            args = (plan.owner, plan.sub, plan.market, plan.max_size)
            why = self._dry_run(self.engine.liquidate, *args)
            if why is not None:
                report.dropped.append((plan, why))
                self.say(f"skip {plan.owner}/{plan.sub} market {plan.market}: dry run reverts ({why})")
                continue
            try:
                receipt = self.engine.liquidate(*args, sender=self.sender, **fields())
            except Exception as exc:  # noqa: BLE001 - any send failure counts
                self._failed(report, f"liquidate {plan.owner}/{plan.sub}", exc)
                continue
            [event] = receipt.events.filter(self.engine.Liquidation) or [None]
            reward = int(event.reward) if event is not None else 0
            report.liquidated.append((plan, reward))
            report.receipts.append(receipt)
            touched.add(plan.market)
            self.breaker.record_success()
            self.say(
                f"liquidated {plan.owner}/{plan.sub} market {plan.market}: "
                f"size {plan.quote.size}, reward {reward} (quoted {plan.quote.reward}), "
                f"block {receipt.block_number}" + (" (a volatility sample was due)" if plan.samples else "")
            )
        if self.settings.collateral_liquidations:
            self._liquidate_collateral(snapshot, report, fields)
        for call in decided.calls:
            args = (call.owner, call.sub, call.market, call.max_size)
            why = self._dry_run(self.engine.margin_call, *args)
            if why is not None:
                report.dropped.append((call, why))
                self.say(f"skip margin call {call.owner}/{call.sub} market {call.market}: dry run reverts ({why})")
                continue
            try:
                receipt = self.engine.margin_call(*args, sender=self.sender, **fields())
            except Exception as exc:  # noqa: BLE001
                self._failed(report, f"margin_call {call.owner}/{call.sub}", exc)
                continue
            [event] = receipt.events.filter(self.engine.MarginCall) or [None]
            fee = int(event.fee) if event is not None else 0
            report.margin_calls.append((call, fee))
            report.call_receipts.append(receipt)
            touched.add(call.market)
            self.breaker.record_success()
            self.say(
                f"margin call {call.owner}/{call.sub} market {call.market}: "
                f"size {call.quote.size}, fee {fee} (quoted {call.quote.fee}), block {receipt.block_number}"
                + (" (a volatility sample was due)" if call.samples else "")
            )
        if self.settings.volatility_updates:
            for market in logic.volatility_due(snapshot.markets, snapshot.now, skip=touched):
                if not self._still_due(market, snapshot.now):
                    continue  # sampled since the scan: a call now would change nothing
                if self._dry_run(self.risk.update_volatility, market) is not None:
                    continue
                try:
                    self.risk.update_volatility(market, sender=self.sender, **fields())
                except Exception as exc:  # noqa: BLE001
                    self._failed(report, f"update_volatility {market}", exc)
                    continue
                self.breaker.record_success()
                report.volatility_sampled.append(market)
                self.say(f"sampled the volatility of market {market}")
        if self.settings.funding_max_age is not None:
            for market in logic.funding_due(snapshot.markets, snapshot.now, self.settings.funding_max_age):
                if self._dry_run(self.engine.accrue_funding, market) is not None:
                    continue
                try:
                    self.engine.accrue_funding(market, sender=self.sender, **fields())
                except Exception as exc:  # noqa: BLE001
                    self._failed(report, f"accrue_funding {market}", exc)
                    continue
                self.breaker.record_success()
                report.funding_accrued.append(market)
                self.say(f"accrued funding of market {market}")
        return report

    def run_round(self, tx_fields: Callable[[], dict[str, Any]] | None = None) -> RoundReport:
        """``scan`` then ``act``."""
        return self.act(self.scan(), tx_fields)

    def on_block(self, number: int) -> None:
        """A new head: a number not above the last one notified means a reorg
        replaced blocks, so the candidates recorded in them are forgotten.

        Compared with the previous notification, not with the head a scan
        read (``last_block``): a notification may arrive after a round has
        already read a later head, and that is no reorg.
        """
        if self._last_notified is not None and number <= self._last_notified:
            self.book.rollback(number - 1)
        self._last_notified = number
        self.book.set_head(number)

    # ------------------------------------------------------------ helpers

    def read_view(self, contract: Any, method: str, block: int, *args: Any) -> tuple[Any, ...]:
        """One ``eth_call`` of a view at ``block``, decoded by ``eth_abi`` into
        plain tuples (Ape's struct decoding costs ~15x more per account)."""
        from ape import chain
        from eth_abi import decode

        types = [o.canonical_type for o in contract.contract_type.view_methods[method].outputs]
        data = "0x" + bytes(getattr(contract, method).encode_input(*args)).hex()
        call = {"from": str(self.sender.address), "to": str(contract.address), "data": data}
        provider = chain.provider
        if self._raw_rpc:
            # One JSON-RPC request (web3's middleware adds two eth_chainId per call).
            try:
                raw = provider.make_request("eth_call", [call, hex(block)])
                return decode(types, bytes.fromhex(str(raw).removeprefix("0x")))
            except Exception:  # noqa: BLE001 - e.g. the in-process tester wants ints: use web3
                self._raw_rpc = False
        out = provider.web3.eth.call(call, block_identifier=block)  # type: ignore[arg-type]
        return decode(types, bytes(out))

    def _liquidate_collateral(
        self, snapshot: Snapshot, report: RoundReport, fields: Callable[[], dict[str, Any]]
    ) -> None:
        """The collateral-liquidation duty (``BotSettings.collateral_liquidations``):
        each candidate of the scan is read again on the latest state (after
        this round's position liquidations), its largest asset chosen and
        the call dry-run before it is sent."""
        for a in snapshot.assessments:
            if a.account.ok and a.account.collateral and a.account.balance < 0:
                self._debtors.add(a.key)
            elif a.account.ok:
                self._debtors.discard(a.key)
        candidates = logic.collateral_candidates(snapshot.assessments)
        if not candidates:
            return
        me = self.sender
        if self._settlement is None:
            self._settlement = str(self.engine.SETTLEMENT_ASSET())
        for owner, sub in candidates:
            mine = int(self.engine.account(me, 0).positions)
            funds = int(self.engine.balance_of(me, 0, self._settlement))
            if mine != 0 or funds <= 0:
                self.say(
                    f"skip collateral liquidations: sub-account 0 of {me} must hold settlement funds and no "
                    f"positions (balance {funds}, positions {mine})"
                )
                return
            debt = -int(self.engine.balance_of(owner, sub, self._settlement))
            asset = logic.pick_collateral(self.lens.collateral_of(owner, sub))
            repay = logic.collateral_repay(debt, funds)
            if asset is None or repay == 0:
                continue
            args = (owner, sub, asset, repay)
            why = self._dry_run(self.engine.liquidate_collateral, *args)
            if why is not None:
                self.say(f"skip collateral {owner}/{sub} {asset}: dry run reverts ({why})")
                continue
            try:
                receipt = self.engine.liquidate_collateral(*args, sender=me, **fields())
            except Exception as exc:  # noqa: BLE001
                self._failed(report, f"liquidate_collateral {owner}/{sub}", exc)
                continue
            seized, repaid = 0, 0
            try:
                manager = self._manager()
                for event in receipt.events.filter(manager.CollateralLiquidated):
                    seized, repaid = int(event.seized), int(event.repaid)
            except Exception as exc:  # noqa: BLE001 - the log is informative only
                self.say(f"could not decode CollateralLiquidated of {owner}/{sub}: {exc}")
            report.collateral_liquidated.append((owner, sub, asset, seized, repaid))
            self.breaker.record_success()
            self.say(
                f"liquidated collateral {owner}/{sub} {asset}: seized {seized}, repaid {repaid}, "
                f"block {receipt.block_number}"
            )

    def _manager(self) -> Any:
        """The engine's ``CollateralManager`` (``engine.COLLATERAL()``)."""
        manager = self._manager_contract
        if manager is None:
            from ape import project

            manager = project.CollateralManager.at(str(self.engine.COLLATERAL()), fetch_from_explorer=False)
            self._manager_contract = manager
        return manager

    def _still_due(self, market: int, scanned_at: int) -> bool:
        """The market's next sample time on the latest state is still the one
        the scan saw due (at or before ``scanned_at``): nobody sampled since."""
        try:
            next_time = logic.volatility_from_tuple(self.risk.volatility(market))[1]
        except Exception:  # noqa: BLE001 - let the dry run report
            return True
        return next_time <= scanned_at

    def _dry_run(self, method: Any, *args: Any) -> str | None:
        """None when ``method(*args)`` succeeds on the latest state, else why not."""
        try:
            method.call(*args, sender=self.sender)
        except Exception as exc:  # noqa: BLE001 - a revert of any kind
            return str(getattr(exc, "revert_message", None) or exc)
        return None

    def _failed(self, report: RoundReport, what: str, exc: Exception) -> None:
        reason = str(getattr(exc, "revert_message", None) or exc)
        report.failed.append((what, reason))
        self.breaker.record_failure(f"{what}: {reason}")
        self.say(f"FAILED {what}: {reason}")
