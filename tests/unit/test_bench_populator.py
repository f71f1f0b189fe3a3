"""The scan benchmark's populator (`contracts/test/BenchPopulator.vy`) and its
profiles (`margin_engine.bench_scan`): one call opens many sub-accounts of the
populator, each with its profile's deposit and positions, and the profiles
open HEALTHY accounts in both markets.
"""

from __future__ import annotations

import ape
import pytest
from eth_utils import to_checksum_address

from margin_engine.bench_scan import PROFILE_SPECS, build_profiles

WAD = 10**18
BTC, ETH = 0, 1
PRICES = {"BTC": 60_000 * WAD, "ETH": 3_000 * WAD}
MARKETS = {"BTC": BTC, "ETH": ETH}
HEALTHY = 0


@pytest.fixture
def populator(project, system, admin):
    return project.BenchPopulator.deploy(system.engine, system.settlement, sender=admin)


@pytest.fixture(scope="module")
def profiles():
    return build_profiles(PROFILE_SPECS, PRICES, MARKETS, 6)


def listed(engine) -> list[tuple[str, int]]:
    out = []
    for i in range(engine.active_count()):
        entry = engine.active_accounts(i)
        out.append((to_checksum_address(f"0x{entry & (2**160 - 1):040x}"), entry >> 160))
    return out


def test_profiles__leverage_and_markets():
    built = build_profiles(PROFILE_SPECS, PRICES, MARKETS, 6)
    assert len(built) == len(PROFILE_SPECS) == 20
    for spec, (collateral, sizes) in zip(PROFILE_SPECS, built, strict=True):
        notional = sum(abs(s) * PRICES[name] // WAD for name, s in zip(MARKETS, sizes, strict=True))
        # Within a dollar of the spec's notional, opened at its leverage (tokens have 6 decimals).
        assert abs(notional - spec.notional_usd * WAD) < WAD
        assert collateral == -(-spec.notional_usd * 10**6 * spec.leverage.denominator // spec.leverage.numerator)
        assert {name for name, s in zip(MARKETS, sizes, strict=True) if s} == {m for m, _ in spec.legs}
    assert {len(spec.legs) for spec in PROFILE_SPECS} == {1, 2}
    assert {m for spec in PROFILE_SPECS for m, _ in spec.legs} == {"BTC", "ETH"}


def test_populate__opens_each_sub_account_with_its_profile(populator, system, admin, profiles):
    engine, usdc = system.engine, system.settlement

    populator.populate(0, 25, profiles, sender=admin)

    assert populator.populated() == 25
    assert engine.active_count() == 25
    assert sorted(listed(engine)) == [(populator.address, s) for s in range(25)]
    for sub in range(25):
        collateral, sizes = profiles[sub % len(profiles)]
        for market, size in enumerate(sizes):
            assert engine.position(populator, sub, market).size == size
        assert engine.status(populator, sub) == HEALTHY
        # The deposit less the opening fees (0.1 % of the notional, rounded up).
        assert 0 < collateral - engine.balance_of(populator, sub, usdc) < collateral // 100
    assert usdc.balanceOf(populator) == 0


def test_populate__split_calls_open_the_same_accounts(populator, system, admin, profiles):
    engine = system.engine

    populator.populate(0, 7, profiles, sender=admin)
    populator.populate(7, 16, profiles, sender=admin)

    for sub in range(23):
        _, sizes = profiles[sub % len(profiles)]
        assert [engine.position(populator, sub, m).size for m in range(len(sizes))] == sizes


def test_populate__rejects_bad_input(populator, admin, profiles):
    with ape.reverts("populator: no profiles"):
        populator.populate(0, 1, [], sender=admin)
    with ape.reverts("populator: zero count"):
        populator.populate(0, 0, profiles, sender=admin)
    with ape.reverts("populator: sub-account ids overflow"):
        populator.populate(65_535, 2, profiles, sender=admin)
