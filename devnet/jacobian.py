"""Jacobian point arithmetic on a = 0 short Weierstrass curves (BN254 G1 and secp256k1), with gmpy2 integers."""

from __future__ import annotations

from collections.abc import Callable

import gmpy2

Point = tuple  # (X, Y, Z) Jacobian coordinates; Z == 0 is the point at infinity


def curve_ops(modulus: int) -> tuple[Point, Callable[[Point], Point], Callable[[Point, Point], Point]]:
    """(infinity, double, add) for y² = x³ + b over GF(modulus); closures keep the hot path free of lookups."""
    pm = gmpy2.mpz(modulus)
    inf = (gmpy2.mpz(1), gmpy2.mpz(1), gmpy2.mpz(0))

    def dbl(j: Point) -> Point:
        """Point doubling, dbl-2009-l."""
        x, y, z = j
        if z == 0 or y == 0:
            return inf
        a = x * x % pm
        b = y * y % pm
        c = b * b % pm
        d = 2 * ((x + b) * (x + b) - a - c) % pm
        e = 3 * a
        f = e * e % pm
        x3 = (f - 2 * d) % pm
        return (x3, (e * (d - x3) - 8 * c) % pm, 2 * y * z % pm)

    def add(p: Point, q: Point) -> Point:
        """Point addition, add-2007-bl (handles infinity and doubling)."""
        x1, y1, z1 = p
        x2, y2, z2 = q
        if z1 == 0:
            return q
        if z2 == 0:
            return p
        z1z1 = z1 * z1 % pm
        z2z2 = z2 * z2 % pm
        u1 = x1 * z2z2 % pm
        u2 = x2 * z1z1 % pm
        s1 = y1 * z2 * z2z2 % pm
        s2 = y2 * z1 * z1z1 % pm
        if u1 == u2:
            return dbl(p) if s1 == s2 else inf
        h = (u2 - u1) % pm
        i = (2 * h) * (2 * h) % pm
        jj = h * i % pm
        r = 2 * (s2 - s1) % pm
        v = u1 * i % pm
        x3 = (r * r - jj - 2 * v) % pm
        return (x3, (r * (v - x3) - 2 * s1 * jj) % pm, ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % pm)

    return inf, dbl, add
