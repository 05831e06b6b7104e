"""Comments: who may read, write, edit and delete them, and what goes when a post or user goes."""

import pytest
from sqlalchemy import func, select

import models
from config import settings
from tests.conftest import create_test_post, create_user_and_login

pytestmark = pytest.mark.anyio


async def comment(client, post_id: int, headers: dict, content: str = "Nice post") -> dict:
    response = await client.post(
        f"/api/posts/{post_id}/comments", json={"content": content}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def post(client, alice) -> dict:
    return await create_test_post(client, alice[1], title="Alice's post")


async def test_a_logged_in_user_comments_and_everyone_reads_it(client, bob, post):
    user, headers = bob
    created = await comment(client, post["id"], headers, "  Well said  ")
    assert created["content"] == "Well said"
    assert created["status"] == "approved"  # COMMENT_MODERATION is off by default
    assert created["post_id"] == post["id"]
    assert created["author"]["username"] == "bob"
    assert created["author"]["image_path"] == "/static/profile_pics/default.jpg"
    assert (created["parent_id"], created["reply_count"]) == (None, 0)
    page = (await client.get(f"/api/posts/{post['id']}/comments")).json()
    listed = {**created, "replies": []}
    assert page == {"comments": [listed], "total": 1, "skip": 0, "limit": 50, "has_more": False}


async def test_comments_are_listed_oldest_first_and_paged(client, bob, post):
    _, headers = bob
    for i in range(3):
        await comment(client, post["id"], headers, f"c{i}")
    first = (await client.get(f"/api/posts/{post['id']}/comments?limit=2")).json()
    rest = (await client.get(f"/api/posts/{post['id']}/comments?skip=2&limit=2")).json()
    assert [c["content"] for c in first["comments"] + rest["comments"]] == ["c0", "c1", "c2"]
    assert (first["has_more"], rest["has_more"], first["total"]) == (True, False, 3)
    past = (await client.get(f"/api/posts/{post['id']}/comments?skip=10")).json()
    assert (past["comments"], past["total"]) == ([], 3)


async def test_posts_carry_their_comment_count(client, alice, bob, post):
    other = await create_test_post(client, alice[1], title="Quiet")
    for _ in range(2):
        await comment(client, post["id"], bob[1])
    assert (await client.get(f"/api/posts/{post['id']}")).json()["comment_count"] == 2
    page = (await client.get("/api/posts")).json()
    assert {p["id"]: p["comment_count"] for p in page["posts"]} == {post["id"]: 2, other["id"]: 0}


async def test_an_edited_post_answers_with_its_comment_count(client, alice, bob, post):
    quiet = await create_test_post(client, alice[1], title="Quiet")
    for _ in range(2):
        await comment(client, post["id"], bob[1])
    for edited, count in ((post, 2), (quiet, 0)):
        response = await client.patch(
            f"/api/posts/{edited['id']}", json={"title": "Edited"}, headers=alice[1]
        )
        assert response.status_code == 200, response.text
        assert response.json()["comment_count"] == count


async def test_commenting_needs_a_login(client, post):
    response = await client.post(f"/api/posts/{post['id']}/comments", json={"content": "x"})
    assert response.status_code == 401
    assert response.json()["detail"] == "Not authenticated"


@pytest.mark.parametrize("method", ["get", "post"])
async def test_comments_of_a_missing_post_are_404(client, bob, method):
    kwargs = {"json": {"content": "x"}} if method == "post" else {}
    response = await getattr(client, method)("/api/posts/999999/comments", headers=bob[1], **kwargs)
    assert response.status_code == 404
    assert response.json()["detail"] == "Post not found"


@pytest.mark.parametrize("content", ["", "   ", "x" * 2001, None, 5])
async def test_invalid_comment_text_is_422(client, bob, post, content):
    response = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": content}, headers=bob[1]
    )
    assert response.status_code == 422


async def test_a_comment_of_2000_characters_is_accepted(client, bob, post):
    assert len((await comment(client, post["id"], bob[1], "é" * 2000))["content"]) == 2000


async def test_the_comment_author_edits_their_comment(client, bob, post):
    created = await comment(client, post["id"], bob[1])
    response = await client.patch(
        f"/api/comments/{created['id']}", json={"content": "Edited"}, headers=bob[1]
    )
    assert response.status_code == 200
    assert response.json() == {**created, "content": "Edited"}


