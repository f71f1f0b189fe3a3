"""A local anvil JSON-RPC node as a separate process: ``Anvil`` and ``find_anvil``.

Integration tests, scripts and bots that must talk to a real node over HTTP
(rather than Ape's in-process test chain) start one with::

    from margin_engine.anvil import Anvil

    with Anvil() as node:          # auto-mining, free loopback port
        node.uri                   # "http://127.0.0.1:43221"
        node.rpc("eth_blockNumber")
        node.mine(5)

The node uses the project's test mnemonic (``ape-config.yaml``: ``test: mnemonic``),
10 accounts and chain id 31337, so Ape's ``test_accounts`` are its funded
accounts. The port is chosen by the kernel (``--port 0``) and read back from
anvil's ``Listening on`` line, so two nodes started at once never race for a
port. The node's output goes to a log file (``node.log_path``, kept after the
node stops); a failed start raises :class:`AnvilStartError` with its tail.

The binary comes from ``find_anvil()``: ``$ANVIL_BIN``, else the npm package
pinned by ``package.json`` (``make node`` runs ``npm ci``), else ``anvil`` on
the PATH.

``python -m margin_engine.anvil [--block-time S | --no-mining]`` runs a node in
the foreground and prints its URI, until Ctrl+C.

This module does not import Ape.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

TEST_MNEMONIC = "test test test test test test test test test test test junk"
"""The project's test mnemonic (``ape-config.yaml``: ``test: mnemonic``)."""
TEST_ACCOUNTS = 10
"""Number of funded accounts (``ape-config.yaml``: ``test: number_of_accounts``)."""
CHAIN_ID = 31337
"""Chain id of the local node (anvil's default, the one Ape expects for ``local``)."""

APE_NETWORK = "ethereum:local:foundry"
"""Ape network choice for a running anvil (with :meth:`Anvil.ape_env` or
:meth:`Anvil.ape_provider_settings`, ape-foundry connects to it and starts none)."""

NPM_ANVIL = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
"""Where ``npm ci`` puts the pinned binary, relative to the repository root."""

_LISTENING = re.compile(r"^Listening on ([0-9.]+):(\d+)\s*$", re.MULTILINE)


class AnvilNotFoundError(FileNotFoundError):
    """No anvil binary: run ``make node`` or set ``ANVIL_BIN``."""


class AnvilStartError(RuntimeError):
    """anvil exited or did not answer ``eth_chainId`` in time."""


class RPCError(RuntimeError):
    """A JSON-RPC call returned an error object."""

    def __init__(self, method: str, error: Any) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


def repo_root() -> Path:
    """The repository this package was imported from (holds ``package.json``)."""
    return Path(__file__).resolve().parent.parent


def find_anvil(root: Path | None = None) -> Path:
    """The anvil binary to run.

    In order: the environment variable ``ANVIL_BIN`` (must name an executable
    file), the npm package under ``<root>/node_modules`` (``root`` defaults to
    :func:`repo_root`), then ``anvil`` on the PATH.

    Raises:
        AnvilNotFoundError: none of these exists.
    """
    if env := os.environ.get("ANVIL_BIN"):
        path = Path(env)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise AnvilNotFoundError(f"ANVIL_BIN={env} is not an executable file")

    local = (root or repo_root()) / NPM_ANVIL
    if local.is_file() and os.access(local, os.X_OK):
        return local

    if found := shutil.which("anvil"):
        return Path(found)

    raise AnvilNotFoundError(
        f"anvil not found: not at {local}, nor on the PATH, and ANVIL_BIN is unset. "
        "Run `make node` (npm ci: installs the version pinned in package.json) "
        "or set ANVIL_BIN to an anvil binary."
    )


