"""What an operator watches, for Prometheus at /metrics (docs/deploy.md, "What to watch").

Off unless `LIBRARY_METRICS_TOKEN` is set: then the route does not exist (404) and no request is
counted. With it, Prometheus sends the token as a bearer token (`authorization` in its scrape
config); anybody else gets 401. A token rather than a list of addresses: it means the same behind a
reverse proxy, where every request comes from the proxy's address.

Two kinds of figure:
- counted as requests are answered (`library.web.request_id.observe_requests` reports each one):
  requests and their latency by *route template* (`/api/records/{record_id}`, never the raw path,
  so a hostile client's made-up URLs add no series: they all count as `unmatched`), and by status
  (the errors);
- read when Prometheus asks: the sync state (last success, lag, uploads waiting), the notice outbox
  (backlog, oldest due, failing), the PostgreSQL pool of this process.
The SIP2 server counts its open sessions itself (library.selfcheck.server), in its own process.

Several processes (`library serve --workers N`, the SIP2 server beside the web service): each has
its own counters, and a scrape reaches one of them. With `PROMETHEUS_MULTIPROC_DIR` set (an empty
folder, emptied at every start: the systemd unit in deploy/ does it with RuntimeDirectory), every
process writes its figures to files there, and /metrics adds them all up (prometheus-client's
multiprocess mode). Without it, run one process per scraped address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import os
from collections.abc import Awaitable, Callable

from litestar import Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from piccolo.query.functions.aggregate import Max
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, \
    disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from library.db import engine, read_transaction
from library.settings import Settings
from library.sync.tables import SyncApplied, SyncOutbox, SyncState

log = logging.getLogger("library.metrics")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The route label of a request no route matched: unknown addresses are one series, however many.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a cached page (~1 ms) to a large import (seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_SAMPLE_SECONDS = 5.0

# No `_created` series beside each counter and histogram: a timestamp per series nobody alerts on.
disable_created_metrics()

REQUESTS = Counter("library_http_requests", "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("library_http_request_duration_seconds",
                    "Time from a request's arrival to the last byte of its answer, by route template",
                    ["route", "method"], buckets=BUCKETS)
# livesum: each process reports its own pool; the sum is the node's, a stopped worker's drops out.
POOL = Gauge("library_db_pool_connections", "PostgreSQL connections held by the pools, by state "
             "(in_use, idle, max)", ["state"], multiprocess_mode="livesum")


class _Requests:
    """Each (route, method, status) child looked up once: prometheus-client's `labels()` takes a
    lock and builds a key on every call. The routes are the app's, so the dictionaries stay small."""

    def __init__(self) -> None:
        self.counted: dict[tuple[str, str, int], Counter] = {}
        self.timed: dict[tuple[str, str], Histogram] = {}

    def record(self, method: str, route: str | None, status: int, seconds: float) -> None:
        route = route or UNMATCHED
        if method not in METHODS:
            method = "other"  # a made-up method is a 405, not a series of its own
        counter = self.counted.get((route, method, status))
        if counter is None:
            counter = self.counted[(route, method, status)] = REQUESTS.labels(route, method, str(status))
        counter.inc()
        timer = self.timed.get((route, method))
        if timer is None:
            timer = self.timed[(route, method)] = LATENCY.labels(route, method)
        timer.observe(seconds)


record_request = _Requests().record


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


def check_multiprocess_dir() -> None:
    """A multiprocess folder that is not there would fail the first scrape; say so at start-up."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder and not os.path.isdir(folder):
        raise RuntimeError(f"{MULTIPROCESS_DIR} names no folder: {folder} (make it, empty, before the service "
                           "starts; see docs/deploy.md)")


def sample_pool() -> None:
    """This process's PostgreSQL pool, now (asyncpg counts; nothing to wait for)."""
    pool = getattr(engine(), "pool", None)
    if pool is None:
        return
    size, idle = pool.get_size(), pool.get_idle_size()
    POOL.labels("in_use").set(size - idle)
    POOL.labels("idle").set(idle)
    POOL.labels("max").set(pool.get_max_size())


def start_pool_sampler(settings: Settings) -> Callable[[], Awaitable[None]]:
    """With several processes, each samples its pool every few seconds (a scrape reaches only one
    of them); with one, the scrape samples it. Returns the stopper."""
    task = None
    if settings.metrics_token and settings.engine == "postgres" and multiprocess():
        async def sample_forever() -> None:
            while True:
                sample_pool()
                await asyncio.sleep(POOL_SAMPLE_SECONDS)

        task = asyncio.create_task(sample_forever(), name="library-metrics-pool")

    async def stop() -> None:
        if task is not None:
            task.cancel()
        if multiprocess():
            # This process's live gauges leave the sum (its counters stay: they were counted).
            mark_process_dead(os.getpid())

    return stop


