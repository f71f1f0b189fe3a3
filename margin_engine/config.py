"""Typed deployment configuration (pydantic v2).

A configuration describes one deployment of the engine: the settlement asset,
the markets with their oracles and risk parameters, the collateral assets
(``docs/collateral.md``), the liquidation parameters, the vault and the
roles. It is read from YAML or JSON
(:func:`load_config`) or built in code (:func:`default_config`, the local-chain
default, identical to ``deploy/local.yaml``).

Units follow the design (``docs/engine-spec.md``): prices, USD values and
rates are WAD integers (``10**18`` = 1.0 = 100%); open interest caps are base
units with 18 decimals; liquidation reward floor and cap are settlement-token
units. Integer fields accept an int, or a string such as ``"600e18"`` or
``"1_000_000"`` (exact; floats are refused, they lose precision).

This module does not import Ape.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from eth_utils import is_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

WAD = 10**18
"""18-decimal fixed point one."""

MAX_MARKETS = 2**16
"""Market ids are below ``2**16`` (engine-spec)."""

MAX_COLLATERAL_ASSETS = 16
"""``CollateralManager.MAX_ASSETS``."""

MAX_DISCOUNT = WAD // 5
"""Largest collateral liquidation discount (``EngineConfigurator.MAX_DISCOUNT``, 20 %)."""

MAX_RATE_GROWTH = WAD // 31_536_000
"""Fastest share-rate rise of an ERC-4626 collateral (``EngineConfigurator.MAX_RATE_GROWTH``,
100 % per year, WAD per second)."""

__all__ = [
    "WAD",
    "Address",
    "CollateralAssetConfig",
    "DeployConfig",
    "LiquidationConfig",
    "MarketConfig",
    "RolesConfig",
    "default_config",
    "dump_config",
    "load_config",
]


# --------------------------------------------------------------------------
#                               Field types
# --------------------------------------------------------------------------

_SCI = re.compile(r"^([0-9]+(?:\.[0-9]+)?)[eE]\+?([0-9]+)$")


def _parse_int(value: Any) -> Any:
    """Accepts ints and exact integer strings ("600e18", "1_000", "10**18")."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a bool")
    if isinstance(value, float):
        raise ValueError(
            f"expected an integer, got the float {value!r}: write it as an int "
            "or a string such as '600e18' (floats lose precision)"
        )
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        negative = text.startswith("-")
        if negative:
            text = text[1:]
        if m := re.fullmatch(r"([0-9]+)\*\*([0-9]+)", text):
            result = int(m.group(1)) ** int(m.group(2))
        elif m := _SCI.fullmatch(text):
            exact = Decimal(m.group(1)).scaleb(int(m.group(2)))
            if exact != exact.to_integral_value():
                raise ValueError(f"{value!r} is not an integer")
            result = int(exact)
        elif text.isdigit():
            result = int(text)
        else:
            raise ValueError(f"cannot read {value!r} as an integer")
        return -result if negative else result
    return value


def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"{value!r} is not an address")
    return to_checksum_address(value)


Int = Annotated[int, BeforeValidator(_parse_int)]
"""An integer that may be written as an exact string in YAML/JSON."""

Address = Annotated[str, AfterValidator(_checksum)]
"""A 20-byte hex address, normalised to its checksum form."""


class _Model(BaseModel):
    # Unknown keys are errors: a typo in a config file must not be ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------
#                                  Models
# --------------------------------------------------------------------------


