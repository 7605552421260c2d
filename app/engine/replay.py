"""Replay an indexed task from what the chain recorded (source, params, oracle output) and compare with the attested verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from app.engine.evaluate import (
    CompiledPolicy,
    Evaluation,
    PolicyParseError,
    compiled,
    data_document,
    is_canonical_allow,
    source_hash,
    wasm_from_policy_data,
)
from app.engine.explain import Explanation, explain_evaluation
from app.engine.intent import Intent, IntentDecodeError, intent_from_row, intent_input
from app.engine.values import amount_units
from app.errors import LensError


@dataclass(frozen=True)
class TaskRecord:
    """What Lens knows about one task: the intent, and from its TaskResponded the source, params and oracle output."""

    chain_id: int
    task_id: str
    intent: Intent
    entrypoint: str
    policy_code_hash: str
    source: str | None  # blobs.content for policy_code_hash (None if not indexed)
    params_json: str | None
    policy_data_json: str | None  # JSON array of the oracle outputs (each a JSON object or its JSON text)
    evaluation_result: str | None  # 0x hex; None = no response yet
    attested_allow: bool | None
    policy_client: str = ""
    status: str = ""
    entrypoint_source: str = ""  # 'PolicySet' | 'PolicyDeployed' | 'deployment' | 'entrypoint()' | 'package' | ''
    problem: str = ""  # why the task cannot be replayed, found while reading its row (it is then cannot_replay)
    params_error: str = ""  # the indexer's verdict on the recorded params (e.g. not UTF-8)
    units: dict | None = None  # token address → Unit (symbol, decimals) the indexer read, for sentences' amounts


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying a task: match / mismatch / cannot_replay (with the reason)."""

    task_id: str
    result: str  # 'match' | 'mismatch' | 'cannot_replay'
    reason: str
    attested_allow: bool | None
    replayed_allow: bool | None
    deny: tuple[str, ...] = ()
    error: str | None = None


def _token_label(asset: Any) -> str:
    """'token 0x5fc8d3…0aa3' for a token the indexer read no symbol of."""
    a = str(asset or "")
    return f"token {a[:8]}…{a[-4:]}" if a.startswith("0x") else "tokens"


def task_from_row(row: dict[str, Any], source: str | None) -> TaskRecord:
    """A TaskRecord from a `tasks` row (the columns of `indexer.load.DERIVED_DDL["tasks"]`) and the Rego source from `blobs`."""
    result = row.get("evaluation_result")
    allow = row.get("allow")
    if allow is None and result:
        try:
            allow = is_canonical_allow(bytes.fromhex(result.removeprefix("0x")))
        except ValueError:
            allow = False  # EVENTS.md §3.4: anything malformed is not an allow
    problem = ""
    try:
        intent = intent_from_row(row)
    except (LensError, ValueError, TypeError, KeyError) as err:
        # one unusable row is one cannot_replay task (with its reason), never the end of an audit
        problem = f"the intent cannot be rebuilt: {err}"
        intent = Intent(str(row.get("intent_from") or ""), str(row.get("intent_to") or ""), 0, b"", 0, b"")
    return TaskRecord(
        chain_id=int(row.get("chain_id") or 0),
        task_id=row["task_id"],
        intent=intent,
        entrypoint=row.get("entrypoint") or "",
        policy_code_hash=(row.get("policy_code_hash") or "").lower(),
        source=source,
        params_json=row.get("params_json"),
        policy_data_json=row.get("policy_data_json"),
        evaluation_result=result,
        attested_allow=None if allow is None else bool(allow),
        policy_client=row.get("policy_client") or "",
        status=row.get("status") or "",
        entrypoint_source=row.get("entrypoint_source") or "",
        problem=problem,
        params_error=row.get("params_error") or "",
        units=amount_units(row, _token_label(row.get("asset"))) or None,
    )


@dataclass(frozen=True)
class Prepared:
    """A task's evaluation inputs, rebuilt exactly as Newton operators saw them."""

    input: dict
    params: dict
    wasm: dict


