"""What feed readers and crawlers fetch: Atom feeds, the sitemap and robots.txt.

Not in the OpenAPI schema (like the pages): these are documents for feed readers and search
engines, not the JSON API that /docs describes. Every list here is what nobody in particular
sees (`visible_to(None)`, through `fetch_posts_page` for the feeds): drafts never show.
Every route here is cached like the public API (caching.CACHED): an ETag on each answer, a 304
for a reader that already has it.
"""

import math
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.concurrency import run_in_threadpool

import models
from caching import CACHED
from config import settings, site_url
from database import ReadDep
from queries import fetch_posts_page, visible_to
from routers.tags import TagName
from routers.users import PublicUserDep
from schemas import Detail, PostResponse, post_path
from syndication import (
    FEED_ENTRIES,
    MAX_SITEMAP_URLS,
    Feed,
    atom_feed,
    sitemap_index,
    urlset,
    user_page_path,
)

router = APIRouter(include_in_schema=False, dependencies=[CACHED])

ATOM = "application/atom+xml"
SITEMAP = "application/xml"


def xml_response(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type)


def feed_of_site(path: str, page_path: str, holding: str | None = None) -> Feed:
    """A feed titled `{holding} · {SITE_NAME}` (the site's own feed: SITE_NAME alone), with
    SITE_DESCRIPTION as its subtitle."""
    name = settings.site_name
    title = f"{holding} · {name}" if holding else name
    return Feed(path, title, page_path, subtitle=settings.site_description)


async def atom_response(feed: Feed, posts: list[PostResponse]) -> Response:
    """The feed, built in a worker thread: twenty long posts are megabytes of XML."""
    return xml_response(await run_in_threadpool(atom_feed, feed, posts), ATOM)


@router.get("/feed.xml")
async def site_feed(db: ReadDep) -> Response:
    """The newest published posts, as Atom."""
    page = await fetch_posts_page(db, skip=0, limit=FEED_ENTRIES)
    return await atom_response(feed_of_site("/feed.xml", "/"), page.posts)


@router.get("/users/{user_id}/feed.xml")
async def user_feed(user: PublicUserDep, db: ReadDep) -> Response:
    """A user's newest published posts, as Atom; an unknown user is a 404."""
    page = await fetch_posts_page(db, skip=0, limit=FEED_ENTRIES, user_id=user.id)
    holding = f"Posts by {user.username}"
    feed = feed_of_site(f"/users/{user.id}/feed.xml", user_page_path(user.id), holding)
    return await atom_response(feed, page.posts)


@router.get("/tags/{name}/feed.xml")
async def tag_feed(tag: TagName, db: ReadDep) -> Response:
    """A tag's newest published posts, as Atom: empty for a tag no post has (yet)."""
    page = await fetch_posts_page(db, skip=0, limit=FEED_ENTRIES, tag=tag)
    feed = feed_of_site(f"/tags/{tag}/feed.xml", f"/tags/{tag}", f"#{tag}")
    return await atom_response(feed, page.posts)


# --- Sitemap ---------------------------------------------------------------------------------
#
# One file while every URL fits in it (MAX_SITEMAP_URLS); beyond, /sitemap.xml becomes an
# index of numbered sitemaps, each holding the posts and the users of a range of ids. Every
# response then reads at most one range: memory and time stay bounded whatever the table holds.

