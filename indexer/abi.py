"""Event registry: every Newton event layout (current and historical), its canonical signature and topic0."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property

from eth_utils import keccak

# ---------------------------------------------------------------------------------------------
# Structs (EVENTS.md §2). A struct is a tuple of (field name, type); a type is an ABI elementary
# type, a struct name, or either followed by array suffixes ("[]", "[2]").
# ---------------------------------------------------------------------------------------------

STRUCTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Intent": (
        ("from", "address"),
        ("to", "address"),
        ("value", "uint256"),
        ("data", "bytes"),
        ("chainId", "uint256"),
        ("functionSignature", "bytes"),
    ),
    "PolicyConfig": (("policyParams", "bytes"), ("expireAfter", "uint32")),
    "PolicyState": (("policyAddress", "address"), ("policyId", "bytes32"), ("policyConfig", "PolicyConfig")),
    # PolicyData layouts: 2025-09 (data, attestation, addr, expire); 2025-12-15 + wasmArgs; 2026-04-27 drops attestation.
    "PolicyData": (
        ("wasmArgs", "bytes"),
        ("data", "bytes"),
        ("policyDataAddress", "address"),
        ("expireBlock", "uint32"),
    ),
    "PolicyDataV1": (
        ("data", "bytes"),
        ("attestation", "bytes"),
        ("policyDataAddress", "address"),
        ("expireBlock", "uint32"),
    ),
    "PolicyDataV2": (
        ("wasmArgs", "bytes"),
        ("data", "bytes"),
        ("attestation", "bytes"),
        ("policyDataAddress", "address"),
        ("expireBlock", "uint32"),
    ),
    "PolicyTaskData": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("policy", "bytes"),
        ("policyData", "PolicyData[]"),
    ),
    "PolicyTaskDataV1": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("policy", "bytes"),
        ("policyData", "PolicyDataV1[]"),
    ),
    "PolicyTaskDataV2": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("policy", "bytes"),
        ("policyData", "PolicyDataV2[]"),
    ),
    "Task": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("taskCreatedBlock", "uint32"),
        ("quorumThresholdPercentage", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("wasmArgs", "bytes"),
        ("quorumNumbers", "bytes"),
        ("initializationTimestamp", "uint256"),
    ),
    # 2025-09-19 Task (the field names of the three uint32 of later layouts are inferred from this one [U]).
    "TaskV1": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("nonce", "uint32"),
        ("intent", "Intent"),
        ("policyTaskData", "PolicyTaskDataV1"),
        ("policyConfig", "PolicyConfig"),
        ("taskCreatedBlock", "uint32"),
        ("quorumNumbers", "bytes"),
        ("quorumThresholdPercentage", "uint32"),
    ),
    "TaskV2": (
        ("taskId", "bytes32"),
        ("policyId", "bytes32"),
        ("policyClient", "address"),
        ("nonce", "uint32"),
        ("taskCreatedBlock", "uint32"),
        ("quorumThresholdPercentage", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("policyTaskData", "PolicyTaskDataV1"),
        ("policyConfig", "PolicyConfig"),
        ("quorumNumbers", "bytes"),
    ),
    "TaskV3": (
        ("taskId", "bytes32"),
        ("policyId", "bytes32"),
        ("policyClient", "address"),
        ("nonce", "uint32"),
        ("taskCreatedBlock", "uint32"),
        ("quorumThresholdPercentage", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("policyTaskData", "PolicyTaskDataV2"),
        ("policyConfig", "PolicyConfig"),
        ("quorumNumbers", "bytes"),
    ),
    "TaskV4": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("nonce", "uint32"),
        ("taskCreatedBlock", "uint32"),
        ("quorumThresholdPercentage", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("wasmArgs", "bytes"),
        ("quorumNumbers", "bytes"),
    ),
    "TaskV5": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("taskCreatedBlock", "uint32"),
        ("quorumThresholdPercentage", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("wasmArgs", "bytes"),
        ("quorumNumbers", "bytes"),
    ),
    "TaskResponse": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("evaluationResult", "bytes"),
        ("policyTaskData", "PolicyTaskData"),
        ("policyConfig", "PolicyConfig"),
        ("initializationTimestamp", "uint256"),
    ),
    "TaskResponseV1": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("intent", "Intent"),
        ("evaluationResult", "bytes"),
    ),
    "TaskResponseV2": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("evaluationResult", "bytes"),
    ),
    "TaskResponseV3": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("evaluationResult", "bytes"),
        ("policyTaskData", "PolicyTaskDataV2"),
        ("policyConfig", "PolicyConfig"),
    ),
    "TaskResponseV4": (
        ("taskId", "bytes32"),
        ("policyClient", "address"),
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
        ("evaluationResult", "bytes"),
        ("policyTaskData", "PolicyTaskDataV2"),
        ("policyConfig", "PolicyConfig"),
        ("initializationTimestamp", "uint256"),
    ),
    "ResponseCertificate": (
        ("referenceBlock", "uint32"),
        ("responseExpireBlock", "uint32"),
        ("hashOfNonSigners", "bytes32"),
        ("signatureData", "bytes"),
    ),
    # 2025-09-19: (uint32, bytes32, NSS, uint32) — names inferred [U].
    "ResponseCertificateV1": (
        ("referenceBlock", "uint32"),
        ("hashOfNonSigners", "bytes32"),
        ("nonSignerStakesAndSignature", "NonSignerStakesAndSignature"),
        ("responseExpireBlock", "uint32"),
    ),
    "ResponseCertificateV2": (
        ("referenceBlock", "uint32"),
        ("responseExpireBlock", "uint32"),
        ("hashOfNonSigners", "bytes32"),
        ("nonSignerStakesAndSignature", "NonSignerStakesAndSignature"),
    ),
    "Attestation": (
        ("taskId", "bytes32"),
        ("policyId", "bytes32"),
        ("policyClient", "address"),
        ("expiration", "uint32"),
        ("intent", "Intent"),
        ("intentSignature", "bytes"),
    ),
    "AttestationV1": (
        ("taskId", "bytes32"),
        ("policyId", "bytes32"),
        ("policyClient", "address"),
        ("intent", "Intent"),
        ("expiration", "uint32"),
    ),
    "SetPolicyInfo": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("owner", "address"),
        ("policyCid", "string"),
        ("schemaCid", "string"),
        ("entrypoint", "string"),
        ("policyConfig", "PolicyConfig"),
        ("policyData", "address[]"),
        ("policyCodeHash", "bytes32"),
        ("version", "string"),
    ),
    "SetPolicyInfoV1": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("owner", "address"),
        ("policyCid", "string"),
        ("schemaCid", "string"),
        ("entrypoint", "string"),
        ("policyConfig", "PolicyConfig"),
        ("policyData", "address[]"),
    ),
    "SetPolicyInfoV2": (
        ("policyId", "bytes32"),
        ("policyAddress", "address"),
        ("owner", "address"),
        ("policyCid", "string"),
        ("schemaCid", "string"),
        ("entrypoint", "string"),
        ("policyConfig", "PolicyConfig"),
        ("policyData", "address[]"),
        ("policyCodeHash", "bytes32"),
    ),
    "PolicyInfo": (
        ("policyAddress", "address"),
        ("owner", "address"),
        ("metadataCid", "string"),
        ("policyCid", "string"),
        ("schemaCid", "string"),
        ("entrypoint", "string"),
        ("policyData", "address[]"),
        ("policyCodeHash", "bytes32"),
    ),
    "PolicyInfoV1": (
        ("policyAddress", "address"),
        ("owner", "address"),
        ("metadataCid", "string"),
        ("policyCid", "string"),
        ("schemaCid", "string"),
        ("entrypoint", "string"),
        ("policyData", "address[]"),
    ),
    "PolicyDataInfo": (
        ("policyDataAddress", "address"),
        ("owner", "address"),
        ("metadataCid", "string"),
        ("wasmCid", "string"),
        ("secretsSchemaCid", "string"),
        ("expireAfter", "uint32"),
    ),
    "G1Point": (("X", "uint256"), ("Y", "uint256")),
    "G2Point": (("X", "uint256[2]"), ("Y", "uint256[2]")),
    "NonSignerStakesAndSignature": (
        ("nonSignerQuorumBitmapIndices", "uint32[]"),
        ("nonSignerPubkeys", "G1Point[]"),
        ("quorumApks", "G1Point[]"),
        ("apkG2", "G2Point"),
        ("sigma", "G1Point"),
        ("quorumApkIndices", "uint32[]"),
        ("totalStakeIndices", "uint32[]"),
        ("nonSignerStakeIndices", "uint32[][]"),
    ),
    "BN254OperatorInfo": (("pubkey", "G1Point"), ("weights", "uint256[]")),
    "BN254OperatorInfoWitness": (
        ("operatorIndex", "uint32"),
        ("operatorInfoProof", "bytes"),
        ("operatorInfo", "BN254OperatorInfo"),
    ),
    "BN254Certificate": (
        ("referenceTimestamp", "uint32"),
        ("messageHash", "bytes32"),
        ("signature", "G1Point"),
        ("apk", "G2Point"),
        ("nonSignerWitnesses", "BN254OperatorInfoWitness[]"),
    ),
    "OperatorSet": (("avs", "address"), ("id", "uint32")),
    "OperatorSetParam": (
        ("maxOperatorCount", "uint32"),
        ("kickBIPsOfOperatorStake", "uint16"),
        ("kickBIPsOfTotalStake", "uint16"),
    ),
}

_ARRAY = re.compile(r"^(.*?)((?:\[\d*\])+)$")


@cache
def canonical(type_: str) -> str:
    """Canonical ABI type of a (struct or elementary) type name, e.g. 'PolicyConfig[]' → '(bytes,uint32)[]'."""
    m = _ARRAY.match(type_)
    base, suffix = (m.group(1), m.group(2)) if m else (type_, "")
    if base in STRUCTS:
        return "(" + ",".join(canonical(t) for _, t in STRUCTS[base]) + ")" + suffix
    return base + suffix


def split_array(type_: str) -> tuple[str, str]:
    """(element type, outermost array suffix) of an array type; ('', '') for a non-array."""
    m = re.match(r"^(.*)(\[\d*\])$", type_)
    return (m.group(1), m.group(2)) if m else ("", "")


def snake(name: str) -> str:
    """camelCase / PascalCase → snake_case (quorumApks → quorum_apks, pubkeyG1 → pubkey_g1, X → x)."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


