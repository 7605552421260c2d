"""DuckDB side: schema, short-lived connections with lock retry, Arrow inserts, checkpoints, meta."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from indexer import dictionary
from indexer.decode import TABLES, UNDECODABLE_COLUMNS, Column
from indexer.errors import LensError

_ARROW = {
    "BIGINT": pa.int64(),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("s"),
}

DERIVED_DDL = {
    "tasks": """
        chain_id BIGINT, task_id VARCHAR, policy_client VARCHAR, policy_address VARCHAR, policy_id VARCHAR,
        created_block BIGINT, created_time TIMESTAMP, created_tx VARCHAR, task_created_block BIGINT,
        quorum_threshold_pct BIGINT, quorum_numbers VARCHAR, intent_from VARCHAR, intent_to VARCHAR,
        intent_value VARCHAR, intent_value_num DOUBLE, intent_data VARCHAR, intent_chain_id BIGINT,
        function_signature VARCHAR, function_name VARCHAR, function_args_json VARCHAR, asset VARCHAR,
        amount_wei VARCHAR, amount_num DOUBLE, counterparty VARCHAR, responded_block BIGINT, responded_time TIMESTAMP,
        responded_tx VARCHAR, evaluation_result VARCHAR, allow BOOLEAN, response_expire_block BIGINT,
        policy_code_hash VARCHAR, entrypoint VARCHAR, params_json VARCHAR, policy_data_json VARCHAR,
        hash_of_non_signers VARCHAR, non_signer_count BIGINT, signer_count BIGINT, spent_block BIGINT,
        spent_time TIMESTAMP, challenged_block BIGINT, challenge_success BOOLEAN, challenger VARCHAR, status VARCHAR,
        latency_respond_blocks BIGINT, latency_respond_s DOUBLE, latency_spend_blocks BIGINT, latency_spend_s DOUBLE,
        intent_chain_id_exact VARCHAR, intent_signature VARCHAR, entrypoint_source VARCHAR, params_source VARCHAR,
        params_error VARCHAR, asset_decimals BIGINT, asset_symbol VARCHAR, replayed BOOLEAN, replay_result VARCHAR,
        replay_allow BOOLEAN,
        PRIMARY KEY (chain_id, task_id)""",
    "task_signers": "chain_id BIGINT, task_id VARCHAR, operator_id VARCHAR, operator VARCHAR, signed BOOLEAN, stake_num DOUBLE, "
    "task_block BIGINT, task_pos BIGINT, task_time TIMESTAMP",
    "operators": """
        chain_id BIGINT, operator VARCHAR, operator_id VARCHAR, pubkey_g1_x VARCHAR, pubkey_g1_y VARCHAR, socket VARCHAR,
        metadata_uri VARCHAR, registered_block BIGINT, deregistered_block BIGINT, stake VARCHAR, stake_num DOUBLE,
        name VARCHAR, organisation VARCHAR, country VARCHAR, city VARCHAR, latitude DOUBLE, longitude DOUBLE,
        provider VARCHAR, region VARCHAR, asn VARCHAR, client_version VARCHAR, metadata_error VARCHAR""",
    "operator_stakes": "chain_id BIGINT, operator_id VARCHAR, block_number BIGINT, stake_num DOUBLE",
    "policies": """chain_id BIGINT, policy_address VARCHAR, policy_cid VARCHAR, schema_cid VARCHAR, entrypoint VARCHAR,
        policy_code_hash VARCHAR, version VARCHAR, name VARCHAR""",
    "policy_versions": """chain_id BIGINT, policy_address VARCHAR, client VARCHAR, policy_id VARCHAR, block_number BIGINT,
        block_time TIMESTAMP, tx_hash VARCHAR, sender VARCHAR, params_json VARCHAR, expire_after BIGINT,
        valid_from_block BIGINT, valid_to_block BIGINT""",
    "challenges": "chain_id BIGINT, task_id VARCHAR, block_number BIGINT, block_time TIMESTAMP, tx_hash VARCHAR, challenger VARCHAR, success BOOLEAN",
    "replays": """chain_id BIGINT, task_id VARCHAR, replayed_at TIMESTAMP, replayed_allow BOOLEAN, result VARCHAR, reason VARCHAR,
        deny_json VARCHAR, sentence VARCHAR""",
    # pre-aggregated per hour of task creation (indexer/aggregates.py keeps them; the pages read them at scale)
    "operator_hours": """chain_id BIGINT, operator_id VARCHAR, hour TIMESTAMP, eligible BIGINT, signed BIGINT,
        disputes BIGINT, disputes_lost BIGINT, last_yes BIGINT, last_no BIGINT, last_signed_block BIGINT,
        last_signed_time TIMESTAMP""",
    "operator_missed_latency": "chain_id BIGINT, operator_id VARCHAR, hour TIMESTAMP, latency_s DOUBLE, tasks BIGINT",
    "task_hours": """chain_id BIGINT, hour TIMESTAMP, allow BOOLEAN, spent BOOLEAN, challenged BOOLEAN, awaiting BOOLEAN,
        expired BOOLEAN, signers BOOLEAN, tasks BIGINT, first_time TIMESTAMP, last_time TIMESTAMP""",
    "task_latency_hours": """chain_id BIGINT, hour TIMESTAMP, stage VARCHAR, signers BOOLEAN, missing BIGINT,
        latency_s DOUBLE, tasks BIGINT""",
    "dispute_tasks": """chain_id BIGINT, task_id VARCHAR, responded_block BIGINT, responded_time TIMESTAMP, allow BOOLEAN,
        challenged BOOLEAN, replay_result VARCHAR, replay_allow BOOLEAN, policy_client VARCHAR, intent_from VARCHAR,
        function_name VARCHAR, amount_num DOUBLE, asset VARCHAR""",
}

BASE_DDL = {
    "undecodable_logs": ", ".join(f"{c.name} {c.sql}" for c in UNDECODABLE_COLUMNS)
    + ", PRIMARY KEY (chain_id, block_number, log_index)",
    "blocks": "chain_id BIGINT, block_number BIGINT, block_hash VARCHAR, parent_hash VARCHAR, block_time TIMESTAMP, PRIMARY KEY (chain_id, block_number)",
    "checkpoints": "chain_id BIGINT, address VARCHAR, last_block BIGINT, updated_at TIMESTAMP, last_error VARCHAR, PRIMARY KEY (chain_id, address)",
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
    "blobs": "hash VARCHAR PRIMARY KEY, content VARCHAR",
    "operator_metadata": "uri VARCHAR PRIMARY KEY, fetched_at TIMESTAMP, ok BOOLEAN, content VARCHAR, error VARCHAR",
    # chain reads (eth_call), cached: a policy's entrypoint(), a token's decimals() and symbol()
    "policy_entrypoints": "chain_id BIGINT, address VARCHAR, entrypoint VARCHAR, block_number BIGINT, error VARCHAR, "
    "PRIMARY KEY (chain_id, address)",
    "tokens": "chain_id BIGINT, address VARCHAR, decimals BIGINT, symbol VARCHAR, error VARCHAR, PRIMARY KEY (chain_id, address)",
}

# Secondary indexes the dashboard's point lookups and semi-joins need: the tasks key leads with chain_id, so
# `WHERE task_id = ?` would otherwise scan every task (a verdict, a lookup by transaction), and one task's signers,
# challenge or replay every row of its table. Created after the tables (and again by `ensure_indexes` after a bulk
# load, which is cheaper than maintaining them row by row); `IF NOT EXISTS` keeps it idempotent on an existing DB.
INDEX_DDL = {
    "tasks_task_id": ("tasks", "task_id"),
    "tasks_created_tx": ("tasks", "created_tx"),
    "task_signers_task_id": ("task_signers", "task_id"),
    "challenges_task_id": ("challenges", "task_id"),
    "replays_task_id": ("replays", "task_id"),  # the same name `lens audit` creates it under (app/engine/store.py)
}

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked", "lock on file")


def _is_lock_error(e: Exception) -> bool:
    return any(m in str(e) for m in LOCK_MARKERS)


def _connect_retry(path: str, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.Error as e:  # IOException included
            if not _is_lock_error(e):
                raise LensError(f"cannot open the database {path}: {e}", "check the --db path") from None
            if time.monotonic() >= deadline:
                who = "a reader (the dashboard?)" if not read_only else "the indexer"
                raise LensError(
                    f"the database {path} stayed locked for {timeout_s:.0f} s by {who}",
                    "DuckDB allows one writer or many readers; retry in a moment",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)  # the writer's gaps can be short: keep trying often


@contextlib.contextmanager
def connect_read(path: str, timeout_s: float = 15.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection, retried while the indexer holds its write lock; closed on exit."""
    if not Path(path).exists():
        raise LensError(f"no database at {path}", "run `lens index` first (or pass --db)")
    con = _connect_retry(path, True, timeout_s)
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def connect_write(
    path: str, timeout_s: float = 60.0, threads: int = 1, checkpoint: str = "64MB"
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The read-write connection, retried while readers hold the file; closed (lock released) on exit.

    `threads` and `checkpoint` tune the writer: DuckDB threads, and the WAL size before an automatic checkpoint."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]?i?B", checkpoint.strip(), re.I):
        raise LensError(f"duckdb checkpoint threshold {checkpoint!r} is not a size", "give a size such as 64MB or 1GiB")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = _connect_retry(path, False, timeout_s)
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET checkpoint_threshold = '{checkpoint.strip()}'")
    try:
        yield con
    finally:
        con.close()


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """Changes on every committed indexer batch (for cache invalidation by readers)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
    except duckdb.Error:
        return ""
    return row[0] if row else ""


def _ddl_columns(cols: tuple[Column, ...]) -> str:
    return ", ".join(f'"{c.name}" {c.sql}' for c in cols)


def ensure_schema(con: duckdb.DuckDBPyConnection, indexes: bool = True) -> None:
    """Create every table (raw, bookkeeping, derived) if missing; add columns new layouts need; with `indexes`, the
    secondary indexes too (a bulk loader passes False and calls `ensure_indexes` once its rows are in)."""
    existing = {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    }
    for name, cols in TABLES.items():
        if name not in existing:
            con.execute(f"CREATE TABLE {name} ({_ddl_columns(cols)}, PRIMARY KEY (chain_id, block_number, log_index))")
        else:
            have = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]
                ).fetchall()
            }
            for c in cols:
                if c.name not in have:
                    con.execute(f'ALTER TABLE {name} ADD COLUMN "{c.name}" {c.sql}')
    for name, ddl in {**BASE_DDL, **DERIVED_DDL}.items():
        if name not in existing:
            con.execute(f"CREATE TABLE {name} ({ddl})")
        else:  # a DB from an older Lens: add the columns it lacks (derived rows are rebuilt by `derive.refresh`)
            _add_missing_columns(con, name, ddl)
    dictionary.apply_comments(con)  # the data dictionary travels with the file (duckdb_columns().comment)
    if indexes:
        ensure_indexes(con)


def ensure_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Create the secondary indexes (INDEX_DDL) that are missing, on the tables that exist."""
    tables = {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    }
    for index, (table, column) in INDEX_DDL.items():
        if table in tables:
            con.execute(f'CREATE INDEX IF NOT EXISTS {index} ON {table} ("{column}")')


