# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title MarginEngine
@notice Cross- and isolated-margin accounts trading perpetual futures at
        oracle prices against a liquidity vault. Every risk-increasing action
        must leave the account at or above its initial margin; anyone may
        liquidate an account below its maintenance margin.
@dev    The math, with its rounding, is specified in `docs/engine-spec.md` and
        mirrored by `margin_engine/model.py`.

        Governance: market listing, oracles, risk parameters, the vault link
        and the pause are written only by `configurator`
        (`EngineConfigurator`), which holds the roles (snekmate
        `access_control`) and enforces every bound.

        Stopping new risk: an account holding `GUARDIAN_ROLE` calls
        `EngineConfigurator.pause()`.
        While paused, opening and increasing positions revert with
        "engine: paused"; deposits, reductions, closes, withdrawals of free
        collateral, liquidations and LP withdrawals keep working.

        Custody: the engine holds every token. Three ledgers share the
        balance: account balances, the insurance fund (`insurance_fund`) and
        the vault's assets (`vault_assets()`); their sum always equals what
        was deposited minus what was withdrawn, in settlement-token units.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from .interfaces import IMarginEngine

implements: IMarginEngine


interface IRiskModel:
    def requirements(market: uint256, notional: uint256, rates: uint256) -> (uint256, uint256): view
    def sample(market: uint256, price: uint256): nonpayable


interface ICollateral:
    def credit(owner: address, sub: uint16, asset: address, amount: uint256, deposit: bool): nonpayable
    def debit(owner: address, sub: uint16, asset: address, amount: uint256, withdrawal: bool) -> bool: nonpayable
    def liquidate(liquidator: address, owner: address, sub: uint16, asset: address, max_repay: uint256) -> uint256: nonpayable
    def value(owner: address, sub: uint16, strict: bool) -> (uint256, uint256, bool): view
    def balance_of(owner: address, sub: uint16, asset: address) -> uint256: view


interface AggregatorV3:
    def decimals() -> uint8: view
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view


# --------------------------------------------------------------------------
#                                 Constants
# --------------------------------------------------------------------------

WAD: constant(uint256) = 10**18
WAD_I: constant(int256) = 10**18

# @dev Positions per sub-account: bounds the gas of every health check and
#      therefore of every liquidation.
MAX_POSITIONS: public(constant(uint256)) = 8
# @dev Markets listable: bounds the loop that values the vault's reserve.
MAX_MARKETS: public(constant(uint256)) = 64

HEALTHY: constant(uint8) = 0
MARGIN_CALL: constant(uint8) = 1
LIQUIDATABLE: constant(uint8) = 2
BANKRUPT: constant(uint8) = 3

MASK8: constant(uint256) = 2**8 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK160: constant(uint256) = 2**160 - 1

# Account word: bits 0-7 position count, bit 8 isolated flag, bit 9
# collateral flag, one 8-bit
# market id per open position from bit 16, the account's index in the
# active-account list (32 bits) from bit 80, the balance (int112) from bit 144.
ISOLATED_BIT: constant(uint256) = 256
# Set while the sub-account holds a collateral asset (CollateralManager).
COLLATERAL_BIT: constant(uint256) = 512
INDEX_SHIFT: constant(uint256) = 80
MASK144: constant(uint256) = 2**144 - 1
# Pool word: vault assets in the low 128 bits, insurance above, paused flag on top.
PAUSED_BIT: constant(uint256) = 2**255
MASK127: constant(uint256) = 2**127 - 1
NO_MARKET: constant(uint256) = max_value(uint256)
# Top bit of the imr field: the market's requirements come from RISK_MODEL.
RISK_BIT: constant(uint256) = 2**63


# --------------------------------------------------------------------------
#                                 Immutables
# --------------------------------------------------------------------------

# @dev The settlement asset (a USD stablecoin): PnL, fees, funding, rewards.
SETTLEMENT_ASSET: public(immutable(address))
# @dev 10**(18 - settlement decimals): token units to WAD, exact.
SCALE: public(immutable(uint256))
_SCALE_I: immutable(int256)
# @dev The `RiskModel` of the markets flagged with RISK_BIT (volatility, tiers).
RISK_MODEL: public(immutable(address))
# @dev The `CollateralManager`: the ledger of the other collateral assets.
COLLATERAL: public(immutable(address))


# --------------------------------------------------------------------------
#                                  Structs
# --------------------------------------------------------------------------

# @dev What moving a position did: funding paid and PnL realised (tokens),
#      the entry price, packed open interest and meta word afterwards.
struct Fill:
    funding: int256
    realized: int256
    entry: uint256
    new_oi: uint256
    meta: uint256


# --------------------------------------------------------------------------
#                                  Storage
# --------------------------------------------------------------------------

# @dev The ERC-4626 liquidity vault, counterparty of every trade; set once.
vault: public(address)
# @dev The only writer of market and global parameters (`set_configurator`).
configurator: public(address)
# @dev The pool word, read and written once per trade or liquidation:
#      vault assets (int128, bits 0-127) | insurance fund (127 bits) << 128
#      | paused flag (bit 255). Vault assets are LP capital plus trader
#      losses, fees and funding, minus trader profits and bad debt; the
#      insurance fund is the first payer of bad debt; both in settlement-token
#      units. The flag stops new risk (see the module docstring).
_pool: uint256
# @dev Number of listed markets; market ids are 0 .. market_count - 1.
market_count: public(uint256)
# @dev Share of the vault's net exposure that LPs cannot withdraw (WAD); the
#      vault enforces it on LP withdrawals.
reserve_factor: public(uint256)
# @dev Liquidation buffer (128 bits) | liquidator share << 128, both WAD.
_liq_rates: uint256
# @dev Liquidator reward floor (128 bits) | cap << 128, settlement-token units.
_liq_rewards: uint256
# @dev Initial-margin terms (WAD): the haircut on positive unrealised PnL
#      (128 bits; equity_init = equity - upnl * haircut when upnl > 0) |
#      transfer margin ratio << 128 (withdrawals and transfers out need
#      equity_init >= max(im_required, ratio * notional)).
_margin_params: uint256
# @dev Margin-call band (WAD): call buffer (64 bits; 0 = off) | fee share of
#      the market's liq_fee << 64 | largest fraction of a position per call << 128
_call_params: uint256

# Market configuration and state, packed so that a trade reads few slots.
# @dev feed (160 bits) | heartbeat (32 bits) << 160 | 10**(18 - decimals) << 192
_oracle: HashMap[uint256, uint256]
# @dev min_price (128 bits) | max_price << 128, both WAD
_bounds: HashMap[uint256, uint256]
# @dev imr | mmr << 64 | fee_rate << 128 | liq_fee << 192, each a 64-bit WAD rate;
#      bit 63 (RISK_BIT, the top of the imr field) set: the market's
#      requirements come from RISK_MODEL (volatility, tiers, MM ramps), with
#      imr and mmr as floors of its base rates.
_rates: HashMap[uint256, uint256]
# @dev max_oi (128 bits) | min_notional << 128
_limits: HashMap[uint256, uint256]
# @dev long open interest (128 bits) | short open interest << 128
_oi: HashMap[uint256, uint256]
# @dev funding index (int128, two's complement) | last accrual time << 128 (64 bits)
#      | funding_rate_max << 192 (64 bits)
_funding: HashMap[uint256, uint256]

# @dev One word per sub-account: position count (bits 0-7), isolated flag
#      (bit 8), one 8-bit market id per open position (bits 16-79), the
#      account's index in `active_accounts` while it has positions (bits
#      80-111), and the settlement-asset balance in token units (int112, bits 144-255; negative
#      only transiently: bad debt is cleared when the last position closes).
_meta: HashMap[address, HashMap[uint16, uint256]]
# @dev Position size (base units, 18 decimals, positive = long).
_pos_size: HashMap[address, HashMap[uint16, HashMap[uint256, int256]]]
# @dev Entry price (128 bits) | funding index at last settlement (int128) << 128.
_pos_data: HashMap[address, HashMap[uint16, HashMap[uint256, uint256]]]
# @dev owner => operator => may trade for owner.
operators: public(HashMap[address, HashMap[address, bool]])
# @dev Number of sub-accounts with at least one open position.
active_count: public(uint256)
# @dev The sub-accounts with open positions, at indices 0 .. active_count - 1,
#      each as owner (160 bits) | sub << 160; an account leaves by swapping
#      in the last entry. Entries at or past `active_count` are stale.
active_accounts: public(HashMap[uint256, uint256])


