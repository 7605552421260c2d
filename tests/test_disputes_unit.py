"""Challenge-window arithmetic against the contract's own rule, and the badge wording, on small hand-built DBs."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.queries.disputes import Head, Window, disputes
from app.queries.trust import trust_of
from indexer.load import ensure_schema

TASK = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def con():
    """An in-memory DB with the indexer's schema and one wrong response (attested deny, replayed allow)."""
    c = duckdb.connect()
    ensure_schema(c)
    c.execute(
        "INSERT INTO tasks (chain_id, task_id, responded_block, allow, quorum_threshold_pct) VALUES (1, ?, 0, false, 67)",
        [TASK],
    )
    c.execute("INSERT INTO replays (chain_id, task_id, result, replayed_allow) VALUES (1, ?, 'mismatch', true)", [TASK])
    for op, signed, stake in (("0x01", True, 91.0), ("0x02", False, 9.0)):
        c.execute(
            "INSERT INTO task_signers (chain_id, task_id, operator_id, operator, signed, stake_num) VALUES (1, ?, ?, ?, ?, ?)",
            [TASK, "id" + op, op, signed, stake],
        )
    yield c
    c.close()


def accepts_challenge_in(block: int, reference_block: int, window: int) -> bool:
    """TaskManager.raiseAndResolveChallenge: `if (block.number >= referenceBlock + window) revert ChallengeWindowClosed`."""
    return block < reference_block + window


@settings(max_examples=80, deadline=None)
@given(responded=st.integers(0, 10**6), window=st.integers(1, 5000), ahead=st.integers(-10, 6000))
def test_blocks_left_and_state_follow_the_contract(con, responded, window, ahead):
    con.execute("UPDATE tasks SET responded_block = ? WHERE task_id = ?", [responded, TASK])
    head = max(responded + ahead, responded)
    d = disputes(con, Head(head, "chain"), Window(window, "setting"))
    (c,) = d.candidates.to_dict("records")
    # blocks that can still carry a challenge: every block after the head the contract would accept
    left = sum(1 for b in range(head + 1, head + window + 2) if accepts_challenge_in(b, responded, window))
    assert c["blocks_left"] == left
    assert c["state"] == ("open" if accepts_challenge_in(head + 1, responded, window) else "missed")
    assert c["window_end_block"] == responded + window - 1
    assert accepts_challenge_in(c["window_end_block"], responded, window)
    assert not accepts_challenge_in(c["window_end_block"] + 1, responded, window)
    t = trust_of(con, TASK, Head(head, "chain"), Window(window, "setting"))
    assert t.blocks_left == left and t.settled == (left == 0)


def test_badge_reads_as_a_person_would_say_it(con):
    con.execute("UPDATE tasks SET responded_block = 100 WHERE task_id = ?", [TASK])
    open_ = trust_of(con, TASK, Head(150, "chain"), Window(63, "setting"))
    assert open_.line == "signed by 91% of stake (threshold 67%) · replay disagrees · 12 blocks left to challenge"
    assert [n.operator for n in open_.non_signers] == ["0x02"]
    closed = trust_of(con, TASK, Head(400, "chain"), Window(63, "setting"), replay="match")
    assert closed.line == "signed by 91% of stake (threshold 67%) · replay matches · challenge window closed"
    assert closed.settled and closed.challenge_state == "closed"


TM, SLASHER, IMPOSTOR = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "66" * 20
OP = "0x" + "33" * 20


