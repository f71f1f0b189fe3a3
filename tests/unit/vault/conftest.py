"""Actors of the vault tests besides the shared ones (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def depositor(accounts):
    """A second liquidity provider (the victim in the inflation attack)."""
    return accounts[9]
