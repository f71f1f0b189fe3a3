"""`MarginEngine.margin_call` and the margin-call band (docs/risk-model.md
section 11) against the reference model (`Engine.margin_call`), to the wei.

Default system (funding off): ETH (market 1) at 3,000, imr 10 %, mmr 5 %,
fee 0.1 %, liq_fee 2 %, min_notional 10 USD; 6-decimal USDC. The band here:
call_buffer 50 %, fee share 25 % (a fee of 0.5 % of the closed notional),
call_fraction 20 %.

The base scenario: the trader deposits 3,100 USDC and buys 10 ETH at 3,000
(fee 30, balance 3,070). At 2,880 its equity is 1,870 against MM 1,440,
band top 2,160 and IM 2,880: in the band.
"""

from __future__ import annotations

import pytest

from margin_engine.model import in_call_band, mul_div_up
from margin_engine.volatility import seed_var

# The lock-step mirror of tests/unit/risk/conftest.py (pytest puts tests/unit on sys.path).
from risk.conftest import HOUR, VOL, Mirror, addr, answer

from .conftest import BTC, ETH, WAD

USDC = 10**6
UINT_MAX = 2**256 - 1
HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
BUFFER, SHARE, FRACTION = WAD // 2, WAD // 4, WAD // 5


@pytest.fixture
def mirror(ctx, chain) -> Mirror:
    m = Mirror(ctx.system, ctx.lens, chain, ctx.admin, ctx.risk_manager, ctx.guardian)
    m.at(m.head + 10)
    m.set_call_params(BUFFER, SHARE, FRACTION)
    m.set_price(ETH, 3_000)
    m.set_price(BTC, 60_000)
    return m


def in_band_long(mirror: Mirror, who, deposit: int = 3_100 * USDC, size: int = 10 * WAD, price: int = 2_880):
    """`who` buys `size` ETH at 3,000 with `deposit` token units; ETH then trades at `price`."""
    mirror.deposit(who, deposit)
    mirror.trade(who, ETH, size)
    mirror.set_price(ETH, price)
    return mirror.assert_account(who)


def call_event(mirror: Mirror, receipt) -> tuple:
    [e] = receipt.events.filter(mirror.engine.MarginCall)
    return (e.owner, e.sub, e.market, e.caller, e.size_closed, e.price, e.fee)


def model_call_event(mirror: Mirror) -> tuple:
    e = mirror.model_events("MarginCall")[-1]
    return (e["owner"], e["sub"], e["market"], e["caller"], e["size_closed"], e["price"], e["fee"])


def bottom_of_band(mirror: Mirror, who, market: int, high_usd: int) -> int:
    """The lowest 8-decimal feed answer (below `high_usd`) at which `who`'s long
    is not liquidatable, from the model: equity just above MM."""
    market_state = mirror.model.markets[market]
    saved = market_state.price
    lo, hi = 1, answer(high_usd)  # liquidatable at lo, not at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        market_state.price = mid * 10**10
        if mirror.model.account(addr(who), 0).status >= LIQUIDATABLE:
            lo = mid
        else:
            hi = mid
    market_state.price = saved
    return hi


# --------------------------------------------------------------------------
#                                Happy path
# --------------------------------------------------------------------------


