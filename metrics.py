"""Prometheus metrics at GET /metrics, one truth for every worker of a server.

prometheus-client's multiprocess mode: each worker writes its numbers to memory-mapped files in
one folder, and a scrape, whichever worker answers it, adds up every worker's files. The folder
is PROMETHEUS_MULTIPROC_DIR when set (then the operator empties it before each start, as
prometheus-client asks). Unset, each server gets a folder of its own under `DATA_DIR/metrics`,
named after the process whose workers share it (uvicorn's supervisor with `--workers` or
`--reload`, gunicorn's arbiter, else the single process itself) and its start time, so a
reused pid never inherits old counters; a starting worker removes the folders of servers that
have stopped and the live gauges of workers that died.

Series (labels are the route template, never the raw path, so ids cannot multiply them):
- `http_requests_total{method, route, status}`
- `http_request_duration_seconds{method, route}` (a histogram)
- `db_connections_in_use{pool}`: connections checked out of the write and read pools
- `password_hashes_waiting`: argon2 hashes queued behind the running ones
- `rate_limit_refusals_total{scope}`: 429s, per limit
- `jobs_waiting`, `jobs_running`, `jobs_failed`, `jobs_waiting_to_retry` (waiting after a
  failed run): the job queue's rows (jobs.py), counted at each scrape, whichever worker answers

With METRICS_TOKEN set, a scrape must bring it (`Authorization: Bearer <token>`); unset, the
route answers whoever reaches the app, and the proxy in front denies it to the public.
"""

import atexit
import hmac
import logging
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import auth
import database
from config import settings
from schemas import Detail

logger = logging.getLogger(__name__)

# Requests whose path matches no route (404s, slash redirects) share this one label.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The default buckets start at 5 ms; a cached read here takes about one.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


# --- The shared folder -----------------------------------------------------------------------


def process_key(pid: int) -> str | None:
    """`pid-starttime` of a running process, None when there is none with that pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # it exists, under another user
        pass
    try:  # Linux: clock ticks since boot, the 22nd field
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    return f"{pid}-{started}"


def server_pid() -> int:
    """The process whose workers share one folder: the supervisor that started this worker
    (uvicorn starts its workers with multiprocessing, gunicorn forks them), else this one."""
    if multiprocessing.parent_process() is not None or "gunicorn" in sys.modules:
        return os.getppid()
    return os.getpid()


def multiprocess_dir() -> Path:
    """PROMETHEUS_MULTIPROC_DIR, or this server's own folder under DATA_DIR/metrics."""
    if settings.prometheus_multiproc_dir:
        settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)
        return settings.prometheus_multiproc_dir
    base = settings.data_dir / "metrics"
    folder = base / (process_key(server_pid()) or str(server_pid()))
    folder.mkdir(parents=True, exist_ok=True)
    remove_stopped_servers(base, keep=folder)
    return folder


def remove_stopped_servers(base: Path, keep: Path) -> None:
    for folder in base.iterdir():
        pid = folder.name.partition("-")[0]
        if folder != keep and pid.isdigit() and process_key(int(pid)) != folder.name:
            shutil.rmtree(folder, ignore_errors=True)  # a sibling worker may be at it too


def forget_dead_workers(folder: Path) -> None:
    """A worker that was killed left its live gauges behind (its counters rightly stay)."""
    for file in folder.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and process_key(int(pid)) is None:
            # prometheus-client leaves this function unannotated
            multiprocess.mark_process_dead(int(pid), str(folder))  # type: ignore[no-untyped-call]


if settings.metrics_enabled:
    MULTIPROC_DIR = multiprocess_dir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(MULTIPROC_DIR)
    # prometheus-client picks its storage from the variable when first imported; pick again,
    # whoever imported it first.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # unannotated
    forget_dead_workers(MULTIPROC_DIR)
    atexit.register(multiprocess.mark_process_dead, os.getpid(), str(MULTIPROC_DIR))


# --- The series ------------------------------------------------------------------------------

