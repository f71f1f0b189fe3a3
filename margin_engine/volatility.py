"""Integer reference model of the volatility margin (the spec in code).

Each market keeps an exponentially weighted estimate of its oracle price's
variance and derives its base IM and MM rates from it. ``docs/risk-model.md``
is the written spec; this module implements it formula by formula, rounding
included, so that the Vyper implementation can be compared to it to the wei.
Python integers only (no float, no ``Decimal``) except in
:func:`decay_from_half_life`, an off-chain helper that computes a parameter.

Units: ``WAD = 10**18`` fixed point. ``var`` is a variance **per second**
(WAD; a daily volatility of 5% is ``var = 0.05**2 / 86_400`` WAD), so it does
not depend on how often the market is sampled.

State per market (:class:`VolState`): ``var``, ``anchor_price`` (the price at
the last sample, 0 before the first one) and ``anchor_epoch`` (the epoch index
``now // epoch`` of that sample).

- :func:`update` samples the price at most once per epoch (epochs are aligned
  to multiples of ``epoch`` seconds): a second call in the same epoch returns
  the state unchanged, so splitting updates cannot move the estimate.
- :func:`im_rate` is ``clamp(z * sqrt(var * horizon), floor, cap)``;
  :func:`mm_rate` is ``im_rate * mm_fraction``.

Every step names its rounding. Requirements round up: the variance is never
below the exact rational EWMA of the sampled prices, and the rates are never
below their exact values (see ``test_volatility.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Context, Decimal
from math import isqrt

from margin_engine.model import WAD, ceil_div, mul_div_down, mul_div_up

__all__ = [
    "MAX_CAP",
    "MAX_DECAY",
    "MAX_EPOCH",
    "MAX_HORIZON",
    "MAX_MM_FRACTION",
    "MAX_PRICE",
    "MAX_RETURN",
    "MAX_VAR",
    "MAX_Z",
    "MIN_DECAY",
    "MIN_EPOCH",
    "MIN_FLOOR",
    "MIN_HORIZON",
    "MIN_MM_FRACTION",
    "MIN_Z",
    "WAD",
    "VolParams",
    "VolState",
    "decay_from_half_life",
    "im_rate",
    "mm_rate",
    "period_return_up",
    "seed_var",
    "sigma_horizon",
    "sqrt_up",
    "update",
    "wad_pow",
]

# --------------------------------------------------------------------------
#                        Hard bounds of the parameters
# --------------------------------------------------------------------------

MIN_EPOCH: int = 300
"""Shortest sampling epoch (5 minutes): shorter epochs measure oracle noise."""
MAX_EPOCH: int = 86_400
"""Longest sampling epoch (1 day): longer ones react too late to a crash."""

MIN_DECAY: int = WAD // 2
"""Lowest per-epoch retention: a half-life of at least one epoch."""
MAX_DECAY: int = WAD - WAD // 100_000
"""Highest per-epoch retention (1 - 1e-5: a half-life below 69,315 epochs); ``WAD`` would freeze the estimate."""

MIN_Z: int = WAD
"""Lowest multiplier of the horizon's standard deviation (1.0)."""
MAX_Z: int = 10 * WAD
"""Highest multiplier (10.0)."""

MIN_HORIZON: int = 3_600
"""Shortest liquidation horizon (1 hour)."""
MAX_HORIZON: int = 30 * 86_400
"""Longest liquidation horizon (30 days)."""

MIN_FLOOR: int = WAD // 200
"""Lowest IM floor (0.5%: at most 200x leverage)."""
MAX_CAP: int = WAD
"""Highest IM cap (100%: 1x, fully collateralised)."""

MIN_MM_FRACTION: int = WAD // 10
"""Lowest MM rate as a fraction of the IM rate (10%)."""
MAX_MM_FRACTION: int = 9 * WAD // 10
"""Highest MM fraction (90%): MM stays strictly below IM."""

