"""The derived/bookkeeping table DDL of INTERFACES §3, as the rest of `app` imports it — defined once, in indexer/load.py."""
from __future__ import annotations

from indexer.load import BASE_DDL, DERIVED_DDL

# One DDL: the indexer's. This module only re-exports it for `app` code (engine fixtures, audit).
TABLES: dict[str, str] = {**BASE_DDL, **DERIVED_DDL}


def ddl(table: str) -> str:
    """CREATE TABLE IF NOT EXISTS statement of one derived or bookkeeping table."""
    return f"CREATE TABLE IF NOT EXISTS {table} ({TABLES[table]})"
