"""Decision logic of the liquidator and keeper bot (plain functions, no I/O).

The bot's app layers (a Silverback app, an ``ape run liquidator`` loop) read
the chain through ``MarginLens`` and hand the raw results to this module; it
converts them, values every account with the reference model
(``margin_engine.model``, which agrees with the engine to the wei), quotes the
liquidations the engine would execute, ranks them by expected profit and
tells the app what to send. Nothing here imports Ape, talks to a node, sleeps
or logs: every decision is a function of its arguments, so it is tested
without a chain.

Flow of one round (all reads in one block, at timestamp ``now``)::

    book.add_event(log)                          # each PositionModified log
    book.apply_scan(pages, block)                # now and then: pages of
                                                 # lens.active_accounts over page_ranges(total)
    markets  = markets_from_lens(lens.markets())
    markets  = mark_risk(markets, flagged, volatility)   # engine.market_words(m), risk.volatility(m)
    accounts = accounts_from_lens(lens.accounts(book.keys))
    found    = [assess(a, markets, scale, now) for a in accounts]
    quotes   = {k: quote_from_lens(*k, size, lens.quote_liquidation(*k))
                for k in lens_quote_keys(found, markets)}
    r        = evaluate(found, markets, liq_params, scale, gas_price, gas, native_usd,
                        lens_quotes=quotes, call_params=call_params)  # margin_words_from_tuple(engine.margin_words())
    for p in r.plans: engine.liquidate(p.owner, p.sub, p.market, p.max_size)
    for c in r.calls: engine.margin_call(c.owner, c.sub, c.market, c.max_size)
    for k in collateral_candidates(found):       # after the liquidations, on the latest state
        asset = pick_collateral(lens.collateral_of(*k))
        engine.liquidate_collateral(*k, asset, collateral_repay(debt, own_funds))
    for m in volatility_due(markets, now): risk.update_volatility(m)
    for m in funding_due(markets, now, max_age): engine.accrue_funding(m)

``evaluate`` gives the reason each other account was skipped; ``plan`` is
its liquidations alone. ``FailureTracker`` tells the loop when to stop
sending transactions.

Markets that use the risk model (``RISK_BIT``, docs/risk-model.md 10): the
lens's ``markets()`` gives their base rates in force, but not their size
tiers, so the model cannot value a position there. The app marks such
markets ``flagged`` (``mark_risk``); an account holding one is
assessed with the engine's own ``account()`` state from the lens snapshot
(the model still checks its equity), and its liquidations in flagged markets
are the lens's ``quote_liquidation`` read at the same block
(``quote_from_lens``, passed to ``evaluate`` as ``lens_quotes``). Positions
in unflagged markets are quoted by the model as before (exact: a quote
needs only the account's state and that market's static rates).

Accounts holding collateral assets (the lens snapshot's ``collateral``
flag, bit 512 of the engine's account word) are assessed with the engine's
``account()`` state too: the model does not value collateral.

Units follow the model: WAD (``10**18``) fixed point for prices and USD,
settlement-token units for balances, penalties and rewards,
``scale = 10**(18 - token decimals)`` (the engine's ``SCALE()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from margin_engine import model
from margin_engine.model import BANKRUPT, LIQUIDATABLE, MARGIN_CALL, STATUS_NAMES, WAD

PAGE_SIZE: int = 200
"""Most accounts one lens call returns (``DynArray[AccountSnapshot, 200]``)."""

Key = tuple[str, int]
"""An account: ``(owner, sub)``."""

QuoteKey = tuple[str, int, int]
"""A position: ``(owner, sub, market)``."""

RISK_BIT: int = model.RISK_BIT
"""Bit 63 of the engine's rates word (``market_words(m)[2]``): the market uses the risk model."""

_LIQUIDATABLE = (LIQUIDATABLE, BANKRUPT)


# --------------------------------------------------------------------------
#                               Data types
# --------------------------------------------------------------------------


@dataclass
class MarketView(model.Market):
    """A ``model.Market`` built from a lens ``MarketSnapshot``.

    ``price_ok`` is False when the lens reported the oracle price invalid
    (the price is then 0): the market is kept, so the accounts that need it
    are recognised as unknown rather than forgotten.
    """

    market_id: int = 0
    price_ok: bool = True
    flagged: bool = False
    """``RISK_BIT`` is set: requirements come from the RiskModel (tiers,
    volatility, MM ramps). ``params`` hold the base rates in force (the
    lens's): requirements from them are exact only without tiers, and the
    engine sizes a flagged market's liquidation with the position's average
    MM rate (``mm(n) * WAD // n``, a few wei above the base rate even
    without tiers), so the bot trusts the engine's state and the lens's
    quotes for positions here. Not the model's own ``risk`` flag, which
    would need the tier schedule and the volatility word the lens snapshot
    does not carry."""
    volatility: bool = False
    """The market has a volatility margin (``risk.volatility(m)`` variance non-zero)."""
    next_sample_time: int | None = None
    """``risk.volatility(m)[3]``: the first timestamp at which a sample counts
    again (the start of the epoch after the last sample); None when not read."""


def sample_due(market: model.Market | None, now: int) -> bool:
    """A volatility sample is due in ``market`` at ``now``: a transaction that
    touches it samples before it values anything (IM moves at once, a lower MM
    too), so a quote read before may be off."""
    if market is None or not getattr(market, "volatility", False):
        return False
    next_time = getattr(market, "next_sample_time", None)
    return next_time is not None and next_time <= now


def is_flagged(market: model.Market | None) -> bool:
    """The market uses the risk model (a ``MarketView`` marked ``flagged``)."""
    return bool(getattr(market, "flagged", False))


