"""Replies: one level deep under a top-level comment, listed with it, deleted with it, and
moderated and seen as comments are (COMMENT_MODERATION, verification, pending, hidden and
suspended users' replies), in a fixed number of statements however many there are."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import html5lib
import pytest
from sqlalchemy import func, select, update

import models
import routers.comments
from config import settings
from schemas import MAX_REPLIES_LISTED
from tests.conftest import create_test_post, create_user_and_login
from tests.test_query_counts import count_statements

pytestmark = pytest.mark.anyio

NOT_FOUND = "Comment not found"


# --- Helpers and people ----------------------------------------------------------------------


async def write(client, post_id: int, headers: dict, content: str, parent_id: int | None = None):
    body = (
        {"content": content} if parent_id is None else {"content": content, "parent_id": parent_id}
    )
    return await client.post(f"/api/posts/{post_id}/comments", json=body, headers=headers)


async def comment(client, post_id: int, headers: dict, content: str = "A comment") -> dict:
    response = await write(client, post_id, headers, content)
    assert response.status_code == 201, response.text
    return response.json()


async def reply(client, post_id: int, parent_id: int, headers: dict, content: str = "A reply"):
    response = await write(client, post_id, headers, content, parent_id)
    assert response.status_code == 201, response.text
    return response.json()


async def listed(client, post_id: int, headers: dict | None = None, query: str = "") -> dict:
    response = await client.get(f"/api/posts/{post_id}/comments{query}", headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


def threads(page: dict) -> list[tuple[str, list[str]]]:
    """Each top-level comment's text with its replies' texts."""
    return [
        (each["content"], [one["content"] for one in each["replies"]]) for each in page["comments"]
    ]


async def set_user(db_session, user: dict, **values) -> None:
    await db_session.execute(
        update(models.User).where(models.User.id == user["id"]).values(**values)
    )


async def count_comments(db_session) -> int:
    return await db_session.scalar(select(func.count()).select_from(models.Comment))


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
def people(alice, bob, eve, editor, admin) -> dict[str, dict]:
    """Everyone's headers: the post's author, the reply's author, a stranger, moderators."""
    return {
        "anonymous": {},
        "post author": alice[1],
        "reply author": bob[1],
        "stranger": eve[1],
        "editor": editor[1],
        "admin": admin[1],
    }


SEE_HELD_BACK = ["reply author", "post author", "editor", "admin"]
NOT_SEE_HELD_BACK = ["anonymous", "stranger"]


@pytest.fixture
def moderation(monkeypatch):
    def set_mode(mode: str) -> None:
        monkeypatch.setattr(settings, "comment_moderation", mode)

    return set_mode


@pytest.fixture
async def top(client, post, eve) -> dict:
    """Eve's comment on Alice's post, approved."""
    return await comment(client, post["id"], eve[1], "Top")


# --- Writing a reply -------------------------------------------------------------------------


async def test_a_reply_is_listed_under_its_comment_and_total_counts_top_level_comments(
    client, post, alice, bob, top
):
    created = await reply(client, post["id"], top["id"], bob[1], "Bob answers")
    assert (created["parent_id"], created["reply_count"], created["status"]) == (
        top["id"],
        0,
        "approved",
    )
    assert "replies" not in created
    later = await comment(client, post["id"], alice[1], "Later")
    page = await listed(client, post["id"])
    assert (page["total"], page["has_more"]) == (2, False)
    assert page["comments"] == [
        {**top, "reply_count": 1, "replies": [created]},
        {**later, "replies": []},
    ]


async def test_a_reply_to_a_reply_attaches_to_the_top_level_comment(client, post, alice, bob, top):
    first = await reply(client, post["id"], top["id"], bob[1], "First")
    second = await reply(client, post["id"], first["id"], alice[1], "To the first")
    assert second["parent_id"] == top["id"]
    page = await listed(client, post["id"])
    assert threads(page) == [("Top", ["First", "To the first"])]
    assert page["comments"][0]["replies"][0]["reply_count"] == 0  # nothing deeper


