"""Lens-shaped snapshots of the model simulator (``margin_engine.model.Engine``).

The liquidator logic reads ``MarginLens`` structs; these helpers build the same
structs from the simulator's state, as attribute objects (like Ape's struct
results) or as plain tuples in the structs' field order, so the bot's logic is
tested against the reference ledger without a chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from margin_engine.model import Engine, Market

Struct = SimpleNamespace


def market_params(market: Market) -> Struct:
    p = market.params
    return Struct(
        imr=p.imr, mmr=p.mmr, fee_rate=p.fee_rate, liq_fee=p.liq_fee, max_oi=p.max_oi,
        min_notional=p.min_notional, funding_rate_max=p.funding_rate_max,
    )  # fmt: skip


def market_snapshot(sim: Engine, market_id: int, price_ok: bool = True) -> Struct:
    """``MarketSnapshot`` with the STORED funding index and time; price 0 when invalid."""
    m = sim.markets[market_id]
    return Struct(
        market=market_id, price=m.price if price_ok else 0, price_ok=price_ok, params=market_params(m),
        long_oi=m.long_oi, short_oi=m.short_oi, funding_index=m.funding_index,
        last_funding_time=m.last_funding_time,
    )  # fmt: skip


def markets_snapshot(sim: Engine, invalid: Iterable[int] = ()) -> list[Struct]:
    """``lens.markets()``; markets in ``invalid`` report an invalid price."""
    bad = set(invalid)
    return [market_snapshot(sim, m, m not in bad) for m in sorted(sim.markets)]


def account_snapshot(sim: Engine, owner: Any, sub: int = 0, invalid: Iterable[int] = ()) -> Struct:
    """``AccountSnapshot`` of ``(owner, sub)`` with the engine's ``account()`` answer."""
    acct = sim.accounts.get((owner, sub))
    positions = {} if acct is None else acct.positions
    state = sim.account(owner, sub)
    prices_ok = not (set(invalid) & set(positions))
    return Struct(
        owner=owner,
        sub=sub,
        balance=sim.balance_of(owner, sub),
        isolated=False if acct is None else acct.isolated,
        ok=True,
        state=Struct(
            equity_init=state.equity_init, equity_maint=state.equity_maint, im_required=state.im_required,
            mm_required=state.mm_required, status=state.status, prices_ok=prices_ok, positions=state.positions,
        ),  # fmt: skip
        positions=[
            Struct(market=m, size=p.size, entry_price=p.entry_price, funding_index=p.funding_index)
            for m, p in sorted(positions.items())
        ],
    )


def accounts_snapshot(sim: Engine, keys: Iterable[tuple[Any, int]], invalid: Iterable[int] = ()) -> list[Struct]:
    """``lens.accounts(keys)``."""
    bad = list(invalid)
    return [account_snapshot(sim, owner, sub, bad) for owner, sub in keys]


def active_keys(sim: Engine) -> list[tuple[Any, int]]:
    """The simulator's accounts with open positions (the engine's on-chain list)."""
    return [key for key, acct in sim.accounts.items() if acct.positions]


def active_accounts(sim: Engine, start: int, count: int) -> tuple[int, list[Struct]]:
    """``lens.active_accounts(start, count)`` -> ``(total, page)``."""
    keys = active_keys(sim)
    return len(keys), accounts_snapshot(sim, keys[start : start + count])


def as_tuple(struct: Any) -> Any:
    """A snapshot as nested plain tuples in field order (what a raw ABI decode gives)."""
    if isinstance(struct, Struct):
        return tuple(as_tuple(v) for v in vars(struct).values())
    if isinstance(struct, list):
        return [as_tuple(v) for v in struct]
    return struct


def as_dict(struct: Any) -> Any:
    """A snapshot as nested dicts."""
    if isinstance(struct, Struct):
        return {k: as_dict(v) for k, v in vars(struct).items()}
    if isinstance(struct, list):
        return [as_dict(v) for v in struct]
    return struct
