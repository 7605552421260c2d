"""Reorgs while following the head: anvil snapshot / revert, then a different (longer) branch, of depth 1 to
2 x confirmations at random heights. After each, the DB equals a fresh index of the canonical chain, and the
rolled-back tasks have lost every derived row, their replays included."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from reliability_support import FAST, deployment, rpc, snapshot

from devnet import emitter
from indexer import load
from indexer.errors import LensError
from indexer.run import IndexOptions, index

LENS = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lens")]

pytestmark = pytest.mark.xdist_group("reliability_reorgs")

CONFIRMATIONS = 2
SOURCE = b"package t\ndefault allow := false\n"


class Chain:
    """The test's own view of the chain: which tasks each block holds, and an anvil snapshot after each block."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.em = emitter.deploy(url)
        self.tasks_at: dict[int, list[int]] = {}
        self.snaps: dict[int, str] = {}
        self.next_task = 0
        self.head = self._head()
        self.snaps[self.head] = rpc(url, "evm_snapshot", [])

    def _head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber", []), 16)

    def block(self, n_tasks: int, tag: bytes) -> None:
        """One block with n_tasks new tasks (ids never reused, so a rolled-back task cannot come back)."""
        ids = list(range(self.next_task, self.next_task + n_tasks))
        self.next_task += n_tasks
        logs = []
        for k in ids:
            logs += emitter.sample_task_logs(k, SOURCE + tag, "0x" + "aa" * 20, "0x" + "bb" * 20, [b"op"])
        if logs:
            emitter.emit_many(self.url, self.em, logs)
        else:
            rpc(self.url, "evm_mine", [])
        self.head = self._head()
        self.tasks_at[self.head] = ids
        self.snaps[self.head] = rpc(self.url, "evm_snapshot", [])

    def reorg(self, depth: int) -> list[int]:
        """Back to head - depth; returns the task numbers of the orphaned blocks."""
        fork = self.head - depth
        assert rpc(self.url, "evm_revert", [self.snaps[fork]])
        orphaned = [t for h in range(fork + 1, self.head + 1) for t in self.tasks_at.pop(h, [])]
        self.snaps = {h: s for h, s in self.snaps.items() if h < fork}
        self.head = self._head()
        assert self.head == fork
        self.snaps[fork] = rpc(self.url, "evm_snapshot", [])  # a revert consumes its snapshot
        return orphaned


def _task_id(k: int) -> str:
    from eth_utils import keccak

    return "0x" + keccak(b"bench-task" + k.to_bytes(8, "big")).hex()


def _indexed(db: str) -> tuple[int, str | None]:
    """(checkpoint, meta last_reorg) of the follower's DB, read between its batches."""
    if not Path(db).exists():
        return -1, None
    try:
        with load.connect_read(db, timeout_s=10) as con:
            cp = con.execute("SELECT min(last_block) FROM checkpoints").fetchone()[0]
            reorg = con.execute("SELECT value FROM meta WHERE key = 'last_reorg'").fetchone()
    except (LensError, duckdb.Error):
        return -1, None
    return (-1 if cp is None else cp), (reorg[0] if reorg else None)


def _wait_for(db: str, block: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and _indexed(db)[0] != block and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the follower stopped: " + proc.communicate()[1]
    assert _indexed(db)[0] == block, (_indexed(db), block)


def _audit_everything(db: str) -> set[str]:
    """Stand in for `lens audit`: a replays row for every task now indexed (taking the write lock between batches)."""
    with load.connect_write(db) as con:
        con.execute(
            "INSERT INTO replays SELECT chain_id, task_id, now()::TIMESTAMP, allow, 'match', NULL, '[]', 'ok' "
            "FROM tasks WHERE task_id NOT IN (SELECT task_id FROM replays)"
        )
        # and a cache of the app's own, keyed by task (as the what-if keeps one): derived rows the indexer never wrote
        con.execute("CREATE TABLE IF NOT EXISTS app_cache (chain_id BIGINT, task_id VARCHAR, note VARCHAR)")
        con.execute(
            "INSERT INTO app_cache SELECT chain_id, task_id, 'x' FROM tasks "
            "WHERE task_id NOT IN (SELECT task_id FROM app_cache)"
        )
        return {r[0] for r in con.execute("SELECT task_id FROM replays").fetchall()}


def test_random_reorgs_while_following_leave_the_db_equal_to_a_fresh_index(fresh_anvil, tmp_path):
    rng = random.Random(13)
    chain = Chain(fresh_anvil.url)
    start = chain.head + 1
    dep = deployment(fresh_anvil.url, fresh_anvil.chain_id, chain.em, start, confirmations=CONFIRMATIONS)
    dep_file = tmp_path / "dep.json"
    dep_file.write_text(
        json.dumps(
            {
                "name": "reorgs",
                "chain_id": fresh_anvil.chain_id,
                "rpc_url": fresh_anvil.url,
                "start_block": start,
                "confirmations": CONFIRMATIONS,
                "contracts": {"taskManager": chain.em},
            }
        )
    )
    for _ in range(6):
        chain.block(rng.randint(0, 3), b"")
    db = str(tmp_path / "follow.duckdb")
    # its own process: DuckDB allows one writer process, and this test reads and writes the file between batches
    proc = subprocess.Popen(
        LENS + ["index", "--deployment", str(dep_file), "--db", db, "--follow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    depths = []
    try:
        _wait_for(db, chain.head - CONFIRMATIONS, proc)
        for round_ in range(6):
            audited = _audit_everything(db)
            depth = rng.randint(1, 2 * CONFIRMATIONS)
            depths.append(depth)
            reorg_before = _indexed(db)[1]
            fork = chain.head - depth
            orphaned = {_task_id(k) for k in chain.reorg(depth)}
            for _ in range(depth + rng.randint(1, 3)):  # a different, longer branch
                chain.block(rng.randint(0, 3), b"branch %d" % round_)
            _wait_for(db, chain.head - CONFIRMATIONS, proc)
            checkpoint, reorg_after = _indexed(db)
            if depth > CONFIRMATIONS:  # the orphaned blocks had been indexed: rolled back to the fork or below
                assert reorg_after != reorg_before and int(reorg_after.rsplit(" ", 1)[1]) <= fork, reorg_after
            else:  # the confirmations kept them out of the DB: nothing to roll back
                assert reorg_after == reorg_before
            fresh = str(tmp_path / f"fresh{round_}.duckdb")
            index(dep, IndexOptions(db=fresh, end=checkpoint, **FAST))
            assert snapshot(db) == snapshot(fresh), f"round {round_}, depth {depth}"
            with load.connect_read(db) as con:
                tasks = {r[0] for r in con.execute("SELECT task_id FROM tasks").fetchall()}
                replays = {r[0] for r in con.execute("SELECT task_id FROM replays").fetchall()}
                cached = {r[0] for r in con.execute("SELECT task_id FROM app_cache").fetchall()}
            canonical = {_task_id(k) for h, ks in chain.tasks_at.items() if start <= h <= checkpoint for k in ks}
            assert tasks == canonical
            assert not (orphaned & tasks)
            assert replays == audited - orphaned  # the orphaned tasks' replays went with them; the others stayed
            assert cached == audited - orphaned
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert any(d > CONFIRMATIONS for d in depths) and any(d <= CONFIRMATIONS for d in depths), depths
