"""The `lens` root command: assembles the command families and turns LensError into a clean message."""

from __future__ import annotations

import json
import sys

import click

from app import settings
from app.errors import LensError


def fail(ctx: click.Context | None, message: str, hint: str = "", code: int = 1) -> None:
    """Print an error as one clear line (plus a hint) — one JSON object on stdout under `--json` — and exit."""
    if ctx is not None and ctx.find_root().meta.get("lens_json"):
        click.echo(json.dumps({"error": message, "hint": hint or None}))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


class LensGroup(click.Group):
    """A click group that prints a LensError as one clear line and exits 1, never a traceback (JSON under --json)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the whole command line: errors of any subcommand are JSON when it asked for JSON
            ctx.meta["lens_json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LensError as err:
            fail(ctx, str(err), err.hint or "")
        except click.UsageError as err:
            if not ctx.find_root().meta.get("lens_json"):
                raise
            hint = f"see `{err.ctx.command_path if err.ctx else 'lens'} --help`"
            fail(ctx, err.format_message(), hint, err.exit_code)


@click.group(cls=LensGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newton-lens", prog_name="lens", message="%(prog)s %(version)s")
def cli() -> None:
    """Newton Lens: index, replay, explain and monitor Newton Protocol decisions."""


@cli.group(cls=LensGroup)
def bench() -> None:
    """Benchmarks, reported as ratios against limits measured in the same run."""


@cli.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: every setting with its value in effect.")
@click.option("--markdown", is_flag=True, help="Print the README's settings table (defaults, not values in effect).")
def show_settings(as_json: bool, markdown: bool) -> None:
    """Every setting with the value in effect (environment included), where it comes from, and its flag."""
    if markdown:
        click.echo(settings.markdown_table())
        return
    rows = settings.effective()
    if as_json:
        click.echo(
            json.dumps(
                {
                    r.key: {
                        "value": r.value,
                        "source": r.source,
                        "env": r.env,
                        "flag": r.flag if r.commands else None,
                        "commands": [f"lens {c}" for c in r.commands],
                        "flags": {f"lens {c}": f for c, f in settings.taken_by(r.key)},
                        "default": settings.REGISTRY[r.key].default,
                        "help": settings.REGISTRY[r.key].help,
                    }
                    for r in rows
                }
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value in effect", "from", "environment", "flag")
    for r in rows:
        table.add_row(
            r.key,
            str(r.value),
            f"[bold]{r.source}[/bold]" if r.source == "environment" else r.source,
            r.env,
            settings.taken_by_text(r.key).replace("`", ""),
        )
    Console(width=200).print(table)


def _register() -> None:
    """Attach every command family; each module adds its commands to `cli` and `bench`."""
    from app.cli import (
        contracts_cmds,
        demo_cmds,
        devnet_cmds,
        disputes_cmds,
        docs_cmds,
        engine_cmds,
        exporter_cmds,
        index_cmds,
        serve_cmds,
        sim_cmds,
    )

    for module in (
        contracts_cmds,
        demo_cmds,
        devnet_cmds,
        disputes_cmds,
        docs_cmds,
        engine_cmds,
        exporter_cmds,
        index_cmds,
        serve_cmds,
        sim_cmds,
    ):
        module.register(cli, bench)
    from app.cli import whatif_cmds

    whatif_cmds.register(cli, bench)
    from app.cli import operators_cmds

    operators_cmds.register(cli, bench)
    from app.cli import governance_cmds

    governance_cmds.register(cli, bench)
    from app.cli import bench_cmds, export_cmds

    export_cmds.register(cli, bench)
    bench_cmds.register(cli, bench)


_register()


if __name__ == "__main__":
    cli()
