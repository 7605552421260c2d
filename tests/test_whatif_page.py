"""The What-if page (AppTest) on a synthetic DB: the schema form rejects what the schema rejects, builds the same
scenario as the CLI (same flips), keeps it in the URL, and a verdict page links to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import page, sql

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("whatif_page")]

LENS = str(Path(sys.executable).parent / "lens")


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory):
    from app import synth

    db = tmp_path_factory.mktemp("whatif_page") / "lens.duckdb"
    synth.build(db, tasks=3000, seed=3)
    return db


@pytest.fixture()
def env(synth_db, monkeypatch, tmp_path):
    monkeypatch.setenv("LENS_DB", str(synth_db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    return synth_db


def _spending(db) -> tuple[str, str, int]:
    """(policy address, its busiest client, the client's largest allowed amount) from SQL."""
    policy, client = sql(
        db,
        "SELECT policy_address, policy_client FROM tasks WHERE entrypoint = 'spending_limits.allow' "
        "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1",
    )[0]
    return policy, client


def _key(policy: str, client: str, param: str) -> str:
    return f"wi_p_{policy}_{client}_{param}"


def _submit(at):
    next(b for b in at.button if b.label == "Run what-if").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_form_rejects_values_the_schema_rejects(env):
    policy, client = _spending(env)
    at = page("pages/whatif.py", policy=policy, client=client)
    assert not at.error
    at.text_input(key=_key(policy, client, "max_tx_wei")).set_value("twelve ETH")
    _submit(at)
    assert any("max_tx_wei" in e.value for e in at.error), [e.value for e in at.error]
    assert not any(m.label == "Decisions re-run" for m in at.metric)
    at.text_input(key=_key(policy, client, "max_tx_wei")).set_value("1.5 wei")
    _submit(at)
    assert any("whole number of wei" in e.value for e in at.error)

    # a number below the schema's minimum (counterparty_screening.max_risk_score: 0..100)
    cp = sql(env, "SELECT policy_address FROM tasks WHERE entrypoint = 'counterparty_screening.allow' LIMIT 1")[0][0]
    at = page("pages/whatif.py", policy=cp)
    at.text_input(key=_key(cp, "", "max_risk_score")).set_value("250")
    _submit(at)
    assert any("max_risk_score" in e.value and "100" in e.value for e in at.error), [e.value for e in at.error]


def test_the_form_builds_the_same_scenario_as_the_cli(env):
    policy, client = _spending(env)
    at = page("pages/whatif.py", policy=policy, client=client)
    box = at.text_input(key=_key(policy, client, "max_tx_wei"))
    assert box.value.isdigit()  # starts at the params in force, exact wei
    box.set_value("400 ETH")
    _submit(at)
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    # the URL now holds the scenario
    assert at.query_params["policy"] == [policy] or at.query_params["policy"] == policy
    assert str(at.query_params["p.max_tx_wei"]).strip("[]'") == str(400 * 10**18)

    cli = subprocess.run(
        [LENS, "whatif", "--db", str(env), "--policy", policy, "--client", client, "--set", "max_tx_wei=400 ETH"]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(cli.stdout)
    assert out["flipped_to_deny"] > 0
    assert metrics["Allowed → denied"] == f"{out['flipped_to_deny']:,}"
    assert metrics["Denied → allowed"] == f"{out['flipped_to_allow']:,}"
    assert metrics["Decisions re-run"] == f"{out['decisions']:,}"
    table = next(d.value for d in at.dataframe if "verdict_page" in d.value.columns)
    assert set(table["task_id"]) == {f["task_id"] for f in out["flips"][:500]} or len(out["flips"]) > 500
    # oracle, from SQL: this client's decisions above 400 ETH that an honest quorum allows — the attested verdict,
    # inverted for the synthetic faults (every one of them is challenged successfully)
    above = {
        t
        for (t,) in sql(
            env,
            "SELECT task_id FROM tasks WHERE policy_client = ? AND allow IS NOT NULL "
            "AND allow <> coalesce(challenge_success, false) "
            "AND CAST(amount_wei AS HUGEINT) > CAST(? AS HUGEINT)",
            [client, str(400 * 10**18)],
        )
    }
    assert {f["task_id"] for f in out["flips"]} == above

    # opening the shared URL runs the same scenario
    shared = page(
        "pages/whatif.py", **{"policy": policy, "client": client, "p.max_tx_wei": str(400 * 10**18), "run": "1"}
    )
    assert {m.label: m.value for m in shared.metric}["Allowed → denied"] == f"{out['flipped_to_deny']:,}"


def test_the_verdict_page_links_to_a_what_if_with_its_counterfactual(env):
    task_id = sql(
        env,
        "SELECT task_id FROM tasks WHERE allow = false AND entrypoint = 'spending_limits.allow' "
        "AND NOT coalesce(challenge_success, false) ORDER BY created_block LIMIT 1",
    )[0][0]
    at = page("pages/verdict.py", task=task_id)
    links = [m.value for m in at.markdown if "/whatif?" in m.value]
    assert links, "no what-if link on the verdict page"
    url = links[0].split("](", 1)[1].split(")", 1)[0]
    from urllib.parse import parse_qs, urlparse

    q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    policy, client = sql(env, "SELECT policy_address, policy_client FROM tasks WHERE task_id = ?", [task_id])[0]
    assert q["policy"] == policy and q["client"] == client
    assert any(k.startswith("p.") for k in q), q
    wi = page("pages/whatif.py", **q)
    param = next(k for k in q if k.startswith("p."))[2:]
    shown = wi.text_input(key=_key(policy, client, param)) if param.endswith("_wei") else None
    if shown is not None:
        assert shown.value == q[f"p.{param}"]


def test_a_source_that_does_not_parse_is_shown_at_its_line(env):
    policy, client = _spending(env)
    at = page("pages/whatif.py", policy=policy)
    at.radio(key="wi_mode").set_value("Rego source")
    at.run()
    box = at.text_area(key=f"wi_src_{policy}")
    lines = box.value.splitlines()
    assert lines and lines[0].startswith("#") or "package" in box.value  # starts at the recorded source
    lines[9] = "broken := := 1"
    box.set_value("\n".join(lines))
    _submit(at)
    assert any("line 10" in e.value for e in at.error), [e.value for e in at.error]
    assert any(">>   10 | broken := := 1" in c.value for c in at.code)
    assert not any(m.label == "Decisions re-run" for m in at.metric)
