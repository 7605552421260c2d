"""The one error type the CLI and the app show to people: what is wrong, and what to do."""
from __future__ import annotations


class LensError(Exception):
    """A user-facing error: a message saying what is wrong and an optional hint saying what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint
