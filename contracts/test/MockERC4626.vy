# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Mock ERC-4626 vault (tests only, never deploy)
@notice An ERC-4626 share token over an underlying ERC-20 (MockERC20,
        QuirkToken, ...), used as a yield-bearing collateral in the tests of
        the multi-collateral accounts. A donation (a plain underlying
        `transfer` to the vault) raises the exchange rate. Anyone can set
        the exchange rate reported by `convertToAssets` with
        `set_rate_override`: NEVER deploy it on a network with real value.
@dev Self-contained (no snekmate). The share decimals equal the
     underlying's. The real exchange rate has one virtual share and one
     virtual asset (no decimals offset):
         assets = shares * (totalAssets + 1) // (totalSupply + 1)
         shares = assets * (totalSupply + 1) // (totalAssets + 1)
     rounded down, or up where ERC-4626 requires it (`previewMint`,
     `previewWithdraw`), `totalAssets` being the vault's underlying balance.
     The rate override (0 = off) applies to `convertToAssets` and
     `convertToShares` ONLY (the price the engine reads); `deposit`, `mint`,
     `withdraw`, `redeem` and the `preview*` functions always use the real
     rate, so the vault stays solvent whatever the override.
     `deposit` credits the balance difference of the underlying (a
     fee-on-transfer underlying mints shares for what arrived); `mint` does
     not (it pulls `previewMint(shares)` and trusts it arrived). Transfers
     of the underlying use `default_return_value=True` and assert the bool.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from ethereum.ercs import IERC4626

implements: IERC20
implements: IERC20Detailed
implements: IERC4626


# @dev The underlying token.
asset: public(immutable(address))

# @dev Share token metadata (decimals = the underlying's).
name: public(String[64])
symbol: public(String[32])
decimals: public(uint8)

# @dev Share supply and ledger.
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

# @dev Test-only exchange rate of `convertToAssets`: underlying units per
#      10**decimals shares (0 = off, the real rate).
rate_override: public(uint256)


@deploy
def __init__(underlying: address, name_: String[64], symbol_: String[32]):
    """
    @dev Sets the underlying and the share metadata; the share decimals are
         read from the underlying.
    @param underlying The underlying ERC-20 (with `decimals()`).
    @param name_ The share token name, e.g. "Vault USD Coin".
    @param symbol_ The share token symbol, e.g. "vUSDC".
    """
    asset = underlying
    self.name = name_
    self.symbol = symbol_
    self.decimals = staticcall IERC20Detailed(underlying).decimals()


# ---------------------------------------------------------------- ERC-20


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` shares from the caller to `to`.
    @param to The receiver (not the zero address).
    @param amount The amount of shares.
    @return bool Always `True` (reverts on failure).
    """
    self._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` shares from `owner` to `to` using the caller's
         allowance. An infinite allowance is not decreased.
    @param owner The account debited.
    @param to The receiver (not the zero address).
    @param amount The amount of shares.
    @return bool Always `True` (reverts on failure).
    """
    self._spend_allowance(owner, msg.sender, amount)
    self._transfer(owner, to, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @dev Sets the caller's share allowance for `spender` to `amount`.
    @param spender The approved spender (not the zero address).
    @param amount The allowance (`max_value(uint256)` = infinite).
    @return bool Always `True`.
    """
    assert spender != empty(address), "erc20: approve to zero address"
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


# -------------------------------------------------------------- ERC-4626


@view
@external
def totalAssets() -> uint256:
    """
    @dev The vault's underlying balance (donations included).
    @return uint256 The total assets, in underlying units.
    """
    return self._total_assets()


@view
@external
def convertToAssets(shareAmount: uint256) -> uint256:
    """
    @dev The assets worth `shareAmount` shares, rounded down; with the
         rate override on, `shareAmount * rate // 10**decimals`.
    @param shareAmount The amount of shares.
    @return uint256 The amount of underlying.
    """
    rate: uint256 = self.rate_override
    if rate != 0:
        return shareAmount * rate // 10 ** convert(self.decimals, uint256)
    return self._to_assets(shareAmount, False)


@view
@external
def convertToShares(assetAmount: uint256) -> uint256:
    """
    @dev The shares worth `assetAmount` assets, rounded down; with the rate
         override on, `assetAmount * 10**decimals // rate`.
    @param assetAmount The amount of underlying.
    @return uint256 The amount of shares.
    """
    rate: uint256 = self.rate_override
    if rate != 0:
        return assetAmount * 10 ** convert(self.decimals, uint256) // rate
    return self._to_shares(assetAmount, False)


