"""Explanations people read: values as people write them, no schema text pasted in, whole reason texts; every
counterfactual's shown value, applied as it stands, flips the verdict; checks that passed vs rules never reached;
the annotated source line by line as the policy has it. Expected texts are written here by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import eth_abi
import pytest
from click.testing import CliRunner
from eth_utils import keccak

from app.cli.main import cli
from app.engine import Intent, compiled, intent_input
from app.engine.explain import explain_evaluation
from app.engine.fixtures import policy_files
from app.queries import verdict as vq
from app.text import annotated_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_cases import CASES, KYC_P, SCREEN_P, SENDER, SPEND_P, TO, TOKEN, kyc, market, sanctions, token_transfer

POLICIES = Path(__file__).resolve().parents[1] / "data" / "policies"
ETH = 10**18


def _policy(name: str):
    source, entry, _ = policy_files(name)
    return compiled(source, entry)


def _swap(amount: int) -> dict:
    sig = "swap(address,uint256)"
    data = keccak(text=sig)[:4] + eth_abi.encode(["address", "uint256"], [TO, amount])
    return intent_input(Intent(SENDER, TOKEN, 0, data, 31337, sig.encode()))


def _with(params: dict, cf) -> dict:
    """The params with the counterfactual's shown value set as it stands (no item arithmetic here)."""
    if cf.kind == "combined":
        return {**params, **cf.applied}
    return {**params, cf.param: cf.applied}


EXTRA = [
    # a function_not_allowed deny flips by adding the called function to the list param
    ("spending_limits", "swap", _swap(5 * ETH), {**SPEND_P, "allowed_functions": ["", "transfer", "approve"]},
     {"spend": {"spent_today_wei": "0"}}),
    # three reasons: per-reason changes and one combined change of lists and a number
    ("counterparty_screening", "three", intent_input(Intent(SENDER, "0x" + "66" * 20, ETH, b"", 31337, b"")),
     {**SCREEN_P, "allowlist_only": True, "allowlist": ["0x" + "77" * 20]},
     sanctions(address="0x" + "66" * 20, risk_score=85)),
]  # fmt: skip


@pytest.mark.parametrize("case", [c[:3] + c[3:5] for c in CASES] + EXTRA, ids=lambda c: f"{c[0]}-{c[1]}")
def test_every_shown_value_applied_as_it_stands_flips_the_verdict(case) -> None:
    name, _, inp, params, wasm = case
    policy = _policy(name)
    ex = explain_evaluation(policy, inp, params, wasm, budget_ms=5000)
    for cf in ex.counterfactuals:
        after = policy.evaluate(inp, _with(params, cf), wasm)
        assert after.error is None, cf.text
        if cf.flips_to is None:  # a per-reason change: that reason goes, the verdict may stay
            assert cf.removes and cf.removes in ex.deny and cf.removes not in after.deny, cf.text
        else:
            assert after.allow is cf.flips_to is (not ex.allow), cf.text


def test_adding_the_called_function_flips_a_function_not_allowed_denial() -> None:
    name, _, inp, params, wasm = EXTRA[0]
    ex = explain_evaluation(_policy(name), inp, params, wasm, budget_ms=5000)
    assert ex.deny == ("function_not_allowed",)
    cf = next(c for c in ex.counterfactuals if c.param == "allowed_functions")
    assert cf.kind == "list_add" and cf.value == "swap" and cf.flips_to is True
    assert cf.applied == ["", "transfer", "approve", "swap"]
    assert cf.text == 'allowed if "swap" were added to allowed_functions'
    assert "no single param change" not in ex.counterfactual_note


def test_a_combined_counterfactual_shows_the_whole_resulting_values() -> None:
    name, _, inp, params, wasm = EXTRA[1]
    ex = explain_evaluation(_policy(name), inp, params, wasm, budget_ms=5000)
    assert set(ex.deny) == {"counterparty_blocklisted", "counterparty_not_allowlisted", "risk_score_too_high"}
    combined = next(c for c in ex.counterfactuals if c.kind == "combined")
    # whole lists, not the one item: `blocklist` without the counterparty, and so on
    assert combined.applied["blocklist"] == []
    for key, value in combined.applied.items():
        assert type(value) is type(params[key])
    # the verdict page shows that whole value in its "would need" column
    table = vq.counterfactuals(ex)
    row = table[table["param"] == combined.param].iloc[0]
    assert json.loads(row["would need"]) == combined.applied
    assert row["verdict then"] == "allowed"
    partial = table[table["param"] != combined.param]
    assert all(v.startswith("removes ") for v in partial["verdict then"])


def _sentence(name: str, inp: dict, params: dict, wasm: dict, **kw) -> str:
    return explain_evaluation(_policy(name), inp, params, wasm, counterfactuals=False, **kw).sentence


