"""`lens bench index`: build a devnet range of Newton-shaped logs, then time a raw eth_getLogs client and the indexer on it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from eth_utils import keccak

from devnet import emitter
from indexer.deployment import load as load_deployment
from indexer.deployment import parse
from indexer.extract import Rpc, plan_ranges
from indexer.run import Indexer, IndexOptions, _filters

POLICY = Path(__file__).resolve().parent.parent / "data" / "policies" / "spending_limits" / "policy.rego"


def build_range(url: str, events: int, per_tx: int = 48) -> tuple[str, int]:
    """Deploy a LogEmitter and emit at least `events` task-lifecycle logs, one transaction (block) per ~per_tx logs."""
    em = emitter.deploy(url)
    source = POLICY.read_bytes() if POLICY.exists() else b"package bench\ndefault allow := true\n"
    client, policy = "0x" + keccak(b"client")[:20].hex(), "0x" + keccak(b"policy")[:20].hex()
    ops = [keccak(b"op" + bytes([i])) for i in range(10)]
    n, i = 0, 0
    frm = emitter.sender(url)
    while n < events:
        logs = []
        while len(logs) < per_tx:
            logs += emitter.sample_task_logs(i, source, client, policy, ops)
            i += 1
        if frm:
            emitter.emit_many(url, em, logs)
        n += len(logs)
    return em, n


def raw_fetch(url: str, ranges: list[tuple[int, int]], filters) -> tuple[int, float, float]:
    """A minimal client: eth_getLogs over the ranges with the indexer's filters, JSON-parsed, nothing else.

    Returns (logs, wall seconds, this client's CPU seconds)."""
    s = requests.Session()
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for lo, hi in ranges:
        for f in filters:
            flt = {"fromBlock": hex(lo), "toBlock": hex(hi), "topics": [list(f.topics)]}
            if f.addresses:
                flt["address"] = list(f.addresses)
            r = s.post(
                url,
                data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [flt]}),
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            n += len(r.json()["result"])
    return n, time.perf_counter() - t0, time.process_time() - c0


def _node_cpu(pid: int | None) -> float | None:
    """CPU seconds the node (and its children: anvil from npm is a node wrapper) has used so far; None if unknown."""
    if pid is None:
        return None
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
        return sum(t.user + t.system for t in (p.cpu_times() for p in procs))
    except psutil.Error:
        return None


def _listener_pid(url: str) -> int | None:
    """The local process listening on the URL's port (the node of a reused devnet), if this machine runs it."""
    from urllib.parse import urlparse

    import psutil

    u = urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost") or not u.port:
        return None
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == u.port and c.pid:
                return c.pid
    except psutil.Error:
        return None
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 2)


def measure(dep, url: str, head: int, log: Callable[[str], None], node_pid: int | None = None) -> dict:
    """Raw eth_getLogs throughput (best of two, after a warm-up) vs the indexer from an empty DB over start..head.

    Besides the wall-clock ratio it reports where the CPU went, per stage and per process (the node serving the logs
    shares the machine's cores with the indexer), and the load average: on a shared machine both move the ratio."""
    ranges = plan_ranges(dep.start_block, head, 2000)
    filters = _filters(dep)
    load_before = os.getloadavg()
    raw_fetch(url, ranges, filters)  # warm the node's caches like the indexer run will find them
    best = raw_cpu = raw_node = None
    for _ in range(2):
        n0 = _node_cpu(node_pid)
        got, secs, cpu = raw_fetch(url, ranges, filters)
        if best is None or secs < best:
            best, raw_cpu, raw_node = secs, cpu, _diff(n0, _node_cpu(node_pid))
    raw_rate = got / best
    log(f"raw eth_getLogs: {got} logs in {best:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        ix = Indexer(
            dep,
            IndexOptions(
                db=db,
                rpc_url=url,
                start=dep.start_block,
                end=head,
                batch_blocks=2000,
                confirmations=0,
                metadata_timeout_s=0.1,
            ),
        )
        c0 = os.times()
        n0 = _node_cpu(node_pid)
        t0 = time.perf_counter()
        st = ix.run()
        wall = time.perf_counter() - t0
        c1 = os.times()
        node_cpu = _diff(n0, _node_cpu(node_pid))
    rate = st.logs / wall
    return {
        "events": st.logs,
        "blocks": head - dep.start_block + 1,
        "raw_logs_per_s": raw_rate,
        "indexer_logs_per_s": rate,
        "ratio": rate / raw_rate,
        "raw_s": best,
        "indexer_s": wall,
        "rows": st.rows,
        "undecodable": st.undecodable,
        "commits": st.commits,
        "stages_s": {k: round(v, 3) for k, v in st.seconds.items()},
        "target_ratio": 0.5,
        "goal_ratio": 0.8,
        "cpu_s": {
            "writer": round(c1.user + c1.system - c0.user - c0.system, 2),
            "fetch_decode_workers": round(
                max(0.0, c1.children_user + c1.children_system - c0.children_user - c0.children_system), 2
            ),
            "node": node_cpu,  # the node serving the logs (None when reusing a node this run did not start)
        },
        # CPU seconds per pipeline stage (thread time, summed over worker processes): the biggest is the next bound
        "stage_cpu_s": {k: round(v, 3) for k, v in st.cpu.items()},
        "stage_cpu_us_per_log": {k: round(v / max(st.logs, 1) * 1e6, 1) for k, v in st.cpu.items()},
        # process CPU no stage accounts for: moving decoded ranges between processes, forks, waits, imports
        "unattributed_cpu_s": round(
            c1.user
            + c1.system
            - c0.user
            - c0.system
            + c1.children_user
            + c1.children_system
            - c0.children_user
            - c0.children_system
            - sum(st.cpu.values()),
            2,
        ),
        "raw_cpu_s": {"client": round(raw_cpu, 2), "node": raw_node},
        "machine": {
            "cores": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def run_bench(
    events: int = 50_000, log: Callable[[str], None] = print, deployment: str | None = None, rpc_url: str | None = None
) -> dict:
    """Measure over an existing deployment's range (reuse), or build a fresh devnet range of >= `events` logs."""
    if deployment:
        dep = load_deployment(deployment)
        url = rpc_url or dep.rpc_url
        head = Rpc(url).head()
        log(f"reusing {dep.name}: blocks {dep.start_block}..{head} on {url}")
        return dict(measure(dep, url, head, log, _listener_pid(url)), source=dep.source)
    from devnet.anvil import start_anvil

    node = start_anvil(port=None)
    try:
        log(f"building a devnet range of >= {events} events on {node.url} …")
        em, n = build_range(node.url, events)
        head = int(emitter.rpc(node.url, "eth_blockNumber", []), 16)
        dep = parse(
            {
                "name": "bench",
                "chain_id": node.chain_id,
                "rpc_url": node.url,
                "start_block": 0,
                "confirmations": 0,
                "contracts": {"taskManager": em},
            }
        )
        return dict(
            measure(dep, node.url, head, log, node.pid), emitted=n, source="LogEmitter range (task-lifecycle logs)"
        )
    finally:
        node.stop()
