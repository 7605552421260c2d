"""Every SQL string of the dashboard, and the small functions that run them (user values only as parameters)."""
from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from app.errors import LensError

Con = duckdb.DuckDBPyConnection

TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
HAS_TASKS_SQL = "SELECT EXISTS (SELECT 1 FROM tasks)"


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views in the main schema."""
    return {r[0] for r in query_rows(con, TABLES_SQL)}


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one parameterised SELECT on a per-call cursor (thread-safe for Streamlit sessions) → DataFrame."""
    cur = con.cursor()
    try:
        return cur.execute(sql, params or []).df()
    finally:
        cur.close()


def query_rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple]:
    """Run one parameterised SELECT → list of tuples (for scalars and small lookups)."""
    cur = con.cursor()
    try:
        return cur.execute(sql, params or []).fetchall()
    finally:
        cur.close()


def has_tasks(con: Con) -> bool:
    """Whether the DB holds a `tasks` table with at least one row."""
    return "tasks" in table_names(con) and bool(query_rows(con, HAS_TASKS_SQL)[0][0])


# ---------------------------------------------------------------------------------------------
# Sidebar: deployment facts and DB freshness

META_SQL = "SELECT key, value FROM meta"
FRESHNESS_SQL = """
SELECT c.last_block, c.updated_at, b.block_time
FROM (SELECT max(last_block) AS last_block, max(updated_at) AS updated_at FROM checkpoints) c
LEFT JOIN blocks b ON b.block_number = c.last_block
ORDER BY b.block_time DESC NULLS LAST
LIMIT 1
"""
LAST_TASK_SQL = "SELECT max(created_block), max(created_time) FROM tasks"


def meta(con: Con) -> dict[str, str]:
    """The `meta` key/value table as a dict (empty when the table does not exist yet)."""
    if "meta" not in table_names(con):
        return {}
    return {str(k): str(v) for k, v in query_rows(con, META_SQL)}


def freshness(con: Con) -> dict[str, Any]:
    """Last indexed block, when it was mined and when the checkpoint was written (None when unknown)."""
    names = table_names(con)
    out: dict[str, Any] = {"last_block": None, "block_time": None, "updated_at": None}
    if "checkpoints" in names and "blocks" in names:
        rows = query_rows(con, FRESHNESS_SQL)
        if rows and rows[0][0] is not None:
            out.update(last_block=rows[0][0], updated_at=rows[0][1], block_time=rows[0][2])
    if out["last_block"] is None and "tasks" in names:
        rows = query_rows(con, LAST_TASK_SQL)
        if rows and rows[0][0] is not None:
            out.update(last_block=rows[0][0], block_time=rows[0][1])
    return out


# ---------------------------------------------------------------------------------------------
# Presentation helpers: shape query results into text the pages print (pure, no SQL)


def age_text(when: Any, now: Any = None) -> str:
    """'42 s ago' / '3 min ago' / '5 h ago' / '2 d ago' for a UTC timestamp; '' when unknown."""
    if when is None or (isinstance(when, float) and pd.isna(when)):
        return ""
    try:
        ts = pd.Timestamp(when)
    except (TypeError, ValueError):
        return ""
    if pd.isna(ts):
        return ""
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    secs = (now_ts - ts).total_seconds()
    if secs < 0:
        return "just now"
    for limit, unit, div in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if secs < limit:
            return f"{int(secs // div)} {unit} ago"
    return f"{int(secs // 86400)} d ago"


def md_escape(text: Any) -> str:
    """Escape on-chain text for st.markdown so it shows literally (no HTML, links or emphasis)."""
    out = str(text)
    for ch in "\\`*_{}[]()<>#+-.!|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def md_code(text: Any) -> str:
    """On-chain or user text as a Markdown code span: shown literally, never a link or HTML."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def deployment_tables(doc: dict) -> dict[str, pd.DataFrame]:
    """The deployment document as tables: contracts (role → address), policies and clients."""
    contracts = pd.DataFrame(
        [{"role": k, "address": str(v)} for k, v in (doc.get("contracts") or {}).items()], columns=["role", "address"]
    )
    policies = pd.DataFrame(
        [
            {"policy": k, "address": str((v or {}).get("address", "")), "entrypoint": str((v or {}).get("entrypoint", "")),
             "code hash": str((v or {}).get("policy_code_hash", ""))}
            for k, v in (doc.get("policies") or {}).items()
        ],
        columns=["policy", "address", "entrypoint", "code hash"],
    )
    clients = pd.DataFrame(
        [{"client": k, "address": str((v or {}).get("address", "")), "policy": str((v or {}).get("policy", ""))}
         for k, v in (doc.get("clients") or {}).items()],
        columns=["client", "address", "policy"],
    )
    roles = pd.DataFrame([{"role": k, "address": str(v)} for k, v in (doc.get("roles") or {}).items()], columns=["role", "address"])
    return {"contracts": contracts, "policies": policies, "clients": clients, "roles": roles}


# ---------------------------------------------------------------------------------------------
# Overview

KPI_SQL = """
SELECT count(*) AS tasks,
       count(*) FILTER (WHERE allow) AS allowed,
       count(*) FILTER (WHERE NOT allow) AS denied,
       count(*) FILTER (WHERE spent_block IS NOT NULL) AS spent,
       count(*) FILTER (WHERE challenged_block IS NOT NULL) AS challenged,
       count(*) FILTER (WHERE responded_block IS NULL) AS awaiting,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       count(*) FILTER (WHERE allow AND challenged_block IS NULL AND responded_block >= ?) AS open_challenge,
       max(greatest(created_block, coalesce(responded_block, 0), coalesce(spent_block, 0))) AS last_block
