"""Derived tables (tasks, task_signers, operators, stakes, policies, policy_versions, challenges) from raw events, in SQL."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from indexer import aggregates
from indexer.chainread import Call, fill_entrypoints, fill_tokens

# Raw tables whose rows name a task, and the column holding the task id.
TASK_KEYS = {
    "ev_new_task_created": "task_id",
    "ev_task_responded": "task_response_task_id",
    "ev_attestation_spent": "task_id",
    "ev_direct_task_responded": "task_id",
    "ev_task_challenged_successfully": "task_id",
    "ev_task_challenged_unsuccessfully": "task_id",
    "ev_policy_denied": "task_id",
}
OPERATOR_TABLES = (
    "ev_operator_registered",
    "ev_operator_deregistered",
    "ev_operator_socket_update",
    "ev_operator_metadata_uri_updated",
    "ev_new_pubkey_registration",
    "ev_operator_stake_update",
    "ev_operator_added_to_quorums",
    "ev_operator_removed_from_quorums",
    "ev_operator_slashed",
)
POLICY_TABLES = ("ev_policy_set", "ev_policy_deployed")
CHALLENGE_TABLES = ("ev_task_challenged_successfully", "ev_task_challenged_unsuccessfully")

# Task-lifecycle events count only when the deployment's task manager or attestation validator emitted them (a
# look-alike NewTaskCreated / TaskResponded from any other address is stored raw but never becomes a task);
# a DB without a deployment document (`meta.deployment_json`) trusts every indexed address.
_EMITTER = "(address IN (SELECT address FROM _lifecycle) OR NOT EXISTS (SELECT 1 FROM _lifecycle))"
_FIRST = "QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY block_number, log_index) = 1"
_LAST = "QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY block_number DESC, log_index DESC) = 1"


# Where a task's entrypoint may come from, most trusted first (tasks.entrypoint_source names the one used):
# a PolicySet emitted by the task's own policy contract; a PolicyDeployed of that policy emitted by the
# deployment's policy factory; the deployment document; the policy's own entrypoint() read on chain
# (`policy_entrypoints`, filled by `resolve_from_chain`); the Newton convention `<package>.allow` of the source.
# A PolicySet from any other address never counts: anyone can emit a look-alike naming a known policyId.
TASKS_SQL = f"""
INSERT INTO tasks
WITH k AS (SELECT DISTINCT task_id FROM _touched),
c AS (SELECT * FROM ev_new_task_created WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_id IN (SELECT task_id FROM k) {_FIRST.format(key="task_id")}),
r AS (SELECT * FROM ev_task_responded WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_response_task_id IN (SELECT task_id FROM k)
      {_FIRST.format(key="task_response_task_id")}),
d AS (SELECT * FROM ev_direct_task_responded WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_id IN (SELECT task_id FROM k) {_FIRST.format(key="task_id")}),
s AS (SELECT task_id, block_number, block_time FROM ev_attestation_spent
      WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_id IN (SELECT task_id FROM k) {_FIRST.format(key="task_id")}),
chs AS (SELECT task_id, block_number, log_index, block_time, challenger, TRUE AS success FROM ev_task_challenged_successfully
        WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_id IN (SELECT task_id FROM k)
        UNION ALL
        SELECT task_id, block_number, log_index, block_time, challenger, FALSE FROM ev_task_challenged_unsuccessfully
        WHERE chain_id = $chain AND block_number >= $since AND {_EMITTER} AND task_id IN (SELECT task_id FROM k)),
ch AS (SELECT * FROM chs QUALIFY row_number() OVER (PARTITION BY task_id ORDER BY success DESC, block_number, log_index) = 1),
ps AS (SELECT address, policy_id, policy_entrypoint FROM ev_policy_set WHERE chain_id = $chain AND policy_entrypoint <> ''
       QUALIFY row_number() OVER (PARTITION BY address, policy_id ORDER BY block_number, log_index) = 1),
psa AS (SELECT address, policy_entrypoint FROM ev_policy_set WHERE chain_id = $chain AND policy_entrypoint <> ''
        {_LAST.format(key="address")}),
