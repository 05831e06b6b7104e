"""Scheduled posts: `publish_at` keeps a post a draft until that moment, when it goes out with
no request and no job to trigger it: every public read compares the post's date with the clock,
and the caches key what they remember by the next such moment too."""

from datetime import UTC, datetime, timedelta

import anyio
import pytest

import caching
import queries
from config import settings
from schemas import Detail
from tests.conftest import (
    app_on_own_engine,
    create_test_post,
    create_user_and_login,
    one_snapshot,
)

pytestmark = pytest.mark.anyio


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def schedule_post(client, headers, publish_at: str, title: str = "Soon") -> dict:
    body = {"title": title, "content": "Out at its time", "publish_at": publish_at}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def titles(page: dict) -> list[str]:
    return [post["title"] for post in page["posts"]]


async def test_a_scheduled_post_is_a_draft_dated_its_time_until_then(client):
    author, headers = await create_user_and_login(client, "writer")
    publish_at = later(days=2)
    post = await schedule_post(client, headers, publish_at)

    assert (post["published"], post["publish_at"]) == (False, post["date_posted"])
    assert datetime.fromisoformat(post["publish_at"]) == datetime.fromisoformat(publish_at)
    # Nobody else sees it anywhere; its author does, as a draft.
    assert (await client.get(f"/api/posts/{post['id']}")).status_code == 404
    assert titles((await client.get("/api/posts")).json()) == []
    assert (await client.get("/api/posts")).json()["total"] == 0
    assert "Soon" not in (await client.get("/feed.xml")).text
    assert f"/posts/{post['id']}/" not in (await client.get("/sitemap.xml")).text
    assert titles((await client.get("/api/posts", params={"q": "time"})).json()) == []
    mine = (await client.get("/api/users/me/posts", headers=headers)).json()
    assert [(p["title"], p["published"], p["publish_at"]) for p in mine["posts"]] == [
        ("Soon", False, post["publish_at"])
    ]
    seen = await client.get(f"/api/posts/{post['id']}", headers=headers)
    assert seen.json()["publish_at"] == post["publish_at"]
    assert seen.headers["cache-control"] == caching.PRIVATE
    # Nor can anyone else comment on it.
    _, other = await create_user_and_login(client, "reader")
    comment = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "First!"}, headers=other
    )
    assert comment.status_code == 404


@pytest.mark.parametrize(
    "publish_at",
    [
        pytest.param("2020-01-01T09:00:00+00:00", id="in the past"),
        pytest.param("2099-01-01T09:00:00", id="naive: no offset"),
        pytest.param(4102444800, id="a number"),
        pytest.param("next tuesday", id="not a datetime"),
        pytest.param("", id="empty"),
    ],
)
async def test_a_publish_at_that_is_not_a_future_time_with_its_offset_is_a_422(client, publish_at):
    _, headers = await create_user_and_login(client)
    body = {"title": "T", "content": "C", "publish_at": publish_at}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "publish_at"]


async def test_a_schedule_sent_with_published_false_is_a_422(client):
    _, headers = await create_user_and_login(client)
    body = {"title": "T", "content": "C", "published": False, "publish_at": later(days=1)}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 422
    assert "cannot be sent with published false" in response.text


async def test_patch_schedules_a_draft_moves_the_time_and_clears_it_back_to_a_draft(client):
    _, headers = await create_user_and_login(client)
    draft = await client.post(
        "/api/posts", json={"title": "D", "content": "C", "published": False}, headers=headers
    )
    url = f"/api/posts/{draft.json()['id']}"

    first, second = later(days=1), later(days=3)
    scheduled = (await client.patch(url, json={"publish_at": first}, headers=headers)).json()
    assert datetime.fromisoformat(scheduled["publish_at"]) == datetime.fromisoformat(first)
    moved = (await client.patch(url, json={"publish_at": second}, headers=headers)).json()
    assert datetime.fromisoformat(moved["date_posted"]) == datetime.fromisoformat(second)
    # An edit of the text keeps the schedule.
    edited = (await client.patch(url, json={"title": "D2"}, headers=headers)).json()
    assert edited["publish_at"] == moved["publish_at"]

    cleared = (await client.patch(url, json={"publish_at": None}, headers=headers)).json()
    assert (cleared["published"], cleared["publish_at"]) == (False, None)
    assert datetime.fromisoformat(cleared["date_posted"]) <= datetime.now(UTC)
    assert (await client.get(url)).status_code == 404  # still a draft


