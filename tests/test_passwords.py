"""Changing a password, and resetting a forgotten one with a mailed single-use token."""

import hashlib
from datetime import UTC, datetime, timedelta
from unittest.mock import AsyncMock

import pytest
from sqlalchemy import func, select

import models
from schemas import Detail, Message
from tests.conftest import DEFAULT_PASSWORD, create_test_user, login_user

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def mail(monkeypatch) -> AsyncMock:
    """The reset mail, captured instead of sent."""
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_password_reset_email", send)
    return send


async def request_reset(client, mail, email: str) -> str:
    """Ask for a reset mail and return the token it carries."""
    response = await client.post("/api/users/forgot-password", json={"email": email})
    assert response.status_code == 202
    return mail.await_args.kwargs["token"]


async def reset(client, token: str, password: str = NEW_PASSWORD):
    return await client.post(
        "/api/users/reset-password", json={"token": token, "new_password": password}
    )


async def assert_login_fails(client, email: str, password: str) -> None:
    response = await client.post("/api/users/token", data={"username": email, "password": password})
    assert response.status_code == 401


# --- Change password -------------------------------------------------------------------------


async def test_change_password(client, alice):
    user, headers = alice
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {"message": Message.PASSWORD_CHANGED}
    assert await login_user(client, user["email"], NEW_PASSWORD)
    await assert_login_fails(client, user["email"], DEFAULT_PASSWORD)


async def test_change_password_with_wrong_current_password_is_rejected(client, alice):
    user, headers = alice
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.WRONG_PASSWORD}
    assert await login_user(client, user["email"], DEFAULT_PASSWORD)


async def test_change_password_to_a_short_one_is_422(client, alice):
    _, headers = alice
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert response.status_code == 422


async def test_change_password_requires_login(client):
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}


async def test_change_password_kills_pending_reset_tokens(client, alice, mail):
    user, headers = alice
    token = await request_reset(client, mail, user["email"])
    await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    response = await reset(client, token, "yet another password")
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_RESET_TOKEN}


# --- Forgot password -------------------------------------------------------------------------


async def test_forgot_password_schedules_the_reset_mail(client, mail):
    user = await create_test_user(client)
    response = await client.post("/api/users/forgot-password", json={"email": user["email"]})
    assert response.status_code == 202
    assert response.json() == {"message": Message.RESET_REQUESTED}
    mail.assert_awaited_once()
    kwargs = mail.await_args.kwargs
    assert (kwargs["to_email"], kwargs["username"]) == (user["email"], "alice")
    assert len(kwargs["token"]) >= 40


async def test_forgot_password_for_unknown_email_answers_the_same_and_sends_nothing(client, mail):
    response = await client.post("/api/users/forgot-password", json={"email": "nobody@example.com"})
    assert response.status_code == 202
    assert response.json() == {"message": Message.RESET_REQUESTED}
    mail.assert_not_awaited()


async def test_forgot_password_email_is_case_insensitive(client, mail):
    await create_test_user(client, email="alice@example.com")
    await client.post("/api/users/forgot-password", json={"email": "ALICE@EXAMPLE.COM"})
    mail.assert_awaited_once()


async def test_forgot_password_stores_only_a_hash_of_the_token(client, mail, db_session):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    stored = (await db_session.scalars(select(models.PasswordResetToken))).all()
    assert [row.token_hash for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored[0].token_hash


async def test_forgot_password_token_expires_after_the_configured_minutes(client, mail, db_session):
    user = await create_test_user(client)
    await request_reset(client, mail, user["email"])
    row = await db_session.scalar(select(models.PasswordResetToken))
    lifetime = row.expires_at - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(minutes=60)


async def test_new_reset_request_replaces_the_older_token(client, mail, db_session):
    user = await create_test_user(client)
    first = await request_reset(client, mail, user["email"])
    second = await request_reset(client, mail, user["email"])
    count = select(func.count()).select_from(models.PasswordResetToken)
    assert await db_session.scalar(count) == 1
    assert (await reset(client, first)).status_code == 400
    assert (await reset(client, second)).status_code == 200


@pytest.mark.parametrize("payload", [{}, {"email": "not-an-email"}, {"email": None}])
async def test_forgot_password_with_invalid_email_is_422(client, mail, payload):
    response = await client.post("/api/users/forgot-password", json=payload)
    assert response.status_code == 422
    mail.assert_not_awaited()


# --- Reset password --------------------------------------------------------------------------


async def test_reset_password_with_mailed_token(client, mail):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    response = await reset(client, token)
    assert response.status_code == 200
    assert response.json() == {"message": Message.PASSWORD_RESET}
    assert await login_user(client, user["email"], NEW_PASSWORD)
    await assert_login_fails(client, user["email"], DEFAULT_PASSWORD)


async def test_reset_token_works_only_once(client, mail):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    assert (await reset(client, token)).status_code == 200
    again = await reset(client, token, "a third password here")
    assert again.status_code == 400
    assert again.json() == {"detail": Detail.INVALID_RESET_TOKEN}
    assert await login_user(client, user["email"], NEW_PASSWORD)


async def test_expired_reset_token_is_rejected(client, mail, db_session):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    row = await db_session.scalar(select(models.PasswordResetToken))
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db_session.flush()
    response = await reset(client, token)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_RESET_TOKEN}
    assert await login_user(client, user["email"], DEFAULT_PASSWORD)


async def test_unknown_reset_token_is_rejected(client):
    response = await reset(client, "made-up-token")
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_RESET_TOKEN}


async def test_reset_with_short_password_is_422_and_keeps_the_token(client, mail):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    assert (await reset(client, token, "short")).status_code == 422
    assert (await reset(client, token)).status_code == 200


@pytest.mark.parametrize("payload", [{}, {"token": "x"}, {"new_password": NEW_PASSWORD}])
async def test_reset_with_missing_fields_is_422(client, payload):
    response = await client.post("/api/users/reset-password", json=payload)
    assert response.status_code == 422
