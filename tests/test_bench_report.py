"""`lens bench all` writes one report (JSON and Markdown) with the limits of the same run; the README's table comes
from it. `lens bench live` serves while indexing without a lock error (figures, not timings, are asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import bench_cmds
from app.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_bench_all_writes_the_report_and_the_readme_table(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        cli, ["bench", "all", "--quick", "--only", "replay", "--out", str(out), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["benches"].keys() == report["benches"].keys() == {"replay"}
    replay = report["benches"]["replay"]
    assert replay["tasks"] == 300 and replay["p95_ms"] >= replay["p50_ms"] > 0
    # the limits were measured in this run, and the machine is described
    assert report["limits"]["regorus"]["per_s"] > 0 and report["limits"]["duckdb"]["rows_per_s"] > 0
    assert report["machine"]["cpus"] >= 1 and "load_avg_start" in report["machine"]
    md = (out / "report.md").read_text()
    assert "`lens bench replay`" in md and f"p95 **{replay['p95_ms']} ms**" in md
    # the README block is the report's table; anything around it stays as it was
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- bench -->\nold table\n<!-- /bench -->\nafter\n")
    assert bench_cmds.update_readme(report, readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n<!-- bench -->\n")
    assert text.endswith("<!-- /bench -->\nafter\n") and bench_cmds.report_table(report) in text
    assert not bench_cmds.update_readme(report, readme)  # idempotent


def test_bench_all_names_an_unknown_benchmark(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "all", "--only", "nonsense", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no benchmark nonsense" in result.output and "distributed" in result.output


def test_readme_benchmark_table_is_the_committed_report():
    """The README's block is generated from data/bench/report.json (`lens bench all --readme`), not typed."""
    report = json.loads((ROOT / "data" / "bench" / "report.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert bench_cmds.report_table(report) in readme


@pytest.mark.slow
def test_bench_live_serves_while_indexing_without_a_lock_error():
    """The one-minute `bench live` of issue 14, at its 10 tasks/s: the browser's page loads show the indexed block
    moving, never a lock error, and the run reports the indexer's and the app's memory at start and end."""
    out = bench_cmds.run_live(1.0)
    assert out["simulation_error"] is None
    assert out["reads"] >= 2 and out["lock_errors"] == 0
    assert out["lag_p95_s"] is not None  # at least one page showed an indexed block
    assert set(out["rss_mb"]) == {"indexer", "app"}
    assert all(v["start"] and v["end"] and v["peak"] >= max(v["start"], v["end"]) for v in out["rss_mb"].values())
    # every part's CPU is accounted, and the DB file changed as the indexer committed (seen by stat alone)
    assert {"anvil", "indexer", "app", "browser", "producer"} <= set(out["cpu_s"])
    assert out["producer_one_core_tasks_per_s"] > 0 and out["db_commits"] >= 1
    assert out["reader"] == "navigate" and len(bench_cmds.format_live(out)) >= 5
