"""The blog: JSON API under /api, HTML pages, static files. Wiring only."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import caching
import docs
import errors
import jobs
import log_filters
import metrics
from body_limit import BodyLimitMiddleware
from config import settings
from database import EMBEDDED, engine, read_engine, upgrade_to_head
from http_methods import HeadAndOptionsMiddleware, OtherSpelling
from logs import RequestIdMiddleware, configure_logging
from ratelimit import limiter
from routers import (
    admin,
    comments,
    feeds,
    health,
    login,
    pages,
    post_images,
    posts,
    tags,
    users,
    verification,
)
from security_headers import SecurityHeadersMiddleware

configure_logging(settings.log_format)
for chatty in ("watchfiles", "alembic.runtime.plugins"):
    logging.getLogger(chatty).setLevel(logging.WARNING)
log_filters.install()  # no reset token from a request line in the access log
HERE = Path(__file__).parent


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if EMBEDDED:  # zero-setup development: bring the embedded database up to date
        await run_in_threadpool(upgrade_to_head)
    # What is loaded by now lives as long as the process: frozen, the garbage collector's full
    # passes skip it, instead of walking every module's objects in a pause of 100 ms or more
    # in the middle of requests (bench/README.md).
    gc.collect()
    gc.freeze()
    async with jobs.running(worker=settings.run_worker_in_app):  # every mail is queued there
        yield
    await limiter.aclose()
    await engine.dispose()
    await read_engine.dispose()
    await health.probe_engine.dispose()


app = FastAPI(
    title="Blog API",
    summary="Users, posts and profile pictures, with HTML pages.",
    lifespan=lifespan,
    docs_url=None,  # docs.py serves /docs and /redoc without a CDN
    redoc_url=None,
    # The app's metrics are Prometheus' (metrics.py). FastAPI's own OpenTelemetry, on by
    # default, looked up the global providers on every request: 1 % of a page of posts.
    telemetry={"tracing": False, "metrics": False, "logs": False},
    redirect_slashes=False,  # Starlette's names the Host header's host: OtherSpelling does not
)
app.add_middleware(caching.ETagMiddleware)  # innermost: sees the route's own 200
app.add_middleware(HeadAndOptionsMiddleware)  # HEAD runs as GET, so gets its ETag and 304
app.add_middleware(BodyLimitMiddleware)  # inside the headers, so a 413 carries them too
app.add_middleware(SecurityHeadersMiddleware)
if settings.cors_origins:
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        # A client of another origin revalidates with the ETag it can read (caching.py).
        allow_headers=["Authorization", "Content-Type", "X-Request-ID", "If-None-Match"],
        expose_headers=["X-Request-ID", "ETag"],
    )
if settings.metrics_enabled:
    app.add_middleware(metrics.MetricsMiddleware)
app.add_middleware(RequestIdMiddleware)  # outermost: every response and log line gets the ID
errors.install(app)
app.add_exception_handler(caching.NotModified, caching.not_modified)

app.include_router(post_images.router)  # before posts' /{post_id}: "images" is no post id
app.include_router(posts.router)  # the list of posts is the hottest route
app.include_router(login.router)  # before users: /session is no user id
app.include_router(users.router)
app.include_router(verification.router)
app.include_router(admin.router)
app.include_router(comments.router)
app.include_router(tags.router)
app.include_router(health.router)
app.include_router(pages.router)
app.include_router(feeds.router)
app.include_router(docs.router)
if settings.metrics_enabled:
    app.include_router(metrics.router)


app.router.default = OtherSpelling(app)  # http_methods.py: never a redirect to the Host header

app.mount(docs.ASSETS_URL, docs.assets, name="docs-assets")
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
# StaticFiles answers 500 for a folder that does not exist (as with S3, until a local upload).
settings.media_dir.mkdir(parents=True, exist_ok=True)
app.mount("/media", StaticFiles(directory=settings.media_dir), name="media")
