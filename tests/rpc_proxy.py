"""A faulty JSON-RPC proxy for tests: forwards to a real node and injects what real providers do wrong.

Faults (each names one request's fate): "429" (with `Retry-After`), "500"/"502"/"503"/"504", "timeout" (answers
late with a 504), "slow" (answers correctly, late), "drop" (closes the connection unanswered), "reset" (TCP RST),
"garbage" (an HTML page), "truncated" (half of the real answer), "spliced" (its first half and its last two bytes:
looks whole to a cheap check), "wrong_id" (the real answer under another JSON-RPC
id), "lag" (served by a node `lag` blocks behind: older head, no headers and a "beyond head" error above it),
"backwards" (eth_blockNumber lower than the last one it gave), "foreign" (eth_getLogs answered with extra logs the
query did not ask for: from another address, and from a block past the range). Like a load balancer: the head may come from one node
and the data from another that lags ("lag" serves block and log requests only; it waits for the next such request). Plus provider-style "query returned more than 10000
results" errors for eth_getLogs wider than `max_range` blocks or with more than `max_logs` logs."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class FaultyProxy:
    """Every `every`-th request gets the next fault of `faults` (cycled); eth_getLogs wider than `max_range` blocks
    (or returning more than `max_logs` logs) gets a provider-style "too many results" error."""

    def __init__(
        self,
        upstream: str,
        faults: tuple[str, ...] = ("429", "503", "timeout", "drop", "garbage"),
        every: int = 3,
        max_range: int | None = None,
        max_logs: int | None = None,
        delay_s: float = 2.0,
        lag: int = 3,
        retry_after: str = "1",
    ) -> None:
        self.upstream = upstream
        self.faults = faults
        self.every = every
        self.max_range = max_range
        self.max_logs = max_logs
        self.delay_s = delay_s
        self.lag = lag
        self.retry_after = retry_after
        self.last_head: int | None = None
        self.after_429: list[float] = []  # seconds between a 429 and the next request (is Retry-After honoured?)
        self._t429: float | None = None
        self._deferred: list[str] = []
        self.injected: Counter = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # a client that hung up is not news
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            n = self.requests
            if self._t429 is not None:
                self.after_429.append(time.monotonic() - self._t429)
                self._t429 = None
        if self.every and n % self.every == 0 and self.faults:
            return self.faults[(n // self.every - 1) % len(self.faults)]
        return None

    def _reply(
        self, h, status: int, payload: bytes, ctype: str = "application/json", headers: dict | None = None
    ) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (its timeout is shorter than a "timeout" fault): nothing to answer

    def handle(self, h, body: bytes) -> None:
        """Serve one request: maybe a fault, else the upstream answer (range-limited for eth_getLogs)."""
        fault = self._fault()
        req = json.loads(body)
        methods = {r.get("method") for r in (req if isinstance(req, list) else [req]) if isinstance(r, dict)}
        with self._lock:
            if fault in self._LAG_METHODS and not methods <= set(self._LAG_METHODS[fault]):
                self._deferred.append(fault)  # these faults concern some methods only: the next such request gets it
                fault = None
            elif fault is None:
                fault = next((f for f in self._deferred if methods <= set(self._LAG_METHODS[f])), None)
                if fault:
                    self._deferred.remove(fault)
        if fault == "spliced":  # a big answer cut in the middle, yet ending as a whole one would
            payload = None if self._too_wide(req) else self._forward(body)
            if payload is None or len(payload) <= 8192:
                with self._lock:
                    self._deferred.append(fault)  # only a big answer is kept unparsed by the client: wait for one
                fault = None
            else:
                self.injected[fault] += 1
                return self._reply(h, 200, payload[: len(payload) // 2] + payload[-2:])
        if fault == "foreign":  # logs the query did not ask for: another address, a block past the range
            doc = None if self._too_wide(req) else json.loads(self._forward(body))
            logs = (doc or {}).get("result") or []
            if not logs:
                with self._lock:
                    self._deferred.append(fault)  # nothing to imitate here: the next eth_getLogs gets it
                fault = None
            else:
                self.injected[fault] += 1
                to_block = int(req["params"][0]["toBlock"], 16)
                logs.append(dict(logs[0], address="0x" + "de" * 20, logIndex="0x7fff"))
                logs.append(dict(logs[0], blockNumber=hex(to_block + 1), logIndex="0x7ffe"))
                return self._reply(h, 200, json.dumps(doc).encode())
        if fault:
            self.injected[fault] += 1
            if fault == "429":
                with self._lock:
                    self._t429 = time.monotonic()
                return self._reply(h, 429, b'{"error":"slow down"}', headers={"Retry-After": self.retry_after})
            if fault in ("500", "502", "503", "504"):
                return self._reply(h, int(fault), b'{"error":"injected"}')
            if fault == "reset":  # SO_LINGER 0: close() sends a TCP RST instead of a FIN
                h.close_connection = True
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                h.connection.close()
                return None
            if fault in ("truncated", "wrong_id"):
                payload = self._forward(body)
                if fault == "truncated":
                    return self._reply(h, 200, payload[: len(payload) // 2])
                doc = json.loads(payload)
                for d in doc if isinstance(doc, list) else [doc]:
                    d["id"] = (d.get("id") or 0) + 1000
                return self._reply(h, 200, json.dumps(doc).encode())
            if fault in ("lag", "backwards"):
                return self._reply(h, 200, self._behind(req, fault))
            if fault == "slow":  # a slow node: answer correctly, late
                time.sleep(self.delay_s)
                fault = None
            elif fault == "timeout":
                time.sleep(self.delay_s)
                return self._reply(h, 504, b"late")
            if fault == "drop":
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            if fault == "garbage":
                return self._reply(h, 200, b"<html>bad gateway</html>", "text/html")
        if isinstance(req, dict) and req.get("method") == "eth_getLogs" and self.max_range:
            flt = req["params"][0]
            span = int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1
            if span > self.max_range:
                self.injected["too_many"] += 1
                err = {
                    "jsonrpc": "2.0",
                    "id": req.get("id"),
                    "error": {"code": -32005, "message": "query returned more than 10000 results"},
                }
                return self._reply(h, 200, json.dumps(err).encode())
        resp = requests.post(self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        payload = resp.content
        if isinstance(req, dict) and req.get("method") == "eth_blockNumber":
            self.last_head = int(json.loads(payload)["result"], 16)
        if self.max_logs and isinstance(req, dict) and req.get("method") == "eth_getLogs":
            n = len(json.loads(payload).get("result") or [])
            if n > self.max_logs:
                self.injected["too_many"] += 1
                err = {
                    "jsonrpc": "2.0",
                    "id": req.get("id"),
                    "error": {"code": -32602, "message": "Log response size exceeded."},
                }
                payload = json.dumps(err).encode()
        return self._reply(h, resp.status_code, payload)

    _LAG_METHODS = {
        "lag": ("eth_getBlockByNumber", "eth_getLogs"),
        "backwards": ("eth_blockNumber",),
        "foreign": ("eth_getLogs",),
        "spliced": ("eth_getLogs",),
    }

    def _too_wide(self, req) -> bool:
        if not (isinstance(req, dict) and self.max_range):
            return False
        flt = req["params"][0]
        return int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1 > self.max_range

    def _forward(self, body: bytes) -> bytes:
        return requests.post(self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60).content

    def _behind(self, req, fault: str) -> bytes:
        """The answer of a node `lag` blocks behind the real one (for "backwards": below the last head it gave)."""
        head_req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
        real = int(json.loads(self._forward(head_req))["result"], 16)
        behind = max(0, real - self.lag) if fault == "lag" else max(0, min(real, self.last_head or real) - self.lag)
        if isinstance(req, list):
            return json.dumps([self._behind_one(r, behind) for r in req]).encode()
        return json.dumps(self._behind_one(req, behind)).encode()

    def _behind_one(self, req: dict, behind: int) -> dict:
        rid, method, params = req.get("id"), req["method"], req.get("params") or []
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(behind)}
        if method == "eth_getBlockByNumber" and params and params[0].startswith("0x") and int(params[0], 16) > behind:
            return {"jsonrpc": "2.0", "id": rid, "result": None}
        if method == "eth_getLogs" and int(params[0].get("toBlock", "0x0"), 16) > behind:
            err = {"code": -32000, "message": "block range extends beyond current head block"}
            return {"jsonrpc": "2.0", "id": rid, "error": err}
        return json.loads(self._forward(json.dumps(req).encode()))

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
