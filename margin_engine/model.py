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
- the risk model of ``docs/risk-model.md`` sections 10 and 11 (``RiskModel.vy``):
  tier schedules (``pack_tiers``, ``tier_requirement``), the volatility rates
  word (``vol_mm_in_force``, ``vol_after_sample``) and the requirement of one
  position in a market flagged ``risk`` (``requirements``); markets without
  the flag keep the static rates and never use it;
- multi-collateral accounts (``docs/collateral.md``): ``CollateralAsset``,
  ``collateral_price`` (the bounded ERC-4626 rate), ``collateral_values`` and
  ``seize_amounts`` (a collateral liquidation);
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
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # volatility imports this module: import it lazily at run time
    from margin_engine.volatility import VolParams, VolState

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
    risk: bool = False
    """``RISK_BIT`` (bit 63 of the engine's rates word): requirements come from
    :func:`requirements` (the risk model). Set when the market gets volatility
    or tiers, never cleared. The defaults below leave a market static."""
    vol_params: VolParams | None = None
    """Volatility parameters; None = volatility off (``vol_im = vol_mm = 0``)."""
    vol_state: VolState | None = None
    """Volatility estimator state (``var``, anchor); None while volatility is off."""
    vol_rates: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    """The volatility rates word ``(im, mm_old, mm_new, start, end)`` (see :func:`vol_mm_in_force`)."""
    tiers: int = 0
    """Packed tier schedule with its MM ramp times (see :func:`pack_tiers`); 0 = no tiers."""
    old_tiers: int = 0
    """The schedule MM ramps from (bits 0..191 of the previous ``tiers``) until the ramp's end."""


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
#                 Risk model (docs/risk-model.md, sections 10-11)
# --------------------------------------------------------------------------

RISK_BIT: int = 1 << 63
"""Bit of the engine's rates word that flags a market using the risk model."""

MAX_TIERS: int = 4
"""Most brackets a tier schedule has."""
MIN_TIER_MULTIPLIER: int = 100
"""Lowest bracket multiplier (percent of the base rate: 1x)."""
MAX_TIER_MULTIPLIER: int = 10_000
"""Highest bracket multiplier (100x)."""
TIER_EDGE_BITS: int = 32
"""Width of a bracket edge (whole settlement units) in the packed schedule."""
TIER_MULT_BITS: int = 16
"""Width of a bracket multiplier in the packed schedule."""
TIER_SCHEDULE_MASK: int = 2**192 - 1
"""Bits 0..191 of a tiers word: the schedule without its ramp times."""

Tiers = tuple[tuple[int, ...], tuple[int, ...]]
"""An unpacked schedule ``(edges, multipliers)``: edges in whole settlement
units, multipliers in percent of the base rate."""
VolRates = tuple[int, int, int, int, int]
"""The volatility rates word unpacked: ``(im, mm_old, mm_new, start, end)``."""


def pack_tiers(
    edges: tuple[int, ...] | list[int], mults: tuple[int, ...] | list[int], start: int = 0, end: int = 0
) -> int:
    """The packed tiers word of section 10.2:
    ``e_1 | e_2 << 32 | e_3 << 64 | e_4 << 96 | m_1 << 128 | m_2 << 144 | m_3 << 160 | m_4 << 176``,
    with the MM ramp times ``start << 192 | end << 224`` (32 bits each).

    Layout only: it checks that every field fits (``ValueError``), not the
    configurator's bounds (:func:`check_tiers`). Missing brackets are zero.
    """
    if len(edges) > MAX_TIERS or len(mults) > MAX_TIERS:
        raise ValueError(f"pack_tiers: at most {MAX_TIERS} brackets")
    fields = [(e, TIER_EDGE_BITS, i * TIER_EDGE_BITS) for i, e in enumerate(edges)]
    fields += [(m, TIER_MULT_BITS, 128 + i * TIER_MULT_BITS) for i, m in enumerate(mults)]
    fields += [(start, 32, 192), (end, 32, 224)]
    word = 0
    for value, bits, shift in fields:
        if not 0 <= value < 2**bits:
            raise ValueError(f"pack_tiers: {value} does not fit {bits} bits")
        word |= value << shift
    return word


def unpack_tiers(word: int) -> Tiers:
    """``(edges, multipliers)`` of the used brackets of a tiers word: the
    brackets before the first zero edge (``k`` of them; ``((), ())`` = no
    tiers). Multipliers of unused brackets and the ramp times are ignored."""
    edges: list[int] = []
    mults: list[int] = []
    for i in range(MAX_TIERS):
        edge = (word >> (i * TIER_EDGE_BITS)) & (2**TIER_EDGE_BITS - 1)
        if edge == 0:
            break
        edges.append(edge)
        mults.append((word >> (128 + i * TIER_MULT_BITS)) & (2**TIER_MULT_BITS - 1))
    return tuple(edges), tuple(mults)


def tiers_ramp(word: int) -> tuple[int, int]:
    """``(start, end)`` of a tiers word's MM ramp (bits 192..223 and 224..255)."""
    return (word >> 192) & (2**32 - 1), (word >> 224) & (2**32 - 1)


def check_tiers(edges: tuple[int, ...] | list[int], mults: tuple[int, ...] | list[int]) -> None:
    """The configurator's bounds on a schedule, ``ModelRevert("configurator: bad params")`` otherwise.

    At most four brackets, ``len(mults) == len(edges)``; the edges are a
    strictly increasing prefix of non-zero values below ``2**32`` followed by
    zeros (``0 < e_1 < ... < e_k``); the used multipliers satisfy
    ``100 <= m_1 <= ... <= m_k <= 10,000`` and an unused bracket's multiplier
    is 0 (so that one schedule has one packed word). No bracket at all is
    allowed (tiers off).
    """
    ok = len(edges) == len(mults) <= MAX_TIERS
    k = 0
    while ok and k < len(edges) and edges[k] != 0:
        k += 1
    if ok:
        used_e, used_m = list(edges[:k]), list(mults[:k])
        ok = (
            all(e == 0 for e in edges[k:])
            and all(m == 0 for m in mults[k:])
            and all(0 < e < 2**TIER_EDGE_BITS for e in used_e)
            and all(a < b for a, b in zip(used_e, used_e[1:]))
            and all(MIN_TIER_MULTIPLIER <= m <= MAX_TIER_MULTIPLIER for m in used_m)
            and all(a <= b for a, b in zip(used_m, used_m[1:]))
        )
    _require(ok, "configurator: bad params")


def _as_tiers(tiers: Tiers | int) -> Tiers:
    """A schedule given as ``(edges, mults)`` (trailing zero edges dropped) or a packed word."""
    if isinstance(tiers, int):
        return unpack_tiers(tiers)
    edges, mults = tiers
    k = 0
    while k < len(edges) and edges[k] != 0:
        k += 1
    if len(mults) < k:
        raise ValueError("tiers: fewer multipliers than used edges")
    return tuple(edges[:k]), tuple(mults[:k])


def tier_rates(base: int, mults: tuple[int, ...]) -> tuple[int, ...]:
    """Bracket rates (WAD): ``rate_0 = base``, ``rate_i = min(mul_div_up(base, m_i, 100), WAD)``
    (up, capped at 100%)."""
    return (base,) + tuple(min(mul_div_up(base, m, 100), WAD) for m in mults)