def test_margin_call__in_band__closes_the_fraction_fee_to_the_caller_exact(mirror, trader, liquidator):
    state = in_band_long(mirror, trader)
    assert (state.equity_maint, state.mm_required, state.status) == (1_870 * WAD, 1_440 * WAD, MARGIN_CALL)
    insurance = mirror.engine.insurance_fund()
    caller_before = mirror.engine.balance_of(liquidator, 0, mirror.token)
    returned = mirror.engine.margin_call.call(trader, 0, ETH, UINT_MAX, sender=liquidator)

    receipt, fee = mirror.margin_call(liquidator, trader, ETH, UINT_MAX)

    # q = 20 % of 10 ETH; fee = 2 x 2,880 x (2 % x 25 %) = 28.8 USDC
    assert fee == 28_800_000
    assert call_event(mirror, receipt) == (
        addr(trader), 0, ETH, addr(liquidator), 2 * WAD, 2_880 * WAD, fee,
    ) == model_call_event(mirror)  # fmt: skip
    assert returned == fee
    assert mirror.engine.balance_of(liquidator, 0, mirror.token) == caller_before + fee
    assert mirror.engine.insurance_fund() == insurance  # no insurance share
    after = mirror.assert_account(trader)
    assert mirror.engine.position(trader, 0, ETH).size == 8 * WAD
    # 3,070 - 240 realised - 28.8 = 2,801.2 USDC; E = 2,801.2 - 960 = 1,841.2 vs MM 1,152
    assert mirror.engine.balance_of(trader, 0, mirror.token) == 2_801_200_000
    assert (after.equity_maint, after.mm_required, after.status) == (1_841_200_000 * 10**12, 1_152 * WAD, MARGIN_CALL)
    assert mirror.engine.balance_of(liquidator, 0, mirror.token) == mirror.model.balance_of(addr(liquidator), 0)
    mirror.assert_ledgers()
    # above the band now (1,841.2 >= 1.5 x 1,152 = 1,728): no second call
    mirror.expect_revert(
        "engine: not in band",
        lambda: mirror.engine.margin_call(trader, 0, ETH, UINT_MAX, sender=liquidator),
        lambda: mirror.model.margin_call(addr(liquidator), addr(trader), 0, ETH, UINT_MAX),
    )


