"""Build the Newton policy input (POLICIES.md §4.1) from an intent: exact decimal strings, decoded calldata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import eth_abi
from eth_utils import keccak, to_checksum_address

from app.errors import LensError
from indexer.calls import Moved, moved


@dataclass(frozen=True)
class Intent:
    """The on-chain `Intent` struct (from, to, value, data, chainId, functionSignature)."""

    from_: str
    to: str
    value: int
    data: bytes
    chain_id: int
    function_signature: bytes
    signature: bytes = b""  # the Task's intentSignature (input.intent_signature), not part of the Intent struct


class IntentDecodeError(LensError):
    """The calldata does not decode with the intent's own function signature."""


def _split_top(types: str) -> list[str]:
    """Split a comma-separated type list at top level (commas inside tuples stay)."""
    out, depth, cur = [], 0, []
    for ch in types:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        out.append(tail)
    return out


def parse_signature(signature: str) -> tuple[str, list[str]]:
    """`"transfer(address,uint256)"` → `("transfer", ["address", "uint256"])`."""
    sig = signature.strip()
    open_at = sig.find("(")
    if open_at <= 0 or not sig.endswith(")"):
        raise IntentDecodeError(
            f"not a function signature: {signature!r}", "expected name(type,...), e.g. transfer(address,uint256)"
        )
    return sig[:open_at], _split_top(sig[open_at + 1 : -1])


def _abi_param(typ: str) -> dict[str, Any]:
    """One JSON-ABI parameter item for a canonical type (tuples get `components`)."""
    if typ.startswith("("):
        close = _matching_paren(typ)
        suffix = typ[close + 1 :]
        return {
            "name": "",
            "type": "tuple" + suffix,
            "internalType": "tuple" + suffix,
            "components": [_abi_param(t) for t in _split_top(typ[1:close])],
        }
    return {"name": "", "type": typ, "internalType": typ}


def _matching_paren(typ: str) -> int:
    """Index of the parenthesis closing the one at position 0."""
    depth = 0
    for i, ch in enumerate(typ):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i
    raise IntentDecodeError(f"unbalanced tuple type {typ!r}", "check the function signature")


def _json_value(value: Any, typ: str) -> Any:
    """An ABI-decoded value as Newton shows it: ints as decimal strings, addresses lower-case, bytes as 0x hex."""
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_json_value(v, inner) for v in value]
    if typ.startswith("("):
        close = _matching_paren(typ)
        return [_json_value(v, t) for v, t in zip(value, _split_top(typ[1:close]))]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if typ == "address":
        return str(value).lower()
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


@lru_cache(maxsize=1024)  # an app calls a few functions: parse, hash and describe each signature once
def _signature(text: str) -> tuple[str, tuple[str, ...], str, bytes, str]:
    """(name, types, canonical signature, selector, JSON of the ABI inputs) of a human-readable signature."""
    name, types = parse_signature(text)
    canonical = f"{name}({','.join(types)})"
    return name, tuple(types), canonical, keccak(text=canonical)[:4], json.dumps([_abi_param(t) for t in types])


def decode_call(function_signature: bytes, data: bytes) -> dict[str, Any]:
    """The derived input fields (`function`, `decoded_function_signature`, `decoded_function_arguments`)."""
    if not function_signature:
        return {"function": None, "decoded_function_signature": "", "decoded_function_arguments": []}
    try:
        text = function_signature.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IntentDecodeError(
            "functionSignature is not UTF-8 text", "Newton expects the human-readable signature bytes"
        ) from err
    name, types, canonical, selector, inputs = _signature(text)
    if len(data) < 4 or data[:4] != selector:
        raise IntentDecodeError(
            f"calldata selector does not match {canonical}",
            "the intent's data must start with the selector of its functionSignature",
        )
    try:
        values = eth_abi.decode(types, data[4:]) if types else ()
    except Exception as err:  # eth_abi raises several unrelated types
        raise IntentDecodeError(f"calldata does not decode as {canonical}: {err}", "check the intent's data") from err
    return {
        "function": {
            "name": name,
            "type": "function",
            "inputs": json.loads(inputs),  # a fresh copy: callers may change what they get
            "outputs": [],
            "stateMutability": "nonpayable",
        },
        "decoded_function_signature": canonical,
        "decoded_function_arguments": [_json_value(v, t) for v, t in zip(values, types)],
    }


