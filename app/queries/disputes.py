"""Disputes queries: every challenge (timing, outcome, who was slashed), challenge candidates, challengers, conflicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import requests
from eth_utils import keccak

from app import db, settings
from app.queries import rollups
from app.queries.base import Con, deployment_from_meta_safe, freshness, meta_int, query, query_rows, table_names
from app.queries.overview import BUCKETS

# `taskChallengeWindowBlock()`: a public immutable of the task manager (EVENTS.md §3.7)
WINDOW_SELECTOR = "0x" + keccak(text="taskChallengeWindowBlock()")[:4].hex()
RPC_TIMEOUT_S = 1.5
WEI = 10**18
# replays made now (not in the DB) reach SQL as three list parameters, unnested side by side
EXTRA_REPLAYS = "SELECT unnest($x_id) AS task_id, unnest($x_result) AS result, unnest($x_allow) AS replayed_allow"
# Roles entitled to emit OperatorSlashed: the slasher contracts of the deployment (EVENTS.md §1.4); the devnet's
# OperatorRegistry is its own InstantSlasher stand-in and is named `slasher` in its deployment document.
SLASHER_ROLES = ("slasher", "instantSlasher", "allocationManager")

# An ANTI JOIN, not NOT IN: NOT IN's NULL semantics make DuckDB plan a mark join over every task (0.63 s → 0.50 s
# at a million tasks); replays have no NULL task id, so the two agree.
MISSING_REPLAYS_SQL = """
SELECT t.task_id FROM tasks t ANTI JOIN ({replays}) r ON r.task_id = t.task_id
WHERE t.responded_block IS NOT NULL
ORDER BY t.responded_block, t.task_id
"""
MISSING_COUNT_SQL = (
    "SELECT count(*) FROM (" + MISSING_REPLAYS_SQL.replace("ORDER BY t.responded_block, t.task_id", "") + ")"
)
RESPONDED_SQL = "SELECT count(*) FROM tasks WHERE responded_block IS NOT NULL"

# Challenges only from the task manager (a look-alike event from any other address is not a challenge).
RAW_CHALLENGES = """
SELECT chain_id, task_id, block_number, log_index, block_time, tx_hash, challenger, TRUE AS success
FROM ev_task_challenged_successfully WHERE address = $tm
UNION ALL
SELECT chain_id, task_id, block_number, log_index, block_time, tx_hash, challenger, FALSE AS success
FROM ev_task_challenged_unsuccessfully WHERE address = $tm
"""
RAW_CHALLENGES_PRESENT_SQL = """
SELECT EXISTS (SELECT 1 FROM ev_task_challenged_successfully) OR EXISTS (SELECT 1 FROM ev_task_challenged_unsuccessfully)
"""
# A DB without raw events (`lens synth`) has only the derived table.
DERIVED_CHALLENGES = """
SELECT chain_id, task_id, block_number, 0 AS log_index, block_time, tx_hash, challenger, success FROM challenges
"""
NO_CHALLENGES = """
SELECT NULL::BIGINT AS chain_id, NULL::VARCHAR AS task_id, NULL::BIGINT AS block_number, NULL::BIGINT AS log_index,
       NULL::TIMESTAMP AS block_time, NULL::VARCHAR AS tx_hash, NULL::VARCHAR AS challenger, NULL::BOOLEAN AS success
WHERE false
"""
NO_REPLAYS = "SELECT NULL::VARCHAR AS task_id, NULL::VARCHAR AS result, NULL::BOOLEAN AS replayed_allow WHERE false"

CHALLENGES_SQL = """
WITH ch AS ({challenges}), r AS ({replays}),
t AS (SELECT chain_id, task_id, responded_block, responded_time, allow FROM tasks
      WHERE task_id IN (SELECT task_id FROM ch)),
