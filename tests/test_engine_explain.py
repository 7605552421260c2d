"""Explanations (golden per deny reason), counterfactuals that really flip, any Newton-style policy, replay round trips."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Intent, compiled, encode_result
from app.engine.audit import audit_task
from app.engine.explain import explain_evaluation
from app.engine.fixtures import policy_files, synthetic_tasks
from app.engine.replay import TaskRecord, explain, replay

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_cases import CASES

ROOT = Path(__file__).resolve().parents[1]


def _policy(name: str):
    source, entry, _ = policy_files(name)
    return compiled(source, entry)


def _apply(params: dict, cf) -> dict:
    out = copy.deepcopy(params)
    if cf.kind == "list_remove":
        out[cf.param] = [x for x in out[cf.param] if x != cf.value]
    elif cf.kind == "list_add":
        out[cf.param] = out[cf.param] + [cf.value]
    elif cf.kind == "combined":
        out.update(cf.value)
    else:
        out[cf.param] = cf.value
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_golden_explanation(case) -> None:
    name, _, inp, params, wasm, reasons, phrase = case
    ex = explain_evaluation(_policy(name), inp, params, wasm, budget_ms=2000)
    assert ex.error is None
    assert ex.deny == reasons
    assert ex.allow is (not reasons)
    assert phrase in ex.sentence
    assert ex.sentence.startswith("Allowed" if not reasons else "Denied")
    assert ex.rule_tree is not None and ex.rule_tree.name == "allow"
    assert ex.rule_tree.state == ("true" if not reasons else "false")
    entry = [b for b in ex.bodies if b.rule == "allow"]
    if reasons:
        # the entry body fails at its first unmet condition, with the values of its terms
        assert entry and entry[0].succeeded is False and entry[0].failed_at is not None
        assert entry[0].failed_at.line in ex.lines_failed
        assert all(t.text for t in entry[0].failed_at.terms)
    else:
        assert entry and entry[0].succeeded is True
    assert ex.lines_reached and set(ex.lines_failed) <= set(ex.lines_reached)
    # the deny bodies that fired are exactly the reasons
    fired = {b.head for b in ex.bodies if b.rule == "deny" and b.succeeded}
    assert len(fired) == len(reasons)


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if c[1]
        in (
            "per_tx",
            "daily_cap",
            "function",
            "sanctioned",
            "blocklisted",
            "flag",
            "risk",
            "blocked",
            "not_allowed",
            "volatility",
            "price",
            "rate",
            "burst",
            "allow",
            "not_allowlisted",
            "expired",
        )
    ],
    ids=lambda c: f"{c[0]}-{c[1]}",
)
def test_counterfactuals_really_flip_the_verdict(case) -> None:
    name, _, inp, params, wasm, reasons, _ = case
    policy = _policy(name)
    ex = explain_evaluation(policy, inp, params, wasm, budget_ms=5000)
    flipping = [c for c in ex.counterfactuals if c.flips_to is not None]
    assert flipping, ex.counterfactual_note
    for cf in flipping:
        after = policy.evaluate(inp, _apply(params, cf), wasm)
        assert after.error is None and after.allow is cf.flips_to is (not ex.allow), cf.text
        if cf.kind in ("number", "wei"):
            # smallest change: one step closer to the current value does not flip
            step = 1 if cf.kind == "wei" or float(cf.value).is_integer() else 0.5
            v = int(cf.value) if cf.kind == "wei" else cf.value
            closer = (
                v - step
                if (int(v) if cf.kind == "wei" else v) > (int(cf.current) if cf.kind == "wei" else cf.current)
                else v + step
            )
            closer = str(closer) if cf.kind == "wei" else closer
            assert (
                policy.evaluate(
                    inp, _apply(params, type(cf)(cf.param, cf.kind, cf.current, closer, cf.flips_to, "")), wasm
                ).allow
                is ex.allow
            )


def test_counterfactual_for_wei_limit_is_exact_above_2_pow_53() -> None:
    name, _, inp, params, wasm, _, _ = next(c for c in CASES if c[1] == "per_tx")
    ex = explain_evaluation(_policy(name), inp, params, wasm, budget_ms=5000)
    cf = next(c for c in ex.counterfactuals if c.param == "max_tx_wei")
    assert cf.value == inp["value"] and cf.kind == "wei"  # allowed exactly at the amount
    assert "allowed if max_tx_wei were at least 12,500 ETH" in cf.text


def test_two_reasons_give_per_reason_changes_and_a_verified_combination() -> None:
    policy = _policy("spending_limits")
    params = {"max_tx_wei": str(10**22), "daily_cap_wei": str(25 * 10**21), "allowed_functions": []}
    inp = next(c for c in CASES if c[1] == "per_tx")[2]
    wasm = {"spend": {"spent_today_wei": str(20 * 10**21)}}
    ex = explain_evaluation(policy, inp, params, wasm, budget_ms=5000)
    assert ex.deny == ("exceeds_daily_cap", "exceeds_per_tx_limit")
    combined = next(c for c in ex.counterfactuals if c.kind == "combined")
    assert combined.value == {"daily_cap_wei": str(20 * 10**21 + 12_500 * 10**18), "max_tx_wei": str(12_500 * 10**18)}
    assert policy.evaluate(inp, {**params, **combined.value}, wasm).allow


FOREIGN = """package vendor.gate
import future.keywords.if
import future.keywords.in
import future.keywords.contains
import future.keywords.every

