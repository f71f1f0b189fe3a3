"""The guided scenario of `make demo` (margin_engine.demo) runs to the end:
the bot liquidates alice exactly when she falls below maintenance, and the
custody check holds (the demo raises DemoError on any surprise)."""

from margin_engine.demo import run_demo


def test_demo__runs_and_the_bot_liquidates_alice_twice():
    lines: list[str] = []

    run_demo(echo=lines.append)

    text = "\n".join(lines)
    assert text.count("liquidator liquidates alice (from the Liquidation event)") == 2
    assert "sends 1 liquidation(s)" in text
    assert "custody check: the engine holds" in text
    assert lines[-1].startswith("Done: 2 liquidation(s)")
