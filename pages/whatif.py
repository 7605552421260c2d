"""What-if page: re-run a policy's history under other params or another source; the flips, shareable by URL."""

from __future__ import annotations

import streamlit as st

from app import db, settings, widgets
from app.charts import whatif as charts
from app.engine import whatif as engine
from app.engine.thread import on_engine_thread
from app.errors import LensError
from app.queries import base, whatif
from app.text import md_escape
from app.whatif_runs import run_paged

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("What-if")
st.caption(
    "What would have happened under other params or another policy version? Every recorded decision is re-evaluated "
    "with its own intent and oracle data, unchanged (the baseline) and changed; the flips are what the change decides."
)

state = base.db_state()
widgets.stop_unless_data(state, "decisions")

qp = st.query_params
catalog = db.cached(whatif.policies)
if catalog.empty:
    st.info("No policy has answered decisions yet.")
    st.stop()

addresses = list(catalog["policy_address"])
wanted = qp.get("policy") or ""
if wanted:
    try:
        wanted = db.cached(whatif.resolve_policy, wanted)["policy_address"]
    except LensError as err:
        st.warning(f"{md_escape(err)}. Pick a policy below.")
        wanted = ""
left, right = st.columns(2)
policy = left.selectbox(
    "Policy",
    addresses,
    index=addresses.index(wanted) if wanted in addresses else 0,
    format_func=lambda a: whatif.policy_label(whatif.policy_row(catalog, a)),
    key="wi_policy",
)
row = whatif.policy_row(catalog, policy)
client_rows = db.cached(whatif.clients, policy)
client_label = {"": "every client of the policy"} | {
    c: f"{n} — {int(k):,} decisions"
    for c, n, k in zip(client_rows["client"], client_rows["name"], client_rows["decisions"])
}
url_client = (qp.get("client") or "").lower() if qp.get("policy") and wanted == policy else ""
client = right.selectbox(
    "Client",
    list(client_label),
    index=list(client_label).index(url_client) if url_client in client_label else 0,
    format_func=lambda c: client_label[c],
    key="wi_client",
)

schema = whatif.schema_of(row)
start = db.cached(whatif.params_in_force, policy, client)
from_url = whatif.Scenario(policy=policy, client=client)
if wanted == policy and url_client == client:
    try:
        from_url = whatif.scenario_from_query(qp.to_dict(), schema, policy)
    except LensError as err:
        st.warning(f"The URL's scenario is not valid: {md_escape(err)}.")
fields = whatif.form_fields(schema, start, from_url.overrides)

mode = st.radio("What to change", ["Params", "Rego source"], horizontal=True, key="wi_mode")
raw: dict = {}
source_text, entrypoint = "", ""
with st.form("wi_form"):
    if mode == "Params":
        who = client_label[client] if client else "the latest decision's client"
        st.caption(
            f"The form starts at the params in force ({md_escape(who)}). A value you change is set on top of each "
            "decision's own recorded params; values are checked against the policy's params schema."
        )
        if not schema:
            st.caption("No params schema is known for this policy: values are read as JSON.")
        cols = st.columns(2)
        for i, f in enumerate(fields):
            key = f"wi_p_{policy}_{client}_{f.key}"
            with cols[i % 2]:
                if f.kind == "boolean":
                    raw[f.key] = st.checkbox(f.label, value=f.flag, help=f.help or None, key=key)
                elif f.kind == "array":
                    raw[f.key] = st.text_area(f.label, value=f.text, help=f.help or None, key=key, height=110)
                else:
                    raw[f.key] = st.text_input(f.label, value=f.text, help=f.help or None, key=key)
                if f.kind == "wei":
                    st.caption(md_escape(whatif.wei_shown(raw[f.key]) or "not an amount: wei digits or e.g. 12.5 ETH"))
    else:
        recorded = db.cached(whatif.policy_source, policy)
        source_text = st.text_area(
            "Rego source (replaces the recorded one for every decision)",
            value=st.session_state.get(f"wi_source_{policy}", recorded),
            height=420,
            key=f"wi_src_{policy}",
        )
        entrypoint = st.text_input("Entrypoint", value=str(row.get("entrypoint") or ""), key=f"wi_entry_{policy}")
    b1, b2 = st.columns(2)
    block_from = b1.number_input("From block", value=from_url.from_block, min_value=0, step=1)
    block_to = b2.number_input("To block", value=from_url.to_block, min_value=0, step=1)
    submitted = st.form_submit_button("Run what-if", type="primary")

scenario = None
if submitted:
    blocks = dict(
        from_block=int(block_from) if block_from is not None else None,
        to_block=int(block_to) if block_to is not None else None,
    )
    if mode == "Params":
        values, errors = whatif.parse_form(schema, fields, raw)
        for key, message in errors.items():
            st.error(f"{key}: {message}")
        if not errors:
            overrides = whatif.overrides_from_form(schema, start, values)
            scenario = whatif.Scenario(policy=policy, client=client, overrides=overrides, **blocks)
    else:
        try:
            on_engine_thread(engine.check_inputs, engine.Change(source=source_text))
            scenario = whatif.Scenario(
                policy=policy,
                client=client,
                source=source_text,
                entrypoint=entrypoint if entrypoint != row.get("entrypoint") else None,
                **blocks,
            )
            st.session_state[f"wi_source_{policy}"] = source_text
        except engine.PolicyParseError as err:
            pr = err.problem
            st.error(f"The source does not parse at line {pr.line}, column {pr.col}: {pr.message}")
            st.code(whatif.source_excerpt(source_text, pr.line), language=None)
        except LensError as err:
            st.error(str(err))
    if scenario is not None:
        qp.from_dict({**scenario.to_query(), "run": "1"})
