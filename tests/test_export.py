"""`lens export parquet`: DuckDB reads the Hive-partitioned export back with every count and checksum of the DB."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import simulated_devnet

from app import synth
from app.cli.main import cli
from app.export import export_parquet


def db_tables(db: Path) -> dict[str, list[str]]:
    """Every base table of the DB and its columns, straight from DuckDB's catalog."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out: dict[str, list[str]] = {}
        for t, c in con.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position"
        ).fetchall():
            out.setdefault(t, []).append(c)
        return out
    finally:
        con.close()


def fingerprint(con: duckdb.DuckDBPyConnection, relation: str, cols: list[str]) -> tuple[int, int]:
    """(rows, sum of row hashes) of a relation: the test's own checksum, computed the same way on both sides."""
    expr = ", ".join(f'CAST("{c}" AS BIGINT)' if c == "chain_id" else f'"{c}"' for c in cols)
    n, s = con.execute(f"SELECT count(*), sum(CAST(hash({expr}) AS HUGEINT)) FROM {relation}").fetchone()
    return int(n), int(s or 0)


def parquet_files(out: Path, table: str) -> list[Path]:
    return sorted((out / table).rglob("*.parquet")) if (out / table).exists() else []


def compare_with_db(db: Path, out: Path) -> dict[str, int]:
    """Assert every table of the DB comes back from the export with the same rows and checksum → rows per table."""
    tables = db_tables(db)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["tables"]) == set(tables)
    con = duckdb.connect(str(db), read_only=True)
    counts = {}
    try:
        for t, cols in tables.items():
            want = fingerprint(con, t, cols)
            files = parquet_files(out, t)
            assert manifest["tables"][t]["rows"] == want[0], t
            if want[0] == 0:
                assert files == [], t
                counts[t] = 0
                continue
            rel = f"read_parquet('{out / t}/**/*.parquet', hive_partitioning = true)"
            got = fingerprint(con, rel, cols)
            assert got == want, t
            counts[t] = got[0]
    finally:
        con.close()
    return counts


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A DB the real indexer wrote from a simulated devnet, audited (so `replays` has rows too)."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    tmp = tmp_path_factory.mktemp("export")
    db = tmp / "lens.duckdb"
    with simulated_devnet(tasks=30, operators=4, fault_rate=0.1) as (_node, _w3, doc, _result):
        index(parse(doc, "devnet"), IndexOptions(db=str(db), metadata_timeout_s=1))
    audit = CliRunner().invoke(cli, ["audit", "--db", str(db), "--workers", "1", "--json"])
    assert audit.exit_code == 0, audit.output
    return db


