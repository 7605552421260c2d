"""Verdict page: one decision (deep link ?task=), looked up by task id, tx hash or address; replay and explanation."""

from __future__ import annotations

import streamlit as st

from app import db, widgets
from app.queries import base, governance, verdict
from app.queries import trust as trust_q
from app.queries import whatif as whatif_q
from app.text import annotated_source, fmt_amount, intent_sentence, md_code, md_escape, parsed_json, rule_tree_text

db.ensure_app_navigation()  # a deep link as the first visit must still get the shared sidebar

st.title("Verdict")
st.caption(
    "Why was this intent allowed or denied? Look up a task id, any transaction tied to it (its creation, the "
    "operators' response, the vault's execution or refusal, the spend of its attestation, a challenge), a unique "
    "prefix of one, or an address — with or without 0x."
)

state = base.db_state()
widgets.stop_unless_data(state, "decisions")

params = st.query_params
initial = params.get("task") or params.get("q") or ""
text = st.text_input("Task id, transaction hash or address", value=initial, placeholder="0x…", key="verdict_lookup")

task_id = None
if text:
    found = db.cached(verdict.find, text)
    kind = found["kind"]
    if kind == "invalid":
        st.warning(
            "That is not a task id, transaction hash or address: "
            + md_escape(found["problem"])
            + " — an address is 0x followed by 40 hex digits."
        )
    elif kind == "none":
        st.info(
            "Nothing indexed matches that task id, transaction hash or address: it may not be indexed yet "
            "(`lens index status` shows the last indexed block)."
        )
    elif kind == "ambiguous":
        st.write(f"{len(found['candidates'])} task ids or transactions start with {md_code(found['query'])}:")
        st.dataframe(
            {"starts with it": [f"/verdict?q={c}" for c in found["candidates"]]},
            hide_index=True,
            column_config={"starts with it": st.column_config.LinkColumn(display_text=r"q=(0x[0-9a-f]{64})")},
        )
    elif kind in ("task", "tx") and len(found["task_ids"]) == 1:
        task_id = found["task_ids"][0]
        if kind == "tx":
            st.caption(f"Transaction {found['query']}: " + "; ".join(found["roles"]) + ".")
    elif kind == "tx":
        st.write(f"That transaction is tied to {len(found['task_ids'])} tasks:")
        st.dataframe(
            {"task": [f"/verdict?task={t}" for t in found["task_ids"]]},
            hide_index=True,
            column_config={"task": st.column_config.LinkColumn("task", display_text=r"task=(0x[0-9a-f]{16})")},
        )
    elif kind == "address":
        if params.get("q") != found["query"]:
            params.clear()
            params["q"] = found["query"]
        shown = len(found["rows"])
        st.subheader(f"{found['total']:,} decisions involve this address")
        if found["total"] > shown:
            st.caption(f"Showing the newest {shown:,}; the Decisions page filters and exports all of them.")
        widgets.decision_list(found["rows"], extra_columns=("counterparty",))

if task_id is None:
    if not text:
        st.info(
            "Enter a task id, a transaction hash or an address above, or open a decision from the Overview or Decisions page."
        )
    st.stop()

if params.get("task") != task_id:
    params.clear()
    params["task"] = task_id

data = db.cached(verdict.verdict, task_id)
t = data["task"]

# --- headline --------------------------------------------------------------------------------------
verdict_word = "awaiting response" if t.get("allow") is None else ("allowed" if t["allow"] else "denied")
replay = db.cached(verdict.explain_task, task_id)
cols = st.columns(4)
cols[0].metric("Attested verdict", verdict_word)
cols[1].metric("Lifecycle", t.get("status") or "—")
cols[2].metric(
    "Amount",
    fmt_amount(t.get("amount_num"), t.get("asset"), data.get("token", "")),
    help=f"exactly {t.get('amount_wei') or '0'} wei",
)
replay_word = {"match": "match", "mismatch": "MISMATCH", "cannot_replay": "cannot replay"}.get(
    replay.get("replay"), "—"
)
cols[3].metric(
    "Independent replay",
    replay_word,
    help="Lens re-evaluated the policy from the chain's own record (source, params, oracle data) and compared.",
)
badges = st.container(horizontal=True)
with badges:
    st.badge(verdict_word, color={"allowed": "green", "denied": "red"}.get(verdict_word, "gray"))
    if replay.get("replay") == "match":
        st.badge("replay: match", icon=":material/check:", color="green")
    elif replay.get("replay") == "mismatch":
        st.badge("replay: mismatch", icon=":material/error:", color="red")
    elif replay.get("replay") == "cannot_replay":
        st.badge("cannot replay", icon=":material/help:", color="orange")
    if t.get("challenge_success"):
        st.badge("successfully challenged", icon=":material/flag:", color="violet")
st.text(intent_sentence(data))
st.caption(f"task {task_id}")
for line in db.cached(governance.decided_under, task_id):  # the trust base in force when it was decided
    st.caption(line)
