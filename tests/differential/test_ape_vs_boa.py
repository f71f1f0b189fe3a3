"""Cross-check: the Ape chain and titanoboa run the contracts identically.

The random differential (test_model_vs_engine.py) runs on titanoboa for speed.
This test plays one fixed scenario on Ape's test chain (the session system of
tests/conftest.py) and on titanoboa, both against the reference model, from
the same timestamp, and then requires the two chains' checkpoints (every
balance, account state, position, market state and ledger) to be identical.
"""

from __future__ import annotations

from differential_harness import ApeSystem, Differential, run

BTC, ETH = 0, 1
USDC = 10**6

# (kind, ...) operations as in test_model_vs_engine.py; traders 0 and 1.
SCENARIO = [
    ("deposit", 0, 0, 10_000 * USDC, 0),
    ("deposit", 1, 0, 20_000 * USDC, 0),
    ("deposit", 1, 1, 3_000 * USDC, 0),
    ("open", 0, 0, BTC, True, "frac", 990_000, 0),  # 99 % of what 10,000 can open
    ("open", 1, 0, BTC, False, "frac", 400_000, 0),
    ("open", 1, 0, ETH, True, "frac", 600_000, 1),  # limit = the oracle price
    ("isolate", 1, True),
    ("open", 1, 1, ETH, False, "frac", 950_000, 0),
    ("open", 1, 1, BTC, True, "frac", 100_000, 0),  # isolated: reverts
    ("advance", 7_200),  # two hours of funding (refreshes the feeds)
    ("price", BTC, 930_000),  # -7 %
    ("liquidate", 0, 0, BTC, 0),
    ("liquidate", 0, 0, BTC, 0),  # healthy again: reverts
    ("advance", 600),
    ("price", ETH, 1_060_000),  # +6 %: the isolated short falls
    ("liquidate", 1, 1, ETH, 500_000),  # at most half of it
    ("pause", True),
    ("open", 1, 0, ETH, True, "frac", 100_000, 0),  # paused: reverts
    ("reduce", 1, 0, BTC, 400_000, 0),
    ("withdraw", 1, 0, 100_000),
    ("insurance", 500 * USDC, 0),
    ("lp_withdraw", 100_000),
    ("price", BTC, 960_000),
    ("pause", False),
]


WANTED = {
    "Liquidation": 3,
    "partial liquidation": 2,
    "full liquidation": 1,
    "revert engine: isolated": 1,
    "revert engine: not liquidatable": 1,
    "revert engine: paused": 1,
    "state 1": 4,
    "state 2": 4,
}


def play_fixed(system, start: int) -> Differential:
    system.at(start)
    diff = Differential(system)
    diff.now = start
    diff.advance(1)
    run(diff, SCENARIO)
    diff.compare_all(liquidation_prices=True)
    diff.liquidate_all()
    diff.close_all()
    diff.compare_all()
    return diff


def test_ape_and_titanoboa__same_scenario__identical_states(
    chain, system, lens, boa_system, admin, lp, guardian, liquidator, trader, other_trader
):
    boa = boa_system(6)
    start = max(chain.pending_timestamp, boa.timestamp()) + 10_000
    actors = {"lp": lp, "guardian": guardian, "liquidator": liquidator, "funder": admin}
    ape = ApeSystem(system, chain, lens, actors, [trader, other_trader])

    on_ape = play_fixed(ape, start)
    traders = boa.traders
    with boa.env.anchor():
        boa.traders = traders[:2]
        try:
            on_boa = play_fixed(boa, start)
        finally:
            boa.traders = traders
    assert on_ape.trace == on_boa.trace
    assert on_ape.snapshots == on_boa.snapshots
    assert on_ape.stats == on_boa.stats
    # The scenario reaches what it is written for.
    assert {key: on_ape.stats[key] for key in WANTED} == WANTED
