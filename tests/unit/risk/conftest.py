"""Fixtures and a lock-step model mirror for the on-chain risk-model tests
(`RiskModel.vy`: volatility margin and size tiers, docs/risk-model.md
sections 3, 4, 10 and 11).

`Mirror` drives a deployment and the integer reference model
(`margin_engine.model.Engine`) through the same actions at the same block
timestamps and compares them to the wei. `tests/unit/engine/test_margin_call.py`
and `tests/unit/engine/test_lens_risk_views.py` import it from here
(`from risk.conftest import ...`: pytest puts `tests/unit` on `sys.path` for
both packages).

`risk_system` is a system deployed once per session (6-decimal settlement
token, BTC id 0 at 60,000 and ETH id 1 at 3,000 on 8-decimal mock feeds,
10 % / 5 % static rates, min_notional 10 USD) with funding switched off on both
markets, so that equity is exact without timing, and the trading actors
holding `WALLET` tokens with an unlimited allowance to the engine. Ape's chain
isolation rolls every test back to that state.

Time: `mirror.at(t)` makes the next transaction mine at `t` (each later one a
second after the previous); views run at the head block's timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ape
import pytest

from margin_engine.model import (
    WAD,
    Engine,
    LiquidationParams,
    MarketParams,
    ModelRevert,
    vol_mm_in_force,
)
from margin_engine.volatility import VolParams, decay_from_half_life, sqrt_up

BTC, ETH = 0, 1
HOUR, DAY = 3_600, 86_400
FEED_DECIMALS = 8
MAX_UINT = 2**256 - 1
WALLET = 10_000_000  # whole tokens minted to every trading actor
MASK63, MASK64, MASK128 = 2**63 - 1, 2**64 - 1, 2**128 - 1
HEALTHY, MARGIN_CALL, LIQUIDATABLE, BANKRUPT = range(4)

# An hourly volatility margin with a short half-life (12 epochs), so that a
# few samples move the rates: IM = clamp(4 sigma_day, 10 %, 50 %), MM half of it.
VOL = VolParams(
    epoch=HOUR,
    decay=decay_from_half_life(12),
    z=4 * WAD,
    horizon=DAY,
    floor=WAD // 10,
    cap=WAD // 2,
    mm_fraction=WAD // 2,
)


def vol_tuple(params: VolParams) -> tuple[int, ...]:
    """The configurator's `VolatilityParams` struct (field order of `VolParams`)."""
    return (
        params.epoch, params.decay, params.z, params.horizon, params.floor, params.cap, params.mm_fraction,
    )  # fmt: skip


def answer(usd: str | int | Decimal) -> int:
    """An exact decimal USD price as an 8-decimal feed answer."""
    result = Decimal(usd) * 10**FEED_DECIMALS
    assert result == result.to_integral_value(), usd
    return int(result)


def addr(account: Any) -> str:
    """The model's key for an account (the checksum address events carry)."""
    return str(getattr(account, "address", account))


def state_tuple(state: Any) -> tuple:
    """An `AccountState` (chain struct or model dataclass) without `prices_ok`."""
    return (
        state.equity_init, state.equity_maint, state.im_required, state.mm_required, state.status, state.positions,
    )  # fmt: skip


