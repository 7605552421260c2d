"""CLI: `lens operators` (health, participation, streaks, alerts) and `lens diversity` (concentration, Nakamoto
coefficient, shared dependencies, failure what-if) — the Operators and Diversity pages' twins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app import settings
from app.errors import LensError


def _connect(db: str):
    """A read-only connection to the DB file (LensError when it is missing)."""
    from indexer.load import connect_read

    path = Path(db).expanduser()
    if not path.is_file():
        raise LensError(f"no database at {path}", "index a chain with `lens index` (or pass --db PATH)")
    return connect_read(str(path))


def thresholds(participation_below: float, missed_streak: int):
    """The alert thresholds record from the settings' values (checked)."""
    from app.queries.operators import AlertThresholds

    if not 0.0 <= participation_below <= 1.0:
        raise LensError(
            f"--alert-participation-below {participation_below} is not a share", "pass a number within 0..1, e.g. 0.9"
        )
    if missed_streak < 1:
        raise LensError(f"--alert-missed-streak {missed_streak} must be at least 1", "e.g. 5")
    return AlertThresholds(participation_below, missed_streak)


def resolve_options(con: Any, mode_setting: str, timeout_s: float):
    """The name-resolution options for this DB: the setting, with 'auto' decided by the DB's chain id."""
    from app import geo
    from app.queries.base import meta_int

    mode = geo.resolve_mode(mode_setting, meta_int(con, "chain_id"))
    if timeout_s <= 0:
        raise LensError(f"--resolve-timeout-s {timeout_s} must be positive", "e.g. 1.0")
    return geo.ResolveOptions(mode=mode, timeout_s=float(timeout_s))


def _pct(v: Any) -> str:
    return "—" if v is None else f"{float(v):.1%}"


def _short(a: str) -> str:
    return a if len(a) <= 14 else f"{a[:6]}…{a[-4:]}"


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `operators` and `diversity` to the root group."""

    @cli.command("operators")
    @settings.option("db")
    @settings.option("operator_recent_tasks")
    @settings.option("alert_participation_below")
    @settings.option("alert_missed_streak")
    @click.option("--operator", "operator", default="", help="Show one operator in detail (its address, 0x…).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
    def operators_cmd(
        db: str,
        operator_recent_tasks: int,
        alert_participation_below: float,
        alert_missed_streak: int,
        operator: str,
        as_json: bool,
    ) -> None:
        """Operator health: stake, participation (all time and recent), streaks, slashing, disputes and alerts."""
        from app.queries import operators as oq

        if operator_recent_tasks < 1:
            raise LensError(
                f"--operator-recent-tasks {operator_recent_tasks} must be at least 1",
                "e.g. --operator-recent-tasks 500",
            )
        limits = thresholds(alert_participation_below, alert_missed_streak)
        with _connect(db) as con:
            records = oq.operator_records(con, operator_recent_tasks, limits)
            detail = None
            if operator:
                detail = oq.operator_detail(con, operator, operator_recent_tasks, limits)
                if detail is None:
                    raise LensError(
                        f"operator {operator} is not in {Path(db).name}", "run `lens operators` to list the operators"
                    )
        all_alerts = [{"operator": r.operator, "name": r.name, "alert": a} for r in records for a in r.alerts]
        out = {
            "recent_window_tasks": operator_recent_tasks,
            "thresholds": {
                "participation_below": limits.participation_below,
                "missed_streak": limits.missed_streak,
            },
            "operators": [r.to_json() for r in records],
            "alerts": all_alerts,
        }
        if detail is not None:
            out["detail"] = _detail_json(detail)
        if as_json:
            click.echo(json.dumps(out, indent=2, default=str))
            return
        if not records:
            click.echo(f"No operator has registered in {Path(db).name} yet.")
            return
        _print_operators(records, operator_recent_tasks)
        if all_alerts:
            click.echo("")
            click.secho(f"Alerts ({len(all_alerts)})", bold=True)
            for a in all_alerts:
                click.secho(f"  ! {a['alert']}", fg="yellow")
        else:
            click.echo("\nNo alerts.")
        if detail is not None:
            _print_detail(detail)

    @cli.command("diversity")
    @settings.option("db")
    @settings.option("resolve_hostnames")
    @settings.option("resolve_timeout_s")
    @click.option(
        "--fail",
        "fail",
        multiple=True,
        help="What-if: fail the operators of dimension=value (country, continent, provider, asn, organisation, "
        "client_version, operator); repeatable, e.g. --fail provider=AWS --fail country=DE.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
    def diversity_cmd(
        db: str, resolve_hostnames: str, resolve_timeout_s: float, fail: tuple[str, ...], as_json: bool
    ) -> None:
        """Diversity: concentration by country, continent, provider, ASN, organisation and client version; HHI and
        the quorum Nakamoto coefficient; hidden shared dependencies; and with --fail, a failure-domain what-if."""
        from app.queries import diversity as dq

        terms = dq.parse_fail(fail)
        with _connect(db) as con:
            report = dq.diversity_report(con, resolve_options(con, resolve_hostnames, resolve_timeout_s))
            what = dq.what_if(con, report.operators, terms, report.quorum_threshold_pct) if terms else None
        out = report.to_json()
        if what is not None:
            out["what_if"] = what.to_json()
        if as_json:
            click.echo(json.dumps(out, indent=2, default=str))
            return
        _print_diversity(report, what)


def _detail_json(detail: dict) -> dict:
    """The detail view's tables as JSON-able lists."""
    out: dict[str, Any] = {"alerts": [a.message for a in detail["alerts"]]}
    for key in ("registrations", "stakes", "slashings", "disputes", "missed"):
        frame = detail[key]
        out[key] = json.loads(frame.to_json(orient="records", date_format="iso")) if len(frame) else []
    return out


