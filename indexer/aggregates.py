"""Pre-aggregated tables the dashboard reads at scale: per operator and hour, per hour of tasks, latency histograms,
and each task's replay result copied onto its row; kept current hour by hour as the indexer writes and rolls back.

The pages' figures are sums, maxima and exact quantiles over these instead of scans of every task and signer row
(app/queries/operators.py, overview.py, disputes.py). Every writer of `tasks` / `task_signers` marks the hours it
changes (`mark_tasks` before and after, `mark_status` for the head-driven status flip); `refresh` recomputes only those
hours from the rows as they stand, so a figure never drifts from the raw tables (a reorg's rollback, a late
challenge of an old task, a re-derived task all mark their hours). `rebuild` computes everything once (a synthetic DB,
an existing DB from an older Lens); the meta key `aggregates` says the tables are complete (readers fall back to the
raw tables without it).
"""

from __future__ import annotations

import datetime as dt

import duckdb

META_KEY = "aggregates"
VERSION = "2"  # 2: dispute_tasks
HOUR = "INTERVAL 1 hour"

DIRTY_DDL = "CREATE TEMP TABLE IF NOT EXISTS _agg_dirty (chain_id BIGINT, hour TIMESTAMP)"
TABLES = ("operator_hours", "operator_missed_latency", "task_hours", "task_latency_hours")

# Per operator and hour of its tasks' creation: the Operators page's participation, disputes and last-signed figures
# (the challenged tasks exactly as the page counts them: any challenge row, lost when one succeeded).
OPERATOR_HOURS_SQL = f"""
INSERT INTO operator_hours
WITH ch AS (SELECT task_id, bool_or(success) AS lost FROM challenges GROUP BY task_id)
SELECT ts.chain_id, ts.operator_id, time_bucket({HOUR}, ts.task_time) AS hour,
       count(*) AS eligible, count(*) FILTER (WHERE ts.signed) AS signed,
       count(*) FILTER (WHERE ts.signed AND ch.task_id IS NOT NULL) AS disputes,
       count(*) FILTER (WHERE ts.signed AND coalesce(ch.lost, FALSE)) AS disputes_lost,
       max(ts.task_pos) FILTER (WHERE ts.signed) AS last_yes,
       max(ts.task_pos) FILTER (WHERE NOT ts.signed) AS last_no,
       max(ts.task_block) FILTER (WHERE ts.signed) AS last_signed_block,
       max(ts.task_time) FILTER (WHERE ts.signed) AS last_signed_time
FROM task_signers ts LEFT JOIN ch ON ch.task_id = ts.task_id
WHERE {{where_ts}}
GROUP BY ALL
"""
# The latencies of the tasks each operator missed, counted per value (latencies are whole seconds: few values).
OPERATOR_MISSED_SQL = f"""
INSERT INTO operator_missed_latency
SELECT ts.chain_id, ts.operator_id, time_bucket({HOUR}, ts.task_time) AS hour, t.latency_respond_s AS latency_s,
       count(*) AS tasks
FROM task_signers ts JOIN tasks t ON t.chain_id = ts.chain_id AND t.task_id = ts.task_id
WHERE NOT ts.signed AND t.signer_count IS NOT NULL AND t.latency_respond_s IS NOT NULL AND {{where_ts}} AND {{where_t}}
GROUP BY ALL
"""
# Tasks per hour of creation by the yes/no facts the headline counts and charts group by.
TASK_HOURS_SQL = f"""
INSERT INTO task_hours
SELECT t.chain_id, time_bucket({HOUR}, t.created_time) AS hour, t.allow,
       t.spent_block IS NOT NULL AS spent, t.challenged_block IS NOT NULL AS challenged,
       t.responded_block IS NULL AS awaiting, coalesce(t.status = 'expired', FALSE) AS expired,
       t.signer_count IS NOT NULL AS signers, count(*) AS tasks,
       min(t.created_time) AS first_time, max(t.created_time) AS last_time
FROM tasks t
WHERE {{where_t}}
GROUP BY ALL
"""
TASK_LATENCY_SQL = f"""
INSERT INTO task_latency_hours
SELECT t.chain_id, time_bucket({HOUR}, t.created_time) AS hour, 'respond' AS stage,
       t.signer_count IS NOT NULL AS signers, coalesce(t.non_signer_count, 0) AS missing,
       t.latency_respond_s AS latency_s, count(*) AS tasks
FROM tasks t WHERE t.latency_respond_s IS NOT NULL AND {{where_t}}
GROUP BY ALL
UNION ALL
SELECT t.chain_id, time_bucket({HOUR}, t.created_time) AS hour, 'spend' AS stage, NULL AS signers, NULL AS missing,
       t.latency_spend_s AS latency_s, count(*) AS tasks
FROM tasks t WHERE t.latency_spend_s IS NOT NULL AND {{where_t}}
GROUP BY ALL
"""
INSERTS = (OPERATOR_HOURS_SQL, OPERATOR_MISSED_SQL, TASK_HOURS_SQL, TASK_LATENCY_SQL)

