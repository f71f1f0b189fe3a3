"""Integer reference model of the margin engine (the spec in code).

This module mirrors ``docs/engine-spec.md`` formula by formula, rounding
included, so that the Vyper contracts and this model agree to the wei. It uses
Python integers only (no float, no ``Decimal``) and imports nothing from Ape.

Units (as in the spec):

- ``WAD = 10**18``: prices, USD values and rates are WAD fixed point;
- sizes are signed base units with 18 decimals (positive = long);
- ledger balances (accounts, insurance, vault) are in settlement-token units;
  ``scale = 10**(18 - token_decimals)`` turns tokens into WAD exactly.

Two layers:

- pure functions (``position_value``, ``account_state``, ``liquidation_size``,
  ...) that compute one formula of the spec each and never mutate anything
  except ``accrue``, which writes a market's funding index like the contract;
- ``Engine``, a small stateful simulator of the contract's ledger that applies
  the steps of a trade or a liquidation in the spec's order and raises
  ``ModelRevert`` with the contract's revert string where the contract reverts
  (a reverted call leaves the simulator unchanged, like a reverted transaction).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

WAD: int = 10**18
"""18-decimal fixed point one (1.0 or 100%)."""

MAX_POSITIONS: int = 8
"""Most open positions one account may hold (bounds liquidation gas)."""

HEALTHY: int = 0
MARGIN_CALL: int = 1
LIQUIDATABLE: int = 2
BANKRUPT: int = 3

STATUS_NAMES: dict[int, str] = {
    HEALTHY: "HEALTHY",
    MARGIN_CALL: "MARGIN_CALL",
    LIQUIDATABLE: "LIQUIDATABLE",
    BANKRUPT: "BANKRUPT",
}


class ModelRevert(Exception):
    """Raised where the contract reverts; ``str(exc)`` is the revert string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason: str = reason


# --------------------------------------------------------------------------
#                              Rounding helpers
# --------------------------------------------------------------------------


def mul_div_down(a: int, b: int, d: int) -> int:
    """``floor(a * b / d)`` for ``a, b >= 0`` and ``d > 0``."""
    if a < 0 or b < 0 or d <= 0:
        raise ValueError(f"mul_div_down({a}, {b}, {d}): needs a, b >= 0 and d > 0")
    return (a * b) // d


def mul_div_up(a: int, b: int, d: int) -> int:
    """``ceil(a * b / d)`` for ``a, b >= 0`` and ``d > 0``: ``(a * b + d - 1) // d``."""
    if a < 0 or b < 0 or d <= 0:
        raise ValueError(f"mul_div_up({a}, {b}, {d}): needs a, b >= 0 and d > 0")
    return (a * b + d - 1) // d


def floor_div(x: int, d: int) -> int:
    """Largest ``q`` with ``q * d <= x`` (rounds toward -inf), signed ``x``, ``d > 0``.

    Python's ``//`` already floors; Vyper's signed ``//`` truncates toward
    zero, which is why the contract has an explicit ``_floor_div``.
    """
    if d <= 0:
        raise ValueError(f"floor_div({x}, {d}): needs d > 0")
    return x // d


def ceil_div(x: int, d: int) -> int:
    """Smallest ``q`` with ``q * d >= x`` (rounds toward +inf): ``-floor_div(-x, d)``."""
    return -floor_div(-x, d)


def sign(x: int) -> int:
    """-1, 0 or 1."""
    return (x > 0) - (x < 0)


# --------------------------------------------------------------------------
#                                 State types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketParams:
    """Risk parameters of one market (struct ``MarketParams`` of the interface)."""

    imr: int  # initial margin rate (WAD)
    mmr: int  # maintenance margin rate (WAD), 0 < mmr < imr <= WAD
    fee_rate: int  # trading fee on notional (WAD)
    liq_fee: int  # liquidation penalty on closed notional (WAD), < mmr
    max_oi: int  # open interest cap per side (base units)
    min_notional: int  # smallest remainder a liquidation may leave (WAD USD)
    funding_rate_max: int  # funding rate per second at full skew (WAD)


@dataclass(frozen=True)
class LiquidationParams:
    """Global liquidation parameters (struct ``LiquidationParams``)."""

    buffer: int  # liquidation restores mm_required * (1 + buffer) (WAD)
    liquidator_share: int  # share of the penalty paid to the liquidator (WAD)
    reward_floor: int  # smallest reward (tokens)
    reward_cap: int  # largest reward (tokens)


