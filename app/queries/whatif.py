"""What-if queries: the scenario (to and from URL params), policies and clients to pick, params in force, the
decisions to re-run, and the flips shaped into the frames the page and the CLI show."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from app.engine.replay import TaskRecord, task_from_row
from app.engine.whatif import Baseline, Change, PartitionResult, cache_tag, is_wei, parse_value, schema_for
from app.errors import LensError
from app.queries.base import (
    Con,
    classify_lookup,
    client_name_from,
    deployment_from_meta_safe,
    query,
    query_rows,
    table_names,
)
from app.queries.policies import local_policy_files, policy_catalog
from app.text import short

# The what-if's own cache: each decision's evaluation inputs as JSON and its baseline verdict, valid only for the
# same code hash, entrypoint and params and the same engine code (cache_tag). Never chain data.
CACHE_TABLE = "whatif_baseline"
CACHE_DDL = f"""
CREATE TABLE IF NOT EXISTS {CACHE_TABLE} (
  chain_id BIGINT, task_id VARCHAR, engine VARCHAR, policy_code_hash VARCHAR, entrypoint VARCHAR, params_json VARCHAR,
  input_json VARCHAR, eval_params_json VARCHAR, wasm_json VARCHAR, allow BOOLEAN, deny_json VARCHAR, error VARCHAR,
  PRIMARY KEY (chain_id, task_id))
"""
CACHE_COLUMNS = ", c.input_json AS c_input, c.eval_params_json AS c_params, c.wasm_json AS c_wasm, c.allow AS c_allow, c.deny_json AS c_deny, c.error AS c_error"
CACHE_JOIN = f"""
LEFT JOIN {CACHE_TABLE} c ON c.chain_id = t.chain_id AND c.task_id = t.task_id AND c.engine = $engine
  AND c.policy_code_hash IS NOT DISTINCT FROM t.policy_code_hash AND c.entrypoint IS NOT DISTINCT FROM t.entrypoint
  AND c.params_json IS NOT DISTINCT FROM t.params_json
"""
DECISIONS_SQL = """
SELECT t.chain_id, t.task_id, t.policy_client, t.created_block, t.created_time, t.intent_from, t.intent_to,
       t.intent_value, t.intent_data, t.intent_chain_id, t.function_signature, t.entrypoint, t.policy_code_hash,
       t.params_json, t.policy_data_json, t.evaluation_result, t.allow, t.status, t.challenge_success,
       b.content AS policy_source {cache_columns}
FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash {cache_join}
WHERE t.policy_address = $policy AND t.allow IS NOT NULL
  AND ($client IS NULL OR t.policy_client = $client)
  AND ($from IS NULL OR t.created_block >= $from) AND ($to IS NULL OR t.created_block <= $to) {after}
ORDER BY t.created_block, t.task_id {limit}
"""
# keyset paging in the decisions' own order: a page starts after the last (block, task id) of the one before
AFTER_SQL = "AND (t.created_block > $after_block OR (t.created_block = $after_block AND t.task_id > $after_id))"
COUNT_SQL = """
SELECT count(*) FROM tasks t
WHERE t.policy_address = $policy AND t.allow IS NOT NULL
  AND ($client IS NULL OR t.policy_client = $client)
  AND ($from IS NULL OR t.created_block >= $from) AND ($to IS NULL OR t.created_block <= $to)
"""
CLIENTS_SQL = """
SELECT policy_client AS client, count(*) AS decisions FROM tasks
WHERE policy_address = ? AND allow IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1
"""
LATEST_VERSION_SQL = """
SELECT params_json FROM policy_versions WHERE policy_address = ? AND client = ?
ORDER BY block_number DESC, tx_hash DESC LIMIT 1
"""
LATEST_TASK_PARAMS_SQL = """
SELECT params_json FROM tasks WHERE policy_address = $policy AND ($client IS NULL OR policy_client = $client)
  AND params_json IS NOT NULL ORDER BY created_block DESC LIMIT 1
