"""Helpers of the integration flows.

- `no_funding`: sets both markets' funding rate to zero (risk manager), so a
  flow's numbers do not depend on how many seconds pass between blocks; the
  funding flow keeps funding on and pins every timestamp with `clock`.
- `clock`: `clock.at(t)` makes the next transaction mine at `start + t`.
- `assert_conserved(*accounts)`: ledger conservation, exactly:
  `usdc.balanceOf(engine) == sum(balance_of) + insurance_fund + vault_assets`
  over every (account, sub) the flow touched.
"""

from __future__ import annotations

import pytest

BTC, ETH = 0, 1


@pytest.fixture(autouse=True)
def fresh_prices(set_price):
    """Every flow starts from fresh rounds at the default prices (the session's
    rounds go stale after the one-hour heartbeat in a long run)."""
    set_price("BTC", 60_000)
    set_price("ETH", 3_000)


@pytest.fixture
def no_funding(configurator, lens, risk_manager):
    for market in (BTC, ETH):
        params = lens.market_params(market)
        configurator.set_market_params(
            market,
            (
                params.imr,
                params.mmr,
                params.fee_rate,
                params.liq_fee,
                params.max_oi,
                params.min_notional,
                0,
            ),
            sender=risk_manager,
        )


class Clock:
    """Pins block timestamps relative to a start far enough in the future
    that the chain never mines on wall-clock time in between."""

    def __init__(self, chain) -> None:
        self.chain = chain
        self.start = chain.pending_timestamp + 100_000

    def at(self, seconds: int) -> int:
        """The next transaction mines at `start + seconds`; returns that timestamp."""
        timestamp = self.start + seconds
        self.chain.pending_timestamp = timestamp
        return timestamp


@pytest.fixture
def clock(chain):
    return Clock(chain)


@pytest.fixture
def assert_conserved(engine, usdc):
    def check(*accounts):
        """`accounts`: (account, sub) pairs; together they must hold every credit."""
        balances = sum(engine.balance_of(account, sub, usdc) for account, sub in accounts)
        held = usdc.balanceOf(engine)
        assert held == balances + engine.insurance_fund() + engine.vault_assets()
        return held

    return check


@pytest.fixture
def withdraw_all(engine, usdc):
    def withdraw(account, sub=0):
        """Withdraw the whole balance of (account, sub); returns the amount."""
        amount = engine.balance_of(account, sub, usdc)
        engine.withdraw(sub, usdc, amount, sender=account)
        assert engine.balance_of(account, sub, usdc) == 0
        return amount

    return withdraw
