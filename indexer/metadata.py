"""Operator metadata documents from data:, https: and ipfs: URIs — fetched in the background, cached, errors recorded.

Every fetch is bounded: in time (one deadline for the whole fetch, redirects included), in bytes (MAX_BYTES, read
without decompression) and in redirects (MAX_REDIRECTS); what comes back must be a JSON object, else the error is
recorded. Nothing fetched is ever rendered as HTML (the pages show text).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

MAX_BYTES = 256 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


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


class FetchTimeout(Exception):
    """The whole fetch (redirects and body included) took longer than its deadline."""


def _resolve(host: str, port: int, timeout_s: float) -> list:
    """getaddrinfo within timeout_s (the resolver's own timeouts can be far longer): a lookup that does not answer
    in time is given up on (its thread ends by itself)."""
    box: dict = {}

    def run() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            box["error"] = e

    th = threading.Thread(target=run, daemon=True, name="lens-resolve")
    th.start()
    th.join(timeout_s)
    if th.is_alive():
        raise FetchTimeout(f"timed out resolving {host!r}")
    if "error" in box:
        raise ValueError(f"cannot resolve {host!r}: {box['error']}")
    return box["infos"]


def _inside_the_network(url: str, timeout_s: float) -> str | None:
    """Why this URL must not be fetched (its host is a loopback, private or link-local address — a hostile URI
    reaching a service inside the indexer's network, such as a cloud metadata endpoint), or None.

    Checked before any request is sent, on every address the host name resolves to."""
    if requests.utils.get_environ_proxies(url):
        return None  # fetched through the configured proxy, which decides what may be reached
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise ValueError(f"bad port in {url!r}: {e}") from None
    for info in _resolve(host, port, timeout_s):
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if (
            ip.is_loopback
            or ip.is_private
            or ip.is_link_local
            or ip.is_unspecified
            or ip.is_multicast
            or ip.is_reserved
        ):
            return f"{host} is at {ip}, an address inside the network"
    return None


def _get_bounded(url: str, timeout_s: float, allow_private: bool = False) -> bytes:
    """GET url following at most MAX_REDIRECTS redirects, reading at most MAX_BYTES, all within timeout_s; a host
    inside the network (the first URL's or a redirect's) is not asked at all unless allow_private."""
    deadline = time.monotonic() + timeout_s
    with requests.Session() as session:
        for _ in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchTimeout(f"timed out after {timeout_s:g} s")
            why = None if allow_private else _inside_the_network(url, left)
            if why:
                raise ValueError(f"refused: {why} (LENS_METADATA_ALLOW_PRIVATE=true allows it)")
            resp = session.get(
                url,
                timeout=(left, left),
                stream=True,
                allow_redirects=False,
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},  # no decompression bombs
            )
            with resp:
                if resp.status_code in _REDIRECTS and resp.headers.get("Location"):
                    url = urllib.parse.urljoin(url, resp.headers["Location"])
                    if not url.startswith(("https://", "http://")):
                        raise ValueError("redirected to a URL that is not http(s)")
                    continue
                resp.raise_for_status()
                if int(resp.headers.get("Content-Length") or 0) > MAX_BYTES:
                    raise ValueError(f"metadata larger than {MAX_BYTES} bytes ({resp.headers['Content-Length']})")
                return _read_bounded(resp, deadline, timeout_s)
    raise ValueError(f"more than {MAX_REDIRECTS} redirects")


def _read_bounded(resp: requests.Response, deadline: float, timeout_s: float) -> bytes:
    """The body, one socket read at a time, each given only the time left (a server trickling bytes cannot hold
    the fetch past its deadline)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchTimeout(f"timed out after {timeout_s:g} s")
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = resp.raw.read1(64 * 1024, decode_content=False)
        except Exception as e:  # socket.timeout, urllib3's ReadTimeoutError, …: a timeout by any name
            if time.monotonic() >= deadline - 0.01 or "timed out" in str(e).lower():
                raise FetchTimeout(f"timed out after {timeout_s:g} s") from None
            raise
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BYTES:
            raise ValueError(f"metadata larger than {MAX_BYTES} bytes")
        chunks.append(chunk)


def fetch(
    uri: str, timeout_s: float = 5.0, ipfs_gateway: str = "https://ipfs.io/ipfs/", allow_private: bool = False
) -> Fetched:
    """Fetch and validate one metadata document; never raises (errors are recorded in the result)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        if uri.startswith("data:"):
            raw = parse_data_uri(uri)
            if len(raw) > MAX_BYTES:
                raise ValueError(f"metadata larger than {MAX_BYTES} bytes")
        else:
            raw = _get_bounded(http_url(uri, ipfs_gateway), timeout_s, allow_private)
        return Fetched(uri, now, True, validate(raw), None)
    except (requests.Timeout, FetchTimeout):
        return Fetched(uri, now, False, None, f"timed out after {timeout_s:g} s")
    except Exception as e:  # whatever went wrong is recorded, never raised into the indexer
        return Fetched(uri, now, False, None, f"{type(e).__name__}: {e}"[:500])


class MetadataFetcher:
    """Background fetches (never block indexing); the indexer drains finished results into its next transaction."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        ipfs_gateway: str = "https://ipfs.io/ipfs/",
        workers: int = 4,
        allow_private: bool = False,
    ) -> None:
        self.timeout_s = timeout_s
        self.ipfs_gateway = ipfs_gateway
        self.allow_private = allow_private
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lens-metadata")
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, uris: list[str]) -> None:
        """Start fetching URIs not already in flight."""
        with self._lock:
            for u in uris:
                if u and u not in self._pending:
                    self._pending[u] = self._pool.submit(
                        fetch, u, self.timeout_s, self.ipfs_gateway, self.allow_private
                    )

    def drain(self, wait_s: float = 0.0, give_up: bool = False) -> list[Fetched]:
        """Finished results (waiting up to wait_s for the rest); give_up: the unfinished ones too, as timed out."""
        with self._lock:
            futures = dict(self._pending)
        if wait_s > 0 and futures:
            wait(list(futures.values()), timeout=wait_s)
        done = []
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            for u, f in list(self._pending.items()):
                if f.done():
                    done.append(f.result())
                elif give_up:
                    f.cancel()
                    done.append(Fetched(u, now, False, None, f"timed out after {self.timeout_s:g} s"))
                else:
                    continue
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
