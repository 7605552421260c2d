"""The one settings registry: every configurable value, its default, its environment variable and its help."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from app.errors import LensError
from indexer.options import IndexOptions

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One configurable value: CLI option name, default, environment override and help text."""

    key: str
    default: Any
    help: str
    type: type = str

    @property
    def env(self) -> str:
        """The environment variable that overrides the default (LENS_<KEY>)."""
        return "LENS_" + self.key.upper()

    @property
    def flag(self) -> str:
        """The CLI flag for this setting."""
        return "--" + self.key.replace("_", "-")


_SETTINGS = [
    # storage
    Setting("db", str(ROOT / "data" / "lens.duckdb"), "DuckDB file the indexer writes and the dashboard reads."),
    # chain access
    Setting("rpc", "", "JSON-RPC URL of the chain to read; empty means the URL in the deployment file."),
    Setting(
        "deployment",
        "devnet",
        "Deployment preset (devnet, ethereum, base, sepolia, base-sepolia) or a path to a deployment JSON.",
    ),
    Setting(
        "deployment_file",
        str(ROOT / "data" / "devnet" / "deployment.json"),
        "Where `lens devnet up` writes the devnet deployment document.",
    ),
    Setting(
        "confirmations",
        -1,
        "Blocks to stay behind the head (reorg safety); -1 means the preset's default (0 on devnet, 12 on L1, 30 on L2).",
        int,
    ),
    Setting(
        "batch_blocks",
        IndexOptions.batch_blocks,
        "Initial block range of one eth_getLogs call; halved on 'too many results', grown again after successes.",
        int,
    ),
    Setting(
        "rpc_retries", IndexOptions.retries, "Retries with exponential backoff on timeouts, HTTP 429 and 5xx.", int
    ),
    Setting(
        "metadata_timeout_s",
        IndexOptions.metadata_timeout_s,
        "Timeout for fetching an operator's metadata URI (https:// or ipfs://).",
        float,
    ),
    Setting(
        "index_commit_logs",
        IndexOptions.commit_logs,
        "The indexer commits a transaction (rows, derived tables, checkpoint) at least every this many logs.",
        int,
    ),
    Setting(
        "index_commit_s",
        IndexOptions.commit_s,
        "… or at least this often, in seconds, so readers get the DB file between batches.",
        float,
    ),
    Setting(
        "index_workers",
        IndexOptions.workers,
        "Fetch-and-decode worker processes the indexer runs at once on long ranges.",
        int,
    ),
    Setting(
        "index_worker_min_blocks",
        IndexOptions.worker_min_blocks,
        "Ranges at least this long are fetched and decoded by worker processes.",
        int,
    ),
    Setting(
        "duckdb_threads",
        IndexOptions.duckdb_threads,
        "DuckDB threads of the indexer's write connection (the writer is not the bottleneck; spare the cores).",
        int,
    ),
    Setting(
        "duckdb_checkpoint",
        IndexOptions.duckdb_checkpoint,
        "DuckDB checkpoint threshold of the indexer's write connection.",
    ),
    Setting("ipfs_gateway", IndexOptions.ipfs_gateway, "HTTP gateway used to fetch ipfs:// metadata URIs."),
    Setting(
        "metadata_allow_private",
        IndexOptions.metadata_allow_private,
        "Fetch operator metadata from loopback, private and link-local addresses too (off: a hostile metadata URI "
        "cannot reach services inside your network, such as a cloud metadata endpoint).",
        bool,
    ),
    # devnet
    Setting(
        "anvil_bin",
        str(ROOT / "devnet" / "tools" / "node_modules" / ".bin" / "anvil"),
        "anvil binary (installed by `make setup` from @foundry-rs/anvil).",
    ),
    Setting(
        "solcjs_bin",
        str(ROOT / "devnet" / "tools" / "node_modules" / ".bin" / "solcjs"),
        "solc (JS build) binary (installed by `make setup` from the solc npm package).",
    ),
    Setting("port", 8545, "Port of the devnet anvil node (the next free one is used if busy).", int),
    Setting("chain_id", 31337, "Chain id of the devnet.", int),
    Setting("block_time", 0, "Devnet block time in seconds; 0 mines one block per transaction batch.", int),
    Setting("accounts", 20, "Number of funded accounts anvil creates.", int),
    Setting("challenge_window_blocks", 200, "Blocks after a response during which it may be challenged.", int),
    Setting("response_window_blocks", 50, "Blocks after task creation during which a response is accepted.", int),
    Setting(
        "slash_bps",
        1000,
        "Share of each signer's stake slashed by a successful challenge, in basis points (1000 = 10%).",
        int,
    ),
    # simulation
    Setting("tasks", 3000, "Number of tasks `lens simulate` creates.", int),
    Setting("seed", 7, "Random seed of the simulation (same seed, same chain content).", int),
    Setting("operators", 10, "Number of simulated operators.", int),
    Setting("fault_rate", 0.01, "Share of tasks on which a colluding quorum signs a wrong verdict.", float),
    Setting(
        "challenge_rate",
        1.0,
        "Share of the wrong responses the simulated challenger actually challenges (< 1 leaves some to expire).",
        float,
    ),
    # engine
    Setting(
        "eval_timeout_ms", 2000, "Time limit of one policy evaluation; a runaway policy is stopped and reported.", int
    ),
    Setting(
        "eval_memory_mb",
        1024,
        "Memory limit (resident MB) of the engine's worker process; a policy that allocates without bound is stopped.",
        int,
    ),
    Setting(
        "whatif_budget_s",
        600.0,
        "Overall time budget of one what-if run; past it the run is stopped and says how to narrow it.",
        float,
    ),
    Setting(
        "whatif_page",
        100_000,
        "Decisions a what-if reads and runs at a time: its memory holds one page, whatever the history's size.",
        int,
    ),
    # dashboard
    Setting("serve_port", 8501, "Port of the Streamlit dashboard.", int),
    Setting("page_size", 50, "Rows per page in the decisions browser.", int),
    # operators and diversity
    Setting(
        "operator_recent_tasks",
        500,
        "The recent window of the operator figures and alerts: the network's last this many responded tasks.",
        int,
    ),
    Setting(
        "alert_participation_below",
        0.9,
        "Alert on an operator whose participation over the recent window is below this share (0..1).",
        float,
    ),
    Setting(
        "alert_missed_streak",
        5,
        "Alert on an operator that missed at least this many tasks in a row (now, or within the recent window).",
        int,
    ),
    Setting(
        "resolve_hostnames",
        "auto",
        "Resolve operator socket hostnames to IPs for the observed location: on, off, or auto (off on the devnet).",
    ),
    Setting("resolve_timeout_s", 1.0, "Time limit of resolving one operator socket hostname.", float),
    # disputes and the Prometheus exporter
    Setting(
        "replay_max",
        5000,
        "`lens disputes` replays at most this many responses the DB has no replay of; more need `lens audit` first.",
        int,
    ),
    Setting("exporter_port", 9464, "Port of the Prometheus exporter (`lens exporter`).", int),
    Setting(
        "exporter_address",
        "127.0.0.1",
        "Address the Prometheus exporter binds; 0.0.0.0 lets a Prometheus on another host scrape it.",
    ),
]