rc AS (SELECT * FROM r WHERE task_id IN (SELECT task_id FROM ch))
SELECT ch.task_id, ch.block_number, ch.log_index, ch.block_time, ch.tx_hash, ch.challenger, ch.success,
       t.responded_block, t.responded_time, t.allow AS attested_allow, r.result AS replay, r.replayed_allow,
       ch.block_number - t.responded_block AS blocks_after_response,
       epoch(ch.block_time) - epoch(t.responded_time) AS seconds_after_response
FROM ch LEFT JOIN t ON t.task_id = ch.task_id AND t.chain_id = ch.chain_id
LEFT JOIN rc r ON r.task_id = ch.task_id
ORDER BY ch.block_number DESC, ch.log_index DESC, ch.task_id
"""

CANDIDATES_SQL = """
WITH ch AS ({challenges}), r AS ({replays})
SELECT t.task_id, t.responded_block, t.responded_time, t.allow AS attested_allow, r.replayed_allow,
       t.responded_block + $window - 1 AS window_end_block,
       greatest(t.responded_block + $window - 1 - $head, 0) AS blocks_left,
       CASE WHEN t.responded_block + $window - 1 > $head THEN 'open' ELSE 'missed' END AS state,
       t.task_id IN (SELECT task_id FROM ch WHERE NOT success) AS challenged_unsuccessfully,
       t.policy_client, t.intent_from, t.function_name, t.amount_num, t.asset
FROM tasks t JOIN r ON r.task_id = t.task_id
WHERE r.result = 'mismatch' AND t.responded_block IS NOT NULL
  AND t.task_id NOT IN (SELECT task_id FROM ch WHERE success)
ORDER BY t.responded_block DESC, t.task_id
"""

# The same three answers when the indexer copies each task's replay onto its row and keeps the challenged and
# mismatching tasks apart (indexer/aggregates.py): a count over two columns instead of an anti-join of every response
# against every replay, and those few tasks read from their own table instead of picked out of every task's columns.
# A challenge the page lists is one the indexer derived too (the same emitter), so its task is among them.
MISSING_COUNT_FLAG_SQL = (
    "SELECT count(*) FROM tasks WHERE responded_block IS NOT NULL AND NOT coalesce(replayed, FALSE)"
)
CHALLENGES_FLAG_SQL = """
WITH ch AS ({challenges}),
t AS (SELECT chain_id, task_id, responded_block, responded_time, allow, replay_result, replay_allow
      FROM dispute_tasks WHERE challenged)
SELECT ch.task_id, ch.block_number, ch.log_index, ch.block_time, ch.tx_hash, ch.challenger, ch.success,
       t.responded_block, t.responded_time, t.allow AS attested_allow, t.replay_result AS replay,
       t.replay_allow AS replayed_allow,
       ch.block_number - t.responded_block AS blocks_after_response,
       epoch(ch.block_time) - epoch(t.responded_time) AS seconds_after_response
FROM ch LEFT JOIN t ON t.task_id = ch.task_id AND t.chain_id = ch.chain_id
ORDER BY ch.block_number DESC, ch.log_index DESC, ch.task_id
"""
CANDIDATES_FLAG_SQL = """
WITH ch AS ({challenges})
SELECT t.task_id, t.responded_block, t.responded_time, t.allow AS attested_allow, t.replay_allow AS replayed_allow,
       t.responded_block + $window - 1 AS window_end_block,
       greatest(t.responded_block + $window - 1 - $head, 0) AS blocks_left,
       CASE WHEN t.responded_block + $window - 1 > $head THEN 'open' ELSE 'missed' END AS state,
       t.task_id IN (SELECT task_id FROM ch WHERE NOT success) AS challenged_unsuccessfully,
       t.policy_client, t.intent_from, t.function_name, t.amount_num, t.asset
FROM dispute_tasks t
WHERE t.replay_result = 'mismatch' AND t.responded_block IS NOT NULL
  AND t.task_id NOT IN (SELECT task_id FROM ch WHERE success)