async def test_replies_are_listed_oldest_first(client, db_session, post, bob, top):
    """Written in one order, dated in the other: the dates decide."""
    now = datetime.now(UTC)
    for n in range(3):
        db_session.add(
            models.Comment(
                post_id=post["id"],
                parent_id=top["id"],
                user_id=bob[0]["id"],
                content=f"written {n}",
                date_posted=now - timedelta(minutes=n),
            )
        )
    await db_session.commit()
    assert threads(await listed(client, post["id"])) == [
        ("Top", ["written 2", "written 1", "written 0"])
    ]


async def test_a_comment_lists_its_first_replies_and_counts_them_all(
    client, db_session, post, bob, top
):
    start = datetime.now(UTC)
    db_session.add_all(
        models.Comment(
            post_id=post["id"],
            parent_id=top["id"],
            user_id=bob[0]["id"],
            content=f"reply {n}",
            date_posted=start + timedelta(seconds=n),
        )
        for n in range(MAX_REPLIES_LISTED + 1)
    )
    await db_session.commit()
    (thread,) = (await listed(client, post["id"]))["comments"]
    assert thread["reply_count"] == MAX_REPLIES_LISTED + 1
    assert [one["content"] for one in thread["replies"]] == [
        f"reply {n}" for n in range(MAX_REPLIES_LISTED)
    ]


async def test_paging_pages_top_level_comments_with_their_replies(client, post, alice, bob):
    for n in range(3):
        parent = await comment(client, post["id"], alice[1], f"c{n}")
        await reply(client, post["id"], parent["id"], bob[1], f"r{n}")
    first = await listed(client, post["id"], query="?limit=2")
    rest = await listed(client, post["id"], query="?skip=2&limit=2")
    assert (threads(first), first["total"], first["has_more"]) == (
        [("c0", ["r0"]), ("c1", ["r1"])],
        3,
        True,
    )
    assert (threads(rest), rest["has_more"]) == ([("c2", ["r2"])], False)
    past = await listed(client, post["id"], query="?skip=10")
    assert (past["comments"], past["total"]) == ([], 3)


async def test_a_reply_needs_a_login(client, post, top):
    response = await write(client, post["id"], {}, "Hi", top["id"])
    assert (response.status_code, response.json()["detail"]) == (401, "Not authenticated")


async def test_a_missing_parent_is_not_found_and_nothing_is_stored(
    client, db_session, post, bob, top
):
    response = await write(client, post["id"], bob[1], "Into the void", 999999)
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    assert await count_comments(db_session) == 1


async def test_a_parent_under_another_post_is_not_found(client, db_session, post, alice, bob, top):
    other = await create_test_post(client, alice[1], title="Another")
    response = await write(client, other["id"], bob[1], "Wrong thread", top["id"])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    assert await count_comments(db_session) == 1


async def test_a_parent_the_user_cannot_see_is_not_found(client, post, bob, eve, moderation):
    moderation("all")
    held = await comment(client, post["id"], bob[1], "Held back")
    response = await write(client, post["id"], eve[1], "Can I?", held["id"])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    # Who sees it may answer it: its author, here.
    assert (await reply(client, post["id"], held["id"], bob[1]))["parent_id"] == held["id"]


async def test_a_reply_whose_comment_the_user_no_longer_sees_takes_no_reply(
    client, post, alice, bob, top
):
    """Bob still sees his reply, but not the hidden comment it answers: a reply to his reply
    would go under that comment."""
    own = await reply(client, post["id"], top["id"], bob[1], "Mine")
    hidden = await client.post(f"/api/comments/{top['id']}/hide", headers=alice[1])
    assert hidden.status_code == 200
    response = await write(client, post["id"], bob[1], "And again", own["id"])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)


async def test_a_suspended_users_comment_takes_no_reply_but_from_editors(
    client, db_session, post, bob, eve, editor, top
):
    await set_user(db_session, eve[0], suspended_at=datetime.now(UTC))
    response = await write(client, post["id"], bob[1], "Hello?", top["id"])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    assert (await reply(client, post["id"], top["id"], editor[1]))["parent_id"] == top["id"]


