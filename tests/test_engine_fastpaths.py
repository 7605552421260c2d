"""The engine's fast paths: audit rows equal to the full explanation, the parallel audit runner, the time-limited
explain for pages, decisive conditions, and a counterfactual search that is bounded and still exact."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli.main import cli
from app.engine import Intent, compiled, intent_input
from app.engine.audit import audit_task, pack, run_audit
from app.engine.counterfactual import search
from app.engine.explain import explain_evaluation
from app.engine.fixtures import policy_files, synthetic_tasks, write_db
from app.engine.replay import TaskRecord, explain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_cases import CASES

RUNAWAY = "package slow\nimport rego.v1\nallow if count([x | some x in numbers.range(1, 2000000000)]) > 0\n"
# a policy without deny reasons: its deny sentence comes from the entrypoint's failing condition (the probe)
NO_REASONS = (
    "package gate\nimport rego.v1\ndefault allow := false\nallow if {\n  to_number(data.params.limit) >= 5\n}\n"
)
ERRORING = 'package err\nimport rego.v1\nallow if to_number("x") > 1\n'


def _with_source(task: TaskRecord, source: str, entrypoint: str, **kw) -> TaskRecord:
    return replace(task, source=source, policy_code_hash="0x" + keccak(text=source).hex(), entrypoint=entrypoint, **kw)


def _odd_tasks() -> list[TaskRecord]:
    """Tasks off the common path: no deny reason, an evaluation error, no response, a wrong source hash."""
    base = synthetic_tasks(1, seed=4)[0]
    return [
        _with_source(base, NO_REASONS, "gate.allow", params_json=json.dumps({"limit": "3"})),
        _with_source(base, NO_REASONS, "gate.allow", params_json=json.dumps({"limit": "7"})),
        _with_source(base, ERRORING, "err.allow"),
        replace(base, task_id="0x" + "ab" * 32, evaluation_result=None, attested_allow=None),
        replace(base, task_id="0x" + "cd" * 32, policy_code_hash="0x" + "00" * 32),
    ]


def _row(rep, sentence) -> tuple:
    return rep.task_id, rep.result, rep.reason, rep.replayed_allow, rep.deny, sentence


def test_audit_fast_path_equals_the_full_explanation() -> None:
    tasks = synthetic_tasks(160, seed=31, fault_every=9) + _odd_tasks()
    assert sum(not t.attested_allow for t in tasks if t.attested_allow is not None) > 20  # denies are represented
    for task in tasks:
        rep, sentence = audit_task(task)
        ex = explain(task, counterfactuals=False)
        assert (rep.result, rep.deny, rep.replayed_allow, sentence) == (
            ex.replay,
            ex.deny,
            ex.replayed_allow,
            ex.sentence,
        ), task
    odd = [audit_task(t) for t in _odd_tasks()]
    assert "a replay gives: Denied: the condition `to_number(data.params.limit) >= 5`" in odd[0][1]  # attested allow
    assert odd[1][1].startswith("Allowed")
    assert odd[2][0].result == "cannot_replay" and odd[2][1].startswith("Could not evaluate")
    assert odd[3][0].reason == "no response yet" and "differs from the policy's code hash" in odd[4][0].reason


def test_pack_sends_each_source_once_and_round_trips() -> None:
    tasks = synthetic_tasks(12, seed=2) + [replace(synthetic_tasks(1, seed=2)[0], source=None)]
    slim, index, sources = pack(tasks)
    assert len(sources) == 4 and all(t.source is None for t in slim) and index[-1] is None
    assert [replace(t, source=None if i is None else sources[i]) for t, i in zip(slim, index)] == tasks


@pytest.mark.xdist_group("audit_workers")
def test_parallel_audit_keeps_order_equals_sequential_and_stops_a_runaway() -> None:
    tasks = synthetic_tasks(30, seed=8, fault_every=7)
    runaway = _with_source(tasks[0], RUNAWAY, "slow.allow", task_id="0x" + "99" * 32)
    tasks = tasks[:11] + [runaway] + tasks[11:]
    seen = []
    results, stats = run_audit(tasks, timeout_ms=1500, workers=2, chunk=8, on_progress=lambda n, rows: seen.append(n))
    assert stats.workers == 2 and stats.chunks == 4 and stats.rerun_chunks == 1 and sum(seen) == len(tasks)
    assert [r.task_id for r, _ in results] == [t.task_id for t in tasks]
    stopped = results[11]
    assert stopped[0].result == "cannot_replay" and "time limit" in stopped[0].reason and "time limit" in stopped[1]
    for task, got in zip(tasks, results):
        if task is not runaway:
            assert _row(*got) == _row(*audit_task(task))
    assert sum(r.result == "mismatch" for r, _ in results) == 4


@pytest.mark.xdist_group("audit_workers")
def test_audit_cli_pages_reports_rate_and_writes_the_fast_path_sentences(tmp_path: Path, monkeypatch) -> None:
    import duckdb

    from app.cli import engine_cmds

    tasks = synthetic_tasks(40, seed=12, fault_every=10)
    path = tmp_path / "lens.duckdb"
    write_db(path, tasks)
    monkeypatch.setattr(engine_cmds, "AUDIT_PAGE", 18)  # three pages: 18 + 18 + 4
    res = CliRunner().invoke(cli, ["audit", "--db", str(path), "--json", "--workers", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["replayed"] == 40 and doc["mismatch"] == 4 and doc["workers"] == 2 and doc["decisions_per_s"] > 0
    assert doc["mismatches"] == [t.task_id for i, t in enumerate(tasks) if i % 10 == 9]  # creation order, across pages
    con = duckdb.connect(str(path), read_only=True)
    rows = dict(con.execute("SELECT task_id, sentence FROM replays").fetchall())
    con.close()
    assert set(rows) == {t.task_id for t in tasks}
    for t in tasks[:12] + tasks[-4:]:
        assert rows[t.task_id] == explain(t, counterfactuals=False).sentence
    limited = CliRunner().invoke(cli, ["audit", "--db", str(path), "--json", "--limit", "22"])
    assert json.loads(limited.output)["replayed"] == 22


def test_task_pages_cover_every_task_once_in_creation_order(tmp_path: Path) -> None:
    from app.engine import store

    tasks = synthetic_tasks(23, seed=3)
    path = tmp_path / "lens.duckdb"
    write_db(path, tasks)
    pages = list(store.iter_task_pages(str(path), page=5))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [t.task_id for p in pages for t in p] == [t.task_id for t in tasks]
    assert len({id(t.source) for p in pages for t in p}) == 4  # one copy of each policy source
    assert [t.task_id for p in store.iter_task_pages(str(path), page=5, limit=7) for t in p] == [
        t.task_id for t in tasks[:7]
    ]
    assert store.count_tasks(str(path)) == 23


@pytest.mark.xdist_group("audit_workers")
def test_explain_with_a_time_limit_runs_guarded_and_reports_a_runaway() -> None:
    task = synthetic_tasks(3, seed=6)[2]
    guarded_ex = explain(task, timeout_ms=20000)
    plain = explain(task)
    assert guarded_ex.to_dict() | {"timings_ms": {}} == plain.to_dict() | {"timings_ms": {}}
    runaway = _with_source(task, RUNAWAY, "slow.allow")
    ex = explain(runaway, timeout_ms=400)
    assert ex.replay == "cannot_replay" and "stopped by the time limit" in ex.replay_reason
    assert ex.sentence.startswith("Cannot replay this decision: evaluation stopped by the time limit")
    assert explain(task, timeout_ms=20000).replay == "match"  # the worker was replaced after the kill


def _policy(name: str):
    source, entry, _ = policy_files(name)
    return compiled(source, entry)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_decisive_marks_what_decided_the_verdict(case) -> None:
    name, _, inp, params, wasm, reasons, _ = case
    ex = explain_evaluation(_policy(name), inp, params, wasm, counterfactuals=False)
    decisive = [b for b in ex.bodies if b.decisive]
    if reasons:
        assert any(b.rule == "allow" and b.succeeded is False and b.failed_at for b in decisive)
        fired = [b for b in decisive if b.rule == "deny"]
        assert fired and all(b.succeeded for b in fired)
        assert len({b.head for b in fired}) == len(reasons)
    else:
        assert [b.rule for b in decisive] == ["allow"] and decisive[0].succeeded is True
    # every deny rule that did not fire is kept in the record, as not decisive
    assert all(not b.decisive for b in ex.bodies if b.rule == "deny" and b.succeeded is False)
    assert all("decisive" in b for b in ex.to_dict()["bodies"])


def test_explain_text_leads_with_the_decisive_conditions() -> None:
    task = next(t for t in synthetic_tasks(40, seed=7) if t.attested_allow is False)
    from app.cli.engine_cmds import format_explanation

    text = format_explanation(explain(task))
    decided, checks = text.index("What decided the verdict"), text.index("Checks that passed")
    assert decided < checks < text.index("Rule tree")
    fired_block = text[decided:checks]
    assert "(fired)" in fired_block and "count(deny) == 0" in fired_block


def test_evaluations_never_feed_the_compiled_template() -> None:
    """regorus engines slow down with every data load they have seen: evaluations must use fresh clones."""
    policy = _policy("spending_limits")
    _, _, inp, params, wasm, _, _ = CASES[1]
    for _ in range(5):
        policy.evaluate(inp, params, wasm)
    assert policy.engine.eval_query("x := data.params").get("result", []) == []


def test_counterfactual_search_is_bounded_by_evaluations() -> None:
    policy = _policy("circuit_breaker")
    _, _, inp, params, wasm, _, _ = next(c for c in CASES if c[0] == "circuit_breaker" and c[1] == "allow")
    ev = policy.evaluate(inp, params, wasm)
    cfs, note = search(policy, json.dumps(inp), params, wasm, ev, budget_ms=60000, max_evals=3)
    assert "budget of 3 evaluations" in note and len(cfs) <= 3
    full, note2 = search(policy, json.dumps(inp), params, wasm, ev, budget_ms=60000)
    again, _ = search(policy, json.dumps(inp), params, wasm, ev, budget_ms=60000)
    assert note2 == "" and full == again and {c.param for c in full} >= {"halt", "max_volatility_bps", "min_price_usd"}


ETH = 10**18


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=st.integers(1, 2**100), limit=st.integers(0, 2**100), spent=st.integers(0, 2**80))
def test_wei_counterfactual_is_the_exact_threshold(amount: int, limit: int, spent: int) -> None:
    """The guessed pivots never change the answer: the nearest flipping limit is exactly the amount."""
    policy = _policy("spending_limits")
    params = {"max_tx_wei": str(limit), "daily_cap_wei": str(2**200), "allowed_functions": []}
    wasm = {"spend": {"spent_today_wei": str(spent)}}
    inp = intent_input(Intent("0x" + "a1" * 20, "0x" + "b2" * 20, amount, b"", 31337, b""))
    ex = explain_evaluation(policy, inp, params, wasm, budget_ms=60000)
    cf = next(c for c in ex.counterfactuals if c.param == "max_tx_wei")
    assert int(cf.value) == (amount if amount > limit else amount - 1)
    assert policy.evaluate(inp, {**params, "max_tx_wei": cf.value}, wasm).allow is (not ex.allow)
