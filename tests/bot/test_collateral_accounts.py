"""The liquidator bot and multi-collateral accounts (docs/collateral.md).

Pure Python first: an account whose word has the collateral bit takes its
state from the engine's ``account()`` (the reference model's
``account_state`` does not know collateral values), the lens flag is read
from objects and tuples alike, and the collateral-liquidation helpers pick
the right accounts and assets. Then on the local chain (the `col` system of
tests/unit/collateral): a liquidatable account backed by WETH with
settlement debt has its position liquidated and then its WETH, by the bot.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from sim_lens import accounts_snapshot, as_tuple, markets_snapshot

import margin_engine.liquidator as liq
from margin_engine.liquidator import account_from_lens, assess, evaluate, markets_from_lens
from margin_engine.model import BANKRUPT, HEALTHY, LIQUIDATABLE, MARGIN_CALL, Engine, LiquidationParams, MarketParams

WAD = 10**18
USD = WAD
ETH = 10**18
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
PARAMS = MarketParams(
    imr=WAD // 10, mmr=WAD // 20, fee_rate=WAD // 1_000, liq_fee=WAD // 50,
    max_oi=10**30, min_notional=10 * WAD, funding_rate_max=0,
)  # fmt: skip


def make_sim() -> Engine:
    sim = Engine(
        token_decimals=6,
        liq_params=LiquidationParams(buffer=WAD // 10, liquidator_share=WAD // 2, reward_floor=10**6, reward_cap=500 * 10**6),
        now=1_000,
    )
    sim.add_market(PARAMS, 2_000 * USD)
    sim.vault_deposit(10**15)
    sim.fund_insurance(10**12)
    return sim


def alice_view(sim: Engine, collateral: bool, **state_changes) -> liq.AccountView:
    """Alice's lens snapshot with the collateral flag, and the engine state changed as given."""
    snapshot = accounts_snapshot(sim, [(ALICE, 0)])[0]
    snapshot.collateral = collateral
    for name, value in state_changes.items():
        setattr(snapshot.state, name, value)
    return account_from_lens(snapshot)


@pytest.fixture
def sim() -> Engine:
    sim = make_sim()
    sim.deposit(ALICE, 0, 2_000 * 10**6)
    sim.modify_position(ALICE, 0, 0, 5 * ETH, 2**255)  # 10,000 notional, IM 1,000, MM 500
    return sim


# --------------------------------------------------------------------------
#                                   assess
# --------------------------------------------------------------------------


def test_assess__collateral_account__takes_the_engine_state_without_equity_check(sim):
    markets = markets_from_lens(markets_snapshot(sim))
    # The engine counts 2,000 of WETH the model cannot see: its equity differs.
    engine_equity = sim.account(ALICE, 0).equity_maint + 2_000 * USD
    account = alice_view(sim, True, equity_maint=engine_equity, equity_init=engine_equity - 300 * USD)
    assert account.collateral

    a = assess(account, markets, sim.scale, sim.now)

    assert a.source == "engine"
    assert a.state is account.engine_state
    assert a.state.equity_maint == engine_equity
    assert a.status == a.engine_status == account.engine_state.status
    assert not a.mismatch
    assert a.log_fields()["source"] == "engine"


def test_assess__collateral_account__engine_status_decides(sim):
    markets = markets_from_lens(markets_snapshot(sim))
    assert sim.status(ALICE, 0) == HEALTHY  # what the model says
    account = alice_view(sim, True, equity_maint=400 * USD, equity_init=400 * USD, status=LIQUIDATABLE)

    a = assess(account, markets, sim.scale, sim.now)

    assert a.status == LIQUIDATABLE and a.liquidatable and a.source == "engine"
    # evaluate plans it (quoted by the model from the engine's state), no mismatch skip
    r = evaluate([a], markets, sim.liq_params, sim.scale, 10**9, 400_000, 3_000 * USD)
    assert [(p.owner, p.sub) for p in r.plans] == [(a.account.owner, 0)]
    assert r.plans[0].quote.size > 0


def test_assess__without_the_flag__the_model_checks_the_engine_as_before(sim):
    markets = markets_from_lens(markets_snapshot(sim))
    account = alice_view(sim, False, status=LIQUIDATABLE)

    a = assess(account, markets, sim.scale, sim.now)

    assert a.source == "model" and a.status == HEALTHY and a.mismatch  # model vs engine status