ORDER BY t.responded_block DESC, t.task_id
"""

# OperatorSlashed carries no task id: a slash belongs to the challenge of the same transaction. The stake it took is
# the operator's stake before it (its last OperatorStakeUpdate) minus the OperatorStakeUpdate that follows in the
# same transaction; the stakes are exact decimal strings. The InstantSlasher layout names its wads `wadsToSlash`, the
# AllocationManager's `wadSlashed` (EVENTS.md §1.4).
SLASHES_SQL = """
WITH sl AS (
  SELECT chain_id, block_number, log_index, block_number * 1000000 + log_index AS pos, tx_hash, operator,
         coalesce(wads_to_slash, wad_slashed) AS wads_to_slash, description
  FROM ev_operator_slashed WHERE address IN (SELECT unnest($slashers)) AND operator IS NOT NULL
),
ids AS (SELECT operator, any_value(operator_id) AS operator_id, any_value(name) AS name FROM operators GROUP BY operator),
su AS (SELECT operator_id, block_number * 1000000 + log_index AS pos, tx_hash, stake FROM ev_operator_stake_update)
SELECT sl.tx_hash, sl.block_number, sl.log_index, sl.operator, ids.name, sl.wads_to_slash, sl.description,
  (SELECT stake FROM su WHERE su.operator_id = ids.operator_id AND su.pos < sl.pos ORDER BY su.pos DESC LIMIT 1)
    AS stake_before,
  (SELECT stake FROM su WHERE su.operator_id = ids.operator_id AND su.tx_hash = sl.tx_hash AND su.pos > sl.pos
   ORDER BY su.pos LIMIT 1) AS stake_after
FROM sl LEFT JOIN ids ON ids.operator = sl.operator
ORDER BY sl.block_number, sl.log_index
"""


@dataclass(frozen=True)
class Window:
    """The challenge window in blocks and where the figure came from (meta, deployment, chain or setting)."""

    blocks: int
    source: str


@dataclass(frozen=True)
class Head:
    """The block the windows are measured against: the chain's head when it answers, else the last indexed block."""

    block: int | None
    source: str  # "chain" | "indexed" | "unknown"
    note: str = ""


