"""Search, a filter of the post list (`q`): the statements of a page of matches, most relevant
first, and the highlights of the search page (the matching words of a title and excerpts).

Read as the other lists are read (queries.py): the public posts only, `with_authors`, the total
counted, remembered and estimated the same way.
"""

import html
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

import models
from config import settings
from content import MARK_END, MARK_START
from queries import (
    COUNTED_UP_TO,
    NEWEST_FIRST,
    ListKind,
    estimate_total,
    fetch_page,
    post_fields,
    visible_to,
    with_authors,
)
from schemas import PaginatedPosts

# On the generated `search_vector` (models.py) and its GIN index. User input goes through
# websearch_to_tsquery, which never fails on syntax: a phrase in quotes, -excluded, `or`; stop
# words and punctuation alone give an empty query, which matches nothing.
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
    rows, counted, snapshot = await fetch_page(db, first, params, memo_key)
    total: int = counted if counted is not None else (await db.scalar(count, params) or 0)
    if skip < RANKED_MATCHES < end and total > RANKED_MATCHES:
        rest = {**params, "skip": RANKED_MATCHES, "limit": end - RANKED_MATCHES}
        rows += (await fetch_page(db, older, rest, memo_key))[0]
    if total >= COUNTED_UP_TO:
        total = await estimate_total(db, kind, params, memo_key, snapshot)
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
