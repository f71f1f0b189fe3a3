"""Funding over time with skewed open interest: longs pay, shorts receive,
the vault keeps the difference, to the token unit and the index wei.

Every transaction that touches the market is pinned to a timestamp, and the
expected numbers are checked twice: written out from the spec's formulas, and
replayed on the reference model (`margin_engine.model.Engine`).
"""

from __future__ import annotations

from margin_engine.model import Engine, LiquidationParams, MarketParams

WAD = 10**18
USDC = 10**6
BTC = 0
HOURS_8 = 8 * 3600
# Default funding_rate_max: 0.05 % per hour at full skew, per second, floored.
RATE_MAX = WAD * 5 // 10_000 // 3600  # 138,888,888,888


def _model_replay(lens) -> Engine:
    """The same flow on the reference model, market 0 configured like the engine's."""
    params = lens.market_params(BTC)
    model = Engine(token_decimals=6, liq_params=LiquidationParams(WAD // 10, WAD // 2, USDC, 10_000 * USDC), now=0)
    model.add_market(MarketParams(*params), 60_000 * WAD)
    model.vault_deposit(1_000_000 * USDC)
    model.deposit("long", 0, 20_000 * USDC)
    model.deposit("short", 0, 10_000 * USDC)
    model.now = 10
    model.modify_position("long", 0, BTC, 2 * WAD, 2**255)
    model.now = 11
    model.modify_position("short", 0, BTC, -WAD, 0)
    model.now = 11 + HOURS_8
    model.close_position("long", 0, BTC, 0)
    model.now = 12 + HOURS_8
    model.close_position("short", 0, BTC, 2**255)
    return model


def test_funding__longs_outweigh_shorts_for_8_hours__longs_pay_shorts_receive_vault_keeps_difference(
    chain, engine, lens, usdc, trader, other_trader, fund, set_price, clock, assert_conserved
):
    assert lens.market_params(BTC).funding_rate_max == RATE_MAX
    fund(trader, 20_000 * USDC)
    fund(other_trader, 10_000 * USDC)

    clock.at(-1)
    set_price("BTC", 60_000)  # a round fresh at t0
    # t0: 2 BTC long; no open interest before, so the index stays 0.
    t0 = clock.at(0)
    engine.modify_position(trader, 0, BTC, 2 * WAD, 2**255, sender=trader)
    # t0 + 1: 1 BTC short. Accrued first over 1 s at full long skew:
    # rate = RATE_MAX, index += 60,000e18 x rate x 1 / 1e18.
    clock.at(1)
    engine.modify_position(other_trader, 0, BTC, -WAD, 0, sender=other_trader)
    i1 = 60_000 * RATE_MAX  # 8,333,333,333,280,000
    state = lens.market_state(BTC)
    assert (state.long_oi, state.short_oi, state.funding_index, state.last_funding_time) == (
        2 * WAD,
        WAD,
        i1,
        t0 + 1,
    )
    assert engine.position(other_trader, 0, BTC).funding_index == i1

    # Skew 1/3: rate = floor(RATE_MAX x (2 - 1) / 3) = 46,296,296,296 per second.
    rate = RATE_MAX // 3
    # Half way (4 h), read through the views (the feed refreshed on the way).
    clock.at(1 + 4 * 3600)
    set_price("BTC", 60_000)
    mid = i1 + 60_000 * rate * 4 * 3600  # + 39,999,999,999,744,000,000
    assert engine.position(trader, 0, BTC).funding_owed == 2 * mid
    assert engine.position(other_trader, 0, BTC).funding_owed == -(mid - i1)
    assert engine.position(trader, 0, BTC).unrealized_pnl == -2 * mid

    # 8 hours after the short opened, the long closes: funding settled in
    # tokens rounded up, ceil(ceil(2e18 x i2 / 1e18) / 1e12) = 160.016667 USDC.
    clock.at(HOURS_8)
    set_price("BTC", 60_000)
    clock.at(1 + HOURS_8)
    receipt = engine.close_position(trader, 0, BTC, 0, sender=trader)
    i2 = i1 + 60_000 * rate * HOURS_8
    assert i2 == 80_008_333_332_821_280_000
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=trader,
            sub=0,
            market=BTC,
            size_delta=-2 * WAD,
            size=0,
            entry_price=0,
            price=60_000 * WAD,
            fee=120 * USDC,
            realized_pnl=0,
            funding_paid=160_016_667,
        )
    ]
    assert lens.market_state(BTC).funding_index == i2

    # One second later the short closes; only shorts are left, so the index
    # falls by 60,000 x RATE_MAX. The short receives floor((i3 - i1) / 1e12).
    clock.at(2 + HOURS_8)
    receipt = engine.close_position(other_trader, 0, BTC, 2**255, sender=other_trader)
    i3 = i2 - 60_000 * RATE_MAX
    assert i3 == 79_999_999_999_488_000_000
    assert receipt.events.filter(engine.PositionModified) == [
        engine.PositionModified(
            owner=other_trader,
            sub=0,
            market=BTC,
            size_delta=WAD,
            size=0,
            entry_price=0,
            price=60_000 * WAD,
            fee=60 * USDC,
            realized_pnl=0,
            funding_paid=-79_991_666,
        )
    ]
    state = lens.market_state(BTC)
    assert (state.long_oi, state.short_oi, state.funding_index, state.last_funding_time) == (0, 0, i3, t0 + 2 + HOURS_8)

    # Longs paid 160.016667, shorts received 79.991666: the vault keeps 80.025001.
    assert engine.balance_of(trader, 0, usdc) == 20_000 * USDC - 240 * USDC - 160_016_667 == 19_599_983_333
    assert engine.balance_of(other_trader, 0, usdc) == 10_000 * USDC - 120 * USDC + 79_991_666 == 9_959_991_666
    assert engine.vault_assets() == 1_000_000 * USDC + 360 * USDC + 80_025_001
    assert_conserved((trader, 0), (other_trader, 0))

    # The reference model agrees on every amount and on the index.
    model = _model_replay(lens)
    assert [fields["funding_paid"] for name, fields in model.events if name == "PositionModified"] == [
        0,
        0,
        160_016_667,
        -79_991_666,
    ]
    assert model.balance_of("long", 0) == engine.balance_of(trader, 0, usdc)
    assert model.balance_of("short", 0) == engine.balance_of(other_trader, 0, usdc)
    assert model.vault_assets == engine.vault_assets()
    assert model.markets[BTC].funding_index == i3
