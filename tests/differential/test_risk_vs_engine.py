"""The risk model (docs/risk-model.md sections 3, 4, 10-12) on chain and in
the reference model agree to the wei.

titanoboa deployments of `risk_system_config` (BTC, ETH and a $0.37 market,
settlement decimals 6 and 18) are driven through `differential_harness`
together with `margin_engine.model.Engine`; every operation compares revert
reasons, return values, the engine's events (MarginCall included), the risk
model's VolatilityUpdated / TiersRamp and the configurator's MaintenanceRamp,
the ledgers and, once a market uses the risk model, every market's risk state
(volatility estimate and rates word, tier words, MM ramp, RISK_BIT, base rates
in force). Checkpoints compare every account, position and market.

- tiers at bracket edges: positions sized so that their notional lands on
  `E - 1`, `E` and `E + 1` wei of every edge, long and short, with and
  without a volatility margin under the tiers;
- volatility over random price paths: samples by keepers (twice in an epoch
  too), by trades and by liquidations, gaps of many epochs, returns past the
  1,000 % clamp, parameter changes with and without seeds, off and on again;
- margin calls and liquidations on tiered and volatility markets, with tier,
  volatility and static MM ramps started at random times and accounts
  compared at random points of the ramps;
- a deterministic regression of what the model had to learn from the
  contracts (first flag accrues funding, no ramp without open interest,
  removing volatility does not flag, a static mmr rise flags).

Example counts: `examples` (the `fuzz` profile of HYPOTHESIS_PROFILE runs more).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from differential_harness import PPM, Differential, examples, run, tokens
from margin_engine import volatility
from margin_engine.model import LIQUIDATABLE, WAD, in_call_band, mul_div_up

BTC, ETH, DOGE = 0, 1, 2
MARKETS = (BTC, ETH, DOGE)
TRADERS = 3
HOUR, DAY = 3_600, 86_400
HUGE = 10**9 * 10**6  # $1e9 in micro-dollars


def _settings(default: int) -> settings:
    extra: dict[str, Any] = {}
    if os.environ.get("DIFFERENTIAL_NO_SHRINK"):  # while debugging: report the first failure as found
        extra["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )


# --------------------------------------------------------------------------
#                                 Strategies
# --------------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn, min_k: int = 1) -> tuple[list[int], list[int]]:
    """A valid tier schedule as fractions: 1 to 4 strictly increasing edges in
    ppm of a market's capacity (see `edges_usd`) and non-decreasing
    multipliers in [100, 10,000]."""
    k = draw(st.integers(min_k, 4))
    edges = sorted(draw(st.sets(st.integers(1, PPM), min_size=k, max_size=k)))
    mults = sorted(draw(st.lists(st.one_of(st.integers(100, 400), st.integers(100, 10_000)), min_size=k, max_size=k)))
    return edges, mults


def edges_usd(diff: Differential, market: int, edges_ppm: list[int], cap_usd: int = 20_000_000) -> list[int]:
    """Edges in whole USD from ppm of the market's capacity: a third of its
    open-interest cap's notional at the current price (at most `cap_usd`), at
    least $20 (so that E - 1 wei stays above the $10 minimum notional);
    strictly increasing."""
    mirror = diff.model.markets[market]
    capacity = min(mirror.params.max_oi * mirror.price // WAD // WAD // 3, cap_usd)
    edges: list[int] = []
    for ppm in edges_ppm:
        edge = max(20, capacity * ppm // PPM)
        if edges and edge <= edges[-1]:
            edge = edges[-1] + 1
        edges.append(edge)
    return edges


@st.composite
def vol_params(draw: st.DrawFn) -> tuple[int, ...]:
    """A valid `VolatilityParams` struct (epoch, decay, z, horizon, floor, cap, mm_fraction)."""
    epoch = draw(st.one_of(st.sampled_from([300, 3_600, 86_400]), st.integers(300, 86_400)))
    decay = draw(
        st.one_of(
            st.sampled_from([WAD // 2, WAD - WAD // 100_000, volatility.decay_from_half_life(336)]),
            st.integers(WAD // 2, WAD - WAD // 100_000),
        )
    )
    z = draw(st.integers(WAD, 10 * WAD))
    horizon = draw(st.one_of(st.just(DAY), st.integers(HOUR, 30 * DAY)))
    floor = draw(st.integers(WAD // 200, WAD // 4))
    cap = draw(st.integers(floor, WAD))
    fraction = draw(st.integers(WAD // 10, 9 * WAD // 10))
    return epoch, decay, z, horizon, floor, cap, fraction


def seed_for(params: tuple[int, ...], rate_ppm: int) -> int:
    """The variance whose IM rate is `rate_ppm` of the cap (at least 1 wei)."""
    vol = volatility.VolParams(*params)
    return max(1, volatility.seed_var(vol, vol.cap * rate_ppm // PPM))


# --------------------------------------------------------------------------
#                            Tiers at bracket edges
# --------------------------------------------------------------------------


def size_for(notional: int, price: int) -> tuple[int, bool]:
    """The smallest size whose notional `mul_div_up(s, P, WAD)` is at least
    `notional`, and whether it is exactly `notional` (always when P <= $1)."""
    size = (notional - 1) * WAD // price + 1
    return size, mul_div_up(size, price, WAD) == notional


@pytest.mark.parametrize("decimals", [6, 18])
@_settings(4)
@given(
    schedule=schedules(),
    market=st.sampled_from([DOGE, DOGE, BTC, ETH]),
    vol=st.one_of(st.none(), vol_params()),
    rate_ppm=st.integers(0, PPM),
    price_ppm=st.one_of(st.just(PPM), st.integers(50_000, 2_000_000)),
)
def test_tiers__notional_at_bracket_edges__account_im_mm_agree(
    risk_boa_system, decimals, schedule, market, vol, rate_ppm, price_ppm
):
    """For each edge `E`, a long and a short whose notional is `E - 1`, `E`
    and `E + 1` wei (exactly on the $0.37 market; the nearest notionals on
    either side elsewhere): `account()` im/mm, the position and the lens
    agree with the model after every trade (the harness compares)."""
    system = risk_boa_system(decimals)
    edges_ppm, mults = schedule
    with system.env.anchor():
        diff = Differential(system)
        diff.set_price(market, price_ppm)
        edges = edges_usd(diff, market, edges_ppm)
        if vol is not None:
            assert diff.set_volatility(market, vol, seed_for(vol, rate_ppm)) is None
        assert diff.set_tiers(market, edges, mults) is None  # no open interest: at once
        for trader in range(2):
            diff.deposit(trader, 0, tokens(decimals, HUGE, 0))
        # Another position in the same market gives it open interest, so the
        # account's requirement sums two tiered positions once.
        diff.trade(1, 0, market, size_for(30 * WAD, diff.model.markets[market].price)[0])
        price = diff.model.markets[market].price
        exact = 0
        for edge in edges:
            for offset in (-1, 0, 1):
                size, hit = size_for(edge * WAD + offset, price)
                exact += hit
                for side in (1, -1):
                    assert diff.trade(0, 0, market, side * size) is None, diff.trace[-1]
                    state = diff.model.account(diff.owner(0), 0)
                    assert diff.sys.position(diff.owner(0), 0, market).notional == mul_div_up(size, price, WAD)
                    assert state.im_required >= state.mm_required > 0
                    diff.compare_account(diff.owner(0), 0)
                    assert diff.close(0, 0, market) is None
        if price <= WAD:
            assert exact == 3 * len(edges)
        event(f"exact edge notionals: {exact}/{3 * len(edges)}")
        diff.compare_all(liquidation_prices=True)


# --------------------------------------------------------------------------
#                     Volatility over random price paths
# --------------------------------------------------------------------------

# One step of a path: time passes (within an epoch, about one, many, days),
# the price moves (small, large, past the 1,000 % return clamp), then who
# samples: a keeper (once or twice), a trade, a liquidation attempt, a
# parameter change, nobody.
path_step = st.tuples(
    st.one_of(
        st.integers(0, 299),
        st.sampled_from([1, 299, 300, 301, HOUR - 1, HOUR, HOUR + 1, DAY - 1, DAY, DAY + 1]),
        st.integers(300, 3 * HOUR),
        st.integers(HOUR, 10 * DAY),
    ),
    st.one_of(
        st.just(PPM),
        st.integers(950_000, 1_050_000),
        st.integers(500_000, 2_000_000),
        st.sampled_from([10_000, 12 * PPM, 50 * PPM]),  # returns clamped at 1,000 %
    ),
    st.sampled_from(
        ["keeper", "keeper", "keeper", "twice", "trade", "trade", "liquidate", "none", "params", "seed", "off"]
    ),
)


@pytest.mark.parametrize("decimals", [6, 18])
@_settings(8)
@given(
    params=vol_params(),
    other=vol_params(),
    rate_ppm=st.integers(0, PPM),
    market=st.sampled_from(MARKETS),
    tiered=st.one_of(st.none(), schedules()),
    path=st.lists(path_step, min_size=4, max_size=18),
)
def test_volatility__random_price_paths__state_and_rates_agree(
    risk_boa_system, decimals, params, other, rate_ppm, market, tiered, path
):
    """After every sample (keepers, trades, liquidations) and every parameter
    change, `risk.volatility(market)` (var, sigma, anchor, next sample time,
    IM rate, MM in force and target, ramp end), the base rates in force and
    every account agree with the model; a second keeper call in an epoch
    changes nothing."""
    system = risk_boa_system(decimals)
    with system.env.anchor():
        diff = Differential(system)
        for trader in range(TRADERS):
            diff.deposit(trader, 0, tokens(decimals, 50_000_000, trader))
        assert diff.set_volatility(market, params, seed_for(params, rate_ppm)) is None
        if tiered is not None:
            assert diff.set_tiers(market, edges_usd(diff, market, tiered[0]), tiered[1]) is None
        # Positions: trades sample, and parameter changes then ramp MM.
        diff.open(0, 0, market, True, "frac", 900_000)
        diff.open(1, 0, market, False, "frac", 500_000)
        current = params
        for seconds, ppm, who in path:
            diff.advance(seconds)
            diff.set_price(market, ppm)
            if who in ("keeper", "twice"):
                assert diff.update_volatility(market) is None
                if who == "twice":
                    # Within the epoch: nothing but the clock moves (the MM in
                    # force, index 5, follows a ramp second by second).
                    before = diff.sys.risk_state(market)[0]
                    assert diff.update_volatility(market) is None
                    after = diff.sys.risk_state(market)[0]
                    assert after[:5] + after[6:] == before[:5] + before[6:]
            elif who == "trade":
                diff.open(2, 0, market, seconds % 2 == 0, "frac", 200_000)
            elif who == "liquidate":
                for trader in range(2):
                    if diff.model.status(diff.owner(trader), 0) >= LIQUIDATABLE:
                        diff.liquidate(trader, 0, market)
            elif who in ("params", "seed"):
                # floor and cap move at most 5 points from the current ones
                step = WAD // 20
                floor = min(max(other[4], current[4] - step), current[4] + step)
                cap = min(max(other[5], current[5] - step, floor), current[5] + step)
                new = (*other[:4], floor, cap, other[6])
                seed = seed_for(new, ppm % PPM) if who == "seed" else 0
                if diff.set_volatility(market, new, seed) is None:
                    current = new
            elif who == "off":
                if diff.set_volatility(market, (0,) * 7, 0) is None:
                    diff.advance(HOUR)
                    assert diff.set_volatility(market, current, seed_for(current, ppm % PPM)) is None
            event(f"sample by {who}")
        diff.compare_all(liquidation_prices=True)
        for name in ("VolatilityUpdated", "revert configurator: too soon", "revert configurator: step"):
            if diff.stats[name]:
                event(name)


# --------------------------------------------------------------------------
#       Margin calls, liquidations and ramps on tiered / volatility markets
# --------------------------------------------------------------------------

trader = st.integers(0, TRADERS - 1)
sub = st.sampled_from([0, 0, 1])
market = st.sampled_from(MARKETS)
# Opens near the initial-margin limit (so price moves reach the band).
open_ppm = st.one_of(st.integers(50_000, 10**6), st.integers(900_000, 1_010_000))
price_ppm = st.one_of(st.integers(950_000, 1_050_000), st.integers(850_000, 1_150_000))
risk_operation = st.one_of(
    st.tuples(st.just("open"), trader, sub, market, st.booleans(), st.just("frac"), open_ppm, st.just(0)),
    st.tuples(st.just("reduce"), trader, sub, market, st.integers(1, 900_000), st.just(0)),
    st.tuples(st.just("price"), market, price_ppm),
    st.tuples(st.just("band"), trader, sub, market, st.integers(50_000, 950_000)),
    st.tuples(st.just("band"), trader, sub, market, st.integers(50_000, 950_000)),
    st.tuples(st.just("margin_call"), trader, sub, market, st.one_of(st.just(0), st.integers(1, 10**6))),
    st.tuples(st.just("margin_call"), trader, sub, market, st.just(0)),
    st.tuples(st.just("liquidate"), trader, sub, market, st.one_of(st.just(0), st.integers(1, 10**6))),
    st.tuples(
        st.just("advance"),
        st.one_of(st.integers(1, HOUR), st.integers(HOUR, DAY), st.integers(DAY, 3 * DAY)),
    ),
    st.tuples(st.just("check")),
    st.tuples(st.just("update_vol"), market),
    st.tuples(st.just("set_mmr"), market, st.one_of(st.integers(-200, 500), st.sampled_from([500, 501, -500]))),
    st.tuples(st.just("tiers"), market, schedules(min_k=0)),
    st.tuples(st.just("vol"), market, vol_params(), st.integers(0, PPM)),
    st.tuples(st.just("ramp_duration"), st.sampled_from([HOUR, DAY, 7 * DAY, HOUR - 1])),
    st.tuples(st.just("deposit"), trader, sub, st.integers(100, 100_000).map(lambda usd: usd * 10**6), st.just(0)),
)
call_params = st.tuples(
    st.one_of(*[st.sampled_from([WAD // 10, WAD // 4, WAD // 2, WAD])] * 3, st.integers(1, WAD)),
    st.integers(0, WAD // 2),
    st.integers(WAD // 100, WAD // 2),
)
market_setup = st.tuples(
    st.one_of(st.none(), schedules()),
    st.one_of(st.none(), st.tuples(vol_params(), st.integers(0, PPM))),
)


def band_price(diff: Differential, owner: str, sub: int, market: int, depth_ppm: int) -> int | None:
    """A price of `market` that puts the account about `depth_ppm` of the way
    into the margin-call band (`E = M * (1 + buffer * (1 - depth))`),
    searched on the model (other prices fixed); None without a position."""
    pos = diff.model.position(owner, sub, market)
    if pos is None or diff.model.call_buffer == 0:
        return None
    mirror = diff.model.markets[market]
    saved = mirror.price
    ratio = WAD + diff.model.call_buffer * (PPM - depth_ppm) // PPM
    config = diff.config.markets[market]
    lo, hi = config.min_price, config.max_price

    def above(price: int) -> bool:
        mirror.price = price
        state = diff.model.account(owner, sub)
        return state.equity_maint * WAD > state.mm_required * ratio

    try:
        # Longs lose below the price, shorts above: search that side.
        if pos.size > 0:
            hi = saved
        else:
            lo = saved
        for _ in range(80):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            if above(mid) == (pos.size > 0):
                hi = mid
            else:
                lo = mid
    finally:
        mirror.price = saved
    return lo if pos.size > 0 else hi


def apply(diff: Differential, op: tuple) -> None:
    """`differential_harness.run` for one operation, plus this file's own:
    `band` (move a price into the margin-call band of an account), `tiers`
    and `vol` (schedules and parameters relative to the market)."""
    kind = op[0]
    if kind == "band":
        _, t, s, m, depth = op
        held = _held(diff, levered=True)
        if held:  # a levered position (an unlevered one never reaches the band)
            t, s, m = held[(t + s + m) % len(held)]
        price = band_price(diff, diff.owner(t), s, m, depth)
        if price is not None:
            diff.set_price_to(m, price)
            state = diff.model.account(diff.owner(t), s)
            event(f"band move: in band {in_call_band(state, diff.model.call_buffer)}")
    elif kind == "margin_call":
        _, t, s, m, ppm = op
        in_band = [(t2, s2, m2) for t2, s2, m2 in _held(diff) if diff.model.in_band(diff.owner(t2), s2)]
        if in_band and ppm % 4:  # mostly an account in the band, sometimes anyone
            t, s, m = in_band[ppm % len(in_band)]
        diff.margin_call_fraction(t, s, m, ppm)
    elif kind == "tiers":
        _, m, (edges_ppm, mults) = op
        diff.set_tiers(m, edges_usd(diff, m, edges_ppm), mults)
    elif kind == "vol":
        _, m, params, rate_ppm = op
        current = diff.model.markets[m].vol_params
        if current is not None:  # a live market: floor and cap within 5 points (mostly)
            step = WAD // 20
            floor = min(max(params[4], current.floor - step), current.floor + step)
            params = (*params[:4], floor, min(max(params[5], current.cap - step, floor), current.cap + step), params[6])
        diff.set_volatility(m, params, seed_for(params, rate_ppm) if rate_ppm or current is None else 0)
    else:
        run(diff, [op])


def _held(diff: Differential, levered: bool = False) -> list[tuple[int, int, int]]:
    """(trader, sub, market) of every open position (of accounts whose
    equity is below their notional, with `levered`)."""
    held = []
    for t in range(TRADERS):
        for s in (0, 1):
            acct = diff.model.accounts.get((diff.owner(t), s))
            if acct is None or not acct.positions:
                continue
            if levered:
                state = diff.model.account(diff.owner(t), s)
                notional = sum(abs(p.size) * diff.model.markets[k].price // WAD for k, p in acct.positions.items())
                if state.equity_maint >= notional:
                    continue
            held += [(t, s, m) for m in sorted(acct.positions)]
    return held


def margin_call_all(diff: Differential) -> None:
    """Margin-call every account in the band, largest position first, until none is (at most 8 calls each)."""
    mine = [(diff.sys.traders.index(owner), s) for owner, s in diff.known if owner in diff.sys.traders]
    for t, s in sorted(mine):
        owner = diff.owner(t)
        for _ in range(8):
            acct = diff.model.accounts.get((owner, s))
            if acct is None or not acct.positions or not diff.model.in_band(owner, s):
                break
            m = max(acct.positions, key=lambda k: abs(acct.positions[k].size) * diff.model.markets[k].price)
            if diff.margin_call(t, s, m) is not None:
                break


@pytest.mark.parametrize("decimals", [6, 18])
@_settings(6)
@given(
    calls=call_params,
    setups=st.lists(market_setup, min_size=len(MARKETS), max_size=len(MARKETS)),
    deposits=st.lists(st.integers(1_000, 200_000).map(lambda usd: usd * 10**6), min_size=TRADERS, max_size=TRADERS),
    opens=st.lists(
        st.tuples(st.just("open"), trader, st.just(0), market, st.booleans(), st.just("frac"), open_ppm, st.just(0)),
        min_size=2,
        max_size=6,
    ),
    ops=st.lists(risk_operation, min_size=4, max_size=20),
)
def test_margin_calls_liquidations_and_ramps__tiered_vol_markets__agree(
    risk_boa_system, decimals, calls, setups, deposits, opens, ops
):
    """Margin calls (capped or not, in and out of the band), liquidations
    (average MM rate sizing), reductions that leave an account in the band
    (MarginCall with size 0), and tier, volatility and static MM ramps begun
    at random times, with accounts compared at random points of the ramps:
    balances, insurance, vault, events and every view agree with the model."""
    system = risk_boa_system(decimals)
    with system.env.anchor():
        diff = Differential(system)
        assert diff.set_call_params(*calls) is None
        for m, (tiered, vol) in zip(MARKETS, setups):
            if vol is not None:
                assert diff.set_volatility(m, vol[0], seed_for(vol[0], vol[1])) is None
            if tiered is not None:
                assert diff.set_tiers(m, edges_usd(diff, m, tiered[0]), tiered[1]) is None
        for t, micro in enumerate(deposits):
            diff.deposit(t, 0, tokens(decimals, micro, t))
            diff.deposit(t, 1, tokens(decimals, micro // 10, t))
        run(diff, opens)
        diff.compare_all()
        for op in ops:
            apply(diff, op)
        diff.compare_all(liquidation_prices=True)
        margin_call_all(diff)
        diff.liquidate_all()
        diff.compare_all()
        diff.close_all()
        diff.compare_all()
    for name in sorted(diff.stats):
        if not name.startswith("state") and name != "risk state compared":
            event(name)


ramp_start = st.one_of(
    st.tuples(st.just("tiers"), market, schedules(min_k=0)),
    st.tuples(st.just("mmr"), market, st.integers(1, 500)),
    st.tuples(st.just("vol"), market, st.integers(1, PPM)),
)


@pytest.mark.parametrize("decimals", [6, 18])
@_settings(5)
@given(
    vol=vol_params(),
    calls=call_params,
    ramps=st.lists(st.tuples(st.integers(0, 2 * HOUR), ramp_start), min_size=1, max_size=5),
    times=st.lists(st.integers(1, 2 * DAY), min_size=1, max_size=6),
    duration=st.sampled_from([HOUR, DAY, 3 * DAY]),
    leverage=st.lists(st.integers(500_000, 1_000_000), min_size=4, max_size=4),
)
def test_ramps__tier_volatility_and_static__accounts_agree_at_random_times(
    risk_boa_system, decimals, vol, calls, ramps, times, duration, leverage
):
    """Ramps begun on markets with open interest (a tier schedule, a higher
    static mmr, a re-seeded variance: MM moves linearly from the rate in
    force), then time passes to random points, before and after their ends:
    each account's `mm_required` (and everything else) agrees with the
    model, and so do margin calls and liquidations of whoever qualifies."""
    system = risk_boa_system(decimals)
    with system.env.anchor():
        diff = Differential(system)
        assert diff.set_ramp_duration(duration) is None
        assert diff.set_call_params(*calls) is None
        # The volatility margin starts low (seeded at the floor).
        for m in MARKETS:
            assert diff.set_volatility(m, vol, seed_for(vol, 0)) is None
        for t in range(TRADERS):
            diff.deposit(t, 0, tokens(decimals, 1_000_000 * 10**6, t))
        for i, ppm in enumerate(leverage):
            diff.open(i % 2, 0, MARKETS[i % len(MARKETS)], i % 2 == 0, "frac", ppm)
        diff.open(2, 0, DOGE, True, "frac", 500_000)
        for wait, (kind, m, arg) in ramps:
            diff.advance(wait)
            if kind == "tiers":
                diff.set_tiers(m, edges_usd(diff, m, arg[0]), arg[1])
            elif kind == "mmr":
                diff.set_mmr(m, arg)
            else:  # a higher variance: IM at once, MM ramps
                diff.set_volatility(m, vol, seed_for(vol, arg))
        for seconds in sorted(times):
            diff.advance(seconds % (2 * duration) + 1)
            diff.compare_all()
            for t in range(TRADERS):
                owner = diff.owner(t)
                acct = diff.model.accounts.get((owner, 0))
                if acct is None or not acct.positions:
                    continue
                m = min(acct.positions)
                if diff.model.in_band(owner, 0):
                    diff.margin_call(t, 0, m)
                elif diff.model.status(owner, 0) >= LIQUIDATABLE:
                    diff.liquidate(t, 0, m)
        diff.compare_all(liquidation_prices=True)
    for name in ("TiersRamp", "MaintenanceRamp", "VolatilityUpdated", "MarginCall", "Liquidation"):
        if diff.stats[name]:
            event(name)


# --------------------------------------------------------------------------
#         Deterministic cases: where the model had to follow the contracts
# --------------------------------------------------------------------------


def test_flagging__first_change_accrues_funding_and_ramps_only_with_open_interest(risk_boa_system):
    """Regressions of contract/model disagreements found here (the model now
    follows the contracts and docs/risk-model.md 10.1, 10.2, 12):

    - removing volatility from a market that never used the risk model leaves
      it static (no RISK_BIT, no re-stored parameters);
    - the first volatility or tier change of a market re-stores its
      parameters in the engine, which accrues funding at that price (the
      stored index and time are compared);
    - without open interest a new schedule or volatility MM applies at once,
      with open interest it ramps over the ramp duration;
    - a static mmr rise flags the market (the ramp lives in the risk model).
    """
    system = risk_boa_system(6)
    vol = (HOUR, volatility.decay_from_half_life(336), 4 * WAD, DAY, WAD // 10, WAD // 2, WAD // 2)
    with system.env.anchor():
        diff = Differential(system)
        assert diff.set_volatility(ETH, (0,) * 7, 0) is None  # off on a static market
        assert not diff.model.markets[ETH].risk
        assert diff.sys.risk_state(ETH)[4] & (1 << 63) == 0
        # No open interest: at once.
        assert diff.set_volatility(DOGE, vol, seed_for(vol, PPM)) is None
        assert diff.set_tiers(DOGE, [1_000], [300]) is None
        start, end = diff.sys.risk_state(DOGE)[1][2:]
        assert start == end == diff.now
        # Open interest, funding for a day, a new price, then the first flag of BTC.
        diff.deposit(0, 0, tokens(6, 1_000_000 * 10**6, 0))
        diff.trade(0, 0, BTC, 10**18)
        diff.advance(DAY)
        diff.set_price(BTC, 1_100_000)
        assert diff.set_tiers(BTC, [10_000], [200]) is None
        assert diff.model.markets[BTC].last_funding_time == diff.now
        assert diff.sys.risk_state(BTC)[1][3] == diff.now + DAY  # ramps: BTC has open interest
        diff.compare_all()
        # A static mmr rise on ETH (static) flags it.
        diff.trade(0, 0, ETH, 10**18)
        assert diff.set_mmr(ETH, 100) is None
        assert diff.model.markets[ETH].risk
        assert diff.sys.risk_state(ETH)[4] & (1 << 63)
        diff.advance(DAY // 2)
        diff.compare_all(liquidation_prices=True)
