"""A tiny log-emitting contract (compiled with the pinned solcjs) to put arbitrary Newton-shaped logs on a devnet.

Used by `lens bench index` (volume) and the indexer tests (exact payloads, undecodable logs).
"""

from __future__ import annotations

import time
from functools import lru_cache

import requests
from eth_abi import encode
from eth_utils import keccak

from indexer.errors import LensError

SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Emits caller-supplied raw logs: a benchmark and test fixture for the Lens indexer (not a Newton contract).
contract LogEmitter {
    function emitMany(bytes32[][] calldata topicsList, bytes[] calldata datas) external {
        require(topicsList.length == datas.length, "length");
        for (uint256 i = 0; i < datas.length; i++) {
            _emit(topicsList[i], datas[i]);
        }
    }

    function emitRepeat(bytes32[] calldata topics, bytes calldata data, uint256 n) external {
        for (uint256 i = 0; i < n; i++) {
            _emit(topics, data);
        }
    }

    function _emit(bytes32[] calldata t, bytes calldata data) private {
        bytes memory d = data;
        uint256 k = t.length;
        assembly {
            let p := add(d, 32)
            let n := mload(d)
            switch k
            case 0 { log0(p, n) }
            case 1 { log1(p, n, calldataload(t.offset)) }
            case 2 { log2(p, n, calldataload(t.offset), calldataload(add(t.offset, 32))) }
            case 3 { log3(p, n, calldataload(t.offset), calldataload(add(t.offset, 32)), calldataload(add(t.offset, 64))) }
            default {
                log4(p, n, calldataload(t.offset), calldataload(add(t.offset, 32)), calldataload(add(t.offset, 64)),
                     calldataload(add(t.offset, 96)))
            }
        }
    }
}
"""

SEL_EMIT_MANY = keccak(text="emitMany(bytes32[][],bytes[])")[:4]
SEL_EMIT_REPEAT = keccak(text="emitRepeat(bytes32[],bytes,uint256)")[:4]


@lru_cache(maxsize=1)
def bytecode() -> str:
    """Creation bytecode of LogEmitter, compiled once per process with the pinned solcjs (the devnet's solc driver)."""
    from devnet.contracts import _run_solc  # the one node+solc standard-JSON driver of the project

    request = {
        "language": "Solidity",
        "sources": {"LogEmitter.sol": {"content": SOURCE}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "outputSelection": {"*": {"*": ["evm.bytecode.object"]}},
        },
    }
    _, out = _run_solc(request)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise LensError("LogEmitter does not compile: " + errors[0].get("formattedMessage", ""))
    return "0x" + out["contracts"]["LogEmitter.sol"]["LogEmitter"]["evm"]["bytecode"]["object"]


def rpc(url: str, method: str, params: list):
    """One JSON-RPC call (raises on an error answer)."""
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=120).json()
    if "error" in r:
        raise RuntimeError(f"{method}: {r['error']}")
    return r["result"]


def sender(url: str) -> str:
    """Anvil's first unlocked account."""
    return rpc(url, "eth_accounts", [])[0]


def send(url: str, to: str | None, data: bytes | str, frm: str | None = None, gas: int = 29_000_000) -> dict:
    """Send a transaction from an unlocked anvil account and return its receipt (raises if it reverted)."""
    frm = frm or sender(url)
    tx = {"from": frm, "data": data if isinstance(data, str) else "0x" + data.hex(), "gas": hex(gas)}
    if to:
        tx["to"] = to
    h = rpc(url, "eth_sendTransaction", [tx])
    receipt = rpc(url, "eth_getTransactionReceipt", [h])
    # automine may answer a moment after the send returns: wait for its block rather than mine a second one
    # (tests count blocks); only a node with automine off gets an explicit evm_mine
    deadline = time.monotonic() + 1.0
    while receipt is None and time.monotonic() < deadline:
        time.sleep(0.01)
        receipt = rpc(url, "eth_getTransactionReceipt", [h])
    if receipt is None:
        rpc(url, "evm_mine", [])
        receipt = rpc(url, "eth_getTransactionReceipt", [h])
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"transaction {h} reverted")
    return receipt


def deploy(url: str) -> str:
    """Deploy a LogEmitter; returns its lower-case address."""
    return send(url, None, bytecode())["contractAddress"].lower()


def emit_many(url: str, emitter: str, logs: list[tuple[list[str], bytes]]) -> dict:
    """One transaction emitting the given (topics, data) logs in order; returns the receipt."""
    topics = [[bytes.fromhex(t[2:]) for t in ts] for ts, _ in logs]
    datas = [d for _, d in logs]
    return send(url, emitter, SEL_EMIT_MANY + encode(["bytes32[][]", "bytes[]"], [topics, datas]))


