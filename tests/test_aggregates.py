"""Pre-aggregated tables on a synthetic DB, and the exact quantiles the pages compute from counted values: the same
figures as plain SQL over the raw rows, and as the pages' raw-table path on the same DB without the aggregates."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_aggregates_devnet import check_against_the_raw_rows

from app import synth
from app.queries import disputes as dq
from app.queries import operators as oq
from app.queries import overview as ov
from app.queries import rollups
from indexer import aggregates

_DUCK = duckdb.connect(":memory:")

values = st.one_of(
    st.integers(min_value=0, max_value=400).map(float),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(values, st.integers(min_value=1, max_value=40), min_size=1, max_size=12),
    st.sampled_from(["0.5", "0.95", "0.99", "0.25", "0.1"]),
)
def test_quantiles_from_counted_values_equal_duckdbs_over_the_rows(counted, q) -> None:
    vals = sorted(counted)
    rows = [v for v in vals for _ in range(counted[v])]
    want = _DUCK.execute(f"SELECT quantile_cont(x, {q}) FROM unnest(?::DOUBLE[]) t(x)", [rows]).fetchone()[0]
    assert rollups.quantile_cont(vals, [counted[v] for v in vals], float(q)) == want


def test_quantile_of_nothing_is_none() -> None:
    assert rollups.quantile_cont([], [], 0.5) is None


@pytest.fixture(scope="module")
def synth_dbs(tmp_path_factory):
    """A synthetic DB (with the aggregates synth writes) and a copy without them (the pages read the raw tables)."""
    tmp = tmp_path_factory.mktemp("aggs")
    rolled = tmp / "rolled.duckdb"
    synth.build(rolled, tasks=30_000, seed=3)
    raw = tmp / "raw.duckdb"
    shutil.copy(rolled, raw)
    con = duckdb.connect(str(raw))
    con.execute("DELETE FROM meta WHERE key = ?", [aggregates.META_KEY])
    con.close()
    return rolled, raw


def _figures(path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {f"scan.{k}": v for k, v in oq.operator_scan(con, 500).items()}
        out.update({f"latency.{k}": v for k, v in oq.latency(con, False).items()})
        out["kpis"] = pd.DataFrame([ov.kpis(con)])
        out["over_time"] = ov.decisions_over_time(con)
        out["latest"] = ov.latest_decisions(con)
        hist = ov.latency_histograms(con)
        out["latency_bins"] = hist["bins"]
        out["latency_quantiles"] = pd.DataFrame([hist["quantiles"]])
        head = con.execute("SELECT max(responded_block) FROM tasks").fetchone()[0]
        d = dq.disputes(con, dq.Head(head, "chain"), dq.Window(20_000, "setting"))
        out["disputes.challenges"] = d.challenges
        out["disputes.candidates"] = d.candidates
        out["disputes.counts"] = pd.DataFrame([{"missing": d.missing_replays, "responded": d.responded}])
        out["ready"] = pd.DataFrame([{"ready": rollups.ready(con)}])
        return out
    finally:
        con.close()


def test_synth_writes_the_aggregates_and_they_agree_with_the_raw_rows(synth_dbs) -> None:
    rolled, _raw = synth_dbs
    seen = check_against_the_raw_rows(rolled)
    assert seen["tasks"] == 30_000 and seen["replays"] > 0 and seen["challenges"] > 0


def test_pages_read_the_same_figures_with_and_without_the_aggregates(synth_dbs) -> None:
    rolled, raw = synth_dbs
    a, b = _figures(rolled), _figures(raw)
    assert bool(a.pop("ready")["ready"][0]) and not bool(b.pop("ready")["ready"][0])
    assert len(a["disputes.challenges"]) and len(a["scan.heatmap"]) and len(a["latency.over_time"])
    for name in a:
        pd.testing.assert_frame_equal(
            a[name].reset_index(drop=True), b[name].reset_index(drop=True), check_dtype=False, obj=name
        )
