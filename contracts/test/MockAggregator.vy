# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Mock Chainlink price feed (tests and demo only)
@notice Implements Chainlink's `AggregatorV3Interface` with answers that
        anyone can set. NEVER use it on a network with real value.
@dev Every `set_answer` / `set_round` call starts a new round
     (`roundId` += 1, `answeredInRound` = `roundId`). `set_round` writes an
     arbitrary `updatedAt` (in the past for a stale round, `0` for an
     incomplete one) and an arbitrary answer (`<= 0` for an invalid one).
     Past rounds stay readable through `getRoundData`.
"""

from ..interfaces import AggregatorV3Interface

implements: AggregatorV3Interface


struct Round:
    answer: int256
    started_at: uint256
    updated_at: uint256


# @dev Chainlink's current AggregatorV3 version number.
VERSION: constant(uint256) = 4


# @dev Decimals of every answer, fixed at deployment.
decimals: public(uint8)

# @dev Human-readable feed name.
description: public(String[64])

# @dev The latest round id (the first round is 1).
latest_round: public(uint80)

# @dev Round data by round id.
rounds: HashMap[uint80, Round]


event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256


@deploy
def __init__(decimals_: uint8, initial_answer: int256):
    """
    @dev Sets the decimals and publishes `initial_answer` as round 1,
         updated now.
    @param decimals_ The number of decimals of every answer, e.g. 8.
    @param initial_answer The first answer, e.g. `60_000 * 10**8`.
    """
    self.decimals = decimals_
    self.description = "mock / USD"
    self._new_round(initial_answer, block.timestamp)


@view
@external
def version() -> uint256:
    """
    @dev Returns the aggregator version (4, as Chainlink's current feeds).
    @return uint256 The version number.
    """
    return VERSION


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @dev Returns the latest round.
    @return uint80 The round id.
    @return int256 The answer (`decimals` decimals).
    @return uint256 The time the round started.
    @return uint256 The time the round was updated (0 = incomplete).
    @return uint80 The round in which the answer was computed.
    """
    round_id: uint80 = self.latest_round
    r: Round = self.rounds[round_id]
    return (round_id, r.answer, r.started_at, r.updated_at, round_id)


@view
@external
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @dev Returns a past or the latest round. Reverts for an unknown round.
    @param _roundId The round id.
    @return uint80 The round id.
    @return int256 The answer (`decimals` decimals).
    @return uint256 The time the round started.
    @return uint256 The time the round was updated (0 = incomplete).
    @return uint80 The round in which the answer was computed.
    """
    assert _roundId != 0 and _roundId <= self.latest_round, "aggregator: no data"
    r: Round = self.rounds[_roundId]
    return (_roundId, r.answer, r.started_at, r.updated_at, _roundId)


@external
def set_answer(answer: int256):
    """
    @dev Publishes `answer` as a new round, updated now.
    @param answer The new answer (`decimals` decimals).
    """
    self._new_round(answer, block.timestamp)


@external
def set_round(answer: int256, updated_at: uint256):
    """
    @dev Publishes a new round with an arbitrary `updatedAt`, e.g. in the
         past (stale) or `0` (incomplete round).
    @param answer The new answer (`decimals` decimals; may be `<= 0`).
    @param updated_at The round's `updatedAt` (and `startedAt`).
    """
    self._new_round(answer, updated_at)


@external
def set_description(description_: String[64]):
    """
    @dev Sets the feed's description, e.g. "BTC / USD".
    @param description_ The new description.
    """
    self.description = description_


@internal
def _new_round(answer: int256, updated_at: uint256):
    """
    @dev Appends a round and logs `AnswerUpdated`.
    @param answer The round's answer.
    @param updated_at The round's `startedAt` and `updatedAt`.
    """
    round_id: uint80 = self.latest_round + 1
    self.latest_round = round_id
    self.rounds[round_id] = Round(answer=answer, started_at=updated_at, updated_at=updated_at)
    log AnswerUpdated(current=answer, roundId=convert(round_id, uint256), updatedAt=updated_at)
