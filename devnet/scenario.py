"""The static world of the devnet simulation: operators, liveness profiles, policies, clients, personas, schedules."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from devnet.deploy import ClientSpec, OperatorSpec, PolicySpec
from indexer.errors import LensError

ROOT = Path(__file__).resolve().parent.parent
POLICIES_DIR = ROOT / "data" / "policies"
POLICY_NAMES = ("spending_limits", "counterparty_screening", "kyc_jurisdiction", "circuit_breaker")
ETH = 10**18
QUORUM_THRESHOLD_PCT = 67  # the docs' gateway table value; each Task carries it
GAS_FUNDING_WEI = 10**24  # every simulated EOA gets plenty of gas money


# ----------------------------------------------------------------------------------------------- operators


@dataclass(frozen=True)
class OperatorSite:
    """Where and by whom an operator is run: the facts its metadata document publishes."""

    name: str
    organisation: str
    website: str
    country: str
    city: str
    latitude: float
    longitude: float
    provider: str
    region: str
    asn: str
    client_version: str
    stake_eth: int


# Where operators run: (provider, region, country, city, latitude, longitude, ASN), shared by several sites.
_AWS_ASHBURN = ("AWS", "us-east-1", "US", "Ashburn", 39.0438, -77.4874, "AS16509 Amazon.com, Inc.")
_AWS_FRANKFURT = ("AWS", "eu-central-1", "DE", "Frankfurt am Main", 50.1109, 8.6821, "AS16509 Amazon.com, Inc.")
_HETZNER_FALKENSTEIN = ("Hetzner", "fsn1", "DE", "Falkenstein", 50.4779, 12.3713, "AS24940 Hetzner Online GmbH")


def _at(
    name: str,
    organisation: str,
    website: str,
    location: tuple,
    stake_eth: int,
    client_version: str = "newton-operator/1.4.2",
) -> OperatorSite:
    """An OperatorSite at a (provider, region, country, city, lat, lon, asn) location."""
    provider, region, country, city, lat, lon, asn = location
    return OperatorSite(
        name, organisation, website, country, city, lat, lon, provider, region, asn, client_version, stake_eth
    )


# Realistic, not ideally diverse: three on AWS us-east-1 (Ashburn), two on AWS eu-central-1 run by the same
# organisation, one more on AWS in Singapore, two on Hetzner, one on GCP, one on OVH; older clients linger.
SITES: tuple[OperatorSite, ...] = (
    _at("Lodestar Staking", "Lodestar Staking GmbH", "https://lodestar-staking.example", _AWS_FRANKFURT, 1800),
    _at("Bitfrost Nodes", "Bitfrost Labs Inc.", "https://bitfrost.example", _AWS_ASHBURN, 2500),
    # same data centre, but announced from Amazon's other ASN
    _at(
        "Ironclad Validation",
        "Ironclad Validation LLC",
        "https://ironclad.example",
        _AWS_ASHBURN[:6] + ("AS14618 Amazon.com, Inc.",),
        900,
        "newton-operator/1.4.1",
    ),
    _at("Lodestar Staking (B)", "Lodestar Staking GmbH", "https://lodestar-staking.example", _AWS_FRANKFURT, 1200),
    _at(
        "Polar Ridge",
        "Polar Ridge Oy",
        "https://polarridge.example",
        ("Hetzner", "hel1", "FI", "Helsinki", 60.1699, 24.9384, "AS24940 Hetzner Online GmbH"),
        700,
    ),
    _at("Meridian Infra", "Meridian Infrastructure Ltd", "https://meridian-infra.example", _HETZNER_FALKENSTEIN, 1100),
    _at(
        "Kintsugi Labs",
        "Kintsugi Labs K.K.",
        "https://kintsugi.example",
        ("GCP", "asia-northeast1", "JP", "Tokyo", 35.6762, 139.6503, "AS396982 Google LLC"),
        600,
        "newton-operator/1.4.0",
    ),
    _at("Northstar Ops", "Northstar Operations Inc.", "https://northstar-ops.example", _AWS_ASHBURN, 1500),
    _at(
        "Harbor Node Co",
        "Harbor Node Pte. Ltd.",
        "https://harbornode.example",
        ("AWS", "ap-southeast-1", "SG", "Singapore", 1.3521, 103.8198, "AS16509 Amazon.com, Inc."),
        500,
        "newton-operator/1.3.9",
    ),
    _at(
        "Tessera Validators",
        "Tessera SAS",
        "https://tessera.example",
        ("OVHcloud", "gra", "FR", "Gravelines", 50.9867, 2.1281, "AS16276 OVH SAS"),
        800,
    ),
)
# the operator that joins mid-history (after Harbor Node Co deregisters)
JOINER_SITE = _at(
    "Cobalt Relay",
    "Cobalt Relay Inc.",
    "https://cobaltrelay.example",
    ("OVHcloud", "bhs", "CA", "Beauharnois", 45.3151, -73.8779, "AS16276 OVH SAS"),
    1000,
)
_EXTRA_PROVIDERS = (
    _AWS_ASHBURN,
    _HETZNER_FALKENSTEIN,
    ("GCP", "europe-west4", "NL", "Eemshaven", 53.4386, 6.8355, "AS396982 Google LLC"),
    ("AWS", "eu-west-1", "IE", "Dublin", 53.3498, -6.2603, "AS16509 Amazon.com, Inc."),
)


def _site(i: int) -> OperatorSite:
    """The i-th operator site; beyond the hand-written ten, plausible extra ones on the big providers."""
    if i < len(SITES):
        return SITES[i]
    return _at(
        f"Operator {i + 1:02d}",
        f"Independent Staker {i + 1:02d}",
        f"https://op{i + 1:02d}.example",
        _EXTRA_PROVIDERS[i % len(_EXTRA_PROVIDERS)],
        400 + (i * 137) % 900,
    )


def metadata_document(site: OperatorSite) -> dict[str, Any]:
    """An EigenLayer-style operator metadata JSON with the location/infrastructure fields Lens shows."""
    return {
        "name": site.name,
        "website": site.website,
        "description": f"{site.name} runs a Newton Protocol operator on {site.provider} {site.region}.",
        "logo": f"{site.website}/logo.png",
        "twitter": "",
        "organisation": site.organisation,
        "country": site.country,
        "city": site.city,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "provider": site.provider,
        "region": site.region,
        "asn": site.asn,
        "client_version": site.client_version,
    }


def data_uri(doc: dict[str, Any]) -> str:
    """A self-contained `data:application/json;base64,…` URI for a JSON document."""
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return "data:application/json;base64," + base64.b64encode(raw).decode()


# Operator sockets are IP literals inside real address ranges of the provider and region each site claims (what an
# offline IP database places there: country and announcing ASN), keyed by (provider, region, declared AS number).
_SOCKET_NETS = {
    ("AWS", "us-east-1", "AS16509"): "52.94.0",  # AMAZON-02, US
    ("AWS", "us-east-1", "AS14618"): "3.80.0",  # AMAZON-AES, US
    ("AWS", "eu-central-1", "AS16509"): "3.120.0",  # AMAZON-02, DE
    ("AWS", "ap-southeast-1", "AS16509"): "3.0.0",  # AMAZON-02, SG
    ("AWS", "eu-west-1", "AS16509"): "52.16.0",  # AMAZON-02, IE
    ("Hetzner", "fsn1", "AS24940"): "46.4.0",  # Hetzner Online GmbH, DE
    ("Hetzner", "hel1", "AS24940"): "65.108.0",  # Hetzner Online GmbH, FI
    ("GCP", "asia-northeast1", "AS396982"): "34.146.0",  # GOOGLE-CLOUD-PLATFORM, JP
    ("GCP", "europe-west4", "AS396982"): "34.90.0",  # GOOGLE-CLOUD-PLATFORM, NL
    ("OVHcloud", "gra", "AS16276"): "51.38.0",  # OVH SAS, FR
    ("OVHcloud", "bhs", "AS16276"): "158.69.0",  # OVH SAS, CA
}
# As happens in the wild, one operator's metadata declares a location its IP contradicts: it says Frankfurt, but its
# node answers from an AWS us-east-1 address.
MISPLACED = {"Lodestar Staking (B)": ("AWS", "us-east-1", "AS16509")}


def _socket(site: OperatorSite, i: int) -> str:
    """The operator's socket: an IP literal in its provider's range for the region it claims (host:port)."""
    key = MISPLACED.get(site.name) or (site.provider, site.region, site.asn.split()[0])
    return f"{_SOCKET_NETS[key]}.{10 + i}:{9000 + i}"


def _operator_spec(site: OperatorSite, seed: int, i: int | str) -> OperatorSpec:
    """The OperatorSpec for site i. Operators are infrastructure: their keys depend on their index only (not on
    the traffic seed), so `lens simulate --seed S` can drive a devnet deployed with any other seed."""
    key_seed = keccak(text=f"operator-bls:{i}")
    port = i if isinstance(i, int) else 99
    return OperatorSpec(
        name=site.name,
        key_seed=key_seed,
        stake=site.stake_eth * ETH,
        socket=_socket(site, port),
        metadata_uri=data_uri(metadata_document(site)),
    )


def operator_specs(n: int = 10, seed: int = 7) -> list[OperatorSpec]:
    """The initial operator set (n operators); the mid-history joiner is `joiner_spec`."""
    if n < 1:
        raise LensError(f"--operators must be at least 1 (got {n})", "use the default of 10")
    return [_operator_spec(_site(i), seed, i) for i in range(n)]


def joiner_spec(n: int = 10, seed: int = 7) -> OperatorSpec:
    """The operator that registers mid-history (index n, after the initial set)."""
    return _operator_spec(JOINER_SITE, seed, "joiner")


@dataclass(frozen=True)
class LivenessProfile:
    """How an operator behaves over the run; positions are fractions of the task sequence (0..1)."""

    name: str
    availability: float  # probability of signing a task while online
    offline: tuple[tuple[float, float], ...] = ()  # [start, end) stretches with no signatures
    registered_from: float = 0.0  # joins at this fraction (0 = initial set)
    deregister_at: float | None = None  # leaves at this fraction
    stake_changes: tuple[tuple[float, int], ...] = ()  # (fraction, new stake in wei), by the owner

    def online(self, frac: float) -> bool:
        """Whether the operator's node is up at this point of the run (availability aside). Registration is
        separate: the driver registers/deregisters it on chain at `registered_from` / `deregister_at`."""
        return not any(a <= frac < b for a, b in self.offline)


# Roles by index in the default set (they apply only when the set is large enough).
FLAKY, OFFLINE, LEAVER = 5, 6, 8
STAKE_UP, STAKE_DOWN = 1, 9


def liveness_profiles(n: int = 10) -> list[LivenessProfile]:
    """One profile per initial operator plus the joiner (last): most ≥ 99%, one flaky, one offline, one leaves."""
    profiles = []
    for i in range(n):
        site = _site(i)
        availability = (0.999, 0.998, 0.995, 0.999, 0.993, 0.85, 0.996, 0.999, 0.994, 0.997)[i % 10]
        offline: tuple[tuple[float, float], ...] = ()
        deregister_at = None
        stake_changes: tuple[tuple[float, int], ...] = ()
        if i == OFFLINE:
            offline = ((0.40, 0.52),)
        if i == LEAVER:
            deregister_at = 0.55
        if i == STAKE_UP:
            stake_changes = ((0.25, (site.stake_eth + 700) * ETH),)
        if i == STAKE_DOWN:
            stake_changes = ((0.70, (site.stake_eth - 250) * ETH),)
        profiles.append(LivenessProfile(site.name, availability, offline, 0.0, deregister_at, stake_changes))
    profiles.append(LivenessProfile(JOINER_SITE.name, 0.997, (), 0.60, None, ()))
    return profiles


# ------------------------------------------------------------------------------------------------ policies


def ipfs_cid(content: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256, base32) `ipfs add --raw-leaves --cid-version 1` gives a small file."""
    digest = b"\x01\x55\x12\x20" + hashlib.sha256(content).digest()
    return "b" + base64.b32encode(digest).decode().lower().rstrip("=")


