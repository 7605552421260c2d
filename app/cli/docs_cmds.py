"""CLI: `lens docs readme` — regenerates the README's generated sections (CLI reference, settings table)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from app import settings

README = settings.ROOT / "README.md"


def command_rows(group: click.Group, prefix: str = "lens") -> list[tuple[str, str]]:
    """(command path, first line of its help) for every command under group, depth first."""
    rows: list[tuple[str, str]] = []
    ctx = click.Context(group)
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        path = f"{prefix} {name}"
        rows.append((path, cmd.get_short_help_str(limit=200)))
        if isinstance(cmd, click.Group):
            rows.extend(command_rows(cmd, path))
    return rows


def cli_reference(root: click.Group) -> str:
    """The CLI reference as a Markdown table."""
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `{path}` | {help_text} |" for path, help_text in command_rows(root)]
    return "\n".join(lines)


def render_readme(text: str, root: click.Group) -> str:
    """README text with the generated sections between their markers replaced by fresh content."""
    sections = {"cli": cli_reference(root), "settings": settings.markdown_table()}
    for name, body in sections.items():
        pattern = re.compile(rf"<!-- {name} -->.*?(?:<!-- /{name} -->)|<!-- {name} -->", re.S)
        block = f"<!-- {name} -->\n{body}\n<!-- /{name} -->"
        text = pattern.sub(lambda _m, block=block: block, text, count=1)
    return text


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens docs` to the root group."""

    @cli.group("docs", hidden=True)
    def docs() -> None:
        """Generated documentation."""

    @docs.command("readme")
    @click.option("--check", is_flag=True, help="Exit 1 if README.md is not up to date instead of writing it.")
    def readme(check: bool) -> None:
        """Rewrite the CLI reference and settings table in README.md from the code."""
        current = Path(README).read_text()
        fresh = render_readme(current, cli)
        if check:
            if fresh != current:
                raise SystemExit("README.md is out of date: run `lens docs readme`")
            click.echo("README.md is up to date")
            return
        Path(README).write_text(fresh)
        click.echo("README.md updated")
