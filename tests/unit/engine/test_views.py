"""Unit tests of the engine's views (`account`, `status`, `position`,
`balance_of`, `vault_assets`, `oracle_price`, the vault's `free_assets`) and of the
`MarginLens` views (docs/engine-spec.md: "Position valuation", "Account
state", "Liquidation price (view)", "Vault ledger").

Views run at the head block's timestamp. Tests that check equity by hand
switch funding off (`funding_rate_max = 0`); the funding tests pin block
timestamps with `chain.pending_timestamp`.
"""

from __future__ import annotations

import ape
import pytest

from margin_engine.model import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    Market,
    MarketParams,
    Position,
    account_state,
    ceil_div,
    floor_div,
    liquidation_price,
    mul_div_up,
)

WAD = 10**18
USDC = 10**6
SCALE = 10**12
BTC, ETH = 0, 1
FEED = 10**8
TICK = 10**10  # one unit of an 8-decimal answer, in WAD
IMR, MMR = WAD // 10, WAD // 20
FUNDING_MAX = WAD * 5 // 10_000 // 3_600  # 138,888,888,888 per second at full skew
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


# --------------------------------------------------------------------------
#                                 Helpers
# --------------------------------------------------------------------------


def set_funding_rate(configurator, lens, risk_manager, market, rate):
    p = lens.market_params(market)
    params = (p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, rate)
    configurator.set_market_params(market, params, sender=risk_manager)


@pytest.fixture
def no_funding(configurator, lens, risk_manager):
    set_funding_rate(configurator, lens, risk_manager, BTC, 0)
    set_funding_rate(configurator, lens, risk_manager, ETH, 0)


@pytest.fixture
def price(btc_feed, eth_feed, admin):
    """price(market, answer): a fresh round with an 8-decimal answer."""

    def set_answer(market, answer):
        (btc_feed if market == BTC else eth_feed).set_answer(answer, sender=admin)

    return set_answer


@pytest.fixture
def long_btc(no_funding, trader, fund, open_position):
    """Funding off; 6,860 USDC in, 1 BTC long at $60,000 (fee 60, balance 6,800).
    E = 6,800 + (P - 60,000): MARGIN_CALL below $59,111.11, LIQUIDATABLE
    below $56,000, BANKRUPT below $53,200."""
    fund(trader, 6_860 * USDC)
    open_position(trader, BTC, WAD)


def invalidate(feed, admin, chain, how):
    """Make a feed's latest round invalid: stale, zero, negative or out of bounds."""
    now = chain.pending_timestamp
    if how == "stale":
        feed.set_round(feed.latestRoundData()[1], now - 3_601, sender=admin)
    elif how == "zero":
        feed.set_round(0, now, sender=admin)
    elif how == "negative":
        feed.set_round(-1, now, sender=admin)
    else:  # 100x + 1 tick: above max_price
        feed.set_round(feed.latestRoundData()[1] * 100 + 1, now, sender=admin)


def fields(state):
    return (
        state.equity_init,
        state.equity_maint,
        state.im_required,
        state.mm_required,
        state.status,
        state.prices_ok,
        state.positions,
    )


# --------------------------------------------------------------------------
#                            account() and status()
# --------------------------------------------------------------------------


def test_account__unknown_account__all_zero_and_healthy(engine, attacker):
    assert fields(engine.account(attacker, 7)) == (0, 0, 0, 0, HEALTHY, True, 0)
    assert engine.status(attacker, 7) == HEALTHY


def test_account__collateral_only__equity_is_the_balance(engine, trader, fund):
    fund(trader, 123_456_789)  # 123.456789 USDC
    assert fields(engine.account(trader, 0)) == (123_456_789 * SCALE, 123_456_789 * SCALE, 0, 0, HEALTHY, True, 0)
    # another sub-account of the same owner is separate
    assert fields(engine.account(trader, 1)) == (0, 0, 0, 0, HEALTHY, True, 0)


