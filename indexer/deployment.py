"""Deployment documents (devnet file or presets): load, validate, and check them against the chain."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import LensError

ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = ROOT / "data" / "deployments"
DEVNET_FILE = ROOT / "data" / "devnet" / "deployment.json"
PRESETS = ("ethereum", "base", "sepolia", "base-sepolia")
CONTRACT_ROLES = (
    "taskManager",
    "attestationValidator",
    "challengeVerifier",
    "operatorRegistry",
    "blsApkRegistry",
    "stakeRegistry",
    "indexRegistry",
    "slasher",
)
_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_CONFIRMATIONS = {1: 12, 11155111: 12, 8453: 30, 84532: 30}


@dataclass(frozen=True)
class Deployment:
    """What the indexer needs from a deployment document."""

    name: str
    chain_id: int
    rpc_url: str
    start_block: int
    confirmations: int
    contracts: dict  # role → address (lower-case)
    policies: dict  # name → {"address", "entrypoint", "policy_code_hash"}
    clients: dict  # name → {"address", "policy"}
    source: str  # file it came from
    start_block_search: bool = False  # find the task manager's creation block by binary search on eth_getCode
    start_block_upper: int | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address whose logs are indexed by address (contracts, policies, clients), unique, sorted."""
        out = {a for a in self.contracts.values() if a}
        out |= {p["address"] for p in self.policies.values() if p.get("address")}
        out |= {c["address"] for c in self.clients.values() if c.get("address")}
        out.discard("0x" + "0" * 40)
        return tuple(sorted(out))


def resolve_path(deployment: str, devnet_file: str | None = None) -> Path:
    """The file of a preset name, 'devnet', or a path."""
    if deployment == "devnet":
        return Path(devnet_file) if devnet_file else DEVNET_FILE
    if deployment in PRESETS:
        return PRESETS_DIR / f"{deployment}.json"
    return Path(deployment)


def _addr(value, where: str, source: str) -> str:
    if not isinstance(value, str) or not _ADDR.match(value):
        raise LensError(f"{source}: {where} is not an address: {value!r}", "addresses are 0x followed by 40 hex digits")
    return value.lower()


def parse(doc: dict, source: str = "<document>") -> Deployment:
    """Validate a deployment document into a Deployment; a bad field is a LensError.

    The document is JSON: `name`, `chain_id`, `rpc_url`, `start_block`, `confirmations`, `contracts` (role → address,
    roles as in CONTRACT_ROLES), `policies` (name → address, entrypoint, policy_code_hash) and `clients` (name →
    address, policy); `data/deployments/*.json` are examples."""
    if not isinstance(doc, dict):
        raise LensError(f"{source}: a deployment document must be a JSON object")
    for key in ("chain_id", "contracts"):
        if key not in doc:
            raise LensError(
                f"{source}: missing key {key!r}",
                "a deployment document needs chain_id and contracts; see data/deployments/*.json for examples",
            )
    try:
        chain_id = int(doc["chain_id"])
        start = int(doc.get("start_block", doc.get("deployment_block", 0)) or 0)
    except (TypeError, ValueError):
        raise LensError(f"{source}: chain_id and start_block must be integers") from None
    contracts = {}
    for role, a in (doc.get("contracts") or {}).items():
        contracts[role] = _addr(a, f"contracts.{role}", source)
    if not any(contracts.get(r) for r in ("taskManager", "attestationValidator")):
        raise LensError(f"{source}: contracts.taskManager is missing", "a deployment needs at least the task manager")
    policies = {}
    for name, p in (doc.get("policies") or {}).items():
        policies[name] = dict(p, address=_addr(p.get("address"), f"policies.{name}.address", source))
    clients = {}
    for name, c in (doc.get("clients") or {}).items():
        clients[name] = dict(c, address=_addr(c.get("address"), f"clients.{name}.address", source))
    conf = doc.get("confirmations")
    if conf is None:
        conf = DEFAULT_CONFIRMATIONS.get(chain_id, 0)
    return Deployment(
        name=str(doc.get("name", Path(source).stem)),
        chain_id=chain_id,
        rpc_url=str(doc.get("rpc_url", "")),
        start_block=start,
        confirmations=int(conf),
        contracts=contracts,
        policies=policies,
        clients=clients,
        source=source,
        start_block_search=bool(doc.get("start_block_search", False)),
        start_block_upper=int(doc["start_block_upper"]) if doc.get("start_block_upper") else None,
    )


def load(deployment: str, devnet_file: str | None = None) -> Deployment:
    """Load a preset, 'devnet' or a path; a missing or malformed file is a LensError with what to do."""
    path = resolve_path(deployment, devnet_file)
    if not path.exists():
        hint = (
            "start the devnet first: lens devnet up"
            if deployment == "devnet"
            else f"use one of: devnet, {', '.join(PRESETS)}, or a path to a deployment JSON"
        )
        raise LensError(f"deployment file not found: {path}", hint)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LensError(f"{path}: not valid JSON ({e})", "fix or regenerate the deployment file") from None
    return parse(doc, str(path))


def check_against_chain(dep: Deployment, rpc) -> None:
    """The RPC must serve the deployment's chain and every contract address must hold code."""
    actual = rpc.chain_id()
    if actual != dep.chain_id:
        raise LensError(
            f"chain id mismatch: {dep.source} is for chain {dep.chain_id}, but {rpc.url} serves chain {actual}",
            "point --rpc at a node of the right chain, or use the matching --deployment",
        )
    roles = [(r, a) for r, a in dep.contracts.items() if r in CONTRACT_ROLES and a]
    if not roles:
        return
    codes = rpc.batch([("eth_getCode", [a, "latest"]) for _, a in roles])
    missing = [f"{r} {a}" for (r, a), code in zip(roles, codes) if not code or code in ("0x", "0x0")]
    if missing:
        raise LensError(
            f"no contract code on chain {actual} at: " + ", ".join(missing),
            f"the deployment file {dep.source} has a wrong address, or the chain was reset (lens devnet up)",
        )


def find_creation_block(rpc, address: str, lo: int, hi: int) -> int:
    """First block in lo..hi at which `address` has code (binary search on eth_getCode; needs an archive node)."""

    def has_code(block: int) -> bool:
        code = rpc.call("eth_getCode", [address, hex(block)])
        return bool(code) and code not in ("0x", "0x0")

    if not has_code(hi):
        raise LensError(f"{address} has no code at block {hi}", "check the deployment's start_block_upper")
    while lo < hi:
        mid = (lo + hi) // 2
        if has_code(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