def _timestamp(value: dt.datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite gives an aggregate's timestamp back as text
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _gauge(name: str, documentation: str, value: float | None, labels: dict[str, str] | None = None
           ) -> GaugeMetricFamily | None:
    if value is None:
        return None
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


async def sync_figures(settings: Settings, now: dt.datetime) -> list[GaugeMetricFamily | None]:
    """A branch node: its last successful round, the lag since, the uploads not yet acknowledged.
    The central node: each branch's last upload (branches are few; their codes are the labels)."""
    if settings.node_role == "central":
        family = GaugeMetricFamily("library_sync_branch_last_upload_timestamp_seconds",
                                   "When the central node last applied an upload of each branch",
                                   labels=["branch"])
        rows = await SyncApplied.select(SyncApplied.branch.code.as_alias("branch"),
                                        Max(SyncApplied.applied_at, alias="last")).group_by(SyncApplied.branch.code)
        for row in rows:
            if (last := _timestamp(row["last"])) is not None:
                family.add_metric([row["branch"]], last)
        return [family]
    if not settings.central_url:
        return []  # a branch on its own: nothing to lag behind
    state = await SyncState.select(SyncState.last_success_at, SyncState.last_attempt_at,
                                   SyncState.last_error).where(SyncState.id == 1).first()
    state = state or {"last_success_at": None, "last_attempt_at": None, "last_error": ""}
    waiting = await SyncOutbox.count().where(SyncOutbox.acknowledged_at.is_null())
    success = _timestamp(state["last_success_at"])
    return [
        _gauge("library_sync_last_success_timestamp_seconds", "When this branch's last sync round succeeded",
               success),
        _gauge("library_sync_last_attempt_timestamp_seconds", "When this branch last tried a sync round",
               _timestamp(state["last_attempt_at"])),
        # Never synced: no lag to give; the alert is on the missing series (docs/deploy.md).
        _gauge("library_sync_lag_seconds", "Seconds since this branch's last successful sync round",
               None if success is None else max(0.0, now.timestamp() - success)),
        _gauge("library_sync_last_round_failed", "1 when the last sync round failed (its error is in "
               "`library sync status`)", 1.0 if state["last_error"] else 0.0),
        _gauge("library_sync_uploads_waiting", "Packaged uploads the central node has not acknowledged",
               float(waiting)),
    ]


# Read by the table's name: the outbox's table is `notice` whichever app holds its class (it moves
# from library.loans to library.notices with its data), and a metric must not break with the move.
# Raw SQL for that reason only; the statements are portable.
_OUTBOX_SQL = ("SELECT COUNT(*) AS waiting, "
               "SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS failing, "
               "MIN(CASE WHEN send_after <= {} THEN send_after END) AS oldest_due "
               "FROM notice WHERE sent_at IS NULL")


async def outbox_figures(now: dt.datetime) -> list[GaugeMetricFamily | None]:
    """The notices not sent yet, those that failed at least once, and how long the oldest one
    that is due has waited (a stuck sender shows here before readers complain)."""
    rows = await SyncState.raw(_OUTBOX_SQL, now)
    row = rows[0] if rows else {"waiting": 0, "failing": 0, "oldest_due": None}
    oldest = _timestamp(row["oldest_due"])
    return [
        _gauge("library_notices_waiting", "Notices in the outbox not sent yet (due or not)", float(row["waiting"] or 0)),
        _gauge("library_notices_failing", "Unsent notices whose sending failed at least once",
               float(row["failing"] or 0)),
        _gauge("library_notices_oldest_due_seconds", "How long the oldest due, unsent notice has waited",
               0.0 if oldest is None else max(0.0, now.timestamp() - oldest)),
    ]


class _Figures:
    """The figures read for one scrape, as a collector of a registry of its own."""

    def __init__(self, families: list[GaugeMetricFamily | None]) -> None:
        self.families = [family for family in families if family is not None]

    def collect(self):
        return iter(self.families)


async def exposition(settings: Settings) -> bytes:
    """Everything, in Prometheus's text format."""
    now = dt.datetime.now(dt.timezone.utc)
    async with read_transaction():
        families = [*await sync_figures(settings, now), *await outbox_figures(now)]
    if not multiprocess():
        sample_pool()
        counted = generate_latest(REGISTRY)
    else:
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        counted = generate_latest(merged)
    read = CollectorRegistry()
    read.register(_Figures(families))
    return counted + generate_latest(read)


def metrics_route(token: str) -> HTTPRouteHandler:
    """GET /metrics for whoever sends `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    @get("/metrics", opt={"permission": "credential"}, include_in_schema=False, name="metrics")
    async def metrics(request: Request) -> Response[bytes]:
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):
            raise NotAuthorizedException(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body = await exposition(request.app.state.settings)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
