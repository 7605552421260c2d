"""The engine core: Newton input, evaluation, result encoding, policy data, bad input (parse / eval errors, runaway)."""

from __future__ import annotations

import json

import eth_abi
import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine import (
    CompiledPolicy,
    Intent,
    PolicyParseError,
    compiled,
    encode_result,
    intent_input,
    is_canonical_allow,
    wasm_from_policy_data,
)
from app.engine.evaluate import Evaluation
from app.engine.sandbox import EvalTimeout, guarded
from app.errors import LensError

SENDER = "0x" + "A1" * 20
TOKEN = "0x" + "3C" * 20


def test_intent_input_native_transfer_keeps_exact_decimal_strings() -> None:
    value = 2**200 + 12345
    doc = intent_input(Intent(SENDER, "0x" + "B2" * 20, value, b"", 8453, b""))
    assert doc["value"] == str(value) and doc["chain_id"] == "8453"
    # POLICIES.md: `from` / `to` as operators serialise them, checksummed (golden cases: test_engine_input_golden.py)
    assert doc["from"].lower() == SENDER.lower() and doc["to"].lower() == ("0x" + "b2" * 20)
    assert doc["from"] != SENDER.lower() and doc["intent_signature"] == "0x"
    assert doc["data"] == "0x" and doc["function"] is None and doc["decoded_function_arguments"] == []


def test_intent_input_decodes_calldata_with_its_signature() -> None:
    sig = "swap((address,uint256),bool,bytes32,string)"
    to = "0x" + "Cd" * 20
    args = [(to, 2**80 + 1), True, b"\x01" * 32, "hi"]
    data = keccak(text=sig)[:4] + eth_abi.encode(["(address,uint256)", "bool", "bytes32", "string"], args)
    doc = intent_input(Intent(SENDER, TOKEN, 0, data, 31337, sig.encode()))
    assert doc["function_signature"] == "0x" + sig.encode().hex()
    assert doc["decoded_function_signature"] == sig
    assert doc["decoded_function_arguments"] == [[to.lower(), str(2**80 + 1)], True, "0x" + "01" * 32, "hi"]
    assert doc["function"]["name"] == "swap"
    assert doc["function"]["inputs"][0]["type"] == "tuple"
    assert [c["type"] for c in doc["function"]["inputs"][0]["components"]] == ["address", "uint256"]


def test_intent_input_rejects_calldata_that_does_not_match_the_signature() -> None:
    with pytest.raises(LensError, match="selector"):
        intent_input(Intent(SENDER, TOKEN, 0, b"\x00\x00\x00\x00", 1, b"transfer(address,uint256)"))


def test_encode_result_and_canonical_allow() -> None:
    assert encode_result(True) == (1).to_bytes(32, "big") and is_canonical_allow(encode_result(True))
    assert not is_canonical_allow(encode_result(False))
    assert is_canonical_allow(eth_abi.encode(["string"], ["true"]))
    assert not is_canonical_allow(eth_abi.encode(["string"], ["True"]))
    assert not is_canonical_allow(eth_abi.encode(["string"], ["truex"]))
    assert not is_canonical_allow(b"") and not is_canonical_allow(b"\x01")
    assert not is_canonical_allow((2).to_bytes(32, "big"))


@given(st.binary(max_size=160))
def test_canonical_allow_only_for_the_two_encodings(blob: bytes) -> None:
    expected = (len(blob) == 32 and int.from_bytes(blob, "big") == 1) or (
        len(blob) >= 96 and int.from_bytes(blob[32:64], "big") == 4 and blob[64:96] == b"true" + bytes(28)
    )
    assert is_canonical_allow(blob) == expected


@given(st.booleans())
def test_encode_result_round_trip(allow: bool) -> None:
    assert is_canonical_allow(encode_result(allow)) is allow
    assert eth_abi.decode(["bool"], encode_result(allow)) == (allow,)


def test_wasm_from_policy_data_shallow_merges_in_order() -> None:
    merged = wasm_from_policy_data([b'{"kyc": {"a": 1}}', b"", b'{"spend": {"x": "1"}, "kyc": {"b": true}}'])
    assert merged == {"kyc": {"b": True}, "spend": {"x": "1"}}
    with pytest.raises(LensError, match="not JSON"):
        wasm_from_policy_data([b"{nope"])
    with pytest.raises(LensError, match="not an object"):
        wasm_from_policy_data([b"[1]"])


POLICY = """package demo
import rego.v1
default allow := false
deny contains "too_much" if to_number(input.value) > data.params.max
deny contains "flagged" if data.wasm.risk.flagged == true
legacy_flag if data.data.risk.flagged == true
allow if { count(deny) == 0; data.params.enabled == true }
"""


