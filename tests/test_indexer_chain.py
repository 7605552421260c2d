"""Indexer against a real anvil: counts, field round trips, idempotence, undecodable logs, bad deployments, RPC faults,
crash-resume (kill -9), reorgs, and follow mode with a concurrent reader."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from eth_abi import encode
from rpc_proxy import FaultyProxy
from test_indexer_unit import reference_columns

from app.errors import LensError
from devnet import emitter
from indexer import abi, decode, load
from indexer.deployment import parse
from indexer.run import Indexer, IndexOptions, index
from indexer.status import summary

ROOT = Path(__file__).resolve().parent.parent
LENS = [str(ROOT / ".venv" / "bin" / "lens")]
pytestmark = pytest.mark.xdist_group("indexer_chain")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def rand_value(rng: random.Random, type_: str, depth: int = 0):
    """A deterministic pseudo-random eth-abi value of a (struct or ABI) type."""
    elem, suffix = abi.split_array(type_)
    if suffix:
        n = rng.randint(0, 2 if depth < 2 else 1) if suffix == "[]" else int(suffix[1:-1])
        return [rand_value(rng, elem, depth + 1) for _ in range(n)]
    if type_ in abi.STRUCTS:
        return tuple(rand_value(rng, t, depth + 1) for _, t in abi.STRUCTS[type_])
    if type_ == "address":
        return "0x" + rng.randbytes(20).hex()
    if type_ == "bool":
        return rng.random() < 0.5
    if type_ == "string":
        return "".join(rng.choice("abcé€ xyz") for _ in range(rng.randint(0, 12)))
    if type_ == "bytes":
        return rng.randbytes(rng.randint(0, 70))
    if type_.startswith("bytes"):
        return rng.randbytes(int(type_[5:]))
    bits = int(type_.lstrip("uint") or 256)
    return rng.choice([0, 1, 2**bits - 1, rng.getrandbits(bits)])


def layout_values(rng: random.Random, lay: abi.EventLayout) -> dict:
    return {p.name: rand_value(rng, p.type) for p in lay.params}


def deployment_for(url: str, chain_id: int, emitter_addr: str, start: int, **extra) -> object:
    doc = {
        "name": "test",
        "chain_id": chain_id,
        "rpc_url": url,
        "start_block": start,
        "confirmations": 0,
        "contracts": {"taskManager": emitter_addr},
    }
    doc.update(extra)
    return parse(doc)


def head(url: str) -> int:
    return int(emitter.rpc(url, "eth_blockNumber", []), 16)


def snapshot(db: str, address: str | None = None) -> dict:
    """Every row of every raw and derived table (bookkeeping excluded), sorted — for equality between runs."""
    out = {}
    with load.connect_read(db) as con:
        for table in list(decode.TABLES) + [
            "undecodable_logs",
            "tasks",
            "task_signers",
            "operators",
            "operator_stakes",
            "policies",
            "policy_versions",
            "challenges",
            "blobs",
        ]:
            where = f" WHERE address = '{address}'" if address and table in decode.TABLES else ""
            rows = con.execute(f"SELECT * FROM {table}{where}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


FAST = dict(retries=8, backoff_s=0.01, rpc_timeout_s=10.0, metadata_timeout_s=0.2)


# ---------------------------------------------------------------------------------------------
# a module-wide chain: every layout of every event emitted once with random values, plus bad logs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emitted(anvil):
    rng = random.Random(4)
    em = emitter.deploy(anvil.url)
    start = head(anvil.url)
    expected: list[tuple[abi.EventLayout, dict]] = []
    logs = []
    for lay in abi.LAYOUTS:
        for _ in range(2):
            vals = layout_values(rng, lay)
            expected.append((lay, vals))
            logs.append(emitter.encode_event(lay.topic0, vals))
    receipts = []
    for i in range(0, len(logs), 40):
        receipts.append(emitter.emit_many(anvil.url, em, logs[i : i + 40]))
    # known topic0, undecodable data: truncated NewTaskCreated, TaskResponded with a bad offset, wrong topic count
    t_new, t_resp = abi.topic0_of("NewTaskCreated"), abi.topic0_of("TaskResponded")
    bad = [
        ([t_new, "0x" + "00" * 32], b"\x00" * 40),
        ([t_resp], (2**200).to_bytes(32, "big") * 3),
        ([abi.topic0_of("OperatorStakeUpdate")], encode(["uint8", "uint96"], [0, 5])),
    ]
    bad_receipt = emitter.emit_many(anvil.url, em, bad)
    return {
        "emitter": em,
        "start": start,
        "end": head(anvil.url),
        "expected": expected,
        "bad": bad,
        "bad_receipt": bad_receipt,
        "receipts": receipts,
    }


@pytest.fixture(scope="module")
def indexed(anvil, emitted, tmp_path_factory):
    db = str(tmp_path_factory.mktemp("ix") / "lens.duckdb")
    dep = deployment_for(anvil.url, anvil.chain_id, emitted["emitter"], emitted["start"])
    st = index(dep, IndexOptions(db=db, end=emitted["end"], **FAST))
    return db, dep, st


def test_counts_per_event_type_equal_what_was_emitted(indexed, emitted):
    db, _, st = indexed
    want: dict[str, int] = {}
    for lay, _ in emitted["expected"]:
        want[lay.table] = want.get(lay.table, 0) + 1
    with load.connect_read(db) as con:
        for table in decode.TABLES:
            n = con.execute(f"SELECT count(*) FROM {table} WHERE address = ?", [emitted["emitter"]]).fetchone()[0]
            assert n == want.get(table, 0), table
        s = summary(con)
    assert s["undecodable"] == 3
    assert s["last_block"] == emitted["end"]
    assert st.undecodable == 3 and st.rows == len(emitted["expected"])


def test_every_field_round_trips_through_duckdb(indexed, emitted):
    """Each emitted log's row (paired by emission order within its layout) equals the values it was emitted with."""
    db, _, _ = indexed
    per_layout: dict[str, list[dict]] = {}
    for lay, vals in emitted["expected"]:
        per_layout.setdefault(lay.topic0, []).append(vals)
    with load.connect_read(db) as con:
        blobs = dict(con.execute("SELECT hash, content FROM blobs").fetchall())
        for lay in abi.LAYOUTS:
            cols = [c.name for c in decode.TABLES[lay.table]]
            rows = con.execute(
                f"SELECT * FROM {lay.table} WHERE address = ? AND topic0 = ? ORDER BY block_number, log_index",
                [emitted["emitter"], lay.topic0],
            ).fetchall()
            sent = per_layout.get(lay.topic0, [])
            assert len(rows) == len(sent), f"{lay.event}/{lay.layout}: {len(rows)} rows for {len(sent)} logs"
            for k, (row, vals) in enumerate(zip(rows, sent)):
                got = dict(zip(cols, row))
                assert got["layout"] == lay.layout
                for p in lay.params:
                    prefix = abi.snake(p.name)
                    prefix = "ev_" + prefix if prefix in {c.name for c in decode.COMMON} else prefix
                    for col, want in reference_columns(prefix, p.type, vals[p.name]).items():
                        have = got[col]
                        if col == "task_response_policy_task_data_policy" and have is None:
                            have = "0x" + blobs[got["policy_code_hash"]].encode().hex()  # the source lives in blobs
                        if isinstance(want, (list, dict)):
                            have = json.loads(have)
                        assert have == want, f"{lay.event}/{lay.layout} log #{k}: {col} = {have!r}, emitted {want!r}"