def test_account__open_long__each_field(engine, trader, long_btc):
    assert fields(engine.account(trader, 0)) == (
        6_800 * WAD,  # balance, no PnL yet
        6_800 * WAD,
        6_000 * WAD,  # 10 % of 60,000
        3_000 * WAD,  # 5 %
        HEALTHY,
        True,
        1,
    )


def test_account__two_markets__sums_positions(engine, trader, fund, open_position, no_funding, price):
    fund(trader, 9_200 * USDC)
    open_position(trader, BTC, WAD)
    open_position(trader, ETH, -10 * WAD)  # short 10 ETH at 3,000: fee 30
    price(BTC, 61_000 * FEED)  # +1,000
    price(ETH, 3_100 * FEED)  # -1,000 on the short

    # E = 9,110 + 1,000 - 1,000; IM = 6,100 + 3,100; MM = 3,050 + 1,550
    assert fields(engine.account(trader, 0)) == (
        9_110 * WAD,
        9_110 * WAD,
        9_200 * WAD,
        4_600 * WAD,
        MARGIN_CALL,
        True,
        2,
    )


@pytest.mark.parametrize(
    "answer, status",
    [
        (60_000 * FEED, HEALTHY),
        (5_911_111_111_112, HEALTHY),  # E 5,911.11111112 >= IM 5,911.111111112
        (5_911_111_111_111, MARGIN_CALL),  # E 5,911.11111111 < IM 5,911.111111111
        (56_000 * FEED, MARGIN_CALL),  # E 2,800 == MM 2,800
        (5_599_999_999_999, LIQUIDATABLE),  # E 2,799.99999999 < MM 2,799.9999999995
        (53_200 * FEED, LIQUIDATABLE),  # E == 0
        (5_319_999_999_999, BANKRUPT),  # E = -0.00000001
    ],
)
def test_status__boundaries_made_with_price_moves(engine, trader, long_btc, price, answer, status):
    price(BTC, answer)
    p = answer * TICK
    state = engine.account(trader, 0)
    equity = 6_800 * WAD + p - 60_000 * WAD
    assert fields(state) == (equity, equity, mul_div_up(p, IMR, WAD), mul_div_up(p, MMR, WAD), status, True, 1)
    assert engine.status(trader, 0) == status


def test_status__equity_exactly_initial_margin__healthy(engine, trader, fund, open_position, no_funding, price):
    fund(trader, 6_060 * USDC)  # balance 6,000 after the fee: E == IM at 60,000
    open_position(trader, BTC, WAD)
    state = engine.account(trader, 0)
    assert (state.equity_init, state.im_required, state.status) == (6_000 * WAD, 6_000 * WAD, HEALTHY)

    price(BTC, 60_000 * FEED - 1)

    assert engine.status(trader, 0) == MARGIN_CALL


# --------------------------------------------------------------------------
#                                  position()
# --------------------------------------------------------------------------


def pos_fields(pos):
    return (
        pos.size,
        pos.entry_price,
        pos.funding_index,
        pos.notional,
        pos.unrealized_pnl,
        pos.funding_owed,
        pos.price_ok,
    )


def test_position__none__zeros(engine, trader):
    assert pos_fields(engine.position(trader, 0, BTC)) == (0, 0, 0, 0, 0, 0, False)
    # an unlisted market id does not revert either
    assert pos_fields(engine.position(trader, 0, 99)) == (0, 0, 0, 0, 0, 0, False)


def test_position__long_in_profit__fields(engine, trader, long_btc, price):
    price(BTC, 61_000 * FEED)
    assert pos_fields(engine.position(trader, 0, BTC)) == (WAD, 60_000 * WAD, 0, 61_000 * WAD, 1_000 * WAD, 0, True)


def test_position__odd_short__notional_rounds_up_pnl_rounds_down(
    engine, trader, fund, open_position, no_funding, price
):
    size = 123_456_789_123_456_789  # 0.123456789123456789 BTC short
    fund(trader, 1_000 * USDC)
    open_position(trader, BTC, -size)
    answer = 6_000_012_345_678  # 60,000.12345678
    price(BTC, answer)
    p = answer * TICK

    pos = engine.position(trader, 0, BTC)

    # notional = ceil(s P / WAD); pnl = floor(-s (P - e) / WAD)
    notional = ceil_div(size * p, WAD)
    pnl = floor_div(-size * (p - 60_000 * WAD), WAD)
    assert notional == 7_407_422_588_985_061_660_998  # 7,407.42 USD
    assert pnl == -15_241_577_654_320_998  # -0.0152 USD
    assert pos_fields(pos) == (-size, 60_000 * WAD, 0, notional, pnl, 0, True)


