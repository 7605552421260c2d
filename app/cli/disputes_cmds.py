"""CLI: `lens disputes` — every challenge, challenge candidates, conflicts and challengers (the Disputes page's twin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app import settings
from app.errors import LensError


def _progress(total: int, quiet: bool):
    """A rich progress bar on stderr for replaying the decisions the DB has no replay of."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]replaying decisions without a replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=True,
    )


def build(db: str, rpc: str, replay: bool, replay_max: int, timeout_ms: int, quiet: bool = False) -> Any:
    """The Disputes record of a DB file: replays the responses it has no replay of (up to `replay_max`), in memory."""
    from app.queries import disputes as dq
    from indexer.load import connect_read

    path = Path(db).expanduser()
    if not path.is_file():
        raise LensError(f"no database at {path}", "index a chain with `lens index` (or pass --db PATH)")
    with connect_read(str(path)) as con:
        window = dq.challenge_window(con, rpc)
        head = dq.head_block(con, rpc)
        missing = dq.missing_replays(con)
        records = dq.task_records(con, missing) if replay and 0 < len(missing) <= replay_max else []
    if missing and replay and len(missing) > replay_max:
        raise LensError(
            f"{len(missing):,} responses have no replay in {path.name}: challenge candidates cannot be known without "
            "them",
            f"run `lens audit --db {path}` once (it stores every replay), or raise --replay-max to replay them now",
        )
    extra = None
    if records:
        from app.engine.audit import run_audit

        with _progress(len(records), quiet) as bar:
            job = bar.add_task("replay", total=len(records))
            results, _ = run_audit(records, timeout_ms=timeout_ms, on_progress=lambda n, _rows: bar.advance(job, n))
        extra = dq.replay_frame([r for r, _ in results])
    with connect_read(str(path)) as con:
        return dq.disputes(con, head, window, extra=extra, replayed_now=len(records))


def _clean(text: Any) -> str:
    """On-chain text (operator names come from metadata anyone writes) without control characters for the terminal."""
    return "".join(ch for ch in str(text or "") if ch.isprintable())


def _short(text: Any, n: int = 10) -> str:
    text = str(text or "")
    return text if len(text) <= n + 2 else text[: n + 2] + "…"


def _more(total: int, shown: int) -> None:
    if total > shown:
        click.echo(f"  … and {total - shown:,} more (--limit, or --json for all)")


def _print(d: Any, out: dict, limit: int) -> None:
    """Human-readable disputes: the newest `limit` challenges and candidates (open ones first), every conflict."""
    head = f"{out['head']:,}" if out["head"] is not None else "unknown"
    click.echo(
        f"head block {head} ({out['head_source']}), challenge window {out['window_blocks']} blocks "
        f"({out['window_source']}); {out['responded']:,} responses"
        + (f", {out['missing_replays']:,} without a replay" if out["missing_replays"] else "")
        + (
            f"; {out['replayed_now']:,} had no replay in the DB and were replayed now (`lens audit` stores replays)"
            if out["replayed_now"]
            else ""
        )
    )
    s = out["summary"]
    click.echo("")
    click.secho(
        f"Challenges: {s['challenges']} ({s['successful']} successful, {s['unsuccessful']} unsuccessful)", bold=True
    )
    for c in out["challenges"][:limit]:
        outcome = click.style("successful", fg="green") if c["success"] else click.style("unsuccessful", fg="yellow")
        timing = (
            f"{c['blocks_after_response']} of {c['window_blocks']} blocks after the response"
            if c["blocks_after_response"] is not None
            else "response not indexed"
        )
        click.echo(
            f"  block {c['block_number']:>8}  task {_short(c['task_id'])}  {outcome}  by {_short(c['challenger'])}  "
            f"{timing}  replay {c['replay']}"
        )
        for sl in c["slashed"]:
            amount = f"{int(sl['amount_wei']) / 1e18:,.4f}" if sl["amount_wei"] else "?"
            click.echo(f"      slashed {amount} stake from {_clean(sl['name'] or sl['operator'])} ({sl['operator']})")
    _more(len(out["challenges"]), min(limit, len(out["challenges"])))
    click.echo("")
    click.secho(
        f"Challenge candidates: {s['candidates']} ({s['open_candidates']} open, {s['missed_candidates']} window missed)",
        bold=True,
        fg="red" if s["open_candidates"] else None,
    )
    ordered = sorted(out["candidates"], key=lambda c: c["state"] != "open")  # open first, each newest first
    for c in ordered[:limit]:
        att = "allow" if c["attested_allow"] else "deny"
        rep = "—" if c["replayed_allow"] is None else ("allow" if c["replayed_allow"] else "deny")
        left = f"{c['blocks_left']} blocks left" if c["state"] == "open" else "window missed"
        click.echo(
            f"  {c['task_id']}  attested {att}, replay {rep}  window ends at block {c['window_end_block']:,}: {left}"
            + ("  (a challenge failed)" if c["challenged_unsuccessfully"] else "")
        )
    _more(len(ordered), min(limit, len(ordered)))
    if out["conflicts"]:
        click.echo("")
        click.secho(
            f"CONFLICTS: {len(out['conflicts'])} successful challenges against responses Lens' replay agrees with — "
            "Lens or the resolver is wrong",
            fg="red",
            bold=True,
        )
        for c in out["conflicts"]:
            click.secho(f"  {c['task_id']}  challenged at block {c['block_number']} by {c['challenger']}", fg="red")
    if out["challengers"]:
        click.echo("")
        click.secho("Challengers", bold=True)
        for c in out["challengers"]:
            click.echo(
                f"  {c['challenger']}  {c['challenges']} challenges, {c['successful']} successful "
                f"({100 * (c['success_rate'] or 0):.0f}%), {c['right_per_replay']} right per Lens' replay"
            )
    for note in out["notes"]:
        click.secho(f"note: {note}", fg="yellow", err=True)


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens disputes` to the root group."""

    @cli.command("disputes")
    @settings.option("db")
    @settings.option("rpc")
    @settings.option("eval_timeout_ms")
    @settings.option("replay_max")
    @click.option(
        "--no-replay",
        is_flag=True,
        help="Do not replay responses the DB has no replay of (their candidates are then reported as unknown).",
    )
    @click.option(
        "--limit",
        type=int,
        default=20,
        show_default=True,
        help="Challenges and candidates listed as text (not --json).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (challenges, candidates, …).")
    def disputes_cmd(
        db: str, rpc: str, eval_timeout_ms: int, replay_max: int, no_replay: bool, limit: int, as_json: bool
    ) -> None:
        """Every challenge with its outcome and slashes; challenge candidates (replay disagrees, not yet answered by a
        successful challenge) with the blocks left in their window; challenges Lens' replay disputes."""
        d = build(db, rpc, not no_replay, replay_max, eval_timeout_ms, quiet=as_json)
        out = d.to_dict()
        out["candidates_complete"] = d.missing_replays == 0
        if as_json:
            click.echo(json.dumps(out, default=str))
        else:
            _print(d, out, max(limit, 0))
