"""Prometheus metrics: what the node counts, what it reads from the database at scrape
time, and the separate, non-public address that exports both (issue 16).

Two kinds of figures::

    counted by the processes (counters, histograms)     read at scrape time (gauges)
    ─────────────────────────────────────────────     ──────────────────────────────
    vbg_http_requests_total{route,method,status}        vbg_queue_depth{queue,state}
    vbg_http_request_duration_seconds{route,method}     vbg_queue_lag_seconds{queue}
    vbg_inbox_activities_total{result,reason}           vbg_instances{health}
    vbg_deliveries_total{outcome}                        vbg_instance_failures{domain}
    vbg_signed_fetches_total{target}
                                                        vbg_up, vbg_replica_lag_seconds

``serve`` runs several web processes (granian): each writes its counters into files of
one folder (prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set by
:func:`prepare_multiprocess` before any metric exists), and the exporter of the parent
process adds them up. The gauges come from PostgreSQL (:func:`read_database`), so every
process, on any machine, reports the same queues.

The metrics are created on first use (:func:`get`), never at import: prometheus-client
chooses between in-memory and file-backed values when it is imported, and ``serve``
must have set the folder before that. Labels never carry content, names of members or
URLs — only route templates, statuses, reasons (exception classes) and peer domains.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_TIMEOUT = 5.0  # seconds a scrape may spend reading the database

# ── counted by the processes ─────────────────────────────────────────────────


@dataclass
class Metrics:
    requests: Any
    latency: Any
    inbox: Any
    deliveries: Any
    signed_fetches: Any


_metrics: Metrics | None = None
_lock = threading.Lock()
# Each labelled child, looked up once: prometheus-client's ``labels()`` costs ~10 µs a
# call (checks and a lock), more than the increment itself; an inbox POST asked for
# three per request. Label values are route templates, statuses, outcomes and
# exception names: a bounded set.
_children: dict[tuple[str, tuple[str, ...]], Any] = {}


def _child(name: str, *values: str) -> Any:
    key = (name, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = getattr(get(), name).labels(*values)
    return child


def get() -> Metrics:
    """The process's metrics (created on first use, in the default registry)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _create()
    return _metrics


def _create() -> Metrics:
    from prometheus_client import Counter, Histogram

    return Metrics(
        requests=Counter(
            "vbg_http_requests", "HTTP requests answered, by route template", ["route", "method", "status"]
        ),
        latency=Histogram(
            "vbg_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
        ),
        inbox=Counter(
            "vbg_inbox_activities",
            "Activities POSTed to an inbox: accepted, or refused with a reason",
            ["result", "reason"],
        ),
        deliveries=Counter(
            "vbg_deliveries", "Delivery attempts by outcome (success, retry, final)", ["outcome"]
        ),
        signed_fetches=Counter(
            "vbg_signed_fetches",
            "Verified signed GETs by the (request-target) they signed: with_query or path_only (NodeBB 4.15)",
            ["target"],
        ),
    )


def count_inbox(result: str, reason: str = "") -> None:
    _child("inbox", result, reason).inc()


def count_signed_fetch(target: str) -> None:
    _child("signed_fetches", target).inc()


def count_delivery(outcome: str) -> None:
    _child("deliveries", outcome).inc()


def count_deliveries(outcomes: Mapping[str, int]) -> None:
    """:func:`count_delivery` for a batch (the delivery worker counts what it records)."""
    for outcome, count in outcomes.items():
        _child("deliveries", outcome).inc(count)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    _child("requests", route, method, str(status)).inc()
    _child("latency", route, method).observe(seconds)


# ── read from the database ───────────────────────────────────────────────────

# Depth of every queue by state (delivery jobs, received activities, remote media).
QUEUE_DEPTHS = """
SELECT 'delivery' AS queue, state, count(*) AS n FROM delivery_jobs GROUP BY state
UNION ALL
SELECT 'inbox', status, count(*) FROM inbox_items
 WHERE status IN ('pending', 'processing', 'failed') GROUP BY status
UNION ALL
SELECT 'media', status, count(*) FROM remote_media WHERE status = 'pending' GROUP BY status
"""
# Worker lag: how long the oldest job that is due has been waiting (0 when none is due).
QUEUE_LAG = """
SELECT 'delivery' AS queue, coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0) AS lag
  FROM delivery_jobs WHERE state = 'pending' AND next_attempt_at <= now()
UNION ALL
SELECT 'inbox', coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)
  FROM inbox_items WHERE status = 'pending' AND next_attempt_at <= now()
UNION ALL
SELECT 'media', coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)
  FROM remote_media WHERE status = 'pending' AND next_attempt_at <= now()
"""
INSTANCE_HEALTH = """
SELECT CASE WHEN unreachable_since IS NOT NULL THEN 'unreachable'
            WHEN failure_count > 0 THEN 'failing' ELSE 'ok' END AS health,
       count(*) AS n
  FROM instances GROUP BY 1
"""
# Only the instances that are not healthy (a bounded, useful label set).
FAILING_INSTANCES = """
SELECT domain, failure_count, unreachable_since IS NOT NULL AS unreachable
  FROM instances WHERE failure_count > 0 OR unreachable_since IS NOT NULL
 ORDER BY failure_count DESC, domain LIMIT 200
"""
QUEUE_STATES = {
    "delivery": ("pending", "in_flight", "failed", "dead"),
    "inbox": ("pending", "processing", "failed"),
    "media": ("pending",),
}
HEALTHS = ("ok", "failing", "unreachable")


