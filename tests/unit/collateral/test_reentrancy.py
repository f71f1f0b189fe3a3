"""The re-entrancy matrix (docs/collateral.md 6 and 7).

A QuirkToken whose transfer hook is a `ReentrantHook` is listed as
collateral. During the engine's `transferFrom` of a deposit and its
`transfer` of a withdrawal (both call the hook after the balances moved),
the hook re-enters every external state-changing function of every
contract (derived from the ABIs, view/pure skipped) with plausible
arguments: the hook has its own engine account (USDC and the hooked token
deposited, allowances to the engine and the vault, a long position), so
that a re-entry fails because of the lock, not for want of funds. Each
re-entry must fail; the outer operation completes and every balance and
ledger is exactly what it is without the re-entry.

- The engine is mid-call: every re-entry into it reverts with EMPTY data
  (Vyper's lock), `liquidate_collateral` (not locked itself) included: it
  reverts at the engine's `balance_of` view read by the locked manager.
- The manager, the vault, the configurator and the risk model are NOT
  mid-call (the engine called the token, not them): a re-entry into them
  fails at their access control, or at the engine's lock when they call
  the engine (the vault's `deposit` / `withdraw` -> `vault_transfer`).
  Exceptions (not locked, harmless, documented): the vault share's
  `approve` succeeds (an allowance of the hook's own shares), and
  `CollateralManager.update_rate(share)` succeeds (it stores a share rate;
  no account or engine state) -- see `test_unlocked_contracts__...`.
- Views: every engine view reading storage reverts (locked; constants and
  immutables answer); the manager's views answer,
  and `CollateralManager.value` (deliberately unlocked) returns the state
  of the ledger at that moment: before the credit during a deposit, after
  the debit during a withdrawal.

Every re-entry is tried during a deposit; during a withdrawal too for the
engine and the manager (the contracts a withdrawal runs through). For the
other contracts the two moments are the same state -- the engine locked,
they are not mid-call -- so the default run tries them during a deposit
only; any other hypothesis profile (`HYPOTHESIS_PROFILE=fuzz`, the long run)
tries every function at both moments.

One deployment per module; Ape's chain isolation rolls every test back.
"""

from __future__ import annotations

import os

import ape
import pytest
from eth_abi import decode, encode
from eth_utils import keccak

WAD = 10**18
MAX_UINT = 2**256 - 1
USDC = 10**6
UNIT = 10**18  # the hooked token has 18 decimals
ETH = 1

# Re-entries tried during a withdrawal too (every contract in the long run).
WITHDRAWAL_LEG = {"MarginEngine", "CollateralManager"}
LONG_RUN = os.environ.get("HYPOTHESIS_PROFILE", "default") != "default"

# Constants and immutables are read without the lock (no storage).
ENGINE_UNLOCKED_VIEWS = {"COLLATERAL", "MAX_MARKETS", "MAX_POSITIONS", "RISK_MODEL", "SCALE", "SETTLEMENT_ASSET"}


