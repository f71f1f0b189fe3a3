"""Unit tests of governance: the configurator's entry points (listing
markets, risk parameters, oracles, the vault link, pause), the engine's
configurator link and its roles (DESIGN.md section 10; bounds in
`EngineConfigurator._set_market_params` and `_set_oracle`).

Roles after deployment: `admin` holds DEFAULT_ADMIN only (the deployer
renounced RISK_MANAGER), `risk_manager` holds RISK_MANAGER, `guardian` holds
GUARDIAN.
"""

from __future__ import annotations

import ape
import pytest

from oracle_bounds import oracle_bounds

WAD = 10**18
USDC = 10**6
BTC, ETH = 0, 1
FEED = 10**8
MISSING_ROLE = "access_control: account is missing role"
DEFAULT_ADMIN_ROLE = b"\x00" * 32
MASK128 = 2**128 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_FUNDING_RATE = 10**18 // 100 // 3600  # 1 % per hour: 2,777,777,777,777 per second

# The default BTC market (margin_engine.config._market)
HEARTBEAT = 3_600
MIN_PRICE = 600 * WAD
MAX_PRICE = 6_000_000 * WAD
PARAMS = {
    "imr": WAD // 10,
    "mmr": WAD // 20,
    "fee_rate": WAD // 1000,
    "liq_fee": WAD // 50,
    "max_oi": 1_000 * WAD,
    "min_notional": 10 * WAD,
    "funding_rate_max": WAD * 5 // 10_000 // 3_600,
}
LIQ_PARAMS = {"buffer": WAD // 10, "liquidator_share": WAD // 2, "reward_floor": USDC, "reward_cap": 10_000 * USDC}


def as_dict(struct, fields):
    return {f: getattr(struct, f) for f in fields}


@pytest.fixture(scope="session")
def actors(admin, risk_manager, guardian, attacker):
    """Actors by role name, for parametrised callers (requested up front:
    resolving session fixtures lazily inside a test upsets Ape's isolation)."""
    return {"admin": admin, "risk_manager": risk_manager, "guardian": guardian, "attacker": attacker}


def deploy_engine(project, admin, usdc):
    """A configurator, its RiskModel and CollateralManager and an engine
    naming them, not yet connected (`set_engine` not called):
    `(engine, configurator, risk)`."""
    configurator = project.EngineConfigurator.deploy(sender=admin)
    risk = project.RiskModel.deploy(configurator, sender=admin)
    manager = project.CollateralManager.deploy(configurator, sender=admin)
    engine = project.MarginEngine.deploy(usdc, configurator, risk, manager, sender=admin)
    return engine, configurator, risk


@pytest.fixture
def fresh_engine(project, admin, usdc):
    """An engine with no market and no vault, `admin` its DEFAULT_ADMIN, and
    its configurator: `(engine, configurator)`."""
    engine, configurator, _ = deploy_engine(project, admin, usdc)
    configurator.set_engine(engine, sender=admin)
    return engine, configurator


# --------------------------------------------------------------------------
#                                add_market
# --------------------------------------------------------------------------


def test_add_market__fresh_engine__ids_in_listing_order_with_events(fresh_engine, lens, admin, btc_feed, eth_feed):
    engine, configurator = fresh_engine
    assert engine.market_count() == 0
    for market, feed in enumerate([btc_feed, eth_feed, btc_feed]):
        assert configurator.add_market.call(feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin) == market

        receipt = configurator.add_market(feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)

        assert receipt.events == [
            configurator.OracleSet(market=market, feed=feed, heartbeat=HEARTBEAT, min_price=MIN_PRICE, max_price=MAX_PRICE),
            engine.FundingAccrued(market=market, index=0),
            configurator.MarketParamsSet(market=market, **PARAMS),
            configurator.MarketAdded(market=market, feed=feed),
        ]
        assert engine.market_count() == market + 1
        state = engine.market_words(market)
        # nothing open, funding clock started at listing
        assert state[4] == 0
        assert state[5] >> 128 & (2**64 - 1) == receipt.timestamp


def test_add_market__deployed_engine__next_id_follows_btc_and_eth(configurator, engine, lens, admin, btc_feed):
    assert engine.market_count() == 2
    assert configurator.add_market.call(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin) == 2

    configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)

    assert engine.market_count() == 3
    assert as_dict(lens.market_params(2), PARAMS) == PARAMS
    assert engine.oracle_price(2) == (60_000 * WAD, True)


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_add_market__not_admin__reverts(configurator, actors, engine, btc_feed, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=actors[caller])
    assert engine.market_count() == 2


