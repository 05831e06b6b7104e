"""Atom feeds, the sitemap, robots.txt and the head of a post page, as readers and crawlers see
them: feeds parsed by a real feed parser, the sitemap by an XML parser."""

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from sqlalchemy import update

import models
import routers.feeds
from config import settings, site_url
from content import render_post
from schemas import PostResponse
from syndication import (
    EPOCH,
    FEED_ENTRIES,
    SITEMAP_NAMESPACE,
    Feed,
    atom_feed,
    sitemap_index,
    urlset,
    xml_text,
)
from tests.conftest import create_user_and_login
from tests.test_pages import assert_html

pytestmark = pytest.mark.anyio

ORIGIN = settings.frontend_url.rstrip("/")
NS = {"s": SITEMAP_NAMESPACE}


async def write(client, headers, **fields) -> dict:
    body = {"title": "A post", "content": "Some words.", **fields}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def store_as_written_before(db_session, post_id: int, title: str, content: str) -> dict:
    """Put text the API now refuses (control characters) in a post, as an older release let
    it be stored; the rendered columns as the post's write would have made them."""
    fields = {"title": title, "content": content, **render_post(content)}
    await db_session.execute(update(models.Post).where(models.Post.id == post_id).values(**fields))
    await db_session.flush()
    return fields


async def feed_of(client, path: str) -> feedparser.FeedParserDict:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    return feed


ATOM = {"a": "http://www.w3.org/2005/Atom"}


def raw_contents(document: bytes) -> list[str]:
    """Each entry's `<content>` exactly as the feed carries it (feedparser sanitises it again
    and trims it, so it would hide what the feed itself holds)."""
    root = etree.fromstring(document)
    assert [c.get("type") for c in root.findall("a:entry/a:content", ATOM)] == ["html"] * len(
        root.findall("a:entry", ATOM)
    )
    return [content.text or "" for content in root.findall("a:entry/a:content", ATOM)]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def post_url(post: dict) -> str:
    """The post page's readable address, as links name it."""
    return f"{ORIGIN}{post['url']}"


def entry_id(post: dict) -> str:
    """A feed entry's id: the post's address without the slug, which a new title keeps."""
    return f"{ORIGIN}/posts/{post['id']}"


# --- Feeds -----------------------------------------------------------------------------------


async def test_site_feed_holds_the_newest_published_posts_with_every_field(client, alice):
    older = await write(client, alice[1], title="Older", content="Plain *words*.")
    newer = await write(client, alice[1], title="Newer <b>bold</b>", content="More.")
    feed = await feed_of(client, "/feed.xml")

    assert feed.feed.title == "Blog"
    assert feed.feed.id == f"{ORIGIN}/feed.xml"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"self": f"{ORIGIN}/feed.xml", "alternate": f"{ORIGIN}/"}
    assert [entry.link for entry in feed.entries] == [post_url(newer), post_url(older)]
    entry = feed.entries[1]
    assert entry.id == entry_id(older)
    assert entry.title == "Older"
    assert entry.author == "alice"
    assert moment(entry.published) == moment(older["date_posted"])
    assert moment(entry.updated) == moment(older["updated_at"])
    assert entry.content[0].type == "text/html"
    assert entry.content[0].value == older["content_html"].strip()
    raw = raw_contents((await client.get("/feed.xml")).content)
    assert raw == [newer["content_html"], older["content_html"]]
    assert feed.entries[0].title == "Newer <b>bold</b>"  # a title is text, not markup
    assert moment(feed.feed.updated) == max(moment(p["updated_at"]) for p in (older, newer))


async def test_an_edit_moves_the_entry_and_the_feed_updated_but_not_published(client, alice):
    post = await write(client, alice[1])
    edited = await client.patch(
        f"/api/posts/{post['id']}", json={"content": "Edited."}, headers=alice[1]
    )
    feed = await feed_of(client, "/feed.xml")
    (entry,) = feed.entries
    assert moment(entry.updated) == moment(edited.json()["updated_at"]) > moment(entry.published)
    assert moment(feed.feed.updated) == moment(entry.updated)


