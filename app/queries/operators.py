"""Operator queries: per-operator figures (stake, participation, streaks, slashing, disputes), history, latency, alerts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from app.queries import rollups
from app.queries.base import Con, query, query_rows, table_names
from app.queries.decisions import decision_rows
from app.queries.disputes import slashes
from app.text import is_null

# The columns of `operator_figures`, in order (engineers building exporters rely on these names: keep them stable).
FIGURE_COLUMNS = (
    "operator",
    "operator_id",
    "name",
    "organisation",
    "socket",
    "metadata_uri",
    "metadata_ok",
    "metadata_error",
    "registered_block",
    "deregistered_block",
    "active",
    "stake_wei",
    "stake",
    "stake_share",
    "eligible",
    "signed",
    "missed",
    "participation",
    "recent_eligible",
    "recent_signed",
    "recent_participation",
    "streak",
    "streak_kind",
    "longest_recent_miss",
    "last_signed_block",
    "last_signed_time",
    "slashed",
    "stake_slashed",
    "disputes",
    "disputes_lost",
)

# task_signers holds, per responded task, every operator registered in the task's quorum at its reference block
# (taskCreatedBlock) with whether it signed: exactly the eligibility the participation figures need.
# Each task gets an order key, (created block, NewTaskCreated log index) as one integer — a direct-only task has no
# created block and uses its response's — so that streaks and the recent window compare integers: one full join of
# task_signers for the all-time figures, then joins that build on the few tail tasks only; no per-operator sort,
# which keeps ~10 signers × 1,000,000 tasks fast.
_KEYS = """
SELECT t.task_id, coalesce(t.created_block, t.responded_block) * 100000 + {logpos} AS pos,
       coalesce(t.created_block, t.responded_block) AS blk, t.created_time{extra}
FROM tasks t {join}
WHERE t.signer_count IS NOT NULL
"""
# challenged tasks (a dispute of every operator that signed the response) and whether a challenge succeeded
_CHALLENGED = "SELECT task_id, bool_or(success) AS lost FROM challenges GROUP BY task_id"
_NO_CHALLENGES = "SELECT NULL::VARCHAR AS task_id, NULL::BOOLEAN AS lost WHERE FALSE"
# the one full scan also yields the heatmap cells and the latency of the tasks each operator missed
_SCAN_EXTRA = ", t.latency_respond_s AS lat, time_bucket(CAST($width AS INTERVAL), t.created_time) AS bucket"
# Many tasks share a block: inside one, the NewTaskCreated log index is the order they were created in.
_CREATED_POS = (
    "LEFT JOIN (SELECT task_id, min(log_index) AS logpos FROM ev_new_task_created GROUP BY ALL) c "
    "ON c.task_id = t.task_id"
)


def _positions(names: set[str], extra: str = "") -> str:
    """Tasks with signer data and their order key (log index 0 where the raw table is absent: tasks of one block
    then tie)."""
    if "ev_new_task_created" in names:
        return _KEYS.format(logpos="coalesce(c.logpos, 0)", join=_CREATED_POS, extra=extra)
    return _KEYS.format(logpos="0", join="", extra=extra)


# Per operator and time bucket (the heatmap cells; summed per operator in Python: no second grouping), one pass.
PARTICIPATION_SQL = """
WITH p0 AS ({positions}),
ch AS ({challenged}),
p AS (SELECT p0.*, ch.task_id IS NOT NULL AS disputed, coalesce(ch.lost, FALSE) AS lost
      FROM p0 LEFT JOIN ch ON ch.task_id = p0.task_id)
SELECT ts.operator_id, p.bucket,
       count(*) FILTER (WHERE ts.signed AND p.disputed) AS disputes,
       count(*) FILTER (WHERE ts.signed AND p.lost) AS disputes_lost,
       count(*) AS eligible, count(*) FILTER (WHERE ts.signed) AS signed,
       coalesce(max(p.pos) FILTER (WHERE ts.signed), -1) AS last_yes,
       coalesce(max(p.pos) FILTER (WHERE NOT ts.signed), -1) AS last_no,
       max(p.blk) FILTER (WHERE ts.signed) AS last_signed_block,
       max(p.created_time) FILTER (WHERE ts.signed) AS last_signed_time
FROM task_signers ts JOIN p ON p.task_id = ts.task_id
GROUP BY ts.operator_id, p.bucket
"""
# The latency of the tasks each operator missed: only the missed rows reach the join.
MISSED_LATENCY_SQL = """
WITH p AS ({positions})
SELECT ts.operator_id, count(p.lat) AS missed_lat_tasks,
       quantile_cont(p.lat, 0.5) AS missed_p50, quantile_cont(p.lat, 0.95) AS missed_p95
