"""Policy values as people read them in sentences: exact wei amounts with units, lists, booleans."""

from __future__ import annotations

from typing import Any


def is_uint(v: Any) -> bool:
    """A uint256 as a decimal string (how wei amounts travel, exact)."""
    return isinstance(v, str) and v.isdigit() and len(v) <= 78


MAX_UINT256 = 2**256 - 1


def fmt_wei(raw: str, unit: str = "ETH") -> str:
    """`12500000000000000000` → `12.5 ETH (12500000000000000000 wei)` — exact, no float rounding."""
    n = int(raw)
    if n == MAX_UINT256:  # an "infinite" approval: 78 digits of it would only hide what it means
        return f"an unlimited amount (type(uint256).max = {raw} wei)"
    whole, frac = divmod(n, 10**18)
    frac_s = f"{frac:018d}".rstrip("0")
    return f"{whole:,}{'.' + frac_s if frac_s else ''} {unit} ({raw} wei)"


def fmt_value(v: Any, key: str = "", unit: str = "ETH") -> str:
    """A value for a sentence: wei strings with units, lists joined, booleans as words."""
    if is_uint(v) and (key.endswith("_wei") or key in ("amount", "value")):
        return fmt_wei(v, unit)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    if v is None:
        return "undefined"
    return str(v)


def unit_of(input: Any) -> str:
    """What wei amounts count: ETH for a plain native transfer, 18-decimal tokens for a contract call."""
    return "ETH" if not isinstance(input, dict) or not input.get("function") else "tokens"
