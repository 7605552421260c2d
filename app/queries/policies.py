"""Policies queries: the catalog, one policy's source, params schema and current values, rules, params history."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from app.queries.base import (
    BLOB_SQL,
    Con,
    client_name_from,
    deployment_from_meta_safe,
    policy_name_from,
    query,
    query_rows,
    row_dict,
    table_names,
)
from app.text import params_diff, parsed_json, short, value_text

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
    df["name"] = [
        n if isinstance(n, str) and n else (policy_name_from(doc, a) or short(a))
        for n, a in zip(df["name"], df["policy_address"])
    ]
    clients: dict[str, list[str]] = {}
    if "policy_versions" in table_names(con):
        for client, addr in query_rows(con, "SELECT DISTINCT client, policy_address FROM policy_versions"):
            clients.setdefault(addr, []).append(client_name_from(doc, client) or short(client))
    df["clients"] = [", ".join(sorted(clients.get(a, []))) for a in df["policy_address"]]
    return df


def policy_detail(con: Con, policy_address: str) -> dict[str, Any]:
    """One policy: its catalog row, Rego source (or None), params versions per client, local metadata and schema."""
    catalog = policy_catalog(con)
    row = catalog[catalog["policy_address"] == policy_address]
    info = row_dict(row) or {"policy_address": policy_address, "name": short(policy_address)}
    code_hash = info.get("policy_code_hash")
    if not code_hash:
        hashes = query_rows(
            con,
            "SELECT policy_code_hash FROM tasks WHERE policy_address = ? AND policy_code_hash IS NOT NULL LIMIT 1",
            [policy_address],
        )
        code_hash = hashes[0][0] if hashes else None
    blob = query_rows(con, BLOB_SQL, [code_hash]) if code_hash and "blobs" in table_names(con) else []
    versions = (
        query(con, POLICY_VERSIONS_SQL, [policy_address]) if "policy_versions" in table_names(con) else pd.DataFrame()
    )
    doc = deployment_from_meta_safe(con) or {}
    if len(versions):
        versions.insert(1, "client_name", [client_name_from(doc, c) or short(c) for c in versions["client"]])
    meta_doc, schema_doc = local_policy_files(str(info.get("name") or ""), info.get("entrypoint"))
    return {
        "info": info,
        "code_hash": code_hash,
        "source": blob[0][0] if blob else None,
        "versions": versions,
        "metadata": meta_doc,
        "schema": schema_doc,
    }


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
        row = {
            "param": name,
            "type": str(typ),
            "description": str(spec.get("description") or "—"),
            "required": "yes" if name in ((schema_doc or {}).get("required") or []) else "",
        }
        for client, doc in current.items():
            row[client] = value_text(doc[name]) if name in doc else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _json_type(v: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), "—"
    )


def rules_summary(metadata: dict, source: str | None) -> pd.DataFrame:
    """Deny reasons in plain language with the params each depends on (metadata), else the reasons found in the source."""
    reasons = (metadata or {}).get("reasons") or {}
    if reasons:
        return pd.DataFrame(
            [
                {
                    "deny reason": k,
                    "what it means": str(v.get("text", "")),
                    "depends on params": ", ".join(v.get("params") or []) or "—",
                }
                for k, v in reasons.items()
            ]
        )
    found = sorted(set(re.findall(r'deny\s+contains\s+"([^"]+)"', source or "")))
    return pd.DataFrame(
        [{"deny reason": r, "what it means": r.replace("_", " "), "depends on params": "—"} for r in found],
        columns=["deny reason", "what it means", "depends on params"],
    )


def version_history(versions: pd.DataFrame) -> pd.DataFrame:
    """Params versions per client, each with the diff from that client's previous version."""
    if versions is None or versions.empty:
        return pd.DataFrame(
            columns=["client_name", "block_number", "block_time", "sender", "change", "tx_hash", "policy_id"]
        )
    rows = []
    for _client, part in versions.sort_values(["client", "block_number"]).groupby("client", sort=False):
        prev = None
        for _, v in part.iterrows():
            doc = parsed_json(v["params_json"], {})
            rows.append(
                {
                    "client_name": v["client_name"],
                    "block_number": v["block_number"],
                    "block_time": v["block_time"],
                    "sender": v["sender"],
                    "change": params_diff(prev, doc),
                    "expire_after": v["expire_after"],
                    "tx_hash": v["tx_hash"],
                    "policy_id": v["policy_id"],
                }
            )
            prev = doc
    return pd.DataFrame(rows).sort_values("block_number", ascending=False, kind="stable")
