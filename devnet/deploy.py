"""Deploy the devnet contracts, register operators and bind client params; returns the deployment document."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from devnet import bls, tx
from devnet.contracts import load_artifact
from devnet.tx import rpc, send_tx
from indexer.errors import LensError

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's public default
TASK_CREATION_BUFFER_WINDOW = 100  # blocks a task's taskCreatedBlock may lag behind its createNewTask block
VAULT_ETH_WEI = 1_000 * 10**18  # every AgentVault starts with this much ETH …
VAULT_TOKEN_WEI = 10_000_000 * 10**18  # … and this much dUSD
OPERATOR_GAS_WEI = 10**22  # gas money for each operator key


@dataclass(frozen=True)
class OperatorSpec:
    """An operator to register: name, BLS key seed, stake (wei-like units), socket and metadata URI."""

    name: str
    key_seed: bytes
    stake: int
    socket: str
    metadata_uri: str


@dataclass(frozen=True)
class PolicySpec:
    """A policy logic to deploy as one NewtonPolicy; policy_data are data-provider names (one oracle each)."""

    name: str
    source: str
    entrypoint: str
    policy_cid: str
    schema_cid: str
    metadata_cid: str
    version: str
    policy_data: tuple[str, ...]


@dataclass(frozen=True)
class ClientSpec:
    """A policy client (AgentVault) bound to one policy with its initial params and attestation lifetime."""

    name: str
    policy: str
    params: dict
    expire_after: int


# ---------------------------------------------------------------- keys and encoding helpers


def derived_account(role: str, seed: Any, i: int) -> LocalAccount:
    """The deterministic ECDSA key of a simulated actor: keccak256(f"{role}:{seed}:{i}")."""
    return Account.from_key(keccak(text=f"{role}:{seed}:{i}"))


def operator_account(spec: OperatorSpec) -> LocalAccount:
    """The operator's ECDSA key (its on-chain address), derived from its BLS key seed."""
    return Account.from_key(keccak(b"operator-ecdsa:" + bytes(spec.key_seed)))


def operator_keypair(spec: OperatorSpec) -> bls.BlsKeyPair:
    """The operator's BLS key pair."""
    return bls.keypair_from_seed(bytes(spec.key_seed))


@lru_cache(maxsize=8)
def anvil_account(i: int) -> LocalAccount:
    """Anvil's default account i (public test mnemonic): 0 deployer, 1 aggregator, 2 resolver, 3 challenger."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")


@cache
def _codec(name: str):
    """A provider-less web3 contract object used only to ABI-encode calls and constructors."""
    from web3 import Web3

    return Web3().eth.contract(abi=load_artifact(name)["abi"], bytecode=load_artifact(name)["bytecode"])


def calldata(contract: str, fn: str, *args) -> str:
    """ABI-encoded call of `contract.fn(*args)` (hex)."""
    return _codec(contract).encode_abi(fn, list(args))


def params_bytes(params: dict) -> bytes:
    """PolicyConfig.policyParams: the UTF-8 JSON of data.params (compact, keys sorted, so it is reproducible)."""
    return json.dumps(params, separators=(",", ":"), sort_keys=True).encode()


def policy_code_hash(source: str) -> str:
    """A policy's code hash: keccak256 of its Rego source bytes (0x hex)."""
    return "0x" + keccak(source.encode()).hex()


def challenge_data(
    task_id: bytes, response_digest: bytes, proven_result: bytes, resolver: LocalAccount | None = None
) -> tuple[bytes, bytes, bytes]:
    """ChallengeData (taskId, proof, data) vouched by the devnet resolver key (stand-in for the SP1 ZK proof):
    data = abi.encode(bytes proven), proof = personal_sign(keccak256(abi.encode(taskId, digest, proven)))."""
    resolver = resolver or anvil_account(2)
    h = keccak(abi_encode(["bytes32", "bytes32", "bytes"], [task_id, response_digest, proven_result]))
    sig = Account.sign_message(encode_defunct(primitive=h), resolver.key).signature
    return (bytes(task_id), bytes(sig), abi_encode(["bytes"], [proven_result]))


def _set_balance(w3, address: str, wei: int) -> None:
    rpc(w3, "anvil_setBalance", [address, hex(wei)])


def _deploy(w3, sender, name: str, *args) -> str:
    return tx.deploy(w3, name, *args, sender=sender)


