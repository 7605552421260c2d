"""Diversity queries: operators by country, continent, provider, ASN, organisation and client version (observed from the
socket's IP where possible, else declared), HHI, quorum Nakamoto coefficient, hidden shared dependencies, what-if."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from app import geo
from app.errors import LensError
from app.queries.base import Con, query, query_rows, table_names
from app.text import is_null

DIMENSIONS = ("country", "continent", "provider", "asn", "organisation", "client_version")
# how a sentence names several entities of a dimension (singular, plural)
NOUNS = {
    "country": ("country", "countries"),
    "continent": ("continent", "continents"),
    "provider": ("cloud provider", "cloud providers"),
    "asn": ("network", "networks"),
    "organisation": ("organisation", "organisations"),
    "client_version": ("client version", "client versions"),
    "operator": ("operator", "operators"),
}
UNKNOWN = "unknown"
DEFAULT_QUORUM_PCT = 67  # Newton's gateway threshold; used only while no indexed task carries its own

OPERATORS_SQL = """
SELECT operator, operator_id, name, organisation, socket, stake, stake_num, country, city, latitude, longitude,
       provider, region, asn, client_version
FROM operators
WHERE registered_block IS NOT NULL AND deregistered_block IS NULL
ORDER BY operator
"""
QUORUM_SQL = """
SELECT quorum_threshold_pct FROM tasks WHERE quorum_threshold_pct IS NOT NULL
ORDER BY created_block DESC NULLS LAST LIMIT 1
"""


def quorum_threshold(con: Con) -> tuple[int, str]:
    """(quorumThresholdPercentage, where it comes from): the newest task's, else Newton's default of 67."""
    if "tasks" in table_names(con):
        rows = query_rows(con, QUORUM_SQL)
        if rows and rows[0][0] is not None:
            return int(rows[0][0]), "the newest task's quorumThresholdPercentage"
    return DEFAULT_QUORUM_PCT, "Newton's default (no indexed task carries a threshold yet)"


def _text(v: Any) -> str:
    return "" if is_null(v) else str(v).strip()


def diversity_operators(con: Con, resolve: geo.ResolveOptions = geo.NO_RESOLUTION) -> pd.DataFrame:
    """The registered operators with declared and observed location, and the value used per dimension (+ its source)."""
    cols = [
        "operator",
        "name",
        "stake",
        "stake_wei",
        "stake_share",
        "socket",
        "ip",
        "observed_state",
        "observed_detail",
    ]
    if "operators" not in table_names(con):
        return pd.DataFrame(columns=cols)
    ops = query(con, OPERATORS_SQL)
    resolve = geo.prefetch([_text(x) for x in ops["socket"]], resolve)  # every hostname at once, one time limit
    rows = []
    for r in ops.to_dict("records"):
        wei = _wei(r["stake"], r["stake_num"])
        stake = wei / 1e18
        if wei <= 0:
            continue  # no stake, no signing power
        declared = {k: _text(r[k]) for k in ("country", "city", "provider", "region", "asn", "organisation")}
        obs = geo.locate(_text(r["socket"]), resolve)
        row: dict[str, Any] = {
            "operator": r["operator"],
            "name": _text(r["name"]) or f"{str(r['operator'])[:6]}…{str(r['operator'])[-4:]}",
            "stake": stake,
            "stake_wei": str(wei),  # exact: the sums below are made of these, not of the float
            "socket": _text(r["socket"]),
            "ip": obs.ip,
            "observed_state": obs.state,
            "observed_detail": obs.detail,
            "observed_country": obs.country,
            "observed_asn": obs.network,
            "observed_provider": obs.provider,
            "declared_country": declared["country"].upper(),
            "declared_city": declared["city"],
            "declared_provider": geo.canonical_provider(declared["provider"]),
            "declared_region": declared["region"],
            "declared_asn": declared["asn"],
            "disagrees": ", ".join(geo.disagreements(declared, obs)),
            "disagreement": geo.disagreement_sentence(declared, obs),
        }
        # country, continent, provider, asn: observed when the IP says, else declared
        if obs.located:
            row["country"], row["country_source"] = obs.country, "observed"
        elif declared["country"]:
            row["country"], row["country_source"] = declared["country"].upper(), "declared"
        else:
            row["country"], row["country_source"] = UNKNOWN, "unknown"
        row["continent"] = geo.continent(row["country"]) or UNKNOWN
        row["continent_source"] = row["country_source"] if row["continent"] != UNKNOWN else "unknown"
        if obs.located and obs.provider:
            row["provider"], row["provider_source"] = obs.provider, "observed"
        elif row["declared_provider"]:
            row["provider"], row["provider_source"] = row["declared_provider"], "declared"
        else:
            row["provider"], row["provider_source"] = UNKNOWN, "unknown"
        d_asn = geo.asn_number(declared["asn"])
        if obs.located and (obs.asn or obs.asn_name):
            row["asn"], row["asn_source"] = obs.asn or obs.asn_name, "observed"
        elif d_asn or declared["asn"]:
            row["asn"], row["asn_source"] = d_asn or declared["asn"], "declared"
        else:
            row["asn"], row["asn_source"] = UNKNOWN, "unknown"
        # an operator with no declared organisation is, at least, its own
        row["organisation"] = declared["organisation"] or row["name"]
        row["organisation_source"] = "declared" if declared["organisation"] else "operator itself"
        row["client_version"] = _text(r["client_version"]) or UNKNOWN
        row["client_version_source"] = "declared" if _text(r["client_version"]) else "unknown"
        lat, lon, where = _map_point(r, obs, row["declared_country"])
        row.update(lat=lat, lon=lon, map_point=where)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["stake_share"] = df["stake"] / df["stake"].sum()
    return df.sort_values(["stake", "operator"], ascending=[False, True]).reset_index(drop=True)


def _map_point(r: dict, obs: geo.Observed, declared_country: str) -> tuple[float | None, float | None, str]:
    """Where the map draws the operator: its declared coordinates when the IP agrees on the country (or says
    nothing), else the centre of the country its IP is in."""
    lat, lon = r.get("latitude"), r.get("longitude")
    has_declared = not is_null(lat) and not is_null(lon)
    if obs.located and (obs.country != declared_country or not has_declared):
        c = geo.centroid(obs.country)
        if c:
            return c[0], c[1], f"centre of {obs.country} (observed)"
    if has_declared:
        return float(lat), float(lon), "declared coordinates"
    c = geo.centroid(declared_country)
    if c:
        return c[0], c[1], f"centre of {declared_country} (declared)"
    return None, None, "unknown"


# ---------------------------------------------------------------------------------------------
# Concentration


def hhi(shares: Iterable[float]) -> float:
    """Herfindahl–Hirschman index: the sum of squared shares (1 = one entity holds everything)."""
    return float(sum(float(s) ** 2 for s in shares))


def nakamoto(shares: Sequence[float], quorum_pct: float) -> int:
    """The quorum Nakamoto coefficient: the fewest entities whose removal leaves under `quorum_pct` % of the stake
    (largest first is optimal). 0 when the stake is already short of quorum."""
    ordered = sorted((float(s) for s in shares), reverse=True)
    total = sum(ordered)
    if total <= 0:
        return 0
    remaining = total
    for k, s in enumerate([0.0, *ordered]):
        remaining -= s
        if remaining * 100 < total * quorum_pct:
            return k
    return len(ordered)


@dataclass(frozen=True)
class Dimension:
    """One dimension's concentration: its entities (name, operators, stake, stake_share), HHI and Nakamoto coefficient."""

    name: str
    entities: pd.DataFrame
    hhi: float
    nakamoto: int
    nakamoto_entities: tuple[str, ...]
    sources: dict[str, int]  # how many operators' values were observed / declared / unknown
    sentence: str

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {
            "entities": [
                {"name": str(e["name"]), "operators": int(e["operators"]), "stake_share": float(e["stake_share"])}
                for e in self.entities.to_dict("records")
            ],
            "hhi": self.hhi,
            "nakamoto": self.nakamoto,
            "nakamoto_entities": list(self.nakamoto_entities),
            "sources": self.sources,
            "sentence": self.sentence,
        }


