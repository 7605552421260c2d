"""Counterfactuals: the smallest change of one param that flips the verdict, found by searching with the engine."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from app.engine.evaluate import CompiledPolicy, Evaluation
from app.engine.model import words
from app.engine.values import MAX_UINT256, fmt_value, is_uint, unit_of

_MAX_CANDIDATES = 400
MAX_EVALS = 64  # evaluations per search: bounds the cost deterministically (the wall-clock budget is only a backstop)
_SEED_PIVOTS = 6  # guessed pivots per direction before plain bisection
_LIST_REMOVALS = 4  # removals tried per list beyond the items the intent or oracle output mention
_LIST_ADDS = 4  # additions tried per list


@dataclass(frozen=True)
class Counterfactual:
    """The smallest change of one param that flips the verdict, verified by evaluating it."""

    param: str
    kind: str  # 'number' | 'wei' | 'bool' | 'list_add' | 'list_remove'
    current: Any
    value: Any
    flips_to: bool | None  # None: a per-reason change, which removes one deny reason but does not flip alone
    text: str
    applied: Any = None  # the param's whole value with the change applied (combined: param → whole value)
    removes: str = ""  # for a per-reason change: the deny reason it removes


class _Budget(Exception):
    """The search ran out of its evaluation or time budget."""


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _walk(obj: Any) -> Iterator[Any]:
    """Every scalar inside a JSON value."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)
    else:
        yield obj


def _candidates(input: dict, params: dict, wasm: dict) -> tuple[list[int], list[float], list[str]]:
    """Values seen in the input, params and oracle output: wei ints (with pairwise sums), numbers, strings."""
    params_strings = {v for v in _walk(params) if isinstance(v, str)}
    uints: set[int] = set()
    nums: set[float] = set()
    strs: set[str] = set()
    for v in list(_walk(input)) + list(_walk(wasm)) + list(_walk(params)):
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, str) and not is_uint(v) and v in params_strings:
            continue  # list items to add come from the intent and the oracle output, not the params
        if isinstance(v, (int, float)):
            nums.update((float(v), float(v) + 1, float(v) - 1))
        elif is_uint(v):
            uints.add(int(v))
        elif isinstance(v, str) and 0 < len(v) <= 100:
            strs.add(v)
            if v.startswith("0x") and len(v) == 42:
                strs.add(v.lower())
    small = sorted(nums)[:30]
    for i, a in enumerate(small):  # thresholds like `expires_at - checked_at <= p` sit at differences
        for b in small[i + 1 :]:
            nums.update((b - a, a + b))
    base = sorted(uints)[:40]
    for i, a in enumerate(base):  # limits like a daily cap sit at sums (spent + amount)
        for b in base[i:]:
            uints.add(a + b)
    more = set()
    for u in uints:
        more.update((u - 1, u + 1))
    uints |= {u for u in more if 0 <= u <= MAX_UINT256}
    return sorted(uints)[:_MAX_CANDIDATES], sorted(nums)[:_MAX_CANDIDATES], sorted(strs)[:16]


def _raw_seeds(input: dict, wasm: dict) -> tuple[list[int], list[float]]:
    """Likely thresholds: the intent's and oracle's own numbers, with pairwise sums (wei) and differences (numbers)."""
    uints, nums = [], []
    for v in list(_walk(input)) + list(_walk(wasm)):
        if is_uint(v) and len(uints) < 12:
            uints.append(int(v))
        elif _is_num(v) and len(nums) < 12:
            nums.append(float(v))
    u_more = [a + b for i, a in enumerate(uints) for b in uints[i + 1 :]]
    n_more = [x for i, a in enumerate(nums) for b in nums[i + 1 :] for x in (abs(b - a), a + b)]
    return uints + u_more, nums + n_more


