"""Prometheus exporter: a collector that reads the Lens DB read-only on every scrape and reports it as gauges.

The figures are the ones `lens operators --json` and `lens disputes --json` print (the same query functions), so a
Grafana panel and the CLI never disagree. Operators are labelled by address and name."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from app.errors import LensError
from app.queries.base import Con, query_rows, table_names
from app.queries.operators import AlertThresholds, operator_records

PREFIX = "lens"
TASKS_SQL = """
SELECT CASE WHEN allow THEN 'allowed' WHEN NOT allow THEN 'denied' ELSE 'awaiting' END AS verdict,
       coalesce(status, 'unknown') AS status, count(*)
FROM tasks GROUP BY ALL ORDER BY ALL
"""
REPLAYS_SQL = "SELECT result, count(*) FROM replays WHERE task_id IN (SELECT task_id FROM tasks) GROUP BY ALL"
CHECKPOINT_SQL = "SELECT max(updated_at) FROM checkpoints"
REPLAY_RESULTS = ("match", "mismatch", "cannot_replay")


@dataclass(frozen=True)
class ExporterOptions:
    """What the exporter reads and how: the DB file, an RPC URL for the chain head (empty: the DB's deployment's),
    the recent window of the operator figures and the alert thresholds."""

    db: str
    rpc_url: str = ""
    recent: int = 500
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    read_timeout_s: float = 5.0  # under Prometheus' default 10 s scrape timeout, so a locked DB reads as lens_up 0


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class LensCollector(Collector):
    """Collects every Lens gauge from one short read-only connection per scrape (the indexer keeps writing between)."""

    def __init__(self, options: ExporterOptions) -> None:
        self.options = options
        self._lock = threading.Lock()  # one scrape at a time: a burst of scrapes must not pile up DB readers

    def describe(self) -> list:
        """Nothing up front: registering the collector must not read the DB."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the DB and yield the gauges; `lens_up` 0 (and its reason in `lens_scrape_error`) when it cannot."""
        from indexer.load import connect_read

        t0 = time.perf_counter()
        families: list[GaugeMetricFamily] = []
        error = ""
        with self._lock:
            try:
                with connect_read(self.options.db, timeout_s=self.options.read_timeout_s) as con:
                    families = list(self._families(con))
            except (LensError, duckdb.Error) as err:
                error = str(err)
        up = _gauge("up", "1 if the last scrape read the Lens DB, else 0 (see lens_scrape_error).")
        up.add_metric([], 0.0 if error else 1.0)
        yield up
        if error:
            err = _gauge("scrape_error", "The reason the last scrape could not read the DB (value 1).", ("error",))
            err.add_metric([error[:200]], 1.0)
            yield err
        yield from families
        took = _gauge("scrape_duration_seconds", "Seconds the last scrape took to read the DB.")
        took.add_metric([], time.perf_counter() - t0)
        yield took

    def _families(self, con: Con) -> Iterator[GaugeMetricFamily]:
        from app.queries import disputes as dq

        names = table_names(con)
        yield from self._operators(con)
        if "tasks" in names:
            tasks = _gauge("tasks", "Indexed tasks by attested verdict and lifecycle status.", ("verdict", "status"))
            for verdict, status, n in query_rows(con, TASKS_SQL):
                tasks.add_metric([verdict, status], float(n))
            yield tasks
        replays = _gauge("replays", "Replayed decisions by result (match, mismatch, cannot_replay).", ("result",))
        counts = dict(query_rows(con, REPLAYS_SQL)) if {"replays", "tasks"} <= names else {}
        for result in REPLAY_RESULTS:
            replays.add_metric([result], float(counts.get(result, 0)))
        yield replays
        mismatches = _gauge("replay_mismatches", "Decisions whose replay differs from the attested verdict.")
        mismatches.add_metric([], float(counts.get("mismatch", 0)))
        yield mismatches

        window = dq.challenge_window(con, self.options.rpc_url)
        head = dq.head_block(con, self.options.rpc_url)
        d = dq.disputes(con, head, window)
        s = d.summary()
        missing = _gauge(
            "replays_missing",
            "Responses without a replay: challenge candidates among them are unknown until `lens audit` runs.",
        )
        missing.add_metric([], float(d.missing_replays))
        yield missing
        cand = _gauge(
            "challenge_candidates",
            "Responses whose replay disagrees and no successful challenge answered, by window state (open, missed).",
            ("state",),
        )
        cand.add_metric(["open"], float(s["open_candidates"]))
        cand.add_metric(["missed"], float(s["missed_candidates"]))
        yield cand
        if s["fewest_blocks_left"] is not None:  # absent when nothing is open, so `<` alerts never fire on it
            fewest = _gauge("challenge_candidate_blocks_left_min", "Fewest blocks left to challenge an open candidate.")
            fewest.add_metric([], float(s["fewest_blocks_left"]))
            yield fewest
        ch = _gauge("challenges", "Challenges by outcome (successful, unsuccessful).", ("outcome",))
        ch.add_metric(["successful"], float(s["successful"]))
        ch.add_metric(["unsuccessful"], float(s["unsuccessful"]))
        yield ch
        conflicts = _gauge(
            "challenge_conflicts",
            "Successful challenges of responses Lens' replay agrees with (Lens or the resolver is wrong).",
        )
        conflicts.add_metric([], float(s["conflicts"]))
        yield conflicts
        window_g = _gauge("challenge_window_blocks", "The challenge window in blocks.")
        window_g.add_metric([], float(window.blocks))
        yield window_g
        yield from self._freshness(con, head.block if head.source == "chain" else None)

    def _operators(self, con: Con) -> Iterator[GaugeMetricFamily]:
        records = operator_records(con, self.options.recent, self.options.thresholds)
        labels = ("operator", "name")
        part = _gauge(
            "operator_participation_ratio",
            "Signed / eligible tasks per operator, over all time and over the recent window.",
            (*labels, "window"),
        )
        eligible = _gauge("operator_eligible_tasks", "Tasks the operator was in the quorum of.", (*labels, "window"))
        signed = _gauge("operator_signed_tasks", "Tasks the operator signed.", (*labels, "window"))
        stake = _gauge("operator_stake", "The operator's current stake in token units.", labels)
        share = _gauge("operator_stake_share", "The operator's share of the live stake (0..1).", labels)
        streak = _gauge("operator_streak", "+n: the last n eligible tasks signed; -n: the last n missed.", labels)
        active = _gauge("operator_active", "1 while the operator is registered.", labels)
        slashed = _gauge("operator_slashings", "OperatorSlashed events against the operator.", labels)
        alerts = _gauge("operator_alerts", "Lens' operator alerts currently raised (participation, streak).", labels)
        for r in records:
            key = [r.operator, r.name]
            for window, p, e, s in (
                ("all", r.participation, r.eligible, r.signed),
                ("recent", r.recent_participation, r.recent_eligible, r.recent_signed),
            ):
                if p is not None:
                    part.add_metric([*key, window], float(p))
                eligible.add_metric([*key, window], float(e))
                signed.add_metric([*key, window], float(s))
            stake.add_metric(key, float(r.stake))
            if r.stake_share is not None:
                share.add_metric(key, float(r.stake_share))
            streak.add_metric(key, float(r.streak))
            active.add_metric(key, 1.0 if r.active else 0.0)
            slashed.add_metric(key, float(r.slashed))
            alerts.add_metric(key, float(len(r.alerts)))
        yield from (part, eligible, signed, stake, share, streak, active, slashed, alerts)

    def _freshness(self, con: Con, chain_head: int | None) -> Iterator[GaugeMetricFamily]:
        from app.queries.disputes import indexed_head

        indexed = indexed_head(con)
        if indexed is not None:
            g = _gauge("indexed_block", "The last block the indexer has seen.")
            g.add_metric([], float(indexed))
            yield g
        if chain_head is not None:
            g = _gauge("chain_head_block", "The chain's head block (from the deployment's RPC).")
            g.add_metric([], float(chain_head))
            yield g
            if indexed is not None:
                g = _gauge("indexer_lag_blocks", "Chain head minus the last indexed block.")
                g.add_metric([], float(max(chain_head - indexed, 0)))
                yield g
        if "checkpoints" in table_names(con):
            last = query_rows(con, CHECKPOINT_SQL)[0][0]
            if last is not None:
                g = _gauge("checkpoint_age_seconds", "Seconds since the indexer last wrote its checkpoint.")
                g.add_metric([], _age_s(last))
                yield g


def _age_s(when: Any) -> float:
    """Seconds since a naive-UTC timestamp (the indexer writes UTC)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return max((now - when).total_seconds(), 0.0)


def registry(options: ExporterOptions) -> CollectorRegistry:
    """A registry holding only the Lens collector (no process metrics: this is about the DB, not the exporter)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(LensCollector(options))
    return reg


def serve(options: ExporterOptions, port: int, address: str) -> Any:
    """Serve /metrics on address:port in a background thread → the server (call `.shutdown()` to stop it)."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, address, registry(options))
    except OSError as err:
        raise LensError(
            f"cannot listen on {address}:{port}: {err.strerror}", "pick another port with --port (e.g. --port 9465)"
        ) from None
    return server
