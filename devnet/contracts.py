"""Compile the devnet Solidity contracts with the pinned solcjs, load the committed artifacts, deploy them."""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from indexer.errors import LensError

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"
SOLCJS = ROOT / "devnet" / "tools" / "node_modules" / ".bin" / "solcjs"
NODE_MODULES = ROOT / "devnet" / "tools" / "node_modules"  # OpenZeppelin's sources, pinned in package.json

# The contracts that get an artifact (libraries and interfaces are compiled into them). ProxyAdmin and
# TransparentUpgradeableProxy are OpenZeppelin's own (npm @openzeppelin/contracts), compiled by the same solc.
DEPLOYABLE = (
    "OperatorRegistry",
    "NewtonPolicy",
    "NewtonPolicyFactory",
    "PolicyDataOracle",
    "AgentVault",
    "TestToken",
    "ChallengeVerifier",
    "TaskManager",
    "TaskManagerV1",
    "ProxyAdmin",
    "TransparentUpgradeableProxy",
    "TimelockController",
    "BeaconProxy",
    "UpgradeableBeacon",
)

# Pinned compiler settings: part of every artifact, so a changed setting shows up as an artifact diff.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"]}},
}


def _solcjs() -> str:
    """The solcjs binary from `make setup` (settings key `solcjs_bin`), or a clear error."""
    try:
        from app import settings

        path = Path(settings.get("solcjs_bin"))
    except Exception:  # settings key missing: fall back to the project-local install
        path = SOLCJS
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LensError(f"solcjs not found at {path}", "run `make setup` to install solc from the npm registry")
    return str(path)


_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*\sfrom\s+)?["\']([^"\']+)["\']', re.M)


def _library_source(unit: str) -> str:
    """The text of an npm library source unit (`@openzeppelin/...`), or a clear error when it is not installed."""
    path = NODE_MODULES / unit
    if not path.is_file():
        raise LensError(f"imported source {unit} not found under {NODE_MODULES}", "run `make setup` (npm ci)")
    return path.read_text()


def sources() -> dict[str, str]:
    """Every `contracts/*.sol` file by file name, plus every library source unit they import (transitively,
    by solc's source unit name, e.g. `@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol`), in a stable order."""
    out = {p.name: p.read_text() for p in sorted(CONTRACTS_DIR.glob("*.sol"))}
    todo = list(out)
    while todo:
        unit = todo.pop()
        for imp in _IMPORT.findall(out[unit]):
            name = posixpath.normpath(posixpath.join(posixpath.dirname(unit), imp)) if imp.startswith(".") else imp
            if name not in out:
                out[name] = _library_source(name)
                todo.append(name)
    return dict(sorted(out.items()))


def source_hash(srcs: dict[str, str]) -> str:
    """keccak256 of the canonical JSON of all sources (contracts import each other, so one hash for all)."""
    return "0x" + keccak(json.dumps(srcs, sort_keys=True, separators=(",", ":")).encode()).hex()


# Node driver for solc's JS API: reads the standard-JSON request from a file and writes the answer to a
# file (the solcjs CLI's piped stdout is cut at 64 KiB when node exits).
_DRIVER = """
const fs = require('fs');
const solc = require(process.argv[2]);
const input = fs.readFileSync(process.argv[3], 'utf8');
fs.writeFileSync(process.argv[4], JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
"""


