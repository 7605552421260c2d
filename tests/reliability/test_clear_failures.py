"""Clear failures: `lens audit --list N` (what `lens demo` shows) lists the first mismatches, counts the rest and names
the command that lists them all; `lens index --from-block/--to-block` keep --from/--to as aliases."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
from click.testing import CliRunner

from app.cli.main import cli
from app.engine.fixtures import synthetic_tasks, write_db


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
