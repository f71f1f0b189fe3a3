"""Fixtures for the engine's user-facing unit tests.

`ctx` is a deployed system (6-decimal settlement token; a module overriding
`ctx` with `ctx_decimals` runs its tests on a 6- and an 18-decimal system).
Each system is deployed once per session, with:

- funding switched off on both default markets (`funding_rate_max = 0`), so
  balances after several trades are exact without timing; the funding tests
  switch it back on explicitly;
- `trader`, `other_trader`, `operator` and `liquidator` holding
  `WALLET` whole tokens each with an unlimited allowance to the engine, so a
  deposit is one transaction.

Ape's chain isolation rolls every test back to that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

WAD = 10**18
BTC, ETH = 0, 1
WALLET = 10_000_000  # whole tokens minted to every trading actor
MAX_UINT = 2**256 - 1
MASK63 = 2**63 - 1
MASK64 = 2**64 - 1
MASK128 = 2**128 - 1
RISK_BIT = 2**63  # top bit of the imr field of the engine's rates word: the RiskModel sets requirements
ZERO_ADDRESS = "0x" + "00" * 20
FEED_DECIMALS = 8

# Default market parameters (margin_engine.config.default_config()): imr 10 %,
# mmr 5 %, min_notional 10 USD, and
FEE_RATE = WAD // 1000  # 0.1 % of notional
FUNDING_RATE_MAX = WAD * 5 // 10000 // 3600  # 0.05 % per hour at full skew


# Ways a round can be invalid, with the engine's revert string.
ORACLE_FAULTS = {
    "stale": "oracle: stale",
    "incomplete": "oracle: stale",
    "future": "oracle: stale",
    "zero": "oracle: price",
    "negative": "oracle: price",
    "below_min": "oracle: bounds",
    "above_max": "oracle: bounds",
}


# Runs a test of a decimals-parametrised module on the 6-decimal system only
# (for checks that do not depend on the settlement token's decimals).
dec6_only = pytest.mark.dec6_only


def usd(value: str | int) -> int:
    """An exact decimal USD amount or price as WAD ("60000.5" -> 60000.5e18)."""
    result = Decimal(value) * WAD
    assert result == result.to_integral_value(), value
    return int(result)


def answer(value: str | int) -> int:
    """An exact decimal USD price as an 8-decimal feed answer."""
    result = Decimal(value) * 10**FEED_DECIMALS
    assert result == result.to_integral_value(), value
    return int(result)


@dataclass
class Ctx:
    system: Any
    lens: Any
    admin: Any
    risk_manager: Any
    guardian: Any
    chain: Any
    decimals: int
    extra_feeds: dict = field(default_factory=dict)

    # ------------------------------------------------------------- contracts
    @property
    def engine(self):
        return self.system.engine

    @property
    def configurator(self):
        return self.system.configurator

    @property
    def risk(self):
        """The engine's RiskModel (volatility, tiers, MM ramps of flagged markets)."""
        return self.system.risk

    @property
    def token(self):
        return self.system.settlement

    @property
    def vault(self):
        return self.system.vault

    def feed(self, market: int):
        return self.system.feeds[["BTC", "ETH"][market]] if market < 2 else self.extra_feeds[market]

    # ----------------------------------------------------------------- units
    @property
    def unit(self) -> int:
        """One whole settlement token in token units."""
        return 10**self.decimals

    @property
    def scale(self) -> int:
        """Token units to WAD."""
        return 10 ** (18 - self.decimals)

    def tok(self, value: str | int) -> int:
        """An exact decimal token amount in token units ("60.5" -> 60.5 * unit)."""
        result = Decimal(value) * self.unit
        assert result == result.to_integral_value(), (value, self.decimals)
        return int(result)

    # --------------------------------------------------------------- actions
    def fund(self, account, amount: int, sub: int = 0):
        """Deposit `amount` token units (the wallet is pre-funded and approved)."""
        return self.engine.deposit(sub, self.token, amount, sender=account)

    def trade(self, account, market: int, size: int, sub: int = 0, sender=None, limit=None):
        """modify_position with a limit that never binds unless given."""
        if limit is None:
            limit = MAX_UINT if size > 0 else 0
        return self.engine.modify_position(account, sub, market, size, limit, sender=sender or account)

    def set_price(self, market: int, price: str | int):
        """A fresh round at `price` USD (exact decimal)."""
        return self.feed(market).set_answer(answer(price), sender=self.admin)

    def stored_params(self, market: int) -> dict:
        """The market's parameters as the configurator stored them in the
        engine (`market_words`): the static imr and the target mmr, without
        RISK_BIT. For a market flagged with RISK_BIT these are not the rates
        in force (`lens.market_params`), which may be the volatility rates or
        a ramp's; for any other market they are the same."""
        words = self.engine.market_words(market)
        rates = words[2]
        return {
            "imr": rates & MASK63,
            "mmr": (rates >> 64) & MASK64,
            "fee_rate": (rates >> 128) & MASK64,
            "liq_fee": rates >> 192,
            "max_oi": words[3] & MASK128,
            "min_notional": words[3] >> 128,
            "funding_rate_max": words[5] >> 192,
        }

    def params(self, market: int, **changes) -> tuple:
        """The stored parameters with `changes`, as `set_market_params` takes
        them (so that "the other parameters unchanged" keeps a ramp's target
        and a flagged market's static imr)."""
        values = self.stored_params(market)
        values.update(changes)
        return tuple(values.values())

    def set_params(self, market: int, **changes):
        """set_market_params by the risk manager, other parameters unchanged."""
        return self.configurator.set_market_params(market, self.params(market, **changes), sender=self.risk_manager)

    def add_market(self, project, price: str | int = 100) -> int:
        """List a market on a fresh 8-decimal mock feed at `price` USD
        (bounds 1 % .. 100x, ETH's risk parameters, no funding)."""
        feed = project.MockAggregator.deploy(FEED_DECIMALS, answer(price), sender=self.admin)
        receipt = self.configurator.add_market(
            feed,
            3600,
            usd(price) // 100,
            usd(price) * 100,
            self.params(ETH, funding_rate_max=0),
            sender=self.admin,
        )
        market = receipt.events.filter(self.configurator.MarketAdded)[0].market
        self.extra_feeds[market] = feed
        return market

    def pause(self):
        return self.configurator.pause(sender=self.guardian)

    def break_oracle(self, market: int, fault: str):
        """Publish a round that makes `market`'s price invalid (see ORACLE_FAULTS)."""
        feed = self.feed(market)
        current = feed.latestRoundData()[1]
        now = self.chain.pending_timestamp  # the round below is mined at `now`
        config = self.lens.oracle_config(market)
        to_answer = 10 ** (18 - FEED_DECIMALS)
        if fault == "stale":  # one second past the heartbeat at the next block
            return feed.set_round(current, now - config.heartbeat - 1, sender=self.admin)
        if fault == "incomplete":  # updatedAt == 0
            return feed.set_round(current, 0, sender=self.admin)
        if fault == "future":  # updatedAt after the block time
            return feed.set_round(current, now + 1_000, sender=self.admin)
        if fault == "zero":
            return feed.set_answer(0, sender=self.admin)
        if fault == "negative":
            return feed.set_answer(-1, sender=self.admin)
        if fault == "below_min":  # one feed unit below the lower bound
            return feed.set_answer(config.min_price // to_answer - 1, sender=self.admin)
        if fault == "above_max":  # one feed unit above the upper bound
            return feed.set_answer(config.max_price // to_answer + 1, sender=self.admin)
        raise ValueError(fault)

    # ---------------------------------------------------------------- checks
    def engine_logs(self, receipt) -> list:
        """The logs the engine emitted in `receipt` (token transfers left out)."""
        return [log for log in receipt.events if log.contract_address == self.engine.address]

    def oi(self, market: int) -> tuple[int, int]:
        state = self.lens.market_state(market)
        return state.long_oi, state.short_oi

    def position(self, owner, market: int, sub: int = 0) -> tuple[int, int, int]:
        """(size, entry_price, funding_index) as stored."""
        p = self.engine.position(owner, sub, market)
        return p.size, p.entry_price, p.funding_index

    def assert_ledger(self, *accounts):
        """Custody equals the three ledgers exactly: the engine's token balance
        is the sum of the given (owner, sub) balances, the insurance fund and
        the vault's assets (every other account of the system must be empty)."""
        balances = sum(self.engine.balance_of(owner, sub, self.token) for owner, sub in accounts)
        assert self.token.balanceOf(self.engine) == (
            balances + self.engine.insurance_fund() + self.engine.vault_assets()
        )

    def snapshot(self, *owners, subs=(0,)) -> dict:
        """The ledger state a user action could touch: custody, vault and
        insurance ledgers, open interest and funding of the default markets,
        and each owner's wallet, balances, account word and open positions."""
        engine = self.engine
        out: dict = {
            "engine_tokens": self.token.balanceOf(engine),
            "vault_assets": engine.vault_assets(),
            "insurance": engine.insurance_fund(),
            "markets": [tuple(self.lens.market_state(m)) for m in (BTC, ETH)],
            "active": [engine.active_accounts(i) for i in range(engine.active_count())],
        }
        for owner in owners:
            out[(str(owner), "wallet")] = self.token.balanceOf(owner)
            for sub in subs:
                meta = engine.account_meta(owner, sub)
                markets = [(meta >> (16 + 8 * i)) & 0xFF for i in range(meta & 255)]
                out[(str(owner), sub)] = (
                    engine.balance_of(owner, sub, self.token),
                    meta,
                    [self.position(owner, m, sub) for m in markets],
                )
        return out


@pytest.fixture(scope="session")
def risk(system):
    """The default system's RiskModel (`system.risk`)."""
    return system.risk


@pytest.fixture(scope="session")
def make_ctx(make_system, project, chain, admin, risk_manager, guardian, trader, other_trader, operator, liquidator):
    def make(decimals: int = 6) -> Ctx:
        system = make_system(decimals)
        lens = project.MarginLens.deploy(system.engine, sender=admin)
        ctx = Ctx(system, lens, admin, risk_manager, guardian, chain, decimals)
        for market in (BTC, ETH):
            ctx.set_params(market, funding_rate_max=0)
        for actor in (trader, other_trader, operator, liquidator):
            system.settlement.mint(actor, WALLET * 10**decimals, sender=actor)
            system.settlement.approve(system.engine, MAX_UINT, sender=actor)
        return ctx

    return make


@pytest.fixture(scope="session")
def ctx6(make_ctx) -> Ctx:
    """A system with a 6-decimal settlement token, deployed once per session."""
    return make_ctx(6)


@pytest.fixture(scope="session", params=[6, 18], ids=["dec6", "dec18"])
def ctx_decimals(request, make_ctx) -> Ctx:
    """A system per settlement-token decimals (6 and 18), each deployed once
    per session; a module parametrises its tests over both by overriding
    `ctx` with this fixture."""
    return make_ctx(request.param)


@pytest.fixture
def ctx(ctx6) -> Ctx:
    return ctx6


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "dec6_only: run only on the 6-decimal system of a decimals-parametrised module"
    )


def pytest_collection_modifyitems(config, items):
    # `dec6_only` tests check nothing that depends on the token's decimals:
    # their 18-decimal copies are deselected rather than run twice.
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker("dec6_only") and callspec and callspec.params.get("ctx_decimals") == 18:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
