"""Hostile operator metadata, served by a 127.0.0.1 server the test starts: URIs that hang, trickle, redirect
forever, return 100 MB, non-JSON, HTML with <script>; an ipfs:// gateway that is down. Each fetch is bounded in time
and bytes, its error recorded, the index unharmed; a one-shot `lens index` ends with every fetch recorded (a hanging
URI as timed out, never "not fetched yet"); markup is kept as text and nothing is rendered as HTML."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from reliability_support import FAST, deployment, head

from devnet import emitter
from indexer import abi, load, metadata
from indexer.metadata import MAX_BYTES, MAX_REDIRECTS
from indexer.run import IndexOptions, index

pytestmark = pytest.mark.xdist_group("reliability_metadata")
ROOT = Path(__file__).resolve().parents[2]

GOOD = {"name": "Op Good", "country": "NL", "client_version": "1.2"}
SCRIPT_NAME = "<script>alert('x')</script><img src=x onerror=alert(1)>"


class Hostile(BaseHTTPRequestHandler):
    """Each path is one way a metadata host can misbehave."""

    release: threading.Event
    sent: dict

    def log_message(self, *a) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        p = self.path
        try:
            if p == "/good.json":
                return self._send(200, json.dumps(GOOD).encode())
            if p == "/script.json":  # valid JSON whose strings are markup: kept as text
                return self._send(200, json.dumps({"name": SCRIPT_NAME, "city": "<b>x</b>"}).encode())
            if p == "/hang":  # accepts, never answers
                self.release.wait(60)
                return None
            if p == "/trickle":  # answers, then one byte at a time, forever
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"name": "')
                while not self.release.wait(0.05):
                    self.wfile.write(b"a")
                    self.wfile.flush()
                return None
            if p.startswith("/redirect/"):  # redirects forever
                n = int(p.rsplit("/", 1)[1])
                self.sent["redirects"] = max(self.sent.get("redirects", 0), n)
                return self._send(302, b"", extra={"Location": f"/redirect/{n + 1}"})
            if p in ("/huge", "/huge-declared"):  # 100 MB of a JSON-looking string
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if p == "/huge-declared":
                    self.send_header("Content-Length", str(100 * 2**20))
                self.end_headers()
                self.wfile.write(b'{"name": "')
                chunk = b"x" * 65536
                for _ in range(100 * 16):
                    self.wfile.write(chunk)
                    self.sent[p] = self.sent.get(p, 0) + len(chunk)
                return None
            if p == "/text":
                return self._send(200, b"hello, not json", "text/plain")
            if p == "/html":
                return self._send(200, b"<html><body><script>alert(1)</script></body></html>", "text/html")
            if p == "/array.json":
                return self._send(200, b"[1, 2, 3]")
            return self._send(404, b"{}")
        except (BrokenPipeError, ConnectionResetError):
            self.sent.setdefault("hung_up", []).append(p)  # the client gave up: what a bounded fetch does


@pytest.fixture()
def server():
    release = threading.Event()
    handler = type("H", (Hostile,), {"release": release, "sent": {}})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler.sent
    finally:
        release.set()
        srv.shutdown()
        srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hostile_metadata_is_bounded_recorded_and_kept_as_text(fresh_anvil, server, tmp_path):
    base, sent = server
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    uris = {
        "good": f"{base}/good.json",
        "script": f"{base}/script.json",
        "hang": f"{base}/hang",
        "trickle": f"{base}/trickle",
        "redirect": f"{base}/redirect/0",
        "huge": f"{base}/huge",
        "huge_declared": f"{base}/huge-declared",
        "text": f"{base}/text",
        "html": f"{base}/html",
        "array": f"{base}/array.json",
        "ipfs_down": "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "data_html": "data:text/html,<script>alert(1)</script>",
    }
    ops = {name: "0x" + bytes([i + 1]).hex() * 20 for i, name in enumerate(uris)}
    logs = []
    for i, (name, uri) in enumerate(uris.items()):
        op = ops[name]
        logs.append(
            emitter.encode_event(
                abi.topic0_of("OperatorRegistered"), {"operator": op, "operatorId": bytes([i + 1]) * 32}
            )
        )
        logs.append(
            emitter.encode_event(abi.topic0_of("OperatorMetadataURIUpdated"), {"operator": op, "metadataURI": uri})
        )
    emitter.emit_many(url, em, logs)
    end = head(url)
    db = str(tmp_path / "meta.duckdb")
    gateway = f"http://127.0.0.1:{_closed_port()}/ipfs/"
    # the hostile hosts are on 127.0.0.1: allowed here (the default refuses them, see the next test)
    opts = IndexOptions(
        db=db, end=end, **{**FAST, "metadata_timeout_s": 1.0}, ipfs_gateway=gateway, metadata_allow_private=True
    )
    st_ = index(deployment(url, fresh_anvil.chain_id, em, start), opts)

    with load.connect_read(db) as con:
        rows = {
            r[0]: r[1:] for r in con.execute("SELECT operator, name, city, metadata_error FROM operators").fetchall()
        }
        fetched = dict(con.execute("SELECT uri, error FROM operator_metadata").fetchall())
        raw = con.execute("SELECT count(*) FROM ev_operator_metadata_uri_updated").fetchone()[0]
    by = {name: rows[op] for name, op in ops.items()}
    # the index is unharmed: every log stored, none undecodable
    assert raw == len(uris) and st_.undecodable == 0 and st_.logs == len(logs)
    # every URI was fetched and recorded in this one-shot run: nothing left "not fetched yet"
    assert set(fetched) == set(uris.values())
    assert all(r[-1] != "not fetched yet" for r in rows.values())
    assert by["good"] == ("Op Good", None, None)
    # markup in a valid document is kept as text, byte for byte (the pages escape it)
    assert by["script"] == (SCRIPT_NAME, "<b>x</b>", None)
    # bounded in time: the hanging and the trickling host end as timed out
    assert by["hang"][-1] == "timed out after 1 s" and by["trickle"][-1] == "timed out after 1 s"
    # bounded in redirects
    assert f"more than {MAX_REDIRECTS} redirects" in by["redirect"][-1]
    assert sent["redirects"] == MAX_REDIRECTS
    # bounded in bytes: refused at MAX_BYTES (or at the declared length), far from the 100 MB on offer
    assert f"larger than {MAX_BYTES} bytes" in by["huge"][-1] and f"larger than {MAX_BYTES}" in by["huge_declared"][-1]
    assert sent.get("/huge", 0) < 100 * 2**20 and sent.get("/huge-declared", 0) < 100 * 2**20
    # not JSON / not an object / HTML: an error, no content kept
    for name in ("text", "html", "array", "data_html"):
        assert by[name][0] is None and by[name][-1], name
    assert "<script>" not in by["html"][-1]  # the error says what is wrong, it does not echo the page
    # the ipfs gateway is down: a connection error, recorded
    assert by["ipfs_down"][0] is None and "Connection" in by["ipfs_down"][-1]
    with load.connect_read(db) as con:
        assert con.execute("SELECT count(*) FROM operator_metadata WHERE content IS NOT NULL").fetchone()[0] == 2


def test_by_default_a_uri_inside_the_network_is_refused_before_its_body_is_read(fresh_anvil, server, tmp_path):
    """A metadata URI is chosen by whoever registers an operator: by default it cannot make the indexer read a
    service inside its network (loopback here; private and link-local addresses — cloud metadata — likewise)."""
    base, sent = server
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    op = "0x" + "c1" * 20
    uri = f"{base}/huge"  # were it read, the server would count the bytes it sent
    emitter.emit_many(
        url,
        em,
        [
            emitter.encode_event(abi.topic0_of("OperatorRegistered"), {"operator": op, "operatorId": b"\x0c" * 32}),
            emitter.encode_event(abi.topic0_of("OperatorMetadataURIUpdated"), {"operator": op, "metadataURI": uri}),
        ],
    )
    db = str(tmp_path / "private.duckdb")
    index(deployment(url, fresh_anvil.chain_id, em, start), IndexOptions(db=db, **FAST))
    with load.connect_read(db) as con:
        ok, content, error = con.execute("SELECT ok, content, error FROM operator_metadata").fetchone()
    assert not ok and content is None
    assert error.startswith("ValueError: refused: 127.0.0.1 is at 127.0.0.1, an address inside the network")
    assert "LENS_METADATA_ALLOW_PRIVATE=true" in error
    assert "/huge" not in sent  # refused before any request was sent
    # the cloud metadata endpoint and private ranges alike (IP literals: no packet leaves, no DNS query is made)
    for host in ("169.254.169.254", "10.1.2.3", "192.168.0.1", "[::1]", "0.0.0.0"):
        f = metadata.fetch(f"http://{host}/latest/meta-data/iam/security-credentials/", timeout_s=1.0)
        assert not f.ok and "an address inside the network" in f.error, (host, f.error)


def test_a_host_name_that_does_not_resolve_in_time_is_a_timeout(monkeypatch):
    """DNS is bounded too: a resolver that does not answer (stood in for by a getaddrinfo that blocks; no query
    leaves the machine) ends the fetch as timed out."""
    release = threading.Event()

    def stuck(*a, **kw):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(metadata.socket, "getaddrinfo", stuck)
    try:
        f = metadata.fetch("https://metadata.operator.invalid/op.json", timeout_s=0.3)
    finally:
        release.set()
    assert not f.ok and f.error == "timed out after 0.3 s"


def test_nothing_on_the_pages_is_rendered_as_html():
    """On-chain and fetched strings reach the browser as text: no page or app module opts into raw HTML."""
    offenders = []
    for path in [ROOT / "streamlit_app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "app").rglob("*.py")]:
        text = path.read_text()
        if re.search(r"unsafe_allow_html\s*=\s*True|st\.html\(|components\.v1\.html|components\.html\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
