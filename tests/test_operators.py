"""Operators and Diversity on a seeded DB with known answers: participation, streaks and alerts counted by hand and in
SQL on task_signers, Nakamoto coefficients computed by hand, observed location states, the CLI twins, both pages."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import page, sql

from app import geo
from app.queries import diversity as dq
from app.queries import operators as oq

ETH = 10**18
N_TASKS = 40
RECENT = 20  # the last 20 tasks: t20..t39


def _addr(i: int) -> str:
    return "0x" + f"{i:02x}" * 20


def _opid(i: int) -> str:
    return "0x" + f"{i:02x}" * 32


# name, organisation, stake (ETH), socket, declared (country, city, provider, asn), client version, metadata error
OPERATORS = [
    ("Alpha", "Org A", 2000, "3.120.0.10:9000", ("DE", "Frankfurt am Main", "AWS", "AS16509 Amazon"), "1.4.2", None),
    ("Bravo", "Org B", 1500, "52.94.0.11:9001", ("US", "Ashburn", "AWS", "AS16509 Amazon"), "1.4.2", None),
    ("Charlie", "Org C", 1500, "65.108.0.12:9002", ("FI", "Helsinki", "Hetzner", "AS24940 Hetzner"), "1.4.1", None),
    ("Delta", "Org B", 1200, "51.38.0.13:9003", ("FR", "Gravelines", "OVH", "AS16276 OVH SAS"), "1.4.2", None),
    # declares Frankfurt on AWS; its IP is Google Cloud in Japan
    ("Echo", "Org E", 1300, "34.146.0.14:9004", ("DE", "Frankfurt am Main", "AWS", "AS16509 Amazon"), "1.4.0", None),
    # a private address: no public location, the declared one is used
    ("Foxtrot", "Org F", 1000, "10.0.0.5:9005", ("NL", "Amsterdam", "Leaseweb", "AS60781"), "1.4.2", "HTTP 404"),
    # a hostname nobody can resolve (the tests' local name table lacks it)
    ("Golf", "Org G", 1500, "node.golf.invalid:9006", ("CH", "Zurich", "", ""), "1.4.2", None),
    # left the quorum after t19
    ("Hotel", "Org H", 500, "46.4.0.17:9007", ("DE", "Falkenstein", "Hetzner", "AS24940"), "1.4.2", None),
]
ACTIVE_STAKE = 10_000  # Alpha..Golf


def _eligible(name: str, t: int) -> bool:
    return {"Golf": t >= 10, "Hotel": t < 20}.get(name, True)


def _signed(name: str, t: int) -> bool:
    """The hand-written signing pattern."""
    if name == "Bravo":
        return t < 30  # a losing streak: the last 10 missed
    if name == "Charlie":
        return t % 4 != 0  # one in four missed, no long run
    if name == "Delta":
        return not 10 <= t <= 16  # an outage of 7, over before the recent window
    if name == "Echo":
        return t != 5
    return True


# hand-computed answers
HAND = {  # name: (eligible, signed, streak, recent_eligible, recent_signed, longest miss in the last 20)
    "Alpha": (40, 40, 40, 20, 20, 0),
    "Bravo": (40, 30, -10, 20, 10, 10),
    "Charlie": (40, 30, 3, 20, 15, 1),
    "Delta": (40, 33, 23, 20, 20, 0),
    "Echo": (40, 39, 34, 20, 20, 0),
    "Foxtrot": (40, 40, 40, 20, 20, 0),
    "Golf": (30, 30, 30, 20, 20, 0),
    "Hotel": (20, 20, 20, 0, 0, 0),
}
# Quorum threshold 67 %: a set of entities stops quorum once the stake left is under 6,700 of 10,000.
# country (observed, else declared): DE 2000 (Alpha), US 1500, FI 1500, CH 1500 (Golf, declared), JP 1300 (Echo,
#   observed), FR 1200, NL 1000 (Foxtrot, declared) → DE + one 1500 = 3500 > 3300 → 2
# continent: Europe 2000+1500+1200+1000+1500 = 7200 → 1
# provider: AWS 3500 (Alpha, Bravo; Echo is GCP by its IP) → 1
# asn: AS16509 3500 → 1
# organisation: Org B 2700 (Bravo, Delta), Org A 2000, … → 2700 + 2000 = 4700 → 2
# client version: 1.4.2 = 2000+1500+1200+1000+1500 = 7200 → 1
NAKAMOTO = {"country": 2, "continent": 1, "provider": 1, "asn": 1, "organisation": 2, "client_version": 1}
# provider shares: AWS .35, Hetzner .15 (Charlie), OVHcloud .12, GCP .13, Leaseweb .10, unknown .15 (Golf)
PROVIDER_HHI = 0.35**2 + 0.15**2 + 0.12**2 + 0.13**2 + 0.10**2 + 0.15**2


def build_db(path: Path) -> Path:
    """A DuckDB file with the indexer's real schema, filled with the hand-written operator set and 40 tasks."""
    from indexer.load import ensure_schema

    con = duckdb.connect(str(path))
    ensure_schema(con)
    ops, signers, tasks = [], [], []
    for i, (name, org, stake, sock, (country, city, provider, asn), version, err) in enumerate(OPERATORS):
        ops.append(
            dict(
                chain_id=31337,
                operator=_addr(i + 1),
                operator_id=_opid(i + 1),
                socket=sock,
                metadata_uri=f"https://meta.example/{i}.json",
                registered_block=10 + i,
                deregistered_block=120 if name == "Hotel" else None,
                stake=str(stake * ETH if name != "Hotel" else 0),
                stake_num=float(stake * ETH if name != "Hotel" else 0),
                name=name,
                organisation=org,
                country=country,
                city=city,
                provider=provider or None,
                asn=asn or None,
                client_version=f"newton-operator/{version}",
                metadata_error=err,
            )
        )
    t0 = pd.Timestamp("2026-01-01 00:00:00")
    for t in range(N_TASKS):
        task_id = "0x" + f"{t:064x}"
        n_missing = 0
        for i, (name, _org, stake, *_rest) in enumerate(OPERATORS):
            if not _eligible(name, t):
                continue
            signed = _signed(name, t)
            n_missing += not signed
            signers.append(
                dict(
                    chain_id=31337,
                    task_id=task_id,
                    operator_id=_opid(i + 1),
                    operator=_addr(i + 1),
                    signed=signed,
                    stake_num=float(stake * ETH),
                )
            )
        tasks.append(
            dict(
                chain_id=31337,
                task_id=task_id,
                policy_client=_addr(200),
                created_block=100 + 2 * t,
                created_time=t0 + pd.Timedelta(minutes=10 * t),
                responded_block=101 + 2 * t,
                responded_time=t0 + pd.Timedelta(minutes=10 * t, seconds=4 + n_missing),
                latency_respond_s=float(4 + n_missing),
                quorum_threshold_pct=67,
                non_signer_count=n_missing,
                signer_count=None,
                allow=t % 3 != 0,
                status="spent",
                function_name="transfer",
            )
        )
    for table, rows in (("operators", ops), ("task_signers", signers), ("tasks", tasks)):
        con.register("_rows", pd.DataFrame(rows))
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
        con.unregister("_rows")
    con.execute(
        "UPDATE tasks SET signer_count = s.n FROM (SELECT task_id, count(*) FILTER (WHERE signed) AS n "
        "FROM task_signers GROUP BY task_id) s WHERE tasks.task_id = s.task_id"
    )
    # one successful challenge of t7
    con.execute(
        "INSERT INTO challenges VALUES (31337, ?, 200, TIMESTAMP '2026-01-01 03:00:00', '0xc0', ?, TRUE)",
        ["0x" + f"{7:064x}", _addr(99)],
    )
    con.execute("INSERT INTO meta VALUES ('chain_id', '31337')")
    con.close()
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return build_db(tmp_path_factory.mktemp("operators") / "ops.duckdb")


