"""Comment moderation: COMMENT_MODERATION, approving and hiding, the queue, reports, and who
sees a pending or hidden comment, or one by a suspended user (in the list, its total and the
post's page, and in what caches may keep)."""

import re
from datetime import UTC, datetime

import html5lib
import pytest
from sqlalchemy import func, select, update

import caching
import models
from caching import Remembered
from config import settings
from tests.conftest import (
    app_on_own_engine,
    create_test_post,
    create_user_and_login,
    one_snapshot,
)

pytestmark = pytest.mark.anyio

VERIFY_FIRST = "Verify your email address first"
FORBIDDEN = "Not authorized to moderate this comment"
NOT_FOUND = "Comment not found"


# --- Helpers and people ----------------------------------------------------------------------


async def comment(client, post_id: int, headers: dict, content: str = "Nice post") -> dict:
    response = await client.post(
        f"/api/posts/{post_id}/comments", json={"content": content}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def listed(client, post_id: int, headers: dict | None = None, query: str = "") -> dict:
    response = await client.get(f"/api/posts/{post_id}/comments{query}", headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


def contents(page: dict) -> list[str]:
    return [each["content"] for each in page["comments"]]


async def set_user(db_session, user: dict, **values) -> None:
    await db_session.execute(
        update(models.User).where(models.User.id == user["id"]).values(**values)
    )


async def decide(client, comment_id: int, decision: str, headers: dict):
    return await client.post(f"/api/comments/{comment_id}/{decision}", headers=headers)


async def report(client, comment_id: int, headers: dict):
    return await client.post(f"/api/comments/{comment_id}/report", headers=headers)


async def queue(client, headers: dict, query: str = "?status=pending") -> dict:
    response = await client.get(f"/api/comments{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    return response.json()


@pytest.fixture
async def post(client, alice) -> dict:
    return await create_test_post(client, alice[1], title="Alice's post")


@pytest.fixture
async def eve(client) -> tuple[dict, dict]:
    return await create_user_and_login(client, "eve")


@pytest.fixture
async def editor(client, db_session) -> tuple[dict, dict]:
    user, headers = await create_user_and_login(client, "edna")
    await set_user(db_session, user, role="editor")
    return user, headers


@pytest.fixture
async def admin(client, db_session) -> tuple[dict, dict]:
    user, headers = await create_user_and_login(client, "root")
    await set_user(db_session, user, role="admin")
    return user, headers


@pytest.fixture
def moderation(monkeypatch):
    def set_mode(mode: str) -> None:
        monkeypatch.setattr(settings, "comment_moderation", mode)

    return set_mode


@pytest.fixture
async def pending(client, post, bob, moderation) -> dict:
    """Bob's comment on Alice's post, held for moderation (COMMENT_MODERATION=all, then off
    again: what the test writes next is approved)."""
    moderation("all")
    created = await comment(client, post["id"], bob[1], "Held back")
    assert created["status"] == "pending"
    moderation("off")
    return created


@pytest.fixture
def people(alice, bob, eve, editor, admin) -> dict[str, dict]:
    """Everyone's headers: the post's author, the comment's author, a stranger, moderators."""
    return {
        "anonymous": {},
        "post author": alice[1],
        "comment author": bob[1],
        "stranger": eve[1],
        "editor": editor[1],
        "admin": admin[1],
    }


SEE_HELD_BACK = ["comment author", "post author", "editor", "admin"]
NOT_SEE_HELD_BACK = ["anonymous", "stranger"]


# --- COMMENT_MODERATION ----------------------------------------------------------------------


async def test_by_default_comments_are_approved_at_once_as_before(client, post, bob):
    assert settings.comment_moderation == "off"
    created = await comment(client, post["id"], bob[1], "Straight in")
    assert created["status"] == "approved"
    page = await listed(client, post["id"])
    threaded = {**created, "replies": []}
    assert page == {"comments": [threaded], "total": 1, "skip": 0, "limit": 50, "has_more": False}


async def test_moderation_all_holds_every_comment(client, post, alice, bob, moderation):
    moderation("all")
    first = await comment(client, post["id"], bob[1], "One")
    assert (await decide(client, first["id"], "approve", alice[1])).status_code == 200
    # An approved comment before does not let the next one through.
    assert (await comment(client, post["id"], bob[1], "Two"))["status"] == "pending"
    assert (await comment(client, post["id"], alice[1], "Mine"))["status"] == "pending"
    page = await listed(client, post["id"])
    assert (contents(page), page["total"]) == (["One"], 1)


async def test_moderation_first_holds_a_users_comments_until_one_is_approved(
    client, post, alice, bob, eve, moderation
):
    moderation("first")
    first = await comment(client, post["id"], bob[1], "First")
    assert first["status"] == "pending"
    assert (await comment(client, post["id"], bob[1], "Still waiting"))["status"] == "pending"
    assert (await decide(client, first["id"], "approve", alice[1])).status_code == 200
    assert (await comment(client, post["id"], bob[1], "Trusted now"))["status"] == "approved"
    # Another user is not trusted for Bob's sake.
    assert (await comment(client, post["id"], eve[1], "New here"))["status"] == "pending"
    assert contents(await listed(client, post["id"])) == ["First", "Trusted now"]


async def test_moderation_first_does_not_trust_a_user_whose_comment_was_hidden(
    client, post, alice, bob, moderation
):
    moderation("first")
    first = await comment(client, post["id"], bob[1], "Spam")
    assert (await decide(client, first["id"], "hide", alice[1])).json()["status"] == "hidden"
    assert (await comment(client, post["id"], bob[1], "More spam"))["status"] == "pending"


async def test_an_unverified_user_cannot_comment_when_verification_is_required(
    client, db_session, post, bob, monkeypatch
):
    monkeypatch.setattr(settings, "email_verification_required", True)
    response = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "Hi"}, headers=bob[1]
    )
    assert response.status_code == 403
    assert response.json()["detail"] == VERIFY_FIRST
    stored = await db_session.scalar(select(func.count()).select_from(models.Comment))
    assert stored == 0
    await set_user(db_session, bob[0], email_verified=True)
    assert (await comment(client, post["id"], bob[1], "Verified"))["status"] == "approved"


# --- Who sees a pending or hidden comment ----------------------------------------------------


@pytest.mark.parametrize("who", SEE_HELD_BACK + NOT_SEE_HELD_BACK)
async def test_a_pending_comment_is_seen_by_its_author_the_posts_author_and_moderators(
    client, post, people, pending, who
):
    await comment(client, post["id"], people["post author"], "Public")
    page = await listed(client, post["id"], people[who])
    if who in SEE_HELD_BACK:
        assert (contents(page), page["total"]) == (["Held back", "Public"], 2)
        assert page["comments"][0] == {**pending, "replies": []}
    else:
        assert (contents(page), page["total"], page["has_more"]) == (["Public"], 1, False)


@pytest.mark.parametrize("who", SEE_HELD_BACK + NOT_SEE_HELD_BACK)
async def test_a_hidden_comment_is_seen_by_its_author_the_posts_author_and_moderators(
    client, post, people, bob, editor, who
):
    created = await comment(client, post["id"], bob[1], "Rude")
    hidden = await decide(client, created["id"], "hide", editor[1])
    assert hidden.status_code == 200
    assert hidden.json() == {**created, "status": "hidden"}
    page = await listed(client, post["id"], people[who])
    expected = (["Rude"], 1) if who in SEE_HELD_BACK else ([], 0)
    assert (contents(page), page["total"]) == expected


@pytest.mark.parametrize("who", ["anonymous", "stranger", "post author", "editor", "admin"])
async def test_a_suspended_users_comments_are_seen_by_editors_and_admins_only(
    client, db_session, post, people, bob, who
):
    await comment(client, post["id"], bob[1], "Before the suspension")
    await comment(client, post["id"], people["stranger"], "Eve's")
    await set_user(db_session, bob[0], suspended_at=datetime.now(UTC))
    page = await listed(client, post["id"], people[who])
    if who in ("editor", "admin"):
        assert (contents(page), page["total"]) == (["Before the suspension", "Eve's"], 2)
        assert page["comments"][0]["author"]["suspended"] is True
    else:
        assert (contents(page), page["total"]) == (["Eve's"], 1)


async def test_paging_skips_over_what_the_public_does_not_see(client, post, alice, bob, moderation):
    for n in range(3):
        await comment(client, post["id"], alice[1], f"public {n}")
        moderation("all")
        await comment(client, post["id"], bob[1], f"held {n}")
        moderation("off")
    first = await listed(client, post["id"], query="?limit=2")
    rest = await listed(client, post["id"], query="?skip=2&limit=2")
    assert (contents(first), first["has_more"], first["total"]) == (
        ["public 0", "public 1"],
        True,
        3,
    )
    assert (contents(rest), rest["has_more"]) == (["public 2"], False)
    past = await listed(client, post["id"], bob[1], query="?skip=10")
    assert (past["comments"], past["total"]) == ([], 6)  # Bob's own count too


async def test_the_posts_page_shows_the_public_comments_only(
    client, db_session, post, alice, eve, pending
):
    await comment(client, post["id"], eve[1], "Eve was here")
    await comment(client, post["id"], alice[1], "Alice replies")
    await set_user(db_session, eve[0], suspended_at=datetime.now(UTC))
    html = (await client.get(f"/posts/{post['id']}")).text
    assert "Alice replies" in html
    assert "Held back" not in html
    assert "Eve was here" not in html
    assert re.search(r'<span id="comment-count">1</span>', html)


# --- What caches may keep --------------------------------------------------------------------


async def test_a_list_that_shows_a_viewer_more_than_the_public_is_kept_out_of_caches(
    client, post, people, pending
):
    public = await client.get(f"/api/posts/{post['id']}/comments")
    assert public.headers["cache-control"] == "no-cache"
    assert public.headers["etag"].startswith('W/"')
    for who in SEE_HELD_BACK:
        own = await client.get(f"/api/posts/{post['id']}/comments", headers=people[who])
        assert own.headers["cache-control"] == "private, no-store", who
        assert "etag" not in own.headers, who
    # A viewer who sees what everyone sees gets what everyone gets, tag and all.
    same = await client.get(f"/api/posts/{post['id']}/comments", headers=people["stranger"])
    assert (same.headers["cache-control"], same.headers["etag"]) == (
        "no-cache",
        public.headers["etag"],
    )
    assert same.content == public.content


async def test_a_tag_the_public_was_sent_never_answers_a_viewer_who_sees_more(
    engine, monkeypatch, moderation
):
    """Under one snapshot this worker remembers each URL's tag and answers a match with a 304
    before reading: a viewer with a pending comment holding the public's tag gets it in full."""
    monkeypatch.setattr(caching, "remembered", Remembered())
    # `engine` made the tables; the app commits on an engine of its own.
    async with app_on_own_engine("moderated") as (writer, live_engine, _sessions):
        _, author = await create_user_and_login(writer, "moderated_author")
        _, commenter = await create_user_and_login(writer, "moderated_commenter")
        _, stranger = await create_user_and_login(writer, "moderated_stranger")
        post = await create_test_post(writer, author)
        moderation("all")
        await comment(writer, post["id"], commenter, "Held back")
        path = f"/api/posts/{post['id']}/comments"
        async with one_snapshot(live_engine) as (reader, _connection):
            tag = (await reader.get(path)).headers["etag"]
            condition = {"If-None-Match": tag}
            assert (await reader.get(path, headers=condition)).status_code == 304  # remembered
            own = await reader.get(path, headers={**commenter, **condition})
            assert own.status_code == 200
            assert contents(own.json()) == ["Held back"]
            assert own.headers["cache-control"] == "private, no-store"
            # Who sees what the public sees may still have the 304.
            same = await reader.get(path, headers={**stranger, **condition})
            assert (same.status_code, same.headers["etag"]) == (304, tag)


# --- Approving and hiding --------------------------------------------------------------------


@pytest.mark.parametrize("who", ["post author", "editor", "admin"])
async def test_the_posts_author_and_moderators_approve_a_pending_comment(
    client, post, people, pending, who
):
    response = await decide(client, pending["id"], "approve", people[who])
    assert response.status_code == 200
    assert response.json() == {**pending, "status": "approved"}
    page = await listed(client, post["id"])
    assert (contents(page), page["total"]) == (["Held back"], 1)


@pytest.mark.parametrize("who", ["post author", "editor", "admin"])
async def test_the_posts_author_and_moderators_hide_an_approved_comment(
    client, post, people, bob, who
):
    created = await comment(client, post["id"], bob[1], "Visible")
    response = await decide(client, created["id"], "hide", people[who])
    assert (response.status_code, response.json()["status"]) == (200, "hidden")
    assert (await listed(client, post["id"]))["total"] == 0
    again = await decide(client, created["id"], "approve", people[who])
    assert again.json()["status"] == "approved"
    assert contents(await listed(client, post["id"])) == ["Visible"]


@pytest.mark.parametrize("decision", ["approve", "hide"])
async def test_the_comments_author_may_not_moderate_it(client, people, pending, decision):
    response = await decide(client, pending["id"], decision, people["comment author"])
    assert response.status_code == 403
    assert response.json()["detail"] == FORBIDDEN


@pytest.mark.parametrize("decision", ["approve", "hide"])
async def test_a_stranger_may_not_moderate_a_comment_they_see(client, post, bob, eve, decision):
    created = await comment(client, post["id"], bob[1])
    response = await decide(client, created["id"], decision, eve[1])
    assert (response.status_code, response.json()["detail"]) == (403, FORBIDDEN)
    assert (await listed(client, post["id"]))["comments"] == [{**created, "replies": []}]


@pytest.mark.parametrize("decision", ["approve", "hide", "report"])
async def test_a_comment_the_user_cannot_see_is_not_found(client, eve, pending, decision):
    response = await client.post(f"/api/comments/{pending['id']}/{decision}", headers=eve[1])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    missing = await client.post(f"/api/comments/999999/{decision}", headers=eve[1])
    assert (missing.status_code, missing.json()["detail"]) == (404, NOT_FOUND)


async def test_a_stranger_cannot_change_a_pending_comment_they_cannot_see(client, eve, pending):
    edit = await client.patch(
        f"/api/comments/{pending['id']}", json={"content": "x"}, headers=eve[1]
    )
    deletion = await client.delete(f"/api/comments/{pending['id']}", headers=eve[1])
    for response in (edit, deletion):
        assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)


