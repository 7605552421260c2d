"""The committed contract artifacts are exactly what the pinned solc produces from contracts/*.sol today."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from devnet import contracts

pytestmark = pytest.mark.xdist_group("artifacts")


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict]:
    return contracts.compile_all()


def test_committed_artifacts_equal_a_fresh_compile(fresh: dict[str, dict]) -> None:
    assert sorted(fresh) == sorted(contracts.DEPLOYABLE)
    for name, art in fresh.items():
        committed = (contracts.ARTIFACTS_DIR / f"{name}.json").read_text()
        assert committed == contracts.artifact_text(art), f"{name}.json is stale: run `make contracts`"
    assert contracts.check_artifacts(fresh) == []


def test_artifact_shape_and_compiler_pin(fresh: dict[str, dict]) -> None:
    pinned = json.loads((contracts.ROOT / "devnet" / "tools" / "package.json").read_text())["dependencies"]["solc"]
    for name in contracts.DEPLOYABLE:
        art = contracts.load_artifact(name)
        assert {"contractName", "abi", "bytecode", "deployedBytecode", "compiler", "sourceHash"} <= set(art)
        assert art["contractName"] == name
        assert art["compiler"]["version"].startswith(pinned + "+")
        assert art["compiler"]["settings"]["optimizer"] == {"enabled": True, "runs": 200}
        assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 100
        assert art["sourceHash"] == contracts.source_hash(contracts.sources())


def test_a_changed_source_is_detected(fresh: dict[str, dict]) -> None:
    """check_artifacts must be able to fail: a tampered artifact is reported as stale."""
    name = "TestToken"
    tampered = dict(fresh)
    tampered[name] = dict(fresh[name], deployedBytecode=fresh[name]["deployedBytecode"] + "00")
    assert contracts.check_artifacts(tampered) == [name]


def test_custom_errors_are_decoded_by_name() -> None:
    sel = keccak(text="AttestationExpired(uint32,uint256)")[:4]
    data = sel + (7).to_bytes(32, "big") + (9).to_bytes(32, "big")
    assert contracts.decode_revert(data) == "AttestationExpired(7, 9)"
    assert contracts.decode_revert("0x") == "reverted without data"
    assert contracts.decode_revert(bytes.fromhex("deadbeef")).startswith("reverted with unknown error")
