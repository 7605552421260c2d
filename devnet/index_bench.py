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


def raw_fetch(url: str, ranges: list[tuple[int, int]], filters) -> tuple[int, float]:
    """A minimal client: eth_getLogs over the ranges with the indexer's filters, JSON-parsed, nothing else."""
    s = requests.Session()
    n = 0
    t0 = time.perf_counter()
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
    return n, time.perf_counter() - t0


def measure(dep, url: str, head: int, log: Callable[[str], None]) -> dict:
    """Raw eth_getLogs throughput (best of two, after a warm-up) vs the indexer from an empty DB over start..head."""
    ranges = plan_ranges(dep.start_block, head, 2000)
    filters = _filters(dep)
    raw_fetch(url, ranges, filters)  # warm the node's caches like the indexer run will find them
    best = None
    for _ in range(2):
        got, secs = raw_fetch(url, ranges, filters)
        best = secs if best is None else min(best, secs)
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
        t0 = time.perf_counter()
        st = ix.run()
        wall = time.perf_counter() - t0
        c1 = os.times()
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
        "cpu_s": {
            "writer": round(c1.user + c1.system - c0.user - c0.system, 2),
            "fetch_decode_workers": round(
                c1.children_user + c1.children_system - c0.children_user - c0.children_system, 2
            ),
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
        return dict(measure(dep, url, head, log), source=dep.source)
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
        return dict(measure(dep, node.url, head, log), emitted=n, source="LogEmitter range (task-lifecycle logs)")
    finally:
        node.stop()