@dataclass(frozen=True)
class Param:
    """One event parameter: name, (struct or ABI) type, indexed flag."""

    name: str
    type: str
    indexed: bool = False


@dataclass(frozen=True)
class EventLayout:
    """One layout of one event: its name, a layout tag, parameters and (documented) topic0."""

    event: str
    layout: str
    params: tuple[Param, ...]
    documented_topic0: str  # full hex, or "0xabcd…wxyz" abbreviation as in EVENTS.md
    open: bool = False  # emitted by an unbounded set of addresses: query by topic0 across all addresses

    @cached_property
    def signature(self) -> str:
        """Canonical signature, e.g. 'PolicyConfig' expanded to '(bytes,uint32)'."""
        return f"{self.event}(" + ",".join(canonical(p.type) for p in self.params) + ")"

    @cached_property
    def topic0(self) -> str:
        """keccak256 of the canonical signature, 0x-prefixed lower-case hex."""
        return "0x" + keccak(text=self.signature).hex()

    @cached_property
    def table(self) -> str:
        """DuckDB raw table of this event: ev_<snake_case_event>."""
        return "ev_" + snake(self.event)

    @property
    def indexed(self) -> tuple[Param, ...]:
        """Parameters carried in topics 1..3."""
        return tuple(p for p in self.params if p.indexed)

    @property
    def data_params(self) -> tuple[Param, ...]:
        """Parameters ABI-encoded in the log data."""
        return tuple(p for p in self.params if not p.indexed)


