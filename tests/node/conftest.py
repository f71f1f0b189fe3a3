"""Fixtures of the tests against a real node: anvil over JSON-RPC.

- ``anvil_bin``: the binary; ``anvil``: one anvil process for the session (:class:`margin_engine.anvil.Anvil`:
  free loopback port, the test mnemonic, chain id 31337, log under pytest's
  temporary directory), stopped at the end of the session. Without a binary
  (``make node`` installs it) the tests skip, unless ``REQUIRE_ANVIL`` is set
  (``make test`` sets it): then they fail, as they do when ``ANVIL_BIN`` names
  no executable.
- ``run_ape``: runs an ``ape`` command as a subprocess against that node
  (``--network ethereum:local:foundry`` with ``APE_FOUNDRY_HOST`` pointing at
  it and ``APE_MANAGE_PROCESS=false``).
- ``deployment``: the system deployed once by ``ape run deploy`` over JSON-RPC;
  the addresses JSON the script writes.
- ``on_node``: connects this process's Ape to the node for a ``with`` block
  (the in-process test chain is the provider again after it).

Every test in this folder gets the ``node`` marker (``-m 'not node'`` deselects them).
Unlike the in-process chain, the node is not rolled back between tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from margin_engine.anvil import APE_NETWORK, Anvil, AnvilNotFoundError, find_anvil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
"""The repository these tests belong to (ape subprocesses run there)."""
APE = Path(sys.executable).parent / "ape"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def anvil_bin() -> Path:
    """The anvil binary (:func:`margin_engine.anvil.find_anvil`), or skip / fail."""
    try:
        return find_anvil(ROOT)
    except AnvilNotFoundError as err:
        if os.environ.get("REQUIRE_ANVIL") or os.environ.get("ANVIL_BIN"):
            pytest.fail(str(err), pytrace=False)
        pytest.skip(f"{err} (REQUIRE_ANVIL unset: skipped)")


@pytest.fixture(scope="session")
def anvil(anvil_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    with Anvil(binary=anvil_bin, log_path=log) as node:
        yield node


@pytest.fixture(scope="session")
def run_ape(anvil: Anvil) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``ape <args> --network ethereum:local:foundry`` on the node; fails the
        test with the output and the node's log tail when it exits non-zero."""
        cmd = [str(APE), *args, "--network", APE_NETWORK]
        env = {**os.environ, **anvil.ape_env()}
        result = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} exited with {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n"
                f"--- anvil log tail\n{anvil.log_tail()}",
                pytrace=False,
            )
        return result

    return run


@pytest.fixture(scope="session")
def deployment(run_ape, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("deploy") / "addresses.json"
    run_ape("run", "deploy", "--output", str(output))
    return json.loads(output.read_text())


@pytest.fixture
def on_node(anvil: Anvil, networks) -> Callable[[], AbstractContextManager[Any]]:
    def connect() -> AbstractContextManager[Any]:
        return networks.parse_network_choice(
            APE_NETWORK, provider_settings=anvil.ape_provider_settings()
        )

    return connect
