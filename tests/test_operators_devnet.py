"""Operators and Diversity on a real simulated devnet: participation against the liveness profiles and the simulation's
own record, slashings against the chain's own logs, the failure what-if against SQL on task_signers, the operator
whose IP contradicts its metadata, and both pages."""

from __future__ import annotations

import json

import duckdb
import pytest
from eth_utils import keccak
from support import page, simulated_devnet, sql

from app import geo
from app.queries import diversity as dq
from app.queries import operators as oq

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("operators_devnet")]

TASKS = 160
OPERATORS = 10
# between the healthy operators (availability ≥ 99.3 %) and the flaky (85 %) and offline-for-12 % ones
THRESHOLDS = oq.AlertThresholds(participation_below=0.93, missed_streak=5)
TOLERANCE = 0.08  # ~3 standard deviations of a participation share over ~150 tasks


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    """anvil + devnet contracts + 160 simulated tasks (a few faulty, so some slashing) + `lens index`."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    with simulated_devnet(tasks=TASKS, operators=OPERATORS, fault_rate=0.02) as (_node, w3, doc, result):
        tmp = tmp_path_factory.mktemp("opsdevnet")
        db = tmp / "lens.duckdb"
        index(parse(doc, "devnet"), IndexOptions(db=str(db), metadata_timeout_s=2))
        dep = tmp / "deployment.json"
        dep.write_text(json.dumps(doc))
        yield db, dep, w3, result


@pytest.fixture()
def con(devnet):
    c = duckdb.connect(str(devnet[0]), read_only=True)
    yield c
    c.close()


def _expected_participation(profile) -> float:
    """What a liveness profile predicts: available while online; offline stretches are lost."""
    offline = sum(b - a for a, b in profile.offline)
    return profile.availability * (1.0 - offline)


def test_participation_matches_profiles_and_the_simulation(con, devnet):
    from devnet import scenario

    _db, _dep, _w3, result = devnet
    figures = oq.operator_figures(con, 500).set_index("name")
    profiles = {p.name: p for p in scenario.liveness_profiles(OPERATORS)}
    assert set(figures.index) == set(profiles)
    for name, p in profiles.items():
        row = figures.loc[name]
        # the simulation's own tally of who was in the quorum and who signed, task by task
        if result.unresponded == 0:
            assert [int(row["signed"]), int(row["eligible"])] == result.participation[name], name
        assert row["participation"] == pytest.approx(_expected_participation(p), abs=TOLERANCE), name
    flaky = scenario.liveness_profiles(OPERATORS)[scenario.FLAKY].name
    offline = scenario.liveness_profiles(OPERATORS)[scenario.OFFLINE].name
    alerted = {}
    for a in oq.alerts(figures.reset_index(), THRESHOLDS):
        alerted.setdefault(a.name, set()).add(a.kind)
    assert "low_participation" in alerted.get(flaky, set())
    assert "outage" in alerted.get(offline, set())  # 12 % of the run in a row
    assert set(alerted) == {flaky, offline}, alerted  # the healthy ones raise nothing
    # the leaver is no longer registered; the joiner was eligible only after it joined
    leaver = scenario.liveness_profiles(OPERATORS)[scenario.LEAVER].name
    assert not figures.loc[leaver, "active"]
    assert figures.loc[scenario.JOINER_SITE.name, "eligible"] < figures.loc[flaky, "eligible"]


def test_slashings_match_the_chains_own_logs(con, devnet):
    _db, _dep, w3, _result = devnet
    topic = "0x" + keccak(text="OperatorSlashed(uint256,address,uint32,uint256[],string)").hex()
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "topics": [topic]})
    per_operator: dict[str, int] = {}
    for log in logs:
        who = "0x" + bytes(log["topics"][2])[-20:].hex()
        per_operator[who] = per_operator.get(who, 0) + 1
    assert logs, "the faulty responses were challenged and slashed"
    figures = oq.operator_figures(con, 500)
    got = {r["operator"]: int(r["slashed"]) for r in figures.to_dict("records") if r["slashed"]}
    assert got == per_operator
    assert (figures.loc[figures["slashed"] > 0, "stake_slashed"] > 0).all()


def test_failing_the_biggest_provider(con, devnet):
    db = devnet[0]
    report = dq.diversity_report(con, geo.ResolveOptions(mode="off"))
    provider = report.dimensions["provider"].entities.iloc[0]["name"]
    assert provider == "AWS"
    failed = dq.what_if(con, report.operators, (("provider", provider),), report.quorum_threshold_pct)
    share = float(report.dimensions["provider"].entities.iloc[0]["stake_share"])
    assert failed.quorum_holds == ((1 - share) * 100 >= report.quorum_threshold_pct)
    assert not failed.quorum_holds  # AWS holds more than a third of the stake
    # the oracle: per task, the signers' stake without the failed operators against the task's own threshold
    addrs = [str(a).lower() for a in report.operators.loc[report.operators["provider"] == provider, "operator"]]
    marks = ", ".join("?" for _ in addrs)
    tasks, would_fail = sql(
        db,
        f"""SELECT count(*), count(*) FILTER (WHERE kept * 100 < total * q) FROM (
              SELECT ts.task_id, sum(ts.stake_num) AS total, any_value(t.quorum_threshold_pct) AS q,
                     coalesce(sum(ts.stake_num) FILTER (WHERE ts.signed AND lower(ts.operator) NOT IN ({marks})), 0) AS kept
              FROM task_signers ts JOIN tasks t USING (chain_id, task_id) GROUP BY ts.task_id)""",
        addrs,
    )[0]
    assert (failed.past_tasks, failed.past_would_fail) == (tasks, would_fail)
    assert tasks == sql(db, "SELECT count(DISTINCT task_id) FROM task_signers")[0][0]
    small = dq.what_if(con, report.operators, (("provider", "GCP"),), report.quorum_threshold_pct)
    assert small.quorum_holds


def test_the_contradicting_operator_is_flagged(con):
    from devnet import scenario

    ops = dq.diversity_report(con, geo.ResolveOptions(mode="off")).operators.set_index("name")
    assert (ops["observed_state"] == "located").all()  # every devnet socket is an IP literal
    flagged = set(ops.index[ops["disagreement"] != ""])
    assert flagged == set(scenario.MISPLACED)
    name = next(iter(scenario.MISPLACED))
    assert ops.loc[name, "observed_country"] == "US" and ops.loc[name, "declared_country"] == "DE"
    # observed and declared agree everywhere else, so the observed country is the declared one
    others = ops.drop(index=list(flagged))
    assert (others["observed_country"] == others["declared_country"]).all()
    assert (others["observed_provider"] == others["declared_provider"]).all()


@pytest.fixture()
def app_env(devnet, monkeypatch):
    db, dep, _w3, _result = devnet
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    monkeypatch.setenv("LENS_ALERT_PARTICIPATION_BELOW", str(THRESHOLDS.participation_below))
    return devnet


def test_pages_on_the_devnet(app_env):
    from devnet import scenario

    at = page("pages/operators.py")
    warnings = " ".join(w.value for w in at.warning)
    flaky = scenario.liveness_profiles(OPERATORS)[scenario.FLAKY].name
    offline = scenario.liveness_profiles(OPERATORS)[scenario.OFFLINE].name
    assert flaky in warnings and offline in warnings
    assert {x.label: x.value for x in at.metric}["Registered operators"] == str(OPERATORS)  # leaver out, joiner in
    db = app_env[0]
    misplaced = sql(db, "SELECT operator FROM operators WHERE name = ?", [next(iter(scenario.MISPLACED))])[0][0]
    detail = page("pages/operators.py", operator=misplaced)
    assert any("declares Frankfurt am Main, DE" in w.value.replace("\\", "") for w in detail.warning)
    div = page("pages/diversity.py")
    name = next(iter(scenario.MISPLACED))
    assert any(name in w.value.replace("\\", "") for w in div.warning)
    assert {x.label: x.value for x in div.metric}["Quorum threshold"] == f"{scenario.QUORUM_THRESHOLD_PCT}%"
