"""The pre-aggregated tables (indexer/aggregates.py) on a real devnet, as the indexer follows it hour after hour, as
`lens audit` writes its replays, and across a reorg: every figure the Operators, Overview and Disputes pages read from
them equals the same figure counted here in plain SQL over task_signers, tasks, challenges and replays."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import simulated_devnet

from app.queries import disputes as dq
from app.queries import operators as oq
from app.queries import overview as ov
from app.queries import rollups
from devnet.simulate import SimConfig, simulate
from indexer.deployment import parse
from indexer.run import Indexer, IndexOptions

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("aggregates_devnet")]

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = 5
HOURS = 6 * 3600  # between rounds the chain's clock jumps: the tasks spread over many hours, many hourly rows
FAST = dict(retries=8, backoff_s=0.01, rpc_timeout_s=10.0, metadata_timeout_s=0.2)

# ---- the oracle: each figure counted directly over the raw rows ------------------------------------------------

ORACLE_OPERATORS = """
WITH ch AS (SELECT task_id, max(CASE WHEN success THEN 1 ELSE 0 END) AS won FROM challenges GROUP BY task_id)
SELECT ts.operator_id, count(*) AS eligible, sum(CASE WHEN ts.signed THEN 1 ELSE 0 END) AS signed,
       sum(CASE WHEN ts.signed AND ch.task_id IS NOT NULL THEN 1 ELSE 0 END) AS disputes,
       sum(CASE WHEN ts.signed AND ch.won = 1 THEN 1 ELSE 0 END) AS disputes_lost,
       max(CASE WHEN ts.signed THEN t.created_block END) AS last_signed_block
FROM task_signers ts JOIN tasks t ON t.task_id = ts.task_id LEFT JOIN ch ON ch.task_id = ts.task_id
GROUP BY ts.operator_id ORDER BY ts.operator_id
"""
ORACLE_HEATMAP = """
SELECT ts.operator_id, time_bucket(CAST(? AS INTERVAL), t.created_time) AS bucket, count(*) AS eligible,
       sum(CASE WHEN ts.signed THEN 1 ELSE 0 END) AS signed
FROM task_signers ts JOIN tasks t ON t.task_id = ts.task_id
WHERE t.created_time IS NOT NULL GROUP BY ALL ORDER BY 1, 2
"""
ORACLE_MISSED = """
SELECT ts.operator_id, count(*) AS tasks, quantile_cont(t.latency_respond_s, 0.5) AS p50,
       quantile_cont(t.latency_respond_s, 0.95) AS p95
FROM task_signers ts JOIN tasks t ON t.task_id = ts.task_id
WHERE NOT ts.signed AND t.latency_respond_s IS NOT NULL GROUP BY 1 ORDER BY 1
"""
ORACLE_KPIS = """
SELECT count(*), count(*) FILTER (WHERE allow), count(*) FILTER (WHERE NOT allow),
       count(*) FILTER (WHERE spent_block IS NOT NULL), count(*) FILTER (WHERE challenged_block IS NOT NULL),
       count(*) FILTER (WHERE responded_block IS NULL), count(*) FILTER (WHERE status = 'expired')
FROM tasks
"""
ORACLE_LATENCY_TIME = """
SELECT time_bucket(CAST(? AS INTERVAL), created_time) AS bucket, count(*) AS tasks,
       quantile_cont(latency_respond_s, 0.5) AS p50, quantile_cont(latency_respond_s, 0.95) AS p95
FROM tasks WHERE latency_respond_s IS NOT NULL AND created_time IS NOT NULL GROUP BY 1 ORDER BY 1
"""
ORACLE_BY_MISSING = """
SELECT coalesce(non_signer_count, 0) AS missing, count(*) AS tasks, quantile_cont(latency_respond_s, 0.5) AS p50,
       quantile_cont(latency_respond_s, 0.95) AS p95
FROM tasks WHERE latency_respond_s IS NOT NULL AND task_id IN (SELECT task_id FROM task_signers) GROUP BY 1 ORDER BY 1
"""
ORACLE_LATENCY_VALUES = """
SELECT 'created → responded' AS stage, latency_respond_s AS v, count(*) AS n FROM tasks
WHERE latency_respond_s IS NOT NULL GROUP BY 2
UNION ALL
SELECT 'responded → spent', latency_spend_s, count(*) FROM tasks WHERE latency_spend_s IS NOT NULL GROUP BY 2
ORDER BY 1, 2
"""
ORACLE_OVER_TIME = """
SELECT time_bucket(INTERVAL 1 hour, created_time) AS bucket, allow, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL
"""
ORACLE_LATEST = "SELECT task_id FROM tasks ORDER BY created_block DESC NULLS LAST, task_id LIMIT 10"
ORACLE_MISSING_REPLAYS = """
SELECT count(*) FROM tasks t WHERE t.responded_block IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM replays r WHERE r.task_id = t.task_id)
"""
ORACLE_MISMATCHES = "SELECT task_id, replayed_allow FROM replays WHERE result = 'mismatch' ORDER BY task_id"
ORACLE_CHALLENGE_TIMING = """
SELECT c.task_id, c.block_number - t.responded_block,
       c.success AND c.tx_hash IN (SELECT tx_hash FROM ev_operator_slashed)
