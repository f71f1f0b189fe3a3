"""The deployment configuration files and the checks of the risk-model and
collateral-asset configurations."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from margin_engine.config import (
    CollateralAssetConfig,
    DeployConfig,
    TiersConfig,
    VolatilityConfig,
    default_config,
    dump_config,
    load_config,
    risk_config,
)
from margin_engine.model import WAD, tier_requirement
from margin_engine.volatility import im_rate, VolParams, VolState

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("path", "factory"), [("deploy/local.yaml", default_config), ("deploy/risk.yaml", risk_config)])
def test_deploy_files__equal_their_python_defaults(path, factory):
    assert load_config(ROOT / path) == factory()


def test_risk_config__seeds_the_median_im_rate_and_tiers_start_above_demo_sizes():
    config = risk_config()
    expected = {"BTC": 151 * WAD // 1000, "ETH": 171 * WAD // 1000}
    for market in config.markets:
        vol = market.volatility
        params = VolParams(*vol.params())
        rate = im_rate(VolState(var=vol.seed_var), params)
        # seed_var rounds up, the rate rounds up: within one wei-step of the median
        assert expected[market.name] <= rate <= expected[market.name] + 10**9
        # below the first edge a tiered requirement is the flat base rate
        first_edge = market.tiers.edges[0] * WAD
        tiers = (tuple(market.tiers.edges), tuple(market.tiers.multipliers))
        assert tier_requirement(first_edge, rate, tiers) == -(-first_edge * rate // WAD)
        assert tier_requirement(first_edge + WAD, rate, tiers) > tier_requirement(first_edge, rate, tiers) + rate
    assert (config.call_buffer, config.call_fee_share, config.call_fraction) == (WAD // 4, WAD // 4, WAD // 4)


@pytest.mark.parametrize(
    ("edges", "multipliers"),
    [
        ([100, 100], [150, 200]),  # edges must rise strictly
        ([0, 100], [150, 200]),  # first edge above 0
        ([2**32], [150]),  # edges fit 32 bits
        ([100, 200], [200, 150]),  # multipliers non-decreasing
        ([100], [99]),  # at least 1x
        ([100], [10_001]),  # at most 100x
        ([100, 200], [150]),  # same length
        ([1, 2, 3, 4, 5], [100, 100, 100, 100, 100]),  # at most four
    ],
)
def test_tiers_config__out_of_bounds__refused(edges, multipliers):
    with pytest.raises(ValidationError):
        TiersConfig(edges=edges, multipliers=multipliers)


def test_tiers_config__bounds_inclusive__accepted():
    assert TiersConfig(edges=[1, 2**32 - 1], multipliers=[100, 10_000]).edges == [1, 2**32 - 1]


@pytest.mark.parametrize(
    "change",
    [
        {"decay": WAD // 2 - 1},
        {"decay": WAD - WAD // 100_000 + 1},
        {"floor": WAD // 200 - 1},
        {"floor": WAD // 2 + 1},  # above the cap
        {"cap": WAD + 1},
        {"z": WAD - 1},
        {"epoch": 299},
        {"mm_fraction": 9 * WAD // 10 + 1},
        {"seed_var": 0},
    ],
)
def test_volatility_config__out_of_bounds__refused(change):
    base = risk_config().markets[0].volatility.model_dump()
    base.update(change)
    with pytest.raises(ValidationError):
        VolatilityConfig(**base)


# --------------------------------------------------------------------------
#                             collateral assets
# --------------------------------------------------------------------------

COLLATERAL_YAML = """
collateral:
  - name: WETH
    decimals: 18
    mock_price: 3000
    heartbeat: 3600
    min_price: "30e18"
    max_price: "300000e18"
    w_init: "0.8e18"
    w_maint: "0.85e18"
    discount: "0.05e18"
    cap: "10_000e18"
  - name: sDAI
    decimals: 6
    mock_price: "1.0001"
    feed_decimals: 8
    heartbeat: 86400
    min_price: "0.5e18"
    max_price: "2e18"
    w_init: "0.9e18"
    w_maint: "0.95e18"
    discount: "0.02e18"
    cap: "1e12"
    enabled: false
    vault: true
    max_rate_growth: 3170979198
    underlying_name: DAI
    underlying_decimals: 6