def test_challenges_and_slashes_count_only_from_their_contracts():
    """A look-alike TaskChallengedSuccessfully or OperatorSlashed from another indexed address is not a dispute."""
    import json

    c = duckdb.connect()
    ensure_schema(c)
    doc = {"chain_id": 1, "contracts": {"taskManager": TM, "slasher": SLASHER}}
    c.execute("INSERT INTO meta VALUES ('deployment_json', ?)", [json.dumps(doc)])
    c.execute(
        "INSERT INTO tasks (chain_id, task_id, responded_block, allow) VALUES (1, ?, 10, false), (1, ?, 10, true)",
        [TASK, "0x" + "cd" * 32],
    )
    for addr, tid, tx, idx in ((TM, TASK, "0xaa", 0), (IMPOSTOR, "0x" + "cd" * 32, "0xbb", 9)):
        c.execute(
            "INSERT INTO ev_task_challenged_successfully (chain_id, block_number, log_index, tx_hash, address, task_id, "
            "challenger) VALUES (1, 20, ?, ?, ?, ?, ?)",
            [idx, tx, addr, tid, "0x" + "44" * 20],
        )
    c.execute("INSERT INTO operators (chain_id, operator, operator_id, name) VALUES (1, ?, 'id1', 'Polar Ridge')", [OP])
    c.execute(
        "INSERT INTO ev_operator_stake_update (chain_id, block_number, log_index, tx_hash, address, operator_id, stake) "
        "VALUES (1, 5, 0, '0x01', ?, 'id1', '1000'), (1, 20, 3, '0xaa', ?, 'id1', '900')",
        [SLASHER, SLASHER],
    )
    for addr, tx, idx in ((SLASHER, "0xaa", 2), (IMPOSTOR, "0xbb", 1)):
        c.execute(
            "INSERT INTO ev_operator_slashed (chain_id, block_number, log_index, tx_hash, address, operator, "
            "wads_to_slash) VALUES (1, 20, ?, ?, ?, ?, '[\"100000000000000000\"]')",
            [idx, tx, addr, OP],
        )
    d = disputes(c, Head(30, "chain"), Window(100, "setting")).to_dict()
    assert [x["task_id"] for x in d["challenges"]] == [TASK]
    (only,) = d["challenges"]
    assert only["slashed"] == [
        {
            "operator": OP,
            "name": "Polar Ridge",
            "wad": "100000000000000000",
            "stake_before_wei": "1000",
            "stake_after_wei": "900",
            "amount_wei": "100",
        }
    ]
    c.close()


def test_exporter_reports_an_unreadable_db_as_down(tmp_path):
    from app.exporter import ExporterOptions, LensCollector

    families = {f.name: f for f in LensCollector(ExporterOptions(db=str(tmp_path / "gone.duckdb"))).collect()}
    assert families["lens_up"].samples[0].value == 0
    assert "no database" in families["lens_scrape_error"].samples[0].labels["error"]


def test_a_node_of_another_chain_does_not_lend_its_head(con, tmp_path):
    """A devnet restarted on the same port (another chain id) must not measure this DB's windows."""
    import http.server
    import json
    import threading

    from app.queries.disputes import head_block

    class Node(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            result = {"eth_chainId": hex(5), "eth_blockNumber": hex(999)}.get(body["method"])
            out = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('chain_id', '1'), ('indexed_head', '120')")
        other = head_block(con, url)
        assert (other.block, other.source) == (120, "indexed") and "chain 5" in other.note
        con.execute("INSERT OR REPLACE INTO meta VALUES ('chain_id', '5')")
        assert head_block(con, url) == Head(999, "chain")
    finally:
        con.execute("DELETE FROM meta WHERE key IN ('chain_id', 'indexed_head')")
        server.shutdown()


def test_the_timing_chart_sends_bins_whose_counts_are_the_challenges() -> None:
    """The histogram is binned before it reaches the browser: a bar per bin and outcome, and its bars add up to the
    challenges of each outcome whose response is indexed (counted here from the frame itself)."""
    import numpy as np
    import pandas as pd

    from app.charts.disputes import challenge_timing

    rng = np.random.default_rng(5)
    n = 20_000
    after = rng.integers(0, 300, size=n).astype("float64")
    after[rng.random(n) < 0.1] = np.nan  # responses not indexed
    frame = pd.DataFrame({"blocks_after_response": after, "success": rng.random(n) < 0.3})
    fig = challenge_timing(frame, 200, bins=40)
    bars = {t.name: t for t in fig.data}
    for outcome, success in (("successful", True), ("unsuccessful", False)):
        expected = int(
            (frame["success"] == success).sum()
            - frame[frame["success"] == success]["blocks_after_response"].isna().sum()
        )
        assert len(bars[outcome].y) == 40
        assert int(np.sum(bars[outcome].y)) == expected
