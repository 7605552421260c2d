"""Reorg safety: remember recent block hashes, find the fork point, roll raw and derived rows back to it."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from indexer import aggregates
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
    """The fork point if the stored recent blocks disagree with the node, else None (no reorg).

    A block the node does not have (yet) is no evidence: a node behind a load balancer, or still syncing, lacks the
    newest blocks of the chain we indexed. Only a different hash proves a reorg; below the highest such block, a
    missing one counts as different too.
    """
    stored = recent_blocks(con_read, chain_id)
    if not stored:
        return None
    chain = _node_hashes(rpc, stored)
    differing = [n for n, h in stored if chain.get(n) is not None and chain[n] != h]
    if not differing:
        return None
    top = max(differing)
    point = fork_point([(n, h) for n, h in stored if n < top], chain)
    below = stored[-1][0]
    while point is None:
        older = older_blocks(con_read, chain_id, below, 256)
        if not older:
            return -1  # nothing we stored survives: roll back everything
        chain = _node_hashes(rpc, older)
        point = fork_point(older, chain)
        below = older[-1][0]
    return point


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
        ).fetchall()
    }


def _task_keyed_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Derived tables whose rows belong to one task (columns chain_id and task_id), raw event tables excluded."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'main' "
        "AND column_name IN ('chain_id', 'task_id') GROUP BY table_name HAVING count(*) = 2 ORDER BY 1"
    ).fetchall()
    base = _tables(con)
    return [t for (t,) in rows if t in base and t not in TABLES and t != "undecodable_logs"]


def rollback(con: duckdb.DuckDBPyConnection, chain_id: int, fork: int) -> set[str]:
    """Delete every raw row and block above the fork point, and every row of any derived table (replays, caches)
    of the tasks those raw rows named (caller's transaction; the caller rebuilds tasks, task_signers and the small
    tables from what remains). Returns the task ids touched."""
    touched: set[str] = set()
    for table, key in TASK_KEYS.items():
        touched |= {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {key} FROM {table} WHERE chain_id = ? AND block_number > ?", [chain_id, fork]
            ).fetchall()
        }
    if touched:
        # every row derived from these tasks goes (replays, caches of the app, …: any table keyed by chain_id and
        # task_id); tasks and task_signers are rebuilt by the caller from what raw rows remain
        con.register("_rolled_back", pa.table({"task_id": pa.array(sorted(t for t in touched if t), pa.string())}))
        aggregates.mark_tasks(con, chain_id, "_rolled_back")  # their hours are recomputed by derive.refresh
        for table in _task_keyed_tables(con):
            con.execute(
                f'DELETE FROM "{table}" WHERE chain_id = ? AND task_id IN (SELECT task_id FROM _rolled_back)',
                [chain_id],
            )
        con.unregister("_rolled_back")
    # chain reads made at a block of the orphaned branch are re-read when needed
    if "policy_entrypoints" in _tables(con):
        con.execute("DELETE FROM policy_entrypoints WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    con.execute("DELETE FROM undecodable_logs WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    con.execute("DELETE FROM blocks WHERE chain_id = ? AND block_number > ?", [chain_id, fork])
    # Rego sources only the orphaned branch carried go too (blobs are content-addressed, shared across chains)
    con.execute("""DELETE FROM blobs WHERE hash NOT IN (
                     SELECT policy_code_hash FROM ev_task_responded WHERE policy_code_hash IS NOT NULL
                     UNION SELECT policy_code_hash FROM ev_direct_task_responded WHERE policy_code_hash IS NOT NULL)""")
    return {t for t in touched if t}