def prepare(task: TaskRecord) -> Prepared:
    """Rebuild input, data.params and data.wasm; LensError with the cannot-replay reason if impossible."""
    if task.problem:
        raise LensError(task.problem, "re-index the task (`lens index`)")
    if task.params_error:
        raise LensError(task.params_error, "policyConfig.policyParams must be UTF-8 JSON (Newton's data.params)")
    if task.source is None:
        raise LensError(
            "the policy source is not indexed (no blob for the code hash)",
            "re-run the indexer over the TaskResponded block",
        )
    digest = source_hash(task.source)
    if task.policy_code_hash and digest != task.policy_code_hash:
        raise LensError(
            f"source hash {digest[:10]}… differs from the policy's code hash {task.policy_code_hash[:10]}…",
            "the recorded source is not the policy the operators were bound to",
        )
    if not task.entrypoint:
        raise LensError(
            "no entrypoint: no trusted PolicySet or PolicyDeployed names one, the policy's entrypoint() was not read "
            "and the source has no package line",
            "index the policy's deployment, or give the indexer an RPC that serves the policy contract",
        )
    try:
        params = json.loads(task.params_json) if task.params_json else {}
    except ValueError as err:
        raise LensError(
            f"params are not valid UTF-8 JSON ({err})", "policyConfig.policyParams must be UTF-8 JSON"
        ) from None
    try:
        raw = json.loads(task.policy_data_json) if task.policy_data_json else []
    except ValueError as err:
        raise LensError(f"policy data list is not JSON: {err}", "re-index the task") from None
    # stored as parsed objects (or their JSON text): objects are merged as they are, not re-encoded and re-parsed
    wasm = wasm_from_policy_data(raw if isinstance(raw, list) else [raw])
    try:
        inp = intent_input(task.intent)
    except IntentDecodeError as err:
        raise LensError(f"intent cannot be decoded: {err}", err.hint) from None
    return Prepared(inp, params, wasm)


def _classify(error: str) -> str:
    """The cannot-replay reason for an evaluation error."""
    if "could not find function" in error:
        return f"uses a builtin Lens does not implement: {error}"
    return f"evaluation error: {error}"


@dataclass(frozen=True)
class Replayed:
    """A replay with what it built on the way (so an explanation neither rebuilds nor re-evaluates anything)."""

    replay: Replay
    prep: Prepared | None = None
    policy: CompiledPolicy | None = None
    input_json: str = ""
    data_json: str = ""
    evaluation: Evaluation | None = None


def replay_full(task: TaskRecord) -> Replayed:
    """Replay a task and keep the prepared inputs, compiled policy, JSON texts and evaluation."""
    if task.evaluation_result is None or task.attested_allow is None:
        return Replayed(Replay(task.task_id, "cannot_replay", "no response yet", None, None))
    try:
        prep = prepare(task)
        policy = compiled(task.source or "", task.entrypoint)
    except PolicyParseError as err:
        return Replayed(
            Replay(task.task_id, "cannot_replay", f"policy does not parse: {err.problem}", task.attested_allow, None)
        )
    except LensError as err:
        return Replayed(Replay(task.task_id, "cannot_replay", str(err), task.attested_allow, None))
    except (ValueError, TypeError, KeyError) as err:  # recorded bytes no check above foresaw: this task only
        reason = f"the recorded inputs cannot be read: {type(err).__name__}: {err}"
        return Replayed(Replay(task.task_id, "cannot_replay", reason, task.attested_allow, None))
    input_json = json.dumps(prep.input)
    data_json = json.dumps(data_document(prep.params, prep.wasm))
    ev = policy.evaluate_json(input_json, data_json)
    if ev.error:
        rep = Replay(task.task_id, "cannot_replay", _classify(ev.error), task.attested_allow, None, (), ev.error)
    else:
        result = "match" if ev.allow == task.attested_allow else "mismatch"
        reason = (
            ""
            if result == "match"
            else f"attested {'allow' if task.attested_allow else 'deny'}, replay gives {'allow' if ev.allow else 'deny'}"
        )
        rep = Replay(task.task_id, result, reason, task.attested_allow, ev.allow, ev.deny)
    return Replayed(rep, prep, policy, input_json, data_json, ev)


def replay(task: TaskRecord) -> Replay:
    """Re-evaluate a task's entrypoint from its recorded inputs and compare with the attested result."""
    return replay_full(task).replay