# which oracle packs each policy reads (data.wasm.<pack>), if its metadata does not say
_DEFAULT_PACKS = {
    "spending_limits": ("spend",),
    "counterparty_screening": ("sanctions",),
    "kyc_jurisdiction": ("kyc",),
    "circuit_breaker": ("market", "spend"),
}


def _read_json(path: Path) -> Any:
    """A JSON file, or a LensError naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LensError(f"missing {path}", "the policies live in data/policies/<name>/") from None
    except ValueError as err:
        raise LensError(f"{path} is not valid JSON: {err}", "fix the file") from None


def policy_dir(name: str) -> Path:
    """The directory of a policy under data/policies."""
    return POLICIES_DIR / name


def policy_packs(name: str) -> tuple[str, ...]:
    """The oracle packs a policy reads, from its metadata.json (`policy_data`/`data_packs`) or the default."""
    meta_path = policy_dir(name) / "metadata.json"
    return _packs_in(name, _read_json(meta_path) if meta_path.exists() else {})


def _packs_in(name: str, meta: dict[str, Any]) -> tuple[str, ...]:
    """The oracle packs named in a policy's parsed metadata, or the policy's default packs."""
    for key in ("policy_data", "data_packs", "packs", "oracles"):
        value = meta.get(key)
        if isinstance(value, dict) and value:  # {"<pack>": {description, shape, example}}
            return tuple(value)
        if isinstance(value, list) and value:
            return tuple(str(v["name"] if isinstance(v, dict) else v) for v in value)
    return _DEFAULT_PACKS.get(name, ())


def policy_specs() -> list[PolicySpec]:
    """The four policies read from data/policies/<name>/ (source, entrypoint, CIDs, version, data packs)."""
    specs = []
    for name in POLICY_NAMES:
        d = policy_dir(name)
        source_path = d / "policy.rego"
        if not source_path.exists():
            raise LensError(
                f"policy {name} has no {source_path}", "the policies live in data/policies/<name>/policy.rego"
            )
        source = source_path.read_text()
        meta_path = d / "metadata.json"
        meta_bytes = meta_path.read_bytes() if meta_path.exists() else b"{}"
        meta = json.loads(meta_bytes or b"{}")
        schema_path = d / "params_schema.json"
        schema_bytes = schema_path.read_bytes() if schema_path.exists() else b"{}"
        entrypoint = meta.get("entrypoint") or f"{_package(source)}.allow"
        specs.append(
            PolicySpec(
                name=name,
                source=source,
                entrypoint=entrypoint,
                policy_cid=ipfs_cid(source.encode()),
                schema_cid=ipfs_cid(schema_bytes),
                metadata_cid=ipfs_cid(meta_bytes),
                version=str(meta.get("version", "0.1.0")),
                policy_data=_packs_in(name, meta),
            )
        )
    return specs


def _package(source: str) -> str:
    """The `package` name declared in a Rego source."""
    for raw in source.splitlines():
        line = raw.strip()
        if line.startswith("package "):
            return line.split()[1]
    raise LensError("policy has no package line", "add `package <name>` at the top of policy.rego")


def example_params(name: str) -> dict[str, Any]:
    """A policy's params.example.json (the starting point of every client's params)."""
    path = policy_dir(name) / "params.example.json"
    return _read_json(path) if path.exists() else {}


# ------------------------------------------------------------------------------------------------- world


def label_address(label: str) -> str:
    """A fixed, seed-independent address for a named counterparty (lower-case hex)."""
    return "0x" + keccak(text=f"newton-lens-world:{label}")[12:].hex()


@dataclass(frozen=True)
class Counterparty:
    """Someone agents pay: an address with the facts the screening provider knows about it."""

    label: str
    kind: str  # 'exchange' | 'vendor' | 'employee' | 'contractor' | 'protocol' | 'mixer' | 'cold' | 'person'
    sanctioned: bool = False
    risk_score: int = 1  # 0..10
    flags: tuple[str, ...] = ()
    allowlisted_from: int | None = 0  # params version from which the payments allowlist holds it (None = never)

    @property
    def address(self) -> str:
        """The counterparty's address."""
        return label_address(self.label)


