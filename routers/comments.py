"""JSON API for comments: plain text under a post, oldest first, replies one level deep under
their top-level comment, and their moderation.

Who sees a comment or a reply (under a post they see): everyone, when it is approved and its
author is not suspended; its author and the post's author, also while it is pending or hidden;
editors and admins, every comment (permissions.py, "see_hidden"). `seen_by_public` and
`seen_by_viewer` say it to PostgreSQL, `can_see_comment` of a comment already loaded. A reply is
listed under its top-level comment only, so it goes unseen with it.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Integer,
    Subquery,
    and_,
    bindparam,
    delete,
    exists,
    func,
    join,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, joinedload
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, PRIVATE_ROUTE, SCOPE_KEY, Conditional, no_store
from config import settings
from database import ReadDep, SessionDep, fetch_all
from permissions import can, must_verify_first, roles_that_may
from queries import VISIBLE_TO_VIEWER, can_see, visible_to
from ratelimit import comment_limit
from routers.posts import post_not_found
from schemas import (
    COMMENTS_PER_PAGE,
    MAX_REPLIES_LISTED,
    CommentCreate,
    CommentLimit,
    CommentQueue,
    CommentResponse,
    CommentUpdate,
    Detail,
    Message,
    MessageResponse,
    PaginatedComments,
    ResourceId,
    Skip,
    errors,
)

router = APIRouter(prefix="/api", tags=["comments"], responses=errors(503))

Comment, User, Post, Report = models.Comment, models.User, models.Post, models.CommentReport
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


async def viewer_of_cached_list(request: Request, viewer_id: ViewerId) -> int | None:
    """The viewer of a cached list whose answer may be their own: the tags this worker
    remembers for the URL (caching.py) are then the viewer's, so a tag the public was sent
    never answers a viewer who sees more with a 304 (nor the other way round)."""
    state = request.scope.get(SCOPE_KEY)
    if viewer_id is not None and isinstance(state, Conditional):
        state.url = f"{state.url}:{viewer_id}"
    return viewer_id


CachedViewerId = Annotated[int | None, Depends(viewer_of_cached_list)]

# --- Reading pages of comments ------------------------------------------------------------------

# Whether the post is there for this viewer, and whether the public sees it too.
VISIBLE_POST = select(visible_to(None)).where(Post.id == bindparam("post_id"), VISIBLE_TO_VIEWER)


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


async def ensure_post_visible(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> bool:
    """A post's comments exist for whoever sees the post (queries.visible_to); else a 404.
    Whether the public sees the post too (else: a draft seen by its author, or a post only
    editors and admins see)."""
    rows = await fetch_all(db, VISIBLE_POST, {"post_id": post_id, "viewer_id": viewer_id})
    if not rows:
        raise post_not_found()
    public: bool = rows[0][0]
    return public


@router.get(
    "/posts/{post_id}/comments",
    response_model=PaginatedComments,
    responses=errors(404),
    dependencies=[CACHED],
)
async def list_comments(
    post_id: ResourceId,
    viewer_id: CachedViewerId,
    db: ReadDep,
    response: Response,
    skip: Skip = 0,
    limit: CommentLimit = COMMENTS_PER_PAGE,
) -> PaginatedComments:
    """A post's top-level comments, oldest first, each with its replies, oldest first
    (pending and hidden ones: for who may see them)."""
    public_post = await ensure_post_visible(db, post_id, viewer_id)
    page, viewers_own = await fetch_comments(db, post_id, viewer_id, skip=skip, limit=limit)
    if viewers_own or not public_post:
        no_store(response)  # what this viewer alone sees stays out of shared caches
    return page


# --- The moderation queue -----------------------------------------------------------------------

# The one queue so far: another status would be a 422, not everything unfiltered.
QueueStatus = Annotated[Literal["pending"], Query(alias="status")]
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


@router.get(
    "/comments",
    response_model=CommentQueue,
    responses=errors(401),
    dependencies=[PRIVATE_ROUTE],
)
async def list_pending_comments(
    user: CurrentUser,
    db: SessionDep,
    skip: Skip = 0,
    limit: CommentLimit = COMMENTS_PER_PAGE,
    status_: QueueStatus = "pending",
) -> CommentQueue:
    """The comments and replies waiting for you to approve or hide them, oldest first."""
    query = EVERY_PENDING if can(user, "see_hidden") else PENDING_UNDER_OWN_POSTS
    page, _ = await fetch_paged(db, query, {"viewer_id": user.id}, skip=skip, limit=limit)
    return CommentQueue.model_validate(page)


# --- Writing and changing one comment -----------------------------------------------------------


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


@router.post(
    "/posts/{post_id}/comments",
    response_model=CommentResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403, 404, 413, 429),
    dependencies=[Depends(comment_limit)],
)
async def create_comment(
    post_id: ResourceId, data: CommentCreate, user: CurrentUser, db: SessionDep
) -> CommentResponse:
    """Comment on a post, or reply to one of its comments (`parent_id`), as the current user
    (held for moderation as COMMENT_MODERATION says)."""
    if must_verify_first(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.VERIFY_EMAIL_FIRST)
    await ensure_post_visible(db, post_id, user.id)
    parent_id = None
    if data.parent_id is not None:
        parent_id = await thread_of(db, post_id, data.parent_id, user)
    comment_status = await status_of_new_comment(db, user)
    comment = Comment(
        post_id=post_id,
        parent_id=parent_id,
        content=data.content,
        author=user,
        status=comment_status,
    )
    db.add(comment)
    try:
        await db.commit()
    except IntegrityError:  # the comment replied to was deleted meanwhile, or its post
        await db.rollback()
        raise (post_not_found() if parent_id is None else comment_not_found()) from None
    return comment_response(comment)


async def thread_of(db: AsyncSession, post_id: int, parent_id: int, user: models.User) -> int:
    """The top-level comment a reply to `parent_id` goes under: that comment, or the one it
    replies to (replies are one level deep). 404 unless it is under this post and the user
    sees it (and, for a reply, its top-level comment)."""
    parent = await comment_seen_by(db, parent_id, user)
    if parent is not None and parent.parent_id is not None:
        parent = await comment_seen_by(db, parent.parent_id, user)
    if parent is None or parent.post_id != post_id:
        raise comment_not_found()
    return parent.id


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


def comment_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.COMMENT_NOT_FOUND)


async def comment_seen_by(
    db: AsyncSession, comment_id: int, user: models.User
) -> models.Comment | None:
    """The comment, with its post and author, if `user` sees it, as the database has it now
    (not as an earlier request of this session left it)."""
    comment = await db.get(
        Comment, comment_id, options=[joinedload(Comment.post)], populate_existing=True
    )
    return comment if comment is not None and can_see_comment(user, comment) else None


async def get_comment_or_404(
    comment_id: ResourceId, db: SessionDep, user: CurrentUser
) -> models.Comment:
    """A comment the current user can see, with its post and author."""
    comment = await comment_seen_by(db, comment_id, user)
    if comment is None:
        raise comment_not_found()
    return comment


CommentDep = Annotated[models.Comment, Depends(get_comment_or_404)]


async def commit_unless_gone(db: AsyncSession) -> None:
    """A comment deleted by a concurrent request between our read and our write is a 404."""
    try:
        await db.commit()
    except StaleDataError:
        await db.rollback()
        raise comment_not_found() from None


@router.patch(
    "/comments/{comment_id}",
    response_model=CommentResponse,
    responses=errors(400, 401, 403, 404, 413),
)
async def update_comment(
    data: CommentUpdate, comment: CommentDep, user: CurrentUser, db: SessionDep
) -> CommentResponse:
    """Change your comment's text (a reply stays where it is)."""
    if not can(user, "edit_comment", comment):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.UPDATE_COMMENT_FORBIDDEN)
    comment.content = data.content
    await commit_unless_gone(db)
    return await response_for(db, comment, user)


