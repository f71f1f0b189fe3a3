"""Multi-collateral accounts and `liquidate_collateral`: the reference model
(margin_engine/model.py) and the contracts agree to the wei.

Each example builds, on a titanoboa deployment with WETH (18 decimals), WBTC
(8) and the ERC-4626 share yUSD (6, over USDX) listed (settlement decimals 6
and 18), an account that holds collateral (one to three assets, maybe some
settlement too) and opens a position sized near its initial-margin limit:
the fee already makes a settlement debt. The share's rate may rise (a
donation, then time passes: the bounded growth) or fall (a loss of the
underlying); the market may move against the position. Then one of:

- `keep`: part of the position may be closed (its loss becomes debt), then
  the market price or every collateral price moves (found by bisection on
  the model) until `equity_maint` is a chosen percentage of `mm_required`:
  LIQUIDATABLE, or BANKRUPT below zero;
- `close`: the position is closed at a loss: a flat account with a debt
  backed by collateral, whose prices may then crash below the debt (bad
  debt: the insurance fund pays, then the vault);
- `liquidate`: as `keep`, then the keeper liquidates the position (all of it
  or up to a size), then the collateral prices may crash.

The keeper (settlement funds in its sub-account 0) then calls
`liquidate_collateral(owner, sub, asset, max_repay)` one to four times, with
max_repay the maximum, exactly the debt, a fraction of it, 1 or 0, on a held
asset or any asset, a collateral price maybe moving before the call, and
maybe sweeps every held asset with an unbounded repayment. A flat account
left without debt then withdraws everything, and the keeper what it seized
(invariant 13).

Both sides agree after every operation on the revert reason, the return
value and the events (CollateralLiquidated, BadDebt, RateUpdated,
Liquidation, PositionModified, VaultShortfall) field by field; and, after
every operation and price move (the setup's deposits and the final
withdrawals: after each group), on the state: every balance of the account
(settlement and each asset), its `engine.account` (equities, requirements,
status, positions), positions and `manager.value(owner, sub, False)`, the
same of the keeper after the calls that pay it and after each group, each
asset's price, ledger total and custody, the share's stored rate, the
insurance fund, the vault's assets and the settlement custody (invariants 1,
2: the engine holds each ledger exactly, the manager nothing). Independently of the model, each share-rate
move is held to docs/collateral.md section 3 (a fall at once, a rise no
faster than the stored rate's bound: invariant 19) and each collateral
liquidation to section 6: the revert reason follows the order of its
conditions; repaid <= min(max_repay, debt) and, with positions, <= the spec's
`need`; the seizure at the oracle price less the discount is worth at most
the repayment (invariant 20); the keeper pays exactly `repaid` and receives
exactly `seized`; a bad debt is paid by the insurance fund first and leaves
the account empty (invariant 12), and a flat account without collateral
keeps no debt; `equity_maint` never falls (but the 2 wei of the per-term
rounding down), and a repayment capped by `need` restores
`mm_required * (1 + buffer)` (within the same 2 wei).

Paths reached are labelled (`--hypothesis-show-statistics`). The named
scenarios at the end reach, on every run and at both decimals, a partial
repayment, a full repayment of the debt, a repayment capped by need, bad
debt paid by the insurance fund alone and by both, and seizures of the share
after its rate rose and fell; the last test pins the status of a flat account
whose debt lies between its collateral's initial and maintenance values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boa
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from differential_harness import boa_reason, examples
from margin_engine import model as ref
from margin_engine.model import LIQUIDATABLE, WAD, ModelRevert, ceil_div, collateral_usd, mul_div_up

BTC, ETH = 0, 1
ASSETS = ("WETH", "WBTC", "yUSD")
SHARE = "yUSD"
UINT_MAX = 2**256 - 1
PPM = 10**6
ROUNDING = 2  # wei of equity_maint a seizure may lose to the per-term rounding down (docs/collateral.md 4)
STATE_FIELDS = ("equity_init", "equity_maint", "im_required", "mm_required", "status", "positions")
COMPARED_EVENTS = frozenset(
    {"CollateralLiquidated", "BadDebt", "RateUpdated", "Liquidation", "PositionModified", "VaultShortfall"}
)



def _event_key(name: str, fields: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """An event as (name, sorted fields), addresses as strings (the emitter left out)."""
    return name, tuple(sorted((k, v if isinstance(v, int) else str(v)) for k, v in fields.items() if k != "address"))


def _state(state: Any) -> tuple[int, ...]:
    """The compared fields of an account's state (the view's or the model's)."""
    return tuple(getattr(state, name) for name in STATE_FIELDS)


def _edge(good: int, bad: int, is_bad: Callable[[int], bool]) -> int | None:
    """The value nearest to `good` on the way to `bad` at which `is_bad`
    holds (bisection over integers; `is_bad` monotone); None when not even `bad` is."""
    if not is_bad(bad):
        return None
    while abs(bad - good) > 1:
        mid = (good + bad) // 2
        good, bad = (good, mid) if is_bad(mid) else (mid, bad)
    return bad


