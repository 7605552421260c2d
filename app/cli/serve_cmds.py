"""CLI: `lens serve` (the Streamlit dashboard), `lens synth` (synthetic DB) and `lens bench app` (page render times)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from app import settings
from app.errors import LensError

ROOT = Path(__file__).resolve().parents[2]
APP_SCRIPT = ROOT / "streamlit_app.py"


def _port_is_free(port: int) -> bool:
    from devnet.anvil import port_is_free

    return port_is_free(port) and port_is_free(port, "0.0.0.0")


def streamlit_command(port: int, address: str = "") -> list[str]:
    """The `streamlit run` command line of the dashboard on a port."""
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if address:
        cmd += ["--server.address", address]
    return cmd


def _lens_exe() -> str:
    """The `lens` console script of this environment (the one beside the running Python)."""
    beside = Path(sys.executable).parent / "lens"
    return str(beside) if beside.exists() else (shutil.which("lens") or "lens")


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen | None) -> None:
    """Stop a child we started, by its own handle: SIGTERM, then SIGKILL after a grace period."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `serve`, `synth` and `bench app` to the root and bench groups."""

    @cli.command("serve")
    @settings.option("db")
    @click.option(
        "--port",
        "--serve-port",
        "port",
        type=int,
        default=lambda: settings.get("serve_port"),
        show_default="8501",
        help="Port of the dashboard (--serve-port is the same flag). [env LENS_SERVE_PORT]",
    )
    @click.option("--address", default="", help="Interface to listen on (default: Streamlit's, all interfaces).")
    @click.option("--follow", is_flag=True, help="Also run `lens index --follow` on the same DB while serving.")
    @settings.option("page_size", type=click.IntRange(min=1))
    def serve(db: str, port: int, address: str, follow: bool, page_size: int) -> None:
        """Open the Streamlit dashboard on the DB (LENS_DB reaches the app through the environment)."""
        if not 0 < port < 65536:
            raise LensError(f"--port {port} is not a TCP port", "pass a port between 1 and 65535")
        if not _port_is_free(port):
            raise LensError(
                f"port {port} is busy: something already listens there",
                f"stop it, or pick another port: lens serve --port {port + 1}",
            )
        db_path = str(Path(db).expanduser().resolve())
        env = dict(os.environ, LENS_DB=db_path, LENS_PAGE_SIZE=str(page_size))  # the pages read their settings
        indexer = None
        if follow:
            indexer = subprocess.Popen([_lens_exe(), "index", "--follow", "--db", db_path], env=env)
            click.echo(f"serve: indexer following the chain into {db_path} (pid {indexer.pid})", err=True)
        click.echo(f"serve: dashboard on http://localhost:{port}  (DB {db_path})", err=True)
        app = subprocess.Popen(streamlit_command(port, address), env=env, cwd=str(ROOT))
        # SIGTERM (e.g. from `lens devnet down`-style tooling or a test) must also stop our children.
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while app.poll() is None:
                if indexer is not None and indexer.poll() is not None:
                    click.secho(
                        f"serve: the indexer exited with code {indexer.returncode}; the dashboard keeps serving "
                        "what is indexed",
                        fg="yellow",
                        err=True,
                    )
                    indexer = None
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            _stop(app)
            _stop(indexer)
        if app.returncode not in (0, -15, None):
            raise LensError(f"streamlit exited with code {app.returncode}", "see the lines above for its message")

    @cli.command("synth")
    @click.option("--tasks", "n_tasks", type=int, default=10_000, show_default=True, help="Number of synthetic tasks.")
    @settings.option("db")
    @settings.option("seed")
    @click.option(
        "--operators",
        "n_operators",
        type=int,
        default=lambda: settings.get("operators"),
        show_default="10",
        help="Number of synthetic operators.",
    )
    @click.option("--force", is_flag=True, help="Overwrite the DB file if it exists.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object with what was written.")
    def synth(n_tasks: int, db: str, seed: int, n_operators: int, force: bool, as_json: bool) -> None:
        """Write a realistic synthetic DB (the indexer's schema, the devnet's policies) fast."""
        from app import synth as synth_mod

        summary = synth_mod.build(
            Path(db), tasks=n_tasks, seed=seed, operators=n_operators, force=force, progress=not as_json
        )
        if as_json:
            click.echo(json.dumps(summary))
        else:
            click.echo(
                f"synth: {summary['tasks']:,} tasks, {summary['operators']} operators, "
                f"{summary['policy_versions']} params versions → {summary['db']} in {summary['seconds']:.1f} s"
            )

    @bench.command("app")
    @click.option(
        "--tasks", "n_tasks", type=int, default=1_000_000, show_default=True, help="Synthetic tasks in the DB."
    )
    @click.option(
        "--db",
        "db",
        default=lambda: str(ROOT / "data" / "bench" / "app.duckdb"),
        show_default="data/bench/app.duckdb",
        help="Where the bench DB is built (reused if it has enough tasks).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object: pages → cold_s, warm_s.")
    def bench_app(n_tasks: int, db: str, as_json: bool) -> None:
        """Cold and warm render time of every dashboard page through AppTest, over a synthetic DB."""
        from app import synth as synth_mod

        result = synth_mod.bench_pages(Path(db), tasks=n_tasks, progress=not as_json)
        if as_json:
            click.echo(json.dumps(result))
            return
        from app.pagebench import format_report

        for line in format_report(result):
            click.echo(line)
