"""JSON API for posts."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser
from config import settings
from database import SessionDep
from schemas import (
    Detail,
    Limit,
    PaginatedPosts,
    PostCreate,
    PostResponse,
    PostUpdate,
    ResourceId,
    Skip,
    errors,
)

router = APIRouter(prefix="/api/posts", tags=["posts"])

NEWEST_FIRST = (models.Post.date_posted.desc(), models.Post.id.desc())


async def fetch_posts_page(
    db: AsyncSession, *, skip: int, limit: int | None, user_id: int | None = None
) -> PaginatedPosts:
    """One page of posts, newest first, with their authors: two queries whatever the page size.

    The page's ids are picked from the (date_posted, id) index alone, then only those posts are
    read and joined to their authors: a deep page skips index entries, not joined rows.
    """
    limit = limit or settings.posts_per_page
    page_ids = select(models.Post.id).order_by(*NEWEST_FIRST).offset(skip).limit(limit)
    count = select(func.count()).select_from(models.Post)
    if user_id is not None:
        page_ids = page_ids.where(models.Post.user_id == user_id)
        count = count.where(models.Post.user_id == user_id)
    page_ids = page_ids.subquery()
    page = select(models.Post).join(page_ids, models.Post.id == page_ids.c.id)
    posts = (await db.scalars(page.order_by(*NEWEST_FIRST))).all()
    total = await db.scalar(count)
    return PaginatedPosts(
        posts=[PostResponse.model_validate(post) for post in posts],
        total=total,
        skip=skip,
        limit=limit,
        has_more=skip + len(posts) < total,
    )


async def get_post_or_404(post_id: ResourceId, db: SessionDep) -> models.Post:
    post = await db.get(models.Post, post_id)
    if post is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=Detail.POST_NOT_FOUND)
    return post


PostDep = Annotated[models.Post, Depends(get_post_or_404)]


def ensure_author(post: models.Post, user: models.User, detail: str) -> None:
    if post.user_id != user.id:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=detail)


@router.get("", response_model=PaginatedPosts)
async def list_posts(db: SessionDep, skip: Skip = 0, limit: Limit = None):
    """List posts, newest first."""
    return await fetch_posts_page(db, skip=skip, limit=limit)


@router.post(
    "", response_model=PostResponse, status_code=status.HTTP_201_CREATED, responses=errors(401)
)
async def create_post(data: PostCreate, user: CurrentUser, db: SessionDep):
    """Write a post as the current user."""
    post = models.Post(**data.model_dump(), author=user)
    db.add(post)
    await db.commit()
    return post


@router.get("/{post_id}", response_model=PostResponse, responses=errors(404))
async def get_post(post: PostDep):
    """Read one post."""
    return post


@router.put("/{post_id}", response_model=PostResponse, responses=errors(401, 403, 404))
async def replace_post(data: PostCreate, post: PostDep, user: CurrentUser, db: SessionDep):
    """Replace a post's title and content (author only)."""
    return await update_post_fields(db, post, user, data.model_dump())


@router.patch("/{post_id}", response_model=PostResponse, responses=errors(401, 403, 404))
async def update_post(data: PostUpdate, post: PostDep, user: CurrentUser, db: SessionDep):
    """Change a post's title and/or content (author only)."""
    return await update_post_fields(db, post, user, data.model_dump(exclude_unset=True))


async def update_post_fields(
    db: AsyncSession, post: models.Post, user: models.User, fields: dict
) -> models.Post:
    ensure_author(post, user, Detail.UPDATE_POST_FORBIDDEN)
    for name, value in fields.items():
        setattr(post, name, value)
    await commit_unless_gone(db)
    return post


@router.delete(
    "/{post_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403, 404)
)
async def delete_post(post: PostDep, user: CurrentUser, db: SessionDep) -> None:
    """Delete a post (author only)."""
    ensure_author(post, user, Detail.DELETE_POST_FORBIDDEN)
    await db.delete(post)
    await commit_unless_gone(db)


async def commit_unless_gone(db: AsyncSession) -> None:
    """A post deleted by a concurrent request between our read and our write is a 404."""
    try:
        await db.commit()
    except StaleDataError:
        await db.rollback()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.POST_NOT_FOUND) from None
