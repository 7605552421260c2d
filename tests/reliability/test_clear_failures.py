"""Clear failures: `lens audit --list N` (what `lens demo` shows) lists the first mismatches, counts the rest and names
the command that lists them all; `lens index --from-block/--to-block` keep --from/--to as aliases."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import duckdb
from click.testing import CliRunner
from reliability_support import fill, head, snapshot

from app.cli.main import cli
from app.engine.fixtures import synthetic_tasks, write_db
from devnet import emitter
from indexer import load


def test_audit_lists_the_first_mismatches_counts_the_rest_and_names_the_command(tmp_path: Path) -> None:
    tasks = synthetic_tasks(30, seed=3, fault_every=3)
    path = tmp_path / "lens.duckdb"
    write_db(path, tasks)
    res = CliRunner().invoke(cli, ["audit", "--db", str(path), "--workers", "1", "--list", "2"])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(path), read_only=True)
    mismatching = {r[0] for r in con.execute("SELECT task_id FROM replays WHERE result = 'mismatch'").fetchall()}
    con.close()
    assert len(mismatching) > 2  # the oracle: the replays table the audit wrote, counted in SQL
    listed = re.findall(r"MISMATCH (0x[0-9a-f]+)", res.output)
    assert len(listed) == 2 and set(listed) <= mismatching
    assert f"… and {len(mismatching) - 2} more mismatches: `lens audit --db {path}` lists all" in res.output
    full = CliRunner().invoke(cli, ["audit", "--db", str(path), "--workers", "1"])
    assert (
        set(re.findall(r"MISMATCH (0x[0-9a-f]+)", full.output)) == mismatching and "more mismatches" not in full.output
    )


def test_index_block_window_options_and_their_aliases() -> None:
    index = cli.commands["index"]
    by_name = {p.name: p for p in index.params}
    assert {"--from-block", "--from"} == set(by_name["start"].opts)
    assert {"--to-block", "--to"} == set(by_name["end"].opts)
    res = CliRunner().invoke(cli, ["index", "--from-block", "20", "--to-block", "10", "--db", "/nonexistent/x.duckdb"])
    assert res.exit_code == 1 and "--to-block 10 is before --from-block 20" in res.output


def test_a_window_from_a_recent_block_indexes_only_it_and_later_runs_resume_there(anvil, tmp_path):
    """`lens index --from-block B --to-block E` on an empty DB: rows of B..E only, the checkpoint at E; a later plain
    run resumes at E + 1 (never back to the deployment's start)."""
    em = emitter.deploy(anvil.url)
    start = head(anvil.url)
    fill(anvil.url, em, 12, per_tx=3)  # 4 blocks of 3 tasks
    window = head(anvil.url) - 1  # the last 2 blocks: 6 tasks
    end = head(anvil.url)
    fill(anvil.url, em, 6, first=50, per_tx=3)  # 2 more blocks after the window
    dep = tmp_path / "dep.json"
    dep.write_text(
        json.dumps(
            {
                "name": "window",
                "chain_id": anvil.chain_id,
                "rpc_url": anvil.url,
                "start_block": start,
                "confirmations": 0,
                "contracts": {"taskManager": em},
            }
        )
    )
    lens = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lens")]
    db = str(tmp_path / "window.duckdb")
    args = ["index", "--deployment", str(dep), "--db", db]
    out = subprocess.run(
        lens + args + ["--from-block", str(window), "--to-block", str(end)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    with load.connect_read(db) as con:
        blocks = {r[0] for r in con.execute("SELECT DISTINCT block_number FROM ev_new_task_created").fetchall()}
        cp = con.execute("SELECT min(last_block) FROM checkpoints").fetchone()[0]
    assert blocks == {window, end} and cp == end
    assert len(snapshot(db)["tasks"]) == 6
    out = subprocess.run(
        lens + args, capture_output=True, text=True, timeout=120, check=False
    )  # resumes after the window
    assert out.returncode == 0, out.stderr
    with load.connect_read(db) as con:
        blocks = {r[0] for r in con.execute("SELECT DISTINCT block_number FROM ev_new_task_created").fetchall()}
    assert blocks == {window, end, end + 1, end + 2}
    # the old aliases still work
    old = str(tmp_path / "old.duckdb")
    out = subprocess.run(
        lens + ["index", "--deployment", str(dep), "--db", old, "--from", str(window), "--to", str(end)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert len(snapshot(old)["tasks"]) == 6
