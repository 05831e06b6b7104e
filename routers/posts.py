"""JSON API for posts."""

import html
import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
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
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import TextClause
from starlette.concurrency import run_in_threadpool

import models
from auth import CurrentUser, ViewerId
from caching import CACHED, STATEMENT_SNAPSHOT, Remembered, no_store
from config import settings
from content import MARK_END, MARK_START, NestedTooDeep, render_post
from cursors import InvalidCursor, Position, cursor_key, decode_cursor, encode_cursor
from database import ReadDep, SessionDep, fetch_all, mark_expensive_read
from permissions import Action, can, must_verify_first, roles_that_may
from ratelimit import post_limit, post_write_limit, preview_limit
from schemas import (
    MAX_SKIP,
    CursorParam,
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
    Skip,
    TagFilter,
    errors,
)

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/posts", tags=["posts"], responses=errors(503))

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
def estimate_statement(kind: "ListKind | SearchKind") -> TextClause:
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
    rows, total = await fetch_page(db, page, params, memo_key)
    if total is None:  # past the last page
        total = await db.scalar(count, params) or 0
    if total >= COUNTED_UP_TO:
        total = await estimate_total(db, kind, params)
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


async def fetch_page(
    db: AsyncConnection | AsyncSession,
    statement: Select[Any],
    params: dict[str, Any],
    memo_key: Hashable,
) -> tuple[list[tuple[Any, ...]], int | None]:
    """The rows of a page of `with_authors` and the list's total (None past the last page,
    which has no row to carry it): counted by PostgreSQL, or remembered from the last count
    under the same snapshot."""
    known = counted_totals.latest(memo_key)  # taken now: another request may replace it
    params["known_snapshot"] = known[0] if known else None
    rows = await fetch_all(db, statement, params, inline=("limit", "skip"))
    if not rows:
        return rows, None
    snapshot, total = rows[0][SNAPSHOT_AT], rows[0][TOTAL_AT]
    if total is None:  # not counted: the snapshot is the one `known` was counted under
        assert known is not None
        return rows, known[1]
    if snapshot is not None:
        counted_totals.put(snapshot, memo_key, total)
    return rows, total


def cursor_after(row: tuple[Any, ...]) -> str:
    """The cursor of the page that follows the post of `row` (a row of POST_COLUMNS)."""
    return signed_cursor(Position(date_posted=row[4], id=row[0]), settings.jwt_secret)


@lru_cache(maxsize=1024)
def signed_cursor(position: Position, secret: str) -> str:
    """`encode_cursor`, remembered: a list's first page ends at the same post, and so signs
    the same cursor, for every reader until a newer post comes."""
    return encode_cursor(position, cursor_key(secret))


async def estimate_total(
    db: AsyncConnection | AsyncSession, kind: "ListKind | SearchKind", params: dict[str, Any]
) -> int:
    """The total of a list that has more than COUNTED_UP_TO posts: the planner's estimate.

    Exact counts at scale cost a walk over every row, on every page; an estimate costs a
    lookup in the statistics PostgreSQL keeps up to date (ANALYZE, autovacuum) and scales to
    the table's current size. It is never below the bound, which the exact count reached.
    """
    plan = await db.scalar(estimate_statement(kind), params)
    rows: float = plan[0]["Plan"]["Plan Rows"]
    return max(COUNTED_UP_TO, round(rows))


# Search: a filter of the post list (`q`), on the generated `search_vector` (models.py) and its
# GIN index. User input goes through websearch_to_tsquery, which never fails on syntax: a
# phrase in quotes, -excluded, `or`; stop words and punctuation alone give an empty query,
# which matches nothing.
SEARCH_QUERY = func.websearch_to_tsquery(
    literal_column("'english'::regconfig"), bindparam("q", type_=String)
)
MATCHES = models.POST_SEARCH_VECTOR.bool_op("@@")(SEARCH_QUERY)
# ts_rank's weights of D, C, B and A: content 0.2, tags 0.4, the title 1.
RANK_WEIGHTS: ColumnElement[Any] = literal_column("'{0.1, 0.2, 0.4, 1.0}'::float4[]")
# Relevance is computed over the newest RANKED_MATCHES matches only. Ranking reads each
# match's tsvector: for a word found in a tenth of 100,000 posts that is 10,000 vectors per
# request, and the first page would cost as much as ranking them all. The newest matches are
# ranked (most relevant first, then newest); the older matches follow, newest first, so every
# match can still be paged to, and `total` counts them all (exactly up to COUNTED_UP_TO, then
# the planner's estimate, as the other lists).
RANKED_MATCHES = 1000


