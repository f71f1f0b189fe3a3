"""The deployment configuration files and the risk-model configuration's checks."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from margin_engine.config import TiersConfig, VolatilityConfig, default_config, load_config, risk_config
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
