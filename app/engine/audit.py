"""The audit's fast path (replay + deny reasons + sentence, no rule tree or counterfactuals) and its parallel runner."""

from __future__ import annotations

import os
import string
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from app.engine.explain import (
    _prepared,
    _rule_values,
    build_sentence,
    explain_evaluation,
    local_metadata,
    model_of,
    tree_names,
)
from app.engine.replay import Replay, TaskRecord, phrase_for_replay, replay_full, stop_reason
from app.engine.sandbox import SandboxPool
from app.errors import LensError

CHUNK = 200  # tasks per worker call: large enough to hide the IPC, small enough for a smooth progress bar
# a chunk gets the one-evaluation limit plus this much per task before it is re-run task by task under the
# per-task limit (a runaway policy is then stopped and reported exactly as `lens explain` would)
CHUNK_ALLOWANCE_S = 0.05


def _template_fields(text: str) -> set[str]:
    """Root names of the `{fields}` of a reason template (`{a.b}` → a)."""
    out = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field:
            out.add(field.split(".")[0].split("[")[0])
    return out


def audit_task(task: TaskRecord) -> tuple[Replay, str]:
    """Replay one task and phrase its verdict exactly as `explain` would, without its rule tree or counterfactuals.

    One evaluation for an allow; a second one, of only the rules the deny reasons' texts name, for a deny. A deny
    without any deny reason is phrased from the entrypoint's failing condition, which needs the full probe."""
    done = replay_full(task)
    rep = done.replay
    if done.prep is None or done.policy is None or done.evaluation is None:
        return rep, f"Cannot replay this decision: {rep.reason}."
    ev, policy, prep = done.evaluation, done.policy, done.prep
    if not ev.error and not ev.allow and not ev.deny:
        # `explain(task, counterfactuals=False)` without replaying again: reuse what the replay built
        try:
            ex = explain_evaluation(
                policy,
                prep.input,
                prep.params,
                prep.wasm,
                counterfactuals=False,
                evaluation=ev,
                input_json=done.input_json,
                data_json=done.data_json,
                symbols=task.units,
            )
        except LensError as err:
            return rep, f"(no sentence: {err})"
        return rep, phrase_for_replay(task, rep, ex.sentence)
    model = model_of(policy)
    entry = policy.query.rsplit(".", 1)[1]
    meta, schema = local_metadata(model.package)
    values: dict = {}
    if not ev.error and not ev.allow:
        reasons = meta.get("reasons") or {}
        fields: set[str] = set()
        for reason in ev.deny:
            spec = reasons.get(reason) or reasons.get(reason.partition(":")[0])
            if spec:
                fields |= _template_fields(spec.get("text", ""))
        # only rules the full explanation also evaluates (the entrypoint's tree), so the texts come out the same
        wanted = [n for n in tree_names(policy, model) if n in fields]
        if wanted:
            values = _rule_values(_prepared(policy, done.input_json, done.data_json), model, wanted)
    sentence = build_sentence(
        ev, entry, {**values, "__input__": ("value", prep.input)}, [], prep.params, prep.wasm, meta, schema, task.units
    )
    return rep, phrase_for_replay(task, rep, sentence)


def pack(tasks: Sequence[TaskRecord]) -> tuple[list[TaskRecord], list[int | None], list[str]]:
    """Tasks without their sources, an index into one list of distinct sources (a source is sent once per chunk)."""
    sources: list[str] = []
    seen: dict[str, int] = {}
    slim, index = [], []
    for t in tasks:
        if t.source is None:
            index.append(None)
        else:
            i = seen.get(t.source)
            if i is None:
                i = seen[t.source] = len(sources)
                sources.append(t.source)
            index.append(i)
        slim.append(replace(t, source=None))
    return slim, index, sources


def audit_one(task: TaskRecord) -> tuple[Replay, str]:
    """`audit_task`, but a task that breaks the engine in a way nothing foresaw is reported, not raised: one bad task
    is a cannot_replay row with its reason, and the audit goes on."""
    try:
        return audit_task(task)
    except Exception as err:  # the reason is recorded on the task's row
        rep = Replay(
            task.task_id, "cannot_replay", f"internal error: {type(err).__name__}: {err}", task.attested_allow, None
        )
        return rep, f"Cannot replay this decision: {rep.reason}."


