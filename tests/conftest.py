"""Shared fixtures: the deployed system and actors named by role.

The system is deployed once per session with the deployment function the
scripts use (`margin_engine.deploy.deploy`); Ape's chain isolation rolls every
test back to that state. Tests that need other settlement decimals use
`make_system(decimals)`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from margin_engine.config import default_config
from margin_engine.deploy import deploy

# ape-vyper compiles with the `vyper` found on PATH: make it the virtualenv's
# (pinned) compiler even when `ape test` is called without activating it.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="session")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def risk_manager(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def lp(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def trader(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def other_trader(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def liquidator(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def attacker(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def make_system(admin, risk_manager, guardian, lp):
    """Deploy the whole system with `decimals` for the settlement token and
    the vault funded by the LP with 1,000,000 tokens."""

    def make(decimals: int = 6, vault_funding: int = 1_000_000):
        config = default_config()
        config = config.model_copy(
            update={
                "settlement_decimals": decimals,
                "liquidation": config.liquidation.model_copy(
                    update={"reward_floor": 10**decimals, "reward_cap": 10_000 * 10**decimals}
                ),
                "roles": config.roles.model_copy(
                    update={"risk_manager": risk_manager.address, "guardian": guardian.address}
                ),
            }
        )
        system = deploy(config, admin, log=None)
        if vault_funding:
            amount = vault_funding * 10**decimals
            system.settlement.mint(lp, amount, sender=lp)
            system.settlement.approve(system.vault, amount, sender=lp)
            system.vault.deposit(amount, lp, sender=lp)
        return system

    return make


@pytest.fixture(scope="session")
def system(make_system):
    """The default system: 6-decimal USDC, BTC (id 0) and ETH (id 1) markets."""
    return make_system(6)


@pytest.fixture(scope="session")
def engine(system):
    return system.engine


@pytest.fixture(scope="session")
def configurator(system):
    return system.configurator


@pytest.fixture(scope="session")
def manager(system):
    """The CollateralManager (the ledger of collateral assets other than USDC)."""
    return system.collateral


@pytest.fixture(scope="session")
def vault(system):
    return system.vault


@pytest.fixture(scope="session")
def usdc(system):
    return system.settlement


@pytest.fixture(scope="session")
def lens(system):
    return system.lens


@pytest.fixture(scope="session")
def btc_feed(system):
    return system.feeds["BTC"]


@pytest.fixture(scope="session")
def eth_feed(system):
    return system.feeds["ETH"]


@pytest.fixture(scope="session")
def fund(system):
    """fund(account, amount_tokens, sub=0): mint, approve and deposit."""

    def fund(account, amount, sub=0):
        token = system.settlement
        token.mint(account, amount, sender=account)
        token.approve(system.engine, amount, sender=account)
        return system.engine.deposit(sub, token, amount, sender=account)

    return fund


@pytest.fixture(scope="session")
def set_price(system):
    """set_price(market_name, usd_price): a fresh round on the mock feed."""

    def set_price(name: str, usd: int | float):
        feed = system.feeds[name]
        feed.set_answer(int(round(usd * 10**8)), sender=system.deployer)

    return set_price


@pytest.fixture(scope="session")
def open_position(system):
    """open_position(account, market, size_wad, sub=0): trade with a wide limit."""

    def open_position(account, market, size, sub=0, sender=None):
        limit = 2**255 if size > 0 else 0
        return system.engine.modify_position(account, sub, market, size, limit, sender=sender or account)

    return open_position
