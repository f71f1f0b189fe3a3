"""Unit tests of collateral listing: the configurator's `list_collateral`,
`set_collateral_params` and `set_collateral_oracle` (docs/collateral.md
sections 2 and 3), every bound and revert, the words they hand the
`CollateralManager`, their events, and `migrate`.

Roles after deployment: `admin` holds DEFAULT_ADMIN only, `risk_manager`
holds RISK_MANAGER, `guardian` holds GUARDIAN. The tokens and feeds are
deployed once per module; Ape's chain isolation rolls every test back.
"""

from __future__ import annotations

import ape
import pytest

from oracle_bounds import oracle_bounds

WAD = 10**18
MASK64 = 2**64 - 1
MASK128 = 2**128 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MISSING_ROLE = "access_control: account is missing role"
MAX_UINT = 2**256 - 1

MAX_DISCOUNT = WAD // 5  # 20 %
MAX_WEIGHT_STEP = WAD // 20  # 5 points
MAX_RATE_GROWTH = WAD // 31_536_000  # 100 % per year, WAD per second
DELAY = 3_600  # MIN_RATE_CHANGE_DELAY

# WETH on an 8-decimal feed at 3,000 USD.
HEARTBEAT = 3_600
MIN_PRICE = 30 * WAD
MAX_PRICE = 300_000 * WAD
PRICE = 3_000
PARAMS = {"w_init": 8 * WAD // 10, "w_maint": 85 * WAD // 100, "discount": 5 * WAD // 100, "cap": 1_000 * WAD, "enabled": True}
GROWTH = MAX_RATE_GROWTH // 10  # 10 % per year

BAD = "configurator: bad collateral"
BAD_ORACLE = "configurator: bad oracle"


def params(**changes) -> dict:
    return {**PARAMS, **changes}


def decoded(manager, asset) -> dict:
    """`manager.collateral(asset)` as a dict."""
    c = manager.collateral(asset)
    fields = (
        "asset feed heartbeat min_price max_price decimals w_init w_maint discount cap enabled vault max_rate_growth total"
    ).split()
    return {f: getattr(c, f) for f in fields}


@pytest.fixture(scope="session")
def actors(admin, risk_manager, guardian, attacker):
    """Actors by role name (requested up front: resolving session fixtures
    lazily inside a test upsets Ape's isolation)."""
    return {"admin": admin, "risk_manager": risk_manager, "guardian": guardian, "attacker": attacker}


@pytest.fixture(scope="module")
def manager(system):
    return system.collateral


@pytest.fixture(scope="module")
def weth(project, admin):
    return project.MockERC20.deploy("Wrapped Ether", "WETH", 18, sender=admin)


@pytest.fixture(scope="module")
def feed(project, admin):
    return project.MockAggregator.deploy(8, PRICE * 10**8, sender=admin)


@pytest.fixture(scope="module")
def dai(project, admin):
    """The 6-decimal underlying of `svault`."""
    return project.MockERC20.deploy("Dai", "DAI", 6, sender=admin)


@pytest.fixture(scope="module")
def svault(project, admin, dai):
    """An ERC-4626 share over `dai` (6 decimals, like its underlying)."""
    return project.MockERC4626.deploy(dai, "Savings Dai", "sDAI", sender=admin)


@pytest.fixture(scope="module")
def dai_feed(project, admin):
    return project.MockAggregator.deploy(8, 10**8, sender=admin)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures(system, engine, configurator, manager, usdc, actors, trader, weth, feed, svault, dai_feed):
    """Resolve the session and module fixtures before the first test (Ape
    isolates each test from the state they leave)."""


def list_weth(configurator, admin, weth, feed, **changes):
    return configurator.list_collateral(
        weth, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, params(**changes), False, 0, sender=admin
    )


@pytest.fixture
def listed(configurator, admin, weth, feed):
    """WETH listed with PARAMS."""
    list_weth(configurator, admin, weth, feed)
    return weth


def deposit(engine, token, trader, amount, sub=0):
    token.mint(trader, amount, sender=trader)
    token.approve(engine, MAX_UINT, sender=trader)
    return engine.deposit(sub, token, amount, sender=trader)


# --------------------------------------------------------------------------
#                              list_collateral
# --------------------------------------------------------------------------


def test_list_collateral__plain_token__words_decoded_and_events(configurator, manager, admin, weth, feed):
    assert manager.asset_count() == 0

    receipt = list_weth(configurator, admin, weth, feed)

    assert receipt.events == [
        configurator.CollateralOracleSet(
            asset=weth, feed=feed, heartbeat=HEARTBEAT, min_price=MIN_PRICE, max_price=MAX_PRICE
        ),
        manager.CollateralListed(asset=weth, id=0, vault=False),
        configurator.CollateralParamsSet(asset=weth, **PARAMS),
    ]
    assert (manager.asset_count(), manager.assets(0), manager.asset_id(weth)) == (1, weth.address, 0)
    assert decoded(manager, weth) == {
        "asset": weth.address,
        "feed": feed.address,
        "heartbeat": HEARTBEAT,
        "min_price": MIN_PRICE,
        "max_price": MAX_PRICE,
        "decimals": 18,
        **PARAMS,
        "vault": False,
        "max_rate_growth": 0,
        "total": 0,
    }
    # the packed layouts of CollateralManager's storage declarations
    oracle, bounds, weights, limits, vault_word, rate = manager.asset_words(weth)
    assert oracle == int(feed.address, 16) | HEARTBEAT << 160 | 10**10 << 192
    assert bounds == MIN_PRICE | MAX_PRICE << 128
    assert weights == PARAMS["w_init"] | PARAMS["w_maint"] << 64 | PARAMS["discount"] << 128 | 1 << 192
    assert limits == PARAMS["cap"] | 1 << 128
    assert (vault_word, rate) == (0, 0)
    assert manager.collateral_price(weth) == (PRICE * WAD, True)


def test_list_collateral__disabled__stored_and_deposits_refused(configurator, engine, manager, admin, trader, weth, feed):
    list_weth(configurator, admin, weth, feed, enabled=False)

    assert manager.asset_words(weth)[3] == PARAMS["cap"]
    assert manager.collateral(weth).enabled is False
    with ape.reverts("collateral: disabled"):
        deposit(engine, weth, trader, WAD)


def test_list_collateral__ids_in_listing_order(project, configurator, manager, admin, weth, feed, svault, dai_feed):
    list_weth(configurator, admin, weth, feed)
    receipt = configurator.list_collateral(
        svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH, sender=admin
    )

    assert receipt.events.filter(manager.CollateralListed) == [manager.CollateralListed(asset=svault, id=1, vault=True)]
    assert (manager.asset_count(), manager.assets(1), manager.asset_id(svault)) == (2, svault.address, 1)


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_list_collateral__not_admin__reverts(configurator, manager, actors, weth, feed, caller):
    with ape.reverts(MISSING_ROLE):
        list_weth(configurator, actors[caller], weth, feed)
    assert manager.asset_count() == 0


def test_list_collateral__zero_address__reverts(configurator, manager, admin, feed):
    with ape.reverts("configurator: zero address"):
        configurator.list_collateral(
            ZERO_ADDRESS, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, False, 0, sender=admin
        )


def test_list_collateral__twice__reverts(configurator, manager, admin, weth, feed, svault, dai_feed):
    list_weth(configurator, admin, weth, feed)
    configurator.list_collateral(svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH, sender=admin)

    for token in (weth, svault):
        with ape.reverts("configurator: listed"):
            configurator.list_collateral(token, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, False, 0, sender=admin)
    assert manager.asset_count() == 2


def test_list_collateral__settlement_asset__reverts(configurator, manager, admin, usdc, feed):
    with ape.reverts("collateral: settlement asset"):
        configurator.list_collateral(usdc, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, False, 0, sender=admin)
    assert manager.asset_count() == 0


def test_list_collateral__seventeenth_asset__reverts(project, configurator, manager, admin, feed):
    tokens = [project.MockERC20.deploy(f"Token {i}", f"T{i}", 18, sender=admin) for i in range(17)]
    for token in tokens[:16]:
        list_weth(configurator, admin, token, feed)
    assert manager.asset_count() == 16 == manager.MAX_ASSETS()

    with ape.reverts("collateral: too many assets"):
        list_weth(configurator, admin, tokens[16], feed)
    # the duplicate check walks all 16
    with ape.reverts("configurator: listed"):
        list_weth(configurator, admin, tokens[15], feed)


@pytest.mark.parametrize("decimals", [2, 6, 8, 18, 19])
def test_list_collateral__token_decimals__up_to_18(project, configurator, manager, admin, feed, decimals):
    token = project.QuirkToken.deploy("Quirky", "QRK", decimals, sender=admin)
    if decimals > 18:
        with ape.reverts("configurator: decimals"):
            list_weth(configurator, admin, token, feed, cap=10**decimals)
        assert manager.asset_count() == 0
        return

    list_weth(configurator, admin, token, feed, cap=10**decimals)

    assert manager.collateral(token).decimals == decimals
    assert manager.asset_words(token)[2] >> 192 == 10 ** (18 - decimals)


# ------------------------------------------------------------------ vaults


def test_list_collateral__vault_share__vault_word_rate_and_price(chain, configurator, manager, admin, svault, dai_feed):
    svault.set_rate_override(1_050_000, sender=admin)  # 1.05 DAI per share

    receipt = configurator.list_collateral(
        svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH, sender=admin
    )

    assert receipt.events.filter(configurator.CollateralParamsSet) == [
        configurator.CollateralParamsSet(asset=svault, **PARAMS)
    ]
    c = manager.collateral(svault)
    assert (c.vault, c.max_rate_growth, c.decimals, c.feed) == (True, GROWTH, 6, dai_feed.address)
    words = manager.asset_words(svault)
    assert words[2] >> 192 == 10**12  # share decimals
    assert words[4] == GROWTH | 10**12 << 64  # underlying decimals
    assert words[5] == 105 * WAD // 100 | receipt.timestamp << 128  # the live rate at listing
    assert manager.collateral_price(svault) == (105 * WAD // 100, True)


@pytest.mark.parametrize(
    "growth, accepted", [(0, False), (1, True), (MAX_RATE_GROWTH, True), (MAX_RATE_GROWTH + 1, False)]
)
def test_list_collateral__vault_rate_growth_bounds(configurator, manager, admin, svault, dai_feed, growth, accepted):
    args = (svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, growth)
    if not accepted:
        with ape.reverts(BAD):
            configurator.list_collateral(*args, sender=admin)
        return

    configurator.list_collateral(*args, sender=admin)

    assert manager.collateral(svault).max_rate_growth == growth


def test_list_collateral__plain_token_with_rate_growth__reverts(configurator, admin, weth, feed):
    with ape.reverts(BAD):
        configurator.list_collateral(weth, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, False, 1, sender=admin)


@pytest.mark.parametrize("decimals", [18, 19])
def test_list_collateral__vault_underlying_decimals__up_to_18(project, configurator, manager, admin, dai_feed, decimals):
    underlying = project.QuirkToken.deploy("Quirky", "QRK", decimals, sender=admin)
    share = project.MockERC4626.deploy(underlying, "Quirky Share", "sQRK", sender=admin)
    args = (share, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH)
    if decimals > 18:
        with ape.reverts("configurator: decimals"):
            configurator.list_collateral(*args, sender=admin)
        return

    configurator.list_collateral(*args, sender=admin)

    assert manager.asset_words(share)[4] == GROWTH | 1 << 64


def test_list_collateral__plain_token_flagged_as_vault__reverts(configurator, manager, admin, weth, feed):
    # a plain ERC-20 has no `asset()`
    with ape.reverts():
        configurator.list_collateral(weth, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, True, GROWTH, sender=admin)
    assert manager.asset_count() == 0


# ------------------------------------------------------------- the oracle

ORACLE_BOUNDS = oracle_bounds(HEARTBEAT, MIN_PRICE, MAX_PRICE)


@pytest.mark.parametrize("heartbeat, min_price, max_price, accepted", ORACLE_BOUNDS)
def test_list_collateral__oracle_bounds(configurator, manager, admin, weth, feed, heartbeat, min_price, max_price, accepted):
    args = (weth, feed, heartbeat, min_price, max_price, PARAMS, False, 0)
    if not accepted:
        with ape.reverts(BAD_ORACLE):
            configurator.list_collateral(*args, sender=admin)
        assert manager.asset_count() == 0
        return

    configurator.list_collateral(*args, sender=admin)

    c = manager.collateral(weth)
    assert (c.feed, c.heartbeat, c.min_price, c.max_price) == (feed.address, heartbeat, min_price, max_price)


@pytest.mark.parametrize("decimals", [0, 18, 19])
def test_list_collateral__feed_decimals__up_to_18(project, configurator, manager, admin, weth, decimals):
    feed = project.MockAggregator.deploy(decimals, PRICE * 10**decimals, sender=admin)
    if decimals > 18:
        with ape.reverts(BAD_ORACLE):
            list_weth(configurator, admin, weth, feed)
        return

    list_weth(configurator, admin, weth, feed)

    assert manager.asset_words(weth)[0] >> 192 == 10 ** (18 - decimals)
    assert manager.collateral_price(weth) == (PRICE * WAD, True)


# ------------------------------------------------------------- parameters

PARAM_BOUNDS = [
    # (changes to PARAMS, accepted)
    ({"w_init": 1}, True),  # 0 < w_init
    ({"w_init": 0}, False),
    ({"w_init": PARAMS["w_maint"]}, True),  # w_init <= w_maint
    ({"w_init": PARAMS["w_maint"] + 1}, False),
    ({"w_maint": WAD, "discount": 0}, True),  # w_maint <= 1
    ({"w_maint": WAD + 1, "discount": 0}, False),
    ({"w_maint": WAD - MAX_DISCOUNT, "discount": MAX_DISCOUNT}, True),  # discount <= 20 %
    ({"w_init": WAD // 2, "w_maint": WAD // 2, "discount": MAX_DISCOUNT + 1}, False),
    ({"w_maint": 9 * WAD // 10, "discount": WAD // 10}, True),  # w_maint + discount <= 1
    ({"w_maint": 9 * WAD // 10, "discount": WAD // 10 + 1}, False),
    ({"cap": 1}, True),  # 0 < cap
    ({"cap": 0}, False),
    ({"cap": MASK128}, True),  # packed in 128 bits
    ({"cap": MASK128 + 1}, False),
]


@pytest.mark.parametrize("changes, accepted", PARAM_BOUNDS)
def test_list_collateral__param_bounds(configurator, manager, admin, weth, feed, changes, accepted):
    if not accepted:
        with ape.reverts(BAD):
            list_weth(configurator, admin, weth, feed, **changes)
        assert manager.asset_count() == 0
        return

    receipt = list_weth(configurator, admin, weth, feed, **changes)

    assert receipt.events.filter(configurator.CollateralParamsSet) == [
        configurator.CollateralParamsSet(asset=weth, **params(**changes))
    ]
    assert {k: v for k, v in decoded(manager, weth).items() if k in PARAMS} == params(**changes)


# --------------------------------------------------------------------------
#                           set_collateral_params
# --------------------------------------------------------------------------


def test_set_collateral_params__risk_manager__stored_logged_other_words_kept(
    configurator, manager, risk_manager, listed
):
    before = manager.asset_words(listed)
    new = {"w_init": WAD // 2, "w_maint": WAD // 2, "discount": WAD // 10, "cap": 7, "enabled": False}

    receipt = configurator.set_collateral_params(listed, new, sender=risk_manager)

    assert receipt.events == [configurator.CollateralParamsSet(asset=listed, **new)]
    after = manager.asset_words(listed)
    assert after[2] == new["w_init"] | new["w_maint"] << 64 | new["discount"] << 128 | 1 << 192
    assert after[3] == 7
    assert (after[0], after[1], after[4], after[5]) == (before[0], before[1], before[4], before[5])
    assert {k: v for k, v in decoded(manager, listed).items() if k in PARAMS} == new
    # no deposits: the decrease is timed but not bounded
    assert configurator.collateral_changed_at(listed) == receipt.timestamp


def test_set_collateral_params__vault_share__vault_word_and_rate_kept(
    configurator, manager, admin, risk_manager, svault, dai_feed
):
    configurator.list_collateral(svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH, sender=admin)
    before = manager.asset_words(svault)

    configurator.set_collateral_params(svault, params(cap=5), sender=risk_manager)

    after = manager.asset_words(svault)
    assert (after[0], after[1], after[2], after[4], after[5]) == (before[0], before[1], before[2], before[4], before[5])
    assert after[3] == 5 | 1 << 128


@pytest.mark.parametrize("caller", ["admin", "guardian", "attacker"])
def test_set_collateral_params__not_risk_manager__reverts(configurator, manager, actors, listed, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.set_collateral_params(listed, params(cap=1), sender=actors[caller])
    assert manager.collateral(listed).cap == PARAMS["cap"]


def test_set_collateral_params__unknown_asset__reverts(configurator, risk_manager, weth):
    with ape.reverts("collateral: unknown asset"):
        configurator.set_collateral_params(weth, PARAMS, sender=risk_manager)


@pytest.mark.parametrize("changes", [c for c, accepted in PARAM_BOUNDS if not accepted])
def test_set_collateral_params__out_of_bounds__reverts(configurator, manager, risk_manager, listed, changes):
    with ape.reverts(BAD):
        configurator.set_collateral_params(listed, params(**changes), sender=risk_manager)
    assert {k: v for k, v in decoded(manager, listed).items() if k in PARAMS} == PARAMS


@pytest.fixture
def held(engine, manager, listed, trader):
    """WETH listed and deposited (one token)."""
    deposit(engine, listed, trader, WAD)
    assert manager.total_deposits(0) == WAD
    return listed


def test_set_collateral_params__deposits__w_maint_falls_at_most_one_step(configurator, manager, risk_manager, held):
    w = PARAMS["w_maint"]
    with ape.reverts("configurator: weight step"):
        configurator.set_collateral_params(held, params(w_maint=w - MAX_WEIGHT_STEP - 1), sender=risk_manager)

    receipt = configurator.set_collateral_params(held, params(w_maint=w - MAX_WEIGHT_STEP), sender=risk_manager)

    assert manager.collateral(held).w_maint == w - MAX_WEIGHT_STEP
    assert configurator.collateral_changed_at(held) == receipt.timestamp


def test_set_collateral_params__deposits__next_decrease_waits_the_delay(chain, configurator, manager, risk_manager, held):
    w = PARAMS["w_maint"]
    first = configurator.set_collateral_params(held, params(w_init=WAD // 2, w_maint=w - WAD // 100), sender=risk_manager)
    lower = params(w_init=WAD // 2, w_maint=w - 2 * WAD // 100)

    chain.pending_timestamp = first.timestamp + DELAY - 1
    with ape.reverts("configurator: too soon"):
        configurator.set_collateral_params(held, lower, sender=risk_manager)

    chain.pending_timestamp = first.timestamp + DELAY
    configurator.set_collateral_params(held, lower, sender=risk_manager)

    assert manager.collateral(held).w_maint == w - 2 * WAD // 100


def test_set_collateral_params__deposits__rises_and_other_fields_apply_at_once(
    configurator, manager, risk_manager, held
):
    w = PARAMS["w_maint"]
    first = configurator.set_collateral_params(held, params(w_maint=w - MAX_WEIGHT_STEP), sender=risk_manager)
    # within the delay: a rise of any size, then w_init, discount, cap and the flag
    configurator.set_collateral_params(held, params(w_maint=WAD, discount=0), sender=risk_manager)
    new = {"w_init": WAD // 10, "w_maint": WAD, "discount": 0, "cap": 2 * WAD, "enabled": False}
    configurator.set_collateral_params(held, new, sender=risk_manager)

    assert {k: v for k, v in decoded(manager, held).items() if k in PARAMS} == new
    assert configurator.collateral_changed_at(held) == first.timestamp  # only decreases are timed


def test_set_collateral_params__deposits_withdrawn__no_bound(configurator, engine, manager, risk_manager, trader, held):
    engine.withdraw(0, held, WAD, sender=trader)
    assert manager.total_deposits(0) == 0

    configurator.set_collateral_params(held, params(w_init=WAD // 10, w_maint=WAD // 10), sender=risk_manager)

    assert manager.collateral(held).w_maint == WAD // 10


def test_set_collateral_params__decrease_without_deposits_still_starts_the_delay(
    chain, configurator, engine, risk_manager, trader, listed
):
    first = configurator.set_collateral_params(listed, params(w_init=WAD // 4, w_maint=WAD // 2), sender=risk_manager)
    deposit(engine, listed, trader, WAD)
    lower = params(w_init=WAD // 4, w_maint=WAD // 2 - 1)

    with ape.reverts("configurator: too soon"):
        configurator.set_collateral_params(listed, lower, sender=risk_manager)
    chain.pending_timestamp = first.timestamp + DELAY
    configurator.set_collateral_params(listed, lower, sender=risk_manager)


def test_set_collateral_params__cap__binds_deposits(configurator, engine, manager, risk_manager, trader, held):
    configurator.set_collateral_params(held, params(cap=WAD + 1), sender=risk_manager)

    with ape.reverts("collateral: cap"):
        deposit(engine, held, trader, 2)
    deposit(engine, held, trader, 1)
    assert manager.collateral(held).total == WAD + 1


# --------------------------------------------------------------------------
#                           set_collateral_oracle
# --------------------------------------------------------------------------


def test_set_collateral_oracle__admin__stored_logged_other_words_kept(project, configurator, manager, admin, listed):
    new_feed = project.MockAggregator.deploy(18, 3_100 * WAD, sender=admin)
    before = manager.asset_words(listed)

    receipt = configurator.set_collateral_oracle(listed, new_feed, 60, 1_000 * WAD, 10_000 * WAD, sender=admin)

    assert receipt.events == [
        configurator.CollateralOracleSet(
            asset=listed, feed=new_feed, heartbeat=60, min_price=1_000 * WAD, max_price=10_000 * WAD
        )
    ]
    after = manager.asset_words(listed)
    assert after[0] == int(new_feed.address, 16) | 60 << 160 | 1 << 192
    assert after[1] == 1_000 * WAD | 10_000 * WAD << 128
    assert after[2:] == before[2:]
    assert manager.collateral_price(listed) == (3_100 * WAD, True)


@pytest.mark.parametrize("caller", ["risk_manager", "guardian", "attacker"])
def test_set_collateral_oracle__not_admin__reverts(configurator, actors, listed, feed, caller):
    with ape.reverts(MISSING_ROLE):
        configurator.set_collateral_oracle(listed, feed, 60, MIN_PRICE, MAX_PRICE, sender=actors[caller])


def test_set_collateral_oracle__unknown_asset__reverts(configurator, admin, weth, feed):
    with ape.reverts("collateral: unknown asset"):
        configurator.set_collateral_oracle(weth, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, sender=admin)


@pytest.mark.parametrize("heartbeat, min_price, max_price", [c[:3] for c in ORACLE_BOUNDS if not c[3]])
def test_set_collateral_oracle__out_of_bounds__reverts(configurator, manager, admin, listed, feed, heartbeat, min_price, max_price):
    before = manager.asset_words(listed)
    with ape.reverts(BAD_ORACLE):
        configurator.set_collateral_oracle(listed, feed, heartbeat, min_price, max_price, sender=admin)
    assert manager.asset_words(listed) == before


def test_set_collateral_oracle__feed_decimals_above_18__reverts(project, configurator, admin, listed):
    feed = project.MockAggregator.deploy(19, PRICE * 10**19, sender=admin)
    with ape.reverts(BAD_ORACLE):
        configurator.set_collateral_oracle(listed, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, sender=admin)


# --------------------------------------------------------------------------
#                                  migrate
# --------------------------------------------------------------------------


def test_migrate__successor_lists_and_changes_collateral_the_old_configurator_cannot(
    project, configurator, engine, manager, admin, risk_manager, listed, feed, svault, dai_feed
):
    successor = project.EngineConfigurator.deploy(sender=admin)
    successor.grantRole(successor.RISK_MANAGER_ROLE(), risk_manager, sender=admin)

    receipt = configurator.migrate(successor, sender=admin)

    assert receipt.events.filter(configurator.Migrated) == [configurator.Migrated(configurator=successor)]
    assert manager.configurator() == successor.address
    vault_args = (svault, dai_feed, HEARTBEAT, WAD // 2, 2 * WAD, PARAMS, True, GROWTH)
    with ape.reverts("collateral: not configurator"):
        configurator.list_collateral(*vault_args, sender=admin)
    with ape.reverts("collateral: not configurator"):
        configurator.set_collateral_params(listed, params(cap=1), sender=risk_manager)
    with ape.reverts("collateral: not configurator"):
        configurator.set_collateral_oracle(listed, feed, 60, MIN_PRICE, MAX_PRICE, sender=admin)

    successor.set_engine(engine, sender=admin)
    assert successor.collateral_manager() == manager.address
    assert manager.engine() == engine.address
    successor.list_collateral(*vault_args, sender=admin)
    with ape.reverts("configurator: listed"):
        successor.list_collateral(listed, feed, HEARTBEAT, MIN_PRICE, MAX_PRICE, PARAMS, False, 0, sender=admin)
    successor.set_collateral_params(listed, params(cap=1), sender=risk_manager)
    successor.set_collateral_oracle(listed, feed, 60, MIN_PRICE, MAX_PRICE, sender=admin)

    assert manager.asset_count() == 2
    c = manager.collateral(listed)
    assert (c.cap, c.heartbeat, c.w_maint) == (1, 60, PARAMS["w_maint"])


# --------------------------------------------------------------------------
#                          deployment from a config
# --------------------------------------------------------------------------


def test_deploy__collateral_config__mocks_deployed_and_listed(admin):
    from margin_engine.config import CollateralAssetConfig, default_config
    from margin_engine.deploy import deploy

    common = {"heartbeat": HEARTBEAT, "w_init": PARAMS["w_init"], "w_maint": PARAMS["w_maint"], "discount": 0, "cap": 10**24}
    weth = CollateralAssetConfig(name="WETH", decimals=18, mock_price=PRICE, min_price=MIN_PRICE, max_price=MAX_PRICE, **common)
    sdai = CollateralAssetConfig(
        name="sDAI", decimals=6, mock_price=1, feed_decimals=18, min_price=WAD // 2, max_price=2 * WAD,
        vault=True, max_rate_growth=GROWTH, underlying_name="DAI", underlying_decimals=6, enabled=False, **common,
    )
    config = default_config().model_copy(update={"collateral": [weth, sdai]})

    d = deploy(config, admin, log=None)

    manager = d.collateral
    assert [manager.assets(i) for i in range(manager.asset_count())] == [
        d.collaterals["WETH"].address, d.collaterals["sDAI"].address
    ]
    assert d.mock_collaterals == d.mock_collateral_feeds == {"WETH", "sDAI"}
    assert d.collaterals["sDAI"].asset() == d.collateral_underlyings["sDAI"].address
    assert d.collateral_underlyings["sDAI"].decimals() == 6
    assert d.collateral_feeds["sDAI"].description() == "DAI / USD"
    c = manager.collateral(d.collaterals["sDAI"])
    assert (c.decimals, c.vault, c.max_rate_growth, c.enabled, c.cap) == (6, True, GROWTH, False, 10**24)
    assert manager.collateral_price(d.collaterals["WETH"]) == (PRICE * WAD, True)
    assert manager.collateral_price(d.collaterals["sDAI"]) == (WAD, True)
    addresses = d.addresses()
    assert addresses["collateral:WETH"] == d.collaterals["WETH"].address
    assert addresses["underlying:sDAI"] == d.collateral_underlyings["sDAI"].address
