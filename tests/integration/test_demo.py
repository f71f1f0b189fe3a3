"""The guided scenario of `make demo` (margin_engine.demo) runs to the end:
the bot liquidates alice exactly when she falls below maintenance, the
keeper repays the WETH-backed debt of erin with `liquidate_collateral`, and
the custody checks hold for USDC and WETH (the demo raises DemoError on any
surprise)."""

from margin_engine.demo import run_demo


def test_demo__runs_the_three_acts_to_the_end():
    lines: list[str] = []

    run_demo(echo=lines.append)

    text = " ".join(" ".join(lines).split())  # whitespace normalised: wrapped lines join up
    # first act: position liquidations by the bot
    assert text.count("liquidator liquidates alice (from the Liquidation event)") == 2
    assert "sends 1 liquidation(s)" in text
    # third act: the WETH listing, the debt, the collateral liquidation
    assert "collateral WETH: listed" in text
    assert "erin is LIQUIDATABLE" in text
    assert text.count("keeper liquidates erin's WETH (from the CollateralLiquidated event)") == 1
    assert "no position liquidation is needed" in text
    # custody: USDC after each act on the first deployment, then WETH
    assert text.count("custody check: the engine holds") == 3
    assert "WETH = the manager's total deposits" in text
    assert lines[-1].startswith("Done: 2 liquidation(s), a margin call and a collateral liquidation")
