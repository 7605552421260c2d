"""Counterfactuals: the smallest change of one param that flips the verdict, found by searching with the engine."""
from __future__ import annotations

import copy
import json
import time
from typing import Any, Callable, Iterator

from app.engine.evaluate import CompiledPolicy, Evaluation
from app.engine.explain import Counterfactual, _fmt, unit_of
from app.engine.model import words

UINT256_MAX = 2**256 - 1
_MAX_CANDIDATES = 400


class _Budget(Exception):
    """The time budget of the search ran out."""


def _is_uint(v: Any) -> bool:
    return isinstance(v, str) and v.isdigit() and len(v) <= 78


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
        if isinstance(v, str) and not _is_uint(v) and v in params_strings:
            continue  # list items to add come from the intent and the oracle output, not the params
        if isinstance(v, (int, float)):
            nums.update((float(v), float(v) + 1, float(v) - 1))
        elif _is_uint(v):
            uints.add(int(v))
        elif isinstance(v, str) and 0 < len(v) <= 100:
            strs.add(v)
            if v.startswith("0x") and len(v) == 42:
                strs.add(v.lower())
    small = sorted(nums)[:30]
    for i, a in enumerate(small):  # thresholds like `expires_at - checked_at <= p` sit at differences
        for b in small[i + 1:]:
            nums.update((b - a, a + b))
    base = sorted(uints)[:40]
    for i, a in enumerate(base):  # limits like a daily cap sit at sums (spent + amount)
        for b in base[i:]:
            uints.add(a + b)
    more = set()
    for u in uints:
        more.update((u - 1, u + 1))
    uints |= {u for u in more if 0 <= u <= UINT256_MAX}
    return sorted(uints)[:_MAX_CANDIDATES], sorted(nums)[:_MAX_CANDIDATES], sorted(strs)[:16]


def _number_threshold(flips: Callable[[Any], bool], cur: Any, nums: list[float]) -> tuple[Any, bool] | None:
    """(nearest flipping value, upward?) for a JSON number param: integers first, then closer fractional candidates."""
    import math

    ints = set()
    for x in nums:
        ints.update((math.floor(x), math.ceil(x)))
    c = float(cur)
    base = int(c) if c.is_integer() else None
    best: tuple[Any, bool] | None = None
    for up in (True, False):
        if base is not None:
            pts = sorted(ints) + [base + 2**k for k in range(0, 64, 4)] + [base - 2**k for k in range(0, 64, 4)] + [0]
            hit = _threshold(flips, base, pts, True, up)
        else:
            pts = list(nums) + [c + 2**k for k in range(0, 64, 4)] + [c - 2**k for k in range(0, 64, 4)] + [0.0]
            hit = _threshold(flips, c, pts, False, up)
        if hit is None:
            continue
        # a fractional value seen in the data may flip closer to the current value than the integer found
        between = sorted((x for x in nums if not float(x).is_integer() and min(c, hit) < x < max(c, hit)),
                         key=lambda x: abs(x - c))
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
    """A copy of params with params[path] = value."""
    out = copy.deepcopy(params)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _threshold(flips: Callable[[Any], bool], cur: Any, points: list, integral: bool, up: bool) -> Any | None:
    """The flipping value nearest to `cur` on one side, assuming the verdict is monotone in the param there.

    Binary search over the sorted candidate points, then bisection of the gap between the last non-flipping
    and the first flipping point (integers: exact; floats: to 1e-9 relative)."""
    pts = sorted({p for p in points if (p > cur if up else p < cur)}, reverse=not up)
    if not pts or not flips(pts[-1]):
        return None
    lo_i, hi_i = -1, len(pts) - 1  # pts[hi_i] flips; index -1 stands for cur (does not flip)
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


def search(policy: CompiledPolicy, input_json: str, params: dict, wasm: dict, ev: Evaluation, *,
           budget_ms: float = 30.0, schema: dict | None = None) -> tuple[tuple[Counterfactual, ...], str]:
    """For each numeric, wei, boolean or list param the policy reads: the nearest value that flips the verdict.

    When no single param flips it (several deny reasons), find per reason the change that removes it, and
    verify that applying those changes together flips the verdict."""
    if not isinstance(params, dict):
        return (), "params are not an object"
    deadline = time.perf_counter() + budget_ms / 1000.0
    target = not ev.allow
    wasm_json = json.dumps(wasm)
    state = {"evals": 0}

    def run(p2: dict) -> Evaluation:
        if time.perf_counter() > deadline:
            raise _Budget()
        state["evals"] += 1
        data_json = '{"params": %s, "wasm": %s, "data": %s}' % (json.dumps(p2), wasm_json, wasm_json)
        return policy.evaluate_json(input_json, data_json)

    verdict = "allowed" if target else "denied"
    note = ""
    try:
        found = _per_param(policy, input_json, params, wasm, lambda r: r.error is None and r.allow == target, run, verdict, target)
        if found or ev.allow or len(ev.deny) < 2:
            return tuple(found), "" if found else "no single param change flips the verdict"
        combined: dict[tuple[str, ...], Counterfactual] = {}
        per_reason: list[Counterfactual] = []
        for reason in ev.deny:
            hits = _per_param(policy, input_json, params, wasm, lambda r, _r=reason: r.error is None and _r not in r.deny,
                              run, f"{reason} would not apply", None, first_only=True)
            if not hits:
                return tuple(per_reason), f"no param change removes the deny reason {reason}"
            per_reason.append(hits[0])
            combined.setdefault(tuple(hits[0].param.split(".")), hits[0])
        p2 = params
        for path, cf in combined.items():
            p2 = _set_path(p2, path, _applied(cf))
        r = run(p2)
        if r.error is None and r.allow == target:
            text = f"{verdict} if " + " and ".join(c.text.split(" if ", 1)[1] for c in combined.values())
            return (Counterfactual("+".join(c.param for c in combined.values()), "combined", None,
                                   {c.param: c.value if c.kind != "list_remove" else _applied(c) for c in combined.values()},
                                   target, text), *per_reason), ""
        return tuple(per_reason), "removing each deny reason separately does not flip the verdict together"
    except _Budget:
        note = f"search stopped after its {budget_ms:.0f} ms budget ({state['evals']} evaluations); some params were not tried"
    return (), note


