"""Every evaluation under its limits: an export's sentences run in their own killable worker under the time limit, so a
runaway policy in an export is stopped and reported, and a verdict page answers while the export is still running."""

from __future__ import annotations

import threading

from eth_utils import keccak

from app.engine.fixtures import synthetic_tasks, task_row
from app.engine.replay import TaskRecord
from app.engine.thread import audit_sentences, explain_record

SPIN = "package spin\nimport rego.v1\nallow if { some i in numbers.range(1, 2000000000); i < 0 }\n"


def _spinning() -> TaskRecord:
    base = synthetic_tasks(1, seed=9)[0]
    return TaskRecord(
        **{
            **base.__dict__,
            "task_id": "0x" + "5e" * 32,
            "source": SPIN,
            "entrypoint": "spin.allow",
            "policy_code_hash": "0x" + keccak(text=SPIN).hex(),
        }
    )


def _row(t: TaskRecord) -> dict:
    return {**task_row(t, 10), "source": t.source}


def test_a_runaway_export_is_stopped_and_does_not_block_a_verdict_page() -> None:
    slow = _spinning()
    normal = synthetic_tasks(2, seed=12)
    out: dict = {}
    export = threading.Thread(
        target=lambda: out.update(audit_sentences([_row(slow), _row(normal[0])], timeout_ms=8000)), daemon=True
    )
    export.start()
    # the verdict page of another task, on the dashboard's engine thread, while the export spins
    t = normal[1]
    verdict = explain_record({"task": task_row(t, 30), "source": t.source, "code_hash": t.policy_code_hash})
    still_running = export.is_alive()
    export.join(timeout=120)
    assert verdict["state"] == "ok" and verdict["replay"] == "match"
    assert still_running, "the verdict page waited for the export"
    assert not export.is_alive()
    assert out[slow.task_id]["replay"] == "cannot_replay"
    # stopped by a limit: the spinning policy also allocates, so the memory limit may come first
    assert "stopped by the time limit" in out[slow.task_id]["sentence"] or (
        "stopped by the memory limit" in out[slow.task_id]["sentence"]
    )
    assert out[normal[0].task_id]["replay"] == "match"  # the export went on around the runaway
