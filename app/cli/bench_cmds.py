"""CLI: `lens bench live` (serving while indexing, under load) and `lens bench all` (every benchmark, one report)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from app.errors import LensError

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LIVE_RATE = 10.0  # tasks per second the devnet produces during `bench live` (issue 14 §2)
LAG_TARGET_S = 10.0
LOCK_TEXTS = ("Could not set lock", "Conflicting lock", "database is locked", "IO Error", "Traceback")
INDEXED_RE = re.compile(r"Indexed to block ([\d,]+)")


def _lens() -> str:
    beside = Path(sys.executable).parent / "lens"
    return str(beside) if beside.exists() else "lens"


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children, in MiB (None once it is gone)."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
        return round(sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20, 1)
    except psutil.Error:
        return None


def _cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process and its live children have used so far (None once it is gone)."""
    import psutil

    if pid is None:
        return None
    try:
        p = psutil.Process(pid)
        total = 0.0
        for q in (p, *p.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                total += t.user + t.system
        return total
    except psutil.Error:
        return None


def _cpu_split(anvil: int, indexer: int, app: int) -> dict[str, float | None]:
    """CPU seconds so far of the devnet node, the indexer, the dashboard, the browser (this process's other children:
    the playwright driver and Chromium) and this whole process (the producer thread, the reader, the head watch)."""
    import psutil

    own = {anvil, indexer, app}
    browser = 0.0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            if child.pid not in own:
                browser += _cpu_s(child.pid) or 0.0
    t = os.times()
    return {
        "anvil": _cpu_s(anvil),
        "indexer": _cpu_s(indexer),
        "app": _cpu_s(app),
        "browser": browser,
        "bench_process": t.user + t.system,
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


RUN_COUNTER_JS = """() => { window.__lensRuns = 0; const app = document.querySelector('[data-testid=stApp]');
  new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__lensRuns++; })
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""
RUN_DONE_JS = """(before) => window.__lensRuns > before &&
  document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state') === 'notRunning'"""


@dataclass
class PageReader:
    """The scripted reader: loads the overview and returns the page's text once its script has finished.

    `reload`: every load is a full page load (a new Streamlit session: the browser parses the whole front end again,
    ~1.5 CPU-s of Chromium each); otherwise the first load is full and the later ones click the page's link in the
    open dashboard, as a person who keeps it open does (the page's script runs again on the server; ~0.25 CPU-s)."""

    page: Any
    url: str
    reload: bool = False
    fresh: bool = True

    def load(self) -> str:
        """One page load → the rendered text of the page."""
        if self.reload or self.fresh:
            self.page.goto(self.url, wait_until="domcontentloaded", timeout=30_000)
            self.page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)
            if not self.reload:
                self.page.evaluate(RUN_COUNTER_JS)
                self.fresh = False
        else:
            before = self.page.evaluate("window.__lensRuns")
            self.page.click(f'[data-testid="stSidebarNavLink"][href="{self.url}/"]', timeout=30_000)
            self.page.wait_for_function(RUN_DONE_JS, arg=before, timeout=30_000)
        return self.page.inner_text("body")


@dataclass
class HeadWatch:
    """Polls the chain head and remembers when each block first appeared (to turn a page's block into an age)."""

    w3: Any
    seen: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    head: int = 0
    db: Path | None = None  # also note when this DB file changes (a committed indexer round), by stat alone
    changes: list[float] = field(default_factory=list)

    def run(self) -> None:
        """Poll every 0.2 s until stopped."""
        last = None
        while not self.stop.is_set():
            try:
                h = int(self.w3.eth.block_number)
            except Exception:  # the node is going away at the end of the run
                h = self.head
            now = time.monotonic()
            for b in range(self.head + 1, h + 1):
                self.seen.setdefault(b, now)
            self.head = max(self.head, h)
            if self.db is not None:
                with contextlib.suppress(OSError):
                    st = self.db.stat()
                    ident = (st.st_mtime_ns, st.st_size)
                    if last is not None and ident != last:
                        self.changes.append(now)
                    last = ident
            self.stop.wait(0.2)

    @property
    def commits(self) -> int:
        """How many times the DB file changed while watched."""
        return len(self.changes)

    def commit_gaps(self) -> list[float]:
        """Seconds between consecutive DB changes."""
        return [round(b - a, 3) for a, b in zip(self.changes, self.changes[1:])]

    def lag_s(self, shown: int, at: float) -> float:
        """How stale a page showing block `shown` was at time `at`: since the first block it lacks appeared."""
        first_missing = self.seen.get(shown + 1)
        return 0.0 if first_missing is None or first_missing > at else at - first_missing


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LensError(f"the dashboard exited with code {proc.returncode}", "run `lens serve` to see why")
        try:
            if requests.get(url + "/_stcore/health", timeout=1).text.strip() == "ok":
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise LensError(f"the dashboard did not answer on {url} within {timeout_s:.0f} s", "the machine may be overloaded")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_live(
    minutes: float, rate: float = LIVE_RATE, say=lambda _m: None, reader_mode: str = "navigate"
) -> dict[str, Any]:
    """A devnet producing `rate` tasks/s, `lens index --follow` and the dashboard on one DB, and a headless browser
    loading the overview every second: lock errors seen, freshness lag, RSS of the indexer and the app.
    `reader_mode`: "navigate" (click the page in the open dashboard) or "reload" (a full page load each time)."""
    import tempfile

    from playwright.sync_api import sync_playwright
    from web3 import Web3

    from devnet.anvil import free_port, start_anvil
    from devnet.lifecycle import deploy_world
    from devnet.simulate import SimConfig, simulate

    if not Path(CHROMIUM).exists():
        raise LensError(f"chromium not found at {CHROMIUM}", "make setup installs it (tests/system_deps.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="lens-live-"))
    db, dep_file = tmp / "live.duckdb", tmp / "deployment.json"
    node = start_anvil(port=None)
    indexer = app = None
    watch = None
    sim_error: list[BaseException] = []
    stack = contextlib.ExitStack()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        say("deploying the devnet")
        doc = deploy_world(w3, 10, 7, challenge_window_blocks=200, response_window_blocks=50, slash_bps=1000)
        doc = dict(doc, rpc_url=node.url, confirmations=0)
        dep_file.write_text(json.dumps(doc))
        env = dict(os.environ, LENS_DB=str(db), LENS_DEPLOYMENT_FILE=str(dep_file), LENS_RESOLVE_HOSTNAMES="off")
        logs = stack.enter_context(open(tmp / "processes.log", "w"))
        indexer = subprocess.Popen(
            [_lens(), "index", "--follow", "--deployment", str(dep_file), "--db", str(db)],
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        port = free_port()
        from app.cli.serve_cmds import streamlit_command

        app = subprocess.Popen(
            streamlit_command(port, "127.0.0.1"), env=env, cwd=str(ROOT), stdout=logs, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        _wait_http(url, app)
        watch = HeadWatch(w3, db=db)
        threading.Thread(target=watch.run, daemon=True).start()
        total = max(1, int(minutes * 60 * rate))
        producer_cpu: list[float] = []
        sim_done: list[float] = []
        cpu0 = _cpu_split(node.pid, indexer.pid, app.pid)
        started = time.monotonic()

        def pace(done: int, _total: int) -> None:
            ahead = started + done / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

        def traffic() -> None:
            try:
                # the chain gets the same bytes either way: one engine evaluation per task shared by the operators
                # (deterministic), and the quorum's aggregate BLS signature in one multiplication (verified on chain)
                cfg = SimConfig(
                    tasks=total,
                    seed=7,
                    operators=10,
                    upgrade_at=None,
                    ownership_transfer_at=None,
                    independent_eval=False,
                    individual_signatures=False,
                )
                simulate(node.url, doc, cfg, pace)
            except BaseException as err:  # reported with the figures
                sim_error.append(err)
            finally:
                producer_cpu.append(time.thread_time())
                sim_done.append(time.monotonic())

        say(f"producing {total:,} tasks at {rate:g}/s for {minutes:g} min; reading the overview every second")
        sim = threading.Thread(target=traffic, daemon=True)
        sim.start()
        reads: list[dict[str, Any]] = []
        rss: dict[str, list[float | None]] = {"indexer": [], "app": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            reader = PageReader(browser.new_page(), url, reload=reader_mode == "reload")
            while sim.is_alive() or not reads:
                t0 = time.monotonic()
                rec: dict[str, Any] = {"at": round(t0 - started, 2)}
                head_at_request = watch.head
                try:
                    text = reader.load()
                except Exception as err:  # a render that did not finish in time is a failed read
                    text, rec["failed"] = "", str(err).splitlines()[0]
                    reader.fresh = True  # start over with a full page load
                done = time.monotonic()
                m = INDEXED_RE.search(text)
                rec["render_s"] = round(done - t0, 3)
                rec["lock_error"] = next((t for t in LOCK_TEXTS if t in text), None)
                rec["being_written"] = "being written" in text
                if m:
                    shown = int(m.group(1).replace(",", ""))
                    rec["block"], rec["head"] = shown, watch.head
                    rec["lag_s"] = round(watch.lag_s(shown, done), 3)
                    # how stale the DB already was when the page was asked for (the rest is the render)
                    rec["lag_at_request_s"] = round(watch.lag_s(shown, t0), 3)
                    rec["head_at_request"] = head_at_request
                reads.append(rec)
                if len(rss["indexer"]) <= (t0 - started) // 10:  # sampled every ~10 s: start, peak, end
                    rss["indexer"].append(_rss_mb(indexer.pid))
                    rss["app"].append(_rss_mb(app.pid))
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            rss["indexer"].append(_rss_mb(indexer.pid))
            rss["app"].append(_rss_mb(app.pid))
            cpu1 = _cpu_split(node.pid, indexer.pid, app.pid)
            browser.close()
        elapsed = time.monotonic() - started
        produce_s = (sim_done[0] if sim_done else time.monotonic()) - started
    finally:
        if watch is not None:
            watch.stop.set()
        _stop(app)
        _stop(indexer)
        node.stop()
        stack.close()
    lags = [r["lag_s"] for r in reads if "lag_s" in r]
    cpu = {k: round(cpu1[k] - cpu0[k], 1) for k in cpu0 if cpu0[k] is not None and cpu1.get(k) is not None}
    if producer_cpu:
        cpu["producer"] = round(producer_cpu[0], 1)
    # the limit beside the achieved rate, measured in the same run: the tasks one core could produce at the CPU the
    # producer spent (building, evaluating, BLS- and ECDSA-signing, sending), not counting the node's own work
    one_core = round(total / producer_cpu[0], 1) if producer_cpu and producer_cpu[0] > 0 else None
    out = {
        "minutes": minutes,
        "tasks": total,
        "tasks_per_s": round(total / produce_s, 2) if produce_s else None,
        "produce_s": round(produce_s, 1),
        "producer_one_core_tasks_per_s": one_core,
        "elapsed_s": round(elapsed, 1),
        "target_tasks_per_s": rate,
        "reader": reader_mode,
        "reads": len(reads),
        "reads_failed": sum(1 for r in reads if "failed" in r),
        "lock_errors": sum(1 for r in reads if r["lock_error"]),
        "being_written_notices": sum(1 for r in reads if r["being_written"]),
        "render_p95_s": _percentile([r["render_s"] for r in reads], 0.95),
        "lag_p50_s": _percentile(lags, 0.5),
        "lag_p95_s": _percentile(lags, 0.95),
        "lag_max_s": max(lags) if lags else None,
        "lag_target_p95_s": LAG_TARGET_S,
        "lag_at_request_p95_s": _percentile([r["lag_at_request_s"] for r in reads if "lag_at_request_s" in r], 0.95),
        "cpu_s": cpu,
        "cpu_ms_per_task": {k: round(v / total * 1000, 1) for k, v in cpu.items()},
        "rss_mb": {
            k: {"start": v[0], "end": v[-1], "peak": max((x for x in v if x is not None), default=None)}
            for k, v in rss.items()
            if v
        },
        "db_commits": watch.commits if watch else None,
        "db_commit_interval_s": _percentile(watch.commit_gaps(), 0.5) if watch else None,
        "simulation_error": str(sim_error[0]) if sim_error else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "work_dir": str(tmp),
    }
    out["ok"] = (
        out["lock_errors"] == 0
        and out["simulation_error"] is None
        and out["lag_p95_s"] is not None
        and out["lag_p95_s"] < LAG_TARGET_S
    )
    if out["ok"]:  # a run that met its targets leaves nothing behind; a miss keeps the DB and the processes' log
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        out["work_dir"] = None
    return out


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `bench live` and `bench all` to the bench group."""

    @bench.command("all")
    @click.option("--quick", is_flag=True, help="Small sizes: a smoke run of every benchmark in a few minutes.")
    @click.option(
        "--only",
        "only",
        multiple=True,
        help="Run only these (index, replay, whatif, simulate, app, live, distributed).",
    )
    @click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False),
        default=str(ROOT / "data" / "bench"),
        show_default="data/bench",
        help="Where report.md and report.json go.",
    )
    @click.option("--readme", is_flag=True, help="Also rewrite the README's benchmark table from the report.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
    def bench_all(quick: bool, only: tuple[str, ...], out_dir: str, readme: bool, as_json: bool) -> None:
        """Every benchmark (index, replay, whatif, simulate, app, live, distributed) beside limits measured in the same
        run; writes data/bench/report.md and .json.

        The limits: raw eth_getLogs (inside `bench index`), one regorus evaluation, DuckDB's scan speed."""
        import datetime as dt

        import psutil

        say = (lambda _m: None) if as_json else (lambda m: click.echo(f"bench all: {m}", err=True))
        commands = _sizes(quick)
        names = list(commands) + ["distributed"]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise LensError(f"no benchmark {', '.join(unknown)}", f"choose from {', '.join(names)}")
        chosen = [n for n in names if not only or n in only]
        load_start = round(os.getloadavg()[0], 2)
        say("measuring the limits: one regorus evaluation, DuckDB scan speed")
        limits = {
            "regorus": regorus_limit(500 if quick else 2000),
            "duckdb": duckdb_limit(5_000_000 if quick else 20_000_000),
        }
        benches: dict[str, Any] = {}
        for name in chosen:
            say(f"running {name}")
            t0 = time.perf_counter()
            if name == "distributed":
                benches[name] = distributed_figures(2000 if quick else 20_000, say)
                benches[name]["wall_s"] = round(time.perf_counter() - t0, 1)
            else:
                benches[name] = _run_json(commands[name])
            say(f"{name}: {'failed: ' + benches[name]['error'] if 'error' in benches[name] else 'done'}")
        report = {
            "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": quick,
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "load_avg_start": load_start,
                "load_avg_end": round(os.getloadavg()[0], 2),
            },
            "limits": limits,
            "benches": benches,
        }
        js, md = write_report(report, Path(out_dir))
        if readme:
            update_readme(report)
        if as_json:
            click.echo(json.dumps(report, default=str))
            return
        click.echo(report_table(report))
        click.echo(f"wrote {md} and {js}" + (" and the README's table" if readme else ""))

    @bench.command("live")
    @click.option("--minutes", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="How long.")
    @click.option("--rate", type=click.FloatRange(min=0.5), default=LIVE_RATE, show_default=True, help="Tasks/s.")
    @click.option(
        "--reader",
        type=click.Choice(["navigate", "reload"]),
        default="navigate",
        show_default=True,
        help="How the scripted reader loads the page each second: click it in the open dashboard, or a full page "
        "load (a new session each time; Chromium then needs about 1.5 CPU-s a load).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def bench_live(minutes: float, rate: float, reader: str, as_json: bool) -> None:
        """Serve while indexing: a devnet at RATE tasks/s, `lens index --follow`, the dashboard, and a browser
        loading a page every second; lock errors, freshness lag (p95 < 10 s), the indexer's and app's RSS."""
        say = (lambda _m: None) if as_json else (lambda m: click.echo(f"bench live: {m}", err=True))
        out = run_live(minutes, rate, say, reader)
        if as_json:
            click.echo(json.dumps(out))
            return
        for line in format_live(out):
            click.echo(line)


# ---------------------------------------------------------------------------------------------
# `lens bench all`: every benchmark, each in its own process, one report


def _sizes(quick: bool) -> dict[str, list[str]]:
    """Each benchmark's command line (`lens …`): the issue's sizes, or small ones for a smoke run (--quick)."""
    app_db = str(ROOT / "data" / "bench" / ("app-quick.duckdb" if quick else "app.duckdb"))
    return {
        "index": ["bench", "index", "--json", "--events", "10000" if quick else "50000"],
        "replay": ["bench", "replay", "--json", "--synthetic", "--tasks", "300" if quick else "1000"],
        "whatif": ["bench", "whatif", "--json"] + (["--decisions", "20000", "--single", "2000"] if quick else []),
        "simulate": ["bench", "simulate", "--json", "--tasks", "300" if quick else "10000"],
        "app": ["bench", "app", "--json", "--db", app_db, "--tasks", "100000" if quick else "1000000"],
        "live": ["bench", "live", "--json", "--minutes", "1" if quick else "10"],
    }


def regorus_limit(n: int = 2000) -> dict[str, float]:
    """One regorus evaluation of a devnet policy (inputs prepared beforehand, the compiled policy cached, a fresh
    engine clone each time as every Lens evaluation does), best of three runs of n: what engine figures stand beside.
    The same evaluations on regorus' bytecode VM too: the what-if's fast path (app/engine/whatif.py)."""
    import json as _json

    from app.engine.evaluate import compiled, data_document
    from app.engine.fixtures import synthetic_tasks
    from app.engine.replay import prepare
    from app.engine.whatif import vm_policy

    items, vm_items = [], []
    for t in synthetic_tasks(200, seed=7):
        if t.source:
            p = prepare(t)
            input_json = _json.dumps(p.input)
            items.append((compiled(t.source, t.entrypoint), input_json, _json.dumps(data_document(p.params, p.wasm))))
            vm = vm_policy(t.source, t.entrypoint)
            if vm is not None:
                vm_items.append((vm, [(input_json, _json.dumps(p.params), _json.dumps(p.wasm))]))

    def best_of_three(one: Callable[[int], Any]) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(n):
                one(i)
            best = min(best, time.perf_counter() - t0)
        return best

    best = best_of_three(lambda i: items[i % len(items)][0].evaluate_json(*items[i % len(items)][1:]))
    vm_best = best_of_three(lambda i: vm_items[i % len(vm_items)][0].run(vm_items[i % len(vm_items)][1]))
    return {
        "evaluations": n,
        "us_per_evaluation": round(best / n * 1e6, 1),
        "per_s": round(n / best, 1),
        "vm_us_per_evaluation": round(vm_best / n * 1e6, 1),
        "vm_per_s": round(n / vm_best, 1),
    }


def duckdb_limit(rows: int = 20_000_000) -> dict[str, float]:
    """DuckDB's scan-and-aggregate speed on this machine (rows/s over a generated table of `rows`)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t AS SELECT range AS a, range % 7 AS b FROM range({int(rows)})")
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            con.execute("SELECT b, count(*), sum(a) FROM t GROUP BY b").fetchall()
            best = min(best, time.perf_counter() - t0)
    finally:
        con.close()
    return {"rows": rows, "rows_per_s": round(rows / best)}


def distributed_figures(tasks: int, say) -> dict[str, Any]:
    """`lens audit` on a synthetic DB: one process, the local pool, and a Dask LocalCluster — decisions/s each."""
    import shutil
    import tempfile

    from app import synth

    tmp = Path(tempfile.mkdtemp(prefix="lens-bench-dask-"))
    try:
        db = tmp / "audit.duckdb"
        synth.build(db, tasks=tasks, seed=7)
        out: dict[str, Any] = {"tasks": tasks}
        for name, extra in (
            ("one_process", ["--workers", "1"]),
            ("local_pool", []),
            ("dask_local_cluster", ["--scheduler", "local"]),
        ):
            say(f"audit {tasks:,} decisions: {name}")
            r = _run_json(["audit", "--db", str(db), "--no-write", "--json", *extra])
            out[name] = {k: r.get(k) for k in ("decisions_per_s", "workers", "seconds", "error")}
        single = (out["one_process"].get("decisions_per_s") or 0) or None
        for name in ("local_pool", "dask_local_cluster"):
            rate = out[name].get("decisions_per_s")
            out[name]["ratio_to_one_process"] = round(rate / single, 2) if rate and single else None
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_json(args: list[str], timeout_s: float = 7200) -> dict[str, Any]:
    """Run `lens ARGS` in its own process → its one JSON object (or {"error": …})."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [_lens(), *args], check=False, capture_output=True, text=True, timeout=timeout_s, cwd=str(ROOT)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s", "wall_s": round(time.perf_counter() - t0, 1)}
    wall = round(time.perf_counter() - t0, 1)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " / ".join(tail), "wall_s": wall}
    try:
        out = json.loads(lines[-1])
    except ValueError:
        return {"error": "no JSON object in its output", "wall_s": wall}
    out["wall_s"] = wall
    return out


def _row(name: str, r: dict[str, Any], limits: dict[str, Any]) -> tuple[str, str, str]:
    """(benchmark, figure, against) of one benchmark for the report's table."""
    if "error" in r:
        return f"`lens bench {name}`", f"failed: {r['error']}", "—"
    if name == "index":
        return (
            "`lens bench index`",
            f"{r['events']:,} events: indexer {r['indexer_logs_per_s']:,.0f} logs/s",
            f"raw `eth_getLogs` {r['raw_logs_per_s']:,.0f} logs/s → ratio **{r['ratio']:.2f}** (target ≥ 0.5)",
        )
    if name == "replay":
        per = limits["regorus"]["us_per_evaluation"] / 1000
        return (
            "`lens bench replay`",
            f"{r['tasks']:,} tasks, replay + explanation: p50 {r['p50_ms']} ms, p95 **{r['p95_ms']} ms**",
            f"target p95 < 50 ms ({r['ratio_p95_to_target']:.2f}); one regorus evaluation {per:.2f} ms here",
        )
    if name == "whatif":
        return (
            "`lens bench whatif`",
            f"{r['decisions']:,} decisions: **{r['decisions_per_s']:,.0f}/s** on {r['workers']} cores "
            f"({r['single_core_per_s']:,.0f}/s on one)",
            f"target ≥ 20,000/s; CPU {r['cpu_us_per_decision']:.0f} µs a decision, every process counted "
            f"(→ {r['cpu_bound_per_s']:,.0f}/s were the cores the benchmark's alone); one evaluation alone on one "
            f"core: {limits['regorus'].get('vm_per_s', 0):,.0f}/s on regorus' VM, "
            f"{limits['regorus']['per_s']:,.0f}/s on its interpreter",
        )
    if name == "simulate":
        return (
            "`lens bench simulate`",
            f"{r['tasks']:,} tasks in {r['elapsed_s']} s ({r['tasks_per_s']} tasks/s)",
            f"10,000 tasks in ≤ 10 min = 16.7 tasks/s → {r['ratio_to_limit']}×",
        )
    if name == "app":
        pages = {k: v for k, v in r["pages"].items() if "cold_s" in v}
        worst_cold = max(pages.items(), key=lambda kv: kv[1]["cold_s"])
        worst_warm = max(pages.items(), key=lambda kv: kv[1]["warm_s"])
        failed = [k for k, v in r["pages"].items() if "error" in v]
        return (
            "`lens bench app`",
            f"{r['tasks']:,} tasks, {len(pages)} pages: slowest cold {worst_cold[0]} {worst_cold[1]['cold_s']:.2f} s, "
            f"slowest warm {worst_warm[0]} {worst_warm[1]['warm_s']:.3f} s"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
            f"cold < 3 s, warm < 0.5 s; DuckDB scans {limits['duckdb']['rows_per_s'] / 1e6:.0f} M rows/s here",
        )
    if name == "live":
        rss = ", ".join(f"{k} {v['start']}→{v['end']} MiB" for k, v in r["rss_mb"].items())
        reader = f" ({r['reader']})" if r.get("reader") else ""
        one_core = r.get("producer_one_core_tasks_per_s")
        return (
            "`lens bench live`",
            f"{r['minutes']:g} min at {r['tasks_per_s']} tasks/s: {r['lock_errors']} lock errors in {r['reads']} "
            f"page loads{reader}; freshness lag p95 **{r['lag_p95_s']} s**; RSS {rss}",
            f"lag p95 < 10 s, no lock error; devnet asked for {r['target_tasks_per_s']:g} tasks/s"
            + (f", its producer could make {one_core:g}/s on one core" if one_core else ""),
        )
    if name == "distributed":
        one, pool, dask = r["one_process"], r["local_pool"], r["dask_local_cluster"]
        return (
            "`lens audit --scheduler local`",
            f"{r['tasks']:,} decisions: Dask LocalCluster {dask.get('decisions_per_s')}/s on {dask.get('workers')} "
            f"workers, local pool {pool.get('decisions_per_s')}/s",
            f"one process {one.get('decisions_per_s')}/s → Dask {dask.get('ratio_to_one_process')}×",
        )
    return f"`{name}`", json.dumps(r)[:120], "—"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """data/bench/report.json and report.md (the table the README shows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "report.json", out_dir / "report.md"
    js.write_text(json.dumps(report, indent=1, default=str))
    md.write_text(report_markdown(report))
    return js, md


def report_table(report: dict[str, Any]) -> str:
    """The Markdown table of a report: each figure beside the limit measured in the same run."""
    m = report["machine"]
    lines = [
        f"Measured by `lens bench all{' --quick' if report.get('quick') else ''}` on {report['generated_at']}: "
        f"{m['cpus']} CPUs, {m['memory_gib']} GiB, load average {m['load_avg_start']} at the start and "
        f"{m['load_avg_end']} at the end (the machine is shared: figures move with the load).",
        "",
        "| benchmark | figure | against (measured in the same run) |",
        "|---|---|---|",
    ]
    for name, r in report["benches"].items():
        lines.append("| {} | {} | {} |".format(*_row(name, r, report["limits"])))
    return "\n".join(lines) + "\n"


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the table, the limits, and each benchmark's wall time."""
    lim = report["limits"]
    walls = ", ".join(f"{k} {v.get('wall_s', '?')} s" for k, v in report["benches"].items())
    return (
        "# Newton Lens benchmark report\n\n"
        + report_table(report)
        + f"\nLimits measured in this run: one regorus evaluation {lim['regorus']['us_per_evaluation']} µs "
        f"({lim['regorus']['per_s']:,.0f}/s on one core), {lim['regorus'].get('vm_us_per_evaluation', '?')} µs on its "
        f"bytecode VM; DuckDB group-by scan {lim['duckdb']['rows_per_s']:,} rows/s.\n"
        f"\nWall time per benchmark: {walls}.\n"
    )


README_BEGIN, README_END = "<!-- bench -->", "<!-- /bench -->"


def update_readme(report: dict[str, Any], readme: Path = ROOT / "README.md") -> bool:
    """Replace the README's benchmark block (between its markers) with the report's table → whether it changed."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise LensError(f"{readme} has no {README_BEGIN} … {README_END} block", "add the two markers where it goes")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = head + README_BEGIN + "\n" + report_table(report) + README_END + tail
    if new != text:
        readme.write_text(new)
    return new != text


def format_live(out: dict[str, Any]) -> list[str]:
    """The human-readable lines of `bench live`."""
    rss = "; ".join(
        f"{k} {v['start']} → {v['end']} MiB" + (f" (peak {v['peak']})" if v.get("peak") else "")
        for k, v in out["rss_mb"].items()
    )
    return [
        f"bench live: {out['tasks']:,} tasks in {out['minutes']:g} min ({out['tasks_per_s']} tasks/s of "
        f"{out['target_tasks_per_s']:g}); {out['reads']} page loads, {out['reads_failed']} failed, "
        f"{out['lock_errors']} lock errors shown, {out['being_written_notices']} 'being written' notices",
        f"  freshness lag p50 {out['lag_p50_s']} s, p95 {out['lag_p95_s']} s (target < {out['lag_target_p95_s']:g}), "
        f"max {out['lag_max_s']} s; page render p95 {out['render_p95_s']} s",
        f"  producer {out.get('producer_one_core_tasks_per_s')} tasks per CPU-second (one core's limit); reader: "
        f"{out.get('reader')}; lag when the page was asked for p95 {out.get('lag_at_request_p95_s')} s",
        "  CPU seconds: " + ", ".join(f"{k} {v}" for k, v in out.get("cpu_s", {}).items()),
        f"  the DB file changed {out.get('db_commits')} times (the indexer's commits and checkpoints), every "
        f"{out.get('db_commit_interval_s')} s (median)",
        f"  RSS: {rss}; load average {out['load_avg_1m']} on {out['cpus']} CPUs"
        + (f"; simulation failed: {out['simulation_error']}" if out["simulation_error"] else ""),
        "  ok" if out["ok"] else f"  MISS (the DB and the processes' log are kept in {out.get('work_dir')})",
    ]