elif st.session_state.get("wi_cancel"):
    qp["run"] = "0"
    st.info("Cancelled: nothing was kept. Run it again with the button above.")
elif qp.get("run") == "1" and wanted == policy and url_client == client:
    scenario = from_url  # a shared link: run what it says

if scenario is None:
    last = st.session_state.get("wi_last")
    if last is None or last[0].policy != policy or last[0].client != client:
        st.info("Change a param (or the source) and press Run: the flips against the baseline appear here.")
        st.stop()
    scenario = last[0]

results = st.session_state.setdefault("wi_results", {})
if scenario not in results:
    total = db.run_short(whatif.count_decisions, scenario)
    if not total:
        st.info("No answered decisions match this policy, client and block range.")
        st.stop()
    bar = st.progress(0.0, text=f"re-evaluating {total:,} decisions …")
    st.button("Cancel", key="wi_cancel", help="Stops the workers at once; nothing is kept.")

    def tick(done: int, flips: int) -> None:
        bar.progress(min(done / total, 1.0), text=f"{done:,} of {total:,} decisions · {flips:,} flips so far")

    limits = engine.Limits(
        settings.get("eval_timeout_ms"), settings.get("whatif_budget_s"), settings.get("eval_memory_mb")
    )
    try:
        # page by page (the page only reads the baseline cache; `lens whatif` fills it)
        with engine.WhatIfPool(engine.workers_for(total), limits.memory_mb) as pool:
            run = run_paged(db.run_short, None, scenario, pool, limits, settings.get("whatif_page"), on_tick=tick)
    except LensError as err:
        bar.empty()
        st.error(str(err))
        if err.hint:
            st.caption(err.hint)
        st.stop()
    bar.empty()
    results.clear()  # one result per session: a what-if over many decisions holds their flips
    results[scenario] = (run.result, run.facts, run.seconds)
st.session_state["wi_last"] = (scenario,)
result, facts, seconds = results[scenario]

# --- the flips ---------------------------------------------------------------------------------------
names = db.cached(whatif.client_names, policy)
flips = whatif.flips_frame(result, facts, names)
per_client = whatif.by_client(flips)
to_deny, to_allow = whatif.flip_counts(result)
m = st.columns(5)
m[0].metric("Decisions re-run", f"{result.decisions:,}")
m[1].metric("Allowed → denied", f"{to_deny:,}")
m[2].metric("Denied → allowed", f"{to_allow:,}")
m[3].metric("Baseline mismatches", f"{len(result.baseline_mismatches):,}")
m[4].metric("Decisions / s", f"{result.decisions / seconds:,.0f}" if seconds > 0 else "—")
st.caption(whatif.baseline_sentence(result, facts))
if result.vm_disagreements:
    st.warning(
        f"regorus' VM disagreed with its interpreter on {result.vm_disagreements:,} of {result.vm_checked:,} checked "
        "decisions; those policies were re-run on the interpreter, and the figures here are its."
    )
if result.errors:
    st.warning(f"{len(result.errors):,} decisions could not be evaluated, e.g.: {md_escape(result.errors[0][1])}")

st.subheader("Flips over time")
st.plotly_chart(charts.flips_over_time(whatif.over_time(flips)), width="stretch")
c1, c2 = st.columns(2)
with c1:
    st.subheader("Per client")
    st.plotly_chart(charts.flips_by_client(per_client), width="stretch")
with c2:
    st.subheader("Per agent")
    st.dataframe(whatif.by_agent(flips), hide_index=True)
st.subheader("Deny reasons that appear or disappear")
changes = whatif.reason_changes(result)
if len(changes):
    st.dataframe(changes, hide_index=True)
else:
    st.caption("No decision gains or loses a deny reason.")

st.subheader("Flipped decisions")
if len(flips):
    st.dataframe(
        flips.head(500),
        hide_index=True,
        column_order=[
            "verdict_page",
            "created_time",
            "created_block",
            "client_name",
            "agent",
            "direction",
            "deny_added",
            "deny_removed",
        ],
        column_config={
            "verdict_page": st.column_config.LinkColumn("task", display_text=r"task=(0x[0-9a-f]{10})"),
            "created_time": st.column_config.DatetimeColumn("created (UTC)"),
            "created_block": st.column_config.NumberColumn("block", format="%d"),
            "client_name": "client",
            "deny_added": "deny reasons added",
            "deny_removed": "deny reasons removed",
        },
    )
    if len(flips) > 500:
        st.caption(f"Showing the first 500 of {len(flips):,} flips; the exports hold all of them.")
    e1, e2 = st.columns(2)
    e1.download_button(
        "Export all flips (CSV)", whatif.export_flips(flips, "csv"), "flips.csv", "text/csv", on_click="ignore"
    )
    e2.download_button(
        "Export all flips (Parquet)",
        whatif.export_flips(flips, "parquet"),
        "flips.parquet",
        "application/octet-stream",
        on_click="ignore",
    )
else:
    st.success("No decision flips: the change allows and denies exactly what the baseline does.")
