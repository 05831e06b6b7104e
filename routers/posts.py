"""JSON API for posts: the routes, and the dependencies that parse, load and authorize what
they act on. What they read is in queries.py (lists, one post, who sees what) and search.py."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError
from starlette.concurrency import run_in_threadpool

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, no_store
from content import NestedTooDeep, render_post
from database import ReadDep, SessionDep
from paging import PageStartDep, invalid_query
from permissions import Action, can, must_verify_first
from queries import can_see, count_comments, fetch_posts_page, is_public, is_scheduled, read_post
from ratelimit import post_limit, post_write_limit, preview_limit
from schemas import (
    Detail,
    Limit,
    PaginatedPosts,
    PostCreate,
    PostPreview,
    PostReplace,
    PostResponse,
    PostUpdate,
    PreviewResponse,
    ResourceId,
    SearchText,
    TagFilter,
    errors,
)
from search import fetch_search_page

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/posts", tags=["posts"], responses=errors(503))


def post_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=Detail.POST_NOT_FOUND)


async def read_post_or_404(
    post_id: ResourceId, viewer_id: ViewerId, db: ReadDep, response: Response
) -> PostResponse:
    """A post with its author, as the viewer may see it: one query on the read connection
    (two with a token: the token is checked first). What the public does not see (a draft,
    seen by its author; a suspended author's post, by editors) is kept out of every cache."""
    post = await read_post(db, post_id, viewer_id)
    if post is None:
        raise post_not_found()
    if not is_public(post):
        no_store(response)
    return post


async def get_post_or_404(post_id: ResourceId, db: SessionDep) -> models.Post:
    """A post as an ORM object, for the routes that change it."""
    post = await db.get(models.Post, post_id)
    if post is None:
        raise post_not_found()
    return post


PostDep = Annotated[models.Post, Depends(get_post_or_404)]
PostReadDep = Annotated[PostResponse, Depends(read_post_or_404)]


def ensure_allowed(post: models.Post, user: models.User, action: Action, detail: str) -> None:
    """Who may (the author; an editor or admin, permissions.py) goes on; whoever cannot even
    see the post (a draft, a suspended author's) gets a 404, the others a 403."""
    if not can(user, action, post):
        if not can_see(post, user.id, sees_hidden=can(user, "see_hidden")):
            raise post_not_found()
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=detail)


def ensure_may_publish(user: models.User) -> None:
    """EMAIL_VERIFICATION_REQUIRED: an unverified user writes drafts, and publishes nothing."""
    if must_verify_first(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.VERIFY_EMAIL_FIRST)


def response_for(post: models.Post, comment_count: int) -> PostResponse:
    """A post just written, in the shape every read returns."""
    fields = {name: getattr(post, name) for name in WRITTEN_FIELDS}
    return PostResponse.model_validate(
        {**fields, "author": post.author, "comment_count": comment_count}
    )


WRITTEN_FIELDS = (
    "id",
    "title",
    "content",
    "user_id",
    "date_posted",
    "content_html",
    "excerpt",
    "reading_time_minutes",
    "tags",
    "published",
    "updated_at",
    "slug",
)


async def rendered(content: str) -> dict[str, Any]:
    """content.py's columns for `content`, rendered in a worker thread: a long post takes
    milliseconds of CPU that the event loop must not wait for. A source nested too deep to
    render is a 422 on `content`, like the schema's own checks."""
    try:
        return await run_in_threadpool(render_post, content)
    except NestedTooDeep as exc:
        msg = f"Value error, {exc}"
        error = {"type": "value_error", "loc": ("body", "content"), "msg": msg}
        raise RequestValidationError([error]) from None


@router.get("", response_model=PaginatedPosts, dependencies=[CACHED])
async def list_posts(
    start: PageStartDep,
    db: ReadDep,
    limit: Limit = None,
    tag: TagFilter = None,
    q: SearchText = None,
) -> PaginatedPosts:
    """List published posts, newest first; `tag` keeps those with that tag; `q` searches
    them (title, tags and content), most relevant first. Page on with `cursor=` (the previous
    page's `next_cursor`; not with `q`, whose pages go by relevance), or with `skip`."""
    if q is not None:
        if start.after is not None:
            raise invalid_query("cursor", Detail.CURSOR_WITH_SEARCH)
        return await fetch_search_page(db, q=q, skip=start.skip, limit=limit, tag=tag)
    return await fetch_posts_page(db, skip=start.skip, after=start.after, limit=limit, tag=tag)


