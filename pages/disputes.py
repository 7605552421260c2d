"""Disputes page: every challenge and its slashes, challenge candidates with the blocks left, challengers, conflicts."""

from __future__ import annotations

import streamlit as st

from app import db, widgets
from app.charts import disputes as charts
from app.queries import base, disputes
from app.text import md_escape

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Disputes")
st.caption(
    "Who challenged which response, and was it right? Which wrong responses are still open to challenge, and for "
    "how many blocks?"
)

CHALLENGES_SHOWN = 1000  # a table of a hundred thousand rows costs every rerun; the CLI and the export have them all

LINKS = {
    "verdict_page": st.column_config.LinkColumn("task", display_text=r"task=(0x[0-9a-f]{12})"),
    "block_number": st.column_config.NumberColumn("block", format="%d"),
    "responded_block": st.column_config.NumberColumn("responded at block", format="%d"),
    "window_end_block": st.column_config.NumberColumn("window ends at block", format="%d"),
    "block_time": st.column_config.DatetimeColumn("time (UTC)"),
}

state = base.db_state()
widgets.stop_unless_data(state, "disputes")

deployment, _ = base.current_deployment(True)
rpc_url = str((deployment or {}).get("rpc_url") or "")
head, _why = db.cached_head(rpc_url) if rpc_url else (None, "no RPC URL")
d = db.cached(disputes.for_page, head, rpc_url)
s = d.summary()

cols = st.columns(6)
cols[0].metric("Challenges", f"{s['challenges']:,}")
cols[1].metric("Successful", f"{s['successful']:,}")
cols[2].metric(
    "Open candidates",
    f"{s['open_candidates']:,}" if not d.missing_replays else f"≥ {s['open_candidates']:,}",
    help="replay disagrees, window still open",
)
cols[3].metric(
    "Fewest blocks left",
    "—" if s["fewest_blocks_left"] is None else f"{s['fewest_blocks_left']:,}",
    help="blocks left to challenge the most urgent open candidate",
)
cols[4].metric("Window missed", f"{s['missed_candidates']:,}", help="wrong responses whose window closed unchallenged")
cols[5].metric("Conflicts", f"{s['conflicts']:,}", help="successful challenges of responses Lens' replay agrees with")
head_text = "unknown" if d.head.block is None else f"{d.head.block:,} ({d.head.source})"
st.caption(f"Measured at head block {head_text}; challenge window {d.window.blocks:,} blocks ({d.window.source}).")

if len(d.conflicts):
    st.error(
        f"{len(d.conflicts):,} successful challenges hit responses that Lens' replay agrees with: either Lens or the "
        "challenge resolver is wrong. Open each decision and compare."
    )
    st.dataframe(disputes.challenge_rows(d, conflicts_only=True), hide_index=True, column_config=LINKS)

if d.missing_replays:
    st.warning(
        f"{d.missing_replays:,} of {d.responded:,} responses have no replay yet, so the challenge candidates among "
        "them are unknown. Run `lens audit` (or `lens disputes`, which replays them) and reload."
    )

st.subheader("Challenge candidates")
st.caption(
    "Responses whose replay disagrees with the attested result and that no successful challenge has answered, "
    "newest first."
)
shown = st.query_params.get("candidates", "all")
shown = st.segmented_control(
    "Window",
    disputes.CANDIDATE_STATES,
    default=shown if shown in disputes.CANDIDATE_STATES else "all",
    format_func=lambda s: {"open": "still open", "missed": "window missed", "all": "all"}[s],
    key="candidates_state",
)
st.query_params["candidates"] = shown or "all"
cand = disputes.candidate_rows(d, shown or "all")
if len(cand):
    st.dataframe(cand, hide_index=True, column_config=LINKS | {"state": None})
elif len(d.candidates):
    st.info(f"No candidates in this view; {len(d.candidates):,} in all.")
elif not d.missing_replays:
    st.success("No challenge candidates: every replayed response matches its attested result or was overturned.")

st.subheader("Challenges")
left, right = st.columns(2)
with left:
    st.markdown("**Over time, by outcome**")
    st.plotly_chart(charts.challenges_over_time(disputes.over_time(d.challenges)))
with right:
    st.markdown("**When, against the window**")
    st.plotly_chart(charts.challenge_timing(d.challenges, d.window.blocks))
rows = disputes.challenge_rows(d, limit=CHALLENGES_SHOWN)
if len(rows):
    st.dataframe(rows, hide_index=True, column_config=LINKS)
    if len(d.challenges) > len(rows):
        st.caption(
            f"The newest {len(rows):,} of {len(d.challenges):,} challenges; every one: `lens disputes --json`, or "
            "the `challenges` table of `lens export parquet`."
        )
else:
    st.info("No challenges indexed.")

st.subheader("Challengers")
if len(d.challengers):
    st.dataframe(
        d.challengers,
        hide_index=True,
        column_config={
            "success_rate": st.column_config.NumberColumn("success rate", format="percent"),
            "right_per_replay": st.column_config.NumberColumn(
                "right per Lens' replay", help="challenges of responses Lens' replay also finds wrong"
            ),
        },
    )
else:
    st.caption("No challengers yet.")

with st.expander(f"Slashes ({len(d.slashes):,})"):
    if len(d.slashes):
        st.dataframe(disputes.slash_rows(d), hide_index=True)
    else:
        st.caption("No OperatorSlashed events from the deployment's slasher are indexed.")

if d.head.note:
    st.caption(md_escape(d.head.note))
