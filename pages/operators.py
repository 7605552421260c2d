"""Operators page: who is signing — stake, participation, streaks, alerts, heatmap, latency; `?operator=0x…` details one."""

from __future__ import annotations

import streamlit as st

from app import db, geo, settings, widgets
from app.charts import operators as charts
from app.queries import base
from app.queries import operators as oq
from app.text import md_escape

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Operators")
st.caption(
    "Who is signing: each operator's stake, its participation in the tasks it was eligible for (registered in the "
    "quorum at the task's reference block), its streaks, slashings and disputes."
)

state = base.db_state()
widgets.stop_unless_data(state, "operators")

recent = int(settings.get("operator_recent_tasks"))
limits = oq.AlertThresholds(float(settings.get("alert_participation_below")), int(settings.get("alert_missed_streak")))
scan = db.cached(oq.operator_scan, recent)  # figures, heatmap and missed-task latency from one pass
figures = scan["figures"]
if figures.empty:
    st.info("No operator has registered yet.")
    st.stop()

wanted = str(st.query_params.get("operator", "")).strip().lower()
PCT = st.column_config.NumberColumn(format="percent")


def _pct(v) -> str:
    return "—" if v is None else f"{float(v):.1%}"


if wanted:
    detail = db.cached(oq.operator_detail, wanted, recent, limits)
    st.markdown("[← all operators](/operators)")
    if detail is None:
        st.warning(f"No operator {md_escape(wanted)} in this DB.")
        st.stop()
    info = detail["info"]
    st.subheader(md_escape(info.get("name") or info["operator"]), anchor=False)
    st.text(f"{info['operator']} · operator id {info['operator_id']}")
    for a in detail["alerts"]:
        st.warning(md_escape(a.message))
    c = st.columns(6)
    c[0].metric("Stake (ETH)", f"{float(info['stake']):,.1f}")
    c[1].metric("Share of quorum stake", _pct(info.get("stake_share")))
    c[2].metric("Participation", _pct(info.get("participation")), help="signed / eligible, all time")
    c[3].metric(f"Last {recent:,} tasks", _pct(info.get("recent_participation")))
    streak = int(info["streak"])
    c[4].metric("Streak", (f"{streak} signed" if streak > 0 else f"{-streak} missed") if streak else "—")
    c[5].metric("Slashed", f"{int(info['slashed'])}×", help=f"{float(info['stake_slashed']):,.1f} ETH of stake lost")
    st.text(
        f"signed {int(info['signed']):,} of {int(info['eligible']):,} eligible tasks · last signed at block "
        f"{info.get('last_signed_block') or '—'} · disputes it was part of: {int(info['disputes'])} "
        f"({int(info['disputes_lost'])} lost)"
    )

    st.subheader("Metadata and location", anchor=False)
    fetched = info.get("metadata_ok")
    st.text(
        f"name {info.get('name') or '—'} · organisation {info.get('organisation') or '—'} · website "
        f"{info.get('website') or '—'} · client {info.get('client_version') or '—'}"
    )
    st.text(
        f"declares {info.get('city') or '—'}, {info.get('country') or '—'} on {info.get('provider') or '—'} "
        f"{info.get('region') or ''} ({info.get('asn') or 'no ASN'}) · socket {info.get('socket') or '—'}"
    )
    resolve = geo.ResolveOptions(
        mode=geo.resolve_mode(str(settings.get("resolve_hostnames")), db.cached(base.meta_int, "chain_id")),
        timeout_s=float(settings.get("resolve_timeout_s")),
    )
    observed = geo.locate(info.get("socket"), resolve)
    st.text(f"observed: {observed.detail}")
    contradiction = geo.disagreement_sentence(info, observed)
    if contradiction:
        st.warning(f"Its metadata {md_escape(contradiction)}.")
    if fetched is None:
        st.caption("No metadata URI announced.")
    elif fetched:
        st.caption(f"Metadata fetched from {md_escape(str(info.get('metadata_uri') or '')[:80])}")
    else:
        st.error(f"Metadata cannot be fetched: {md_escape(str(info.get('metadata_error') or 'unknown'))}")

    st.subheader("Registration and stake", anchor=False)
    st.dataframe(
        detail["registrations"],
        hide_index=True,
        column_config={"block_number": st.column_config.NumberColumn("block", format="%d")},
    )
    st.plotly_chart(charts.stake_history(detail["stakes"]))
    if len(detail["slashings"]):
        st.caption(f"{len(detail['slashings'])} slashings by the deployment's slasher")
        st.dataframe(detail["slashings"], hide_index=True)

    st.subheader("Disputes it was part of", anchor=False)
    if detail["disputes"].empty:
        st.caption("No challenge of a task this operator was eligible for.")
    else:
        st.dataframe(
            detail["disputes"],
            hide_index=True,
            column_config={
                "verdict_page": st.column_config.LinkColumn("task", display_text=r"task=(0x[0-9a-f]{10})"),
                "task_id": None,
                "success": "challenge succeeded",
            },
        )

    st.subheader("Missed tasks", anchor=False)
    missed = detail["missed"]
    if missed.empty:
        st.caption("It signed every task it was eligible for.")
    else:
        st.caption(f"The {len(missed):,} newest tasks it was eligible for and did not sign; each links to its verdict.")
        widgets.decision_list(missed, ("non_signer_count",), {"non_signer_count": "non-signers"})
    st.stop()