@pytest.fixture()
def con(db):
    c = duckdb.connect(str(db), read_only=True)
    yield c
    c.close()


NO_DNS = geo.ResolveOptions(mode="on", table={})  # "on", but through an empty local table: never a DNS query


# ------------------------------------------------------------------------------------------ operators


def test_participation_and_streaks_match_hand_counts_and_sql(con, db):
    figures = oq.operator_figures(con, RECENT).set_index("name")
    direct = {
        r[0]: (r[1], r[2])
        for r in sql(
            db,
            "SELECT o.name, count(*), count(*) FILTER (WHERE ts.signed) FROM task_signers ts "
            "JOIN operators o ON o.operator = ts.operator GROUP BY o.name",
        )
    }
    for name, (eligible, signed, streak, r_eligible, r_signed, longest) in HAND.items():
        row = figures.loc[name]
        assert (row["eligible"], row["signed"]) == (eligible, signed) == direct[name], name
        assert row["participation"] == pytest.approx(signed / eligible)
        assert row["streak"] == streak, name
        assert (row["recent_eligible"], row["recent_signed"]) == (r_eligible, r_signed), name
        assert row["longest_recent_miss"] == longest, name
    assert figures.loc["Hotel", "recent_participation"] is None  # it left before the window
    assert not figures.loc["Hotel", "active"] and figures.loc["Hotel", "stake_share"] == 0
    assert figures.loc["Alpha", "stake_share"] == pytest.approx(2000 / ACTIVE_STAKE)
    assert figures.loc["Alpha", "last_signed_block"] == 100 + 2 * 39
    assert figures.loc["Bravo", "last_signed_block"] == 100 + 2 * 29
    # t7's challenge: a dispute of every operator that signed t7 (Charlie missed t4 and t8, not t7)
    signed_t7 = {
        r[0]
        for r in sql(
            db,
            "SELECT o.name FROM task_signers ts JOIN operators o USING (operator) WHERE ts.task_id = ? AND ts.signed",
            ["0x" + f"{7:064x}"],
        )
    }
    assert set(figures.index[figures["disputes"] == 1]) == signed_t7
    assert set(figures.index[figures["disputes_lost"] == 1]) == signed_t7