def rpc(uri: str, method: str, params: Sequence[Any] = (), timeout: float = 10.0) -> Any:
    """One JSON-RPC call over HTTP; returns ``result``.

    Raises:
        RPCError: the node answered with an error object.
        OSError: the node could not be reached (``urllib.error.URLError`` included).
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(
        uri, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RPCError(method, reply["error"])
    return reply["result"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGTERM the child when the thread that started it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


class Anvil:
    """An anvil process on a loopback port, started by :meth:`start` (or ``with``).

    Args:
        port: 0 (default) lets the kernel choose a free port; else that port.
        host: address to listen on (loopback by default).
        block_time: seconds between blocks (interval mining; fractions allowed).
            ``None`` (default): auto-mining, one block per transaction.
        no_mining: mine only on demand (``anvil_mine`` / ``evm_mine``);
            excludes ``block_time``.

            With either, ``anvil_getAutomine`` is false and Ape (ape-foundry)
            then returns a transaction's receipt at once, before it is mined
            (block number -1): a deployment fails ("did not create a
            contract"). Deploy on an auto-mining node, then call
            :meth:`set_interval_mining`.
        mnemonic, accounts, chain_id: the funded accounts and the chain id
            (default: the project's test mnemonic, 10 accounts, 31337).
        balance: ether per account (anvil's default, 10,000, when ``None``).
        extra_args: more anvil arguments (e.g. ``["--steps-tracing"]``).
        log_path: file for anvil's stdout and stderr (default: a new file
            ``anvil-*.log`` in the temporary directory). Kept after :meth:`stop`.
        binary: the anvil executable (default: :func:`find_anvil`).
        startup_timeout: seconds to wait for ``eth_chainId`` to answer.
        die_with_parent: on Linux, anvil gets SIGTERM if the thread that
            started it exits (so a killed test run leaves no node behind).
            Start it from the main thread, or pass ``False``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        block_time: float | None = None,
        no_mining: bool = False,
        mnemonic: str = TEST_MNEMONIC,
        accounts: int = TEST_ACCOUNTS,
        chain_id: int = CHAIN_ID,
        balance: int | None = None,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        die_with_parent: bool = True,
    ) -> None:
        if no_mining and block_time is not None:
            raise ValueError("no_mining and block_time exclude each other")
        if block_time is not None and block_time <= 0:
            raise ValueError(f"block_time must be positive, got {block_time}")
        self.host = host
        self.requested_port = port
        self.block_time = block_time
        self.no_mining = no_mining
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.chain_id = chain_id
        self.balance = balance
        self.extra_args = list(extra_args)
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.binary: Path | None = Path(binary) if binary is not None else None
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.startup_seconds: float | None = None
        """Seconds from spawning the process to the first ``eth_chainId`` answer."""

    # -- state ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the node listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("anvil is not started")
        return self._port

    @property
    def uri(self) -> str:
        """The HTTP JSON-RPC endpoint, e.g. ``http://127.0.0.1:43221``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_uri(self) -> str:
        """The WebSocket endpoint (same port)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("anvil is not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The anvil command line (port 0 until started when the kernel chooses)."""
        binary = self.binary or find_anvil()
        cmd = [
            str(binary),
            "--host",
            self.host,
            "--port",
            str(self.requested_port),
            "--mnemonic",
            self.mnemonic,
            "--accounts",
            str(self.accounts),
            "--chain-id",
            str(self.chain_id),
        ]
        if self.balance is not None:
            cmd += ["--balance", str(self.balance)]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.no_mining:
            cmd.append("--no-mining")
        return cmd + self.extra_args

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Anvil:
        """Spawn anvil and wait until ``eth_chainId`` answers with ``chain_id``.

        Raises:
            AnvilNotFoundError: no binary (see :func:`find_anvil`).
            AnvilStartError: anvil exited, or did not answer within
                ``startup_timeout`` (the process is killed); the message has
                the end of its log.
        """
        if self.process is not None:
            raise RuntimeError("anvil is already started")
        if self.binary is None:
            self.binary = find_anvil()
        cmd = self.command()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.die_with_parent and sys.platform == "linux" else None,
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        assert self.process is not None and self.log_path is not None
        deadline = began + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise AnvilStartError(
                    f"anvil exited with status {self.process.returncode} before answering"
                    f"\n{self._describe()}"
                )
            if self._port is None:
                if match := _LISTENING.search(self.log_path.read_text(errors="replace")):
                    self._port = int(match.group(2))
            if self._port is not None:
                try:
                    answer = int(rpc(self.uri, "eth_chainId", timeout=2.0), 16)
                except (OSError, RPCError, ValueError):
                    pass
                else:
                    if answer != self.chain_id:
                        raise AnvilStartError(
                            f"{self.uri} answered chain id {answer}, expected {self.chain_id}"
                            f"\n{self._describe()}"
                        )
                    return
            if time.monotonic() > deadline:
                raise AnvilStartError(
                    f"anvil did not answer eth_chainId within {self.startup_timeout:g} s"
                    f"\n{self._describe()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate anvil (SIGTERM; SIGKILL after ``timeout`` seconds).

        Idempotent. Returns the exit status, or ``None`` if it never started.
        """
        atexit.unregister(self.stop)
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- Ape ---------------------------------------------------------------

    def ape_env(self) -> dict[str, str]:
        """Environment for an Ape process (``ape run``, ``ape test``, ``silverback
        run``) given ``--network ethereum:local:foundry`` (:data:`APE_NETWORK`):

        - ``APE_FOUNDRY_HOST``: ape-foundry connects to this URI (it wins over
          ``foundry: host`` in ``ape-config.yaml``);
        - ``APE_MANAGE_PROCESS=false``: if the node is not reachable,
          ape-foundry fails instead of starting an anvil of its own on that
          port. (The variable has no ``FOUNDRY_`` in it: ape-foundry's settings
          take the bare ``APE_`` prefix.)
        """
        return {"APE_FOUNDRY_HOST": self.uri, "APE_MANAGE_PROCESS": "false"}

    def ape_provider_settings(self) -> dict[str, Any]:
        """``provider_settings`` for Ape in this Python process::

            with networks.parse_network_choice(APE_NETWORK, provider_settings=node.ape_provider_settings()):
                ...
        """
        return {"host": self.uri, "manage_process": False}

    # -- helpers -------------------------------------------------------------

    def rpc(self, method: str, *params: Any, timeout: float = 10.0) -> Any:
        """One JSON-RPC call to this node; returns ``result``."""
        return rpc(self.uri, method, params, timeout=timeout)

    def set_automine(self, enabled: bool) -> None:
        """Mine a block per transaction (``evm_setAutomine``); turning it on
        stops interval mining."""
        self.rpc("evm_setAutomine", enabled)

    def set_interval_mining(self, seconds: int) -> None:
        """Mine a block every ``seconds`` (whole seconds; ``evm_setIntervalMining``).
        This turns auto-mining off; 0 stops interval mining too (then nothing
        is mined until :meth:`mine` or :meth:`set_automine`)."""
        self.rpc("evm_setIntervalMining", int(seconds))

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now (``anvil_mine``)."""
        self.rpc("anvil_mine", hex(blocks))

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of anvil's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _describe(self) -> str:
        cmd = " ".join(self.command()).replace(self.mnemonic, "<mnemonic>")
        return f"command: {cmd}\nlog {self.log_path} (tail):\n{self.log_tail()}"

    def __repr__(self) -> str:
        where = self.uri if self._port is not None else "not started"
        return f"<Anvil {where} pid={self.process.pid if self.process else None}>"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m margin_engine.anvil",
        description="Run anvil with the project's test accounts until Ctrl+C.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    mining = parser.add_mutually_exclusive_group()
    mining.add_argument("--block-time", type=float, default=None, help="interval mining (s)")
    mining.add_argument("--no-mining", action="store_true", help="mine on demand only")
    parser.add_argument("--log", default=None, help="log file (default: a temporary file)")
    args = parser.parse_args(argv)

    node = Anvil(
        port=args.port, block_time=args.block_time, no_mining=args.no_mining, log_path=args.log
    )
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    with node:
        print(f"anvil {node.uri} (pid {node.pid}, log {node.log_path})", flush=True)
        try:
            while not stop and node.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