async def test_the_author_edits_their_pending_comment_and_it_stays_pending(client, bob, pending):
    response = await client.patch(
        f"/api/comments/{pending['id']}", json={"content": "Edited"}, headers=bob[1]
    )
    assert response.status_code == 200
    assert response.json() == {**pending, "content": "Edited", "status": "pending"}


@pytest.mark.parametrize("path", ["approve", "hide", "report"])
async def test_moderating_and_reporting_need_a_login(client, pending, path):
    response = await client.post(f"/api/comments/{pending['id']}/{path}")
    assert (response.status_code, response.json()["detail"]) == (401, "Not authenticated")


# --- Editing and deleting by permission ------------------------------------------------------


@pytest.mark.parametrize("who", ["editor", "admin"])
async def test_editors_and_admins_delete_any_comment(client, post, people, bob, who):
    created = await comment(client, post["id"], bob[1])
    assert (
        await client.delete(f"/api/comments/{created['id']}", headers=people[who])
    ).status_code == 204
    assert (await listed(client, post["id"]))["total"] == 0


@pytest.mark.parametrize("who", ["editor", "admin"])
async def test_editors_and_admins_do_not_edit_others_comments(client, post, people, bob, who):
    created = await comment(client, post["id"], bob[1])
    response = await client.patch(
        f"/api/comments/{created['id']}", json={"content": "Better"}, headers=people[who]
    )
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "Not authorized to update this comment",
    )