FROM tasks
"""
LAST_BLOCK_SQL = "SELECT max(greatest(created_block, coalesce(responded_block, 0), coalesce(spent_block, 0))) FROM tasks"
LIVE_OPERATORS_SQL = "SELECT count(*) FROM operators WHERE deregistered_block IS NULL AND coalesce(stake_num, 0) > 0"
TIME_RANGE_SQL = "SELECT min(created_time), max(created_time) FROM tasks"
# The bucket width is chosen from a fixed list (never user text), passed as an INTERVAL parameter.
OVER_TIME_SQL = """
SELECT time_bucket(CAST(? AS INTERVAL), created_time) AS bucket,
       CASE WHEN allow THEN 'allowed' WHEN NOT allow THEN 'denied' ELSE 'awaiting response' END AS verdict,
       count(*) AS decisions
FROM tasks
GROUP BY ALL
ORDER BY bucket, verdict
"""
LATENCY_RANGE_SQL = """
SELECT approx_quantile(latency_respond_s, 0.99), approx_quantile(latency_spend_s, 0.99),
       approx_quantile(latency_respond_s, 0.5), approx_quantile(latency_spend_s, 0.5),
       approx_quantile(latency_respond_s, 0.95), approx_quantile(latency_spend_s, 0.95)
FROM tasks
"""
LATENCY_HIST_SQL = """
SELECT 'created → responded' AS stage, least(floor(latency_respond_s / ?), ?) AS bin, count(*) AS n
FROM tasks WHERE latency_respond_s IS NOT NULL GROUP BY ALL
UNION ALL
SELECT 'responded → spent' AS stage, least(floor(latency_spend_s / ?), ?) AS bin, count(*) AS n
FROM tasks WHERE latency_spend_s IS NOT NULL GROUP BY ALL
ORDER BY stage, bin
"""
LATEST_SQL = """
SELECT task_id, created_time, created_block, policy_client, intent_from, function_name, amount_num, asset,
       allow, status
FROM tasks
ORDER BY created_block DESC, task_id
LIMIT ?
"""
BUCKETS = (("1 minute", 60), ("10 minutes", 600), ("1 hour", 3600), ("6 hours", 21600), ("1 day", 86400), ("7 days", 604800))
LATENCY_BINS = 40


def challenge_window(con: Con) -> int:
    """Challenge window in blocks: the DB's meta value if recorded, else the devnet setting."""
    from app import settings

    try:
        return int(meta(con).get("challenge_window_blocks", ""))
    except ValueError:
        return int(settings.get("challenge_window_blocks"))


def kpis(con: Con) -> dict[str, Any]:
    """Headline numbers: tasks, allow/deny rate, spent, challenged, open challenge window, live operators."""
    last = query_rows(con, LAST_BLOCK_SQL)[0][0] or 0
    row = query(con, KPI_SQL, [int(last) - challenge_window(con)]).iloc[0]
    out = {k: (int(row[k]) if pd.notna(row[k]) else 0) for k in row.index}
    answered = out["allowed"] + out["denied"]
    out["allow_rate"] = out["allowed"] / answered if answered else None
    out["deny_rate"] = out["denied"] / answered if answered else None
    out["live_operators"] = int(query_rows(con, LIVE_OPERATORS_SQL)[0][0]) if "operators" in table_names(con) else 0
    return out


def decisions_over_time(con: Con) -> pd.DataFrame:
    """Decisions per time bucket and verdict (bucket width picked so the chart has ≤ ~200 bars)."""
    lo, hi = query_rows(con, TIME_RANGE_SQL)[0]
    if lo is None:
        return pd.DataFrame(columns=["bucket", "verdict", "decisions"])
    span = max((pd.Timestamp(hi) - pd.Timestamp(lo)).total_seconds(), 1.0)
    width = next((name for name, secs in BUCKETS if span / secs <= 200), BUCKETS[-1][0])
    return query(con, OVER_TIME_SQL, [width])


def latency_histograms(con: Con) -> dict[str, Any]:
    """{"bins": (stage, start_s, end_s, n) up to p99 with the overflow in the last bin, "quantiles": stage → (p50, p95)}."""
    r99, s99, r50, s50, r95, s95 = query_rows(con, LATENCY_RANGE_SQL)[0]
    wr = max(float(r99 or 1) / LATENCY_BINS, 1e-3)
    ws = max(float(s99 or 1) / LATENCY_BINS, 1e-3)
    df = query(con, LATENCY_HIST_SQL, [wr, LATENCY_BINS, ws, LATENCY_BINS])
    width = df["stage"].map({"created → responded": wr, "responded → spent": ws})
    df["start_s"] = df["bin"] * width
    df["end_s"] = df["start_s"] + width
    quantiles = {"created → responded": (r50, r95), "responded → spent": (s50, s95)}
    return {"bins": df[["stage", "start_s", "end_s", "n"]], "quantiles": quantiles}