async def test_a_reply_under_a_draft_of_someone_else_is_a_missing_post(client, alice, bob):
    draft = await client.post(
        "/api/posts", json={"title": "Draft", "content": "x", "published": False}, headers=alice[1]
    )
    note = await comment(client, draft.json()["id"], alice[1], "Note")
    response = await write(client, draft.json()["id"], bob[1], "Peek", note["id"])
    assert (response.status_code, response.json()["detail"]) == (404, "Post not found")


@pytest.mark.parametrize("parent_id", [0, -1, 2**31, "one", 1.5])
async def test_a_parent_id_that_is_no_comment_id_is_422(client, post, bob, parent_id):
    response = await client.post(
        f"/api/posts/{post['id']}/comments",
        json={"content": "Hi", "parent_id": parent_id},
        headers=bob[1],
    )
    assert response.status_code == 422


async def test_a_null_parent_id_writes_a_top_level_comment(client, post, bob):
    response = await client.post(
        f"/api/posts/{post['id']}/comments",
        json={"content": "Hi", "parent_id": None},
        headers=bob[1],
    )
    assert (response.status_code, response.json()["parent_id"]) == (201, None)


async def test_a_parent_deleted_while_the_reply_is_written_is_not_found(
    client, db_session, post, bob, top, monkeypatch
):
    """Checked, then gone before the reply is stored: the foreign key refuses it."""

    async def checked_then_deleted(*_args) -> int:
        return 999999

    monkeypatch.setattr(routers.comments, "thread_of", checked_then_deleted)
    response = await write(client, post["id"], bob[1], "Too late", top["id"])
    assert (response.status_code, response.json()["detail"]) == (404, NOT_FOUND)
    assert await count_comments(db_session) == 1


# --- Editing and deleting --------------------------------------------------------------------


async def test_editing_a_reply_changes_its_text_only(client, post, alice, bob, top):
    created = await reply(client, post["id"], top["id"], bob[1], "Typo")
    elsewhere = await comment(client, post["id"], alice[1], "Elsewhere")
    response = await client.patch(
        f"/api/comments/{created['id']}",
        json={"content": "Fixed", "parent_id": elsewhere["id"]},
        headers=bob[1],
    )
    assert response.status_code == 200
    assert response.json() == {**created, "content": "Fixed"}
    assert threads(await listed(client, post["id"])) == [("Top", ["Fixed"]), ("Elsewhere", [])]


async def test_only_writing_takes_a_parent_id(client):
    document = (await client.get("/openapi.json")).json()

    def body(path: str, method: str) -> dict:
        ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        return document["components"]["schemas"][ref["schema"]["$ref"].rsplit("/", 1)[1]]

    assert "parent_id" in body("/api/posts/{post_id}/comments", "post")["properties"]
    assert "parent_id" not in body("/api/comments/{comment_id}", "patch")["properties"]


async def test_a_comments_answers_count_the_replies_its_reader_sees(
    client, post, alice, bob, eve, top, moderation
):
    await reply(client, post["id"], top["id"], bob[1], "Approved")
    moderation("all")
    await reply(client, post["id"], top["id"], bob[1], "Held back")
    edited = await client.patch(
        f"/api/comments/{top['id']}", json={"content": "Top, edited"}, headers=eve[1]
    )
    assert (edited.status_code, edited.json()["reply_count"]) == (200, 1)
    hidden = await client.post(f"/api/comments/{top['id']}/hide", headers=alice[1])
    assert (hidden.status_code, hidden.json()["reply_count"]) == (200, 2)  # the post's author


