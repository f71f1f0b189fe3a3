"""Fixtures for multi-collateral accounts (docs/collateral.md).

`col` is the session system with three collateral assets listed by the
configurator, each on its own 8-decimal mock feed:

- WETH (18 decimals) at 3,000 USD, weights 0.80 / 0.85, discount 5 %;
- WBTC (8 decimals) at 60,000 USD, weights 0.75 / 0.80, discount 5 %;
- sUSD, an ERC-4626 share (6 decimals) over a 6-decimal dollar priced at
  1 USD, weights 0.90 / 0.95, discount 2 %, rate growth bound 10 %/year.

The listing happens once per module; Ape's isolation rolls every test back
to that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

WAD = 10**18
MAX_UINT = 2**256 - 1
HEARTBEAT = 3_600
GROWTH = WAD // 31_536_000 // 10  # 10 % per year, WAD per second


@dataclass
class Asset:
    token: Any
    feed: Any
    decimals: int
    w_init: int
    w_maint: int
    discount: int
    vault: bool = False
    underlying: Any = None

    def units(self, amount: str | int) -> int:
        """Whole tokens (a decimal string allowed) to token units."""
        from decimal import Decimal

        return int(Decimal(str(amount)) * 10**self.decimals)


@dataclass
class Col:
    engine: Any
    manager: Any
    configurator: Any
    usdc: Any
    lens: Any
    admin: Any
    risk_manager: Any
    weth: Asset
    wbtc: Asset
    susd: Asset
    scale: int

    def give(self, account, asset: Asset, amount: int, sub: int = 0) -> None:
        """Mint `amount` token units of `asset` to `account` and deposit them."""
        token = asset.token
        if asset.vault:
            asset.underlying.mint(account, amount, sender=account)
            asset.underlying.approve(token, MAX_UINT, sender=account)
            token.deposit(amount, account, sender=account)
            amount = token.balanceOf(account)
        else:
            token.mint(account, amount, sender=account)
        token.approve(self.engine, MAX_UINT, sender=account)
        self.engine.deposit(sub, token, amount, sender=account)

    def give_usdc(self, account, amount: int, sub: int = 0) -> None:
        self.usdc.mint(account, amount, sender=account)
        self.usdc.approve(self.engine, MAX_UINT, sender=account)
        self.engine.deposit(sub, self.usdc, amount, sender=account)

    def set_price(self, asset: Asset, usd: int | float) -> None:
        """Feed answer in USD (8 decimals)."""
        asset.feed.set_answer(int(round(usd * 10**8)), sender=self.admin)

    def value(self, account, sub: int = 0) -> tuple[int, int]:
        """(value_init, value_maint) of the account's collateral assets (WAD)."""
        vi, vm, _ok = self.manager.value(account, sub, False)
        return vi, vm


def _params(w_init: int, w_maint: int, discount: int, cap: int) -> dict:
    return {"w_init": w_init, "w_maint": w_maint, "discount": discount, "cap": cap, "enabled": True}


@pytest.fixture(scope="module")
def col(system, project, admin, risk_manager) -> Col:
    configurator = system.configurator
    engine = system.engine

    def listed(name, decimals, price, w_init, w_maint, discount) -> Asset:
        token = project.MockERC20.deploy(name, name, decimals, sender=admin)
        feed = project.MockAggregator.deploy(8, price * 10**8, sender=admin)
        configurator.list_collateral(
            token, feed, HEARTBEAT, WAD // 10**6, 10**12 * WAD,
            _params(w_init, w_maint, discount, 10**30), False, 0, sender=admin,
        )
        return Asset(token, feed, decimals, w_init, w_maint, discount)

    weth = listed("WETH", 18, 3_000, 80 * WAD // 100, 85 * WAD // 100, 5 * WAD // 100)
    wbtc = listed("WBTC", 8, 60_000, 75 * WAD // 100, 80 * WAD // 100, 5 * WAD // 100)
    dollar = project.MockERC20.deploy("Dollar", "USDX", 6, sender=admin)
    share = project.MockERC4626.deploy(dollar, "Savings Dollar", "sUSD", sender=admin)
    susd_feed = project.MockAggregator.deploy(8, 10**8, sender=admin)
    configurator.list_collateral(
        share, susd_feed, HEARTBEAT, WAD // 10**6, 10**12 * WAD,
        _params(90 * WAD // 100, 95 * WAD // 100, 2 * WAD // 100, 10**30), True, GROWTH, sender=admin,
    )
    susd = Asset(share, susd_feed, 6, 90 * WAD // 100, 95 * WAD // 100, 2 * WAD // 100, True, dollar)
    return Col(
        engine=engine,
        manager=system.collateral,
        configurator=configurator,
        usdc=system.settlement,
        lens=system.lens,
        admin=admin,
        risk_manager=risk_manager,
        weth=weth,
        wbtc=wbtc,
        susd=susd,
        scale=engine.SCALE(),
    )