def _ev(event: str, layout: str, topic0: str, *params: tuple, open: bool = False) -> EventLayout:
    return EventLayout(event, layout, tuple(Param(*p) for p in params), topic0, open)


CUR = "current"
I = True  # readability: ("taskId", "bytes32", I) = indexed

# Order matters only for column order: the current layout comes first so its columns lead each table.
LAYOUTS: tuple[EventLayout, ...] = (
    # --- §1.1 task lifecycle (TaskManager / AttestationValidator) ---
    _ev(
        "NewTaskCreated",
        CUR,
        "0x59945c4b280f2ccf9bcfa9a217b0629fd61f8d39864f1bb198590f88da7138bc",
        ("taskId", "bytes32", I),
        ("task", "Task"),
        ("state", "PolicyState"),
    ),
    _ev(
        "NewTaskCreated",
        "2026-02-11",
        "0x0742ec8d296e286b00b6070ef5874bcb7801cd5af4fd56df11b159d00c50a49b",
        ("taskId", "bytes32", I),
        ("task", "TaskV5"),
        ("state", "PolicyState"),
    ),
    _ev(
        "NewTaskCreated",
        "2026-01-28b",
        "0xda18da9b2c6559f385505109632d5d49e9728f16765efdb6a62dd64748ceb2f6",
        ("taskId", "bytes32", I),
        ("task", "TaskV5"),
    ),
    _ev(
        "NewTaskCreated",
        "2026-01-28a",
        "0x83ff58bd0386b67d300729aa234c8a1abc0899501fec5f277e513a8df99bf6b6",
        ("taskId", "bytes32", I),
        ("task", "TaskV4"),
    ),
    _ev(
        "NewTaskCreated",
        "2025-12-15",
        "0xe7ded92f83d29337451f476bc5be9dd0c5fd8fa8029fa0317fc3796b44eca0be",
        ("taskId", "bytes32", I),
        ("task", "TaskV3"),
    ),
    _ev(
        "NewTaskCreated",
        "2025-12-01",
        "0x2e477dac832c6b4371a5752f18b8ed214959f4bdfd2a3572cb7053f0f5ea705c",
        ("taskId", "bytes32", I),
        ("task", "TaskV2"),
    ),
    _ev(
        "NewTaskCreated",
        "2025-09-19",
        "0x1ef7cd6ba5e4d9399ef779a98cbd9acc0ddf25619dfc420c81ee5098734f5515",
        ("taskId", "bytes32", I),
        ("task", "TaskV1"),
    ),
    _ev(
        "TaskResponded",
        CUR,
        "0x9158a80c164dc98ea6cfbef773b37f3f91813ba3f898729b952b3a1303f757b2",
        ("taskResponse", "TaskResponse"),
        ("responseCertificate", "ResponseCertificate"),
    ),
    _ev(
        "TaskResponded",
        "2026-03-09",
        "0x9bd4f3f7c2a58b2f123fe85c617ab5861c23ae6e805c07b8d0d0d5dacde0e0a7",
        ("taskResponse", "TaskResponseV4"),
        ("responseCertificate", "ResponseCertificate"),
    ),
    _ev(
        "TaskResponded",
        "2026-01-28",
        "0xf0b796f5808d2379648bdf27885fc6d0f1c067fe7657719527f494e372ca21ca",
        ("taskResponse", "TaskResponseV3"),
        ("responseCertificate", "ResponseCertificate"),
    ),
    _ev(
        "TaskResponded",
        "2026-01-09",
        "0x8a991a614613a35ac96591dd411beaceb8483d310728503445b8eca834d14dfc",
        ("taskResponse", "TaskResponseV2"),
        ("responseCertificate", "ResponseCertificate"),
    ),
    _ev(
        "TaskResponded",
        "2025-12-01",
        "0x25ee291e052a88cd87f3e54f8b749d4f1917a21575f471bbc5a714e72fc662c2",
        ("taskResponse", "TaskResponseV2"),
        ("responseCertificate", "ResponseCertificateV2"),
    ),
    _ev(
        "TaskResponded",
        "2025-09-19",
        "0x1df4a09d4442168132f2006b673527c3bc93d2a97bf263c280d4284ca401e45e",
        ("taskResponse", "TaskResponseV1"),
        ("responseCertificate", "ResponseCertificateV1"),
    ),
    _ev(
        "PolicyDenied",
        CUR,
        "0xef8ce97d2fa69839d5bfbc66f9e14b1a4ee8ae0dd640f5237360ccb638f499af",
        ("policyClient", "address", I),
        ("taskId", "bytes32", I),
        ("policyId", "bytes32"),
        ("intentHash", "bytes32"),
        ("referenceBlock", "uint32"),
    ),
    _ev(
        "AttestationSpent",
        CUR,
        "0xcecc683f5a5724e2e1c85bf11748af2141e0e320c7802a6d0c9ad6efdf5ddcbb",
        ("taskId", "bytes32", I),
        ("attestation", "Attestation"),
    ),
    _ev(
        "AttestationSpent",
        "2025-09-19",
        "0xfe433b14369525454e553cb8f8e6ab0ead42088a505e644bb0f088a2fa69ed7c",
        ("taskId", "bytes32", I),
        ("attestation", "AttestationV1"),
    ),
    _ev(
        "DirectTaskResponded",
        CUR,
        "0xd9cd8d028181f540e5469a8e012ae9353c070de97489cb9dc98e6d533bd12943",
        ("taskId", "bytes32", I),
        ("task", "Task"),
        ("taskResponse", "TaskResponse"),
    ),
    _ev(
        "DirectTaskResponded",
        "2026-03-09",
        "0x110f41e22f0a474caec6116a19e8074a991c5df3a15a6c87f412cbcbd39c4cb7",
        ("taskId", "bytes32", I),
        ("task", "Task"),
        ("taskResponse", "TaskResponseV4"),
    ),
    _ev(
        "DirectTaskResponded",
        "2026-02-11",
        "0x917b08a2756ee4b7f5f72177a86bba211c676be879033e879b35ee14d7a02985",
        ("taskId", "bytes32", I),
        ("task", "TaskV5"),
        ("taskResponse", "TaskResponseV3"),
    ),
    _ev(
        "TaskChallengedSuccessfully",
        CUR,
        "0x76f638bf7002c52c8f60b4e096043f7dcfb61a9af2d5badd1923395836669261",
        ("taskId", "bytes32", I),
        ("challenger", "address", I),
    ),
    _ev(
        "TaskChallengedUnsuccessfully",
        CUR,
        "0x126b016e720d5c6ef27165dc8b00ae0d8ad0bf5500d8c240c1d920a92e5499e8",
        ("taskId", "bytes32", I),
        ("challenger", "address", I),
    ),
    _ev(
        "TaskResponseHandlerUpdated",
        CUR,
        "0x7b1540eced21eb0481b43b5504347ee255f758a7095de64730ca76c991de8864",
        ("newHandler", "address", I),
    ),
    _ev(
        "AggregatorUpdated",
        CUR,
        "0x89baabef7dfd0683c0ac16fd2a8431c51b49fbe654c3f7b5ef19763e2ccd88f2",
        ("previousAggregator", "address", I),
        ("newAggregator", "address", I),
    ),
    _ev(
        "Paused",
        CUR,
        "0xab40a374bc51de372200a8bc981af8c9ecdc08dfdaef0bb6e09f88f3c616ef3d",
        ("account", "address"),
        ("newPausedStatus", "uint256"),
    ),
    _ev(
        "Unpaused",
        CUR,
        "0x3582d1828e26bf56bd801502bc021ac0bc8afb57c826e4986b45593c8fad389c",
        ("account", "address"),
        ("newPausedStatus", "uint256"),
    ),
    _ev("Initialized", CUR, "0x7f26b83f…2498", ("version", "uint8")),
    _ev("OwnershipTransferred", CUR, "0x8be0079c…57e0", ("previousOwner", "address", I), ("newOwner", "address", I)),
    _ev("Upgraded", CUR, "0xbc7cd75a…2d3b", ("implementation", "address", I)),
    # OpenZeppelin's other proxy and access-control events (IERC1967, Initializable v5, AccessControl): the
    # governance history of every watched proxy. Not in EVENTS.md: signatures from OpenZeppelin's own sources.
    _ev("Initialized", "oz5", "", ("versionU64", "uint64")),  # own column: uint64 is stored as text
    _ev("AdminChanged", CUR, "", ("previousAdmin", "address"), ("newAdmin", "address")),
    _ev("BeaconUpgraded", CUR, "", ("beacon", "address", I)),
    _ev("RoleGranted", CUR, "", ("role", "bytes32", I), ("account", "address", I), ("sender", "address", I)),
    _ev("RoleRevoked", CUR, "", ("role", "bytes32", I), ("account", "address", I), ("sender", "address", I)),
    _ev(
        "RoleAdminChanged",
        CUR,
        "",
        ("role", "bytes32", I),
        ("previousAdminRole", "bytes32", I),
        ("newAdminRole", "bytes32", I),
    ),
    # --- §1.1 (8) ChallengeVerifier ---
    _ev(
        "CrossChainChallengeRelayed",
        CUR,
        "0xff80d0b11dc11d902931f1932085c356f3d79373503cdf8fd6210fb639573571",
        ("destChainId", "uint256", I),
        ("taskId", "bytes32", I),
        ("challenger", "address"),
    ),
    _ev(
        "TeeAttestationChallenged",
        CUR,
        "0x1f38f66ad1fe6f9dc38c94c851f345381b00c2b08533c6484ab3ed24520daa1a",
        ("taskId", "bytes32", I),
        ("challenger", "address"),
    ),
    _ev(
        "ChallengeEnabled",
        CUR,
        "0x4aa27a6f8d3f8e32e3576e4135e7df2fda32198bdcc2497ec47e4087c8a88bb3",
        ("isChallengeEnabled", "bool", I),
    ),
    _ev(
        "DestinationChainRegistered",
        CUR,
        "0x7f3562ba24497d176758ca11dd4c93bdf1d77e0604ebbd7fb7c21525650fed82",
        ("chainId", "uint256", I),
        ("registered", "bool", I),
    ),
    _ev(
        "CrossChainQuorumThresholdUpdated",
        CUR,
        "0x99901a7d1531ea235a7b2ed24f950698003fa5ffbb19b89bb65ba3f70f00cb07",
        ("threshold", "uint256", I),
    ),
    _ev("IdentityRegistrySet", CUR, "0x8aa6172b…e388", ("registry", "address", I)),
    _ev("ConfidentialDataRegistrySet", CUR, "0xcc616f42…9dd2", ("registry", "address", I)),
    _ev("AttestationProofVerifierSet", CUR, "0x5989f5b8…a9e2", ("verifier", "address", I)),
    # --- §1.2 policy / client lifecycle (open: any address) ---
    _ev(
        "PolicyDeployed",
        CUR,
        "0x7f3345629b7fae59c2c3d2dc57b391f686b4961f8c2b67f656a8f28bda3f719e",
        ("policy", "address"),
        ("policyInfo", "PolicyInfo"),
        ("implementationVersion", "string"),
        open=True,
    ),
    _ev(
        "PolicyDeployed",
        "2026-01-09",
        "0xb08d606d15212fdb35cf16d00c45d46452ed42a5629cf66fd22286fd86267d72",
        ("policy", "address"),
        ("policyInfo", "PolicyInfoV1"),
        ("implementationVersion", "string"),
        open=True,
    ),
    _ev(
        "PolicyDeployed",
        "2025-09",
        "0xf73931a1cdd88cc8563b9835cc0e7ff80059f2103e7954f23c603ad475da2fe8",
        ("policy", "address"),
        ("policyInfo", "PolicyInfoV1"),
        open=True,
    ),
    _ev(
        "PolicyDataDeployed",
        CUR,
        "0xab56093139858452f739c2c8ca938e819afb11f11651190987b45252acd6edbb",
        ("policyData", "address"),
        ("policyDataInfo", "PolicyDataInfo"),
        ("implementationVersion", "string"),
        open=True,
    ),
    _ev(
        "PolicyDataDeployed",
        "2025-09",
        "0xd2c66945868666c1da28695b6d32b573d4aa24eabc1476504dd87c50ac8ba137",
        ("policyData", "address"),
        ("policyDataInfo", "PolicyDataInfo"),
        open=True,
    ),
    _ev(
        "ImplementationUpdated",
        CUR,
        "0xaa3f731066a578e5f39b4215468d826cdd15373cbc0dfc9cb9bdc649718ef7da",
        ("oldImplementation", "address", I),
        ("newImplementation", "address", I),
    ),
    _ev(
        "PolicySet",
        CUR,
        "0x4a290fa7d502cf69f303e332435bc6843a71d8ea21e49383441ee44c6904f0a9",
        ("client", "address", I),
        ("policyId", "bytes32", I),
        ("policy", "SetPolicyInfo"),
        open=True,
    ),
    _ev(
        "PolicySet",
        "2026-04-16",
        "0x368220dda17d3f0a1e4019a6a11e46430aa93c5e482ef31c908120de859bc887",
        ("client", "address", I),
        ("policyId", "bytes32", I),
        ("policy", "SetPolicyInfoV2"),
        open=True,
    ),
    _ev(
        "PolicySet",
        "2025-09-19",
        "0x233e6cec727e3c6a5a94a6e08763e2c8945f2ced71cbe148a575daf41052bd3d",
        ("client", "address", I),
        ("policyId", "bytes32", I),
        ("policy", "SetPolicyInfoV1"),
        open=True,
    ),
    _ev(
        "policyMetadataCidUpdated",
        CUR,
        "0x8d27cb1d2bb20a12f312bfde849b21be0d71b82084e15bb1ee25b6456d1de541",
        ("metadataCid", "string"),
        open=True,
    ),
    _ev("PolicyDataMetadataCidUpdated", CUR, "0x618b4841…a4d9", ("metadataCid", "string")),
    _ev("SecretsSchemaCidUpdated", CUR, "0x2c25a6be…9174", ("secretsSchemaCid", "string")),
    _ev(
        "PolicyAddressUpdated",
        CUR,
        "0x26b393dbdada2251b8af01251eeab5d6416823b4eca2b5b908724000ed612c6a",
        ("previousPolicy", "address", I),
        ("newPolicy", "address", I),
        open=True,
    ),
    _ev(
        "PolicyIdUpdated",
        CUR,
        "0x04e1e70c711021a1320ab81b3547a46dc547ecae1cd8be314b6c43f3598b1ab2",
        ("policy", "address", I),
        ("policyId", "bytes32", I),
        open=True,
    ),
    _ev(
        "ClientRegistered",
        CUR,
        "0x1cb6babe15e39990d7df77d85fa1d670b3d5771486ed1ed683553b98c339ed17",
        ("client", "address", I),
        ("owner", "address", I),
    ),
    _ev("ClientDeactivated", CUR, "0xa0c67ad1…4d23", ("client", "address", I), ("owner", "address", I)),
    _ev("ClientActivated", CUR, "0x85ed36a3…2c35", ("client", "address", I), ("owner", "address", I)),
    _ev(
        "ClientOwnerChanged",
        CUR,
        "0xbdba044ea2ed044730d11f4d8e56e8f8fa368da0deab3552f4f0f21c635af0ab",
        ("client", "address", I),
        ("oldOwner", "address", I),
        ("newOwner", "address", I),
    ),
    # --- §1.4 operators / AVS registry ---
    _ev(
        "OperatorRegistered",
        CUR,
        "0xe8e68cef1c3a761ed7be7e8463a375f27f7bc335e51824223cacce636ec5c3fe",
        ("operator", "address", I),
        ("operatorId", "bytes32", I),
    ),
    _ev(
        "OperatorDeregistered",
        CUR,
        "0x396fdcb180cb0fea26928113fb0fd1c3549863f9cd563e6a184f1d578116c8e4",
        ("operator", "address", I),
        ("operatorId", "bytes32", I),
    ),
    _ev(
        "OperatorSocketUpdate",
        CUR,
        "0xec2963ab21c1e50e1e582aa542af2e4bf7bf38e6e1403c27b42e1c5d6e621eaa",
        ("operatorId", "bytes32", I),
        ("socket", "string"),
    ),
    _ev(
        "OperatorSetParamsUpdated",
        CUR,
        "0x3ee6fe8d54610244c3e9d3c066ae4aee997884aa28f10616ae821925401318ac",
        ("quorumNumber", "uint8", I),
        ("operatorSetParams", "OperatorSetParam"),
    ),
    _ev(
        "QuorumBlockNumberUpdated",
        CUR,
        "0x46077d55330763f16269fd75e5761663f4192d2791747c0189b16ad31db07db4",
        ("quorumNumber", "uint8", I),
        ("blocknumber", "uint256"),
    ),
    _ev(
        "EjectorUpdated",
        CUR,
        "0x8f30ab09f43a6c157d7fce7e0a13c003042c1c95e8a72e7a146a21c0caa24dc9",
        ("prevEjector", "address"),
        ("newEjector", "address"),
    ),
    _ev(
        "OperatorWhitelisted",
        CUR,
        "0x67a9140af3a1924dd071fca7a7245c954e029768ad9a3a500e3db4886105f0ed",
        ("operator", "address", I),
        ("isWhitelisted", "bool", I),
    ),
    _ev(
        "TaskGeneratorAdded",
        CUR,
        "0xb040ecbf2d5effe525dd95133ffbadf2287e6840af0775d0cc73de62d5d2fd54",
        ("generator", "address", I),
    ),
    _ev(
        "TaskGeneratorRemoved",
        CUR,
        "0x42e76c61e8ae70c850df4eb8d1fb42ea5188791254c5c5682a6d61f32f285bc3",
        ("generator", "address", I),
    ),
    _ev(
        "EpochGovernanceSet",
        CUR,
        "0xdb11fdba1980764f129bae7b270b4efa9d18bff5f1c87fb5460aabebd2b11022",
        ("governance", "address", I),
    ),
    _ev(
        "EpochAdvanced",
        CUR,
        "0xd8505d6ad573405a9e60b93e2c3280a1e8e1fea07b440582e64579749fb10a18",
        ("epoch", "uint32", I),
        ("startBlock", "uint64"),
        ("durationBlocks", "uint32"),
    ),
    _ev(
        "WhitelistAdditionQueued",
        CUR,
        "0x23f23de81c9404c82732f8433dc24d3b2a489488470a7d778d5a305b13d9eba7",
        ("operator", "address", I),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "WhitelistRemovalQueued",
        CUR,
        "0x9ac0cd4e42dd0b96a75d8c763ce5c6ed0de48f6ef31c46a1b646a0aef98c541c",
        ("operator", "address", I),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "TaskGeneratorAdditionQueued",
        CUR,
        "0xe48e0f10e922a47df5bd4ad2985b9b951ef2f934170f715473429798ae922c4d",
        ("generator", "address", I),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "TaskGeneratorRemovalQueued",
        CUR,
        "0x255d129d63a0f670c067625b30546eb17cba434a0e4cd6b5c609ae25ee461a8c",
        ("generator", "address", I),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "OperatorDeregistrationQueued",
        CUR,
        "0xcb2e59a6438ab0e2315b8ae4fd28208a721e8fbfcdcf42259941c9754d408eee",
        ("operator", "address", I),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "EpochDurationBlocksQueued",
        CUR,
        "0xd13bcf6d53a6f8bca26cb53fd820917bba66f46f4847917f501a29d7dd6bae60",
        ("newDuration", "uint32"),
        ("effectiveEpoch", "uint32", I),
    ),
    _ev(
        "NewPubkeyRegistration",
        CUR,
        "0xe3fb6613af2e8930cf85d47fcf6db10192224a64c6cbe8023e0eee1ba3828041",
        ("operator", "address", I),
        ("pubkeyG1", "G1Point"),
        ("pubkeyG2", "G2Point"),
    ),
    _ev(
        "OperatorAddedToQuorums",
        CUR,
        "0x73a2b7fb844724b971802ae9b15db094d4b7192df9d7350e14eb466b9b22eb4e",
        ("operator", "address"),
        ("operatorId", "bytes32"),
        ("quorumNumbers", "bytes"),
    ),
    _ev(
        "OperatorRemovedFromQuorums",
        CUR,
        "0xf843ecd53a563675e62107be1494fdde4a3d49aeedaf8d88c616d85346e3500e",
        ("operator", "address"),
        ("operatorId", "bytes32"),
        ("quorumNumbers", "bytes"),
    ),
    _ev(
        "OperatorStakeUpdate",
        CUR,
        "0x2f527d527e95d8fe40aec55377743bb779087da3f6d0d08f12e36444da62327d",
        ("operatorId", "bytes32", I),
        ("quorumNumber", "uint8"),
        ("stake", "uint96"),
    ),
    _ev(
        "QuorumIndexUpdate",
        CUR,
        "0x6ee1e4f4075f3d067176140d34e87874244dd273294c05b2218133e49a2ba6f6",
        ("operatorId", "bytes32", I),
        ("quorumNumber", "uint8"),
        ("newOperatorIndex", "uint32"),
    ),
    _ev(
        "OperatorSlashed",
        "instant_slasher",
        "0x8a83cf9afb09a981314f4fb353b95b003451da170a99f48d8db6474b06d79f3b",
        ("slashingRequestId", "uint256", I),
        ("operator", "address", I),
        ("operatorSetId", "uint32", I),
        ("wadsToSlash", "uint256[]"),
        ("description", "string"),
    ),
    _ev(
        "OperatorSlashed",
        "allocation_manager",
        "0x80969ad29428d6797ee7aad084f9e4a42a82fc506dcd2ca3b6fb431f85ccebe5",
        ("operator", "address"),
        ("operatorSet", "OperatorSet"),
        ("strategies", "address[]"),
        ("wadSlashed", "uint256[]"),
        ("description", "string"),
    ),
    _ev(
        "OperatorAddedToOperatorSet",
        CUR,
        "0x43232edf9071753d2321e5fa7e018363ee248e5f2142e6c08edd3265bfb4895e",
        ("operator", "address", I),
        ("operatorSet", "OperatorSet"),
    ),
    _ev(
        "OperatorRemovedFromOperatorSet",
        CUR,
        "0xad34c3070be1dffbcaa499d000ba2b8d9848aefcac3059df245dd95c4ece14fe",
        ("operator", "address", I),
        ("operatorSet", "OperatorSet"),
    ),
    _ev(
        "AVSMetadataURIUpdated",
        CUR,
        "0xa89c1dc243d8908a96dd84944bcc97d6bc6ac00dd78e20621576be6a3c943713",
        ("avs", "address", I),
        ("metadataURI", "string"),
    ),
    _ev(
        "OperatorMetadataURIUpdated",
        CUR,
        "0x02a919ed0e2acad1dd90f17ef2fa4ae5462ee1339170034a8531cca4b6708090",
        ("operator", "address", I),
        ("metadataURI", "string"),
    ),
    _ev(
        "OperatorAVSRegistrationStatusUpdated",
        CUR,
        "0xf0952b1c65271d819d39983d2abb044b9cace59bcc4d4dd389f586ebdcb15b41",
        ("operator", "address", I),
        ("avs", "address", I),
        ("status", "uint8"),
    ),
    # --- devnet policy client (contracts/AgentVault.sol) ---
    _ev(
        "IntentExecuted",
        CUR,
        "",
        ("taskId", "bytes32", I),
        ("from", "address", I),
        ("to", "address"),
        ("value", "uint256"),
    ),
    _ev("IntentDenied", CUR, "", ("taskId", "bytes32", I), ("from", "address", I)),
)