@dataclass
class Position:
    """An open position: size, entry price, funding index at the last settlement."""

    size: int  # base units, 18 decimals, positive = long
    entry_price: int  # WAD
    funding_index: int  # market funding index at the last settlement (WAD, signed)


@dataclass
class Market:
    """A market: parameters, oracle price and the storage ``MarketState``."""

    params: MarketParams
    price: int  # current oracle price (WAD)
    long_oi: int = 0  # base units
    short_oi: int = 0  # base units
    funding_index: int = 0  # WAD USD per base unit, signed
    last_funding_time: int = 0  # seconds
    mm_ramp: tuple[int, int, int, int] | None = None
    """A rise of the maintenance rate in progress: (old, new, start, end);
    ``params.mmr`` is ``new`` (see :func:`mmr_in_force`)."""


@dataclass(frozen=True)
class AccountState:
    """Margin state of one account (the fields of struct ``AccountState``)."""

    equity_init: int  # WAD USD
    equity_maint: int  # WAD USD
    im_required: int  # WAD USD
    mm_required: int  # WAD USD
    status: int  # HEALTHY, MARGIN_CALL, LIQUIDATABLE or BANKRUPT
    positions: int = 0  # number of open positions


class PositionValue(NamedTuple):
    """Valuation of one position at a price and index (all WAD USD)."""

    notional: int  # mul_div_up(|s|, P, WAD)
    pnl: int  # floor_div(s * (P - e), WAD)
    funding: int  # ceil_div(s * (I - f), WAD); > 0: owed by the trader
    upnl: int  # pnl - funding
    im: int  # mul_div_up(notional, imr, WAD)
    mm: int  # mul_div_up(notional, mmr, WAD)


# --------------------------------------------------------------------------
#                                  Funding
# --------------------------------------------------------------------------


def funding_rate(market: Market) -> int:
    """Funding rate per second (WAD, signed): ``floor_div(max * (L - S), L + S)``.

    Positive when longs dominate (longs pay). 0 when there is no open interest.
    Note the floor: any short skew gives a rate of at most -1.
    """
    total = market.long_oi + market.short_oi
    if total == 0:
        return 0
    skew = market.long_oi - market.short_oi
    return floor_div(market.params.funding_rate_max * skew, total)


def accrue_index(market: Market, now: int) -> int:
    """The funding index brought forward to ``now``, without writing it.

    ``I + floor_div(P * rate * (t - t0), WAD)`` when ``t > t0`` and there is
    open interest, else ``I``.
    """
    elapsed = now - market.last_funding_time
    if elapsed <= 0 or market.long_oi + market.short_oi == 0:
        return market.funding_index
    return market.funding_index + floor_div(market.price * funding_rate(market) * elapsed, WAD)


def current_index(market: Market, now: int) -> int:
    """Index that views use (``_current_index``): the same as ``accrue_index``."""
    return accrue_index(market, now)


def accrue(market: Market, now: int) -> int:
    """Write the accrued index and ``last_funding_time = now``; return the index."""
    market.funding_index = accrue_index(market, now)
    market.last_funding_time = now
    return market.funding_index


# --------------------------------------------------------------------------
#                            Position and account
# --------------------------------------------------------------------------


def position_value(pos: Position, price: int, index: int, params: MarketParams) -> PositionValue:
    """Value ``pos`` at ``price`` and funding ``index`` (spec: Position valuation)."""
    s = pos.size
    notional = mul_div_up(abs(s), price, WAD)
    pnl = floor_div(s * (price - pos.entry_price), WAD)
    funding = ceil_div(s * (index - pos.funding_index), WAD)
    return PositionValue(
        notional=notional,
        pnl=pnl,
        funding=funding,
        upnl=pnl - funding,
        im=mul_div_up(notional, params.imr, WAD),
        mm=mul_div_up(notional, params.mmr, WAD),
    )


def account_status(
    equity_init: int, equity_maint: int, im_required: int, mm_required: int, has_positions: bool
) -> int:
    """Status from the four margin numbers (spec: Account state).

    ``equity_maint`` equals the balance when there are no positions, so the
    first rule ("no positions and balance >= 0") is ``equity_maint >= 0``.
    """
    if not has_positions and equity_maint >= 0:
        return HEALTHY
    if equity_maint < 0:
        return BANKRUPT
    if equity_maint < mm_required:
        return LIQUIDATABLE
    if equity_init < im_required:
        return MARGIN_CALL
    return HEALTHY


