"""The data dictionary: every table and column the indexer writes has a description stored in the DB schema itself,
and the README (derived tables) and docs/data-dictionary.md (raw event tables) are generated from those comments."""

from __future__ import annotations

import duckdb

from app.cli.docs_cmds import RAW_DICTIONARY, README, render_raw_dictionary
from indexer import load


def _catalog(con: duckdb.DuckDBPyConnection) -> tuple[dict, list]:
    where = "schema_name = 'main' AND NOT internal AND NOT temporary"
    tables = dict(con.execute(f"SELECT table_name, comment FROM duckdb_tables() WHERE {where}").fetchall())
    cols = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        f"WHERE table_oid IN (SELECT table_oid FROM duckdb_tables() WHERE {where})"
    ).fetchall()
    return tables, cols


def test_every_table_and_column_the_indexer_creates_has_a_description(tmp_path) -> None:
    path = str(tmp_path / "dict.duckdb")
    con = duckdb.connect(path)
    load.ensure_schema(con)
    con.close()
    con = duckdb.connect(path, read_only=True)  # the comments persist in the file: a notebook sees them
    try:
        tables, cols = _catalog(con)
    finally:
        con.close()
    assert len(tables) > 60 and len(cols) > 800
    assert [t for t, c in tables.items() if not (c or "").strip()] == []
    undocumented = [f"{t}.{c}" for t, c, d in cols if not (d or "").strip()]
    assert undocumented == [], "describe these in indexer/dictionary.py: " + ", ".join(undocumented)


def test_raw_columns_are_described_by_their_event_parameter_and_type() -> None:
    con = duckdb.connect(":memory:")
    load.ensure_schema(con)
    comments = {(t, c): d for t, c, d in _catalog(con)[1]}
    con.close()
    # EVENTS.md §(6): TaskChallengedSuccessfully(bytes32 indexed taskId, address indexed challenger)
    assert comments[("ev_task_challenged_successfully", "challenger")].startswith("`challenger` (address) (indexed")
    assert comments[("ev_task_challenged_successfully", "task_id")].startswith("`taskId` (bytes32) (indexed")
    # OperatorSocketUpdate(bytes32 indexed operatorId, string socket): the socket is data, text
    assert comments[("ev_operator_socket_update", "socket")] == "`socket` (string): text"
    # a uint256 is an exact decimal string with an approximate DOUBLE twin
    assert "exact integer as a decimal string" in comments[("ev_new_task_created", "task_intent_value")]
    assert "DOUBLE" in comments[("ev_new_task_created", "task_intent_value_num")]


def test_readme_and_raw_dictionary_are_generated_from_the_comments() -> None:
    readme = README.read_text()
    assert RAW_DICTIONARY.read_text() == render_raw_dictionary(), "run `lens docs readme`"
    section = readme.split("<!-- datadict -->", 1)[1].split("<!-- /datadict -->", 1)[0]
    con = duckdb.connect(":memory:")
    load.ensure_schema(con)
    tables, cols = _catalog(con)
    con.close()
    raw = RAW_DICTIONARY.read_text()
    for t, c, d in cols:
        where = raw if t.startswith("ev_") else section
        assert f"| `{c}` |" in where and d.replace("|", "\\|") in where, (t, c)
    for t in tables:
        assert (f"<code>{t}</code>" in raw) if t.startswith("ev_") else (f"**`{t}`**" in section), t