FROM challenges c LEFT JOIN tasks t ON t.task_id = c.task_id
"""
ORACLE_CHALLENGE_REPLAYS = """
SELECT c.task_id, r.result FROM challenges c LEFT JOIN replays r ON r.task_id = c.task_id ORDER BY 1, 2
"""


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def check_against_the_raw_rows(db: Path) -> dict:
    """Every aggregate-backed page figure against the oracle; returns a few counts for the caller's own checks."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert rollups.ready(con), "the indexer keeps the aggregates and says so in meta"
        scan = oq.operator_scan(con, 5)
        fig = scan["figures"].set_index("operator_id").sort_index()
        want = _frame(con, ORACLE_OPERATORS).set_index("operator_id")
        for col in ("eligible", "signed", "disputes", "disputes_lost"):
            assert fig.loc[want.index, col].astype(int).tolist() == want[col].astype(int).tolist(), col
        assert [int(v) for v in fig.loc[want.index, "last_signed_block"]] == [int(v) for v in want["last_signed_block"]]
        width = oq.bucket_width(con)
        heat = scan["heatmap"].merge(_frame(con, "SELECT operator, operator_id FROM operators"), on="operator")
        got = heat.sort_values(["operator_id", "bucket"])[["operator_id", "bucket", "eligible", "signed"]]
        exp = _frame(con, ORACLE_HEATMAP, [width])
        assert got["eligible"].astype(int).tolist() == exp["eligible"].astype(int).tolist()
        assert got["signed"].astype(int).tolist() == exp["signed"].astype(int).tolist()
        assert [pd.Timestamp(b) for b in got["bucket"]] == [pd.Timestamp(b) for b in exp["bucket"]]
        # the missed tasks' latency quantiles, computed from counted values, to the last bit of DuckDB's own
        missed = scan["by_missing_operator"].merge(
            _frame(con, "SELECT operator, operator_id FROM operators"), on="operator"
        )
        missed = missed.sort_values("operator_id").reset_index(drop=True)
        exp = _frame(con, ORACLE_MISSED)
        assert missed["operator_id"].tolist() == exp["operator_id"].tolist()
        assert missed["tasks"].tolist() == exp["tasks"].astype(int).tolist()
        assert missed["p50"].tolist() == exp["p50"].tolist() and missed["p95"].tolist() == exp["p95"].tolist()
        lat = oq.latency(con, False)
        exp = _frame(con, ORACLE_LATENCY_TIME, [width])
        assert [pd.Timestamp(b) for b in lat["over_time"]["bucket"]] == [pd.Timestamp(b) for b in exp["bucket"]]
        for col in ("tasks", "p50", "p95"):
            assert lat["over_time"][col].tolist() == exp[col].tolist(), col
        exp = _frame(con, ORACLE_BY_MISSING)
        for col in ("missing", "tasks", "p50", "p95"):
            assert lat["by_missing_count"][col].tolist() == exp[col].tolist(), col
        # the Overview
        k = ov.kpis(con)
        n, allowed, denied, spent, challenged, awaiting, expired = con.execute(ORACLE_KPIS).fetchone()
        assert (k["tasks"], k["allowed"], k["denied"], k["spent"], k["challenged"], k["awaiting"], k["expired"]) == (
            n,
            allowed,
            denied,
            spent,
            challenged,
            awaiting,
            expired,
        )
        latest = ov.latest_decisions(con, 10)["task_id"].tolist()
        assert latest == [r[0] for r in con.execute(ORACLE_LATEST).fetchall()]
        values = ov.query(con, ov.LATENCY_VALUES_ROLLUP_SQL)
        exp = _frame(con, ORACLE_LATENCY_VALUES)
        assert values.values.tolist() == exp.values.tolist()
        hourly = ov.query(con, ov.OVER_TIME_ROLLUP_SQL, ["1 hour"]).sort_values(["bucket", "allow"])
        exp = _frame(con, ORACLE_OVER_TIME)
        assert hourly["decisions"].tolist() == exp["n"].tolist()
        assert [pd.Timestamp(b) for b in hourly["bucket"]] == [pd.Timestamp(b) for b in exp["bucket"]]
        # the Disputes page: unreplayed responses, mismatches, each challenge's replay
        d = dq.disputes(con, dq.Head(10**9, "chain"), dq.Window(10**9, "setting"))
        assert d.missing_replays == con.execute(ORACLE_MISSING_REPLAYS).fetchone()[0]
        assert d.responded == con.execute("SELECT count(*) FROM tasks WHERE responded_block IS NOT NULL").fetchone()[0]
        mismatches = con.execute(ORACLE_MISMATCHES).fetchall()
        challenged_ok = {r[0] for r in con.execute("SELECT task_id FROM challenges WHERE success").fetchall()}
        got = sorted(zip(d.candidates["task_id"], d.candidates["replayed_allow"])) if len(d.candidates) else []
        assert got == [(t, a) for t, a in mismatches if t not in challenged_ok]
        got = [(t, None if pd.isna(r) else r) for t, r in zip(d.challenges["task_id"], d.challenges["replay"])]
        exp = con.execute(ORACLE_CHALLENGE_REPLAYS).fetchall()
        assert sorted(got, key=lambda r: (r[0], r[1] or "")) == sorted(exp, key=lambda r: (r[0], r[1] or ""))
        # the page's challenge table: timing against the window, and who was slashed (per the chain's own logs)
        rows = dq.challenge_rows(d)
        got = sorted(zip(d.challenges["task_id"], rows["timing"], rows["slashed"] != ""))
        exp = sorted(
            (t, "response not indexed" if b is None else f"{b:,} of {10**9:,} blocks", bool(s))
            for t, b, s in con.execute(ORACLE_CHALLENGE_TIMING).fetchall()
        )
        assert got == exp
        return {
            "tasks": n,
            "replays": con.execute("SELECT count(*) FROM replays").fetchone()[0],
            "hours": con.execute("SELECT count(DISTINCT hour) FROM task_hours").fetchone()[0],
            "hour_list": {r[0] for r in con.execute("SELECT DISTINCT hour FROM task_hours").fetchall()},
            "width": width,
            "missed": int(missed["tasks"].sum()),
            "challenges": len(d.challenges),
            "mismatches": len(mismatches),
            "candidates": len(d.candidates),
            "slashed": int((rows["slashed"] != "").sum()),
        }
    finally:
        con.close()


