"""The four devnet policies: files and schemas, their Rego suites under `lens policy test`, exact wei, booleans."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli.main import cli
from app.engine import Intent, compiled, intent_input
from app.engine.evaluate import new_engine
from app.engine.regotest import collect_files, list_tests, run_suite

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "data" / "policies"
NAMES = ["spending_limits", "counterparty_screening", "kyc_jurisdiction", "circuit_breaker"]
SENDER = "0x" + "a1" * 20
TO = "0x" + "b2" * 20


def _policy(name: str):
    meta = json.loads((POLICIES / name / "metadata.json").read_text())
    return compiled((POLICIES / name / "policy.rego").read_text(), meta["entrypoint"]), meta


def _params(name: str) -> dict:
    return json.loads((POLICIES / name / "params.example.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_policy_folder_is_complete(name: str) -> None:
    folder = POLICIES / name
    for f in ("policy.rego", "policy_test.rego", "params_schema.json", "metadata.json", "params.example.json"):
        assert (folder / f).is_file(), f
    schema = json.loads((folder / "params_schema.json").read_text())
    for param, spec in schema["properties"].items():
        assert spec.get("description"), f"{name}.{param} has no description"
    jsonschema.validate(_params(name), schema)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["entrypoint"] == f"{name}.allow"
    assert meta["policy_data"], "metadata documents the oracle data shape"
    source = (folder / "policy.rego").read_text()
    assert f"package {name}" in source and "import rego.v1" in source and "deny contains" in source


@pytest.mark.parametrize("name", NAMES)
def test_each_suite_has_at_least_eight_tests_and_passes(name: str) -> None:
    suite = run_suite([str(POLICIES / name)])
    assert len(suite.results) >= 8
    assert suite.failed == 0, [(r.case.name, r.status, r.message) for r in suite.results if r.status != "pass"]


def test_lens_policy_test_cli_passes_all_suites() -> None:
    result = CliRunner().invoke(cli, ["policy", "test", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert "43 passed, 0 failed" in result.output or ", 0 failed" in result.output.splitlines()[-1]
    assert result.output.count("PASS") >= 32


def test_policy_test_reports_failures_errors_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\nimport rego.v1\nx := 1\n")
    (tmp_path / "p_test.rego").write_text(
        "package p_test\nimport rego.v1\nimport data.p\n"
        "test_ok if p.x == 1\n"
        "test_wrong if p.x == 2\n"
        "test_false := false\n"
        'test_boom if to_number("abc") > 1\n'
        "todo_test_later if false\n"
    )
    result = CliRunner().invoke(cli, ["policy", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 passed, 3 failed (1 errors)" in result.output
    assert "test_wrong: FAIL" in result.output and "test_boom: ERROR" in result.output
    assert "could not parse string as number" in result.output
    js = CliRunner().invoke(cli, ["policy", "test", str(tmp_path), "--json"])
    doc = json.loads(js.output)
    assert doc["passed"] == 1 and doc["failed"] == 3
    assert {t["name"]: t["status"] for t in doc["tests"]}["todo_test_later"] == "skip"


def test_policy_test_runs_opa_style_v0_suites(tmp_path: Path) -> None:
    """A suite written for `opa test` in Rego v0 with future.keywords, every, comprehensions and `with`."""
    (tmp_path / "legacy.rego").write_text(
        "package legacy\nimport future.keywords.in\nimport future.keywords.every\n"
        "default allow = false\n"
        'deny[msg] { some r in input.recipients; r in data.params.blocked; msg := sprintf("blocked:%s", [r]) }\n'
        'allow { count(deny) == 0; every r in input.recipients { startswith(r, "0x") } }\n'
        "names := {n | some n in input.recipients}\n"
    )
    (tmp_path / "legacy_test.rego").write_text(
        "package legacy_test\nimport data.legacy\nimport future.keywords.in\n"
        'test_allow { legacy.allow with input as {"recipients": ["0x1"]} with data.params as {"blocked": []} }\n'
        'test_deny { "blocked:0x2" in legacy.deny with input as {"recipients": ["0x2"]} with data.params as {"blocked": ["0x2"]} }\n'
        'test_names { count(legacy.names) == 2 with input as {"recipients": ["0x1", "0x2", "0x1"]} }\n'
    )
    suite = run_suite([str(tmp_path)])
    assert [r.status for r in suite.results] == ["pass", "pass", "pass"]


def test_policy_test_parse_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package bad\nimport rego.v1\nallow if {\n  x := \n}\n")
    result = CliRunner().invoke(cli, ["policy", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.rego" in result.output and ":4:" in result.output


def test_runaway_test_is_stopped_by_the_time_limit(tmp_path: Path) -> None:
    (tmp_path / "slow_test.rego").write_text(
        "package slow_test\nimport rego.v1\n"
        "test_fast if true\n"
        "test_forever if count([x | some x in numbers.range(1, 2000000000)]) > 0\n"
    )
    suite = run_suite([str(tmp_path)], timeout_ms=500)
    status = {r.case.name: r for r in suite.results}
    assert status["test_fast"].status == "pass"
    assert status["test_forever"].status == "error" and "stopped" in status["test_forever"].message


# ------------------------------------------------------------------ spending: exact wei above 2^53


def _eth(value: int) -> dict:
    return intent_input(Intent(SENDER, TO, value, b"", 31337, b""))


@pytest.mark.parametrize("limit", [2**53 + 1, 10**22 + 7, 2**200 + 3])
def test_spending_limit_exact_at_and_one_wei_above(limit: int) -> None:
    policy, _ = _policy("spending_limits")
    params = {"max_tx_wei": str(limit), "daily_cap_wei": str(limit * 3), "allowed_functions": []}
    wasm = {"spend": {"spent_today_wei": "0"}}
    at = policy.evaluate(_eth(limit), params, wasm)
    above = policy.evaluate(_eth(limit + 1), params, wasm)
    assert at.allow and at.deny == () and at.error is None
    assert not above.allow and above.deny == ("exceeds_per_tx_limit",)


def test_daily_cap_exact_with_carries_above_2_pow_53() -> None:
    policy, _ = _policy("spending_limits")
    cap = 10**45
    params = {"max_tx_wei": str(cap), "daily_cap_wei": str(cap), "allowed_functions": []}
    spent = 10**45 - 10**30 + 1  # spent + amount crosses many all-nines chunks
    amount = 10**30 - 1
    assert policy.evaluate(_eth(amount), params, {"spend": {"spent_today_wei": str(spent)}}).allow
    ev = policy.evaluate(_eth(amount + 1), params, {"spend": {"spent_today_wei": str(spent)}})
    assert not ev.allow and ev.deny == ("exceeds_daily_cap",)


_UINT = st.one_of(
    st.integers(0, 2**64),
    st.integers(0, 10**78 - 1),
    st.integers(2**53 - 5, 2**53 + 5),
    st.integers(0, 40).map(lambda k: 10**k - 1),
)


@settings(max_examples=150, deadline=None)
@given(a=_UINT, b=_UINT, c=_UINT, shift=st.sampled_from([0, -1, 1, None]))
def test_exact_wei_helpers_match_python_ints(a: int, b: int, c: int, shift: int | None) -> None:
    """The policy's decimal-string helpers agree with Python integers (uint_lte and uint_sum_lte)."""
    engine = _helper_engine()
    if shift is not None and 0 <= a + b + shift < 10**78:
        c = a + b + shift
    got_sum = bool(engine.eval_query(f'data.spending_limits.uint_sum_lte("{a}", "{b}", "{c}")').get("result"))
    got_lte = bool(engine.eval_query(f'data.spending_limits.uint_lte("{a}", "{c}")').get("result"))
    assert got_sum == (a + b <= c)
    assert got_lte == (a <= c)