def test_assess__collateral_account__failed_view_or_invalid_price__unknown(sim):
    markets = markets_from_lens(markets_snapshot(sim))
    failed = replace(alice_view(sim, True), ok=False, engine_state=None)
    a = assess(failed, markets, sim.scale, sim.now)
    assert a.status is None and a.source == "engine" and "collateral" in a.unknown_reason

    invalid = replace(alice_view(sim, True), engine_prices_ok=False)  # e.g. a collateral feed is stale
    a = assess(invalid, markets, sim.scale, sim.now)
    assert a.status is None


def test_account_from_lens__collateral_flag_from_objects_tuples_and_older_snapshots(sim):
    snapshot = accounts_snapshot(sim, [(ALICE, 0)])[0]
    assert account_from_lens(snapshot).collateral is False  # an older lens: no field
    assert account_from_lens(as_tuple(snapshot)).collateral is False
    snapshot.collateral = True
    assert account_from_lens(snapshot).collateral is True
    assert account_from_lens(as_tuple(snapshot)).collateral is True  # position 7


# --------------------------------------------------------------------------
#                        Collateral-liquidation helpers
# --------------------------------------------------------------------------


def _assessment(owner, balance, status, positions, collateral=True, ok=True):
    state = SimpleNamespace(status=status)
    account = liq.AccountView(
        owner=owner, sub=0, balance=balance, positions={0: object()} if positions else {}, ok=ok, collateral=collateral
    )
    return liq.Assessment(account, 0, state, status, status, False, None, "engine")


def test_collateral_candidates__debt_and_liquidatable_or_flat():
    found = [
        _assessment("0x01", -10, LIQUIDATABLE, True),
        _assessment("0x02", -50, BANKRUPT, True),
        _assessment("0x03", -5, HEALTHY, False),  # flat with debt: always
        _assessment("0x04", -5, MARGIN_CALL, True),  # not liquidatable
        _assessment("0x05", 10, LIQUIDATABLE, True),  # no debt
        _assessment("0x06", -5, LIQUIDATABLE, True, collateral=False),  # nothing to seize
        _assessment("0x07", -5, None, True),  # prices invalid
    ]
    assert liq.collateral_candidates(found) == [("0x02", 0), ("0x01", 0), ("0x03", 0)]


def test_pick_collateral__largest_maintenance_value_with_a_valid_price():
    def h(asset, balance, ok, vm):
        return SimpleNamespace(asset=asset, balance=balance, price=1, price_ok=ok, value_init=vm, value_maint=vm)

    assert liq.pick_collateral([]) is None
    weth, wbtc, susd = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
    holdings = [h(weth, 5, True, 100), h(wbtc, 1, False, 0), h(susd, 7, True, 300)]
    assert liq.pick_collateral(holdings).lower() == susd
    assert liq.pick_collateral([tuple(vars(x).values()) for x in holdings]).lower() == susd  # raw tuples
    assert liq.pick_collateral([h(wbtc, 1, False, 0)]) is None


def test_collateral_repay__the_debt_within_the_funds():
    assert liq.collateral_repay(100, 1_000) == 100
    assert liq.collateral_repay(100, 40) == 40
    assert liq.collateral_repay(0, 40) == 0
    assert liq.collateral_repay(100, -3) == 0


# --------------------------------------------------------------------------
#                          On the local chain (Ape)
# --------------------------------------------------------------------------


def _collateral_fixtures():
    path = Path(__file__).resolve().parents[1] / "unit" / "collateral" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_collateral_fixtures_for_bot", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


col = _collateral_fixtures().col  # the module-scoped `col` fixture

BTC = 0
USDC = 10**6


