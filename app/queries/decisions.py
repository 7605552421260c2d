"""Decisions browser queries: the filter (to and from URL params), its WHERE clause, count, page, facets and exports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from app import db
from app.errors import LensError
from app.queries.base import (
    Con,
    classify_lookup,
    client_name_from,
    deployment_from_meta_safe,
    policy_name_from,
    query,
    query_rows,
    table_names,
)
from app.text import asset_label, is_null, short, verdict_labels

STATUSES = ("created", "allowed", "denied", "spent", "expired", "challenged", "direct_only")  # EVENTS.md §3.6
VERDICTS = ("allowed", "denied", "awaiting")
REPLAY_RESULTS = ("match", "mismatch", "cannot_replay", "not_audited")
# Sort keys map to fixed SQL expressions: what a URL says never becomes SQL text.
SORTS = {
    "block": "t.created_block",
    "time": "t.created_time",
    "amount": "t.amount_num",
    "status": "t.status",
    "latency": "t.latency_respond_s",
    "client": "t.policy_client",
}
DECISION_COLS = (
    "t.task_id, t.created_time, t.created_block, t.policy_client, t.policy_address, t.intent_from, t.counterparty, "
    "t.function_name, t.amount_num, t.amount_wei, t.asset, t.allow, t.status, t.latency_respond_s"
)
_LIST_KEYS = ("client", "policy", "verdict", "status", "replay", "implementation")


@dataclass(frozen=True)
class DecisionFilter:
    """What the auditor asked for; every field survives a round trip through the URL query string."""

    client: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()
    sender: str = ""
    verdict: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    replay: tuple[str, ...] = ()
    time_from: str = ""  # ISO date, inclusive
    time_to: str = ""  # ISO date, inclusive
    block_from: int | None = None
    block_to: int | None = None
    amount_min: float | None = None
    amount_max: float | None = None
    sort: str = "block"
    desc: bool = True
    implementation: tuple[str, ...] = ()  # decided under one of these implementations (task manager or policy)


def _addr_list(values: Any) -> tuple[str, ...]:
    out = []
    for v in values if isinstance(values, (list, tuple)) else str(values or "").split(","):
        kind, q = classify_lookup(str(v))
        if kind == "address":
            out.append(q)
    return tuple(dict.fromkeys(out))


def _choices(values: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = values if isinstance(values, (list, tuple)) else str(values or "").split(",")
    return tuple(v for v in allowed if v in {str(i).strip() for i in items})


def _int_or(value: Any) -> int | None:
    try:
        return int(str(value)) if str(value).strip() != "" else None
    except ValueError:
        return None


def _float_or(value: Any) -> float | None:
    try:
        f = float(str(value))
        return f if f == f and abs(f) != float("inf") else None
    except ValueError:
        return None


def _date_or_empty(value: Any) -> str:
    text = str(value or "").strip()[:10]
    return text if re.match(r"^\d{4}-\d{2}-\d{2}$", text) else ""


def filter_from_params(params: dict[str, Any]) -> DecisionFilter:
    """A DecisionFilter from URL query params (lists comma-separated); anything malformed is ignored, not trusted."""
    g = lambda k: params.get(k, "")  # noqa: E731
    sender_kind, sender = classify_lookup(str(g("sender")))
    sort = str(g("sort")) if str(g("sort")) in SORTS else "block"
    return DecisionFilter(
        client=_addr_list(g("client")),
        policy=_addr_list(g("policy")),
        sender=sender if sender_kind == "address" else "",
        verdict=_choices(g("verdict"), VERDICTS),
        status=_choices(g("status"), STATUSES),
        replay=_choices(g("replay"), REPLAY_RESULTS),
        time_from=_date_or_empty(g("from")),
        time_to=_date_or_empty(g("to")),
        block_from=_int_or(g("block_from")),
        block_to=_int_or(g("block_to")),
        amount_min=_float_or(g("amount_min")),
        amount_max=_float_or(g("amount_max")),
        sort=sort,
        desc=str(g("dir") or "desc") != "asc",
        implementation=_addr_list(g("implementation")),
    )


def filter_to_params(f: DecisionFilter) -> dict[str, str]:
    """The query-string form of a filter (only non-default fields), inverse of filter_from_params."""
    out: dict[str, str] = {}
    for key in _LIST_KEYS:
        if getattr(f, key):
            out[key] = ",".join(getattr(f, key))
    if f.sender:
        out["sender"] = f.sender
    if f.time_from:
        out["from"] = f.time_from
    if f.time_to:
        out["to"] = f.time_to
    for key in ("block_from", "block_to"):
        if getattr(f, key) is not None:
            out[key] = str(getattr(f, key))
    for key in ("amount_min", "amount_max"):
        if getattr(f, key) is not None:
            out[key] = repr(float(getattr(f, key)))
    if f.sort != "block":
        out["sort"] = f.sort
    if not f.desc:
        out["dir"] = "asc"
    return out


def _in_list(column: str, values: tuple[str, ...], params: list[Any]) -> str:
    params.extend(values)
    return f"{column} IN ({', '.join('?' for _ in values)})"  # placeholders only; values go to params


def where_clause(f: DecisionFilter, has_replays: bool, has_upgrades: bool = True) -> tuple[str, list[Any]]:
    """(WHERE … , params) for a filter: fixed SQL fragments, every user value a parameter."""
    conds: list[str] = []
    params: list[Any] = []
    if f.client:
        conds.append(_in_list("t.policy_client", f.client, params))
    if f.policy:
        conds.append(_in_list("t.policy_address", f.policy, params))
    if f.sender:
        conds.append("t.intent_from = ?")
        params.append(f.sender)
    if f.verdict:
        parts = {"allowed": "t.allow", "denied": "NOT t.allow", "awaiting": "t.allow IS NULL"}
        conds.append("(" + " OR ".join(parts[v] for v in f.verdict) + ")")
    if f.status:
        conds.append(_in_list("t.status", f.status, params))
    if f.replay:
        if has_replays:
            parts = []
            known = tuple(r for r in f.replay if r != "not_audited")
            if known:
                parts.append(_in_list("r.result", known, params))
            if "not_audited" in f.replay:
                parts.append("r.result IS NULL")
            conds.append("(" + " OR ".join(parts) + ")")
        elif "not_audited" not in f.replay:
            conds.append("FALSE")  # nothing is audited yet, so no row has a replay result
    if f.time_from:
        conds.append("t.created_time >= CAST(? AS TIMESTAMP)")
        params.append(f.time_from)
    if f.time_to:
        conds.append("t.created_time < CAST(? AS TIMESTAMP) + INTERVAL 1 DAY")
        params.append(f.time_to)
    if f.block_from is not None:
        conds.append("t.created_block >= ?")
        params.append(int(f.block_from))
    if f.block_to is not None:
        conds.append("t.created_block <= ?")
        params.append(int(f.block_to))
    if f.amount_min is not None:
        conds.append("t.amount_num >= ?")
        params.append(float(f.amount_min))
    if f.amount_max is not None:
        conds.append("t.amount_num <= ?")
        params.append(float(f.amount_max))
    if f.implementation:
        conds.append(_in_force(f.implementation, params) if has_upgrades else "FALSE")
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


# The task manager: the address that logged the tasks, and the one the DB's deployment names.
_TASK_MANAGERS = """(SELECT DISTINCT address FROM ev_new_task_created UNION
    SELECT lower(json_extract_string(value, '$.contracts.taskManager')) FROM meta WHERE key = 'deployment_json')"""
# A decision's block (the response's, else the creation's) within the period an implementation was in force at
# the task manager or at the task's policy proxy: Upgraded → next Upgraded.
_IN_FORCE = """EXISTS (
    SELECT 1 FROM (
        SELECT address, implementation, block_number AS since,
               lead(block_number) OVER (PARTITION BY address ORDER BY block_number, log_index) AS until
        FROM ev_upgraded
    ) g
    WHERE g.implementation IN ({marks})
      AND (g.address = t.policy_address OR g.address IN {task_managers})
      AND coalesce(t.responded_block, t.created_block) >= g.since
      AND (g.until IS NULL OR coalesce(t.responded_block, t.created_block) < g.until))"""


def _in_force(implementations: tuple[str, ...], params: list[Any]) -> str:
    params.extend(implementations)
    marks = ", ".join("?" for _ in implementations)  # placeholders only; the values go to params
    return _IN_FORCE.format(marks=marks, task_managers=_TASK_MANAGERS)


REPLAY_JOIN = " LEFT JOIN replays r ON r.chain_id = t.chain_id AND r.task_id = t.task_id"
# One page's replay results by task id: an IN list the replays_task_id index answers (a join would scan replays).
PAGE_REPLAYS_SQL = "SELECT chain_id, task_id, result FROM replays WHERE task_id IN (SELECT unnest(?::VARCHAR[]))"


def _filtered(con: Con, f: DecisionFilter, join_replays: bool = True) -> tuple[bool, str, list[Any]]:
    """(has_replays, "FROM … WHERE …", params) shared by the count, the page and the export of one filter.

    join_replays=False leaves `replays` out unless the filter names a replay result: at millions of tasks that
    join is most of a count's time, and it changes no count (one replay row per task)."""
    names = table_names(con)
    has_replays = "replays" in names
    where, params = where_clause(f, has_replays, {"ev_upgraded", "ev_new_task_created", "meta"} <= names)
    join = REPLAY_JOIN if has_replays and (join_replays or f.replay) else ""
    return has_replays, f"FROM tasks t{join} {where}", params


