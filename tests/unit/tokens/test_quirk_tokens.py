"""Unit tests of the quirky token mocks (contracts/test/).

- `QuirkToken`: fee on transfer, return false, fail all, revert on zero,
  blocklist, max-means-balance, transfer hook (after the balances are
  updated; its revert bubbles up);
- `NoReturnToken`: USDT-like, `transfer` / `transferFrom` / `approve`
  return no data;
- `MockERC4626`: the rate rises on a donation, the rate override;
- `ReentrantHook`: records the hook's arguments, performs one armed call,
  swallows its failure and records the revert data.

The mocks are deployed per module; Ape's chain isolation rolls every test
back.
"""

from __future__ import annotations

import ape
import pytest
from eth_abi import decode

MAX_UINT = 2**256 - 1
UNIT = 10**6  # QuirkToken `qrk` has 6 decimals
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


def revert_reason(data: bytes) -> str:
    """The reason of an `Error(string)` revert data."""
    data = bytes(data)
    assert data[:4] == ERROR_SELECTOR, data.hex()
    return decode(["string"], data[4:])[0]


def calldata(method, *args) -> bytes:
    return bytes(method.encode_input(*args))


@pytest.fixture(scope="module")
def alice(trader):
    return trader


@pytest.fixture(scope="module")
def bob(other_trader):
    return other_trader


@pytest.fixture(scope="module")
def spender(operator):
    return operator


@pytest.fixture(scope="module")
def qrk(project, admin, alice):
    """A 6-decimal QuirkToken; `alice` holds 1,000 tokens."""
    token = project.QuirkToken.deploy("Quirky Dollar", "QRK", 6, sender=admin)
    token.mint(alice, 1_000 * UNIT, sender=alice)
    return token


@pytest.fixture(scope="module")
def hook(project, admin):
    return project.ReentrantHook.deploy(sender=admin)


@pytest.fixture(scope="module")
def usdt(project, admin, alice):
    """A 6-decimal NoReturnToken; `alice` holds 1,000 tokens."""
    token = project.NoReturnToken.deploy("Tether USD", "USDT", 6, sender=admin)
    token.mint(alice, 1_000 * UNIT, sender=alice)
    return token


@pytest.fixture(scope="module")
def vault(project, admin, qrk):
    """A MockERC4626 over `qrk` (the module's own, not the system's vault)."""
    return project.MockERC4626.deploy(qrk, "Vault QRK", "vQRK", sender=admin)


@pytest.fixture(scope="module", autouse=True)
def _deployed(qrk, hook, usdt, vault, alice, bob, spender):
    """Deploys the module's mocks before Ape's per-test isolation starts."""


def balances(token, *accounts):
    return [token.balanceOf(a) for a in accounts]


# --------------------------------------------------------------------------
#                                QuirkToken
# --------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [2, 6, 8, 18])
def test_decimals_and_plain_transfer(project, admin, alice, bob, decimals):
    token = project.QuirkToken.deploy("Q", "Q", decimals, sender=admin)
    assert token.decimals() == decimals
    assert (token.name(), token.symbol()) == ("Q", "Q")
    token.mint(alice, 10**decimals, sender=alice)
    assert token.transfer.call(bob, 10**decimals, sender=alice) is True
    token.transfer(bob, 10**decimals, sender=alice)
    assert balances(token, alice, bob) == [0, 10**decimals]
    assert token.totalSupply() == 10**decimals


def test_fee_burned_on_transfer(qrk, alice, bob):
    qrk.set_fee(30, sender=alice)  # 0.3 %
    tx = qrk.transfer(bob, 333 * UNIT + 7, sender=alice)
    fee = (333 * UNIT + 7) * 30 // 10_000
    assert balances(qrk, alice, bob) == [1_000 * UNIT - 333 * UNIT - 7, 333 * UNIT + 7 - fee]
    assert qrk.totalSupply() == 1_000 * UNIT - fee
    logs = [(log.sender, log.receiver, log.value) for log in tx.decode_logs(qrk.Transfer)]
    assert logs == [(alice, bob, 333 * UNIT + 7 - fee), (alice, ape.utils.ZERO_ADDRESS, fee)]