FROM task_signers ts JOIN p ON p.task_id = ts.task_id
WHERE NOT ts.signed
GROUP BY ts.operator_id
"""
# The order key of the task just before the recent window (the window is the last $recent tasks).
WINDOW_SQL = "WITH p AS ({positions}) SELECT pos FROM p ORDER BY pos DESC LIMIT 1 OFFSET $recent"
# The recent window: the signer rows of the tasks after key $from (the join builds on those few tasks only).
TAIL_SQL = """
WITH p AS ({positions})
SELECT ts.operator_id, ts.signed, p.pos
FROM task_signers ts JOIN (SELECT * FROM p WHERE pos > $from) p ON p.task_id = ts.task_id
ORDER BY ts.operator_id, p.pos, ts.task_id
"""
# Streaks that began before the window: per operator, its eligible tasks after its last task of the other kind.
STREAK_SQL = """
WITH p AS ({positions}),
th AS (SELECT unnest($ops) AS operator_id, unnest($froms) AS f)
SELECT ts.operator_id, count(*) AS n
FROM task_signers ts JOIN th ON th.operator_id = ts.operator_id
JOIN (SELECT * FROM p WHERE pos > $lowest) p ON p.task_id = ts.task_id AND p.pos > th.f
GROUP BY ts.operator_id
"""

# The same figures from the order key, block and time each signer row carries (indexer/derive.py and `lens synth`
# copy them from the task): no join of ~10 signer rows per task to the tasks, only to the few challenged tasks.
# Used when every signer row has its key (a DB written before those columns existed has NULLs until re-derived).
# Tasks of one block without NewTaskCreated logs (`lens synth`) share a key: the task id breaks the tie, in both.
SIGNER_KEY_COLUMNS_SQL = """
SELECT count(*) FROM duckdb_columns()
WHERE schema_name = 'main' AND table_name = 'task_signers' AND column_name IN ('task_block', 'task_pos', 'task_time')
"""
SIGNER_KEYS_FILLED_SQL = "SELECT NOT EXISTS (SELECT 1 FROM task_signers WHERE task_pos IS NULL)"
PARTICIPATION_KEYED_SQL = """
WITH ch AS ({challenged})
SELECT ts.operator_id, time_bucket(CAST($width AS INTERVAL), ts.task_time) AS bucket,
       count(*) FILTER (WHERE ts.signed AND ch.task_id IS NOT NULL) AS disputes,
       count(*) FILTER (WHERE ts.signed AND coalesce(ch.lost, FALSE)) AS disputes_lost,
       count(*) AS eligible, count(*) FILTER (WHERE ts.signed) AS signed,
       coalesce(max(ts.task_pos) FILTER (WHERE ts.signed), -1) AS last_yes,
       coalesce(max(ts.task_pos) FILTER (WHERE NOT ts.signed), -1) AS last_no,
       max(ts.task_block) FILTER (WHERE ts.signed) AS last_signed_block,
       max(ts.task_time) FILTER (WHERE ts.signed) AS last_signed_time
FROM task_signers ts LEFT JOIN ch ON ch.task_id = ts.task_id
GROUP BY ALL
"""
MISSED_LATENCY_KEYED_SQL = """
WITH p AS (SELECT task_id, latency_respond_s AS lat FROM tasks WHERE signer_count IS NOT NULL)
SELECT ts.operator_id, count(p.lat) AS missed_lat_tasks,
       quantile_cont(p.lat, 0.5) AS missed_p50, quantile_cont(p.lat, 0.95) AS missed_p95
FROM task_signers ts JOIN p ON p.task_id = ts.task_id
WHERE NOT ts.signed
GROUP BY ts.operator_id
"""
TAIL_KEYED_SQL = """
SELECT operator_id, signed, task_pos AS pos FROM task_signers WHERE task_pos > $from
ORDER BY operator_id, pos, task_id
"""
STREAK_KEYED_SQL = """
WITH th AS (SELECT unnest($ops) AS operator_id, unnest($froms) AS f)
SELECT ts.operator_id, count(*) AS n
FROM task_signers ts JOIN th ON th.operator_id = ts.operator_id
WHERE ts.task_pos > $lowest AND ts.task_pos > th.f
GROUP BY ts.operator_id
"""

# The same figures again from the hourly rows the indexer keeps (indexer/aggregates.py): a bucket a whole number of
# hours wide is a union of hours, so sums and maxima per bucket are those of the signer rows; the missed tasks'
# latencies come counted per value, and their quantiles are computed exactly from the counts (rollups.quantile_cont).
PARTICIPATION_ROLLUP_SQL = """
SELECT operator_id, time_bucket(CAST($width AS INTERVAL), hour) AS bucket,
       sum(disputes)::BIGINT AS disputes, sum(disputes_lost)::BIGINT AS disputes_lost,
       sum(eligible)::BIGINT AS eligible, sum(signed)::BIGINT AS signed,
       coalesce(max(last_yes), -1) AS last_yes, coalesce(max(last_no), -1) AS last_no,
       max(last_signed_block) AS last_signed_block, max(last_signed_time) AS last_signed_time
