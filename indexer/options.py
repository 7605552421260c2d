"""How one indexer run behaves: the options record the CLI builds from the settings registry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexOptions:
    """How to run: where to write, which range, follow or not, batching and lock-holding limits."""

    db: str
    rpc_url: str = ""
    start: int | None = None
    end: int | None = None
    follow: bool = False
    confirmations: int | None = None
    batch_blocks: int = 2000
    retries: int = 6
    rpc_timeout_s: float = 30.0
    backoff_s: float = 0.2
    poll_s: float = 1.0
    commit_logs: int = 20000  # commit at least every this many logs …
    commit_s: float = 2.0  # … or this often
    max_hold_s: float = 2.0  # release the write lock after holding it this long (readers get a turn)
    metadata_timeout_s: float = 5.0
    ipfs_gateway: str = "https://ipfs.io/ipfs/"
    metadata_allow_private: bool = False  # fetch metadata from loopback/private/link-local addresses too
    prefetch: int = 4
    worker: bool = True  # fetch+decode in a worker process for long ranges
    workers: int = 2  # worker processes running at once
    worker_min_blocks: int = 500  # ranges at least this long go to worker processes
    duckdb_threads: int = 1  # the writer is never the bottleneck: spare the cores
    duckdb_checkpoint: str = "64MB"  # WAL size before DuckDB checkpoints on its own
