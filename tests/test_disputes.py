"""Disputes, challenge candidates, trust badges and the Prometheus exporter on a real simulated devnet.

The oracles are the simulation's own record (injected faults, signers), the chain's logs (TaskResponded's
referenceBlock, TaskChallengedSuccessfully, OperatorSlashed) and views (operatorStakeAt), and counts done in SQL on
the raw tables — never the disputes queries themselves. The tests run in file order on one chain: the last ones
forge a wrong challenge and mine blocks past every window."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import eth_abi
import pytest
import requests
from click.testing import CliRunner
from support import page, simulated_devnet, sql

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("disputes")]

WINDOW = 200  # the challenge window the shared devnet helper deploys with
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "prometheus"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """anvil + devnet + 120 tasks with --fault-rate 0.05 --challenge-rate 0.5, indexed (no replays yet)."""
    from indexer.deployment import parse
    from indexer.run import IndexOptions, index

    with simulated_devnet(tasks=120, fault_rate=0.05, challenge_rate=0.5) as (node, w3, doc, result):
        tmp = tmp_path_factory.mktemp("disputes")
        raw = tmp / "raw.duckdb"
        options = IndexOptions(db=str(raw), metadata_timeout_s=2)
        index(parse(doc, "devnet"), options)
        dep = tmp / "deployment.json"
        dep.write_text(json.dumps(doc))
        audited = tmp / "audited.duckdb"
        shutil.copy(raw, audited)
        # replays stored, as `lens audit` does; a generous time limit so a loaded test machine cannot time one out
        code, _out, err = lens("audit", "--db", str(audited), "--json", "--eval-timeout-ms", "60000")
        assert code == 0, err
        yield {
            "node": node,
            "w3": w3,
            "doc": doc,
            "result": result,
            "raw": raw,
            "db": audited,
            "dep": dep,
            "reindex": lambda: index(parse(doc, "devnet"), IndexOptions(db=str(audited), metadata_timeout_s=2)),
        }


def lens(*args: str) -> tuple[int, str, str]:
    """Run the real `lens` CLI in-process → (exit code, stdout, stderr)."""
    from app.cli.main import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def disputes_json(db: Path, *extra: str) -> dict:
    code, out, err = lens("disputes", "--db", str(db), "--json", *extra)
    assert code == 0, err
    return json.loads(out)


# ---------------------------------------------------------------------------------------------------- chain oracles


def _logs(w3, address: str, topic0: str) -> list[dict]:
    return w3.eth.get_logs(
        {"fromBlock": 0, "toBlock": "latest", "address": w3.to_checksum_address(address), "topics": [topic0]}
    )


def topic(sig: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=sig).hex()


def chain_successes(ch: dict) -> dict[str, dict]:
    """TaskChallengedSuccessfully logs of the task manager: task id → {block, challenger, tx}."""
    out = {}
    for log in _logs(
        ch["w3"], ch["doc"]["contracts"]["taskManager"], topic("TaskChallengedSuccessfully(bytes32,address)")
    ):
        out["0x" + bytes(log["topics"][1]).hex()] = {
            "block": log["blockNumber"],
            "challenger": "0x" + bytes(log["topics"][2])[-20:].hex(),
            "tx": "0x" + bytes(log["transactionHash"]).hex().removeprefix("0x"),
        }
    return out


def reference_blocks(ch: dict) -> dict[str, int]:
    """task id → the referenceBlock of its TaskResponded certificate (the chain's own record of the response)."""
    from devnet.challenger import TASK_RESPONDED_TOPIC
    from devnet.protocol import RESPONSE_CERTIFICATE, TASK_RESPONSE

    out = {}
    for log in _logs(ch["w3"], ch["doc"]["contracts"]["taskManager"], TASK_RESPONDED_TOPIC):
        response, cert = eth_abi.decode([TASK_RESPONSE, RESPONSE_CERTIFICATE], bytes(log["data"]))
        out["0x" + bytes(response[0]).hex()] = int(cert[0])
    return out


def expected_candidates(ch: dict) -> set[str]:
    """The wrong responses (the simulation's injected faults) that no successful challenge answered on chain."""
    return set(ch["result"].faults) - set(chain_successes(ch))


# ---------------------------------------------------------------------------------------------------- tests


def test_simulate_rejects_a_challenge_rate_outside_0_1():
    from devnet.simulate import SimConfig, Simulation
    from indexer.errors import LensError

    with pytest.raises(LensError, match="challenge-rate"):
        Simulation("http://127.0.0.1:9", {}, SimConfig(tasks=1, challenge_rate=1.5))


def test_challenge_rate_leaves_some_faults_unchallenged(chain):
    r = chain["result"]
    successes = chain_successes(chain)
    assert set(successes) == set(r.challenged_ok)  # the challenger's record and the chain agree
    assert set(r.unchallenged) == set(r.faults) - set(r.challenged_ok)
    assert successes and r.unchallenged, "the fixture must hold both challenged and unchallenged faults"


def test_disputes_replays_what_the_db_lacks(chain):
    """A DB without replays: the command replays them (never an empty list as if all were well), or says why not."""
    responded = sql(chain["raw"], "SELECT count(*) FROM tasks WHERE responded_block IS NOT NULL")[0][0]
    out = disputes_json(chain["raw"])
    assert out["replayed_now"] == responded and out["missing_replays"] == 0 and out["candidates_complete"]
    assert {c["task_id"] for c in out["candidates"]} == expected_candidates(chain)

    unreplayed = disputes_json(chain["raw"], "--no-replay")
    assert unreplayed["candidates"] == [] and not unreplayed["candidates_complete"]
    assert unreplayed["missing_replays"] == responded
    assert any("lens audit" in n for n in unreplayed["notes"])

    code, _out, err = lens("disputes", "--db", str(chain["raw"]), "--replay-max", "1")
    assert code == 1 and "lens audit" in err and "no replay" in err


def test_candidates_are_the_unchallenged_wrong_responses(chain):
    out = disputes_json(chain["db"])
    assert out["replayed_now"] == 0 and out["missing_replays"] == 0
    r, w3 = chain["result"], chain["w3"]
    head = w3.eth.block_number
    refs = reference_blocks(chain)
    cands = {c["task_id"]: c for c in out["candidates"]}
    assert set(cands) == expected_candidates(chain) and cands
    for tid, c in cands.items():
        assert set(c) >= {"task_id", "attested_allow", "replayed_allow", "window_end_block", "blocks_left", "state"}
        assert c["attested_allow"] == r.verdicts[tid]
        assert c["replayed_allow"] == (not r.verdicts[tid])  # an injected fault flips the verdict
        # the contract accepts a challenge mined before referenceBlock + window
        assert c["window_end_block"] == refs[tid] + WINDOW - 1
        assert c["blocks_left"] == refs[tid] + WINDOW - 1 - head > 0
        assert c["state"] == "open"
        assert c["verdict_page"] == f"/verdict?task={tid}"
    blocks = [c["responded_block"] for c in out["candidates"]]
    assert blocks == sorted(blocks, reverse=True)  # newest first
    assert out["head"] == head and out["window_blocks"] == WINDOW and out["conflicts"] == []


def test_challenges_match_the_chain_and_slashes_match_stakes(chain):
    from devnet.contracts import load_artifact

    out = disputes_json(chain["db"])
    w3, doc = chain["w3"], chain["doc"]
    successes = chain_successes(chain)
    ok = {c["task_id"]: c for c in out["challenges"] if c["success"]}
    assert set(ok) == set(successes)
    assert len(out["challenges"]) == len(ok) + len(chain["result"].challenged_frivolous)
    registry = w3.eth.contract(
        address=w3.to_checksum_address(doc["contracts"]["operatorRegistry"]),
        abi=load_artifact("OperatorRegistry")["abi"],
    )
    slashed_logs = _logs(
        w3, doc["contracts"]["slasher"], topic("OperatorSlashed(uint256,address,uint32,uint256[],string)")
    )
    per_block: dict[tuple[str, int], int] = {}
    for tid, c in ok.items():
        s = successes[tid]
        assert c["block_number"] == s["block"] and c["challenger"] == s["challenger"] and c["tx_hash"] == s["tx"]
        assert c["blocks_after_response"] == s["block"] - reference_blocks(chain)[tid]
        in_tx = {
            "0x" + bytes(x["topics"][2])[-20:].hex()
            for x in slashed_logs
            if x["transactionHash"].hex().removeprefix("0x") == s["tx"][2:]
        }
        assert {x["operator"] for x in c["slashed"]} == in_tx and in_tx
        assert int(c["slashed_wei"]) == sum(int(x["amount_wei"]) for x in c["slashed"]) > 0
        for x in c["slashed"]:
            per_block[(x["operator"], c["block_number"])] = per_block.get((x["operator"], c["block_number"]), 0) + int(
                x["amount_wei"]
            )
    for (op, block), amount in per_block.items():
        before = registry.functions.operatorStakeAt(w3.to_checksum_address(op), block - 1).call()[0]
        after = registry.functions.operatorStakeAt(w3.to_checksum_address(op), block).call()[0]
        assert amount == before - after, op
    challenger = {c["challenger"]: c for c in out["challengers"]}
    for addr, c in challenger.items():
        mine = [x for x in out["challenges"] if x["challenger"] == addr]
        assert c["challenges"] == len(mine) and c["successful"] == sum(x["success"] for x in mine)


def test_trust_badge_of_an_open_mismatch(chain):
    tid = sorted(expected_candidates(chain))[0]
    code, out, err = lens("explain", tid, "--db", str(chain["db"]), "--json", "--no-counterfactuals")
    assert code == 0, err
    t = json.loads(out)["trust"]
    left = reference_blocks(chain)[tid] + WINDOW - 1 - chain["w3"].eth.block_number
    assert t["replay"] == "mismatch" and t["challenge_state"] == "open" and not t["settled"]
    assert t["line"].endswith(f"replay disagrees · {left} blocks left to challenge")
    assert t["line"].startswith(f"signed by {_signed_pct(chain, tid)}% of stake (threshold 67%)")


def _signed_pct(chain: dict, tid: str) -> int:
    """Oracle: the simulation's signers of the task, weighed by their stake at the task's reference block on chain."""
    from devnet.contracts import load_artifact

    w3, doc, r = chain["w3"], chain["doc"], chain["result"]
    registry = w3.eth.contract(
        address=w3.to_checksum_address(doc["contracts"]["operatorRegistry"]),
        abi=load_artifact("OperatorRegistry")["abi"],
    )
    created = sql(chain["db"], "SELECT task_created_block FROM tasks WHERE task_id = ?", [tid])[0][0]
    names = {name: o["address"] for name, o in doc["operators"].items()}
    signed = total = 0
    for name, addr in names.items():
        stake, registered = registry.functions.operatorStakeAt(w3.to_checksum_address(addr), created).call()
        if registered:
            total += stake
            signed += stake if name in r.signers[tid] else 0
    return math.floor(100 * signed / total)


def _scrape(url: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 60
    while True:
        try:
            text = requests.get(url, timeout=10).text
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_exporter_metrics_equal_the_cli(chain):
    from devnet.anvil import free_port

    port = free_port()
    env_db = str(chain["db"])
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "lens"),
            "exporter",
            "--db",
            env_db,
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        m = _scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    out = disputes_json(chain["db"])
    s = out["summary"]
    # every metric the shipped alert rules and Grafana dashboard query is one the exporter serves
    exprs = re.findall(r"^\s*expr:\s*(.+)$", (DOCS / "lens-rules.yml").read_text(), re.M)
    exprs += [
        t["expr"] for p in json.loads((DOCS / "grafana-dashboard.json").read_text())["panels"] for t in p["targets"]
    ]
    used = {name for e in exprs for name in re.findall(r"\blens_[a-z_]+", e)}
    served = {name for name, _labels in m}
    assert used and used <= served, used - served

    def g(metric: str, **labels: str) -> float | None:
        return m.get((metric, tuple(sorted(labels.items()))))

    assert g("lens_up") == 1
    assert g("lens_challenge_candidates", state="open") == s["open_candidates"] == len(expected_candidates(chain))
    assert g("lens_challenge_candidates", state="missed") == s["missed_candidates"] == 0
    assert g("lens_challenge_candidate_blocks_left_min") == min(c["blocks_left"] for c in out["candidates"])
    assert g("lens_challenges", outcome="successful") == len(chain_successes(chain))
    assert g("lens_challenges", outcome="unsuccessful") == s["unsuccessful"]
    assert (
        g("lens_replay_mismatches") == sql(chain["db"], "SELECT count(*) FROM replays WHERE result = 'mismatch'")[0][0]
    )
    assert g("lens_replays_missing") == 0
    head = chain["w3"].eth.block_number
    assert g("lens_chain_head_block") == head
    assert g("lens_indexer_lag_blocks") == head - g("lens_indexed_block") >= 0
    assert g("lens_checkpoint_age_seconds") >= 0
    for verdict, status, n in sql(
        chain["db"],
        "SELECT CASE WHEN allow THEN 'allowed' WHEN NOT allow THEN 'denied' ELSE 'awaiting' END, status, count(*) "
        "FROM tasks GROUP BY ALL",
    ):
        assert g("lens_tasks", verdict=verdict, status=status) == n
    # per operator: the SQL oracle on task_signers, and `lens operators --json` where it exists
    names = dict(sql(chain["db"], "SELECT operator, coalesce(name, '') FROM operators"))
    for op, eligible, signed in sql(
        chain["db"],
        "SELECT operator, count(DISTINCT task_id), count(DISTINCT task_id) FILTER (WHERE signed) FROM task_signers GROUP BY operator",
    ):
        key = dict(operator=op, name=names[op], window="all")
        assert g("lens_operator_eligible_tasks", **key) == eligible
        assert g("lens_operator_signed_tasks", **key) == signed
        assert g("lens_operator_participation_ratio", **key) == pytest.approx(signed / eligible)
    code, ops_out, err = lens("operators", "--db", str(chain["db"]), "--json")
    assert code == 0, err
    ops = json.loads(ops_out)["operators"]
    assert ops
    for o in ops:
        key = dict(operator=o["operator"], name=o["name"])
        assert g("lens_operator_stake", **key) == pytest.approx(o["stake"])
        assert g("lens_operator_streak", **key) == o["streak"]
        for window, value in (("all", o["participation"]), ("recent", o["recent_participation"])):
            shown = g("lens_operator_participation_ratio", **key, window=window)
            assert shown is None if value is None else shown == pytest.approx(value)  # absent when never eligible


def test_a_successful_challenge_of_a_matching_response_is_loud(chain):
    """The resolver is wrong on purpose: its key vouches the opposite of a correct response; Lens must flag it."""
    from devnet.challenger import Challenger
    from devnet.simulate import ANVIL_KEYS, Rpc

    w3, doc, r = chain["w3"], chain["doc"], chain["result"]
    correct = sorted(t for t in r.verdicts if t not in r.faults)[0]
    rpc = Rpc(chain["node"].url)
    wrong = Challenger(
        rpc, doc["contracts"]["taskManager"].lower(), bytes.fromhex(ANVIL_KEYS[2]), 7, frivolous_rate=0.0
    )
    # a resolver that "proves" the opposite of the attested verdict for this one task
    wrong.replay = lambda response: (
        (not r.verdicts[correct])
        if "0x" + bytes(response[0]).hex() == correct
        else r.verdicts.get("0x" + bytes(response[0]).hex())
    )  # type: ignore[method-assign]
    found = [c for c in wrong.poll(w3.eth.block_number) if "0x" + c.task_id.hex() == correct]
    assert len(found) == 1
    tx = w3.eth.send_transaction(
        {
            "from": w3.eth.accounts[3],
            "to": w3.to_checksum_address(doc["contracts"]["taskManager"]),
            "data": found[0].calldata,
            "gas": 3_000_000,
        }
    )
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert correct in chain_successes(chain)
    chain["reindex"]()
    out = disputes_json(chain["db"])
    assert [c["task_id"] for c in out["conflicts"]] == [correct]
    code, text, _ = lens("disputes", "--db", str(chain["db"]))
    assert code == 0 and "CONFLICTS: 1" in text and correct in text
    chain["conflict"] = correct


def test_disputes_page(chain, monkeypatch):
    monkeypatch.setenv("LENS_DB", str(chain["db"]))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(chain["dep"]))
    at = page("pages/disputes.py")
    m = {x.label: x.value for x in at.metric}
    assert m["Open candidates"] == str(len(expected_candidates(chain)))
    assert m["Challenges"] == str(len(chain_successes(chain)) + len(chain["result"].challenged_frivolous))
    assert m["Conflicts"] == "1"
    assert any("Lens or the challenge resolver is wrong" in e.value for e in at.error)
    tables = [t.value for t in at.dataframe]
    cand = next(t for t in tables if "window_end_block" in t.columns)
    assert {u.split("=")[1] for u in cand["verdict_page"]} == expected_candidates(chain)
    assert not at.warning  # every response has a replay


