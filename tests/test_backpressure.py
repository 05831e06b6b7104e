"""Slow work (argon2, Pillow, S3) holds no database connection, and its queues are bounded.

A request that waits for a hash or an image while holding a pooled connection lets a handful
of such requests (one free account is enough) take every connection: everyone else's writes,
logins and the readiness check then wait for the pool. Here the app runs on a real pooled
engine (as in production) and the tests look at the pool while the slow work is under way.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

import auth
import images
import storage
from config import settings
from schemas import Detail
from tests.conftest import (
    app_on_own_engine,
    auth_header,
    image_bytes,
    upload_picture,
)

pytestmark = pytest.mark.anyio

PREFIX = "busy"
PASSWORD = "busy password 1"
POOL_SIZE = 5


@pytest.fixture
async def live(engine, s3):
    """The app on a pool of POOL_SIZE connections that gives up after a second."""
    pool = {"pool_size": POOL_SIZE, "max_overflow": 0, "pool_timeout": 1}
    async with app_on_own_engine(PREFIX, **pool) as (client, live_engine, _):
        yield client, live_engine


async def registered(client, name: str) -> tuple[dict, dict]:
    account = {"username": f"{PREFIX}{name}", "email": f"{PREFIX}{name}@example.com"}
    response = await client.post("/api/users", json={**account, "password": PASSWORD})
    assert response.status_code == 201, response.text
    login = await client.post(
        "/api/users/token", data={"username": account["email"], "password": PASSWORD}
    )
    return response.json(), auth_header(login.json()["access_token"])


def record_connections_during(monkeypatch, target, name: str, live_engine) -> list[int]:
    """Wrap `target.name` (run in a worker thread): each call notes how many of the app's
    connections are checked out at that moment."""
    seen = []
    original = getattr(target, name)

    def recording(*args, **kwargs):
        seen.append(live_engine.pool.checkedout())
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, recording)
    return seen


async def reset_token_for(client, monkeypatch, email: str) -> str:
    sent = []

    async def capture(db, **mail):
        sent.append(mail)

    monkeypatch.setattr("routers.users.send_password_reset_email", capture)
    await client.post("/api/users/forgot-password", json={"email": email})
    return sent[0]["token"]


SLOW_STEPS = {
    "register hashes": ("hash", "register"),
    "login verifies": ("verify", "login"),
    "password change verifies and hashes": ("verify+hash", "change"),
    "password reset hashes": ("hash", "reset"),
    "email change verifies": ("verify", "email"),
    "upload decodes the image": ("image", "upload"),
    "upload stores to S3": ("s3", "upload"),
}


@pytest.mark.parametrize("step", SLOW_STEPS, ids=list(SLOW_STEPS))
async def test_no_connection_is_held_while_a_request_hashes_decodes_or_uploads(
    live, monkeypatch, step
):
    client, live_engine = live
    user, headers = await registered(client, "someone")
    what, route = SLOW_STEPS[step]
    token = await reset_token_for(client, monkeypatch, user["email"]) if route == "reset" else ""

    seen = []
    if what in ("hash", "verify+hash"):
        seen = record_connections_during(monkeypatch, auth.password_hash, "hash", live_engine)
    if what in ("verify", "verify+hash"):
        seen_verify = record_connections_during(
            monkeypatch, auth.password_hash, "verify_and_update", live_engine
        )
        seen = seen_verify if what == "verify" else seen
    if what == "image":
        seen = record_connections_during(monkeypatch, images, "make_profile_picture", live_engine)
    if what == "s3":
        backend = storage.get_storage()
        assert isinstance(backend, storage.S3Storage)
        s3_client = backend.client
        seen = record_connections_during(monkeypatch, s3_client, "put_object", live_engine)

    if route == "register":
        account = {"username": f"{PREFIX}new", "email": f"{PREFIX}new@example.com"}
        response = await client.post("/api/users", json={**account, "password": PASSWORD})
    elif route == "login":
        response = await client.post(
            "/api/users/token", data={"username": user["email"], "password": PASSWORD}
        )
    elif route == "change":
        response = await client.patch(
            "/api/users/me/password",
            json={"current_password": PASSWORD, "new_password": "another password 2"},
            headers=headers,
        )
    elif route == "reset":
        response = await client.post(
            "/api/users/reset-password", json={"token": token, "new_password": "reset password 3"}
        )
    elif route == "email":
        response = await client.patch(
            f"/api/users/{user['id']}",
            json={"email": f"{PREFIX}moved@example.com", "current_password": PASSWORD},
            headers=headers,
        )
    else:
        response = await upload_picture(client, user, headers, image_bytes(), "me.png", "image/png")

    assert response.status_code in (200, 201), response.text
    assert seen, "the slow step never ran"
    assert set(seen) == {0}, f"connections checked out during the slow step: {seen}"
    if what == "verify+hash":
        assert seen_verify and set(seen_verify) == {0}


async def test_password_changes_in_progress_leave_the_pool_to_everyone_else(live, monkeypatch):
    """As many password changes as the pool has connections, all hashing at once: another
    user still writes, and the app still reports ready."""
    client, live_engine = live
    _attacker, attacker_headers = await registered(client, "attacker")
    _writer, writer_headers = await registered(client, "writer")

    in_progress = threading.Barrier(POOL_SIZE + 1)  # every change, and this test
    release = threading.Event()
    verify = auth.password_hash.verify_and_update

    def held_verify(password, hashed):
        in_progress.wait(timeout=10)
        release.wait(timeout=10)
        return verify(password, hashed)

    monkeypatch.setattr(auth.password_hash, "verify_and_update", held_verify)
    # A worker per change, so they all hash at the same time.
    monkeypatch.setattr(auth, "_hash_pool", ThreadPoolExecutor(max_workers=POOL_SIZE))
    monkeypatch.setattr(auth, "HASH_WORKERS", POOL_SIZE)
    # One account's changes all at once: not refused by the per-account cap, tested apart.
    monkeypatch.setattr(settings, "password_hash_per_account", POOL_SIZE)
    changes = []

    async def change_password():
        response = await client.patch(
            "/api/users/me/password",
            json={"current_password": "not the password", "new_password": "whatever 12345"},
            headers=attacker_headers,
        )
        changes.append(response.status_code)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(POOL_SIZE):
                tg.start_soon(change_password)
            await anyio.to_thread.run_sync(in_progress.wait, 10)  # all of them are hashing

            assert live_engine.pool.checkedout() == 0
            post = await client.post(
                "/api/posts", json={"title": "Still", "content": "writing"}, headers=writer_headers
            )
            assert post.status_code == 201, post.text
            assert (await client.get("/health/ready")).status_code == 200
            release.set()
    finally:
        release.set()
    assert changes == [400] * POOL_SIZE


# --- Bounded queues ------------------------------------------------------------------------


def assert_busy(response, detail: str) -> None:
    assert response.status_code == 503
    assert response.json() == {"detail": detail}
    assert int(response.headers["retry-after"]) > 0


@pytest.fixture
async def hash_queue_full(monkeypatch):
    """Every hashing thread busy and PASSWORD_HASH_MAX_WAITING (here 1) hashes waiting."""
    monkeypatch.setattr(settings, "password_hash_max_waiting", 1)
    release = threading.Event()
    async with anyio.create_task_group() as tg:
        for _ in range(auth.HASH_WORKERS + 1):
            tg.start_soon(auth._in_hash_pool, release.wait, 10)
        await anyio.wait_all_tasks_blocked()
        assert auth.hashes_waiting() == 1
        try:
            yield
        finally:
            release.set()
    assert auth.hashes_waiting() == 0


HASHING_REQUESTS = {
    "login": lambda client, user, headers: client.post(
        "/api/users/token", data={"username": user["email"], "password": "correct horse battery"}
    ),
    "register": lambda client, user, headers: client.post(
        "/api/users",
        json={"username": "carol", "email": "carol@example.com", "password": "carol password"},
    ),
    "password change": lambda client, user, headers: client.patch(
        "/api/users/me/password",
        json={"current_password": "correct horse battery", "new_password": "new password 12"},
        headers=headers,
    ),
    "email change": lambda client, user, headers: client.patch(
        f"/api/users/{user['id']}",
        json={"email": "elsewhere@example.com", "current_password": "correct horse battery"},
        headers=headers,
    ),
}


@pytest.mark.parametrize("request_name", HASHING_REQUESTS, ids=list(HASHING_REQUESTS))
async def test_a_full_password_hash_queue_answers_503_at_once(
    client, alice, hash_queue_full, request_name
):
    user, headers = alice
    response = await HASHING_REQUESTS[request_name](client, user, headers)
    assert_busy(response, Detail.PASSWORD_CHECKS_BUSY)
    assert (await client.get("/api/users/me", headers=headers)).json()["email"] == user["email"]


async def test_password_hashes_are_served_again_once_the_queue_drains(client, alice, monkeypatch):
    user, _headers = alice
    monkeypatch.setattr(settings, "password_hash_max_waiting", 0)
    release = threading.Event()
    async with anyio.create_task_group() as tg:
        for _ in range(auth.HASH_WORKERS):
            tg.start_soon(auth._in_hash_pool, release.wait, 10)
        await anyio.wait_all_tasks_blocked()
        refused = await HASHING_REQUESTS["login"](client, user, None)
        release.set()
    assert_busy(refused, Detail.PASSWORD_CHECKS_BUSY)
    assert (await HASHING_REQUESTS["login"](client, user, None)).status_code == 200


async def test_a_full_image_queue_answers_503_at_once(client, alice, s3, monkeypatch):
    user, headers = alice
    slots = anyio.CapacityLimiter(1)
    monkeypatch.setattr(images, "_processing_limiter", slots)
    monkeypatch.setattr(settings, "image_max_waiting", 0)
    holder = object()
    await slots.acquire_on_behalf_of(holder)  # the only slot is processing another picture
    try:
        response = await upload_picture(client, user, headers)
    finally:
        slots.release_on_behalf_of(holder)
    assert_busy(response, Detail.IMAGES_BUSY)
    assert slots.statistics().tasks_waiting == 0
    assert (await upload_picture(client, user, headers)).status_code == 200


# --- Readiness -------------------------------------------------------------------------------


async def test_readiness_answers_while_every_pooled_connection_is_busy(live):
    client, live_engine = live
    held = [await live_engine.connect() for _ in range(POOL_SIZE)]
    try:
        assert live_engine.pool.checkedout() == POOL_SIZE
        response = await client.get("/health/ready")
    finally:
        for connection in held:
            await connection.close()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
