"""Send devnet transactions over raw JSON-RPC: unlocked or local keys, gas estimation, revert reasons as LensError."""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount

from devnet import rawtx
from devnet.contracts import is_revert, load_artifact, revert_reason
from indexer.errors import LensError

MAX_FEE_WEI = 100 * 10**9  # devnet gas price cap for locally signed transactions


def rpc(w3, method: str, params: list | None = None) -> Any:
    """One raw JSON-RPC call through w3's provider; an RPC error becomes a LensError."""
    resp = w3.provider.make_request(method, params or [])
    if resp.get("error"):
        err = resp["error"]
        raise LensError(f"{method} failed: {err.get('message', err)}", "is the devnet node running? (`lens devnet up`)")
    return resp["result"]


def _hex(v: int) -> str:
    return hex(int(v))


def _raise_revert(what: str, err: dict) -> None:
    raise LensError(
        f"{what} reverted: {revert_reason(err)}",
        "the contract rejected the call; the error name says which check failed",
    )


def estimate_gas(w3, tx: dict, what: str) -> int:
    """eth_estimateGas; a revert raises LensError naming the custom error."""
    resp = w3.provider.make_request("eth_estimateGas", [tx])
    if resp.get("error"):
        _raise_revert(what, resp["error"])
    return int(resp["result"], 16)


def call(w3, to: str, data: str | bytes, sender: str | None = None, block: str = "latest", what: str = "call") -> bytes:
    """eth_call returning raw bytes; a revert raises LensError naming the custom error."""
    tx: dict[str, Any] = {"to": to, "data": data if isinstance(data, str) else "0x" + data.hex()}
    if sender:
        tx["from"] = sender
    resp = w3.provider.make_request("eth_call", [tx, block])
    if resp.get("error"):
        _raise_revert(what, resp["error"])
    return bytes.fromhex(resp["result"][2:])


def chain_id(w3) -> int:
    """The node's chain id."""
    return int(rpc(w3, "eth_chainId"), 16)


def _pending_nonce(w3, address: str) -> int:
    # Asked every time on purpose: a cache keyed by URL goes stale when a fresh chain starts on a reused port
    # (tests, `lens devnet down/up`), and a too-high nonce would sit in anvil's queue forever.
    return int(rpc(w3, "eth_getTransactionCount", [address, "pending"]), 16)


def _sign_local(
    w3, sender: LocalAccount, to: str | None, data_hex: str, value: int, gas: int, nonce: int | None, cid: int | None
) -> str:
    """Sign with the simulation's signer (`rawtx`): the one signing path of the devnet."""
    signer = rawtx.Sender(
        bytes(sender.key), sender.address.lower(), _pending_nonce(w3, sender.address) if nonce is None else int(nonce)
    )
    raw, _ = rawtx.sign_tx(
        signer,
        chain_id(w3) if cid is None else int(cid),
        to,
        bytes.fromhex(data_hex[2:]),
        int(value),
        int(gas),
        MAX_FEE_WEI,
    )
    return raw


def _receipt(w3, tx_hash: str, what: str) -> dict:
    receipt = rpc(w3, "eth_getTransactionReceipt", [tx_hash])
    deadline = time.monotonic() + 10
    while receipt is None:  # automine off or a block time: wait a little for the block
        if time.monotonic() > deadline:
            raise LensError(f"{what}: no receipt for {tx_hash} after 10 s", "is automine off? mine a block (evm_mine)")
        time.sleep(0.05)
        receipt = rpc(w3, "eth_getTransactionReceipt", [tx_hash])
    return receipt


def send_tx(
    w3,
    sender: str | LocalAccount,
    *,
    to: str | None,
    data: bytes | str = b"",
    value: int = 0,
    gas: int | None = None,
    what: str = "transaction",
    wait: bool = True,
    chain_id: int | None = None,
    nonce: int | None = None,
) -> dict:
    """Send a transaction from an unlocked node account (address) or a LocalAccount (signed locally; pass `nonce`
    and `chain_id` to skip asking the node when sending many). Without `gas` the call is estimated first, so a
    revert raises LensError naming the custom error before anything is sent (when batching with automine off,
    pass `gas`: estimates run against the latest block, not the pending one). With wait=True returns the raw
    JSON-RPC receipt (a mined revert is replayed for its reason); with wait=False returns {"transactionHash": …}."""
    data_hex = data if isinstance(data, str) else "0x" + bytes(data).hex()
    addr = sender.address if isinstance(sender, LocalAccount) else sender
    tx: dict[str, Any] = {"from": addr, "data": data_hex, "value": _hex(value)}
    if to is not None:
        tx["to"] = to
    if gas is None:
        gas = estimate_gas(w3, tx, what) * 6 // 5 + 20_000
    tx["gas"] = _hex(gas)
    if isinstance(sender, LocalAccount):
        raw = _sign_local(w3, sender, to, data_hex, value, gas, nonce, chain_id)
        resp = w3.provider.make_request("eth_sendRawTransaction", [raw])
    else:
        resp = w3.provider.make_request("eth_sendTransaction", [tx])
    if resp.get("error"):
        err = resp["error"]
        if is_revert(err):
            _raise_revert(what, err)
        raise LensError(f"{what} failed: {err.get('message', err)}", "is the devnet node running? (`lens devnet up`)")
    tx_hash = resp["result"]
    if not wait:
        return {"transactionHash": tx_hash}
    receipt = _receipt(w3, tx_hash, what)
    if int(receipt["status"], 16) != 1:
        # Replay on the parent block's state for the reason.
        block = _hex(int(receipt["blockNumber"], 16) - 1)
        resp = w3.provider.make_request("eth_call", [tx, block])
        if resp.get("error"):
            _raise_revert(what, resp["error"])
        raise LensError(f"{what} reverted (tx {tx_hash})", "out of gas? pass a larger gas limit")
    return receipt


def deploy(w3, artifact_name: str, *args, sender, **kw) -> str:
    """Deploy `artifact_name` with constructor `args` from `sender` (an address unlocked on the node,
    or a LocalAccount); waits for the receipt and returns the contract address (lower-case)."""
    art = load_artifact(artifact_name)
    contract = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    data = contract.constructor(*args).data_in_transaction
    receipt = send_tx(w3, sender, to=None, data=data, what=f"deploy {artifact_name}", **kw)
    return receipt["contractAddress"].lower()
