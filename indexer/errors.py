"""The one error type people are shown: what is wrong, and what to do (the bottom layer owns it; app/ re-exports it)."""

from __future__ import annotations


class LensError(Exception):
    """A user-facing error: a message saying what is wrong and an optional hint saying what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint
