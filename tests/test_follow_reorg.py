"""`lens index --follow` between rounds checks one header (its last committed block) instead of opening the DB to
compare hashes: a reorg must still be rolled back while following, even one that leaves the head at the same height."""

from __future__ import annotations

import json
import time

from test_indexer_chain import FAST, _fill, deployment_for, head, snapshot, start_follower, stop_follower

from app.errors import LensError
from devnet import emitter
from indexer import load
from indexer.run import IndexOptions, index


def _sources(db: str) -> set[str] | None:
    """The policy sources stored so far (None while the follower holds the file)."""
    try:
        with load.connect_read(db, timeout_s=5) as con:
            return {r[0] for r in con.execute("SELECT content FROM blobs").fetchall()}
    except (LensError, Exception):
        return None


def test_follow_mode_rolls_back_a_reorg_to_the_same_height(fresh_anvil, tmp_path):
    url = fresh_anvil.url
    em = emitter.deploy(url)
    start = head(url)
    _fill(url, em, 10, first=0, per_tx=2)  # common history (5 blocks)
    snap = emitter.rpc(url, "evm_snapshot", [])
    _fill(url, em, 12, first=100, per_tx=3, tag=b"A")  # branch A (4 blocks)
    tip_a = head(url)
    dep_file = tmp_path / "dep.json"
    doc = {
        "name": "follow-reorg",
        "chain_id": fresh_anvil.chain_id,
        "rpc_url": url,
        "start_block": start,
        "confirmations": 0,
        "contracts": {"taskManager": em},
    }
    dep_file.write_text(json.dumps(doc))
    db = str(tmp_path / "follow.duckdb")
    proc = start_follower(dep_file, db)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(s.endswith("A") for s in _sources(db) or ()):
            time.sleep(0.2)
        assert any(s.endswith("A") for s in _sources(db) or ()), "the follower never indexed branch A"
        time.sleep(1.5)  # a few idle rounds on an unchanged tip (the header check, no DB)
        assert emitter.rpc(url, "evm_revert", [snap])
        _fill(url, em, 12, first=200, per_tx=3, tag=b"B")  # branch B: 4 blocks, the same height as A
        assert head(url) == tip_a
        ref = str(tmp_path / "ref.duckdb")
        index(deployment_for(url, fresh_anvil.chain_id, em, start), IndexOptions(db=ref, **FAST))
        want = snapshot(ref)
        deadline = time.monotonic() + 60
        got = None
        while time.monotonic() < deadline:
            sources = _sources(db)
            if sources and any(s.endswith("B") for s in sources) and not any(s.endswith("A") for s in sources):
                try:
                    got = snapshot(db)
                except LensError:
                    continue
                if got == want:
                    break
            time.sleep(0.2)
        assert got is not None, "the follower never rolled branch A back"
        assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
        assert got == want
    finally:
        err = stop_follower(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
