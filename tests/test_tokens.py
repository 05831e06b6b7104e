"""Access tokens: logging out revokes one, server side; the token response is never cached."""

import os
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import event, func, select

import auth
import models
from config import settings
from schemas import Detail
from tests.conftest import auth_header, create_test_user, login_user

pytestmark = pytest.mark.anyio

SECRET = settings.jwt_secret


def claims_of(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


async def assert_refused(client, headers) -> None:
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}
    assert response.headers["www-authenticate"] == "Bearer"


# --- Logout ----------------------------------------------------------------------------------


async def test_logout_revokes_the_token_it_is_called_with(client, alice):
    _user, headers = alice
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200

    response = await client.post("/api/users/logout", headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    await assert_refused(client, headers)
    refused_write = await client.post(
        "/api/posts", json={"title": "t", "content": "c"}, headers=headers
    )
    assert refused_write.status_code == 401


async def test_logout_leaves_the_other_sessions_of_the_user_alone(client):
    user = await create_test_user(client)
    laptop = auth_header(await login_user(client, user["email"]))
    phone = auth_header(await login_user(client, user["email"]))
    assert (await client.post("/api/users/logout", headers=laptop)).status_code == 204
    await assert_refused(client, laptop)
    assert (await client.get("/api/users/me", headers=phone)).status_code == 200


async def test_logout_twice_with_one_token_is_401(client, alice):
    _user, headers = alice
    assert (await client.post("/api/users/logout", headers=headers)).status_code == 204
    response = await client.post("/api/users/logout", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}


async def test_logout_without_a_token_is_401(client):
    response = await client.post("/api/users/logout")
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}


async def test_every_new_token_carries_its_own_jti(client):
    user = await create_test_user(client)
    first = claims_of(await login_user(client, user["email"]))
    second = claims_of(await login_user(client, user["email"]))
    assert first["jti"] and second["jti"] and first["jti"] != second["jti"]


async def test_logout_keeps_the_revocation_until_the_token_expires(client, alice, db_session):
    _user, headers = alice
    claims = claims_of(headers["Authorization"].removeprefix("Bearer "))
    await client.post("/api/users/logout", headers=headers)
    row = await db_session.get(models.RevokedToken, claims["jti"])
    assert row is not None
    assert row.expires_at == datetime.fromtimestamp(claims["exp"], UTC)


async def test_logout_purges_revocations_of_tokens_already_expired(client, alice, db_session):
    _user, headers = alice
    db_session.add(
        models.RevokedToken(jti="stale", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    )
    db_session.add(
        models.RevokedToken(jti="current", expires_at=datetime.now(UTC) + timedelta(minutes=5))
    )
    await db_session.commit()

    await client.post("/api/users/logout", headers=headers)

    db_session.expire_all()
    left = set(await db_session.scalars(select(models.RevokedToken.jti)))
    assert "stale" not in left
    assert "current" in left
    assert len(left) == 2  # "current" and the token just revoked


async def test_a_token_made_without_jti_can_be_revoked_too(client):
    user = await create_test_user(client)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    headers = auth_header(jwt.encode({"sub": str(user["id"]), "exp": expires}, SECRET, "HS256"))
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    assert (await client.post("/api/users/logout", headers=headers)).status_code == 204
    await assert_refused(client, headers)


@pytest.mark.parametrize("jti", [123, "", "x" * 65, ["a"]], ids=["number", "empty", "long", "list"])
async def test_a_token_with_an_unusable_jti_is_refused(client, jti):
    user = await create_test_user(client)
    claims = {"sub": str(user["id"]), "exp": datetime.now(UTC) + timedelta(minutes=5), "jti": jti}
    await assert_refused(client, auth_header(jwt.encode(claims, SECRET, "HS256")))


@contextmanager
def statements_sent(engine):
    """The SQL statements sent on the test engine (not the test's savepoints)."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "SAVEPOINT" not in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_the_revocation_check_costs_no_extra_query(client, engine, alice):
    _user, headers = alice
    with statements_sent(engine) as statements:
        response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 200
    assert len(statements) == 1  # the user and the revocation list, in one query
    assert "revoked_tokens" in statements[0]


async def test_revoked_tokens_table_is_empty_without_logouts(client, alice, db_session):
    _user, headers = alice
    await client.get("/api/users/me", headers=headers)
    assert await db_session.scalar(select(func.count()).select_from(models.RevokedToken)) == 0


# --- The token response ----------------------------------------------------------------------


async def test_token_response_is_never_cached(client):
    """RFC 6749 5.1: Cache-Control: no-store and Pragma: no-cache on a response with a token."""
    user = await create_test_user(client)
    response = await client.post(
        "/api/users/token", data={"username": user["email"], "password": "correct horse battery"}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


@pytest.mark.parametrize("jti", ["x", "x" * 64], ids=["one-character", "64-characters"])
def test_a_token_whose_jti_is_1_to_64_characters_is_accepted_and_named_by_it(jti):
    claims = {"sub": "7", "exp": datetime.now(UTC) + timedelta(minutes=5), "jti": jti}
    token = auth.read_access_token(jwt.encode(claims, SECRET, "HS256"))
    assert (token.user_id, token.token_id) == (7, jti)


@pytest.fixture(params=["Etc/GMT+5", "Etc/GMT-9"], ids=["UTC-5", "UTC+9"])
def server_time_zone(request):
    """The process's local time zone, away from UTC (restored afterwards)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_a_new_token_lasts_the_configured_minutes_whatever_the_servers_time_zone(
    server_time_zone,
):
    user = models.User(id=7, token_version=0)
    expected = datetime.now(UTC) + timedelta(minutes=settings.access_token_expire_minutes)
    expires = datetime.fromtimestamp(claims_of(auth.create_access_token(user))["exp"], UTC)
    assert abs(expires - expected) < timedelta(minutes=1)


def test_a_revocation_is_kept_until_the_tokens_exp_whatever_the_servers_time_zone(
    server_time_zone,
):
    exp = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    token = auth.read_access_token(jwt.encode({"sub": "7", "exp": exp}, SECRET, "HS256"))
    assert token.expires_at == exp