def concentration(ops: pd.DataFrame, dim: str, quorum_pct: float) -> Dimension:
    """Entities of one dimension by stake, with HHI and the quorum Nakamoto coefficient said in words."""
    if ops.empty:
        ent = pd.DataFrame(columns=["name", "operators", "stake", "stake_share"])
        return Dimension(dim, ent, 0.0, 0, (), {}, "No registered operator holds stake.")
    ent = (
        ops.groupby(dim, dropna=False)
        .agg(operators=("operator", "count"), stake=("stake", "sum"))
        .reset_index()
        .rename(columns={dim: "name"})
    )
    total = float(ent["stake"].sum())
    ent["stake_share"] = ent["stake"] / total
    ent = ent.sort_values(["stake", "name"], ascending=[False, True]).reset_index(drop=True)
    k = nakamoto(ent["stake_share"].tolist(), quorum_pct)
    names = tuple(str(n) for n in ent["name"].head(k))
    src_col = f"{dim}_source"
    sources = ops[src_col].value_counts().to_dict() if src_col in ops else {}
    return Dimension(
        dim,
        ent,
        hhi(ent["stake_share"]),
        k,
        names,
        {str(a): int(b) for a, b in sources.items()},
        nakamoto_sentence(dim, k, names, len(ent)),
    )