@router.post(
    "",
    response_model=PostResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403, 413, 429),
    dependencies=[Depends(post_limit)],
)
async def create_post(data: PostCreate, user: CurrentUser, db: SessionDep) -> PostResponse:
    """Write a post in Markdown as the current user; `published: false` keeps it a draft,
    `publish_at` keeps it one until then."""
    if data.published:
        ensure_may_publish(user)
    fields = data.model_dump(exclude={"publish_at"})
    if data.publish_at is not None:  # out at that moment, dated so
        fields |= {"date_posted": data.publish_at, "first_published_at": data.publish_at}
    post = models.Post(**fields, **await rendered(data.content), author=user)
    db.add(post)
    await db.commit()
    return response_for(post, comment_count=0)


@router.post(
    "/preview",
    response_model=PreviewResponse,
    responses=errors(400, 401, 413, 429),
    dependencies=[Depends(preview_limit)],
)
async def preview_post(data: PostPreview, user: CurrentUser) -> PreviewResponse:
    """Render Markdown as a post would show it, without storing anything."""
    return PreviewResponse(content_html=(await rendered(data.content))["content_html"])


@router.get("/{post_id}", response_model=PostResponse, responses=errors(404), dependencies=[CACHED])
async def get_post(post: PostReadDep) -> PostResponse:
    """Read one post (a draft: its author only)."""
    return post


@router.put(
    "/{post_id}",
    response_model=PostResponse,
    responses=errors(400, 401, 403, 404, 413, 429),
    dependencies=[Depends(post_write_limit)],
)
async def replace_post(
    data: PostReplace, post: PostDep, user: CurrentUser, db: SessionDep
) -> PostResponse:
    """Replace a post's title and content; tags and published when given (author only)."""
    return await update_post_fields(db, post, user, data.model_dump(exclude_unset=True))


@router.patch(
    "/{post_id}",
    response_model=PostResponse,
    responses=errors(400, 401, 403, 404, 413, 429),
    dependencies=[Depends(post_write_limit)],
)
async def update_post(
    data: PostUpdate, post: PostDep, user: CurrentUser, db: SessionDep
) -> PostResponse:
    """Change any of a post's title, content, tags and published (author only)."""
    return await update_post_fields(db, post, user, data.model_dump(exclude_unset=True))


async def update_post_fields(
    db: AsyncSession, post: models.Post, user: models.User, fields: dict[str, Any]
) -> PostResponse:
    ensure_allowed(post, user, "edit_post", Detail.UPDATE_POST_FORBIDDEN)
    now = datetime.now(UTC)
    fields |= publication(post, fields, now)
    changed = {name: value for name, value in fields.items() if getattr(post, name) != value}
    if fields.get("published") and changed.keys() & {"published", "date_posted"}:
        ensure_may_publish(user)
    if "content" in changed:
        changed.update(await rendered(changed["content"]))
    if changed:
        changed["updated_at"] = now
    for name, value in changed.items():
        setattr(post, name, value)
    await commit_unless_gone(db)
    return response_for(post, comment_count=await count_comments(db, post.id))


def publication(post: models.Post, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The columns that `published` and `publish_at` (taken out of `fields`) set.

    - `publish_at`: a draft (or a scheduled post) is scheduled, dated that moment; a post
      that is out takes none (400).
    - `published: true`: a draft goes out now, dated now the first time only (publishing
      again never moves its date); so does a scheduled post.
    - `published: false`, or `publish_at: null` on a scheduled post: a draft (one that was
      never out is dated now, to be dated anew when it goes out).
    """
    scheduled = is_scheduled(post)
    cleared = "publish_at" in fields and fields["publish_at"] is None
    publish_at = fields.pop("publish_at", None)
    if publish_at is not None:
        if post.published and not scheduled:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.ALREADY_PUBLISHED)
        first = post.first_published_at
        was_out = first is not None and first <= now  # its first time stays
        return {
            "published": True,
            "date_posted": publish_at,
            "first_published_at": first if was_out else publish_at,
        }
    if "published" not in fields and not (cleared and scheduled):
        return {}
    wanted = fields.get("published", False)
    if wanted and (scheduled or post.first_published_at is None):
        return {"published": True, "date_posted": now, "first_published_at": now}
    if not wanted and scheduled:
        return {"published": False, "date_posted": now, "first_published_at": None}
    return {"published": wanted}


@router.delete(
    "/{post_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403, 404)
)
async def delete_post(post: PostDep, user: CurrentUser, db: SessionDep) -> None:
    """Delete a post (author only)."""
    ensure_allowed(post, user, "delete_post", Detail.DELETE_POST_FORBIDDEN)
    await db.delete(post)
    await commit_unless_gone(db)


async def commit_unless_gone(db: AsyncSession) -> None:
    """A post deleted by a concurrent request between our read and our write is a 404."""
    try:
        await db.commit()
    except StaleDataError:
        await db.rollback()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.POST_NOT_FOUND) from None