def test_undecodable_logs_are_stored_raw_with_their_error(indexed, emitted):
    db, _, _ = indexed
    with load.connect_read(db) as con:
        rows = con.execute(
            "SELECT topic0, data, error, tx_hash FROM undecodable_logs WHERE address = ? ORDER BY log_index",
            [emitted["emitter"]],
        ).fetchall()
    assert [r[0] for r in rows] == [t[0] for t, _ in emitted["bad"]]
    assert [r[1] for r in rows] == ["0x" + d.hex() for _, d in emitted["bad"]]
    assert all(r[2] for r in rows)
    assert {r[3] for r in rows} == {emitted["bad_receipt"]["transactionHash"]}


def test_reindexing_a_range_changes_nothing(indexed, emitted, anvil, monkeypatch, tmp_path):
    db, dep, _ = indexed
    before = snapshot(db, emitted["emitter"])
    index(dep, IndexOptions(db=db, start=emitted["start"], end=emitted["end"], **FAST))
    # the worker-process path gives the same rows
    index(dep, IndexOptions(db=db, start=emitted["start"], end=emitted["end"], worker_min_blocks=1, **FAST))
    db2 = str(tmp_path / "worker.duckdb")
    index(dep, IndexOptions(db=db2, end=emitted["end"], worker_min_blocks=1, **FAST))
    assert snapshot(db2, emitted["emitter"]) == before
    index(dep, IndexOptions(db=db, start=emitted["start"] + 2, end=emitted["end"] - 1, **FAST))
    assert snapshot(db, emitted["emitter"]) == before