def nakamoto_sentence(dim: str, k: int, names: Sequence[str], n_entities: int) -> str:
    """'2 cloud providers (AWS, Hetzner) can stop the network from reaching quorum.'"""
    one, many = NOUNS.get(dim, (dim, dim + "s"))
    if k == 0:
        return "The registered stake is already short of quorum."
    listed = ", ".join(names)
    if k == 1:
        return f"1 {one} ({listed}) can stop the network from reaching quorum."
    of = " — all of them" if k == n_entities else ""
    return f"{k} {many} ({listed}) can stop the network from reaching quorum{of}."


# ---------------------------------------------------------------------------------------------
# Hidden shared dependencies

# (shared dimension, the dimension on which the operators look diverse, what the finding calls it)
SHARED_PAIRS = (
    ("provider", "declared_region", "different regions, one provider"),
    ("provider", "country", "different countries, one provider"),
    ("organisation", "name", "different names, one organisation"),
    ("asn", "country", "different countries, one network (ASN)"),
)


@dataclass(frozen=True)
class SharedDependency:
    """Operators that look diverse on one dimension but share another."""

    kind: str
    shared: str  # dimension they share
    value: str  # the shared value
    diverse: str  # dimension on which they differ
    values: tuple[str, ...]
    operators: tuple[str, ...]  # names
    stake_share: float
    stops_quorum: bool  # whether this group alone holds enough stake to stop quorum
    sentence: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "kind": self.kind,
            "shared": self.shared,
            "value": self.value,
            "diverse": self.diverse,
            "values": list(self.values),
            "operators": list(self.operators),
            "stake_share": self.stake_share,
            "stops_quorum": self.stops_quorum,
            "sentence": self.sentence,
        }