@dataclass
class AccountView:
    """One lens ``AccountSnapshot``: the ledger and the engine's own valuation.

    ``engine_state`` is the engine's ``account()`` answer (None when the view
    failed, ``ok`` False); ``engine_prices_ok`` its price flag.
    ``collateral`` is the snapshot's ``collateral`` flag: the account word's
    ``COLLATERAL_BIT`` (512), set while the sub-account holds a listed
    collateral asset (docs/collateral.md), whose value only the engine knows.
    """

    owner: str
    sub: int
    balance: int  # settlement-token units, signed
    positions: dict[int, model.Position]
    isolated: bool = False
    ok: bool = True
    engine_state: model.AccountState | None = None
    engine_prices_ok: bool = True
    collateral: bool = False

    @property
    def key(self) -> Key:
        return (self.owner, self.sub)


@dataclass(frozen=True)
class Assessment:
    """The model's verdict on one account at block time ``now``.

    ``status`` is None when a price the account needs is invalid (or its
    market is unknown): such an account is never acted on. ``mismatch`` is
    True when both the model and the engine answered and their statuses
    differ in the same block: the quotes cannot be trusted then.

    ``source`` says where ``state`` comes from: ``"model"`` (the reference
    model, checked against the engine's status) or ``"engine"`` (the
    engine's ``account()`` from the lens snapshot, for an account with a
    position in a flagged market or holding collateral assets; ``mismatch``
    then means the model's equity differs from the engine's, never checked
    for a collateral account).
    """

    account: AccountView
    now: int
    state: model.AccountState | None
    status: int | None
    engine_status: int | None
    mismatch: bool
    unknown_reason: str | None = None
    source: str = "model"
    flagged: tuple[int, ...] = ()
    """Markets of the account's positions that are flagged (sorted)."""

    @property
    def key(self) -> Key:
        return self.account.key

    @property
    def liquidatable(self) -> bool:
        """The status is LIQUIDATABLE or BANKRUPT."""
        return self.status in _LIQUIDATABLE

    def log_fields(self) -> dict[str, Any]:
        """Flat fields for a structured log line."""
        model_state = self.state
        engine_state = self.account.engine_state
        return {
            "owner": self.account.owner,
            "sub": self.account.sub,
            "now": self.now,
            "status": None if self.status is None else STATUS_NAMES[self.status],
            "engine_status": None if self.engine_status is None else STATUS_NAMES.get(self.engine_status),
            "mismatch": self.mismatch,
            "source": self.source,
            "equity": None if model_state is None else model_state.equity_maint,
            "mm_required": None if model_state is None else model_state.mm_required,
            "engine_equity": None if engine_state is None else engine_state.equity_maint,
            "engine_mm_required": None if engine_state is None else engine_state.mm_required,
            "unknown_reason": self.unknown_reason,
        }


@dataclass(frozen=True)
class Quote:
    """What ``liquidate(owner, sub, market, |size|)`` would do in this block.

    ``size`` is the engine's ``q`` (base units closed), ``penalty``,
    ``reward`` and ``insurance_share`` are settlement-token units, exactly
    the fields of the ``Liquidation`` event. The reward is credited to the
    liquidator's sub-account 0 in the engine (no token transfer).
    """

    owner: str
    sub: int
    market: int
    position_size: int  # signed size before the liquidation
    size: int
    price: int
    penalty: int
    reward: int
    insurance_share: int

    @property
    def closes_position(self) -> bool:
        return self.size == abs(self.position_size)


@dataclass(frozen=True)
class LiquidationPlan:
    """One liquidation to send: ``engine.liquidate(owner, sub, market, max_size)``.

    ``max_size`` is the whole position: the engine decides the size itself,
    so a state that moved by the time the transaction lands never makes a
    capped size revert on the dust rule. USD amounts are WAD.
    """

    owner: str
    sub: int
    market: int
    max_size: int
    quote: Quote
    status: int
    reward_usd: int
    gas_cost_usd: int
    profit_usd: int
    samples: bool = False
    """The market's volatility sample is due: the liquidation samples first,
    and a lower MM applying at once makes it close less than quoted."""


@dataclass(frozen=True)
class CallParams:
    """The margin-call band (WAD; ``configurator.call_params()``, or decoded
    from ``engine.margin_words()``): accounts with ``equity < mm * (1 +
    buffer)`` that are not liquidatable may be reduced by ``fraction`` of a
    position per call for ``liq_fee * fee_share`` of the closed notional.
    ``buffer == 0``: the band is off."""

    buffer: int
    fee_share: int
    fraction: int

    @property
    def on(self) -> bool:
        return self.buffer > 0


@dataclass(frozen=True)
class CallQuote:
    """What ``margin_call(owner, sub, market, |size|)`` would do in this block:
    ``size`` closed at ``price`` for ``fee`` settlement-token units, credited
    in full to the caller's sub-account 0 (the ``MarginCall`` event's fields)."""

    owner: str
    sub: int
    market: int
    position_size: int  # signed size before the call
    size: int
    price: int
    fee: int


@dataclass(frozen=True)
class MarginCallPlan:
    """One margin call to send: ``engine.margin_call(owner, sub, market, max_size)``.

    ``max_size`` is the whole position (the engine closes at most
    ``call_fraction`` of it, or all of it when the rest would be dust).
    ``samples``: the market's volatility sample is due, so the call samples
    first and the band may have moved (the dry run catches a revert).
    """

    owner: str
    sub: int
    market: int
    max_size: int
    quote: CallQuote
    fee_usd: int
    gas_cost_usd: int
    profit_usd: int
    samples: bool = False


class SkipReason(str, Enum):
    """Why ``plan`` leaves an account out (for logs and tests)."""

    ENGINE_VIEW_FAILED = "engine view failed"  # lens ok == False
    PRICE_INVALID = "price invalid"  # a needed price is invalid: status unknown
    MISMATCH = "model and engine disagree"
    NOT_LIQUIDATABLE = "not liquidatable"  # HEALTHY, or MARGIN_CALL outside the band (or calls off)
    NO_POSITIONS = "no positions"
    QUOTE_FAILED = "quote failed"  # the model refused (e.g. liq_fee >= mmr x (1 + buffer)), or no lens quote
    ZERO_QUOTE = "zero quote"  # nothing would be closed
    UNPROFITABLE = "unprofitable"  # reward (or margin-call fee) below gas cost or the minimum profit
    ROUND_LIMIT = "round limit"  # profitable, but beyond max_per_round
    CALL_DUST = "margin call dust"  # in the band, but every position's call would revert on the dust rule


