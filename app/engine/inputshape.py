"""Check what a person hands `lens policy eval`: the intent against Newton's documented input, params against a schema."""

from __future__ import annotations

import re
from typing import Any

from app.errors import LensError

# POLICIES.md §4.1: the intent as Newton presents it to a policy (snake_case), and the fields derived by decoding
REQUIRED = ("from", "to", "value", "data", "chain_id", "function_signature")
DERIVED = ("function", "decoded_function_signature", "decoded_function_arguments")
OPTIONAL = ("intent_signature",)
FIELDS = REQUIRED + OPTIONAL + DERIVED
# the Intent struct's on-chain (Solidity, camelCase) names, which a policy never sees
ONCHAIN = {
    "chainId": "chain_id",
    "functionSignature": "function_signature",
    "intentSignature": "intent_signature",
    "signature": "intent_signature",
    "decodedFunctionArguments": "decoded_function_arguments",
    "decodedFunctionSignature": "decoded_function_signature",
    "sender": "from",
    "recipient": "to",
    "calldata": "data",
}
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")
_DECIMAL = re.compile(r"^[0-9]{1,78}$")
SHAPE_HINT = (
    'the intent is {"from": "0x…", "to": "0x…", "value": "<wei, decimal string>", "data": "0x<calldata>", '
    '"chain_id": "<decimal string>", "function_signature": "0x<hex of e.g. transfer(address,uint256)>"} '
    "(POLICIES.md §4.1; data/policies/*/intent.example.json are examples)"
)


def input_problems(doc: Any) -> list[str]:
    """What is wrong with an intent document, one line each (empty when it has Newton's shape)."""
    if not isinstance(doc, dict):
        return ["the intent must be a JSON object"]
    problems = []
    for key in doc:
        if key in ONCHAIN:
            problems.append(
                f"{key!r} is the on-chain field name; a policy reads the intent in snake_case: use {ONCHAIN[key]!r}"
            )
        elif key not in FIELDS:
            problems.append(f"{key!r} is not a field of the intent Newton presents (its fields: {', '.join(FIELDS)})")
    missing = [k for k in REQUIRED if k not in doc and not any(ONCHAIN.get(o) == k for o in doc)]
    if missing:
        problems.append("missing " + ", ".join(repr(k) for k in missing))
    for key in ("from", "to"):
        if key in doc and not (isinstance(doc[key], str) and _ADDRESS.match(doc[key])):
            problems.append(f"{key!r} must be an address, 0x followed by 40 hex digits (got {doc[key]!r})")
    for key in ("data", "function_signature", "intent_signature"):
        if key in doc and not (isinstance(doc[key], str) and _HEX.match(doc[key])):
            problems.append(f"{key!r} must be 0x-prefixed hex bytes (got {doc[key]!r})")
    for key in ("value", "chain_id"):
        v = doc.get(key)
        if key in doc and not (
            (isinstance(v, str) and _DECIMAL.match(v)) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        ):
            problems.append(
                f'{key!r} must be a whole number as a decimal string, e.g. "1000000000000000000" (got {v!r})'
            )
    return problems


def check_input(doc: Any, where: str = "the input file") -> None:
    """LensError naming every problem of an intent document (nothing when it has Newton's shape)."""
    problems = input_problems(doc)
    if problems:
        raise LensError(f"{where} is not an intent as Newton presents it: " + "; ".join(problems), SHAPE_HINT)


def params_problems(params: Any, schema: dict) -> list[str]:
    """What is wrong with params against a policy's params_schema.json, one line each (an unknown param first)."""
    import jsonschema

    if not isinstance(params, dict):
        return ["params must be a JSON object"]
    props = schema.get("properties") or {}
    problems = []
    if schema.get("additionalProperties") is False:
        for key in params:
            if key not in props:
                problems.append(f"unknown param {key!r} (this policy takes: {', '.join(props) or 'none'})")
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(params), key=lambda e: list(e.path)):
        if err.validator == "additionalProperties":
            continue  # named above, one by one
        where = ".".join(str(p) for p in err.path) or "params"
        desc = (props.get(str(err.path[0])) or {}).get("description", "") if err.path else ""
        problems.append(f"{where}: {err.message}" + (f" — expected {desc}" if desc else ""))
    return problems


def check_params(params: Any, schema: dict, where: str = "the params") -> None:
    """LensError naming every problem of params against the policy's schema (nothing when they conform)."""
    problems = params_problems(params, schema)
    if problems:
        raise LensError(
            f"{where} do not match the policy's params_schema.json: " + "; ".join(problems),
            "fix the params (params.example.json shows a valid set), or pass --no-validate to evaluate anyway",
        )