class VolatilityConfig(_Model):
    """A market's volatility margin (``EngineConfigurator.set_volatility``; docs/risk-model.md)."""

    epoch: Int = Field(ge=300, le=86_400, description="Sampling period (s).")
    decay: Int = Field(description="Per-epoch retention of the old estimate (WAD, 0.5 .. 1 - 1e-5).")
    z: Int = Field(ge=WAD, le=10 * WAD, description="Multiplier of the horizon's standard deviation (WAD).")
    horizon: Int = Field(ge=3_600, le=30 * 86_400, description="Liquidation horizon (s).")
    floor: Int = Field(ge=WAD // 200, description="Lowest base IM rate (WAD).")
    cap: Int = Field(le=WAD, description="Highest base IM rate (WAD).")
    mm_fraction: Int = Field(ge=WAD // 10, le=9 * WAD // 10, description="MM rate / IM rate (WAD).")
    seed_var: Int = Field(gt=0, description="Starting variance per second (WAD), e.g. volatility.seed_var(params, cap).")

    @model_validator(mode="after")
    def _check(self) -> VolatilityConfig:
        if not WAD // 2 <= self.decay <= WAD - WAD // 100_000:
            raise ValueError(f"volatility: decay {self.decay} outside [0.5, 1 - 1e-5] (WAD)")
        if self.floor > self.cap:
            raise ValueError(f"volatility: floor {self.floor} > cap {self.cap}")
        return self

    def params(self) -> tuple[int, int, int, int, int, int, int]:
        """The configurator's ``VolatilityParams`` struct, as a tuple in field order."""
        return (self.epoch, self.decay, self.z, self.horizon, self.floor, self.cap, self.mm_fraction)


class TiersConfig(_Model):
    """A market's size tiers (``EngineConfigurator.set_tiers``): above ``edges[i]``
    (whole settlement units of notional) the rate is ``multipliers[i]`` percent of the base rate."""

    edges: list[Int] = Field(min_length=1, max_length=4)
    multipliers: list[Int] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _check(self) -> TiersConfig:
        if len(self.edges) != len(self.multipliers):
            raise ValueError("tiers: edges and multipliers differ in length")
        if any(b <= a for a, b in zip([0, *self.edges], self.edges)) or self.edges[-1] >= 2**32:
            raise ValueError(f"tiers: edges must rise strictly from > 0 and stay below 2**32: {self.edges}")
        if any(b < a for a, b in zip([100, *self.multipliers], self.multipliers)) or self.multipliers[-1] > 10_000:
            raise ValueError(f"tiers: multipliers must be non-decreasing in [100, 10000]: {self.multipliers}")
        return self


class MarketConfig(_Model):
    """One perpetual market: its oracle and risk parameters."""

    name: str = Field(min_length=1, description="Market name, e.g. 'BTC'.")
    feed: Address | None = Field(
        default=None,
        description="Chainlink AggregatorV3 feed; None deploys a MockAggregator.",
    )
    mock_price: Decimal | None = Field(
        default=None,
        description="Initial USD price of the mock feed (only when feed is None).",
    )
    feed_decimals: int = Field(
        default=8, ge=0, le=18, description="Decimals of the mock feed."
    )
    heartbeat: Int = Field(gt=0, description="Seconds a round stays fresh.")
    min_price: Int = Field(gt=0, description="Lowest valid price (WAD).")
    max_price: Int = Field(gt=0, description="Highest valid price (WAD).")
    imr: Int = Field(description="Initial margin rate (WAD).")
    mmr: Int = Field(description="Maintenance margin rate (WAD).")
    fee_rate: Int = Field(ge=0, lt=WAD, description="Trading fee on notional (WAD).")
    liq_fee: Int = Field(description="Liquidation penalty on closed notional (WAD).")
    max_oi: Int = Field(gt=0, description="Open interest cap per side (1e18 base units).")
    min_notional: Int = Field(ge=0, description="Smallest position notional (WAD USD).")
    funding_rate_max: Int = Field(
        ge=0, description="Funding rate per second at full skew (WAD)."
    )
    volatility: VolatilityConfig | None = Field(
        default=None, description="Volatility margin; None keeps the static imr/mmr."
    )
    tiers: TiersConfig | None = Field(default=None, description="Size tiers; None: one bracket.")

    @model_validator(mode="after")
    def _check(self) -> MarketConfig:
        if not 0 < self.mmr < self.imr <= WAD:
            raise ValueError(
                f"market {self.name}: need 0 < mmr < imr <= 1e18 "
                f"(mmr={self.mmr}, imr={self.imr})"
            )
        if not 0 < self.liq_fee < self.mmr:
            raise ValueError(
                f"market {self.name}: need 0 < liq_fee < mmr "
                f"(liq_fee={self.liq_fee}, mmr={self.mmr})"
            )
        if not self.min_price < self.max_price:
            raise ValueError(
                f"market {self.name}: need min_price < max_price "
                f"({self.min_price} >= {self.max_price})"
            )
        if self.feed is None:
            if self.mock_price is None or self.mock_price <= 0:
                raise ValueError(
                    f"market {self.name}: without a feed, a positive mock_price is needed"
                )
            answer = self.mock_price.scaleb(self.feed_decimals)
            if answer != answer.to_integral_value():
                raise ValueError(
                    f"market {self.name}: mock_price {self.mock_price} has more "
                    f"than feed_decimals={self.feed_decimals} decimals"
                )
            if not self.min_price <= self.mock_price_wad() <= self.max_price:
                raise ValueError(
                    f"market {self.name}: mock_price {self.mock_price} is outside "
                    "[min_price, max_price]"
                )
        return self

    def mock_answer(self) -> int:
        """The mock feed's initial answer, in ``feed_decimals`` decimals."""
        if self.mock_price is None:
            raise ValueError(f"market {self.name} has no mock_price")
        return int(self.mock_price.scaleb(self.feed_decimals))

    def mock_price_wad(self) -> int:
        """The mock feed's initial price as WAD."""
        return self.mock_answer() * 10 ** (18 - self.feed_decimals)

    def params(self) -> tuple[int, int, int, int, int, int, int]:
        """The engine's ``MarketParams`` struct, as a tuple in field order."""
        return (
            self.imr,
            self.mmr,
            self.fee_rate,
            self.liq_fee,
            self.max_oi,
            self.min_notional,
            self.funding_rate_max,
        )


class CollateralAssetConfig(_Model):
    """One collateral asset (``EngineConfigurator.list_collateral``; bounds in
    ``docs/collateral.md`` section 2): a plain ERC-20, or (``vault``) an
    ERC-4626 share priced by its underlying's feed times its share rate.

    In YAML, under ``collateral:``::

        - name: WETH
          address: null          # null: deploy a MockERC20 with `decimals`
          decimals: 18
          feed: null             # null: deploy a MockAggregator at mock_price
          mock_price: 3000       # USD (of the underlying for a vault share)
          feed_decimals: 8
          heartbeat: 3600
          min_price: "30e18"
          max_price: "300000e18"
          w_init: "0.8e18"
          w_maint: "0.85e18"
          discount: "0.05e18"
          cap: "10000e18"        # token units
        - name: sDAI
          decimals: 18
          vault: true            # mock: MockERC4626 over a MockERC20 `underlying_name`
          underlying_name: DAI
          underlying_decimals: 18
          max_rate_growth: 3170979198   # 10 %/year in WAD per second
          ...
    """

    name: str = Field(
        min_length=1,
        description="Asset name, e.g. 'WETH'; also the mock token's name and symbol (at most 32 bytes).",
    )
    address: Address | None = Field(
        default=None,
        description="The token (the ERC-4626 share for a vault); None deploys a MockERC20 (a MockERC4626).",
    )
    decimals: int = Field(
        default=18, ge=0, le=18, description="Decimals of the mock token (a mock share has its underlying's)."
    )
    feed: Address | None = Field(
        default=None,
        description="Chainlink AggregatorV3 USD feed of the token (of the underlying for a vault); "
        "None deploys a MockAggregator.",
    )
    mock_price: Decimal | None = Field(
        default=None, description="Initial USD price of the mock feed (only when feed is None)."
    )
    feed_decimals: int = Field(default=8, ge=0, le=18, description="Decimals of the mock feed.")
    heartbeat: Int = Field(gt=0, le=2**32 - 1, description="Seconds a round stays fresh.")
    min_price: Int = Field(gt=0, description="Lowest valid feed price (WAD).")
    max_price: Int = Field(gt=0, le=2**128 - 1, description="Highest valid feed price (WAD).")
    w_init: Int = Field(gt=0, description="Initial weight (WAD), 0 < w_init <= w_maint.")
    w_maint: Int = Field(gt=0, le=WAD, description="Maintenance weight (WAD), <= 1.")
    discount: Int = Field(
        ge=0, le=MAX_DISCOUNT, description="Collateral liquidation discount (WAD), <= 20 %, w_maint + discount <= 1."
    )
    cap: Int = Field(gt=0, le=2**128 - 1, description="Supply cap (token units deposited in all accounts).")
    enabled: bool = Field(default=True, description="Deposits allowed.")
    vault: bool = Field(default=False, description="The asset is an ERC-4626 share.")
    max_rate_growth: Int = Field(
        default=0,
        ge=0,
        le=MAX_RATE_GROWTH,
        description="Fastest rise of a vault share's rate (WAD per second, <= 100 %/year); 0 for a plain token.",
    )
    underlying_name: str | None = Field(
        default=None,
        description="Name and symbol of the mock underlying of a mock vault share (at most 32 bytes).",
    )
    underlying_decimals: int | None = Field(
        default=None, ge=0, le=18, description="Decimals of the mock underlying (a mock share's decimals)."
    )

    @model_validator(mode="after")
    def _check(self) -> CollateralAssetConfig:
        where = f"collateral {self.name}"
        if len(self.name.encode()) > 32:
            raise ValueError(f"{where}: the name is at most 32 bytes (the mock's symbol)")
        if not self.w_init <= self.w_maint:
            raise ValueError(f"{where}: need 0 < w_init <= w_maint (w_init={self.w_init}, w_maint={self.w_maint})")
        if self.w_maint + self.discount > WAD:
            raise ValueError(f"{where}: need w_maint + discount <= 1e18 ({self.w_maint} + {self.discount})")
        if not self.min_price < self.max_price:
            raise ValueError(f"{where}: need min_price < max_price ({self.min_price} >= {self.max_price})")
        if self.vault:
            if self.max_rate_growth == 0:
                raise ValueError(f"{where}: a vault share needs 0 < max_rate_growth <= {MAX_RATE_GROWTH}")
            if self.address is None:
                if self.underlying_name is None or self.underlying_decimals is None:
                    raise ValueError(f"{where}: a mock vault share needs underlying_name and underlying_decimals")
                if len(self.underlying_name.encode()) > 32 or not self.underlying_name:
                    raise ValueError(f"{where}: underlying_name is 1 to 32 bytes")
                if self.decimals != self.underlying_decimals:
                    raise ValueError(
                        f"{where}: a mock share has its underlying's decimals "
                        f"(decimals={self.decimals}, underlying_decimals={self.underlying_decimals})"
                    )
            elif self.underlying_name is not None or self.underlying_decimals is not None:
                raise ValueError(f"{where}: underlying_name/underlying_decimals are for a mock vault share only")
        else:
            if self.max_rate_growth != 0:
                raise ValueError(f"{where}: max_rate_growth is for vault shares only (set 0)")
            if self.underlying_name is not None or self.underlying_decimals is not None:
                raise ValueError(f"{where}: underlying_name/underlying_decimals are for vault shares only")
        if self.feed is None:
            if self.mock_price is None or self.mock_price <= 0:
                raise ValueError(f"{where}: without a feed, a positive mock_price is needed")
            answer = self.mock_price.scaleb(self.feed_decimals)
            if answer != answer.to_integral_value():
                raise ValueError(
                    f"{where}: mock_price {self.mock_price} has more than feed_decimals={self.feed_decimals} decimals"
                )
            if not self.min_price <= self.mock_price_wad() <= self.max_price:
                raise ValueError(f"{where}: mock_price {self.mock_price} is outside [min_price, max_price]")
        return self

    def mock_answer(self) -> int:
        """The mock feed's initial answer, in ``feed_decimals`` decimals."""
        if self.mock_price is None:
            raise ValueError(f"collateral {self.name} has no mock_price")
        return int(self.mock_price.scaleb(self.feed_decimals))

    def mock_price_wad(self) -> int:
        """The mock feed's initial price as WAD."""
        return self.mock_answer() * 10 ** (18 - self.feed_decimals)

    def params(self) -> tuple[int, int, int, int, bool]:
        """The ``ICollateralManager.CollateralParams`` struct, as a tuple in field order."""
        return (self.w_init, self.w_maint, self.discount, self.cap, self.enabled)


class LiquidationConfig(_Model):
    """Global liquidation parameters (the engine's ``LiquidationParams``)."""

    buffer: Int = Field(ge=0, description="Liquidation restores mm * (1 + buffer) (WAD).")
    liquidator_share: Int = Field(
        ge=0, le=WAD, description="Share of the penalty paid to the liquidator (WAD)."
    )
    reward_floor: Int = Field(ge=0, description="Smallest reward (settlement token units).")
    reward_cap: Int = Field(ge=0, description="Largest reward (settlement token units).")

    @model_validator(mode="after")
    def _check(self) -> LiquidationConfig:
        if self.reward_floor > self.reward_cap:
            raise ValueError(
                f"liquidation: reward_floor {self.reward_floor} > reward_cap {self.reward_cap}"
            )
        return self

    def params(self) -> tuple[int, int, int, int]:
        """The engine's ``LiquidationParams`` struct, as a tuple in field order."""
        return (self.buffer, self.liquidator_share, self.reward_floor, self.reward_cap)


class RolesConfig(_Model):
    """Role holders besides the admin (the admin is the deployer)."""

    risk_manager: Address | None = Field(
        default=None,
        description="RISK_MANAGER_ROLE holder; None keeps the deployer.",
    )
    guardian: Address | None = Field(
        default=None, description="GUARDIAN_ROLE holder; None grants no guardian."
    )


class DeployConfig(_Model):
    """A whole deployment."""

    settlement_asset: Address | None = Field(
        default=None,
        description="Settlement token; None deploys a MockERC20 'USD Coin' / 'USDC'.",
    )
    settlement_decimals: int = Field(
        default=6, ge=0, le=18, description="Decimals of the mock settlement token."
    )
    markets: list[MarketConfig] = Field(default_factory=list)
    collateral: list[CollateralAssetConfig] = Field(
        default_factory=list, description="Collateral assets besides the settlement asset (listed in this order)."
    )
    liquidation: LiquidationConfig
    reserve_factor: Int = Field(
        ge=0, le=WAD, description="Share of the net open notional the vault reserves (WAD)."
    )
    upnl_haircut: Int = Field(
        default=0,
        ge=0,
        le=WAD,
        description="Share of positive unrealised PnL left out of equity_init (WAD; 0 counts it in full).",
    )
    transfer_margin_ratio: Int = Field(
        default=0,
        ge=0,
        le=WAD,
        description="Withdrawals need equity_init >= this share of the total notional (WAD; 0: IM only).",
    )
    call_buffer: Int = Field(
        default=0,
        ge=0,
        le=WAD,
        description="Margin-call band: accounts below mm * (1 + call_buffer) may be reduced (WAD; 0: off).",
    )
    call_fee_share: Int = Field(
        default=0, ge=0, le=WAD // 2, description="Margin-call fee as a share of the market's liq_fee (WAD)."
    )
    call_fraction: Int = Field(
        default=WAD // 4,
        ge=WAD // 100,
        le=WAD // 2,
        description="Most of a position one margin call closes (WAD).",
    )
    # snekmate's ERC-20/4626 bounds: name String[25], symbol String[5].
    vault_name: str = Field(default="Margin Engine Vault USDC", min_length=1, max_length=25)
    vault_symbol: str = Field(default="meUSD", min_length=1, max_length=5)
    roles: RolesConfig = Field(default_factory=RolesConfig)

    @model_validator(mode="after")
    def _check(self) -> DeployConfig:
        # String[N] bounds are in bytes.
        if len(self.vault_name.encode()) > 25 or len(self.vault_symbol.encode()) > 5:
            raise ValueError("vault_name is at most 25 bytes, vault_symbol at most 5 bytes")
        names = [m.name for m in self.markets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate market names: {duplicates}")
        if len(names) > MAX_MARKETS:
            raise ValueError(f"at most {MAX_MARKETS} markets")
        names = [c.name for c in self.collateral]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate collateral names: {duplicates}")
        if len(names) > MAX_COLLATERAL_ASSETS:
            raise ValueError(f"at most {MAX_COLLATERAL_ASSETS} collateral assets")
        addresses = [c.address for c in self.collateral if c.address is not None]
        if len(set(addresses)) != len(addresses):
            raise ValueError("a collateral asset is listed twice")
        if self.settlement_asset is not None and self.settlement_asset in addresses:
            raise ValueError("the settlement asset cannot be a collateral asset")
        return self

    def market(self, name: str) -> MarketConfig:
        """The market called ``name`` (``KeyError`` if none)."""
        for m in self.markets:
            if m.name == name:
                return m
        raise KeyError(name)

    def collateral_asset(self, name: str) -> CollateralAssetConfig:
        """The collateral asset called ``name`` (``KeyError`` if none)."""
        for c in self.collateral:
            if c.name == name:
                return c
        raise KeyError(name)


# --------------------------------------------------------------------------
#                               Load / dump
# --------------------------------------------------------------------------


def load_config(path: str | Path) -> DeployConfig:
    """Reads a configuration from a ``.json`` file, or YAML otherwise."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return DeployConfig.model_validate(data)


def dump_config(config: DeployConfig, path: str | Path | None = None) -> str:
    """Serialises ``config`` to YAML (JSON for a ``.json`` path); writes it if a path is given."""
    data = config.model_dump(mode="json")
    # Decimals (mock prices) as plain numbers when exact, ints stay ints.
    for m in [*data["markets"], *data["collateral"]]:
        if m.get("mock_price") is not None:
            d = Decimal(m["mock_price"])
            m["mock_price"] = int(d) if d == d.to_integral_value() else str(d)
    if path is not None and Path(path).suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _market(
    name: str, price: int, max_oi_units: int, feed_decimals: int = 8
) -> MarketConfig:
    """A default local market around a mock ``price`` (whole USD)."""
    return MarketConfig(
        name=name,
        feed=None,
        mock_price=Decimal(price),
        feed_decimals=feed_decimals,
        heartbeat=3600,
        min_price=price * WAD // 100,  # 1% of the price
        max_price=price * WAD * 100,  # 100x the price
        imr=WAD // 10,  # 10%: max leverage 10x
        mmr=WAD // 20,  # 5%
        fee_rate=WAD // 1000,  # 0.1%
        liq_fee=WAD // 50,  # 2%
        max_oi=max_oi_units * WAD,
        min_notional=10 * WAD,  # $10
        funding_rate_max=WAD * 5 // 10000 // 3600,  # 0.05% per hour at full skew
    )


def default_config() -> DeployConfig:
    """The local-chain default (same content as ``deploy/local.yaml``).

    Mock USDC (6 decimals); BTC at $60,000 and ETH at $3,000 on 8-decimal mock
    feeds; 10x max leverage.
    """
    decimals = 6
    return DeployConfig(
        settlement_asset=None,
        settlement_decimals=decimals,
        markets=[
            _market("BTC", 60_000, 1_000),
            _market("ETH", 3_000, 20_000),
        ],
        liquidation=LiquidationConfig(
            buffer=WAD // 10,  # restore mm * 1.1
            liquidator_share=WAD // 2,  # 50% of the penalty
            reward_floor=1 * 10**decimals,  # 1 USDC
            reward_cap=10_000 * 10**decimals,  # 10,000 USDC
        ),
        reserve_factor=5 * 10**17,  # 50%
        vault_name="Margin Engine Vault USDC",
        vault_symbol="meUSD",
        roles=RolesConfig(),
    )


def risk_config() -> DeployConfig:
    """``default_config()`` with the risk model on (same content as ``deploy/risk.yaml``).

    BTC and ETH get the calibrated volatility margin of ``bench/calibration.md``
    (hourly epoch, 14-day half-life, one-day horizon, floor 10 %, cap 50 %, MM
    50 % of IM, z 4.5 and 4.0), seeded at the variance whose IM rate is the
    market's 2017-2024 median (15 % and 17 %; a listing without history
    should seed at the cap), size tiers (1.25x, 1.5x and 2x the base rate
    above 1M, 5M and 20M USD of BTC notional; 500k, 2.5M and 10M for ETH),
    and the margin-call band (buffer 25 %, fee a quarter of the liquidation
    fee, at most a quarter of a position per call). Liquidations restore
    ``mm_required * 1.25``, the top of the band, so a liquidated account is
    not margin-callable right after.
    """
    from margin_engine.calibration import onchain_params
    from margin_engine.volatility import seed_var

    config = default_config()
    medians = {"BTC": 151 * WAD // 1000, "ETH": 171 * WAD // 1000}
    edges = {"BTC": [1_000_000, 5_000_000, 20_000_000], "ETH": [500_000, 2_500_000, 10_000_000]}
    markets = []
    for market in config.markets:
        p = onchain_params(market.name)
        vol = VolatilityConfig(
            epoch=p.epoch,
            decay=p.decay,
            z=p.z,
            horizon=p.horizon,
            floor=p.floor,
            cap=p.cap,
            mm_fraction=p.mm_fraction,
            seed_var=seed_var(p, medians[market.name]),
        )
        tiers = TiersConfig(edges=edges[market.name], multipliers=[125, 150, 200])
        markets.append(market.model_copy(update={"volatility": vol, "tiers": tiers}))
    liquidation = config.liquidation.model_copy(update={"buffer": WAD // 4})
    return config.model_copy(
        update={
            "markets": markets,
            "liquidation": liquidation,
            "call_buffer": WAD // 4,
            "call_fee_share": WAD // 4,
            "call_fraction": WAD // 4,
        }
    )
