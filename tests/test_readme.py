"""The README stays true: its CLI reference and settings table are what the code has."""

from __future__ import annotations

from app.cli.docs_cmds import README, render_readme
from app.cli.main import cli


def test_readme_generated_sections_are_current() -> None:
    """Every command and every setting is documented as the code defines it (run `lens docs readme` to fix)."""
    text = README.read_text()
    assert render_readme(text, cli) == text


def test_readme_lists_every_command_and_setting() -> None:
    """The reference names real commands (a new command shows up) and every settings env var."""
    text = README.read_text()
    from app import settings

    for setting in settings.REGISTRY.values():
        assert f"`{setting.env}`" in text
    assert "| `lens devnet up` |" in text
