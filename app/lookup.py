"""Find the task behind what a person holds: a task id, any transaction tied to a task, or a unique prefix of one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

HEX_DIGITS = re.compile(r"^[0-9a-f]*$")
MIN_PREFIX = 6  # hex digits a prefix needs before Lens searches by it (fewer match too much to be meant)
FORMAT = "a task id or transaction hash is 0x followed by 64 hex digits (the 0x may be left out)"


@dataclass(frozen=True)
class Lookup:
    """What a person typed, normalised: kind 'hash' | 'address' | 'prefix' | 'invalid' | 'empty', and why if invalid."""

    kind: str
    query: str
    problem: str = ""


def normalise(text: Any) -> Lookup:
    """Classify lookup text: hex with or without 0x, any case; a malformed one says what is wrong with it."""
    raw = str(text or "").strip()
    if not raw:
        return Lookup("empty", "")
    q = raw.lower()
    digits = q[2:] if q.startswith("0x") else q
    if not HEX_DIGITS.match(digits):
        bad = sorted({c for c in digits if c not in "0123456789abcdef"})
        return Lookup("invalid", raw, f"{raw!r} holds characters that are not hex digits ({' '.join(bad)}); {FORMAT}")
    q = "0x" + digits
    if len(digits) == 64:
        return Lookup("hash", q)
    if len(digits) == 40:
        return Lookup("address", q)
    if len(digits) > 64:
        return Lookup("invalid", raw, f"{raw!r} has {len(digits)} hex digits, more than 64; {FORMAT}")
    if len(digits) < MIN_PREFIX:
        return Lookup(
            "invalid",
            raw,
            f"{raw!r} has {len(digits)} hex digits; {FORMAT} (a unique prefix of at least {MIN_PREFIX} digits works too)",
        )
    return Lookup("prefix", q)


# Every transaction tied to a task, with what it did; events count only from the contract entitled to emit them:
# the vault events (IntentExecuted, IntentDenied) from the task's own policy client, the task manager's
# (AttestationSpent, PolicyDenied, DirectTaskResponded) from the contract that emitted the task's own
# NewTaskCreated or TaskResponded. `challenges` is already derived from the trusted challenge events.
_TX_PARTS: dict[str, str] = {
    "tasks": """
        SELECT task_id, created_tx AS tx_hash, 'created' AS role, 'NewTaskCreated' AS event, created_block AS block_number,
               created_time AS block_time
        FROM tasks WHERE created_tx IS NOT NULL
        UNION ALL
        SELECT task_id, responded_tx, 'responded', 'TaskResponded', responded_block, responded_time
        FROM tasks WHERE responded_tx IS NOT NULL""",
    "ev_intent_executed": """
        SELECT e.task_id, e.tx_hash, 'executed', 'IntentExecuted', e.block_number, e.block_time
        FROM ev_intent_executed e JOIN tasks t ON t.chain_id = e.chain_id AND t.task_id = e.task_id
        WHERE e.address = t.policy_client""",
    "ev_intent_denied": """
        SELECT e.task_id, e.tx_hash, 'refused', 'IntentDenied', e.block_number, e.block_time
        FROM ev_intent_denied e JOIN tasks t ON t.chain_id = e.chain_id AND t.task_id = e.task_id
        WHERE e.address = t.policy_client""",
    "ev_attestation_spent": """
        SELECT e.task_id, e.tx_hash, 'spent', 'AttestationSpent', e.block_number, e.block_time
        FROM ev_attestation_spent e WHERE list_contains($managers, e.address)""",
    "ev_policy_denied": """
        SELECT e.task_id, e.tx_hash, 'denied on chain', 'PolicyDenied', e.block_number, e.block_time
        FROM ev_policy_denied e WHERE list_contains($managers, e.address)""",
    "ev_direct_task_responded": """
        SELECT e.task_id, e.tx_hash, 'responded directly', 'DirectTaskResponded', e.block_number, e.block_time
        FROM ev_direct_task_responded e WHERE list_contains($managers, e.address)""",
    "challenges": """
        SELECT task_id, tx_hash, CASE WHEN success THEN 'challenged successfully' ELSE 'challenged unsuccessfully' END,
               CASE WHEN success THEN 'TaskChallengedSuccessfully' ELSE 'TaskChallengedUnsuccessfully' END,
               block_number, block_time
        FROM challenges""",
}
# the task manager(s), when the DB's meta does not name them: the contracts that emitted the tasks
_MANAGERS = {
    "ev_new_task_created": "SELECT DISTINCT address FROM ev_new_task_created",
    "ev_task_responded": "SELECT DISTINCT address FROM ev_task_responded",
}
MANAGER_ROLES = ("taskManager", "attestationValidator")  # the deployment's contracts that emit task-manager events
# every key a prefix may complete: task ids and the transaction hashes of the parts above
_PREFIX_PARTS = {
    "tasks": "SELECT task_id AS key FROM tasks UNION SELECT created_tx FROM tasks UNION SELECT responded_tx FROM tasks",
    "ev_intent_executed": "SELECT tx_hash FROM ev_intent_executed",
    "ev_intent_denied": "SELECT tx_hash FROM ev_intent_denied",
    "ev_attestation_spent": "SELECT tx_hash FROM ev_attestation_spent",
    "ev_policy_denied": "SELECT tx_hash FROM ev_policy_denied",
    "ev_direct_task_responded": "SELECT tx_hash FROM ev_direct_task_responded",
    "challenges": "SELECT tx_hash FROM challenges",
}
TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"


@dataclass(frozen=True)
class TxRole:
    """One task a transaction is tied to, and what the transaction did for it."""

    task_id: str
    tx_hash: str
    role: str  # 'created' | 'responded' | 'executed' | 'refused' | 'spent' | 'denied on chain' | 'challenged …'
    event: str
    block_number: int | None
    block_time: Any


def _tables(con: Any) -> set[str]:
    return {r[0] for r in con.execute(TABLES_SQL).fetchall()}


def tx_sql(tables: set[str], where: str) -> str | None:
    """The (task, transaction, role) rows over the tables this DB has, filtered by `where` (parameters: $v, and
    $managers, the addresses entitled to emit task-manager events); None when the DB has none of the tables."""
    parts = [sql for t, sql in _TX_PARTS.items() if t in tables]
    if not parts:
        return None
    return "SELECT * FROM (" + "\nUNION ALL\n".join(parts) + f") WHERE {where} ORDER BY block_number, task_id, event"


def managers(con: Any, tables: set[str]) -> list[str]:
    """The task manager's addresses: as the deployment recorded in `meta` names them, else the emitters of tasks."""
    if "meta" in tables:
        row = con.execute("SELECT value FROM meta WHERE key = 'roles'").fetchone()
        try:
            roles = json.loads(row[0]) if row and row[0] else {}
        except ValueError:
            roles = {}
        named = [
            a.lower()
            for a, r in (roles.items() if isinstance(roles, dict) else [])
            if isinstance(r, str) and any(m in r.split(", ") for m in MANAGER_ROLES)
        ]
        if named:
            return named
    sql = " UNION ".join(q for t, q in _MANAGERS.items() if t in tables)
    return [r[0] for r in con.execute(sql).fetchall() if r[0]] if sql else []