def _proxy(w3, sender, admin: str, implementation: str, init_data: str) -> str:
    """A TransparentUpgradeableProxy over `implementation`, administered by `admin`, initialized by `init_data`."""
    return tx.deploy(
        w3,
        "TransparentUpgradeableProxy",
        to_checksum_address(implementation),
        to_checksum_address(admin),
        bytes.fromhex(init_data[2:]),
        sender=sender,
    )


def deploy_policy(w3, sender, factory: str, p: PolicySpec, datas: list[str]) -> str:
    """Deploy one policy proxy through NewtonPolicyFactory.deployPolicy (→ PolicyDeployed); returns its address."""
    info = (
        "0x" + "00" * 20,
        to_checksum_address(sender),
        p.metadata_cid,
        p.policy_cid,
        p.schema_cid,
        p.entrypoint,
        [to_checksum_address(d) for d in datas],
        bytes.fromhex(policy_code_hash(p.source)[2:]),
    )
    receipt = send_tx(
        w3,
        sender,
        to=to_checksum_address(factory),
        data=calldata("NewtonPolicyFactory", "deployPolicy", info, p.version),
        what=f"deployPolicy({p.name})",
    )
    for log in receipt["logs"]:
        if log["topics"][0] == POLICY_DEPLOYED and log["address"].lower() == factory.lower():
            return "0x" + log["data"][2 + 24 : 2 + 64].lower()
    raise LensError(f"deployPolicy({p.name}) emitted no PolicyDeployed", "the NewtonPolicyFactory artifact is stale")


def _event_topic(sig: str) -> str:
    return "0x" + keccak(text=sig).hex()


POLICY_ID_UPDATED = _event_topic("PolicyIdUpdated(address,bytes32)")
POLICY_DEPLOYED = _event_topic(
    "PolicyDeployed(address,(address,address,string,string,string,string,address[],bytes32),string)"
)
POLICY_IMPL_VERSION = "1.0.0"  # NewtonPolicyFactory's implementationVersion of the devnet's NewtonPolicy


# ---------------------------------------------------------------- operations


def register_operator(w3, registry: str, spec: OperatorSpec) -> None:
    """Register `spec` in OperatorRegistry: fund its ECDSA key, prove possession of its BLS key, set its stake."""
    acct = operator_account(spec)
    kp = operator_keypair(spec)
    chain_id = int(rpc(w3, "eth_chainId"), 16)
    _set_balance(w3, acct.address, OPERATOR_GAS_WEI)
    msg = bls.pubkey_registration_message(acct.address, to_checksum_address(registry), chain_id)
    sig = bls.pop_signature(kp, msg)
    data = calldata(
        "OperatorRegistry",
        "registerOperator",
        kp.g1,
        [list(kp.g2[0]), list(kp.g2[1])],
        sig,
        spec.socket,
        spec.metadata_uri,
        int(spec.stake),
    )
    send_tx(
        w3, acct, to=to_checksum_address(registry), data=data, what=f"registerOperator({spec.name})", chain_id=chain_id
    )


def upgrade_calldata(doc: dict, role: str = "taskManager") -> tuple[str, str]:
    """(ProxyAdmin address, calldata) of the deployment's prepared upgrade of proxy `role`:
    ProxyAdmin.upgradeAndCall(proxy, new implementation, its reinitializer) → Upgraded + Initialized(2)."""
    try:
        up = doc["upgrades"][role]
        admin, proxy = doc["contracts"]["proxyAdmin"], doc["contracts"][role]
    except KeyError:
        raise LensError(
            f"the deployment prepares no upgrade of {role}", "redeploy with `lens devnet up` (proxied devnet)"
        ) from None
    init = calldata(up["contract"], up["call"]) if up.get("call") else "0x"
    data = calldata(
        "ProxyAdmin",
        "upgradeAndCall",
        to_checksum_address(proxy),
        to_checksum_address(up["implementation"]),
        bytes.fromhex(init[2:]),
    )
    return admin, data


def upgrade_task_manager(w3, doc: dict) -> dict:
    """Upgrade the task manager proxy to its prepared second implementation (owner of the ProxyAdmin sends it);
    returns the receipt."""
    admin, data = upgrade_calldata(doc)
    owner = doc["roles"]["deployer"]
    return send_tx(w3, to_checksum_address(owner), to=to_checksum_address(admin), data=data, what="upgrade TaskManager")


