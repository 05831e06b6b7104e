"""What the comment routes read: who sees a comment, a page of a post's comments with their
replies, the moderation queue, and one comment as a user sees it.

Who sees a comment or a reply (under a post they see): everyone, when it is approved and its
author is not suspended; its author and the post's author, also while it is pending or hidden;
editors and admins, every comment (permissions.py, "see_hidden"). `seen_by_public` and
`seen_by_viewer` say it to PostgreSQL, `can_see_comment` of a comment already loaded. A reply is
listed under its top-level comment only, so it goes unseen with it.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Integer,
    Subquery,
    and_,
    bindparam,
    exists,
    func,
    join,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, joinedload

import models
from config import settings
from database import fetch_all
from permissions import can, roles_that_may
from queries import VISIBLE_TO_VIEWER, can_see, visible_to
from schemas import MAX_REPLIES_LISTED, CommentQueue, CommentResponse, PaginatedComments

Comment, User, Post = models.Comment, models.User, models.Post
# The replies of the comments a query reads, and their authors.
Reply, ReplyAuthor = aliased(Comment, name="reply"), aliased(User, name="reply_author")
APPROVED, PENDING, HIDDEN = "approved", "pending", "hidden"


def has_status(status_: str, comment: type[models.Comment] = Comment) -> ColumnElement[bool]:
    """Written into the SQL, not a parameter: a generic plan then still uses the partial index
    of pending comments (ix_comments_pending_date_posted)."""
    return comment.status == literal_column(f"'{status_}'")


OLDEST_FIRST = (Comment.date_posted, Comment.id)
VIEWER_ID = bindparam("viewer_id", type_=Integer)

# --- Who sees what ------------------------------------------------------------------------------


def seen_by_public(
    comment: type[models.Comment] = Comment, author: type[models.User] = User
) -> ColumnElement[bool]:
    """What everyone sees: approved comments by users who are not suspended."""
    return and_(has_status(APPROVED, comment), author.suspended_at.is_(None))


_viewer = aliased(User, name="viewer")
VIEWER_SEES_HIDDEN = exists().where(
    _viewer.id == VIEWER_ID,
    _viewer.suspended_at.is_(None),
    # Constants of the code, written into the SQL: fetch_all cannot expand a list parameter.
    _viewer.role.in_([literal_column(f"'{role}'") for role in roles_that_may("see_hidden")]),
)
POST_AUTHOR = select(Post.user_id).where(Post.id == bindparam("post_id")).scalar_subquery()


def seen_by_viewer(
    comment: type[models.Comment] = Comment,
    author: type[models.User] = User,
    post_author: ColumnElement[int] | InstrumentedAttribute[int] = POST_AUTHOR,
) -> ColumnElement[bool]:
    """What the viewer sees of the comments under a post by `post_author` (by default: the
    post the query names)."""
    return or_(
        VIEWER_SEES_HIDDEN,
        and_(
            author.suspended_at.is_(None),
            or_(
                has_status(APPROVED, comment),
                comment.user_id == VIEWER_ID,
                post_author == VIEWER_ID,
            ),
        ),
    )


SEEN_BY_PUBLIC, SEEN_BY_VIEWER = seen_by_public(), seen_by_viewer()


def can_see_comment(user: models.User, comment: models.Comment) -> bool:
    """`SEEN_BY_VIEWER` for a comment loaded with its post and author."""
    sees_hidden = can(user, "see_hidden")
    if not can_see(comment.post, user.id, sees_hidden):
        return False
    if sees_hidden:
        return True
    in_sight = comment.status == APPROVED or user.id in (comment.user_id, comment.post.user_id)
    return in_sight and comment.author.suspended_at is None


# --- Reading pages of comments ------------------------------------------------------------------

# Whether the post is there for this viewer, and whether the public sees it too.
VISIBLE_POST = select(visible_to(None)).where(Post.id == bindparam("post_id"), VISIBLE_TO_VIEWER)


async def post_visibility(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> bool | None:
    """Whether the public sees the post too, if the viewer sees it (None: they do not)."""
    rows = await fetch_all(db, VISIBLE_POST, {"post_id": post_id, "viewer_id": viewer_id})
    if not rows:
        return None
    public: bool = rows[0][0]
    return public


FIELDS = (
    "id",
    "post_id",
    "content",
    "date_posted",
    "status",
    "parent_id",
    "user_id",
    "username",
    "image_file",
    "role",
    "bio",
    "created_at",
    "suspended_at",
)


def columns_of(
    comment: type[models.Comment], author: type[models.User]
) -> tuple[ColumnElement[Any], ...]:
    """A comment's columns and its author's, named as FIELDS."""
    columns: tuple[InstrumentedAttribute[Any], ...] = (
        comment.id,
        comment.post_id,
        comment.content,
        comment.date_posted,
        comment.status,
        comment.parent_id,
        comment.user_id,
        author.username,
        author.image_file,
        author.role,
        author.bio,
        author.created_at,
        author.suspended_at,
    )
    return tuple(column.label(name) for column, name in zip(columns, FIELDS, strict=True))


COLUMNS = columns_of(Comment, User)


def comment_fields(row: tuple[Any, ...] | dict[str, Any], reply_count: int = 0) -> dict[str, Any]:
    """A row that starts with COLUMNS (or a reply read as JSON, keyed by FIELDS), as
    CommentResponse's fields."""
    values = tuple(row[name] for name in FIELDS) if isinstance(row, dict) else row
    id_, post_id, content, date_posted, status_, parent_id, user_id, *author = values[: len(FIELDS)]
    username, image_file, role, bio, created_at, suspended_at = author
    return {
        "id": id_,
        "post_id": post_id,
        "content": content,
        "date_posted": date_posted,
        "status": status_,
        "parent_id": parent_id,
        "reply_count": reply_count,
        "author": {
            "id": user_id,
            "username": username,
            "image_file": image_file,
            "role": role,
            "bio": bio,
            "created_at": created_at,
            "suspended_at": suspended_at,
        },
    }