async def test_site_feed_stops_at_the_twenty_newest(client, alice):
    posts = [await write(client, alice[1], title=f"Post {n}") for n in range(FEED_ENTRIES + 2)]
    feed = await feed_of(client, "/feed.xml")
    assert [e.title for e in feed.entries] == [p["title"] for p in reversed(posts)][:FEED_ENTRIES]


async def test_drafts_never_appear_in_any_feed(client, alice):
    await write(client, alice[1], title="Secret draft", published=False, tags=["news"])
    shown = await write(client, alice[1], title="Shown", tags=["news"])
    for path in ("/feed.xml", f"/users/{shown['user_id']}/feed.xml", "/tags/news/feed.xml"):
        feed = await feed_of(client, path)
        assert [entry.title for entry in feed.entries] == ["Shown"], path
        response = await client.get(path, headers=alice[1])  # not even to its author
        assert b"Secret draft" not in response.content


async def test_feed_content_is_the_sanitised_html_and_the_summary_plain_text(client, alice):
    source = '<script>alert(1)</script> [click](javascript:alert(2)) <img src=x onerror="x()">'
    post = await write(client, alice[1], content=source)
    response = await client.get("/feed.xml")
    assert raw_contents(response.content) == [post["content_html"]]
    # The summary is the excerpt as text (no `type`: "text"): a reader shows it as written.
    root = etree.fromstring(response.content)
    (summary,) = root.findall("a:entry/a:summary", ATOM)
    assert summary.get("type") is None and summary.text == post["excerpt"]
    entry = summary.getparent()
    assert entry is not None
    entry.remove(summary)
    # The rest of the document: the script is escaped text inside the escaped HTML, never markup.
    rest = etree.tostring(root)
    assert b"<script" not in response.content and b"&lt;script" not in rest
    assert b"href=&quot;javascript" not in response.content


async def test_characters_xml_cannot_carry_are_dropped_not_a_server_error(
    client, alice, db_session
):
    # The API refuses control characters now; a post stored before that may still hold them.
    post = await write(client, alice[1])
    post |= await store_as_written_before(
        db_session, post["id"], title="Bell\x07 and \x1b escape", content="a\x01b \ufffe"
    )
    feed = await feed_of(client, "/feed.xml")
    (entry,) = feed.entries
    assert entry.title == "Bell and  escape"
    (content,) = raw_contents((await client.get("/feed.xml")).content)
    assert content == xml_text(post["content_html"]) != post["content_html"]
    assert "<p>ab </p>" in content


async def test_an_empty_feed_is_still_a_valid_feed(client):
    feed = await feed_of(client, "/feed.xml")
    assert feed.entries == []
    assert moment(feed.feed.updated) == EPOCH


async def test_user_feed_holds_only_that_users_posts(client, alice, bob):
    mine = await write(client, alice[1], title="Alice's")
    await write(client, bob[1], title="Bob's")
    feed = await feed_of(client, f"/users/{alice[0]['id']}/feed.xml")
    assert [entry.link for entry in feed.entries] == [post_url(mine)]
    assert feed.feed.title == "Posts by alice · Blog"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links["alternate"] == f"{ORIGIN}/users/{alice[0]['id']}/posts"
    assert links["self"] == f"{ORIGIN}/users/{alice[0]['id']}/feed.xml"


async def test_user_feed_of_an_unknown_user_is_a_404(client):
    response = await client.get("/users/999999999/feed.xml")
    assert_html(response, 404)  # an error page, as on every path outside the API
    assert "User not found" in response.text


async def test_user_without_posts_has_an_empty_feed(client, alice):
    feed = await feed_of(client, f"/users/{alice[0]['id']}/feed.xml")
    assert feed.entries == []


