"""What-if: re-evaluate recorded decisions under changed params or another policy source and report the flips.

The core is `evaluate_partition`, a pure function from a partition of decisions (with one copy of each policy
source) and a `Change` to a `PartitionResult`: it runs in the killable sandbox workers here and can run as it is on
Dask workers. Decisions run on regorus' bytecode VM (RVM), about three times the interpreter's speed, each
(source, entrypoint) compiled once per process. The interpreter is the reference: it re-evaluates a sample of every
group — compiled once per process with a small wrapper module that evaluates a whole batch in one call (`with input
as … with data.params as …`), so that engine is never fed data — and a disagreement hands the whole group back to it
(`run_checked`). See `lens bench whatif`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, NamedTuple

import regorus

from app.engine.evaluate import (
    POLICY_FILE,
    CompiledPolicy,
    Evaluation,
    PolicyParseError,
    _deny_tuple,
    check_source_size,
    compiled,
    data_document,
    engine_for,
    entry_query,
    source_hash,
)
from app.engine.replay import TaskRecord, prepare
from app.engine.sandbox import SandboxPool
from app.errors import LensError

MAX_PARAMS_BYTES = 64 * 1024  # one params document (policyParams on chain are a few hundred bytes)
BATCH = 250  # decisions per regorus call: past ~200 the call overhead is gone (measured in `lens bench whatif`)
CHUNK = 2000  # decisions per worker call: hides the IPC, keeps the progress bar and cancel responsive
CHUNK_ALLOWANCE_S = 0.05  # a chunk's time limit: the one-evaluation limit plus this much per decision
WRAPPER_FILE = "lens_whatif_batch.rego"
WRAPPER_PACKAGE = "lens_whatif_batch"
WEI_UNITS = {"wei": 0, "gwei": 9, "eth": 18, "ether": 18, "token": 18, "tokens": 18}


# ---------------------------------------------------------------------------------------------
# The change a what-if applies, and values parsed against the params schema


@dataclass(frozen=True)
class Change:
    """What a what-if changes: params set on top of each decision's own (JSON texts), whole params, source, entrypoint."""

    overrides: tuple[tuple[str, str], ...] = ()  # (dotted key, JSON text of the value), applied in order
    params_json: str | None = None  # replaces every decision's params (then the overrides apply on top)
    source: str | None = None  # replaces the recorded Rego source
    entrypoint: str | None = None  # with `source`: its entrypoint (default: the recorded one)

    @property
    def is_empty(self) -> bool:
        """Whether this change changes nothing (the scenario is the baseline)."""
        return not self.overrides and self.params_json is None and self.source is None and self.entrypoint is None

    def params_for(self, recorded: dict) -> dict:
        """The params a decision is evaluated with under this change."""
        params = json.loads(self.params_json) if self.params_json is not None else json.loads(json.dumps(recorded))
        for key, text in self.overrides:
            set_path(params, key, json.loads(text))
        return params


