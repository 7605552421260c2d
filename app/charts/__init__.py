"""Charts: pure functions from frames to plotly figures (shared styling here; one module per domain beside it)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

# Mid-lightness colours keep contrast against both a white and a near-black background.
VERDICT_COLORS = {"allowed": "#2e9e5b", "denied": "#d64545", "awaiting response": "#8c8c8c"}
STAGE_COLORS = {"created → responded": "#3b7dd8", "responded → spent": "#d98b2b"}
GRID = "rgba(128,128,128,0.25)"


def _base(fig: go.Figure, *, height: int = 320, **layout: Any) -> go.Figure:
    """Transparent backgrounds and neutral grid lines, so the Streamlit theme (light or dark) shows through."""
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        **layout,
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID)
    return fig


def empty(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base(fig, height=200)


def decisions_over_time(df: pd.DataFrame) -> go.Figure:
    """Stacked bars of decisions per time bucket, one colour per verdict."""
    if df.empty:
        return empty("no decisions yet")
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        part = df[df["verdict"] == verdict]
        if len(part):
            fig.add_bar(x=part["bucket"], y=part["decisions"], name=verdict, marker_color=color)
    return _base(fig, barmode="stack", yaxis_title="decisions", bargap=0.05)


def latency_histograms(data: dict) -> go.Figure:
    """Overlaid latency histograms (created→responded, responded→spent) from pre-binned counts, with p50/p95 in the legend."""
    bins: pd.DataFrame = data["bins"]
    if bins.empty:
        return empty("no responses yet")
    fig = go.Figure()
    for stage, color in STAGE_COLORS.items():
        part = bins[bins["stage"] == stage]
        if part.empty:
            continue
        p50, p95 = data["quantiles"].get(stage, (None, None))
        label = stage if p50 is None else f"{stage} (p50 {p50:.0f} s, p95 {p95:.0f} s)"
        fig.add_bar(
            x=(part["start_s"] + part["end_s"]) / 2,
            y=part["n"],
            width=part["end_s"] - part["start_s"],
            name=label,
            marker_color=color,
            opacity=0.75,
        )
    return _base(fig, barmode="overlay", xaxis_title="seconds", yaxis_title="tasks")
