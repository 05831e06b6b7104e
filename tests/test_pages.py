"""HTML pages as the server renders them: content without JavaScript, escaping, HTML errors."""

import re

import pytest

from routers.pages import NOTICES, excerpt
from tests.conftest import auth_header, create_test_post, create_test_user, login_user

pytestmark = pytest.mark.anyio

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def assert_html(response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def create_posts(client, headers, count: int) -> list[dict]:
    return [await create_test_post(client, headers, title=f"Post {n}") for n in range(1, count + 1)]


# --- Lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/posts"])
async def test_home_page_renders_newest_posts_on_the_server(client, alice, path):
    _, headers = alice
    await create_posts(client, headers, 3)
    html = assert_html(await client.get(path))
    assert html.index("Post 3") < html.index("Post 2") < html.index("Post 1")
    assert 'href="/users/' in html
    assert 'id="load-more"' not in html
    assert 'data-next-cursor=""' in html


async def test_home_page_shows_an_empty_state_without_posts(client):
    html = assert_html(await client.get("/"))
    assert "No posts yet." in html


async def test_home_page_renders_one_page_and_links_load_more_to_the_next(client, alice):
    _, headers = alice
    await create_posts(client, headers, 15)
    html = assert_html(await client.get("/"))
    assert html.count('class="card post-card"') == 10
    assert 'data-api="/api/posts"' in html
    next_cursor = (await client.get("/api/posts")).json()["next_cursor"]
    assert f'data-next-cursor="{next_cursor}"' in html  # "Load more" asks the API for it
    assert f'href="/posts?cursor={next_cursor}"' in html  # and links to it, without scripts


TITLE = re.compile(r'<h2 class="post-title"><a href="/posts/\d+/[a-z0-9-]+">([^<]+)</a>')


async def test_list_pages_follow_a_cursor_to_the_posts_after_it(client, alice):
    user, headers = alice
    await create_posts(client, headers, 15)
    for path in ("/posts", f"/users/{user['id']}/posts"):
        html = assert_html(await client.get(path))
        shown = TITLE.findall(html)
        link = re.search(r'id="load-more" href="([^"]+)"', html)
        assert link is not None
        listed = (await client.get(f"/api{path}?limit=100")).json()["posts"]
        everything = [post["title"] for post in listed]
        assert len(shown) == 10 and len(everything) > 10
        await create_test_post(client, headers, title="Written meanwhile")
        html = assert_html(await client.get(link[1]))
        assert TITLE.findall(html) == everything[len(shown) :]
        assert 'id="load-more"' not in html


@pytest.mark.parametrize("query", ["cursor=junk", "cursor=", "skip=3&cursor={cursor}"])
async def test_list_pages_refuse_a_bad_cursor_with_an_html_422(client, alice, query):
    user, headers = alice
    await create_posts(client, headers, 11)
    cursor = (await client.get("/api/posts")).json()["next_cursor"]
    for path in ("/posts", f"/users/{user['id']}/posts", "/tags/python"):
        response = await client.get(f"{path}?{query.format(cursor=cursor)}")
        assert "Invalid request" in assert_html(response, 422)


async def test_home_page_with_skip_renders_the_next_page_without_javascript(client, alice):
    _, headers = alice
    await create_posts(client, headers, 15)
    html = assert_html(await client.get("/posts?skip=10"))
    assert html.count('class="card post-card"') == 5
    assert ">Post 1<" in html
    assert ">Post 6<" not in html
    assert 'id="load-more"' not in html


async def test_home_page_with_negative_skip_is_an_html_422(client):
    html = assert_html(await client.get("/posts?skip=-1"), 422)
    assert "Invalid request" in html


async def test_user_posts_page_lists_only_that_users_posts(client, alice, bob):
    alice_user, alice_headers = alice
    _, bob_headers = bob
    await create_test_post(client, alice_headers, title="By Alice")
    await create_test_post(client, bob_headers, title="By Bob")
    html = assert_html(await client.get(f"/users/{alice_user['id']}/posts"))
    assert "Posts by alice" in html
    assert "By Alice" in html
    assert "By Bob" not in html
    assert f'data-api="/api/users/{alice_user["id"]}/posts"' in html
    assert "1 post<" in html


async def test_user_posts_page_links_load_more_to_its_own_next_page(client, alice):
    user, headers = alice
    await create_posts(client, headers, 11)
    html = assert_html(await client.get(f"/users/{user['id']}/posts"))
    cursor = (await client.get(f"/api/users/{user['id']}/posts")).json()["next_cursor"]
    assert f'href="/users/{user["id"]}/posts?cursor={cursor}"' in html


async def test_user_posts_page_of_missing_user_is_an_html_404(client):
    html = assert_html(await client.get("/users/999999/posts"), 404)
    assert "User not found" in html


LONG_POST = " ".join(f"word{n}" for n in range(1, 5001))  # 5,000 words, about 40 KB


@pytest.mark.parametrize("path", ["/", "/users/{id}/posts"])
async def test_list_pages_show_an_excerpt_of_each_post_not_the_whole_post(client, alice, path):
    user, headers = alice
    await create_test_post(client, headers, title="Long one", content=LONG_POST)
    html = assert_html(await client.get(path.format(id=user["id"])))
    [card_text] = re.findall(r'<p class="post-excerpt">(.*?)</p>', html, re.S)
    assert card_text.startswith("word1 word2 word3 ")
    assert card_text.endswith("…")
    assert len(card_text) <= 200
    assert "word5000" not in html


async def test_list_pages_show_a_short_post_whole(client, alice):
    _, headers = alice
    await create_test_post(client, headers, content="Short\n\nand   sweet")
    html = assert_html(await client.get("/"))
    assert '<p class="post-excerpt">Short and sweet</p>' in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  two\n\nlines  ", "two lines"),
        ("a" * 200, "a" * 200),  # exactly the length: whole
        ("a" * 150 + " " + "b" * 60, "a" * 150 + "…"),  # cut at the word, room for "…"
        ("x" * 300, "x" * 199 + "…"),  # one huge word is cut inside
        ("a" * 200 + " b", "a" * 199 + "…"),
        ("a" * 100 + " " + "b" * 100, "a" * 100 + "…"),  # 201 with the space between: cut
        ("word " * 50, "word " * 39 + "word…"),  # 40 words and "…" are 200 exactly
        ("a b " + "c" * 200, "a b…"),  # every word that fits stays
        ("a " + "x" * 196 + " b c", "a " + "x" * 196 + "…"),  # one word gives room for "…"
        ("\n  " + "x" * 300 + " end", "x" * 199 + "…"),  # the first word, not what precedes it
    ],
)
def test_excerpt_cuts_at_a_word_within_200_characters(text, expected):
    assert excerpt(text) == expected
    assert len(excerpt(text)) <= 200