def _order_by(f: DecisionFilter) -> str:
    return f"ORDER BY {SORTS[f.sort]} {'DESC' if f.desc else 'ASC'} NULLS LAST, t.task_id"


def decisions_count(con: Con, f: DecisionFilter) -> int:
    """How many decisions match the filter."""
    _, from_where, params = _filtered(con, f, join_replays=False)
    return int(query_rows(con, f"SELECT count(*) {from_where}", params)[0][0])


def decisions_page(con: Con, f: DecisionFilter, page: int, page_size: int) -> pd.DataFrame:
    """One page of matching decisions, sorted and paginated in the DB (LIMIT/OFFSET), with verdict-page links."""
    has_replays, from_where, params = _filtered(con, f, join_replays=False)
    limits = [int(page_size), int(max(page, 0)) * int(page_size)]
    if not has_replays:
        sql = f"SELECT {DECISION_COLS}, CAST(NULL AS VARCHAR) AS replay {from_where} {_order_by(f)} LIMIT ? OFFSET ?"
    elif f.replay:  # the filter itself needs every row's replay result
        sql = f"SELECT {DECISION_COLS}, r.result AS replay {from_where} {_order_by(f)} LIMIT ? OFFSET ?"
    else:  # the page's rows first (top-N over tasks alone), then the replay results of those rows only, by id
        sql = f"SELECT {DECISION_COLS}, t.chain_id AS _chain {from_where} {_order_by(f)} LIMIT ? OFFSET ?"
        df = query(con, sql, params + limits)
        found = (
            {(int(c), t): r for c, t, r in query_rows(con, PAGE_REPLAYS_SQL, [df["task_id"].tolist()])}
            if len(df)
            else {}
        )
        df["replay"] = [found.get((int(c), t)) for c, t in zip(df["_chain"], df["task_id"])]
        return decision_rows(con, df.drop(columns=["_chain"]))
    return decision_rows(con, query(con, sql, params + limits))


