"""Any transaction tied to a task finds it (CLI and verdict page), and `lens explain` tells the whole story.

The oracle is the chain's own record: the raw event tables the indexer wrote from the real devnet contracts, read
here with plain SQL, never the lookup code under test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from support import page, simulated_devnet, sql

from app.cli.main import cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lookup_story")]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """anvil + devnet contracts + 50 simulated tasks (some faulty, challenged) + the real indexer → (db, deployment)."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    with simulated_devnet(tasks=50, fault_rate=0.12) as (_node, _w3, doc, _result):
        tmp = tmp_path_factory.mktemp("lookup")
        db = tmp / "lens.duckdb"
        index(parse(doc, "devnet"), IndexOptions(db=str(db), metadata_timeout_s=2))
        dep = tmp / "deployment.json"
        dep.write_text(json.dumps(doc))
        yield db, dep


def _explain(db: Path, key: str, *extra: str):
    return CliRunner().invoke(cli, ["explain", key, "--db", str(db), *extra])


# one transaction of each kind, straight from the raw event tables
KINDS = {
    "created": "SELECT created_tx, task_id FROM tasks WHERE created_tx IS NOT NULL",
    "responded": "SELECT responded_tx, task_id FROM tasks WHERE responded_tx IS NOT NULL",
    "IntentExecuted": "SELECT tx_hash, task_id FROM ev_intent_executed",
    "IntentDenied": "SELECT tx_hash, task_id FROM ev_intent_denied",
    "AttestationSpent": "SELECT tx_hash, task_id FROM ev_attestation_spent",
    "TaskChallengedSuccessfully": "SELECT tx_hash, task_id FROM ev_task_challenged_successfully",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_transaction_tied_to_a_task_finds_it(indexed, kind) -> None:
    db, _ = indexed
    rows = sql(
        db,
        KINDS[kind] + " ORDER BY block_number LIMIT 1"
        if kind not in ("created", "responded")
        else KINDS[kind] + " LIMIT 1",
    )
    assert rows, f"the devnet run produced no {kind}"
    tx, task_id = rows[0]
    # without 0x and in upper case: still the same transaction
    res = _explain(db, tx[2:].upper(), "--json", "--no-counterfactuals")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["task_id"] == task_id
    assert doc["story"]["lookup"]["kind"] in ("tx", "task")
    assert any(t["tx_hash"] == tx for t in doc["story"]["transactions"])
    if kind not in ("created", "responded"):
        assert any(kind in role for role in doc["story"]["lookup"]["roles"]), doc["story"]["lookup"]


def test_vault_execution_tx_on_the_verdict_page(indexed, monkeypatch) -> None:
    db, dep = indexed
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    tx, task_id = sql(db, "SELECT tx_hash, task_id FROM ev_intent_executed LIMIT 1")[0]
    at = page("pages/verdict.py")
    at.text_input(key="verdict_lookup").input(tx[2:]).run()
    assert not at.exception
    assert at.query_params["task"] == task_id
    assert any("IntentExecuted" in c.value for c in at.caption)
    assert any("executed:" in m.value for m in at.markdown)


@pytest.mark.parametrize(
    "table", ["ev_intent_executed", "ev_intent_denied", "ev_attestation_spent", "ev_policy_denied"]
)
def test_an_event_from_an_unentitled_contract_finds_nothing(indexed, tmp_path, table) -> None:
    """A vault or task-manager event naming a real task, emitted by a contract not entitled to emit it (not the
    task's policy client, not the deployment's task manager): its transaction finds nothing."""
    db, _ = indexed
    forged = tmp_path / "forged.duckdb"
    shutil.copy(db, forged)
    task_id, client = sql(db, "SELECT task_id, policy_client FROM tasks LIMIT 1")[0]
    fake_tx = "0x" + "f0" * 32
    con = duckdb.connect(str(forged))
    try:
        con.execute(
            f"INSERT INTO {table} (chain_id, block_number, log_index, tx_hash, address, task_id) "
            "SELECT chain_id, 999999, 0, ?, ?, task_id FROM tasks WHERE task_id = ?",
            [fake_tx, "0x" + "66" * 20, task_id],
        )
    finally:
        con.close()
    assert client != "0x" + "66" * 20
    res = _explain(forged, fake_tx, "--no-counterfactuals")
    assert res.exit_code == 1
    assert f"no task or transaction {fake_tx}" in res.output and task_id not in res.output


def test_prefixes_suggest_only_real_matches(indexed) -> None:
    db, _ = indexed
    keys = [
        r[0]
        for r in sql(
            db,
            "SELECT task_id FROM tasks UNION SELECT created_tx FROM tasks UNION SELECT responded_tx FROM tasks "
            "UNION SELECT tx_hash FROM ev_intent_executed UNION SELECT tx_hash FROM ev_intent_denied",
        )
        if r[0]
    ]
    # a 6-digit prefix shared by several keys, if the run has one; else the shortest unique one resolves
    by_prefix: dict[str, list[str]] = {}
    for k in keys:
        by_prefix.setdefault(k[:8], []).append(k)
    shared = [p for p, ks in by_prefix.items() if len(set(ks)) > 1]
    if shared:
        res = _explain(db, shared[0])
        assert res.exit_code == 1 and "is the start of" in res.output
        named = [w.strip(",") for w in res.output.split() if w.startswith("0x") and len(w.strip(",")) == 66]
        assert named and all(n.startswith(shared[0]) for n in named)
    nothing = "0x" + "0" * 10
    assert not any(k.startswith(nothing) for k in keys)
    res = _explain(db, nothing)
    assert res.exit_code == 1 and "no task or transaction" in res.output and "did you mean" not in res.output


def test_explain_tells_the_whole_story_of_a_challenged_fault(indexed) -> None:
    db, _ = indexed
    rows = sql(
        db,
        "SELECT c.task_id, c.tx_hash, c.block_number, t.allow, t.signer_count FROM ev_task_challenged_successfully c "
        "JOIN tasks t USING (task_id) LIMIT 1",
    )
    assert rows, "the devnet run produced no successful challenge"
    task_id, challenge_tx, block, allow, _ = rows[0]
    text = _explain(db, task_id, "--no-counterfactuals")
    assert text.exit_code == 0, text.output
    first = text.output.splitlines()[0]
    assert first.startswith("SUCCESSFULLY CHALLENGED") and challenge_tx in first and f"block {block}" in first
    for heading in ("Who asked what", "When", "What became of it", "Verdict", "Policy", "Oracle data", "Quorum"):
        assert heading in text.output
    doc = json.loads(_explain(db, task_id, "--json", "--no-counterfactuals").output)
    story = doc["story"]
    assert story["outcome"]["state"] == "challenged" and story["outcome"]["tx"] == challenge_tx
    assert story["attested"] == ("allow" if allow else "deny")
    signed = sql(db, "SELECT count(*) FROM task_signers WHERE task_id = ? AND signed", [task_id])[0][0]
    assert len(story["quorum"]["signed"]) == signed
    created = sql(db, "SELECT created_block, intent_from, policy_client FROM tasks WHERE task_id = ?", [task_id])[0]
    assert story["when"]["created_block"] == created[0]
    assert story["asked"]["sender"] == created[1] and story["asked"]["client"]["address"] == created[2]


@pytest.mark.parametrize(("state", "table"), [("executed", "ev_intent_executed"), ("refused", "ev_intent_denied")])
def test_what_became_of_it(indexed, state, table) -> None:
    db, _ = indexed
    rows = sql(
        db,
        f"SELECT e.task_id, e.tx_hash FROM {table} e JOIN tasks t USING (task_id) "
        "WHERE NOT coalesce(t.challenge_success, false) LIMIT 1",
    )
    assert rows
    task_id, tx = rows[0]
    doc = json.loads(_explain(db, task_id, "--json", "--no-counterfactuals").output)
    assert doc["story"]["outcome"]["state"] == state and doc["story"]["outcome"]["tx"] == tx


def test_audit_separates_challenged_mismatches_and_can_leave_the_db_alone(indexed, tmp_path) -> None:
    """A copy of the DB where one executed task's attested verdict is flipped by hand: an open mismatch beside the
    faults the devnet's challenger already proved wrong on chain."""
    db, _ = indexed
    copy = tmp_path / "audit.duckdb"
    shutil.copy(db, copy)
    flipped = sql(db, "SELECT task_id FROM tasks WHERE status = 'spent' ORDER BY task_id LIMIT 1")[0][0]
    con = duckdb.connect(str(copy))
    try:
        con.execute("UPDATE tasks SET allow = NOT allow WHERE task_id = ?", [flipped])
        before = con.execute("SELECT count(*) FROM replays").fetchone()[0]
    finally:
        con.close()
    challenged = {r[0] for r in sql(copy, "SELECT task_id FROM tasks WHERE challenge_success")}
    assert challenged, "the devnet run produced no successful challenge"
    res = CliRunner().invoke(cli, ["audit", "--db", str(copy), "--json", "--no-write"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["mismatches_open"] == [flipped]
    assert set(doc["mismatches_challenged"]) == challenged
    assert doc["mismatch"] == len(challenged) + 1 and doc["wrote_replays"] is False
    assert sql(copy, "SELECT count(*) FROM replays")[0][0] == before
    text = CliRunner().invoke(cli, ["audit", "--db", str(copy)])
    assert f"(1 still open, {len(challenged)} already successfully challenged)" in text.output
    first = next(line for line in text.output.splitlines() if "MISMATCH" in line)
    assert flipped in first and "still open" in first
    assert sql(copy, "SELECT count(*) FROM replays")[0][0] > before


def test_synth_writes_the_meta_the_indexer_writes(indexed, tmp_path) -> None:
    db, _ = indexed
    synth = tmp_path / "synth.duckdb"
    res = CliRunner().invoke(cli, ["synth", "--tasks", "60", "--db", str(synth)])
    assert res.exit_code == 0, res.output
    indexer_meta = dict(sql(db, "SELECT key, value FROM meta"))
    synth_meta = dict(sql(synth, "SELECT key, value FROM meta"))
    run_stats = {"rpc_faults", "rpc_faults_since", "last_reorg"}  # what one indexer run met, not what the DB holds
    assert set(indexer_meta) - run_stats <= set(synth_meta), set(indexer_meta) - run_stats - set(synth_meta)
    for key in ("roles", "deployment_json"):  # the same shapes: JSON objects with the same top-level keys
        a, b = json.loads(indexer_meta[key]), json.loads(synth_meta[key])
        assert isinstance(b, dict) and (key == "roles" or set(a) <= set(b)), key
    assert int(synth_meta["chain_id"]) > 0 and int(synth_meta["indexed_head"]) > 0
    assert not synth_meta["deployment"].startswith("{")  # a name, as the indexer writes it


def test_index_status_says_why_the_head_is_unknown(indexed, tmp_path) -> None:
    db, _ = indexed
    copy = tmp_path / "status.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("UPDATE meta SET value = '' WHERE key = 'rpc_url'")
    finally:
        con.close()
    doc = json.loads(CliRunner().invoke(cli, ["index", "status", "--db", str(copy), "--json"]).output)
    assert doc["head"] is None and "no RPC URL" in doc["head_error"]
    text = CliRunner().invoke(cli, ["index", "status", "--db", str(copy)]).output
    assert "head unknown: no RPC URL" in " ".join(text.split())
    # an RPC that refuses: the head is unknown and the reason names the failure
    dead = CliRunner().invoke(cli, ["index", "status", "--db", str(copy), "--rpc", "http://127.0.0.1:9", "--json"])
    dead_doc = json.loads(dead.output)
    assert dead_doc["head"] is None and dead_doc["head_error"]


def test_token_amounts_read_in_the_tokens_symbol(indexed) -> None:
    db, dep = indexed
    token = json.loads(dep.read_text())["contracts"]["token"].lower()
    rows = sql(db, "SELECT task_id FROM tasks WHERE lower(asset) = ? AND allow IS NOT NULL ORDER BY task_id", [token])
    seen = 0
    for (task_id,) in rows[:12]:
        doc = json.loads(_explain(db, task_id, "--json", "--no-counterfactuals").output)
        if " wei)" in doc["sentence"]:  # the sentence names an amount
            seen += 1
            assert "dUSD (" in doc["sentence"] and "tokens" not in doc["sentence"], doc["sentence"]
    assert seen, "no explained token task named an amount"


def test_an_ambiguous_prefix_lists_only_the_keys_it_starts(indexed, tmp_path, monkeypatch) -> None:
    db, dep = indexed
    copy = tmp_path / "twins.duckdb"
    shutil.copy(db, copy)
    real = sql(db, "SELECT task_id FROM tasks ORDER BY task_id LIMIT 1")[0][0]
    twin = real[:10] + ("0" if real[10] != "0" else "1") * 56  # shares the first 8 hex digits, nothing more
    con = duckdb.connect(str(copy))
    try:
        con.execute(
            "INSERT INTO tasks (chain_id, task_id) SELECT chain_id, ? FROM tasks WHERE task_id = ?", [twin, real]
        )
    finally:
        con.close()
    res = _explain(copy, real[2:10])
    assert res.exit_code == 1 and "is the start of 2 task ids or transactions" in res.output
    assert real in res.output and twin in res.output
    monkeypatch.setenv("LENS_DB", str(copy))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    at = page("pages/verdict.py", q=real[:10])
    links = next(d.value for d in at.dataframe if "starts with it" in d.value.columns)["starts with it"]
    assert sorted(links) == sorted(f"/verdict?q={k}" for k in (real, twin))


def test_audit_sentences_name_the_tokens_symbol(indexed, tmp_path) -> None:
    db, dep = indexed
    copy = tmp_path / "audit_units.duckdb"
    shutil.copy(db, copy)
    assert CliRunner().invoke(cli, ["audit", "--db", str(copy)]).exit_code == 0
    symbol = sql(copy, "SELECT asset_symbol FROM tasks WHERE asset LIKE '0x%' AND asset_symbol IS NOT NULL LIMIT 1")
    assert symbol, "the indexer read no token symbol"
    rows = sql(
        copy,
        "SELECT r.sentence FROM replays r JOIN tasks t USING (task_id) WHERE t.asset LIKE '0x%' AND r.sentence LIKE '% wei)%'",
    )
    assert rows, "no audited token task named an amount"
    for (sentence,) in rows:
        assert f"{symbol[0][0]} (" in sentence and "tokens" not in sentence, sentence
