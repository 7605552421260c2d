"""Trust badge of one decision: the stake that signed against the threshold, who did not sign, the replay, the window.

Trust in a Newton response is deferred: it is settled once its challenge window has closed unchallenged (or a
successful challenge has overturned it). The badge says which of those states a decision is in."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from app.queries.base import Con, query, query_rows, row_dict, table_names
from app.queries.disputes import Head, Window, challenge_window, challenges_sql, head_block

TASK_SQL = """
SELECT task_id, responded_block, quorum_threshold_pct, allow FROM tasks WHERE task_id = ? LIMIT 1
"""
STAKE_SQL = """
SELECT coalesce(sum(stake_num) FILTER (WHERE signed), 0) AS signed, coalesce(sum(stake_num), 0) AS total
FROM task_signers WHERE task_id = ?
"""
NON_SIGNERS_SQL = """
SELECT s.operator, coalesce(any_value(o.name), '') AS name, any_value(s.stake_num) AS stake
FROM task_signers s LEFT JOIN operators o ON o.operator = s.operator AND o.chain_id = s.chain_id
WHERE s.task_id = ? AND NOT s.signed
GROUP BY s.operator ORDER BY stake DESC NULLS LAST, s.operator
"""
REPLAY_SQL = "SELECT result FROM replays WHERE task_id = ? LIMIT 1"
CHALLENGES_SQL = "WITH ch AS ({challenges}) SELECT block_number, success FROM ch WHERE task_id = $task ORDER BY 1"
REPLAY_WORDS = {
    "match": "replay matches",
    "mismatch": "replay disagrees",
    "cannot_replay": "cannot replay",
    "not_replayed": "not replayed yet",
}


@dataclass(frozen=True)
class NonSigner:
    """An operator of the task's quorum that did not sign."""

    operator: str
    name: str
    stake: float | None  # in token units (wei / 1e18)


@dataclass(frozen=True)
class Trust:
    """How far one decision can be trusted now (see the module docstring); `line` is the badge a person reads."""

    task_id: str
    responded: bool
    signed_stake_pct: float | None
    threshold_pct: int | None
    non_signers: tuple[NonSigner, ...]
    replay: str  # match | mismatch | cannot_replay | not_replayed
    challenge_state: str  # no_response | open | closed | challenged_successfully
    challenged_unsuccessfully: bool
    challenge_block: int | None
    window_blocks: int
    window_end_block: int | None
    blocks_left: int | None
    head: int | None
    head_source: str
    settled: bool
    line: str

    def to_dict(self) -> dict[str, Any]:
        """The `trust` object of `lens explain --json`."""
        out = asdict(self)
        out["non_signers"] = [asdict(n) for n in self.non_signers]
        return out


def _state_words(state: str, blocks_left: int | None, challenge_block: int | None, failed: bool) -> str:
    if state == "no_response":
        return "no response yet"
    if state == "challenged_successfully":
        return f"challenged successfully at block {challenge_block:,}" if challenge_block else "challenged successfully"
    failed_words = " · a challenge failed" if failed else ""
    if state == "open":
        return f"{blocks_left:,} blocks left to challenge{failed_words}"
    return f"challenge window closed{failed_words}"


