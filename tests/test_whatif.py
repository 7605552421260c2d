"""What-if on a DB the real indexer wrote from the simulated devnet: flips checked against the chain's own recorded
amounts (SQL on the raw tables) and the simulation's own list of injected faults; the CLI, the engine core, limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import simulated_devnet, sql

ROOT = Path(__file__).resolve().parents[1]
LENS = str(Path(sys.executable).parent / "lens")
SPENDING = ROOT / "data" / "policies" / "spending_limits"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """anvil + devnet contracts + simulated tasks (10% faults) + `lens index` → (db, SimResult, deployment doc)."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    with simulated_devnet(tasks=150, fault_rate=0.1) as (_node, _w3, doc, result):
        tmp = tmp_path_factory.mktemp("whatif")
        db = tmp / "lens.duckdb"
        index(parse(doc, "devnet"), IndexOptions(db=str(db), metadata_timeout_s=2))
        dep = tmp / "deployment.json"
        dep.write_text(json.dumps(doc))
        yield db, result, doc, dep


def lens(*args: str, db: Path, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `lens` CLI on the test DB (bounded in time)."""
    import os

    proc = subprocess.run(
        [LENS, *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "LENS_DEPLOYMENT_FILE": "/nonexistent", **(env or {})},
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def whatif_json(db: Path, *args: str) -> dict:
    return json.loads(lens("whatif", *args, "--json", db=db).stdout)


def _policy_address(db: Path, name: str) -> str:
    return sql(db, "SELECT policy_address FROM tasks WHERE entrypoint = ? LIMIT 1", [f"{name}.allow"])[0][0]


def _baseline_allow(db: Path, result, where: str, params: list) -> dict[str, bool]:
    """task id → the verdict an honest quorum gives: the attested one, inverted where the simulation injected a fault."""
    faults = set(result.faults)
    rows = sql(db, f"SELECT task_id, allow FROM tasks WHERE allow IS NOT NULL AND {where}", params)
    return {t: (bool(a) != (t in faults)) for t, a in rows}


def _client_with_constant_limit(db: Path) -> tuple[str, str]:
    """A spending_limits client whose every decision was made under the same max_tx_wei → (client, max_tx_wei)."""
    rows = sql(
        db,
        "SELECT policy_client, any_value(json_extract_string(params_json, '$.max_tx_wei')) AS m, count(*) FILTER "
        "(WHERE allow) AS allowed FROM tasks WHERE entrypoint = 'spending_limits.allow' AND allow IS NOT NULL "
        "GROUP BY 1 HAVING count(DISTINCT json_extract_string(params_json, '$.max_tx_wei')) = 1 ORDER BY allowed DESC",
    )
    assert rows, "the simulation gave no spending_limits client a constant max_tx_wei"
    return rows[0][0], rows[0][1]


def test_lowering_max_tx_wei_flips_exactly_that_clients_allowed_decisions_above_it(indexed):
    db, result, *_ = indexed
    client, _limit = _client_with_constant_limit(db)
    base = _baseline_allow(db, result, "policy_client = ?", [client])
    amounts = {t: int(a) for t, a in sql(db, "SELECT task_id, amount_wei FROM tasks WHERE policy_client = ?", [client])}
    allowed = sorted({amounts[t] for t, ok in base.items() if ok})
    assert len(allowed) >= 4, allowed
    # strictly between two recorded allowed amounts, in the lower half so that several decisions flip
    lo, hi = allowed[len(allowed) // 3], allowed[len(allowed) // 3 + 1]
    new_limit = (lo + hi) // 2
    assert lo <= new_limit < hi
    expected = {t for t, ok in base.items() if ok and amounts[t] > new_limit}
    out = whatif_json(db, "--policy", "spending_limits", "--client", client, "--set", f"max_tx_wei={new_limit}")
    got = {f["task_id"] for f in out["flips"]}
    assert got == expected
    assert out["flipped_to_deny"] == len(expected) and out["flipped_to_allow"] == 0
    assert all(f["client"] == client and "exceeds_per_tx_limit" in f["deny_added"] for f in out["flips"])
    assert set(out["by_client"]) == {client}
    assert out["decisions"] == len(base)

    # without --client the same change applies to every client of the policy: other clients flip too, this one the same
    everyone = whatif_json(db, "--policy", "spending_limits", "--set", f"max_tx_wei={new_limit}")
    assert {f["task_id"] for f in everyone["flips"] if f["client"] == client} == expected


def test_raising_it_back_restores_the_baseline(indexed):
    db, result, *_ = indexed
    client, limit = _client_with_constant_limit(db)
    out = whatif_json(db, "--policy", "spending_limits", "--client", client, "--set", f"max_tx_wei={limit}")
    assert out["flips"] == [] and out["flipped_to_deny"] == 0
    assert out["reasons_added"] == {} and out["reasons_removed"] == {}


def test_baseline_reproduces_the_attested_verdicts_except_the_faults(indexed):
    db, result, *_ = indexed
    for name in ("spending_limits", "counterparty_screening", "kyc_jurisdiction", "circuit_breaker"):
        address = _policy_address(db, name)
        attested = dict(
            sql(db, "SELECT task_id, allow FROM tasks WHERE allow IS NOT NULL AND policy_address = ?", [address])
        )
        faults = set(result.faults) & set(attested)
        out = whatif_json(db, "--policy", address)
        assert out["decisions"] == len(attested)
        assert set(out["baseline_mismatch_ids"]) == faults, name
        assert out["baseline_mismatches"] == len(faults)
        assert out["flips"] == [] and out["errors"] == 0
        assert f"reproduces {len(attested) - len(faults):,} of {len(attested):,}" in out["baseline"]


def test_a_changed_rule_in_a_new_source_flips_what_it_touches(indexed, tmp_path):
    db, result, *_ = indexed
    source = (SPENDING / "policy.rego").read_text()
    # a new rule: plain native transfers (no function call) are no longer allowed
    changed = source.replace(
        'deny contains "invalid_params" if not params_ok',
        'deny contains "invalid_params" if not params_ok\n\ndeny contains "no_native_transfers" if fname == ""',
    )
    assert changed != source
    path = tmp_path / "new.rego"
    path.write_text(changed)
    address = _policy_address(db, "spending_limits")
    base = _baseline_allow(db, result, "policy_address = ?", [address])
    native = {
        t
        for (t,) in sql(
            db,
            "SELECT task_id FROM tasks WHERE policy_address = ? AND coalesce(function_signature, '') = ''",
            [address],
        )
    }
    expected = {t for t, ok in base.items() if ok and t in native}
    assert expected, "the simulation made no allowed plain transfer under spending_limits"
    out = whatif_json(db, "--policy", "spending_limits", "--source", str(path))
    assert {f["task_id"] for f in out["flips"]} == expected
    assert all(f["deny_added"] == ["no_native_transfers"] and not f["to_allow"] for f in out["flips"])
    # every native transfer gains the reason, flipped or not
    assert out["reasons_added"] == {"no_native_transfers": len(native & set(base))}


def test_an_invalid_source_gives_its_parse_error_with_the_line(indexed, tmp_path):
    db, *_ = indexed
    lines = (SPENDING / "policy.rego").read_text().splitlines()
    bad_line = 20
    lines[bad_line - 1] = "this is := not { rego"
    path = tmp_path / "bad.rego"
    path.write_text("\n".join(lines) + "\n")
    proc = lens("whatif", "--policy", "spending_limits", "--source", str(path), db=db, ok=False)
    assert proc.returncode == 1
    assert f"{path}:{bad_line}:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


RUNAWAY_TIME = """package spending_limits

import rego.v1

default allow := false

deny contains "never" if {
\tsome i in numbers.range(0, 200000)
\tsome j in numbers.range(0, 200000)
\ti * j == -1
}

allow if count(deny) == 0
"""

RUNAWAY_MEMORY = """package spending_limits

import rego.v1

default allow := false

big := [x | some x in numbers.range(0, 4000000000)]

allow if count(big) > 0
"""


def test_a_runaway_source_is_stopped_within_the_limit(indexed, tmp_path):
    db, *_ = indexed
    path = tmp_path / "loop.rego"
    path.write_text(RUNAWAY_TIME)
    proc = lens(
        "whatif", "--policy", "spending_limits", "--source", str(path), "--eval-timeout-ms", "500", db=db, ok=False
    )
    assert proc.returncode == 1, proc.stdout
    assert "runs too long" in proc.stderr and "500 ms" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    path = tmp_path / "alloc.rego"
    path.write_text(RUNAWAY_MEMORY)
    proc = lens(
        "whatif", "--policy", "spending_limits", "--source", str(path), "--eval-timeout-ms", "20000",
        "--eval-memory-mb", "600", db=db, ok=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "memory limit" in proc.stderr or "runs too long" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_out_writes_every_flip_and_bad_flags_fail_clearly(indexed, tmp_path):
    import pandas as pd

    db, *_ = indexed
    client, _ = _client_with_constant_limit(db)
    out_csv = tmp_path / "flips.csv"
    out = whatif_json(db, "--policy", "spending_limits", "--set", "max_tx_wei=1 ETH", "--out", str(out_csv))
    frame = pd.read_csv(out_csv)
    assert set(frame["task_id"]) == {f["task_id"] for f in out["flips"]} and len(frame) == len(out["flips"])
    out_pq = tmp_path / "flips.parquet"
    lens("whatif", "--policy", "spending_limits", "--set", "max_tx_wei=1 ETH", "--out", str(out_pq), db=db)
    assert set(pd.read_parquet(out_pq)["task_id"]) == set(frame["task_id"])
    for args, needle in [
        (["--policy", "nope"], "no policy 'nope'"),
        (["--policy", "spending_limits", "--set", "max_tx_wei=-3"], "max_tx_wei"),
        (["--policy", "spending_limits", "--set", "max_tx_wei=1.5 wei"], "whole number of wei"),
        (["--policy", "spending_limits", "--set", "no_such=1"], "no such param"),
        (["--policy", "counterparty_screening", "--set", "max_risk_score=500"], "max_risk_score"),
        (["--policy", "spending_limits", "--client", "0x" + "00" * 20], "not a client"),
    ]:
        proc = lens("whatif", *args, db=db, ok=False)
        assert proc.returncode == 1 and needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Values and scenarios: round trips


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_wei_amounts_round_trip_through_the_eth_notation(wei):
    from app.engine.values import fmt_wei
    from app.engine.whatif import parse_wei

    assert parse_wei(str(wei)) == str(wei)
    whole, frac = divmod(wei, 10**18)
    assert parse_wei(f"{whole}.{frac:018d} ETH") == str(wei)
    if wei != 2**256 - 1:
        shown = fmt_wei(str(wei)).split(" (")[0]  # '12.5 ETH'
        assert parse_wei(shown.replace(",", "")) == str(wei)


def test_wei_parsing_examples():
    from app.engine.whatif import parse_wei
    from app.errors import LensError

    assert parse_wei("12.5 ETH") == "12500000000000000000"
    assert parse_wei("3 gwei") == "3000000000"
    assert parse_wei("2500000000000000000000") == "2500000000000000000000"
    for bad in ("-1", "abc", "1.5 wei", "1 parsec", f"{2**256}"):
        with pytest.raises(LensError):
            parse_wei(bad)


_KEYS = st.sampled_from(["max_tx_wei", "daily_cap_wei", "allowed_functions"])


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        _KEYS,
        st.one_of(
            st.integers(min_value=0, max_value=2**200).map(str),
            st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=8), max_size=4),
        ),
        max_size=3,
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_scenario_round_trips_through_the_url(values, from_block):
    from app.queries.whatif import Scenario, scenario_from_query

    schema = json.loads((SPENDING / "params_schema.json").read_text())
    # a wei param holds wei digits, the list param a list: what the schema allows
    values = {k: v for k, v in values.items() if isinstance(v, list) == (k == "allowed_functions")}
    s = Scenario(
        policy="0x" + "ab" * 20,
        client="0x" + "cd" * 20,
        overrides=tuple((k, json.dumps(v)) for k, v in values.items()),
        from_block=from_block,
    )
    assert scenario_from_query(s.to_query(), schema, s.policy) == s


def test_cached_baselines_give_the_same_flips_and_chain_data_is_never_written(indexed, tmp_path):
    import shutil

    src, *_ = indexed
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(src, db)
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("DROP TABLE IF EXISTS whatif_baseline")  # earlier tests' runs on the shared DB filled the cache
    con.close()
    tables = [t for (t,) in sql(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
    digest = "SELECT count(*), coalesce(sum(hash(x)), 0) FROM (SELECT * FROM {}) x"
    before = {t: sql(db, digest.format(t)) for t in tables}
    args = ("--policy", "counterparty_screening", "--set", "max_risk_score=30")
    first = whatif_json(db, *args)
    assert first["cached_baselines"] == 0
    cached = sql(db, "SELECT count(*) FROM whatif_baseline")[0][0]
    assert cached == first["decisions"]
    second = whatif_json(db, *args)
    assert second["cached_baselines"] == first["decisions"]
    fresh = whatif_json(db, *args, "--no-cache")
    assert fresh["cached_baselines"] == 0
    for out in (second, fresh):
        assert out["flips"] == first["flips"] and out["baseline_mismatch_ids"] == first["baseline_mismatch_ids"]
    # every table but the what-if's own cache is exactly as it was
    assert {t: sql(db, digest.format(t)) for t in tables} == before


def _children(pid: int) -> set[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def test_ctrl_c_stops_cleanly(indexed, tmp_path):
    import os
    import signal
    import time

    db, *_ = indexed
    path = tmp_path / "slow.rego"
    path.write_text(RUNAWAY_TIME)
    proc = subprocess.Popen(
        [LENS, "whatif", "--db", str(db), "--policy", "spending_limits", "--source", str(path)]
        + ["--eval-timeout-ms", "120000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LENS_DEPLOYMENT_FILE": "/nonexistent"},
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 1 and time.monotonic() < deadline:  # the evaluation is under way in a worker
            time.sleep(0.5)
            workers = _children(proc.pid)
        assert workers, "no worker process started"
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group gets SIGINT
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped by Ctrl-C" in err and "Traceback" not in err, err
    time.sleep(0.5)
    assert not [
        p for p in workers if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()
    ]


def test_the_overall_budget_stops_a_long_run(indexed, tmp_path):
    db, *_ = indexed
    path = tmp_path / "slow.rego"
    path.write_text(RUNAWAY_TIME)
    proc = lens(
        "whatif", "--policy", "spending_limits", "--source", str(path), "--eval-timeout-ms", "120000",
        "--whatif-budget-s", "3", db=db, ok=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "overall budget of 3 s" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------ the VM fast path and its check


def _decisions(db: Path, name: str):
    from app.engine import store
    from app.queries import whatif as q

    with store.reading(str(db)) as con:
        return q.load_decisions(con, q.Scenario(policy=_policy_address(db, name)))


@pytest.mark.parametrize("name", ["spending_limits", "counterparty_screening", "circuit_breaker", "kyc_jurisdiction"])
def test_the_vm_fast_path_gives_the_interpreters_flips(indexed, name):
    """The changed pass on regorus' VM flips exactly what the interpreter flips, deny reasons included."""
    from app.engine.whatif import Change, evaluate_partition, pack

    db, *_ = indexed
    d = _decisions(db, name)
    source = next(t.source for t in d.tasks if t.source)
    # a changed rule: allow now needs a sender whose address ends in an odd hex digit (a fact of the chain's own logs)
    rule = 'even if {\n\tsome c in ["0", "2", "4", "6", "8", "a", "c", "e"]\n\tendswith(lower(input.from), c)\n}'
    changed = source.replace("default allow := false", "default allow := false\n\n" + rule)
    changed = changed.replace("\tcount(deny) == 0\n}", "\tcount(deny) == 0\n\tnot even\n}")
    assert changed != source
    for change in (Change(source=changed), Change()):
        interp = evaluate_partition(*pack(d.tasks), change, use_vm=False)
        fast = evaluate_partition(*pack(d.tasks), change, use_vm=True)
        assert fast.flips == interp.flips and fast.reasons_added == interp.reasons_added
        assert fast.vm_disagreements == 0
    # the oracle: SQL on the raw table — what an honest quorum allowed from an address ending in an even digit flips
    flipped = evaluate_partition(*pack(d.tasks), Change(source=changed), use_vm=True)
    faults = set(flipped.baseline_mismatches)
    rows = sql(
        db,
        "SELECT task_id, allow FROM tasks WHERE entrypoint = ? AND allow IS NOT NULL "
        "AND lower(right(intent_from, 1)) IN ('0', '2', '4', '6', '8', 'a', 'c', 'e')",
        [f"{name}.allow"],
    )
    expected = {t for t, a in rows if bool(a) != (t in faults)}
    assert expected, "no allowed decision from such a sender: the test would prove nothing"
    assert {f.task_id for f in flipped.flips} == expected
    assert flipped.vm_checked > 0 and flipped.vm_disagreements == 0  # the VM ran, and the interpreter agreed
    assert all(not f.to_allow for f in flipped.flips)


def test_a_vm_that_disagrees_hands_the_group_to_the_interpreter(indexed):
    """regorus 0.9.1's VM mis-adds with the first spending_limits source (chunked, loop-based; older DBs hold it):
    the sample check catches it, the interpreter re-runs the group, and the result is the interpreter's — the two
    sources compute the same exact arithmetic, so swapping one for the other flips nothing."""
    from app.engine.whatif import Change, evaluate_partition, pack

    db, *_ = indexed
    d = _decisions(db, "spending_limits")
    old = (ROOT / "tests" / "data" / "spending_limits_chunked_v1.rego").read_text()
    result = evaluate_partition(*pack(d.tasks), Change(source=old), use_vm=True)
    assert result.vm_disagreements > 0, "the VM now agrees on the old source: the check is untested here"
    assert result.flips == () and not result.errors
    assert result.vm_checked >= min(len(d.tasks), 16)


def test_pages_of_any_size_give_the_same_what_if(indexed):
    """Run page by page (a small odd page, so pages split blocks), the what-if reports what one page reports."""
    db, *_ = indexed
    args = ("--policy", "spending_limits", "--set", "max_tx_wei=1", "--no-cache")  # every allowed amount > 1 wei flips
    whole = whatif_json(db, *args)
    paged = whatif_json(db, *args, "--whatif-page", "7")
    for key in ("decisions", "baseline_mismatches", "flipped_to_deny", "flipped_to_allow", "by_client", "baseline"):
        assert paged[key] == whole[key], key
    assert sorted(f["task_id"] for f in paged["flips"]) == sorted(f["task_id"] for f in whole["flips"])
    assert whole["flips"] and whole["decisions"] > 7
    bad = lens("whatif", *args, "--whatif-page", "0", db=db, ok=False)
    assert bad.returncode != 0 and "at least one decision" in bad.stderr and "Traceback" not in bad.stderr