PARAM_BOUNDS = [
    # (field, value, accepted); the other fields keep the BTC defaults
    ("imr", WAD, True),  # imr <= 1
    ("imr", WAD + 1, False),
    ("mmr", WAD // 10 - 1, True),  # mmr < imr
    ("mmr", WAD // 10, False),
    ("liq_fee", 1, True),  # 0 < liq_fee
    ("liq_fee", 0, False),
    ("liq_fee", WAD // 20 - 1, True),  # liq_fee < mmr
    ("liq_fee", WAD // 20, False),
    ("fee_rate", 0, True),
    ("fee_rate", 10**16, True),  # fee <= 1 %
    ("fee_rate", 10**16 + 1, False),
    ("funding_rate_max", 0, True),
    ("funding_rate_max", MAX_FUNDING_RATE, True),  # <= 1 % per hour
    ("funding_rate_max", MAX_FUNDING_RATE + 1, False),
    ("max_oi", MASK128, True),  # packed in 128 bits
    ("max_oi", MASK128 + 1, False),
    ("min_notional", MASK128, True),
    ("min_notional", MASK128 + 1, False),
]


@pytest.mark.parametrize("field, value, accepted", PARAM_BOUNDS)
def test_add_market__param_bounds(configurator, engine, lens, admin, btc_feed, field, value, accepted):
    params = {**PARAMS, field: value}
    if not accepted:
        with ape.reverts("configurator: bad params"):
            configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, params, sender=admin)
        assert engine.market_count() == 2
        return

    receipt = configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, params, sender=admin)

    assert receipt.events.filter(configurator.MarketParamsSet) == [configurator.MarketParamsSet(market=2, **params)]
    assert as_dict(lens.market_params(2), PARAMS) == params


ORACLE_BOUNDS = oracle_bounds(HEARTBEAT, MIN_PRICE, MAX_PRICE)


@pytest.mark.parametrize("heartbeat, min_price, max_price, accepted", ORACLE_BOUNDS)
def test_add_market__oracle_bounds(configurator, engine, lens, admin, btc_feed, heartbeat, min_price, max_price, accepted):
    if not accepted:
        with ape.reverts("configurator: bad oracle"):
            configurator.add_market(btc_feed, heartbeat, min_price, max_price, PARAMS, sender=admin)
        assert engine.market_count() == 2
        return

    configurator.add_market(btc_feed, heartbeat, min_price, max_price, PARAMS, sender=admin)

    config = lens.oracle_config(2)
    assert (config.feed, config.heartbeat, config.decimals, config.min_price, config.max_price) == (
        btc_feed.address,
        heartbeat,
        8,
        min_price,
        max_price,
    )


@pytest.mark.parametrize("decimals, accepted", [(18, True), (19, False)])
def test_add_market__feed_decimals_above_18__reverts(configurator, project, engine, lens, admin, decimals, accepted):
    feed = project.MockAggregator.deploy(decimals, 60_000 * 10**decimals, sender=admin)
    if not accepted:
        with ape.reverts("configurator: bad oracle"):
            configurator.add_market(feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)
        return

    configurator.add_market(feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)

    assert lens.oracle_config(2).decimals == 18
    assert engine.oracle_price(2) == (60_000 * WAD, True)


def test_add_market__beyond_max_markets__reverts(configurator, engine, admin, btc_feed):
    assert engine.MAX_MARKETS() == 64
    for _ in range(62):
        configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)
    assert engine.market_count() == 64

    with ape.reverts("configurator: too many markets"):
        configurator.add_market(btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, sender=admin)


# --------------------------------------------------------------------------
#                             set_market_params
# --------------------------------------------------------------------------

NEW_PARAMS = {  # within one step of PARAMS; a lower mmr applies at once
    "imr": WAD * 15 // 100,
    "mmr": WAD // 25,
    "fee_rate": WAD // 500,
    "liq_fee": WAD // 40,
    "max_oi": 50 * WAD,
    "min_notional": 100 * WAD,
    "funding_rate_max": 10**9,
}


def test_set_market_params__risk_manager__stored_and_logged(configurator, engine, lens, risk_manager):
    receipt = configurator.set_market_params(ETH, NEW_PARAMS, sender=risk_manager)

    assert receipt.events == [
        engine.FundingAccrued(market=ETH, index=0),
        configurator.MarketParamsSet(market=ETH, **NEW_PARAMS),
    ]
    assert as_dict(lens.market_params(ETH), NEW_PARAMS) == NEW_PARAMS
    # the other market is untouched
    assert as_dict(lens.market_params(BTC), PARAMS) == PARAMS


@pytest.mark.parametrize("caller", ["admin", "guardian", "attacker"])
def test_set_market_params__not_risk_manager__reverts(configurator, actors, engine, lens, caller):
    assert not configurator.hasRole(configurator.RISK_MANAGER_ROLE(), actors[caller])
    with ape.reverts(MISSING_ROLE):
        configurator.set_market_params(BTC, NEW_PARAMS, sender=actors[caller])
    assert as_dict(lens.market_params(BTC), PARAMS) == PARAMS


def test_set_market_params__unknown_market__reverts(configurator, engine, risk_manager):
    with ape.reverts("configurator: unknown market"):
        configurator.set_market_params(2, NEW_PARAMS, sender=risk_manager)


@pytest.mark.parametrize("field, value, accepted", [c for c in PARAM_BOUNDS if not c[2]])
def test_set_market_params__out_of_bounds__reverts(configurator, engine, lens, risk_manager, field, value, accepted):
    with ape.reverts("configurator: bad params"):
        configurator.set_market_params(BTC, {**PARAMS, field: value}, sender=risk_manager)
    assert as_dict(lens.market_params(BTC), PARAMS) == PARAMS


def test_set_market_params__open_interest__funding_accrued_at_the_old_rate_first(
    configurator,
    chain, engine, lens, risk_manager, trader, fund, open_position
):
    fund(trader, 10_000 * USDC)
    opened = open_position(trader, BTC, WAD)  # full long skew
    chain.pending_timestamp = opened.timestamp + 600

    receipt = configurator.set_market_params(BTC, {**PARAMS, "funding_rate_max": 0}, sender=risk_manager)

    # index = floor(P x rate_max x dt / WAD) = 60,000 x 138,888,888,888 x 600
    assert receipt.timestamp == opened.timestamp + 600
    expected = 60_000 * PARAMS["funding_rate_max"] * 600
    assert expected == 4_999_999_999_968_000_000
    state = lens.market_state(BTC)
    assert (state.funding_index, state.last_funding_time) == (expected, receipt.timestamp)
    assert receipt.events.filter(engine.FundingAccrued) == [engine.FundingAccrued(market=BTC, index=expected)]
    # the new (zero) rate applies from now on
    chain.mine(timestamp=receipt.timestamp + 600)
    assert engine.position(trader, 0, BTC).funding_owed == expected


def test_set_market_params__open_interest_and_stale_price__reverts(
    configurator,
    chain, engine, admin, risk_manager, trader, fund, open_position, btc_feed
):
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD)
    btc_feed.set_round(60_000 * FEED, chain.pending_timestamp - 3_601, sender=admin)

    with ape.reverts("oracle: stale"):
        configurator.set_market_params(BTC, NEW_PARAMS, sender=risk_manager)