def latest_decisions(con: Con, limit: int = 25) -> pd.DataFrame:
    """The newest decisions, with a link to each one's verdict page."""
    return decision_rows(con, query(con, LATEST_SQL, [int(limit)]))


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
        df.insert(int(df.columns.get_loc("policy_client")), "client",
                  [names.get(str(a).lower()) or short(a) for a in df["policy_client"]])
    if "asset" in df.columns:
        token = str((doc.get("contracts") or {}).get("token", ""))
        df["asset"] = [asset_label(a, token) for a in df["asset"]]
    return df


def verdict_labels(allow: pd.Series) -> pd.Series:
    """allowed / denied / awaiting response from a nullable BOOLEAN column."""
    return allow.map(lambda a: "awaiting response" if a is None or pd.isna(a) else ("allowed" if a else "denied"))

# ---------------------------------------------------------------------------------------------
# Verdict: one decision, looked up by task id, tx hash or address

TASK_SQL = "SELECT * FROM tasks WHERE task_id = ? LIMIT 1"
POLICY_SQL = "SELECT * FROM policies WHERE policy_address = ? LIMIT 1"
BLOB_SQL = "SELECT content FROM blobs WHERE hash = ? LIMIT 1"
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
REPLAY_SQL = "SELECT result, replayed_allow, reason, deny_json, sentence, replayed_at FROM replays WHERE task_id = ? LIMIT 1"
FIND_TASK_SQL = "SELECT task_id FROM tasks WHERE task_id = ? LIMIT 1"
FIND_TX_SQL = "SELECT task_id FROM tasks WHERE created_tx = ? OR responded_tx = ? ORDER BY created_block DESC LIMIT 200"
ADDRESS_COUNT_SQL = "SELECT count(*) FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?"
ADDRESS_SQL = """
SELECT task_id, created_time, created_block, policy_client, intent_from, counterparty, function_name, amount_num, asset, allow, status
FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?
ORDER BY created_block DESC, task_id LIMIT ?
"""
HEX64 = re.compile(r"^0x[0-9a-f]{64}$")
HEX40 = re.compile(r"^0x[0-9a-f]{40}$")


def classify_lookup(text: str) -> tuple[str, str]:
    """('hash'|'address'|'invalid'|'empty', normalised text) for what a person typed into the lookup box."""
    q = (text or "").strip().lower()
    if not q:
        return "empty", q
    if not q.startswith("0x"):
        q = "0x" + q
    if HEX64.match(q):
        return "hash", q
    if HEX40.match(q):
        return "address", q
    return "invalid", (text or "").strip()


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


def _row_dict(df: pd.DataFrame) -> dict[str, Any] | None:
    if df.empty:
        return None
    return {k: (None if _isna(v) else v) for k, v in df.iloc[0].to_dict().items()}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def verdict(con: Con, task_id: str) -> dict[str, Any] | None:
    """Everything the verdict page shows about one task (None if unknown): row, policy, version, source, signers, ..."""
    task = _row_dict(query(con, TASK_SQL, [task_id]))
    if task is None:
        return None
    names = table_names(con)
    policy = _row_dict(query(con, POLICY_SQL, [task["policy_address"]])) or {}
    code_hash = task.get("policy_code_hash") or policy.get("policy_code_hash")
    blob = query_rows(con, BLOB_SQL, [code_hash]) if code_hash else []
    version = _row_dict(query(con, TASK_VERSION_SQL, [task["policy_client"], task["policy_id"]])) if task.get("policy_id") else None
    replay = _row_dict(query(con, REPLAY_SQL, [task_id])) if "replays" in names else None
    doc = deployment_from_meta_safe(con)
    return {
        "task": task,
        "policy": policy,
        "policy_name": policy.get("name") or _policy_name_from(doc, task["policy_address"]) or "",
        "client_name": _client_name_from(doc, task["policy_client"]),
        "token": ((doc or {}).get("contracts") or {}).get("token", ""),
        "source": blob[0][0] if blob else None,
        "code_hash": code_hash,
        "version": version,
        "signers": query(con, SIGNERS_SQL, [task_id]) if "task_signers" in names else pd.DataFrame(),
        "challenges": query(con, CHALLENGES_SQL, [task_id]) if "challenges" in names else pd.DataFrame(),
        "replay": replay,
        "response_window": _meta_int(con, "response_window_blocks"),
    }


def deployment_from_meta_safe(con: Con) -> dict | None:
    """The deployment naming this DB's contracts and clients: its meta, else the deployment file of the same chain."""
    from app.db import choose_deployment, deployment_from_file, deployment_from_meta

    return choose_deployment(deployment_from_meta(meta(con)), deployment_from_file())


def _meta_int(con: Con, key: str) -> int | None:
    try:
        return int(meta(con).get(key, ""))
    except ValueError:
        return None


def _policy_name_from(doc: dict | None, address: str) -> str:
    for name, p in ((doc or {}).get("policies") or {}).items():
        if str((p or {}).get("address", "")).lower() == str(address).lower():
            return str(name)
    return ""