def explain(
    task: TaskRecord,
    *,
    counterfactuals: bool = True,
    budget_ms: float = 50.0,
    probe: bool = True,
    timeout_ms: int | None = None,
    symbols: dict[str, str] | None = None,
) -> Explanation:
    """Replay a task and explain its verdict (the record pages and `lens explain` format).

    With `timeout_ms` the work runs in the sandbox worker process and is stopped after that long (a runaway
    policy): the result is then a cannot-replay explanation saying so (`error` and `replay_reason` tell)."""
    if timeout_ms:
        from app.engine.sandbox import EvalTimeout, guarded

        try:
            return guarded(_explain_unguarded, task, counterfactuals, budget_ms, probe, symbols, timeout_ms=timeout_ms)
        except EvalTimeout as err:
            return _cannot_replay(task, stop_reason(err))
    return _explain_unguarded(task, counterfactuals, budget_ms, probe, symbols)


def stop_reason(err: Exception) -> str:
    """The cannot-replay reason of a stopped evaluation: which limit stopped it (time or memory) and its message."""
    from app.engine.sandbox import EvalMemoryLimit

    if isinstance(err, EvalMemoryLimit):
        return str(err)
    return f"evaluation stopped by the time limit: {err}"


def _cannot_replay(task: TaskRecord, reason: str, replayed_allow: bool | None = None) -> Explanation:
    """The explanation of a task that cannot be replayed (no tree, no counterfactuals; the reason as sentence)."""
    return Explanation(
        entrypoint=task.entrypoint,
        allow=False,
        deny=(),
        error=reason,
        sentence=f"Cannot replay this decision: {reason}.",
        rule_tree=None,
        bodies=(),
        lines_reached=(),
        lines_not_reached=(),
        lines_failed=(),
        counterfactuals=(),
        source=task.source or "",
        task_id=task.task_id,
        attested_allow=task.attested_allow,
        replayed_allow=replayed_allow,
        replay="cannot_replay",
        replay_reason=reason,
    )


def _explain_unguarded(
    task: TaskRecord,
    counterfactuals: bool = True,
    budget_ms: float = 50.0,
    probe: bool = True,
    symbols: dict[str, str] | None = None,
) -> Explanation:
    """`explain` in this process (module level and positional, so the sandbox worker can run it)."""
    done = replay_full(task)
    rep = done.replay
    base = dict(
        task_id=task.task_id,
        attested_allow=task.attested_allow,
        replayed_allow=rep.replayed_allow,
        replay=rep.result,
        replay_reason=rep.reason,
    )
    if done.prep is None or done.policy is None:
        return _cannot_replay(task, rep.reason, rep.replayed_allow)
    prep = done.prep
    ex = explain_evaluation(
        done.policy,
        prep.input,
        prep.params,
        prep.wasm,
        counterfactuals=counterfactuals,
        budget_ms=budget_ms,
        probe=probe,
        evaluation=done.evaluation,
        input_json=done.input_json,
        data_json=done.data_json,
        symbols=symbols if symbols is not None else task.units,
    )
    return replace(ex, sentence=phrase_for_replay(task, rep, ex.sentence), **base)


def phrase_for_replay(task: TaskRecord, rep: Replay, sentence: str) -> str:
    """The explanation's sentence as a replay reports it (a mismatch says so first)."""
    if rep.result == "mismatch":
        attested = "allowed" if task.attested_allow else "denied"
        return f"MISMATCH — the operators attested {attested}, but a replay gives: {sentence}"
    return sentence


def explain_task(
    task: TaskRecord, counterfactuals: bool = True, budget_ms: float = 500.0, symbols: dict[str, str] | None = None
) -> Explanation:
    """`explain` with positional arguments (for the sandbox worker); interactive use gets a roomier search budget."""
    return explain(task, counterfactuals=counterfactuals, budget_ms=budget_ms, symbols=symbols)


def explain_input(
    source: str,
    entrypoint: str,
    input: dict,
    params: dict,
    wasm: dict,
    counterfactuals: bool = True,
    budget_ms: float = 500.0,
) -> Explanation:
    """Explain an ad-hoc evaluation (`lens policy eval --explain`, what-if pages)."""
    return explain_evaluation(
        compiled(source, entrypoint), input, params, wasm, counterfactuals=counterfactuals, budget_ms=budget_ms
    )
