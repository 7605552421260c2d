"""Connections of the dashboard: the read-only DuckDB file (lock retries, one per render, cached results) and the chain head."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import requests

from app import settings
from app.errors import LensError

# DuckDB allows one read-write process or many read-only ones; an open attempt that meets the
# indexer's write lock is retried briefly before the page shows a "being written" state.
LOCK_ATTEMPTS = 6
LOCK_WAIT_S = 0.25
RPC_TIMEOUT_S = 1.5


@dataclass(frozen=True)
class DbState:
    """What the dashboard can say about its DB: ok, missing, locked (being written), empty, or broken."""

    status: str
    path: str
    message: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        """Whether pages can query the derived tables."""
        return self.status == "ok"


def db_path() -> Path:
    """The DuckDB file the dashboard reads: env LENS_DB, else the `db` setting's default."""
    return Path(os.environ.get("LENS_DB") or settings.get("db")).expanduser()


def _is_lock_error(err: Exception) -> bool:
    text = str(err).lower()
    return "lock" in text or "conflicting" in text or "being used" in text


def open_readonly(path: Path, attempts: int = LOCK_ATTEMPTS, wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """Open the DB read-only, retrying while another process holds the write lock; LensError otherwise."""
    if not path.is_file():
        raise LensError(
            f"no database at {path}", "index a chain with `lens index` or build one with `lens synth --db PATH`"
        )
    last: Exception | None = None
    for attempt in range(max(1, attempts)):
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error as err:  # IOException on lock conflicts, others on corrupt files
            last = err
            if not _is_lock_error(err):
                raise LensError(
                    f"cannot open {path}: {err}", "is it a DuckDB file written by `lens index` or `lens synth`?"
                ) from err
            time.sleep(wait_s * (attempt + 1))
    raise LensError(
        f"{path.name} is being written by the indexer right now",
        "the page retries on reload; run the indexer with --follow beside `lens serve` to share the file",
    ) from last


def open_error_state(path: Path, error: LensError) -> DbState:
    """The state a failed open means: missing (no file), locked (being written) or error."""
    status = "missing" if "no database" in str(error) else ("locked" if "being written" in str(error) else "error")
    return DbState(status, str(path), str(error), error.hint)


# ---------------------------------------------------------------------------------------------
# Chain head


def rpc_head(rpc_url: str, timeout_s: float = RPC_TIMEOUT_S) -> tuple[int | None, str]:
    """The chain's head block via eth_blockNumber → (block, "") or (None, why it is unreachable)."""
    if not rpc_url:
        return None, "no RPC URL in the deployment"
    try:
        resp = requests.post(
            rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}, timeout=timeout_s
        )
        resp.raise_for_status()
        body = resp.json()
        if "result" not in body:
            return None, f"RPC error: {body.get('error')}"
        return int(body["result"], 16), ""
    except requests.RequestException as err:
        return None, f"RPC unreachable at {rpc_url} ({type(err).__name__})"
    except (ValueError, TypeError) as err:
        return None, f"unexpected RPC answer from {rpc_url}: {err}"


# ---------------------------------------------------------------------------------------------
# Streamlit glue. Sharing rule: the indexer holds the write lock only for one batch, so the dashboard never
# keeps a connection across reruns. Query *results* are cached, keyed by the file's identity (main file + WAL
# stat), which changes on every committed batch; a render whose results are all cached opens no connection at
# all. On a miss, one short-lived read-only connection serves the rest of that render (thread-local: each
# Streamlit session runs its script in its own thread) and `release()` closes it when the page is done.

READ_TIMEOUT_S = 4.0
_LOCAL = threading.local()


def identity(path: Path | None = None) -> tuple:
    """What changes whenever a writer commits: the DB file's and its WAL's (inode, mtime_ns, size)."""
    path = path or db_path()
    parts: list[Any] = [str(path)]
    for p in (path, Path(str(path) + ".wal")):
        try:
            st_ = p.stat()
            parts.append((st_.st_ino, st_.st_mtime_ns, st_.st_size))
        except FileNotFoundError:
            parts.append(None)
    return tuple(parts)


