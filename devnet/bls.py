"""BN254 BLS signatures compatible with the devnet contracts (EigenLayer conventions): keys, hash-to-G1, sign, aggregate, PoP."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import gmpy2
from eth_abi import encode as abi_encode
from eth_utils import keccak
from py_ecc import optimized_bn128 as ob

from devnet.jacobian import curve_ops

# Field modulus p and group order r of alt_bn128.
P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
_PM = gmpy2.mpz(P)
_SQRT_EXP = gmpy2.mpz((P + 1) // 4)  # p ≡ 3 mod 4, so beta^((p+1)/4) is a square root when one exists

G1_GEN = (1, 2)
G1Affine = tuple[int, int]
G2Limbs = tuple[tuple[int, int], tuple[int, int]]  # EigenLayer order: ((X_imag, X_real), (Y_imag, Y_real))

PUBKEY_REGISTRATION_TYPEHASH = keccak(text="BN254PubkeyRegistration(address operator)")

NSS_TYPE = (
    "(uint32[],(uint256,uint256)[],(uint256,uint256)[],(uint256[2],uint256[2]),(uint256,uint256),"
    "uint32[],uint32[],uint32[][])"
)


@dataclass(frozen=True)
class BlsKeyPair:
    """A BLS key: secret scalar, G1 public key (affine) and G2 public key in EigenLayer limb order."""

    secret: int
    g1: G1Affine
    g2: G2Limbs


# ---------------------------------------------------------------- G1 arithmetic (Jacobian, gmpy2)
# A Jacobian point is (X, Y, Z) with affine (X/Z², Y/Z³); Z == 0 is the point at infinity.


def _jac(p: G1Affine):
    """Affine → Jacobian ((0,0) is the EVM's encoding of infinity)."""
    if p[0] == 0 and p[1] == 0:
        return _INF
    return (gmpy2.mpz(p[0]), gmpy2.mpz(p[1]), gmpy2.mpz(1))


def _affine(j) -> G1Affine:
    """Jacobian → affine ints; infinity → (0, 0)."""
    x, y, z = j
    if z == 0:
        return (0, 0)
    zi = gmpy2.invert(z, _PM)
    zi2 = zi * zi % _PM
    return (int(x * zi2 % _PM), int(y * zi2 * zi % _PM))


_INF, _dbl, _add = curve_ops(_PM)


def _neg(j):
    x, y, z = j
    return (x, (-y) % _PM, z)


_W = 5  # wNAF window: 8 precomputed odd multiples per base


@lru_cache(maxsize=8192)
def _wnaf(k: int) -> tuple[int, ...]:
    """Width-5 NAF digits of k, least significant first (cached: the per-key precomputation of the GLV halves)."""
    digits = []
    k = int(k)
    while k > 0:
        if k & 1:
            d = k & ((1 << _W) - 1)
            if d >= 1 << (_W - 1):
                d -= 1 << _W
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return tuple(digits)


def _odd_multiples(j):
    """[1P, 3P, 5P, …, 15P] in Jacobian."""
    twice = _dbl(j)
    table = [j]
    for _ in range((1 << (_W - 2)) - 1):
        table.append(_add(table[-1], twice))
    return table


# GLV endomorphism: phi(x, y) = (BETA·x, y) = LAMBDA·(x, y) on G1, so k·P = k1·P + k2·phi(P) with |k1|, |k2| < 2^128
# (half the doublings). (V1, V2) is a short basis of the lattice {(a, b): a + b·LAMBDA ≡ 0 mod r}.
_BETA = gmpy2.mpz(21888242871839275220042445260109153167277707414472061641714758635765020556616)
_LAMBDA = 21888242871839275217838484774961031246154997185409878258781734729429964517155
_V1 = (147946756881789319000765030803803410728, -9931322734385697763)
_V2 = (9931322734385697763, 147946756881789319010696353538189108491)


def _glv_split(k: int) -> tuple[int, int]:
    """k ≡ k1 + k2·LAMBDA (mod r) with small k1, k2 (Babai rounding against the short basis)."""
    (a1, b1), (a2, b2) = _V1, _V2
    c1 = (2 * b2 * k + R) // (2 * R)
    c2 = (-2 * b1 * k + R) // (2 * R)
    return k - c1 * a1 - c2 * a2, -c1 * b1 - c2 * b2


def _glv_tables(j):
    """Odd-multiple tables of P and phi(P) (phi on Jacobian: X → BETA·X)."""
    t1 = _odd_multiples(j)
    return t1, [(_BETA * x % _PM, y, z) for x, y, z in t1]


@lru_cache(maxsize=64)
def _glv_tables_affine(point: G1Affine):
    """The tables of a message point, shared by every operator signing the same digest."""
    return _glv_tables(_jac(point))


def _mul_jac(j, k: int, tables=None):
    """k·P: GLV split, then interleaved width-5 NAF over P and phi(P)."""
    k = int(k) % R
    if k == 0 or j[2] == 0:
        return _INF
    k1, k2 = _glv_split(k)
    t1, t2 = tables or _glv_tables(j)
    s1, s2 = (-1 if k1 < 0 else 1), (-1 if k2 < 0 else 1)
    n1, n2 = _wnaf(abs(k1)), _wnaf(abs(k2))
    acc = _INF
    for i in range(max(len(n1), len(n2)) - 1, -1, -1):
        acc = _dbl(acc)
        d = n1[i] * s1 if i < len(n1) else 0
        if d > 0:
            acc = _add(acc, t1[d >> 1])
        elif d < 0:
            acc = _add(acc, _neg(t1[(-d) >> 1]))
        d = n2[i] * s2 if i < len(n2) else 0
        if d > 0:
            acc = _add(acc, t2[d >> 1])
        elif d < 0:
            acc = _add(acc, _neg(t2[(-d) >> 1]))
    return acc


def g1_mul(point: G1Affine, k: int) -> G1Affine:
    """Scalar multiplication on G1 (affine in, affine out)."""
    return _affine(_mul_jac(_jac(point), k))


def g1_add(a: G1Affine, b: G1Affine) -> G1Affine:
    """Sum of two G1 points (affine)."""
    return _affine(_add(_jac(a), _jac(b)))


def g1_neg(a: G1Affine) -> G1Affine:
    """Negation on G1; (0,0) stays (0,0)."""
    return (0, 0) if a == (0, 0) else (a[0], (P - a[1]) % P)


def aggregate_g1(points: Iterable[G1Affine]) -> G1Affine:
    """Sum of G1 points (signatures or public keys); the empty sum is (0, 0)."""
    acc = _INF
    for p in points:
        acc = _add(acc, _jac(p))
    return _affine(acc)


# ---------------------------------------------------------------- G2 (py_ecc, limb-order conversion)


def g2_to_limbs(pt) -> G2Limbs:
    """py_ecc G2 point (affine or projective) → EigenLayer limbs ((X_imag, X_real), (Y_imag, Y_real))."""
    if len(pt) == 3:
        if ob.is_inf(pt):
            return ((0, 0), (0, 0))
        pt = ob.normalize(pt)
    x, y = pt
    return ((int(x.coeffs[1]), int(x.coeffs[0])), (int(y.coeffs[1]), int(y.coeffs[0])))


def limbs_to_g2(limbs: G2Limbs):
    """EigenLayer limbs → py_ecc optimized (projective) G2 point."""
    (xi, xr), (yi, yr) = limbs
    if xi == xr == yi == yr == 0:
        return ob.Z2
    return (ob.FQ2([xr, xi]), ob.FQ2([yr, yi]), ob.FQ2.one())


# G2 over Fp2 = Fp[i]/(i²+1), Jacobian coordinates, elements as (real, imag) pairs of mpz. Same a = 0 formulas as G1;
# ~20x faster than py_ecc's G2 multiply, which made key generation the slowest part of a deployment.
_INF2 = ((gmpy2.mpz(1), gmpy2.mpz(0)), (gmpy2.mpz(1), gmpy2.mpz(0)), (gmpy2.mpz(0), gmpy2.mpz(0)))


def _f2mul(a, b):
    return ((a[0] * b[0] - a[1] * b[1]) % _PM, (a[0] * b[1] + a[1] * b[0]) % _PM)


def _f2sq(a):
    return ((a[0] + a[1]) * (a[0] - a[1]) % _PM, 2 * a[0] * a[1] % _PM)


def _f2add(a, b):
    return ((a[0] + b[0]) % _PM, (a[1] + b[1]) % _PM)


def _f2sub(a, b):
    return ((a[0] - b[0]) % _PM, (a[1] - b[1]) % _PM)


def _f2scale(a, k: int):
    return (a[0] * k % _PM, a[1] * k % _PM)


def _f2inv(a):
    d = gmpy2.invert((a[0] * a[0] + a[1] * a[1]) % _PM, _PM)
    return (a[0] * d % _PM, (-a[1]) * d % _PM)


def _f2zero(a) -> bool:
    return a[0] == 0 and a[1] == 0


def _dbl2(j):
    x, y, z = j
    if _f2zero(z) or _f2zero(y):
        return _INF2
    a = _f2sq(x)
    b = _f2sq(y)
    c = _f2sq(b)
    d = _f2scale(_f2sub(_f2sub(_f2sq(_f2add(x, b)), a), c), 2)
    e = _f2scale(a, 3)
    f = _f2sq(e)
    x3 = _f2sub(f, _f2scale(d, 2))
    y3 = _f2sub(_f2mul(e, _f2sub(d, x3)), _f2scale(c, 8))
    z3 = _f2scale(_f2mul(y, z), 2)
    return (x3, y3, z3)


def _add2(p, q):
    x1, y1, z1 = p
    x2, y2, z2 = q
    if _f2zero(z1):
        return q
    if _f2zero(z2):
        return p
    z1z1 = _f2sq(z1)
    z2z2 = _f2sq(z2)
    u1 = _f2mul(x1, z2z2)
    u2 = _f2mul(x2, z1z1)
    s1 = _f2mul(_f2mul(y1, z2), z2z2)
    s2 = _f2mul(_f2mul(y2, z1), z1z1)
    if u1 == u2:
        return _dbl2(p) if s1 == s2 else _INF2
    h = _f2sub(u2, u1)
    i = _f2sq(_f2scale(h, 2))
    jj = _f2mul(h, i)
    r = _f2scale(_f2sub(s2, s1), 2)
    v = _f2mul(u1, i)
    x3 = _f2sub(_f2sub(_f2sq(r), jj), _f2scale(v, 2))
    y3 = _f2sub(_f2mul(r, _f2sub(v, x3)), _f2scale(_f2mul(s1, jj), 2))
    z3 = _f2mul(_f2sub(_f2sub(_f2sq(_f2add(z1, z2)), z1z1), z2z2), h)
    return (x3, y3, z3)


def _jac2(limbs: G2Limbs):
    (xi, xr), (yi, yr) = limbs
    if xi == xr == yi == yr == 0:
        return _INF2
    return ((gmpy2.mpz(xr), gmpy2.mpz(xi)), (gmpy2.mpz(yr), gmpy2.mpz(yi)), (gmpy2.mpz(1), gmpy2.mpz(0)))


def _limbs2(j) -> G2Limbs:
    x, y, z = j
    if _f2zero(z):
        return ((0, 0), (0, 0))
    zi = _f2inv(z)
    zi2 = _f2sq(zi)
    ax, ay = _f2mul(x, zi2), _f2mul(y, _f2mul(zi2, zi))
    return ((int(ax[1]), int(ax[0])), (int(ay[1]), int(ay[0])))


_G2_GEN: G2Limbs = (
    (
        11559732032986387107991004021392285783925812861821192530917403151452391805634,
        10857046999023057135944570762232829481370756359578518086990519993285655852781,
    ),
    (
        4082367875863433681332203403145435568316851327593401208105741076214120093531,
        8495653923123431417604973247489272438418190587263600148770280649306958101930,
    ),
)


def g2_mul(limbs: G2Limbs, k: int) -> G2Limbs:
    """Scalar multiplication on G2 (EigenLayer limbs in and out), width-5 NAF."""
    k = int(k) % R
    j = _jac2(limbs)
    if k == 0 or _f2zero(j[2]):
        return ((0, 0), (0, 0))
    twice = _dbl2(j)
    table = [j]
    for _ in range((1 << (_W - 2)) - 1):
        table.append(_add2(table[-1], twice))
    acc = _INF2
    for d in reversed(_wnaf(k)):
        acc = _dbl2(acc)
        if d > 0:
            acc = _add2(acc, table[d >> 1])
        elif d < 0:
            x, y, z = table[(-d) >> 1]
            acc = _add2(acc, (x, ((-y[0]) % _PM, (-y[1]) % _PM), z))
    return _limbs2(acc)


def aggregate_g2(points: Iterable[G2Limbs]) -> G2Limbs:
    """Sum of G2 public keys (EigenLayer limb order in and out)."""
    acc = _INF2
    for p in points:
        acc = _add2(acc, _jac2(p))
    return _limbs2(acc)


@lru_cache(maxsize=4096)
def _g2_of_secret(secret: int) -> G2Limbs:
    return g2_mul(_G2_GEN, secret)


# ---------------------------------------------------------------- keys, hashing, signing


@lru_cache(maxsize=4096)
def keypair_from_seed(seed: bytes) -> BlsKeyPair:
    """Deterministic key from a seed: secret = keccak256("newton-lens-bls:" ‖ seed) mod r (never 0)."""
    counter = 0
    while True:
        secret = (
            int.from_bytes(keccak(b"newton-lens-bls:" + seed + (counter.to_bytes(4, "big") if counter else b"")), "big")
            % R
        )
        if secret:
            break
        counter += 1
    return keypair_from_secret(secret)


@lru_cache(maxsize=4096)
def keypair_from_secret(secret: int) -> BlsKeyPair:
    """The key pair of a secret scalar."""
    secret %= R
    return BlsKeyPair(secret=secret, g1=g1_mul(G1_GEN, secret), g2=_g2_of_secret(secret))


@lru_cache(maxsize=65536)
def hash_to_g1(digest: bytes) -> G1Affine:
    """EigenLayer BN254.hashToG1: x = digest mod p, increment x until x³+3 is a square; y = beta^((p+1)/4)."""
    x = gmpy2.mpz(int.from_bytes(bytes(digest), "big")) % _PM
    while True:
        beta = (x * x * x + 3) % _PM
        y = gmpy2.powmod(beta, _SQRT_EXP, _PM)
        if y * y % _PM == beta:
            return (int(x), int(y))
        x = (x + 1) % _PM


def sign(secret: int, digest: bytes) -> G1Affine:
    """BLS signature sigma = secret·H(digest) on G1."""
    h = hash_to_g1(bytes(digest))
    return _affine(_mul_jac(_jac(h), secret, _glv_tables_affine(h)))


def sign_aggregate(secrets: Sequence[int], digest: bytes) -> G1Affine:
    """The aggregate signature of several signers in one scalar multiplication: (Σ secrets)·H(digest).
    Equal to aggregate_g1(sign(s, digest) for s in secrets); used by the simulation for speed."""
    return g1_mul(hash_to_g1(bytes(digest)), sum(secrets) % R)


def pop_signature(kp: BlsKeyPair, message_point: G1Affine) -> G1Affine:
    """Proof of possession: the key's signature on the registry's `pubkeyRegistrationMessageHash(operator)`."""
    return g1_mul(tuple(message_point), kp.secret)


def pubkey_registration_message(operator: str, registry: str, chain_id: int) -> G1Affine:
    """Same point as OperatorRegistry.pubkeyRegistrationMessageHash(operator) on `chain_id`."""
    digest = keccak(
        abi_encode(
            ["bytes32", "address", "address", "uint256"], [PUBKEY_REGISTRATION_TYPEHASH, operator, registry, chain_id]
        )
    )
    return hash_to_g1(digest)


def operator_id(g1: G1Affine) -> bytes:
    """operatorId = keccak256(abi.encodePacked(X, Y)) of the G1 public key."""
    return keccak(int(g1[0]).to_bytes(32, "big") + int(g1[1]).to_bytes(32, "big"))


def hash_of_non_signers(task_created_block: int, non_signer_g1s: Iterable[G1Affine]) -> bytes:
    """keccak256(abi.encodePacked(uint32 taskCreatedBlock, bytes32[] sorted operatorIds))."""
    ids = sorted(operator_id(g) for g in non_signer_g1s)
    return keccak(int(task_created_block).to_bytes(4, "big") + b"".join(ids))


def sort_non_signers(non_signer_g1s: Iterable[G1Affine]) -> list[G1Affine]:
    """Non-signer keys in the order the contract requires: ascending operatorId."""
    return sorted((tuple(g) for g in non_signer_g1s), key=operator_id)


def encode_signature_data(non_signer_g1s, quorum_apk_g1, apk_g2, sigma) -> bytes:
    """abi.encode(NonSignerStakesAndSignature) for quorum 0; index arrays zero-filled (the devnet ignores them)."""
    ns = sort_non_signers(non_signer_g1s)
    n = len(ns)
    value = (
        [0] * n,
        [tuple(map(int, g)) for g in ns],
        [tuple(map(int, quorum_apk_g1))],
        (tuple(map(int, apk_g2[0])), tuple(map(int, apk_g2[1]))),
        tuple(map(int, sigma)),
        [0],
        [0],
        [[0] * n],
    )
    return abi_encode([NSS_TYPE], [value])


@lru_cache(maxsize=512)
def apk_g2(signer_g2s: frozenset[G2Limbs]) -> G2Limbs:
    """Aggregate G2 key of a signer set (signer sets repeat across tasks, so this is cached)."""
    return aggregate_g2(signer_g2s)


def signature_data(digest: bytes, signers: Sequence[BlsKeyPair], non_signers: Sequence[BlsKeyPair]) -> bytes:
    """Everything respondToTask needs in `signatureData`, for a quorum made of `signers` + `non_signers`
    (which must be exactly the operators registered at taskCreatedBlock)."""
    quorum_apk = aggregate_g1([k.g1 for k in signers] + [k.g1 for k in non_signers])
    sigma = sign_aggregate([k.secret for k in signers], digest)
    return encode_signature_data(
        [k.g1 for k in non_signers], quorum_apk, apk_g2(frozenset(k.g2 for k in signers)), sigma
    )


def verify(pubkey_g2: G2Limbs, digest: bytes, sigma: G1Affine) -> bool:
    """Pairing check e(sigma, G2) == e(H(digest), pk) with py_ecc (slow; for tests and audits)."""

    def g1(p):
        return ob.Z1 if tuple(p) == (0, 0) else (ob.FQ(p[0]), ob.FQ(p[1]), ob.FQ.one())

    pk = limbs_to_g2(pubkey_g2)
    s, h = g1(sigma), g1(hash_to_g1(bytes(digest)))
    if not ob.is_on_curve(s, ob.b) or not ob.is_on_curve(pk, ob.b2) or ob.is_inf(s):
        return False
    lhs = ob.pairing(ob.G2, s, final_exponentiate=False) * ob.pairing(ob.neg(pk), h, final_exponentiate=False)
    return ob.final_exponentiate(lhs) == ob.FQ12.one()