pd AS (SELECT policy, policy_info_entrypoint FROM ev_policy_deployed WHERE chain_id = $chain AND policy_info_entrypoint <> ''
       AND address IN (SELECT address FROM _factories) {_FIRST.format(key="policy")}),
j AS (
  SELECT k.task_id,
    COALESCE(c.task_policy_client, d.task_policy_client, r.task_response_policy_client) AS policy_client,
    COALESCE(r.task_response_policy_address, c.state_policy_address, d.task_response_policy_address,
             c.task_policy_task_data_policy_address) AS policy_address,
    COALESCE(r.task_response_policy_id, c.state_policy_id, d.task_response_policy_id, c.task_policy_id) AS policy_id,
    c.block_number AS created_block, c.block_time AS created_time, c.tx_hash AS created_tx,
    COALESCE(c.task_task_created_block, d.task_task_created_block) AS task_created_block,
    COALESCE(c.task_quorum_threshold_percentage, d.task_quorum_threshold_percentage) AS quorum_threshold_pct,
    COALESCE(c.task_quorum_numbers, d.task_quorum_numbers) AS quorum_numbers,
    COALESCE(c.task_intent_from, d.task_intent_from, r.task_response_intent_from) AS intent_from,
    COALESCE(c.task_intent_to, d.task_intent_to, r.task_response_intent_to) AS intent_to,
    COALESCE(c.task_intent_value, d.task_intent_value, r.task_response_intent_value) AS intent_value,
    COALESCE(c.task_intent_value_num, d.task_intent_value_num, r.task_response_intent_value_num) / 1e18 AS intent_value_num,
    COALESCE(c.task_intent_data, d.task_intent_data, r.task_response_intent_data) AS intent_data,
    COALESCE(c.task_intent_chain_id, d.task_intent_chain_id, r.task_response_intent_chain_id) AS intent_chain_id_exact,
    COALESCE(c.task_intent_signature, d.task_intent_signature, r.task_response_intent_signature) AS intent_signature,
    COALESCE(c.intent_function_text, d.intent_function_text, r.intent_function_text) AS function_signature,
    COALESCE(c.intent_function_name, d.intent_function_name, r.intent_function_name) AS function_name,
    COALESCE(c.intent_function_args_json, d.intent_function_args_json, r.intent_function_args_json) AS function_args_json,
    -- asset and amount come together from the one row that decoded the call (indexer.calls.moved)
    CASE WHEN c.task_id IS NOT NULL THEN c.intent_asset WHEN d.task_id IS NOT NULL THEN d.intent_asset ELSE r.intent_asset END AS asset,
    CASE WHEN c.task_id IS NOT NULL THEN c.intent_amount_wei WHEN d.task_id IS NOT NULL THEN d.intent_amount_wei
         ELSE r.intent_amount_wei END AS amount_wei,
    COALESCE(c.intent_counterparty, d.intent_counterparty, r.intent_counterparty) AS counterparty,
    COALESCE(r.block_number, d.block_number) AS responded_block,
    COALESCE(r.block_time, d.block_time) AS responded_time,
    COALESCE(r.tx_hash, d.tx_hash) AS responded_tx,
    COALESCE(r.task_response_evaluation_result, d.task_response_evaluation_result) AS evaluation_result,
    COALESCE(r.allow, d.allow) AS allow,
    r.response_certificate_response_expire_block AS response_expire_block,
    COALESCE(r.policy_code_hash, d.policy_code_hash) AS policy_code_hash,
    COALESCE(ps.policy_entrypoint, psa.policy_entrypoint) AS ps_entrypoint,
    pd.policy_info_entrypoint AS pd_entrypoint,
    -- the params of the response that was evaluated (never a fallback to another event's params)
    CASE WHEN r.task_response_policy_config_policy_params IS NOT NULL THEN 'TaskResponded'
         WHEN d.task_response_policy_config_policy_params IS NOT NULL THEN 'DirectTaskResponded'
         WHEN c.state_policy_config_policy_params IS NOT NULL THEN 'NewTaskCreated' END AS params_source,
    COALESCE(r.task_response_policy_config_policy_params, d.task_response_policy_config_policy_params,
             c.state_policy_config_policy_params) AS params_hex,
    CASE WHEN r.task_response_policy_config_policy_params IS NOT NULL THEN r.params_json
         WHEN d.task_response_policy_config_policy_params IS NOT NULL THEN d.params_json
         ELSE TRY(decode(unhex(substr(c.state_policy_config_policy_params, 3)))) END AS params_json,
    COALESCE(r.policy_data_json, d.policy_data_json) AS policy_data_json,
    r.response_certificate_hash_of_non_signers AS hash_of_non_signers,
    r.non_signer_count AS non_signer_count,
    -- a direct-path response spends the attestation on chain whatever the result; only an allow executes
    COALESCE(s.block_number, CASE WHEN d.allow THEN d.block_number END) AS spent_block,
    COALESCE(s.block_time, CASE WHEN d.allow THEN d.block_time END) AS spent_time,
    ch.block_number AS challenged_block, ch.success AS challenge_success, ch.challenger AS challenger,
    c.task_id IS NULL AND d.task_id IS NOT NULL AS direct_only,
    c.task_id IS NOT NULL OR r.task_response_task_id IS NOT NULL OR d.task_id IS NOT NULL AS known
  FROM k
  LEFT JOIN c ON c.task_id = k.task_id
  LEFT JOIN r ON r.task_response_task_id = k.task_id
  LEFT JOIN d ON d.task_id = k.task_id
  LEFT JOIN s ON s.task_id = k.task_id
  LEFT JOIN ch ON ch.task_id = k.task_id
  LEFT JOIN ps ON ps.address = COALESCE(r.task_response_policy_address, c.state_policy_address, d.task_response_policy_address)
   AND ps.policy_id = COALESCE(r.task_response_policy_id, c.state_policy_id, d.task_response_policy_id)
  LEFT JOIN psa ON psa.address = COALESCE(r.task_response_policy_address, c.state_policy_address, d.task_response_policy_address)
  LEFT JOIN pd ON pd.policy = COALESCE(r.task_response_policy_address, c.state_policy_address, d.task_response_policy_address)
),
dep AS (SELECT address, any_value(entrypoint) AS entrypoint FROM _dep_policies WHERE entrypoint <> '' GROUP BY address),
pe AS (SELECT address, any_value(entrypoint) AS entrypoint FROM policy_entrypoints
       WHERE chain_id = $chain AND entrypoint <> '' GROUP BY address),
-- the package line once per distinct source (blobs holds a few policy sources), not once per task
pk AS (SELECT hash, regexp_extract(content, '(?m)^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_.]*)', 1) AS package
       FROM blobs),
tk AS (SELECT address, any_value(decimals) AS decimals, any_value(symbol) AS symbol FROM tokens
       WHERE chain_id = $chain GROUP BY address),
e AS (
  SELECT j.*, dep.entrypoint AS dep_entrypoint, pe.entrypoint AS call_entrypoint, pk.package,
    TRY_CAST(j.intent_chain_id_exact AS BIGINT) AS intent_chain_id,
    CASE WHEN j.asset = 'ETH' THEN 18 ELSE tk.decimals END AS asset_decimals,
    CASE WHEN j.asset = 'ETH' THEN 'ETH' ELSE tk.symbol END AS asset_symbol
  FROM j LEFT JOIN dep ON dep.address = j.policy_address LEFT JOIN pe ON pe.address = j.policy_address
  LEFT JOIN pk ON pk.hash = j.policy_code_hash LEFT JOIN tk ON tk.address = j.asset
  WHERE known
)
SELECT $chain, task_id, policy_client, policy_address, policy_id, created_block, created_time, created_tx,
  task_created_block, quorum_threshold_pct, quorum_numbers, intent_from, intent_to, intent_value, intent_value_num,
  intent_data, intent_chain_id, function_signature, function_name, function_args_json, asset, amount_wei,
  TRY_CAST(amount_wei AS DOUBLE) / pow(10, asset_decimals) AS amount_num,
  counterparty, responded_block, responded_time, responded_tx, evaluation_result, allow, response_expire_block,
  policy_code_hash,
  COALESCE(ps_entrypoint, pd_entrypoint, dep_entrypoint, call_entrypoint,
           CASE WHEN package <> '' THEN package || '.allow' END) AS entrypoint,
  params_json, policy_data_json, hash_of_non_signers,
  non_signer_count, NULL AS signer_count, spent_block, spent_time, challenged_block, challenge_success, challenger,
  CASE WHEN challenge_success THEN 'challenged'
       WHEN direct_only THEN 'direct_only'
       WHEN spent_block IS NOT NULL THEN 'spent'
       WHEN responded_block IS NOT NULL THEN
         CASE WHEN NOT COALESCE(allow, FALSE) THEN 'denied'
              WHEN response_expire_block IS NOT NULL AND $head >= response_expire_block THEN 'expired'
              ELSE 'allowed' END
       ELSE 'created' END AS status,
  responded_block - created_block, epoch(responded_time) - epoch(created_time),
  spent_block - responded_block, epoch(spent_time) - epoch(responded_time),
  intent_chain_id_exact, intent_signature,
  CASE WHEN ps_entrypoint IS NOT NULL THEN 'PolicySet' WHEN pd_entrypoint IS NOT NULL THEN 'PolicyDeployed'
       WHEN dep_entrypoint IS NOT NULL THEN 'deployment' WHEN call_entrypoint IS NOT NULL THEN 'entrypoint()'
       WHEN package <> '' THEN 'package' END AS entrypoint_source,
  params_source,
  CASE WHEN params_hex IS NOT NULL AND params_hex <> '0x' AND params_json IS NULL THEN 'params are not valid UTF-8 JSON'
       WHEN params_json IS NOT NULL AND trim(params_json) <> '' AND NOT COALESCE(TRY(json_valid(params_json)), FALSE)
       THEN 'params are not valid UTF-8 JSON' END AS params_error,
  asset_decimals, asset_symbol,
  NULL AS replayed, NULL AS replay_result, NULL AS replay_allow  -- kept from the replays (aggregates.keep_replays)
FROM e
"""

SIGNERS_SQL = """
INSERT INTO task_signers BY NAME
WITH c AS (SELECT task_id, min(log_index) AS logpos FROM ev_new_task_created
           WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched) GROUP BY ALL),
