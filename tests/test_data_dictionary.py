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


def test_every_meta_key_an_indexer_run_writes_is_described(fresh_anvil, tmp_path) -> None:
    """The keys are read back from a real run's `meta` (a reorg included, so last_reorg is written too)."""
    from devnet import emitter
    from indexer.deployment import parse
    from indexer.dictionary import META_KEYS
    from indexer.run import IndexOptions, index

    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = int(emitter.rpc(url, "eth_blockNumber", []), 16)
    logs = emitter.sample_task_logs(1, b"package t\n", "0x" + "aa" * 20, "0x" + "bb" * 20, [b"o"])
    snap = emitter.rpc(url, "evm_snapshot", [])
    emitter.emit_many(url, em, logs)
    dep = parse(
        {"name": "meta", "chain_id": fresh_anvil.chain_id, "rpc_url": url, "start_block": start,
         "confirmations": 0, "contracts": {"taskManager": em}}
    )  # fmt: skip
    db = str(tmp_path / "meta.duckdb")
    index(dep, IndexOptions(db=db, retries=2, backoff_s=0.01))
    emitter.rpc(url, "evm_revert", [snap])
    emitter.emit_many(url, em, logs[:1])
    emitter.emit_many(url, em, logs[1:])
    index(dep, IndexOptions(db=db, retries=2, backoff_s=0.01))
    con = duckdb.connect(db, read_only=True)
    try:
        keys = {r[0] for r in con.execute("SELECT key FROM meta").fetchall()}
    finally:
        con.close()
    assert "last_reorg" in keys and "rpc_faults" in keys
    assert keys - set(META_KEYS) == set(), "describe these meta keys in indexer/dictionary.py META_KEYS"
    section = README.read_text().split("<!-- datadict -->", 1)[1]
    assert all(f"| `{k}` |" in section for k in keys)
