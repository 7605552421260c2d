"""What an intent moves, per call type: the one place the indexer, the engine and the pages take asset and amount from.

A call moves an amount only through an argument of the right ABI type: `transfer(address,uint256)` moves its
uint256, `transfer(address,address)` moves nothing Lens can read (a task without an amount, never a lost log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ETH = "ETH"
# router calls name native ETH by one of these instead of a token address (the devnet router uses the first)
NATIVE_SENTINELS = frozenset({"0x" + "ee" * 20, "0x" + "00" * 20})

_UINT = re.compile(
    r"uint(8|16|24|32|40|48|56|64|72|80|88|96|104|112|120|128|136|144|152|160|168|176|184|192|200|208|216|224|232|240|248|256)?"
)

# name → (argument types it must have, index of the amount, index of the counterparty or None, index of the asset
# argument or None = the intent's `to` is the asset). Types use "uint" for any uintN.
CALLS: dict[str, tuple[tuple[str, ...], int, int | None, int | None]] = {
    "transfer": (("address", "uint"), 1, 0, None),
    "approve": (("address", "uint"), 1, 0, None),
    "transferFrom": (("address", "address", "uint"), 2, 1, None),
    # swap(tokenIn, amountIn, tokenOut, minOut): sells amountIn of tokenIn at the router (`to`)
    "swap": (("address", "uint", "address", "uint"), 1, None, 0),
}


@dataclass(frozen=True)
class Moved:
    """What one intent moves: asset ('ETH' or a token address), exact amount in base units (None = unknown), to whom."""

    kind: str  # 'native' | 'transfer' | 'approve' | 'transferFrom' | 'swap' | 'call' | 'odd'
    asset: str | None
    amount: int | None
    counterparty: str | None


def _shape(t: str) -> str:
    t = t.strip()
    return "uint" if _UINT.fullmatch(t) else t


def _amount(v: Any) -> int | None:
    """An amount argument as an exact int (decoders give ints or decimal strings); anything else is no amount."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v >= 0 else None
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return None


def _addr(v: Any) -> str | None:
    return v.lower() if isinstance(v, str) and v.startswith("0x") and len(v) == 42 else None


def moved(
    to: str | None,
    value: int | str | None,
    name: str | None,
    types: list[str] | tuple[str, ...] | None,
    args: list | None,
) -> Moved:
    """Asset, amount and counterparty of an intent from its `to`, native `value` and decoded call (name, types, args).

    A plain transfer (no call) and an unknown function move the native value; a known token call moves its typed
    amount argument; a known name with other argument types (or args that did not decode) moves no known amount."""
    to_l = (to or "").lower() or None
    native = _amount(value if not isinstance(value, str) else value.strip()) if value is not None else 0
    if not name:
        return Moved("native", ETH, native, to_l)
    spec = CALLS.get(name)
    if spec is None:
        return Moved("call", ETH, native, to_l)
    want, i_amount, i_cp, i_asset = spec
    if args is None or types is None or tuple(_shape(t) for t in types) != want or len(args) != len(want):
        return Moved("odd", to_l, None, to_l)
    amount = _amount(args[i_amount])
    cp = _addr(args[i_cp]) if i_cp is not None else to_l
    asset = to_l
    if i_asset is not None:
        a = _addr(args[i_asset])
        asset = ETH if a in NATIVE_SENTINELS else a
    return Moved(name, asset, amount, cp)


def scaled(amount: int | None, decimals: int | None) -> float | None:
    """An exact amount in whole units as a float for sorting and charts (None if either is unknown)."""
    if amount is None or decimals is None:
        return None
    return amount / 10**decimals