def mmr_in_force(market: Market, now: int) -> int:
    """The maintenance rate at ``now``: during a ramp
    ``old + (new - old) * (now - start) // (end - start)`` (rounded down, in
    the accounts' favour), else ``params.mmr``."""
    ramp = market.mm_ramp
    if ramp is None or now >= ramp[3]:
        return market.params.mmr
    old, new, start, end = ramp
    return old + (new - old) * (now - start) // (end - start)


def in_force(market: Market, now: int) -> Market:
    """A copy of ``market`` whose ``params.mmr`` is the rate in force at ``now``
    (what the engine's views report, and what valuation and liquidation use)."""
    if market.mm_ramp is None:
        return market
    return replace(market, params=replace(market.params, mmr=mmr_in_force(market, now)), mm_ramp=None)


def account_state(
    balance_tokens: int,
    positions: Mapping[int, Position],
    markets: Mapping[int, Market],
    scale: int,
    now: int,
    upnl_haircut: int = 0,
) -> AccountState:
    """Margin state of an account valued at each market's price and current index.

    ``equity_init = equity - mul_div_up(max(upnl, 0), upnl_haircut, WAD)``:
    positive unrealised PnL counts toward IM at weight ``1 - haircut``
    (the engine's ``margin_params``); ``equity_maint`` counts it in full.
    """
    upnl = im_required = mm_required = 0
    for market_id, pos in positions.items():
        market = in_force(markets[market_id], now)
        value = position_value(pos, market.price, current_index(market, now), market.params)
        upnl += value.upnl
        im_required += value.im
        mm_required += value.mm
    equity = balance_tokens * scale + upnl
    equity_init = equity - mul_div_up(max(upnl, 0), upnl_haircut, WAD)
    status = account_status(equity_init, equity, im_required, mm_required, len(positions) > 0)
    return AccountState(
        equity_init=equity_init,
        equity_maint=equity,
        im_required=im_required,
        mm_required=mm_required,
        status=status,
        positions=len(positions),
    )


# --------------------------------------------------------------------------
#                                Trade pieces
# --------------------------------------------------------------------------


def funding_tokens(pos: Position, index: int, scale: int) -> int:
    """Funding settled in tokens: ``ceil_div(ceil_div(s * (I - f), WAD), scale)`` (> 0: paid)."""
    return ceil_div(ceil_div(pos.size * (index - pos.funding_index), WAD), scale)


def average_entry(size: int, entry_price: int, delta: int, price: int) -> int:
    """Entry price after an increase (``size == 0`` or same sign as ``delta``).

    ``(|s| e + |delta| P) / |s + delta|``, rounded up for a long and down for
    a short (the trader's entry is never better than the fills).
    """
    assert delta != 0 and size * delta >= 0, "average_entry: not an increase"
    num = abs(size) * entry_price + abs(delta) * price
    den = abs(size + delta)
    return ceil_div(num, den) if delta > 0 else floor_div(num, den)


def realised_pnl(size: int, entry_price: int, price: int, closed: int) -> int:
    """PnL realised by closing ``closed`` (> 0) of ``size``: ``floor_div(sign(s) * closed * (P - e), WAD)``."""
    return floor_div(sign(size) * closed * (price - entry_price), WAD)


def reduced_entry(size: int, new_size: int, entry_price: int, price: int) -> int:
    """Entry after a reduction/close/flip: kept, 0 when closed, ``price`` on a flip."""
    if new_size == 0:
        return 0
    if sign(new_size) == sign(size):
        return entry_price
    return price


def trade_fee_tokens(delta: int, price: int, fee_rate: int, scale: int) -> int:
    """Trading fee in tokens: ``ceil_div(mul_div_up(mul_div_up(|delta|, P, WAD), fee_rate, WAD), scale)``."""
    notional = mul_div_up(abs(delta), price, WAD)
    return ceil_div(mul_div_up(notional, fee_rate, WAD), scale)


def is_risk_increasing(size: int, new_size: int) -> bool:
    """A trade adds risk when it grows the size or flips its sign."""
    return abs(new_size) > abs(size) or size * new_size < 0


# --------------------------------------------------------------------------
#                                 Liquidation
# --------------------------------------------------------------------------


