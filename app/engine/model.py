"""A policy's structure from the regorus AST: rules, bodies, statements with source text, dependencies, params used."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_LITERALS = {"Number", "String", "RawString", "Bool", "Null"}


@dataclass(frozen=True)
class Stmt:
    """One statement of a rule body: its source text (with `with` modifiers), line, and the terms worth showing."""

    text: str
    line: int
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Body:
    """One body of a rule (else-branches are further bodies), its statements, and the head text."""

    rule: str
    index: int
    line: int
    head: str
    stmts: tuple[Stmt, ...]
    is_else: bool


@dataclass(frozen=True)
class Rule:
    """All definitions of one rule name in the package: kind, bodies, the names of rules it depends on."""

    name: str
    kind: str  # 'complete' | 'set' | 'object' | 'function' | 'default'
    line: int
    bodies: tuple[Body, ...]
    deps: tuple[str, ...]


@dataclass(frozen=True)
class PolicyModel:
    """The package of a policy module with its rules by name, imports and source lines."""

    package: str  # data path, e.g. data.spending_limits
    imports: tuple[str, ...]
    rules: dict[str, Rule]
    source: str

    def tree_names(self, root: str) -> list[str]:
        """Rule names reachable from `root` (root first), following dependencies once each."""
        seen, order, stack = set(), [], [root]
        while stack:
            name = stack.pop(0)
            if name in seen or name not in self.rules:
                continue
            seen.add(name)
            order.append(name)
            stack.extend(self.rules[name].deps)
        return order


class _Src:
    """Source text indexed by byte offsets (regorus spans are byte offsets)."""

    def __init__(self, text: str) -> None:
        self.b = text.encode("utf-8")
        self.lines = text.split("\n")  # numbered as the engine numbers them (\n only)

    def line(self, n: int) -> str:
        """The real text of line n (1-based), without its line break; '' past the end."""
        return self.lines[n - 1].removesuffix("\r") if 0 < n <= len(self.lines) else ""

    def text(self, span: dict) -> str:
        """The text of a span, widened over a string quote the span leaves out."""
        start, end = span["start"], span["end"]
        chunk = self.b[start:end]
        for q in (b'"', b"`"):
            if _unescaped(chunk, q) % 2 == 1:
                if start > 0 and self.b[start - 1 : start] == q and not chunk.startswith(q):
                    start -= 1
                elif self.b[end : end + 1] == q:
                    end += 1
                chunk = self.b[start:end]
        return chunk.decode("utf-8", errors="replace").strip()


def _unescaped(chunk: bytes, q: bytes) -> int:
    """Count quote characters not preceded by a backslash."""
    count, prev = 0, b""
    for i in range(len(chunk)):
        c = chunk[i : i + 1]
        if c == q and prev != b"\\":
            count += 1
        prev = c if not (prev == b"\\" and c == b"\\") else b""
    return count


def _node(expr: dict) -> tuple[str, dict]:
    """(kind, payload) of an AST expression node."""
    return next(iter(expr.items()))


def _span(payload: Any) -> dict | None:
    """The span of an AST payload (some fields hold a bare span)."""
    if isinstance(payload, dict):
        return payload.get("span") if "span" in payload else (payload if "start" in payload else None)
    return None


def _ref_parts(expr: dict) -> list[str]:
    """`a.b.c` as ['a','b','c'] for Var/RefDot chains; [] for other shapes."""
    kind, p = _node(expr)
    if kind == "Var":
        return [p["value"]]
    if kind == "RefDot":
        inner = _ref_parts(p["refr"])
        return inner + [p["field"][1]] if inner else []
    if kind == "RefBrack":
        return _ref_parts(p["refr"])
    return []


def _vars(obj: Any, out: set[str]) -> None:
    """Every Var name anywhere under an AST object."""
    if isinstance(obj, dict):
        if "Var" in obj and isinstance(obj["Var"], dict) and "value" in obj["Var"]:
            out.add(obj["Var"]["value"])
        for v in obj.values():
            _vars(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _vars(v, out)


def _terms(src: _Src, literal: dict) -> list[str]:
    """The sub-expressions of a statement whose values explain why it failed (constants left out)."""
    kind, p = _node(literal)
    exprs: list[dict] = []
    if kind == "Expr":
        exprs = _expr_terms(p["expr"])
    elif kind == "NotExpr":
        inner_kind, _ = _node(p["expr"])
        exprs = (
            _expr_terms(p["expr"]) if inner_kind in ("BoolExpr", "Call", "Membership", "AssignExpr") else [p["expr"]]
        )
    elif kind == "SomeIn":
        exprs = [p["collection"]]
    elif kind == "Every":
        exprs = [p["domain"]]
    out = []
    for e in exprs:
        k, payload = _node(e)
        if k in _LITERALS:
            continue
        sp = _span(payload)
        if sp:
            out.append(src.text(sp))
    return out


def _expr_terms(expr: dict) -> list[dict]:
    """Operands of an operator / arguments of a call / the expression itself."""
    kind, p = _node(expr)
    if kind in ("BoolExpr", "ArithExpr", "BinExpr"):
        return [p["lhs"], p["rhs"]]
    if kind == "AssignExpr":
        return [p["rhs"]] if p.get("op") == "ColEq" else [p["lhs"], p["rhs"]]
    if kind == "Membership":
        return [p["value"], p["collection"]]
    if kind == "Call":
        return list(p.get("params", []))
    return [expr]


def _head(spec: dict) -> tuple[str, str, dict]:
    """(root name, kind, head payload) of a rule head."""
    kind, head = _node(spec["head"])
    parts = _ref_parts(head["refr"]) or ["?"]
    if kind == "Func":
        return parts[0], "function", head
    if kind == "Set":
        return parts[0], "set", head
    if "RefBrack" in head["refr"] and head.get("assign") is not None:
        return parts[0], "object", head
    if len(parts) > 1:
        return parts[0], "object", head
    return parts[0], "complete", head


def build_model(ast_json: str, path: str, source: str) -> PolicyModel:
    """The PolicyModel of the module `path` in an engine's AST JSON."""
    modules = json.loads(ast_json)
    module = next((m for m in modules if m["source"]["file"] == path), modules[0])
    ast = module["ast"]
    src = _Src(source)
    package = "data." + ".".join(_ref_parts(ast["package"]["refr"]))
    imports = tuple(
        src.text(i["span"]) if i["span"]["end"] > i["span"]["start"] else "" for i in ast.get("imports", [])
    )
    raw: dict[str, dict] = {}
    for rule in ast.get("rules", []):
        if "Default" in rule:
            d = rule["Default"]
            name = (_ref_parts(d["refr"]) or ["?"])[0]
            entry = raw.setdefault(name, {"kind": "default", "line": d["span"]["line"], "bodies": [], "vars": set()})
            continue
        spec = rule.get("Spec")
        if not spec:
            continue
        name, kind, head = _head(spec)
        entry = raw.setdefault(name, {"kind": kind, "line": spec["span"]["line"], "bodies": [], "vars": set()})
        if entry["kind"] == "default":
            entry["kind"] = kind
        _vars(spec, entry["vars"])
        head_text = src.text(head["span"]) if _span(head) else name
        for bi, body in enumerate(spec.get("bodies", [])):
            stmts = []
            for st in body["query"]["stmts"]:
                lit_kind, lit = _node(st["literal"])
                text = src.text(st["span"])
                stmts.append(Stmt(text, st["span"]["line"], tuple(_terms(src, st["literal"]))))
            line = body["span"]["line"] if body.get("span") else spec["span"]["line"]
            is_else = bi > 0 and body.get("assign") is not None
            # an `else` branch's head is its own line (`else := args[2] if fname == "transferFrom"`), not the first's
            head = src.line(line).removesuffix("{").strip() if is_else else head_text
            entry["bodies"].append(Body(name, len(entry["bodies"]), line, head, tuple(stmts), is_else))
    names = set(raw)
    rules = {}
    for name, e in raw.items():
        deps = tuple(sorted((e["vars"] & names) - {name}))
        rules[name] = Rule(name, e["kind"], e["line"], tuple(e["bodies"]), deps)
    return PolicyModel(package, imports, rules, source)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def words(source: str) -> set[str]:
    """Identifiers and string contents appearing in a source (to find which params a policy reads)."""
    return set(_WORD.findall(source))