t AS (
  SELECT tk.task_id, tk.task_created_block AS tcb, r.non_signer_ids_json,
         coalesce(tk.created_block, tk.responded_block) AS blk, tk.created_time AS ctime, coalesce(c.logpos, 0) AS logpos
  FROM tasks tk JOIN ev_task_responded r ON r.chain_id = tk.chain_id AND r.task_response_task_id = tk.task_id
   AND r.block_number = tk.responded_block AND r.block_number >= $since
   AND (r.address IN (SELECT address FROM _lifecycle) OR NOT EXISTS (SELECT 1 FROM _lifecycle))
  LEFT JOIN c ON c.task_id = tk.task_id
  WHERE tk.chain_id = $chain AND tk.task_id IN (SELECT task_id FROM _touched) AND r.non_signer_ids_json IS NOT NULL
),
m AS (SELECT operator_id, operator, block_number, log_index, 1 AS added FROM ev_operator_added_to_quorums WHERE chain_id = $chain
      UNION ALL
      SELECT operator_id, operator, block_number, log_index, 0 FROM ev_operator_removed_from_quorums WHERE chain_id = $chain),
last AS (
  SELECT t.task_id, t.tcb, any_value(t.non_signer_ids_json) AS ns, any_value(t.blk) AS blk,
         any_value(t.ctime) AS ctime, any_value(t.logpos) AS logpos, m.operator_id,
         arg_max(m.operator, m.block_number * 100000 + m.log_index) AS operator,
         arg_max(m.added, m.block_number * 100000 + m.log_index) AS added
  FROM t JOIN m ON m.block_number <= t.tcb
  GROUP BY t.task_id, t.tcb, m.operator_id
),
st AS (SELECT operator_id, block_number, arg_max(stake_num, log_index) AS stake_num FROM ev_operator_stake_update
       WHERE chain_id = $chain GROUP BY operator_id, block_number)
