"""CLI: `lens devnet up|down|status` — the local chain with the devnet contracts — and `lens demo`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from app import settings


def _print_deployment(doc: dict, reused: bool) -> None:
    """Human summary of a deployment document."""
    verb = "reusing the running devnet" if reused else "devnet deployed"
    click.secho(
        f"{verb}: chain {doc['chain_id']} at {doc['rpc_url']} (deployment block {doc.get('deployment_block')})",
        fg="green",
    )
    for role, address in doc.get("contracts", {}).items():
        click.echo(f"  {role:<22} {address}")
    for name, policy in doc.get("policies", {}).items():
        click.echo(f"  policy {name:<15} {policy['address']}  {policy.get('entrypoint', '')}")
    for name, client in doc.get("clients", {}).items():
        click.echo(f"  client {name:<15} {client['address']}  → {client.get('policy', '')}")


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens devnet …` and `lens demo` to the root group."""

    @cli.group()
    def devnet() -> None:
        """The local devnet: anvil with Newton's devnet contracts deployed."""

    @devnet.command("up")
    @settings.option("port")
    @settings.option("chain_id")
    @settings.option("block_time")
    @settings.option("accounts")
    @settings.option("operators")
    @settings.option("seed")
    @settings.option("challenge_window_blocks")
    @settings.option("response_window_blocks")
    @settings.option("slash_bps")
    @settings.option("deployment_file")
    @click.option("--json", "as_json", is_flag=True, help="Print the deployment document as JSON.")
    def devnet_up(as_json: bool, **opts) -> None:
        """Start anvil (or reuse the running one), deploy the contracts, register operators, write the deployment."""
        from devnet import lifecycle

        cfg = lifecycle.config_from_settings(**opts)
        doc, reused = lifecycle.up(cfg)
        if as_json:
            click.echo(json.dumps(doc, indent=2))
        else:
            _print_deployment(doc, reused)
            click.echo(f"deployment document: {cfg.deployment_file}")

    @devnet.command("down")
    @settings.option("deployment_file")
    def devnet_down(deployment_file: str) -> None:
        """Stop the anvil process `lens devnet up` started (by its pid file)."""
        from devnet import lifecycle

        node = lifecycle.down(Path(deployment_file))
        click.echo(f"stopped anvil (pid {node.pid}, {node.url})" if node else "no devnet running")

    @devnet.command("status")
    @settings.option("deployment_file")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def devnet_status(deployment_file: str, as_json: bool) -> None:
        """Whether the devnet runs, where, and its head block."""
        from devnet import lifecycle

        info = lifecycle.status(Path(deployment_file))
        if as_json:
            click.echo(json.dumps(info))
        elif info["running"]:
            click.echo(
                f"running: chain {info['chain_id']} at {info['url']} (pid {info['pid']}), head block {info['head_block']}"
            )
        else:
            click.echo("not running — start it with `lens devnet up`")
