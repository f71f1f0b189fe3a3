"""Volatility-margin calibration: ``python scripts/calibrate.py [--data DIR] [--out bench/calibration.md]``.

Replays the daily BTC and ETH prices through the integer volatility model and
writes the report (``--out``) and its data (same stem, ``.json``). The output
depends only on the data files: running it twice gives identical files.
Logic in :mod:`margin_engine.calibration`. Plain Python, no chain; ``ape run
calibrate`` also works (with the default paths).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from margin_engine.calibration import build_report, write_outputs  # noqa: E402


def main(argv: Sequence[str] = ()) -> int:
    """Parses ``argv`` (not ``sys.argv``: ``ape run calibrate`` calls ``main()`` and gets the defaults)."""
    parser = argparse.ArgumentParser(description="Calibrate the volatility margin on daily prices.")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="directory holding BTC-USD.csv and ETH-USD.csv (default: ../shared/data next to the repository)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "calibration.md",
        help="Markdown report path; the JSON goes next to it (default: bench/calibration.md)",
    )
    args = parser.parse_args(list(argv))
    md, js = write_outputs(build_report(args.data), args.out)
    print(f"written: {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
