"""`opa test` semantics on regorus: find test_* rules in .rego files, run each, report pass / fail / error."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.engine.evaluate import PolicyParseError, engine_for, rego_problem
from app.engine.sandbox import EvalTimeout, guarded
from app.errors import LensError


@dataclass(frozen=True)
class TestCase:
    """One test rule: its package (data path), name, file and line."""

    package: str
    name: str
    file: str
    line: int


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: 'pass' | 'fail' | 'error' | 'skip', with a message for failures and errors."""

    case: TestCase
    status: str
    message: str
    ms: float


@dataclass(frozen=True)
class SuiteResult:
    """Every test result of a run, plus the counts."""

    results: tuple[TestResult, ...]

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status in ("fail", "error") for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.status == "error" for r in self.results)


def collect_files(paths: list[str]) -> tuple[tuple[str, str], ...]:
    """(path, source) of every .rego file named or found under the given folders, sorted, deduplicated."""
    found: dict[str, str] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(p.rglob("*.rego"))
        elif p.is_file():
            files = [p]
        else:
            raise LensError(f"no such file or folder: {raw}", "pass .rego files or folders that contain them")
        for f in files:
            found.setdefault(str(f), f.read_text(encoding="utf-8"))
    if not found:
        raise LensError(
            f"no .rego files in {', '.join(paths)}", "pass the policy folder, e.g. data/policies/spending_limits"
        )
    return tuple(sorted(found.items()))


def _ref_name(refr: dict) -> list[str]:
    """A rule head reference as path parts (`a.b.test_x` → ['a','b','test_x'])."""
    if "Var" in refr:
        return [refr["Var"]["value"]]
    if "RefDot" in refr:
        return _ref_name(refr["RefDot"]["refr"]) + [refr["RefDot"]["field"][1]]
    if "RefBrack" in refr:
        return _ref_name(refr["RefBrack"]["refr"]) + ["[]"]
    return ["?"]


def _package(module_ast: dict) -> str:
    """The module's package as a data path (`data.pkg`)."""
    return ".".join(["data"] + _ref_name(module_ast["package"]["refr"]))


def list_tests(modules: tuple[tuple[str, str], ...]) -> list[TestCase]:
    """Every test_* (and todo_test_*) rule without arguments, in file order, once per name."""
    engine = engine_for(modules)
    cases: dict[tuple[str, str], TestCase] = {}
    for module in json.loads(engine.get_ast_as_json()):
        ast = module["ast"]
        pkg = _package(ast)
        for rule in ast.get("rules", []):
            spec = rule.get("Spec")
            if not spec:
                continue
            kind, head = next(iter(spec["head"].items()))
            if kind == "Func":
                continue
            name = ".".join(_ref_name(head["refr"]))
            if name.startswith(("test_", "todo_test_")):
                cases.setdefault((pkg, name), TestCase(pkg, name, module["source"]["file"], spec["span"]["line"]))
    return list(cases.values())


@lru_cache(maxsize=8)
def _engine(modules: tuple[tuple[str, str], ...]):
    """A cached engine per set of modules (in the worker process this survives between tests)."""
    return engine_for(modules)


def run_one(modules: tuple[tuple[str, str], ...], case: TestCase) -> TestResult:
    """Evaluate one test rule: defined and not false = pass, undefined or false = fail, exception = error."""
    if case.name.startswith("todo_"):
        return TestResult(case, "skip", "todo", 0.0)
    engine = _engine(modules)
    start = time.perf_counter()
    try:
        value = engine.eval_rule(f"{case.package}.{case.name}")
    except Exception as err:
        return TestResult(case, "error", str(rego_problem(err)), (time.perf_counter() - start) * 1000)
    ms = (time.perf_counter() - start) * 1000
    if value is None:
        return TestResult(case, "fail", "undefined", ms)
    if value is False:
        return TestResult(case, "fail", "false", ms)
    return TestResult(case, "pass", "", ms)


def run_suite(paths: list[str], timeout_ms: int | None = None) -> SuiteResult:
    """Run every test found under `paths`; each test is stopped after `timeout_ms` (reported as an error)."""
    modules = collect_files(paths)
    try:
        cases = list_tests(modules)
    except PolicyParseError:
        raise
    results = []
    for case in cases:
        try:
            results.append(guarded(run_one, modules, case, timeout_ms=timeout_ms))
        except EvalTimeout as err:
            results.append(TestResult(case, "error", str(err), float(timeout_ms or 0)))
    return SuiteResult(tuple(results))
