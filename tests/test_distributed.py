"""`lens audit --scheduler`: a real `dask scheduler` and two real `dask worker` processes on loopback give exactly the
local audit's results, from the DB and straight from the Parquet export."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import sql

from app import synth
from app.cli.main import cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask")]

DASK = str(Path(sys.executable).parent / "dask")
REPLAY_ROWS = "SELECT task_id, result, replayed_allow, reason, deny_json, sentence FROM replays ORDER BY task_id"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, and its children, by its own process group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def dask_cluster(tmp: Path, workers: int = 2) -> Iterator[str]:
    """`dask scheduler` and `workers` × `dask worker` (one thread each) on 127.0.0.1 → the scheduler's address."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp / "dask-logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen] = []
    common = {"start_new_session": True, "cwd": str(tmp), "stdin": subprocess.DEVNULL}
    files = contextlib.ExitStack()
    try:
        procs.append(
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=files.enter_context(open(logs / "scheduler.log", "w")),
                stderr=subprocess.STDOUT,
                **common,
            )
        )
        for i in range(workers):
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"]
                    + ["--name", f"w{i}", "--local-directory", str(tmp / f"w{i}")],
                    stdout=files.enter_context(open(logs / f"worker{i}.log", "w")),
                    stderr=subprocess.STDOUT,
                    **common,
                )
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(workers, timeout=60)
                    break
            except (OSError, TimeoutError):
                assert time.monotonic() < deadline, (logs / "scheduler.log").read_text()[-2000:]
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)
        files.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("dsynth") / "s.duckdb"
    synth.build(path, tasks=1200, seed=11)
    return path


def _audit(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, ["audit", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_audit_on_a_dask_cluster_equals_the_local_audit(cluster, synth_db, tmp_path):
    local_db, dask_db = tmp_path / "local.duckdb", tmp_path / "dask.duckdb"
    shutil.copy(synth_db, local_db)
    shutil.copy(synth_db, dask_db)
    local = _audit(["--db", str(local_db), "--workers", "1"])
    remote = _audit(["--db", str(dask_db), "--scheduler", cluster])
    assert remote["scheduler"] == cluster and remote["workers"] == 2
    for key in ("replayed", "match", "mismatch", "cannot_replay", "mismatches", "cannot_replay_reasons"):
        assert remote[key] == local[key], key
    # the oracle: what the DB says the colluding quorum signed wrongly is what both audits find
    faults = {r[0] for r in sql(synth_db, "SELECT task_id FROM tasks WHERE challenge_success")}
    assert set(local["mismatches"]) >= faults and local["mismatch"] > 0
    # every row both audits wrote is the same: verdict, reasons and sentence
    assert sql(dask_db, REPLAY_ROWS) == sql(local_db, REPLAY_ROWS)


def test_audit_straight_from_the_parquet_export(cluster, synth_db, tmp_path):
    out = tmp_path / "pq"
    exported = CliRunner().invoke(cli, ["export", "parquet", "--db", str(synth_db), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    local = _audit(["--db", str(synth_db), "--workers", "1", "--no-write"])
    remote = _audit(["--parquet", str(out), "--scheduler", cluster])
    assert remote["wrote_replays"] is False
    for key in ("replayed", "match", "mismatch", "cannot_replay", "cannot_replay_reasons"):
        assert remote[key] == local[key], key
    assert sorted(remote["mismatches"]) == sorted(local["mismatches"])


def test_unreachable_scheduler_is_one_clear_error(synth_db):
    port = _free_port()  # nothing listens there
    result = CliRunner().invoke(cli, ["audit", "--db", str(synth_db), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler" in result.output and "--scheduler local" in result.output


def test_whatif_on_the_dask_cluster_gives_the_local_flips(cluster, synth_db):
    """The same change over the same decisions: the cluster's flips, mismatches and reason changes are the local
    pool's, and lowering max_tx_wei flips exactly the allowed decisions above it (the oracle: amounts in SQL)."""
    from app.distributed import DaskWhatIfPool
    from app.engine import store
    from app.engine.whatif import Change, Limits, run_whatif

    limit_wei = 20 * 10**18
    con = store.connect(str(synth_db))
    try:
        tasks = [t for t in store.iter_tasks(con) if t.entrypoint == "spending_limits.allow" and t.evaluation_result]
    finally:
        con.close()
    change = Change(overrides=(("max_tx_wei", json.dumps(str(limit_wei))),))
    limits = Limits(eval_timeout_ms=5000, budget_s=600)
    local = run_whatif(tasks, change, limits, workers=1)
    with DaskWhatIfPool(cluster) as pool:
        assert pool.workers == 2
        remote = pool.run(tasks, change, limits)
    assert remote.decisions == local.decisions == len(tasks)
    assert sorted(remote.flips, key=lambda f: f.task_id) == sorted(local.flips, key=lambda f: f.task_id)
    assert sorted(remote.baseline_mismatches) == sorted(local.baseline_mismatches)
    assert remote.reasons_added == local.reasons_added and remote.errors == local.errors
    above = {
        r[0]
        for r in sql(
            synth_db,
            "SELECT t.task_id FROM tasks t JOIN replays r USING (chain_id, task_id) "
            "WHERE t.entrypoint = 'spending_limits.allow' AND CAST(t.amount_wei AS HUGEINT) > ? AND r.replayed_allow",
            [limit_wei],
        )
    }
    to_deny = {f.task_id for f in remote.flips if f.from_allow and not f.to_allow}
    assert to_deny == above and to_deny, (len(to_deny - above), len(above - to_deny))


def test_lens_whatif_scheduler_reports_what_the_local_run_does(cluster, synth_db):
    args = ["whatif", "--policy", "spending_limits", "--set", "max_tx_wei=20 ETH", "--db", str(synth_db)]
    args += ["--no-cache", "--json"]
    local = CliRunner().invoke(cli, [*args, "--workers", "1"])
    remote = CliRunner().invoke(cli, [*args, "--scheduler", cluster])
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert b["workers"] == 2
    for key in ("decisions", "flipped_to_deny", "flipped_to_allow", "by_client"):
        assert a[key] == b[key], key
    assert a["flipped_to_deny"] > 0
