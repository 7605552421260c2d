"""Explain one evaluation: rule tree with values, first failing condition per failed body, lines, sentence, counterfactuals."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.engine.counterfactual import Counterfactual, search
from app.engine.evaluate import POLICY_FILE, CompiledPolicy, Evaluation, data_document, rego_problem
from app.engine.model import Body, PolicyModel, build_model
from app.engine.values import fmt_value, unit_of

POLICIES_DIR = Path(__file__).resolve().parents[2] / "data" / "policies"
UNDEFINED = {"undefined": True}  # JSON marker for an undefined value


@dataclass(frozen=True)
class TermValue:
    """A term of a failed condition and its value (`defined` false = undefined; `error` if it could not be computed)."""

    text: str
    value: Any
    defined: bool
    more: int = 0  # further distinct values (the condition sits under an iteration)
    error: str | None = None


@dataclass(frozen=True)
class Condition:
    """A statement of a body, with line and term values."""

    text: str
    line: int
    terms: tuple[TermValue, ...] = ()


@dataclass(frozen=True)
class BodyOutcome:
    """Whether one body of a rule held for this input; if not, the first condition that failed."""

    rule: str
    head: str
    line: int
    succeeded: bool | None  # None = could not be probed (function, or unsafe prefix)
    failed_at: Condition | None = None
    note: str = ""
    # decided the verdict: a failed body of the entrypoint (deny), a deny rule that fired, the entrypoint body that
    # held (allow); every other body (a deny rule that did not fire = a check that passed) is kept for the record
    decisive: bool = False


@dataclass(frozen=True)
class RuleNode:
    """A rule the entrypoint depends on, its value for this input, and the rules it depends on."""

    name: str
    kind: str
    line: int
    state: str  # 'true' | 'false' | 'undefined' | 'value' | 'function' | 'error'
    value: Any
    children: tuple[RuleNode, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """The explanation record pages and the CLI format (see issue 5)."""

    entrypoint: str
    allow: bool
    deny: tuple[str, ...]
    error: str | None
    sentence: str
    rule_tree: RuleNode | None
    bodies: tuple[BodyOutcome, ...]
    lines_reached: tuple[int, ...]
    lines_not_reached: tuple[int, ...]
    lines_failed: tuple[int, ...]
    counterfactuals: tuple[Counterfactual, ...]
    counterfactual_note: str = ""
    policy_name: str = ""
    source: str = ""
    # filled when explaining an indexed task
    task_id: str = ""
    attested_allow: bool | None = None
    replayed_allow: bool | None = None
    replay: str = ""
    replay_reason: str = ""
    timings_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)


# --------------------------------------------------------------------------- metadata


@lru_cache(maxsize=32)
def local_metadata(package: str) -> tuple[dict, dict]:
    """(metadata.json, params_schema.json) of the local policy folder whose package matches, else empty dicts."""
    name = package.removeprefix("data.").split(".")[0]
    folder = POLICIES_DIR / name
    meta, schema = {}, {}
    try:
        meta = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        pass
    try:
        schema = json.loads((folder / "params_schema.json").read_text())
    except (OSError, ValueError):
        pass
    return meta, schema


# --------------------------------------------------------------------------- probing


def model_of(policy: CompiledPolicy) -> PolicyModel:
    """The cached PolicyModel of a compiled policy."""
    model = getattr(policy, "_lens_model", None)
    if model is None:
        model = build_model(policy.engine.get_ast_as_json(), POLICY_FILE, policy.source)
        policy._lens_model = model
    return model


def _prepared(policy: CompiledPolicy, input_json: str, data_json: str, base=None):
    """A clone of the policy's (or the given) engine holding this input and data (the original stays untouched)."""
    with policy._lock:
        engine = (base or policy.engine).clone()  # templates are never fed data (see CompiledPolicy.evaluate_json)
    engine.add_data_json(data_json)
    engine.set_input_json(input_json)
    return engine


def _header(model: PolicyModel) -> str:
    """The probe module's header: same package and imports as the policy, Rego v1 syntax."""
    # rego.v1 implies the future keywords, and regorus rejects importing them again
    imports = [i for i in model.imports if i and not i.split()[1].startswith(("rego.", "future."))]
    return "\n".join([f"package {model.package.removeprefix('data.')}", "import rego.v1", *imports]) + "\n"


