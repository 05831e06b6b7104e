"""Posts: create, read, list with pagination, update and delete."""

import pytest
from sqlalchemy import select

import models
from schemas import Detail
from tests.conftest import create_test_post

pytestmark = pytest.mark.anyio

DEFAULT_PICTURE = "/static/profile_pics/default.jpg"


# --- Create ----------------------------------------------------------------------------------


async def test_create_post_returns_post_with_author(client, alice):
    user, headers = alice
    response = await client.post(
        "/api/posts", json={"title": "Hello", "content": "World"}, headers=headers
    )
    assert response.status_code == 201
    post = response.json()
    assert post["title"] == "Hello"
    assert post["content"] == "World"
    assert post["user_id"] == user["id"]
    assert post["author"] == {
        "id": user["id"],
        "username": "alice",
        "image_file": None,
        "image_path": DEFAULT_PICTURE,
        "role": "author",
        "suspended": False,
        "bio": "",
        "created_at": user["created_at"],
    }
    assert post["date_posted"].endswith(("Z", "+00:00"))


async def test_create_post_is_stored(client, alice, db_session):
    _, headers = alice
    post = await create_test_post(client, headers, title="Stored")
    row = await db_session.get(models.Post, post["id"])
    assert row.title == "Stored"


async def test_create_post_without_token_is_unauthorized(client):
    response = await client.post("/api/posts", json={"title": "Hi", "content": "There"})
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "", "content": "x"},
        {"title": "   ", "content": "x"},
        {"title": "x" * 101, "content": "x"},
        {"title": "x", "content": ""},
        {"title": "x"},
        {"content": "x"},
        {"title": None, "content": "x"},
        {"title": 5, "content": "x"},
    ],
)
async def test_create_post_with_invalid_fields_is_422(client, alice, payload):
    _, headers = alice
    response = await client.post("/api/posts", json=payload, headers=headers)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_create_post_accepts_100_character_title(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers, title="t" * 100)
    assert len(post["title"]) == 100


async def test_create_post_with_malformed_json_is_422(client, alice):
    _, headers = alice
    response = await client.post(
        "/api/posts",
        content=b'{"title": "x",',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


# --- Read ------------------------------------------------------------------------------------


async def test_get_post(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.get(f"/api/posts/{post['id']}")
    assert response.status_code == 200
    assert response.json() == post


async def test_get_missing_post_is_404(client):
    response = await client.get("/api/posts/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.POST_NOT_FOUND}


@pytest.mark.parametrize("post_id", ["0", "-1", "abc", str(2**70), "1.5"])
async def test_get_post_with_invalid_id_is_422(client, post_id):
    response = await client.get(f"/api/posts/{post_id}")
    assert response.status_code == 422


# --- List and pagination ---------------------------------------------------------------------


async def test_list_posts_when_empty(client):
    response = await client.get("/api/posts")
    assert response.status_code == 200
    assert response.json() == {
        "posts": [],
        "total": 0,
        "skip": 0,
        "limit": 10,
        "has_more": False,
        "next_cursor": None,
    }


async def test_list_posts_newest_first(client, alice):
    _, headers = alice
    for i in range(3):
        await create_test_post(client, headers, title=f"Post {i}")
    body = (await client.get("/api/posts")).json()
    assert [p["title"] for p in body["posts"]] == ["Post 2", "Post 1", "Post 0"]
    assert body["total"] == 3
    assert body["has_more"] is False


async def test_list_posts_breaks_date_ties_by_id(client, alice, db_session):
    user, _ = alice
    same_time = models.Post(title="a", content="a", user_id=user["id"])
    db_session.add_all([same_time, models.Post(title="b", content="b", user_id=user["id"])])
    await db_session.flush()  # one statement, one transaction: both get the same now()
    body = (await client.get("/api/posts")).json()
    assert [p["title"] for p in body["posts"]] == ["b", "a"]


async def test_list_posts_pages_through_everything_once(client, alice):
    _, headers = alice
    for i in range(7):
        await create_test_post(client, headers, title=f"Post {i}")
    first = (await client.get("/api/posts", params={"limit": 3})).json()
    second = (await client.get("/api/posts", params={"skip": 3, "limit": 3})).json()
    last = (await client.get("/api/posts", params={"skip": 6, "limit": 3})).json()
    titles = [p["title"] for page in (first, second, last) for p in page["posts"]]
    assert titles == [f"Post {i}" for i in range(6, -1, -1)]
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)
    assert (first["total"], last["skip"], last["limit"]) == (7, 6, 3)


async def test_list_posts_skip_past_the_end_is_an_empty_page(client, alice):
    _, headers = alice
    await create_test_post(client, headers)
    body = (await client.get("/api/posts", params={"skip": 50})).json()
    assert body == {
        "posts": [],
        "total": 1,
        "skip": 50,
        "limit": 10,
        "has_more": False,
        "next_cursor": None,
    }


async def test_list_posts_default_limit_is_posts_per_page(client, alice):
    _, headers = alice
    for i in range(11):
        await create_test_post(client, headers, title=f"Post {i}")
    body = (await client.get("/api/posts")).json()
    assert len(body["posts"]) == 10
    assert body["limit"] == 10
    assert body["has_more"] is True


@pytest.mark.parametrize(
    "params",
    [{"skip": -1}, {"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"skip": str(2**70)}],
)
async def test_list_posts_with_invalid_paging_is_422(client, params):
    response = await client.get("/api/posts", params=params)
    assert response.status_code == 422


async def test_list_posts_includes_each_author(client, alice, bob):
    _, alice_headers = alice
    _, bob_headers = bob
    await create_test_post(client, alice_headers, title="by alice")
    await create_test_post(client, bob_headers, title="by bob")
    body = (await client.get("/api/posts")).json()
    assert {p["title"]: p["author"]["username"] for p in body["posts"]} == {
        "by alice": "alice",
        "by bob": "bob",
    }


# --- Update ----------------------------------------------------------------------------------


async def test_replace_post_with_put(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.put(
        f"/api/posts/{post['id']}", json={"title": "New", "content": "Body"}, headers=headers
    )
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["content"]) == ("New", "Body")
    stored = (await client.get(f"/api/posts/{post['id']}")).json()
    assert (stored["title"], stored["content"]) == ("New", "Body")


async def test_put_requires_both_fields(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.put(f"/api/posts/{post['id']}", json={"title": "x"}, headers=headers)
    assert response.status_code == 422


async def test_patch_changes_only_the_given_field(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers, title="Old", content="Kept")
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"title": "New"}, headers=headers
    )
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["content"]) == ("New", "Kept")


async def test_patch_content_only(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers, title="Kept", content="Old")
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"content": "New"}, headers=headers
    )
    assert (response.json()["title"], response.json()["content"]) == ("Kept", "New")


