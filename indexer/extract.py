"""Raw JSON-RPC over HTTP: eth_getLogs with retries/backoff, range halving on oversized answers, regrowth."""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
import requests
import urllib3

from indexer.errors import LensError

# Provider messages that mean "ask for fewer blocks" (geth/anvil, Infura, Alchemy, QuickNode, Ankr, …).
_TOO_LARGE = re.compile(
    r"too many|more than \d+|response size|size exceed|limit exceeded|exceeds? (the )?(max|limit)|block range|"
    r"range (is )?too (large|wide|big)|query timeout|returned more|too large|10000 results|payload",
    re.I,
)
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
# Messages of a node (or one node behind a load balancer) that has not reached the asked block yet: ask again later.
_BEHIND = re.compile(
    r"beyond (the )?(current )?head|header not found|unknown block|block not found|not (yet )?synced", re.I
)


def loads(body: bytes) -> Any:
    """JSON of an answer: orjson (an answer of big hex strings parses in ~2/3 of the standard parser's time), the
    standard parser for what orjson refuses (NaN, a lone surrogate, UTF-16), so both accept the same answers.

    The one value orjson reads differently, an integer beyond 64 bits (a float then), is never one an answer is
    trusted by: logs are checked to hold hex strings, ids and error codes are small integers compared for equality.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


class RawResult:
    """A large successful JSON-RPC answer kept as bytes: parsed later by whoever decodes it (off the fetch thread)."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    def has_id(self, rid: int) -> bool:
        """Does the answer carry this JSON-RPC id (looked up in its first bytes, without parsing)?"""
        return re.search(rb'"id"\s*:\s*"?%d"?\s*[,}]' % rid, self.body[:200]) is not None

    def count(self, key: bytes = b'"logIndex"') -> int:
        """Cheap count of the logs in the answer (no parsing)."""
        return self.body.count(key)

    def parse(self) -> Any:
        """The `result` of the answer."""
        out = loads(self.body)
        if "result" not in out:
            raise RpcError(None, f"answer without result: {str(out)[:200]}")
        return out["result"]


