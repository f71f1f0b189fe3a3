"""Fixtures of the differential tests: systems deployed with titanoboa.

Each settlement-decimals variant is deployed once per session in its own
titanoboa environment; a test rolls its changes back with `system.env.anchor()`.

`risk_boa_system(decimals)` is the same with a third market at $0.37 (so
positions can be sized to any notional wei) for test_risk_vs_engine.py.

`collateral_boa_system(decimals)` is `tests/fuzz/boa_system.deployed_system`
with the collateral assets listed (WETH, WBTC and the ERC-4626 share yUSD),
for test_collateral_vs_engine.py: the same deployment (and environment) as
the stateful collateral machines', which roll it back the same way.

Hypothesis: by default the random differential runs 35 examples per
settlement decimals (about 25 s), the risk-model tests 4 to 8 each (about
35 s in all), the collateral differential 10 random examples and 7 named
scenarios per decimals (about 25 s with the deployment).
`DIFFERENTIAL_NO_SHRINK=1` reports a risk-model failure as found (shrinking
a stateful failure can take minutes). `HYPOTHESIS_PROFILE=fuzz` (or pytest's
`--hypothesis-profile fuzz`) runs the `fuzz` profile's example count instead;
the profile is registered here unless another conftest already did
(tests/fuzz registers the same one). No profile is loaded globally: the
tests apply the count explicitly.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

from differential_harness import BoaSystem, risk_system_config, system_config

try:
    settings.get_profile("fuzz")
except InvalidArgument:
    settings.register_profile(
        "fuzz",
        max_examples=1_000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="session")
def boa_system() -> Callable[[int], Any]:
    """boa_system(decimals): the default configuration deployed with titanoboa
    (vault funded with 1,000,000 tokens, three traders, all approvals given)."""
    import boa

    cache: dict[int, BoaSystem] = {}

    def get(decimals: int) -> BoaSystem:
        if decimals not in cache:
            with boa.swap_env(boa.Env()):
                cache[decimals] = BoaSystem(system_config(decimals))
        return cache[decimals]

    return get


@pytest.fixture(scope="session")
def risk_boa_system() -> Callable[[int], Any]:
    """risk_boa_system(decimals): `risk_system_config(decimals)` (BTC, ETH and
    a $0.37 market, all static at deployment: the tests switch volatility,
    tiers and the margin-call band on through both sides) deployed with
    titanoboa like `boa_system`."""
    import boa

    cache: dict[int, BoaSystem] = {}

    def get(decimals: int) -> BoaSystem:
        if decimals not in cache:
            with boa.swap_env(boa.Env()):
                cache[decimals] = BoaSystem(risk_system_config(decimals))
        return cache[decimals]

    return get


def _fuzz_boa_system() -> ModuleType:
    """tests/fuzz/boa_system.py as the module `boa_system` (the name the fuzz
    tests import it by, so a run collecting both folders loads it once)."""
    module = sys.modules.get("boa_system")
    if module is None:
        path = Path(__file__).resolve().parents[1] / "fuzz" / "boa_system.py"
        spec = importlib.util.spec_from_file_location("boa_system", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["boa_system"] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def collateral_boa_system() -> Callable[[int], Any]:
    """collateral_boa_system(decimals) -> (env, system): the system of
    `boa_system.deploy_system(decimals, collateral=True)` (vault funded with
    1,000,000 tokens; WETH, WBTC and yUSD over USDX listed), deployed once in
    its own titanoboa environment. A test enters `boa.swap_env(env)` and
    `env.anchor()`, and leaves both."""
    deployed_system = _fuzz_boa_system().deployed_system
    # Called as the stateful machines call it: one cached deployment for both.
    return lambda decimals: deployed_system(decimals, vault_funding=1_000_000, collateral=True)