async def test_deleting_a_comment_deletes_its_replies(client, db_session, post, alice, bob, top):
    await reply(client, post["id"], top["id"], bob[1], "One")
    await reply(client, post["id"], top["id"], alice[1], "Two")
    other = await comment(client, post["id"], bob[1], "Stays")
    await reply(client, post["id"], other["id"], alice[1], "Stays too")
    assert await count_comments(db_session) == 5
    response = await client.delete(f"/api/comments/{top['id']}", headers=alice[1])
    assert response.status_code == 204
    assert await count_comments(db_session) == 2
    assert threads(await listed(client, post["id"])) == [("Stays", ["Stays too"])]


async def test_deleting_a_reply_leaves_its_comment(client, db_session, post, bob, top):
    first = await reply(client, post["id"], top["id"], bob[1], "One")
    await reply(client, post["id"], top["id"], bob[1], "Two")
    assert (await client.delete(f"/api/comments/{first['id']}", headers=bob[1])).status_code == 204
    (thread,) = (await listed(client, post["id"]))["comments"]
    assert (thread["content"], thread["reply_count"]) == ("Top", 1)
    assert [one["content"] for one in thread["replies"]] == ["Two"]


# --- Moderation ------------------------------------------------------------------------------


async def test_replies_are_held_as_comment_moderation_says(
    client, post, alice, bob, eve, top, moderation
):
    moderation("all")
    assert (await reply(client, post["id"], top["id"], bob[1]))["status"] == "pending"
    moderation("first")
    first = await reply(client, post["id"], top["id"], eve[1], "Eve, approved before")
    assert first["status"] == "approved"  # Eve's top-level comment was approved
    held = await reply(client, post["id"], top["id"], bob[1], "Bob, new here")
    assert (held["status"], held["parent_id"]) == ("pending", top["id"])
    approved = await client.post(f"/api/comments/{held['id']}/approve", headers=alice[1])
    assert approved.json()["status"] == "approved"
    assert (await reply(client, post["id"], top["id"], bob[1], "Trusted"))["status"] == "approved"
    moderation("off")
    assert (await reply(client, post["id"], top["id"], bob[1], "Open"))["status"] == "approved"


async def test_an_unverified_user_cannot_reply_when_verification_is_required(
    client, db_session, post, bob, top, monkeypatch
):
    monkeypatch.setattr(settings, "email_verification_required", True)
    response = await write(client, post["id"], bob[1], "Hi", top["id"])
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "Verify your email address first",
    )
    assert await count_comments(db_session) == 1


@pytest.mark.parametrize("who", SEE_HELD_BACK + NOT_SEE_HELD_BACK)
async def test_a_pending_reply_is_seen_by_its_author_the_posts_author_and_moderators(
    client, post, people, top, moderation, who
):
    await reply(client, post["id"], top["id"], people["post author"], "Public")
    moderation("all")
    held = await reply(client, post["id"], top["id"], people["reply author"], "Held back")
    (thread,) = (await listed(client, post["id"], people[who]))["comments"]
    shown = [one["content"] for one in thread["replies"]]
    if who in SEE_HELD_BACK:
        assert (shown, thread["reply_count"]) == (["Public", "Held back"], 2)
        assert thread["replies"][1] == held
    else:
        assert (shown, thread["reply_count"]) == (["Public"], 1)


@pytest.mark.parametrize("who", SEE_HELD_BACK + NOT_SEE_HELD_BACK)
async def test_a_hidden_reply_is_seen_by_its_author_the_posts_author_and_moderators(
    client, post, people, editor, top, who
):
    created = await reply(client, post["id"], top["id"], people["reply author"], "Rude")
    hidden = await client.post(f"/api/comments/{created['id']}/hide", headers=editor[1])
    assert hidden.json() == {**created, "status": "hidden"}
    (thread,) = (await listed(client, post["id"], people[who]))["comments"]
    expected = (["Rude"], 1) if who in SEE_HELD_BACK else ([], 0)
    assert ([one["content"] for one in thread["replies"]], thread["reply_count"]) == expected


