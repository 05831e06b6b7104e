"""Authors and the site's name (SPEC.md, Part 3, "Writing, round two"): a user's bio and
created_at, the /authors and /tags pages, SITE_NAME and SITE_DESCRIPTION in every page."""

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import html5lib
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update

import models
from authors import fetch_authors_page
from config import settings
from schemas import MAX_BIO_LENGTH, UserUpdate
from tests.conftest import create_test_post, create_user_and_login
from tests.test_pages import assert_html

pytestmark = pytest.mark.anyio

START = datetime(2025, 1, 1, tzinfo=UTC)


async def set_bio(client, user_and_headers, bio) -> httpx.Response:
    user, headers = user_and_headers
    return await client.patch(f"/api/users/{user['id']}", json={"bio": bio}, headers=headers)


async def post_at(client, db_session, headers, day: int, **fields) -> dict:
    """A post dated `day` days after START (every post of a test would share one moment: the
    test's transaction)."""
    body = {"title": f"Day {day}", "content": "Words.", **fields}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    post = response.json()
    moment = START + timedelta(days=day)
    await db_session.execute(
        update(models.Post).where(models.Post.id == post["id"]).values(date_posted=moment)
    )
    return post


def strict_html(html: str) -> str:
    """The page parses without a single error, as every page of the suite does."""
    html5lib.HTMLParser(strict=True).parse(html)
    return html


# --- bio and created_at: the schema, without HTTP --------------------------------------------


def test_a_bio_is_plain_text_of_at_most_500_characters_trimmed():
    assert UserUpdate.model_validate({"bio": "  Line one\nline two\t \n"}).bio == (
        "Line one\nline two"
    )
    assert UserUpdate.model_validate({"bio": ""}).bio == ""
    assert UserUpdate.model_validate({"bio": "é" * MAX_BIO_LENGTH}).bio == "é" * 500
    for refused in ("x" * (MAX_BIO_LENGTH + 1), "a\x07bell", "nul\x00", "del\x7f", None):
        with pytest.raises(ValidationError):
            UserUpdate.model_validate({"bio": refused})


# --- bio and created_at over HTTP -------------------------------------------------------------


async def test_a_user_sets_their_bio_and_everyone_reads_it(client, alice):
    user, _ = alice
    response = await set_bio(client, alice, "Writes about engines.\nAnd looms.")
    assert response.status_code == 200, response.text
    assert response.json()["bio"] == "Writes about engines.\nAnd looms."
    public = (await client.get(f"/api/users/{user['id']}")).json()
    assert public["bio"] == "Writes about engines.\nAnd looms."
    assert (await set_bio(client, alice, "")).json()["bio"] == ""  # and clears it
    assert (await client.get(f"/api/users/{user['id']}")).json()["bio"] == ""


async def test_a_new_user_has_an_empty_bio_and_the_moment_they_registered(client, alice):
    user, _ = alice
    assert user["bio"] == ""
    created = datetime.fromisoformat(user["created_at"])
    assert created.tzinfo is not None
    assert abs(datetime.now(UTC) - created) < timedelta(days=1)
    public = (await client.get(f"/api/users/{user['id']}")).json()
    assert public["created_at"] == user["created_at"]


@pytest.mark.parametrize(
    ("bio", "message"),
    [
        ("x" * 501, "String should have at most 500 characters"),
        ("Bell\x07", "Value error, must not contain control characters (U+0007)"),
        (None, "Value error, bio may be omitted but not null"),
        (42, "Input should be a valid string"),
    ],
)
async def test_a_bad_bio_is_a_422_and_changes_nothing(client, alice, bio, message):
    await set_bio(client, alice, "Before.")
    response = await set_bio(client, alice, bio)
    assert response.status_code == 422
    assert message in [error["msg"] for error in response.json()["detail"]]
    assert (await client.get(f"/api/users/{alice[0]['id']}")).json()["bio"] == "Before."


async def test_nobody_sets_another_users_bio(client, alice, bob):
    response = await client.patch(
        f"/api/users/{alice[0]['id']}", json={"bio": "Not mine"}, headers=bob[1]
    )
    assert response.status_code == 403
    assert (await client.get(f"/api/users/{alice[0]['id']}")).json()["bio"] == ""


async def test_posts_carry_their_authors_bio_and_created_at(client, alice):
    user, headers = alice
    await set_bio(client, alice, "Engines.")
    post = await create_test_post(client, headers)
    for author in (
        (await client.get(f"/api/posts/{post['id']}")).json()["author"],
        (await client.get("/api/posts")).json()["posts"][0]["author"],
        (await client.get(f"/api/users/{user['id']}/posts")).json()["posts"][0]["author"],
    ):
        assert author["bio"] == "Engines."
        assert author["created_at"] == user["created_at"]


