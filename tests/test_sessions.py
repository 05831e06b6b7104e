"""Sessions: refresh tokens rotated with reuse detection, the pages' cookie with its CSRF
check, the session list, and what ends sessions (SPEC.md, Part 3, "Sessions")."""

import hashlib
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import func, select, update

import models
import sessions
from config import settings
from schemas import Detail
from tests.conftest import (
    DEFAULT_PASSWORD,
    app_on_own_engine,
    auth_header,
    create_test_user,
)

pytestmark = pytest.mark.anyio

FORM = {"username": "alice@example.com", "password": DEFAULT_PASSWORD}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chromium/156"


async def token_login(client, user_agent: str = "blog-client/1.0") -> dict:
    response = await client.post("/api/users/token", data=FORM, headers={"User-Agent": user_agent})
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(client, refresh_token: str):
    return await client.post("/api/users/token/refresh", json={"refresh_token": refresh_token})


async def cookie_login(client) -> str:
    response = await client.post("/api/users/session", data=FORM, headers={"User-Agent": BROWSER})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


async def me(client, access_token: str | None = None) -> int:
    headers = auth_header(access_token) if access_token else {}
    return (await client.get("/api/users/me", headers=headers)).status_code


def assert_invalid_refresh(response) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_REFRESH_TOKEN}


@pytest.fixture
async def alice_user(client) -> dict:
    return await create_test_user(client, "alice")


# --- Refresh tokens --------------------------------------------------------------------------


async def test_a_login_answers_an_access_token_its_lifetime_and_a_refresh_token(client, alice_user):
    tokens = await token_login(client)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 30 * 60
    assert await me(client, tokens["access_token"]) == 200


async def test_a_refresh_gives_a_new_pair_and_spends_the_old_refresh_token(client, alice_user):
    first = await token_login(client)
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await me(client, second["access_token"]) == 200
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200  # the chain goes on, one token at a time


async def test_a_spent_refresh_token_presented_again_ends_the_whole_session(client, alice_user):
    first = await token_login(client)
    second = (await refresh(client, first["refresh_token"])).json()
    assert_invalid_refresh(await refresh(client, first["refresh_token"]))  # copied: replayed
    # Everything the session issued is refused from now on, before it would expire.
    assert_invalid_refresh(await refresh(client, second["refresh_token"]))
    assert await me(client, second["access_token"]) == 401
    assert await me(client, first["access_token"]) == 401
    other = await token_login(client)  # another login is another session: untouched
    assert await me(client, other["access_token"]) == 200


@pytest.mark.parametrize("token", ["made-up", "x" * 200, ""])
async def test_an_unknown_refresh_token_is_refused(client, alice_user, token):
    response = await refresh(client, token)
    assert response.status_code == (401 if token else 422)
    if token:
        assert_invalid_refresh(response)