def test_fee_burned_on_transfer_from(qrk, alice, bob, spender):
    qrk.set_fee(100, sender=alice)  # 1 %
    qrk.approve(spender, 500 * UNIT, sender=alice)
    qrk.transferFrom(alice, bob, 200 * UNIT, sender=spender)
    assert balances(qrk, alice, bob) == [800 * UNIT, 198 * UNIT]
    assert qrk.allowance(alice, spender) == 300 * UNIT  # the amount debited
    assert qrk.totalSupply() == 998 * UNIT


def test_fee_rounds_down_and_is_bounded(qrk, alice, bob):
    qrk.set_fee(30, sender=alice)
    qrk.transfer(bob, 333, sender=alice)  # 333 * 30 // 10000 = 0
    assert qrk.balanceOf(bob) == 333
    with ape.reverts("quirk: fee above 100%"):
        qrk.set_fee(10_001, sender=alice)


def test_failures_revert_by_default(qrk, alice, bob, spender):
    with ape.reverts("erc20: transfer amount exceeds balance"):
        qrk.transfer(bob, 1_000 * UNIT + 1, sender=alice)
    with ape.reverts("erc20: insufficient allowance"):
        qrk.transferFrom(alice, bob, 1, sender=spender)
    with ape.reverts("erc20: transfer to zero address"):
        qrk.transfer(ape.utils.ZERO_ADDRESS, 1, sender=alice)


def test_return_false_moves_nothing(qrk, alice, bob, spender):
    qrk.set_return_false(True, sender=alice)
    qrk.approve(spender, 10 * UNIT, sender=alice)
    cases = [
        (qrk.transfer, (bob, 1_000 * UNIT + 1), alice),  # balance
        (qrk.transferFrom, (alice, bob, 10 * UNIT + 1), spender),  # allowance
        (qrk.transferFrom, (bob, alice, 1), spender),  # balance and allowance
        (qrk.transfer, (ape.utils.ZERO_ADDRESS, 1), alice),  # zero address
    ]
    for method, args, sender in cases:
        assert method.call(*args, sender=sender) is False
        tx = method(*args, sender=sender)  # does not revert
        assert not tx.failed
        assert list(tx.decode_logs(qrk.Transfer)) == []
    assert balances(qrk, alice, bob) == [1_000 * UNIT, 0]
    assert qrk.allowance(alice, spender) == 10 * UNIT
    # a transfer that can succeed still does
    assert qrk.transferFrom.call(alice, bob, 10 * UNIT, sender=spender) is True
    qrk.transferFrom(alice, bob, 10 * UNIT, sender=spender)
    assert balances(qrk, alice, bob) == [990 * UNIT, 10 * UNIT]


def test_fail_all_returns_false_and_moves_nothing(qrk, alice, bob, spender):
    qrk.approve(spender, MAX_UINT, sender=alice)
    qrk.set_fail_all(True, sender=alice)
    for method, args, sender in [
        (qrk.transfer, (bob, UNIT), alice),
        (qrk.transferFrom, (alice, bob, UNIT), spender),
    ]:
        assert method.call(*args, sender=sender) is False
        method(*args, sender=sender)
    assert balances(qrk, alice, bob) == [1_000 * UNIT, 0]
    qrk.set_fail_all(False, sender=alice)
    qrk.transfer(bob, UNIT, sender=alice)
    assert qrk.balanceOf(bob) == UNIT


def test_revert_on_zero(qrk, alice, bob, spender):
    qrk.transfer(bob, 0, sender=alice)  # allowed by default
    qrk.set_revert_on_zero(True, sender=alice)
    qrk.set_return_false(True, sender=alice)  # reverts even in return-false mode
    with ape.reverts("quirk: zero amount"):
        qrk.transfer(bob, 0, sender=alice)
    with ape.reverts("quirk: zero amount"):
        qrk.transferFrom(alice, bob, 0, sender=spender)
    qrk.transfer(bob, 1, sender=alice)
    assert qrk.balanceOf(bob) == 1