def _client_name_from(doc: dict | None, address: str) -> str:
    for name, c in ((doc or {}).get("clients") or {}).items():
        if str((c or {}).get("address", "")).lower() == str(address).lower():
            return str(name)
    return ""


def asset_label(asset: str | None, token: str = "") -> str:
    """'ETH', 'dUSD' for the devnet token, else a shortened token address."""
    if not asset or asset == "ETH":
        return "ETH"
    if token and asset.lower() == token.lower():
        return "dUSD"
    return f"token {asset[:8]}…{asset[-4:]}"


# an amount this large (≥ 2^255 wei in 18-decimal units) is an "infinite" approval, not a quantity
UNLIMITED_UNITS = 2**255 / 1e18


def fmt_amount(amount_num: Any, asset: str | None, token: str = "") -> str:
    """'1,234.56 dUSD' from the DOUBLE amount column (the exact wei goes in a hover)."""
    if amount_num is None or _isna(amount_num):
        return "—"
    value = float(amount_num)
    if value >= UNLIMITED_UNITS:
        return f"unlimited {asset_label(asset, token)}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".") if value < 1000 else f"{value:,.2f}"
    return f"{text} {asset_label(asset, token)}"


def short(addr: Any, n: int = 6) -> str:
    """0x1234…abcd for long hex strings; other values unchanged."""
    s = "" if addr is None else str(addr)
    return f"{s[:n + 2]}…{s[-4:]}" if s.startswith("0x") and len(s) > n + 8 else s


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
        rows.append((f"responded: {verdict_word}", t["responded_block"], t.get("responded_time"),
                     f"{int(t.get('signer_count') or 0)} signers, {int(t.get('non_signer_count') or 0)} non-signers · tx {t.get('responded_tx') or '—'}"))
        if t.get("spent_block") is not None:
            rows.append(("attestation spent", t["spent_block"], t.get("spent_time"), "the policy client executed the intent"))
        elif t.get("status") == "expired":
            rows.append(("expired", t.get("response_expire_block"), None, "the allow was never spent before its expiry block"))
        elif t.get("allow"):
            rows.append(("valid, unspent", None, None, f"spendable until block {t.get('response_expire_block')}"))
    for _, c in (data.get("challenges") if data.get("challenges") is not None else pd.DataFrame()).iterrows():
        rows.append(("challenged " + ("successfully" if c["success"] else "unsuccessfully"), c["block_number"], c["block_time"],
                     f"by {c['challenger']}"))
    df = pd.DataFrame(rows, columns=["stage", "block", "time", "detail"])
    df["block"] = df["block"].astype("Int64")
    return df


def explain_task(con: Con, task_id: str) -> dict[str, Any]:
    """Replay and explain one task with app.engine → {'state', 'replay', 'reason', 'explanation', 'replayed_allow'}.

    state: 'ok' | 'no_response' (nothing to replay yet) | 'cannot_replay' (source or inputs missing/undecodable).
    """
    data = verdict(con, task_id)
    if data is None:
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": "unknown task", "explanation": None}
    return explain_record(data)


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
    """Replay/explain from a verdict() record (separate so exports can reuse it without a second lookup)."""
    return on_engine_thread(_explain_record, data)


def _explain_record(data: dict[str, Any]) -> dict[str, Any]:
    t = data["task"]
    if t.get("responded_block") is None:
        return {"state": "no_response", "replay": "", "reason": "the task has no response yet", "explanation": None}
    if not data.get("source"):
        return {"state": "cannot_replay", "replay": "cannot_replay",
                "reason": f"the policy source (code hash {data.get('code_hash') or 'unknown'}) is not in the DB", "explanation": None}
    from app import engine, settings

    try:
        task = engine.task_from_row(t, data["source"])
    except (LensError, ValueError, TypeError, KeyError) as err:
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": f"the intent cannot be rebuilt: {err}",
                "explanation": None}
    try:
        # the time limit keeps a runaway policy from stalling the page; explanations get 5x one evaluation's limit
        exp = engine.explain(task, timeout_ms=int(settings.get("eval_timeout_ms")) * 5)
    except LensError as err:
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": str(err), "explanation": None}
    if exp.replay == "cannot_replay":
        return {"state": "cannot_replay", "replay": "cannot_replay", "reason": exp.replay_reason or exp.error or "",
                "explanation": None}
    return {"state": "ok", "replay": exp.replay, "reason": exp.replay_reason, "explanation": exp,
            "replayed_allow": exp.replayed_allow, "deny": exp.deny}


