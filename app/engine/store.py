"""DuckDB edges of the engine: load TaskRecords (tasks + blobs), find the nearest id, write the `replays` table."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from app.engine.replay import Replay, TaskRecord, task_from_row
from app.errors import LensError
from app.lookup import Resolved, resolve

# The engine's own SQL: task rows with their policy source, nearest-key lookup, and the `replays` rewrite.
ENGINE_TASK_SELECT = """
SELECT t.*, b.content AS policy_source
FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash
"""
TASKS_TABLE_SQL = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'tasks'"
ENGINE_TASK_BY_ID_SQL = ENGINE_TASK_SELECT + "\nWHERE t.task_id = ?\nLIMIT 1\n"
ENGINE_TASKS_SQL = (
    ENGINE_TASK_SELECT
    + """
ORDER BY t.created_block, t.task_id
LIMIT ?
"""
)
ENGINE_REPLAYS_DELETE_SQL = (
    "DELETE FROM replays WHERE (chain_id, task_id) IN (SELECT chain_id, task_id FROM replay_rows)"
)
ENGINE_REPLAYS_INSERT_SQL = "INSERT INTO replays BY NAME SELECT * FROM replay_rows"


def check_db_file(path: str) -> Path:
    """The DB path if it exists and is a DuckDB file; LensError saying which of the two it is not."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise LensError(f"no database at {p}", "index a chain with `lens index` (or pass --db PATH)")
    with p.open("rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[8:12] != b"DUCK":  # every DuckDB file carries its magic bytes at offset 8
        raise LensError(
            f"{p} is not a DuckDB database",
            "pass --db the file `lens index` (or `lens synth`) wrote, e.g. data/lens.duckdb",
        )
    return p


def connect(path: str, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the Lens DB; LensError if it is missing, not a DuckDB file, or locked by a writer."""
    p = check_db_file(path)
    try:
        return duckdb.connect(str(p), read_only=read_only)
    except duckdb.Error as err:
        raise LensError(
            f"cannot open {p}: {err}", "another process may be writing it (the indexer); retry when it is done"
        ) from None


@contextlib.contextmanager
def reading(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection, retried while a writer holds the file (the indexer's `connect_read`)."""
    from indexer.load import (
        connect_read,  # local: only the audit pages through the DB; `lens explain` skips the indexer import
    )

    check_db_file(path)
    with connect_read(str(Path(path).expanduser())) as con:
        yield con


@contextlib.contextmanager
def writing(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The read-write connection, retried while others hold the file, closed on exit (the indexer's `connect_write`)."""
    from indexer.load import connect_write

    with connect_write(str(Path(path).expanduser())) as con:
        yield con


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _record(row: dict[str, Any], sources: dict[str, str] | None = None) -> TaskRecord:
    source = row.get("policy_source")
    if sources is not None and source is not None:
        source = sources.setdefault(source, source)  # one copy per distinct source, not one per task
    return task_from_row(row, source)


def load_task(con: duckdb.DuckDBPyConnection, key: str) -> TaskRecord:
    """The task a task id, any transaction tied to it, or a unique prefix of either names; LensError otherwise."""
    return load_lookup(con, key)[0]


def load_lookup(con: duckdb.DuckDBPyConnection, key: str) -> tuple[TaskRecord, Resolved]:
    """(the task, how the key resolved to it); LensError saying what is wrong with the key or what it matches."""
    try:
        found = resolve(con, key)
    except duckdb.CatalogException:
        raise LensError("the database has no tasks table", "index a chain first (`lens index`)") from None
    if found.kind in ("invalid", "empty"):
        raise LensError(
            found.problem or "no task id or transaction hash given",
            "copy the whole hash (a block explorer shows it), or a prefix of at least 6 hex digits",
        )
    if found.kind == "address":
        raise LensError(
            f"{found.query} is an address (40 hex digits), not a task id or transaction hash (64)",
            "the verdict page lists every decision of an address: open it with ?q=" + found.query,
        )
    if found.kind == "ambiguous":
        raise LensError(
            f"{key.strip()} is the start of {len(found.candidates)} task ids or transactions: "
            + ", ".join(found.candidates[:5])
            + (" …" if len(found.candidates) > 5 else ""),
            "type more of it",
        )
    if found.kind == "none" and not con.execute(TASKS_TABLE_SQL).fetchone()[0]:
        raise LensError("the database has no tasks table", "index a chain first (`lens index`)")
    if found.kind == "none":
        raise LensError(
            f"no task or transaction {found.query} in the database",
            "it may not be indexed yet: `lens index status` shows the last indexed block",
        )
    if len(found.task_ids) > 1:
        raise LensError(
            f"transaction {found.query} is tied to {len(found.task_ids)} tasks: " + ", ".join(found.task_ids),
            "pass one of the task ids",
        )
    try:
        rows = _rows(con.execute(ENGINE_TASK_BY_ID_SQL, [found.task_ids[0]]))
    except duckdb.CatalogException:
        raise LensError("the database has no tasks table", "index a chain first (`lens index`)") from None
    if not rows:  # an event names a task the tasks table does not hold (yet)
        raise LensError(
            f"transaction {found.query} names task {found.task_ids[0]}, which is not indexed",
            "index the blocks of its creation and response (`lens index --from-block …`)",
        )
    return _record(rows[0]), found


def iter_tasks(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> Iterator[TaskRecord]:
    """Every task (with its policy source), in creation order."""
    cur = con.execute(ENGINE_TASKS_SQL, [limit if limit is not None else 2**62])
    names = [d[0] for d in cur.description]
    sources: dict[str, str] = {}
    while True:
        chunk = cur.fetchmany(2000)
        if not chunk:
            return
        for r in chunk:
            yield _record(dict(zip(names, r)), sources)


# keyset paging for the audit: a page at a time, on a short-lived read connection (the indexer may be writing)
_PAGE_SQL = (
    ENGINE_TASK_SELECT
    + """
WHERE coalesce(t.created_block, -1) > ? OR (coalesce(t.created_block, -1) = ? AND t.task_id > ?)
ORDER BY coalesce(t.created_block, -1), t.task_id
LIMIT ?
"""
)


def count_tasks(db_path: str) -> int:
    """How many tasks the DB holds (0 if it has no tasks table)."""
    with reading(db_path) as con:
        try:
            return int(con.execute("SELECT count(*) FROM tasks").fetchone()[0])
        except duckdb.CatalogException:
            return 0


def iter_task_pages(db_path: str, page: int = 20000, limit: int | None = None) -> Iterator[list[TaskRecord]]:
    """Every task (with its policy source) in creation order, `page` at a time; the DB is open only while a page
    is read, so a long audit neither holds the indexer off nor keeps a million tasks in memory."""
    key: tuple[int, str] = (-2, "")
    left = limit if limit is not None else 2**62
    sources: dict[str, str] = {}
    while left > 0:
        with reading(db_path) as con:
            try:
                cur = con.execute(_PAGE_SQL, [key[0], key[0], key[1], min(page, left)])
            except duckdb.CatalogException:
                raise LensError("the database has no tasks table", "index a chain first (`lens index`)") from None
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        if not rows:
            return
        last = rows[-1]
        key = (-1 if last.get("created_block") is None else int(last["created_block"]), last["task_id"])
        left -= len(rows)
        yield [_record(r, sources) for r in rows]


def write_replays(con: duckdb.DuckDBPyConnection, chain_ids: dict[str, int], results: list[tuple[Replay, str]]) -> int:
    """Upsert audit results into `replays` (one transaction, from a DataFrame)."""
    from indexer import aggregates
    from indexer.load import ddl

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    frame = pd.DataFrame(
        [
            {
                "chain_id": chain_ids.get(r.task_id, 0),
                "task_id": r.task_id,
                "replayed_at": now,
                "replayed_allow": r.replayed_allow,
                "result": r.result,
                "reason": r.reason,
                "deny_json": json.dumps(list(r.deny)),
                "sentence": sentence,
            }
            for r, sentence in results
        ],
        columns=["chain_id", "task_id", "replayed_at", "replayed_allow", "result", "reason", "deny_json", "sentence"],
    )
    frame["replayed_allow"] = frame["replayed_allow"].astype("boolean")
    con.execute(ddl("replays"))
    # the dashboard looks replays up by task id (a verdict, a page of decisions): an index, not a scan of millions
    con.execute("CREATE INDEX IF NOT EXISTS replays_task_id ON replays (task_id)")
    con.register("replay_rows", frame)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(ENGINE_REPLAYS_DELETE_SQL)
        con.execute(ENGINE_REPLAYS_INSERT_SQL)
        aggregates.mark_replayed(con, "replay_rows")  # the Disputes page reads each task's replay off its row
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("replay_rows")
    return len(frame)