# The few tasks the Disputes page lists (challenged, or replayed to a mismatch) with the columns it shows: its
# queries read these instead of picking them out of every task's columns. Keyed by task, so a rollback drops them.
DISPUTE_TASKS = "dispute_tasks"
DISPUTE_TASKS_SQL = """
INSERT INTO dispute_tasks
SELECT chain_id, task_id, responded_block, responded_time, allow, challenged_block IS NOT NULL AS challenged,
       replay_result, replay_allow, policy_client, intent_from, function_name, amount_num, asset
FROM tasks WHERE (challenged_block IS NOT NULL OR replay_result = 'mismatch') AND {where}
"""

# Each task's replay (lens audit's `replays` row) copied onto it: the Disputes page counts the unreplayed responses
# and lists the mismatches from the tasks alone.
REPLAYED_CLEAR_SQL = (
    "UPDATE tasks SET replayed = NULL, replay_result = NULL, replay_allow = NULL WHERE replayed IS NOT NULL"
)
# One UPDATE per distinct (result, replayed_allow) with constants: DuckDB updates a VARCHAR from a join row by row
# (90 s for a million replays here), a constant from a semi-join in a second.
REPLAYED_GROUPS_SQL = "SELECT DISTINCT result, replayed_allow FROM {rows}"
REPLAYED_ROWS_SQL = """
UPDATE tasks SET replayed = TRUE, replay_result = $result, replay_allow = $allow
WHERE (chain_id, task_id) IN (SELECT chain_id, task_id FROM {rows}
                              WHERE result IS NOT DISTINCT FROM $result AND replayed_allow IS NOT DISTINCT FROM $allow)
"""
# A keyless task_signers row (written before the rows carried their task's key) gets it, as derive.SIGNERS_SQL does.
SIGNER_KEYS_SQL = """
UPDATE task_signers SET task_block = k.blk, task_pos = k.blk * 100000 + k.logpos, task_time = k.ctime
FROM (SELECT t.chain_id, t.task_id, coalesce(t.created_block, t.responded_block) AS blk, t.created_time AS ctime,
             coalesce(c.logpos, 0) AS logpos
      FROM tasks t LEFT JOIN (SELECT chain_id, task_id, min(log_index) AS logpos FROM ev_new_task_created GROUP BY ALL) c
        ON c.chain_id = t.chain_id AND c.task_id = t.task_id) k
WHERE task_signers.task_pos IS NULL AND task_signers.chain_id = k.chain_id AND task_signers.task_id = k.task_id
"""
STATUS_FLIP_SQL = """
INSERT INTO _agg_dirty
SELECT DISTINCT chain_id, time_bucket(INTERVAL 1 hour, created_time) FROM tasks
WHERE chain_id = $chain AND status IN ('allowed', 'expired') AND response_expire_block IS NOT NULL
  AND (status = 'allowed') = ($head >= response_expire_block)
"""


