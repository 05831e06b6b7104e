"""Changing the email: the current password, the reset links that die, the notice to the old
address."""

from unittest.mock import ANY, AsyncMock

import pytest
from sqlalchemy import func, select, update

import auth
import email_utils
import models
from config import settings
from schemas import Detail
from tests.conftest import DEFAULT_PASSWORD, body_of, login_user, queued_mails

pytestmark = pytest.mark.anyio

NEW_EMAIL = "alice.new@example.com"


@pytest.fixture
def notice(monkeypatch) -> AsyncMock:
    """The email-changed notice, captured instead of sent."""
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_email_changed_notice", send)
    return send


@pytest.fixture
def reset_mail(monkeypatch) -> AsyncMock:
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_password_reset_email", send)
    return send


async def change_email(client, user, headers, **fields):
    return await client.patch(f"/api/users/{user['id']}", json=fields, headers=headers)


async def stored_email(db_session, user_id: int) -> str:
    return await db_session.scalar(select(models.User.email).where(models.User.id == user_id))


@pytest.mark.parametrize(
    "password", [None, "not my password", ""], ids=["missing", "wrong", "empty"]
)
async def test_email_change_without_the_right_current_password_is_refused(
    client, alice, db_session, notice, password
):
    user, headers = alice
    fields = (
        {"email": NEW_EMAIL}
        if password is None
        else {"email": NEW_EMAIL, "current_password": password}
    )
    response = await change_email(client, user, headers, **fields)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.WRONG_PASSWORD}
    assert await stored_email(db_session, user["id"]) == user["email"]
    notice.assert_not_awaited()


async def test_email_change_with_the_current_password_moves_the_account(
    client, alice, db_session, notice
):
    user, headers = alice
    response = await change_email(
        client, user, headers, email="Alice.New@Example.com", current_password=DEFAULT_PASSWORD
    )
    assert response.status_code == 200
    assert response.json()["email"] == NEW_EMAIL
    assert await stored_email(db_session, user["id"]) == NEW_EMAIL
    assert await login_user(client, NEW_EMAIL)


async def test_email_change_sends_a_notice_to_the_old_address(client, alice, notice):
    user, headers = alice
    await change_email(client, user, headers, email=NEW_EMAIL, current_password=DEFAULT_PASSWORD)
    notice.assert_awaited_once_with(
        ANY, to_email=user["email"], username="alice", new_email=NEW_EMAIL, pending=False
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "alicia"},
        {"email": "ALICE@example.com"},
        {"username": "alicia", "email": "alice@example.com"},
    ],
    ids=["username only", "same email in other case", "username and same email"],
)
async def test_changes_that_keep_the_email_need_no_password_and_send_no_notice(
    client, alice, notice, fields
):
    user, headers = alice
    response = await change_email(client, user, headers, **fields)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user["email"]
    notice.assert_not_awaited()


async def test_a_new_email_ends_the_pending_reset_links(
    client, alice, db_session, reset_mail, notice
):
    user, headers = alice
    await client.post("/api/users/forgot-password", json={"email": user["email"]})
    token = reset_mail.await_args.kwargs["token"]

    await change_email(client, user, headers, email=NEW_EMAIL, current_password=DEFAULT_PASSWORD)

    left = await db_session.scalar(
        select(func.count()).where(models.PasswordResetToken.user_id == user["id"])
    )
    assert left == 0
    response = await client.post(
        "/api/users/reset-password", json={"token": token, "new_password": "taken over 123"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_RESET_TOKEN}


async def test_a_refused_email_change_keeps_the_reset_links_and_queues_no_notice(
    client, alice, bob, db_session, monkeypatch
):
    user, headers = alice
    monkeypatch.setattr(settings, "mail_server", "127.0.0.1")  # mails go to the queue
    await client.post("/api/users/forgot-password", json={"email": user["email"]})
    response = await change_email(
        client, user, headers, email="bob@example.com", current_password=DEFAULT_PASSWORD
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_EXISTS}
    left = await db_session.scalar(
        select(func.count()).where(models.PasswordResetToken.user_id == user["id"])
    )
    assert left == 1
    # The notice and the new address's link were rolled back with the change.
    assert [kind for kind, _ in await queued_mails(db_session)] == ["password_reset"]


async def test_email_change_is_refused_if_the_password_changed_while_it_was_checked(
    client, alice, db_session, monkeypatch, notice
):
    """The password is verified with no connection held; the write then makes sure it is
    still the account's password."""
    user, headers = alice
    verify = auth.verify_password

    async def verify_then_change_password(password, hashed, **kwargs):
        result = await verify(password, hashed, **kwargs)
        other_hash = auth.password_hash.hash("changed meanwhile 123")
        connection = await db_session.connection()
        await connection.execute(
            update(models.User).where(models.User.id == user["id"]).values(password_hash=other_hash)
        )
        return result

    monkeypatch.setattr("routers.users.verify_password", verify_then_change_password)
    response = await change_email(
        client, user, headers, email=NEW_EMAIL, current_password=DEFAULT_PASSWORD
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.WRONG_PASSWORD}
    db_session.expire_all()
    assert await stored_email(db_session, user["id"]) == user["email"]
    notice.assert_not_awaited()


# --- The notice ------------------------------------------------------------------------------


def test_email_changed_notice_has_text_and_html_naming_the_new_address():
    message = email_utils.build_email_changed_notice("old@example.com", "alice", NEW_EMAIL)
    assert (message["To"], message["From"]) == ("old@example.com", settings.mail_from)
    assert message["Subject"] == email_utils.EMAIL_CHANGED_SUBJECT
    text = body_of(message, "plain")
    html = body_of(message, "html")
    assert "Hello alice" in text and NEW_EMAIL in text
    assert "Hello alice" in html and NEW_EMAIL in html


def test_email_changed_notice_escapes_the_username_in_html():
    message = email_utils.build_email_changed_notice("old@example.com", "<b>x</b>", NEW_EMAIL)
    html = body_of(message, "html")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


async def test_email_changed_notice_without_mail_server_is_logged(caplog):
    with caplog.at_level("INFO", logger="email_utils"):
        await email_utils.send_email_changed_notice(
            None, to_email="old@example.com", username="alice", new_email=NEW_EMAIL
        )
    assert "email change notice not sent" in caplog.text
    assert "old@example.com" in caplog.text
