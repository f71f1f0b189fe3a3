# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title CollateralManager
@notice The collateral ledger of a MarginEngine: the listed collateral
        assets (WETH, WBTC, ERC-4626 shares...) with their oracles, weights,
        supply caps and share-rate bounds, every sub-account's balance of
        each, and their haircut value in the margin math.
@dev    The engine holds the tokens and is the only writer of balances
        (`credit`, `debit`, `seize`); the engine's `EngineConfigurator` is
        the only writer of listings (`store_asset`) and checks every bound.
        `update_rate` is open to anyone. The math, with its rounding, is
        specified in `docs/collateral.md` and mirrored by
        `margin_engine/model.py`.
"""

from .interfaces import ICollateralManager
from .interfaces import IMarginEngine

implements: ICollateralManager


interface AggregatorV3:
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view


interface IEngineView:
    def SCALE() -> uint256: view
    def SETTLEMENT_ASSET() -> address: view
    def account(owner: address, sub: uint16) -> IMarginEngine.AccountState: view
    def balance_of(owner: address, sub: uint16, asset: address) -> int256: view
    def liquidation_params() -> IMarginEngine.LiquidationParams: view
    def settle_collateral(owner: address, sub: uint16, amount: int256, holds: bool): nonpayable


# --------------------------------------------------------------------------
#                                 Constants
# --------------------------------------------------------------------------

WAD: constant(uint256) = 10**18
# @dev Assets listable: bounds the valuation loop of every account.
MAX_ASSETS: public(constant(uint256)) = 16

MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK160: constant(uint256) = 2**160 - 1
ENABLED_BIT: constant(uint256) = 2**128
LIQUIDATABLE: constant(uint8) = 2


# --------------------------------------------------------------------------
#                                  Storage
# --------------------------------------------------------------------------

# @dev The engine whose accounts these are (set once by the configurator).
engine: public(address)
# @dev The only writer of listings.
configurator: public(address)
# @dev 10**(18 - settlement decimals), read from the engine at `set_engine`.
settlement_scale: public(uint256)
# @dev The engine's settlement asset (never listed here).
settlement_asset: public(address)

# @dev Number of listed assets; ids are 0 .. asset_count - 1.
asset_count: public(uint256)
# @dev id => token.
assets: public(HashMap[uint256, address])
# @dev token => id + 1 (0: not listed).
_ids: HashMap[address, uint256]

# Per asset id, packed so that valuing one plain asset reads three slots.
# @dev feed (160 bits) | heartbeat (32 bits) << 160 | 10**(18 - feed decimals) << 192
_oracle: HashMap[uint256, uint256]
# @dev min_price (128 bits) | max_price << 128, both WAD
_bounds: HashMap[uint256, uint256]
# @dev w_init | w_maint << 64 | discount << 128 (64-bit WAD fields)
#      | 10**(18 - token decimals) << 192
_weights: HashMap[uint256, uint256]
# @dev cap (128 bits, token units) | enabled flag (bit 128)
_limits: HashMap[uint256, uint256]
# @dev ERC-4626 shares only (0 for a plain token): max_rate_growth (64 bits,
#      WAD per second) | 10**(18 - underlying decimals) << 64
_vault: HashMap[uint256, uint256]
# @dev ERC-4626 shares: the bounded rate last stored (128 bits, WAD
#      underlying per share) | its time << 128
_rate: HashMap[uint256, uint256]
# @dev Token units held in all sub-accounts (the engine holds at least this).
total_deposits: public(HashMap[uint256, uint256])

# @dev owner => sub => id => token units.
_balances: HashMap[address, HashMap[uint16, HashMap[uint256, uint256]]]
# @dev owner => sub => bit i set while the sub-account holds asset id i.
holdings: public(HashMap[address, HashMap[uint16, uint256]])


# --------------------------------------------------------------------------
#                                Constructor
# --------------------------------------------------------------------------

@deploy
def __init__(configurator: address):
    """
    @notice Deploy the ledger governed by `configurator`, which connects the
            engine (`set_engine`) when it connects its own.
    @param configurator The `EngineConfigurator`.
    """
    assert configurator != empty(address), "collateral: zero address"
    self.configurator = configurator


# --------------------------------------------------------------------------
#                              The engine only
# --------------------------------------------------------------------------

@external
def credit(owner: address, sub: uint16, asset: address, amount: uint256, deposit: bool):
    """
    @notice Add `amount` of `asset` to a sub-account.
    @dev Engine only. A `deposit` (tokens just arrived) needs the asset
         enabled and within its supply cap, and stores the bounded rate of
         a vault share; a move between sub-accounts (`deposit` False) needs
         neither.
    @param owner The account owner.
    @param sub The sub-account.
    @param asset A listed asset.
    @param amount Token units.
    @param deposit True for tokens that just arrived.
    """
    self._only_engine()
    id: uint256 = self._id(asset)
    if deposit:
        limits: uint256 = self._limits[id]
        assert limits & ENABLED_BIT != 0, "collateral: disabled"
        total: uint256 = self.total_deposits[id] + amount
        assert total <= limits & MASK128, "collateral: cap"
        self.total_deposits[id] = total
        self._store_rate(id, False)
    self._balances[owner][sub][id] += amount
    self.holdings[owner][sub] |= 1 << id


@external
def debit(owner: address, sub: uint16, asset: address, amount: uint256, withdrawal: bool) -> bool:
    """
    @notice Take `amount` of `asset` from a sub-account.
    @dev Engine only (it checks the account's health afterwards).
    @param owner The account owner.
    @param sub The sub-account.
    @param asset A listed asset.
    @param amount Token units.
    @param withdrawal True when the tokens leave the engine.
    @return Whether the sub-account still holds any collateral asset.
    """
    self._only_engine()
    id: uint256 = self._id(asset)
    holds: bool = self._take(owner, sub, id, amount)
    if withdrawal:
        self.total_deposits[id] -= amount
        self._store_rate(id, False)
    return holds


@external
def liquidate(liquidator: address, owner: address, sub: uint16, asset: address, max_repay: uint256) -> uint256:
    """
    @notice Collateral liquidation (`MarginEngine.liquidate_collateral`):
            move `asset` of an account with settlement debt to the
            liquidator's sub-account 0 at the oracle price less the
            discount, and have the engine book the repayment
            (docs/collateral.md 6).
    @dev Engine only (its unlocked `liquidate_collateral`, so that the
         account can be read here); the engine's `settle_collateral` books
         the settlement side, the account's first, after every write here.
    @param liquidator Pays from, and receives into, its sub-account 0.
    @param owner The account owner.
    @param sub The sub-account.
    @param asset The asset to seize.
    @param max_repay The most settlement-token units to repay.
    @return The token units seized.
    """
    self._only_engine()
    assert max_repay > 0, "collateral: zero amount"
    engine: address = self.engine
    balance: int256 = staticcall IEngineView(engine).balance_of(owner, sub, self.settlement_asset)
    assert balance < 0, "collateral: no debt"
    deficit: uint256 = max_value(uint256)
    state: IMarginEngine.AccountState = staticcall IEngineView(engine).account(owner, sub)
    if state.positions != 0:
        assert state.prices_ok, "collateral: price"
        assert state.status >= LIQUIDATABLE, "collateral: not liquidatable"
        buffer: uint256 = (staticcall IEngineView(engine).liquidation_params()).buffer
        deficit = convert(
            convert(self._div_up(state.mm_required * (WAD + buffer), WAD), int256) - state.equity_maint, uint256
        )
    seized: uint256 = 0
    repaid: uint256 = 0
    holds: bool = False
    seized, repaid, holds = self._seize(
        owner, sub, self._id(asset), liquidator, min(max_repay, convert(-balance, uint256)), deficit
    )
    log ICollateralManager.CollateralLiquidated(
        owner=owner, sub=sub, asset=asset, liquidator=liquidator, seized=seized, repaid=repaid
    )
    extcall IEngineView(engine).settle_collateral(owner, sub, convert(repaid, int256), holds)
    extcall IEngineView(engine).settle_collateral(liquidator, 0, -convert(repaid, int256), True)
    return seized


# --------------------------------------------------------------------------
#                                  Anyone
# --------------------------------------------------------------------------

@external
def update_rate(asset: address) -> uint256:
    """
    @notice Store an ERC-4626 share's bounded rate now (a keeper duty: the
            bound then grows from a recent rate).
    @param asset A listed vault share.
    @return The rate stored (WAD underlying per share).
    """
    id: uint256 = self._id(asset)
    assert self._vault[id] != 0, "collateral: not a vault"
    return self._store_rate(id, True)


# --------------------------------------------------------------------------
#                             The configurator
# --------------------------------------------------------------------------

@external
def set_engine(engine: address):
    """
    @notice Connect the engine; once (or again with the same engine).
    @dev Configurator only.
    @param engine The MarginEngine.
    """
    self._only_configurator()
    assert self.engine == empty(address) or self.engine == engine, "collateral: engine set"
    self.engine = engine
    self.settlement_scale = staticcall IEngineView(engine).SCALE()
    self.settlement_asset = staticcall IEngineView(engine).SETTLEMENT_ASSET()


@external
def set_configurator(configurator: address):
    """
    @notice Hand the listing rights to a successor configurator.
    @dev Configurator only (its `migrate`).
    @param configurator The new configurator.
    """
    self._only_configurator()
    assert configurator != empty(address), "collateral: zero address"
    self.configurator = configurator


@external
def store_asset(asset: address, oracle: uint256, bounds: uint256, weights: uint256, limits: uint256, vault_word: uint256):
    """
    @notice List `asset`, or store new words for a listed one.
    @dev Configurator only (it validates and logs). Layouts: see the storage
         declarations. Listing a vault share stores its live rate as the
         first bounded rate; a listed asset keeps its vault word and rate.
    @param asset The token.
    @param oracle feed | heartbeat << 160 | 10**(18 - feed decimals) << 192.
    @param bounds min_price | max_price << 128 (WAD).
    @param weights w_init | w_maint << 64 | discount << 128 | 10**(18 - decimals) << 192.
    @param limits cap | enabled << 128.
    @param vault_word max_rate_growth | 10**(18 - underlying decimals) << 64 (0: plain token).
    """
    self._only_configurator()
    id: uint256 = self._ids[asset]
    if id == 0:
        assert asset != self.settlement_asset and self.engine != empty(address), "collateral: settlement asset"
        id = self.asset_count
        assert id < MAX_ASSETS, "collateral: too many assets"
        self.asset_count = id + 1
        self.assets[id] = asset
        self._ids[asset] = id + 1
        self._vault[id] = vault_word
        if vault_word != 0:
            rate: uint256 = self._live_rate(asset, weights >> 192, vault_word, True)[0]
            assert rate > 0 and rate <= MASK128, "collateral: rate"
            self._rate[id] = rate | (block.timestamp << 128)
        log ICollateralManager.CollateralListed(asset=asset, id=id, vault=vault_word != 0)
    else:
        id -= 1
    self._oracle[id] = oracle
    self._bounds[id] = bounds
    self._weights[id] = weights
    self._limits[id] = limits


# --------------------------------------------------------------------------
#                                   Views
# --------------------------------------------------------------------------

@view
@external
@reentrant
def value(owner: address, sub: uint16, strict: bool) -> (uint256, uint256, bool):
    """
    @notice The weighted USD value of a sub-account's collateral.
    @dev Each asset: usd = balance * scale * price // WAD, then
         usd * w // WAD, all rounded down. Strict: reverts on an invalid
         price; else such assets are left out and the flag is False.
         Not locked: `liquidate` reads the account's equity from the engine,
         which values its collateral here, before it writes anything.
    @param owner The account owner.
    @param sub The sub-account.
    @param strict Revert on an invalid price.
    @return value_init, value_maint (WAD USD) and whether every price was valid.
    """
    held: uint256 = self.holdings[owner][sub]
    value_init: uint256 = 0
    value_maint: uint256 = 0
    all_ok: bool = True
    for id: uint256 in range(MAX_ASSETS):
        if held >> id == 0:
            break
        if (held >> id) & 1 == 0:
            continue
        price: uint256 = 0
        ok: bool = False
        price, ok = self._price(id, strict)
        if not ok:
            all_ok = False
            continue
        weights: uint256 = self._weights[id]
        usd: uint256 = self._balances[owner][sub][id] * (weights >> 192) * price // WAD
        value_init += usd * (weights & MASK64) // WAD
        value_maint += usd * ((weights >> 64) & MASK64) // WAD
    return value_init, value_maint, all_ok


@view
@external
def balance_of(owner: address, sub: uint16, asset: address) -> uint256:
    """
    @notice A sub-account's balance of a collateral asset.
    @param owner The account owner.
    @param sub The sub-account.
    @param asset The asset.
    @return Token units (0 for an asset that is not listed).
    """
    id: uint256 = self._ids[asset]
    if id == 0:
        return 0
    return self._balances[owner][sub][id - 1]


@view
@external
def asset_id(asset: address) -> uint256:
    """
    @notice A listed asset's id.
    @param asset The token.
    @return The id (reverts for an asset that is not listed).
    """
    return self._id(asset)


@view
@external
def collateral(asset: address) -> ICollateralManager.CollateralConfig:
    """
    @notice A listed asset's configuration, decoded.
    @param asset The token.
    @return Oracle, bounds, weights, cap, flags and total deposits.
    """
    id: uint256 = self._id(asset)
    oracle: uint256 = self._oracle[id]
    weights: uint256 = self._weights[id]
    limits: uint256 = self._limits[id]
    vault_word: uint256 = self._vault[id]
    bounds: uint256 = self._bounds[id]
    return ICollateralManager.CollateralConfig(
        asset=asset,
        feed=convert(convert(oracle & MASK160, uint160), address),
        heartbeat=(oracle >> 160) & MASK32,
        min_price=bounds & MASK128,
        max_price=bounds >> 128,
        decimals=self._log10(WAD // (weights >> 192)),
        w_init=weights & MASK64,
        w_maint=(weights >> 64) & MASK64,
        discount=(weights >> 128) & MASK64,
        cap=limits & MASK128,
        enabled=limits & ENABLED_BIT != 0,
        vault=vault_word != 0,
        max_rate_growth=vault_word & MASK64,
        total=self.total_deposits[id],
    )


@view
@external
def collateral_price(asset: address) -> (uint256, bool):
    """
    @notice A listed asset's price in the margin math now (WAD USD per whole
            token; a vault share's through its bounded rate).
    @param asset The token.
    @return Price (0 when invalid) and validity.
    """
    return self._price(self._id(asset), False)


@view
@external
def asset_words(asset: address) -> (uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice A listed asset's packed words, read by the configurator.
    @param asset The token.
    @return oracle, bounds, weights, limits, vault word, rate word.
    """
    id: uint256 = self._id(asset)
    return self._oracle[id], self._bounds[id], self._weights[id], self._limits[id], self._vault[id], self._rate[id]


