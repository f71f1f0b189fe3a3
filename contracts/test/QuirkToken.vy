# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Quirk token: an ERC-20 with every token quirk (tests only, never deploy)
@notice An ERC-20 with configurable decimals, an unrestricted `mint` and
        `burn`, and the quirks of real tokens switched on by unrestricted
        setters. Anyone can mint and anyone can switch a quirk: NEVER deploy
        it on a network with real value. Used by the tests of the
        multi-collateral accounts (docs/collateral.md, section 7) and the
        re-entrancy matrix.
@dev Self-contained (no snekmate). The quirks, all off after deployment:
     - `set_fee(bps)`: fee on transfer. `transfer` and `transferFrom` debit
       the sender `amount`, credit the receiver
       `amount - amount * bps // 10000` and burn the fee.
     - `set_return_false(flag)`: a failing transfer (insufficient balance or
       allowance, a blocklisted party, the zero address as receiver)
       returns `False` and moves nothing instead of reverting.
     - `set_fail_all(flag)`: every `transfer` / `transferFrom` returns
       `False` and moves nothing (tests that callers assert the bool).
     - `set_revert_on_zero(flag)`: a zero-amount transfer reverts (also in
       return-false mode).
     - `set_blocked(account, flag)`: a transfer from or to a blocklisted
       account fails (reverts, or returns `False` in return-false mode).
     - `set_max_means_balance(flag)`: an amount of `max_value(uint256)`
       moves the whole balance of the account debited (like cUSDCv3).
     - `set_hook(hook)`: every successful transfer calls
       `ITransferHook(hook).on_token_transfer(caller, sender, receiver,
       amount)` AFTER the balances are updated (an ERC-777-style callback).
       The hook may re-enter anything, this token included; its revert
       bubbles up and reverts the transfer.
     `transfer` and `transferFrom` are `@reentrant` (they take no lock while
     the hook runs): the hook may re-enter the token itself or its callers,
     so that the callers' own locks are what the tests exercise.
     An allowance of `max_value(uint256)` is infinite. `approve` always
     succeeds and returns `True`.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

implements: IERC20
implements: IERC20Detailed


interface ITransferHook:
    def on_token_transfer(caller: address, sender: address, receiver: address, amount: uint256): nonpayable


# @dev Fees are in basis points of the amount transferred.
BPS: constant(uint256) = 10_000

# @dev Token metadata.
name: public(String[64])
symbol: public(String[32])
decimals: public(uint8)

# @dev Supply and ledger.
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

# @dev The quirks (all off after deployment).
fee_bps: public(uint256)
return_false: public(bool)
fail_all: public(bool)
revert_on_zero: public(bool)
blocked: public(HashMap[address, bool])
max_means_balance: public(bool)
hook: public(address)


@deploy
def __init__(name_: String[64], symbol_: String[32], decimals_: uint8):
    """
    @dev Sets the token metadata. The supply starts at zero, every quirk off.
    @param name_ The token name, e.g. "Quirky Dollar".
    @param symbol_ The token symbol, e.g. "QRK".
    @param decimals_ The number of decimals (tests use 2, 6, 8 and 18).
    """
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_


