"""What feed readers and crawlers read: Atom feeds and sitemaps, as XML bytes.

Pure functions from posts to documents; routers/feeds.py does the reading and HTTP. Each
document is built by a library made for the job, never by joining strings: feedgen writes
Atom 1.0 (its required elements, RFC 3339 dates, escaping), lxml writes the sitemap protocol.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

from feedgen.feed import FeedGenerator
from lxml import etree

from config import site_url
from schemas import PostResponse

# The software that writes the feeds (`<generator>`), not feedgen's name and version.
GENERATOR = "blog-api"
FEED_ENTRIES = 20
# An empty feed must still say when it was updated: a fixed moment, so it never looks new.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
# The sitemap protocol's limit of URLs in one file (sitemaps.org).
MAX_SITEMAP_URLS = 50_000

# XML 1.0 refuses control characters (but tab and line breaks), U+FFFE and U+FFFF; a title or
# a post may hold them (JSON carries them, HTML tolerates them).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry."""
    return _NOT_XML.sub("", value)


def permanent_post_path(post_id: int) -> str:
    """A post's address without its slug: it still answers, and a title change never moves it."""
    return f"/posts/{post_id}"


def user_page_path(user_id: int) -> str:
    return f"/users/{user_id}/posts"


@dataclass(frozen=True)
class Feed:
    """A feed's own facts: where it lives (its id and `rel="self"`), its title, the HTML
    page it mirrors (`rel="alternate"`) and a line about it (none when empty)."""

    path: str
    title: str
    page_path: str
    subtitle: str = ""


def atom_feed(feed: Feed, posts: Sequence[PostResponse]) -> bytes:
    """An Atom 1.0 feed of `posts`, in their order; URLs on the site's public origin.

    Each entry links its post page (`/posts/{id}/{slug}`); its id is the post's address without
    the slug, which a new title never changes (stable while the origin is); its content is the
    post's `content_html`, already sanitised when the post was written, as `type="html"`;
    its summary the post's excerpt (plain text) and a category per tag.
    """
    generator = FeedGenerator()
    generator.id(site_url(feed.path))
    generator.title(xml_text(feed.title))
    if feed.subtitle:
        generator.subtitle(xml_text(feed.subtitle))
    generator.updated(max((post.updated_at for post in posts), default=EPOCH))
    generator.link(href=site_url(feed.path), rel="self", type="application/atom+xml")
    generator.link(href=site_url(feed.page_path), rel="alternate", type="text/html")
    generator.generator(GENERATOR)
    for post in posts:
        entry = generator.add_entry(order="append")
        entry.id(site_url(permanent_post_path(post.id)))
        entry.title(xml_text(post.title))
        entry.link(href=site_url(post.url), rel="alternate", type="text/html")
        entry.published(post.date_posted)
        entry.updated(post.updated_at)
        entry.author(name=xml_text(post.author.username))
        for tag in post.tags:
            entry.category(term=tag)
        entry.summary(xml_text(post.excerpt))
        entry.content(xml_text(post.content_html), type="html")
    body: bytes = generator.atom_str(pretty=False)
    return body


def lastmod(moment: datetime) -> str:
    """W3C Datetime, as the sitemap protocol wants it."""
    return moment.isoformat(timespec="seconds")


def _in_sitemaps(name: str) -> str:
    return f"{{{SITEMAP_NAMESPACE}}}{name}"


URLSET, URL, LOC, LASTMOD = map(_in_sitemaps, ("urlset", "url", "loc", "lastmod"))
SITEMAPINDEX, SITEMAP = map(_in_sitemaps, ("sitemapindex", "sitemap"))


def urlset(urls: Iterable[tuple[str, datetime]]) -> bytes:
    """A sitemap of (path, last modified) pairs, at most MAX_SITEMAP_URLS of them.

    Written element by element (lxml's incremental writer): no tree of 150,000 nodes in
    memory, and about a third faster than building one (bench/feeds_at_scale.py).
    """
    origin = site_url("")
    out = BytesIO()
    with etree.xmlfile(out, encoding="UTF-8") as xml:
        xml.write_declaration()
        with xml.element(URLSET, nsmap={None: SITEMAP_NAMESPACE}):
            for path, modified in urls:
                with xml.element(URL):
                    with xml.element(LOC):
                        xml.write(origin + path)
                    with xml.element(LASTMOD):
                        xml.write(lastmod(modified))
    return out.getvalue()


def sitemap_index(paths: Iterable[str]) -> bytes:
    """A sitemap index pointing to the sitemaps at `paths`."""
    out = BytesIO()
    with etree.xmlfile(out, encoding="UTF-8") as xml:
        xml.write_declaration()
        with xml.element(SITEMAPINDEX, nsmap={None: SITEMAP_NAMESPACE}):
            for path in paths:
                with xml.element(SITEMAP), xml.element(LOC):
                    xml.write(site_url(path))
    return out.getvalue()