REPLIES = join(Reply, ReplyAuthor, ReplyAuthor.id == Reply.user_id)


def reply_count(
    parent_id: ColumnElement[int] | InstrumentedAttribute[int], seen: ColumnElement[bool]
) -> ColumnElement[int]:
    """How many replies to `parent_id` meet `seen` (of `Reply` and `ReplyAuthor`)."""
    of_parent = and_(Reply.parent_id == parent_id, seen)
    return select(func.count()).select_from(REPLIES).where(of_parent).scalar_subquery()


def first_replies(comments: Subquery, seen: ColumnElement[bool]) -> ColumnElement[Any]:
    """The first MAX_REPLIES_LISTED replies to each of `comments` that meet `seen`, oldest
    first, as a JSON array of objects keyed by FIELDS (null when there are none)."""
    rows = (
        select(*columns_of(Reply, ReplyAuthor))
        .select_from(REPLIES)
        .where(Reply.parent_id == comments.c.id, seen)
        .order_by(Reply.date_posted, Reply.id)
        .limit(MAX_REPLIES_LISTED)
        .correlate(comments)  # a subquery in FROM correlates only when told to
        .subquery("first_replies")
    )
    in_order = aggregate_order_by(rows.table_valued(), rows.c.date_posted, rows.c.id)
    return select(func.json_agg(in_order)).scalar_subquery()


@dataclass(frozen=True)
class PagedQuery:
    """A page of comments whose rows end with its totals, and those totals alone (past the
    last page, where no row carries them). Each row holds COLUMNS, the reply count and, when
    `threaded`, the replies."""

    page: ClauseElement
    totals: ClauseElement
    threaded: bool = False


def counts_of(source: Any, *conditions: ColumnElement[bool]) -> list[ColumnElement[int]]:
    return [
        select(func.count()).select_from(source).where(condition).correlate(None).scalar_subquery()
        for condition in conditions
    ]


