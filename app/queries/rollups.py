"""Reading the indexer's pre-aggregated tables (indexer/aggregates.py): whether a DB has them, which bucket widths they
serve, and exact quantiles from counted values — the same figures as DuckDB's over the raw rows."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd

from app.queries.base import Con, meta, table_names
from indexer import aggregates

HOUR_S = 3600


def ready(con: Con) -> bool:
    """True when the DB's aggregates are complete and kept by the indexer (else the pages read the raw tables)."""
    have = table_names(con)
    return {*aggregates.TABLES, aggregates.DISPUTE_TASKS} <= have and meta(con).get(
        aggregates.META_KEY
    ) == aggregates.VERSION


def whole_hours(seconds: int) -> bool:
    """Whether buckets this wide are unions of the hourly rows (time_bucket's origin is midnight: they align)."""
    return seconds > 0 and seconds % HOUR_S == 0


def quantile_cont(values: list[float], counts: list[int], q: float) -> float | None:
    """DuckDB's quantile_cont(x, q) over the multiset `values` (sorted) × `counts`, to the last bit: the two order
    statistics around (n - 1)·q, interpolated as DuckDB does (lo·(1 - d) + hi·d, fused: one rounding)."""
    n = sum(counts)
    if n == 0:
        return None
    rn = (n - 1) * q
    lo_k, hi_k = math.floor(rn), math.ceil(rn)
    lo = hi = None
    seen = 0
    for v, c in zip(values, counts):
        seen += c
        if lo is None and lo_k < seen:
            lo = float(v)
        if hi_k < seen:
            hi = float(v)
            break
    if lo_k == hi_k:
        return lo
    d = rn - lo_k
    return float(Fraction(lo) * Fraction(1.0 - d) + Fraction(hi * d))


def quantiles_by(frame: pd.DataFrame, keys: list[str], qs: dict[str, float], count: str = "tasks") -> pd.DataFrame:
    """Counted values (columns keys…, v, n; sorted by keys then v) → one row per key: `count` (sum of n) and each
    named quantile of v."""
    rows = []
    for key, part in frame.groupby(keys, sort=True, dropna=False):
        values, counts = part["v"].astype(float).tolist(), part["n"].astype(int).tolist()
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row[count] = int(sum(counts))
        for name, q in qs.items():
            row[name] = quantile_cont(values, counts, q)
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*keys, count, *qs])
    out[count] = out[count].astype("int64")
    for name in qs:
        out[name] = out[name].astype("float64")
    return out