# ------------------------------------------------------------------------------------------ all operators
head = oq.headline(figures, limits)
c = st.columns(4)
c[0].metric("Registered operators", f"{head['registered']:,}", help=f"{head['left']} more have left")
c[1].metric("Registered stake (ETH)", f"{head['stake']:,.1f}")
c[2].metric("Median participation", _pct(head["median_participation"]))
c[3].metric("Alerts", f"{head['alerts']:,}")

found = oq.alerts(figures, limits)
if found:
    st.subheader("Alerts", anchor=False)
    for a in found:
        st.warning(md_escape(a.message))
st.caption(
    f"Alerts: participation under {limits.participation_below:.0%} over the last {recent:,} tasks, "
    f"{limits.missed_streak}+ missed in a row, metadata that cannot be fetched (settings `alert_participation_below`, "
    "`alert_missed_streak`, `operator_recent_tasks`)."
)

st.dataframe(
    oq.operator_table(figures, limits),
    hide_index=True,
    column_order=[
        "detail",
        "name",
        "status",
        "stake",
        "stake_share",
        "eligible",
        "signed",
        "participation",
        "recent_participation",
        "streak",
        "last_signed_block",
        "slashed",
        "disputes",
        "alerts",
        "metadata",
        "organisation",
    ],
    column_config={
        "detail": st.column_config.LinkColumn("operator", display_text=r"operator=(0x[0-9a-f]{8})"),
        "stake": st.column_config.NumberColumn("stake (ETH)", format="%.1f"),
        "stake_share": st.column_config.NumberColumn("share", format="percent"),
        "participation": st.column_config.NumberColumn("participation", format="percent"),
        "recent_participation": st.column_config.NumberColumn(f"last {recent:,}", format="percent"),
        "streak": st.column_config.NumberColumn("streak", help="+n signed in a row, −n missed in a row"),
        "last_signed_block": st.column_config.NumberColumn("last signed (block)", format="%d"),
    },
)

st.subheader("Participation over time", anchor=False)
st.plotly_chart(charts.participation_heatmap(scan["heatmap"]))

st.subheader("Latency", anchor=False)
lat = db.cached(oq.latency, False)
t1, t2, t3 = st.tabs(["over time", "by number of missing operators", "by missing operator"])
with t1:
    st.plotly_chart(charts.latency_over_time(lat["over_time"]))
with t2:
    st.plotly_chart(charts.latency_by_missing_count(lat["by_missing_count"]))
with t3:
    st.plotly_chart(charts.latency_by_missing_operator(scan["by_missing_operator"]))
st.caption("Created → responded, p50 and p95 per group.")
