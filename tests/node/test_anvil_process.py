"""margin_engine.anvil.Anvil: ports, mining modes, start failures, stop."""

from __future__ import annotations

import time

import pytest

from margin_engine.anvil import Anvil, AnvilStartError


def wait_for_block(node: Anvil, number: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while (current := node.block_number()) < number and time.monotonic() < deadline:
        time.sleep(0.05)
    return current


def test_two_nodes_on_distinct_free_ports(anvil_bin, tmp_path):
    with (
        Anvil(binary=anvil_bin, no_mining=True, log_path=tmp_path / "a.log") as a,
        Anvil(binary=anvil_bin, no_mining=True, log_path=tmp_path / "b.log") as b,
    ):
        assert a.port != b.port
        assert a.uri == f"http://127.0.0.1:{a.port}"
        a.mine(3)
        assert a.block_number() == 3
        assert b.block_number() == 0
    assert not a.running and not b.running
    assert f"Listening on 127.0.0.1:{a.port}" in (tmp_path / "a.log").read_text()


def test_interval_mining(anvil_bin):
    with Anvil(binary=anvil_bin, block_time=0.2) as node:
        assert wait_for_block(node, 2) >= 2


def test_switch_from_auto_to_interval_mining(anvil_bin):
    with Anvil(binary=anvil_bin) as node:
        assert node.rpc("anvil_getAutomine") is True
        node.set_interval_mining(1)
        assert node.rpc("anvil_getAutomine") is False
        assert wait_for_block(node, 1) >= 1
        node.set_automine(True)
        assert node.rpc("anvil_getAutomine") is True


def test_failed_start_reports_the_log(anvil_bin):
    node = Anvil(binary=anvil_bin, extra_args=["--no-such-flag"])
    with pytest.raises(AnvilStartError, match="no-such-flag"):
        node.start()
    assert not node.running


def test_block_time_and_no_mining_exclude_each_other():
    with pytest.raises(ValueError):
        Anvil(block_time=1, no_mining=True)