COUNTERPARTIES: tuple[Counterparty, ...] = (
    # treasury destinations
    Counterparty("treasury-cold-storage", "cold"),
    Counterparty("coinbase-prime-deposit", "exchange", flags=("exchange",)),
    Counterparty("kraken-deposit", "exchange", flags=("exchange",)),
    Counterparty("lido-staking", "protocol", flags=("defi",)),
    Counterparty("aave-v3-pool", "protocol", flags=("defi",)),
    Counterparty("uniswap-universal-router", "protocol", flags=("defi", "dex")),
    # vendors and merchants (accounts-payable agent)
    Counterparty("vendor-cloudhost", "vendor"),
    Counterparty("vendor-design-studio", "vendor", risk_score=2),
    Counterparty("vendor-legal-llp", "vendor"),
    Counterparty("vendor-data-feeds", "vendor", risk_score=2),
    Counterparty("merchant-coffee-roasters", "vendor"),
    Counterparty("vendor-new-unvetted", "vendor", risk_score=4, allowlisted_from=1),
    Counterparty("otc-desk-unlisted", "exchange", risk_score=8, flags=("high_risk_exchange",), allowlisted_from=None),
    Counterparty("mixer-tornado-fork", "mixer", True, 10, ("mixer", "sanctions"), None),
    Counterparty("sanctioned-exchange-garantex", "exchange", True, 10, ("sanctions",), None),
    Counterparty("darknet-market-wallet", "person", False, 9, ("darknet_market",), None),
    # payroll (payroll agent)
    Counterparty("employee-ana", "employee"),
    Counterparty("employee-ben", "employee"),
    Counterparty("employee-chen", "employee"),
    Counterparty("employee-dara", "employee"),
    Counterparty("employee-eli", "employee"),
    Counterparty("contractor-gosia", "contractor", risk_score=2),
    Counterparty("contractor-hugo", "contractor", risk_score=2),
    Counterparty("contractor-kemi", "contractor", risk_score=3, allowlisted_from=1),
    Counterparty("contractor-unknown", "contractor", risk_score=5, allowlisted_from=None),
    # people the humans and members send to
    Counterparty("friend-maya", "person"),
    Counterparty("landlord-nico", "person"),
    Counterparty("sibling-omar", "person"),
    Counterparty("merchant-bike-shop", "vendor"),
)
_BY_LABEL = {c.label: c for c in COUNTERPARTIES}
BY_ADDRESS = {c.address: c for c in COUNTERPARTIES}
BLOCKED_COUNTRIES = ("CU", "IR", "KP", "RU", "SY")
SWAP_ROUTER = _BY_LABEL["uniswap-universal-router"].address


