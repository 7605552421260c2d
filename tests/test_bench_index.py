"""`lens bench index --json` on a small devnet range: every emitted log indexed, and the per-stage CPU reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_bench_index_json_reports_stage_cpu_beside_the_raw_limit(tmp_path):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lens"), "bench", "index", "--events", "300", "--json"],
        cwd=ROOT,
        env={**os.environ, "LENS_DB": str(tmp_path / "unused.duckdb")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    # the oracle: what the emitter put on chain (each task's logs, at least --events of them)
    assert res["events"] == res["emitted"] >= 300
    assert res["rows"] == res["events"] and res["undecodable"] == 0
    assert res["ratio"] == pytest.approx(res["indexer_logs_per_s"] / res["raw_logs_per_s"])
    assert set(res["stage_cpu_s"]) == {"setup", "fetch", "parse", "decode", "pack", "transfer", "load", "derive"}
    assert all(v >= 0 for v in res["stage_cpu_s"].values())
    # the stages are thread times inside the processes whose totals are reported: they cannot add up to more
    assert sum(res["stage_cpu_s"].values()) <= res["cpu_s"]["writer"] + res["cpu_s"]["fetch_decode_workers"] + 0.05
    assert res["stage_cpu_s"]["decode"] > 0 and res["stage_cpu_s"]["load"] > 0
    assert res["cpu_s"]["node"] is not None and res["raw_cpu_s"]["client"] > 0  # the bench started the node
    assert res["machine"]["cores"] == os.cpu_count() and len(res["machine"]["load_avg_before"]) == 3