@dataclass(frozen=True)
class Skipped:
    """An account ``plan`` did not act on, with the reason and a detail."""

    owner: str
    sub: int
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True)
class Round:
    """Decisions of one round: the liquidations and the margin calls, each best
    first, and every skipped account."""

    plans: list[LiquidationPlan]
    skipped: list[Skipped]
    calls: list[MarginCallPlan] = field(default_factory=list)

    def skip_reason(self, owner: str, sub: int) -> SkipReason | None:
        """The reason ``(owner, sub)`` was skipped, or None."""
        for s in self.skipped:
            if (s.owner, s.sub) == (owner, sub):
                return s.reason
        return None


# --------------------------------------------------------------------------
#                          Converters (lens -> model)
# --------------------------------------------------------------------------

_MISSING = object()


def _get(obj: Any, name: str, pos: int) -> Any:
    """Field ``name`` (position ``pos``) of an Ape struct, a mapping or a tuple."""
    if isinstance(obj, Mapping):
        return obj[name]
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING and not callable(value):
        return value
    return obj[pos]


def _get_or(obj: Any, name: str, pos: int, default: Any) -> Any:
    """``_get``, or ``default`` when the struct has no such field (an older lens)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING and not callable(value):
        return value
    try:
        return obj[pos]
    except (IndexError, KeyError, TypeError):
        return default


def _owner(value: Any) -> str:
    """An owner address as a checksummed string (any other value as ``str``)."""
    text = str(value)
    if len(text) == 42 and text[:2].lower() == "0x":
        from eth_utils import to_checksum_address  # pure helper, no Ape

        try:
            return to_checksum_address(text)
        except ValueError:
            return text
    return text


def params_from_lens(obj: Any) -> model.MarketParams:
    """A lens/engine ``MarketParams`` struct as ``model.MarketParams``."""
    names = ("imr", "mmr", "fee_rate", "liq_fee", "max_oi", "min_notional", "funding_rate_max")
    return model.MarketParams(**{n: int(_get(obj, n, i)) for i, n in enumerate(names)})


def liq_params_from_tuple(obj: Any) -> model.LiquidationParams:
    """``engine.liquidation_params()`` -> ``(buffer, liquidator_share, reward_floor, reward_cap)``."""
    names = ("buffer", "liquidator_share", "reward_floor", "reward_cap")
    return model.LiquidationParams(**{n: int(_get(obj, n, i)) for i, n in enumerate(names)})


def market_from_lens(snapshot: Any) -> MarketView:
    """One ``MarketSnapshot`` (stored funding index and time) as a ``MarketView``."""
    price = int(_get(snapshot, "price", 1))
    return MarketView(
        params=params_from_lens(_get(snapshot, "params", 3)),
        price=price,
        long_oi=int(_get(snapshot, "long_oi", 4)),
        short_oi=int(_get(snapshot, "short_oi", 5)),
        funding_index=int(_get(snapshot, "funding_index", 6)),
        last_funding_time=int(_get(snapshot, "last_funding_time", 7)),
        market_id=int(_get(snapshot, "market", 0)),
        price_ok=bool(_get(snapshot, "price_ok", 2)) and price > 0,
    )


def markets_from_lens(snapshots: Iterable[Any]) -> dict[int, model.Market]:
    """``lens.markets()`` -> ``{market id: MarketView}``; invalid prices are kept, flagged."""
    markets: dict[int, model.Market] = {}
    for snapshot in snapshots:
        market = market_from_lens(snapshot)
        markets[market.market_id] = market
    return markets


def market_words_flagged(words: Any) -> bool:
    """``engine.market_words(m)`` (six words) -> whether ``RISK_BIT`` is set in the rates word."""
    return int(words[2]) & RISK_BIT != 0


def volatility_from_tuple(obj: Any) -> tuple[bool, int]:
    """``risk.volatility(m)`` -> ``(volatility on, next sample time)``: the
    variance (field 0) is non-zero exactly while the market has a volatility
    margin; field 3 is the next sample time."""
    return int(obj[0]) != 0, int(obj[3])


def call_params_from_tuple(obj: Any) -> CallParams:
    """``configurator.call_params()`` -> ``(call_buffer, fee_share, fraction)``."""
    return CallParams(buffer=int(obj[0]), fee_share=int(obj[1]), fraction=int(obj[2]))


def margin_words_from_tuple(obj: Any) -> tuple[int, CallParams]:
    """``engine.margin_words()`` -> ``(upnl haircut, call params)``: the words
    ``haircut | transfer ratio << 128`` and ``call buffer | fee share << 64 |
    fraction << 128`` (WAD fields), decoded like the configurator's
    ``margin_params()`` and ``call_params()``."""
    margin, call = int(obj[0]), int(obj[1])
    mask64 = 2**64 - 1
    return margin & (2**128 - 1), CallParams(call & mask64, (call >> 64) & mask64, call >> 128)


def mark_risk(
    markets: Mapping[int, model.Market],
    flagged: Iterable[int],
    volatility: Mapping[int, tuple[bool, int]] | None = None,
) -> dict[int, model.Market]:
    """``markets`` with the markets in ``flagged`` marked (``MarketView.flagged``)
    and, from ``volatility`` (``{market: volatility_from_tuple(...)}``), their
    volatility flag and next sample time. Other markets are unchanged; plain
    ``model.Market`` s are converted to ``MarketView`` when marked."""
    marked = set(flagged)
    vol = dict(volatility or {})
    out: dict[int, model.Market] = {}
    for market_id, market in markets.items():
        if market_id not in marked and market_id not in vol:
            out[market_id] = market
            continue
        if not isinstance(market, MarketView):
            market = MarketView(**{f: getattr(market, f) for f in model.Market.__dataclass_fields__}, market_id=market_id)
        changes: dict[str, Any] = {"flagged": market_id in marked or is_flagged(market)}
        if market_id in vol:
            changes["volatility"], changes["next_sample_time"] = vol[market_id]
        out[market_id] = replace(market, **changes)
    return out


def quote_from_lens(owner: str, sub: int, market_id: int, position_size: int, obj: Any) -> Quote:
    """A lens ``LiquidationQuote`` (``quote_liquidation(owner, sub, market)``)
    as a ``Quote``; size 0 when the lens says the account is not liquidatable."""
    liquidatable = bool(_get(obj, "liquidatable", 0))
    size = int(_get(obj, "size", 1)) if liquidatable else 0
    return Quote(
        owner=_owner(owner),
        sub=int(sub),
        market=int(market_id),
        position_size=int(position_size),
        size=size,
        price=int(_get(obj, "price", 2)),
        penalty=int(_get(obj, "penalty", 3)) if liquidatable else 0,
        reward=int(_get(obj, "reward", 4)) if liquidatable else 0,
        insurance_share=int(_get(obj, "insurance_share", 5)) if liquidatable else 0,
    )


def engine_state_from_lens(obj: Any) -> tuple[model.AccountState, bool]:
    """A lens ``AccountState`` -> ``(model.AccountState, prices_ok)``."""
    state = model.AccountState(
        equity_init=int(_get(obj, "equity_init", 0)),
        equity_maint=int(_get(obj, "equity_maint", 1)),
        im_required=int(_get(obj, "im_required", 2)),
        mm_required=int(_get(obj, "mm_required", 3)),
        status=int(_get(obj, "status", 4)),
        positions=int(_get(obj, "positions", 6)),
    )
    return state, bool(_get(obj, "prices_ok", 5))


def account_from_lens(snapshot: Any) -> AccountView:
    """One ``AccountSnapshot`` as an ``AccountView``."""
    ok = bool(_get(snapshot, "ok", 4))
    engine_state, prices_ok = engine_state_from_lens(_get(snapshot, "state", 5))
    positions: dict[int, model.Position] = {}
    for p in _get(snapshot, "positions", 6):
        size = int(_get(p, "size", 1))
        if size != 0:
            positions[int(_get(p, "market", 0))] = model.Position(
                size=size, entry_price=int(_get(p, "entry_price", 2)), funding_index=int(_get(p, "funding_index", 3))
            )
    return AccountView(
        owner=_owner(_get(snapshot, "owner", 0)),
        sub=int(_get(snapshot, "sub", 1)),
        balance=int(_get(snapshot, "balance", 2)),
        positions=positions,
        isolated=bool(_get(snapshot, "isolated", 3)),
        ok=ok,
        engine_state=engine_state if ok else None,
        engine_prices_ok=prices_ok,
        collateral=bool(_get_or(snapshot, "collateral", 7, False)),
    )


def accounts_from_lens(snapshots: Iterable[Any]) -> list[AccountView]:
    """``lens.accounts(keys)`` (or the list of ``active_accounts``) as ``AccountView`` s."""
    return [account_from_lens(s) for s in snapshots]


# --------------------------------------------------------------------------
#                            Health and quotes
# --------------------------------------------------------------------------


def price_ok(market: model.Market) -> bool:
    """The market's price is usable (a plain ``model.Market`` always is, if > 0)."""
    return bool(getattr(market, "price_ok", True)) and market.price > 0