def _add_missing_columns(con: duckdb.DuckDBPyConnection, name: str, ddl: str) -> None:
    """ALTER TABLE … ADD COLUMN for every column of `ddl` the existing table lacks (appended, in DDL order)."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]
        ).fetchall()
    }
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ddl_probe ({ddl})")
    try:
        want = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = '_ddl_probe' ORDER BY ordinal_position"
        ).fetchall()
    finally:
        con.execute("DROP TABLE _ddl_probe")
    for col, typ in want:
        if col not in have:
            con.execute(f'ALTER TABLE {name} ADD COLUMN "{col}" {typ}')


def ddl(table: str) -> str:
    """CREATE TABLE IF NOT EXISTS statement of one derived or bookkeeping table."""
    return f"CREATE TABLE IF NOT EXISTS {table} ({({**BASE_DDL, **DERIVED_DDL})[table]})"


def arrow_table(cols: tuple[Column, ...], rows: list[list]) -> pa.Table:
    """Rows (lists in column order) → an Arrow table with the SQL types of the columns."""
    if rows:
        columns = list(zip(*rows))
    else:
        columns = [()] * len(cols)
    return pa.table({c.name: pa.array(v, type=_ARROW[c.sql]) for c, v in zip(cols, columns)})


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table, fresh: bool = False) -> int:
    """Insert an Arrow table whose columns are named like the table's (see insert_rows for `fresh`)."""
    if arrow.num_rows == 0:
        return 0
    con.register("_ins", arrow)
    try:
        names = ", ".join(f'"{n}"' for n in arrow.column_names)
        verb = "INSERT INTO" if fresh else "INSERT OR IGNORE INTO"
        con.execute(f"{verb} {table} ({names}) SELECT {names} FROM _ins")
    finally:
        con.unregister("_ins")
    return arrow.num_rows


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, cols: tuple[Column, ...], rows: list[list], fresh: bool = False
) -> int:
    """Insert rows from Arrow; rows whose primary key exists are left as they are (re-indexing is a no-op).

    fresh=True: the caller knows no row can exist yet (blocks beyond anything indexed) — skip the conflict check.
    """
    if not rows:
        return 0
    return insert_arrow(con, table, arrow_table(cols, rows), fresh=fresh)