@dataclass(frozen=True)
class SearchKind:
    """Which posts a search looks in: all published posts, or a tag's."""

    by_tag: bool = False

    def conditions(self) -> list[ColumnElement[bool]]:
        return [*ListKind(by_tag=self.by_tag).conditions(), MATCHES]


@cache
def search_statement(kind: SearchKind) -> tuple[Select[Any], Select[Any], Select[int]]:
    """A page of the ranked matches; a page of the older matches (positions past
    RANKED_MATCHES), newest first; and the count alone, for a page past the end. The pages
    carry the total, as page_statement's.

    The newest matches are found through the GIN index and sorted by date (a top-N sort),
    then ranked; only the page's posts are read whole and joined to their authors.
    """
    Post = models.Post
    conditions = kind.conditions()
    counted = select(Post.id).where(*conditions).limit(COUNTED_UP_TO).subquery()
    count = select(func.count()).select_from(counted)

    newest = (
        select(Post.id, Post.date_posted, models.POST_SEARCH_VECTOR)
        .where(*conditions)
        .order_by(*NEWEST_FIRST)
        .limit(RANKED_MATCHES)
        .subquery("newest")
    )
    rank = func.ts_rank(RANK_WEIGHTS, newest.c.search_vector, SEARCH_QUERY)
    ranked_ids = (
        select(newest.c.id, rank.label("rank"))
        .order_by(rank.desc(), newest.c.date_posted.desc(), newest.c.id.desc())
        .offset(bindparam("skip"))
        .limit(bindparam("limit"))
        .subquery("ranked")
    )
    ranked = with_authors(ranked_ids, count, ranked_ids.c.rank.desc(), *NEWEST_FIRST)

    # Past the ranked ones, position n is the n-th newest match.
    older_ids = (
        select(Post.id)
        .where(*conditions)
        .order_by(*NEWEST_FIRST)
        .offset(bindparam("skip"))
        .limit(bindparam("limit"))
        .subquery("older")
    )
    older = with_authors(older_ids, count, *NEWEST_FIRST)
    return ranked, older, count


async def fetch_search_page(
    db: AsyncConnection | AsyncSession,
    *,
    q: str,
    skip: int,
    limit: int | None,
    tag: str | None = None,
) -> PaginatedPosts:
    """One page of the published posts that match `q`, most relevant first (see
    RANKED_MATCHES): one query, two on the page that crosses from ranked to older matches."""
    limit = limit or settings.posts_per_page
    kind = SearchKind(by_tag=tag is not None)
    ranked, older, count = search_statement(kind)
    params = {"q": q, "tag": tag, "skip": skip, "limit": limit}
    end = skip + limit
    memo_key = (kind, q, tag)
    first = ranked if skip < RANKED_MATCHES else older
    rows, counted = await fetch_page(db, first, params, memo_key)
    total: int = counted if counted is not None else (await db.scalar(count, params) or 0)
    if skip < RANKED_MATCHES < end and total > RANKED_MATCHES:
        rest = {**params, "skip": RANKED_MATCHES, "limit": end - RANKED_MATCHES}
        rows += (await fetch_page(db, older, rest, memo_key))[0]
    if total >= COUNTED_UP_TO:
        total = await estimate_total(db, kind, params)
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


# The search page's highlights: ts_headline marks the matching words between two control
# characters, which are first removed from the text, so every one in the result is a mark
# (content.highlighted turns them into <mark> after escaping the rest). The title whole; of
# the content, up to two fragments around the matches.
HEADLINE_OPTIONS = f"StartSel={MARK_START}, StopSel={MARK_END}"
EXCERPT_OPTIONS = (
    HEADLINE_OPTIONS + ', MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "'
)