def _run_solc(request: dict) -> tuple[str, dict]:
    """Run solc's standard-JSON compile through node and the pinned solc package; returns (version, output)."""
    import tempfile

    solc_pkg = Path(os.path.realpath(_solcjs())).parent
    with tempfile.TemporaryDirectory() as tmp:
        req, res, drv = Path(tmp, "in.json"), Path(tmp, "out.json"), Path(tmp, "drive.js")
        req.write_text(json.dumps(request))
        drv.write_text(_DRIVER)
        proc = subprocess.run(
            ["node", str(drv), str(solc_pkg), str(req), str(res)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not res.is_file():
            raise LensError(f"solc failed: {proc.stderr.strip()[:2000]}", "check node and `make setup`")
        doc = json.loads(res.read_text())
        return doc["version"], doc["output"]


def compiler_version() -> str:
    """The version string of the pinned solcjs (e.g. 0.8.37+commit.f401782d.Emscripten.clang)."""
    out = subprocess.run([_solcjs(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def compile_all() -> dict[str, dict]:
    """Compile every source with solcjs standard JSON; returns artifact dicts by contract name."""
    srcs = sources()
    request = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in srcs.items()},
        "settings": SETTINGS,
    }
    version, out = _run_solc(request)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        msg = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise LensError(f"Solidity compilation failed:\n{msg}", "fix the errors above in contracts/*.sol")
    shash = source_hash(srcs)
    artifacts: dict[str, dict] = {}
    for file_name, contracts in out.get("contracts", {}).items():
        for name, c in contracts.items():
            if name not in DEPLOYABLE:
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceFile": file_name,
                "abi": c["abi"],
                "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
                "storageLayout": c.get("storageLayout") or {"storage": [], "types": None},
                "compiler": {"version": version, "settings": SETTINGS},
                "sourceHash": shash,
            }
    missing = [n for n in DEPLOYABLE if n not in artifacts]
    if missing:
        raise LensError(f"compiled output lacks contracts {missing}", "each must live in contracts/<Name>.sol")
    return artifacts


def artifact_text(artifact: dict) -> str:
    """The exact committed form of an artifact (stable key order, trailing newline)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_artifacts(artifacts: dict[str, dict]) -> list[Path]:
    """Write `contracts/artifacts/<Name>.json`; returns the paths written."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, art in sorted(artifacts.items()):
        path = ARTIFACTS_DIR / f"{name}.json"
        path.write_text(artifact_text(art))
        paths.append(path)
    load_artifact.cache_clear()
    return paths


def check_artifacts(artifacts: dict[str, dict] | None = None) -> list[str]:
    """Names of committed artifacts that differ from a fresh compile (empty list = up to date)."""
    fresh = compile_all() if artifacts is None else artifacts
    stale = []
    for name, art in sorted(fresh.items()):
        path = ARTIFACTS_DIR / f"{name}.json"
        if not path.is_file() or path.read_text() != artifact_text(art):
            stale.append(name)
    return stale


@cache
def load_artifact(name: str) -> dict:
    """The committed artifact of contract `name` (abi, bytecode, deployedBytecode, compiler, sourceHash)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise LensError(f"no artifact for contract {name!r} at {path}", "run `make contracts` (lens contracts build)")
    return json.loads(path.read_text())


@cache
def error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector → (custom error name, input types) over every artifact, to name reverts."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for name in DEPLOYABLE:
        try:
            abi = load_artifact(name)["abi"]
        except LensError:
            continue
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


def _abi_type(inp: dict) -> str:
    """Canonical type string of an ABI input (tuples expanded)."""
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[len("tuple") :]
    return t


def decode_revert(data: bytes | str | None) -> str:
    """A readable revert reason: `ErrorName(args…)` for custom errors, the string of Error(string), else hex."""
    from eth_abi import decode

    if data is None:
        return "reverted without data"
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if len(data) < 4:
        return "reverted without data" if not data else f"reverted with 0x{data.hex()}"
    sel, body = data[:4], data[4:]
    if sel == bytes.fromhex("08c379a0"):
        try:
            return f"Error({decode(['string'], body)[0]!r})"
        except Exception:
            pass
    if sel == bytes.fromhex("4e487b71"):
        try:
            return f"Panic(0x{decode(['uint256'], body)[0]:02x})"
        except Exception:
            pass
    hit = error_selectors().get(sel)
    if hit is None:
        return f"reverted with unknown error 0x{data.hex()}"
    name, types = hit
    try:
        args = decode(types, body)
    except Exception:
        return name
    shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
    return f"{name}({shown})"


def revert_reason(err: dict) -> str:
    """The readable revert reason of a JSON-RPC error object, as anvil reports a revert (data nested or not)."""
    data = err.get("data")
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        return decode_revert(data)
    return err.get("message", "reverted")


def is_revert(err: dict) -> bool:
    """Whether a JSON-RPC error object reports a revert (with or without data)."""
    data = err.get("data")
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    return (isinstance(data, str) and data.startswith("0x")) or "revert" in str(err.get("message", ""))
