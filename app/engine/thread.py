"""The one thread the dashboard runs the engine on, and the engine work it runs there (explain a verdict, audit sentences)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.errors import LensError
from app.text import asset_label

# regorus engines are thread-bound (pyo3 "unsendable"): Streamlit runs each session in its own thread, so
# every engine call of the dashboard goes through this one worker thread, where the compiled policies live.
_ENGINE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lens-engine")


def _drop_engines() -> None:
    """Free the compiled policies on the thread that made them (else pyo3 complains at interpreter exit)."""
    import gc

    from app.engine import evaluate

    evaluate._CACHE.clear()
    gc.collect()


threading._register_atexit(lambda: _ENGINE_THREAD.submit(_drop_engines).result())  # runs before the pool joins


def on_engine_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run fn(*args) on the dashboard's single engine thread and return its result."""
    return _ENGINE_THREAD.submit(fn, *args, **kwargs).result()


def explain_record(data: dict[str, Any]) -> dict[str, Any]:
    """Replay/explain from a verdict record → {'state', 'replay', 'reason', 'explanation', ...}, on the engine thread.

    state: 'ok' | 'no_response' (nothing to replay yet) | 'cannot_replay' (source or inputs missing/undecodable).
    """
    return on_engine_thread(_explain_record, data)


def _explain_record(data: dict[str, Any]) -> dict[str, Any]:
    t = data["task"]
    if t.get("responded_block") is None:
        return {"state": "no_response", "replay": "", "reason": "the task has no response yet", "explanation": None}
    if not data.get("source"):
        return {
            "state": "cannot_replay",
            "replay": "cannot_replay",
            "reason": f"the policy source (code hash {data.get('code_hash') or 'unknown'}) is not in the DB",
            "explanation": None,
        }
    from app import engine, settings
    from app.engine.values import amount_units

    try:
        task = engine.task_from_row(t, data["source"])
    except (LensError, ValueError, TypeError, KeyError) as err:
        return {
            "state": "cannot_replay",
            "replay": "cannot_replay",
            "reason": f"the intent cannot be rebuilt: {err}",
            "explanation": None,
        }
    try:
        # the time limit keeps a runaway policy from stalling the page; explanations get 5x one evaluation's limit
        symbols = amount_units(t, asset_label(t.get("asset"), data.get("token") or ""))  # the moved asset's unit
        exp = engine.explain(task, timeout_ms=int(settings.get("eval_timeout_ms")) * 5, symbols=symbols)
    except LensError as err:
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": str(err), "explanation": None}
    if exp.replay == "cannot_replay":
        return {
            "state": "cannot_replay",
            "replay": "cannot_replay",
            "reason": exp.replay_reason or exp.error or "",
            "explanation": None,
        }
    return {
        "state": "ok",
        "replay": exp.replay,
        "reason": exp.replay_reason,
        "explanation": exp,
        "replayed_allow": exp.replayed_allow,
        "deny": exp.deny,
    }


_EXPORT_POOL: list = []  # the export's own killable worker, started on first use (never the verdict pages' worker)
_EXPORT_LOCK = threading.Lock()


def _export_pool():
    from app.engine.audit import AuditPool

    with _EXPORT_LOCK:
        if not _EXPORT_POOL:
            pool = AuditPool(1)
            _EXPORT_POOL.append(pool)
            threading._register_atexit(pool.close)
        return _EXPORT_POOL[0]


def audit_sentences(rows: list[dict[str, Any]], timeout_ms: int | None = None) -> dict[str, dict[str, str]]:
    """task_id → {'sentence', 'replay'}: the engine's audit sentence per task row (NULLs as None; replay + plain
    sentence, no probing: the fast path `lens audit` uses).

    Runs on the caller's thread, in the export's own killable worker under the one-evaluation time limit (and the
    worker's memory limit): a slow export neither stalls the engine thread the verdict pages use nor runs unbounded."""
    from app import engine, settings

    limit = int(timeout_ms or settings.get("eval_timeout_ms"))
    tasks = [engine.task_from_row(r, r.get("source")) for r in rows]  # a broken row becomes a cannot_replay task
    results, _ = _export_pool().run(tasks, timeout_ms=limit)
    return {rep.task_id: {"sentence": sentence, "replay": rep.result} for rep, sentence in results}