async def test_tag_feed_holds_the_posts_with_that_tag(client, alice):
    tagged = await write(client, alice[1], title="Tagged", tags=["python", "web"])
    await write(client, alice[1], title="Other", tags=["rust"])
    feed = await feed_of(client, "/tags/Python/feed.xml")  # normalised as the tag page does
    assert [entry.link for entry in feed.entries] == [post_url(tagged)]
    assert feed.feed.title == "#python · Blog"
    assert {link.rel: link.href for link in feed.feed.links}["alternate"] == f"{ORIGIN}/tags/python"


async def test_tag_feed_of_an_unused_tag_is_empty_and_of_an_impossible_tag_a_404(client):
    feed = await feed_of(client, "/tags/nobody-uses-this/feed.xml")
    assert feed.entries == []
    response = await client.get("/tags/no_such!tag/feed.xml")
    assert "Tag not found" in assert_html(response, 404)


# --- Categories, summaries, the site's name; RFC 4287's schema ---------------------------------

SCHEMA_PATH = Path(__file__).with_name("atom.rng")
ATOM_SCHEMA = etree.RelaxNG(etree.parse(SCHEMA_PATH))
# The schema's Schematron rules (annotations, which RELAX NG skips): (context, [XPath tests]).
SCHEMATRON = {"s": "http://www.ascc.net/xml/schematron"}
ATOM_RULES = [
    (rule.get("context"), [test.get("test") for test in rule.findall("s:assert", SCHEMATRON)])
    for rule in etree.parse(SCHEMA_PATH).iterfind(".//s:rule", SCHEMATRON)
]
PREFIXED = {"atom": ATOM["a"]}


def assert_valid_atom(document: bytes) -> etree._Element:
    """`document` is an Atom feed by RFC 4287's schema (Appendix B), its rules included."""
    root = etree.fromstring(document)
    assert ATOM_SCHEMA.validate(root), ATOM_SCHEMA.error_log
    for context, tests in ATOM_RULES:
        for element in root.xpath(f"descendant-or-self::{context}", namespaces=PREFIXED):
            for test in tests:
                assert element.xpath(f"boolean({test})", namespaces=PREFIXED), (context, test)
    return root


def test_the_schema_has_the_rfcs_rules_and_refuses_what_the_rfc_refuses():
    """The checks below can fail: an entry without an id, a category without a term, a summary
    of an unknown type and an entry with neither link nor content are not Atom."""
    assert [context for context, _ in ATOM_RULES] == ["atom:feed", "atom:entry", "atom:entry"]
    valid = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:feed</id><title>T</title>'
        b"<updated>2025-01-02T03:04:05.678901+00:00</updated><entry><id>urn:entry</id>"
        b"<title>E</title><updated>2025-01-02T03:04:05Z</updated><author><name>a</name></author>"
        b'<link href="http://example.com/"/><category term="python"/><summary>S</summary>'
        b"</entry></feed>"
    )
    assert_valid_atom(valid)
    for broken in (
        valid.replace(b"<id>urn:entry</id>", b""),
        valid.replace(b' term="python"', b""),
        valid.replace(b"<summary>", b'<summary type="markdown">'),
        valid.replace(b"2025-01-02T03:04:05Z", b"yesterday"),
        valid.replace(b'<link href="http://example.com/"/>', b""),
        valid.replace(b"<author><name>a</name></author>", b""),
    ):
        with pytest.raises(AssertionError):
            assert_valid_atom(broken)


def a_post(**fields) -> PostResponse:
    moment = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    post = {
        "id": 7,
        "title": "Notes",
        "content": "Some *words*.",
        "user_id": 3,
        "date_posted": moment,
        "updated_at": moment,
        "author": {"id": 3, "username": "ada", "image_file": None},
        "content_html": "<p>Some <em>words</em>.</p>\n",
        "excerpt": "Some words.",
        "reading_time_minutes": 1,
        "tags": [],
        "published": True,
        "comment_count": 0,
        "slug": "notes",
    }
    return PostResponse.model_validate(post | fields)


