"""`lens export parquet`: every table of a Lens DB as Hive-partitioned Parquet (chain_id, month), incremental, with a manifest."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from app.errors import LensError

# Version of the export's layout (directory shape, manifest fields, partition keys); a reader checks it first.
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
UNKNOWN_MONTH = "unknown"  # rows whose block time is not known (a block the indexer did not record)
MONTH_FMT = "%Y-%m"


@dataclass(frozen=True)
class TableSpec:
    """How one table is laid out: its columns and types, the partition keys, and the SQL giving each row its month."""

    name: str
    columns: tuple[tuple[str, str], ...]
    layout: str  # "month": chain_id=/month=, "chain": chain_id=, "single": one file
    relation: str  # FROM clause yielding the table's columns plus `_month` (for layout "month")
    block_column: str | None  # a block number column, for the manifest's block range

    @property
    def column_names(self) -> list[str]:
        """The table's own columns, in order."""
        return [c for c, _ in self.columns]


@dataclass(frozen=True)
class Partition:
    """One partition's fingerprint: rows, an order-independent checksum of its rows, its block range."""

    key: str  # the Hive path below the table, e.g. "chain_id=31337/month=2026-10" ("" for a single file)
    rows: int
    checksum: str
    block_min: int | None
    block_max: int | None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_specs(con: duckdb.DuckDBPyConnection) -> list[TableSpec]:
    """Every base table of the DB with its partition layout (chosen from its columns, so new tables export too)."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    cols: dict[str, list[tuple[str, str]]] = {}
    for t, c, typ in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
        "ORDER BY table_name, ordinal_position"
    ).fetchall():
        cols.setdefault(t, []).append((c, typ))
    specs = []
    has_tasks = "tasks" in tables and {"chain_id", "task_id", "created_time"} <= {c for c, _ in cols.get("tasks", [])}
    has_blocks = "blocks" in tables
    for t in tables:
        names = {c for c, _ in cols[t]}
        typed = dict(cols[t])
        block_col = next((b for b in ("block_number", "created_block") if b in names), None)
        month = "strftime({}, '" + MONTH_FMT + "')"
        if "chain_id" not in names:
            specs.append(TableSpec(t, tuple(cols[t]), "single", f"{_q(t)} x", None))
            continue
        if typed.get("block_time") == "TIMESTAMP":
            rel = f"(SELECT x.*, {month.format('x.block_time')} AS _month FROM {_q(t)} x)"
        elif typed.get("created_time") == "TIMESTAMP":
            rel = f"(SELECT x.*, {month.format('x.created_time')} AS _month FROM {_q(t)} x)"
        elif "task_id" in names and has_tasks and t != "tasks":
            # a task's rows (signers, replays, ...) live in the month the task was created
            rel = (
                f"(SELECT x.*, {month.format('k.created_time')} AS _month FROM {_q(t)} x "
                "LEFT JOIN tasks k ON k.chain_id = x.chain_id AND k.task_id = x.task_id)"
            )
        elif "block_number" in names and has_blocks and t != "blocks":
            rel = (
                f"(SELECT x.*, {month.format('b.block_time')} AS _month FROM {_q(t)} x "
                "LEFT JOIN blocks b ON b.chain_id = x.chain_id AND b.block_number = x.block_number)"
            )
        else:
            specs.append(TableSpec(t, tuple(cols[t]), "chain", f"{_q(t)} x", block_col))
            continue
        specs.append(TableSpec(t, tuple(cols[t]), "month", f"{rel} x", block_col))
    return specs


def row_hash_sql(columns: list[str], alias: str = "x") -> str:
    """SQL of one row's hash over the named columns (DuckDB's hash; equal values hash equal wherever they are read)."""
    return "hash(" + ", ".join(f"{alias}.{_q(c)}" for c in columns) + ")"


def _key_sql(spec: TableSpec) -> str:
    if spec.layout == "single":
        return "''"
    if spec.layout == "chain":
        return "'chain_id=' || coalesce(CAST(x.chain_id AS VARCHAR), 'NULL')"
    return (
        "'chain_id=' || coalesce(CAST(x.chain_id AS VARCHAR), 'NULL') || '/month=' || "
        f"coalesce(x._month, '{UNKNOWN_MONTH}')"
    )


def fingerprints(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> dict[str, Partition]:
    """Rows, checksum and block range of each partition the table has now (one scan of the table)."""
    block = f"x.{_q(spec.block_column)}" if spec.block_column else "NULL"
    sql = (
        f"SELECT {_key_sql(spec)} AS k, count(*), CAST(sum(CAST({row_hash_sql(spec.column_names)} AS HUGEINT)) AS VARCHAR), "
        f"min({block}), max({block}) FROM {spec.relation} GROUP BY k"
    )
    out = {}
    for k, n, checksum, lo, hi in con.execute(sql).fetchall():
        out[k] = Partition(k, int(n), checksum or "0", lo, hi)
    return out


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of an earlier export into `out`, None when there is none."""
    try:
        return json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise LensError(
            f"{out / MANIFEST} is unreadable: {err}", "delete the directory (or choose another --out) to export afresh"
        ) from None