def liquidation_notional(
    state: AccountState, params: MarketParams, liq_params: LiquidationParams, scale: int
) -> int:
    """``N``: the notional whose closing restores ``mm_required * (1 + buffer)``.

    ``target = mul_div_up(M, WAD + buffer, WAD)``;
    ``deficit = target - E + 3 * scale + 8`` (the allowance covers the token
    roundings of funding, PnL and penalty and the rounded-up remainder);
    ``denom = mul_div_down(mmr, WAD + buffer, WAD) - liq_fee``;
    ``N = mul_div_up(deficit, WAD, denom)``.
    """
    target = mul_div_up(state.mm_required, WAD + liq_params.buffer, WAD)
    deficit = target - state.equity_maint
    assert deficit > 0, "liquidation_notional: account is not below maintenance"
    # Allowance for the token roundings of funding, PnL and penalty (each < 1 unit)
    # and the rounded-up requirement of the remainder.
    deficit += 3 * scale + 8
    denom = mul_div_down(params.mmr, WAD + liq_params.buffer, WAD) - params.liq_fee
    assert denom > 0, "liquidation_notional: liq_fee >= mmr"
    return mul_div_up(deficit, WAD, denom)


def liquidation_size(
    state: AccountState,
    pos: Position,
    market: Market,
    liq_params: LiquidationParams,
    max_size: int,
    scale: int,
) -> int:
    """``q``, the size a liquidation closes (spec: Liquidation, step 3).

    ``q = min(mul_div_up(N, WAD, P), |s|)``; a remainder below ``min_notional``
    is closed too; then ``q`` is capped at ``max_size``, and a capped ``q``
    that leaves or closes less than ``min_notional`` (closed notional rounded
    down) raises ``ModelRevert("engine: dust")``.
    """
    params = market.params
    price = market.price
    size = abs(pos.size)
    n = liquidation_notional(state, params, liq_params, scale)
    q = min(mul_div_up(n, WAD, price), size)
    if size - q > 0 and mul_div_up(size - q, price, WAD) < params.min_notional:
        q = size
    if q > max_size:
        q = max_size
        if mul_div_up(size - q, price, WAD) < params.min_notional or q * price // WAD < params.min_notional:
            raise ModelRevert("engine: dust")
    return q


def penalty_tokens(q: int, price: int, liq_fee: int, scale: int) -> int:
    """Liquidation penalty in tokens: ``ceil_div(mul_div_up(mul_div_up(q, P, WAD), liq_fee, WAD), scale)``."""
    return ceil_div(mul_div_up(mul_div_up(q, price, WAD), liq_fee, WAD), scale)


