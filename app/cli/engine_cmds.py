"""CLI: `lens policy test|eval`, `lens explain`, `lens audit`, `lens bench replay` — the policy engine's commands."""

from __future__ import annotations

import json
import os
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import click

from app import settings
from app.cli.progress import DecisionsProgress
from app.errors import LensError
from app.lookup import role_text as lookup_role_text


def _read_json(path: str | None, what: str) -> Any:
    """A JSON file's content; LensError naming the file and the problem."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise LensError(
            f"cannot read {what} file {path}: {err.strerror}", f"pass an existing JSON file as {what}"
        ) from None
    except ValueError as err:
        raise LensError(f"{what} file {path} is not JSON: {err}", "check the file's syntax") from None


def load_policy(path: str, entrypoint: str | None) -> tuple[str, str, Path]:
    """(source, entrypoint, folder) from a policy folder (policy.rego + metadata.json) or a .rego file."""
    p = Path(path)
    if p.is_dir():
        src_file = p / "policy.rego"
        if not src_file.is_file():
            raise LensError(
                f"no policy.rego in {p}", "pass a policy folder like data/policies/spending_limits or a .rego file"
            )
    elif p.is_file():
        src_file = p
    else:
        raise LensError(f"no such policy file or folder: {path}", "pass a policy folder or a .rego file")
    source = src_file.read_text(encoding="utf-8")
    from app.engine.evaluate import PolicyParseError, new_engine

    try:
        engine = new_engine(source)  # parsing always terminates: check it here to name the user's file
    except PolicyParseError as err:
        pr = err.problem
        raise LensError(f"{src_file}:{pr.line}:{pr.col}: {pr.message}", "fix the Rego at that line") from None
    if not entrypoint:
        meta_file = src_file.parent / "metadata.json"
        if meta_file.is_file():
            try:
                entrypoint = json.loads(meta_file.read_text()).get("entrypoint")
            except ValueError:
                entrypoint = None
    if not entrypoint:
        packages = [x.removeprefix("data.") for x in engine.get_packages()]
        if not packages:
            raise LensError(f"{src_file} declares no package", "a Rego policy starts with `package <name>`")
        entrypoint = f"{packages[0]}.allow"
    return source, entrypoint, src_file.parent


def _example_data(folder: Path) -> dict:
    """The oracle output examples of a policy folder's metadata.json, merged as data.wasm ({} if none)."""
    meta_file = folder / "metadata.json"
    if not meta_file.is_file():
        return {}
    meta = _read_json(str(meta_file), "metadata")
    out: dict = {}
    for spec in ((meta or {}).get("policy_data") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("example"), dict):
            out.update(spec["example"])
    return out


def _complete_input(doc: Any) -> dict:
    """Fill Newton's derived fields (function, decoded_*) from data + function_signature when the file lacks them."""
    if not isinstance(doc, dict):
        raise LensError(
            "the input file must hold a JSON object (the intent as Newton presents it)", "see POLICIES.md §4.1"
        )
    if (
        "decoded_function_arguments" not in doc
        and isinstance(doc.get("function_signature"), str)
        and isinstance(doc.get("data"), str)
    ):
        from app.engine.intent import decode_call

        sig = doc["function_signature"]
        sig_bytes = bytes.fromhex(sig[2:]) if sig.startswith("0x") else sig.encode()
        data = doc["data"]
        doc = {**doc, **decode_call(sig_bytes, bytes.fromhex(data[2:] if data.startswith("0x") else data))}
    return doc