# --- The queue -------------------------------------------------------------------------------


async def test_the_queue_holds_the_pending_comments_under_the_users_posts_oldest_first(
    client, alice, bob, eve, moderation
):
    mine = await create_test_post(client, alice[1], title="Mine")
    theirs = await create_test_post(client, eve[1], title="Eve's")
    await comment(client, mine["id"], bob[1], "approved before")
    moderation("all")
    first = await comment(client, mine["id"], bob[1], "first")
    await comment(client, theirs["id"], bob[1], "elsewhere")
    second = await comment(client, mine["id"], eve[1], "second")
    page = await queue(client, alice[1])
    assert page == {
        "comments": [first, second],
        "total": 2,
        "skip": 0,
        "limit": 50,
        "has_more": False,
    }
    assert contents(await queue(client, eve[1])) == ["elsewhere"]
    assert contents(await queue(client, bob[1])) == []  # nothing under Bob's posts
    # A decision takes the comment out of the queue.
    assert (await decide(client, first["id"], "hide", alice[1])).status_code == 200
    assert contents(await queue(client, alice[1])) == ["second"]


@pytest.mark.parametrize("who", ["editor", "admin"])
async def test_editors_and_admins_see_every_pending_comment_in_the_queue(
    client, db_session, people, alice, bob, eve, moderation, who
):
    mine = await create_test_post(client, alice[1], title="Mine")
    theirs = await create_test_post(client, eve[1], title="Eve's")
    moderation("all")
    await comment(client, mine["id"], bob[1], "one")
    await comment(client, theirs["id"], bob[1], "two")
    await comment(client, mine["id"], eve[1], "three")
    page = await queue(client, people[who], "?status=pending&limit=2")
    assert (contents(page), page["total"], page["has_more"]) == (["one", "two"], 3, True)
    rest = await queue(client, people[who], "?status=pending&skip=2&limit=2")
    assert (contents(rest), rest["has_more"]) == (["three"], False)
    # A suspended user's comments wait for editors and admins only.
    await set_user(db_session, eve[0], suspended_at=datetime.now(UTC))
    assert contents(await queue(client, people[who])) == ["one", "two", "three"]
    assert contents(await queue(client, alice[1])) == ["one"]


