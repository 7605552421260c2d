"""The indexing loop: fetch + decode ahead (worker processes for long ranges, a thread near the head), then one
DuckDB transaction per batch with raw rows, derived rows and the checkpoint; follow the head; roll back reorgs."""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from indexer import derive, load, reorg
from indexer.abi import BOUND_TOPICS, OPEN_TOPICS
from indexer.decode import TABLES, UNDECODABLE_COLUMNS, Column, DecodedBatch, decode_logs
from indexer.deployment import Deployment, check_against_chain, find_creation_block
from indexer.errors import LensError
from indexer.extract import (
    UNASKED,
    LogFilter,
    Part,
    RangeSizer,
    RawResult,
    Rpc,
    RpcError,
    count_logs,
    fetch_range_parts,
    materialize,
)
from indexer.metadata import MetadataFetcher
from indexer.options import IndexOptions

# Tuning knobs without a shared setting yet (tests use them to force many small transactions).

BLOCK_COLUMNS = (
    Column("chain_id", "BIGINT"),
    Column("block_number", "BIGINT"),
    Column("block_hash", "VARCHAR"),
    Column("parent_hash", "VARCHAR"),
    Column("block_time", "TIMESTAMP"),
)
BLOB_COLUMNS = (Column("hash", "VARCHAR"), Column("content", "VARCHAR"))
META_COLUMNS = (
    Column("uri", "VARCHAR"),
    Column("fetched_at", "TIMESTAMP"),
    Column("ok", "BOOLEAN"),
    Column("content", "VARCHAR"),
    Column("error", "VARCHAR"),
)


@dataclass
class Stats:
    """Counters and per-stage seconds of one run (the progress bar and `lens bench index` read them)."""

    start_block: int = 0
    target_block: int = 0
    current_block: int = 0
    logs: int = 0
    rows: int = 0
    undecodable: int = 0
    commits: int = 0
    reorgs: int = 0
    seconds: dict = field(
        default_factory=lambda: {"fetch": 0.0, "decode": 0.0, "load": 0.0, "derive": 0.0, "wait_lock": 0.0}
    )
    # CPU seconds per stage, whichever process or thread ran it (seconds above are wall time, overlapping)
    cpu: dict = field(default_factory=lambda: dict.fromkeys(CPU_STAGES, 0.0))
    started: float = field(default_factory=time.perf_counter)


FOLLOW_MIN_GAP_S = 0.25  # follow mode: the shortest pause between rounds, with the write lock released

# setup: chain checks and the schema; fetch: HTTP reads (and the JSON parse of small answers); parse: JSON of big
# answers + the asked-for checks; decode: ABI → rows; pack: rows → Arrow; transfer: the writer receiving a range
# decoded by a worker process; load: DuckDB inserts, commits, checkpoints (on close), meta; derive: derived tables.
CPU_STAGES = ("setup", "fetch", "parse", "decode", "pack", "transfer", "load", "derive")


@dataclass
class _Fetched:
    """One fetched range: raw logs (thread path) or already decoded rows (worker-process path)."""

    lo: int
    hi: int
    n_logs: int
    header: dict
    logs: list | None = None
    block_times: dict = field(default_factory=dict)
    batch: Packed | None = None
    fetch_s: float = 0.0
    decode_s: float = 0.0
    retries: int = 0
    splits: int = 0
    faults: dict = field(default_factory=dict)  # RPC faults met while fetching this range (kind → count)
    cpu: dict = field(default_factory=dict)  # stage → CPU seconds spent on this range (thread time)


@dataclass
class Packed:
    """A decoded range ready for the writer: Arrow tables (cheap to ship between processes) and small side data."""

    arrow: dict = field(default_factory=dict)  # table → pa.Table
    undecodable: list = field(default_factory=list)
    blocks: dict = field(default_factory=dict)
    blobs: dict = field(default_factory=dict)
    task_ids: set = field(default_factory=set)
    policies: set = field(default_factory=set)
    rows: int = 0


def _meta_rows(done: list) -> list[list]:
    """Finished metadata fetches → operator_metadata rows (META_COLUMNS order)."""
    return [[m.uri, m.fetched_at, m.ok, m.content, m.error] for m in done]


_POLICY_COLUMNS = (
    ("ev_new_task_created", "state_policy_address"),
    ("ev_task_responded", "task_response_policy_address"),
)


