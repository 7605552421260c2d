"""Hostile policies: a source that allocates without bound is stopped by the memory limit (and a runaway by the time
limit), with a clear message, on every path that evaluates (`lens policy eval`, replay/explain, audit); a 10 MB source
is refused with its size before it is parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_utils import keccak

from app.cli.main import cli
from app.engine import compiled
from app.engine.audit import AuditPool
from app.engine.evaluate import PolicyTooLarge
from app.engine.fixtures import synthetic_tasks
from app.engine.replay import TaskRecord, explain
from app.engine.sandbox import EvalMemoryLimit, EvalTimeout, Sandbox

# builds one array of 200 million numbers: gigabytes long before the time limit
HOG = "package hog\nimport rego.v1\nallow if count([x | some x in numbers.range(1, 200000000)]) > 0\n"
# iterates without allocating much: only the time limit stops it
SPIN = "package spin\nimport rego.v1\nallow if { some i in numbers.range(1, 2000000000); i < 0 }\n"
INTENT = {
    "from": "0x" + "a1" * 20,
    "to": "0x" + "b2" * 20,
    "value": "1",
    "data": "0x",
    "chain_id": "31337",
    "function_signature": "0x",
}


def _evaluate(source: str, entry: str) -> bool:
    return compiled(source, entry).evaluate({}, {}, {}).allow


def _task(source: str, entry: str) -> TaskRecord:
    base = synthetic_tasks(1, seed=3)[0]
    return TaskRecord(
        **{**base.__dict__, "source": source, "entrypoint": entry, "policy_code_hash": "0x" + keccak(text=source).hex()}
    )


def test_an_allocating_policy_is_stopped_by_the_memory_limit_and_the_worker_recovers() -> None:
    box = Sandbox(memory_mb=300)
    try:
        with pytest.raises(EvalMemoryLimit, match=r"memory limit: the worker grew past 300 MB"):
            box.call(_evaluate, (HOG, "hog.allow"), 60.0)
        # a runaway that does not allocate is the time limit's, and says so
        with pytest.raises(EvalTimeout, match="stopped after 500 ms") as info:
            box.call(_evaluate, (SPIN, "spin.allow"), 0.5)
        assert not isinstance(info.value, EvalMemoryLimit)
        # the worker was replaced: an ordinary policy evaluates
        assert box.call(_evaluate, ("package ok\nimport rego.v1\nallow := true\n", "ok.allow"), 60.0) is True
    finally:
        box.kill()


def _compile_only(source: str, entry: str) -> str:
    return compiled(source, entry).query


def test_compiling_never_runs_the_policy() -> None:
    """Compiling (as the what-if page does on the dashboard's engine thread) must not evaluate a runaway rule."""
    box = Sandbox()
    try:
        assert box.call(_compile_only, (SPIN, "spin.allow"), 30.0) == "data.spin.allow"
    finally:
        box.kill()


def test_replay_explain_and_audit_report_the_memory_limit(monkeypatch) -> None:
    monkeypatch.setenv("LENS_EVAL_MEMORY_MB", "300")
    ex = explain(_task(HOG, "hog.allow"), timeout_ms=60_000)
    assert ex.replay == "cannot_replay" and "memory limit" in ex.replay_reason and "300 MB" in ex.replay_reason
    with AuditPool(1) as pool:
        good = synthetic_tasks(2, seed=4)
        results, _ = pool.run([good[0], _task(HOG, "hog.allow"), good[1]], timeout_ms=60_000)
    reps = [r for r, _ in results]
    assert reps[1].result == "cannot_replay" and "memory limit" in reps[1].reason
    assert reps[0].result == "match" and reps[2].result == "match"  # the audit went on around it


def test_policy_eval_cli_stops_an_allocating_policy_with_a_clear_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LENS_EVAL_MEMORY_MB", "300")
    monkeypatch.setenv("LENS_EVAL_TIMEOUT_MS", "60000")
    rego = tmp_path / "hog.rego"
    rego.write_text(HOG)
    intent = tmp_path / "intent.json"
    intent.write_text(json.dumps(INTENT))
    res = CliRunner().invoke(cli, ["policy", "eval", str(rego), "--input", str(intent)])
    assert res.exit_code != 0
    assert "memory limit" in res.output and "Traceback" not in res.output


def test_a_10_mb_source_is_refused_with_its_size(tmp_path: Path) -> None:
    big = "package big\nimport rego.v1\nallow := true\n" + "# " + "x" * (10 * 2**20) + "\n"
    size = len(big.encode())
    with pytest.raises(PolicyTooLarge, match=f"is {size:,} bytes"):
        compiled(big, "big.allow")
    # replay: cannot_replay with the size, no parse attempted
    ex = explain(_task(big, "big.allow"))
    assert ex.replay == "cannot_replay" and f"{size:,} bytes" in ex.replay_reason
    rego = tmp_path / "big.rego"
    rego.write_text(big)
    intent = tmp_path / "intent.json"
    intent.write_text(json.dumps(INTENT))
    res = CliRunner().invoke(cli, ["policy", "eval", str(rego), "--input", str(intent)])
    assert res.exit_code != 0 and f"{size:,} bytes" in res.output and "Traceback" not in res.output
