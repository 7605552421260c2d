"""The one error type the CLI and the app show to people; it lives in the bottom layer, `indexer.errors`."""

from __future__ import annotations

from indexer.errors import LensError

__all__ = ["LensError"]