# --------------------------------------------------------------------------
#                                 Internal
# --------------------------------------------------------------------------

@view
@internal
def _only_engine():
    assert msg.sender == self.engine, "collateral: not engine"


@view
@internal
def _only_configurator():
    assert msg.sender == self.configurator, "collateral: not configurator"


@view
@internal
def _id(asset: address) -> uint256:
    id: uint256 = self._ids[asset]
    assert id != 0, "collateral: unknown asset"
    return id - 1


@internal
def _take(owner: address, sub: uint16, id: uint256, amount: uint256) -> bool:
    """
    @dev Debit a balance; returns whether the sub-account still holds any asset.
    """
    held: uint256 = self._balances[owner][sub][id]
    assert held >= amount, "collateral: insufficient balance"
    self._balances[owner][sub][id] = held - amount
    holdings: uint256 = self.holdings[owner][sub]
    if held == amount:
        holdings &= ~(1 << id)
        self.holdings[owner][sub] = holdings
    return holdings != 0


@internal
def _store_rate(id: uint256, strict: bool) -> uint256:
    """
    @dev Store a vault share's bounded rate now and return it (WAD for a
         plain token). A share whose rate cannot be read reverts when
         `strict`, else keeps its stored rate (deposits and withdrawals
         never depend on the share's vault).
    """
    vault_word: uint256 = self._vault[id]
    if vault_word == 0:
        return WAD
    asset: address = self.assets[id]
    live: uint256 = 0
    ok: bool = False
    live, ok = self._live_rate(asset, self._weights[id] >> 192, vault_word, strict)
    if not ok:
        return self._rate[id] & MASK128
    rate: uint256 = self._bounded_rate(id, live, vault_word)
    self._rate[id] = rate | (block.timestamp << 128)
    log ICollateralManager.RateUpdated(asset=asset, live_rate=live, rate=rate)
    return rate