@dataclass(frozen=True)
class Disputes:
    """Everything the Disputes page and `lens disputes` show, as frames plus the figures they were measured with."""

    head: Head
    window: Window
    challenges: pd.DataFrame
    slashes: pd.DataFrame
    candidates: pd.DataFrame
    conflicts: pd.DataFrame
    challengers: pd.DataFrame
    responded: int
    missing_replays: int
    replayed_now: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    # challenge_rows(self), built once with the record (a page caches the record: its reruns reuse the table)
    table: pd.DataFrame | None = None

    @property
    def open_candidates(self) -> pd.DataFrame:
        """Candidates whose window is still open."""
        if "state" not in self.candidates:
            return self.candidates
        return self.candidates[self.candidates["state"] == "open"]

    def to_dict(self) -> dict[str, Any]:
        """The `lens disputes --json` object."""
        slashed = _slashes_by_tx(self.slashes)
        challenges = []
        for _, c in self.challenges.iterrows():
            rows = slashed.get(c["tx_hash"], []) if c["success"] else []
            challenges.append(
                {
                    "task_id": c["task_id"],
                    "block_number": _int(c["block_number"]),
                    "block_time": _iso(c["block_time"]),
                    "tx_hash": c["tx_hash"],
                    "challenger": c["challenger"],
                    "success": bool(c["success"]),
                    "responded_block": _int(c["responded_block"]),
                    "blocks_after_response": _int(c["blocks_after_response"]),
                    "seconds_after_response": _float(c["seconds_after_response"]),
                    "window_blocks": self.window.blocks,
                    "replay": _str(c["replay"]) or "not_replayed",
                    "slashed": rows,
                    "slashed_wei": str(sum(int(r["amount_wei"]) for r in rows if r["amount_wei"] is not None)),
                }
            )
        return {
            "head": self.head.block,
            "head_source": self.head.source,
            "window_blocks": self.window.blocks,
            "window_source": self.window.source,
            "responded": self.responded,
            "missing_replays": self.missing_replays,
            "replayed_now": self.replayed_now,
            "challenges": challenges,
            "candidates": [
                {
                    "task_id": r["task_id"],
                    "attested_allow": bool(r["attested_allow"]),
                    "replayed_allow": None if _null(r["replayed_allow"]) else bool(r["replayed_allow"]),
                    "responded_block": _int(r["responded_block"]),
                    "window_end_block": _int(r["window_end_block"]),
                    "blocks_left": _int(r["blocks_left"]),
                    "state": r["state"],
                    "challenged_unsuccessfully": bool(r["challenged_unsuccessfully"]),
                    "verdict_page": f"/verdict?task={r['task_id']}",
                }
                for _, r in self.candidates.iterrows()
            ],
            "conflicts": [
                {
                    "task_id": r["task_id"],
                    "block_number": _int(r["block_number"]),
                    "challenger": r["challenger"],
                    "attested_allow": None if _null(r["attested_allow"]) else bool(r["attested_allow"]),
                    "replayed_allow": None if _null(r["replayed_allow"]) else bool(r["replayed_allow"]),
                    "verdict_page": f"/verdict?task={r['task_id']}",
                }
                for _, r in self.conflicts.iterrows()
            ],
            "challengers": [
                {
                    "challenger": r["challenger"],
                    "challenges": int(r["challenges"]),
                    "successful": int(r["successful"]),
                    "unsuccessful": int(r["unsuccessful"]),
                    "success_rate": _float(r["success_rate"]),
                    "right_per_replay": int(r["right_per_replay"]),
                }
                for _, r in self.challengers.iterrows()
            ],
            "summary": self.summary(),
            "notes": list(self.notes),
        }

    def summary(self) -> dict[str, Any]:
        """Headline counts (the exporter's gauges are these)."""
        ch = self.challenges
        open_c = self.open_candidates
        return {
            "challenges": len(ch),
            "successful": int(ch["success"].sum()) if len(ch) else 0,
            "unsuccessful": int((~ch["success"].astype(bool)).sum()) if len(ch) else 0,
            "candidates": len(self.candidates),
            "open_candidates": len(open_c),
            "missed_candidates": len(self.candidates) - len(open_c),
            "fewest_blocks_left": int(open_c["blocks_left"].min()) if len(open_c) else None,
            "conflicts": len(self.conflicts),
            "slashed_operators": int(self.slashes["operator"].nunique()) if len(self.slashes) else 0,
        }


def _null(v: Any) -> bool:
    return v is None or (not isinstance(v, (str, bytes, list, tuple, dict)) and bool(pd.isna(v)))


def _int(v: Any) -> int | None:
    return None if _null(v) else int(v)


def _float(v: Any) -> float | None:
    return None if _null(v) else round(float(v), 4)


def _str(v: Any) -> str | None:
    return None if _null(v) else str(v)


def _iso(v: Any) -> str | None:
    return None if _null(v) else pd.Timestamp(v).isoformat()


