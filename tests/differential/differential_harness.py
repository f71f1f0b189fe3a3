"""Differential harness: the reference model against the deployed contracts.

One `Differential` drives `margin_engine.model.Engine` and a deployed system
(titanoboa `BoaSystem`, or Ape `ApeSystem`) through the same operations at the
same timestamps, and checks after each one that both agree to the wei:
revert reasons, return values, the PositionModified / Liquidation / BadDebt /
VaultShortfall / MarginCall events of the engine, the VolatilityUpdated /
TiersRamp events of the risk model and the configurator's MaintenanceRamp,
the ledgers (balances, insurance fund, vault assets, custody) and, at
checkpoints, every account, position and market state. Once a market uses
the risk model (volatility, tiers, static MM ramps), its risk state (the
volatility estimate and rates word, the tier words, the MM ramp, the RISK_BIT
and the base rates in force) is compared after every operation.

Operations are given in relative terms (a fraction of what the account could
open, of its position, of its balance...) and turned into absolute numbers
from the model's state, so any generated sequence is meaningful in any state.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from hypothesis import settings

from margin_engine.config import DeployConfig, RolesConfig, default_config
from margin_engine.deploy import deploy
from margin_engine import volatility
from margin_engine.model import (
    BANKRUPT,
    LIQUIDATABLE,
    RISK_BIT,
    TIER_SCHEDULE_MASK,
    WAD,
    Engine,
    LiquidationParams,
    Market,
    MarketParams,
    ModelRevert,
    average_mm_rate,
    base_rates,
    current_index,
    floor_div,
    in_force,
    mmr_in_force,
    mul_div_up,
    position_value,
    requirements,
    vol_mm_in_force,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
UINT_MAX = 2**256 - 1
BUY_ANY = 2**255  # widest limit for a buy
SELL_ANY = 0  # widest limit for a sell
PPM = 10**6
COMPARED_EVENTS = ("PositionModified", "Liquidation", "BadDebt", "VaultShortfall", "MarginCall")
# Logged by the risk model (volatility samples and parameters, tier changes)
# and by the configurator (a new static MM ramp); compared too.
RISK_EVENTS = ("VolatilityUpdated", "TiersRamp")
CONFIGURATOR_EVENTS = ("MaintenanceRamp",)
MIN_RATE_CHANGE_DELAY = 3_600  # EngineConfigurator
MAX_RATE_STEP = WAD // 20  # EngineConfigurator
ERROR_SELECTOR = bytes.fromhex("08c379a0")
# The mock token's revert when the engine sends more than it holds.
INSOLVENT_TRANSFER = "erc20: transfer amount exceeds balance"
def examples(default: int) -> int:
    """`default`, or the example count of the profile selected with
    HYPOTHESIS_PROFILE or --hypothesis-profile (e.g. `fuzz`)."""
    selected = os.environ.get("HYPOTHESIS_PROFILE")
    if selected:
        return settings.get_profile(selected).max_examples
    if settings.get_current_profile_name() != "default":
        return settings.default.max_examples
    return default


class Reverted(Exception):
    """A contract call reverted; ``reason`` is its revert string ('' if none)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_config(decimals: int) -> DeployConfig:
    """`default_config()` with the reward floor and cap in `decimals` (as tests/conftest.py)."""
    config = default_config()
    return config.model_copy(
        update={
            "settlement_decimals": decimals,
            "liquidation": config.liquidation.model_copy(
                update={"reward_floor": 10**decimals, "reward_cap": 10_000 * 10**decimals}
            ),
        }
    )


def risk_system_config(decimals: int) -> DeployConfig:
    """`system_config(decimals)` plus a third market, 'DOGE' at $0.37 (8-decimal
    feed, bounds $0.0037 to $37, 10**10 units of open interest a side): at a
    price below $1 every notional is the notional of some size, so positions
    can be sized to land on any wei (tier edges). Volatility, tiers and the
    margin-call band are left off: tests switch them on through both sides."""
    config = system_config(decimals)
    btc = config.markets[0]
    doge = btc.model_copy(
        update={
            "name": "DOGE",
            "mock_price": Decimal("0.37"),
            "min_price": 37 * WAD // 10_000,
            "max_price": 37 * WAD,
            "max_oi": 10**10 * WAD,
        }
    )
    return config.model_copy(update={"markets": [*config.markets, doge]})


def model_for(config: DeployConfig, now: int) -> Engine:
    """A model engine configured like `config`, markets listed at their mock prices."""
    liq = config.liquidation
    model = Engine(
        token_decimals=config.settlement_decimals,
        liq_params=LiquidationParams(liq.buffer, liq.liquidator_share, liq.reward_floor, liq.reward_cap),
        reserve_factor=config.reserve_factor,
        now=now,
    )
    for market in config.markets:
        model.add_market(MarketParams(*market.params()), market.mock_price_wad())
    return model


def spec_liquidation_price(state: Any, size: int, price: int, mmr: int) -> int:
    """The spec's liquidation price (docs/engine-spec.md, "Liquidation price")."""
    slack = state.equity_maint - state.mm_required
    if size > 0:
        d = (size * (WAD - mmr)) // WAD
        p = price - floor_div(slack * WAD, d) if d else 0
    else:
        d = (-size * (WAD + mmr)) // WAD
        p = price + floor_div(slack * WAD, d) if d else 0
    return p if d and p > 0 else 0


def liquidation_mmr(market: Market, pos: Any, now: int) -> int:
    """The rate of the liquidation-price formula: the ``mmr`` in force, or in a
    market using the risk model the position's average MM rate (engine-spec
    "Liquidation price", risk-model 10.3)."""
    current = in_force(market, now)
    if not market.risk:
        return current.params.mmr
    return average_mm_rate(current, mul_div_up(abs(pos.size), market.price, WAD), now)


def rates_word(market: Market) -> int:
    """The engine's stored rates word: ``imr | RISK_BIT | mmr << 64 | fee_rate << 128 | liq_fee << 192``
    (``mmr`` is the target of a ramp, the risk model keeps the ramp)."""
    p = market.params
    return p.imr | (RISK_BIT if market.risk else 0) | p.mmr << 64 | p.fee_rate << 128 | p.liq_fee << 192


