"""Diversity page: where the signing power sits (country, continent, provider, ASN, organisation, client version),
how few of each could stop quorum, hidden shared dependencies, and what failing some of them would do."""

from __future__ import annotations

import streamlit as st

from app import db, geo, settings, widgets
from app.charts import diversity as charts
from app.errors import LensError
from app.queries import base
from app.queries import diversity as dq
from app.text import md_escape

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Diversity")
st.caption(
    "Operators spread across regions may still depend on one cloud provider, one network or one organisation. "
    "Locations are observed from each operator's socket IP (an offline IP database) where possible, else taken from "
    "what its metadata declares."
)

state = base.db_state()
widgets.stop_unless_data(state, "operators")

chain_id = db.cached(base.meta_int, "chain_id")
resolve = geo.ResolveOptions(
    mode=geo.resolve_mode(str(settings.get("resolve_hostnames")), chain_id),
    timeout_s=float(settings.get("resolve_timeout_s")),
)
report = db.cached(dq.diversity_report, resolve)
if report.operators.empty:
    st.info("No registered operator holds stake yet.")
    st.stop()

c = st.columns(4)
c[0].metric("Registered operators", f"{len(report.operators):,}")
c[1].metric("Stake (ETH)", f"{report.total_stake:,.1f}")
c[2].metric("Quorum threshold", f"{report.quorum_threshold_pct}%", help=report.threshold_source)
provider = report.dimensions["provider"]
c[3].metric("Providers that can stop quorum", f"{provider.nakamoto}", help=provider.sentence)
st.caption(
    f"Name resolution is {report.resolution} (setting `resolve_hostnames`); the threshold is "
    f"{md_escape(report.threshold_source)}."
)

st.subheader("Who could stop quorum", anchor=False)
for d in report.dimensions.values():
    st.markdown(f"- **{md_escape(d.name.replace('_', ' '))}**: {md_escape(d.sentence)}")
st.dataframe(
    dq.dimension_table(report),
    hide_index=True,
    column_config={
        "largest_share": st.column_config.NumberColumn("largest share", format="percent"),
        "hhi": st.column_config.NumberColumn("HHI", format="%.3f", help="sum of squared stake shares"),
        "nakamoto": st.column_config.NumberColumn(
            "Nakamoto", help="fewest entities whose operators' stake, gone, leaves the rest under the threshold"
        ),
        "observed": st.column_config.NumberColumn("observed", help="operators whose value came from their IP"),
        "declared": st.column_config.NumberColumn("declared", help="operators whose value came from their metadata"),
    },
)

st.subheader("Map", anchor=False)
color_by = st.segmented_control(
    "Colour by", ["provider", "country", "organisation", "asn"], default="provider", key="map_color"
)
st.plotly_chart(charts.world_map(report.operators, color_by or "provider"))
st.caption("Marker area ∝ stake. Operators whose IP contradicts their declared place are drawn where the IP is.")

st.subheader("Concentration", anchor=False)
name = (
    st.segmented_control(
        "Dimension",
        list(dq.DIMENSIONS),
        default="provider",
        format_func=lambda d: d.replace("_", " "),
        key="concentration_dim",
    )
    or "provider"
)
d = report.dimensions[name]
st.plotly_chart(charts.concentration(d.entities, report.quorum_threshold_pct, d.sentence))
st.dataframe(
    d.entities,
    hide_index=True,
    column_config={
        "stake": st.column_config.NumberColumn("stake (ETH)", format="%.1f"),
        "stake_share": st.column_config.NumberColumn("stake share", format="percent"),
    },
)

st.subheader("Hidden shared dependencies", anchor=False)
if not report.shared:
    st.caption("No group of operators looks diverse on one dimension while sharing another.")
for s in report.shared:
    (st.warning if s.stops_quorum else st.info)(md_escape(s.sentence))

st.subheader("Declared and observed location", anchor=False)
for _, r in report.disagreements.iterrows():
    st.warning(f"**{md_escape(r['name'])}** {md_escape(r['disagreement'])}")
st.dataframe(
    dq.location_table(report),
    hide_index=True,
    column_config={
        "observed_state": "observed",
        "observed_country": "country (IP)",
        "observed_asn": "network (IP)",
        "observed_provider": "provider (IP)",
        "declared_country": "country (declared)",
        "declared_city": "city (declared)",
        "declared_provider": "provider (declared)",
        "declared_asn": "ASN (declared)",
        "disagreement": "disagreement",
        "observed_detail": "observed (why)",
    },
)

st.subheader("Failure-domain what-if", anchor=False)
st.caption(
    "Pick what fails: does the stake left still reach the quorum threshold, and how many past tasks would not have "
    "reached it without those operators' signatures (from each task's recorded signers and stakes)?"
)
choices = dq.fail_choices(report.operators)
try:
    current = dq.parse_fail(st.query_params.get_all("fail"))
except LensError as err:  # a hand-edited link: say what is wrong, start from nothing failed
    st.warning(f"Ignoring the link's failure domain: {md_escape(str(err))} ({md_escape(err.hint or '')}).")
    current = ()
picked: list[tuple[str, str]] = []
cols = st.columns(5)
for col, dim in zip(cols, ("provider", "country", "organisation", "asn", "operator")):
    default = [v for k, v in current if k == dim and v in choices[dim]]
    for v in col.multiselect(dim, choices[dim], default=default, key=f"fail_{dim}"):
        picked.append((dim, v))
wanted = tuple(picked)
if [f"{k}={v}" for k, v in wanted] != st.query_params.get_all("fail"):
    st.query_params["fail"] = [f"{k}={v}" for k, v in wanted]
if wanted:
    what = db.cached(dq.what_if_report, resolve, wanted)
    m = st.columns(3)
    m[0].metric("Quorum", "holds" if what.quorum_holds else "LOST")
    m[1].metric("Stake left", f"{what.remaining_stake_share:.1%}", help=f"threshold {what.quorum_threshold_pct}%")
    m[2].metric(
        "Past tasks that would have failed",
        "—" if what.past_fail_share is None else f"{what.past_fail_share:.1%}",
        help=f"{what.past_would_fail:,} of {what.past_tasks:,}",
    )
    (st.success if what.quorum_holds else st.error)(md_escape(what.sentence()))