def _fmt_value(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def format_explanation(ex: Any) -> str:
    """The explanation record as plain text for the terminal."""
    lines = []
    verdict = (
        "CANNOT REPLAY" if ex.replay == "cannot_replay" else "ERROR" if ex.error else ("ALLOW" if ex.allow else "DENY")
    )
    lines.append(f"{verdict}  {ex.entrypoint}" + (f"   deny: {', '.join(ex.deny)}" if ex.deny else ""))
    if ex.task_id:
        att = "—" if ex.attested_allow is None else ("allow" if ex.attested_allow else "deny")
        rep = "—" if ex.replayed_allow is None else ("allow" if ex.replayed_allow else "deny")
        lines.append(
            f"task {ex.task_id}: attested {att}, replayed {rep} → {ex.replay}"
            + (f" ({ex.replay_reason})" if ex.replay_reason else "")
        )
    lines.append("")
    lines.append(ex.sentence)
    lines.extend(_format_conditions(ex))
    if ex.rule_tree is not None:
        lines.append("")
        lines.append("Rule tree:")

        def walk(node: Any, depth: int) -> None:
            val = (
                ""
                if node.state in ("function",)
                else f" = {_fmt_value(node.value) if node.state != 'undefined' else 'undefined'}"
            )
            lines.append(f"  {'  ' * depth}{node.name} ({node.kind}, line {node.line}){val}")
            if depth < 4:
                for kid in node.children:
                    if kid.kind != "function":
                        walk(kid, depth + 1)

        walk(ex.rule_tree, 0)
    if ex.counterfactuals or ex.counterfactual_note:
        lines.append("")
        lines.append("Counterfactuals (verified by re-evaluating):")
        for c in ex.counterfactuals:
            partial = "  (removes this deny reason only)" if c.flips_to is None else ""
            lines.append(f"  - {c.text}{_applied_text(c)}{partial}")
        if ex.counterfactual_note:
            lines.append(f"  ({ex.counterfactual_note})")
    if ex.lines_reached or ex.lines_failed:
        lines.append("")
        lines.append(
            f"Lines reached: {_ranges(ex.lines_reached)}; not reached: {_ranges(ex.lines_not_reached)}; "
            f"failed conditions at: {_ranges(ex.lines_failed)}"
        )
    return "\n".join(lines)


def _applied_text(c: Any) -> str:
    """'  → allowed_functions = ["", "transfer", "swap"]': the whole param value(s) to set, ready to apply."""
    applied = getattr(c, "applied", None)
    if applied is None:
        return ""
    if c.kind == "combined" and isinstance(applied, dict):
        return "  → " + "; ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in applied.items())
    return f"  → {c.param} = {json.dumps(applied, default=str)}"


def _when_text(block: Any, time_iso: Any) -> str:
    """'block 36, 2026-12-03 08:18:27 UTC' (or what of it is known)."""
    if block is None:
        return "—"
    return f"block {int(block):,}" + (f", {str(time_iso).replace('T', ' ')} UTC" if time_iso else "")


def format_story(story: dict, ex: Any) -> str:
    """`lens explain` as text: what became of the task (a successful challenge first), who asked what, when, the
    verdict and why, the policy, the oracle data and the quorum — the story the verdict page tells."""
    a, w, o, q, p = story["asked"], story["when"], story["outcome"], story["quorum"], story["policy"]
    lines = []
    if o["state"] == "challenged":
        lines.append("SUCCESSFULLY CHALLENGED — " + o["text"].removeprefix("successfully challenged: "))
    lines.append(f"task {story['task_id']}")
    found = story.get("lookup") or {}
    if found.get("kind") == "tx":
        lines.append(f"  (transaction {found['query']} " + "; ".join(found.get("roles") or []) + ")")
    elif found.get("kind") == "task" and found.get("query") != story["task_id"]:
        lines.append(f"  (the only task id or transaction starting with {found.get('typed')})")
    lines += ["", "Who asked what", f"  {a['sentence']}"]
    client = a["client"]
    lines.append(f"  client     {client['name'] + ' ' if client['name'] else ''}{client['address']}")
    lines.append(f"  sender     {a['sender']}")
    lines.append(f"  recipient  {a['recipient']}")
    lines.append(
        (
            f"  amount     {a['amount']} ({a['amount_wei']} {a.get('base_unit', 'wei')})"
            if a["amount_wei"] is not None
            else "  amount     unknown: the call's arguments do not say how much it moves"
        )
        + (f" of {a['asset_address']}" if a["asset_address"] not in (None, "ETH") else "")
    )
    call = a["call"] or "(plain native transfer)"
    lines.append(
        f"  call       {call}" + (f"  arguments: {', '.join(str(x) for x in a['arguments'])}" if a["arguments"] else "")
    )
    lines += ["", "When", f"  created    {_when_text(w['created_block'], w['created_time'])}"]
    lines.append(f"  responded  {_when_text(w['responded_block'], w['responded_time'])}")
    lines += ["", "What became of it", f"  {o['text']}"]
    for t in story["transactions"]:
        lines.append(f"    block {t['block']:>8,}  {t['tx_hash']}  {t['text'].split(' (')[0]} ({t['event']})")
    lines += ["", "Verdict", *("  " + x for x in format_explanation(ex).splitlines())]
    lines += ["", "Policy"]
    facts = p.get("facts") or {}
    width = max((len(k) for k in facts), default=0)
    for k, v in facts.items():
        lines.append(f"  {k:<{width}}  {v}")
    lines.append(f"  {'params':<{width}}  {json.dumps(p['params'], default=str) if p['params'] is not None else '—'}")
    lines += ["", "Oracle data"]
    lines.append(
        f"  {json.dumps(story['oracle_data'], default=str)}"
        if story["oracle_data"] is not None
        else "  none recorded (no response yet)"
    )
    for e in story["oracle_errors"]:
        lines.append(f'  the {e["oracle"]} oracle reported: "{e["error"]}"')
    lines += ["", "Quorum"]
    if q["signers"] is None:
        lines.append("  no attested result yet")
    else:
        lines.append(
            f"  threshold {q['threshold_pct']}%: {q['signers']} signed, {q['non_signers']} did not"
            + (f"; signed: {', '.join(q['signed'])}" if q["signed"] else "")
            + (f"; did not sign: {', '.join(q['did_not_sign'])}" if q["did_not_sign"] else "")
        )
    return "\n".join(lines)


def _format_body(b: Any) -> list[str]:
    """One rule body: its line and head, then the first condition that did not hold with its terms' values."""
    if b.failed_at is None:
        state = "held" if b.rule != "deny" else "fired"
        return [f"  line {b.line:>4}  {b.head}  ({state})"]
    from app.engine.values import term_value_text

    out = [f"  line {b.failed_at.line:>4}  {b.head}:  {b.failed_at.text}"]
    for t in b.failed_at.terms:
        val = (
            _fmt_value(t.value) + term_value_text(t.text, t.value).removeprefix(json.dumps(t.value, default=str))
            if t.defined
            else ("error: " + t.error if t.error else "undefined")
        )
        out.append(f"              {t.text} = {val}" + (f"  (+{t.more} more)" if t.more else ""))
    return out


def _format_conditions(ex: Any) -> list[str]:
    """What decided the verdict first; then the checks that passed (deny rules evaluated and false), other bodies
    that did not apply, and the rule bodies the evaluation never reached — each under its own heading."""
    from app.queries.verdict import body_groups

    g = body_groups(ex)
    lines: list[str] = []
    if g["decisive"]:
        lines.append("")
        lines.append(
            "What decided the verdict:"
            if ex.allow
            else "What decided the verdict (failing conditions and the deny rules that fired):"
        )
        for b in g["decisive"]:
            lines.extend(_format_body(b))
    if g["passed"]:
        lines.append("")
        lines.append(
            f"Checks that passed ({len(g['passed'])} deny rules evaluated and false; the first condition that did "
            "not hold):"
        )
        for b in g["passed"]:
            lines.extend("  " + x for x in _format_body(b))
    if g["other"]:
        lines.append("")
        lines.append(
            f"Other rule bodies that did not apply ({len(g['other'])}; e.g. an `else` branch was taken instead):"
        )
        for b in g["other"]:
            lines.extend("  " + x for x in _format_body(b))
    if g["not_reached"]:
        lines.append("")
        lines.append(f"Never reached by this evaluation ({len(g['not_reached'])}; not checks that passed):")
        for b in g["not_reached"]:
            lines.append(f"    line {b.line:>4}  {b.head or b.rule}  ({b.note or 'not evaluated'})")
    return lines


def _ranges(nums: Any) -> str:
    """`1,2,3,7` → `1-3, 7`."""
    nums = sorted(nums)
    if not nums:
        return "none"
    out, start, prev = [], nums[0], nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[k]


def register(cli: click.Group, bench: click.Group) -> None:
    """Attach `policy test|eval`, `explain`, `audit` to the root group and `replay` to the bench group."""

    @cli.group()
    def policy() -> None:
        """Rego policies: run their test suites, evaluate one intent."""

    @policy.command("test")
    @click.argument("paths", nargs=-1, required=True, type=click.Path())
    @settings.option("eval_timeout_ms")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def policy_test(paths: tuple[str, ...], eval_timeout_ms: int, as_json: bool) -> None:
        """Run the test_* rules in the given .rego files or folders (opa test semantics); exit 1 on any failure."""
        from app.engine.regotest import run_suite

        suite = run_suite(list(paths), timeout_ms=eval_timeout_ms)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "passed": suite.passed,
                        "failed": suite.failed,
                        "errors": suite.errors,
                        "tests": [
                            {
                                "package": r.case.package,
                                "name": r.case.name,
                                "file": r.case.file,
                                "line": r.case.line,
                                "status": r.status,
                                "message": r.message,
                                "ms": round(r.ms, 3),
                            }
                            for r in suite.results
                        ],
                    }
                )
            )
        else:
            current = None
            for r in suite.results:
                if r.case.file != current:
                    current = r.case.file
                    click.echo(f"{current}:")
                color = {"pass": "green", "fail": "red", "error": "red", "skip": "yellow"}[r.status]
                label = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}[r.status]
                msg = f"  ({r.message})" if r.message and r.status != "pass" else ""
                click.echo(
                    f"  {r.case.package}.{r.case.name}: " + click.style(label, fg=color) + f" ({r.ms:.1f} ms){msg}"
                )
            click.echo("-" * 60)
            summary = f"{suite.passed} passed, {suite.failed} failed" + (
                f" ({suite.errors} errors)" if suite.errors else ""
            )
            click.secho(summary, fg="green" if suite.failed == 0 else "red")
        if suite.failed or not suite.results:
            if not suite.results and not as_json:
                click.echo("no test_* rules found", err=True)
            sys.exit(1)

    @policy.command("eval")
    @click.argument("policy_path", type=click.Path())
    @click.option(
        "--input",
        "input_path",
        type=click.Path(),
        help="The intent as Newton presents it (JSON, POLICIES.md §4.1); default: the folder's intent.example.json.",
    )
    @click.option(
        "--params",
        "params_path",
        type=click.Path(),
        help="data.params (JSON); default: the folder's params.example.json.",
    )
    @click.option(
        "--data",
        "data_path",
        type=click.Path(),
        help="Oracle output as data.wasm (JSON), mirrored to data.data; default: the examples in metadata.json.",
    )
    @click.option(
        "--no-validate",
        is_flag=True,
        help="Evaluate even if the intent does not have Newton's shape or the params break params_schema.json.",
    )
    @click.option(
        "--entrypoint", default=None, help="<package>.<rule>; default: metadata.json's, else <package>.allow."
    )
    @click.option(
        "--explain",
        "with_explain",
        is_flag=True,
        help="Also explain the verdict (rule tree, failed conditions, counterfactuals).",
    )
    @settings.option("eval_timeout_ms")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
    def policy_eval(
        policy_path: str,
        input_path: str | None,
        params_path: str | None,
        data_path: str | None,
        entrypoint: str | None,
        no_validate: bool,
        with_explain: bool,
        eval_timeout_ms: int,
        as_json: bool,
    ) -> None:
        """Evaluate one intent against a policy (exit 1 on an evaluation error — an error is not a deny); the intent
        is checked against Newton's input shape and the params against the policy's params_schema.json first."""
        from app.engine.inputshape import check_input, check_params
        from app.engine.replay import explain_input
        from app.engine.sandbox import guarded

        source, entry, folder = load_policy(policy_path, entrypoint)
        if input_path is None:
            if not (folder / "intent.example.json").is_file():
                from app.engine.inputshape import SHAPE_HINT

                raise LensError("no --input given and no intent.example.json beside the policy", SHAPE_HINT)
            input_path = str(folder / "intent.example.json")
        raw_input = _read_json(input_path, "input")
        if not no_validate:
            check_input(raw_input, f"the input file {input_path}")
        doc = _complete_input(raw_input)
        if params_path is None and (folder / "params.example.json").is_file():
            params_path = str(folder / "params.example.json")
        params = _read_json(params_path, "params") if params_path else {}
        schema_file = folder / "params_schema.json"
        if not no_validate and schema_file.is_file():
            check_params(params, _read_json(str(schema_file), "params schema"), f"the params {params_path}")
        wasm = _read_json(data_path, "data") if data_path else _example_data(folder)
        ex = (
            guarded(explain_input, source, entry, doc, params, wasm, with_explain, timeout_ms=eval_timeout_ms)
            if with_explain
            else guarded(_eval_only, source, entry, doc, params, wasm, timeout_ms=eval_timeout_ms)
        )
        if as_json:
            out = {"allow": ex.allow, "deny": list(ex.deny), "error": ex.error, "entrypoint": entry}
            if with_explain:
                d = ex.to_dict()
                d.pop("source", None)
                out["explanation"] = d
                out["sentence"] = ex.sentence
            click.echo(json.dumps(out, default=str))
        elif with_explain:
            click.echo(format_explanation(ex))
        else:
            verdict = "ERROR" if ex.error else ("ALLOW" if ex.allow else "DENY")
            click.secho(f"{verdict}  {entry}", fg="red" if ex.error or not ex.allow else "green")
            if ex.deny:
                click.echo("deny: " + ", ".join(ex.deny))
            if ex.error:
                click.echo(f"evaluation error: {ex.error}")
        if ex.error:
            sys.exit(1)

    @cli.command("explain")
    @click.argument("key")
    @settings.option("db")
    @settings.option("eval_timeout_ms")
    @click.option("--no-counterfactuals", is_flag=True, help="Skip the counterfactual search.")
    @click.option("--source", "with_source", is_flag=True, help="Also print the policy source, annotated line by line.")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print the explanation and the whole story as one JSON object."
    )
    def explain_cmd(
        key: str, db: str, eval_timeout_ms: int, no_counterfactuals: bool, with_source: bool, as_json: bool
    ) -> None:
        """Explain one indexed decision: KEY is its task id, any transaction tied to it (creation, response, the
        vault's execution or refusal, the spend of its attestation, a challenge) or a unique prefix; 0x optional."""
        from app.engine import store
        from app.engine.replay import explain_task
        from app.engine.sandbox import guarded
        from app.queries import verdict as vq

        con = store.connect(db)
        try:
            task, found = store.load_lookup(con, key)
            data = vq.verdict(con, task.task_id)
        finally:
            con.close()
        # the whole explanation (many evaluations) gets a multiple of the one-evaluation limit
        ex = guarded(
            explain_task, task, not no_counterfactuals, 500.0, vq.token_symbols(data), timeout_ms=eval_timeout_ms * 5
        )
        lookup_doc = {
            "typed": key.strip(),
            "kind": found.kind,
            "query": found.query,
            "roles": [lookup_role_text(r) for r in found.roles],
        }
        story = vq.story(data, ex, lookup_doc)
        from app.queries.trust import trust_from_db  # the trust badge: stake that signed, replay, challenge window

        trust = trust_from_db(str(Path(db).expanduser()), task.task_id, ex.replay)
        from app.queries.governance import decided_under_from_db  # implementations in force at the decision

        under = decided_under_from_db(str(Path(db).expanduser()), task.task_id)
        if as_json:
            d = ex.to_dict()
            d.pop("source", None)
            d["story"] = story
            d["trust"] = trust
            d["decided_under"] = under
            click.echo(json.dumps(d, default=str))
            return
        click.echo(format_story(story, ex))
        if trust:
            click.echo(f"\nTrust: {trust['line']}")
        for line in under:
            click.echo(line)
        if with_source and data.get("source"):
            from app.text import annotated_source

            click.echo("")
            click.echo("Policy source (✗ failing condition, • line reached):")
            click.echo(annotated_source(data["source"], ex.lines_reached, ex.lines_failed))

    @cli.command("audit")
    @settings.option("db")
    @settings.option("eval_timeout_ms")
    @click.option("--limit", type=int, default=None, help="Replay only the first N tasks.")
    @click.option("--workers", type=int, default=None, help="Worker processes (default: one per CPU core).")
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON object (replayed, match, mismatch, cannot_replay, mismatches).",
    )
    @click.option(
        "--list",
        "max_listed",
        type=click.IntRange(min=0),
        default=None,
        help="List at most this many mismatching tasks (default: every one); the rest are counted.",
    )
    @click.option("--no-write", is_flag=True, help="Report only: leave the `replays` table as it is.")
    @click.option(
        "--scheduler",
        default=None,
        help="Evaluate on a Dask cluster: tcp://HOST:8786, or `local` (a LocalCluster of --workers processes).",
    )
    @click.option(
        "--parquet",
        "parquet_dir",
        default=None,
        type=click.Path(file_okay=False),
        help="Read the decisions from a `lens export parquet` directory instead of the DB (reports; writes nothing).",
    )
    def audit_cmd(
        db: str,
        eval_timeout_ms: int,
        limit: int | None,
        workers: int | None,
        as_json: bool,
        max_listed: int | None,
        no_write: bool,
        scheduler: str | None = None,
        parquet_dir: str | None = None,
    ) -> None:
        """Replay every indexed decision, write the `replays` table, and report matches and mismatches — those
        already successfully challenged on chain apart from those still open."""
        from app.engine import store
        from app.engine.audit import AuditPool

        no_write = no_write or parquet_dir is not None  # an export is read, never written
        path = str(store.check_db_file(db)) if parquet_dir is None else ""
        t_start = time.perf_counter()
        if scheduler or parquet_dir:  # the same audit, its evaluations on Dask (app/distributed.py)
            from app import distributed

            pool = distributed.DaskAuditPool(scheduler or distributed.LOCAL, workers)
        else:
            pool = AuditPool(workers)  # workers start while the DB is read
        counts = {"match": 0, "mismatch": 0, "cannot_replay": 0}
        mismatches: list[str] = []
        challenged: set[str] = set()  # mismatches a successful challenge already proved wrong on chain
        reasons: dict[str, int] = {}
        replay_s, used = 0.0, 1
        try:
            total_tasks = min(
                distributed.parquet_rows(parquet_dir) if parquet_dir else store.count_tasks(path),
                limit if limit is not None else 2**62,
            )
            with _AuditProgress(total_tasks, as_json) as progress:
                # page by page: read (DB closed again), replay on the workers, write that page's rows — the DB is
                # never held while the engines run, and memory stays bounded however many tasks there are
                pages = (
                    distributed.parquet_task_pages(parquet_dir, limit)
                    if parquet_dir
                    else store.iter_task_pages(path, AUDIT_PAGE, limit)
                )
                for page in pages:
                    results, stats = pool.run(page, timeout_ms=eval_timeout_ms, on_progress=progress.advance)
                    replay_s, used = replay_s + stats.seconds, max(used, stats.workers)
                    if not no_write:
                        with store.writing(path) as con:
                            store.write_replays(con, {t.task_id: t.chain_id for t in page}, results)
                    status = {t.task_id: t.status for t in page}
                    for r, _ in results:
                        counts[r.result] = counts.get(r.result, 0) + 1
                        if r.result == "mismatch":
                            mismatches.append(r.task_id)
                            if status.get(r.task_id) == "challenged":
                                challenged.add(r.task_id)
                        elif r.result == "cannot_replay":
                            reasons[r.reason.split(":")[0]] = reasons.get(r.reason.split(":")[0], 0) + 1
        finally:
            pool.close()
        replayed = sum(counts.values())
        total = time.perf_counter() - t_start
        rate = round(replayed / replay_s, 1) if replay_s > 0 else None
        still_open = [t for t in mismatches if t not in challenged]
        already = [t for t in mismatches if t in challenged]
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "replayed": replayed,
                        **counts,
                        "mismatches": mismatches,
                        "mismatch_open": len(still_open),
                        "mismatch_challenged": len(already),
                        "mismatches_open": still_open,
                        "mismatches_challenged": already,
                        "wrote_replays": not no_write,
                        "cannot_replay_reasons": reasons,
                        "seconds": round(replay_s, 3),
                        "decisions_per_s": rate,
                        "workers": used,
                        "scheduler": getattr(pool, "scheduler", None),
                        "total_seconds": round(total, 3),
                        "load_avg_1m": round(os.getloadavg()[0], 2),
                    }
                )
            )
            return
        split = f" ({len(still_open)} still open, {len(already)} already successfully challenged)" if mismatches else ""
        click.echo(
            f"replayed {replayed} decisions: {counts['match']} match, {counts['mismatch']} mismatch{split}, "
            f"{counts['cannot_replay']} cannot replay  (replay {replay_s:.1f} s = {rate} decisions/s on "
            f"{used} workers; {total:.1f} s with reading and writing the DB; load average {os.getloadavg()[0]:.2f})"
        )
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  cannot replay ({n}): {reason}")
        ordered = still_open + already  # the ones nobody has challenged yet first
        shown = ordered if max_listed is None else ordered[:max_listed]
        for tid in shown:
            if tid in challenged:
                click.secho(f"  MISMATCH {tid}  (already successfully challenged)", fg="yellow")
            else:
                click.secho(f"  MISMATCH {tid}  (still open: nobody has challenged it)", fg="red")
        if len(shown) < len(mismatches):
            click.secho(
                f"  … and {len(mismatches) - len(shown)} more mismatches: `lens audit --db {db}` lists all "
                f"(`lens explain TASK_ID --db {db}` explains one)",
                fg="red",
            )
        click.echo("left the replays table as it was (--no-write)" if no_write else "wrote the replays table")

    @bench.command("replay")
    @settings.option("db")
    @click.option(
        "--tasks",
        "n_tasks",
        type=int,
        default=1000,
        show_default=True,
        help="How many indexed tasks to replay and explain.",
    )
    @click.option(
        "--synthetic",
        is_flag=True,
        help="Use tasks evaluated from the local policies instead of a DB (also used when the DB is missing).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (p50_ms, p95_ms, max_ms, tasks).")
    def bench_replay(db: str, n_tasks: int, synthetic: bool, as_json: bool) -> None:
        """Replay + explain N tasks (counterfactuals included) and report p50/p95/max per task; target p95 < 50 ms."""
        from rich.progress import Progress

        from app.engine.replay import explain

        source_kind = "db"
        if synthetic or not Path(db).expanduser().is_file():
            from app.engine.fixtures import synthetic_tasks

            tasks = synthetic_tasks(n_tasks, seed=7)
            source_kind = "synthetic"
        else:
            from app.engine import store

            con = store.connect(db)
            try:
                # stop reading at the n-th responded task (not build every task of a large DB and slice)
                tasks = list(
                    islice((t for t in store.iter_tasks(con, None) if t.evaluation_result is not None), max(n_tasks, 0))
                )
            finally:
                con.close()
        if not tasks:
            raise LensError("no responded tasks to replay", "index a chain or run with --synthetic")
        times: list[float] = []
        cpu: list[float] = []  # CPU time too: on a loaded machine wall time mostly measures the wait for a core
        results = {"match": 0, "mismatch": 0, "cannot_replay": 0}
        cut = 0  # explanations whose counterfactual search hit its budget (a cut search would flatter the figures)
        load_start = os.getloadavg()[0]
        with Progress(disable=as_json, transient=True) as progress:
            bar = progress.add_task("replay + explain", total=len(tasks))
            for task in tasks:
                t0, c0 = time.perf_counter(), time.process_time()
                # the one guarded evaluation every path uses (its worker, its time and memory limits), IPC included
                ex = explain(task, timeout_ms=int(settings.get("eval_timeout_ms")) * 5)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                results[ex.replay or "cannot_replay"] = results.get(ex.replay or "cannot_replay", 0) + 1
                cut += ex.counterfactual_note.startswith("search stopped")
                progress.advance(bar)
        out = {
            "tasks": len(times),
            "source": source_kind,
            "p50_ms": round(_percentile(times, 0.5), 3),
            "p95_ms": round(_percentile(times, 0.95), 3),
            "max_ms": round(max(times), 3),
            "cpu_p50_ms": round(_percentile(cpu, 0.5), 3),
            "cpu_p95_ms": round(_percentile(cpu, 0.95), 3),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "load_avg_1m_start": round(load_start, 2),
            "cpus": os.cpu_count(),
            "counterfactual_search_cut": cut,
            "target_p95_ms": 50,
            "ratio_p95_to_target": round(_percentile(times, 0.95) / 50, 3),
            **results,
        }
        if as_json:
            click.echo(json.dumps(out))
        else:
            click.echo(
                f"replayed and explained {out['tasks']} {source_kind} tasks: p50 {out['p50_ms']} ms, "
                f"p95 {out['p95_ms']} ms, max {out['max_ms']} ms (target p95 < 50 ms → {out['ratio_p95_to_target']}x); "
                f"CPU p50 {out['cpu_p50_ms']} ms, p95 {out['cpu_p95_ms']} ms; machine load average {out['load_avg_1m_start']} → "
                f"{out['load_avg_1m']} on {out['cpus']} CPUs; counterfactual searches cut by their budget: {cut}"
            )