def pack(batch: DecodedBatch) -> Packed:
    """Rows → Arrow per table, plus the task ids and policy addresses the writer's derive step needs."""
    out = Packed(undecodable=batch.undecodable, blocks=batch.blocks, blobs=batch.blobs)
    for table, rows in batch.rows.items():
        cols = TABLES[table]
        names = [c.name for c in cols]
        key = derive.TASK_KEYS.get(table)
        if key:
            i = names.index(key)
            out.task_ids |= {r[i] for r in rows}
        for t, col in _POLICY_COLUMNS:
            if t == table:
                i = names.index(col)
                out.policies |= {r[i] for r in rows if r[i]}
        out.arrow[table] = load.arrow_table(cols, rows)
        out.rows += len(rows)
    return out


def merge(parts: list[Packed]) -> Packed:
    """One Packed from consecutive ones."""
    import pyarrow as pa

    out = Packed()
    per_table: dict[str, list] = {}
    for p in parts:
        for t, a in p.arrow.items():
            per_table.setdefault(t, []).append(a)
        out.undecodable += p.undecodable
        out.blocks.update(p.blocks)
        out.blobs.update(p.blobs)
        out.task_ids |= p.task_ids
        out.policies |= p.policies
        out.rows += p.rows
    out.arrow = {t: (v[0] if len(v) == 1 else pa.concat_tables(v)) for t, v in per_table.items()}
    return out


def fetch_ranges(
    rpc: Rpc,
    lo: int,
    hi: int,
    filters: list[LogFilter],
    sizer: RangeSizer,
    lazy: bool,
    emit: Callable[[_Fetched], None],
    stopped: Callable[[], bool],
) -> None:
    """Fetch lo..hi range by range (adaptive size) and emit each in order.

    lazy=True leaves big answers unparsed (`parts`) for the decoding thread: JSON parsing holds the GIL for the whole
    answer, which would stall the decoder for as long (and vice versa).
    """
    b = lo
    while b <= hi and not stopped():
        e = min(hi, b + sizer.size - 1)
        t0, c0 = time.perf_counter(), time.thread_time()
        r0, s0, f0 = rpc.stats.retries, rpc.stats.splits, Counter(rpc.stats.faults)
        parts = fetch_range_parts(rpc, b, e, filters, sizer, raw_ok=lazy)
        header = _header(rpc, e)
        n = count_logs(parts)
        times: dict = {}
        if n and not all(
            b'"blockTimestamp"' in p.answer.body
            if isinstance(p.answer, RawResult)
            else all("blockTimestamp" in x for x in p.answer)
            for p in parts
        ):
            # a node without blockTimestamp in logs: fetch the headers now
            logs = materialize(parts, rpc.stats.faults)
            parts = [Part(b, e, None, logs)]
            missing = sorted({int(x["blockNumber"], 16) for x in logs})
            times = {k: int(h["timestamp"], 16) for k, h in rpc.headers(missing).items()}
        t1 = time.perf_counter()
        if rpc.stats.splits == s0:
            sizer.success(n, e - b + 1)
        emit(
            _Fetched(
                b,
                e,
                n,
                header,
                logs=parts,
                block_times=times,
                fetch_s=t1 - t0,
                retries=rpc.stats.retries - r0,
                splits=rpc.stats.splits - s0,
                faults=dict(rpc.stats.faults - f0),
                cpu={"fetch": time.thread_time() - c0},
            )
        )
        b = e + 1


def _header(rpc: Rpc, number: int) -> dict:
    """The header of a block the node told us about; a node behind (load-balanced, syncing) is asked again."""
    for attempt in range(rpc.retries + 1):
        header = rpc.headers([number]).get(number)
        if header is not None:
            return header
        rpc.stats.fault("node behind", f"the node has no block {number} yet")
        rpc.sleep(min(rpc.backoff * 2**attempt, 5.0))
    raise LensError(f"the node has no block {number}", "is the RPC synced? (or pass --to-block below its head)")


def torn(logs: list[dict], item: _Fetched) -> bool:
    """A reorg while we fetched: logs of the range's last block disagree with its header."""
    h = item.header["hash"].lower()
    return any(int(x["blockNumber"], 16) == item.hi and x["blockHash"].lower() != h for x in logs)