"""
TASK_SQL = "SELECT policy_address, policy_client FROM tasks WHERE task_id = ?"


# ---------------------------------------------------------------------------------------------
# The scenario: what the CLI flags and the page's URL say


@dataclass(frozen=True)
class Scenario:
    """A what-if: policy (address), optional client, params set on top of each decision's own, or whole params,
    or a new source; a block range. Everything but the source survives a round trip through the URL."""

    policy: str
    client: str = ""
    overrides: tuple[tuple[str, str], ...] = ()  # (dotted key, JSON text of the value)
    params_json: str | None = None
    source: str | None = None
    entrypoint: str | None = None
    from_block: int | None = None
    to_block: int | None = None

    def change(self) -> Change:
        """The engine's view of this scenario."""
        return Change(self.overrides, self.params_json, self.source, self.entrypoint)

    def to_query(self) -> dict[str, str]:
        """URL query params: policy, client, one `p.<key>` per changed param (strings plain, others JSON), blocks."""
        out = {"policy": self.policy}
        if self.client:
            out["client"] = self.client
        for key, text in self.overrides:
            value = json.loads(text)
            out[f"p.{key}"] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if self.params_json is not None:
            out["params"] = self.params_json
        if self.entrypoint:
            out["entrypoint"] = self.entrypoint
        if self.from_block is not None:
            out["from"] = str(self.from_block)
        if self.to_block is not None:
            out["to"] = str(self.to_block)
        return out


def scenario_from_query(params: dict[str, Any], schema: dict, policy: str) -> Scenario:
    """The scenario a URL describes (values parsed against the params schema; LensError naming a bad one)."""
    overrides = []
    for key, raw in params.items():
        if key.startswith("p.") and len(key) > 2:
            name = key[2:]
            overrides.append((name, json.dumps(parse_value(schema, name, str(raw)))))
    whole = params.get("params")
    if whole is not None:
        try:
            json.loads(whole)
        except ValueError:
            raise LensError("the params in the URL are not JSON", "open the What-if page again from its form") from None
    client = str(params.get("client") or "")
    if client:
        kind, client = classify_lookup(client)
        if kind != "address":
            raise LensError(f"client {params.get('client')!r} in the URL is not an address", "pick a client")
    return Scenario(
        policy=policy,
        client=client,
        overrides=tuple(overrides),
        params_json=whole,
        entrypoint=params.get("entrypoint") or None,
        from_block=_int_or_none(params.get("from")),
        to_block=_int_or_none(params.get("to")),
    )


def _int_or_none(v: Any) -> int | None:
    try:
        return int(str(v)) if v not in (None, "") else None
    except ValueError:
        raise LensError(f"block {v!r} is not a whole number", "give a block number such as 1200") from None


def overrides_from_form(schema: dict, start: dict, edited: dict) -> tuple[tuple[str, str], ...]:
    """The page form's values as overrides: only the params whose value differs from where the form started."""
    out = []
    for key, value in edited.items():
        if key not in start or start[key] != value:
            out.append((key, json.dumps(value)))
    return tuple(out)


