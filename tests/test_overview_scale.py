"""The overview's scale-minded queries: latency quantiles from value counts (one grouped scan) and the decisions
page joined to its replays only for the rows shown — checked against plain SQL over the raw rows."""

from __future__ import annotations

import math

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import synth
from app.queries import decisions, overview


@given(st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=300), st.floats(0.01, 1.0))
@settings(max_examples=200, deadline=None)
def test_quantile_of_counts_is_the_nearest_rank_quantile(xs, q):
    values = sorted(set(xs))
    counts = [xs.count(v) for v in values]
    ranked = sorted(xs)
    assert overview.quantile_of_counts(values, counts, q) == ranked[max(0, math.ceil(q * len(ranked) - 1e-9) - 1)]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("ov") / "s.duckdb"
    synth.build(path, tasks=3000, seed=9)
    c = duckdb.connect(str(path), read_only=True)
    yield c
    c.close()


def test_latency_histogram_counts_and_quantiles_match_sql(con):
    h = overview.latency_histograms(con)
    for stage, col in (("created → responded", "latency_respond_s"), ("responded → spent", "latency_spend_s")):
        n, p50, p95 = con.execute(
            f"SELECT count({col}), quantile_disc({col}, 0.5), quantile_disc({col}, 0.95) FROM tasks"
        ).fetchone()
        bins = h["bins"][h["bins"]["stage"] == stage]
        assert int(bins["n"].sum()) == n
        got50, got95 = h["quantiles"][stage]
        # nearest rank and DuckDB's discrete quantile may pick neighbouring ranks; the values are whole seconds
        ranked = [r[0] for r in con.execute(f"SELECT {col} FROM tasks WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]
        assert got50 == ranked[math.ceil(0.5 * n) - 1] and abs(got50 - p50) <= 2
        assert got95 == ranked[math.ceil(0.95 * n) - 1] and abs(got95 - p95) <= 2
        assert (bins["end_s"] > bins["start_s"]).all()


def test_decisions_page_with_replays_joined_late_equals_the_full_join(con):
    for f in (
        decisions.DecisionFilter(),
        decisions.DecisionFilter(sort="amount", desc=False),
        decisions.DecisionFilter(status=("denied",), sort="latency"),
    ):
        page = decisions.decisions_page(con, f, 2, 25)
        _, from_where, params = decisions._filtered(con, f, join_replays=True)
        want = con.execute(
            f"SELECT t.task_id, r.result {from_where} {decisions._order_by(f)} LIMIT 25 OFFSET 50", params
        ).fetchall()
        assert list(zip(page["task_id"], page["replay"])) == want
        assert decisions.decisions_count(con, f) == con.execute(f"SELECT count(*) {from_where}", params).fetchone()[0]


def test_headline_counts_and_decisions_over_time_match_plain_sql(con):
    k = overview.kpis(con)
    want = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE allow), count(*) FILTER (WHERE NOT allow), "
        "count(*) FILTER (WHERE spent_block IS NOT NULL), count(*) FILTER (WHERE challenged_block IS NOT NULL), "
        "count(*) FILTER (WHERE responded_block IS NULL), count(*) FILTER (WHERE status = 'expired'), "
        "max(greatest(created_block, coalesce(responded_block, 0), coalesce(spent_block, 0))) FROM tasks"
    ).fetchone()
    got = tuple(k[x] for x in ("tasks", "allowed", "denied", "spent", "challenged", "awaiting", "expired"))
    assert got + (k["last_block"],) == want
    window = overview.challenge_window(con)
    open_now = con.execute(
        "SELECT count(*) FROM tasks WHERE allow AND challenged_block IS NULL AND responded_block >= ?",
        [want[-1] - window],
    ).fetchone()[0]
    assert k["open_challenge"] == open_now
    df = overview.decisions_over_time(con)
    assert int(df["decisions"].sum()) == want[0]
    by_verdict = df.groupby("verdict")["decisions"].sum().to_dict()
    assert by_verdict.get("allowed", 0) == want[1] and by_verdict.get("denied", 0) == want[2]
    assert by_verdict.get("awaiting response", 0) == want[5]
    assert list(df["bucket"]) == sorted(df["bucket"])
