"""CLI: `lens simulate` drives the running devnet with realistic traffic; `lens bench simulate` measures tasks/s."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from app import settings


@contextmanager
def _progress_bar(total: int, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (so `--json` keeps stdout to one object); yields the progress callback."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=False,
    ) as bar:
        job = bar.add_task("simulate", total=total)

        def update(done: int, _total: int) -> None:
            """Move the bar to `done` tasks."""
            bar.update(job, completed=done)

        yield update


def _print_summary(summary: dict, participation: dict[str, list[int]]) -> None:
    """Human-readable result of a simulation."""
    s = summary
    click.secho(
        f"simulated {s['tasks']} tasks in {s['elapsed_s']} s ({s['tasks_per_s']} tasks/s), "
        f"blocks {s['first_block']}–{s['last_block']}",
        fg="green",
    )
    click.echo(
        f"  responded {s['responded']} (allowed {s['allowed']}, denied {s['denied']}), not responded {s['unresponded']}"
    )
    click.echo(
        f"  executed {s['executed']}, denials recorded {s['denials_recorded']}, "
        f"allowed but never spent {s['unspent_allowed']} (their attestations expire)"
    )
    click.echo(
        f"  injected faults {s['faults']}, challenged successfully {s['challenged_successfully']}, "
        f"frivolous challenges {s['frivolous_challenges']}, wrong responses left unchallenged "
        f"{s.get('left_unchallenged', 0)}; params changes {s['params_changes']}"
    )
    if s.get("governance"):
        click.echo(f"  governance: {'; '.join(s['governance'])} (see `lens upgrades` after indexing)")
    for name, (signed, eligible) in participation.items():
        if eligible:
            click.echo(f"  {name:<24} signed {signed}/{eligible} ({100 * signed / eligible:.1f}%)")


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens simulate` to the root group and `lens bench simulate` to the bench group."""

    @cli.command("simulate")
    @settings.option("tasks")
    @settings.option("seed")
    @settings.option("operators")
    @settings.option("fault_rate")
    @settings.option("challenge_rate")
    @settings.option("deployment_file")
    @settings.option("rpc")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
    def simulate_cmd(
        tasks: int,
        seed: int,
        operators: int,
        fault_rate: float,
        challenge_rate: float,
        deployment_file: str,
        rpc: str,
        as_json: bool,
    ) -> None:
        """Drive the running devnet with agents' intents, operators, the aggregator and the challenger."""
        from devnet.lifecycle import read_deployment
        from devnet.simulate import SimConfig, simulate

        doc = read_deployment(Path(deployment_file))
        url = rpc or doc.get("rpc_url") or ""
        cfg = SimConfig(
            tasks=tasks, seed=seed, operators=operators, fault_rate=fault_rate, challenge_rate=challenge_rate
        )
        with _progress_bar(tasks, quiet=False) as progress:
            result = simulate(url, doc, cfg, progress)
        if as_json:
            click.echo(json.dumps(dict(result.summary(), participation=result.participation)))
        else:
            _print_summary(result.summary(), result.participation)

    @bench.command("simulate")
    @click.option(
        "--tasks",
        type=int,
        default=10_000,
        show_default=True,
        help="Tasks to simulate on a fresh anvil (issue 3: 10,000 must take at most 10 minutes).",
    )
    @settings.option("seed")
    @settings.option("operators")
    @settings.option("fault_rate")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (tasks, tasks_per_s, …).")
    def bench_simulate(tasks: int, seed: int, operators: int, fault_rate: float, as_json: bool) -> None:
        """Simulate on a fresh anvil (free port, stopped afterwards) and report tasks per second."""
        from web3 import Web3

        from devnet.anvil import start_anvil
        from devnet.lifecycle import deploy_world
        from devnet.simulate import SimConfig, simulate

        node = start_anvil(port=None)
        try:
            w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
            doc = deploy_world(
                w3,
                operators,
                seed,
                challenge_window_blocks=settings.get("challenge_window_blocks"),
                response_window_blocks=settings.get("response_window_blocks"),
                slash_bps=settings.get("slash_bps"),
            )
            cfg = SimConfig(tasks=tasks, seed=seed, operators=operators, fault_rate=fault_rate)
            with _progress_bar(tasks, quiet=as_json) as progress:
                result = simulate(node.url, doc, cfg, progress)
        finally:
            node.stop()
        summary = result.summary()
        out = {
            "tasks": summary["tasks"],
            "tasks_per_s": summary["tasks_per_s"],
            "elapsed_s": summary["elapsed_s"],
            "blocks": summary["blocks"],
            "operators": operators,
            "fault_rate": fault_rate,
            "limit_tasks_per_s": round(10_000 / 600, 2),  # issue 3: 10,000 tasks in at most 10 minutes
            "ratio_to_limit": round(summary["tasks_per_s"] / (10_000 / 600), 2),
            "within_limit": summary["elapsed_s"] <= 600 * tasks / 10_000,
        }
        if as_json:
            click.echo(json.dumps(out))
        else:
            click.echo(
                f"simulate: {out['tasks']} tasks in {out['elapsed_s']} s = {out['tasks_per_s']} tasks/s "
                f"({out['ratio_to_limit']}× the 16.67 tasks/s that 10,000 tasks in 10 minutes need)"
            )