def decode_item(item: _Fetched, chain_id: int) -> None:
    """Parse and decode a fetched range in place (item.batch); raises _Torn if the range was torn by a reorg."""
    t0, c0 = time.perf_counter(), time.thread_time()
    unasked: Counter = Counter()
    try:
        logs = materialize(item.logs, unasked)
        if unasked:
            item.faults[UNASKED] = item.faults.get(UNASKED, 0) + unasked[UNASKED]
    except (ValueError, RpcError, KeyError, TypeError, AttributeError):
        # an answer that looked whole but does not parse (truncated by the node or a proxy): fetch the range again
        raise _Torn(item.lo) from None
    if torn(logs, item):
        raise _Torn(item.lo)
    c1 = time.thread_time()
    decoded = decode_logs(logs, chain_id, item.block_times)
    c2 = time.thread_time()
    item.batch = pack(decoded)
    c3 = time.thread_time()
    for stage, s in (("parse", c1 - c0), ("decode", c2 - c1), ("pack", c3 - c2)):
        item.cpu[stage] = item.cpu.get(stage, 0.0) + s
    item.n_logs = len(logs)
    item.logs, item.block_times = None, {}
    item.decode_s = time.perf_counter() - t0


def _arrives(empty: Callable[[], bool], within_s: float) -> bool:
    """Does the next item arrive within `within_s` (polled every few ms)?"""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        time.sleep(0.005)
        if not empty():
            return True
    return False


class _Torn(Exception):
    def __init__(self, lo: int) -> None:
        super().__init__(f"range from block {lo} changed while it was fetched (reorg)")
        self.lo = lo


def _worker(
    url: str,
    retries: int,
    timeout: float,
    backoff: float,
    lo: int,
    hi: int,
    filters: list[LogFilter],
    size: int,
    maximum: int,
    chain_id: int,
    out,
    stop,
) -> None:
    """Worker process: a thread fetches (waiting on the node) while the main thread decodes; rows go to the writer.

    A separate process because the GIL would serialize JSON parsing and decoding with the DuckDB writer. It stops
    by itself when the writer goes away (even after a kill -9), so nothing is left running.
    """
    gc.freeze()  # the heap inherited from the writer is never garbage: keep collections from rescanning it
    gc.set_threshold(200_000, 100, 1000)
    # the CLI's SIGINT/SIGTERM handlers were inherited by fork: a worker is stopped by its parent, or dies with it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watchdog() -> None:
        # wherever the worker is blocked (even flushing a pipe nobody reads at exit), it must not outlive the writer
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True, name="lens-watchdog").start()
    local: queue.Queue = queue.Queue(maxsize=2)
    sizer = RangeSizer(size=size, maximum=maximum)

    def gone() -> bool:
        return stop.is_set() or os.getppid() != parent

    def put(q, item) -> bool:
        while not gone():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    rpc = Rpc(url, retries=retries, timeout=timeout, backoff=backoff)
    rpc.answered = True  # the writer reached this node already: a refusal now is a fault to retry

    def fetch() -> None:
        try:
            fetch_ranges(rpc, lo, hi, filters, sizer, True, lambda it: put(local, it), gone)
            put(local, ("done", sizer.size))
        except LensError as e:
            put(local, ("error", str(e), e.hint))
        except BaseException as e:
            put(local, ("error", f"{type(e).__name__}: {e}", ""))

    th = threading.Thread(target=fetch, daemon=True)
    th.start()
    try:
        _decode_loop(local, out, chain_id, gone, put, rpc)
    finally:
        if os.getppid() != parent:
            out.cancel_join_thread()  # the writer is gone: nobody will read what is buffered, do not wait at exit


def _decode_loop(local: queue.Queue, out, chain_id: int, gone: Callable, put: Callable, rpc: Rpc) -> None:
    """The worker's main thread: parse and decode fetched ranges in order and hand them to the writer.

    The last message (done, torn or error) carries the RPC faults no shipped range carried, so the writer counts
    every fault even of ranges it never receives."""
    shipped: Counter = Counter()

    def unshipped() -> dict:
        return dict(rpc.stats.faults.copy() - shipped)  # copy: the fetch thread may be adding to it

    while not gone():
        try:
            item = local.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(item, tuple):
            put(out, (*item, unshipped()))
            return
        # a torn or failed chunk only reports: the writer reads the chunks in order, so the earlier ones (still being
        # fetched by other workers) are committed first; stopping them here would lose them mid-way
        try:
            decode_item(item, chain_id)
        except _Torn as t:
            out.put(("torn", t.lo, unshipped()))
            return
        except Exception as e:
            out.put(("error", f"{type(e).__name__}: {e}", "", unshipped()))
            return
        shipped.update({k: v for k, v in item.faults.items() if k != UNASKED})  # UNASKED is counted at decode
        if not put(out, item):
            return


def _filters(dep: Deployment) -> list[LogFilter]:
    """Address-bound topics from the deployment's addresses; open topics (policy/client lifecycle) from any address."""
    return [LogFilter(dep.addresses, BOUND_TOPICS + OPEN_TOPICS), LogFilter(None, OPEN_TOPICS)]