FROM operator_hours
GROUP BY ALL
"""
MISSED_LATENCY_ROLLUP_SQL = """
SELECT operator_id, latency_s AS v, sum(tasks)::BIGINT AS n FROM operator_missed_latency
GROUP BY ALL ORDER BY operator_id, v
"""
# The recent window from the newest hours: the hour where the newest $recent + 1 tasks with signers begin bounds the
# order keys to look at (keys grow with blocks, blocks with time), so the top-N reads the tail of task_signers only.
SIGNER_TASK_HOURS_SQL = """
SELECT hour, sum(tasks) FILTER (WHERE signers)::BIGINT AS n FROM task_hours GROUP BY hour ORDER BY hour DESC NULLS LAST
"""
HOUR_FIRST_POS_SQL = (
    "SELECT min(task_pos) FROM task_signers WHERE task_time >= $hour AND task_time < $hour + INTERVAL 1 hour"
)
WINDOW_ROLLUP_SQL = """
SELECT task_pos FROM (SELECT DISTINCT task_id, task_pos FROM task_signers WHERE task_pos >= $lowest)
ORDER BY task_pos DESC LIMIT 1 OFFSET $recent
"""
TIME_RANGE_ROLLUP_SQL = "SELECT min(first_time), max(last_time) FROM task_hours WHERE signers"
LATENCY_TIME_ROLLUP_SQL = """
SELECT time_bucket(CAST($width AS INTERVAL), hour) AS bucket, latency_s AS v, sum(tasks)::BIGINT AS n
FROM task_latency_hours WHERE stage = 'respond' AND hour IS NOT NULL
GROUP BY ALL ORDER BY bucket, v
"""
LATENCY_NONSIGNERS_ROLLUP_SQL = """
SELECT missing, latency_s AS v, sum(tasks)::BIGINT AS n
FROM task_latency_hours WHERE stage = 'respond' AND signers
GROUP BY ALL ORDER BY missing, v
"""

OPERATORS_SQL = """
SELECT operator, operator_id, name, organisation, socket, metadata_uri, metadata_error,
       registered_block, deregistered_block, stake AS stake_wei, stake_num,
       country, city, latitude, longitude, provider, region, asn, client_version