# ---------------------------------------------------------------------------------------------
# Verdict presentation: pure shaping of a verdict() / explain record into tables and text


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
        ("from (agent)", t.get("intent_from")), ("to", t.get("intent_to")), ("policy client", client),
        ("call", call), ("arguments", ", ".join(str(a) for a in args) if args else "—"),
        ("counterparty", t.get("counterparty") or "—"),
        ("amount", f"{fmt_amount(t.get('amount_num'), t.get('asset'), data.get('token', ''))} = {t.get('amount_wei') or '0'} wei"),
        ("native value (wei)", t.get("intent_value") or "0"), ("chain id", str(t.get("intent_chain_id"))),
        ("calldata", t.get("intent_data") or "0x"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


def intent_sentence(data: dict[str, Any]) -> str:
    """'0xab…cd asked treasury-alpha to transfer 12.5 dUSD to 0x12…34' (plain text, never HTML)."""
    t = data["task"]
    who = short(t.get("intent_from"))
    client = data.get("client_name") or short(t.get("policy_client"))
    amount = fmt_amount(t.get("amount_num"), t.get("asset"), data.get("token", ""))
    fn = t.get("function_name") or ""
    verb = {"": "send", "transfer": "transfer", "approve": "approve a spend of", "transferFrom": "move"}.get(fn, f"call {fn} with")
    return f"{who} asked {client} to {verb} {amount} to {short(t.get('counterparty') or t.get('intent_to'))}"


def policy_facts(data: dict[str, Any]) -> pd.DataFrame:
    """The policy in force as (field, value) rows: name, address, version of params, entrypoint, hashes."""
    t, p, v = data["task"], data.get("policy") or {}, data.get("version")
    version = "unknown (no PolicySet indexed for this policy id)"
    if v:
        version = (f"#{int(v['version_no'])} of {int(v['versions'])} for this client, set at block {int(v['block_number']):,} "
                   f"by {v.get('sender')}" + (" (current)" if v.get("valid_to_block") is None else f" (until block {int(v['valid_to_block']):,})"))
    rows = [("policy", data.get("policy_name") or "—"), ("policy address", t.get("policy_address")),
            ("policy version", p.get("version") or "—"), ("params version", version), ("policy id", t.get("policy_id")),
            ("entrypoint", t.get("entrypoint") or p.get("entrypoint") or "—"), ("code hash", data.get("code_hash") or "—"),
            ("policy CID", p.get("policy_cid") or "—"), ("schema CID", p.get("schema_cid") or "—")]
    return pd.DataFrame(rows, columns=["field", "value"]).astype(str)


def parsed_json(text: Any, default: Any) -> Any:
    """json.loads or the default for NULL / invalid text."""
    if text is None or _isna(text):
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def annotated_source(source: str, reached: tuple[int, ...] = (), failed: tuple[int, ...] = ()) -> str:
    """The Rego source with a gutter: '✗' failing condition, '•' line reached, ' ' not reached."""
    reached_s, failed_s = set(reached), set(failed)
    lines = source.splitlines()
    width = len(str(len(lines)))
    out = []
    for i, line in enumerate(lines, start=1):
        mark = "✗" if i in failed_s else ("•" if i in reached_s else " ")
        out.append(f"{mark} {i:>{width}} │ {line}")
    return "\n".join(out)


def rule_tree_text(node: Any, depth: int = 0, limit: int = 200) -> str:
    """The explanation's rule tree as indented text lines: name = value (line)."""
    if node is None:
        return ""
    lines: list[str] = []

    def walk(n: Any, d: int) -> None:
        if len(lines) >= limit:
            return
        value = n.value if n.state in ("value", "true", "false") else n.state
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        if len(text) > 100:
            text = text[:97] + "…"
        lines.append(f"{'  ' * d}{'└ ' if d else ''}{n.name} = {text}   (line {n.line})")
        for child in n.children:
            walk(child, d + 1)

    walk(node, depth)
    return "\n".join(lines)


def failing_conditions(exp: Any, decisive: bool) -> pd.DataFrame:
    """For every rule body that failed and did (decisive) or did not decide the verdict: rule, line, the first
    failing condition and its terms' values. The non-decisive ones are mostly deny rules that did not fire."""
    rows = []
    for b in exp.bodies:
        if b.succeeded is False and b.failed_at is not None and b.decisive == decisive:
            terms = "; ".join(
                f"{t.text} = {json.dumps(t.value, default=str) if t.defined else 'undefined'}" + (f" (+{t.more} more)" if t.more else "")
                for t in b.failed_at.terms)
            rows.append({"rule": b.head or b.rule, "line": b.failed_at.line, "failed condition": b.failed_at.text, "values": terms})
    return pd.DataFrame(rows, columns=["rule", "line", "failed condition", "values"])


def counterfactuals(exp: Any) -> pd.DataFrame:
    """The explanation's counterfactuals: param, current value, value that flips the verdict, and the sentence."""
    rows = [{"param": c.param, "current": json.dumps(c.current, default=str), "would need": json.dumps(c.value, default=str),
             "verdict then": "allowed" if c.flips_to else "denied", "what it means": c.text}
            for c in exp.counterfactuals]
    return pd.DataFrame(rows, columns=["param", "current", "would need", "verdict then", "what it means"])

# ---------------------------------------------------------------------------------------------
# Decisions browser: filters (round-trip through the query string), paging and sorting in the DB, exports

STATUSES = ("created", "allowed", "denied", "spent", "expired", "challenged")
VERDICTS = ("allowed", "denied", "awaiting")
REPLAY_RESULTS = ("match", "mismatch", "cannot_replay", "not_audited")
# Sort keys map to fixed SQL expressions: what a URL says never becomes SQL text.
SORTS = {"block": "t.created_block", "time": "t.created_time", "amount": "t.amount_num", "status": "t.status",
         "latency": "t.latency_respond_s", "client": "t.policy_client"}
DECISION_COLS = ("t.task_id, t.created_time, t.created_block, t.policy_client, t.policy_address, t.intent_from, t.counterparty, "
                 "t.function_name, t.amount_num, t.amount_wei, t.asset, t.allow, t.status, t.latency_respond_s")
_LIST_KEYS = ("client", "policy", "verdict", "status", "replay")


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
        client=_addr_list(g("client")), policy=_addr_list(g("policy")), sender=sender if sender_kind == "address" else "",
        verdict=_choices(g("verdict"), VERDICTS), status=_choices(g("status"), STATUSES), replay=_choices(g("replay"), REPLAY_RESULTS),
        time_from=_date_or_empty(g("from")), time_to=_date_or_empty(g("to")), block_from=_int_or(g("block_from")),
        block_to=_int_or(g("block_to")), amount_min=_float_or(g("amount_min")), amount_max=_float_or(g("amount_max")),
        sort=sort, desc=str(g("dir") or "desc") != "asc")


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