@pytest.fixture
def weth_debtor(col, trader, other_trader, set_price):
    """`trader`: 1 WETH, long 0.25 BTC (settlement debt: the fee), hedged by
    `other_trader` (no funding). BTC 52,000 and WETH 2,500 leave it
    LIQUIDATABLE with equity ~110: a liquidation closes the whole position."""
    col.give_usdc(other_trader, 100_000 * USDC)
    col.engine.modify_position(other_trader, 0, BTC, -WAD // 4, 0, sender=other_trader)
    col.give(trader, col.weth, WAD)
    col.engine.modify_position(trader, 0, BTC, WAD // 4, 2**255, sender=trader)
    set_price("BTC", 52_000)
    set_price("ETH", 3_000)
    col.set_price(col.weth, 2_500)
    state = col.engine.account(trader, 0)
    assert state.status == LIQUIDATABLE and 0 < state.equity_maint < 260 * WAD
    assert col.engine.balance_of(trader, 0, col.usdc) < 0
    return trader


def _bot(col, liquidator, messages, **settings):
    from margin_engine.runner import BotSettings, LiquidatorBot

    base = {"gas_per_liquidation": 300_000, "funding_max_age": None, "margin_calls": False}
    base.update(settings)
    return LiquidatorBot(col.engine, col.lens, liquidator, BotSettings(**base), log=messages.append)


def test_bot__weth_account__position_then_collateral_liquidated(col, weth_debtor, liquidator):
    col.give_usdc(liquidator, 10_000 * USDC)
    messages: list[str] = []
    bot = _bot(col, liquidator, messages)

    report = bot.run_round()

    [found] = [a for a in report.snapshot.assessments if a.key == (str(weth_debtor), 0)]
    assert found.source == "engine" and found.account.collateral and found.status == LIQUIDATABLE
    assert [(p.owner, p.sub) for p, _ in report.liquidated] == [(str(weth_debtor), 0)]
    assert col.engine.account(weth_debtor, 0).positions == 0
    [(owner, sub, asset, seized, repaid)] = report.collateral_liquidated
    assert (owner, sub, asset) == (str(weth_debtor), 0, col.weth.token.address)
    assert seized > 0 and repaid > 0
    # the whole debt repaid (flat: no deficit cap); the WETH seized is in the bot's sub-account 0
    assert col.engine.balance_of(weth_debtor, 0, col.usdc) == 0
    assert col.engine.balance_of(weth_debtor, 0, col.weth.token) == WAD - seized
    assert col.engine.balance_of(liquidator, 0, col.weth.token) == seized
    assert any("liquidated collateral" in m for m in messages)


def test_bot__collateral_duty_off__only_the_position(col, weth_debtor, liquidator):
    col.give_usdc(liquidator, 10_000 * USDC)
    report = _bot(col, liquidator, [], collateral_liquidations=False).run_round()

    assert [(p.owner, p.sub) for p, _ in report.liquidated] == [(str(weth_debtor), 0)]
    assert not report.collateral_liquidated
    assert col.engine.balance_of(weth_debtor, 0, col.usdc) < 0
    assert col.engine.balance_of(weth_debtor, 0, col.weth.token) == WAD


def test_bot__collateral_duty__liquidator_with_positions__skipped_with_a_log_line(col, weth_debtor, liquidator):
    col.give_usdc(liquidator, 10_000 * USDC)
    col.engine.modify_position(liquidator, 0, BTC, WAD // 100, 2**255, sender=liquidator)
    messages: list[str] = []

    report = _bot(col, liquidator, messages).run_round()

    assert report.liquidated and not report.collateral_liquidated
    assert any("skip collateral liquidations" in m and "positions 1" in m for m in messages)
    assert col.engine.balance_of(weth_debtor, 0, col.weth.token) == WAD


def test_bot__flat_debtor__tracked_and_liquidated_in_a_later_round(col, weth_debtor, liquidator):
    col.give_usdc(liquidator, 10_000 * USDC)
    col.engine.modify_position(liquidator, 0, BTC, WAD // 100, 2**255, sender=liquidator)
    messages: list[str] = []
    bot = _bot(col, liquidator, messages)

    first = bot.run_round()  # the position only: the liquidator's sub-account 0 trades
    assert first.liquidated and not first.collateral_liquidated
    assert col.engine.account(weth_debtor, 0).positions == 0  # flat: off the engine's list
    col.engine.close_position(liquidator, 0, BTC, 0, sender=liquidator)

    second = bot.run_round()

    assert (str(weth_debtor), 0) in {a.key for a in second.snapshot.assessments}
    [(owner, _sub, asset, seized, _repaid)] = second.collateral_liquidated
    assert (owner, asset) == (str(weth_debtor), col.weth.token.address)
    assert col.engine.balance_of(weth_debtor, 0, col.usdc) == 0
    assert col.engine.balance_of(liquidator, 0, col.weth.token) == seized

    bot.run_round()  # read once more, repaid: no longer tracked
    assert (str(weth_debtor), 0) not in bot._debtors
