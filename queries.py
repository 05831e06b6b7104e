"""What the post routes read: the one rule of who sees a post, the statements of a page of
posts and of one post, and the fetches that run them (search and its highlights: search.py).

A page of posts is one round trip: its ids picked from the (date_posted, id) index, joined to
their authors, each row carrying the list's total, counted up to COUNTED_UP_TO, remembered
under the snapshot it was counted in, and beyond that the planner's estimate.
"""

import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Integer,
    Row,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import TextClause

import models
from caching import STATEMENT_SNAPSHOT, Remembered
from config import settings
from cursors import Position, cursor_key, encode_cursor
from database import fetch_all
from permissions import roles_that_may
from schemas import MAX_SKIP, PaginatedPosts, PostResponse

NEWEST_FIRST = (models.Post.date_posted.desc(), models.Post.id.desc())
# After the cursor's post in that order: one row comparison on the index's own columns, so
# PostgreSQL starts the index scan right there (an `Index Cond`), at any depth.
AFTER_CURSOR = tuple_(models.Post.date_posted, models.Post.id) < tuple_(
    bindparam("after_date", type_=DateTime(timezone=True)),
    bindparam("after_id", type_=Integer),
)


# models.PUBLIC, and the clock: a post published with a date to come is scheduled, and goes
# out at that moment with no write (routers read the time each statement starts).
PUBLIC = and_(
    models.Post.published,
    ~models.Post.author_suspended,
    models.Post.date_posted <= func.statement_timestamp(),
)
ROLES_THAT_SEE_HIDDEN = roles_that_may("see_hidden")


def visible_to(viewer_id: int | BindParameter[int] | None) -> ColumnElement[bool]:
    """The one rule of who sees a post: published posts of authors who are not suspended;
    drafts by their own author; everything, for editors and admins (permissions.py).

    Every read goes through it: a post, its page and its comments as the viewer sees them;
    the public lists and counts as nobody in particular (`None`: the public posts only, which
    the partial indexes hold exactly); the author's own list as its author.
    """
    if viewer_id is None:
        return PUBLIC
    return or_(PUBLIC, models.Post.user_id == viewer_id, sees_hidden(viewer_id))


