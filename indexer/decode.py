"""Raw eth_getLogs dicts → typed rows per event table (pure functions over compiled decoders)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from Crypto.Hash import keccak as _keccak_mod

from indexer.abi import LAYOUTS, STRUCTS, EventLayout, canonical, snake, split_array
from indexer.calls import ETH, moved, scaled
from indexer.codec import DecodeError, compile_type, generated_decoder


def keccak(data: bytes) -> bytes:
    """keccak256 (pycryptodome directly: eth_utils' wrapper costs more than the hash for small inputs)."""
    return _keccak_mod.new(digest_bits=256, data=data).digest()


def _code_hash(policy: bytes) -> str:
    """keccak256 of a policy's exact bytes, 0x-hex (cached with its text: see _policy_blob)."""
    return _policy_blob(policy)[0]


def memo(fn: Callable[[Any], Any], size: int = 4096) -> Callable[[Any], Any]:
    """fn over a hashable key, computed once per distinct key: the same big payload (a Rego source, an oracle's
    policy data) rides in thousands of logs, so its JSON and text are made once. The previous key is compared
    first (one memcmp of a run of identical payloads is cheaper than hashing them); the table is bounded (cleared
    when full) so a stream of distinct payloads costs only the lookup."""
    table: dict = {}
    last: list = [memo, None]  # (key, value); the sentinel key equals nothing a caller passes

    def cached(key):
        if key == last[0]:
            return last[1]
        try:
            value = table[key]
        except KeyError:
            value = fn(key)
            if len(table) >= size:
                table.clear()
            table[key] = value
        last[0], last[1] = key, value
        return value

    return cached


def _policy_blob_of(policy: bytes) -> tuple[str, str | None]:
    return "0x" + keccak(policy).hex(), _text(policy)


# (keccak hex, UTF-8 text or None) of a policy source: the same Rego source repeats across thousands of tasks
_policy_blob = memo(_policy_blob_of, 256)


def _policy_column(policy: bytes) -> str | None:
    """The row's Rego-source column: NULL when the text is stored once in `blobs`, else (not UTF-8) the bytes as hex."""
    return None if _policy_blob(policy)[1] is not None else "0x" + policy.hex()


DESTINATION_CHAINS = frozenset({8453, 84532})  # signatureData = abi.encode(BN254Certificate) there (EVENTS §1.1 (2))


@dataclass(frozen=True)
class Column:
    """One DuckDB column: name and SQL type."""

    name: str
    sql: str


COMMON = (
    Column("chain_id", "BIGINT"),
    Column("block_number", "BIGINT"),
    Column("log_index", "BIGINT"),
    Column("tx_hash", "VARCHAR"),
    Column("block_time", "TIMESTAMP"),
    Column("address", "VARCHAR"),
    Column("topic0", "VARCHAR"),
    Column("layout", "VARCHAR"),
)
_COMMON_NAMES = {c.name for c in COMMON}

UNDECODABLE_COLUMNS = (
    Column("chain_id", "BIGINT"),
    Column("block_number", "BIGINT"),
    Column("log_index", "BIGINT"),
    Column("tx_hash", "VARCHAR"),
    Column("address", "VARCHAR"),
    Column("topic0", "VARCHAR"),
    Column("data", "VARCHAR"),
    Column("error", "VARCHAR"),
)

Flat = Callable[[Any, list], None]


def _uint_bits(t: str) -> int | None:
    m = re.fullmatch(r"u?int(\d*)", t)
    return int(m.group(1) or 256) if m else None


def is_exact_type(t: str) -> bool:
    """Integers of 64 bits or more are stored as an exact decimal VARCHAR plus a DOUBLE `_num` column."""
    bits = _uint_bits(t)
    return bits is not None and bits >= 64


@cache
def jsonifier(type_: str) -> Callable[[Any], Any]:
    """Converter of a decoded value into JSON-safe data (big ints as decimal strings, bytes as hex)."""
    elem, suffix = split_array(type_)
    if suffix:
        inner = jsonifier(elem)
        return lambda v: [inner(x) for x in v]
    if type_ in STRUCTS:
        fields = [(name, jsonifier(t)) for name, t in STRUCTS[type_]]
        return lambda v: {name: f(x) for (name, f), x in zip(fields, v)}
    if type_.startswith("("):
        from indexer.codec import _split_tuple

        subs = [jsonifier(t) for t in _split_tuple(type_)]
        return lambda v: [f(x) for f, x in zip(subs, v)]
    if type_ == "bytes":
        return lambda v: "0x" + v.hex()
    if is_exact_type(type_):
        return str
    return lambda v: v


def _dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _flattener(type_: str, prefix: str) -> tuple[list[Column], Flat]:
    """Columns and an appender for one value of a type: structs become prefix_field columns, arrays JSON."""
    elem, suffix = split_array(type_)
    if suffix:
        js = jsonifier(type_)
        return [Column(prefix, "VARCHAR")], lambda v, out: out.append(_dumps(js(v)))
    if type_ in STRUCTS:
        cols: list[Column] = []
        subs: list[Flat] = []
        for name, t in STRUCTS[type_]:
            c, f = _flattener(t, f"{prefix}_{snake(name)}")
            cols += c
            subs.append(f)

        def flat_struct(v, out):
            for f, x in zip(subs, v):
                f(x, out)

        return cols, flat_struct
    if type_ == "bytes":
        return [Column(prefix, "VARCHAR")], lambda v, out: out.append("0x" + v.hex())
    if is_exact_type(type_):

        def flat_big(v, out):
            out.append(str(v))
            out.append(float(v))

        return [Column(prefix, "VARCHAR"), Column(prefix + "_num", "DOUBLE")], flat_big
    if _uint_bits(type_) is not None:
        return [Column(prefix, "BIGINT")], lambda v, out: out.append(v)
    if type_ == "bool":
        return [Column(prefix, "BOOLEAN")], lambda v, out: out.append(v)
    return [Column(prefix, "VARCHAR")], lambda v, out: out.append(v)


def _hashable(type_: str) -> bool:
    """Does a decoded value of this type hash (tuples and scalars all the way down, no lists)?"""
    elem, suffix = split_array(type_)
    if suffix:
        return False
    if type_ in STRUCTS:
        return all(_hashable(t) for _, t in STRUCTS[type_])
    if type_.startswith("("):
        from indexer.codec import _split_tuple

        return all(_hashable(t) for t in _split_tuple(type_))
    return True


def _array_json(type_: str) -> Callable[[Any], str]:
    """Compact JSON text of a decoded array; made once per distinct value when its items hash (see memo)."""
    js = jsonifier(type_)
    elem, suffix = split_array(type_)
    if not _hashable(elem):
        return lambda v: _dumps(js(v))
    made = memo(lambda key: _dumps(js(key)))
    return lambda v: made(tuple(v))


def _gen_fill(
    params: list[tuple[str, str]], index: dict[str, int], special: dict[str, Callable] | None = None
) -> Callable[[tuple, list], None]:
    """Straight-line code writing the flattened columns of decoded data params straight into a table row.

    `special`: column → function of the decoded value that makes that column instead (the Rego source column)."""
    lines = ["def fill(values, row):"]
    env: dict[str, Any] = {"_dumps": _dumps}
    counter = [0]
    special = special or {}

    def walk(type_: str, expr: str, prefix: str, depth: int) -> None:
        if prefix in special:
            name = f"_sp{counter[0]}"
            counter[0] += 1
            env[name] = special[prefix]
            lines.append(f"    row[{index[prefix]}] = {name}({expr})")
            return
        elem, suffix = split_array(type_)
        if suffix:
            name = f"_js{counter[0]}"
            counter[0] += 1
            env[name] = _array_json(type_)
            lines.append(f"    row[{index[prefix]}] = {name}({expr})")
            return
        if type_ in STRUCTS:
            var = f"s{counter[0]}"
            counter[0] += 1
            lines.append(f"    {var} = {expr}")
            for i, (name, t) in enumerate(STRUCTS[type_]):
                walk(t, f"{var}[{i}]", f"{prefix}_{snake(name)}", depth + 1)
            return
        if type_ == "bytes":
            lines.append(f"    row[{index[prefix]}] = '0x' + {expr}.hex()")
        elif is_exact_type(type_):
            lines.append(f"    x = {expr}")
            lines.append(f"    row[{index[prefix]}] = str(x)")
            lines.append(f"    row[{index[prefix + '_num']}] = float(x)")
        else:
            lines.append(f"    row[{index[prefix]}] = {expr}")

    for i, (name, t) in enumerate(params):
        walk(t, f"values[{i}]", _param_column_prefix(name), 0)
    if len(lines) == 1:
        lines.append("    pass")
    exec(compile("\n".join(lines), "<fill>", "exec"), env)
    return env["fill"]


def _topic_decoder(t: str) -> Callable[[str], Any]:
    if t == "address":

        def dec_addr(topic: str) -> str:
            if len(topic) != 66 or topic[2:26].strip("0"):
                raise DecodeError(f"indexed address topic is not a padded address: {topic}")
            return "0x" + topic[26:].lower()

        return dec_addr
    if t == "bool":

        def dec_bool(topic: str) -> bool:
            v = int(topic, 16)
            if v > 1:
                raise DecodeError("indexed bool out of range")
            return v == 1

        return dec_bool
    if _uint_bits(t) is not None:
        return lambda topic: int(topic, 16)
    return lambda topic: topic.lower()  # bytes32 (and hashes of dynamic indexed values)


# ------------------------------------------------------------------------------------------------
# Event-specific extra columns (computed from the decoded values; deterministic for a given log)
# ------------------------------------------------------------------------------------------------


def is_canonical_allow(result: bytes) -> bool:
    """EVENTS.md §3.4: abi.encode(true) (one word == 1) or abi.encode("true") (len 4, 'true', zero padding)."""
    if len(result) == 32:
        return int.from_bytes(result, "big") == 1
    if len(result) >= 96:
        return int.from_bytes(result[32:64], "big") == 4 and result[64:96] == b"true" + b"\0" * 28
    return False


def _field_index(struct: str, name: str) -> int:
    for i, (n, _) in enumerate(STRUCTS[struct]):
        if n == name:
            return i
    raise KeyError(f"{struct}.{name}")


@lru_cache(maxsize=4096)
def operator_id(x: int, y: int) -> str:
    """operatorId = keccak256(abi.encodePacked(X, Y)) of a G1 pubkey."""
    return "0x" + keccak(x.to_bytes(32, "big") + y.to_bytes(32, "big")).hex()


_NSS = generated_decoder(("NonSignerStakesAndSignature",))
_BN254 = generated_decoder(("BN254Certificate",))


def _nss_pubkeys_fast(sig: bytes) -> list[tuple[int, int]] | None:
    """Only the nonSignerPubkeys of abi.encode(NonSignerStakesAndSignature), read directly; None if anything is off
    (the full decoder then decides)."""
    n = len(sig)
    if n < 32 * 14:
        return None
    base = int.from_bytes(sig[0:32], "big")
    if base != 32:
        return None
    arr = base + int.from_bytes(sig[base + 32 : base + 64], "big")
    if arr + 32 > n:
        return None
    count = int.from_bytes(sig[arr : arr + 32], "big")
    end = arr + 32 + 64 * count
    if end > n:
        return None
    return [
        (int.from_bytes(sig[p : p + 32], "big"), int.from_bytes(sig[p + 32 : p + 64], "big"))
        for p in range(arr + 32, end, 64)
    ]


def decode_signature_data(sig: bytes, chain_id: int) -> tuple[str, list[tuple[int, int]]]:
    """('nss' | 'bn254', non-signer G1 pubkeys) of a certificate's signatureData; destination chains try BN254 first."""
    if chain_id not in DESTINATION_CHAINS:
        keys = _nss_pubkeys_fast(sig)  # emitted by the task manager, which decoded it on chain: bounds checks suffice
        if keys is not None:
            return "nss", keys
    order = (("bn254", _BN254), ("nss", _NSS)) if chain_id in DESTINATION_CHAINS else (("nss", _NSS), ("bn254", _BN254))
    errors = []
    for name, dec in order:
        try:
            (value,) = dec(sig)
        except (DecodeError, IndexError, ValueError) as e:
            errors.append(f"{name}: {e}")
            continue
        if name == "nss":
            return name, [tuple(p) for p in value[1]]
        return name, [tuple(w[2][0]) for w in value[4]]
    raise DecodeError(
        "signatureData is neither NonSignerStakesAndSignature nor BN254Certificate (" + "; ".join(errors) + ")"
    )


def _split_args(s: str) -> list[str]:
    from indexer.abi import split_top

    return split_top(s) if s.strip() else []


@lru_cache(maxsize=4096)
def _calldata_plan(signature: str) -> tuple[str, bytes, tuple[str, ...]]:
    m = re.fullmatch(r"\s*([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)\s*", signature)
    if not m:
        raise DecodeError(f"not a function signature: {signature!r}")
    types = tuple(canonical(t.strip()) for t in _split_args(m.group(2)))
    for t in types:
        compile_type(t)  # raises ValueError for unsupported types
    canon = f"{m.group(1)}(" + ",".join(types) + ")"
    return m.group(1), keccak(canon.encode())[:4], types


def _json_arg(type_: str, v: Any) -> Any:
    elem, suffix = split_array(type_)
    if suffix:
        return [_json_arg(elem, x) for x in v]
    if type_.startswith("("):
        from indexer.codec import _split_tuple

        return [_json_arg(t, x) for t, x in zip(_split_tuple(type_), v)]
    if _uint_bits(type_) is not None:
        return str(v)  # uints as exact decimal strings: DuckDB BIGINT and JSON numbers would round wei
    if type_ == "bytes":
        return "0x" + v.hex()
    return v


def decode_typed_calldata(
    function_signature: bytes, data: bytes
) -> tuple[str | None, tuple[str, ...] | None, list | None, str | None]:
    """(function name, canonical argument types, args as JSON-safe list, error) of intent calldata."""
    if not function_signature:
        if not data:
            return None, None, None, None
        return None, None, None, "calldata without a function signature"
    try:
        text = function_signature.decode("utf-8")
        name, selector, types = _calldata_plan(text)
    except (UnicodeDecodeError, DecodeError, ValueError) as e:
        return None, None, None, f"bad function signature: {e}"
    if data[:4] != selector:
        return name, types, None, f"selector 0x{data[:4].hex()} does not match {text} (0x{selector.hex()})"
    try:
        values = generated_decoder(types)(data[4:])
    except (DecodeError, IndexError, ValueError, OverflowError) as e:
        return name, types, None, f"calldata does not decode as {text}: {e}"
    return name, types, [_json_arg(t, v) for t, v in zip(types, values)], None


def decode_calldata(function_signature: bytes, data: bytes) -> tuple[str | None, list | None, str | None]:
    """(function name, args as JSON-safe list, error) of intent calldata, using the intent's functionSignature text."""
    name, _, args, err = decode_typed_calldata(function_signature, data)
    return name, args, err


def intent_summary(intent: tuple) -> list:
    """[function text, name, args JSON, calldata error, asset, amount, amount (whole units if ETH), counterparty].

    Asset and amount come from `indexer.calls.moved` (typed arguments only); an odd call has no amount. The amount
    in whole units is only filled for ETH here: a token's decimals are read from the chain when tasks are derived.
    """
    return list(_summary(intent[1], intent[2], intent[3], intent[5]))


@lru_cache(maxsize=8192)
def _summary(to: str, value: int, data: bytes, fsig: bytes) -> tuple:
    # a task's intent comes twice (NewTaskCreated, then TaskResponded): decode the call once
    name, types, args, err = decode_typed_calldata(fsig, data)
    ftext = _text(fsig) if fsig else None
    m = moved(to, value, name, types, args)
    return (
        ftext,
        name,
        None if args is None else _dumps(args),
        err,
        m.asset,
        None if m.amount is None else str(m.amount),
        scaled(m.amount, 18) if m.asset == ETH else None,
        m.counterparty,
    )


_INTENT_COLUMNS = [
    Column("intent_function_text", "VARCHAR"),
    Column("intent_function_name", "VARCHAR"),
    Column("intent_function_args_json", "VARCHAR"),
    Column("intent_calldata_error", "VARCHAR"),
    Column("intent_asset", "VARCHAR"),
    Column("intent_amount_wei", "VARCHAR"),
    Column("intent_amount_num", "DOUBLE"),
    Column("intent_counterparty", "VARCHAR"),
]


def _extras_new_task(lay: EventLayout) -> tuple[list[Column], Callable]:
    task_type = next(p.type for p in lay.params if p.name == "task")
    p_task = [p.name for p in lay.data_params].index("task")
    i_intent = _field_index(task_type, "intent")

    def extra(values: tuple, chain_id: int, out: list) -> None:
        out += intent_summary(values[p_task][i_intent])

    return list(_INTENT_COLUMNS), extra


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _policy_data_json(items: list, i_data: int) -> str:
    """JSON array of the oracle outputs (parsed JSON when the bytes are JSON text, else the hex string)."""
    return _oracle_json(tuple(it[i_data] for it in items))


def _oracle_json_of(datas: tuple[bytes, ...]) -> str:
    out = []
    for raw in datas:
        try:
            out.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            out.append("0x" + raw.hex())
    return _dumps(out)


# the same oracle outputs ride in many responses: parse their JSON once per distinct value
_oracle_json = memo(_oracle_json_of)


def _response_extras(tr_type: str) -> Callable[[tuple], list]:
    """[allow, params_json, policy_data_json, policy_code_hash] of a TaskResponse of any layout."""
    i_eval = _field_index(tr_type, "evaluationResult")
    names = [n for n, _ in STRUCTS[tr_type]]
    i_ptd = names.index("policyTaskData") if "policyTaskData" in names else None
    i_cfg = names.index("policyConfig") if "policyConfig" in names else None
    i_data = None
    if i_ptd is not None:
        pd_type = split_array(dict(STRUCTS[STRUCTS[tr_type][i_ptd][1]])["policyData"])[0]
        i_data = _field_index(pd_type, "data")

    def extra(tr: tuple) -> tuple[list, tuple[str, str] | None]:
        params = _text(tr[i_cfg][0]) if i_cfg is not None else None
        if i_ptd is None:
            return [is_canonical_allow(tr[i_eval]), params, None, None], None
        ptd = tr[i_ptd]
        h, text = _policy_blob(ptd[2])
        return [is_canonical_allow(tr[i_eval]), params, _policy_data_json(ptd[3], i_data), h], (
            None if text is None else (h, text)
        )

    return extra


_RESPONSE_COLUMNS = [
    Column("allow", "BOOLEAN"),
    Column("params_json", "VARCHAR"),
    Column("policy_data_json", "VARCHAR"),
    Column("policy_code_hash", "VARCHAR"),
]


def _extras_task_responded(lay: EventLayout) -> tuple[list[Column], Callable]:
    tr_type = lay.params[0].type
    cert_type = lay.params[1].type
    resp = _response_extras(tr_type)
    embedded = cert_type != "ResponseCertificate"
    i_sig = _field_index(cert_type, "nonSignerStakesAndSignature" if embedded else "signatureData")
    # the response carries the intent too: a task indexed only from its response still has its decoded call
    i_intent = _field_index(tr_type, "intent")

    def extra(values: tuple, chain_id: int, out: list):
        cols, blob = resp(values[0])
        out += cols
        sig = values[1][i_sig]
        try:
            if embedded:
                encoding, pubkeys = "nss_struct", [tuple(p) for p in sig[1]]
            else:
                encoding, pubkeys = decode_signature_data(sig, chain_id)
        except DecodeError as e:
            out += [None, None, None, str(e)]
        else:
            ids = [operator_id(x, y) for x, y in pubkeys]
            out += [encoding, _dumps(ids), len(ids), None]
        out += intent_summary(values[0][i_intent])
        return blob

    return (
        _RESPONSE_COLUMNS
        + [
            Column("sig_encoding", "VARCHAR"),
            Column("non_signer_ids_json", "VARCHAR"),
            Column("non_signer_count", "BIGINT"),
            Column("sig_error", "VARCHAR"),
        ]
        + _INTENT_COLUMNS
    ), extra


def _extras_direct(lay: EventLayout) -> tuple[list[Column], Callable]:
    names = [p.name for p in lay.data_params]
    tr_type = next(p.type for p in lay.params if p.name == "taskResponse")
    task_type = next(p.type for p in lay.params if p.name == "task")
    p_tr, p_task = names.index("taskResponse"), names.index("task")
    resp = _response_extras(tr_type)
    i_intent = _field_index(task_type, "intent")

    def extra(values: tuple, chain_id: int, out: list):
        cols, blob = resp(values[p_tr])
        out += cols
        out += intent_summary(values[p_task][i_intent])
        return blob

    return _RESPONSE_COLUMNS + _INTENT_COLUMNS, extra


def _extras_policy_set(lay: EventLayout) -> tuple[list[Column], Callable]:
    i_cfg = _field_index(lay.params[2].type, "policyConfig")

    def extra(values: tuple, chain_id: int, out: list) -> None:
        out.append(_text(values[0][i_cfg][0]))

    return [Column("params_json", "VARCHAR")], extra


def _extras_pubkey(lay: EventLayout) -> tuple[list[Column], Callable]:
    def extra(values: tuple, chain_id: int, out: list) -> None:
        out.append(operator_id(*values[0]))

    return [Column("operator_id", "VARCHAR")], extra


_EXTRAS = {
    "NewPubkeyRegistration": _extras_pubkey,
    "NewTaskCreated": _extras_new_task,
    "TaskResponded": _extras_task_responded,
    "DirectTaskResponded": _extras_direct,
    "PolicySet": _extras_policy_set,
}


# ------------------------------------------------------------------------------------------------
# Per-layout plans and per-table column unions
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutPlan:
    """Everything needed to turn one log of one layout into a row of its table."""

    layout: EventLayout
    columns: tuple[Column, ...]  # layout columns (indexed params first, then data params, then extras)
    positions: tuple[int, ...]  # where each layout column goes in the table row (after COMMON)
    topic_decoders: tuple[Callable, ...]
    data_decoder: Callable[[bytes], tuple]
    flatteners: tuple[Flat, ...]  # one per data param
    topic_flatteners: tuple[Flat, ...]
    extra: Callable | None
    policy_pos: int | None = None  # the Rego source column: stored once in `blobs` (by keccak) instead of per row
    fill: Callable | None = None  # generated: data params → row columns
    width: int = 0
    topic_positions: tuple[int, ...] = ()
    extra_positions: tuple[int, ...] = ()


def _param_column_prefix(name: str) -> str:
    col = snake(name)
    return "ev_" + col if col in _COMMON_NAMES else col


_POLICY_COLUMN = "task_response_policy_task_data_policy"
_BLOB_EVENTS = frozenset({"TaskResponded", "DirectTaskResponded"})  # their extras return (hash, text) blobs


def _build() -> tuple[dict[str, LayoutPlan], dict[str, tuple[Column, ...]]]:
    layout_cols: dict[str, tuple[list[Column], list, list, int, int, Callable | None]] = {}
    tables: dict[str, list[Column]] = {}
    for lay in LAYOUTS:
        cols: list[Column] = []
        tflat, dflat = [], []
        for p in lay.indexed:
            c, f = _flattener(p.type, _param_column_prefix(p.name))
            cols += c
            tflat.append(f)
        n_topic_cols = len(cols)
        for p in lay.data_params:
            c, f = _flattener(p.type, _param_column_prefix(p.name))
            cols += c
            dflat.append(f)
        n_param_cols = len(cols)
        extra = None
        if lay.event in _EXTRAS:
            c, extra = _EXTRAS[lay.event](lay)
            cols += c
        layout_cols[lay.topic0] = (cols, tflat, dflat, n_topic_cols, n_param_cols, extra)
        union = tables.setdefault(lay.table, list(COMMON))
        known = {c.name: c for c in union}
        for c in cols:
            if c.name in known:
                if known[c.name].sql != c.sql:
                    raise AssertionError(f"{lay.table}.{c.name}: {known[c.name].sql} vs {c.sql} across layouts")
            else:
                union.append(c)
                known[c.name] = c
    plans = {}
    for lay in LAYOUTS:
        cols, tflat, dflat, n_topic_cols, n_param_cols, extra = layout_cols[lay.topic0]
        index = {c.name: i for i, c in enumerate(tables[lay.table])}
        positions = tuple(index[c.name] for c in cols)
        # events whose extras store the Rego source in `blobs`: its column is made by _policy_column, not hexed
        special = {_POLICY_COLUMN: _policy_column} if lay.event in _BLOB_EVENTS and _POLICY_COLUMN in index else {}
        plans[lay.topic0] = LayoutPlan(
            layout=lay,
            columns=tuple(cols),
            positions=positions,
            topic_decoders=tuple(_topic_decoder(p.type) for p in lay.indexed),
            data_decoder=generated_decoder(tuple(p.type for p in lay.data_params)),
            flatteners=tuple(dflat),
            topic_flatteners=tuple(tflat),
            extra=extra,
            policy_pos=index.get(_POLICY_COLUMN),
            fill=_gen_fill([(p.name, p.type) for p in lay.data_params], index, special),
            topic_positions=positions[:n_topic_cols],
            extra_positions=positions[n_param_cols:],
            width=len(tables[lay.table]),
        )
    return plans, {t: tuple(c) for t, c in tables.items()}


PLANS, TABLES = _build()


# ------------------------------------------------------------------------------------------------
# Decoding a batch
# ------------------------------------------------------------------------------------------------


@dataclass
class DecodedBatch:
    """Rows per raw table, undecodable logs, and the (hash, time) of every block seen in the logs."""

    rows: dict[str, list[list]] = field(default_factory=dict)
    undecodable: list[tuple] = field(default_factory=list)
    blocks: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    blobs: dict[str, str] = field(default_factory=dict)  # keccak → Rego source (UTF-8) of the batch
    skipped: int = 0  # logs whose topic0 is not an event Lens knows (not stored)

    @property
    def count(self) -> int:
        """Decoded rows plus undecodable logs."""
        return sum(len(r) for r in self.rows.values()) + len(self.undecodable)


def decode_log(
    plan: LayoutPlan, log: dict, chain_id: int, block_time: int | None, block_number: int | None = None
) -> tuple[list, tuple[str, str] | None]:
    """One raw log → (table row in the table's column order, (code hash, Rego source) or None); DecodeError on bad data.

    A UTF-8 Rego source is not repeated in every row: its column is NULL and the text lives in `blobs` under
    `policy_code_hash` (= keccak256 of the exact bytes); non-UTF-8 policy bytes stay in the column as hex.
    """
    lay = plan.layout
    if block_number is None:
        block_number = int(log["blockNumber"], 16)
    topics = log["topics"]
    if len(topics) != 1 + len(plan.topic_decoders):
        raise DecodeError(f"{lay.event} expects {len(plan.topic_decoders)} indexed topics, log has {len(topics) - 1}")
    tvals: list = []
    for dec, f, t in zip(plan.topic_decoders, plan.topic_flatteners, topics[1:]):
        f(dec(t), tvals)
    values = plan.data_decoder(bytes.fromhex(log["data"][2:]))
    row = [None] * plan.width
    plan.fill(values, row)
    for pos, v in zip(plan.topic_positions, tvals):
        row[pos] = v
    blob = None
    if plan.extra is not None:
        evals: list = []
        blob = plan.extra(values, chain_id, evals)
        for pos, v in zip(plan.extra_positions, evals):
            row[pos] = v
    row[0] = chain_id
    row[1] = block_number
    row[2] = int(log["logIndex"], 16)
    row[3] = log["transactionHash"].lower()
    row[4] = block_time
    row[5] = log["address"].lower()
    row[6] = lay.topic0
    row[7] = lay.layout
    if blob is not None and plan.policy_pos is not None:
        row[plan.policy_pos] = None
    return row, blob


def block_time_of(log: dict) -> int | None:
    """The block timestamp carried by the log (geth/anvil 'blockTimestamp'), if any."""
    t = log.get("blockTimestamp")
    return int(t, 16) if t else None


def decode_logs(logs: list[dict], chain_id: int, block_times: dict[int, int] | None = None) -> DecodedBatch:
    """Decode a batch of raw logs; a known topic0 that fails to decode becomes an undecodable row, never an error."""
    out = DecodedBatch()
    block_times = block_times or {}
    for log in logs:
        if log.get("removed"):
            continue
        bn = int(log["blockNumber"], 16)
        bt = block_time_of(log)
        if bt is None:
            bt = block_times.get(bn)
        if bn not in out.blocks:
            out.blocks[bn] = (log["blockHash"].lower(), bt)
        topics = log["topics"]
        plan = PLANS.get(topics[0].lower()) if topics else None
        if plan is None:
            out.skipped += 1
            continue
        try:
            row, blob = decode_log(plan, log, chain_id, bt, bn)
        except (DecodeError, ValueError, IndexError, TypeError, KeyError, OverflowError) as e:
            out.undecodable.append(
                (
                    chain_id,
                    bn,
                    int(log["logIndex"], 16),
                    log["transactionHash"].lower(),
                    log["address"].lower(),
                    topics[0].lower(),
                    log["data"],
                    f"{type(e).__name__}: {e}",
                )
            )
            continue
        out.rows.setdefault(plan.layout.table, []).append(row)
        if blob is not None:
            out.blobs[blob[0]] = blob[1]
    return out
