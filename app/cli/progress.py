"""The progress bar of commands that evaluate many decisions (audit, what-if): done/total, decisions/s, tallies, ETA."""

from __future__ import annotations

import time
from typing import Any


class DecisionsProgress:
    """A transient rich bar labelled `label`, with a decisions/s rate and one text column of running tallies
    (`tallies`: a rich template over the task's fields, whose starting values are `fields`)."""

    def __init__(self, label: str, total: int, quiet: bool, tallies: str, **fields: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.started = time.perf_counter()
        self.done = 0
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} decisions/s"),
            TextColumn(tallies),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=quiet,
            transient=True,
        )
        self.bar = self.progress.add_task(label, total=total, rate="—", **fields)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def step(self, n: int, **fields: Any) -> None:
        """Count n more decisions and show the new tallies."""
        self.done += n
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.bar, advance=n, rate=f"{rate:,.0f}", **fields)