def test_atom_feed_entries_carry_their_tags_and_excerpt_and_stay_valid_atom():
    """syndication.atom_feed without HTTP: a category per tag, the excerpt as summary, the
    feed's subtitle when it has one; valid by RFC 4287's schema, with and without them."""
    tagged = a_post(id=8, tags=["python", "web-dev"], excerpt="Bell\x07 <b>and</b> more")
    plain = a_post(excerpt="")
    feed = Feed("/feed.xml", "Ada's notes", "/", subtitle="Engines & looms")
    root = assert_valid_atom(atom_feed(feed, [tagged, plain]))
    assert root.findtext("a:subtitle", None, ATOM) == "Engines & looms"
    first, second = root.findall("a:entry", ATOM)
    assert [dict(c.attrib) for c in first.findall("a:category", ATOM)] == [
        {"term": "python"},
        {"term": "web-dev"},
    ]
    assert first.findtext("a:summary", None, ATOM) == "Bell <b>and</b> more"
    assert second.findall("a:category", ATOM) == []
    assert second.findtext("a:summary", None, ATOM) == ""  # the excerpt, even when empty
    untitled = assert_valid_atom(atom_feed(Feed("/feed.xml", "Blog", "/"), []))
    assert untitled.find("a:subtitle", ATOM) is None


async def test_entries_carry_a_category_per_tag_and_the_excerpt_as_summary(client, alice):
    post = await write(
        client, alice[1], content="The *first* words, then more.", tags=["web", "python"]
    )
    for path in ("/feed.xml", f"/users/{alice[0]['id']}/feed.xml", "/tags/web/feed.xml"):
        (entry,) = (await feed_of(client, path)).entries
        assert [tag.term for tag in entry.tags] == ["python", "web"], path
        assert entry.summary == post["excerpt"] == "The first words, then more.", path


async def test_every_feed_is_valid_atom_by_the_rfc_4287_schema(client, alice, monkeypatch):
    await write(client, alice[1], title="Tagged", tags=["python", "web"])
    await write(client, alice[1], title="Plain", content="<b>raw</b> & *more*")
    paths = ("/feed.xml", f"/users/{alice[0]['id']}/feed.xml", "/tags/python/feed.xml")
    for description in ("", "Engines & looms"):
        monkeypatch.setattr(settings, "site_description", description)
        for path in (*paths, "/tags/unused/feed.xml"):
            response = await client.get(path)
            assert response.status_code == 200, path
            root = assert_valid_atom(response.content)
            assert root.findtext("a:subtitle", None, ATOM) == (description or None), path


async def test_feed_titles_and_subtitles_name_the_site(client, alice, monkeypatch):
    monkeypatch.setattr(settings, "site_name", "Ada's <notes>")
    monkeypatch.setattr(settings, "site_description", "Engines & looms")
    await write(client, alice[1], tags=["python"])
    titles = {
        "/feed.xml": "Ada's <notes>",
        f"/users/{alice[0]['id']}/feed.xml": "Posts by alice · Ada's <notes>",
        "/tags/python/feed.xml": "#python · Ada's <notes>",
    }
    for path, title in titles.items():
        feed = await feed_of(client, path)
        assert feed.feed.title == title, path
        assert feed.feed.subtitle == "Engines & looms", path


# --- Sitemap and robots.txt ------------------------------------------------------------------


def parse_sitemap(response) -> etree._Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    return etree.fromstring(response.content)


def urls_of(root: etree._Element) -> dict[str, datetime]:
    assert root.tag == f"{{{SITEMAP_NAMESPACE}}}urlset"
    return {
        url.findtext("s:loc", "", NS): moment(url.findtext("s:lastmod", "", NS))
        for url in root.findall("s:url", NS)
    }