def audit_chunk(tasks: list[TaskRecord], index: list[int | None], sources: list[str]) -> list[tuple[Replay, str]]:
    """`audit_one` over a packed chunk (runs in a worker process)."""
    return [audit_one(replace(t, source=None if i is None else sources[i])) for t, i in zip(tasks, index)]


@dataclass(frozen=True)
class AuditStats:
    """How an audit ran: workers, chunks re-run task by task after hitting the chunk limit, wall seconds."""

    workers: int
    chunks: int
    rerun_chunks: int
    seconds: float


def _timed_out(task: TaskRecord, err: Exception) -> tuple[Replay, str]:
    rep = Replay(task.task_id, "cannot_replay", stop_reason(err), task.attested_allow, None)
    return rep, f"Cannot replay this decision: {rep.reason}."


def warm() -> bool:
    """Worker warm-up: import the engine (regorus, ABI decoding) before the first chunk arrives."""
    import app.engine.intent  # noqa: F401

    return True


class AuditPool(SandboxPool):
    """`workers` killable worker processes (the sandbox's), started at once in the background so their start-up
    overlaps the caller's own work (reading the DB); `run` audits tasks on them, `close` stops them."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(warm, workers, name="lens-audit")

    def run(
        self,
        tasks: Sequence[TaskRecord],
        *,
        timeout_ms: int,
        chunk: int | None = None,
        on_progress: Callable[[int, list[tuple[Replay, str]]], None] | None = None,
    ) -> tuple[list[tuple[Replay, str]], AuditStats]:
        """Audit every task, results in task order; a chunk that overruns its limit is re-run task by task."""
        from app.engine.sandbox import EvalTimeout

        t0 = time.perf_counter()
        for w in self._warming:
            try:
                w.result()
            except LensError:
                pass  # a worker that did not start is restarted by its first call, which reports the problem
        if chunk is None:  # a few chunks per worker at least, so a small audit still uses every core
            chunk = min(CHUNK, max(16, -(-len(tasks) // (self.workers * 4))))
        chunks = [list(tasks[i : i + chunk]) for i in range(0, len(tasks), chunk)]
        used = max(1, min(self.workers, len(chunks)))
        results: list[list[tuple[Replay, str]] | None] = [None] * len(chunks)
        local = threading.local()
        counter = iter(range(used))
        lock = threading.Lock()
        reruns = [0]

        def box():
            if not hasattr(local, "box"):
                with lock:
                    local.box = self.boxes[next(counter)]
            return local.box

        def work(k: int) -> None:
            part = chunks[k]
            sb = box()
            limit = timeout_ms / 1000.0 + CHUNK_ALLOWANCE_S * len(part)
            try:
                out = sb.call(audit_chunk, pack(part), limit)
            except EvalTimeout:
                with lock:
                    reruns[0] += 1
                out = []
                for t in part:
                    try:
                        out.append(sb.call(audit_one, (t,), timeout_ms / 1000.0))
                    except EvalTimeout as err:
                        out.append(_timed_out(t, err))
            results[k] = out
            if on_progress is not None:
                with lock:
                    on_progress(len(out), out)

        with ThreadPoolExecutor(max_workers=used, thread_name_prefix="lens-audit") as pool:
            for f in [pool.submit(work, k) for k in range(len(chunks))]:
                f.result()
        flat = [row for part in results for row in (part or [])]
        return flat, AuditStats(used, len(chunks), reruns[0], time.perf_counter() - t0)


def run_audit(
    tasks: Sequence[TaskRecord],
    *,
    timeout_ms: int,
    workers: int | None = None,
    chunk: int | None = None,
    on_progress: Callable[[int, list[tuple[Replay, str]]], None] | None = None,
) -> tuple[list[tuple[Replay, str]], AuditStats]:
    """Audit every task on `workers` killable worker processes (default: one per core), results in task order.

    regorus engines are bound to their thread and cannot be interrupted, so each worker is a process (the
    sandbox's): a chunk that overruns its limit is killed and re-run task by task under the per-task limit."""
    if workers is None and tasks:
        workers = min(os.cpu_count() or 1, max(1, -(-len(tasks) // 16)))
    with AuditPool(workers) as pool:
        return pool.run(tasks, timeout_ms=timeout_ms, chunk=chunk, on_progress=on_progress)
