"""The devnet simulation: the static world, the data providers, agents' intents, and full runs on a real anvil."""

from __future__ import annotations

import base64
import functools
import json
from collections import Counter
from pathlib import Path

import eth_abi
import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from web3 import Web3

from app.engine import compiled, intent_input, is_canonical_allow, wasm_from_policy_data
from devnet import agents, providers, rawtx, scenario
from devnet.challenger import TASK_RESPONDED_TOPIC
from devnet.operators import intent_from_tuple
from devnet.protocol import RESPONSE_CERTIFICATE as CERT_T
from devnet.protocol import TASK_RESPONSE as TASK_RESPONSE_T

START = 1_780_000_000  # a fixed simulated start time for the pure tests
TOKEN = "0x" + "ab" * 20
CHALLENGED_OK = "0x" + Web3.keccak(text="TaskChallengedSuccessfully(bytes32,address)").hex().removeprefix("0x")
CHALLENGED_FAIL = "0x" + Web3.keccak(text="TaskChallengedUnsuccessfully(bytes32,address)").hex().removeprefix("0x")
SPENT = "0x" + Web3.keccak(
    text="AttestationSpent(bytes32,(bytes32,bytes32,address,uint32,(address,address,uint256,bytes,uint256,bytes),bytes))"
).hex().removeprefix("0x")


# ------------------------------------------------------------------------------------------ the static world


def _metadata(spec) -> dict:
    prefix = "data:application/json;base64,"
    assert spec.metadata_uri.startswith(prefix)
    return json.loads(base64.b64decode(spec.metadata_uri[len(prefix) :]))


def test_operator_set_is_realistic_not_ideally_diverse():
    specs = scenario.operator_specs(10, 7)
    docs = [_metadata(s) for s in specs]
    for d in docs:
        for key in (
            "name",
            "organisation",
            "country",
            "city",
            "latitude",
            "longitude",
            "provider",
            "region",
            "asn",
            "client_version",
        ):
            assert d[key] not in (None, ""), key
    sites = Counter((d["provider"], d["region"]) for d in docs)
    assert max(sites.values()) >= 3  # several on the same provider and region
    orgs = Counter(d["organisation"] for d in docs)
    assert sorted(orgs.values())[-1] == 2 and list(orgs.values()).count(2) == 1  # exactly two share an organisation
    assert len({s.key_seed for s in specs}) == 10 and len({s.name for s in specs}) == 10
    assert scenario.joiner_spec(10, 7).key_seed not in {s.key_seed for s in specs}
    # operators are infrastructure: their keys do not depend on the traffic seed
    assert [s.key_seed for s in scenario.operator_specs(10, 1)] == [s.key_seed for s in specs]


def test_liveness_profiles_cover_every_behaviour():
    profiles = scenario.liveness_profiles(10)
    initial = profiles[:-1]
    assert sum(p.availability >= 0.99 for p in initial) >= 7
    assert any(0.8 <= p.availability <= 0.9 for p in initial)
    assert any(p.offline for p in initial)
    assert sum(p.deregister_at is not None for p in initial) == 1
    assert profiles[-1].registered_from > max(p.deregister_at or 0 for p in initial)
    assert 1 <= sum(bool(p.stake_changes) for p in initial) <= 2


def test_clients_policies_and_params_schedule():
    specs = scenario.client_specs()
    assert len(specs) >= 3
    by_policy = Counter(c.policy for c in specs)
    shared = [p for p, n in by_policy.items() if n >= 2]
    assert shared, "one policy is used by two clients"
    same = [c for c in specs if c.policy == shared[0]]
    assert same[0].params != same[1].params
    assert {p.name for p in scenario.policy_specs()} == set(scenario.POLICY_NAMES)
    assert set(by_policy) == set(scenario.POLICY_NAMES)
    assert len({ch.client for ch in scenario.PARAMS_SCHEDULE}) >= 2
    for ch in scenario.PARAMS_SCHEDULE:
        assert scenario.client_params(ch.client, ch.version) != scenario.client_params(ch.client, 0)


def test_policy_cids_are_ipfs_raw_cids():
    # `ipfs add --cid-version 1 --raw-leaves` of b"hello"
    assert scenario.ipfs_cid(b"hello") == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def test_policy_test_suites_pass():
    from app.engine.regotest import run_suite

    for name in scenario.POLICY_NAMES:
        suite = run_suite([str(scenario.policy_dir(name))])
        assert suite.passed >= 8 and suite.failed == 0, [
            (r.case.name, r.message) for r in suite.results if r.status != "pass"
        ]


# ------------------------------------------------------------------------------------------ agents, providers