def _block(stmts: list[str]) -> str:
    """A rule body from statement texts (`true` when empty)."""
    return "{\n" + ("\n".join(stmts) if stmts else "true") + "\n}"


def _run_probes(engine, model: PolicyModel, rules: dict[str, str]) -> dict[str, Any]:
    """Evaluate many `name contains … if {…}` probe rules at once; fall back to one module per probe on error.

    Returns name → list of JSON values, or an error string for probes that cannot run (e.g. unsafe prefix)."""
    if not rules:
        return {}
    header = _header(model)
    pkg = model.package
    agg = "__lens_all := {" + ", ".join(f'"{n}": {n}' for n in rules) + "}\n"
    module = header + "\n".join(rules.values()) + "\n" + agg
    try:
        probe = engine.clone()
        probe.add_policy("__lens_probe.rego", module)
        out = json.loads(probe.eval_rule_as_json(f"{pkg}.__lens_all"))
        return {n: list(out.get(n, [])) for n in rules}
    except Exception:
        pass
    results: dict[str, Any] = {}
    for name, text in rules.items():
        try:
            probe = engine.clone()
            probe.add_policy("__lens_probe.rego", header + text + "\n")
            results[name] = list(json.loads(probe.eval_rule_as_json(f"{pkg}.{name}")))
        except Exception as err:
            results[name] = str(rego_problem(err))
    return results


def _plan(model: PolicyModel, names: list[str]) -> tuple[list[tuple[str, Body]], dict[str, str], dict[str, str]]:
    """Input-independent probe rules: one per body prefix, one per term of every statement (under its prefix)."""
    bodies: list[tuple[str, Body]] = []
    prefixes: dict[str, str] = {}
    terms: dict[str, str] = {}
    for name in names:
        rule = model.rules[name]
        if rule.kind == "function":
            continue  # arguments are unbound outside a call
        for body in rule.bodies:
            bid = f"__lens_b{len(bodies)}"
            bodies.append((bid, body))
            texts = [st.text for st in body.stmts]
            for k in range(1, len(texts) + 1):
                prefixes[f"{bid}_{k}"] = f"{bid}_{k} contains 1 if " + _block(texts[:k])
                for j, term in enumerate(body.stmts[k - 1].terms):
                    tid = f"{bid}_{k}_t{j}"
                    terms[tid] = f"{tid} contains [__lens_v] if " + _block(texts[: k - 1] + [f"__lens_v := ({term})"])
    return bodies, prefixes, terms


def plan_of(
    policy: CompiledPolicy, model: PolicyModel, names: list[str]
) -> tuple[list[tuple[str, Body]], dict[str, str], dict[str, str]]:
    """The probe plan of a compiled policy for these rule names, built once per policy (it does not depend on input)."""
    key = tuple(names)
    cached = getattr(policy, "_lens_plan", None)
    if cached is None or cached[0] != key:
        cached = (key, _plan(model, names))
        policy._lens_plan = cached
    return cached[1]