def test_margin_call__tiered_volatility_market__equals_the_model(mirror, trader, liquidator):
    mirror.at((mirror.head // HOUR + 1) * HOUR + 60)  # everything below within one epoch
    mirror.set_price(BTC, 60_000)
    mirror.set_volatility(BTC, VOL, seed_var(VOL, 12 * WAD // 100))  # base 12 % / 6 %
    mirror.set_tiers(BTC, [50_000, 200_000], [200, 500])  # 12 %, 24 %, 60 % (MM 6 %, 12 %, 30 %)
    mirror.update_volatility(BTC, liquidator)
    mirror.deposit(trader, 70_000 * USDC)
    mirror.trade(trader, BTC, 4 * WAD)  # 240,000 USD: IM 66,000, MM 33,000
    mirror.set_price(BTC, 50_500)  # E 31,760 < 1.5 x MM 21,600
    state = mirror.assert_account(trader)
    assert state.status == MARGIN_CALL and in_call_band(mirror.model.account(addr(trader), 0), BUFFER)
    receipt, fee = mirror.margin_call(liquidator, trader, BTC, UINT_MAX)
    assert call_event(mirror, receipt) == model_call_event(mirror)
    assert call_event(mirror, receipt)[4] == 4 * WAD // 5
    # the fee rate is the market's liq_fee x share, whatever the brackets
    assert fee == -(-mul_div_up(mul_div_up(4 * WAD // 5, 50_500 * WAD, WAD), WAD // 50 // 4, WAD) // 10**12)
    after = mirror.assert_account(trader)
    assert after.status == MARGIN_CALL and after.mm_required < state.mm_required * 8 // 10  # the top bracket went first
    mirror.assert_ledgers()


# --------------------------------------------------------------------------
#                                  Size
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "max_size", "closed"),
    [
        (FRACTION, UINT_MAX, 2 * WAD),  # call_fraction binds
        (FRACTION, WAD, WAD),  # max_size binds
        (WAD // 2, UINT_MAX, 5 * WAD),  # the largest fraction
        (WAD // 100, UINT_MAX, WAD // 10),  # the smallest: 0.1 ETH = 288 USD
        (WAD // 2, 4 * WAD + 1, 4 * WAD + 1),
    ],
)
def test_margin_call__bounded_by_call_fraction_and_max_size(mirror, trader, liquidator, fraction, max_size, closed):
    mirror.set_call_params(BUFFER, SHARE, fraction)
    in_band_long(mirror, trader)
    receipt, _ = mirror.margin_call(liquidator, trader, ETH, max_size)
    assert call_event(mirror, receipt)[4] == closed
    assert call_event(mirror, receipt) == model_call_event(mirror)
    assert mirror.engine.position(trader, 0, ETH).size == 10 * WAD - closed
    mirror.assert_account(trader)


def test_margin_call__remainder_below_min_notional__closes_everything_beyond_max_size(mirror, trader, liquidator):
    # 0.004 ETH (12 USD at 3,000) on 1.3 USDC; at 2,880: E 0.808 in [MM 0.576, 0.864)
    state = in_band_long(mirror, trader, deposit=1_300_000, size=4 * WAD // 1_000)
    assert state.status == MARGIN_CALL and in_call_band(mirror.model.account(addr(trader), 0), BUFFER)
    # 20 % would leave 0.0032 ETH = 9.216 USD < 10: all of it, though max_size is 0.001 ETH
    receipt, fee = mirror.margin_call(liquidator, trader, ETH, WAD // 1_000)
    assert call_event(mirror, receipt)[4] == 4 * WAD // 1_000
    assert call_event(mirror, receipt) == model_call_event(mirror)
    assert mirror.engine.position(trader, 0, ETH).size == 0
    assert mirror.assert_account(trader).positions == 0
    mirror.assert_ledgers()


def test_margin_call__works_while_paused(mirror, trader, liquidator):
    in_band_long(mirror, trader)
    mirror.pause()
    assert mirror.engine.paused()
    receipt, fee = mirror.margin_call(liquidator, trader, ETH, UINT_MAX)
    assert call_event(mirror, receipt) == model_call_event(mirror) and fee > 0
    mirror.assert_account(trader)


@pytest.mark.parametrize("market", ["static", "tiered-volatility"])
def test_margin_call__from_the_bottom_of_the_band__never_liquidatable(mirror, trader, liquidator, market):
    if market == "static":
        m, usd = ETH, 3_000
        mirror.deposit(trader, 3_100 * USDC)
        mirror.trade(trader, ETH, 10 * WAD)
    else:
        m, usd = BTC, 60_000
        mirror.at((mirror.head // HOUR + 1) * HOUR + 60)  # one epoch: the calls' samples change nothing
        mirror.set_price(BTC, 60_000)
        mirror.set_volatility(BTC, VOL, seed_var(VOL, 12 * WAD // 100))
        mirror.set_tiers(BTC, [50_000, 200_000], [200, 500])
        mirror.update_volatility(BTC, liquidator)
        mirror.deposit(trader, 70_000 * USDC)
        mirror.trade(trader, BTC, 4 * WAD)
    mirror.sync()
    bottom = bottom_of_band(mirror, trader, m, usd)
    mirror.set_answer(m, bottom)
    state = mirror.assert_account(trader)
    assert state.status == MARGIN_CALL and state.equity_maint - state.mm_required < state.mm_required // 10_000
    mirror.set_answer(m, bottom - 1)  # a feed unit lower: liquidatable
    assert mirror.assert_account(trader).status == LIQUIDATABLE
    mirror.set_answer(m, bottom)
    calls = 0
    while in_call_band(mirror.model.account(addr(trader), 0), BUFFER):
        receipt, _ = mirror.margin_call(liquidator, trader, m, UINT_MAX)
        assert call_event(mirror, receipt) == model_call_event(mirror)
        assert mirror.assert_account(trader).status in (HEALTHY, MARGIN_CALL)
        calls += 1
    assert calls >= 2
    mirror.expect_revert(
        "engine: not in band",
        lambda: mirror.engine.margin_call(trader, 0, m, UINT_MAX, sender=liquidator),
        lambda: mirror.model.margin_call(addr(liquidator), addr(trader), 0, m, UINT_MAX),
    )
    mirror.assert_ledgers()


# --------------------------------------------------------------------------
#                                 Reverts
# --------------------------------------------------------------------------


def expect_call_revert(mirror: Mirror, reason: str, owner, market: int, max_size: int, caller) -> None:
    mirror.expect_revert(
        reason,
        lambda: mirror.engine.margin_call(owner, 0, market, max_size, sender=caller),
        lambda: mirror.model.margin_call(addr(caller), addr(owner), 0, market, max_size),
    )


def test_margin_call__zero_size__reverts(mirror, trader, liquidator):
    in_band_long(mirror, trader)
    expect_call_revert(mirror, "engine: zero size", trader, ETH, 0, liquidator)


def test_margin_call__unknown_market__reverts(mirror, trader, liquidator):
    in_band_long(mirror, trader)
    expect_call_revert(mirror, "engine: unknown market", trader, 7, UINT_MAX, liquidator)


def test_margin_call__no_position__reverts(mirror, trader, other_trader, liquidator):
    in_band_long(mirror, trader)
    expect_call_revert(mirror, "engine: no position", trader, BTC, UINT_MAX, liquidator)  # in band, not in BTC
    expect_call_revert(mirror, "engine: no position", other_trader, ETH, UINT_MAX, liquidator)


@pytest.mark.parametrize(
    ("price", "status"),
    [
        (3_000, HEALTHY),
        (2_920, MARGIN_CALL),  # E 2,270 >= 1.5 x MM 1,460: above the band
        (2_820, LIQUIDATABLE),  # E 1,270 < MM 1,410
    ],
)
def test_margin_call__outside_the_band__reverts(mirror, trader, liquidator, price, status):
    state = in_band_long(mirror, trader, price=price)
    assert state.status == status
    expect_call_revert(mirror, "engine: not in band", trader, ETH, UINT_MAX, liquidator)
    if status == LIQUIDATABLE:  # what applies instead
        receipt, _ = mirror.liquidate(liquidator, trader, ETH, UINT_MAX)
        [event] = receipt.events.filter(mirror.engine.Liquidation)
        assert event.size_closed == mirror.model_events("Liquidation")[-1]["size_closed"] > 0


def test_margin_call__band_off__reverts(mirror, trader, liquidator):
    in_band_long(mirror, trader)
    mirror.set_call_params(0, SHARE, FRACTION)
    assert mirror.assert_account(trader).status == MARGIN_CALL
    expect_call_revert(mirror, "engine: not in band", trader, ETH, UINT_MAX, liquidator)


@pytest.mark.parametrize("max_size", [1, 3 * WAD // 1_000])  # 0 USD, 8.64 USD < 10
def test_margin_call__closed_notional_below_min_notional__dust(mirror, trader, liquidator, max_size):
    in_band_long(mirror, trader)
    expect_call_revert(mirror, "engine: dust", trader, ETH, max_size, liquidator)


# --------------------------------------------------------------------------
#                 A reduction trade that stays in the band
# --------------------------------------------------------------------------


def test_reduction_left_in_the_band__logs_margin_call_size_zero(mirror, trader):
    in_band_long(mirror, trader)
    receipt = mirror.trade(trader, ETH, -WAD)  # E 1,867.1 < 1.5 x MM 1,296: still in the band
    assert call_event(mirror, receipt) == (addr(trader), 0, ETH, addr(trader), 0, 2_880 * WAD, 0)
    assert call_event(mirror, receipt) == model_call_event(mirror)
    assert in_call_band(mirror.assert_account(trader), BUFFER)


def test_reduction_out_of_the_band_or_band_off__no_margin_call_event(mirror, trader):
    in_band_long(mirror, trader)
    receipt = mirror.trade(trader, ETH, -3 * WAD)  # E 1,861.4 >= 1.5 x MM 1,008
    assert receipt.events.filter(mirror.engine.MarginCall) == []
    assert not mirror.model_events("MarginCall")
    mirror.set_call_params(0, SHARE, FRACTION)
    receipt = mirror.trade(trader, ETH, -WAD // 10)
    assert mirror.assert_account(trader).status == MARGIN_CALL
    assert receipt.events.filter(mirror.engine.MarginCall) == []
    assert not mirror.model_events("MarginCall")
