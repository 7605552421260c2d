"""Streamlit pieces several pages share: the "no data" state and the decision list with links to verdicts."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.text import md_escape

DECISION_LIST_ORDER = [
    "verdict_page",
    "created_time",
    "created_block",
    "client",
    "verdict",
    "status",
    "amount_num",
    "asset",
    "function_name",
    "intent_from",
]


def stop_unless_data(state: Any, what: str) -> None:
    """Show why there is nothing to show (no DB, empty, being written, error) and stop the page; no-op when ok."""
    if state.ok:
        return
    show = {"locked": st.warning, "error": st.error}.get(state.status, st.info)
    show(f"No {what} to show: {md_escape(state.message)}.")
    if state.hint:
        st.caption(state.hint)
    st.stop()


def decision_list(rows: Any, extra_columns: tuple[str, ...] = (), extra_config: dict | None = None) -> None:
    """A table of decisions, each task id a link to its verdict page, amounts in token units."""
    st.dataframe(
        rows,
        hide_index=True,
        column_order=DECISION_LIST_ORDER + list(extra_columns),
        column_config=(extra_config or {})
        | {
            "verdict_page": st.column_config.LinkColumn("task", display_text=r"task=(0x[0-9a-f]{10})"),
            "task_id": None,
            "created_time": st.column_config.DatetimeColumn("created (UTC)"),
            "created_block": st.column_config.NumberColumn("block", format="%d"),
            "policy_client": None,
            "intent_from": "from",
            "function_name": "call",
            "amount_num": st.column_config.NumberColumn("amount", format="%.4f"),
        },
    )
