# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title No-return token: a USDT-like ERC-20 (tests only, never deploy)
@notice An ERC-20 whose `transfer`, `transferFrom` and `approve` return
        NOTHING (like USDT on Ethereum mainnet) and revert on failure, with
        configurable decimals and an unrestricted `mint`. Anyone can mint
        any amount: NEVER deploy it on a network with real value. Tests
        that callers use `default_return_value=True` (a caller that
        requires a returned bool reverts on this token).
@dev Self-contained (no snekmate). It cannot declare `implements: IERC20`
     (the functions have no return type). An allowance of
     `max_value(uint256)` is infinite.
"""

from ethereum.ercs import IERC20


# @dev Token metadata.
name: public(String[64])
symbol: public(String[32])
decimals: public(uint8)

# @dev Supply and ledger.
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(name_: String[64], symbol_: String[32], decimals_: uint8):
    """
    @dev Sets the token metadata. The supply starts at zero.
    @param name_ The token name, e.g. "Tether USD".
    @param symbol_ The token symbol, e.g. "USDT".
    @param decimals_ The number of decimals, e.g. 6.
    """
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_


@external
def transfer(to: address, amount: uint256):
    """
    @dev Moves `amount` tokens from the caller to `to`. Returns no data.
    @param to The receiver (not the zero address).
    @param amount The amount of tokens.
    """
    self._transfer(msg.sender, to, amount)


@external
def transferFrom(owner: address, to: address, amount: uint256):
    """
    @dev Moves `amount` tokens from `owner` to `to` using the caller's
         allowance. An infinite allowance is not decreased. Returns no data.
    @param owner The account debited.
    @param to The receiver (not the zero address).
    @param amount The amount of tokens.
    """
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "erc20: insufficient allowance"
        # unsafe_sub is safe: allowed >= amount was just checked.
        self.allowance[owner][msg.sender] = unsafe_sub(allowed, amount)
    self._transfer(owner, to, amount)


@external
def approve(spender: address, amount: uint256):
    """
    @dev Sets the caller's allowance for `spender` to `amount`. Returns no
         data.
    @param spender The approved spender (not the zero address).
    @param amount The allowance (`max_value(uint256)` = infinite).
    """
    assert spender != empty(address), "erc20: approve to zero address"
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `to`. Anyone may call it (mock).
    @param to The receiver (not the zero address).
    @param amount The amount of tokens created.
    """
    assert to != empty(address), "erc20: mint to zero address"
    self.totalSupply += amount
    # unsafe_add is safe: a balance never exceeds totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@internal
def _transfer(owner: address, to: address, amount: uint256):
    """
    @dev Moves `amount` tokens from `owner` to `to` and logs `Transfer`.
    @param owner The account debited.
    @param to The receiver (not the zero address).
    @param amount The amount of tokens.
    """
    assert to != empty(address), "erc20: transfer to zero address"
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "erc20: transfer amount exceeds balance"
    # unsafe_sub is safe: balance >= amount was just checked.
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    # unsafe_add is safe: the sum of all balances equals totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=owner, receiver=to, value=amount)