def _roles(con: Any, where: str, value: str) -> list[TxRole]:
    tables = _tables(con)
    sql = tx_sql(tables, where)
    if sql is None:
        return []
    params: dict[str, Any] = {"v": value}
    if "$managers" in sql:  # DuckDB refuses a parameter the statement does not use
        params["managers"] = managers(con, tables)
    rows = con.execute(sql, params).fetchall()
    return [TxRole(r[0], r[1], r[2], r[3], None if r[4] is None else int(r[4]), r[5]) for r in rows]


def tx_roles(con: Any, tx_hash: str) -> list[TxRole]:
    """Every (task, role) a transaction hash is tied to, oldest first; [] if none."""
    return _roles(con, "tx_hash = $v", tx_hash)


def task_transactions(con: Any, task_id: str) -> list[TxRole]:
    """Every transaction tied to one task (created, responded, spent, executed, refused, challenged), oldest first."""
    return _roles(con, "task_id = $v", task_id)


def is_task(con: Any, task_id: str) -> bool:
    """Whether a task with this id is indexed."""
    if "tasks" not in _tables(con):
        return False
    return con.execute("SELECT 1 FROM tasks WHERE task_id = ? LIMIT 1", [task_id]).fetchone() is not None


def prefix_matches(con: Any, prefix: str, limit: int = 10) -> list[str]:
    """Task ids and transaction hashes that really start with `prefix` (at most `limit`, sorted)."""
    tables = _tables(con)
    parts = [sql for t, sql in _PREFIX_PARTS.items() if t in tables]
    if not parts:
        return []
    sql = f"SELECT DISTINCT key FROM ({' UNION '.join(parts)}) k WHERE starts_with(key, ?) ORDER BY key LIMIT ?"
    return [r[0] for r in con.execute(sql, [prefix, int(limit)]).fetchall()]


@dataclass(frozen=True)
class Resolved:
    """A lookup resolved: kind 'task' | 'tx' | 'address' | 'none' | 'invalid' | 'empty' | 'ambiguous'."""

    kind: str
    query: str
    task_ids: tuple[str, ...] = ()
    roles: tuple[TxRole, ...] = ()  # for a transaction: what it did for each task
    candidates: tuple[str, ...] = ()  # for a prefix: the keys that start with it
    problem: str = ""


def resolve(con: Any, text: Any) -> Resolved:
    """A task id, transaction hash or unique prefix → the task(s) it names (addresses are left to the caller)."""
    lk = normalise(text)
    if lk.kind in ("empty", "invalid", "address"):
        return Resolved(lk.kind, lk.query, problem=lk.problem)
    if lk.kind == "hash":
        return _resolve_hash(con, lk.query)
    found = prefix_matches(con, lk.query)
    if not found:
        return Resolved("none", lk.query)
    if len(found) > 1:
        return Resolved("ambiguous", lk.query, candidates=tuple(found))
    return _resolve_hash(con, found[0])


def _resolve_hash(con: Any, h: str) -> Resolved:
    if is_task(con, h):
        return Resolved("task", h, (h,))
    roles = tx_roles(con, h)
    if not roles:
        return Resolved("none", h)
    ids = tuple(dict.fromkeys(r.task_id for r in roles))
    return Resolved("tx", h, ids, tuple(roles))


def role_text(role: TxRole) -> str:
    """'executed the intent (IntentExecuted, block 1,234)' — what a transaction did for its task."""
    what = {
        "created": "created the task",
        "responded": "answered it with the operators' signed verdict",
        "responded directly": "answered it on the direct path",
        "executed": "executed the intent in the policy client",
        "refused": "recorded the policy client's refusal",
        "spent": "spent the attestation",
        "denied on chain": "recorded the denial on chain",
    }.get(role.role, role.role)
    block = f", block {role.block_number:,}" if role.block_number is not None else ""
    return f"{what} ({role.event}{block})"
