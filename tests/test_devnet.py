"""The devnet lifecycle as a user runs it: `lens devnet up|status|down`, reuse, and its clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import LensError
from devnet.anvil import free_port, pid_alive, rpc_call, start_anvil

LENS = [sys.executable, "-m", "app.cli.main"]


def run_lens(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the lens CLI as a user would, capturing its output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*LENS, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False)


@pytest.mark.xdist_group("devnet_cli")
def test_up_reuse_status_down(tmp_path: Path) -> None:
    """`up` deploys and writes the document, a second `up` reuses the chain, `down` stops exactly that process."""
    dep = tmp_path / "devnet" / "deployment.json"
    port = free_port()
    env = {"LENS_DEPLOYMENT_FILE": str(dep), "LENS_PORT": str(port)}
    first = run_lens("devnet", "up", "--json", env=env)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc == json.loads(dep.read_text())
    assert doc["chain_id"] == 31337 and doc["rpc_url"] == f"http://127.0.0.1:{port}"
    for role in ("taskManager", "attestationValidator", "challengeVerifier", "operatorRegistry", "token"):
        code = rpc_call(doc["rpc_url"], "eth_getCode", [doc["contracts"][role], "latest"])
        assert len(code) > 2, role
    assert doc["policies"] and doc["clients"]
    try:
        again = run_lens("devnet", "up", "--json", env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["contracts"] == doc["contracts"]
        human = run_lens("devnet", "up", env=env)
        assert "reusing the running devnet" in human.stdout
        status = json.loads(run_lens("devnet", "status", "--json", env=env).stdout)
        assert status["running"] and status["pid"] == doc["anvil_pid"] and status["head_block"] >= 1
    finally:
        down = run_lens("devnet", "down", env=env)
    assert down.returncode == 0 and f"pid {doc['anvil_pid']}" in down.stdout
    assert not pid_alive(doc["anvil_pid"])
    assert "no devnet running" in run_lens("devnet", "down", env=env).stdout


def test_busy_port_is_skipped_or_reported() -> None:
    """A busy port: `up` moves to the next free one, and an exact port request says it is busy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(LensError, match=f"port {busy} is busy"):
            start_anvil(port=busy, exact_port=True)
        node = start_anvil(port=busy)
        try:
            assert node.port != busy and rpc_call(node.url, "eth_chainId") == hex(31337)
        finally:
            node.stop()


def test_missing_anvil_names_the_make_target(tmp_path: Path) -> None:
    """Without anvil, `lens devnet up` says what is missing and which make target installs it."""
    env = {
        "LENS_ANVIL_BIN": str(tmp_path / "nope" / "anvil"),
        "PATH": "/usr/bin:/bin",
        "LENS_DEPLOYMENT_FILE": str(tmp_path / "d" / "deployment.json"),
    }
    out = run_lens("devnet", "up", env=env)
    assert out.returncode == 1
    assert "anvil is not installed" in out.stderr and "make setup" in out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_rpc_is_a_clear_error() -> None:
    """An RPC nobody listens on gives a LensError that says what to do."""
    with pytest.raises(LensError, match="unreachable") as info:
        rpc_call(f"http://127.0.0.1:{free_port()}", "eth_chainId", timeout_s=1)
    assert "lens devnet up" in info.value.hint
