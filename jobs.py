"""The queue's tasks: send a mail; and the queue itself (procrastinate, kept in PostgreSQL).

A job is a row of the app's own database, in the `procrastinate` schema (its tables, types and
functions, created by an Alembic migration like every other table). A request defers its mail
here before it answers; a worker runs it: in the app's process by default (main.py's
lifespan), or apart (`python -m worker`, RUN_WORKER_IN_APP=false), on any number of machines.

- A mail that fails is retried with growing waits (`retry_wait`): the first within 10 s, never
  more than 10 minutes apart, MAIL_MAX_ATTEMPTS runs in all (20: over two hours).
- A worker that dies mid-job stops sending heartbeats; the periodic `retry_stalled_jobs` puts
  its jobs back in the queue, so another worker runs them again.
- Each job is fetched by one worker only (procrastinate locks the row as it takes it).
- A finished job's row is deleted: its arguments hold the link of the mail (a reset token).
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import psycopg_pool
from procrastinate.jobs import Job
from procrastinate.schema import SchemaManager
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import email_utils
from config import settings
from database import DATABASE_URL, Base

logger = logging.getLogger(__name__)

SCHEMA = "procrastinate"
MAIL_QUEUE = "mail"
MAINTENANCE_QUEUE = "maintenance"
# Retries of a failed mail: FIRST_RETRY_SECONDS, doubled each time, never above LONGEST_WAIT.
FIRST_RETRY_SECONDS = 5
LONGEST_WAIT_SECONDS = 600
# A worker whose heartbeat (every 10 s) is older than this is dead: its jobs run again.
STALLED_AFTER_SECONDS = 30
# On Ctrl+C or SIGTERM a worker waits this long for its jobs in flight (longer than one SMTP
# attempt, 15 s), then aborts them: an aborted job goes back to the queue, never lost.
SHUTDOWN_GRACE_SECONDS = 20
# The worker in the app's process starts again this long after it stopped on an error.
RESTART_AFTER_SECONDS = 30


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://...`) as libpq spells it (`postgresql://...`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Arguments(dict[str, Any]):
    """A job's arguments as read back: procrastinate logs each job with their repr, and a
    mail's hold its link (a reset token), so the repr names the keys only."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{key!r}: ..." for key in self) + "}"


def load_arguments(text: str | bytes) -> Any:
    return json.loads(text, object_hook=Arguments)


POOL_OPTIONS: dict[str, Any] = {
    "conninfo": libpq_url(DATABASE_URL),
    # procrastinate's objects live in their own schema, apart from the app's tables.
    "kwargs": {"options": f"-c search_path={SCHEMA}"},
    "min_size": 1,
    "max_size": 4,
}
connector = procrastinate.PsycopgConnector(json_loads=load_arguments, **POOL_OPTIONS)
app = procrastinate.App(
    connector=connector,
    worker_defaults={
        "delete_jobs": "successful",
        "shutdown_graceful_timeout": SHUTDOWN_GRACE_SECONDS,
        "stalled_worker_timeout": STALLED_AFTER_SECONDS,
        "concurrency": 4,
    },
)


def retry_wait(attempts: int) -> int:
    """Seconds before the next run of a mail that failed `attempts + 1` times."""
    return int(min(FIRST_RETRY_SECONDS * 2**attempts, LONGEST_WAIT_SECONDS))


class MailRetry(procrastinate.BaseRetryStrategy):
    """`retry_wait` between runs; MAIL_MAX_ATTEMPTS runs in all (read when a run fails)."""

    def get_retry_decision(
        self, *, exception: BaseException, job: Job
    ) -> procrastinate.RetryDecision | None:
        if job.attempts + 1 >= settings.mail_max_attempts:  # attempts: the runs before this one
            logger.error("Giving up on job %s after %s attempts", job.id, job.attempts + 1)
            return None
        return procrastinate.RetryDecision(retry_in={"seconds": retry_wait(job.attempts)})


@app.task(name="send_mail", queue=MAIL_QUEUE, retry=MailRetry())
async def send_mail(kind: str, fields: dict[str, Any]) -> None:
    """Send one account mail over SMTP; raising makes the queue retry it."""
    await email_utils.deliver_mail(kind, fields)