def test_set_market_params__no_open_interest_and_stale_price__works(configurator, chain, engine, lens, admin, risk_manager, btc_feed):
    btc_feed.set_round(60_000 * FEED, chain.pending_timestamp - 3_601, sender=admin)

    configurator.set_market_params(BTC, NEW_PARAMS, sender=risk_manager)

    assert as_dict(lens.market_params(BTC), NEW_PARAMS) == NEW_PARAMS


# --------------------------------------------------------------------------
#                                set_oracle
# --------------------------------------------------------------------------


def test_set_oracle__admin__new_feed_decimals_and_bounds(configurator, project, engine, lens, admin):
    feed = project.MockAggregator.deploy(18, 61_000 * WAD, sender=admin)

    receipt = configurator.set_oracle(BTC, feed, 60, 1_000 * WAD, 100_000 * WAD, sender=admin)

    assert receipt.events == [
        configurator.OracleSet(market=BTC, feed=feed, heartbeat=60, min_price=1_000 * WAD, max_price=100_000 * WAD)
    ]
    config = lens.oracle_config(BTC)
    assert (config.feed, config.heartbeat, config.decimals, config.min_price, config.max_price) == (
        feed.address,
        60,
        18,
        1_000 * WAD,
        100_000 * WAD,
    )
    assert engine.oracle_price(BTC) == (61_000 * WAD, True)
    # market parameters are untouched
    assert as_dict(lens.market_params(BTC), PARAMS) == PARAMS


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_set_oracle__not_admin__reverts(configurator, actors, engine, lens, eth_feed, btc_feed, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.set_oracle(BTC, eth_feed, HEARTBEAT, 1, MAX_PRICE, sender=actors[caller])
    assert lens.oracle_config(BTC).feed == btc_feed.address


def test_set_oracle__unknown_market__reverts(configurator, engine, admin, btc_feed):
    with ape.reverts("configurator: unknown market"):
        configurator.set_oracle(2, btc_feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, sender=admin)


@pytest.mark.parametrize("heartbeat, min_price, max_price", [(h, lo, hi) for h, lo, hi, ok in ORACLE_BOUNDS if not ok])
def test_set_oracle__out_of_bounds__reverts(configurator, engine, lens, admin, btc_feed, heartbeat, min_price, max_price):
    with ape.reverts("configurator: bad oracle"):
        configurator.set_oracle(BTC, btc_feed, heartbeat, min_price, max_price, sender=admin)
    assert lens.oracle_config(BTC).heartbeat == HEARTBEAT


# --------------------------------------------------------------------------
#                     Liquidation params and reserve factor
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"buffer": 0, "liquidator_share": 0, "reward_floor": 0, "reward_cap": 0},
        {"buffer": WAD, "liquidator_share": WAD, "reward_floor": 5 * USDC, "reward_cap": 5 * USDC},
        {"buffer": WAD // 20, "liquidator_share": WAD // 4, "reward_floor": 2 * USDC, "reward_cap": 500 * USDC},
        {"buffer": 0, "liquidator_share": WAD // 2, "reward_floor": MASK128, "reward_cap": MASK128},
    ],
)
def test_set_liquidation_params__risk_manager__stored_and_logged(configurator, engine, risk_manager, params):
    receipt = configurator.set_liquidation_params(params, sender=risk_manager)

    assert receipt.events == [configurator.LiquidationParamsSet(**params)]
    assert as_dict(engine.liquidation_params(), params) == params