async def test_the_queue_is_pending_by_default(client, alice, pending):
    assert contents(await queue(client, alice[1], "")) == ["Held back"]


async def test_the_queue_needs_a_login(client):
    response = await client.get("/api/comments?status=pending")
    assert (response.status_code, response.json()["detail"]) == (401, "Not authenticated")


@pytest.mark.parametrize(
    "query",
    [
        "?status=approved",
        "?status=hidden",
        "?status=",
        "?status=pending&skip=-1",
        "?status=pending&skip=10001",
        "?status=pending&limit=0",
        "?status=pending&limit=101",
    ],
)
async def test_the_queue_refuses_other_statuses_and_bad_paging(client, alice, query):
    response = await client.get(f"/api/comments{query}", headers=alice[1])
    assert response.status_code == 422


# --- Reports ---------------------------------------------------------------------------------


async def count_reports(db_session, comment_id: int) -> int:
    statement = select(func.count()).where(models.CommentReport.comment_id == comment_id)
    return await db_session.scalar(statement)


@pytest.fixture
async def reporters(client) -> list[dict]:
    return [(await create_user_and_login(client, f"reader{n}"))[1] for n in range(3)]


async def test_reports_by_three_users_send_a_comment_back_to_moderation(
    client, db_session, post, alice, bob, reporters
):
    created = await comment(client, post["id"], bob[1], "Contested")
    for headers in reporters[:2] + reporters[:2]:  # two users, each twice
        response = await report(client, created["id"], headers)
        assert (response.status_code, response.json()) == (202, {"message": "Comment reported"})
    assert await count_reports(db_session, created["id"]) == 2
    assert contents(await listed(client, post["id"])) == ["Contested"]
    assert (await report(client, created["id"], reporters[2])).status_code == 202
    assert (await listed(client, post["id"]))["total"] == 0
    own = await listed(client, post["id"], bob[1])
    assert own["comments"][0]["status"] == "pending"
    assert contents(await queue(client, alice[1])) == ["Contested"]


