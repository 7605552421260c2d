"""Diversity charts: the operator world map (sized by stake) and stake concentration per dimension."""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts import GRID, _base, empty

OUTLINE = Path(__file__).resolve().parents[2] / "data" / "geo" / "world_110m_lines.json"
PALETTE = ("#3b7dd8", "#d98b2b", "#2e9e5b", "#9c5bd6", "#d64545", "#1fa3a3", "#c2a83e", "#8c8c8c", "#e377c2")


@cache
def _outline() -> tuple[list, list]:
    """Country borders and coastlines as one polyline (None between pieces), from the shipped Natural Earth data."""
    xs: list = []
    ys: list = []
    for line in json.loads(OUTLINE.read_text())["lines"]:
        xs.extend(p[0] for p in line)
        ys.extend(p[1] for p in line)
        xs.append(None)
        ys.append(None)
    return xs, ys


def world_map(ops: pd.DataFrame, color_by: str = "provider") -> go.Figure:
    """Operators on a world outline (equirectangular, drawn locally: no map tiles), marker area ∝ stake, coloured by
    `color_by`; operators at one point are spread slightly so each stays visible."""
    placed = ops.dropna(subset=["lat", "lon"]) if len(ops) else ops
    if placed.empty:
        return empty("no operator has a known location")
    xs, ys = _outline()
    fig = go.Figure()
    fig.add_scatter(
        x=xs,
        y=ys,
        mode="lines",
        line=dict(color="rgba(128,128,128,0.45)", width=0.7),
        hoverinfo="skip",
        showlegend=False,
    )
    # names and places come from operator metadata: plotly reads a few HTML tags in text, so escape them
    placed = placed.copy()
    for col in ("name", "country", "provider", color_by):
        placed[col] = placed[col].astype(str).map(html.escape)
    # several operators in one data centre: a small ring around the point
    placed["k"] = placed.groupby(["lat", "lon"]).cumcount()
    placed["n"] = placed.groupby(["lat", "lon"])["operator"].transform("count")
    angle = 2 * 3.14159 * placed["k"] / placed["n"].clip(lower=1)
    spread = (placed["n"] > 1) * 2.2
    placed["x"] = placed["lon"] + spread * np.cos(angle)
    placed["y"] = placed["lat"] + spread * np.sin(angle)
    biggest = float(placed["stake"].max()) or 1.0
    for i, (value, grp) in enumerate(placed.groupby(color_by, sort=True)):
        fig.add_scatter(
            x=grp["x"],
            y=grp["y"],
            mode="markers",
            name=str(value),
            marker=dict(
                size=(grp["stake"] / biggest) ** 0.5 * 34 + 6,
                color=PALETTE[i % len(PALETTE)],
                line=dict(width=1, color="rgba(255,255,255,0.8)"),
                opacity=0.85,
            ),
            customdata=grp[["name", "country", "provider", "stake_share", "map_point"]].values,
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} · %{customdata[2]}<br>"
            "%{customdata[3]:.1%} of the stake<br>placed at %{customdata[4]}<extra></extra>",
        )
    fig = _base(fig, height=440, legend_title_text=color_by)
    fig.update_xaxes(range=[-180, 180], visible=False, showgrid=False)
    fig.update_yaxes(range=[-58, 84], visible=False, showgrid=False, scaleanchor="x", scaleratio=1)
    return fig


def concentration(entities: pd.DataFrame, quorum_pct: float, title: str) -> go.Figure:
    """One dimension's entities as horizontal bars of stake share, with the line past which one entity alone stops
    quorum (100 − threshold %)."""
    if entities.empty:
        return empty("no operator holds stake")
    df = entities.head(15).assign(name=lambda d: d["name"].astype(str).map(html.escape))
    fig = go.Figure()
    fig.add_bar(
        y=df["name"].astype(str),
        x=df["stake_share"],
        orientation="h",
        marker_color=PALETTE[0],
        customdata=df["operators"],
        hovertemplate="%{y}: %{x:.1%} of the stake · %{customdata} operators<extra></extra>",
        name="stake share",
    )
    stop = max(0.0, 1.0 - float(quorum_pct) / 100.0)
    fig.add_vline(x=stop, line=dict(color="#d64545", dash="dash"), annotation_text=f"stops quorum (>{stop:.0%})")
    fig = _base(
        fig,
        height=max(200, 26 * len(df) + 90),
        title=dict(text=html.escape(title), x=0, font=dict(size=14)),
        xaxis=dict(tickformat=".0%", range=[0, max(1.0, float(df["stake_share"].max()))], gridcolor=GRID),
        yaxis=dict(autorange="reversed"),
        showlegend=False,
    )
    return fig
