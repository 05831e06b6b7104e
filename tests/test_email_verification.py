"""Email verification: the link mailed on registering and on an email change, used once, asked
for again within a limit; the email change that waits for its link when verification is
required; the page the link opens."""

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from unittest.mock import ANY, AsyncMock

import anyio
import pytest
from sqlalchemy import func, select, update

import models
from config import settings
from routers.verification import issue_verification_token
from schemas import Detail, Message
from tests.conftest import (
    DEFAULT_PASSWORD,
    app_on_own_engine,
    auth_header,
    create_test_user,
    login_user,
)

pytestmark = pytest.mark.anyio

NEW_EMAIL = "alice.new@example.com"


@pytest.fixture
def mail(monkeypatch) -> AsyncMock:
    """The verification mail, captured instead of sent."""
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_verification_email", send)
    return send


@pytest.fixture
def notice(monkeypatch) -> AsyncMock:
    """The email-changed notice to the old address, captured instead of sent."""
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_email_changed_notice", send)
    return send


@pytest.fixture
def reset_mail(monkeypatch) -> AsyncMock:
    send = AsyncMock()
    monkeypatch.setattr("routers.users.send_password_reset_email", send)
    return send


@pytest.fixture
def required(monkeypatch):
    monkeypatch.setattr(settings, "email_verification_required", True)


@pytest.fixture
def not_required(monkeypatch):
    monkeypatch.setattr(settings, "email_verification_required", False)


@pytest.fixture
async def registered(client, mail) -> tuple[dict, dict, str]:
    """A new account, its headers and the token of the verification mail it was sent."""
    user = await create_test_user(client, "alice")
    token = mail.await_args.kwargs["token"]
    mail.reset_mock()
    return user, auth_header(await login_user(client, user["email"])), token


async def verify(client, token: str):
    return await client.post("/api/users/verify-email", json={"token": token})


async def resend(client, headers: dict):
    return await client.post("/api/users/me/verification-email", headers=headers)


async def me(client, headers: dict) -> dict:
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 200
    return response.json()