@pytest.fixture(scope="module")
def rx(project, system, admin, trader, lp):
    engine, usdc, vault = system.engine, system.settlement, system.vault
    hook = project.ReentrantHook.deploy(sender=admin)
    token = project.QuirkToken.deploy("Hooked", "HKD", 18, sender=admin)
    feed = project.MockAggregator.deploy(8, 2_000 * 10**8, sender=admin)
    params = {"w_init": 8 * WAD // 10, "w_maint": 85 * WAD // 100, "discount": 5 * WAD // 100, "cap": 10**36, "enabled": True}
    system.configurator.list_collateral(token, feed, 3_600, WAD // 10**6, 10**12 * WAD, params, False, 0, sender=admin)
    # An ERC-4626 share listed too (plausible argument of `update_rate`).
    dollar = project.MockERC20.deploy("Dollar", "USDX", 6, sender=admin)
    share = project.MockERC4626.deploy(dollar, "Savings Dollar", "sUSD", sender=admin)
    share_feed = project.MockAggregator.deploy(8, 10**8, sender=admin)
    system.configurator.list_collateral(
        share, share_feed, 3_600, WAD // 10**6, 10**12 * WAD, params, True, WAD // 31_536_000 // 10, sender=admin
    )
    token.set_hook(hook, sender=admin)

    def as_hook(target, method, *args):
        hook.execute(target, bytes(method.encode_input(*args)), sender=admin)

    # The hook's own account: USDC and the hooked token in the engine, a long.
    usdc.mint(hook, 100_000 * USDC, sender=admin)
    token.mint(hook, 100 * UNIT, sender=admin)
    as_hook(usdc, usdc.approve, engine, MAX_UINT)
    as_hook(usdc, usdc.approve, vault, MAX_UINT)
    as_hook(token, token.approve, engine, MAX_UINT)
    as_hook(engine, engine.deposit, 0, usdc, 10_000 * USDC)
    as_hook(engine, engine.deposit, 0, token, 10 * UNIT)
    as_hook(engine, engine.modify_position, hook, 0, ETH, WAD, 2**255)
    # The trader: tokens to deposit, some already deposited to withdraw.
    token.mint(trader, 100 * UNIT, sender=trader)
    token.approve(engine, MAX_UINT, sender=trader)
    engine.deposit(0, token, 10 * UNIT, sender=trader)
    return {
        "system": system, "engine": engine, "usdc": usdc, "vault": vault, "manager": system.collateral,
        "configurator": system.configurator, "risk": system.risk, "hook": hook, "token": token,
        "share": share, "feed": feed, "trader": trader, "admin": admin,
    }  # fmt: skip


# --------------------------------------------------------------------------
#                              Calldata from ABIs
# --------------------------------------------------------------------------

CONTRACTS = ["MarginEngine", "CollateralManager", "LiquidityVault", "EngineConfigurator", "RiskModel"]
KEYS = {"MarginEngine": "engine", "CollateralManager": "manager", "LiquidityVault": "vault",
        "EngineConfigurator": "configurator", "RiskModel": "risk"}  # fmt: skip


def _abi(project, name: str):
    return getattr(project, name).contract_type.abi


def _functions(project, name: str, views: bool):
    wanted = ("view", "pure") if views else ("nonpayable", "payable")
    return [f for f in _abi(project, name) if f.type == "function" and f.stateMutability in wanted]


def _value(inp, rx):
    """A plausible argument for an input, by name and type."""
    t, n = inp.type, (inp.name or "").lower()
    hook = rx["hook"].address
    if t == "tuple":
        return tuple(_value(c, rx) for c in inp.components)
    if t.endswith("[]"):
        return [WAD]
    if t == "address":
        if n in ("asset", "token"):
            return rx["token"].address
        if n == "feed":
            return rx["feed"].address
        if n in ("vault",):
            return rx["vault"].address
        if n == "engine":
            return rx["engine"].address
        if n == "configurator":
            return rx["configurator"].address
        if n in ("operator", "spender"):
            return rx["trader"].address
        if n == "liquidator":
            return hook
        return hook  # owner, receiver, to, account
    if t == "bool":
        return True
    if t.startswith("int"):
        return WAD // 10 if n == "size_delta" else 1
    if t.startswith("uint"):
        if n in ("market",):
            return ETH
        if n in ("sub", "from_sub"):
            return 0
        if n == "to_sub":
            return 1
        if n in ("limit_price",):
            return 2**255
        if n in ("max_size",):
            return WAD
        if n in ("amount", "assets", "shares", "max_repay"):
            return USDC
        if n == "deadline":
            return 2**64
        if t == "uint8":
            return 27
        return 1
    if t.startswith("bytes"):
        return b"\x00" * 32
    raise AssertionError(f"no plausible value for {t} {n}")


def _calldata(f, rx) -> bytes:
    types = [i.canonical_type for i in f.inputs]
    args = [_value(i, rx) for i in f.inputs]
    return keccak(text=f.selector)[:4] + encode(types, args)


def _matrix(project_names):
    from ape import project

    out = []
    for name in project_names:
        for f in _functions(project, name, views=False):
            out.append(pytest.param(name, f.selector, id=f"{name}.{f.name}"))
    return out


# Not mid-call, permissionless for the hook, no engine state: succeed.
# (`update_rate` of the hooked plain token fails: "collateral: not a vault";
# the share's is in test_unlocked_contracts__...; renouncing a role the hook
# does not hold is a no-op.)
UNLOCKED_OK = {("LiquidityVault", "approve(address,uint256)"), ("EngineConfigurator", "renounceRole(bytes32,address)")}


def _snapshot(rx) -> dict:
    e, t, u, m, h, tr = rx["engine"], rx["token"], rx["usdc"], rx["manager"], rx["hook"], rx["trader"]
    return {
        "ledger": [e.balance_of(a, 0, x) for a in (tr, h) for x in (t, u)],
        "meta": [e.account_meta(a, 0) for a in (tr, h)],
        "position": e.position(h, 0, ETH).size,
        "total": m.total_deposits(m.asset_id(t)),
        "tokens": [t.balanceOf(a) for a in (tr, e, h)],
        "usdc": [u.balanceOf(a) for a in (e, h)],
        "pool": (e.vault_assets(), e.insurance_fund(), e.paused()),
        "vault": (rx["vault"].totalSupply(), rx["vault"].balanceOf(h)),
    }


def _outer(rx, kind: str, amount: int = UNIT):
    e, t, tr = rx["engine"], rx["token"], rx["trader"]
    if kind == "deposit":
        return e.deposit(0, t, amount, sender=tr)
    return e.withdraw(0, t, amount, sender=tr)


def _expected(before: dict, rx, kind: str, amount: int = UNIT) -> dict:
    exp = {k: (list(v) if isinstance(v, list) else v) for k, v in before.items()}
    sign = 1 if kind == "deposit" else -1
    exp["ledger"][0] += sign * amount  # trader, sub 0, token
    exp["total"] += sign * amount
    exp["tokens"][0] -= sign * amount
    exp["tokens"][1] += sign * amount
    return exp


@pytest.mark.parametrize("contract,signature", _matrix(CONTRACTS))
def test_reentry__every_state_changing_function_fails(rx, project, contract, signature):
    """During a deposit's transferFrom, then a withdrawal's transfer (see
    WITHDRAWAL_LEG)."""
    if "baseline" not in rx:  # the module state every test starts from (isolation)
        rx["baseline"] = _snapshot(rx)
    state = rx["baseline"]
    legs = ("deposit", "withdraw") if LONG_RUN or contract in WITHDRAWAL_LEG else ("deposit",)
    for kind in legs:
        state = _reenter(rx, project, contract, signature, kind, state)


def _reenter(rx, project, contract, signature, kind, before):
    f = next(f for f in _functions(project, contract, views=False) if f.selector == signature)
    target = rx[KEYS[contract]]
    hook = rx["hook"]
    hook.set_call(target, _calldata(f, rx), sender=rx["admin"])
    hook.arm(sender=rx["admin"])
    _outer(rx, kind)
    data = bytes(hook.last_revert_data())
    if (contract, signature) in UNLOCKED_OK:
        assert hook.last_success()
    else:
        assert not hook.last_success(), f"{contract}.{signature} re-entered successfully"
        if contract == "MarginEngine":
            assert data == b"", data  # the engine's lock (liquidate_collateral: at its views)
        if contract == "LiquidityVault" and f.name in ("deposit", "mint", "withdraw", "redeem"):
            assert data == b"", data  # vault_transfer: the engine's lock
    after = _snapshot(rx)
    assert after == _expected(before, rx, kind)
    return after


def test_reentry__liquidate_collateral_fails_at_the_engine_view(rx, project):
    """`liquidate_collateral` is not locked itself: a re-entry reaches the
    manager's `liquidate`, which reverts reading the locked engine."""
    e, hook = rx["engine"], rx["hook"]
    hook.set_call(e, bytes(e.liquidate_collateral.encode_input(rx["trader"], 0, rx["token"], USDC)), sender=rx["admin"])
    hook.arm(sender=rx["admin"])
    _outer(rx, "deposit")
    assert not hook.last_success() and bytes(hook.last_revert_data()) == b""
    # Not the lock-free reason: outside a transfer the same call gets a reason.
    with ape.reverts("collateral: no debt"):
        e.liquidate_collateral(rx["trader"], 0, rx["token"], USDC, sender=rx["admin"])


def test_unlocked_contracts__permissionless_calls_succeed_and_touch_no_ledger(rx):
    """The manager and the vault are not mid-call during the engine's token
    transfer (locks are per contract): `update_rate(share)` and the vault
    share's `approve` go through. Neither touches an account, a balance or
    the engine's in-flight state (checked in the matrix)."""
    hook, m, v = rx["hook"], rx["manager"], rx["vault"]
    hook.set_call(m, bytes(m.update_rate.encode_input(rx["share"])), sender=rx["admin"])
    hook.arm(sender=rx["admin"])
    tx = _outer(rx, "deposit")
    assert hook.last_success()
    assert any(ev.event_name == "RateUpdated" for ev in tx.events)
    hook.set_call(v, bytes(v.approve.encode_input(rx["trader"], 5)), sender=rx["admin"])
    hook.arm(sender=rx["admin"])
    _outer(rx, "withdraw")
    assert hook.last_success() and v.allowance(hook, rx["trader"]) == 5


# --------------------------------------------------------------------------
#                                    Views
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["deposit", "withdraw"])
def test_reentry__views(rx, project, kind):
    """Every engine view that reads storage reverts (locked, empty data;
    constants and immutables answer); every manager view answers; `value` returns the ledger's state at that moment."""
    hook, admin = rx["hook"], rx["admin"]
    results = {}
    for contract in ("MarginEngine", "CollateralManager"):
        for f in _functions(project, contract, views=True):
            args = [_value(i, rx) for i in f.inputs]
            if f.name in ("account", "status", "position", "balance_of", "value", "account_meta", "holdings"):
                args[0] = rx["trader"].address
            if contract == "CollateralManager" and f.name in ("assets",):
                args = [0]
            if f.name == "total_deposits":
                args = [rx["manager"].asset_id(rx["token"])]
            data = keccak(text=f.selector)[:4] + encode([i.canonical_type for i in f.inputs], args)
            hook.set_call(rx[KEYS[contract]], data, sender=admin)
            hook.arm(sender=admin)
            _outer(rx, kind, 1)
            results[(contract, f.name)] = (hook.last_success(), bytes(hook.last_revert_data()))
    locked = sorted(n for (c, n), (ok, _) in results.items() if c == "MarginEngine" and not ok)
    engine_views = {f.name for f in _functions(project, "MarginEngine", views=True)}
    assert locked == sorted(engine_views - ENGINE_UNLOCKED_VIEWS)
    assert all(d == b"" for (c, _), (ok, d) in results.items() if c == "MarginEngine" and not ok)
    manager_failed = sorted(n for (c, n), (ok, _) in results.items() if c == "CollateralManager" and not ok)
    assert manager_failed == []


@pytest.mark.parametrize("kind", ["deposit", "withdraw"])
def test_reentry__value_sees_the_ledger_of_the_moment(rx, kind):
    """During a deposit's transferFrom the credit has not happened yet (the
    pull comes first): `value` is the pre-deposit value. During a
    withdrawal's transfer the debit has happened (checks-effects-
    interactions): `value` is the post-withdrawal value."""
    m, hook, tr = rx["manager"], rx["hook"], rx["trader"]
    hook.set_call(m, bytes(m.value.encode_input(tr, 0, True)), sender=rx["admin"])
    hook.arm(sender=rx["admin"])
    before = tuple(m.value(tr, 0, True))
    _outer(rx, kind, 3 * UNIT)
    after = tuple(m.value(tr, 0, True))
    assert before != after
    assert hook.last_success()
    seen = decode(["uint256", "uint256", "bool"], bytes(hook.last_return_data()))
    assert tuple(seen) == (before if kind == "deposit" else after)
