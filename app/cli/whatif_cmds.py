"""CLI: `lens whatif` (re-run history under other params or another policy source) and `lens bench whatif`."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from app import settings
from app.cli.progress import DecisionsProgress
from app.errors import LensError

BENCH_TARGET_PER_S = 20_000  # DESIGN.md: ≥ 20,000 decisions re-evaluated per second on this 2-core machine


def _read_text(path: str, what: str, limit: int) -> str:
    """A user file's text, bounded in size; LensError naming the file and the problem."""
    p = Path(path).expanduser()
    try:
        size = p.stat().st_size
        if size > limit:
            raise LensError(
                f"{what} file {path} is {size:,} bytes, above the {limit:,}-byte limit", "pass a smaller file"
            )
        return p.read_text(encoding="utf-8")
    except OSError as err:
        raise LensError(f"cannot read {what} file {path}: {err.strerror}", f"pass an existing {what} file") from None
    except UnicodeDecodeError:
        raise LensError(f"{what} file {path} is not UTF-8 text", f"pass a UTF-8 {what} file") from None


def build_scenario(
    con: Any,
    policy: str,
    client: str | None,
    sets: tuple[str, ...],
    params_path: str | None,
    source_path: str | None,
    entrypoint: str | None,
    from_block: int | None,
    to_block: int | None,
) -> tuple[Any, dict, dict]:
    """The scenario the flags describe → (Scenario, policy row, params schema); LensError on anything invalid."""
    from app.engine.evaluate import MAX_SOURCE_BYTES
    from app.engine.whatif import MAX_PARAMS_BYTES, check_inputs, schema_errors, schema_for
    from app.queries import whatif as q

    row = q.resolve_policy(con, policy)
    schema = q.schema_of(row)
    client_addr = q.resolve_client(con, row["policy_address"], client)
    overrides = q.overrides_from_sets(schema, sets)
    for key, text in overrides:
        spec = schema_for(schema, key)
        problems = schema_errors({**spec, "$schema": schema.get("$schema")}, json.loads(text)) if spec else []
        if problems:
            raise LensError(
                f"--set {key}: {problems[0].split(': ', 1)[-1]}", (spec or {}).get("description") or "see the schema"
            )
    params_json = None
    if params_path:
        text = _read_text(params_path, "params", MAX_PARAMS_BYTES)
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise LensError(f"params file {params_path} is not JSON: {err}", "check the file's syntax") from None
        problems = schema_errors(schema, doc)
        if problems:
            raise LensError(
                f"params file {params_path} fails the policy's params schema: {problems[0]}",
                "; ".join(problems[1:4]) or "fix that value",
            )
        params_json = json.dumps(doc)
    source = _read_text(source_path, "policy source", MAX_SOURCE_BYTES) if source_path else None
    if from_block is not None and to_block is not None and from_block > to_block:
        raise LensError(f"--from-block {from_block} is after --to-block {to_block}", "swap them")
    scenario = q.Scenario(
        policy=row["policy_address"],
        client=client_addr,
        overrides=overrides,
        params_json=params_json,
        source=source,
        entrypoint=entrypoint or None,
        from_block=from_block,
        to_block=to_block,
    )
    try:
        check_inputs(scenario.change())
    except LensError as err:
        from app.engine.evaluate import PolicyParseError

        if isinstance(err, PolicyParseError) and source_path:
            pr = err.problem
            raise LensError(f"{source_path}:{pr.line}:{pr.col}: {pr.message}", "fix the Rego at that line") from None
        raise
    return scenario, row, schema


class _Progress(DecisionsProgress):
    """The what-if's progress bar: done/total, decisions/s, running flip count, ETA."""

    def __init__(self, total: int, quiet: bool) -> None:
        super().__init__("what-if", total, quiet, "[yellow]{task.fields[flips]} flips[/]", flips=0)
        self.total = total
        self.flips = 0

    def advance(self, n: int, part: Any) -> None:
        """Count a finished chunk (called from the pool's threads, one at a time)."""
        self.flips += len(part.flips)
        self.step(n, flips=self.flips)