def set_client_params(w3, deployment: dict, client_name: str, params: dict, expire_after: int) -> str:
    """Bind new params to a client (AgentVault.setPolicy → PolicySet + PolicyIdUpdated); returns the new policyId."""
    try:
        client = deployment["clients"][client_name]["address"]
    except KeyError:
        raise LensError(
            f"no client named {client_name!r} in the deployment",
            f"known clients: {', '.join(deployment.get('clients', {}))}",
        ) from None
    owner = deployment["roles"]["deployer"]
    data = calldata("AgentVault", "setPolicy", (params_bytes(params), int(expire_after)))
    receipt = send_tx(
        w3, to_checksum_address(owner), to=to_checksum_address(client), data=data, what=f"setPolicy({client_name})"
    )
    for log in receipt["logs"]:
        if log["topics"][0] == POLICY_ID_UPDATED and log["address"].lower() == client.lower():
            return log["topics"][2].lower()
    raise LensError(f"setPolicy({client_name}) emitted no PolicyIdUpdated", "the AgentVault artifact is out of date")


def deploy_devnet(
    w3,
    *,
    deployer,
    operators: Iterable[OperatorSpec],
    policies: Iterable[PolicySpec],
    clients: Iterable[ClientSpec],
    challenge_window_blocks: int,
    response_window_blocks: int,
    slash_bps: int,
    creation_buffer_blocks: int = TASK_CREATION_BUFFER_WINDOW,
) -> dict:
    """Deploy every devnet contract, register the operators, deploy and bind the clients; returns the deployment
    document that `indexer.deployment.parse` reads (plus `oracles`, `operators` and each client's `policy_id`).

    Roles: anvil accounts 0 deployer/owner, 1 aggregator (task generator), 2 challenge resolver, 3 challenger.
    Each policy-data provider name gets one PolicyDataOracle contract (a real address; the oracle output itself
    is produced off chain). Each AgentVault is funded with VAULT_ETH_WEI and VAULT_TOKEN_WEI dUSD."""
    operators, policies, clients = list(operators), list(policies), list(clients)
    if not 0 <= slash_bps <= 10_000:
        raise LensError(f"slash_bps must be within 0..10000 (got {slash_bps})", "1000 means 10 %")
    accounts = [a.lower() for a in rpc(w3, "eth_accounts")]
    if len(accounts) < 4:
        raise LensError("the node exposes fewer than 4 unlocked accounts", "start anvil with --accounts 4 or more")
    deployer = deployer.address if isinstance(deployer, LocalAccount) else str(deployer)
    dep = to_checksum_address(deployer)
    aggregator, resolver, challenger = accounts[1], accounts[2], accounts[3]
    chain_id = int(rpc(w3, "eth_chainId"), 16)
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise LensError("duplicate policy names", "each PolicySpec needs its own name")
    by_policy = {p.name: p for p in policies}
    for c in clients:
        if c.policy not in by_policy:
            raise LensError(f"client {c.name!r} uses unknown policy {c.policy!r}", f"known: {', '.join(names)}")

    start = int(rpc(w3, "eth_blockNumber"), 16)
    registry = _deploy(w3, dep, "OperatorRegistry", dep)
    # Upgradeable contracts sit behind OpenZeppelin TransparentUpgradeableProxies administered by one ProxyAdmin
    # (owned by the deployer), each initialized in its proxy's constructor, as Newton deploys its own.
    proxy_admin = _deploy(w3, dep, "ProxyAdmin")
    verifier_impl = _deploy(w3, dep, "ChallengeVerifier")
    verifier = _proxy(
        w3,
        dep,
        proxy_admin,
        verifier_impl,
        calldata("ChallengeVerifier", "initialize", dep, to_checksum_address(resolver)),
    )
    tm_impl = _deploy(w3, dep, "TaskManagerV1")  # left uninitialized on purpose (see TaskManagerV1.sol)
    tm = _proxy(
        w3,
        dep,
        proxy_admin,
        tm_impl,
        calldata(
            "TaskManagerV1",
            "initialize",
            dep,
            to_checksum_address(registry),
            to_checksum_address(verifier),
            int(response_window_blocks),
            int(challenge_window_blocks),
            int(creation_buffer_blocks),
            int(slash_bps),
        ),
    )
    tm_v2 = _deploy(w3, dep, "TaskManager")  # the second implementation: `lens simulate` upgrades to it mid-history
    send_tx(
        w3,
        dep,
        to=registry,
        data=calldata("OperatorRegistry", "setTaskManager", to_checksum_address(tm)),
        what="setTaskManager",
    )
    send_tx(
        w3,
        dep,
        to=registry,
        data=calldata("OperatorRegistry", "addTaskGenerator", to_checksum_address(aggregator)),
        what="addTaskGenerator",
    )
    token = _deploy(w3, dep, "TestToken", dep)

    oracles: dict[str, str] = {}
    for p in policies:
        for provider in p.policy_data:
            if provider not in oracles:
                oracles[provider] = _deploy(w3, dep, "PolicyDataOracle", provider, dep, 0)
    policy_impl = _deploy(w3, dep, "NewtonPolicy")
    factory = _deploy(
        w3,
        dep,
        "NewtonPolicyFactory",
        to_checksum_address(policy_impl),
        to_checksum_address(proxy_admin),
        POLICY_IMPL_VERSION,
    )
    policy_doc: dict[str, dict] = {}
    for p in policies:
        code_hash = policy_code_hash(p.source)
        datas = [to_checksum_address(oracles[n]) for n in p.policy_data]
        addr = deploy_policy(w3, dep, factory, p, datas)
        policy_doc[p.name] = {
            "address": addr,
            "entrypoint": p.entrypoint,
            "policy_code_hash": code_hash,
            "policy_data": [d.lower() for d in datas],
            "version": p.version,
        }

    for spec in operators:
        register_operator(w3, registry, spec)

    doc: dict[str, Any] = {
        "name": "devnet",
        "chain_id": chain_id,
        "rpc_url": getattr(w3.provider, "endpoint_uri", ""),
        "start_block": 0,
        "confirmations": 0,
        "contracts": {
            "taskManager": tm,
            "attestationValidator": tm,
            "challengeVerifier": verifier,
            "operatorRegistry": registry,
            "blsApkRegistry": registry,
            "stakeRegistry": registry,
            "indexRegistry": registry,
            "slasher": registry,
            "token": token,
            "proxyAdmin": proxy_admin,
            "policyFactory": factory,
        },
        # ERC-1967 proxies as deployed: implementation contract names (artifacts) by address, and the prepared
        # second task-manager implementation (`devnet.governance.upgrade_task_manager` switches to it).
        "proxies": {
            "taskManager": {"implementation": tm_impl, "contract": "TaskManagerV1"},
            "challengeVerifier": {"implementation": verifier_impl, "contract": "ChallengeVerifier"},
            **{f"policy:{n}": {"implementation": policy_impl, "contract": "NewtonPolicy"} for n in policy_doc},
        },
        "implementations": {
            tm_impl: "TaskManagerV1",
            tm_v2: "TaskManager",
            verifier_impl: "ChallengeVerifier",
            policy_impl: "NewtonPolicy",
        },
        "upgrades": {"taskManager": {"implementation": tm_v2, "contract": "TaskManager", "call": "initializeV2"}},
        "policies": policy_doc,
        "clients": {},
        "oracles": oracles,
        "operators": {
            s.name: {
                "address": operator_account(s).address.lower(),
                "operator_id": "0x" + bls.operator_id(operator_keypair(s).g1).hex(),
            }
            for s in operators
        },
        "roles": {"deployer": dep.lower(), "aggregator": aggregator, "resolver": resolver, "challenger": challenger},
        "deployment_block": start + 1,
        "anvil_pid": None,
    }
    for c in clients:
        vault = _deploy(
            w3, dep, "AgentVault", to_checksum_address(tm), to_checksum_address(policy_doc[c.policy]["address"]), dep
        )
        doc["clients"][c.name] = {"address": vault, "policy": c.policy}
        doc["clients"][c.name]["policy_id"] = set_client_params(w3, doc, c.name, c.params, c.expire_after)
        _set_balance(w3, vault, VAULT_ETH_WEI)
        send_tx(
            w3,
            dep,
            to=token,
            data=calldata("TestToken", "mint", to_checksum_address(vault), VAULT_TOKEN_WEI),
            what=f"mint dUSD to {c.name}",
        )
    return doc