def test_alerts_follow_the_thresholds(con):
    figures = oq.operator_figures(con, RECENT)
    kinds = {}
    for a in oq.alerts(figures, oq.AlertThresholds(0.9, 5)):
        kinds.setdefault(a.name, set()).add(a.kind)
    assert kinds == {
        "Bravo": {"low_participation", "losing_streak"},
        "Charlie": {"low_participation"},
        "Foxtrot": {"metadata"},
    }
    # over all 40 tasks Delta's outage (7 in a row) and its 82.5 % show
    kinds40 = {}
    for a in oq.alerts(oq.operator_figures(con, N_TASKS), oq.AlertThresholds(0.9, 5)):
        kinds40.setdefault(a.name, set()).add(a.kind)
    assert kinds40["Delta"] == {"low_participation", "outage"}
    # a stricter streak threshold silences the 7-long outage
    assert "Delta" not in {a.name for a in oq.alerts(oq.operator_figures(con, N_TASKS), oq.AlertThresholds(0.5, 8))}


def test_records_and_detail(con):
    recs = {r.name: r for r in oq.operator_records(con, RECENT)}
    assert recs["Bravo"].streak_kind == "missed" and recs["Bravo"].alerts
    json.dumps([r.to_json() for r in recs.values()])
    detail = oq.operator_detail(con, _addr(2).upper().replace("0X", "0x"), RECENT)  # Bravo, any case
    missed = detail["missed"]
    assert len(missed) == 10
    assert missed["verdict_page"].str.startswith("/verdict?task=0x").all()
    assert set(missed["task_id"]) == {"0x" + f"{t:064x}" for t in range(30, 40)}
    assert oq.operator_detail(con, _addr(77)) is None


def test_heatmap_and_latency(con, db):
    heat = oq.participation_heatmap(con)
    assert int(heat["eligible"].sum()) == sql(db, "SELECT count(*) FROM task_signers")[0][0]
    assert int(heat["signed"].sum()) == sql(db, "SELECT count(*) FROM task_signers WHERE signed")[0][0]
    lat = oq.latency(con)
    by_count = lat["by_missing_count"].set_index("missing")
    # latency was built as 4 s + 1 s per missing operator
    for missing, row in by_count.iterrows():
        assert row["p50"] == pytest.approx(4 + missing)
    by_op = lat["by_missing_operator"].set_index("label")
    assert int(by_op.loc["Bravo", "tasks"]) == 10


# ------------------------------------------------------------------------------------------ diversity