async def test_post_page_shows_the_whole_post(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers, content=LONG_POST)
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert "word5000" in html


# --- One post --------------------------------------------------------------------------------


async def test_post_page_renders_the_post_with_its_author(client, alice):
    user, headers = alice
    post = await create_test_post(client, headers, title="A title", content="Line one\nLine two")
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert '<h1 class="post-title" id="post-title">A title</h1>' in html
    assert "Line one\nLine two" in html
    assert f'data-author-id="{user["id"]}"' in html
    assert "<title>A title · Blog</title>" in html


async def test_post_page_hides_owner_actions_until_the_browser_knows_the_owner(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert re.search(r'id="owner-actions"\s+hidden', html)
    assert re.search(r'id="edit-post-form"[^>]*\bhidden\b', html)


async def test_missing_post_page_is_an_html_404(client):
    html = assert_html(await client.get("/posts/999999"), 404)
    assert "<h1>Post not found</h1>" in html
    assert '<link rel="stylesheet" href="/static/css/main.css">' in html


async def test_unknown_page_path_is_an_html_404(client):
    html = assert_html(await client.get("/no-such-page"), 404)
    assert "There is nothing at this address." in html


async def test_api_errors_stay_json(client):
    response = await client.get("/api/posts/999999")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Post not found"}


# --- Escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["home", "post", "user"])
async def test_hostile_title_and_username_render_as_text(client, page):
    user = await create_test_user(client, f"<b>{page}</b>", email=f"{page}@example.com")
    headers = auth_header(await login_user(client, user["email"]))
    post = await create_test_post(client, headers, title=HOSTILE, content="<script>x()</script>")
    path = {"home": "/", "post": f"/posts/{post['id']}", "user": f"/users/{user['id']}/posts"}
    html = assert_html(await client.get(path[page]))
    assert ESCAPED in html
    assert HOSTILE not in html
    assert "<script>x()" not in html
    assert f"&lt;b&gt;{page}&lt;/b&gt;" in html


async def test_reset_page_escapes_a_hostile_token(client):
    html = assert_html(await client.get('/reset-password?token="><script>alert(1)</script>'))
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert "<script>alert(1)" not in html


# --- Forms and account -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/login", 'id="login-form"'),
        ("/register", 'id="register-form"'),
        ("/forgot-password", 'id="forgot-form"'),
        ("/account", 'id="profile-form"'),
    ],
)
async def test_form_pages_render_their_form(client, path, form):
    html = assert_html(await client.get(path))
    assert form in html
    # Without JavaScript a form must never put a password in the URL.
    assert 'method="post"' in html