badge = trust_q.page_badge(task_id, replay.get("replay"))
if badge is not None:  # deferred trust: stake that signed, replay, and where the challenge window stands
    st.markdown(
        f":material/verified_user: **Trust:** {md_escape(badge.line)}",
        help=md_escape(trust_q.non_signers_text(badge)),  # operator names come from metadata anyone can write
    )
became = verdict.outcome(data)
if became["state"] == "challenged":
    st.warning(
        "**Successfully challenged** — " + md_escape(became["text"].removeprefix("successfully challenged: ")),
        icon=":material/flag:",
    )
else:
    st.markdown(f"**What became of it:** {md_escape(became['text'])}")

# --- why: replay, explanation, counterfactual ---------------------------------------------------------
st.subheader("Why")
exp = replay.get("explanation")
if replay["state"] == "no_response":
    st.info(
        "This task has no response yet: the operators have not answered (or the answer is not indexed yet), "
        "so there is nothing to explain or replay."
    )
elif replay["state"] == "cannot_replay":
    st.warning(f"Cannot replay this decision: {md_escape(replay['reason'])}.")
if exp is not None:
    st.text(exp.sentence)
    if replay.get("replay") == "mismatch":
        st.error(
            f"The attested verdict ({verdict_word}) differs from Lens's replay "
            f"({'allowed' if replay.get('replayed_allow') else 'denied'}): the signing quorum attested a wrong result."
        )
    if exp.deny:  # as text, not a table: the reason codes are what people search for and copy
        st.markdown("**Deny reasons:** " + ", ".join(md_code(r) for r in exp.deny))
    decided = verdict.failing_conditions(exp, decisive=True)
    if len(decided):
        st.markdown("**What decided the verdict** — the first condition that failed, with its values")
        st.dataframe(decided, hide_index=True)
    passed = verdict.failing_conditions(exp, decisive=False)
    if len(passed):
        with st.expander(
            f"Checks that passed ({len(passed)}): rules evaluated that did not fire, and the condition that kept "
            "each off"
        ):
            st.dataframe(passed, hide_index=True)
    unreached = verdict.unreached_rules(exp)
    if len(unreached):
        with st.expander(f"Never reached ({len(unreached)}): rule bodies this evaluation did not need"):
            st.dataframe(unreached, hide_index=True)
    cfs = verdict.counterfactuals(exp)
    st.markdown("**Counterfactual**")
    if len(cfs):
        st.dataframe(cfs, hide_index=True)
    else:
        st.caption(exp.counterfactual_note or "No single-param change flips this verdict.")
    st.markdown(
        f"[What if? Re-run this policy's history with that change →]({whatif_q.whatif_link(t, exp.counterfactuals)})"
    )
    with st.expander("Rule tree"):
        st.code(rule_tree_text(exp.rule_tree) or "(no rule tree)", language=None)
    if data.get("source"):
        with st.expander("Policy source — ✗ failing condition, • line reached", expanded=not t.get("allow")):
            st.code(annotated_source(data["source"], exp.lines_reached, exp.lines_failed), language=None)
if data.get("source") is None:
    st.warning(
        f"The policy source is missing from the DB (code hash {md_escape(data.get('code_hash') or 'unknown')}): "
        "Lens cannot show or replay it."
    )

# --- the facts ------------------------------------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.subheader("Intent")
    st.dataframe(verdict.intent_facts(data), hide_index=True)
    st.subheader("Lifecycle")
    txs = verdict.transactions_table(data)
    if len(txs):
        st.dataframe(txs, hide_index=True, column_config={"block": st.column_config.NumberColumn("block", format="%d")})
    st.dataframe(
        verdict.timeline(data),
        hide_index=True,
        column_config={
            "block": st.column_config.NumberColumn("block", format="%d"),
            "time": st.column_config.DatetimeColumn("time (UTC)"),
        },
    )
with right:
    st.subheader("Policy")
    st.dataframe(verdict.policy_facts(data), hide_index=True)
    st.markdown("**Params in force**")
    st.json(parsed_json(t.get("params_json"), {}), expanded=True)
    st.markdown("**Policy data (oracle output)**")
    if t.get("policy_data_json") is None:
        st.caption("No policy data recorded (no response yet).")
    else:
        st.json(parsed_json(t.get("policy_data_json"), []), expanded=True)

st.subheader("Attested result and quorum")
if t.get("responded_block") is None:
    st.info("No attested result yet.")
else:
    q = st.columns(4)
    q[0].metric("evaluationResult", "allow" if t.get("allow") else "deny", help=str(t.get("evaluation_result")))
    q[1].metric("Quorum threshold", f"{int(t.get('quorum_threshold_pct') or 0)}%")
    q[2].metric("Signers", f"{int(t.get('signer_count') or 0)}")
    q[3].metric("Non-signers", f"{int(t.get('non_signer_count') or 0)}")
    signers = data.get("signers")
    if signers is not None and len(signers):
        st.dataframe(
            signers, hide_index=True, column_config={"stake_num": st.column_config.NumberColumn("stake", format="%.2f")}
        )
    st.caption(f"hash of non-signers {md_escape(t.get('hash_of_non_signers'))}")
