"""Simulated operators: each evaluates a task with the shared engine (app.engine) and BLS-signs the response digest."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import eth_abi
from eth_utils import keccak

from app.engine import CompiledPolicy, Evaluation, Intent, encode_result
from devnet import bls, protocol
from devnet.protocol import TASK_RESPONSE as TASK_RESPONSE_T
from devnet.scenario import LivenessProfile, OperatorSpec


def intent_tuple(intent: Intent) -> tuple:
    """The Intent struct as an ABI tuple."""
    return protocol.intent(
        intent.from_, intent.to, intent.value, intent.data, intent.chain_id, intent.function_signature
    )


def intent_from_tuple(t: tuple) -> Intent:
    """An engine Intent from a decoded Intent tuple."""
    return Intent(t[0].lower(), t[1].lower(), int(t[2]), bytes(t[3]), int(t[4]), bytes(t[5]))


@dataclass(frozen=True)
class TaskContext:
    """What the aggregator broadcasts to operators for one task: the task, the policy and the oracle answers.
    `input_json` / `data_json` are the engine input and data documents, serialised once for every operator."""

    task: tuple  # the Task struct (as created on chain)
    policy_id: bytes
    policy_address: str
    policy: CompiledPolicy
    policy_data: tuple  # PolicyData tuples (wasmArgs, data, address, expireBlock), in the policy's order
    policy_config: tuple  # (policyParams bytes, expireAfter)
    input_json: str
    data_json: str
    # honest operators run the same deterministic engine on the same bytes; with shared evaluation the first
    # evaluation of a task is reused by the others (a speed switch for long runs, see SimConfig.independent_eval)
    memo: dict = field(default_factory=dict, compare=False, hash=False)

    def encoded(self, allow: bool) -> bytes:
        """abi.encode(taskResponse) for this verdict (memoised: it is hashed, then reused in the calldata)."""
        key = ("encoded", allow)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = eth_abi.encode([TASK_RESPONSE_T], [self.response(allow)])
        return hit

    def response(self, allow: bool) -> tuple:
        """The TaskResponse tuple carrying `encode_result(allow)`."""
        return protocol.task_response(
            self.task,
            self.policy_id,
            self.policy_address,
            encode_result(allow),
            self.policy.source.encode(),
            self.policy_data,
            *self.policy_config,
        )

    def digest(self, allow: bool) -> bytes:
        """keccak256(abi.encode(taskResponse)) — the consensus digest operators sign."""
        return keccak(self.encoded(allow))


def data_json(params: dict[str, Any], wasm: dict[str, Any]) -> str:
    """The engine's data document (params, wasm and the legacy data.data mirror) as JSON."""
    return json.dumps({"params": params, "wasm": wasm, "data": wasm})


@dataclass(frozen=True)
class Vote:
    """One operator's answer to a task: its verdict, the digest it signed and its BLS signature (None when the
    aggregator signs for the quorum in one step, see `aggregator.aggregate`)."""

    operator: int
    allow: bool
    digest: bytes
    sigma: tuple[int, int] | None


@dataclass
class Operator:
    """A simulated operator: BLS key, ECDSA identity, liveness profile; evaluates with the shared engine."""

    index: int
    spec: OperatorSpec
    profile: LivenessProfile
    key: bls.BlsKeyPair = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.key = bls.keypair_from_seed(self.spec.key_seed)
        self.rng = random.Random(f"liveness:{self.spec.key_seed.hex()}")

    @property
    def operator_id(self) -> bytes:
        """keccak256(X‖Y) of the G1 public key."""
        return bls.operator_id(self.key.g1)

    def is_up(self, frac: float) -> bool:
        """Whether the operator answers a task at this point of the run (profile + its own random draw)."""
        draw = self.rng.random()  # drawn every task so one operator's outage never shifts another's stream
        return self.profile.online(frac) and draw < self.profile.availability

    def evaluate(self, ctx: TaskContext, shared: bool = False) -> Evaluation:
        """Evaluate the task's policy with the shared engine (the operator's own evaluation, or the task's
        first evaluation when `shared`)."""
        if not shared:
            return ctx.policy.evaluate_json(ctx.input_json, ctx.data_json)
        hit = ctx.memo.get("evaluation")
        if hit is None:
            hit = ctx.memo["evaluation"] = ctx.policy.evaluate_json(ctx.input_json, ctx.data_json)
        return hit

    def vote(
        self, ctx: TaskContext, digests: dict[bool, bytes], flip: bool = False, shared: bool = False, sign: bool = True
    ) -> Vote:
        """Evaluate, sign the digest of the resulting response; `flip` = colluding (sign the wrong verdict).
        `sign=False` leaves the signature to the aggregator (one scalar multiplication for the whole quorum)."""
        allow = self.evaluate(ctx, shared).allow != flip
        digest = digests.get(allow)
        if digest is None:
            digest = digests[allow] = ctx.digest(allow)
        return Vote(self.index, allow, digest, bls.sign(self.key.secret, digest) if sign else None)
