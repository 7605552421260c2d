"""Chain state the logs lack, read once by eth_call and cached in the DB: a policy's entrypoint(), a token's decimals()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
from eth_abi import decode as abi_decode
from eth_utils import keccak

from indexer.errors import LensError

SEL_ENTRYPOINT = "0x" + keccak(text="entrypoint()")[:4].hex()
SEL_DECIMALS = "0x" + keccak(text="decimals()")[:4].hex()
SEL_SYMBOL = "0x" + keccak(text="symbol()")[:4].hex()

Call = Callable[[str, list], Any]  # (method, params) → result: `indexer.extract.Rpc.call`


def _string(raw: str) -> str | None:
    """An ABI-encoded string return value (or a bytes32 one, as old tokens return their symbol); None if neither."""
    data = bytes.fromhex(raw[2:] if raw.startswith("0x") else raw)
    try:
        (text,) = abi_decode(["string"], data)
        return text
    except Exception:  # eth-abi raises several types for data that is not a string
        pass
    if len(data) == 32:
        try:
            return data.rstrip(b"\0").decode("utf-8") or None
        except UnicodeDecodeError:
            return None
    return None


class Unreachable(Exception):
    """The node did not answer (after the RPC client's retries): nothing is cached, the read is tried again later."""


def _eth_call(call: Call, to: str, selector: str, block: int | None) -> str:
    """eth_call at `block` (the latest if the node has no state that old); raises on a revert or an empty answer,
    Unreachable if the node did not answer at all."""
    tags = [hex(block), "latest"] if block is not None else ["latest"]
    error: Exception | None = None
    for tag in tags:
        try:
            out = call("eth_call", [{"to": to, "data": selector}, tag])
        except LensError as e:  # the RPC client gave up: not an answer about the contract
            raise Unreachable(str(e)) from None
        except Exception as e:  # a revert, missing state (pruned node)
            error = e
            continue
        if isinstance(out, str) and len(out) > 2:
            return out
        error = ValueError("empty answer (no contract code, or no such function)")
    raise error if error else ValueError("no answer")


def read_entrypoint(call: Call, policy: str, block: int | None) -> tuple[str | None, str | None]:
    """(entrypoint, error) of a NewtonPolicy contract, read with its `entrypoint()` getter."""
    try:
        text = _string(_eth_call(call, policy, SEL_ENTRYPOINT, block))
    except Unreachable:
        raise
    except Exception as e:
        return None, f"entrypoint() failed: {e}"[:300]
    if not text or "." not in text:
        return None, f"entrypoint() returned {text!r}, not <package>.<rule>"
    return text, None


def read_token(call: Call, token: str) -> tuple[int | None, str | None, str | None]:
    """(decimals, symbol, error) of an ERC-20 token; decimals above 77 are refused (no real token has them)."""
    try:
        raw = _eth_call(call, token, SEL_DECIMALS, None)
        decimals = int(raw, 16) if len(raw) <= 66 else int(raw[:66], 16)
    except Unreachable:
        raise
    except Exception as e:
        return None, None, f"decimals() failed: {e}"[:300]
    if decimals > 77:
        return None, None, f"decimals() returned {decimals}"
    try:
        symbol = _string(_eth_call(call, token, SEL_SYMBOL, None))
    except Unreachable:
        raise
    except Exception:
        symbol = None
    return decimals, symbol, None


def fill_entrypoints(
    con: duckdb.DuckDBPyConnection, call: Call, chain_id: int, wanted: list[tuple[str, int | None]]
) -> int:
    """Read and cache entrypoint() of every (policy, block) not cached yet (`policy_entrypoints`); returns how many."""
    have = {
        r[0] for r in con.execute("SELECT address FROM policy_entrypoints WHERE chain_id = ?", [chain_id]).fetchall()
    }
    n = 0
    for address, block in wanted:
        if address in have:
            continue
        try:
            entry, error = read_entrypoint(call, address, block)
        except Unreachable:
            return n  # the node is down: nothing cached, the next commit asks again
        con.execute(
            "INSERT OR REPLACE INTO policy_entrypoints VALUES (?, ?, ?, ?, ?)", [chain_id, address, entry, block, error]
        )
        have.add(address)
        n += 1
    return n


def fill_tokens(con: duckdb.DuckDBPyConnection, call: Call, chain_id: int, tokens: list[str]) -> int:
    """Read and cache decimals() and symbol() of every token not cached yet (`tokens`); returns how many."""
    have = {r[0] for r in con.execute("SELECT address FROM tokens WHERE chain_id = ?", [chain_id]).fetchall()}
    n = 0
    for address in tokens:
        if address in have:
            continue
        try:
            decimals, symbol, error = read_token(call, address)
        except Unreachable:
            return n
        con.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?)", [chain_id, address, decimals, symbol, error]
        )
        have.add(address)
        n += 1
    return n