default allow := false

cfg := object.union({"max_score": 50, "blocked": []}, data.params)

recipients := {lower(r) | some r in input.decoded_function_arguments[0]}

too_risky(s) if s > cfg.max_score

deny contains sprintf("blocked:%s", [r]) if {
    some r in recipients
    r in {lower(b) | some b in cfg.blocked}
}

deny contains "risky" if too_risky(data.wasm.screen.score)

allow if {
    count(deny) == 0
    every r in recipients { startswith(r, "0x") }
    not data.wasm.screen.error
}

probe := x if { x := input.value with input.value as "7" }
"""


def test_explains_a_foreign_v0_policy_with_every_comprehensions_functions_and_with() -> None:
    policy = compiled(FOREIGN, "vendor.gate.allow")
    inp = {"value": "1", "decoded_function_arguments": [["0xAA", "0xbb"]]}
    params = {"max_score": 40, "blocked": ["0xBB"]}
    wasm = {"screen": {"score": 45}}
    ex = explain_evaluation(policy, inp, params, wasm, budget_ms=5000)
    assert not ex.allow and ex.deny == ("blocked:0xbb", "risky")
    assert "blocked:0xbb" in ex.sentence and "risky" in ex.sentence
    allow_body = next(b for b in ex.bodies if b.rule == "allow")
    assert allow_body.failed_at.text == "count(deny) == 0"
    assert allow_body.failed_at.terms[0].value == 2
    names = {n.name for n in ex.rule_tree.children}
    assert {"deny", "recipients"} <= names
    assert policy.engine.eval_rule("data.vendor.gate.probe") == "7"  # `with` inside a rule parses and evaluates
    # no single param flips two reasons; per-reason changes + a verified combination
    kinds = {c.kind for c in ex.counterfactuals}
    assert "combined" in kinds
    combined = next(c for c in ex.counterfactuals if c.kind == "combined")
    assert policy.evaluate(inp, {**params, **combined.value}, wasm).allow
    # one reason only: a single counterfactual flips it
    ex2 = explain_evaluation(policy, inp, {"max_score": 40, "blocked": []}, wasm, budget_ms=5000)
    cf = next(c for c in ex2.counterfactuals if c.param == "max_score")
    assert cf.value == 45 and policy.evaluate(inp, {"max_score": 45, "blocked": []}, wasm).allow


def test_error_policies_are_explained_as_errors() -> None:
    policy = compiled("package b\nimport rego.v1\nallow if newton.identity.kyc.check_approved()\n", "b.allow")
    ex = explain_evaluation(policy, {}, {}, {})
    assert ex.error and "could not find function" in ex.error
    assert ex.sentence.startswith("Could not evaluate") and "not a denial" in ex.sentence


# ------------------------------------------------------------------ replay


def _task(**kw) -> TaskRecord:
    base = synthetic_tasks(1, seed=3)[0]
    return TaskRecord(**{**base.__dict__, **kw})


def _spending_oracle(task: TaskRecord) -> bool:
    """spending_limits' rule written out in Python from its text and params: the moved amount (the native value, or
    a transfer's amount argument) within max_tx_wei, and spent today + amount within daily_cap_wei."""
    params = json.loads(task.params_json)
    spent = int(json.loads(json.loads(task.policy_data_json)[0])["spend"]["spent_today_wei"])
    fn = "transfer" if task.intent.function_signature else ""
    amount = int.from_bytes(task.intent.data[36:68], "big") if fn else task.intent.value
    return (
        fn in params["allowed_functions"]
        and amount <= int(params["max_tx_wei"])
        and spent + amount <= int(params["daily_cap_wei"])
    )


