"""The data dictionary: what every table and column the indexer writes means, and its unit.

`load.ensure_schema` stores these as the schema's own comments (DuckDB `COMMENT ON`), so `duckdb_columns()` in a
notebook or the DuckDB CLI shows them; `lens docs readme` renders the README's data dictionary from those comments.
Raw event columns are described from the event ABI (parameter path and Solidity type); the rest are written here.
"""

from __future__ import annotations

import duckdb

from indexer.abi import LAYOUTS, STRUCTS, snake, split_array

# ---- raw event tables ---------------------------------------------------------------------------------------------

COMMON = {
    "chain_id": "EIP-155 id of the chain the log was emitted on",
    "block_number": "block that holds the log",
    "log_index": "position of the log in its block (with chain_id and block_number: the primary key)",
    "tx_hash": "hash of the transaction that emitted the log (0x-hex)",
    "block_time": "timestamp of the block (UTC, seconds)",
    "address": "contract that emitted the log (0x-address, lower case)",
    "topic0": "keccak256 of the event signature (0x-hex): which event and layout this is",
    "layout": "which version of the event's ABI decoded the log ('current' or the date the layout was replaced)",
}

INTENT = {
    "intent_function_text": "the intent's function signature as text, e.g. transfer(address,uint256)",
    "intent_function_name": "function name of the intent's calldata (from its signature)",
    "intent_function_args_json": "the calldata's arguments decoded with that signature (JSON; big integers as "
    "decimal strings)",
    "intent_calldata_error": "why the calldata did not decode with its signature (NULL when it did)",
    "intent_asset": "asset the intent moves: 'ETH', or the token contract's address",
    "intent_amount_wei": "amount the intent moves, in the asset's smallest unit (exact decimal string)",
    "intent_amount_num": "amount in whole units (DOUBLE; filled here for ETH only — tasks.amount_num has tokens)",
    "intent_counterparty": "who receives (or is approved for) the moved amount (0x-address)",
}
EXTRAS = {
    **INTENT,
    "allow": 'the attested result: true when evaluationResult is the canonical abi.encode(true) (or "true")',
    "params_json": "the policy params as UTF-8 JSON text (NULL when the bytes are not UTF-8)",
    "policy_data_json": "the oracle outputs of the task (JSON array; an output that is not JSON stays 0x-hex)",
    "policy_code_hash": "keccak256 of the Rego source (0x-hex); the source itself is in `blobs`",
    "sig_encoding": "how signatureData was encoded: 'nss' (NonSignerStakesAndSignature), 'bn254' or 'nss_struct'",
    "non_signer_ids_json": "operator ids that did not sign (JSON array of 0x-hex)",
    "non_signer_count": "number of operators that did not sign",
    "sig_error": "why signatureData did not decode (NULL when it did)",
    "operator_id": "operator id: keccak256 of the G1 public key (0x-hex)",
}
# The Rego source column is never filled in the row: it is stored once in `blobs`, keyed by policy_code_hash.
BLOB_COLUMNS = {"task_response_policy_task_data_policy"}


def _unit(type_: str) -> str:
    """How a value of a Solidity type is stored."""
    if split_array(type_)[1] or type_.startswith("("):
        return "JSON array (big integers as decimal strings, bytes as 0x-hex)"
    if type_ == "address":
        return "0x-address, lower case"
    if type_ == "bool":
        return "true/false"
    if type_ == "string":
        return "text"
    if type_ == "bytes":
        return "bytes as 0x-hex"
    if type_.startswith("bytes"):
        return "0x-hex"
    bits = int(type_.lstrip("uint") or 256)
    return "exact integer as a decimal string" if bits >= 64 else "integer"