@view
@external
def maxDeposit(owner: address) -> uint256:
    """
    @dev No deposit limit.
    @param owner The receiver (unused).
    @return uint256 `max_value(uint256)`.
    """
    return max_value(uint256)


@view
@external
def previewDeposit(assets: uint256) -> uint256:
    """
    @dev The shares `deposit(assets)` mints (real rate, rounded down).
    @param assets The amount of underlying.
    @return uint256 The amount of shares.
    """
    return self._to_shares(assets, False)


@external
def deposit(assets: uint256, receiver: address) -> uint256:
    """
    @dev Pulls `assets` underlying from the caller and mints the shares
         worth what arrived (balance difference) to `receiver`.
    @param assets The amount of underlying pulled.
    @param receiver The receiver of the shares.
    @return uint256 The amount of shares minted (nonzero).
    """
    before: uint256 = self._total_assets()
    supply: uint256 = self.totalSupply
    ok: bool = extcall IERC20(asset).transferFrom(msg.sender, self, assets, default_return_value=True)
    assert ok, "vault: transfer failed"
    received: uint256 = self._total_assets() - before
    shares: uint256 = received * (supply + 1) // (before + 1)
    assert shares != 0, "vault: zero shares"
    self._mint(receiver, shares)
    log IERC4626.Deposit(sender=msg.sender, owner=receiver, assets=received, shares=shares)
    return shares


@view
@external
def maxMint(owner: address) -> uint256:
    """
    @dev No mint limit.
    @param owner The receiver (unused).
    @return uint256 `max_value(uint256)`.
    """
    return max_value(uint256)


@view
@external
def previewMint(shares: uint256) -> uint256:
    """
    @dev The assets `mint(shares)` pulls (real rate, rounded up).
    @param shares The amount of shares.
    @return uint256 The amount of underlying.
    """
    return self._to_assets(shares, True)


@external
def mint(shares: uint256, receiver: address) -> uint256:
    """
    @dev Mints `shares` shares to `receiver` for `previewMint(shares)`
         underlying pulled from the caller (no balance-difference check).
    @param shares The amount of shares (nonzero).
    @param receiver The receiver of the shares.
    @return uint256 The amount of underlying pulled.
    """
    assert shares != 0, "vault: zero shares"
    assets: uint256 = self._to_assets(shares, True)
    ok: bool = extcall IERC20(asset).transferFrom(msg.sender, self, assets, default_return_value=True)
    assert ok, "vault: transfer failed"
    self._mint(receiver, shares)
    log IERC4626.Deposit(sender=msg.sender, owner=receiver, assets=assets, shares=shares)
    return assets


@view
@external
def maxWithdraw(owner: address) -> uint256:
    """
    @dev The assets `owner`'s shares are worth (real rate, rounded down).
    @param owner The share holder.
    @return uint256 The amount of underlying.
    """
    return self._to_assets(self.balanceOf[owner], False)


@view
@external
def previewWithdraw(assets: uint256) -> uint256:
    """
    @dev The shares `withdraw(assets)` burns (real rate, rounded up).
    @param assets The amount of underlying.
    @return uint256 The amount of shares.
    """
    return self._to_shares(assets, True)


@external
def withdraw(assets: uint256, receiver: address, owner: address) -> uint256:
    """
    @dev Burns `previewWithdraw(assets)` shares of `owner` (spending the
         caller's share allowance unless the caller is `owner`) and sends
         `assets` underlying to `receiver`.
    @param assets The amount of underlying (nonzero).
    @param receiver The receiver of the underlying.
    @param owner The share holder.
    @return uint256 The amount of shares burned.
    """
    assert assets != 0, "vault: zero assets"
    shares: uint256 = self._to_shares(assets, True)
    self._exit(owner, receiver, assets, shares)
    return shares


@view
@external
def maxRedeem(owner: address) -> uint256:
    """
    @dev `owner`'s share balance.
    @param owner The share holder.
    @return uint256 The amount of shares.
    """
    return self.balanceOf[owner]


@view
@external
def previewRedeem(shares: uint256) -> uint256:
    """
    @dev The assets `redeem(shares)` sends (real rate, rounded down).
    @param shares The amount of shares.
    @return uint256 The amount of underlying.
    """
    return self._to_assets(shares, False)