def where_clause(f: DecisionFilter, has_replays: bool) -> tuple[str, list[Any]]:
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
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _filtered(con: Con, f: DecisionFilter) -> tuple[bool, str, list[Any]]:
    """(has_replays, "FROM … WHERE …", params) shared by the count, the page and the export of one filter."""
    has_replays = "replays" in table_names(con)
    where, params = where_clause(f, has_replays)
    join = " LEFT JOIN replays r ON r.chain_id = t.chain_id AND r.task_id = t.task_id" if has_replays else ""
    return has_replays, f"FROM tasks t{join} {where}", params


def _order_by(f: DecisionFilter) -> str:
    return f"ORDER BY {SORTS[f.sort]} {'DESC' if f.desc else 'ASC'} NULLS LAST, t.task_id"


def decisions_count(con: Con, f: DecisionFilter) -> int:
    """How many decisions match the filter."""
    _, from_where, params = _filtered(con, f)
    return int(query_rows(con, f"SELECT count(*) {from_where}", params)[0][0])


def decisions_page(con: Con, f: DecisionFilter, page: int, page_size: int) -> pd.DataFrame:
    """One page of matching decisions, sorted and paginated in the DB (LIMIT/OFFSET), with verdict-page links."""
    has_replays, from_where, params = _filtered(con, f)
    replay_col = ", r.result AS replay" if has_replays else ", CAST(NULL AS VARCHAR) AS replay"
    sql = f"SELECT {DECISION_COLS}{replay_col} {from_where} {_order_by(f)} LIMIT ? OFFSET ?"
    return decision_rows(con, query(con, sql, params + [int(page_size), int(max(page, 0)) * int(page_size)]))


def facets(con: Con) -> dict[str, list[tuple[str, str]]]:
    """Filter choices: clients and policies as (address, label) — names from the deployment and the policies table."""
    doc = deployment_from_meta_safe(con) or {}
    clients = [r[0] for r in query_rows(con, "SELECT DISTINCT policy_client FROM tasks ORDER BY 1")]
    policies = query_rows(con, "SELECT DISTINCT t.policy_address, p.name FROM (SELECT DISTINCT policy_address FROM tasks) t "
                               "LEFT JOIN policies p ON p.policy_address = t.policy_address ORDER BY 1") \
        if "policies" in table_names(con) else [(r[0], None) for r in query_rows(con, "SELECT DISTINCT policy_address FROM tasks")]
    return {
        "client": [(c, _client_name_from(doc, c) or short(c)) for c in clients],
        "policy": [(a, str(n) if n else (_policy_name_from(doc, a) or short(a))) for a, n in policies],
    }


EXPORT_COLUMNS = ("t.chain_id, t.task_id, t.created_block, t.created_time, t.created_tx, t.policy_client, t.policy_address, "
                  "t.policy_id, t.intent_from, t.intent_to, t.intent_value, t.function_signature, t.function_args_json, t.asset, "
                  "t.amount_wei, t.amount_num, t.counterparty, t.responded_block, t.responded_time, t.allow, t.status, "
                  "t.response_expire_block, t.spent_block, t.challenged_block, t.challenge_success, t.signer_count, "
                  "t.non_signer_count, t.latency_respond_s, t.latency_spend_s")


def export_frame(con: Con, f: DecisionFilter, explain_missing: bool = True) -> pd.DataFrame:
    """Every decision matching the filter (no row cap), with the replay result and explanation sentence per row.

    The sentence is the audited one (`replays`, written by `lens audit`) when present; otherwise Lens explains the
    row now with the engine (slower: audit first for large exports).
    """
    has_replays, from_where, params = _filtered(con, f)
    extra = ", r.result AS replay, r.sentence AS explanation" if has_replays else \
        ", CAST(NULL AS VARCHAR) AS replay, CAST(NULL AS VARCHAR) AS explanation"
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
SELECT t.chain_id, t.task_id, t.intent_from, t.intent_to, t.intent_value, t.intent_data, t.intent_chain_id,
       t.function_signature, t.params_json, t.policy_data_json, t.entrypoint, t.allow, t.evaluation_result,
       t.policy_code_hash, t.policy_client, t.status, b.content AS source
FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash
WHERE t.task_id IN (SELECT unnest(?::VARCHAR[]))
"""


def sentences_for(con: Con, task_ids: list[str], chunk: int = 5000) -> dict[str, dict[str, str]]:
    """task_id → {'sentence', 'replay'} computed with the engine (one thread; compiled once per policy)."""
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(task_ids), chunk):
        rows = query(con, SENTENCE_ROWS_SQL, [task_ids[i:i + chunk]]).to_dict("records")
        out.update(on_engine_thread(_sentences, rows))
    return out


def _sentences(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The engine's audit sentence per row (replay + plain sentence, no probing: the fast path `lens audit` uses)."""
    from app import engine
    from app.engine.replay import audit_one

    out = {}
    for r in rows:
        r = {k: (None if _isna(v) else v) for k, v in r.items()}
        try:
            rep, sentence = audit_one(engine.task_from_row(r, r.get("source")))
            out[r["task_id"]] = {"sentence": sentence, "replay": rep.result}
        except (LensError, ValueError, TypeError, KeyError) as e:
            out[r["task_id"]] = {"sentence": f"Cannot replay this decision: {e}.", "replay": "cannot_replay"}
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

# ---------------------------------------------------------------------------------------------
# Policies: catalog, source, params schema with current values, rules summary, params history with diffs

CATALOG_SQL = """
WITH use AS (
  SELECT policy_address, count(*) AS tasks, count(*) FILTER (WHERE NOT allow) AS denied, count(*) FILTER (WHERE allow IS NOT NULL) AS answered
  FROM tasks GROUP BY policy_address
)
SELECT coalesce(p.policy_address, use.policy_address) AS policy_address, p.name, p.version, p.entrypoint, p.policy_cid,
       p.schema_cid, p.policy_code_hash, coalesce(use.tasks, 0) AS tasks,
       CASE WHEN use.answered > 0 THEN use.denied / use.answered END AS deny_rate
FROM policies p FULL OUTER JOIN use ON use.policy_address = p.policy_address
ORDER BY tasks DESC, policy_address
"""
POLICY_VERSIONS_SQL = """
SELECT client, policy_id, block_number, block_time, tx_hash, sender, params_json, expire_after, valid_from_block, valid_to_block
FROM policy_versions WHERE policy_address = ? ORDER BY client, block_number, tx_hash
"""
POLICY_CLIENTS_SQL = "SELECT DISTINCT policy_client FROM tasks WHERE policy_address = ? ORDER BY 1"


def policy_catalog(con: Con) -> pd.DataFrame:
    """Every policy with its entrypoint, CID, code hash, clients and usage (name from metadata/deployment when known)."""
    if "policies" not in table_names(con):
        df = query(con, "SELECT policy_address, count(*) AS tasks FROM tasks GROUP BY 1 ORDER BY 2 DESC")
        for col in ("name", "version", "entrypoint", "policy_cid", "schema_cid", "policy_code_hash", "deny_rate"):
            df[col] = None
    else:
        df = query(con, CATALOG_SQL)
    doc = deployment_from_meta_safe(con) or {}
    df["name"] = [n if isinstance(n, str) and n else (_policy_name_from(doc, a) or short(a))
                  for n, a in zip(df["name"], df["policy_address"])]
    clients: dict[str, list[str]] = {}
    if "policy_versions" in table_names(con):
        for client, addr in query_rows(con, "SELECT DISTINCT client, policy_address FROM policy_versions"):
            clients.setdefault(addr, []).append(_client_name_from(doc, client) or short(client))
    df["clients"] = [", ".join(sorted(clients.get(a, []))) for a in df["policy_address"]]
    return df


def policy_detail(con: Con, policy_address: str) -> dict[str, Any]:
    """One policy: its catalog row, Rego source (or None), params versions per client, local metadata and schema."""
    catalog = policy_catalog(con)
    row = catalog[catalog["policy_address"] == policy_address]
    info = _row_dict(row) or {"policy_address": policy_address, "name": short(policy_address)}
    code_hash = info.get("policy_code_hash")
    if not code_hash:
        hashes = query_rows(con, "SELECT policy_code_hash FROM tasks WHERE policy_address = ? AND policy_code_hash IS NOT NULL LIMIT 1",
                            [policy_address])
        code_hash = hashes[0][0] if hashes else None
    blob = query_rows(con, BLOB_SQL, [code_hash]) if code_hash and "blobs" in table_names(con) else []
    versions = query(con, POLICY_VERSIONS_SQL, [policy_address]) if "policy_versions" in table_names(con) else pd.DataFrame()
    doc = deployment_from_meta_safe(con) or {}
    if len(versions):
        versions.insert(1, "client_name", [_client_name_from(doc, c) or short(c) for c in versions["client"]])
    meta_doc, schema_doc = local_policy_files(str(info.get("name") or ""), info.get("entrypoint"))
    return {"info": info, "code_hash": code_hash, "source": blob[0][0] if blob else None, "versions": versions,
            "metadata": meta_doc, "schema": schema_doc}


def local_policy_files(name: str, entrypoint: Any = None) -> tuple[dict, dict]:
    """(metadata.json, params_schema.json) of data/policies/<name> (or the entrypoint's package), else empty dicts."""
    from app.engine.explain import POLICIES_DIR, local_metadata

    for candidate in (name, str(entrypoint or "").split(".")[0]):
        if candidate and re.match(r"^[A-Za-z0-9_\-]+$", candidate) and (POLICIES_DIR / candidate).is_dir():
            return local_metadata(candidate)
    return {}, {}