async def test_the_report_threshold_is_a_setting(client, post, bob, reporters, monkeypatch):
    monkeypatch.setattr(settings, "comment_report_threshold", 1)
    created = await comment(client, post["id"], bob[1], "Contested")
    assert (await report(client, created["id"], reporters[0])).status_code == 202
    assert (await listed(client, post["id"]))["total"] == 0


async def test_after_a_decision_only_new_reports_count(
    client, db_session, post, alice, bob, reporters, monkeypatch
):
    monkeypatch.setattr(settings, "comment_report_threshold", 2)
    created = await comment(client, post["id"], bob[1], "Contested")
    for headers in reporters[:2]:
        await report(client, created["id"], headers)
    assert (await decide(client, created["id"], "approve", alice[1])).status_code == 200
    assert await count_reports(db_session, created["id"]) == 0
    # The moderator decided: one more report is one, not three.
    await report(client, created["id"], reporters[0])
    assert contents(await listed(client, post["id"])) == ["Contested"]
    await report(client, created["id"], reporters[1])
    assert (await listed(client, post["id"]))["total"] == 0


async def test_a_hidden_comment_reported_stays_hidden(
    client, post, alice, bob, reporters, monkeypatch
):
    monkeypatch.setattr(settings, "comment_report_threshold", 1)
    created = await comment(client, post["id"], bob[1], "Rude")
    await decide(client, created["id"], "hide", alice[1])
    assert (await report(client, created["id"], bob[1])).status_code == 202
    own = await listed(client, post["id"], bob[1])
    assert own["comments"][0]["status"] == "hidden"


