"""CLI: `lens upgrades` — every watched proxy's implementation, admin, owner and history, and the risks flagged
(the Governance page's twin)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from app import settings
from app.errors import LensError


def build(db: str, rpc: str | None, block: int | None = None):
    """The governance report of a DB file: its deployment's proxies, read on the chain at `rpc` (the deployment's
    own RPC by default) at `block` (default: latest)."""
    from app.queries import base
    from app.queries import governance as gq
    from indexer.load import connect_read

    path = Path(db).expanduser()
    if not path.is_file():
        raise LensError(f"no database at {path}", "index a chain with `lens index` (or pass --db PATH)")
    with connect_read(str(path)) as con:
        doc = base.deployment_from_meta_safe(con)
        if not doc or not doc.get("contracts"):
            raise LensError(
                f"{path.name} does not say which contracts it indexed",
                "re-index it with `lens index` (it records the deployment), or start the devnet (`lens devnet up`)",
            )
        return gq.build_report(con, doc, rpc or doc.get("rpc_url") or None, block)


def _short(text: str) -> str:
    """0x1234…abcd for every address or hash in a value ('role → account' keeps both sides)."""
    return re.sub(r"0x[0-9a-fA-F]{12,}", lambda m: f"{m.group(0)[:6]}…{m.group(0)[-4:]}", text)


def _print(report) -> None:
    """Human-readable report: one block per proxy, then the risks."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(soft_wrap=True)  # addresses and hashes stay whole (copyable); the tables shorten them
    if report.chain_note:
        console.print(f"[yellow]{escape(report.chain_note)}: slots, owners and risks are not read[/yellow]")
    for p in report.proxies:
        console.print(f"\n[bold]{escape(p.role)}[/bold]  {p.address}")
        contract = f" ({escape(p.implementation_contract)})" if p.implementation_contract else ""
        console.print(f"  implementation {p.implementation or '?'}{contract}")
        if p.implementation_code_hash:
            console.print(f"  code hash      {p.implementation_code_hash}")
        console.print(f"  admin          {p.admin or '?'}")
        console.print(f"  owner          {p.owner or '?'}")
        t = Table("block", "event", "value", "tx", "sender", box=None, pad_edge=False)
        for h in p.history:
            t.add_row(
                f"{h.block_number:,}", h.event, escape(_short(h.value)), _short(h.tx_hash), _short(h.sender or "?")
            )
        console.print(t, soft_wrap=False)
    for d in report.layout_diffs:
        verdict = "append-only" if not d.changes else f"{len(d.changes)} change(s)"
        console.print(
            f"\nstorage layout {d.old_contract} → {d.new_contract} at {d.proxy}: {verdict}"
            + (f"; appended {', '.join(d.appended)}" if d.appended else "")
        )
    console.print(f"\n[bold]risks[/bold]: {len(report.risks)}")
    for r in report.risks:
        console.print(f"  [red]{r.kind}[/red] {r.address}: {escape(r.detail)}")


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens upgrades`."""

    @cli.command("upgrades")
    @click.option("--db", default=None, help="DuckDB file (default: setting `db`).")
    @click.option("--rpc", default=None, help="RPC to read the ERC-1967 slots from (default: the deployment's).")
    @click.option("--block", type=int, default=None, help="Read the slots at this block (default: latest).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object: proxies and risks.")
    def upgrades(db: str | None, rpc: str | None, block: int | None, as_json: bool) -> None:
        """Every watched proxy: implementation and admin (ERC-1967 slots), owner, history; risks flagged."""
        report = build(db or settings.get("db"), rpc, block)
        if as_json:
            click.echo(json.dumps(report.as_json(), default=str))
            return
        _print(report)