def test_intents_are_deterministic_and_varied():
    a = agents.plan_intents(1500, 7, START, TOKEN, 31337)
    assert a == agents.plan_intents(1500, 7, START, TOKEN, 31337)
    assert a != agents.plan_intents(1500, 8, START, TOKEN, 31337)
    assert [p.t for p in a] == sorted(p.t for p in a)
    kinds = Counter((bytes(p.intent.function_signature).decode() or "eth-transfer") for p in a)
    assert {"eth-transfer", agents.SIG_TRANSFER, agents.SIG_APPROVE, agents.SIG_SWAP} <= set(kinds)
    assert {"ETH", "dUSD"} <= {p.asset for p in a}
    assert sum(p.amount > 2**53 for p in a) > 0.9 * len(a)
    assert {p.persona for p in a} >= {"atlas-treasury-agent", "quant-trading-bot", "payroll-agent", "alice"}
    assert any(not p.executes for p in a)  # some attestations are left to expire
    # a burst: ten or more large swaps by the trading bot within one hour
    bursts = [p.t for p in a if p.note == "burst"]
    assert any(sum(1 for u in bursts if t <= u < t + 3600) >= 10 for t in bursts)


def test_violations_of_every_kind_appear():
    """Evaluate a plan with the engine (executions fed back into the ledger): every deny reason family shows up."""
    plan = agents.plan_intents(2500, 7, START, TOKEN, 31337)
    accts = {k: v[0] for k, v in agents.persona_accounts(7).items()}
    prov = providers.Providers(7, START, plan[-1].t - START, accts)
    specs = {s.name: s for s in scenario.policy_specs()}
    params = {c: scenario.client_params(c, 0) for c in scenario.CLIENT_POLICY}
    reasons, allowed = Counter(), 0
    for p in plan:
        policy = scenario.CLIENT_POLICY[p.client]
        spec = specs[policy]
        calls = prov.outputs(p.client, "0x" + "cc" * 20, spec.policy_data, p.intent, p.t, params[p.client])
        ev = compiled(spec.source, spec.entrypoint).evaluate(
            intent_input(p.intent), params[p.client], wasm_from_policy_data([c.data for c in calls])
        )
        reasons.update(ev.deny)
        if ev.allow:
            allowed += 1
            prov.record_execution(p.client, p.t + 20, p.intent, params[p.client])
    for r in (
        "exceeds_per_tx_limit",
        "exceeds_daily_cap",
        "counterparty_sanctioned",
        "counterparty_not_allowlisted",
        "kyc_not_approved",
        "jurisdiction_blocked",
        "volatility_too_high",
        "burst_of_large_transfers",
    ):
        assert reasons[r] > 0, r
    assert 0.75 < allowed / len(plan) < 0.95  # most comply


@given(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 2**200), st.booleans()), max_size=60),
    st.integers(0, 6000),
    st.integers(0, 6000),
)
def test_ledger_windows_match_brute_force(events, t, since):
    ledger = providers.Ledger()
    key = ("c", "0xs")
    events = sorted(events, key=lambda e: e[0])
    for when, amount, spend in events:
        ledger.record(key, when, amount, spend, amount >= 2**100)
    assert ledger.spent(key, t, since) == sum(a for w, a, sp in events if since <= w < t and sp)
    assert ledger.count(key, t) == sum(1 for w, _, _ in events if t - 3600 < w < t)
    assert ledger.count_large(key, t) == sum(1 for w, a, _ in events if t - 3600 < w < t and a >= 2**100)


@hsettings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.integers(0, 2**96), st.integers(0, 2**20))
def test_raw_transactions_equal_eth_account(key, data, value, nonce):
    k = int.from_bytes(key, "big")
    if not 0 < k < rawtx.N:
        return
    acct = Account.from_key(key)
    sender = rawtx.Sender(key, rawtx.address_of(key), nonce)
    assert sender.address == acct.address.lower()
    raw, tx_hash = rawtx.sign_tx(sender, 31337, "0x" + "22" * 20, data, value, 300_000, 10**11)
    ref = acct.sign_transaction(
        {
            "to": "0x" + "22" * 20,
            "data": data,
            "value": value,
            "gas": 300_000,
            "nonce": nonce,
            "chainId": 31337,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 0,
        }
    )
    assert raw == "0x" + bytes(ref.raw_transaction).hex() and tx_hash == "0x" + bytes(ref.hash).hex()
    assert sender.nonce == nonce + 1


# ------------------------------------------------------------------------------------------ on a real anvil


