"""The mail queue: password resets asked for without pause, and the first page while the
app's own queue worker is busy sending (`--only mail`).

Every mail is a row of the `procrastinate` schema, written in the request's own transaction,
and a worker in the app's process (RUN_WORKER_IN_APP) sends it (jobs.py). With this group,
`run.py` starts an SMTP sink on loopback (`smtp_sink`: aiosmtpd in this process, every mail
taken and counted, none kept) and points the app's MAIL_SERVER at it, without TLS.

- `forgot_password`: `POST /api/users/forgot-password` with the email of a seeded user (20 by
  default) at random, on 8 connections: each request replaces the account's reset token and
  queues its mail in one commit, while the worker sends what the requests queue.
- `list_mail_idle`, `list_mail_busy`: the first page with the queue empty (before and after,
  averaged), and while the worker sends a backlog of mails put in the queue with SQL
  beforehand, more than it can send in the run (checked: the stderr line says how many it
  sent during the run and how many were left). Target: the first page while the worker is
  busy at least half its rate with the worker idle: sending mail may slow the reads down,
  not take the server from them.

Between scenarios the mails still queued are deleted (and those in flight awaited), so each
starts from an empty queue, as does every later group.
"""

import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from aiosmtpd.controller import Controller
from runner import Result, Seed, Target, average, free_port, run_wrk, server_cpu_seconds

FORGOT_PASSWORD_CONNECTIONS = 8  # on 20 accounts: some wait for their turn on a row lock
BACKLOG_MAILS = 5_000  # mails queued before list_mail_busy (more are added for longer runs)
BACKLOG_MAILS_PER_SECOND = 400  # above what the worker sends here, to last through the run
SETTLE_SECONDS = 30  # the longest wait for the queue to empty (an SMTP attempt takes <= 15 s)
# The queue's mail jobs as jobs.py defers them (MAIL_QUEUE, the task `send_mail`).
MAIL_JOBS = "procrastinate_jobs WHERE queue_name = 'mail'"
SCENARIOS = {
    "forgot_password": "POST /api/users/forgot-password, a seeded account's email, 8 connections",
    "list_mail_idle": "first page, the queue's worker idle (before and after the next, averaged)",
    "list_mail_busy": "first page, while the worker sends a backlog of queued mails",
}
TARGETS = [Target("list_mail_busy / list_mail_idle", "list_mail_busy", "list_mail_idle", 0.5)]


class CountingSink:
    """An SMTP server's handler that takes every mail, counts it and forgets it."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        with self._lock:
            self.received += 1
        return "250 OK"


@contextmanager
def smtp_sink():
    """An SMTP server on a free loopback port, in a thread of this process; yields
    (its port, the handler counting what it took). Stopped on the way out."""
    handler = CountingSink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def mail_settings(port: int) -> dict[str, str]:
    """The app's environment for sending to the sink on `port`."""
    return {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(port),
        "MAIL_USE_TLS": "false",
        "RUN_WORKER_IN_APP": "true",
    }


def queue_connection(dsn: str) -> psycopg.Connection:
    """A connection with the queue's schema on its search path, as jobs.py's: the queue's
    triggers name its tables without it."""
    return psycopg.connect(dsn, autocommit=True, options="-c search_path=procrastinate,public")


def queued(conn: psycopg.Connection, status: str = "todo") -> int:
    query = f"SELECT count(*) FROM {MAIL_JOBS} AND status = %s"
    return conn.execute(query, (status,)).fetchone()[0]