def overrides_from_sets(schema: dict, sets: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--set key=value` flags as overrides (values parsed against the schema; LensError naming a bad one)."""
    out = []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LensError(f"--set {item!r} is not key=value", "write e.g. --set max_tx_wei='12.5 ETH'")
        props = (schema or {}).get("properties")
        if props and schema_for(schema, key) is None and "." not in key:
            raise LensError(
                f"--set {key}: the policy's params schema has no such param",
                "params: " + ", ".join(sorted(props)),
            )
        out.append((key, json.dumps(parse_value(schema, key, raw))))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Picking a policy and a client


def policies(con: Con) -> pd.DataFrame:
    """Policies that have answered decisions: address, name, entrypoint, decisions."""
    cat = policy_catalog(con)
    return cat[cat["tasks"] > 0][["policy_address", "name", "entrypoint", "tasks"]].reset_index(drop=True)


def resolve_policy(con: Con, text: str) -> dict[str, Any]:
    """A policy by address, name or entrypoint → its catalog row; LensError listing the choices."""
    cat = policies(con)
    q = str(text or "").strip()
    kind, norm = classify_lookup(q)
    for _, row in cat.iterrows():
        names = {str(row["policy_address"]).lower(), str(row["name"]), str(row["entrypoint"] or "")}
        names.add(str(row["entrypoint"] or "").split(".")[0])
        if (kind == "address" and norm == str(row["policy_address"]).lower()) or q in names:
            return {k: row[k] for k in cat.columns}
    choices = ", ".join(f"{r['name']} ({r['policy_address']})" for _, r in cat.iterrows()) or "none indexed"
    raise LensError(f"no policy {q!r} with indexed decisions", f"policies: {choices}")


def clients(con: Con, policy: str) -> pd.DataFrame:
    """The clients of a policy with their names and decision counts."""
    df = query(con, CLIENTS_SQL, [policy])
    doc = deployment_from_meta_safe(con) or {}
    df["name"] = [client_name_from(doc, c) or short(c) for c in df["client"]]
    return df


def resolve_client(con: Con, policy: str, text: str | None) -> str:
    """A client of the policy by address or deployment name → its address ('' for every client)."""
    if not text:
        return ""
    df = clients(con, policy)
    q = text.strip()
    kind, norm = classify_lookup(q)
    for _, row in df.iterrows():
        if (kind == "address" and norm == row["client"].lower()) or q == row["name"]:
            return str(row["client"])
    choices = ", ".join(f"{r['name']} ({r['client']})" for _, r in df.iterrows()) or "none"
    raise LensError(f"{q!r} is not a client of this policy with answered decisions", f"clients: {choices}")


def params_in_force(con: Con, policy: str, client: str = "") -> dict:
    """The params a client's latest PolicySet bound (without a client: the latest decision's), else {}."""
    rows = []
    if client and "policy_versions" in table_names(con):
        rows = query_rows(con, LATEST_VERSION_SQL, [policy, client])
    if not rows:
        rows = query_rows(con, LATEST_TASK_PARAMS_SQL, {"policy": policy, "client": client or None})
    try:
        doc = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def schema_of(policy_row: dict[str, Any]) -> dict:
    """The policy's params_schema.json (local policy folder by name or entrypoint package), else {}."""
    return local_policy_files(str(policy_row.get("name") or ""), policy_row.get("entrypoint"))[1]


def task_scenario(con: Con, task_id: str) -> dict[str, str] | None:
    """(policy, client) of one decision, for the verdict page's "what if?" link (None if unknown)."""
    rows = query_rows(con, TASK_SQL, [task_id])
    return {"policy": rows[0][0], "client": rows[0][1]} if rows else None


# ---------------------------------------------------------------------------------------------
# The decisions to re-run


@dataclass(frozen=True)
class Decisions:
    """The decisions a scenario re-runs (TaskRecords with their sources), their cached baselines (None where not
    cached) and their facts for the flip tables."""

    tasks: list[TaskRecord]
    facts: pd.DataFrame  # task_id, created_block, created_time, policy_client, intent_from, challenge_success, status
    cached: list[Baseline | None] = field(default_factory=list)

    @property
    def cache_hits(self) -> int:
        """How many decisions have a cached baseline."""
        return sum(1 for c in self.cached if c is not None)


def _bind(s: Scenario) -> dict[str, Any]:
    return {"policy": s.policy, "client": s.client or None, "from": s.from_block, "to": s.to_block}


def count_decisions(con: Con, s: Scenario) -> int:
    """How many answered decisions the scenario re-runs."""
    return int(query_rows(con, COUNT_SQL, _bind(s))[0][0])


def load_decisions(con: Con, s: Scenario, after: tuple[int, str] | None = None, page: int | None = None) -> Decisions:
    """Every answered decision of the scenario's policy (and client, and block range), oldest first; with `page`,
    at most that many, starting after the (created block, task id) `after` (see `next_page`)."""
    use_cache = _cache_ok(con)
    sql = DECISIONS_SQL.format(
        cache_columns=CACHE_COLUMNS if use_cache else "",
        cache_join=CACHE_JOIN if use_cache else "",
        after=AFTER_SQL if after is not None else "",
        limit=f"LIMIT {int(page)}" if page is not None else "",
    )
    bind = _bind(s) | ({"engine": cache_tag()} if use_cache else {})
    if after is not None:
        bind |= {"after_block": int(after[0]), "after_id": str(after[1])}
    cur = con.cursor()
    try:
        cur.execute(sql, bind)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        cur.close()
    sources: dict[str, str] = {}
    tasks = []
    for r in rows:
        src = r.get("policy_source")
        if src is not None:
            src = sources.setdefault(src, src)  # one copy per distinct source
        tasks.append(task_from_row(r, src))
    cols = ["task_id", "created_block", "created_time", "policy_client", "intent_from", "challenge_success", "status"]
    facts = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    cached = [
        Baseline(
            r["c_input"], r["c_params"], r["c_wasm"], bool(r["c_allow"]), tuple(json.loads(r["c_deny"])), r["c_error"]
        )
        if r.get("c_input") is not None
        else None
        for r in rows
    ]
    return Decisions(tasks, facts, cached)


def next_page(d: Decisions, page: int) -> tuple[int, str] | None:
    """Where the page after `d` starts (its last block and task id); None when `d` was the last page."""
    if len(d.tasks) < page or d.facts.empty:
        return None
    last = d.facts.iloc[-1]
    return int(last["created_block"]), str(last["task_id"])


def facts_kept(d: Decisions, result: PartitionResult) -> pd.DataFrame:
    """The facts of a page's flips and baseline mismatches: all the report needs of a page once it is run."""
    ids = {f.task_id for f in result.flips} | set(result.baseline_mismatches)
    return d.facts[d.facts["task_id"].isin(ids)]


def _cache_ok(con: Con) -> bool:
    """Whether the cache table exists with this version's columns."""
    if CACHE_TABLE not in table_names(con):
        return False
    cols = {
        r[0]
        for r in query_rows(
            con, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [CACHE_TABLE]
        )
    }
    return "eval_params_json" in cols


def write_baselines(con: Con, decisions: Decisions, result: PartitionResult) -> int:
    """Keep the baselines a run computed in the what-if's own cache table (one transaction; never chain data)."""
    if not result.fresh:
        return 0
    by_id = {t.task_id: t for t in decisions.tasks}
    tag = cache_tag()
    frame = pd.DataFrame(
        [
            {
                "chain_id": by_id[tid].chain_id,
                "task_id": tid,
                "engine": tag,
                "policy_code_hash": by_id[tid].policy_code_hash or None,
                "entrypoint": by_id[tid].entrypoint,
                "params_json": by_id[tid].params_json,
                "input_json": b.input_json,
                "eval_params_json": b.params_json,
                "wasm_json": b.wasm_json,
                "allow": b.allow,
                "deny_json": json.dumps(list(b.deny)),
                "error": b.error,
            }
            for tid, b in result.fresh
            if tid in by_id
        ]
    )
    if CACHE_TABLE in table_names(con) and not _cache_ok(con):
        con.execute(f"DROP TABLE {CACHE_TABLE}")  # an older layout of our own cache: rebuilt, never migrated
    con.execute(CACHE_DDL)
    con.register("whatif_rows", frame)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"INSERT OR REPLACE INTO {CACHE_TABLE} BY NAME SELECT * FROM whatif_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("whatif_rows")
    return len(frame)


# ---------------------------------------------------------------------------------------------
# The result as people read it


DIRECTIONS = {(True, False): "allowed → denied", (False, True): "denied → allowed"}
FLIP_COLUMNS = [
    "task_id",
    "client",
    "client_name",
    "agent",
    "created_block",
    "created_time",
    "direction",
    "from_allow",
    "to_allow",
    "deny_added",
    "deny_removed",
]


def flips_frame(result: PartitionResult, facts: pd.DataFrame, names: dict[str, str] | None = None) -> pd.DataFrame:
    """Every flip as a row with its block, time, client name and direction (a link column for the verdict page)."""
    rows = [
        {
            "task_id": f.task_id,
            "client": f.client,
            "client_name": (names or {}).get(f.client) or short(f.client),
            "agent": f.agent,
            "direction": DIRECTIONS[(f.from_allow, f.to_allow)],
            "from_allow": f.from_allow,
            "to_allow": f.to_allow,
            "deny_added": ", ".join(f.deny_added),
            "deny_removed": ", ".join(f.deny_removed),
        }
        for f in result.flips
    ]
    df = pd.DataFrame(rows, columns=[c for c in FLIP_COLUMNS if c not in ("created_block", "created_time")])
    when = facts[["task_id", "created_block", "created_time"]] if len(facts) else None
    if when is not None and len(df):
        df = df.merge(when, on="task_id", how="left")
    else:
        df["created_block"] = pd.Series(dtype="Int64")
        df["created_time"] = pd.Series(dtype="datetime64[us]")
    df = df[FLIP_COLUMNS]
    df.insert(1, "verdict_page", [f"/verdict?task={t}" for t in df["task_id"]])
    return df


def by_client(flips: pd.DataFrame) -> pd.DataFrame:
    """Flips per client: allowed → denied and denied → allowed."""
    return _count_by(flips, ["client_name", "client"])


def by_agent(flips: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """Flips per agent (intent sender), most flipped first."""
    return _count_by(flips, ["agent"]).head(top)


def _count_by(flips: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    cols = keys + ["allowed → denied", "denied → allowed", "flips"]
    if flips.empty:
        return pd.DataFrame(columns=cols)
    t = flips.pivot_table(index=keys, columns="direction", values="task_id", aggfunc="count", fill_value=0)
    for d in DIRECTIONS.values():
        if d not in t.columns:
            t[d] = 0
    t = t.reset_index()
    t["flips"] = t["allowed → denied"] + t["denied → allowed"]
    return t[cols].sort_values(["flips"] + keys, ascending=[False] + [True] * len(keys)).reset_index(drop=True)


def over_time(flips: pd.DataFrame, buckets: int = 40) -> pd.DataFrame:
    """Flips per time bucket and direction (bucket width chosen so the range spans about `buckets` of them)."""
    cols = ["bucket", "direction", "flips"]
    known = flips.dropna(subset=["created_time"]) if len(flips) else flips
    if known is None or known.empty:
        return pd.DataFrame(columns=cols)
    times = pd.to_datetime(known["created_time"])
    span = (times.max() - times.min()).total_seconds()
    width = next(
        (w for w in ("1min", "10min", "1h", "6h", "1D", "7D") if pd.Timedelta(w).total_seconds() * buckets >= span),
        "30D",
    )
    frame = pd.DataFrame({"bucket": times.dt.floor(width), "direction": known["direction"].to_numpy()})
    return frame.groupby(["bucket", "direction"]).size().rename("flips").reset_index()[cols]


def reason_changes(result: PartitionResult) -> pd.DataFrame:
    """Deny reasons that appear or disappear under the change, over every decision (not only the flips)."""
    reasons = sorted(set(result.reasons_added) | set(result.reasons_removed))
    return pd.DataFrame(
        [
            {
                "deny reason": r,
                "appears in": result.reasons_added.get(r, 0),
                "disappears from": result.reasons_removed.get(r, 0),
            }
            for r in reasons
        ],
        columns=["deny reason", "appears in", "disappears from"],
    )


def baseline_sentence(result: PartitionResult, facts: pd.DataFrame) -> str:
    """'baseline reproduces 2,962 of 2,997 attested verdicts; the 35 others are …' (with the errors, if any)."""
    n = result.decisions
    errors = len({t for t, _ in result.errors})
    m = len(result.baseline_mismatches)
    ok = n - m - errors
    text = f"baseline reproduces {ok:,} of {n:,} attested verdicts"
    if m:
        challenged = set()
        if len(facts):
            ch = facts[facts["challenge_success"].fillna(False).astype(bool)]
            challenged = set(ch["task_id"])
        c = sum(1 for t in result.baseline_mismatches if t in challenged)
        parts = []
        if c:
            parts.append(f"{c:,} successfully challenged")
        if m - c:
            parts.append(f"{m - c:,} unchallenged challenge candidate{'s' if m - c != 1 else ''}")
        text += f"; the {m:,} other{'s are' if m != 1 else ' is'} wrong attested verdicts (faults: {', '.join(parts)})"
    if errors:
        text += f"; {errors:,} could not be evaluated"
    return text


def summary(
    result: PartitionResult, facts: pd.DataFrame, seconds: float, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """The `--json` object: decisions, baseline_mismatches, flips, flipped_to_deny/allow, by_client, decisions_per_s,
    and how the VM fast path was checked (vm_checked, vm_disagreements)."""
    to_deny = sum(1 for f in result.flips if f.from_allow and not f.to_allow)
    per_client: dict[str, dict[str, Any]] = {}
    for f in result.flips:
        entry = per_client.setdefault(
            f.client, {"name": (names or {}).get(f.client, ""), "flipped_to_deny": 0, "flipped_to_allow": 0}
        )
        entry["flipped_to_deny" if f.from_allow else "flipped_to_allow"] += 1
    return {
        "decisions": result.decisions,
        "baseline_mismatches": len(result.baseline_mismatches),
        "baseline_mismatch_ids": list(result.baseline_mismatches),
        "baseline": baseline_sentence(result, facts),
        "errors": len(result.errors),
        "flips": [
            {
                "task_id": f.task_id,
                "client": f.client,
                "from_allow": f.from_allow,
                "to_allow": f.to_allow,
                "deny_added": list(f.deny_added),
                "deny_removed": list(f.deny_removed),
            }
            for f in result.flips
        ],
        "flipped_to_deny": to_deny,
        "flipped_to_allow": len(result.flips) - to_deny,
        "by_client": per_client,
        "reasons_added": result.reasons_added,
        "reasons_removed": result.reasons_removed,
        "seconds": round(seconds, 3),
        "decisions_per_s": round(result.decisions / seconds, 1) if seconds > 0 else None,
        "vm_checked": result.vm_checked,
        "vm_disagreements": result.vm_disagreements,
    }


def client_names(con: Con, policy: str) -> dict[str, str]:
    """client address → deployment name, for the clients of a policy."""
    df = clients(con, policy)
    return dict(zip(df["client"], df["name"]))


def export_flips(flips: pd.DataFrame, fmt: str) -> bytes:
    """Every flip as CSV or Parquet bytes (the link column dropped)."""
    out = flips.drop(columns=["verdict_page"], errors="ignore")
    if fmt == "csv":
        return out.to_csv(index=False).encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        out.to_parquet(buf, index=False)
        return buf.getvalue()
    raise LensError(f"unknown export format {fmt!r}", "use csv or parquet")


def wei_fields(schema: dict) -> list[str]:
    """The params the schema marks as wei amounts."""
    return [k for k, spec in ((schema or {}).get("properties") or {}).items() if is_wei(spec)]


# ---------------------------------------------------------------------------------------------
# The page's form, generated from the params schema


@dataclass(frozen=True)
class FormField:
    """One form input for a param: its kind (wei, boolean, number, array, string, json), label, help, start text."""

    key: str
    kind: str
    label: str
    help: str
    text: str  # the value as the input shows it (wei digits, one list item per line, JSON)
    flag: bool = False  # the value of a boolean input


def _kind(spec: dict) -> str:
    if is_wei(spec):
        return "wei"
    typ = spec.get("type")
    return typ if typ in ("boolean", "number", "integer", "array", "string") else "json"


def form_fields(schema: dict, start: dict, overrides: tuple[tuple[str, str], ...] = ()) -> list[FormField]:
    """The inputs of the params form: every schema property (then any other param in force), at the params in force
    with the scenario's overrides on top."""
    props = (schema or {}).get("properties") or {}
    values = dict(start)
    for key, text in overrides:
        values[key] = json.loads(text)
    required = set((schema or {}).get("required") or [])
    out = []
    for key in list(props) + sorted(k for k in values if k not in props):
        spec = props.get(key) or {}
        kind = _kind(spec) if spec else ("array" if isinstance(values.get(key), list) else "json")
        value = values.get(key)
        unit = " (wei: digits or e.g. 12.5 ETH)" if kind == "wei" else (" (one per line)" if kind == "array" else "")
        label = f"{key}{' *' if key in required else ''}{unit}"
        if kind == "wei":
            text = "" if value is None else str(value)
        elif kind == "array":
            text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in (value or []))
        elif kind == "string":
            text = "" if value is None else str(value)
        else:
            text = "" if value is None else json.dumps(value)
        out.append(FormField(key, kind, label, str(spec.get("description") or ""), text, bool(value)))
    return out


def parse_form(schema: dict, fields: list[FormField], raw: dict[str, Any]) -> tuple[dict, dict[str, str]]:
    """The form's raw inputs → (params, {key: error}); values parsed against the schema, then the whole validated."""
    from app.engine.whatif import schema_errors

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        r = raw.get(f.key)
        if f.kind == "boolean":
            values[f.key] = bool(r)
            continue
        text = str(r or "")
        if f.kind == "array":
            items = [line.strip() for line in text.splitlines() if line.strip()]
            spec = schema_for(schema, f.key) or {}
            if (spec.get("items") or {}).get("type") not in (None, "string"):
                try:
                    items = [json.loads(x) for x in items]
                except ValueError:
                    errors[f.key] = "each line must be a JSON value"
                    continue
            values[f.key] = items
            continue
        if not text.strip():
            continue  # left empty: the param is not set
        try:
            values[f.key] = parse_value(schema, f.key, text)
        except LensError as err:
            errors[f.key] = str(err)
    for problem in schema_errors(schema, values):
        key, _, message = problem.partition(": ")
        errors.setdefault(key.split(".")[0], message)
    return values, errors


def wei_shown(text: str) -> str:
    """What a wei input means, exactly ('12.5 ETH = 12500000000000000000 wei'), or '' if it does not parse."""
    from app.engine.values import fmt_wei
    from app.engine.whatif import parse_wei

    try:
        return fmt_wei(parse_wei(text))
    except LensError:
        return ""


def whatif_link(task: dict[str, Any], counterfactuals: Any) -> str:
    """The What-if page URL for a decision: its policy and client, with its first counterfactual's param filled in."""
    from urllib.parse import urlencode

    query = {"policy": task.get("policy_address") or "", "client": task.get("policy_client") or ""}
    for cf in counterfactuals or ():
        if getattr(cf, "flips_to", None) is None:
            continue  # a per-reason change does not flip the verdict alone
        applied = getattr(cf, "applied", None)
        if cf.kind == "combined" and isinstance(applied, dict):
            changes = applied
        elif applied is not None:
            changes = {cf.param: applied}
        elif cf.kind == "list_remove":
            changes = {cf.param: [x for x in cf.current if x != cf.value]}
        elif cf.kind == "list_add":
            changes = {cf.param: list(cf.current) + [cf.value]}
        else:
            changes = {cf.param: cf.value}
        for key, value in changes.items():
            query[f"p.{key}"] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        break
    return "/whatif?" + urlencode(query)


SOURCE_SQL = """
SELECT b.content FROM tasks t JOIN blobs b ON b.hash = t.policy_code_hash
WHERE t.policy_address = ? ORDER BY t.created_block DESC LIMIT 1
"""


def policy_source(con: Con, policy: str) -> str:
    """The Rego source of a policy's latest decision ('' if not indexed)."""
    if "blobs" not in table_names(con):
        return ""
    rows = query_rows(con, SOURCE_SQL, [policy])
    return rows[0][0] if rows else ""


def policy_row(catalog: pd.DataFrame, address: str) -> dict[str, Any]:
    """One policy's row of `policies(con)` as a dict."""
    part = catalog[catalog["policy_address"] == address]
    return {k: part.iloc[0][k] for k in catalog.columns} if len(part) else {"policy_address": address, "name": address}


def policy_label(row: dict[str, Any]) -> str:
    """'spending_limits — 1,234 decisions' for a picker."""
    return f"{row['name']} — {int(row['tasks']):,} decisions"


def source_excerpt(source: str, line: int, around: int = 3) -> str:
    """The lines around a parse error, the failing one marked, numbered like an editor."""
    lines = source.splitlines()
    lo, hi = max(1, line - around), min(len(lines), line + around)
    return "\n".join(f"{'>>' if i == line else '  '} {i:4d} | {lines[i - 1]}" for i in range(lo, hi + 1))


def flip_counts(result: PartitionResult) -> tuple[int, int]:
    """(allowed → denied, denied → allowed)."""
    to_deny = sum(1 for f in result.flips if f.from_allow and not f.to_allow)
    return to_deny, len(result.flips) - to_deny
