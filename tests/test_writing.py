"""Posts as a writer uses them: Markdown, tags, drafts and the preview."""

from datetime import datetime

import pytest

from tests.conftest import auth_header, create_test_post

pytestmark = pytest.mark.anyio


async def write(client, headers, **fields) -> dict:
    body = {"title": "A post", "content": "Some *Markdown*.", **fields}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


# --- Markdown ---------------------------------------------------------------------------------


async def test_a_post_is_stored_with_its_rendered_html_excerpt_and_reading_time(client, alice):
    _, headers = alice
    post = await write(client, headers, content="# Hi\n\nSome **bold** words " + "w " * 250)
    assert post["content_html"].startswith("<h1>Hi</h1>\n<p>Some <strong>bold</strong> words")
    assert post["excerpt"].startswith("Hi Some bold words w w")
    assert post["excerpt"].endswith("…") and len(post["excerpt"]) <= 200
    assert post["reading_time_minutes"] == 2  # 254 words
    assert (await client.get(f"/api/posts/{post['id']}")).json()["content_html"] == post[
        "content_html"
    ]


async def test_raw_html_and_script_urls_never_reach_the_stored_html(client, alice):
    _, headers = alice
    source = '<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror="alert(1)">'
    post = await write(client, headers, content=source)
    html = post["content_html"]
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html


async def test_editing_the_content_renders_it_again(client, alice):
    _, headers = alice
    post = await write(client, headers)
    response = await client.patch(
        f"/api/posts/{post['id']}", json={"content": "[link](https://example.com)"}, headers=headers
    )
    assert response.json()["content_html"] == (
        '<p><a href="https://example.com" rel="nofollow ugc noopener">link</a></p>\n'
    )
    assert response.json()["excerpt"] == "link"