def test_blocklist(qrk, alice, bob, spender):
    qrk.transfer(bob, 10 * UNIT, sender=alice)
    qrk.approve(spender, MAX_UINT, sender=alice)
    qrk.set_blocked(bob, True, sender=alice)
    assert qrk.blocked(bob)
    with ape.reverts("quirk: blocked"):
        qrk.transfer(bob, UNIT, sender=alice)  # to
    with ape.reverts("quirk: blocked"):
        qrk.transfer(alice, UNIT, sender=bob)  # from
    with ape.reverts("quirk: blocked"):
        qrk.transferFrom(alice, bob, UNIT, sender=spender)
    qrk.set_return_false(True, sender=alice)
    assert qrk.transfer.call(bob, UNIT, sender=alice) is False
    qrk.transfer(bob, UNIT, sender=alice)
    qrk.transfer(alice, UNIT, sender=bob)
    assert balances(qrk, alice, bob) == [990 * UNIT, 10 * UNIT]
    qrk.transfer(spender, UNIT, sender=alice)  # others are not affected
    qrk.set_blocked(bob, False, sender=alice)
    qrk.transfer(alice, UNIT, sender=bob)
    assert balances(qrk, alice, bob) == [990 * UNIT, 9 * UNIT]


def test_max_means_balance(qrk, alice, bob, spender):
    with ape.reverts("erc20: transfer amount exceeds balance"):
        qrk.transfer(bob, MAX_UINT, sender=alice)  # off by default
    qrk.set_max_means_balance(True, sender=alice)
    qrk.transfer(bob, MAX_UINT, sender=alice)
    assert balances(qrk, alice, bob) == [0, 1_000 * UNIT]
    # transferFrom: the whole balance of `from`, allowance spent by the amount moved
    qrk.approve(spender, 2_000 * UNIT, sender=bob)
    qrk.set_fee(50, sender=alice)
    qrk.transferFrom(bob, alice, MAX_UINT, sender=spender)
    assert balances(qrk, alice, bob) == [995 * UNIT, 0]
    assert qrk.allowance(bob, spender) == 1_000 * UNIT
    # MAX_UINT - 1 is an ordinary amount
    with ape.reverts("erc20: transfer amount exceeds balance"):
        qrk.transfer(bob, MAX_UINT - 1, sender=alice)


def test_max_means_balance_of_empty_account_is_zero(qrk, bob, spender):
    qrk.set_max_means_balance(True, sender=bob)
    qrk.transfer(spender, MAX_UINT, sender=bob)  # moves 0
    qrk.set_revert_on_zero(True, sender=bob)
    with ape.reverts("quirk: zero amount"):
        qrk.transfer(spender, MAX_UINT, sender=bob)


# --------------------------------------------------------------------------
#                            Hook / ReentrantHook
# --------------------------------------------------------------------------


def test_hook_called_with_arguments(qrk, hook, alice, bob, spender):
    qrk.set_hook(hook, sender=alice)
    qrk.transfer(bob, 5 * UNIT, sender=alice)
    assert hook.calls() == 1
    assert (hook.last_token(), hook.last_caller(), hook.last_sender(), hook.last_receiver()) == (
        qrk.address,
        alice.address,
        alice.address,
        bob.address,
    )
    assert hook.last_amount() == 5 * UNIT
    qrk.approve(spender, MAX_UINT, sender=alice)
    qrk.set_fee(100, sender=alice)
    qrk.transferFrom(alice, bob, 10 * UNIT, sender=spender)
    assert hook.calls() == 2
    assert (hook.last_caller(), hook.last_sender(), hook.last_receiver()) == (
        spender.address,
        alice.address,
        bob.address,
    )
    assert hook.last_amount() == 10 * UNIT  # the amount debited, before the fee
    assert hook.attempts() == 0  # not armed: nothing called


