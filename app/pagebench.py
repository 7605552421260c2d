"""`lens bench app`: every dashboard page rendered cold and warm through AppTest, each page's queries timed, and
for a slow one what DuckDB did (rows and row groups scanned, the costliest operators) — beside a scan-speed limit."""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from app.errors import LensError
from indexer import aggregates

ROOT = Path(__file__).resolve().parent.parent
TARGET_COLD_S = 3.0
TARGET_WARM_S = 0.5
GOAL_COLD_S = 1.0
GOAL_WARM_S = 0.1
WARM_RUNS = 3
SLOW_QUERY_S = 0.25  # a query this slow is profiled even on a page that meets its targets
PAGE_QUERY = {"pages/verdict.py": "task"}
PAGE_TIMEOUT_S = 180  # a page slower than this is reported as timed out (its script may run on in the background)  # pages that need a subject in the URL: a denied task


@dataclass
class QueryLog:
    """Queries the pages ran through app.queries.base while the log was on: SQL, parameters, seconds."""

    entries: list[tuple[str, Any, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sql: str, params: Any, seconds: float) -> None:
        """Record one query."""
        with self.lock:
            self.entries.append((sql, params, seconds))

    def take(self) -> list[tuple[str, Any, float]]:
        """The queries logged so far, emptying the log."""
        with self.lock:
            out, self.entries = self.entries, []
        return out


def _instrument(log: QueryLog) -> Callable[[], None]:
    """Route every module's `query`/`query_rows` (imported from app.queries.base) through a timer → undo function."""
    from app.queries import base

    originals = {"query": base.query, "query_rows": base.query_rows}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(con: Any, sql: str, params: Any = None) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(con, sql, params)
            finally:
                log.add(sql, params, time.perf_counter() - t0)

        return wrapper

    replaced: list[tuple[Any, str, Any]] = []
    for name, mod in list(sys.modules.items()):
        if not (name == "app" or name.startswith("app.")) or mod is None:
            continue
        for attr, orig in originals.items():
            if getattr(mod, attr, None) is orig:
                replaced.append((mod, attr, orig))
                setattr(mod, attr, timed(orig))

    def undo() -> None:
        for mod, attr, orig in replaced:
            setattr(mod, attr, orig)

    return undo


def pages_of_app(script: Path = ROOT / "streamlit_app.py") -> list[tuple[str, str]]:
    """(title, page file) of every page in the app's navigation, in its order (read from the entry script)."""
    text = script.read_text()
    found = re.findall(r'st\.Page\(\s*"([^"]+)"\s*,\s*title\s*=\s*"([^"]+)"', text)
    if not found:
        raise LensError(f"no st.Page(...) entries found in {script}", "the page benchmark reads the navigation there")
    return [(title, path) for path, title in found]


def scan_limit(path: Path) -> dict[str, float]:
    """The machine's DuckDB scan speed over the tasks table (rows/s): the limit page figures are read against."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SELECT count(*) FROM tasks").fetchone()  # the file into the OS cache, as for the pages
        t0 = time.perf_counter()
        rows, _ = con.execute("SELECT count(*), sum(amount_num) FILTER (WHERE allow) FROM tasks").fetchone()
        seconds = time.perf_counter() - t0
    finally:
        con.close()
    return {"rows": int(rows), "seconds": round(seconds, 4), "rows_per_s": round(rows / max(seconds, 1e-9))}


def _shorten(sql: str, n: int = 160) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def profile_query(path: Path, sql: str, params: Any) -> dict[str, Any]:
    """Run one query with DuckDB's JSON profiler → seconds, rows and row groups scanned, tables, costliest operators."""
    out_file = Path(tempfile.mkstemp(prefix="lens-prof-", suffix=".json")[1])
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{out_file}'")
        t0 = time.perf_counter()
        con.execute(sql, params or []).fetchall()
        seconds = time.perf_counter() - t0
        con.execute("SET enable_profiling = 'no_output'")
        doc = json.loads(out_file.read_text())
    except (duckdb.Error, ValueError, OSError) as err:
        return {"error": str(err)}
    finally:
        con.close()
        out_file.unlink(missing_ok=True)
    ops: list[tuple[float, str, int]] = []
    tables: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        name = str(node.get("name") or node.get("operator_name") or "")
        extra = node.get("extra_info") or {}
        table = extra.get("Table") if isinstance(extra, dict) else None
        if table:
            tables.add(str(table))
            name = f"{name} {table}"
        ops.append((float(node.get("timing") or 0.0), name, int(node.get("intermediate_rows") or 0)))
        for child in node.get("children") or []:
            walk(child)

    for root in doc.get("operator") or []:
        walk(root)
    q = doc.get("query") or {}
    top = sorted(ops, reverse=True)[:3]
    return {
        "seconds": round(seconds, 4),
        "rows_scanned": int(q.get("total_rows_scanned") or 0),
        "row_groups_scanned": int(q.get("total_row_groups_scanned") or 0),
        "row_groups_total": int(q.get("total_row_groups_to_scan") or 0),
        "tables": sorted(tables),
        "top_operators": [{"operator": n, "seconds": round(t, 4), "rows": r} for t, n, r in top],
    }


def why(profile: dict[str, Any], rows_per_s: float) -> str:
    """One line saying why a query takes its time, from its profile and the machine's scan speed."""
    if "error" in profile:
        return f"could not profile: {profile['error']}"
    rows = profile["rows_scanned"]
    groups = f"{profile['row_groups_scanned']}/{profile['row_groups_total']} row groups"
    ops = ", ".join(f"{o['operator']} {o['seconds']:.2f} s" for o in profile["top_operators"][:2])
    scan_s = rows / rows_per_s if rows_per_s else 0.0
    full = profile["row_groups_total"] and profile["row_groups_scanned"] >= profile["row_groups_total"]
    shape = "a full scan" if full else "a partial scan"
    return (
        f"{shape} of {rows:,} rows ({groups}; ≈ {scan_s:.2f} s at this machine's scan speed) of "
        f"{', '.join(profile['tables']) or 'no table'}; costliest: {ops}"
    )


def _silence_streamlit() -> None:
    for name in list(logging.root.manager.loggerDict):  # AppTest's bare-mode notices are noise in a benchmark
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def bench_db_pages(
    path: Path, *, pages: list[tuple[str, str]] | None = None, say: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Render every page over the DB at `path` cold (caches cleared) and warm (median of WARM_RUNS), with each
    page's queries; a page that misses a target (or a query slower than SLOW_QUERY_S) gets its queries profiled."""
    os.environ["LENS_DB"] = str(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        tasks = int(con.execute("SELECT count(*) FROM tasks").fetchone()[0])
        aggregated = aggregates.ready(con)  # the pages read the pre-aggregated tables (else they scan the raw ones)
        row = (
            con.execute("SELECT task_id FROM tasks WHERE allow = false ORDER BY created_block DESC LIMIT 1").fetchone()
            or con.execute("SELECT task_id FROM tasks LIMIT 1").fetchone()
        )
    finally:
        con.close()
    subject = row[0] if row else ""
    limit = scan_limit(path)
    _silence_streamlit()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.engine import thread

    log = QueryLog()
    undo = _instrument(log)
    results: dict[str, Any] = {}
    try:
        for title, page in pages or pages_of_app():
            st.cache_data.clear()
            st.cache_resource.clear()
            thread.on_engine_thread(thread._drop_engines)
            at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=PAGE_TIMEOUT_S)
            if page in PAGE_QUERY:
                at.query_params[PAGE_QUERY[page]] = subject
            at.switch_page(page)
            log.take()
            t0 = time.perf_counter()
            try:
                at.run()
            except RuntimeError as err:  # AppTest's timeout: report the page and the queries it got through
                queries = _group(log.take())
                for q in queries:
                    q.pop("sql_full", None)
                    q.pop("params", None)
                results[title] = {"page": page, "error": f"{err}", "slowest": queries[:5], "ok": False}
                say(f"{title}: {err}")
                continue
            cold = time.perf_counter() - t0
            queries = log.take()
            if at.exception:
                results[title] = {"page": page, "error": at.exception[0].message}
                say(f"{title}: failed: {at.exception[0].message}")
                continue
            warm = []
            for _ in range(WARM_RUNS):
                t0 = time.perf_counter()
                at.run()
                warm.append(time.perf_counter() - t0)
            warm_queries = log.take()
            cold_q = _group(queries)
            r = {
                "page": page,
                "cold_s": round(cold, 4),
                "warm_s": round(statistics.median(warm), 4),
                "queries_cold": len(queries),
                "query_s_cold": round(sum(q[2] for q in queries), 4),
                "queries_warm": round(len(warm_queries) / WARM_RUNS, 1),
                "slowest": cold_q[:5],
            }
            r["ok"] = r["cold_s"] < TARGET_COLD_S and r["warm_s"] < TARGET_WARM_S
            r["goal"] = r["cold_s"] < GOAL_COLD_S and r["warm_s"] < GOAL_WARM_S
            if not r["ok"]:
                r["outside_queries"] = outside_queries(r)
            suspects = [q for q in cold_q if q["seconds"] >= SLOW_QUERY_S or not r["ok"]][:3]
            for q in suspects:
                q["profile"] = profile_query(path, q["sql_full"], q["params"])
                q["why"] = why(q["profile"], limit["rows_per_s"])
            for q in cold_q:
                q.pop("sql_full", None)
                q.pop("params", None)
            results[title] = r
            mark = "ok" if r["ok"] else "MISS"
            say(f"{title}: cold {r['cold_s']:.2f} s, warm {r['warm_s']:.3f} s ({r['queries_cold']} queries) {mark}")
    finally:
        undo()
    return {
        "db": str(path),
        "tasks": tasks,
        "aggregates": aggregated,
        "scan_limit": limit,
        "pages": results,
        "targets": {"cold_s": TARGET_COLD_S, "warm_s": TARGET_WARM_S},
        "goals": {"cold_s": GOAL_COLD_S, "warm_s": GOAL_WARM_S},
        "ok": all(p.get("ok") for p in results.values()),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def outside_queries(r: dict[str, Any]) -> str:
    """For a page that misses a target: how much of its time its queries explain, and where the rest goes."""
    parts = []
    if r["cold_s"] >= TARGET_COLD_S:
        share = r["query_s_cold"] / r["cold_s"] if r["cold_s"] else 0.0
        rest = r["cold_s"] - r["query_s_cold"]
        parts.append(
            f"cold: its {r['queries_cold']} queries took {r['query_s_cold']:.2f} s of {r['cold_s']:.2f} s ({share:.0%})"
            + (f"; {rest:.2f} s is the page's own work (frames, tables, charts)" if share < 0.5 else "")
        )
    if r["warm_s"] >= TARGET_WARM_S:
        parts.append(
            f"warm: {r['queries_warm']:g} queries a run (cached): {r['warm_s']:.2f} s is the page's own work"
            if r["queries_warm"] < 1
            else f"warm: {r['queries_warm']:g} queries a run are not cached"
        )
    return "; ".join(parts)


def _group(queries: list[tuple[str, Any, float]]) -> list[dict[str, Any]]:
    """Queries by SQL text, slowest total first: calls, total seconds, the shortened text (and the first call's
    full text and parameters, for profiling)."""
    by: dict[str, dict[str, Any]] = {}
    for sql, params, seconds in queries:
        e = by.setdefault(sql, {"sql": _shorten(sql), "calls": 0, "seconds": 0.0, "sql_full": sql, "params": params})
        e["calls"] += 1
        e["seconds"] += seconds
    out = sorted(by.values(), key=lambda e: -e["seconds"])
    for e in out:
        e["seconds"] = round(e["seconds"], 4)
    return out


def format_report(result: dict[str, Any]) -> list[str]:
    """The human-readable lines of a page benchmark: per page cold / warm against the targets, and the why."""
    lim = result["scan_limit"]
    lines = [
        f"bench app: {result['tasks']:,} tasks in {result['db']}; DuckDB scans {lim['rows_per_s'] / 1e6:.1f} M "
        f"rows/s here (load average {result['load_avg_1m']} on {result['cpus']} CPUs)",
        "  pre-aggregated tables: "
        + ("present (indexer/aggregates.py)" if result.get("aggregates") else "absent: the pages scan the raw tables"),
    ]
    for title, r in result["pages"].items():
        if "error" in r:
            lines.append(f"  {title:<11} FAILED: {r['error']}")
            continue
        mark = "goal" if r["goal"] else ("ok" if r["ok"] else "MISS")
        lines.append(
            f"  {title:<11} cold {r['cold_s']:5.2f} s ({r['cold_s'] / TARGET_COLD_S:4.2f} of {TARGET_COLD_S:g})  "
            f"warm {r['warm_s']:6.3f} s ({r['warm_s'] / TARGET_WARM_S:4.2f} of {TARGET_WARM_S:g})  "
            f"{r['queries_cold']} queries {r['query_s_cold']:.2f} s  {mark}"
        )
        if r.get("outside_queries"):
            lines.append(f"      where: {r['outside_queries']}")
        for q in r["slowest"]:
            if "why" in q:
                lines.append(f"      {q['seconds']:.2f} s × {q['calls']}: {q['sql']}")
                lines.append(f"        why: {q['why']}")
    return lines