# --- The moderation page ---------------------------------------------------------------------


async def test_the_moderation_page_is_a_shell_its_script_fills(client):
    response = await client.get("/moderation")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    html5lib.HTMLParser(strict=True).parse(html)
    assert '<script type="module" src="/static/js/moderation.js"></script>' in html
    assert re.search(r'<ol class="comment-list" id="moderation-queue"></ol>', html)
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html


async def test_the_moderation_script_uses_the_api_and_writes_text_only(client):
    response = await client.get("/static/js/moderation.js")
    assert response.status_code == 200
    script = response.text
    assert 'import { api, currentUser } from "./api.js";' in script
    assert "/api/comments?status=pending" in script
    assert "/api/comments/${id}/${decision}" in script
    assert "textContent" in script
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "localStorage", "Bearer"):
        assert unsafe not in script


async def test_an_edited_post_counts_its_comments_as_every_read_does(client, post, alice, pending):
    """An edit's answer gives the `comment_count` the lists and the post give: the public's."""
    await comment(client, post["id"], alice[1], "Out in the open")
    edited = await client.patch(
        f"/api/posts/{post['id']}", json={"title": "Alice's post, edited"}, headers=alice[1]
    )
    read = await client.get(f"/api/posts/{post['id']}")
    assert edited.json()["comment_count"] == read.json()["comment_count"] == 1
