"""Operator charts: participation heatmap, latency over time and by missing operators, stake history."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from app.charts import _base, empty

# Operator names come from their own metadata: plotly reads a few HTML tags in text (links among them), so escape.
_esc = html.escape

P50, P95 = "#3b7dd8", "#d98b2b"
# red (missed everything) → amber → green (signed everything); mid-lightness for both themes
PARTICIPATION_SCALE = [[0.0, "#d64545"], [0.5, "#e0a030"], [0.9, "#9ccc65"], [1.0, "#2e9e5b"]]


def participation_heatmap(df: pd.DataFrame) -> go.Figure:
    """Operators × time buckets, coloured by the share of eligible tasks signed (blank where not eligible)."""
    if df.empty:
        return empty("no signer data yet")
    df = df.assign(label=df["label"].astype(str).map(_esc))
    z = df.pivot_table(index="label", columns="bucket", values="participation", aggfunc="first")
    signed = df.pivot_table(index="label", columns="bucket", values="signed", aggfunc="first").reindex_like(z)
    eligible = df.pivot_table(index="label", columns="bucket", values="eligible", aggfunc="first").reindex_like(z)
    text = signed.fillna(0).astype(int).astype(str) + " / " + eligible.fillna(0).astype(int).astype(str)
    fig = go.Figure(
        go.Heatmap(
            z=z.values,
            x=list(z.columns),
            y=list(z.index),
            zmin=0,
            zmax=1,
            colorscale=PARTICIPATION_SCALE,
            text=text.values,
            hovertemplate="%{y}<br>%{x}<br>signed %{text} (%{z:.0%})<extra></extra>",
            colorbar=dict(title="signed", tickformat=".0%"),
        )
    )
    return _base(fig, height=max(260, 28 * len(z.index) + 80), yaxis=dict(autorange="reversed"))


def latency_over_time(df: pd.DataFrame) -> go.Figure:
    """Created → responded latency per time bucket: p50 and p95 lines."""
    if df.empty:
        return empty("no responses yet")
    fig = go.Figure()
    fig.add_scatter(x=df["bucket"], y=df["p50"], name="p50", mode="lines+markers", line_color=P50)
    fig.add_scatter(x=df["bucket"], y=df["p95"], name="p95", mode="lines+markers", line_color=P95)
    return _base(fig, yaxis_title="created → responded (s)")


def latency_by_missing_count(df: pd.DataFrame) -> go.Figure:
    """p50/p95 latency of tasks grouped by how many eligible operators did not sign."""
    if df.empty:
        return empty("no responses yet")
    x = df["missing"].astype(int).astype(str)
    fig = go.Figure()
    fig.add_bar(x=x, y=df["p50"], name="p50", marker_color=P50, customdata=df["tasks"])
    fig.add_bar(x=x, y=df["p95"], name="p95", marker_color=P95, customdata=df["tasks"])
    fig.update_traces(hovertemplate="%{x} missing · %{customdata} tasks<br>%{y:.1f} s<extra></extra>")
    return _base(fig, barmode="group", xaxis_title="operators missing", yaxis_title="seconds")


def latency_by_missing_operator(df: pd.DataFrame) -> go.Figure:
    """p50/p95 latency of the tasks each operator missed."""
    if df.empty:
        return empty("no operator has missed a task")
    df = df.assign(label=df["label"].astype(str).map(_esc))
    fig = go.Figure()
    fig.add_bar(y=df["label"], x=df["p50"], name="p50", orientation="h", marker_color=P50, customdata=df["tasks"])
    fig.add_bar(y=df["label"], x=df["p95"], name="p95", orientation="h", marker_color=P95, customdata=df["tasks"])
    fig.update_traces(hovertemplate="%{y} missing · %{customdata} tasks<br>%{x:.1f} s<extra></extra>")
    return _base(
        fig,
        height=max(240, 30 * len(df) + 80),
        barmode="group",
        xaxis_title="seconds",
        yaxis=dict(autorange="reversed"),
    )


def stake_history(df: pd.DataFrame) -> go.Figure:
    """The operator's stake over blocks (a step line), slashings marked."""
    if df.empty:
        return empty("no stake updates indexed")
    fig = go.Figure()
    fig.add_scatter(x=df["block_number"], y=df["stake"], mode="lines", line_shape="hv", name="stake (ETH)")
    slashed = df[df["slashed"].astype(bool)]
    if len(slashed):
        fig.add_scatter(
            x=slashed["block_number"],
            y=slashed["stake"],
            mode="markers",
            name="slashed",
            marker=dict(color="#d64545", size=9, symbol="x"),
        )
    return _base(fig, height=260, xaxis_title="block", yaxis_title="ETH")