def _render_connection(path: Path) -> duckdb.DuckDBPyConnection:
    """This render's read-only connection, opened on first use (retrying while the indexer writes)."""
    con = getattr(_LOCAL, "con", None)
    if con is not None and getattr(_LOCAL, "path", None) == str(path):
        return con
    release()
    con = _open_short(path)
    _LOCAL.con, _LOCAL.path, _LOCAL.tables = con, str(path), None
    return con


def render_tables(con: duckdb.DuckDBPyConnection, compute: Callable[[Any], set[str]]) -> set[str]:
    """compute(con) (the table names), remembered for the rest of the render when `con` is this render's read-only
    connection: a page asks 5–18 times, and no writer can change the schema while a reader holds the file."""
    if con is None or con is not getattr(_LOCAL, "con", None):
        return compute(con)
    names = getattr(_LOCAL, "tables", None)
    if names is None:
        names = _LOCAL.tables = frozenset(compute(con))
    return set(names)


def _open_short(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection for a page: shorter waits than the default, bounded by READ_TIMEOUT_S."""
    return open_readonly(path, attempts=max(1, int(READ_TIMEOUT_S / LOCK_WAIT_S / 2)), wait_s=LOCK_WAIT_S / 2)


def release() -> None:
    """Close this render's connection, if one was opened, so the indexer gets its next write slot."""
    con = getattr(_LOCAL, "con", None)
    _LOCAL.con, _LOCAL.tables = None, None
    if con is not None:
        try:
            con.close()
        except duckdb.Error:
            pass


_CACHED: dict[str, Any] = {}


def _cache_fns() -> dict[str, Any]:
    """Build the st.cache_data wrappers once per process (streamlit imported lazily: the CLI never pays for it)."""
    if not _CACHED:
        import streamlit as st

        # keyed by the function's dotted name; `_fn` (leading underscore) is left out of the cache key
        @st.cache_data(show_spinner=False, max_entries=4096, ttl=3600)
        def call(ident: tuple, fn_key: str, args: tuple, kwargs_items: tuple, _fn: Callable[..., Any]) -> Any:
            con = _render_connection(Path(ident[0]))
            return _fn(con, *args, **dict(kwargs_items))

        @st.cache_data(show_spinner=False, ttl=5, max_entries=16)
        def head(rpc_url: str) -> tuple[int | None, str]:
            return rpc_head(rpc_url)

        _CACHED.update(call=call, head=head)
    return _CACHED


def cached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(con, *args, **kwargs) through st.cache_data, keyed by the DB's identity, fn's dotted name and the arguments.

    A failed open (missing, locked) raises LensError and is not cached: the next render tries again.
    """
    key = f"{fn.__module__}.{fn.__qualname__}"
    return _cache_fns()["call"](identity(), key, args, tuple(sorted(kwargs.items())), fn)


def run_uncached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(con, ...) on this render's connection, bypassing the cache (exports, one-off files)."""
    return fn(_render_connection(db_path()), *args, **kwargs)


def run_short(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(con, ...) on its own short-lived connection, closed after (for work outside a render: download buttons)."""
    con = _open_short(db_path())
    try:
        return fn(con, *args, **kwargs)
    finally:
        con.close()


def cached_head(rpc_url: str) -> tuple[int | None, str]:
    """rpc_head through a 5-second st.cache_data, so reruns do not hammer the node."""
    return _cache_fns()["head"](rpc_url)


def ensure_app_navigation() -> None:
    """Route a page through streamlit_app.py's st.navigation even when Streamlit ran it directly.

    Streamlit keeps a legacy mode for apps with a `pages/` folder: until some session has run the main script,
    a deep link (e.g. /verdict?task=…) as the first visit after the server starts runs the page file alone,
    without the shared sidebar and navigation. The page then switches the process to the st.navigation app and
    reruns (the URL and its query string are kept).
    """
    import streamlit as st
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager

    # AppTest resets this flag before every run and drives pages itself (a rerun there would drop the widget
    # event under test), so only a real server switches.
    if PagesManager.uses_pages_directory and type(getattr(Runtime, "_instance", None)) is Runtime:
        PagesManager.uses_pages_directory = False
        st.rerun()
