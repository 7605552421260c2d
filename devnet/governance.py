"""The devnet's governance history: the mid-run task-manager upgrade and policy ownership transfer `lens simulate`
schedules (raw calldata for the simulation's block builder)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode

from devnet.deploy import derived_account, upgrade_calldata
from devnet.protocol import selector


@dataclass(frozen=True)
class GovernanceTx:
    """One governance transaction the deployer (ProxyAdmin and policy owner) sends: target, calldata, label."""

    to: str
    data: bytes
    label: str


def new_policy_owner(seed: int) -> str:
    """The account one policy's ownership is handed to mid-run (deterministic for the seed)."""
    return derived_account("policy-owner", seed, 0).address.lower()


def transferred_policy(doc: dict) -> str | None:
    """The name of the policy whose ownership the simulation transfers (the first by name), None without policies."""
    names = sorted(doc.get("policies") or {})
    return names[0] if names else None


def scheduled(
    doc: dict, seed: int, upgrade_at: float | None, transfer_at: float | None
) -> list[tuple[float, str, GovernanceTx]]:
    """(fraction of the run, "governance", tx) for the prepared upgrade and the ownership transfer, as the
    deployment allows (a deployment without a prepared upgrade or without policies schedules nothing for it)."""
    out: list[tuple[float, str, GovernanceTx]] = []
    if upgrade_at is not None and (doc.get("upgrades") or {}).get("taskManager"):
        admin, data = upgrade_calldata(doc)
        out.append((upgrade_at, "governance", GovernanceTx(admin, bytes.fromhex(data[2:]), "upgrade TaskManager")))
    name = transferred_policy(doc)
    if transfer_at is not None and name and doc.get("upgrades"):
        data = selector("transferOwnership(address)") + abi_encode(["address"], [new_policy_owner(seed)])
        policy = doc["policies"][name]["address"]
        out.append((transfer_at, "governance", GovernanceTx(policy, data, f"transferOwnership of policy {name}")))
    return out