def tier_requirement(n: int, base: int, tiers: Tiers | int) -> int:
    """``req(n, base)`` of section 10.2: the requirement of notional ``n`` (WAD USD).

    With ``E_0 = 0``, ``E_i = e_i * WAD``, ``E_{k+1} = infinity`` and the
    bracket rates of :func:`tier_rates`::

        seg_i = min(max(n - E_i, 0), E_{i+1} - E_i)
        req   = ceil(sum_i rate_i * seg_i / WAD)          # one rounding, up

    ``tiers`` is ``(edges, mults)`` or a packed word (its ramp times are
    ignored). With no bracket it is ``mul_div_up(n, base, WAD)``, the static formula.
    """
    if n < 0 or base < 0:
        raise ValueError(f"tier_requirement({n}, {base}): needs n, base >= 0")
    edges, mults = _as_tiers(tiers)
    rates = tier_rates(base, mults)
    bounds = (0,) + tuple(e * WAD for e in edges)
    total = 0
    for i, rate in enumerate(rates):
        seg = max(n - bounds[i], 0)
        if i + 1 < len(bounds):
            seg = min(seg, bounds[i + 1] - bounds[i])
        total += rate * seg
    return ceil_div(total, WAD)


def ramped_tier_requirement(n: int, base: int, tiers: int, old_tiers: int, now: int) -> int:
    """The MM requirement under a tier schedule that may be ramping (section 10.2).

    ``new = req(n, base, tiers)``; from ``end`` on (``tiers_ramp(tiers)``; a
    word without a ramp has ``end = 0``) it is ``new``; before, with
    ``old = req(n, base, old_tiers)``::

        floor(old + (new - old) * (now - start) / (end - start))

    rounded down in both directions (a tighter schedule eases in, and so does
    a looser one): ``old - ceil((old - new) * el / dur)`` when ``new < old``.
    """
    new = tier_requirement(n, base, tiers)
    start, end = tiers_ramp(tiers)
    if now >= end:
        return new
    old = tier_requirement(n, base, old_tiers)
    return old + floor_div((new - old) * (now - start), end - start)


def pack_vol_rates(rates: VolRates) -> int:
    """The volatility rates word ``im | mm_old << 64 | mm_new << 128 | start << 192 | end << 224``."""
    im, mm_old, mm_new, start, end = rates
    for value, bits in ((im, 64), (mm_old, 64), (mm_new, 64), (start, 32), (end, 32)):
        if not 0 <= value < 2**bits:
            raise ValueError(f"pack_vol_rates: {value} does not fit {bits} bits")
    return im | mm_old << 64 | mm_new << 128 | start << 192 | end << 224


def unpack_vol_rates(word: int) -> VolRates:
    """``(im, mm_old, mm_new, start, end)`` of a volatility rates word."""
    m64, m32 = 2**64 - 1, 2**32 - 1
    return word & m64, (word >> 64) & m64, (word >> 128) & m64, (word >> 192) & m32, (word >> 224) & m32


def vol_mm_in_force(rates: VolRates | int, now: int) -> int:
    """``vol_mm(t)`` of section 10.1, from the rates word (packed or a tuple)::

        mm_new                                                   if t >= end
        mm_old + (mm_new - mm_old) * (t - start) // (end - start)  otherwise (down)
    """
    _, mm_old, mm_new, start, end = unpack_vol_rates(rates) if isinstance(rates, int) else rates
    if now >= end:
        return mm_new
    return mm_old + floor_div((mm_new - mm_old) * (now - start), end - start)


def vol_after_sample(rates: VolRates | int, im: int, mm_fraction: int, now: int, duration: int) -> VolRates:
    """The volatility rates word after a sample (or a parameter change) giving IM rate ``im``.

    ``target = mul_div_up(im, mm_fraction, WAD)`` (``volatility.mm_rate``, up)
    and ``cur = vol_mm_in_force(rates, now)``: a higher target ramps from the
    rate in force, ``(im, cur, target, now, now + duration)``; anything else
    applies at once, ``(im, target, target, now, now)``. IM moves at once.
    """
    target = mul_div_up(im, mm_fraction, WAD)
    cur = vol_mm_in_force(rates, now)
    if target > cur:
        return im, cur, target, now, now + duration
    return im, target, target, now, now


def base_rates(market: Market, now: int) -> tuple[int, int]:
    """``(base_im, base_mm)`` of section 10.1 at ``now``: the static rates are floors,
    ``base_im = max(imr, vol_im)`` and ``base_mm = max(mmr_in_force, vol_mm(now))``
    (volatility off: ``vol_im = vol_mm = 0``, its rates word is zero)."""
    imr_s = market.params.imr
    mmr_s = mmr_in_force(market, now)
    if not market.risk:
        return imr_s, mmr_s
    return max(imr_s, market.vol_rates[0]), max(mmr_s, vol_mm_in_force(market.vol_rates, now))


def requirements(market: Market, notional: int, now: int) -> tuple[int, int]:
    """``(im, mm)`` required for a position of ``notional`` (WAD USD) at ``now``.

    A static market (``risk`` unset): ``mul_div_up(notional, imr, WAD)`` and
    ``mul_div_up(notional, mmr_in_force, WAD)`` (spec: Position valuation).
    A flagged market (``RiskModel.requirements``): the base rates of
    :func:`base_rates`, then ``im = req(notional, base_im)`` under the current
    schedule (new tiers apply to IM at once) and ``mm`` from
    :func:`ramped_tier_requirement` with ``base_mm`` (down during a tier ramp).
    """
    base_im, base_mm = base_rates(market, now)
    if not market.risk:
        return mul_div_up(notional, base_im, WAD), mul_div_up(notional, base_mm, WAD)
    im = tier_requirement(notional, base_im, market.tiers)
    mm = ramped_tier_requirement(notional, base_mm, market.tiers, market.old_tiers, now)
    return im, mm


def average_mm_rate(market: Market, notional: int, now: int) -> int:
    """``mmr_avg = mm(n) * WAD // n`` (section 10.3, rounded down: a larger
    liquidation), ``mm(n)`` from :func:`requirements`; ``n > 0``. At least
    ``base_mm``, so above ``liq_fee``."""
    if notional <= 0:
        raise ValueError("average_mm_rate: needs a notional > 0")
    return requirements(market, notional, now)[1] * WAD // notional


# --------------------------------------------------------------------------
#                            Position and account
# --------------------------------------------------------------------------


def position_value(
    pos: Position,
    price: int,
    index: int,
    params: MarketParams,
    market: Market | None = None,
    now: int | None = None,
) -> PositionValue:
    """Value ``pos`` at ``price`` and funding ``index`` (spec: Position valuation).

    ``im`` and ``mm`` are ``mul_div_up(notional, imr | mmr, WAD)`` with
    ``params``; when ``market`` is given and flagged ``risk`` they are
    :func:`requirements` of that market at ``now`` instead (``now`` required).
    """
    s = pos.size
    notional = mul_div_up(abs(s), price, WAD)
    pnl = floor_div(s * (price - pos.entry_price), WAD)
    funding = ceil_div(s * (index - pos.funding_index), WAD)
    if market is not None and market.risk:
        if now is None:
            raise ValueError("position_value: a risk market needs `now`")
        im, mm = requirements(market, notional, now)
    else:
        im, mm = mul_div_up(notional, params.imr, WAD), mul_div_up(notional, params.mmr, WAD)
    return PositionValue(notional=notional, pnl=pnl, funding=funding, upnl=pnl - funding, im=im, mm=mm)