def test_hook_not_called_on_failure_or_mint(qrk, hook, alice, bob):
    qrk.set_hook(hook, sender=alice)
    qrk.mint(bob, UNIT, sender=alice)
    qrk.set_return_false(True, sender=alice)
    qrk.transfer(bob, 2_000 * UNIT, sender=alice)
    assert hook.calls() == 0


def test_hook_runs_after_balances_are_updated(qrk, hook, alice, bob):
    qrk.set_hook(hook, sender=alice)
    hook.set_call(qrk, calldata(qrk.balanceOf, bob), sender=alice)
    hook.arm(sender=alice)
    assert hook.armed()
    qrk.transfer(bob, 7 * UNIT, sender=alice)
    assert hook.attempts() == 1
    assert hook.last_success()
    assert decode(["uint256"], bytes(hook.last_return_data()))[0] == 7 * UNIT
    assert hook.last_revert_data() == b""
    assert not hook.armed()  # one shot
    qrk.transfer(bob, UNIT, sender=alice)
    assert (hook.calls(), hook.attempts()) == (2, 1)


def test_hook_reentry_failure_is_recorded_and_swallowed(qrk, hook, alice, bob):
    qrk.set_hook(hook, sender=alice)
    # the hook holds nothing: its re-entrant transfer reverts
    hook.set_call(qrk, calldata(qrk.transfer, bob, UNIT), sender=alice)
    hook.arm(sender=alice)
    qrk.transfer(bob, 3 * UNIT, sender=alice)  # the outer transfer completes
    assert balances(qrk, alice, bob) == [997 * UNIT, 3 * UNIT]
    assert (hook.attempts(), hook.last_success()) == (1, False)
    assert revert_reason(hook.last_revert_data()) == "erc20: transfer amount exceeds balance"


def test_hook_reentry_can_succeed(qrk, hook, alice, bob):
    """The token itself is re-entrant: a transfer to the hook re-enters
    `transfer` and forwards the tokens (the nested hook call only records)."""
    qrk.set_hook(hook, sender=alice)
    hook.set_call(qrk, calldata(qrk.transfer, bob, 4 * UNIT), sender=alice)
    hook.arm(sender=alice)
    qrk.transfer(hook, 4 * UNIT, sender=alice)
    assert hook.last_success()
    assert decode(["bool"], bytes(hook.last_return_data()))[0] is True
    assert balances(qrk, alice, hook, bob) == [996 * UNIT, 0, 4 * UNIT]
    assert (hook.calls(), hook.attempts()) == (2, 1)
    assert (hook.last_caller(), hook.last_sender(), hook.last_receiver()) == (
        hook.address,
        hook.address,
        bob.address,
    )


def test_hook_revert_bubbles_up(project, qrk, usdt, alice, bob):
    # a contract without `on_token_transfer` (and no fallback) reverts the call
    qrk.set_hook(usdt, sender=alice)
    with ape.reverts():
        qrk.transfer(bob, UNIT, sender=alice)
    assert balances(qrk, alice, bob) == [1_000 * UNIT, 0]
    qrk.set_hook(ape.utils.ZERO_ADDRESS, sender=alice)
    qrk.transfer(bob, UNIT, sender=alice)


def test_hook_execute_acts_as_account(qrk, hook, alice, bob):
    qrk.mint(hook, 5 * UNIT, sender=alice)
    returned = hook.execute.call(qrk, calldata(qrk.transfer, bob, 2 * UNIT), sender=alice)
    assert decode(["bool"], bytes(returned))[0] is True
    hook.execute(qrk, calldata(qrk.approve, alice, UNIT), sender=alice)
    assert qrk.allowance(hook, alice) == UNIT
    with ape.reverts("erc20: transfer amount exceeds balance"):
        hook.execute(qrk, calldata(qrk.transfer, bob, 6 * UNIT), sender=alice)


# --------------------------------------------------------------------------
#                               NoReturnToken
# --------------------------------------------------------------------------