def current_params(versions: pd.DataFrame) -> dict[str, dict]:
    """client name → params document of its current (latest) version."""
    out: dict[str, dict] = {}
    if versions is None or versions.empty:
        return out
    for _, v in versions.sort_values("block_number").iterrows():
        out[str(v["client_name"])] = parsed_json(v["params_json"], {})
    return out


def params_table(schema_doc: dict, versions: pd.DataFrame) -> pd.DataFrame:
    """Params as rows: name, type, description, then one column per client with its current value (exact text)."""
    current = current_params(versions)
    props = (schema_doc or {}).get("properties") or {}
    names = list(props) + sorted({k for doc in current.values() for k in doc} - set(props))
    rows = []
    for name in names:
        spec = props.get(name) or {}
        typ = spec.get("type") or _json_type(next((d[name] for d in current.values() if name in d), None))
        if spec.get("unit"):
            typ = f"{typ} ({spec['unit']})"
        row = {"param": name, "type": str(typ), "description": str(spec.get("description") or "—"),
               "required": "yes" if name in ((schema_doc or {}).get("required") or []) else ""}
        for client, doc in current.items():
            row[client] = _value_text(doc[name]) if name in doc else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _json_type(v: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "—")


def _value_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def rules_summary(metadata: dict, source: str | None) -> pd.DataFrame:
    """Deny reasons in plain language with the params each depends on (metadata), else the reasons found in the source."""
    reasons = (metadata or {}).get("reasons") or {}
    if reasons:
        return pd.DataFrame([{"deny reason": k, "what it means": str(v.get("text", "")),
                              "depends on params": ", ".join(v.get("params") or []) or "—"} for k, v in reasons.items()])
    found = sorted(set(re.findall(r'deny\s+contains\s+"([^"]+)"', source or "")))
    return pd.DataFrame([{"deny reason": r, "what it means": r.replace("_", " "), "depends on params": "—"} for r in found],
                        columns=["deny reason", "what it means", "depends on params"])


def params_diff(old: dict | None, new: dict) -> str:
    """'max_tx_wei: 1000 → 2500; + allowed_functions = [...]; − halt' — what one PolicySet changed."""
    if old is None:
        return "initial params: " + ", ".join(f"{k} = {_value_text(v)}" for k, v in new.items())
    parts = []
    for k in new:
        if k not in old:
            parts.append(f"+ {k} = {_value_text(new[k])}")
        elif old[k] != new[k]:
            parts.append(f"{k}: {_value_text(old[k])} → {_value_text(new[k])}")
    parts += [f"− {k}" for k in old if k not in new]
    return "; ".join(parts) or "no change (same params, new policy id)"


def version_history(versions: pd.DataFrame) -> pd.DataFrame:
    """Params versions per client, each with the diff from that client's previous version."""
    if versions is None or versions.empty:
        return pd.DataFrame(columns=["client_name", "block_number", "block_time", "sender", "change", "tx_hash", "policy_id"])
    rows = []
    for client, part in versions.sort_values(["client", "block_number"]).groupby("client", sort=False):
        prev = None
        for _, v in part.iterrows():
            doc = parsed_json(v["params_json"], {})
            rows.append({"client_name": v["client_name"], "block_number": v["block_number"], "block_time": v["block_time"],
                         "sender": v["sender"], "change": params_diff(prev, doc), "expire_after": v["expire_after"],
                         "tx_hash": v["tx_hash"], "policy_id": v["policy_id"]})
            prev = doc
    return pd.DataFrame(rows).sort_values("block_number", ascending=False, kind="stable")

# --- engine queries ---
# (owned by the engine helper: SQL used by app.engine — replay/explain/what-if/audit)
ENGINE_TASK_SELECT = """
SELECT t.*, b.content AS policy_source
FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash
"""
ENGINE_TASK_BY_KEY_SQL = ENGINE_TASK_SELECT + """
WHERE t.task_id = lower(?) OR t.created_tx = lower(?) OR t.responded_tx = lower(?)
ORDER BY t.created_block
LIMIT 1
"""
ENGINE_TASKS_SQL = ENGINE_TASK_SELECT + """
ORDER BY t.created_block, t.task_id
LIMIT ?
"""
ENGINE_NEAREST_KEY_SQL = """
SELECT key, levenshtein(key, lower(?)) AS distance
FROM (SELECT task_id AS key FROM tasks UNION ALL SELECT created_tx FROM tasks WHERE created_tx IS NOT NULL
      UNION ALL SELECT responded_tx FROM tasks WHERE responded_tx IS NOT NULL)
ORDER BY starts_with(key, lower(substr(?, 1, 10))) DESC, distance, key
LIMIT 1
"""
ENGINE_REPLAYS_DELETE_SQL = "DELETE FROM replays WHERE (chain_id, task_id) IN (SELECT chain_id, task_id FROM replay_rows)"
ENGINE_REPLAYS_INSERT_SQL = "INSERT INTO replays BY NAME SELECT * FROM replay_rows"
# --- end engine queries ---