def _print_operators(records: list, recent: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        "operator",
        "name",
        "stake (ETH)",
        "share",
        "signed / eligible",
        "participation",
        f"last {recent}",
        "streak",
        "slashed",
        "disputes",
        "metadata",
        title=f"{len(records)} operators",
        title_justify="left",
    )
    for r in records:
        streak = f"+{r.streak}" if r.streak > 0 else str(r.streak)
        meta = "—" if r.metadata_ok is None else ("ok" if r.metadata_ok else "cannot fetch")
        t.add_row(
            _short(r.operator),
            escape(r.name) + ("" if r.active else " (left)"),
            f"{r.stake:,.1f}",
            _pct(r.stake_share),
            f"{r.signed:,} / {r.eligible:,}",
            _pct(r.participation),
            _pct(r.recent_participation),
            streak,
            f"{r.slashed} (−{r.stake_slashed:,.1f})" if r.slashed else "0",
            f"{r.disputes} ({r.disputes_lost} lost)" if r.disputes else "0",
            meta,
        )
    _console().print(t)


def _console():
    """A rich console on stdout, wide enough for the tables when the output is not a terminal."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _print_detail(detail: dict) -> None:
    info = detail["info"]
    click.echo("")
    click.secho(f"{info.get('name') or info['operator']}  {info['operator']}", bold=True)
    click.echo(f"operator id {info['operator_id']}  socket {info.get('socket') or '—'}")
    click.echo(
        f"organisation {info.get('organisation') or '—'}  metadata "
        + (
            "—"
            if info.get("metadata_ok") is None
            else ("ok" if info["metadata_ok"] else f"error: {info.get('metadata_error')}")
        )
    )
    for _, r in detail["registrations"].iterrows():
        click.echo(f"  {r['event']} at block {int(r['block_number'])}")
    stakes = detail["stakes"]
    if len(stakes):
        changes = ", ".join(
            f"{float(s['stake']):,.1f}{' (slashed)' if bool(s['slashed']) else ''} @ {int(s['block_number'])}"
            for _, s in stakes.iterrows()
        )
        click.echo(f"  stake history (ETH @ block): {changes}")
    missed = detail["missed"]
    click.echo(f"  missed tasks: {len(missed)}" + (" (newest first)" if len(missed) else ""))
    for _, m in missed.head(10).iterrows():
        click.echo(f"    {m['task_id']}  block {m['created_block']}")
    if len(detail["disputes"]):
        click.echo(f"  disputes it was part of: {len(detail['disputes'])}")


def _print_diversity(report: Any, what: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(
        f"[bold]{len(report.operators)} registered operators[/bold], {report.total_stake:,.1f} ETH of stake; "
        f"quorum threshold {report.quorum_threshold_pct}% ({escape(report.threshold_source)}); "
        f"name resolution {report.resolution}"
    )
    t = Table("dimension", "entities", "largest", "HHI", "Nakamoto", title_justify="left")
    for name, d in report.dimensions.items():
        top = d.entities.iloc[0] if len(d.entities) else None
        t.add_row(
            name,
            str(len(d.entities)),
            "—" if top is None else f"{escape(str(top['name']))} {float(top['stake_share']):.0%}",
            f"{d.hhi:.3f}",
            str(d.nakamoto),
        )
    console.print(t)
    for name, d in report.dimensions.items():
        console.print(f"  {name}: {escape(d.sentence)}")
    if report.shared:
        console.print("[bold]Hidden shared dependencies[/bold]")
        for s in report.shared:
            console.print(f"  • {escape(s.sentence)}")
    dis = report.disagreements
    if len(dis):
        console.print("[bold]Declared location contradicted by the IP[/bold]")
        for _, r in dis.iterrows():
            console.print(f"  • {escape(str(r['name']))} {escape(str(r['disagreement']))}")
    if what is not None:
        console.print("[bold]What if[/bold]")
        console.print("  " + escape(what.sentence()))
        if what.unmatched:
            console.print(f"  [yellow]matched no operator: {escape(', '.join(what.unmatched))}[/yellow]")
