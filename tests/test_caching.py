"""HTTP caching: ETags on the public GETs, 304 on a match, no-store on what the token decides.

Most tests run in the suite's one transaction per test: that transaction writes (its fixtures
register users), so its snapshot is never taken as a validator and every conditional request
is decided on the body's hash. The cheap 304 (decided on the snapshot, before the route reads)
is tested under a frozen snapshot (REPEATABLE READ) and with real commits.
"""

import pytest
from starlette.types import Scope

import caching
from caching import (
    MAX_CONDITION_LENGTH,
    Conditional,
    Remembered,
    entity_tag,
    requested_tags,
    url_key,
)
from schemas import Detail
from tests.conftest import (
    app_on_own_engine,
    create_test_post,
    create_user_and_login,
    one_snapshot,
    upload_picture,
)
from tests.test_query_counts import count_statements

pytestmark = pytest.mark.anyio

PUBLIC_GETS = [
    "/api/posts",
    "/api/posts?tag=python",
    "/api/posts/{post}",
    "/api/posts/{post}/comments",
    "/api/users/{user}",
    "/api/users/{user}/posts",
    "/api/tags",
    "/feed.xml",
    "/users/{user}/feed.xml",
    "/tags/python/feed.xml",
    "/sitemap.xml",
    "/robots.txt",
]


@pytest.fixture
async def blog(client, alice, bob) -> dict:
    return await write_blog(client, alice, bob)


async def write_blog(client, alice: tuple[dict, dict], bob: tuple[dict, dict]) -> dict:
    """Alice's post tagged python with a comment by Bob, and a draft of hers."""
    user, headers = alice
    post = (
        await client.post(
            "/api/posts",
            json={"title": "Hello", "content": "First", "tags": ["python"]},
            headers=headers,
        )
    ).json()
    draft = (
        await client.post(
            "/api/posts",
            json={"title": "Draft", "content": "Not yet", "published": False},
            headers=headers,
        )
    ).json()
    response = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "Nice"}, headers=bob[1]
    )
    assert response.status_code == 201
    return {"user": user, "headers": headers, "post": post, "draft": draft}


def url(template: str, blog: dict) -> str:
    return template.format(post=blog["post"]["id"], user=blog["user"]["id"])


async def tag_of(client, path: str, **kwargs) -> str:
    response = await client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-cache"
    return response.headers["etag"]


async def assert_not_modified(client, path: str, tag: str, sent: str = "", **kwargs) -> None:
    """A 304 for `path` carrying `tag`, when `sent` (default: the tag) is the condition."""
    headers = {**kwargs.pop("headers", {}), "If-None-Match": sent or tag}
    response = await client.get(path, headers=headers, **kwargs)
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert response.headers["cache-control"] == "no-cache"
    assert "content-type" not in response.headers


async def assert_modified(client, path: str, old_tag: str) -> str:
    response = await client.get(path, headers={"If-None-Match": old_tag})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] != old_tag
    return response.headers["etag"]


# --- Every public GET ------------------------------------------------------------------------


@pytest.mark.parametrize("template", PUBLIC_GETS)
async def test_a_public_get_sends_an_etag_and_a_match_gets_304(client, blog, template):
    path = url(template, blog)
    tag = await tag_of(client, path)
    assert tag.startswith('W/"')
    await assert_not_modified(client, path, tag)
    # Weak comparison: the same tag sent as a strong one matches too.
    await assert_not_modified(client, path, tag, sent=tag.removeprefix("W/"))


async def test_a_list_of_tags_matches_when_one_of_them_does(client, blog):
    tag = await tag_of(client, "/api/posts")
    await assert_not_modified(client, "/api/posts", tag, sent=f'"other", {tag} , W/"more"')
    response = await client.get("/api/posts", headers={"If-None-Match": '"other", W/"more"'})
    assert response.status_code == 200
    assert response.headers["etag"] == tag


