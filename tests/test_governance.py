"""Governance on a real simulated devnet: proxies (ERC-1967 slots), upgrades, initializations, ownership, the
implementation in force at each decision, risks and storage-layout comparisons — each checked against the chain's
own logs and storage, or against hand-made layouts."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from support import page, simulated_devnet, sql

from app.queries import governance as gq
from devnet import governance as dg
from indexer.deployment import parse
from indexer.load import connect_read
from indexer.run import IndexOptions, index

pytestmark = pytest.mark.xdist_group("governance")

UPGRADED = "0x" + keccak(text="Upgraded(address)").hex()
OWNERSHIP = "0x" + keccak(text="OwnershipTransferred(address,address)").hex()
INITIALIZED = "0x" + keccak(text="Initialized(uint8)").hex()
ADMIN_CHANGED = "0x" + keccak(text="AdminChanged(address,address)").hex()
OLD_LAYOUT = "0x0742ec8d296e286b00b6070ef5874bcb7801cd5af4fd56df11b159d00c50a49b"  # EVENTS.md §1.3, 2026-02-11
CURRENT_LAYOUT = "0x59945c4b280f2ccf9bcfa9a217b0629fd61f8d39864f1bb198590f88da7138bc"  # EVENTS.md §1.1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with simulated_devnet(tasks=40, fault_rate=0.2) as (node, w3, doc, res):
        db = str(tmp_path_factory.mktemp("gov") / "lens.duckdb")
        st_ = index(parse(doc, "devnet"), IndexOptions(db=db, metadata_timeout_s=2))
        with connect_read(db) as con:
            report = gq.build_report(con, doc, node.url)
        yield node, w3, doc, res, db, st_, report


def _logs(w3, address, topic0):
    return w3.provider.make_request(
        "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": address, "topics": [topic0]}]
    )["result"]


def _word_address(word: str) -> str:
    return "0x" + word[-40:].lower()


def test_upgrade_ownership_and_initializations_carry_the_blocks_the_chain_logged(world):
    _node, w3, doc, res, db, _st, report = world
    tm = doc["contracts"]["taskManager"]
    chain_up = [(int(x["blockNumber"], 16), _word_address(x["topics"][1])) for x in _logs(w3, tm, UPGRADED)]
    assert len(chain_up) == 2  # deployment (v1), then the mid-run upgrade (v2)
    assert chain_up[1][1] == doc["upgrades"]["taskManager"]["implementation"]
    proxy = next(p for p in report.proxies if p.address == tm)
    assert [(h.block_number, h.value) for h in proxy.history if h.event == "Upgraded"] == chain_up
    chain_init = [(int(x["blockNumber"], 16), int(x["data"], 16)) for x in _logs(w3, tm, INITIALIZED)]
    assert [(h.block_number, int(h.value)) for h in proxy.history if h.event == "Initialized"] == chain_init
    assert [v for _, v in chain_init] == [1, 2]  # initialize at deployment, reinitializer(2) at the upgrade
    deployer = doc["roles"]["deployer"]
    assert all(h.sender == deployer for h in proxy.history)  # the ProxyAdmin's owner sent every one
    # the ownership transfer of one policy, to the account the simulation hands it to
    name = dg.transferred_policy(doc)
    policy = doc["policies"][name]["address"]
    chain_own = [(int(x["blockNumber"], 16), _word_address(x["topics"][2])) for x in _logs(w3, policy, OWNERSHIP)]
    assert chain_own[-1][1] == dg.new_policy_owner(7) and len(chain_own) == 2
    assert res.governance == [f"transferOwnership of policy {name}", "upgrade TaskManager"]
    p = next(p for p in report.proxies if p.address == policy)
    assert [(h.block_number, h.value) for h in p.history if h.event == "OwnershipTransferred"] == chain_own
    assert p.owner == dg.new_policy_owner(7)
    # every watched proxy's initialization is indexed, with the raw table agreeing with the chain
    for addr in [doc["contracts"]["challengeVerifier"], *(q["address"] for q in doc["policies"].values())]:
        n_chain = len(_logs(w3, addr, INITIALIZED))
        assert n_chain == 1
        assert sql(db, "SELECT count(*) FROM ev_initialized WHERE address = ?", [addr]) == [(n_chain,)]
        assert len(_logs(w3, addr, ADMIN_CHANGED)) == 1


def test_erc1967_slot_equals_the_last_upgraded_implementation(world):
    _node, w3, doc, _res, db, _st, report = world
    for p in report.proxies:
        slot = w3.provider.make_request("eth_getStorageAt", [p.address, gq.IMPLEMENTATION_SLOT, "latest"])["result"]
        last = sql(
            db,
            "SELECT implementation FROM ev_upgraded WHERE address = ? ORDER BY block_number DESC, log_index DESC LIMIT 1",
            [p.address],
        )[0][0]
        assert _word_address(slot) == last == p.implementation
        admin = w3.provider.make_request("eth_getStorageAt", [p.address, gq.ADMIN_SLOT, "latest"])["result"]
        assert _word_address(admin) == p.admin == doc["contracts"]["proxyAdmin"]
        code = w3.provider.make_request("eth_getCode", [p.implementation, "latest"])["result"]
        assert p.implementation_code_hash == "0x" + keccak(bytes.fromhex(code[2:])).hex()
    roles = {p.role for p in report.proxies}
    assert {"taskManager/attestationValidator", "challengeVerifier"} <= roles
    assert {f"policy {n}" for n in doc["policies"]} <= roles


def test_decisions_before_and_after_the_upgrade_name_the_right_implementation(world):
    _node, _w3, doc, _res, db, _st, _report = world
    tm = doc["contracts"]["taskManager"]
    v1, v2 = doc["proxies"]["taskManager"]["implementation"], doc["upgrades"]["taskManager"]["implementation"]
    rows = sql(
        db,
        "SELECT t.task_id, t.responded_block, c.topic0 FROM tasks t "
        "JOIN ev_new_task_created c ON c.task_id = t.task_id WHERE t.responded_block IS NOT NULL",
    )
    by_layout = {OLD_LAYOUT: 0, CURRENT_LAYOUT: 0}
    with connect_read(db) as con:
        for _task, block, topic0 in rows:
            inforce = gq.implementation_at(con, tm, block)
            # the oracle: the layout the chain logged for the task (v1 emits the 2026-02-11 one, v2 the current)
            assert inforce.implementation == (v1 if topic0 == OLD_LAYOUT else v2)
            assert inforce.version == ("v1" if topic0 == OLD_LAYOUT else "v2")
            by_layout[topic0] += 1
    assert by_layout[OLD_LAYOUT] > 0 and by_layout[CURRENT_LAYOUT] > 0
    assert sum(by_layout.values()) == len(rows) == 40


def test_both_layouts_decode_with_no_undecodable_log(world):
    _node, _w3, _doc, _res, db, st_, _report = world
    assert st_.undecodable == 0
    assert sql(db, "SELECT count(*) FROM undecodable_logs") == [(0,)]
    layouts = dict(sql(db, "SELECT layout, count(*) FROM ev_new_task_created GROUP BY 1"))
    assert set(layouts) == {"2026-02-11", "current"}
    assert sql(db, "SELECT count(*) FROM tasks") == [(40,)]


def test_the_uninitialized_implementation_is_flagged_and_the_initialized_ones_are_not(world):
    _node, w3, doc, _res, _db, _st, report = world
    flagged = {r.address for r in report.risks if r.kind == "uninitialized_implementation"}
    impls = set(doc["implementations"])
    for impl in impls:
        # the oracle: the implementation's own storage, slot 0 byte 0 (OpenZeppelin 4.9 Initializable._initialized)
        word = int(w3.provider.make_request("eth_getStorageAt", [impl, "0x0", "latest"])["result"], 16)
        assert (impl in flagged) == ((word & 0xFF) == 0), impl
    assert flagged == {doc["proxies"]["taskManager"]["implementation"]}


def test_eoa_owner_and_admin_are_flagged(world):
    _node, _w3, doc, _res, _db, _st, report = world
    eoa_owner = {r.address for r in report.risks if r.kind == "eoa_owner"}
    assert doc["contracts"]["taskManager"] in eoa_owner
    assert {p["address"] for p in doc["policies"].values()} <= eoa_owner
    assert doc["contracts"]["challengeVerifier"] not in eoa_owner  # roles, no owner()
    eoa_admin = {r.address for r in report.risks if r.kind == "eoa_admin"}
    assert doc["contracts"]["taskManager"] in eoa_admin  # ProxyAdmin owned by the deployer's key


def test_the_two_task_manager_layouts_are_compared_append_only(world):
    _node, _w3, doc, _res, _db, _st, report = world
    (diff,) = [d for d in report.layout_diffs if d.proxy == doc["contracts"]["taskManager"]]
    assert (diff.old_contract, diff.new_contract) == ("TaskManagerV1", "TaskManager")
    assert diff.changes == () and diff.appended == ("upgradedAtBlock",)
    assert not [r for r in report.risks if r.kind == "storage_layout"]


def _layout(name: str) -> dict:
    return json.loads((gq.ARTIFACTS_DIR / f"{name}.json").read_text())["storageLayout"]


def test_a_moved_retyped_or_removed_variable_is_flagged_and_an_append_only_layout_is_not():
    old = _layout("TaskManagerV1")
    moved = copy.deepcopy(old)
    a = next(v for v in moved["storage"] if v["label"] == "allTaskHashes")
    b = next(v for v in moved["storage"] if v["label"] == "attestationDataHashes")
    a["slot"], b["slot"] = b["slot"], a["slot"]  # two mappings swapped: the classic storage collision
    changes, _ = gq.layout_changes(old, moved)
    assert {(c.variable, c.change) for c in changes} == {("allTaskHashes", "moved"), ("attestationDataHashes", "moved")}
    retyped = copy.deepcopy(old)
    v = next(v for v in retyped["storage"] if v["label"] == "slashBps")
    v["type"] = "t_uint32"
    assert [(c.variable, c.change) for c in gq.layout_changes(old, retyped)[0]] == [("slashBps", "type_changed")]
    removed = copy.deepcopy(old)
    removed["storage"] = [v for v in removed["storage"] if v["label"] != "responses"]
    assert [(c.variable, c.change) for c in gq.layout_changes(old, removed)[0]] == [("responses", "removed")]
    assert gq.layout_changes(old, _layout("TaskManager")) == ((), ("upgradedAtBlock",))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["t_uint32", "t_address", "t_bool"]), min_size=1, max_size=5), st.data())
def test_appending_is_never_flagged_and_moving_any_old_variable_always_is(new_types, data):
    old = _layout("TaskManagerV1")
    top = max(int(v["slot"]) for v in old["storage"])
    grown = copy.deepcopy(old)
    for i, t in enumerate(new_types):
        grown["storage"].append({"label": f"added{i}", "slot": str(top + 1 + i), "offset": 0, "type": t})
    changes, appended = gq.layout_changes(old, grown)
    assert changes == () and appended == tuple(f"added{i}" for i in range(len(new_types)))
    i = data.draw(st.integers(0, len(old["storage"]) - 1))
    shifted = copy.deepcopy(grown)
    shifted["storage"][i]["slot"] = str(int(shifted["storage"][i]["slot"]) + 1000)
    assert [c.change for c in gq.layout_changes(old, shifted)[0]] == ["moved"]


def test_lens_upgrades_json(world, monkeypatch):
    from app.cli.main import cli

    node, _w3, doc, _res, db, _st, _report = world
    out = CliRunner().invoke(cli, ["upgrades", "--db", db, "--rpc", node.url, "--json"])
    assert out.exit_code == 0, out.output
    obj = json.loads(out.output)
    assert set(obj) >= {"proxies", "risks"}
    tm = next(p for p in obj["proxies"] if p["address"] == doc["contracts"]["taskManager"])
    assert {"address", "role", "implementation", "admin", "owner", "history"} <= set(tm)
    ups = [h for h in tm["history"] if h["event"] == "Upgraded"]
    assert [h["implementation"] for h in ups][-1] == tm["implementation"]
    assert all({"event", "block_number", "tx_hash", "sender"} <= set(h) for h in tm["history"])
    assert {"address", "kind", "detail"} == set(obj["risks"][0])
    text = CliRunner().invoke(cli, ["upgrades", "--db", db, "--rpc", node.url])
    assert text.exit_code == 0 and "uninitialized_implementation" in text.output
    beyond = CliRunner().invoke(cli, ["upgrades", "--db", db, "--rpc", node.url, "--block", "99999999", "--json"])
    assert beyond.exit_code == 1 and json.loads(beyond.output)["error"].startswith("block 99999999 is not on the chain")
    missing = CliRunner().invoke(cli, ["upgrades", "--db", db + ".nope", "--json"])
    assert missing.exit_code == 1 and json.loads(missing.output)["error"].startswith("no database")


def test_governance_page(world, monkeypatch, tmp_path):
    _node, _w3, doc, _res, db, _st, _report = world
    monkeypatch.setenv("LENS_DB", db)
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    at = page("pages/governance.py")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Proxies watched"] == str(len(_report.proxies))
    assert labels["Upgrades"] == str(sum(1 for p in _report.proxies for h in p.history if h.event == "Upgraded"))
    risks = at.dataframe[0].value
    assert "uninitialized_implementation" in set(risks["kind"])
    proxies = at.dataframe[1].value
    assert doc["contracts"]["taskManager"] in set(proxies["address"])


def _tasks_by_layout(db: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {OLD_LAYOUT: [], CURRENT_LAYOUT: []}
    for task_id, topic0 in sql(db, "SELECT task_id, topic0 FROM ev_new_task_created"):
        out[topic0].append(task_id)
    return out


def test_decisions_filter_by_the_implementation_in_force(world):
    from app.queries import decisions

    _node, _w3, doc, _res, db, _st, _report = world
    v1, v2 = doc["proxies"]["taskManager"]["implementation"], doc["upgrades"]["taskManager"]["implementation"]
    by = _tasks_by_layout(db)
    with connect_read(db) as con:
        for impl, layout in ((v1, OLD_LAYOUT), (v2, CURRENT_LAYOUT)):
            f = decisions.filter_from_params({"implementation": impl})
            assert f.implementation == (impl,)
            assert decisions.filter_from_params(decisions.filter_to_params(f)) == f
            assert decisions.decisions_count(con, f) == len(by[layout])
            page_ids = set(decisions.decisions_page(con, f, 0, 100)["task_id"])
            assert page_ids == set(by[layout])
        # the policies' shared implementation was in force for every decision
        policy_impl = doc["proxies"][f"policy:{dg.transferred_policy(doc)}"]["implementation"]
        assert decisions.decisions_count(con, decisions.filter_from_params({"implementation": policy_impl})) == 40
        facet = dict(decisions.facets(con)["implementation"])
        assert facet[v1].startswith("task manager v1") and facet[v2].startswith("task manager v2")
        assert decisions.filter_from_params({"implementation": "not-an-address"}).implementation == ()


def test_verdict_and_decisions_pages_name_the_implementation(world, monkeypatch, tmp_path):
    _node, _w3, doc, _res, db, _st, _report = world
    monkeypatch.setenv("LENS_DB", db)
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    v1, v2 = doc["proxies"]["taskManager"]["implementation"], doc["upgrades"]["taskManager"]["implementation"]
    by = _tasks_by_layout(db)
    for layout, impl, version in ((OLD_LAYOUT, v1, "v1"), (CURRENT_LAYOUT, v2, "v2")):
        at = page("pages/verdict.py", task=by[layout][0])
        captions = [c.value for c in at.caption]
        assert any(f"task manager's implementation {impl} ({version}, since block" in c for c in captions), captions
    at = page("pages/decisions.py", implementation=v2)
    assert at.metric[0].value == f"{len(by[CURRENT_LAYOUT]):,}"


def test_policies_come_from_the_factory_with_policy_deployed(world):
    _node, _w3, doc, _res, db, _st, _report = world
    rows = sql(
        db,
        "SELECT address, policy, policy_info_owner, policy_info_entrypoint, policy_info_policy_code_hash, "
        "implementation_version FROM ev_policy_deployed",
    )
    assert {r[0] for r in rows} == {doc["contracts"]["policyFactory"]}
    got = {r[1]: r[2:] for r in rows}
    assert set(got) == {p["address"] for p in doc["policies"].values()}
    for p in doc["policies"].values():
        owner, entrypoint, code_hash, version = got[p["address"]]
        assert (owner, entrypoint, code_hash) == (doc["roles"]["deployer"], p["entrypoint"], p["policy_code_hash"])
        assert version == "1.0.0"


def test_an_upgrade_a_timelock_did_not_delay_is_flagged_and_a_delayed_one_is_not(tmp_path):
    """A ProxyAdmin owned by an OpenZeppelin TimelockController: the first upgrade runs with minDelay 0 (flagged),
    the second after the delay was raised to 60 s and waited out (not flagged)."""
    from web3 import Web3

    from devnet.anvil import start_anvil
    from devnet.deploy import calldata
    from devnet.tx import deploy, rpc, send_tx

    node = start_anvil(port=None, accounts=4)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        dep = w3.eth.accounts[0]
        timelock = deploy(w3, "TimelockController", 0, [dep], [dep], dep, sender=dep)
        admin = deploy(w3, "ProxyAdmin", sender=dep)
        impl_a = deploy(w3, "ChallengeVerifier", sender=dep)
        impl_b = deploy(w3, "NewtonPolicy", sender=dep)
        init = calldata("ChallengeVerifier", "initialize", dep, dep)
        proxy = deploy(
            w3,
            "TransparentUpgradeableProxy",
            Web3.to_checksum_address(impl_a),
            Web3.to_checksum_address(admin),
            bytes.fromhex(init[2:]),
            sender=dep,
        )
        send_tx(
            w3,
            dep,
            to=Web3.to_checksum_address(admin),
            data=calldata("ProxyAdmin", "transferOwnership", Web3.to_checksum_address(timelock)),
        )
        tl = Web3.to_checksum_address(timelock)

        def through_timelock(target: str, data: str, salt: int, wait_s: int) -> None:
            args = [Web3.to_checksum_address(target), 0, bytes.fromhex(data[2:]), b"\0" * 32, salt.to_bytes(32, "big")]
            send_tx(w3, dep, to=tl, data=calldata("TimelockController", "schedule", *args, wait_s))
            if wait_s:
                rpc(w3, "evm_increaseTime", [wait_s + 1])
                rpc(w3, "evm_mine", [])
            send_tx(w3, dep, to=tl, data=calldata("TimelockController", "execute", *args))

        proxy_cs = Web3.to_checksum_address(proxy)
        through_timelock(admin, calldata("ProxyAdmin", "upgrade", proxy_cs, Web3.to_checksum_address(impl_b)), 1, 0)
        through_timelock(timelock, calldata("TimelockController", "updateDelay", 60), 2, 0)
        through_timelock(admin, calldata("ProxyAdmin", "upgrade", proxy_cs, Web3.to_checksum_address(impl_a)), 3, 60)
        # hostile: an unwatched contract logs an Upgraded naming the proxy's real implementation: never trusted
        from devnet import emitter

        fake = emitter.deploy(node.url)
        emitter.emit_many(node.url, fake, [emitter.encode_event(UPGRADED, {"implementation": impl_b})])
        assert len(_logs(w3, fake, UPGRADED)) == 1
        doc = {
            "name": "timelocked",
            "chain_id": 31337,
            "rpc_url": node.url,
            "confirmations": 0,
            "contracts": {"taskManager": proxy, "proxyAdmin": admin, "timelock": timelock},
        }
        db = str(tmp_path / "lens.duckdb")
        index(parse(doc, "timelocked"), IndexOptions(db=db, metadata_timeout_s=2))
        with connect_read(db) as con:
            report = gq.build_report(con, doc, node.url)
        assert sql(db, "SELECT count(*) FROM ev_upgraded WHERE address = ?", [fake]) == [(0,)]
        assert fake not in {p.address for p in report.proxies}
        ups = [h for p in report.proxies if p.address == proxy for h in p.history if h.event == "Upgraded"]
        assert [h.value for h in ups] == [impl_a, impl_b, impl_a]
        flagged = [r for r in report.risks if r.kind == "no_delay_upgrade"]
        assert len(flagged) == 1 and f"block {ups[1].block_number}" in flagged[0].detail
        assert not [r for r in report.risks if r.kind == "eoa_admin"]  # the admin's owner is the timelock contract
    finally:
        node.stop()


def test_without_a_reachable_chain_the_history_still_names_the_implementations(world):
    from devnet.anvil import free_port

    _node, _w3, doc, _res, db, _st, report = world
    with connect_read(db) as con:
        offline = gq.build_report(con, doc, f"http://127.0.0.1:{free_port()}")
    assert offline.chain_note.startswith("cannot read the chain at")
    assert offline.risks == () and offline.layout_diffs == ()
    online = {p.address: p.implementation for p in report.proxies}
    assert {p.address: p.implementation for p in offline.proxies} == online


def test_timeline_chart_has_one_trace_per_event_kind_and_the_params_row():
    import pandas as pd

    from app.charts import governance as charts

    history = pd.DataFrame(
        {
            "block": [4, 4, 45],
            "role": ["taskManager", "taskManager", "taskManager"],
            "event": ["Upgraded", "Initialized", "Upgraded"],
            "value": ["0xa", "1", "0xb"],
            "tx_hash": ["0x1", "0x1", "0x2"],
        }
    )
    params = pd.DataFrame({"block": [30], "client": ["vault"]})
    fig = charts.governance_timeline(history, params)
    names = [t.name for t in fig.data]
    assert names == ["Initialized", "Upgraded", "params change"]  # the upgrade drawn above what shares its block
    assert list(fig.data[1].x) == [4, 45] and list(fig.data[2].y) == [charts.PARAMS_ROW]
    assert len(fig.layout.shapes) == 2  # one line per upgrade
    empty = charts.governance_timeline(history.iloc[0:0], params.iloc[0:0])
    assert empty.layout.annotations[0].text == "no governance events indexed yet"


def test_a_synthetic_db_carries_the_same_history_and_the_page_reads_it_without_a_chain(tmp_path, monkeypatch):
    from app import synth
    from app.queries import decisions

    db = tmp_path / "synth.duckdb"
    synth.build(db, tasks=600, seed=3)
    (up_block, v2), *_ = sql(
        str(db),
        "SELECT block_number, implementation FROM ev_upgraded WHERE address = (SELECT lower(json_extract_string("
        "value, '$.contracts.taskManager')) FROM meta WHERE key = 'deployment_json') ORDER BY block_number DESC",
    )
    after = sql(str(db), "SELECT count(*) FROM tasks WHERE coalesce(responded_block, created_block) >= ?", [up_block])
    with connect_read(str(db)) as con:
        assert decisions.decisions_count(con, decisions.filter_from_params({"implementation": v2})) == after[0][0] > 0
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    at = page("pages/governance.py")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Upgrades"] == str(sql(str(db), "SELECT count(*) FROM ev_upgraded")[0][0])
    assert at.warning and "no RPC URL" in at.warning[0].value


def test_a_beacon_proxy_names_the_beacon_and_the_beacons_implementation(tmp_path):
    """OpenZeppelin BeaconProxy: no implementation slot; the beacon slot and the beacon's implementation() say it."""
    from web3 import Web3

    from devnet.anvil import start_anvil
    from devnet.deploy import calldata
    from devnet.tx import deploy, send_tx

    node = start_anvil(port=None, accounts=2)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        dep = w3.eth.accounts[0]
        impl_a = deploy(w3, "ChallengeVerifier", sender=dep)
        impl_b = deploy(w3, "ChallengeVerifier", sender=dep, gas=3_000_000)
        beacon = deploy(w3, "UpgradeableBeacon", Web3.to_checksum_address(impl_a), sender=dep)
        init = calldata("ChallengeVerifier", "initialize", dep, dep)
        proxy = deploy(w3, "BeaconProxy", Web3.to_checksum_address(beacon), bytes.fromhex(init[2:]), sender=dep)
        up = calldata("UpgradeableBeacon", "upgradeTo", Web3.to_checksum_address(impl_b))
        send_tx(w3, dep, to=Web3.to_checksum_address(beacon), data=up)
        doc = {"name": "beacon", "chain_id": 31337, "rpc_url": node.url, "confirmations": 0}
        doc["contracts"] = {"taskManager": proxy, "challengeVerifier": proxy}
        db = str(tmp_path / "lens.duckdb")
        index(parse(doc, "beacon"), IndexOptions(db=db, metadata_timeout_s=2))
        with connect_read(db) as con:
            report = gq.build_report(con, doc, node.url)
        (p,) = report.proxies
        slot = w3.provider.make_request("eth_getStorageAt", [proxy, gq.BEACON_SLOT, "latest"])["result"]
        assert p.beacon == _word_address(slot) == beacon and p.admin is None
        assert p.implementation == impl_b  # the beacon's upgrade moved every proxy behind it
        assert [(h.event, h.value) for h in p.history if h.event == "BeaconUpgraded"] == [("BeaconUpgraded", beacon)]
    finally:
        node.stop()


