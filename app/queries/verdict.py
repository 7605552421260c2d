"""Verdict queries: one decision looked up by task id, tx hash or address; its record, lifecycle, quorum and replay."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from app import lookup
from app.queries.base import (
    BLOB_SQL,
    Con,
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
from app.text import asset_label, fmt_amount, intent_sentence, is_null, parsed_json

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
ADDRESS_COUNT_SQL = (
    "SELECT count(*) FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?"
)
ADDRESS_SQL = """
SELECT task_id, created_time, created_block, policy_client, intent_from, counterparty, function_name, amount_num, asset, allow, status
FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?
ORDER BY created_block DESC, task_id LIMIT ?
"""


def find(con: Con, text: str, limit: int = 500) -> dict[str, Any]:
    """Resolve a lookup: {'kind': 'task'|'tx'|'address'|'none'|'invalid'|'ambiguous'|'empty', 'task_ids', 'roles'
    (what a transaction did for each task), 'candidates' (keys a prefix starts), 'problem', or 'rows', 'total'}."""
    found = lookup.resolve(con, text)
    if found.kind != "address":
        return {
            "kind": found.kind,
            "query": found.query,
            "task_ids": list(found.task_ids),
            "roles": [lookup.role_text(r) for r in found.roles],
            "candidates": list(found.candidates),
            "problem": found.problem,
        }
    q = found.query
    total = int(query_rows(con, ADDRESS_COUNT_SQL, [q] * 4)[0][0])
    rows = decision_rows(con, query(con, ADDRESS_SQL, [q] * 4 + [int(limit)]))
    return {"kind": "address" if total else "none", "query": q, "total": total, "rows": rows}


def verdict(con: Con, task_id: str) -> dict[str, Any] | None:
    """Everything the verdict page shows about one task (None if unknown): row, policy, version, source, signers, ..."""
    task = row_dict(query(con, TASK_SQL, [task_id]))
    if task is None:
        return None
    names = table_names(con)
    policy = (row_dict(query(con, POLICY_SQL, [task["policy_address"]])) if "policies" in names else None) or {}
    code_hash = task.get("policy_code_hash") or policy.get("policy_code_hash")
    blob = query_rows(con, BLOB_SQL, [code_hash]) if code_hash else []
    version = (
        row_dict(query(con, TASK_VERSION_SQL, [task["policy_client"], task["policy_id"]]))
        if task.get("policy_id") and "policy_versions" in names
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
        "transactions": lookup.task_transactions(con, task_id),
    }


def timeline(data: dict[str, Any]) -> pd.DataFrame:
    """The lifecycle as rows (stage, block, time, detail): created → responded → spent / denied / expired / challenged."""
    t = data["task"]
    if t.get("created_block") is not None:
        rows = [("created", t.get("created_block"), t.get("created_time"), f"tx {t.get('created_tx') or '—'}")]
    elif t.get("status") == "direct_only":  # EVENTS.md §3.6: the optimistic path, before any on-chain task
        rows = [("direct path", None, None, "no NewTaskCreated: the client verified the signed response inline")]
    else:
        rows = [("created", None, None, "before the indexed range (known from its response)")]
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


def transactions_table(data: dict[str, Any]) -> pd.DataFrame:
    """Every transaction tied to the task as rows (block, transaction, what it did), oldest first."""
    rows = [(r.block_number, r.tx_hash, lookup.role_text(r)) for r in data.get("transactions") or []]
    df = pd.DataFrame(rows, columns=["block", "transaction", "what it did"])
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


def base_unit(t: dict[str, Any]) -> str:
    """'wei' for amounts of 18-decimal assets (ETH included), else 'base units' (a 6-decimal token's)."""
    d = t.get("asset_decimals")
    return "wei" if d is None or is_null(d) or int(d) == 18 else "base units"


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
            f"{fmt_amount(t.get('amount_num'), t.get('asset'), data.get('token', ''))} = {t.get('amount_wei')} {base_unit(t)}"
            if t.get("amount_wei") is not None and not is_null(t.get("amount_wei"))
            else "unknown: the call's arguments do not say how much it moves",
        ),
        ("native value (wei)", t.get("intent_value") or "0"),
        ("chain id", str(t.get("intent_chain_id"))),
        ("calldata", t.get("intent_data") or "0x"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


# where the replay's entrypoint and params came from (tasks.entrypoint_source / params_source, set by the indexer)
ENTRYPOINT_SOURCES = {
    "PolicySet": "PolicySet emitted by the policy contract itself",
    "PolicyDeployed": "PolicyDeployed emitted by the deployment's policy factory",
    "deployment": "the deployment document",
    "entrypoint()": "the policy contract's entrypoint(), read on chain",
    "package": "Newton convention <package>.allow from the source's package line",
}
PARAMS_SOURCES = {
    "TaskResponded": "the TaskResponded the quorum signed (policyConfig.policyParams)",
    "DirectTaskResponded": "the DirectTaskResponded (policyConfig.policyParams)",
    "NewTaskCreated": "NewTaskCreated's policy state (no response indexed)",
}


def entrypoint_with_source(t: dict[str, Any], p: dict[str, Any]) -> str:
    """The task's entrypoint and where it came from, e.g. `pkg.allow (from PolicySet emitted by …)`."""
    entry = t.get("entrypoint") or p.get("entrypoint")
    if not entry:
        return "—"
    source = ENTRYPOINT_SOURCES.get(t.get("entrypoint_source") or "")
    return f"{entry} (from {source})" if source else str(entry)


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
        ("entrypoint", entrypoint_with_source(t, p)),
        ("params from", PARAMS_SOURCES.get(t.get("params_source") or "", "—")),
        ("code hash", data.get("code_hash") or "—"),
        ("policy CID", p.get("policy_cid") or "—"),
        ("schema CID", p.get("schema_cid") or "—"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


def not_reached(b: Any) -> bool:
    """Whether the evaluation never reached this rule body (probed separately, or an `else` after a branch held)."""
    return b.succeeded is None or b.note.startswith(("not needed", "not reached"))


def body_groups(exp: Any) -> dict[str, list]:
    """The explanation's rule bodies by what they did: 'decisive' (decided the verdict), 'passed' (deny rules the
    evaluation reached and found false: checks that passed), 'other' (other bodies reached that did not hold) and
    'not_reached' (bodies the evaluation never needed)."""
    groups: dict[str, list] = {"decisive": [], "passed": [], "other": [], "not_reached": []}
    for b in exp.bodies:
        if b.decisive:
            groups["decisive"].append(b)
        elif not_reached(b):
            groups["not_reached"].append(b)
        elif b.succeeded is False and b.failed_at is not None:
            groups["passed" if b.rule == "deny" else "other"].append(b)
    return groups


def failing_conditions(exp: Any, decisive: bool) -> pd.DataFrame:
    """For every rule body that failed and did (decisive) or did not decide the verdict: rule, line, the first
    failing condition and its terms' values. The non-decisive ones are the evaluated deny rules that did not fire
    (checks that passed); bodies the evaluation never reached are left to `unreached_rules`."""
    from app.engine.values import term_value_text  # the engine loads only when a page explains

    rows = []
    for b in exp.bodies:
        if b.succeeded is False and b.failed_at is not None and b.decisive == decisive and not not_reached(b):
            terms = "; ".join(
                f"{t.text} = {term_value_text(t.text, t.value) if t.defined else 'undefined'}"
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


def unreached_rules(exp: Any) -> pd.DataFrame:
    """Rule bodies the evaluation never reached (rule, line, why), so they are not mistaken for checks that passed."""
    rows = [
        {"rule": b.head or b.rule, "line": b.line, "why": b.note or "not evaluated"}
        for b in body_groups(exp)["not_reached"]
    ]
    return pd.DataFrame(rows, columns=["rule", "line", "why"])


def _then(c: Any) -> str:
    if c.flips_to is None:
        return f"removes {c.removes} only" if getattr(c, "removes", "") else "removes one deny reason only"
    return "allowed" if c.flips_to else "denied"


def counterfactuals(exp: Any) -> pd.DataFrame:
    """The explanation's counterfactuals: param, current value, the param's whole value that flips the verdict
    (apply it as it stands), and the sentence."""
    rows = [
        {
            "param": c.param,
            "current": json.dumps(c.current, default=str),
            "would need": json.dumps(c.applied if getattr(c, "applied", None) is not None else c.value, default=str),
            "verdict then": _then(c),
            "what it means": c.text,
        }
        for c in exp.counterfactuals
    ]
    return pd.DataFrame(rows, columns=["param", "current", "would need", "verdict then", "what it means"])


# ---------------------------------------------------------------------------------------------
# The whole story of one decision, for people (`lens explain`) and programs (`lens explain --json`)


def outcome(data: dict[str, Any]) -> dict[str, Any]:
    """What became of the task → {'state', 'text', 'block', 'tx'}; a successful challenge comes first.

    state: 'challenged' | 'direct' | 'executed' | 'refused' | 'denied' | 'expired' | 'unspent' | 'awaiting response'."""
    t = data["task"]
    txs = {r.role: r for r in data.get("transactions") or []}
    challenges = data.get("challenges")
    won = None
    if challenges is not None and len(challenges):
        ok = challenges[challenges["success"].astype(bool)]
        won = ok.iloc[0] if len(ok) else None
    verdict_word = "allow" if t.get("allow") else "deny"
    if won is not None:
        return {
            "state": "challenged",
            "text": f"successfully challenged: the operators' attested {verdict_word} was proven wrong on chain by "
            f"{won['challenger']} at block {int(won['block_number']):,} (tx {won['tx_hash']})",
            "block": int(won["block_number"]),
            "tx": won["tx_hash"],
        }
    client = data.get("client_name") or t.get("policy_client")
    if t.get("status") == "direct_only":  # EVENTS.md §3.6: the optimistic path, no on-chain task
        r = txs.get("responded directly")
        where = f" (DirectTaskResponded, block {r.block_number:,}, tx {r.tx_hash})" if r else ""
        return {
            "state": "direct",
            "text": f"direct path: {client} verified the operators' signed {verdict_word} inline{where}, "
            "without a task created on chain",
            "block": r.block_number if r else None,
            "tx": r.tx_hash if r else None,
        }
    if t.get("responded_block") is None:
        window = data.get("response_window")
        created = t.get("created_block")
        ends = (
            f"; the response window ends at block {int(created) + window:,}" if window and created is not None else ""
        )
        return {
            "state": "awaiting response",
            "text": "awaiting the operators' response" + ends,
            "block": None,
            "tx": None,
        }
    if "executed" in txs or t.get("spent_block") is not None:
        r = txs.get("executed") or txs.get("spent")
        where = f" at block {r.block_number:,} (tx {r.tx_hash})" if r else f" at block {int(t['spent_block']):,}"
        return {
            "state": "executed",
            "text": f"executed: {client} spent the attestation and carried out the intent{where}",
            "block": r.block_number if r else int(t["spent_block"]),
            "tx": r.tx_hash if r else None,
        }
    if "refused" in txs:
        r = txs["refused"]
        return {
            "state": "refused",
            "text": f"refused on chain: {client} recorded the denial (IntentDenied) at block {r.block_number:,} "
            f"(tx {r.tx_hash})",
            "block": r.block_number,
            "tx": r.tx_hash,
        }
    if not t.get("allow"):
        r = txs.get("denied on chain") or txs.get("responded")
        return {
            "state": "denied",
            "text": "denied: the operators' deny is on chain"
            + (f" (tx {r.tx_hash})" if r else "")
            + "; the policy client has not recorded a refusal",
            "block": r.block_number if r else None,
            "tx": r.tx_hash if r else None,
        }
    if t.get("status") == "expired":
        return {
            "state": "expired",
            "text": f"expired unspent: the allow was never spent before its expiry block {t.get('response_expire_block')}",
            "block": t.get("response_expire_block"),
            "tx": None,
        }
    return {
        "state": "unspent",
        "text": f"allowed, not spent yet: spendable until block {t.get('response_expire_block')}",
        "block": None,
        "tx": None,
    }


def _when(v: Any) -> str | None:
    """A timestamp as ISO text (UTC), None when unknown."""
    return None if v is None or is_null(v) else pd.Timestamp(v).isoformat()


def story(data: dict[str, Any], exp: Any = None, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole story the verdict page tells, as one JSON-ready record: who asked what, when, what became of it,
    the policy and its params, the oracle data, the quorum, and how the looked-up key led to the task."""
    t = data["task"]
    token = data.get("token", "")
    try:
        args = json.loads(t.get("function_args_json") or "[]")
    except ValueError:
        args = []
    oracle = parsed_json(t.get("policy_data_json"), None)
    signers = data.get("signers")
    signed, not_signed = [], []
    if signers is not None and len(signers):
        for _, r in signers.iterrows():
            (signed if r["signed"] else not_signed).append(r["name"] or r["operator"])
    v = data.get("version") or {}
    out = {
        "task_id": t["task_id"],
        "lookup": found,
        "asked": {
            "sentence": intent_sentence(data),
            "client": {"name": data.get("client_name") or None, "address": t.get("policy_client")},
            "sender": t.get("intent_from"),
            "recipient": t.get("counterparty") or t.get("intent_to"),
            "to": t.get("intent_to"),
            "asset": asset_label(t.get("asset"), token),
            "asset_address": t.get("asset"),
            "amount": fmt_amount(t.get("amount_num"), t.get("asset"), token),
            "amount_wei": None if is_null(t.get("amount_wei")) else t.get("amount_wei"),
            "base_unit": base_unit(t),
            "call": t.get("function_signature") or None,
            "function": t.get("function_name") or None,
            "arguments": args,
            "native_value_wei": t.get("intent_value") or "0",
            "chain_id": None if t.get("intent_chain_id") is None else str(t.get("intent_chain_id")),
        },
        "when": {
            "created_block": t.get("created_block"),
            "created_time": _when(t.get("created_time")),
            "responded_block": t.get("responded_block"),
            "responded_time": _when(t.get("responded_time")),
        },
        "attested": None if t.get("allow") is None else ("allow" if t["allow"] else "deny"),
        "outcome": outcome(data),
        "status": t.get("status"),
        "transactions": [
            {
                "tx_hash": r.tx_hash,
                "role": r.role,
                "event": r.event,
                "block": r.block_number,
                "time": _when(r.block_time),
                "text": lookup.role_text(r),
            }
            for r in data.get("transactions") or []
        ],
        "policy": {
            "name": data.get("policy_name") or None,
            "address": t.get("policy_address"),
            "entrypoint": t.get("entrypoint"),
            "code_hash": data.get("code_hash"),
            "params": parsed_json(t.get("params_json"), None),
            "params_set_at_block": None if not v else int(v["block_number"]),
            "facts": dict(zip(*policy_facts(data).T.values)),  # as the page's Policy table shows them
        },
        "oracle_data": oracle,
        "oracle_errors": [{"oracle": p, "error": e} for p, e in oracle_errors_of(oracle)],
        "quorum": {
            "threshold_pct": None if t.get("quorum_threshold_pct") is None else int(t["quorum_threshold_pct"]),
            "signers": None if t.get("signer_count") is None else int(t["signer_count"]),
            "non_signers": None if t.get("non_signer_count") is None else int(t["non_signer_count"]),
            "signed": signed,
            "did_not_sign": not_signed,
        },
    }
    return out


def oracle_errors_of(policy_data: Any) -> list[tuple[str, str]]:
    """(oracle, its own error text) for each recorded oracle output that reports an error."""
    out = []
    for raw in policy_data if isinstance(policy_data, list) else [policy_data]:
        item = parsed_json(raw, raw) if isinstance(raw, str) else raw
        for pack, value in item.items() if isinstance(item, dict) else []:
            if isinstance(value, dict) and value.get("error") not in (None, False, ""):
                err = value["error"]
                out.append((str(pack), err if isinstance(err, str) else json.dumps(err)))
    return out


def token_symbols(data: dict[str, Any]) -> dict[str, Any]:
    """Token address → its unit (symbol and decimals) for the sentences of this task (see `amount_units`)."""
    from app.engine.values import amount_units  # the engine loads only when a decision is explained

    t = data["task"]
    return amount_units(t, asset_label(t.get("asset"), data.get("token") or ""))