@dataclass
class DatabaseFigures:
    """What the database says about the node's queues and peers."""

    up: bool = False
    depths: dict[tuple[str, str], int] = field(default_factory=dict)
    lags: dict[str, float] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    failing: list[tuple[str, int, bool]] = field(default_factory=list)


async def database_figures(conn: asyncpg.Connection) -> DatabaseFigures:
    figures = DatabaseFigures(up=True)
    figures.depths = {(q, s): 0 for q, states in QUEUE_STATES.items() for s in states}
    for row in await conn.fetch(QUEUE_DEPTHS):
        figures.depths[(row["queue"], row["state"])] = row["n"]
    figures.lags = {row["queue"]: float(row["lag"]) for row in await conn.fetch(QUEUE_LAG)}
    figures.instances = dict.fromkeys(HEALTHS, 0)
    for row in await conn.fetch(INSTANCE_HEALTH):
        figures.instances[row["health"]] = row["n"]
    figures.failing = [
        (r["domain"], r["failure_count"], r["unreachable"]) for r in await conn.fetch(FAILING_INSTANCES)
    ]
    return figures


async def read_database(dsn: str) -> DatabaseFigures:
    """The figures, on a connection of their own; ``up`` False when the database does
    not answer within ``DB_TIMEOUT``."""
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            conn = await asyncpg.connect(dsn)
            try:
                return await database_figures(conn)
            finally:
                await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("metrics: database unavailable (%s)", type(exc).__name__)
        return DatabaseFigures(up=False)


# Seconds since the last transaction the replica replayed (0 when it has replayed all there is).
REPLICA_LAG = """
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END
"""


async def replica_lag(dsn: str) -> float | None:
    """How far the read replica (``VBG_REPLICA_DATABASE_URL``) is behind, in seconds;
    None when it does not answer."""
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            conn = await asyncpg.connect(dsn)
            try:
                return float(await conn.fetchval(REPLICA_LAG))
            finally:
                await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("metrics: replica unavailable (%s)", type(exc).__name__)
        return None


class DatabaseCollector:
    """A prometheus-client collector whose gauges are read from PostgreSQL at each scrape
    (it runs in the exporter's thread, so it opens its own connection and event loop)."""

    def __init__(self, dsn: str, replica_dsn: str | None = None) -> None:
        self.dsn = dsn
        self.replica_dsn = replica_dsn

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        if self.replica_dsn:
            behind = asyncio.run(replica_lag(self.replica_dsn))
            replica = GaugeMetricFamily(
                "vbg_replica_lag_seconds", "How far the read replica is behind (-1: it does not answer)"
            )
            replica.add_metric([], -1.0 if behind is None else behind)
            yield replica
        figures = asyncio.run(read_database(self.dsn))
        up = GaugeMetricFamily("vbg_up", "1 when the database answered this scrape")
        up.add_metric([], 1.0 if figures.up else 0.0)
        yield up
        if not figures.up:
            return
        depth = GaugeMetricFamily(
            "vbg_queue_depth", "Jobs in each queue, by state", labels=["queue", "state"]
        )
        for (queue, state), n in sorted(figures.depths.items()):
            depth.add_metric([queue, state], n)
        yield depth
        lag = GaugeMetricFamily(
            "vbg_queue_lag_seconds", "Age of the oldest due job of each queue (worker lag)", labels=["queue"]
        )
        for queue, seconds in sorted(figures.lags.items()):
            lag.add_metric([queue], seconds)
        yield lag
        health = GaugeMetricFamily("vbg_instances", "Known remote instances by health", labels=["health"])
        for name, n in figures.instances.items():
            health.add_metric([name], n)
        yield health
        failing = GaugeMetricFamily(
            "vbg_instance_failures",
            "Consecutive delivery failures of each failing instance",
            labels=["domain", "unreachable"],
        )
        for domain, count, unreachable in figures.failing:
            failing.add_metric([domain, "1" if unreachable else "0"], count)
        yield failing


# ── exporting ────────────────────────────────────────────────────────────────


def prepare_multiprocess(folder: Path) -> None:
    """Use ``folder`` (emptied) for the counters of this process and of the processes it
    starts. Must run before prometheus-client is imported (see the module docstring)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)


def registry(dsn: str, replica_dsn: str | None = None) -> Any:
    """A registry with the process counters (summed over every process when in
    multiprocess mode) and the database gauges."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import multiprocess as mp

    if os.environ.get(MULTIPROC_ENV):
        reg = CollectorRegistry()
        mp.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    else:
        reg = CollectorRegistry()
        reg.register(_DefaultCounters(REGISTRY))
    reg.register(DatabaseCollector(dsn, replica_dsn))
    return reg


class _DefaultCounters:
    """The default registry's families seen through another registry."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        get()
        yield from self.source.collect()


def parse_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) to its parts; ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def serve_exporter(address: str, dsn: str, replica_dsn: str | None = None) -> Any:
    """Export the metrics over HTTP on ``address`` (``host:port``) in a daemon thread;
    returns the server (``shutdown()`` stops it)."""
    from prometheus_client import start_http_server

    host, port = parse_address(address)
    server, _thread = start_http_server(port, addr=host, registry=registry(dsn, replica_dsn))
    log.info("metrics exported on http://%s:%d/metrics", host, port)
    return server


def samples() -> dict[str, list[tuple[dict[str, str], float]]]:
    """The process counters as ``{metric name: [(labels, value)]}`` (summed over the
    processes of ``serve``), for the admin page."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import multiprocess as mp

    get()
    if os.environ.get(MULTIPROC_ENV):
        reg = CollectorRegistry()
        mp.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
        families = reg.collect()
    else:
        families = REGISTRY.collect()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found
