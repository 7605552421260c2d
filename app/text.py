"""Text for people: how the pages print on-chain values, amounts, ages, sentences, sources and rule trees (no SQL)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def is_null(v: Any) -> bool:
    """Whether a DB cell is NULL / NaN / NaT (False for values pandas cannot test, such as lists)."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def age_text(when: Any, now: Any = None) -> str:
    """'42 s ago' / '3 min ago' / '5 h ago' / '2 d ago' for a UTC timestamp; '' when unknown."""
    if when is None or (isinstance(when, float) and pd.isna(when)):
        return ""
    try:
        ts = pd.Timestamp(when)
    except (TypeError, ValueError):
        return ""
    if pd.isna(ts):
        return ""
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    secs = (now_ts - ts).total_seconds()
    if secs < 0:
        return "just now"
    for limit, unit, div in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if secs < limit:
            return f"{int(secs // div)} {unit} ago"
    return f"{int(secs // 86400)} d ago"


def md_escape(text: Any) -> str:
    """Escape on-chain text for st.markdown so it shows literally (no HTML, links or emphasis)."""
    out = str(text)
    for ch in "\\`*_{}[]()<>#+-.!|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def md_code(text: Any) -> str:
    """On-chain or user text as a Markdown code span: shown literally, never a link or HTML."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def asset_label(asset: str | None, token: str = "") -> str:
    """'ETH', 'dUSD' for the devnet token, else a shortened token address."""
    if not asset or asset == "ETH":
        return "ETH"
    if token and asset.lower() == token.lower():
        return "dUSD"
    return f"token {asset[:8]}…{asset[-4:]}"


# an amount this large (≥ 2^255 wei in 18-decimal units) is an "infinite" approval, not a quantity
UNLIMITED_UNITS = 2**255 / 1e18


def fmt_amount(amount_num: Any, asset: str | None, token: str = "") -> str:
    """'1,234.56 dUSD' from the DOUBLE amount column (the exact wei goes in a hover)."""
    if amount_num is None or is_null(amount_num):
        return "—"
    value = float(amount_num)
    if value >= UNLIMITED_UNITS:
        return f"unlimited {asset_label(asset, token)}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".") if value < 1000 else f"{value:,.2f}"
    return f"{text} {asset_label(asset, token)}"


def short(addr: Any, n: int = 6) -> str:
    """0x1234…abcd for long hex strings; other values unchanged."""
    s = "" if addr is None else str(addr)
    return f"{s[: n + 2]}…{s[-4:]}" if s.startswith("0x") and len(s) > n + 8 else s


def verdict_labels(allow: pd.Series) -> pd.Series:
    """allowed / denied / awaiting response from a nullable BOOLEAN column."""
    return allow.map(lambda a: "awaiting response" if a is None or pd.isna(a) else ("allowed" if a else "denied"))


def intent_sentence(data: dict[str, Any]) -> str:
    """'0xab…cd asked treasury-alpha to transfer 12.5 dUSD to 0x12…34' (plain text, never HTML)."""
    t = data["task"]
    who = short(t.get("intent_from"))
    client = data.get("client_name") or short(t.get("policy_client"))
    amount = fmt_amount(t.get("amount_num"), t.get("asset"), data.get("token", ""))
    fn = t.get("function_name") or ""
    verb = {"": "send", "transfer": "transfer", "approve": "approve a spend of", "transferFrom": "move"}.get(
        fn, f"call {fn} with"
    )
    return f"{who} asked {client} to {verb} {amount} to {short(t.get('counterparty') or t.get('intent_to'))}"


def parsed_json(text: Any, default: Any) -> Any:
    """json.loads or the default for NULL / invalid text."""
    if text is None or is_null(text):
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def value_text(v: Any) -> str:
    """A params value as people read it: strings as they are, everything else as JSON."""
    return v if isinstance(v, str) else json.dumps(v)


def params_diff(old: dict | None, new: dict) -> str:
    """'max_tx_wei: 1000 → 2500; + allowed_functions = [...]; − halt' — what one PolicySet changed."""
    if old is None:
        return "initial params: " + ", ".join(f"{k} = {value_text(v)}" for k, v in new.items())
    parts = []
    for k, v in new.items():
        if k not in old:
            parts.append(f"+ {k} = {value_text(v)}")
        elif old[k] != v:
            parts.append(f"{k}: {value_text(old[k])} → {value_text(v)}")
    parts += [f"− {k}" for k in old if k not in new]
    return "; ".join(parts) or "no change (same params, new policy id)"


def annotated_source(source: str, reached: tuple[int, ...] = (), failed: tuple[int, ...] = ()) -> str:
    """The Rego source with a gutter: '✗' failing condition, '•' line reached, ' ' not reached."""
    reached_s, failed_s = set(reached), set(failed)
    # lines as the policy engine numbers them: split at \n only (str.splitlines also splits at \x0c, \x1c, \u2028
    # and more, which may sit inside a Rego string and would shift every later line off its number)
    lines = source.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.removesuffix("\r") for ln in lines]
    width = len(str(len(lines)))
    out = []
    for i, line in enumerate(lines, start=1):
        mark = "✗" if i in failed_s else ("•" if i in reached_s else " ")
        out.append(f"{mark} {i:>{width}} │ {line}")
    return "\n".join(out)


def rule_tree_text(node: Any, depth: int = 0, limit: int = 200) -> str:
    """The explanation's rule tree as indented text lines: name = value (line)."""
    if node is None:
        return ""
    lines: list[str] = []

    def walk(n: Any, d: int) -> None:
        if len(lines) >= limit:
            return
        value = n.value if n.state in ("value", "true", "false") else n.state
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        if len(text) > 100:
            text = text[:97] + "…"
        lines.append(f"{'  ' * d}{'└ ' if d else ''}{n.name} = {text}   (line {n.line})")
        for child in n.children:
            walk(child, d + 1)

    walk(node, depth)
    return "\n".join(lines)