def test_nakamoto_and_hhi_match_hand_computation(con):
    report = dq.diversity_report(con, NO_DNS)
    assert report.quorum_threshold_pct == 67
    assert report.total_stake == pytest.approx(ACTIVE_STAKE)
    assert "Hotel" not in set(report.operators["name"])  # left: no signing power
    assert {k: d.nakamoto for k, d in report.dimensions.items()} == NAKAMOTO
    assert report.dimensions["provider"].hhi == pytest.approx(PROVIDER_HHI)
    assert report.dimensions["provider"].sentence.startswith("1 cloud provider (AWS) can stop the network")
    assert report.dimensions["organisation"].sentence.startswith("2 organisations (Org B, Org A)")
    ent = report.dimensions["country"].entities.set_index("name")
    assert ent.loc["DE", "operators"] == 1 and ent.loc["JP", "operators"] == 1  # Echo counted where its IP is


def test_observed_states_and_the_contradicting_operator(con):
    ops = dq.diversity_report(con, NO_DNS).operators.set_index("name")
    assert ops.loc["Alpha", "observed_state"] == "located" and ops.loc["Alpha", "country_source"] == "observed"
    assert ops.loc["Foxtrot", "observed_state"] == "private"
    assert ops.loc["Foxtrot", "country"] == "NL" and ops.loc["Foxtrot", "country_source"] == "declared"
    assert ops.loc["Golf", "observed_state"] == "unresolved"
    assert "node.golf.invalid" in ops.loc["Golf", "observed_detail"]
    assert ops.loc["Golf", "provider"] == dq.UNKNOWN
    flagged = set(ops.index[ops["disagreement"] != ""])
    assert flagged == {"Echo"}
    assert set(ops.loc["Echo", "disagrees"].split(", ")) == {"country", "provider", "asn"}
    assert "declares Frankfurt am Main, DE" in ops.loc["Echo", "disagreement"]
    assert "JP" in ops.loc["Echo", "disagreement"]


def test_resolution_off_is_a_state_and_a_local_table_resolves():
    assert geo.locate("node.golf.invalid:9006").state == "resolution_off"
    hit = geo.locate("node.golf.invalid:9006", geo.ResolveOptions(mode="on", table={"node.golf.invalid": "46.4.0.1"}))
    assert (hit.state, hit.country, hit.provider, hit.asn) == ("located", "DE", "Hetzner", "AS24940")
    assert geo.locate("").state == "no_socket"
    assert geo.locate("a:b:c").state == "bad_socket"
    assert geo.locate("[2a05:d014::1]:9000").country == "DE"  # an IPv6 literal in brackets
    assert geo.locate("192.168.1.10:1").state == "private"
    assert geo.resolve_mode("auto", 31337) == "off" and geo.resolve_mode("auto", 1) == "on"
    with pytest.raises(geo.LensError):
        geo.resolve_mode("sometimes", 1)


