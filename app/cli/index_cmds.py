"""CLI: `lens index` (chain → DuckDB, optionally following the head), `lens index status`, `lens bench index`."""

from __future__ import annotations

import json
import signal
import threading
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app import settings
from app.errors import LensError

# setting → the indexer's option field it tunes (each is also a flag of `lens index`)
TUNING = {
    "batch_blocks": "batch_blocks",
    "rpc_retries": "retries",
    "metadata_timeout_s": "metadata_timeout_s",
    "ipfs_gateway": "ipfs_gateway",
    "metadata_allow_private": "metadata_allow_private",
    "index_commit_logs": "commit_logs",
    "index_commit_s": "commit_s",
    "index_workers": "workers",
    "index_worker_min_blocks": "worker_min_blocks",
    "duckdb_threads": "duckdb_threads",
    "duckdb_checkpoint": "duckdb_checkpoint",
}


def index_options(**fields):
    """The indexer's options record, its tuning taken from the settings registry (fields given here win)."""
    from indexer.run import IndexOptions

    tuned = {field: settings.get(key) for key, field in TUNING.items()}
    return IndexOptions(**{**tuned, **fields})


def _tuning_options(fn):
    """The indexer's tuning settings as flags of `lens index` (passed to the command as **tuning)."""
    for key in reversed(TUNING):
        fn = settings.option(key)(fn)
    return fn


def _short(address: str) -> str:
    """0x1234…abcd: an address that fits a narrow column (the full one is in `--json`)."""
    return address if len(address) <= 14 else f"{address[:6]}…{address[-4:]}"


def print_status(s: dict, console: Console) -> None:
    """`lens index status` for a terminal: short lines (readable in 80 columns), the head and lag, or why unknown."""
    from rich.markup import escape

    console.print(
        f"[bold]{escape(str(s['deployment']))}[/bold]  chain {s['chain_id']}  rpc {escape(str(s['rpc_url']))}"
    )
    if s["head"] is not None:
        lag = s["lag"]
        behind = "" if lag is None else f"  lag {lag} block{'s' if lag != 1 else ''}"
        console.print(f"indexed to block {s['last_block']}  head {s['head']}{behind}")
    else:
        console.print(f"indexed to block {s['last_block']}  head unknown: {escape(str(s['head_error']))}")
    line = f"undecodable logs {s['undecodable']}"
    if s.get("last_reorg"):
        line += f"  last reorg: {escape(s['last_reorg'])}"
    console.print(line)
    if s.get("rpc_faults"):
        faults = ", ".join(f"{k} ×{v}" for k, v in s["rpc_faults"].items())
        console.print(f"RPC faults met (run since {s.get('rpc_faults_since') or '?'}): {escape(faults)}")
    else:
        console.print("RPC faults met: none")
    if s["last_error"]:
        console.print(f"[red]last error: {escape(s['last_error'])}[/red]")
    t = Table("contract", "address", "last block", "lag", "updated (UTC)", title="checkpoints", title_justify="left")
    for c in s["contracts"]:
        t.add_row(
            escape(c.get("role", "") or ""),
            _short(c["address"]),
            str(c["last_block"]),
            "?" if c["lag"] is None else str(c["lag"]),
            (c["updated_at"] or "")[:19].replace("T", " "),
        )
    console.print(t)
    t = Table("event", "rows", title="rows per event", title_justify="left")
    for ev, n in sorted(s["rows"].items()):
        t.add_row(ev, str(n))
    console.print(t)
    if s["undecodable_by_topic0"]:
        t = Table("topic0 of undecodable logs", "logs", title="undecodable", title_justify="left")
        for topic, n in sorted(s["undecodable_by_topic0"].items(), key=lambda kv: -kv[1]):
            t.add_row(_short(topic), str(n))
        console.print(t)
    if s["tasks"]:
        console.print("tasks: " + ", ".join(f"{k} {v}" for k, v in s["tasks"].items()))