def assess(
    account: AccountView, markets: Mapping[int, model.Market], scale: int, now: int, upnl_haircut: int = 0
) -> Assessment:
    """Value ``account`` at block time ``now``.

    ``upnl_haircut`` is the configurator's ``margin_params()[0]`` (the low
    half of ``engine.margin_words()[0]``): the share of positive unrealised
    PnL left out of ``equity_init`` (it moves HEALTHY / MARGIN_CALL only,
    never liquidatability).

    Each market's funding index is brought forward to ``now`` (as the
    engine's views do), so ``markets`` are the lens's stored values. The
    status is unknown (None) when a market the account needs is missing or
    its price invalid, or when the engine itself flags an invalid price.

    Without flagged markets the state is the reference model's and the
    engine's reported status is kept for the consistency check. With a
    position in a flagged market (tiers make its requirement non-linear and
    the lens snapshot does not carry them) the state is the engine's
    ``account()`` answer of the same block (``source == "engine"``); the
    model still values the equity, which must agree to the wei
    (``mismatch`` otherwise). A failed engine view leaves such an account
    unknown.

    An account holding collateral assets (``account.collateral``, the
    account word's bit 512) also takes the engine's ``account()`` state
    (``source == "engine"``): the model's ``account_state`` knows only the
    settlement balance and the positions, not the weighted collateral value,
    so its equity is not computed and there is no equity mismatch check for
    such an account (its settlement balance may be a debt the collateral
    backs).
    """
    engine_status = None
    if account.ok and account.engine_state is not None and account.engine_prices_ok:
        engine_status = account.engine_state.status

    for market_id in sorted(account.positions):
        market = markets.get(market_id)
        if market is None or not price_ok(market):
            reason = f"market {market_id}: " + ("unknown" if market is None else "price invalid")
            return Assessment(account, now, None, None, engine_status, False, reason)
    if account.ok and not account.engine_prices_ok:
        return Assessment(account, now, None, None, None, False, "engine reports an invalid price")

    flagged = tuple(m for m in sorted(account.positions) if is_flagged(markets[m]))
    if account.collateral:
        engine_state = account.engine_state
        if not account.ok or engine_state is None:
            reason = "engine view failed; the collateral value needs it"
            return Assessment(account, now, None, None, None, False, reason, "engine", flagged)
        return Assessment(account, now, engine_state, engine_state.status, engine_status, False, None, "engine", flagged)
    state = model.account_state(account.balance, account.positions, markets, scale, now, upnl_haircut)
    if not flagged:
        mismatch = engine_status is not None and engine_status != state.status
        return Assessment(account, now, state, state.status, engine_status, mismatch)

    engine_state = account.engine_state
    if not account.ok or engine_state is None:
        reason = f"engine view failed; flagged markets {list(flagged)} need it"
        return Assessment(account, now, None, None, None, False, reason, "engine", flagged)
    # Equity does not depend on the requirements: the model's must be the engine's.
    mismatch = state.equity_maint != engine_state.equity_maint
    return Assessment(account, now, engine_state, engine_state.status, engine_status, mismatch, None, "engine", flagged)