async def change_email(client, user: dict, headers: dict, email: str = NEW_EMAIL):
    return await client.patch(
        f"/api/users/{user['id']}",
        json={"email": email, "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )


def assert_invalid(response) -> None:
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_VERIFICATION_TOKEN}


async def can_log_in(client, email: str) -> bool:
    form = {"username": email, "password": DEFAULT_PASSWORD}
    return (await client.post("/api/users/token", data=form)).status_code == 200


# --- Registering ----------------------------------------------------------------------------------


async def test_registering_mails_a_verification_link_to_the_new_address(client, mail):
    response = await client.post(
        "/api/users",
        json={"username": "alice", "email": "Alice@Example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 201
    assert (response.json()["email_verified"], response.json()["pending_email"]) == (False, None)
    mail.assert_awaited_once()
    kwargs = mail.await_args.kwargs
    assert (kwargs["to_email"], kwargs["username"]) == ("alice@example.com", "alice")
    assert len(kwargs["token"]) >= 43  # secrets.token_urlsafe(32)


async def test_only_the_tokens_hash_is_stored_valid_for_the_configured_hours(
    client, registered, db_session
):
    user, _, token = registered
    stored = (await db_session.execute(select(models.EmailVerificationToken))).scalars().all()
    assert [row.user_id for row in stored] == [user["id"]]
    assert stored[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored[0].email == user["email"]
    lifetime = stored[0].expires_at - datetime.now(UTC)
    hours = settings.email_verification_expire_hours
    assert timedelta(hours=hours - 1) < lifetime <= timedelta(hours=hours)


async def test_a_registration_as_the_tutorial_tests_it_still_answers_201(
    client, reset_mail, caplog
):
    """Only the reset mail patched: the verification mail goes to the log, as in development."""
    account = {"username": "tess", "email": "tess@example.com", "password": DEFAULT_PASSWORD}
    with caplog.at_level(logging.INFO, logger="email_utils"):
        response = await client.post("/api/users", json=account)
    assert response.status_code == 201
    body = response.json()
    # The tutorial's fields as they were, and verification's (later parts may add more).
    expected = {
        "username": "tess",
        "email": "tess@example.com",
        "image_file": None,
        "image_path": "/static/profile_pics/default.jpg",
        "role": "author",
        "suspended": False,
        "email_verified": False,
        "pending_email": None,
    }
    assert body.items() >= expected.items()
    assert isinstance(body["id"], int)
    assert f"{settings.frontend_url}/verify-email?token=" in caplog.text
    reset_mail.assert_not_awaited()


# --- Using the link -------------------------------------------------------------------------------


async def test_the_link_verifies_the_email(client, registered):
    _, headers, token = registered
    response = await verify(client, token)
    assert response.status_code == 200
    assert response.json() == {"message": Message.EMAIL_VERIFIED}
    assert (await me(client, headers))["email_verified"] is True


async def test_the_link_works_once(client, registered, db_session):
    _, _, token = registered
    assert (await verify(client, token)).status_code == 200
    assert_invalid(await verify(client, token))
    rows = await db_session.scalar(select(func.count()).select_from(models.EmailVerificationToken))
    assert rows == 0


async def test_an_expired_link_is_refused_and_verifies_nothing(client, registered, db_session):
    _, headers, token = registered
    await db_session.execute(
        update(models.EmailVerificationToken).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    )
    assert_invalid(await verify(client, token))
    assert (await me(client, headers))["email_verified"] is False


@pytest.mark.parametrize("token", ["made-up", "x" * 200])
async def test_an_unknown_token_is_refused(client, registered, token):
    assert_invalid(await verify(client, token))


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": "x" * 201}, {"token": 1}])
async def test_a_malformed_body_is_a_422(client, body):
    response = await client.post("/api/users/verify-email", json=body)
    assert response.status_code == 422


async def test_a_token_for_an_address_the_account_does_not_have_is_refused_and_spent(
    client, registered, db_session
):
    user, headers, _ = registered
    token = await issue_verification_token(db_session, user["id"], "someone.else@example.com")
    await db_session.commit()
    assert_invalid(await verify(client, token))
    assert (await me(client, headers))["email"] == user["email"]
    rows = await db_session.scalar(select(func.count()).select_from(models.EmailVerificationToken))
    assert rows == 0


async def test_verify_email_takes_only_post(client):
    response = await client.get("/api/users/verify-email")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"


# --- Asking again ---------------------------------------------------------------------------------


async def test_asking_again_mails_a_new_link_and_the_old_one_dies(client, registered, mail):
    user, headers, first = registered
    response = await resend(client, headers)
    assert response.status_code == 202
    assert response.json() == {"message": Message.VERIFICATION_SENT}
    mail.assert_awaited_once()
    kwargs = mail.await_args.kwargs
    assert (kwargs["to_email"], kwargs["username"]) == (user["email"], "alice")
    assert kwargs["token"] != first
    assert_invalid(await verify(client, first))
    assert (await verify(client, kwargs["token"])).status_code == 200


async def test_asking_again_once_verified_is_refused(client, registered, mail):
    _, headers, token = registered
    await verify(client, token)
    response = await resend(client, headers)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_ALREADY_VERIFIED}
    mail.assert_not_awaited()


async def test_asking_again_needs_a_login(client, mail):
    response = await client.post("/api/users/me/verification-email")
    assert response.status_code == 401
    mail.assert_not_awaited()


async def test_asking_again_by_the_session_cookie_needs_the_csrf_token(client, registered, mail):
    user, _, _ = registered
    login = await client.post(
        "/api/users/session", data={"username": user["email"], "password": DEFAULT_PASSWORD}
    )
    csrf = login.json()["csrf_token"]
    refused = await client.post("/api/users/me/verification-email")
    assert refused.status_code == 403
    mail.assert_not_awaited()
    sent = await client.post("/api/users/me/verification-email", headers={"X-CSRF-Token": csrf})
    assert sent.status_code == 202
    mail.assert_awaited_once()


async def test_asking_again_is_limited_per_account(client, registered, mail, monkeypatch):
    _, headers, _ = registered
    monkeypatch.setattr(settings, "rate_limit_enabled", True)
    allowed = int(settings.rate_limit_verification_email.split("/")[0])
    for _ in range(allowed):
        assert (await resend(client, headers)).status_code == 202
    refused = await resend(client, headers)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert mail.await_count == allowed
    # Another account keeps its own budget.
    bob = await create_test_user(client, "bob")
    bob_headers = auth_header(await login_user(client, bob["email"]))
    assert (await resend(client, bob_headers)).status_code == 202


# --- Changing the email when verification is required ---------------------------------------------


async def test_a_required_change_waits_for_the_new_address_and_the_old_keeps_working(
    client, registered, mail, notice, required
):
    user, headers, _ = registered
    response = await change_email(client, user, headers, "Alice.New@Example.com")
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["pending_email"]) == (user["email"], NEW_EMAIL)
    mail.assert_awaited_once()
    assert mail.await_args.kwargs["to_email"] == NEW_EMAIL
    notice.assert_awaited_once_with(
        ANY, to_email=user["email"], username="alice", new_email=NEW_EMAIL, pending=True
    )
    assert await can_log_in(client, user["email"])
    assert not await can_log_in(client, NEW_EMAIL)


async def test_the_link_to_the_pending_address_makes_it_the_verified_email(
    client, registered, mail, notice, reset_mail, required
):
    user, headers, _ = registered
    await client.post("/api/users/forgot-password", json={"email": user["email"]})
    reset_token = reset_mail.await_args.kwargs["token"]
    await change_email(client, user, headers)
    token = mail.await_args.kwargs["token"]

    assert (await verify(client, token)).status_code == 200
    now = await me(client, headers)
    assert (now["email"], now["email_verified"], now["pending_email"]) == (NEW_EMAIL, True, None)
    assert await can_log_in(client, NEW_EMAIL)
    assert not await can_log_in(client, user["email"])
    # The reset link mailed to the old address died with the move.
    reset = await client.post(
        "/api/users/reset-password", json={"token": reset_token, "new_password": "x new pass 12"}
    )
    assert reset.status_code == 400
    assert reset.json() == {"detail": Detail.INVALID_RESET_TOKEN}


async def test_until_the_link_is_used_reset_links_still_go_to_the_old_address(
    client, registered, mail, notice, reset_mail, required
):
    user, headers, _ = registered
    await change_email(client, user, headers)
    response = await client.post("/api/users/forgot-password", json={"email": user["email"]})
    assert response.status_code == 202
    assert reset_mail.await_args.kwargs["to_email"] == user["email"]
    reset = await client.post(
        "/api/users/reset-password",
        json={"token": reset_mail.await_args.kwargs["token"], "new_password": "x new pass 12"},
    )
    assert reset.status_code == 200


async def test_a_required_change_to_a_taken_address_is_refused_at_once(
    client, registered, mail, notice, required
):
    user, headers, _ = registered
    await create_test_user(client, "bob")
    mail.reset_mock()
    response = await change_email(client, user, headers, "Bob@Example.com")
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_EXISTS}
    assert (await me(client, headers))["pending_email"] is None
    mail.assert_not_awaited()
    notice.assert_not_awaited()


async def test_a_link_whose_address_another_account_took_meanwhile_is_refused(
    client, registered, mail, notice, required
):
    user, headers, _ = registered
    await change_email(client, user, headers)
    token = mail.await_args.kwargs["token"]
    await create_test_user(client, "bob", email=NEW_EMAIL)

    response = await verify(client, token)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_EXISTS}
    now = await me(client, headers)
    assert (now["email"], now["pending_email"]) == (user["email"], NEW_EMAIL)
    assert await can_log_in(client, user["email"])


