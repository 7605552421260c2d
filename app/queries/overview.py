"""Overview queries: headline KPIs, decisions over time, latency histograms, the latest decisions, the deployment."""

from __future__ import annotations

from typing import Any

import pandas as pd

from app import settings
from app.queries.base import Con, meta, query, query_rows, table_names
from app.queries.decisions import decision_rows

KPI_SQL = """
SELECT count(*) AS tasks,
       count(*) FILTER (WHERE allow) AS allowed,
       count(*) FILTER (WHERE NOT allow) AS denied,
       count(*) FILTER (WHERE spent_block IS NOT NULL) AS spent,
       count(*) FILTER (WHERE challenged_block IS NOT NULL) AS challenged,
       count(*) FILTER (WHERE responded_block IS NULL) AS awaiting,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       count(*) FILTER (WHERE allow AND challenged_block IS NULL AND responded_block >= ?) AS open_challenge,
       max(greatest(created_block, coalesce(responded_block, 0), coalesce(spent_block, 0))) AS last_block
FROM tasks
"""
LAST_BLOCK_SQL = (
    "SELECT max(greatest(created_block, coalesce(responded_block, 0), coalesce(spent_block, 0))) FROM tasks"
)
LIVE_OPERATORS_SQL = "SELECT count(*) FROM operators WHERE deregistered_block IS NULL AND coalesce(stake_num, 0) > 0"
TIME_RANGE_SQL = "SELECT min(created_time), max(created_time) FROM tasks"
# The bucket width is chosen from a fixed list (never user text), passed as an INTERVAL parameter.
OVER_TIME_SQL = """
SELECT time_bucket(CAST(? AS INTERVAL), created_time) AS bucket,
       CASE WHEN allow THEN 'allowed' WHEN NOT allow THEN 'denied' ELSE 'awaiting response' END AS verdict,
       count(*) AS decisions
FROM tasks
GROUP BY ALL
ORDER BY bucket, verdict
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
    last = query_rows(con, LAST_BLOCK_SQL)[0][0] or 0
    row = query(con, KPI_SQL, [int(last) - challenge_window(con)]).iloc[0]
    out = {k: (int(row[k]) if pd.notna(row[k]) else 0) for k in row.index}
    answered = out["allowed"] + out["denied"]
    out["allow_rate"] = out["allowed"] / answered if answered else None
    out["deny_rate"] = out["denied"] / answered if answered else None
    out["live_operators"] = int(query_rows(con, LIVE_OPERATORS_SQL)[0][0]) if "operators" in table_names(con) else 0
    return out


def decisions_over_time(con: Con) -> pd.DataFrame:
    """Decisions per time bucket and verdict (bucket width picked so the chart has ≤ ~200 bars)."""
    lo, hi = query_rows(con, TIME_RANGE_SQL)[0]
    if lo is None:
        return pd.DataFrame(columns=["bucket", "verdict", "decisions"])
    span = max((pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds(), 1.0)
    width = next((name for name, secs in BUCKETS if span / secs <= 200), BUCKETS[-1][0])
    return query(con, OVER_TIME_SQL, [width])


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
    counts = query(con, LATENCY_VALUES_SQL)
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
