"""Compile a Rego policy once with regorus and evaluate it many times, Newton style (data.params, data.wasm)."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import regorus
from eth_utils import keccak

from app.errors import LensError

POLICY_FILE = "policy.rego"

_LOC = re.compile(r"-->\s*(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+)")
_MSG = re.compile(r"^error:\s*(?P<msg>.*)$", re.M)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the entrypoint's boolean, the `deny` reasons beside it, or the error that stopped it."""

    allow: bool
    deny: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class RegoProblem:
    """A regorus error split into its parts (file, line, column, message)."""

    file: str
    line: int
    col: int
    message: str
    kind: str  # 'parse' | 'eval' | 'unknown_builtin' | 'conflict' | 'timeout'

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}: " if self.line else ""
        return f"{where}{self.message}"


class PolicyParseError(LensError):
    """The policy source does not parse (file, line and message are in `problem`)."""

    def __init__(self, problem: RegoProblem) -> None:
        super().__init__(
            f"policy does not parse: {problem}", "fix the Rego at that line (regorus, Rego v1 or v0 syntax)"
        )
        self.problem = problem


def rego_problem(err: BaseException, kind: str = "eval") -> RegoProblem:
    """Parse a regorus exception text (`--> file:line:col … error: msg`, then a Rust backtrace) into a RegoProblem."""
    text = str(err).split("Stack backtrace:")[0].strip()
    loc = _LOC.search(text)
    msg = _MSG.search(text)
    message = msg.group("msg").strip() if msg else (text.splitlines()[0] if text else type(err).__name__)
    if "could not find function" in message:
        kind = "unknown_builtin"
    elif "conflict" in message:
        kind = "conflict"
    if loc:
        return RegoProblem(loc.group("file"), int(loc.group("line")), int(loc.group("col")), message, kind)
    return RegoProblem(POLICY_FILE, 0, 0, message, kind)


def data_document(params: dict, wasm: dict) -> dict[str, Any]:
    """The `data` document Newton operators evaluate: params, wasm, and the legacy `data.data` mirror."""
    return {"params": params, "wasm": wasm, "data": wasm}


def entry_query(entrypoint: str) -> str:
    """`pkg.allow` → `data.pkg.allow` (accepts an already rooted `data.…` path)."""
    entry = entrypoint.strip()
    return entry if entry.startswith("data.") else f"data.{entry}"


# Newton policies are a few KB of Rego; a source past this is refused before the parser ever sees it
MAX_SOURCE_BYTES = 1 << 20


class PolicyTooLarge(LensError):
    """A policy source over MAX_SOURCE_BYTES (refused with its size, never parsed)."""


