"""Through the tutorial's one override: register, log in, write, read, list, change, delete."""

import pytest
from sqlalchemy import select

import models

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


@pytest.fixture
async def author(client) -> tuple[dict, dict]:
    account = {"username": "tess", "email": "tess@example.com", "password": PASSWORD}
    response = await client.post("/api/users", json=account)
    assert response.status_code == 201, response.text
    login = await client.post(
        "/api/users/token", data={"username": account["email"], "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return response.json(), {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture
async def post(client, author) -> dict:
    _, headers = author
    body = {"title": "Seen through get_db", "content": "Written inside the test's transaction."}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_registered_user_logs_in_and_is_read_back(client, author):
    user, headers = author
    assert (await client.get("/api/users/me", headers=headers)).json()["id"] == user["id"]
    public = await client.get(f"/api/users/{user['id']}")
    assert (public.status_code, public.json()["username"]) == (200, "tess")


async def test_a_new_post_is_in_every_list(client, author, post):
    user, _ = author
    listed = (await client.get("/api/posts")).json()
    assert ([p["id"] for p in listed["posts"]], listed["total"]) == ([post["id"]], 1)
    mine = (await client.get(f"/api/users/{user['id']}/posts")).json()
    assert ([p["id"] for p in mine["posts"]], mine["total"]) == ([post["id"]], 1)


async def test_a_new_post_is_on_the_pages(client, author, post):
    user, _ = author
    for path in ("/", f"/users/{user['id']}/posts", f"/posts/{post['id']}"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert "Seen through get_db" in response.text, path


async def test_a_post_is_read_updated_and_deleted(client, author, post, session):
    _, headers = author
    url = f"/api/posts/{post['id']}"
    assert (await client.get(url)).json()["title"] == "Seen through get_db"

    changed = await client.patch(url, json={"title": "Changed"}, headers=headers)
    assert changed.status_code == 200
    assert (await client.get(url)).json()["title"] == "Changed"

    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.get("/api/posts")).json()["total"] == 0
    assert await session.scalar(select(models.Post).where(models.Post.id == post["id"])) is None


async def test_the_test_transaction_leaves_nothing_behind(client):
    """Each test starts empty: the previous tests' users and posts were rolled back."""
    assert (await client.get("/api/posts")).json()["total"] == 0
    assert (await client.get("/api/users/1")).status_code == 404