@pytest.mark.parametrize(
    "field, value",
    [
        ("buffer", WAD + 1),
        ("liquidator_share", WAD + 1),
        ("reward_floor", 10_000 * USDC + 1),  # floor <= cap
        ("reward_cap", MASK128 + 1),  # packed in 128 bits
    ],
)
def test_set_liquidation_params__out_of_bounds__reverts(configurator, engine, risk_manager, field, value):
    with ape.reverts("configurator: bad params"):
        configurator.set_liquidation_params({**LIQ_PARAMS, field: value}, sender=risk_manager)
    assert as_dict(engine.liquidation_params(), LIQ_PARAMS) == LIQ_PARAMS


@pytest.mark.parametrize("caller", ["admin", "guardian", "attacker"])
def test_set_liquidation_params__not_risk_manager__reverts(configurator, actors, engine, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.set_liquidation_params({**LIQ_PARAMS, "buffer": 0}, sender=actors[caller])
    assert as_dict(engine.liquidation_params(), LIQ_PARAMS) == LIQ_PARAMS


@pytest.mark.parametrize("factor", [0, WAD // 4, WAD])
def test_set_reserve_factor__risk_manager__stored_and_logged(configurator, engine, risk_manager, factor):
    receipt = configurator.set_reserve_factor(factor, sender=risk_manager)

    assert receipt.events == [configurator.ReserveFactorSet(reserve_factor=factor)]
    assert engine.reserve_factor() == factor


def test_set_reserve_factor__above_one__reverts(configurator, engine, risk_manager):
    with ape.reverts("configurator: bad params"):
        configurator.set_reserve_factor(WAD + 1, sender=risk_manager)
    assert engine.reserve_factor() == WAD // 2


@pytest.mark.parametrize("caller", ["admin", "guardian", "attacker"])
def test_set_reserve_factor__not_risk_manager__reverts(configurator, actors, engine, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.set_reserve_factor(0, sender=actors[caller])
    assert engine.reserve_factor() == WAD // 2


# --------------------------------------------------------------------------
#                                 set_vault
# --------------------------------------------------------------------------


def test_set_vault__already_set__reverts(configurator, engine, vault, admin, attacker):
    assert engine.vault() == vault.address
    with ape.reverts("configurator: vault set"):
        configurator.set_vault(attacker, sender=admin)
    assert engine.vault() == vault.address


def test_set_vault__fresh_engine__once_only(fresh_engine, admin, lp, attacker):
    engine, configurator = fresh_engine
    with ape.reverts(MISSING_ROLE):
        configurator.set_vault(attacker, sender=attacker)
    with ape.reverts("configurator: zero address"):
        configurator.set_vault(ZERO_ADDRESS, sender=admin)

    receipt = configurator.set_vault(lp, sender=admin)

    assert receipt.events == [configurator.VaultSet(vault=lp)]
    assert engine.vault() == lp.address
    with ape.reverts("configurator: vault set"):
        configurator.set_vault(attacker, sender=admin)


# --------------------------------------------------------------------------
#                               pause / unpause
# --------------------------------------------------------------------------


def test_pause__guardian__stops_new_risk_only_and_unpause_restores(configurator, engine, usdc, guardian, trader, fund, open_position):
    fund(trader, 10_000 * USDC)
    open_position(trader, BTC, WAD // 10)

    receipt = configurator.pause(sender=guardian)

    assert receipt.events == [configurator.Paused(account=guardian)]
    assert engine.paused()
    with ape.reverts("engine: paused"):
        open_position(trader, BTC, WAD // 10)
    # deposits and reductions keep working
    fund(trader, 100 * USDC)
    open_position(trader, BTC, -WAD // 20)
    assert engine.position(trader, 0, BTC).size == WAD // 20

    receipt = configurator.unpause(sender=guardian)

    assert receipt.events == [configurator.Unpaused(account=guardian)]
    assert not engine.paused()
    open_position(trader, BTC, WAD // 10)
    assert engine.position(trader, 0, BTC).size == 3 * WAD // 20


@pytest.mark.parametrize("caller", ["admin", "risk_manager", "attacker"])
def test_pause_and_unpause__not_guardian__revert(configurator, actors, engine, guardian, caller):
    account = actors[caller]
    with ape.reverts(MISSING_ROLE):
        configurator.pause(sender=account)
    assert not engine.paused()
    configurator.pause(sender=guardian)
    with ape.reverts(MISSING_ROLE):
        configurator.unpause(sender=account)
    assert engine.paused()


# --------------------------------------------------------------------------
#                                   Roles
# --------------------------------------------------------------------------


def test_roles__after_deployment(configurator, engine, admin, risk_manager, guardian):
    risk, guard = configurator.RISK_MANAGER_ROLE(), configurator.GUARDIAN_ROLE()
    assert configurator.DEFAULT_ADMIN_ROLE() == DEFAULT_ADMIN_ROLE
    assert configurator.hasRole(DEFAULT_ADMIN_ROLE, admin)
    assert not configurator.hasRole(risk, admin)  # the deployer renounced it
    assert not configurator.hasRole(guard, admin)
    assert configurator.hasRole(risk, risk_manager)
    assert not configurator.hasRole(DEFAULT_ADMIN_ROLE, risk_manager)
    assert configurator.hasRole(guard, guardian)
    assert not configurator.hasRole(DEFAULT_ADMIN_ROLE, guardian)
    for role in (DEFAULT_ADMIN_ROLE, risk, guard):
        assert configurator.getRoleAdmin(role) == DEFAULT_ADMIN_ROLE
    # ERC-165 and IAccessControl
    assert configurator.supportsInterface("0x01ffc9a7")
    assert configurator.supportsInterface("0x7965db0b")
    assert not configurator.supportsInterface("0xffffffff")


def test_roles__admin_grants_and_revokes_guardian(configurator, engine, admin, operator):
    role = configurator.GUARDIAN_ROLE()

    receipt = configurator.grantRole(role, operator, sender=admin)

    assert receipt.events == [configurator.RoleGranted(role=role, account=operator, sender=admin)]
    assert configurator.hasRole(role, operator)
    configurator.pause(sender=operator)
    assert engine.paused()

    receipt = configurator.revokeRole(role, operator, sender=admin)

    assert receipt.events == [configurator.RoleRevoked(role=role, account=operator, sender=admin)]
    assert not configurator.hasRole(role, operator)
    with ape.reverts(MISSING_ROLE):
        configurator.unpause(sender=operator)


def test_roles__admin_grants_risk_manager__new_holder_sets_params(configurator, engine, admin, operator):
    configurator.grantRole(configurator.RISK_MANAGER_ROLE(), operator, sender=admin)

    configurator.set_reserve_factor(WAD // 4, sender=operator)

    assert engine.reserve_factor() == WAD // 4


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_roles__not_admin__cannot_grant_or_revoke(configurator, actors, engine, guardian, attacker, caller):
    account = actors[caller]
    for role in (configurator.GUARDIAN_ROLE(), configurator.RISK_MANAGER_ROLE(), DEFAULT_ADMIN_ROLE):
        with ape.reverts(MISSING_ROLE):
            configurator.grantRole(role, attacker, sender=account)
    with ape.reverts(MISSING_ROLE):
        configurator.revokeRole(configurator.GUARDIAN_ROLE(), guardian, sender=account)
    assert configurator.hasRole(configurator.GUARDIAN_ROLE(), guardian)
    assert not configurator.hasRole(configurator.GUARDIAN_ROLE(), attacker)


def test_roles__renounce_only_for_oneself(configurator, engine, guardian, attacker):
    role = configurator.GUARDIAN_ROLE()
    with ape.reverts("access_control: can only renounce roles for itself"):
        configurator.renounceRole(role, guardian, sender=attacker)

    receipt = configurator.renounceRole(role, guardian, sender=guardian)

    assert receipt.events == [configurator.RoleRevoked(role=role, account=guardian, sender=guardian)]
    assert not configurator.hasRole(role, guardian)
    with ape.reverts(MISSING_ROLE):
        configurator.pause(sender=guardian)


# --------------------------------------------------------------------------
#                     The engine's configurator link
# --------------------------------------------------------------------------

STORE_CALLS = {
    "store_oracle": (BTC, 1, 1),
    "store_market_params": (BTC, 1, 1, 0),
    "store_globals": (0, 0, 0, 0, 0),
    "store_vault": ("0x0000000000000000000000000000000000000001",),
    "store_paused": (True,),
}


@pytest.mark.parametrize("function", sorted(STORE_CALLS))
@pytest.mark.parametrize("caller", ["admin", "risk_manager", "guardian", "attacker"])
def test_store__not_the_configurator__reverts(actors, engine, lens, function, caller):
    def state():
        return (
            [engine.market_words(m) for m in (BTC, ETH)],
            engine.liquidation_params(),
            engine.reserve_factor(),
            engine.vault(),
            engine.paused(),
        )

    before = state()
    with ape.reverts("engine: not configurator"):
        getattr(engine, function)(*STORE_CALLS[function], sender=actors[caller])
    assert state() == before


def test_migrate__admin__hands_the_engine_and_the_risk_model_over_and_the_old_configurator_is_powerless(
    project, engine, configurator, risk, admin, risk_manager, guardian
):
    # BTC uses the risk model (tiers; no open interest, so no ramp): a later
    # set_tiers of BTC writes to the risk model only.
    configurator.set_tiers(BTC, [100_000], [200], sender=risk_manager)
    successor = project.EngineConfigurator.deploy(sender=admin)
    assert risk.configurator() == configurator.address

    receipt = configurator.migrate(successor, sender=admin)

    assert receipt.events == [
        engine.ConfiguratorSet(configurator=successor),
        configurator.Migrated(configurator=successor),
    ]
    assert engine.configurator() == successor.address
    assert risk.configurator() == successor.address
    assert risk.engine() == engine.address
    with ape.reverts("engine: not configurator"):
        configurator.pause(sender=guardian)
    with ape.reverts("engine: not configurator"):
        configurator.set_reserve_factor(0, sender=risk_manager)
    # the risk model no longer takes the old configurator's writes either
    with ape.reverts("risk: not the configurator"):
        configurator.set_tiers(BTC, [200_000], [300], sender=risk_manager)
    with ape.reverts("risk: not the configurator"):
        configurator.set_mm_ramp_duration(2 * 86_400, sender=admin)


def test_migrate__successor__connects_to_the_engine_and_governs(project, engine, configurator, risk, admin, guardian):
    successor = project.EngineConfigurator.deploy(sender=admin)
    successor.grantRole(successor.GUARDIAN_ROLE(), guardian, sender=admin)
    configurator.migrate(successor, sender=admin)

    receipt = successor.set_engine(engine, sender=admin)

    assert receipt.events == [successor.EngineSet(engine=engine)]
    assert (successor.engine(), successor.risk_model()) == (engine.address, risk.address)
    successor.pause(sender=guardian)
    assert engine.paused()
    successor.set_mm_ramp_duration(2 * 86_400, sender=admin)
    assert risk.ramp_duration() == 2 * 86_400


def test_migrate__successor__inherits_the_state_it_reads_from_the_chain(
    project, engine, configurator, risk, admin, risk_manager
):
    # State a successor must not lose: the margin terms, the band, a market's
    # flag and its MM ramp (all read back from the engine and the risk model).
    configurator.set_margin_params(WAD // 4, WAD // 10, sender=risk_manager)
    configurator.set_call_params(WAD // 5, WAD // 4, WAD // 3, sender=risk_manager)
    configurator.set_tiers(0, [1_000_000], [150], sender=risk_manager)
    successor = project.EngineConfigurator.deploy(sender=admin)
    successor.grantRole(successor.RISK_MANAGER_ROLE(), risk_manager, sender=admin)
    configurator.migrate(successor, sender=admin)
    successor.set_engine(engine, sender=admin)

    assert successor.margin_params() == (WAD // 4, WAD // 10)
    assert successor.call_params() == (WAD // 5, WAD // 4, WAD // 3)
    assert (successor.uses_risk_model(0), successor.uses_risk_model(1)) == (True, False)
    rates_before = engine.market_words(0)[2]
    successor.set_reserve_factor(WAD // 3, sender=risk_manager)
    assert engine.margin_words() == ((WAD // 4) | (WAD // 10) << 128, (WAD // 5) | (WAD // 4) << 64 | (WAD // 3) << 128)
    # A successor's parameter change on a flagged market keeps the flag.
    words = engine.market_words(0)
    fee_rate = (words[2] >> 128) & (2**64 - 1)
    new = (
        words[2] & (2**63 - 1),
        (words[2] >> 64) & (2**64 - 1),
        fee_rate + 1,
        words[2] >> 192,
        words[3] & (2**128 - 1),
        words[3] >> 128,
        words[5] >> 192,
    )
    successor.set_market_params(0, new, sender=risk_manager)
    rates_after = engine.market_words(0)[2]
    assert rates_after & 2**63 and rates_after == rates_before + (1 << 128)


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_migrate__not_admin__reverts(actors, engine, configurator, risk, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.migrate(actors[caller], sender=actors[caller])
    assert engine.configurator() == configurator.address
    assert risk.configurator() == configurator.address


@pytest.mark.parametrize("caller", ["admin", "risk_manager", "attacker"])
def test_set_configurator__only_the_current_configurator(actors, engine, configurator, caller):
    with ape.reverts("engine: not configurator"):
        engine.set_configurator(actors[caller], sender=actors[caller])
    assert engine.configurator() == configurator.address


def test_migrate__zero_address__reverts(engine, configurator, risk, admin):
    with ape.reverts("configurator: zero address"):
        configurator.migrate(ZERO_ADDRESS, sender=admin)
    assert engine.configurator() == configurator.address
    assert risk.configurator() == configurator.address


def test_set_engine__once_only_and_only_an_engine_that_names_this_configurator(
    project, engine, configurator, risk, admin, attacker, usdc
):
    assert configurator.engine() == engine.address
    assert configurator.risk_model() == risk.address == engine.RISK_MODEL()
    with ape.reverts("configurator: engine set"):
        configurator.set_engine(engine, sender=admin)

    other, fresh, fresh_risk = deploy_engine(project, admin, usdc)
    with ape.reverts(MISSING_ROLE):
        fresh.set_engine(other, sender=attacker)
    with ape.reverts("configurator: zero address"):
        fresh.set_engine(ZERO_ADDRESS, sender=admin)
    # `engine` names `configurator`, not `fresh`
    with ape.reverts("configurator: not the engine's"):
        fresh.set_engine(engine, sender=admin)
    assert (fresh_risk.engine(), fresh_risk.ramp_duration()) == (ZERO_ADDRESS, 0)

    receipt = fresh.set_engine(other, sender=admin)

    assert receipt.events == [fresh.EngineSet(engine=other)]
    assert fresh.engine() == other.address
    # the engine's risk model is wired too: its engine, and the ramp duration
    assert fresh.risk_model() == fresh_risk.address == other.RISK_MODEL()
    assert fresh_risk.engine() == other.address
    assert fresh_risk.ramp_duration() == fresh.mm_ramp_duration() == 86_400


def test_set_engine__risk_model_of_another_configurator__reverts(project, admin, usdc, attacker):
    fresh = project.EngineConfigurator.deploy(sender=admin)
    foreign_risk = project.RiskModel.deploy(attacker, sender=admin)
    manager = project.CollateralManager.deploy(fresh, sender=admin)
    other = project.MarginEngine.deploy(usdc, fresh, foreign_risk, manager, sender=admin)

    with ape.reverts("risk: not the configurator"):
        fresh.set_engine(other, sender=admin)

    assert fresh.engine() == ZERO_ADDRESS
    assert foreign_risk.engine() == ZERO_ADDRESS


def test_set_engine__deployed_system__risk_model_wired(engine, configurator, risk):
    assert engine.RISK_MODEL() == risk.address
    assert (risk.engine(), risk.configurator()) == (engine.address, configurator.address)
    assert risk.ramp_duration() == configurator.mm_ramp_duration() == 86_400


def test_risk_set_engine__once_only_and_by_its_configurator_only(project, engine, admin, attacker):
    # a RiskModel whose configurator is an account, so that it can call set_engine twice
    risk = project.RiskModel.deploy(admin, sender=admin)
    with ape.reverts("risk: not the configurator"):
        risk.set_engine(engine, sender=attacker)

    risk.set_engine(engine, sender=admin)

    assert risk.engine() == engine.address
    with ape.reverts("risk: engine set"):
        risk.set_engine(attacker, sender=admin)
    assert risk.engine() == engine.address


def test_configurator__bounds_and_roles(configurator, engine, admin, operator):
    assert configurator.MAX_FEE_RATE() == WAD // 100
    assert configurator.MAX_FUNDING_RATE() == MAX_FUNDING_RATE
    with ape.reverts(MISSING_ROLE):
        configurator.set_reserve_factor(0, sender=operator)
    configurator.grantRole(configurator.RISK_MANAGER_ROLE(), operator, sender=admin)
    configurator.set_reserve_factor(0, sender=operator)
    assert engine.reserve_factor() == 0


def test_engine__zero_configurator_risk_model_or_manager__reverts(project, configurator, risk, manager, admin, usdc):
    with ape.reverts("engine: zero address"):
        project.MarginEngine.deploy(usdc, ZERO_ADDRESS, risk, manager, sender=admin)
    with ape.reverts("engine: zero address"):
        project.MarginEngine.deploy(usdc, configurator, ZERO_ADDRESS, manager, sender=admin)
    with ape.reverts("engine: zero address"):
        project.MarginEngine.deploy(usdc, configurator, risk, ZERO_ADDRESS, sender=admin)
    # the same arguments with every address set deploy
    other = project.MarginEngine.deploy(usdc, configurator, risk, manager, sender=admin)
    assert (other.configurator(), other.RISK_MODEL(), other.COLLATERAL()) == (
        configurator.address,
        risk.address,
        manager.address,
    )


def test_set_reserve_factor__keeps_the_liquidation_params_and_vice_versa(engine, configurator, risk_manager):
    configurator.set_reserve_factor(WAD // 3, sender=risk_manager)
    assert as_dict(engine.liquidation_params(), LIQ_PARAMS) == LIQ_PARAMS

    new = {**LIQ_PARAMS, "buffer": WAD // 5}
    configurator.set_liquidation_params(new, sender=risk_manager)
    assert engine.reserve_factor() == WAD // 3
    assert as_dict(engine.liquidation_params(), new) == new