def set_path(doc: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested params document (namespaced params of composite policies), creating objects."""
    parts = dotted.split(".")
    cur = doc
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = cur[p] = {}
        cur = nxt
    cur[parts[-1]] = value


def schema_for(schema: dict, dotted: str) -> dict | None:
    """The JSON-schema node of a dotted param key (None if the schema does not describe it)."""
    node: dict | None = schema or {}
    for p in dotted.split("."):
        props = (node or {}).get("properties") or {}
        if p not in props:
            return None
        node = props[p]
    return node


def is_wei(spec: dict | None) -> bool:
    """Whether a schema node is a wei amount (decimal string in wei)."""
    return bool(spec) and (spec.get("unit") == "wei" or (spec.get("type") == "string" and "_wei" in str(spec)))


_AMOUNT = re.compile(r"^\s*(?P<num>[0-9][0-9_,]*(?:\.[0-9_]*)?|\.[0-9_]+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_wei(text: str) -> str:
    """`12.5 ETH` → `12500000000000000000`; `3 gwei`, `100 wei` and plain digits (wei) too; exact, never a float."""
    m = _AMOUNT.match(str(text))
    if not m:
        raise LensError(
            f"{text!r} is not an amount", "write wei digits (e.g. 2500000000000000000) or an amount like '12.5 ETH'"
        )
    unit = (m.group("unit") or "wei").lower()
    if unit not in WEI_UNITS:
        raise LensError(f"unknown unit {m.group('unit')!r} in {text!r}", "use wei, gwei or ETH (tokens: 18 decimals)")
    with localcontext() as ctx:
        ctx.prec = 200  # exact: a uint256 has 78 digits, plus 18 decimals
        try:
            num = Decimal(m.group("num").replace("_", "").replace(",", ""))
        except InvalidOperation:
            raise LensError(f"{text!r} is not a number", "write e.g. 12.5 ETH") from None
        wei = num.scaleb(WEI_UNITS[unit])
    if wei != wei.to_integral_value():
        raise LensError(f"{text!r} is not a whole number of wei", "use at most 18 decimals for ETH, 9 for gwei")
    out = int(wei)
    if out >= 2**256:
        raise LensError(f"{text!r} does not fit in a uint256", "a wei amount is at most 2^256 - 1")
    return str(out)


def parse_value(schema: dict, key: str, raw: str) -> Any:
    """A `--set key=value` value parsed against the params schema: wei stays an exact decimal string, lists are JSON."""
    spec = schema_for(schema, key)
    if spec is not None and is_wei(spec):
        try:
            return parse_wei(raw)
        except LensError as err:
            raise LensError(f"{key}: {err}", err.hint) from None
    typ = (spec or {}).get("type")
    text = raw.strip()
    if typ == "string":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if typ == "boolean":
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise LensError(f"{key}={raw!r}: not a boolean", f"write {key}=true or {key}=false")
    if typ in ("number", "integer"):
        try:
            num = Decimal(text)
        except InvalidOperation:
            raise LensError(f"{key}={raw!r}: not a number", f"write e.g. {key}=70") from None
        if typ == "integer" and num != num.to_integral_value():
            raise LensError(f"{key}={raw!r}: not a whole number", f"write e.g. {key}=70")
        return int(num) if num == num.to_integral_value() and abs(num) < 2**53 else float(num)
    if typ in ("array", "object"):
        try:
            value = json.loads(text)
        except ValueError:
            if typ == "array":  # a comma-separated list of plain words is what people type
                return [x.strip() for x in text.strip("[]").split(",") if x.strip()]
            raise LensError(f"{key}={raw!r}: not JSON", f"write the {typ} as JSON") from None
        return value
    try:  # not described by the schema: JSON if it parses, else the text
        return json.loads(text)
    except ValueError:
        return text


def schema_errors(schema: dict, params: Any) -> list[str]:
    """Every way `params` fails the params schema, one line each with the key (empty list: valid)."""
    if not schema:
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "(params)"
        out.append(f"{where}: {err.message}")
    return out


def check_inputs(change: Change) -> None:
    """Bound what a user supplies (source and params sizes) and check the source parses; LensError naming the line."""
    if change.source is not None:
        check_source_size(change.source)
        # parsing always terminates (no evaluation): a parse error is reported here with its line
        engine_for(((POLICY_FILE, change.source),))
    for what, text in [("params", change.params_json)] + [(k, v) for k, v in change.overrides]:
        if text is not None and len(text.encode("utf-8")) > MAX_PARAMS_BYTES:
            raise LensError(
                f"{what} is {len(text.encode('utf-8')):,} bytes of JSON, above the {MAX_PARAMS_BYTES:,}-byte limit",
                "params documents are small; pass only the values that change",
            )


# ---------------------------------------------------------------------------------------------
# Batch evaluation: one regorus call for many decisions


def wrapper_source(entrypoint: str) -> str:
    """The wrapper module: for each decision of `input.b`, the entrypoint and `deny` under its own input and data."""
    query = entry_query(entrypoint)
    package = query.rsplit(".", 1)[0]
    # each value wrapped in a comprehension, so an undefined allow or deny gives [] and never drops the decision
    return f"""package {WRAPPER_PACKAGE}

import rego.v1

out := [r |
\tsome b in input.b
\tr := [[x | x := {query}], [x | x := {package}.deny]] with input as b.i with data.params as b.p with data.wasm as b.w with data.data as b.w
]
"""


class BatchPolicy:
    """A policy compiled once with the batch wrapper; `run` evaluates many (input, params, wasm) JSON triples."""

    def __init__(self, source: str, entrypoint: str) -> None:
        self.single: CompiledPolicy = compiled(source, entrypoint)  # checks the package and the entrypoint rule
        self.engine: regorus.Engine = engine_for(((POLICY_FILE, source), (WRAPPER_FILE, wrapper_source(entrypoint))))
        self.rule = f"data.{WRAPPER_PACKAGE}.out"

    def run(self, items: Sequence[tuple[str, str, str]]) -> list[Evaluation]:
        """Evaluations of (input JSON, params JSON, wasm JSON) triples, in order; an erroring batch goes one by one."""
        if not items:
            return []
        doc = '{"b":[' + ",".join(f'{{"i":{i},"p":{p},"w":{w}}}' for i, p, w in items) + "]}"
        engine = self.engine.clone()  # never fed data: the template stays fast (see evaluate.CompiledPolicy)
        try:
            engine.set_input_json(doc)
            rows = engine.eval_rule(self.rule)
        except Exception:  # a runtime error in one decision fails the call: find it by evaluating one at a time
            rows = None
        if not isinstance(rows, list) or len(rows) != len(items):
            return [self.single.evaluate_json(i, _data_json(p, w)) for i, p, w in items]
        out = []
        for allow, deny in rows:
            out.append(Evaluation(bool(allow) and allow[0] is True, _deny_tuple(deny[0] if deny else None), None))
        return out


def _data_json(params_json: str, wasm_json: str) -> str:
    """The data document as JSON text from its params and wasm texts (no re-encoding)."""
    return f'{{"params":{params_json},"wasm":{wasm_json},"data":{wasm_json}}}'


_COMPILED: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_COMPILED_LOCK = threading.Lock()


def _compiled_once(kind: str, make: Callable[[str, str], Any], source: str, entrypoint: str) -> Any:
    """make(source, entrypoint), once per process and thread (regorus engines and VMs are thread-bound, so the key
    includes the thread); the newest 32 kept."""
    key = (kind, source_hash(source) + str(threading.get_ident()), entrypoint)
    with _COMPILED_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            return _COMPILED[key]
    made = make(source, entrypoint)
    with _COMPILED_LOCK:
        _COMPILED[key] = made
        while len(_COMPILED) > 32:
            _COMPILED.popitem(last=False)
    return made


def batch_policy(source: str, entrypoint: str) -> BatchPolicy:
    """The batch-compiled policy for (source, entrypoint), compiled once per process and thread."""
    return _compiled_once("batch", BatchPolicy, source, entrypoint)


VM_PACKAGE = "lens_whatif_one"
VM_FILE = "lens_whatif_one.rego"
VERIFY_EVERY = 32  # each pass checks one VM result in this many (and each group's first VERIFY_FIRST) …
VERIFY_FIRST = 16  # … against the interpreter; one disagreement sends the whole group back to the interpreter


class VmPolicy:
    """A policy compiled once to regorus' bytecode VM (RVM), with a one-rule wrapper returning `[allow, deny]`: the
    fast path of a what-if, about three times the interpreter's speed on the devnet's policies; the interpreter stays
    the reference (`run_checked`)."""

    def __init__(self, source: str, entrypoint: str) -> None:
        from regorus.regorus import Program, Rvm

        query = entry_query(entrypoint)
        package = query.rsplit(".", 1)[0]
        wrapper = f"package {VM_PACKAGE}\n\nimport rego.v1\n\nout := [[x | x := {query}], [x | x := {package}.deny]]\n"
        self.rule = f"data.{VM_PACKAGE}.out"
        program = Program.compile_from_modules("{}", [(POLICY_FILE, source), (VM_FILE, wrapper)], [self.rule])
        self.vm = Rvm()
        self.vm.load_program(program)

    def run(self, items: Sequence[tuple[str, str, str]]) -> list[Evaluation | None]:
        """Evaluations of (input JSON, params JSON, wasm JSON) triples; None where the VM errs (the caller asks the
        interpreter)."""
        out: list[Evaluation | None] = []
        vm, rule = self.vm, self.rule
        for i, p, w in items:
            try:
                vm.set_data_json(_data_json(p, w))
                vm.set_input_json(i)
                allow, deny = json.loads(vm.execute_entry_point(rule))
            except Exception:  # any VM failure: this decision goes to the interpreter
                out.append(None)
                continue
            out.append(Evaluation(bool(allow) and allow[0] is True, _deny_tuple(deny[0] if deny else None), None))
        return out


def vm_policy(source: str, entrypoint: str) -> VmPolicy | None:
    """The VM-compiled policy for (source, entrypoint), once per process and thread; None if the VM cannot compile
    it (the interpreter then does all the work)."""
    return _compiled_once("vm", _vm_or_none, source, entrypoint)


def _vm_or_none(source: str, entrypoint: str) -> VmPolicy | None:
    try:
        return VmPolicy(source, entrypoint)
    except Exception:  # a construct the VM does not compile: the interpreter handles this source
        return None


def run_checked(
    policy: BatchPolicy, vm: VmPolicy | None, items: Sequence[tuple[str, str, str]], batch: int
) -> tuple[list[Evaluation], int, int]:
    """Evaluations of a group of items on the VM, checked against the interpreter on a sample (its first
    VERIFY_FIRST and one in VERIFY_EVERY): (evaluations, decisions checked, disagreements). A disagreement or a VM
    error hands the whole group to the interpreter."""

    def interpreted(part: Sequence[tuple[str, str, str]]) -> list[Evaluation]:
        return [ev for s in range(0, len(part), batch) for ev in policy.run(part[s : s + batch])]

    if vm is None:
        return interpreted(items), 0, 0
    fast = vm.run(items)
    sample = [k for k in range(len(items)) if k < VERIFY_FIRST or k % VERIFY_EVERY == 0 or fast[k] is None]
    reference = interpreted([items[k] for k in sample])
    disagree = sum(1 for k, ref in zip(sample, reference) if fast[k] is not None and fast[k] != ref)
    if disagree or any(ev is None for ev in fast):
        return interpreted(items), len(sample), disagree
    return [ev for ev in fast if ev is not None], len(sample), 0


# ---------------------------------------------------------------------------------------------
# The pure core: a partition of decisions → flips


@dataclass(frozen=True)
class Flip:
    """One decision whose verdict the change flips, with the deny reasons it adds and removes."""

    task_id: str
    client: str
    agent: str
    from_allow: bool
    to_allow: bool
    deny_added: tuple[str, ...]
    deny_removed: tuple[str, ...]


@dataclass(frozen=True)
class PartitionResult:
    """What a partition of decisions gave: counts, baseline mismatches, errors, flips and reason changes."""

    decisions: int
    evaluations: int
    baseline_mismatches: tuple[str, ...]  # task ids whose baseline differs from the attested verdict
    errors: tuple[tuple[str, str], ...]  # (task id, why) for decisions the baseline or the change cannot evaluate
    flips: tuple[Flip, ...]
    reasons_added: dict[str, int] = field(default_factory=dict)  # over every decision, not only the flips
    reasons_removed: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    vm_checked: int = 0  # evaluations the interpreter repeated to check the VM
    vm_disagreements: int = 0  # of those, how many the VM got wrong (their groups were re-run on the interpreter)
    fresh: tuple[tuple[str, Baseline], ...] = ()  # baselines computed here (task id → baseline), for the cache


class Baseline(NamedTuple):
    """A decision's evaluation inputs as JSON and its unchanged verdict: what a what-if cache keeps per decision.
    A tuple, so a chunk of them travels to a worker as plain tuples (`wire`), several times cheaper to pickle."""

    input_json: str
    params_json: str
    wasm_json: str
    allow: bool
    deny: tuple[str, ...]
    error: str | None = None


_TAG: list[str] = []


def cache_tag() -> str:
    """A fingerprint of the code that builds a decision's input and evaluates it (regorus' version, the engine's
    sources): a cached baseline made by other code is never used. (This module only moves the cached values.)"""
    if not _TAG:
        import hashlib
        from importlib.metadata import version
        from pathlib import Path

        h = hashlib.sha256(version("celine-regorus").encode())
        here = Path(__file__).resolve().parent
        for name in ("intent.py", "replay.py", "evaluate.py"):
            h.update((here / name).read_bytes())
        _TAG.append(h.hexdigest()[:16])
    return _TAG[0]


def evaluate_partition(
    tasks: Sequence[TaskRecord | Ref],
    index: Sequence[int | None],
    sources: Sequence[str],
    change: Change,
    batch: int = BATCH,
    cached: Sequence[Baseline | tuple | None] | None = None,
    use_vm: bool = True,
) -> PartitionResult:
    """Re-evaluate a partition of decisions unchanged (baseline) and under `change`; pure apart from the per-process
    compile cache. `tasks` carry no source: `index[k]` points into `sources` (one copy per partition). A decision
    with a `cached` baseline is neither rebuilt nor re-evaluated unchanged; the others' baselines come back in
    `fresh`. With `use_vm` both passes run on regorus' VM, checked against the interpreter (`run_checked`)."""
    c0 = time.process_time()
    errors: list[tuple[str, str]] = []
    base_groups: dict[tuple[int, str], list[int]] = {}
    new_groups: dict[tuple[int, str], list[int]] = {}
    rows: list[tuple[TaskRecord | Ref, str, str, str, str | None]] = []  # task, input, params, wasm, changed params
    base: list[Evaluation | None] = []
    changed_by_version: dict[str, str] = {}
    new_source_at = len(sources)
    all_sources = list(sources) + ([change.source] if change.source is not None else [])
    for n, (t, i) in enumerate(zip(tasks, index)):
        if i is None:
            errors.append((t.task_id, "the policy source is not indexed"))
            continue
        hit = cached[n] if cached is not None else None
        if hit is not None:
            hit = Baseline._make(hit)  # a plain tuple on the wire
            params_json, input_json, wasm_json = hit.params_json, hit.input_json, hit.wasm_json
            params = None
        elif isinstance(t, Ref):
            errors.append((t.task_id, "a decision sent without its baseline"))
            continue
        else:
            try:
                prep = prepare(replace(t, source=sources[i]))
            except LensError as err:
                errors.append((t.task_id, str(err)))
                continue
            params, params_json = prep.params, json.dumps(prep.params)
            input_json, wasm_json = json.dumps(prep.input), json.dumps(prep.wasm)
        changed = None
        if change.overrides or change.params_json is not None:
            # decisions share a few params versions: the changed params are built once per version
            changed = changed_by_version.get(params_json)
            if changed is None:
                doc = params if params is not None else json.loads(params_json)
                changed = changed_by_version[params_json] = json.dumps(change.params_for(doc))
        k = len(rows)
        rows.append((t, input_json, params_json, wasm_json, changed))
        if hit is not None:
            base.append(Evaluation(hit.allow, hit.deny, hit.error))
        else:
            base.append(None)
            base_groups.setdefault((i, t.entrypoint), []).append(k)
        if change.source is not None or change.entrypoint:
            target = (new_source_at if change.source is not None else i, change.entrypoint or t.entrypoint)
            new_groups.setdefault(target, []).append(k)
        elif changed is not None and changed != params_json:
            new_groups.setdefault((i, t.entrypoint), []).append(k)
    new: list[Evaluation | None] = [None] * len(rows)
    evaluations = checked = disagreements = 0
    # both passes run on the VM, checked against the interpreter (the reference) on a sample
    for groups, into, use_changed in ((base_groups, base, False), (new_groups, new, True)):
        for (si, entry), ks in groups.items():
            policy = batch_policy(all_sources[si], entry)
            vm = vm_policy(all_sources[si], entry) if use_vm else None
            items = [(rows[k][1], (rows[k][4] or rows[k][2]) if use_changed else rows[k][2], rows[k][3]) for k in ks]
            evs, n_checked, n_disagree = run_checked(policy, vm, items, batch)
            for k, ev in zip(ks, evs):
                into[k] = ev
            evaluations += len(ks)
            checked, disagreements = checked + n_checked, disagreements + n_disagree
    fresh_keys = {k for ks in base_groups.values() for k in ks}
    mismatches: list[str] = []
    flips: list[Flip] = []
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for k, (t, *_rest) in enumerate(rows):
        b = base[k]
        n = new[k] if new[k] is not None else b
        if b is None or n is None:
            continue
        if b.error:
            errors.append((t.task_id, f"baseline: {b.error}"))
            continue
        if b.allow != t.attested_allow:
            mismatches.append(t.task_id)
        if n.error:
            errors.append((t.task_id, f"changed: {n.error}"))
            continue
        plus = tuple(sorted(set(n.deny) - set(b.deny)))
        minus = tuple(sorted(set(b.deny) - set(n.deny)))
        added.update(plus)
        removed.update(minus)
        if n.allow != b.allow:
            agent = t.agent if isinstance(t, Ref) else t.intent.from_.lower()
            flips.append(Flip(t.task_id, t.policy_client, agent, b.allow, n.allow, plus, minus))
    return PartitionResult(
        decisions=len(tasks),
        evaluations=evaluations,
        baseline_mismatches=tuple(mismatches),
        errors=tuple(errors),
        flips=tuple(flips),
        reasons_added=dict(added),
        reasons_removed=dict(removed),
        cpu_s=time.process_time() - c0,
        vm_checked=checked,
        vm_disagreements=disagreements,
        fresh=tuple(
            (t.task_id, Baseline(ij, pj, wj, b.allow, b.deny, b.error))
            for k, (t, ij, pj, wj, _c) in enumerate(rows)
            if k in fresh_keys and (b := base[k]) is not None
        ),
    )