async def test_an_expired_session_refreshes_no_more(client, alice_user, db_session):
    tokens = await token_login(client)
    await db_session.execute(
        update(models.Session).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    assert_invalid_refresh(await refresh(client, tokens["refresh_token"]))
    assert await me(client, tokens["access_token"]) == 401


async def test_only_hashes_of_the_secrets_are_stored(client, alice_user, db_session):
    tokens = await token_login(client)
    await cookie_login(client)
    cookie = client.cookies[sessions.SESSION_COOKIE]
    stored = (await db_session.execute(select(models.RefreshToken.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(tokens["refresh_token"].encode()).hexdigest()]
    hashes = (await db_session.execute(select(models.Session.secret_hash))).scalars().all()
    assert hashlib.sha256(cookie.encode()).hexdigest() in hashes
    assert cookie not in hashes and tokens["refresh_token"] not in stored


async def test_two_refreshes_of_one_token_at_once_never_leave_two_live_chains(engine):
    async with app_on_own_engine("race_") as (client, _engine, session_maker):
        await create_test_user(client, "race_alice", "race@example.com")
        form = {"username": "race@example.com", "password": DEFAULT_PASSWORD}
        tokens = (await client.post("/api/users/token", data=form)).json()
        answers = []

        async def one_refresh() -> None:
            answers.append(await refresh(client, tokens["refresh_token"]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one_refresh)
            tg.start_soon(one_refresh)
        assert sorted(a.status_code for a in answers) == [200, 401]  # one wins, one is a replay
        winner = next(a.json() for a in answers if a.status_code == 200)
        # The replay ended the session: the winner's chain is dead too. No second chain lives.
        assert_invalid_refresh(await refresh(client, winner["refresh_token"]))
        async with session_maker() as db:
            live = await db.scalar(
                select(func.count())
                .select_from(models.RefreshToken)
                .where(models.RefreshToken.spent.is_(False))
            )
        assert live == 0


# --- Cookie sessions -------------------------------------------------------------------------


async def test_a_cookie_login_sets_an_httponly_session_and_a_readable_csrf_cookie(
    client, alice_user
):
    response = await client.post("/api/users/session", data=FORM)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    cookies = {
        line.split("=", 1)[0]: line.lower()
        for line in response.headers.get_list("set-cookie")
        if line.startswith(("session=", "csrf_token="))
    }
    assert "httponly" in cookies["session"] and "httponly" not in cookies["csrf_token"]
    for line in cookies.values():
        assert "samesite=lax" in line and "path=/" in line
        assert f"max-age={30 * 24 * 3600}" in line
        assert "secure" not in line  # development: plain http (SESSION_COOKIE_SECURE)
    csrf_token = response.json()["csrf_token"]
    assert client.cookies[sessions.CSRF_COOKIE] == csrf_token
    assert csrf_token == sessions.csrf_token_for(client.cookies[sessions.SESSION_COOKIE])
    assert await me(client) == 200  # the cookie alone


async def test_session_cookies_are_secure_when_so_configured(client, alice_user, monkeypatch):
    monkeypatch.setattr(settings, "session_cookie_secure", True)
    response = await client.post("/api/users/session", data=FORM)
    lines = [line.lower() for line in response.headers.get_list("set-cookie")]
    assert all("secure" in line for line in lines if line.startswith(("session=", "csrf_")))


async def test_a_cookie_login_with_a_wrong_password_is_refused_and_sets_nothing(client, alice_user):
    response = await client.post("/api/users/session", data={**FORM, "password": "wrong one!"})
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}
    assert sessions.SESSION_COOKIE not in client.cookies


POST = {"title": "By cookie", "content": "Written from the pages."}


async def post_count(client) -> int:
    return (await client.get("/api/posts")).json()["total"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-CSRF-Token": "0" * 64},
        {"X-CSRF-Token": "é".encode()},  # not even ASCII
    ],
    ids=["missing", "wrong", "not-ascii"],
)
async def test_an_unsafe_request_by_cookie_without_its_csrf_token_is_refused(
    client, alice_user, headers
):
    await cookie_login(client)
    response = await client.post("/api/posts", json=POST, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.CSRF_FAILED}
    assert await post_count(client) == 0  # nothing changed


async def test_an_unsafe_request_by_cookie_with_its_csrf_token_goes_through(client, alice_user):
    csrf_token = await cookie_login(client)
    headers = {"X-CSRF-Token": csrf_token, "Origin": "http://test"}
    response = await client.post("/api/posts", json=POST, headers=headers)
    assert response.status_code == 201
    origin = settings.frontend_url.rstrip("/")  # FRONTEND_URL's origin: the site behind a proxy
    frontend = {"X-CSRF-Token": csrf_token, "Origin": origin}
    assert (await client.post("/api/posts", json=POST, headers=frontend)).status_code == 201


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://test.evil.example"])
async def test_an_unsafe_request_by_cookie_from_another_origin_is_refused(
    client, alice_user, origin
):
    csrf_token = await cookie_login(client)
    headers = {"X-CSRF-Token": csrf_token, "Origin": origin}
    response = await client.post("/api/posts", json=POST, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.CSRF_FAILED}
    assert await post_count(client) == 0


async def test_one_sessions_csrf_token_is_refused_with_another_sessions_cookie(client, alice_user):
    first = await cookie_login(client)
    await cookie_login(client)  # the client now holds the second session's cookie
    response = await client.post("/api/posts", json=POST, headers={"X-CSRF-Token": first})
    assert response.status_code == 403


async def test_safe_requests_by_cookie_need_no_csrf_token(client, alice_user):
    await cookie_login(client)
    assert (await client.get("/api/users/me/sessions")).status_code == 200


async def test_bearer_requests_need_no_csrf_token_and_the_bearer_decides(client, alice_user):
    tokens = await token_login(client)
    await cookie_login(client)
    response = await client.post(
        "/api/posts", json=POST, headers=auth_header(tokens["access_token"])
    )
    assert response.status_code == 201
    assert await me(client, "not-a-token") == 401  # the cookie does not rescue a bad bearer


async def test_logging_out_of_the_cookie_session_ends_it_and_clears_the_cookies(client, alice_user):
    csrf_token = await cookie_login(client)
    cookie = client.cookies[sessions.SESSION_COOKIE]
    refused = await client.delete("/api/users/session")
    assert refused.status_code == 403  # a cross-site page cannot log a reader out either
    response = await client.delete("/api/users/session", headers={"X-CSRF-Token": csrf_token})
    assert response.status_code == 204
    assert sessions.SESSION_COOKIE not in client.cookies
    assert sessions.CSRF_COOKIE not in client.cookies
    client.cookies.set(sessions.SESSION_COOKIE, cookie)  # kept by someone: still refused
    assert await me(client) == 401


async def test_the_cookie_session_logout_needs_a_session(client):
    response = await client.delete("/api/users/session")
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}


async def test_a_made_up_session_cookie_is_refused(client, alice_user):
    client.cookies.set(sessions.SESSION_COOKIE, "made-up")
    assert await me(client) == 401


# --- The session list, and what ends sessions -----------------------------------------------


async def test_the_session_list_shows_each_login_newest_first_and_marks_the_current(
    client, alice_user
):
    first = await token_login(client, "first-client/1")
    second = await token_login(client, "second-client/2")
    response = await client.get(
        "/api/users/me/sessions", headers=auth_header(first["access_token"])
    )
    assert response.status_code == 200
    listed = response.json()
    assert [s["user_agent"] for s in listed] == ["second-client/2", "first-client/1"]
    assert [s["current"] for s in listed] == [False, True]
    assert {s["kind"] for s in listed} == {"token"}
    assert set(listed[0]) == {
        "id", "kind", "created_at", "last_used_at", "expires_at", "user_agent", "current"
    }  # fmt: skip
    assert second  # its session is the first one listed


async def test_ending_one_session_refuses_its_tokens_at_once(client, alice_user):
    mine = await token_login(client)
    stolen = await token_login(client)
    headers = auth_header(mine["access_token"])
    sessions_listed = (await client.get("/api/users/me/sessions", headers=headers)).json()
    other = next(s for s in sessions_listed if not s["current"])
    response = await client.delete(f"/api/users/me/sessions/{other['id']}", headers=headers)
    assert response.status_code == 204
    assert await me(client, stolen["access_token"]) == 401
    assert_invalid_refresh(await refresh(client, stolen["refresh_token"]))
    assert await me(client, mine["access_token"]) == 200


async def test_another_users_session_is_not_found(client, alice_user):
    await create_test_user(client, "bob")
    bobs = (
        await client.post(
            "/api/users/token", data={"username": "bob@example.com", "password": DEFAULT_PASSWORD}
        )
    ).json()
    bob_headers = auth_header(bobs["access_token"])
    [bob_session] = (await client.get("/api/users/me/sessions", headers=bob_headers)).json()
    alice_headers = auth_header((await token_login(client))["access_token"])
    for session_id in (bob_session["id"], 2**31 - 1):
        response = await client.delete(
            f"/api/users/me/sessions/{session_id}", headers=alice_headers
        )
        assert response.status_code == 404
        assert response.json() == {"detail": Detail.SESSION_NOT_FOUND}
    assert await me(client, bobs["access_token"]) == 200


async def test_ending_every_other_session_keeps_the_current_one(client, alice_user):
    others = [await token_login(client) for _ in range(2)]
    csrf_token = await cookie_login(client)
    response = await client.delete("/api/users/me/sessions", headers={"X-CSRF-Token": csrf_token})
    assert response.status_code == 204
    for tokens in others:
        assert await me(client, tokens["access_token"]) == 401
    assert await me(client) == 200  # the cookie's own session
    listed = (await client.get("/api/users/me/sessions")).json()
    assert [(s["kind"], s["current"]) for s in listed] == [("cookie", True)]


async def test_logout_ends_the_session_of_its_token(client, alice_user):
    tokens = await token_login(client)
    response = await client.post("/api/users/logout", headers=auth_header(tokens["access_token"]))
    assert response.status_code == 204
    assert_invalid_refresh(await refresh(client, tokens["refresh_token"]))


async def test_a_password_change_ends_every_session(client, alice_user):
    tokens = await token_login(client)
    await cookie_login(client)
    change = {"current_password": DEFAULT_PASSWORD, "new_password": "a new passphrase 2"}
    response = await client.patch(
        "/api/users/me/password", json=change, headers=auth_header(tokens["access_token"])
    )
    assert response.status_code == 200
    assert_invalid_refresh(await refresh(client, tokens["refresh_token"]))
    assert await me(client) == 401  # the cookie's session too


async def test_a_password_reset_ends_every_session(client, alice_user, monkeypatch):
    sent = []

    async def capture(db, **mail):
        sent.append(mail)

    monkeypatch.setattr("routers.users.send_password_reset_email", capture)
    tokens = await token_login(client)
    await client.post("/api/users/forgot-password", json={"email": "alice@example.com"})
    body = {"token": sent[0]["token"], "new_password": "a new passphrase 3"}
    assert (await client.post("/api/users/reset-password", json=body)).status_code == 200
    assert_invalid_refresh(await refresh(client, tokens["refresh_token"]))


async def test_deleting_the_account_deletes_its_sessions(client, alice_user, db_session):
    tokens = await token_login(client)
    headers = auth_header(tokens["access_token"])
    assert (
        await client.delete(f"/api/users/{alice_user['id']}", headers=headers)
    ).status_code == 204
    assert await db_session.scalar(select(func.count()).select_from(models.Session)) == 0


async def test_a_user_has_at_most_50_sessions_and_the_least_recently_used_goes(
    client, alice_user, db_session
):
    oldest = await token_login(client)
    for _ in range(sessions.MAX_SESSIONS):
        await token_login(client)
    count = await db_session.scalar(select(func.count()).select_from(models.Session))
    assert count == sessions.MAX_SESSIONS
    assert await me(client, oldest["access_token"]) == 401


async def test_expired_sessions_are_purged_when_anyone_logs_in(client, alice_user, db_session):
    await token_login(client)
    await db_session.execute(
        update(models.Session).values(expires_at=datetime.now(UTC) - timedelta(days=1))
    )
    await token_login(client)
    assert await db_session.scalar(select(func.count()).select_from(models.Session)) == 1


async def test_a_token_whose_sid_is_not_an_integer_is_refused(client, alice_user):
    from tests.test_auth import in_minutes, make_token

    for sid in ("1", 1.0, True, 0, -1):
        token = make_token({"sub": str(alice_user["id"]), "exp": in_minutes(5), "sid": sid})
        assert await me(client, token) == 401