def _progress_columns():
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("block {task.fields[block]}/{task.fields[target]}"),
        TextColumn("{task.fields[bps]:.0f} blocks/s"),
        TextColumn("{task.fields[eps]:.0f} events/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens index`, `lens index status` and `lens bench index`."""

    @cli.group("index", invoke_without_command=True)
    @settings.option("deployment")
    @settings.option("rpc")
    @settings.option("db")
    @click.option(
        "--from-block",
        "--from",
        "start",
        type=click.IntRange(min=0),
        default=None,
        metavar="BLOCK",
        help="First block, e.g. a recent one to index a window of a real deployment (default: the checkpoint + 1, "
        "or the deployment's start block). --from is an alias.",
    )
    @click.option(
        "--to-block",
        "--to",
        "end",
        type=click.IntRange(min=0),
        default=None,
        metavar="BLOCK",
        help="Last block (default: head - confirmations). --to is an alias.",
    )
    @click.option(
        "--follow", is_flag=True, help="Keep following the head; the dashboard sees new events within seconds."
    )
    @settings.option("confirmations")
    @_tuning_options
    @click.pass_context
    def index_cmd(ctx, deployment, rpc, db, start, end, follow, confirmations, **tuning) -> None:
        """Index Newton events of a deployment (devnet, ethereum, base, sepolia, base-sepolia or a JSON path) into DuckDB."""
        if ctx.invoked_subcommand is not None:
            return
        from indexer import deployment as deployments
        from indexer.run import Indexer

        if start is not None and end is not None and end < start:
            raise LensError(
                f"--to-block {end} is before --from-block {start}", "give a last block at or after the first"
            )

        dep = deployments.load(deployment, settings.get("deployment_file"))
        opts = index_options(
            db=db,
            rpc_url=rpc or "",
            start=start,
            end=end,
            follow=follow,
            confirmations=confirmations,  # None or -1: the preset's default (resolved by Indexer)
            **{TUNING[k]: v for k, v in tuning.items() if v is not None},
        )
        stop = threading.Event()
        console = Console(stderr=True)
        with Progress(*_progress_columns(), console=console, transient=False) as progress:
            task = progress.add_task(
                f"{dep.name} (chain {dep.chain_id})", total=None, block="-", target="-", bps=0.0, eps=0.0, events=0
            )

            def on_progress(st) -> None:
                el = max(time.perf_counter() - st.started, 1e-9)
                done = max(0, st.current_block - st.start_block + 1)
                total = max(1, st.target_block - st.start_block + 1)
                progress.update(
                    task,
                    total=total,
                    completed=min(done, total),
                    block=st.current_block,
                    target=st.target_block,
                    bps=done / el,
                    eps=st.logs / el,
                    events=st.logs,
                )

            ix = Indexer(dep, opts, on_progress, stop)
            old = signal.getsignal(signal.SIGINT)

            def on_sigint(signum, frame) -> None:
                stop.set()  # finish the current transaction, then exit cleanly

            signal.signal(signal.SIGINT, on_sigint)
            signal.signal(signal.SIGTERM, on_sigint)
            try:
                st = ix.run()
            finally:
                signal.signal(signal.SIGINT, old)
        el = time.perf_counter() - st.started
        click.echo(
            f"indexed {dep.name} blocks {st.start_block}..{ix.checkpoint}: {st.logs} logs, {st.rows} rows, "
            f"{st.undecodable} undecodable, {st.reorgs} reorgs, {el:.1f} s → {db}"
        )
        faults = ix.rpc.stats.faults
        if faults:  # the node misbehaved and the run got through anyway: say what it met
            click.echo("RPC faults met (retried): " + ", ".join(f"{k} ×{v}" for k, v in sorted(faults.items())))

    @index_cmd.command("status")
    @settings.option("db")
    @click.option("--rpc", default=None, help="RPC URL to ask for the head (default: the one the DB was indexed from).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def status_cmd(db, rpc, as_json) -> None:
        """Per contract: last indexed block, head, lag; rows per event type; undecodable logs; RPC faults; last error."""
        from indexer.load import connect_read
        from indexer.status import summary

        with connect_read(db) as con:
            s = summary(con, rpc or None)
        if as_json:
            click.echo(json.dumps(s, default=str))
            return
        print_status(s, Console(highlight=False))

    @bench.command("index")
    @click.option("--events", type=int, default=50_000, show_default=True, help="Events on the benchmark devnet range.")
    @click.option(
        "--deployment",
        "deployment",
        default=None,
        help="Reuse an existing deployment's range (devnet file or path) instead of building one.",
    )
    @click.option("--rpc", "rpc", default=None, help="RPC URL for --deployment (default: the file's).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def bench_index(events, deployment, rpc, as_json) -> None:
        """Indexer throughput vs a raw eth_getLogs client over the same devnet range (target ratio >= 0.5)."""
        from devnet.index_bench import run_bench

        console = Console(stderr=True)
        if deployment == "devnet":
            deployment = settings.get("deployment_file")
        res = run_bench(
            events, log=console.print if not as_json else (lambda m: None), deployment=deployment, rpc_url=rpc
        )
        if as_json:
            click.echo(json.dumps(res))
            return
        click.echo(f"events {res['events']} over {res['blocks']} blocks")
        click.echo(
            f"raw eth_getLogs: {res['raw_logs_per_s']:.0f} logs/s   indexer: {res['indexer_logs_per_s']:.0f} logs/s   "
            f"ratio {res['ratio']:.2f} (target >= 0.5, goal 0.8)"
        )
        click.echo("stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in res["stages_s"].items()))
        click.echo(
            "cpu (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in res["cpu_s"].items() if v is not None)
            + f"; wall {res['indexer_s']:.2f}"
        )
        per_log = res["stage_cpu_us_per_log"]
        click.echo(
            "stage cpu (s): "
            + ", ".join(f"{k} {v:.2f} ({per_log[k]:.0f} µs/log)" for k, v in res["stage_cpu_s"].items())
            + f"; unattributed {res['unattributed_cpu_s']:.2f}"
        )
        raw = res["raw_cpu_s"]
        node = f", node {raw['node']:.2f}" if raw["node"] is not None else ""
        m = res["machine"]
        click.echo(
            f"raw client cpu (s): client {raw['client']:.2f}{node}; machine: {m['cores']} cores, load average "
            + " / ".join(f"{x:.2f}" for x in m["load_avg_before"])
            + " before, "
            + " / ".join(f"{x:.2f}" for x in m["load_avg_after"])
            + " after"
        )