def quote_position(
    owner: str,
    sub: int,
    market_id: int,
    state: model.AccountState,
    position: model.Position,
    market: model.Market,
    liq_params: model.LiquidationParams,
    scale: int,
    max_size: int | None = None,
) -> Quote:
    """The engine's liquidation of one position, from the state before it.

    Mirrors ``Engine.liquidate``: ``q`` and the penalty cap use the account
    state valued before the liquidation (funding settlement does not move
    them), the penalty is ``capped_penalty(penalty_tokens(q, ...))`` and the
    reward ``reward_split``. ``max_size`` defaults to the whole position.
    May raise ``ModelRevert("engine: dust")`` for a ``max_size`` below it.

    Exact for a market that is not flagged (``state`` may be the engine's:
    the size needs only the account's state and this market's static
    ``mmr``); a flagged market sizes with its average MM rate, which needs
    the tiers: use ``lens.quote_liquidation`` (``quote_from_lens``).
    """
    if max_size is None:
        max_size = abs(position.size)
    q = model.liquidation_size(state, position, market, liq_params, max_size, scale)
    raw = model.penalty_tokens(q, market.price, market.params.liq_fee, scale)
    penalty = model.capped_penalty(raw, state.equity_maint, scale)
    reward, insurance_share = model.reward_split(penalty, liq_params)
    return Quote(
        owner=owner,
        sub=sub,
        market=market_id,
        position_size=position.size,
        size=q,
        price=market.price,
        penalty=penalty,
        reward=reward,
        insurance_share=insurance_share,
    )


class MissingQuote(LookupError):
    """A position in a flagged market has no lens quote."""


def quote(
    assessment: Assessment,
    markets: Mapping[int, model.Market],
    liq_params: model.LiquidationParams,
    scale: int,
    lens_quotes: Mapping[QuoteKey, Quote] | None = None,
) -> list[Quote]:
    """One ``Quote`` per open position, by market id; [] unless the status is
    LIQUIDATABLE or BANKRUPT.

    Positions in flagged markets take their quote from ``lens_quotes``
    (``{(owner, sub, market): quote_from_lens(...)}``, read at the
    assessment's block); ``MissingQuote`` when one is absent. The others are
    the model's (``quote_position``). Raises ``AssertionError`` when the
    model cannot size a liquidation (``liq_fee >= mmr x (1 + buffer)``).
    """
    state = assessment.state
    if state is None or not assessment.liquidatable:
        return []
    account = assessment.account
    found = lens_quotes or {}
    quotes = []
    for m, pos in sorted(account.positions.items()):
        if is_flagged(markets[m]):
            key = (account.owner, account.sub, m)
            if key not in found:
                raise MissingQuote(f"no lens quote for market {m}")
            quotes.append(found[key])
        else:
            quotes.append(quote_position(account.owner, account.sub, m, state, pos, markets[m], liq_params, scale))
    return quotes


def lens_quote_keys(assessments: Iterable[Assessment], markets: Mapping[int, model.Market]) -> list[QuoteKey]:
    """The ``(owner, sub, market)`` to read with ``lens.quote_liquidation``: each
    position in a flagged market of an account assessed LIQUIDATABLE or
    BANKRUPT (not mismatched). One ``eth_call`` each, at the scan block."""
    keys = []
    for a in assessments:
        if a.liquidatable and not a.mismatch and a.account.ok:
            keys += [(a.account.owner, a.account.sub, m) for m in sorted(a.account.positions) if is_flagged(markets[m])]
    return keys


def quote_margin_call(
    owner: str,
    sub: int,
    market_id: int,
    state: model.AccountState,
    position: model.Position,
    market: model.Market,
    call_params: CallParams,
    scale: int,
    max_size: int | None = None,
) -> CallQuote:
    """The engine's ``margin_call`` of one position (docs/risk-model.md 11),
    from the state before it: ``q = margin_call_size(...)`` at the oracle price,
    the fee ``call_fee_tokens`` capped like a penalty by the equity before the
    call. Exact in every market (neither depends on the requirements; the
    band does, through ``state``). Raises ``ModelRevert("engine: dust")``."""
    if max_size is None:
        max_size = abs(position.size)
    params = market.params
    q = model.margin_call_size(position.size, market.price, params.min_notional, call_params.fraction, max_size)
    raw = model.call_fee_tokens(q, market.price, params.liq_fee, call_params.fee_share, scale)
    fee = model.capped_penalty(raw, state.equity_maint, scale)
    return CallQuote(
        owner=owner, sub=sub, market=market_id, position_size=position.size, size=q, price=market.price, fee=fee
    )


def in_band(assessment: Assessment, call_params: CallParams | None) -> bool:
    """The account is in the margin-call band (its status MARGIN_CALL and its
    equity below ``mm * (1 + buffer)``); never with the band off."""
    state = assessment.state
    if call_params is None or not call_params.on or state is None or assessment.status != MARGIN_CALL:
        return False
    return model.in_call_band(state, call_params.buffer)


def call_quotes(
    assessment: Assessment, markets: Mapping[int, model.Market], call_params: CallParams | None, scale: int
) -> list[CallQuote]:
    """One ``CallQuote`` per position that a margin call may reduce (dust
    positions left out), by market id; [] outside the band."""
    if not in_band(assessment, call_params):
        return []
    assert assessment.state is not None and call_params is not None
    account = assessment.account
    quotes = []
    for m, pos in sorted(account.positions.items()):
        try:
            quotes.append(
                quote_margin_call(account.owner, account.sub, m, assessment.state, pos, markets[m], call_params, scale)
            )
        except model.ModelRevert:
            continue
    return quotes


