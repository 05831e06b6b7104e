"""Changing a password, and resetting a forgotten one with a mailed single-use token."""

import hashlib
from datetime import UTC, datetime, timedelta
from unittest.mock import AsyncMock

import pytest
from sqlalchemy import func, select, text

import models
import passwords
from schemas import Detail, Message
from tests.conftest import DEFAULT_PASSWORD, auth_header, create_test_user, login_user

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


async def test_every_password_change_ends_the_tokens_issued_before_it(client, alice):
    """The second change too: a token from between the two stops working."""
    user, headers = alice
    chain = [DEFAULT_PASSWORD, NEW_PASSWORD, "a third password here"]
    for current, new in zip(chain, chain[1:], strict=False):
        response = await client.patch(
            "/api/users/me/password",
            json={"current_password": current, "new_password": new},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        assert (await client.get("/api/users/me", headers=headers)).status_code == 401
        headers = auth_header(await login_user(client, user["email"], new))


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


async def test_a_reset_token_lives_its_minutes_whatever_the_database_time_zone(
    client, mail, db_session
):
    """The expiry is stored as an instant: a server set to a zone far from UTC changes nothing."""
    await db_session.execute(text("SET TIME ZONE 'Pacific/Kiritimati'"))  # UTC+14
    await db_session.commit()  # (the test's outer transaction undoes it at the end)
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    row = await db_session.scalar(select(models.PasswordResetToken))
    lifetime = row.expires_at - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(minutes=60)
    assert (await reset(client, token)).status_code == 200


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


# --- Password rules (passwords.py) -----------------------------------------------------------


def password_errors(response) -> list[str]:
    """The 422's messages about the password field, whichever route answered."""
    assert response.status_code == 422, response.text
    return [
        error["msg"]
        for error in response.json()["detail"]
        if error["loc"][-1] in ("password", "new_password")
    ]


async def register(client, password: str, username: str = "wonderland", email=None):
    email = email or "alice.liddell@example.com"
    return await client.post(
        "/api/users", json={"username": username, "email": email, "password": password}
    )


@pytest.mark.parametrize("password", ["12345678", "password", "PassWord", "qwertyuiop", "trustno1"])
async def test_registration_refuses_a_common_password(client, password):
    response = await register(client, password)
    assert password_errors(response) == [f"Value error, {passwords.COMMON}"]


@pytest.mark.parametrize("password", [" " * 8, "\t \n \t \n  "])
async def test_registration_refuses_a_whitespace_only_password(client, password):
    response = await register(client, password)
    assert password_errors(response) == [f"Value error, {passwords.BLANK}"]


@pytest.mark.parametrize(
    "password", ["wonderland", "WonderLand", "alice.liddell@example.com", "Alice.Liddell"]
)
async def test_registration_refuses_the_username_the_email_or_its_local_part(client, password):
    response = await register(client, password)
    assert password_errors(response) == [f"Value error, {passwords.PERSONAL}"]


async def test_registration_accepts_a_password_that_only_contains_the_username(client):
    assert (await register(client, "wonderland in spring")).status_code == 201


async def test_registration_judges_the_password_once_the_username_and_email_are_valid(client):
    # The rules come after the check that the name and address are free (a taken email is a
    # 400 whatever the password), so a malformed address is what a first answer names.
    response = await register(client, "Wonderland", email="not-an-email")
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "email"]]
    response = await register(client, "Wonderland", email="alice@example.com")
    assert password_errors(response) == [f"Value error, {passwords.PERSONAL}"]


async def test_a_taken_email_is_named_before_the_password_rules(client):
    """The tutorial's own test: a taken address answers 400, even with a common password."""
    assert (await register(client, "a long fresh password")).status_code == 201
    response = await client.post(
        "/api/users",
        json={
            "username": "someone_else",
            "email": "alice.liddell@example.com",
            "password": "password123",
        },
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Email already registered"}


async def test_a_taken_username_is_named_before_the_password_rules(client):
    assert (await register(client, "a long fresh password")).status_code == 201
    response = await client.post(
        "/api/users",
        json={"username": "WONDERLAND", "email": "other@example.com", "password": "password123"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Username already exists"}


async def change_password(client, headers, new_password: str):
    return await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
        headers=headers,
    )


@pytest.mark.parametrize("password", ["12345678", "password", " " * 8])
async def test_change_password_refuses_common_and_blank_passwords(client, alice, password):
    user, headers = alice
    assert password_errors(await change_password(client, headers, password))
    assert await login_user(client, user["email"], DEFAULT_PASSWORD)


@pytest.mark.parametrize("password", ["WONDERLAND", "alice.liddell@example.com", "alice.LIDDELL"])
async def test_change_password_refuses_the_users_own_username_or_email(client, password):
    user = await create_test_user(client, "wonderland", email="alice.liddell@example.com")
    headers = {"Authorization": f"Bearer {await login_user(client, user['email'])}"}
    response = await change_password(client, headers, password)
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "new_password"],
                "msg": f"Value error, {passwords.PERSONAL}",
            }
        ]
    }
    assert await login_user(client, user["email"], DEFAULT_PASSWORD)


async def test_change_password_may_use_another_users_name(client, alice):
    await create_test_user(client, "wonderland", email="alice.liddell@example.com")
    _, headers = alice
    assert (await change_password(client, headers, "wonderland")).status_code == 200


async def test_reset_password_refuses_the_users_own_email_and_keeps_the_token(client, mail):
    user = await create_test_user(client, "wonderland", email="alice.liddell@example.com")
    token = await request_reset(client, mail, user["email"])
    assert password_errors(await reset(client, token, "Alice.Liddell@Example.com")) == [
        f"Value error, {passwords.PERSONAL}"
    ]
    assert (await reset(client, token)).status_code == 200
    assert await login_user(client, user["email"], NEW_PASSWORD)


async def test_reset_password_refuses_a_common_password_and_keeps_the_token(client, mail):
    user = await create_test_user(client)
    token = await request_reset(client, mail, user["email"])
    assert password_errors(await reset(client, token, "12345678")) == [
        f"Value error, {passwords.COMMON}"
    ]
    assert (await reset(client, token)).status_code == 200


def test_the_common_list_is_zxcvbns_30000_passwords():
    assert len(passwords.COMMON_PASSWORDS) == 30_000
    assert {"12345678", "password", "iloveyou"} <= passwords.COMMON_PASSWORDS
    assert passwords.password_problem(DEFAULT_PASSWORD) is None
