"""Dashboard with no DB yet: the Overview shows the deployment it reads, the chain head, and clear states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


def _deployment(rpc_url: str) -> dict:
    return {
        "name": "devnet",
        "chain_id": 31337,
        "rpc_url": rpc_url,
        "start_block": 0,
        "confirmations": 0,
        "contracts": {"taskManager": "0x" + "11" * 20, "operatorRegistry": "0x" + "22" * 20, "token": "0x" + "33" * 20},
        "policies": {
            "spending_limits": {
                "address": "0x" + "44" * 20,
                "entrypoint": "spending_limits.allow",
                "policy_code_hash": "0x" + "ab" * 32,
            }
        },
        "clients": {"<script>alert(1)</script>": {"address": "0x" + "55" * 20, "policy": "spending_limits"}},
        "roles": {"deployer": "0x" + "66" * 20},
        "deployment_block": 1,
    }


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rpc_url: str) -> AppTest:
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps(_deployment(rpc_url)))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(dep))
    monkeypatch.setenv("LENS_DB", str(tmp_path / "absent.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_deployment_and_live_head(tmp_path, monkeypatch, anvil, w3):
    at = _run(tmp_path, monkeypatch, anvil.url)
    metrics = _metrics(at)
    assert metrics["Chain id"] == "31337"
    assert metrics["Deployment"] == "devnet"
    head = int(metrics["Head block"].replace(",", ""))
    assert head >= 0 and head <= w3.eth.block_number
    addresses = set(at.dataframe[0].value["address"])
    assert "0x" + "11" * 20 in addresses and "0x" + "22" * 20 in addresses
    # no DB yet: a clear state, not an error
    assert any("No indexed decisions yet" in i.value for i in at.info)
    assert not at.error
    # the sidebar names the deployment and chain
    sidebar = " ".join(t.value for t in at.sidebar.text)
    assert "devnet" in sidebar and "31337" in sidebar


def test_overview_says_when_the_chain_is_unreachable(tmp_path, monkeypatch):
    from devnet.anvil import free_port

    at = _run(tmp_path, monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert _metrics(at)["Head block"] == "unreachable"
    assert any("RPC unreachable" in i.value for i in at.info)


def test_onchain_names_are_data_not_html(tmp_path, monkeypatch):
    at = _run(tmp_path, monkeypatch, "http://127.0.0.1:1")
    clients = [df.value for df in at.dataframe if "client" in df.value.columns]
    assert clients and clients[0]["client"].tolist() == ["<script>alert(1)</script>"]
    for md in at.markdown:
        assert "<script>" not in md.value


def test_no_deployment_is_a_clear_state(tmp_path, monkeypatch):
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("LENS_DB", str(tmp_path / "absent.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("No deployment document found" in w.value for w in at.warning)