def model_risk_state(market: Market, now: int) -> tuple[Any, ...]:
    """What `BoaSystem.risk_state` reads, from the model: ``risk.volatility``
    (var, daily sigma up, anchor price, next sample time, IM rate, MM in
    force, MM target, ramp end; zeros without volatility), ``risk.tiers``,
    ``risk.mm_ramp``, ``configurator.mm_ramp``, the stored rates word and
    ``lens.market_params`` (with the base rates in force)."""
    vol: tuple[int, ...] = (0,) * 8
    if market.vol_params is not None:
        state, rates = market.vol_state, market.vol_rates
        assert state is not None
        following = (state.anchor_epoch + 1) * market.vol_params.epoch if state.anchor_price else 0
        vol = (
            state.var,
            volatility.sqrt_up(state.var * 86_400 * WAD),
            state.anchor_price,
            following,
            rates[0],
            vol_mm_in_force(rates, now),
            rates[2],
            rates[4],
        )
    tiers = market.tiers
    tiers_t = (tiers & TIER_SCHEDULE_MASK, market.old_tiers, (tiers >> 192) & (2**32 - 1), tiers >> 224)
    ramp = market.mm_ramp or (0, 0, 0, 0)
    imr, mmr = base_rates(market, now)
    p = market.params
    params = (imr, mmr, p.fee_rate, p.liq_fee, p.max_oi, p.min_notional, p.funding_rate_max)
    return vol, tiers_t, tuple(ramp), tuple(ramp), rates_word(market), params


def risk_events(model: Engine, before: dict[int, tuple[Any, ...]], risk_op: str | None) -> list[tuple[str, dict]]:
    """The risk model's and configurator's compared events of a successful
    operation, from the model's state before (``(vol_state, vol_rates,
    mm_ramp)`` per market) and after it:

    - a volatility sample with an anchor logs ``VolatilityUpdated`` (the
      first sample of a series only anchors, silently);
    - ``set_volatility`` logs ``VolatilityUpdated`` with anchor 0 (all zero
      when it turns volatility off);
    - ``set_tiers`` logs ``TiersRamp``;
    - ``set_market_params`` starting a new static MM ramp logs ``MaintenanceRamp``.
    """
    events: list[tuple[str, dict]] = []
    for m, market in model.markets.items():
        state, rates, ramp = before.get(m, (None, (0,) * 5, None))
        if risk_op == f"set_volatility({m})":
            var = market.vol_state.var if market.vol_state is not None else 0
            im, old, new, start, end = market.vol_rates
            events.append(
                (
                    "VolatilityUpdated",
                    dict(market=m, var=var, anchor_price=0, im_rate=im, mm_rate_from=old, mm_rate_to=new,
                         ramp_start=start, ramp_end=end),
                )
            )  # fmt: skip
        elif state is not None and state.anchor_price and market.vol_state is not None and market.vol_state != state:
            im, old, new, start, end = market.vol_rates
            events.append(
                (
                    "VolatilityUpdated",
                    dict(market=m, var=market.vol_state.var, anchor_price=market.vol_state.anchor_price, im_rate=im,
                         mm_rate_from=old, mm_rate_to=new, ramp_start=start, ramp_end=end),
                )
            )  # fmt: skip
        if risk_op == f"set_tiers({m})":
            start, end = (market.tiers >> 192) & (2**32 - 1), market.tiers >> 224
            events.append(
                (
                    "TiersRamp",
                    dict(market=m, old_tiers=market.old_tiers, new_tiers=market.tiers & TIER_SCHEDULE_MASK,
                         ramp_start=start, ramp_end=end),
                )
            )  # fmt: skip
        if risk_op == f"set_market_params({m})" and market.mm_ramp is not None and market.mm_ramp != ramp:
            old, new, start, end = market.mm_ramp
            events.append(("MaintenanceRamp", dict(market=m, old_mmr=old, new_mmr=new, start=start, end=end)))
    return events


def vol_params_tuple(params: volatility.VolParams | None) -> tuple[int, ...]:
    """The configurator's ``VolatilityParams`` struct (all zero: volatility off)."""
    if params is None:
        return (0,) * 7
    return (params.epoch, params.decay, params.z, params.horizon, params.floor, params.cap, params.mm_fraction)


# --------------------------------------------------------------------------
#                               titanoboa system
# --------------------------------------------------------------------------


def boa_reason(err: Exception) -> str:
    """The revert string of a BoaError."""
    frame = err.stack_trace.last_frame  # type: ignore[attr-defined]
    vm_error = getattr(frame, "vm_error", None)
    data = vm_error.args[0] if vm_error is not None and vm_error.args else b""
    if isinstance(data, bytes) and data[:4] == ERROR_SELECTOR:
        return abi_decode(["string"], data[4:])[0]
    return ""


class _EngineCalls:
    """The state-changing calls both back ends make, through their own `_tx`."""

    def deposit(self, owner: str, sub: int, amount: int) -> Any:
        return self._tx(owner, self.engine.deposit, sub, self.token.address, amount)

    def withdraw(self, owner: str, sub: int, amount: int) -> Any:
        return self._tx(owner, self.engine.withdraw, sub, self.token.address, amount)

    def transfer(self, owner: str, from_sub: int, to_sub: int, amount: int) -> Any:
        return self._tx(owner, self.engine.transfer_collateral, from_sub, to_sub, self.token.address, amount)

    def set_margin_mode(self, owner: str, sub: int, isolated: bool) -> Any:
        return self._tx(owner, self.engine.set_margin_mode, sub, isolated)

    def trade(self, owner: str, sub: int, market: int, delta: int, limit: int) -> Any:
        return self._tx(owner, self.engine.modify_position, owner, sub, market, delta, limit)

    def close(self, owner: str, sub: int, market: int, limit: int) -> Any:
        return self._tx(owner, self.engine.close_position, owner, sub, market, limit)

    def liquidate(self, owner: str, sub: int, market: int, max_size: int, liquidator: str | None = None) -> Any:
        return self._tx(liquidator or self.liquidator, self.engine.liquidate, owner, sub, market, max_size)

    def fund_insurance(self, amount: int) -> Any:
        return self._tx(self.funder, self.engine.fund_insurance, amount)

    def lp_deposit(self, amount: int) -> Any:
        return self._tx(self.lp, self.vault.deposit, amount, self.lp)

    def lp_withdraw(self, amount: int) -> Any:
        return self._tx(self.lp, self.vault.withdraw, amount, self.lp, self.lp)

    def pause(self) -> Any:
        return self._tx(self.guardian, self.configurator.pause)

    def unpause(self) -> Any:
        return self._tx(self.guardian, self.configurator.unpause)

    # Risk model (docs/risk-model.md sections 10-12).

    def margin_call(self, owner: str, sub: int, market: int, max_size: int, caller: str) -> Any:
        return self._tx(caller, self.engine.margin_call, owner, sub, market, max_size)

    def update_volatility(self, market: int, caller: str) -> Any:
        return self._tx(caller, self.risk.update_volatility, market)

    def set_market_params(self, market: int, params: tuple[int, ...]) -> Any:
        return self._tx(self.risk_manager, self.configurator.set_market_params, market, params)

    def set_volatility(self, market: int, params: tuple[int, ...], seed_var: int) -> Any:
        return self._tx(self.risk_manager, self.configurator.set_volatility, market, params, seed_var)

    def set_tiers(self, market: int, edges: list[int], mults: list[int]) -> Any:
        return self._tx(self.risk_manager, self.configurator.set_tiers, market, edges, mults)

    def set_call_params(self, buffer: int, fee_share: int, fraction: int) -> Any:
        return self._tx(self.risk_manager, self.configurator.set_call_params, buffer, fee_share, fraction)

    def set_mm_ramp_duration(self, duration: int) -> Any:
        return self._tx(self.admin, self.configurator.set_mm_ramp_duration, duration)

    def risk_state(self, market: int) -> tuple[Any, ...]:
        """(volatility(), tiers(), risk.mm_ramp(), configurator.mm_ramp(), rates word,
        lens.market_params()) of a market."""
        return (
            tuple(self.risk.volatility(market)),
            tuple(self.risk.tiers(market)),
            tuple(self.risk.mm_ramp(market)),
            tuple(self.configurator.mm_ramp(market)),
            self.engine.market_words(market)[2],
            self.lens.market_params(market),
        )

    def _compared(self, name: str, address: Any) -> bool:
        """Whether a log is one the harness compares (by event name and emitter)."""
        address = str(address)
        if address == str(self.engine.address):
            return name in COMPARED_EVENTS
        if self.risk is not None and address == str(self.risk.address):
            return name in RISK_EVENTS
        return address == str(self.configurator.address) and name in CONFIGURATOR_EVENTS


