"""The signer rows' copied task keys (task_pos, task_block, task_time) and the indexer's secondary indexes."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

from app import synth
from app.queries.operators import operator_scan
from indexer.load import INDEX_DDL, ensure_schema

KEYS_FROM_TASKS_SQL = """
SELECT count(*) FROM task_signers s JOIN tasks t ON t.task_id = s.task_id
WHERE s.task_block IS DISTINCT FROM coalesce(t.created_block, t.responded_block)
   OR s.task_time IS DISTINCT FROM t.created_time
   OR s.task_pos IS DISTINCT FROM coalesce(t.created_block, t.responded_block) * 100000
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("keys") / "s.duckdb"
    synth.build(path, tasks=3000, seed=5)
    return path


def test_synth_signer_rows_carry_their_tasks_keys(db) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM task_signers").fetchone()[0] > 0
        # no NewTaskCreated logs in a synthetic DB: the order key is the created block × 100000
        assert con.execute(KEYS_FROM_TASKS_SQL).fetchone()[0] == 0
        have = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert set(INDEX_DDL) <= have
    finally:
        con.close()


def test_operator_figures_agree_with_and_without_the_keys(db, tmp_path) -> None:
    """A DB derived before the key columns (NULLs) takes the join over the tasks: the same figures either way."""
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    con = duckdb.connect(str(old))
    con.execute("UPDATE task_signers SET task_pos = NULL, task_block = NULL, task_time = NULL")
    con.close()
    results = []
    for path in (db, old):
        con = duckdb.connect(str(path), read_only=True)
        try:
            results.append(operator_scan(con, 200))
        finally:
            con.close()
    keyed, joined = results
    assert keyed["figures"]["eligible"].sum() > 0
    for part in ("figures", "heatmap", "by_missing_operator"):
        pd.testing.assert_frame_equal(
            keyed[part].reset_index(drop=True), joined[part].reset_index(drop=True), check_dtype=False
        )


def test_ensure_schema_is_idempotent_on_an_existing_db(db, tmp_path) -> None:
    """Run twice on a copy (columns and indexes already there): no error, each index once."""
    path = tmp_path / "again.duckdb"
    shutil.copy(db, path)
    con = duckdb.connect(str(path))
    try:
        ensure_schema(con)
        ensure_schema(con)
        names = [r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()]
        assert sorted(set(names)) == sorted(names) and set(INDEX_DDL) <= set(names)
    finally:
        con.close()