def _describe(scenario: Any, row: dict, names: dict[str, str], schema: dict) -> str:
    """One line saying what the what-if changes."""
    from app.engine.values import fmt_value
    from app.engine.whatif import is_wei, schema_for

    who = f"client {names.get(scenario.client) or scenario.client}" if scenario.client else "every client"
    parts = []
    for key, text in scenario.overrides:
        value = json.loads(text)
        shown = fmt_value(value, key) if not is_wei(schema_for(schema, key)) else fmt_value(value, "x_wei")
        parts.append(f"{key} = {shown}")
    if scenario.params_json is not None:
        parts.insert(0, "params replaced whole")
    if scenario.source is not None:
        parts.append("a new policy source" + (f" (entrypoint {scenario.entrypoint})" if scenario.entrypoint else ""))
    what = "; ".join(parts) or "nothing changed (baseline only)"
    return f"what-if on {row['name']} ({row['policy_address']}), {who}: {what}"


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `lens whatif` and `lens bench whatif`."""

    @cli.command("whatif")
    @click.option("--policy", required=True, help="Policy name (e.g. spending_limits), entrypoint or address.")
    @click.option(
        "--client", default=None, help="Only this client (address or deployment name); default: every client."
    )
    @click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one param on top of each decision's own params; parsed against params_schema.json "
        "(wei: digits or '12.5 ETH'; lists: JSON or a,b,c). Repeatable.",
    )
    @click.option(
        "--params", "params_path", type=click.Path(), help="Replace the params whole (JSON file, schema-checked)."
    )
    @click.option("--source", "source_path", type=click.Path(), help="Replace the Rego source (a .rego file).")
    @click.option("--entrypoint", default=None, help="Entrypoint of --source (default: the recorded one).")
    @click.option("--from-block", type=click.IntRange(min=0), default=None, metavar="BLOCK", help="First block.")
    @click.option("--to-block", type=click.IntRange(min=0), default=None, metavar="BLOCK", help="Last block.")
    @click.option(
        "--out", "out_path", type=click.Path(), default=None, help="Write every flip to a .csv or .parquet file."
    )
    @click.option(
        "--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: one per core)."
    )
    @click.option(
        "--no-cache",
        is_flag=True,
        help="Re-evaluate every baseline even where the whatif_baseline table holds it, and keep none.",
    )
    @click.option(
        "--scheduler",
        default=None,
        help="Evaluate on a Dask cluster: tcp://HOST:8786, or `local` (a LocalCluster of --workers processes).",
    )
    @settings.option("db")
    @settings.option("eval_timeout_ms")
    @settings.option("whatif_budget_s")
    @settings.option("whatif_page")
    @settings.option("eval_memory_mb")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (decisions, flips, by_client, …).")
    def whatif_cmd(
        policy: str,
        client: str | None,
        sets: tuple[str, ...],
        params_path: str | None,
        source_path: str | None,
        entrypoint: str | None,
        from_block: int | None,
        to_block: int | None,
        out_path: str | None,
        workers: int | None,
        no_cache: bool,
        db: str,
        eval_timeout_ms: int,
        whatif_budget_s: float,
        whatif_page: int,
        eval_memory_mb: int,
        as_json: bool,
        scheduler: str | None = None,
    ) -> None:
        """Re-run every indexed decision of a policy under changed params or another source; report the flips."""
        from app.engine import store
        from app.engine.whatif import Limits, WhatIfPool
        from app.queries import whatif as q
        from app.whatif_runs import run_paged

        fmt = None
        if out_path:
            fmt = {".csv": "csv", ".parquet": "parquet"}.get(Path(out_path).suffix.lower())
            if fmt is None:
                raise LensError(f"--out {out_path}: unknown file type", "name the file .csv or .parquet")
        if scheduler:  # the same what-if, its partitions evaluated on Dask (app/distributed.py)
            from app.distributed import DaskWhatIfPool

            pool = DaskWhatIfPool(scheduler, workers)
        else:
            pool = WhatIfPool(workers, eval_memory_mb)  # workers start while the DB is read
        progress = None
        try:
            with store.reading(db) as con:
                scenario, row, schema = build_scenario(
                    con, policy, client, sets, params_path, source_path, entrypoint, from_block, to_block
                )
                names = q.client_names(con, scenario.policy)
                total = q.count_decisions(con, scenario)
            if not total:
                raise LensError(
                    "no answered decisions match (policy, client, block range)",
                    "check --client and --from-block/--to-block; `lens audit` lists what is indexed",
                )
            if not as_json:
                click.echo(_describe(scenario, row, names, schema))

            def read(fn, *args):
                with store.reading(db) as con:
                    return fn(con, *args)

            def write(fn, *args):
                with store.writing(db) as con:
                    return fn(con, *args)

            progress = _Progress(total, as_json or total < 2000)
            with progress:
                # the DB is open only while a page is read and while its baselines are kept
                run = run_paged(
                    read,
                    write,
                    scenario,
                    pool,
                    Limits(eval_timeout_ms, whatif_budget_s, eval_memory_mb),
                    whatif_page,
                    use_cache=not no_cache,
                    on_progress=progress.advance,
                )
        except KeyboardInterrupt:
            pool.close()  # the workers are killed before the message: nothing keeps running
            done = f" after {progress.done:,} of {progress.total:,} decisions" if progress is not None else ""
            click.echo(f"stopped by Ctrl-C{done}; no flips were written", err=True)
            sys.exit(130)
        finally:
            pool.close()
        result, all_facts, seconds = run.result, run.facts, run.seconds
        cached_note = ""
        if run.kept:
            cached_note = f"kept {run.kept:,} baselines in the {q.CACHE_TABLE} table for the next what-if"
        if run.cache_problem:
            cached_note = f"baselines not cached ({run.cache_problem})"
        out = q.summary(result, all_facts, seconds, names)
        out["workers"] = pool.workers
        out["cached_baselines"] = run.cache_hits
        frame = q.flips_frame(result, all_facts, names)
        if out_path and fmt:
            Path(out_path).expanduser().write_bytes(q.export_flips(frame, fmt))
        if as_json:
            out["scenario"] = scenario.to_query()
            click.echo(json.dumps(out, default=str))
            return
        click.echo(
            f"re-evaluated {out['decisions']:,} decisions in {seconds:.1f} s "
            f"({out['decisions_per_s']:,} decisions/s on {pool.workers} workers; "
            f"{out['cached_baselines']:,} baselines from the cache)"
        )
        click.echo(out["baseline"])
        click.secho(
            f"flips: {out['flipped_to_deny']:,} allowed → denied, {out['flipped_to_allow']:,} denied → allowed",
            fg="yellow" if result.flips else "green",
        )
        for addr, c in sorted(
            out["by_client"].items(), key=lambda kv: -(kv[1]["flipped_to_deny"] + kv[1]["flipped_to_allow"])
        ):
            click.echo(
                f"  {c['name'] or addr}: {c['flipped_to_deny']:,} allowed → denied, {c['flipped_to_allow']:,} denied → allowed"
            )
        for _, r in q.reason_changes(result).iterrows():
            click.echo(
                f"  deny reason {r['deny reason']}: appears in {r['appears in']:,}, disappears from {r['disappears from']:,}"
            )
        for _, f in frame.head(10).iterrows():
            click.echo(
                f"  {f['direction']}  {f['task_id']}  {f['client_name']}  +[{f['deny_added']}] -[{f['deny_removed']}]"
            )
        if len(frame) > 10:
            click.echo(f"  … {len(frame) - 10:,} more" + ("" if out_path else " (--out FILE writes them all)"))
        if result.vm_disagreements:
            click.secho(
                f"regorus' VM disagreed with its interpreter on {result.vm_disagreements:,} of {result.vm_checked:,} "
                "checked decisions: those policies were re-run on the interpreter (the figures above are its)",
                fg="yellow",
            )
        if result.errors:
            click.secho(
                f"{len(result.errors):,} decisions could not be evaluated, e.g. {result.errors[0][1]}", fg="red"
            )
        if out_path:
            click.echo(f"wrote {len(frame):,} flips to {out_path}")
        if cached_note:
            click.echo(cached_note)

    @bench.command("whatif")
    @settings.option("db", default=None, show_default="a synthetic DB in a temporary folder")
    @click.option(
        "--decisions",
        "n",
        type=click.IntRange(min=1000),
        default=100_000,
        show_default=True,
        help="Decisions to re-run.",
    )
    @click.option(
        "--single",
        "single_n",
        type=click.IntRange(min=500),
        default=20_000,
        show_default=True,
        help="Decisions of the one-core run.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def bench_whatif(db: str | None, n: int, single_n: int, as_json: bool) -> None:
        """Re-run ≥ 100,000 decisions under a changed param per policy; decisions/s on one core and on all of them."""
        out = run_bench(db, n, single_n, quiet=as_json)
        if as_json:
            click.echo(json.dumps(out))
            return
        click.echo(
            f"what-if: {out['decisions']:,} decisions under a changed param, baselines cached: "
            f"{out['decisions_per_s']:,.0f} decisions/s on {out['workers']} workers, one core "
            f"{out['single_core_per_s']:,.0f}/s → scaling {out['scaling']:.2f}x over {out['cpus']} cores; target "
            f"{BENCH_TARGET_PER_S:,}/s → {out['ratio_to_target']:.2f}x. First run (baselines computed too): "
            f"{out['cold_decisions_per_s']:,.0f}/s. CPU per decision, every process counted "
            f"{out['cpu_us_per_decision']:.0f} µs ({out['cpu_us_per_decision_cold']:.0f} µs cold), i.e. "
            f"{out['cpu_bound_per_s']:,.0f}/s if the {out['cpus']} cores were ours alone; load average "
            f"{out['load_avg_1m_start']} → {out['load_avg_1m']}. The interpreter re-checked "
            f"{out['vm_checked']:,} of the VM's evaluations: {out['vm_disagreements']:,} disagreements"
        )
        for name, r in out["per_policy"].items():
            click.echo(
                f"  {name}: {r['decisions']:,} decisions, {r['flips']:,} flips, evaluation CPU "
                f"{r['cpu_us_per_decision']:.0f} µs per decision ({r['cpu_us_per_decision_cold']:.0f} µs cold)"
            )


def _bench_changes(con: Any) -> list[tuple[Any, Any]]:
    """One scenario per policy: its first changeable param moved (wei halved, numbers × 0.8, booleans flipped)."""
    from app.queries import whatif as q

    out = []
    for _, row in q.policies(con).iterrows():
        schema = q.schema_of(dict(row))
        current = q.params_in_force(con, row["policy_address"])
        overrides = ()
        for key, spec in (schema.get("properties") or {}).items():
            value = current.get(key)
            if value is None:
                continue
            if spec.get("unit") == "wei" and str(value).isdigit():
                overrides = ((key, json.dumps(str(int(value) // 2))),)
            elif spec.get("type") == "number" and isinstance(value, (int, float)):
                overrides = ((key, json.dumps(value * 0.8)),)
            elif spec.get("type") == "boolean":
                overrides = ((key, json.dumps(not value)),)
            if overrides:
                break
        out.append((dict(row), q.Scenario(policy=row["policy_address"], overrides=overrides)))
    return out


def run_bench(db: str | None, n: int, single_n: int, quiet: bool = False) -> dict[str, Any]:
    """The what-if benchmark: every policy's decisions (≥ n in all) under a change — first cold (baseline computed
    too), then with the baselines cached, on all cores and on one — with CPU time beside wall time."""
    from app.engine import store
    from app.engine.whatif import Limits, WhatIfPool
    from app.queries import whatif as q

    tmp = tempfile.TemporaryDirectory(prefix="lens-bench-whatif-")
    if db is None:
        from app import synth

        db = str(Path(tmp.name) / "bench.duckdb")
        # answered decisions are ~99.8% of a synthetic DB's tasks
        synth.build(Path(db), tasks=int(n * 1.01) + 200, seed=11, progress=not quiet)
    else:  # the cache is written: work on a copy, never on the caller's DB
        import shutil

        src, db = db, str(Path(tmp.name) / "bench.duckdb")
        shutil.copyfile(Path(src).expanduser(), db)
    try:

        def load() -> list[tuple[dict, Any, Any]]:
            with store.reading(db) as con:
                return [(row, s, q.load_decisions(con, s)) for row, s in _bench_changes(con)]

        plans = load()
        total = sum(len(d.tasks) for _, _, d in plans)
        if total < n:
            raise LensError(
                f"the DB holds {total:,} answered decisions, fewer than --decisions {n:,}",
                "use a larger DB or omit --db",
            )
        limits = Limits(
            eval_timeout_ms=settings.get("eval_timeout_ms"), budget_s=3600.0, memory_mb=settings.get("eval_memory_mb")
        )
        cpus = os.cpu_count() or 1
        load0 = os.getloadavg()[0]

        def timed(pool: Any, plans: list, share: float = 1.0) -> tuple[float, int, float, list]:
            """(wall s, decisions, CPU s of the whole run — this process and its workers —, results) of every plan
            on `pool` (a share of each)."""
            t0, c0, w0, done, results = time.perf_counter(), time.process_time(), pool.cpu_s(), 0, []
            for _, s, d in plans:
                k = max(1, round(len(d.tasks) * share))
                r = pool.run(d.tasks[:k], s.change(), limits, cached=d.cached[:k])
                done += r.decisions
                results.append(r)
            cpu = time.process_time() - c0 + pool.cpu_s() - w0
            return time.perf_counter() - t0, done, cpu, results

        with WhatIfPool(cpus) as pool:
            _, _, d0 = plans[0]
            pool.run(d0.tasks[: 200 * cpus], plans[0][1].change(), limits)  # warm every worker
            cold_s, _, cold_cpu, cold = timed(pool, plans)
        with store.writing(db) as con:
            for (_, _, d), r in zip(plans, cold):
                q.write_baselines(con, d, r)
        plans = load()
        hits = sum(d.cache_hits for _, _, d in plans)
        with WhatIfPool(1) as pool:
            pool.run(d0.tasks[:200], plans[0][1].change(), limits)  # warm: imports and the first compile
            one_s, one_n, _, _ = timed(pool, plans, min(1.0, single_n / total))
        with WhatIfPool(cpus) as pool:
            pool.run(d0.tasks[: 200 * cpus], plans[0][1].change(), limits)
            warm_s, _, warm_cpu, warm = timed(pool, plans)
        rate, single = total / warm_s, one_n / one_s
        per_policy = {
            str(row["name"]): {
                "decisions": r.decisions,
                "flips": len(r.flips),
                "baseline_mismatches": len(r.baseline_mismatches),
                "changed": {k: json.loads(v) for k, v in s.overrides},
                "cpu_us_per_decision_cold": round(rc.cpu_s / max(rc.decisions, 1) * 1e6, 1),
                "cpu_us_per_decision": round(r.cpu_s / max(r.decisions, 1) * 1e6, 1),
                "vm_checked": r.vm_checked,
                "vm_disagreements": r.vm_disagreements,
            }
            for (row, s, _), rc, r in zip(plans, cold, warm)
        }
        return {
            "decisions": total,
            "decisions_per_s": round(rate, 1),
            "single_core_per_s": round(single, 1),
            "scaling": round(rate / single, 3),
            "cold_decisions_per_s": round(total / cold_s, 1),
            "cached_baselines": hits,
            "seconds": round(warm_s, 3),
            "cold_seconds": round(cold_s, 3),
            "workers": cpus,
            "cpus": cpus,
            # every CPU second of the run (this process: reading, packing, merging; the workers: unpickling and
            # evaluating), so cpu_bound_per_s is what the cores would give were they this benchmark's alone
            "cpu_us_per_decision": round(warm_cpu / total * 1e6, 1),
            "cpu_us_per_decision_cold": round(cold_cpu / total * 1e6, 1),
            "vm_checked": sum(r.vm_checked for r in warm),
            "vm_disagreements": sum(r.vm_disagreements for r in warm),
            "cpu_bound_per_s": round(cpus / (warm_cpu / total), 1) if warm_cpu else None,
            "target_per_s": BENCH_TARGET_PER_S,
            "ratio_to_target": round(rate / BENCH_TARGET_PER_S, 3),
            "load_avg_1m_start": round(load0, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "per_policy": per_policy,
        }
    finally:
        tmp.cleanup()