def check_source_size(source: str, path: str = POLICY_FILE) -> None:
    """PolicyTooLarge if the source is over MAX_SOURCE_BYTES (UTF-8 bytes)."""
    size = len(source) if source.isascii() else len(source.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        raise PolicyTooLarge(
            f"policy source {path} is {size:,} bytes ({size / 2**20:.1f} MiB), over the {MAX_SOURCE_BYTES:,}-byte limit",
            "a Newton policy is a few KB of Rego: check that the file is the policy and not data",
        )


def engine_for(modules: tuple[tuple[str, str], ...]) -> regorus.Engine:
    """A regorus engine holding every (path, source) module: Rego v1 first, else v0 (files with `import rego.v1` stay v1)."""
    for path, source in modules:
        check_source_size(source, path)
    problems: list[RegoProblem] = []
    for v0 in (False, True):
        engine = regorus.Engine()
        engine.set_rego_v0(v0)
        try:
            for path, source in modules:
                engine.add_policy(path, source)
            return engine
        except Exception as err:  # regorus raises RuntimeError for every parse problem
            problems.append(rego_problem(err, "parse"))
    # the failed engine is freed here, on its own thread: the error's traceback would otherwise keep it alive into
    # whichever thread reads the error (the dashboard's script thread), where pyo3 refuses to drop it
    del engine
    # report the dialect whose parser got further: that is the one the author wrote
    raise PolicyParseError(max(problems, key=lambda p: (p.line, p.col)))


def new_engine(source: str, path: str = POLICY_FILE, extra: tuple[tuple[str, str], ...] = ()) -> regorus.Engine:
    """A regorus engine holding `source` (as `path`) plus extra modules."""
    return engine_for(((path, source),) + tuple(extra))


def declares_rule(source: str, rule: str) -> bool:
    """Does the source have a head of `rule` (`rule if`, `rule :=`, `rule =`, `rule {`, `rule[x]`, `rule(x)`,
    `rule contains`, `default rule …`) at the start of a line?"""
    head = rf"(?m)^[ \t]*(?:default[ \t]+)?{re.escape(rule)}(?:[ \t]*(?:if\b|contains\b|:=|=|\{{|\[|\()|[ \t]*$)"
    return re.search(head, source) is not None


class CompiledPolicy:
    """A policy parsed once for an entrypoint; `evaluate` sets input and data and reads `allow` and `deny`."""

    def __init__(self, source: str, entrypoint: str) -> None:
        self.source = source
        self.entrypoint = entrypoint
        self.query = entry_query(entrypoint)
        self.package = self.query.rsplit(".", 1)[0]
        self.deny_query = f"{self.package}.deny"
        self.engine = new_engine(source)
        packages = {p.removeprefix("data.") for p in self.engine.get_packages()}
        if self.package.removeprefix("data.") not in packages:
            raise LensError(
                f"entrypoint {entrypoint!r}: package {self.package.removeprefix('data.')} is not in the policy",
                f"packages in the policy: {', '.join(sorted(packages)) or 'none'}",
            )
        # read from the source, not by evaluating the rule: compiling must never run the policy (a runaway rule
        # would run here, outside any time limit)
        rule = self.query.rsplit(".", 1)[1]
        if not declares_rule(source, rule):
            raise LensError(
                f"entrypoint {entrypoint!r}: no rule {rule} in package {self.package.removeprefix('data.')}",
                "Newton entrypoints are `<package>.allow`",
            )
        # one query for both rules, so rules they share are evaluated once
        self._both = f"a := [x | x := {self.query}]; d := [x | x := {self.deny_query}]"
        self._lock = threading.Lock()

    def evaluate_json(self, input_json: str, data_json: str) -> Evaluation:
        """Evaluate with input and data already serialised as JSON (the fast path for many evaluations)."""
        # A fresh clone of the never-fed template per evaluation (a clone costs microseconds): regorus engines slow
        # down with every clear_data/add_data_json they have seen (measured: 2x after ~1,000 evaluations, 4x after
        # ~4,000), so a long-lived engine must never be fed data.
        with self._lock:
            engine = self.engine.clone()
        try:
            engine.add_data_json(data_json)
            engine.set_input_json(input_json)
            result = engine.eval_query(self._both)
        except Exception as err:
            return Evaluation(False, (), str(rego_problem(err)))
        rows = result.get("result") or []
        if not rows:
            return Evaluation(False, (), None)
        bindings = rows[0]["bindings"]
        allow = bindings.get("a") or []
        deny = bindings.get("d") or []
        return Evaluation(bool(allow) and allow[0] is True, _deny_tuple(deny[0] if deny else None), None)

    def evaluate(self, input: dict, params: dict, wasm: dict) -> Evaluation:
        """Evaluate the entrypoint for one intent input, params (`data.params`) and oracle output (`data.wasm`)."""
        return self.evaluate_json(json.dumps(input), json.dumps(data_document(params, wasm)))


def _deny_tuple(deny: Any) -> tuple[str, ...]:
    """The `deny` set as sorted strings (non-string members as JSON); undefined → empty."""
    if deny is None:
        return ()
    items = deny if isinstance(deny, (set, frozenset, list, tuple)) else [deny]
    return tuple(sorted(x if isinstance(x, str) else json.dumps(x, sort_keys=True) for x in items))


class _ThreadCache(threading.local):
    """Compiled policies of the current thread: regorus engines are thread-bound (pyo3 `unsendable`)."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[str, str], CompiledPolicy] = OrderedDict()

    def clear(self) -> None:
        """Drop this thread's compiled policies (call it on the thread that compiled them)."""
        self.entries.clear()


_CACHE = _ThreadCache()
_CACHE_SIZE = 64


_HASHES: OrderedDict[str, str] = OrderedDict()


def source_hash(source: str) -> str:
    """keccak256 of a policy source as 0x hex, memoised (every replay checks it; sources repeat across tasks)."""
    digest = _HASHES.get(source)
    if digest is None:
        digest = "0x" + keccak(text=source).hex()
        _HASHES[source] = digest
        while len(_HASHES) > 256:
            _HASHES.popitem(last=False)
    return digest


def compiled(source: str, entrypoint: str) -> CompiledPolicy:
    """The compiled policy for (source, entrypoint), from this thread's LRU cache keyed by keccak(source)+entrypoint."""
    key = (source_hash(source), entrypoint)
    entries = _CACHE.entries
    hit = entries.get(key)
    if hit is not None:
        entries.move_to_end(key)
        return hit
    policy = CompiledPolicy(source, entrypoint)
    entries[key] = policy
    while len(entries) > _CACHE_SIZE:
        entries.popitem(last=False)
    return policy


def encode_result(allow: bool) -> bytes:
    """`abi.encode(bool)`: the evaluationResult operators sign."""
    return (1 if allow else 0).to_bytes(32, "big")


def is_canonical_allow(evaluation_result: bytes) -> bool:
    """EVENTS.md §3.4: abi.encode(true) (32 bytes = 1) or abi.encode("true") (word 2 = 4, then 'true' zero-padded)."""
    r = bytes(evaluation_result)
    if len(r) == 32:
        return int.from_bytes(r, "big") == 1
    if len(r) >= 96:
        return int.from_bytes(r[32:64], "big") == 4 and r[64:68] == b"true" and r[68:96] == bytes(28)
    return False


def wasm_from_policy_data(datas: list) -> dict:
    """Shallow-merge the JSON oracle outputs (`PolicyData.data`, in order; bytes, text or parsed objects) into `data.wasm`."""
    merged: dict[str, Any] = {}
    for i, raw in enumerate(datas):
        if isinstance(raw, dict):  # already parsed (the indexer stores the outputs as objects)
            merged.update(raw)
            continue
        if not isinstance(raw, (str, bytes, bytearray, memoryview)):
            raise LensError(
                f"policy data #{i} is JSON but not an object", 'oracle output must be an object like {"<pack>": {...}}'
            )
        text = bytes(raw).decode("utf-8", errors="strict") if not isinstance(raw, str) else raw
        if not text.strip():
            continue
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise LensError(
                f"policy data #{i} is not JSON: {err}", "each PolicyData.data must be the oracle's UTF-8 JSON output"
            ) from None
        if not isinstance(doc, dict):
            raise LensError(
                f"policy data #{i} is JSON but not an object", 'oracle output must be an object like {"<pack>": {...}}'
            )
        merged.update(doc)
    return merged
