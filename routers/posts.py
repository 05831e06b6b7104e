"""JSON API for posts."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import Row, Select, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import models
from auth import CurrentUser
from config import settings
from database import ReadDep, SessionDep, mark_expensive_read
from ratelimit import post_limit
from schemas import (
    MAX_SKIP,
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

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/posts", tags=["posts"], responses=errors(503))

NEWEST_FIRST = (models.Post.date_posted.desc(), models.Post.id.desc())


AUTHOR_COLUMNS = (models.User.username, models.User.image_file)
POST_COLUMNS = (
    models.Post.id,
    models.Post.title,
    models.Post.content,
    models.Post.user_id,
    models.Post.date_posted,
    *AUTHOR_COLUMNS,
)


# The total is counted exactly up to this many posts, then estimated. The bound is the
# smallest that keeps `has_more` exact on every page `skip` allows (the deepest page ends at
# MAX_SKIP + 100): beyond it the total only informs.
COUNTED_UP_TO = MAX_SKIP + 100 + 1


def _count_statement(*, by_user: bool) -> Select:
    """The number of posts (of a user), counted up to COUNTED_UP_TO and no further.

    `count(*)` walks every row it counts: at a million posts that was 100 ms of a core on every
    page, first pages included. Counting at most COUNTED_UP_TO entries of an index bounds it to
    about a millisecond whatever the table holds; past the bound `estimate_total` asks the
    planner instead. (A counter kept up to date by triggers would be exact, but every new post
    would update the same row, one writer at a time, and each filter a list gains would need a
    counter of its own; the bounded count and the estimate work for any WHERE clause.)
    """
    Post = models.Post
    counted = select(Post.id)
    if by_user:
        counted = counted.where(Post.user_id == bindparam("user_id"))
    counted = counted.limit(COUNTED_UP_TO).subquery()
    return select(func.count()).select_from(counted)


def _page_statement(*, by_user: bool) -> Select:
    """One page of posts with their authors and the total, in one round trip.

    The page's ids are picked from the (date_posted, id) index alone, so a deep page skips index
    entries, not joined rows; only those posts are then read and joined to their authors. The
    total is an uncorrelated subquery, computed once. Built once, with bound parameters, so each
    request skips statement construction and goes straight to SQLAlchemy's compiled cache.
    """
    Post, User = models.Post, models.User
    page_ids = select(Post.id).order_by(*NEWEST_FIRST)
    if by_user:
        page_ids = page_ids.where(Post.user_id == bindparam("user_id"))
    page_ids = page_ids.offset(bindparam("skip")).limit(bindparam("limit")).subquery()
    total = _count_statement(by_user=by_user)
    return (
        select(*POST_COLUMNS, total.scalar_subquery().label("total"))
        .join(page_ids, Post.id == page_ids.c.id)
        .join(User, User.id == Post.user_id)
        .order_by(*NEWEST_FIRST)
    )


ALL_POSTS_PAGE = _page_statement(by_user=False)
USER_POSTS_PAGE = _page_statement(by_user=True)
COUNT_ALL = _count_statement(by_user=False)
COUNT_BY_USER = _count_statement(by_user=True)
# The planner's row estimate (table statistics, scaled to the table's current size by
# PostgreSQL): a lookup in the statistics, no row read.
ESTIMATE_ALL = text("EXPLAIN (FORMAT JSON) SELECT 1 FROM posts")
ESTIMATE_BY_USER = text("EXPLAIN (FORMAT JSON) SELECT 1 FROM posts WHERE user_id = :user_id")
POST_BY_ID = (
    select(*POST_COLUMNS)
    .join(models.User, models.User.id == models.Post.user_id)
    .where(models.Post.id == bindparam("post_id"))
)


def post_fields(row: Row) -> dict:
    """A row that starts with POST_COLUMNS, as PostResponse's fields. (Unpacked by position:
    reading a Row's attributes by name costs a lookup each, eighty on a page.)"""
    id_, title, content, user_id, date_posted, username, image_file = row[: len(POST_COLUMNS)]
    return {
        "id": id_,
        "title": title,
        "content": content,
        "user_id": user_id,
        "date_posted": date_posted,
        "author": {"id": user_id, "username": username, "image_file": image_file},
    }