class BoaSystem(_EngineCalls):
    """The whole system deployed with titanoboa, configured like `config`."""

    _deployers: dict[str, Any] = {}

    @classmethod
    def _deployer(cls, name: str) -> Any:
        import boa

        if name not in cls._deployers:
            path = CONTRACTS / f"{name}.vy"
            if not path.exists():
                path = CONTRACTS / "test" / f"{name}.vy"
            cls._deployers[name] = boa.load_partial(str(path))
        return cls._deployers[name]

    def __init__(self, config: DeployConfig, traders: int = 3, vault_funding: int = 1_000_000) -> None:
        import boa

        self.boa = boa
        self.env = boa.env
        self.config = config
        self.decimals = config.settlement_decimals
        env = boa.env
        self.admin = env.generate_address("admin")
        self.guardian = env.generate_address("guardian")
        self.lp = env.generate_address("lp")
        self.liquidator = env.generate_address("liquidator")
        self.funder = env.generate_address("funder")
        self.traders = [env.generate_address(f"trader{i}") for i in range(traders)]
        config = config.model_copy(update={"roles": RolesConfig(guardian=self.guardian)})
        deployment = deploy(config, self.admin, log=None, contracts=self._deployer)
        self.risk_manager = self.admin  # the deployer keeps RISK_MANAGER_ROLE
        self.risk = deployment.risk
        self.token, self.engine = deployment.settlement, deployment.engine
        self.configurator, self.vault, self.lens = deployment.configurator, deployment.vault, deployment.lens
        self.feeds = list(deployment.feeds.values())
        plenty = 10**15 * 10**self.decimals
        for actor in [self.lp, self.liquidator, self.funder, *self.traders]:
            self.token.mint(actor, plenty)
            with env.prank(actor):
                self.token.approve(self.engine.address, UINT_MAX)
                self.token.approve(self.vault.address, UINT_MAX)
        self.vault_funding = vault_funding * 10**self.decimals
        if self.vault_funding:
            with env.prank(self.lp):
                self.vault.deposit(self.vault_funding, self.lp)

    # ------------------------------------------------------------- plumbing

    def timestamp(self) -> int:
        return self.env.evm.patch.timestamp

    def at(self, timestamp: int) -> None:
        """The next transaction and the views after it run at `timestamp`."""
        self.env.evm.patch.timestamp = timestamp

    def settle(self, timestamp: int) -> None:
        """Views after an operation run at `timestamp` (nothing to do here)."""

    def _tx(self, sender: str, fn: Any, *args: Any) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
        try:
            with self.env.prank(sender):
                result = fn(*args)
        except self.boa.BoaError as err:
            raise Reverted(boa_reason(err)) from None
        events = []
        for log in fn.contract.get_logs():
            name = type(log).__name__
            if self._compared(name, log.address):
                fields = log._asdict()
                fields.pop("address")
                events.append((name, _normalise(fields)))
        return result, events

    # ---------------------------------------------------------- transactions

    def set_answer(self, market: int, answer: int) -> Any:
        with self.env.prank(self.admin):
            self.feeds[market].set_answer(answer)

    # ----------------------------------------------------------------- views

    def account(self, owner: str, sub: int) -> Any:
        return self.engine.account(owner, sub)

    def position(self, owner: str, sub: int, market: int) -> Any:
        return self.engine.position(owner, sub, market)

    def balance_of(self, owner: str, sub: int) -> int:
        return self.engine.balance_of(owner, sub, self.token.address)

    def insurance_fund(self) -> int:
        return self.engine.insurance_fund()

    def vault_assets(self) -> int:
        return self.engine.vault_assets()

    def vault_total_assets(self) -> int:
        return self.vault.totalAssets()

    def custody(self) -> int:
        return self.token.balanceOf(self.engine.address)

    def market_state(self, market: int) -> Any:
        return self.lens.market_state(market)

    def liquidation_price(self, owner: str, sub: int, market: int) -> int:
        return self.lens.liquidation_price(owner, sub, market)


def _event_key(event: tuple[str, dict[str, Any]]) -> str:
    return event[0]


def _normalise(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, str) else int(v)) for k, v in fields.items()}


# --------------------------------------------------------------------------
#                                  Ape system
# --------------------------------------------------------------------------