class Ref(NamedTuple):
    """A decision with a cached baseline, as it travels to a worker: only what the flips need (a TaskRecord with
    its intent costs several times more to pickle than the evaluation it stands for)."""

    task_id: str
    policy_client: str
    agent: str
    attested_allow: bool | None
    entrypoint: str


def pack(
    tasks: Sequence[TaskRecord], cached: Sequence[Baseline | None] | None = None
) -> tuple[list[TaskRecord | Ref], list[int | None], list[str]]:
    """Tasks without their sources (a `Ref` where a baseline is cached) and an index into one list of distinct
    sources (a source travels once)."""
    sources: list[str] = []
    seen: dict[str, int] = {}
    slim: list[TaskRecord | Ref] = []
    index: list[int | None] = []
    for n, t in enumerate(tasks):
        i = None
        if t.source is not None:
            i = seen.get(t.source)
            if i is None:
                i = seen[t.source] = len(sources)
                sources.append(t.source)
        index.append(i)
        if cached is not None and cached[n] is not None:
            slim.append(Ref(t.task_id, t.policy_client, t.intent.from_.lower(), t.attested_allow, t.entrypoint))
        else:
            slim.append(replace(t, source=None))
    return slim, index, sources


def wire(cached: Sequence[Baseline | None] | None) -> list[tuple | None] | None:
    """Cached baselines as plain tuples for a worker (`evaluate_partition` takes either)."""
    return None if cached is None else [None if b is None else tuple(b) for b in cached]