# --------------------------------------------------------------------------
#                                Constructor
# --------------------------------------------------------------------------

@deploy
def __init__(settlement_asset: address, configurator: address, risk_model: address, collateral: address):
    """
    @notice Deploy the engine over `settlement_asset`, governed by
            `configurator` (which must then `set_engine` to this engine).
    @param settlement_asset The USD stablecoin accounts are settled in
           (at most 18 decimals).
    @param configurator The `EngineConfigurator` that writes parameters.
    @param risk_model The `RiskModel` of markets with volatility or tiers.
    @param collateral The `CollateralManager` of the other collateral assets.
    """
    assert configurator != empty(address) and risk_model != empty(address) and collateral != empty(address), "engine: zero address"
    RISK_MODEL = risk_model
    COLLATERAL = collateral
    self.configurator = configurator
    decimals: uint256 = convert(staticcall IERC20Detailed(settlement_asset).decimals(), uint256)
    assert decimals <= 18, "engine: decimals"
    SETTLEMENT_ASSET = settlement_asset
    SCALE = 10 ** (18 - decimals)
    _SCALE_I = convert(SCALE, int256)


# --------------------------------------------------------------------------
#                             Users: collateral
# --------------------------------------------------------------------------

@external
def deposit(sub: uint16, asset: address, amount: uint256):
    """
    @notice Deposit `amount` of `asset` into sub-account `sub` of the caller.
    @dev Always allowed, also while paused (a collateral asset must be
         enabled and within its supply cap). Credits what was received.
    @param sub The caller's sub-account.
    @param asset The settlement asset or a listed collateral asset.
    @param amount Token units to pull from the caller (approval to the engine).
    """
    received: uint256 = self._pull(asset, msg.sender, amount)
    self._credit(msg.sender, sub, asset, received, True)
    log IMarginEngine.Deposit(owner=msg.sender, sub=sub, asset=asset, amount=received)


@external
def withdraw(sub: uint16, asset: address, amount: uint256):
    """
    @notice Withdraw `amount` of `asset` from sub-account `sub` to the caller.
    @dev With open positions or settlement debt the account must stay
         HEALTHY with the transfer margin (needs valid prices). The
         settlement balance never goes negative by a withdrawal.
    @param sub The caller's sub-account.
    @param asset The settlement asset or a listed collateral asset.
    @param amount Token units to send.
    """
    self._debit_checked(msg.sender, sub, asset, amount, True)
    self._push(asset, msg.sender, amount)
    log IMarginEngine.Withdraw(owner=msg.sender, sub=sub, asset=asset, amount=amount)


@external
def transfer_collateral(from_sub: uint16, to_sub: uint16, asset: address, amount: uint256):
    """
    @notice Move collateral between two of the caller's sub-accounts.
    @dev The source is checked like a withdrawal.
    @param from_sub Source sub-account.
    @param to_sub Destination sub-account.
    @param asset The settlement asset or a listed collateral asset.
    @param amount Token units to move.
    """
    assert from_sub != to_sub, "engine: same account"
    self._debit_checked(msg.sender, from_sub, asset, amount, False)
    self._credit(msg.sender, to_sub, asset, amount, False)
    log IMarginEngine.CollateralTransferred(
        owner=msg.sender, from_sub=from_sub, to_sub=to_sub, asset=asset, amount=amount
    )


@external
def set_margin_mode(sub: uint16, isolated: bool):
    """
    @notice Switch sub-account `sub` between cross (default) and isolated margin.
    @dev Only while the sub-account has no positions. An isolated
         sub-account holds at most one market.
    @param sub The caller's sub-account.
    @param isolated True for isolated, False for cross.
    """
    meta: uint256 = self._meta[msg.sender][sub]
    assert meta & 255 == 0, "engine: open positions"
    meta = meta & ~ISOLATED_BIT
    if isolated:
        meta |= ISOLATED_BIT
    self._meta[msg.sender][sub] = meta
    log IMarginEngine.MarginModeSet(owner=msg.sender, sub=sub, isolated=isolated)


@external
def set_operator(operator: address, approved: bool):
    """
    @notice Approve or revoke `operator` to trade for the caller.
    @dev Operators trade only; they never withdraw or move collateral.
    @param operator The address acting for the caller.
    @param approved True to approve, False to revoke.
    """
    assert operator != empty(address), "engine: zero address"
    self.operators[msg.sender][operator] = approved
    log IMarginEngine.OperatorSet(owner=msg.sender, operator=operator, approved=approved)


@external
def fund_insurance(amount: uint256):
    """
    @notice Add settlement tokens to the insurance fund.
    @param amount Token units to pull from the caller.
    """
    received: uint256 = self._pull(SETTLEMENT_ASSET, msg.sender, amount)
    pool: uint256 = self._pool
    self._pool = self._pack_pool(pool, self._pool_vault(pool), self._pool_insurance(pool) + received)
    log IMarginEngine.InsuranceFunded(funder=msg.sender, amount=received)


# --------------------------------------------------------------------------
#                              Users: trading
# --------------------------------------------------------------------------

@external
def modify_position(
    owner: address, sub: uint16, market: uint256, size_delta: int256, limit_price: uint256
) -> uint256:
    """
    @notice Change a position by `size_delta` at the oracle price.
    @dev Risk-increasing trades (open, increase, flip) need the account
         HEALTHY afterwards, the OI cap and no pause; reductions pass when
         the account ends flat, HEALTHY, or its maintenance ratio does not fall.
    @param owner The account owner (the caller or an approved operator acts).
    @param sub The owner's sub-account.
    @param market The market id.
    @param size_delta Base units (18 decimals); positive buys, negative sells.
    @param limit_price A buy reverts above it, a sell below it (WAD).
    @return The execution price (WAD).
    """
    return self._trade(owner, sub, market, size_delta, limit_price)


@external
def close_position(owner: address, sub: uint16, market: uint256, limit_price: uint256) -> uint256:
    """
    @notice Close the whole position in `market` at the oracle price.
    @param owner The account owner (the caller or an approved operator acts).
    @param sub The owner's sub-account.
    @param market The market id.
    @param limit_price Closing a long sells (reverts below it); closing a
           short buys (reverts above it).
    @return The execution price (WAD).
    """
    size: int256 = self._pos_size[owner][sub][market]
    assert size != 0, "engine: no position"
    return self._trade(owner, sub, market, -size, limit_price)


# --------------------------------------------------------------------------
#                               Liquidators
# --------------------------------------------------------------------------

@external
def liquidate(owner: address, sub: uint16, market: uint256, max_size: uint256) -> uint256:
    """
    @notice Liquidate part of an account's position in `market`.
    @dev Needs status LIQUIDATABLE or BANKRUPT and valid prices. Closes the
         smallest size restoring `mm_required * (1 + buffer)`, at most
         `max_size`; a dust remainder is closed too. The penalty, at most the
         account's remaining equity, is split between the liquidator
         (credited to its sub-account 0) and the insurance fund. Works while
         paused.
    @param owner The account owner.
    @param sub The owner's sub-account.
    @param market The market whose position is reduced.
    @param max_size The most base units the liquidator will close.
    @return The reward credited to the liquidator (settlement-token units).
    """
    return self._reduce(owner, sub, market, max_size, False)