# A numbered sitemap's range of ids: its posts and its users fit in one file.
IDS_PER_SITEMAP = MAX_SITEMAP_URLS // 2
LOW, HIGH = bindparam("low", type_=BigInteger), bindparam("high", type_=BigInteger)
Post = models.Post
POST_URLS = (
    select(Post.id, Post.slug, Post.updated_at)
    .where(visible_to(None), Post.id.between(LOW, HIGH))
    .order_by(Post.id)
    .limit(bindparam("limit"))
)
# A user's page changes with their newest edit.
USER_URLS = (
    select(Post.user_id, func.max(Post.updated_at))
    .where(visible_to(None), Post.user_id.between(LOW, HIGH))
    .group_by(Post.user_id)
    .order_by(Post.user_id)
    .limit(bindparam("limit"))
)
# Counted on the partial index of published posts, up to a bound: a few milliseconds.
PUBLISHED_UP_TO = select(func.count()).select_from(
    select(Post.id).where(visible_to(None)).limit(bindparam("limit")).subquery()
)
LAST_IDS = select(func.max(Post.id), func.max(Post.user_id)).where(visible_to(None))


async def sitemap_urls(
    db: AsyncConnection, low: int = 1, high: int = 2**63 - 1
) -> list[tuple[str, datetime]]:
    """The pages of the published posts with ids from `low` to `high`, and of their authors
    with such ids, with their last change (at most MAX_SITEMAP_URLS + 1 of each)."""
    params = {"low": low, "high": high, "limit": MAX_SITEMAP_URLS + 1}
    posts = (await db.execute(POST_URLS, params)).all()
    users = (await db.execute(USER_URLS, params)).all()
    return [(post_path(id_, slug), updated) for id_, slug, updated in posts] + [
        (user_page_path(id_), updated) for id_, updated in users
    ]


async def sitemap_count(db: AsyncConnection) -> int:
    """How many numbered sitemaps cover every published post and its author."""
    row: Any = (await db.execute(LAST_IDS)).one()
    return math.ceil(max(row[0] or 0, row[1] or 0) / IDS_PER_SITEMAP)


def sitemap_path(number: int) -> str:
    return f"/sitemap-{number}.xml"


@router.get("/sitemap.xml")
async def sitemap(db: ReadDep) -> Response:
    """Every published post page and every user page with a published post, or an index of
    numbered sitemaps when they are too many for one file."""
    published = await db.scalar(PUBLISHED_UP_TO, {"limit": MAX_SITEMAP_URLS + 1}) or 0
    if published <= MAX_SITEMAP_URLS:
        urls = await sitemap_urls(db)
        if len(urls) <= MAX_SITEMAP_URLS:
            return xml_response(await run_in_threadpool(urlset, urls), SITEMAP)
    count = await sitemap_count(db)
    paths = [sitemap_path(number) for number in range(1, count + 1)]
    return xml_response(await run_in_threadpool(sitemap_index, paths), SITEMAP)


# `n` as the index writes it: no other spelling (01, +1, 1.0, " 1") names the same sitemap.
SITEMAP_NUMBER = re.compile(r"[1-9][0-9]{0,18}")


def sitemap_number(number: str) -> int:
    """The `{number}` of a numbered sitemap; any other text names none: 404."""
    if SITEMAP_NUMBER.fullmatch(number) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.SITEMAP_NOT_FOUND)
    return int(number)


@router.get("/sitemap-{number}.xml")
async def numbered_sitemap(
    number: Annotated[int, Depends(sitemap_number)], db: ReadDep
) -> Response:
    """The published posts and the users (with a published post) of one range of ids."""
    if number > await sitemap_count(db):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.SITEMAP_NOT_FOUND)
    high = number * IDS_PER_SITEMAP
    urls = await sitemap_urls(db, high - IDS_PER_SITEMAP + 1, high)
    return xml_response(await run_in_threadpool(urlset, urls), SITEMAP)


# Private or useless to a search engine: the JSON API, the account page, reset links.
DISALLOWED = ("/api/", "/account", "/reset-password")


@router.get("/robots.txt", response_class=PlainTextResponse)
async def robots() -> str:
    """Crawl everything public; the sitemap lists the pages."""
    lines = ["User-agent: *", "Allow: /", *(f"Disallow: {path}" for path in DISALLOWED)]
    return "\n".join([*lines, f"Sitemap: {site_url('/sitemap.xml')}", ""])
