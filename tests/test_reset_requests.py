"""Forgot-password requests: one valid token per account however many arrive at once, and the
same work whether or not the email has an account."""

import re
from contextlib import contextmanager

import anyio
import pytest
from sqlalchemy import event, func, select
from starlette.background import BackgroundTasks

import models
from tests.conftest import app_on_own_engine, create_test_user

pytestmark = pytest.mark.anyio

PREFIX = "resetrace"


@pytest.fixture
def mails(monkeypatch) -> list[dict]:
    sent = []

    async def capture(**mail):
        sent.append(mail)

    monkeypatch.setattr("routers.users.send_password_reset_email", capture)
    return sent


@pytest.fixture
async def live(engine):
    """The app on its own pooled engine: requests run in concurrent transactions."""
    async with app_on_own_engine(PREFIX, pool_size=10, max_overflow=0) as (client, _, sessions):
        yield client, sessions


@pytest.mark.parametrize("requests", [4, 8])
async def test_concurrent_reset_requests_leave_exactly_one_valid_token(live, mails, requests):
    client, sessions = live
    email = f"{PREFIX}@example.com"
    account = {"username": PREFIX, "email": email, "password": "reset race 123"}
    assert (await client.post("/api/users", json=account)).status_code == 201

    statuses = []

    async def ask():
        response = await client.post("/api/users/forgot-password", json={"email": email})
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(requests):
            tg.start_soon(ask)

    assert statuses == [202] * requests
    assert len(mails) == requests
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(models.PasswordResetToken)
            .join(models.User)
            .where(models.User.email == email)
        )
    assert stored == 1
    # Exactly one of the mailed links still works.
    working = []
    for mail in mails:
        response = await client.post(
            "/api/users/reset-password",
            json={"token": mail["token"], "new_password": "a new password 1"},
        )
        working.append(response.status_code == 200)
    assert working.count(True) == 1


# --- Known and unknown emails: the same work -------------------------------------------------


@contextmanager
def statements_sent(engine):
    """Every SQL statement sent on the test engine, savepoint names made comparable."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(re.sub(r"sa_savepoint_\d+", "sa_savepoint", statement))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
def scheduled(monkeypatch) -> list[tuple]:
    """Every background task scheduled: (function, names of its arguments)."""
    tasks = []
    add_task = BackgroundTasks.add_task

    def record(self, func, *args, **kwargs):
        tasks.append((func, tuple(sorted(kwargs)), len(args)))
        return add_task(self, func, *args, **kwargs)

    monkeypatch.setattr(BackgroundTasks, "add_task", record)
    return tasks


async def reset_request_work(client, engine, scheduled, email: str) -> tuple[list, list]:
    scheduled.clear()
    with statements_sent(engine) as statements:
        response = await client.post("/api/users/forgot-password", json={"email": email})
    assert response.status_code == 202
    return statements, list(scheduled)


async def test_known_and_unknown_emails_run_the_same_statements_and_background_work(
    client, engine, mails, scheduled
):
    await create_test_user(client, "alice")
    await create_test_user(client, "bob")  # so "the user's tokens" are not the whole table

    known_sql, known_tasks = await reset_request_work(
        client, engine, scheduled, "alice@example.com"
    )
    unknown_sql, unknown_tasks = await reset_request_work(
        client, engine, scheduled, "nobody@example.com"
    )

    assert known_sql == unknown_sql
    assert any("FOR UPDATE" in statement for statement in known_sql)
    assert known_tasks == unknown_tasks
    assert len(known_tasks) == 1
    # Only the known email gets mail, sent by the background task.
    assert [mail["to_email"] for mail in mails] == ["alice@example.com"]