def _walk(type_: str, path: str, column: str, indexed: bool, out: dict[str, str]) -> None:
    """Describe the columns one parameter (or struct field) flattens into, as indexer/decode.py flattens them."""
    elem, suffix = split_array(type_)
    if not suffix and type_ in STRUCTS:
        for name, t in STRUCTS[type_]:
            _walk(t, f"{path}.{name}", f"{column}_{snake(name)}", indexed, out)
        return
    where = " (indexed: from a topic)" if indexed else ""
    if indexed and (type_ in ("string", "bytes") or suffix):
        out[column] = f"`{path}`{where}: keccak256 of the {type_} value (0x-hex)"
        return
    out[column] = f"`{path}` ({type_}){where}: {_unit(type_)}"
    if not suffix and _unit(type_).startswith("exact"):
        out[column + "_num"] = f"`{path}` as a DOUBLE (approximate: for sorting, sums and charts)"


def raw_tables() -> dict[str, tuple[str, dict[str, str]]]:
    """ev_* table → (what one row is, column → description), from the event layouts."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for lay in LAYOUTS:
        if lay.table not in out:
            out[lay.table] = (f"one row per `{lay.event}` log (any of its ABI layouts)", dict(COMMON))
        cols = out[lay.table][1]
        found: dict[str, str] = {}
        for p in lay.params:
            column = snake(p.name)
            column = "ev_" + column if column in COMMON else column
            _walk(p.type, p.name, column, p.indexed, found)
        for c, d in found.items():
            cols.setdefault(c, d)
    for cols in (v[1] for v in out.values()):
        for c in BLOB_COLUMNS & set(cols):
            cols[c] = "the Rego source: always NULL here, stored once in `blobs` under policy_code_hash"
    return out


# ---- derived and bookkeeping tables (written by hand: what they mean is a choice the indexer makes) -----------------

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "tasks": (
        "one row per task: its creation, response, spend and challenge joined (rebuilt from the raw events)",
        {
            "chain_id": "EIP-155 id of the chain",
            "task_id": "task id (bytes32, 0x-hex)",
            "policy_client": "the policy client contract the intent goes through (0x-address)",
            "policy_address": "the policy contract the task was evaluated against (0x-address)",
            "policy_id": "the client's policy id (bytes32, 0x-hex)",
            "created_block": "block of NewTaskCreated (NULL for a task seen only from its response)",
            "created_time": "time of that block (UTC)",
            "created_tx": "transaction of NewTaskCreated (0x-hex)",
            "task_created_block": "the task's own taskCreatedBlock field: the block operator stakes are read at",
            "quorum_threshold_pct": "share of quorum stake that must sign (percent)",
            "quorum_numbers": "quorums asked to sign (0x-hex, one byte per quorum)",
            "intent_from": "who sends the intent's transaction (0x-address)",
            "intent_to": "the contract or account the intent calls (0x-address)",
            "intent_value": "native value the intent sends (wei, exact decimal string)",
            "intent_value_num": "native value the intent sends (ETH, DOUBLE)",
            "intent_data": "the intent's calldata (0x-hex)",
            "intent_chain_id": "chain id the intent is for (BIGINT; NULL when it does not fit)",
            "function_signature": "the intent's function signature as text",
            "function_name": "function name of the intent's calldata",
            "function_args_json": "the calldata's arguments (JSON; big integers as decimal strings)",
            "asset": "asset the intent moves as the policy sees it: 'ETH' or the token's address",
            "amount_wei": "amount moved in the asset's smallest unit (exact decimal string)",
            "amount_num": "amount moved in whole units of the asset (DOUBLE; token decimals read from the chain)",
            "counterparty": "who receives (or is approved for) the amount (0x-address)",
            "responded_block": "block of TaskResponded (or DirectTaskResponded)",
            "responded_time": "time of that block (UTC)",
            "responded_tx": "transaction of the response (0x-hex)",
            "evaluation_result": "the attested evaluation result as signed (0x-hex bytes)",
            "allow": "the attested verdict: true = allowed",
            "response_expire_block": "block from which the attestation can no longer be spent",
            "policy_code_hash": "keccak256 of the Rego source evaluated (0x-hex; source in `blobs`)",
            "entrypoint": "the Rego rule evaluated, e.g. mypolicy.allow",
            "params_json": "the policy params of the evaluated response (JSON text)",
            "policy_data_json": "the oracle outputs of the task (JSON array)",
            "hash_of_non_signers": "the certificate's hash of the non-signers (0x-hex)",
            "non_signer_count": "operators that did not sign the response",
            "signer_count": "operators in the task's quorums that signed",
            "spent_block": "block the attestation was spent in (the intent executed)",
            "spent_time": "time of that block (UTC)",
            "challenged_block": "block of the (first successful, else first) challenge",
            "challenge_success": "true when a challenge proved the response wrong",
            "challenger": "who challenged (0x-address)",
            "status": "created, allowed, denied, expired, spent, challenged or direct_only",
            "latency_respond_blocks": "blocks from creation to response",
            "latency_respond_s": "seconds from creation to response",
            "latency_spend_blocks": "blocks from response to spend",
            "latency_spend_s": "seconds from response to spend",
            "intent_chain_id_exact": "chain id the intent is for (exact decimal string)",
            "intent_signature": "the intent's signature bytes (0x-hex)",
            "entrypoint_source": "where the entrypoint came from: PolicySet, PolicyDeployed, deployment, "
            "entrypoint() (read on chain) or package (the <package>.allow convention)",
            "params_source": "which event's params were evaluated: TaskResponded, DirectTaskResponded or NewTaskCreated",
            "params_error": "why the params cannot be used (not UTF-8 JSON); NULL when they can",
            "asset_decimals": "decimals of the moved asset (18 for ETH; decimals() read from the token)",
            "asset_symbol": "symbol of the moved asset (ETH; symbol() read from the token)",
            "replayed": "true when `lens audit` replayed the task (its `replays` row, copied here; NULL otherwise)",
            "replay_result": "the replay's result: match, mismatch or cannot_replay (copied from `replays`)",
            "replay_allow": "the replay's own verdict (copied from `replays`)",
        },
    ),
    "task_signers": (
        "one row per task and operator in its quorums at taskCreatedBlock",
        {
            "chain_id": "EIP-155 id of the chain",
            "task_id": "task id (0x-hex)",
            "operator_id": "operator id (0x-hex)",
            "operator": "operator address (0x-address)",
            "signed": "true when the operator is not among the response's non-signers",
            "stake_num": "the operator's stake at taskCreatedBlock (DOUBLE, in the stake's smallest unit)",
            "task_block": "the task's created block, or its response's for a direct-only task (copied from tasks)",
            "task_pos": "the task's order key: task_block × 100000 + its NewTaskCreated log index (0 if none)",
            "task_time": "the task's created time (copied from tasks; NULL for a direct-only task)",
        },
    ),
    "operators": (
        "one row per operator: registration, keys, socket, stake and its metadata document",
        {
            "chain_id": "EIP-155 id of the chain",
            "operator": "operator address (0x-address)",
            "operator_id": "operator id: keccak256 of its G1 public key (0x-hex)",
            "pubkey_g1_x": "BLS G1 public key, x (exact decimal string)",
            "pubkey_g1_y": "BLS G1 public key, y (exact decimal string)",
            "socket": "the operator's last announced socket (text as emitted; never rendered as HTML)",
            "metadata_uri": "the operator's last metadata URI",
            "registered_block": "block of its last registration",
            "deregistered_block": "block of its deregistration after that (NULL while registered)",
            "stake": "last known stake (smallest unit, exact decimal string)",
            "stake_num": "last known stake (DOUBLE)",
            "name": "name declared in the metadata document",
            "organisation": "organisation declared in the metadata document",
            "country": "country declared in the metadata document",
            "city": "city declared in the metadata document",
            "latitude": "latitude declared in the metadata document (degrees)",
            "longitude": "longitude declared in the metadata document (degrees)",
            "provider": "hosting provider declared in the metadata document",
            "region": "provider region declared in the metadata document",
            "asn": "autonomous system declared in the metadata document",
            "client_version": "operator software version declared in the metadata document",
            "metadata_error": "why the metadata is missing: the fetch error, or 'not fetched yet' (NULL when fetched)",
        },
    ),
    "operator_stakes": (
        "one row per operator and block where its stake changed",
        {
            "chain_id": "EIP-155 id of the chain",
            "operator_id": "operator id (0x-hex)",
            "block_number": "block of the OperatorStakeUpdate",
            "stake_num": "stake from that block on (DOUBLE, smallest unit)",
        },
    ),
    "policies": (
        "one row per trusted policy contract (the deployment's, the factory's, those tasks were bound to)",
        {
            "chain_id": "EIP-155 id of the chain",
            "policy_address": "policy contract (0x-address)",
            "policy_cid": "IPFS CID of the policy source",
            "schema_cid": "IPFS CID of the params schema",
            "entrypoint": "the Rego rule evaluated, e.g. mypolicy.allow",
            "policy_code_hash": "keccak256 of the Rego source (0x-hex)",
            "version": "policy implementation version",
            "name": "the deployment document's name for it",
        },
    ),
    "policy_versions": (
        "one row per PolicySet of a trusted policy: the params a client set, and the blocks they held",
        {
            "chain_id": "EIP-155 id of the chain",
            "policy_address": "policy contract (0x-address)",
            "client": "policy client that set them (0x-address)",
            "policy_id": "policy id (0x-hex)",
            "block_number": "block of the PolicySet",
            "block_time": "time of that block (UTC)",
            "tx_hash": "transaction of the PolicySet (0x-hex)",
            "sender": "who set them (the client)",
            "params_json": "the params (JSON text)",
            "expire_after": "blocks an attestation stays valid under these params",
            "valid_from_block": "first block these params apply to",
            "valid_to_block": "block of the next PolicySet of this policy and client (NULL: still current)",
        },
    ),
    "challenges": (
        "one row per challenge of a task response",
        {
            "chain_id": "EIP-155 id of the chain",
            "task_id": "task id (0x-hex)",
            "block_number": "block of the challenge",
            "block_time": "time of that block (UTC)",
            "tx_hash": "transaction of the challenge (0x-hex)",
            "challenger": "who challenged (0x-address)",
            "success": "true when the challenge proved the response wrong",
        },
    ),
    "replays": (
        "one row per task replayed by `lens audit` (removed again when a reorg rolls the task back)",
        {
            "chain_id": "EIP-155 id of the chain",
            "task_id": "task id (0x-hex)",
            "replayed_at": "when it was replayed (UTC)",
            "replayed_allow": "Lens' own verdict from the chain's source, params and data",
            "result": "match, mismatch or cannot_replay (against the attested verdict)",
            "reason": "why it cannot be replayed (NULL otherwise)",
            "deny_json": "the policy's deny reasons (JSON array of strings)",
            "sentence": "the verdict explained in one sentence",
        },
    ),
    "operator_hours": (
        "pre-aggregated: one row per operator and hour of task creation (the Operators page's participation)",
        {
            "chain_id": "EIP-155 id of the chain",
            "operator_id": "operator id (0x-hex)",
            "hour": "the hour its tasks were created in (UTC; NULL for direct-only tasks)",
            "eligible": "task_signers rows: tasks it was in the quorum of",
            "signed": "of those, the ones it signed",
            "disputes": "tasks it signed that were challenged",
            "disputes_lost": "tasks it signed that were challenged successfully",
            "last_yes": "order key (task_pos) of its last signed task in the hour",
            "last_no": "order key (task_pos) of its last missed task in the hour",
            "last_signed_block": "block of its last signed task in the hour",
            "last_signed_time": "time of its last signed task in the hour (UTC)",
        },
    ),
    "operator_missed_latency": (
        "pre-aggregated: the response latencies of the tasks each operator missed, counted per value and hour",
        {
            "chain_id": "EIP-155 id of the chain",
            "operator_id": "operator id (0x-hex)",
            "hour": "the hour the tasks were created in (UTC)",
            "latency_s": "seconds from creation to response",
            "tasks": "missed tasks with that latency",
        },
    ),
    "task_hours": (
        "pre-aggregated: tasks per hour of creation by the yes/no facts the Overview counts",
        {
            "chain_id": "EIP-155 id of the chain",
            "hour": "the hour the tasks were created in (UTC; NULL for direct-only tasks)",
            "allow": "the attested verdict (NULL: no response yet)",
            "spent": "the attestation was spent",
            "challenged": "the response was challenged",
            "awaiting": "no response yet",
            "expired": "status is expired",
            "signers": "the task has signer rows (task_signers)",
            "tasks": "tasks with these facts in the hour",
            "first_time": "the earliest created time among them (UTC)",
            "last_time": "the latest created time among them (UTC)",
        },
    ),
    "task_latency_hours": (
        "pre-aggregated: latencies counted per value and hour of task creation (the latency charts)",
        {
            "chain_id": "EIP-155 id of the chain",
            "hour": "the hour the tasks were created in (UTC; NULL for direct-only tasks)",
            "stage": "respond (created → responded) or spend (responded → spent)",
            "signers": "respond: the task has signer rows (NULL for spend)",
            "missing": "respond: operators that did not sign (NULL for spend)",
            "latency_s": "the latency in seconds",
            "tasks": "tasks with that latency",
        },
    ),
    "dispute_tasks": (
        "pre-aggregated: the tasks the Disputes page lists (challenged, or replayed to a mismatch) with its columns",
        {
            "chain_id": "EIP-155 id of the chain",
            "task_id": "task id (0x-hex)",
            "responded_block": "block of the response",
            "responded_time": "time of that block (UTC)",
            "allow": "the attested verdict",
            "challenged": "the response was challenged",
            "replay_result": "the replay's result (copied from `replays`)",
            "replay_allow": "the replay's own verdict (copied from `replays`)",
            "policy_client": "the policy client contract (0x-address)",
            "intent_from": "who sends the intent's transaction (0x-address)",
            "function_name": "function name of the intent's calldata",
            "amount_num": "amount moved in whole units of the asset",
            "asset": "asset the intent moves: 'ETH' or the token's address",
        },
    ),
    "undecodable_logs": (
        "one row per log at a watched address or topic that did not decode: kept raw, never dropped",
        {
            "chain_id": "EIP-155 id of the chain",
            "block_number": "block that holds the log",
            "log_index": "position of the log in its block",
            "tx_hash": "transaction that emitted it (0x-hex)",
            "address": "contract that emitted it (0x-address)",
            "topic0": "its topic0 (0x-hex)",
            "data": "its data, as emitted (0x-hex)",
            "error": "why it did not decode",
        },
    ),
    "blocks": (
        "one row per block the indexer stored a hash of (blocks with logs, and the last of each batch): reorg checks",
        {
            "chain_id": "EIP-155 id of the chain",
            "block_number": "block number",
            "block_hash": "block hash (0x-hex)",
            "parent_hash": "parent block hash (0x-hex; only for the last block of a batch)",
            "block_time": "block timestamp (UTC)",
        },
    ),
    "checkpoints": (
        "one row per watched address ('*' = open topics from any address): how far it is indexed",
        {
            "chain_id": "EIP-155 id of the chain",
            "address": "watched contract (0x-address) or '*'",
            "last_block": "last block fully indexed (written in the same transaction as its rows)",
            "updated_at": "when (UTC)",
            "last_error": "the last error of a run that stopped on one (NULL otherwise)",
        },
    ),
    "meta": (
        "key/value facts about this DB: the deployment indexed, RPC URL, data version, RPC faults met, last reorg",
        {"key": "name of the fact", "value": "its value (text; JSON for structured ones)"},
    ),
    "blobs": (
        "content-addressed texts: the Rego sources of the tasks",
        {"hash": "keccak256 of the content (0x-hex)", "content": "the text (UTF-8)"},
    ),
    "operator_metadata": (
        "one row per operator metadata URI fetched (bounded in time and size)",
        {
            "uri": "the metadata URI as announced on chain",
            "fetched_at": "when it was fetched (UTC)",
            "ok": "true when a JSON object came back",
            "content": "the document (JSON text; NULL when the fetch failed)",
            "error": "why it failed: timeout, too large, not JSON, HTTP status, … (NULL when ok)",
        },
    ),
    "policy_entrypoints": (
        "a policy contract's entrypoint() read by eth_call (cached; used when no trusted event names it)",
        {
            "chain_id": "EIP-155 id of the chain",
            "address": "policy contract (0x-address)",
            "entrypoint": "the value entrypoint() returned",
            "block_number": "block it was read at",
            "error": "why the read failed (NULL when it did not)",
        },
    ),
    "tokens": (
        "a token's decimals() and symbol() read by eth_call (cached)",
        {
            "chain_id": "EIP-155 id of the chain",
            "address": "token contract (0x-address)",
            "decimals": "decimals() of the token",
            "symbol": "symbol() of the token",
            "error": "why the read failed (NULL when it did not)",
        },
    ),
}


# The keys of `meta` the indexer writes (a key/value table: its rows need a dictionary of their own).
META_KEYS = {
    "deployment": "name of the deployment indexed (devnet, ethereum, base, … or the document's name)",
    "chain_id": "EIP-155 id of its chain",
    "deployment_file": "the deployment document it was read from",
    "deployment_json": "the whole deployment document (JSON): contracts, policies, clients, start block",
    "rpc_url": "the JSON-RPC URL indexed from",
    "confirmations": "blocks the indexer stays behind the head",
    "roles": "address → the deployment's names for it (JSON; '*' = open topics from any address)",
    "data_version": "changes on every committed batch (readers invalidate their caches on it)",
    "indexed_head": "the last block a committed batch covered",
    "last_reorg": "the last reorg rolled back: 'rolled back to block N'",
    "rpc_faults": "RPC faults the last run met and got through (JSON: kind → count)",
    "rpc_faults_since": "when that run started (UTC)",
    "aggregates": "version of the pre-aggregated tables when they are complete and kept (absent: the pages scan)",
}


def describe() -> dict[str, tuple[str, dict[str, str]]]:
    """Every table's (description, column → description): raw event tables from the ABI, the rest from TABLES."""
    out = raw_tables()
    for t, (doc, cols) in out.items():
        out[t] = (doc, {**EXTRAS, **cols})  # a parameter's own column wins over a like-named extra
    return {**out, **TABLES}


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con: duckdb.DuckDBPyConnection) -> None:
    """Store the descriptions as the schema's own comments (only those that differ: cheap on every run)."""
    docs = describe()
    have_t = dict(con.execute("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main'").fetchall())
    have_c = {
        (t, c): d
        for t, c, d in con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'main'"
        ).fetchall()
    }
    for table, (doc, cols) in docs.items():
        if table not in have_t:
            continue
        if have_t[table] != doc:
            con.execute(f"COMMENT ON TABLE {table} IS {_sql(doc)}")
        for col, text in cols.items():
            if (table, col) in have_c and have_c[(table, col)] != text:
                con.execute(f'COMMENT ON COLUMN {table}."{col}" IS {_sql(text)}')


def from_comments(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None, str, str, str | None]]:
    """(table, table comment, column, SQL type, column comment) of every table, in schema order."""
    return con.execute(
        """SELECT c.table_name, t.comment, c.column_name, c.data_type, c.comment
           FROM duckdb_columns() c JOIN duckdb_tables() t ON t.table_name = c.table_name AND t.schema_name = c.schema_name
           WHERE c.schema_name = 'main' AND NOT t.internal AND NOT t.temporary ORDER BY c.table_name LIKE 'ev\\_%' ESCAPE '\\', c.table_name, c.column_index"""
    ).fetchall()