def paged(
    where: ColumnElement[bool],
    *also_count: ColumnElement[bool],
    posts: bool = False,
    replies_seen: ColumnElement[bool],
) -> PagedQuery:
    """The comments (with their authors, and their posts if `posts`) that meet `where`, oldest
    first, each with the count of its replies that meet `replies_seen`; with their count and a
    count of those that meet each of `also_count`."""
    source = join(Comment, User, User.id == Comment.user_id)
    if posts:
        source = source.join(Post, Post.id == Comment.post_id)
    counts = counts_of(source, where, *also_count)
    page = (
        select(*COLUMNS, reply_count(Comment.id, replies_seen), *counts)
        .select_from(source)
        .where(where)
        .order_by(*OLDEST_FIRST)
        .offset(bindparam("skip"))
        .limit(bindparam("limit"))
    )
    return PagedQuery(page, select(*counts))


def threads(
    where: ColumnElement[bool], *also_count: ColumnElement[bool], replies_seen: ColumnElement[bool]
) -> PagedQuery:
    """The top-level comments that meet `where`, oldest first, each with its replies that meet
    `replies_seen` (their count, and the first of them): one statement, however many there
    are. Counted as `paged` counts, `total` of the top-level comments."""
    source = join(Comment, User, User.id == Comment.user_id)
    top_level = and_(where, Comment.parent_id.is_(None))
    counts = counts_of(source, top_level, *also_count)
    page = (
        select(*COLUMNS, *(count.label(f"total_{n}") for n, count in enumerate(counts)))
        .select_from(source)
        .where(top_level)
        .order_by(*OLDEST_FIRST)
        .offset(bindparam("skip"))
        .limit(bindparam("limit"))
        .subquery("page")
    )
    comment_columns, totals = list(page.c)[: len(COLUMNS)], list(page.c)[len(COLUMNS) :]
    with_replies = select(
        *comment_columns,
        reply_count(page.c.id, replies_seen),
        first_replies(page, replies_seen),
        *totals,
    ).order_by(page.c.date_posted, page.c.id)
    return PagedQuery(with_replies, select(*counts), threaded=True)


async def fetch_paged(
    db: AsyncConnection | AsyncSession,
    query: PagedQuery,
    params: dict[str, Any],
    *,
    skip: int,
    limit: int,
) -> tuple[dict[str, Any], tuple[int, ...]]:
    """One page (PaginatedComments' or CommentQueue's fields) and its totals (the first is the
    page's): one query, two past the last page."""
    rows = await fetch_all(
        db, query.page, {**params, "skip": skip, "limit": limit}, inline=("limit", "skip")
    )
    width = len(COLUMNS) + 1 + query.threaded  # the comment, its reply count, its replies
    totals = tuple(rows[0][width:] if rows else (await fetch_all(db, query.totals, params))[0])
    comments = [comment_fields(row, reply_count=row[len(COLUMNS)]) for row in rows]
    if query.threaded:
        for comment, row in zip(comments, rows, strict=True):
            comment["replies"] = [comment_fields(reply) for reply in row[len(COLUMNS) + 1] or ()]
    has_more = skip + len(comments) < totals[0]
    page = {"comments": comments, "total": totals[0], "skip": skip, "limit": limit}
    return {**page, "has_more": has_more}, totals


ON_POST = Comment.post_id == bindparam("post_id")
# What the public sees of a post; what a viewer sees, with a count of every comment and reply
# they see and of those the public sees (the same: the public's answer is the viewer's too).
PUBLIC_COMMENTS = threads(
    and_(ON_POST, SEEN_BY_PUBLIC), replies_seen=seen_by_public(Reply, ReplyAuthor)
)
VIEWER_COMMENTS = threads(
    and_(ON_POST, SEEN_BY_VIEWER),
    and_(ON_POST, SEEN_BY_VIEWER),
    and_(ON_POST, SEEN_BY_PUBLIC),
    replies_seen=seen_by_viewer(Reply, ReplyAuthor),
)


async def fetch_comments(
    db: AsyncConnection | AsyncSession,
    post_id: int,
    viewer_id: int | None,
    *,
    skip: int,
    limit: int,
) -> tuple[PaginatedComments, bool]:
    """One page of a post's comments as `viewer_id` sees them (None: the public), and whether
    that is more than the public sees (then the answer is theirs only)."""
    if viewer_id is None:
        page, _ = await fetch_paged(
            db, PUBLIC_COMMENTS, {"post_id": post_id}, skip=skip, limit=limit
        )
        return PaginatedComments.model_validate(page), False
    params = {"post_id": post_id, "viewer_id": viewer_id}
    page, (_, seen, public) = await fetch_paged(db, VIEWER_COMMENTS, params, skip=skip, limit=limit)
    return PaginatedComments.model_validate(page), seen != public