def shared_dependencies(ops: pd.DataFrame, quorum_pct: float) -> list[SharedDependency]:
    """Groups of operators that differ on one dimension (region, country, name) but share another (provider,
    organisation, ASN), largest stake first."""
    out: list[SharedDependency] = []
    seen: set[tuple] = set()
    if ops.empty:
        return out
    for shared, diverse, kind in SHARED_PAIRS:
        for value, grp in ops.groupby(shared):
            if str(value) == UNKNOWN or len(grp) < 2:
                continue
            values = tuple(sorted({str(v) for v in grp[diverse] if str(v) and str(v) != UNKNOWN}))
            if len(values) < 2:
                continue
            share = float(grp["stake_share"].sum())
            stops = (1.0 - share) * 100 < quorum_pct
            names = tuple(grp["name"].astype(str))
            key = (shared, str(value), frozenset(names))
            if key in seen:  # the same group already found looking diverse on another dimension
                continue
            seen.add(key)
            noun = NOUNS[shared][0]
            if diverse == "name":
                lead = f"{len(grp)} operators under different names ({', '.join(values)}) are one {noun}"
            else:
                label = {"declared_region": "regions", "country": "countries"}[diverse]
                lead = f"{len(grp)} operators in {len(values)} {label} ({', '.join(values)}) share one {noun}"
            sentence = f"{lead}: {value} — {share:.0%} of the stake" + (
                ", enough to stop quorum on its own." if stops else "."
            )
            out.append(SharedDependency(kind, shared, str(value), diverse, values, names, share, stops, sentence))
    return sorted(out, key=lambda d: (-d.stake_share, d.kind, d.value))


# ---------------------------------------------------------------------------------------------
# Failure-domain what-if

FAIL_KEYS = (*DIMENSIONS, "operator")

PAST_SQL = """
WITH per AS (
  SELECT ts.task_id, sum(coalesce(ts.stake_num, 0)) AS total,
         sum(coalesce(ts.stake_num, 0)) FILTER (WHERE ts.signed) AS signed,
         sum(coalesce(ts.stake_num, 0)) FILTER (WHERE ts.signed AND list_contains($ops, lower(ts.operator))) AS lost,
         any_value(t.quorum_threshold_pct) AS q
  FROM task_signers ts JOIN tasks t ON t.chain_id = ts.chain_id AND t.task_id = ts.task_id
  GROUP BY ts.task_id
)
SELECT count(*) AS tasks,
       count(*) FILTER (WHERE (coalesce(signed, 0) - coalesce(lost, 0)) * 100 < total * coalesce(q, $q)) AS would_fail
FROM per
"""


@dataclass(frozen=True)
class WhatIf:
    """What failing some operators would do: now (quorum holds?) and to the past (tasks that would have failed)."""

    fail: tuple[tuple[str, str], ...]
    failed_operators: tuple[str, ...]  # names
    failed_stake_share: float
    remaining_stake_share: float
    quorum_threshold_pct: int
    quorum_holds: bool
    past_tasks: int
    past_would_fail: int
    unmatched: tuple[str, ...]  # fail terms that matched no operator

    @property
    def past_fail_share(self) -> float | None:
        """Share of past tasks that would not have reached quorum (None without tasks)."""
        return self.past_would_fail / self.past_tasks if self.past_tasks else None

    def sentence(self) -> str:
        """One sentence summing it up."""
        what = ", ".join(f"{k}={v}" for k, v in self.fail) or "nothing"
        holds = "quorum still holds" if self.quorum_holds else "quorum is LOST"
        past = (
            f"{self.past_would_fail:,} of {self.past_tasks:,} past tasks ({self.past_fail_share:.1%}) would have failed"
            if self.past_tasks
            else "no past tasks to replay"
        )
        return (
            f"Failing {what} takes out {len(self.failed_operators)} operators ({self.failed_stake_share:.1%} of the "
            f"stake): {self.remaining_stake_share:.1%} remains against a {self.quorum_threshold_pct}% threshold, "
            f"{holds}; {past}."
        )

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {
            "fail": [{"dimension": k, "value": v} for k, v in self.fail],
            "failed_operators": list(self.failed_operators),
            "failed_stake_share": self.failed_stake_share,
            "remaining_stake_share": self.remaining_stake_share,
            "quorum_threshold_pct": self.quorum_threshold_pct,
            "quorum_holds": self.quorum_holds,
            "past_tasks": self.past_tasks,
            "past_would_fail": self.past_would_fail,
            "past_fail_share": self.past_fail_share,
            "unmatched": list(self.unmatched),
            "sentence": self.sentence(),
        }