@pytest.mark.parametrize("who", ["anonymous", "stranger", "post author", "editor", "admin"])
async def test_a_suspended_users_replies_are_seen_by_editors_and_admins_only(
    client, db_session, post, people, bob, top, who
):
    await reply(client, post["id"], top["id"], bob[1], "Before the suspension")
    await set_user(db_session, bob[0], suspended_at=datetime.now(UTC))
    (thread,) = (await listed(client, post["id"], people[who]))["comments"]
    if who in ("editor", "admin"):
        assert thread["reply_count"] == 1
        assert thread["replies"][0]["author"]["suspended"] is True
    else:
        assert (thread["replies"], thread["reply_count"]) == ([], 0)


async def test_replies_under_a_comment_the_public_does_not_see_are_not_listed_to_it(
    client, post, alice, bob, eve, top
):
    await reply(client, post["id"], top["id"], bob[1], "Under it")
    hidden = await client.post(f"/api/comments/{top['id']}/hide", headers=alice[1])
    assert hidden.status_code == 200
    anonymous: dict[str, str] = {}
    for headers in (anonymous, bob[1]):  # Bob sees his reply's comment no more
        page = await listed(client, post["id"], headers)
        assert (page["comments"], page["total"]) == ([], 0)
    assert threads(await listed(client, post["id"], eve[1])) == [("Top", ["Under it"])]


async def test_a_list_showing_a_viewer_a_reply_the_public_does_not_see_is_not_cached(
    client, post, bob, eve, top, moderation
):
    moderation("all")
    await reply(client, post["id"], top["id"], bob[1], "Held back")
    path = f"/api/posts/{post['id']}/comments"
    public = await client.get(path)
    own = await client.get(path, headers=bob[1])
    assert threads(own.json()) == [("Top", ["Held back"])]
    assert own.headers["cache-control"] == "private, no-store"
    assert "etag" not in own.headers
    same = await client.get(path, headers=eve[1])
    assert (same.headers["cache-control"], same.headers["etag"]) == (
        "no-cache",
        public.headers["etag"],
    )


async def test_the_queue_holds_pending_replies_with_their_parent(
    client, post, alice, bob, top, moderation
):
    moderation("all")
    held = await reply(client, post["id"], top["id"], bob[1], "Held back")
    response = await client.get("/api/comments?status=pending", headers=alice[1])
    assert response.status_code == 200
    assert response.json() == {
        "comments": [held],
        "total": 1,
        "skip": 0,
        "limit": 50,
        "has_more": False,
    }
    assert held["parent_id"] == top["id"]
    await client.post(f"/api/comments/{held['id']}/approve", headers=alice[1])
    assert threads(await listed(client, post["id"])) == [("Top", ["Held back"])]


async def test_a_queued_comment_counts_the_replies_its_moderator_sees(
    client, post, alice, eve, moderation
):
    moderation("all")
    held = await comment(client, post["id"], eve[1], "Held back")
    await reply(client, post["id"], held["id"], eve[1], "Eve adds")
    await reply(client, post["id"], held["id"], alice[1], "Alice asks")
    queued = (await client.get("/api/comments?status=pending", headers=alice[1])).json()
    assert [(each["content"], each["reply_count"]) for each in queued["comments"]] == [
        ("Held back", 2),
        ("Eve adds", 0),
        ("Alice asks", 0),
    ]


# --- The post's page -------------------------------------------------------------------------


def text_of(item: ElementTree.Element) -> str:
    """A comment's text, from its <li>."""
    paragraph = item.find("p[@class='comment-content']")
    assert paragraph is not None and paragraph.text is not None
    return paragraph.text


