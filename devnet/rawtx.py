"""Fast raw transactions for the simulation: gmpy2 secp256k1 signing (same signatures as eth_account), local nonces."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

import gmpy2
from eth_utils import keccak

from devnet.jacobian import curve_ops

# secp256k1
_P = gmpy2.mpz(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F)
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_N = gmpy2.mpz(N)
_G = (
    gmpy2.mpz(0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798),
    gmpy2.mpz(0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8),
    gmpy2.mpz(1),
)


_INF, _dbl, _add = curve_ops(_P)


@lru_cache(maxsize=1)
def _table():
    """G·(d·16^i) for i < 64, d < 16: a fixed-base comb, so k·G costs at most 64 additions."""
    table = []
    base = _G
    for _ in range(64):
        row = [_INF]
        for _d in range(15):
            row.append(_add(row[-1], base))
        table.append(row)
        for _ in range(4):
            base = _dbl(base)
    return table


def _mul_g(k: int):
    """k·G, affine (x, y) ints."""
    table = _table()
    acc = _INF
    i = 0
    while k:
        d = k & 15
        if d:
            acc = _add(acc, table[i][d])
        k >>= 4
        i += 1
    x, y, z = acc
    zi = gmpy2.invert(z, _P)
    zi2 = zi * zi % _P
    return int(x * zi2 % _P), int(y * zi2 * zi % _P)


def _rfc6979_k(msg_hash: bytes, key: bytes) -> int:
    """Deterministic nonce exactly as eth_keys computes it (so signatures equal eth_account's)."""
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + key + msg_hash, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + key + msg_hash, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    return int.from_bytes(hmac.new(k, v, hashlib.sha256).digest(), "big")


def sign_hash(msg_hash: bytes, key: bytes) -> tuple[int, int, int]:
    """(y_parity, r, s) of an ECDSA signature over a 32-byte hash (low-s, like eth_keys)."""
    z = int.from_bytes(msg_hash, "big")
    k = _rfc6979_k((z % N).to_bytes(32, "big"), key)
    r, y = _mul_g(k)
    s_raw = int(gmpy2.invert(k, _N) * (z + r * int.from_bytes(key, "big")) % _N)
    parity = (y & 1) ^ (0 if s_raw * 2 < N else 1)
    return parity, r, (s_raw if s_raw * 2 < N else N - s_raw)


def address_of(key: bytes) -> str:
    """The address of a private key (lower-case hex)."""
    x, y = _mul_g(int.from_bytes(key, "big"))
    return "0x" + keccak(x.to_bytes(32, "big") + y.to_bytes(32, "big"))[12:].hex()


# ---------------------------------------------------------------------------------------------- RLP


def _rlp_bytes(b: bytes) -> bytes:
    if len(b) == 1 and b[0] < 0x80:
        return b
    return _rlp_len(len(b), 0x80) + b


def _rlp_len(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(nb)]) + nb


def _rlp_int(v: int) -> bytes:
    return _rlp_bytes(v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b"")


def rlp_list(items: list[bytes]) -> bytes:
    """RLP of a list whose items are already RLP-encoded."""
    body = b"".join(items)
    return _rlp_len(len(body), 0xC0) + body


# --------------------------------------------------------------------------------------- transactions


@dataclass
class Sender:
    """A local key with its next nonce (the simulation is the only sender from these accounts)."""

    key: bytes
    address: str
    nonce: int = 0


def sign_tx(
    sender: Sender,
    chain_id: int,
    to: str | None,
    data: bytes,
    value: int,
    gas: int,
    max_fee: int,
    priority_fee: int = 0,
) -> tuple[str, str]:
    """An EIP-1559 transaction signed with `sender`'s next nonce (`to` None creates a contract): (raw hex, tx hash hex)."""
    fields = [
        _rlp_int(chain_id),
        _rlp_int(sender.nonce),
        _rlp_int(priority_fee),
        _rlp_int(max_fee),
        _rlp_int(gas),
        _rlp_bytes(b"" if to is None else bytes.fromhex(to[2:])),
        _rlp_int(value),
        _rlp_bytes(data),
        rlp_list([]),
    ]
    parity, r, s = sign_hash(keccak(b"\x02" + rlp_list(fields)), sender.key)
    raw = b"\x02" + rlp_list(fields + [_rlp_int(parity), _rlp_int(r), _rlp_int(s)])
    sender.nonce += 1
    return "0x" + raw.hex(), "0x" + keccak(raw).hex()