def account_status(
    equity_init: int, equity_maint: int, im_required: int, mm_required: int, has_positions: bool, balance: int
) -> int:
    """Status from the four margin numbers (spec: Account state).

    The first rule is on the settlement ``balance`` itself ("no positions and
    balance >= 0"): a flat account with a debt backed by collateral goes on
    to the other rules (MARGIN_CALL when its ``equity_init`` is negative,
    though its ``equity_maint`` is not).
    """
    if not has_positions and balance >= 0:
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
    collateral: tuple[int, int] = (0, 0),
) -> AccountState:
    """Margin state of an account valued at each market's price and current index.

    ``equity_maint = balance * scale + upnl + value_maint`` and
    ``equity_init = equity_maint - (value_maint - value_init) - mul_div_up(max(upnl, 0), upnl_haircut, WAD)``:
    positive unrealised PnL counts toward IM at weight ``1 - haircut``
    (the engine's ``margin_params``); ``equity_maint`` counts it in full.
    ``collateral`` is ``(value_init, value_maint)`` of the account's
    collateral assets (:func:`collateral_values`, docs/collateral.md section 4;
    ``(0, 0)`` without any). A market flagged ``risk`` requires
    :func:`requirements` at ``now``.
    """
    upnl = im_required = mm_required = 0
    for market_id, pos in positions.items():
        market = in_force(markets[market_id], now)
        value = position_value(pos, market.price, current_index(market, now), market.params, market, now)
        upnl += value.upnl
        im_required += value.im
        mm_required += value.mm
    value_init, value_maint = collateral
    equity = balance_tokens * scale + upnl + value_maint
    equity_init = equity - (value_maint - value_init) - mul_div_up(max(upnl, 0), upnl_haircut, WAD)
    status = account_status(equity_init, equity, im_required, mm_required, len(positions) > 0, balance_tokens)
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
    state: AccountState,
    params: MarketParams,
    liq_params: LiquidationParams,
    scale: int,
    mmr: int | None = None,
) -> int:
    """``N``: the notional whose closing restores ``mm_required * (1 + buffer)``.

    ``target = mul_div_up(M, WAD + buffer, WAD)``;
    ``deficit = target - E + 3 * scale + 8`` (the allowance covers the token
    roundings of funding, PnL and penalty and the rounded-up remainder);
    ``denom = mul_div_down(mmr, WAD + buffer, WAD) - liq_fee``;
    ``N = mul_div_up(deficit, WAD, denom)``. ``mmr`` is ``params.mmr`` unless
    given (a flagged market passes its average rate, :func:`average_mm_rate`).
    """
    if mmr is None:
        mmr = params.mmr
    target = mul_div_up(state.mm_required, WAD + liq_params.buffer, WAD)
    deficit = target - state.equity_maint
    assert deficit > 0, "liquidation_notional: account is not below maintenance"
    # Allowance for the token roundings of funding, PnL and penalty (each < 1 unit)
    # and the rounded-up requirement of the remainder.
    deficit += 3 * scale + 8
    denom = mul_div_down(mmr, WAD + liq_params.buffer, WAD) - params.liq_fee
    assert denom > 0, "liquidation_notional: liq_fee >= mmr"
    return mul_div_up(deficit, WAD, denom)


def liquidation_size(
    state: AccountState,
    pos: Position,
    market: Market,
    liq_params: LiquidationParams,
    max_size: int,
    scale: int,
    now: int | None = None,
) -> int:
    """``q``, the size a liquidation closes (spec: Liquidation, step 3).

    ``q = min(mul_div_up(N, WAD, P), |s|)``; a remainder below ``min_notional``
    is closed too; then ``q`` is capped at ``max_size``, and a capped ``q``
    that leaves or closes less than ``min_notional`` (closed notional rounded
    down) raises ``ModelRevert("engine: dust")``.

    ``N`` uses ``market.params.mmr`` (pass the market with its rate in force,
    :func:`in_force`); in a market flagged ``risk`` it uses the position's
    average rate ``mm(n) * WAD // n`` at ``now`` (required), ``n =
    mul_div_up(|s|, P, WAD)`` (risk-model section 10.3).
    """
    params = market.params
    price = market.price
    size = abs(pos.size)
    mmr = None
    if market.risk:
        if now is None:
            raise ValueError("liquidation_size: a risk market needs `now`")
        mmr = average_mm_rate(market, mul_div_up(size, price, WAD), now)
    n = liquidation_notional(state, params, liq_params, scale, mmr)
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


# --------------------------------------------------------------------------
#                      Margin-call band (risk-model section 11)
# --------------------------------------------------------------------------


def check_call_params(buffer: int, fee_share: int, fraction: int) -> None:
    """The configurator's bounds on ``set_call_params``: ``buffer <= WAD``,
    ``fee_share <= WAD // 2``, ``WAD // 100 <= fraction <= WAD // 2``, else
    ``ModelRevert("configurator: bad params")``."""
    ok = 0 <= buffer <= WAD and 0 <= fee_share <= WAD // 2 and WAD // 100 <= fraction <= WAD // 2
    _require(ok, "configurator: bad params")


def in_call_band(state: AccountState, buffer: int) -> bool:
    """``status == MARGIN_CALL and equity_maint < mul_div_up(mm_required, WAD + buffer, WAD)``
    (up); never with ``buffer == 0`` (``MARGIN_CALL`` means ``E >= M``)."""
    return state.status == MARGIN_CALL and state.equity_maint < mul_div_up(state.mm_required, WAD + buffer, WAD)


