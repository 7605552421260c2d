"""Policies page: the catalog, highlighted source, params schema with current values, rules, params history."""

from __future__ import annotations

import streamlit as st

from app import db, widgets
from app.queries import base, policies
from app.text import md_escape, short

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Policies")
st.caption(
    "The rules behind every decision, and every change to their params — the biggest decisions hide in configuration."
)

state = base.db_state()
widgets.stop_unless_data(state, "policies")

catalog = db.cached(policies.policy_catalog)
if catalog.empty:
    st.info("No policy has been used or deployed yet.")
    st.stop()

st.dataframe(
    catalog,
    hide_index=True,
    column_order=[
        "name",
        "clients",
        "tasks",
        "deny_rate",
        "entrypoint",
        "version",
        "policy_address",
        "policy_code_hash",
        "policy_cid",
        "schema_cid",
    ],
    column_config={
        "name": "policy",
        "policy_address": "address",
        "policy_cid": "policy CID",
        "schema_cid": "schema CID",
        "policy_code_hash": "code hash",
        "deny_rate": st.column_config.NumberColumn("deny rate", format="percent"),
    },
)

addresses = catalog["policy_address"].tolist()
labels = dict(zip(catalog["policy_address"], catalog["name"]))
wanted = st.query_params.get("policy", "")
index = addresses.index(wanted) if wanted in addresses else 0
chosen = st.selectbox("Policy", addresses, index=index, format_func=lambda a: f"{labels.get(a)} · {short(a)}")
if st.query_params.get("policy") != chosen:
    st.query_params["policy"] = chosen

detail = db.cached(policies.policy_detail, chosen)
info = detail["info"]
st.subheader(md_escape(info.get("name") or "—"), anchor=False)
cols = st.columns(3)
cols[0].metric("Tasks", f"{int(info.get('tasks') or 0):,}")
cols[1].metric("Deny rate", "—" if info.get("deny_rate") is None else f"{float(info['deny_rate']):.1%}")
cols[2].metric("Version", str(info.get("version") or "—"))
st.text(f"entrypoint {info.get('entrypoint') or '—'} · address {info.get('policy_address')}")
if detail["metadata"].get("description"):
    st.text(detail["metadata"]["description"])

st.subheader("Rules")
st.dataframe(policies.rules_summary(detail["metadata"], detail["source"]), hide_index=True)

st.subheader("Params")
versions = detail["versions"]
table = policies.params_table(detail["schema"], versions)
if table.empty:
    st.caption("No params schema and no params versions recorded for this policy.")
else:
    st.dataframe(table, hide_index=True)
    st.caption("One column per client: the value in force now (exact text; wei as decimal strings).")

st.subheader("Params history")
history = policies.version_history(versions)
if history.empty:
    st.caption("No PolicySet indexed for this policy.")
else:
    st.dataframe(
        history,
        hide_index=True,
        column_config={
            "client_name": "client",
            "block_number": st.column_config.NumberColumn("block", format="%d"),
            "block_time": st.column_config.DatetimeColumn("time (UTC)"),
            "tx_hash": "tx",
            "expire_after": st.column_config.NumberColumn("expire after (blocks)", format="%d"),
        },
    )

st.subheader("Source")
if detail["source"] is None:
    st.warning(
        f"The Rego source of this policy is not in the DB (code hash {md_escape(detail['code_hash'] or 'unknown')}). "
        "It is recorded with the first response that uses it."
    )
else:
    st.code(detail["source"], language="rego", line_numbers=True)
    st.caption(f"keccak256 = {md_escape(detail['code_hash'])}")
