"""What one account can make the server do: render, hash, guess, lock out.

Markdown of any shape renders in time linear in its size, and a source nested past
content.MAX_NESTING is a 422; previews and edits are limited per account; every route that
checks a password is limited per account and per client before it queues a hash, and one
account holds at most PASSWORD_HASH_PER_ACCOUNT places in the hash pool; guesses from
elsewhere cannot lock the owner out.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import AsyncMock

import anyio
import pytest

import auth
import content
from config import settings
from ratelimit import DEVICE_COOKIE_PATH, device_cookie
from tests.conftest import (
    DEFAULT_PASSWORD,
    app_on_own_engine,
    create_test_post,
    create_test_user,
    create_user_and_login,
)
from tests.test_ratelimit import assert_rate_limited, client_at

pytestmark = pytest.mark.anyio

DEPTH = content.MAX_NESTING
# Shapes that cost a backtracking Markdown parser seconds: each is 100,000 characters, the most
# a post may hold. Rendered here for what they give; bench/markdown_cost.py measures their time.
PATHOLOGICAL = {
    "brackets": "[" * 100_000,
    "image openers": "![" * 50_000,
    "unclosed links": "[a](" * 25_000,
    "emphasis": "*a" * 50_000,
    "emphasis mix": "*_" * 50_000,
    "backticks": "`a" * 50_000,
    "angle brackets": "<a" * 50_000,
    "nested brackets": "[" * 50_000 + "]" * 50_000,
    "reference use": ("[a]: /u\n" + "[a] " * 30_000)[:100_000],
    "wide table": ("|" + "a|" * 5000 + "\n|" + "-|" * 5000 + "\n" + ("|" + "b|" * 5000 + "\n") * 8)[
        :100_000
    ],
    "list items": "- a\n" * 25_000,
}
TOO_DEEP = {
    "quotes": ">" * 100_000,
    "lists": "1. " * 33_333,
    "bullets": "".join("  " * i + "- x\n" for i in range(DEPTH)),
    "emphasis": "*" * 2 * DEPTH + "x" + "*" * 2 * DEPTH,  # strong in strong...
}


# --- Markdown -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_hostile_shapes_render_as_their_text(source):
    html = content.render_markdown(source)
    assert html.startswith(("<p>", "<ul>", "<table>"))
    assert "<script" not in html


def test_brackets_stay_brackets():
    assert content.render_markdown("[" * 1000) == "<p>" + "[" * 1000 + "</p>\n"


def test_nesting_up_to_the_limit_renders():
    quotes = content.render_markdown("> " * (DEPTH - 1) + "deep")  # and the paragraph
    assert quotes.count("<blockquote>") == DEPTH - 1
    assert "deep" in quotes


@pytest.mark.parametrize("source", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_nesting_past_the_limit_is_refused(source):
    with pytest.raises(content.NestedTooDeep, match=f"more than {DEPTH} levels deep"):
        content.render_post(source)


def too_deep_error(response) -> str:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "content"]
    return error["msg"]


async def test_a_post_nested_too_deep_is_a_422_and_nothing_is_stored(client):
    _, headers = await create_user_and_login(client, "alice")
    deep = {"title": "Deep", "content": ">" * 100_000}
    response = await client.post("/api/posts", json=deep, headers=headers)
    assert too_deep_error(response) == f"Value error, {content.NestedTooDeep()}"
    assert (await client.get("/api/posts")).json()["total"] == 0


async def test_previews_and_edits_nested_too_deep_are_422_and_change_nothing(client):
    _, headers = await create_user_and_login(client, "alice")
    post = await create_test_post(client, headers, content="Kept")
    deep = ">" * 100_000
    preview = await client.post("/api/posts/preview", json={"content": deep}, headers=headers)
    too_deep_error(preview)
    patched = await client.patch(
        f"/api/posts/{post['id']}", json={"content": deep}, headers=headers
    )
    too_deep_error(patched)
    replaced = await client.put(
        f"/api/posts/{post['id']}", json={"title": "T", "content": deep}, headers=headers
    )
    too_deep_error(replaced)
    assert (await client.get(f"/api/posts/{post['id']}")).json()["content"] == "Kept"


async def test_rendering_runs_off_the_event_loop(client, monkeypatch):
    threads = []
    render = content.render_post

    def recording(source):
        threads.append(threading.current_thread())
        return render(source)

    monkeypatch.setattr("routers.posts.render_post", recording)
    _, headers = await create_user_and_login(client, "alice")
    post = await create_test_post(client, headers)
    await client.post("/api/posts/preview", json={"content": "*hi*"}, headers=headers)
    await client.patch(f"/api/posts/{post['id']}", json={"content": "new"}, headers=headers)
    assert len(threads) == 3
    assert threading.main_thread() not in threads


# --- Limits on what renders ------------------------------------------------------------------


@pytest.fixture
def limits_on(monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)


async def test_previews_are_limited_per_account(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_preview", "2/minute")
    _, alice = await create_user_and_login(client, "alice")
    _, bob = await create_user_and_login(client, "bob")
    body = {"content": "# Draft"}
    for _ in range(2):
        assert (
            await client.post("/api/posts/preview", json=body, headers=alice)
        ).status_code == 200
    assert_rate_limited(await client.post("/api/posts/preview", json=body, headers=alice))
    assert (await client.post("/api/posts/preview", json=body, headers=bob)).status_code == 200


async def test_edits_are_limited_per_account_and_a_refused_one_changes_nothing(
    client, limits_on, monkeypatch
):
    monkeypatch.setattr(settings, "rate_limit_post_write", "2/hour")
    _, alice = await create_user_and_login(client, "alice")
    _, bob = await create_user_and_login(client, "bob")
    post = await create_test_post(client, alice)
    url = f"/api/posts/{post['id']}"
    assert (await client.patch(url, json={"content": "one"}, headers=alice)).status_code == 200
    replaced = await client.put(url, json={"title": "T", "content": "two"}, headers=alice)
    assert replaced.status_code == 200
    assert_rate_limited(await client.patch(url, json={"content": "three"}, headers=alice))
    assert (await client.get(url)).json()["content"] == "two"
    bobs = await create_test_post(client, bob)
    response = await client.patch(f"/api/posts/{bobs['id']}", json={"content": "b"}, headers=bob)
    assert response.status_code == 200


# --- Password checks -------------------------------------------------------------------------

WRONG_EMAIL_CHANGE = {"email": "new@example.com", "current_password": "not my password"}


async def test_email_changes_share_the_password_change_limit(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_password_change", "3/hour")
    alice, headers = await create_user_and_login(client, "alice")
    for _ in range(3):
        response = await client.patch(
            f"/api/users/{alice['id']}", json=WRONG_EMAIL_CHANGE, headers=headers
        )
        assert response.status_code == 400
    refused = await client.patch(
        f"/api/users/{alice['id']}", json=WRONG_EMAIL_CHANGE, headers=headers
    )
    assert_rate_limited(refused)
    change = {"current_password": "not my password", "new_password": "a new passphrase"}
    assert_rate_limited(await client.patch("/api/users/me/password", json=change, headers=headers))
    # A username change checks no password, so it is not a guess and not counted.
    renamed = await client.patch(
        f"/api/users/{alice['id']}", json={"username": "alice2"}, headers=headers
    )
    assert renamed.status_code == 200


async def test_password_checks_are_limited_per_client(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_password_check", "2/minute")
    users = [await create_user_and_login(client, name) for name in ("ann", "ben", "cat")]
    async with client_at("203.0.113.7") as host:
        for user, headers in users[:2]:
            response = await host.patch(
                f"/api/users/{user['id']}", json=WRONG_EMAIL_CHANGE, headers=headers
            )
            assert response.status_code == 400
        user, headers = users[2]
        change = {"current_password": "not my password", "new_password": "a new passphrase"}
        assert_rate_limited(
            await host.patch("/api/users/me/password", json=change, headers=headers)
        )
    async with client_at("203.0.113.8") as other:
        response = await other.patch("/api/users/me/password", json=change, headers=headers)
        assert response.status_code == 400


async def test_one_account_holds_at_most_its_share_of_the_hash_pool(engine, monkeypatch):
    """Logins for one account beyond PASSWORD_HASH_PER_ACCOUNT at once are refused at once,
    with limits off as on; another account's login goes on meanwhile."""
    async with app_on_own_engine("hashshare_") as (client, _engine, _sessions):
        await create_test_user(client, "hashshare_alice", "alice@example.com")
        await create_test_user(client, "hashshare_bob", "bob@example.com")
        await logins_beyond_the_share_are_refused(client, monkeypatch)