SELECT $chain AS chain_id, l.task_id, l.operator_id, l.operator,
       NOT list_contains(from_json(l.ns, '["VARCHAR"]'), l.operator_id) AS signed, st.stake_num,
       l.blk AS task_block, l.blk * 100000 + l.logpos AS task_pos, l.ctime AS task_time
FROM last l ASOF LEFT JOIN st ON st.operator_id = l.operator_id AND l.tcb >= st.block_number
WHERE l.added = 1
"""

SIGNER_COUNT_SQL = """
UPDATE tasks SET signer_count = s.n
FROM (SELECT task_id, count(*) FILTER (WHERE signed) AS n FROM task_signers
      WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched) GROUP BY task_id) s
WHERE tasks.chain_id = $chain AND tasks.task_id = s.task_id
"""

STAKES_SQL = """
INSERT INTO operator_stakes
SELECT $chain, operator_id, block_number, arg_max(stake_num, log_index) FROM ev_operator_stake_update
WHERE chain_id = $chain GROUP BY operator_id, block_number ORDER BY operator_id, block_number
"""

OPERATORS_SQL = f"""
INSERT INTO operators
WITH reg AS (SELECT operator, operator_id, block_number FROM ev_operator_registered WHERE chain_id = $chain {_LAST.format(key="operator")}),
dereg AS (SELECT operator, block_number FROM ev_operator_deregistered WHERE chain_id = $chain {_LAST.format(key="operator")}),
pk AS (SELECT operator, operator_id, pubkey_g1_x, pubkey_g1_y FROM ev_new_pubkey_registration WHERE chain_id = $chain
       {_FIRST.format(key="operator")}),
