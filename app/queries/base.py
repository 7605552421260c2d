"""What every query domain shares: running SQL, the DB's tables, meta and freshness, its state, the deployment document."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from app import db, settings
from app.errors import LensError
from app.text import is_null

Con = duckdb.DuckDBPyConnection

TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
HAS_TASKS_SQL = "SELECT EXISTS (SELECT 1 FROM tasks)"
BLOB_SQL = "SELECT content FROM blobs WHERE hash = ? LIMIT 1"


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views in the main schema (asked once per render on a page's connection)."""
    return db.render_tables(con, lambda c: {r[0] for r in query_rows(c, TABLES_SQL)})


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
    """Run one parameterised SELECT on a per-call cursor (thread-safe for Streamlit sessions) → DataFrame."""
    cur = con.cursor()
    try:
        return cur.execute(sql, params or []).df()
    finally:
        cur.close()


def query_rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None
) -> list[tuple]:
    """Run one parameterised SELECT → list of tuples (for scalars and small lookups)."""
    cur = con.cursor()
    try:
        return cur.execute(sql, params or []).fetchall()
    finally:
        cur.close()


def has_tasks(con: Con) -> bool:
    """Whether the DB holds a `tasks` table with at least one row."""
    return "tasks" in table_names(con) and bool(query_rows(con, HAS_TASKS_SQL)[0][0])


def row_dict(df: pd.DataFrame) -> dict[str, Any] | None:
    """The first row of a frame as a dict with NULLs as None (None for an empty frame)."""
    if df.empty:
        return None
    return {k: (None if is_null(v) else v) for k, v in df.iloc[0].to_dict().items()}


# ---------------------------------------------------------------------------------------------
# The DB's state for the pages


def db_state() -> db.DbState:
    """The state of this session's DB: ok, empty, missing, locked (being written) or error — never raises."""
    path = db.db_path()
    try:
        filled = db.cached(has_tasks)
    except LensError as err:  # the open failed; not cached, so the next render looks again
        return db.open_error_state(path, err)
    except duckdb.Error as err:
        return db.DbState("error", str(path), f"cannot read {path.name}: {err}")
    if not filled:
        return db.DbState(
            "empty", str(path), f"{path.name} has no indexed tasks yet", "run `lens index` (or `lens synth`) to fill it"
        )
    return db.DbState("ok", str(path), "")


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


def meta_int(con: Con, key: str) -> int | None:
    """One integer from `meta`, None when absent or not a number."""
    try:
        return int(meta(con).get(key, ""))
    except ValueError:
        return None


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
# The deployment document: recorded in the DB's meta, or the file `lens devnet up` wrote


def deployment_from_file(path: Path | None = None) -> dict | None:
    """The deployment document `lens devnet up` wrote (setting `deployment_file`), or None if absent/unreadable."""
    path = Path(path or settings.get("deployment_file"))
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def deployment_from_meta(meta: dict[str, str]) -> dict | None:
    """The deployment document recorded in the DB's `meta` table (whole JSON under `deployment` (synth) or
    `deployment_json` (indexer), else its parts)."""
    for key in ("deployment", "deployment_json"):
        raw = meta.get(key)
        if raw:
            try:
                doc = json.loads(raw)
                if isinstance(doc, dict):
                    return doc
            except ValueError:
                pass
    if not meta:
        return None
    # a DB without the whole document (indexed before `deployment_json` existed): name, chain and RPC only
    return {
        "name": meta.get("name") or meta.get("deployment") or "",
        "chain_id": _int_or_none(meta.get("chain_id")),
        "rpc_url": meta.get("rpc_url") or "",
        "contracts": {},
    }


def choose_deployment(meta_doc: dict | None, file_doc: dict | None) -> dict | None:
    """The DB's own deployment when it names the contracts; else the deployment file of the same chain (a DB
    without `deployment_json` records only the deployment's name, chain and RPC in `meta`); else whatever is known."""
    if meta_doc and meta_doc.get("contracts"):
        return meta_doc
    if file_doc and (not meta_doc or meta_doc.get("chain_id") in (None, file_doc.get("chain_id"))):
        merged = dict(file_doc)
        if meta_doc and meta_doc.get("rpc_url"):
            merged["rpc_url"] = meta_doc["rpc_url"]
        return merged
    return meta_doc or file_doc


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def deployment_from_meta_safe(con: Con) -> dict | None:
    """The deployment naming this DB's contracts and clients: its meta, else the deployment file of the same chain."""
    return choose_deployment(deployment_from_meta(meta(con)), deployment_from_file())


def current_deployment(ok: bool) -> tuple[dict | None, str]:
    """The deployment the dashboard shows → (document, where it came from): see choose_deployment."""
    meta_doc = None
    if ok:
        try:
            meta_doc = deployment_from_meta(db.cached(meta))
        except (duckdb.Error, LensError):
            meta_doc = None
    path = Path(settings.get("deployment_file"))
    file_doc = deployment_from_file(path)
    doc = choose_deployment(meta_doc, file_doc)
    if doc is None:
        return None, str(path)
    return doc, (f"DB meta ({db.db_path().name})" if doc is meta_doc else str(path))


def policy_name_from(doc: dict | None, address: str) -> str:
    """The deployment's name for a policy address ('' when it does not name it)."""
    for name, p in ((doc or {}).get("policies") or {}).items():
        if str((p or {}).get("address", "")).lower() == str(address).lower():
            return str(name)
    return ""


def client_name_from(doc: dict | None, address: str) -> str:
    """The deployment's name for a policy client address ('' when it does not name it)."""
    for name, c in ((doc or {}).get("clients") or {}).items():
        if str((c or {}).get("address", "")).lower() == str(address).lower():
            return str(name)
    return ""


# ---------------------------------------------------------------------------------------------
# What a person typed into a lookup box or a URL

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
