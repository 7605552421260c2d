"""What `lens index status` reports: per contract checkpoint, head and lag, rows per event, undecodable logs, errors."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from indexer.abi import LAYOUTS
from indexer.extract import Rpc

TABLE_EVENT = {lay.table: lay.event for lay in LAYOUTS}


def summary(con: duckdb.DuckDBPyConnection, head_rpc: str | None = None) -> dict[str, Any]:
    """One JSON-able object: rows (event → count), undecodable, last_block, head, lag, per-contract checkpoints, tasks."""
    tables = {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='main'").fetchall()
    }
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
    rows: dict[str, int] = {}
    for table, event in TABLE_EVENT.items():
        if table in tables:
            n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if n:
                rows[event] = n
    undecodable = (
        con.execute("SELECT count(*) FROM undecodable_logs").fetchone()[0] if "undecodable_logs" in tables else 0
    )
    undecodable_by_topic = (
        dict(con.execute("SELECT topic0, count(*) FROM undecodable_logs GROUP BY 1").fetchall()) if undecodable else {}
    )
    contracts = []
    try:
        roles = json.loads(meta.get("roles") or "{}")
    except ValueError:
        roles = {}
    if "checkpoints" in tables:
        for chain_id, address, last, updated, err in con.execute(
            "SELECT chain_id, address, last_block, updated_at, last_error FROM checkpoints ORDER BY chain_id, address"
        ).fetchall():
            contracts.append(
                {
                    "chain_id": chain_id,
                    "address": address,
                    "role": roles.get(address, ""),
                    "last_block": last,
                    "updated_at": updated.isoformat() if updated else None,
                    "last_error": err,
                }
            )
    last_block = min((c["last_block"] for c in contracts), default=None)
    tasks = (
        dict(con.execute("SELECT status, count(*) FROM tasks GROUP BY 1 ORDER BY 1").fetchall())
        if "tasks" in tables
        else {}
    )
    head = None
    rpc_url = head_rpc or meta.get("rpc_url")
    head_error = None
    if rpc_url:
        try:
            head = Rpc(rpc_url, retries=0, timeout=3).head()
        except Exception as e:  # any failure only means "head unknown", said with its reason
            head_error = str(e)
    else:
        head_error = "no RPC URL recorded in this DB (pass --rpc URL)"
    try:
        faults = json.loads(meta.get("rpc_faults") or "{}")
    except ValueError:
        faults = {}
    for c in contracts:
        c["head"] = head
        c["lag"] = None if head is None or c["last_block"] is None else head - c["last_block"]
    return {
        "deployment": meta.get("deployment"),
        "chain_id": int(meta["chain_id"]) if meta.get("chain_id") else None,
        "rpc_url": rpc_url,
        "last_block": last_block,
        "head": head,
        "lag": None if head is None or last_block is None else head - last_block,
        "head_error": head_error,
        "rows": rows,
        "events": sum(rows.values()),
        "undecodable": undecodable,
        "undecodable_by_topic0": undecodable_by_topic,
        "tasks": tasks,
        "contracts": contracts,
        "last_error": next((c["last_error"] for c in contracts if c["last_error"]), None),
        "last_reorg": meta.get("last_reorg"),
        "rpc_faults": faults,
        "rpc_faults_since": meta.get("rpc_faults_since"),
    }