@pytest.mark.slow
def test_export_of_an_indexed_devnet_reads_back_with_every_count_and_checksum(indexed, tmp_path):
    out = tmp_path / "pq"
    result = CliRunner().invoke(cli, ["export", "parquet", "--db", str(indexed), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = compare_with_db(indexed, out)
    # the raw events and the derived tables both made it, with rows
    for t in ("ev_new_task_created", "ev_task_responded", "ev_operator_registered", "ev_policy_set", "blocks"):
        assert counts[t] > 0, t
    for t in ("tasks", "task_signers", "operators", "policy_versions", "replays"):
        assert counts[t] > 0, t
    assert summary["rows"] == sum(counts.values())
    # the block range is the chain's: that of the blocks the indexer recorded
    con = duckdb.connect(str(indexed), read_only=True)
    lo, hi, chain = con.execute(
        "SELECT min(block_number), max(block_number), any_value(chain_id) FROM blocks"
    ).fetchone()
    months = {
        r[0] for r in con.execute("SELECT DISTINCT strftime(block_time, '%Y-%m') FROM ev_new_task_created").fetchall()
    }
    con.close()
    assert summary["block_range"][str(chain)][0] <= lo and summary["block_range"][str(chain)][1] == hi
    # Hive layout: chain_id=…/month=… directories, and every row in the month its block time says
    parts = {
        p.parent.relative_to(out / "ev_new_task_created").as_posix() for p in parquet_files(out, "ev_new_task_created")
    }
    assert parts == {f"chain_id={chain}/month={m}" for m in months}
    check = duckdb.connect()
    wrong = check.execute(
        f"SELECT count(*) FROM read_parquet('{out}/ev_task_responded/*/*/*.parquet', hive_partitioning = true) "
        "WHERE strftime(block_time, '%Y-%m') <> month OR chain_id <> ?",
        [chain],
    ).fetchone()[0]
    assert wrong == 0
    # a task's signers sit in the month of the task's creation
    orphan = check.execute(
        f"SELECT count(*) FROM read_parquet('{out}/task_signers/*/*/*.parquet', hive_partitioning = true) s "
        f"ANTI JOIN read_parquet('{out}/tasks/*/*/*.parquet', hive_partitioning = true) t "
        "ON t.task_id = s.task_id AND t.month = s.month"
    ).fetchone()[0]
    assert orphan == 0
    # the same question over the export as over the DB (the README's example)
    q = "SELECT status, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    via_parquet = check.execute(
        q.format(f"read_parquet('{out}/tasks/*/*/*.parquet', hive_partitioning = true)")
    ).fetchall()
    check.close()
    con = duckdb.connect(str(indexed), read_only=True)
    assert via_parquet == con.execute(q.format("tasks")).fetchall()
    con.close()


def _stat(files: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def test_rerun_on_a_grown_db_writes_only_new_partitions(tmp_path):
    db = tmp_path / "s.duckdb"
    synth.build(db, tasks=800, seed=5)
    out = tmp_path / "pq"
    runner = CliRunner()
    first = runner.invoke(cli, ["export", "parquet", "--db", str(db), "--out", str(out), "--json"])
    assert first.exit_code == 0, first.output
    before = _stat(sorted(out.rglob("*.parquet")))
    # nothing changed: nothing written
    again = json.loads(runner.invoke(cli, ["export", "parquet", "--db", str(db), "--out", str(out), "--json"]).stdout)
    assert again["partitions_written"] == 0 and again["partitions_removed"] == 0
    assert _stat(sorted(out.rglob("*.parquet"))) == before
    # the chain grows into a later month: copies of 25 tasks (new ids) and their blocks, three months on
    con = duckdb.connect(str(db))
    later = "INTERVAL 92 DAY"
    con.execute(
        f"INSERT INTO tasks SELECT * REPLACE ('0x' || sha256(task_id) AS task_id, created_time + {later} AS created_time, "
        "created_block + 4000000 AS created_block) FROM tasks ORDER BY created_block LIMIT 25"
    )
    con.execute(
        f"INSERT INTO blocks SELECT * REPLACE (block_number + 4000000 AS block_number, block_time + {later} AS block_time) "
        "FROM blocks ORDER BY block_number LIMIT 7"
    )
    new_month = con.execute("SELECT strftime(max(created_time), '%Y-%m') FROM tasks").fetchone()[0]
    chain = con.execute("SELECT any_value(chain_id) FROM tasks").fetchone()[0]
    con.close()
    grown = json.loads(runner.invoke(cli, ["export", "parquet", "--db", str(db), "--out", str(out), "--json"]).stdout)
    assert grown["written"] == {
        "blocks": [f"chain_id={chain}/month={new_month}"],
        "tasks": [f"chain_id={chain}/month={new_month}"],
    }
    after = _stat(sorted(out.rglob("*.parquet")))
    assert {k: v for k, v in after.items() if k in before} == before  # every earlier file untouched
    assert all(f"month={new_month}" in k for k in set(after) - set(before))
    compare_with_db(db, out)
    # a rollback (the rows go away again) removes the partition
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM tasks WHERE strftime(created_time, '%Y-%m') = ?", [new_month])
    con.close()
    shrunk = json.loads(runner.invoke(cli, ["export", "parquet", "--db", str(db), "--out", str(out), "--json"]).stdout)
    assert shrunk["removed"] == {"tasks": [f"chain_id={chain}/month={new_month}"]}
    assert not (out / "tasks" / f"chain_id={chain}" / f"month={new_month}").exists()
    compare_with_db(db, out)


def test_export_refuses_a_directory_that_is_not_an_export(tmp_path):
    db = tmp_path / "s.duckdb"
    synth.build(db, tasks=50, seed=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["export", "parquet", "--db", str(db), "--out", str(tmp_path / "mine")])
    assert result.exit_code == 1
    assert "not a Lens export" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    missing = CliRunner().invoke(cli, ["export", "parquet", "--db", str(tmp_path / "nope.duckdb"), "--out", "x"])
    assert missing.exit_code == 1 and "no database" in missing.output


rows = st.lists(
    st.tuples(
        st.sampled_from([1, 8453, 31337]),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.one_of(st.none(), st.text(max_size=12)),
        st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31)),
        st.one_of(st.none(), st.booleans()),
        st.one_of(st.none(), st.floats(allow_nan=False)),
    ),
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=rows, second=rows)
def test_export_round_trip_property(tmp_path_factory, first, second):
    """Any rows, exported, grown and exported again, read back as exactly the table's rows (as a multiset)."""
    out = tmp_path_factory.mktemp("prop") / "pq"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE ev_x (chain_id BIGINT, block_number BIGINT, note VARCHAR, block_time TIMESTAMP, ok BOOLEAN, v DOUBLE)"
    )
    con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('k', 'v')")
    for batch in (first, second):
        if batch:
            con.executemany("INSERT INTO ev_x VALUES (?, ?, ?, ?, ?, ?)", batch)
        export_parquet(con, out)
        want = sorted(con.execute("SELECT * FROM ev_x").fetchall(), key=repr)
        files = list((out / "ev_x").rglob("*.parquet")) if (out / "ev_x").exists() else []
        got = (
            sorted(
                con.execute(
                    f"SELECT CAST(chain_id AS BIGINT), block_number, note, block_time, ok, v FROM "
                    f"read_parquet('{out}/ev_x/*/*/*.parquet', hive_partitioning = true)"
                ).fetchall(),
                key=repr,
            )
            if files
            else []
        )
        assert got == want
    assert os.path.exists(out / "meta" / "data.parquet")