async def test_publishing_a_scheduled_post_now_dates_it_now(client):
    _, headers = await create_user_and_login(client)
    post = await schedule_post(client, headers, later(days=1))
    before = datetime.now(UTC)
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"published": True}, headers=headers
    )
    out = response.json()
    assert (out["published"], out["publish_at"]) == (True, None)
    assert before <= datetime.fromisoformat(out["date_posted"]) <= datetime.now(UTC)
    assert titles((await client.get("/api/posts")).json()) == ["Soon"]


async def test_a_post_that_is_out_takes_no_schedule(client):
    _, headers = await create_user_and_login(client)
    post = await create_test_post(client, headers)
    url = f"/api/posts/{post['id']}"
    response = await client.patch(url, json={"publish_at": later(days=1)}, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.ALREADY_PUBLISHED}
    # null there is no change at all.
    assert (await client.patch(url, json={"publish_at": None}, headers=headers)).status_code == 200
    assert (await client.get(url)).json()["published"] is True


async def test_an_unverified_user_cannot_schedule_when_verification_is_required(
    client, monkeypatch
):
    monkeypatch.setattr(settings, "email_verification_required", True)
    _, headers = await create_user_and_login(client)
    body = {"title": "T", "content": "C", "publish_at": later(days=1)}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.VERIFY_EMAIL_FIRST}


async def test_a_scheduled_post_goes_out_at_its_time_with_no_request_to_trigger_it(client):
    _, headers = await create_user_and_login(client)
    publish_at = later(seconds=1)
    post = await schedule_post(client, headers, publish_at)
    assert titles((await client.get("/api/posts")).json()) == []

    async def out() -> bool:
        return titles((await client.get("/api/posts")).json()) == ["Soon"]

    await wait_until_async(out)
    seen = (await client.get(f"/api/posts/{post['id']}")).json()
    assert (seen["published"], seen["publish_at"]) == (True, None)
    assert datetime.fromisoformat(seen["date_posted"]) == datetime.fromisoformat(publish_at)
    assert "Soon" in (await client.get("/feed.xml")).text
    assert f"/posts/{post['id']}/" in (await client.get("/sitemap.xml")).text


async def wait_until_async(condition, seconds: float = 15) -> None:
    """Until the app answers as `condition` wants (the clock reaching a post's time); fails
    after `seconds`."""
    with anyio.fail_after(seconds):
        while not await condition():  # noqa: ASYNC110 - the clock: nothing to wait on
            await anyio.sleep(0.1)


async def test_under_one_snapshot_the_lists_etag_changes_when_a_post_goes_out(engine, monkeypatch):
    """The 304 that a worker answers from memory holds for one snapshot and until the next
    scheduled moment: without the latter, a reader would be told nothing changed while a post
    went out (no write, so the same snapshot)."""
    monkeypatch.setattr(queries, "counted_totals", caching.Remembered())
    monkeypatch.setattr(caching, "remembered", caching.Remembered())
    async with app_on_own_engine("schedetag") as (writer, _engine, _sessions):
        _, headers = await create_user_and_login(writer, "schedetag")
        await create_test_post(writer, headers, title="Already out")
        await schedule_post(writer, headers, later(seconds=2), title="Soon")
        async with one_snapshot(engine) as (reader, _):
            first = await reader.get("/api/posts")
            assert titles(first.json()) == ["Already out"]
            tag = first.headers["etag"]
            again = await reader.get("/api/posts", headers={"If-None-Match": tag})
            assert again.status_code == 304

            async def changed() -> bool:
                response = await reader.get("/api/posts", headers={"If-None-Match": tag})
                return response.status_code == 200

            await wait_until_async(changed)
            page = await reader.get("/api/posts")
            assert titles(page.json()) == ["Soon", "Already out"]
            assert page.json()["total"] == 2
            assert page.headers["etag"] != tag
