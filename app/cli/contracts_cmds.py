"""CLI commands (placeholder until its issue lands)."""
from __future__ import annotations

import click


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach this module's commands to the root group and the bench group."""
