"""A hostile RPC between the indexer and a real anvil: resets, 429 with Retry-After, 5xx, truncated JSON, wrong ids,
"more than 10000 results", a lagging node, a head going backwards. The run ends with exactly the rows of a clean run
and `lens index status` lists the faults it met; a URL where nothing listens fails at once with a clear message."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import FAST, deployment, fill, head, rpc, snapshot
from rpc_proxy import FaultyProxy

from devnet import emitter
from indexer.errors import LensError
from indexer.extract import Rpc
from indexer.run import Indexer, IndexOptions, index

ROOT = Path(__file__).resolve().parents[2]
LENS = [str(ROOT / ".venv" / "bin" / "lens")]
pytestmark = pytest.mark.xdist_group("reliability_rpc")

FAULTS = (
    "foreign", "reset", "429", "500", "502", "503", "truncated", "spliced", "wrong_id", "lag", "drop", "garbage",
    "timeout",
)  # fmt: skip
LOG_KEYS = ["blockNumber", "logIndex", "blockHash", "transactionHash", "address", "data", "topics", "removed"]
# what `lens index status` calls each injected fault (the indexer's own words, checked against the proxy's tally)
REPORTED = {
    "reset": "connection reset",
    "drop": "connection reset",
    "429": "HTTP 429",
    "500": "HTTP 5xx",
    "502": "HTTP 5xx",
    "503": "HTTP 5xx",
    "truncated": "malformed JSON",
    "garbage": "malformed JSON",
    "wrong_id": "wrong JSON-RPC id",
    "timeout": "timeout",
    "too_many": "too many results",
    "foreign": "log the query did not ask for",
}


@pytest.fixture(scope="module")
def chain(anvil, tmp_path_factory):
    """A range with 30 tasks over 10 blocks, 12 empty blocks above it (room for a lagging node), and its clean index."""
    em = emitter.deploy(anvil.url)
    start = head(anvil.url)
    fill(anvil.url, em, 30, per_tx=3)
    end = head(anvil.url)
    rpc(anvil.url, "anvil_mine", [hex(12)])
    dep = deployment(anvil.url, anvil.chain_id, em, start)
    clean = str(tmp_path_factory.mktemp("clean") / "clean.duckdb")
    index(dep, IndexOptions(db=clean, end=end, **FAST))
    return dep, end, clean


@pytest.mark.parametrize("workers", [False, True], ids=["thread", "worker-processes"])
def test_every_fault_at_once_gives_the_rows_of_a_clean_run_and_status_lists_them(anvil, chain, tmp_path, workers):
    dep, end, clean = chain
    # lag=30: a node that has not yet seen any block of the range (the chain is 22 blocks above its start)
    proxy = FaultyProxy(
        anvil.url, faults=FAULTS, every=2, max_range=1 if workers else 3, delay_s=1.5, lag=30, retry_after="1"
    )  # worker processes fetch chunks of 2 blocks: only a 1-block limit makes them split
    db = str(tmp_path / "hostile.duckdb")
    try:
        tuned = {**FAST, "rpc_timeout_s": 0.7, "worker": workers, "worker_min_blocks": 1}
        ix = Indexer(dep, IndexOptions(db=db, rpc_url=proxy.url, end=end, **tuned))
        ix.run()
    finally:
        proxy.close()
    assert set(FAULTS) | {"too_many"} <= set(proxy.injected), proxy.injected
    assert snapshot(db) == snapshot(clean)
    with_rows = snapshot(db)
    assert len(with_rows["tasks"]) == 30 and len(with_rows["ev_new_task_created"]) == 30
    if not workers:  # one client: Retry-After: 1 was honoured (the proxy measured the pause before the next request)
        assert proxy.after_429 and min(proxy.after_429) >= 0.9, proxy.after_429

    out = subprocess.run(
        LENS + ["index", "status", "--db", db, "--json"], capture_output=True, text=True, timeout=120, check=True
    )
    faults = json.loads(out.stdout)["rpc_faults"]
    for injected, kind in REPORTED.items():
        assert faults.get(kind, 0) >= 1, (injected, kind, faults)
    # a big answer spliced to look whole: the worker processes keep it unparsed, find it broken, fetch it again
    if workers:
        assert faults.get("range changed or broken while fetched", 0) >= proxy.injected["spliced"] >= 1
    # the lagging node: seen as such (no header yet, "beyond head"), never as a reorg
    assert faults.get("node behind", 0) >= 1
    assert ix.stats.reorgs == 0
    if not workers:  # one client: what the indexer counted is exactly what the proxy did to it
        assert faults["connection reset"] == proxy.injected["reset"] + proxy.injected["drop"]
        assert faults["HTTP 429"] == proxy.injected["429"]
        assert faults["wrong JSON-RPC id"] == proxy.injected["wrong_id"]
    text = subprocess.run(
        LENS + ["index", "status", "--db", db, "--rpc", anvil.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    ).stdout
    assert "RPC faults met" in text and "HTTP 429" in text and "wrong JSON-RPC id" in text


def test_following_a_node_whose_head_goes_backwards_and_lags(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    fill(url, em, 6, per_tx=2)
    dep = deployment(url, fresh_anvil.chain_id, em, start)
    proxy = FaultyProxy(url, faults=("backwards", "lag"), every=2, lag=4)
    db = str(tmp_path / "follow.duckdb")
    stop = threading.Event()
    ix = Indexer(dep, IndexOptions(db=db, rpc_url=proxy.url, follow=True, poll_s=0.05, **FAST), stop=stop)
    th = threading.Thread(target=ix.run, daemon=True)
    th.start()
    try:
        for round_ in range(4):  # new tasks arrive while the head answers jump back and forth
            fill(url, em, 4, first=100 + 10 * round_, per_tx=2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (ix.checkpoint or 0) < head(url):
                time.sleep(0.05)
            assert ix.checkpoint == head(url)
        while proxy.injected["backwards"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        th.join(timeout=60)
        proxy.close()
    assert not th.is_alive()
    assert proxy.injected["backwards"] >= 3 and proxy.injected["lag"] >= 1
    assert ix.stats.reorgs == 0 and ix.rpc.stats.faults["head went backwards"] >= 1
    clean = str(tmp_path / "clean.duckdb")
    index(dep, IndexOptions(db=clean, end=ix.checkpoint, **FAST))
    assert snapshot(db) == snapshot(clean)
    assert len(snapshot(db)["tasks"]) == 6 + 16


def test_status_fits_80_columns_and_shows_head_and_lag_or_why_unknown(anvil, chain, tmp_path):
    dep, end, clean = chain
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    text = subprocess.run(
        LENS + ["index", "status", "--db", clean], capture_output=True, text=True, timeout=120, check=True, env=env
    ).stdout
    lines = text.splitlines()
    assert lines and max(len(x) for x in lines) <= 80, "\n".join(x for x in lines if len(x) > 80)
    now = head(anvil.url)
    assert f"indexed to block {end}  head " in text
    reported_head = int(text.split("  head ", 1)[1].split()[0])
    assert now <= reported_head <= head(anvil.url)
    assert f"lag {reported_head - end} blocks" in text
    # a node that is down: the head is unknown, and the status says why
    port = _free_port()
    text = subprocess.run(
        LENS + ["index", "status", "--db", clean, "--rpc", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout
    assert "head unknown: nothing answers at" in text.replace("\n", " ")
    assert max(len(x) for x in text.splitlines()) <= 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_fails_at_once_with_what_to_do(tmp_path):
    port = _free_port()  # bound then closed: nothing listens there now
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(LensError, match=r"nothing answers at http://127\.0\.0\.1:\d+: is the node running\?"):
        Rpc(url, retries=6, backoff=2.0).head()  # with retries, 6 backoffs of 2 s and more would follow
    assert time.monotonic() - t0 < 2.0  # one refused connection, no backoff: far below the first 2 s pause
    dep_file = tmp_path / "dep.json"
    dep_file.write_text(
        json.dumps({"name": "down", "chain_id": 31337, "rpc_url": url, "contracts": {"taskManager": "0x" + "11" * 20}})
    )
    out = subprocess.run(
        LENS + ["index", "--deployment", str(dep_file), "--db", str(tmp_path / "x.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert f"error: nothing answers at {url}: is the node running? (`lens devnet up` for the devnet)" in out.stderr
    assert "Traceback" not in out.stderr and "retries" not in out.stderr
    assert not (tmp_path / "x.duckdb").exists()  # nothing was indexed: no empty DB file left behind


def test_retries_stay_for_a_node_that_answers_then_fails(anvil, tmp_path):
    proxy = FaultyProxy(anvil.url, faults=("503", "503", "reset"), every=1)
    try:
        r = Rpc(proxy.url, retries=2, backoff=0.01)
        with pytest.raises(LensError, match="failed after 2 retries"):
            r.head()
    finally:
        proxy.close()
    assert r.stats.faults == {"HTTP 5xx": 2, "connection reset": 1}


def test_lens_index_says_which_faults_it_got_through(anvil, chain, tmp_path):
    dep, end, clean = chain
    dep_file = tmp_path / "dep.json"
    dep_file.write_text(
        json.dumps(
            {
                "name": dep.name,
                "chain_id": dep.chain_id,
                "rpc_url": dep.rpc_url,
                "start_block": dep.start_block,
                "confirmations": 0,
                "contracts": dep.contracts,
            }
        )
    )
    proxy = FaultyProxy(anvil.url, faults=("503", "429"), every=3, retry_after="0")
    db = str(tmp_path / "cli.duckdb")
    try:
        out = subprocess.run(
            LENS + ["index", "--deployment", str(dep_file), "--db", db, "--rpc", proxy.url, "--to-block", str(end)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        proxy.close()
    assert out.returncode == 0, out.stderr
    assert f"HTTP 429 ×{proxy.injected['429']}, HTTP 5xx ×{proxy.injected['503']}" in out.stdout, out.stdout
    assert snapshot(db) == snapshot(clean)


# ---- any answer at all: the client returns logs or headers of the right shape, or a LensError -------------------


class _Echo:
    """A JSON-RPC server on 127.0.0.1 whose every answer carries `result` (or the raw `body`), under the right id."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.result = None
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reqs = req if isinstance(req, list) else [req]
                out = [{"jsonrpc": "2.0", "id": r["id"], "result": echo.result} for r in reqs]
                body = json.dumps(out if isinstance(req, list) else out[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def echo():
    e = _Echo()
    yield e
    e.server.shutdown()
    e.server.server_close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(["0x", "0x1", "0xzz", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(LOG_KEYS), inner, max_size=8),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=json_values)
def test_any_answer_gives_well_formed_logs_and_headers_or_a_lens_error(echo, result):
    echo.result = result
    rpc_ = Rpc(echo.url, retries=1, backoff=0.0, sleep=lambda s: None)
    try:
        logs = rpc_.get_logs(0, 1, None, ["0x" + "11" * 32])
    except LensError:
        pass
    else:
        assert isinstance(logs, list) and all(set(LOG_KEYS) - {"removed"} <= set(x) for x in logs)
    try:
        headers = rpc_.headers([1])
    except LensError:
        pass
    else:
        assert all(isinstance(h, dict) and h["hash"].startswith("0x") for h in headers.values())
