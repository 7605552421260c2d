"""CLI: `lens demo` — the whole tour in one command: devnet, traffic, index, audit, dashboard."""

from __future__ import annotations

import click

from app import settings

MISMATCHES_SHOWN = 5


def _command(root: click.Group, *path: str) -> click.Command:
    """A registered command by its path (e.g. "devnet", "up")."""
    cmd: click.Command = root
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens demo` to the root group."""

    @cli.command("demo")
    @settings.option("tasks")
    @settings.option("seed")
    @settings.option("challenge_rate")
    @settings.option("db")
    @click.option("--no-serve", is_flag=True, help="Stop after the audit instead of opening the dashboard.")
    @click.pass_context
    def demo(ctx: click.Context, tasks: int, seed: int, challenge_rate: float, db: str, no_serve: bool) -> None:
        """Start the devnet, simulate TASKS decisions, index them, audit every one, open the dashboard."""
        from devnet import lifecycle

        click.secho("1/5 devnet: starting anvil and deploying the contracts", bold=True)
        cfg = lifecycle.config_from_settings(seed=seed)
        doc, reused = lifecycle.up(cfg)
        click.echo(
            f"    chain {doc['chain_id']} at {doc['rpc_url']}" + (" (reused; its traffic is kept)" if reused else "")
        )
        if not reused:
            click.secho(f"2/5 simulate: {tasks} intents through the operator network", bold=True)
            ctx.invoke(_command(cli, "simulate"), tasks=tasks, seed=seed, challenge_rate=challenge_rate)
        else:
            click.secho(
                "2/5 simulate: skipped, the running devnet already has traffic (`lens devnet down` to start over)",
                bold=True,
            )
        click.secho(f"3/5 index: chain → {db}", bold=True)
        ctx.invoke(_command(cli, "index"), deployment="devnet", db=db)
        click.secho("4/5 audit: replaying every indexed decision", bold=True)
        # the first few mismatches, then a count and the command that lists them all (a demo may have hundreds)
        ctx.invoke(_command(cli, "audit"), db=db, max_listed=MISMATCHES_SHOWN)
        if no_serve:
            return
        click.secho("5/5 dashboard: Ctrl-C stops it; the chain keeps running until `make down`", bold=True)
        ctx.invoke(_command(cli, "serve"), db=db)