@external
@reentrant
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` tokens from the caller to `to`, with the quirks on.
    @param to The receiver.
    @param amount The amount debited (`max_value(uint256)` = the whole
           balance in max-means-balance mode).
    @return bool `True` on success; `False` (nothing moved) on a failure in
            return-false mode, or always in fail-all mode.
    """
    return self._move(msg.sender, msg.sender, to, amount, False)


@external
@reentrant
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` tokens from `owner` to `to` using the caller's
         allowance, with the quirks on. The allowance is decreased by the
         amount debited (after max-means-balance); an infinite allowance is
         not decreased.
    @param owner The account debited.
    @param to The receiver.
    @param amount The amount debited (`max_value(uint256)` = the whole
           balance of `owner` in max-means-balance mode).
    @return bool `True` on success; `False` (nothing moved) on a failure in
            return-false mode, or always in fail-all mode.
    """
    return self._move(msg.sender, owner, to, amount, True)


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @dev Sets the caller's allowance for `spender` to `amount`.
    @param spender The approved spender (not the zero address).
    @param amount The allowance (`max_value(uint256)` = infinite).
    @return bool Always `True`.
    """
    assert spender != empty(address), "erc20: approve to zero address"
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `to`. Anyone may call it (mock). No
         quirk applies (no fee, no blocklist, no hook).
    @param to The receiver (not the zero address).
    @param amount The amount of tokens created.
    """
    assert to != empty(address), "erc20: mint to zero address"
    self.totalSupply += amount
    # unsafe_add is safe: a balance never exceeds totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def burn(owner: address, amount: uint256):
    """
    @dev Destroys `amount` tokens of `owner`. Anyone may call it (mock):
         lets tests take tokens away from any account (a negative rebase).
    @param owner The account debited.
    @param amount The amount of tokens destroyed.
    """
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "erc20: burn amount exceeds balance"
    # unsafe_sub is safe: balance >= amount was just checked.
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    self.totalSupply -= amount
    log IERC20.Transfer(sender=owner, receiver=empty(address), value=amount)


@external
def set_fee(bps: uint256):
    """
    @dev Fee on transfer: burns `amount * bps // 10000` of every transfer.
    @param bps The fee in basis points (0 = off, at most 10000).
    """
    assert bps <= BPS, "quirk: fee above 100%"
    self.fee_bps = bps


@external
def set_return_false(flag: bool):
    """
    @dev Return-false mode: a failing transfer returns `False` (nothing
         moved) instead of reverting.
    @param flag `True` = on.
    """
    self.return_false = flag


@external
def set_fail_all(flag: bool):
    """
    @dev Fail-all mode: every `transfer` / `transferFrom` returns `False`
         and moves nothing.
    @param flag `True` = on.
    """
    self.fail_all = flag


@external
def set_revert_on_zero(flag: bool):
    """
    @dev Zero-amount transfers revert ("quirk: zero amount").
    @param flag `True` = on.
    """
    self.revert_on_zero = flag


@external
def set_blocked(account: address, flag: bool):
    """
    @dev Blocklists (or clears) `account`: transfers from or to it fail.
    @param account The account.
    @param flag `True` = blocked.
    """
    self.blocked[account] = flag


@external
def set_max_means_balance(flag: bool):
    """
    @dev Max-means-balance mode: an amount of `max_value(uint256)` moves
         the whole balance of the account debited.
    @param flag `True` = on.
    """
    self.max_means_balance = flag


@external
def set_hook(hook: address):
    """
    @dev Sets the transfer hook called after every successful transfer.
    @param hook The hook (`empty(address)` = no hook).
    """
    self.hook = hook


@internal
def _fail(reason: String[64]) -> bool:
    """
    @dev A failed transfer: reverts with `reason`, or returns `False` in
         return-false mode.
    @param reason The revert reason.
    @return bool Always `False` (when it returns).
    """
    if not self.return_false:
        raise reason
    return False


@internal
def _move(caller: address, owner: address, to: address, amount: uint256, use_allowance: bool) -> bool:
    """
    @dev Moves tokens from `owner` to `to` with every quirk applied, then
         calls the hook.
    @param caller The `msg.sender` of the transfer (passed to the hook).
    @param owner The account debited.
    @param to The receiver.
    @param amount The amount requested.
    @param use_allowance Whether the caller's allowance is spent
           (`transferFrom`).
    @return bool `True` on success, `False` when nothing moved.
    """
    if self.fail_all:
        return False

    debit: uint256 = amount
    if self.max_means_balance and amount == max_value(uint256):
        debit = self.balanceOf[owner]

    if debit == 0 and self.revert_on_zero:
        raise "quirk: zero amount"

    if self.blocked[owner] or self.blocked[to]:
        return self._fail("quirk: blocked")
    if to == empty(address):
        return self._fail("erc20: transfer to zero address")

    balance: uint256 = self.balanceOf[owner]
    if balance < debit:
        return self._fail("erc20: transfer amount exceeds balance")

    if use_allowance:
        allowed: uint256 = self.allowance[owner][caller]
        if allowed != max_value(uint256):
            if allowed < debit:
                return self._fail("erc20: insufficient allowance")
            # unsafe_sub is safe: allowed >= debit was just checked.
            self.allowance[owner][caller] = unsafe_sub(allowed, debit)

    fee: uint256 = debit * self.fee_bps // BPS
    # unsafe_sub is safe: fee <= debit (fee_bps <= BPS), balance >= debit.
    received: uint256 = unsafe_sub(debit, fee)
    # unsafe_sub is safe: balance >= debit was checked above.
    self.balanceOf[owner] = unsafe_sub(balance, debit)
    # unsafe_add is safe: the sum of all balances equals totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], received)
    log IERC20.Transfer(sender=owner, receiver=to, value=received)
    if fee != 0:
        # unsafe_sub is safe: the fee was part of a balance, so of totalSupply.
        self.totalSupply = unsafe_sub(self.totalSupply, fee)
        log IERC20.Transfer(sender=owner, receiver=empty(address), value=fee)

    hook: address = self.hook
    if hook != empty(address):
        extcall ITransferHook(hook).on_token_transfer(caller, owner, to, debit)
    return True
