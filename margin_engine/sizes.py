"""Contract sizes against the EIP-170 limit: ``python -m margin_engine.sizes``.

Compiles every deployable ``.vy`` file under ``contracts/`` (not
``contracts/interfaces/``; mocks under ``contracts/test/`` are included and
marked) with the installed vyper, prints a table of deployed code sizes
(runtime bytecode plus the immutables appended to it) against the
24,576-byte EIP-170 limit (and init code against the 49,152-byte
EIP-3860 limit), and exits with status 1 if any contract exceeds a limit,
2 if a contract does not compile.

Compilation mirrors ape-vyper (0.8.x, Vyper 0.4): the ``vyper`` CLI of this
Python environment, run from the repository root with ``-p <root>``. Its
search path is therefore Python's ``sys.path`` (site-packages: ``from
snekmate.auth import access_control``), the current directory, the root, and
the directory of the file being compiled (``contracts/``: ``from interfaces
import IMarginEngine`` in ``contracts/MarginEngine.vy``). The EVM version is
vyper's default unless ``ape-config.yaml`` sets ``vyper.evm_version``.

A ``.vy`` file with no top-level ``@external`` or ``@deploy`` function is a
library module (imported by others, not deployed) and is listed but not
compiled.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

EIP170_LIMIT = 24_576
"""Maximum runtime bytecode size (bytes)."""
EIP3860_LIMIT = 49_152
"""Maximum init code size (bytes)."""

_ENTRY = re.compile(r"^@(external|deploy)\b", re.MULTILINE)


@dataclass
class Result:
    path: Path
    kind: str  # "contract", "mock", "module"
    runtime: int | None = None
    initcode: int | None = None
    error: str | None = None

    @property
    def too_big(self) -> bool:
        return (self.runtime or 0) > EIP170_LIMIT or (self.initcode or 0) > EIP3860_LIMIT


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest directory with ``ape-config.yaml`` and ``contracts/``."""
    candidates = []
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    package_root = Path(__file__).resolve().parent.parent
    candidates.append(package_root)
    for c in candidates:
        if (c / "contracts").is_dir() and (c / "ape-config.yaml").is_file():
            return c
    for c in candidates:
        if (c / "contracts").is_dir():
            return c
    raise SystemExit("sizes: no contracts/ directory found")


def _evm_version(root: Path) -> str | None:
    cfg = root / "ape-config.yaml"
    if not cfg.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    except Exception:  # noqa: BLE001 - a broken config is ape's problem, not ours
        return None
    vyper_cfg = data.get("vyper") or {}
    value = vyper_cfg.get("evm_version")
    return str(value) if value else None


def _vyper_command() -> list[str]:
    return [sys.executable, "-m", "vyper"]


def discover(root: Path) -> list[tuple[Path, str]]:
    """``(path, kind)`` for every ``.vy`` under ``contracts/``, interfaces excluded."""
    contracts = root / "contracts"
    found = []
    for path in sorted(contracts.rglob("*.vy")):
        rel = path.relative_to(contracts)
        if rel.parts[0] == "interfaces":
            continue
        text = path.read_text(encoding="utf-8")
        if not _ENTRY.search(text):
            kind = "module"
        elif rel.parts[0] in ("test", "tests", "mocks"):
            kind = "mock"
        else:
            kind = "contract"
        found.append((path, kind))
    return found


def _immutables_size(layout: dict) -> int:
    """Bytes of immutables in a ``code_layout`` (modules nest their own)."""
    if "length" in layout and "offset" in layout:
        return int(layout["length"])
    return sum(_immutables_size(v) for v in layout.values() if isinstance(v, dict))


def compile_one(root: Path, path: Path, kind: str, evm_version: str | None) -> Result:
    """Compiles ``path`` and measures its runtime and init code."""
    result = Result(path=path, kind=kind)
    if kind == "module":
        return result
    cmd = [*_vyper_command(), "-f", "bytecode_runtime,bytecode,layout", "-p", str(root)]
    if evm_version:
        cmd += ["--evm-version", evm_version]
    cmd.append(str(path.relative_to(root)))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        result.error = (proc.stderr or proc.stdout).strip()
        return result
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if len(lines) < 3:
        result.error = f"unexpected vyper output: {proc.stdout!r}"
        return result
    runtime_hex, init_hex = lines[0], lines[1]
    # The deployed code is the runtime code followed by the immutables
    # (`code_layout`): EIP-170 limits both together.
    immutables = _immutables_size(json.loads(" ".join(lines[2:])).get("code_layout", {}))
    code = (len(runtime_hex) - 2) // 2 if runtime_hex.startswith("0x") else len(runtime_hex) // 2
    result.runtime = code + immutables
    result.initcode = (len(init_hex) - 2) // 2 if init_hex.startswith("0x") else len(init_hex) // 2
    return result


def measure(root: Path) -> list[Result]:
    """Compiles every deployable contract under ``root/contracts`` (in parallel)."""
    evm_version = _evm_version(root)
    files = discover(root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda f: compile_one(root, f[0], f[1], evm_version), files))


def render(root: Path, results: list[Result]) -> str:
    """The size table."""
    header = ("contract", "kind", "runtime", "% of 24576", "headroom", "initcode", "")
    rows = []
    for r in results:
        name = str(r.path.relative_to(root))
        if r.kind == "module":
            rows.append((name, "module", "-", "-", "-", "-", "library, not deployed"))
        elif r.error is not None:
            rows.append((name, r.kind, "-", "-", "-", "-", "COMPILE ERROR"))
        else:
            assert r.runtime is not None and r.initcode is not None
            flag = ""
            if r.runtime > EIP170_LIMIT:
                flag = "OVER EIP-170 LIMIT"
            elif r.initcode > EIP3860_LIMIT:
                flag = "OVER EIP-3860 LIMIT"
            elif r.runtime > EIP170_LIMIT * 0.9:
                flag = "close to the limit"
            rows.append(
                (
                    name,
                    r.kind,
                    f"{r.runtime:,}",
                    f"{100 * r.runtime / EIP170_LIMIT:.1f}%",
                    f"{EIP170_LIMIT - r.runtime:,}",
                    f"{r.initcode:,}",
                    flag,
                )
            )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    right = {2, 3, 4, 5}

    def fmt(row: tuple) -> str:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), fmt(tuple("-" * w for w in widths))]
    lines += [fmt(row) for row in rows]
    if not rows:
        lines.append("(no contracts)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m margin_engine.sizes",
        description="Runtime bytecode sizes of the contracts against the EIP-170 limit.",
    )
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found)")
    args = parser.parse_args(argv)
    root = find_root(args.root)

    results = measure(root)
    print(render(root, results))

    errors = [r for r in results if r.error is not None]
    for r in errors:
        print(f"\n{r.path.relative_to(root)}: compile error\n{r.error}", file=sys.stderr)
    too_big = [r for r in results if r.too_big]
    if too_big:
        names = ", ".join(str(r.path.relative_to(root)) for r in too_big)
        print(f"\nsizes: over the limit: {names}", file=sys.stderr)
        return 1
    if errors:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
