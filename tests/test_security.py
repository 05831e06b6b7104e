"""Security: equal work for unknown emails, token revocation, rehashing, headers, CORS, health."""

import importlib.util
import re
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, select, update

import auth
import models
from config import settings
from schemas import Detail, Message
from security_headers import content_security_policy
from tests.conftest import DEFAULT_PASSWORD, auth_header, create_test_user, login_user

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent


@pytest.fixture
def verify_calls(monkeypatch) -> list[str]:
    """Every hash that login verified a password against."""
    calls = []
    real = auth.password_hash.verify_and_update

    def spy(password, hashed):
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(auth.password_hash, "verify_and_update", spy)
    return calls


# --- Login and forgot-password tell nothing about which emails exist -------------------------


async def test_login_with_unknown_email_still_verifies_a_dummy_hash(client, verify_calls):
    response = await client.post(
        "/api/users/token", data={"username": "nobody@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401
    assert verify_calls == [auth._DUMMY_HASH]


async def test_login_with_known_email_and_wrong_password_does_the_same_work(client, verify_calls):
    await create_test_user(client, "alice")
    verify_calls.clear()
    response = await client.post(
        "/api/users/token", data={"username": "alice@example.com", "password": "wrong password"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}
    assert len(verify_calls) == 1
    assert verify_calls[0] != auth._DUMMY_HASH


async def test_forgot_password_answers_alike_for_known_and_unknown_emails(client):
    await create_test_user(client, "alice")
    answers = []
    for email in ("alice@example.com", "ALICE@example.com", "nobody@example.com"):
        response = await client.post("/api/users/forgot-password", json={"email": email})
        answers.append((response.status_code, response.json()))
    assert answers == [(202, {"message": Message.RESET_REQUESTED})] * 3


# --- Tokens die with the password ------------------------------------------------------------


async def test_access_token_stops_working_after_a_password_change(client, alice):
    _user, old_headers = alice
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new password"},
        headers=old_headers,
    )
    assert response.status_code == 200
    response = await client.get("/api/users/me", headers=old_headers)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}
    assert response.headers["www-authenticate"] == "Bearer"
    new_token = await login_user(client, "alice@example.com", "a brand new password")
    assert (await client.get("/api/users/me", headers=auth_header(new_token))).status_code == 200


async def test_access_token_stops_working_after_a_password_reset(client, alice, monkeypatch):
    _user, old_headers = alice
    sent = []

    async def capture(db, **mail):
        sent.append(mail)

    monkeypatch.setattr("routers.users.send_password_reset_email", capture)
    await client.post("/api/users/forgot-password", json={"email": "alice@example.com"})
    response = await client.post(
        "/api/users/reset-password",
        json={"token": sent[0]["token"], "new_password": "reset password 123"},
    )
    assert response.status_code == 200
    response = await client.get("/api/users/me", headers=old_headers)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}


# --- Rehash on login -------------------------------------------------------------------------


async def stored_hash(db_session, user_id: int) -> str:
    db_session.expire_all()
    return await db_session.scalar(
        select(models.User.password_hash).where(models.User.id == user_id)
    )


@pytest.fixture
async def user_with_outdated_hash(client, db_session) -> tuple[dict, str]:
    """Alice, her password stored with argon2 parameters older than the current ones."""
    user = await create_test_user(client, "alice")
    outdated = Argon2Hasher(time_cost=2, memory_cost=2048, parallelism=1).hash(DEFAULT_PASSWORD)
    await db_session.execute(
        update(models.User).where(models.User.id == user["id"]).values(password_hash=outdated)
    )
    await db_session.commit()
    return user, outdated


async def test_login_replaces_a_hash_made_with_outdated_parameters(
    client, db_session, user_with_outdated_hash
):
    user, outdated = user_with_outdated_hash

    await login_user(client, user["email"])

    new_hash = await stored_hash(db_session, user["id"])
    assert new_hash != outdated
    assert not auth.password_hash.verify_and_update(DEFAULT_PASSWORD, new_hash)[1]  # current
    await login_user(client, user["email"])  # and the password still works


async def log_in_while(client, db_session, monkeypatch, user: dict, statement):
    """Log in as `user` while another request runs `statement`, between the moment the login
    read the account and the end of its hash."""
    verify = auth.verify_password

    async def verify_then_run(password, hashed, **kwargs):
        result = await verify(password, hashed, **kwargs)
        connection = await db_session.connection()
        await connection.execute(statement)
        return result

    monkeypatch.setattr("routers.login.verify_password", verify_then_run)
    return await client.post(
        "/api/users/token", data={"username": user["email"], "password": DEFAULT_PASSWORD}
    )


