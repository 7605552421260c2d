"""Disputes charts: challenges over time by outcome, and how far into the window each challenge came."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts import _base, empty

OUTCOME_COLORS = {"successful": "#2e9e5b", "unsuccessful": "#d98b2b"}


def challenges_over_time(df: pd.DataFrame) -> go.Figure:
    """Stacked bars of challenges per time bucket, one colour per outcome."""
    if df.empty:
        return empty("no challenges yet")
    fig = go.Figure()
    for outcome, color in OUTCOME_COLORS.items():
        part = df[df["outcome"] == outcome]
        if len(part):
            fig.add_bar(x=part["bucket"], y=part["challenges"], name=outcome, marker_color=color)
    return _base(fig, barmode="stack", yaxis_title="challenges", bargap=0.05)


def challenge_timing(challenges: pd.DataFrame, window_blocks: int, bins: int = 40) -> go.Figure:
    """Blocks from response to challenge, per outcome, against the window (a dashed line where it closes). Binned
    here, so the browser gets `bins` bars per outcome and not one value per challenge (a hundred thousand at scale)."""
    if challenges.empty or challenges["blocks_after_response"].isna().all():
        return empty("no challenges of indexed responses yet")
    after = pd.to_numeric(challenges["blocks_after_response"], errors="coerce")
    known = after.notna()
    edges = np.histogram_bin_edges(after[known].to_numpy(dtype="float64"), bins=bins)
    width = float(edges[1] - edges[0]) if len(edges) > 1 else 1.0
    fig = go.Figure()
    for outcome, color in OUTCOME_COLORS.items():
        mask = known & (challenges["success"].astype(bool) == (outcome == "successful"))
        if mask.any():
            counts, _ = np.histogram(after[mask].to_numpy(dtype="float64"), bins=edges)
            fig.add_bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=counts,
                width=width,
                name=outcome,
                marker_color=color,
                opacity=0.8,
                hovertemplate="%{y:,} challenges %{x:,.0f} blocks after the response<extra>" + outcome + "</extra>",
            )
    fig.add_vline(x=window_blocks, line_dash="dash", line_color="#8c8c8c", annotation_text="window closes")
    return _base(fig, barmode="stack", xaxis_title="blocks after the response", yaxis_title="challenges", bargap=0)