def _applied(cf: Counterfactual) -> Any:
    """The new param value a counterfactual stands for."""
    if cf.kind == "list_remove":
        cur = list(cf.current)
        cur.remove(cf.value)
        return cur
    if cf.kind == "list_add":
        return list(cf.current) + [cf.value]
    return cf.value


def _per_param(policy: CompiledPolicy, input_json: str, params: dict, wasm: dict, goal: Callable[[Evaluation], bool],
               run: Callable[[dict], Evaluation], verdict: str, target: bool | None,
               first_only: bool = False) -> list[Counterfactual]:
    """For each param the policy reads, the nearest single-param change reaching `goal` (verified by evaluation)."""
    input_doc = json.loads(input_json)
    unit = unit_of(input_doc)
    used = words(policy.source)
    uints, nums, strs = _candidates(input_doc, params, wasm)

    def flips_with(p2: dict) -> bool:
        return goal(run(p2))

    out: list[Counterfactual] = []
    paths: list[tuple[str, ...]] = []
    for key, value in params.items():
        if isinstance(value, dict):
            paths.extend((key, sub) for sub in value if sub in used)
        elif key in used:
            paths.append((key,))
    def rank(path: tuple[str, ...]) -> int:
        value = params
        for k in path:
            value = value[k]
        return 1 if isinstance(value, list) else 0  # lists cost one evaluation per item: try them last

    paths.sort(key=rank)
    if True:
        for path in paths:
            if first_only and out:
                break
            name = ".".join(path)
            cur: Any = params
            for k in path:
                cur = cur[k]

            def flips(v: Any, _path=path) -> bool:
                return flips_with(_set_path(params, _path, v))

            if isinstance(cur, bool):
                if flips(not cur):
                    out.append(Counterfactual(name, "bool", cur, not cur, target, f"{verdict} if {name} were {str(not cur).lower()}"))
            elif isinstance(cur, (int, float)):
                v_up = _number_threshold(flips, cur, nums)
                if v_up is not None:
                    v, up = v_up
                    rel = "at least" if up else "at most"
                    out.append(Counterfactual(name, "number", cur, v, target, f"{verdict} if {name} were {rel} {_fmt(v)} (now {_fmt(cur)})"))
            elif _is_uint(cur):
                c = int(cur)
                pts = uints + [min(UINT256_MAX, c + 2**k) for k in range(0, 257, 8)] + [max(0, c - 2**k) for k in range(0, 257, 8)] + [0]

                def flips_int(v: int, _f=flips) -> bool:
                    return _f(str(v))

                best = None
                for up in (True, False):
                    hit = _threshold(flips_int, c, pts, True, up)
                    if hit is not None and (best is None or abs(hit - c) < abs(best[0] - c)):
                        best = (hit, up)
                if best:
                    v, up = best
                    rel = "at least" if up else "at most"
                    out.append(Counterfactual(name, "wei", cur, str(v), target,
                                              f"{verdict} if {name} were {rel} {_fmt(str(v), name, unit)} (now {_fmt(cur, name, unit)})"))
            elif isinstance(cur, list):
                found = 0
                for i, item in enumerate(cur[:30]):
                    if flips(cur[:i] + cur[i + 1 :]):
                        out.append(Counterfactual(name, "list_remove", cur, item, target, f"{verdict} if {json.dumps(item)} were removed from {name}"))
                        found += 1
                        break
                present = {json.dumps(x) for x in cur}
                shapes = {_shape(x) for x in cur if isinstance(x, str)}
                for s in strs[:8]:
                    if (shapes and _shape(s) not in shapes) or _shape(s) == "hex" or (not cur and target is False):
                        continue  # look-alike items only; adding to an empty allow-list trivially denies
                    if found >= 2:
                        break
                    if json.dumps(s) in present:
                        continue
                    if flips(cur + [s]):
                        out.append(Counterfactual(name, "list_add", cur, s, target, f"{verdict} if {json.dumps(s)} were added to {name}"))
                        found += 1
    return out
