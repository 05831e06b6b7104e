"""Roles (author, editor, admin), what each may do, suspension, and `manage.py set-role`
(SPEC.md, Part 3, "Roles and moderation")."""

import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, text, update

import models
from permissions import ROLE_ACTIONS, can
from schemas import Detail
from tests.conftest import DEFAULT_PASSWORD, create_test_post, create_user_and_login
from tests.servers import PROJECT_DIR, inherited_environment

pytestmark = pytest.mark.anyio


def actor(role: str, id_: int = 1, suspended: bool = False) -> SimpleNamespace:
    return SimpleNamespace(id=id_, role=role, suspended_at="then" if suspended else None)


def post_by(user_id: int) -> SimpleNamespace:
    return SimpleNamespace(user_id=user_id)


def comment_by(user_id: int, under_post_by: int) -> SimpleNamespace:
    return SimpleNamespace(user_id=user_id, post=post_by(under_post_by))


# --- The map ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "action", "target", "allowed"),
    [
        ("author", "edit_post", post_by(1), True),
        ("author", "edit_post", post_by(2), False),
        ("author", "delete_post", post_by(2), False),
        ("author", "delete_comment", comment_by(2, under_post_by=1), True),  # under their post
        ("author", "moderate_comment", comment_by(2, under_post_by=1), True),
        ("author", "moderate_comment", comment_by(1, under_post_by=2), False),
        ("author", "edit_comment", comment_by(2, under_post_by=1), False),
        ("author", "see_hidden", None, False),
        ("editor", "edit_post", post_by(2), True),
        ("editor", "delete_post", post_by(2), True),
        ("editor", "moderate_comment", comment_by(2, under_post_by=3), True),
        ("editor", "delete_comment", comment_by(2, under_post_by=3), True),
        ("editor", "edit_comment", comment_by(2, under_post_by=3), False),
        ("editor", "change_role", None, False),
        ("editor", "suspend", None, False),
        ("admin", "change_role", None, True),
        ("admin", "suspend", None, True),
        ("admin", "edit_post", post_by(2), True),
    ],
)
def test_what_each_role_may_do(role, action, target, allowed):
    assert can(actor(role), action, target) is allowed


def test_a_suspended_account_may_do_nothing_not_even_to_its_own():
    assert not can(actor("admin", suspended=True), "suspend")
    assert not can(actor("author", suspended=True), "edit_post", post_by(1))
    assert not can(None, "edit_post", post_by(1))


def test_every_role_is_in_the_map_and_each_role_adds_to_the_one_below():
    assert ROLE_ACTIONS["author"] <= ROLE_ACTIONS["editor"] <= ROLE_ACTIONS["admin"]


# --- Roles over HTTP -------------------------------------------------------------------------


async def make(db_session, user: dict, role: str) -> None:
    await db_session.execute(
        update(models.User).where(models.User.id == user["id"]).values(role=role)
    )


@pytest.fixture
async def admin(client, db_session) -> tuple[dict, dict]:
    user, headers = await create_user_and_login(client, "root")
    await make(db_session, user, "admin")
    return user, headers


