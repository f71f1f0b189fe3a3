"""Multi-collateral accounts in the reference model (docs/collateral.md).

Plain pytest + hypothesis: no Ape fixture, no chain. Expected numbers are
written out by hand (the comment above each one shows the arithmetic).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    MAX_ASSETS,
    MAX_RATE_GROWTH,
    WAD,
    CollateralAsset,
    Engine,
    LiquidationParams,
    MarketParams,
    ModelRevert,
    ceil_div,
    collateral_price,
    collateral_usd,
    collateral_values,
    mul_div_up,
    seize_amounts,
    seize_need,
)

USD = WAD
ETH = WAD
USDC = 10**6  # one settlement token (6 decimals)
SCALE = 10**12  # settlement scale (6 decimals)
PCT = WAD // 100

PARAMS = MarketParams(
    imr=10 * PCT,
    mmr=5 * PCT,
    fee_rate=WAD // 1000,  # 0.1%
    liq_fee=PCT,
    max_oi=10**9 * ETH,
    min_notional=10 * USD,
    funding_rate_max=10**12,
)
LIQ = LiquidationParams(buffer=10 * PCT, liquidator_share=WAD // 2, reward_floor=1_000_000, reward_cap=500_000_000)

FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def make_engine() -> Engine:
    """6-decimal settlement, ETH (id 0) at 2,000 and BTC (id 1) at 50,000,
    vault capital, and a keeper with 100,000 tokens in sub-account 0."""
    engine = Engine(token_decimals=6, liq_params=LIQ, now=1_000)
    engine.add_market(PARAMS, 2_000 * USD)
    engine.add_market(PARAMS, 50_000 * USD)
    engine.vault_deposit(10_000_000 * USDC)
    engine.deposit("keeper", 0, 100_000 * USDC)
    return engine


def list_weth(engine: Engine, w_init: int = 80 * PCT, w_maint: int = 90 * PCT, discount: int = 5 * PCT) -> str:
    return engine.list_collateral(18, 2_000 * USD, w_init, w_maint, discount, 10**6 * ETH, asset="WETH")


def reverts(reason: str, fn: Callable[[], object]) -> None:
    with pytest.raises(ModelRevert) as info:
        fn()
    assert info.value.reason == reason


def asset(decimals: int, price: int, w_init: int, w_maint: int, **kw: object) -> CollateralAsset:
    return CollateralAsset(decimals, price, w_init, w_maint, 0, 2**100, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
#                              Pure formulas
# --------------------------------------------------------------------------


def test_values__decimals_2_6_8_18__each_term_rounded_down() -> None:
    assets = {
        # 2 decimals at 1.5 USD, weights 80 / 90 %
        "A": asset(2, 3 * USD // 2, 80 * PCT, 90 * PCT),
        # 6 decimals at 0.999999 USD, weights 1/3 (down) / 70 %
        "B": asset(6, 999_999 * 10**12, WAD // 3, 70 * PCT),
        # 8 decimals at 60,000 USD, weights 75 / 80 %
        "C": asset(8, 60_000 * USD, 75 * PCT, 80 * PCT),
        # 18 decimals at 3,000.5 USD, weights 90 / 95 %
        "D": asset(18, 3_000_500_000_000_000_000_000, 90 * PCT, 95 * PCT),
    }
    # A: 12,345 units = 123.45 tokens: 12_345 * 10**16 * 1.5e18 // 1e18 = 185.175 USD
    assert collateral_usd(12_345, 10**16, assets["A"].price) == 185_175 * 10**15
    # B: 1_000_001 * 10**12 * 999_999e12 // 1e18 = 999_999_999_999 * 10**6
    assert collateral_usd(1_000_001, 10**12, assets["B"].price) == 999_999_999_999_000_000
    # C: 0.12345678 BTC * 60,000 = 7,407.4068 USD
    assert collateral_usd(12_345_678, 10**10, assets["C"].price) == 7_407_406_800 * 10**12
    # D: 1 wei * 3,000.5e18 // 1e18 = 3000 (down)
    assert collateral_usd(1, 1, assets["D"].price) == 3_000
    balances = {"A": 12_345, "B": 1_000_001, "C": 12_345_678, "D": 1}
    value_init, value_maint = collateral_values(balances, assets, now=0)
    # init:  185.175 * 0.8 = 148.14                     -> 148_140 * 10**15
    #        999_999_999_999e6 * 333_333_333_333_333_333 // 1e18 = 333_333_333_332_999_999 (down)
    #        7,407.4068 * 0.75 = 5,555.5551             -> 5_555_555_100 * 10**12
    #        3000 * 0.9 = 2700
    assert value_init == 148_140 * 10**15 + 333_333_333_332_999_999 + 5_555_555_100 * 10**12 + 2_700
    # maint: 185.175 * 0.9 = 166.6575; 999_999_999_999e6 * 0.7 = 699_999_999_999_300_000;
    #        7,407.4068 * 0.8 = 5,925.92544; 3000 * 0.95 = 2850
    assert value_maint == 166_657_500 * 10**12 + 699_999_999_999_300_000 + 5_925_925_440 * 10**12 + 2_850
    # each term rounds down on its own: 1 wei at 3,000.5 and weight 0.9999 is 2999, not 3000.5 * 0.9999
    one = {"D": replace_weights(assets["D"], 9_999 * WAD // 10_000)}
    assert collateral_values({"D": 1}, one, now=0) == (2_999, 2_999)


def replace_weights(a: CollateralAsset, w: int) -> CollateralAsset:
    b = copy.copy(a)
    b.w_init = b.w_maint = w
    return b


def test_vault_rate__donation_bounded_by_growth__fall_at_once() -> None:
    g = MAX_RATE_GROWTH  # 1e18 // 31_536_000 = 31_709_791_983
    assert g == 31_709_791_983
    share = CollateralAsset(
        18, USD, 90 * PCT, 95 * PCT, 0, 2**100, vault=True, max_rate_growth=g,
        live_rate=105 * PCT, last_rate=105 * PCT, last_time=1_000,
    )  # fmt: skip
    # a donation: the live rate jumps to 1.2 a day later
    share.live_rate = 120 * PCT
    # bound = 1.05e18 + 1.05e18 * 31_709_791_983 * 86_400 // 1e18 = 1.05e18 + 2_876_712_328_697_760
    assert collateral_price(share, 1_000 + 86_400) == 1_052_876_712_328_697_760
    assert share.last_rate == 105 * PCT  # a view stores nothing
    # stored, then another day: compounding from the stored rate
    assert collateral_price(share, 1_000 + 86_400, store=True) == 1_052_876_712_328_697_760
    assert (share.last_rate, share.last_time) == (1_052_876_712_328_697_760, 87_400)
    # 1_052_876_712_328_697_760 + 1_052_876_712_328_697_760 * g * 86_400 // 1e18
    #   = ... + 2_884_593_732_337_837 (down)
    assert collateral_price(share, 87_400 + 86_400) == 1_052_876_712_328_697_760 + 2_884_593_732_337_837
    # the price multiplies the underlying's: 2 USD * rate // WAD
    share.price = 2 * USD
    assert collateral_price(share, 87_400) == 2 * 1_052_876_712_328_697_760
    # a loss applies at once
    share.live_rate = WAD
    share.price = USD
    assert collateral_price(share, 87_400 + 1) == WAD
    # a plain token ignores the rate
    assert collateral_price(asset(18, 7 * USD, WAD, WAD, live_rate=5 * WAD), 10**9) == 7 * USD


# seize_amounts(max_repay, debt, deficit, balance, price, asset_scale, d, w_maint, SCALE)
# WETH (18 decimals) at 2,000, d = 5 %, w_maint = 80 %, settlement 6 decimals


def test_seize__max_repay_binds() -> None:
    # R = 100 USDC; 100e18 * 1e18 // 0.95e18 = 105_263_157_894_736_842_105; * 1e18 // 2000e18 = 52_631_578_947_368_421
    got = seize_amounts(100 * USDC, 1_000 * USDC, 10_000 * USD, 10 * ETH, 2_000 * USD, 1, 5 * PCT, 80 * PCT, SCALE)
    assert got == (52_631_578_947_368_421, 100 * USDC)


def test_seize__debt_binds() -> None:
    # R = 50 USDC; 5e37 // 9.5e17 = 52_631_578_947_368_421_052; * 1e18 // 2000e18 = 26_315_789_473_684_210
    got = seize_amounts(1_000 * USDC, 50 * USDC, 10_000 * USD, 10 * ETH, 2_000 * USD, 1, 5 * PCT, 80 * PCT, SCALE)
    assert got == (26_315_789_473_684_210, 50 * USDC)


def test_seize__need_binds_rounded_up() -> None:
    deficit = 10 * USD + 1
    # (10e18 + 1) * 0.95 / 0.15 = (10e18 + 1) * 19 / 3 = 63_333_333_333_333_333_339.67 -> ...340 (up)
    # / 1e12 -> 63_333_334 (up)
    assert seize_need(deficit, 5 * PCT, 80 * PCT, SCALE) == 63_333_334
    # 63_333_334e12 * 1e18 // 0.95e18 = 66_666_667_368_421_052_631; * 1e18 // 2000e18 = 33_333_333_684_210_526
    got = seize_amounts(1_000 * USDC, 500 * USDC, deficit, 10 * ETH, 2_000 * USD, 1, 5 * PCT, 80 * PCT, SCALE)
    assert got == (33_333_333_684_210_526, 63_333_334)
    # w_maint + d == 1: no limit; no positions (deficit None): no limit
    assert seize_need(deficit, 5 * PCT, 95 * PCT, SCALE) is None
    assert seize_need(None, 5 * PCT, 80 * PCT, SCALE) is None
    got = seize_amounts(100 * USDC, 500 * USDC, deficit, 10 * ETH, 2_000 * USD, 1, 5 * PCT, 95 * PCT, SCALE)
    assert got == (52_631_578_947_368_421, 100 * USDC)


def test_seize__balance_binds_repay_rounded_up() -> None:
    balance = 10**16 + 7  # 0.01 ETH + 7 wei
    # seized = balance; usd = (1e16 + 7) * 2000 = 20_000_000_000_000_014_000
    # R = ceil(ceil(usd * 0.95) / 1e12) = ceil(19_000_000_000_000_013_300 / 1e12) = 19_000_001
    got = seize_amounts(1_000 * USDC, 1_000 * USDC, None, balance, 2_000 * USD, 1, 5 * PCT, 80 * PCT, SCALE)
    assert got == (balance, 19_000_001)
    # max_repay 19 USDC would seize 0.0099999... ETH > 10**16 - 10**10 units: the balance binds,
    # usd = 19.99998, R = 19.99998 * 0.95 = 18.999981 USDC
    got = seize_amounts(19 * USDC, 1_000 * USDC, None, 10**16 - 10**10, 2_000 * USD, 1, 5 * PCT, 80 * PCT, SCALE)
    assert got == (10**16 - 10**10, 18_999_981)


def test_seize__8_decimals_and_tiny_repay() -> None:
    # WBTC at 60,000, d = 10 %: R = 1 USDC -> 1e18 // 0.9 = 1_111_111_111_111_111_111
    # * 1e18 // (60_000e18 * 1e10) = 1851 satoshi (down from 1851.85)
    got = seize_amounts(USDC, USDC, None, 10**8, 60_000 * USD, 10**10, 10 * PCT, 80 * PCT, SCALE)
    assert got == (1_851, USDC)
    # R = 1 unit (1e-6 USD) buys less than a satoshi: nothing to seize
    assert seize_amounts(1, 1, None, 10**8, 60_000 * USD, 10**10, 10 * PCT, 80 * PCT, SCALE) == (0, 1)
    # 1 unit of a 2-decimal token at 0.5 USD: usd = 1e16 * 0.5 = 5e15, R = ceil(5e15 * 0.9 / 1e12) = 4,500;
    # at 1e-18 USD a unit is worth 0 (down): seized 1, repaid 0 (the engine refuses it)
    assert seize_amounts(10**6, 10**6, None, 1, USD // 2, 10**16, 10 * PCT, 80 * PCT, SCALE) == (1, 4_500)
    assert seize_amounts(10**6, 10**6, None, 1, 1, 10**16, 10 * PCT, 80 * PCT, SCALE) == (1, 0)


# --------------------------------------------------------------------------
#                              Listing and params
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decimals", "w_init", "w_maint", "discount", "cap", "vault", "g", "reason"),
    [
        (19, 50 * PCT, 60 * PCT, 0, 1, False, 0, "configurator: decimals"),
        (18, 0, 60 * PCT, 0, 1, False, 0, "configurator: bad collateral"),
        (18, 70 * PCT, 60 * PCT, 0, 1, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, WAD + 1, 0, 1, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 20 * PCT + 1, 1, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 90 * PCT, 10 * PCT + 1, 1, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 0, 0, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 0, 2**128, False, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 0, 1, False, 1, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 0, 1, True, 0, "configurator: bad collateral"),
        (18, 50 * PCT, 60 * PCT, 0, 1, True, MAX_RATE_GROWTH + 1, "configurator: bad collateral"),
        # the configurator's order: growth, decimals, weights
        (19, 0, 60 * PCT, 0, 1, True, 0, "configurator: bad collateral"),
        (19, 0, 60 * PCT, 0, 1, False, 0, "configurator: decimals"),
    ],
)
def test_list__bounds(
    decimals: int, w_init: int, w_maint: int, discount: int, cap: int, vault: bool, g: int, reason: str
) -> None:
    engine = make_engine()
    reverts(reason, lambda: engine.list_collateral(decimals, USD, w_init, w_maint, discount, cap, True, vault, g))
    assert engine.collaterals == {}


def test_list__edges_allowed_duplicate_and_count_refused() -> None:
    engine = make_engine()
    # w_init = w_maint = 80 %, d = 20 %: w_maint + d = 1; cap 2**128 - 1; g at its bound
    engine.list_collateral(0, USD, 80 * PCT, 80 * PCT, 20 * PCT, 2**128 - 1, asset="X")
    engine.list_collateral(18, USD, WAD, WAD, 0, 1, True, True, MAX_RATE_GROWTH, asset="V")
    reverts("configurator: listed", lambda: engine.list_collateral(18, USD, WAD, WAD, 0, 1, asset="X"))
    for i in range(MAX_ASSETS - 2):
        assert engine.list_collateral(18, USD, WAD, WAD, 0, 1, asset=i) == i
    assert engine.asset_id("V") == 1 and engine.asset_id(0) == 2
    reverts("collateral: too many assets", lambda: engine.list_collateral(18, USD, WAD, WAD, 0, 1, asset="Y"))
    # without a key the id is the key
    assert make_engine().list_collateral(18, USD, WAD, WAD, 0, 1) == 0


def test_set_params__maintenance_fall_step_and_delay_while_held() -> None:
    engine = make_engine()
    weth = list_weth(engine)
    # nobody holds it: any fall within the bounds at once
    engine.set_collateral_params(weth, 50 * PCT, 60 * PCT, 5 * PCT, 10**6 * ETH)
    engine.set_collateral_params(weth, 80 * PCT, 90 * PCT, 5 * PCT, 10**6 * ETH)
    engine.deposit("t", 0, ETH, weth)
    # every fall is timed, also one while nobody held the asset
    reverts("configurator: too soon", lambda: engine.set_collateral_params(weth, 80 * PCT, 89 * PCT, 0, ETH))
    engine.advance(3_600)
    step_too_big = 85 * PCT - 1
    reverts("configurator: weight step", lambda: engine.set_collateral_params(weth, 80 * PCT, step_too_big, 0, ETH))
    engine.set_collateral_params(weth, 80 * PCT, 85 * PCT, 0, ETH)
    reverts("configurator: too soon", lambda: engine.set_collateral_params(weth, 80 * PCT, 84 * PCT, 0, ETH))
    # a rise, w_init and the rest apply at once
    engine.set_collateral_params(weth, 10 * PCT, 95 * PCT, 5 * PCT, ETH, enabled=False)
    engine.advance(3_600)
    engine.set_collateral_params(weth, 10 * PCT, 90 * PCT, 5 * PCT, ETH, enabled=False)
    # the step and delay checks come before the bounds
    reverts("configurator: too soon", lambda: engine.set_collateral_params(weth, 0, 89 * PCT, 0, ETH))
    reverts("collateral: unknown asset", lambda: engine.set_collateral_params("WBTC", PCT, PCT, 0, ETH))
    too_high = 96 * PCT  # w_maint + d > 1
    reverts("configurator: bad collateral", lambda: engine.set_collateral_params(weth, PCT, too_high, 5 * PCT, ETH))
    a = engine.collaterals[weth]
    assert (a.w_init, a.w_maint, a.discount, a.cap, a.enabled) == (10 * PCT, 90 * PCT, 5 * PCT, ETH, False)


# --------------------------------------------------------------------------
#                         Deposits, withdrawals, equity
# --------------------------------------------------------------------------


def test_deposit__unknown_disabled_cap() -> None:
    engine = make_engine()
    weth = engine.list_collateral(18, 2_000 * USD, 80 * PCT, 90 * PCT, 5 * PCT, 3 * ETH, asset="WETH")
    reverts("collateral: unknown asset", lambda: engine.deposit("t", 0, 1, "WBTC"))
    reverts("engine: zero amount", lambda: engine.deposit("t", 0, 0, weth))
    engine.deposit("t", 0, 2 * ETH, weth)
    reverts("collateral: cap", lambda: engine.deposit("u", 0, ETH + 1, weth))
    engine.deposit("u", 0, ETH, weth)
    assert engine.collaterals[weth].total == 3 * ETH
    engine.set_collateral_params(weth, 80 * PCT, 90 * PCT, 5 * PCT, 4 * ETH, enabled=False)
    reverts("collateral: disabled", lambda: engine.deposit("t", 0, 1, weth))
    # disabled: still valued, withdrawn and moved
    assert engine.collateral_value("t", 0) == (3_200 * USD, 3_600 * USD)
    engine.transfer_collateral("t", 0, 1, ETH, weth)
    engine.withdraw("t", 1, ETH, weth)
    assert engine.collaterals[weth].total == 2 * ETH
    assert (engine.collateral_balance("t", 0, weth), engine.collateral_balance("t", 1, weth)) == (ETH, 0)
    reverts("collateral: insufficient balance", lambda: engine.withdraw("t", 0, ETH + 1, weth))
    reverts("collateral: insufficient balance", lambda: engine.transfer_collateral("t", 0, 1, ETH + 1, weth))


def test_equity__collateral_weights_and_haircut() -> None:
    engine = make_engine()
    weth = list_weth(engine)
    engine.upnl_haircut = 50 * PCT
    engine.deposit("t", 0, ETH, weth)  # 1 WETH: init 1,600, maint 1,800
    engine.modify_position("t", 0, 0, 5 * ETH, 2_000 * USD)  # fee 10 USDC: a debt
    assert engine.balance_of("t", 0) == -10 * USDC
    state = engine.account("t", 0)
    # E = -10 + 0 + 1,800 = 1,790; E_init = 1,790 - (1,800 - 1,600) = 1,590; IM 1,000, MM 500
    assert (state.equity_maint, state.equity_init) == (1_790 * USD, 1_590 * USD)
    assert (state.im_required, state.mm_required, state.status) == (1_000 * USD, 500 * USD, HEALTHY)
    engine.set_price(0, 2_100 * USD)
    state = engine.account("t", 0)
    # upnl 500: E = -10 + 500 + 1,800 = 2,290; E_init = 2,290 - 200 - 250 = 1,840
    assert (state.equity_maint, state.equity_init) == (2_290 * USD, 1_840 * USD)
    engine.set_price(0, 2_000 * USD)
    # a withdrawal with positions (and debt) keeps E_init >= IM: 0.5 WETH leaves 690 < 1,000
    reverts("engine: unhealthy", lambda: engine.withdraw("t", 0, ETH // 2, weth))
    engine.withdraw("t", 0, ETH // 10, weth)  # E = 1,610, E_init = 1,430
    assert engine.account("t", 0).equity_init == 1_430 * USD
    # the settlement balance never goes negative by a withdrawal or a transfer
    reverts("engine: insufficient balance", lambda: engine.withdraw("t", 0, 1))
    reverts("engine: insufficient balance", lambda: engine.transfer_collateral("t", 0, 1, 1))
    # the transfer margin: 15 % of 10,000 notional = 1,500 > E_init 1,430
    engine.transfer_margin_ratio = 15 * PCT
    reverts("engine: unhealthy", lambda: engine.withdraw("t", 0, 1, weth))


def test_flat_account_with_collateral_keeps_debt_then_collateral_liquidation_clears_bad_debt() -> None:
    engine = make_engine()
    weth = list_weth(engine)
    engine.fund_insurance(100 * USDC)
    engine.deposit("t", 0, ETH, weth)
    engine.modify_position("t", 0, 0, 5 * ETH, 2_000 * USD)  # fee 10
    engine.set_price(0, 1_700 * USD)
    engine.close_position("t", 0, 0, 0)  # realised -1,500, fee 8.5
    assert engine.balance_of("t", 0) == -1_518_500_000
    assert not any(name == "BadDebt" for name, _ in engine.events)
    # no positions, debt backed by 1,800 of collateral: HEALTHY, cannot withdraw below it
    assert engine.status("t", 0) == HEALTHY
    reverts("engine: unhealthy", lambda: engine.withdraw("t", 0, ETH // 10, weth))  # E_init 1,600 - 160 < 1,518.5
    engine.withdraw("t", 0, ETH // 100, weth)  # E_init = 1,584 - 1,518.5 >= 0
    engine.deposit("t", 0, ETH // 100, weth)
    # WETH at 1,800: E_init = 1,440 - 1,518.5 < 0 <= E = 1,620 - 1,518.5: a flat debtor is MARGIN_CALL
    engine.set_collateral_price(weth, 1_800 * USD)
    assert engine.status("t", 0) == MARGIN_CALL
    engine.set_collateral_price(weth, 2_000 * USD)
    assert engine.status("t", 0) == HEALTHY
    reverts("collateral: zero amount", lambda: engine.liquidate_collateral("keeper", "t", 0, weth, 0))
    reverts("collateral: no debt", lambda: engine.liquidate_collateral("t", "keeper", 0, weth, 1))
    reverts("collateral: unknown asset", lambda: engine.liquidate_collateral("keeper", "t", 0, "WBTC", 1))
    engine.list_collateral(8, 60_000 * USD, 50 * PCT, 60 * PCT, 0, 10**8, asset="WBTC")
    reverts("collateral: nothing to seize", lambda: engine.liquidate_collateral("keeper", "t", 0, "WBTC", USDC))
    engine.set_collateral_price(weth, 1_000 * USD)
    assert engine.status("t", 0) == BANKRUPT  # -1,518.5 + 900
    vault_before = engine.vault_assets
    seized = engine.liquidate_collateral("keeper", "t", 0, weth, 10**9 * USDC)
    # no positions: no limit; R = 1,518.5 buys 1,598.42 USD > 1 WETH (1,000 USD): balance binds,
    # R = ceil(ceil(1,000e18 * 0.95) / 1e12) = 950 USDC; the rest, 568.5, is bad debt
    assert seized == ETH
    assert engine.events[-2] == (
        "CollateralLiquidated",
        {"owner": "t", "sub": 0, "asset": weth, "liquidator": "keeper", "seized": ETH, "repaid": 950 * USDC},
    )
    assert engine.events[-1] == (
        "BadDebt",
        {"owner": "t", "sub": 0, "amount": 568_500_000, "insurance_paid": 100 * USDC, "vault_loss": 468_500_000},
    )
    assert engine.balance_of("t", 0) == 0 and engine.insurance == 0
    assert engine.vault_assets == vault_before - 468_500_000
    assert engine.balance_of("keeper", 0) == 100_000 * USDC - 950 * USDC
    assert engine.collateral_balance("keeper", 0, weth) == ETH
    assert engine.collaterals[weth].total == ETH


def test_liquidate_collateral__need_restores_target_exactly() -> None:
    engine = make_engine()
    weth = list_weth(engine, w_init=50 * PCT, w_maint=50 * PCT, discount=10 * PCT)
    engine.deposit("t", 0, 10 * ETH, weth)
    engine.modify_position("t", 0, 0, 5 * ETH, 2_000 * USD)  # fee 10
    engine.modify_position("t", 0, 1, ETH // 5, 50_000 * USD)  # fee 10
    engine.set_price(0, 1_600 * USD)
    engine.close_position("t", 0, 0, 0)  # realised -2,000, fee 8
    assert engine.balance_of("t", 0) == -2_028 * USDC
    reverts("collateral: not liquidatable", lambda: engine.liquidate_collateral("keeper", "t", 0, weth, USDC))
    engine.set_collateral_price(weth, 500 * USD)
    state = engine.account("t", 0)
    # E = -2,028 + 10 * 500 * 0.5 = 472 < MM 500
    assert (state.equity_maint, state.mm_required, state.status) == (472 * USD, 500 * USD, LIQUIDATABLE)
    # deficit = 550 - 472 = 78; need = 78 * 0.9 / 0.4 = 175.5; seized = 175.5 / 0.9 / 500 = 0.39 WETH
    assert engine.liquidate_collateral("keeper", "t", 0, weth, 10**6 * USDC) == 39 * ETH // 100
    assert engine.balance_of("t", 0) == -1_852_500_000
    state = engine.account("t", 0)
    # E = -1,852.5 + 9.61 * 500 * 0.5 = 550 = MM * 1.1
    assert state.equity_maint == mul_div_up(500 * USD, WAD + LIQ.buffer, WAD) == 550 * USD
    assert state.status == MARGIN_CALL  # E_init 550 < IM 1,000
    reverts("collateral: not liquidatable", lambda: engine.liquidate_collateral("keeper", "t", 0, weth, USDC))


def test_liquidate_collateral__liquidator_checks() -> None:
    engine = make_engine()
    weth = list_weth(engine)
    engine.deposit("t", 0, ETH, weth)
    engine.modify_position("t", 0, 0, 5 * ETH, 2_000 * USD)  # debt 10 USDC
    engine.set_price(0, 1_700 * USD)
    assert engine.status("t", 0) == LIQUIDATABLE  # E = -10 - 1,500 + 1,800 = 290 < 425
    reverts("engine: liquidator balance", lambda: engine.liquidate_collateral("poor", "t", 0, weth, USDC))
    engine.deposit("poor", 0, USDC)
    # R = min(1 USDC, debt) = 1 USDC: 1e18 // 0.95 // 2000 = 526_315_789_473_684 wei
    assert engine.liquidate_collateral("poor", "t", 0, weth, USDC) == 526_315_789_473_684
    assert engine.balance_of("poor", 0) == 0 and engine.balance_of("t", 0) == -9 * USDC
    # a liquidator's sub-account 0 must hold no positions, however healthy
    engine.deposit("lev", 0, 1_000 * USDC)
    engine.modify_position("lev", 0, 1, ETH // 25, 50_000 * USD)  # 2,000 notional, IM 200, fee 2
    assert engine.status("lev", 0) == HEALTHY
    reverts("engine: liquidator balance", lambda: engine.liquidate_collateral("lev", "t", 0, weth, USDC))
    engine.deposit("lev", 1, 10 * USDC)
    reverts("engine: liquidator balance", lambda: engine.liquidate_collateral("lev", "t", 0, weth, USDC))
    engine.close_position("lev", 0, 1, 0)
    engine.liquidate_collateral("lev", "t", 0, weth, USDC)
    # the vault rate is stored on a collateral liquidation (and on deposit / withdrawal)
    engine.list_collateral(18, USD, 50 * PCT, 50 * PCT, 0, 10**30, True, True, MAX_RATE_GROWTH, WAD, asset="V")
    engine.deposit("t", 0, ETH, "V")
    engine.set_vault_rate("V", 2 * WAD)
    engine.advance(1_000)
    engine.deposit("t", 0, ETH, "V")
    rate = engine.collaterals["V"].last_rate
    assert engine.events[-1] == ("RateUpdated", {"asset": "V", "live_rate": 2 * WAD, "rate": rate})
    assert engine.collaterals["V"].last_time == engine.now
    assert engine.collaterals["V"].last_rate == WAD + WAD * MAX_RATE_GROWTH * 1_000 // WAD
    reverts("collateral: not a vault", lambda: engine.update_rate(weth))
    engine.advance(1)
    assert engine.update_rate("V") == engine.collaterals["V"].last_rate > WAD + WAD * MAX_RATE_GROWTH * 1_000 // WAD


def test_liquidate_collateral__nothing_for_free() -> None:
    """A unit worth nothing at the oracle price (rounded down) repays nothing: refused."""
    engine = make_engine()
    weth = list_weth(engine)
    engine.list_collateral(2, USD, 50 * PCT, 50 * PCT, 10 * PCT, 10**6, asset="DUST")
    engine.deposit("t", 0, ETH, weth)
    engine.deposit("t", 0, 1, "DUST")
    engine.modify_position("t", 0, 0, 5 * ETH, 2_000 * USD)
    engine.close_position("t", 0, 0, 0)  # fees 20 USDC: debt, no positions
    engine.set_collateral_price("DUST", 1)
    reverts("collateral: nothing to seize", lambda: engine.liquidate_collateral("keeper", "t", 0, "DUST", USDC))
    engine.set_collateral_price("DUST", USD)
    # 0.01 token at 1 USD: usd = 1e16, R = ceil(1e16 * 0.9 / 1e12) = 9,000 units
    assert engine.liquidate_collateral("keeper", "t", 0, "DUST", USDC) == 1
    assert engine.events[-1][1]["repaid"] == 9_000


# --------------------------------------------------------------------------
#                              Properties
# --------------------------------------------------------------------------

DECIMALS = st.sampled_from([2, 6, 8, 18])


@st.composite
def collateral_setups(draw: st.DrawFn) -> dict[str, int]:
    w_maint = draw(st.integers(10 * PCT, WAD))
    return {
        "decimals": draw(DECIMALS),
        "price": draw(st.integers(USD // 100, 100_000 * USD)),
        "w_maint": w_maint,
        "w_init": draw(st.integers(w_maint // 2, w_maint)),
        "discount": draw(st.integers(0, min(20 * PCT, WAD - w_maint))),
        "usd": draw(st.integers(500, 100_000)),  # collateral deposited, whole USD
        "lev": draw(st.integers(1, 30)),  # position notional, tenths of the collateral's init value
        "drop": draw(st.integers(0, 40)),  # % the market falls before the close
        "crash": draw(st.integers(0, 90)),  # % the collateral then falls (no positions left)
        "target": draw(st.integers(-50, 99)),  # with a position left: E as % of MM after the collateral falls
        "keep": draw(st.booleans()),  # keep a second position open
    }


def debt_account(s: dict[str, int]) -> tuple[Engine, str]:
    """An account whose settlement debt (realised loss and fees) is backed by collateral."""
    engine = make_engine()
    scale = 10 ** (18 - s["decimals"])
    key = engine.list_collateral(s["decimals"], s["price"], s["w_init"], s["w_maint"], s["discount"], 2**127, asset="X")
    units = ceil_div(s["usd"] * USD * WAD, s["price"] * scale)
    engine.deposit("t", 0, units, key)
    value_init = engine.collateral_value("t", 0)[0]
    notional = value_init * s["lev"] // 10
    size = max(notional * WAD // (2_000 * USD), ETH // 100)
    try:
        engine.modify_position("t", 0, 0, size, 2_000 * USD)
        if s["keep"]:
            engine.modify_position("t", 0, 1, max(size // 50, ETH // 1000), 50_000 * USD)
    except ModelRevert:
        assume(False)
    engine.set_price(0, 2_000 * USD * (100 - s["drop"]) // 100)
    try:
        engine.close_position("t", 0, 0, 0)  # a reduction of a bankrupt account may be refused
    except ModelRevert:
        assume(False)
    if not s["keep"]:
        engine.set_collateral_price(key, max(s["price"] * (100 - s["crash"]) // 100, 1))
        return engine, key
    state = engine.account("t", 0)
    value_maint = engine.collateral_value("t", 0)[1]
    wanted = state.mm_required * s["target"] // 100 - (state.equity_maint - value_maint)
    engine.set_collateral_price(key, max(s["price"] * max(wanted, 0) // value_maint, 1))
    return engine, key


@FAST
@given(
    setup=collateral_setups(),
    max_repay=st.one_of(st.integers(1, 10**6), st.integers(1, 10**12), st.just(2**128)),
)
def test_property__collateral_liquidation_never_worsens_and_repays_at_most_need(
    setup: dict[str, int], max_repay: int
) -> None:
    engine, key = debt_account(setup)
    acct = engine.accounts[("t", 0)]
    assume(acct.balance < 0)
    before = engine.account("t", 0)
    a = engine.collaterals[key]
    need = None
    if acct.positions:
        assume(before.status in (LIQUIDATABLE, BANKRUPT))
        deficit = mul_div_up(before.mm_required, WAD + LIQ.buffer, WAD) - before.equity_maint
        if a.w_maint + a.discount < WAD:
            need = ceil_div(ceil_div(deficit * (WAD - a.discount), WAD - a.discount - a.w_maint), SCALE)
    debt = -acct.balance
    held = acct.collateral[key]
    price = engine.asset_price(key)
    n_events = len(engine.events)
    try:
        seized = engine.liquidate_collateral("keeper", "t", 0, key, max_repay)
    except ModelRevert as exc:
        assert exc.reason == "collateral: nothing to seize"
        event("nothing to seize")
        return
    event("with positions" if before.positions else "no positions")
    liq = next(f for name, f in engine.events[n_events:] if name == "CollateralLiquidated")
    repaid = liq["repaid"]
    assert liq["seized"] == seized and 0 < seized <= held
    after = engine.account("t", 0)
    # (a) the account ends no worse off: E - M never falls
    assert after.equity_maint - after.mm_required >= before.equity_maint - before.mm_required
    assert after.mm_required == before.mm_required
    assert repaid <= min(max_repay, debt)
    if need is not None:
        assert repaid <= need
        event("need binds" if repaid == need else "need slack")
    # (b) the liquidator's gain is bounded by the discount: value * (1 - d) <= repaid
    value = collateral_usd(seized, a.scale, price)
    assert value * (WAD - a.discount) <= repaid * SCALE * WAD
    # the keeper paid exactly the repayment and received exactly the seizure
    assert engine.balance_of("keeper", 0) == 100_000 * USDC - repaid
    assert engine.collateral_balance("keeper", 0, key) == seized
    if seized == held:
        event("balance binds")
        if not after.positions and engine.balance_of("t", 0) < 0:
            raise AssertionError("a flat account without collateral keeps no debt")


# ------------------------------------------------------ ledger state machine

TRADERS = ["alice", "bob"]
ASSETS = ["WETH", "WBTC", "VUSD"]


class CollateralLedger(RuleBasedStateMachine):
    """Random deposits, withdrawals, transfers, trades, price moves and both
    kinds of liquidation: (c) the ledger is conserved per asset and for the
    settlement token, (d) a flat account without debt can withdraw everything."""

    @initialize()
    def setup(self) -> None:
        e = Engine(token_decimals=6, liq_params=LIQ, now=1_000)
        e.add_market(PARAMS, 2_000 * USD)
        e.add_market(PARAMS, 50_000 * USD)
        e.list_collateral(18, 2_000 * USD, 75 * PCT, 85 * PCT, 5 * PCT, 10**9 * ETH, asset="WETH")
        e.list_collateral(8, 60_000 * USD, 70 * PCT, 80 * PCT, 10 * PCT, 10**6 * 10**8, asset="WBTC")
        e.list_collateral(18, USD, 90 * PCT, 95 * PCT, 5 * PCT, 10**12 * ETH, True, True, MAX_RATE_GROWTH, WAD, "VUSD")
        self.engine = e
        self.deposits = 0  # settlement tokens in through deposit
        self.withdrawals = 0
        self.lp = 0  # vault capital and insurance funding
        self.flows = {k: 0 for k in ASSETS}  # per asset: deposits - withdrawals
        self._try(lambda: e.vault_deposit(1_000_000 * USDC))
        self.lp += 1_000_000 * USDC
        e.deposit("keeper", 0, 1_000_000 * USDC)
        self.deposits += 1_000_000 * USDC

    def _try(self, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except ModelRevert:
            return False
        return True

    def _units(self, key: str, usd: int) -> int:
        a = self.engine.collaterals[key]
        return max(usd * USD * WAD // (self.engine.asset_price(key) * a.scale), 1)

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), amount=st.integers(1, 5_000))
    def deposit_settlement(self, who: str, sub: int, amount: int) -> None:
        self.engine.deposit(who, sub, amount * USDC)
        self.deposits += amount * USDC

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), key=st.sampled_from(ASSETS), usd=st.integers(1, 20_000))
    def deposit_collateral(self, who: str, sub: int, key: str, usd: int) -> None:
        units = self._units(key, usd)
        if self._try(lambda: self.engine.deposit(who, sub, units, key)):
            self.flows[key] += units

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), key=st.sampled_from([None, *ASSETS]),
          frac=st.integers(1, 100))  # fmt: skip
    def withdraw(self, who: str, sub: int, key: str | None, frac: int) -> None:
        e = self.engine
        held = e.balance_of(who, sub) if key is None else e.collateral_balance(who, sub, key)
        amount = max(held * frac // 100, 1)
        if self._try(lambda: e.withdraw(who, sub, amount, key)):
            if key is None:
                self.withdrawals += amount
            else:
                self.flows[key] -= amount
            event("withdrawal")

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), key=st.sampled_from([None, *ASSETS]),
          frac=st.integers(1, 100))  # fmt: skip
    def transfer(self, who: str, sub: int, key: str | None, frac: int) -> None:
        e = self.engine
        held = e.balance_of(who, sub) if key is None else e.collateral_balance(who, sub, key)
        self._try(lambda: e.transfer_collateral(who, sub, 1 - sub, max(held * frac // 100, 1), key))

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), market=st.integers(0, 1),
          lev=st.integers(-95, 95), close=st.booleans())  # fmt: skip
    def trade(self, who: str, sub: int, market: int, lev: int, close: bool) -> None:
        e = self.engine
        price = e.markets[market].price
        pos = e.position(who, sub, market)
        if close and pos is not None:
            self._try(lambda: e.close_position(who, sub, market, 0 if pos.size > 0 else 2**200))
            return
        state = e.account(who, sub)
        size = max(state.equity_init, 0) * abs(lev) * WAD // 10 // price  # base units: lev / 10 x E_init
        if lev == 0 or size * price // WAD < 20 * USD:
            return
        delta = size if lev > 0 else -size
        self._try(lambda: e.modify_position(who, sub, market, delta, 2**200 if delta > 0 else 0))

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), market=st.integers(0, 1), long=st.booleans(),
          pct=st.integers(5, 12), close=st.booleans())  # fmt: skip
    def lever_and_lose(self, who: str, sub: int, market: int, long: bool, pct: int, close: bool) -> None:
        """Open at 9x the initial equity, move the price against it, maybe close:
        the realised loss is a settlement debt backed by collateral."""
        self.trade(who, sub, market, 90 if long else -90, close=False)
        self.move_price(market, -pct if long else pct)
        if close:
            self.trade(who, sub, market, 0, close=True)
        if self.engine.balance_of(who, sub) < 0:
            event("debt")

    @rule(market=st.integers(0, 1), pct=st.integers(-30, 30))
    def move_price(self, market: int, pct: int) -> None:
        e = self.engine
        e.set_price(market, max(e.markets[market].price * (100 + pct) // 100, 1))

    @rule(key=st.sampled_from(["WETH", "WBTC"]), pct=st.integers(-50, 30))
    def move_collateral_price(self, key: str, pct: int) -> None:
        e = self.engine
        e.set_collateral_price(key, max(e.collaterals[key].price * (100 + pct) // 100, 1))

    @rule(pct=st.integers(-20, 50), store=st.booleans())
    def vault_rate(self, pct: int, store: bool) -> None:
        e = self.engine
        a = e.collaterals["VUSD"]
        e.set_vault_rate("VUSD", max(a.live_rate * (100 + pct) // 100, 1))
        if store:
            e.update_rate("VUSD")

    @rule(seconds=st.integers(0, 30 * 86_400))
    def advance(self, seconds: int) -> None:
        self.engine.advance(seconds)

    @rule(amount=st.integers(1, 10_000))
    def fund(self, amount: int) -> None:
        self.engine.fund_insurance(amount * USDC)
        self.lp += amount * USDC

    @rule()
    def liquidate_positions(self) -> None:
        e = self.engine
        for (who, sub), acct in list(e.accounts.items()):
            if acct.positions and e.status(who, sub) in (LIQUIDATABLE, BANKRUPT):
                if self._try(lambda: e.liquidate("keeper", who, sub, min(acct.positions), 2**255)):
                    event("liquidation")
                return

    @rule(pick=st.integers(0, 3), max_repay=st.sampled_from([1, 100 * USDC, 2**128]))
    def liquidate_collateral(self, pick: int, max_repay: int) -> None:
        """Liquidate an asset (the ``pick``-th held) of the first account with a debt."""
        e = self.engine
        for (who, sub), acct in list(e.accounts.items()):
            if acct.balance < 0 and acct.collateral:
                key = sorted(acct.collateral)[pick % len(acct.collateral)]
                n_events = len(e.events)
                if self._try(lambda: e.liquidate_collateral("keeper", who, sub, key, max_repay)):
                    event("collateral liquidation")
                    if any(name == "BadDebt" for name, _ in e.events[n_events:]):
                        event("collateral liquidation: bad debt")
                return

    @rule(who=st.sampled_from(TRADERS), sub=st.integers(0, 1), real=st.booleans())
    def withdraw_everything(self, who: str, sub: int, real: bool) -> None:
        """(d) an account without positions and without debt withdraws every asset in full."""
        e = self.engine
        acct = e.accounts.get((who, sub))
        if acct is None or acct.positions or acct.balance < 0:
            return
        target = e if real else copy.deepcopy(e)
        balance = acct.balance
        held = dict(acct.collateral)
        for key, units in held.items():
            target.withdraw(who, sub, units, key)  # must not revert
        if balance > 0:
            target.withdraw(who, sub, balance)
        assert target.account(who, sub).equity_maint == 0
        if real:
            event("withdrew everything")
            self.withdrawals += balance
            for key, units in held.items():
                self.flows[key] -= units

    @invariant()
    def ledger_is_conserved(self) -> None:
        e = self.engine
        accounts = e.accounts.values()
        for key in ASSETS:
            held = sum(a.collateral.get(key, 0) for a in accounts)
            assert e.collaterals[key].total == held == self.flows[key]
            assert all(a.collateral.get(key, 1) > 0 for a in accounts)
        total = sum(a.balance for a in accounts) + e.insurance + e.vault_assets
        assert total == self.deposits - self.withdrawals + self.lp == e.custody

    @invariant()
    def debt_needs_positions_or_collateral(self) -> None:
        for acct in self.engine.accounts.values():
            assert acct.balance >= 0 or acct.positions or acct.collateral
        assert self.engine.insurance >= 0


TestCollateralLedger = CollateralLedger.TestCase
TestCollateralLedger.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