def test_evaluate_reads_params_wasm_and_the_legacy_mirror() -> None:
    p = compiled(POLICY, "demo.allow")
    inp = {"value": "5"}
    assert p.evaluate(inp, {"max": 10, "enabled": True}, {"risk": {"flagged": False}}) == Evaluation(True, (), None)
    ev = p.evaluate(inp, {"max": 1, "enabled": True}, {"risk": {"flagged": True}})
    assert ev == Evaluation(False, ("flagged", "too_much"), None)
    # booleans stay booleans through the JSON path: `enabled: 1` is not true
    assert not p.evaluate(inp, {"max": 10, "enabled": 1}, {"risk": {"flagged": False}}).allow
    legacy = compiled("package lg\nimport rego.v1\nallow if data.data.risk.flagged == false\n", "lg.allow")
    assert legacy.evaluate(inp, {}, {"risk": {"flagged": False}}).allow
    assert not legacy.evaluate(inp, {}, {"risk": {"flagged": True}}).allow


def test_compiled_is_cached_by_source_and_entrypoint() -> None:
    assert compiled(POLICY, "demo.allow") is compiled(POLICY, "demo.allow")
    assert compiled(POLICY, "demo.allow") is not compiled(POLICY + "\n", "demo.allow")


def test_parse_error_has_file_line_and_message() -> None:
    with pytest.raises(PolicyParseError) as info:
        CompiledPolicy("package x\nimport rego.v1\nallow if {\n  y := \n}\n", "x.allow")
    assert info.value.problem.line == 4
    assert info.value.problem.file == "policy.rego"
    assert "policy.rego:4" in str(info.value)


def test_v0_policies_parse() -> None:
    p = compiled(
        'package old\nimport future.keywords.in\ndefault allow = false\nallow { "a" in input.xs }\n', "old.allow"
    )
    assert p.evaluate({"xs": ["a"]}, {}, {}).allow


def test_unknown_entrypoint_is_a_clear_error() -> None:
    with pytest.raises(LensError, match="no rule permit"):
        CompiledPolicy(POLICY, "demo.permit")
    with pytest.raises(LensError, match="package nope"):
        CompiledPolicy(POLICY, "nope.allow")


@pytest.mark.parametrize(
    "body,needle",
    [
        ("x := 1\nx := 2 if true\nallow if x == 1", "conflict"),
        ('allow if to_number("abc") > 1', "could not parse string as number"),
        ("allow if newton.identity.kyc.check_approved()", "could not find function"),
    ],
)
def test_evaluation_errors_are_errors_not_denials(body: str, needle: str) -> None:
    ev = compiled(f"package e\nimport rego.v1\n{body}\n", "e.allow").evaluate({}, {}, {})
    assert ev.error is not None and needle in ev.error
    assert ev.allow is False and ev.deny == ()


RUNAWAY = "package slow\nimport rego.v1\nallow if count([x | some x in numbers.range(1, 2000000000)]) > 0\n"


def _evaluate_runaway() -> Evaluation:
    return compiled(RUNAWAY, "slow.allow").evaluate({}, {}, {})


def test_runaway_policy_is_stopped_by_the_time_limit() -> None:
    with pytest.raises(EvalTimeout, match="stopped after 400 ms"):
        guarded(_evaluate_runaway, timeout_ms=400)
    # the worker is replaced: the next guarded call works
    assert guarded(_json_roundtrip, {"a": [1, True]}, timeout_ms=5000) == {"a": [1, True]}


def _json_roundtrip(doc: dict) -> dict:
    return json.loads(json.dumps(doc))


def test_guarded_reports_lens_errors_from_the_worker() -> None:
    with pytest.raises(LensError, match="does not parse"):
        guarded(CompiledPolicy, "package x\nallow if {", "x.allow", timeout_ms=5000)


@settings(max_examples=40, deadline=None)
@given(value=st.integers(0, 2**256 - 1), chain=st.integers(1, 2**64), amount=st.integers(0, 2**256 - 1))
def test_intent_input_round_trips_exact_integers(value: int, chain: int, amount: int) -> None:
    to = "0x" + "9f" * 20
    sig = "transfer(address,uint256)"
    data = keccak(text=sig)[:4] + eth_abi.encode(["address", "uint256"], [to, amount])
    doc = intent_input(Intent(SENDER, TOKEN, value, data, chain, sig.encode()))
    assert int(doc["value"]) == value and int(doc["chain_id"]) == chain
    assert doc["decoded_function_arguments"] == [to, str(amount)]
    # and through regorus, as a string, unchanged
    p = compiled(
        "package rt\nimport rego.v1\nallow if input.decoded_function_arguments[1] == data.params.want\n", "rt.allow"
    )
    assert p.evaluate(doc, {"want": str(amount)}, {}).allow
