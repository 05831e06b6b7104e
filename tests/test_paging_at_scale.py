"""Lists stay cheap on large tables: `skip` is bounded, the total is counted only so far, a
read that runs too long is cancelled, and a post's size is bounded in bytes too."""

import logging

import anyio
import pytest
from sqlalchemy import text

import database
from config import settings
from database import get_db, make_engine
from main import app
from queries import COUNTED_UP_TO
from schemas import MAX_SKIP, Detail
from tests.conftest import TEST_DATABASE_URL, create_test_post, serve_app_from

pytestmark = pytest.mark.anyio


async def add_posts(db_session, user_id: int, count: int) -> None:
    """`count` posts by one user, in one statement (tens of thousands in a blink)."""
    await db_session.execute(
        text(
            "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
            " user_id, date_posted)"
            " SELECT 'Post ' || g, 'Body', '<p>Body</p>', 'Body', 1, :user_id,"
            " now() - g * interval '1 second'"
            " FROM generate_series(1, :count) g"
        ),
        {"user_id": user_id, "count": count},
    )
    await db_session.commit()


# --- skip is bounded -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/posts", "/api/users/{id}/posts"])
async def test_skip_deeper_than_10000_is_refused_with_a_pointer_to_cursors(client, alice, path):
    user, _ = alice
    response = await client.get(path.format(id=user["id"]), params={"skip": MAX_SKIP + 1})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "skip"]
    assert error["msg"] == Detail.SKIP_TOO_DEEP
    assert error["type"] == "skip_too_deep"
    assert "cursor=" in error["msg"]


@pytest.mark.parametrize("path", ["/api/posts", "/api/users/{id}/posts"])
async def test_skip_of_10000_is_still_served(client, alice, path):
    user, _ = alice
    response = await client.get(path.format(id=user["id"]), params={"skip": MAX_SKIP})
    assert response.status_code == 200
    assert response.json()["skip"] == MAX_SKIP


@pytest.mark.parametrize("path", ["/", "/search?q=word", "/users/{id}/posts"])
async def test_a_page_at_skip_10000_is_still_served(client, alice, path):
    user, _ = alice
    response = await client.get(path.format(id=user["id"]), params={"skip": MAX_SKIP})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/", "/posts", "/users/{id}/posts"])
async def test_pages_deeper_than_10000_explain_cursors(client, alice, path):
    user, _ = alice
    response = await client.get(path.format(id=user["id"]), params={"skip": MAX_SKIP + 1})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "cursor=" in response.text
    assert "skip can be at most 10000" in response.text


# --- the total -------------------------------------------------------------------------------


async def test_total_is_exact_up_to_the_bound_and_the_deepest_page_knows_it_is_the_last(
    client, db_session, alice
):
    user, _ = alice
    await add_posts(db_session, user["id"], COUNTED_UP_TO - 1)

    for path in ("/api/posts", f"/api/users/{user['id']}/posts"):
        page = (await client.get(path, params={"skip": MAX_SKIP, "limit": 100})).json()
        assert page["total"] == COUNTED_UP_TO - 1
        assert len(page["posts"]) == 100
        assert page["has_more"] is False


async def test_total_beyond_the_bound_is_estimated_and_the_deepest_page_still_has_more(
    client, db_session, alice
):
    user, _ = alice
    await add_posts(db_session, user["id"], COUNTED_UP_TO + 2000)

    for path in ("/api/posts", f"/api/users/{user['id']}/posts"):
        first = (await client.get(path)).json()
        deepest = (await client.get(path, params={"skip": MAX_SKIP, "limit": 100})).json()
        assert first["total"] >= COUNTED_UP_TO
        assert first["has_more"] is True
        assert len(deepest["posts"]) == 100
        assert deepest["has_more"] is True  # 10,100 listed, and more exist


# --- a read that runs too long ---------------------------------------------------------------


@pytest.fixture
async def short_read_timeout(client, monkeypatch):
    """The app on real engines, its read engine built with DB_READ_STATEMENT_TIMEOUT_MS=500:
    far longer than a read of this small test database takes, even on a busy machine, so
    that only the locked reads below are cut."""
    monkeypatch.setattr(settings, "db_read_statement_timeout_ms", 500)
    engine = make_engine(TEST_DATABASE_URL)
    read_engine = make_engine(TEST_DATABASE_URL, autocommit=True)
    serve_app_from(engine, read_engine)
    yield
    await engine.dispose()
    await read_engine.dispose()


