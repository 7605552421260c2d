"""Governance page: every watched proxy's implementation, admin and owner, its history, a timeline, the risks."""

from __future__ import annotations

import streamlit as st

from app import db, widgets
from app.charts import governance as charts
from app.queries import base
from app.queries import governance as gq
from app.text import md_escape

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Governance")
st.caption(
    "The trust base over time: which code decided, who could change it, and what changed — proxy upgrades, "
    "initializations, ownership and roles. CLI twin: `lens upgrades --json`."
)

state = base.db_state()
widgets.stop_unless_data(state, "governance")
doc, _source = base.current_deployment(True)
if not doc or not doc.get("contracts"):
    st.info("The DB does not say which contracts it indexed: re-index it with `lens index`.")
    st.stop()

report = db.cached(gq.build_report, doc, str(doc.get("rpc_url") or "") or None)
if report.chain_note:
    st.warning(f"{md_escape(report.chain_note)} — implementations below come from the indexed Upgraded events only.")

upgrades = sum(1 for p in report.proxies for h in p.history if h.event == "Upgraded")
cols = st.columns(3)
cols[0].metric("Proxies watched", len(report.proxies))
cols[1].metric("Upgrades", upgrades)
cols[2].metric("Risks flagged", len(report.risks))

st.subheader("Risks", anchor=False)
risks = gq.risks_frame(report)
if report.chain_note:
    st.info("Risks are read from the chain (slots, code, owners): none can be checked without it.")
elif risks.empty:
    st.success("No risk flagged.")
else:
    st.dataframe(risks, hide_index=True, column_config={"detail": st.column_config.TextColumn(width="large")})
    st.caption(
        "uninitialized_implementation: anyone can call initialize on the implementation contract itself · "
        "storage_layout: a variable moved, changed type or disappeared between consecutive versions · "
        "no_delay_upgrade: an upgrade took effect at once although a timelock exists · "
        "eoa_admin / eoa_owner: a single key, not a contract (multisig, timelock), can change the code or its settings."
    )

st.subheader("Proxies", anchor=False)
st.dataframe(
    gq.proxies_frame(report),
    hide_index=True,
    column_config={"contract": "artifact", "code_hash": "implementation code hash"},
)
st.caption(
    "Implementation from the last indexed Upgraded (no chain to read)."
    if report.chain_note
    else "Implementation and admin read from the ERC-1967 slots (eth_getStorageAt); owner from owner()."
)

st.subheader("Timeline", anchor=False)
history = gq.history_table(report)
st.plotly_chart(charts.governance_timeline(history, db.cached(gq.params_changes)), use_container_width=True)

st.subheader("History", anchor=False)
st.dataframe(history, hide_index=True)

if report.layout_diffs:
    st.subheader("Storage layouts between versions", anchor=False)
    for d in report.layout_diffs:
        verdict = "append-only (safe)" if not d.changes else f"{len(d.changes)} variable(s) moved, retyped or removed"
        st.text(f"{d.old_contract} → {d.new_contract} at {d.proxy}: {verdict}")
        if d.appended:
            st.caption("appended: " + ", ".join(d.appended))
        if d.changes:
            st.dataframe(gq.layout_changes_frame(d), hide_index=True)