def _deploy_and_simulate(
    node,
    tasks: int,
    fault_rate: float,
    seed: int = 7,
    independent: bool = True,
    fixed_time: bool = False,
    individual_signatures: bool = True,
):
    from devnet.deploy import anvil_account, deploy_devnet
    from devnet.simulate import Rpc, SimConfig, simulate

    rpc = Rpc(node.url)
    if fixed_time:  # deterministic block timestamps from genesis on (policyIds hash block.timestamp)
        rpc("anvil_setBlockTimestampInterval", [1])
        rpc("evm_setNextBlockTimestamp", [2_000_000_000])  # after any genesis time
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
    doc = deploy_devnet(
        w3,
        deployer=anvil_account(0),
        operators=scenario.operator_specs(10, seed),
        policies=scenario.policy_specs(),
        clients=scenario.client_specs(),
        challenge_window_blocks=200,
        response_window_blocks=50,
        slash_bps=1000,
    )
    if fixed_time:
        rpc("anvil_removeBlockTimestampInterval", [])
    result = simulate(
        node.url,
        doc,
        SimConfig(
            tasks=tasks,
            seed=seed,
            operators=10,
            fault_rate=fault_rate,
            independent_eval=independent,
            individual_signatures=individual_signatures,
        ),
    )
    return doc, result, rpc


def _logs(rpc, doc, first_block: int) -> list[dict]:
    return rpc("eth_getLogs", [{"fromBlock": hex(first_block), "toBlock": "latest"}])


@functools.lru_cache(maxsize=1)
def _shared_run():
    """One simulation of 120 tasks with a high fault rate on its own anvil (run once per worker, then cached:
    xdist may tear module fixtures down between tests of one group)."""
    from devnet.anvil import start_anvil

    node = start_anvil(port=None)
    try:
        doc, result, rpc = _deploy_and_simulate(node, 120, 0.06)
        return doc, result, _logs(rpc, doc, 0)
    finally:
        node.stop()


@pytest.fixture()
def sim_run():
    """(deployment, SimResult, every log of the chain) of the shared simulation."""
    return _shared_run()


@pytest.mark.xdist_group("simulate")
def test_every_verdict_matches_the_engine_unless_injected_fault(sim_run):
    doc, result, logs = sim_run
    tm = doc["contracts"]["taskManager"].lower()
    entry = {p["address"].lower(): p["entrypoint"] for p in doc["policies"].values()}
    responded = [lg for lg in logs if lg["address"].lower() == tm and lg["topics"][0] == TASK_RESPONDED_TOPIC]
    assert len(responded) == result.responded >= 100
    mismatches = set()
    for lg in responded:
        response, _cert = eth_abi.decode([TASK_RESPONSE_T, CERT_T], bytes.fromhex(lg["data"][2:]))
        policy = compiled(bytes(response[7][2]).decode(), entry[response[3].lower()])
        ev = policy.evaluate(
            intent_input(intent_from_tuple(response[4])),
            json.loads(bytes(response[8][0])),
            wasm_from_policy_data([pd[1] for pd in response[7][3]]),
        )
        if ev.allow != is_canonical_allow(bytes(response[6])):
            mismatches.add("0x" + bytes(response[0]).hex())
    assert result.faults, "the fault rate injected at least one wrong verdict"
    assert mismatches == set(result.faults)
    assert result.allowed > 0 and result.denied > 0


@pytest.mark.xdist_group("simulate")
def test_every_injected_fault_is_challenged_successfully(sim_run):
    doc, result, logs = sim_run
    tm = doc["contracts"]["taskManager"].lower()
    ok = {lg["topics"][1] for lg in logs if lg["address"].lower() == tm and lg["topics"][0] == CHALLENGED_OK}
    failed = {lg["topics"][1] for lg in logs if lg["address"].lower() == tm and lg["topics"][0] == CHALLENGED_FAIL}
    assert ok == set(result.faults)
    assert failed == set(result.challenged_frivolous)
    spent = {lg["topics"][1] for lg in logs if lg["address"].lower() == tm and lg["topics"][0] == SPENT}
    assert len(spent) == result.executed
    assert result.unspent_allowed > 0 or result.allowed == result.executed


@pytest.mark.xdist_group("simulate")
def test_participation_matches_profiles(sim_run):
    _doc, result, _logs_ = sim_run
    profiles = {p.name: p for p in scenario.liveness_profiles(10)}
    faults = set(result.faults)
    for name, (signed, eligible) in result.participation.items():
        p = profiles[name]
        if eligible == 0:
            continue
        # honest operators do not sign a colluding quorum's wrong verdict; count only honest tasks
        honest = [t for t in result.signers if t not in faults]
        in_window = [t for t in honest if any(a <= result.fractions[t] < b for a, b in p.offline)]
        signed_in_window = sum(name in result.signers[t] for t in in_window)
        assert signed_in_window == 0, f"{name} signed while offline"
        if p.offline:
            continue
        rate = signed / eligible
        assert rate <= 1.0
        assert abs(rate - p.availability) <= 0.13, (name, rate, p.availability)
    names = scenario.operator_specs(10, 7)
    leaver = names[scenario.LEAVER].name
    joiner = scenario.joiner_spec(10, 7).name
    last = max(result.signers, key=lambda t: result.fractions[t])
    first = min(result.signers, key=lambda t: result.fractions[t])
    assert leaver not in result.signers[last] and joiner not in result.signers[first]
    assert result.participation[joiner][1] > 0


