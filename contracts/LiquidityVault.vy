# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title LiquidityVault
@notice ERC-4626 vault over the engine's settlement asset. Its LPs are the
        counterparty of every trade: trader losses, fees and funding raise
        the share price, trader profits and uncovered bad debt lower it.
@dev    The shares are snekmate's `erc20`. The ERC-4626 functions are
        written here rather than taken from snekmate's `erc4626` because the
        assets are custodied and accounted by the engine: `totalAssets()` is
        the engine's ledger entry `vault_assets()`, never a `balanceOf`, so a
        donation to either contract moves no share price. Conversions use
        snekmate's virtual-offset formula (10**DECIMALS_OFFSET virtual shares,
        one virtual asset), which defeats first-depositor inflation, and round
        against the caller. Withdrawals are capped by what open interest
        reserves (`free_assets`), which needs valid prices for the markets
        whose open interest is skewed. The vault has no admin and no pause:
        LP exits are limited only by the reserve.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from ethereum.ercs import IERC4626

implements: IERC20
implements: IERC20Detailed
implements: IERC4626

from snekmate.auth import ownable
from snekmate.tokens import erc20
from snekmate.utils import math

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.transfer,
    erc20.transferFrom,
    erc20.approve,
    erc20.allowance,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
)


interface IEngine:
    def vault_transfer(receiver: address, amount: int256) -> uint256: nonpayable
    def vault_assets() -> uint256: view
    def SETTLEMENT_ASSET() -> address: view
    def SCALE() -> uint256: view
    def reserve_factor() -> uint256: view
    def market_count() -> uint256: view
    def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def oracle_price(market: uint256) -> (uint256, bool): view


WAD: constant(uint256) = 10**18
MASK128: constant(uint256) = 2**128 - 1
# @dev The engine lists at most this many markets (its MAX_MARKETS).
MAX_MARKETS: constant(uint256) = 64


# @dev Virtual shares are 10**DECIMALS_OFFSET: an attacker must donate
#      that many times a victim's deposit to round it down to zero shares.
DECIMALS_OFFSET: public(constant(uint8)) = 6

# @dev The settlement asset (ERC-4626 `asset`).
asset: public(immutable(address))
# @dev The margin engine that custodies the assets and trades against them.
ENGINE: public(immutable(address))
# @dev 10**(18 - asset decimals): token units to WAD.
_SCALE: immutable(uint256)


@deploy
def __init__(engine: address, name: String[25], symbol: String[5]):
    """
    @notice Deploy the vault over `engine`'s settlement asset.
    @dev The engine's admin then connects it with `set_vault`. The vault
         approves the engine once, so the engine can pull deposits.
    @param engine The MarginEngine.
    @param name Share token name.
    @param symbol Share token symbol.
    """
    underlying: address = staticcall IEngine(engine).SETTLEMENT_ASSET()
    asset = underlying
    ENGINE = engine
    _SCALE = staticcall IEngine(engine).SCALE()
    ownable.__init__()
    erc20.__init__(
        name, symbol, staticcall IERC20Detailed(underlying).decimals() + DECIMALS_OFFSET, name, "1"
    )
    assert extcall IERC20(underlying).approve(engine, max_value(uint256), default_return_value=True), "vault: approve failed"


# --------------------------------------------------------------------------
#                                  LPs
# --------------------------------------------------------------------------

@external
def deposit(assets: uint256, receiver: address) -> uint256:
    """
    @notice Deposit `assets` and mint shares to `receiver`.
    @dev Shares are computed from what the engine actually received,
         rounded down; zero shares revert.
    @param assets Settlement-token units.
    @param receiver The share owner.
    @return The shares minted.
    """
    return self._deposit(assets, receiver, 0)


@external
def mint(shares: uint256, receiver: address) -> uint256:
    """
    @notice Mint exactly `shares` to `receiver`, paying the assets they cost.
    @param shares The shares wanted.
    @param receiver The share owner.
    @return The assets paid (rounded up).
    """
    assets: uint256 = self._convert_to_assets(shares, True)
    self._deposit(assets, receiver, shares)
    return assets


