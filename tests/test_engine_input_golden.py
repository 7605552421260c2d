"""The policy input exactly as POLICIES.md §4.1 documents it, per call type, written out by hand.

Addresses are the EIP-55 test vectors (so the checksummed forms are the specification's, not computed here);
calldata is written out word by word; selectors of well-known ERC-20 functions are the published ones."""

from __future__ import annotations

from eth_utils import keccak

from app.engine import Intent, intent_input
from app.engine.intent import moved_of

# EIP-55 test vectors: checksummed form ↔ lower-case form
A = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
B = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
C = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
D = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"
MAX = "115792089237316195423570985008687907853269984665640564039457584007913129639935"


def _word_addr(a: str) -> str:
    return "000000000000000000000000" + a[2:].lower()


def _abi_item(name: str, *types: str) -> dict:
    return {
        "name": name,
        "type": "function",
        "inputs": [{"name": "", "type": t, "internalType": t} for t in types],
        "outputs": [],
        "stateMutability": "nonpayable",
    }


def _hex_text(s: str) -> str:
    return "0x" + s.encode().hex()


def test_plain_value_transfer() -> None:
    it = Intent(A.lower(), B.lower(), 1_500_000_000_000_000_000, b"", 8453, b"", b"\x01\x02")
    assert intent_input(it) == {
        "from": A,
        "to": B,
        "value": "1500000000000000000",
        "data": "0x",
        "chain_id": "8453",
        "function_signature": "0x",
        "intent_signature": "0x0102",
        "function": None,
        "decoded_function_signature": "",
        "decoded_function_arguments": [],
    }


def test_erc20_transfer() -> None:
    data = "0xa9059cbb" + _word_addr(C) + "00000000000000000000000000000000000000000000000000000000000003e8"
    it = Intent(A.lower(), B.lower(), 0, bytes.fromhex(data[2:]), 1, b"transfer(address,uint256)", b"\xaa" * 65)
    assert intent_input(it) == {
        "from": A,
        "to": B,
        "value": "0",
        "data": data,
        "chain_id": "1",
        "function_signature": _hex_text("transfer(address,uint256)"),
        "intent_signature": "0x" + "aa" * 65,
        "function": _abi_item("transfer", "address", "uint256"),
        "decoded_function_signature": "transfer(address,uint256)",
        "decoded_function_arguments": [C.lower(), "1000"],
    }


def test_erc20_unlimited_approve() -> None:
    data = "0x095ea7b3" + _word_addr(D) + "f" * 64
    it = Intent(A.lower(), B.lower(), 0, bytes.fromhex(data[2:]), 11155111, b"approve(address,uint256)")
    doc = intent_input(it)
    assert doc["from"] == A and doc["to"] == B and doc["chain_id"] == "11155111"
    assert doc["intent_signature"] == "0x"
    assert doc["function"] == _abi_item("approve", "address", "uint256")
    assert doc["decoded_function_arguments"] == [D.lower(), MAX]


def test_erc20_transfer_from() -> None:
    data = (
        "0x23b872dd"
        + _word_addr(C)
        + _word_addr(D)
        + "0000000000000000000000000000000000000000000000000de0b6b3a7640000"  # 10^18
    )
    it = Intent(A.lower(), B.lower(), 0, bytes.fromhex(data[2:]), 31337, b"transferFrom(address,address,uint256)")
    doc = intent_input(it)
    assert doc["decoded_function_signature"] == "transferFrom(address,address,uint256)"
    assert doc["function"] == _abi_item("transferFrom", "address", "address", "uint256")
    assert doc["decoded_function_arguments"] == [C.lower(), D.lower(), "1000000000000000000"]


def test_router_swap() -> None:
    sig = "swap(address,uint256,address,uint256)"
    data = (
        "0x"
        + keccak(text=sig)[:4].hex()
        + _word_addr(C)
        + "0" * 45
        + "3d90d4841ea770c0000"  # 18171 * 10^18
        + _word_addr("0x" + "ee" * 20)
        + "0000000000000000000000000000000000000000000000000000000000000001"
    )
    it = Intent(A.lower(), B.lower(), 0, bytes.fromhex(data[2:]), 31337, sig.encode())
    doc = intent_input(it)
    assert doc["function"] == _abi_item("swap", "address", "uint256", "address", "uint256")
    assert doc["decoded_function_arguments"] == [C.lower(), "18171000000000000000000", "0x" + "ee" * 20, "1"]
    # what it moves, by the one shared rule: 18,171 of the sold token, at the router
    m = moved_of(it)
    assert (m.kind, m.asset, m.amount, m.counterparty) == ("swap", C.lower(), 18171 * 10**18, B.lower())
