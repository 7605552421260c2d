"""The simulation driver: agents' intents → tasks → operator votes → responses → executions and challenges, in batches.

Deterministic for a seed on a fresh devnet: every block is mined explicitly (`evm_setAutomine false` + `evm_mine`
with a simulated timestamp) from raw transactions signed locally with local nonces.
Per batch of intents (those arriving within BATCH_WINDOW_S): [admin block: scheduled operator/stake/params
changes] → block A: the independent challenger's challenges of earlier responses, then createNewTask for each intent
→ block B: respondToTask with each quorum's aggregate BLS signature → block C: the agents execute allowed intents
(spending the attestation) and record denials. Block C is mined in the background while the next batch is computed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import eth_abi
import requests
from eth_utils import keccak

from app.engine import compiled, intent_input
from devnet import agents, bls, governance, protocol, providers, rawtx, scenario
from devnet.aggregator import aggregate, create_calldata_from, encoded_task, respond_calldata_from
from devnet.challenger import Challenger
from devnet.contracts import revert_reason
from devnet.deploy import calldata, operator_account, params_bytes
from devnet.operators import Operator, TaskContext, Vote, data_json, intent_tuple
from devnet.protocol import selector
from devnet.tx import MAX_FEE_WEI
from indexer.errors import LensError

ANVIL_KEYS = (  # anvil's default accounts 0..3 (public test mnemonic): deployer, aggregator, resolver, challenger
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)
# anvil recomputes its whole state root for every block, so the cost of a block grows with the chain's state:
# few, full blocks keep a 10,000-task run linear enough. Intents arriving within this window form one batch …
BATCH_WINDOW_S = 900
MAX_BATCH = 48  # … of at most this many tasks
POLICY_DATA_TTL_BLOCKS = 30  # PolicyData.expireBlock = taskCreatedBlock + this
VAULT_TOPUP_WEI = 10**33  # the vaults never run dry over a long simulation


@dataclass(frozen=True)
class SimConfig:
    """What to simulate."""

    tasks: int
    seed: int = 7
    operators: int = 10
    fault_rate: float = 0.01
    challenge_rate: float = 1.0  # share of wrong responses the challenger actually challenges
    upgrade_at: float | None = 0.5  # fraction of the run at which the task manager proxy is upgraded (None: never)
    ownership_transfer_at: float | None = 0.25  # … and one policy's ownership is transferred (None: never)
    independent_eval: bool = (
        True  # every operator runs its own engine evaluation, as on Newton; False shares one (faster)
    )
    # every operator BLS-signs its vote and the aggregator sums the signatures; False: the aggregator signs once
    # with the signers' summed secrets, the same aggregate signature byte for byte at a tenth of the cost
    individual_signatures: bool = True


@dataclass
class SimResult:
    """What happened (counts, ids of injected faults and challenges, per-operator participation)."""

    tasks: int = 0
    responded: int = 0
    unresponded: int = 0
    allowed: int = 0
    denied: int = 0
    executed: int = 0
    denials_recorded: int = 0
    unspent_allowed: int = 0
    faults: list[str] = field(default_factory=list)  # task ids (0x) where a colluding quorum signed the wrong verdict
    challenged_ok: list[str] = field(default_factory=list)
    challenged_frivolous: list[str] = field(default_factory=list)
    unchallenged: list[str] = field(default_factory=list)  # wrong responses the challenger chose not to challenge
    params_changes: int = 0
    governance: list[str] = field(default_factory=list)  # governance transactions sent (upgrade, ownership transfer)
    blocks: int = 0
    first_block: int = 0
    last_block: int = 0
    elapsed_s: float = 0.0
    participation: dict[str, list[int]] = field(default_factory=dict)  # operator name → [signed, eligible]
    verdicts: dict[str, bool] = field(default_factory=dict)  # task id → attested allow
    signers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # task id → names of the signing operators
    fractions: dict[str, float] = field(default_factory=dict)  # task id → position in the run (0..1)

    @property
    def tasks_per_s(self) -> float:
        """Throughput of the whole run."""
        return self.tasks / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a JSON-able dict."""
        return {
            "tasks": self.tasks,
            "responded": self.responded,
            "unresponded": self.unresponded,
            "allowed": self.allowed,
            "denied": self.denied,
            "executed": self.executed,
            "denials_recorded": self.denials_recorded,
            "unspent_allowed": self.unspent_allowed,
            "faults": len(self.faults),
            "challenged_successfully": len(self.challenged_ok),
            "frivolous_challenges": len(self.challenged_frivolous),
            "left_unchallenged": len(self.unchallenged),
            "params_changes": self.params_changes,
            "governance": list(self.governance),
            "blocks": self.blocks,
            "first_block": self.first_block,
            "last_block": self.last_block,
            "elapsed_s": round(self.elapsed_s, 2),
            "tasks_per_s": round(self.tasks_per_s, 2),
        }


