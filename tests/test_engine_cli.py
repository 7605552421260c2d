"""`lens explain`, `lens audit`, `lens policy eval`, `lens bench replay` against a real DuckDB file of real evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from app.cli.main import cli
from app.engine.fixtures import synthetic_tasks, task_row, write_db

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "data" / "policies"


@pytest.fixture()
def db(tmp_path: Path):
    """A DB with 24 tasks over the four policies: every 6th attestation is a wrong verdict, one task unresponded."""
    tasks = synthetic_tasks(24, seed=21, fault_every=6)
    from app.engine.replay import TaskRecord

    pending = TaskRecord(
        **{**tasks[-1].__dict__, "task_id": "0x" + "ee" * 32, "evaluation_result": None, "attested_allow": None}
    )
    path = tmp_path / "lens.duckdb"
    write_db(path, tasks + [pending])
    return path, tasks


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_explain_by_task_id_and_by_tx_hash(db) -> None:
    path, tasks = db
    t = tasks[0]
    res = _run("explain", t.task_id, "--db", str(path), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    for key in (
        "task_id",
        "attested_allow",
        "replayed_allow",
        "replay",
        "deny",
        "sentence",
        "rule_tree",
        "bodies",
        "counterfactuals",
    ):
        assert key in doc
    assert doc["task_id"] == t.task_id and doc["replay"] == "match" and doc["attested_allow"] == t.attested_allow
    tx = task_row(t, 10)["created_tx"]
    text = _run("explain", tx.upper().replace("0X", "0x"), "--db", str(path))
    assert text.exit_code == 0 and t.task_id in text.output and "Counterfactuals" in text.output


def test_explain_mismatch_and_unknown_ids(db) -> None:
    path, tasks = db
    res = _run("explain", tasks[5].task_id, "--db", str(path), "--json")
    assert json.loads(res.output)["replay"] == "mismatch"
    typo = tasks[3].task_id[:-2] + "zz"
    bad = _run("explain", typo, "--db", str(path))
    assert bad.exit_code == 1
    assert "not hex digits (z)" in bad.output and "64 hex digits" in bad.output
    # a well-formed hash nothing is tied to: no made-up suggestion of an unrelated task
    unknown = tasks[3].task_id[:-2] + ("00" if not tasks[3].task_id.endswith("00") else "11")
    none = _run("explain", unknown, "--db", str(path))
    assert none.exit_code == 1 and f"no task or transaction {unknown}" in none.output
    assert "did you mean" not in none.output and tasks[3].task_id not in none.output
    # a unique prefix (without 0x) is the task; a too-short one is refused with the format
    ids = [t.task_id for t in tasks]
    prefix = next(t[2:12] for t in ids if sum(x.startswith(t[:12]) for x in ids) == 1)
    one = _run("explain", prefix, "--db", str(path), "--json", "--no-counterfactuals")
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["task_id"].startswith("0x" + prefix)
    short = _run("explain", "0xab", "--db", str(path))
    assert short.exit_code == 1 and "has 2 hex digits" in short.output
    missing = _run("explain", "0x12", "--db", str(path.parent / "nope.duckdb"))
    assert missing.exit_code == 1 and "no database" in missing.output


def test_audit_counts_and_writes_replays(db) -> None:
    path, tasks = db
    res = _run("audit", "--db", str(path), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["replayed"] == 25
    assert doc["mismatch"] == 4 and sorted(doc["mismatches"]) == sorted(
        t.task_id for i, t in enumerate(tasks) if i % 6 == 5
    )
    assert doc["match"] == 20 and doc["cannot_replay"] == 1
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT result, count(*) FROM replays GROUP BY result ORDER BY result").fetchall()
    sentence = con.execute("SELECT sentence, deny_json FROM replays WHERE result = 'mismatch' LIMIT 1").fetchone()
    con.close()
    assert rows == [("cannot_replay", 1), ("match", 20), ("mismatch", 4)]
    assert sentence[0].startswith("MISMATCH") and isinstance(json.loads(sentence[1]), list)
    again = _run("audit", "--db", str(path), "--json")  # idempotent upsert
    assert json.loads(again.output)["replayed"] == 25
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM replays").fetchone()[0] == 25
    con.close()


def test_policy_eval_json_explain_and_errors(tmp_path: Path) -> None:
    intent = tmp_path / "intent.json"
    intent.write_text(
        json.dumps(
            {
                "from": "0x" + "a1" * 20,
                "to": "0x" + "b2" * 20,
                "value": "10000000000000000000001",
                "data": "0x",
                "chain_id": "31337",
                "function_signature": "0x",
            }
        )
    )
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"spend": {"spent_today_wei": "0"}}))
    res = _run(
        "policy", "eval", str(POLICIES / "spending_limits"), "--input", str(intent), "--data", str(data), "--json"
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["allow"] is False and doc["deny"] == ["exceeds_per_tx_limit"]
    res = _run(
        "policy", "eval", str(POLICIES / "spending_limits"), "--input", str(intent), "--data", str(data), "--explain"
    )
    assert "allowed if max_tx_wei were at least 10,000.000000000000000001 ETH" in res.output
    bad = tmp_path / "bad.rego"
    bad.write_text("package bad\nimport rego.v1\nallow if {\n  x :=\n}\n")
    res = _run("policy", "eval", str(bad), "--input", str(intent))
    assert res.exit_code == 1 and f"{bad}:5:" in res.output or f"{bad}:4:" in res.output
    err = tmp_path / "err.rego"
    err.write_text('package err\nimport rego.v1\nallow if to_number("x") > 1\n')
    res = _run("policy", "eval", str(err), "--input", str(intent), "--json")
    assert res.exit_code == 1 and "could not parse string as number" in json.loads(res.output)["error"]
    slow = tmp_path / "slow.rego"
    slow.write_text("package slow\nimport rego.v1\nallow if count([x | some x in numbers.range(1, 2000000000)]) > 0\n")
    res = CliRunner().invoke(
        cli, ["policy", "eval", str(slow), "--input", str(intent)], env={"LENS_EVAL_TIMEOUT_MS": "400"}
    )
    assert res.exit_code == 1 and "stopped after 400 ms" in res.output


def test_bench_replay_reports_percentiles() -> None:
    res = _run("bench", "replay", "--synthetic", "--tasks", "12", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["tasks"] == 12 and doc["match"] == 12
    assert 0 < doc["p50_ms"] <= doc["p95_ms"] <= doc["max_ms"]