async def test_asking_again_sends_to_the_pending_address(
    client, registered, mail, notice, required
):
    user, headers, token = registered
    await verify(client, token)  # verified, and a change waits: still something to prove
    await change_email(client, user, headers)
    mail.reset_mock()
    response = await resend(client, headers)
    assert response.status_code == 202
    assert mail.await_args.kwargs["to_email"] == NEW_EMAIL
    assert (await verify(client, mail.await_args.kwargs["token"])).status_code == 200
    assert (await me(client, headers))["email"] == NEW_EMAIL


async def test_a_newer_change_replaces_the_pending_one_and_its_link(
    client, registered, mail, notice, required
):
    user, headers, _ = registered
    await change_email(client, user, headers, "first.choice@example.com")
    first = mail.await_args.kwargs["token"]
    await change_email(client, user, headers, "second.choice@example.com")
    second = mail.await_args.kwargs["token"]
    assert (await me(client, headers))["pending_email"] == "second.choice@example.com"
    assert_invalid(await verify(client, first))
    assert (await verify(client, second)).status_code == 200
    assert (await me(client, headers))["email"] == "second.choice@example.com"


# --- Changing the email when verification is not required -----------------------------------------


async def test_an_unrequired_change_moves_the_email_at_once_unverified(
    client, registered, mail, notice, not_required
):
    user, headers, token = registered
    await verify(client, token)
    response = await change_email(client, user, headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["email_verified"], body["pending_email"]) == (
        NEW_EMAIL,
        False,
        None,
    )
    assert await can_log_in(client, NEW_EMAIL)
    notice.assert_awaited_once_with(
        ANY, to_email=user["email"], username="alice", new_email=NEW_EMAIL, pending=False
    )
    mail.assert_awaited_once()
    assert mail.await_args.kwargs["to_email"] == NEW_EMAIL
    assert (await verify(client, mail.await_args.kwargs["token"])).status_code == 200
    assert (await me(client, headers))["email_verified"] is True