def test_the_ip_database_works_offline():
    """In a fresh process where every socket connect and name lookup fails, IP → country/ASN/provider still works."""
    code = (
        "import socket\n"
        "def no(*a, **k): raise OSError('network disabled by the test')\n"
        "socket.socket.connect = no; socket.create_connection = no; socket.getaddrinfo = no\n"
        "from app import geo\n"
        "o = geo.locate('3.120.0.10:9000')\n"
        "print(o.country, o.asn, o.provider)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["DE", "AS16509", "AWS"]


def test_resolution_runs_every_name_at_once_and_keeps_why():
    # numeric hosts: getaddrinfo answers without any query, which exercises the resolver threads
    assert geo._system_resolve_many(["127.0.0.1", "10.1.2.3"], 2.0) == {
        "127.0.0.1": ("127.0.0.1", ""),
        "10.1.2.3": ("10.1.2.3", ""),
    }
    table = geo._Resolved(
        {"a.example": ("46.4.0.9", ""), "b.invalid": ("", "b.invalid does not resolve (no such name)")}
    )
    opts = geo.ResolveOptions("on", 1.0, table)
    assert geo.locate("a.example:1", opts).provider == "Hetzner"
    miss = geo.locate("b.invalid:1", opts)
    assert miss.state == "unresolved" and "no such name" in miss.detail
    assert geo.prefetch(["1.2.3.4:9", "", "x:y:z"], geo.ResolveOptions("on", 1.0)) == geo.ResolveOptions("on", 1.0)
    assert geo.prefetch(["h.invalid:1"], NO_DNS) is NO_DNS  # a given table is used as it is


def test_shared_dependencies(con):
    shared = dq.diversity_report(con, NO_DNS).shared
    by_kind = {(s.shared, s.value): s for s in shared}
    aws = by_kind[("provider", "AWS")]
    assert set(aws.operators) == {"Alpha", "Bravo"} and aws.stops_quorum  # DE and US, one provider, 35 %
    org_b = by_kind[("organisation", "Org B")]
    assert set(org_b.operators) == {"Bravo", "Delta"} and not org_b.stops_quorum


def _past_failures_sql(db: Path, names: set[str]) -> tuple[int, int]:
    """The oracle: tasks whose signers, less the failed operators, hold under the task's threshold — in SQL."""
    placeholders = ", ".join("?" for _ in names)
    return sql(
        db,
        f"""
        SELECT count(*), count(*) FILTER (WHERE kept * 100 < total * q) FROM (
          SELECT ts.task_id, sum(ts.stake_num) AS total, any_value(t.quorum_threshold_pct) AS q,
                 coalesce(sum(ts.stake_num) FILTER (WHERE ts.signed AND o.name NOT IN ({placeholders})), 0) AS kept
          FROM task_signers ts JOIN operators o USING (operator) JOIN tasks t USING (task_id) GROUP BY ts.task_id)
        """,
        sorted(names),
    )[0]


def test_what_if_against_sql_on_task_signers(con, db):
    report = dq.diversity_report(con, NO_DNS)
    aws = dq.what_if(con, report.operators, dq.parse_fail(["provider=aws"]), 67)
    assert set(aws.failed_operators) == {"Alpha", "Bravo"}
    assert aws.remaining_stake_share == pytest.approx(0.65) and not aws.quorum_holds
    assert (aws.past_tasks, aws.past_would_fail) == _past_failures_sql(db, {"Alpha", "Bravo"})
    golf = dq.what_if(con, report.operators, dq.parse_fail(["organisation=Org G"]), 67)
    assert golf.quorum_holds and golf.remaining_stake_share == pytest.approx(0.85)
    tasks, fail = _past_failures_sql(db, {"Golf"})
    assert (golf.past_tasks, golf.past_would_fail) == (tasks, fail)
    assert 0 < fail < tasks  # some past tasks needed Golf's signature, most did not
    both = dq.what_if(con, report.operators, dq.parse_fail(["country=JP", "operator=Foxtrot", "asn=AS999"]), 67)
    assert set(both.failed_operators) == {"Echo", "Foxtrot"} and both.unmatched == ("asn=AS999",)
    with pytest.raises(dq.LensError):
        dq.parse_fail(["planet=Mars"])
    with pytest.raises(dq.LensError):
        dq.parse_fail(["provider"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=7), st.integers(1, 100))
def test_nakamoto_is_the_smallest_stopping_set(stakes, q):
    """Greedy (largest first) equals the brute-force minimum over every subset of entities."""
    total = sum(stakes)

    def stops(subset) -> bool:
        return (total - sum(subset)) * 100 < total * q

    brute = next(k for k in range(len(stakes) + 1) if any(stops(c) for c in itertools.combinations(stakes, k)))
    assert dq.nakamoto(stakes, q) == brute
    assert dq.hhi([s / total for s in stakes]) == pytest.approx(sum((s / total) ** 2 for s in stakes))


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.integers(1, 65535), st.sampled_from(["", "tcp://", "http://"]))
def test_socket_host_round_trip(ip, port, scheme):
    """Any IP literal written as a socket (host:port, [v6]:port, with or without a scheme) comes back as itself."""
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    assert geo.socket_host(f"{scheme}{host}:{port}") == str(ip)
    located = geo.locate(f"{scheme}{host}:{port}")
    assert located.ip == str(ip) and located.state in ("located", "private", "not_in_database")
    assert (located.state == "private") == (not ip.is_global)


# ------------------------------------------------------------------------------------------ CLI twins


