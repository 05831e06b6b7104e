"""JSON API for comments: plain text under a post, oldest first, and their moderation.

Who sees a comment (under a post they see): everyone, when it is approved and its author is not
suspended; its author and the post's author, also while it is pending or hidden; editors and
admins, every comment (permissions.py, "see_hidden"). `SEEN_BY_PUBLIC` and `SEEN_BY_VIEWER`
say it to PostgreSQL, `can_see_comment` of a comment already loaded.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Integer,
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
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased, joinedload
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, PRIVATE_ROUTE, SCOPE_KEY, Conditional, no_store
from config import settings
from database import ReadDep, SessionDep, fetch_all
from permissions import can, must_verify_first, roles_that_may
from ratelimit import comment_limit
from routers.posts import VISIBLE_TO_VIEWER, can_see, post_not_found, visible_to
from schemas import (
    COMMENTS_PER_PAGE,
    CommentCreate,
    CommentLimit,
    CommentResponse,
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
APPROVED, PENDING, HIDDEN = "approved", "pending", "hidden"


def has_status(status_: str) -> ColumnElement[bool]:
    """Written into the SQL, not a parameter: a generic plan then still uses the partial index
    of pending comments (ix_comments_pending_date_posted)."""
    return Comment.status == literal_column(f"'{status_}'")


OLDEST_FIRST = (Comment.date_posted, Comment.id)
VIEWER_ID = bindparam("viewer_id", type_=Integer)

# --- Who sees what ------------------------------------------------------------------------------

# What everyone sees: approved comments by users who are not suspended (`User`: the author).
SEEN_BY_PUBLIC = and_(has_status(APPROVED), User.suspended_at.is_(None))
_viewer = aliased(User, name="viewer")
VIEWER_SEES_HIDDEN = exists().where(
    _viewer.id == VIEWER_ID,
    _viewer.suspended_at.is_(None),
    # Constants of the code, written into the SQL: fetch_all cannot expand a list parameter.
    _viewer.role.in_([literal_column(f"'{role}'") for role in roles_that_may("see_hidden")]),
)
POST_AUTHOR = select(Post.user_id).where(Post.id == bindparam("post_id")).scalar_subquery()
# What the viewer of one post's comments sees.
SEEN_BY_VIEWER = or_(
    VIEWER_SEES_HIDDEN,
    and_(
        User.suspended_at.is_(None),
        or_(has_status(APPROVED), Comment.user_id == VIEWER_ID, POST_AUTHOR == VIEWER_ID),
    ),
)


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
COLUMNS = (
    Comment.id,
    Comment.post_id,
    Comment.content,
    Comment.date_posted,
    Comment.status,
    Comment.user_id,
    User.username,
    User.image_file,
    User.role,
    User.suspended_at,
)


def comment_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row that starts with COLUMNS, as CommentResponse's fields."""
    id_, post_id, content, date_posted, status_, user_id, *author = row[: len(COLUMNS)]
    username, image_file, role, suspended_at = author
    return {
        "id": id_,
        "post_id": post_id,
        "content": content,
        "date_posted": date_posted,
        "status": status_,
        "author": {
            "id": user_id,
            "username": username,
            "image_file": image_file,
            "role": role,
            "suspended_at": suspended_at,
        },
    }


@dataclass(frozen=True)
class PagedQuery:
    """A page of comments whose rows end with its totals, and those totals alone (past the
    last page, where no row carries them)."""

    page: ClauseElement
    totals: ClauseElement


def paged(
    where: ColumnElement[bool], *also_count: ColumnElement[bool], posts: bool = False
) -> PagedQuery:
    """The comments (with their authors, and their posts if `posts`) that meet `where`, oldest
    first, with their count and a count of those that meet each of `also_count`."""
    source = join(Comment, User, User.id == Comment.user_id)
    if posts:
        source = source.join(Post, Post.id == Comment.post_id)
    counts = [
        select(func.count()).select_from(source).where(condition).correlate(None).scalar_subquery()
        for condition in (where, *also_count)
    ]
    page = (
        select(*COLUMNS, *counts)
        .select_from(source)
        .where(where)
        .order_by(*OLDEST_FIRST)
        .offset(bindparam("skip"))
        .limit(bindparam("limit"))
    )
    return PagedQuery(page, select(*counts))