def counterparty(label: str) -> Counterparty:
    """The counterparty with this label."""
    return _BY_LABEL[label]


# ------------------------------------------------------------------------------------------------ clients


@dataclass(frozen=True)
class Persona:
    """An agent or a human using one policy client (the KYC facts are what the KYC registry holds about it)."""

    name: str
    kind: str  # 'treasury' | 'trader' | 'payroll' | 'payments' | 'human' | 'member'
    client: str
    description: str
    rate_per_day: float  # mean intents per simulated day
    abandon_rate: float = 0.02  # share of allowed intents never executed (their attestation expires)
    country: str = "US"
    kyc_status: str = "approved"  # 'approved' | 'pending' | 'rejected' | 'none' (no record)
    kyc_expires_frac: float | None = None  # the record expires at this fraction of the run (None = valid for years)
    kyc_renewed_frac: float | None = None  # ... and is renewed for a year at this fraction

    @property
    def role(self) -> str:
        """The key-derivation role: 'agent' for AI agents, 'human' for people."""
        return "human" if self.kind in ("human", "member") else "agent"


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "atlas-treasury-agent",
        "treasury",
        "treasury-vault",
        "AI treasury rebalancer: moves dUSD and ETH between cold storage, exchanges, staking and lending",
        480,
    ),
    Persona(
        "quant-trading-bot",
        "trader",
        "trading-vault",
        "AI trading bot: swaps dUSD/ETH on the router, approves the router, trades in bursts",
        600,
        0.04,
    ),
    Persona(
        "payroll-agent",
        "payroll",
        "payments-vault",
        "AI payroll agent: pays employees and contractors in dUSD, often in payroll runs",
        450,
    ),
    Persona(
        "ap-payments-agent",
        "payments",
        "payments-vault",
        "AI accounts-payable agent: pays vendors and merchants in dUSD and ETH",
        350,
    ),
    Persona("alice", "human", "family-office-vault", "family office principal (human wallet)", 90, 0.03),
    Persona("bob", "human", "family-office-vault", "family office accountant (human wallet)", 70, 0.03),
    Persona("carol", "member", "members-vault", "community member, verified", 60, 0.03, "US"),
    Persona("dave", "member", "members-vault", "community member, verified", 60, 0.03, "DE"),
    Persona(
        "erin",
        "member",
        "members-vault",
        "community member whose KYC lapses mid-history and is renewed",
        60,
        0.03,
        "GB",
        "approved",
        0.45,
        0.65,
    ),
    Persona("mateo", "member", "members-vault", "community member, verified", 50, 0.03, "AR"),
    Persona("farid", "member", "members-vault", "community member with KYC still pending", 15, 0.03, "AE", "pending"),
    Persona("ivan", "member", "members-vault", "community member in a blocked jurisdiction", 15, 0.03, "RU"),
    Persona("jin", "member", "members-vault", "applicant whose KYC was rejected", 8, 0.03, "KP", "rejected"),
    Persona("guest-wallet", "member", "members-vault", "a wallet with no KYC record at all", 10, 0.03, "", "none"),
)