async def test_the_user_page_shows_the_bio_as_text_line_by_line(client, alice):
    user, _ = alice
    await set_bio(client, alice, "Engines & <b>looms</b>.\n\nAnd numbers.")
    html = strict_html(assert_html(await client.get(f"/users/{user['id']}/posts")))
    assert (
        '<div class="bio" id="author-bio"><p>Engines &amp; &lt;b&gt;looms&lt;/b&gt;.</p>'
        "<p>And numbers.</p></div>"
    ) in html
    created = datetime.fromisoformat(user["created_at"])
    joined = re.search(r'Joined <time datetime="([^"]+)">([^<]+)</time>', html)
    assert joined is not None
    assert datetime.fromisoformat(joined[1]) == created.replace(
        microsecond=created.microsecond // 1000 * 1000
    )
    assert joined[2] == f"{created:%B} {created.day}, {created.year}"


async def test_a_user_page_without_a_bio_shows_none(client, alice):
    html = assert_html(await client.get(f"/users/{alice[0]['id']}/posts"))
    assert 'id="author-bio"' not in html


# --- /authors ---------------------------------------------------------------------------------


class AuthorCards(HTMLParser):
    """The authors listed on an /authors page, in order, as (name, "N posts · last ...")."""

    def __init__(self, html: str):
        super().__init__()
        self.names: list[str] = []
        self._in_heading = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2" and (dict(attrs).get("id") or "").startswith("author-"):
            self._in_heading = True

    def handle_data(self, data: str) -> None:
        if self._in_heading and data.strip():
            self.names.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False


async def test_authors_page_lists_who_published_whoever_posted_last_first(
    client, db_session, alice, bob
):
    carol = await create_user_and_login(client, "carol")
    await create_user_and_login(client, "dave")  # nothing written
    erin = await create_user_and_login(client, "erin")
    await post_at(client, db_session, alice[1], 1)
    await post_at(client, db_session, alice[1], 5)
    await post_at(client, db_session, bob[1], 3)
    await post_at(client, db_session, carol[1], 4)
    await post_at(client, db_session, erin[1], 9, published=False)  # a draft only
    await set_bio(client, bob, "Bob writes <short> things.")

    html = strict_html(assert_html(await client.get("/authors")))
    assert AuthorCards(html).names == ["alice", "carol", "bob"]
    assert '<p class="muted" id="author-total">3 authors with a published post</p>' in html
    assert "2 posts · last <time" in html and "1 post · last <time" in html
    assert "January 6, 2025" in html  # alice's last post, not her first
    assert "Bob writes &lt;short&gt; things." in html
    assert f'href="/users/{alice[0]["id"]}/posts"' in html
    assert 'rel="next"' not in html and "Latest authors" not in html


async def test_authors_page_pages_on_with_a_cursor_whatever_is_written_meanwhile(
    client, db_session, monkeypatch
):
    monkeypatch.setattr(settings, "posts_per_page", 2)
    writers = [await create_user_and_login(client, f"writer{n}") for n in range(5)]
    for day, (_, headers) in enumerate(writers):
        await post_at(client, db_session, headers, day)
    first = assert_html(await client.get("/authors"))
    assert AuthorCards(first).names == ["writer4", "writer3"]
    link = re.search(r'rel="next" id="more-authors" href="([^"]+)"', first)
    assert link is not None
    # A newcomer posts meanwhile: the next page still starts right after writer3.
    newcomer = await create_user_and_login(client, "newcomer")
    await post_at(client, db_session, newcomer[1], 30)
    second = strict_html(assert_html(await client.get(link[1].replace("&amp;", "&"))))
    assert AuthorCards(second).names == ["writer2", "writer1"]
    assert 'href="/authors">Latest authors</a>' in second
    third_link = re.search(r'id="more-authors" href="([^"]+)"', second)
    assert third_link is not None
    third = assert_html(await client.get(third_link[1]))
    assert AuthorCards(third).names == ["writer0"]
    assert 'id="more-authors"' not in third


@pytest.mark.parametrize("query", ["cursor=junk", "skip=-1", "skip=10001"])
async def test_authors_page_refuses_a_bad_start_with_an_html_error(client, query):
    response = await client.get(f"/authors?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")


async def test_a_suspended_author_leaves_the_authors_page(client, db_session, alice, bob):
    await create_test_post(client, alice[1])
    await create_test_post(client, bob[1])
    root, headers = await create_user_and_login(client, "root")
    await db_session.execute(
        update(models.User).where(models.User.id == root["id"]).values(role="admin")
    )
    response = await client.post(f"/api/users/{bob[0]['id']}/suspension", headers=headers)
    assert response.status_code == 200, response.text
    assert AuthorCards(assert_html(await client.get("/authors"))).names == ["alice"]


async def test_fetch_authors_page_counts_and_orders_without_http(client, db_session, alice, bob):
    """The query alone: counts of published posts, the last one's date, skip and total."""
    await post_at(client, db_session, alice[1], 2)
    await post_at(client, db_session, bob[1], 1)
    await post_at(client, db_session, bob[1], 7)
    await post_at(client, db_session, bob[1], 8, published=False)
    page = await fetch_authors_page(db_session, limit=1)
    assert [(a.user.username, a.post_count) for a in page.authors] == [("bob", 2)]
    assert page.authors[0].last_posted == START + timedelta(days=7)
    assert (page.total, page.has_more, page.next_cursor is not None) == (2, True, True)
    rest = await fetch_authors_page(db_session, skip=1, limit=1)
    assert [(a.user.username, a.post_count) for a in rest.authors] == [("alice", 1)]
    assert (rest.has_more, rest.next_cursor) == (False, None)
    assert rest.authors[0].user.created_at is not None