def test_index_status_json_reports_rows_undecodable_and_last_block(indexed, emitted):
    db, _, _ = indexed
    out = subprocess.run(
        LENS + ["index", "status", "--db", db, "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["undecodable"] == 3 and doc["last_block"] == emitted["end"]
    assert doc["rows"]["NewTaskCreated"] >= 14 and doc["rows"]["TaskResponded"] >= 12


def test_faulty_rpc_gives_identical_rows(indexed, emitted, anvil, tmp_path):
    db, dep, _ = indexed
    proxy = FaultyProxy(
        anvil.url, faults=("429", "timeout", "503", "drop", "garbage"), every=2, max_range=4, delay_s=3.0
    )
    try:
        db2 = str(tmp_path / "faulty.duckdb")
        ix = Indexer(
            dep,
            IndexOptions(
                db=db2, rpc_url=proxy.url, end=emitted["end"], batch_blocks=50, **{**FAST, "rpc_timeout_s": 2.0}
            ),
        )
        ix.run()
    finally:
        proxy.close()
    assert {"429", "503", "timeout", "drop", "garbage", "too_many"} <= set(proxy.injected)
    assert ix.rpc.stats.retries >= 5 and ix.rpc.stats.splits >= 1
    assert snapshot(db2, emitted["emitter"]) == snapshot(db, emitted["emitter"])


def test_deployment_with_wrong_address_or_chain_is_a_clear_error(anvil, emitted, tmp_path):
    nowhere = "0x" + "de" * 20
    dep = deployment_for(anvil.url, anvil.chain_id, nowhere, 0)
    with pytest.raises(LensError, match="no contract code .* taskManager"):
        index(dep, IndexOptions(db=str(tmp_path / "a.duckdb"), **FAST))
    dep = deployment_for(anvil.url, 999, emitted["emitter"], 0)
    with pytest.raises(LensError, match="chain id mismatch"):
        index(dep, IndexOptions(db=str(tmp_path / "b.duckdb"), **FAST))
    path = tmp_path / "wrong.json"
    path.write_text(
        json.dumps(
            {"name": "w", "chain_id": 999, "rpc_url": anvil.url, "contracts": {"taskManager": emitted["emitter"]}}
        )
    )
    out = subprocess.run(
        LENS + ["index", "--deployment", str(path), "--db", str(tmp_path / "c.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "chain id mismatch" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# chains of their own: crash-resume, reorg, follow
# ---------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Direct children of a process (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def start_follower(dep_file: Path, db: str) -> subprocess.Popen:
    """`lens index --follow` of a deployment file into a DB, as a user starts it (stop it with stop_follower)."""
    return subprocess.Popen(
        LENS + ["index", "--deployment", str(dep_file), "--db", db, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_follower(proc: subprocess.Popen) -> str:
    """Stop a `lens index --follow` as Ctrl-C does (killed if it hangs); its stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


def _fill(url: str, em: str, n_tasks: int, first: int = 0, per_tx: int = 8, tag: bytes = b"") -> None:
    src = b"package t\ndefault allow := false\n" + tag
    for i in range(first, first + n_tasks, per_tx):
        logs = []
        for k in range(i, min(i + per_tx, first + n_tasks)):
            logs += emitter.sample_task_logs(k, src, "0x" + "aa" * 20, "0x" + "bb" * 20, [b"op"])
        emitter.emit_many(url, em, logs)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_rows_of_an_uninterrupted_run(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    _fill(url, em, 600, per_tx=3)
    end = head(url)
    dep_file = tmp_path / "dep.json"
    dep_file.write_text(
        json.dumps(
            {
                "name": "crash",
                "chain_id": fresh_anvil.chain_id,
                "rpc_url": url,
                "start_block": start,
                "confirmations": 0,
                "contracts": {"taskManager": em},
            }
        )
    )
    db = str(tmp_path / "crash.duckdb")
    slow = FaultyProxy(url, faults=("slow",), every=1, delay_s=0.2)  # a slow node, so the run lasts long enough
    env = dict(
        os.environ,
        LENS_BATCH_BLOCKS="1",
        LENS_INDEX_COMMIT_LOGS="60",
        LENS_INDEX_COMMIT_S="0.05",
        LENS_INDEX_WORKER_MIN_BLOCKS="1",
    )  # the worker-process path, whose children must not outlive a kill -9
    proc = subprocess.Popen(
        LENS + ["index", "--deployment", str(dep_file), "--db", db, "--to", str(end), "--rpc", slow.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(db).exists():
                try:
                    with load.connect_read(db, timeout_s=2) as con:
                        rows = con.execute("SELECT min(last_block) FROM checkpoints").fetchone()
                except (LensError, duckdb.Error):
                    rows = None
                if rows and rows[0] is not None and start < rows[0] < end:
                    children = _children(proc.pid)
                    proc.send_signal(signal.SIGKILL)
                    killed_at = rows[0]
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        slow.close()
    assert killed_at is not None, "the indexer finished before it could be killed"
    assert children, "the indexer had no worker process"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() and _state(c) != "Z" for c in children):
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists() and _state(c) != "Z"], (
        "orphaned workers left running"
    )
    with load.connect_read(db) as con:
        assert con.execute("SELECT min(last_block) FROM checkpoints").fetchone()[0] < end
    out = subprocess.run(
        LENS + ["index", "--deployment", str(dep_file), "--db", db, "--to", str(end)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    ref = str(tmp_path / "ref.duckdb")
    index(parse(json.loads(dep_file.read_text())), IndexOptions(db=ref, end=end, **FAST))
    a, b = snapshot(db), snapshot(ref)
    assert a == b
    assert len(a["tasks"]) == 600


def test_reorg_rolls_back_to_the_fork_point_and_reindexes(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    _fill(url, em, 10, first=0, per_tx=2)  # common history
    snap = emitter.rpc(url, "evm_snapshot", [])
    _fill(url, em, 12, first=100, per_tx=3, tag=b"A")  # branch A (4 blocks)
    dep = deployment_for(url, fresh_anvil.chain_id, em, start)
    db = str(tmp_path / "reorg.duckdb")
    index(dep, IndexOptions(db=db, **FAST))
    with load.connect_read(db) as con:
        assert con.execute("SELECT count(*) FROM tasks").fetchone()[0] == 22
    assert emitter.rpc(url, "evm_revert", [snap])
    _fill(url, em, 15, first=200, per_tx=3, tag=b"B")  # branch B (5 blocks, same heights + 1)
    ix = Indexer(dep, IndexOptions(db=db, **FAST))
    ix.run()
    assert ix.stats.reorgs == 1
    ref = str(tmp_path / "ref.duckdb")
    index(dep, IndexOptions(db=ref, **FAST))
    assert snapshot(db) == snapshot(ref)
    with load.connect_read(db) as con:
        ids = {r[0] for r in con.execute("SELECT task_id FROM tasks").fetchall()}
        assert len(ids) == 25
        sources = {r[0] for r in con.execute("SELECT content FROM blobs").fetchall()}
    assert not any(s.endswith("A") for s in sources)


def test_follow_mode_with_a_concurrent_reader(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    _fill(url, em, 4)
    dep_file = tmp_path / "dep.json"
    dep_file.write_text(
        json.dumps(
            {
                "name": "follow",
                "chain_id": fresh_anvil.chain_id,
                "rpc_url": url,
                "start_block": start,
                "confirmations": 0,
                "contracts": {"taskManager": em},
            }
        )
    )
    db = str(tmp_path / "follow.duckdb")
    proc = start_follower(dep_file, db)

    def tasks() -> int:
        if not Path(db).exists():
            return -1
        try:
            with load.connect_read(db, timeout_s=10) as con:
                return con.execute("SELECT count(*) FROM tasks").fetchone()[0]
        except (LensError, duckdb.CatalogException):
            return -1

    try:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and tasks() < 4:
            time.sleep(0.1)
        seen.append(tasks())
        for round_ in range(3):
            _fill(url, em, 2, first=1000 + 10 * round_)
            want = 4 + 2 * (round_ + 1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and tasks() < want:
                time.sleep(0.05)  # readers poll hard: the writer must still get its turns
            seen.append(tasks())
        assert seen == [4, 6, 8, 10]
    finally:
        err = stop_follower(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_operator_metadata_fetched_in_the_background_with_errors_recorded(anvil, tmp_path):
    import http.server
    import threading

    doc = {
        "name": "Op One",
        "organisation": "Org",
        "country": "NL",
        "city": "Amsterdam",
        "latitude": 52.37,
        "longitude": 4.9,
        "provider": "AWS",
        "region": "eu-west-1",
        "asn": "AS16509",
        "client_version": "1.0",
    }
    (tmp_path / "op.json").write_text(json.dumps(doc))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        em = emitter.deploy(anvil.url)
        start = head(anvil.url)
        ops = [
            ("0x" + "a1" * 20, f"http://127.0.0.1:{server.server_address[1]}/op.json"),
            ("0x" + "a2" * 20, "http://127.0.0.1:9/missing.json"),
            ("0x" + "a3" * 20, "data:application/json,not-json"),
        ]
        logs = []
        for i, (op, uri) in enumerate(ops):
            oid = bytes([i + 1]) * 32
            logs.append(emitter.encode_event(abi.topic0_of("OperatorRegistered"), {"operator": op, "operatorId": oid}))
            logs.append(
                emitter.encode_event(abi.topic0_of("OperatorMetadataURIUpdated"), {"operator": op, "metadataURI": uri})
            )
        emitter.emit_many(anvil.url, em, logs)
        db = str(tmp_path / "meta.duckdb")
        index(
            deployment_for(anvil.url, anvil.chain_id, em, start),
            IndexOptions(db=db, **{**FAST, "metadata_timeout_s": 5}, metadata_allow_private=True),  # 127.0.0.1
        )
        with load.connect_read(db) as con:
            rows = {
                r[0]: r[1:]
                for r in con.execute(
                    "SELECT operator, name, country, latitude, client_version, metadata_error FROM operators"
                ).fetchall()
            }
        assert rows[ops[0][0]] == ("Op One", "NL", 52.37, "1.0", None)
        assert rows[ops[1][0]][0] is None and rows[ops[1][0]][-1]
        assert rows[ops[2][0]][0] is None and rows[ops[2][0]][-1]
    finally:
        server.shutdown()


def test_allowed_task_expires_when_the_head_passes_its_response_expire_block(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    logs = emitter.sample_task_logs(
        1, b"package t\n", "0x" + "aa" * 20, "0x" + "bb" * 20, [b"op"]
    )  # allow, expires at 301
    logs = [lg for lg in logs if lg[0][0] != abi.topic0_of("AttestationSpent")]
    emitter.emit_many(url, em, logs)
    dep = deployment_for(url, fresh_anvil.chain_id, em, start)
    db = str(tmp_path / "exp.duckdb")
    index(dep, IndexOptions(db=db, **FAST))
    with load.connect_read(db) as con:
        assert con.execute("SELECT status, allow, response_expire_block FROM tasks").fetchall() == [
            ("allowed", True, 301)
        ]
    emitter.rpc(url, "anvil_mine", [hex(301 - head(url))])  # head = 301: the contract rejects at block >= expiry
    index(dep, IndexOptions(db=db, **FAST))
    with load.connect_read(db) as con:
        assert con.execute("SELECT status FROM tasks").fetchall() == [("expired",)]