async def logins_beyond_the_share_are_refused(client, monkeypatch) -> None:
    share = settings.password_hash_per_account
    held = threading.Barrier(share + 1)
    release = threading.Event()
    verify = auth.password_hash.verify_and_update

    def held_verify(password, hashed):
        if password == "held guess":
            held.wait(timeout=10)
            release.wait(timeout=10)
        return verify(password, hashed)

    monkeypatch.setattr(auth.password_hash, "verify_and_update", held_verify)
    monkeypatch.setattr(auth, "_hash_pool", ThreadPoolExecutor(max_workers=share + 1))
    monkeypatch.setattr(auth, "HASH_WORKERS", share + 1)
    answers = []

    async def guess():
        form = {"username": "alice@example.com", "password": "held guess"}
        answers.append((await client.post("/api/users/token", data=form)).status_code)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(share):
                tg.start_soon(guess)
            await anyio.to_thread.run_sync(held.wait, 10)  # alice's share is in the pool
            form = {"username": "ALICE@example.com", "password": DEFAULT_PASSWORD}
            assert_rate_limited(await client.post("/api/users/token", data=form))
            form = {"username": "bob@example.com", "password": DEFAULT_PASSWORD}
            assert (await client.post("/api/users/token", data=form)).status_code == 200
            release.set()
    finally:
        release.set()
    assert answers == [401] * share
    form = {"username": "alice@example.com", "password": DEFAULT_PASSWORD}
    assert (await client.post("/api/users/token", data=form)).status_code == 200  # place freed


