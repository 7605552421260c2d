"""Tasks evaluated for real from the local policies (for `lens bench replay --synthetic` and tests), and a DB writer."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import eth_abi
from eth_utils import keccak

from app.engine.evaluate import compiled, encode_result
from app.engine.explain import POLICIES_DIR
from app.engine.intent import Intent, intent_input
from app.engine.replay import TaskRecord

POLICY_NAMES = ("spending_limits", "counterparty_screening", "kyc_jurisdiction", "circuit_breaker")
TOKEN = "0x" + "3c" * 20
ETH = 10**18


def policy_files(name: str) -> tuple[str, str, dict]:
    """(source, entrypoint, example params) of a local policy."""
    folder = POLICIES_DIR / name
    meta = json.loads((folder / "metadata.json").read_text())
    return (
        (folder / "policy.rego").read_text(),
        meta["entrypoint"],
        json.loads((folder / "params.example.json").read_text()),
    )


def _address(rng: random.Random) -> str:
    return "0x" + bytes(rng.getrandbits(8) for _ in range(20)).hex()


def make_intent(rng: random.Random, amount: int, to: str, token: bool) -> Intent:
    """A native transfer of `amount` wei to `to`, or a dUSD `transfer(to, amount)`."""
    sender = "0x" + "a1" * 20
    if not token:
        return Intent(sender, to, amount, b"", 31337, b"")
    sig = "transfer(address,uint256)"
    data = keccak(text=sig)[:4] + eth_abi.encode(["address", "uint256"], [to, amount])
    return Intent(sender, TOKEN, 0, data, 31337, sig.encode())


def _oracle(name: str, rng: random.Random, intent: Intent, counterparty: str, violate: bool) -> dict[str, Any]:
    """The oracle output a provider would return for this task (sometimes violating the policy)."""
    if name == "spending_limits":
        spent = rng.randrange(0, 30_000) * ETH // 2 if violate else rng.randrange(0, 5_000) * ETH
        return {"spend": {"spent_today_wei": str(spent), "day": "2026-11-29"}}
    if name == "counterparty_screening":
        flags = rng.choice([["mixer"], ["scam"], []]) if violate else []
        return {
            "sanctions": {
                "address": counterparty,
                "sanctioned": violate and rng.random() < 0.5,
                "flags": flags,
                "risk_score": rng.randrange(60, 95) if violate else rng.randrange(0, 40),
                "list_version": "2026-11-29",
            }
        }
    if name == "kyc_jurisdiction":
        return {
            "kyc": {
                "address": intent.from_.lower(),
                "status": rng.choice(["pending", "approved"]) if violate else "approved",
                "country": rng.choice(["KP", "DE", "IR"]) if violate else rng.choice(["DE", "FR", "US", "SG"]),
                "expires_at": 1795000000 + (rng.randrange(-(10**6), 10**6) if violate else 10**7),
                "checked_at": 1795000000,
            }
        }
    return {
        "market": {
            "asset": "eth",
            "volatility_bps": rng.randrange(700, 1200) if violate else rng.randrange(50, 600),
            "price_usd": 3012.5,
            "transfers_last_hour": rng.randrange(20, 40) if violate else rng.randrange(0, 10),
            "large_transfers_last_hour": rng.randrange(5, 12) if violate else rng.randrange(0, 3),
        }
    }


def synthetic_tasks(n: int, seed: int = 7, fault_every: int = 0) -> list[TaskRecord]:
    """`n` tasks over the four local policies, attested with the engine's own verdict (flipped every `fault_every`)."""
    rng = random.Random(seed)
    files = {name: policy_files(name) for name in POLICY_NAMES}
    out = []
    for i in range(n):
        name = POLICY_NAMES[i % len(POLICY_NAMES)]
        source, entry, params = files[name]
        violate = rng.random() < 0.25
        amount = rng.randrange(1, 15_000) * ETH + rng.randrange(0, ETH) if violate else rng.randrange(1, 5_000) * ETH
        to = _address(rng)
        intent = make_intent(rng, amount, to, token=rng.random() < 0.4)
        wasm = _oracle(name, rng, intent, to.lower(), violate)
        ev = compiled(source, entry).evaluate(intent_input(intent), params, wasm)
        allow = ev.allow if not (fault_every and i % fault_every == fault_every - 1) else not ev.allow
        out.append(
            TaskRecord(
                chain_id=31337,
                task_id="0x" + keccak(text=f"task:{seed}:{i}").hex(),
                intent=intent,
                entrypoint=entry,
                policy_code_hash="0x" + keccak(text=source).hex(),
                source=source,
                params_json=json.dumps(params),
                policy_data_json=json.dumps([json.dumps(wasm)]),
                evaluation_result="0x" + encode_result(allow).hex(),
                attested_allow=allow,
                policy_client="0x" + keccak(text=f"client:{name}").hex()[:40],
                status="allowed" if allow else "denied",
            )
        )
    return out


def task_row(t: TaskRecord, block: int) -> dict[str, Any]:
    """The `tasks` row (the columns of `indexer.load.DERIVED_DDL["tasks"]` the engine reads, plus a few for display) of a TaskRecord."""
    inp = intent_input(t.intent)
    return {
        "chain_id": t.chain_id,
        "task_id": t.task_id,
        "policy_client": t.policy_client,
        "policy_address": "0x" + "50" * 20,
        "created_block": block,
        "created_tx": "0x" + keccak(text=f"ctx:{t.task_id}").hex(),
        "responded_block": block + 1 if t.evaluation_result else None,
        "responded_tx": "0x" + keccak(text=f"rtx:{t.task_id}").hex() if t.evaluation_result else None,
        "intent_from": t.intent.from_.lower(),  # the indexer stores addresses lower-case (the input checksums them)
        "intent_to": t.intent.to.lower(),
        "intent_value": inp["value"],
        "intent_data": inp["data"],
        "intent_chain_id": t.intent.chain_id,
        "function_signature": inp["decoded_function_signature"],
        "function_name": (inp["function"] or {}).get("name"),
        "function_args_json": json.dumps(inp["decoded_function_arguments"]),
        "evaluation_result": t.evaluation_result,
        "allow": t.attested_allow,
        "policy_code_hash": t.policy_code_hash,
        "entrypoint": t.entrypoint,
        "params_json": t.params_json,
        "policy_data_json": t.policy_data_json,
        "status": t.status,
    }


def write_db(path: str | Path, tasks: list[TaskRecord], extra_blobs: dict[str, str] | None = None) -> None:
    """A DuckDB file with the `tasks` and `blobs` tables (the indexer's DDL) holding these tasks and their sources."""
    import duckdb
    import pandas as pd

    from indexer.load import ddl

    con = duckdb.connect(str(path))
    try:
        for table in ("tasks", "blobs", "replays"):
            con.execute(ddl(table))
        rows = pd.DataFrame([task_row(t, 10 + 2 * i) for i, t in enumerate(tasks)])
        rows["allow"] = rows["allow"].astype("boolean")
        con.register("task_rows", rows)
        con.execute("INSERT INTO tasks BY NAME SELECT * FROM task_rows")
        blobs = {t.policy_code_hash: t.source for t in tasks if t.source is not None}
        blobs.update(extra_blobs or {})
        con.register("blob_rows", pd.DataFrame({"hash": list(blobs), "content": list(blobs.values())}))
        con.execute("INSERT INTO blobs BY NAME SELECT * FROM blob_rows")
    finally:
        con.close()
