"""The devnet's lifecycle: `up` starts (or reuses) anvil and deploys everything, `down` stops what `up` started."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app import settings
from devnet.anvil import Anvil, anvil_binary, read_pid_file, rpc_call, start_anvil, stop_pid, write_pid_file
from indexer.errors import LensError


@dataclass(frozen=True)
class DevnetConfig:
    """Everything `lens devnet up` needs to know, resolved from the settings registry and CLI flags."""

    port: int
    chain_id: int
    block_time: int
    accounts: int
    operators: int
    seed: int
    challenge_window_blocks: int
    response_window_blocks: int
    slash_bps: int
    deployment_file: Path


def pid_file(deployment_file: Path) -> Path:
    """Where `up` records the anvil process it started (next to the deployment document)."""
    return deployment_file.parent / "anvil.json"


def read_deployment(path: Path) -> dict:
    """The deployment document at path, or a clear error saying how to create it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LensError(f"no deployment document at {path}", "start the devnet with `lens devnet up`") from None
    except ValueError as err:
        raise LensError(
            f"deployment document {path} is not valid JSON: {err}", "delete it and run `lens devnet up` again"
        ) from None


def _deployment_is_live(doc: dict, node: Anvil) -> bool:
    """Whether the recorded deployment is on this node (same chain, task manager has code)."""
    if doc.get("rpc_url") != node.url:
        return False
    code = rpc_call(node.url, "eth_getCode", [doc["contracts"]["taskManager"], "latest"])
    return code not in ("0x", "0x0", "")


def deploy_world(
    w3, operators: int, seed: int, *, challenge_window_blocks: int, response_window_blocks: int, slash_bps: int
) -> dict:
    """Deploy the simulation's world (scenario operators, the four policies, the clients) from anvil account 0."""
    from devnet import deploy, scenario  # deferred: pulls in web3 and the compiled artifacts

    return deploy.deploy_devnet(
        w3,
        deployer=deploy.anvil_account(0),
        operators=scenario.operator_specs(operators, seed),
        policies=scenario.policy_specs(),
        clients=scenario.client_specs(),
        challenge_window_blocks=challenge_window_blocks,
        response_window_blocks=response_window_blocks,
        slash_bps=slash_bps,
    )


def up(cfg: DevnetConfig, progress=None) -> tuple[dict, bool]:
    """Start anvil and deploy the devnet, or reuse a running one; returns (deployment document, reused)."""
    anvil_binary()  # fail early, before anything is imported or started, when the tool is missing
    from web3 import Web3  # deferred: web3 is slow to import

    pidf = pid_file(cfg.deployment_file)
    node = read_pid_file(pidf)
    if node is not None and cfg.deployment_file.exists():
        doc = read_deployment(cfg.deployment_file)
        if _deployment_is_live(doc, node):
            return doc, True
    if node is None:
        log = cfg.deployment_file.parent / "anvil.log"
        cfg.deployment_file.parent.mkdir(parents=True, exist_ok=True)
        node = start_anvil(
            port=cfg.port, chain_id=cfg.chain_id, block_time=cfg.block_time, accounts=cfg.accounts, log_path=log
        )
        write_pid_file(pidf, node)
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
    try:
        doc = deploy_world(
            w3,
            cfg.operators,
            cfg.seed,
            challenge_window_blocks=cfg.challenge_window_blocks,
            response_window_blocks=cfg.response_window_blocks,
            slash_bps=cfg.slash_bps,
        )
    except LensError:
        raise
    except Exception as err:  # a revert or RPC failure while deploying: say which and keep the chain for inspection
        raise LensError(
            f"deployment failed: {err}", f"the chain is still running at {node.url}; `lens devnet down` stops it"
        ) from err
    doc = dict(doc, rpc_url=node.url, anvil_pid=node.pid)
    cfg.deployment_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.deployment_file.write_text(json.dumps(doc, indent=2) + "\n")
    return doc, False


def down(deployment_file: Path) -> Anvil | None:
    """Stop the anvil process `up` started (found by its own pid file, never by name); returns it if it ran."""
    pidf = pid_file(deployment_file)
    node = read_pid_file(pidf)
    if node is not None:
        stop_pid(node.pid)
    pidf.unlink(missing_ok=True)
    return node


def status(deployment_file: Path) -> dict:
    """What runs now: the recorded node, whether it answers, and its head block."""
    node = read_pid_file(pid_file(deployment_file))
    if node is None:
        return {"running": False}
    head = int(rpc_call(node.url, "eth_blockNumber"), 16)
    return {"running": True, "url": node.url, "pid": node.pid, "chain_id": node.chain_id, "head_block": head}


def config_from_settings(**overrides) -> DevnetConfig:
    """A DevnetConfig from the settings registry, with CLI overrides applied."""
    keys = (
        "port",
        "chain_id",
        "block_time",
        "accounts",
        "operators",
        "seed",
        "challenge_window_blocks",
        "response_window_blocks",
        "slash_bps",
    )
    values = {k: overrides.get(k) if overrides.get(k) is not None else settings.get(k) for k in keys}
    dep = overrides.get("deployment_file") or settings.get("deployment_file")
    return DevnetConfig(deployment_file=Path(dep), **values)