def trust_of(con: Con, task_id: str, head: Head, window: Window, replay: str | None = None) -> Trust | None:
    """The trust badge of one task measured against `head`; `replay` is the caller's fresh replay result (else the
    `replays` table's). None if the task is unknown."""
    task = row_dict(query(con, TASK_SQL, [task_id]))
    if task is None:
        return None
    names = table_names(con)
    responded = task.get("responded_block") is not None
    signed_pct: float | None = None
    non_signers: tuple[NonSigner, ...] = ()
    if responded and "task_signers" in names:
        signed, total = query_rows(con, STAKE_SQL, [task_id])[0]
        if total:
            signed_pct = 100.0 * float(signed) / float(total)
            non_signers = tuple(
                NonSigner(str(op), str(name or ""), None if stake is None else float(stake) / 1e18)
                for op, name, stake in query_rows(con, NON_SIGNERS_SQL, [task_id])
            )
    if replay is None:
        rows = query_rows(con, REPLAY_SQL, [task_id]) if "replays" in names else []
        replay = rows[0][0] if rows else "not_replayed"
    ch_sql, ch_params = challenges_sql(con)
    challenges = query_rows(con, CHALLENGES_SQL.format(challenges=ch_sql), {**ch_params, "task": task_id})
    won = [b for b, ok in challenges if ok]
    failed = any(not ok for _, ok in challenges)
    window_end = blocks_left = None
    if not responded:
        state = "no_response"
    elif won:
        state = "challenged_successfully"
    else:
        # the contract accepts a challenge mined before referenceBlock + window (the response's block + window)
        window_end = int(task["responded_block"]) + window.blocks - 1
        if head.block is None or window_end > head.block:
            state = "open"
            blocks_left = None if head.block is None else window_end - head.block
        else:
            state = "closed"
            blocks_left = 0
    threshold = None if task.get("quorum_threshold_pct") is None else int(task["quorum_threshold_pct"])
    parts = []
    if signed_pct is not None:
        # rounded down: a share that rounds up to the threshold must not read as having reached it
        parts.append(
            f"signed by {math.floor(signed_pct)}% of stake" + (f" (threshold {threshold}%)" if threshold else "")
        )
    elif responded:
        parts.append("signers unknown")
    if responded:
        parts.append(REPLAY_WORDS.get(replay, replay))
    if state == "open" and blocks_left is None:
        parts.append("challenge window open (chain head unknown)")
    else:
        parts.append(_state_words(state, blocks_left, won[0] if won else None, failed))
    return Trust(
        task_id=task_id,
        responded=responded,
        signed_stake_pct=None if signed_pct is None else round(signed_pct, 2),
        threshold_pct=threshold,
        non_signers=non_signers,
        replay=replay,
        challenge_state=state,
        challenged_unsuccessfully=failed,
        challenge_block=won[0] if won else None,
        window_blocks=window.blocks,
        window_end_block=window_end,
        blocks_left=blocks_left,
        head=head.block,
        head_source=head.source,
        settled=state in ("closed", "challenged_successfully"),
        line=" · ".join(parts),
    )


def trust(
    con: Con, task_id: str, head: int | None = None, replay: str | None = None, rpc_url: str = ""
) -> Trust | None:
    """The trust badge against `head` (the chain head the caller already has), else the chain's or indexed head."""
    window = challenge_window(con, rpc_url)
    h = Head(head, "chain") if head is not None else head_block(con, rpc_url)
    return trust_of(con, task_id, h, window, replay)


def trust_from_db(db_path: str, task_id: str, replay: str | None = None, rpc_url: str = "") -> dict[str, Any] | None:
    """The trust object of a task in a DB file (for `lens explain --json`), on a short read-only connection."""
    from indexer.load import connect_read

    with connect_read(db_path) as con:
        t = trust(con, task_id, None, replay, rpc_url)
    return None if t is None else t.to_dict()


def page_badge(task_id: str, replay: str | None) -> Trust | None:
    """The verdict page's badge: the chain head from the dashboard's 5-second head cache, the rest cached by the
    DB's identity (so blocks left move with the chain even while the DB stands still)."""
    from app import db
    from app.queries.base import current_deployment

    doc, _ = current_deployment(True)
    rpc_url = str((doc or {}).get("rpc_url") or "")
    head = db.cached_head(rpc_url)[0] if rpc_url else None
    return db.cached(trust, task_id, head, replay, rpc_url)


def non_signers_text(t: Trust) -> str:
    """'did not sign: Polar Ridge (700.0), 0x1234… (12.5)' — or that every operator of the quorum signed."""
    if not t.responded:
        return ""
    if not t.non_signers:
        return "every operator of the quorum signed"
    return "did not sign: " + ", ".join(
        f"{n.name or n.operator}" + ("" if n.stake is None else f" ({n.stake:,.1f} stake)") for n in t.non_signers
    )
