"""Start and stop a local anvil node: free ports, readiness, pid files, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app import settings
from indexer.errors import LensError


@dataclass(frozen=True)
class Anvil:
    """A running anvil node: its URL, port and process id (the process may belong to another `lens`)."""

    url: str
    port: int
    pid: int
    chain_id: int

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop this node by its pid (SIGTERM, then SIGKILL) and wait until it is gone."""
        stop_pid(self.pid, timeout_s)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(start: int | None = None) -> int:
    """A free TCP port: the first free one from `start` upwards, or any the OS hands out."""
    if start is not None:
        for port in range(start, start + 200):
            if port_is_free(port):
                return port
        raise LensError(f"no free port in {start}..{start + 199}", "stop what listens there or pass --port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_binary() -> str:
    """The anvil executable installed by `make setup`, or a clear error naming the make target."""
    path = settings.get("anvil_bin")
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    found = shutil.which("anvil")
    if found:
        return found
    raise LensError(
        f"anvil is not installed (looked for {path})",
        "run `make setup` — it installs @foundry-rs/anvil from the npm registry into devnet/tools/node_modules",
    )


def rpc_call(url: str, method: str, params: list | None = None, timeout_s: float = 10.0):
    """One JSON-RPC call; raises LensError on transport errors and on an error response."""
    try:
        resp = requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout_s
        )
        resp.raise_for_status()
        body = resp.json()
    except (requests.RequestException, ValueError) as err:
        raise LensError(
            f"RPC {url} unreachable ({method}): {err}", "is the node running? try `lens devnet up`"
        ) from err
    if "error" in body:
        raise LensError(f"RPC {method} failed: {body['error'].get('message', body['error'])}")
    return body["result"]


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 20.0) -> int:
    """Wait until the node at url answers eth_chainId; returns the chain id."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LensError(
                f"anvil exited with code {proc.returncode} before it was ready",
                "see the log next to the pid file, or run anvil by hand to see its error",
            )
        try:
            return int(rpc_call(url, "eth_chainId", timeout_s=1.0), 16)
        except LensError as err:
            last = str(err)
            time.sleep(0.05)
    raise LensError(f"anvil at {url} did not become ready in {timeout_s:.0f}s: {last}")


def start_anvil(
    port: int | None = None,
    chain_id: int = 31337,
    block_time: int = 0,
    accounts: int = 20,
    log_path: Path | None = None,
    exact_port: bool = False,
) -> Anvil:
    """Start anvil on `port` (the next free one if busy, unless exact_port) or any free port; wait until it answers."""
    binary = anvil_binary()
    if port is None:
        port = free_port()
    elif not port_is_free(port):
        if exact_port:
            raise LensError(f"port {port} is busy", f"stop what listens on {port}, or choose another with --port")
        port = free_port(port + 1)
    args = [
        binary,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        "--balance",
        "1000000",
        "--silent",
        # a generous gas limit lets the simulation batch many transactions into one block
        "--gas-limit",
        "300000000",
        "--code-size-limit",
        "100000",
    ]
    if block_time:
        args += ["--block-time", str(block_time)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        got = wait_ready(url, proc)
    except LensError:
        proc.kill()
        raise
    return Anvil(url=url, port=port, pid=proc.pid, chain_id=got)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie we own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # reap it if it is our exited child
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by pid (anvil from npm is a node wrapper with the real binary as its child)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_pid(pid: int, timeout_s: float = 5.0) -> bool:
    """Terminate a process we started in its own session, and its children, escalating to SIGKILL; True if it ran."""
    if not pid_alive(pid):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)  # a child that ignored SIGTERM must not outlive its wrapper
            return True
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    return True


def write_pid_file(path: Path, node: Anvil) -> None:
    """Record a node we started so `lens devnet down` stops exactly it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": node.pid, "port": node.port, "url": node.url, "chain_id": node.chain_id}))


def read_pid_file(path: Path) -> Anvil | None:
    """The node recorded in a pid file, if the file exists and the process still runs."""
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(int(doc["pid"])):
        return None
    return Anvil(url=doc["url"], port=int(doc["port"]), pid=int(doc["pid"]), chain_id=int(doc["chain_id"]))