def set_meta(con: duckdb.DuckDBPyConnection, items: dict[str, str]) -> None:
    """Upsert meta key/values."""
    for k, v in items.items():
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, str(v)])


def get_meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    """One meta value or None."""
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def read_checkpoint(con: duckdb.DuckDBPyConnection, chain_id: int, addresses: tuple[str, ...]) -> int | None:
    """The last fully indexed block for these addresses (the minimum over them), or None if never indexed."""
    have = dict(con.execute("SELECT address, last_block FROM checkpoints WHERE chain_id = ?", [chain_id]).fetchall())
    needed = list(addresses) + ["*"]
    if not all(a in have for a in needed):
        return None  # a new address joined the deployment: start over (inserts are idempotent)
    return min(have[a] for a in needed)


def write_checkpoint(
    con: duckdb.DuckDBPyConnection,
    chain_id: int,
    addresses: tuple[str, ...],
    last_block: int,
    last_error: str | None = None,
) -> None:
    """Set the checkpoint of every indexed address ('*' = the open, any-address topics) — inside the caller's transaction."""
    # one statement for every address: a statement per address cost ~0.17 s a commit (19 of them), one ~5 ms
    rows = list(dict.fromkeys([*addresses, "*"]))  # one row per key: a statement may not set a key twice
    values = ", ".join("(?, ?, ?, now()::TIMESTAMP, ?)" for _ in rows)
    con.execute(
        f"INSERT OR REPLACE INTO checkpoints VALUES {values}",
        [x for a in rows for x in (chain_id, a, last_block, last_error)],
    )
