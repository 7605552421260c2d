"""Reorg safety: remember recent block hashes, find the fork point, roll raw and derived rows back to it."""

from __future__ import annotations

import duckdb

from indexer.decode import TABLES
from indexer.derive import TASK_KEYS

CHECK_DEPTH = 24  # recent stored blocks re-checked against the node before each batch


def fork_point(stored: list[tuple[int, str]], chain: dict[int, str | None]) -> int | None:
    """Highest stored block whose hash the chain still has (stored newest first); None if none matches.

    Because each block commits to its parent, a matching block means everything below it matches too.
    """
    for number, h in stored:
        if chain.get(number) == h:
            return number
    return None


def recent_blocks(con: duckdb.DuckDBPyConnection, chain_id: int, depth: int = CHECK_DEPTH) -> list[tuple[int, str]]:
    """(number, hash) of the newest stored blocks, newest first."""
    return con.execute(
        "SELECT block_number, block_hash FROM blocks WHERE chain_id = ? ORDER BY block_number DESC LIMIT ?",
        [chain_id, depth],
    ).fetchall()


def older_blocks(con: duckdb.DuckDBPyConnection, chain_id: int, below: int, depth: int) -> list[tuple[int, str]]:
    """(number, hash) of stored blocks below `below`, newest first."""
    return con.execute(
        "SELECT block_number, block_hash FROM blocks WHERE chain_id = ? AND block_number < ? "
        "ORDER BY block_number DESC LIMIT ?",
        [chain_id, below, depth],
    ).fetchall()


def _node_hashes(rpc, blocks: list[tuple[int, str]]) -> dict[int, str | None]:
    # the node's hash of each of these block numbers (one batched request)
    return {n: (h or {}).get("hash") for n, h in rpc.headers(n for n, _ in blocks).items()}


def detect(con_read, rpc, chain_id: int) -> int | None:
    """The fork point if the stored recent blocks disagree with the node, else None (no reorg)."""
    stored = recent_blocks(con_read, chain_id)
    if not stored:
        return None
    chain = _node_hashes(rpc, stored)
    if all(chain.get(n) == h for n, h in stored):
        return None
    point = fork_point(stored, chain)
    below = stored[-1][0]
    while point is None:
        older = older_blocks(con_read, chain_id, below, 256)
        if not older:
            return -1  # nothing we stored survives: roll back everything
        chain = _node_hashes(rpc, older)
        point = fork_point(older, chain)
        below = older[-1][0]
    return point


def rollback(con: duckdb.DuckDBPyConnection, chain_id: int, fork: int) -> set[str]:
    """Delete every raw row and block above the fork point (caller's transaction); returns the task ids touched."""
    touched: set[str] = set()
    for table, key in TASK_KEYS.items():
        touched |= {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {key} FROM {table} WHERE chain_id = ? AND block_number > ?", [chain_id, fork]
            ).fetchall()
        }
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    con.execute("DELETE FROM undecodable_logs WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    con.execute("DELETE FROM blocks WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    # Rego sources only the orphaned branch carried go too (blobs are content-addressed, shared across chains)
    con.execute("""DELETE FROM blobs WHERE hash NOT IN (
                     SELECT policy_code_hash FROM ev_task_responded WHERE policy_code_hash IS NOT NULL
                     UNION SELECT policy_code_hash FROM ev_direct_task_responded WHERE policy_code_hash IS NOT NULL)""")
    return {t for t in touched if t}
