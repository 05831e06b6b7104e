"""Users: registration, profiles, updates, deletion and a user's posts."""

import pytest
from sqlalchemy import func, select

import models
from schemas import Detail
from tests.conftest import (
    DEFAULT_PASSWORD,
    auth_header,
    create_test_post,
    create_test_user,
    create_user_and_login,
    login_user,
)

pytestmark = pytest.mark.anyio

DEFAULT_PICTURE = "/static/profile_pics/default.jpg"


# --- Registration ----------------------------------------------------------------------------


async def test_register_returns_private_user(client):
    response = await client.post(
        "/api/users",
        json={"username": "alice", "email": "alice@example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "username": "alice",
        "email": "alice@example.com",
        "image_file": None,
        "image_path": DEFAULT_PICTURE,
        "role": "author",
        "suspended": False,
        "email_verified": False,
        "pending_email": None,
        "bio": "",
        "created_at": body["created_at"],
    }


async def test_register_stores_an_argon2_hash_not_the_password(client, db_session):
    user = await create_test_user(client)
    row = await db_session.get(models.User, user["id"])
    assert row.password_hash.startswith("$argon2id$")
    assert DEFAULT_PASSWORD not in row.password_hash


async def test_register_normalises_email_to_lowercase(client):
    user = await create_test_user(client, "alice", email="Alice@Example.COM")
    assert user["email"] == "alice@example.com"


async def test_register_strips_surrounding_spaces_from_username(client):
    user = await create_test_user(client, "  alice  ", email="alice@example.com")
    assert user["username"] == "alice"


async def test_register_duplicate_username_is_rejected(client):
    await create_test_user(client, "alice")
    response = await client.post(
        "/api/users",
        json={"username": "alice", "email": "other@example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.USERNAME_EXISTS}


async def test_register_duplicate_username_ignores_case(client):
    await create_test_user(client, "alice")
    response = await client.post(
        "/api/users",
        json={"username": "ALICE", "email": "other@example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.USERNAME_EXISTS}


async def test_register_duplicate_email_ignores_case(client, db_session):
    await create_test_user(client, "alice", email="alice@example.com")
    response = await client.post(
        "/api/users",
        json={"username": "other", "email": "ALICE@example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_EXISTS}
    assert await db_session.scalar(select(func.count()).select_from(models.User)) == 1


async def test_register_after_a_rejected_duplicate_still_works(client):
    await create_test_user(client, "alice")
    rejected = await client.post(
        "/api/users",
        json={"username": "alice", "email": "x@example.com", "password": DEFAULT_PASSWORD},
    )
    assert rejected.status_code == 400
    await create_test_user(client, "bob")


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "", "email": "a@example.com", "password": DEFAULT_PASSWORD},
        {"username": "u" * 51, "email": "a@example.com", "password": DEFAULT_PASSWORD},
        {"username": "alice", "email": "not-an-email", "password": DEFAULT_PASSWORD},
        {"username": "alice", "email": "a@example.com", "password": "short"},
        {"username": "alice", "email": "a@example.com"},
        {"email": "a@example.com", "password": DEFAULT_PASSWORD},
        {"username": "alice", "password": DEFAULT_PASSWORD},
    ],
)
async def test_register_with_invalid_fields_is_422(client, payload):
    response = await client.post("/api/users", json=payload)
    assert response.status_code == 422


async def test_register_accepts_50_character_username_and_8_character_password(client):
    user = await create_test_user(client, "u" * 50, email="long@example.com", password="zq8-vw3x")
    assert user["username"] == "u" * 50


# --- Reading users ---------------------------------------------------------------------------


async def test_get_user_is_public_without_email(client):
    user = await create_test_user(client)
    response = await client.get(f"/api/users/{user['id']}")
    assert response.status_code == 200
    assert response.json() == {
        "id": user["id"],
        "username": "alice",
        "image_file": None,
        "image_path": DEFAULT_PICTURE,
        "role": "author",
        "suspended": False,
        "bio": "",
        "created_at": user["created_at"],
    }


async def test_get_missing_user_is_404(client):
    response = await client.get("/api/users/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.USER_NOT_FOUND}


async def test_me_returns_the_logged_in_user_with_email(client, alice):
    user, headers = alice
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 200
    assert response.json() == user


async def test_me_without_token_is_unauthorized(client):
    response = await client.get("/api/users/me")
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}


# --- A user's posts --------------------------------------------------------------------------


async def test_user_posts_lists_only_that_users_posts_newest_first(client, alice, bob):
    alice_user, alice_headers = alice
    _, bob_headers = bob
    await create_test_post(client, alice_headers, title="a1")
    await create_test_post(client, bob_headers, title="b1")
    await create_test_post(client, alice_headers, title="a2")
    response = await client.get(f"/api/users/{alice_user['id']}/posts")
    assert response.status_code == 200
    body = response.json()
    assert [p["title"] for p in body["posts"]] == ["a2", "a1"]
    assert {p["author"]["id"] for p in body["posts"]} == {alice_user["id"]}
    assert (body["total"], body["has_more"]) == (2, False)


async def test_user_posts_paginates(client, alice):
    user, headers = alice
    for i in range(5):
        await create_test_post(client, headers, title=f"p{i}")
    body = (
        await client.get(f"/api/users/{user['id']}/posts", params={"skip": 1, "limit": 2})
    ).json()
    assert [p["title"] for p in body["posts"]] == ["p3", "p2"]
    assert (body["total"], body["skip"], body["limit"], body["has_more"]) == (5, 1, 2, True)


async def test_user_posts_of_missing_user_is_404(client):
    response = await client.get("/api/users/999999/posts")
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.USER_NOT_FOUND}


async def test_user_posts_with_invalid_limit_is_422(client, alice):
    user, _ = alice
    response = await client.get(f"/api/users/{user['id']}/posts", params={"limit": 101})
    assert response.status_code == 422


# --- Updating a user -------------------------------------------------------------------------


async def test_update_own_username_and_email(client, alice):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}",
        json={
            "username": "alicia",
            "email": "Alicia@Example.com",
            "current_password": DEFAULT_PASSWORD,
        },
        headers=headers,
    )
    assert response.status_code == 200
    assert (response.json()["username"], response.json()["email"]) == (
        "alicia",
        "alicia@example.com",
    )
    assert (await client.get("/api/users/me", headers=headers)).json()["username"] == "alicia"


async def test_update_only_username_keeps_email(client, alice):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}", json={"username": "alicia"}, headers=headers
    )
    assert response.json()["email"] == user["email"]


