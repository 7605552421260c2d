"""Replay from the chain alone: a policy no indexed log describes gets its entrypoint from its own entrypoint() read
on a real anvil chain, and a token's amount is scaled by its own decimals() — both cached in the DB."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import duckdb
from eth_abi import encode

from devnet.contracts import _run_solc
from devnet.emitter import send
from indexer.extract import Rpc
from tests.chainrows import ETH, Chain, call, intent, policy_source, task_row

SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
/// A policy contract as Lens sees one deployed outside the factory: only its entrypoint() getter.
contract BarePolicy {
    string public entrypoint;
    constructor(string memory e) { entrypoint = e; }
}
/// A token with six decimals.
contract SixDecimals {
    uint8 public constant decimals = 6;
    string public constant symbol = "USDx";
}
"""


@functools.lru_cache(maxsize=4)
def _deploy(url: str) -> tuple[str, str]:
    _, out = _run_solc(
        {
            "language": "Solidity",
            "sources": {"T.sol": {"content": SOURCE}},
            "settings": {"evmVersion": "cancun", "outputSelection": {"*": {"*": ["evm.bytecode.object"]}}},
        }
    )
    code = {n: "0x" + c["evm"]["bytecode"]["object"] for n, c in out["contracts"]["T.sol"].items()}
    # no PolicySet / PolicyDeployed names this policy: only its own entrypoint() does
    policy = send(url, None, code["BarePolicy"] + encode(["string"], ["spending_limits.allow"]).hex())
    token = send(url, None, code["SixDecimals"])
    return policy["contractAddress"].lower(), token["contractAddress"].lower()


def test_entrypoint_and_decimals_are_read_from_the_chain_and_cached(anvil, tmp_path: Path) -> None:
    policy, token = _deploy(anvil.url)
    rpc = Rpc(anvil.url, retries=1, timeout=10)
    limits = json.dumps({"max_tx_wei": str(10**9), "daily_cap_wei": str(10**12), "allowed_functions": []}).encode()
    oracle = {"spend": {"spent_today_wei": "0"}}
    src = policy_source("spending_limits")
    chain = Chain()
    data = call("transfer(address,uint256)", ["address", "uint256"], ["0x" + "b2" * 20, 2_500_000])
    it = intent(token, data=data, sig="transfer(address,uint256)")
    tid = b"\x01" * 32
    chain.created(tid, it, limits, policy=policy)
    chain.responded(tid, it, False, src, limits, oracle, policy=policy)
    gone = b"\x02" * 32  # a policy address with no code: entrypoint() fails, the package line decides
    nocode = "0x" + "0d" * 20
    chain.created(gone, intent("0x" + "b2" * 20, value=ETH), limits, policy=nocode)
    chain.responded(gone, intent("0x" + "b2" * 20, value=ETH), False, src, limits, oracle, policy=nocode)
    db = tmp_path / "reads.duckdb"
    chain.derive(db, call=rpc.call)

    row = task_row(db, tid)
    assert (row["entrypoint"], row["entrypoint_source"]) == ("spending_limits.allow", "entrypoint()")
    assert (row["asset"], row["amount_wei"], row["asset_decimals"], row["asset_symbol"]) == (
        token,
        "2500000",
        6,
        "USDx",
    )
    assert row["amount_num"] == 2.5
    other = task_row(db, gone)
    assert (other["entrypoint"], other["entrypoint_source"]) == ("spending_limits.allow", "package")

    con = duckdb.connect(str(db), read_only=True)
    try:
        cached = dict(con.execute("SELECT address, entrypoint FROM policy_entrypoints").fetchall())
        errors = dict(con.execute("SELECT address, error FROM policy_entrypoints").fetchall())
        tokens = con.execute("SELECT address, decimals, symbol FROM tokens").fetchall()
    finally:
        con.close()
    assert cached == {policy: "spending_limits.allow", nocode: None}
    assert "entrypoint()" in errors[nocode]
    assert tokens == [(token, 6, "USDx")]
    # cached: a second derive asks the chain nothing
    before = rpc.stats.requests
    chain.derive(db, call=rpc.call)
    assert rpc.stats.requests == before


