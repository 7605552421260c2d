"""CLI: `lens exporter` — serve the Lens DB's figures to Prometheus on /metrics."""

from __future__ import annotations

import time

import click

from app import settings


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens exporter` to the root group."""

    @cli.command("exporter")
    @settings.option("db")
    @settings.option("rpc")
    @click.option(
        "--port",
        "exporter_port",
        type=int,
        default=lambda: settings.get("exporter_port"),
        show_default="9464",
        help=f"{settings.REGISTRY['exporter_port'].help} [env {settings.REGISTRY['exporter_port'].env}]",
    )
    @click.option(
        "--address",
        "exporter_address",
        default=lambda: settings.get("exporter_address"),
        show_default="127.0.0.1",
        help=f"{settings.REGISTRY['exporter_address'].help} [env {settings.REGISTRY['exporter_address'].env}]",
    )
    @settings.option("operator_recent_tasks")
    @settings.option("alert_participation_below")
    @settings.option("alert_missed_streak")
    @click.option(
        "--once",
        is_flag=True,
        help="Print one scrape in the Prometheus text format and exit (for a look, or node_exporter's textfile).",
    )
    def exporter_cmd(
        db: str,
        rpc: str,
        exporter_port: int,
        exporter_address: str,
        operator_recent_tasks: int,
        alert_participation_below: float,
        alert_missed_streak: int,
        once: bool,
    ) -> None:
        """Serve Prometheus metrics on http://ADDRESS:PORT/metrics, reading the DB read-only on every scrape:
        operator participation, stake and streaks; tasks; replays; challenge candidates; challenges; indexer lag."""
        from pathlib import Path

        from app.errors import LensError
        from app.exporter import ExporterOptions, serve
        from app.queries.operators import AlertThresholds

        path = Path(db).expanduser()
        if not path.is_file():
            raise LensError(f"no database at {path}", "index a chain with `lens index` (or pass --db PATH)")
        options = ExporterOptions(
            db=str(path),
            rpc_url=rpc,
            recent=operator_recent_tasks,
            thresholds=AlertThresholds(alert_participation_below, alert_missed_streak),
        )
        if once:
            from prometheus_client import generate_latest

            from app.exporter import registry

            click.echo(generate_latest(registry(options)).decode(), nl=False)
            return
        server = serve(options, exporter_port, exporter_address)
        host, port = server.server_address[:2]
        click.echo(f"serving Prometheus metrics of {path} on http://{host}:{port}/metrics (Ctrl-C stops)", err=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