def test_same_seed_gives_the_same_chain():
    """Two runs of one seed put the same logs on chain, the second with the aggregator signing for the quorum in one
    multiplication (`individual_signatures=False`, what `lens bench live` uses): the same aggregate BLS signatures,
    which the task manager verified (every response landed), byte for byte."""
    from devnet.anvil import start_anvil

    contents, summaries = [], []
    for individual in (True, False):
        node = start_anvil(port=None)
        try:
            doc, result, rpc = _deploy_and_simulate(
                node, 40, 0.05, seed=11, independent=False, fixed_time=True, individual_signatures=individual
            )
            contents.append(
                [
                    (int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["address"], lg["topics"], lg["data"])
                    for lg in _logs(rpc, doc, 0)
                ]
            )
            summaries.append({k: v for k, v in result.summary().items() if k not in ("elapsed_s", "tasks_per_s")})
        finally:
            node.stop()
    assert summaries[0] == summaries[1]
    assert len(contents[0]) > 200
    assert contents[0] == contents[1]


def test_simulate_needs_a_deployment(tmp_path: Path):
    from app.errors import LensError
    from devnet.simulate import SimConfig, simulate

    with pytest.raises(LensError, match="no devnet deployment"):
        simulate("http://127.0.0.1:1", str(tmp_path / "missing.json"), SimConfig(tasks=5))


@hsettings(max_examples=30, deadline=None)
@given(
    st.binary(max_size=200),
    st.binary(max_size=3000),
    st.binary(max_size=500),
    st.binary(max_size=70),
    st.integers(0, 2**256 - 1),
)
def test_fast_respond_calldata_equals_the_abi_encoding(data, source, sig_data, att_data, value):
    from devnet import protocol
    from devnet.aggregator import create_calldata_from, encoded_task, respond_calldata_from

    it = protocol.intent("0x" + "11" * 20, "0x" + "22" * 20, value, data, 31337, b"transfer(address,uint256)")
    task = protocol.task(b"\x01" * 32, "0x" + "33" * 20, 7, 67, it, b"\x05" * 65, b'{"a":1}', b"\x00", 1234)
    pd = [protocol.policy_data(b"{}", b'{"spend":{}}', "0x" + "44" * 20, 9)]
    resp = protocol.task_response(task, b"\x02" * 32, "0x" + "55" * 20, b"\x00" * 31 + b"\x01", source, pd, b"{}", 40)
    enc_resp = eth_abi.encode([protocol.TASK_RESPONSE], [resp])
    assert respond_calldata_from(encoded_task(task), enc_resp, sig_data, att_data) == protocol.respond_calldata(
        task, resp, sig_data, att_data
    )
    assert create_calldata_from(encoded_task(task)) == protocol.create_calldata(task)


def test_cli_simulate_and_bench_print_one_json_object(tmp_path: Path):
    from click.testing import CliRunner

    from app.cli.main import cli
    from devnet.anvil import start_anvil
    from devnet.deploy import anvil_account, deploy_devnet

    node = start_anvil(port=None)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        doc = deploy_devnet(
            w3,
            deployer=anvil_account(0),
            operators=scenario.operator_specs(10, 7),
            policies=scenario.policy_specs(),
            clients=scenario.client_specs(),
            challenge_window_blocks=200,
            response_window_blocks=50,
            slash_bps=1000,
        )
        dep = tmp_path / "deployment.json"
        dep.write_text(json.dumps(doc))
        runner = CliRunner()
        res = runner.invoke(
            cli,
            ["simulate", "--tasks", "25", "--seed", "5", "--deployment-file", str(dep), "--rpc", node.url, "--json"],
        )
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["tasks"] == 25 and out["responded"] + out["unresponded"] == 25
        assert set(out["participation"]) >= {s.name for s in scenario.operator_specs(10, 7)}
    finally:
        node.stop()
    res = CliRunner().invoke(cli, ["bench", "simulate", "--tasks", "20", "--json"])
    assert res.exit_code == 0, res.output
    bench = json.loads(res.stdout)
    assert bench["tasks"] == 20 and bench["tasks_per_s"] > 0


def test_cli_simulate_without_devnet_is_a_clear_error(tmp_path: Path):
    from click.testing import CliRunner

    from app.cli.main import cli

    res = CliRunner().invoke(cli, ["simulate", "--tasks", "5", "--deployment-file", str(tmp_path / "none.json")])
    assert res.exit_code == 1
    assert "lens devnet up" in res.output and "Traceback" not in res.output