@router.delete(
    "/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, 404),
)
async def delete_comment(comment: CommentDep, user: CurrentUser, db: SessionDep) -> None:
    """Delete a comment and its replies: its author, the author of the post it is under,
    editors and admins."""
    if not can(user, "delete_comment", comment):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.DELETE_COMMENT_FORBIDDEN)
    await db.delete(comment)
    await commit_unless_gone(db)


# --- Moderating one comment ---------------------------------------------------------------------


async def decide(
    comment: models.Comment, user: models.User, db: AsyncSession, decision: str
) -> CommentResponse:
    """Approve or hide a comment, for who may moderate it; the decision answers the reports
    made so far (later ones count anew)."""
    if not can(user, "moderate_comment", comment):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.MODERATE_COMMENT_FORBIDDEN)
    await db.execute(delete(Report).where(Report.comment_id == comment.id))
    comment.status = decision
    await commit_unless_gone(db)
    return await response_for(db, comment, user)


@router.post(
    "/comments/{comment_id}/approve",
    response_model=CommentResponse,
    responses=errors(401, 403, 404),
)
async def approve_comment(
    comment: CommentDep, user: CurrentUser, db: SessionDep
) -> CommentResponse:
    """Show a pending or hidden comment to everyone: the post's author, editors and admins."""
    return await decide(comment, user, db, APPROVED)


@router.post(
    "/comments/{comment_id}/hide",
    response_model=CommentResponse,
    responses=errors(401, 403, 404),
)
async def hide_comment(comment: CommentDep, user: CurrentUser, db: SessionDep) -> CommentResponse:
    """Hide a comment from everyone but its author and moderators: the post's author, editors
    and admins."""
    return await decide(comment, user, db, HIDDEN)


@router.post(
    "/comments/{comment_id}/report",
    response_model=MessageResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(401, 404),
)
async def report_comment(comment: CommentDep, user: CurrentUser, db: SessionDep) -> MessageResponse:
    """Report a comment: once COMMENT_REPORT_THRESHOLD users have, it waits for a moderator."""
    # The comment's reports are taken one at a time: each counts every report before it.
    locked = select(Comment.status).where(Comment.id == comment.id).with_for_update()
    current_status = await db.scalar(locked)
    if current_status is None:  # deleted meanwhile
        raise comment_not_found()
    report = insert(Report).values(comment_id=comment.id, user_id=user.id)
    added = await db.scalar(report.on_conflict_do_nothing().returning(Report.user_id))
    if added is not None and current_status == APPROVED:
        reports = select(func.count()).where(Report.comment_id == Comment.id).scalar_subquery()
        enough = reports >= settings.comment_report_threshold
        await db.execute(
            update(Comment).where(Comment.id == comment.id, enough).values(status=PENDING)
        )
    await db.commit()
    return MessageResponse(message=Message.COMMENT_REPORTED)
