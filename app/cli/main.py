"""The `lens` root command: assembles the command families and turns LensError into a clean message."""

from __future__ import annotations

import sys

import click

from app import settings
from app.errors import LensError


class LensGroup(click.Group):
    """A click group that prints a LensError as one clear line and exits 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LensError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            if err.hint:
                click.echo(f"hint: {err.hint}", err=True)
            sys.exit(1)


@click.group(cls=LensGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Newton Lens: index, replay, explain and monitor Newton Protocol decisions."""


@cli.group(cls=LensGroup)
def bench() -> None:
    """Benchmarks, reported as ratios against limits measured in the same run."""


@cli.command("settings")
def show_settings() -> None:
    """Print every setting with its default, environment variable and help (Markdown)."""
    click.echo(settings.markdown_table())


def _register() -> None:
    """Attach every command family; each module adds its commands to `cli` and `bench`."""
    from app.cli import contracts_cmds, demo_cmds, devnet_cmds, docs_cmds, engine_cmds, index_cmds, serve_cmds, sim_cmds

    for module in (contracts_cmds, demo_cmds, devnet_cmds, docs_cmds, engine_cmds, index_cmds, serve_cmds, sim_cmds):
        module.register(cli, bench)


_register()


if __name__ == "__main__":
    cli()