_ENGINE = None


def _helper_engine():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = new_engine((POLICIES / "spending_limits" / "policy.rego").read_text())
    return _ENGINE


# ------------------------------------------------------------------ booleans compared with == true


@pytest.mark.parametrize(
    "sanctioned,toggle,expect_reason",
    [
        (True, True, True),
        (False, True, False),
        (True, False, False),
    ],
)
def test_boolean_in_params_and_data_compared_with_true(sanctioned: bool, toggle: bool, expect_reason: bool) -> None:
    policy, _ = _policy("counterparty_screening")
    params = {**_params("counterparty_screening"), "deny_on_sanctioned": toggle}
    wasm = {"sanctions": {"address": TO, "sanctioned": sanctioned, "flags": [], "risk_score": 1}}
    ev = policy.evaluate(_eth(5), params, wasm)
    assert ("counterparty_sanctioned" in ev.deny) is expect_reason
    assert ev.allow is (not expect_reason)


def test_number_one_is_not_true_and_fails_closed() -> None:
    """A 1 where a boolean belongs is malformed oracle output: fail closed, never read as true/false."""
    policy, _ = _policy("counterparty_screening")
    wasm = {"sanctions": {"address": TO, "sanctioned": 0, "flags": [], "risk_score": 1}}
    ev = policy.evaluate(_eth(5), _params("counterparty_screening"), wasm)
    assert not ev.allow and "sanctions_data_missing" in ev.deny


def test_every_suite_file_is_found() -> None:
    cases = list_tests(collect_files([str(POLICIES)]))
    assert {c.package for c in cases} == {f"data.{n}_test" for n in NAMES}
