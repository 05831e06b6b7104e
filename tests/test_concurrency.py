"""Concurrent requests on one row: correct answers, no 500, no orphan row or object.

These need real concurrent transactions, which the savepoint-per-test `client` (one connection)
cannot give: here the app gets its own sessions from a pooled engine on the test database, as
in production, and the test deletes the users it made at the end (cascades remove the rest).
"""

from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import pytest
from httpx import Response
from sqlalchemy import func, select

import models
import routers.users
from schemas import Detail
from tests.conftest import (
    app_on_own_engine,
    auth_header,
    bucket_keys,
    image_bytes,
)

pytestmark = pytest.mark.anyio

PREFIX = "race"
PASSWORD = "race password 1"


@pytest.fixture
async def live(engine, s3):
    """An HTTP client on the app with real, separate sessions per request."""
    # Some racing names are upper case ("RACEDUP"): the cleanup matches the prefix in any case.
    async with app_on_own_engine(PREFIX, pool_size=20, max_overflow=10) as (client, _, sessions):
        yield client, sessions


Call = Callable[[], Awaitable[Response]]


async def gather(*calls: Call) -> list[Response]:
    """Run the calls at the same time; their results in order."""
    results: dict[int, Response] = {}

    async def run(index, call):
        results[index] = await call()

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(run, index, call)
    return [results[index] for index in range(len(calls))]


async def register(client, username: str, email: str):
    account = {"username": username, "email": email, "password": PASSWORD}
    return await client.post("/api/users", json=account)


async def registered(client, username: str) -> tuple[dict, dict]:
    user = (await register(client, username, f"{username}@example.com")).json()
    response = await client.post(
        "/api/users/token", data={"username": user["email"], "password": PASSWORD}
    )
    return user, auth_header(response.json()["access_token"])


async def test_concurrent_registrations_of_one_email_create_exactly_one_account(live):
    client, sessions = live
    emails = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.COM"] * 2
    responses = await gather(
        *[
            lambda n=n, email=email: register(client, f"{PREFIX}{n}", email)
            for n, email in enumerate(emails)
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * (len(emails) - 1)
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"detail": Detail.EMAIL_EXISTS}
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(func.lower(models.User.email) == "race@example.com")
        )
    assert count == 1


async def test_concurrent_registrations_of_one_username_create_exactly_one_account(live):
    client, _sessions = live
    names = [f"{PREFIX}Dup", f"{PREFIX}dup", f"{PREFIX.upper()}DUP", f"{PREFIX}dUp"] * 2
    responses = await gather(
        *[
            lambda n=n, name=name: register(client, name, f"{PREFIX}{n}@example.com")
            for n, name in enumerate(names)
        ]
    )
    assert sorted(r.status_code for r in responses) == [201] + [400] * (len(names) - 1)
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"detail": Detail.USERNAME_EXISTS}


@pytest.mark.filterwarnings("ignore:DELETE statement on table:sqlalchemy.exc.SAWarning")
async def test_concurrent_edits_and_deletes_of_one_post_never_fail(live):
    client, sessions = live
    _user, headers = await registered(client, f"{PREFIX}author")
    post = (
        await client.post("/api/posts", json={"title": "t", "content": "c"}, headers=headers)
    ).json()
    url = f"/api/posts/{post['id']}"
    calls: list[Call] = []
    for n in range(6):
        calls.append(partial(client.patch, url, json={"title": f"edit {n}"}, headers=headers))
        calls.append(
            partial(client.put, url, json={"title": f"put {n}", "content": "x"}, headers=headers)
        )
    calls += [partial(client.delete, url, headers=headers)] * 3

    responses = await gather(*calls)

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 204, 404}, statuses
    assert statuses.count(204) >= 1  # a delete that finds the row already gone is idempotent
    for response in responses:
        if response.status_code == 404:
            assert response.json() == {"detail": Detail.POST_NOT_FOUND}
    async with sessions() as session:
        assert await session.get(models.Post, post["id"]) is None