def capped_penalty(penalty: int, equity_maint: int, scale: int) -> int:
    """The penalty an account actually pays: at most its equity before the
    liquidation less the < 2 token units the funding and PnL conversions may
    round away, in tokens rounded down (``max(E - 2 scale - 2, 0) // scale``),
    so a bankrupt account pays none and no reward is ever funded by bad debt."""
    return min(penalty, max(equity_maint - 2 * scale - 2, 0) // scale)


def reward_split(penalty: int, liq_params: LiquidationParams) -> tuple[int, int]:
    """Split a penalty (tokens) into ``(reward, insurance_delta)``.

    ``reward = min(min(max(mul_div_down(penalty, share, WAD), floor), cap), penalty)``:
    the floor lets the liquidator keep up to the whole penalty of a small
    account, never more than the account paid; ``insurance_delta = penalty - reward >= 0``.
    """
    reward = mul_div_down(penalty, liq_params.liquidator_share, WAD)
    reward = min(min(max(reward, liq_params.reward_floor), liq_params.reward_cap), penalty)
    return reward, penalty - reward


def liquidation_price(state: AccountState, pos: Position, market: Market) -> int:
    """Price of ``market`` at which the account reaches ``equity_maint == mm_required``.

    Other markets fixed. ``slack = E - M``; long: ``d = |s| (WAD - mmr) // WAD``,
    ``P - floor_div(slack * WAD, d)``; short: ``d = |s| (WAD + mmr) // WAD``,
    ``P + floor_div(slack * WAD, d)`` (as ``MarginLens``). 0 when there is no
    position, ``d == 0`` or the result is ``<= 0``.
    """
    if pos.size == 0:
        return 0
    surplus = state.equity_maint - state.mm_required
    mmr = market.params.mmr
    if pos.size > 0:
        denom = pos.size * (WAD - mmr) // WAD
        if denom == 0:
            return 0
        p = market.price - floor_div(surplus * WAD, denom)
    else:
        denom = -pos.size * (WAD + mmr) // WAD
        if denom == 0:
            return 0
        p = market.price + floor_div(surplus * WAD, denom)
    return max(p, 0)


# --------------------------------------------------------------------------
#                                    Vault
# --------------------------------------------------------------------------


def reserved_tokens(markets: Mapping[int, Market], scale: int, reserve_factor: int) -> int:
    """Vault reserve (tokens): ``sum ceil_div(mul_div_up(mul_div_up(|L - S|, P, WAD), rf, WAD), scale)``."""
    total = 0
    for market in markets.values():
        skew_notional = mul_div_up(abs(market.long_oi - market.short_oi), market.price, WAD)
        total += ceil_div(mul_div_up(skew_notional, reserve_factor, WAD), scale)
    return total


# --------------------------------------------------------------------------
#                                  Simulator
# --------------------------------------------------------------------------


@dataclass
class Account:
    """Ledger of one ``(owner, sub)`` account."""

    balance: int = 0  # settlement tokens, may be negative (a debt)
    positions: dict[int, Position] = field(default_factory=dict)
    isolated: bool = False  # isolated margin: at most one market


Event = tuple[str, dict[str, Any]]


class Engine:
    """Stateful simulator of the engine's ledger (tokens are plain integers).

    ``custody`` is what the contract would hold in tokens; at all times
    ``sum(balances) + insurance + vault_assets == custody``.
    A call that raises ``ModelRevert`` leaves the simulator as it was.
    """

    MAX_POSITIONS: int = MAX_POSITIONS

    def __init__(
        self,
        token_decimals: int = 6,
        liq_params: LiquidationParams | None = None,
        reserve_factor: int = 0,
        now: int = 0,
    ) -> None:
        if not 0 <= token_decimals <= 18:
            raise ValueError("token decimals above 18 are refused")
        self.token_decimals: int = token_decimals
        self.scale: int = 10 ** (18 - token_decimals)
        self.liq_params: LiquidationParams = liq_params or LiquidationParams(
            buffer=0, liquidator_share=WAD // 2, reward_floor=0, reward_cap=2**255
        )
        self.reserve_factor: int = reserve_factor
        self.now: int = now
        self.mm_ramp_duration: int = 86_400  # EngineConfigurator's default
        self.upnl_haircut: int = 0  # WAD, EngineConfigurator.set_margin_params
        self.transfer_margin_ratio: int = 0  # WAD
        self.paused: bool = False
        self.markets: dict[int, Market] = {}
        self.accounts: dict[tuple[Any, int], Account] = {}
        self.insurance: int = 0  # tokens, >= 0
        self.vault_assets: int = 0  # tokens, signed
        self.custody: int = 0  # tokens held by the engine
        self.events: list[Event] = []

    # ---------------------------------------------------------------- admin

    def add_market(self, params: MarketParams, price: int) -> int:
        """List a market at ``price``; its id is its listing order."""
        market_id = len(self.markets)
        self.markets[market_id] = Market(params=params, price=price, last_funding_time=self.now)
        return market_id

    def set_market_params(self, market_id: int, params: MarketParams) -> None:
        """Change a market's parameters, accruing funding at the old rate first.

        A maintenance rate above the one in force ramps in over
        ``mm_ramp_duration`` (a ramp to the same rate already on is kept);
        anything else applies at once (``EngineConfigurator.set_market_params``;
        its step and delay rules are governance checks, not modelled here).
        """
        market = self._market(market_id)
        accrue(market, self.now)
        current = mmr_in_force(market, self.now)
        ramp = market.mm_ramp
        if params.mmr > current:
            if not (ramp is not None and self.now < ramp[3] and ramp[1] == params.mmr):
                ramp = (current, params.mmr, self.now, self.now + self.mm_ramp_duration)
        else:
            ramp = None
        market.params = params
        market.mm_ramp = ramp

    def set_price(self, market_id: int, price: int) -> None:
        """Move the oracle price (funding is not accrued: it accrues on touch)."""
        if price <= 0:
            raise ValueError("a price must be positive (the oracle rejects it: 'oracle: price')")
        self._market(market_id).price = price

    def advance(self, seconds: int) -> None:
        """Move the clock forward."""
        assert seconds >= 0
        self.now += seconds

    def accrue_funding(self, market_id: int) -> int:
        """A keeper's poke: bring the market's funding index forward to now
        (the engine needs a valid price when the market has open interest)."""
        index = accrue(self._market(market_id), self.now)
        self._log("FundingAccrued", market=market_id, index=index)
        return index

    def pause(self) -> None:
        """Stop new risk (opens, increases, flips); everything else keeps running."""
        self.paused = True

    def unpause(self) -> None:
        """Allow new risk again."""
        self.paused = False

    # ------------------------------------------------------------ collateral

    def deposit(self, owner: Any, sub: int, amount: int) -> None:
        """Credit ``amount`` tokens (allowed while paused)."""
        _require(amount > 0, "engine: zero amount")
        self._account(owner, sub).balance += amount
        self.custody += amount

    def withdraw(self, owner: Any, sub: int, amount: int) -> None:
        """Pay out ``amount <= balance`` tokens; an account with positions must stay HEALTHY."""
        _require(amount > 0, "engine: zero amount")
        with self._atomic():
            acct = self._account(owner, sub)
            _require(amount <= acct.balance, "engine: insufficient balance")
            acct.balance -= amount
            self.custody -= amount
            self._require_transfer_margin(owner, sub)

    def transfer_collateral(self, owner: Any, from_sub: int, to_sub: int, amount: int) -> None:
        """Move tokens between an owner's sub-accounts, with the withdrawal checks on ``from_sub``."""
        _require(amount > 0, "engine: zero amount")
        with self._atomic():
            src = self._account(owner, from_sub)
            _require(amount <= src.balance, "engine: insufficient balance")
            src.balance -= amount
            self._account(owner, to_sub).balance += amount
            self._require_transfer_margin(owner, from_sub)

    def fund_insurance(self, amount: int) -> None:
        """Add tokens to the insurance fund."""
        _require(amount > 0, "engine: zero amount")
        self.insurance += amount
        self.custody += amount

    def vault_deposit(self, amount: int) -> None:
        """LP capital in."""
        _require(amount > 0, "engine: zero amount")
        self.vault_assets += amount
        self.custody += amount

    def vault_withdraw(self, amount: int) -> None:
        """LP capital out, never below the reserve of open skew."""
        _require(amount > 0, "engine: zero amount")
        _require(amount <= self.vault_free_assets(), "vault: reserved")
        self.vault_assets -= amount
        self.custody -= amount

    # --------------------------------------------------------------- trading

    def modify_position(self, owner: Any, sub: int, market_id: int, delta: int, limit_price: int) -> int:
        """Trade ``delta`` at the oracle price; return the execution price (spec: Trade)."""
        _require(delta != 0, "engine: zero size")
        market = self._market(market_id)
        price = market.price
        if delta > 0:
            _require(price <= limit_price, "engine: slippage")
        else:
            _require(price >= limit_price, "engine: slippage")
        with self._atomic():
            acct = self._account(owner, sub)
            old_size = acct.positions[market_id].size if market_id in acct.positions else 0
            if is_risk_increasing(old_size, old_size + delta):
                _require(not self.paused, "engine: paused")
            before = self.account(owner, sub)
            vault_before = self.vault_assets
            index = accrue(market, self.now)  # 1
            old = acct.positions.get(market_id, Position(0, 0, index))
            funding_paid = self._settle_funding(acct, old, index)  # 2
            size, new_size = old.size, old.size + delta  # 3
            if size == 0 or sign(size) == sign(delta):
                entry, realised = average_entry(size, old.entry_price, delta, price), 0
            else:
                realised = realised_pnl(size, old.entry_price, price, min(abs(delta), abs(size)))
                entry = reduced_entry(size, new_size, old.entry_price, price)
            pnl_tok = self._credit_pnl(acct, realised)
            fee = trade_fee_tokens(delta, price, market.params.fee_rate, self.scale)  # 4
            acct.balance -= fee
            self.vault_assets += fee
            self._cap_vault_payment(owner, sub, market_id, acct, vault_before)
            self._set_position(acct, market, market_id, size, new_size, entry, index)  # 5, 6
            if size == 0:
                _require(len(acct.positions) <= MAX_POSITIONS, "engine: too many positions")
                _require(not acct.isolated or len(acct.positions) <= 1, "engine: isolated")
            _require(
                new_size == 0 or mul_div_up(abs(new_size), price, WAD) >= market.params.min_notional, "engine: dust"
            )  # 7
            if is_risk_increasing(size, new_size):
                self._check_risk_increase(owner, sub, market, new_size)
            else:
                self._check_reduction(owner, sub, before)
            self._log(
                "PositionModified",
                owner=owner, sub=sub, market=market_id, size_delta=delta, size=new_size,
                entry_price=entry, price=price, fee=fee, realized_pnl=pnl_tok, funding_paid=funding_paid,
            )  # fmt: skip
            self._settle_bad_debt(owner, sub, acct)  # 8
        return price

    def close_position(self, owner: Any, sub: int, market_id: int, limit_price: int) -> int:
        """Close the whole position in ``market_id``; return the execution price."""
        pos = self.position(owner, sub, market_id)
        _require(pos is not None, "engine: no position")
        assert pos is not None
        return self.modify_position(owner, sub, market_id, -pos.size, limit_price)

    # ----------------------------------------------------------- liquidation

    def liquidate(self, liquidator: Any, owner: Any, sub: int, market_id: int, max_size: int) -> int:
        """Liquidate part of ``(owner, sub)``'s position in ``market_id``; return the reward (tokens)."""
        _require(max_size > 0, "engine: zero size")
        market = self._market(market_id)
        price = market.price
        with self._atomic():
            acct = self._account(owner, sub)
            pos = acct.positions.get(market_id)
            _require(pos is not None, "engine: no position")
            assert pos is not None
            state = self.account(owner, sub)  # 1
            _require(state.status in (LIQUIDATABLE, BANKRUPT), "engine: not liquidatable")
            vault_before = self.vault_assets
            index = accrue(market, self.now)  # 2
            self._settle_funding(acct, pos, index)
            q = liquidation_size(state, pos, in_force(market, self.now), self.liq_params, max_size, self.scale)  # 3
            size = pos.size  # 4
            new_size = size - sign(size) * q
            self._credit_pnl(acct, realised_pnl(size, pos.entry_price, price, q))
            self._cap_vault_payment(owner, sub, market_id, acct, vault_before)
            self._set_position(acct, market, market_id, size, new_size, pos.entry_price, index)
            penalty = capped_penalty(
                penalty_tokens(q, price, market.params.liq_fee, self.scale), state.equity_maint, self.scale
            )  # 5
            acct.balance -= penalty
            reward, insurance_delta = reward_split(penalty, self.liq_params)
            self.insurance += insurance_delta
            self._account(liquidator, 0).balance += reward
            self._log(
                "Liquidation",
                owner=owner, sub=sub, market=market_id, liquidator=liquidator, size_closed=q,
                price=price, penalty=penalty, reward=reward, insurance_share=insurance_delta,
            )  # fmt: skip
            self._settle_bad_debt(owner, sub, acct)  # 6
        return reward

    # ----------------------------------------------------------------- views

    def account(self, owner: Any, sub: int) -> AccountState:
        """Margin state of ``(owner, sub)`` now (the ``account`` view)."""
        acct = self.accounts.get((owner, sub), Account())
        return account_state(acct.balance, acct.positions, self.markets, self.scale, self.now, self.upnl_haircut)

    def status(self, owner: Any, sub: int) -> int:
        """The ``status`` view."""
        return self.account(owner, sub).status

    def position(self, owner: Any, sub: int, market_id: int) -> Position | None:
        """A copy of the stored position, or None."""
        acct = self.accounts.get((owner, sub))
        pos = None if acct is None else acct.positions.get(market_id)
        return None if pos is None else copy.copy(pos)

    def balance_of(self, owner: Any, sub: int) -> int:
        """Settlement balance in tokens (signed)."""
        acct = self.accounts.get((owner, sub))
        return 0 if acct is None else acct.balance

    def liquidation_price(self, owner: Any, sub: int, market_id: int) -> int:
        """The ``liquidation_price`` view (0 when none)."""
        pos = self.position(owner, sub, market_id)
        if pos is None:
            return 0
        return liquidation_price(self.account(owner, sub), pos, in_force(self._market(market_id), self.now))

    def reserved(self) -> int:
        """Tokens of vault capital reserved by open skew."""
        return reserved_tokens(self.markets, self.scale, self.reserve_factor)

    def vault_free_assets(self) -> int:
        """``vault_assets - reserved`` (signed; the contract's view clamps at 0)."""
        return self.vault_assets - self.reserved()

    # -------------------------------------------------------------- internal

    def _market(self, market_id: int) -> Market:
        _require(market_id in self.markets, "engine: unknown market")
        return self.markets[market_id]

    def _account(self, owner: Any, sub: int) -> Account:
        return self.accounts.setdefault((owner, sub), Account())

    def _settle_funding(self, acct: Account, pos: Position, index: int) -> int:
        """Step 2: move the position's funding (tokens, rounded up) from the balance to the vault."""
        paid = funding_tokens(pos, index, self.scale)
        acct.balance -= paid
        self.vault_assets += paid
        pos.funding_index = index
        return paid

    def _credit_pnl(self, acct: Account, realised: int) -> int:
        """Step 3: realised PnL (WAD) floored to tokens, from the vault to the balance."""
        pnl_tok = floor_div(realised, self.scale)
        acct.balance += pnl_tok
        self.vault_assets -= pnl_tok
        return pnl_tok

    def _set_position(
        self, acct: Account, market: Market, market_id: int, size: int, new_size: int, entry: int, index: int
    ) -> None:
        """Steps 5 and 6: store ``(s', e', I)`` (delete when flat) and move open interest."""
        if new_size == 0:
            acct.positions.pop(market_id, None)
        else:
            acct.positions[market_id] = Position(new_size, entry, index)
        if size > 0:
            market.long_oi -= size
        elif size < 0:
            market.short_oi -= -size
        if new_size > 0:
            market.long_oi += new_size
        elif new_size < 0:
            market.short_oi += -new_size
        assert market.long_oi >= 0 and market.short_oi >= 0

    def _check_risk_increase(self, owner: Any, sub: int, market: Market, new_size: int) -> None:
        """Step 7, risk-increasing branch (pause, position cap and isolation
        were checked already, in the contract's order)."""
        side_oi = market.long_oi if new_size > 0 else market.short_oi
        _require(side_oi <= market.params.max_oi, "engine: oi cap")
        _require(self.account(owner, sub).status == HEALTHY, "engine: unhealthy")

    def _cap_vault_payment(self, owner: Any, sub: int, market_id: int, acct: Account, vault_before: int) -> None:
        """The vault pays at most what it holds: the part of a payment to the
        account (net PnL, funding and fee of this action) that would take the
        vault below zero is withheld from the account and logged."""
        delta = self.vault_assets - vault_before
        if self.vault_assets < 0 and delta < 0:
            shortfall = min(-self.vault_assets, -delta)
            self.vault_assets += shortfall
            acct.balance -= shortfall
            self._log("VaultShortfall", owner=owner, sub=sub, market=market_id, amount=shortfall)

    def _check_reduction(self, owner: Any, sub: int, before: AccountState) -> None:
        """Step 7, pure reduction: flat, or HEALTHY, or ``E/M`` does not fall.

        ``before`` is the account valued just before the trade (same price and
        index), which equals the after-state with this market's part and the
        balance change swapped back.
        """
        after = self.account(owner, sub)
        if after.positions == 0 or after.status == HEALTHY:
            return
        ok = after.equity_maint * before.mm_required >= before.equity_maint * after.mm_required
        _require(ok, "engine: unhealthy")

    def _settle_bad_debt(self, owner: Any, sub: int, acct: Account) -> None:
        """A flat account with a negative balance: insurance pays first, then the vault."""
        if acct.positions or acct.balance >= 0:
            return
        debt = -acct.balance
        from_insurance = min(self.insurance, debt)
        self.insurance -= from_insurance
        self.vault_assets -= debt - from_insurance
        acct.balance = 0
        self._log(
            "BadDebt", owner=owner, sub=sub, amount=debt,
            insurance_paid=from_insurance, vault_loss=debt - from_insurance,
        )  # fmt: skip

    def _require_transfer_margin(self, owner: Any, sub: int) -> None:
        """A withdrawal or transfer out: with positions the account must stay
        HEALTHY and keep ``equity_init >= mul_div_up(notional, ratio, WAD)``."""
        state = self.account(owner, sub)
        if state.positions == 0:
            return
        acct = self._account(owner, sub)
        notional = sum(
            mul_div_up(abs(pos.size), self.markets[m].price, WAD) for m, pos in acct.positions.items()
        )
        _require(
            state.status == HEALTHY and state.equity_init >= mul_div_up(notional, self.transfer_margin_ratio, WAD),
            "engine: unhealthy",
        )

    def _log(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Roll every change back when the body raises, like a reverted transaction.

        Markets are restored in place (references to them stay valid); the
        accounts mapping is restored to copies of the saved accounts.
        """
        markets = copy.deepcopy(self.markets)
        accounts = copy.deepcopy(self.accounts)
        scalars = (self.insurance, self.vault_assets, self.custody, len(self.events))
        try:
            yield
        except BaseException:
            for market_id, saved in markets.items():
                vars(self.markets[market_id]).update(vars(saved))
            self.accounts.clear()
            self.accounts.update(accounts)
            self.insurance, self.vault_assets, self.custody, n_events = scalars
            del self.events[n_events:]
            raise


def _require(condition: bool, reason: str) -> None:
    """``assert condition, reason`` of the contract."""
    if not condition:
        raise ModelRevert(reason)
