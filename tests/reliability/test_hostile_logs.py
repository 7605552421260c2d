"""Hostile logs at a watched address: a known topic0 with garbage, short or oversized data, a 1 MiB dynamic field,
invalid UTF-8 and markup in strings — each stored (decoded, or raw and counted), never a crash, never a lost good log
of the same batch; and a hypothesis fuzz of the decoder over random bytes."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import FAST, deployment, head, rpc

from devnet import emitter
from indexer import abi, decode, load
from indexer.run import IndexOptions, index
from indexer.status import summary

pytestmark = pytest.mark.xdist_group("reliability_logs")

T_NEW, T_RESP = abi.topic0_of("NewTaskCreated"), abi.topic0_of("TaskResponded")
T_SOCKET, T_URI = abi.topic0_of("OperatorSocketUpdate"), abi.topic0_of("OperatorMetadataURIUpdated")
T_REG = abi.topic0_of("OperatorRegistered")
OP, OP_ID = "0x" + "a1" * 20, b"\x07" * 32
MIB = 1 << 20


def _string_log(topic0: str, indexed: list[str], raw: bytes) -> tuple[list[str], bytes]:
    """A log whose only data parameter is a string of these exact bytes (eth-abi would refuse invalid UTF-8)."""
    padded = raw + b"\0" * (-len(raw) % 32)
    return [topic0, *indexed], (32).to_bytes(32, "big") + len(raw).to_bytes(32, "big") + padded


def _mib_string_emitter(url: str, topics: list[str]) -> str:
    """A contract (set with anvil_setCode) that, when called, emits one log with these two topics whose data is
    abi.encode(string) of 1 MiB of NUL bytes — no 1 MiB calldata needed (anvil refuses requests that large)."""
    code = (
        "6020600052"  # mstore(0, 32): the string's offset
        + "62"
        + MIB.to_bytes(3, "big").hex()
        + "602052"  # mstore(32, 1 MiB): its length (the bytes stay zero)
        + "7f"
        + topics[1][2:]
        + "7f"
        + topics[0][2:]  # topic1, topic0
        + "62"
        + (MIB + 64).to_bytes(3, "big").hex()
        + "6000a2"  # log2(0, 64 + 1 MiB, topic0, topic1)
        + "00"
    )
    address = "0x" + "b1" * 20
    rpc(url, "anvil_setCode", [address, "0x" + code])
    return address


def test_hostile_logs_are_stored_and_counted_and_good_logs_in_the_same_batch_survive(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    rng = random.Random(5)
    good = emitter.sample_task_logs(
        1, b"package t\ndefault allow := false\n", "0x" + "aa" * 20, "0x" + "bb" * 20, [b"o"]
    )
    op_topic = "0x" + OP_ID.hex()
    addr_topic = "0x" + "0" * 24 + OP[2:]
    socket_markup = b"<script>alert(1)</script>\xff\xfe not utf-8 <b>bold</b>"
    valid_resp = good[-2] if good[-2][0][0] == T_RESP else good[1]
    hostile = [
        ([T_NEW, "0x" + "11" * 32], rng.randbytes(700)),  # known topic0, garbage data
        ([T_RESP], b"\x00" * 7),  # short data
        ([T_RESP], (2**250).to_bytes(32, "big") * 4),  # offsets far past the end
        ([T_NEW, "0x" + "22" * 32], b""),  # no data at all
        ([T_SOCKET], b"\x00" * 64),  # topic count wrong: operatorId is indexed
        (valid_resp[0], valid_resp[1] + rng.randbytes(4096)),  # oversized: a valid response with trailing bytes
        # a string whose length word claims 1 MiB but whose bytes stop after a few: must not read past the end
        ([T_SOCKET, op_topic], (32).to_bytes(32, "big") + MIB.to_bytes(32, "big") + b"x" * 64),
    ]
    strings = [
        _string_log(T_SOCKET, [op_topic], socket_markup),  # markup and invalid UTF-8: kept, escaped
        _string_log(T_URI, [addr_topic], b"http://127.0.0.1:9/\xc3\x28meta.json"),  # invalid UTF-8 in a URI
    ]
    registered = emitter.encode_event(T_REG, {"operator": OP, "operatorId": OP_ID})
    # good and hostile logs interleaved in ONE transaction: one block, one batch
    batch = [registered, good[0], *hostile[:3], good[1], *hostile[3:], *good[2:], *strings]
    receipt = emitter.emit_many(url, em, batch)
    assert len(receipt["logs"]) == len(batch)
    big = _mib_string_emitter(url, [T_SOCKET, op_topic])  # and a real 1 MiB dynamic field, in the next block
    big_receipt = emitter.send(url, big, b"", gas=20_000_000)
    assert len(big_receipt["logs"]) == 1 and len(big_receipt["logs"][0]["data"]) == 2 + 2 * (MIB + 64)
    end = head(url)
    db = str(tmp_path / "hostile.duckdb")
    dep = deployment(url, fresh_anvil.chain_id, em, start)
    dep = dataclasses.replace(dep, contracts={**dep.contracts, "operatorRegistry": big})
    st_ = index(dep, IndexOptions(db=db, end=end, **FAST))
    with load.connect_read(db) as con:
        undecodable = con.execute(
            "SELECT log_index, topic0, data FROM undecodable_logs WHERE block_number = ? ORDER BY log_index",
            [int(receipt["blockNumber"], 16)],
        ).fetchall()
        decoded = {}
        for table in decode.TABLES:
            for (li,) in con.execute(f"SELECT log_index FROM {table}").fetchall():
                decoded[li] = table
        socket = con.execute("SELECT socket FROM operators WHERE operator = ?", [OP]).fetchone()
        sockets = [
            r[0]
            for r in con.execute(
                "SELECT socket FROM ev_operator_socket_update ORDER BY block_number, log_index"
            ).fetchall()
        ]
        s = summary(con)
    # every log of the batch is in exactly one place: a decoded row, or an undecodable one stored raw
    raw_at = {li: (t, d) for li, t, d in undecodable}
    assert set(decoded) | set(raw_at) == set(range(len(batch))) and not set(decoded) & set(raw_at)
    for i, (topics, data) in enumerate(batch):
        if i in raw_at:
            assert raw_at[i] == (topics[0], "0x" + data.hex())  # stored raw, byte for byte
    # the good logs all decoded (the task is complete), the garbage did not
    for lg in [registered, *good]:
        assert batch.index(lg) in decoded
    for lg in hostile[:5] + hostile[6:]:
        assert batch.index(lg) in raw_at
    assert st_.undecodable == len(raw_at) == s["undecodable"]
    # strings with markup / invalid UTF-8 / 1 MiB are kept (escaped), never dropped
    assert sockets[0] == socket_markup.decode("utf-8", "backslashreplace")
    assert sockets[1] == "\0" * MIB and socket[0] == "\0" * MIB  # the 1 MiB field, NUL bytes and all
    with load.connect_read(db) as con:  # the good task is whole: created and responded
        assert con.execute("SELECT count(*), count(responded_block) FROM tasks").fetchone() == (1, 1)


# ---- the decoder over random bytes ------------------------------------------------------------------------------

TOPIC0S = [lay.topic0 for lay in abi.LAYOUTS]


def _log(i: int, topics: list[str], data: bytes) -> dict:
    return {
        "address": "0x" + "ee" * 20,
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": hex(i),
        "blockTimestamp": "0x6553f100",
    }


topic = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
hostile_log = st.tuples(
    st.sampled_from(TOPIC0S),
    st.lists(topic, max_size=4),
    st.one_of(
        st.binary(max_size=2048),
        # ABI-shaped garbage: words that look like offsets and lengths
        st.lists(st.sampled_from([0, 1, 32, 64, 96, 2**31, 2**255, 2**256 - 1]), max_size=40).map(
            lambda ws: b"".join(w.to_bytes(32, "big") for w in ws)
        ),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_log, min_size=1, max_size=8), st.integers(0, 8))
def test_decoder_fuzz_never_raises_and_never_loses_a_log(hostile, where):
    good = emitter.sample_task_logs(3, b"package t\n", "0x" + "aa" * 20, "0x" + "bb" * 20, [b"o"])
    alone = decode.decode_logs([_log(0, t, d) for t, d in good], 31337)
    logs = [(t0, [t0, *more], data) for t0, more, data in hostile]
    where = min(where, len(logs))
    mixed = [(ts, d) for _, ts, d in logs[:where]] + good + [(ts, d) for _, ts, d in logs[where:]]
    out = decode.decode_logs([_log(i, t, d) for i, (t, d) in enumerate(mixed)], 31337)
    # every log is a row or an undecodable row (all topic0s are known): none lost, none doubled
    assert out.count == len(mixed) and out.skipped == 0
    # the good logs decode exactly as they do alone (only their log index differs)
    idx = {table: [c.name for c in decode.TABLES[table]].index("log_index") for table in out.rows}
    good_rows = {
        table: [
            [v for k, v in enumerate(r) if k != idx[table]]
            for r in rows
            if r[idx[table]] in range(where, where + len(good))
        ]
        for table, rows in out.rows.items()
    }
    for table, rows in alone.rows.items():
        i = [c.name for c in decode.TABLES[table]].index("log_index")
        assert [[v for k, v in enumerate(r) if k != i] for r in rows] == good_rows[table]
    for u in out.undecodable:
        assert u[6] == "0x" + mixed[u[2]][1].hex() and isinstance(u[7], str) and u[7]  # raw data and a reason
