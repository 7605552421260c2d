"""Decisions page: the auditor's browser — filters in the URL, sorting and paging in the DB, full exports."""

from __future__ import annotations

import datetime as dt
import math

import streamlit as st

from app import db, settings, widgets
from app.queries import base, decisions

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Decisions")
st.caption("Every decision, filterable; each view is a shareable URL. Exports contain the whole filtered set.")

state = base.db_state()
widgets.stop_unless_data(state, "decisions")

params = st.query_params
current = decisions.filter_from_params(params.to_dict())
facets = db.cached(decisions.facets)
client_label = dict(facets["client"])
policy_label = dict(facets["policy"])
impl_label = dict(facets.get("implementation", []))


def _date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


with st.form("filters"):
    c1, c2, c3 = st.columns(3)
    clients = c1.multiselect(
        "Policy client",
        list(client_label),
        default=[c for c in current.client if c in client_label],
        format_func=lambda a: f"{client_label.get(a, a)}",
    )
    policies = c2.multiselect(
        "Policy",
        list(policy_label),
        default=[p for p in current.policy if p in policy_label],
        format_func=lambda a: f"{policy_label.get(a, a)}",
    )
    sender = c3.text_input("Agent / sender address", value=current.sender, placeholder="0x…")
    c4, c5, c6 = st.columns(3)
    verdicts = c4.multiselect("Verdict", list(decisions.VERDICTS), default=list(current.verdict))
    statuses = c5.multiselect("Lifecycle status", list(decisions.STATUSES), default=list(current.status))
    replays = c6.multiselect(
        "Replay result",
        list(decisions.REPLAY_RESULTS),
        default=list(current.replay),
        format_func=lambda r: r.replace("_", " "),
    )
    c7, c8, c9, c10 = st.columns(4)
    date_from = c7.date_input("From (UTC day)", value=_date(current.time_from))
    date_to = c8.date_input("To (UTC day)", value=_date(current.time_to))
    block_from = c9.number_input("From block", value=current.block_from, min_value=0, step=1)
    block_to = c10.number_input("To block", value=current.block_to, min_value=0, step=1)
    c11, c12, c13, c14 = st.columns(4)
    amount_min = c11.number_input("Min amount", value=current.amount_min, min_value=0.0, format="%.4f")
    amount_max = c12.number_input("Max amount", value=current.amount_max, min_value=0.0, format="%.4f")
    sort = c13.selectbox("Sort by", list(decisions.SORTS), index=list(decisions.SORTS).index(current.sort))
    desc = c14.selectbox("Order", ["newest / largest first", "oldest / smallest first"], index=0 if current.desc else 1)
    implementations = st.multiselect(
        "Decided under implementation",
        list(impl_label),
        default=[i for i in current.implementation if i in impl_label],
        format_func=lambda a: impl_label.get(a, a),
        help="The task manager's or the policy's implementation in force at the decision's block (Governance page).",
    )
    applied = st.form_submit_button("Apply filters", type="primary")

if applied:
    if sender.strip() and base.classify_lookup(sender)[0] != "address":
        st.warning("The sender must be an address (0x + 40 hex digits); that filter was left out.")
    wanted = decisions.filter_from_params(
        {
            "client": ",".join(clients),
            "policy": ",".join(policies),
            "sender": sender,
            "verdict": ",".join(verdicts),
            "status": ",".join(statuses),
            "replay": ",".join(replays),
            "from": date_from.isoformat() if date_from else "",
            "to": date_to.isoformat() if date_to else "",
            "block_from": "" if block_from is None else int(block_from),
            "block_to": "" if block_to is None else int(block_to),
            "amount_min": "" if amount_min is None else amount_min,
            "amount_max": "" if amount_max is None else amount_max,
            "sort": sort,
            "dir": "desc" if desc.startswith("newest") else "asc",
            "implementation": ",".join(implementations),
        }
    )
    params.clear()
    params.update(decisions.filter_to_params(wanted))
    current = wanted

total = db.cached(decisions.decisions_count, current)
page_size = int(settings.get("page_size"))
pages = max(1, math.ceil(total / page_size))
try:
    page = min(max(int(params.get("page", 1)), 1), pages)
except ValueError:
    page = 1

top = st.columns([2, 1, 1, 1])
top[0].metric("Matching decisions", f"{total:,}")
page = int(top[1].number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=page, step=1))
if page != 1:
    params["page"] = str(page)
elif "page" in params:
    del params["page"]
share = decisions.filter_to_params(current) | ({"page": str(page)} if page != 1 else {})
top[2].download_button(
    "Export CSV",
    data=lambda: decisions.export_decisions(share, "csv"),
    file_name="decisions.csv",
    mime="text/csv",
    disabled=total == 0,
    on_click="ignore",
)
top[3].download_button(
    "Export Parquet",
    data=lambda: decisions.export_decisions(share, "parquet"),
    file_name="decisions.parquet",
    mime="application/octet-stream",
    disabled=total == 0,
    on_click="ignore",
)

if total == 0:
    st.info("No decision matches these filters.")
    st.stop()

rows = db.cached(decisions.decisions_page, current, page - 1, page_size)
widgets.decision_list(
    rows,
    extra_columns=("replay", "counterparty", "latency_respond_s"),
    extra_config={
        "policy_address": None,
        "amount_wei": None,
        "latency_respond_s": st.column_config.NumberColumn("response (s)", format="%.0f"),
    },
)
st.caption(
    f"Rows {(page - 1) * page_size + 1:,}–{min(page * page_size, total):,} of {total:,}. "
    "Exports include every matching row with its replay result and explanation sentence."
)