def probe_engine(policy: CompiledPolicy, model: PolicyModel, names: list[str]):
    """The policy plus every probe rule, compiled once per policy (None if some probe cannot compile)."""
    key = tuple(names)
    cached = getattr(policy, "_lens_probe", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    _, prefixes, terms = plan_of(policy, model, names)
    agg = "__lens_all := {" + ", ".join(f'"{n}": count({n})' for n in prefixes) + "}\n"
    module = _header(model) + "\n".join(list(prefixes.values()) + list(terms.values())) + "\n" + agg
    try:
        from app.engine.evaluate import engine_for

        engine = engine_for(((POLICY_FILE, policy.source), ("__lens_probe.rego", module)))
        engine.eval_rule(f"{model.package}.__lens_all")  # compile errors (unsafe vars) surface on first use
    except Exception:  # e.g. an unsafe prefix: fall back to one probe module per rule
        engine = None
    policy._lens_probe = (key, engine)
    return engine


def _probe_bodies(
    engine, model: PolicyModel, names: list[str], compiled_probes: bool, plan=None, raw_counts: dict | None = None
) -> list[BodyOutcome]:
    """For each body of the named rules: did it hold, and if not, its first failing condition with term values.

    With `compiled_probes` the engine already holds every probe rule (and `raw_counts` may hold `__lens_all`,
    fetched with the rule values); otherwise probe modules are added here."""
    bodies, prefixes, all_terms = plan or _plan(model, names)
    pkg = model.package
    if compiled_probes:
        try:
            raw = raw_counts if raw_counts is not None else json.loads(engine.eval_rule_as_json(f"{pkg}.__lens_all"))
            counts: dict[str, Any] = {n: [1] * int(raw.get(n, 0)) for n in prefixes}
        except Exception:
            compiled_probes = False
    if not compiled_probes:
        counts = _run_probes(engine, model, prefixes)
    outcomes: list[BodyOutcome] = []
    wanted: list[str] = []
    pending: list[tuple[int, str, Body, int]] = []
    for bid, body in bodies:
        n = len(body.stmts)
        if n == 0:
            outcomes.append(BodyOutcome(body.rule, body.head, body.line, True, None, "else" if body.is_else else ""))
            continue
        failed_k, unknown = None, None
        for k in range(1, n + 1):
            res = counts.get(f"{bid}_{k}")
            if isinstance(res, str):
                unknown = res
                continue
            if not res:
                failed_k = k
                break
        if failed_k is None:
            ok = unknown is None
            outcomes.append(
                BodyOutcome(
                    body.rule,
                    body.head,
                    body.line,
                    True if ok else None,
                    None,
                    "" if ok else f"could not probe: {unknown}",
                )
            )
            continue
        stmt = body.stmts[failed_k - 1]
        wanted.extend(f"{bid}_{failed_k}_t{j}" for j in range(len(stmt.terms)))
        pending.append((len(outcomes), bid, body, failed_k))
        outcomes.append(BodyOutcome(body.rule, body.head, body.line, False, Condition(stmt.text, stmt.line)))
    values: dict[str, Any] = {}
    if wanted and compiled_probes:
        query = "__lens_x := {" + ", ".join(f'"{t}": {pkg}.{t}' for t in wanted) + "}"
        try:
            values = json.loads(engine.eval_query_as_json(query))["result"][0]["bindings"]["__lens_x"]
        except Exception:
            for t in wanted:
                try:
                    values[t] = json.loads(engine.eval_rule_as_json(f"{pkg}.{t}"))
                except Exception as err:
                    values[t] = str(rego_problem(err))
    elif wanted:
        values = _run_probes(engine, model, {t: all_terms[t] for t in wanted})
    for idx, bid, body, k in pending:
        stmt = body.stmts[k - 1]
        terms = []
        for j, term in enumerate(stmt.terms):
            res = values.get(f"{bid}_{k}_t{j}")
            if isinstance(res, str):
                terms.append(TermValue(term, None, False, 0, res))
            elif not res:
                terms.append(TermValue(term, None, False))
            else:
                terms.append(TermValue(term, res[0][0], True, len(res) - 1))
        o = outcomes[idx]
        outcomes[idx] = BodyOutcome(
            o.rule, o.head, o.line, False, Condition(stmt.text, stmt.line, tuple(terms)), o.note
        )
    return _mark_unreached_else(outcomes, [b for _, b in bodies])


def _mark_unreached_else(outcomes: list[BodyOutcome], bodies: list[Body]) -> list[BodyOutcome]:
    """An `else` branch after a branch that held is never evaluated: report it as not reached, not as failed."""
    out, done = [], False
    for outcome, body in zip(outcomes, bodies):
        o = outcome
        if not body.is_else:
            done = False
        if done and body.is_else:
            out.append(BodyOutcome(o.rule, o.head, o.line, None, None, "not reached: an earlier branch applied"))
            continue
        done = done or o.succeeded is True
        out.append(o)
    return out


def _values_query(model: PolicyModel, names: list[str]) -> str:
    """The query that evaluates every named (non-function) rule at once, collecting each one's values."""
    plain = [n for n in names if model.rules[n].kind != "function"]
    return "__lens_x := {" + ", ".join(f'"{n}": [v | v := {model.package}.{n}]' for n in plain) + "}"


def _values_and_counts(engine, model: PolicyModel, names: list[str]) -> tuple[dict | None, dict | None]:
    """(rule values row, probe prefix counts) from ONE evaluation of an engine holding the compiled probes.

    Rules shared by the values and the probes are then evaluated once; (None, None) if the joint query fails."""
    query = _values_query(model, names) + f"; __lens_c := {model.package}.__lens_all"
    try:
        bindings = json.loads(engine.eval_query_as_json(query))["result"][0]["bindings"]
        return bindings["__lens_x"], bindings["__lens_c"]
    except Exception:
        return None, None


def mark_decisive(bodies: list[BodyOutcome], entry: str, ev: Evaluation) -> list[BodyOutcome]:
    """Flag the bodies that decided the verdict: for a deny, the entrypoint's failed bodies and the deny rules that
    fired; for an allow, the entrypoint body that held. An evaluation error has no decisive body."""
    out = []
    for b in bodies:
        if ev.error or b.note.startswith(("not needed", "not reached")):
            decisive = False
        elif b.rule == entry:
            decisive = (b.succeeded is True) if ev.allow else (b.succeeded is False and b.failed_at is not None)
        elif b.rule == "deny":
            decisive = b.succeeded is True and not ev.allow
        else:
            decisive = False
        out.append(replace(b, decisive=decisive) if decisive != b.decisive else b)
    return out


def _rule_values(engine, model: PolicyModel, names: list[str], row: dict | None = None) -> dict[str, tuple[str, Any]]:
    """name → (state, value) for each rule, evaluated together (one by one if that fails); `row` = already fetched."""
    pkg = model.package
    plain = [n for n in names if model.rules[n].kind != "function"]
    out: dict[str, tuple[str, Any]] = {n: ("function", None) for n in names if n not in plain}
    try:
        if row is None:
            res = json.loads(engine.eval_query_as_json(_values_query(model, names)))
            row = res["result"][0]["bindings"]["__lens_x"]
        vals = {n: row.get(n, []) for n in plain}
    except Exception:
        vals = {}
        for n in plain:
            try:
                r = json.loads(engine.eval_query_as_json(f"__lens_x := [v | v := {pkg}.{n}]"))
                vals[n] = r["result"][0]["bindings"]["__lens_x"]
            except Exception as err:
                out[n] = ("error", str(rego_problem(err)))
    for n, v in vals.items():
        if not v:
            out[n] = ("undefined", None)
        elif v[0] is True:
            out[n] = ("true", True)
        elif v[0] is False:
            out[n] = ("false", False)
        else:
            out[n] = ("value", v[0])
    return out


def _tree(model: PolicyModel, name: str, values: dict, seen: set[str]) -> RuleNode:
    """The dependency tree below `name` (each rule expanded once; repeats are leaves)."""
    rule = model.rules[name]
    state, value = values.get(name, ("undefined", None))
    if name in seen:
        return RuleNode(name, rule.kind, rule.line, state, value)
    seen.add(name)
    kids = tuple(_tree(model, d, values, seen) for d in rule.deps if d in model.rules)
    return RuleNode(name, rule.kind, rule.line, state, value, kids)


def _coverage(engine, query_both: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lines reached, lines not reached) of policy.rego for one evaluation of allow and deny."""
    try:
        engine.set_enable_coverage(True)
        engine.clear_coverage_data()
        engine.eval_query(query_both)
        report = json.loads(engine.get_coverage_report_as_json())
        engine.set_enable_coverage(False)
    except Exception:
        return (), ()
    for f in report.get("files", []):
        if f.get("path") == POLICY_FILE:
            return tuple(sorted(f.get("covered", []))), tuple(sorted(f.get("not_covered", [])))
    return (), ()


# --------------------------------------------------------------------------- sentence


class _Vars(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _sentence_vars(values: dict, params: dict, wasm: dict, unit: str) -> dict[str, str]:
    """Template variables: scalar rule values, params, oracle fields (flattened one level below the pack)."""
    raw: dict[str, Any] = {}
    for pack in wasm.values() if isinstance(wasm, dict) else []:
        if isinstance(pack, dict):
            raw.update(pack)
    raw.update(params if isinstance(params, dict) else {})
    for name, (state, value) in values.items():
        if state in ("value", "true", "false") and not isinstance(value, (dict,)):
            raw.setdefault(name, value)
    return {k: fmt_value(v, k, unit) for k, v in raw.items()}


def oracle_errors(wasm: Any) -> list[tuple[str, str]]:
    """(pack, the oracle's own error text) for every oracle output that reports an error."""
    out = []
    for pack, value in wasm.items() if isinstance(wasm, dict) else []:
        if isinstance(value, dict) and value.get("error") not in (None, False, ""):
            err = value["error"]
            out.append((str(pack), err if isinstance(err, str) else json.dumps(err)))
    return out


def _named_params(text_template: str, spec: dict, params: dict, unit: str) -> str:
    """`allowlist_only = true; allowlist = []` for the reason's params its text does not already show."""
    shown = []
    for p in spec.get("params", []):
        if p in params and "{" + p + "}" not in text_template:
            shown.append(f"{p} = {fmt_value(params[p], p, unit)}")
    return "; ".join(shown)


def build_sentence(
    ev: Evaluation,
    entry: str,
    values: dict,
    bodies: list[BodyOutcome],
    params: dict,
    wasm: dict,
    meta: dict,
    schema: dict,
    symbols: dict[str, str] | None = None,
) -> str:
    """One plain-language sentence: the verdict and why, from the metadata's reason texts, with the values in force
    (the required value beside the observed one, durations as durations, amounts in the asset's unit) and the
    oracle's own error text. `schema` is the params schema (kept for callers; its descriptions stay out of it)."""
    unit = unit_of(values.get("__input__", ("value", {}))[1], symbols)
    if ev.error:
        return f"Could not evaluate the policy: {ev.error}. This is an evaluation error, not a denial."
    reasons = meta.get("reasons") or {}
    errors = oracle_errors(wasm)
    said = "; ".join(f'the {pack} oracle reported "{err}"' for pack, err in errors)
    if not ev.allow:
        tvars = _Vars(_sentence_vars(values, params, wasm, unit))
        parts = []
        for reason in ev.deny:
            key, _, detail = reason.partition(":")
            spec = reasons.get(reason) or reasons.get(key)
            if spec:
                tvars["detail"] = detail
                text = spec["text"].format_map(tvars)
                named = _named_params(spec["text"], spec, params if isinstance(params, dict) else {}, unit)
                if named:
                    text += f" ({named})"
                parts.append(text)
            else:
                parts.append(reason.replace("_", " "))
        if parts:
            return "Denied: " + "; and ".join(parts) + (f"; {said}" if said else "") + "."
        entry = next((b for b in bodies if b.rule == entry and b.succeeded is False and b.failed_at), None)
        if entry:
            why = entry.failed_at.text
            terms = ", ".join(
                f"{t.text} = {fmt_value(t.value) if t.defined else 'undefined'}" for t in entry.failed_at.terms
            )
            return f"Denied: the condition `{why}` (line {entry.failed_at.line}) does not hold" + (
                f" ({terms})." if terms else "."
            )
        return "Denied: the entrypoint is not true for this intent (no rule body applies)" + (
            f"; {said}." if said else "."
        )
    checks = [k.replace("_", " ") for k in reasons if ":" not in k][:8]
    shown = [f"{p} = {fmt_value(v, p, unit)}" for p, v in (params or {}).items() if not isinstance(v, (dict, list))][:4]
    text = "Allowed: no deny reason applies"
    if checks:
        text += " (checked: " + ", ".join(checks) + ")"
    if shown:
        text += "; this client's params: " + ", ".join(shown)
    return text + "."


# --------------------------------------------------------------------------- main


def tree_names(policy: CompiledPolicy, model: PolicyModel) -> list[str]:
    """The rules the entrypoint depends on (plus `deny`), computed once per compiled policy."""
    names = getattr(policy, "_lens_names", None)
    if names is None:
        names = model.tree_names(policy.query.rsplit(".", 1)[1])
        if "deny" in model.rules and "deny" not in names:
            names.append("deny")
        policy._lens_names = names
    return list(names)


def explain_evaluation(
    policy: CompiledPolicy,
    input: dict,
    params: dict,
    wasm: dict,
    *,
    counterfactuals: bool = True,
    budget_ms: float = 50.0,
    probe: bool = True,
    evaluation: Evaluation | None = None,
    input_json: str | None = None,
    data_json: str | None = None,
    symbols: dict[str, str] | None = None,
) -> Explanation:
    """Evaluate and explain one (input, params, wasm) against a compiled policy (`symbols`: token address → symbol).

    `probe=False` keeps only the verdict, rule values and sentence (the audit's cheap path). A caller that has
    already evaluated (replay) passes its `evaluation` and the JSON texts, so nothing is evaluated or encoded twice."""

    t0 = time.perf_counter()
    input_json = input_json if input_json is not None else json.dumps(input)
    data_json = data_json if data_json is not None else json.dumps(data_document(params, wasm))
    ev = evaluation if evaluation is not None else policy.evaluate_json(input_json, data_json)
    model = model_of(policy)
    entry = policy.query.rsplit(".", 1)[1]
    meta, schema = local_metadata(model.package)
    names = tree_names(policy, model)
    pe = probe_engine(policy, model, names) if probe else None
    engine = _prepared(policy, input_json, data_json, pe)
    t1 = time.perf_counter()
    row, raw_counts = (
        _values_and_counts(engine, model, names) if pe is not None and names and not ev.error else (None, None)
    )
    values = _rule_values(engine, model, names, row) if names else {}
    tree = _tree(model, entry, values, set()) if entry in model.rules else None
    bodies = (
        _probe_bodies(engine, model, names, pe is not None, plan_of(policy, model, names), raw_counts)
        if probe and not ev.error
        else []
    )
    t2 = time.perf_counter()
    reached, not_reached = _coverage(engine, policy._both) if probe else ((), ())
    if reached:
        # probes evaluate every rule of the tree; the verdict itself may never have needed some of them
        seen = set(reached)
        bodies = [
            b
            if b.failed_at is None or b.failed_at.line in seen
            else BodyOutcome(
                b.rule, b.head, b.line, b.succeeded, b.failed_at, "not needed by this evaluation (probed separately)"
            )
            for b in bodies
        ]
    bodies = mark_decisive(bodies, entry, ev)
    failed_lines = tuple(
        sorted({b.failed_at.line for b in bodies if b.failed_at and not b.note.startswith("not needed")})
    )
    sentence = build_sentence(
        ev, entry, {**values, "__input__": ("value", input)}, bodies, params, wasm, meta, schema, symbols
    )
    t3 = time.perf_counter()
    cfs, note = ((), "")
    if counterfactuals and not ev.error:
        hints = [
            (b.failed_at.text, tuple((t.text, t.value) for t in b.failed_at.terms if t.defined))
            for b in bodies
            if b.failed_at is not None
        ]
        strings = [v for state, v in values.values() if state == "value" and isinstance(v, str)]
        cfs, note = search(
            policy,
            input_json,
            params,
            wasm,
            ev,
            budget_ms=budget_ms,
            schema=schema,
            hints=hints,
            symbols=symbols,
            prefer=strings,
        )
    t4 = time.perf_counter()
    return Explanation(
        entrypoint=policy.entrypoint,
        allow=ev.allow,
        deny=ev.deny,
        error=ev.error,
        sentence=sentence,
        rule_tree=tree,
        bodies=tuple(bodies),
        lines_reached=reached,
        lines_not_reached=not_reached,
        lines_failed=failed_lines,
        counterfactuals=tuple(cfs),
        counterfactual_note=note,
        policy_name=meta.get("name", model.package.removeprefix("data.")),
        source=policy.source,
        timings_ms={
            "evaluate": round((t1 - t0) * 1000, 3),
            "probe": round((t2 - t1) * 1000, 3),
            "lines_sentence": round((t3 - t2) * 1000, 3),
            "counterfactuals": round((t4 - t3) * 1000, 3),
        },
    )
