"""Overview queries: headline KPIs, decisions over time, latency histograms, the latest decisions, the deployment."""

from __future__ import annotations

from typing import Any

import pandas as pd

from app import settings
from app.queries import rollups
from app.queries.base import Con, meta, query, query_rows, table_names
from app.queries.decisions import decision_rows

# The headline counts by a few yes/no facts (at most 48 groups): one cheap grouped scan instead of nine filtered
# aggregates over every row (0.45 → 0.2 s at ten million tasks); the open challenge windows only look at the
# tail of the chain, which the zone maps of responded_block find without a scan.
KPI_GROUPS_SQL = """
SELECT allow, spent_block IS NOT NULL AS spent, challenged_block IS NOT NULL AS challenged,
       responded_block IS NULL AS awaiting, coalesce(status = 'expired', false) AS expired, count(*) AS n
FROM tasks
GROUP BY ALL
"""
OPEN_CHALLENGE_SQL = "SELECT count(*) FROM tasks WHERE allow AND challenged_block IS NULL AND responded_block >= ?"
# Each column's max comes from DuckDB's statistics; max(greatest(…)) over the rows would scan all of them.
LAST_BLOCK_SQL = (
    "SELECT greatest(max(created_block), coalesce(max(responded_block), 0), coalesce(max(spent_block), 0)) FROM tasks"
)
LIVE_OPERATORS_SQL = "SELECT count(*) FROM operators WHERE deregistered_block IS NULL AND coalesce(stake_num, 0) > 0"
TIME_RANGE_SQL = "SELECT min(created_time), max(created_time) FROM tasks"
# The bucket width is chosen from a fixed list (never user text), passed as an INTERVAL parameter.
# Grouped by the boolean `allow` (labelled afterwards): a string per row would cost more than the count.
OVER_TIME_SQL = """
SELECT time_bucket(CAST(? AS INTERVAL), created_time) AS bucket, allow, count(*) AS decisions
FROM tasks
GROUP BY ALL
"""
# Latencies are differences of block times: whole seconds, a few hundred distinct values at most. Counting each
# value once (one grouped scan) gives exact quantiles and any binning without a quantile sketch per row, which
# cost seconds at ten million tasks.
LATENCY_VALUES_SQL = """
SELECT 'created → responded' AS stage, latency_respond_s AS v, count(*) AS n
FROM tasks WHERE latency_respond_s IS NOT NULL GROUP BY ALL
UNION ALL
SELECT 'responded → spent' AS stage, latency_spend_s AS v, count(*) AS n
FROM tasks WHERE latency_spend_s IS NOT NULL GROUP BY ALL
ORDER BY stage, v
"""
LATEST_SQL = """
SELECT task_id, created_time, created_block, policy_client, intent_from, function_name, amount_num, asset,
       allow, status
FROM tasks
ORDER BY created_block DESC, task_id
LIMIT ?
"""
# The same counts from the hourly rows the indexer keeps (indexer/aggregates.py), when the DB has them: a few
# thousand rows at ten million tasks instead of every task. Bars narrower than an hour still read the tasks.
KPI_GROUPS_ROLLUP_SQL = """
SELECT allow, spent, challenged, awaiting, expired, sum(tasks)::BIGINT AS n FROM task_hours GROUP BY ALL
"""
TIME_RANGE_ROLLUP_SQL = "SELECT min(first_time), max(last_time) FROM task_hours"
OVER_TIME_ROLLUP_SQL = """
SELECT time_bucket(CAST(? AS INTERVAL), hour) AS bucket, allow, sum(tasks)::BIGINT AS decisions
FROM task_hours
GROUP BY ALL
"""
LATENCY_VALUES_ROLLUP_SQL = """
SELECT CASE stage WHEN 'respond' THEN 'created → responded' ELSE 'responded → spent' END AS stage,
       latency_s AS v, sum(tasks)::BIGINT AS n
FROM task_latency_hours GROUP BY ALL
ORDER BY stage, v
"""
# The newest decisions are in the newest hours: the hour from which there are enough of them bounds the top-N to
# the tail of the tasks (zone maps of created_time), the same rows (a block's tasks share its hour; blocks and times
# grow together, so no task before that hour can rank above one in it).
NEWEST_HOURS_SQL = """
SELECT hour, sum(tasks)::BIGINT AS n FROM task_hours WHERE hour IS NOT NULL GROUP BY hour ORDER BY hour DESC
"""
LATEST_SINCE_SQL = LATEST_SQL.replace("FROM tasks\n", "FROM tasks\nWHERE created_time >= ?\n")
BUCKETS = (
    ("1 minute", 60),
    ("10 minutes", 600),
    ("1 hour", 3600),
    ("6 hours", 21600),
    ("1 day", 86400),
    ("7 days", 604800),
)
LATENCY_BINS = 40


def challenge_window(con: Con) -> int:
    """Challenge window in blocks: the DB's meta value if recorded, else the devnet setting."""
    try:
        return int(meta(con).get("challenge_window_blocks", ""))
    except ValueError:
        return int(settings.get("challenge_window_blocks"))