async def test_update_to_own_username_in_other_case_is_allowed(client, alice):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}", json={"username": "Alice"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["username"] == "Alice"


async def test_update_to_taken_username_is_rejected(client, alice, bob):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}", json={"username": "BOB"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.USERNAME_EXISTS}
    assert (await client.get("/api/users/me", headers=headers)).json()["username"] == "alice"


async def test_update_to_taken_email_is_rejected(client, alice, bob):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}",
        json={"email": "bob@example.com", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.EMAIL_EXISTS}


async def test_update_other_user_is_forbidden(client, alice, bob):
    _, alice_headers = alice
    bob_user, _ = bob
    response = await client.patch(
        f"/api/users/{bob_user['id']}", json={"username": "hacked"}, headers=alice_headers
    )
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.UPDATE_USER_FORBIDDEN}
    assert (await client.get(f"/api/users/{bob_user['id']}")).json()["username"] == "bob"


async def test_update_missing_user_is_404(client, alice):
    _, headers = alice
    response = await client.patch("/api/users/999999", json={"username": "x"}, headers=headers)
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.USER_NOT_FOUND}


@pytest.mark.parametrize(
    "payload", [{"username": ""}, {"username": None}, {"email": "nope"}, {"email": None}]
)
async def test_update_user_with_invalid_fields_is_422(client, alice, payload):
    user, headers = alice
    response = await client.patch(f"/api/users/{user['id']}", json=payload, headers=headers)
    assert response.status_code == 422


async def test_update_user_without_token_is_unauthorized(client, alice):
    user, _ = alice
    response = await client.patch(f"/api/users/{user['id']}", json={"username": "x"})
    assert response.status_code == 401


async def test_login_uses_the_updated_email(client, alice):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}",
        json={"email": "new@example.com", "current_password": DEFAULT_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200
    assert await login_user(client, "new@example.com")


# --- Deleting a user -------------------------------------------------------------------------


async def test_delete_user_removes_user_posts_and_reset_tokens(client, alice, db_session):
    user, headers = alice
    await create_test_post(client, headers)
    db_session.add(
        models.PasswordResetToken(user_id=user["id"], token_hash="0" * 64, expires_at=func.now())
    )
    await db_session.flush()

    response = await client.delete(f"/api/users/{user['id']}", headers=headers)

    assert response.status_code == 204
    assert (await client.get(f"/api/users/{user['id']}")).status_code == 404
    for model in (models.Post, models.PasswordResetToken):
        count = select(func.count()).select_from(model).where(model.user_id == user["id"])
        assert await db_session.scalar(count) == 0


async def test_delete_user_keeps_other_users_posts(client, alice, bob):
    alice_user, alice_headers = alice
    _, bob_headers = bob
    bob_post = await create_test_post(client, bob_headers)
    await client.delete(f"/api/users/{alice_user['id']}", headers=alice_headers)
    assert (await client.get(f"/api/posts/{bob_post['id']}")).status_code == 200


async def test_deleted_users_token_is_invalid(client, alice):
    user, headers = alice
    await client.delete(f"/api/users/{user['id']}", headers=headers)
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}


async def test_delete_other_user_is_forbidden(client, alice, bob):
    _, alice_headers = alice
    bob_user, _ = bob
    response = await client.delete(f"/api/users/{bob_user['id']}", headers=alice_headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.DELETE_USER_FORBIDDEN}
    assert (await client.get(f"/api/users/{bob_user['id']}")).status_code == 200


async def test_delete_missing_user_is_404(client, alice):
    _, headers = alice
    response = await client.delete("/api/users/999999", headers=headers)
    assert response.status_code == 404


async def test_username_is_free_again_after_delete(client):
    user, headers = await create_user_and_login(client, "alice")
    await client.delete(f"/api/users/{user['id']}", headers=headers)
    again = await create_test_user(client, "alice")
    assert again["id"] != user["id"]
    assert auth_header(await login_user(client, again["email"]))
