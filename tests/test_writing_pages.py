"""The pages of writing: rendered Markdown, tags as links, tag pages and comments, on the server."""

import re

import pytest

from tests.test_pages import assert_html

pytestmark = pytest.mark.anyio


async def write(client, headers, **fields) -> dict:
    body = {"title": "A post", "content": "Some words.", **fields}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_post_page_renders_the_html_not_the_markdown(client, alice):
    post = await write(client, alice[1], content="Some **bold** and [a link](https://example.com)")
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    view = html.split('id="post-content">', 1)[1].split("</div>", 1)[0]
    assert view == post["content_html"]
    assert "<strong>bold</strong>" in view and "**bold**" not in view


async def test_hostile_markdown_renders_as_text_on_the_post_page(client, alice):
    post = await write(client, alice[1], content='<img src=x onerror="alert(1)"> [x](javascript:y)')
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert "<img src=x" not in html and 'href="javascript' not in html
    assert "&lt;img src=x onerror=" in html


async def test_post_page_links_its_tags_to_tag_pages(client, alice):
    post = await write(client, alice[1], tags=["python", "web"])
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert '<a class="tag" href="/tags/python">#python</a>' in html
    assert '<a class="tag" href="/tags/web">#web</a>' in html


async def test_cards_show_the_excerpt_tags_and_comment_count(client, alice, bob):
    post = await write(client, alice[1], content="# Heading\n\n" + "word " * 100, tags=["x"])
    await client.post(f"/api/posts/{post['id']}/comments", json={"content": "hi"}, headers=bob[1])
    html = assert_html(await client.get("/"))
    assert f'<p class="post-excerpt">{post["excerpt"]}</p>' in html
    assert "# Heading" not in html
    assert '<a class="tag" href="/tags/x">#x</a>' in html
    assert f'<a href="{post["url"]}#comments">1 comment</a>' in html


async def test_tag_page_lists_the_published_posts_with_that_tag(client, alice):
    await write(client, alice[1], title="Tagged", tags=["python"])
    await write(client, alice[1], title="Other", tags=["go"])
    await write(client, alice[1], title="Hidden draft", tags=["python"], published=False)
    html = assert_html(await client.get("/tags/Python"))
    assert "Posts tagged" in html and "#python" in html
    assert "Tagged" in html
    assert "Other" not in html and "Hidden draft" not in html
    assert "1 post<" in html
    assert 'data-api="/api/posts?tag=python"' in html


async def test_tag_page_of_an_unused_tag_is_empty(client):
    html = assert_html(await client.get("/tags/nothing-here"))
    assert "No posts yet." in html


async def test_tag_page_of_an_impossible_tag_is_an_html_404(client):
    assert_html(await client.get("/tags/not a tag"), 404)


async def test_post_page_renders_its_comments_as_text(client, alice, bob):
    post = await write(client, alice[1])
    for text in ("First!", "<script>alert(1)</script>"):
        response = await client.post(
            f"/api/posts/{post['id']}/comments", json={"content": text}, headers=bob[1]
        )
        assert response.status_code == 201
    html = assert_html(await client.get(f"/posts/{post['id']}"))
    assert '<span id="comment-count">2</span> comments' in html
    assert html.index("First!") < html.index("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert "<script>alert(1)" not in html
    assert re.search(r'id="comment-form"[^>]*\bhidden\b', html)  # shown once logged in


async def test_post_page_pages_its_comments_without_javascript(client, alice, bob):
    post = await write(client, alice[1])
    for i in range(52):
        await client.post(
            f"/api/posts/{post['id']}/comments", json={"content": f"c{i}"}, headers=bob[1]
        )
    first = assert_html(await client.get(f"/posts/{post['id']}"))
    assert ">c49<" in first and ">c50<" not in first
    assert f'href="{post["url"]}?comments_skip=50#comments"' in first
    rest = assert_html(await client.get(f"/posts/{post['id']}?comments_skip=50"))
    assert ">c50<" in rest and ">c51<" in rest and ">c49<" not in rest


async def test_account_page_has_a_place_for_drafts(client):
    html = assert_html(await client.get("/account"))
    assert 'id="drafts"' in html and 'id="draft-list"' in html


async def test_the_editor_offers_tags_a_draft_and_a_preview(client, alice):
    post = await write(client, alice[1], tags=["a", "b"])
    home = assert_html(await client.get("/"))
    assert 'name="published" value="false">Save draft</button>' in home
    assert "data-preview-button" in home and 'name="tags"' in home
    page = assert_html(await client.get(f"/posts/{post['id']}"))
    assert 'name="tags" autocomplete="off" aria-describedby="edit-tags-hint" value="a, b"' in page


async def test_draft_editor_page_is_a_shell_that_carries_no_post(client, alice):
    draft = await write(
        client, alice[1], title="Secret title", content="Secret words", published=False
    )
    html = assert_html(await client.get(f"/account/drafts/{draft['id']}"))
    assert f'id="draft-editor" data-post-id="{draft["id"]}"' in html
    assert '<script type="module" src="/static/js/draft.js"></script>' in html
    assert re.search(r'<form id="draft-form"[^>]*\bhidden\b', html)  # shown once loaded
    assert 'name="published" value="true">Publish</button>' in html
    assert "Secret" not in html


async def test_draft_editor_page_of_an_impossible_id_is_an_html_error(client):
    for path in ("/account/drafts/abc", "/account/drafts/0", f"/account/drafts/{2**31}"):
        assert_html(await client.get(path), 422)


async def test_a_post_page_404_offers_the_draft_editor_to_a_logged_in_reader(client, alice):
    draft = await write(client, alice[1], title="Secret title", published=False)
    html = assert_html(await client.get(f"/posts/{draft['id']}"), 404)
    # Shown by nav.js once a user is logged in; the same for any missing post.
    hint = f'data-auth="in" hidden>If this is your draft, <a href="/account/drafts/{draft["id"]}">'
    assert hint in html
    assert "Secret" not in html
    assert f'href="/account/drafts/{draft["id"] + 1}"' in assert_html(
        await client.get(f"/posts/{draft['id'] + 1}"), 404
    )


async def test_other_404_pages_offer_no_draft_editor(client):
    for path in ("/nowhere", "/users/999999/posts", "/posts/1/more/further"):
        assert 'id="draft-hint"' not in assert_html(await client.get(path), 404)


async def test_a_post_page_that_is_not_a_404_offers_no_draft_editor(client, alice):
    post = await write(client, alice[1])
    html = assert_html(await client.get(f"/posts/{post['id']}?comments_skip=-1"), 422)
    assert 'id="draft-hint"' not in html
