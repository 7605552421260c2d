"""A what-if over a whole history, page by page: one page of decisions in memory at a time, whatever its size."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from app.engine.whatif import Limits, PartitionResult, WhatIfStopped, merge
from app.errors import LensError
from app.queries import whatif as q

Reader = Callable[..., Any]  # read(fn, *args) → fn(connection, *args) on a read-only connection


@dataclass(frozen=True)
class PagedRun:
    """What a paged what-if gave: the merged result, the facts of its flips and mismatches, and its cache use."""

    result: PartitionResult
    facts: pd.DataFrame
    seconds: float
    cache_hits: int  # decisions whose baseline came from the cache table
    kept: int  # baselines this run wrote to the cache table
    cache_problem: str  # why baselines could not be kept ('' if they were, or none were to keep)


def _offset(on_tick: Callable[[int, int], None], done: int, flips: int) -> Callable[[int, int], None]:
    """A page's tick as the whole run's: (decisions, flips) of the pages before it added."""
    return lambda d, f: on_tick(done + d, flips + f)


def run_paged(
    read: Reader,
    write: Reader | None,
    scenario: q.Scenario,
    pool: Any,
    limits: Limits,
    page: int,
    *,
    use_cache: bool = True,
    on_progress: Callable[[int, PartitionResult], None] | None = None,
    on_tick: Callable[[int, int], None] | None = None,
) -> PagedRun:
    """Every decision of the scenario, read and run a page at a time on `pool` (a WhatIfPool or a Dask one) within
    one overall budget; `write` (None: read-only) keeps each page's fresh baselines as the page ends."""
    if page < 1:
        raise LensError(f"a what-if page of {page} decisions", "a page holds at least one decision, e.g. 100000")
    t0 = time.perf_counter()
    parts: list[PartitionResult] = []
    facts: list[pd.DataFrame] = []
    hits = kept = done = flips = 0
    problem = ""
    # the next page is read while this one is evaluated (reading is this process's work, evaluating the workers')
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lens-whatif-read") as reader:
        pending: Future | None = reader.submit(read, q.load_decisions, scenario, None, page)
        while pending is not None:
            decisions = pending.result()
            if not decisions.tasks:
                break
            after = q.next_page(decisions, page)
            pending = reader.submit(read, q.load_decisions, scenario, after, page) if after is not None else None
            left = limits.budget_s - (time.perf_counter() - t0)
            if left <= 0:
                raise WhatIfStopped(
                    f"the what-if used its {limits.budget_s:g} s budget after {done:,} decisions",
                    "raise the budget (LENS_WHATIF_BUDGET_S), or narrow the what-if to a client or a block range",
                )
            result = pool.run(
                decisions.tasks,
                scenario.change(),
                replace(limits, budget_s=left),
                on_progress=on_progress,
                on_tick=None if on_tick is None else _offset(on_tick, done, flips),
                cached=decisions.cached if use_cache else None,
            )
            hits += decisions.cache_hits if use_cache else 0
            if write is not None and use_cache and result.fresh and not problem:
                if pending is not None:
                    pending.result()  # the DB is opened read-write only once no read is open
                try:  # best effort: the what-if's own table, never chain data; a busy DB just stays uncached
                    kept += write(q.write_baselines, decisions, result)
                except LensError as err:
                    problem = str(err)
            parts.append(replace(result, fresh=()))  # kept already: a page's baselines need not outlive it
            facts.append(q.facts_kept(decisions, result))
            done, flips = done + result.decisions, flips + len(result.flips)
    frame = pd.concat(facts, ignore_index=True) if facts else pd.DataFrame(columns=["task_id"])
    return PagedRun(merge(parts), frame, time.perf_counter() - t0, hits, kept, problem)
