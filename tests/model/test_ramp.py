"""Ramped maintenance rates in the reference model (``mmr_in_force``,
``Engine.set_market_params``), with the configurator's rules: a change moves
mmr by at most 5 points and never above the imr in force."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from margin_engine.model import (
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    WAD,
    Engine,
    MarketParams,
    mmr_in_force,
)

DAY = 86_400
BASE = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=WAD // 1000, liq_fee=WAD // 50,
    max_oi=10**30, min_notional=10 * WAD, funding_rate_max=0,
)  # fmt: skip


def engine_with_long(collateral: int, size: int, price: int) -> Engine:
    engine = Engine(token_decimals=6, now=1_000)
    engine.add_market(BASE, price)
    engine.vault_deposit(10**15)
    engine.deposit("trader", 0, collateral)
    engine.modify_position("trader", 0, 0, size, 2**255)
    return engine


def test_mmr_in_force__linear_rounded_down_then_the_new_rate() -> None:
    engine = engine_with_long(10_000 * 10**6, WAD // 10, 60_000 * WAD)
    engine.set_market_params(0, MarketParams(**{**vars(BASE), "imr": WAD * 15 // 100, "mmr": WAD // 10}))
    market = engine.markets[0]
    assert market.mm_ramp == (WAD // 20, WAD // 10, 1_000, 1_000 + DAY)
    assert mmr_in_force(market, 1_000) == WAD // 20
    assert mmr_in_force(market, 1_000 + DAY // 3) == WAD // 20 + (WAD // 20) * (DAY // 3) // DAY
    assert mmr_in_force(market, 1_000 + DAY) == WAD // 10
    # a lower rate applies at once and ends the ramp
    engine.set_market_params(0, MarketParams(**{**vars(BASE), "imr": WAD * 15 // 100, "mmr": WAD // 25}))
    assert (market.mm_ramp, mmr_in_force(market, 1_000)) == (None, WAD // 25)


@settings(max_examples=200, deadline=None)
@given(
    leverage_bps=st.integers(10_000, 100_000),  # 1x .. 10x (IM 10 %: at most 10x)
    step_bps=st.integers(1, 500),
    imr_step_bps=st.integers(0, 500),
    points=st.lists(st.integers(0, 2 * DAY), min_size=1, max_size=12),
    collateral=st.integers(100, 1_000_000),
)
def test_ramp__never_makes_a_healthy_frozen_price_account_liquidatable(
    leverage_bps: int, step_bps: int, imr_step_bps: int, points: list[int], collateral: int
) -> None:
    price = 60_000 * WAD
    notional = collateral * WAD * leverage_bps // 10_000 * 99 // 100  # leaves room for the fee
    size = notional * WAD // price
    engine = engine_with_long(collateral * 10**6, size, price)
    assert engine.status("trader", 0) == HEALTHY
    # The largest rise the configurator allows: +5 points at most, never above the imr in force.
    new_mmr = min(BASE.mmr + step_bps * WAD // 10_000, BASE.imr)
    new_imr = BASE.imr + imr_step_bps * WAD // 10_000
    engine.set_market_params(0, MarketParams(**{**vars(BASE), "imr": new_imr, "mmr": new_mmr}))
    start = engine.now
    for t in sorted(points):
        engine.now = start + t
        assert engine.status("trader", 0) in (HEALTHY, MARGIN_CALL), (t, new_mmr)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, DAY), b=st.integers(0, DAY), rise_bps=st.integers(1, 500))
def test_mmr_in_force__monotone_in_time_between_old_and_new(a: int, b: int, rise_bps: int) -> None:
    engine = engine_with_long(10_000 * 10**6, WAD // 10, 60_000 * WAD)
    new = BASE.mmr + rise_bps * WAD // 10_000
    engine.set_market_params(0, MarketParams(**{**vars(BASE), "imr": max(BASE.imr, new + 1), "mmr": new}))
    market = engine.markets[0]
    early, late = sorted((a, b))
    low, high = mmr_in_force(market, 1_000 + early), mmr_in_force(market, 1_000 + late)
    assert BASE.mmr <= low <= high <= new


def test_ramp__an_account_between_the_two_maintenance_levels_is_liquidatable_only_later() -> None:
    engine = engine_with_long(6_860 * 10**6, WAD, 60_000 * WAD)  # E 6,800
    engine.set_price(0, 57_800 * WAD)  # E 4,600
    engine.set_market_params(0, MarketParams(**{**vars(BASE), "imr": WAD * 15 // 100, "mmr": WAD // 10}))
    engine.now += DAY // 2
    assert engine.status("trader", 0) == MARGIN_CALL
    engine.now += DAY // 4
    assert engine.status("trader", 0) == LIQUIDATABLE
