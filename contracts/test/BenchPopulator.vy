# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Bench populator (benchmarks and tests only)
@notice Fills a MarginEngine with many accounts that hold open positions,
        in few transactions: each `populate` call deposits into and trades
        for a range of sub-accounts of this contract (the owner of every
        account it opens; sub-account ids are uint16, so up to 65,536
        accounts per populator). It mints its collateral with the mock
        settlement token's open `mint`: NEVER deploy it on a network with
        real value. Used by the scan benchmark (margin_engine.bench_scan).
@dev    Sub-account `s` gets profile `profiles[s % len(profiles)]`, so the
        accounts do not depend on how a range is split into transactions.
        Every trade is sent with a limit price that cannot bind (buys
        `max_value(uint256)`, sells 0): the engine's own checks (HEALTHY
        after the trade, OI cap, minimum notional) still apply and revert
        the whole call.
"""

from ethereum.ercs import IERC20

MAX_POSITIONS: constant(uint256) = 8
# @dev Most profiles one call cycles through.
MAX_PROFILES: constant(uint256) = 64
# @dev Sub-account ids are uint16: 65,536 per owner.
MAX_SUBS: constant(uint256) = 65536


# @dev What one sub-account receives: a deposit and one trade per market.
struct Profile:
    collateral: uint256                      # settlement-token units deposited
    sizes: DynArray[int256, MAX_POSITIONS]   # size_delta by market id (index); 0: no trade


interface IMintable:
    def mint(to: address, amount: uint256): nonpayable


interface IEngine:
    def deposit(sub: uint16, asset: address, amount: uint256): nonpayable
    def modify_position(
        owner: address, sub: uint16, market: uint256, size_delta: int256, limit_price: uint256
    ) -> uint256: nonpayable


# @dev The engine the accounts are opened in.
ENGINE: public(immutable(address))
# @dev The engine's settlement token (a MockERC20 with an open `mint`).
TOKEN: public(immutable(address))

# @dev Sub-accounts opened so far (all calls together).
populated: public(uint256)


@deploy
def __init__(engine: address, token: address):
    """
    @notice Deploy a populator for `engine`; it approves the engine to pull
            `token` without limit.
    @param engine The MarginEngine.
    @param token The engine's settlement token (MockERC20).
    """
    ENGINE = engine
    TOKEN = token
    assert extcall IERC20(token).approve(engine, max_value(uint256), default_return_value=True)


@external
def populate(first_sub: uint16, count: uint256, profiles: DynArray[Profile, MAX_PROFILES]):
    """
    @notice Open `count` sub-accounts of this contract, `first_sub` ..
            `first_sub + count - 1`: each receives its profile's deposit,
            then its profile's trades, market by market.
    @dev Mints the whole deposit to itself first. A sub-account that
         already holds a position in a market has it increased.
    @param first_sub The first sub-account id.
    @param count Number of sub-accounts (first_sub + count <= 65,536).
    @param profiles Cycled through by sub-account id (see the contract notes).
    """
    n: uint256 = len(profiles)
    assert n > 0, "populator: no profiles"
    assert count > 0, "populator: zero count"
    start: uint256 = convert(first_sub, uint256)
    assert start + count <= MAX_SUBS, "populator: sub-account ids overflow"

    total: uint256 = 0
    for i: uint256 in range(count, bound=MAX_SUBS):
        total += profiles[(start + i) % n].collateral
    extcall IMintable(TOKEN).mint(self, total)

    for i: uint256 in range(count, bound=MAX_SUBS):
        profile: Profile = profiles[(start + i) % n]
        sub: uint16 = convert(start + i, uint16)
        extcall IEngine(ENGINE).deposit(sub, TOKEN, profile.collateral)
        market: uint256 = 0
        for size: int256 in profile.sizes:
            if size > 0:
                extcall IEngine(ENGINE).modify_position(self, sub, market, size, max_value(uint256))
            elif size < 0:
                extcall IEngine(ENGINE).modify_position(self, sub, market, size, 0)
            market += 1
    self.populated += count
