"""Decoding big repeated payloads once (decode.memo): rows of interleaved Rego sources and oracle outputs, UTF-8 or not,
equal what eth-abi encoded, whatever was decoded before them."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from devnet.emitter import encode_event
from indexer import decode
from indexer.abi import topic0_of

pytestmark = pytest.mark.xdist_group("indexer_unit")

CLIENT = "0x" + "c1" * 20
POLICY = "0x" + "50" * 20
ORACLE = "0x" + "22" * 20
REGO = b"package memo\n\ndefault allow := false\n\nallow if input.amount < 10\n"
NOT_UTF8 = b"package memo\n\xff\xfe not text\n"
PDATA_JSON = [(b"", b'{"sanctions":{"listed":false}}', ORACLE, 7)]
PDATA_MIXED = [(b"\x01", b"\xc3\x28 not json", ORACLE, 8), (b"", b'{"spend":{"today":"5"}}', ORACLE, 9)]


def _responded(i: int, source: bytes, pdata: list) -> dict:
    """A raw TaskResponded log (current layout, eth-abi encoded) carrying this Rego source and these oracle outputs."""
    task_id = keccak(b"memo" + bytes([i]))
    intent = (CLIENT, POLICY, 0, b"", 31337, b"")
    response = (
        task_id,
        CLIENT,
        keccak(b"pid"),
        POLICY,
        intent,
        b"\x01" * 65,
        (1).to_bytes(32, "big"),
        (keccak(b"pid"), POLICY, source, pdata),
        (b'{"max":"10"}', 100),
        1_700_000_000 + i,
    )
    cert = (200 + i, 300 + i, keccak(b"ns"), b"")
    topics, data = encode_event(topic0_of("TaskResponded"), {"taskResponse": response, "responseCertificate": cert})
    return {
        "blockNumber": hex(100 + i),
        "logIndex": "0x0",
        "blockHash": "0x" + keccak(bytes([i])).hex(),
        "transactionHash": "0x" + keccak(b"tx" + bytes([i])).hex(),
        "address": POLICY,
        "data": "0x" + data.hex(),
        "topics": topics,
    }


def _oracle_json(pdata: list) -> str:
    """policy_data_json by hand: each oracle output parsed when it is JSON text, else its hex."""
    out = []
    for _, raw, _, _ in pdata:
        try:
            out.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            out.append("0x" + raw.hex())
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def test_interleaved_repeated_payloads_decode_as_encoded():
    plan = [(REGO, PDATA_JSON), (NOT_UTF8, PDATA_JSON), (REGO, PDATA_MIXED), (REGO, PDATA_JSON)]
    plan += [(NOT_UTF8, PDATA_MIXED), (REGO, PDATA_MIXED), (NOT_UTF8, PDATA_MIXED), (REGO, PDATA_JSON)]
    logs = [_responded(i, src, pd) for i, (src, pd) in enumerate(plan)]
    cols = [c.name for c in decode.TABLES["ev_task_responded"]]
    for _ in range(2):  # the second pass finds every payload cached
        batch = decode.decode_logs(logs, 31337)
        assert not batch.undecodable
        rows = [dict(zip(cols, r)) for r in batch.rows["ev_task_responded"]]
        assert len(rows) == len(plan)
        assert batch.blobs == {"0x" + keccak(REGO).hex(): REGO.decode()}
        for row, (src, pd) in zip(rows, plan):
            assert row["policy_code_hash"] == "0x" + keccak(src).hex()
            # a UTF-8 source lives once in blobs; other bytes stay in the row, as hex
            assert row["task_response_policy_task_data_policy"] == (None if src == REGO else "0x" + src.hex())
            assert row["policy_data_json"] == _oracle_json(pd)
            want = [
                {"wasmArgs": "0x" + w.hex(), "data": "0x" + d.hex(), "policyDataAddress": a, "expireBlock": e}
                for w, d, a, e in pd
            ]
            assert json.loads(row["task_response_policy_task_data_policy_data"]) == want
            assert row["params_json"] == '{"max":"10"}'


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=40), st.integers(min_value=1, max_value=4))
def test_memo_answers_like_the_function_it_caches(keys, size):
    calls: list[int] = []

    def f(k: int) -> tuple:
        calls.append(k)
        return (k, k * k)

    cached = decode.memo(f, size)
    assert [cached(k) for k in keys] == [(k, k * k) for k in keys]
    # a run of the same key is computed once
    runs = sum(1 for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k)
    assert len(calls) <= runs
