"""Two app servers at once on one database built by the migrations, over real HTTP: server A
with EMAIL_VERIFICATION_REQUIRED=true and COMMENT_MODERATION=first, server B with the defaults
(SPEC.md, Part 3, "Email verification" and "Roles and moderation").

Each server applies its own settings to the same rows, and what one of them decides (a
verification, an approval, a suspension and its end) holds on the other at once. Every step is
bounded: the servers' start (tests/servers.py), each request (httpx's timeouts), the wait for a
mail's line in a log, the shell command. The database is dropped at the end, with every row the
servers committed.
"""

import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from schemas import Detail, Message
from tests.conftest import DEFAULT_PASSWORD, auth_header, create_test_user, login_user
from tests.servers import (
    PROJECT_DIR,
    Server,
    inherited_environment,
    migrated_database,
    uvicorn_app,
    wait_until,
)

pytestmark = pytest.mark.anyio

STRICT = {"EMAIL_VERIFICATION_REQUIRED": "true", "COMMENT_MODERATION": "first"}
POST = {"title": "Out in the open", "content": "Words."}


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with migrated_database("two_servers") as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def servers(database_url, tmp_path_factory) -> AsyncIterator[tuple[Server, Server]]:
    """A (strict) and B (the defaults), both on `database_url`; stopped at the end."""
    database = {"DATABASE_URL": database_url}
    async with (
        uvicorn_app({**database, **STRICT}, tmp_path_factory.mktemp("a")) as a,
        uvicorn_app(database, tmp_path_factory.mktemp("b")) as b,
    ):
        yield a, b


class Site:
    """One server: an HTTP client on it, and its log from the test's start on."""

    def __init__(self, server: Server, client: httpx.AsyncClient):
        self.server, self.client = server, client

    async def register(self, name: str) -> tuple[dict, dict, str]:
        """A new account made here: the user, headers that log in as them, and the token of
        the verification link that this server wrote to its log (no MAIL_SERVER, development)."""
        user = await create_test_user(self.client, name)
        link = re.compile(rf"To: {re.escape(user['email'])} .*/verify-email\?token=([\w-]+)")
        await wait_until(lambda: link.search(self.server.log_text()) is not None)
        found = link.search(self.server.log_text())
        assert found is not None
        return user, auth_header(await login_user(self.client, user["email"])), found.group(1)

    async def register_verified(self, name: str) -> tuple[dict, dict]:
        user, headers, token = await self.register(name)
        assert (await self.verify(token)).status_code == 200
        return user, headers

    async def verify(self, token: str) -> httpx.Response:
        return await self.client.post("/api/users/verify-email", json={"token": token})

    async def publish(self, headers: dict, **fields) -> httpx.Response:
        return await self.client.post("/api/posts", json={**POST, **fields}, headers=headers)

    async def comment(self, post_id: int, headers: dict, content: str) -> httpx.Response:
        return await self.client.post(
            f"/api/posts/{post_id}/comments", json={"content": content}, headers=headers
        )

    async def comments(self, post_id: int, headers: dict | None = None) -> tuple[list[str], int]:
        """The comments of a post this viewer sees here, and their total."""
        response = await self.client.get(f"/api/posts/{post_id}/comments", headers=headers or {})
        assert response.status_code == 200, response.text
        page = response.json()
        return [each["content"] for each in page["comments"]], page["total"]

    async def public_posts(self) -> tuple[set[int], int]:
        """The ids of the posts the public sees here, and their total."""
        response = await self.client.get("/api/posts", params={"limit": 100})
        assert response.status_code == 200, response.text
        page = response.json()
        return {post["id"] for post in page["posts"]}, page["total"]

    async def log_in(self, email: str) -> httpx.Response:
        form = {"username": email, "password": DEFAULT_PASSWORD}
        return await self.client.post("/api/users/token", data=form)


@pytest.fixture
async def sites(servers) -> AsyncIterator[tuple[Site, Site]]:
    async with (
        httpx.AsyncClient(base_url=servers[0].url) as a,
        httpx.AsyncClient(base_url=servers[1].url) as b,
    ):
        yield Site(servers[0].from_now(), a), Site(servers[1].from_now(), b)


def refused(response: httpx.Response, status: int, detail: str) -> bool:
    return (response.status_code, response.json()) == (status, {"detail": detail})


# --- Email verification ----------------------------------------------------------------------


