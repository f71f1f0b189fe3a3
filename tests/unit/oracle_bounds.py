"""The oracle-parameter edges shared by a market's and a collateral asset's
listing (the configurator checks both alike): each bound once just inside,
once just outside."""

from __future__ import annotations

MASK128 = 2**128 - 1


def oracle_bounds(heartbeat: int, min_price: int, max_price: int) -> list[tuple[int, int, int, bool]]:
    """(heartbeat, min_price, max_price, accepted) around valid defaults."""
    return [
        (1, min_price, max_price, True),  # heartbeat > 0
        (0, min_price, max_price, False),
        (2**32 - 1, min_price, max_price, True),  # packed in 32 bits
        (2**32, min_price, max_price, False),
        (heartbeat, 1, max_price, True),  # 0 < min_price
        (heartbeat, 0, max_price, False),
        (heartbeat, max_price - 1, max_price, True),  # min_price < max_price
        (heartbeat, max_price, max_price, False),
        (heartbeat, min_price, MASK128, True),  # packed in 128 bits
        (heartbeat, min_price, MASK128 + 1, False),
    ]
