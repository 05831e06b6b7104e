"""Faults: S3, SMTP or PostgreSQL down. The API answers (503 or its usual answer), loses nothing.

Where it can, a test runs a real local server and stops it: a moto S3 server, an embedded
PostgreSQL. Nothing leaves 127.0.0.1.
"""

import json
import logging
from io import BytesIO

import anyio
import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from httpx import ASGITransport, AsyncClient
from moto.server import ThreadedMotoServer
from PIL import Image

import database
import routers.users
import storage
from config import settings
from database import Base, get_db, make_engine
from email_utils import MailNotSent, deliver_mail
from embedded_postgres import start_embedded_postgres
from main import app
from schemas import Detail, Message
from tests.conftest import (
    TEST_BUCKET,
    bucket_keys,
    create_test_user,
    free_port,
    queued_mails,
    serve_app_from,
    upload_picture,
)


def s3_backend() -> storage.S3Storage:
    """The app's storage, which the suite configures as S3 (moto)."""
    backend = storage.get_storage()
    assert isinstance(backend, storage.S3Storage)
    return backend


pytestmark = pytest.mark.anyio


def failing(error: Exception):
    def call(*args, **kwargs):
        raise error

    return call


S3_ERRORS = [
    ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject"),
    ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your rate"}}, "PutObject"),
    EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com"),
]


# --- S3 refusing or unreachable --------------------------------------------------------------


@pytest.mark.parametrize("error", S3_ERRORS, ids=["access-denied", "slow-down", "unreachable"])
async def test_upload_when_s3_refuses_is_503_and_keeps_the_old_picture(
    client, alice, s3, monkeypatch, error
):
    user, headers = alice
    old = (await upload_picture(client, user, headers)).json()["image_file"]
    monkeypatch.setattr(s3_backend().client, "put_object", failing(error))

    response = await upload_picture(client, user, headers)

    assert response.status_code == 503
    assert response.json() == {"detail": Detail.UPLOAD_FAILED}
    assert (await client.get("/api/users/me", headers=headers)).json()["image_file"] == old
    assert bucket_keys(s3) == [f"profile_pics/{old}"]


async def test_upload_to_a_missing_bucket_is_503(client, alice, s3):
    user, headers = alice
    s3.delete_bucket(Bucket=TEST_BUCKET)
    try:
        response = await upload_picture(client, user, headers)
    finally:
        s3.create_bucket(Bucket=TEST_BUCKET)
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.UPLOAD_FAILED}
    assert (await client.get("/api/users/me", headers=headers)).json()["image_file"] is None


async def test_failed_delete_of_the_old_picture_is_logged_not_fatal(
    client, alice, s3, monkeypatch, caplog
):
    user, headers = alice
    old = (await upload_picture(client, user, headers)).json()["image_file"]
    monkeypatch.setattr(s3_backend().client, "delete_object", failing(S3_ERRORS[0]))

    with caplog.at_level(logging.ERROR, logger="storage"):
        response = await upload_picture(client, user, headers)

    assert response.status_code == 200
    new = response.json()["image_file"]
    assert new != old
    assert f"Could not delete old profile picture {old}" in caplog.text
    assert set(bucket_keys(s3)) == {f"profile_pics/{old}", f"profile_pics/{new}"}


async def test_failed_delete_of_the_picture_is_logged_and_the_row_still_cleared(
    client, alice, s3, monkeypatch, caplog
):
    user, headers = alice
    old = (await upload_picture(client, user, headers)).json()["image_file"]
    monkeypatch.setattr(s3_backend().client, "delete_object", failing(S3_ERRORS[2]))

    with caplog.at_level(logging.ERROR, logger="storage"):
        response = await client.delete(f"/api/users/{user['id']}/picture", headers=headers)

    assert response.status_code == 200
    assert response.json()["image_file"] is None
    assert f"Could not delete old profile picture {old}" in caplog.text


