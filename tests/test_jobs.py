"""Mail that is never lost: queued in PostgreSQL before the answer, sent by the queue's worker,
retried with growing waits, run again after a worker dies, and sent once by many workers."""

import os
import signal
import subprocess
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from procrastinate.utils import utcnow
from prometheus_client.parser import text_string_to_metric_families

import email_utils
import jobs
from config import settings
from tests.conftest import TEST_DATABASE_URL, body_of, free_port
from tests.servers import uvicorn_app, wait_until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
MAIL_HOST = "127.0.0.1"


class Inbox:
    """An aiosmtpd handler that keeps what it receives. `hold`: the first mail waits at DATA
    until `release` is set, then is refused (its sender is meant to be gone by then)."""

    def __init__(self, hold: bool = False):
        self.messages: list = []
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.hold and not self.holding.is_set():
            self.holding.set()
            await server.loop.run_in_executor(None, self.release.wait, 30)
            return "451 Try again later"
        self.messages.append(envelope)
        return "250 OK"

    def mails(self) -> list:
        return [message_from_bytes(e.content, policy=policy.default) for e in self.messages]


def sql(query: str, *params: object) -> list[tuple]:
    """A query on the test database, committed, on a connection of its own."""
    with psycopg.connect(jobs.libpq_url(TEST_DATABASE_URL), autocommit=True) as conn:
        conn.execute(f"SET search_path TO {jobs.SCHEMA}")  # as the queue's own connections
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


def jobs_table() -> list[tuple]:
    return sql(
        "SELECT id, status, attempts, scheduled_at FROM procrastinate.procrastinate_jobs"
        " WHERE task_name = 'send_mail' ORDER BY id"
    )


def due_now() -> None:
    """The waits of the jobs that wait for a retry are over."""
    sql("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'")


@pytest.fixture
async def queue(engine):
    """The app's queue, open, empty before and after the test."""
    sql("DELETE FROM procrastinate.procrastinate_jobs")
    async with jobs.app.open_async():
        yield jobs.app
    sql("DELETE FROM procrastinate.procrastinate_jobs")
    sql("DELETE FROM procrastinate.procrastinate_workers")


@pytest.fixture
def smtp_settings(monkeypatch):
    """The app pointed at a loopback port where no SMTP server listens yet."""
    port = free_port()
    monkeypatch.setattr(settings, "mail_server", MAIL_HOST)
    monkeypatch.setattr(settings, "mail_port", port)
    monkeypatch.setattr(settings, "mail_use_tls", False)
    return port


def start_sink(port: int, inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname=MAIL_HOST, port=port)
    controller.start()
    return controller


async def run_queue_until_empty(name: str = "test-worker") -> None:
    """One worker that stops once no job is due."""
    await jobs.app.run_worker_async(wait=False, install_signal_handlers=False, name=name)


def test_retry_waits_start_under_ten_seconds_grow_cap_at_ten_minutes_and_span_an_hour():
    waits = [jobs.retry_wait(attempts) for attempts in range(settings.mail_max_attempts - 1)]
    assert 0 < waits[0] <= 10
    assert waits == sorted(waits) and waits[1] > waits[0]
    assert max(waits) == 600
    assert sum(waits) >= 3600
    assert settings.mail_max_attempts == 20


async def test_a_queued_mail_waits_while_smtp_is_down_and_is_sent_once_it_is_up(
    queue, smtp_settings
):
    await email_utils.queue_mail(
        None, "verification", to_email="alice@example.com", username="alice", token="v"
    )
    await email_utils.queue_mail(
        None, "password_reset", to_email="alice@example.com", username="alice", token="r"
    )
    assert [status for _, status, _, _ in jobs_table()] == ["todo", "todo"]

    # The SMTP server is down: each job fails once and waits for its retry.
    await run_queue_until_empty()
    table = jobs_table()
    assert [(status, attempts) for _, status, attempts, _ in table] == [("todo", 1), ("todo", 1)]
    assert all(scheduled_at > utcnow() for _, _, _, scheduled_at in table)

    inbox = Inbox()
    controller = start_sink(smtp_settings, inbox)
    try:
        due_now()
        await run_queue_until_empty()
    finally:
        controller.stop()

    mails = inbox.mails()
    assert [mail["Subject"] for mail in mails] == [
        email_utils.VERIFY_SUBJECT,
        email_utils.RESET_SUBJECT,
    ]
    assert "reset-password?token=" in body_of(mails[1], "plain")
    assert jobs_table() == []  # sent: the row (and the token in it) is gone


async def test_a_failed_mail_is_retried_with_a_growing_wait_and_given_up_after_max_attempts(
    queue, smtp_settings, monkeypatch
):
    monkeypatch.setattr(settings, "mail_max_attempts", 2)
    await email_utils.queue_mail(
        None, "password_reset", to_email="alice@example.com", username="alice", token="t"
    )
    await run_queue_until_empty()
    [(_, status, attempts, _)] = jobs_table()
    assert (status, attempts) == ("todo", 1)

    due_now()
    await run_queue_until_empty()
    [(_, status, attempts, _)] = jobs_table()
    assert (status, attempts) == ("failed", 2)  # MAIL_MAX_ATTEMPTS runs, then no more


async def test_two_workers_send_each_mail_once(queue, smtp_settings):
    inbox = Inbox()
    controller = start_sink(smtp_settings, inbox)
    recipients = [f"user{n}@example.com" for n in range(12)]
    try:
        for address in recipients:
            await email_utils.queue_mail(
                None, "verification", to_email=address, username=address.split("@")[0], token="t"
            )
        import anyio

        async with anyio.create_task_group() as workers:
            workers.start_soon(run_queue_until_empty, "worker-a")
            workers.start_soon(run_queue_until_empty, "worker-b")
    finally:
        controller.stop()

    assert sorted(rcpt for e in inbox.messages for rcpt in e.rcpt_tos) == sorted(recipients)
    assert jobs_table() == []