def facets(con: Con) -> dict[str, list[tuple[str, str]]]:
    """Filter choices: clients and policies as (address, label) — names from the deployment and the policies table."""
    doc = deployment_from_meta_safe(con) or {}
    clients = [r[0] for r in query_rows(con, "SELECT DISTINCT policy_client FROM tasks ORDER BY 1")]
    policies = (
        query_rows(
            con,
            "SELECT DISTINCT t.policy_address, p.name FROM (SELECT DISTINCT policy_address FROM tasks) t "
            "LEFT JOIN policies p ON p.policy_address = t.policy_address ORDER BY 1",
        )
        if "policies" in table_names(con)
        else [(r[0], None) for r in query_rows(con, "SELECT DISTINCT policy_address FROM tasks")]
    )
    return {
        "client": [(c, client_name_from(doc, c) or short(c)) for c in clients],
        "policy": [(a, str(n) if n else (policy_name_from(doc, a) or short(a))) for a, n in policies],
        "implementation": implementation_facet(con),
    }


def implementation_facet(con: Con) -> list[tuple[str, str]]:
    """(implementation, label) of every implementation the task manager and the policies have had, e.g.
    'task manager v2 · 0x0165…eb8f (since block 45)'; empty when no Upgraded is indexed."""
    names = table_names(con)
    if not {"ev_upgraded", "ev_new_task_created", "meta"} <= names:
        return []
    rows = query_rows(
        con,
        f"""
        SELECT u.implementation, u.address, row_number() OVER (PARTITION BY u.address ORDER BY u.block_number,
               u.log_index) AS n, u.block_number, u.address IN {_TASK_MANAGERS} AS is_tm
        FROM ev_upgraded u
        WHERE u.address IN {_TASK_MANAGERS} OR u.address IN (SELECT DISTINCT policy_address FROM tasks)
        ORDER BY is_tm DESC, u.address, u.block_number
        """,
    )
    doc = deployment_from_meta_safe(con) or {}
    out: dict[str, str] = {}
    for impl, proxy, n, block, is_tm in rows:
        who = "task manager" if is_tm else f"policy {policy_name_from(doc, proxy) or short(proxy)}"
        out.setdefault(impl, f"{who} v{n} · {short(impl)} (since block {int(block):,})")
    return list(out.items())