ids AS (SELECT operator, operator_id FROM reg UNION SELECT operator, operator_id FROM pk
        UNION SELECT operator, operator_id FROM ev_operator_added_to_quorums WHERE chain_id = $chain),
ops AS (SELECT operator, any_value(operator_id) AS operator_id FROM ids GROUP BY operator),
sock AS (SELECT operator_id, socket FROM ev_operator_socket_update WHERE chain_id = $chain {_LAST.format(key="operator_id")}),
uri AS (SELECT operator, metadata_uri FROM ev_operator_metadata_uri_updated WHERE chain_id = $chain {_LAST.format(key="operator")}),
stk AS (SELECT operator_id, stake, stake_num FROM ev_operator_stake_update WHERE chain_id = $chain {_LAST.format(key="operator_id")})
SELECT $chain, ops.operator, ops.operator_id, pk.pubkey_g1_x, pk.pubkey_g1_y, sock.socket, uri.metadata_uri,
  reg.block_number, CASE WHEN dereg.block_number >= reg.block_number THEN dereg.block_number END,
  stk.stake, stk.stake_num,
  json_extract_string(md.content, '$.name'),
  COALESCE(json_extract_string(md.content, '$.organisation'), json_extract_string(md.content, '$.organization')),
  json_extract_string(md.content, '$.country'), json_extract_string(md.content, '$.city'),
  TRY_CAST(COALESCE(json_extract_string(md.content, '$.latitude'), json_extract_string(md.content, '$.lat')) AS DOUBLE),
  TRY_CAST(COALESCE(json_extract_string(md.content, '$.longitude'), json_extract_string(md.content, '$.lon'),
                    json_extract_string(md.content, '$.lng')) AS DOUBLE),
  COALESCE(json_extract_string(md.content, '$.provider'), json_extract_string(md.content, '$.cloud')),
  json_extract_string(md.content, '$.region'), json_extract_string(md.content, '$.asn'),
  COALESCE(json_extract_string(md.content, '$.client_version'), json_extract_string(md.content, '$.clientVersion')),
  CASE WHEN uri.metadata_uri IS NULL OR uri.metadata_uri = '' THEN NULL
       WHEN md.uri IS NULL THEN 'not fetched yet'
       ELSE md.error END