def worker_process(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": TEST_DATABASE_URL,
        "MAIL_SERVER": MAIL_HOST,
        "MAIL_PORT": str(port),
        "MAIL_USE_TLS": "false",
    }
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)


async def test_a_worker_killed_mid_job_leaves_the_job_to_run_again(queue, smtp_settings):
    inbox = Inbox(hold=True)
    controller = start_sink(smtp_settings, inbox)
    process = worker_process(smtp_settings)
    try:
        await email_utils.queue_mail(
            None, "password_reset", to_email="alice@example.com", username="alice", token="t"
        )
        await wait_until(inbox.holding.is_set)  # the worker is sending it
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        [(_, status, _, _)] = jobs_table()
        assert status == "doing"  # stranded, until the periodic recovery sees the dead worker

        assert await jobs.recover_stalled_jobs(queue, seconds_since_heartbeat=0) == 1
        inbox.release.set()
        await run_queue_until_empty()
    finally:
        inbox.release.set()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        controller.stop()

    [mail] = inbox.mails()
    assert mail["To"] == "alice@example.com"
    assert jobs_table() == []


async def test_ctrl_c_stops_the_worker_cleanly_and_the_job_in_flight_is_sent(queue, smtp_settings):
    inbox = Inbox()
    controller = start_sink(smtp_settings, inbox)
    process = worker_process(smtp_settings)
    try:
        await wait_until(lambda: bool(sql("SELECT 1 FROM procrastinate.procrastinate_workers")))
        await email_utils.queue_mail(
            None, "password_reset", to_email="alice@example.com", username="alice", token="t"
        )
        await wait_until(lambda: bool(inbox.messages))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        controller.stop()

    assert len(inbox.messages) == 1
    assert jobs_table() == []
    assert sql("SELECT id FROM procrastinate.procrastinate_workers") == []  # it signed off


async def test_a_job_logged_by_the_worker_never_shows_the_link_token(queue, smtp_settings, caplog):
    await email_utils.queue_mail(
        None,
        "password_reset",
        to_email="alice@example.com",
        username="alice",
        token="secret-token-value",
    )
    with caplog.at_level("INFO"):
        await run_queue_until_empty()
    assert "send_mail[" in caplog.text
    assert "secret-token-value" not in caplog.text


def test_the_queue_connects_with_libpq_spelling_of_the_app_database():
    url = "postgresql+psycopg://blog:s%40cret@db.example.com:5432/blog"
    assert jobs.libpq_url(url) == "postgresql://blog:s%40cret@db.example.com:5432/blog"


async def test_a_reset_asked_while_smtp_is_down_survives_the_app_killed_and_is_mailed_once_up(
    queue, smtp_settings, tmp_path
):
    """The SPEC's case end to end over HTTP: SMTP down, the app killed right after the 202,
    SMTP up, the app started again: its in-app worker sends the mail, once."""
    env = {"MAIL_SERVER": MAIL_HOST, "MAIL_PORT": str(smtp_settings), "MAIL_USE_TLS": "false"}
    account = {"username": "queued", "email": "queued@example.com", "password": "long enough pw"}
    try:
        async with uvicorn_app(env, tmp_path) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                assert (await http.post("/api/users", json=account)).status_code == 201
                forgot = await http.post(
                    "/api/users/forgot-password", json={"email": account["email"]}
                )
                assert forgot.status_code == 202
            server.process.kill()
            await server.process.wait()
        # Both queued: waiting for a retry, or held by the worker that was killed mid-send
        # until a worker's periodic check (after STALLED_AFTER_SECONDS) puts them back.
        assert len(jobs_table()) == 2
        await jobs.recover_stalled_jobs(queue, seconds_since_heartbeat=0)
        assert [status for _, status, _, _ in jobs_table()] == ["todo", "todo"]

        inbox = Inbox()
        controller = start_sink(smtp_settings, inbox)
        try:
            due_now()  # their first retry's wait is over
            async with uvicorn_app(env, tmp_path):
                await wait_until(lambda: len(inbox.messages) == 2, seconds=60)
                await wait_until(lambda: jobs_table() == [])  # done, and the rows gone
        finally:
            controller.stop()
    finally:
        sql("DELETE FROM public.users WHERE username = 'queued'")

    assert sorted(mail["Subject"] for mail in inbox.mails()) == sorted(
        [email_utils.VERIFY_SUBJECT, email_utils.RESET_SUBJECT]
    )
    assert all(mail["To"] == account["email"] for mail in inbox.mails())


async def test_metrics_show_the_jobs_waiting_running_failed_and_waiting_to_retry(
    queue, smtp_settings, client
):
    for token in ("a", "b"):
        await email_utils.queue_mail(
            None, "password_reset", to_email="alice@example.com", username="alice", token=token
        )
    await run_queue_until_empty()  # SMTP is down: both failed once and wait for a retry
    await email_utils.queue_mail(
        None, "verification", to_email="bob@example.com", username="bob", token="c"
    )
    [failed, *_] = jobs_table()
    sql("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", failed[0])

    scrape = (await client.get("/metrics")).text

    values = {
        family.name: family.samples[0].value
        for family in text_string_to_metric_families(scrape)
        if family.name.startswith("jobs_")
    }
    assert values == {
        "jobs_waiting": 2,
        "jobs_running": 0,
        "jobs_failed": 1,
        "jobs_waiting_to_retry": 1,
    }
