"""A strict, fast ABI decoder compiled once per type into closures (eth-abi is the reference in the tests)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from indexer.abi import STRUCTS, canonical, split_array, split_top


class DecodeError(ValueError):
    """The bytes are not a valid ABI encoding of the expected type."""


_from = int.from_bytes
Decoder = Callable[[bytes, int], Any]


def _word(buf: bytes, pos: int) -> int:
    if pos + 32 > len(buf) or pos < 0:
        raise DecodeError(f"read past end: word at {pos}, length {len(buf)}")
    return _from(buf[pos : pos + 32], "big")


@cache
def compile_type(type_: str) -> tuple[bool, int, Decoder]:
    """(is_dynamic, head size in bytes, decode(buf, pos)) for a struct or ABI type.

    For a static type pos is where its head starts; for a dynamic type pos is where its content starts
    (the tuple decoder resolves offsets).
    """
    elem, suffix = split_array(type_)
    if suffix:
        return _compile_array(elem, suffix)
    if type_ in STRUCTS:
        return _compile_tuple(tuple(t for _, t in STRUCTS[type_]))
    if type_.startswith("("):
        return _compile_tuple(tuple(_split_tuple(type_)))
    return _compile_elementary(type_)


def _split_tuple(type_: str) -> list[str]:
    """The member types of a tuple type "(a,b,...)"."""
    return split_top(type_[1:-1]) if type_ != "()" else []


def _compile_elementary(t: str) -> tuple[bool, int, Decoder]:
    if t == "address":

        def dec_address(buf: bytes, pos: int) -> str:
            w = buf[pos : pos + 32]
            if len(w) != 32:
                raise DecodeError(f"read past end: address at {pos}")
            if any(w[:12]):
                raise DecodeError("address with non-zero high bytes")
            return "0x" + w[12:].hex()

        return False, 32, dec_address
    if t == "bool":

        def dec_bool(buf: bytes, pos: int) -> bool:
            v = _word(buf, pos)
            if v > 1:
                raise DecodeError(f"bool out of range: {v}")
            return v == 1

        return False, 32, dec_bool
    m = re.fullmatch(r"(u?)int(\d*)", t)
    if m:
        bits = int(m.group(2) or 256)
        if m.group(1):
            limit = 1 << bits

            def dec_uint(buf: bytes, pos: int) -> int:
                v = _word(buf, pos)
                if v >= limit:
                    raise DecodeError(f"uint{bits} out of range")
                return v

            return False, 32, dec_uint
        half = 1 << (bits - 1)

        def dec_int(buf: bytes, pos: int) -> int:
            v = _word(buf, pos)
            if v >= 1 << 255:
                v -= 1 << 256
            if not -half <= v < half:
                raise DecodeError(f"int{bits} out of range")
            return v

        return False, 32, dec_int
    m = re.fullmatch(r"bytes(\d+)", t)
    if m:
        n = int(m.group(1))

        def dec_fixed(buf: bytes, pos: int) -> str:
            w = buf[pos : pos + 32]
            if len(w) != 32:
                raise DecodeError(f"read past end: bytes{n} at {pos}")
            if any(w[n:]):
                raise DecodeError(f"bytes{n} with non-zero padding")
            return "0x" + w[:n].hex()

        return False, 32, dec_fixed
    if t in ("bytes", "string"):
        as_text = t == "string"

        def dec_bytes(buf: bytes, pos: int):
            n = _word(buf, pos)
            end = pos + 32 + n
            if end > len(buf):
                raise DecodeError(f"{t} of length {n} at {pos} runs past the end ({len(buf)})")
            raw = buf[pos + 32 : end]
            return _utf8(raw) if as_text else raw

        return True, 32, dec_bytes
    raise ValueError(f"unsupported ABI type {t}")


def _compile_tuple(types: tuple[str, ...]) -> tuple[bool, int, Decoder]:
    parts = [compile_type(t) for t in types]
    dynamic = any(d for d, _, _ in parts)
    plan = []
    off = 0
    for d, size, fn in parts:
        plan.append((d, off, fn))
        off += 32 if d else size
    head = off

    def dec_tuple(buf: bytes, pos: int) -> tuple:
        out = []
        n = len(buf)
        for d, o, fn in plan:
            if d:
                rel = _word(buf, pos + o)
                if rel > n:
                    raise DecodeError(f"offset {rel} past end")
                out.append(fn(buf, pos + rel))
            else:
                out.append(fn(buf, pos + o))
        return tuple(out)

    return dynamic, (32 if dynamic else head), dec_tuple


def _compile_array(elem: str, suffix: str) -> tuple[bool, int, Decoder]:
    ed, esize, efn = compile_type(elem)
    step = 32 if ed else esize

    def items(buf: bytes, base: int, count: int) -> list:
        if base + count * step > len(buf):
            raise DecodeError(f"array of {count} items at {base} runs past the end")
        if ed:
            n = len(buf)
            out = []
            for i in range(count):
                rel = _word(buf, base + 32 * i)
                if rel > n:
                    raise DecodeError(f"offset {rel} past end")
                out.append(efn(buf, base + rel))
            return out
        return [efn(buf, base + step * i) for i in range(count)]

    if suffix == "[]":

        def dec_dyn_array(buf: bytes, pos: int) -> list:
            count = _word(buf, pos)
            if count > len(buf):
                raise DecodeError(f"array length {count} larger than the data")
            return items(buf, pos + 32, count)

        return True, 32, dec_dyn_array
    k = int(suffix[1:-1])

    def dec_fixed_array(buf: bytes, pos: int) -> list:
        return items(buf, pos, k)

    return ed, (32 if ed else step * k), dec_fixed_array


@cache
def params_decoder(types: tuple[str, ...]) -> Callable[[bytes], tuple]:
    """Decoder of abi.encode(v1, v2, …) for the given (struct or ABI) types: bytes → tuple of values."""
    _, _, fn = _compile_tuple(types)

    def decode(data: bytes) -> tuple:
        return fn(data, 0)

    return decode


def canonical_types(types: tuple[str, ...]) -> list[str]:
    """Canonical ABI types, for the eth-abi reference encoder/decoder."""
    return [canonical(t) for t in types]


# ---------------------------------------------------------------------------------------------
# Code generation: the same decoder as straight-line Python per struct (2-3x faster than closures).
# Semantics are identical to compile_type (the tests check both against eth-abi).
# ---------------------------------------------------------------------------------------------


class _Gen:
    """Emits one Python function per (struct/tuple/array) type into a shared namespace."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, str] = {}
        self.sizes: dict[str, tuple[bool, int]] = {}

    def info(self, t: str) -> tuple[bool, int]:
        """(dynamic, head size) of a type, as compile_type."""
        d, size, _ = compile_type(t)
        return d, size

    def fn(self, t: str) -> str:
        """Name of the generated function decoding type t's content at p: f(b, p, n)."""
        if t in self.names:
            return self.names[t]
        name = f"_d{len(self.names)}"
        self.names[t] = name
        elem, suffix = split_array(t)
        if suffix:
            self._array(name, elem, suffix)
        else:
            fields = [ft for _, ft in STRUCTS[t]] if t in STRUCTS else _split_tuple(t)
            self._tuple(name, fields)
        return name

    def _elem_expr(self, t: str, at: str, out: str, ind: str) -> list[str]:
        """Statements assigning the value of an elementary/static-or-dynamic field whose head is at `at`."""
        L = []
        d, size = self.info(t)
        elem, suffix = split_array(t)
        if suffix or t in STRUCTS or t.startswith("("):
            f = self.fn(t)
            if d:
                L.append(f"{ind}q = p + int.from_bytes(b[{at}:{at}+32], 'big')")
                L.append(f"{ind}if q > n: raise DecodeError('offset past end')")
                L.append(f"{ind}{out} = {f}(b, q, n)")
            else:
                L.append(f"{ind}{out} = {f}(b, {at}, n)")
            return L
        if t == "address":
            L.append(f"{ind}w = b[{at}:{at}+32]")
            L.append(f"{ind}if w[:12] != _Z12: raise DecodeError('address with non-zero high bytes')")
            L.append(f"{ind}{out} = '0x' + w[12:].hex()")
            return L
        if t == "bool":
            L.append(f"{ind}{out} = int.from_bytes(b[{at}:{at}+32], 'big')")
            L.append(f"{ind}if {out} > 1: raise DecodeError('bool out of range')")
            L.append(f"{ind}{out} = {out} == 1")
            return L
        m = re.fullmatch(r"(u?)int(\d*)", t)
        if m:
            bits = int(m.group(2) or 256)
            L.append(f"{ind}{out} = int.from_bytes(b[{at}:{at}+32], 'big')")
            if m.group(1):
                if bits < 256:
                    L.append(f"{ind}if {out} >> {bits}: raise DecodeError('uint{bits} out of range')")
            else:
                L.append(f"{ind}{out} = _sint({out}, {bits})")
            return L
        m = re.fullmatch(r"bytes(\d+)", t)
        if m:
            k = int(m.group(1))
            L.append(f"{ind}w = b[{at}:{at}+32]")
            if k < 32:
                L.append(f"{ind}if any(w[{k}:]): raise DecodeError('bytes{k} with non-zero padding')")
            L.append(f"{ind}{out} = '0x' + w[:{k}].hex()")
            return L
        if t in ("bytes", "string"):
            L.append(f"{ind}q = p + int.from_bytes(b[{at}:{at}+32], 'big')")
            L.append(f"{ind}if q + 32 > n: raise DecodeError('{t} offset past end')")
            L.append(f"{ind}e = q + 32 + int.from_bytes(b[q:q+32], 'big')")
            L.append(f"{ind}if e > n: raise DecodeError('{t} runs past the end')")
            if t == "string":
                L.append(f"{ind}{out} = _utf8(b[q+32:e])")
            else:
                L.append(f"{ind}{out} = b[q+32:e]")
            return L
        raise ValueError(f"unsupported ABI type {t}")

    def _tuple(self, name: str, fields: list[str]) -> None:
        L = [f"def {name}(b, p, n):"]
        head = sum(32 if self.info(f)[0] else self.info(f)[1] for f in fields)
        L.append(f"    if p + {head} > n: raise DecodeError('tuple head past end')")
        off = 0
        outs = []
        for i, f in enumerate(fields):
            d, size = self.info(f)
            L += self._elem_expr(f, f"p+{off}" if off else "p", f"f{i}", "    ")
            outs.append(f"f{i}")
            off += 32 if d else size
        L.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        self.lines += L

    def _array(self, name: str, elem: str, suffix: str) -> None:
        d, size = self.info(elem)
        step = 32 if d else size
        L = [f"def {name}(b, p, n):"]
        if suffix == "[]":
            L.append("    c = int.from_bytes(b[p:p+32], 'big')")
            L.append("    if p + 32 > n or c > n: raise DecodeError('array length past end')")
            L.append("    p = p + 32")
        else:
            L.append(f"    c = {int(suffix[1:-1])}")
        L.append(f"    if p + c * {step} > n: raise DecodeError('array runs past the end')")
        L.append("    out = []")
        L.append("    for i in range(c):")
        L.append(f"        h = p + {step} * i")
        if d:
            # element offsets are relative to the start of the array content (p)
            f = self.fn(elem) if (split_array(elem)[1] or elem in STRUCTS or elem.startswith("(")) else None
            L.append("        q = p + int.from_bytes(b[h:h+32], 'big')")
            L.append("        if q > n: raise DecodeError('offset past end')")
            if f:
                L.append(f"        out.append({f}(b, q, n))")
            else:  # bytes / string elements
                L.append("        if q + 32 > n: raise DecodeError('offset past end')")
                L.append("        e = q + 32 + int.from_bytes(b[q:q+32], 'big')")
                L.append("        if e > n: raise DecodeError('runs past the end')")
                L.append("        out.append(_utf8(b[q+32:e]) if %r else b[q+32:e])" % (elem == "string"))
        else:
            inner = self._elem_expr(elem, "h", "v", "        ")
            # _elem_expr for tuples uses relative offsets from p; static elements have none, so this is safe
            L += inner
            L.append("        out.append(v)")
        L.append("    return out")
        self.lines += L


def _sint(v: int, bits: int) -> int:
    if v >= 1 << 255:
        v -= 1 << 256
    if not -(1 << (bits - 1)) <= v < 1 << (bits - 1):
        raise DecodeError(f"int{bits} out of range")
    return v


def _utf8(raw: bytes) -> str:
    """A Solidity string as text; bytes that are not UTF-8 are kept escaped (\\xff), so a log is never lost to them."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


@cache
def generated_decoder(types: tuple[str, ...]) -> Callable[[bytes], tuple]:
    """Like params_decoder, but compiled to Python source once per type tuple."""
    g = _Gen()
    top = g.fn("(" + ",".join(types) + ")") if len(types) != 1 or True else None
    src = "\n".join(g.lines)
    ns = {"DecodeError": DecodeError, "_Z12": bytes(12), "_sint": _sint, "_utf8": _utf8}
    exec(compile(src, f"<abi {','.join(types)}>", "exec"), ns)
    f = ns[top]

    def decode(data: bytes) -> tuple:
        return f(data, 0, len(data))

    decode.source = src  # type: ignore[attr-defined]
    return decode