EXPORT_COLUMNS = (
    "t.chain_id, t.task_id, t.created_block, t.created_time, t.created_tx, t.policy_client, t.policy_address, "
    "t.policy_id, t.intent_from, t.intent_to, t.intent_value, t.function_signature, t.function_args_json, t.asset, "
    "t.amount_wei, t.amount_num, t.counterparty, t.responded_block, t.responded_time, t.allow, t.status, "
    "t.response_expire_block, t.spent_block, t.challenged_block, t.challenge_success, t.signer_count, "
    "t.non_signer_count, t.latency_respond_s, t.latency_spend_s"
)


def export_frame(con: Con, f: DecisionFilter, explain_missing: bool = True) -> pd.DataFrame:
    """Every decision matching the filter (no row cap), with the replay result and explanation sentence per row.

    The sentence is the audited one (`replays`, written by `lens audit`) when present; otherwise Lens explains the
    row now with the engine (slower: audit first for large exports).
    """
    has_replays, from_where, params = _filtered(con, f)
    extra = (
        ", r.result AS replay, r.sentence AS explanation"
        if has_replays
        else ", CAST(NULL AS VARCHAR) AS replay, CAST(NULL AS VARCHAR) AS explanation"
    )
    df = query(con, f"SELECT {EXPORT_COLUMNS}{extra} {from_where} {_order_by(f)}", params)
    if explain_missing and len(df):
        todo = df.index[df["explanation"].isna() & df["responded_block"].notna()]
        if len(todo):
            found = sentences_for(con, df.loc[todo, "task_id"].tolist())
            df.loc[todo, "explanation"] = df.loc[todo, "task_id"].map(lambda k: found.get(k, {}).get("sentence"))
            df.loc[todo, "replay"] = df.loc[todo, "task_id"].map(lambda k: found.get(k, {}).get("replay"))
        df.loc[df["responded_block"].isna(), "explanation"] = "No response yet: nothing to explain."
    return df


SENTENCE_ROWS_SQL = """
SELECT t.*, b.content AS source
FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash
WHERE t.task_id IN (SELECT unnest(?::VARCHAR[]))
"""


def sentences_for(con: Con, task_ids: list[str], chunk: int = 5000) -> dict[str, dict[str, str]]:
    """task_id → {"sentence", "replay"} from the engine, in the export's own time-limited worker process."""
    from app.engine.thread import audit_sentences

    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(task_ids), chunk):
        rows = [
            {k: (None if is_null(v) else v) for k, v in r.items()}
            for r in query(con, SENTENCE_ROWS_SQL, [task_ids[i : i + chunk]]).to_dict("records")
        ]
        out.update(audit_sentences(rows))  # its own time-limited worker: never the verdict pages' engine thread
    return out


def export_bytes(con: Con, f: DecisionFilter, fmt: str) -> bytes:
    """The filtered export as CSV or Parquet bytes."""
    df = export_frame(con, f)
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    if fmt == "parquet":
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise LensError(f"unknown export format {fmt!r}", "use csv or parquet")


def export_decisions(filter_params: dict[str, str], fmt: str) -> bytes:
    """The Decisions export for a download button: its own short-lived connection (it runs outside the render)."""
    return db.run_short(export_bytes, filter_from_params(filter_params), fmt)


# ---------------------------------------------------------------------------------------------
# Decision rows as every list shows them (overview, verdict lookup by address, the browser)


def decision_rows(con: Con, df: pd.DataFrame) -> pd.DataFrame:
    """Decision rows as the lists show them: client names, a verdict-page link and a verdict label instead of `allow`."""
    df = with_client_names(con, df)
    df.insert(0, "verdict_page", "/verdict?task=" + df["task_id"].astype(str))
    df["verdict"] = verdict_labels(df["allow"])
    return df.drop(columns=["allow"])


def with_client_names(con: Con, df: pd.DataFrame) -> pd.DataFrame:
    """Add a `client` column (deployment name of policy_client, else its short address); label assets (ETH, dUSD)."""
    doc = deployment_from_meta_safe(con) or {}
    names = {str((c or {}).get("address", "")).lower(): str(n) for n, c in (doc.get("clients") or {}).items()}
    if "policy_client" in df.columns:
        df.insert(
            int(df.columns.get_loc("policy_client")),
            "client",
            [names.get(str(a).lower()) or short(a) for a in df["policy_client"]],
        )
    if "asset" in df.columns:
        token = str((doc.get("contracts") or {}).get("token", ""))
        df["asset"] = [asset_label(a, token) for a in df["asset"]]
    return df