@dataclass(frozen=True)
class ExportResult:
    """What one export run did: per table the partitions written, kept and removed, and the manifest it wrote."""

    out: str
    manifest: dict[str, Any]
    written: dict[str, list[str]]
    kept: dict[str, int]
    removed: dict[str, list[str]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the `--json` output)."""
        return {
            "out": self.out,
            "schema_version": self.manifest["schema_version"],
            "tables": len(self.manifest["tables"]),
            "rows": sum(t["rows"] for t in self.manifest["tables"].values()),
            "partitions_written": sum(len(v) for v in self.written.values()),
            "partitions_kept": sum(self.kept.values()),
            "partitions_removed": sum(len(v) for v in self.removed.values()),
            "written": {k: v for k, v in self.written.items() if v},
            "removed": {k: v for k, v in self.removed.items() if v},
            "block_range": self.manifest["block_range"],
            "seconds": round(self.seconds, 3),
        }


def _check_out(out: Path) -> dict[str, Any] | None:
    """The earlier manifest, after making sure `out` is an export directory (or empty / new) — never someone's files."""
    if out.exists() and not out.is_dir():
        raise LensError(f"{out} is a file, not a directory", "pass a directory to --out")
    previous = read_manifest(out) if out.is_dir() else None
    if previous is None and out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".staging-")):
        raise LensError(
            f"{out} holds files but no {MANIFEST}: it is not a Lens export",
            "pass an empty or new directory to --out (the export never writes over other files)",
        )
    if previous is not None and previous.get("schema_version") != SCHEMA_VERSION:
        raise LensError(
            f"{out} holds an export of layout version {previous.get('schema_version')}, this Lens writes {SCHEMA_VERSION}",
            "export into a new directory (or delete the old one)",
        )
    return previous


def export_parquet(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    *,
    tables: list[str] | None = None,
    db_label: str = "",
    on_table: Callable[[str, int, int], None] | None = None,
) -> ExportResult:
    """Export every table (or `tables`) of an open DB into `out`, rewriting only partitions whose rows changed.

    A partition whose row count and checksum equal the manifest's is left as it is, so re-running on a grown DB
    writes the new partitions (and the one the head of the chain is still filling) and nothing else."""
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    previous = _check_out(out) or {}
    specs = table_specs(con)
    if tables:
        unknown = sorted(set(tables) - {s.name for s in specs})
        if unknown:
            raise LensError(
                f"no table {', '.join(unknown)} in the database", f"tables are: {', '.join(s.name for s in specs)}"
            )
        specs = [s for s in specs if s.name in tables]
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging-{uuid.uuid4().hex[:12]}"
    old_tables = previous.get("tables", {})
    manifest_tables: dict[str, Any] = {}
    written: dict[str, list[str]] = {}
    kept: dict[str, int] = {}
    removed: dict[str, list[str]] = {}
    try:
        for i, spec in enumerate(specs):
            if on_table:
                on_table(spec.name, i, len(specs))
            now = fingerprints(con, spec)
            old = old_tables.get(spec.name) or {}
            same_shape = old.get("columns") == [list(c) for c in spec.columns] and old.get("layout") == spec.layout
            old_parts = old.get("partitions", {}) if same_shape else {}
            changed = [
                k
                for k, p in sorted(now.items())
                if not (k in old_parts and old_parts[k]["rows"] == p.rows and old_parts[k]["checksum"] == p.checksum)
            ]
            gone = sorted(set(old_parts) - set(now)) if same_shape else []
            if not same_shape and (out / spec.name).exists():
                shutil.rmtree(out / spec.name)  # columns changed: the table is written afresh
            _write_partitions(con, spec, out, staging, changed)
            for k in gone:
                shutil.rmtree(out / spec.name / k, ignore_errors=True)
            written[spec.name], removed[spec.name] = changed, gone
            kept[spec.name] = len(now) - len(changed)
            blocks = [p for p in now.values() if p.block_min is not None]
            manifest_tables[spec.name] = {
                "layout": spec.layout,
                "partition_by": {"month": ["chain_id", "month"], "chain": ["chain_id"], "single": []}[spec.layout],
                "columns": [list(c) for c in spec.columns],
                "rows": sum(p.rows for p in now.values()),
                "block_min": min((p.block_min for p in blocks), default=None),
                "block_max": max((p.block_max for p in blocks), default=None),
                "path": f"{spec.name}/"
                + {"month": "*/*/*.parquet", "chain": "*/*.parquet", "single": "*.parquet"}[spec.layout],
                "partitions": {
                    k: {"rows": p.rows, "checksum": p.checksum, "block_min": p.block_min, "block_max": p.block_max}
                    for k, p in sorted(now.items())
                },
            }
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if tables:  # a partial export keeps the other tables' entries
        manifest_tables = {**{k: v for k, v in old_tables.items() if k not in manifest_tables}, **manifest_tables}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": "parquet",
        "layout": "hive",
        "exported_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_db": db_label,
        "checksum": "per partition: sum over rows of DuckDB hash(columns in manifest order) as HUGEINT",
        "block_range": _block_range(con, manifest_tables),
        "tables": manifest_tables,
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    os.replace(tmp, out / MANIFEST)  # the manifest appears whole, after every file it names
    return ExportResult(str(out), manifest, written, kept, removed, time.perf_counter() - t0)