async def test_login_of_an_account_deleted_while_rehashing_is_refused(
    client, db_session, monkeypatch, user_with_outdated_hash
):
    user, _outdated = user_with_outdated_hash
    deleted = delete(models.User).where(models.User.id == user["id"])
    response = await log_in_while(client, db_session, monkeypatch, user, deleted)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}


async def test_login_never_reverts_a_password_changed_while_rehashing(
    client, db_session, monkeypatch, user_with_outdated_hash
):
    user, _outdated = user_with_outdated_hash
    changed_hash = auth.password_hash.hash("a brand new password")
    changed = update(models.User).where(models.User.id == user["id"])
    response = await log_in_while(
        client, db_session, monkeypatch, user, changed.values(password_hash=changed_hash)
    )
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}
    assert await stored_hash(db_session, user["id"]) == changed_hash


async def test_login_holds_no_transaction_while_it_hashes(client, db_session, monkeypatch):
    user = await create_test_user(client, "alice")
    verify = auth.verify_password
    in_transaction_during_hash = []

    async def verify_and_record(password, hashed, **kwargs):
        in_transaction_during_hash.append(db_session.in_transaction())
        return await verify(password, hashed, **kwargs)

    monkeypatch.setattr("routers.login.verify_password", verify_and_record)
    await login_user(client, user["email"])
    assert in_transaction_during_hash == [False]  # its connection is back in the pool


async def test_login_keeps_a_hash_made_with_current_parameters(client, db_session):
    user = await create_test_user(client, "alice")
    before = await stored_hash(db_session, user["id"])
    await login_user(client, user["email"])
    assert await stored_hash(db_session, user["id"]) == before


async def test_failed_login_never_rehashes(client, db_session, user_with_outdated_hash):
    user, outdated = user_with_outdated_hash
    response = await client.post(
        "/api/users/token", data={"username": user["email"], "password": "not the password"}
    )
    assert response.status_code == 401
    assert await stored_hash(db_session, user["id"]) == outdated


# --- Security headers ------------------------------------------------------------------------


def assert_security_headers(response, *, csp: bool = True) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] in ("strict-origin-when-cross-origin", "no-referrer")
    if csp:
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/posts", 200),
        ("/api/posts/999999", 404),
        ("/api/users/me", 401),
        ("/api/posts/not-a-number", 422),
        ("/", 200),
        ("/login", 200),
        ("/no/such/page", 404),
        ("/static/profile_pics/default.jpg", 200),
        ("/static/no-such-file.css", 404),
        ("/health", 200),
        ("/openapi.json", 200),
    ],
)
async def test_every_kind_of_response_carries_the_security_headers(client, path, status):
    response = await client.get(path)
    assert response.status_code == status
    assert_security_headers(response)


async def test_interactive_docs_carry_the_headers_and_a_strict_policy(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert_security_headers(response)


PAGES = [
    "/",
    "/login",
    "/register",
    "/account",
    "/forgot-password",
    "/reset-password?token=x",
    "/verify-email?token=x",
]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_satisfy_their_content_security_policy(client, path):
    """No inline script, inline style or third-party asset that the policy would block."""
    response = await client.get(path)
    assert response.status_code == 200
    html = response.text
    for script in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'src="/static/', script), script
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # inline event handlers
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another origin


def test_pictures_on_a_plain_http_s3_endpoint_are_allowed_by_the_policy():
    assert b"img-src 'self' data: https: http://127.0.0.1:9000;" in content_security_policy(
        "http://127.0.0.1:9000/"
    )
    assert b"img-src 'self' data: https:;" in content_security_policy(None)
    assert b"img-src 'self' data: https:;" in content_security_policy("https://minio.example")


# --- CORS ------------------------------------------------------------------------------------


async def test_no_cross_origin_access_by_default(client):
    assert settings.cors_origins == []
    response = await client.get("/api/posts", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/api/posts",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def fresh_app_module(name: str):
    """main.py executed again as a new module: a second app built from the current settings."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_configured_origins_get_cors_and_others_do_not(monkeypatch):
    monkeypatch.setattr(settings, "cors_origins", ["https://blog.example"])
    app = fresh_app_module("main_with_cors").app
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        preflight = await client.options(
            "/api/posts",
            headers={
                "Origin": "https://blog.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type, If-None-Match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://blog.example"
        # A client of that origin can read a tag and send it back.
        tagged = await client.get("/robots.txt", headers={"Origin": "https://blog.example"})
        assert "etag" in tagged.headers["access-control-expose-headers"].lower()
        other = await client.options(
            "/api/posts",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


# --- Health ----------------------------------------------------------------------------------


async def test_liveness_answers_ok(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_checks_the_database(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