# --------------------------------------------------------------------------
#                                 Scenarios
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One `liquidate_collateral` by the keeper."""

    pick: int  # 0-4: a held asset (pick modulo their number); 5-7: ASSETS[pick - 5], held or not
    mode: str  # max_repay: "max", "debt", "part" (ppm of the debt), "one", "zero"
    ppm: int
    move: int  # the asset's price is first moved to move / 10**6 of its answer (PPM: unchanged)


@dataclass(frozen=True)
class Scenario:
    """One example (see the module docstring); the defaults are those of the named scenarios."""

    holdings: tuple[int, int, int]  # whole USD of WETH, WBTC, yUSD deposited (0: none)
    settlement: int = 0  # whole tokens of settlement deposited too
    insurance: int = 0  # whole tokens in the insurance fund
    keeper: int = 10**7  # whole tokens in the keeper's sub-account 0
    sub: int = 0
    market: int = BTC
    long: bool = True
    size_ppm: int = 990_000  # of the largest size the initial margin allows
    rate: tuple[str, int, int] = ("none", 0, 0)  # share rate: "up" / "down" / "none", bps, seconds after
    drop: int = 0  # first the market moves this much (ppm of the price) against the position
    path: str = "keep"  # "keep", "close", "liquidate"
    realise: int = 0  # keep / liquidate: then this ppm of the position is closed (its loss a debt)
    shock: str = "market"  # keep / liquidate: "market" or "collateral" prices move to the target
    target: int = 50  # keep / liquidate: equity_maint as % of mm_required after the shock
    max_size: int = 0  # liquidate: ppm of the position (0: no cap)
    crash: tuple[int, int, int] = (PPM, PPM, PPM)  # close / liquidate: ppm each asset price keeps afterwards
    calls: tuple[Call, ...] = (Call(0, "max", 0, PPM),)
    sweep: bool = False


usd_held = st.one_of(st.just(0), st.integers(100, 100_000), st.sampled_from([1_000, 20_000]))
ppm_kept = st.one_of(st.just(PPM), st.integers(20_000, PPM), st.integers(700_000, PPM))
calls = st.lists(
    st.builds(
        Call,
        pick=st.integers(0, 7),
        mode=st.sampled_from(["max", "max", "debt", "part", "part", "one", "zero"]),
        ppm=st.integers(1, PPM),
        move=st.one_of(st.just(PPM), st.just(PPM), st.integers(300_000, 1_500_000)),
    ),
    min_size=1,
    max_size=4,
).map(tuple)
scenarios = st.builds(
    Scenario,
    holdings=st.tuples(usd_held, usd_held, usd_held).map(lambda h: h if any(h) else (0, 0, 1_000)),
    settlement=st.one_of(st.just(0), st.just(0), st.integers(1, 5_000)),
    insurance=st.one_of(st.just(0), st.integers(1, 100_000)),
    keeper=st.one_of(st.just(10**7), st.just(10**7), st.just(10**7), st.integers(0, 2_000)),
    sub=st.sampled_from([0, 0, 3]),
    market=st.sampled_from([BTC, ETH]),
    long=st.booleans(),
    size_ppm=st.integers(900_000, 999_000),
    rate=st.tuples(st.sampled_from(["none", "up", "up", "down"]), st.integers(1, 5_000), st.integers(0, 2 * 86_400)),
    drop=st.one_of(st.just(0), st.integers(0, 60_000), st.integers(0, 300_000)),
    path=st.sampled_from(["keep", "close", "liquidate"]),
    realise=st.one_of(st.just(0), st.integers(1, PPM - 1)),
    shock=st.sampled_from(["market", "collateral"]),
    target=st.one_of(st.integers(-80, 99), st.integers(80, 99)),
    max_size=st.one_of(st.just(0), st.integers(1, PPM)),
    crash=st.tuples(ppm_kept, ppm_kept, ppm_kept),
    calls=calls,
    sweep=st.booleans(),
)


# --------------------------------------------------------------------------
#                                  Lockstep
# --------------------------------------------------------------------------


class CollateralDiff:
    """One account (`alice`/`sub`) and the keeper (`liquidator`/0) on the
    deployed system and on the model, driven in lockstep and compared after
    every operation. `paths` counts what was reached."""

    def __init__(self, system: Any, sub: int) -> None:
        self.sys = system
        self.engine, self.manager, self.usdc, self.vault = system.engine, system.manager, system.usdc, system.vault
        self.tokens, self.feeds = system.assets, system.asset_feeds
        self.underlying = system.underlyings[SHARE]
        self.scale, self.unit = system.scale, system.unit
        who = system.actors
        self.admin, self.keeper = who.admin, who.liquidator
        self.owner, self.funder = who.traders["alice"], who.traders["bob"]  # the account's, the insurance's
        self.sub = sub
        self.accounts = [(self.owner, sub), (self.keeper, 0)]
        config = system.config
        self.acfg = {c.name: c for c in config.collateral}
        self.key = {name: str(token.address) for name, token in self.tokens.items()}
        self.model = ref.Engine(
            token_decimals=system.decimals,
            liq_params=ref.LiquidationParams(*config.liquidation.params()),
            reserve_factor=config.reserve_factor,
            now=boa.env.timestamp,
        )
        self.model.upnl_haircut, self.model.transfer_margin_ratio = config.upnl_haircut, config.transfer_margin_ratio
        for market in config.markets:
            self.model.add_market(ref.MarketParams(*market.params()), market.mock_price_wad())
        self.model.vault_deposit(self.engine.vault_assets())  # the LP's funding (check compares custody)
        for c in config.collateral:
            self.model.list_collateral(
                c.decimals, c.mock_price_wad(), c.w_init, c.w_maint, c.discount, c.cap, c.enabled, c.vault,
                c.max_rate_growth, live_rate=self._live_rate() if c.vault else WAD, asset=self.key[c.name],
            )  # fmt: skip
            assert self.manager.asset_id(self.tokens[c.name].address) == self.model.asset_id(self.key[c.name])
        self.markets = config.markets
        self.market_answers = [m.mock_answer() for m in config.markets]
        self.asset_answers = {name: c.mock_answer() for name, c in self.acfg.items()}
        self.flows = {name: 0 for name in ASSETS}  # deposits - withdrawals, token units
        self.paths: Counter[str] = Counter()
        self.trace: list[str] = []
        self.deferred = False

    # ------------------------------------------------------------ plumbing

    def _tick(self, seconds: int = 1) -> None:
        boa.env.time_travel(seconds=seconds)
        self.model.now = boa.env.timestamp

    def _where(self) -> str:
        return "\nafter: " + " ; ".join(self.trace[-10:])

    def run(
        self,
        label: str,
        send: Callable[[], Any],
        model_call: Callable[[], Any],
        booked: Callable[[], None] | None = None,
        tick: bool = True,
        keeper: bool = False,
    ) -> tuple[str | None, Any, list]:
        """One engine call on both sides, one second after the last (unless
        the caller ticked already, `tick=False`): the same revert reason, or
        the same return value and compared events; then (after `booked`, on
        success: the test's own token-flow count) `check` of the account (and
        of the keeper, when the call pays it). Returns (reason, return value,
        the contract's events)."""
        if tick:
            self._tick()
        self.trace.append(label)
        n = len(self.model.events)
        try:
            result, reason = send(), None
        except boa.BoaError as err:
            result, reason = None, boa_reason(err)
        try:
            expected, m_reason = model_call(), None
        except ModelRevert as err:
            expected, m_reason = None, err.reason
        where = self._where()
        assert reason == m_reason, f"{label}: contract {reason!r}, model {m_reason!r}{where}"
        logs: list = []
        if reason is None:
            logs = [log for log in self.engine.get_logs() if type(log).__name__ in COMPARED_EVENTS]
            got = sorted(_event_key(type(log).__name__, log._asdict()) for log in logs)
            want = sorted(_event_key(*e) for e in self.model.events[n:] if e[0] in COMPARED_EVENTS)
            assert got == want, f"{label}: events\ncontract {got}\nmodel    {want}{where}"
            assert result == expected, f"{label}: returned {result}, model {expected}{where}"
            if booked is not None:
                booked()
        else:
            self.paths[f"revert: {reason}"] += 1
        if not self.deferred:
            self.check(everyone=keeper)
        return reason, result, logs

    @contextmanager
    def deferred_checks(self) -> Iterator[None]:
        """`check` once at the end of the block instead of after each call
        (the setup's deposits and the final withdrawals, which the stateful
        collateral machines cover one by one)."""
        self.deferred = True
        yield
        self.deferred = False
        self.check()

    def check(self, everyone: bool = True) -> None:
        """Every balance and view of the account (and of the keeper, with
        `everyone`; else as compared last), every ledger and price of both
        sides, and custody."""
        e, m, where = self.engine, self.model, self._where()
        for owner, sub in self.accounts if everyone else self.accounts[:1]:
            view = e.account(owner, sub)
            got_t, want_t = _state(view), _state(m.account(owner, sub))
            assert view.prices_ok and got_t == want_t, f"account {owner}/{sub}: {got_t} != model {want_t}{where}"
            got_b = [e.balance_of(owner, sub, t.address) for t in (self.usdc, *self.tokens.values())]
            want_b = [m.balance_of(owner, sub)] + [m.balance_of(owner, sub, self.key[n]) for n in self.tokens]
            assert got_b == want_b, f"balances {owner}/{sub}: {got_b} != model {want_b}{where}"
            value = tuple(self.manager.value(owner, sub, False))
            assert value == (*m.collateral_value(owner, sub), True), f"value {owner}/{sub}: {value}{where}"
            for market in m.accounts.get((owner, sub), ref.Account()).positions:
                pos, got_p = m.position(owner, sub, market), e.position(owner, sub, market)
                assert (got_p.size, got_p.entry_price) == (pos.size, pos.entry_price), f"position {market}{where}"
        insurance, vault_assets = e.insurance_fund(), e.vault_assets()
        assert (insurance, vault_assets) == (m.insurance, m.vault_assets), f"insurance, vault{where}"
        assert self.vault.totalAssets() == vault_assets
        # 1, 2: the engine holds the settlement ledger exactly (donations aside: none here).
        custody, total = self.usdc.balanceOf(e.address), sum(m.balance_of(o, s) for o, s in self.accounts)
        assert custody == m.custody == total + insurance + vault_assets, f"settlement custody{where}"
        for name, token in self.tokens.items():
            key = self.key[name]
            deposits = self.manager.total_deposits(m.asset_id(key))
            held = sum(m.balance_of(o, s, key) for o, s in self.accounts)
            assert deposits == m.collaterals[key].total == held == self.flows[name], f"{name} ledger{where}"
            assert (token.balanceOf(e.address), token.balanceOf(self.manager.address)) == (deposits, 0), name
            price = tuple(self.manager.collateral_price(token.address))
            assert price == (m.asset_price(key), True), f"{name} price {price}{where}"
        share = m.collaterals[self.key[SHARE]]
        word = self.manager.asset_words(self.tokens[SHARE].address)[5]
        assert (word % 2**128, word >> 128) == (share.last_rate, share.last_time), f"stored rate{where}"

    # -------------------------------------------------------------- prices

    def _live_rate(self) -> int:
        share = self.tokens[SHARE]
        return share.convertToAssets(10 ** share.decimals()) * 10 ** (18 - self.underlying.decimals())

    def _step(self, market: int | None = None, name: str | None = None) -> int:
        """WAD per feed answer unit."""
        feed_decimals = self.markets[market].feed_decimals if name is None else self.acfg[name].feed_decimals
        return 10 ** (18 - feed_decimals)

    def _answer_bounds(self, market: int | None = None, name: str | None = None) -> tuple[int, int]:
        c = self.markets[market] if name is None else self.acfg[name]
        step = self._step(market, name)
        return -(-c.min_price // step), c.max_price // step

    def post_market(self, market: int, answer: int) -> None:
        low, high = self._answer_bounds(market)
        answer = min(max(answer, low), high)
        self.sys.feeds[market].set_answer(answer, sender=self.admin)
        self.market_answers[market] = answer
        self.model.set_price(market, answer * self._step(market))

    def post_asset(self, name: str, answer: int) -> None:
        low, high = self._answer_bounds(name=name)
        answer = min(max(answer, low), high)
        self.feeds[name].set_answer(answer, sender=self.admin)
        self.asset_answers[name] = answer
        self.model.set_collateral_price(self.key[name], answer * self._step(name=name))

    def moved(self, label: str) -> None:
        """After prices or rates moved (no engine call): `check` the account."""
        self.trace.append(label)
        self.check(everyone=False)

    def advance(self, seconds: int) -> None:
        """Time passes; every feed gets a fresh round at its answer."""
        self._tick(seconds)
        for market, answer in enumerate(self.market_answers):
            self.post_market(market, answer)
        for name, answer in self.asset_answers.items():
            self.post_asset(name, answer)
        self.moved(f"advance({seconds})")

    def share_rate(self, kind: str, bps: int, seconds: int) -> None:
        """`up`: a donation of `bps` of the share vault's assets (at least
        one USDX), then `seconds` pass (the bound grows); `down`: a loss of
        `bps` / 2 of them, at once."""
        share = self.tokens[SHARE]
        assets = self.underlying.balanceOf(share.address)
        if kind == "none" or share.totalSupply() == 0:
            return
        before = self.manager.collateral_price(share.address)[0]
        if kind == "up":
            self.underlying.mint(share.address, max(assets * bps // 10_000, 10**6), sender=self.funder)
        else:
            self.underlying.burn(share.address, assets * bps // 20_000, sender=self.funder)
        self.model.set_vault_rate(self.key[SHARE], self._live_rate())
        self.moved(f"share rate {kind} {bps} bps")
        if seconds:
            self.advance(seconds)
        # A fall applies at once; a rise (a donation) no faster than the stored rate's growth bound (19).
        word = self.manager.asset_words(share.address)[5]
        last, since = word % 2**128, word >> 128
        bound = last + last * self.acfg[SHARE].max_rate_growth * (boa.env.timestamp - since) // WAD
        after = self.manager.collateral_price(share.address)[0]
        assert after == self.asset_answers[SHARE] * self._step(name=SHARE) * min(self._live_rate(), bound) // WAD
        assert after <= before if kind == "down" else after >= before
        bounded = kind == "up" and self._live_rate() > bound
        self.paths[f"share rate: {'fell' if kind == 'down' else 'rose'}{', bounded' if bounded else ''}"] += 1

    @contextmanager
    def trial_prices(self) -> Iterator[None]:
        """Model prices may be changed inside; they are restored after."""
        priced = [*self.model.markets.values(), *self.model.collaterals.values()]
        saved = [x.price for x in priced]
        try:
            yield
        finally:
            for x, price in zip(priced, saved):
                x.price = price

    def held(self) -> list[str]:
        return [name for name in ASSETS if self.model.balance_of(self.owner, self.sub, self.key[name])]

    def market_to(self, market: int, reached: Callable[[ref.AccountState], bool]) -> None:
        """Move the market against the position to the first answer at which
        the account's state is `reached` (none: to the farthest bound)."""
        pos = self.model.position(self.owner, self.sub, market)
        if pos is None:
            return
        step, now = self._step(market), self.market_answers[market]
        far = self._answer_bounds(market)[0 if pos.size > 0 else 1]

        def at(answer: int) -> bool:
            with self.trial_prices():
                self.model.markets[market].price = answer * step
                return reached(self.model.account(self.owner, self.sub))

        if not at(now):
            self.post_market(market, _edge(now, far, at) or far)

    def collateral_to(self, reached: Callable[[ref.AccountState], bool]) -> None:
        """Scale every held asset's answer down by the same factor, to the
        first at which the account's state is `reached` (none: to the bounds)."""
        names = self.held()

        def scaled(name: str, ppm: int) -> int:
            return max(self.asset_answers[name] * ppm // PPM, self._answer_bounds(name=name)[0])

        def at(ppm: int) -> bool:
            with self.trial_prices():
                for name in names:
                    self.model.collaterals[self.key[name]].price = scaled(name, ppm) * self._step(name=name)
                return reached(self.model.account(self.owner, self.sub))

        if names and not at(PPM):
            ppm = _edge(PPM, 0, at) or 0
            for name in names:
                self.post_asset(name, scaled(name, ppm))

    # ----------------------------------------------------------- operations

    def deposit(self, amount: int, name: str | None = None, owner: Any = None, sub: int | None = None) -> str | None:
        """Mint `amount` (a share: by depositing USDX into the share vault),
        approve and deposit it into `owner`/`sub` (the account by default)."""
        owner, sub = owner or self.owner, self.sub if sub is None else sub
        token = self.usdc if name is None else self.tokens[name]
        if name == SHARE:
            underlying = max(self.tokens[SHARE].previewMint(amount), 1)
            self.underlying.mint(owner, underlying, sender=owner)
            self.underlying.approve(token.address, underlying, sender=owner)
            before = token.balanceOf(owner)
            token.deposit(underlying, owner, sender=owner)
            amount = token.balanceOf(owner) - before
            self.model.set_vault_rate(self.key[SHARE], self._live_rate())
        else:
            token.mint(owner, amount, sender=owner)
        token.approve(self.engine.address, amount, sender=owner)
        key = None if name is None else self.key[name]
        reason, _, _ = self.run(
            f"deposit({'keeper' if owner == self.keeper else 'owner'}, {name or 'settlement'}, {amount})",
            lambda: self.engine.deposit(sub, token.address, amount, sender=owner),
            lambda: self.model.deposit(str(owner), sub, amount, asset=key),
            lambda: self._book(name, amount),
        )
        return reason

    def _book(self, name: str | None, amount: int) -> None:
        if name is not None:
            self.flows[name] += amount

    def deposit_usd(self, name: str, usd: int) -> None:
        units = usd * WAD * 10 ** self.acfg[name].decimals // self.model.asset_price(self.key[name])
        self.deposit(units, name)

    def fund_insurance(self, amount: int) -> None:
        self.usdc.mint(self.funder, amount, sender=self.funder)
        self.usdc.approve(self.engine.address, amount, sender=self.funder)
        self.run(
            f"fund_insurance({amount})",
            lambda: self.engine.fund_insurance(amount, sender=self.funder),
            lambda: self.model.fund_insurance(amount),
        )

    def open(self, market: int, long: bool, ppm: int) -> str | None:
        """A position of `ppm` of the largest size the initial margin allows (fee included)."""
        state = self.model.account(self.owner, self.sub)
        params, price = self.model.markets[market].params, self.model.markets[market].price
        free = max(state.equity_init - state.im_required, 0)
        size = max(free * WAD // (params.imr + params.fee_rate) * WAD // price * ppm // PPM, 1)
        return self.trade(market, size if long else -size)

    def reduce(self, market: int, ppm: int) -> str | None:
        """Close `ppm` of the position (at least one unit); the whole of it at PPM."""
        pos = self.model.position(self.owner, self.sub, market)
        if pos is None:
            return None
        if ppm >= PPM:
            return self.trade(market, -pos.size, close=True)
        return self.trade(market, -pos.size * ppm // PPM or (-1 if pos.size > 0 else 1))

    def trade(self, market: int, delta: int, close: bool = False) -> str | None:
        """`modify_position` (or `close_position`) by the owner, at any price."""
        limit = UINT_MAX if delta > 0 else 0
        args = (self.owner, self.sub, market, limit) if close else (self.owner, self.sub, market, delta, limit)
        contract_fn = self.engine.close_position if close else self.engine.modify_position
        model_fn = self.model.close_position if close else self.model.modify_position
        reason, _, _ = self.run(
            f"{'close' if close else 'trade'}({market}, {delta})",
            lambda: contract_fn(*args, sender=self.owner),
            lambda: model_fn(*args),
        )
        return reason

    def liquidate(self, market: int, max_size: int) -> str | None:
        reason, _, _ = self.run(
            f"liquidate({market}, {max_size})",
            lambda: self.engine.liquidate(self.owner, self.sub, market, max_size, sender=self.keeper),
            lambda: self.model.liquidate(self.keeper, self.owner, self.sub, market, max_size),
            keeper=True,
        )
        if reason is None:
            self.paths["position liquidated"] += 1
        return reason

    def withdraw_everything(self, owner: Any, sub: int, settlement: bool = True) -> None:
        """Invariant 13: an account without positions or debt withdraws every
        asset (and its settlement balance)."""
        for name in (*ASSETS, None) if settlement else ASSETS:
            key = None if name is None else self.key[name]
            amount = self.model.balance_of(owner, sub, key)
            if amount <= 0:
                continue
            token = self.usdc if name is None else self.tokens[name]
            reason, _, _ = self.run(
                f"withdraw({'keeper' if owner == self.keeper else 'owner'}, {name or 'settlement'}, {amount})",
                lambda: self.engine.withdraw(sub, token.address, amount, sender=owner),
                lambda: self.model.withdraw(owner, sub, amount, asset=key),
                lambda: self._book(name, -amount),
            )
            assert reason is None, f"a flat account without debt could not withdraw its {name}: {reason}"

    # ------------------------------------------------- collateral liquidation

    def max_repay(self, mode: str, ppm: int) -> int:
        debt = max(-self.model.balance_of(self.owner, self.sub), 0)
        return {"max": UINT_MAX, "debt": debt, "part": debt * ppm // PPM, "one": 1, "zero": 0}[mode]

    def liquidate_collateral(self, name: str, max_repay: int) -> str | None:
        """The keeper's `liquidate_collateral` on both sides, then the
        properties of docs/collateral.md section 6 on the contract's numbers."""
        owner, sub, keeper = self.owner, self.sub, self.keeper
        token, key, asset = self.tokens[name], self.key[name], self.model.collaterals[self.key[name]]
        self._tick()  # the state before is read at the call's time (funding accrues by the second)
        view = self.engine.account(owner, sub)
        balance = self.engine.balance_of(owner, sub, self.usdc.address)
        held = self.engine.balance_of(owner, sub, token.address)
        keeper_before = [self.engine.balance_of(keeper, 0, t.address) for t in (self.usdc, token)]
        insurance, vault_assets = self.engine.insurance_fund(), self.vault.totalAssets()
        reason, seized, logs = self.run(
            f"liquidate_collateral({name}, {max_repay})",
            lambda: self.engine.liquidate_collateral(owner, sub, token.address, max_repay, sender=keeper),
            lambda: self.model.liquidate_collateral(keeper, owner, sub, key, max_repay),
            tick=False,
            keeper=True,
        )
        debt = max(-balance, 0)
        # The conditions, in the spec's order (every price is valid here).
        first = (
            "collateral: zero amount" if max_repay == 0
            else "collateral: no debt" if debt == 0
            else "collateral: not liquidatable" if view.positions and view.status < LIQUIDATABLE
            else None
        )  # fmt: skip
        if reason is not None or first is not None:
            later = {"collateral: nothing to seize", "engine: liquidator balance"}
            assert reason == first or (first is None and reason in later), f"{reason!r}, the spec: {first!r}"
            return reason
        (liq,) = [log for log in logs if type(log).__name__ == "CollateralLiquidated"]
        repaid = liq.repaid
        assert liq.seized == seized and 0 < seized <= held
        assert 0 < repaid <= min(max_repay, debt)
        need = None
        if view.positions and asset.w_maint + asset.discount < WAD:
            target = mul_div_up(view.mm_required, WAD + self.model.liq_params.buffer, WAD)
            deficit = target - view.equity_maint
            d, w = asset.discount, asset.w_maint
            need = ceil_div(ceil_div(deficit * (WAD - d), WAD - d - w), self.scale)
            assert repaid <= need, f"repaid {repaid} above the need {need}"
        # 20: what the keeper receives, at the oracle price less the discount, is worth at most what it repaid.
        price = self.manager.collateral_price(token.address)[0]
        assert collateral_usd(seized, asset.scale, price) * (WAD - asset.discount) <= repaid * self.scale * WAD
        keeper_after = [self.engine.balance_of(keeper, 0, t.address) for t in (self.usdc, token)]
        assert keeper_after == [keeper_before[0] - repaid, keeper_before[1] + seized]
        after = self.engine.account(owner, sub)
        bad = [log for log in logs if type(log).__name__ == "BadDebt"]
        if bad:
            (log,) = bad
            # 12: insurance first, the vault the rest; the account is left empty.
            assert log.amount == debt - repaid and log.insurance_paid == min(insurance, log.amount)
            assert log.vault_loss == log.amount - log.insurance_paid
            assert self.engine.insurance_fund() == insurance - log.insurance_paid
            assert self.vault.totalAssets() == vault_assets - log.vault_loss
            assert self.engine.balance_of(owner, sub, self.usdc.address) == 0 and after.positions == 0
            assert not self.held()
            payers = ("insurance" if log.insurance_paid else "", "vault" if log.vault_loss else "")
            self.paths[f"bad debt paid by: {' and '.join(p for p in payers if p)}"] += 1
        else:
            assert self.engine.balance_of(owner, sub, self.usdc.address) == balance + repaid
            assert after.positions or self.held() or balance + repaid == 0, "a flat, empty account kept a debt"
        if view.positions:
            assert after.mm_required == view.mm_required
            assert after.equity_maint >= view.equity_maint - ROUNDING, "the seizure lowered equity_maint"
            if need is not None and repaid == need and seized < held:
                assert after.equity_maint >= target - ROUNDING, "a repayment of the need left the account short"
        kind = (
            "the whole debt" if repaid == debt
            else "capped by need" if repaid == need
            else "capped by the balance (all seized)" if seized == held
            else "part (max_repay)"
        )  # fmt: skip
        for path in (f"repaid: {kind}", f"seized {name}", f"liquidated at status {ref.STATUS_NAMES[view.status]}"):
            self.paths[path] += 1
        self.paths["account with positions" if view.positions else "flat account"] += 1
        return reason


# --------------------------------------------------------------------------
#                                   Play
# --------------------------------------------------------------------------


def play(system: Any, s: Scenario) -> CollateralDiff:
    """Build the scenario's state on both sides, then the keeper's calls (see
    the module docstring)."""
    diff = CollateralDiff(system, s.sub)
    with diff.deferred_checks():
        if s.keeper:
            diff.deposit(s.keeper * diff.unit, owner=diff.keeper, sub=0)
        if s.insurance:
            diff.fund_insurance(s.insurance * diff.unit)
        for name, usd in zip(ASSETS, s.holdings):
            if usd:
                diff.deposit_usd(name, usd)
        if s.settlement:
            diff.deposit(s.settlement * diff.unit)
    if diff.open(s.market, s.long, s.size_ppm) is not None:
        return diff
    diff.paths[f"path: {s.path}"] += 1
    diff.share_rate(*s.rate)
    answer = diff.market_answers[s.market]
    if s.drop:
        # Compared by the trade or the shock next, at this price.
        diff.post_market(s.market, answer * (PPM - s.drop) // PPM if s.long else answer * (PPM + s.drop) // PPM)
        diff.trace.append("market against the position")
    if s.path == "close":
        diff.reduce(s.market, PPM)
    else:
        if s.realise:
            diff.reduce(s.market, s.realise)

        def reached(state: ref.AccountState) -> bool:
            return state.equity_maint * 100 < s.target * state.mm_required

        if s.shock == "market":
            diff.market_to(s.market, reached)
        else:
            diff.collateral_to(reached)
        diff.moved(f"{s.shock} shock to {s.target} % of mm")
        diff.paths[f"shocked: {ref.STATUS_NAMES[diff.model.status(diff.owner, diff.sub)]}"] += 1
        if s.path == "liquidate":
            pos = diff.model.position(diff.owner, diff.sub, s.market)
            cap = UINT_MAX if s.max_size == 0 or pos is None else max(abs(pos.size) * s.max_size // PPM, 1)
            diff.liquidate(s.market, cap)
    if s.path != "keep" and s.crash != (PPM,) * 3:
        for name, kept in zip(ASSETS, s.crash):
            diff.post_asset(name, diff.asset_answers[name] * kept // PPM)
        diff.moved("collateral crash")
    for call in s.calls:
        held = diff.held()
        name = held[call.pick % len(held)] if call.pick < 5 and held else ASSETS[(call.pick - 5) % 3]
        if call.move != PPM:
            diff.post_asset(name, diff.asset_answers[name] * call.move // PPM)
            diff.moved(f"{name} price moved")
        diff.liquidate_collateral(name, diff.max_repay(call.mode, call.ppm))
    if s.sweep:
        for name in diff.held():
            diff.liquidate_collateral(name, UINT_MAX)
    with diff.deferred_checks():
        acct = diff.model.accounts[(diff.owner, diff.sub)]
        if not acct.positions and acct.balance >= 0:
            diff.withdraw_everything(diff.owner, diff.sub)
        diff.withdraw_everything(diff.keeper, 0, settlement=False)  # what it seized
    return diff


# --------------------------------------------------------------------------
#                                   Tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [6, 18])
@settings(
    max_examples=examples(10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no explain: minutes per failure
)
@given(scenario=scenarios)
def test_collateral_liquidation__random_states__model_and_contracts_agree(
    collateral_boa_system: Callable[[int], Any], decimals: int, scenario: Scenario
) -> None:
    env, system = collateral_boa_system(decimals)
    with boa.swap_env(env), env.anchor():
        diff = play(system, scenario)
    for name in sorted(diff.paths):
        event(name)


# --------------------------------------------------------------------------
#                       Named scenarios (every run)
# --------------------------------------------------------------------------

WETH_20K = (20_000, 0, 0)
NAMED = {
    # A flat account after a 5 % loss at 10x: WETH worth more than the debt.
    "partial repayment": (
        Scenario(WETH_20K, drop=50_000, path="close", calls=(Call(0, "part", 300_000, PPM),)),
        "repaid: part (max_repay)",
    ),
    "whole debt repaid": (Scenario(WETH_20K, drop=50_000, path="close"), "repaid: the whole debt"),
    # 60 % closed after the 5 % loss (a large debt), then 95 % of MM: need < debt.
    "repayment capped by need": (
        Scenario(WETH_20K, drop=50_000, realise=600_000, target=95),
        "repaid: capped by need",
    ),
    # A 20 % loss at 10x: the debt exceeds the WETH.
    "bad debt, insurance only": (
        Scenario(WETH_20K, insurance=100_000, drop=200_000, path="close"),
        "bad debt paid by: insurance",
    ),
    "bad debt, insurance then vault": (
        Scenario(WETH_20K, insurance=1_000, drop=200_000, path="close"),
        "bad debt paid by: insurance and vault",
    ),
    "share seized, rate risen (bounded)": (
        Scenario((0, 0, 20_000), rate=("up", 500, 86_400), target=50),
        "seized yUSD",
    ),
    "share seized, rate fallen": (
        Scenario(
            (5_000, 0, 20_000), rate=("down", 2_000, 0), drop=50_000, path="close", calls=(Call(7, "max", 0, PPM),)
        ),
        "seized yUSD",
    ),
}


@pytest.mark.parametrize("decimals", [6, 18])
@pytest.mark.parametrize("name", list(NAMED))
def test_collateral_liquidation__named_scenario__reaches_its_path(
    collateral_boa_system: Callable[[int], Any], decimals: int, name: str
) -> None:
    scenario, path = NAMED[name]
    env, system = collateral_boa_system(decimals)
    with boa.swap_env(env), env.anchor():
        diff = play(system, scenario)
    assert diff.paths[path] > 0, f"{name}: {path!r} not reached; reached {sorted(diff.paths)}"


def test_flat_account_with_debt__equity_init_below_zero__margin_call_on_both_sides(
    collateral_boa_system: Callable[[int], Any],
) -> None:
    """A flat account whose debt lies between its collateral's initial and
    maintenance values is MARGIN_CALL (engine-spec "Account state": only a
    flat account without debt is HEALTHY by the first rule); it may not
    withdraw any collateral, and its debt can be repaid by a collateral
    liquidation. (A model taking `equity_maint >= 0` for the first rule
    made it HEALTHY.)"""
    env, system = collateral_boa_system(6)
    with boa.swap_env(env), env.anchor():
        diff = play(system, Scenario(WETH_20K, drop=50_000, path="close", calls=()))
        diff.collateral_to(lambda state: state.equity_init < 0)
        diff.moved("WETH to the first price at which equity_init < 0")  # compares the status too
        state = diff.engine.account(diff.owner, diff.sub)
        assert (state.positions, state.status) == (0, ref.MARGIN_CALL) and state.equity_init < 0 <= state.equity_maint
        assert diff.engine.balance_of(diff.owner, diff.sub, diff.usdc.address) < 0
        weth = diff.key["WETH"]
        reason, _, _ = diff.run(
            "withdraw(owner, WETH, 1)",
            lambda: diff.engine.withdraw(diff.sub, weth, 1, sender=diff.owner),
            lambda: diff.model.withdraw(diff.owner, diff.sub, 1, asset=weth),
        )
        assert reason == "engine: unhealthy"
        assert diff.liquidate_collateral("WETH", UINT_MAX) is None
        assert diff.paths["repaid: the whole debt"] == 1