async def test_authors_page_without_authors_says_so(client):
    html = strict_html(assert_html(await client.get("/authors")))
    assert "No authors yet." in html
    assert "0 authors with a published post" in html


# --- /tags ------------------------------------------------------------------------------------


TAG_ITEM = re.compile(r'<a class="tag" href="/tags/([^"]+)">#\1</a> <span class="muted">(\d+) post')


async def test_tags_page_lists_every_tag_with_its_count_as_the_api_does(client, alice):
    _, headers = alice
    for tags in (["python", "web"], ["python"], ["rust"]):
        body = {"title": "T", "content": "C", "tags": tags}
        assert (await client.post("/api/posts", json=body, headers=headers)).status_code == 201
    draft = {"title": "D", "content": "C", "tags": ["secret"], "published": False}
    assert (await client.post("/api/posts", json=draft, headers=headers)).status_code == 201

    html = strict_html(assert_html(await client.get("/tags")))
    listed = TAG_ITEM.findall(html)
    api = (await client.get("/api/tags")).json()
    assert [(name, int(count)) for name, count in listed] == [
        (tag["name"], tag["count"]) for tag in api
    ]
    assert listed == [("python", "2"), ("rust", "1"), ("web", "1")]
    assert "secret" not in html
    assert "3 tags on published posts" in html


async def test_tags_page_lists_past_the_apis_hundred(client, alice):
    _, headers = alice
    names = [f"t{n:03d}" for n in range(105)]
    for start in range(0, len(names), 5):
        body = {"title": "T", "content": "C", "tags": names[start : start + 5]}
        assert (await client.post("/api/posts", json=body, headers=headers)).status_code == 201
    assert len((await client.get("/api/tags")).json()) == 100
    html = assert_html(await client.get("/tags"))
    assert len(re.findall(r'<a class="tag" href="/tags/', html)) == 105
    assert "105 tags on published posts" in html


async def test_tags_page_without_tags_says_so(client):
    assert "No tags yet." in strict_html(assert_html(await client.get("/tags")))


# --- The site's name and description; the header ----------------------------------------------


class Header(HTMLParser):
    """The page's <title>, the brand link, the header's links, and every search landmark's
    label."""

    def __init__(self, html: str):
        super().__init__()
        self.title = ""
        self.brand = ""
        self.links: list[str] = []
        self.searches: list[str | None] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "title":
            self._in = "title"
        elif tag == "a" and attributes.get("class") == "brand":
            self._in = "brand"
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")
        if attributes.get("role") == "search":
            self.searches.append(attributes.get("aria-label"))

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "brand":
            self.brand += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "a"):
            self._in = None


async def test_every_page_names_the_site_in_its_title_and_header(client, alice, monkeypatch):
    monkeypatch.setattr(settings, "site_name", "Ada's <notes>")
    monkeypatch.setattr(settings, "site_description", "Engines & looms")
    user, headers = alice
    post = await create_test_post(client, headers, title="Looms")
    pages = {
        "/": "Latest posts · Ada's <notes>",
        "/authors": "Authors · Ada's <notes>",
        "/tags": "Tags · Ada's <notes>",
        f"/users/{user['id']}/posts": "Posts by alice · Ada's <notes>",
        post["url"]: "Looms · Ada's <notes>",
        "/search?q=looms": "Search: looms · Ada's <notes>",
        "/login": "Log in · Ada's <notes>",
    }
    for path, title in pages.items():
        html = assert_html(await client.get(path))
        header = Header(html)
        assert header.title == title, path
        assert header.brand == "Ada's <notes>", path
        assert '<span class="muted" id="site-description">Engines &amp; looms</span>' in html
        assert 'title="Ada&#39;s &lt;notes&gt;" href="/feed.xml"' in html  # the site's feed
    error = Header(assert_html(await client.get("/posts/999999999"), 404))
    assert error.brand == "Ada's <notes>" and error.title.endswith(" · Ada's <notes>")


async def test_without_a_description_the_header_shows_the_name_alone(client):
    html = assert_html(await client.get("/"))
    assert Header(html).title == "Latest posts · Blog"
    assert Header(html).brand == "Blog"
    assert 'id="site-description"' not in html


async def test_the_header_links_the_authors_and_the_tags(client):
    links = Header(assert_html(await client.get("/"))).links
    assert "/authors" in links and "/tags" in links


@pytest.mark.parametrize("path", ["/search", "/search?q=anything", "/"])
async def test_each_search_landmark_has_a_label_of_its_own(client, path):
    searches = Header(assert_html(await client.get(path))).searches
    assert all(searches) and len(set(searches)) == len(searches), searches
    assert len(searches) == (2 if path.startswith("/search") else 1)