MAX_PRICE: int = 2**128 - 1
"""Highest price the update accepts (WAD; 3.4e20 USD per unit). A market's oracle ``max_price`` must not exceed it."""
MAX_RETURN: int = 10 * WAD
"""Clamp on a sampled return's magnitude (1,000%): keeps every product far inside 256 bits."""
MAX_VAR: int = -(-(MAX_RETURN * MAX_RETURN) // (WAD * MIN_EPOCH))
"""Largest variance a sample can produce, ``ceil(MAX_RETURN**2 / (WAD * MIN_EPOCH))`` (~3.3e17); bounds the seed."""

MAX_EPOCH_INDEX: int = 2**64 - 1
"""Epoch indexes (``now // epoch``) stay below 2**64 (block timestamps do), so ``wad_pow`` loops at most 64 times."""


# --------------------------------------------------------------------------
#                              Parameters, state
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VolParams:
    """A market's volatility-margin parameters; construction checks the hard bounds.

    ``epoch`` and ``horizon`` are seconds; ``decay``, ``z``, ``floor``, ``cap``
    and ``mm_fraction`` are WAD.
    """

    epoch: int
    """Sampling period (s); samples are aligned to multiples of it."""
    decay: int
    """Per-epoch retention ``d`` of the old estimate (WAD, ``< WAD``)."""
    z: int
    """Multiplier of the horizon's standard deviation (WAD)."""
    horizon: int
    """Liquidation horizon (s) over which IM must cover a move."""
    floor: int
    """Lowest base IM rate (WAD)."""
    cap: int
    """Highest base IM rate (WAD)."""
    mm_fraction: int
    """MM rate as a fraction of the IM rate (WAD)."""

    def __post_init__(self) -> None:
        checks = [
            ("epoch", self.epoch, MIN_EPOCH, MAX_EPOCH),
            ("decay", self.decay, MIN_DECAY, MAX_DECAY),
            ("z", self.z, MIN_Z, MAX_Z),
            ("horizon", self.horizon, MIN_HORIZON, MAX_HORIZON),
            ("floor", self.floor, MIN_FLOOR, self.cap),
            ("cap", self.cap, self.floor, MAX_CAP),
            ("mm_fraction", self.mm_fraction, MIN_MM_FRACTION, MAX_MM_FRACTION),
        ]
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"volatility: {name}={value} outside [{low}, {high}]")


@dataclass(frozen=True)
class VolState:
    """One market's estimator state (immutable: :func:`update` returns a new one)."""

    var: int
    """Variance per second (WAD)."""
    anchor_price: int = 0
    """Price of the last sample (WAD); 0 before the first sample."""
    anchor_epoch: int = 0
    """Epoch index ``now // epoch`` of the last sample."""

    def __post_init__(self) -> None:
        if not 0 <= self.var <= MAX_VAR:
            raise ValueError(f"volatility: var={self.var} outside [0, {MAX_VAR}]")
        if not 0 <= self.anchor_price <= MAX_PRICE:
            raise ValueError(f"volatility: anchor_price={self.anchor_price} outside [0, {MAX_PRICE}]")
        if not 0 <= self.anchor_epoch <= MAX_EPOCH_INDEX:
            raise ValueError(f"volatility: anchor_epoch={self.anchor_epoch} outside [0, 2**64)")


# --------------------------------------------------------------------------
#                              Integer helpers
# --------------------------------------------------------------------------


def sqrt_up(a: int) -> int:
    """``ceil(sqrt(a))`` for ``a >= 0``: ``isqrt(a)``, plus one unless ``a`` is a perfect square."""
    root = isqrt(a)
    return root + (root * root < a)


def wad_pow(base: int, n: int, round_up: bool) -> int:
    """``(base / WAD) ** n`` in WAD, by squaring, every product rounded the same way.

    Needs ``0 <= base <= WAD`` and ``0 <= n < 2**64`` (at most 64 rounds).
    Rounded down, the result is below the exact power by at most ``n - 1`` wei
    (a product of ``n`` factors has ``n - 1`` roundings, each losing < 1 wei,
    and factors <= 1 never enlarge an earlier loss); rounded up, above it by at
    most ``n - 1`` wei plus a term below ``n**2 / WAD``. A product by the
    initial ``WAD`` is exact, so ``wad_pow(b, 1, _) == b``.
    """
    if not 0 <= base <= WAD or not 0 <= n <= MAX_EPOCH_INDEX:
        raise ValueError(f"wad_pow({base}, {n}): needs 0 <= base <= WAD and 0 <= n < 2**64")
    mul = mul_div_up if round_up else mul_div_down
    result = WAD
    while n > 0:
        if n & 1:
            result = mul(result, base, WAD)
        n >>= 1
        if n > 0:
            base = mul(base, base, WAD)
    return result


def period_return_up(anchor: int, price: int) -> int:
    """``|price - anchor| / anchor`` in WAD, rounded up, clamped at ``MAX_RETURN``.

    ``min(ceil(|price - anchor| * WAD / anchor), MAX_RETURN)``; ``anchor > 0``.
    """
    return min(mul_div_up(abs(price - anchor), WAD, anchor), MAX_RETURN)


# --------------------------------------------------------------------------
#                                 Estimator
# --------------------------------------------------------------------------