@pytest.mark.parametrize("who", ["post author", "stranger"])
async def test_nobody_else_edits_a_comment(client, alice, bob, post, who):
    created = await comment(client, post["id"], bob[1])
    headers = alice[1] if who == "post author" else (await create_user_and_login(client, "eve"))[1]
    response = await client.patch(
        f"/api/comments/{created['id']}", json={"content": "Mine now"}, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "Not authorized to update this comment"


@pytest.mark.parametrize("who", ["comment author", "post author"])
async def test_the_comment_or_post_author_deletes_a_comment(client, alice, bob, post, who):
    created = await comment(client, post["id"], bob[1])
    headers = bob[1] if who == "comment author" else alice[1]
    response = await client.delete(f"/api/comments/{created['id']}", headers=headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/posts/{post['id']}/comments")).json()["total"] == 0


async def test_a_stranger_cannot_delete_a_comment(client, bob, post):
    created = await comment(client, post["id"], bob[1])
    _, eve = await create_user_and_login(client, "eve")
    response = await client.delete(f"/api/comments/{created['id']}", headers=eve)
    assert response.status_code == 403
    assert response.json()["detail"] == "Not authorized to delete this comment"
    assert (await client.get(f"/api/posts/{post['id']}/comments")).json()["total"] == 1


@pytest.mark.parametrize("method", ["patch", "delete"])
async def test_a_missing_comment_is_404(client, bob, method):
    kwargs = {"json": {"content": "x"}} if method == "patch" else {}
    response = await getattr(client, method)("/api/comments/999999", headers=bob[1], **kwargs)
    assert response.status_code == 404
    assert response.json()["detail"] == "Comment not found"


@pytest.mark.parametrize("method", ["patch", "delete"])
async def test_changing_a_comment_needs_a_login(client, bob, post, method):
    created = await comment(client, post["id"], bob[1])
    kwargs = {"json": {"content": "x"}} if method == "patch" else {}
    response = await getattr(client, method)(f"/api/comments/{created['id']}", **kwargs)
    assert response.status_code == 401


# --- Drafts -----------------------------------------------------------------------------------


@pytest.fixture
async def draft(client, alice) -> dict:
    response = await client.post(
        "/api/posts", json={"title": "Draft", "content": "x", "published": False}, headers=alice[1]
    )
    return response.json()


async def test_the_author_comments_on_their_draft_and_reads_the_comments(client, alice, draft):
    created = await comment(client, draft["id"], alice[1], "Note to self")
    page = (await client.get(f"/api/posts/{draft['id']}/comments", headers=alice[1])).json()
    assert page["comments"] == [{**created, "replies": []}]


@pytest.mark.parametrize("who", ["anonymous", "stranger"])
async def test_a_drafts_comments_are_not_found_by_others(client, alice, bob, draft, who):
    await comment(client, draft["id"], alice[1])
    headers = {} if who == "anonymous" else bob[1]
    listed = await client.get(f"/api/posts/{draft['id']}/comments", headers=headers)
    assert (listed.status_code, listed.json()["detail"]) == (404, "Post not found")
    if who == "stranger":
        written = await client.post(
            f"/api/posts/{draft['id']}/comments", json={"content": "hi"}, headers=headers
        )
        assert (written.status_code, written.json()["detail"]) == (404, "Post not found")


async def test_a_comment_under_a_post_turned_draft_is_not_found_by_its_author(
    client, alice, bob, post
):
    created = await comment(client, post["id"], bob[1])
    await client.patch(f"/api/posts/{post['id']}", json={"published": False}, headers=alice[1])
    response = await client.patch(
        f"/api/comments/{created['id']}", json={"content": "x"}, headers=bob[1]
    )
    assert (response.status_code, response.json()["detail"]) == (404, "Comment not found")
    # The post's author still sees and moderates it.
    assert (
        await client.delete(f"/api/comments/{created['id']}", headers=alice[1])
    ).status_code == 204


# --- Cascades ---------------------------------------------------------------------------------


async def count_comments(db_session) -> int:
    return await db_session.scalar(select(func.count()).select_from(models.Comment))


async def test_deleting_a_post_deletes_its_comments(client, db_session, alice, bob, post):
    await comment(client, post["id"], bob[1])
    await comment(client, post["id"], alice[1])
    assert await count_comments(db_session) == 2
    assert (await client.delete(f"/api/posts/{post['id']}", headers=alice[1])).status_code == 204
    assert await count_comments(db_session) == 0


async def test_deleting_a_user_deletes_their_comments_everywhere(
    client, db_session, alice, bob, post
):
    user, headers = bob
    own = await create_test_post(client, headers, title="Bob's")
    await comment(client, post["id"], headers, "on alice's post")
    await comment(client, own["id"], alice[1], "alice on bob's post")
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status_code == 204
    # Bob's comment on Alice's post went with him; Alice's comment went with Bob's post.
    assert await count_comments(db_session) == 0
    assert (await client.get(f"/api/posts/{post['id']}")).json()["comment_count"] == 0


# --- Rate limit -------------------------------------------------------------------------------


async def test_commenting_is_limited_per_client(client, bob, post, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)
    monkeypatch.setattr(settings, "rate_limit_comment", "2/minute")
    for _ in range(2):
        await comment(client, post["id"], bob[1])
    response = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "third"}, headers=bob[1]
    )
    assert response.status_code == 429
    assert response.json()["detail"] == "Too many requests. Please try again later."
    assert int(response.headers["retry-after"]) >= 1
    assert (await client.get(f"/api/posts/{post['id']}/comments")).json()["total"] == 2