async def test_a_read_past_the_statement_timeout_gets_503_and_the_app_carries_on(
    client, short_read_timeout, engine, caplog
):
    async with engine.connect() as locker:
        await locker.begin()
        await locker.execute(text("SET LOCAL lock_timeout = '5s'"))
        await locker.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
        with caplog.at_level(logging.WARNING, logger="errors"):
            for path in ("/api/posts", "/api/posts/1"):
                response = await client.get(path)
                assert response.status_code == 503
                assert response.json() == {"detail": Detail.DATABASE_UNAVAILABLE}
                assert int(response.headers["retry-after"]) > 0
            page = await client.get("/")
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
        await locker.rollback()

    assert "statement_timeout" in caplog.text
    response = await client.get("/api/posts")  # the same pooled connections serve again
    assert response.status_code == 200


async def test_writes_are_not_cut_by_the_read_timeout(client, short_read_timeout):
    engine = make_engine(TEST_DATABASE_URL)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        await engine.dispose()


# --- content in bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["😀" * 50_001, "中" * 66_667],  # 200,004 and 200,001 bytes, within 100,000 characters
    ids=["emoji", "chinese"],
)
async def test_content_over_200000_bytes_is_refused_in_every_write(client, alice, content):
    user, headers = alice
    post = await create_test_post(client, headers)
    writes = [
        ("POST", "/api/posts", {"title": "Big", "content": content}),
        ("PUT", f"/api/posts/{post['id']}", {"title": "Big", "content": content}),
        ("PATCH", f"/api/posts/{post['id']}", {"content": content}),
    ]
    for method, url, body in writes:
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 422, (method, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "content"]
        assert error["type"] == "content_too_many_bytes"  # for a client to tell it apart
        assert error["msg"] == Detail.CONTENT_TOO_MANY_BYTES
    stored = (await client.get(f"/api/posts/{post['id']}")).json()
    assert stored["content"] == post["content"]


@pytest.mark.parametrize(
    "content",
    # 200,000 bytes each (the ascii one also 100,000 characters); the chinese one has enough
    # characters that its bytes must be counted.
    ["😀" * 50_000, "a" * 100_000, "中" * 66_666 + "ab"],
    ids=["emoji", "ascii", "chinese"],
)
async def test_content_up_to_the_limits_is_stored_whole(client, alice, content):
    _, headers = alice
    post = await create_test_post(client, headers, content=content)
    assert (await client.get(f"/api/posts/{post['id']}")).json()["content"] == content


# --- deep pages take turns -------------------------------------------------------------------


SHALLOW_READS = {"/api/posts?skip=999": 200, "/": 200, "/api/posts/1": 404, "/api/users/1": 404}


async def held_up_by_a_deep_page(client, urls: list[str], meanwhile=None) -> list[int]:
    """Ask for `urls` while a deep page holds the deep pages' turn: each waits for it (checked)
    while `meanwhile` runs; their status codes once the turn is free."""
    responses = {}

    async def get(url: str) -> None:
        responses[url] = await client.get(url)

    serving = database.deep_read_turn()
    await serving.__aenter__()  # a deep page holds the turn
    async with anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(get, url)
        await anyio.wait_all_tasks_blocked()
        assert database._deep_read_turns.statistics().tasks_waiting == len(urls)
        if meanwhile is not None:
            await meanwhile()
        assert responses == {}
        await serving.__aexit__(None, None, None)
    return [response.status_code for response in responses.values()]


@pytest.fixture
async def own_sessions(client):
    """The client on the app's own sessions, one per request, so reads take turns (outside the
    test's transaction: the lists are empty, profiles missing); its pools emptied after."""
    del app.dependency_overrides[get_db]
    try:
        yield client
    finally:
        await database.engine.dispose()
        await database.read_engine.dispose()


async def test_deep_pages_wait_for_their_turn_holding_no_read_connection(own_sessions):
    """While a deep page is served, the next waits for it, and lets every other read by."""
    client = own_sessions

    async def shallow_reads_go_by() -> None:
        assert database._read_turns.statistics().borrowed_tokens == 0
        served = {url: (await client.get(url)).status_code for url in SHALLOW_READS}
        assert served == SHALLOW_READS

    deep = ["/api/posts?skip=5000", "/posts?skip=5000"]
    assert await held_up_by_a_deep_page(client, deep, shallow_reads_go_by) == [200, 200]


async def test_a_users_deep_pages_take_the_same_turns(client, alice):
    user, _ = alice
    deep = [f"/api/users/{user['id']}/posts?skip=5000", f"/users/{user['id']}/posts?skip=5000"]
    assert await held_up_by_a_deep_page(client, deep) == [200, 200]


async def test_the_first_deep_page_is_skip_1000(own_sessions):
    """skip=1000 waits for the turn of the deep pages; skip=999 goes by."""
    client = own_sessions

    async def skip_999_goes_by() -> None:
        assert (await client.get("/api/posts?skip=999")).status_code == 200

    deep = ["/api/posts?skip=1000", "/posts?skip=1000"]
    assert await held_up_by_a_deep_page(client, deep, skip_999_goes_by) == [200, 200]
