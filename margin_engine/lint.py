"""A small lint for the Vyper rules Slither and Mythril cannot check on 0.4.3.

Run ``python -m margin_engine.lint [PATH ...]`` (default: ``contracts/``); it
prints one line per finding and exits 1 when there is any. Rules:

- ``pragma``: every ``.vy`` file declares ``# pragma version 0.4.3`` and
  ``# pragma nonreentrancy on`` as lines of their own among its first lines
  (text in a docstring does not count). A function that must be re-entrant
  opts out with ``@reentrant``.
- ``token-call``: every ``extcall`` to ``transfer``, ``transferFrom`` or
  ``approve`` passes ``default_return_value=True`` (tokens such as USDT return
  nothing) and its result is asserted: ``assert extcall ...`` or assigned to a
  name that a later ``assert`` in the same function tests (Vyper 0.4.3
  discards the bool otherwise).
- ``call-in-expression``: an ``extcall`` is a whole statement, the whole test
  of an ``assert``, the whole value of an assignment or a ``return``, never an
  operand or an argument: evaluation order inside expressions is undefined.
- ``unsafe-math``: every ``unsafe_*`` builtin carries a comment on its line or
  the line above saying why it is safe.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import vyper.ast as vy_ast

TOKEN_CALLS = {"transfer", "transferFrom", "approve"}
UNSAFE = {"unsafe_add", "unsafe_sub", "unsafe_mul", "unsafe_div"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


def lint_source(source: str, path: str = "<source>") -> list[Finding]:
    """All findings in one Vyper source."""
    findings: list[Finding] = []
    head = [line.strip() for line in source.splitlines()[:5]]
    if "# pragma version 0.4.3" not in head:
        findings.append(Finding(path, 1, "pragma", "missing '# pragma version 0.4.3' in the first lines"))
    if "# pragma nonreentrancy on" not in head:
        findings.append(Finding(path, 1, "pragma", "missing '# pragma nonreentrancy on' in the first lines"))

    module = vy_ast.parse_to_ast(source)
    lines = source.splitlines()
    for call in module.get_descendants(vy_ast.ExtCall):
        findings.extend(_check_extcall(call, path))
    for node in module.get_descendants(vy_ast.Call):
        name = getattr(node.func, "id", None)
        if name in UNSAFE:
            here = lines[node.lineno - 1]
            above = lines[node.lineno - 2] if node.lineno >= 2 else ""
            if "#" not in here and not above.strip().startswith("#"):
                findings.append(Finding(path, node.lineno, "unsafe-math", f"{name} without a comment proving it safe"))
    return findings


def _check_extcall(node: vy_ast.ExtCall, path: str) -> list[Finding]:
    findings = []
    parent = node.get_ancestor()
    direct = (
        isinstance(parent, vy_ast.Expr)
        or (isinstance(parent, vy_ast.Assert) and parent.test is node)
        or (isinstance(parent, (vy_ast.AnnAssign, vy_ast.Assign)) and parent.value is node)
        or (isinstance(parent, vy_ast.Return) and parent.value is node)
    )
    if not direct:
        findings.append(
            Finding(path, node.lineno, "call-in-expression", "extcall inside an expression (undefined evaluation order)")
        )
    call = node.value
    method = getattr(call.func, "attr", None)
    if method not in TOKEN_CALLS:
        return findings
    keywords = {kw.arg: kw.value for kw in call.keywords}
    default = keywords.get("default_return_value")
    if not (isinstance(default, vy_ast.NameConstant) and default.value is True):
        findings.append(Finding(path, node.lineno, "token-call", f"{method} without default_return_value=True"))
    if not _result_asserted(node, parent):
        findings.append(Finding(path, node.lineno, "token-call", f"the bool returned by {method} is not asserted"))
    return findings


def _result_asserted(node: vy_ast.ExtCall, parent: vy_ast.VyperNode) -> bool:
    if isinstance(parent, vy_ast.Assert):
        return True
    if isinstance(parent, (vy_ast.AnnAssign, vy_ast.Assign)):
        name = getattr(parent.target, "id", None)
        function = node.get_ancestor(vy_ast.FunctionDef)
        if name is None or function is None:
            return False
        for check in function.get_descendants(vy_ast.Assert):
            if check.lineno > node.lineno and any(
                getattr(n, "id", None) == name for n in [check.test, *check.test.get_descendants(vy_ast.Name)]
            ):
                return True
    return False


def lint_paths(paths: list[Path]) -> list[Finding]:
    """Findings in every ``.vy`` file under ``paths`` (interfaces excepted)."""
    findings: list[Finding] = []
    for root in paths:
        files = sorted(root.rglob("*.vy")) if root.is_dir() else [root]
        for file in files:
            findings.extend(lint_source(file.read_text(encoding="utf-8"), str(file)))
    return findings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    findings = lint_paths([Path(a) for a in args] or [Path("contracts")])
    for finding in findings:
        print(finding)
    print(f"vyper lint: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
