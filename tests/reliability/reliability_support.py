"""Helpers of the reliability suite: a chain of emitted Newton logs, a deployment on it, whole-DB snapshots."""

from __future__ import annotations

from indexer import decode, load
from indexer.deployment import Deployment, parse

# fast retries: the suite injects hundreds of faults and must not sleep through real backoffs
FAST = dict(retries=8, backoff_s=0.01, rpc_timeout_s=10.0, metadata_timeout_s=0.5, worker=False)

DERIVED = ("tasks", "task_signers", "operators", "operator_stakes", "policies", "policy_versions", "challenges")


def rpc(url: str, method: str, params: list):
    """One JSON-RPC call to the test's own node."""
    from devnet import emitter

    return emitter.rpc(url, method, params)


def head(url: str) -> int:
    """The node's block number."""
    return int(rpc(url, "eth_blockNumber", []), 16)


def deployment(url: str, chain_id: int, emitter_addr: str, start: int, confirmations: int = 0) -> Deployment:
    """A deployment whose task manager is a LogEmitter (it may emit any Newton event)."""
    return parse(
        {
            "name": "reliability",
            "chain_id": chain_id,
            "rpc_url": url,
            "start_block": start,
            "confirmations": confirmations,
            "contracts": {"taskManager": emitter_addr},
        }
    )


def fill(url: str, em: str, n_tasks: int, first: int = 0, per_tx: int = 4, tag: bytes = b"") -> None:
    """n_tasks tasks' realistic logs (created, responded, spent or denied), per_tx tasks per transaction (block)."""
    from devnet import emitter

    src = b"package t\ndefault allow := false\n" + tag
    for i in range(first, first + n_tasks, per_tx):
        logs = []
        for k in range(i, min(i + per_tx, first + n_tasks)):
            logs += emitter.sample_task_logs(k, src, "0x" + "aa" * 20, "0x" + "bb" * 20, [b"op"])
        emitter.emit_many(url, em, logs)


def snapshot(db: str, extra: tuple[str, ...] = ()) -> dict[str, list]:
    """Every row of every raw and derived table (bookkeeping excluded), sorted: equal DBs give equal snapshots."""
    out = {}
    with load.connect_read(db) as con:
        for table in (*decode.TABLES, "undecodable_logs", *DERIVED, "blobs", *extra):
            out[table] = sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    return out