CLIENT_POLICY = {
    "treasury-vault": "spending_limits",
    "family-office-vault": "spending_limits",  # same logic, different params
    "trading-vault": "circuit_breaker",
    "payments-vault": "counterparty_screening",
    "members-vault": "kyc_jurisdiction",
}
EXPIRE_AFTER = {  # attestation lifetime in blocks
    "treasury-vault": 40,
    "family-office-vault": 60,
    "trading-vault": 12,
    "payments-vault": 50,
    "members-vault": 30,
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` into a copy of `base` (dicts merge, everything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def client_params(client: str, version: int = 0, token: str | None = None) -> dict[str, Any]:
    """The params of a client at a given version (0 = initial; later versions come from PARAMS_SCHEDULE)."""
    policy = CLIENT_POLICY[client]
    return _merge(example_params(policy), _client_overrides(client, version))


def _units(x: float) -> str:
    """An 18-decimal amount as an exact decimal wei string."""
    return str(int(round(x * 10**6)) * 10**12)


def _client_overrides(client: str, version: int) -> dict[str, Any]:
    """The params of each client (complete, so they do not depend on params.example.json); version ≥ 1 = changes."""
    cps = COUNTERPARTIES
    if client == "treasury-vault":
        return {
            "max_tx_wei": _units(400_000),
            "daily_cap_wei": _units(3_000_000 if version == 0 else 4_500_000),
            "allowed_functions": ["", "transfer", "approve"],
        }
    if client == "family-office-vault":
        return {
            "max_tx_wei": _units(25_000 if version == 0 else 15_000),
            "daily_cap_wei": _units(100_000),
            "allowed_functions": ["", "transfer"],
        }
    if client == "trading-vault":
        return {
            "halt": False,
            "max_volatility_bps": 900 if version == 0 else 650,
            "min_price_usd": 2200,
            "max_transfers_per_hour": 45,
            "large_transfer_wei": _units(50_000),
            "max_large_transfers_per_hour": 9,
        }
    if client == "payments-vault":
        allow = sorted(c.address for c in cps if c.allowlisted_from is not None and c.allowlisted_from <= version)
        return {
            "deny_on_sanctioned": True,
            "blocklist": [counterparty("otc-desk-unlisted").address],
            "allowlist_only": True,
            "allowlist": allow,
            "blocked_flags": ["mixer", "darknet_market"],
            "max_risk_score": 70,
        }
    if client == "members-vault":
        return {
            "require_kyc": True,
            "blocked_countries": list(BLOCKED_COUNTRIES),
            "allowed_countries": [],
            "min_remaining_validity_s": 86_400,
        }
    raise KeyError(client)


def client_specs() -> list[ClientSpec]:
    """The policy clients (AgentVaults): five clients over four policies; spending_limits is used twice."""
    return [
        ClientSpec(name=c, policy=p, params=client_params(c, 0), expire_after=EXPIRE_AFTER[c])
        for c, p in CLIENT_POLICY.items()
    ]


@dataclass(frozen=True)
class ParamsChange:
    """A scheduled new PolicySet: at this fraction of the run the client's owner binds params version `version`."""

    at: float
    client: str
    version: int
    why: str


PARAMS_SCHEDULE: tuple[ParamsChange, ...] = (
    ParamsChange(0.30, "treasury-vault", 1, "treasury committee raised the daily cap for quarter-end rebalancing"),
    ParamsChange(0.45, "payments-vault", 1, "two vetted payees (a vendor and a contractor) joined the allowlist"),
    ParamsChange(0.65, "trading-vault", 1, "risk team tightened the volatility circuit breaker after a drawdown"),
    ParamsChange(0.80, "family-office-vault", 1, "family office lowered the per-transaction limit"),
)


@dataclass(frozen=True)
class Scenario:
    """Everything static about one run: operators and their profiles, the joiner, clients, personas, schedule."""

    seed: int
    operators: tuple[OperatorSpec, ...]
    profiles: tuple[LivenessProfile, ...]  # initial operators in order, then the joiner
    joiner: OperatorSpec
    personas: tuple[Persona, ...] = PERSONAS
    params_schedule: tuple[ParamsChange, ...] = PARAMS_SCHEDULE
    quorum_threshold_pct: int = QUORUM_THRESHOLD_PCT


def build(seed: int = 7, n_operators: int = 10) -> Scenario:
    """The scenario for a seed and operator count."""
    return Scenario(
        seed=seed,
        operators=tuple(operator_specs(n_operators, seed)),
        profiles=tuple(liveness_profiles(n_operators)),
        joiner=joiner_spec(n_operators, seed),
    )
