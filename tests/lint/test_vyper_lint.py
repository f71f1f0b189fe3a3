"""The Vyper lint (margin_engine.lint): the contracts pass it, and it flags
each rule it exists for."""

from pathlib import Path

import pytest

from margin_engine.lint import lint_paths, lint_source

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"

HEADER = "# pragma version 0.4.3\n# pragma nonreentrancy on\nfrom ethereum.ercs import IERC20\n"


def rules(source: str) -> list[str]:
    return [f.rule for f in lint_source(source)]


def test_lint__every_contract__no_findings():
    findings = lint_paths([CONTRACTS])
    assert [str(f) for f in findings] == []


def test_lint__asserted_token_calls__pass():
    source = HEADER + (
        "@external\ndef f(t: address):\n"
        "    assert extcall IERC20(t).transfer(msg.sender, 1, default_return_value=True)\n"
        "    ok: bool = extcall IERC20(t).approve(msg.sender, 1, default_return_value=True)\n"
        "    assert ok, 'failed'\n"
    )
    assert rules(source) == []


@pytest.mark.parametrize(
    "body, rule",
    [
        # the bool is dropped
        ("    extcall IERC20(t).transfer(msg.sender, 1, default_return_value=True)\n", "token-call"),
        # assigned but never asserted
        ("    ok: bool = extcall IERC20(t).transfer(msg.sender, 1, default_return_value=True)\n", "token-call"),
        # no default_return_value: breaks on tokens returning nothing
        ("    assert extcall IERC20(t).transfer(msg.sender, 1)\n", "token-call"),
        # a call as an operand: undefined evaluation order
        (
            "    x: uint256 = 1 + staticcall IERC20(t).balanceOf(self)\n"
            "    assert (extcall IERC20(t).transfer(msg.sender, x, default_return_value=True)) == True\n",
            "call-in-expression",
        ),
        ("    x: uint256 = unsafe_add(1, 2)\n", "unsafe-math"),
    ],
)
def test_lint__bad_source__flagged(body, rule):
    source = HEADER + "@external\ndef f(t: address):\n" + body
    assert rule in rules(source)


def test_lint__missing_pragmas__flagged():
    source = "from ethereum.ercs import IERC20\n@external\ndef f():\n    pass\n"
    assert rules(source) == ["pragma", "pragma"]


def test_lint__pragma_in_a_docstring__does_not_count():
    source = '# pragma version 0.4.3\n"""\nNot `# pragma nonreentrancy on`.\n"""\n@external\ndef f():\n    pass\n'
    assert rules(source) == ["pragma"]