# --------------------------------------------------------------------------
#                           Ranking and profitability
# --------------------------------------------------------------------------


def tokens_to_usd(tokens: int, scale: int, token_usd_wad: int = WAD) -> int:
    """Settlement tokens -> WAD USD, rounded down."""
    return tokens * scale * token_usd_wad // WAD


def gas_cost_usd(gas: int, gas_price_wei: int, native_usd_wad: int) -> int:
    """``gas x gas price`` (wei of an 18-decimal native coin) -> WAD USD, rounded up."""
    return model.mul_div_up(gas * gas_price_wei, native_usd_wad, WAD)


def _best_quote(quotes: Sequence[Quote]) -> Quote:
    """Highest reward; ties: larger size, then lower market id."""
    return max(quotes, key=lambda q: (q.reward, q.size, -q.market))


def _best_call(quotes: Sequence[CallQuote]) -> CallQuote:
    """Highest fee; ties: larger size, then lower market id (as ``_best_quote``)."""
    return max(quotes, key=lambda q: (q.fee, q.size, -q.market))


def evaluate(
    assessments: Iterable[Assessment],
    markets: Mapping[int, model.Market],
    liq_params: model.LiquidationParams,
    scale: int,
    gas_price_wei: int,
    gas_per_liquidation: int,
    native_usd_wad: int,
    token_usd_wad: int = WAD,
    min_profit_usd_wad: int = 0,
    max_per_round: int | None = None,
    close_bankrupt: bool = False,
    lens_quotes: Mapping[QuoteKey, Quote] | None = None,
    call_params: CallParams | None = None,
    gas_per_margin_call: int | None = None,
    now: int | None = None,
) -> Round:
    """Decide a round: the liquidations and margin calls to send and why the
    other accounts are skipped.

    At most one liquidation per account (its liquidation changes the state
    every other quote of the account depends on): the market with the
    highest reward. Expected profit = reward in USD - gas cost in USD; a plan
    is kept when the profit is positive and at least ``min_profit_usd_wad``.
    Plans are sorted by profit, then reward, descending, then by owner and
    sub; beyond ``max_per_round`` they are skipped (``ROUND_LIMIT``).
    Positions in flagged markets are quoted by ``lens_quotes`` (see ``quote``;
    ``QUOTE_FAILED`` when one is missing).

    ``close_bankrupt`` is the keeper duty of a protocol-run bot: a BANKRUPT
    account pays no penalty, so no reward, yet leaving it open lets its
    deficit grow; with the flag such accounts are planned anyway (negative
    profit, after every profitable plan).

    Margin calls (``call_params`` given with a non-zero buffer): an account in
    the band gets at most one call, the market whose fee is highest, ranked
    and filtered like a liquidation with ``gas_per_margin_call`` (default
    ``gas_per_liquidation``); the fee is the caller's whole credit. They
    take the slots of ``max_per_round`` the liquidations leave. ``now``
    (the block time of the assessments) marks plans in markets whose
    volatility sample is due (``samples``).
    """
    gas_usd = gas_cost_usd(gas_per_liquidation, gas_price_wei, native_usd_wad)
    call_gas = gas_per_liquidation if gas_per_margin_call is None else gas_per_margin_call
    call_gas_usd = gas_cost_usd(call_gas, gas_price_wei, native_usd_wad)
    plans: list[LiquidationPlan] = []
    calls: list[MarginCallPlan] = []
    skipped: list[Skipped] = []

    def skip(a: Assessment, reason: SkipReason, detail: str = "") -> None:
        skipped.append(Skipped(a.account.owner, a.account.sub, reason, detail))

    def samples(market_id: int) -> bool:
        return now is not None and sample_due(markets.get(market_id), now)

    for a in assessments:
        if not a.account.ok:
            skip(a, SkipReason.ENGINE_VIEW_FAILED)
        elif a.status is None:
            skip(a, SkipReason.PRICE_INVALID, a.unknown_reason or "")
        elif a.mismatch:
            if a.source == "engine":
                skip(a, SkipReason.MISMATCH, "equity of model and engine differ")
            else:
                skip(a, SkipReason.MISMATCH, f"model {a.status} engine {a.engine_status}")
        elif not a.account.positions:
            skip(a, SkipReason.NO_POSITIONS if a.liquidatable else SkipReason.NOT_LIQUIDATABLE, STATUS_NAMES[a.status])
        elif not a.liquidatable:
            if not in_band(a, call_params):
                skip(a, SkipReason.NOT_LIQUIDATABLE, STATUS_NAMES[a.status])
                continue
            options = call_quotes(a, markets, call_params, scale)
            if not options:
                skip(a, SkipReason.CALL_DUST)
                continue
            best_call = _best_call(options)
            fee_usd = tokens_to_usd(best_call.fee, scale, token_usd_wad)
            profit = fee_usd - call_gas_usd
            if profit <= 0 or profit < min_profit_usd_wad:
                skip(a, SkipReason.UNPROFITABLE, f"margin call fee {fee_usd} gas {call_gas_usd} (USD WAD)")
                continue
            calls.append(
                MarginCallPlan(
                    owner=best_call.owner,
                    sub=best_call.sub,
                    market=best_call.market,
                    max_size=abs(best_call.position_size),
                    quote=best_call,
                    fee_usd=fee_usd,
                    gas_cost_usd=call_gas_usd,
                    profit_usd=profit,
                    samples=samples(best_call.market),
                )
            )
        else:
            try:
                quotes = quote(a, markets, liq_params, scale, lens_quotes)
            except (AssertionError, model.ModelRevert, MissingQuote) as exc:
                skip(a, SkipReason.QUOTE_FAILED, str(exc))
                continue
            best = _best_quote(quotes)
            if best.size == 0:
                skip(a, SkipReason.ZERO_QUOTE)
                continue
            reward_usd = tokens_to_usd(best.reward, scale, token_usd_wad)
            profit = reward_usd - gas_usd
            keeper_duty = close_bankrupt and a.status == BANKRUPT
            if (profit <= 0 or profit < min_profit_usd_wad) and not keeper_duty:
                skip(a, SkipReason.UNPROFITABLE, f"reward {reward_usd} gas {gas_usd} (USD WAD)")
                continue
            plans.append(
                LiquidationPlan(
                    owner=best.owner,
                    sub=best.sub,
                    market=best.market,
                    max_size=abs(best.position_size),
                    quote=best,
                    status=a.status,
                    reward_usd=reward_usd,
                    gas_cost_usd=gas_usd,
                    profit_usd=profit,
                    samples=samples(best.market),
                )
            )

    plans.sort(key=lambda p: (-p.profit_usd, -p.reward_usd, p.owner.lower(), p.sub, p.market))
    calls.sort(key=lambda p: (-p.profit_usd, -p.fee_usd, p.owner.lower(), p.sub, p.market))
    if max_per_round is not None:
        for p in plans[max_per_round:]:
            skipped.append(Skipped(p.owner, p.sub, SkipReason.ROUND_LIMIT, f"profit {p.profit_usd}"))
        plans = plans[:max_per_round]
        room = max_per_round - len(plans)
        for c in calls[room:]:
            skipped.append(Skipped(c.owner, c.sub, SkipReason.ROUND_LIMIT, f"margin call profit {c.profit_usd}"))
        calls = calls[:room]
    return Round(plans, skipped, calls)