@external
def withdraw(assets: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Burn `owner`'s shares for exactly `assets`, paid to `receiver`.
    @param assets Settlement-token units.
    @param receiver Who receives the tokens.
    @param owner Whose shares are burned (allowance needed if not the caller).
    @return The shares burned (rounded up).
    """
    shares: uint256 = self._convert_to_shares(assets, True)
    self._withdraw(assets, shares, receiver, owner)
    return shares


@external
def redeem(shares: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Burn exactly `shares` of `owner` for assets paid to `receiver`.
    @param shares The shares to burn.
    @param receiver Who receives the tokens.
    @param owner Whose shares are burned (allowance needed if not the caller).
    @return The assets paid (rounded down).
    """
    assets: uint256 = self._convert_to_assets(shares, False)
    self._withdraw(assets, shares, receiver, owner)
    return assets


# --------------------------------------------------------------------------
#                                   Views
# --------------------------------------------------------------------------

@view
@external
def totalAssets() -> uint256:
    """
    @notice The vault's assets as recorded by the engine (not a balanceOf).
    @return Settlement-token units.
    """
    return staticcall IEngine(ENGINE).vault_assets()


@view
@external
def convertToShares(assets: uint256) -> uint256:
    """
    @notice Shares worth `assets`, rounded down.
    @param assets Settlement-token units.
    @return Shares.
    """
    return self._convert_to_shares(assets, False)


@view
@external
def convertToAssets(shares: uint256) -> uint256:
    """
    @notice Assets worth `shares`, rounded down.
    @param shares Shares.
    @return Settlement-token units.
    """
    return self._convert_to_assets(shares, False)


@view
@external
def maxDeposit(receiver: address) -> uint256:
    """
    @notice No deposit limit.
    @param receiver Unused.
    @return max_value(uint256).
    """
    return max_value(uint256)


@view
@external
def maxMint(receiver: address) -> uint256:
    """
    @notice No mint limit.
    @param receiver Unused.
    @return max_value(uint256).
    """
    return max_value(uint256)


@view
@external
def previewDeposit(assets: uint256) -> uint256:
    """
    @notice Shares `deposit(assets)` would mint now, rounded down.
    @param assets Settlement-token units.
    @return Shares.
    """
    return self._convert_to_shares(assets, False)


@view
@external
def previewMint(shares: uint256) -> uint256:
    """
    @notice Assets `mint(shares)` would cost now, rounded up.
    @param shares Shares.
    @return Settlement-token units.
    """
    return self._convert_to_assets(shares, True)


@view
@external
def maxWithdraw(owner: address) -> uint256:
    """
    @notice Most assets `owner` can withdraw now: its shares' worth, capped
            by the vault's unreserved assets.
    @param owner The share owner.
    @return Settlement-token units.
    """
    return min(self._convert_to_assets(erc20.balanceOf[owner], False), self._free_assets()[0])


@view
@external
def maxRedeem(owner: address) -> uint256:
    """
    @notice Most shares `owner` can redeem now (see `maxWithdraw`).
    @param owner The share owner.
    @return Shares.
    """
    free_shares: uint256 = self._convert_to_shares(self._free_assets()[0], False)
    return min(erc20.balanceOf[owner], free_shares)


@view
@external
def free_assets() -> uint256:
    """
    @notice Assets LPs may withdraw now: total assets minus the reserve,
            sum over markets of |long OI - short OI| x price x reserve_factor.
    @dev 0 while a price needed for the reserve is invalid.
    @return Settlement-token units.
    """
    return self._free_assets()[0]


@view
@external
def previewWithdraw(assets: uint256) -> uint256:
    """
    @notice Shares `withdraw(assets)` would burn now, rounded up.
    @param assets Settlement-token units.
    @return Shares.
    """
    return self._convert_to_shares(assets, True)


@view
@external
def previewRedeem(shares: uint256) -> uint256:
    """
    @notice Assets `redeem(shares)` would pay now, rounded down.
    @param shares Shares.
    @return Settlement-token units.
    """
    return self._convert_to_assets(shares, False)


# --------------------------------------------------------------------------
#                                 Internal
# --------------------------------------------------------------------------

@internal
def _deposit(assets: uint256, receiver: address, exact_shares: uint256) -> uint256:
    """
    @dev Pull `assets` from the caller, hand them to the engine, and mint
         shares for what the engine received, priced before the deposit.
         With `exact_shares` > 0 (a `mint`), exactly that many are minted and
         the assets received must be worth at least as many.
    """
    assert assets > 0, "vault: zero amount"
    total_assets: uint256 = staticcall IEngine(ENGINE).vault_assets()
    total_shares: uint256 = erc20.totalSupply
    before: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert extcall IERC20(asset).transferFrom(msg.sender, self, assets, default_return_value=True), "vault: transfer failed"
    received: uint256 = staticcall IERC20(asset).balanceOf(self) - before
    credited: uint256 = extcall IEngine(ENGINE).vault_transfer(self, convert(received, int256))
    # shares = credited * (supply + 10**offset) / (assets + 1), rounded down
    shares: uint256 = math._mul_div(
        credited, total_shares + 10 ** convert(DECIMALS_OFFSET, uint256), total_assets + 1, False
    )
    assert shares > 0, "vault: zero shares"
    if exact_shares != 0:
        assert shares >= exact_shares, "vault: slippage"
        shares = exact_shares
    erc20._mint(receiver, shares)
    log IERC4626.Deposit(sender=msg.sender, owner=receiver, assets=credited, shares=shares)
    return shares


@internal
def _withdraw(assets: uint256, shares: uint256, receiver: address, owner: address):
    """
    @dev Within the reserve (which needs valid prices): burn first, then the
         engine pays `receiver`.
    """
    assert assets > 0 and shares > 0, "vault: zero amount"
    free: uint256 = 0
    ok: bool = False
    free, ok = self._free_assets()
    assert ok, "vault: price"
    assert assets <= free, "vault: reserved"
    if msg.sender != owner:
        erc20._spend_allowance(owner, msg.sender, shares)
    erc20._burn(owner, shares)
    extcall IEngine(ENGINE).vault_transfer(receiver, -convert(assets, int256))
    log IERC4626.Withdraw(sender=msg.sender, receiver=receiver, owner=owner, assets=assets, shares=shares)


@view
@internal
def _free_assets() -> (uint256, bool):
    """
    @dev assets - sum_m ceil(ceil(ceil(|L - S| P / WAD) reserve_factor / WAD) / SCALE),
         the reserve rounded up; (0, False) when a needed price is invalid.
    """
    reserved: uint256 = 0
    factor: uint256 = staticcall IEngine(ENGINE).reserve_factor()
    count: uint256 = staticcall IEngine(ENGINE).market_count()
    for market: uint256 in range(MAX_MARKETS):
        if market >= count:
            break
        w0: uint256 = 0
        w1: uint256 = 0
        w2: uint256 = 0
        w3: uint256 = 0
        oi: uint256 = 0
        w5: uint256 = 0
        w0, w1, w2, w3, oi, w5 = staticcall IEngine(ENGINE).market_words(market)
        long_oi: uint256 = oi & MASK128
        short_oi: uint256 = oi >> 128
        if long_oi == short_oi:
            continue
        price: uint256 = 0
        ok: bool = False
        price, ok = staticcall IEngine(ENGINE).oracle_price(market)
        if not ok:
            return 0, False
        notional: uint256 = math._mul_div(max(long_oi, short_oi) - min(long_oi, short_oi), price, WAD, True)
        reserved += math._mul_div(math._mul_div(notional, factor, WAD, True), 1, _SCALE, True)
    assets: uint256 = staticcall IEngine(ENGINE).vault_assets()
    if assets <= reserved:
        return 0, True
    return assets - reserved, True


@view
@internal
def _convert_to_shares(assets: uint256, roundup: bool) -> uint256:
    # shares = assets * (supply + 10**offset) / (total_assets + 1)
    return math._mul_div(
        assets,
        erc20.totalSupply + 10 ** convert(DECIMALS_OFFSET, uint256),
        staticcall IEngine(ENGINE).vault_assets() + 1,
        roundup,
    )


@view
@internal
def _convert_to_assets(shares: uint256, roundup: bool) -> uint256:
    # assets = shares * (total_assets + 1) / (supply + 10**offset)
    return math._mul_div(
        shares,
        staticcall IEngine(ENGINE).vault_assets() + 1,
        erc20.totalSupply + 10 ** convert(DECIMALS_OFFSET, uint256),
        roundup,
    )