def test_no_return_token_returns_no_data(usdt, hook, alice, bob):
    assert usdt.decimals() == 6
    for method in (usdt.transfer, usdt.transferFrom, usdt.approve):
        assert [abi.outputs for abi in method.abis] == [[]]
    usdt.mint(hook, 10 * UNIT, sender=alice)
    assert bytes(hook.execute.call(usdt, calldata(usdt.transfer, bob, UNIT), sender=alice)) == b""
    assert bytes(hook.execute.call(usdt, calldata(usdt.approve, bob, UNIT), sender=alice)) == b""
    hook.execute(usdt, calldata(usdt.transfer, bob, UNIT), sender=alice)
    hook.execute(usdt, calldata(usdt.approve, alice, 5 * UNIT), sender=alice)
    assert balances(usdt, hook, bob) == [9 * UNIT, UNIT]
    assert usdt.allowance(hook, alice) == 5 * UNIT
    usdt.approve(hook, UNIT, sender=alice)
    assert bytes(hook.execute.call(usdt, calldata(usdt.transferFrom, alice, bob, UNIT), sender=alice)) == b""
    hook.execute(usdt, calldata(usdt.transferFrom, alice, bob, UNIT), sender=alice)
    assert balances(usdt, alice, bob) == [999 * UNIT, 2 * UNIT]
    assert usdt.allowance(alice, hook) == 0
    usdt.transferFrom(hook, bob, 5 * UNIT, sender=alice)
    assert balances(usdt, hook, bob) == [4 * UNIT, 7 * UNIT]
    assert usdt.allowance(hook, alice) == 0


def test_no_return_token_reverts_on_failure(usdt, alice, bob, spender):
    with ape.reverts("erc20: transfer amount exceeds balance"):
        usdt.transfer(bob, 1_000 * UNIT + 1, sender=alice)
    with ape.reverts("erc20: insufficient allowance"):
        usdt.transferFrom(alice, bob, 1, sender=spender)
    usdt.approve(spender, MAX_UINT, sender=alice)
    usdt.transferFrom(alice, bob, 1_000 * UNIT, sender=spender)
    assert usdt.allowance(alice, spender) == MAX_UINT
    assert balances(usdt, alice, bob) == [0, 1_000 * UNIT]


# --------------------------------------------------------------------------
#                                MockERC4626
# --------------------------------------------------------------------------


def test_vault_deposit_donation_and_redeem(vault, qrk, alice, bob):
    assert (vault.asset(), vault.decimals()) == (qrk.address, 6)
    qrk.approve(vault, MAX_UINT, sender=alice)
    assert vault.deposit.call(100 * UNIT, alice, sender=alice) == 100 * UNIT
    vault.deposit(100 * UNIT, alice, sender=alice)
    assert (vault.totalSupply(), vault.totalAssets(), vault.balanceOf(alice)) == (100 * UNIT,) * 3
    assert vault.convertToAssets(UNIT) == UNIT
    # a donation raises the rate
    qrk.transfer(vault, 25 * UNIT, sender=alice)
    assert vault.totalAssets() == 125 * UNIT
    expected = UNIT * (125 * UNIT + 1) // (100 * UNIT + 1)
    assert vault.convertToAssets(UNIT) == expected
    assert expected > UNIT * 124 // 100
    assert vault.convertToShares(expected) == expected * (100 * UNIT + 1) // (125 * UNIT + 1)
    # redeem at the real rate, rounded down
    vault.transfer(bob, 40 * UNIT, sender=alice)
    assets = 40 * UNIT * (125 * UNIT + 1) // (100 * UNIT + 1)
    assert vault.redeem.call(40 * UNIT, bob, bob, sender=bob) == assets
    vault.redeem(40 * UNIT, bob, bob, sender=bob)
    assert qrk.balanceOf(bob) == assets
    assert vault.totalSupply() == 60 * UNIT


def test_vault_rate_override(vault, qrk, alice):
    qrk.approve(vault, MAX_UINT, sender=alice)
    vault.deposit(100 * UNIT, alice, sender=alice)
    vault.set_rate_override(1_250_000, sender=alice)  # 1.25 underlying per share
    assert vault.rate_override() == 1_250_000
    assert vault.convertToAssets(2 * UNIT) == 2_500_000
    assert vault.convertToAssets(3) == 3  # 3.75 rounded down
    assert vault.convertToShares(2_500_000) == 2 * UNIT
    # the override is a price only: redeeming pays the real rate
    assert vault.previewRedeem(2 * UNIT) == 2 * UNIT
    vault.set_rate_override(0, sender=alice)
    assert vault.convertToAssets(2 * UNIT) == 2 * UNIT


