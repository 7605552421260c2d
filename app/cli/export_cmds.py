"""CLI: `lens export parquet` — the DB as Hive-partitioned Parquet for DuckDB, Spark, Trino and Dask."""

from __future__ import annotations

import json
from pathlib import Path

import click

from app import settings
from app.errors import LensError


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach the `export` group (`export parquet`) to the root group."""

    @cli.group("export")
    def export() -> None:
        """Export the DB for other engines."""

    @export.command("parquet")
    @settings.option("db")
    @click.option(
        "--out", "out", required=True, type=click.Path(file_okay=False), help="Directory of the export (created)."
    )
    @click.option(
        "--table",
        "tables",
        multiple=True,
        help="Export only this table (repeatable); the manifest keeps the other tables' entries.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object: partitions written, kept, removed.")
    def export_parquet_cmd(db: str, out: str, tables: tuple[str, ...], as_json: bool) -> None:
        """Every raw and derived table as Hive-partitioned Parquet (chain_id, month) with a manifest; re-running
        rewrites only partitions whose rows changed."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from app.export import export_parquet
        from indexer.load import connect_read

        path = Path(db).expanduser()
        if not path.is_file():
            raise LensError(f"no database at {path}", "index a chain with `lens index` (or `lens synth`), or pass --db")
        with (
            Progress(
                TextColumn("export"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} tables  {task.description}"),
                TimeElapsedColumn(),
                disable=as_json,
                transient=True,
            ) as progress,
            connect_read(str(path)) as con,  # one read connection: every table from the same committed state
        ):
            bar = progress.add_task("", total=None)

            def on_table(name: str, i: int, n: int) -> None:
                progress.update(bar, completed=i, total=n, description=name)

            result = export_parquet(con, Path(out), tables=list(tables) or None, db_label=str(path), on_table=on_table)
        summary = result.to_dict()
        if as_json:
            click.echo(json.dumps(summary))
            return
        ranges = ", ".join(f"chain {c}: blocks {lo}–{hi}" for c, (lo, hi) in summary["block_range"].items()) or "—"
        click.echo(
            f"export: {summary['tables']} tables, {summary['rows']:,} rows → {summary['out']}  ({ranges})\n"
            f"  partitions written {summary['partitions_written']}, unchanged {summary['partitions_kept']}, "
            f"removed {summary['partitions_removed']} in {summary['seconds']:.1f} s; manifest: {summary['out']}/manifest.json"
        )