@view
@internal
def _price(id: uint256, strict: bool) -> (uint256, bool):
    """
    @dev The price of one whole token (WAD USD): the feed's, times the
         bounded rate for a vault share.
    """
    price: uint256 = 0
    ok: bool = False
    price, ok = self._feed_price(id, strict)
    vault_word: uint256 = self._vault[id]
    if not ok or vault_word == 0:
        return price, ok
    live: uint256 = 0
    live, ok = self._live_rate(self.assets[id], self._weights[id] >> 192, vault_word, strict)
    if not ok:
        return 0, False
    return price * self._bounded_rate(id, live, vault_word) // WAD, True


@view
@internal
def _bounded_rate(id: uint256, live: uint256, vault_word: uint256) -> uint256:
    """
    @dev min(live, last + last * growth * (now - last time) // WAD).
    """
    word: uint256 = self._rate[id]
    last: uint256 = word & MASK128
    return min(min(live, last + last * (vault_word & MASK64) * (block.timestamp - (word >> 128)) // WAD), MASK128)


@view
@internal
def _live_rate(asset: address, token_scale: uint256, vault_word: uint256, strict: bool) -> (uint256, bool):
    """
    @dev convertToAssets(one share) as WAD underlying per share, and whether
         it could be read (a reverting or zero answer cannot; strict: reverts).
    """
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        asset,
        abi_encode(WAD // token_scale, method_id=method_id("convertToAssets(uint256)")),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    rate: uint256 = 0
    if success and len(response) == 32:
        rate = convert(response, uint256) * (vault_word >> 64)
    assert rate > 0 or not strict, "collateral: rate"
    return rate, rate > 0


@view
@internal
def _feed_price(id: uint256, strict: bool) -> (uint256, bool):
    """
    @dev Normalised Chainlink price: answer > 0, fresh within the heartbeat,
         within bounds (as the engine's markets). Strict: reverts with the
         reason; else (0, False).
    """
    cfg: uint256 = self._oracle[id]
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
    bounds: uint256 = self._bounds[id]
    if price < bounds & MASK128 or price > bounds >> 128:
        assert not strict, "oracle: bounds"
        return 0, False
    return price, True


@internal
def _seize(
    owner: address, sub: uint16, id: uint256, liquidator: address, max_repay: uint256, deficit: uint256
) -> (uint256, uint256, bool):
    """
    @dev The amounts of docs/collateral.md 6 (seized rounded down, a capped
         repayment up), moved from the account to the liquidator's
         sub-account 0. Returns seized, repaid and whether the account
         still holds any collateral.
    """
    weights: uint256 = self._weights[id]
    rate: uint256 = self._store_rate(id, True)
    price: uint256 = self._feed_price(id, True)[0] * rate // WAD
    assert price > 0, "collateral: rate"
    scale: uint256 = self.settlement_scale
    discount: uint256 = (weights >> 128) & MASK64
    w_maint: uint256 = (weights >> 64) & MASK64
    token_scale: uint256 = weights >> 192
    repay: uint256 = max_repay
    if deficit != max_value(uint256) and w_maint + discount < WAD:
        # Smallest repayment restoring the target: r (1 - d - w) / (1 - d) >= deficit.
        need: uint256 = self._div_up(self._div_up(deficit * (WAD - discount), WAD - discount - w_maint), scale)
        repay = min(repay, need)
    seized: uint256 = repay * scale * WAD // (WAD - discount) * WAD // (price * token_scale)
    held: uint256 = self._balances[owner][sub][id]
    if seized > held:
        seized = held
        repay = min(
            self._div_up(self._div_up(held * token_scale * price // WAD * (WAD - discount), WAD), scale), repay
        )
    assert seized > 0 and repay > 0, "collateral: nothing to seize"
    holds: bool = self._take(owner, sub, id, seized)
    self._balances[liquidator][0][id] += seized
    self.holdings[liquidator][0] |= 1 << id
    return seized, repay, holds


@pure
@internal
def _div_up(x: uint256, d: uint256) -> uint256:
    return (x + d - 1) // d


@pure
@internal
def _log10(x: uint256) -> uint256:
    n: uint256 = 0
    y: uint256 = x
    for i: uint256 in range(18):
        if y < 10:
            break
        y //= 10
        n += 1
    return n