def _round(node, w3, doc, tasks: int, seed: int, hours: int = HOURS) -> None:
    """The chain's clock moves `hours` on, then `tasks` more simulated tasks (some wrong, and challenged)."""
    w3.provider.make_request("evm_increaseTime", [hours])
    w3.provider.make_request("evm_mine", [])
    cfg = SimConfig(
        tasks=tasks,
        seed=seed,
        operators=OPERATORS,
        fault_rate=0.2,
        challenge_rate=0.5,
        upgrade_at=None,
        ownership_transfer_at=None,
        independent_eval=False,
        individual_signatures=False,
    )
    simulate(node.url, doc, cfg)


def _index(doc: dict, db: Path) -> Indexer:
    ix = Indexer(parse(doc, "devnet"), IndexOptions(db=str(db), **FAST))
    ix.run()
    return ix


def test_aggregates_follow_the_chain_hour_by_hour_the_audit_and_a_reorg(tmp_path):
    db = tmp_path / "lens.duckdb"
    with simulated_devnet(tasks=12, operators=OPERATORS, fault_rate=0.2, challenge_rate=0.5) as (
        node,
        w3,
        doc,
        _result,
    ):
        _index(doc, db)
        first = check_against_the_raw_rows(db)
        _round(node, w3, doc, 12, seed=8)
        _index(doc, db)  # incremental: only the new blocks' tasks and their hours are recomputed
        second = check_against_the_raw_rows(db)
        assert second["tasks"] > first["tasks"] and second["hours"] > first["hours"]
        audit = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "lens"), "audit", "--db", str(db), "--workers", "1", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert audit.returncode == 0, audit.stderr
        audited = check_against_the_raw_rows(db)  # each task now carries its replay
        assert audited["replays"] > 0 and audited["mismatches"] > 0
        snap = w3.provider.make_request("evm_snapshot", [])["result"]
        _round(node, w3, doc, 10, seed=9)
        _index(doc, db)
        branch_a = check_against_the_raw_rows(db)
        assert branch_a["replays"] == audited["replays"]  # the new tasks are not replayed yet
        assert w3.provider.make_request("evm_revert", [snap])["result"]
        # another branch over the same heights, and past them, hours later: branch A's hours must empty
        _round(node, w3, doc, 14, seed=10, hours=2 * HOURS)
        ix = _index(doc, db)
        assert ix.stats.reorgs == 1
        branch_b = check_against_the_raw_rows(db)
        assert branch_b["tasks"] != branch_a["tasks"]
        assert branch_b["hour_list"].isdisjoint(branch_a["hour_list"] - audited["hour_list"])
        # many hours, a heatmap in whole hours (read from the hourly rows), challenges and missed tasks on record
        assert branch_b["hours"] >= 3 and branch_b["width"] == "1 hour"
        assert branch_b["challenges"] > 0 and branch_b["missed"] > 0 and audited["candidates"] > 0
        assert branch_b["slashed"] > 0
