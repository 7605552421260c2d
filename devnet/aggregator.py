"""The aggregator (task generator): collects the live operators' votes, aggregates BLS signatures, builds respondToTask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import eth_abi

from devnet import bls
from devnet.operators import TaskContext, Vote
from devnet.protocol import SEL_CREATE, SEL_RESPOND, TASK


@dataclass(frozen=True)
class Aggregate:
    """A quorum-signed response ready for respondToTask."""

    allow: bool
    response: tuple
    signature_data: bytes
    signers: tuple[int, ...]  # operator indices
    non_signers: tuple[int, ...]  # registered at taskCreatedBlock but not signing this digest
    signed_stake: int
    total_stake: int


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _enc_bytes(b: bytes) -> bytes:
    """The ABI tail of a `bytes` value: length word, then the data right-padded to 32 bytes."""
    return _word(len(b)) + b + bytes(-len(b) % 32)


def encoded_task(task: tuple) -> bytes:
    """abi.encode(task) as one dynamic tuple (offset word + tail)."""
    return eth_abi.encode([TASK], [task])


def create_calldata_from(encoded_task_: bytes) -> bytes:
    """createNewTask(task) calldata from abi.encode(task) (selector + the same bytes)."""
    return SEL_CREATE + encoded_task_


def respond_calldata_from(
    encoded_task_: bytes, encoded_response: bytes, signature_data: bytes, attestation_data: bytes = b""
) -> bytes:
    """respondToTask(task, response, signatureData, attestationData) calldata assembled from the already encoded
    task and response (each `abi.encode(x)` = offset word + tail), so the large response is encoded only once.
    Equal to `protocol.respond_calldata(...)` byte for byte."""
    tails = [
        encoded_task_[32:],
        encoded_response[32:],
        _enc_bytes(bytes(signature_data)),
        _enc_bytes(bytes(attestation_data)),
    ]
    head, offset = b"", 32 * len(tails)
    for tail in tails:
        head += _word(offset)
        offset += len(tail)
    return SEL_RESPOND + head + b"".join(tails)


def aggregate(
    ctx: TaskContext,
    votes: Sequence[Vote],
    registered: dict[int, int],
    keys: dict[int, bls.BlsKeyPair],
    threshold_pct: int,
) -> Aggregate | None:
    """Pick the digest whose signers hold ≥ threshold of the stake registered at taskCreatedBlock; None if none does.
    `registered` maps operator index → stake at taskCreatedBlock (exactly the quorum the contract checks against)."""
    total = sum(registered.values())
    if total == 0:
        return None
    by_digest: dict[bytes, list[Vote]] = {}
    for v in votes:
        if v.operator in registered:
            by_digest.setdefault(v.digest, []).append(v)
    best = max(by_digest.values(), key=lambda vs: (sum(registered[v.operator] for v in vs), vs[0].digest), default=None)
    if best is None:
        return None
    signed = sum(registered[v.operator] for v in best)
    if signed * 100 < total * threshold_pct:
        return None
    signers = tuple(sorted(v.operator for v in best))
    non_signers = tuple(sorted(set(registered) - set(signers)))
    quorum_apk = bls.aggregate_g1(keys[i].g1 for i in sorted(registered))
    apk_g2 = bls.apk_g2(frozenset(keys[i].g2 for i in signers))
    if all(v.sigma is not None for v in best):
        sigma = bls.aggregate_g1(v.sigma for v in best)
    else:  # Σ(sᵢ·H) = (Σsᵢ)·H: the same aggregate signature as summing each signer's, in one multiplication
        sigma = bls.sign_aggregate([keys[i].secret for i in signers], best[0].digest)
    sig_data = bls.encode_signature_data([keys[i].g1 for i in non_signers], quorum_apk, apk_g2, sigma)
    allow = best[0].allow
    return Aggregate(allow, ctx.response(allow), sig_data, signers, non_signers, signed, total)
