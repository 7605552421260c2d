"""Verdict queries: one decision looked up by task id, tx hash or address; its record, lifecycle, quorum and replay."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from app.queries.base import (
    BLOB_SQL,
    Con,
    classify_lookup,
    client_name_from,
    deployment_from_meta_safe,
    meta_int,
    policy_name_from,
    query,
    query_rows,
    row_dict,
    table_names,
)
from app.queries.decisions import decision_rows
from app.text import fmt_amount

TASK_SQL = "SELECT * FROM tasks WHERE task_id = ? LIMIT 1"
POLICY_SQL = "SELECT * FROM policies WHERE policy_address = ? LIMIT 1"
TASK_VERSION_SQL = """
SELECT v.*, (SELECT count(*) FROM policy_versions w WHERE w.client = v.client AND w.block_number <= v.block_number) AS version_no,
       (SELECT count(*) FROM policy_versions w WHERE w.client = v.client) AS versions
FROM policy_versions v WHERE v.client = ? AND v.policy_id = ? ORDER BY v.block_number DESC LIMIT 1
"""
SIGNERS_SQL = """
SELECT coalesce(o.name, '') AS name, s.operator, s.signed, s.stake_num, o.country, o.provider
FROM task_signers s LEFT JOIN operators o ON o.operator_id = s.operator_id AND o.chain_id = s.chain_id
WHERE s.task_id = ? ORDER BY s.signed DESC, s.stake_num DESC
"""
CHALLENGES_SQL = "SELECT block_number, block_time, tx_hash, challenger, success FROM challenges WHERE task_id = ? ORDER BY block_number"
REPLAY_SQL = (
    "SELECT result, replayed_allow, reason, deny_json, sentence, replayed_at FROM replays WHERE task_id = ? LIMIT 1"
)
FIND_TASK_SQL = "SELECT task_id FROM tasks WHERE task_id = ? LIMIT 1"
FIND_TX_SQL = "SELECT task_id FROM tasks WHERE created_tx = ? OR responded_tx = ? ORDER BY created_block DESC LIMIT 200"
ADDRESS_COUNT_SQL = (
    "SELECT count(*) FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?"
)
ADDRESS_SQL = """
SELECT task_id, created_time, created_block, policy_client, intent_from, counterparty, function_name, amount_num, asset, allow, status
FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?
ORDER BY created_block DESC, task_id LIMIT ?
"""


def find(con: Con, text: str, limit: int = 500) -> dict[str, Any]:
    """Resolve a lookup: {'kind': 'task'|'tx'|'address'|'none'|'invalid', 'task_ids' or 'rows', 'total'}."""
    kind, q = classify_lookup(text)
    if kind in ("empty", "invalid"):
        return {"kind": kind, "query": q}
    if kind == "hash":
        if query_rows(con, FIND_TASK_SQL, [q]):
            return {"kind": "task", "query": q, "task_ids": [q]}
        ids = [r[0] for r in query_rows(con, FIND_TX_SQL, [q, q])]
        return {"kind": "tx" if ids else "none", "query": q, "task_ids": ids}
    total = int(query_rows(con, ADDRESS_COUNT_SQL, [q] * 4)[0][0])
    rows = decision_rows(con, query(con, ADDRESS_SQL, [q] * 4 + [int(limit)]))
    return {"kind": "address" if total else "none", "query": q, "total": total, "rows": rows}


def verdict(con: Con, task_id: str) -> dict[str, Any] | None:
    """Everything the verdict page shows about one task (None if unknown): row, policy, version, source, signers, ..."""
    task = row_dict(query(con, TASK_SQL, [task_id]))
    if task is None:
        return None
    names = table_names(con)
    policy = row_dict(query(con, POLICY_SQL, [task["policy_address"]])) or {}
    code_hash = task.get("policy_code_hash") or policy.get("policy_code_hash")
    blob = query_rows(con, BLOB_SQL, [code_hash]) if code_hash else []
    version = (
        row_dict(query(con, TASK_VERSION_SQL, [task["policy_client"], task["policy_id"]]))
        if task.get("policy_id")
        else None
    )
    replay = row_dict(query(con, REPLAY_SQL, [task_id])) if "replays" in names else None
    doc = deployment_from_meta_safe(con)
    return {
        "task": task,
        "policy": policy,
        "policy_name": policy.get("name") or policy_name_from(doc, task["policy_address"]) or "",
        "client_name": client_name_from(doc, task["policy_client"]),
        "token": ((doc or {}).get("contracts") or {}).get("token", ""),
        "source": blob[0][0] if blob else None,
        "code_hash": code_hash,
        "version": version,
        "signers": query(con, SIGNERS_SQL, [task_id]) if "task_signers" in names else pd.DataFrame(),
        "challenges": query(con, CHALLENGES_SQL, [task_id]) if "challenges" in names else pd.DataFrame(),
        "replay": replay,
        "response_window": meta_int(con, "response_window_blocks"),
    }


def timeline(data: dict[str, Any]) -> pd.DataFrame:
    """The lifecycle as rows (stage, block, time, detail): created → responded → spent / denied / expired / challenged."""
    t = data["task"]
    rows = [("created", t.get("created_block"), t.get("created_time"), f"tx {t.get('created_tx') or '—'}")]
    if t.get("responded_block") is None:
        window = data.get("response_window")
        ends = f"; the response window ends at block {int(t['created_block']) + window:,}" if window else ""
        rows.append(("awaiting response", None, None, "no TaskResponded yet" + ends))
    else:
        verdict_word = "allowed" if t.get("allow") else "denied"
        rows.append(
            (
                f"responded: {verdict_word}",
                t["responded_block"],
                t.get("responded_time"),
                f"{int(t.get('signer_count') or 0)} signers, {int(t.get('non_signer_count') or 0)} non-signers · tx {t.get('responded_tx') or '—'}",
            )
        )
        if t.get("spent_block") is not None:
            rows.append(
                ("attestation spent", t["spent_block"], t.get("spent_time"), "the policy client executed the intent")
            )
        elif t.get("status") == "expired":
            rows.append(
                ("expired", t.get("response_expire_block"), None, "the allow was never spent before its expiry block")
            )
        elif t.get("allow"):
            rows.append(("valid, unspent", None, None, f"spendable until block {t.get('response_expire_block')}"))
    for _, c in (data.get("challenges") if data.get("challenges") is not None else pd.DataFrame()).iterrows():
        rows.append(
            (
                "challenged " + ("successfully" if c["success"] else "unsuccessfully"),
                c["block_number"],
                c["block_time"],
                f"by {c['challenger']}",
            )
        )
    df = pd.DataFrame(rows, columns=["stage", "block", "time", "detail"])
    df["block"] = df["block"].astype("Int64")
    return df


def explain_task(con: Con, task_id: str) -> dict[str, Any]:
    """Replay and explain one task with app.engine → {'state', 'replay', 'reason', 'explanation', 'replayed_allow'}.

    state: 'ok' | 'no_response' (nothing to replay yet) | 'cannot_replay' (source or inputs missing/undecodable).
    """
    from app.engine.thread import explain_record  # the engine loads only when a page explains

    data = verdict(con, task_id)
    if data is None:
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": "unknown task", "explanation": None}
    return explain_record(data)


# ---------------------------------------------------------------------------------------------
# Verdict presentation: pure shaping of a verdict() / explain record into tables


def intent_facts(data: dict[str, Any]) -> pd.DataFrame:
    """The intent as (field, value) rows: exact values, decoded call, client and counterparty."""
    t = data["task"]
    client = f"{data.get('client_name')} ({t['policy_client']})" if data.get("client_name") else t["policy_client"]
    call = t.get("function_signature") or "(plain native transfer)"
    try:
        args = json.loads(t.get("function_args_json") or "[]")
    except ValueError:
        args = []
    rows = [
        ("from (agent)", t.get("intent_from")),
        ("to", t.get("intent_to")),
        ("policy client", client),
        ("call", call),
        ("arguments", ", ".join(str(a) for a in args) if args else "—"),
        ("counterparty", t.get("counterparty") or "—"),
        (
            "amount",
            f"{fmt_amount(t.get('amount_num'), t.get('asset'), data.get('token', ''))} = {t.get('amount_wei') or '0'} wei",
        ),
        ("native value (wei)", t.get("intent_value") or "0"),
        ("chain id", str(t.get("intent_chain_id"))),
        ("calldata", t.get("intent_data") or "0x"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


def policy_facts(data: dict[str, Any]) -> pd.DataFrame:
    """The policy in force as (field, value) rows: name, address, version of params, entrypoint, hashes."""
    t, p, v = data["task"], data.get("policy") or {}, data.get("version")
    version = "unknown (no PolicySet indexed for this policy id)"
    if v:
        version = (
            f"#{int(v['version_no'])} of {int(v['versions'])} for this client, set at block {int(v['block_number']):,} "
            f"by {v.get('sender')}"
            + (" (current)" if v.get("valid_to_block") is None else f" (until block {int(v['valid_to_block']):,})")
        )
    rows = [
        ("policy", data.get("policy_name") or "—"),
        ("policy address", t.get("policy_address")),
        ("policy version", p.get("version") or "—"),
        ("params version", version),
        ("policy id", t.get("policy_id")),
        ("entrypoint", t.get("entrypoint") or p.get("entrypoint") or "—"),
        ("code hash", data.get("code_hash") or "—"),
        ("policy CID", p.get("policy_cid") or "—"),
        ("schema CID", p.get("schema_cid") or "—"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


def failing_conditions(exp: Any, decisive: bool) -> pd.DataFrame:
    """For every rule body that failed and did (decisive) or did not decide the verdict: rule, line, the first
    failing condition and its terms' values. The non-decisive ones are mostly deny rules that did not fire."""
    rows = []
    for b in exp.bodies:
        if b.succeeded is False and b.failed_at is not None and b.decisive == decisive:
            terms = "; ".join(
                f"{t.text} = {json.dumps(t.value, default=str) if t.defined else 'undefined'}"
                + (f" (+{t.more} more)" if t.more else "")
                for t in b.failed_at.terms
            )
            rows.append(
                {
                    "rule": b.head or b.rule,
                    "line": b.failed_at.line,
                    "failed condition": b.failed_at.text,
                    "values": terms,
                }
            )
    return pd.DataFrame(rows, columns=["rule", "line", "failed condition", "values"])


def counterfactuals(exp: Any) -> pd.DataFrame:
    """The explanation's counterfactuals: param, current value, value that flips the verdict, and the sentence."""
    rows = [
        {
            "param": c.param,
            "current": json.dumps(c.current, default=str),
            "would need": json.dumps(c.value, default=str),
            "verdict then": "allowed" if c.flips_to else "denied",
            "what it means": c.text,
        }
        for c in exp.counterfactuals
    ]
    return pd.DataFrame(rows, columns=["param", "current", "would need", "verdict then", "what it means"])
