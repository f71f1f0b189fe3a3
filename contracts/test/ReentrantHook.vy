# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Re-entrant transfer hook: the attacker of the re-entrancy matrix (tests only, never deploy)
@notice The `hook` of a QuirkToken (`set_hook`). On a transfer, when armed,
        it performs ONE stored call (`set_call`) to any contract, e.g. back
        into the engine, the vault or the collateral manager in the middle
        of their token transfer, and records whether it succeeded and with
        which revert data. It swallows the failure, so the outer transfer
        completes and the test can assert that the re-entry reverted, and
        with which reason. Anyone can arm it and make it call anything:
        NEVER deploy it on a network with real value.
@dev `on_token_transfer` and `execute` are `@reentrant`: the hook must run
     when the stored call (or `execute`) triggers another transfer with the
     hook. `on_token_transfer` never reverts (barring running out
     of gas): a shot fires only when armed, and the arm is spent BEFORE the
     call, so a re-entry that transfers again does not recurse.
     Every invocation of `on_token_transfer` is recorded (`calls`, the
     arguments of the last one), armed or not, so tests can also check the
     arguments a token passes to its hook.
     `execute` lets the hook contract act as an account (approve, deposit,
     ...) before the attack.
"""


# @dev The largest calldata and returned/revert data recorded.
MAX_DATA: constant(uint256) = 1024

# @dev The stored call.
target: public(address)
data: public(Bytes[MAX_DATA])

# @dev Whether the next `on_token_transfer` performs the stored call.
armed: public(bool)

# @dev Results of the stored calls performed.
attempts: public(uint256)
last_success: public(bool)
last_revert_data: public(Bytes[MAX_DATA])
last_return_data: public(Bytes[MAX_DATA])

# @dev Every `on_token_transfer` invocation, armed or not.
calls: public(uint256)
last_token: public(address)
last_caller: public(address)
last_sender: public(address)
last_receiver: public(address)
last_amount: public(uint256)


@external
def set_call(target: address, data: Bytes[MAX_DATA]):
    """
    @dev Stores the call the armed hook performs. Anyone may call it (mock).
    @param target The contract called.
    @param data The calldata (selector and arguments, e.g. from
           `contract.method.encode_input(...)`).
    """
    self.target = target
    self.data = data


@external
def arm():
    """
    @dev Arms the hook: the next `on_token_transfer` performs the stored
         call once (then the hook is disarmed).
    """
    self.armed = True


@external
def disarm():
    """
    @dev Disarms the hook: `on_token_transfer` only records its arguments.
    """
    self.armed = False


@external
@reentrant
def on_token_transfer(caller: address, sender: address, receiver: address, amount: uint256):
    """
    @dev The token's transfer hook (called by the token after the balances
         are updated). Records the arguments; when armed, disarms and
         performs the stored call, recording its success and revert data and
         swallowing its failure. Never reverts.
    @param caller The `msg.sender` of the token's transfer.
    @param sender The account debited.
    @param receiver The receiver.
    @param amount The amount debited.
    """
    self.calls += 1
    self.last_token = msg.sender
    self.last_caller = caller
    self.last_sender = sender
    self.last_receiver = receiver
    self.last_amount = amount
    if not self.armed:
        return
    self.armed = False
    self.attempts += 1
    success: bool = False
    response: Bytes[MAX_DATA] = b""
    success, response = raw_call(
        self.target, self.data, max_outsize=MAX_DATA, revert_on_failure=False
    )
    self.last_success = success
    if success:
        self.last_return_data = response
        self.last_revert_data = b""
    else:
        self.last_return_data = b""
        self.last_revert_data = response


@external
@reentrant
def execute(target: address, data: Bytes[MAX_DATA]) -> Bytes[MAX_DATA]:
    """
    @dev Performs a call as this contract (e.g. `approve` or `deposit`
         before the attack). Anyone may call it (mock). Bubbles a revert up.
    @param target The contract called.
    @param data The calldata.
    @return Bytes[1024] The returned data (truncated to 1024 bytes).
    """
    return raw_call(target, data, max_outsize=MAX_DATA)