def _lens(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    lens = str(Path(sys.executable).parent / "lens")
    return subprocess.run([lens, *args], check=False, capture_output=True, text=True, env=env, timeout=120)


def test_cli_operators_json(db):
    out = _lens("operators", "--db", str(db), "--json", "--operator-recent-tasks", str(RECENT))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by = {o["name"]: o for o in doc["operators"]}
    required = {
        "operator",
        "operator_id",
        "name",
        "stake",
        "stake_share",
        "eligible",
        "signed",
        "participation",
        "recent_participation",
        "streak",
        "slashed",
        "alerts",
    }
    assert required <= set(by["Alpha"])
    assert (by["Bravo"]["eligible"], by["Bravo"]["signed"], by["Bravo"]["streak"]) == (40, 30, -10)
    assert len(by["Bravo"]["alerts"]) == 2 and not by["Alpha"]["alerts"]
    assert {a["name"] for a in doc["alerts"]} == {"Bravo", "Charlie", "Foxtrot"}
    one = json.loads(_lens("operators", "--db", str(db), "--json", "--operator", _addr(2)).stdout)
    assert len(one["detail"]["missed"]) == 10
    bad = _lens("operators", "--db", str(db), "--alert-participation-below", "3")
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_diversity_json_and_fail(db):
    env = {"LENS_RESOLVE_HOSTNAMES": "off"}
    out = _lens("diversity", "--db", str(db), "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["quorum_threshold_pct"] == 67 and doc["total_stake"] == pytest.approx(ACTIVE_STAKE)
    assert doc["total_stake_wei"] == str(ACTIVE_STAKE * 10**18)  # exact, not a float's approximation
    assert doc["total_stake"] == ACTIVE_STAKE
    assert set(doc["dimensions"]) == set(NAKAMOTO)
    assert {k: v["nakamoto"] for k, v in doc["dimensions"].items()} == NAKAMOTO
    assert {"name", "operators", "stake_share"} <= set(doc["dimensions"]["provider"]["entities"][0])
    what = json.loads(_lens("diversity", "--db", str(db), "--json", "--fail", "provider=AWS", env_extra=env).stdout)
    assert what["what_if"]["quorum_holds"] is False
    tasks, fail = _past_failures_sql(db, {"Alpha", "Bravo"})
    assert what["what_if"]["past_would_fail"] == fail and what["what_if"]["past_tasks"] == tasks
    text = _lens("diversity", "--db", str(db), "--fail", "provider=AWS", env_extra=env)
    assert "1 cloud provider (AWS) can stop the network from reaching quorum" in text.stdout
    assert "quorum is LOST" in text.stdout
    bad = _lens("diversity", "--db", str(db), "--fail", "planet=Mars")
    assert bad.returncode == 1 and "unknown dimension" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture()
def app_env(db, tmp_path, monkeypatch):
    monkeypatch.setenv("LENS_DB", str(db))
    monkeypatch.setenv("LENS_DEPLOYMENT_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("LENS_OPERATOR_RECENT_TASKS", str(RECENT))
    monkeypatch.setenv("LENS_RESOLVE_HOSTNAMES", "off")
    return db


def test_operators_page(app_env):
    at = page("pages/operators.py")
    m = {x.label: x.value for x in at.metric}
    assert m["Registered operators"] == "7" and m["Alerts"] == "4"
    warnings = " ".join(w.value for w in at.warning)
    assert "Bravo missed its last 10 tasks in a row" in warnings
    assert "Alpha" not in warnings
    table = at.dataframe[0].value
    assert set(table["name"]) == {n for n, *_ in OPERATORS}
    assert table.set_index("name").loc["Bravo", "detail"] == f"/operators?operator={_addr(2)}"
    assert not at.error


def test_operator_detail_page(app_env):
    at = page("pages/operators.py", operator=_addr(2))
    m = {x.label: x.value for x in at.metric}
    assert m["Participation"] == "75.0%" and m["Streak"] == "10 missed"
    missed = at.dataframe[-1].value
    assert len(missed) == 10 and missed["verdict_page"].str.startswith("/verdict?task=").all()
    unknown = page("pages/operators.py", operator=_addr(77))
    assert any("No operator" in w.value for w in unknown.warning)


def test_diversity_page(app_env):
    at = page("pages/diversity.py")
    m = {x.label: x.value for x in at.metric}
    assert m["Quorum threshold"] == "67%" and m["Providers that can stop quorum"] == "1"
    shown = " ".join(x.value for x in at.markdown)
    assert "2 countries (DE, CH) can stop the network from reaching quorum" in shown.replace("\\", "")
    assert any("Echo" in w.value and "declares Frankfurt" in w.value.replace("\\", "") for w in at.warning)
    bad = page("pages/diversity.py", fail=["planet=Mars"])
    assert any("unknown dimension" in w.value for w in bad.warning)
    what = page("pages/diversity.py", fail=["provider=AWS"])
    m = {x.label: x.value for x in what.metric}
    assert m["Quorum"] == "LOST" and m["Stake left"] == "65.0%"