async def test_an_admin_changes_roles_and_the_user_shows_it(client, admin, alice):
    (bob, _), (_, headers) = alice, admin
    response = await client.patch(
        f"/api/users/{bob['id']}/role", json={"role": "editor"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["role"] == "editor"
    assert (await client.get(f"/api/users/{bob['id']}")).json()["role"] == "editor"


async def test_only_admins_change_roles(client, db_session, alice, bob):
    (alice_user, alice_headers), (bob_user, _) = alice, bob
    for role in ("author", "editor"):
        await make(db_session, alice_user, role)
        response = await client.patch(
            f"/api/users/{bob_user['id']}/role", json={"role": "admin"}, headers=alice_headers
        )
        assert response.status_code == 403
        assert response.json() == {"detail": Detail.CHANGE_ROLE_FORBIDDEN}


async def test_a_role_change_names_a_role_and_a_user(client, admin):
    user, headers = admin
    response = await client.patch(
        f"/api/users/{user['id']}/role", json={"role": "root"}, headers=headers
    )
    assert response.status_code == 422
    response = await client.patch(
        "/api/users/999999/role", json={"role": "editor"}, headers=headers
    )
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.USER_NOT_FOUND}


async def test_the_last_admin_cannot_be_demoted(client, db_session, admin, alice):
    (root, headers), (other, _) = admin, alice
    response = await client.patch(
        f"/api/users/{root['id']}/role", json={"role": "author"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.LAST_ADMIN}
    await make(db_session, other, "admin")  # with a second admin, it can go
    response = await client.patch(
        f"/api/users/{root['id']}/role", json={"role": "author"}, headers=headers
    )
    assert response.status_code == 200


async def test_an_editor_edits_unpublishes_and_deletes_any_post(client, db_session, alice, bob):
    (_, alice_headers), (bob_user, bob_headers) = alice, bob
    post = await create_test_post(client, alice_headers)
    url = f"/api/posts/{post['id']}"
    response = await client.patch(url, json={"title": "Nope"}, headers=bob_headers)
    assert response.status_code == 403  # an author: not theirs
    await make(db_session, bob_user, "editor")
    assert (
        await client.patch(url, json={"title": "Edited"}, headers=bob_headers)
    ).status_code == 200
    unpublished = await client.patch(url, json={"published": False}, headers=bob_headers)
    assert unpublished.status_code == 200
    assert (await client.get(url)).status_code == 404  # a draft now, for the public
    assert (await client.get(url, headers=bob_headers)).status_code == 200  # editors see it
    assert (await client.delete(url, headers=bob_headers)).status_code == 204


# --- Suspension ------------------------------------------------------------------------------


async def suspend(client, headers, user_id: int):
    return await client.post(f"/api/users/{user_id}/suspension", headers=headers)


async def test_only_admins_suspend_and_not_themselves(client, admin, alice, bob):
    (root, root_headers), (alice_user, alice_headers), (bob_user, _) = admin, alice, bob
    response = await suspend(client, alice_headers, bob_user["id"])
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.SUSPEND_FORBIDDEN}
    response = await suspend(client, root_headers, root["id"])
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.SUSPEND_SELF}
    assert (await suspend(client, root_headers, 999999)).status_code == 404
    lifted = await client.delete(f"/api/users/{alice_user['id']}/suspension", headers=alice_headers)
    assert lifted.status_code == 403


