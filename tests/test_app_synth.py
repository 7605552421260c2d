"""`lens synth` writes the indexer's schema with rows the engine replays to the attested verdict; `lens serve` CLI errors."""

from __future__ import annotations

import json
import socket

import duckdb
import pytest
from click.testing import CliRunner

from app import engine, synth
from app.cli.main import cli


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "s.duckdb"
    synth.build(path, tasks=1500, seed=3)
    return path


def rows(path, sql, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def test_every_synthetic_verdict_replays_to_the_attested_one(db):
    tasks = rows(
        db,
        "SELECT t.*, b.content AS source FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash "
        "WHERE t.responded_block IS NOT NULL",
    )
    assert len(tasks) > 1400
    head = int(rows(db, "SELECT value FROM meta WHERE key = 'head_block'")[0]["value"])
    outcomes = {"match": 0, "mismatch": 0}
    for t in tasks:
        rep = engine.replay(engine.task_from_row(t, t["source"]))
        assert rep.result in outcomes, (t["task_id"], rep)
        # only injected faults (a quorum signing the wrong verdict) disagree with the replay, and the challenger
        # disputes each of them unless its challenge would land after the DB's head
        if t["challenge_success"]:
            assert rep.result == "mismatch", t["task_id"]
        elif rep.result == "mismatch":
            assert t["responded_block"] + 41 > head, t["task_id"]
        outcomes[rep.result] += 1
    denied = sum(1 for t in tasks if not t["allow"])
    assert 0.05 * len(tasks) < denied < 0.5 * len(tasks)


def test_synthetic_replays_table_agrees_with_the_engine(db):
    """The `replays` rows synth writes (as `lens audit` would) say what the engine says: result, verdict, reasons."""
    tasks = rows(
        db,
        "SELECT t.*, b.content AS source, r.result AS r_result, r.replayed_allow AS r_allow, r.deny_json AS r_deny "
        "FROM tasks t LEFT JOIN blobs b ON b.hash = t.policy_code_hash "
        "LEFT JOIN replays r ON r.chain_id = t.chain_id AND r.task_id = t.task_id",
    )
    answered = [t for t in tasks if t["responded_block"] is not None]
    assert all(t["r_result"] is None for t in tasks if t["responded_block"] is None)
    wrong_reasons = 0
    for t in answered:
        rep = engine.replay(engine.task_from_row(t, t["source"]))
        assert (t["r_result"], t["r_allow"]) == (rep.result, rep.replayed_allow), t["task_id"]
        wrong_reasons += sorted(json.loads(t["r_deny"])) != sorted(rep.deny)
    # an oracle error fails closed with the missing-data reason only; the engine may list a second one beside it
    assert wrong_reasons <= 0.01 * len(answered)
    assert rows(db, "SELECT count(*) AS n FROM replays")[0]["n"] == len(answered)


def test_same_seed_same_db(db, tmp_path):
    again = tmp_path / "again.duckdb"
    synth.build(again, tasks=1500, seed=3)
    digest = (
        "SELECT md5(string_agg(task_id || status || coalesce(params_json, '') || coalesce(policy_data_json, ''), ',' "
        "ORDER BY task_id)) AS d FROM tasks"
    )
    assert rows(db, digest) == rows(again, digest)


def test_lifecycles_and_signers_are_consistent(db):
    bad = rows(
        db,
        """
        SELECT task_id FROM tasks WHERE
          (status = 'created' AND responded_block IS NOT NULL) OR
          (status = 'denied' AND allow IS DISTINCT FROM false) OR
          (status = 'spent' AND (spent_block IS NULL OR NOT allow)) OR
          (spent_block IS NOT NULL AND spent_block >= response_expire_block) OR
          (responded_block IS NOT NULL AND responded_block <= created_block) OR
          (task_created_block >= created_block)""",
    )
    assert bad == []
    mismatched = rows(
        db,
        """
        SELECT t.task_id FROM tasks t JOIN (
          SELECT task_id, count(*) FILTER (WHERE signed) AS s, count(*) FILTER (WHERE NOT signed) AS n FROM task_signers GROUP BY 1
        ) x USING (task_id) WHERE x.s <> t.signer_count OR x.n <> t.non_signer_count""",
    )
    assert mismatched == []
    orphans = rows(
        db,
        "SELECT t.task_id FROM tasks t LEFT JOIN policy_versions v ON v.client = t.policy_client "
        "AND v.policy_id = t.policy_id WHERE v.policy_id IS NULL",
    )
    assert orphans == []
    # a task's params are those of the version in force at its block
    wrong = rows(
        db,
        "SELECT t.task_id FROM tasks t JOIN policy_versions v ON v.client = t.policy_client AND v.policy_id = t.policy_id "
        "WHERE t.params_json <> v.params_json OR t.created_block < v.valid_from_block "
        "OR (v.valid_to_block IS NOT NULL AND t.created_block > v.valid_to_block)",
    )
    assert wrong == []


def test_synth_cli_refuses_to_overwrite_and_prints_json(tmp_path):
    runner = CliRunner()
    path = tmp_path / "c.duckdb"
    first = runner.invoke(cli, ["synth", "--tasks", "200", "--db", str(path), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["tasks"] == 200 and summary["db"] == str(path)
    again = runner.invoke(cli, ["synth", "--tasks", "200", "--db", str(path)])
    assert again.exit_code == 1
    assert "already exists" in again.output and "--force" in again.output


def test_serve_names_a_busy_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1
    assert f"port {port} is busy" in result.output


def test_synth_meta_has_every_key_the_indexer_writes(db):
    """The keys indexer/run.py writes into `meta` (prepare and every batch), so readers treat both DBs alike."""
    meta = {r["key"]: r["value"] for r in rows(db, "SELECT key, value FROM meta")}
    indexer_keys = {"deployment", "chain_id", "deployment_file", "rpc_url", "confirmations", "roles"}
    indexer_keys |= {"deployment_json", "data_version", "indexed_head"}
    assert indexer_keys <= set(meta)
    doc = json.loads(meta["deployment_json"])
    assert int(meta["chain_id"]) == doc["chain_id"]
    roles = json.loads(meta["roles"])
    assert roles[doc["contracts"]["taskManager"]].startswith("taskManager")
    head = rows(db, "SELECT max(block_number) AS b FROM blocks")[0]["b"]
    assert int(meta["indexed_head"]) == head
    # every stake update and every challenge sits on a recorded block (exports partition by its time)
    loose = rows(
        db,
        "SELECT count(*) AS n FROM (SELECT block_number FROM operator_stakes UNION ALL "
        "SELECT block_number FROM challenges) x ANTI JOIN blocks b USING (block_number)",
    )
    assert loose[0]["n"] == 0
