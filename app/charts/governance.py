"""Governance charts: the timeline of proxy upgrades, initializations, admin/owner/role changes beside params changes."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.charts import _base, empty

# Drawn in this order, so an upgrade is on top of the other events of its block.
EVENT_COLORS = {
    "Initialized": "#3b7dd8",
    "AdminChanged": "#d98b2b",
    "RoleGranted": "#2e9e5b",
    "RoleRevoked": "#8c8c8c",
    "OwnershipTransferred": "#7a5cc7",
    "BeaconUpgraded": "#b0569e",
    "Upgraded": "#d64545",
    "params change": "#c9a227",
}
PARAMS_ROW = "params changes (Policies)"


def governance_timeline(history: pd.DataFrame, params: pd.DataFrame) -> go.Figure:
    """One row per proxy (its role) with a marker per governance event, and a row of params changes, by block."""
    if history.empty and params.empty:
        return empty("no governance events indexed yet")
    fig = go.Figure()
    rows = list(dict.fromkeys(history["role"])) if not history.empty else []
    for event, color in EVENT_COLORS.items():
        if event == "params change":
            continue
        part = history[history["event"] == event] if not history.empty else history
        if part.empty:
            continue
        fig.add_scatter(
            x=part["block"],
            y=part["role"],
            mode="markers",
            name=event,
            marker=dict(color=color, size=11 if event == "Upgraded" else 8, symbol="diamond"),
            customdata=part[["value", "tx_hash"]].astype(str).values,
            hovertemplate=f"{event}<br>block %{{x}}<br>%{{customdata[0]}}<br>tx %{{customdata[1]}}<extra></extra>",
        )
    if not params.empty:
        fig.add_scatter(
            x=params["block"],
            y=[PARAMS_ROW] * len(params),
            mode="markers",
            name="params change",
            marker=dict(color=EVENT_COLORS["params change"], size=8, symbol="circle"),
            customdata=params[["client"]].astype(str).values,
            hovertemplate="params change<br>block %{x}<br>client %{customdata[0]}<extra></extra>",
        )
        rows.append(PARAMS_ROW)
    for up in history[history["event"] == "Upgraded"]["block"] if not history.empty else []:
        fig.add_vline(x=up, line_width=1, line_dash="dot", line_color=EVENT_COLORS["Upgraded"])
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(rows)))
    return _base(fig, height=max(240, 60 + 34 * len(rows)), xaxis_title="block")