class ApeSystem(_EngineCalls):
    """The Ape session system (tests/conftest.py) behind the same interface as `BoaSystem`."""

    def __init__(self, system: Any, chain: Any, lens: Any, actors: dict[str, Any], traders: list[Any]) -> None:
        import ape

        self.ape = ape
        self.chain = chain
        self.engine = system.engine
        self.configurator = system.configurator
        self.risk = getattr(system, "risk", None)
        self.vault = system.vault
        self.token = system.settlement
        self.feeds = [system.feeds[m.name] for m in system.config.markets]
        self.config = system.config
        self.decimals = system.config.settlement_decimals
        self.lens = lens
        self.deployer = system.deployer
        self._acct = {a.address: a for a in [*actors.values(), *traders]}
        self.lp = actors["lp"].address
        self.guardian = actors["guardian"].address
        self.liquidator = actors["liquidator"].address
        self.funder = actors["funder"].address
        self.traders = [t.address for t in traders]
        self.vault_funding = self.vault.totalAssets()
        plenty = 10**15 * 10**self.decimals
        for addr in [self.liquidator, self.funder, self.lp, *self.traders]:
            acct = self._acct[addr]
            self.token.mint(acct, plenty, sender=acct)
            self.token.approve(self.engine, UINT_MAX, sender=acct)
            self.token.approve(self.vault, UINT_MAX, sender=acct)

    def timestamp(self) -> int:
        return self.chain.blocks.head.timestamp

    def at(self, timestamp: int) -> None:
        # Setting the pending timestamp mines an empty block one second earlier.
        if self.chain.pending_timestamp != timestamp:
            self.chain.pending_timestamp = timestamp

    def settle(self, timestamp: int) -> None:
        # Views read the latest block: make its timestamp `timestamp`.
        if self.chain.blocks.head.timestamp != timestamp:
            self.at(timestamp + 1)

    def _tx(self, sender: str, fn: Any, *args: Any) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
        try:
            receipt = fn(*args, sender=self._acct[sender])
        except self.ape.exceptions.ContractLogicError as err:
            raise Reverted(err.revert_message or "") from None
        events = []
        for log in receipt.events:
            if self._compared(log.event_name, log.contract_address):
                events.append((log.event_name, _normalise(dict(log.event_arguments))))
        return None, events

    def set_answer(self, market: int, answer: int) -> Any:
        self.feeds[market].set_answer(answer, sender=self.deployer)

    def account(self, owner: str, sub: int) -> Any:
        return self.engine.account(owner, sub)

    def position(self, owner: str, sub: int, market: int) -> Any:
        return self.engine.position(owner, sub, market)

    def balance_of(self, owner: str, sub: int) -> int:
        return self.engine.balance_of(owner, sub, self.token)

    def insurance_fund(self) -> int:
        return self.engine.insurance_fund()

    def vault_assets(self) -> int:
        return self.engine.vault_assets()

    def vault_total_assets(self) -> int:
        return self.vault.totalAssets()

    def custody(self) -> int:
        return self.token.balanceOf(self.engine)

    def market_state(self, market: int) -> Any:
        return self.lens.market_state(market)

    def liquidation_price(self, owner: str, sub: int, market: int) -> int:
        return self.lens.liquidation_price(owner, sub, market)


# --------------------------------------------------------------------------
#                                   Runner
# --------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Everything compared at a checkpoint, as plain tuples (for Ape vs boa)."""

    accounts: dict[tuple[str, int], tuple[int, ...]]  # (actor, sub), actor "trader<i>" or "liquidator"
    positions: dict[tuple[str, int, int], tuple[int, ...]]
    markets: dict[int, tuple[int, ...]]
    ledgers: tuple[int, ...]


