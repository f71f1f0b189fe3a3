"""Plain-text formatting for the demo and the gas benchmark.

Human units for the engine's integers (WAD USD values, token amounts, 18-decimal
sizes) and a small fixed-width table renderer. Display only: the values are
rounded for reading (half-even), never fed back into a computation.

This module does not import Ape.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

WAD = 10**18

__all__ = [
    "WAD",
    "fmt_int",
    "fmt_ratio",
    "fmt_size",
    "fmt_tokens",
    "fmt_wad",
    "render_markdown_table",
    "render_table",
]


def _fmt_decimal(value: Decimal, places: int, signed: bool = False) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.00"
    text = f"{rounded:,.{places}f}"
    if signed and rounded > 0:
        text = "+" + text
    return text


def fmt_wad(value: int, places: int = 2, signed: bool = False) -> str:
    """A WAD integer (USD value, price, ratio) with ``places`` decimals."""
    return _fmt_decimal(Decimal(value) / WAD, places, signed)


def fmt_tokens(amount: int, decimals: int, places: int = 2, signed: bool = False) -> str:
    """A token amount in its own units (e.g. 6-decimal USDC) with ``places`` decimals."""
    return _fmt_decimal(Decimal(amount).scaleb(-decimals), places, signed)


def fmt_size(size: int, symbol: str, places: int = 4, signed: bool = True) -> str:
    """An 18-decimal position size with its base asset: ``+1.0000 BTC`` (``-`` for 0)."""
    if size == 0:
        return "-"
    return f"{_fmt_decimal(Decimal(size) / WAD, places, signed=signed)} {symbol}"


def fmt_ratio(numerator: int, denominator: int, places: int = 2) -> str:
    """``numerator / denominator`` as ``1.23x``; ``-`` when the denominator is 0."""
    if denominator == 0:
        return "-"
    return f"{_fmt_decimal(Decimal(numerator) / Decimal(denominator), places)}x"


def fmt_int(value: int | None) -> str:
    """An integer with thousands separators (``-`` for None)."""
    return "-" if value is None else f"{value:,}"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str | None = None,
    indent: str = "  ",
) -> str:
    """A fixed-width table.

    Args:
        headers: column titles.
        rows: cells, already formatted as strings.
        align: one character per column, ``l`` or ``r`` (default: first
            column left, the others right).
        indent: prefix of every line.
    """
    ncols = len(headers)
    if align is None:
        align = "l" + "r" * (ncols - 1)
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if align[i] == "l" else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(headers), indent + "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def render_markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A GitHub-flavoured Markdown table (``align``: ``l``/``r`` per column)."""
    ncols = len(headers)
    if align is None:
        align = "l" + "r" * (ncols - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(out)