async def test_deleting_a_user_while_s3_is_down_still_deletes_the_account(
    client, alice, s3, monkeypatch, caplog
):
    user, headers = alice
    await upload_picture(client, user, headers)
    monkeypatch.setattr(s3_backend().client, "delete_object", failing(S3_ERRORS[2]))
    with caplog.at_level(logging.ERROR, logger="storage"):
        response = await client.delete(f"/api/users/{user['id']}", headers=headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/users/{user['id']}")).status_code == 404
    assert "Could not delete old profile picture" in caplog.text


@pytest.fixture
def moto_server():
    """A real S3-compatible server on 127.0.0.1, wired in as the app's storage."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()


async def test_s3_endpoint_end_to_end_and_503_once_it_stops(
    client, alice, moto_server, monkeypatch
):
    server, endpoint = moto_server
    backend = storage.S3Storage(
        "pictures",
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    backend.client.create_bucket(Bucket="pictures")
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::pictures/*",
            }
        ],
    }
    backend.client.put_bucket_policy(Bucket="pictures", Policy=json.dumps(public_read))
    monkeypatch.setattr(storage, "get_storage", lambda: backend)
    monkeypatch.setattr(routers.users, "get_storage", lambda: backend)
    user, headers = alice

    response = await upload_picture(client, user, headers)
    assert response.status_code == 200
    picture = response.json()
    assert picture["image_path"] == f"{endpoint}/pictures/profile_pics/{picture['image_file']}"
    async with httpx.AsyncClient(timeout=5) as browser:
        served = await browser.get(picture["image_path"])
    assert served.status_code == 200
    assert Image.open(BytesIO(served.content)).size == (300, 300)

    server.stop()
    response = await upload_picture(client, user, headers)
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.UPLOAD_FAILED}
    me = (await client.get("/api/users/me", headers=headers)).json()
    assert me["image_file"] == picture["image_file"]


# --- SMTP down -------------------------------------------------------------------------------


async def test_forgot_password_with_smtp_down_still_answers_202_with_the_mail_queued(
    client, db_session, monkeypatch, caplog
):
    await create_test_user(client, "alice")
    monkeypatch.setattr(settings, "mail_server", "127.0.0.1")
    monkeypatch.setattr(settings, "mail_port", free_port())  # nothing listens there
    monkeypatch.setattr(settings, "mail_use_tls", False)

    response = await client.post("/api/users/forgot-password", json={"email": "alice@example.com"})

    assert response.status_code == 202
    assert response.json() == {"message": Message.RESET_REQUESTED}
    [(kind, fields)] = await queued_mails(db_session)
    assert (kind, fields["to_email"]) == ("password_reset", "alice@example.com")
    # The queue's worker tries it, logs the failure and keeps the job for a retry.
    with caplog.at_level(logging.ERROR, logger="email_utils"), pytest.raises(MailNotSent):
        await deliver_mail(kind, fields)
    assert "Could not send password reset mail to alice@example.com" in caplog.text


# --- PostgreSQL down and back ----------------------------------------------------------------


@pytest.fixture
async def own_postgres(tmp_path):
    """An embedded PostgreSQL that this test may stop and start; the app's sessions use it."""
    data_dir = tmp_path / "pg"
    server, url = start_embedded_postgres(data_dir)
    # The app's own engine settings (ping after idle, timeouts), for sessions and for reads.
    engine, read_engine = make_engine(url), make_engine(url, autocommit=True)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    serve_app_from(engine, read_engine)
    state = {"server": server}

    def stop():
        state["server"].cleanup()

    def start():
        state["server"], restarted_url = start_embedded_postgres(data_dir)
        assert restarted_url == url

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client, stop, start
    app.dependency_overrides.clear()
    await engine.dispose()
    await read_engine.dispose()
    state["server"].cleanup()


def assert_database_unavailable(response) -> None:
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.DATABASE_UNAVAILABLE}
    assert int(response.headers["retry-after"]) > 0


async def test_database_down_gives_503_and_the_app_recovers_when_it_is_back(own_postgres):
    client, stop, start = own_postgres
    account = {"username": "dora", "email": "dora@example.com", "password": "password 123"}
    assert (await client.post("/api/users", json=account)).status_code == 201
    assert (await client.get("/api/posts")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200

    stop()

    assert_database_unavailable(await client.get("/api/posts"))
    assert_database_unavailable(await client.get("/health/ready"))
    assert_database_unavailable(
        await client.post(
            "/api/users/token", data={"username": account["email"], "password": "password 123"}
        )
    )
    assert (await client.get("/health")).status_code == 200  # liveness needs no database
    page = await client.get("/")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "retry-after" in page.headers

    start()

    assert (await client.get("/api/posts")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    response = await client.post(
        "/api/users/token", data={"username": account["email"], "password": "password 123"}
    )
    assert response.status_code == 200  # the data survived the restart


async def test_a_database_restart_while_the_pool_sits_idle_is_invisible_to_clients(
    own_postgres, monkeypatch
):
    client, stop, start = own_postgres
    # Each leaves a connection in its pool: reads, sessions.
    assert (await client.get("/api/posts")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200

    stop()
    start()
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0)  # it has sat idle long enough

    # The pooled connection died with the old server; the ping on checkout notices, and the
    # pool opens a new one.
    assert (await client.get("/api/posts")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200


async def test_a_restart_moments_after_a_request_costs_one_503(own_postgres, monkeypatch):
    client, stop, start = own_postgres
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600)  # never idle long enough
    assert (await client.get("/api/posts")).status_code == 200

    stop()
    start()

    # A connection used moments ago is not pinged: its next request finds it broken...
    assert_database_unavailable(await client.get("/api/posts"))
    # ...and SQLAlchemy then replaces it, with every connection as old.
    assert (await client.get("/api/posts")).status_code == 200


# --- Every read connection busy ----------------------------------------------------------------


@pytest.fixture
def one_read_slot(monkeypatch) -> anyio.CapacityLimiter:
    """The reads' turns, cut down to one slot."""
    slots = anyio.CapacityLimiter(1)
    monkeypatch.setattr(database, "_read_turns", slots)
    return slots


async def test_reads_waiting_for_a_connection_are_served_in_arrival_order(one_read_slot):
    served = []

    async def read(name: str) -> None:
        async with database.read_turn():
            served.append(name)

    busy = database.read_turn()
    await busy.__aenter__()  # the only slot is taken
    async with anyio.create_task_group() as tg:
        for waiting, name in enumerate(["first", "second", "third"], start=1):
            tg.start_soon(read, name)
            await anyio.wait_all_tasks_blocked()
            assert one_read_slot.statistics().tasks_waiting == waiting
        await busy.__aexit__(None, None, None)
        tg.start_soon(read, "latecomer")  # arrives as the slot is handed back: no cutting in
    assert served == ["first", "second", "third", "latecomer"]


async def test_no_read_connection_free_in_time_gives_503(client, monkeypatch, one_read_slot):
    del app.dependency_overrides[get_db]  # the app's own session: its reads wait for a turn
    monkeypatch.setattr(database, "POOL_TIMEOUT_SECONDS", 0.05)
    async with database.read_turn():  # the only slot stays taken
        response = await client.get("/api/posts")
        statistics = one_read_slot.statistics()
    assert_database_unavailable(response)
    assert (statistics.borrowed_tokens, statistics.tasks_waiting) == (1, 0)  # it left no trace