def seconds(value: str) -> datetime:
    return moment(value).replace(microsecond=0)


async def test_sitemap_lists_published_posts_and_their_authors_pages(client, alice, bob):
    first = await write(client, alice[1])
    second = await write(client, alice[1])
    edited = await client.patch(
        f"/api/posts/{second['id']}", json={"title": "Edited"}, headers=alice[1]
    )
    await write(client, bob[1], published=False)  # bob has only a draft
    carol = await create_user_and_login(client, "carol")  # and carol nothing at all

    urls = urls_of(parse_sitemap(await client.get("/sitemap.xml")))
    assert urls == {
        post_url(first): seconds(first["updated_at"]),
        post_url(edited.json()): seconds(edited.json()["updated_at"]),
        f"{ORIGIN}/users/{alice[0]['id']}/posts": seconds(edited.json()["updated_at"]),
    }
    for user in (bob[0], carol[0]):  # (already implied; said for the reader)
        assert f"{ORIGIN}/users/{user['id']}/posts" not in urls


async def test_an_empty_sitemap_is_valid_xml(client):
    assert urls_of(parse_sitemap(await client.get("/sitemap.xml"))) == {}


# 2 posts and 2 user pages: the posts alone, or the posts with the users, are too many.
@pytest.mark.parametrize("limit", [1, 3])
async def test_more_urls_than_one_file_holds_make_the_sitemap_an_index(
    client, alice, bob, monkeypatch, limit
):
    """With the limit lowered, the index points to numbered sitemaps, each a range of ids."""
    low = await write(client, alice[1])
    high = await write(client, bob[1])
    monkeypatch.setattr(routers.feeds, "MAX_SITEMAP_URLS", limit)
    monkeypatch.setattr(routers.feeds, "IDS_PER_SITEMAP", high["id"] - 1)
    last = max(high["id"], alice[0]["id"], bob[0]["id"])
    count = -(-last // (high["id"] - 1))

    root = parse_sitemap(await client.get("/sitemap.xml"))
    assert root.tag == f"{{{SITEMAP_NAMESPACE}}}sitemapindex"
    locations = [loc.text for loc in root.findall("s:sitemap/s:loc", NS)]
    assert locations == [f"{ORIGIN}/sitemap-{n}.xml" for n in range(1, count + 1)]

    first = urls_of(parse_sitemap(await client.get("/sitemap-1.xml")))
    second = urls_of(parse_sitemap(await client.get("/sitemap-2.xml")))
    assert post_url(low) in first and post_url(low) not in second
    assert post_url(high) in second and post_url(high) not in first
    for user in (alice[0], bob[0]):
        number = -(-user["id"] // (high["id"] - 1))
        holding = urls_of(parse_sitemap(await client.get(f"/sitemap-{number}.xml")))
        assert f"{ORIGIN}/users/{user['id']}/posts" in holding

    beyond = await client.get(f"/sitemap-{count + 1}.xml")
    assert "Sitemap not found" in assert_html(beyond, 404)
    for other_spelling in ("0", "01", "+1", "1.0", "%201", "1e0", "9" * 30):
        response = await client.get(f"/sitemap-{other_spelling}.xml")
        assert "Sitemap not found" in assert_html(response, 404)


async def test_a_sitemap_exactly_full_is_one_file_and_one_url_more_an_index(
    client, alice, monkeypatch
):
    """Two posts and their author are three URLs: one file holds them at three, not at two."""
    posts = [await write(client, alice[1]), await write(client, alice[1])]
    author = f"{ORIGIN}/users/{alice[0]['id']}/posts"
    monkeypatch.setattr(routers.feeds, "MAX_SITEMAP_URLS", 3)
    urls = urls_of(parse_sitemap(await client.get("/sitemap.xml")))
    assert set(urls) == {post_url(posts[0]), post_url(posts[1]), author}

    monkeypatch.setattr(routers.feeds, "MAX_SITEMAP_URLS", 2)
    root = parse_sitemap(await client.get("/sitemap.xml"))
    assert root.tag == f"{{{SITEMAP_NAMESPACE}}}sitemapindex"


async def test_the_first_post_is_in_the_sitemap(client, alice, db_session):
    """Ids start at 1: the blog's very first post is listed like any other."""
    post = await write(client, alice[1])
    await db_session.execute(update(models.Post).where(models.Post.id == post["id"]).values(id=1))
    urls = urls_of(parse_sitemap(await client.get("/sitemap.xml")))
    assert f"{ORIGIN}/posts/1/a-post" in urls


async def test_numbered_sitemaps_reach_the_highest_post_id_and_the_highest_author_id(
    client, alice, bob, db_session, monkeypatch
):
    """The index counts its sitemaps from whichever id is higher, a post's or an author's, so
    the last range is never left out (a blog has more posts than authors, or the other way)."""
    await write(client, bob[1])
    bob_id = bob[0]["id"]  # registered after alice: at least 2
    per_sitemap = bob_id - 1
    monkeypatch.setattr(routers.feeds, "MAX_SITEMAP_URLS", 1)
    monkeypatch.setattr(routers.feeds, "IDS_PER_SITEMAP", per_sitemap)

    async def index_for_post_id(post_id: int) -> list[str]:
        await db_session.execute(
            update(models.Post).where(models.Post.user_id == bob_id).values(id=post_id)
        )
        root = parse_sitemap(await client.get("/sitemap.xml"))
        return [loc.text or "" for loc in root.findall("s:sitemap/s:loc", NS)]

    def numbered(count: int) -> list[str]:
        return [f"{ORIGIN}/sitemap-{n}.xml" for n in range(1, count + 1)]

    # The post's id is the highest: its range is the last sitemap.
    high = 3 * bob_id
    assert await index_for_post_id(high) == numbered(-(-high // per_sitemap))
    # The author's id is the highest: their page's range is the last sitemap.
    last = -(-bob_id // per_sitemap)
    assert await index_for_post_id(1) == numbered(last)
    holding = urls_of(parse_sitemap(await client.get(f"/sitemap-{last}.xml")))
    assert f"{ORIGIN}/users/{bob_id}/posts" in holding


async def test_without_a_published_post_there_is_no_numbered_sitemap(client, alice):
    await write(client, alice[1], published=False)
    assert urls_of(parse_sitemap(await client.get("/sitemap.xml"))) == {}
    assert "Sitemap not found" in assert_html(await client.get("/sitemap-1.xml"), 404)


async def test_robots_txt_names_the_sitemap_and_keeps_crawlers_off_private_pages(client):
    response = await client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert lines[:2] == ["User-agent: *", "Allow: /"]
    assert "Disallow: /account" in lines and "Disallow: /api/" in lines
    assert f"Sitemap: {ORIGIN}/sitemap.xml" in lines


# --- Pages -----------------------------------------------------------------------------------


class HeadTags(HTMLParser):
    """The <link> and <meta> tags of a page's head, as attribute dicts."""

    def __init__(self, html: str):
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("link", "meta"):
            (self.links if tag == "link" else self.metas).append(dict(attrs))

    def meta(self, key: str) -> list[str | None]:
        return [m["content"] for m in self.metas if key in (m.get("name"), m.get("property"))]

    def feeds(self) -> list[str | None]:
        atom = ("alternate", "application/atom+xml")
        return [link["href"] for link in self.links if (link.get("rel"), link.get("type")) == atom]


async def test_post_page_has_canonical_description_and_opengraph_tags(client, alice):
    post = await write(
        client, alice[1], title='Quotes " & <tags>', content="The *first* words.", tags=["a"]
    )
    response = await client.get(f"/posts/{post['id']}")
    head = HeadTags(response.text)
    assert [link["href"] for link in head.links if link.get("rel") == "canonical"] == [
        post_url(post)
    ]
    assert head.meta("description") == [post["excerpt"]] == ["The first words."]
    assert head.meta("og:title") == ['Quotes " & <tags>']  # escaped in the page, whole here
    assert head.meta("og:description") == [post["excerpt"]]
    assert head.meta("og:type") == ["article"]
    assert head.meta("og:url") == [post_url(post)]
    assert head.meta("article:tag") == ["a"]
    assert head.meta("og:site_name") == ["Blog"]  # SITE_NAME's default
    assert 'content="Quotes &#34; &amp; &lt;tags&gt;"' in response.text


async def test_post_page_names_the_site_in_og_site_name_and_its_title(client, alice, monkeypatch):
    monkeypatch.setattr(settings, "site_name", "Ada's <notes>")
    post = await write(client, alice[1], title="Looms")
    html = assert_html(await client.get(post["url"]))
    assert HeadTags(html).meta("og:site_name") == ["Ada's <notes>"]
    assert "<title>Looms · Ada&#39;s &lt;notes&gt;</title>" in html


async def test_every_page_links_the_site_feed_and_lists_link_their_own(client, alice):
    await write(client, alice[1], tags=["python"])
    user_feed = f"/users/{alice[0]['id']}/feed.xml"
    pages = {
        "/": ["/feed.xml"],
        "/login": ["/feed.xml"],
        "/tags/python": ["/feed.xml", "/tags/python/feed.xml"],
        f"/users/{alice[0]['id']}/posts": ["/feed.xml", user_feed],
        "/posts/999999999": ["/feed.xml"],  # an error page too
    }
    for path, feeds in pages.items():
        response = await client.get(path)
        assert HeadTags(response.text).feeds() == feeds, path
        assert f'<a href="{feeds[-1]}">' in response.text, path  # and a visible link


@pytest.mark.parametrize(
    ("frontend_url", "feed"),
    [
        ("https://blog.example.com/", "https://blog.example.com/feed.xml"),
        ("https://blog.example.com", "https://blog.example.com/feed.xml"),
        # A site under a path keeps all of it: only the trailing slash goes.
        ("https://example.com/TeX/", "https://example.com/TeX/feed.xml"),
    ],
)
def test_absolute_urls_use_the_configured_origin_not_the_request(monkeypatch, frontend_url, feed):
    monkeypatch.setattr(settings, "frontend_url", frontend_url)
    assert site_url("/feed.xml") == feed


# --- The documents, without HTTP -------------------------------------------------------------


def test_xml_text_drops_only_what_xml_cannot_carry():
    kept = "tab\there\nline\r\nemoji 🎉 é 中 \ud7ff \ue000 \ufffd"
    assert xml_text(kept) == kept
    assert xml_text("a\x00b\x01c\x08d\x0be\x1ff\ufffeg\uffffh") == "abcdefgh"


def test_urlset_and_index_are_sitemap_protocol_documents():
    updated = datetime.fromisoformat("2026-01-02T03:04:05.678+00:00")
    root = etree.fromstring(urlset([("/posts/1", updated)]))
    assert root.nsmap == {None: SITEMAP_NAMESPACE}
    assert urls_of(root) == {f"{ORIGIN}/posts/1": updated.replace(microsecond=0)}
    assert root.findtext("s:url/s:lastmod", "", NS) == "2026-01-02T03:04:05+00:00"
    index = etree.fromstring(sitemap_index(["/sitemap-1.xml", "/sitemap-2.xml"]))
    assert index.tag == f"{{{SITEMAP_NAMESPACE}}}sitemapindex"
    assert [loc.text for loc in index.findall("s:sitemap/s:loc", NS)] == [
        f"{ORIGIN}/sitemap-1.xml",
        f"{ORIGIN}/sitemap-2.xml",
    ]