async def test_a_username_change_sends_no_verification_mail(client, registered, mail, notice):
    user, headers, _ = registered
    response = await client.patch(
        f"/api/users/{user['id']}", json={"username": "alice2"}, headers=headers
    )
    assert response.status_code == 200
    mail.assert_not_awaited()
    notice.assert_not_awaited()


# --- At the same time -----------------------------------------------------------------------------

PREFIX = "verifyrace"


@pytest.fixture
async def live(engine, mail):
    """The app on its own pooled engine: requests run in concurrent transactions."""
    async with app_on_own_engine(PREFIX, pool_size=10, max_overflow=0) as (client, _, sessions):
        user = await create_test_user(client, PREFIX)
        yield client, sessions, user


async def at_once(count: int, call) -> list[int]:
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await call()).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return statuses


async def test_one_link_used_twice_at_once_verifies_once(live, mail):
    client, _, _ = live
    token = mail.await_args.kwargs["token"]
    statuses = await at_once(4, lambda: verify(client, token))
    assert sorted(statuses) == [200, 400, 400, 400]


async def test_links_asked_for_at_once_leave_exactly_one_valid(live, mail):
    client, sessions, user = live
    headers = auth_header(await login_user(client, user["email"]))
    mail.reset_mock()
    assert await at_once(4, lambda: resend(client, headers)) == [202] * 4
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(models.EmailVerificationToken)
            .where(models.EmailVerificationToken.user_id == user["id"])
        )
    assert stored == 1
    tokens = [call.kwargs["token"] for call in mail.await_args_list]
    statuses = [(await verify(client, token)).status_code for token in tokens]
    assert sorted(statuses) == [200, 400, 400, 400]


# --- The page the link opens ----------------------------------------------------------------------


async def test_the_verification_page_keeps_the_token_and_sends_no_referrer(client):
    response = await client.get("/verify-email?token=abc123")
    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert '<input type="hidden" name="token" value="abc123">' in html
    assert 'id="verify-form"' in html
    assert '<script type="module" src="/static/js/verify.js"></script>' in html


async def test_the_verification_page_without_token_says_the_link_is_incomplete(client):
    response = await client.get("/verify-email")
    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert 'id="verify-form"' not in response.text
    assert "This link has no verification token." in response.text


async def test_the_verification_page_escapes_a_hostile_token(client):
    html = (await client.get('/verify-email?token="><script>alert(1)</script>')).text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert "<script>alert(1)" not in html


async def test_the_verification_script_posts_the_token_and_writes_text_only(client):
    response = await client.get("/static/js/verify.js")
    assert response.status_code == 200
    script = response.text
    assert '"/api/users/verify-email"' in script
    assert "textContent" in script
    for word in ("innerHTML", "outerHTML", "insertAdjacentHTML", "localStorage", "Bearer"):
        assert word not in script, word


async def test_the_account_page_has_a_hidden_verification_banner_that_asks_again(client):
    """Shown by the script while the email is unverified or a new address waits."""
    html = (await client.get("/account")).text
    assert re.search(r'<section class="card" id="verify-banner"[^>]*\bhidden\b', html)
    assert 'id="resend-verification-button"' in html
    script = (await client.get("/static/js/account.js")).text
    assert '"/api/users/me/verification-email"' in script
    assert "pending_email" in script and "email_verified" in script