def _slashes_by_tx(slashes: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for _, s in slashes.iterrows():
        out.setdefault(s["tx_hash"], []).append(
            {
                "operator": s["operator"],
                "name": _str(s["name"]) or "",
                "wad": _str(s["wad"]),
                "stake_before_wei": _str(s["stake_before"]),
                "stake_after_wei": _str(s["stake_after"]),
                "amount_wei": _str(s["amount_wei"]),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# The window and the head


def _rpc(rpc_url: str, method: str, params: list) -> Any:
    """One bounded JSON-RPC call; None when the node does not answer."""
    try:
        resp = requests.post(
            rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=RPC_TIMEOUT_S
        )
        return resp.json().get("result")
    except (requests.RequestException, ValueError):
        return None


def challenge_window(con: Con, rpc_url: str = "", doc: dict | None = None) -> Window:
    """The challenge window (blocks after the response's reference block): the DB's meta, the deployment document,
    the task manager's `taskChallengeWindowBlock()` on chain, else the devnet setting."""
    value = meta_int(con, "challenge_window_blocks")
    if value:
        return Window(value, "meta")
    doc = doc if doc is not None else (deployment_from_meta_safe(con) or {})
    try:
        if doc.get("challenge_window_blocks"):
            return Window(int(doc["challenge_window_blocks"]), "deployment")
    except (TypeError, ValueError):
        pass
    tm = str((doc.get("contracts") or {}).get("taskManager") or "")
    rpc_url = rpc_url or str(doc.get("rpc_url") or "")
    if tm and rpc_url and not _other_chain(con, rpc_url):
        raw = _rpc(rpc_url, "eth_call", [{"to": tm, "data": WINDOW_SELECTOR}, "latest"])
        if isinstance(raw, str) and len(raw) == 66:
            return Window(int(raw, 16), "chain")
    return Window(int(settings.get("challenge_window_blocks")), "setting")


def _other_chain(con: Con, rpc_url: str) -> str:
    """Why the node at `rpc_url` is not the DB's chain ('' when it is, or when either id is unknown): a devnet
    restarted on the same port must not lend its head to another chain's windows."""
    db_chain = meta_int(con, "chain_id")
    raw = _rpc(rpc_url, "eth_chainId", [])
    if db_chain is None or not isinstance(raw, str):
        return ""
    node_chain = int(raw, 16)
    return "" if node_chain == db_chain else f"the node at {rpc_url} is chain {node_chain}, the DB chain {db_chain}"


def indexed_head(con: Con) -> int | None:
    """The last block the indexer has seen (meta `indexed_head`, else the newest checkpoint or task)."""
    value = meta_int(con, "indexed_head")
    if value is not None:
        return value
    last = freshness(con)["last_block"]
    return None if last is None else int(last)


def head_block(con: Con, rpc_url: str = "") -> Head:
    """The chain's head when its node answers (windows close on the chain, not in the DB), else the indexed head."""
    rpc_url = rpc_url or str((deployment_from_meta_safe(con) or {}).get("rpc_url") or "")
    why = "no RPC URL in the deployment"
    if rpc_url:
        block, why = db.rpc_head(rpc_url, RPC_TIMEOUT_S)
        other = _other_chain(con, rpc_url) if block is not None else ""
        if block is not None and not other:
            return Head(block, "chain")
        why = other or why
    indexed = indexed_head(con)
    if indexed is None:
        return Head(None, "unknown", why)
    return Head(indexed, "indexed", f"chain head unavailable ({why}): windows are measured against the indexed head")


# ---------------------------------------------------------------------------------------------
# The queries


def _replays_sql(con: Con, extra: pd.DataFrame | None) -> tuple[str, dict[str, Any]]:
    """The replay results: the `replays` table, plus replays made now (`extra`) for tasks it lacks → (SQL, params)."""
    have = "replays" in table_names(con)
    base = "SELECT task_id, result, replayed_allow FROM replays"
    if extra is None:
        return (base if have else NO_REPLAYS), {}
    params = {
        "x_id": [str(v) for v in extra["task_id"]],
        "x_result": [str(v) for v in extra["result"]],
        "x_allow": [None if _null(v) else bool(v) for v in extra["replayed_allow"]],
    }
    if have:
        return (
            f"{base} UNION ALL SELECT * FROM ({EXTRA_REPLAYS}) WHERE task_id NOT IN (SELECT task_id FROM replays)",
            params,
        )
    return EXTRA_REPLAYS, params


def challenges_sql(con: Con, doc: dict | None = None) -> tuple[str, dict[str, Any]]:
    """Challenges from the task manager's own logs when raw events are indexed, else the derived table (a DB built
    by `lens synth` has the raw tables, empty, and only derived rows)."""
    names = table_names(con)
    doc = doc if doc is not None else (deployment_from_meta_safe(con) or {})
    tm = str((doc.get("contracts") or {}).get("taskManager") or "").lower()
    if tm and {"ev_task_challenged_successfully", "ev_task_challenged_unsuccessfully"} <= names:
        if query_rows(con, RAW_CHALLENGES_PRESENT_SQL)[0][0]:
            return RAW_CHALLENGES, {"tm": tm}
    if "challenges" in names:
        return DERIVED_CHALLENGES, {}
    return NO_CHALLENGES, {}


def missing_replays(con: Con, extra: pd.DataFrame | None = None) -> list[str]:
    """Responded tasks with no replay result (in the DB or in `extra`), oldest first."""
    if "tasks" not in table_names(con):
        return []
    rsql, rparams = _replays_sql(con, extra)
    return [r[0] for r in query_rows(con, MISSING_REPLAYS_SQL.format(replays=rsql), rparams)]


def task_records(con: Con, task_ids: list[str]) -> list:
    """The engine's TaskRecords (with their policy sources) of these tasks, to replay the ones the DB has no replay of."""
    from app.engine.replay import task_from_row
    from app.engine.store import ENGINE_TASK_SELECT

    cur = con.cursor()
    try:
        cur.execute(
            ENGINE_TASK_SELECT + " WHERE t.task_id IN (SELECT unnest(?)) ORDER BY t.responded_block", [task_ids]
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        cur.close()
    return [task_from_row(r, r.get("policy_source")) for r in rows]


def replay_frame(results: list) -> pd.DataFrame:
    """Replays made now (app.engine Replay records) as the frame `disputes(extra=…)` takes."""
    return pd.DataFrame(
        {
            "task_id": [r.task_id for r in results],
            "result": [r.result for r in results],
            "replayed_allow": pd.array([r.replayed_allow for r in results], dtype="boolean"),
        }
    )


def slashes(con: Con, doc: dict | None = None) -> pd.DataFrame:
    """Every OperatorSlashed from the deployment's slasher, with the stake it took (exact wei) and the operator's name."""
    cols = [
        "tx_hash",
        "block_number",
        "log_index",
        "operator",
        "name",
        "wad",
        "stake_before",
        "stake_after",
        "amount_wei",
    ]
    names = table_names(con)
    doc = doc if doc is not None else (deployment_from_meta_safe(con) or {})
    contracts = doc.get("contracts") or {}
    slashers = [str(contracts[r]).lower() for r in SLASHER_ROLES if contracts.get(r)]
    if not slashers or not {"ev_operator_slashed", "ev_operator_stake_update", "operators"} <= names:
        return pd.DataFrame(columns=cols)
    df = query(con, SLASHES_SQL, {"slashers": slashers})
    df["wad"] = [_first_wad(w) for w in df["wads_to_slash"]]
    df["amount_wei"] = [
        str(int(b) - int(a)) if not _null(b) and not _null(a) else None
        for b, a in zip(df["stake_before"], df["stake_after"])
    ]
    return df[cols]


def _first_wad(raw: Any) -> str | None:
    try:
        wads = json.loads(raw) if isinstance(raw, str) else list(raw)
        return str(wads[0]) if wads else None
    except (TypeError, ValueError):
        return None


def disputes(
    con: Con, head: Head, window: Window, extra: pd.DataFrame | None = None, replayed_now: int = 0
) -> Disputes:
    """Challenges, candidates, conflicts and challengers against `head` and `window`; `extra` holds replays made now
    for tasks the DB has none for (columns task_id, result, replayed_allow)."""
    notes: list[str] = [head.note] if head.note else []
    doc = deployment_from_meta_safe(con) or {}  # read once: it is the DB's meta plus, maybe, a file
    ch_sql, ch_params = challenges_sql(con, doc)
    if "tasks" not in table_names(con):
        empty = pd.DataFrame()
        return Disputes(head, window, empty, slashes(con, doc), empty, empty, empty, 0, 0, notes=tuple(notes))
    rsql, rparams = _replays_sql(con, extra)
    if extra is None and rollups.ready(con):  # each task carries its replay: no join against `replays`
        rsql, rparams = "", {}
        challenges_sql_, candidates_sql, missing_sql = CHALLENGES_FLAG_SQL, CANDIDATES_FLAG_SQL, MISSING_COUNT_FLAG_SQL
    else:
        challenges_sql_, candidates_sql, missing_sql = CHALLENGES_SQL, CANDIDATES_SQL, MISSING_COUNT_SQL
    ch = query(con, challenges_sql_.format(challenges=ch_sql, replays=rsql), {**ch_params, **rparams})
    cand = (
        query(
            con,
            candidates_sql.format(challenges=ch_sql, replays=rsql),
            {**ch_params, **rparams, "window": window.blocks, "head": head.block},
        )
        if head.block is not None
        else pd.DataFrame()
    )
    missing = int(query_rows(con, missing_sql.format(replays=rsql), rparams)[0][0])
    responded = int(query_rows(con, RESPONDED_SQL)[0][0])
    if head.block is None:
        notes.append("the chain head is unknown (no RPC and nothing indexed): candidates' windows cannot be measured")
    if missing:
        notes.append(
            f"{missing:,} of {responded:,} responses have no replay: candidates among them are unknown "
            "(run `lens audit` to replay every decision)"
        )
    ch["success"] = ch["success"].astype(bool)
    ch["window_share"] = ch["blocks_after_response"] / window.blocks
    conflicts = ch[ch["success"] & (ch["replay"] == "match")]
    return Disputes(
        head=head,
        window=window,
        challenges=ch,
        slashes=slashes(con, doc),
        candidates=cand,
        conflicts=conflicts.reset_index(drop=True),
        challengers=challengers(ch),
        responded=responded,
        missing_replays=missing,
        replayed_now=replayed_now,
        notes=tuple(notes),
    )


def challengers(ch: pd.DataFrame) -> pd.DataFrame:
    """Per challenger: challenges, how many succeeded, the success rate, and how many Lens' replay calls right."""
    cols = ["challenger", "challenges", "successful", "unsuccessful", "success_rate", "right_per_replay"]
    if ch.empty:
        return pd.DataFrame(columns=cols)
    g = ch.assign(
        ok=ch["success"].astype(int),
        bad=(~ch["success"]).astype(int),
        right=(ch["replay"] == "mismatch").astype(int),
    ).groupby("challenger", as_index=False)
    out = g.agg(
        challenges=("task_id", "size"),
        successful=("ok", "sum"),
        unsuccessful=("bad", "sum"),
        right_per_replay=("right", "sum"),
    )
    out["success_rate"] = out["successful"] / out["challenges"]
    return out.sort_values(["challenges", "challenger"], ascending=[False, True])[cols].reset_index(drop=True)


def over_time(ch: pd.DataFrame) -> pd.DataFrame:
    """Challenges per time bucket and outcome (bucket width picked so the chart has ≤ ~200 bars)."""
    cols = ["bucket", "outcome", "challenges"]
    if ch.empty or ch["block_time"].isna().all():
        return pd.DataFrame(columns=cols)
    times = pd.to_datetime(ch["block_time"])
    span = max((times.max() - times.min()).total_seconds(), 1.0)
    secs = next((s for _, s in BUCKETS if span / s <= 200), BUCKETS[-1][1])
    frame = pd.DataFrame(
        {
            "bucket": times.dt.floor(f"{secs}s"),
            "outcome": ch["success"].map({True: "successful", False: "unsuccessful"}),
        }
    )
    return frame.groupby(["bucket", "outcome"], as_index=False).size().rename(columns={"size": "challenges"})[cols]


def for_page(con: Con, head: int | None, rpc_url: str = "") -> Disputes:
    """The Disputes page's data: the DB's replays only (a page does not replay), windows against `head` (the chain's,
    cached by the page) or the indexed head."""
    window = challenge_window(con, rpc_url, deployment_from_meta_safe(con) or {})
    if head is not None:
        d = disputes(con, Head(head, "chain"), window)
    else:
        indexed = indexed_head(con)
        note = "chain head unavailable: windows are measured against the indexed head"
        d = disputes(con, Head(indexed, "indexed" if indexed is not None else "unknown", note), window)
    return replace(d, table=challenge_rows(d))  # built once, inside the page's cache


# ---------------------------------------------------------------------------------------------
# Presentation: pure shaping of a Disputes record into the page's tables


CANDIDATE_STATES = ("open", "missed", "all")


def candidate_rows(d: Disputes, state: str = "all") -> pd.DataFrame:
    """Candidates in `state` (open, missed or all), newest first: a link to the verdict, attested vs replayed, window
    end and blocks left (or missed)."""
    cols = ["verdict_page", "responded_block", "attested", "replayed", "window_end_block", "left", "state", "note"]
    c = d.candidates
    if state in ("open", "missed") and "state" in c:
        c = c[c["state"] == state]
    if c.empty:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        {
            "verdict_page": "/verdict?task=" + c["task_id"],
            "responded_block": c["responded_block"],
            "attested": c["attested_allow"].map({True: "allow", False: "deny"}),
            "replayed": c["replayed_allow"].map({True: "allow", False: "deny"}),
            "window_end_block": c["window_end_block"],
            "left": [
                f"{int(n):,} blocks left" if s == "open" else "window missed"
                for n, s in zip(c["blocks_left"], c["state"])
            ],
            "state": c["state"],
            "note": ["a challenge failed" if x else "" for x in c["challenged_unsuccessfully"]],
        }
    )[cols]


def challenge_rows(d: Disputes, conflicts_only: bool = False, limit: int | None = None) -> pd.DataFrame:
    """Challenges (or only the conflicts), newest first (at most `limit`): link, block and time, challenger, outcome,
    timing against the window, replay result and the stake slashed from whom."""
    if limit is not None:
        return challenge_rows(d, conflicts_only).head(limit)
    cols = ["verdict_page", "block_number", "block_time", "challenger", "outcome", "timing", "replay", "slashed"]
    if d.table is not None and not conflicts_only:
        return d.table
    ch = d.conflicts if conflicts_only else d.challenges
    if ch.empty:
        return pd.DataFrame(columns=cols)
    # one text per slashing transaction, mapped onto the successful challenges (a hundred thousand rows at scale)
    texts = {
        tx: f"{sum(int(r['amount_wei']) for r in rows if r['amount_wei']) / WEI:,.2f} from "
        + ", ".join(r["name"] or r["operator"][:10] for r in rows)
        for tx, rows in _slashes_by_tx(d.slashes).items()
        if rows
    }
    slashed = ch["tx_hash"].map(texts).astype(object).where(ch["success"].astype(bool), "").fillna("")
    window = f" of {d.window.blocks:,} blocks"
    after = pd.to_numeric(ch["blocks_after_response"], errors="coerce")
    timing = pd.Series("response not indexed", index=ch.index, dtype=object)
    known = after.notna()
    timing[known] = [f"{b:,}{window}" for b in after[known].astype("int64").tolist()]
    return pd.DataFrame(
        {
            "verdict_page": "/verdict?task=" + ch["task_id"],
            "block_number": ch["block_number"],
            "block_time": ch["block_time"],
            "challenger": ch["challenger"],
            "outcome": ch["success"].map({True: "successful", False: "unsuccessful"}),
            "timing": timing.tolist(),
            "replay": ch["replay"].fillna("not replayed"),
            "slashed": slashed.tolist(),
        }
    )[cols]


def slash_rows(d: Disputes) -> pd.DataFrame:
    """Every slash: block, operator (name), stake before and after, amount (token units)."""
    cols = ["block_number", "name", "operator", "stake_before", "stake_after", "slashed", "tx_hash"]
    s = d.slashes
    if s.empty:
        return pd.DataFrame(columns=cols)

    def tokens(v: Any) -> float | None:
        return None if _null(v) else int(v) / WEI

    return pd.DataFrame(
        {
            "block_number": s["block_number"],
            "name": s["name"].fillna(""),
            "operator": s["operator"],
            "stake_before": [tokens(v) for v in s["stake_before"]],
            "stake_after": [tokens(v) for v in s["stake_after"]],
            "slashed": [tokens(v) for v in s["amount_wei"]],
            "tx_hash": s["tx_hash"],
        }
    )[cols]