def kpis(con: Con) -> dict[str, Any]:
    """Headline numbers: tasks, allow/deny rate, spent, challenged, open challenge window, live operators."""
    last = int(query_rows(con, LAST_BLOCK_SQL)[0][0] or 0)
    g = query(con, KPI_GROUPS_ROLLUP_SQL if rollups.ready(con) else KPI_GROUPS_SQL)
    allow = g["allow"].astype("boolean")
    out = {
        "tasks": int(g["n"].sum()),
        "allowed": int(g.loc[allow.fillna(False).astype(bool), "n"].sum()),
        "denied": int(g.loc[(~allow).fillna(False).astype(bool), "n"].sum()),
        "spent": int(g.loc[g["spent"], "n"].sum()),
        "challenged": int(g.loc[g["challenged"], "n"].sum()),
        "awaiting": int(g.loc[g["awaiting"], "n"].sum()),
        "expired": int(g.loc[g["expired"], "n"].sum()),
        "open_challenge": int(query_rows(con, OPEN_CHALLENGE_SQL, [last - challenge_window(con)])[0][0]),
        "last_block": last if len(g) else 0,
    }
    answered = out["allowed"] + out["denied"]
    out["allow_rate"] = out["allowed"] / answered if answered else None
    out["deny_rate"] = out["denied"] / answered if answered else None
    out["live_operators"] = int(query_rows(con, LIVE_OPERATORS_SQL)[0][0]) if "operators" in table_names(con) else 0
    return out


def decisions_over_time(con: Con) -> pd.DataFrame:
    """Decisions per time bucket and verdict (bucket width picked so the chart has ≤ ~200 bars)."""
    rolled = rollups.ready(con)
    lo, hi = query_rows(con, TIME_RANGE_ROLLUP_SQL if rolled else TIME_RANGE_SQL)[0]
    if lo is None:
        return pd.DataFrame(columns=["bucket", "verdict", "decisions"])
    span = max((pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds(), 1.0)
    width, secs = next(((name, s) for name, s in BUCKETS if span / s <= 200), BUCKETS[-1])
    df = query(con, OVER_TIME_ROLLUP_SQL if rolled and rollups.whole_hours(secs) else OVER_TIME_SQL, [width])
    allow = df["allow"].astype("boolean")
    df["verdict"] = ["awaiting response" if pd.isna(a) else ("allowed" if a else "denied") for a in allow]
    df = df.groupby(["bucket", "verdict"], as_index=False)["decisions"].sum()
    return df.sort_values(["bucket", "verdict"], ignore_index=True)[["bucket", "verdict", "decisions"]]


def quantile_of_counts(values: list[float], counts: list[int], q: float) -> float | None:
    """The q-quantile of a distribution given as sorted distinct values and their counts (the smallest value whose
    cumulative share reaches q; None when empty)."""
    total = sum(counts)
    if not total:
        return None
    need, seen = q * total, 0
    for v, n in zip(values, counts):
        seen += n
        if seen >= need:
            return float(v)
    return float(values[-1])


def latency_histograms(con: Con) -> dict[str, Any]:
    """{"bins": (stage, start_s, end_s, n) up to p99 with the overflow in the last bin, "quantiles": stage → (p50, p95)}."""
    counts = query(con, LATENCY_VALUES_ROLLUP_SQL if rollups.ready(con) else LATENCY_VALUES_SQL)
    frames, quantiles = [], {}
    for stage in ("created → responded", "responded → spent"):
        part = counts[counts["stage"] == stage]
        values, ns = part["v"].astype(float).tolist(), part["n"].astype(int).tolist()
        p99 = quantile_of_counts(values, ns, 0.99)
        quantiles[stage] = (quantile_of_counts(values, ns, 0.5), quantile_of_counts(values, ns, 0.95))
        if not values:
            continue
        width = max(float(p99 or 1) / LATENCY_BINS, 1e-3)
        bins = (part["v"].astype(float) / width).floordiv(1).clip(upper=LATENCY_BINS)
        binned = part.assign(bin=bins).groupby("bin", as_index=False)["n"].sum()
        binned["stage"] = stage
        binned["start_s"] = binned["bin"] * width
        binned["end_s"] = binned["start_s"] + width
        frames.append(binned)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage", "start_s", "end_s", "n"])
    return {"bins": df[["stage", "start_s", "end_s", "n"]], "quantiles": quantiles}


def latest_decisions(con: Con, limit: int = 25) -> pd.DataFrame:
    """The newest decisions, with a link to each one's verdict page."""
    if rollups.ready(con):
        seen = 0
        for hour, n in query_rows(con, NEWEST_HOURS_SQL):
            seen += int(n)
            if seen >= int(limit):
                return decision_rows(con, query(con, LATEST_SINCE_SQL, [hour, int(limit)]))
    return decision_rows(con, query(con, LATEST_SQL, [int(limit)]))


def deployment_tables(doc: dict) -> dict[str, pd.DataFrame]:
    """The deployment document as tables: contracts (role → address), policies and clients."""
    contracts = pd.DataFrame(
        [{"role": k, "address": str(v)} for k, v in (doc.get("contracts") or {}).items()], columns=["role", "address"]
    )
    policies = pd.DataFrame(
        [
            {
                "policy": k,
                "address": str((v or {}).get("address", "")),
                "entrypoint": str((v or {}).get("entrypoint", "")),
                "code hash": str((v or {}).get("policy_code_hash", "")),
            }
            for k, v in (doc.get("policies") or {}).items()
        ],
        columns=["policy", "address", "entrypoint", "code hash"],
    )
    clients = pd.DataFrame(
        [
            {"client": k, "address": str((v or {}).get("address", "")), "policy": str((v or {}).get("policy", ""))}
            for k, v in (doc.get("clients") or {}).items()
        ],
        columns=["client", "address", "policy"],
    )
    roles = pd.DataFrame(
        [{"role": k, "address": str(v)} for k, v in (doc.get("roles") or {}).items()], columns=["role", "address"]
    )
    return {"contracts": contracts, "policies": policies, "clients": clients, "roles": roles}