async def test_a_suspended_account_is_logged_out_and_cannot_log_in(client, admin, alice):
    (_, root_headers), (user, headers) = admin, alice
    tokens = (
        await client.post(
            "/api/users/token", data={"username": user["email"], "password": DEFAULT_PASSWORD}
        )
    ).json()
    response = await suspend(client, root_headers, user["id"])
    assert response.status_code == 200
    assert response.json()["suspended"] is True
    assert (await client.get("/api/users/me", headers=headers)).status_code == 401
    refreshed = await client.post(
        "/api/users/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    form = {"username": user["email"], "password": DEFAULT_PASSWORD}
    for route in ("/api/users/token", "/api/users/session"):
        response = await client.post(route, data=form)
        assert response.status_code == 403
        assert response.json() == {"detail": Detail.ACCOUNT_SUSPENDED}
    wrong = await client.post("/api/users/token", data={**form, "password": "not it at all"})
    assert wrong.status_code == 401  # the password first: no oracle for who is suspended


async def visible_everywhere(client, user: dict, post: dict) -> dict[str, bool]:
    """Where the public finds the user and their post."""
    home = (await client.get("/api/posts")).json()
    search = (await client.get("/api/posts", params={"q": "unmistakable"})).json()
    tagged = (await client.get("/api/posts", params={"tag": "kept"})).json()
    tags = (await client.get("/api/tags")).json()
    feed = (await client.get("/feed.xml")).text
    sitemap = (await client.get("/sitemap.xml")).text
    return {
        "profile": (await client.get(f"/api/users/{user['id']}")).status_code == 200,
        "posts": (await client.get(f"/api/users/{user['id']}/posts")).status_code == 200,
        "post": (await client.get(f"/api/posts/{post['id']}")).status_code == 200,
        "page": (await client.get(f"/posts/{post['id']}")).status_code == 200,
        "list": [p["id"] for p in home["posts"]] == [post["id"]] and home["total"] == 1,
        "search": search["total"] == 1,
        "tag": tagged["total"] == 1,
        "tags": any(t["name"] == "kept" for t in tags),
        "feed": f"/posts/{post['id']}" in feed,
        "sitemap": f"/posts/{post['id']}" in sitemap,
    }


async def test_a_suspended_users_posts_vanish_for_the_public_until_it_is_lifted(
    client, admin, alice
):
    (_, root_headers), (user, headers) = admin, alice
    body = {"title": "An unmistakable title", "content": "Words.", "tags": ["kept"]}
    post = (await client.post("/api/posts", json=body, headers=headers)).json()
    assert set((await visible_everywhere(client, user, post)).values()) == {True}
    assert (await suspend(client, root_headers, user["id"])).status_code == 200
    assert set((await visible_everywhere(client, user, post)).values()) == {False}
    # Editors and admins still reach the post itself.
    assert (await client.get(f"/api/posts/{post['id']}", headers=root_headers)).status_code == 200
    lifted = await client.delete(f"/api/users/{user['id']}/suspension", headers=root_headers)
    assert lifted.status_code == 200
    assert lifted.json()["suspended"] is False
    assert set((await visible_everywhere(client, user, post)).values()) == {True}


async def test_a_suspended_users_comments_leave_the_comment_counts(client, admin, alice, bob):
    (_, root_headers), (_, alice_headers), (bob_user, bob_headers) = admin, alice, bob
    post = await create_test_post(client, alice_headers)
    url = f"/api/posts/{post['id']}/comments"
    assert (await client.post(url, json={"content": "Hi"}, headers=bob_headers)).status_code == 201
    count = lambda page: page["posts"][0]["comment_count"]  # noqa: E731
    assert count((await client.get("/api/posts")).json()) == 1
    await suspend(client, root_headers, bob_user["id"])
    assert count((await client.get("/api/posts")).json()) == 0
    assert (await client.get(f"/api/posts/{post['id']}")).json()["comment_count"] == 0


def titles(listed) -> list[str]:
    return [post["title"] for post in listed.json()["posts"]]


@pytest.mark.parametrize("who", ["anonymous", "author", "editor", "admin"])
async def test_a_suspended_user_is_found_by_editors_and_admins_only(
    client, db_session, admin, alice, bob, who
):
    """The user's page, profile and posts, until the suspension is lifted."""
    (_, root_headers), (user, headers), (viewer, viewer_headers) = admin, alice, bob
    await create_test_post(client, headers, title="Written before the suspension")
    if who == "editor":
        await make(db_session, viewer, "editor")
    as_viewer = {"anonymous": {}, "author": viewer_headers, "editor": viewer_headers}
    as_viewer["admin"] = root_headers
    profile = f"/api/users/{user['id']}"
    page, posts = f"/users/{user['id']}/posts", f"{profile}/posts"
    await suspend(client, root_headers, user["id"])
    answers = {url: await client.get(url, headers=as_viewer[who]) for url in (page, profile, posts)}
    if who in ("editor", "admin"):
        for answer in answers.values():
            assert answer.status_code == 200
            assert answer.headers["cache-control"] == "private, no-store"
            assert "etag" not in answer.headers
        assert "Written before the suspension" in answers[page].text
        assert answers[profile].json()["suspended"] is True
        assert titles(answers[posts]) == ["Written before the suspension"]
        assert answers[posts].json()["total"] == 1
    else:
        for answer in answers.values():
            assert answer.status_code == 404
            assert Detail.USER_NOT_FOUND in answer.text
    await client.delete(f"/api/users/{user['id']}/suspension", headers=root_headers)
    answers = {url: await client.get(url, headers=as_viewer[who]) for url in (page, profile, posts)}
    for answer in answers.values():
        assert answer.status_code == 200
        assert "private" not in answer.headers.get("cache-control", "")
    assert "Written before the suspension" in answers[page].text
    assert answers[profile].json()["suspended"] is False
    assert titles(answers[posts]) == ["Written before the suspension"]
    assert "etag" in answers[profile].headers and "etag" in answers[posts].headers


async def test_an_admin_reaches_a_suspended_users_page_by_the_session_cookie(client, admin, alice):
    """As a browser does: the pages are logged in by the cookie, never by a token; so is the
    page's "Load more", which asks the API for the posts after the page's last."""
    (root, root_headers), (user, headers) = admin, alice
    for n in range(1, 12):  # one more than a page
        await create_test_post(client, headers, title=f"Post {n}")
    await suspend(client, root_headers, user["id"])
    form = {"username": root["email"], "password": DEFAULT_PASSWORD}
    assert (await client.post("/api/users/session", data=form)).status_code == 200
    response = await client.get(f"/users/{user['id']}/posts")
    assert response.status_code == 200
    assert 'id="admin-controls"' in response.text
    more = re.search(
        r'data-api="([^"]+)" data-limit="(\d+)" data-next-cursor="([^"]+)"', response.text
    )
    assert more is not None
    api, params = more[1], {"cursor": more[3], "limit": more[2]}
    loaded = await client.get(api, params=params)
    assert loaded.status_code == 200
    assert titles(loaded) == ["Post 1"]
    assert loaded.json()["next_cursor"] is None
    assert loaded.headers["cache-control"] == "private, no-store"
    client.cookies.clear()  # logged out: the same request finds nobody
    assert (await client.get(api, params=params)).status_code == 404


# --- manage.py -------------------------------------------------------------------------------


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """The README's command, as a person types it."""
    uv = shutil.which("uv")
    assert uv, "uv runs the README's commands"
    return subprocess.run(
        [uv, "run", "--no-sync", "python", "manage.py", *args],
        cwd=PROJECT_DIR,
        env=inherited_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
async def committed_user(engine):
    """A user another process can see (the suite's own are in a transaction rolled back)."""
    async with engine.begin() as conn:
        user_id = await conn.scalar(
            text(
                "INSERT INTO users (username, username_skeleton, email, password_hash)"
                " VALUES ('manage_me', 'manage_me', 'Manage.Me@example.com', 'x') RETURNING id"
            )
        )
    yield user_id
    async with engine.begin() as conn:
        await conn.execute(delete(models.User).where(models.User.id == user_id))


async def test_set_role_makes_the_first_admin_and_says_so(engine, committed_user):
    done = manage("set-role", "manage.me@EXAMPLE.com", "admin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Manage.Me@example.com (manage_me) is now admin (was author).\n"
    async with engine.connect() as conn:
        role = await conn.scalar(
            text("SELECT role FROM users WHERE id = :id"), {"id": committed_user}
        )
    assert role == "admin"
    last = manage("set-role", "manage.me@example.com", "author")
    assert last.returncode == 1
    assert "last admin" in last.stderr
    unknown = manage("set-role", "nobody@example.com", "editor")
    assert unknown.returncode == 1
    assert unknown.stderr == "No account has the email 'nobody@example.com'.\n"
    bad_role = manage("set-role", "manage.me@example.com", "root")
    assert bad_role.returncode == 2
    assert "invalid choice: 'root'" in bad_role.stderr
