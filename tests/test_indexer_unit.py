"""Indexer pure parts: event registry, ABI decoder (vs eth-abi), allow rule, status rule, range sizing, calldata, metadata."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import LensError
from indexer import abi, codec, decode, deployment, extract, metadata

pytestmark = pytest.mark.xdist_group("indexer_unit")


# ---------------------------------------------------------------------------------------------
# value strategies from ABI types (eth-abi input form)
# ---------------------------------------------------------------------------------------------


def strategy(type_: str, depth: int = 0):
    """Hypothesis strategy producing eth-abi encodable values of a (struct or ABI) type."""
    elem, suffix = abi.split_array(type_)
    if suffix:
        inner = strategy(elem, depth + 1)
        if suffix == "[]":
            return st.lists(inner, max_size=3 if depth < 2 else 1)
        k = int(suffix[1:-1])
        return st.lists(inner, min_size=k, max_size=k)
    if type_ in abi.STRUCTS:
        return st.tuples(*[strategy(t, depth + 1) for _, t in abi.STRUCTS[type_]])
    if type_ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_ == "bool":
        return st.booleans()
    if type_ == "string":
        return st.text(max_size=40)
    if type_ == "bytes":
        return st.binary(max_size=80)
    if type_.startswith("bytes"):
        n = int(type_[5:])
        return st.binary(min_size=n, max_size=n)
    bits = int(type_.lstrip("uint") or 256)
    return st.integers(min_value=0, max_value=2**bits - 1)


def normalize(type_: str, v):
    """eth-abi input value → the representation our decoder returns (hex for bytesN, lower-case addresses)."""
    elem, suffix = abi.split_array(type_)
    if suffix:
        return [normalize(elem, x) for x in v]
    if type_ in abi.STRUCTS:
        return tuple(normalize(t, x) for (_, t), x in zip(abi.STRUCTS[type_], v))
    if type_ == "address":
        return v.lower()
    if type_.startswith("bytes") and type_ != "bytes":
        return "0x" + v.hex()
    return v


def reference_columns(prefix: str, type_: str, v) -> dict:
    """Independent flattening (the documented column convention) of one decoded parameter."""
    elem, suffix = abi.split_array(type_)
    if suffix:
        return {prefix: json.loads(json.dumps(_json(type_, v)))}
    if type_ in abi.STRUCTS:
        out = {}
        for (name, t), x in zip(abi.STRUCTS[type_], v):
            out.update(reference_columns(prefix + "_" + abi.snake(name), t, x))
        return out
    if type_ == "bytes":
        return {prefix: "0x" + v.hex()}
    if type_ in ("uint64", "uint96", "uint256"):
        return {prefix: str(v), prefix + "_num": float(v)}
    return {prefix: normalize(type_, v)}


def _json(type_: str, v):
    elem, suffix = abi.split_array(type_)
    if suffix:
        return [_json(elem, x) for x in v]
    if type_ in abi.STRUCTS:
        return {name: _json(t, x) for (name, t), x in zip(abi.STRUCTS[type_], v)}
    if type_ == "bytes":
        return "0x" + v.hex()
    if type_ in ("uint64", "uint96", "uint256"):
        return str(v)
    return normalize(type_, v)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


# Full topic0 values copied by hand from EVENTS.md §1.1-§1.4 (event, layout) → topic0: the decoder must know each one
# under the layout the document gives it (the import-time check only compares a layout with its own abbreviation).
EVENTS_MD_TOPIC0 = {
    ("NewTaskCreated", "current"): "0x59945c4b280f2ccf9bcfa9a217b0629fd61f8d39864f1bb198590f88da7138bc",
    ("NewTaskCreated", "2025-09-19"): "0x1ef7cd6ba5e4d9399ef779a98cbd9acc0ddf25619dfc420c81ee5098734f5515",
    ("NewTaskCreated", "2025-12-01"): "0x2e477dac832c6b4371a5752f18b8ed214959f4bdfd2a3572cb7053f0f5ea705c",
    ("NewTaskCreated", "2025-12-15"): "0xe7ded92f83d29337451f476bc5be9dd0c5fd8fa8029fa0317fc3796b44eca0be",
    ("NewTaskCreated", "2026-01-28a"): "0x83ff58bd0386b67d300729aa234c8a1abc0899501fec5f277e513a8df99bf6b6",
    ("NewTaskCreated", "2026-01-28b"): "0xda18da9b2c6559f385505109632d5d49e9728f16765efdb6a62dd64748ceb2f6",
    ("NewTaskCreated", "2026-02-11"): "0x0742ec8d296e286b00b6070ef5874bcb7801cd5af4fd56df11b159d00c50a49b",
    ("TaskResponded", "current"): "0x9158a80c164dc98ea6cfbef773b37f3f91813ba3f898729b952b3a1303f757b2",
    ("TaskResponded", "2025-09-19"): "0x1df4a09d4442168132f2006b673527c3bc93d2a97bf263c280d4284ca401e45e",
    ("TaskResponded", "2025-12-01"): "0x25ee291e052a88cd87f3e54f8b749d4f1917a21575f471bbc5a714e72fc662c2",
    ("TaskResponded", "2026-01-09"): "0x8a991a614613a35ac96591dd411beaceb8483d310728503445b8eca834d14dfc",
    ("TaskResponded", "2026-01-28"): "0xf0b796f5808d2379648bdf27885fc6d0f1c067fe7657719527f494e372ca21ca",
    ("TaskResponded", "2026-03-09"): "0x9bd4f3f7c2a58b2f123fe85c617ab5861c23ae6e805c07b8d0d0d5dacde0e0a7",
    ("PolicyDenied", "current"): "0xef8ce97d2fa69839d5bfbc66f9e14b1a4ee8ae0dd640f5237360ccb638f499af",
    ("AttestationSpent", "current"): "0xcecc683f5a5724e2e1c85bf11748af2141e0e320c7802a6d0c9ad6efdf5ddcbb",
    ("AttestationSpent", "2025-09-19"): "0xfe433b14369525454e553cb8f8e6ab0ead42088a505e644bb0f088a2fa69ed7c",
    ("DirectTaskResponded", "current"): "0xd9cd8d028181f540e5469a8e012ae9353c070de97489cb9dc98e6d533bd12943",
    ("DirectTaskResponded", "2026-02-11"): "0x917b08a2756ee4b7f5f72177a86bba211c676be879033e879b35ee14d7a02985",
    ("DirectTaskResponded", "2026-03-09"): "0x110f41e22f0a474caec6116a19e8074a991c5df3a15a6c87f412cbcbd39c4cb7",
    ("TaskChallengedSuccessfully", "current"): "0x76f638bf7002c52c8f60b4e096043f7dcfb61a9af2d5badd1923395836669261",
    ("TaskChallengedUnsuccessfully", "current"): "0x126b016e720d5c6ef27165dc8b00ae0d8ad0bf5500d8c240c1d920a92e5499e8",
    ("PolicyDeployed", "current"): "0x7f3345629b7fae59c2c3d2dc57b391f686b4961f8c2b67f656a8f28bda3f719e",
    ("PolicyDeployed", "2025-09"): "0xf73931a1cdd88cc8563b9835cc0e7ff80059f2103e7954f23c603ad475da2fe8",
    ("PolicyDeployed", "2026-01-09"): "0xb08d606d15212fdb35cf16d00c45d46452ed42a5629cf66fd22286fd86267d72",
    ("PolicyDataDeployed", "current"): "0xab56093139858452f739c2c8ca938e819afb11f11651190987b45252acd6edbb",
    ("PolicyDataDeployed", "2025-09"): "0xd2c66945868666c1da28695b6d32b573d4aa24eabc1476504dd87c50ac8ba137",
    ("PolicySet", "current"): "0x4a290fa7d502cf69f303e332435bc6843a71d8ea21e49383441ee44c6904f0a9",
    ("PolicySet", "2025-09-19"): "0x233e6cec727e3c6a5a94a6e08763e2c8945f2ced71cbe148a575daf41052bd3d",
    ("PolicySet", "2026-04-16"): "0x368220dda17d3f0a1e4019a6a11e46430aa93c5e482ef31c908120de859bc887",
    ("OperatorRegistered", "current"): "0xe8e68cef1c3a761ed7be7e8463a375f27f7bc335e51824223cacce636ec5c3fe",
    ("OperatorSocketUpdate", "current"): "0xec2963ab21c1e50e1e582aa542af2e4bf7bf38e6e1403c27b42e1c5d6e621eaa",
    ("NewPubkeyRegistration", "current"): "0xe3fb6613af2e8930cf85d47fcf6db10192224a64c6cbe8023e0eee1ba3828041",
    ("OperatorStakeUpdate", "current"): "0x2f527d527e95d8fe40aec55377743bb779087da3f6d0d08f12e36444da62327d",
}


@pytest.mark.parametrize("key", sorted(EVENTS_MD_TOPIC0), ids=lambda k: f"{k[0]}-{k[1]}")
def test_topic0_of_every_documented_layout_is_the_one_events_md_gives(key):
    event, layout = key
    assert abi.topic0_of(event, layout) == EVENTS_MD_TOPIC0[key]
    assert abi.BY_TOPIC0[EVENTS_MD_TOPIC0[key]].event == event


def test_layout_counts_of_events_md_1_3():
    assert len(abi.BY_TOPIC0) == len(abi.LAYOUTS)
    assert len(abi.layouts_of("NewTaskCreated")) == 7 and len(abi.layouts_of("TaskResponded")) == 6


def test_a_wrong_layout_would_not_match_its_documented_topic():
    lay = abi.layouts_of("TaskResponded")[0]
    wrong = abi.EventLayout(lay.event, "x", lay.params[:1], lay.documented_topic0)
    assert not abi.topic_matches(wrong.documented_topic0, wrong.topic0)
    assert abi.topic_matches("0x7f26b83f…2498", abi.topic0_of("Initialized"))
    assert not abi.topic_matches("0x7f26b83f…2499", abi.topic0_of("Initialized"))


def test_function_selectors_of_events_md_section_6():
    assert abi.function_selector("respondToTask(Task,TaskResponse,bytes,bytes)") == "0xdd4b0f07"
    assert abi.function_selector("validateAttestation(Attestation)") == "0x22519610"


def test_snake_case_column_names():
    assert abi.snake("quorumThresholdPercentage") == "quorum_threshold_percentage"
    assert abi.snake("pubkeyG1") == "pubkey_g1"
    assert abi.snake("OperatorMetadataURIUpdated") == "operator_metadata_uri_updated"
    assert abi.snake("X") == "x"


# ---------------------------------------------------------------------------------------------
# decoder round trips against eth-abi (every layout of every event)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lay", abi.LAYOUTS, ids=lambda lay: f"{lay.event}-{lay.layout}")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_decoder_round_trips_every_layout(lay, data):
    types = tuple(p.type for p in lay.data_params)
    values = [data.draw(strategy(t)) for t in types]
    blob = encode([abi.canonical(t) for t in types], values)
    want = [normalize(t, v) for t, v in zip(types, values)]
    assert list(codec.params_decoder(types)(blob)) == want
    assert list(codec.generated_decoder(types)(blob)) == want


@pytest.mark.parametrize(
    "lay",
    [
        lay
        for lay in abi.LAYOUTS
        if lay.event in ("NewTaskCreated", "TaskResponded", "PolicySet", "OperatorStakeUpdate", "DirectTaskResponded")
    ],
    ids=lambda lay: f"{lay.event}-{lay.layout}",
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_log_to_row_matches_the_reference_flattening(lay, data):
    values = {p.name: data.draw(strategy(p.type)) for p in lay.params}
    topics = [lay.topic0]
    for p in lay.indexed:
        v = values[p.name]
        topics.append(
            "0x"
            + (
                bytes(12) + bytes.fromhex(v[2:])
                if p.type == "address"
                else v.rjust(32, b"\0")
                if isinstance(v, bytes)
                else int(v).to_bytes(32, "big")
            ).hex()
        )
    blob = encode([abi.canonical(p.type) for p in lay.data_params], [values[p.name] for p in lay.data_params])
    log = {
        "address": "0x" + "ab" * 20,
        "topics": topics,
        "data": "0x" + blob.hex(),
        "blockNumber": "0x10",
        "logIndex": "0x3",
        "transactionHash": "0x" + "cd" * 32,
        "blockHash": "0x" + "ef" * 32,
        "blockTimestamp": "0x64",
    }
    batch = decode.decode_logs([log], 1)
    assert not batch.undecodable
    (row,) = batch.rows[lay.table]
    got = dict(zip([c.name for c in decode.TABLES[lay.table]], row))
    assert (got["chain_id"], got["block_number"], got["log_index"], got["block_time"], got["layout"]) == (
        1,
        16,
        3,
        100,
        lay.layout,
    )
    for p in lay.params:
        prefix = abi.snake(p.name)
        prefix = "ev_" + prefix if prefix in {c.name for c in decode.COMMON} else prefix
        for col, want in reference_columns(prefix, p.type, values[p.name]).items():
            have = got[col]
            if col == "task_response_policy_task_data_policy" and have is None:  # stored once, in blobs
                have = "0x" + batch.blobs[got["policy_code_hash"]].encode().hex()
            if isinstance(want, (list, dict)):
                have = json.loads(have)
            assert have == want, (col, have, want)


@settings(max_examples=100, deadline=None)
@given(blob=st.binary(max_size=400))
def test_garbage_never_crashes_the_decoder(blob):
    for lay in abi.layouts_of("TaskResponded") + abi.layouts_of("NewTaskCreated") + abi.layouts_of("PolicySet"):
        types = tuple(p.type for p in lay.data_params)
        for dec in (codec.params_decoder(types), codec.generated_decoder(types)):
            try:
                dec(blob)
            except codec.DecodeError:
                pass


def test_truncated_and_bad_padding_data_are_decode_errors():
    good = encode(["address", "bytes"], ["0x" + "11" * 20, b"hello"])
    for make in (codec.params_decoder, codec.generated_decoder):
        dec = make(("address", "bytes"))
        assert dec(good) == ("0x" + "11" * 20, b"hello")
        with pytest.raises(codec.DecodeError):
            dec(good[:-40])
        with pytest.raises(codec.DecodeError):
            dec(b"\x01" + good[1:])  # dirty address padding
        with pytest.raises(codec.DecodeError):
            make(("uint32",))((2**32).to_bytes(32, "big"))
        with pytest.raises(codec.DecodeError):
            make(("bool",))((2).to_bytes(32, "big"))


def test_undecodable_log_is_kept_raw_with_the_error():
    t0 = abi.topic0_of("NewTaskCreated")
    log = {
        "address": "0x" + "ab" * 20,
        "topics": [t0, "0x" + "00" * 32],
        "data": "0x1234",
        "blockNumber": "0x2",
        "logIndex": "0x0",
        "transactionHash": "0x" + "cd" * 32,
        "blockHash": "0x" + "ef" * 32,
    }
    batch = decode.decode_logs([log], 5)
    assert not batch.rows
    (u,) = batch.undecodable
    assert u[:6] == (5, 2, 0, "0x" + "cd" * 32, "0x" + "ab" * 20, t0) and u[6] == "0x1234" and "DecodeError" in u[7]


# ---------------------------------------------------------------------------------------------
# signatureData, calldata, allow rule, status rule
# ---------------------------------------------------------------------------------------------

NSS_T = abi.canonical("NonSignerStakesAndSignature")
BN_T = abi.canonical("BN254Certificate")


@settings(max_examples=30, deadline=None)
@given(keys=st.lists(st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1)), max_size=4))
def test_signature_data_both_encodings(keys):
    nss = encode([NSS_T], [([0] * len(keys), keys, [(1, 2)], ([3, 4], [5, 6]), (7, 8), [0], [0], [[0] * len(keys)])])
    assert decode.decode_signature_data(nss, 1) == ("nss", keys)
    cert = encode(
        [BN_T], [(5, b"\x11" * 32, (1, 2), ([3, 4], [5, 6]), [(i, b"proof", (k, [10])) for i, k in enumerate(keys)])]
    )
    assert decode.decode_signature_data(cert, 8453) == ("bn254", keys)
    ids = [decode.operator_id(x, y) for x, y in keys]
    assert ids == ["0x" + keccak(x.to_bytes(32, "big") + y.to_bytes(32, "big")).hex() for x, y in keys]
    with pytest.raises(codec.DecodeError):
        decode.decode_signature_data(b"\x00" * 7, 1)


def test_calldata_decoded_with_the_intent_function_signature():
    to = "0x" + "22" * 20
    data = keccak(text="transfer(address,uint256)")[:4] + encode(["address", "uint256"], [to, 5 * 10**18])
    assert decode.decode_calldata(b"transfer(address,uint256)", data) == ("transfer", [to, str(5 * 10**18)], None)
    name, args, err = decode.decode_calldata(b"buy(address,uint256,uint32)", data)
    assert name == "buy" and args is None and "does not match" in err
    assert decode.decode_calldata(b"", b"") == (None, None, None)
    assert decode.decode_calldata(b"not a signature", b"\x01\x02\x03\x04")[2].startswith("bad function signature")


TOKEN_ADDR = "0x" + "33" * 20
TO = "0x" + "22" * 20
OTHER = "0x" + "44" * 20


def _summary(sig: str, types: list[str], values: list, value: int = 0, to: str = TOKEN_ADDR) -> list:
    data = keccak(text=sig)[:4] + encode(types, values) if sig else b""
    return decode.intent_summary(("0x" + "11" * 20, to, value, data, 1, sig.encode()))[4:]


@pytest.mark.parametrize(
    "sig,types,values,value,want",
    [
        # hand-written: [asset, amount, amount in ETH (only for ETH), counterparty]
        ("", [], [], 2 * 10**18, ["ETH", str(2 * 10**18), 2.0, TOKEN_ADDR]),
        ("transfer(address,uint256)", ["address", "uint256"], [TO, 7], 0, [TOKEN_ADDR, "7", None, TO]),
        (
            "approve(address,uint256)",
            ["address", "uint256"],
            [TO, 2**256 - 1],
            0,
            [TOKEN_ADDR, str(2**256 - 1), None, TO],
        ),
        (
            "transferFrom(address,address,uint256)",
            ["address", "address", "uint256"],
            [OTHER, TO, 9],
            0,
            [TOKEN_ADDR, "9", None, TO],
        ),
        # the devnet router's swap(tokenIn, amountIn, tokenOut, minOut): tokenIn and amountIn, at the router
        (
            "swap(address,uint256,address,uint256)",
            ["address", "uint256", "address", "uint256"],
            [OTHER, 18_171 * 10**18, "0x" + "ee" * 20, 1],
            0,
            [OTHER, str(18_171 * 10**18), None, TOKEN_ADDR],
        ),
        (
            "swap(address,uint256,address,uint256)",
            ["address", "uint256", "address", "uint256"],
            ["0x" + "ee" * 20, 3 * 10**18, OTHER, 1],
            3 * 10**18,
            ["ETH", str(3 * 10**18), 3.0, TOKEN_ADDR],
        ),
        # odd shapes: no amount, the log still decodes
        ("transfer(address,address)", ["address", "address"], [TO, OTHER], 0, [TOKEN_ADDR, None, None, TOKEN_ADDR]),
        ("approve(address,bool)", ["address", "bool"], [TO, True], 0, [TOKEN_ADDR, None, None, TOKEN_ADDR]),
        # an unknown function moves the native value
        ("deposit(uint256)", ["uint256"], [5], 10**18, ["ETH", str(10**18), 1.0, TOKEN_ADDR]),
    ],
)
def test_moved_asset_and_amount_per_call_type(sig, types, values, value, want):
    assert _summary(sig, types, values, value) == want


def test_canonical_allow_rule():
    assert decode.is_canonical_allow(encode(["bool"], [True]))
    assert not decode.is_canonical_allow(encode(["bool"], [False]))
    assert decode.is_canonical_allow(encode(["string"], ["true"]))
    assert not decode.is_canonical_allow(encode(["string"], ["True"]))
    assert not decode.is_canonical_allow(encode(["string"], ["false"]))
    assert not decode.is_canonical_allow(b"")
    assert not decode.is_canonical_allow(b"\x01")
    assert not decode.is_canonical_allow((2).to_bytes(32, "big"))
    weird = bytearray(encode(["string"], ["true"]))
    weird[0:32] = (999).to_bytes(32, "big")  # the offset word is not checked
    assert decode.is_canonical_allow(bytes(weird))
    weird[70] = 1  # dirty padding after "true"
    assert not decode.is_canonical_allow(bytes(weird))


# ---------------------------------------------------------------------------------------------
# ranges
# ---------------------------------------------------------------------------------------------


@settings(deadline=None)
@given(lo=st.integers(0, 10**6), span=st.integers(0, 20_000), size=st.integers(1, 5000))
def test_plan_ranges_cover_exactly(lo, span, size):
    hi = lo + span
    ranges = extract.plan_ranges(lo, hi, size)
    assert ranges[0][0] == lo and ranges[-1][1] == hi
    assert all(b - a + 1 <= size for a, b in ranges)
    assert all(r1[1] + 1 == r2[0] for r1, r2 in zip(ranges, ranges[1:]))
    halves = extract.split_range(lo, hi)
    assert halves[0][0] == lo and halves[-1][1] == hi
    if hi > lo:
        assert halves[0][1] + 1 == halves[1][0]


def test_range_sizer_halves_and_regrows():
    s = extract.RangeSizer(size=1000, maximum=8000, target_logs=100)
    s.too_large(1000)
    assert s.size == 500
    s.too_large(500)
    assert s.size == 250
    for _ in range(10):
        s.success(0, s.size)
    assert s.size == 8000  # sparse ranges grow back to the maximum
    s.success(1000, 8000)  # 10x the target: shrink at most /4
    assert s.size == 2000


# ---------------------------------------------------------------------------------------------
# deployments, metadata
# ---------------------------------------------------------------------------------------------


def test_deployment_documents_are_validated():
    good = {
        "name": "x",
        "chain_id": 1,
        "rpc_url": "http://r",
        "start_block": 5,
        "contracts": {"taskManager": "0x" + "AB" * 20, "token": "0x" + "11" * 20},
        "policies": {"p": {"address": "0x" + "22" * 20, "entrypoint": "p.allow"}},
        "clients": {"c": {"address": "0x" + "33" * 20, "policy": "p"}},
    }
    d = deployment.parse(good)
    assert d.contracts["taskManager"] == "0x" + "ab" * 20 and d.confirmations == 12 and d.start_block == 5
    assert set(d.addresses) == {"0x" + "ab" * 20, "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20}
    with pytest.raises(LensError, match="not an address"):
        deployment.parse({**good, "contracts": {"taskManager": "0x1234"}})
    with pytest.raises(LensError, match="missing key"):
        deployment.parse({"contracts": {}})
    with pytest.raises(LensError, match="not found"):
        deployment.load("/nonexistent/deployment.json")


@pytest.mark.parametrize(
    "name,chain", [("ethereum", 1), ("base", 8453), ("sepolia", 11155111), ("base-sepolia", 84532)]
)
def test_presets_load_with_the_documented_addresses(name, chain):
    d = deployment.load(name)
    assert d.chain_id == chain and d.start_block > 0
    for role in ("taskManager", "attestationValidator", "challengeVerifier", "operatorRegistry"):
        assert d.contracts[role].startswith("0x") and len(d.contracts[role]) == 42


def test_metadata_from_data_uris_and_errors_recorded():
    doc = {"name": "op-1", "country": "DE", "latitude": 50.1}
    b64 = "data:application/json;base64," + base64.b64encode(json.dumps(doc).encode()).decode()
    pct = "data:application/json," + urllib.parse.quote(json.dumps(doc))
    for uri in (b64, pct):
        f = metadata.fetch(uri)
        assert f.ok and json.loads(f.content) == doc and f.error is None
    bad = metadata.fetch("data:application/json,[1,2]")
    assert not bad.ok and "not a JSON object" in bad.error
    assert not metadata.fetch("ftp://x/y").ok
    assert metadata.http_url("ipfs://bafyabc/meta.json", "https://gw/ipfs/") == "https://gw/ipfs/bafyabc/meta.json"
    unreachable = metadata.fetch("http://127.0.0.1:9/none.json", timeout_s=0.5)
    assert not unreachable.ok and unreachable.error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_and_closure_decoders_agree_on_corrupted_encodings(data):
    lay = data.draw(st.sampled_from([x for x in abi.LAYOUTS if x.data_params]))
    types = tuple(p.type for p in lay.data_params)
    blob = bytearray(encode([abi.canonical(t) for t in types], [data.draw(strategy(t)) for t in types]))
    for _ in range(data.draw(st.integers(1, 3))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    results = []
    for dec in (codec.params_decoder(types), codec.generated_decoder(types)):
        try:
            results.append(dec(bytes(blob)))
        except codec.DecodeError:
            results.append("error")
    assert results[0] == results[1]


_ADDR = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_CALLS = {
    "transfer(address,uint256)": (["address", "uint256"], 1, 0),
    "approve(address,uint256)": (["address", "uint256"], 1, 0),
    "transferFrom(address,address,uint256)": (["address", "address", "uint256"], 2, 1),
}


@settings(max_examples=60, deadline=None)
@given(sig=st.sampled_from(sorted(_CALLS)), amount=st.integers(0, 2**256 - 1), a=_ADDR, b=_ADDR, token=_ADDR)
def test_token_amounts_round_trip_exactly(sig, amount, a, b, token):
    """eth-abi encodes the call; the indexer's summary gives back the very amount and counterparty, as exact text."""
    types, i_amount, i_cp = _CALLS[sig]
    values = [a, b, amount][-len(types) :] if len(types) == 3 else [a, amount]
    summary = _summary(sig, types, values, to=token)
    assert summary[0] == token and summary[1] == str(amount) and summary[3] == values[i_cp]
    assert int(summary[1]) == values[i_amount]