async def test_a_holds_an_unverified_user_to_drafts_b_does_not_and_the_link_lifts_it(sites):
    a, b = sites
    _, headers, token = await a.register("nova")
    draft = await a.publish(headers, title="Not yet", published=False)
    assert draft.status_code == 201, draft.text
    assert draft.json()["published"] is False
    # B does not require verification: the same user publishes and comments there at once.
    post = await b.publish(headers)
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    said = await b.comment(post_id, headers, "Said on B")
    assert (said.status_code, said.json()["status"]) == (201, "approved")
    # A does: publishing (at once, or a draft later) and commenting wait for the link.
    for response in (
        await a.publish(headers),
        await a.client.patch(
            f"/api/posts/{draft.json()['id']}", json={"published": True}, headers=headers
        ),
        await a.comment(post_id, headers, "Said on A"),
    ):
        assert refused(response, 403, Detail.VERIFY_EMAIL_FIRST), response.text
    assert (await a.comments(post_id)) == (["Said on B"], 1)

    verified = await a.verify(token)
    assert (verified.status_code, verified.json()) == (200, {"message": Message.EMAIL_VERIFIED})
    me = await b.client.get("/api/users/me", headers=headers)
    assert me.json()["email_verified"] is True
    published = await a.client.patch(
        f"/api/posts/{draft.json()['id']}", json={"published": True}, headers=headers
    )
    assert (published.status_code, published.json()["published"]) == (200, True)
    assert (await a.publish(headers)).status_code == 201
    # Approved at once even under COMMENT_MODERATION=first: B approved this user's comment.
    said = await a.comment(post_id, headers, "Said on A")
    assert (said.status_code, said.json()["status"]) == (201, "approved")
    for site in (a, b):
        assert (await site.comments(post_id)) == (["Said on B", "Said on A"], 2)


# --- Comment moderation ----------------------------------------------------------------------


async def test_on_a_a_first_comment_waits_for_the_posts_author_and_shows_to_whom_it_may(sites):
    a, b = sites
    _, writer = await a.register_verified("wren")
    _, reader = await a.register_verified("rhea")
    _, stranger, _ = await b.register("sten")
    post = await a.publish(writer)
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    held = await a.comment(post_id, reader, "First words")
    assert (held.status_code, held.json()["status"]) == (201, "pending")
    # Whoever may see it (its author, the post's author) does, on either server; the public
    # and other users do not, not even in the totals.
    for site in (a, b):
        for viewer in (reader, writer):
            assert (await site.comments(post_id, viewer)) == (["First words"], 1)
        for viewer in ({}, stranger):
            assert (await site.comments(post_id, viewer)) == ([], 0)
        public = (await site.client.get(f"/api/posts/{post_id}")).json()
        assert public["comment_count"] == 0
    waiting = await b.client.get("/api/comments", params={"status": "pending"}, headers=writer)
    assert [each["content"] for each in waiting.json()["comments"]] == ["First words"]

    approved = await a.client.post(f"/api/comments/{held.json()['id']}/approve", headers=writer)
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    for site in (a, b):
        assert (await site.comments(post_id)) == (["First words"], 1)
    # One approved comment and the reader is trusted: the next one shows at once.
    trusted = await a.comment(post_id, reader, "Second words")
    assert (trusted.status_code, trusted.json()["status"]) == (201, "approved")
    # Someone else is not trusted for the reader's sake.
    newcomer = await a.comment(post_id, writer, "Thanks")
    assert newcomer.json()["status"] == "pending"
    assert (await b.comments(post_id)) == (["First words", "Second words"], 2)


# --- Roles and suspension --------------------------------------------------------------------


def set_role(database_url: str, email: str, role: str) -> subprocess.CompletedProcess[str]:
    """The README's command, as an operator types it, against the servers' database."""
    uv = shutil.which("uv")
    assert uv, "uv runs the README's commands"
    return subprocess.run(
        [uv, "run", "python", "manage.py", "set-role", email, role],
        cwd=PROJECT_DIR,
        env={**inherited_environment(), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_suspension_made_on_one_server_holds_on_the_other_until_it_is_lifted(
    sites, database_url
):
    a, b = sites
    boss, _, _ = await b.register("boss")
    done = set_role(database_url, boss["email"], "admin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{boss['email']} (boss) is now admin (was author).\n"
    admin = auth_header(await login_user(a.client, boss["email"]))
    victim, victim_headers, _ = await b.register("vic")
    post = await b.publish(victim_headers, title="Soon hidden")
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    ids, total = await a.public_posts()
    assert post_id in ids and (await b.public_posts()) == (ids, total)

    suspended = await a.client.post(f"/api/users/{victim['id']}/suspension", headers=admin)
    assert (suspended.status_code, suspended.json()["suspended"]) == (200, True)
    for site in (a, b):
        assert refused(await site.log_in(victim["email"]), 403, Detail.ACCOUNT_SUSPENDED)
        me = await site.client.get("/api/users/me", headers=victim_headers)
        assert me.status_code == 401
        assert (await site.public_posts()) == (ids - {post_id}, total - 1)
        for path in (f"/api/posts/{post_id}", f"/api/users/{victim['id']}"):
            assert (await site.client.get(path)).status_code == 404, path
        page = f"/users/{victim['id']}/posts"
        assert (await site.client.get(page)).status_code == 404
        # Admins (and editors) still reach the post, and the user's page.
        seen = await site.client.get(f"/api/posts/{post_id}", headers=admin)
        assert (seen.status_code, seen.json()["author"]["suspended"]) == (200, True)
        assert "Soon hidden" in (await site.client.get(page, headers=admin)).text

    lifted = await b.client.delete(f"/api/users/{victim['id']}/suspension", headers=admin)
    assert (lifted.status_code, lifted.json()["suspended"]) == (200, False)
    for site in (a, b):
        assert (await site.public_posts()) == (ids, total)
        assert (await site.client.get(f"/api/posts/{post_id}")).status_code == 200
        assert (await site.client.get(f"/users/{victim['id']}/posts")).status_code == 200
        assert (await site.log_in(victim["email"])).status_code == 200