@external
def margin_call(owner: address, sub: uint16, market: uint256, max_size: uint256) -> uint256:
    """
    @notice Reduce the position in `market` of an account in the margin-call
            band (below `mm_required * (1 + call_buffer)` but not
            liquidatable), for a small fee, before it becomes liquidatable.
    @dev Closes min(`max_size`, |size| * call_fraction) at the oracle price
         (the whole position when the rest would be dust). The fee,
         `liq_fee * fee_share` of the closed notional (below every MM rate,
         so a call never makes the account liquidatable), is credited in
         full to the caller's sub-account 0. Works while paused.
    @param owner The account owner.
    @param sub The owner's sub-account.
    @param market The market whose position is reduced.
    @param max_size The most base units the caller will close.
    @return The fee credited to the caller (settlement-token units).
    """
    return self._reduce(owner, sub, market, max_size, True)


@external
@reentrant
def liquidate_collateral(owner: address, sub: uint16, asset: address, max_repay: uint256) -> uint256:
    """
    @notice Repay settlement debt of an account and receive its `asset` at
            the oracle price less the asset's discount.
    @dev Needs a negative settlement balance and status LIQUIDATABLE or
         BANKRUPT, or no positions left. Repays the least of `max_repay`,
         the debt and what restores `mm_required * (1 + buffer)`
         (docs/collateral.md 6). The liquidator pays from its own
         sub-account 0, which must hold no positions, and receives the asset
         there: no token moves. Debt left on an account without positions
         or collateral is bad debt. Works while paused.
         Not locked itself: `CollateralManager.liquidate` (locked) reads
         `account` and books through `settle_collateral` (locked), so a
         re-entry still reverts there.
    @param owner The account owner.
    @param sub The owner's sub-account.
    @param asset The collateral asset to seize.
    @param max_repay The most settlement-token units to repay.
    @return The token units of `asset` seized.
    """
    return extcall ICollateral(COLLATERAL).liquidate(msg.sender, owner, sub, asset, max_repay)


@external
def settle_collateral(owner: address, sub: uint16, amount: int256, holds: bool):
    """
    @notice Book one side of a collateral liquidation: a repayment credited
            to the account (`amount` > 0; what is left of a debt on an
            account without positions or collateral is bad debt), or paid
            by the liquidator's sub-account 0 (`amount` < 0; it must hold no
            positions and no debt afterwards).
    @dev The CollateralManager only, from `liquidate` (it moved the asset).
    @param owner The account owner (or the liquidator).
    @param sub The sub-account (0 for the liquidator).
    @param amount Settlement-token units: + repaid to the account, - paid.
    @param holds Whether the sub-account holds a collateral asset now.
    """
    assert msg.sender == COLLATERAL, "engine: not collateral"
    meta: uint256 = self._meta[owner][sub] & ~COLLATERAL_BIT
    if holds:
        meta |= COLLATERAL_BIT
    balance: int256 = self._meta_balance(meta) + amount
    assert amount > 0 or (meta & 255 == 0 and balance >= 0), "engine: liquidator balance"
    self._pool = self._store_account(owner, sub, meta, balance, self._pool)


# --------------------------------------------------------------------------
#                                 The vault
# --------------------------------------------------------------------------

@external
def vault_transfer(receiver: address, amount: int256) -> uint256:
    """
    @notice Move settlement tokens between the vault and the vault's assets
            held here: a positive `amount` is pulled from the vault (LP
            deposits), a negative one paid to `receiver` (LP withdrawals).
    @dev Only the vault. It approves the engine once at construction, and
         enforces the open-interest reserve before a withdrawal
         (`LiquidityVault.free_assets`); here a payment must not exceed the
         vault's assets.
    @param receiver The LP paid on a withdrawal (ignored on a deposit).
    @param amount Token units: > 0 deposit, < 0 withdrawal.
    @return The amount received on a deposit (0 on a withdrawal).
    """
    assert msg.sender == self.vault, "engine: not vault"
    moved: int256 = amount
    if amount > 0:
        moved = convert(self._pull(SETTLEMENT_ASSET, msg.sender, convert(amount, uint256)), int256)
    pool: uint256 = self._pool
    assets: int256 = self._pool_vault(pool) + moved
    assert amount > 0 or assets >= 0, "engine: vault assets"
    self._pool = self._pack_pool(pool, assets, self._pool_insurance(pool))
    if amount < 0:
        self._push(SETTLEMENT_ASSET, receiver, convert(-amount, uint256))
    log IMarginEngine.VaultTransfer(receiver=receiver, amount=moved)
    return convert(max(moved, 0), uint256)


# --------------------------------------------------------------------------
#                                   Admin
# --------------------------------------------------------------------------

@external
def set_configurator(configurator: address):
    """
    @notice Hand governance to another configurator.
    @dev The current configurator only (its DEFAULT_ADMIN calls `migrate`
         there). The configurator holds the roles and the listing, oracle,
         risk-parameter, vault and pause logic and enforces every hard bound;
         the engine stores what it is given. Replacing it changes those
         rules, so the admin sits behind a timelock in production.
    @param configurator The new configurator.
    """
    self._only_configurator()
    self.configurator = configurator
    log IMarginEngine.ConfiguratorSet(configurator=configurator)


@external
def store_oracle(market: uint256, oracle: uint256, bounds: uint256):
    """
    @notice Store a market's packed oracle and bounds words; a `market` equal
            to `market_count` lists a new market.
    @dev Configurator only (it validates and logs; it checks `market <=
         market_count` and lists at most `MAX_MARKETS`). Layouts: see
         `_oracle`, `_bounds`.
    @param market The market id, or `market_count` to list one.
    @param oracle feed | heartbeat << 160 | 10**(18 - decimals) << 192.
    @param bounds min_price | max_price << 128 (WAD).
    """
    self._only_configurator()
    if market == self.market_count:
        self.market_count = market + 1
        self._funding[market] = block.timestamp << 128
    self._oracle[market] = oracle
    self._bounds[market] = bounds


@external
def store_market_params(
    market: uint256, rates: uint256, limits: uint256, funding_rate_max: uint256
):
    """
    @notice Store a market's packed risk words after accruing funding at the
            old rate (which needs a valid price when the market has open interest).
    @dev Configurator only (it validates and logs). Layouts: see `_rates`,
         `_limits`, `_funding`.
    @param market The market id.
    @param rates imr | mmr << 64 | fee_rate << 128 | liq_fee << 192, bit 127 set with a ramp.
    @param limits max_oi | min_notional << 128.
    @param funding_rate_max Funding rate per second at full skew (WAD).
    """
    self._only_configurator()
    self._accrue(market, funding_rate_max)
    self._rates[market] = rates
    self._limits[market] = limits


@external
def store_globals(
    liq_rates: uint256, liq_rewards: uint256, reserve_factor: uint256, margin_params: uint256, call_params: uint256
):
    """
    @notice Store the liquidation words, the vault reserve factor and the
            initial-margin terms.
    @dev Configurator only (it validates and logs).
    @param liq_rates buffer | liquidator_share << 128 (WAD).
    @param liq_rewards reward floor | cap << 128 (settlement-token units).
    @param reserve_factor WAD fraction.
    @param margin_params upnl haircut | transfer margin ratio << 128 (WAD).
    @param call_params call buffer | fee share << 64 | fraction << 128 (WAD).
    """
    self._only_configurator()
    self._liq_rates = liq_rates
    self._liq_rewards = liq_rewards
    self.reserve_factor = reserve_factor
    self._margin_params = margin_params
    self._call_params = call_params


@external
def store_vault(vault: address):
    """
    @notice Connect the liquidity vault.
    @dev Configurator only (it connects a vault once only).
    @param vault The LiquidityVault deployed over this engine.
    """
    self._only_configurator()
    self.vault = vault


@external
def store_paused(paused: bool):
    """
    @notice Set or clear the flag that stops new risk.
    @dev Configurator only (the GUARDIAN calls it there).
    @param paused True stops opens and increases.
    """
    self._only_configurator()
    if paused:
        self._pool |= PAUSED_BIT
    else:
        self._pool &= ~PAUSED_BIT


