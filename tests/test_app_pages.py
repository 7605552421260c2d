"""Every dashboard page through AppTest on a DB built by code (lens synth, fixed seed): content, filters, exports, states."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest
from support import page, sql

from app import synth
from app.queries import decisions, verdict
from app.text import fmt_amount, params_diff

ROOT = Path(__file__).resolve().parents[1]
SEED = 11
N_TASKS = 3000


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory) -> Path:
    """A synthetic DB of N_TASKS decisions (same seed, same content)."""
    path = tmp_path_factory.mktemp("lensdb") / "lens.duckdb"
    synth.build(path, tasks=N_TASKS, seed=SEED)
    return path


@pytest.fixture()
def env(monkeypatch, tmp_path):
    """Point the app at no deployment file (the DB's meta is the deployment) and return a setter for the DB."""
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "no-deployment.json"))

    def use(db: Path) -> None:
        monkeypatch.setenv("LENS_DB", str(db))

    return use


def all_text(at: AppTest) -> str:
    """Every string the page shows: texts, markdown, metrics, alerts, JSON and table cells."""
    parts: list[str] = []
    for kind in (
        "text",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "title",
        "subheader",
        "code",
        "json",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for d in at.dataframe:
        parts.append(d.value.astype(str).to_csv())
    return "\n".join(parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# --- overview -----------------------------------------------------------------------------------------


def test_overview_kpis_and_latest(synth_db, env):
    env(synth_db)
    at = page("pages/overview.py")
    m = metrics(at)
    total, allowed, answered, spent = sql(
        synth_db, "SELECT count(*), count(*) FILTER (WHERE allow), count(allow), count(spent_block) FROM tasks"
    )[0]
    assert m["Tasks"] == f"{total:,}"
    assert m["Allowed"] == f"{allowed / answered:.1%}"
    assert m["Attestations spent"] == f"{spent:,}"
    assert m["Deployment"] == "synth"
    latest = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    newest = sql(synth_db, "SELECT task_id FROM tasks ORDER BY created_block DESC, task_id LIMIT 25")
    assert latest["task_id"].tolist() == [r[0] for r in newest]
    assert all(link == f"/verdict?task={t}" for link, t in zip(latest["verdict_page"], latest["task_id"]))
    assert len(at.get("plotly_chart")) == 2


# --- verdict ------------------------------------------------------------------------------------------


def _per_tx_denied(db: Path) -> tuple[str, str]:
    rows = sql(
        db,
        """
        SELECT task_id, json_extract_string(params_json, '$.max_tx_wei') FROM tasks
        WHERE entrypoint = 'spending_limits.allow' AND allow = false AND NOT coalesce(challenge_success, false)
          AND CAST(amount_wei AS HUGEINT) > CAST(json_extract_string(params_json, '$.max_tx_wei') AS HUGEINT)
        ORDER BY created_block LIMIT 1""",
    )
    assert rows, "the synthetic DB should hold a task denied by the per-transaction limit"
    return rows[0]


def test_verdict_of_denied_task_shows_reason_and_failing_param(synth_db, env):
    env(synth_db)
    task_id, max_tx_wei = _per_tx_denied(synth_db)
    at = page("pages/verdict.py", task=task_id)
    m = metrics(at)
    assert m["Attested verdict"] == "denied"
    assert m["Independent replay"] == "match"
    text = all_text(at)
    assert "exceeds_per_tx_limit" in text
    assert max_tx_wei in text  # the failing param's exact value
    assert "Denied:" in text  # the plain sentence
    assert at.query_params["task"] == task_id


def test_verdict_lookup_by_address_lists_its_decisions(synth_db, env):
    env(synth_db)
    agent, n = sql(synth_db, "SELECT intent_from, count(*) FROM tasks GROUP BY 1 ORDER BY 2 DESC LIMIT 1")[0]
    expected = sql(
        synth_db,
        "SELECT count(*) FROM tasks WHERE intent_from = ? OR policy_client = ? OR counterparty = ? OR intent_to = ?",
        [agent] * 4,
    )[0][0]
    at = page("pages/verdict.py")
    at.text_input(key="verdict_lookup").input(agent.upper().replace("0X", "0x")).run()
    assert not at.exception
    assert any(f"{expected:,} decisions involve this address" in s.value for s in at.subheader)
    listed = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    assert len(listed) == min(expected, 500)
    assert at.query_params["q"] == agent


def test_verdict_lookup_by_tx_hash_and_bad_input(synth_db, env):
    env(synth_db)
    task_id, tx = sql(synth_db, "SELECT task_id, responded_tx FROM tasks WHERE responded_tx IS NOT NULL LIMIT 1")[0]
    at = page("pages/verdict.py")
    at.text_input(key="verdict_lookup").input(tx).run()
    assert at.query_params["task"] == task_id
    at.text_input(key="verdict_lookup").input("'; DROP TABLE tasks; --").run()
    assert not at.exception
    assert any("not a task id" in w.value for w in at.warning)
    assert sql(synth_db, "SELECT count(*) FROM tasks")[0][0] == N_TASKS


def test_verdict_of_task_without_response(synth_db, env):
    env(synth_db)
    rows = sql(synth_db, "SELECT task_id FROM tasks WHERE responded_block IS NULL LIMIT 1")
    assert rows
    at = page("pages/verdict.py", task=rows[0][0])
    assert metrics(at)["Attested verdict"] == "awaiting response"
    assert any("no response yet" in i.value for i in at.info)


def test_mismatch_is_flagged(synth_db, env):
    env(synth_db)
    rows = sql(synth_db, "SELECT task_id FROM tasks WHERE challenge_success LIMIT 1")
    if not rows:
        pytest.skip("no faulty response in this seed")
    at = page("pages/verdict.py", task=rows[0][0])
    assert metrics(at)["Independent replay"] == "MISMATCH"
    assert any("differs from Lens's replay" in e.value for e in at.error)


# --- states: missing source, on-chain strings, empty and locked DBs --------------------------------------


@pytest.fixture()
def tampered_db(synth_db, tmp_path) -> Path:
    """A copy of the synthetic DB with hostile on-chain strings and one policy source missing."""
    path = tmp_path / "tampered.duckdb"
    shutil.copy(synth_db, path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE policies SET name = '<script>alert(\"policy\")</script>' WHERE name = 'spending_limits'")
    con.execute("UPDATE operators SET name = '<script>alert(\"op\")</script>'")
    con.execute(
        "DELETE FROM blobs WHERE hash = (SELECT policy_code_hash FROM policies WHERE name = 'kyc_jurisdiction')"
    )
    con.close()
    return path


def test_onchain_strings_are_never_html(tampered_db, env):
    env(tampered_db)
    task_id, _ = _per_tx_denied(tampered_db)
    for at in (page("pages/policies.py"), page("pages/verdict.py", task=task_id)):
        shown = all_text(at)
        assert '<script>alert("' in shown  # shown literally, as data
        for md in list(at.markdown) + list(at.caption) + list(at.subheader) + list(at.warning) + list(at.info):
            assert "<script>" not in md.value  # escaped wherever markdown renders


def test_missing_policy_source_is_a_clear_state(tampered_db, env):
    env(tampered_db)
    task_id = sql(
        tampered_db,
        "SELECT task_id FROM tasks WHERE entrypoint = 'kyc_jurisdiction.allow' AND allow IS NOT NULL LIMIT 1",
    )[0][0]
    at = page("pages/verdict.py", task=task_id)
    assert metrics(at)["Independent replay"] == "cannot replay"
    assert any("policy source is missing" in w.value or "not in the DB" in w.value for w in at.warning)
    address = sql(tampered_db, "SELECT policy_address FROM policies WHERE name = 'kyc_jurisdiction'")[0][0]
    at = page("pages/policies.py", policy=address)
    assert any("Rego source of this policy is not in the DB" in w.value for w in at.warning)


def test_empty_db_every_page(tmp_path, env):
    from indexer.load import ensure_schema

    path = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(path))
    ensure_schema(con)
    con.close()
    env(path)
    for p in ("pages/overview.py", "pages/verdict.py", "pages/decisions.py", "pages/policies.py"):
        at = page(p)
        assert any("no indexed tasks yet" in i.value for i in at.info), p
        assert not at.error


def test_db_being_written_is_a_clear_state(synth_db, tmp_path, env):
    path = tmp_path / "locked.duckdb"
    shutil.copy(synth_db, path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time\nc = duckdb.connect({str(path)!r})\nprint('locked', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        env(path)
        at = page("pages/decisions.py")
        assert any("being written" in w.value for w in at.warning)
    finally:
        holder.kill()
        holder.wait()
    at = page("pages/decisions.py")  # the writer is gone: the page recovers
    assert metrics(at)["Matching decisions"] == f"{N_TASKS:,}"


# --- decisions ------------------------------------------------------------------------------------------


def test_filters_in_the_url_narrow_to_the_expected_count(synth_db, env):
    env(synth_db)
    client = sql(synth_db, "SELECT policy_client FROM tasks GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")[0][0]
    expected = sql(
        synth_db, "SELECT count(*) FROM tasks WHERE policy_client = ? AND allow = false AND amount_num >= 100", [client]
    )[0][0]
    assert 0 < expected < N_TASKS
    at = page("pages/decisions.py", client=client, verdict="denied", amount_min="100.0")
    assert metrics(at)["Matching decisions"] == f"{expected:,}"
    table = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    assert len(table) == min(expected, 50)
    assert set(table["verdict"]) == {"denied"} and set(table["policy_client"]) == {client}


def test_form_filters_update_the_url_and_page(synth_db, env):
    env(synth_db)
    expected = sql(synth_db, "SELECT count(*) FROM tasks WHERE status IN ('expired', 'challenged')")[0][0]
    at = page("pages/decisions.py")
    assert metrics(at)["Matching decisions"] == f"{N_TASKS:,}"
    status = next(w for w in at.multiselect if w.label == "Lifecycle status")
    status.set_value(["expired", "challenged"])
    next(b for b in at.button if b.label == "Apply filters").click().run()
    assert not at.exception
    assert metrics(at)["Matching decisions"] == f"{expected:,}"
    assert at.query_params["status"] == "expired,challenged"


def test_sorting_and_paging_happen_in_the_db(synth_db, env):
    env(synth_db)
    at = page("pages/decisions.py", sort="amount", dir="asc", page="3")
    table = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    expected = [
        r[0]
        for r in sql(
            synth_db, "SELECT task_id FROM tasks ORDER BY amount_num ASC NULLS LAST, task_id LIMIT 50 OFFSET 100"
        )
    ]
    assert table["task_id"].tolist() == expected


def test_export_contains_exactly_the_filtered_rows(synth_db, env):
    from app.queries.decisions import export_decisions

    env(synth_db)
    client = sql(synth_db, "SELECT policy_client FROM tasks WHERE entrypoint = 'circuit_breaker.allow' LIMIT 1")[0][0]
    share = {"client": client, "verdict": "denied"}
    expected = {
        r[0] for r in sql(synth_db, "SELECT task_id FROM tasks WHERE policy_client = ? AND allow = false", [client])
    }
    at = page("pages/decisions.py", **share)
    assert {b.label for b in at.get("download_button")} >= {"Export CSV", "Export Parquet"} or len(
        at.get("download_button")
    ) == 2
    csv = pd.read_csv(io.BytesIO(export_decisions(share, "csv")))
    parquet = pd.read_parquet(io.BytesIO(export_decisions(share, "parquet")))
    for frame in (csv, parquet):
        assert set(frame["task_id"]) == expected and len(frame) == len(expected)
        assert frame["explanation"].notna().all()
        assert frame["explanation"].str.startswith(("Denied", "MISMATCH")).all()
    # exact wei survives the export as text
    assert parquet["amount_wei"].map(lambda w: str(int(w)) == w).all()


def test_hostile_query_params_are_ignored_not_executed(synth_db, env):
    env(synth_db)
    at = page("pages/decisions.py", sender="x' OR 1=1 --", sort="amount; DROP TABLE tasks", client="0x' OR '1'='1")
    assert metrics(at)["Matching decisions"] == f"{N_TASKS:,}"
    assert sql(synth_db, "SELECT count(*) FROM tasks")[0][0] == N_TASKS


# --- policies -----------------------------------------------------------------------------------------


def test_policies_page_params_history_and_rules(synth_db, env):
    env(synth_db)
    address = sql(synth_db, "SELECT policy_address FROM policies WHERE name = 'spending_limits'")[0][0]
    at = page("pages/policies.py", policy=address)
    frames = [d.value for d in at.dataframe]
    catalog = frames[0]
    assert set(catalog["name"]) == {"spending_limits", "counterparty_screening", "kyc_jurisdiction", "circuit_breaker"}
    rules = next(f for f in frames if "deny reason" in f.columns)
    assert "exceeds_per_tx_limit" in set(rules["deny reason"])
    params = next(f for f in frames if "param" in f.columns)
    doc = json.loads(synth_meta(synth_db)["deployment_json"])
    for client_name, c in doc["clients"].items():
        if c["policy"] != "spending_limits":
            continue
        latest = sql(
            synth_db,
            "SELECT params_json FROM policy_versions WHERE client = ? ORDER BY block_number DESC LIMIT 1",
            [c["address"]],
        )[0][0]
        want = json.loads(latest)["max_tx_wei"]
        assert params.set_index("param").loc["max_tx_wei", client_name] == want
    history = next(f for f in frames if "change" in f.columns)
    n_versions = sql(synth_db, "SELECT count(*) FROM policy_versions WHERE policy_address = ?", [address])[0][0]
    assert len(history) == n_versions
    assert history["change"].str.contains("→|initial params").all()
    assert any(c.language == "rego" for c in at.code)


def synth_meta(db: Path) -> dict:
    return dict(sql(db, "SELECT key, value FROM meta"))


def test_params_diff():
    assert params_diff(None, {"a": 1}) == "initial params: a = 1"
    assert params_diff({"a": 1, "b": "x"}, {"a": 2, "c": [1]}) == "a: 1 → 2; + c = [1]; − b"
    assert params_diff({"a": 1}, {"a": 1}).startswith("no change")


# --- the query string round trip ------------------------------------------------------------------------


_addr = hs.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_filters = hs.builds(
    decisions.DecisionFilter,
    client=hs.lists(_addr, max_size=3, unique=True).map(tuple),
    policy=hs.lists(_addr, max_size=2, unique=True).map(tuple),
    sender=hs.one_of(hs.just(""), _addr),
    verdict=hs.sets(hs.sampled_from(decisions.VERDICTS)).map(lambda s: tuple(v for v in decisions.VERDICTS if v in s)),
    status=hs.sets(hs.sampled_from(decisions.STATUSES)).map(lambda s: tuple(v for v in decisions.STATUSES if v in s)),
    replay=hs.sets(hs.sampled_from(decisions.REPLAY_RESULTS)).map(
        lambda s: tuple(v for v in decisions.REPLAY_RESULTS if v in s)
    ),
    time_from=hs.one_of(hs.just(""), hs.dates().map(lambda d: d.isoformat() if d.year >= 1000 else "")),
    time_to=hs.one_of(hs.just(""), hs.dates().map(lambda d: d.isoformat() if d.year >= 1000 else "")),
    block_from=hs.one_of(hs.none(), hs.integers(0, 2**62)),
    block_to=hs.one_of(hs.none(), hs.integers(0, 2**62)),
    amount_min=hs.one_of(hs.none(), hs.floats(0, 1e30, allow_nan=False)),
    amount_max=hs.one_of(hs.none(), hs.floats(0, 1e30, allow_nan=False)),
    sort=hs.sampled_from(list(decisions.SORTS)),
    desc=hs.booleans(),
)


@hsettings(max_examples=300, deadline=None)
@given(_filters)
def test_filter_survives_the_url(f):
    params = decisions.filter_to_params(f)
    assert all(isinstance(v, str) for v in params.values())
    assert decisions.filter_from_params(params) == f


@hsettings(max_examples=200, deadline=None)
@given(
    hs.dictionaries(
        hs.sampled_from(
            [
                "client",
                "policy",
                "sender",
                "verdict",
                "status",
                "replay",
                "from",
                "to",
                "block_from",
                "block_to",
                "amount_min",
                "amount_max",
                "sort",
                "dir",
            ]
        ),
        hs.text(max_size=40),
    )
)
def test_any_query_string_gives_a_safe_filter(raw):
    f = decisions.filter_from_params(raw)
    where, params = decisions.where_clause(f, has_replays=True)
    assert where.count("?") == len(params)
    for value in raw.values():  # nothing the URL says is spliced into the SQL text
        if any(c in value for c in "'\";()"):
            assert value not in where


# --- after `lens audit`: replay results filter the browser and feed the export -------------------------------


@pytest.fixture(scope="module")
def audited_db(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from app.cli.main import cli

    path = tmp_path_factory.mktemp("audited") / "lens.duckdb"
    synth.build(path, tasks=600, seed=23)
    result = CliRunner().invoke(cli, ["audit", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_replay_filter_and_audited_export(audited_db, env):
    from app.queries.decisions import export_decisions

    env(audited_db)
    counts = dict(sql(audited_db, "SELECT result, count(*) FROM replays GROUP BY 1"))
    at = page("pages/decisions.py", replay="match")
    assert metrics(at)["Matching decisions"] == f"{counts['match']:,}"
    at = page("pages/decisions.py", replay="mismatch,cannot_replay")
    assert metrics(at)["Matching decisions"] == f"{counts.get('mismatch', 0) + counts.get('cannot_replay', 0):,}"
    table = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    assert set(table["replay"]) <= {"mismatch", "cannot_replay"}
    frame = pd.read_csv(io.BytesIO(export_decisions({"replay": "mismatch"}, "csv")))
    expected = dict(sql(audited_db, "SELECT task_id, sentence FROM replays WHERE result = 'mismatch'"))
    assert dict(zip(frame["task_id"], frame["explanation"])) == expected


def test_verdict_splits_what_decided_from_checks_that_passed() -> None:
    """A denied decision's decisive table holds the entrypoint's failed condition; rules that did not fire go aside."""
    from app import engine
    from app.engine.fixtures import synthetic_tasks

    denied = [t for t in synthetic_tasks(60, seed=3) if t.attested_allow is False]
    assert denied
    exp = engine.explain(denied[0])
    decided = verdict.failing_conditions(exp, decisive=True)
    passed = verdict.failing_conditions(exp, decisive=False)
    assert "allow" in set(decided["rule"]) and "allow" not in set(passed["rule"])
    assert len(decided) + len(passed) == sum(1 for b in exp.bodies if b.succeeded is False and b.failed_at is not None)


def test_amount_of_an_unlimited_approval_reads_unlimited() -> None:
    """A max-uint approval in the amount column is labelled unlimited; a large real amount keeps its digits."""
    assert fmt_amount((2**256 - 1) / 1e18, None).startswith("unlimited")
    assert fmt_amount(4147.7755, None).startswith("4,147.78")
