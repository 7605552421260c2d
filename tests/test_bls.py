"""BN254 BLS in Python agrees with the on-chain verifier (precompiles) and with py_ecc's pairing."""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from eth_utils import keccak
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from py_ecc import optimized_bn128 as ob

from devnet import bls, contracts
from devnet.tx import call, deploy

pytestmark = pytest.mark.xdist_group("bls")

secrets = st.integers(min_value=1, max_value=bls.R - 1)
digests = st.binary(min_size=32, max_size=32)
SLOW_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def verifier(w3) -> str:
    """A TaskManager used only for its pure BLS views (hashToG1, trySignatureAndApkVerification)."""
    return deploy(w3, "TaskManager", sender=w3.eth.accounts[0])  # an implementation: its pure views need no state


def _call(w3, verifier: str, fn: str, *args):
    from devnet.deploy import _codec

    c = _codec("TaskManager")
    out = call(w3, verifier, c.encode_abi(fn, list(args)))
    abi_fn = next(i for i in c.abi if i.get("name") == fn)
    return abi_decode([contracts._abi_type(o) for o in abi_fn["outputs"]], out)


def _on_chain_verify(w3, verifier, digest, apk_g1, apk_g2, sigma) -> tuple[bool, bool]:
    g2 = [list(apk_g2[0]), list(apk_g2[1])]
    return _call(w3, verifier, "trySignatureAndApkVerification", digest, apk_g1, g2, sigma)


def test_generator_limb_order_is_imaginary_first() -> None:
    """EigenLayer G2Point X = [X_imag, X_real]: the G2 key of secret 1 is the generator in that order."""
    kp = bls.keypair_from_secret(1)
    assert kp.g1 == (1, 2)
    assert kp.g2 == (
        (
            11559732032986387107991004021392285783925812861821192530917403151452391805634,
            10857046999023057135944570762232829481370756359578518086990519993285655852781,
        ),
        (
            4082367875863433681332203403145435568316851327593401208105741076214120093531,
            8495653923123431417604973247489272438418190587263600148770280649306958101930,
        ),
    )
    assert bls.limbs_to_g2(kp.g2) == ob.G2 or ob.eq(bls.limbs_to_g2(kp.g2), ob.G2)


@settings(SLOW_OK, max_examples=50)
@given(k=secrets)
@example(k=1)
@example(k=bls.R - 1)
@example(k=bls._LAMBDA)
@example(k=2**128 + 12345)
def test_g1_scalar_mult_matches_py_ecc(k: int) -> None:
    assert bls.g1_mul(bls.G1_GEN, k) == tuple(int(c) for c in ob.normalize(ob.multiply(ob.G1, k)))


@settings(SLOW_OK, max_examples=30)
@given(points=st.lists(secrets, min_size=0, max_size=6))
def test_aggregate_g1_matches_py_ecc(points: list[int]) -> None:
    acc = ob.Z1
    for k in points:
        acc = ob.add(acc, ob.multiply(ob.G1, k))
    expected = (0, 0) if ob.is_inf(acc) else tuple(int(c) for c in ob.normalize(acc))
    assert bls.aggregate_g1(bls.g1_mul(bls.G1_GEN, k) for k in points) == expected


@settings(SLOW_OK, max_examples=50)
@given(digest=digests)
def test_hash_to_g1_equals_the_contract(w3, verifier, digest: bytes) -> None:
    x, y = bls.hash_to_g1(digest)
    assert (y * y - x**3 - 3) % bls.P == 0
    assert tuple(_call(w3, verifier, "hashToG1", digest)[0]) == (x, y)


@settings(SLOW_OK, max_examples=12)
@given(k=secrets, digest=digests, other=digests)
def test_sign_verify_round_trip_on_chain(w3, verifier, k: int, digest: bytes, other: bytes) -> None:
    kp = bls.keypair_from_secret(k)
    sigma = bls.sign(kp.secret, digest)
    assert _on_chain_verify(w3, verifier, digest, kp.g1, kp.g2, sigma) == (True, True)
    if other != digest:
        assert _on_chain_verify(w3, verifier, other, kp.g1, kp.g2, sigma) == (True, False)
    # a G1 key that does not match the G2 key fails too (the gamma trick binds them)
    assert _on_chain_verify(w3, verifier, digest, bls.g1_add(kp.g1, bls.G1_GEN), kp.g2, sigma) == (True, False)