def test_open_candidates_turn_missed_as_the_chain_advances(chain, monkeypatch):
    w3 = chain["w3"]
    refs = reference_blocks(chain)
    cands = sorted(expected_candidates(chain), key=lambda t: (refs[t], t))
    first_end = refs[cands[0]] + WINDOW - 1
    w3.provider.make_request("anvil_mine", [hex(first_end - w3.eth.block_number)])
    head = w3.eth.block_number
    assert head == first_end
    out = {c["task_id"]: c for c in disputes_json(chain["db"])["candidates"]}
    for tid in cands:
        end = refs[tid] + WINDOW - 1
        assert out[tid]["state"] == ("missed" if end <= head else "open")
        assert out[tid]["blocks_left"] == max(end - head, 0)
    assert out[cands[0]]["state"] == "missed"

    code, text, _ = lens("explain", cands[0], "--db", str(chain["db"]), "--json", "--no-counterfactuals")
    t = json.loads(text)["trust"]
    assert t["line"].endswith("replay disagrees · challenge window closed") and t["settled"]

    last_end = max(refs[t] + WINDOW - 1 for t in refs)
    w3.provider.make_request("anvil_mine", [hex(last_end - w3.eth.block_number + 1)])
    out = disputes_json(chain["db"])
    assert {c["state"] for c in out["candidates"]} == {"missed"} and all(
        c["blocks_left"] == 0 for c in out["candidates"]
    )
    assert out["summary"]["fewest_blocks_left"] is None

    # a signed, matching, unchallenged decision once its window closed
    ok = sorted(t for t in chain["result"].verdicts if t not in chain["result"].faults and t != chain.get("conflict"))[
        0
    ]
    code, text, _ = lens("explain", ok, "--db", str(chain["db"]), "--json", "--no-counterfactuals")
    t = json.loads(text)["trust"]
    assert (
        t["line"]
        == f"signed by {_signed_pct(chain, ok)}% of stake (threshold 67%) · replay matches · challenge window closed"
    )
    assert t["challenge_state"] == "closed" and t["settled"] and t["blocks_left"] == 0

    monkeypatch.setenv("LENS_DB", str(chain["db"]))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(chain["dep"]))
    monkeypatch.setenv("LENS_EVAL_TIMEOUT_MS", "60000")  # the page replays too: a loaded machine must not time it out
    import streamlit as st

    st.cache_data.clear()  # the dashboard keeps the chain head for 5 s: the blocks just mined must count now
    at = page("pages/verdict.py", task=ok)
    shown = [x.value.replace("\\", "") for x in at.markdown]
    assert any(t["line"] in x for x in shown), [x for x in shown if "Trust" in x]
    # the Disputes page's window filter, from its URL: every candidate is missed now, none open
    missed = page("pages/disputes.py", candidates="missed")
    table = next(x.value for x in missed.dataframe if "window_end_block" in x.value.columns)
    assert {u.split("=")[1] for u in table["verdict_page"]} == expected_candidates(chain)
    assert set(table["left"]) == {"window missed"}
    still_open = page("pages/disputes.py", candidates="open")
    assert not any("window_end_block" in x.value.columns for x in still_open.dataframe)
    assert any("No candidates in this view" in x.value for x in still_open.info)


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus package (tests/system_deps.sh)"
    rules = ROOT / "docs" / "prometheus" / "lens-rules.yml"
    res = subprocess.run(
        [promtool, "check", "rules", str(rules)], check=False, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr
    tests = ROOT / "docs" / "prometheus" / "lens-rules.test.yml"
    res = subprocess.run(
        [promtool, "test", "rules", str(tests)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tests.parent,
    )
    assert res.returncode == 0, res.stdout + res.stderr