def warm() -> bool:
    """Worker warm-up: import the engine and the ABI decoding before the first chunk arrives."""
    import app.engine.intent  # noqa: F401

    return True


def merge(parts: Sequence[PartitionResult]) -> PartitionResult:
    """One result from many partitions (in order)."""
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for p in parts:
        added.update(p.reasons_added)
        removed.update(p.reasons_removed)
    return PartitionResult(
        decisions=sum(p.decisions for p in parts),
        evaluations=sum(p.evaluations for p in parts),
        baseline_mismatches=tuple(x for p in parts for x in p.baseline_mismatches),
        errors=tuple(x for p in parts for x in p.errors),
        flips=tuple(x for p in parts for x in p.flips),
        reasons_added=dict(added),
        reasons_removed=dict(removed),
        cpu_s=sum(p.cpu_s for p in parts),
        vm_checked=sum(p.vm_checked for p in parts),
        vm_disagreements=sum(p.vm_disagreements for p in parts),
        fresh=tuple(x for p in parts for x in p.fresh),
    )


# ---------------------------------------------------------------------------------------------
# Running it: killable worker processes, time and memory limits, an overall budget, progress, cancel


class WhatIfStopped(LensError):
    """The what-if was stopped: a runaway source, the memory limit, the overall budget, or a cancel."""