@external
def accrue_funding(market: uint256) -> int256:
    """
    @notice Bring a market's funding index forward to now (a keeper duty:
            the index then follows the price path between trades).
    @dev Anyone. Needs a valid price when the market has open interest.
    @param market The market id.
    @return The funding index now (WAD USD per base unit).
    """
    return self._accrue(market, self._funding[market] >> 192)


# --------------------------------------------------------------------------
#                                   Views
# --------------------------------------------------------------------------

@view
@external
def account(owner: address, sub: uint16) -> IMarginEngine.AccountState:
    """
    @notice Equity, requirements and status of an account at oracle prices.
    @dev Never reverts for an invalid price: positions in such markets are
         left out and `prices_ok` is False.
    @param owner The account owner.
    @param sub The sub-account.
    @return The account state (WAD USD values).
    """
    return self._account_view(owner, sub)


@view
@external
def status(owner: address, sub: uint16) -> uint8:
    """
    @notice 0 HEALTHY, 1 MARGIN_CALL, 2 LIQUIDATABLE, 3 BANKRUPT.
    @dev Positions whose price is invalid are left out (see `account`).
    @param owner The account owner.
    @param sub The sub-account.
    @return The status code.
    """
    return self._account_view(owner, sub).status


@view
@external
def position(owner: address, sub: uint16, market: uint256) -> IMarginEngine.Position:
    """
    @notice A position with its notional, unrealised PnL and unsettled funding.
    @param owner The account owner.
    @param sub The sub-account.
    @param market The market id.
    @return The position; valuation fields are zero when `price_ok` is False.
    """
    size: int256 = self._pos_size[owner][sub][market]
    data: uint256 = self._pos_data[owner][sub][market]
    result: IMarginEngine.Position = IMarginEngine.Position(
        size=size,
        entry_price=data & MASK128,
        funding_index=self._unpack_i128(data >> 128),
        notional=0,
        unrealized_pnl=0,
        funding_owed=0,
        price_ok=False,
    )
    if size == 0 or market >= self.market_count:
        return result
    price: uint256 = 0
    ok: bool = False
    price, ok = self._price(market, False)
    if not ok:
        return result
    pnl: int256 = 0
    result.notional, pnl, result.funding_owed = self._position_value(
        size, data, price, self._index_now(price, self._oi[market], self._funding[market])
    )
    result.unrealized_pnl = pnl - result.funding_owed
    result.price_ok = True
    return result


@view
@external
def balance_of(owner: address, sub: uint16, asset: address) -> int256:
    """
    @notice Collateral balance of a sub-account in the asset's own units.
    @param owner The account owner.
    @param sub The sub-account.
    @param asset The settlement asset (signed: negative is a debt) or a
           collateral asset.
    @return Token units (0 for an asset that is not listed).
    """
    if asset != SETTLEMENT_ASSET:
        return convert(staticcall ICollateral(COLLATERAL).balance_of(owner, sub, asset), int256)
    return self._meta_balance(self._meta[owner][sub])


@view
@external
def vault_assets() -> uint256:
    """
    @notice The vault's assets held by the engine (settlement-token units).
    @dev Read by the vault's `totalAssets`; 0 if the ledger were negative.
    @return Token units.
    """
    return convert(max(self._pool_vault(self._pool), 0), uint256)


@view
@external
def oracle_price(market: uint256) -> (uint256, bool):
    """
    @notice A market's normalised oracle price and whether it is valid now.
    @param market The market id.
    @return Price (WAD, 0 when invalid) and validity.
    """
    return self._price(market, False)