@settings(SLOW_OK, max_examples=6)
@given(ks=st.lists(secrets, min_size=1, max_size=5, unique=True), digest=digests)
def test_aggregate_signature_verifies_against_aggregate_keys(w3, verifier, ks: list[int], digest: bytes) -> None:
    kps = [bls.keypair_from_secret(k) for k in ks]
    sigma = bls.aggregate_g1(bls.sign(kp.secret, digest) for kp in kps)
    assert sigma == bls.sign_aggregate([kp.secret for kp in kps], digest)
    apk1 = bls.aggregate_g1(kp.g1 for kp in kps)
    apk2 = bls.aggregate_g2(kp.g2 for kp in kps)
    assert _on_chain_verify(w3, verifier, digest, apk1, apk2, sigma) == (True, True)
    if len(kps) > 1:  # drop one signature: the aggregate no longer verifies
        partial = bls.aggregate_g1(bls.sign(kp.secret, digest) for kp in kps[1:])
        assert _on_chain_verify(w3, verifier, digest, apk1, apk2, partial) == (True, False)


def test_cross_check_with_py_ecc_pairing() -> None:
    """The slow, independent check: py_ecc's own pairing accepts our signatures and rejects tampered ones."""
    kp = bls.keypair_from_seed(b"cross-check")
    digest = keccak(b"hello newton")
    sigma = bls.sign(kp.secret, digest)
    assert bls.verify(kp.g2, digest, sigma) is True
    assert bls.verify(kp.g2, keccak(b"other"), sigma) is False
    assert bls.verify(kp.g2, digest, bls.g1_add(sigma, bls.G1_GEN)) is False


def test_keys_are_deterministic_and_distinct() -> None:
    a1, a2, b = bls.keypair_from_seed(b"a"), bls.keypair_from_seed(b"a"), bls.keypair_from_seed(b"b")
    assert a1 == a2 and a1.secret != b.secret and 0 < a1.secret < bls.R


@settings(SLOW_OK, max_examples=30)
@given(ks=st.lists(secrets, min_size=0, max_size=5, unique=True))
def test_signature_data_round_trip(ks: list[int]) -> None:
    g1s = [bls.g1_mul(bls.G1_GEN, k) for k in ks]
    apk = bls.aggregate_g1(g1s)
    data = bls.encode_signature_data(g1s, apk, ((1, 2), (3, 4)), (5, 6))
    ((bitmap_idx, non_signers, apks, apk_g2, sigma, apk_idx, total_idx, stake_idx),) = abi_decode([bls.NSS_TYPE], data)
    ids = [bls.operator_id(g) for g in non_signers]
    assert ids == sorted(ids) and sorted(non_signers) == sorted(g1s)
    assert list(apks) == [apk] and apk_g2 == ((1, 2), (3, 4)) and sigma == (5, 6)
    assert list(bitmap_idx) == [0] * len(ks) and list(apk_idx) == [0] and list(total_idx) == [0]
    assert [list(x) for x in stake_idx] == [[0] * len(ks)]
    assert bls.hash_of_non_signers(9, g1s) == keccak((9).to_bytes(4, "big") + b"".join(ids))


@settings(SLOW_OK, max_examples=15)
@given(ks=st.lists(secrets, min_size=0, max_size=4))
@example(ks=[1])
@example(ks=[bls.R - 1, 1])
def test_g2_arithmetic_matches_py_ecc(ks: list[int]) -> None:
    """Our Fp2 Jacobian G2 (used for keys and apkG2) equals py_ecc's G2, in EigenLayer limb order."""
    for k in ks:
        assert bls.keypair_from_secret(k).g2 == bls.g2_to_limbs(ob.multiply(ob.G2, k))
    expected = ob.Z2
    for k in ks:
        expected = ob.add(expected, ob.multiply(ob.G2, k))
    assert bls.aggregate_g2(bls.keypair_from_secret(k).g2 for k in ks) == bls.g2_to_limbs(expected)
