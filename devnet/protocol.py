"""Newton structs as Python tuples: canonical ABI types, builders, digests and calldata for the devnet contracts."""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak

INTENT = "(address,address,uint256,bytes,uint256,bytes)"
TASK = f"(bytes32,address,uint32,uint32,{INTENT},bytes,bytes,bytes,uint256)"
POLICY_DATA = "(bytes,bytes,address,uint32)"
POLICY_TASK_DATA = f"(bytes32,address,bytes,{POLICY_DATA}[])"
POLICY_CONFIG = "(bytes,uint32)"
POLICY_STATE = f"(address,bytes32,{POLICY_CONFIG})"
TASK_RESPONSE = f"(bytes32,address,bytes32,address,{INTENT},bytes,bytes,{POLICY_TASK_DATA},{POLICY_CONFIG},uint256)"
RESPONSE_CERTIFICATE = "(uint32,uint32,bytes32,bytes)"
ATTESTATION = f"(bytes32,bytes32,address,uint32,{INTENT},bytes)"
CHALLENGE_DATA = "(bytes32,bytes,bytes)"
G1 = "(uint256,uint256)"
SET_POLICY_INFO = f"(bytes32,address,address,string,string,string,{POLICY_CONFIG},address[],bytes32,string)"

ALLOW = abi_encode(["bool"], [True])  # canonical allow (EVENTS.md §3.4)
DENY = abi_encode(["bool"], [False])


def selector(sig: str) -> bytes:
    """The 4-byte selector of a canonical function signature."""
    return keccak(text=sig)[:4]


SEL_CREATE = selector(f"createNewTask({TASK})")
SEL_RESPOND = selector(f"respondToTask({TASK},{TASK_RESPONSE},bytes,bytes)")
SEL_VALIDATE = selector(f"validateAttestation({ATTESTATION})")
SEL_CHALLENGE = selector(
    f"raiseAndResolveChallenge({TASK},{TASK_RESPONSE},{RESPONSE_CERTIFICATE},{CHALLENGE_DATA},{G1}[])"
)
SEL_EXECUTE = selector(f"execute({ATTESTATION})")
SEL_RECORD_DENIAL = selector("recordDenial(bytes32)")


def intent(from_: str, to: str, value: int, data: bytes, chain_id: int, function_signature: bytes) -> tuple:
    """Intent(from, to, value, data, chainId, functionSignature) — functionSignature is the human-readable text."""
    return (from_, to, int(value), bytes(data), int(chain_id), bytes(function_signature))


def task(
    task_id: bytes,
    policy_client: str,
    task_created_block: int,
    threshold_pct: int,
    intent_: tuple,
    intent_signature: bytes = b"",
    wasm_args: bytes = b"",
    quorum_numbers: bytes = b"\x00",
    initialization_timestamp: int = 0,
) -> tuple:
    """Task tuple in field order."""
    return (
        bytes(task_id),
        policy_client,
        int(task_created_block),
        int(threshold_pct),
        intent_,
        bytes(intent_signature),
        bytes(wasm_args),
        bytes(quorum_numbers),
        int(initialization_timestamp),
    )


def task_response(
    task_: tuple,
    policy_id: bytes,
    policy_address: str,
    evaluation_result: bytes,
    policy_source: bytes,
    policy_data: list[tuple],
    policy_params: bytes,
    expire_after: int,
) -> tuple:
    """TaskResponse for `task_` (copies taskId, client, intent, intentSignature, initializationTimestamp)."""
    return (
        task_[0],
        task_[1],
        bytes(policy_id),
        policy_address,
        task_[4],
        task_[5],
        bytes(evaluation_result),
        (bytes(policy_id), policy_address, bytes(policy_source), list(policy_data)),
        (bytes(policy_params), int(expire_after)),
        task_[8],
    )


def policy_data(wasm_args: bytes, data: bytes, address: str, expire_block: int) -> tuple:
    """PolicyData(wasmArgs, data, policyDataAddress, expireBlock)."""
    return (bytes(wasm_args), bytes(data), address, int(expire_block))


def response_digest(task_response_: tuple) -> bytes:
    """The message operators BLS-sign: keccak256(abi.encode(taskResponse))."""
    return keccak(abi_encode([TASK_RESPONSE], [task_response_]))


def certificate(reference_block: int, expire_after: int, hash_of_non_signers: bytes, signature_data: bytes) -> tuple:
    """The ResponseCertificate respondToTask emits (referenceBlock = the response's block number)."""
    return (
        int(reference_block),
        int(reference_block) + int(expire_after),
        bytes(hash_of_non_signers),
        bytes(signature_data),
    )


def attestation(task_response_: tuple, expiration: int) -> tuple:
    """Attestation(taskId, policyId, policyClient, expiration, intent, intentSignature) for an allowed response."""
    r = task_response_
    return (r[0], r[2], r[1], int(expiration), r[4], r[5])


def create_calldata(task_: tuple) -> bytes:
    return SEL_CREATE + abi_encode([TASK], [task_])


def respond_calldata(task_: tuple, response: tuple, signature_data: bytes, attestation_data: bytes = b"") -> bytes:
    return SEL_RESPOND + abi_encode(
        [TASK, TASK_RESPONSE, "bytes", "bytes"], [task_, response, bytes(signature_data), bytes(attestation_data)]
    )


def execute_calldata(attestation_: tuple) -> bytes:
    return SEL_EXECUTE + abi_encode([ATTESTATION], [attestation_])


def record_denial_calldata(task_id: bytes) -> bytes:
    return SEL_RECORD_DENIAL + abi_encode(["bytes32"], [bytes(task_id)])


def challenge_calldata(
    task_: tuple, response: tuple, certificate_: tuple, challenge: tuple, non_signer_g1s: list[tuple[int, int]]
) -> bytes:
    return SEL_CHALLENGE + abi_encode(
        [TASK, TASK_RESPONSE, RESPONSE_CERTIFICATE, CHALLENGE_DATA, f"{G1}[]"],
        [task_, response, certificate_, challenge, [tuple(g) for g in non_signer_g1s]],
    )