def _headline(
    text: InstrumentedAttribute[str] | ColumnElement[str], options: str
) -> ColumnElement[str]:
    without_marks = func.translate(text, MARK_START + MARK_END, "")
    return func.ts_headline(
        literal_column("'english'::regconfig"), without_marks, SEARCH_QUERY, options
    )


# What a reader sees of a post: its rendered HTML without the tags (the serialiser quotes every
# attribute value with `"`; blocks end with a line break, so words stay apart, and "*sun*." stays
# "sun."), not its Markdown source, whose `**`, `[...](...)` and `#` would show. The entities
# left (`&amp;`, `&lt;`...) are decoded in fetch_headlines.
POST_TEXT = func.regexp_replace(models.Post.content_html, '<(?:[^>"]|"[^"]*")*>', "", "g")
HEADLINES = select(
    models.Post.id,
    _headline(models.Post.title, HEADLINE_OPTIONS + ", HighlightAll=true"),
    _headline(POST_TEXT, EXCERPT_OPTIONS),
).where(
    models.Post.id == func.any(bindparam("ids", type_=postgresql.ARRAY(Integer))),
    visible_to(None),
)


async def fetch_headlines(
    db: AsyncConnection | AsyncSession, q: str, post_ids: list[int]
) -> dict[int, tuple[str, str]]:
    """The title and an excerpt of the text of each of these posts that is published, the
    words that match `q` between MARK_START and MARK_END (content.highlighted), on one line.

    A post unpublished or deleted since the search read it has none: the page shows it as
    the search saw it, unmarked."""
    rows = await db.execute(HEADLINES, {"q": q, "ids": post_ids})
    return {
        id_: (title, " ".join(html.unescape(excerpt).split())) for id_, title, excerpt in rows.all()
    }


# A page deeper than this walks over a thousand index entries (for its offset) on top of its
# count: it waits for a turn among the deep pages before it takes a read connection.
DEEP_SKIP = 1000


async def page_offset(request: Request, skip: Skip = 0) -> int:
    """`skip`; a deep page is marked as an expensive read. Declared before the read connection."""
    if skip >= DEEP_SKIP:
        mark_expensive_read(request)
    return skip


@dataclass(frozen=True)
class PageStart:
    """Where a page of a list starts: after `skip` posts, or right after a cursor's post."""

    skip: int = 0
    after: Position | None = None


async def page_start(request: Request, skip: Skip = 0, cursor: CursorParam = None) -> PageStart:
    """`start_at`; a deep page is marked as an expensive read (`page_offset`), so this is
    declared before the read connection."""
    return start_at(await page_offset(request, skip), cursor)


def start_at(skip: int, cursor: str | None) -> PageStart:
    """`skip`, or the position a cursor names; a cursor the app did not write is a 422."""
    if cursor is None:
        return PageStart(skip=skip)
    if skip:
        raise invalid_query("skip", Detail.CURSOR_WITH_SKIP)
    try:
        return PageStart(after=decode_cursor(cursor, cursor_key(settings.jwt_secret)))
    except InvalidCursor:
        raise invalid_query("cursor", Detail.INVALID_CURSOR) from None


def invalid_query(name: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own for a query parameter."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message}])


PageStartDep = Annotated[PageStart, Depends(page_start)]


async def read_post(
    db: AsyncConnection | AsyncSession, post_id: int, viewer_id: int | None
) -> PostResponse | None:
    """A post with its author and comment count, if `viewer_id` may see it: one query."""
    params = {"post_id": post_id, "viewer_id": viewer_id}
    rows = await fetch_all(db, POST_BY_ID, params)
    return PostResponse.model_validate(post_fields(rows[0])) if rows else None


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


def is_public(post: PostResponse) -> bool:
    return post.published and not post.author.suspended


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
    count = await db.scalar(COMMENTS_OF_POST, {"post_id": post.id})
    return response_for(post, comment_count=count or 0)


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


COMMENTS_OF_POST = select(func.count()).where(models.Comment.post_id == bindparam("post_id"))


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