class RpcError(Exception):
    """A JSON-RPC error answer (not retried)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message


class RangeTooLarge(RpcError):
    """The node refused the block range (too many results / response too big): split it."""


@dataclass
class RpcStats:
    """Counters a run reports: requests, retries, range splits, seconds spent waiting on the node."""

    requests: int = 0
    retries: int = 0
    splits: int = 0
    seconds: float = 0.0
    last_error: str | None = None
    faults: Counter = field(default_factory=Counter)  # kind of fault → times met (`lens index status` shows them)

    def fault(self, kind: str, message: str) -> None:
        """Count one fault the node answered with (and remember its message)."""
        self.faults[kind] += 1
        self.last_error = message


class Rpc:
    """Minimal JSON-RPC client over a keep-alive HTTP session, with retries and backoff on transient faults."""

    def __init__(
        self,
        url: str,
        retries: int = 6,
        timeout: float = 30.0,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self.stats = RpcStats()
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._rl = 0  # refusals in a row (a node that keeps refusing is given up on)
        self.answered = False  # has the node ever answered? (refused before that: nothing listens, fail at once)
        self.max_head = -1  # the highest head seen (a node behind a load balancer may report an older one)

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _post(self, payload: Any, raw_ok: bool = False) -> Any:
        """POST with retries on connection errors, timeouts, 429 and 5xx; returns the decoded JSON body
        (or a RawResult for a large successful answer when raw_ok)."""
        body = json.dumps(payload)
        attempt = 0
        while True:
            t0 = time.perf_counter()
            self.stats.requests += 1
            try:
                resp = self._session().post(
                    self.url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout, stream=True
                )
                self.answered = True
                if resp.status_code in _RETRY_HTTP:
                    resp.close()
                    kind = "HTTP 429" if resp.status_code == 429 else f"HTTP {resp.status_code // 100}xx"
                    raise _Transient(f"HTTP {resp.status_code}", resp.headers.get("Retry-After"), kind)
                if resp.status_code == 413:
                    resp.close()
                    raise RangeTooLarge(413, "HTTP 413 payload too large")
                if resp.status_code >= 400:
                    raise RpcError(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}")
                # one read of the whole body: 3x less CPU than requests' 10 KB-chunked .content on big answers
                answer = resp.raw.read(decode_content=True)
                if raw_ok and len(answer) > 4096 and b'"result"' in answer[:80] and answer.rstrip().endswith(b"]}"):
                    return RawResult(answer)
                try:
                    out = loads(answer)
                except ValueError:
                    raise _Transient("malformed JSON answer", None, "malformed JSON") from None
                return out
            except requests.ConnectionError as e:
                if not self.answered and _refused(e):
                    raise LensError(
                        f"nothing answers at {self.url}: is the node running? (`lens devnet up` for the devnet)",
                        "start the node, or pass the URL of a running one with --rpc URL",
                    ) from None
                attempt = self._retry_or_raise(
                    e, attempt, "timeout" if isinstance(e, requests.Timeout) else "connection reset"
                )
            except (
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,
                _Transient,
            ) as e:
                kind = e.kind if isinstance(e, _Transient) else "timeout" if isinstance(e, requests.Timeout) else None
                attempt = self._retry_or_raise(e, attempt, kind or "connection reset")
            finally:
                self.stats.seconds += time.perf_counter() - t0

    def _retry_or_raise(self, e: Exception, attempt: int, kind: str) -> int:
        """Count the fault, give up after `retries` attempts, else sleep (exponential backoff, Retry-After honoured)."""
        self.stats.fault(kind, str(e))
        attempt += 1
        if attempt > self.retries:
            raise LensError(
                f"RPC {self.url} failed after {self.retries} retries: {e}",
                "check the node is reachable (--rpc URL), or raise LENS_RPC_RETRIES",
            ) from None
        self.stats.retries += 1
        delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
        retry_after = getattr(e, "retry_after", None)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 30.0))
            except ValueError:
                pass
        self.sleep(min(delay, 30.0))
        return attempt

    def _next_id(self) -> int:
        return next(self._ids)  # atomic: the fetch thread and the writer may both call

    def call(self, method: str, params: list, raw_ok: bool = False) -> Any:
        """One JSON-RPC call; JSON-RPC errors become RpcError (RangeTooLarge for oversized log queries)."""
        while True:
            rid = self._next_id()
            out = self._post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, raw_ok)
            if isinstance(out, RawResult):
                if not out.has_id(rid):
                    self._rate_limited(f"answer to another request (expected id {rid})", "wrong JSON-RPC id")
                    continue
                return out
            if isinstance(out, dict) and str(out.get("id")) != str(rid):  # (a few gateways echo ids as strings)
                # a proxy or load balancer mixed answers up: this one belongs to another request
                self._rate_limited(
                    f"answer to another request (id {out.get('id')!r}, expected {rid})", "wrong JSON-RPC id"
                )
                continue
            if isinstance(out, dict) and "error" in out:
                err = out["error"] or {}
                code, msg = (
                    (err.get("code"), str(err.get("message", err))) if isinstance(err, dict) else (None, str(err))
                )
                if code == 429 or "rate limit" in msg.lower():
                    self._rate_limited(msg, "rate limited (JSON-RPC)")
                    continue
                if _BEHIND.search(msg):  # before the range check: "block range extends beyond head" is not size
                    self._rate_limited(msg, "node behind")
                    continue
                if method == "eth_getLogs" and (_TOO_LARGE.search(msg) or code == -32005):
                    self.stats.faults["too many results"] += 1
                    raise RangeTooLarge(code, msg)
                raise RpcError(code, msg)
            if not isinstance(out, dict) or "result" not in out:
                self._rate_limited("answer without result", "answer without result")
                continue
            self._rl = 0  # a node that answers again is given a fresh allowance
            return out["result"]

    def _rate_limited(self, msg: str, kind: str) -> None:
        self.stats.retries += 1
        self.stats.fault(kind, msg)
        self._rl += 1
        n = self._rl
        if n > self.retries * 4:
            raise LensError(f"RPC {self.url} keeps failing: {msg}", "use another RPC endpoint (--rpc)")
        self.sleep(min(self.backoff * 2 ** min(n, 6), 10.0))

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Several calls in one HTTP request (results in call order); falls back to single calls if unsupported."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        out = self._post(payload)
        if (
            not isinstance(out, list)
            or len(out) != len(calls)
            or not all(isinstance(r, dict) and "result" in r for r in out)
        ):
            return [self.call(m, p) for m, p in calls]  # one by one, each checked
        if {r.get("id") for r in out} != set(range(len(calls))):
            self.stats.fault("wrong JSON-RPC id", "a batch answered with other requests' ids")
            return [self.call(m, p) for m, p in calls]
        by_id = {r["id"]: r["result"] for r in out}
        return [by_id[i] for i in range(len(calls))]

    # convenience -------------------------------------------------------------------------------
    def chain_id(self) -> int:
        """eth_chainId as int."""
        return int(self.call("eth_chainId", []), 16)

    def head(self) -> int:
        """eth_blockNumber as int. A head below one seen before is counted as a fault (a node behind a load balancer)
        but returned as it is: a lower target only means waiting, while a head the node does not have would mean
        asking it for blocks it lacks (after a reorg to a shorter chain, say)."""
        h = int(self.call("eth_blockNumber", []), 16)
        if h < self.max_head:
            self.stats.fault("head went backwards", f"eth_blockNumber {h} after {self.max_head}")
        self.max_head = max(self.max_head, h)
        return h

    def headers(self, numbers: Iterable[int]) -> dict[int, dict]:
        """Block headers (hash, parentHash, timestamp) by number, one batched request."""
        nums = list(numbers)
        res = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in nums])
        out = {}
        for n, r in zip(nums, res):
            if _is_header(r):
                out[n] = r
            elif r:  # an answer of the wrong shape is no header: as if the node did not have the block
                self.stats.fault("answer of the wrong shape", f"eth_getBlockByNumber {n}: {str(r)[:100]}")
        return out

    def get_logs(self, lo: int, hi: int, addresses: list[str] | None, topics: list[str], raw_ok: bool = False):
        """eth_getLogs for blocks lo..hi (inclusive) with topic0 in `topics`, optionally limited to addresses
        (raw_ok: a large answer may come back unparsed, as a RawResult)."""
        flt: dict[str, Any] = {"fromBlock": hex(lo), "toBlock": hex(hi), "topics": [list(topics)]}
        if addresses:
            flt["address"] = list(addresses)
        for _ in range(self.retries + 1):
            out = self.call("eth_getLogs", [flt], raw_ok)
            if isinstance(out, RawResult) or (isinstance(out, list) and all(_is_log(x) for x in out)):
                return out
            self.stats.fault("answer of the wrong shape", f"eth_getLogs {lo}..{hi}: {str(out)[:100]}")
            self.sleep(self.backoff)
        raise LensError(
            f"RPC {self.url} keeps answering eth_getLogs with something that is not a list of logs",
            "use another RPC endpoint (--rpc)",
        )


def _is_hex(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("0x")


def _is_log(x: Any) -> bool:
    """Has this log the fields the indexer reads, of the right kinds? (Their values are checked when decoded.)"""
    return (
        isinstance(x, dict)
        and all(_is_hex(x.get(k)) for k in ("blockNumber", "logIndex", "blockHash", "transactionHash", "address"))
        and isinstance(x.get("data"), str)
        and isinstance(x.get("topics"), list)
        and all(isinstance(t, str) for t in x["topics"])
    )


def _is_header(r: Any) -> bool:
    return isinstance(r, dict) and all(_is_hex(r.get(k)) for k in ("hash", "parentHash", "timestamp"))


class _Transient(Exception):
    def __init__(self, msg: str, retry_after: str | None, kind: str) -> None:
        super().__init__(msg)
        self.retry_after = retry_after
        self.kind = kind


def _refused(e: BaseException) -> bool:
    """Is this connection error "nothing listens there" (refused, or a host that does not resolve)?"""
    seen: set[int] = set()
    stack: list = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ConnectionRefusedError | urllib3.exceptions.NameResolutionError):
            return True
        if isinstance(x, urllib3.exceptions.NewConnectionError) and "refused" in str(x).lower():
            return True
        stack += [getattr(x, "reason", None), x.__cause__, x.__context__] + [
            a for a in x.args if isinstance(a, BaseException)
        ]
    return False


@dataclass(frozen=True)
class LogFilter:
    """One eth_getLogs filter: addresses (None = any address) and the topic0 set."""

    addresses: tuple[str, ...] | None
    topics: tuple[str, ...]

    @cached_property
    def topic_set(self) -> frozenset[str]:
        """The topics, for membership tests."""
        return frozenset(self.topics)

    @cached_property
    def address_set(self) -> frozenset[str]:
        """The addresses, for membership tests."""
        return frozenset(self.addresses or ())


@dataclass
class RangeSizer:
    """Adaptive block-range size: halve on oversized answers; otherwise aim at ~target_logs logs per request
    (small requests let fetching overlap decoding; sparse ranges grow quickly)."""

    size: int = 2000
    minimum: int = 1
    maximum: int = 100_000
    target_logs: int = 3000
    _ok: int = field(default=0, repr=False)

    def too_large(self, failed_span: int) -> None:
        """Shrink below the span that failed."""
        self.size = max(self.minimum, min(self.size, failed_span) // 2)

    def success(self, n_logs: int, span: int) -> None:
        """Move toward target_logs per request: at most x2 up, at most /4 down per step."""
        if n_logs <= 0:
            ideal = span * 2
        else:
            ideal = int(span * self.target_logs / n_logs)
        self.size = max(self.minimum, min(self.maximum, max(self.size // 4, min(ideal, span * 2, self.size * 2))))


def split_range(lo: int, hi: int) -> list[tuple[int, int]]:
    """Two halves of an inclusive block range (a single block cannot be split)."""
    if hi <= lo:
        return [(lo, hi)]
    mid = (lo + hi) // 2
    return [(lo, mid), (mid + 1, hi)]


def plan_ranges(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """Consecutive inclusive ranges of at most `size` blocks covering lo..hi."""
    out = []
    b = lo
    while b <= hi:
        e = min(hi, b + size - 1)
        out.append((b, e))
        b = e + 1
    return out


@dataclass
class Part:
    """One eth_getLogs answer (a log list, or an unparsed RawResult) with the query it answers (None: already
    checked), so that logs the query did not ask for can be told apart."""

    lo: int
    hi: int
    flt: LogFilter | None
    answer: Any

    def asks_for(self, log: dict) -> bool:
        """Was this log asked for: in the block range, with a topic0 of the filter, from one of its addresses?"""
        f = self.flt
        if f is None:
            return True
        topics = log.get("topics") or []
        if not (self.lo <= int(log["blockNumber"], 16) <= self.hi) or not topics:
            return False
        return topics[0].lower() in f.topic_set and (f.addresses is None or log["address"].lower() in f.address_set)


def fetch_range_parts(
    rpc: Rpc, lo: int, hi: int, filters: list[LogFilter], sizer: RangeSizer | None = None, raw_ok: bool = False
) -> list[Part]:
    """The answers covering lo..hi for the filters, splitting the range while the node says it is too large."""
    parts: list[Part] = []
    for f in filters:
        stack = [(lo, hi)]
        while stack:
            a, b = stack.pop()
            try:
                answer = rpc.get_logs(a, b, list(f.addresses) if f.addresses else None, list(f.topics), raw_ok)
                parts.append(Part(a, b, f, answer))
            except RangeTooLarge:
                if a == b:
                    raise LensError(
                        f"the node refuses eth_getLogs even for the single block {a}",
                        "use an RPC endpoint without a tight log-size limit (--rpc)",
                    ) from None
                rpc.stats.splits += 1
                if sizer is not None:
                    sizer.too_large(b - a + 1)
                stack.extend(reversed(split_range(a, b)))
    return parts


def count_logs(parts: list[Part]) -> int:
    """Number of logs in fetched parts without parsing them (duplicates across filters included)."""
    return sum(p.answer.count() if isinstance(p.answer, RawResult) else len(p.answer) for p in parts)


UNASKED = "log the query did not ask for"


def materialize(parts: list[Part], faults: Counter | None = None) -> list[dict]:
    """Parse the parts and return their logs sorted by (block, log index), each once.

    A log its query did not ask for (another address, a block outside the range — what a hostile node or proxy
    might add) is dropped, never stored as if the watched contract emitted it, and counted in `faults`."""
    out: dict[tuple[int, int], dict] = {}
    for p in parts:
        for log in p.answer.parse() if isinstance(p.answer, RawResult) else p.answer:
            if not _is_log(log):  # a broken answer (only an unparsed one can get here): the caller fetches again
                raise ValueError(f"not a log: {str(log)[:100]}")
            if not p.asks_for(log):
                if faults is not None:
                    faults[UNASKED] += 1
                continue
            out[(int(log["blockNumber"], 16), int(log["logIndex"], 16))] = log
    return [out[k] for k in sorted(out)]


def fetch_range(rpc: Rpc, lo: int, hi: int, filters: list[LogFilter], sizer: RangeSizer | None = None) -> list[dict]:
    """All logs of lo..hi for the filters, splitting the range while the node says it is too large; sorted, unique."""
    return materialize(fetch_range_parts(rpc, lo, hi, filters, sizer))
