"""Lens-shaped snapshots of the model simulator (``margin_engine.model.Engine``).

The liquidator logic reads ``MarginLens`` structs; these helpers build the same
structs from the simulator's state, as attribute objects (like Ape's struct
results) or as plain tuples in the structs' field order, so the bot's logic is
tested against the reference ledger without a chain.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from margin_engine.model import BANKRUPT, LIQUIDATABLE, RISK_BIT, Engine, Market, ModelRevert, base_rates

Struct = SimpleNamespace


def market_params(market: Market, now: int) -> Struct:
    """``MarketParams`` as the lens gives them: ``imr`` and ``mmr`` are the base
    rates in force (``RiskModel.base_rates`` for a flagged market: volatility
    and MM ramps included, tiers not)."""
    p = market.params
    imr, mmr = base_rates(market, now)
    return Struct(
        imr=imr, mmr=mmr, fee_rate=p.fee_rate, liq_fee=p.liq_fee, max_oi=p.max_oi,
        min_notional=p.min_notional, funding_rate_max=p.funding_rate_max,
    )  # fmt: skip


def market_snapshot(sim: Engine, market_id: int, price_ok: bool = True) -> Struct:
    """``MarketSnapshot`` with the STORED funding index and time; price 0 when invalid."""
    m = sim.markets[market_id]
    return Struct(
        market=market_id, price=m.price if price_ok else 0, price_ok=price_ok, params=market_params(m, sim.now),
        long_oi=m.long_oi, short_oi=m.short_oi, funding_index=m.funding_index,
        last_funding_time=m.last_funding_time,
    )  # fmt: skip


def market_words(sim: Engine, market_id: int) -> tuple[int, ...]:
    """``engine.market_words(m)``: only the rates word is filled (imr with
    ``RISK_BIT`` when the market uses the risk model); the bot reads nothing else."""
    m = sim.markets[market_id]
    p = m.params
    rates = p.imr | (RISK_BIT if m.risk else 0) | p.mmr << 64 | p.fee_rate << 128 | p.liq_fee << 192
    return (0, 0, rates, 0, 0, 0)


def volatility(sim: Engine, market_id: int) -> tuple[int, ...]:
    """``risk.volatility(m)``: (var, sigma (0 here), anchor price, next sample
    time, im, mm in force (0 here), mm target (0 here), ramp end); zeros
    without volatility. Next sample time: 0 before the first sample of a
    series, else the start of the epoch after the anchor's."""
    m = sim.markets[market_id]
    if m.vol_params is None or m.vol_state is None:
        return (0,) * 8
    state = m.vol_state
    next_time = 0 if state.anchor_price == 0 else (state.anchor_epoch + 1) * m.vol_params.epoch
    return (state.var, 0, state.anchor_price, next_time, m.vol_rates[0], 0, 0, m.vol_rates[4])


def quote_liquidation(sim: Engine, owner: Any, sub: int, market_id: int) -> Struct:
    """``lens.quote_liquidation(owner, sub, market)``: the liquidation of the
    whole position run in a copy of the simulator (equal to the lens's view
    when no volatility sample is due: the engine samples first, the lens
    does not); all zero when the account is not liquidatable."""
    zero = Struct(liquidatable=False, size=0, price=0, penalty=0, reward=0, insurance_share=0)
    if sim.status(owner, sub) not in (LIQUIDATABLE, BANKRUPT):
        return zero
    acct = sim.accounts.get((owner, sub))
    pos = None if acct is None else acct.positions.get(market_id)
    if pos is None:
        return Struct(liquidatable=True, size=0, price=0, penalty=0, reward=0, insurance_share=0)
    trial = copy.deepcopy(sim)
    try:
        trial.liquidate("0x" + "ee" * 20, owner, sub, market_id, abs(pos.size))
    except ModelRevert:
        return zero
    _, fields = next(e for e in reversed(trial.events) if e[0] == "Liquidation")
    return Struct(
        liquidatable=True, size=fields["size_closed"], price=fields["price"], penalty=fields["penalty"],
        reward=fields["reward"], insurance_share=fields["insurance_share"],
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
