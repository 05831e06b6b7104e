"""JSON API for comments: plain text under a post, oldest first, replies one level deep under
their top-level comment, and their moderation. What the routes read, and who sees a comment:
comment_queries.py."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, PRIVATE_ROUTE, SCOPE_KEY, Conditional, no_store
from comment_queries import (
    APPROVED,
    HIDDEN,
    PENDING,
    comment_response,
    comment_seen_by,
    fetch_comments,
    fetch_pending,
    post_visibility,
    response_for,
    status_of_new_comment,
)
from config import settings
from database import ReadDep, SessionDep
from permissions import can, must_verify_first
from ratelimit import comment_limit
from routers.posts import post_not_found
from schemas import (
    COMMENTS_PER_PAGE,
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
Comment, Report = models.Comment, models.CommentReport


async def viewer_of_cached_list(request: Request, viewer_id: ViewerId) -> int | None:
    """The viewer of a cached list whose answer may be their own: the tags this worker
    remembers for the URL (caching.py) are then the viewer's, so a tag the public was sent
    never answers a viewer who sees more with a 304 (nor the other way round)."""
    state = request.scope.get(SCOPE_KEY)
    if viewer_id is not None and isinstance(state, Conditional):
        state.url = f"{state.url}:{viewer_id}"
    return viewer_id


CachedViewerId = Annotated[int | None, Depends(viewer_of_cached_list)]


async def ensure_post_visible(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> bool:
    """A post's comments exist for whoever sees the post (queries.visible_to); else a 404.
    Whether the public sees the post too (else: a draft seen by its author, or a post only
    editors and admins see)."""
    public = await post_visibility(db, post_id, viewer_id)
    if public is None:
        raise post_not_found()
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
    every = can(user, "see_hidden")
    return await fetch_pending(db, user.id, every=every, skip=skip, limit=limit)


# --- Writing and changing one comment -----------------------------------------------------------


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


def comment_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.COMMENT_NOT_FOUND)


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