REQUESTS = Counter(
    "http_requests", "HTTP requests answered", ["method", "route", "status"], registry=None
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
CONNECTIONS_IN_USE = Gauge(
    "db_connections_in_use",
    "Database connections checked out of the pool",
    ["pool"],
    multiprocess_mode="livesum",
    registry=None,
)
PASSWORD_HASHES_WAITING = Gauge(
    "password_hashes_waiting",
    "Password hashes queued behind the running ones",
    multiprocess_mode="livesum",
    registry=None,
)
RATE_LIMIT_REFUSALS = Counter(
    "rate_limit_refusals", "Requests refused with 429 by a rate limit", ["scope"], registry=None
)


WRITE_POOL_IN_USE = CONNECTIONS_IN_USE.labels("write")
READ_POOL_IN_USE = CONNECTIONS_IN_USE.labels("read")
GAUGES = (WRITE_POOL_IN_USE, READ_POOL_IN_USE, PASSWORD_HASHES_WAITING)
_last_sampled = [-1, -1, -1]


def checked_out(engine: AsyncEngine) -> int:
    """Connections of the engine's pool in use now (none for a pool that keeps none)."""
    pool = engine.pool
    return pool.checkedout() if isinstance(pool, QueuePool) else 0


def sample_gauges() -> None:
    """Connections in use per pool and hashes waiting, read where they are kept (no hook in
    the database layer or the hash queue); written to the shared file only when they change."""
    now = checked_out(database.engine), checked_out(database.read_engine), auth.hashes_waiting()
    for gauge, value, last in zip(GAUGES, now, _last_sampled, strict=True):
        if value != last:
            gauge.set(value)
    _last_sampled[:] = now


# (method, route, status) -> its request counter and latency histogram: prometheus-client's
# `labels()` checks and converts its arguments on every call, a dict lookup does not.
_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    found = _series.get((method, route, status))
    if found is None:
        found = REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
        _series[(method, route, status)] = found
    return found


def route_template(scope: Scope) -> str:
    """`/api/posts/{post_id}` for /api/posts/42; a mount's prefix and `/{path}`; UNMATCHED."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path_format", None) or route.path)
    if "endpoint" in scope:  # a mount (static files, pictures): its own prefix
        mount = scope.get("root_path", "").removeprefix(scope.get("app_root_path", ""))
        return f"{mount}/{{path}}"
    return UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (pure ASGI: a response streams
    through untouched)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless the app answers: an exception becomes a 500 further out

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            count, latency = series(method, route_template(scope), status)
            count.inc()
            latency.observe(time.perf_counter() - start)
            # After the request, its own connection is back: an idle worker reports zero.
            sample_gauges()


router = APIRouter(include_in_schema=False)


def scrape_allowed(authorization: str | None) -> bool:
    """True without a METRICS_TOKEN, else only for `Bearer <the token>` (the scheme in any case,
    as RFC 9110 has it), compared in constant time so no answer tells how much of it matched."""
    if settings.metrics_token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    # As bytes: compare_digest refuses str beyond ASCII, and a header is read as Latin-1.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode("latin-1"), expected)


# The queue's rows by state; the waiting ones that failed before wait for a retry.
COUNT_JOBS = text(
    "SELECT count(*) FILTER (WHERE status = 'todo'),"
    " count(*) FILTER (WHERE status = 'doing'),"
    " count(*) FILTER (WHERE status = 'failed'),"
    " count(*) FILTER (WHERE status = 'todo' AND attempts > 0)"
    " FROM procrastinate.procrastinate_jobs"
)
JOB_SERIES = (
    ("jobs_waiting", "Jobs in the queue waiting to run"),
    ("jobs_running", "Jobs a worker is running"),
    ("jobs_failed", "Jobs given up on after their last attempt"),
    ("jobs_waiting_to_retry", "Waiting jobs that failed before and wait for their retry"),
)
JOB_COUNT_SECONDS = 2  # a scrape answers without them rather than wait on a slow database


async def job_families() -> list[Metric]:
    """The queue's counts as gauges, read from the database now; none when it cannot answer
    (a scrape while the database is down still shows the rest)."""
    try:
        with anyio.fail_after(JOB_COUNT_SECONDS):
            async with database.engine.connect() as connection:
                counts = (await connection.execute(COUNT_JOBS)).one()
    except Exception:
        logger.warning("The job counts were left out of /metrics", exc_info=True)
        return []
    return [
        GaugeMetricFamily(name, documentation, value=count)
        for (name, documentation), count in zip(JOB_SERIES, counts, strict=True)
    ]


class Families:
    """A collector that gives the families it was made with."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(extra: list[Metric]) -> bytes:
    """Every worker's series, added up from their files, and `extra`."""
    sample_gauges()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated
    registry.register(Families(extra))
    return generate_latest(registry)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Every worker's series and the job queue's, in Prometheus' text format."""
    if not scrape_allowed(request.headers.get("authorization")):
        # Answered here, not raised: the error handlers render paths outside /api as HTML.
        return JSONResponse(
            {"detail": Detail.NOT_AUTHENTICATED},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = await anyio.to_thread.run_sync(render, await job_families())  # render reads files
    return Response(body, media_type=CONTENT_TYPE_LATEST)
