"""Every dashboard page on a DB the real indexer wrote from the real devnet contracts driven by the simulation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from support import page, simulated_devnet, sql

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("app_devnet")]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """anvil + devnet contracts + 60 simulated tasks (some faulty) + `lens index` → (db, deployment file, doc)."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    with simulated_devnet(tasks=60, fault_rate=0.1) as (_node, w3, doc, _result):
        tmp = tmp_path_factory.mktemp("appdevnet")
        db = tmp / "lens.duckdb"
        index(parse(doc, "devnet"), IndexOptions(db=str(db), metadata_timeout_s=2))
        dep = tmp / "deployment.json"
        dep.write_text(json.dumps(doc))
        yield db, dep, doc, w3


@pytest.fixture()
def env(indexed, monkeypatch):
    db, dep, doc, w3 = indexed
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    return indexed


def test_overview_on_indexed_devnet(env):
    db, dep, doc, w3 = env
    at = page("pages/overview.py")
    m = {x.label: x.value for x in at.metric}
    assert m["Tasks"] == f"{sql(db, 'SELECT count(*) FROM tasks')[0][0]:,}"
    assert m["Chain id"] == str(doc["chain_id"])
    assert int(m["Head block"].replace(",", "")) <= w3.eth.block_number
    assert not at.error


def test_verdict_of_each_kind_of_indexed_task(env):
    db, *_ = env
    for task_id, allow, challenged in sql(
        db,
        "SELECT task_id, allow, challenge_success FROM tasks WHERE allow IS NOT NULL "
        "ORDER BY allow, challenge_success NULLS FIRST LIMIT 6",
    ):
        at = page("pages/verdict.py", task=task_id)
        m = {x.label: x.value for x in at.metric}
        assert m["Attested verdict"] == ("allowed" if allow else "denied")
        assert m["Independent replay"] == ("MISMATCH" if challenged else "match"), task_id
        shown = " ".join(t.value for t in at.text)
        assert ("Denied" in shown) or ("Allowed" in shown) or ("MISMATCH" in shown)


def test_decisions_and_export_on_indexed_devnet(env):
    from app.queries.decisions import export_decisions

    db, *_ = env
    denied = {r[0] for r in sql(db, "SELECT task_id FROM tasks WHERE allow = false")}
    at = page("pages/decisions.py", verdict="denied")
    assert {x.label: x.value for x in at.metric}["Matching decisions"] == f"{len(denied):,}"
    frame = pd.read_csv(io.BytesIO(export_decisions({"verdict": "denied"}, "csv")))
    assert set(frame["task_id"]) == denied
    assert frame["explanation"].notna().all()


def test_policies_on_indexed_devnet(env):
    db, *_ = env
    at = page("pages/policies.py")
    catalog = at.dataframe[0].value
    assert (
        len(catalog)
        == sql(
            db,
            "SELECT count(DISTINCT policy_address) FROM (SELECT policy_address FROM policies "
            "UNION SELECT policy_address FROM tasks)",
        )[0][0]
    )
    assert not at.warning or all("source" not in w.value for w in at.warning)
    history = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert len(history) >= 1


def test_dashboard_reads_while_the_indexer_follows(indexed, tmp_path, monkeypatch):
    """`lens index --follow` writes the file while AppTest renders: pages keep rendering, new decisions appear."""
    import subprocess
    import sys
    import threading
    import time

    from devnet.simulate import SimConfig, simulate

    _, dep, doc, w3 = indexed
    db = tmp_path / "follow.duckdb"
    lens = str(Path(sys.executable).parent / "lens")
    follower = subprocess.Popen(
        [lens, "index", "--follow", "--deployment", str(dep), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    try:
        deadline = time.monotonic() + 120
        before = None
        while before is None:
            at = page("pages/overview.py")
            m = {x.label: x.value for x in at.metric}
            if "Tasks" in m:
                before = int(m["Tasks"].replace(",", ""))
            assert follower.poll() is None, follower.stderr.read()
            assert time.monotonic() < deadline, "the follower never indexed the existing tasks"
            time.sleep(0.5)
        more = threading.Thread(target=simulate, args=(doc["rpc_url"], doc, SimConfig(tasks=15, seed=99, operators=5)))
        more.start()
        seen = before
        states = set()
        while (more.is_alive() or seen <= before) and time.monotonic() < deadline:
            for path in ("pages/overview.py", "pages/decisions.py"):
                at = page(path)  # asserts no exception
                assert not at.error, [e.value for e in at.error]
                states |= {"locked" for w in at.warning if "being written" in w.value}
                m = {x.label: x.value for x in at.metric}
                if "Tasks" in m:
                    seen = int(m["Tasks"].replace(",", ""))
        more.join()
        assert seen > before, "new decisions never showed up while following"
    finally:
        follower.terminate()
        follower.wait(timeout=30)


def test_overview_describes_the_db_without_the_deployment_file(env, monkeypatch, tmp_path):
    """The indexer records the deployment in the DB: with the file gone, the overview still lists every contract."""
    db, dep, doc, w3 = env
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "gone.json"))
    at = page("pages/overview.py")
    shown = " ".join(d.value.astype(str).to_csv() for d in at.dataframe)
    for role in ("taskManager", "operatorRegistry", "challengeVerifier"):
        assert doc["contracts"][role] in shown, role
    assert {x.label: x.value for x in at.metric}["Chain id"] == str(doc["chain_id"])