def test_vault_deposit_credits_what_arrived(vault, qrk, alice):
    qrk.set_fee(100, sender=alice)  # 1 %
    qrk.approve(vault, MAX_UINT, sender=alice)
    vault.deposit(100 * UNIT, alice, sender=alice)
    assert vault.balanceOf(alice) == 99 * UNIT
    assert vault.totalAssets() == 99 * UNIT
    qrk.set_fee(0, sender=alice)
    with ape.reverts("vault: zero shares"):
        vault.deposit(0, alice, sender=alice)


def test_vault_withdraw_mint_and_allowance(vault, qrk, alice, bob, spender):
    qrk.approve(vault, MAX_UINT, sender=alice)
    vault.deposit(100 * UNIT, alice, sender=alice)
    qrk.transfer(vault, 50 * UNIT, sender=alice)  # rate ~1.5
    with ape.reverts("erc20: insufficient allowance"):
        vault.redeem(UNIT, bob, alice, sender=spender)
    vault.approve(spender, 10 * UNIT, sender=alice)
    shares = vault.previewWithdraw(3 * UNIT)
    assert shares == -(-3 * UNIT * (100 * UNIT + 1) // (150 * UNIT + 1))
    vault.withdraw(3 * UNIT, bob, alice, sender=spender)
    assert qrk.balanceOf(bob) == 3 * UNIT
    assert vault.allowance(alice, spender) == 10 * UNIT - shares
    assets = vault.previewMint(UNIT)
    before = qrk.balanceOf(alice)
    vault.mint(UNIT, bob, sender=alice)
    assert qrk.balanceOf(alice) == before - assets
    assert vault.balanceOf(bob) == UNIT


@pytest.mark.parametrize("decimals", [2, 18])
def test_vault_decimals_follow_underlying(project, admin, decimals):
    token = project.QuirkToken.deploy("Q", "Q", decimals, sender=admin)
    v = project.MockERC4626.deploy(token, "vQ", "vQ", sender=admin)
    assert v.decimals() == decimals
    v.set_rate_override(2 * 10**decimals, sender=admin)
    assert v.convertToAssets(3 * 10**decimals) == 6 * 10**decimals


def test_vault_over_no_return_token(project, admin, usdt, alice):
    """`default_return_value=True` on the underlying's transfers."""
    v = project.MockERC4626.deploy(usdt, "vUSDT", "vUSDT", sender=admin)
    usdt.approve(v, MAX_UINT, sender=alice)
    v.deposit(10 * UNIT, alice, sender=alice)
    v.redeem(4 * UNIT, alice, alice, sender=alice)
    assert usdt.balanceOf(alice) == 994 * UNIT
    assert v.balanceOf(alice) == 6 * UNIT


def test_vault_over_returning_false_token_reverts(vault, qrk, alice):
    qrk.approve(vault, MAX_UINT, sender=alice)
    qrk.set_fail_all(True, sender=alice)
    with ape.reverts("vault: transfer failed"):
        vault.deposit(10 * UNIT, alice, sender=alice)


def test_vault_is_not_reentrant(vault, qrk, hook, alice):
    """A hook re-entering the vault (even a view) during its deposit fails."""
    qrk.approve(vault, MAX_UINT, sender=alice)
    qrk.set_hook(hook, sender=alice)
    hook.set_call(vault, calldata(vault.convertToAssets, UNIT), sender=alice)
    hook.arm(sender=alice)
    vault.deposit(10 * UNIT, alice, sender=alice)
    assert (hook.attempts(), hook.last_success()) == (1, False)
    assert hook.last_revert_data() == b""  # Vyper 0.4.3's lock reverts without a reason
    assert vault.balanceOf(alice) == 10 * UNIT