@app.periodic(cron="* * * * *", periodic_id="retry_stalled_jobs")
@app.task(
    name="retry_stalled_jobs",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="retry_stalled_jobs",
    pass_context=True,
)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every minute: the jobs of workers that died mid-job go back to the queue."""
    await recover_stalled_jobs(context.app, STALLED_AFTER_SECONDS)


async def recover_stalled_jobs(app: procrastinate.App, seconds_since_heartbeat: float) -> int:
    """Put back in the queue every job held by a worker silent for that long; how many."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat)
    )
    for job in stalled:
        logger.warning("Job %s (%s) was left by a dead worker: retrying it", job.id, job.task_name)
        await app.job_manager.retry_job(job)
    return len(stalled)


async def defer_mail(db: AsyncSession | None, kind: str, fields: dict[str, Any]) -> int:
    """Queue a mail; the job's id. In `db`'s transaction: the job is committed with the rows
    that cause it (a reset token), or rolled back with them. Without `db`, on a connection of
    the queue's own, committed when this returns."""
    if db is None:
        return await send_mail.defer_async(kind=kind, fields=fields)
    async with queue_search_path(db) as connection:
        driver_connection = (await connection.get_raw_connection()).driver_connection
        return await send_mail.configure(connection=driver_connection).defer_async(
            kind=kind, fields=fields
        )


# For the rest of the transaction only.
SET_SEARCH_PATH = text("SELECT set_config('search_path', :path, true)")


@contextlib.asynccontextmanager
async def queue_search_path(db: AsyncSession) -> AsyncIterator[AsyncConnection]:
    """`db`'s connection with the queue's schema first on its search path, inside the block:
    procrastinate's statements, functions and triggers name their objects without it."""
    connection = await db.connection()
    path = await connection.scalar(text("SELECT current_setting('search_path')"))
    await connection.execute(SET_SEARCH_PATH, {"path": f"{SCHEMA}, {path}"})
    try:
        yield connection
    finally:
        await connection.execute(SET_SEARCH_PATH, {"path": path})


@event.listens_for(Base.metadata, "after_create")
def create_queue_schema(target: object, connection: Connection, **kw: object) -> None:
    """`Base.metadata.create_all` (a test database) makes the queue's schema too, as the
    migration does, so a mail can be queued there; `drop_all` drops it."""
    if connection.scalar(text(f"SELECT to_regclass('{SCHEMA}.procrastinate_jobs')")) is None:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        path = connection.scalar(text("SELECT current_setting('search_path')"))
        connection.execute(SET_SEARCH_PATH, {"path": SCHEMA})
        connection.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
        connection.execute(SET_SEARCH_PATH, {"path": path})


@event.listens_for(Base.metadata, "after_drop")
def drop_queue_schema(target: object, connection: Connection, **kw: object) -> None:
    connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


@contextlib.asynccontextmanager
async def running(*, worker: bool) -> AsyncIterator[None]:
    """The queue open for deferring while the app runs; `worker`: its jobs run here too.

    The pool opens without waiting for the database (the app starts while it is down, as its
    engine does). At the end the worker stops as on Ctrl+C: jobs in flight finish first.
    """
    pool = psycopg_pool.AsyncConnectionPool(
        **POOL_OPTIONS, open=False, check=psycopg_pool.AsyncConnectionPool.check_connection
    )
    await pool.open(wait=False)
    try:
        async with app.open_async(pool=pool):
            task = asyncio.create_task(work_in_app()) if worker else None
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()  # procrastinate stops gracefully on cancellation
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await pool.close()


async def work_in_app() -> None:
    """Run a worker for as long as the app runs; after an error (the database down, its
    schema not migrated yet), log it and start again a little later."""
    while True:
        try:
            await app.run_worker_async(install_signal_handlers=False)
        except Exception:
            logger.exception("The job worker stopped; starting again in %ss", RESTART_AFTER_SECONDS)
        await asyncio.sleep(RESTART_AFTER_SECONDS)