def _block_range(con: duckdb.DuckDBPyConnection, tables: dict[str, Any]) -> dict[str, list[int | None]]:
    """Per chain: the lowest and highest block any exported row names (from the partitions' fingerprints)."""
    out: dict[str, list[int | None]] = {}
    for t in tables.values():
        for key, p in t["partitions"].items():
            if p["block_min"] is None or not key.startswith("chain_id="):
                continue
            chain = key.split("/")[0].removeprefix("chain_id=")
            lo, hi = out.get(chain, [None, None])
            out[chain] = [p["block_min"] if lo is None else min(lo, p["block_min"]), max(hi or 0, p["block_max"])]
    return out


def _write_partitions(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, out: Path, staging: Path, keys: list[str]
) -> None:
    """Write the given partitions of one table: one COPY into a staging directory, then swap each partition in."""
    if not keys:
        return
    cols = ", ".join(f"x.{_q(c)}" for c in spec.column_names)
    target = out / spec.name
    if spec.layout == "single":
        staged = staging / spec.name
        staged.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY (SELECT {cols} FROM {spec.relation}) TO '{_path(staged / 'data.parquet')}' (FORMAT parquet)")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
        return
    key_list = ", ".join("'" + k.replace("'", "''") + "'" for k in keys)
    part_cols = (
        "x.chain_id" if spec.layout == "chain" else f"x.chain_id, coalesce(x._month, '{UNKNOWN_MONTH}') AS month"
    )
    by = "chain_id" if spec.layout == "chain" else "chain_id, month"
    staged = staging / spec.name
    staging.mkdir(parents=True, exist_ok=True)
    cols_no_chain = ", ".join(f"x.{_q(c)}" for c in spec.column_names if c != "chain_id")
    con.execute(
        f"COPY (SELECT {cols_no_chain}, {part_cols} FROM {spec.relation} WHERE {_key_sql(spec)} IN ({key_list})) "
        f"TO '{_path(staged)}' (FORMAT parquet, PARTITION_BY ({by}), FILENAME_PATTERN 'data_{{i}}')"
    )
    for k in keys:
        src = staged / k
        dst = target / k
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


def _path(p: Path) -> str:
    return str(p).replace("'", "''")


def read_sql(out: Path | str, table: str, manifest: dict[str, Any] | None = None) -> str:
    """A DuckDB `read_parquet(...)` over one exported table (Hive partitions decoded, chain_id typed BIGINT)."""
    out = Path(out)
    manifest = manifest or read_manifest(out) or {}
    entry = (manifest.get("tables") or {}).get(table)
    if entry is None:
        raise LensError(f"no table {table} in the export at {out}", "run `lens export parquet` first")
    glob = _path(out / entry["path"])
    if entry["layout"] == "single":
        return f"read_parquet('{glob}')"
    return f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{'chain_id': BIGINT}})"