FROM operators
"""


WEI_PER_ETH = 1e18
DEFAULT_RECENT = 500  # the `operator_recent_tasks` setting's default; the CLI and pages pass the setting in


@dataclass(frozen=True)
class AlertThresholds:
    """When an operator raises an alert (the CLI and pages fill it from the settings `alert_*`)."""

    participation_below: float = 0.9  # recent participation under this share
    missed_streak: int = 5  # this many missed tasks in a row, now or within the recent window


@dataclass(frozen=True)
class OperatorFigures:
    """One operator's health figures (see FIGURE_COLUMNS; stake in ETH, shares and participation as 0..1)."""

    operator: str
    operator_id: str
    name: str
    organisation: str
    socket: str
    metadata_uri: str
    metadata_ok: bool | None
    metadata_error: str
    registered_block: int | None
    deregistered_block: int | None
    active: bool
    stake_wei: str
    stake: float
    stake_share: float | None
    eligible: int
    signed: int
    missed: int
    participation: float | None
    recent_eligible: int
    recent_signed: int
    recent_participation: float | None
    streak: int  # +n: the last n eligible tasks signed; -n: the last n missed; 0: never eligible
    streak_kind: str  # 'signed' | 'missed' | ''
    longest_recent_miss: int
    last_signed_block: int | None
    last_signed_time: Any
    slashed: int
    stake_slashed: float
    disputes: int
    disputes_lost: int
    alerts: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (timestamps as ISO text)."""
        out = asdict(self)
        out["alerts"] = list(self.alerts)
        if out["last_signed_time"] is not None:
            out["last_signed_time"] = pd.Timestamp(out["last_signed_time"]).isoformat()
        return out


def _empty_figures() -> pd.DataFrame:
    return pd.DataFrame(columns=list(FIGURE_COLUMNS))


HEATMAP_COLUMNS = ["operator", "label", "bucket", "eligible", "signed", "participation"]
MISSED_LATENCY_COLUMNS = ["operator", "label", "tasks", "p50", "p95"]


def operator_figures(con: Con, recent: int = DEFAULT_RECENT) -> pd.DataFrame:
    """Per-operator figures, one row per operator (FIGURE_COLUMNS), ordered by stake, largest first.

    `recent`: the recent window in tasks; recent participation is signed / eligible over the network's last `recent`
    responded tasks.
    """
    return operator_scan(con, recent)["figures"]


def operator_scan(con: Con, recent: int = DEFAULT_RECENT) -> dict[str, pd.DataFrame]:
    """One pass over the signer rows → {"figures": operator_figures, "heatmap": operators × time buckets,
    "by_missing_operator": latency of the tasks each operator missed} (the Operators page's data)."""
    empty = {
        "figures": _empty_figures(),
        "heatmap": pd.DataFrame(columns=HEATMAP_COLUMNS),
        "by_missing_operator": pd.DataFrame(columns=MISSED_LATENCY_COLUMNS),
    }
    names = table_names(con)
    if "operators" not in names:
        return empty
    recent = int(recent)
    ops = query(con, OPERATORS_SQL)
    if ops.empty:
        return empty
    out = dict(empty)
    if {"task_signers", "tasks"} <= names:
        part, cells = _participation(con, names, max(recent, 0))
        labels = operator_labels(con)
        ids = dict(zip(ops["operator_id"], ops["operator"]))
        if len(cells):
            heat = cells.assign(operator=cells["operator_id"].map(ids)).dropna(subset=["operator"])
            heat["participation"] = heat["signed"] / heat["eligible"]
            heat["label"] = heat["operator"].map(labels).fillna(heat["operator"].str[:10])
            out["heatmap"] = heat.sort_values(["bucket", "label"])[HEATMAP_COLUMNS].reset_index(drop=True)
        if len(part):
            miss = part[part["missed_lat_tasks"] > 0].assign(operator=lambda d: d["operator_id"].map(ids))
            miss = miss.dropna(subset=["operator"])
            out["by_missing_operator"] = (
                pd.DataFrame(
                    {
                        "operator": miss["operator"],
                        "label": miss["operator"].map(labels).fillna(miss["operator"].str[:10]),
                        "tasks": miss["missed_lat_tasks"].astype("int64"),
                        "p50": miss["missed_p50"],
                        "p95": miss["missed_p95"],
                    }
                )
                .sort_values(["tasks", "label"], ascending=[False, True])
                .reset_index(drop=True)
            )
    else:
        part = pd.DataFrame(columns=["operator_id"])
    out["figures"] = _figures(con, names, ops, part)
    return out


def _figures(con: Con, names: set[str], ops: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    """The operators table joined with their participation, stake share, metadata state, slashing and disputes."""
    df = ops.merge(part.drop(columns=["operator"], errors="ignore"), on="operator_id", how="left")
    for col in ("eligible", "signed", "recent_eligible", "recent_signed", "streak_len", "longest_recent_miss"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64") if col in df else 0
    df["missed"] = df["eligible"] - df["signed"]
    df["participation"] = _ratio(df["signed"], df["eligible"])
    df["recent_participation"] = _ratio(df["recent_signed"], df["recent_eligible"])
    kind = df.get("streak_signed")
    df["streak_kind"] = [
        "" if is_null(k) or n == 0 else ("signed" if bool(k) else "missed")
        for k, n in zip(kind if kind is not None else [None] * len(df), df["streak_len"])
    ]
    df["streak"] = [
        n if k == "signed" else (-n if k == "missed" else 0) for k, n in zip(df["streak_kind"], df["streak_len"])
    ]
    df["active"] = df["deregistered_block"].isna() & df["registered_block"].notna()
    wei = pd.to_numeric(df["stake_wei"], errors="coerce")
    df["stake"] = (wei.fillna(pd.to_numeric(df["stake_num"], errors="coerce")).fillna(0.0) / WEI_PER_ETH).astype(float)
    live = df["stake"].where(df["active"], 0.0)
    total = float(live.sum())
    df["stake_share"] = (live / total) if total > 0 else None
    df["metadata_ok"] = [
        None if is_null(u) or u == "" else is_null(e) for u, e in zip(df["metadata_uri"], df["metadata_error"])
    ]
    df = _with_slashing(con, names, df)
    df = _with_disputes(df)
    for col in ("last_signed_block",):
        if col not in df:
            df[col] = None
    if "last_signed_time" not in df:
        df["last_signed_time"] = None
    df = df.sort_values(["stake", "operator"], ascending=[False, True]).reset_index(drop=True)
    return df[list(FIGURE_COLUMNS)]


def _participation(con: Con, names: set[str], recent: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per operator: eligible, signed, last signed, the current streak, the recent window's figures and the latency
    of the tasks it missed; and per operator and time bucket: eligible and signed (the heatmap)."""
    positions = _positions(names)
    width = bucket_width(con) or "1 day"
    challenged = _CHALLENGED if "challenges" in names else _NO_CHALLENGES
    keyed = query_rows(con, SIGNER_KEY_COLUMNS_SQL)[0][0] == 3 and bool(query_rows(con, SIGNER_KEYS_FILLED_SQL)[0][0])
    rolled = keyed and rollups.ready(con)
    if rolled and rollups.whole_hours(BUCKET_SECONDS[width]):
        sql = PARTICIPATION_ROLLUP_SQL
    elif keyed:
        sql = PARTICIPATION_KEYED_SQL.format(challenged=challenged)
    else:
        sql = PARTICIPATION_SQL.format(positions=_positions(names, _SCAN_EXTRA), challenged=challenged)
    by_bucket = query(con, sql, {"width": width})
    cells = by_bucket[by_bucket["bucket"].notna()][["operator_id", "bucket", "eligible", "signed"]]
    agg = (
        by_bucket.groupby("operator_id")
        .agg(
            eligible=("eligible", "sum"),
            signed=("signed", "sum"),
            disputes=("disputes", "sum"),
            disputes_lost=("disputes_lost", "sum"),
            last_yes=("last_yes", "max"),
            last_no=("last_no", "max"),
            last_signed_block=("last_signed_block", "max"),
            last_signed_time=("last_signed_time", "max"),
        )
        .reset_index()
    )
    if rolled:
        missed = rollups.quantiles_by(
            query(con, MISSED_LATENCY_ROLLUP_SQL),
            ["operator_id"],
            {"missed_p50": 0.5, "missed_p95": 0.95},
            count="missed_lat_tasks",
        )
    elif keyed:
        missed = query(con, MISSED_LATENCY_KEYED_SQL)
    else:
        missed = query(con, MISSED_LATENCY_SQL.format(positions=_positions(names, _SCAN_EXTRA)), {"width": width})
    agg = agg.merge(missed, on="operator_id", how="left")
    agg["missed_lat_tasks"] = pd.to_numeric(agg["missed_lat_tasks"], errors="coerce").fillna(0).astype("int64")
    if agg.empty:
        return agg, cells
    cut = _window_rollup(con, int(recent)) if rolled else None
    if cut is None:
        cut = query_rows(con, WINDOW_SQL.format(positions=positions), {"recent": int(recent)})
    window_from = int(cut[0][0]) if cut else -1  # fewer tasks than the window: all of them
    tail = query(con, TAIL_KEYED_SQL if keyed else TAIL_SQL.format(positions=positions), {"from": window_from})
    # an operator with tasks of both kinds has a streak that starts after its last task of the other kind
    starts = {
        r["operator_id"]: min(int(r["last_yes"]), int(r["last_no"]))
        for r in agg.to_dict("records")
        if r["last_yes"] >= 0 and r["last_no"] >= 0
    }
    far = {op: f for op, f in starts.items() if f < window_from}
    long_streaks: dict[str, int] = {}
    if far:
        counted = query(
            con,
            STREAK_KEYED_SQL if keyed else STREAK_SQL.format(positions=positions),
            {"ops": list(far), "froms": list(far.values()), "lowest": min(far.values())},
        )
        long_streaks = dict(zip(counted["operator_id"], counted["n"].astype(int)))
    rows = []
    for r in agg.to_dict("records"):
        op = r["operator_id"]
        mine = tail[tail["operator_id"] == op]
        if op in far:
            streak_len = long_streaks.get(op, 0)
        elif op in starts:
            streak_len = int((mine["pos"] > starts[op]).sum())
        else:
            streak_len = int(r["eligible"])  # one kind only, all along
        rows.append(
            {
                **r,
                "streak_signed": r["last_yes"] > r["last_no"],
                "streak_len": streak_len,
                "recent_eligible": len(mine),
                "recent_signed": int(mine["signed"].sum()),
                "longest_recent_miss": _longest_run(mine["signed"].tolist()),
            }
        )
    return pd.DataFrame(rows), cells


def _window_rollup(con: Con, recent: int) -> list[tuple] | None:
    """WINDOW_SQL's answer read from the tail of task_signers only, bounded by the hourly task counts (None: the
    bound needs tasks without a created time, so the caller asks WINDOW_SQL)."""
    hours = query_rows(con, SIGNER_TASK_HOURS_SQL)
    if sum(int(n or 0) for _, n in hours) <= recent:
        return []  # no task before the window
    seen = 0
    for hour, n in hours:
        if hour is None:
            return None
        seen += int(n or 0)
        if seen > recent:
            lowest = query_rows(con, HOUR_FIRST_POS_SQL, {"hour": hour})[0][0]
            return None if lowest is None else query_rows(con, WINDOW_ROLLUP_SQL, {"lowest": lowest, "recent": recent})
    return None


def _longest_run(signed: list[bool]) -> int:
    """The longest run of consecutive False in a list."""
    best = run = 0
    for s in signed:
        run = 0 if s else run + 1
        best = max(best, run)
    return best


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den as floats, None where den is 0."""
    out = num.astype(float) / den.where(den > 0).astype(float)
    return out.astype(object).where(out.notna(), None)


def _with_slashing(con: Con, names: set[str], df: pd.DataFrame) -> pd.DataFrame:
    """Add `slashed` (OperatorSlashed events from the deployment's slasher) and `stake_slashed` (ETH they took)."""
    sl = slashes(con)
    if len(sl):
        amount = pd.to_numeric(sl["amount_wei"], errors="coerce").fillna(0.0)
        per = sl.assign(amount=amount).groupby("operator").agg(slashed=("tx_hash", "count"), wei=("amount", "sum"))
        df = df.merge(per.reset_index(), on="operator", how="left")
        df["stake_slashed"] = pd.to_numeric(df["wei"], errors="coerce").fillna(0.0) / WEI_PER_ETH
    else:
        df["slashed"] = 0
        df["stake_slashed"] = 0.0
    df["slashed"] = pd.to_numeric(df["slashed"], errors="coerce").fillna(0).astype("int64")
    return df


def _with_disputes(df: pd.DataFrame) -> pd.DataFrame:
    """`disputes` (challenges of tasks it signed) and `disputes_lost` (the successful ones) as whole numbers."""
    for col in ("disputes", "disputes_lost"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64") if col in df else 0
    return df


def operator_records(
    con: Con, recent: int = DEFAULT_RECENT, thresholds: AlertThresholds = AlertThresholds()
) -> list[OperatorFigures]:
    """operator_figures as typed records, each with its alerts."""
    df = operator_figures(con, recent)
    alerts = alerts_by_operator(df, thresholds)
    out = []
    for row in df.to_dict("records"):
        clean = {k: (None if is_null(v) else v) for k, v in row.items()}
        out.append(
            OperatorFigures(
                operator=str(clean["operator"]),
                operator_id=str(clean["operator_id"] or ""),
                name=str(clean["name"] or ""),
                organisation=str(clean["organisation"] or ""),
                socket=str(clean["socket"] or ""),
                metadata_uri=str(clean["metadata_uri"] or ""),
                metadata_ok=clean["metadata_ok"],
                metadata_error=str(clean["metadata_error"] or ""),
                registered_block=_int(clean["registered_block"]),
                deregistered_block=_int(clean["deregistered_block"]),
                active=bool(clean["active"]),
                stake_wei=str(clean["stake_wei"] or "0"),
                stake=float(clean["stake"] or 0.0),
                stake_share=None if clean["stake_share"] is None else float(clean["stake_share"]),
                eligible=int(clean["eligible"]),
                signed=int(clean["signed"]),
                missed=int(clean["missed"]),
                participation=None if clean["participation"] is None else float(clean["participation"]),
                recent_eligible=int(clean["recent_eligible"]),
                recent_signed=int(clean["recent_signed"]),
                recent_participation=(
                    None if clean["recent_participation"] is None else float(clean["recent_participation"])
                ),
                streak=int(clean["streak"]),
                streak_kind=str(clean["streak_kind"]),
                longest_recent_miss=int(clean["longest_recent_miss"]),
                last_signed_block=_int(clean["last_signed_block"]),
                last_signed_time=clean["last_signed_time"],
                slashed=int(clean["slashed"]),
                stake_slashed=float(clean["stake_slashed"]),
                disputes=int(clean["disputes"]),
                disputes_lost=int(clean["disputes_lost"]),
                alerts=tuple(a.message for a in alerts.get(str(clean["operator"]), [])),
            )
        )
    return out


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


# ---------------------------------------------------------------------------------------------
# Alerts


@dataclass(frozen=True)
class Alert:
    """One alert about one operator: what kind, and a sentence saying what is wrong."""

    operator: str
    name: str
    kind: str  # 'low_participation' | 'losing_streak' | 'outage' | 'metadata'
    message: str


def alerts_by_operator(df: pd.DataFrame, thresholds: AlertThresholds = AlertThresholds()) -> dict[str, list[Alert]]:
    """operator address → its alerts."""
    out: dict[str, list[Alert]] = {}
    for a in alerts(df, thresholds):
        out.setdefault(a.operator, []).append(a)
    return out


def alerts(df: pd.DataFrame, thresholds: AlertThresholds = AlertThresholds()) -> list[Alert]:
    """Alerts over operator_figures: participation under the threshold over the recent window, a losing streak, a
    long run of misses inside the recent window, metadata that cannot be fetched."""
    threshold = float(thresholds.participation_below)
    streak_at = int(thresholds.missed_streak)
    out: list[Alert] = []
    for r in df.to_dict("records"):
        who, name = str(r["operator"]), str(r["name"] if not is_null(r["name"]) else "") or str(r["operator"])[:10]
        rp = r["recent_participation"]
        if not is_null(rp) and float(rp) < threshold:
            out.append(
                Alert(
                    who,
                    name,
                    "low_participation",
                    f"{name} signed {int(r['recent_signed'])} of the {int(r['recent_eligible'])} recent tasks it was "
                    f"eligible for ({float(rp):.1%}, under the {threshold:.0%} threshold)",
                )
            )
        if r["streak_kind"] == "missed" and -int(r["streak"]) >= streak_at and bool(r["active"]):
            out.append(Alert(who, name, "losing_streak", f"{name} missed its last {-int(r['streak'])} tasks in a row"))
        elif int(r["longest_recent_miss"]) >= streak_at:
            out.append(
                Alert(
                    who,
                    name,
                    "outage",
                    f"{name} missed {int(r['longest_recent_miss'])} tasks in a row within the recent window",
                )
            )
        if r["metadata_ok"] is False:
            out.append(
                Alert(who, name, "metadata", f"{name}'s metadata cannot be fetched: {r['metadata_error'] or 'unknown'}")
            )
    return out


# ---------------------------------------------------------------------------------------------
# History and detail

REGISTRATION_SQL = """
SELECT block_number, block_time, tx_hash, 'registered' AS event FROM ev_operator_registered WHERE lower(operator) = $op
UNION ALL
SELECT block_number, block_time, tx_hash, 'deregistered' FROM ev_operator_deregistered WHERE lower(operator) = $op
ORDER BY block_number
"""
STAKE_HISTORY_SQL = """
SELECT su.block_number, su.block_time, su.tx_hash, su.stake_num / 1e18 AS stake,
       list_contains($slash_txs, su.tx_hash) AS slashed
FROM ev_operator_stake_update su WHERE su.operator_id = $id
ORDER BY su.block_number, su.log_index
"""
# operator_stakes.stake_num is in the unit of operators.stake_num; $eth_per_unit converts it (from the exact stake)
STAKE_HISTORY_DERIVED_SQL = """
SELECT block_number, NULL::TIMESTAMP AS block_time, NULL AS tx_hash, stake_num * $eth_per_unit AS stake,
       FALSE AS slashed
FROM operator_stakes WHERE operator_id = $id ORDER BY block_number
"""
OPERATOR_DISPUTES_SQL = """
SELECT c.task_id, c.block_number, c.block_time, c.success, c.challenger, ts.signed
FROM challenges c JOIN task_signers ts ON ts.chain_id = c.chain_id AND ts.task_id = c.task_id
WHERE ts.operator_id = $id
ORDER BY c.block_number DESC
"""
WEBSITE_SQL = "SELECT json_extract_string(content, '$.website') FROM operator_metadata WHERE uri = ? AND ok"
MISSED_SQL = """
SELECT t.task_id, t.created_time, t.created_block, t.policy_client, t.intent_from, t.function_name, t.amount_num,
       t.asset, t.allow, t.status, t.non_signer_count
FROM task_signers ts JOIN tasks t ON t.chain_id = ts.chain_id AND t.task_id = ts.task_id
WHERE ts.operator_id = $id AND NOT ts.signed
ORDER BY t.created_block DESC, t.task_id DESC
LIMIT $limit
"""


def operator_detail(
    con: Con, operator: str, recent: int = DEFAULT_RECENT, thresholds: AlertThresholds = AlertThresholds()
) -> dict[str, Any] | None:
    """Everything the detail view shows for one operator (None when the DB does not know it)."""
    op = str(operator).strip().lower()
    figures = operator_figures(con, recent)
    row = figures[figures["operator"].str.lower() == op]
    if row.empty:
        return None
    info = {k: (None if is_null(v) else v) for k, v in row.iloc[0].to_dict().items()}
    names = table_names(con)
    p = {"op": op, "id": info["operator_id"]}
    meta = query(con, OPERATORS_SQL + " WHERE lower(operator) = $op", {"op": op})
    info.update({k: (None if is_null(v) else v) for k, v in meta.iloc[0].to_dict().items() if k not in info})
    info["website"] = None
    if "operator_metadata" in names and info.get("metadata_uri"):
        site = query_rows(con, WEBSITE_SQL, [info["metadata_uri"]])
        info["website"] = site[0][0] if site else None
    out: dict[str, Any] = {"info": info, "alerts": alerts_by_operator(row, thresholds).get(info["operator"], [])}
    out["registrations"] = (
        query(con, REGISTRATION_SQL, {"op": op})
        if {"ev_operator_registered", "ev_operator_deregistered"} <= names
        else pd.DataFrame(columns=["block_number", "block_time", "tx_hash", "event"])
    )
    sl = slashes(con)
    sl = sl[sl["operator"].str.lower() == op]
    out["slashings"] = pd.DataFrame(
        {
            "block_number": sl["block_number"],
            "tx_hash": sl["tx_hash"],
            "stake_lost": pd.to_numeric(sl["amount_wei"], errors="coerce") / WEI_PER_ETH,
            "wad": sl["wad"],
        }
    )
    out["stakes"] = pd.DataFrame(columns=["block_number", "block_time", "tx_hash", "stake", "slashed"])
    if "ev_operator_stake_update" in names:
        out["stakes"] = query(con, STAKE_HISTORY_SQL, {"id": p["id"], "slash_txs": [str(t) for t in sl["tx_hash"]]})
    if out["stakes"].empty and "operator_stakes" in names:  # a DB without raw events (lens synth)
        num = float(info.get("stake_num") or 0.0)
        per_unit = float(info["stake"]) / num if num > 0 and info.get("stake") else 1 / WEI_PER_ETH
        out["stakes"] = query(con, STAKE_HISTORY_DERIVED_SQL, {"id": p["id"], "eth_per_unit": per_unit})
    if {"challenges", "task_signers"} <= names:
        d = query(con, OPERATOR_DISPUTES_SQL, {"id": p["id"]})
        d.insert(0, "verdict_page", "/verdict?task=" + d["task_id"].astype(str))
        d["role"] = d["signed"].map({True: "signed the response", False: "did not sign"})
        out["disputes"] = d.drop(columns=["signed"])
    else:
        out["disputes"] = pd.DataFrame(columns=["verdict_page", "task_id", "block_number", "success", "role"])
    out["missed"] = missed_tasks(con, info["operator_id"]) if "task_signers" in names else pd.DataFrame()
    return out


def missed_tasks(con: Con, operator_id: str, limit: int = 200) -> pd.DataFrame:
    """The operator's missed tasks, newest first, each with a link to its verdict page."""
    return decision_rows(con, query(con, MISSED_SQL, {"id": operator_id, "limit": int(limit)}))


# ---------------------------------------------------------------------------------------------
# Heatmap and latency

BUCKETS = (
    ("1 minute", 60),
    ("10 minutes", 600),
    ("1 hour", 3600),
    ("6 hours", 21600),
    ("1 day", 86400),
    ("7 days", 604800),
    ("30 days", 2592000),
)
TIME_RANGE_SQL = "SELECT min(created_time), max(created_time) FROM tasks WHERE signer_count IS NOT NULL"
LATENCY_TIME_SQL = """
SELECT time_bucket(CAST($width AS INTERVAL), created_time) AS bucket, count(*) AS tasks,
       quantile_cont(latency_respond_s, 0.5) AS p50, quantile_cont(latency_respond_s, 0.95) AS p95
FROM tasks WHERE latency_respond_s IS NOT NULL AND created_time IS NOT NULL
GROUP BY ALL ORDER BY bucket
"""
LATENCY_NONSIGNERS_SQL = """
SELECT coalesce(non_signer_count, 0) AS missing, count(*) AS tasks,
       quantile_cont(latency_respond_s, 0.5) AS p50, quantile_cont(latency_respond_s, 0.95) AS p95
FROM tasks WHERE latency_respond_s IS NOT NULL AND signer_count IS NOT NULL
GROUP BY ALL ORDER BY missing
"""


BUCKET_SECONDS = dict(BUCKETS)


def bucket_width(con: Con, most: int = 60) -> str | None:
    """A time-bucket width from a fixed list giving at most `most` buckets over the tasks' span (None: no tasks)."""
    lo, hi = query_rows(con, TIME_RANGE_ROLLUP_SQL if rollups.ready(con) else TIME_RANGE_SQL)[0]
    if lo is None:
        return None
    span = max((pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds(), 1.0)
    return next((name for name, secs in BUCKETS if span / secs <= most), BUCKETS[-1][0])


def participation_heatmap(con: Con, recent: int = DEFAULT_RECENT) -> pd.DataFrame:
    """Operators × time buckets: eligible, signed and participation per cell; operator labelled by name."""
    return operator_scan(con, recent)["heatmap"]


def operator_labels(con: Con) -> dict[str, str]:
    """operator address → a short unique label (its metadata name, else its short address)."""
    rows = query_rows(con, "SELECT operator, name FROM operators ORDER BY operator")
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for op, name in rows:
        label = str(name) if name else f"{str(op)[:6]}…{str(op)[-4:]}"
        if label in seen:
            label = f"{label} ({str(op)[:8]})"
        seen.add(label)
        labels[str(op)] = label
    return labels


def latency(con: Con, with_operators: bool = True) -> dict[str, pd.DataFrame]:
    """Created → responded latency: p50/p95 per time bucket, by number of non-signers, and (`with_operators`: from
    the signer scan) by which operator missed."""
    empty = {
        "over_time": pd.DataFrame(columns=["bucket", "tasks", "p50", "p95"]),
        "by_missing_count": pd.DataFrame(columns=["missing", "tasks", "p50", "p95"]),
        "by_missing_operator": pd.DataFrame(columns=["operator", "label", "tasks", "p50", "p95"]),
    }
    names = table_names(con)
    if "tasks" not in names:
        return empty
    width = bucket_width(con) if "task_signers" in names else None
    out = dict(empty)
    rolled = rollups.ready(con)
    qs = {"p50": 0.5, "p95": 0.95}
    if width is not None and rolled and rollups.whole_hours(BUCKET_SECONDS[width]):
        out["over_time"] = rollups.quantiles_by(query(con, LATENCY_TIME_ROLLUP_SQL, {"width": width}), ["bucket"], qs)
    elif width is not None:
        out["over_time"] = query(con, LATENCY_TIME_SQL, {"width": width})
    if rolled:
        out["by_missing_count"] = rollups.quantiles_by(query(con, LATENCY_NONSIGNERS_ROLLUP_SQL), ["missing"], qs)
    else:
        out["by_missing_count"] = query(con, LATENCY_NONSIGNERS_SQL)
    if with_operators:
        out["by_missing_operator"] = operator_scan(con)["by_missing_operator"]
    return out


# ---------------------------------------------------------------------------------------------
# What the page's table shows


def operator_table(figures: pd.DataFrame, thresholds: AlertThresholds = AlertThresholds()) -> pd.DataFrame:
    """operator_figures for the page: a link to each operator's detail view, its alerts as text, a status word."""
    df = figures.copy()
    df.insert(0, "detail", "/operators?operator=" + df["operator"].astype(str))
    found = alerts_by_operator(figures, thresholds)
    df["alerts"] = [" · ".join(a.kind.replace("_", " ") for a in found.get(str(o), [])) for o in df["operator"]]
    df["status"] = [
        "left" if not active else ("alert" if found.get(str(o)) else "ok")
        for o, active in zip(df["operator"], df["active"])
    ]
    df["metadata"] = [
        "—" if ok is None else ("ok" if ok else f"cannot fetch: {err or 'unknown'}")
        for ok, err in zip(df["metadata_ok"], df["metadata_error"])
    ]
    return df


def headline(figures: pd.DataFrame, thresholds: AlertThresholds = AlertThresholds()) -> dict[str, Any]:
    """Headline numbers: operators registered now, their stake, the median participation, how many alerts."""
    active = figures[figures["active"]] if len(figures) else figures
    parts = [float(p) for p in active["participation"] if not is_null(p)] if len(active) else []
    return {
        "registered": int(len(active)),
        "left": int(len(figures) - len(active)),
        "stake": float(active["stake"].sum()) if len(active) else 0.0,
        "median_participation": float(pd.Series(parts).median()) if parts else None,
        "alerts": len(alerts(figures, thresholds)),
    }