def test_slots_read_at_a_block_before_the_upgrade_name_the_first_implementation(world):
    _node, w3, doc, _res, db, _st, _report = world
    tm = doc["contracts"]["taskManager"]
    (up_block,) = [int(x["blockNumber"], 16) for x in _logs(w3, tm, UPGRADED)][1:]
    with connect_read(db) as con:
        before = gq.build_report(con, doc, _node.url, block=up_block - 1)
        at = gq.build_report(con, doc, _node.url, block=up_block)
    impl = {p.address: p.implementation for p in before.proxies}[tm]
    assert impl == doc["proxies"]["taskManager"]["implementation"]
    assert {p.address: p.implementation for p in at.proxies}[tm] == doc["upgrades"]["taskManager"]["implementation"]


def test_lens_explain_names_the_implementations_in_force(world):
    from app.cli.main import cli

    _node, _w3, doc, _res, db, _st, _report = world
    by = _tasks_by_layout(db)
    v1 = doc["proxies"]["taskManager"]["implementation"]
    out = CliRunner().invoke(cli, ["explain", by[OLD_LAYOUT][0], "--db", db, "--json", "--no-counterfactuals"])
    assert out.exit_code == 0, out.output
    lines = json.loads(out.output)["decided_under"]
    assert lines[0].startswith(f"Decided under the task manager's implementation {v1} (v1, since block")
    assert lines[1].startswith("Decided under the policy's implementation")
