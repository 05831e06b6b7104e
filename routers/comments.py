"""JSON API for comments: plain text under a post, oldest first."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, no_store
from database import ReadDep, SessionDep, fetch_all
from ratelimit import comment_limit
from routers.posts import VISIBLE_TO_VIEWER, can_see, post_not_found
from schemas import (
    COMMENTS_PER_PAGE,
    CommentCreate,
    CommentLimit,
    CommentResponse,
    Detail,
    PaginatedComments,
    ResourceId,
    Skip,
    errors,
)

router = APIRouter(prefix="/api", tags=["comments"], responses=errors(503))

Comment, User = models.Comment, models.User
OLDEST_FIRST = (Comment.date_posted, Comment.id)

VISIBLE_POST = select(models.Post.published).where(
    models.Post.id == bindparam("post_id"), VISIBLE_TO_VIEWER
)
COUNT = select(func.count()).where(Comment.post_id == bindparam("post_id"))
PAGE = (
    select(
        Comment.id,
        Comment.post_id,
        Comment.content,
        Comment.date_posted,
        Comment.user_id,
        User.username,
        User.image_file,
        COUNT.scalar_subquery().label("total"),
    )
    .join(User, User.id == Comment.user_id)
    .where(Comment.post_id == bindparam("post_id"))
    .order_by(*OLDEST_FIRST)
    .offset(bindparam("skip"))
    .limit(bindparam("limit"))
)


async def ensure_post_visible(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> bool:
    """A post's comments exist for whoever sees the post (posts.visible_to); else a 404.
    Whether the post is published (else: a draft, seen by its author)."""
    rows = await fetch_all(db, VISIBLE_POST, {"post_id": post_id, "viewer_id": viewer_id})
    if not rows:
        raise post_not_found()
    published: bool = rows[0][0]
    return published


async def fetch_comments_page(
    db: AsyncConnection | AsyncSession, post_id: int, *, skip: int, limit: int
) -> PaginatedComments:
    """One page of a post's comments with their authors and the total: one query (two past
    the last page)."""
    params = {"post_id": post_id, "skip": skip, "limit": limit}
    rows = await fetch_all(db, PAGE, params, inline=("limit", "skip"))
    total: int = rows[0][-1] if rows else (await db.scalar(COUNT, params) or 0)
    comments = [
        {
            "id": id_,
            "post_id": post_id,
            "content": content,
            "date_posted": date_posted,
            "author": {"id": user_id, "username": username, "image_file": image_file},
        }
        for id_, post_id, content, date_posted, user_id, username, image_file, _ in rows
    ]
    return PaginatedComments.model_validate(
        {
            "comments": comments,
            "total": total,
            "skip": skip,
            "limit": limit,
            "has_more": skip + len(comments) < total,
        }
    )


@router.get(
    "/posts/{post_id}/comments",
    response_model=PaginatedComments,
    responses=errors(404),
    dependencies=[CACHED],
)
async def list_comments(
    post_id: ResourceId,
    viewer_id: ViewerId,
    db: ReadDep,
    response: Response,
    skip: Skip = 0,
    limit: CommentLimit = COMMENTS_PER_PAGE,
) -> PaginatedComments:
    """A post's comments, oldest first."""
    if not await ensure_post_visible(db, post_id, viewer_id):
        no_store(response)  # a draft's comments: its author's only
    return await fetch_comments_page(db, post_id, skip=skip, limit=limit)


@router.post(
    "/posts/{post_id}/comments",
    response_model=CommentResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 404, 413, 429),
    dependencies=[Depends(comment_limit)],
)
async def create_comment(
    post_id: ResourceId, data: CommentCreate, user: CurrentUser, db: SessionDep
) -> CommentResponse:
    """Comment on a post as the current user."""
    await ensure_post_visible(db, post_id, user.id)
    comment = Comment(post_id=post_id, content=data.content, author=user)
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
        }
    )


def comment_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.COMMENT_NOT_FOUND)


async def get_comment_or_404(
    comment_id: ResourceId, db: SessionDep, user: CurrentUser
) -> models.Comment:
    """A comment the current user can see (its post is visible to them), with its post."""
    comment = await db.get(Comment, comment_id, options=[joinedload(Comment.post)])
    if comment is None or not can_see(comment.post, user.id):
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
    if comment.user_id != user.id:
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
    """Delete a comment: its author, or the author of the post it is under."""
    if user.id not in (comment.user_id, comment.post.user_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.DELETE_COMMENT_FORBIDDEN)
    await db.delete(comment)
    await commit_unless_gone(db)
