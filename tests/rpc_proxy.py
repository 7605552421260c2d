"""A faulty JSON-RPC proxy for tests: forwards to a real node and injects 429s, 5xx, timeouts, drops and oversized-range errors."""

from __future__ import annotations

import json
import socket
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
    ) -> None:
        self.upstream = upstream
        self.faults = faults
        self.every = every
        self.max_range = max_range
        self.max_logs = max_logs
        self.delay_s = delay_s
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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            n = self.requests
        if self.every and n % self.every == 0 and self.faults:
            return self.faults[(n // self.every - 1) % len(self.faults)]
        return None

    def _reply(self, h, status: int, payload: bytes, ctype: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def handle(self, h, body: bytes) -> None:
        """Serve one request: maybe a fault, else the upstream answer (range-limited for eth_getLogs)."""
        fault = self._fault()
        if fault:
            self.injected[fault] += 1
            if fault in ("429", "500", "502", "503", "504"):
                return self._reply(h, int(fault), b'{"error":"injected"}')
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
        req = json.loads(body)
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

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