def ready(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the aggregates are complete and kept (meta `aggregates` holds this VERSION)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    except duckdb.Error:
        return False
    return bool(row) and row[0] == VERSION


def mark_tasks(con: duckdb.DuckDBPyConnection, chain_id: int, ids_table: str) -> None:
    """Remember the hours of these tasks' rows as they stand now (call before deleting them and after writing them)."""
    con.execute(DIRTY_DDL)
    con.execute(
        "INSERT INTO _agg_dirty SELECT DISTINCT chain_id, time_bucket(INTERVAL 1 hour, created_time) FROM tasks "
        f"WHERE chain_id = ? AND task_id IN (SELECT task_id FROM {ids_table})",
        [chain_id],
    )


def keep_disputed(con: duckdb.DuckDBPyConnection, chain_id: int, ids_table: str) -> None:
    """Rewrite the dispute_tasks rows of these tasks from their rows in `tasks` as they stand now."""
    where = f"chain_id = {int(chain_id)} AND task_id IN (SELECT task_id FROM {ids_table})"
    con.execute(f"DELETE FROM dispute_tasks WHERE {where}")
    con.execute(DISPUTE_TASKS_SQL.format(where=where))


def mark_status(con: duckdb.DuckDBPyConnection, chain_id: int, head: int) -> None:
    """Remember the hours of the tasks whose status derive.STATUS_SQL is about to flip (allowed ↔ expired)."""
    con.execute(DIRTY_DDL)
    con.execute(STATUS_FLIP_SQL, {"chain": chain_id, "head": head})


def _ranges(hours: list[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sorted hours → [start, end) ranges of consecutive hours (one zone-map-friendly scan each)."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + dt.timedelta(hours=1))
        else:
            out.append((h, h + dt.timedelta(hours=1)))
    return out


def refresh(con: duckdb.DuckDBPyConnection, chain_id: int) -> int:
    """Recompute the marked hours of one chain from the rows as they stand (caller's transaction); → hours redone."""
    con.execute(DIRTY_DDL)
    marked = [
        r[0] for r in con.execute("SELECT DISTINCT hour FROM _agg_dirty WHERE chain_id = ?", [chain_id]).fetchall()
    ]
    con.execute("DELETE FROM _agg_dirty WHERE chain_id = ?", [chain_id])
    if not marked:
        return 0
    hours = [h for h in marked if h is not None]
    with_null = len(hours) < len(marked)
    con.execute("CREATE OR REPLACE TEMP TABLE _agg_hours AS SELECT unnest(?::TIMESTAMP[]) AS hour", [hours])
    for table in TABLES:
        con.execute(
            f"DELETE FROM {table} WHERE chain_id = ? AND (hour IN (SELECT hour FROM _agg_hours) "
            "OR (hour IS NULL AND ?))",
            [chain_id, with_null],
        )
    spans = [
        (f"ts.task_time >= '{lo}' AND ts.task_time < '{hi}'", f"t.created_time >= '{lo}' AND t.created_time < '{hi}'")
        for lo, hi in _ranges(hours)
    ]
    if with_null:
        spans.append(("ts.task_time IS NULL", "t.created_time IS NULL"))
    for where_ts, where_t in spans:
        for sql in INSERTS:
            con.execute(
                sql.format(
                    where_ts=f"ts.chain_id = $chain AND {where_ts}", where_t=f"t.chain_id = $chain AND {where_t}"
                ),
                {"chain": chain_id},
            )
    con.execute("DROP TABLE _agg_hours")
    return len(marked)


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Compute every aggregate from scratch over all chains (caller's transaction) and mark them complete."""
    if con.execute("SELECT EXISTS (SELECT 1 FROM task_signers WHERE task_pos IS NULL)").fetchone()[0]:
        con.execute(SIGNER_KEYS_SQL)
    for table in TABLES:
        con.execute(f"DELETE FROM {table}")
    for sql in INSERTS:
        con.execute(sql.format(where_ts="TRUE", where_t="TRUE"))
    con.execute(REPLAYED_CLEAR_SQL)
    _copy_replays(con, "replays")
    con.execute("DELETE FROM dispute_tasks")
    con.execute(DISPUTE_TASKS_SQL.format(where="TRUE"))
    con.execute(DIRTY_DDL)
    con.execute("DELETE FROM _agg_dirty")
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META_KEY, VERSION])


def mark_replayed(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Copy replay results just written to `replays` (the registered frame or table `rows`: chain_id, task_id,
    result, replayed_allow) onto their tasks; a DB whose tasks lack the columns is left as it is."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks' AND table_schema = 'main'"
        ).fetchall()
    }
    if {"replayed", "replay_result", "replay_allow"} <= have:
        _copy_replays(con, rows)
        if DISPUTE_TASKS in _tables(con):
            where = f"(chain_id, task_id) IN (SELECT chain_id, task_id FROM {rows})"
            con.execute(f"DELETE FROM dispute_tasks WHERE {where}")
            con.execute(DISPUTE_TASKS_SQL.format(where=where))


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    }


def _copy_replays(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    for result, allow in con.execute(REPLAYED_GROUPS_SQL.format(rows=rows)).fetchall():
        con.execute(REPLAYED_ROWS_SQL.format(rows=rows), {"result": result, "allow": allow})