def sees_hidden(viewer_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """Whether the viewer may see what the public does not (permissions: "see_hidden")."""
    viewer = aliased(models.User)
    return exists().where(
        viewer.id == viewer_id,
        # Constants of the code, written into the SQL: the raw-SQL fetches (fetch_sql) cannot
        # expand a list parameter, and estimate_statement's text keeps no bound value.
        viewer.role.in_([literal_column(f"'{role}'") for role in ROLES_THAT_SEE_HIDDEN]),
        viewer.suspended_at.is_(None),
    )


def can_see(post: models.Post, viewer_id: int | None, sees_hidden: bool = False) -> bool:
    """`visible_to` for a post already loaded (`sees_hidden`: the viewer may see what the
    public does not)."""
    public = post.published and not post.author_suspended and not is_scheduled(post)
    return public or post.user_id == viewer_id or sees_hidden


def is_scheduled(post: models.Post) -> bool:
    """Published with a date to come: a draft to everyone until then."""
    return post.published and post.date_posted > datetime.now(UTC)


VISIBLE_TO_VIEWER = visible_to(bindparam("viewer_id"))

# The number of comments of each post of a page: one index-only count per post, inside the
# page's one statement (ix_comments_post_id_date_posted_id), so never an N+1.
COMMENTER = aliased(models.User)
# The comments the public sees: approved ones by users who are not suspended.
COMMENT_COUNT = (
    select(func.count())
    .select_from(models.Comment)
    .join(COMMENTER, COMMENTER.id == models.Comment.user_id)
    .where(
        models.Comment.post_id == models.Post.id,
        models.Comment.status == "approved",
        COMMENTER.suspended_at.is_(None),
    )
    .correlate(models.Post)
    .scalar_subquery()
)
AUTHOR_COLUMNS = (
    models.User.username,
    models.User.image_file,
    models.User.role,
    models.User.suspended_at,
    models.User.bio,
    models.User.created_at,
)
POST_COLUMNS = (
    models.Post.id,
    models.Post.title,
    models.Post.content,
    models.Post.user_id,
    models.Post.date_posted,
    *AUTHOR_COLUMNS,
    models.Post.content_html,
    models.Post.excerpt,
    models.Post.reading_time_minutes,
    models.Post.tags,
    models.Post.published,
    COMMENT_COUNT.label("comment_count"),
    models.Post.updated_at,
    models.Post.slug,
)


# The total is counted exactly up to this many posts, then estimated: exact as far as `skip`
# reaches (the deepest page ends at MAX_SKIP + 100); beyond, it only informs. (`has_more` and
# `next_cursor` come from the page itself, one post more than asked for.)
COUNTED_UP_TO = MAX_SKIP + 100 + 1


@dataclass(frozen=True)
class ListKind:
    """Which posts a list holds: a user's, a tag's, and as seen by everyone or by `viewer_id`
    (a user's own list, drafts included)."""

    by_user: bool = False
    by_tag: bool = False
    as_viewer: bool = False

    def conditions(self) -> list[ColumnElement[bool]]:
        Post = models.Post
        conditions = [VISIBLE_TO_VIEWER if self.as_viewer else visible_to(None)]
        if self.by_user:
            conditions.append(Post.user_id == bindparam("user_id"))
        if self.by_tag:
            conditions.append(Post.tags.contains(array([bindparam("tag", type_=String)])))
        return conditions


class Kind(Hashable, Protocol):
    """Which posts a list holds, as its conditions (ListKind, search.SearchKind): a key of
    the statements built once."""

    def conditions(self) -> list[ColumnElement[bool]]: ...


# A list's total is counted by PostgreSQL, unless the statement's snapshot is the one this
# worker last counted that list under (`known_snapshot`): then the data is the same, the count
# would be too, and PostgreSQL skips it (a subquery in a branch of CASE not taken never runs).
# Counting is most of the database's work for a first page (10,000 posts walked, on every
# request); the pages of a blog that nobody is writing to at that moment never count again.
# caching.py says why a snapshot pins the data. Rows carry the snapshot (NULL on a connection
# that has written: its snapshot does not show its own writes), then the total.
KNOWN_SNAPSHOT = bindparam("known_snapshot", type_=String)
SNAPSHOT_AT, TOTAL_AT = len(POST_COLUMNS), len(POST_COLUMNS) + 1


def total_unless_known(count: Select[int]) -> ColumnElement[int | None]:
    return case((STATEMENT_SNAPSHOT == KNOWN_SNAPSHOT, None), else_=count.scalar_subquery())


def with_authors(ids: Subquery, count: Select[int], *order_by: Any) -> Select[Any]:
    """The posts of a page, picked beforehand as a subquery of ids, joined to their authors,
    each row carrying the statement's snapshot and the list's total (`count`, unless it is
    known): the one shape every list of posts reads."""
    Post, User = models.Post, models.User
    return (
        select(*POST_COLUMNS, STATEMENT_SNAPSHOT, total_unless_known(count))
        .join(ids, Post.id == ids.c.id)
        .join(User, User.id == Post.user_id)
        .order_by(*order_by)
    )


@cache
def page_statement(kind: ListKind, after_cursor: bool = False) -> tuple[Select[Any], Select[int]]:
    """One page of posts with their authors and the total in one round trip; and the count
    alone, for a page past the end.

    The page's ids are picked from the (date_posted, id) index alone: after `skip` index
    entries, or (`after_cursor`) right after the cursor's post, where the index scan starts;
    only those posts are then read and joined to their authors. The total is an uncorrelated
    subquery, computed once, counting at most COUNTED_UP_TO posts of the whole list
    (`estimate_total` says how many beyond), whatever the page. Built once per kind of list
    and of paging, with bound parameters, so each request skips statement construction and
    goes straight to SQLAlchemy's compiled cache.
    """
    Post = models.Post
    conditions = kind.conditions()
    newest_first = select(Post.id).where(*conditions).order_by(*NEWEST_FIRST)
    if after_cursor:
        newest_first = newest_first.where(AFTER_CURSOR)
    else:
        newest_first = newest_first.offset(bindparam("skip"))
    page_ids = newest_first.limit(bindparam("limit")).subquery()
    # `count(*)` walks every row it counts: bounded, it costs about a millisecond whatever the
    # table holds (a counter kept by triggers would serialise every new post on one row, and
    # need one counter per filter).
    counted = select(Post.id).where(*conditions).limit(COUNTED_UP_TO).subquery()
    total = select(func.count()).select_from(counted)
    return with_authors(page_ids, total, *NEWEST_FIRST), total


# Any PostgreSQL dialect compiles parameters as %(name)s (psycopg's adds ::TYPE casts).
PG_PARAMS_BY_NAME: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


@cache
def estimate_statement(kind: Kind) -> TextClause:
    """The planner's row estimate of a list (table statistics, scaled to the table's current
    size by PostgreSQL): a lookup in the statistics, no row read."""
    query: Select[Any] = select(literal_column("1")).select_from(models.Post)
    query = query.where(*kind.conditions())
    sql = str(query.compile(dialect=PG_PARAMS_BY_NAME))
    # The compiled SQL names its parameters %(name)s::TYPE; text() wants :name, and reads
    # "::" as part of a name, so the casts are spelled CAST(... AS TYPE).
    return text("EXPLAIN (FORMAT JSON) " + re.sub(r"%\((\w+)\)s(?:::(\w+))?", _text_param, sql))


def _text_param(match: re.Match[str]) -> str:
    name, cast = match[1], match[2]
    return f"CAST(:{name} AS {cast})" if cast else f":{name}"


POST_BY_ID = (
    select(*POST_COLUMNS)
    .join(models.User, models.User.id == models.Post.user_id)
    .where(models.Post.id == bindparam("post_id"), VISIBLE_TO_VIEWER)
)


def post_fields(row: Row[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """A row that starts with POST_COLUMNS, as PostResponse's fields. (Unpacked by position:
    reading a Row's attributes by name costs a lookup each, eighty on a page.)"""
    (
        id_,
        title,
        content,
        user_id,
        date_posted,
        username,
        image_file,
        role,
        suspended_at,
        bio,
        created_at,
        content_html,
        excerpt,
        reading_time_minutes,
        tags,
        published,
        comment_count,
        updated_at,
        slug,
    ) = row[: len(POST_COLUMNS)]
    return {
        "id": id_,
        "title": title,
        "content": content,
        "user_id": user_id,
        "date_posted": date_posted,
        "author": {
            "id": user_id,
            "username": username,
            "image_file": image_file,
            "role": role,
            "suspended_at": suspended_at,
            "bio": bio,
            "created_at": created_at,
        },
        "content_html": content_html,
        "excerpt": excerpt,
        "reading_time_minutes": reading_time_minutes,
        "tags": tags,
        "published": published,
        "comment_count": comment_count,
        "updated_at": updated_at,
        "slug": slug,
    }


async def fetch_posts_page(
    db: AsyncConnection | AsyncSession,
    *,
    skip: int = 0,
    after: Position | None = None,
    limit: int | None,
    user_id: int | None = None,
    tag: str | None = None,
    viewer_id: int | None = None,
) -> PaginatedPosts:
    """One page of posts, newest first, with their authors: one query (two past the last page).

    The page starts after `skip` posts, or right after the post `after` names (a cursor).
    Published posts only; with `viewer_id`, what that user sees (their own list, drafts too).
    The hottest read of the app, so it reads plain rows rather than ORM objects, and validates
    the whole page once.
    """
    limit = limit or settings.posts_per_page
    params = {
        "skip": skip,
        "after_date": after.date_posted if after else None,
        "after_id": after.id if after else None,
        "limit": limit + 1,  # one more: whether a next page exists, exactly
        "user_id": user_id,
        "tag": tag,
        "viewer_id": viewer_id,
    }
    kind = ListKind(
        by_user=user_id is not None, by_tag=tag is not None, as_viewer=viewer_id is not None
    )
    page, count = page_statement(kind, after_cursor=after is not None)
    memo_key = (kind, user_id, tag, viewer_id)
    rows, total, snapshot = await fetch_page(db, page, params, memo_key)
    if total is None:  # past the last page
        total = await db.scalar(count, params) or 0
    if total >= COUNTED_UP_TO:
        total = await estimate_total(db, kind, params, memo_key, snapshot)
    rows, rest = rows[:limit], rows[limit:]
    return PaginatedPosts.model_validate(
        {
            "posts": [post_fields(row) for row in rows],
            "total": total,
            "skip": skip,
            "limit": limit,
            "has_more": bool(rest),
            "next_cursor": cursor_after(rows[-1]) if rest else None,
        }
    )


# The last total each list was counted to, under the snapshot of that count: per worker.
counted_totals: Remembered[int] = Remembered()
# The planner's estimate of each list past COUNTED_UP_TO, under the snapshot of its count.
estimated_totals: Remembered[int] = Remembered()


async def fetch_page(
    db: AsyncConnection | AsyncSession,
    statement: Select[Any],
    params: dict[str, Any],
    memo_key: Hashable,
) -> tuple[list[tuple[Any, ...]], int | None, str | None]:
    """The rows of a page of `with_authors`, the list's total (None past the last page,
    which has no row to carry it): counted by PostgreSQL, or remembered from the last count
    under the same snapshot; and that snapshot (None when the connection has written)."""
    known = counted_totals.latest(memo_key)  # taken now: another request may replace it
    params["known_snapshot"] = known[0] if known else None
    rows = await fetch_all(db, statement, params, inline=("limit", "skip"))
    if not rows:
        return rows, None, None
    snapshot, total = rows[0][SNAPSHOT_AT], rows[0][TOTAL_AT]
    if total is None:  # not counted: the snapshot is the one `known` was counted under
        assert known is not None
        return rows, known[1], known[0]
    if snapshot is not None:
        counted_totals.put(snapshot, memo_key, total)
    return rows, total, snapshot


def cursor_after(row: tuple[Any, ...]) -> str:
    """The cursor of the page that follows the post of `row` (a row of POST_COLUMNS)."""
    return signed_cursor(Position(date_posted=row[4], id=row[0]), settings.jwt_secret)


@lru_cache(maxsize=1024)
def signed_cursor(position: Position, secret: str) -> str:
    """`encode_cursor`, remembered: a list's first page ends at the same post, and so signs
    the same cursor, for every reader until a newer post comes."""
    return encode_cursor(position, cursor_key(secret))


async def estimate_total(
    db: AsyncConnection | AsyncSession,
    kind: Kind,
    params: dict[str, Any],
    memo_key: Hashable = None,
    snapshot: str | None = None,
) -> int:
    """The total of a list that has more than COUNTED_UP_TO posts: the planner's estimate.

    Exact counts at scale cost a walk over every row, on every page; an estimate costs a
    lookup in the statistics PostgreSQL keeps up to date (ANALYZE, autovacuum) and scales to
    the table's current size. It is never below the bound, which the exact count reached.
    Under the `snapshot` of the list's count, the estimate made under it is used again: the
    statement is a round trip of its own, as costly as the rest of a page.
    """
    if snapshot is not None and (known := estimated_totals.get(snapshot, memo_key)):
        return known
    plan = await db.scalar(estimate_statement(kind), params)
    rows: float = plan[0]["Plan"]["Plan Rows"]
    estimate = max(COUNTED_UP_TO, round(rows))
    if snapshot is not None:
        estimated_totals.put(snapshot, memo_key, estimate)
    return estimate


async def read_post(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> PostResponse | None:
    """A post with its author and comment count, if `viewer_id` may see it: one query."""
    params = {"post_id": post_id, "viewer_id": viewer_id}
    rows = await fetch_all(db, POST_BY_ID, params)
    return PostResponse.model_validate(post_fields(rows[0])) if rows else None


def is_public(post: PostResponse) -> bool:
    """`visible_to(None)` of a post read as a viewer sees it: whether the public sees it too."""
    return post.published and not post.author.suspended


# The comments of one post that the public sees, as COMMENT_COUNT counts them for a page.
COMMENTS_OF_POST = (
    select(func.count())
    .select_from(models.Comment)
    .join(COMMENTER, COMMENTER.id == models.Comment.user_id)
    .where(
        models.Comment.post_id == bindparam("post_id"),
        models.Comment.status == "approved",
        COMMENTER.suspended_at.is_(None),
    )
)


async def count_comments(db: AsyncSession, post_id: int) -> int:
    """How many comments of a post the public sees (its `comment_count`): one query."""
    return await db.scalar(COMMENTS_OF_POST, {"post_id": post_id}) or 0
