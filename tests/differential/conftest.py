"""Fixtures of the differential tests: systems deployed with titanoboa.

Each settlement-decimals variant is deployed once per session in its own
titanoboa environment; a test rolls its changes back with `system.env.anchor()`.

Hypothesis: by default the random differential runs 50 examples per
settlement decimals (about a minute). `HYPOTHESIS_PROFILE=fuzz` (or pytest's
`--hypothesis-profile fuzz`) runs the `fuzz` profile's example count instead;
the profile is registered here unless another conftest already did
(tests/fuzz registers the same one). No profile is loaded globally: the
tests apply the count explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

from differential_harness import BoaSystem, system_config

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