@dataclass(frozen=True)
class Limits:
    """The safety limits of a run: one evaluation, the whole run, a worker's memory."""

    eval_timeout_ms: int = 2000
    budget_s: float = 600.0
    memory_mb: int = 1024  # resident memory of one worker (the sandbox's limit)


def _quiet_ctrl_c() -> None:
    """Block SIGINT in this (pool) thread: a worker process it starts inherits the mask, so a Ctrl-C at the terminal
    (sent to the whole process group) reaches only the caller, which stops the workers itself — no worker dies
    printing its own traceback."""
    import signal

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class WhatIfPool(SandboxPool):
    """`workers` killable worker processes (the sandbox's); `run` evaluates decisions in chunks on them."""

    def __init__(self, workers: int | None = None, memory_mb: int | None = None) -> None:
        super().__init__(warm, workers, memory_mb, name="lens-whatif", initializer=_quiet_ctrl_c)
        self.cancelled = threading.Event()

    def close(self) -> None:
        """Stop every worker (a running evaluation is killed)."""
        self.cancelled.set()
        super().close()

    def run(
        self,
        tasks: Sequence[TaskRecord],
        change: Change,
        limits: Limits,
        *,
        chunk: int = CHUNK,
        batch: int = BATCH,
        on_progress: Callable[[int, PartitionResult], None] | None = None,
        on_tick: Callable[[int, int], None] | None = None,
        poll_s: float = 0.2,
        cached: Sequence[Baseline | None] | None = None,
    ) -> PartitionResult:
        """Every decision evaluated, partitions in order; WhatIfStopped for a runaway, the budget or a cancel.

        Polls its workers every `poll_s` from the calling thread, so Ctrl-C (KeyboardInterrupt) and Streamlit's
        rerun reach it between polls, and calls `on_tick(decisions done, flips so far)` there (Streamlit elements
        can only be updated from the script's own thread); `on_progress(n, part)` runs on the pool's threads."""
        from app.engine.sandbox import EvalMemoryLimit, EvalTimeout

        check_inputs(change)
        started = time.monotonic()
        for w in self._warming:
            try:
                w.result()
            except LensError:
                pass  # restarted by its first call, which reports the problem
        chunk = max(1, min(chunk, -(-len(tasks) // self.workers) if tasks else 1))
        chunks = [list(tasks[i : i + chunk]) for i in range(0, len(tasks), chunk)]
        cached_chunks = [
            list(cached[i : i + chunk]) if cached is not None else None for i in range(0, len(tasks), chunk)
        ]
        results: list[PartitionResult | None] = [None] * len(chunks)
        failure: list[BaseException] = []
        queue = list(range(len(chunks)))
        lock = threading.Lock()
        tally = [0, 0]  # decisions done, flips so far

        def work(box_no: int) -> None:
            _quiet_ctrl_c()
            sb = self.boxes[box_no]
            while not self.cancelled.is_set() and not failure:
                with lock:
                    if not queue:
                        return
                    k = queue.pop(0)
                part = chunks[k]
                limit = limits.eval_timeout_ms / 1000.0 + CHUNK_ALLOWANCE_S * len(part)
                limit = min(limit, max(0.5, limits.budget_s - (time.monotonic() - started)))
                try:
                    out = sb.call(
                        evaluate_partition,
                        (*pack(part, cached_chunks[k]), change, batch, wire(cached_chunks[k])),
                        limit,
                    )
                except EvalMemoryLimit as err:
                    if not self.cancelled.is_set() and not failure:
                        failure.append(WhatIfStopped(str(err), err.hint))
                    return
                except EvalTimeout:
                    if self.cancelled.is_set() or failure:
                        return
                    try:
                        why = self._explain_timeout(sb, part, change, limits, started)
                    except Exception:  # this worker was killed by a stop found elsewhere meanwhile
                        return
                    failure.append(why)
                    return
                except LensError as err:
                    if self.cancelled.is_set():
                        return
                    failure.append(err)
                    return
                except Exception as err:  # the connection of a worker killed by a stop elsewhere
                    if not self.cancelled.is_set() and not failure:
                        failure.append(WhatIfStopped(f"a what-if worker failed: {err}", "run again"))
                    return
                results[k] = out
                with lock:
                    tally[0] += len(part)
                    tally[1] += len(out.flips)
                    if on_progress is not None:
                        on_progress(len(part), out)

        used = max(1, min(self.workers, len(chunks)))
        threads = [threading.Thread(target=work, args=(b,), daemon=True) for b in range(used)]
        for th in threads:
            th.start()
        try:
            while any(th.is_alive() for th in threads):
                for th in threads:
                    th.join(poll_s / len(threads))
                if on_tick is not None:
                    on_tick(tally[0], tally[1])
                if not failure and time.monotonic() - started > limits.budget_s:
                    failure.append(
                        WhatIfStopped(
                            f"the what-if ran past its overall budget of {limits.budget_s:.0f} s and was stopped",
                            "narrow it (--client, --from-block/--to-block) or raise LENS_WHATIF_BUDGET_S",
                        )
                    )
                if failure:
                    self.cancelled.set()
                    for b in self.boxes:
                        b.kill()
        except BaseException:
            self.cancelled.set()
            for b in self.boxes:
                b.kill()
            raise
        if failure:
            raise failure[0]
        return merge([r for r in results if r is not None])

    def _explain_timeout(
        self, sb: Any, part: list[TaskRecord], change: Change, limits: Limits, started: float
    ) -> LensError:
        """After a chunk overran: find the decision that runs away (alone, under the one-evaluation limit)."""
        from app.engine.sandbox import EvalMemoryLimit, EvalTimeout

        if time.monotonic() - started > limits.budget_s:
            return WhatIfStopped(
                f"the what-if ran past its overall budget of {limits.budget_s:.0f} s and was stopped",
                "narrow it (--client, --from-block/--to-block) or raise LENS_WHATIF_BUDGET_S",
            )
        for t in part[:20]:
            if self.cancelled.is_set():
                break
            for which, ch in (("the changed policy", change), ("the recorded policy", Change())):
                try:
                    sb.call(evaluate_partition, (*pack([t]), ch, 1), limits.eval_timeout_ms / 1000.0)
                except EvalMemoryLimit as err:
                    return WhatIfStopped(f"{which} on decision {t.task_id}: {err}", err.hint)
                except EvalTimeout:
                    return WhatIfStopped(
                        f"evaluation stopped after {limits.eval_timeout_ms:,} ms: {which} runs too long on decision "
                        f"{t.task_id} (a rule that loops or recurses without bound?)",
                        "fix the policy's iteration, or raise LENS_EVAL_TIMEOUT_MS if it is just slow",
                    )
        return WhatIfStopped(
            "a chunk of decisions ran past its time limit (each decision alone finishes: the machine is overloaded?)",
            "retry, or raise LENS_EVAL_TIMEOUT_MS",
        )


def workers_for(decisions: int) -> int:
    """Worker processes for a what-if of this many decisions: one per core, fewer for a small one."""
    return min(os.cpu_count() or 1, max(1, -(-decisions // 500)))


def run_whatif(
    tasks: Sequence[TaskRecord],
    change: Change,
    limits: Limits,
    *,
    workers: int | None = None,
    on_progress: Callable[[int, PartitionResult], None] | None = None,
    on_tick: Callable[[int, int], None] | None = None,
    cached: Sequence[Baseline | None] | None = None,
) -> PartitionResult:
    """Evaluate `tasks` under `change` on killable worker processes (default: one per core) and merge the flips."""
    with WhatIfPool(workers or workers_for(len(tasks)), limits.memory_mb) as pool:
        return pool.run(tasks, change, limits, on_progress=on_progress, on_tick=on_tick, cached=cached)


__all__ = [
    "Baseline",
    "Change",
    "Flip",
    "Limits",
    "PartitionResult",
    "PolicyParseError",
    "WhatIfPool",
    "WhatIfStopped",
    "data_document",
    "evaluate_partition",
    "merge",
    "parse_value",
    "parse_wei",
    "run_whatif",
    "schema_errors",
]