@view
@external
def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice A market's packed configuration and state, decoded by `MarginLens`.
    @dev Layouts are documented at the storage declarations: oracle, bounds,
         rates (as stored: for a market with RISK_BIT, `RiskModel.base_rates`
         gives the rates in force), limits, open interest, funding.
    @param market The market id.
    @return The six packed words.
    """
    return (
        self._oracle[market],
        self._bounds[market],
        self._rates[market],
        self._limits[market],
        self._oi[market],
        self._funding[market],
    )


@view
@external
def liquidation_params() -> IMarginEngine.LiquidationParams:
    """
    @notice The global liquidation parameters.
    @return Buffer, liquidator share, reward floor and cap.
    """
    rates: uint256 = self._liq_rates
    rewards: uint256 = self._liq_rewards
    return IMarginEngine.LiquidationParams(
        buffer=rates & MASK128, liquidator_share=rates >> 128, reward_floor=rewards & MASK128, reward_cap=rewards >> 128
    )


@view
@external
def margin_words() -> (uint256, uint256):
    """
    @notice The initial-margin terms and the margin-call band as stored
            (decoded by `EngineConfigurator.margin_params` and `call_params`).
    @return haircut | transfer margin ratio << 128; call buffer | fee share
            << 64 | fraction << 128 (WAD fields).
    """
    return self._margin_params, self._call_params


@view
@external
def paused() -> bool:
    """
    @notice True while new risk is stopped.
    @return The pause flag.
    """
    return self._pool & PAUSED_BIT != 0


@view
@external
def insurance_fund() -> uint256:
    """
    @notice The insurance fund, first payer of bad debt.
    @return Settlement-token units.
    """
    return self._pool_insurance(self._pool)


@view
@external
def account_meta(owner: address, sub: uint16) -> uint256:
    """
    @notice A sub-account's packed position count, isolated flag, open
            market ids and balance, decoded by `MarginLens`.
    @param owner The account owner.
    @param sub The sub-account.
    @return Bits 0-7 count, bit 8 isolated, 8-bit market ids from bit 16,
            the active-list index (32 bits) from bit 80, the balance
            (int112) from bit 144.
    """
    return self._meta[owner][sub]


# --------------------------------------------------------------------------
#                            Internal: trading
# --------------------------------------------------------------------------

@internal
def _trade(owner: address, sub: uint16, market: uint256, delta: int256, limit_price: uint256) -> uint256:
    # Checks: caller, input, price, slippage.
    assert msg.sender == owner or self.operators[owner][msg.sender], "engine: not authorized"
    assert delta != 0, "engine: zero size"
    price: uint256 = self._price(market, True)[0]
    assert (delta > 0 and price <= limit_price) or (delta < 0 and price >= limit_price), "engine: slippage"

    size: int256 = self._pos_size[owner][sub][market]
    new_size: int256 = size + delta
    # Risk increases on an open, an increase or a flip: never while paused.
    risk_up: bool = self._abs(new_size) > self._abs(size) or (new_size > 0) != (size > 0) and size != 0 and new_size != 0
    pool: uint256 = self._pool
    assert not risk_up or pool & PAUSED_BIT == 0, "engine: paused"

    rates: uint256 = self._rates[market]
    self._sample(market, price, rates)
    oi: uint256 = self._oi[market]
    fslot: uint256 = self._funding[market]
    index: int256 = self._index_now(price, oi, fslot)
    data: uint256 = self._pos_data[owner][sub][market]
    meta_before: uint256 = self._meta[owner][sub]
    balance_before: int256 = self._meta_balance(meta_before)
    fill: Fill = self._fill(owner, sub, market, meta_before, size, delta, price, index, oi, fslot, data)

    # Fee: |delta| * P * fee_rate, each step rounded up, in tokens.
    fee: uint256 = self._to_tokens_up(
        self._mul_div_up(self._mul_div_up(self._abs(delta), price, WAD), (rates >> 128) & MASK64, WAD)
    )
    shortfall: uint256 = 0
    pool, shortfall = self._book_vault(owner, sub, market, pool, fill.funding - fill.realized + convert(fee, int256))
    balance: int256 = balance_before - fill.funding + fill.realized - convert(fee, int256) - convert(shortfall, int256)
    meta: uint256 = fill.meta
    # A negative balance left on a flat account is bad debt (only on reductions:
    # a risk-increasing trade must leave the account HEALTHY).
    self._pool = self._store_account(owner, sub, meta, balance, pool)
    limits: uint256 = self._limits[market]
    # No position may be left below the minimum notional (dust nobody liquidates).
    self._check_dust(new_size == 0 or self._mul_div_up(self._abs(new_size), price, WAD) >= limits >> 128)

    band: bool = False
    if risk_up:
        # Risk increases: within the OI cap and HEALTHY afterwards.
        side_oi: uint256 = fill.new_oi & MASK128
        if new_size < 0:
            side_oi = fill.new_oi >> 128
        assert side_oi <= limits & MASK128, "engine: oi cap"
        self._check_healthy(owner, sub, meta, balance, market, price, index, False)
    elif meta & 255 != 0:
        # Reduction: the maintenance ratio may not fall unless HEALTHY.
        equity: int256 = 0
        im: uint256 = 0
        mm: uint256 = 0
        equity, im, mm = self._valuation(owner, sub, meta, balance, market, price, index, False)
        status: uint8 = self._status(meta, balance, equity, im, mm)
        if status != HEALTHY:
            upnl_old: int256 = 0
            mm_old: uint256 = 0
            upnl_new: int256 = 0
            mm_new: uint256 = 0
            upnl_old, mm_old = self._position_risk(market, size, data, price, index, rates)
            upnl_new, mm_new = self._position_risk(
                market, new_size, fill.entry | (self._pack_i128(index) << 128), price, index, rates
            )
            equity_before: int256 = equity - (balance - balance_before) * _SCALE_I - upnl_new + upnl_old
            mm_before: uint256 = mm - mm_new + mm_old
            assert equity * convert(mm_before, int256) >= equity_before * convert(mm, int256), "engine: unhealthy"
            band = self._in_band(status, equity, mm)

    log IMarginEngine.PositionModified(
        owner=owner,
        sub=sub,
        market=market,
        size_delta=delta,
        size=new_size,
        entry_price=fill.entry,
        price=price,
        fee=fee,
        realized_pnl=fill.realized,
        funding_paid=fill.funding,
    )
    if band:
        # The reduction left the account in the margin-call band.
        log IMarginEngine.MarginCall(
            owner=owner, sub=sub, market=market, caller=msg.sender, size_closed=0, price=price, fee=0
        )
    return price


@internal
def _fill(
    owner: address,
    sub: uint16,
    market: uint256,
    meta: uint256,
    size: int256,
    delta: int256,
    price: uint256,
    index: int256,
    oi: uint256,
    fslot: uint256,
    data: uint256,
) -> Fill:
    """
    @dev Move a position from `size` to `size + delta` at `price`: settle its
         funding, realise the closed part, average the entry, update open
         interest and the position. The caller books the balance, the
         vault's side of funding and PnL, and fees or penalties.
    """
    entry: uint256 = data & MASK128
    # Funding owed since the last settlement: rounded up, in tokens.
    funding: int256 = self._ceil_div(self._ceil_div(size * (index - self._unpack_i128(data >> 128)), WAD_I), _SCALE_I)
    new_size: int256 = size + delta
    realized: int256 = 0
    if size == 0 or (size > 0) == (delta > 0):
        # Increase: entry = (|s| e + |delta| P) / |s'|, against the trader
        # (up for a long, down for a short).
        numerator: uint256 = self._abs(size) * entry + self._abs(delta) * price
        if new_size > 0:
            entry = self._mul_div_up(numerator, 1, self._abs(new_size))
        else:
            entry = numerator // self._abs(new_size)
    else:
        # Reduce, close or flip: realise sign(s) * closed * (P - e), floored.
        closed: int256 = convert(min(self._abs(delta), self._abs(size)), int256)
        if size < 0:
            closed = -closed
        realized = self._floor_div(
            self._floor_div(closed * (convert(price, int256) - convert(entry, int256)), WAD_I), _SCALE_I
        )
        if new_size == 0:
            entry = 0
        elif (new_size > 0) != (size > 0):
            entry = price
    return Fill(
        funding=funding,
        realized=realized,
        entry=entry,
        new_oi=self._write_market(market, oi, size, new_size, fslot, index),
        meta=self._write_position(owner, sub, market, meta, size, new_size, entry, index),
    )


@internal
def _write_market(market: uint256, oi: uint256, size: int256, new_size: int256, fslot: uint256, index: int256) -> uint256:
    """
    @dev Move `size` to `new_size` in the market's open interest and store
         the accrued funding index with the current time.
    """
    long_oi: uint256 = oi & MASK128
    short_oi: uint256 = oi >> 128
    if size > 0:
        long_oi -= convert(size, uint256)
    else:
        short_oi -= convert(-size, uint256)
    if new_size > 0:
        long_oi += convert(new_size, uint256)
    else:
        short_oi += convert(-new_size, uint256)
    assert long_oi <= MASK128 and short_oi <= MASK128  # dev: open interest overflow
    new_oi: uint256 = long_oi | (short_oi << 128)
    self._oi[market] = new_oi
    self._funding[market] = self._pack_i128(index) | (block.timestamp << 128) | (fslot >> 192 << 192)
    return new_oi


@internal
def _write_position(
    owner: address,
    sub: uint16,
    market: uint256,
    meta: uint256,
    size: int256,
    new_size: int256,
    entry: uint256,
    index: int256,
) -> uint256:
    """
    @dev Store the position and keep the sub-account's market list in step;
         returns the new account word (the caller stores it).
    """
    count: uint256 = meta & 255
    new_meta: uint256 = meta
    if new_size == 0:
        self._pos_size[owner][sub][market] = 0
        self._pos_data[owner][sub][market] = 0
        # Remove `market`: move the last id into its place.
        last_id: uint256 = (meta >> (8 + 8 * count)) & MASK8
        for i: uint256 in range(MAX_POSITIONS):
            if i >= count:
                break
            bit: uint256 = 16 + 8 * i
            if (meta >> bit) & MASK8 == market:
                new_meta = new_meta & ~(MASK8 << bit) | (last_id << bit)
                break
        new_meta = new_meta & ~(MASK8 << (8 + 8 * count))
        new_meta -= 1
        if count == 1:
            new_meta = self._leave_active(new_meta)
    else:
        if size == 0:
            assert count < MAX_POSITIONS, "engine: too many positions"
            assert meta & ISOLATED_BIT == 0 or count == 0, "engine: isolated"
            new_meta = meta + 1 | (market << (16 + 8 * count))
            if count == 0:
                # First position: append the account to the active list.
                active: uint256 = self.active_count
                self.active_accounts[active] = convert(convert(owner, uint160), uint256) | (convert(sub, uint256) << 160)
                self.active_count = active + 1
                new_meta = new_meta & ~(MASK32 << INDEX_SHIFT) | (active << INDEX_SHIFT)
        self._pos_size[owner][sub][market] = new_size
        assert entry <= MASK128  # dev: entry price overflow
        self._pos_data[owner][sub][market] = entry | (self._pack_i128(index) << 128)
    return new_meta


@internal
def _leave_active(meta: uint256) -> uint256:
    """
    @dev Remove an account that just closed its last position from the
         active list: the list's last entry takes its place (its account
         word records the new index). Returns `meta` without the index.
    """
    index: uint256 = (meta >> INDEX_SHIFT) & MASK32
    last: uint256 = self.active_count - 1
    if index != last:
        moved: uint256 = self.active_accounts[last]
        self.active_accounts[index] = moved
        mover: address = convert(convert(moved & MASK160, uint160), address)
        mover_sub: uint16 = convert(moved >> 160, uint16)
        self._meta[mover][mover_sub] = self._meta[mover][mover_sub] & ~(MASK32 << INDEX_SHIFT) | (index << INDEX_SHIFT)
    self.active_count = last
    return meta & ~(MASK32 << INDEX_SHIFT)


@internal
def _book_vault(owner: address, sub: uint16, market: uint256, pool: uint256, delta: int256) -> (uint256, uint256):
    """
    @dev Add `delta` to the vault's assets. The vault pays at most what it
         holds: the part of a payment to the account beyond its assets is the
         shortfall, which the caller withholds from the account (logged), so
         no balance is ever credited with tokens nobody holds.
    """
    assets: int256 = self._pool_vault(pool) + delta
    shortfall: uint256 = 0
    if assets < 0 and delta < 0:
        shortfall = convert(min(-assets, -delta), uint256)
        assets += convert(shortfall, int256)
        log IMarginEngine.VaultShortfall(owner=owner, sub=sub, market=market, amount=shortfall)
    return self._pack_pool(pool, assets, self._pool_insurance(pool)), shortfall


@internal
def _store_account(owner: address, sub: uint16, meta: uint256, balance: int256, pool: uint256) -> uint256:
    """
    @dev Store an account word with its balance; an account left without
         positions or collateral with a negative balance is bad debt, paid by
         the insurance fund first, then by the vault. Returns the pool word
         (the caller stores it).
    """
    if balance >= 0 or meta & (255 | COLLATERAL_BIT) != 0:
        self._meta[owner][sub] = self._with_balance(meta, balance)
        return pool
    debt: uint256 = convert(-balance, uint256)
    insurance: uint256 = self._pool_insurance(pool)
    from_insurance: uint256 = min(insurance, debt)
    self._meta[owner][sub] = self._with_balance(meta, 0)
    log IMarginEngine.BadDebt(
        owner=owner, sub=sub, amount=debt, insurance_paid=from_insurance, vault_loss=debt - from_insurance
    )
    return self._pack_pool(
        pool, self._pool_vault(pool) - convert(debt - from_insurance, int256), insurance - from_insurance
    )


@internal
def _reduce(owner: address, sub: uint16, market: uint256, max_size: uint256, call: bool) -> uint256:
    """
    @dev A liquidation (`call` False) or a margin call: close part of a
         position at the oracle price and charge a fee out of the remaining
         equity (docs/engine-spec.md "Liquidation", docs/risk-model.md 11).
    """
    assert max_size > 0, "engine: zero size"
    price: uint256 = self._price(market, True)[0]
    size: int256 = self._pos_size[owner][sub][market]
    assert size != 0, "engine: no position"

    rates: uint256 = self._rates[market]
    self._sample(market, price, rates)
    oi: uint256 = self._oi[market]
    fslot: uint256 = self._funding[market]
    index: int256 = self._index_now(price, oi, fslot)
    meta: uint256 = self._meta[owner][sub]
    balance: int256 = self._meta_balance(meta)

    equity: int256 = 0
    im: uint256 = 0
    mm: uint256 = 0
    equity, im, mm = self._valuation(owner, sub, meta, balance, market, price, index, False)
    status: uint8 = self._status(meta, balance, equity, im, mm)
    abs_size: uint256 = self._abs(size)
    min_notional: uint256 = self._limits[market] >> 128
    fee_rate: uint256 = rates >> 192
    q: uint256 = 0
    if call:
        words: uint256 = self._call_params
        assert self._in_band(status, equity, mm), "engine: not in band"
        q = min(max_size, abs_size * ((words >> 128) & MASK64) // WAD)
        if q < abs_size and self._mul_div_up(abs_size - q, price, WAD) < min_notional:
            q = abs_size
        self._check_dust(q > 0 and (q == abs_size or q * price // WAD >= min_notional))
        fee_rate = fee_rate * ((words >> 64) & MASK64) // WAD
    else:
        assert status >= LIQUIDATABLE, "engine: not liquidatable"
        # Tiered markets: the position's average MM rate (docs/risk-model.md 10.3).
        mmr: uint256 = (rates >> 64) & MASK64
        if rates & RISK_BIT != 0:
            notional: uint256 = self._mul_div_up(abs_size, price, WAD)
            mmr = self._requirement(market, notional, rates)[1] * WAD // notional
        q = self._liquidation_size(abs_size, price, equity, mm, mmr, fee_rate, min_notional, max_size)

    # Settle funding, realise the closed part, take the penalty.
    delta: int256 = convert(q, int256)
    if size > 0:
        delta = -delta
    fill: Fill = self._fill(owner, sub, market, meta, size, delta, price, index, oi, fslot, self._pos_data[owner][sub][market])
    # The penalty is paid out of the remaining equity only (less the < 2 units
    # the funding and PnL conversions may round away): a bankrupt account pays
    # none, so no reward is ever funded by bad debt (self-liquidation of a
    # bankrupt sub-account earns nothing).
    penalty: uint256 = min(
        self._to_tokens_up(self._mul_div_up(self._mul_div_up(q, price, WAD), fee_rate, WAD)),
        convert(max(equity - convert(2 * SCALE + 2, int256), 0), uint256) // SCALE,
    )
    reward: uint256 = penalty
    if not call:
        reward = self._reward(penalty)
    pool: uint256 = 0
    shortfall: uint256 = 0
    pool, shortfall = self._book_vault(owner, sub, market, self._pool, fill.funding - fill.realized)
    balance = balance - fill.funding + fill.realized - convert(penalty + shortfall, int256)
    pool = self._pack_pool(pool, self._pool_vault(pool), self._pool_insurance(pool) + penalty - reward)
    self._pool = self._store_account(owner, sub, fill.meta, balance, pool)
    # Credit after the owner's word is written: correct for self-liquidation too.
    self._credit(msg.sender, 0, SETTLEMENT_ASSET, reward, False)

    if call:
        log IMarginEngine.MarginCall(
            owner=owner, sub=sub, market=market, caller=msg.sender, size_closed=q, price=price, fee=reward
        )
    else:
        log IMarginEngine.Liquidation(
            owner=owner,
            sub=sub,
            market=market,
            liquidator=msg.sender,
            size_closed=q,
            price=price,
            penalty=penalty,
            reward=reward,
            insurance_share=convert(penalty, int256) - convert(reward, int256),
        )
    return reward


@view
@internal
def _reward(penalty: uint256) -> uint256:
    """
    @dev reward = min(clamp(penalty * share, floor, cap), penalty): the floor
         lets the liquidator keep up to the whole penalty of a small account,
         but a reward never exceeds what the account paid, so neither a
         liquidator nor a self-liquidating owner can draw on the fund (which
         keeps penalty - reward).
    """
    rewards: uint256 = self._liq_rewards
    return min(
        min(max(penalty * (self._liq_rates >> 128) // WAD, rewards & MASK128), rewards >> 128),
        penalty,
    )


@view
@internal
def _liquidation_size(
    abs_size: uint256,
    price: uint256,
    equity: int256,
    mm: uint256,
    mmr: uint256,
    liq_fee: uint256,
    min_notional: uint256,
    max_size: uint256,
) -> uint256:
    """
    @dev Smallest size q whose closing restores equity >= mm * (1 + buffer):
         N = (mm (1 + b) - E) / (mmr (1 + b) - liq_fee), q = N / P, both up.
         A dust remainder is closed too; `max_size` caps q, but a capped q
         must leave and close at least `min_notional`.
    """
    buffer: uint256 = self._liq_rates & MASK128
    target: uint256 = self._mul_div_up(mm, WAD + buffer, WAD)
    # + 3 token units + 8 wei: the funding, PnL and penalty conversions to
    # tokens each round against the account by less than one unit, and the
    # requirement of the remainder rounds up by a few wei.
    deficit: uint256 = convert(convert(target, int256) - equity, uint256) + 3 * SCALE + 8
    # Safe: liq_fee < mmr is a hard bound, so denom > 0.
    denom: uint256 = mmr * (WAD + buffer) // WAD - liq_fee
    q: uint256 = min(self._mul_div_up(self._mul_div_up(deficit, WAD, denom), WAD, price), abs_size)
    if q < abs_size and self._mul_div_up(abs_size - q, price, WAD) < min_notional:
        q = abs_size
    if q > max_size:
        # A capped liquidation may neither leave nor close less than the
        # minimum notional (dust-sized calls would only round against the account).
        q = max_size
        self._check_dust(
            self._mul_div_up(abs_size - q, price, WAD) >= min_notional and q * price // WAD >= min_notional
        )
    return q


# --------------------------------------------------------------------------
#                          Internal: margin math
# --------------------------------------------------------------------------

@view
@internal
def _valuation(
    owner: address,
    sub: uint16,
    meta: uint256,
    balance: int256,
    hot: uint256,
    hot_price: uint256,
    hot_index: int256,
    transfer: bool,
) -> (int256, uint256, uint256):
    """
    @dev Equity (maintenance), the initial requirement it is held to and MM,
         reverting on any invalid price. `hot` is a market whose price and
         index the caller already has; `transfer` adds the transfer margin.
    """
    equity: int256 = 0
    upnl: int256 = 0
    notional: uint256 = 0
    im: uint256 = 0
    mm: uint256 = 0
    ok: bool = False
    gap: uint256 = 0
    equity, upnl, notional, im, mm, gap, ok = self._value_positions(
        owner, sub, meta, balance, hot, hot_price, hot_index, True
    )
    return equity, self._initial_requirement(upnl, notional, im, gap, transfer), mm


@view
@internal
def _initial_requirement(upnl: int256, notional: uint256, im: uint256, gap: uint256, transfer: bool) -> uint256:
    """
    @dev What `equity` (maintenance) must cover for the IM test:
         equity_init >= R  <=>  equity >= R + gap + haircut * max(upnl, 0) (up),
         with R = im, or max(im, ratio * notional) (up) for a transfer out,
         and gap = value_maint - value_init of the collateral assets.
         The margin word is read only when it can matter.
    """
    if upnl <= 0 and not transfer:
        return im + gap
    word: uint256 = self._margin_params
    required: uint256 = im + gap
    if transfer:
        required = max(im, self._mul_div_up(notional, word >> 128, WAD)) + gap
    if upnl > 0:
        required += self._mul_div_up(convert(upnl, uint256), word & MASK128, WAD)
    return required


@view
@internal
def _account_view(owner: address, sub: uint16) -> IMarginEngine.AccountState:
    meta: uint256 = self._meta[owner][sub]
    balance: int256 = self._meta_balance(meta)
    equity: int256 = 0
    upnl: int256 = 0
    notional: uint256 = 0
    im: uint256 = 0
    mm: uint256 = 0
    gap: uint256 = 0
    ok: bool = False
    equity, upnl, notional, im, mm, gap, ok = self._value_positions(owner, sub, meta, balance, NO_MARKET, 0, 0, False)
    required: uint256 = self._initial_requirement(upnl, notional, im, gap, False)
    return IMarginEngine.AccountState(
        equity_init=equity - convert(required - im, int256),
        equity_maint=equity,
        im_required=im,
        mm_required=mm,
        status=self._status(meta, balance, equity, required, mm),
        prices_ok=ok,
        positions=meta & 255,
    )


@view
@internal
def _value_positions(
    owner: address,
    sub: uint16,
    meta: uint256,
    balance: int256,
    hot: uint256,
    hot_price: uint256,
    hot_index: int256,
    strict: bool,
) -> (int256, int256, uint256, uint256, uint256, uint256, bool):
    """
    @dev equity = balance * SCALE + upnl + value_maint of the collateral
         assets, upnl = sum(pnl - funding), the total notional, im, mm =
         sums of per-market requirements (docs/engine-spec.md), and
         value_maint - value_init (docs/collateral.md). Non-strict: markets
         and assets with an invalid price are skipped and the flag is False.
    """
    upnl: int256 = 0
    total: uint256 = 0
    im: uint256 = 0
    mm: uint256 = 0
    all_ok: bool = True
    for i: uint256 in range(MAX_POSITIONS):
        if i >= meta & 255:
            break
        market: uint256 = (meta >> (16 + 8 * i)) & MASK8
        price: uint256 = hot_price
        index: int256 = hot_index
        if market != hot:
            ok: bool = False
            price, ok = self._price(market, strict)
            if not ok:
                all_ok = False
                continue
            index = self._index_now(price, self._oi[market], self._funding[market])
        notional: uint256 = 0
        pnl: int256 = 0
        funding: int256 = 0
        notional, pnl, funding = self._position_value(
            self._pos_size[owner][sub][market], self._pos_data[owner][sub][market], price, index
        )
        upnl += pnl - funding
        total += notional
        im_m: uint256 = 0
        mm_m: uint256 = 0
        im_m, mm_m = self._requirement(market, notional, self._rates[market])
        im += im_m
        mm += mm_m
    equity: int256 = balance * _SCALE_I + upnl
    gap: uint256 = 0
    if meta & COLLATERAL_BIT != 0:
        value_init: uint256 = 0
        value_maint: uint256 = 0
        ok: bool = False
        value_init, value_maint, ok = staticcall ICollateral(COLLATERAL).value(owner, sub, strict)
        equity += convert(value_maint, int256)
        gap = value_maint - value_init
        all_ok = all_ok and ok
    return equity, upnl, total, im, mm, gap, all_ok


@pure
@internal
def _position_value(size: int256, data: uint256, price: uint256, index: int256) -> (uint256, int256, int256):
    """
    @dev One position at `price` and funding `index`:
         notional = |s| P (up), pnl = s (P - entry) (floor),
         funding owed = s (index - last index) (ceil), all WAD.
    """
    return (
        self._mul_div_up(self._abs(size), price, WAD),
        self._floor_div(size * (convert(price, int256) - convert(data & MASK128, int256)), WAD_I),
        self._ceil_div(size * (index - self._unpack_i128(data >> 128)), WAD_I),
    )


@view
@internal
def _position_risk(
    market: uint256, size: int256, data: uint256, price: uint256, index: int256, rates: uint256
) -> (int256, uint256):
    """
    @dev One position's upnl and maintenance requirement (as in `_value_positions`).
    """
    notional: uint256 = 0
    pnl: int256 = 0
    funding: int256 = 0
    notional, pnl, funding = self._position_value(size, data, price, index)
    return pnl - funding, self._requirement(market, notional, rates)[1]


@view
@internal
def _requirement(market: uint256, notional: uint256, rates: uint256) -> (uint256, uint256):
    """
    @dev A position's IM and MM: `notional * rate` (up), or the risk model's
         volatility and tiers for a market flagged with RISK_BIT.
    """
    if rates & RISK_BIT != 0:
        return staticcall IRiskModel(RISK_MODEL).requirements(market, notional, rates)
    return self._mul_div_up(notional, rates & MASK64, WAD), self._mul_div_up(notional, (rates >> 64) & MASK64, WAD)


@internal
def _sample(market: uint256, price: uint256, rates: uint256):
    if rates & RISK_BIT != 0:
        extcall IRiskModel(RISK_MODEL).sample(market, price)


@view
@internal
def _in_band(status: uint8, equity: int256, mm: uint256) -> bool:
    """
    @dev Margin-call band: not liquidatable, but below mm * (1 + call_buffer) (up).
    """
    return status == MARGIN_CALL and equity < convert(
        self._mul_div_up(mm, WAD + (self._call_params & MASK64), WAD), int256
    )


@view
@internal
def _check_healthy(
    owner: address,
    sub: uint16,
    meta: uint256,
    balance: int256,
    hot: uint256,
    hot_price: uint256,
    hot_index: int256,
    transfer: bool,
):
    equity: int256 = 0
    im: uint256 = 0
    mm: uint256 = 0
    equity, im, mm = self._valuation(owner, sub, meta, balance, hot, hot_price, hot_index, transfer)
    assert self._status(meta, balance, equity, im, mm) == HEALTHY, "engine: unhealthy"


@pure
@internal
def _status(meta: uint256, balance: int256, equity: int256, im: uint256, mm: uint256) -> uint8:
    if meta & 255 == 0 and balance >= 0:
        return HEALTHY
    if equity < 0:
        return BANKRUPT
    if equity < convert(mm, int256):
        return LIQUIDATABLE
    if equity < convert(im, int256):
        return MARGIN_CALL
    return HEALTHY


@view
@internal
def _index_now(price: uint256, oi: uint256, fslot: uint256) -> int256:
    """
    @dev Funding index brought forward to now:
         rate = floor(rate_max * (L - S) / (L + S)) per second,
         index += floor(P * rate * dt / WAD).
    """
    index: int256 = self._unpack_i128(fslot & MASK128)
    last: uint256 = (fslot >> 128) & MASK64
    long_oi: uint256 = oi & MASK128
    short_oi: uint256 = oi >> 128
    if block.timestamp <= last or long_oi + short_oi == 0:
        return index
    rate: int256 = self._floor_div(
        convert(fslot >> 192, int256) * (convert(long_oi, int256) - convert(short_oi, int256)),
        convert(long_oi + short_oi, int256),
    )
    return index + self._floor_div(convert(price, int256) * rate * convert(block.timestamp - last, int256), WAD_I)


# --------------------------------------------------------------------------
#                           Internal: collateral
# --------------------------------------------------------------------------

@internal
def _debit_checked(owner: address, sub: uint16, asset: address, amount: uint256, withdrawal: bool):
    """
    @dev Debit `amount` of `asset`; with positions or settlement debt the
         account must stay HEALTHY with the transfer margin. The settlement
         balance may not go negative here.
    """
    assert amount > 0, "engine: zero amount"
    meta: uint256 = self._meta[owner][sub]
    balance: int256 = self._meta_balance(meta)
    if asset == SETTLEMENT_ASSET:
        balance -= convert(amount, int256)
        assert balance >= 0, "engine: insufficient balance"
    else:
        holds: bool = extcall ICollateral(COLLATERAL).debit(owner, sub, asset, amount, withdrawal)
        if not holds:
            meta &= ~COLLATERAL_BIT
    self._meta[owner][sub] = self._with_balance(meta, balance)
    if meta & 255 != 0 or balance < 0:
        self._check_healthy(owner, sub, meta, balance, NO_MARKET, 0, 0, True)


@internal
def _credit(owner: address, sub: uint16, asset: address, amount: uint256, deposit: bool):
    """
    @dev Credit `amount` of `asset` (`deposit`: tokens that just arrived).
    """
    meta: uint256 = self._meta[owner][sub]
    balance: int256 = self._meta_balance(meta)
    if asset == SETTLEMENT_ASSET:
        balance += convert(amount, int256)
    else:
        extcall ICollateral(COLLATERAL).credit(owner, sub, asset, amount, deposit)
        meta |= COLLATERAL_BIT
    self._meta[owner][sub] = self._with_balance(meta, balance)


@view
@internal
def _only_configurator():
    assert msg.sender == self.configurator, "engine: not configurator"


@internal
def _pull(token: address, sender: address, amount: uint256) -> uint256:
    """
    @dev transferFrom `sender`; returns what actually arrived (the balance
         difference: fee-on-transfer and whole-balance tokens are credited
         what they delivered).
    """
    assert amount > 0, "engine: zero amount"
    before: uint256 = staticcall IERC20(token).balanceOf(self)
    ok: bool = extcall IERC20(token).transferFrom(sender, self, amount, default_return_value=True)
    assert ok, "engine: transfer failed"
    received: uint256 = staticcall IERC20(token).balanceOf(self) - before
    assert received > 0, "engine: nothing received"
    return received


@internal
def _push(token: address, receiver: address, amount: uint256):
    ok: bool = extcall IERC20(token).transfer(receiver, amount, default_return_value=True)
    assert ok, "engine: transfer failed"


@pure
@internal
def _check_dust(ok: bool):
    # No position may be left or closed below the minimum notional.
    assert ok, "engine: dust"


# --------------------------------------------------------------------------
#                            Internal: oracles
# --------------------------------------------------------------------------

@view
@internal
def _price(market: uint256, strict: bool) -> (uint256, bool):
    """
    @dev Normalised Chainlink price: answer > 0, fresh within the heartbeat,
         within bounds. Strict: reverts with the reason; else (0, False).
         Reverts for a market that is not listed.
    """
    cfg: uint256 = self._oracle[market]
    assert cfg != 0, "engine: unknown market"
    round_id: uint80 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint80 = 0
    round_id, answer, started_at, updated_at, answered_in = staticcall AggregatorV3(
        convert(convert(cfg & MASK160, uint160), address)
    ).latestRoundData()
    if answer <= 0:
        assert not strict, "oracle: price"
        return 0, False
    if updated_at == 0 or updated_at > block.timestamp or block.timestamp - updated_at > (cfg >> 160) & MASK32:
        assert not strict, "oracle: stale"
        return 0, False
    price: uint256 = convert(answer, uint256) * (cfg >> 192)
    bounds: uint256 = self._bounds[market]
    if price < bounds & MASK128 or price > bounds >> 128:
        assert not strict, "oracle: bounds"
        return 0, False
    return price, True


@internal
def _accrue(market: uint256, funding_rate_max: uint256) -> int256:
    """
    @dev Accrue a market's funding index to now and store it with
         `funding_rate_max`; returns the index.
    """
    assert market < self.market_count, "engine: unknown market"
    oi: uint256 = self._oi[market]
    fslot: uint256 = self._funding[market]
    index: int256 = self._unpack_i128(fslot & MASK128)
    if oi != 0:
        index = self._index_now(self._price(market, True)[0], oi, fslot)
    self._funding[market] = self._pack_i128(index) | (block.timestamp << 128) | (funding_rate_max << 192)
    log IMarginEngine.FundingAccrued(market=market, index=index)
    return index


# --------------------------------------------------------------------------
#                         Internal: integer helpers
# --------------------------------------------------------------------------

@pure
@internal
def _mul_div_up(x: uint256, y: uint256, d: uint256) -> uint256:
    return (x * y + d - 1) // d


@view
@internal
def _to_tokens_up(wad: uint256) -> uint256:
    # WAD value to settlement tokens, rounded up (amounts the account pays).
    return (wad + SCALE - 1) // SCALE


@pure
@internal
def _floor_div(x: int256, d: int256) -> int256:
    """
    @dev floor(x / d) for d > 0 (Vyper's signed // truncates toward zero).
    """
    q: int256 = x // d
    if x < 0 and q * d != x:
        q -= 1
    return q


@pure
@internal
def _ceil_div(x: int256, d: int256) -> int256:
    """
    @dev ceil(x / d) for d > 0.
    """
    q: int256 = x // d
    if x > 0 and q * d != x:
        q += 1
    return q


@pure
@internal
def _abs(x: int256) -> uint256:
    if x < 0:
        return convert(-x, uint256)
    return convert(x, uint256)


@pure
@internal
def _pack_i128(x: int256) -> uint256:
    """
    @dev Two's complement of an int128 in the low 128 bits.
    """
    assert x >= convert(min_value(int128), int256) and x <= convert(max_value(int128), int256)  # dev: int128 overflow
    return convert(convert(x, bytes32), uint256) & MASK128


@pure
@internal
def _meta_balance(meta: uint256) -> int256:
    """
    @dev The signed balance in the top 112 bits of an account word.
    """
    return convert(convert(meta, bytes32), int256) >> 144


@pure
@internal
def _with_balance(meta: uint256, balance: int256) -> uint256:
    """
    @dev An account word with `balance` (int112) in its top 112 bits.
    """
    assert balance >= -(2**111) and balance < 2**111  # dev: balance overflow
    return (meta & MASK144) | (convert(convert(balance, bytes32), uint256) << 144)


@pure
@internal
def _pool_vault(pool: uint256) -> int256:
    return self._unpack_i128(pool)


@pure
@internal
def _pool_insurance(pool: uint256) -> uint256:
    return (pool >> 128) & MASK127


@pure
@internal
def _pack_pool(pool: uint256, vault_assets: int256, insurance: uint256) -> uint256:
    """
    @dev A pool word with new vault assets and insurance, the pause flag kept.
    """
    assert insurance <= MASK127  # dev: insurance overflow
    return (pool & PAUSED_BIT) | (insurance << 128) | self._pack_i128(vault_assets)


@pure
@internal
def _unpack_i128(x: uint256) -> int256:
    """
    @dev Inverse of `_pack_i128` for the low 128 bits of `x`.
    """
    return convert(convert(x << 128, bytes32), int256) >> 128
