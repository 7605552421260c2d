"""Audit and what-if past one machine, on Dask distributed: partitions of decisions go to workers (each keeps its
compiled policies in the engine's per-thread cache across partitions), and only results come back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.audit import AuditStats, audit_chunk, pack
from app.engine.replay import Replay, TaskRecord, task_from_row
from app.errors import LensError

LOCAL = "local"
CHUNK = 500  # decisions per Dask task when the client ships them (DB mode): the IPC stays small beside the work
CONNECT_TIMEOUT_S = 10


@dataclass
class Cluster:
    """A Dask client and, for `local`, the LocalCluster it started (closed with it)."""

    client: Any
    local: Any = None
    address: str = ""

    @property
    def workers(self) -> int:
        """Workers the scheduler knows now."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def close(self) -> None:
        """Close the client, and the local cluster if this process started it."""
        self.client.close()
        if self.local is not None:
            self.local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(scheduler: str, workers: int | None = None) -> Cluster:
    """A client on the scheduler `tcp://HOST:PORT` (or HOST:PORT), or on a new LocalCluster of worker processes
    (one thread each: regorus engines are bound to their thread) for `local`."""
    from distributed import Client, LocalCluster

    if scheduler == LOCAL:
        n = max(1, workers or os.cpu_count() or 1)
        local = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        )
        return Cluster(Client(local), local, local.scheduler_address)
    address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as err:
        raise LensError(
            f"cannot reach the Dask scheduler at {address}: {err}",
            "start one (`dask scheduler` and `dask worker ADDRESS` on each machine), or pass --scheduler local",
        ) from None
    cluster = Cluster(client, None, address)
    if cluster.workers == 0:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    return cluster


# ---------------------------------------------------------------------------------------------
# The client side