def _hint_seeds(hints: Iterable[tuple[str, tuple]], name: str) -> list[Any]:
    """Values compared with the param in the failed conditions that mention it (from the explanation's probes)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    out: list[Any] = []
    for text, terms in hints:
        if not word.search(text):
            continue
        others = [v for t, v in terms if not word.search(t) and (is_uint(v) or _is_num(v))]
        wei = [int(v) for v in others if is_uint(v)]
        if len(wei) >= 2:
            out.append(sum(wei))  # `a + b <= limit` style conditions: the sum first
        out.extend(others)
    return out


def _hint_strings(hints: Iterable[tuple[str, tuple]], name: str) -> list[str]:
    """Strings compared with a list param in the failed conditions that mention it (`not fname in t.allowed_functions`
    → "swap"): the items whose addition is most likely to flip the verdict, tried before any other."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    out: list[str] = []
    for text, terms in hints:
        if not word.search(text):
            continue
        for t, v in terms:
            if not word.search(t) and isinstance(v, str) and v not in out:
                out.append(v)
    return out


def _number_threshold(
    flips: Callable[[Any], bool], cur: Any, nums: list[float], seeds: list[float]
) -> tuple[Any, bool] | None:
    """(nearest flipping value, upward?) for a JSON number param: integers first, then closer fractional candidates."""
    ints = set()
    for x in nums:
        ints.update((math.floor(x), math.ceil(x)))
    c = float(cur)
    base = int(c) if c.is_integer() else None
    pivots: list[Any] = []
    for s in seeds:
        if base is not None:
            lo, hi = math.floor(s), math.ceil(s)
            pivots.extend(dict.fromkeys((lo, hi, lo - 1, hi + 1)))
        else:
            pivots.append(s)
    best: tuple[Any, bool] | None = None
    for up in (True, False):
        if base is not None:
            pts = sorted(ints) + [base + 2**k for k in range(0, 64, 4)] + [base - 2**k for k in range(0, 64, 4)] + [0]
            hit = _threshold(flips, base, pts, True, up, pivots)
        else:
            pts = list(nums) + [c + 2**k for k in range(0, 64, 4)] + [c - 2**k for k in range(0, 64, 4)] + [0.0]
            hit = _threshold(flips, c, pts, False, up, pivots)
        if hit is None:
            continue
        if base is not None:
            # hit ∓ 1 does not flip (integer search is exact): a closer flipping value can only be a fraction in between
            edge = hit - 1 if up else hit + 1
            between = sorted(
                (x for x in nums if not float(x).is_integer() and min(edge, hit) < x < max(edge, hit)),
                key=lambda x: abs(x - c),
            )
            for x in between[:4]:
                if flips(x):
                    hit = x
                    break
        if best is None or abs(hit - c) < abs(best[0] - c):
            best = (hit, up)
    return best


def _shape(s: str) -> str:
    """A coarse kind of string, so list candidates look like the list's items (addresses with addresses…)."""
    if s.startswith("0x"):
        return "address" if len(s) == 42 else "hex"
    return "upper" if s.isupper() else "word"