def empty_the_queue(dsn: str, wait_first: bool = False) -> None:
    """No mail left to send: the queued ones deleted (after waiting up to SETTLE_SECONDS for
    them to go, if `wait_first`), then those in flight awaited."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with queue_connection(dsn) as conn:
        while wait_first and queued(conn) and time.monotonic() < deadline:
            time.sleep(0.2)
        conn.execute(f"DELETE FROM {MAIL_JOBS} AND status = 'todo'")
        while queued(conn, "doing") and time.monotonic() < deadline:
            time.sleep(0.2)
        failed = queued(conn, "failed")
    if failed:
        sys.exit(f"mail: {failed} mail jobs failed; is the SMTP sink up?")


def queue_backlog(dsn: str, state: Seed, count: int) -> None:
    """`count` reset mails to the seeded users, queued with one INSERT, as the app defers them
    (the queue's triggers notify the worker of each on commit), and the table's statistics
    taken in the same transaction, as autovacuum would soon. Without them, the worker's
    fetch of the next job kept a plan made for the near-empty table (PL/pgSQL caches it per
    connection) and took seconds a job at a few thousand rows, until the next ANALYZE."""
    with queue_connection(dsn) as conn, conn.transaction():
        conn.execute(
            """INSERT INTO procrastinate_jobs (queue_name, task_name, args)
               SELECT 'mail', 'send_mail', jsonb_build_object(
                        'kind', 'password_reset',
                        'fields', jsonb_build_object('to_email', (%s::text[])[1 + g %% %s],
                                                     'username', 'bench reader',
                                                     'token', 'not-a-token-' || g))
               FROM generate_series(1, %s) g""",
            ([u["email"] for u in state.users], len(state.users), count),
        )
        conn.execute("ANALYZE procrastinate_jobs")


def bench_mail(
    base: str,
    args,
    state: Seed,
    scripts: dict[str, Path],
    dsn: str,
    sink: CountingSink,
    pid: int,
) -> dict[str, Result]:
    """Resets asked for without pause; the first page with the worker idle, then busy sending
    a backlog, then idle again. Each starts from an empty queue. On stderr: what the sink
    took during each run, and the app's CPU time per page (the worker's included)."""
    secs, conns = args.seconds, args.connections
    first_page = f"{base}/api/posts?limit=10"
    cpu_us: dict[str, list[float]] = {"idle": [], "busy": []}

    def first_pages(worker: str) -> Result:
        started = server_cpu_seconds(pid)
        result = run_wrk(first_page, secs, conns)
        cpu_us[worker].append((server_cpu_seconds(pid) - started) / (result.rps * secs) * 1e6)
        return result

    empty_the_queue(dsn, wait_first=True)  # the seed's verification mails
    before = first_pages("idle")

    received = sink.received
    resets = scripts["forgot_password"]
    results = {"forgot_password": run_wrk(base, secs, FORGOT_PASSWORD_CONNECTIONS, resets)}
    sent_during_resets = sink.received - received
    with queue_connection(dsn) as conn:
        left_after_resets = queued(conn)
    empty_the_queue(dsn)

    backlog = max(BACKLOG_MAILS, BACKLOG_MAILS_PER_SECOND * (secs + 2))
    queue_backlog(dsn, state, backlog)
    time.sleep(1)  # the worker is sending before the measurement starts
    received = sink.received
    results["list_mail_busy"] = first_pages("busy")
    sent_during_list = sink.received - received
    with queue_connection(dsn) as conn:
        left_after_list = queued(conn)
    empty_the_queue(dsn)

    after = first_pages("idle")
    results["list_mail_idle"] = average(before, after)
    sys.stderr.write(
        f"mail: during forgot_password the sink took {sent_during_resets} mails"
        f" ({sent_during_resets / secs:.0f}/s), {left_after_resets} were still queued at its end;"
        f" during list_mail_busy it took {sent_during_list} ({sent_during_list / secs:.0f}/s)"
        f" of a backlog of {backlog}, {left_after_list} still queued at its end"
        f"{'' if left_after_list else ' (THE QUEUE RAN DRY: raise BACKLOG_MAILS)'}"
        f"{'' if sent_during_list else ' (THE WORKER SENT NOTHING: it was not busy)'};"
        f" the app's CPU per first page: idle {sum(cpu_us['idle']) / 2:.0f} us, busy"
        f" {cpu_us['busy'][0]:.0f} us (the worker's included)\n"
    )
    return results
