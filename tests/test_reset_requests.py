"""Forgot-password requests: one valid token per account however many arrive at once, and the
same work whether or not the email has an account."""

import re
from contextlib import contextmanager

import anyio
import pytest
from sqlalchemy import event, func, select

import models
from tests.conftest import app_on_own_engine, create_test_user

pytestmark = pytest.mark.anyio

PREFIX = "resetrace"


@pytest.fixture
def mails(monkeypatch) -> list[dict]:
    sent = []

    async def capture(db, **mail):
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


async def reset_request_statements(client, engine, email: str) -> list[str]:
    with statements_sent(engine) as statements:
        response = await client.post("/api/users/forgot-password", json={"email": email})
    assert response.status_code == 202
    return statements


async def test_known_and_unknown_emails_run_the_same_statements(client, engine, mails):
    await create_test_user(client, "alice")
    await create_test_user(client, "bob")  # so "the user's tokens" are not the whole table

    known_sql = await reset_request_statements(client, engine, "alice@example.com")
    unknown_sql = await reset_request_statements(client, engine, "nobody@example.com")

    assert known_sql == unknown_sql
    assert any("FOR UPDATE" in statement for statement in known_sql)
    # Only the known email gets mail.
    assert [mail["to_email"] for mail in mails] == ["alice@example.com"]
