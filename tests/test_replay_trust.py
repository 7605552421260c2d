"""Replays that cannot be fooled: hand-written event logs through the real decode → load → derive SQL, then the engine.

The oracle is the logs written here and the policy text in data/policies (spending_limits denies an amount above
`max_tx_wei`), never a verdict the engine produced."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from eth_utils import keccak

from app.engine import store
from app.engine.audit import audit_chunk, pack
from app.engine.replay import replay
from tests.chainrows import (
    CLIENT,
    ETH,
    FACTORY,
    POLICY,
    TOKEN,
    Chain,
    call,
    intent,
    policy_source,
    task_row,
)

SPENDING = policy_source("spending_limits")
LIMITS = json.dumps(
    {"max_tx_wei": str(10_000 * ETH), "daily_cap_wei": str(50_000 * ETH), "allowed_functions": []}
).encode()
ORACLE = {"spend": {"spent_today_wei": "0", "day": "2026-11-29"}}
OUTSIDER = "0x" + "bd" * 20
RECIPIENT = "0x" + "b2" * 20


def _tid(label: str) -> bytes:
    return keccak(text=label)


def _replay(db: Path, task_id: bytes):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return replay(store.load_task(con, "0x" + task_id.hex()))
    finally:
        con.close()


def _allow_of_12000_eth(chain: Chain, tid: bytes) -> None:
    """A quorum-signed ALLOW of a 12,000 ETH transfer under a 10,000 ETH per-transaction limit: a wrong attestation."""
    it = intent(RECIPIENT, value=12_000 * ETH)
    chain.created(tid, it, LIMITS)
    chain.responded(tid, it, True, SPENDING, LIMITS, ORACLE)


def test_a_policyset_from_an_unrelated_address_does_not_change_the_verdict(tmp_path: Path) -> None:
    chain = Chain()
    tid = _tid("attack")
    # a look-alike PolicySet with the task's policyId, from an address that is not the task's policy
    chain.policy_set(OUTSIDER, "spending_limits.spend_ok")
    _allow_of_12000_eth(chain, tid)
    db = tmp_path / "a.duckdb"
    chain.derive(db)
    row = task_row(db, tid)
    assert row["entrypoint"] == "spending_limits.allow"
    assert row["entrypoint_source"] == "package"
    rep = _replay(db, tid)
    assert rep.result == "mismatch" and rep.replayed_allow is False
    assert "exceeds_per_tx_limit" in rep.deny
    # the verdict page's policy table says where the entrypoint and the params came from
    from app.queries import verdict

    con = duckdb.connect(str(db), read_only=True)
    try:
        facts = dict(verdict.policy_facts(verdict.verdict(con, "0x" + tid.hex())).values.tolist())
    finally:
        con.close()
    assert (
        facts["entrypoint"]
        == "spending_limits.allow (from Newton convention <package>.allow from the source's package line)"
    )
    assert facts["params from"].startswith("the TaskResponded the quorum signed")


def test_the_policys_own_policyset_and_the_factorys_policydeployed_are_trusted(tmp_path: Path) -> None:
    chain = Chain()
    chain.policy_set(POLICY, "spending_limits.allow")
    _allow_of_12000_eth(chain, _tid("own"))
    chain.derive(tmp_path / "own.duckdb")
    assert task_row(tmp_path / "own.duckdb", _tid("own"))["entrypoint_source"] == "PolicySet"

    chain = Chain()
    chain.policy_deployed(OUTSIDER, "spending_limits.spend_ok")  # not the deployment's factory: ignored
    chain.policy_deployed(FACTORY, "spending_limits.allow")
    _allow_of_12000_eth(chain, _tid("dep"))
    chain.derive(tmp_path / "dep.duckdb")
    row = task_row(tmp_path / "dep.duckdb", _tid("dep"))
    assert (row["entrypoint"], row["entrypoint_source"]) == ("spending_limits.allow", "PolicyDeployed")
    con = duckdb.connect(str(tmp_path / "dep.duckdb"), read_only=True)
    try:  # the outsider's policy is not listed as a policy either
        listed = {r[0] for r in con.execute("SELECT policy_address FROM policies").fetchall()}
    finally:
        con.close()
    assert listed == {POLICY}

    chain = Chain()
    chain.policy_deployed(OUTSIDER, "spending_limits.spend_ok")
    _allow_of_12000_eth(chain, _tid("out"))
    chain.derive(tmp_path / "out.duckdb")
    assert task_row(tmp_path / "out.duckdb", _tid("out"))["entrypoint_source"] == "package"


def test_the_deployment_document_names_the_entrypoint_when_no_log_does(tmp_path: Path) -> None:
    chain = Chain()
    _allow_of_12000_eth(chain, _tid("doc"))
    chain.derive(tmp_path / "d.duckdb", dep_policies=[{"address": POLICY, "entrypoint": "spending_limits.allow"}])
    row = task_row(tmp_path / "d.duckdb", _tid("doc"))
    assert (row["entrypoint"], row["entrypoint_source"]) == ("spending_limits.allow", "deployment")


def test_a_task_known_only_from_its_response_keeps_its_decoded_call(tmp_path: Path) -> None:
    """Indexing began between creation and response: a correct DENY of a dUSD transfer above the limit."""
    tid = _tid("late")
    data = call("transfer(address,uint256)", ["address", "uint256"], [RECIPIENT, 12_000 * ETH])
    it = intent(TOKEN, data=data, sig="transfer(address,uint256)")
    chain = Chain()
    chain.responded(tid, it, False, SPENDING, LIMITS, ORACLE)
    db = tmp_path / "late.duckdb"
    chain.derive(db)
    row = task_row(db, tid)
    assert row["created_block"] is None
    assert (row["function_name"], row["asset"], row["amount_wei"], row["counterparty"]) == (
        "transfer",
        TOKEN,
        str(12_000 * ETH),
        RECIPIENT,
    )
    rep = _replay(db, tid)
    assert rep.result == "match" and rep.replayed_allow is False and "exceeds_per_tx_limit" in rep.deny
    assert _timeline(db, tid)[0][:2] == ("created", None)


def _timeline(db: Path, tid: bytes) -> list[tuple]:
    from app.queries import verdict

    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = verdict.timeline(verdict.verdict(con, "0x" + tid.hex()))
    finally:
        con.close()
    return [(r.stage, None if pd.isna(r.block) else int(r.block), r.detail) for r in frame.itertuples()]


@pytest.mark.parametrize(
    "sig,types,values",
    [
        ("transfer(address,address)", ["address", "address"], [RECIPIENT, OUTSIDER]),
        ("approve(address,bool)", ["address", "bool"], [RECIPIENT, True]),
        ("transferFrom(address,address,string)", ["address", "address", "string"], [RECIPIENT, OUTSIDER, "nine"]),
    ],
)
def test_an_odd_call_is_a_task_without_an_amount_never_a_lost_log(tmp_path: Path, sig, types, values) -> None:
    tid = _tid(sig)
    it = intent(TOKEN, data=call(sig, types, values), sig=sig)
    chain = Chain()
    chain.created(tid, it, LIMITS)
    # spending_limits reads args[1] / args[2] as the amount: not a uint string → invalid_amount, a deny
    chain.responded(tid, it, False, SPENDING, LIMITS, ORACLE)
    db = tmp_path / "odd.duckdb"
    chain.derive(db)
    row = task_row(db, tid)
    assert row["function_name"] == sig.split("(")[0]
    assert row["amount_wei"] is None and row["amount_num"] is None and row["asset"] == TOKEN
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM undecodable_logs").fetchone()[0] == 0
    finally:
        con.close()
    rep = _replay(db, tid)
    assert rep.result == "match" and "invalid_amount" in rep.deny


def test_a_chain_id_past_2_pow_63_stays_exact(tmp_path: Path) -> None:
    tid = _tid("big-chain")
    big = 2**64 + 7
    it = intent(RECIPIENT, value=ETH, chain_id=big)
    chain = Chain()
    chain.created(tid, it, LIMITS)
    chain.responded(tid, it, True, SPENDING, LIMITS, ORACLE)
    db = tmp_path / "big.duckdb"
    chain.derive(db)
    row = task_row(db, tid)
    assert row["intent_chain_id_exact"] == str(big) and row["intent_chain_id"] is None
    con = duckdb.connect(str(db), read_only=True)
    try:
        task = store.load_task(con, "0x" + tid.hex())
    finally:
        con.close()
    assert task.intent.chain_id == big and not task.problem
    from app.engine.intent import intent_input

    assert intent_input(task.intent)["chain_id"] == "18446744073709551623"
    assert replay(task).result == "match"


def test_unreadable_params_cannot_be_replayed_and_the_audit_goes_on(tmp_path: Path) -> None:
    bad_utf8, bad_json, good = _tid("p1"), _tid("p2"), _tid("p3")
    chain = Chain()
    for tid, params in ((bad_utf8, b'{"max_tx_wei": "\xff\xfe"}'), (bad_json, b"{max_tx_wei: 1"), (good, LIMITS)):
        it = intent(RECIPIENT, value=ETH)
        chain.created(tid, it, params)
        chain.responded(tid, it, False, SPENDING, params, ORACLE)
    db = tmp_path / "params.duckdb"
    chain.derive(db)
    assert task_row(db, bad_utf8)["params_error"] == "params are not valid UTF-8 JSON"
    assert task_row(db, bad_json)["params_error"] == "params are not valid UTF-8 JSON"
    assert task_row(db, good)["params_error"] is None
    con = duckdb.connect(str(db), read_only=True)
    try:
        tasks = list(store.iter_tasks(con))
    finally:
        con.close()
    out = {r.task_id: r for r, _ in audit_chunk(*pack(tasks))}
    for tid in (bad_utf8, bad_json):
        assert out["0x" + tid.hex()].result == "cannot_replay"
        assert out["0x" + tid.hex()].reason == "params are not valid UTF-8 JSON"
    # the good one was audited too: 1 ETH under the limit, attested deny → the replay disagrees
    assert out["0x" + good.hex()].result == "mismatch"


def test_a_broken_row_is_one_cannot_replay_task_and_the_audit_goes_on(tmp_path: Path) -> None:
    chain = Chain()
    for label in ("x1", "x2"):
        it = intent(RECIPIENT, value=ETH)
        chain.created(_tid(label), it, LIMITS)
        chain.responded(_tid(label), it, True, SPENDING, LIMITS, ORACLE)
    db = tmp_path / "broken.duckdb"
    chain.derive(db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE tasks SET intent_value = 'not a number' WHERE task_id = ?", ["0x" + _tid("x1").hex()])
    con.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        tasks = list(store.iter_tasks(con))
    finally:
        con.close()
    out = {r.task_id: r for r, _ in audit_chunk(*pack(tasks))}
    assert out["0x" + _tid("x1").hex()].result == "cannot_replay"
    assert "intent cannot be rebuilt" in out["0x" + _tid("x1").hex()].reason
    assert out["0x" + _tid("x2").hex()].result == "match"


def test_statuses_of_events_md_3_6_through_the_derive_sql(tmp_path: Path) -> None:
    """Each status from hand-written logs: spent, denied on the direct path (not spent), direct-only, expired,
    allowed, challenged (overrides everything), created."""
    small = intent(RECIPIENT, value=ETH)
    chain = Chain()
    chain.created(_tid("spent"), small, LIMITS)
    chain.responded(_tid("spent"), small, True, SPENDING, LIMITS, ORACLE)
    chain.spent(_tid("spent"), small)
    chain.created(_tid("direct-deny"), small, LIMITS)
    chain.direct(_tid("direct-deny"), small, False, SPENDING, LIMITS, ORACLE)
    chain.direct(_tid("direct-only"), small, True, SPENDING, LIMITS, ORACLE)
    chain.created(_tid("allowed"), small, LIMITS)
    chain.responded(_tid("allowed"), small, True, SPENDING, LIMITS, ORACLE)  # expires at block + 1000
    chain.created(_tid("challenged"), small, LIMITS)
    chain.responded(_tid("challenged"), small, True, SPENDING, LIMITS, ORACLE)
    chain.spent(_tid("challenged"), small)
    chain.emit(
        "0x" + "7a" * 20,
        "TaskChallengedSuccessfully",
        {"taskId": _tid("challenged"), "challenger": CLIENT},
    )
    chain.created(_tid("created"), small, LIMITS)
    db = tmp_path / "status.duckdb"
    chain.derive(db)
    want = {
        "spent": "spent",
        "direct-deny": "denied",
        "direct-only": "direct_only",
        "allowed": "allowed",
        "challenged": "challenged",
        "created": "created",
    }
    got = {label: task_row(db, _tid(label))["status"] for label in want}
    assert got == want
    assert task_row(db, _tid("direct-deny"))["spent_block"] is None
    stages = [stage for stage, _, _ in _timeline(db, _tid("direct-only"))]
    assert stages[:3] == ["direct path", "responded: allowed", "attestation spent"]
    assert "attestation spent" not in [stage for stage, _, _ in _timeline(db, _tid("direct-deny"))]
    # far past the allowed task's response expiry block: expired
    chain.derive(tmp_path / "late.duckdb", head=chain.block + 5000)
    assert task_row(tmp_path / "late.duckdb", _tid("allowed"))["status"] == "expired"


def test_task_events_from_an_address_that_is_not_the_task_manager_never_become_tasks(tmp_path: Path) -> None:
    """A look-alike NewTaskCreated / TaskResponded / challenge from another indexed address (a client, a policy) is
    stored raw, but is no task, no response and no challenge."""
    real, fake = _tid("real"), _tid("fake")
    it = intent(RECIPIENT, value=ETH)
    chain = Chain()
    chain.created(real, it, LIMITS)
    chain.responded(real, it, False, SPENDING, LIMITS, ORACLE)
    # the same events from the client's address: a forged task and a forged allow of the real one
    n = len(chain.logs)
    chain.created(fake, it, LIMITS)
    chain.responded(real, it, True, SPENDING, LIMITS, ORACLE, policy_id=b"")
    chain.emit(CLIENT, "TaskChallengedSuccessfully", {"taskId": real, "challenger": CLIENT})
    for log in chain.logs[n:]:
        log["address"] = CLIENT
    db = tmp_path / "forged.duckdb"
    chain.derive(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        ids = {r[0] for r in con.execute("SELECT task_id FROM tasks").fetchall()}
        challenges = con.execute("SELECT count(*) FROM challenges").fetchone()[0]
        raw = con.execute("SELECT count(*) FROM ev_new_task_created").fetchone()[0]
    finally:
        con.close()
    assert ids == {"0x" + real.hex()} and challenges == 0 and raw == 2
    row = task_row(db, real)
    assert row["allow"] is False and row["status"] == "denied"