def test_a_window_indexed_from_a_recent_block_replays_from_the_chain_alone(anvil, tmp_path: Path) -> None:
    """`lens index --from-block` past a task's creation: the task is known from its response only, its policy from
    no indexed log — it still replays (entrypoint() on chain, the call from the response's own intent)."""
    from devnet import emitter
    from indexer.deployment import parse
    from indexer.options import IndexOptions
    from indexer.run import index

    policy, token = _deploy(anvil.url)
    em = emitter.deploy(anvil.url)
    limits = json.dumps({"max_tx_wei": str(10**9), "daily_cap_wei": str(10**12), "allowed_functions": []}).encode()
    oracle = {"spend": {"spent_today_wei": "0"}}
    data = call("transfer(address,uint256)", ["address", "uint256"], ["0x" + "b2" * 20, 2 * 10**9])
    it = intent(token, data=data, sig="transfer(address,uint256)")
    tid = b"\x03" * 32
    logs = Chain()
    logs.created(tid, it, limits, policy=policy)
    logs.responded(tid, it, False, policy_source("spending_limits"), limits, oracle, policy=policy)
    created = emitter.emit_many(anvil.url, em, [(logs.logs[0]["topics"], bytes.fromhex(logs.logs[0]["data"][2:]))])
    emitter.rpc(anvil.url, "evm_mine", [])
    responded = emitter.emit_many(anvil.url, em, [(logs.logs[1]["topics"], bytes.fromhex(logs.logs[1]["data"][2:]))])
    first = int(created["blockNumber"], 16)
    window = int(responded["blockNumber"], 16)
    dep = parse(
        {
            "name": "window",
            "chain_id": anvil.chain_id,
            "rpc_url": anvil.url,
            "start_block": first,
            "confirmations": 0,
            "contracts": {"taskManager": em},
        }
    )
    db = tmp_path / "window.duckdb"
    index(dep, IndexOptions(db=str(db), start=window, end=window, worker=False, retries=2, backoff_s=0.01))
    row = task_row(db, tid)
    assert row["created_block"] is None and row["responded_block"] == window
    assert (row["entrypoint"], row["entrypoint_source"]) == ("spending_limits.allow", "entrypoint()")
    assert (row["function_name"], row["amount_wei"], row["amount_num"], row["asset_symbol"]) == (
        "transfer",
        str(2 * 10**9),
        2000.0,
        "USDx",
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        from app.engine import store
        from app.engine.replay import replay

        rep = replay(store.load_task(con, "0x" + tid.hex()))
    finally:
        con.close()
    assert rep.result == "match" and rep.replayed_allow is False and "exceeds_per_tx_limit" in rep.deny


def test_a_node_that_does_not_answer_caches_nothing(tmp_path: Path) -> None:
    """Only the contract's own answer (a value, a revert) is cached: with nothing listening, the read is tried again
    on a later commit, and the task meanwhile falls back to its package line."""
    import socket

    with socket.socket() as s:  # a free local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Rpc(f"http://127.0.0.1:{port}", retries=0, timeout=2)
    chain = Chain()
    tid = b"\x04" * 32
    data = call("transfer(address,uint256)", ["address", "uint256"], ["0x" + "b2" * 20, 5])
    it = intent("0x" + "3c" * 20, data=data, sig="transfer(address,uint256)")
    limits = json.dumps({"max_tx_wei": "10", "daily_cap_wei": "100", "allowed_functions": []}).encode()
    chain.created(tid, it, limits)
    chain.responded(tid, it, True, policy_source("spending_limits"), limits, {"spend": {"spent_today_wei": "0"}})
    db = tmp_path / "dead.duckdb"
    chain.derive(db, call=dead.call)
    row = task_row(db, tid)
    assert row["entrypoint_source"] == "package" and row["asset_decimals"] is None and row["amount_num"] is None
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM policy_entrypoints").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    finally:
        con.close()