def test_durations_read_as_durations() -> None:
    checked = 1795000000
    wasm = kyc(checked_at=checked, expires_at=checked + 7 * 3600 + 54 * 60)
    text = _sentence(
        "kyc_jurisdiction",
        token_transfer(TO, ETH) | {"from": SENDER},
        {**KYC_P, "min_remaining_validity_s": 86400},
        wasm,
    )
    assert "has 7 h 54 min left at the check; this client needs more than 1 d" in text
    assert "28440" not in text


def test_amounts_carry_the_token_symbol() -> None:
    inp = token_transfer(TO, 12_500 * ETH)
    wasm = {"spend": {"spent_today_wei": "0"}}
    named = _sentence("spending_limits", inp, SPEND_P, wasm, symbols={TOKEN: "dUSD"})
    assert "the amount of 12,500 dUSD (12500000000000000000000 wei) exceeds" in named
    assert "limit of 10,000 dUSD" in named and "tokens" not in named
    unnamed = _sentence("spending_limits", inp, SPEND_P, wasm)
    assert "12,500 tokens of 0x3c3c…3c3c" in unnamed


def test_the_oracles_own_error_is_quoted() -> None:
    text = _sentence(
        "circuit_breaker",
        token_transfer(TO, ETH),
        json.loads((POLICIES / "circuit_breaker" / "params.example.json").read_text()),
        {"market": {"error": "feed stale"}},
    )
    assert text.startswith("Denied: the market feed returned no usable data")
    assert text.endswith('; the market oracle reported "feed stale".')
    assert market()["market"].get("error") is None  # the fixture's healthy feed has no error to quote


def test_required_value_beside_observed_and_no_schema_text() -> None:
    risky = _sentence(
        "counterparty_screening",
        intent_input(Intent(SENDER, TO, ETH, b"", 31337, b"")),
        SCREEN_P,
        sanctions(risk_score=85),
    )
    assert "risk score of 85 exceeds the maximum of 70" in risky
    kyc_text = _sentence("kyc_jurisdiction", token_transfer(TO, ETH), KYC_P, kyc(status="pending"))
    assert kyc_text == "Denied: the sender's KYC status is pending, not approved (require_kyc = true)."
    for case in CASES:
        name, _, inp, params, wasm, reasons, _ = case
        if not reasons:
            continue
        text = _sentence(name, inp, params, wasm)
        schema = json.loads((POLICIES / name / "params_schema.json").read_text())
        for prop in schema["properties"].values():
            assert prop["description"] not in text, (case[1], prop["description"])


def test_no_reason_text_stops_mid_sentence() -> None:
    dangling = {"of", "the", "a", "an", "to", "and", "or", "is", "are", "than", "in", "by", "for", "with"}
    for meta_file in POLICIES.glob("*/metadata.json"):
        for key, spec in json.loads(meta_file.read_text())["reasons"].items():
            last = spec["text"].rstrip(" .").split()[-1].strip("()")
            assert last.lower() not in dangling, f"{meta_file.parent.name}.{key}: {spec['text']!r}"
    spend = _sentence(
        "spending_limits",
        intent_input(Intent(SENDER, TO, ETH, b"", 31337, b"")) | {"value": "1.5"},
        SPEND_P,
        {"spend": {"spent_today_wei": "0"}},
    )
    assert "the amount is not a whole number of wei (it must be a decimal string of digits" in spend


NOT_NEEDED = """package np
import rego.v1

default allow := false

allow if {
	input.kind == "a"
	small
}

small if {
	input.amount < 10
}

deny contains "big" if {
	input.kind == "a"
	not small
}
"""


def test_checks_that_passed_are_only_rules_evaluated_and_false(tmp_path: Path) -> None:
    policy = compiled(NOT_NEEDED, "np.allow")
    ex = explain_evaluation(policy, {"kind": "b", "amount": 20}, {}, {}, budget_ms=1000)
    groups = vq.body_groups(ex)
    assert [b.rule for b in groups["passed"]] == ["deny"]  # evaluated: it failed at `input.kind == "a"`
    assert [b.rule for b in groups["not_reached"]] == ["small"]  # `small` was never needed
    passed = vq.failing_conditions(ex, decisive=False)
    assert list(passed["rule"]) == ['deny contains "big"']
    assert list(vq.unreached_rules(ex)["rule"]) == ["small"]
    rego = tmp_path / "np.rego"
    rego.write_text(NOT_NEEDED)
    intent = tmp_path / "in.json"
    intent.write_text(json.dumps({"kind": "b", "amount": 20}))
    out = (
        CliRunner()
        .invoke(cli, ["policy", "eval", str(rego), "--input", str(intent), "--explain", "--no-validate"])
        .output
    )
    checks = out.split("Checks that passed")[1].split("Never reached")[0]
    assert 'deny contains "big"' in checks and "small" not in checks
    assert "small" in out.split("Never reached by this evaluation")[1].split("Rule tree")[0]


ODD_SOURCE = (
    "package odd\nimport rego.v1\n# café ☕ comment\r\n"
    'note := "a\u2028b"\n'
    'default allow := false\nallow if {\n\tinput.x == "é"\n\tcount(note) > 100\n}\n'
    'deny contains "too_small" if {\n  input.amount < 5 # “quoted”\n}\n'
)