async def test_a_post_with_only_title_and_content_is_published_without_tags(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    assert post["published"] is True
    assert post["tags"] == []
    assert post["comment_count"] == 0
    assert post["updated_at"] == post["date_posted"]


# --- Preview ----------------------------------------------------------------------------------


async def test_preview_renders_without_storing(client, alice):
    _, headers = alice
    response = await client.post(
        "/api/posts/preview", json={"content": "**hi** <b>x</b>"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json() == {"content_html": "<p><strong>hi</strong> &lt;b&gt;x&lt;/b&gt;</p>\n"}
    assert (await client.get("/api/posts")).json()["total"] == 0


async def test_preview_needs_a_login(client):
    response = await client.post("/api/posts/preview", json={"content": "x"})
    assert response.status_code == 401
    assert response.json()["detail"] == "Not authenticated"


async def test_preview_of_empty_content_is_422(client, alice):
    _, headers = alice
    response = await client.post("/api/posts/preview", json={"content": ""}, headers=headers)
    assert response.status_code == 422


# --- Tags -------------------------------------------------------------------------------------


async def test_tags_are_trimmed_lowercased_deduplicated_and_sorted(client, alice):
    _, headers = alice
    post = await write(client, headers, tags=[" Python ", "web", "PYTHON", "a-1"])
    assert post["tags"] == ["a-1", "python", "web"]


@pytest.mark.parametrize(
    "tags",
    [
        ["a", "b", "c", "d", "e", "f"],
        ["has space"],
        ["under_score"],
        ["é"],
        [""],
        ["   "],
        ["x" * 31],
        ["tag!"],
        "python",
        [1],
        [None],
    ],
)
async def test_invalid_tags_are_422(client, alice, tags):
    _, headers = alice
    response = await client.post(
        "/api/posts", json={"title": "t", "content": "c", "tags": tags}, headers=headers
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["ok", "tag!"], "a tag is 1 to 30 characters of a-z, 0-9 and '-'"),
        (["a", "b", "c", "d", "e", "f"], "a post has at most 5 tags"),
    ],
)
async def test_a_refused_tag_list_says_which_rule_it_breaks(client, alice, tags, message):
    """The 422 names the tags field and the rule (the list is checked whole, once)."""
    _, headers = alice
    response = await client.post(
        "/api/posts", json={"title": "t", "content": "c", "tags": tags}, headers=headers
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "tags"]
    assert error["msg"] == f"Value error, {message}"


async def test_five_tags_of_thirty_characters_are_accepted(client, alice):
    _, headers = alice
    tags = [f"{i}" + "x" * 29 for i in range(5)]
    assert (await write(client, headers, tags=tags))["tags"] == tags


async def test_a_sixth_tag_that_is_a_duplicate_is_not_a_sixth_tag(client, alice):
    _, headers = alice
    post = await write(client, headers, tags=["a", "b", "c", "d", "e", "E"])
    assert post["tags"] == ["a", "b", "c", "d", "e"]


async def test_posts_filter_by_tag_with_total_counting_only_those(client, alice):
    _, headers = alice
    await write(client, headers, title="py1", tags=["python"])
    await write(client, headers, title="go", tags=["go"])
    await write(client, headers, title="py2", tags=["python", "web"])
    page = (await client.get("/api/posts", params={"tag": "Python", "limit": 1})).json()
    assert [p["title"] for p in page["posts"]] == ["py2"]
    assert page["total"] == 2 and page["has_more"] is True
    empty = (await client.get("/api/posts", params={"tag": "rust"})).json()
    assert empty["posts"] == [] and empty["total"] == 0


async def test_an_invalid_tag_filter_is_422(client):
    assert (await client.get("/api/posts", params={"tag": "no spaces"})).status_code == 422


async def test_tag_list_counts_published_posts_most_used_first_then_by_name(client, alice, bob):
    _, headers = alice
    _, bob_headers = bob
    await write(client, headers, tags=["python", "web"])
    await write(client, bob_headers, tags=["python", "api"])
    await write(client, headers, tags=["zzz"])
    await write(client, headers, tags=["python", "secret"], published=False)
    tags = (await client.get("/api/tags")).json()
    assert tags == [
        {"name": "python", "count": 2},
        {"name": "api", "count": 1},
        {"name": "web", "count": 1},
        {"name": "zzz", "count": 1},
    ]


async def test_replacing_a_post_without_tags_keeps_them(client, alice):
    _, headers = alice
    post = await write(client, headers, tags=["keep"], published=False)
    response = await client.put(
        f"/api/posts/{post['id']}", json={"title": "New", "content": "New"}, headers=headers
    )
    assert response.json()["tags"] == ["keep"]
    assert response.json()["published"] is False


async def test_tags_can_be_changed_and_cleared(client, alice):
    _, headers = alice
    post = await write(client, headers, tags=["one"])
    url = f"/api/posts/{post['id']}"
    assert (await client.patch(url, json={"tags": ["Two"]}, headers=headers)).json()["tags"] == [
        "two"
    ]
    assert (await client.patch(url, json={"tags": []}, headers=headers)).json()["tags"] == []


@pytest.mark.parametrize("field", ["tags", "published"])
async def test_null_tags_or_published_is_422(client, alice, field):
    _, headers = alice
    post = await write(client, headers)
    response = await client.patch(f"/api/posts/{post['id']}", json={field: None}, headers=headers)
    assert response.status_code == 422


# --- Drafts -----------------------------------------------------------------------------------


@pytest.fixture
async def draft(client, alice) -> dict:
    _, headers = alice
    return await write(client, headers, title="Secret draft", tags=["hidden"], published=False)


async def test_a_draft_is_visible_to_its_author(client, alice, draft):
    _, headers = alice
    response = await client.get(f"/api/posts/{draft['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json()["published"] is False


@pytest.mark.parametrize("who", ["anonymous", "bob", "bad token"])
async def test_a_draft_is_not_found_by_anyone_else(client, bob, draft, who):
    headers = {"anonymous": {}, "bob": bob[1], "bad token": auth_header("not-a-token")}[who]
    response = await client.get(f"/api/posts/{draft['id']}", headers=headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "Post not found"
    page = await client.get(f"/posts/{draft['id']}", headers=headers)
    assert page.status_code == 404


async def test_a_stale_token_does_not_show_its_users_drafts(client, alice, draft):
    user, headers = alice
    await client.patch(
        "/api/users/me/password",
        json={"current_password": "correct horse battery", "new_password": "another long one"},
        headers=headers,
    )
    assert (await client.get(f"/api/posts/{draft['id']}", headers=headers)).status_code == 404


async def test_drafts_stay_out_of_every_list_and_count(client, alice, draft):
    user, headers = alice
    await write(client, headers, title="Public", tags=["hidden"])
    for url in ("/api/posts", f"/api/users/{user['id']}/posts", "/api/posts?tag=hidden"):
        no_token: dict[str, str] = {}
        for with_token in (no_token, headers):
            page = (await client.get(url, headers=with_token)).json()
            assert [p["title"] for p in page["posts"]] == ["Public"], url
            assert page["total"] == 1
    assert (await client.get("/api/tags")).json() == [{"name": "hidden", "count": 1}]
    home = (await client.get("/")).text
    assert "Public" in home and "Secret draft" not in home


async def test_my_posts_lists_drafts_and_published_newest_first(client, alice, bob, draft):
    user, headers = alice
    await write(client, headers, title="Public")
    await write(client, bob[1], title="Bob's")
    response = await client.get("/api/users/me/posts", headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    page = response.json()
    assert [(p["title"], p["published"]) for p in page["posts"]] == [
        ("Public", True),
        ("Secret draft", False),
    ]
    assert (page["total"], page["has_more"]) == (2, False)
    second = (await client.get("/api/users/me/posts?skip=1&limit=1", headers=headers)).json()
    assert [p["title"] for p in second["posts"]] == ["Secret draft"]


async def test_my_posts_needs_a_login(client):
    response = await client.get("/api/users/me/posts")
    assert response.status_code == 401


async def test_publishing_a_draft_dates_it_then_and_shows_it(client, alice, draft):
    _, headers = alice
    url = f"/api/posts/{draft['id']}"
    published = (await client.patch(url, json={"published": True}, headers=headers)).json()
    assert published["published"] is True
    assert datetime.fromisoformat(published["date_posted"]) > datetime.fromisoformat(
        draft["date_posted"]
    )
    assert published["updated_at"] == published["date_posted"]
    assert (await client.get(url)).status_code == 200
    assert (await client.get("/api/posts")).json()["total"] == 1


async def test_publishing_again_keeps_the_first_publication_date(client, alice, draft):
    _, headers = alice
    url = f"/api/posts/{draft['id']}"
    first = (await client.patch(url, json={"published": True}, headers=headers)).json()
    await client.patch(url, json={"published": False}, headers=headers)
    assert (await client.get(url)).status_code == 404  # a draft again
    again = (await client.patch(url, json={"published": True}, headers=headers)).json()
    assert again["date_posted"] == first["date_posted"]
    assert again["updated_at"] > first["updated_at"]


async def test_editing_a_draft_keeps_its_date_and_moves_updated_at(client, alice, draft):
    _, headers = alice
    url = f"/api/posts/{draft['id']}"
    edited = (await client.patch(url, json={"title": "Better"}, headers=headers)).json()
    assert edited["date_posted"] == draft["date_posted"]
    assert edited["updated_at"] > draft["updated_at"]


async def test_an_edit_that_changes_nothing_keeps_updated_at(client, alice):
    _, headers = alice
    post = await write(client, headers, title="Same")
    url = f"/api/posts/{post['id']}"
    again = (await client.patch(url, json={"title": "Same"}, headers=headers)).json()
    assert again["updated_at"] == post["updated_at"]


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
async def test_someone_elses_draft_cannot_be_changed_and_is_not_found(client, bob, draft, method):
    _, headers = bob
    kwargs = {} if method == "delete" else {"json": {"title": "x", "content": "y"}}
    response = await getattr(client, method)(f"/api/posts/{draft['id']}", headers=headers, **kwargs)
    assert response.status_code == 404
    assert response.json()["detail"] == "Post not found"


async def test_someone_elses_published_post_is_still_403(client, alice, bob):
    post = await write(client, alice[1])
    response = await client.patch(f"/api/posts/{post['id']}", json={"title": "x"}, headers=bob[1])
    assert response.status_code == 403


@pytest.mark.parametrize("url", ["/api/posts?tag=many", "/api/users/me/posts"])
async def test_a_tag_or_own_list_beyond_the_counted_bound_estimates_its_total(
    client, db_session, alice, url
):
    from sqlalchemy import text

    from queries import COUNTED_UP_TO

    user, headers = alice
    await db_session.execute(
        text(
            "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
            " tags, published, user_id, date_posted)"
            " SELECT 'Post', 'Body', '<p>Body</p>', 'Body', 1, ARRAY['many'], g % 2 = 0,"
            " :user_id, now() FROM generate_series(1, :count) g"
        ),
        {"user_id": user["id"], "count": 2 * COUNTED_UP_TO + 2},
    )
    await db_session.execute(text("ANALYZE posts"))
    page = (await client.get(url, headers=headers)).json()
    assert page["total"] >= COUNTED_UP_TO and page["has_more"] is True
    assert len(page["posts"]) == 10
    if "tag" in url:
        assert all(post["published"] for post in page["posts"])


async def test_a_reader_with_a_token_reads_from_the_primary_and_anonymous_from_the_replica(
    db_session, alice
):
    """Drafts may not have reached a replica yet: a token moves the request's reads to the
    primary (the session's own connection); anonymous reads keep the read engine."""
    from auth import get_viewer_id
    from database import READ_ENGINE

    user, headers = alice
    token = headers["Authorization"].removeprefix("Bearer ")
    db_session.info[READ_ENGINE] = replica = object()
    assert await get_viewer_id(None, None, db_session) is None
    assert db_session.info[READ_ENGINE] is replica
    assert await get_viewer_id(token, None, db_session) == user["id"]
    assert READ_ENGINE not in db_session.info