def threaded_on_page(html: str) -> dict[str, list[str]]:
    """Each top-level comment's text on the page, with the texts of the replies inside it."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return {
        text_of(item): [
            text_of(one) for one in item.findall("ol[@class='comment-list comment-replies']/li")
        ]
        for item in document.findall(".//ol[@id='comment-list']/li")
    }


async def test_the_posts_page_shows_replies_under_their_comment(
    client, post, alice, bob, top, moderation
):
    first = await reply(client, post["id"], top["id"], bob[1], "Bob <answers> & more")
    await comment(client, post["id"], alice[1], "Alone")
    moderation("all")
    await reply(client, post["id"], top["id"], bob[1], "Held back")
    response = await client.get(f"/posts/{post['id']}")
    assert response.status_code == 200
    html5lib.HTMLParser(strict=True).parse(response.text)
    assert threaded_on_page(response.text) == {"Top": ["Bob <answers> & more"], "Alone": []}
    assert f'id="comment-{first["id"]}" data-comment-id="{first["id"]}"' in response.text
    assert f'data-parent-id="{top["id"]}"' in response.text
    assert '<span id="comment-count">2</span>' in response.text
    # The form a Reply button opens, inert until the script clones it.
    assert '<template id="reply-form-template">' in response.text


async def test_the_posts_page_says_when_a_comment_has_more_replies_than_it_shows(
    client, db_session, post, bob, top
):
    db_session.add_all(
        models.Comment(post_id=post["id"], parent_id=top["id"], user_id=bob[0]["id"], content="r")
        for _ in range(MAX_REPLIES_LISTED + 2)
    )
    await db_session.commit()
    html = (await client.get(f"/posts/{post['id']}")).text
    assert len(threaded_on_page(html)["Top"]) == MAX_REPLIES_LISTED
    assert f"The first {MAX_REPLIES_LISTED} of {MAX_REPLIES_LISTED + 2} replies." in html


async def test_the_post_script_replies_through_the_api_and_writes_text_only(client):
    script = (await client.get("/static/js/post.js")).text
    assert 'import { api, currentUser } from "./api.js";' in script
    assert "parent_id: Number(id)" in script
    assert "reply-form-template" in script
    assert "innerHTML" not in script.split("// --- Comments")[1]
    for unsafe in ("outerHTML", "insertAdjacentHTML", "localStorage", "Bearer"):
        assert unsafe not in script


# --- Statements ------------------------------------------------------------------------------


@pytest.fixture
async def busy(client, db_session, post, alice, bob, eve) -> int:
    """Many comments by three authors, each with replies by all of them: what the list shows
    grows, and the number of statements must not."""
    users = [alice[0], bob[0], eve[0]]
    tops = [
        models.Comment(post_id=post["id"], user_id=users[n % 3]["id"], content=f"c{n}")
        for n in range(60)
    ]
    db_session.add_all(tops)
    await db_session.flush()
    db_session.add_all(
        models.Comment(post_id=post["id"], parent_id=parent.id, user_id=user["id"], content="r")
        for parent in tops
        for user in users
    )
    await db_session.commit()
    return post["id"]


async def statements_for(client, url: str, headers: dict | None = None) -> int:
    with count_statements() as statements:
        response = await client.get(url, headers=headers or {})
    assert response.status_code == 200, response.text
    return len(statements)


async def test_comments_with_replies_take_as_many_statements_as_one_comment(
    client, post, alice, busy
):
    lonely = await create_test_post(client, alice[1], title="Lonely")
    await comment(client, lonely["id"], alice[1], "Only one")
    # The post's visibility, then the page with replies and totals; the token's check first.
    for headers, expected in (({}, 2), (alice[1], 3)):
        one = await statements_for(client, f"/api/posts/{lonely['id']}/comments?limit=1", headers)
        many = await statements_for(client, f"/api/posts/{busy}/comments?limit=100", headers)
        assert one == many == expected
    page = await listed(client, busy, query="?limit=100")
    assert {len(each["replies"]) for each in page["comments"]} == {3}
    assert len(page["comments"]) == 60


async def test_the_posts_page_with_replies_takes_as_many_statements_as_without(
    client, post, alice, busy
):
    lonely = await create_test_post(client, alice[1], title="Lonely")
    await comment(client, lonely["id"], alice[1], "Only one")
    one = await statements_for(client, f"/posts/{lonely['id']}")
    many = await statements_for(client, f"/posts/{busy}")
    assert one == many == 2  # the post, then its comments with their replies
    shown = threaded_on_page((await client.get(f"/posts/{busy}")).text)
    assert {len(replies) for replies in shown.values()} == {3}