REGISTRY: dict[str, Setting] = {s.key: s for s in _SETTINGS}


# The commands that take each setting's flag; a setting missing here is read from its environment variable only
# (tests/test_cli_promises.py checks this against the commands themselves).
TAKEN_BY: dict[str, tuple[str, ...]] = {
    "db": (
        "audit",
        "bench app",
        "bench replay",
        "demo",
        "disputes",
        "explain",
        "exporter",
        "index",
        "index status",
        "serve",
        "synth",
        "whatif",
        "bench whatif",
        "diversity",
        "export parquet",
        "operators",
        "upgrades",
    ),
    "rpc": ("bench index", "disputes", "exporter", "index", "index status", "simulate", "upgrades"),
    "deployment": ("bench index", "index"),
    "deployment_file": ("devnet down", "devnet status", "devnet up", "simulate"),
    "confirmations": ("index",),
    "batch_blocks": ("index",),
    "rpc_retries": ("index",),
    "metadata_timeout_s": ("index",),
    "index_commit_logs": ("index",),
    "index_commit_s": ("index",),
    "index_workers": ("index",),
    "index_worker_min_blocks": ("index",),
    "duckdb_threads": ("index",),
    "duckdb_checkpoint": ("index",),
    "ipfs_gateway": ("index",),
    "metadata_allow_private": ("index",),
    "port": ("devnet up",),
    "chain_id": ("devnet up",),
    "block_time": ("devnet up",),
    "accounts": ("devnet up",),
    "challenge_window_blocks": ("devnet up",),
    "response_window_blocks": ("devnet up",),
    "slash_bps": ("devnet up",),
    "tasks": ("bench simulate", "demo", "simulate"),  # `synth` and the benches have their own --tasks
    "seed": ("bench simulate", "demo", "devnet up", "simulate", "synth"),
    "operators": ("bench simulate", "devnet up", "simulate"),
    "fault_rate": ("bench simulate", "simulate"),
    "challenge_rate": ("demo", "simulate"),
    "eval_timeout_ms": ("audit", "disputes", "explain", "policy eval", "policy test", "whatif"),
    "whatif_budget_s": ("whatif",),
    "whatif_page": ("whatif",),
    "eval_memory_mb": ("whatif",),
    "serve_port": ("serve",),
    "page_size": ("serve",),
    "operator_recent_tasks": ("operators", "exporter"),
    "alert_participation_below": ("operators", "exporter"),
    "alert_missed_streak": ("operators", "exporter"),
    "resolve_hostnames": ("diversity",),
    "resolve_timeout_s": ("diversity",),
    "replay_max": ("disputes",),
    "exporter_port": ("exporter --port",),
    "exporter_address": ("exporter --address",),
}


