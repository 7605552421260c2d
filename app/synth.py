"""Synthetic Lens DB, fast: the indexer's schema, the devnet's policies, realistic lifecycles; plus the page benchmark."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from eth_utils import keccak

from app.errors import LensError
from indexer import aggregates, dictionary
from indexer.load import BASE_DDL, DERIVED_DDL, ensure_indexes, ensure_schema

ROOT = Path(__file__).resolve().parent.parent
# Access paths of the verdict page's lookups: one task by id (the primary key leads with chain_id, which those
# lookups do not name), and by creation transaction. Built after the load: ten times cheaper than during it.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS tasks_task_id ON tasks (task_id)",
    "CREATE INDEX IF NOT EXISTS tasks_created_tx ON tasks (created_tx)",
    "CREATE INDEX IF NOT EXISTS replays_task_id ON replays (task_id)",  # as `lens audit` keeps it (engine/store.py)
)
POLICY_DIR = ROOT / "data" / "policies"
CHAIN_ID = 31337
BLOCK_TIME_S = 2
START_BLOCK = 1_000
# A fixed anchor keeps a seed's DB identical from one run to the next (times included).
GENESIS = pd.Timestamp("2026-10-01T00:00:00")
WEI_PER_CENT = 10**16  # amounts are drawn in hundredths of a token/ETH, so every wei value is exact
TOKEN_SELECTORS = {"transfer": "a9059cbb", "approve": "095ea7b3"}
KINDS = ("transfer", "", "approve")  # function name per kind; "" = plain native transfer
FLAGS = ("mixer", "gambling", "scam", "exchange")
COUNTRIES = ("DE", "FR", "US", "GB", "SG", "CH", "JP", "BR", "NG", "IR", "KP", "CA")
STATUSES = ("approved", "pending", "rejected", "none")
TASK_STATUSES = ("created", "allowed", "denied", "expired", "spent", "challenged")
CHUNK_TASKS = 1_000_000  # tasks written per INSERT round
FAULT_RATE = 0.01  # the devnet's default share of tasks a colluding quorum signs wrongly (`lens simulate`)
SLASH_BPS = 1000  # the devnet's default slash per successful challenge (10%)
RESTAKE_BLOCKS = 5
SYNTH_MEMORY = "6GB"
# The index builds come after the numpy arrays are gone: the ART of ten million tasks' 100 M signer rows spills to
# disk under 6 GB and takes ~1.8 times as long (10 M tasks, measured: 257 s at 6 GB; 138 s, 9.1 GiB RSS at 9 GB).
SYNTH_INDEX_MEMORY = "10GB"


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


OPERATOR_META = (
    ("Aurora Node", "Aurora Labs", "DE", "Frankfurt", 50.11, 8.68, "AWS", "eu-central-1", "AS16509"),
    ("Basalt Validation", "Basalt", "US", "Ashburn", 39.04, -77.49, "AWS", "us-east-1", "AS16509"),
    ("Cobalt Ops", "Cobalt Staking", "SG", "Singapore", 1.35, 103.82, "GCP", "asia-southeast1", "AS15169"),
    ("Delta Signer", "Delta Infra", "FR", "Paris", 48.86, 2.35, "OVH", "eu-west-par", "AS16276"),
    ("Ember Stake", "Ember", "US", "Dallas", 32.78, -96.8, "Hetzner", "us-central", "AS24940"),
    ("Fjord Nodes", "Fjord", "NO", "Oslo", 59.91, 10.75, "bare metal", "oslo-1", "AS2119"),
    ("Granite AVS", "Granite Capital", "CH", "Zurich", 47.37, 8.54, "AWS", "eu-central-2", "AS16509"),
    ("Harbor Node", "Harbor", "JP", "Tokyo", 35.68, 139.69, "GCP", "asia-northeast1", "AS15169"),
    ("Iris Operator", "Iris Research", "GB", "London", 51.51, -0.13, "Azure", "uksouth", "AS8075"),
    ("Jade Validator", "Jade", "CA", "Montreal", 45.5, -73.57, "OVH", "ca-east-bhs", "AS16276"),
    ("Kestrel", "Kestrel Systems", "BR", "Sao Paulo", -23.55, -46.63, "AWS", "sa-east-1", "AS16509"),
    ("Lumen Staking", "Lumen", "US", "Portland", 45.52, -122.68, "Hetzner", "us-west", "AS24940"),
)
CLIENTS = (  # name, policy, share of traffic
    ("treasury-alpha", "spending_limits", 0.26),
    ("treasury-beta", "spending_limits", 0.12),
    ("payments-desk", "counterparty_screening", 0.22),
    ("onboarding-vault", "kyc_jurisdiction", 0.16),
    ("trading-bot", "circuit_breaker", 0.16),
    ("ops-wallet", "counterparty_screening", 0.08),
)

# Each policy's deny reasons in the order synth checks them (its metadata.json's keys); the last is the oracle's.
DENY_REASONS = {
    "spending_limits": ("function_not_allowed", "exceeds_per_tx_limit", "exceeds_daily_cap", "spend_data_missing"),
    "counterparty_screening": (
        "counterparty_sanctioned",
        "flag_blocked",
        "risk_score_too_high",
        "counterparty_blocklisted",
        "sanctions_data_missing",
    ),
    "kyc_jurisdiction": ("kyc_not_approved", "kyc_expired", "jurisdiction_blocked", "kyc_data_missing"),
    "circuit_breaker": (
        "manual_halt",
        "volatility_too_high",
        "price_below_floor",
        "rate_limit_exceeded",
        "burst_of_large_transfers",
        "market_data_missing",
    ),
}


@dataclass(frozen=True)
class PolicyFiles:
    """One devnet policy as shipped in data/policies/<name>/."""

    name: str
    source: str
    entrypoint: str
    version: str
    code_hash: str


def load_policies(directory: Path = POLICY_DIR) -> dict[str, PolicyFiles]:
    """The devnet policies (Rego source, entrypoint, version, keccak code hash) by name."""
    out: dict[str, PolicyFiles] = {}
    for sub in sorted(p for p in directory.iterdir() if (p / "policy.rego").is_file()) if directory.is_dir() else []:
        source = (sub / "policy.rego").read_text()
        try:
            meta = json.loads((sub / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
        out[sub.name] = PolicyFiles(
            sub.name,
            source,
            meta.get("entrypoint") or f"{sub.name}.allow",
            str(meta.get("version") or "1.0.0"),
            "0x" + keccak(text=source).hex(),
        )
    needed = {p for _, p, _ in CLIENTS}
    if not needed <= set(out):
        raise LensError(
            f"policies missing in {directory}: {sorted(needed - set(out))}",
            "the devnet policies live in data/policies/<name>/policy.rego",
        )
    return out


def _addr(tag: str) -> str:
    """A deterministic lower-case address from a label."""
    return "0x" + keccak(text=tag)[-20:].hex()


def _h32(tag: str) -> str:
    return "0x" + keccak(text=tag).hex()


def _wei(cents: int) -> str:
    return str(int(cents) * WEI_PER_CENT)


# ---------------------------------------------------------------------------------------------
# Params versions: a few realistic changes per client over time


def _versions_for(policy: str, rng: np.random.Generator, n: int, cps: list[str]) -> list[dict]:
    """n params documents for a policy, each a plausible edit of the previous one."""
    out = []
    for i in range(n):
        if policy == "spending_limits":
            max_tx = int(rng.choice([1_000, 2_500, 5_000, 10_000]))
            fns = [] if i == 0 else (["", "transfer", "approve"] if i % 2 else ["transfer", "approve"])
            out.append(
                {
                    "max_tx_wei": _wei(max_tx * 100),
                    "daily_cap_wei": _wei(max_tx * 100 * int(rng.choice([3, 5, 10]))),
                    "allowed_functions": fns,
                }
            )
        elif policy == "counterparty_screening":
            block = sorted(rng.choice(len(cps), size=int(rng.integers(0, 4)), replace=False).tolist())
            out.append(
                {
                    "deny_on_sanctioned": True,
                    "blocklist": [cps[j] for j in block],
                    "allowlist_only": False,
                    "allowlist": [],
                    "blocked_flags": ["mixer", "scam"] if i % 2 == 0 else ["mixer", "scam", "gambling"],
                    "max_risk_score": int(rng.choice([60, 70, 80])),
                }
            )
        elif policy == "kyc_jurisdiction":
            out.append(
                {
                    "require_kyc": True,
                    "allowed_countries": [] if i % 3 else [],
                    "blocked_countries": ["KP", "IR", "CU", "SY"] if i % 2 == 0 else ["KP", "IR", "CU", "SY", "NG"],
                    "min_remaining_validity_s": int(rng.choice([0, 86_400, 7 * 86_400])),
                }
            )
        else:  # circuit_breaker
            out.append(
                {
                    "halt": bool(i > 0 and rng.random() < 0.2),
                    "max_volatility_bps": int(rng.choice([600, 800, 1200])),
                    "min_price_usd": float(rng.choice([0.95, 0.97, 0.98])),
                    "max_transfers_per_hour": int(rng.choice([20, 30, 60])),
                    "large_transfer_wei": _wei(int(rng.choice([10_000, 50_000])) * 100),
                    "max_large_transfers_per_hour": int(rng.choice([3, 5, 9])),
                }
            )
    return out


# ---------------------------------------------------------------------------------------------
# The build


def build(
    path: Path,
    *,
    tasks: int,
    seed: int = 7,
    operators: int = 10,
    force: bool = False,
    progress: bool = False,
    policy_dir: Path = POLICY_DIR,
    fault_rate: float = FAULT_RATE,
) -> dict[str, Any]:
    """Write a synthetic DB of `tasks` decisions at `path` (the indexer's schema, indexer/load.py) → summary dict."""
    if tasks < 1:
        raise LensError(f"--tasks {tasks} must be at least 1", "pass e.g. --tasks 10000")
    if not 1 <= operators <= len(OPERATOR_META):
        raise LensError(
            f"--operators {operators} must be 1..{len(OPERATOR_META)}", "the synthetic set has that many profiles"
        )
    path = Path(path).expanduser()
    if path.exists():
        if not force:
            raise LensError(f"{path} already exists", "pass --force to overwrite it, or choose another --db")
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = _STARTED[0] = time.perf_counter()
    policies = load_policies(policy_dir)
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET preserve_insertion_order = false")
        # bounded, spilling to disk beside the DB: the machine is shared, and ten million tasks fit anyway
        con.execute(f"SET memory_limit = '{SYNTH_MEMORY}'")
        con.execute(f"SET temp_directory = '{_sql_text(str(tmp) + '.tmp')}'")
        ensure_schema(con, indexes=False)  # the indexer's DDL: one schema for every writer; indexes at the end
        _tasks_without_key(con)
        summary = _write(con, rng, policies, tasks, operators, seed, progress, fault_rate)
        con.execute(f"SET memory_limit = '{SYNTH_INDEX_MEMORY}'")
        aggregates.rebuild(con)  # the pages' pre-aggregated tables, as the indexer keeps them (indexer/aggregates.py)
        for stmt in INDEXES:
            con.execute(stmt)
        ensure_indexes(con)  # the indexer's own secondary indexes, built once over the loaded rows
        _say(progress, "indexes built; the blocks' key")
        con.execute(f"ALTER TABLE blocks ADD PRIMARY KEY ({BLOCKS_KEY})")  # the indexer's DDL again
        dictionary.apply_comments(con)  # the data dictionary of the tables recreated above
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    tmp.rename(path)  # readers never see a half-written DB
    summary.update(db=str(path), seconds=time.perf_counter() - t0)
    return summary


_STARTED = [time.perf_counter()]


BLOCKS_KEY = "chain_id, block_number"


def _tasks_without_key(con: duckdb.DuckDBPyConnection) -> None:
    """Recreate `tasks` with the indexer's columns but without its (chain_id, task_id) key: maintaining that ART
    index row by row costs more than the rest of the load, and nothing writes a synthetic DB's tasks again (the
    lookups get their own index on task_id, built once at the end). `blocks` likewise, its key added after the load
    (the indexer's DDL again, one bulk build instead of an insert into the ART per block)."""
    ddl = re.sub(r",\s*PRIMARY KEY \(chain_id, task_id\)\s*$", "", DERIVED_DDL["tasks"].rstrip())
    con.execute("DROP TABLE tasks")
    con.execute(f"CREATE TABLE tasks ({ddl})")
    con.execute("DROP TABLE blocks")  # (were the indexer's key another, the ALTER at the end would fail loudly)
    con.execute(f"CREATE TABLE blocks ({BASE_DDL['blocks'].replace(f', PRIMARY KEY ({BLOCKS_KEY})', '')})")


def _say(progress: bool, msg: str, who: str = "synth") -> None:
    if progress:
        from rich.console import Console

        at = time.perf_counter() - _STARTED[0]
        Console(stderr=True).print(f"[dim]{who} {at:6.1f} s:[/dim] {msg}", highlight=False)


def _write(
    con: duckdb.DuckDBPyConnection,
    rng: np.random.Generator,
    policies: dict[str, PolicyFiles],
    n: int,
    n_ops: int,
    seed: int,
    progress: bool,
    fault_rate: float,
) -> dict[str, Any]:
    tag = f"synth:{seed}"
    token = _addr(f"{tag}:token")
    deployer, aggregator, resolver, challenger = (
        _addr(f"{tag}:role:{r}") for r in ("deployer", "aggregator", "resolver", "challenger")
    )
    contracts = {
        "taskManager": _addr(f"{tag}:tm"),
        "challengeVerifier": _addr(f"{tag}:cv"),
        "operatorRegistry": _addr(f"{tag}:or"),
        "token": token,
    }
    contracts.update(
        attestationValidator=contracts["taskManager"],
        blsApkRegistry=contracts["operatorRegistry"],
        stakeRegistry=contracts["operatorRegistry"],
        indexRegistry=contracts["operatorRegistry"],
        slasher=contracts["operatorRegistry"],
    )
    policy_addr = {name: _addr(f"{tag}:policy:{name}") for name in policies}
    client_addr = {c: _addr(f"{tag}:client:{c}") for c, _, _ in CLIENTS}
    n_agents, n_cps = 240, 400
    agents = [_addr(f"{tag}:agent:{i}") for i in range(n_agents)]
    cps = [_addr(f"{tag}:cp:{i}") for i in range(n_cps)]

    # --- time line ------------------------------------------------------------------------
    _say(progress, f"drawing {n:,} tasks")
    span_s = max(int(n * 1.3 * BLOCK_TIME_S), 3600)
    # busier during the (UTC) day: thin uniform draws with a daily rhythm, keep the first n
    draw = rng.uniform(0, span_s, size=int(n * 2.2) + 64)
    keep = rng.random(draw.size) < (1 + 0.6 * np.sin(2 * np.pi * draw / 86_400)) / 1.6
    secs = np.sort(draw[keep])[:n]
    while secs.size < n:  # extremely unlikely; pad at the end
        secs = np.append(secs, secs[-1] + BLOCK_TIME_S)
    created_block = (START_BLOCK + secs // BLOCK_TIME_S).astype(np.int64)
    head = int(created_block[-1]) + 30

    # --- who does what ------------------------------------------------------------------------
    shares = np.array([s for _, _, s in CLIENTS])
    client = rng.choice(len(CLIENTS), size=n, p=shares / shares.sum())
    agent_client = rng.choice(len(CLIENTS), size=n_agents, p=shares / shares.sum())
    agent_client[: len(CLIENTS)] = np.arange(len(CLIENTS))  # every client has an agent
    agents_of = [np.flatnonzero(agent_client == c) for c in range(len(CLIENTS))]
    agent = np.empty(n, dtype=np.int64)
    for c in range(len(CLIENTS)):
        idx = np.flatnonzero(client == c)
        pool = agents_of[c]
        agent[idx] = pool[np.minimum(rng.zipf(1.6, size=idx.size) - 1, pool.size - 1)]
    cp = np.minimum(rng.zipf(1.4, size=n) - 1, n_cps - 1)
    cp = (cp * 7919 + client * 31) % n_cps  # spread the heavy hitters across clients
    kind = rng.choice(3, size=n, p=[0.72, 0.18, 0.10])
    cents = np.clip(np.round(rng.lognormal(np.log(25_000), 1.3, size=n)), 1, 2_000_000_000).astype(np.int64)

    # --- params versions --------------------------------------------------------------------
    version = np.zeros(n, dtype=np.int64)
    vrows = []
    lo_block = int(created_block[0]) - 50
    for c, (cname, pname, _) in enumerate(CLIENTS):
        nv = int(rng.integers(3, 7))
        docs = _versions_for(pname, rng, nv, cps)
        cuts = (
            np.sort(rng.choice(np.arange(lo_block + 100, head - 10), size=nv - 1, replace=False))
            if nv > 1
            else np.array([], dtype=np.int64)
        )
        starts = np.concatenate([[lo_block - 10], cuts]).astype(np.int64)
        idx = np.flatnonzero(client == c)
        version[idx] = np.searchsorted(starts, created_block[idx], side="right") - 1
        for v, doc in enumerate(docs):
            pid = _h32(f"{tag}:pid:{cname}:{v}")
            vrows.append(
                dict(
                    c=c,
                    v=v,
                    client=client_addr[cname],
                    policy_name=pname,
                    policy_address=policy_addr[pname],
                    policy_id=pid,
                    params_json=json.dumps(doc, separators=(",", ":")),
                    doc=doc,
                    expire_after=int(rng.choice([60, 100, 150])),
                    block_number=int(starts[v]),
                    valid_from_block=int(starts[v]),
                    valid_to_block=int(starts[v + 1]) - 1 if v + 1 < nv else None,
                )
            )
    vdf = pd.DataFrame(vrows)
    vkey = {(r["c"], r["v"]): i for i, r in enumerate(vrows)}
    vid = (
        np.array([vkey[(int(c), int(v))] for c, v in zip(client, version)], dtype=np.int64)
        if n < 50_000
        else _vid_fast(client, version, vkey)
    )

    # --- oracle data and the true verdict per policy ----------------------------------------
    _say(progress, "evaluating the devnet policies' rules on the synthetic intents")
    cp_sanctioned = rng.random(n_cps) < 0.02
    cp_flags = (rng.random((n_cps, len(FLAGS))) < [0.02, 0.01, 0.015, 0.2]).astype(np.int64) @ (
        1 << np.arange(len(FLAGS))
    )
    cp_risk = np.clip(np.round(rng.gamma(2.0, 14.0, size=n_cps)), 0, 100).astype(np.int64)
    ag_country = rng.choice(len(COUNTRIES), size=n_agents, p=_norm([10, 8, 14, 8, 6, 5, 5, 4, 3, 0.6, 0.3, 5]))
    ag_status = rng.choice(len(STATUSES), size=n_agents, p=[0.86, 0.07, 0.04, 0.03])
    t_unix = int(GENESIS.value // 10**9) + created_block * BLOCK_TIME_S  # the KYC oracle's "now" = block time
    ag_expires = int(GENESIS.value // 10**9) + rng.integers(-5, 120, size=n_agents) * 86_400

    spent_cents = np.floor(rng.uniform(0, 1.15, size=n) * _vparam(vdf, vid, "daily_cap_cents")).astype(np.int64)
    vol_bps = np.clip(np.round(rng.gamma(3.0, 140.0, size=n)), 0, 5000).astype(np.int64)
    price = np.round(1.0 - np.abs(rng.normal(0, 0.012, size=n)), 4)
    tx_hour = rng.poisson(8, size=n)
    large_hour = rng.poisson(1.2, size=n)
    oracle_error = rng.random(n) < 0.002

    pname_of = np.array([pname for _, pname, _ in CLIENTS])[client]
    allow = np.zeros(n, dtype=bool)
    reasons = np.zeros(n, dtype=np.int64)  # bit j = the policy's DENY_REASONS[policy][j] (its deny set, replays)
    fn_bits = np.array([1, 2, 4])[kind]  # transfer / "" / approve
    for pname in policies:
        m = pname_pick = pname_of == pname
        if not m.any():
            continue
        idx = np.flatnonzero(pname_pick)
        vv = vid[idx]
        if pname == "spending_limits":
            allowed_bits = _vparam(vdf, vv, "fn_bits")
            checks = [
                (allowed_bits > 0) & ((allowed_bits & fn_bits[idx]) == 0),
                cents[idx] > _vparam(vdf, vv, "max_tx_cents"),
                spent_cents[idx] + cents[idx] > _vparam(vdf, vv, "daily_cap_cents"),
            ]
        elif pname == "counterparty_screening":
            k = cp[idx]
            checks = [
                cp_sanctioned[k] & (_vparam(vdf, vv, "deny_on_sanctioned") > 0),
                (_vparam(vdf, vv, "blocked_flag_bits") & cp_flags[k]) > 0,
                cp_risk[k] > _vparam(vdf, vv, "max_risk_score"),
                _blocklisted(vdf, vv, k, cps),
            ]
        elif pname == "kyc_jurisdiction":
            a = agent[idx]
            remaining = ag_expires[a] - t_unix[idx]
            checks = [
                np.array(STATUSES)[ag_status[a]] != STATUSES[0],
                remaining <= _vparam(vdf, vv, "min_remaining_validity_s"),
                _vset(vdf, vv, "blocked_country_bits", ag_country[a]),
            ]
        else:
            large = cents[idx] >= _vparam(vdf, vv, "large_transfer_cents")
            checks = [
                _vparam(vdf, vv, "halt") > 0,
                vol_bps[idx] > _vparam(vdf, vv, "max_volatility_bps"),
                price[idx] < _vparam(vdf, vv, "min_price_usd", float),
                tx_hour[idx] + 1 > _vparam(vdf, vv, "max_transfers_per_hour"),
                large & (large_hour[idx] + 1 > _vparam(vdf, vv, "max_large_transfers_per_hour")),
            ]
        bits = sum(c.astype(np.int64) << j for j, c in enumerate(checks))
        # an oracle error fails the policy closed: its one reason is the missing data (the last key)
        reasons[idx] = np.where(oracle_error[idx], 1 << len(checks), bits)
        allow[idx] = reasons[idx] == 0

    # --- lifecycle --------------------------------------------------------------------------
    _say(progress, "lifecycles: responses, spends, expiries, challenges")
    respond_delay = np.where(rng.random(n) < 0.002, -1, 1 + rng.geometric(0.45, size=n))
    respond_delay[created_block + respond_delay > head] = -1
    responded = respond_delay >= 0
    fault = responded & (rng.random(n) < fault_rate)  # a colluding quorum signs the wrong verdict
    attested = np.where(fault, ~allow, allow)
    responded_block = np.where(responded, created_block + respond_delay, -1)
    expire_after = vdf["expire_after"].to_numpy()[vid]
    expire_block = np.where(responded, responded_block + expire_after, -1)
    challenged = fault.copy()  # the devnet challenger disputes every wrong verdict inside the window
    frivolous = responded & ~fault & (rng.random(n) < 0.0004)
    challenge_delay = 1 + rng.integers(0, 40, size=n)
    challenged_block = np.where(challenged | frivolous, responded_block + challenge_delay, -1)
    challenged &= challenged_block <= head
    frivolous &= challenged_block <= head
    spend_delay = 1 + rng.geometric(0.12, size=n)
    spent = responded & attested & ~challenged & (rng.random(n) < 0.86) & (spend_delay < expire_after)
    spent_block = np.where(spent, responded_block + spend_delay, -1)
    spent &= spent_block <= head
    spent_block = np.where(spent, spent_block, -1)
    status = np.zeros(n, dtype=np.int8)  # an index into TASK_STATUSES (no per-row Python strings)
    status[responded & attested] = TASK_STATUSES.index("allowed")
    status[responded & ~attested] = TASK_STATUSES.index("denied")
    status[responded & attested & ~spent & (expire_block <= head)] = TASK_STATUSES.index("expired")
    status[spent] = TASK_STATUSES.index("spent")
    status[challenged] = TASK_STATUSES.index("challenged")

    # --- operators and signatures -----------------------------------------------------------
    ops = []
    for j in range(n_ops):
        name, org, country, city, lat, lon, provider, region, asn = OPERATOR_META[j]
        stake = int(rng.integers(32, 400)) * 10**18
        ops.append(
            dict(
                idx=j,
                operator=_addr(f"{tag}:op:{j}"),
                operator_id=_h32(f"{tag}:opid:{j}"),
                name=name,
                organisation=org,
                country=country,
                city=city,
                latitude=lat,
                longitude=lon,
                provider=provider,
                region=region,
                asn=asn,
                stake_wei=stake,
                miss=float(rng.choice([0.002, 0.01, 0.03, 0.08])),
            )
        )
    dereg_block = int(np.quantile(created_block, 0.8)) if n_ops >= 4 else None
    # one operator at a time: an (n × operators) matrix would cost gigabytes at ten million tasks
    mask = np.zeros(n, dtype=np.int64)
    elig_mask = np.zeros(n, dtype=np.int64)
    non_signers = np.zeros(n, dtype=np.int64)
    signers = np.zeros(n, dtype=np.int64)
    for j, o in enumerate(ops):
        eligible = created_block - 1 < dereg_block if (dereg_block is not None and j == n_ops - 1) else np.ones(n, bool)
        nonsign = eligible & (rng.random(n) < o["miss"])
        mask |= nonsign.astype(np.int64) << j
        elig_mask |= eligible.astype(np.int64) << j
        non_signers += nonsign
        signers += eligible & ~nonsign

    # --- write --------------------------------------------------------------------------------
    _say(progress, "building the frame")
    # an Arrow table over the numpy columns: no copy (a DataFrame consolidates them into blocks, 2 s a million)
    frame = pa.table(
        {
            "i": np.arange(n, dtype=np.int64),
            "c": client,
            "vid": vid,
            "a": agent,
            "k": cp,
            "kind": kind,
            "cents": cents,
            "created_block": created_block,
            "responded_block": responded_block,
            "expire_block": expire_block,
            "spent_block": spent_block,
            "challenged_block": challenged_block,
            "challenge_success": challenged,
            "attested": attested,
            "responded": responded,
            "status_code": status,
            "truth": allow,
            "fault": fault,
            "reasons": reasons,
            "spent_cents": spent_cents,
            "vol_bps": vol_bps,
            "price": price,
            "tx_hour": tx_hour,
            "large_hour": large_hour,
            "oracle_error": oracle_error,
            "t_unix": t_unix,
            "mask": mask,
            "elig_mask": elig_mask,
            "non_signers": non_signers,
            "signers": signers,
        }
    )
    clients_df = pd.DataFrame(
        [
            dict(
                c=c,
                client=client_addr[cn],
                policy_name=pn,
                policy_address=policy_addr[pn],
                code_hash=policies[pn].code_hash,
                entrypoint=policies[pn].entrypoint,
            )
            for c, (cn, pn, _) in enumerate(CLIENTS)
        ]
    )
    agents_df = pd.DataFrame(
        dict(
            a=np.arange(n_agents),
            addr=agents,
            country=np.array(COUNTRIES)[ag_country],
            kyc_status=np.array(STATUSES)[ag_status],
            expires_at=ag_expires,
        )
    )
    cps_df = pd.DataFrame(
        dict(
            k=np.arange(n_cps),
            addr=cps,
            sanctioned=cp_sanctioned,
            risk=cp_risk,
            flags_json=[json.dumps([f for b, f in enumerate(FLAGS) if fl >> b & 1]) for fl in cp_flags],
        )
    )
    versions_df = vdf[["c", "v", "policy_id", "params_json", "expire_after"]].assign(vid=np.arange(len(vdf)))
    for name, df in (
        ("s_frame", frame),
        ("s_clients", clients_df),
        ("s_agents", agents_df),
        ("s_cps", cps_df),
        ("s_versions", versions_df),
    ):
        con.register(name, df)
    ops_df = pd.DataFrame(
        [
            dict(idx=o["idx"], operator=o["operator"], operator_id=o["operator_id"], stake_num=o["stake_wei"] / 1e18)
            for o in ops
        ]
    )
    con.register("s_ops", ops_df)
    con.register("s_reasons", _reason_texts(policies))
    con.unregister("s_frame")
    # hash_of_non_signers depends on the mask alone: a few hundred distinct values, hashed once each
    con.register("s_mask_values", pa.table({"mask": _distinct(mask)}))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE s_masks AS SELECT mask, '0x' || sha256($1 || ':ns:' || mask) AS h "
        "FROM s_mask_values",
        [tag],
    )
    con.unregister("s_mask_values")
    # a million tasks at a time: DuckDB builds every string column, memory stays bounded at any --tasks
    step = CHUNK_TASKS
    for lo in range(0, n, step):
        _say(progress, f"writing tasks, signers and replays {lo:,}–{min(lo + step, n):,}")
        con.register("s_frame", frame.slice(lo, step))
        # the chunk with its task ids, hashed once for the three tables that carry them
        con.execute(CHUNK_TABLE, [tag])
        con.unregister("s_frame")
        con.execute(TASKS_INSERT, [CHAIN_ID, str(GENESIS), BLOCK_TIME_S, WEI_PER_CENT, token, tag])
        _say(progress, "  signers")
        con.execute("SET preserve_insertion_order = true")  # the signers' and replays' task-id order (see there)
        con.execute(
            SIGNERS_INSERT,
            [
                CHAIN_ID,
                len(ops),
                [o["operator_id"] for o in ops],
                [o["operator"] for o in ops],
                [o["stake_wei"] / 1e18 for o in ops],
                str(GENESIS),
                BLOCK_TIME_S,
            ],
        )
        _say(progress, "  replays")
        con.execute(REPLAYS_INSERT, [CHAIN_ID, str(GENESIS), BLOCK_TIME_S])
        con.execute("SET preserve_insertion_order = false")
        con.execute("DROP TABLE s_chunk")
    _say(progress, "writing operators, stakes, policies, challenges, blocks")
    slashes = _slash_rows(ops, challenged, challenged_block, mask, elig_mask)
    # the blocks the tasks touch, from the arrays (a UNION over the written tasks re-reads four columns of them)
    con.register(
        "s_task_blocks", pa.table({"n": _distinct(created_block, responded_block, spent_block, challenged_block)})
    )
    _write_small_tables(
        con,
        tag,
        policies,
        policy_addr,
        client_addr,
        vdf,
        ops,
        dereg_block,
        head,
        contracts,
        deployer,
        aggregator,
        resolver,
        challenger,
        token,
        slashes,
    )
    _write_governance(con, tag, contracts, policy_addr, deployer)
    for name in ("s_task_blocks", "s_clients", "s_agents", "s_cps", "s_versions", "s_ops", "s_reasons"):
        con.unregister(name)
    return {
        "tasks": n,
        "operators": n_ops,
        "policy_versions": len(vdf),
        "head_block": head,
        "allowed": int((responded & attested).sum()),
        "denied": int((responded & ~attested).sum()),
        "challenged": int(challenged.sum()),
    }


def _reason_texts(policies: dict[str, PolicyFiles]) -> pd.DataFrame:
    """Every (policy, deny-reason bits) → deny_json and the replay's sentence (few rows: one per subset of reasons)."""
    rows = []
    for pname, keys in DENY_REASONS.items():
        label = pname.replace("_", " ")
        for bits in range(1 << len(keys)):
            names = sorted(k for j, k in enumerate(keys) if bits >> j & 1)
            sentence = (
                f"Allowed: every rule of {label} passed."
                if not names
                else f"Denied by {label}: " + "; ".join(k.replace("_", " ") for k in names) + "."
            )
            rows.append(dict(policy_name=pname, bits=bits, deny_json=json.dumps(names), sentence=sentence))
    return pd.DataFrame(rows)


def _slash_rows(
    ops: list[dict], challenged: np.ndarray, challenged_block: np.ndarray, mask: np.ndarray, elig: np.ndarray
) -> pd.DataFrame:
    """Stake updates: each successful challenge slashes every signer by SLASH_BPS, and the devnet's owner restores
    the stake a few blocks later (stakes are set by the owner on the devnet), so operators stay live over a long run."""
    idx = np.flatnonzero(challenged)
    out = []
    for j, o in enumerate(ops):
        signed = idx[((elig[idx] >> j) & 1 == 1) & ((mask[idx] >> j) & 1 == 0)]
        if not signed.size:
            continue
        blocks = challenged_block[signed]
        stake = o["stake_wei"] / 1e18
        out.append(
            pd.DataFrame(
                dict(operator_id=o["operator_id"], block_number=blocks, stake_num=stake * (1 - SLASH_BPS / 10_000))
            )
        )
        out.append(
            pd.DataFrame(dict(operator_id=o["operator_id"], block_number=blocks + RESTAKE_BLOCKS, stake_num=stake))
        )
    if not out:
        return pd.DataFrame(columns=["operator_id", "block_number", "stake_num"])
    # two slashes within RESTAKE_BLOCKS of each other land on one block: keep one row per (operator, block)
    return pd.concat(out).drop_duplicates(["operator_id", "block_number"], keep="first")


def _distinct(*columns: np.ndarray) -> np.ndarray:
    """The sorted distinct non-negative values of small-range integer columns (blocks, signer masks; -1 = none):
    one pass over a bitmap instead of np.unique's sort or hash of every value."""
    seen = np.zeros(max(int(c.max(initial=-1)) for c in columns) + 1, dtype=bool)
    for c in columns:
        seen[c[c >= 0]] = True
    return np.flatnonzero(seen).astype(np.int64)


def _norm(w: list[float]) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()


def _vid_fast(client: np.ndarray, version: np.ndarray, vkey: dict) -> np.ndarray:
    table = np.full((int(client.max()) + 1, int(version.max()) + 1), -1, dtype=np.int64)
    for (c, v), i in vkey.items():
        if c < table.shape[0] and v < table.shape[1]:
            table[c, v] = i
    return table[client, version]


def _param_column(vdf: pd.DataFrame, key: str) -> np.ndarray:
    """Per-version numeric view of one params field, in the policy's own comparison units."""
    docs = vdf["doc"]
    if key == "max_tx_cents":
        return np.array([int(d.get("max_tx_wei", "0")) // WEI_PER_CENT if "max_tx_wei" in d else 0 for d in docs])
    if key == "daily_cap_cents":
        return np.array(
            [int(d.get("daily_cap_wei", "0")) // WEI_PER_CENT if "daily_cap_wei" in d else 10**12 for d in docs]
        )
    if key == "large_transfer_cents":
        return np.array(
            [int(d.get("large_transfer_wei", "0")) // WEI_PER_CENT if "large_transfer_wei" in d else 0 for d in docs]
        )
    if key == "fn_bits":
        return np.array(
            [
                sum(b for f, b in (("transfer", 1), ("", 2), ("approve", 4)) if f in (d.get("allowed_functions") or []))
                if d.get("allowed_functions")
                else 0
                for d in docs
            ]
        )
    if key == "blocked_flag_bits":
        return np.array([sum(1 << FLAGS.index(f) for f in d.get("blocked_flags", []) if f in FLAGS) for d in docs])
    if key == "blocked_country_bits":
        return np.array(
            [sum(1 << COUNTRIES.index(c) for c in d.get("blocked_countries", []) if c in COUNTRIES) for d in docs]
        )
    return np.array([float(d.get(key, 0) or 0) for d in docs])


def _vparam(vdf: pd.DataFrame, vid: np.ndarray, key: str, typ: type = int) -> np.ndarray:
    col = _param_column(vdf, key)
    return col.astype(float if typ is float else np.int64)[vid]


def _vset(vdf: pd.DataFrame, vid: np.ndarray, key: str, member: np.ndarray) -> np.ndarray:
    bits = _param_column(vdf, key).astype(np.int64)[vid]
    return (bits >> member) & 1 > 0


def _blocklisted(vdf: pd.DataFrame, vid: np.ndarray, k: np.ndarray, cps: list[str]) -> np.ndarray:
    out = np.zeros(vid.size, dtype=bool)
    index = {a: j for j, a in enumerate(cps)}
    for v, doc in enumerate(vdf["doc"]):
        listed = [index[a] for a in doc.get("blocklist", []) if a in index]
        if listed:
            out |= (vid == v) & np.isin(k, listed)
    return out


CHUNK_TABLE = (
    "CREATE OR REPLACE TEMP TABLE s_chunk AS SELECT *, '0x' || sha256($1 || ':task:' || i) AS task_id FROM s_frame"
)

# One INSERT builds every string column in DuckDB from small dimension tables: no per-row Python.
TASKS_INSERT = """
INSERT INTO tasks BY NAME
WITH base AS (
  SELECT f.*, cl.client, cl.policy_address, cl.code_hash, cl.entrypoint, cl.policy_name,
         ver.policy_id, ver.params_json, ver.expire_after,
         ag.addr AS agent_addr, ag.country, ag.kyc_status, ag.expires_at,
         cp.addr AS cp_addr, cp.sanctioned, cp.risk, cp.flags_json,
         CAST(f.cents AS HUGEINT) * CAST($4 AS HUGEINT) AS wei, m.h AS non_signers_hash
  FROM s_chunk f
  LEFT JOIN s_masks m ON m.mask = f.mask
  JOIN s_clients cl ON cl.c = f.c
  JOIN s_versions ver ON ver.vid = f.vid
  JOIN s_agents ag ON ag.a = f.a
  JOIN s_cps cp ON cp.k = f.k
)
SELECT $1 AS chain_id, task_id, client AS policy_client, policy_address, policy_id,
  created_block, CAST($2 AS TIMESTAMP) + to_seconds(created_block * $3) AS created_time,
  '0x' || sha256($6 || ':ctx:' || i) AS created_tx, created_block - 1 AS task_created_block,
  67 AS quorum_threshold_pct, '0x00' AS quorum_numbers, agent_addr AS intent_from,
  CASE WHEN kind = 1 THEN cp_addr ELSE $5 END AS intent_to,
  CASE WHEN kind = 1 THEN CAST(wei AS VARCHAR) ELSE '0' END AS intent_value,
  CASE WHEN kind = 1 THEN cents / 100.0 ELSE 0.0 END AS intent_value_num,
  CASE WHEN kind = 1 THEN '0x'
       ELSE '0x' || CASE WHEN kind = 0 THEN 'a9059cbb' ELSE '095ea7b3' END
            || '000000000000000000000000' || substr(cp_addr, 3) || printf('%064x', wei) END AS intent_data,
  $1 AS intent_chain_id,
  CASE kind WHEN 0 THEN 'transfer(address,uint256)' WHEN 2 THEN 'approve(address,uint256)' ELSE '' END AS function_signature,
  CASE kind WHEN 0 THEN 'transfer' WHEN 2 THEN 'approve' ELSE '' END AS function_name,
  CASE WHEN kind = 1 THEN '[]' ELSE '["' || cp_addr || '","' || CAST(wei AS VARCHAR) || '"]' END AS function_args_json,
  CASE WHEN kind = 1 THEN 'ETH' ELSE $5 END AS asset,
  CAST(wei AS VARCHAR) AS amount_wei, cents / 100.0 AS amount_num, cp_addr AS counterparty,
  CASE WHEN responded THEN responded_block END AS responded_block,
  CASE WHEN responded THEN CAST($2 AS TIMESTAMP) + to_seconds(responded_block * $3) END AS responded_time,
  CASE WHEN responded THEN '0x' || sha256($6 || ':rtx:' || i) END AS responded_tx,
  CASE WHEN NOT responded THEN NULL WHEN attested THEN '0x' || repeat('0', 63) || '1'
       ELSE '0x' || repeat('0', 64) END AS evaluation_result,
  CASE WHEN responded THEN attested END AS allow,
  CASE WHEN responded THEN expire_block END AS response_expire_block,
  CASE WHEN responded THEN code_hash END AS policy_code_hash,
  entrypoint, params_json,
  CASE WHEN NOT responded THEN NULL
       WHEN oracle_error THEN '[{"' || CASE policy_name WHEN 'spending_limits' THEN 'spend' WHEN 'counterparty_screening' THEN 'sanctions'
                                        WHEN 'kyc_jurisdiction' THEN 'kyc' ELSE 'market' END || '":{"error":"oracle timeout"}}]'
       WHEN policy_name = 'spending_limits' THEN
         '[{"spend":{"spent_today_wei":"' || CAST(CAST(spent_cents AS HUGEINT) * CAST($4 AS HUGEINT) AS VARCHAR)
         || '","day":"' || strftime(CAST($2 AS TIMESTAMP) + to_seconds(created_block * $3), '%Y-%m-%d') || '"}}]'
       WHEN policy_name = 'counterparty_screening' THEN
         '[{"sanctions":{"address":"' || cp_addr || '","sanctioned":' || CASE WHEN sanctioned THEN 'true' ELSE 'false' END
         || ',"flags":' || flags_json || ',"risk_score":' || risk || '}}]'
       WHEN policy_name = 'kyc_jurisdiction' THEN
         '[{"kyc":{"address":"' || agent_addr || '","status":"' || kyc_status || '","country":"' || country
         || '","expires_at":' || expires_at || ',"checked_at":' || t_unix || '}}]'
       ELSE
         '[{"market":{"asset":"' || CASE WHEN kind = 1 THEN 'eth' ELSE $5 END || '","volatility_bps":' || vol_bps
         || ',"price_usd":' || printf('%.4f', price) || ',"transfers_last_hour":' || tx_hour
         || ',"large_transfers_last_hour":' || large_hour || '}}]'
  END AS policy_data_json,
  CASE WHEN responded THEN non_signers_hash END AS hash_of_non_signers,
  CASE WHEN responded THEN non_signers END AS non_signer_count,
  CASE WHEN responded THEN signers END AS signer_count,
  CASE WHEN spent_block >= 0 THEN spent_block END AS spent_block,
  CASE WHEN spent_block >= 0 THEN CAST($2 AS TIMESTAMP) + to_seconds(spent_block * $3) END AS spent_time,
  CASE WHEN challenged_block >= 0 THEN challenged_block END AS challenged_block,
  CASE WHEN challenged_block >= 0 THEN challenge_success END AS challenge_success,
  CASE WHEN challenged_block >= 0 THEN '0x' || substr(sha256($6 || ':role:challenger'), 1, 40) END AS challenger,
  ['created', 'allowed', 'denied', 'expired', 'spent', 'challenged'][status_code + 1] AS status,
  CASE WHEN responded THEN responded_block - created_block END AS latency_respond_blocks,
  CASE WHEN responded THEN (responded_block - created_block) * $3 END AS latency_respond_s,
  CASE WHEN spent_block >= 0 THEN spent_block - responded_block END AS latency_spend_blocks,
  CASE WHEN spent_block >= 0 THEN (spent_block - responded_block) * $3 END AS latency_spend_s
FROM base
"""

# `lens audit`'s rows for every answered task: the replayed verdict is the true one, so the colluding quorum's
# wrong verdicts (and only those) come out as mismatches; deny reasons and sentence from the policy's reason keys.
REPLAYS_INSERT = """
INSERT INTO replays BY NAME
SELECT $1 AS chain_id, f.task_id,
  CAST($2 AS TIMESTAMP) + to_seconds((f.responded_block + 60) * $3) AS replayed_at,
  f.truth AS replayed_allow, CASE WHEN f.fault THEN 'mismatch' ELSE 'match' END AS result, '' AS reason,
  r.deny_json, CASE WHEN f.fault THEN 'MISMATCH — the operators attested '
    || CASE WHEN f.truth THEN 'denied' ELSE 'allowed' END || ', but a replay gives: ' ELSE '' END || r.sentence AS sentence
FROM s_chunk f JOIN s_clients cl ON cl.c = f.c JOIN s_reasons r ON r.policy_name = cl.policy_name AND r.bits = f.reasons
WHERE f.responded
ORDER BY task_id
"""

# The chunk's tasks sorted by id, each expanded in place into its operators (no sort of the ten times larger
# expansion): a chunk's rows come out in task-id order, so the zone maps of `task_id` find one task's signers
# (the verdict page) in a row group per chunk instead of a scan of every signer row.
# Each row carries its task's order key as the indexer derives it (no NewTaskCreated logs here: log index 0).
SIGNERS_INSERT = """
INSERT INTO task_signers BY NAME
WITH f AS (SELECT task_id, mask, elig_mask, created_block FROM s_chunk WHERE responded ORDER BY task_id),
x AS (SELECT task_id, mask, elig_mask, created_block, unnest(range($2)) AS j FROM f)
SELECT $1 AS chain_id, task_id, $3[j + 1] AS operator_id, $4[j + 1] AS operator, ((mask >> j) & 1) = 0 AS signed,
       $5[j + 1] AS stake_num, created_block AS task_block, created_block * 100000 AS task_pos,
       CAST($6 AS TIMESTAMP) + to_seconds(created_block * $7) AS task_time
FROM x WHERE ((elig_mask >> j) & 1) = 1
"""


def _write_small_tables(
    con,
    tag,
    policies,
    policy_addr,
    client_addr,
    vdf,
    ops,
    dereg_block,
    head,
    contracts,
    deployer,
    aggregator,
    resolver,
    challenger,
    token,
    slashes: pd.DataFrame,
) -> None:
    """meta, blobs, policies, policy_versions, operators, operator_stakes, challenges, blocks, checkpoints."""

    def t_of(block: int) -> pd.Timestamp:
        return GENESIS + pd.Timedelta(seconds=int(block) * BLOCK_TIME_S)

    deployment = {
        "name": "synth",
        "chain_id": CHAIN_ID,
        "rpc_url": "",
        "start_block": 0,
        "confirmations": 0,
        "contracts": contracts,
        "policies": {
            n: {"address": policy_addr[n], "entrypoint": p.entrypoint, "policy_code_hash": p.code_hash}
            for n, p in policies.items()
        },
        "clients": {c: {"address": client_addr[c], "policy": pn} for c, pn, _ in CLIENTS},
        "roles": {"deployer": deployer, "aggregator": aggregator, "resolver": resolver, "challenger": challenger},
        "deployment_block": START_BLOCK - 900,
    }
    roles: dict[str, list[str]] = {"*": ["open topics (any address)"]}
    for role, a in contracts.items():
        roles.setdefault(a, []).append(role)
    for n, a in policy_addr.items():
        roles.setdefault(a, []).append(f"policy {n}")
    for c, a in client_addr.items():
        roles.setdefault(a, []).append(f"client {c}")
    meta = {  # the keys the indexer writes (indexer/run.py), so every reader treats both DBs alike
        "deployment": "synth",
        "chain_id": str(CHAIN_ID),
        "deployment_file": "",
        "rpc_url": "",
        "confirmations": "0",
        "roles": json.dumps({a: ", ".join(r) for a, r in roles.items()}),
        "deployment_json": json.dumps(deployment),
        "data_version": keccak(text=f"{tag}:{head}").hex()[:32],
        "indexed_head": str(head),
        # synth's own: where the DB came from, and the devnet's challenge window it assumes
        "name": "synth",
        "challenge_window_blocks": "200",
        "source": f"lens synth (seed {tag.split(':')[1]})",
        "head_block": str(head),
    }
    _insert(con, "meta", pd.DataFrame({"key": list(meta), "value": list(meta.values())}))
    _insert(
        con,
        "blobs",
        pd.DataFrame(
            {"hash": [p.code_hash for p in policies.values()], "content": [p.source for p in policies.values()]}
        ),
    )
    _insert(
        con,
        "policies",
        pd.DataFrame(
            [
                dict(
                    chain_id=CHAIN_ID,
                    policy_address=policy_addr[n],
                    policy_cid="bafy" + keccak(text="cid:" + p.source).hex()[:52],
                    schema_cid="bafy" + keccak(text="schema:" + n).hex()[:52],
                    entrypoint=p.entrypoint,
                    policy_code_hash=p.code_hash,
                    version=p.version,
                    name=n,
                )
                for n, p in policies.items()
            ]
        ),
    )
    senders = [deployer, _addr(f"{tag}:role:ops-multisig")]
    _insert(
        con,
        "policy_versions",
        pd.DataFrame(
            [
                dict(
                    chain_id=CHAIN_ID,
                    policy_address=r["policy_address"],
                    client=r["client"],
                    policy_id=r["policy_id"],
                    block_number=r["block_number"],
                    block_time=t_of(r["block_number"]),
                    tx_hash=_h32(f"{tag}:ptx:{i}"),
                    sender=senders[i % 2 if r["v"] else 0],
                    params_json=r["params_json"],
                    expire_after=r["expire_after"],
                    valid_from_block=r["valid_from_block"],
                    valid_to_block=r["valid_to_block"],
                )
                for i, r in vdf.iterrows()
            ]
        ),
    )
    reg = START_BLOCK - 800
    _insert(
        con,
        "operators",
        pd.DataFrame(
            [
                dict(
                    chain_id=CHAIN_ID,
                    operator=o["operator"],
                    operator_id=o["operator_id"],
                    pubkey_g1_x=str(int.from_bytes(keccak(text=o["operator"] + "x"), "big") >> 2),
                    pubkey_g1_y=str(int.from_bytes(keccak(text=o["operator"] + "y"), "big") >> 2),
                    socket=f"op-{o['idx']}.operators.example:9000",
                    metadata_uri=f"https://operators.example/{o['idx']}.json",
                    registered_block=reg + o["idx"],
                    deregistered_block=dereg_block if (dereg_block is not None and o["idx"] == len(ops) - 1) else None,
                    stake=str(o["stake_wei"]),
                    stake_num=o["stake_wei"] / 1e18,
                    name=o["name"],
                    organisation=o["organisation"],
                    country=o["country"],
                    city=o["city"],
                    latitude=o["latitude"],
                    longitude=o["longitude"],
                    provider=o["provider"],
                    region=o["region"],
                    asn=o["asn"],
                    client_version="newton-operator/0.9." + str(o["idx"] % 3),
                    metadata_error=None,
                )
                for o in ops
            ]
        ),
    )
    registered = pd.DataFrame(
        [dict(operator_id=o["operator_id"], block_number=reg + o["idx"], stake_num=o["stake_wei"] / 1e18) for o in ops]
    )
    stakes = pd.concat([registered, slashes]).sort_values(["operator_id", "block_number"], kind="stable")
    _insert(con, "operator_stakes", stakes.assign(chain_id=CHAIN_ID))
    con.execute(
        """
        INSERT INTO challenges BY NAME
        SELECT chain_id, task_id, challenged_block AS block_number,
               CAST(? AS TIMESTAMP) + to_seconds(challenged_block * ?) AS block_time,
               '0x' || sha256(? || ':chtx:' || task_id) AS tx_hash, challenger, challenge_success AS success
        FROM tasks WHERE challenged_block IS NOT NULL
    """,
        [str(GENESIS), BLOCK_TIME_S, tag],
    )
    con.execute(
        """
        INSERT INTO blocks BY NAME
        WITH b AS (
          SELECT n FROM s_task_blocks UNION SELECT block_number FROM operator_stakes UNION SELECT block_number FROM policy_versions UNION SELECT ?)
        SELECT ? AS chain_id, n AS block_number, '0x' || sha256(? || ':blk:' || n) AS block_hash,
               '0x' || sha256(? || ':blk:' || (n - 1)) AS parent_hash, CAST(? AS TIMESTAMP) + to_seconds(n * ?) AS block_time
        FROM b
    """,
        [head, CHAIN_ID, tag, tag, str(GENESIS), BLOCK_TIME_S],
    )
    addrs = sorted(set(contracts.values()) | set(policy_addr.values()) | set(client_addr.values()))
    _insert(
        con,
        "checkpoints",
        pd.DataFrame(dict(chain_id=CHAIN_ID, address=addrs, last_block=head, updated_at=t_of(head), last_error=None)),
    )


def _write_governance(con, tag: str, contracts: dict, policy_addr: dict, deployer: str) -> None:
    """The proxies' history, as the devnet makes it: each proxy born (Upgraded, Initialized(1), ownership, admin) at
    the deployment; the task manager upgraded to a second implementation half-way through the tasks (Initialized(2)),
    one policy's ownership handed to a multisig a quarter of the way in."""
    from indexer.abi import topic0_of

    lo, mid, quarter = con.execute(
        "SELECT min(created_block), quantile_disc(created_block, 0.5), quantile_disc(created_block, 0.25) FROM tasks"
    ).fetchall()[0]
    admin, multisig = _addr(f"{tag}:proxyAdmin"), _addr(f"{tag}:role:ops-multisig")
    births = [
        ("taskManager", contracts["taskManager"], "tm1"),
        ("challengeVerifier", contracts["challengeVerifier"], "cv"),
    ]
    births += [(f"policy {n}", a, "policy") for n, a in sorted(policy_addr.items())]
    rows: dict[str, list[dict]] = {"ev_upgraded": [], "ev_initialized": [], "ev_ownership_transferred": []}
    rows["ev_admin_changed"] = []

    def log(table: str, event: str, block: int, i: int, address: str, **fields) -> None:
        rows[table].append(
            dict(
                chain_id=CHAIN_ID,
                block_number=int(block),
                log_index=i,
                tx_hash=_h32(f"{tag}:gov:{address}:{block}"),
                block_time=GENESIS + pd.Timedelta(seconds=int(block) * BLOCK_TIME_S),
                address=address,
                topic0=topic0_of(event),
                layout="current",
                **fields,
            )
        )

    for k, (_role, proxy, impl) in enumerate(births):
        block = max(int(lo or START_BLOCK) - 600 + k, 1)
        log("ev_upgraded", "Upgraded", block, 0, proxy, implementation=_addr(f"{tag}:impl:{impl}"))
        if impl != "cv":  # the challenge verifier has roles, not an owner
            log(
                "ev_ownership_transferred",
                "OwnershipTransferred",
                block,
                1,
                proxy,
                previous_owner="0x" + "00" * 20,
                new_owner=deployer,
            )
        log("ev_initialized", "Initialized", block, 2, proxy, version=1)
        log("ev_admin_changed", "AdminChanged", block, 3, proxy, previous_admin="0x" + "00" * 20, new_admin=admin)
    tm = contracts["taskManager"]
    up = int(mid or START_BLOCK) - 1  # an admin block between two batches, as in `lens simulate`
    log("ev_upgraded", "Upgraded", up, 0, tm, implementation=_addr(f"{tag}:impl:tm2"))
    log("ev_initialized", "Initialized", up, 1, tm, version=2)
    first = sorted(policy_addr)[0]
    log(
        "ev_ownership_transferred",
        "OwnershipTransferred",
        int(quarter or START_BLOCK) - 1,
        0,
        policy_addr[first],
        previous_owner=deployer,
        new_owner=multisig,
    )
    for table, frame in rows.items():
        _insert(con, table, pd.DataFrame(frame))


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    """INSERT a DataFrame by column name (DuckDB reads it as Arrow; no executemany)."""
    con.register("_s_ins", df)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _s_ins")  # table names are module constants
    finally:
        con.unregister("_s_ins")


# ---------------------------------------------------------------------------------------------
# `lens bench app`: a synthetic DB of the asked size, then every page cold and warm (app/pagebench.py)


def _task_count(path: Path) -> int:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM tasks").fetchone()[0])
    except duckdb.Error:
        return 0
    finally:
        con.close()


def bench_pages(path: Path, *, tasks: int = 1_000_000, seed: int = 7, progress: bool = False) -> dict[str, Any]:
    """Build (or reuse) a synthetic DB of exactly `tasks` tasks and time each page: cold (caches cleared) and warm
    (median), each page's queries, and why a slow one is slow."""
    from app import pagebench

    path = Path(path).expanduser()
    have = _task_count(path) if path.exists() else 0
    built_s = None
    if have != tasks:
        _say(progress, f"building a {tasks:,}-task DB at {path} (once; later runs of this size reuse it)")
        built_s = build(path, tasks=tasks, seed=seed, force=True, progress=progress)["seconds"]
    result = pagebench.bench_db_pages(path, say=lambda m: _say(progress, m, "bench app"))
    result["build_s"] = None if built_s is None else round(built_s, 1)
    return result
