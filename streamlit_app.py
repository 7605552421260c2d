"""Newton Lens dashboard entry: navigation over pages/ and the shared sidebar (deployment, chain, DB freshness)."""

from __future__ import annotations

import streamlit as st

from app import db
from app.queries import base
from app.text import age_text, md_escape

st.set_page_config(page_title="Newton Lens", page_icon=":material/policy:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),  # served at /
    st.Page("pages/verdict.py", title="Verdict", icon=":material/gavel:", url_path="verdict"),
    st.Page("pages/decisions.py", title="Decisions", icon=":material/table_rows:", url_path="decisions"),
    st.Page("pages/policies.py", title="Policies", icon=":material/policy:", url_path="policies"),
    st.Page("pages/whatif.py", title="What-if", icon=":material/science:", url_path="whatif"),
    st.Page("pages/governance.py", title="Governance", icon=":material/account_balance:", url_path="governance"),
    st.Page("pages/disputes.py", title="Disputes", icon=":material/flag:", url_path="disputes"),
    st.Page("pages/operators.py", title="Operators", icon=":material/dns:", url_path="operators"),
    st.Page("pages/diversity.py", title="Diversity", icon=":material/public:", url_path="diversity"),
]
nav = st.navigation(PAGES)

state = base.db_state()
deployment, source = base.current_deployment(state.status in ("ok", "empty"))

with st.sidebar:
    st.caption("NEWTON LENS")
    if deployment:
        st.text(f"Deployment: {deployment.get('name') or 'unnamed'}")
        st.text(f"Chain id: {deployment.get('chain_id', '?')}")
        head, why = (
            db.cached_head(str(deployment.get("rpc_url") or "")) if deployment.get("rpc_url") else (None, "no RPC URL")
        )
        if head is not None:
            st.text(f"Head block: {head:,}")
        else:
            st.caption(f"Chain head unknown: {md_escape(why)}")
    else:
        head = None
        st.caption("No deployment found.")
    if state.ok:
        fresh = db.cached(base.freshness)
        if fresh["last_block"] is not None:
            st.text(f"Indexed to block {int(fresh['last_block']):,}")
            if head is not None and head >= int(fresh["last_block"]):
                st.caption(f"{head - int(fresh['last_block']):,} blocks behind the head")
            age = age_text(fresh["block_time"])
            if age:
                st.caption(f"block mined {age}")
            checked = age_text(fresh["updated_at"])
            if checked:
                st.caption(f"indexer checkpoint written {checked}")
        st.caption(f"DB: {md_escape(state.path)}")
    else:
        st.caption(f"DB: {md_escape(state.message)}")

try:
    nav.run()
finally:
    db.release()  # never hold the DB between reruns: the indexer needs its write slot
