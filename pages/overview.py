"""Overview page: the deployment, the chain head, and (with an indexed DB) KPIs, decisions over time, latency, latest."""

from __future__ import annotations

import streamlit as st

from app import charts, db, widgets
from app.queries import base, overview
from app.text import md_code, md_escape

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Overview")

state = base.db_state()
deployment, source = base.current_deployment(state.status in ("ok", "empty"))

# --- what Lens is looking at -------------------------------------------------------------------
if deployment is None:
    st.warning(f"No deployment document found (looked at {md_escape(source)}).")
    st.caption("Start a devnet with `lens devnet up`, or point LENS_DEPLOYMENT_FILE at a deployment JSON.")
else:
    head, why = db.cached_head(str(deployment.get("rpc_url") or ""))
    cols = st.columns(4)
    cols[0].metric("Deployment", str(deployment.get("name") or "unnamed"))
    cols[1].metric("Chain id", str(deployment.get("chain_id", "?")))
    cols[2].metric("Head block", f"{head:,}" if head is not None else "unreachable")
    cols[3].metric("Deployed at block", str(deployment.get("deployment_block", deployment.get("start_block", "?"))))
    if head is None:
        st.info(f"Chain head unavailable: {md_escape(why)}. Lens still shows what is indexed.")
    st.caption(f"RPC {md_code(deployment.get('rpc_url') or '—')} · deployment read from {md_code(source)}")

# --- indexed decisions -------------------------------------------------------------------------
if state.status in ("missing", "empty"):
    st.info(f"No indexed decisions yet: {md_escape(state.message)}.")
    if state.hint:
        st.caption(state.hint)
elif state.status == "locked":
    st.warning(f"The database is being written right now: {md_escape(state.message)}. Reload in a moment.")
elif not state.ok:
    st.error(f"Cannot read the database: {md_escape(state.message)}")
else:
    k = db.cached(overview.kpis)
    if k["tasks"] == 0:
        st.info("The database has no tasks yet.")
    else:
        row = st.columns(6)
        row[0].metric("Tasks", f"{k['tasks']:,}")
        row[1].metric("Allowed", f"{k['allow_rate']:.1%}" if k["allow_rate"] is not None else "—")
        row[2].metric("Denied", f"{k['deny_rate']:.1%}" if k["deny_rate"] is not None else "—")
        row[3].metric("Attestations spent", f"{k['spent']:,}")
        row[4].metric(
            "Open challenge window",
            f"{k['open_challenge']:,}",
            help="allowed responses still inside the challenge window",
        )
        row[5].metric("Live operators", f"{k['live_operators']:,}")
        st.caption(
            f"{k['challenged']:,} challenged · {k['awaiting']:,} awaiting a response · {k['expired']:,} expired unspent"
        )

        left, right = st.columns([3, 2])
        with left:
            st.subheader("Decisions over time")
            st.plotly_chart(charts.decisions_over_time(db.cached(overview.decisions_over_time)))
        with right:
            st.subheader("Latency")
            st.plotly_chart(charts.latency_histograms(db.cached(overview.latency_histograms)))

        st.subheader("Latest decisions")
        latest = db.cached(overview.latest_decisions, 25)
        widgets.decision_list(latest)

for name, table in overview.deployment_tables(deployment).items() if deployment else []:
    if len(table):
        with st.expander(f"Deployment {name} ({len(table)})", expanded=(name == "contracts")):
            st.dataframe(table, hide_index=True)