def _set_path(params: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of params with params[path] = value (only the dicts along the path are copied; the rest is shared)."""
    out = dict(params)
    node = out
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = value
    return out


def _threshold(
    flips: Callable[[Any], bool], cur: Any, points: list, integral: bool, up: bool, seeds: Iterable[Any] = ()
) -> Any | None:
    """The flipping value nearest to `cur` on one side, assuming the verdict is monotone in the param there.

    Search over the sorted candidate points for the first one that flips: the seeds (likely thresholds and their
    neighbours) are tried as pivots first, usually closing the search in two evaluations, then bisection; then
    bisection of the gap between the last non-flipping and the first flipping point (integers: exact; floats: to
    1e-9 relative)."""
    side = [p for p in seeds if (p > cur if up else p < cur)]
    pts = sorted({p for p in points if (p > cur if up else p < cur)} | set(side), reverse=not up)
    if not pts or not flips(pts[-1]):
        return None
    lo_i, hi_i = -1, len(pts) - 1  # pts[hi_i] flips; index -1 stands for cur (does not flip)
    index = {p: i for i, p in enumerate(pts)}
    tried = 0
    for s in side:
        if hi_i - lo_i <= 1 or tried >= _SEED_PIVOTS:
            break
        i = index[s]
        if not lo_i < i < hi_i:
            continue
        tried += 1
        if flips(pts[i]):
            hi_i = i
        else:
            lo_i = i
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        if flips(pts[mid]):
            hi_i = mid
        else:
            lo_i = mid
    good = pts[hi_i]
    bad = cur if lo_i < 0 else pts[lo_i]
    for _ in range(300):
        if integral:
            if abs(good - bad) <= 1:
                break
            mid = (good + bad) // 2
        else:
            if abs(good - bad) <= 1e-9 * max(1.0, abs(good)):
                break
            mid = (good + bad) / 2
        if flips(mid):
            good = mid
        else:
            bad = mid
    return good


def _words_of(policy: CompiledPolicy) -> set[str]:
    """The identifiers of a policy's source, computed once per compiled policy (kept on it, like its model)."""
    found = getattr(policy, "_lens_words", None)
    if found is None:
        found = policy._lens_words = words(policy.source)
    return found


def search(
    policy: CompiledPolicy,
    input_json: str,
    params: dict,
    wasm: dict,
    ev: Evaluation,
    *,
    budget_ms: float = 30.0,
    schema: dict | None = None,
    max_evals: int = MAX_EVALS,
    hints: Iterable[tuple[str, tuple]] = (),
    symbols: dict[str, str] | None = None,
    prefer: Iterable[str] = (),
) -> tuple[tuple[Counterfactual, ...], str]:
    """For each numeric, wei, boolean or list param the policy reads: the nearest value that flips the verdict.

    When no single param flips it (several deny reasons), find per reason the change that removes it, and
    verify that applying those changes together flips the verdict. `hints` are (condition text, ((term, value), …))
    of the failed conditions: the values compared with a param are tried first. At most `max_evals` evaluations."""
    if not isinstance(params, dict):
        return (), "params are not an object"
    deadline = time.perf_counter() + budget_ms / 1000.0
    target = not ev.allow
    wasm_json = json.dumps(wasm)
    state = {"evals": 0}
    memo: dict[str, Evaluation] = {}
    hints = list(hints)
    prefer = [p for p in prefer if isinstance(p, str)]

    def run(p2: dict) -> Evaluation:
        params_json = json.dumps(p2)
        hit = memo.get(params_json)
        if hit is not None:
            return hit
        if state["evals"] >= max_evals or time.perf_counter() > deadline:
            raise _Budget()
        state["evals"] += 1
        data_json = f'{{"params": {params_json}, "wasm": {wasm_json}, "data": {wasm_json}}}'
        memo[params_json] = out = policy.evaluate_json(input_json, data_json)
        return out

    verdict = "allowed" if target else "denied"
    found: list[Counterfactual] = []
    per_reason: list[Counterfactual] = []
    try:
        _per_param(
            policy,
            input_json,
            params,
            wasm,
            lambda r: r.error is None and r.allow == target,
            run,
            verdict,
            target,
            found,
            hints,
            symbols=symbols,
            prefer=prefer,
        )
        if found or ev.allow or len(ev.deny) < 2:
            return tuple(found), "" if found else "no single param change flips the verdict"
        combined: dict[tuple[str, ...], Counterfactual] = {}
        for reason in ev.deny:
            hits: list[Counterfactual] = []
            _per_param(
                policy,
                input_json,
                params,
                wasm,
                lambda r, _r=reason: r.error is None and _r not in r.deny,
                run,
                f"{reason} would not apply",
                None,
                hits,
                hints,
                first_only=True,
                symbols=symbols,
                prefer=prefer,
            )
            if not hits:
                return tuple(per_reason), f"no param change removes the deny reason {reason}"
            per_reason.append(replace(hits[0], removes=reason))
            combined.setdefault(tuple(hits[0].param.split(".")), hits[0])
        p2 = params
        for path, cf in combined.items():
            p2 = _set_path(p2, path, _applied(cf))
        r = run(p2)
        if r.error is None and r.allow == target:
            text = f"{verdict} if " + " and ".join(c.text.split(" if ", 1)[1] for c in combined.values())
            whole = {c.param: _applied(c) for c in combined.values()}
            return (
                Counterfactual(
                    "+".join(c.param for c in combined.values()),
                    "combined",
                    {c.param: c.current for c in combined.values()},
                    whole,
                    target,
                    text,
                    whole,
                ),
                *per_reason,
            ), ""
        return tuple(per_reason), "removing each deny reason separately does not flip the verdict together"
    except _Budget:
        limit = f"{max_evals} evaluations" if state["evals"] >= max_evals else f"{budget_ms:.0f} ms"
        note = f"search stopped at its budget of {limit} ({state['evals']} evaluations); some params were not tried"
    return tuple(found) + tuple(per_reason), note


def _applied(cf: Counterfactual) -> Any:
    """The new param value a counterfactual stands for."""
    if cf.kind == "list_remove":
        cur = list(cf.current)
        cur.remove(cf.value)
        return cur
    if cf.kind == "list_add":
        return list(cf.current) + [cf.value]
    return cf.value


def _norm(x: Any) -> str:
    """A value as compared loosely with the intent's and oracle's values (strings case-insensitively)."""
    return x.lower() if isinstance(x, str) else json.dumps(x, sort_keys=True)


def _per_param(
    policy: CompiledPolicy,
    input_json: str,
    params: dict,
    wasm: dict,
    goal: Callable[[Evaluation], bool],
    run: Callable[[dict], Evaluation],
    verdict: str,
    target: bool | None,
    out: list[Counterfactual],
    hints: list[tuple[str, tuple]],
    first_only: bool = False,
    symbols: dict[str, str] | None = None,
    prefer: list[str] | None = None,
) -> None:
    """For each param the policy reads, append to `out` the nearest single-param change reaching `goal` (verified)."""
    input_doc = json.loads(input_json)
    unit = unit_of(input_doc, symbols)
    used = _words_of(policy)
    uints, nums, strs = _candidates(input_doc, params, wasm)
    raw_uints, raw_nums = _raw_seeds(input_doc, wasm)
    mentioned = {_norm(v) for v in list(_walk(input_doc)) + list(_walk(wasm)) if v is not None}

    paths: list[tuple[str, ...]] = []
    for key, value in params.items():
        if isinstance(value, dict):
            paths.extend((key, sub) for sub in value if sub in used)
        elif key in used:
            paths.append((key,))

    def value_at(path: tuple[str, ...]) -> Any:
        value: Any = params
        for k in path:
            value = value[k]
        return value

    paths.sort(key=lambda p: 1 if isinstance(value_at(p), list) else 0)  # lists cost one evaluation per item: last
    start = len(out)
    for path in paths:
        if first_only and len(out) > start:
            break
        name = ".".join(path)
        cur = value_at(path)

        def flips(v: Any, _path=path) -> bool:
            return goal(run(_set_path(params, _path, v)))

        hinted = _hint_seeds(hints, path[-1])
        if isinstance(cur, bool):
            if flips(not cur):
                out.append(
                    Counterfactual(
                        name, "bool", cur, not cur, target, f"{verdict} if {name} were {str(not cur).lower()}"
                    )
                )
        elif _is_num(cur):
            c = float(cur)
            seeds = [float(h) for h in hinted if _is_num(h)] + sorted(raw_nums, key=lambda x: abs(x - c))
            v_up = _number_threshold(flips, cur, nums, seeds)
            if v_up is not None:
                v, up = v_up
                rel = "at least" if up else "at most"
                out.append(
                    Counterfactual(
                        name,
                        "number",
                        cur,
                        v,
                        target,
                        f"{verdict} if {name} were {rel} {fmt_value(v, name)} (now {fmt_value(cur, name)})",
                    )
                )
        elif is_uint(cur):
            c = int(cur)
            pts = (
                uints
                + [min(MAX_UINT256, c + 2**k) for k in range(0, 257, 8)]
                + [max(0, c - 2**k) for k in range(0, 257, 8)]
                + [0]
            )
            guesses = [int(h) for h in hinted if is_uint(h) or isinstance(h, int)] + sorted(
                raw_uints, key=lambda x: abs(x - c)
            )
            pivots = [x for g in guesses for x in (g, g - 1, g + 1) if 0 <= x <= MAX_UINT256]

            def flips_int(v: int, _f=flips) -> bool:
                return _f(str(v))

            best = None
            for up in (True, False):
                hit = _threshold(flips_int, c, pts, True, up, pivots)
                if hit is not None and (best is None or abs(hit - c) < abs(best[0] - c)):
                    best = (hit, up)
            if best:
                v, up = best
                rel = "at least" if up else "at most"
                out.append(
                    Counterfactual(
                        name,
                        "wei",
                        cur,
                        str(v),
                        target,
                        f"{verdict} if {name} were {rel} {fmt_value(str(v), name, unit)} (now {fmt_value(cur, name, unit)})",
                    )
                )
        elif isinstance(cur, list):
            # items first that the failed conditions compare with this list, then the policy's own string values
            # (`fname` = "swap", `country` = "AR": what a policy looks up in a list), then the intent's strings
            first = _hint_strings(hints, path[-1]) + [p for p in prefer or () if 0 < len(p) <= 100]
            first = list(dict.fromkeys(first))
            ordered = first + [x for x in strs if x not in first]
            _list_changes(name, cur, flips, ordered, mentioned, verdict, target, out)
    for i in range(start, len(out)):  # every change carries the param's whole resulting value, ready to apply
        if out[i].applied is None:
            out[i] = replace(out[i], applied=_applied(out[i]))


def _list_changes(
    name: str,
    cur: list,
    flips: Callable[[Any], bool],
    strs: list[str],
    mentioned: set[str],
    verdict: str,
    target: bool | None,
    out: list[Counterfactual],
) -> None:
    """One item whose removal flips the verdict, else up to two look-alike items whose addition does.

    Items the intent or oracle output mention are tried first (they are the ones a policy matches); a list whose
    removal flips the verdict is not also tried with additions (a list works one way: allow- or block-list)."""
    items = list(enumerate(cur[:30]))
    related = [(i, x) for i, x in items if _norm(x) in mentioned]
    others = [(i, x) for i, x in items if _norm(x) not in mentioned][:_LIST_REMOVALS]
    found = tried = 0
    for i, item in related + others:
        if flips(cur[:i] + cur[i + 1 :]):
            out.append(
                Counterfactual(
                    name, "list_remove", cur, item, target, f"{verdict} if {json.dumps(item)} were removed from {name}"
                )
            )
            if len(cur) > 1:
                return
            found = 1  # emptying the list may switch a rule off (an empty allow-list allows all): still try additions
            break
    present = {json.dumps(x) for x in cur}
    shapes = {_shape(x) for x in cur if isinstance(x, str)}
    for s in strs[:24]:  # only look-alike items are tried, at most _LIST_ADDS of them
        if (shapes and _shape(s) not in shapes) or _shape(s) == "hex" or (not cur and target is False):
            continue  # look-alike items only; adding to an empty allow-list trivially denies
        if found >= 2 or tried >= _LIST_ADDS:
            break
        if json.dumps(s) in present:
            continue
        tried += 1
        if flips(cur + [s]):
            out.append(
                Counterfactual(name, "list_add", cur, s, target, f"{verdict} if {json.dumps(s)} were added to {name}")
            )
            found += 1
