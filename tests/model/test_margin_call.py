"""The margin-call band (``docs/risk-model.md`` section 11) in the engine model:
``set_call_params``, ``in_band``, ``margin_call`` and the ``MarginCall`` event of a
reduction trade.

Plain pytest + hypothesis, no chain. Hand-computed expectations show their
arithmetic in a comment.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    WAD,
    Engine,
    MarketParams,
    ModelRevert,
    Position,
    base_rates,
    call_fee_tokens,
    capped_penalty,
    floor_div,
    in_call_band,
    margin_call_size,
    mul_div_down,
    mul_div_up,
    requirements,
)
from margin_engine.volatility import VolParams, seed_var

USD = WAD
ETH = WAD
UINT_MAX = 2**256 - 1

PARAMS = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=WAD // 1000, liq_fee=WAD // 50,
    max_oi=2**200, min_notional=10 * USD, funding_rate_max=0,
)  # fmt: skip
BUFFER, SHARE, FRACTION = WAD // 2, WAD // 4, WAD // 5  # band to 1.5 x MM, fee 25% of liq_fee, 20% per call


def band_engine(balance_usd: int = 1_200, params: MarketParams = PARAMS) -> Engine:
    """10 ETH long at 2,000 (notional 20,000: MM 1,000, IM 2,000), equity ``balance_usd``."""
    engine = Engine(token_decimals=6, now=1_000)
    engine.add_market(params, 2_000 * USD)
    engine.vault_deposit(10**15)
    engine.fund_insurance(10**12)
    engine.set_call_params(BUFFER, SHARE, FRACTION)
    engine.deposit("trader", 0, 10_000 * 10**6)
    engine.modify_position("trader", 0, 0, 10 * ETH, 2**255)
    # set the balance directly (white box): equity = balance, the entry is the price
    acct = engine._account("trader", 0)
    engine.custody += balance_usd * 10**6 - acct.balance
    acct.balance = balance_usd * 10**6
    return engine


def conserved(engine: Engine) -> bool:
    return sum(a.balance for a in engine.accounts.values()) + engine.insurance + engine.vault_assets == engine.custody


# --------------------------------------------------------------------------
#                               Parameters
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buffer", "share", "fraction"),
    [(0, 0, WAD // 100), (WAD, WAD // 2, WAD // 2), (WAD // 10, WAD // 10, WAD // 10)],
)
def test_set_call_params__accepts_the_bounds(buffer: int, share: int, fraction: int) -> None:
    engine = Engine()
    engine.set_call_params(buffer, share, fraction)
    assert (engine.call_buffer, engine.call_fee_share, engine.call_fraction) == (buffer, share, fraction)


@pytest.mark.parametrize(
    ("buffer", "share", "fraction"),
    [(WAD + 1, 0, WAD // 10), (0, WAD // 2 + 1, WAD // 10), (0, 0, WAD // 100 - 1), (0, 0, WAD // 2 + 1)],
)
def test_set_call_params__rejects(buffer: int, share: int, fraction: int) -> None:
    engine = Engine()
    with pytest.raises(ModelRevert, match="configurator: bad params"):
        engine.set_call_params(buffer, share, fraction)
    assert (engine.call_buffer, engine.call_fee_share, engine.call_fraction) == (0, 0, 0)


# --------------------------------------------------------------------------
#                                  Band
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "status", "band"),
    [
        (999, LIQUIDATABLE, False),  # below MM: liquidation, not a call
        (1_000, MARGIN_CALL, True),  # E = M
        (1_499, MARGIN_CALL, True),
        (1_500, MARGIN_CALL, False),  # E = 1.5 M: out of the band
        (2_000, HEALTHY, False),
    ],
)
def test_in_band__between_mm_and_mm_times_one_plus_buffer(balance: int, status: int, band: bool) -> None:
    engine = band_engine(balance)
    assert engine.status("trader", 0) == status
    assert engine.in_band("trader", 0) is band
    engine.call_buffer = 0
    assert not engine.in_band("trader", 0)  # buffer 0: no band


# --------------------------------------------------------------------------
#                              margin_call
# --------------------------------------------------------------------------


def test_margin_call__hand_example_exact_ledger() -> None:
    engine = band_engine(1_200)
    custody = engine.custody
    fee = engine.margin_call("keeper", "trader", 0, 0, UINT_MAX)
    # q = 10 x 20% = 2 ETH; fee rate 2% x 25% = 0.5%; 4,000 x 0.5% = 20 USD
    assert fee == 20 * 10**6
    assert engine.position("trader", 0, 0).size == 8 * ETH
    assert engine.balance_of("trader", 0) == 1_180 * 10**6
    assert engine.balance_of("keeper", 0) == 20 * 10**6
    assert engine.insurance == 10**12 and engine.custody == custody and conserved(engine)
    assert engine.markets[0].long_oi == 8 * ETH
    assert engine.events[-1] == (
        "MarginCall",
        {"owner": "trader", "sub": 0, "market": 0, "caller": "keeper", "size_closed": 2 * ETH, "price": 2_000 * USD,
         "fee": 20 * 10**6},
    )  # fmt: skip
    state = engine.account("trader", 0)
    assert (state.equity_maint, state.mm_required) == (1_180 * USD, 800 * USD)
    assert engine.in_band("trader", 0)  # 1,180 < 1.5 x 800: a second call
    # 8 x 20% = 1.6 ETH; 3,200 x 0.5% = 16 USD -> E 1,164 >= 1.5 x 640: out of the band
    assert engine.margin_call("keeper2", "trader", 0, 0, UINT_MAX) == 16 * 10**6
    assert engine.account("trader", 0).mm_required == 640 * USD
    assert not engine.in_band("trader", 0)
    with pytest.raises(ModelRevert, match="engine: not in band"):
        engine.margin_call("keeper", "trader", 0, 0, UINT_MAX)
    # capped by max_size
    engine = band_engine(1_200)
    engine.margin_call("keeper", "trader", 0, 0, ETH)
    assert engine.position("trader", 0, 0).size == 9 * ETH


def test_margin_call__rest_below_min_notional_closes_everything() -> None:
    # 1 ETH at 2,000 with min_notional 1,700: 20% leaves 1,600 < 1,700 -> close all
    params = MarketParams(**{**vars(PARAMS), "min_notional": 1_700 * USD})
    engine = Engine(token_decimals=6, now=1_000)
    engine.add_market(params, 2_000 * USD)
    engine.vault_deposit(10**15)
    engine.set_call_params(BUFFER, SHARE, FRACTION)
    engine.deposit("trader", 0, 10**9)
    engine.modify_position("trader", 0, 0, ETH, 2**255)
    engine._account("trader", 0).balance = 120 * 10**6  # E 120: MM 100, band to 150
    engine.custody = sum(a.balance for a in engine.accounts.values()) + engine.vault_assets
    snapshot = copy.deepcopy(engine)
    with pytest.raises(ModelRevert, match="engine: dust"):  # 1 wei: rest not dust, 2,000 wei closed is
        engine.margin_call("keeper", "trader", 0, 0, 1)
    # max_size 0.19 ETH leaves 1,620 < 1,700: the whole position, beyond max_size
    fee = engine.margin_call("keeper", "trader", 0, 0, 19 * ETH // 100)
    assert engine.position("trader", 0, 0) is None and fee == 10 * 10**6  # 2,000 x 0.5%
    fee = snapshot.margin_call("keeper", "trader", 0, 0, UINT_MAX)  # 20% leaves 1,600 < 1,700
    assert snapshot.position("trader", 0, 0) is None and fee == 10 * 10**6


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (lambda e: e.margin_call("k", "trader", 0, 0, 0), "engine: zero size"),
        (lambda e: e.margin_call("k", "trader", 0, 5, 1), "engine: unknown market"),
        (lambda e: e.margin_call("k", "nobody", 0, 0, UINT_MAX), "engine: no position"),
        (lambda e: e.margin_call("k", "trader", 0, 0, 10**15), "engine: dust"),  # 2 USD < min_notional
    ],
)
def test_margin_call__reverts(action: Callable[[Engine], object], reason: str) -> None:
    engine = band_engine(1_200)
    snapshot = copy.deepcopy(engine)
    with pytest.raises(ModelRevert, match=reason):
        action(engine)
    assert vars(engine.accounts[("trader", 0)]) == vars(snapshot.accounts[("trader", 0)])
    assert engine.events == snapshot.events


@pytest.mark.parametrize("balance", [999, 1_500, 2_000, 0])
def test_margin_call__outside_the_band__reverts(balance: int) -> None:
    engine = band_engine(balance)
    with pytest.raises(ModelRevert, match="engine: not in band"):
        engine.margin_call("keeper", "trader", 0, 0, UINT_MAX)


def test_margin_call__band_off__reverts() -> None:
    engine = band_engine(1_200)
    engine.set_call_params(0, SHARE, FRACTION)
    with pytest.raises(ModelRevert, match="engine: not in band"):
        engine.margin_call("keeper", "trader", 0, 0, UINT_MAX)


def test_margin_call__works_while_paused() -> None:
    engine = band_engine(1_200)
    engine.pause()
    assert engine.margin_call("keeper", "trader", 0, 0, UINT_MAX) == 20 * 10**6


def test_margin_call__samples_a_volatility_market_first() -> None:
    vol = VolParams(epoch=3_600, decay=WAD // 2, z=3 * WAD, horizon=86_400, floor=WAD // 200, cap=WAD // 2,
                    mm_fraction=WAD // 2)  # fmt: skip
    engine = band_engine(1_200)
    engine.set_volatility(0, vol, seed_var(vol, WAD // 100))  # vol below the static floors
    engine.margin_call("keeper", "trader", 0, 0, ETH)
    assert engine.markets[0].vol_state.anchor_price == 2_000 * USD


def test_reduction_trade_left_in_the_band__logs_margin_call() -> None:
    engine = band_engine(1_150)
    engine.modify_position("trader", 0, 0, -ETH // 2, 0)  # E 1,149 (fee 1), M 975: in the band
    assert engine.in_band("trader", 0)
    assert engine.events[-1] == (
        "MarginCall",
        {"owner": "trader", "sub": 0, "market": 0, "caller": "trader", "size_closed": 0, "price": 2_000 * USD,
         "fee": 0},
    )  # fmt: skip
    engine.modify_position("trader", 0, 0, -5 * ETH, 0)  # out of the band: no MarginCall
    assert engine.events[-1][0] == "PositionModified"


def test_margin_call__tiny_close_can_round_into_liquidation_without_min_notional() -> None:
    """Caveat of section 11's claim: the fee is at least one token unit and
    the PnL and funding conversions round by up to a unit each, so a call
    whose closed notional times ``mm_rate - fee_rate`` is below about three
    token units can take an account at ``E ~ M`` below MM. ``min_notional``
    (closed notional at least that) rules it out in practice."""
    params = MarketParams(**{**vars(PARAMS), "min_notional": 0})
    engine = band_engine(1_000, params)  # E = M = 1,000
    assert engine.in_band("trader", 0)
    engine.margin_call("keeper", "trader", 0, 0, 1)  # 1 wei: fee 1 token unit, MM down 1,000 x 5% wei
    state = engine.account("trader", 0)
    assert state.equity_maint == 1_000 * USD - 10**12 and state.status == LIQUIDATABLE


# --------------------------------------------------------------------------
#                               Properties
# --------------------------------------------------------------------------


@st.composite
def band_accounts(draw: st.DrawFn, in_band: bool = True) -> tuple[Engine, int]:
    """An account ``("trader", 0)`` with 1-3 positions (static, tiered or
    volatility markets), white-box setup, equity drawn in (or around) the band."""
    decimals = draw(st.sampled_from([6, 8, 18]))
    engine = Engine(token_decimals=decimals, now=draw(st.integers(10**6, 10**9)))
    engine.vault_deposit(10**15 * 10**decimals)
    engine.set_call_params(
        draw(st.integers(1, WAD)), draw(st.integers(0, WAD // 2)), draw(st.integers(WAD // 100, WAD // 2))
    )
    acct = engine._account("trader", 0)
    for _ in range(draw(st.integers(1, 3))):
        mmr = draw(st.integers(WAD // 200, WAD // 5))
        params = MarketParams(
            imr=draw(st.integers(mmr, 3 * mmr)), mmr=mmr, fee_rate=0, liq_fee=draw(st.integers(0, mmr - 1)),
            max_oi=2**200, min_notional=draw(st.sampled_from([0, USD, 10 * USD])),
            funding_rate_max=draw(st.integers(0, 10**13)),
        )  # fmt: skip
        price = draw(st.integers(10**15, 10**24))
        m = engine.add_market(params, price)
        if draw(st.booleans()):
            k = draw(st.integers(1, 4))
            edges = sorted(draw(st.sets(st.integers(1, 10**6), min_size=k, max_size=k)))
            engine.set_tiers(m, edges, sorted(draw(st.lists(st.integers(100, 10_000), min_size=k, max_size=k))))
        if draw(st.booleans()):
            vol = VolParams(epoch=3_600, decay=WAD // 2, z=3 * WAD, horizon=86_400, floor=WAD // 100,
                            cap=WAD // 2, mm_fraction=WAD // 2)  # fmt: skip
            engine.set_volatility(m, vol, draw(st.integers(1, seed_var(vol, vol.cap))))
            engine.sample(m)
        size = (draw(st.integers(1, 10**7)) * WAD * WAD // price + draw(st.integers(0, 10**15))) * draw(
            st.sampled_from([1, -1])
        )
        market = engine.markets[m]
        market.funding_index = draw(st.integers(-(10**18), 10**18))
        entry = draw(st.integers(price // 2, price * 3 // 2))
        acct.positions[m] = Position(size, entry, draw(st.integers(-(10**18), 10**18)))
        market.long_oi = max(size, 0) + draw(st.integers(0, 10**24))
        market.short_oi = max(-size, 0) + draw(st.integers(0, 10**24))
    engine.advance(draw(st.integers(0, 3 * 86_400)))
    for m in engine.markets:
        engine.sample(m)
    state = engine.account("trader", 0)
    mm = state.mm_required
    high = mul_div_up(mm, WAD + engine.call_buffer, WAD)
    if in_band:
        equity = draw(st.integers(mm, high - 1))
    else:  # anywhere, often at the band's edges
        equity = draw(
            st.one_of(st.integers(-mm, 2 * high), st.integers(mm - 3 * engine.scale, mm + 3 * engine.scale),
                      st.integers(high - 3 * engine.scale, high + 3 * engine.scale))
        )  # fmt: skip
    acct.balance = ceil_tokens(equity - state.equity_maint, engine.scale)
    engine.custody = sum(a.balance for a in engine.accounts.values()) + engine.insurance + engine.vault_assets
    return engine, draw(st.sampled_from(sorted(acct.positions)))


def ceil_tokens(wad: int, scale: int) -> int:
    return -floor_div(-wad, scale)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=band_accounts(), max_size=st.one_of(st.just(UINT_MAX), st.integers(1, 10**24)))
def test_margin_call__never_makes_the_account_liquidatable(case: tuple[Engine, int], max_size: int) -> None:
    """The fee rate (``liq_fee * fee_share <= liq_fee / 2``) is below every
    bracket's MM rate, and the closed part's requirement falls by at least
    ``base_mm`` of its notional: ``E' - M' >= E - M + x (mm - fee rate) - 3 scale - 8``.
    So when ``x (base_mm - fee rate)`` covers the three token roundings the
    account never becomes LIQUIDATABLE (and never BANKRUPT). Also: the call
    closes at most ``max_size`` and ``fraction`` of the position unless the
    rest would be dust, pays the whole fee to the caller and conserves custody."""
    engine, m = case
    before = engine.account("trader", 0)
    assume(engine.in_band("trader", 0))
    pos = engine.position("trader", 0, m)
    market = engine.markets[m]
    price = market.price
    caller_before = engine.balance_of("keeper", 0)
    try:
        fee = engine.margin_call("keeper", "trader", 0, m, max_size)
    except ModelRevert as exc:
        assert str(exc) == "engine: dust"
        event("dust")
        return
    q = engine.events[-1][1]["size_closed"]
    s = abs(pos.size)
    assert q == margin_call_size(pos.size, price, market.params.min_notional, engine.call_fraction, max_size)
    if q < s:
        assert q <= min(max_size, s * engine.call_fraction // WAD)
        event("partial")
    else:
        assert s * engine.call_fraction // WAD >= s or mul_div_up(
            s - min(max_size, s * engine.call_fraction // WAD), price, WAD
        ) < market.params.min_notional
        event("closed in full")
    raw = call_fee_tokens(q, price, market.params.liq_fee, engine.call_fee_share, engine.scale)
    assert fee == capped_penalty(raw, before.equity_maint, engine.scale)
    assert engine.balance_of("keeper", 0) - caller_before == fee
    assert conserved(engine)
    after = engine.account("trader", 0)
    base_mm = base_rates(market, engine.now)[1]
    fee_rate = mul_div_down(market.params.liq_fee, engine.call_fee_share, WAD)
    closed = q * price // WAD
    slack = closed * (base_mm - fee_rate) // WAD
    allowance = 3 * engine.scale + 8
    assert after.equity_maint - after.mm_required >= before.equity_maint - before.mm_required + slack - allowance
    if slack >= allowance:
        assert after.status not in (LIQUIDATABLE, BANKRUPT)
    else:
        event("closed notional below the rounding allowance")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=band_accounts(in_band=False))
def test_margin_call__only_in_the_band(case: tuple[Engine, int]) -> None:
    engine, m = case
    state = engine.account("trader", 0)
    band = in_call_band(state, engine.call_buffer)
    assert band == (
        state.status == MARGIN_CALL
        and state.equity_maint < mul_div_up(state.mm_required, WAD + engine.call_buffer, WAD)
    )
    event(f"in band: {band}")
    try:
        engine.margin_call("keeper", "trader", 0, m, UINT_MAX)
    except ModelRevert as exc:
        assert str(exc) == ("engine: dust" if band else "engine: not in band")
        return
    assert band


def test_requirements_used_by_the_band_are_the_risk_model_ones() -> None:
    """A tiered market's band uses the tiered MM (sanity of the plumbing)."""
    engine = band_engine(1_200)
    engine.set_tiers(0, (10_000,), (300,))
    engine.now += engine.ramp_duration
    # 20,000 USD: MM 10,000 at 5% + 10,000 at 15% = 2,000 -> LIQUIDATABLE at E 1,200
    assert requirements(engine.markets[0], 20_000 * USD, engine.now)[1] == 2_000 * USD
    assert engine.status("trader", 0) == LIQUIDATABLE and not engine.in_band("trader", 0)