async def test_a_star_matches_what_exists_and_not_what_does_not(client, blog):
    tag = await tag_of(client, url("/api/posts/{post}", blog))
    await assert_not_modified(client, url("/api/posts/{post}", blog), tag, sent="*")
    missing = await client.get("/api/posts/999999", headers={"If-None-Match": "*"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Post not found"}


async def test_a_malformed_if_none_match_is_no_condition(client, blog):
    response = await client.get("/api/posts", headers={"If-None-Match": "no quotes"})
    assert response.status_code == 200
    assert response.json()["total"] == 1


async def test_a_tag_names_one_url(client, blog):
    tag = await tag_of(client, "/api/posts?limit=5")
    other = await client.get("/api/posts?limit=6", headers={"If-None-Match": tag})
    assert other.status_code == 200
    assert other.json()["limit"] == 6


async def test_errors_carry_no_etag(client, blog):
    response = await client.get("/api/posts/999999")
    assert response.status_code == 404
    assert "etag" not in response.headers
    invalid = await client.get("/api/posts?limit=0")
    assert invalid.status_code == 422
    assert "etag" not in invalid.headers


async def test_head_gets_the_same_tag_and_304(client, blog):
    tag = await tag_of(client, "/api/tags")
    head = await client.head("/api/tags")
    assert head.headers["etag"] == tag
    conditional = await client.head("/api/tags", headers={"If-None-Match": tag})
    assert conditional.status_code == 304


# --- Writes change the tags of what they change ----------------------------------------------


async def test_a_new_post_changes_the_lists(client, blog):
    lists = ["/api/posts", url("/api/users/{user}/posts", blog), "/api/tags"]
    tags = [await tag_of(client, path) for path in lists]
    for path, tag in zip(lists, tags, strict=True):
        # Matched once, and again: had the test transaction's snapshot been used (it does
        # not show the transaction's own writes), the tag would now be remembered for it.
        await assert_not_modified(client, path, tag)
        await assert_not_modified(client, path, tag)
    await client.post(
        "/api/posts",
        json={"title": "Second", "content": "More", "tags": ["python"]},
        headers=blog["headers"],
    )
    for path, tag in zip(lists, tags, strict=True):
        await assert_modified(client, path, tag)


async def test_an_edited_post_changes_its_tag_and_the_list(client, blog):
    item, listed = url("/api/posts/{post}", blog), "/api/posts"
    item_tag, list_tag = await tag_of(client, item), await tag_of(client, listed)
    response = await client.patch(item, json={"title": "Hello again"}, headers=blog["headers"])
    assert response.status_code == 200
    new_tag = await assert_modified(client, item, item_tag)
    await assert_modified(client, listed, list_tag)
    await assert_not_modified(client, item, new_tag)


async def test_a_new_comment_changes_the_comments_and_the_post(client, blog, bob):
    comments, item = url("/api/posts/{post}/comments", blog), url("/api/posts/{post}", blog)
    comments_tag, item_tag = await tag_of(client, comments), await tag_of(client, item)
    response = await client.post(comments, json={"content": "Again"}, headers=bob[1])
    assert response.status_code == 201
    await assert_modified(client, comments, comments_tag)
    await assert_modified(client, item, item_tag)  # its comment_count


async def test_a_new_username_changes_the_profile_and_the_posts_it_signs(client, blog):
    profile, listed = url("/api/users/{user}", blog), "/api/posts"
    profile_tag, list_tag = await tag_of(client, profile), await tag_of(client, listed)
    response = await client.patch(profile, json={"username": "alicia"}, headers=blog["headers"])
    assert response.status_code == 200
    await assert_modified(client, profile, profile_tag)
    await assert_modified(client, listed, list_tag)


async def test_a_new_picture_changes_the_profile(client, blog, s3):
    profile = url("/api/users/{user}", blog)
    tag = await tag_of(client, profile)
    response = await upload_picture(client, blog["user"], blog["headers"])
    assert response.status_code == 200
    await assert_modified(client, profile, tag)


# --- What depends on the token ---------------------------------------------------------------


async def test_a_draft_seen_by_its_author_is_private_and_untagged(client, blog):
    for path in (f"/api/posts/{blog['draft']['id']}", f"/api/posts/{blog['draft']['id']}/comments"):
        response = await client.get(path, headers={**blog["headers"], "If-None-Match": "*"})
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "private, no-store"
        assert "etag" not in response.headers


async def test_a_published_post_read_with_a_token_is_tagged_as_for_anyone(client, blog):
    path = url("/api/posts/{post}", blog)
    tag = await tag_of(client, path)
    assert await tag_of(client, path, headers=blog["headers"]) == tag
    await assert_not_modified(client, path, tag, headers=blog["headers"])


@pytest.mark.parametrize("path", ["/api/users/me", "/api/users/me/posts"])
async def test_your_own_data_is_private_and_untagged(client, blog, path):
    response = await client.get(path, headers={**blog["headers"], "If-None-Match": "*"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert "etag" not in response.headers


async def test_a_password_change_answer_is_private(client, alice):
    _, headers = alice
    response = await client.patch(
        "/api/users/me/password",
        json={"current_password": "correct horse battery", "new_password": "a new passphrase 9"},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"


# --- The cheap 304: decided on the snapshot, before the route reads --------------------------


@pytest.fixture
async def frozen_client(engine, aws, monkeypatch):
    """The app on one snapshot for every request, as when nothing commits between them, and
    nothing remembered yet (an earlier test that only read may have seen the same snapshot)."""
    monkeypatch.setattr(caching, "remembered", Remembered())
    async with one_snapshot(engine) as (client, _connection):
        yield client


@pytest.mark.parametrize("path", ["/api/posts?limit=5", "/api/tags"])
async def test_under_an_unchanged_snapshot_a_304_is_answered_before_the_route_reads(
    frozen_client, path
):
    tag = await tag_of(frozen_client, path)
    with count_statements() as first:  # the tag is not known yet under this snapshot
        await assert_not_modified(frozen_client, path, tag)
    assert len(first) > 1  # the snapshot, then the route's read, rendered and compared
    with count_statements() as statements:
        await assert_not_modified(frozen_client, path, tag)
    assert statements == [caching.SNAPSHOT]  # the snapshot alone


async def test_under_an_unchanged_snapshot_another_tag_is_answered_in_full(frozen_client):
    tag = await tag_of(frozen_client, "/api/tags")
    await assert_not_modified(frozen_client, "/api/tags", tag)
    response = await frozen_client.get("/api/tags", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["etag"] == tag


async def test_a_commit_ends_the_cheap_304_of_what_it_changed():
    """Real transactions: a remembered tag is not used once a write has committed."""
    async with app_on_own_engine("etaglive") as (client, _engine, _sessions):
        _user, headers = await create_user_and_login(client, "etaglive")
        await create_test_post(client, headers)
        tag = await tag_of(client, "/api/posts")
        await assert_not_modified(client, "/api/posts", tag)  # remembered now
        await assert_not_modified(client, "/api/posts", tag)
        await create_test_post(client, headers, title="Second")
        new_tag = await assert_modified(client, "/api/posts", tag)
        await assert_not_modified(client, "/api/posts", new_tag)


# --- The pieces ------------------------------------------------------------------------------


def test_if_none_match_is_parsed_as_a_list_of_opaque_tags():
    assert requested_tags(None) is None
    assert requested_tags(" * ") == frozenset({"*"})
    assert requested_tags('W/"a", "b",W/"c"') == frozenset({"a", "b", "c"})
    assert requested_tags('"a" "b"') is None
    assert requested_tags("a") is None
    assert requested_tags("") is None


async def test_an_overlong_if_none_match_is_no_condition(client, alice):
    """Megabytes of tags are not parsed: the list counts as none, so the answer is a 200."""
    tag = await tag_of(client, "/api/posts")
    others = ", ".join(f'"{n:032x}"' for n in range(200))  # 7,198 characters
    within = await client.get("/api/posts", headers={"If-None-Match": f"{others}, {tag}"})
    assert within.status_code == 304
    overlong = f'"{"y" * MAX_CONDITION_LENGTH}", {tag}'
    beyond = await client.get("/api/posts", headers={"If-None-Match": overlong})
    assert beyond.status_code == 200 and beyond.headers["etag"] == tag


def test_a_tag_is_a_weak_hash_of_the_body():
    assert entity_tag(b"x") == entity_tag(b"x")
    assert entity_tag(b"x") != entity_tag(b"y")
    assert entity_tag(b"x").startswith('W/"')


def test_remembered_tags_hold_for_one_snapshot_only():
    remembered: Remembered[str] = Remembered()
    remembered.put("10:12:11", "/api/posts", 'W/"a"')
    assert remembered.get("10:12:11", "/api/posts") == 'W/"a"'
    assert remembered.get("10:13:11", "/api/posts") is None
    remembered.put("10:13:", "/api/tags", 'W/"b"')
    assert remembered.get("10:12:11", "/api/posts") is None
    assert remembered.get("10:13:", "/api/tags") == 'W/"b"'


def test_remembered_tags_are_bounded(monkeypatch):
    monkeypatch.setattr(caching, "MAX_REMEMBERED", 2)
    remembered: Remembered[str] = Remembered()
    for n in range(3):
        remembered.put("1:1:", f"/api/posts/{n}", f'W/"{n}"')
    assert len(remembered.values) <= 2
    assert remembered.get("1:1:", "/api/posts/2") == 'W/"2"'


def test_the_memo_knows_a_url_by_a_few_bytes_however_long():
    def scope(path: str, query: bytes) -> Scope:
        return {"type": "http", "path": path, "query_string": query}

    long = url_key(scope("/api/posts", b"pad=" + b"a" * 60_000))
    assert len(long) == 32
    keys = {
        long,
        url_key(scope("/api/posts", b"")),
        url_key(scope("/api/posts", b"skip=10")),
        url_key(scope("/api/posts/1", b"")),
        url_key(scope("/api/posts?x", b"")),  # %3F in the path
        url_key(scope("/api/posts", b"x?")),
    }
    assert len(keys) == 6  # distinct URLs, distinct keys


def test_a_star_matches_any_tag_and_no_header_matches_none():
    assert Conditional("/", frozenset({"*"})).matches('W/"x"')
    assert not Conditional("/", None).matches('W/"x"')
    assert Conditional("/", frozenset({"x"})).matches('W/"x"')


async def test_a_failed_snapshot_is_a_503_as_any_failed_read(client, monkeypatch):
    # Cancelled by PostgreSQL, as a statement_timeout cancels a read that waited too long.
    monkeypatch.setattr(
        caching, "SNAPSHOT", "SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)::text"
    )
    response = await client.get("/api/tags", headers={"If-None-Match": '"x"'})
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.DATABASE_UNAVAILABLE}
    assert response.headers["retry-after"] == "5"
