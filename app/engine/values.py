"""Policy values as people read them in sentences: exact wei amounts with units, lists, booleans."""

from __future__ import annotations

import json
from typing import Any


def is_uint(v: Any) -> bool:
    """A uint256 as a decimal string (how wei amounts travel, exact)."""
    return isinstance(v, str) and v.isdigit() and len(v) <= 78


MAX_UINT256 = 2**256 - 1


class Unit(str):
    """A unit name for amounts that also knows its token's decimals (`Unit("USDC", 6)`); a plain str means 18."""

    decimals: int = 18

    def __new__(cls, name: str, decimals: int = 18) -> Unit:
        unit = super().__new__(cls, name)
        unit.decimals = int(decimals)
        return unit


def fmt_wei(raw: str, unit: str = "ETH") -> str:
    """`12500000000000000000` → `12.5 ETH (12500000000000000000 wei)` — exact, no float rounding; a token with other
    decimals than 18 (a `Unit`) reads `12.5 USDC (12500000 base units)`."""
    n = int(raw)
    decimals = getattr(unit, "decimals", 18)
    base = "wei" if decimals == 18 else "base units"
    if n == MAX_UINT256:  # an "infinite" approval: 78 digits of it would only hide what it means
        return f"an unlimited amount (type(uint256).max = {raw} {base})"
    whole, frac = divmod(n, 10**decimals)
    frac_s = f"{frac:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{whole:,}{'.' + frac_s if frac_s else ''} {unit} ({raw} {base})"


def fmt_duration(seconds: Any) -> str:
    """7 h 54 min, 21 min 29 s, 2 d 3 h, 0 s — the two largest units; a negative span reads "nothing (… ago)"."""
    s = int(round(float(seconds)))
    if s < 0:
        return f"nothing (it ran out {fmt_duration(-s)} before)"
    parts = []
    for size, name in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if s >= size or (size == 1 and not parts):
            parts.append(f"{s // size} {name}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0 ") or len(parts) == 1)


def is_duration_key(key: str) -> bool:
    """Whether a param or field name counts seconds (`min_remaining_validity_s`, `remaining_validity_s`, `ttl_s`)."""
    return key.endswith(("_s", "_seconds"))


def fmt_value(v: Any, key: str = "", unit: str = "ETH") -> str:
    """A value for a sentence: wei strings with units, seconds as durations, lists joined, booleans as words."""
    if is_uint(v) and (key.endswith("_wei") or key in ("amount", "value")):
        return fmt_wei(v, unit)
    if is_duration_key(key) and isinstance(v, (int, float)) and not isinstance(v, bool):
        return fmt_duration(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join('""' if x == "" else fmt_value(x) for x in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    if v is None:
        return "undefined"
    return str(v)


def moved_asset(input: Any) -> str:
    """The asset an intent's amount counts, from the input as Newton builds it: 'ETH' for a plain transfer or an
    unknown call, else the lower-case token address the call moves (a swap's token argument, not the router)."""
    from indexer.calls import ETH, moved  # the one rule the indexer's tasks.asset uses too

    if not isinstance(input, dict) or not isinstance(input.get("function"), dict):
        return "ETH"
    fn = input["function"]
    types = [i.get("type", "") for i in fn.get("inputs") or [] if isinstance(i, dict)]
    args = input.get("decoded_function_arguments")
    m = moved(input.get("to"), input.get("value"), fn.get("name"), types, args if isinstance(args, list) else None)
    return "ETH" if m.asset in (None, ETH) else str(m.asset).lower()


def unit_of(input: Any, symbols: dict[str, str] | None = None) -> str:
    """What wei amounts count: ETH for a plain native transfer, else the moved token's symbol if known (by its
    lower-case address in `symbols`; a `Unit` there carries the token's decimals), else "tokens of 0x3c3c…3c3c"
    (18 decimals assumed)."""
    asset = moved_asset(input)
    if asset == "ETH":
        return "ETH"
    symbol = (symbols or {}).get(asset)
    if symbol:
        return symbol
    return f"tokens of {asset[:6]}…{asset[-4:]}" if asset.startswith("0x") and len(asset) == 42 else "tokens"


def term_value_text(term: str, value: Any) -> str:
    """A condition term's value as JSON, with a duration beside a count of seconds
    (`remaining_validity_s = 28440 (7 h 54 min)`), so tables read like the sentences."""
    text = json.dumps(value, default=str)
    last = term.rsplit(".", 1)[-1].strip()
    if is_duration_key(last) and isinstance(value, (int, float)) and not isinstance(value, bool):
        text += f" ({fmt_duration(value)})"
    return text


def amount_units(task: dict[str, Any], label: str) -> dict[str, Unit]:
    """{token address: its unit} for the sentences of one task row: the asset the indexer found the call to move
    (a swap moves its token argument, not the router), named by the symbol() and decimals() the indexer read from the
    token (`tasks.asset_symbol` / `asset_decimals`), else by `label` with 18 decimals."""
    asset = task.get("asset")
    if not isinstance(asset, str) or not asset.startswith("0x"):
        return {}
    symbol = task.get("asset_symbol")
    symbol = symbol if isinstance(symbol, str) and symbol.isprintable() and 0 < len(symbol) <= 32 else ""
    decimals = task.get("asset_decimals")
    try:
        decimals = int(decimals) if decimals is not None and 0 <= int(decimals) <= 36 else 18
    except (TypeError, ValueError):  # NULL as NaN from a DataFrame row
        decimals = 18
    return {asset.lower(): Unit(symbol or label, decimals)}