async def fetch_paged(
    db: AsyncConnection | AsyncSession,
    query: PagedQuery,
    params: dict[str, Any],
    *,
    skip: int,
    limit: int,
) -> tuple[PaginatedComments, tuple[int, ...]]:
    """One page and its totals (the first is the page's): one query, two past the last page."""
    rows = await fetch_all(
        db, query.page, {**params, "skip": skip, "limit": limit}, inline=("limit", "skip")
    )
    totals = tuple(
        rows[0][len(COLUMNS) :] if rows else (await fetch_all(db, query.totals, params))[0]
    )
    comments = [comment_fields(row) for row in rows]
    page = {"comments": comments, "total": totals[0], "skip": skip, "limit": limit}
    has_more = skip + len(comments) < totals[0]
    return PaginatedComments.model_validate({**page, "has_more": has_more}), totals


ON_POST = Comment.post_id == bindparam("post_id")
# What the public sees of a post; what a viewer sees, counted with what the public sees.
PUBLIC_COMMENTS = paged(and_(ON_POST, SEEN_BY_PUBLIC))
VIEWER_COMMENTS = paged(and_(ON_POST, SEEN_BY_VIEWER), and_(ON_POST, SEEN_BY_PUBLIC))


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
        return page, False
    params = {"post_id": post_id, "viewer_id": viewer_id}
    page, (seen, public) = await fetch_paged(db, VIEWER_COMMENTS, params, skip=skip, limit=limit)
    return page, seen != public


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
    """A post's comments exist for whoever sees the post (posts.visible_to); else a 404.
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
    """A post's comments, oldest first (pending and hidden ones: for who may see them)."""
    public_post = await ensure_post_visible(db, post_id, viewer_id)
    page, viewers_own = await fetch_comments(db, post_id, viewer_id, skip=skip, limit=limit)
    if viewers_own or not public_post:
        no_store(response)  # what this viewer alone sees stays out of shared caches
    return page


# --- The moderation queue -----------------------------------------------------------------------

# The one queue so far: another status would be a 422, not everything unfiltered.
QueueStatus = Annotated[Literal["pending"], Query(alias="status")]
IS_PENDING = has_status(PENDING)
# Editors and admins: every pending comment under a post they see.
EVERY_PENDING = paged(and_(IS_PENDING, VISIBLE_TO_VIEWER), posts=True)
# Anyone else: those under their own posts, by users who are not suspended.
PENDING_UNDER_OWN_POSTS = paged(
    and_(IS_PENDING, Post.user_id == VIEWER_ID, User.suspended_at.is_(None)), posts=True
)


@router.get(
    "/comments",
    response_model=PaginatedComments,
    responses=errors(401),
    dependencies=[PRIVATE_ROUTE],
)
async def list_pending_comments(
    user: CurrentUser,
    db: SessionDep,
    skip: Skip = 0,
    limit: CommentLimit = COMMENTS_PER_PAGE,
    status_: QueueStatus = "pending",
) -> PaginatedComments:
    """The comments waiting for you to approve or hide them, oldest first."""
    query = EVERY_PENDING if can(user, "see_hidden") else PENDING_UNDER_OWN_POSTS
    page, _ = await fetch_paged(db, query, {"viewer_id": user.id}, skip=skip, limit=limit)
    return page


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
    """Comment on a post as the current user (held for moderation as COMMENT_MODERATION says)."""
    if must_verify_first(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.VERIFY_EMAIL_FIRST)
    await ensure_post_visible(db, post_id, user.id)
    comment_status = await status_of_new_comment(db, user)
    comment = Comment(post_id=post_id, content=data.content, author=user, status=comment_status)
    db.add(comment)
    await db.commit()
    return comment_response(comment)


def comment_response(comment: models.Comment) -> CommentResponse:
    return CommentResponse.model_validate(
        {
            "id": comment.id,
            "post_id": comment.post_id,
            "content": comment.content,
            "date_posted": comment.date_posted,
            "author": comment.author,
            "status": comment.status,
        }
    )


def comment_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.COMMENT_NOT_FOUND)


async def get_comment_or_404(
    comment_id: ResourceId, db: SessionDep, user: CurrentUser
) -> models.Comment:
    """A comment the current user can see, with its post and author, as the database has it
    now (not as an earlier request of this session left it)."""
    comment = await db.get(
        Comment, comment_id, options=[joinedload(Comment.post)], populate_existing=True
    )
    if comment is None or not can_see_comment(user, comment):
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
    data: CommentCreate, comment: CommentDep, user: CurrentUser, db: SessionDep
) -> CommentResponse:
    """Change your comment's text."""
    if not can(user, "edit_comment", comment):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.UPDATE_COMMENT_FORBIDDEN)
    comment.content = data.content
    await commit_unless_gone(db)
    return comment_response(comment)


@router.delete(
    "/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, 404),
)
async def delete_comment(comment: CommentDep, user: CurrentUser, db: SessionDep) -> None:
    """Delete a comment: its author, the author of the post it is under, editors and admins."""
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
    return comment_response(comment)


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