def plan(
    assessments: Iterable[Assessment],
    markets: Mapping[int, model.Market],
    liq_params: model.LiquidationParams,
    scale: int,
    gas_price_wei: int,
    gas_per_liquidation: int,
    native_usd_wad: int,
    token_usd_wad: int = WAD,
    min_profit_usd_wad: int = 0,
    max_per_round: int | None = None,
    close_bankrupt: bool = False,
    lens_quotes: Mapping[QuoteKey, Quote] | None = None,
) -> list[LiquidationPlan]:
    """The liquidations to send this round, best first (``evaluate(...).plans``)."""
    return evaluate(
        assessments,
        markets,
        liq_params,
        scale,
        gas_price_wei,
        gas_per_liquidation,
        native_usd_wad,
        token_usd_wad,
        min_profit_usd_wad,
        max_per_round,
        close_bankrupt,
        lens_quotes,
    ).plans


# --------------------------------------------------------------------------
#                          Collateral liquidation
# --------------------------------------------------------------------------


def collateral_candidates(assessments: Iterable[Assessment]) -> list[Key]:
    """Accounts for ``engine.liquidate_collateral`` (docs/collateral.md 6):
    holding collateral, with settlement debt (balance < 0), valued (every
    price valid) and either LIQUIDATABLE / BANKRUPT or without positions.
    Sorted by debt, largest first, then owner and sub. The state read at
    the scan block: the app reads the account again (and dry-runs) before
    sending, since a position liquidation of the same round changes it."""
    found = [
        a
        for a in assessments
        if a.account.ok
        and a.account.collateral
        and a.account.balance < 0
        and a.status is not None
        and (a.liquidatable or not a.account.positions)
    ]
    found.sort(key=lambda a: (a.account.balance, a.account.owner.lower(), a.account.sub))
    return [a.key for a in found]


def pick_collateral(holdings: Iterable[Any]) -> str | None:
    """The asset to seize from ``lens.collateral_of(owner, sub)``: the one
    with the largest maintenance value (valid price, non-zero balance);
    ties to the lowest id (the first). None when none qualifies."""
    best: tuple[int, str] | None = None
    for h in holdings:
        value = int(_get(h, "value_maint", 5))
        if not bool(_get(h, "price_ok", 3)) or int(_get(h, "balance", 1)) == 0 or value == 0:
            continue
        if best is None or value > best[0]:
            best = (value, _owner(_get(h, "asset", 0)))
    return None if best is None else best[1]


def collateral_repay(debt: int, liquidator_balance: int) -> int:
    """``max_repay`` for ``liquidate_collateral``: the account's debt (tokens),
    at most what the liquidator's sub-account 0 holds (it may not go into
    debt); 0 when either is not positive (nothing to send)."""
    return max(min(debt, liquidator_balance), 0)


# --------------------------------------------------------------------------
#                                Discovery
# --------------------------------------------------------------------------


def page_ranges(total: int, page_size: int = PAGE_SIZE) -> Iterator[tuple[int, int]]:
    """``(start, count)`` of each ``active_accounts`` page covering ``total`` accounts."""
    if page_size <= 0:
        raise ValueError("page_size must be positive")
    for start in range(0, total, page_size):
        yield start, min(page_size, total - start)


def account_key(item: Any) -> Key:
    """``(owner, sub)`` of an ``AccountView``, a lens snapshot, an event or a pair."""
    if isinstance(item, AccountView):
        return item.key
    if isinstance(item, tuple) and len(item) == 2:
        return (_owner(item[0]), int(item[1]))
    return (_owner(_get(item, "owner", 0)), int(_get(item, "sub", 1)))