async def estimate_total(db: AsyncConnection, params: dict) -> int:
    """The total of a list that has more than COUNTED_UP_TO posts: the planner's estimate.

    Exact counts at scale cost a walk over every row, on every page; an estimate costs a
    lookup in the statistics PostgreSQL keeps up to date (ANALYZE, autovacuum) and scales to
    the table's current size. It is never below the bound, which the exact count reached.
    """
    estimate = ESTIMATE_BY_USER if params.get("user_id") is not None else ESTIMATE_ALL
    plan = await db.scalar(estimate, params)
    return max(COUNTED_UP_TO, round(plan[0]["Plan"]["Plan Rows"]))


async def fetch_posts_page(
    db: AsyncConnection, *, skip: int, limit: int | None, user_id: int | None = None
) -> PaginatedPosts:
    """One page of posts, newest first, with their authors: one query (two past the last page).

    The hottest read of the app, so it reads plain rows rather than ORM objects, and validates
    the whole page once. The total is exact up to COUNTED_UP_TO posts, and estimated beyond
    (one more query, on large tables only); `has_more` is exact either way.
    """
    limit = limit or settings.posts_per_page
    params = {"skip": skip, "limit": limit, "user_id": user_id}
    page = USER_POSTS_PAGE if user_id is not None else ALL_POSTS_PAGE
    rows = (await db.execute(page, params)).all()
    if rows:
        total = rows[0].total
    else:  # past the last page: no row to carry the total
        total = await db.scalar(COUNT_BY_USER if user_id is not None else COUNT_ALL, params)
    if total >= COUNTED_UP_TO:
        total = await estimate_total(db, params)
    posts = [post_fields(row) for row in rows]
    return PaginatedPosts.model_validate(
        {
            "posts": posts,
            "total": total,
            "skip": skip,
            "limit": limit,
            "has_more": skip + len(posts) < total,
        }
    )


# A page deeper than this walks over a thousand index entries (for its offset) on top of its
# count: it waits for a turn among the deep pages before it takes a read connection.
DEEP_SKIP = 1000


async def page_offset(session: SessionDep, skip: Skip = 0) -> int:
    """`skip`; a deep page is marked as an expensive read. Declared before the read connection."""
    if skip >= DEEP_SKIP:
        mark_expensive_read(session)
    return skip


SkipDep = Annotated[int, Depends(page_offset)]


def post_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=Detail.POST_NOT_FOUND)


async def read_post_or_404(post_id: ResourceId, db: ReadDep) -> PostResponse:
    """A post with its author, for reading: one query on the read connection."""
    row = (await db.execute(POST_BY_ID, {"post_id": post_id})).first()
    if row is None:
        raise post_not_found()
    return PostResponse.model_validate(post_fields(row))


async def get_post_or_404(post_id: ResourceId, db: SessionDep) -> models.Post:
    """A post as an ORM object, for the routes that change it."""
    post = await db.get(models.Post, post_id)
    if post is None:
        raise post_not_found()
    return post


PostDep = Annotated[models.Post, Depends(get_post_or_404)]
PostReadDep = Annotated[PostResponse, Depends(read_post_or_404)]


def ensure_author(post: models.Post, user: models.User, detail: str) -> None:
    if post.user_id != user.id:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=detail)


@router.get("", response_model=PaginatedPosts)
async def list_posts(skip: SkipDep, db: ReadDep, limit: Limit = None):
    """List posts, newest first."""
    return await fetch_posts_page(db, skip=skip, limit=limit)


@router.post(
    "",
    response_model=PostResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 413, 429),
    dependencies=[Depends(post_limit)],
)
async def create_post(data: PostCreate, user: CurrentUser, db: SessionDep):
    """Write a post as the current user."""
    post = models.Post(**data.model_dump(), author=user)
    db.add(post)
    await db.commit()
    return post


@router.get("/{post_id}", response_model=PostResponse, responses=errors(404))
async def get_post(post: PostReadDep):
    """Read one post."""
    return post


@router.put("/{post_id}", response_model=PostResponse, responses=errors(400, 401, 403, 404, 413))
async def replace_post(data: PostCreate, post: PostDep, user: CurrentUser, db: SessionDep):
    """Replace a post's title and content (author only)."""
    return await update_post_fields(db, post, user, data.model_dump())


@router.patch("/{post_id}", response_model=PostResponse, responses=errors(400, 401, 403, 404, 413))
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