async def test_patch_with_null_title_is_422(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.patch(f"/api/posts/{post['id']}", json={"title": None}, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["msg"] == "Value error, title may be omitted but not null"
    both = {"title": None, "content": None}
    response = await client.patch(f"/api/posts/{post['id']}", json=both, headers=headers)
    [error] = response.json()["detail"]
    assert error["msg"] == "Value error, content, title may be omitted but not null"


async def test_update_post_by_other_user_is_forbidden(client, alice, bob):
    _, alice_headers = alice
    _, bob_headers = bob
    post = await create_test_post(client, alice_headers, title="Mine")
    for method in ("put", "patch"):
        response = await client.request(
            method,
            f"/api/posts/{post['id']}",
            json={"title": "Hijack", "content": "x"},
            headers=bob_headers,
        )
        assert response.status_code == 403
        assert response.json() == {"detail": Detail.UPDATE_POST_FORBIDDEN}
    assert (await client.get(f"/api/posts/{post['id']}")).json()["title"] == "Mine"


async def test_update_missing_post_is_404(client, alice):
    _, headers = alice
    response = await client.patch("/api/posts/999999", json={"title": "x"}, headers=headers)
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.POST_NOT_FOUND}


async def test_update_post_without_token_is_unauthorized(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.patch(f"/api/posts/{post['id']}", json={"title": "x"})
    assert response.status_code == 401


# --- Delete ----------------------------------------------------------------------------------


async def test_delete_post(client, alice, db_session):
    _, headers = alice
    post = await create_test_post(client, headers)
    response = await client.delete(f"/api/posts/{post['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/posts/{post['id']}")).status_code == 404
    assert await db_session.scalar(select(models.Post).where(models.Post.id == post["id"])) is None


async def test_delete_post_by_other_user_is_forbidden(client, alice, bob):
    _, alice_headers = alice
    _, bob_headers = bob
    post = await create_test_post(client, alice_headers)
    response = await client.delete(f"/api/posts/{post['id']}", headers=bob_headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.DELETE_POST_FORBIDDEN}
    assert (await client.get(f"/api/posts/{post['id']}")).status_code == 200


async def test_delete_missing_post_is_404(client, alice):
    _, headers = alice
    response = await client.delete("/api/posts/999999", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.POST_NOT_FOUND}


async def test_delete_post_twice_is_404_the_second_time(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    assert (await client.delete(f"/api/posts/{post['id']}", headers=headers)).status_code == 204
    assert (await client.delete(f"/api/posts/{post['id']}", headers=headers)).status_code == 404