AUDIT_PAGE = 20000  # tasks read, replayed and written per step of `lens audit`


class _AuditProgress(DecisionsProgress):
    """The audit's progress bar: done/total, rate, running match / mismatch / cannot-replay tallies, ETA."""

    def __init__(self, total: int, quiet: bool) -> None:
        super().__init__(
            "replaying",
            total,
            quiet,
            "[green]{task.fields[match]} match[/] [red]{task.fields[mismatch]} mismatch[/] "
            "[yellow]{task.fields[cannot]} cannot replay[/]",
            match=0,
            mismatch=0,
            cannot=0,
        )
        self.tally = {"match": 0, "mismatch": 0, "cannot_replay": 0}

    def advance(self, n: int, rows: list) -> None:
        """Count a finished chunk (called from the worker threads, one at a time)."""
        for rep, _ in rows:
            self.tally[rep.result] = self.tally.get(rep.result, 0) + 1
        self.step(n, match=self.tally["match"], mismatch=self.tally["mismatch"], cannot=self.tally["cannot_replay"])


def _eval_only(source: str, entrypoint: str, input: dict, params: dict, wasm: dict) -> Any:
    """Evaluate without explanation, as a minimal Explanation-shaped record (runs in the sandbox)."""
    from app.engine.evaluate import compiled
    from app.engine.explain import Explanation

    ev = compiled(source, entrypoint).evaluate(input, params, wasm)
    return Explanation(
        entrypoint=entrypoint,
        allow=ev.allow,
        deny=ev.deny,
        error=ev.error,
        sentence="",
        rule_tree=None,
        bodies=(),
        lines_reached=(),
        lines_not_reached=(),
        lines_failed=(),
        counterfactuals=(),
    )