def topic_matches(documented: str, computed: str) -> bool:
    """True if a documented topic0 (full or 'prefix…suffix' abbreviation) matches the computed one."""
    if not documented:
        return True  # devnet-only events: no documented value to check against
    if "…" in documented:
        head, tail = documented.split("…")
        return computed.startswith(head) and computed.endswith(tail)
    return documented == computed


def _check() -> None:
    """Fail at import if any computed topic0 differs from EVENTS.md — a wrong layout must never decode silently."""
    seen: dict[str, EventLayout] = {}
    for lay in LAYOUTS:
        t0 = lay.topic0
        if not topic_matches(lay.documented_topic0, t0):
            raise AssertionError(f"{lay.event}/{lay.layout}: computed {t0} != documented {lay.documented_topic0}")
        if t0 in seen:
            raise AssertionError(f"duplicate topic0 {t0}: {seen[t0].event} and {lay.event}")
        seen[t0] = lay


_check()

BY_TOPIC0: dict[str, EventLayout] = {lay.topic0: lay for lay in LAYOUTS}
OPEN_TOPICS: tuple[str, ...] = tuple(lay.topic0 for lay in LAYOUTS if lay.open)
BOUND_TOPICS: tuple[str, ...] = tuple(lay.topic0 for lay in LAYOUTS if not lay.open)
EVENT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(lay.event for lay in LAYOUTS))