FROM ops LEFT JOIN reg ON reg.operator = ops.operator LEFT JOIN dereg ON dereg.operator = ops.operator
LEFT JOIN pk ON pk.operator = ops.operator LEFT JOIN sock ON sock.operator_id = ops.operator_id
LEFT JOIN uri ON uri.operator = ops.operator LEFT JOIN stk ON stk.operator_id = ops.operator_id
LEFT JOIN operator_metadata md ON md.uri = uri.metadata_uri
ORDER BY ops.operator
"""

# Policy addresses trusted as policies: the deployment's, the factory's, and those tasks were bound to
# (PolicySet is an open topic: anyone could emit a look-alike from another address).
_TRUSTED = """
  SELECT address FROM _dep_policies
  UNION SELECT policy FROM ev_policy_deployed WHERE chain_id = $chain AND address IN (SELECT address FROM _factories)
  UNION SELECT DISTINCT policy_address FROM tasks WHERE chain_id = $chain AND policy_address IS NOT NULL
"""

POLICIES_SQL = f"""
INSERT INTO policies
WITH trusted AS ({_TRUSTED}),
ps AS (SELECT address, policy_policy_cid, policy_schema_cid, policy_entrypoint, policy_policy_code_hash, policy_version
       FROM ev_policy_set WHERE chain_id = $chain AND address IN (SELECT address FROM trusted) {_LAST.format(key="address")}),
pd AS (SELECT policy, policy_info_policy_cid, policy_info_schema_cid, policy_info_entrypoint, policy_info_policy_code_hash,
       implementation_version FROM ev_policy_deployed WHERE chain_id = $chain AND address IN (SELECT address FROM _factories)
       {_LAST.format(key="policy")}),
addrs AS (SELECT address FROM _dep_policies UNION SELECT address FROM ps UNION SELECT policy FROM pd)
SELECT $chain, a.address, COALESCE(ps.policy_policy_cid, pd.policy_info_policy_cid),
  COALESCE(ps.policy_schema_cid, pd.policy_info_schema_cid), COALESCE(ps.policy_entrypoint, pd.policy_info_entrypoint, dp.entrypoint),
  COALESCE(ps.policy_policy_code_hash, pd.policy_info_policy_code_hash, dp.policy_code_hash),
  COALESCE(ps.policy_version, pd.implementation_version), dp.name
FROM addrs a LEFT JOIN ps ON ps.address = a.address LEFT JOIN pd ON pd.policy = a.address
LEFT JOIN _dep_policies dp ON dp.address = a.address
ORDER BY a.address
"""

POLICY_VERSIONS_SQL = f"""
INSERT INTO policy_versions
WITH trusted AS ({_TRUSTED})
SELECT $chain, address, client, policy_id, block_number, block_time, tx_hash, client AS sender, params_json,
  policy_policy_config_expire_after, block_number,
  lead(block_number) OVER (PARTITION BY address, client ORDER BY block_number, log_index)
FROM ev_policy_set WHERE chain_id = $chain AND address IN (SELECT address FROM trusted)
ORDER BY address, client, block_number, log_index
"""

CHALLENGES_SQL = f"""
INSERT INTO challenges
SELECT chain_id, task_id, block_number, block_time, tx_hash, challenger, TRUE FROM ev_task_challenged_successfully
WHERE chain_id = $chain AND {_EMITTER}
UNION ALL
SELECT chain_id, task_id, block_number, block_time, tx_hash, challenger, FALSE FROM ev_task_challenged_unsuccessfully
WHERE chain_id = $chain AND {_EMITTER}
ORDER BY 3, 2
"""

# A re-derived task keeps the replay result `lens audit` copied onto it (a rolled-back task's replay went with it).
KEEP_REPLAYS_SQL = """
CREATE OR REPLACE TEMP TABLE _kept_replays AS
SELECT task_id, replayed, replay_result, replay_allow FROM tasks
WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched) AND replayed IS NOT NULL
"""
RESTORE_REPLAYS_SQL = """
UPDATE tasks SET replayed = k.replayed, replay_result = k.replay_result, replay_allow = k.replay_allow
FROM _kept_replays k WHERE tasks.chain_id = $chain AND tasks.task_id = k.task_id
"""

STATUS_SQL = """
UPDATE tasks SET status = CASE WHEN $head >= response_expire_block THEN 'expired' ELSE 'allowed' END
WHERE chain_id = $chain AND status IN ('allowed', 'expired') AND response_expire_block IS NOT NULL
  AND (status = 'allowed') = ($head >= response_expire_block)