class DaskAuditPool:
    """`lens audit`'s pool on a Dask cluster: the same `run`/`close` as the local AuditPool, so the audit reads, writes
    and reports exactly as it does locally; only where the evaluations run differs."""

    def __init__(self, scheduler: str, workers: int | None = None) -> None:
        self.cluster = connect(scheduler, workers)
        self.scheduler = self.cluster.address

    def close(self) -> None:
        """Disconnect (and stop the local cluster if this pool started one)."""
        self.cluster.close()

    def run(
        self,
        tasks: Sequence[TaskRecord],
        *,
        timeout_ms: int,
        chunk: int | None = None,
        on_progress: Callable[[int, list[tuple[Replay, str]]], None] | None = None,
    ) -> tuple[list[tuple[Replay, str]], AuditStats]:
        """Audit tasks on the cluster, a chunk per Dask task (the local audit's own `audit_chunk`; each worker's
        compile cache outlives its chunks) → results in task order.

        `timeout_ms` is not enforced per evaluation here: a Dask worker cannot kill a regorus evaluation mid-way
        (the local pool can, its workers are killable processes) — run untrusted sources locally."""
        from distributed import as_completed

        t0 = time.perf_counter()
        workers = max(1, self.cluster.workers)
        if chunk is None:  # a few chunks per worker at least, so a small page still uses every worker
            chunk = min(CHUNK, max(16, -(-len(tasks) // (workers * 4))))
        futures = {}
        for k, i in enumerate(range(0, len(tasks), chunk)):
            slim, index, sources = pack(list(tasks[i : i + chunk]))
            futures[self.cluster.client.submit(audit_chunk, slim, index, sources, pure=False)] = k
        results: list[list[tuple[Replay, str]] | None] = [None] * len(futures)
        for fut in as_completed(list(futures)):
            rows = fut.result()
            results[futures[fut]] = rows
            if on_progress is not None:
                on_progress(len(rows), rows)
        flat = [r for part in results for r in (part or [])]
        return flat, AuditStats(workers, len(futures), 0, time.perf_counter() - t0)


class DaskWhatIfPool:
    """`lens whatif`'s pool on a Dask cluster: the same `run`/`close`/`workers` as the local WhatIfPool; each Dask
    task is the engine's pure `evaluate_partition` over one chunk, and only its flips and counts come back."""

    def __init__(self, scheduler: str, workers: int | None = None) -> None:
        self.cluster = connect(scheduler, workers)
        self.scheduler = self.cluster.address
        self.workers = max(1, self.cluster.workers)

    def close(self) -> None:
        """Disconnect (and stop the local cluster if this pool started one)."""
        self.cluster.close()

    def __enter__(self) -> DaskWhatIfPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        tasks: Sequence[TaskRecord],
        change: Any,
        limits: Any,
        *,
        chunk: int | None = None,
        batch: int | None = None,
        on_progress: Callable[[int, Any], None] | None = None,
        on_tick: Callable[[int, int], None] | None = None,
        poll_s: float = 0.2,
        cached: Sequence[Any] | None = None,
    ) -> Any:
        """Every decision evaluated on the cluster, partitions merged in order; WhatIfStopped past the budget."""
        from distributed import as_completed

        from app.engine import whatif

        whatif.check_inputs(change)
        chunk = max(1, min(chunk or whatif.CHUNK, -(-len(tasks) // self.workers) if tasks else 1))
        batch = batch or whatif.BATCH
        futures = {}
        for k, i in enumerate(range(0, len(tasks), chunk)):
            part = list(tasks[i : i + chunk])
            part_cached = list(cached[i : i + chunk]) if cached is not None else None
            fut = self.cluster.client.submit(
                whatif.evaluate_partition,
                *whatif.pack(part, part_cached),
                change,
                batch,
                whatif.wire(part_cached),
                pure=False,
            )
            futures[fut] = k
        results: list[Any] = [None] * len(futures)
        done, flips = 0, 0
        try:
            for fut in as_completed(list(futures), timeout=limits.budget_s):
                out = fut.result()
                results[futures[fut]] = out
                done, flips = done + out.decisions, flips + len(out.flips)
                if on_progress is not None:
                    on_progress(out.decisions, out)
                if on_tick is not None:
                    on_tick(done, flips)
        except TimeoutError:
            self.cluster.client.cancel(list(futures))
            raise whatif.WhatIfStopped(
                f"the what-if ran past its overall budget of {limits.budget_s:.0f} s on the cluster and was stopped",
                "narrow it (--client, --from-block/--to-block), add workers, or raise LENS_WHATIF_BUDGET_S",
            ) from None
        return whatif.merge([r for r in results if r is not None])


def export_partitions(parquet_dir: Path) -> tuple[list[tuple[str, int]], str | None]:
    """The `tasks` partitions of a Parquet export as (file glob, rows), and the glob of its policy sources."""
    manifest_path = Path(parquet_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise LensError(
            f"no manifest.json in {parquet_dir}: not a `lens export parquet` directory",
            "export first: lens export parquet --out DIR",
        ) from None
    except (OSError, ValueError) as err:
        raise LensError(f"cannot read {manifest_path}: {err}", "export again: lens export parquet --out DIR") from None
    tasks = (manifest.get("tables") or {}).get("tasks")
    if not tasks or tasks.get("layout") != "month":
        raise LensError(f"the export in {parquet_dir} has no partitioned tasks table", "export a DB that holds tasks")
    root = Path(parquet_dir).resolve()
    parts = [
        (str(root / "tasks" / key / "*.parquet"), int(p["rows"])) for key, p in sorted(tasks["partitions"].items())
    ]
    blobs = (manifest.get("tables") or {}).get("blobs")
    blobs_glob = str(root / "blobs" / "*.parquet") if blobs and blobs.get("rows") else None
    return parts, blobs_glob


PARQUET_TASKS_SQL = """
SELECT t.* EXCLUDE (month), b.content AS policy_source
FROM read_parquet(?, hive_partitioning = true, hive_types = {'chain_id': BIGINT}) t
LEFT JOIN (SELECT * FROM read_parquet(?)) b ON b.hash = t.policy_code_hash
ORDER BY coalesce(t.created_block, -1), t.task_id
"""


def parquet_rows(parquet_dir: Path) -> int:
    """How many decisions a Parquet export holds (from its manifest)."""
    return sum(n for _, n in export_partitions(parquet_dir)[0])


def parquet_task_pages(parquet_dir: Path, limit: int | None = None) -> Iterator[list[TaskRecord]]:
    """Every decision of a Parquet export, one `tasks` partition (a month of one chain) at a time, in creation
    order within it, with its policy source — the export stands in for the DB."""
    import duckdb

    parts, blobs_glob = export_partitions(parquet_dir)
    left = limit if limit is not None else 2**62
    sources: dict[str, str] = {}
    for glob, _n in parts:
        if left <= 0:
            return
        con = duckdb.connect()
        try:
            if blobs_glob:
                cur = con.execute(PARQUET_TASKS_SQL + " LIMIT ?", [glob, blobs_glob, left])
            else:
                cur = con.execute(
                    "SELECT t.* EXCLUDE (month), CAST(NULL AS VARCHAR) AS policy_source FROM read_parquet(?, "
                    "hive_partitioning = true, hive_types = {'chain_id': BIGINT}) t "
                    "ORDER BY coalesce(t.created_block, -1), t.task_id LIMIT ?",
                    [glob, left],
                )
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()
        left -= len(rows)
        page = []
        for r in rows:
            src = r.get("policy_source")
            page.append(task_from_row(r, None if src is None else sources.setdefault(src, src)))
        yield page