# --- Lockout ---------------------------------------------------------------------------------


def login(host, password="not the password"):
    return host.post(
        "/api/users/token", data={"username": "alice@example.com", "password": password}
    )


async def lock_out_alice(monkeypatch) -> None:
    monkeypatch.setattr(settings, "rate_limit_login_account", "2/hour")
    for n in range(2):
        async with client_at(f"198.51.100.{n + 1}") as attacker:
            assert (await login(attacker)).status_code == 401
    async with client_at("198.51.100.50") as attacker:
        assert_rate_limited(await login(attacker))


async def test_a_browser_that_logged_in_before_passes_the_account_lockout(
    client, limits_on, monkeypatch
):
    await create_user_and_login(client, "alice")
    async with client_at("203.0.113.5") as owner:
        assert (await login(owner, DEFAULT_PASSWORD)).status_code == 200
        name, value = device_cookie("alice@example.com")
        [cookie] = [c for c in owner.cookies.jar if c.name == name]
        assert (cookie.value, cookie.path) == (value, DEVICE_COOKIE_PATH)
        assert cookie.has_nonstandard_attr("HttpOnly")
        await lock_out_alice(monkeypatch)
        assert (await login(owner, DEFAULT_PASSWORD)).status_code == 200
    async with client_at("203.0.113.6") as new_browser:
        assert_rate_limited(await login(new_browser, DEFAULT_PASSWORD))
        new_browser.cookies.set(name, "0" * 64, domain="test.local", path=DEVICE_COOKIE_PATH)
        assert_rate_limited(await login(new_browser, DEFAULT_PASSWORD))  # a forged cookie


async def test_a_device_cookie_is_for_its_own_account_only(client, limits_on, monkeypatch):
    await create_user_and_login(client, "alice")
    await create_user_and_login(client, "mallory")
    await lock_out_alice(monkeypatch)
    async with client_at("203.0.113.9") as host:
        form = {"username": "mallory@example.com", "password": DEFAULT_PASSWORD}
        assert (await host.post("/api/users/token", data=form)).status_code == 200
        assert_rate_limited(await login(host, DEFAULT_PASSWORD))


async def test_a_password_reset_lifts_the_account_lockout(client, limits_on, monkeypatch):
    await create_user_and_login(client, "alice")
    await lock_out_alice(monkeypatch)
    mail = AsyncMock()
    monkeypatch.setattr("routers.users.send_password_reset_email", mail)
    async with client_at("203.0.113.10") as owner:
        await owner.post("/api/users/forgot-password", json={"email": "alice@example.com"})
        token = mail.call_args.kwargs["token"]
        body = {"token": token, "new_password": "a brand new passphrase"}
        assert (await owner.post("/api/users/reset-password", json=body)).status_code == 200
    async with client_at("203.0.113.11") as fresh:
        assert (await login(fresh, "a brand new passphrase")).status_code == 200
