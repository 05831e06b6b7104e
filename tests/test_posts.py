"""Posts: create, read, list with pagination, update and delete."""

from conftest import create_test_post


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
        "image_path": "/static/profile_pics/default.jpg",
    }
    assert post["date_posted"]


async def test_list_posts_newest_first(client, alice):
    _, headers = alice
    for i in range(3):
        await create_test_post(client, headers, title=f"Post {i}")
    response = await client.get("/api/posts")
    assert response.status_code == 200
    body = response.json()
    assert [p["title"] for p in body["posts"]] == ["Post 2", "Post 1", "Post 0"]
    assert body["total"] == 3
    assert body["has_more"] is False