# ------------------------------------------------------------------------------------------------- RPC


class Rpc:
    """A minimal keep-alive JSON-RPC client (web3's middleware stack is too slow for tens of thousands of calls)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy lookup per request: the devnet is local
        self.timeout_s = timeout_s
        self._id = 0

    def __call__(self, method: str, params: list | None = None) -> Any:
        self._id += 1
        try:
            resp = self.session.post(
                self.url,
                json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or []},
                timeout=self.timeout_s,
            )
            body = resp.json()
        except (requests.RequestException, ValueError) as err:
            raise LensError(
                f"the devnet node at {self.url} does not answer ({method}): {err}", "start it with `lens devnet up`"
            ) from None
        if body.get("error"):
            raise LensError(
                f"RPC {method} failed: {body['error'].get('message', body['error'])}",
                "is the devnet node the one the deployment file names?",
            )
        return body["result"]

    def call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        """eth_call returning raw bytes."""
        return bytes.fromhex(self("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])[2:])

    def raw_call(self, tx: dict, block: str) -> dict:
        """eth_call returning the whole JSON-RPC body (to read revert data)."""
        self._id += 1
        return self.session.post(
            self.url,
            json={"jsonrpc": "2.0", "id": self._id, "method": "eth_call", "params": [tx, block]},
            timeout=self.timeout_s,
        ).json()


def _addr_arg(a: str) -> bytes:
    return eth_abi.encode(["address"], [a])


# ------------------------------------------------------------------------------------------------- blocks


@dataclass
class _Sent:
    tx_hash: str
    sender: str
    to: str
    data: bytes
    value: int
    label: str


class BlockBuilder:
    """Collects raw transactions for the next block, mines it at a given time and checks every receipt.
    A block may be mined in the background (`wait=False`) while the caller computes the next batch; the next
    `send`/`mine`/`join` waits for it first, so blocks and transactions keep their order."""

    def __init__(self, rpc_url: str, chain_id: int) -> None:
        self.rpc = Rpc(rpc_url)  # its own connection: it may run in the background thread
        self.chain_id = chain_id
        self.pending: list[_Sent] = []
        self.raws: list[str] = []
        self.last_timestamp = 0
        self.blocks = 0
        self.number = 0  # the head block number (set at setup; the simulation is the only block producer)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def send(
        self, sender: rawtx.Sender, to: str, data: bytes, value: int = 0, gas: int | None = None, label: str = ""
    ) -> str:
        """Queue a transaction for the next block (signed now, sent at mining time)."""
        self.join()
        gas = gas or 200_000 + 40 * len(data)
        raw, tx_hash = rawtx.sign_tx(sender, self.chain_id, to, data, value, gas, MAX_FEE_WEI)
        self.raws.append(raw)
        self.pending.append(_Sent(tx_hash, sender.address, to, data, value, label))
        return tx_hash

    def mine(self, timestamp: int, wait: bool = True) -> int:
        """Send the queued transactions in order and mine one block at `timestamp`; returns its number.
        With wait=False the block is mined in the background (errors surface at the next join)."""
        self.join()
        timestamp = max(int(timestamp), self.last_timestamp + 1)
        self.last_timestamp = timestamp
        self.blocks += 1
        self.number += 1
        job = (self.number, timestamp, self.raws, self.pending)
        self.pending, self.raws = [], []
        if wait:
            self._mine(*job)
        else:
            self._worker = threading.Thread(target=self._background, args=job, daemon=True)
            self._worker.start()
        return self.number

    def join(self) -> None:
        """Wait for a block being mined in the background; re-raise its error."""
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _background(self, *job) -> None:
        try:
            self._mine(*job)
        except BaseException as err:  # handed to the main thread at the next join
            self._error = err

    def _mine(self, number: int, timestamp: int, raws: list[str], pending: list[_Sent]) -> None:
        for raw in raws:  # one by one, in order: anvil keeps arrival order for equal fees
            self.rpc("eth_sendRawTransaction", [raw])
        self.rpc("evm_mine", [timestamp])
        receipts = self.rpc("eth_getBlockReceipts", [hex(number)]) if pending else []
        self._check(number, receipts, pending)

    def _check(self, number: int, receipts: list[dict], pending: list[_Sent]) -> None:
        """Every queued transaction is in the block and succeeded, else a LensError naming the revert."""
        got = {r["transactionHash"].lower(): r for r in receipts}
        for s in pending:
            r = got.get(s.tx_hash.lower())
            if r is None:
                raise LensError(
                    f"block {number}: transaction {s.label} ({s.tx_hash}) was not mined",
                    "the block gas limit may be too small; restart the devnet with `lens devnet up`",
                )
            if int(r["status"], 16) != 1:
                body = self.rpc.raw_call(
                    {
                        "from": s.sender,
                        "to": s.to,
                        "data": "0x" + s.data.hex(),
                        "value": hex(s.value),
                        "gas": hex(30_000_000),
                    },
                    hex(number - 1),
                )
                reason = revert_reason(body["error"]) if body.get("error") else "out of gas?"
                raise LensError(
                    f"block {number}: {s.label} reverted: {reason}",
                    "the devnet state and the simulation disagree; redeploy with `lens devnet up`",
                )


# ------------------------------------------------------------------------------------------------- world


@dataclass
class _Client:
    name: str
    address: str
    policy: str
    policy_address: str
    policy_id: bytes = b""
    params_raw: bytes = b""
    params: dict = field(default_factory=dict)
    expire_after: int = 0
    version: int = 0


@dataclass
class _Task:
    planned: agents.PlannedIntent
    task: tuple
    ctx: TaskContext
    client: _Client
    fault: bool = False
    agg: Any = None
    encoded: bytes = b""  # abi.encode(task), reused by createNewTask and respondToTask


def _load_deployment(deployment: dict | str) -> dict:
    """The deployment document (a dict, or a path to the JSON file)."""
    if isinstance(deployment, dict):
        return deployment
    try:
        with open(deployment) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise LensError(f"no devnet deployment at {deployment}", "start the devnet first: `lens devnet up`") from None
    except ValueError as err:
        raise LensError(f"{deployment} is not valid JSON: {err}", "redeploy with `lens devnet up`") from None


class Simulation:
    """One simulation run against a deployed devnet (see the module docstring for the block structure)."""

    def __init__(self, rpc_url: str, deployment: dict | str, cfg: SimConfig) -> None:
        if cfg.tasks < 1:
            raise LensError(f"--tasks must be at least 1 (got {cfg.tasks})")
        if not 0.0 <= cfg.fault_rate <= 1.0:
            raise LensError(f"--fault-rate must be within 0..1 (got {cfg.fault_rate})", "0.01 means 1% of tasks")
        if not 0.0 <= cfg.challenge_rate <= 1.0:
            raise LensError(
                f"--challenge-rate must be within 0..1 (got {cfg.challenge_rate})",
                "0.5 means the challenger challenges half of the wrong responses",
            )
        self.cfg = cfg
        self.doc = _load_deployment(deployment)
        self.rpc = Rpc(rpc_url)
        self.chain_id = int(self.rpc("eth_chainId"), 16)
        if self.doc.get("chain_id") not in (None, self.chain_id):
            raise LensError(
                f"the node's chain id {self.chain_id} differs from the deployment's {self.doc['chain_id']}",
                "point --rpc at the devnet of this deployment, or redeploy with `lens devnet up`",
            )
        try:
            self.tm = self.doc["contracts"]["taskManager"].lower()
            self.registry = self.doc["contracts"]["operatorRegistry"].lower()
            self.token = self.doc["contracts"]["token"].lower()
        except KeyError as err:
            raise LensError(
                f"the deployment file lacks contracts.{err.args[0]}", "redeploy with `lens devnet up`"
            ) from None
        if self.rpc("eth_getCode", [self.tm, "latest"]) in ("0x", "0x0"):
            raise LensError(
                f"no TaskManager code at {self.tm} on {rpc_url}",
                "the devnet was restarted without redeploying: run `lens devnet up`",
            )
        self.keys = [rawtx.Sender(bytes.fromhex(k), rawtx.address_of(bytes.fromhex(k))) for k in ANVIL_KEYS]
        roles = self.doc.get("roles", {})
        for i, role in enumerate(("deployer", "aggregator", "resolver", "challenger")):
            if roles.get(role, self.keys[i].address).lower() != self.keys[i].address:
                raise LensError(
                    f"deployment role {role} is {roles[role]}, not anvil account {i}",
                    "the simulation signs with anvil's default keys; redeploy with `lens devnet up`",
                )
        self.result = SimResult(tasks=cfg.tasks)
        self.blocks = BlockBuilder(rpc_url, self.chain_id)

    # -- chain reads

    def _nonce(self, sender: rawtx.Sender) -> rawtx.Sender:
        sender.nonce = int(self.rpc("eth_getTransactionCount", [sender.address, "latest"]), 16)
        return sender

    def _registry_state(self) -> dict[str, int]:
        """address → current stake of every registered operator."""
        raw = self.rpc.call(self.registry, selector("quorumOperators()"))
        members = [a.lower() for a in eth_abi.decode(["address[]"], raw)[0]]
        stakes = {}
        for a in members:
            stakes[a] = eth_abi.decode(
                ["uint96"], self.rpc.call(self.registry, selector("currentStake(address)") + _addr_arg(a))
            )[0]
        return stakes

    def _read_client(self, c: _Client) -> None:
        """The client's current policyId and the exact params bytes bound to it on chain."""
        c.policy_id = self.rpc.call(c.address, selector("getPolicyId()"))[:32]
        raw = self.rpc.call(c.policy_address, selector("getPolicyConfig(bytes32)") + c.policy_id)
        c.params_raw, c.expire_after = eth_abi.decode(["(bytes,uint32)"], raw)[0]
        c.params = json.loads(c.params_raw.decode("utf-8") or "{}")

    # -- setup

    def _setup(self) -> None:
        cfg = self.cfg
        self.scn = scenario.build(cfg.seed, cfg.operators)
        specs = {s.name: s for s in scenario.policy_specs()}
        self.policies: dict[str, Any] = {}
        self.policy_data_addrs: dict[str, list[str]] = {}
        for name, entry in self.doc.get("policies", {}).items():
            if name not in specs:
                continue
            addr = entry["address"].lower()
            on_chain = self.rpc.call(addr, selector("getPolicyCodeHash()"))[:32]
            if on_chain != keccak(specs[name].source.encode()):
                raise LensError(
                    f"policy {name} on chain is not data/policies/{name}/policy.rego",
                    "the policy source changed since deployment: redeploy with `lens devnet up`",
                )
            entry_point = eth_abi.decode(["string"], self.rpc.call(addr, selector("getEntrypoint()")))[0]
            self.policies[name] = compiled(specs[name].source, entry_point)
            self.policy_data_addrs[name] = [
                a.lower() for a in eth_abi.decode(["address[]"], self.rpc.call(addr, selector("getPolicyData()")))[0]
            ]
        self.packs = {name: specs[name].policy_data for name in specs}
        for name, addrs in self.policy_data_addrs.items():
            if len(addrs) != len(self.packs[name]):
                raise LensError(
                    f"policy {name} on chain reads {len(addrs)} data providers, its metadata.json names "
                    f"{len(self.packs[name])}",
                    "redeploy with `lens devnet up`",
                )
        self.clients: dict[str, _Client] = {}
        for name, policy in scenario.CLIENT_POLICY.items():
            entry = self.doc.get("clients", {}).get(name)
            if entry is None or policy not in self.policies:
                raise LensError(
                    f"the deployment has no client {name!r} with policy {policy!r}",
                    "redeploy with `lens devnet up` (it deploys devnet.scenario's clients)",
                )
            c = _Client(name, entry["address"].lower(), policy, self.doc["policies"][policy]["address"].lower())
            self._read_client(c)
            self.clients[name] = c

        # operators: the scenario's initial set, the joiner; whoever else is registered is asked to leave
        specs_ops = list(self.scn.operators) + [self.scn.joiner]
        self.ops = [Operator(i, s, p) for i, (s, p) in enumerate(zip(specs_ops, self.scn.profiles))]
        self.op_addr = [operator_account(o.spec).address.lower() for o in self.ops]
        self.op_keys = {o.index: o.key for o in self.ops}
        self.op_senders = [rawtx.Sender(bytes(operator_account(o.spec).key), a) for o, a in zip(self.ops, self.op_addr)]
        self.personas = agents.persona_accounts(cfg.seed)
        self.persona_senders = {n: rawtx.Sender(bytes.fromhex(k[2:]), a) for n, (a, k) in self.personas.items()}
        for s in [*self.keys, *self.op_senders, *self.persona_senders.values()]:
            self.rpc("anvil_setBalance", [s.address, hex(scenario.GAS_FUNDING_WEI)])
            self._nonce(s)
        for c in self.clients.values():
            self.rpc("anvil_setBalance", [c.address, hex(VAULT_TOPUP_WEI)])

        self.rpc("evm_setAutomine", [False])
        if self.interval:  # a devnet started with --block-time would mine blocks of its own between ours
            self.rpc("evm_setIntervalMining", [0])
        head = self.rpc("eth_getBlockByNumber", ["latest", False])
        self.blocks.last_timestamp = int(head["timestamp"], 16)
        self.start_block = self.blocks.number = int(head["number"], 16)
        self.result.first_block = self.start_block + 1

        # admin block 0: fund the vaults with dUSD; operators outside the scenario leave; missing ones register
        deployer = self.keys[0]
        for c in self.clients.values():
            self.blocks.send(
                deployer,
                self.token,
                selector("mint(address,uint256)")
                + eth_abi.encode(["address", "uint256"], [c.address, VAULT_TOPUP_WEI]),
                label=f"mint dUSD to {c.name}",
            )
        stakes = self._registry_state()
        known = set(self.op_addr)
        others = {operator_account(sp).address.lower(): sp for sp in scenario.operator_specs(64, cfg.seed)}
        for addr in stakes:
            if addr in known:
                continue
            spec = others.get(addr)
            if spec is None:
                raise LensError(
                    f"operator {addr} is registered but not part of the scenario",
                    "redeploy with `lens devnet up` (its operators come from devnet.scenario)",
                )
            # a scenario operator beyond --operators M: it leaves, so the network has exactly M (+ the joiner)
            extra = self._nonce(rawtx.Sender(bytes(operator_account(spec).key), addr))
            self.rpc("anvil_setBalance", [addr, hex(scenario.GAS_FUNDING_WEI)])
            self.blocks.send(
                extra, self.registry, selector("deregisterOperator()"), gas=400_000, label=f"deregister {spec.name}"
            )
        for o, addr in zip(self.ops[:-1], self.op_addr[:-1]):
            if addr not in stakes and o.profile.deregister_at is None:
                self._register(o)
            elif addr in stakes and o.profile.deregister_at == 0.0:
                self._deregister(o)
        self._mine_admin()

    def _register(self, o: Operator) -> None:
        """Queue registerOperator for o (proof of possession of its BLS key)."""
        sender = self.op_senders[o.index]
        msg = bls.pubkey_registration_message(sender.address, self.registry, self.chain_id)
        data = bytes.fromhex(
            calldata(
                "OperatorRegistry",
                "registerOperator",
                o.key.g1,
                [list(o.key.g2[0]), list(o.key.g2[1])],
                bls.pop_signature(o.key, msg),
                o.spec.socket,
                o.spec.metadata_uri,
                int(o.spec.stake),
            )[2:]
        )
        self.blocks.send(sender, self.registry, data, gas=900_000 + 40 * len(data), label=f"register {o.spec.name}")

    def _deregister(self, o: Operator) -> None:
        self.blocks.send(
            self.op_senders[o.index],
            self.registry,
            selector("deregisterOperator()"),
            gas=400_000,
            label=f"deregister {o.spec.name}",
        )

    def _mine_admin(self) -> None:
        """Mine the queued admin transactions (if any) and refresh the operator snapshot."""
        if self.blocks.pending:
            self.blocks.mine(self.blocks.last_timestamp + 12)
        self.blocks.join()
        self._refresh_snapshot()

    def _refresh_snapshot(self) -> None:
        stakes = self._registry_state()
        self.registered = {i: stakes[a] for i, a in enumerate(self.op_addr) if a in stakes}

    # -- the run

    def run(self, progress: Callable[[int, int], None] | None = None) -> SimResult:
        """Run the whole simulation; `progress(done, total)` is called after every batch."""
        t0 = time.perf_counter()
        automine = bool(self.rpc("anvil_getAutomine"))
        self.interval = self.rpc("anvil_getIntervalMining") or 0
        try:
            self._setup()
            self._run(progress)
        finally:
            try:  # hand the node back as we found it
                self.blocks.join()
                self.rpc("evm_setAutomine", [automine])
                if self.interval:
                    self.rpc("evm_setIntervalMining", [self.interval])
            except LensError:
                pass
        self.result.elapsed_s = time.perf_counter() - t0
        self.result.blocks = self.blocks.blocks
        self.result.last_block = int(self.rpc("eth_blockNumber"), 16)
        return self.result

    def _run(self, progress: Callable[[int, int], None] | None) -> None:
        cfg = self.cfg
        start = self.blocks.last_timestamp + 60
        plan = agents.plan_intents(cfg.tasks, cfg.seed, start, self.token, self.chain_id)
        span = max(plan[-1].t - start, 1)
        self.providers = providers.Providers(cfg.seed, start, span, {n: a for n, (a, _k) in self.personas.items()})
        self.challenger = Challenger(self.rpc, self.tm, self.keys[2].key, cfg.seed, challenge_rate=cfg.challenge_rate)
        self.challenger.last_block = self.start_block
        self.last_response_block = self.start_block  # the challenger reads responses up to here
        self.fault_rng = random.Random(f"faults:{cfg.seed}")
        self.cartel = list(range(len(self.ops)))
        random.Random(f"cartel:{cfg.seed}").shuffle(self.cartel)
        self.pending_events = self._events()
        self.result.participation = {o.spec.name: [0, 0] for o in self.ops}
        i = 0
        while i < len(plan):
            j = i + 1
            while j < len(plan) and j - i < MAX_BATCH and plan[j].t < plan[i].t + BATCH_WINDOW_S:
                j += 1
            self._admin(i / cfg.tasks)
            self._batch(plan[i:j])
            i = j
            if progress:
                progress(i, len(plan))
        # let the challenger see the last responses
        self._queue_challenges()
        if self.blocks.pending:
            self.blocks.mine(self.blocks.last_timestamp + 15)
        self.blocks.join()
        self.result.unchallenged = ["0x" + t.hex() for t in self.challenger.passed_over]

    def _events(self) -> list[tuple[float, str, Any]]:
        """Scheduled changes: (fraction of the run, kind, payload), in order."""
        ev: list[tuple[float, str, Any]] = []
        for o in self.ops[:-1]:
            for at, stake in o.profile.stake_changes:
                ev.append((at, "stake", (o, stake)))
            if o.profile.deregister_at:
                ev.append((o.profile.deregister_at, "leave", o))
        joiner = self.ops[-1]
        if len(self.ops) - 1 > scenario.LEAVER:  # the joiner replaces the leaver
            ev.append((joiner.profile.registered_from, "join", joiner))
        for ch in self.scn.params_schedule:
            ev.append((ch.at, "params", ch))
        ev += governance.scheduled(self.doc, self.cfg.seed, self.cfg.upgrade_at, self.cfg.ownership_transfer_at)
        return sorted(ev, key=lambda e: (e[0], e[1]))

    def _admin(self, frac: float) -> None:
        """Apply the scheduled changes due at this point in one admin block before the batch."""
        due = [e for e in self.pending_events if e[0] <= frac]
        if not due:
            return
        self.pending_events = [e for e in self.pending_events if e[0] > frac]
        changed_clients = []
        for _at, kind, payload in due:
            if kind == "stake":
                o, stake = payload
                if o.index in self.registered:
                    data = selector("updateStake(address,uint96)") + eth_abi.encode(
                        ["address", "uint96"], [self.op_addr[o.index], stake]
                    )
                    self.blocks.send(self.keys[0], self.registry, data, label=f"updateStake {o.spec.name}")
            elif kind == "leave":
                if payload.index in self.registered:
                    self._deregister(payload)
            elif kind == "join":
                if payload.index not in self.registered:
                    self._register(payload)
            elif kind == "governance":
                self.blocks.send(self.keys[0], payload.to, payload.data, gas=300_000, label=payload.label)
                self.result.governance.append(payload.label)
            elif kind == "params":
                c = self.clients[payload.client]
                c.version = payload.version
                params = scenario.client_params(c.name, payload.version)
                data = bytes.fromhex(calldata("AgentVault", "setPolicy", (params_bytes(params), c.expire_after))[2:])
                self.blocks.send(
                    self.keys[0],
                    c.address,
                    data,
                    gas=400_000 + 1_000 * len(data),
                    label=f"setPolicy {c.name} v{payload.version}",
                )
                changed_clients.append(c)
                self.result.params_changes += 1
        self._mine_admin()
        for c in changed_clients:
            self._read_client(c)

    def _batch(self, batch: list[agents.PlannedIntent]) -> None:
        cfg = self.cfg
        agg_sender = self.keys[1]
        created_block = self.blocks.number
        registered = dict(self.registered)
        tasks: list[_Task] = []
        # First the work that needs no new block (it overlaps the mining of the previous batch's block C):
        # the challenger replays the responses so far; each task is built and voted on by the operators from the
        # quorum at taskCreatedBlock.
        challenges = self.challenger.poll(self.last_response_block)
        for p in batch:
            c = self.clients[p.client]
            calls = self.providers.outputs(c.name, c.address, self.packs[c.policy], p.intent, p.t, c.params)
            pdata = tuple(
                protocol.policy_data(call.wasm_args, call.data, addr, created_block + POLICY_DATA_TTL_BLOCKS)
                for call, addr in zip(calls, self.policy_data_addrs[c.policy])
            )
            wasm = {}
            for call in calls:
                wasm.update(json.loads(call.data))
            it = intent_tuple(p.intent)
            sender = self.persona_senders[p.persona]
            digest = keccak(b"\x19Ethereum Signed Message:\n32" + keccak(eth_abi.encode([protocol.INTENT], [it])))
            parity, r, s = rawtx.sign_hash(digest, sender.key)
            intent_sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + parity])
            task_id = keccak(eth_abi.encode(["uint256", "uint256", "uint256"], [cfg.seed, self.start_block, p.seq]))
            wasm_args = json.dumps(
                {call.pack: json.loads(call.wasm_args) for call in calls}, separators=(",", ":"), sort_keys=True
            ).encode()
            task = protocol.task(
                task_id,
                c.address,
                created_block,
                self.scn.quorum_threshold_pct,
                it,
                intent_sig,
                wasm_args,
                b"\x00",
                p.t,
            )
            ctx = TaskContext(
                task,
                c.policy_id,
                c.policy_address,
                self.policies[c.policy],
                pdata,
                (c.params_raw, c.expire_after),
                json.dumps(intent_input(replace(p.intent, signature=intent_sig))),  # input.intent_signature too
                data_json(c.params, wasm),
            )
            t = _Task(p, task, ctx, c)
            tasks.append(t)
            t.encoded = encoded_task(task)
            self._vote(t, registered)
            if t.agg is not None and t.agg.allow and p.executes:
                # the agent will spend it: later intents of this batch already see it as spent
                self.providers.record_execution(c.name, p.t, p.intent, c.params)
        # block A: the challenger's challenges, then createNewTask for each intent
        slashing = self._queue_challenges(challenges)
        for t in tasks:
            self.blocks.send(
                agg_sender, self.tm, create_calldata_from(t.encoded), label=f"createNewTask #{t.planned.seq}"
            )
        ts_a = max(batch[-1].t + 2, self.blocks.last_timestamp + 1)
        self.blocks.mine(ts_a)
        if slashing:
            self._refresh_snapshot()  # for the next batch; this batch's quorum is the one at created_block

        # block B: the aggregator responds with each quorum-signed response
        for t in tasks:
            if t.agg is None:
                continue
            data = respond_calldata_from(t.encoded, t.ctx.encoded(t.agg.allow), t.agg.signature_data)
            self.blocks.send(
                agg_sender, self.tm, data, gas=1_500_000 + 40 * len(data), label=f"respondToTask #{t.planned.seq}"
            )
        rng = random.Random(f"blocktimes:{cfg.seed}:{ts_a}")
        ts_b = ts_a + rng.randint(2, 8)
        number_b = self.last_response_block = self.blocks.mine(ts_b)

        # block C: agents execute allowed intents (spending the attestation) or record the denial
        for t in tasks:
            if t.agg is None:
                continue
            tid = "0x" + bytes(t.task[0]).hex()
            self.result.responded += 1
            self.result.verdicts[tid] = t.agg.allow
            self.result.signers[tid] = tuple(self.ops[i].spec.name for i in t.agg.signers)
            self.result.fractions[tid] = t.planned.seq / cfg.tasks
            if t.fault:
                self.result.faults.append(tid)
            sender = self.persona_senders[t.planned.persona]
            if t.agg.allow:
                self.result.allowed += 1
                if not t.planned.executes:
                    self.result.unspent_allowed += 1
                    continue
                att = protocol.attestation(t.agg.response, number_b + t.client.expire_after)
                data = protocol.execute_calldata(att)
                self.blocks.send(
                    sender, t.client.address, data, gas=500_000 + 40 * len(data), label=f"execute #{t.planned.seq}"
                )
                self.result.executed += 1
            else:
                self.result.denied += 1
                self.blocks.send(
                    sender,
                    t.client.address,
                    protocol.record_denial_calldata(t.task[0]),
                    gas=200_000,
                    label=f"recordDenial #{t.planned.seq}",
                )
                self.result.denials_recorded += 1
        ts_c = ts_b + rng.randint(6, 14)
        self.blocks.mine(ts_c, wait=False)

    def _vote(self, t: _Task, registered: dict[int, int]) -> None:
        """Live operators evaluate and sign (a colluding group flips the verdict on injected faults); aggregate."""
        cfg = self.cfg
        frac = t.planned.seq / cfg.tasks
        up = [o for o in self.ops if o.is_up(frac)]  # every operator draws, registered or not
        voters = [o for o in up if o.index in registered]
        colluders: set[int] = set()
        if self.fault_rng.random() < cfg.fault_rate:
            colluders = self._colluders(voters, registered)
        digests: dict[bool, bytes] = {}
        votes: list[Vote] = [
            o.vote(t.ctx, digests, o.index in colluders, not cfg.independent_eval, cfg.individual_signatures)
            for o in voters
        ]
        t.fault = bool(colluders)
        t.agg = aggregate(t.ctx, votes, registered, self.op_keys, self.scn.quorum_threshold_pct)
        for i in registered:
            self.result.participation[self.ops[i].spec.name][1] += 1
        if t.agg is None:
            self.result.unresponded += 1
            return
        for i in t.agg.signers:
            self.result.participation[self.ops[i].spec.name][0] += 1

    def _queue_challenges(self, found: list | None = None) -> bool:
        """Queue the challenger's challenges (polled now unless given) for the next block.
        Returns whether a successful challenge (which slashes) was queued."""
        if found is None:
            found = self.challenger.poll(self.last_response_block)
        sender = self.keys[3]
        for ch in found:
            self.blocks.send(
                sender,
                self.tm,
                ch.calldata,
                gas=2_500_000 + 40 * len(ch.calldata),
                label=f"challenge 0x{ch.task_id.hex()}",
            )
            (self.result.challenged_frivolous if ch.frivolous else self.result.challenged_ok).append(
                "0x" + ch.task_id.hex()
            )
        return any(not ch.frivolous for ch in found)

    def _colluders(self, voters: list[Operator], registered: dict[int, int]) -> set[int]:
        """A colluding group among the live operators that still reaches quorum (empty if none can)."""
        total = sum(registered.values())
        live = {o.index for o in voters}
        group: set[int] = set()
        stake = 0
        for i in self.cartel:
            if i in live:
                group.add(i)
                stake += registered[i]
                if stake * 100 >= total * self.scn.quorum_threshold_pct:
                    return group
        return set()


def simulate(
    rpc_url: str, deployment: dict | str, cfg: SimConfig, progress: Callable[[int, int], None] | None = None
) -> SimResult:
    """Run a simulation of `cfg.tasks` tasks against the devnet of `deployment` at `rpc_url`."""
    return Simulation(rpc_url, deployment, cfg).run(progress)
