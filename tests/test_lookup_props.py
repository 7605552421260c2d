"""Property tests of what a person may type into a lookup, and of durations as people read them."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from app.engine.values import fmt_duration
from app.lookup import normalise

UNITS = {"d": 86400, "h": 3600, "min": 60, "s": 1}


@given(st.binary(min_size=32, max_size=32), st.booleans(), st.sampled_from([str.lower, str.upper, str.swapcase]))
def test_a_hash_typed_any_way_normalises_to_one_form(raw: bytes, prefix: bool, case) -> None:
    canonical = "0x" + raw.hex()
    typed = ("0x" if prefix else "") + case(raw.hex())
    assert normalise(f"  {typed}\n").kind == "hash"
    assert normalise(typed).query == canonical


@given(st.binary(min_size=20, max_size=20))
def test_an_address_is_told_apart(raw: bytes) -> None:
    assert normalise(raw.hex()).kind == "address" and normalise(raw.hex()).query == "0x" + raw.hex()


@given(st.binary(min_size=4, max_size=31), st.booleans())
def test_a_prefix_of_six_or_more_digits_is_a_prefix(raw: bytes, drop_one: bool) -> None:
    digits = raw.hex()[: len(raw.hex()) - 1] if drop_one else raw.hex()
    if len(digits) == 40:
        return  # an address, told apart above
    found = normalise("0x" + digits)
    assert found.kind == "prefix" and found.query == "0x" + digits


@given(
    st.binary(min_size=32, max_size=32), st.integers(0, 63), st.sampled_from(list("gzxG-_/."))
)  # spaces at the ends are trimmed
def test_a_non_hex_character_is_refused_with_the_format(raw: bytes, at: int, bad: str) -> None:
    digits = raw.hex()
    typed = "0x" + digits[:at] + bad + digits[at + 1 :]
    found = normalise(typed)
    assert found.kind == "invalid"
    assert "0x followed by 64 hex digits" in found.problem and repr(bad.lower())[1:-1] in found.problem


@given(st.integers(0, 10**8))
def test_a_duration_reads_back_to_within_its_smallest_shown_unit(seconds: int) -> None:
    text = fmt_duration(seconds)
    parts = re.findall(r"(\d+) (d|h|min|s)\b", text)
    assert 1 <= len(parts) <= 2
    total = sum(int(n) * UNITS[u] for n, u in parts)
    smallest = min(UNITS[u] for _, u in parts)
    assert total <= seconds < total + (smallest if len(parts) == 2 else max(UNITS[parts[0][1]], 1))
    units = [u for _, u in parts]
    assert units == sorted(units, key=lambda u: -UNITS[u])  # largest first