def margin_call_size(size: int, price: int, min_notional: int, fraction: int, max_size: int) -> int:
    """``q``, the size a margin call closes (section 11).

    ``q = min(max_size, |s| * fraction // WAD)`` (down); the whole position
    when the rest would be below ``min_notional``
    (``mul_div_up(|s| - q, P, WAD) < min_notional``, even beyond ``max_size``);
    ``ModelRevert("engine: dust")`` when ``q == 0`` or a partial ``q``'s
    notional ``q * P // WAD`` (down) is below ``min_notional``.
    """
    s = abs(size)
    q = min(max_size, s * fraction // WAD)
    if q < s and mul_div_up(s - q, price, WAD) < min_notional:
        q = s
    if q == 0 or (q < s and q * price // WAD < min_notional):
        raise ModelRevert("engine: dust")
    return q


def call_fee_tokens(q: int, price: int, liq_fee: int, fee_share: int, scale: int) -> int:
    """Margin-call fee in tokens before its cap:
    ``ceil_div(mul_div_up(mul_div_up(q, P, WAD), mul_div_down(liq_fee, fee_share, WAD), WAD), scale)``
    (rate rounded down, fee up); capped like a penalty by :func:`capped_penalty`."""
    rate = mul_div_down(liq_fee, fee_share, WAD)
    return ceil_div(mul_div_up(mul_div_up(q, price, WAD), rate, WAD), scale)


def liquidation_price(state: AccountState, pos: Position, market: Market, now: int | None = None) -> int:
    """Price of ``market`` at which the account reaches ``equity_maint == mm_required``.

    Other markets fixed. ``slack = E - M``; long: ``d = |s| (WAD - mmr) // WAD``,
    ``P - floor_div(slack * WAD, d)``; short: ``d = |s| (WAD + mmr) // WAD``,
    ``P + floor_div(slack * WAD, d)`` (as ``MarginLens``). 0 when there is no
    position, ``d == 0`` or the result is ``<= 0``. ``mmr`` is
    ``market.params.mmr`` (pass the market with its rate in force); in a market
    flagged ``risk`` the position's average MM rate at ``P``
    (:func:`average_mm_rate` at ``now``, required; engine-spec "Liquidation
    price", an approximation since tiers make the answer depend on the price).
    """
    if pos.size == 0:
        return 0
    surplus = state.equity_maint - state.mm_required
    mmr = market.params.mmr
    if market.risk:
        if now is None:
            raise ValueError("liquidation_price: a risk market needs `now`")
        mmr = average_mm_rate(market, mul_div_up(abs(pos.size), market.price, WAD), now)
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
#                 Multi-collateral accounts (docs/collateral.md)
# --------------------------------------------------------------------------

MAX_ASSETS: int = 16
"""Most collateral assets the manager lists."""
MAX_COLLATERAL_DECIMALS: int = 18
"""Token decimals above this are refused (``configurator: decimals``)."""
MAX_DISCOUNT: int = WAD // 5
"""Largest collateral liquidation discount (20 %)."""
MAX_WEIGHT_STEP: int = WAD // 20
"""Largest fall of ``w_maint`` in one change while anyone holds the asset (5 %, absolute)."""
MIN_RATE_CHANGE_DELAY: int = 3_600
"""At least this long between two falls of ``w_maint`` of an asset (s), the configurator's constant."""
SECONDS_PER_YEAR: int = 365 * 86_400
MAX_RATE_GROWTH: int = WAD // SECONDS_PER_YEAR
"""Largest ``max_rate_growth`` of a vault share: 100 % a year, WAD per second (down)."""
MAX_CAP: int = 2**128
"""A supply cap is below this."""


@dataclass
class CollateralAsset:
    """A listed collateral asset: parameters, oracle price, ERC-4626 rate state and ledger total.

    ``price`` is the feed's price (WAD USD per whole token; of the underlying
    for a vault share); a vault share is priced through :func:`collateral_price`.
    """

    decimals: int  # token decimals (of the share for a vault)
    price: int  # WAD USD per whole token (underlying for a vault)
    w_init: int  # WAD, 0 < w_init <= w_maint
    w_maint: int  # WAD, <= WAD
    discount: int  # WAD, <= 20 % and w_maint + discount <= WAD
    cap: int  # supply cap in token units, 0 < cap < 2**128
    enabled: bool = True  # deposits allowed
    vault: bool = False  # an ERC-4626 share
    max_rate_growth: int = 0  # WAD per second (vaults), else 0
    live_rate: int = WAD  # convertToAssets(10**share_decimals) * 10**(18 - underlying_decimals)
    last_rate: int = WAD  # the bounded rate last stored (WAD)
    last_time: int = 0  # when it was stored (s)
    total: int = 0  # token units deposited in all sub-accounts
    w_maint_changed_at: int = 0  # last fall of w_maint while held (s); 0 = never

    @property
    def scale(self) -> int:
        """``10**(18 - decimals)``: token units to WAD."""
        return 10 ** (18 - self.decimals)


def check_collateral_params(
    decimals: int, w_init: int, w_maint: int, discount: int, cap: int, vault: bool, max_rate_growth: int
) -> None:
    """The configurator's bounds of docs/collateral.md section 2.

    In the configurator's order: ``"configurator: bad collateral"`` unless
    ``0 < max_rate_growth <= 100 %/year`` for a vault (0 otherwise); then
    ``"configurator: decimals"`` for decimals above 18; then
    ``"configurator: bad collateral"`` unless ``0 < w_init <= w_maint <= WAD``,
    ``discount <= 20 %``, ``w_maint + discount <= WAD`` and ``0 < cap < 2**128``
    (:func:`check_collateral_weights`).
    """
    growth_ok = 0 < max_rate_growth <= MAX_RATE_GROWTH if vault else max_rate_growth == 0
    _require(growth_ok, "configurator: bad collateral")
    _require(0 <= decimals <= MAX_COLLATERAL_DECIMALS, "configurator: decimals")
    check_collateral_weights(w_init, w_maint, discount, cap)


def check_collateral_weights(w_init: int, w_maint: int, discount: int, cap: int) -> None:
    """The parameter bounds of section 2, ``"configurator: bad collateral"`` otherwise."""
    ok = 0 < w_init <= w_maint <= WAD and 0 <= discount <= MAX_DISCOUNT and w_maint + discount <= WAD
    _require(ok and 0 < cap < MAX_CAP, "configurator: bad collateral")


def bounded_rate(asset: CollateralAsset, now: int) -> int:
    """The share rate of a vault (section 3): ``min(live, bound)`` with
    ``bound = last + last * g * (now - last_time) // WAD``; a falling rate
    applies at once; at most ``2**128 - 1`` (the stored word). ``WAD`` for a plain token."""
    if not asset.vault:
        return WAD
    elapsed = max(now - asset.last_time, 0)
    bound = asset.last_rate + asset.last_rate * asset.max_rate_growth * elapsed // WAD
    return min(asset.live_rate, bound, 2**128 - 1)


def collateral_price(asset: CollateralAsset, now: int, store: bool = False) -> int:
    """The price of one whole token (WAD USD), section 3.

    A plain token: ``P``. A vault share: ``P * rate // WAD`` with the bounded
    rate of :func:`bounded_rate`; with ``store`` the rate is written
    (``last_rate = rate``, ``last_time = now``), as on a deposit, withdrawal,
    collateral liquidation or ``update_rate`` (views do not store).
    """
    if not asset.vault:
        return asset.price
    rate = bounded_rate(asset, now)
    if store:
        asset.last_rate = rate
        asset.last_time = now
    return asset.price * rate // WAD


def collateral_usd(amount: int, scale: int, price: int) -> int:
    """``usd = b * scale * price // WAD`` (down): WAD USD of ``amount`` token units."""
    return amount * scale * price // WAD


def collateral_values(
    balances: Mapping[Any, int], assets: Mapping[Any, CollateralAsset], now: int
) -> tuple[int, int]:
    """``(value_init, value_maint)`` of collateral balances (section 4), WAD USD::

        usd_k       = b_k * scale_k * price_k // WAD
        value_init  = sum(usd_k * w_init_k // WAD)     (each term down)
        value_maint = sum(usd_k * w_maint_k // WAD)    (each term down)

    Prices are the views' (:func:`collateral_price` without storing).
    """
    value_init = value_maint = 0
    for key, amount in balances.items():
        if amount == 0:
            continue
        asset = assets[key]
        usd = collateral_usd(amount, asset.scale, collateral_price(asset, now))
        value_init += usd * asset.w_init // WAD
        value_maint += usd * asset.w_maint // WAD
    return value_init, value_maint


def seize_need(deficit: int | None, discount: int, w_maint: int, scale: int) -> int | None:
    """``need`` of section 6 (tokens): the smallest repayment restoring the target,
    ``ceil(ceil(deficit * (WAD - d) / (WAD - d - w_maint)) / SCALE)``; ``None``
    (no limit) without positions (``deficit is None``) or when ``w_maint + d == WAD``.
    A deficit below zero counts as zero."""
    if deficit is None or w_maint + discount == WAD:
        return None
    return ceil_div(ceil_div(max(deficit, 0) * (WAD - discount), WAD - discount - w_maint), scale)


def seize_amounts(
    max_repay: int,
    debt: int,
    deficit: int | None,
    balance: int,
    price: int,
    asset_scale: int,
    discount: int,
    w_maint: int,
    scale: int,
) -> tuple[int, int]:
    """``(seized, repaid)`` of a collateral liquidation (section 6).

    ``max_repay`` and ``debt`` are settlement tokens, ``deficit`` WAD USD
    (``None``: the account has no positions, no limit), ``balance`` the
    account's token units of the asset at ``price`` (WAD, the stored rate for
    a vault), ``asset_scale`` its ``10**(18 - decimals)``, ``scale`` the
    settlement's::

        R_max  = min(max_repay, debt)
        R      = min(R_max, need)                                   (seize_need)
        seized = R * SCALE * WAD // (WAD - d) * WAD // (price * scale)   (down)
        if seized > balance:
            seized = balance
            R      = min(ceil(ceil(balance * scale * price // WAD * (WAD - d) / WAD) / SCALE), R)
    """
    repay = min(max_repay, debt)
    need = seize_need(deficit, discount, w_maint, scale)
    if need is not None:
        repay = min(repay, need)
    seized = repay * scale * WAD // (WAD - discount) * WAD // (price * asset_scale)
    if seized > balance:
        seized = balance
        usd = collateral_usd(balance, asset_scale, price)
        repay = min(ceil_div(ceil_div(usd * (WAD - discount), WAD), scale), repay)
    return seized, repay


# --------------------------------------------------------------------------
#                                  Simulator
# --------------------------------------------------------------------------


@dataclass
class Account:
    """Ledger of one ``(owner, sub)`` account."""

    balance: int = 0  # settlement tokens, may be negative (a debt)
    positions: dict[int, Position] = field(default_factory=dict)
    isolated: bool = False  # isolated margin: at most one market
    collateral: dict[Any, int] = field(default_factory=dict)
    """Collateral balances by asset (token units, > 0; an emptied entry is removed)."""


Event = tuple[str, dict[str, Any]]


class Engine:
    """Stateful simulator of the engine's ledger (tokens are plain integers).

    ``custody`` is what the contract would hold in tokens; at all times
    ``sum(balances) + insurance + vault_assets == custody``. Collateral
    assets (docs/collateral.md) are listed in ``collaterals`` (by key, in
    listing order; the id is the position); per asset, ``total`` is the sum
    of the accounts' balances and what the engine holds of that token.
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
        self.call_buffer: int = 0  # WAD, configurator.set_call_params; 0 = no margin-call band
        self.call_fee_share: int = 0  # WAD, share of liq_fee charged by a margin call
        self.call_fraction: int = 0  # WAD, most of a position one margin call closes
        self.paused: bool = False
        self.markets: dict[int, Market] = {}
        self.accounts: dict[tuple[Any, int], Account] = {}
        self.insurance: int = 0  # tokens, >= 0
        self.vault_assets: int = 0  # tokens, signed
        self.custody: int = 0  # tokens held by the engine
        self.collaterals: dict[Any, CollateralAsset] = {}  # listed collateral assets, in listing order
        self.events: list[Event] = []

    @property
    def ramp_duration(self) -> int:
        """The risk model's ``ramp_duration`` (s), the configurator's
        ``mm_ramp_duration``: one value here, ``mm_ramp_duration`` aliased."""
        return self.mm_ramp_duration

    @ramp_duration.setter
    def ramp_duration(self, value: int) -> None:
        self.mm_ramp_duration = value

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
        MM ramps live in the risk model, so whenever the ramp changes (one
        starts, or one is dropped) the market is flagged ``risk``, as the
        configurator's ``_set_market_params`` does when the stored ramp word
        changes (risk-model section 12).
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
        if ramp != market.mm_ramp:
            market.risk = True
        market.params = params
        market.mm_ramp = ramp

    def _use_risk_model(self, market: Market) -> None:
        """Flag ``market`` (once): the configurator's ``_use_risk_model`` re-stores
        the market's parameters through the engine's ``store_market_params``,
        which accrues funding first (needs a valid price with open interest)."""
        if not market.risk:
            accrue(market, self.now)
            market.risk = True

    def _ramp_duration_for(self, market: Market) -> int:
        """``D`` of a parameter change (sections 10.1, 10.2): ``ramp_duration``,
        or 0 on a market without open interest (no account to grandfather)."""
        return self.ramp_duration if market.long_oi + market.short_oi > 0 else 0

    def set_volatility(self, market_id: int, params: VolParams | None, seed_var: int = 0) -> None:
        """``configurator.set_volatility`` (section 10.1): flag the market ``risk``;
        seed ``var`` when ``seed_var > 0`` (else keep it), always clear the
        anchor (the next valid price starts a new sample series), and recompute
        the rates word with :func:`vol_after_sample` at the current ``var``'s
        IM rate (a higher MM ramps from the rate in force over
        ``ramp_duration``, or applies at once on a market without open
        interest). Flagging a market the first time accrues its funding (the
        configurator re-stores its parameters in the engine).

        ``None`` turns volatility off: the state and rates words become zero
        (``var`` is dropped; the seed is ignored) and the flag is left as it
        was (a market that never had volatility or tiers stays static). Turning it on from off needs
        ``seed_var > 0``, and a seed is at most ``MAX_VAR``, else
        ``ModelRevert("configurator: bad params")`` (the parameter bounds are
        :class:`VolParams`'s; the configurator's step and delay rules on a live
        market are governance checks, not modelled).
        """
        from margin_engine import volatility

        market = self._market(market_id)
        if params is not None:
            _require(0 <= seed_var <= volatility.MAX_VAR, "configurator: bad params")
            _require(market.vol_params is not None or seed_var > 0, "configurator: bad params")
        if params is not None:  # removing volatility does not flag a market
            self._use_risk_model(market)
        market.vol_params = params
        if params is None:
            market.vol_state = None
            market.vol_rates = (0, 0, 0, 0, 0)
            return
        assert market.vol_state is not None or seed_var > 0
        var = seed_var if seed_var > 0 else market.vol_state.var  # type: ignore[union-attr]
        market.vol_state = volatility.VolState(var=var)
        im = volatility.im_rate(market.vol_state, params)
        market.vol_rates = vol_after_sample(
            market.vol_rates, im, params.mm_fraction, self.now, self._ramp_duration_for(market)
        )

    def set_tiers(
        self, market_id: int, edges: tuple[int, ...] | list[int], mults: tuple[int, ...] | list[int]
    ) -> None:
        """``configurator.set_tiers`` (section 10.2): flag the market ``risk`` and
        apply a new schedule, to IM at once and to MM over ``ramp_duration``
        from the previous schedule (kept in ``old_tiers``); on a market without
        open interest to MM at once too (``end = now``). Flagging a market the
        first time accrues its funding, as in :meth:`set_volatility`.

        Bounds (:func:`check_tiers`) first, ``"configurator: bad params"``;
        then ``"configurator: ramp on"`` while the previous ramp runs (``now < end``).
        """
        market = self._market(market_id)
        check_tiers(edges, mults)
        _require(self.now >= tiers_ramp(market.tiers)[1], "configurator: ramp on")
        self._use_risk_model(market)
        market.old_tiers = market.tiers & TIER_SCHEDULE_MASK
        market.tiers = pack_tiers(edges, mults, self.now, self.now + self._ramp_duration_for(market))

    def set_call_params(self, buffer: int, fee_share: int, fraction: int) -> None:
        """``configurator.set_call_params``: the margin-call band (section 11), within :func:`check_call_params`."""
        check_call_params(buffer, fee_share, fraction)
        self.call_buffer, self.call_fee_share, self.call_fraction = buffer, fee_share, fraction

    def sample(self, market_id: int) -> None:
        """``RiskModel.sample(market, P)`` at the market's price: :func:`volatility.update`.

        Nothing without volatility parameters (a static or tiers-only market),
        nor within the anchor's epoch. The first sample of a series only sets
        the anchor (``var`` and the rates word are kept); every later one
        writes ``var`` and recomputes the rates word (:func:`vol_after_sample`).
        """
        from margin_engine import volatility

        market = self._market(market_id)
        params = market.vol_params
        if params is None:
            return
        state = market.vol_state if market.vol_state is not None else volatility.VolState(var=0)
        new = volatility.update(state, params, market.price, self.now)
        if new == state:
            return
        market.vol_state = new
        if state.anchor_price == 0:
            return
        im = volatility.im_rate(new, params)
        market.vol_rates = vol_after_sample(market.vol_rates, im, params.mm_fraction, self.now, self.ramp_duration)

    def update_volatility(self, market_id: int) -> None:
        """``RiskModel.update_volatility(market)`` (anyone): :meth:`sample` at the
        oracle price; ``"risk: no volatility"`` without volatility parameters."""
        _require(self._market(market_id).vol_params is not None, "risk: no volatility")
        self.sample(market_id)

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

    def list_collateral(
        self,
        decimals: int,
        price: int,
        w_init: int,
        w_maint: int,
        discount: int,
        cap: int,
        enabled: bool = True,
        vault: bool = False,
        max_rate_growth: int = 0,
        live_rate: int = WAD,
        asset: Any = None,
    ) -> Any:
        """``configurator.list_collateral`` (docs/collateral.md section 2); return the asset's key.

        ``asset`` is the key every other call uses (an address in a
        differential test); ``None`` keys it by its id (the listing order,
        :meth:`asset_id`). ``price`` is the feed's (WAD USD per whole token, of
        the underlying for a vault share); a vault starts at ``live_rate``
        (stored as ``last_rate`` now). Reverts ``"configurator: listed"`` for an
        asset listed already, ``"configurator: too many assets"`` beyond
        ``MAX_ASSETS`` (the manager's ``"collateral: too many assets"``, last),
        and the bounds of :func:`check_collateral_params`.
        """
        if price <= 0 or live_rate <= 0:
            raise ValueError("a price and a rate must be positive")
        key = len(self.collaterals) if asset is None else asset
        _require(key not in self.collaterals, "configurator: listed")
        check_collateral_params(decimals, w_init, w_maint, discount, cap, vault, max_rate_growth)
        _require(len(self.collaterals) < MAX_ASSETS, "collateral: too many assets")
        self.collaterals[key] = CollateralAsset(
            decimals=decimals, price=price, w_init=w_init, w_maint=w_maint, discount=discount, cap=cap,
            enabled=enabled, vault=vault, max_rate_growth=max_rate_growth,
            live_rate=live_rate if vault else WAD, last_rate=live_rate if vault else WAD, last_time=self.now,
        )  # fmt: skip
        self._log("CollateralListed", asset=key, id=len(self.collaterals) - 1, vault=vault)
        return key

    def set_collateral_params(
        self, asset: Any, w_init: int, w_maint: int, discount: int, cap: int, enabled: bool = True
    ) -> None:
        """``configurator.set_collateral_params`` (RISK_MANAGER): weights,
        discount, cap and the enable flag, in the configurator's order:
        ``"collateral: unknown asset"``; every fall of ``w_maint`` is timed,
        and while anyone holds the asset (``total > 0``) it comes at least
        ``MIN_RATE_CHANGE_DELAY`` after the previous fall (``"configurator:
        too soon"``; the first one any time) and is at most
        ``MAX_WEIGHT_STEP`` (``"configurator: weight step"``); then the bounds
        of section 2 (``"configurator: bad collateral"``). ``w_init`` and
        rises apply at once. A cap below the total only stops deposits."""
        a = self._collateral(asset)
        if w_maint < a.w_maint:
            if a.total > 0:
                _require(
                    a.w_maint_changed_at == 0 or self.now >= a.w_maint_changed_at + MIN_RATE_CHANGE_DELAY,
                    "configurator: too soon",
                )
                _require(a.w_maint - w_maint <= MAX_WEIGHT_STEP, "configurator: weight step")
        check_collateral_weights(w_init, w_maint, discount, cap)
        if w_maint < a.w_maint:
            a.w_maint_changed_at = self.now
        a.w_init, a.w_maint, a.discount, a.cap, a.enabled = w_init, w_maint, discount, cap, enabled
        self._log(
            "CollateralParamsSet", asset=asset, w_init=w_init, w_maint=w_maint, discount=discount, cap=cap,
            enabled=enabled,
        )  # fmt: skip

    def set_collateral_price(self, asset: Any, price: int) -> None:
        """Move an asset's feed price (of the underlying for a vault share)."""
        if price <= 0:
            raise ValueError("a price must be positive (the oracle rejects it)")
        self._collateral(asset).price = price

    def set_vault_rate(self, asset: Any, live_rate: int) -> None:
        """Move a vault share's live rate (``convertToAssets`` scaled to WAD): a
        donation or a loss of the underlying vault. Nothing is stored."""
        a = self._collateral(asset)
        if not a.vault or live_rate <= 0:
            raise ValueError("set_vault_rate: a vault share and a positive rate")
        a.live_rate = live_rate

    def update_rate(self, asset: Any) -> int:
        """``manager.update_rate(asset)`` (anyone): store the bounded rate of a
        vault share (:func:`bounded_rate`) and return it; logs ``RateUpdated``.
        ``"collateral: not a vault"`` for a plain token."""
        _require(self._collateral(asset).vault, "collateral: not a vault")
        return self._store_rate(asset)

    def deposit(self, owner: Any, sub: int, amount: int, asset: Any = None) -> None:
        """Credit ``amount`` tokens (allowed while paused); ``asset`` None is the settlement token.

        A collateral asset must be listed (``"collateral: unknown asset"``),
        enabled (``"collateral: disabled"``) and stay within its cap
        (``"collateral: cap"``); a vault share's rate is stored.
        """
        _require(amount > 0, "engine: zero amount")
        if asset is None:
            self._account(owner, sub).balance += amount
            self.custody += amount
            return
        with self._atomic():
            a = self._collateral(asset)
            _require(a.enabled, "collateral: disabled")
            _require(a.total + amount <= a.cap, "collateral: cap")
            self._store_rate(asset)
            acct = self._account(owner, sub)
            acct.collateral[asset] = acct.collateral.get(asset, 0) + amount
            a.total += amount

    def withdraw(self, owner: Any, sub: int, amount: int, asset: Any = None) -> None:
        """Pay out ``amount`` tokens of the settlement token (``asset`` None:
        never below zero, ``"engine: insufficient balance"``) or of a collateral
        asset (``"collateral: insufficient balance"``; a vault share's rate is
        stored); an account with positions or a debt must then stay HEALTHY
        with the transfer margin (``"engine: unhealthy"``)."""
        _require(amount > 0, "engine: zero amount")
        with self._atomic():
            acct = self._account(owner, sub)
            if asset is None:
                _require(amount <= acct.balance, "engine: insufficient balance")
                acct.balance -= amount
                self.custody -= amount
            else:
                a = self._collateral(asset)
                self._store_rate(asset)
                self._debit_collateral(acct, asset, amount)
                a.total -= amount
            self._require_transfer_margin(owner, sub)

    def transfer_collateral(self, owner: Any, from_sub: int, to_sub: int, amount: int, asset: Any = None) -> None:
        """Move tokens between an owner's sub-accounts, with the withdrawal checks on ``from_sub``
        (the settlement token for ``asset`` None; a collateral asset's total and rate are untouched)."""
        _require(amount > 0, "engine: zero amount")
        with self._atomic():
            src = self._account(owner, from_sub)
            if asset is None:
                _require(amount <= src.balance, "engine: insufficient balance")
                src.balance -= amount
                self._account(owner, to_sub).balance += amount
            else:
                self._collateral(asset)
                self._debit_collateral(src, asset, amount)
                dst = self._account(owner, to_sub)
                dst.collateral[asset] = dst.collateral.get(asset, 0) + amount
            self._require_transfer_margin(owner, from_sub)

    def liquidate_collateral(self, liquidator: Any, owner: Any, sub: int, asset: Any, max_repay: int) -> int:
        """Repay part of ``(owner, sub)``'s settlement debt and seize ``asset``
        at the oracle price less the discount (docs/collateral.md section 6);
        return the seized token units.

        ``"collateral: zero amount"`` for ``max_repay == 0``; the account needs a
        debt (``"collateral: no debt"``) and, with positions, status LIQUIDATABLE
        or BANKRUPT (``"collateral: not liquidatable"``); then ``"collateral:
        unknown asset"``. The vault rate is stored; :func:`seize_amounts` with
        ``deficit = mul_div_up(mm_required, WAD + buffer, WAD) - equity_maint``
        (no limit without positions); ``"collateral: nothing to seize"`` when
        ``seized == 0`` or ``repaid == 0`` (as the manager: nothing is seized
        for free). The seized units move to ``liquidator``'s sub-account 0
        (logged ``CollateralLiquidated``, after a vault's ``RateUpdated``);
        the repayment is credited to the account, which then follows the
        bad-debt rule, and debited from the liquidator's sub-account 0, which
        must hold no positions and stay non-negative (``"engine: liquidator
        balance"``), in the contract's order.
        """
        _require(max_repay > 0, "collateral: zero amount")
        with self._atomic():
            acct = self._account(owner, sub)
            _require(acct.balance < 0, "collateral: no debt")
            deficit = None
            if acct.positions:
                state = self.account(owner, sub)
                _require(state.status in (LIQUIDATABLE, BANKRUPT), "collateral: not liquidatable")
                deficit = mul_div_up(state.mm_required, WAD + self.liq_params.buffer, WAD) - state.equity_maint
            a = self._collateral(asset)
            price = a.price * self._store_rate(asset) // WAD
            seized, repaid = seize_amounts(
                max_repay, -acct.balance, deficit, acct.collateral.get(asset, 0), price, a.scale,
                a.discount, a.w_maint, self.scale,
            )  # fmt: skip
            _require(seized > 0 and repaid > 0, "collateral: nothing to seize")
            self._debit_collateral(acct, asset, seized)
            keeper = self._account(liquidator, 0)
            keeper.collateral[asset] = keeper.collateral.get(asset, 0) + seized
            self._log(
                "CollateralLiquidated",
                owner=owner, sub=sub, asset=asset, liquidator=liquidator, seized=seized, repaid=repaid,
            )  # fmt: skip
            acct.balance += repaid
            self._settle_bad_debt(owner, sub, acct)
            keeper.balance -= repaid
            _require(not keeper.positions and keeper.balance >= 0, "engine: liquidator balance")
        return seized

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
            self.sample(market_id)  # a flagged market samples the valid price before valuing anything
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
            if not is_risk_increasing(size, new_size) and self.in_band(owner, sub):
                # a reduction that leaves the account in the band (section 11)
                self._log(
                    "MarginCall",
                    owner=owner, sub=sub, market=market_id, caller=owner, size_closed=0, price=price, fee=0,
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
        return self._reduce(liquidator, owner, sub, market_id, max_size, call=False)

    def margin_call(self, caller: Any, owner: Any, sub: int, market_id: int, max_size: int) -> int:
        """Close part of a position of an account in the band; return the fee (tokens).

        Risk-model section 11, in :meth:`liquidate`'s order (anyone, also while
        paused): sample a flagged market; ``"engine: no position"``; the account
        must be :meth:`in_band` (``"engine: not in band"``; never with
        ``call_buffer == 0``); accrue and settle funding; close
        :func:`margin_call_size` at ``P`` like a reduction; the fee
        :func:`call_fee_tokens`, capped by :func:`capped_penalty` on the
        equity before the call, goes in full to ``caller``'s sub-account 0
        (no insurance share). Logs ``MarginCall``.
        """
        return self._reduce(caller, owner, sub, market_id, max_size, call=True)

    def _reduce(self, caller: Any, owner: Any, sub: int, market_id: int, max_size: int, call: bool) -> int:
        """The engine's ``_reduce``: a liquidation, or with ``call`` a margin
        call; the steps of docs/engine-spec.md "Liquidation" (numbered)."""
        _require(max_size > 0, "engine: zero size")
        market = self._market(market_id)
        price = market.price
        with self._atomic():
            self.sample(market_id)
            acct = self._account(owner, sub)
            pos = acct.positions.get(market_id)
            _require(pos is not None, "engine: no position")
            assert pos is not None
            state = self.account(owner, sub)  # 1
            if call:
                _require(self.call_buffer > 0 and in_call_band(state, self.call_buffer), "engine: not in band")
            else:
                _require(state.status in (LIQUIDATABLE, BANKRUPT), "engine: not liquidatable")
            vault_before = self.vault_assets
            index = accrue(market, self.now)  # 2
            self._settle_funding(acct, pos, index)
            if call:  # 3
                q = margin_call_size(pos.size, price, market.params.min_notional, self.call_fraction, max_size)
            else:
                q = liquidation_size(
                    state, pos, in_force(market, self.now), self.liq_params, max_size, self.scale, self.now
                )
            size = pos.size  # 4
            new_size = size - sign(size) * q
            self._credit_pnl(acct, realised_pnl(size, pos.entry_price, price, q))
            self._cap_vault_payment(owner, sub, market_id, acct, vault_before)
            self._set_position(acct, market, market_id, size, new_size, pos.entry_price, index)
            if call:  # 5: the fee goes in full to the caller
                fee = call_fee_tokens(q, price, market.params.liq_fee, self.call_fee_share, self.scale)
            else:
                fee = penalty_tokens(q, price, market.params.liq_fee, self.scale)
            penalty = capped_penalty(fee, state.equity_maint, self.scale)
            acct.balance -= penalty
            reward, insurance_delta = (penalty, 0) if call else reward_split(penalty, self.liq_params)
            self.insurance += insurance_delta
            self._account(caller, 0).balance += reward
            if call:
                self._log(
                    "MarginCall",
                    owner=owner, sub=sub, market=market_id, caller=caller, size_closed=q, price=price, fee=penalty,
                )  # fmt: skip
            else:
                self._log(
                    "Liquidation",
                    owner=owner, sub=sub, market=market_id, liquidator=caller, size_closed=q,
                    price=price, penalty=penalty, reward=reward, insurance_share=insurance_delta,
                )  # fmt: skip
            self._settle_bad_debt(owner, sub, acct)  # 6
        return reward

    # ----------------------------------------------------------------- views

    def in_band(self, owner: Any, sub: int) -> bool:
        """The account is in the margin-call band now (:func:`in_call_band` with ``call_buffer``)."""
        return in_call_band(self.account(owner, sub), self.call_buffer)

    def account(self, owner: Any, sub: int) -> AccountState:
        """Margin state of ``(owner, sub)`` now (the ``account`` view)."""
        acct = self.accounts.get((owner, sub), Account())
        return account_state(
            acct.balance, acct.positions, self.markets, self.scale, self.now, self.upnl_haircut,
            collateral_values(acct.collateral, self.collaterals, self.now),
        )  # fmt: skip

    def collateral_value(self, owner: Any, sub: int) -> tuple[int, int]:
        """``(value_init, value_maint)`` of the account's collateral now (WAD USD)."""
        acct = self.accounts.get((owner, sub), Account())
        return collateral_values(acct.collateral, self.collaterals, self.now)

    def collateral_balance(self, owner: Any, sub: int, asset: Any) -> int:
        """Token units of ``asset`` held by ``(owner, sub)``."""
        acct = self.accounts.get((owner, sub))
        return 0 if acct is None else acct.collateral.get(asset, 0)

    def asset_price(self, asset: Any) -> int:
        """The views' price of one whole token (:func:`collateral_price`, not stored)."""
        return collateral_price(self._collateral(asset), self.now)

    def asset_id(self, asset: Any) -> int:
        """The listing order of ``asset``."""
        self._collateral(asset)
        return list(self.collaterals).index(asset)

    def status(self, owner: Any, sub: int) -> int:
        """The ``status`` view."""
        return self.account(owner, sub).status

    def position(self, owner: Any, sub: int, market_id: int) -> Position | None:
        """A copy of the stored position, or None."""
        acct = self.accounts.get((owner, sub))
        pos = None if acct is None else acct.positions.get(market_id)
        return None if pos is None else copy.copy(pos)

    def balance_of(self, owner: Any, sub: int, asset: Any = None) -> int:
        """Settlement balance in tokens (signed), or with ``asset`` the units of
        that collateral asset held (the engine's ``balance_of(owner, sub, asset)``)."""
        acct = self.accounts.get((owner, sub))
        if acct is None:
            return 0
        return acct.balance if asset is None else acct.collateral.get(asset, 0)

    def liquidation_price(self, owner: Any, sub: int, market_id: int) -> int:
        """The ``liquidation_price`` view (0 when none)."""
        pos = self.position(owner, sub, market_id)
        if pos is None:
            return 0
        return liquidation_price(
            self.account(owner, sub), pos, in_force(self._market(market_id), self.now), self.now
        )

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

    def _collateral(self, asset: Any) -> CollateralAsset:
        _require(asset in self.collaterals, "collateral: unknown asset")
        return self.collaterals[asset]

    def _store_rate(self, asset: Any) -> int:
        """The manager's ``_store_rate``: a vault share's bounded rate is
        stored now and logged (``RateUpdated``); returns the rate (``WAD`` for
        a plain token, nothing stored or logged)."""
        a = self.collaterals[asset]
        if not a.vault:
            return WAD
        collateral_price(a, self.now, store=True)
        self._log("RateUpdated", asset=asset, live_rate=a.live_rate, rate=a.last_rate)
        return a.last_rate

    @staticmethod
    def _debit_collateral(acct: Account, asset: Any, amount: int) -> None:
        """Take ``amount`` units of ``asset`` (``"collateral: insufficient balance"``)."""
        held = acct.collateral.get(asset, 0)
        _require(amount <= held, "collateral: insufficient balance")
        if held == amount:
            del acct.collateral[asset]
        else:
            acct.collateral[asset] = held - amount

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
        """An account without positions and without collateral, with a negative
        balance: insurance pays first, then the vault. An account that still
        holds collateral keeps its debt (docs/collateral.md section 5)."""
        if acct.positions or acct.collateral or acct.balance >= 0:
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
        """A withdrawal or transfer out: with positions or a debt the account
        must stay HEALTHY and keep ``equity_init >= mul_div_up(notional, ratio, WAD)``
        (no positions: ``equity_init >= 0``)."""
        acct = self._account(owner, sub)
        if not acct.positions and acct.balance >= 0:
            return
        state = self.account(owner, sub)
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

        Markets and collateral assets are restored in place (references to
        them stay valid); the accounts mapping is restored to copies of the
        saved accounts.
        """
        markets = copy.deepcopy(self.markets)
        collaterals = copy.deepcopy(self.collaterals)
        accounts = copy.deepcopy(self.accounts)
        scalars = (self.insurance, self.vault_assets, self.custody, len(self.events))
        try:
            yield
        except BaseException:
            for market_id, saved in markets.items():
                vars(self.markets[market_id]).update(vars(saved))
            for key, saved_asset in collaterals.items():
                vars(self.collaterals[key]).update(vars(saved_asset))
            self.accounts.clear()
            self.accounts.update(accounts)
            self.insurance, self.vault_assets, self.custody, n_events = scalars
            del self.events[n_events:]
            raise


def _require(condition: bool, reason: str) -> None:
    """``assert condition, reason`` of the contract."""
    if not condition:
        raise ModelRevert(reason)
