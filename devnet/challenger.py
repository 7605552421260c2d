"""An independent challenger: reads responses from chain logs, replays each with the engine, challenges mismatches."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import eth_abi
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from app.engine import compiled, encode_result, intent_input, is_canonical_allow, wasm_from_policy_data
from devnet.bls import NSS_TYPE
from devnet.deploy import challenge_data
from devnet.operators import intent_from_tuple
from devnet.protocol import POLICY_STATE as POLICY_STATE_T
from devnet.protocol import RESPONSE_CERTIFICATE as CERT_T
from devnet.protocol import TASK as TASK_T
from devnet.protocol import TASK_RESPONSE as TASK_RESPONSE_T
from devnet.protocol import challenge_calldata, response_digest, selector

NEW_TASK_TOPIC = "0x" + keccak(text=f"NewTaskCreated(bytes32,{TASK_T},{POLICY_STATE_T})").hex()
TASK_RESPONDED_TOPIC = "0x" + keccak(text=f"TaskResponded({TASK_RESPONSE_T},{CERT_T})").hex()
# The 2026-02-11 layout (EVENTS.md §1.3) the devnet's first task-manager implementation emits: Task without its
# last field, initializationTimestamp, which the challenger then takes from the task's TaskResponded.
TASK_V5_T = TASK_T[: TASK_T.rindex(",")] + ")"
OLD_NEW_TASK_TOPIC = "0x" + keccak(text=f"NewTaskCreated(bytes32,{TASK_V5_T},{POLICY_STATE_T})").hex()
ENTRYPOINT_SELECTOR = selector("getEntrypoint()")
FRIVOLOUS_RATE = 0.004  # a few challenges of correct responses (they fail: TaskChallengedUnsuccessfully)
CHALLENGE_RATE = 1.0  # share of wrong responses actually challenged (< 1: some stay open, then expire unchallenged)


@dataclass(frozen=True)
class Challenge:
    """A challenge the challenger decided to file."""

    task_id: bytes
    frivolous: bool
    attested_allow: bool
    replayed_allow: bool
    calldata: bytes


@dataclass
class Challenger:
    """Follows the TaskManager's logs; keeps every created task; replays every response; challenges mismatches."""

    rpc: Callable[[str, list], Any]
    task_manager: str
    resolver_key: bytes
    seed: int
    frivolous_rate: float = FRIVOLOUS_RATE
    challenge_rate: float = CHALLENGE_RATE
    tasks: dict[bytes, tuple] = field(default_factory=dict)
    entrypoints: dict[str, str] = field(default_factory=dict)
    replayed: int = 0
    mismatches: int = 0
    passed_over: list[bytes] = field(default_factory=list)  # wrong responses left unchallenged (challenge_rate < 1)
    last_block: int = -1

    def _entrypoint(self, policy: str) -> str:
        """The policy contract's on-chain entrypoint (cached)."""
        if policy not in self.entrypoints:
            raw = bytes.fromhex(
                self.rpc("eth_call", [{"to": policy, "data": "0x" + ENTRYPOINT_SELECTOR.hex()}, "latest"])[2:]
            )
            self.entrypoints[policy] = eth_abi.decode(["string"], raw)[0]
        return self.entrypoints[policy]

    def replay(self, response: tuple) -> bool | None:
        """The engine's verdict for a response's recorded inputs (None if it cannot be replayed)."""
        policy_address = response[3].lower()
        source = bytes(response[7][2]).decode("utf-8")
        try:
            policy = compiled(source, self._entrypoint(policy_address))
            wasm = wasm_from_policy_data([pd[1] for pd in response[7][3]])
            params = json.loads(bytes(response[8][0]).decode("utf-8") or "{}")
            # the input as operators build it: the intent and the task's intentSignature (input.intent_signature)
            inp = intent_input(replace(intent_from_tuple(response[4]), signature=bytes(response[5])))
        except Exception:  # undecodable inputs: nothing to prove
            return None
        return policy.evaluate(inp, params, wasm).allow

    def _frivolous(self, task_id: bytes) -> bool:
        """A deterministic few correct responses get challenged anyway."""
        draw = int.from_bytes(keccak(b"frivolous:%d:" % self.seed + task_id)[:8], "big") / 2**64
        return draw < self.frivolous_rate

    def _worth_challenging(self, task_id: bytes) -> bool:
        """A deterministic `challenge_rate` share of the wrong responses is challenged: challenging costs gas and
        attention, and a challenger that finds it does not pay lets some wrong responses expire unchallenged."""
        if self.challenge_rate >= 1.0:
            return True
        draw = int.from_bytes(keccak(b"challenge:%d:" % self.seed + task_id)[:8], "big") / 2**64
        return draw < self.challenge_rate

    @cached_property
    def _resolver(self) -> LocalAccount:
        return Account.from_key(self.resolver_key)

    def poll(self, to_block: int) -> list[Challenge]:
        """Read logs after the last polled block up to `to_block`; return the challenges to file."""
        from_block = self.last_block + 1
        if to_block < from_block:
            return []
        logs = self.rpc(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "address": self.task_manager,
                    "topics": [[NEW_TASK_TOPIC, OLD_NEW_TASK_TOPIC, TASK_RESPONDED_TOPIC]],
                }
            ],
        )
        self.last_block = to_block
        out = []
        for log in logs:
            data = bytes.fromhex(log["data"][2:])
            if log["topics"][0] == NEW_TASK_TOPIC:
                task, _state = eth_abi.decode([TASK_T, POLICY_STATE_T], data)
                self.tasks[bytes(task[0])] = task
                continue
            if log["topics"][0] == OLD_NEW_TASK_TOPIC:
                task, _state = eth_abi.decode([TASK_V5_T, POLICY_STATE_T], data)
                self.tasks[bytes(task[0])] = task
                continue
            response, cert = eth_abi.decode([TASK_RESPONSE_T, CERT_T], data)
            task_id = bytes(response[0])
            task = self.tasks.get(task_id)
            if task is not None and len(task) == 8:  # older layout: initializationTimestamp from the response
                task = (*task, response[9])
            replayed = self.replay(response)
            if task is None or replayed is None:
                continue
            self.replayed += 1
            attested = is_canonical_allow(bytes(response[6]))
            mismatch = replayed != attested
            self.mismatches += mismatch
            if not mismatch and not self._frivolous(task_id):
                continue
            if mismatch and not self._worth_challenging(task_id):
                self.passed_over.append(task_id)
                continue
            challenge = challenge_data(task_id, response_digest(response), encode_result(replayed), self._resolver)
            non_signers = list(eth_abi.decode([NSS_TYPE], bytes(cert[3]))[0][1])
            calldata = challenge_calldata(task, response, cert, challenge, non_signers)
            out.append(Challenge(task_id, not mismatch, attested, replayed, calldata))
        return out