@external
def redeem(shares: uint256, receiver: address, owner: address) -> uint256:
    """
    @dev Burns `shares` shares of `owner` (spending the caller's share
         allowance unless the caller is `owner`) and sends the assets they
         are worth (real rate, rounded down) to `receiver`.
    @param shares The amount of shares.
    @param receiver The receiver of the underlying.
    @param owner The share holder.
    @return uint256 The amount of underlying sent (nonzero).
    """
    assets: uint256 = self._to_assets(shares, False)
    assert assets != 0, "vault: zero assets"
    self._exit(owner, receiver, assets, shares)
    return assets


# ----------------------------------------------------------------- tests


@external
def set_rate_override(rate: uint256):
    """
    @dev Sets the exchange rate reported by `convertToAssets` (and its
         inverse by `convertToShares`). Anyone may call it (mock).
    @param rate Underlying units per 10**decimals shares (0 = off).
    """
    self.rate_override = rate


# -------------------------------------------------------------- internal


@view
@internal
def _total_assets() -> uint256:
    """
    @dev The vault's underlying balance.
    @return uint256 The total assets.
    """
    return staticcall IERC20(asset).balanceOf(self)


@view
@internal
def _to_assets(shares: uint256, round_up: bool) -> uint256:
    """
    @dev Shares to assets at the real rate (one virtual share and asset).
    @param shares The amount of shares.
    @param round_up Whether to round up (else down).
    @return uint256 The amount of underlying.
    """
    numerator: uint256 = shares * (self._total_assets() + 1)
    denominator: uint256 = self.totalSupply + 1
    if round_up:
        return (numerator + denominator - 1) // denominator
    return numerator // denominator


@view
@internal
def _to_shares(assets: uint256, round_up: bool) -> uint256:
    """
    @dev Assets to shares at the real rate (one virtual share and asset).
    @param assets The amount of underlying.
    @param round_up Whether to round up (else down).
    @return uint256 The amount of shares.
    """
    numerator: uint256 = assets * (self.totalSupply + 1)
    denominator: uint256 = self._total_assets() + 1
    if round_up:
        return (numerator + denominator - 1) // denominator
    return numerator // denominator


@internal
def _exit(owner: address, receiver: address, assets: uint256, shares: uint256):
    """
    @dev Spends the allowance, burns `shares` of `owner` and sends `assets`
         underlying to `receiver`.
    @param owner The share holder.
    @param receiver The receiver of the underlying.
    @param assets The amount of underlying.
    @param shares The amount of shares burned.
    """
    if msg.sender != owner:
        self._spend_allowance(owner, msg.sender, shares)
    self._burn(owner, shares)
    ok: bool = extcall IERC20(asset).transfer(receiver, assets, default_return_value=True)
    assert ok, "vault: transfer failed"
    log IERC4626.Withdraw(sender=msg.sender, receiver=receiver, owner=owner, assets=assets, shares=shares)


@internal
def _spend_allowance(owner: address, spender: address, amount: uint256):
    """
    @dev Decreases `owner`'s share allowance for `spender` (unless infinite).
    @param owner The share holder.
    @param spender The spender.
    @param amount The amount of shares.
    """
    allowed: uint256 = self.allowance[owner][spender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "erc20: insufficient allowance"
        # unsafe_sub is safe: allowed >= amount was just checked.
        self.allowance[owner][spender] = unsafe_sub(allowed, amount)


@internal
def _mint(to: address, amount: uint256):
    """
    @dev Creates `amount` shares for `to`.
    @param to The receiver (not the zero address).
    @param amount The amount of shares.
    """
    assert to != empty(address), "erc20: mint to zero address"
    self.totalSupply += amount
    # unsafe_add is safe: a balance never exceeds totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@internal
def _burn(owner: address, amount: uint256):
    """
    @dev Destroys `amount` shares of `owner`.
    @param owner The share holder.
    @param amount The amount of shares.
    """
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "erc20: burn amount exceeds balance"
    # unsafe_sub is safe: balance >= amount was just checked.
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    # unsafe_sub is safe: a balance never exceeds totalSupply.
    self.totalSupply = unsafe_sub(self.totalSupply, amount)
    log IERC20.Transfer(sender=owner, receiver=empty(address), value=amount)


@internal
def _transfer(owner: address, to: address, amount: uint256):
    """
    @dev Moves `amount` shares from `owner` to `to` and logs `Transfer`.
    @param owner The account debited.
    @param to The receiver (not the zero address).
    @param amount The amount of shares.
    """
    assert to != empty(address), "erc20: transfer to zero address"
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "erc20: transfer amount exceeds balance"
    # unsafe_sub is safe: balance >= amount was just checked.
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    # unsafe_add is safe: the sum of all balances equals totalSupply, which did not overflow.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=owner, receiver=to, value=amount)