class Differential:
    """Drives a system and the model in lockstep and checks they agree."""

    def __init__(self, system: Any, model: Engine | None = None) -> None:
        self.sys = system
        self.config: DeployConfig = system.config
        self.scale = 10 ** (18 - system.decimals)
        self.now = system.timestamp()
        self.model = model or model_for(self.config, self.now)
        if system.vault_funding and self.model.vault_assets == 0:
            self.model.vault_deposit(system.vault_funding)
        for m in range(len(self.config.markets)):
            state = system.market_state(m)
            assert state.long_oi == state.short_oi == 0, "the differential needs a market without positions"
            self.model.markets[m].funding_index = state.funding_index
            self.model.markets[m].last_funding_time = state.last_funding_time
        self.answers = [m.mock_answer() for m in self.config.markets]
        self.feed_scale = [10 ** (18 - m.feed_decimals) for m in self.config.markets]
        self.known: set[tuple[str, int]] = set()
        self.trace: list[str] = []
        self.stats: Counter[str] = Counter()
        self.snapshots: list[Snapshot] = []
        # The configurator's governance clocks (the model does not keep them).
        self.rates_changed_at: dict[int, int] = {}
        self.vol_changed_at: dict[int, int] = {}
        # Set by the first risk-model operation: from then on every market's
        # risk state is compared after every operation (`check_risk`).
        self.risk_used = False

    # ------------------------------------------------------------ lockstep

    def _tick(self, seconds: int = 1) -> None:
        self.now += seconds
        self.sys.at(self.now)
        self.model.now = self.now

    def _both(
        self,
        label: str,
        contract_call: Any,
        model_call: Any,
        touched: list[tuple[str, int]],
        risk_op: str | None = None,
        risk: bool = False,
    ) -> Any:
        """Run one operation on both sides and compare the outcome (`risk`:
        a risk-model operation, which turns `check_risk` on).

        ``risk_op`` names a parameter change (``set_volatility``,
        ``set_tiers``, ``set_market_params``) whose risk-model or configurator
        event the model is expected to produce (see :func:`risk_events`);
        volatility samples are recognised by themselves."""
        self._tick()
        self.trace.append(label)
        self.known.update(touched)
        self.risk_used |= risk or risk_op is not None
        c_reason = m_reason = None
        c_result: Any = None
        c_events: list[Any] = []
        try:
            c_result, c_events = contract_call()
        except Reverted as err:
            c_reason = err.reason
        n_events = len(self.model.events)
        before = {m: (market.vol_state, market.vol_rates, market.mm_ramp) for m, market in self.model.markets.items()}
        m_result = None
        try:
            m_result = model_call()
        except ModelRevert as err:
            m_reason = err.reason
        self.sys.settle(self.now)
        where = self._where()
        assert c_reason == m_reason, f"revert mismatch: contract {c_reason!r}, model {m_reason!r}{where}"
        if c_reason is not None:
            self.stats[f"revert {c_reason}"] += 1
        else:
            self.stats[label.split("(")[0]] += 1
            m_events = [(name, _normalise(fields)) for name, fields in self.model.events[n_events:]]
            m_events += [(name, _normalise(fields)) for name, fields in risk_events(self.model, before, risk_op)]
            # Compared in a fixed order: the contract logs BadDebt before
            # Liquidation, the model after (the spec does not order them).
            c_events.sort(key=_event_key)
            m_events.sort(key=_event_key)
            assert c_events == m_events, f"events differ:\ncontract {c_events}\nmodel    {m_events}{where}"
            for name, fields in c_events:
                if name == "MarginCall" and fields["size_closed"] == 0:
                    self.stats["MarginCall: a reduction left the account in the band"] += 1
                elif name != "PositionModified":
                    self.stats[name] += 1
            if c_result is not None and m_result is not None:
                assert c_result == m_result, f"return value: contract {c_result}, model {m_result}{where}"
        self.check_ledgers(touched)
        self.check_risk()
        return m_reason

    def _who(self, owner: str) -> str:
        """An actor's name, the same on every system."""
        if owner in self.sys.traders:
            return f"trader{self.sys.traders.index(owner)}"
        return "liquidator" if owner == self.sys.liquidator else owner

    def _where(self) -> str:
        return "\nafter: " + " ; ".join(self.trace[-12:])

    # -------------------------------------------------------------- checks

    def check_ledgers(self, touched: list[tuple[str, int]] = ()) -> None:  # type: ignore[assignment]
        """Custody, insurance, vault assets and the touched balances against the
        model, and ledger conservation: custody == balances + insurance + vault."""
        where = self._where()
        custody = self.sys.custody()
        insurance = self.sys.insurance_fund()
        vault_assets = self.sys.vault_assets()
        assert custody == self.model.custody, f"custody {custody} != model {self.model.custody}{where}"
        assert insurance == self.model.insurance, f"insurance {insurance} != model {self.model.insurance}{where}"
        assert vault_assets == max(self.model.vault_assets, 0), (
            f"vault assets {vault_assets} != model {self.model.vault_assets}{where}"
        )
        for owner, sub in touched:
            got = self.sys.balance_of(owner, sub)
            assert got == self.model.balance_of(owner, sub), (
                f"balance of {owner}/{sub}: contract {got}, model {self.model.balance_of(owner, sub)}{where}"
            )
        # Untouched balances equal the model's (checked when last touched and at
        # every `compare_all`).
        balances = sum(self.model.balance_of(o, s) for o, s in self.known)
        if self.model.vault_assets < 0:
            # The vault paid out more than it had: `vault_assets()` shows 0 and
            # the rest of the payout came out of the other accounts' collateral.
            self.stats["vault assets negative"] += 1
        assert custody == balances + insurance + self.model.vault_assets, f"ledger not conserved{where}"

    def check_risk(self) -> None:
        """Every market's risk state against the model, once a risk-model
        operation ran (or the model flags a market)."""
        if not self.risk_used and not any(market.risk for market in self.model.markets.values()):
            return
        where = self._where()
        for m in self.model.markets:
            got = self.sys.risk_state(m)
            want = model_risk_state(self.model.markets[m], self.now)
            got_t = (got[0], got[1], got[2], got[3], got[4], tuple(got[5]))
            assert got_t == want, f"risk state of market {m}:\ncontract {got_t}\nmodel    {want}{where}"
        self.stats["risk state compared"] += 1

    def compare_account(self, owner: str, sub: int) -> tuple[int, ...]:
        """One account's balance and margin view against the model."""
        state = self.model.account(owner, sub)
        got = self.sys.account(owner, sub)
        got_t = (
            self.sys.balance_of(owner, sub),
            got.equity_init,
            got.equity_maint,
            got.im_required,
            got.mm_required,
            got.status,
            got.positions,
        )
        want = (
            self.model.balance_of(owner, sub),
            state.equity_init,
            state.equity_maint,
            state.im_required,
            state.mm_required,
            state.status,
            state.positions,
        )
        assert got.prices_ok
        assert got_t == want, f"account {owner}/{sub}: contract {got_t}, model {want}{self._where()}"
        return got_t

    def compare_all(self, liquidation_prices: bool = False) -> Snapshot:
        """Every known account, balance, position and market against the model
        (and, if asked, every liquidation price against the spec)."""
        where = self._where()
        snap = Snapshot({}, {}, {}, ())
        for m, market in self.model.markets.items():
            got = self.sys.market_state(m)
            want = (market.long_oi, market.short_oi, market.funding_index, market.last_funding_time)
            got_t = (got.long_oi, got.short_oi, got.funding_index, got.last_funding_time)
            assert got_t == want, f"market {m} state: contract {got_t}, model {want}{where}"
            snap.markets[m] = got_t
        for owner, sub in sorted(self.known):
            state = self.model.account(owner, sub)
            got_t = self.compare_account(owner, sub)
            snap.accounts[(self._who(owner), sub)] = got_t
            self.stats[f"state {state.status}"] += 1
            if state.positions == 0:
                continue
            for m, market in self.model.markets.items():
                pos = self.model.position(owner, sub, m)
                got_p = self.sys.position(owner, sub, m)
                got_pt = (
                    got_p.size,
                    got_p.entry_price,
                    got_p.funding_index,
                    got_p.notional,
                    got_p.unrealized_pnl,
                    got_p.funding_owed,
                )
                if pos is None:
                    want_p: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
                else:
                    value = position_value(pos, market.price, current_index(market, self.now), market.params)
                    want_p = (pos.size, pos.entry_price, pos.funding_index, value.notional, value.upnl, value.funding)
                assert got_pt == want_p, f"position {owner}/{sub}/{m}: contract {got_pt}, model {want_p}{where}"
                snap.positions[(self._who(owner), sub, m)] = got_pt
                if pos is not None and liquidation_prices:
                    lp = self.sys.liquidation_price(owner, sub, m)
                    mmr = liquidation_mmr(market, pos, self.now)
                    want_lp = spec_liquidation_price(state, pos.size, market.price, mmr)
                    assert lp == want_lp, f"liquidation price {owner}/{sub}/{m}: lens {lp}, spec {want_lp}{where}"
                    model_lp = self.model.liquidation_price(owner, sub, m)
                    assert lp == model_lp, f"liquidation price {owner}/{sub}/{m}: lens {lp}, model {model_lp}{where}"
                    self.stats["liquidation price"] += 1
        custody, insurance, vault_assets = self.sys.custody(), self.sys.insurance_fund(), self.sys.vault_assets()
        assert self.sys.vault_total_assets() == vault_assets
        assert custody == sum(a[0] for a in snap.accounts.values()) + insurance + self.model.vault_assets
        snap.ledgers = (custody, insurance, vault_assets)
        self.snapshots.append(snap)
        return snap

    # ---------------------------------------------------------- operations

    def owner(self, index: int) -> str:
        return self.sys.traders[index % len(self.sys.traders)]

    def deposit(self, trader: int, sub: int, amount: int) -> Any:
        owner = self.owner(trader)
        return self._both(
            f"deposit({trader},{sub},{amount})",
            lambda: self.sys.deposit(owner, sub, amount),
            lambda: self.model.deposit(owner, sub, amount),
            [(owner, sub)],
        )

    def withdraw(self, trader: int, sub: int, amount: int) -> Any:
        owner = self.owner(trader)

        def model_call() -> None:
            with self.model._atomic():
                self.model.withdraw(owner, sub, amount)
                if self.model.custody < 0:
                    # The engine holds fewer tokens than the ledger owes: the
                    # vault paid out more than its assets (see `check_ledgers`).
                    # The token transfer fails; the model has no such rule.
                    self.stats["withdrawal above custody"] += 1
                    raise ModelRevert(INSOLVENT_TRANSFER)

        return self._both(
            f"withdraw({trader},{sub},{amount})",
            lambda: self.sys.withdraw(owner, sub, amount),
            model_call,
            [(owner, sub)],
        )

    def withdraw_fraction(self, trader: int, sub: int, ppm: int) -> Any:
        balance = self.model.balance_of(self.owner(trader), sub)
        return self.withdraw(trader, sub, max(1, max(balance, 0) * ppm // PPM))

    def transfer(self, trader: int, from_sub: int, to_sub: int, ppm: int) -> Any:
        owner = self.owner(trader)
        amount = max(1, max(self.model.balance_of(owner, from_sub), 0) * ppm // PPM)
        return self._both(
            f"transfer({trader},{from_sub}->{to_sub},{amount})",
            lambda: self.sys.transfer(owner, from_sub, to_sub, amount),
            lambda: self.model.transfer_collateral(owner, from_sub, to_sub, amount),
            [(owner, from_sub), (owner, to_sub)],
        )

    def set_margin_mode(self, trader: int, sub: int, isolated: bool) -> Any:
        owner = self.owner(trader)

        def model_call() -> None:
            # The model has no `set_margin_mode`: the rule of the contract is
            # mirrored on the model's `Account.isolated` flag.
            acct = self.model._account(owner, sub)
            if acct.positions:
                raise ModelRevert("engine: open positions")
            acct.isolated = isolated

        return self._both(
            f"margin_mode({trader},{sub},{isolated})",
            lambda: self.sys.set_margin_mode(owner, sub, isolated),
            model_call,
            [(owner, sub)],
        )

    def trade(self, trader: int, sub: int, market: int, delta: int, limit: int | None = None) -> Any:
        owner = self.owner(trader)
        if limit is None:
            limit = BUY_ANY if delta > 0 else SELL_ANY
        return self._both(
            f"trade({trader},{sub},{market},{delta},{limit})",
            lambda: self.sys.trade(owner, sub, market, delta, limit),
            lambda: self._model_trade(owner, sub, market, delta, limit),
            [(owner, sub)],
        )

    def _model_trade(self, owner: str, sub: int, market: int, delta: int, limit: int) -> int:
        """`model.modify_position` (same checks, same order as the contract)."""
        return self.model.modify_position(owner, sub, market, delta, limit)

    def max_open(self, trader: int, sub: int, market: int) -> int:
        """About the largest size the account can add in `market` (IM and fee);
        in a market using the risk model (tiers, volatility), the largest
        increase of the position (or new long) whose IM and fee fit, searched
        on the model."""
        owner = self.owner(trader)
        state = self.model.account(owner, sub)
        free = state.equity_init - state.im_required
        mirror = self.model.markets[market]
        params, price = mirror.params, mirror.price
        if free <= 0:
            return 0
        if not mirror.risk:
            return free * WAD // (params.imr + params.fee_rate) * WAD // price
        now = self.now + 1
        pos = self.model.position(owner, sub, market)
        size = abs(pos.size) if pos is not None else 0
        im_old = requirements(mirror, mul_div_up(size, price, WAD), now)[0] if size else 0

        def fits(q: int) -> bool:
            fee = -(-mul_div_up(mul_div_up(q, price, WAD), params.fee_rate, WAD) // self.scale) * self.scale
            im_new = requirements(mirror, mul_div_up(size + q, price, WAD), now)[0]
            return state.equity_init - fee >= state.im_required - im_old + im_new

        lo, hi = 0, free * WAD // base_rates(mirror, now)[0] * WAD // price + 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def open(self, trader: int, sub: int, market: int, long: bool, kind: str, ppm: int, limit_kind: int = 0) -> Any:
        """Open or increase: `kind` 'dust' (ppm wei), else `ppm` of `max_open`."""
        if kind == "dust":
            size = max(1, ppm)
        else:
            size = max(1, self.max_open(trader, sub, market) * ppm // PPM)
        delta = size if long else -size
        return self.trade(trader, sub, market, delta, self._limit(market, delta, limit_kind))

    def reduce(self, trader: int, sub: int, market: int, ppm: int, limit_kind: int = 0) -> Any:
        """Trade against the position: `ppm` of its size (above 10**6 flips it)."""
        pos = self.model.position(self.owner(trader), sub, market)
        if pos is None:
            return None
        delta = -pos.size * ppm // PPM
        if delta == 0:
            delta = -1 if pos.size > 0 else 1
        return self.trade(trader, sub, market, delta, self._limit(market, delta, limit_kind))

    def close(self, trader: int, sub: int, market: int) -> Any:
        owner = self.owner(trader)
        pos = self.model.position(owner, sub, market)
        limit = SELL_ANY if pos is None or pos.size > 0 else BUY_ANY
        return self._both(
            f"close({trader},{sub},{market})",
            lambda: self.sys.close(owner, sub, market, limit),
            lambda: self.model.close_position(owner, sub, market, limit),
            [(owner, sub)],
        )

    def _limit(self, market: int, delta: int, kind: int) -> int:
        price = self.model.markets[market].price
        if kind == 1:
            return price  # exactly the oracle price: passes
        if kind == 2:
            return price - 1 if delta > 0 else price + 1  # one wei too tight: slippage
        return BUY_ANY if delta > 0 else SELL_ANY

    def liquidate(
        self, trader: int, sub: int, market: int, max_size: int = UINT_MAX, liquidator: str | None = None
    ) -> Any:
        """Liquidate as the liquidator (or as `liquidator`, e.g. the owner itself)."""
        owner = self.owner(trader)
        liq = liquidator or self.sys.liquidator
        reason = self._both(
            f"liquidate({trader},{sub},{market},{max_size})",
            lambda: self.sys.liquidate(owner, sub, market, max_size, liq),
            lambda: self.model.liquidate(liq, owner, sub, market, max_size),
            [(owner, sub), (liq, 0)],
        )
        if reason is None:
            left = self.model.position(owner, sub, market)
            self.stats["partial liquidation" if left is not None else "full liquidation"] += 1
        return reason

    def liquidate_fraction(self, trader: int, sub: int, market: int, ppm: int) -> Any:
        """Liquidate with `max_size` = `ppm` of the position (0: no cap)."""
        pos = self.model.position(self.owner(trader), sub, market)
        if pos is None:
            return None
        cap = UINT_MAX if ppm == 0 else max(1, abs(pos.size) * ppm // PPM)
        return self.liquidate(trader, sub, market, cap)

    def fund_insurance(self, amount: int) -> Any:
        return self._both(
            f"insurance({amount})",
            lambda: self.sys.fund_insurance(amount),
            lambda: self.model.fund_insurance(amount),
            [],
        )

    def lp_deposit(self, amount: int) -> Any:
        return self._both(
            f"lp_deposit({amount})",
            lambda: self.sys.lp_deposit(amount),
            lambda: self.model.vault_deposit(amount),
            [],
        )

    def lp_withdraw(self, ppm: int) -> Any:
        amount = max(1, max(self.model.vault_assets, 0) * ppm // PPM)
        return self._both(
            f"lp_withdraw({amount})",
            lambda: self.sys.lp_withdraw(amount),
            lambda: self.model.vault_withdraw(amount),
            [],
        )

    def pause(self, paused: bool) -> Any:
        return self._both(
            f"pause({paused})",
            (lambda: self.sys.pause()) if paused else (lambda: self.sys.unpause()),
            (lambda: self.model.pause()) if paused else (lambda: self.model.unpause()),
            [],
        )

    # ------------------------------------------------------- risk model

    def margin_call(
        self, trader: int, sub: int, market: int, max_size: int = UINT_MAX, caller: str | None = None
    ) -> Any:
        """A margin call by the liquidator (or by `caller`), fee to its sub-account 0."""
        owner = self.owner(trader)
        who = caller or self.sys.liquidator
        reason = self._both(
            f"margin_call({trader},{sub},{market},{max_size})",
            lambda: self.sys.margin_call(owner, sub, market, max_size, who),
            lambda: self.model.margin_call(who, owner, sub, market, max_size),
            [(owner, sub), (who, 0)],
            risk=True,
        )
        if reason is None:
            left = self.model.position(owner, sub, market)
            self.stats["partial margin call" if left is not None else "full margin call"] += 1
        return reason

    def margin_call_fraction(self, trader: int, sub: int, market: int, ppm: int) -> Any:
        """A margin call with `max_size` = `ppm` of the position (0: no cap)."""
        pos = self.model.position(self.owner(trader), sub, market)
        if pos is None:
            return None
        cap = UINT_MAX if ppm == 0 else max(1, abs(pos.size) * ppm // PPM)
        return self.margin_call(trader, sub, market, cap)

    def update_volatility(self, market: int) -> Any:
        """A keeper's sample (`RiskModel.update_volatility`)."""
        caller = self.sys.liquidator
        return self._both(
            f"update_volatility({market})",
            lambda: self.sys.update_volatility(market, caller),
            lambda: self.model.update_volatility(market),
            [],
            risk=True,
        )

    def set_market_params(self, market: int, params: MarketParams) -> Any:
        """`configurator.set_market_params`, with the configurator's bounds, step
        and delay rules mirrored here (the model does not keep them)."""
        changed = False

        def model_call() -> None:
            nonlocal changed
            mirror = self.model.markets[market]
            old, now = mirror.params, self.now
            current = mmr_in_force(mirror, now)
            if not (
                0 < params.liq_fee < params.mmr < params.imr <= WAD
                and params.fee_rate <= 10**16
                and params.funding_rate_max <= WAD // 100 // 3_600
                and params.max_oi < 2**128
                and params.min_notional < 2**128
            ):
                raise ModelRevert("configurator: bad params")
            changed = (params.imr, params.mmr, params.liq_fee) != (old.imr, old.mmr, old.liq_fee)
            if changed:
                if now < self.rates_changed_at.get(market, 0) + MIN_RATE_CHANGE_DELAY:
                    raise ModelRevert("configurator: too soon")
                if (
                    abs(params.imr - old.imr) > MAX_RATE_STEP
                    or abs(params.mmr - current) > MAX_RATE_STEP
                    or abs(params.liq_fee - old.liq_fee) > MAX_RATE_STEP
                    or params.mmr > old.imr
                ):
                    raise ModelRevert("configurator: step")
            if params.mmr > current and params.liq_fee >= current:
                raise ModelRevert("configurator: bad params")
            self.model.set_market_params(market, params)

        reason = self._both(
            f"set_market_params({market},{params.imr},{params.mmr},{params.liq_fee})",
            lambda: self.sys.set_market_params(market, tuple(vars(params).values())),
            model_call,
            [],
            risk_op=f"set_market_params({market})",
        )
        if reason is None and changed:
            self.rates_changed_at[market] = self.now
        return reason

    def set_mmr(self, market: int, bps: int) -> Any:
        """Move the static mmr `bps` basis points of WAD from the rate in force
        (a rise ramps in), keeping it between liq_fee and imr."""
        mirror = self.model.markets[market]
        params = mirror.params
        current = mmr_in_force(mirror, self.now + 1)
        mmr = min(max(current + bps * WAD // 10_000, params.liq_fee + 1), params.imr - 1)
        return self.set_market_params(market, MarketParams(**{**vars(params), "mmr": mmr}))

    def set_volatility(self, market: int, params: tuple[int, ...], seed_var: int) -> Any:
        """`configurator.set_volatility` with the struct `params` (all zero:
        off); the bounds, delay and step rules mirrored here."""

        def model_call() -> None:
            mirror = self.model.markets[market]
            vol = None
            if any(params):
                try:
                    vol = volatility.VolParams(*params)
                except ValueError:
                    raise ModelRevert("configurator: bad params") from None
                if seed_var > volatility.MAX_VAR:
                    raise ModelRevert("configurator: bad params")
            old = mirror.vol_params
            changed = self.vol_changed_at.get(market, 0)
            # every change after the first waits the delay (off and on again too)
            if changed and self.now < changed + MIN_RATE_CHANGE_DELAY:
                raise ModelRevert("configurator: too soon")
            if old is not None:
                if vol is not None and (
                    abs(vol.floor - old.floor) > MAX_RATE_STEP or abs(vol.cap - old.cap) > MAX_RATE_STEP
                ):
                    raise ModelRevert("configurator: step")
            self.model.set_volatility(market, vol, seed_var)

        reason = self._both(
            f"set_volatility({market},{params},{seed_var})",
            lambda: self.sys.set_volatility(market, params, seed_var),
            model_call,
            [],
            risk_op=f"set_volatility({market})",
        )
        if reason is None:
            self.vol_changed_at[market] = self.now
        return reason

    def set_tiers(self, market: int, edges: list[int], mults: list[int]) -> Any:
        return self._both(
            f"set_tiers({market},{edges},{mults})",
            lambda: self.sys.set_tiers(market, list(edges), list(mults)),
            lambda: self.model.set_tiers(market, tuple(edges), tuple(mults)),
            [],
            risk_op=f"set_tiers({market})",
        )

    def set_call_params(self, buffer: int, fee_share: int, fraction: int) -> Any:
        return self._both(
            f"set_call_params({buffer},{fee_share},{fraction})",
            lambda: self.sys.set_call_params(buffer, fee_share, fraction),
            lambda: self.model.set_call_params(buffer, fee_share, fraction),
            [],
            risk=True,
        )

    def set_ramp_duration(self, seconds: int) -> Any:
        def model_call() -> None:
            if not 3_600 <= seconds <= 30 * 86_400:
                raise ModelRevert("configurator: bad params")
            self.model.ramp_duration = seconds

        return self._both(
            f"set_mm_ramp_duration({seconds})",
            lambda: self.sys.set_mm_ramp_duration(seconds),
            model_call,
            [],
            risk=True,
        )

    def set_price(self, market: int, ppm: int) -> None:
        """Move the market's price to `ppm` / 10**6 of its current answer."""
        self._post_answer(market, max(1, self.answers[market] * ppm // PPM))

    def _post_answer(self, market: int, answer: int) -> None:
        # Within the oracle's bounds (the model has none).
        config = self.config.markets[market]
        scale = self.feed_scale[market]
        answer = min(max(answer, -(-config.min_price // scale)), config.max_price // scale)
        self.answers[market] = answer
        self._tick()
        self.trace.append(f"price({market},{answer})")
        self.sys.set_answer(market, answer)
        self.model.set_price(market, answer * self.feed_scale[market])
        self.sys.settle(self.now)

    def set_price_to(self, market: int, price: int) -> None:
        """Move the market's price to about `price` (WAD, at the feed's precision)."""
        self._post_answer(market, max(1, price // self.feed_scale[market]))

    def advance(self, seconds: int) -> None:
        """Let time pass, then refresh every feed (heartbeat) at the same answers."""
        self._tick(seconds)
        self.trace.append(f"advance({seconds})")
        for market in range(len(self.answers)):
            if market:
                self._tick()
            self.sys.set_answer(market, self.answers[market])
        self.sys.settle(self.now)

    # -------------------------------------------------------------- sweeps

    def liquidate_all(self) -> None:
        """Liquidate every liquidatable account, largest position first, until none is."""
        # In trader order (not address order), so runs on chains with other
        # addresses make the same calls.
        mine = [(self.sys.traders.index(owner), sub) for owner, sub in self.known if owner in self.sys.traders]
        for trader, sub in sorted(mine):
            owner = self.sys.traders[trader]
            for _ in range(2 * len(self.model.markets) + 2):
                state = self.model.account(owner, sub)
                acct = self.model.accounts.get((owner, sub))
                if state.status not in (LIQUIDATABLE, BANKRUPT) or acct is None or not acct.positions:
                    break
                market = max(
                    acct.positions,
                    key=lambda m: abs(acct.positions[m].size) * self.model.markets[m].price,
                )
                self.liquidate(trader, sub, market)

    def close_all(self) -> None:
        """Close every position and withdraw every free balance."""
        # In trader order (not address order), so runs on chains with other
        # addresses make the same calls.
        mine = [(self.sys.traders.index(owner), sub) for owner, sub in self.known if owner in self.sys.traders]
        for trader, sub in sorted(mine):
            owner = self.sys.traders[trader]
            acct = self.model.accounts.get((owner, sub))
            for market in sorted(acct.positions) if acct else []:
                self.close(trader, sub, market)
            acct = self.model.accounts.get((owner, sub))
            if acct is not None and not acct.positions and acct.balance > 0:
                self.withdraw(trader, sub, acct.balance)


# --------------------------------------------------------------------------
#                               Scenarios
# --------------------------------------------------------------------------


def tokens(decimals: int, micro: int, dust: int) -> int:
    """Micro-dollars to token units, plus up to 10**6 - 1 units below a micro-dollar."""
    extra = dust % 10 ** (decimals - 6) if decimals > 6 else 0
    return max(1, micro * 10**decimals // 10**6 + extra)


def run(diff: Differential, ops: list[tuple]) -> None:
    """Apply operations given as tuples (see tests/differential/test_model_vs_engine.py)."""
    decimals = diff.sys.decimals
    for op in ops:
        kind, args = op[0], op[1:]
        if kind == "deposit":
            t, s, micro, dust = args
            diff.deposit(t, s, tokens(decimals, micro, dust))
        elif kind == "open":
            t, s, m, long, size_kind, amount, lk = args
            diff.open(t, s, m, long, size_kind, amount, lk)
        elif kind == "reduce":
            diff.reduce(*args)
        elif kind == "close":
            t, s, m = args
            if diff.model.position(diff.owner(t), s, m) is not None:
                diff.close(t, s, m)
        elif kind == "withdraw":
            diff.withdraw_fraction(*args)
        elif kind == "transfer":
            t, up, ppm = args
            diff.transfer(t, 0 if up else 1, 1 if up else 0, ppm)
        elif kind == "isolate":
            t, isolated = args
            diff.set_margin_mode(t, 1, isolated)
        elif kind == "price":
            diff.set_price(*args)
            diff.compare_all()
        elif kind == "advance":
            diff.advance(*args)
            diff.compare_all()
        elif kind == "liquidate":
            diff.liquidate_fraction(*args)
        elif kind == "lp_withdraw":
            diff.lp_withdraw(*args)
        elif kind == "lp_deposit":
            diff.lp_deposit(tokens(decimals, *args))
        elif kind == "insurance":
            diff.fund_insurance(tokens(decimals, *args))
        elif kind == "pause":
            diff.pause(*args)
        # Risk model (docs/risk-model.md sections 10-12).
        elif kind == "margin_call":
            diff.margin_call_fraction(*args)
        elif kind == "update_vol":
            diff.update_volatility(*args)
        elif kind == "set_vol":
            diff.set_volatility(*args)
        elif kind == "set_tiers":
            diff.set_tiers(*args)
        elif kind == "set_mmr":
            diff.set_mmr(*args)
        elif kind == "call_params":
            diff.set_call_params(*args)
        elif kind == "ramp_duration":
            diff.set_ramp_duration(*args)
        elif kind == "check":
            diff.compare_all()
        else:  # pragma: no cover
            raise AssertionError(kind)


def play(system: Any, scenario_: tuple) -> Differential:
    """Setup (deposits, opens), operations, price shocks, then liquidate
    everything liquidatable, close everything and withdraw: comparing all along."""
    (deposits, opens), ops, shocks = scenario_
    diff = Differential(system)
    for t, (micro0, micro1, dust, isolated) in enumerate(deposits):
        diff.deposit(t, 0, tokens(system.decimals, micro0, dust))
        diff.deposit(t, 1, tokens(system.decimals, micro1 // 10, dust))
        if isolated:
            diff.set_margin_mode(t, 1, True)
    run(diff, opens)
    diff.compare_all()
    run(diff, ops)
    run(diff, shocks)
    diff.compare_all(liquidation_prices=True)
    diff.liquidate_all()
    diff.compare_all()
    diff.pause(False)
    diff.close_all()
    diff.compare_all()
    return diff