class AccountBook:
    """The ``(owner, sub)`` accounts the bot watches.

    Two sources:

    - scans of the engine's on-chain list of accounts with open positions
      (``apply_scan``): authoritative, a clean complete scan replaces the
      scanned set;
    - candidates from ``PositionModified`` events (``add``, ``add_event``),
      recorded by block number so that a reorg can ``rollback`` them.

    A block is final once ``head - block >= confirmations`` (``set_head``);
    ``rollback`` never removes final records. A reorg deeper than that, or
    one that undoes the block a scan was read at, sets ``needs_rescan``. The
    book errs towards watching too many accounts (a flat account costs one
    read), never too few.
    """

    def __init__(self, confirmations: int = 0) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self.confirmations: int = confirmations
        self.scanned: set[Key] = set()
        self.scan_block: int | None = None
        self.final_block: int = -1  # highest final block (set_head)
        self.needs_rescan: bool = True
        self._records: dict[int, set[Key]] = {}  # block -> candidates seen in it

    # ----------------------------------------------------------- reading

    @property
    def keys(self) -> list[Key]:
        """Every account to watch, sorted: the scanned set and all candidates."""
        found = set(self.scanned)
        for keys in self._records.values():
            found |= keys
        return sorted(found, key=lambda k: (k[0].lower(), k[1]))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.scanned or any(key in keys for keys in self._records.values())

    @property
    def pending_blocks(self) -> list[int]:
        """Blocks holding candidates that a reorg may still undo."""
        return sorted(b for b in self._records if b > self.final_block)

    def is_final(self, block: int, head: int) -> bool:
        """``block`` has at least ``confirmations`` blocks on top of it at ``head``."""
        return head - block >= self.confirmations

    # ----------------------------------------------------------- writing

    def add(self, owner: Any, sub: int, block: int) -> None:
        """Record a candidate seen at ``block`` (idempotent)."""
        self._records.setdefault(int(block), set()).add((_owner(owner), int(sub)))

    def add_event(self, event: Any) -> None:
        """Record a ``PositionModified`` log: an Ape ``ContractLog`` or a
        mapping with ``owner``, ``sub`` and ``block_number``."""
        owner, sub = account_key(event)
        block = event["block_number"] if isinstance(event, Mapping) else event.block_number
        self.add(owner, sub, block)

    def set_head(self, head: int) -> None:
        """The chain head is ``head``: blocks up to ``head - confirmations`` are final."""
        self.final_block = max(self.final_block, head - self.confirmations)

    def rollback(self, to_block: int) -> None:
        """A reorg replaced the blocks after ``to_block``: forget their candidates.

        Final records stay; a reorg below the final block breaks the book's
        assumption and a scan read after ``to_block`` may be stale: both set
        ``needs_rescan`` (the scanned set stays, as candidates).
        """
        for block in [b for b in self._records if b > max(to_block, self.final_block)]:
            del self._records[block]
        if to_block < self.final_block or (self.scan_block is not None and self.scan_block > to_block):
            self.needs_rescan = True

    def apply_scan(
        self, pages: Sequence[tuple[int, Sequence[Any]]], start_block: int, end_block: int | None = None
    ) -> bool:
        """Apply a scan of ``active_accounts``; return whether it was clean.

        ``pages`` are the ``(total, accounts)`` answers for ``page_ranges(total)``,
        in order, read between the states after ``start_block`` and after
        ``end_block`` (default: all at ``start_block``). The scan is clean when
        every page reports the same total, the pages hold exactly that many
        accounts, and no candidate was recorded in ``(start_block, end_block]``
        (the list's swap-and-pop may have moved an account across pages
        meanwhile): feed the events up to ``end_block`` first. A clean scan
        replaces the scanned set and drops the candidates recorded at or
        before ``start_block`` (the scan saw their outcome); an unclean one only
        adds its accounts.
        """
        end_block = start_block if end_block is None else end_block
        keys = {account_key(item) for _, items in pages for item in items}
        totals = {int(total) for total, _ in pages}
        count = sum(len(items) for _, items in pages)
        moved = any(start_block < b <= end_block for b in self._records)
        if len(totals) != 1 or count != totals.pop() or moved:
            self.scanned |= keys
            return False
        self.scanned = keys
        self.scan_block = start_block
        self.needs_rescan = False
        for block in [b for b in self._records if b <= start_block]:
            del self._records[block]
        return True


# --------------------------------------------------------------------------
#                              Keeper duties
# --------------------------------------------------------------------------


def funding_due(markets: Mapping[int, model.Market], now: int, max_age_seconds: int) -> list[int]:
    """Markets whose funding should be accrued (``accrue_funding(market)``).

    Those with open interest, a valid price (the call needs it) and a stored
    ``last_funding_time`` more than ``max_age_seconds`` before ``now``;
    oldest first, ties by market id.
    """
    due = [
        (m.last_funding_time, market_id)
        for market_id, m in markets.items()
        if m.long_oi + m.short_oi > 0 and price_ok(m) and now - m.last_funding_time > max_age_seconds
    ]
    return [market_id for _, market_id in sorted(due)]


def volatility_due(markets: Mapping[int, model.Market], now: int, skip: Iterable[int] = ()) -> list[int]:
    """Markets whose volatility sample is due (``risk.update_volatility(market)``).

    Those with a volatility margin, a valid price (the call reverts with
    ``risk: price`` otherwise) and a next sample time (the start of the epoch
    after the last sample) at or before ``now``: no trade, liquidation or
    keeper has sampled them in the current epoch. A sample in an epoch
    already sampled changes nothing (and costs the gas), hence at most one
    per epoch. ``skip``: markets sampled since ``now`` was read (e.g. by a
    liquidation of this round). Most overdue first, ties by market id.
    """
    skipped = set(skip)
    due = [
        (m.next_sample_time, market_id)  # type: ignore[attr-defined]
        for market_id, m in markets.items()
        if market_id not in skipped and sample_due(m, now) and price_ok(m)
    ]
    return [market_id for _, market_id in sorted(due)]


@dataclass
class FailureTracker:
    """Counts consecutive failures (reverts, RPC errors); ``tripped`` once
    ``max_consecutive`` are reached, until the next success or ``reset``."""

    max_consecutive: int
    consecutive: int = 0
    total_failures: int = 0
    last_reason: str | None = None
    reasons: list[str] = field(default_factory=list)  # of the current streak

    def __post_init__(self) -> None:
        if self.max_consecutive <= 0:
            raise ValueError("max_consecutive must be positive")

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.max_consecutive

    def record_success(self) -> None:
        self.consecutive = 0
        self.reasons = []

    def record_failure(self, reason: str) -> None:
        self.consecutive += 1
        self.total_failures += 1
        self.last_reason = reason
        self.reasons.append(reason)

    def reset(self) -> None:
        """Close the breaker by hand (e.g. after an operator fixed the cause)."""
        self.record_success()