"""


def _register_factories(con: duckdb.DuckDBPyConnection) -> None:
    """`_factories` and `_lifecycle`: the deployment's policy factories (whose PolicyDeployed count) and its task
    manager and attestation validator (whose task-lifecycle events count), from meta `deployment_json`."""
    try:
        rows = con.execute("SELECT value FROM meta WHERE key = 'deployment_json'").fetchall()
        doc = json.loads(rows[0][0] if rows else "{}")
    except (ValueError, duckdb.Error):
        doc = {}
    contracts = doc.get("contracts") or {} if isinstance(doc, dict) else {}
    addrs = sorted(
        {
            str(a).lower()
            for role, a in contracts.items()
            if role.lower().endswith("policyfactory") and isinstance(a, str)
        }
    )
    lifecycle = sorted(
        {
            str(a).lower()
            for role, a in contracts.items()
            if role.lower().endswith(("taskmanager", "attestationvalidator"))
            and not role.lower().endswith("batchtaskmanager")
            and isinstance(a, str)
        }
    )
    for name, values in (("_factories", addrs), ("_lifecycle", lifecycle)):
        con.register("_addr_arrow", pa.table({"address": pa.array(values, pa.string())}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _addr_arrow")
        con.unregister("_addr_arrow")


def _read_chain(con: duckdb.DuckDBPyConnection, call: Call, chain_id: int) -> int:
    """Read (and cache) entrypoint() of the touched tasks' policies no trusted log or document names, and decimals()
    of the tokens they move; returns how many new answers were cached."""
    wanted = con.execute(
        "SELECT policy_address, min(COALESCE(responded_block, created_block)) FROM tasks WHERE chain_id = ? "
        "AND task_id IN (SELECT task_id FROM _touched) AND policy_address IS NOT NULL "
        "AND (entrypoint_source IS NULL OR entrypoint_source = 'package') GROUP BY policy_address ORDER BY 1",
        [chain_id],
    ).fetchall()
    tokens = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT asset FROM tasks WHERE chain_id = ? AND task_id IN (SELECT task_id FROM _touched) "
            "AND asset LIKE '0x%' AND asset_decimals IS NULL ORDER BY 1",
            [chain_id],
        ).fetchall()
    ]
    return fill_entrypoints(con, call, chain_id, [(a, b) for a, b in wanted]) + fill_tokens(con, call, chain_id, tokens)


def refresh(
    con: duckdb.DuckDBPyConnection,
    chain_id: int,
    head: int,
    task_ids: set[str],
    tables_touched: set[str],
    dep_policies: list[dict],
    force_all: bool = False,
    since: int = 0,
    call: Call | None = None,
) -> None:
    """Rebuild derived rows for the touched tasks and the small tables whose inputs changed (caller's transaction).

    `since`: the first block of the new raw rows. Every event of a task is at or after its first event, so the raw
    scans start at min(since, first block of the touched tasks already known) — zone maps skip older row groups.
    `call`: a JSON-RPC call function; with it, what the logs lack is read from the chain once and cached
    (a policy's entrypoint() when no trusted log names it, a token's decimals() and symbol()).
    """
    p = {"chain": chain_id}
    _register_factories(con)
    dep = pa.table(
        {
            "address": pa.array([d["address"] for d in dep_policies], pa.string()),
            "name": pa.array([d.get("name") for d in dep_policies], pa.string()),
            "entrypoint": pa.array([d.get("entrypoint") for d in dep_policies], pa.string()),
            "policy_code_hash": pa.array([d.get("policy_code_hash") for d in dep_policies], pa.string()),
        }
    )
    con.register("_dep_arrow", dep)
    con.execute("CREATE OR REPLACE TEMP TABLE _dep_policies AS SELECT * FROM _dep_arrow")
    con.unregister("_dep_arrow")
    if force_all or tables_touched & set(OPERATOR_TABLES):
        con.execute("DELETE FROM operators WHERE chain_id = $chain", p)
        con.execute(OPERATORS_SQL, p)
        con.execute("DELETE FROM operator_stakes WHERE chain_id = $chain", p)
        con.execute(STAKES_SQL, p)
    if force_all or tables_touched & set(CHALLENGE_TABLES):
        con.execute("DELETE FROM challenges WHERE chain_id = $chain", p)
        con.execute(CHALLENGES_SQL, p)
    if force_all:
        task_ids = {r[0] for r in con.execute("SELECT task_id FROM tasks WHERE chain_id = $chain", p).fetchall()}
        for table, key in TASK_KEYS.items():
            task_ids |= {
                r[0] for r in con.execute(f"SELECT DISTINCT {key} FROM {table} WHERE chain_id = $chain", p).fetchall()
            }
    if task_ids:
        con.register("_touched_arrow", pa.table({"task_id": pa.array(sorted(task_ids), pa.string())}))
        con.execute("CREATE OR REPLACE TEMP TABLE _touched AS SELECT * FROM _touched_arrow")
        con.unregister("_touched_arrow")
        if since > 0 and not force_all:
            known = con.execute(
                "SELECT min(LEAST(COALESCE(created_block, responded_block, spent_block), "
                "COALESCE(responded_block, created_block, spent_block))) FROM tasks "
                "WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched)",
                p,
            ).fetchone()[0]
            since = since if known is None else min(since, known)
        else:
            since = 0
        # the aggregates' hours these tasks stood in, and their replay results, before their rows go
        aggregates.mark_tasks(con, chain_id, "_touched")
        con.execute(KEEP_REPLAYS_SQL, p)
        con.execute("DELETE FROM tasks WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched)", p)
        con.execute(TASKS_SQL, {**p, "head": head, "since": since})
        if call is not None and _read_chain(con, call, chain_id):
            # the chain answered something the first pass lacked: derive the touched tasks again with it
            con.execute("DELETE FROM tasks WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched)", p)
            con.execute(TASKS_SQL, {**p, "head": head, "since": since})
        con.execute("DELETE FROM task_signers WHERE chain_id = $chain AND task_id IN (SELECT task_id FROM _touched)", p)
        con.execute(SIGNERS_SQL, {**p, "since": since})
        con.execute(SIGNER_COUNT_SQL, p)
        con.execute(RESTORE_REPLAYS_SQL, p)
        con.execute("DROP TABLE _kept_replays")
        aggregates.keep_disputed(con, chain_id, "_touched")
        aggregates.mark_tasks(con, chain_id, "_touched")  # and the hours they stand in now
        con.execute("DROP TABLE _touched")
    # after tasks: the trusted policy addresses include those tasks were bound to
    if force_all or tables_touched & set(POLICY_TABLES):
        con.execute("DELETE FROM policies WHERE chain_id = $chain", p)
        con.execute(POLICIES_SQL, p)
        con.execute("DELETE FROM policy_versions WHERE chain_id = $chain", p)
        con.execute(POLICY_VERSIONS_SQL, p)
    aggregates.mark_status(con, chain_id, head)
    con.execute(STATUS_SQL, {**p, "head": head})
    if aggregates.ready(con):
        aggregates.refresh(con, chain_id)
    else:  # a new DB, or one from a Lens without them: computed once, kept hour by hour from then on
        aggregates.rebuild(con)