def update(state: VolState, params: VolParams, price: int, now: int) -> VolState:
    """Sample ``price`` at time ``now`` (s): the estimator's only writer.

    ``k = now // epoch`` (the epoch index, rounded down):

    - no anchor yet (``anchor_price == 0``): anchor at ``(price, k)``, ``var`` kept;
    - ``k <= anchor_epoch``: unchanged (at most one sample per epoch);
    - else, with ``n = k - anchor_epoch`` elapsed epochs::

          r    = min(ceil(|price - anchor| * WAD / anchor), MAX_RETURN)   # up
          x    = ceil(r * r / (WAD * n * epoch))                          # up: variance per second
          D    = wad_pow(decay, n, round_up = x < var)                    # toward the larger result
          var' = ceil((var * D + x * (WAD - D)) / WAD)                    # up

      then ``anchor = (price, k)``. ``var'`` lies between ``x`` and ``var``;
      ``D`` rounds down when the new observation is the larger one (its weight
      ``1 - D`` rounds up) and up when the old estimate is, so ``var'`` is
      never below the exact ``var * d**n + x * (1 - d**n)``.
    """
    if not 0 < price <= MAX_PRICE:
        raise ValueError(f"volatility: price={price} outside (0, {MAX_PRICE}]")
    if now < 0:
        raise ValueError(f"volatility: now={now} < 0")
    k = now // params.epoch
    if k > MAX_EPOCH_INDEX:
        raise ValueError(f"volatility: epoch index {k} >= 2**64")
    if state.anchor_price == 0:
        return replace(state, anchor_price=price, anchor_epoch=k)
    if k <= state.anchor_epoch:
        return state
    n = k - state.anchor_epoch
    r = period_return_up(state.anchor_price, price)
    x = mul_div_up(r, r, WAD * n * params.epoch)
    retention = wad_pow(params.decay, n, round_up=x < state.var)
    var = ceil_div(state.var * retention + x * (WAD - retention), WAD)
    return VolState(var=var, anchor_price=price, anchor_epoch=k)


# --------------------------------------------------------------------------
#                                   Rates
# --------------------------------------------------------------------------


def sigma_horizon(var: int, horizon: int) -> int:
    """Standard deviation over ``horizon`` seconds (WAD): ``ceil(sqrt(var * horizon * WAD))``."""
    return sqrt_up(var * horizon * WAD)


def im_rate(state: VolState, params: VolParams) -> int:
    """Base IM rate (WAD): ``clamp(ceil(z * sigma_horizon / WAD), floor, cap)``."""
    base = mul_div_up(params.z, sigma_horizon(state.var, params.horizon), WAD)
    return min(max(base, params.floor), params.cap)


def mm_rate(state: VolState, params: VolParams) -> int:
    """Target MM rate (WAD): ``ceil(im_rate * mm_fraction / WAD)``, strictly below the IM rate."""
    return mul_div_up(im_rate(state, params), params.mm_fraction, WAD)


# --------------------------------------------------------------------------
#                       Parameter helpers (off-chain)
# --------------------------------------------------------------------------


def seed_var(params: VolParams, rate: int) -> int:
    """Variance whose base IM rate is ``rate`` (WAD): ``ceil(rate**2 * WAD / (z**2 * horizon))``.

    A listing seeds ``var`` with it (e.g. ``rate = cap``: a new market starts
    at the cap and decays toward its measured volatility). Clamped at ``MAX_VAR``.
    """
    if rate < 0:
        raise ValueError(f"seed_var: rate={rate} < 0")
    return min(mul_div_up(rate * rate, WAD, params.z * params.z * params.horizon), MAX_VAR)


def decay_from_half_life(half_life_epochs: int) -> int:
    """Per-epoch retention ``floor(WAD * 2 ** (-1 / h))`` for a half-life of ``h`` epochs.

    Off-chain helper (the risk manager sets the integer). Computed with 60
    significant digits, then checked exactly: the result ``y`` is the largest
    integer with ``2 * y**h <= WAD**h``. A half-life of ``h`` days at a daily
    epoch is ``24 * h`` epochs at an hourly one.
    """
    h = half_life_epochs
    if not 1 <= h <= 69_314:
        raise ValueError(f"decay_from_half_life: {h} epochs outside [1, 69314]")
    ctx = Context(prec=60)
    exact = ctx.exp(ctx.divide(-ctx.ln(Decimal(2)), Decimal(h)))
    y = int(ctx.multiply(exact, Decimal(WAD)))  # int() truncates: floor of a positive value
    target = WAD**h
    while 2 * y**h > target:
        y -= 1
    while 2 * (y + 1) ** h <= target:
        y += 1
    return y