"""

PLAIN = {
    "name": "WETH",
    "mock_price": 3000,
    "heartbeat": 3600,
    "min_price": 30 * WAD,
    "max_price": 300_000 * WAD,
    "w_init": 8 * WAD // 10,
    "w_maint": 85 * WAD // 100,
    "discount": 5 * WAD // 100,
    "cap": 10**22,
}
VAULT = {**PLAIN, "name": "sDAI", "vault": True, "max_rate_growth": 1, "underlying_name": "DAI", "underlying_decimals": 18}
MAX_RATE_GROWTH = WAD // 31_536_000


def _with_collateral(tmp_path, text: str = COLLATERAL_YAML):
    """deploy/local.yaml with `text` appended."""
    path = tmp_path / "config.yaml"
    path.write_text((ROOT / "deploy/local.yaml").read_text(encoding="utf-8") + text, encoding="utf-8")
    return path


def test_collateral_config__yaml__parsed_with_defaults(tmp_path):
    config = load_config(_with_collateral(tmp_path))

    weth, sdai = config.collateral
    assert (weth.address, weth.feed, weth.feed_decimals, weth.enabled, weth.vault, weth.max_rate_growth) == (
        None, None, 8, True, False, 0,
    )
    assert weth.params() == (8 * WAD // 10, 85 * WAD // 100, 5 * WAD // 100, 10_000 * WAD, True)
    assert weth.mock_price_wad() == 3_000 * WAD
    assert sdai.params() == (9 * WAD // 10, 95 * WAD // 100, 2 * WAD // 100, 10**12, False)
    assert (sdai.vault, sdai.max_rate_growth, sdai.underlying_name, sdai.underlying_decimals) == (
        True, 3_170_979_198, "DAI", 6,
    )
    assert sdai.mock_answer() == 100_010_000
    assert config.collateral_asset("sDAI") is sdai
    with pytest.raises(KeyError):
        config.collateral_asset("WBTC")
    # everything else is local.yaml
    assert config.model_copy(update={"collateral": []}) == default_config()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_collateral_config__dump_and_load__round_trip(tmp_path, suffix):
    config = load_config(_with_collateral(tmp_path))
    path = tmp_path / f"out{suffix}"

    dump_config(config, path)

    assert load_config(path) == config


def test_collateral_config__defaults__empty():
    assert default_config().collateral == [] and risk_config().collateral == []
    assert "collateral: []" in dump_config(default_config())


@pytest.mark.parametrize(
    ("base", "change"),
    [
        (PLAIN, {"w_init": 0}),  # 0 < w_init
        (PLAIN, {"w_init": 85 * WAD // 100 + 1}),  # w_init <= w_maint
        (PLAIN, {"w_maint": WAD + 1, "discount": 0}),  # w_maint <= 1
        (PLAIN, {"w_init": WAD // 2, "w_maint": WAD // 2, "discount": WAD // 5 + 1}),  # discount <= 20 %
        (PLAIN, {"w_maint": 9 * WAD // 10, "discount": WAD // 10 + 1}),  # w_maint + discount <= 1
        (PLAIN, {"cap": 0}),
        (PLAIN, {"cap": 2**128}),
        (PLAIN, {"heartbeat": 0}),
        (PLAIN, {"heartbeat": 2**32}),
        (PLAIN, {"max_price": 2**128}),
        (PLAIN, {"min_price": 300_000 * WAD}),  # min < max
        (PLAIN, {"decimals": 19}),
        (PLAIN, {"feed_decimals": 19}),
        (PLAIN, {"max_rate_growth": 1}),  # plain tokens: 0
        (PLAIN, {"underlying_name": "DAI"}),  # vault fields on a plain token
        (PLAIN, {"mock_price": None}),  # no feed, no mock price
        (PLAIN, {"mock_price": 29}),  # below min_price
        (PLAIN, {"mock_price": "3000.000000001"}),  # more than feed_decimals
        (PLAIN, {"name": "X" * 33}),  # the mock's symbol is String[32]
        (PLAIN, {"colour": "blue"}),  # unknown key
        (VAULT, {"max_rate_growth": 0}),  # vaults: 0 < g
        (VAULT, {"max_rate_growth": MAX_RATE_GROWTH + 1}),  # g <= 100 %/year
        (VAULT, {"underlying_name": None}),  # a mock share needs its underlying
        (VAULT, {"underlying_decimals": None}),
        (VAULT, {"underlying_decimals": 6}),  # a mock share has its underlying's decimals
        (VAULT, {"address": "0x" + "11" * 20}),  # underlying fields for a mock share only
    ],
)
def test_collateral_config__out_of_bounds__refused(base, change):
    with pytest.raises(ValidationError):
        CollateralAssetConfig(**{**base, **change})


@pytest.mark.parametrize(
    "change",
    [
        {"w_init": 1, "w_maint": 1},
        {"w_maint": WAD, "discount": 0},
        {"w_maint": 8 * WAD // 10, "discount": WAD // 5},
        {"cap": 2**128 - 1},
        {"decimals": 0, "heartbeat": 2**32 - 1, "max_price": 2**128 - 1},
        {"feed": "0x" + "22" * 20, "mock_price": None},
    ],
)
def test_collateral_config__bounds_inclusive__accepted(change):
    assert CollateralAssetConfig(**{**PLAIN, **change})


def test_collateral_config__vault_bounds_inclusive__accepted():
    asset = CollateralAssetConfig(**{**VAULT, "max_rate_growth": MAX_RATE_GROWTH})
    assert asset.max_rate_growth == MAX_RATE_GROWTH
    real = {k: v for k, v in VAULT.items() if not k.startswith("underlying")}
    assert CollateralAssetConfig(**{**real, "address": "0x" + "11" * 20}).vault


def test_collateral_config__list__duplicates_count_and_settlement_refused():
    base = default_config().model_dump()
    token = "0x" + "33" * 20
    with pytest.raises(ValidationError, match="duplicate collateral names"):
        DeployConfig.model_validate({**base, "collateral": [PLAIN, PLAIN]})
    many = [{**PLAIN, "name": f"T{i}"} for i in range(17)]
    with pytest.raises(ValidationError, match="at most 16 collateral assets"):
        DeployConfig.model_validate({**base, "collateral": many})
    assert len(DeployConfig.model_validate({**base, "collateral": many[:16]}).collateral) == 16
    twice = [{**PLAIN, "address": token}, {**PLAIN, "name": "B", "address": token}]
    with pytest.raises(ValidationError, match="listed twice"):
        DeployConfig.model_validate({**base, "collateral": twice})
    with pytest.raises(ValidationError, match="settlement asset"):
        DeployConfig.model_validate({**base, "settlement_asset": token, "collateral": twice[:1]})
