"""What-if charts: flips over time and per client, one colour per direction."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.charts import VERDICT_COLORS, _base, empty

# the colour of the verdict a flip ends at
DIRECTION_COLORS = {"allowed → denied": VERDICT_COLORS["denied"], "denied → allowed": VERDICT_COLORS["allowed"]}


def flips_over_time(df: pd.DataFrame) -> go.Figure:
    """Stacked bars of flips per time bucket (columns bucket, direction, flips)."""
    if df.empty:
        return empty("no flips")
    fig = go.Figure()
    for direction, color in DIRECTION_COLORS.items():
        part = df[df["direction"] == direction]
        if len(part):
            fig.add_bar(x=part["bucket"], y=part["flips"], name=direction, marker_color=color)
    return _base(fig, barmode="stack", yaxis_title="flips", bargap=0.05)


def flips_by_client(df: pd.DataFrame) -> go.Figure:
    """Horizontal stacked bars of flips per client (columns client_name, allowed → denied, denied → allowed)."""
    if df.empty:
        return empty("no flips")
    fig = go.Figure()
    for direction, color in DIRECTION_COLORS.items():
        fig.add_bar(y=df["client_name"], x=df[direction], name=direction, marker_color=color, orientation="h")
    return _base(fig, barmode="stack", xaxis_title="flips", height=max(200, 60 + 40 * len(df)))