def test_position__time_passes_with_skewed_open_interest__funding_owed(
    chain, engine, lens, trader, other_trader, fund, open_position, price
):
    fund(trader, 20_000 * USDC)
    fund(other_trader, 10_000 * USDC)
    opened = open_position(trader, BTC, 2 * WAD)  # L = 2, S = 0: full long skew
    t0 = opened.timestamp
    chain.pending_timestamp = t0 + 100
    open_position(other_trader, BTC, -WAD)  # settles 100 s at the full rate; then L = 2, S = 1
    # index after 100 s: 60,000 x 138,888,888,888 x 100
    i1 = 60_000 * FUNDING_MAX * 100
    assert i1 == 833_333_333_328_000_000
    state = lens.market_state(BTC)
    assert (state.long_oi, state.short_oi, state.funding_index, state.last_funding_time) == (
        2 * WAD,
        WAD,
        i1,
        t0 + 100,
    )
    chain.pending_timestamp = t0 + 1_900
    price(BTC, 60_000 * FEED)  # a fresh round at t0 + 1,900 (the view's time)
    assert chain.blocks.head.timestamp == t0 + 1_900

    # rate = floor(max x (2 - 1) / 3) = 46,296,296,296 per second, for 1,800 s
    i2 = i1 + 60_000 * (FUNDING_MAX // 3) * 1_800
    assert i2 == 833_333_333_328_000_000 + 4_999_999_999_968_000_000
    longs = engine.position(trader, 0, BTC)
    shorts = engine.position(other_trader, 0, BTC)
    # longs owe 2 x i2; the short, entered at i1, receives i2 - i1
    assert pos_fields(longs) == (2 * WAD, 60_000 * WAD, 0, 120_000 * WAD, -2 * i2, 2 * i2, True)
    assert pos_fields(shorts) == (-WAD, 60_000 * WAD, i1, 60_000 * WAD, i2 - i1, -(i2 - i1), True)
    # account() counts the same funding
    assert engine.account(trader, 0).equity_maint == (20_000 - 120) * WAD - 2 * i2


# --------------------------------------------------------------------------
#                                  balance_of()
# --------------------------------------------------------------------------


def test_balance_of__settlement_asset_and_unknown_assets(engine, usdc, vault, btc_feed, trader, fund):
    fund(trader, 250 * USDC, sub=3)
    assert engine.balance_of(trader, 3, usdc) == 250 * USDC
    assert engine.balance_of(trader, 0, usdc) == 0
    # unlisted assets read 0, whatever the account holds
    assert engine.balance_of(trader, 3, btc_feed) == 0
    assert engine.balance_of(trader, 3, vault) == 0
    assert engine.balance_of(trader, 3, ZERO_ADDRESS) == 0


# --------------------------------------------------------------------------
#                       Views with an invalid price
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stale", "zero", "negative", "above_max"])
def test_views__invalid_price__never_revert_and_flag_it(
    chain, engine, vault, lens, trader, fund, open_position, no_funding, eth_feed, admin, how
):
    fund(trader, 9_200 * USDC)
    open_position(trader, BTC, WAD)
    open_position(trader, ETH, 10 * WAD)  # balance 9,200 - 60 - 30
    invalidate(eth_feed, admin, chain, how)

    # the ETH position is left out: only BTC is valued
    assert fields(engine.account(trader, 0)) == (9_110 * WAD, 9_110 * WAD, 6_000 * WAD, 3_000 * WAD, HEALTHY, False, 2)
    assert engine.status(trader, 0) == HEALTHY
    assert pos_fields(engine.position(trader, 0, ETH)) == (10 * WAD, 3_000 * WAD, 0, 0, 0, 0, False)
    assert engine.position(trader, 0, BTC).price_ok
    assert engine.oracle_price(ETH) == (0, False)
    assert engine.oracle_price(BTC) == (60_000 * WAD, True)
    # the reserve needs the ETH price
    assert vault.free_assets() == 0
    assert lens.liquidation_price(trader, 0, ETH) == 0
    assert lens.liquidation_price(trader, 0, BTC) == 0  # the account's valuation is incomplete


# --------------------------------------------------------------------------
#                 vault_assets() and the vault's free_assets()
# --------------------------------------------------------------------------


def reserve(net, p, factor=WAD // 2):
    """ceil_div(mul_div_up(mul_div_up(|L - S|, P, WAD), factor, WAD), SCALE)"""
    return ceil_div(mul_div_up(mul_div_up(net, p, WAD), factor, WAD), SCALE)


def test_vault_assets__lp_capital_plus_fees(engine, trader, fund, open_position):
    assert engine.vault_assets() == 1_000_000 * USDC
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    assert engine.vault_assets() == 1_000_060 * USDC  # + 0.1 % of 60,000


def test_vault_free_assets__no_open_interest__all_assets(engine, vault):
    assert vault.free_assets() == engine.vault_assets() == 1_000_000 * USDC


def test_vault_free_assets__reserve_of_the_net_skew_rounded_up(
    configurator,
    engine, vault, trader, other_trader, fund, open_position, risk_manager
):
    long = 123_456_789_123_456_789
    fund(trader, 1_000 * USDC)
    fund(other_trader, 1_000 * USDC)
    open_position(trader, BTC, long)
    open_position(other_trader, BTC, -WAD // 20)
    open_position(other_trader, ETH, -WAD)  # ETH: short skew of 1
    # fees: ceil(0.1 % x 7,407.40734740740734) = 7.407408, 3, 3
    assets = 1_000_013_407_408
    assert engine.vault_assets() == assets
    # BTC: |L - S| = 0.073456789123456789 -> 4,407.40734740740734 USD x 50 % -> 2,203.703674 USDC
    btc = reserve(long - WAD // 20, 60_000 * WAD)
    eth = reserve(WAD, 3_000 * WAD)
    assert (btc, eth) == (2_203_703_674, 1_500 * USDC)
    assert vault.free_assets() == assets - btc - eth

    configurator.set_reserve_factor(WAD // 10, sender=risk_manager)

    assert vault.free_assets() == assets - reserve(long - WAD // 20, 60_000 * WAD, WAD // 10) - 300 * USDC


def test_vault_free_assets__balanced_open_interest__nothing_reserved(engine, vault, trader, other_trader, fund, open_position):
    fund(trader, 10_000 * USDC)
    fund(other_trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    open_position(other_trader, BTC, -WAD)
    assert vault.free_assets() == engine.vault_assets() == 1_000_120 * USDC


def test_vault_free_assets__reserve_above_assets__zero(configurator, engine, vault, trader, fund, open_position, risk_manager):
    configurator.set_reserve_factor(WAD, sender=risk_manager)
    fund(trader, 110_000 * USDC)
    open_position(trader, BTC, 17 * WAD)  # 1,020,000 USD of skew, all reserved
    assert engine.vault_assets() == 1_001_020 * USDC
    assert vault.free_assets() == 0


# --------------------------------------------------------------------------
#                                oracle_price()
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        (61_234_567_890_123, (612_345_678_901_230_000_000_000, True)),  # 8 decimals -> WAD
        (600 * FEED, (600 * WAD, True)),  # min_price is valid
        (600 * FEED - 1, (0, False)),
        (6_000_000 * FEED, (6_000_000 * WAD, True)),  # max_price is valid
        (6_000_000 * FEED + 1, (0, False)),
    ],
)
def test_oracle_price__normalised_and_bounded(engine, price, answer, expected):
    price(BTC, answer)
    assert engine.oracle_price(BTC) == expected


@pytest.mark.parametrize("how", ["stale", "zero", "negative"])
def test_oracle_price__invalid_round__zero_and_false(chain, engine, btc_feed, admin, how):
    invalidate(btc_feed, admin, chain, how)
    assert engine.oracle_price(BTC) == (0, False)


def test_oracle_price__exactly_heartbeat_old__valid(chain, engine, btc_feed, admin):
    now = chain.pending_timestamp
    btc_feed.set_round(60_000 * FEED, now - 3_599, sender=admin)
    chain.mine(timestamp=now + 1)  # the round is exactly 3,600 s old
    assert engine.oracle_price(BTC) == (60_000 * WAD, True)
    chain.mine()  # 3,601 s
    assert engine.oracle_price(BTC) == (0, False)


def test_oracle_price__unknown_market__reverts(engine):
    with ape.reverts("engine: unknown market"):
        engine.oracle_price(2)


# --------------------------------------------------------------------------
#                                 Lens views
# --------------------------------------------------------------------------


def test_lens_market_params__listed_values(lens):
    for market, max_oi in ((BTC, 1_000 * WAD), (ETH, 20_000 * WAD)):
        p = lens.market_params(market)
        assert (p.imr, p.mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, p.funding_rate_max) == (
            IMR,
            MMR,
            WAD // 1000,
            WAD // 50,
            max_oi,
            10 * WAD,
            FUNDING_MAX,
        )


def test_lens_oracle_config__listed_values(lens, btc_feed, eth_feed):
    for market, feed, usd in ((BTC, btc_feed, 60_000), (ETH, eth_feed, 3_000)):
        c = lens.oracle_config(market)
        assert (c.feed, c.heartbeat, c.decimals, c.min_price, c.max_price) == (
            feed.address,
            3_600,
            8,
            usd * WAD // 100,
            usd * WAD * 100,
        )


def test_lens_market_state__open_interest_and_funding(chain, lens, trader, other_trader, fund, open_position):
    state = lens.market_state(ETH)
    assert (state.long_oi, state.short_oi, state.funding_index) == (0, 0, 0)
    fund(trader, 10_000 * USDC)
    fund(other_trader, 10_000 * USDC)
    opened = open_position(other_trader, ETH, -3 * WAD)  # S = 3: full short skew
    chain.pending_timestamp = opened.timestamp + 50

    receipt = open_position(trader, ETH, WAD)

    # index = floor(3,000 x (-max) x 50) -> shorts pay
    state = lens.market_state(ETH)
    assert (state.long_oi, state.short_oi, state.funding_index, state.last_funding_time) == (
        WAD,
        3 * WAD,
        -3_000 * FUNDING_MAX * 50,
        receipt.timestamp,
    )


def test_lens_open_markets__follow_opens_and_closes(engine, lens, trader, fund, open_position):
    fund(trader, 20_000 * USDC)
    assert lens.open_markets(trader, 0) == []
    open_position(trader, BTC, WAD // 10)
    open_position(trader, ETH, WAD)
    assert lens.open_markets(trader, 0) == [BTC, ETH]
    engine.close_position(trader, 0, BTC, 0, sender=trader)
    assert lens.open_markets(trader, 0) == [ETH]
    open_position(trader, BTC, -WAD // 10)
    assert lens.open_markets(trader, 0) == [ETH, BTC]
    assert lens.open_markets(trader, 1) == []


def test_lens_margin_mode__isolated_flag_per_sub_account(engine, lens, trader):
    assert not lens.margin_mode(trader, 1)
    engine.set_margin_mode(1, True, sender=trader)
    assert lens.margin_mode(trader, 1)
    assert not lens.margin_mode(trader, 0)
    engine.set_margin_mode(1, False, sender=trader)
    assert not lens.margin_mode(trader, 1)


# --------------------------------------------------------------------------
#                            Lens liquidation_price
# --------------------------------------------------------------------------


def spec_liquidation_price(state, size, p):
    """docs/engine-spec.md: slack = E - M; long d = |s| (1 - mmr), short d = |s| (1 + mmr)."""
    slack = state.equity_maint - state.mm_required
    if size > 0:
        d = size * (WAD - MMR) // WAD
        result = p - floor_div(slack * WAD, d)
    else:
        d = -size * (WAD + MMR) // WAD
        result = p + floor_div(slack * WAD, d)
    return max(result, 0)


def test_liquidation_price__long__turns_liquidatable_just_below(engine, lens, trader, long_btc, price):
    # slack = 6,800 - 3,000; p = 60,000 - 3,800 / 0.95 = 56,000
    liq = lens.liquidation_price(trader, 0, BTC)
    assert liq == 56_000 * WAD == spec_liquidation_price(engine.account(trader, 0), WAD, 60_000 * WAD)

    ticks = [(56_000 * FEED + 1, MARGIN_CALL), (56_000 * FEED, MARGIN_CALL), (56_000 * FEED - 1, LIQUIDATABLE)]
    for answer, status in ticks:
        price(BTC, answer)
        assert engine.status(trader, 0) == status
    # valued from the current price, the liquidation price stays where it is
    assert lens.liquidation_price(trader, 0, BTC) == 56_000 * WAD


def test_liquidation_price__short__turns_liquidatable_just_above(
    engine, lens, trader, fund, open_position, no_funding, price
):
    fund(trader, 6_860 * USDC)
    open_position(trader, BTC, -WAD)
    # p = 60,000 + 3,800 / 1.05 = 63,619.047619047619047619...
    liq = lens.liquidation_price(trader, 0, BTC)
    assert (
        liq == 63_619_047_619_047_619_047_619 == spec_liquidation_price(engine.account(trader, 0), -WAD, 60_000 * WAD)
    )

    price(BTC, liq // TICK)  # 63,619.04761904: just below
    assert engine.status(trader, 0) == MARGIN_CALL
    price(BTC, liq // TICK + 1)  # 63,619.04761905: just above
    assert engine.status(trader, 0) == LIQUIDATABLE


def test_liquidation_price__odd_size_cross_account__spec_formula_and_boundary(
    engine, lens, trader, fund, open_position, no_funding, price
):
    size = 123_456_789_123_456_789
    fund(trader, 1_000 * USDC)
    open_position(trader, BTC, size)
    open_position(trader, ETH, -WAD // 10)
    price(BTC, 6_012_345_678_901)  # 60,123.45678901
    p = 6_012_345_678_901 * TICK

    liq = lens.liquidation_price(trader, 0, BTC)

    assert liq == spec_liquidation_price(engine.account(trader, 0), size, p)
    price(BTC, liq // TICK + 1)
    assert engine.status(trader, 0) == MARGIN_CALL
    price(BTC, liq // TICK)
    assert engine.status(trader, 0) == LIQUIDATABLE


def test_liquidation_price__odd_size__lens_equals_reference_model(
    engine, lens, trader, fund, open_position, no_funding
):
    size = 123_456_789_123_456_789
    fund(trader, 1_000 * USDC)
    open_position(trader, BTC, size)
    state = engine.account(trader, 0)
    params = MarketParams(IMR, MMR, WAD // 1000, WAD // 50, 1_000 * WAD, 10 * WAD, 0)
    market = Market(params=params, price=60_000 * WAD, long_oi=size)
    pos = Position(size, 60_000 * WAD, 0)
    balance = engine.balance_of(trader, 0, engine.SETTLEMENT_ASSET())
    model_state = account_state(balance, {BTC: pos}, {BTC: market}, SCALE, 0)
    assert model_state.equity_maint == state.equity_maint
    assert lens.liquidation_price(trader, 0, BTC) == liquidation_price(model_state, pos, market)


def test_liquidation_price__none__zero(engine, lens, trader, fund, open_position, no_funding):
    # no position
    assert lens.liquidation_price(trader, 0, BTC) == 0
    # a long so well collateralised that the price would have to go below zero
    fund(trader, 100_000 * USDC)
    open_position(trader, BTC, WAD // 1_000)
    assert lens.liquidation_price(trader, 0, BTC) == 0
    assert lens.liquidation_price(trader, 0, ETH) == 0