def parse_fail(terms: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`provider=AWS` terms → ((dimension, value), …); LensError naming a bad term."""
    out = []
    for term in terms:
        key, sep, value = str(term).partition("=")
        key = key.strip().lower().replace("-", "_")
        if key == "organization":
            key = "organisation"
        if not sep or not value.strip():
            raise LensError(f"--fail {term!r} is not dimension=value", "for example --fail provider=AWS")
        if key not in FAIL_KEYS:
            raise LensError(f"--fail {term!r}: unknown dimension {key!r}", "use one of " + ", ".join(FAIL_KEYS))
        out.append((key, value.strip()))
    return tuple(out)


def matching(ops: pd.DataFrame, fail: Sequence[tuple[str, str]]) -> tuple[pd.Series, tuple[str, ...]]:
    """(mask of the operators any term matches (case-insensitive; an operator by address or name), unmatched terms)."""
    mask = pd.Series(False, index=ops.index)
    unmatched = []
    for key, value in fail:
        v = value.strip().lower()
        if key == "operator":
            hit = (ops["operator"].str.lower() == v) | (ops["name"].str.lower() == v)
        else:
            hit = ops[key].astype(str).str.lower() == v
        if not hit.any():
            unmatched.append(f"{key}={value}")
        mask |= hit
    return mask, tuple(unmatched)


def what_if(con: Con, ops: pd.DataFrame, fail: Sequence[tuple[str, str]], quorum_pct: int) -> WhatIf:
    """Fail the operators matching `fail`: does the remaining stake reach quorum, and which past tasks (from their
    recorded signers and stakes) would not have reached it without those operators' signatures."""
    if ops.empty:
        mask, unmatched = pd.Series(dtype=bool), tuple(f"{k}={v}" for k, v in fail)
    else:
        mask, unmatched = matching(ops, fail)
    failed = ops[mask] if len(mask) else ops.iloc[0:0]
    failed_share = float(failed["stake_share"].sum()) if len(failed) else 0.0
    remaining = 1.0 - failed_share if len(ops) else 0.0
    tasks = would_fail = 0
    if {"task_signers", "tasks"} <= table_names(con):
        addrs = [str(a).lower() for a in failed["operator"]] if len(failed) else []
        row = query_rows(con, PAST_SQL, {"ops": addrs, "q": int(quorum_pct)})[0]
        tasks, would_fail = int(row[0] or 0), int(row[1] or 0)
    return WhatIf(
        fail=tuple(fail),
        failed_operators=tuple(failed["name"].astype(str)) if len(failed) else (),
        failed_stake_share=failed_share,
        remaining_stake_share=remaining,
        quorum_threshold_pct=int(quorum_pct),
        quorum_holds=remaining * 100 >= quorum_pct and len(ops) > 0,
        past_tasks=tasks,
        past_would_fail=would_fail,
        unmatched=unmatched,
    )


# ---------------------------------------------------------------------------------------------
# The whole report


@dataclass(frozen=True)
class DiversityReport:
    """Everything the Diversity page and `lens diversity` show."""

    quorum_threshold_pct: int
    threshold_source: str
    total_stake: float
    resolution: str  # 'on' | 'off'
    operators: pd.DataFrame
    dimensions: dict[str, Dimension]
    shared: list[SharedDependency] = field(default_factory=list)
    total_stake_wei: int = 0  # exact; total_stake is this in ETH

    @property
    def disagreements(self) -> pd.DataFrame:
        """Operators whose declared location the IP contradicts."""
        if self.operators.empty:
            return self.operators
        return self.operators[self.operators["disagreement"] != ""]

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        ops = []
        for r in self.operators.to_dict("records"):
            ops.append(
                {
                    k: (None if is_null(r.get(k)) else r.get(k))
                    for k in (
                        "operator",
                        "name",
                        "stake",
                        "stake_share",
                        "socket",
                        "ip",
                        "observed_state",
                        "observed_detail",
                        *DIMENSIONS,
                        *(f"{d}_source" for d in DIMENSIONS),
                        "declared_country",
                        "declared_provider",
                        "declared_asn",
                        "disagreement",
                    )
                }
            )
        return {
            "quorum_threshold_pct": self.quorum_threshold_pct,
            "threshold_source": self.threshold_source,
            "total_stake": self.total_stake,
            "total_stake_wei": str(self.total_stake_wei),
            "name_resolution": self.resolution,
            "dimensions": {k: d.to_json() for k, d in self.dimensions.items()},
            "shared_dependencies": [s.to_json() for s in self.shared],
            "operators": ops,
        }


def _wei(text: Any, number: Any) -> int:
    """A stake in wei, exactly: the decimal string the indexer keeps, else its numeric column, else 0."""
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return 0 if is_null(number) else int(Decimal(str(number)))


def diversity_report(con: Con, resolve: geo.ResolveOptions = geo.NO_RESOLUTION) -> DiversityReport:
    """The diversity report over the currently registered operators."""
    q, source = quorum_threshold(con)
    ops = diversity_operators(con, resolve)
    dims = {d: concentration(ops, d, q) for d in DIMENSIONS}
    total_wei = sum(int(w) for w in ops["stake_wei"]) if len(ops) else 0
    return DiversityReport(
        q, source, float(Decimal(total_wei) / 10**18), resolve.mode, ops, dims, shared_dependencies(ops, q), total_wei
    )


def what_if_report(con: Con, resolve: geo.ResolveOptions, fail: tuple[tuple[str, str], ...]) -> WhatIf:
    """what_if over the currently registered operators (the page's cached entry point)."""
    q, _ = quorum_threshold(con)
    return what_if(con, diversity_operators(con, resolve), fail, q)


def fail_choices(ops: pd.DataFrame) -> dict[str, list[str]]:
    """The values the what-if can fail, per dimension (largest stake first) and operators by name."""
    out: dict[str, list[str]] = {}
    if ops.empty:
        return {k: [] for k in FAIL_KEYS}
    for dim in DIMENSIONS:
        by = ops.groupby(dim)["stake"].sum().sort_values(ascending=False)
        out[dim] = [str(v) for v in by.index]
    out["operator"] = [str(n) for n in ops["name"]]
    return out


def dimension_table(report: DiversityReport) -> pd.DataFrame:
    """One row per dimension: entities, the largest and its share, HHI, Nakamoto coefficient and the sentence."""
    rows = []
    for name, d in report.dimensions.items():
        top = d.entities.iloc[0] if len(d.entities) else None
        rows.append(
            {
                "dimension": name,
                "entities": len(d.entities),
                "largest": "" if top is None else str(top["name"]),
                "largest_share": None if top is None else float(top["stake_share"]),
                "hhi": d.hhi,
                "nakamoto": d.nakamoto,
                "in words": d.sentence,
                "observed": int(d.sources.get("observed", 0)),
                "declared": int(d.sources.get("declared", 0)),
            }
        )
    return pd.DataFrame(rows)


def location_table(report: DiversityReport) -> pd.DataFrame:
    """Declared beside observed, per operator, with the disagreement (if any) spelled out."""
    cols = [
        "name",
        "operator",
        "socket",
        "ip",
        "observed_state",
        "observed_country",
        "observed_asn",
        "observed_provider",
        "declared_country",
        "declared_city",
        "declared_provider",
        "declared_asn",
        "disagreement",
        "observed_detail",
    ]
    if report.operators.empty:
        return pd.DataFrame(columns=cols)
    df = report.operators[cols].copy()
    df["observed_state"] = df["observed_state"].map(lambda s: geo.STATES.get(s, s))
    return df
