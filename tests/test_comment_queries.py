"""comment_queries.py without HTTP: a post's comments as the public and as a viewer see them,
the moderation queue, and whether a post is there for a viewer."""

from datetime import UTC, datetime, timedelta

import pytest

import models
from comment_queries import fetch_comments, fetch_comments_page, fetch_pending, post_visibility
from tests.test_queries import add_post, add_user, stored

pytestmark = pytest.mark.anyio


async def add_comment(
    db_session, post, author, content: str, minutes_ago: int, status="approved", parent=None
) -> models.Comment:
    return await stored(
        db_session,
        models.Comment(
            post_id=post.id,
            author=author,
            content=content,
            status=status,
            parent_id=parent.id if parent else None,
            date_posted=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        ),
    )


@pytest.fixture
async def thread(db_session) -> dict:
    """A post by its author; under it an approved comment with an approved and a pending
    reply, a pending comment, and an approved one by a suspended user."""
    author = await add_user(db_session, "ann_comments")
    reader = await add_user(db_session, "rey_comments")
    gone = await add_user(db_session, "gus_comments", suspended=True)
    post = await add_post(db_session, author, "Commented", 60)
    first = await add_comment(db_session, post, reader, "First", 50)
    await add_comment(db_session, post, author, "Reply", 40, parent=first)
    await add_comment(db_session, post, reader, "Held reply", 30, "pending", parent=first)
    await add_comment(db_session, post, reader, "Held", 20, "pending")
    await add_comment(db_session, post, gone, "Unseen", 10)
    return {"post": post, "author": author, "reader": reader}


def contents(comments) -> list[str]:
    return [comment.content for comment in comments]


async def test_the_public_page_holds_approved_comments_of_users_not_suspended(db_session, thread):
    page = await fetch_comments_page(db_session, thread["post"].id, skip=0, limit=50)
    assert contents(page.comments) == ["First"]
    assert page.total == 1 and not page.has_more
    (first,) = page.comments
    assert (first.reply_count, contents(first.replies)) == (1, ["Reply"])


async def test_the_posts_author_also_sees_what_waits_under_it(db_session, thread):
    post, author = thread["post"], thread["author"]
    page, viewers_own = await fetch_comments(db_session, post.id, author.id, skip=0, limit=50)
    assert contents(page.comments) == ["First", "Held"]
    assert contents(page.comments[0].replies) == ["Reply", "Held reply"]
    assert viewers_own is True


async def test_the_queue_of_a_posts_author_holds_its_pending_comments_and_replies(
    db_session, thread
):
    queue = await fetch_pending(db_session, thread["author"].id, every=False, skip=0, limit=50)
    assert contents(queue.comments) == ["Held reply", "Held"]
    assert queue.total == 2
    nobodys = await fetch_pending(db_session, thread["reader"].id, every=False, skip=0, limit=50)
    assert nobodys.comments == [] and nobodys.total == 0


async def test_post_visibility_says_whether_the_viewer_and_the_public_see_the_post(db_session):
    author = await add_user(db_session, "vic_comments")
    public = await add_post(db_session, author, "Out", 10)
    draft = await add_post(db_session, author, "Draft", 5, published=False)
    assert await post_visibility(db_session, public.id, None) is True
    assert await post_visibility(db_session, draft.id, None) is None
    assert await post_visibility(db_session, draft.id, author.id) is False