def test_the_annotated_source_shows_each_lines_real_text() -> None:
    ex = explain_evaluation(compiled(ODD_SOURCE, "odd.allow"), {"x": "é", "amount": 10}, {}, {}, budget_ms=500)
    shown = annotated_source(ODD_SOURCE, ex.lines_reached, ex.lines_failed).split("\n")
    real = ["package odd", "import rego.v1", "# café ☕ comment", 'note := "a\u2028b"', "default allow := false",
            "allow if {", '\tinput.x == "é"', "\tcount(note) > 100", "}", 'deny contains "too_small" if {',
            "  input.amount < 5 # “quoted”", "}"]  # fmt: skip
    assert len(shown) == len(real)
    for n, (line, text) in enumerate(zip(shown, real), start=1):
        assert line.split(" │ ", 1) == [line.split(" │ ", 1)[0], text] and line.split(" │ ")[0].strip().endswith(str(n))
    assert sorted(ex.lines_failed) == [8, 11]
    for b in ex.bodies:
        if b.failed_at is not None:  # each failed condition sits on the line the gutter marks
            assert b.failed_at.text in shown[b.failed_at.line - 1] and shown[b.failed_at.line - 1].startswith("✗")


def test_what_became_of_a_direct_path_or_expired_task() -> None:
    from app.lookup import TxRole

    direct_tx = "0x" + "d1" * 32
    data = {
        "task": {"status": "direct_only", "allow": True, "policy_client": "0x" + "c1" * 20, "responded_block": 9},
        "client_name": "treasury-vault",
        "transactions": [TxRole("0x" + "11" * 32, direct_tx, "responded directly", "DirectTaskResponded", 9, None)],
    }
    became = vq.outcome(data)
    assert became["state"] == "direct" and became["tx"] == direct_tx
    assert became["text"].startswith("direct path: treasury-vault verified the operators' signed allow inline")
    expired = {
        "task": {"status": "expired", "allow": True, "responded_block": 5, "response_expire_block": 25},
        "transactions": [],
    }
    assert vq.outcome(expired)["text"] == "expired unspent: the allow was never spent before its expiry block 25"


def test_a_swap_counts_the_token_it_sells_not_the_router() -> None:
    """swap(tokenIn, amountIn, tokenOut, minOut) sent to a router: the amount is tokenIn's (written out by hand)."""
    router, token_in, token_out = "0x" + "5e" * 20, "0x" + "3c" * 20, "0x" + "4d" * 20
    sig = "swap(address,uint256,address,uint256)"
    data = keccak(text=sig)[:4] + eth_abi.encode(
        ["address", "uint256", "address", "uint256"], [token_in, 12_500 * ETH, token_out, 1]
    )
    inp = intent_input(Intent(SENDER, router, 0, data, 31337, sig.encode()))
    wasm = {"spend": {"spent_today_wei": "0"}}
    unnamed = _sentence("spending_limits", inp, SPEND_P, wasm)
    assert "12,500 tokens of 0x3c3c…3c3c (12500000000000000000000 wei)" in unnamed and "0x5e5e" not in unnamed
    named = _sentence("spending_limits", inp, SPEND_P, wasm, symbols={token_in: "dUSD"})
    assert "the amount of 12,500 dUSD (12500000000000000000000 wei) exceeds" in named


def test_a_token_with_six_decimals_reads_in_its_own_units() -> None:
    from app.engine.values import Unit, amount_units

    units = amount_units({"asset": TOKEN.upper().replace("0X", "0x"), "asset_symbol": "USDC", "asset_decimals": 6}, "")
    assert units == {TOKEN: "USDC"} and units[TOKEN].decimals == 6
    inp = token_transfer(TO, 12_500_000)  # 12.5 USDC
    params = {**SPEND_P, "max_tx_wei": "10000000", "daily_cap_wei": "100000000"}
    text = _sentence("spending_limits", inp, params, {"spend": {"spent_today_wei": "0"}}, symbols=units)
    assert (
        "the amount of 12.5 USDC (12500000 base units) exceeds this client's per-transaction limit of 10 USDC" in text
    )
    assert isinstance(units[TOKEN], Unit)


def test_an_else_branch_shows_its_own_line() -> None:
    name, _, inp, params, wasm, _, _ = CASES[1]  # a plain ETH transfer: `amount` takes its last else branch
    ex = explain_evaluation(_policy(name), inp, params, wasm, counterfactuals=False)
    source = (POLICIES / name / "policy.rego").read_text().split("\n")
    branches = [b for b in ex.bodies if b.rule == "amount"]
    assert len(branches) == 3
    for b in branches[1:]:  # each else branch is shown with the real text of its own line
        assert b.head == source[b.line - 1].strip() and b.head.startswith("else :=")
    assert branches[2].head == "else := input.value" and branches[2].succeeded is True