async def fetch_comments_page(
    db: AsyncConnection | AsyncSession, post_id: int, *, skip: int, limit: int
) -> PaginatedComments:
    """One page of a post's comments with their authors and the total, as the public sees
    them (the post's page: `fetch_comments` gives a viewer's own, and says when it is)."""
    page, _ = await fetch_comments(db, post_id, None, skip=skip, limit=limit)
    return page


# --- The moderation queue -----------------------------------------------------------------------

IS_PENDING = has_status(PENDING)
# The replies a queued comment has, as its moderator sees them (`Post`: the one it is under).
QUEUED_REPLIES_SEEN = seen_by_viewer(Reply, ReplyAuthor, post_author=Post.user_id)
# Editors and admins: every pending comment or reply under a post they see.
EVERY_PENDING = paged(
    and_(IS_PENDING, VISIBLE_TO_VIEWER), posts=True, replies_seen=QUEUED_REPLIES_SEEN
)
# Anyone else: those under their own posts, by users who are not suspended.
PENDING_UNDER_OWN_POSTS = paged(
    and_(IS_PENDING, Post.user_id == VIEWER_ID, User.suspended_at.is_(None)),
    posts=True,
    replies_seen=QUEUED_REPLIES_SEEN,
)


async def fetch_pending(
    db: AsyncConnection | AsyncSession, viewer_id: int, *, every: bool, skip: int, limit: int
) -> CommentQueue:
    """A page of the moderation queue: every pending comment and reply under a post the viewer
    sees (`every`: an editor's or admin's), else those under the viewer's own posts."""
    query = EVERY_PENDING if every else PENDING_UNDER_OWN_POSTS
    page, _ = await fetch_paged(db, query, {"viewer_id": viewer_id}, skip=skip, limit=limit)
    return CommentQueue.model_validate(page)


# --- One comment --------------------------------------------------------------------------------


async def status_of_new_comment(db: AsyncSession, user: models.User) -> str:
    """COMMENT_MODERATION: off, approved; first, pending until one of the user's comments has
    been approved (as WordPress does); all, pending."""
    if settings.comment_moderation == "off":
        return APPROVED
    if settings.comment_moderation == "first":
        approved_before = exists().where(Comment.user_id == user.id, Comment.status == APPROVED)
        if await db.scalar(select(approved_before)):
            return APPROVED
    return PENDING


def comment_response(comment: models.Comment, reply_count: int = 0) -> CommentResponse:
    return CommentResponse.model_validate(
        {
            "id": comment.id,
            "post_id": comment.post_id,
            "content": comment.content,
            "date_posted": comment.date_posted,
            "author": comment.author,
            "status": comment.status,
            "parent_id": comment.parent_id,
            "reply_count": reply_count,
        }
    )


REPLIES_SEEN_BY_VIEWER = (
    select(func.count())
    .select_from(REPLIES)
    .where(Reply.parent_id == bindparam("comment_id"), seen_by_viewer(Reply, ReplyAuthor))
)


async def response_for(
    db: AsyncSession, comment: models.Comment, user: models.User
) -> CommentResponse:
    """A comment as `user` sees it, with the count of its replies they see."""
    if comment.parent_id is not None:  # a reply: replies have none
        return comment_response(comment)
    params = {"comment_id": comment.id, "post_id": comment.post_id, "viewer_id": user.id}
    count: int = (await fetch_all(db, REPLIES_SEEN_BY_VIEWER, params))[0][0]
    return comment_response(comment, reply_count=count)


async def comment_seen_by(
    db: AsyncSession, comment_id: int, user: models.User
) -> models.Comment | None:
    """The comment, with its post and author, if `user` sees it, as the database has it now
    (not as an earlier request of this session left it)."""
    comment = await db.get(
        Comment, comment_id, options=[joinedload(Comment.post)], populate_existing=True
    )
    return comment if comment is not None and can_see_comment(user, comment) else None