def test_replayed_verdicts_equal_an_oracle_the_engine_did_not_produce() -> None:
    """The replayed verdict of every spending_limits task equals the Python oracle; an attestation the oracle
    disagrees with is a mismatch, one it agrees with a match."""
    tasks = [t for t in synthetic_tasks(120, seed=11, fault_every=5) if t.entrypoint == "spending_limits.allow"]
    assert len(tasks) == 30
    results = [(t, replay(t)) for t in tasks]
    for t, r in results:
        want = _spending_oracle(t)
        assert r.replayed_allow is want, t.task_id
        assert r.result == ("match" if t.attested_allow is want else "mismatch"), t.task_id
    assert {r.result for _, r in results} == {"match", "mismatch"}
    assert {r.replayed_allow for _, r in results} == {True, False}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.integers(0, 2**128),
    limit=st.integers(0, 2**128),
    spent=st.integers(0, 2**128),
    cap=st.integers(0, 2**130),
)
def test_replay_round_trip_spending(amount: int, limit: int, spent: int, cap: int) -> None:
    """Evaluate, encode as operators do, store as the indexer does, replay: always a match, verdict exact."""
    source, entry, _ = policy_files("spending_limits")
    params = {"max_tx_wei": str(limit), "daily_cap_wei": str(cap), "allowed_functions": []}
    wasm = {"spend": {"spent_today_wei": str(spent)}}
    intent = Intent("0x" + "a1" * 20, "0x" + "b2" * 20, amount, b"", 31337, b"")
    from app.engine import intent_input

    ev = compiled(source, entry).evaluate(intent_input(intent), params, wasm)
    assert ev.allow == (amount <= limit and spent + amount <= cap)
    from eth_utils import keccak

    task = TaskRecord(
        31337,
        "0x" + "01" * 32,
        intent,
        entry,
        "0x" + keccak(text=source).hex(),
        source,
        json.dumps(params),
        json.dumps([json.dumps(wasm)]),
        "0x" + encode_result(ev.allow).hex(),
        ev.allow,
    )
    rep = replay(task)
    assert rep.result == "match" and rep.replayed_allow == ev.allow


@pytest.mark.parametrize(
    "change,needle",
    [
        (dict(evaluation_result=None, attested_allow=None), "no response yet"),
        (dict(source=None), "not indexed"),
        (dict(policy_code_hash="0x" + "00" * 32), "differs from the policy's code hash"),
        (dict(params_json="{oops"), "params are not valid UTF-8 JSON"),
        (dict(policy_data_json='["{bad"]'), "not JSON"),
    ],
)
def test_cannot_replay_reasons(change: dict, needle: str) -> None:
    rep = replay(_task(**change))
    assert rep.result == "cannot_replay" and needle in rep.reason


def test_cannot_replay_parse_error_and_unknown_builtin() -> None:
    from eth_utils import keccak

    bad = "package p\nimport rego.v1\nallow if {\n"
    rep = replay(_task(source=bad, policy_code_hash="0x" + keccak(text=bad).hex(), entrypoint="p.allow"))
    assert rep.result == "cannot_replay" and "does not parse" in rep.reason and "policy.rego:" in rep.reason
    nb = "package p\nimport rego.v1\nallow if newton.identity.kyc.check_approved()\n"
    rep = replay(_task(source=nb, policy_code_hash="0x" + keccak(text=nb).hex(), entrypoint="p.allow"))
    assert rep.result == "cannot_replay" and "builtin Lens does not implement" in rep.reason


def test_explain_task_record_and_audit_row() -> None:
    task = synthetic_tasks(8, seed=5, fault_every=4)[3]  # a flipped (mismatching) attestation
    ex = explain(task)
    assert ex.replay == "mismatch" and ex.sentence.startswith("MISMATCH")
    assert ex.attested_allow is (not ex.replayed_allow)
    rep, sentence = audit_task(task)
    assert rep.result == "mismatch" and sentence.startswith("MISMATCH")


def test_an_unlimited_approval_reads_as_unlimited() -> None:
    """type(uint256).max is shown as an unlimited amount with its exact value, ordinary amounts exactly in units."""
    from app.engine.values import fmt_wei

    assert fmt_wei(str(2**256 - 1), "dUSD").startswith("an unlimited amount (type(uint256).max = 1157920892")
    assert fmt_wei(str(2**256 - 2), "dUSD").startswith(
        "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.58"
    )
    assert fmt_wei("12500000000000000000") == "12.5 ETH (12500000000000000000 wei)"