def layouts_of(event: str) -> tuple[EventLayout, ...]:
    """All layouts of one event name, current first."""
    return tuple(lay for lay in LAYOUTS if lay.event == event)


def topic0_of(event: str, layout: str = CUR) -> str:
    """topic0 of an event layout (the current one by default)."""
    for lay in LAYOUTS:
        if lay.event == event and lay.layout == layout:
            return lay.topic0
    raise KeyError(f"{event}/{layout}")


# Function selectors of EVENTS.md §6, computed and asserted like the topics.
SELECTORS = {
    "createNewTask": ("createNewTask(Task)", "0x62b2a164"),
    "respondToTask": ("respondToTask(Task,TaskResponse,bytes,bytes)", "0xdd4b0f07"),
    "validateAttestation": ("validateAttestation(Attestation)", "0x22519610"),
    "validateAttestationDirect": ("validateAttestationDirect(Task,TaskResponse,bytes)", "0xfcb11dd5"),
}


def function_selector(signature: str) -> str:
    """4-byte selector of a function signature whose argument types may be struct names."""
    name, args = signature.split("(", 1)
    args = args[:-1]
    parts = [canonical(a) for a in split_top(args)] if args else []
    return "0x" + keccak(text=f"{name}(" + ",".join(parts) + ")")[:4].hex()


def split_top(s: str) -> list[str]:
    """Split a comma-separated type list at depth 0."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    out.append(cur)
    return [x.strip() for x in out]


for _name, (_sig, _sel) in SELECTORS.items():
    if function_selector(_sig) != _sel:
        raise AssertionError(f"selector of {_sig}: {function_selector(_sig)} != documented {_sel}")
