"""Hypothesis profiles of the stateful tests in this folder.

Select one with the environment variable ``HYPOTHESIS_PROFILE``:

- ``default`` (when unset): about 30 examples of up to 40 steps per machine
  (fewer for some: ``test_engine_stateful._settings``), so that the folder
  runs in about a minute on titanoboa;
- ``fuzz``: 1,000 examples of up to 100 steps (about 40 minutes per machine),
  for a nightly or pre-release run:
  ``HYPOTHESIS_PROFILE=fuzz ape test tests/fuzz -q``.

The profiles are registered with hypothesis as ``fuzz-default`` and ``fuzz``
and applied explicitly by the tests here (``boa_system.machine_settings``). None is
loaded globally: registering a profile called ``default`` would silently
change the settings of every other hypothesis test in the same pytest run, because
this conftest is imported before theirs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

settings.register_profile("fuzz-default", max_examples=30, stateful_step_count=40, **_COMMON)
settings.register_profile("fuzz", max_examples=1000, stateful_step_count=100, **_COMMON)