def emit_repeat(url: str, emitter: str, topics: list[str], data: bytes, n: int) -> dict:
    """One transaction emitting the same log n times."""
    return send(
        url,
        emitter,
        SEL_EMIT_REPEAT + encode(["bytes32[]", "bytes", "uint256"], [[bytes.fromhex(t[2:]) for t in topics], data, n]),
    )


# ---- encoding Newton events (eth-abi, the reference encoder) ------------------------------------------


def _topic(type_: str, v) -> str:
    if type_ == "address":
        return "0x" + "0" * 24 + v.lower()[2:]
    if type_ == "bool":
        return "0x" + ("1" if v else "0").rjust(64, "0")
    if type_.startswith("bytes"):
        b = v if isinstance(v, bytes) else bytes.fromhex(v[2:])
        return "0x" + b.ljust(32, b"\0").hex()
    return "0x" + int(v).to_bytes(32, "big").hex()


def encode_event(topic0: str, values: dict) -> tuple[list[str], bytes]:
    """(topics, data) of one log of the layout with this topic0, from eth-abi-style values by parameter name."""
    from indexer.abi import BY_TOPIC0, canonical

    lay = BY_TOPIC0[topic0]
    topics = [topic0] + [_topic(p.type, values[p.name]) for p in lay.indexed]
    data = encode([canonical(p.type) for p in lay.data_params], [values[p.name] for p in lay.data_params])
    return topics, data


def sample_task_logs(
    i: int, policy_source: bytes, client: str, policy: str, operator_ids: list[bytes]
) -> list[tuple[list[str], bytes]]:
    """Realistic current-layout logs of one task: NewTaskCreated, PolicyDenied (every 5th), TaskResponded, AttestationSpent."""
    from indexer.abi import topic0_of

    task_id = keccak(b"bench-task" + i.to_bytes(8, "big"))
    policy_id = keccak(b"policy-id")
    sender_ = "0x" + keccak(b"agent" + (i % 50).to_bytes(2, "big"))[:20].hex()
    to = "0x" + keccak(b"token")[:20].hex()
    call = keccak(text="transfer(address,uint256)")[:4] + encode(["address", "uint256"], [sender_, 10**18 * (i % 1000)])
    intent = (sender_, to, 0, call, 31337, b"transfer(address,uint256)")
    params = b'{"max_amount":"1000000000000000000000","allowlist":["0x1111111111111111111111111111111111111111"]}'
    task = (task_id, client, 100 + i, 67, intent, b"\x01" * 65, b'{"asset":"dUSD"}', b"\x00", 1_700_000_000 + i)
    state = (policy, policy_id, (params, 100))
    deny = i % 5 == 0
    result = encode(["bool"], [not deny])
    pdata = [(b'{"asset":"dUSD"}', b'{"sanctions":{"listed":false},"spend":{"today":"5"}}', "0x" + "22" * 20, 10**6)]
    response = (
        task_id,
        client,
        policy_id,
        policy,
        intent,
        b"\x01" * 65,
        result,
        (policy_id, policy, policy_source, pdata),
        (params, 100),
        1_700_000_000 + i,
    )
    g1 = [
        (int.from_bytes(keccak(o), "big") % (2**254), int.from_bytes(keccak(o + b"y"), "big") % (2**254))
        for o in operator_ids[:1]
    ]
    nss = encode(
        [
            "(uint32[],(uint256,uint256)[],(uint256,uint256)[],(uint256[2],uint256[2]),(uint256,uint256),uint32[],uint32[],uint32[][])"
        ],
        [([0] * len(g1), g1, [(1, 2)], ([3, 4], [5, 6]), (7, 8), [0], [0], [[0] * len(g1)])],
    )
    cert = (200 + i, 300 + i, keccak(b"nonsigners" + i.to_bytes(8, "big")), nss)
    logs = [encode_event(topic0_of("NewTaskCreated"), {"taskId": task_id, "task": task, "state": state})]
    if deny:
        logs.append(
            encode_event(
                topic0_of("PolicyDenied"),
                {
                    "policyClient": client,
                    "taskId": task_id,
                    "policyId": policy_id,
                    "intentHash": keccak(b"intent"),
                    "referenceBlock": 200 + i,
                },
            )
        )
    logs.append(encode_event(topic0_of("TaskResponded"), {"taskResponse": response, "responseCertificate": cert}))
    if not deny:
        att = (task_id, policy_id, client, 300 + i, intent, b"\x01" * 65)
        logs.append(encode_event(topic0_of("AttestationSpent"), {"taskId": task_id, "attestation": att}))
    return logs
