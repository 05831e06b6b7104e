"""Readable URLs: a post's page at /posts/{id}/{slug}, other slugs redirected there, the Part 1
address still answering, and every link, feed and sitemap naming the readable one (SPEC.md,
Part 3, "Writing, round two")."""

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import feedparser
import pytest

from config import settings
from tests.conftest import DEFAULT_PASSWORD
from tests.test_pages import assert_html

pytestmark = pytest.mark.anyio

ORIGIN = settings.frontend_url.rstrip("/")
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


async def write(client, headers, **fields) -> dict:
    body = {"title": "A post", "content": "Some words.", **fields}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


class HeadLinks(HTMLParser):
    """The canonical link and og:url of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.canonical: list[str | None] = []
        self.og_url: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "link" and named.get("rel") == "canonical":
            self.canonical.append(named.get("href"))
        if tag == "meta" and named.get("property") == "og:url":
            self.og_url.append(named.get("content"))


async def cookie_login(client, email: str) -> None:
    """Log the client in as the pages do: the session cookie (kept by the client)."""
    form = {"username": email, "password": DEFAULT_PASSWORD}
    response = await client.post("/api/users/session", data=form)
    assert response.status_code == 200, response.text


# --- The API --------------------------------------------------------------------------------


async def test_a_post_carries_its_slug_and_the_path_of_its_page(client, alice):
    post = await write(client, alice[1], title="Héllo, World: 10 Things!")
    assert post["slug"] == "hello-world-10-things"
    assert post["url"] == f"/posts/{post['id']}/hello-world-10-things"
    for read in (
        (await client.get(f"/api/posts/{post['id']}")).json(),
        (await client.get("/api/posts")).json()["posts"][0],
        (await client.get(f"/api/users/{alice[0]['id']}/posts")).json()["posts"][0],
        (await client.get("/api/posts", params={"q": "things"})).json()["posts"][0],
    ):
        assert (read["slug"], read["url"]) == (post["slug"], post["url"])


async def test_a_title_with_nothing_ascii_gets_the_slug_post(client, alice):
    post = await write(client, alice[1], title="你好 🎉")
    assert (post["slug"], post["url"]) == ("post", f"/posts/{post['id']}/post")
    assert (await client.get(post["url"])).status_code == 200


async def test_a_title_change_moves_the_slug_and_the_old_one_redirects(client, alice):
    post = await write(client, alice[1], title="First title")
    changed = await client.patch(
        f"/api/posts/{post['id']}", json={"title": "Second title"}, headers=alice[1]
    )
    assert changed.json()["url"] == f"/posts/{post['id']}/second-title"
    assert (await client.get(f"/api/posts/{post['id']}")).json()["slug"] == "second-title"

    old = await client.get(f"/posts/{post['id']}/first-title")
    assert old.status_code == 301
    assert old.headers["location"] == f"/posts/{post['id']}/second-title"
    assert (await client.get(f"/posts/{post['id']}/second-title")).status_code == 200

    replaced = await client.put(
        f"/api/posts/{post['id']}", json={"title": "Third", "content": "x"}, headers=alice[1]
    )
    assert replaced.json()["slug"] == "third"


async def test_a_content_change_keeps_the_slug(client, alice):
    post = await write(client, alice[1], title="Stays put")
    changed = await client.patch(
        f"/api/posts/{post['id']}", json={"content": "New words."}, headers=alice[1]
    )
    assert changed.json()["url"] == post["url"] == f"/posts/{post['id']}/stays-put"


# --- The page and its redirects -------------------------------------------------------------


async def test_the_readable_address_shows_the_post_with_its_canonical_link(client, alice):
    post = await write(client, alice[1], title="Readable")
    html = assert_html(await client.get(post["url"]))
    assert 'id="post-title">Readable</h1>' in html
    head = HeadLinks(html)
    assert head.canonical == head.og_url == [f"{ORIGIN}{post['url']}"]


async def test_the_part_one_address_shows_the_same_page_naming_the_readable_one(client, alice):
    post = await write(client, alice[1], title="Old style")
    response = await client.get(f"/posts/{post['id']}")
    assert response.status_code == 200
    head = HeadLinks(assert_html(response))
    assert head.canonical == head.og_url == [f"{ORIGIN}/posts/{post['id']}/old-style"]
    assert (await client.get(post["url"])).text == response.text


@pytest.mark.parametrize("slug", ["wrong", "Old-Style", "old-style-", "%20", "old_style"])
async def test_any_other_slug_redirects_permanently_to_the_readable_address(client, alice, slug):
    post = await write(client, alice[1], title="Old style")
    response = await client.get(f"/posts/{post['id']}/{slug}")
    assert response.status_code == 301
    assert response.headers["location"] == post["url"]


async def test_the_redirect_keeps_the_query_string_and_never_names_the_host(client, alice):
    post = await write(client, alice[1], title="Kept")
    response = await client.get(
        f"/posts/{post['id']}/other?comments_skip=5&a=%2F%20b",
        headers={"Host": "evil.example"},
    )
    assert response.status_code == 301
    assert response.headers["location"] == f"{post['url']}?comments_skip=5&a=%2F%20b"
    assert "evil" not in response.headers["location"]
    assert response.headers["cache-control"] == "no-cache"  # revalidated, never a loop


async def test_an_unknown_post_is_a_404_whatever_the_slug(client, alice):
    post = await write(client, alice[1])
    assert_html(await client.get(f"/posts/{post['id'] + 1}/a-post"), 404)
    assert_html(await client.get(f"/posts/{post['id'] + 1}/other"), 404)


async def test_a_draft_redirects_for_its_author_by_cookie_and_is_a_404_to_others(
    client, alice, bob
):
    draft = await write(client, alice[1], title="My draft", published=False)
    wrong = f"/posts/{draft['id']}/not-it?x=1"
    await cookie_login(client, "alice@example.com")

    response = await client.get(wrong)
    assert response.status_code == 301
    assert response.headers["location"] == f"/posts/{draft['id']}/my-draft?x=1"
    assert response.headers["cache-control"] == "private, no-store"
    page = await client.get(draft["url"])
    assert page.status_code == 200 and 'id="draft-notice"' in page.text
    assert page.headers["cache-control"] == "private, no-store"

    client.cookies.clear()
    await cookie_login(client, "bob@example.com")
    assert (await client.get(wrong)).status_code == 404
    assert (await client.get(draft["url"])).status_code == 404
    client.cookies.clear()
    for path in (wrong, draft["url"]):
        html = assert_html(await client.get(path), 404)
        assert "My draft" not in html
        # The 404 still offers a logged-in author the editor, as on /posts/{id}.
        assert f'<a href="/account/drafts/{draft["id"]}">' in html


# --- Links, feeds and the sitemap -----------------------------------------------------------


async def test_every_list_page_links_posts_at_their_readable_address(client, alice):
    post = await write(client, alice[1], title="Linked everywhere", tags=["linked"])
    for path in (
        "/",
        "/posts",
        "/tags/linked",
        f"/users/{alice[0]['id']}/posts",
        "/search?q=linked",
    ):
        html = assert_html(await client.get(path))
        assert f'<a href="{post["url"]}">' in html, path
        assert f'href="/posts/{post["id"]}"' not in html, path


async def test_the_post_page_links_more_comments_and_the_login_at_its_readable_address(
    client, alice, bob, monkeypatch
):
    monkeypatch.setattr("routers.pages.COMMENTS_PER_PAGE", 1)
    post = await write(client, alice[1], title="Talked about")
    for text in ("one", "two"):
        comment = {"content": text}
        await client.post(f"/api/posts/{post['id']}/comments", json=comment, headers=bob[1])
    html = assert_html(await client.get(post["url"]))
    assert f'href="{post["url"]}?comments_skip=1#comments">More comments</a>' in html
    assert f'<a href="/login?next={post["url"]}">Log in</a>' in html


async def test_feeds_link_the_readable_address_and_keep_a_permanent_id(client, alice):
    post = await write(client, alice[1], title="In the feed", tags=["fed"])
    for path in ("/feed.xml", f"/users/{alice[0]['id']}/feed.xml", "/tags/fed/feed.xml"):
        entry = feedparser.parse((await client.get(path)).content).entries[0]
        assert entry.link == f"{ORIGIN}/posts/{post['id']}/in-the-feed", path
        # A feed reader knows the entry by an id a new title never changes.
        assert entry.id == f"{ORIGIN}/posts/{post['id']}", path

    await client.patch(f"/api/posts/{post['id']}", json={"title": "Renamed"}, headers=alice[1])
    entry = feedparser.parse((await client.get("/feed.xml")).content).entries[0]
    assert (entry.link, entry.id) == (
        f"{ORIGIN}/posts/{post['id']}/renamed",
        f"{ORIGIN}/posts/{post['id']}",
    )


async def test_the_sitemap_lists_posts_at_their_readable_address(client, alice):
    post = await write(client, alice[1], title="Mapped")
    root = ET.fromstring((await client.get("/sitemap.xml")).content)
    locations = {loc.text for loc in root.findall("s:url/s:loc", SITEMAP)}
    assert f"{ORIGIN}/posts/{post['id']}/mapped" in locations
    assert f"{ORIGIN}/posts/{post['id']}" not in locations