@lru_cache(maxsize=1 << 16)  # agents and counterparties recur: EIP-55's keccak was a fifth of a what-if's cold run
def _checksummed(address: str) -> str:
    """EIP-55 checksummed address (as Newton's operators serialise `from` / `to`); left as it is if not an address."""
    try:
        return to_checksum_address(address)
    except (ValueError, TypeError):
        return address


def intent_input(intent: Intent) -> dict[str, Any]:
    """The Newton input JSON of an intent (POLICIES.md §4.1): snake_case; `from` / `to` checksummed; value and
    chain_id as exact decimal strings; data, function_signature and intent_signature as 0x hex; the call decoded
    (addresses in decoded arguments lower-case, uints as decimal strings)."""
    doc: dict[str, Any] = {
        "from": _checksummed(intent.from_),
        "to": _checksummed(intent.to),
        "value": str(int(intent.value)),
        "data": "0x" + bytes(intent.data).hex(),
        "chain_id": str(int(intent.chain_id)),
        "function_signature": "0x" + bytes(intent.function_signature).hex(),
        "intent_signature": "0x" + bytes(intent.signature).hex(),
    }
    doc.update(decode_call(bytes(intent.function_signature), bytes(intent.data)))
    return doc


def moved_of(intent: Intent) -> Moved:
    """What the intent moves (asset, exact amount, counterparty): `indexer.calls.moved`, the one rule the indexer's
    `tasks.asset` / `amount_wei` and the pages use too."""
    try:
        doc = decode_call(bytes(intent.function_signature), bytes(intent.data))
    except IntentDecodeError:  # calldata that does not decode moves nothing Lens can read
        return Moved("odd", intent.to.lower(), None, intent.to.lower())
    fn = doc["function"]
    types = [i["type"] if i["type"] != "tuple" else "tuple" for i in fn["inputs"]] if fn else None
    return moved(intent.to, intent.value, fn["name"] if fn else None, types, doc["decoded_function_arguments"])


def _hex(text: str | None) -> bytes:
    """Bytes of a 0x-hex string (empty for None/'')."""
    if not text:
        return b""
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _exact(row: dict[str, Any], *keys: str) -> int:
    """The first present of these columns as an exact int (decimal strings stay exact past 2^63)."""
    for k in keys:
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and v != v):
            return int(v)
    raise LensError(f"the task row has no {keys[0]}", "re-index the task (`lens index`)")


def intent_from_row(row: dict[str, Any]) -> Intent:
    """An Intent from a `tasks` row (column names of `indexer.load.DERIVED_DDL["tasks"]`); LensError if unusable."""
    fs = row.get("function_signature_hex") or row.get("function_signature") or ""
    sig = _hex(fs) if isinstance(fs, str) and fs.startswith("0x") else str(fs or "").encode()
    if not row.get("intent_from") or not row.get("intent_to"):
        raise LensError("the task row has no intent (from / to)", "re-index the task (`lens index`)")
    try:
        return Intent(
            from_=row["intent_from"],
            to=row["intent_to"],
            value=_exact(row, "intent_value"),
            data=_hex(row.get("intent_data")),
            chain_id=_exact(row, "intent_chain_id_exact", "intent_chain_id"),
            function_signature=sig,
            signature=_hex(row.get("intent_signature")),
        )
    except ValueError as err:
        raise LensError(f"the task row's intent is malformed: {err}", "re-index the task (`lens index`)") from None
