"""The fast paths of `lens synth` (issue 14 §1) write what the slow ones did: blocks, keys, padded calldata, hashes."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import synth


@given(st.lists(st.lists(st.integers(min_value=-1, max_value=5_000), max_size=60), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_distinct_is_numpys_unique_of_the_non_negative_values(columns):
    arrays = [np.array(c, dtype=np.int64) for c in columns]
    joined = np.concatenate(arrays)
    expected = np.unique(joined[joined >= 0])
    got = synth._distinct(*arrays)
    assert got.dtype == np.int64
    assert got.tolist() == expected.tolist()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth_scale") / "s.duckdb"
    synth.build(path, tasks=2500, seed=5)
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_blocks_are_exactly_the_blocks_rows_touch_and_keep_the_indexers_key(db):
    want = db.execute(
        """SELECT n FROM (
             SELECT created_block AS n FROM tasks UNION SELECT responded_block FROM tasks
             UNION SELECT spent_block FROM tasks UNION SELECT challenged_block FROM tasks
             UNION SELECT block_number FROM operator_stakes UNION SELECT block_number FROM policy_versions
             UNION SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'head_block') WHERE n IS NOT NULL ORDER BY n"""
    ).fetchall()
    got = db.execute("SELECT block_number FROM blocks ORDER BY 1").fetchall()
    assert got == want
    keys = db.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = 'blocks' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert keys == [(["chain_id", "block_number"],)]
    # a block's parent hash is the hash synth gives the block before it
    tag = "synth:5"
    row = db.execute(
        "SELECT block_number, block_hash, parent_hash FROM blocks ORDER BY block_number DESC LIMIT 1"
    ).fetchone()
    assert row[1] == "0x" + hashlib.sha256(f"{tag}:blk:{row[0]}".encode()).hexdigest()
    assert row[2] == "0x" + hashlib.sha256(f"{tag}:blk:{row[0] - 1}".encode()).hexdigest()


def test_recreated_tables_keep_the_data_dictionary(db):
    missing = db.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name IN ('tasks', 'blocks') AND comment IS NULL"
    ).fetchall()
    assert missing == []


def test_token_calldata_carries_counterparty_and_amount_in_32_byte_words(db):
    rows = db.execute(
        "SELECT function_name, intent_data, counterparty, amount_wei, intent_value FROM tasks ORDER BY task_id"
    ).fetchall()
    selectors = {"transfer": "a9059cbb", "approve": "095ea7b3"}
    kinds = set()
    for fn, data, cp, wei, value in rows:
        kinds.add(fn)
        if fn == "":  # a plain native transfer: no calldata, the value is the amount
            assert data == "0x" and int(value) == int(wei)
            continue
        assert data.startswith("0x" + selectors[fn]) and len(data) == 2 + 8 + 64 + 64
        to_word, amount_word = data[10:74], data[74:]
        assert to_word == to_word.lower() and int(to_word, 16) == int(cp, 16)
        assert amount_word == amount_word.lower() and int(amount_word, 16) == int(wei)
        assert value == "0"
    assert kinds == {"", "transfer", "approve"}


def test_evaluation_result_and_task_hashes(db):
    rows = db.execute(
        "SELECT t.task_id, t.allow, t.evaluation_result, t.responded_block, t.hash_of_non_signers, "
        "list(s.operator_id ORDER BY s.operator_id) FILTER (WHERE NOT s.signed) AS missing "
        "FROM tasks t LEFT JOIN task_signers s USING (task_id) GROUP BY ALL"
    ).fetchall()
    assert len(rows) == 2500
    ids = {f"0x{hashlib.sha256(f'synth:5:task:{i}'.encode()).hexdigest()}" for i in range(2500)}
    assert {r[0] for r in rows} == ids
    by_missing: dict[tuple, set] = {}
    for _, allow, result, responded, ns_hash, missing in rows:
        if responded is None:
            assert result is None and ns_hash is None
            continue
        assert result == "0x" + "0" * 63 + ("1" if allow else "0")
        by_missing.setdefault(tuple(missing or ()), set()).add(ns_hash)
    # the hash of non-signers names the set of operators that did not sign: one hash per set, one set per hash
    assert all(len(h) == 1 for h in by_missing.values())
    assert len({next(iter(h)) for h in by_missing.values()}) == len(by_missing)
