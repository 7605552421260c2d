"""Governance of the trust base: every watched proxy's implementation, admin and owner (ERC-1967 slots read with
eth_getStorageAt), its history (Upgraded, AdminChanged, BeaconUpgraded, Initialized, OwnershipTransferred, role
grants and revocations from the indexed raw tables), the implementation in force at a block, and the risks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from eth_utils import keccak

from app.errors import LensError
from app.queries.base import Con, query, query_rows, table_names

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = ROOT / "contracts" / "artifacts"  # the devnet's compiled contracts: code, ABI, storage layout

# ERC-1967 storage slots: keccak256("eip1967.proxy.implementation") - 1, "…admin" - 1, "…beacon" - 1.
IMPLEMENTATION_SLOT = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
ADMIN_SLOT = "0xb53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103"
BEACON_SLOT = "0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50"
# OpenZeppelin v5 Initializable keeps `_initialized` (uint64) in an ERC-7201 namespace; v4 at slot 0, byte 0.
OZ5_INITIALIZABLE_SLOT = "0xf0c57e16840df040f15088dc2f81fe391c3923bec73e23a9662efc9c229c6a00"
OWNER_SELECTOR = "0x8da5cb5b"  # owner()
IMPLEMENTATION_SELECTOR = "0x5c60da1b"  # IBeacon.implementation()
MIN_DELAY_SELECTOR = "0xf27a0c92"  # TimelockController.getMinDelay()
ZERO = "0x" + "00" * 20
# Most severe first: anyone can take over / the proxy's storage is misread, then one key can change the code.
RISK_ORDER = ("uninitialized_implementation", "storage_layout", "no_delay_upgrade", "eoa_admin", "eoa_owner")

# The governance events: raw table, the column that names what changed, and the history field it fills.
EVENTS: tuple[tuple[str, str, str, str], ...] = (
    ("Upgraded", "ev_upgraded", "implementation", "implementation"),
    ("AdminChanged", "ev_admin_changed", "new_admin", "new_admin"),
    ("BeaconUpgraded", "ev_beacon_upgraded", "beacon", "beacon"),
    ("Initialized", "ev_initialized", "coalesce(CAST(version AS VARCHAR), version_u64)", "version"),
    ("OwnershipTransferred", "ev_ownership_transferred", "new_owner", "new_owner"),
    ("RoleGranted", "ev_role_granted", "role || ' → ' || account", "role"),
    ("RoleRevoked", "ev_role_revoked", "role || ' ✕ ' || account", "role"),
)


@dataclass(frozen=True)
class HistoryEntry:
    """One governance event of a proxy: what, where in the chain, who sent the transaction."""

    event: str
    block_number: int
    log_index: int
    block_time: str | None
    tx_hash: str
    value: str  # the new implementation / admin / beacon / owner, the initialized version, or role → account
    field: str  # which of implementation | new_admin | beacon | new_owner | version | role `value` is
    sender: str | None = None  # the transaction's sender (eth_getTransactionByHash), None when the RPC is away

    def as_json(self) -> dict[str, Any]:
        """The `lens upgrades --json` form: event, block_number, tx_hash, <field>: value, sender (+ time)."""
        return {
            "event": self.event,
            "block_number": self.block_number,
            "block_time": self.block_time,
            "tx_hash": self.tx_hash,
            self.field: self.value,
            "sender": self.sender,
        }


@dataclass(frozen=True)
class Proxy:
    """A watched proxy: its role in the deployment, what its ERC-1967 slots hold and its history."""

    address: str
    role: str
    implementation: str | None
    admin: str | None
    owner: str | None
    beacon: str | None
    implementation_code_hash: str | None
    implementation_contract: str | None  # the devnet artifact whose runtime code has that hash, if any
    history: tuple[HistoryEntry, ...]

    def as_json(self) -> dict[str, Any]:
        """The `lens upgrades --json` form of one proxy."""
        d = asdict(self)
        d["history"] = [h.as_json() for h in self.history]
        return d


@dataclass(frozen=True)
class Risk:
    """One flagged risk: the address it concerns, its kind and a sentence saying what is wrong."""

    address: str
    kind: str  # uninitialized_implementation | eoa_admin | eoa_owner | no_delay_upgrade | storage_layout
    detail: str


@dataclass(frozen=True)
class LayoutChange:
    """A storage variable of the older version that moved, changed type or disappeared in the newer one."""

    variable: str
    change: str  # moved | type_changed | removed
    old: str
    new: str


@dataclass(frozen=True)
class LayoutDiff:
    """Consecutive implementations of one proxy compared by their solc storage layouts."""

    proxy: str
    old_implementation: str
    new_implementation: str
    old_contract: str
    new_contract: str
    changes: tuple[LayoutChange, ...]
    appended: tuple[str, ...]


@dataclass(frozen=True)
class GovernanceReport:
    """Everything the governance page and `lens upgrades` show."""

    proxies: tuple[Proxy, ...]
    risks: tuple[Risk, ...]
    layout_diffs: tuple[LayoutDiff, ...] = ()
    chain_note: str = ""  # why slot values are missing (RPC unreachable), else ''

    def as_json(self) -> dict[str, Any]:
        """One object: proxies, risks (address, kind, detail), layout_diffs, chain_note."""
        return {
            "proxies": [p.as_json() for p in self.proxies],
            "risks": [asdict(r) for r in self.risks],
            "layout_diffs": [asdict(d) for d in self.layout_diffs],
            "chain_note": self.chain_note,
        }


# ---------------------------------------------------------------------------------------------
# Watched addresses and their roles


def watched_roles(doc: dict | None) -> dict[str, str]:
    """address → role(s) the deployment gives it (contract roles joined by '/', 'policy <name>', 'client <name>')."""
    roles: dict[str, list[str]] = {}
    doc = doc or {}
    for role, addr in (doc.get("contracts") or {}).items():
        if isinstance(addr, str) and addr.lower() != ZERO:
            roles.setdefault(addr.lower(), []).append(role)
    for name, p in (doc.get("policies") or {}).items():
        a = str((p or {}).get("address", "")).lower()
        if a:
            roles.setdefault(a, []).append(f"policy {name}")
    for name, c in (doc.get("clients") or {}).items():
        a = str((c or {}).get("address", "")).lower()
        if a:
            roles.setdefault(a, []).append(f"client {name}")
    return {a: "/".join(r) for a, r in roles.items()}


# ---------------------------------------------------------------------------------------------
# History from the DB (watched addresses only)


def history_frame(con: Con, addresses: list[str]) -> pd.DataFrame:
    """Every governance event at the given addresses, oldest first: address, event, block_number, log_index,
    block_time, tx_hash, value, field (empty frame when nothing is indexed)."""
    names = table_names(con)
    parts = []
    for event, table, value_sql, fld in EVENTS:
        if table not in names:
            continue
        expr = value_sql
        if event == "Initialized" and "version_u64" not in {
            r[0]
            for r in query_rows(con, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])
        }:
            expr = "CAST(version AS VARCHAR)"
        parts.append(
            f"SELECT address, '{event}' AS event, block_number, log_index, block_time, tx_hash, "
            f"CAST({expr} AS VARCHAR) AS value, '{fld}' AS field FROM {table} WHERE address IN (SELECT unnest(?))"
        )
    cols = ["address", "event", "block_number", "log_index", "block_time", "tx_hash", "value", "field"]
    if not parts or not addresses:
        return pd.DataFrame(columns=cols)
    sql = " UNION ALL ".join(parts) + " ORDER BY block_number, log_index"
    return query(con, sql, [[a.lower() for a in addresses]] * len(parts))


@dataclass(frozen=True)
class InForce:
    """The implementation of a proxy in force at a block: address, version label, since which block."""

    proxy: str
    implementation: str
    version: str
    since_block: int


IMPL_AT_SQL = """
SELECT implementation, version, from_block FROM (
    SELECT implementation, block_number AS from_block, log_index,
           'v' || row_number() OVER (ORDER BY block_number, log_index) AS version
    FROM ev_upgraded WHERE address = ?
) WHERE from_block <= ? ORDER BY from_block DESC, log_index DESC LIMIT 1
"""


def implementation_at(con: Con, proxy: str, block: int | None) -> InForce | None:
    """The implementation of `proxy` in force at `block` (the last Upgraded at or before it), None when unknown."""
    if block is None or not proxy or "ev_upgraded" not in table_names(con):
        return None
    rows = query_rows(con, IMPL_AT_SQL, [proxy.lower(), int(block)])
    if not rows:
        return None
    impl, version, since = rows[0]
    return InForce(proxy.lower(), impl, version, int(since))


# ---------------------------------------------------------------------------------------------
# Storage layouts (solc's storageLayout output of the devnet's artifacts)


@cache
def known_artifacts() -> dict[str, dict]:
    """keccak256 of the runtime code → {contract, storageLayout} of every committed devnet artifact."""
    out: dict[str, dict] = {}
    for path in sorted(ARTIFACTS_DIR.glob("*.json")):
        try:
            art = json.loads(path.read_text())
            code = bytes.fromhex(art["deployedBytecode"][2:])
        except (OSError, ValueError, KeyError):
            continue
        if code:
            out["0x" + keccak(code).hex()] = {
                "contract": art.get("contractName", path.stem),
                "storageLayout": art.get("storageLayout") or {},
            }
    return out


def _layout_vars(layout: dict) -> dict[str, tuple[int, int, str]]:
    """variable → (slot, offset, type label) of a solc storage layout; a name declared twice in the inheritance
    chain (OpenZeppelin's `__gap`s) is told apart by its occurrence: `__gap`, `__gap#2`. solc names the compiled
    contract, not the declaring base, in each entry, so the contract is not part of the key."""
    types = layout.get("types") or {}
    out: dict[str, tuple[int, int, str]] = {}
    for v in layout.get("storage") or []:
        name, n = v["label"], 2
        while name in out:
            name, n = f"{v['label']}#{n}", n + 1
        t = types.get(v.get("type"), {})
        label = t.get("label") or str(v.get("type"))
        out[name] = (int(v["slot"]), int(v.get("offset", 0)), f"{label} ({t.get('numberOfBytes', '?')} B)")
    return out


def layout_changes(old: dict, new: dict) -> tuple[tuple[LayoutChange, ...], tuple[str, ...]]:
    """Compare two solc storage layouts: (changes of the old variables: moved, type_changed, removed; names of the
    variables the new layout adds). Appending variables after the old ones is the safe upgrade; anything in
    `changes` means the new code reads the proxy's existing storage differently."""
    a, b = _layout_vars(old), _layout_vars(new)
    changes = []
    for name, (slot, off, typ) in a.items():
        key = name
        if key not in b:
            changes.append(LayoutChange(name, "removed", f"slot {slot}+{off} {typ}", "—"))
            continue
        nslot, noff, ntyp = b[key]
        if (nslot, noff) != (slot, off):
            changes.append(LayoutChange(name, "moved", f"slot {slot}+{off}", f"slot {nslot}+{noff}"))
        elif ntyp != typ:
            changes.append(LayoutChange(name, "type_changed", typ, ntyp))
    appended = tuple(k for k in b if k not in a)
    return tuple(changes), appended


# ---------------------------------------------------------------------------------------------
# Chain reads


class ChainReader:
    """Bounded JSON-RPC reads for the governance view (slots, code, owner(), senders); every failure is a None."""

    def __init__(self, rpc_url: str, timeout_s: float = 3.0) -> None:
        from indexer.extract import Rpc

        self.rpc = Rpc(rpc_url, retries=1, timeout=timeout_s, backoff=0.05)
        self.memo: dict[str, Any] = {}  # one answer per (method, params): implementations repeat across proxies
        self.error = ""
        try:
            self.rpc.chain_id()
        except Exception as err:  # unreachable node: say so once, read nothing
            self.error = f"cannot read the chain at {rpc_url}: {err}"

    @property
    def ok(self) -> bool:
        """Whether the node answered."""
        return not self.error

    def _call(self, method: str, params: list) -> Any:
        if not self.ok:
            return None
        key = json.dumps([method, params], sort_keys=True)
        if key not in self.memo:
            try:
                self.memo[key] = self.rpc.call(method, params)
            except Exception:
                self.memo[key] = None
        return self.memo[key]

    def slot_address(self, address: str, slot: str | int, block: str) -> str | None:
        """The address held in the low 20 bytes of a storage slot (None when unreadable, ZERO when empty)."""
        raw = self._call("eth_getStorageAt", [address, slot if isinstance(slot, str) else hex(slot), block])
        if raw is None:
            return None
        return "0x" + raw[2:].rjust(64, "0")[-40:].lower()

    def slot_word(self, address: str, slot: str | int, block: str) -> int | None:
        """A storage slot as an integer (None when unreadable)."""
        raw = self._call("eth_getStorageAt", [address, slot if isinstance(slot, str) else hex(slot), block])
        return None if raw is None else int(raw, 16)

    def code(self, address: str, block: str) -> bytes | None:
        """Runtime code at an address (None when unreadable)."""
        raw = self._call("eth_getCode", [address, block])
        return None if raw is None else bytes.fromhex(raw[2:])

    def call_address(self, to: str, selector: str, block: str) -> str | None:
        """An address returned by a no-argument view (None when it reverts or the node is away)."""
        raw = self._call("eth_call", [{"to": to, "data": selector}, block])
        if not raw or len(raw) < 66:
            return None
        return "0x" + raw[2:66][-40:].lower()

    def call_uint(self, to: str, selector: str, block: str) -> int | None:
        """A uint returned by a no-argument view (None when it reverts or the node is away)."""
        raw = self._call("eth_call", [{"to": to, "data": selector}, block])
        if not raw or len(raw) < 66:
            return None
        return int(raw[2:66], 16)

    def sender(self, tx_hash: str) -> str | None:
        """The `from` of a transaction."""
        tx = self._call("eth_getTransactionByHash", [tx_hash])
        return str(tx["from"]).lower() if isinstance(tx, dict) and tx.get("from") else None

    def senders(self, tx_hashes: list[str], chunk: int = 100) -> dict[str, str | None]:
        """The `from` of many transactions, in batched requests (one by one when the node refuses batches)."""
        out: dict[str, str | None] = {}
        if not self.ok:
            return out
        for i in range(0, len(tx_hashes), chunk):
            part = tx_hashes[i : i + chunk]
            try:
                txs = self.rpc.batch([("eth_getTransactionByHash", [h]) for h in part])
            except Exception:
                txs = [None] * len(part)
            for h, tx in zip(part, txs):
                out[h] = str(tx["from"]).lower() if isinstance(tx, dict) and tx.get("from") else self.sender(h)
        return out

    def tx_to(self, tx_hash: str) -> str | None:
        """The `to` of a transaction."""
        tx = self._call("eth_getTransactionByHash", [tx_hash])
        return str(tx["to"]).lower() if isinstance(tx, dict) and tx.get("to") else None


# ---------------------------------------------------------------------------------------------
# The report


def _initialized_value(reader: ChainReader, impl: str, layout: dict | None, block: str) -> int | None:
    """The implementation contract's own Initializable `_initialized` (its storage, not the proxy's)."""
    if layout:
        for v in layout.get("storage") or []:
            if v.get("label") == "_initialized":
                word = reader.slot_word(impl, int(v["slot"]), block)
                if word is None:
                    return None
                nbytes = int(((layout.get("types") or {}).get(v["type"]) or {}).get("numberOfBytes", 1))
                return (word >> (8 * int(v.get("offset", 0)))) & ((1 << (8 * nbytes)) - 1)
    v5 = reader.slot_word(impl, OZ5_INITIALIZABLE_SLOT, block)
    if v5:
        return v5 & ((1 << 64) - 1)
    v4 = reader.slot_word(impl, 0, block)
    return None if v4 is None else v4 & 0xFF


def _is_eoa(reader: ChainReader, address: str | None, block: str) -> bool | None:
    if not address or address == ZERO:
        return None
    code = reader.code(address, block)
    return None if code is None else len(code) == 0


def build_report(con: Con, doc: dict | None, rpc_url: str | None, block: int | None = None) -> GovernanceReport:
    """The governance report of the deployment's watched addresses: slots read at `block` (default: latest)."""
    roles = watched_roles(doc)
    hist = history_frame(con, list(roles))
    reader = ChainReader(rpc_url) if rpc_url else None
    if block is not None and reader and reader.ok:
        head = int(reader.rpc.call("eth_blockNumber", []), 16)
        if not 0 <= block <= head:
            raise LensError(
                f"block {block} is not on the chain (head {head})",
                "pass --block between 0 and the head, or leave it out",
            )
    tag = hex(block) if block is not None else "latest"
    chain_note = "" if reader and reader.ok else (reader.error if reader else "no RPC URL in the deployment")
    senders = reader.senders(list(dict.fromkeys(hist["tx_hash"]))) if reader and reader.ok else {}
    upgraded_at = set(hist.loc[hist["event"] == "Upgraded", "address"]) if not hist.empty else set()
    artifacts = known_artifacts()
    proxies: list[Proxy] = []
    risks: list[Risk] = []
    diffs: list[LayoutDiff] = []
    for address, role in sorted(roles.items(), key=lambda kv: (kv[1], kv[0])):
        impl = admin = beacon = owner = code_hash = contract = None
        if reader and reader.ok:
            impl = reader.slot_address(address, IMPLEMENTATION_SLOT, tag)
            admin = reader.slot_address(address, ADMIN_SLOT, tag)
            beacon = reader.slot_address(address, BEACON_SLOT, tag)
            impl, admin, beacon = (None if v == ZERO else v for v in (impl, admin, beacon))
            if impl is None and beacon:  # a beacon proxy: the beacon names the implementation
                impl = reader.call_address(beacon, IMPLEMENTATION_SELECTOR, tag)
            if impl is None and address not in upgraded_at:
                continue  # not a proxy
            owner = reader.call_address(address, OWNER_SELECTOR, tag)
            if impl:
                code = reader.code(impl, tag)
                code_hash = "0x" + keccak(code).hex() if code else None
                contract = (artifacts.get(code_hash) or {}).get("contract")
        elif address not in upgraded_at:
            continue
        mine = hist[hist["address"] == address]
        if impl is None and not mine.empty:  # no chain: the last Upgraded says it
            ups = mine[mine["event"] == "Upgraded"]
            impl = ups["value"].iloc[-1] if not ups.empty else None
        if owner is None and not mine.empty:
            owns = mine[mine["event"] == "OwnershipTransferred"]
            owner = owns["value"].iloc[-1] if not owns.empty else None
        history = tuple(
            HistoryEntry(
                r.event,
                int(r.block_number),
                int(r.log_index),
                None if pd.isna(r.block_time) else str(r.block_time),
                r.tx_hash,
                str(r.value),
                r.field,
                senders.get(r.tx_hash),
            )
            for r in mine.itertuples()
        )
        proxies.append(Proxy(address, role, impl, admin, owner, beacon, code_hash, contract, history))
        if reader and reader.ok:
            risks += _risks_of(reader, address, role, impl, admin, owner, contract, artifacts, history, tag)
            diffs += _layout_diffs(reader, address, history, artifacts, tag)
    for d in diffs:
        for c in d.changes:
            risks.append(
                Risk(
                    d.proxy,
                    "storage_layout",
                    f"{c.variable} {c.change.replace('_', ' ')} from {d.old_contract} to {d.new_contract} "
                    f"({c.old} → {c.new}): the new code reads the proxy's existing storage differently",
                )
            )
    risks.sort(key=lambda r: RISK_ORDER.index(r.kind) if r.kind in RISK_ORDER else len(RISK_ORDER))
    return GovernanceReport(tuple(proxies), tuple(risks), tuple(diffs), chain_note)


def _risks_of(
    reader: ChainReader,
    address: str,
    role: str,
    impl: str | None,
    admin: str | None,
    owner: str | None,
    contract: str | None,
    artifacts: dict,
    history: tuple[HistoryEntry, ...],
    tag: str,
) -> list[Risk]:
    """The risks of one proxy: uninitialized implementations, EOA admin/owner, upgrades a timelock did not delay."""
    out: list[Risk] = []
    impls = list(dict.fromkeys([h.value for h in history if h.event == "Upgraded"] + ([impl] if impl else [])))
    for i in impls:
        code = reader.code(i, tag)
        layout = (artifacts.get("0x" + keccak(code).hex()) or {}).get("storageLayout") if code else None
        value = _initialized_value(reader, i, layout, tag)
        if value == 0:
            out.append(
                Risk(
                    i,
                    "uninitialized_implementation",
                    f"implementation {i} of {role} ({address}) was never initialized in its own storage: anyone "
                    "can call initialize on it and become its owner (its constructor should call "
                    "_disableInitializers())",
                )
            )
    if admin and _is_eoa(reader, admin, tag):
        out.append(Risk(address, "eoa_admin", f"the proxy admin {admin} of {role} is an EOA, not a contract"))
    elif admin:
        admin_owner = reader.call_address(admin, OWNER_SELECTOR, tag)
        if admin_owner and _is_eoa(reader, admin_owner, tag):
            out.append(
                Risk(
                    address,
                    "eoa_admin",
                    f"the proxy admin {admin} of {role} is owned by the EOA {admin_owner}: one key can upgrade it",
                )
            )
    if owner and owner != ZERO and _is_eoa(reader, owner, tag):
        out.append(Risk(address, "eoa_owner", f"the owner {owner} of {role} is an EOA, not a multisig or timelock"))
    # a timelock exists when the admin (or the admin's owner) answers getMinDelay(): each upgrade must have waited
    timelock = None
    for cand in (admin, reader.call_address(admin, OWNER_SELECTOR, tag) if admin else None):
        if cand and reader.call_uint(cand, MIN_DELAY_SELECTOR, tag) is not None:
            timelock = cand
            break
    if timelock:
        for h in history:
            if h.event != "Upgraded" or h is history[0]:
                continue
            delay = reader.call_uint(timelock, MIN_DELAY_SELECTOR, hex(max(h.block_number - 1, 0)))
            via = reader.tx_to(h.tx_hash)
            if delay == 0 or (via is not None and via != timelock):
                out.append(
                    Risk(
                        address,
                        "no_delay_upgrade",
                        f"upgrade of {role} to {h.value} at block {h.block_number} took effect with no delay "
                        f"although the timelock {timelock} exists",
                    )
                )
    return out


def _layout_diffs(
    reader: ChainReader, address: str, history: tuple[HistoryEntry, ...], artifacts: dict, tag: str
) -> list[LayoutDiff]:
    """Storage-layout comparisons of consecutive implementations whose layouts Lens has (code hash → artifact)."""
    impls = [h.value for h in history if h.event == "Upgraded"]
    known = []
    for i in impls:
        code = reader.code(i, tag)
        art = artifacts.get("0x" + keccak(code).hex()) if code else None
        known.append((i, art))
    out = []
    for (a, art_a), (b, art_b) in zip(known, known[1:]):
        if not art_a or not art_b or not art_a["storageLayout"] or not art_b["storageLayout"]:
            continue
        changes, appended = layout_changes(art_a["storageLayout"], art_b["storageLayout"])
        out.append(LayoutDiff(address, a, b, art_a["contract"], art_b["contract"], changes, appended))
    return out


def risks_frame(report: GovernanceReport) -> pd.DataFrame:
    """The risks as a table: kind, address, detail."""
    return pd.DataFrame([asdict(r) for r in report.risks], columns=["kind", "address", "detail"])


def proxies_frame(report: GovernanceReport) -> pd.DataFrame:
    """One row per proxy: role, address, implementation (and its artifact), admin, owner, events."""
    rows = [
        {
            "role": p.role,
            "address": p.address,
            "implementation": p.implementation,
            "contract": p.implementation_contract or "",
            "code_hash": p.implementation_code_hash or "",
            "admin": p.admin or "",
            "owner": p.owner or "",
            "events": len(p.history),
        }
        for p in report.proxies
    ]
    return pd.DataFrame(
        rows, columns=["role", "address", "implementation", "contract", "code_hash", "admin", "owner", "events"]
    )


def history_table(report: GovernanceReport) -> pd.DataFrame:
    """Every proxy's history in one table, oldest first: block, time, role, proxy, event, value, tx, sender."""
    rows = [
        {
            "block": h.block_number,
            "time": h.block_time,
            "role": p.role,
            "proxy": p.address,
            "event": h.event,
            "value": h.value,
            "tx_hash": h.tx_hash,
            "sender": h.sender or "",
        }
        for p in report.proxies
        for h in p.history
    ]
    df = pd.DataFrame(rows, columns=["block", "time", "role", "proxy", "event", "value", "tx_hash", "sender"])
    return df.sort_values("block", kind="stable").reset_index(drop=True)


def params_changes(con: Con) -> pd.DataFrame:
    """The params changes of "Policies" (policy_versions): block, time, client, policy address — for the timeline."""
    if "policy_versions" not in table_names(con):
        return pd.DataFrame(columns=["block", "time", "client", "policy_address"])
    return query(
        con,
        "SELECT block_number AS block, block_time AS time, client, policy_address FROM policy_versions "
        "ORDER BY block_number",
    )


def layout_changes_frame(diff: LayoutDiff) -> pd.DataFrame:
    """The changes of one layout comparison as a table: variable, change, old, new."""
    return pd.DataFrame([asdict(c) for c in diff.changes], columns=["variable", "change", "old", "new"])


DECISION_BLOCK_SQL = "SELECT coalesce(responded_block, created_block), policy_address FROM tasks WHERE task_id = ?"


def decided_under(con: Con, task_id: str) -> list[str]:
    """Sentences naming the implementation of the task manager and of the policy in force at the decision's block
    (the response's, else the creation's): 'Decided under the task manager's implementation 0x… (v2, since block
    1,204).' Empty when the DB has no Upgraded history for them."""
    from app.queries.base import deployment_from_meta_safe

    if "tasks" not in table_names(con):
        return []
    rows = query_rows(con, DECISION_BLOCK_SQL, [task_id])
    if not rows or rows[0][0] is None:
        return []
    block, policy = int(rows[0][0]), rows[0][1]
    tm = str(((deployment_from_meta_safe(con) or {}).get("contracts") or {}).get("taskManager") or "")
    out = []
    for what, proxy in (("the task manager", tm), ("the policy", policy)):
        hit = implementation_at(con, proxy, block) if proxy else None
        if hit is not None:
            out.append(
                f"Decided under {what}'s implementation {hit.implementation} ({hit.version}, since block "
                f"{hit.since_block:,})."
            )
    return out


def decided_under_from_db(db_path: str, task_id: str) -> list[str]:
    """decided_under on a short read-only connection to a DB file (for `lens explain`)."""
    from indexer.load import connect_read

    with connect_read(db_path) as con:
        return decided_under(con, task_id)
