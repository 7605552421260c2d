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
        c.execute("INSERT INTO task_signers VALUES (1, ?, ?, ?, ?, ?)", [TASK, "id" + op, op, signed, stake])
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