def _parse(setting: Setting, raw: str) -> Any:
    """An environment value as the setting's type; LensError naming the variable and the expected type."""
    if setting.type is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise LensError(
            f"{setting.env}={raw!r} is not true or false", f"set {setting.env} to true or false, or unset it"
        )
    try:
        return setting.type(raw)
    except (TypeError, ValueError):
        kind = {int: "a whole number", float: "a number"}.get(setting.type, setting.type.__name__)
        raise LensError(
            f"{setting.env}={raw!r} is not {kind}",
            f"set {setting.env} to {kind} (default {setting.default}) or unset it",
        ) from None


def get(key: str) -> Any:
    """The value of a setting: its environment variable if set, else its default (LensError if it does not parse)."""
    setting = REGISTRY[key]
    raw = os.environ.get(setting.env)
    if raw is None or raw == "":
        return setting.default
    return _parse(setting, raw)


@dataclass(frozen=True)
class Effective:
    """A setting's value in effect now and where it comes from ('environment' or 'default')."""

    key: str
    value: Any
    source: str
    env: str
    flag: str
    commands: tuple[str, ...]


def effective() -> list[Effective]:
    """Every setting's value in effect (environment included), in registry order; LensError on a bad value."""
    out = []
    for s in _SETTINGS:
        source = "environment" if os.environ.get(s.env) not in (None, "") else "default"
        out.append(Effective(s.key, get(s.key), source, s.env, s.flag, tuple(c for c, _ in taken_by(s.key))))
    return out


def taken_by(key: str) -> list[tuple[str, str]]:
    """(command, flag) for each command that takes the setting: an entry "exporter --port" names a command that
    takes it under another flag than the setting's own."""
    out = []
    for entry in TAKEN_BY.get(key, ()):
        cmd, _, flag = entry.partition(" --")
        out.append((cmd, "--" + flag if flag else REGISTRY[key].flag))
    return out


def taken_by_text(key: str) -> str:
    """'`--db` on `lens audit`, `lens explain`; `--port` on `lens exporter`' or 'environment only' (settings table)."""
    by_flag: dict[str, list[str]] = {}
    for cmd, flag in taken_by(key):
        by_flag.setdefault(flag, []).append(f"`lens {cmd}`")
    if not by_flag:
        return "environment only"
    return "; ".join(f"`{flag}` on " + ", ".join(cmds) for flag, cmds in by_flag.items())


def option(key: str, **overrides: Any) -> Callable:
    """A click option for a setting, with the registry's default and help."""
    setting = REGISTRY[key]
    kwargs: dict[str, Any] = dict(
        default=lambda: get(key),
        show_default=str(setting.default),
        help=f"{setting.help} [env {setting.env}]",
        type=setting.type,
    )
    kwargs.update(overrides)
    return click.option(setting.flag, key, **kwargs)


def markdown_table() -> str:
    """The settings as a Markdown table, for the README and `lens settings`."""
    lines = ["| setting | CLI flag | environment | default | what it does |", "|---|---|---|---|---|"]
    for s in _SETTINGS:
        default = str(s.default).replace(str(ROOT) + "/", "")
        lines.append(f"| `{s.key}` | {taken_by_text(s.key)} | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(lines)