async def test_concurrent_uploads_by_one_user_leave_exactly_one_picture(live, s3):
    client, sessions = live
    user, headers = await registered(client, f"{PREFIX}uploader")
    url = f"/api/users/{user['id']}/picture"
    responses = await gather(
        *[
            lambda n=n: client.patch(
                url,
                files={"file": ("me.png", image_bytes(color=(n * 40, 0, 0)), "image/png")},
                headers=headers,
            )
            for n in range(5)
        ]
    )
    assert [r.status_code for r in responses] == [200] * 5
    async with sessions() as session:
        stored = await session.scalar(
            select(models.User.image_file).where(models.User.id == user["id"])
        )
    assert bucket_keys(s3) == [f"profile_pics/{stored}"]


async def test_deleting_a_user_while_their_picture_uploads_leaves_nothing_behind(live, s3):
    client, sessions = live
    users = [await registered(client, f"{PREFIX}gone{n}") for n in range(4)]

    def upload(user, headers):
        files = {"file": ("me.png", image_bytes(), "image/png")}
        return lambda: client.patch(
            f"/api/users/{user['id']}/picture", files=files, headers=headers
        )

    def remove(user, headers):
        return lambda: client.delete(f"/api/users/{user['id']}", headers=headers)

    calls = []
    for user, headers in users:
        calls += [upload(user, headers), remove(user, headers), upload(user, headers)]
    responses = await gather(*calls)

    for n, response in enumerate(responses):
        if n % 3 == 1:
            assert response.status_code == 204
        else:  # the upload finished first, or found the account gone
            assert response.status_code in (200, 401, 404), response.text
    async with sessions() as session:
        ids = [user["id"] for user, _ in users]
        left = await session.scalar(select(func.count()).where(models.User.id.in_(ids)))
    assert left == 0
    assert bucket_keys(s3) == []


async def test_delete_user_removes_a_picture_committed_after_the_account_was_loaded(live, s3):
    """The interleaving that orphans a picture, played step by step."""
    client, sessions = live
    user, headers = await registered(client, f"{PREFIX}slow")
    async with sessions() as deleting:
        loaded = await deleting.get(models.User, user["id"])  # the delete request loads the user
        assert loaded.image_file is None
        response = await client.patch(  # meanwhile an upload commits
            f"/api/users/{user['id']}/picture",
            files={"file": ("me.png", image_bytes(), "image/png")},
            headers=headers,
        )
        assert response.status_code == 200
        await routers.users.delete_user(user=loaded, current=loaded, db=deleting)
    assert bucket_keys(s3) == []


async def test_concurrent_edits_and_delete_of_one_user_never_fail(live):
    client, sessions = live
    user, headers = await registered(client, f"{PREFIX}target")
    url = f"/api/users/{user['id']}"
    calls: list[Call] = [
        partial(client.patch, url, json={"username": f"{PREFIX}renamed{n}"}, headers=headers)
        for n in range(6)
    ]
    calls.append(
        partial(
            client.patch,
            "/api/users/me/password",
            json={"current_password": PASSWORD, "new_password": "another password"},
            headers=headers,
        )
    )
    calls.insert(3, partial(client.delete, url, headers=headers))

    responses = await gather(*calls)

    statuses = [r.status_code for r in responses]
    assert statuses[3] == 204
    assert set(statuses) <= {200, 204, 401, 404}, statuses
    async with sessions() as session:
        assert await session.get(models.User, user["id"]) is None


async def test_concurrent_registrations_of_look_alike_usernames_create_exactly_one_account(live):
    client, _sessions = live
    # Latin, Cyrillic а, Ukrainian і, both, fullwidth ａ: one look, so one account.
    tails = ["alice", "\u0430lice", "al\u0456ce", "\u0430l\u0456ce", "\uff41lice"] * 2
    responses = await gather(
        *[
            lambda n=n, tail=tail: register(client, f"{PREFIX}-{tail}", f"{PREFIX}{n}@example.com")
            for n, tail in enumerate(tails)
        ]
    )
    assert sorted(r.status_code for r in responses) == [201] + [400] * (len(tails) - 1)
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"detail": Detail.USERNAME_EXISTS}