async def test_account_page_has_the_session_list_its_script_fills(client):
    html = assert_html(await client.get("/account"))
    assert re.search(r'<ul class="session-list" id="session-list"[^>]*></ul>', html)
    # Shown by the script once it knows there is another session to end.
    assert re.search(r'id="end-other-sessions-button"[^>]*\bhidden\b', html)


async def test_reset_password_page_sends_no_referrer_and_keeps_the_token(client):
    response = await client.get("/reset-password?token=abc123")
    html = assert_html(response)
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert '<input type="hidden" name="token" value="abc123">' in html


async def test_reset_password_page_without_token_says_the_link_is_incomplete(client):
    response = await client.get("/reset-password")
    html = assert_html(response)
    assert response.headers["referrer-policy"] == "no-referrer"
    assert 'id="reset-form"' not in html
    assert "This link has no reset token." in html


async def test_other_pages_keep_the_default_referrer_policy(client):
    response = await client.get("/login")
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("notice", sorted(NOTICES))
async def test_known_notice_is_shown_after_a_redirect(client, notice):
    html = assert_html(await client.get(f"/login?notice={notice}"))
    assert f'<p class="notice" role="status">{NOTICES[notice]}</p>' in html


async def test_unknown_notice_is_not_echoed(client):
    html = assert_html(await client.get("/login?notice=<b>hi</b>"))
    assert 'class="notice"' not in html
    assert "<b>hi</b>" not in html


# --- Assets and policy -----------------------------------------------------------------------


async def test_pages_load_only_local_assets_and_no_inline_script_or_style(client, alice):
    _, headers = alice
    post = await create_test_post(client, headers)
    for path in ["/", f"/posts/{post['id']}", "/login", "/register", "/account", "/nope"]:
        html = (await client.get(path)).text
        assert "<script>" not in html
        assert " style=" not in html
        assert " onclick=" not in html
        html = re.sub(r'<link rel="canonical"[^>]*>', "", html)  # names the page, loads nothing
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith(("/", "#")), f"{path} loads {url}"


@pytest.mark.parametrize(
    "asset",
    [
        "/static/css/main.css",
        "/static/js/api.js",
        "/static/js/ui.js",
        "/static/js/nav.js",
        "/static/js/posts-list.js",
        "/static/js/post.js",
        "/static/js/auth.js",
        "/static/js/account.js",
        "/static/js/draft.js",
        "/static/js/verify.js",
        "/static/favicon.svg",
        "/static/profile_pics/default.jpg",
    ],
)
async def test_page_assets_are_served(client, asset):
    response = await client.get(asset)
    assert response.status_code == 200
    assert response.content


PAGE_SCRIPTS = ["api.js", "ui.js", "nav.js", "posts-list.js", "post.js", "auth.js", "account.js"]


async def test_page_scripts_keep_no_token_in_web_storage_and_send_no_bearer(client):
    """The session is the HttpOnly cookie: no script stores or sends a token of its own."""
    for name in [*PAGE_SCRIPTS, "draft.js", "verify.js"]:
        script = (await client.get(f"/static/js/{name}")).text
        assert script, name
        for word in ("localStorage", "sessionStorage", "Authorization", "Bearer"):
            assert word not in script, f"{name} mentions {word}"


async def test_pages_send_the_strict_content_security_policy(client):
    response = await client.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