class Indexer:
    """One indexing run over one deployment into one DuckDB file."""

    def __init__(
        self,
        dep: Deployment,
        opts: IndexOptions,
        on_progress: Callable[[Stats], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.dep = dep
        self.opts = opts
        self.rpc = Rpc(
            opts.rpc_url or dep.rpc_url, retries=opts.retries, timeout=opts.rpc_timeout_s, backoff=opts.backoff_s
        )
        self.stats = Stats()
        self.on_progress = on_progress or (lambda s: None)
        self.stop = stop or threading.Event()
        self.confirmations = (
            dep.confirmations if opts.confirmations is None or opts.confirmations < 0 else opts.confirmations
        )
        # start small: the first request over an unknown range should not be the whole range
        self.sizer = RangeSizer(size=max(1, min(opts.batch_blocks, 100)), maximum=max(1, opts.batch_blocks) * 50)
        self._known_policies: set[str] = set()
        self.filters = _filters(dep)
        self.dep_policies = [dict(p, name=name) for name, p in dep.policies.items()]  # derive.refresh input, per commit
        self.metadata = MetadataFetcher(
            opts.metadata_timeout_s, opts.ipfs_gateway, allow_private=opts.metadata_allow_private
        )
        self._con = None
        self._held_since = 0.0
        self.checkpoint: int | None = None
        self.max_block = -1
        self.tip: tuple[int, str] | None = None  # (number, hash) of the last block this run committed
        self.origin = dep.start_block  # where an empty DB starts: a range beginning here may set the checkpoint
        self.started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    # --- connection handling: hold the write lock only briefly -----------------------------------
    def _acquire(self):
        if self._con is None:
            t0, c0 = time.perf_counter(), time.thread_time()
            self._cm = load.connect_write(
                self.opts.db, threads=self.opts.duckdb_threads, checkpoint=self.opts.duckdb_checkpoint
            )
            self._con = self._cm.__enter__()
            self.stats.seconds["wait_lock"] += time.perf_counter() - t0
            self.stats.cpu["load"] += time.thread_time() - c0  # opening replays what the last close left
            self._held_since = time.monotonic()
        return self._con

    def _release(self, pause: bool = False) -> None:
        if self._con is not None:
            c0 = time.thread_time()
            self._cm.__exit__(None, None, None)
            self._con = None
            self.stats.cpu["load"] += time.thread_time() - c0  # closing checkpoints the WAL into the file
            if pause:
                time.sleep(0.2)  # let a waiting reader in

    def _maybe_release(self) -> None:
        if self._con is not None and time.monotonic() - self._held_since > self.opts.max_hold_s:
            self._release(pause=True)

    # --- setup ------------------------------------------------------------------------------------
    def prepare(self) -> int:
        """Check the deployment against the chain, create the schema, and return the first block to index."""
        if not (self.opts.rpc_url or self.dep.rpc_url):
            raise LensError(f"no RPC URL for deployment {self.dep.name}", "pass --rpc URL")
        check_against_chain(self.dep, self.rpc)
        con = self._acquire()
        con.execute("BEGIN")
        load.ensure_schema(con)
        load.set_meta(
            con,
            {
                "deployment": self.dep.name,
                "chain_id": self.dep.chain_id,
                "deployment_file": self.dep.source,
                "rpc_url": self.rpc.url,
                "confirmations": self.confirmations,
                "roles": json.dumps(self._roles()),
                # the whole document, so the dashboard describes what this DB holds even without the file
                "deployment_json": json.dumps(
                    {
                        "name": self.dep.name,
                        "chain_id": self.dep.chain_id,
                        "rpc_url": self.rpc.url,
                        "start_block": self.dep.start_block,
                        "contracts": self.dep.contracts,
                        "policies": self.dep.policies,
                        "clients": self.dep.clients,
                    }
                ),
            },
        )
        con.execute("COMMIT")
        self.checkpoint = load.read_checkpoint(con, self.dep.chain_id, self.dep.addresses)
        self.max_block = self._max_indexed_block(con)
        self._release()
        self.origin = self.dep.start_block
        if self.opts.start is not None:
            if self.checkpoint is None:
                # a window of a deployment (--from-block): the checkpoint grows from there, so a later run resumes
                self.origin = self.opts.start
            return self.opts.start
        if self.checkpoint is None and self.dep.start_block_search and self.dep.start_block_upper:
            self.origin = self._search_start()
            return self.origin
        return self.dep.start_block if self.checkpoint is None else self.checkpoint + 1

    def _search_start(self) -> int:
        """The task manager's creation block (archive node), else the preset's start block."""
        tm = self.dep.contracts.get("taskManager")
        try:
            block = find_creation_block(self.rpc, tm, self.dep.start_block, self.dep.start_block_upper)
        except (RpcError, LensError) as e:
            self.record_error(f"creation-block search failed ({e}); indexing from block {self.dep.start_block}")
            return self.dep.start_block
        # the proxies of one deployment are created together; a margin keeps the others' first logs
        return max(self.dep.start_block, block - 10_000)

    def _max_indexed_block(self, con) -> int:
        """Highest block any committed batch covered (every batch stores its last block in `blocks`)."""
        row = con.execute("SELECT max(block_number) FROM blocks WHERE chain_id = ?", [self.dep.chain_id]).fetchone()
        return -1 if row[0] is None else row[0]

    # --- reorgs -------------------------------------------------------------------------------------
    def check_reorg(self) -> int | None:
        """Roll back to the fork point if the node's recent hashes differ from ours; returns the new checkpoint."""
        con = self._acquire()
        point = reorg.detect(con, self.rpc, self.dep.chain_id)
        if point is None:
            return None
        fork = max(point, self.dep.start_block - 1)
        con.execute("BEGIN")
        try:
            touched = reorg.rollback(con, self.dep.chain_id, fork)
            derive.refresh(
                con,
                self.dep.chain_id,
                fork,
                touched,
                set(derive.OPERATOR_TABLES + derive.POLICY_TABLES + derive.CHALLENGE_TABLES),
                self.dep_policies,
            )
            if self.checkpoint is not None and self.checkpoint > fork:
                load.write_checkpoint(con, self.dep.chain_id, self.dep.addresses, fork)
                self.checkpoint = fork
            load.set_meta(
                con,
                {"data_version": uuid.uuid4().hex, "indexed_head": fork, "last_reorg": f"rolled back to block {fork}"},
            )
            con.execute("COMMIT")
            self.max_block = self._max_indexed_block(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.stats.reorgs += 1
        return fork

    def _roles(self) -> dict[str, str]:
        """address → the deployment's names for it (for `lens index status`)."""
        roles: dict[str, list[str]] = {"*": ["open topics (any address)"]}
        for role, a in self.dep.contracts.items():
            roles.setdefault(a, []).append(role)
        for name, p in self.dep.policies.items():
            roles.setdefault(p["address"], []).append(f"policy {name}")
        for name, c in self.dep.clients.items():
            roles.setdefault(c["address"], []).append(f"client {name}")
        return {a: ", ".join(r) for a, r in roles.items()}

    # --- fetching (producer thread) --------------------------------------------------------------------
    def _producer(self, lo: int, hi: int, out: queue.Queue, halt: threading.Event) -> None:
        def put(item) -> None:
            while not halt.is_set():
                try:
                    out.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            fetch_ranges(
                self.rpc, lo, hi, self.filters, self.sizer, False, put, lambda: self.stop.is_set() or halt.is_set()
            )
            put(None)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(err)

    def index_range(self, lo: int, hi: int) -> None:
        """Index lo..hi (inclusive), committing every few thousand logs or every couple of seconds.

        Long ranges are fetched and decoded by a worker process (true parallelism with the DuckDB writer); short
        ones (follow mode) by a thread.
        """
        if hi - lo + 1 >= self.opts.worker_min_blocks and self.opts.worker:
            return self._index_range_worker(lo, hi)
        q: queue.Queue = queue.Queue(maxsize=self.opts.prefetch)
        halt = threading.Event()
        th = threading.Thread(target=self._producer, args=(lo, hi, q, halt), daemon=True, name="lens-fetch")
        th.start()
        try:
            self._consume(q.get, q.empty)
        finally:
            halt.set()
            th.join(timeout=10)

    def _index_range_worker(self, lo: int, hi: int) -> None:
        """Rolling pipeline of worker processes: chunk k+1 is fetched and decoded while chunk k is consumed.

        Each worker owns a contiguous chunk; the writer consumes chunks strictly in order, so commits (and the
        checkpoint) still advance block by block.
        """
        ctx = mp.get_context("fork")
        span = hi - lo + 1
        chunk = max(self.opts.worker_min_blocks // 2, -(-span // 8))
        chunks = [(a, min(hi, a + chunk - 1)) for a in range(lo, hi + 1, chunk)]
        stop = ctx.Event()
        running: list[tuple] = []  # (proc, queue) in chunk order
        next_chunk = 0
        self._release()  # never fork while holding the database
        # pyarrow imports pandas on its first array from Python objects (~0.3 CPU-s): do it once here, not per worker
        load.arrow_table((Column("warm", "BIGINT"),), [[0]])

        def spawn() -> None:
            nonlocal next_chunk
            a, b = chunks[next_chunk]
            next_chunk += 1
            q = ctx.Queue(maxsize=self.opts.prefetch * 4)
            proc = ctx.Process(
                target=_worker,
                name="lens-fetch",
                daemon=True,
                args=(
                    self.rpc.url,
                    self.opts.retries,
                    self.opts.rpc_timeout_s,
                    self.opts.backoff_s,
                    a,
                    b,
                    self.filters,
                    self.sizer.size,
                    self.sizer.maximum,
                    self.dep.chain_id,
                    q,
                    stop,
                ),
            )
            proc.start()
            running.append((proc, q))

        def fill() -> None:
            while next_chunk < len(chunks) and len(running) < self.opts.workers:
                self._release()
                spawn()

        def get():
            while True:
                if not running:
                    return None
                proc, q = running[0]
                c0 = time.thread_time()
                try:
                    item = q.get(timeout=0.5)
                except queue.Empty:
                    if not proc.is_alive() and q.empty():
                        if stop.is_set():
                            return None  # stopped on purpose (Ctrl-C): what was committed stays
                        return LensError("the fetch worker died unexpectedly", "run `lens index` again; it resumes")
                    if self.stop.is_set():
                        stop.set()
                    continue
                if isinstance(item, tuple):
                    self.rpc.stats.faults.update(item[-1])  # the worker's faults no range carried
                    if item[0] == "done":
                        self.sizer.size = item[1]
                        proc.join(timeout=5)
                        running.pop(0)
                        fill()
                        continue
                    if item[0] == "torn":
                        return _Torn(item[1])
                    return LensError(item[1], item[2])
                self.stats.cpu["transfer"] += time.thread_time() - c0  # reading and unpickling a decoded range
                return item

        try:
            fill()
            # (no chunk running: get() answers at once, nothing to wait for)
            self._consume(get, lambda: bool(running) and running[0][1].empty(), grace_s=0.25)
        finally:
            stop.set()
            for proc, _ in running:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()  # our own child, by its handle
                    proc.join(timeout=5)

    def _consume(self, get: Callable, empty: Callable[[], bool], grace_s: float = 0.0) -> None:
        """Commit fetched ranges in order; the write lock is let go while nothing is ready (after `grace_s`: a gap
        that short, between two worker chunks, would cost a checkpoint on close and a reopen for nothing)."""
        pending: list[_Fetched] = []
        n_pending = 0
        last_commit = time.monotonic()
        while True:
            if empty() and not _arrives(empty, grace_s):
                self._release()  # waiting for the node: let readers in meanwhile
            item = get()
            if isinstance(item, BaseException):
                if isinstance(item, _Torn) and pending:
                    self._commit(pending)  # everything before the torn range is fine
                raise item
            if item is not None:
                pending.append(item)
                n_pending += item.n_logs
                self.stats.seconds["fetch"] += item.fetch_s
                self.stats.seconds["decode"] += item.decode_s
                for stage, s in item.cpu.items():
                    self.stats.cpu[stage] += s
                if item.batch is not None:  # fetched in a worker process: its RPC client counted these
                    self.rpc.stats.retries += item.retries
                    self.rpc.stats.splits += item.splits
                    self.rpc.stats.faults.update(item.faults)
            done = item is None or self.stop.is_set()
            if pending and (
                done or n_pending >= self.opts.commit_logs or time.monotonic() - last_commit >= self.opts.commit_s
            ):
                self._commit(pending)
                pending, n_pending = [], 0
                last_commit = time.monotonic()
                self._maybe_release()
            if done:
                break

    def _commit(self, fetched: list[_Fetched]) -> None:
        """Decode and write a run of consecutive ranges in ONE transaction with derived rows and the checkpoint."""
        chain = self.dep.chain_id
        t0 = time.perf_counter()
        for f in fetched:
            if f.batch is None:
                c0 = f.cpu.copy()
                decode_item(f, chain)
                for stage, s in f.cpu.items():  # decoded here, after _consume added the fetch
                    self.stats.cpu[stage] += s - c0.get(stage, 0.0)
                if UNASKED in f.faults:  # decoded here, after its fetch faults were counted
                    self.rpc.stats.faults[UNASKED] += f.faults[UNASKED]
        c0 = time.thread_time()
        batch = merge([f.batch for f in fetched])
        self.stats.cpu["pack"] += time.thread_time() - c0  # merging the ranges' Arrow tables
        n_logs = sum(f.n_logs for f in fetched)
        t1 = time.perf_counter()
        self.stats.seconds["decode"] += t1 - t0
        lo, hi = fetched[0].lo, fetched[-1].hi
        header = fetched[-1].header
        blocks = [[chain, n, h, None, t] for n, (h, t) in sorted(batch.blocks.items()) if n != hi]
        blocks.append([chain, hi, header["hash"].lower(), header["parentHash"].lower(), int(header["timestamp"], 16)])
        task_ids = batch.task_ids
        contiguous = (
            self.checkpoint is None and lo <= self.origin or self.checkpoint is not None and lo <= self.checkpoint + 1
        )
        new_checkpoint = max(hi, self.checkpoint or -1) if contiguous else self.checkpoint
        head_for_status = max(hi, self.checkpoint or -1)
        meta_rows = _meta_rows(self.metadata.drain())
        touched_tables = set(batch.arrow) | ({"ev_operator_metadata_uri_updated"} if meta_rows else set())
        new_policies = batch.policies - self._known_policies
        if new_policies:  # a task bound to a policy we have not listed yet: rebuild policies/policy_versions
            touched_tables.add("ev_policy_set")
            self._known_policies |= new_policies

        con = self._acquire()
        t2 = time.perf_counter()
        c2 = time.thread_time()
        con.execute("BEGIN")
        try:
            fresh = lo > self.max_block  # nothing stored at or beyond lo: no key can collide
            for table, arrow in batch.arrow.items():
                load.insert_arrow(con, table, arrow, fresh=fresh)
            load.insert_rows(con, "undecodable_logs", UNDECODABLE_COLUMNS, batch.undecodable, fresh=fresh)
            con.execute("DELETE FROM blocks WHERE chain_id = ? AND block_number = ?", [chain, hi])
            load.insert_rows(con, "blocks", BLOCK_COLUMNS, blocks)
            if meta_rows:
                load.insert_rows(con, "operator_metadata", META_COLUMNS, meta_rows)
            if batch.blobs:
                load.insert_rows(con, "blobs", BLOB_COLUMNS, [[h, t] for h, t in sorted(batch.blobs.items())])
            t3, c3 = time.perf_counter(), time.thread_time()
            derive.refresh(
                con, chain, head_for_status, task_ids, touched_tables, self.dep_policies, since=lo, call=self.rpc.call
            )
            t4, c4 = time.perf_counter(), time.thread_time()
            if new_checkpoint is not None and new_checkpoint >= 0:
                load.write_checkpoint(con, chain, self.dep.addresses, new_checkpoint)
            load.set_meta(
                con,
                {"data_version": uuid.uuid4().hex, "indexed_head": head_for_status, **self._fault_meta()},
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.stats.seconds["load"] += (t3 - t2) + (time.perf_counter() - t4)
        self.stats.seconds["derive"] += t4 - t3
        self.stats.cpu["load"] += (c3 - c2) + (time.thread_time() - c4)
        self.stats.cpu["derive"] += c4 - c3
        self.checkpoint = new_checkpoint
        self.max_block = max(self.max_block, hi)
        self.tip = (hi, header["hash"].lower())
        self.stats.commits += 1
        self.stats.current_block = hi
        self.stats.logs += n_logs
        self.stats.rows += batch.rows
        self.stats.undecodable += len(batch.undecodable)
        if "ev_operator_metadata_uri_updated" in batch.arrow:
            uris = con.execute(
                "SELECT DISTINCT metadata_uri FROM operators WHERE chain_id = ? AND metadata_uri IS NOT NULL "
                "AND metadata_uri NOT IN (SELECT uri FROM operator_metadata)",
                [chain],
            ).fetchall()
            self.metadata.submit([u for (u,) in uris])
        self.on_progress(self.stats)

    def _fault_meta(self) -> dict[str, str]:
        """This run's RPC faults for `lens index status` (kind → count, and when the run started)."""
        return {
            "rpc_faults": json.dumps(dict(sorted(self.rpc.stats.faults.copy().items()))),  # the fetch thread adds
            "rpc_faults_since": self.started_at,
        }

    def flush_metadata(self, wait_s: float, give_up: bool = False) -> None:
        """Write finished metadata fetches (waiting up to wait_s) and refresh the operators table; give_up: record
        the fetches still running as timed out (a one-shot run never leaves one "not fetched yet")."""
        done = self.metadata.drain(wait_s, give_up)
        if not done:
            return
        con = self._acquire()
        con.execute("BEGIN")
        try:
            load.insert_rows(con, "operator_metadata", META_COLUMNS, _meta_rows(done))
            derive.refresh(
                con,
                self.dep.chain_id,
                self.checkpoint or 0,
                set(),
                {"ev_operator_metadata_uri_updated"},
                self.dep_policies,
            )
            load.set_meta(con, {"data_version": uuid.uuid4().hex})
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def record_error(self, message: str) -> None:
        """Store the last error on the checkpoints (best effort) so `lens index status` shows it."""
        if self._con is None and not os.path.exists(self.opts.db):
            return  # failed before anything was written (the node is down, say): leave no empty DB file behind
        try:
            con = self._acquire()
            con.execute("UPDATE checkpoints SET last_error = ? WHERE chain_id = ?", [message[:500], self.dep.chain_id])
        except Exception:
            pass

    def tip_unchanged(self) -> bool:
        """Whether the node still has the block this run committed last (one header request, no DB): each block
        commits to its parent, so an unchanged tip means nothing at or below it was reorganised."""
        if self.tip is None or self.tip[0] != self.max_block:
            return False
        got = self.rpc.headers([self.tip[0]]).get(self.tip[0])
        return got is not None and str(got.get("hash", "")).lower() == self.tip[1]

    # --- the whole run ------------------------------------------------------------------------------------
    def run(self) -> Stats:
        """Index from the checkpoint (or --from) to the target, then keep following the head if asked."""
        gc_threshold = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)  # decoding allocates millions of short-lived tuples: collect less often
        try:
            c0, l0 = time.thread_time(), self.stats.cpu["load"]
            start = self.prepare()
            self.stats.cpu["setup"] += time.thread_time() - c0
            self.stats.cpu["load"] = l0  # its open and close are setup: creating the schema
            self.stats.start_block = start
            explicit = self.opts.start is not None
            torn_streak, torn_checkpoint = 0, -2
            if self.checkpoint is not None and not explicit:
                fork = self.check_reorg()
                if fork is not None:
                    start = fork + 1
            while not self.stop.is_set():
                round_start = time.monotonic()
                head = self.rpc.head()
                target = head - self.confirmations
                if self.opts.end is not None:
                    target = min(target, self.opts.end)
                self.stats.target_block = max(target, self.stats.target_block)
                if start <= target:
                    try:
                        self.index_range(start, target)
                    except _Torn as t:
                        # the same checkpoint torn again and again: the node is broken, not reorging
                        torn_streak = torn_streak + 1 if self.checkpoint == torn_checkpoint else 1
                        torn_checkpoint = self.checkpoint
                        self.rpc.stats.fault("range changed or broken while fetched", str(t))
                        if torn_streak > self.opts.retries:
                            raise LensError(
                                f"the node keeps giving broken or changing answers from block {t.lo}",
                                "use another RPC endpoint (--rpc)",
                            ) from None
                        self.tip = None
                        self.check_reorg()
                        start = self.origin if self.checkpoint is None else self.checkpoint + 1
                        continue
                    start = target + 1
                    self.on_progress(self.stats)
                if not self.opts.follow or (self.opts.end is not None and start > self.opts.end):
                    break
                self.flush_metadata(0)
                self._release()
                # poll every poll_s from the start of the round (a round that took long waits less, so new blocks
                # are seen within poll_s of being mined), always leaving readers a moment with the file free
                self.stop.wait(max(FOLLOW_MIN_GAP_S, self.opts.poll_s - (time.monotonic() - round_start)))
                if self.stop.is_set():
                    break
                if self.tip_unchanged():
                    continue  # no reorg possible below our last block: skip opening the DB to compare hashes
                self.tip = None
                fork = self.check_reorg()
                if fork is not None and fork + 1 < start:
                    start = fork + 1
            # each fetch has its own deadline of metadata_timeout_s; the margin covers the last socket read
            self.flush_metadata(self.opts.metadata_timeout_s + 1.0, give_up=True)
            return self.stats
        except LensError as e:
            self.record_error(str(e))
            raise
        finally:
            gc.set_threshold(*gc_threshold)
            self._release()
            self.metadata.close()


def index(
    dep: Deployment,
    opts: IndexOptions,
    on_progress: Callable[[Stats], None] | None = None,
    stop: threading.Event | None = None,
) -> Stats:
    """Run the indexer once (or forever with opts.follow) and return its stats."""
    return Indexer(dep, opts, on_progress, stop).run()