@dataclass
class Mirror:
    """A deployment and the reference model, moved in lock step.

    Every action runs on chain first at a known timestamp (the next block's),
    then on the model at that same `now`; an expected revert must revert in
    both with the same string (`expect_revert`). Comparisons read the chain's
    views at the head block and the model at the head's timestamp.
    """

    system: Any
    lens: Any
    chain: Any
    admin: Any
    risk_manager: Any
    guardian: Any
    model: Engine = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        engine, configurator = self.engine, self.configurator
        assert engine.active_count() == 0, "the mirror starts from a system without positions"
        decimals = self.token.decimals()
        model = Engine(
            token_decimals=decimals,
            liq_params=LiquidationParams(*engine.liquidation_params()),
            now=self.chain.blocks.head.timestamp,
        )
        model.mm_ramp_duration = configurator.mm_ramp_duration()
        model.upnl_haircut, model.transfer_margin_ratio = configurator.margin_params()
        model.call_buffer, model.call_fee_share, model.call_fraction = configurator.call_params()
        model.paused = engine.paused()
        for market in range(engine.market_count()):
            assert not self.rates_word(market) >> 63 & 1, "the mirror starts from static markets"
            price, ok = engine.oracle_price(market)
            assert ok
            model.add_market(self.static_params(market), price)
            state = self.lens.market_state(market)
            model.markets[market].funding_index = state.funding_index
            model.markets[market].last_funding_time = state.last_funding_time
        model.vault_assets = engine.vault_assets()
        model.insurance = engine.insurance_fund()
        model.custody = self.token.balanceOf(engine)
        self.model = model

    # ------------------------------------------------------------- contracts
    @property
    def engine(self):
        return self.system.engine

    @property
    def configurator(self):
        return self.system.configurator

    @property
    def risk(self):
        return self.system.risk

    @property
    def token(self):
        return self.system.settlement

    @property
    def scale(self) -> int:
        return self.model.scale

    def feed(self, market: int):
        return self.system.feeds[["BTC", "ETH"][market]]

    def rates_word(self, market: int) -> int:
        return self.engine.market_words(market)[2]

    def static_params(self, market: int, **changes: int) -> MarketParams:
        """The stored (static) parameters of a market, from the engine's words."""
        _, _, rates, limits, _, funding = self.engine.market_words(market)
        values = {
            "imr": rates & MASK63,
            "mmr": (rates >> 64) & MASK64,
            "fee_rate": (rates >> 128) & MASK64,
            "liq_fee": rates >> 192,
            "max_oi": limits & MASK128,
            "min_notional": limits >> 128,
            "funding_rate_max": funding >> 192,
        }
        values.update(changes)
        return MarketParams(**values)

    # ------------------------------------------------------------------ time
    @property
    def head(self) -> int:
        return self.chain.blocks.head.timestamp

    def at(self, timestamp: int) -> None:
        """The next transaction mines at `timestamp`."""
        self.chain.pending_timestamp = timestamp

    def mine(self, timestamp: int) -> None:
        """An empty block at `timestamp`: views then run at that time."""
        self.chain.mine(timestamp=timestamp)

    def sync(self) -> None:
        """The model's clock at the head block (where views run)."""
        self.model.now = self.head

    def _step(self) -> int:
        """Before a transaction: the model's clock at the block it will mine in."""
        self.model.now = self.chain.pending_timestamp
        return self.model.now

    def _done(self, receipt: Any, when: int) -> Any:
        assert receipt.timestamp == when
        return receipt

    # --------------------------------------------------------------- actions
    def set_price(self, market: int, usd: str | int | Decimal) -> Any:
        """A fresh round at `usd` (exact decimal; also renews a stale feed)."""
        return self.set_answer(market, answer(usd))

    def set_answer(self, market: int, value: int) -> Any:
        """A fresh round with the raw 8-decimal feed answer `value`."""
        when = self._step()
        receipt = self.feed(market).set_answer(value, sender=self.admin)
        self.model.set_price(market, value * 10 ** (18 - FEED_DECIMALS))
        return self._done(receipt, when)

    def price(self, market: int) -> int:
        return self.model.markets[market].price

    def deposit(self, who: Any, amount: int, sub: int = 0) -> Any:
        when = self._step()
        receipt = self.engine.deposit(sub, self.token, amount, sender=who)
        self.model.deposit(addr(who), sub, amount)
        return self._done(receipt, when)

    def trade(self, who: Any, market: int, delta: int, sub: int = 0) -> Any:
        when = self._step()
        limit = MAX_UINT if delta > 0 else 0
        receipt = self.engine.modify_position(who, sub, market, delta, limit, sender=who)
        self.model.modify_position(addr(who), sub, market, delta, limit)
        return self._done(receipt, when)

    def set_market_params(self, market: int, **changes: int) -> Any:
        when = self._step()
        params = self.static_params(market, **changes)
        receipt = self.configurator.set_market_params(market, tuple(vars(params).values()), sender=self.risk_manager)
        self.model.set_market_params(market, params)
        return self._done(receipt, when)

    def set_volatility(self, market: int, params: VolParams, seed: int) -> Any:
        when = self._step()
        receipt = self.configurator.set_volatility(market, vol_tuple(params), seed, sender=self.risk_manager)
        self.model.set_volatility(market, params, seed)
        return self._done(receipt, when)

    def set_tiers(self, market: int, edges: list[int], mults: list[int]) -> Any:
        when = self._step()
        receipt = self.configurator.set_tiers(market, edges, mults, sender=self.risk_manager)
        self.model.set_tiers(market, edges, mults)
        return self._done(receipt, when)

    def set_call_params(self, buffer: int, share: int, fraction: int) -> Any:
        when = self._step()
        receipt = self.configurator.set_call_params(buffer, share, fraction, sender=self.risk_manager)
        self.model.set_call_params(buffer, share, fraction)
        return self._done(receipt, when)

    def update_volatility(self, market: int, sender: Any) -> Any:
        when = self._step()
        receipt = self.risk.update_volatility(market, sender=sender)
        self.model.update_volatility(market)
        return self._done(receipt, when)

    def margin_call(self, caller: Any, owner: Any, market: int, max_size: int, sub: int = 0) -> tuple[Any, int]:
        """Both calls; returns the receipt and the model's fee."""
        when = self._step()
        receipt = self.engine.margin_call(owner, sub, market, max_size, sender=caller)
        fee = self.model.margin_call(addr(caller), addr(owner), sub, market, max_size)
        return self._done(receipt, when), fee

    def liquidate(self, liquidator: Any, owner: Any, market: int, max_size: int, sub: int = 0) -> tuple[Any, int]:
        when = self._step()
        receipt = self.engine.liquidate(owner, sub, market, max_size, sender=liquidator)
        reward = self.model.liquidate(addr(liquidator), addr(owner), sub, market, max_size)
        return self._done(receipt, when), reward

    def pause(self) -> Any:
        when = self._step()
        receipt = self.configurator.pause(sender=self.guardian)
        self.model.pause()
        return self._done(receipt, when)

    def expect_revert(self, reason: str, on_chain, on_model) -> None:
        """`on_chain()` reverts with `reason`, and so does `on_model()` (at the
        timestamp the transaction would have had), leaving the model unchanged."""
        self._step()
        before = (self.model.events[:], self.model.vault_assets, self.model.insurance)
        with ape.reverts(reason):
            on_chain()
        with pytest.raises(ModelRevert) as raised:
            on_model()
        assert raised.value.reason == reason
        assert (self.model.events, self.model.vault_assets, self.model.insurance) == before

    # ---------------------------------------------------------------- checks
    def model_events(self, name: str) -> list[dict]:
        return [fields for event, fields in self.model.events if event == name]

    def assert_account(self, who: Any, sub: int = 0) -> Any:
        """`engine.account`, the balance and every position equal the model's now."""
        self.sync()
        got = self.engine.account(who, sub)
        want = self.model.account(addr(who), sub)
        assert got.prices_ok
        assert state_tuple(got) == state_tuple(want)
        assert self.engine.balance_of(who, sub, self.token) == self.model.balance_of(addr(who), sub)
        for market in range(len(self.model.markets)):
            pos = self.model.position(addr(who), sub, market)
            stored = self.engine.position(who, sub, market)
            assert (stored.size, stored.entry_price) == ((pos.size, pos.entry_price) if pos else (0, 0))
        return got

    def assert_ledgers(self) -> None:
        assert self.engine.vault_assets() == self.model.vault_assets
        assert self.engine.insurance_fund() == self.model.insurance
        assert self.token.balanceOf(self.engine) == self.model.custody

    def expected_volatility(self, market: int) -> tuple[int, ...]:
        """What `RiskModel.volatility(market)` must return now, from the model."""
        self.sync()
        m = self.model.markets[market]
        if m.vol_params is None:
            return (0,) * 8
        state, rates = m.vol_state, m.vol_rates
        next_sample = (state.anchor_epoch + 1) * m.vol_params.epoch if state.anchor_price else 0
        return (
            state.var,
            sqrt_up(state.var * DAY * WAD),
            state.anchor_price,
            next_sample,
            rates[0],
            vol_mm_in_force(rates, self.model.now),
            rates[2],
            rates[4],
        )

    def assert_volatility(self, market: int) -> tuple[int, ...]:
        expected = self.expected_volatility(market)
        assert tuple(self.risk.volatility(market)) == expected
        return expected


# --------------------------------------------------------------------------
#                                 Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def risk_system(make_system, admin, risk_manager, trader, other_trader, operator, liquidator, attacker):
    """A system for the risk tests (see the module docstring), deployed once per session."""
    system = make_system(6)
    for market in (BTC, ETH):
        p = system.lens.market_params(market)
        system.configurator.set_market_params(market, (*tuple(p)[:6], 0), sender=risk_manager)
    for actor in (trader, other_trader, operator, liquidator, attacker):
        system.settlement.mint(actor, WALLET * 10**6, sender=actor)
        system.settlement.approve(system.engine, MAX_UINT, sender=actor)
    return system


@pytest.fixture
def mirror(risk_system, chain, admin, risk_manager, guardian) -> Mirror:
    return Mirror(risk_system, risk_system.lens, chain, admin, risk_manager, guardian)
