"""Hand-written Newton event logs (encoded by eth-abi, the reference encoder) put through the real decode → load →
derive path into a DuckDB file: an oracle for derived rows and replays that the engine did not produce."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from eth_abi import encode
from eth_utils import keccak

from devnet.emitter import encode_event
from indexer import derive, load
from indexer.abi import topic0_of
from indexer.decode import TABLES, UNDECODABLE_COLUMNS, decode_logs

CHAIN = 31337
TASK_MANAGER = "0x" + "7a" * 20
VALIDATOR = "0x" + "7b" * 20
FACTORY = "0x" + "fa" * 20
POLICY = "0x" + "50" * 20
CLIENT = "0x" + "c1" * 20
AGENT = "0x" + "a1" * 20
TOKEN = "0x" + "3c" * 20
ETH = 10**18
ROOT = Path(__file__).resolve().parents[1]


def policy_source(name: str) -> bytes:
    """The Rego source of a local policy, as the bytes a TaskResponded carries."""
    return (ROOT / "data" / "policies" / name / "policy.rego").read_bytes()


def call(sig: str, types: list[str], values: list) -> bytes:
    """Calldata: the selector of `sig` then the eth-abi encoding of the values."""
    return keccak(text=sig)[:4] + encode(types, values)


def intent(to: str, value: int = 0, data: bytes = b"", sig: str = "", chain_id: int = CHAIN, frm: str = AGENT) -> tuple:
    """An Intent tuple (from, to, value, data, chainId, functionSignature)."""
    return (frm, to, value, data, chain_id, sig.encode())


@dataclass
class Chain:
    """Logs in block order; `derive(path)` writes them to a DB through the indexer's own decode, load and derive."""

    logs: list[dict] = field(default_factory=list)
    block: int = 100
    factories: tuple[str, ...] = (FACTORY,)

    def emit(self, address: str, event: str, values: dict, block: int | None = None) -> None:
        """Append one log of the current layout of `event`, emitted by `address`."""
        topics, data = encode_event(topic0_of(event), values)
        self.block = block if block is not None else self.block + 1
        n = len(self.logs)
        self.logs.append(
            {
                "address": address,
                "topics": topics,
                "data": "0x" + data.hex(),
                "blockNumber": hex(self.block),
                "blockHash": "0x" + keccak(text=f"block{self.block}").hex(),
                "logIndex": hex(n),
                "transactionHash": "0x" + keccak(text=f"tx{n}").hex(),
                "blockTimestamp": hex(1_700_000_000 + self.block * 2),
            }
        )

    # --- Newton events -----------------------------------------------------------------------------

    def created(self, task_id: bytes, it: tuple, params: bytes, policy: str = POLICY, policy_id: bytes = b"") -> None:
        """NewTaskCreated from the task manager."""
        task = (task_id, CLIENT, self.block, 67, it, b"\x99" * 65, b"{}", b"\x00", 1_700_000_000)
        state = (policy, policy_id or keccak(b"pid"), (params, 100))
        self.emit(TASK_MANAGER, "NewTaskCreated", {"taskId": task_id, "task": task, "state": state})

    def response(
        self,
        task_id: bytes,
        it: tuple,
        allow: bool,
        source: bytes,
        params: bytes,
        oracle: dict,
        policy: str = POLICY,
        policy_id: bytes = b"",
    ) -> tuple:
        """The TaskResponse tuple of a quorum-signed result (abi.encode(bool))."""
        pid = policy_id or keccak(b"pid")
        pdata = [(b"{}", json.dumps(oracle).encode(), "0x" + "22" * 20, 10**6)]
        return (
            task_id,
            CLIENT,
            pid,
            policy,
            it,
            b"\x99" * 65,
            encode(["bool"], [allow]),
            (pid, policy, source, pdata),
            (params, 100),
            1_700_000_000,
        )

    def responded(
        self, task_id: bytes, it: tuple, allow: bool, source: bytes, params: bytes, oracle: dict, **kw
    ) -> None:
        """TaskResponded from the task manager."""
        tr = self.response(task_id, it, allow, source, params, oracle, **kw)
        cert = (self.block + 1, self.block + 1000, b"\x00" * 32, b"")
        self.emit(TASK_MANAGER, "TaskResponded", {"taskResponse": tr, "responseCertificate": cert})

    def direct(self, task_id: bytes, it: tuple, allow: bool, source: bytes, params: bytes, oracle: dict) -> None:
        """DirectTaskResponded from the attestation validator (the direct path)."""
        task = (task_id, CLIENT, self.block, 67, it, b"\x99" * 65, b"{}", b"\x00", 1_700_000_000)
        tr = self.response(task_id, it, allow, source, params, oracle)
        self.emit(VALIDATOR, "DirectTaskResponded", {"taskId": task_id, "task": task, "taskResponse": tr})

    def spent(self, task_id: bytes, it: tuple) -> None:
        """AttestationSpent from the task manager."""
        att = (task_id, keccak(b"pid"), CLIENT, 2000, it, b"\x99" * 65)
        self.emit(TASK_MANAGER, "AttestationSpent", {"taskId": task_id, "attestation": att})

    def policy_set(self, emitter: str, entrypoint: str, policy: str = POLICY, policy_id: bytes = b"") -> None:
        """PolicySet (as a NewtonPolicy emits it) naming `entrypoint`, emitted by `emitter`."""
        pid = policy_id or keccak(b"pid")
        info = (pid, policy, CLIENT, "cid", "schema", entrypoint, (b"{}", 100), [], b"\x00" * 32, "1")
        self.emit(emitter, "PolicySet", {"client": CLIENT, "policyId": pid, "policy": info})

    def policy_deployed(self, emitter: str, entrypoint: str, policy: str = POLICY) -> None:
        """PolicyDeployed (as the NewtonPolicyFactory emits it), emitted by `emitter`."""
        info = (policy, CLIENT, "meta", "cid", "schema", entrypoint, [], b"\x00" * 32)
        self.emit(emitter, "PolicyDeployed", {"policy": policy, "policyInfo": info, "implementationVersion": "1"})

    # --- through the indexer --------------------------------------------------------------------------

    def derive(self, path: Path, head: int | None = None, call=None, dep_policies: list[dict] | None = None) -> None:
        """Decode the logs, load them and derive every table, as one indexer commit does."""
        batch = decode_logs(self.logs, CHAIN)
        assert not batch.undecodable, batch.undecodable
        con = duckdb.connect(str(path))
        try:
            load.ensure_schema(con)
            contracts = {"taskManager": TASK_MANAGER, "attestationValidator": VALIDATOR}
            contracts.update(
                {("policyFactory" if i == 0 else f"previous{i}PolicyFactory"): a for i, a in enumerate(self.factories)}
            )
            load.set_meta(con, {"deployment_json": json.dumps({"contracts": contracts})})
            for table, rows in batch.rows.items():
                load.insert_rows(con, table, TABLES[table], rows)
            load.insert_rows(con, "undecodable_logs", UNDECODABLE_COLUMNS, batch.undecodable)
            from indexer.run import BLOB_COLUMNS

            load.insert_rows(con, "blobs", BLOB_COLUMNS, [[h, t] for h, t in batch.blobs.items()])
            derive.refresh(
                con,
                CHAIN,
                head if head is not None else self.block,
                set(),
                set(derive.OPERATOR_TABLES + derive.POLICY_TABLES + derive.CHALLENGE_TABLES),
                dep_policies or [],
                force_all=True,
                call=call,
            )
        finally:
            con.close()


def task_row(path: Path, task_id: bytes) -> dict:
    """The derived `tasks` row of one task."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute("SELECT * FROM tasks WHERE task_id = ?", ["0x" + task_id.hex()])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        assert row is not None, "task not derived"
        return dict(zip(names, row))
    finally:
        con.close()
