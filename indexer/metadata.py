"""Operator metadata documents from data:, https: and ipfs: URIs — fetched in the background, cached, errors recorded."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Fetched:
    """The outcome of fetching one metadata URI."""

    uri: str
    fetched_at: datetime
    ok: bool
    content: str | None
    error: str | None


def parse_data_uri(uri: str) -> bytes:
    """The payload of a data: URI (base64 or percent-encoded)."""
    if not uri.startswith("data:") or "," not in uri:
        raise ValueError("malformed data: URI")
    head, payload = uri[5:].split(",", 1)
    if head.endswith(";base64"):
        return base64.b64decode(payload, validate=False)
    return urllib.parse.unquote_to_bytes(payload)


def http_url(uri: str, ipfs_gateway: str) -> str:
    """The HTTP(S) URL to GET for an https:, http: or ipfs: URI."""
    if uri.startswith("ipfs://"):
        path = uri[len("ipfs://") :]
        if path.startswith("ipfs/"):
            path = path[5:]
        return ipfs_gateway.rstrip("/") + "/" + path
    if uri.startswith(("https://", "http://")):
        return uri
    raise ValueError(f"unsupported URI scheme: {uri.split(':', 1)[0]!r}")


def validate(raw: bytes) -> str:
    """The document as text if it is a JSON object (else ValueError)."""
    text = raw.decode("utf-8")
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("metadata is not a JSON object")
    return text


def fetch(uri: str, timeout_s: float = 5.0, ipfs_gateway: str = "https://ipfs.io/ipfs/") -> Fetched:
    """Fetch and validate one metadata document; never raises (errors are recorded in the result)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        if uri.startswith("data:"):
            raw = parse_data_uri(uri)
        else:
            resp = requests.get(http_url(uri, ipfs_gateway), timeout=timeout_s, stream=True)
            resp.raise_for_status()
            raw = resp.raw.read(MAX_BYTES + 1, decode_content=True)
            if len(raw) > MAX_BYTES:
                raise ValueError(f"metadata larger than {MAX_BYTES} bytes")
        return Fetched(uri, now, True, validate(raw), None)
    except Exception as e:
        return Fetched(uri, now, False, None, f"{type(e).__name__}: {e}"[:500])


class MetadataFetcher:
    """Background fetches (never block indexing); the indexer drains finished results into its next transaction."""

    def __init__(self, timeout_s: float = 5.0, ipfs_gateway: str = "https://ipfs.io/ipfs/", workers: int = 4) -> None:
        self.timeout_s = timeout_s
        self.ipfs_gateway = ipfs_gateway
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lens-metadata")
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, uris: list[str]) -> None:
        """Start fetching URIs not already in flight."""
        with self._lock:
            for u in uris:
                if u and u not in self._pending:
                    self._pending[u] = self._pool.submit(fetch, u, self.timeout_s, self.ipfs_gateway)

    def drain(self, wait_s: float = 0.0) -> list[Fetched]:
        """Finished results (waiting up to wait_s for the rest)."""
        with self._lock:
            futures = dict(self._pending)
        if wait_s > 0 and futures:
            wait(list(futures.values()), timeout=wait_s)
        done = []
        with self._lock:
            for u, f in list(self._pending.items()):
                if f.done():
                    done.append(f.result())
                    del self._pending[u]
        return done

    @property
    def pending(self) -> int:
        """Fetches still in flight."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Stop the worker threads (in-flight fetches are abandoned)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
