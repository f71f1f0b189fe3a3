# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title MarginLens
@notice Read-only views over a MarginEngine that would not fit in the
        engine's 24,576 bytes: decoded market configuration and state, a
        sub-account's open markets and mode, liquidation prices, and the
        batch views liquidator bots read: snapshots of many accounts in one
        call (by key or by page of the engine's list of accounts with open
        positions), every market at once, and liquidation quotes.
@dev    Stateless; it reads only the engine's public views, so it can be
        redeployed at will. Nothing here can stop new risk or exits: it has
        no state-changing function. The batch views never revert because of
        one account or market: engine views that call a price feed are made
        with `raw_call` and a failure is reported in an `ok` flag.
"""

from .interfaces import IMarginEngine
from .interfaces import ICollateralManager

WAD: constant(uint256) = 10**18
MASK8: constant(uint256) = 2**8 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK63: constant(uint256) = 2**63 - 1
RISK_BIT: constant(uint256) = 2**63
MASK128: constant(uint256) = 2**128 - 1
MASK160: constant(uint256) = 2**160 - 1
MAX_POSITIONS: constant(uint256) = 8
# @dev CollateralManager.MAX_ASSETS.
MAX_ASSETS: constant(uint256) = 16
# @dev Bit 9 of the engine's account word: the sub-account holds a collateral asset.
COLLATERAL_BIT: constant(uint256) = 512
MAX_MARKETS: constant(uint256) = 64
# @dev Most accounts one batch view returns (about 30k gas each for one position).
MAX_BATCH: public(constant(uint256)) = 200
LIQUIDATABLE: constant(uint8) = 2


# @dev An account: owner and sub-account.
struct AccountKey:
    owner: address
    sub: uint16


# @dev A stored position: what the reference model needs to value it.
struct PositionSnapshot:
    market: uint256
    size: int256            # base units, 18 decimals, positive = long
    entry_price: uint256    # WAD
    funding_index: int256   # market funding index at the last settlement


# @dev One account as a bot reads it: the ledger and the engine's valuation.
struct AccountSnapshot:
    owner: address
    sub: uint16
    balance: int256                      # settlement-token units
    isolated: bool
    ok: bool                             # the engine's views answered (else state and positions are empty)
    state: IMarginEngine.AccountState    # the engine's `account()`
    positions: DynArray[PositionSnapshot, MAX_POSITIONS]
    collateral: bool                     # holds a collateral asset (the engine's COLLATERAL_BIT)


# @dev One collateral asset a sub-account holds (`collateral_of`).
struct CollateralHolding:
    asset: address
    balance: uint256         # token units
    price: uint256           # WAD USD per whole token (a vault share's through its bounded rate), 0 when invalid
    price_ok: bool
    value_init: uint256      # usd * w_init // WAD, usd = balance * scale * price // WAD (0 when invalid)
    value_maint: uint256     # usd * w_maint // WAD


# @dev One market: its price now, parameters and stored funding state.
struct MarketSnapshot:
    market: uint256
    price: uint256                       # WAD, 0 when invalid
    price_ok: bool
    params: IMarginEngine.MarketParams
    long_oi: uint256
    short_oi: uint256
    funding_index: int256                # stored index (bring it forward to now off-chain)
    last_funding_time: uint256


# @dev What `liquidate(owner, sub, market, |size|)` would do in this block.
struct LiquidationQuote:
    liquidatable: bool       # status LIQUIDATABLE or BANKRUPT with valid prices
    size: uint256            # base units closed (0: not liquidatable, or no position)
    price: uint256           # execution (oracle) price, WAD
    penalty: uint256         # settlement-token units paid by the account
    reward: uint256          # credited to the liquidator's sub-account 0
    insurance_share: uint256 # penalty - reward, to the insurance fund


interface IEngineWords:
    def market_words(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256): view
    def account_meta(owner: address, sub: uint16) -> uint256: view
    def oracle_price(market: uint256) -> (uint256, bool): view
    def active_count() -> uint256: view
    def active_accounts(index: uint256) -> uint256: view
    def market_count() -> uint256: view
    def liquidation_params() -> IMarginEngine.LiquidationParams: view
    def SCALE() -> uint256: view
    def SETTLEMENT_ASSET() -> address: view
    def paused() -> bool: view
    def configurator() -> address: view
    def RISK_MODEL() -> address: view
    def COLLATERAL() -> address: view


interface ICollateralView:
    def holdings(owner: address, sub: uint16) -> uint256: view
    def assets(id: uint256) -> address: view
    def balance_of(owner: address, sub: uint16, asset: address) -> uint256: view
    def collateral(asset: address) -> ICollateralManager.CollateralConfig: view
    def collateral_price(asset: address) -> (uint256, bool): view


interface IConfiguratorView:
    def margin_params() -> (uint256, uint256): view


interface IRiskView:
    def requirements(market: uint256, notional: uint256, rates: uint256) -> (uint256, uint256): view
    def base_rates(market: uint256, rates: uint256) -> (uint256, uint256): view
    def volatility(market: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint256): view
    def mm_ramp(market: uint256) -> (uint256, uint256, uint256, uint256): view
    def tiers(market: uint256) -> (uint256, uint256, uint256, uint256): view


# @dev A market's margin rates now and what drives them (`market_risk`).
struct MarketRisk:
    im_rate: uint256            # base (first-bracket) IM rate in force, WAD
    mm_rate: uint256            # base MM rate in force, WAD
    uses_risk_model: bool       # requirements come from the RiskModel
    var: uint256                # volatility: variance per second (WAD), 0 without
    sigma_daily: uint256        # volatility: daily standard deviation (WAD, up)
    vol_im_rate: uint256        # volatility IM rate (before the static floor)
    vol_mm_rate: uint256        # volatility MM rate in force
    vol_mm_target: uint256      # where a volatility MM ramp is heading
    vol_ramp_end: uint256       # end of that ramp (timestamp; past or 0 when none)
    mm_ramp: uint256[4]         # static mmr ramp: old, new, start, end (zeros when none)
    tiers: uint256              # tier schedule word (docs/risk-model.md 10.2)
    old_tiers: uint256          # the schedule MM ramps away from
    tiers_ramp_start: uint256
    tiers_ramp_end: uint256


# @dev An account's requirements relative to its notional (`account_rates`).
struct AccountRates:
    notional: uint256           # total notional, WAD USD
    im_required: uint256
    mm_required: uint256
    im_rate: uint256            # im_required / notional (WAD, down), 0 when flat
    mm_rate: uint256            # mm_required / notional (WAD, down)
    prices_ok: bool


# @dev The engine read by every view.
ENGINE: public(immutable(address))


@deploy
def __init__(engine: address):
    """
    @notice Deploy a lens over `engine`.
    @param engine The MarginEngine.
    """
    ENGINE = engine


@view
@external
def market_params(market: uint256) -> IMarginEngine.MarketParams:
    """
    @notice A market's risk parameters.
    @param market The market id.
    @return The parameters.
    """
    return self._params(market, self._words(market))


@view
@external
def oracle_config(market: uint256) -> IMarginEngine.OracleConfig:
    """
    @notice A market's feed, heartbeat, feed decimals and price bounds.
    @param market The market id.
    @return The oracle configuration.
    """
    words: uint256[6] = self._words(market)
    multiplier: uint256 = words[0] >> 192
    digits: uint256 = 0
    for i: uint256 in range(18):
        if multiplier <= 1:
            break
        multiplier //= 10
        digits += 1
    return IMarginEngine.OracleConfig(
        feed=convert(convert(words[0] & MASK160, uint160), address),
        heartbeat=(words[0] >> 160) & MASK32,
        decimals=18 - digits,
        min_price=words[1] & MASK128,
        max_price=words[1] >> 128,
    )


@view
@external
def market_state(market: uint256) -> IMarginEngine.MarketState:
    """
    @notice A market's open interest and stored funding index.
    @param market The market id.
    @return Long and short OI (base units), index and last accrual time.
    """
    words: uint256[6] = self._words(market)
    return IMarginEngine.MarketState(
        long_oi=words[4] & MASK128,
        short_oi=words[4] >> 128,
        funding_index=self._index(words[5]),
        last_funding_time=(words[5] >> 128) & MASK64,
    )


@view
@external
def open_markets(owner: address, sub: uint16) -> DynArray[uint256, MAX_POSITIONS]:
    """
    @notice Market ids in which the sub-account has a position.
    @param owner The account owner.
    @param sub The sub-account.
    @return The market ids.
    """
    return self._markets_of(staticcall IEngineWords(ENGINE).account_meta(owner, sub))


@view
@external
def margin_mode(owner: address, sub: uint16) -> bool:
    """
    @notice True when the sub-account is isolated.
    @param owner The account owner.
    @param sub The sub-account.
    @return The isolated flag.
    """
    return (staticcall IEngineWords(ENGINE).account_meta(owner, sub)) & 256 != 0


@view
@external
def max_withdraw(owner: address, sub: uint16, asset: address) -> uint256:
    """
    @notice The most `withdraw(sub, asset, amount)` (or a transfer out)
            accepts now, for the settlement asset or a listed collateral
            asset.
    @dev The engine checks a withdrawal only when the account has positions
         or settlement debt (balance < 0): it must then stay HEALTHY with
         the transfer margin, i.e. equity_init >= R = max(im_required,
         transfer_margin_ratio * notional (up)) and equity_maint >= mm.
         Settlement asset: a positive balance means no debt, so a flat
         account (collateral or not) withdraws the whole balance; with
         positions each unit lowers both equities by exactly SCALE, so the
         answer is min(balance, (slack) // SCALE), slack = min(equity_init -
         R, equity_maint - mm); 0 when the balance is not positive.
         Collateral asset (balance b, scale s = 10**(18 - decimals), price p
         from `CollateralManager.collateral_price`, weights w): no positions
         and no debt, b (unchecked). Otherwise removing x units lowers
         usd = b s p // WAD by at most ceil(x s p / WAD) and the weighted
         term usd * w // WAD by at most ceil(ceil(x s p / WAD) * w / WAD)
         (floor(a) - floor(b) <= ceil(a - b)). With U = (S - 2) * WAD // w
         and x = U * WAD // (s p): x s p / WAD <= U, so the drop is at most
         ceil(U w / WAD) <= S - 2 < S, for S = slack_init against w_init and
         S = slack_maint against w_maint; the answer is the smaller x, at
         most b (2 wei to spare). 0 when the account has no such balance,
         a price is invalid (the engine's `account()` or this asset's) or
         the slack is below 2 wei.
    @param owner The account owner.
    @param sub The sub-account.
    @param asset The settlement asset or a listed collateral asset (0 for
           any other).
    @return Token units.
    """
    meta: uint256 = staticcall IEngineWords(ENGINE).account_meta(owner, sub)
    balance: int256 = self._balance_of(meta)
    held: uint256 = 0
    settlement: bool = asset == staticcall IEngineWords(ENGINE).SETTLEMENT_ASSET()
    if settlement:
        if balance <= 0:
            return 0
        held = convert(balance, uint256)
    else:
        manager: address = staticcall IEngineWords(ENGINE).COLLATERAL()
        if manager == empty(address):
            return 0
        held = staticcall ICollateralView(manager).balance_of(owner, sub, asset)
        if held == 0:
            return 0
    if meta & 255 == 0 and balance >= 0:
        return held
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    if not state.prices_ok:
        return 0
    notional: uint256 = 0
    markets: DynArray[uint256, MAX_POSITIONS] = self._markets_of(meta)
    for market: uint256 in markets:
        notional += (staticcall IMarginEngine(ENGINE).position(owner, sub, market)).notional
    haircut: uint256 = 0
    ratio: uint256 = 0
    haircut, ratio = self._margin_params()
    required: int256 = convert(max(state.im_required, self._mul_div_up(notional, ratio, WAD)), int256)
    slack_init: int256 = state.equity_init - required
    slack_maint: int256 = state.equity_maint - convert(state.mm_required, int256)
    if settlement:
        slack: int256 = min(slack_init, slack_maint)
        if slack <= 0:
            return 0
        return min(convert(slack, uint256) // staticcall IEngineWords(ENGINE).SCALE(), held)
    if slack_init < 2 or slack_maint < 2:
        return 0
    manager: address = staticcall IEngineWords(ENGINE).COLLATERAL()
    price: uint256 = 0
    ok: bool = False
    price, ok = staticcall ICollateralView(manager).collateral_price(asset)
    if not ok or price == 0:
        return 0
    config: ICollateralManager.CollateralConfig = staticcall ICollateralView(manager).collateral(asset)
    unit: uint256 = 10 ** (18 - config.decimals) * price
    x_init: uint256 = (convert(slack_init - 2, uint256) * WAD // config.w_init) * WAD // unit
    x_maint: uint256 = (convert(slack_maint - 2, uint256) * WAD // config.w_maint) * WAD // unit
    return min(min(x_init, x_maint), held)


@view
@external
def collateral_of(owner: address, sub: uint16) -> DynArray[CollateralHolding, MAX_ASSETS]:
    """
    @notice The collateral assets a sub-account holds, each with its
            balance, price and weighted value as the engine counts them.
    @dev Read from the engine's `CollateralManager` (`engine.COLLATERAL()`):
         the assets of the `holdings` bits, in id order. Values as
         `CollateralManager.value` (docs/collateral.md 4): usd = balance *
         scale * price // WAD, value = usd * w // WAD; an asset whose price
         is invalid has price 0, `price_ok` False and zero values.
    @param owner The account owner.
    @param sub The sub-account.
    @return One entry per asset held (empty without a manager).
    """
    result: DynArray[CollateralHolding, MAX_ASSETS] = []
    manager: address = staticcall IEngineWords(ENGINE).COLLATERAL()
    if manager == empty(address):
        return result
    held: uint256 = staticcall ICollateralView(manager).holdings(owner, sub)
    for id: uint256 in range(MAX_ASSETS):
        if held >> id == 0:
            break
        if (held >> id) & 1 == 0:
            continue
        holding: CollateralHolding = empty(CollateralHolding)
        holding.asset = staticcall ICollateralView(manager).assets(id)
        holding.balance = staticcall ICollateralView(manager).balance_of(owner, sub, holding.asset)
        holding.price, holding.price_ok = staticcall ICollateralView(manager).collateral_price(holding.asset)
        if holding.price_ok:
            config: ICollateralManager.CollateralConfig = staticcall ICollateralView(manager).collateral(holding.asset)
            usd: uint256 = holding.balance * 10 ** (18 - config.decimals) * holding.price // WAD
            holding.value_init = usd * config.w_init // WAD
            holding.value_maint = usd * config.w_maint // WAD
        result.append(holding)
    return result


@view
@external
def max_position_size(owner: address, sub: uint16, market: uint256, is_long: bool) -> uint256:
    """
    @notice The largest `size_delta` (base units) that `modify_position`
            would accept now in the given direction, as far as margin, the
            open-interest cap and the minimum notional go.
    @dev Conservative: the equity after the trade is counted 3 token units
         and 8 wei short (the funding, PnL and entry roundings of the
         trade), so the true maximum may be slightly larger, never smaller.
         Against an opposite position the answer includes closing it (a
         flip). 0 while paused, with an invalid price, when the position cap
         or isolation forbids a new market, or when nothing fits.
    @param owner The account owner.
    @param sub The sub-account.
    @param market The market id.
    @param is_long True for a buy.
    @return Base units (18 decimals).
    """
    if staticcall IEngineWords(ENGINE).paused():
        return 0
    meta: uint256 = staticcall IEngineWords(ENGINE).account_meta(owner, sub)
    pos: IMarginEngine.Position = staticcall IMarginEngine(ENGINE).position(owner, sub, market)
    if pos.size == 0 and (meta & 255 >= MAX_POSITIONS or (meta & 256 != 0 and meta & 255 != 0)):
        return 0
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    price: uint256 = 0
    ok: bool = False
    price, ok = staticcall IEngineWords(ENGINE).oracle_price(market)
    if not ok or not state.prices_ok:
        return 0
    words: uint256[6] = self._words(market)
    scale: uint256 = staticcall IEngineWords(ENGINE).SCALE()
    haircut: uint256 = 0
    ratio: uint256 = 0
    haircut, ratio = self._margin_params()

    size: uint256 = convert(abs(pos.size), uint256)
    flip: bool = pos.size != 0 and (pos.size > 0) != is_long
    # Unrealised PnL after the trade: a flip realises this market's part.
    upnl: int256 = state.equity_maint - self._balance_of(meta) * convert(scale, int256)
    if flip:
        upnl -= pos.unrealized_pnl
    budget: int256 = state.equity_maint - convert(3 * scale + 8 + self._mul_div_up(convert(max(upnl, 0), uint256), haircut, WAD), int256)
    # IM of the other markets; room on the side the trade adds to.
    base_im: uint256 = state.im_required - self._requirement(market, pos.notional, words[2])[0]
    side_oi: uint256 = words[4] & MASK128
    if not is_long:
        side_oi = words[4] >> 128
    if side_oi >= words[3] & MASK128:
        return 0
    room: uint256 = (words[3] & MASK128) - side_oi  # base units more on that side
    lo: uint256 = 0
    hi: uint256 = room
    if flip:
        lo = size
        hi = size + room
    # Largest q in (lo, hi] whose margin fits: the need and the fee both
    # grow with q, so the fitting sizes are those up to a bound.
    for i: uint256 in range(256):
        if lo >= hi:
            break
        mid: uint256 = hi - (hi - lo) // 2
        if self._fits(market, mid, size, flip, price, words, scale, base_im, budget):
            lo = mid
        else:
            hi = mid - 1
    if flip and lo == size:
        return size  # no flip fits; a full close always does
    new_size: uint256 = size + lo
    if flip:
        new_size = lo - size
    if lo == 0 or self._mul_div_up(new_size, price, WAD) < words[3] >> 128:
        # Below the minimum notional, and anything larger does not fit.
        if flip:
            return size
        return 0
    return lo


@view
@external
def liquidation_price(owner: address, sub: uint16, market: uint256) -> uint256:
    """
    @notice The price of `market` at which the account reaches its
            maintenance margin, other prices unchanged.
    @dev slack = equity_maint - mm_required;
         long:  P - slack * WAD / (|s| (1 - mmr)),
         short: P + slack * WAD / (|s| (1 + mmr)), floored (docs/engine-spec.md).
         Ignores rounding and funding accrued later. 0 when there is none or
         a price is invalid.
    @param owner The account owner.
    @param sub The sub-account.
    @param market The market id.
    @return Price (WAD), or 0.
    """
    pos: IMarginEngine.Position = staticcall IMarginEngine(ENGINE).position(owner, sub, market)
    if pos.size == 0 or not pos.price_ok:
        return 0
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    if not state.prices_ok:
        return 0
    price: uint256 = 0
    ok: bool = False
    price, ok = staticcall IEngineWords(ENGINE).oracle_price(market)
    mmr: uint256 = self._liquidation_mmr(market, pos.notional, self._words(market)[2])
    slack: int256 = state.equity_maint - convert(state.mm_required, int256)
    result: int256 = 0
    if pos.size > 0:
        denom: int256 = pos.size * convert(WAD - mmr, int256) // 10**18
        if denom == 0:
            return 0
        result = convert(price, int256) - self._floor_div(slack * 10**18, denom)
    else:
        denom: int256 = -pos.size * convert(WAD + mmr, int256) // 10**18
        if denom == 0:
            return 0
        result = convert(price, int256) + self._floor_div(slack * 10**18, denom)
    if result <= 0:
        return 0
    return convert(result, uint256)


@view
@external
def market_risk(market: uint256) -> MarketRisk:
    """
    @notice A market's base IM and MM rates now, its volatility estimate,
            its tier schedule, and any ramp in progress.
    @param market The market id.
    @return The snapshot (volatility and tier fields zero when unused).
    """
    words: uint256[6] = self._words(market)
    params: IMarginEngine.MarketParams = self._params(market, words)
    result: MarketRisk = empty(MarketRisk)
    result.im_rate = params.imr
    result.mm_rate = params.mmr
    result.uses_risk_model = words[2] & RISK_BIT != 0
    risk: address = self._risk()
    a: uint256 = 0
    b: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    result.var, result.sigma_daily, a, b, result.vol_im_rate, result.vol_mm_rate, result.vol_mm_target, result.vol_ramp_end = staticcall IRiskView(risk).volatility(market)
    a, b, c, d = staticcall IRiskView(risk).mm_ramp(market)
    result.mm_ramp = [a, b, c, d]
    result.tiers, result.old_tiers, result.tiers_ramp_start, result.tiers_ramp_end = staticcall IRiskView(risk).tiers(market)
    return result


@view
@external
def margin_params() -> (uint256, uint256):
    """
    @notice The engine's initial-margin terms (kept by its configurator):
            upnl haircut and transfer margin ratio (WAD).
    """
    return self._margin_params()


@view
@external
def account_rates(owner: address, sub: uint16) -> AccountRates:
    """
    @notice An account's effective margin rates: its requirements (the
            engine's `account()`) over its total notional, tiers and
            volatility included.
    @param owner The account owner.
    @param sub The sub-account.
    @return Notional, requirements and rates (0 when flat).
    """
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    result: AccountRates = empty(AccountRates)
    result.im_required = state.im_required
    result.mm_required = state.mm_required
    result.prices_ok = state.prices_ok
    markets: DynArray[uint256, MAX_POSITIONS] = self._markets_of(staticcall IEngineWords(ENGINE).account_meta(owner, sub))
    for market: uint256 in markets:
        result.notional += (staticcall IMarginEngine(ENGINE).position(owner, sub, market)).notional
    if result.notional != 0:
        result.im_rate = state.im_required * WAD // result.notional
        result.mm_rate = state.mm_required * WAD // result.notional
    return result


# --------------------------------------------------------------------------
#                              Views for bots
# --------------------------------------------------------------------------

@view
@external
def accounts(keys: DynArray[AccountKey, MAX_BATCH]) -> DynArray[AccountSnapshot, MAX_BATCH]:
    """
    @notice Snapshots of many accounts in one call.
    @dev Never reverts because of one account (see `AccountSnapshot.ok`).
    @param keys Up to `MAX_BATCH` (owner, sub) pairs.
    @return One snapshot per key, in order.
    """
    result: DynArray[AccountSnapshot, MAX_BATCH] = []
    for key: AccountKey in keys:
        result.append(self._snapshot(key.owner, key.sub))
    return result


@view
@external
def active_accounts(start: uint256, count: uint256) -> (uint256, DynArray[AccountSnapshot, MAX_BATCH]):
    """
    @notice A page of the engine's list of accounts with open positions,
            as snapshots: entries `start` .. `start + count - 1`.
    @dev The list changes as positions open and close (a leaving account's
         place is taken by the last entry), so a scan across blocks may miss
         or repeat an account that moved: read all pages at one block.
    @param start First index.
    @param count Entries wanted (at most `MAX_BATCH` are returned).
    @return The list's length and the page.
    """
    total: uint256 = staticcall IEngineWords(ENGINE).active_count()
    result: DynArray[AccountSnapshot, MAX_BATCH] = []
    for i: uint256 in range(MAX_BATCH):
        if i >= count or start + i >= total:
            break
        entry: uint256 = staticcall IEngineWords(ENGINE).active_accounts(start + i)
        result.append(self._snapshot(convert(convert(entry & MASK160, uint160), address), convert(entry >> 160, uint16)))
    return total, result


@view
@external
def markets() -> DynArray[MarketSnapshot, MAX_MARKETS]:
    """
    @notice Every market's price, parameters and stored funding state.
    @dev A feed that reverts gives `price_ok` False instead of a revert.
    @return One snapshot per market id.
    """
    result: DynArray[MarketSnapshot, MAX_MARKETS] = []
    count: uint256 = staticcall IEngineWords(ENGINE).market_count()
    for market: uint256 in range(MAX_MARKETS):
        if market >= count:
            break
        words: uint256[6] = self._words(market)
        price: uint256 = 0
        ok: bool = False
        price, ok = self._oracle_price(market)
        result.append(
            MarketSnapshot(
                market=market,
                price=price,
                price_ok=ok,
                params=self._params(market, words),
                long_oi=words[4] & MASK128,
                short_oi=words[4] >> 128,
                funding_index=self._index(words[5]),
                last_funding_time=(words[5] >> 128) & MASK64,
            )
        )
    return result


@view
@external
def quote_liquidation(owner: address, sub: uint16, market: uint256) -> LiquidationQuote:
    """
    @notice What `liquidate(owner, sub, market, max_size)` with a `max_size`
            of the whole position would do now: the size closed, the
            penalty, the liquidator's reward and the insurance fund's share.
    @dev Mirrors `MarginEngine.liquidate` (docs/engine-spec.md "Liquidation"):
         q from the deficit to `mm_required * (1 + buffer)` plus 3 token
         units and 8 wei, a dust remainder closed too; the penalty capped at
         the equity less 2 units; the reward clamped to [floor, cap] and to
         the penalty. Exact in the block it is read, except that a
         liquidation first samples a volatility market whose epoch has
         turned (`RiskModel.volatility` next sample time), which may move its
         MM rate; funding moves it later.
         A zero quote with `liquidatable` False when prices are invalid or the
         status is HEALTHY or MARGIN_CALL.
    @param owner The account owner.
    @param sub The sub-account.
    @param market The market whose position would be reduced.
    @return The quote.
    """
    quote: LiquidationQuote = empty(LiquidationQuote)
    state: IMarginEngine.AccountState = staticcall IMarginEngine(ENGINE).account(owner, sub)
    if not state.prices_ok or state.status < LIQUIDATABLE:
        return quote
    quote.liquidatable = True
    pos: IMarginEngine.Position = staticcall IMarginEngine(ENGINE).position(owner, sub, market)
    if pos.size == 0:
        return quote
    ok: bool = False
    quote.price, ok = staticcall IEngineWords(ENGINE).oracle_price(market)
    words: uint256[6] = self._words(market)
    rates: uint256 = words[2]
    liq: IMarginEngine.LiquidationParams = staticcall IEngineWords(ENGINE).liquidation_params()
    scale: uint256 = staticcall IEngineWords(ENGINE).SCALE()

    # q = N / P with N = (mm (1 + b) - E + 3 units + 8) / (mmr (1 + b) - liq_fee), both up.
    target: uint256 = self._mul_div_up(state.mm_required, WAD + liq.buffer, WAD)
    deficit: uint256 = convert(convert(target, int256) - state.equity_maint, uint256) + 3 * scale + 8
    abs_size: uint256 = convert(abs(pos.size), uint256)
    denom: uint256 = self._liquidation_mmr(
        market, self._mul_div_up(abs_size, quote.price, WAD), rates
    ) * (WAD + liq.buffer) // WAD - (rates >> 192)
    q: uint256 = min(self._mul_div_up(self._mul_div_up(deficit, WAD, denom), WAD, quote.price), abs_size)
    if q < abs_size and self._mul_div_up(abs_size - q, quote.price, WAD) < words[3] >> 128:
        q = abs_size
    quote.size = q

    fee: uint256 = self._mul_div_up(self._mul_div_up(q, quote.price, WAD), rates >> 192, WAD)
    quote.penalty = min(
        (fee + scale - 1) // scale,
        convert(max(state.equity_maint - convert(2 * scale + 2, int256), 0), uint256) // scale,
    )
    quote.reward = min(
        min(max(quote.penalty * liq.liquidator_share // WAD, liq.reward_floor), liq.reward_cap), quote.penalty
    )
    quote.insurance_share = quote.penalty - quote.reward
    return quote


# --------------------------------------------------------------------------
#                                 Internal
# --------------------------------------------------------------------------

@view
@internal
def _snapshot(owner: address, sub: uint16) -> AccountSnapshot:
    """
    @dev One account: its word, the engine's `account()` and each stored
         position, with `raw_call` so that a reverting feed only clears `ok`.
    """
    meta: uint256 = staticcall IEngineWords(ENGINE).account_meta(owner, sub)
    snapshot: AccountSnapshot = empty(AccountSnapshot)
    snapshot.owner = owner
    snapshot.sub = sub
    snapshot.balance = self._balance_of(meta)
    snapshot.isolated = meta & 256 != 0
    snapshot.collateral = meta & COLLATERAL_BIT != 0
    success: bool = False
    response: Bytes[224] = b""
    success, response = raw_call(
        ENGINE,
        abi_encode(owner, sub, method_id=method_id("account(address,uint16)")),
        max_outsize=224,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not success:
        return snapshot
    snapshot.state = abi_decode(response, IMarginEngine.AccountState)
    markets: DynArray[uint256, MAX_POSITIONS] = self._markets_of(meta)
    for market: uint256 in markets:
        position: Bytes[224] = b""
        success, position = raw_call(
            ENGINE,
            abi_encode(owner, sub, market, method_id=method_id("position(address,uint16,uint256)")),
            max_outsize=224,
            is_static_call=True,
            revert_on_failure=False,
        )
        if not success:
            snapshot.state = empty(IMarginEngine.AccountState)
            snapshot.positions = []
            return snapshot
        pos: IMarginEngine.Position = abi_decode(position, IMarginEngine.Position)
        snapshot.positions.append(
            PositionSnapshot(market=market, size=pos.size, entry_price=pos.entry_price, funding_index=pos.funding_index)
        )
    snapshot.ok = True
    return snapshot


@view
@internal
def _oracle_price(market: uint256) -> (uint256, bool):
    success: bool = False
    response: Bytes[64] = b""
    success, response = raw_call(
        ENGINE,
        abi_encode(market, method_id=method_id("oracle_price(uint256)")),
        max_outsize=64,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not success:
        return 0, False
    return abi_decode(response, (uint256, bool))


@view
@internal
def _fits(
    market: uint256,
    q: uint256,
    size: uint256,
    flip: bool,
    price: uint256,
    words: uint256[6],
    scale: uint256,
    base_im: uint256,
    budget: int256,
) -> bool:
    # The position after a trade of q: |s| + q, or q - |s| for a flip.
    new_size: uint256 = size + q
    if flip:
        new_size = q - size
    notional: uint256 = self._mul_div_up(new_size, price, WAD)
    fee: uint256 = (self._mul_div_up(self._mul_div_up(q, price, WAD), (words[2] >> 128) & MASK64, WAD) + scale - 1) // scale
    need: uint256 = base_im + self._requirement(market, notional, words[2])[0]
    return budget - convert(fee * scale, int256) >= convert(need, int256)


@pure
@internal
def _markets_of(meta: uint256) -> DynArray[uint256, MAX_POSITIONS]:
    # The open market ids of an account word: 8 bits each from bit 16.
    result: DynArray[uint256, MAX_POSITIONS] = []
    for i: uint256 in range(MAX_POSITIONS):
        if i >= meta & 255:
            break
        result.append((meta >> (16 + 8 * i)) & MASK8)
    return result


@pure
@internal
def _balance_of(meta: uint256) -> int256:
    # The settlement balance (int112) in the top bits of an account word.
    return convert(convert(meta, bytes32), int256) >> 144


@view
@internal
def _params(market: uint256, words: uint256[6]) -> IMarginEngine.MarketParams:
    # imr, mmr: the base rates in force (the risk model's for a flagged market).
    imr: uint256 = words[2] & MASK63
    mmr: uint256 = (words[2] >> 64) & MASK64
    if words[2] & RISK_BIT != 0:
        imr, mmr = staticcall IRiskView(self._risk()).base_rates(market, words[2])
    return IMarginEngine.MarketParams(
        imr=imr,
        mmr=mmr,
        fee_rate=(words[2] >> 128) & MASK64,
        liq_fee=words[2] >> 192,
        max_oi=words[3] & MASK128,
        min_notional=words[3] >> 128,
        funding_rate_max=words[5] >> 192,
    )


@view
@internal
def _requirement(market: uint256, notional: uint256, rates: uint256) -> (uint256, uint256):
    # The engine's `_requirement`: static rates, or the risk model's.
    if rates & RISK_BIT != 0:
        return staticcall IRiskView(self._risk()).requirements(market, notional, rates)
    return self._mul_div_up(notional, rates & MASK64, WAD), self._mul_div_up(notional, (rates >> 64) & MASK64, WAD)


@view
@internal
def _liquidation_mmr(market: uint256, notional: uint256, rates: uint256) -> uint256:
    # The MM rate liquidation sizing uses: mmr, or the position's average
    # MM rate in a flagged market (docs/risk-model.md 10.3).
    if rates & RISK_BIT == 0 or notional == 0:
        return (rates >> 64) & MASK64
    return self._requirement(market, notional, rates)[1] * WAD // notional


@view
@internal
def _risk() -> address:
    return staticcall IEngineWords(ENGINE).RISK_MODEL()


@view
@internal
def _margin_params() -> (uint256, uint256):
    return staticcall IConfiguratorView(staticcall IEngineWords(ENGINE).configurator()).margin_params()


@pure
@internal
def _index(funding_word: uint256) -> int256:
    # the int128 funding index in the low 128 bits of the funding word
    return convert(convert((funding_word & MASK128) << 128, bytes32), int256) >> 128


@pure
@internal
def _mul_div_up(x: uint256, y: uint256, d: uint256) -> uint256:
    return (x * y + d - 1) // d


@view
@internal
def _words(market: uint256) -> uint256[6]:
    a: uint256 = 0
    b: uint256 = 0
    c: uint256 = 0
    d: uint256 = 0
    e: uint256 = 0
    f: uint256 = 0
    a, b, c, d, e, f = staticcall IEngineWords(ENGINE).market_words(market)
    return [a, b, c, d, e, f]


@pure
@internal
def _floor_div(x: int256, d: int256) -> int256:
    # floor(x / d) for d > 0 (signed // truncates toward zero)
    q: int256 = x // d
    if x < 0 and q * d != x:
        q -= 1
    return q
