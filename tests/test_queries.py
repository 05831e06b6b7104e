"""The query layer without HTTP: queries.py's page of posts, one post and the one rule of who
sees a post, on the test's own transaction (rolled back afterwards)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import models
from cursors import Position
from queries import can_see, fetch_posts_page, is_scheduled, read_post, visible_to

pytestmark = pytest.mark.anyio

PUBLIC_NEWEST_FIRST = ["Newest", "Newer", "Old"]


async def stored(db_session, row):
    """`row` added to the test's transaction, its defaults filled in."""
    db_session.add(row)
    await db_session.flush()
    return row


async def add_user(db_session, username: str, role: str = "author", suspended: bool = False):
    return await stored(
        db_session,
        models.User(
            username=username,
            email=f"{username}@example.com",
            password_hash="not a hash",
            role=role,
            suspended_at=datetime.now(UTC) if suspended else None,
        ),
    )


async def add_post(
    db_session, author: models.User, title: str, minutes_ago: int, published: bool = True
) -> models.Post:
    """A post dated `minutes_ago` (negative: to come, so scheduled when published)."""
    return await stored(
        db_session,
        models.Post(
            title=title,
            content=f"About {title}.",
            author=author,
            published=published,
            author_suspended=author.suspended_at is not None,
            date_posted=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        ),
    )


@pytest.fixture
async def blog(db_session) -> dict:
    """Three public posts by two authors; a draft, a scheduled post, a suspended author's
    post; and an editor who wrote nothing."""
    ada = await add_user(db_session, "ada_queries")
    bo = await add_user(db_session, "bo_queries")
    gone = await add_user(db_session, "gone_queries", suspended=True)
    editor = await add_user(db_session, "ed_queries", role="editor")
    posts = {
        "Old": await add_post(db_session, ada, "Old", 30),
        "Newer": await add_post(db_session, bo, "Newer", 20),
        "Newest": await add_post(db_session, ada, "Newest", 10),
        "Draft": await add_post(db_session, ada, "Draft", 5, published=False),
        "Scheduled": await add_post(db_session, ada, "Scheduled", -60),
        "Suspended": await add_post(db_session, gone, "Suspended", 1),
    }
    return {"ada": ada, "editor": editor, "posts": posts}


def titles(page) -> list[str]:
    return [post.title for post in page.posts]


async def visible_titles(db_session, viewer_id: int | None) -> set[str]:
    rows = await db_session.scalars(select(models.Post.title).where(visible_to(viewer_id)))
    return set(rows)


async def test_fetch_posts_page_returns_the_public_posts_newest_first_with_their_total(
    db_session, blog
):
    page = await fetch_posts_page(db_session, skip=0, limit=None)
    assert titles(page) == PUBLIC_NEWEST_FIRST
    assert (page.total, page.has_more, page.next_cursor) == (3, False, None)
    assert page.posts[0].author.username == "ada_queries"


async def test_fetch_posts_page_pages_on_by_skip_and_after_a_position(db_session, blog):
    first = await fetch_posts_page(db_session, skip=0, limit=2)
    assert titles(first) == ["Newest", "Newer"]
    assert first.total == 3 and first.has_more and first.next_cursor is not None
    last = first.posts[-1]
    after = Position(date_posted=last.date_posted, id=last.id)
    by_position = await fetch_posts_page(db_session, after=after, limit=2)
    by_skip = await fetch_posts_page(db_session, skip=2, limit=2)
    for page in (by_position, by_skip):
        assert titles(page) == ["Old"]
        assert page.total == 3 and not page.has_more and page.next_cursor is None


async def test_an_authors_own_list_holds_their_draft_and_scheduled_post(db_session, blog):
    ada = blog["ada"]
    own = await fetch_posts_page(db_session, limit=None, user_id=ada.id, viewer_id=ada.id)
    assert titles(own) == ["Scheduled", "Draft", "Newest", "Old"]
    assert own.total == 4
    public = await fetch_posts_page(db_session, limit=None, user_id=ada.id)
    assert titles(public) == ["Newest", "Old"]


async def test_visible_to_none_excludes_drafts_scheduled_posts_and_suspended_authors(
    db_session, blog
):
    assert await visible_titles(db_session, None) == set(PUBLIC_NEWEST_FIRST)


async def test_visible_to_an_author_adds_their_own_drafts_and_to_an_editor_everything(
    db_session, blog
):
    ada, editor = blog["ada"], blog["editor"]
    own = set(PUBLIC_NEWEST_FIRST) | {"Draft", "Scheduled"}
    assert await visible_titles(db_session, ada.id) == own
    assert await visible_titles(db_session, editor.id) == set(blog["posts"])


async def test_can_see_agrees_with_visible_to_on_a_loaded_post(db_session, blog):
    ada, editor = blog["ada"], blog["editor"]
    for viewer_id, sees_hidden in ((None, False), (ada.id, False), (editor.id, True)):
        seen = await visible_titles(db_session, viewer_id)
        for title, post in blog["posts"].items():
            assert can_see(post, viewer_id, sees_hidden) == (title in seen), (viewer_id, title)
    assert [title for title, post in blog["posts"].items() if is_scheduled(post)] == ["Scheduled"]


async def test_read_post_answers_only_a_viewer_who_sees_it(db_session, blog):
    draft, ada = blog["posts"]["Draft"], blog["ada"]
    assert await read_post(db_session, draft.id, None) is None
    post = await read_post(db_session, draft.id, ada.id)
    assert post is not None
    assert (post.title, post.published, post.comment_count) == ("Draft", False, 0)
