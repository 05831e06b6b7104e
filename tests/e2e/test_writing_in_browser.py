"""Writing in Chromium: Markdown with tags and a preview, drafts, comments, tag pages, and
hostile Markdown that must run no script."""

import re

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.helpers import (
    create_post,
    create_user,
    fill_post,
    log_in,
    path_of,
    preview,
    save_draft,
    shot,
    unique,
)

pytestmark = pytest.mark.e2e

# Each would set the flag or open a dialog if any of it ran as script.
XSS_MARKDOWN = "\n\n".join(
    [
        "# Harmless heading",
        "<script>window.__xss = 'script'; alert('script')</script>",
        "<img src=x onerror=\"window.__xss = 'img'; alert('img')\">",
        "<svg onload=\"window.__xss = 'svg'\"><script>alert('svg')</script></svg>",
        "[click me](javascript:window.__xss='link';alert('link'))",
        "[data link](data:text/html,<script>alert('data')</script>)",
        "![pic\" onerror=\"window.__xss='alt'](https://127.0.0.1:9/x.png)",
        "<iframe src=\"javascript:alert('frame')\"></iframe>",
        "<a href=\"javascript:alert('raw')\">raw link</a>",
        "**<b onmouseover=\"window.__xss='hover'\">hover me</b>**",
    ]
)


def watch_for_script(page: Page) -> list[str]:
    """Every dialog the page opens (each dismissed), for the test to assert there were none."""
    dialogs: list[str] = []

    def note_and_dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note_and_dismiss)
    return dialogs


def assert_no_script_ran(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []


def test_writer_writes_markdown_with_tags_previews_publishes_and_opens_the_tag_page(
    page: Page, api, live_server
):
    writer = create_user(api)
    tag = unique("tag")
    log_in(page, writer.email)
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    fill_post(
        dialog,
        "Markdown in the browser",
        "Some **bold** words and a [link](https://example.com).\n\n- one\n- two",
        f"{tag.upper()}, markdown",
    )
    rendered = preview(dialog)
    expect(rendered.locator("strong")).to_have_text("bold")
    expect(rendered.locator("li")).to_have_count(2)
    shot(page, "editor-preview")
    dialog.get_by_role("button", name="Publish").click()

    expect(page).to_have_url(re.compile(r"/posts/\d+/[a-z0-9-]+$"))
    content = page.locator("#post-content")
    expect(content.locator("strong")).to_have_text("bold")
    link = content.get_by_role("link", name="link")
    expect(link).to_have_attribute("href", "https://example.com")
    expect(link).to_have_attribute("rel", "nofollow ugc noopener")
    expect(content).not_to_contain_text("**")
    tags = page.locator("#post-tags")
    expect(tags.get_by_role("link", name=f"#{tag}")).to_be_visible()
    shot(page, "post-markdown")

    tags.get_by_role("link", name=f"#{tag}").click()
    expect(page).to_have_url(f"{live_server}/tags/{tag}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Posts tagged #{tag}")
    cards = page.locator(".post-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Markdown in the browser")
    expect(cards.first).to_contain_text("Some bold words and a link. one two")
    shot(page, "tag-page")


def test_writer_saves_a_draft_that_only_the_account_page_lists_then_publishes_it(
    page: Page, api, live_server
):
    writer = create_user(api)
    title = f"Draft {unique('d')}"
    log_in(page, writer.email)
    save_draft(page, title, "Not ready *yet*.")

    expect(page).to_have_url(re.compile(r"/account\?notice=draft-saved"))
    drafts = page.locator("#draft-list")
    expect(drafts.locator(".draft")).to_have_count(1)
    expect(drafts).to_contain_text(title)
    expect(drafts).to_contain_text("Not ready yet.")
    shot(page, "account-drafts")

    page.goto("/")
    expect(page.get_by_text(title)).to_have_count(0)
    page.goto(f"/users/{writer.id}/posts")
    expect(page.get_by_text(title)).to_have_count(0)
    draft_id = api.get("/api/users/me/posts", headers=writer.headers).json()["posts"][0]["id"]
    # Its page is the writer's alone: their session shows it, anyone else gets a 404.
    assert page.request.get(f"/posts/{draft_id}").status == 200
    assert api.get(f"/posts/{draft_id}").status_code == 404
    assert api.get(f"/api/posts/{draft_id}").status_code == 404

    page.goto("/account")
    drafts.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(re.compile(rf"{live_server}/posts/{draft_id}/[a-z0-9-]+$"))
    expect(page.locator("#post-title")).to_have_text(title)
    page.goto("/")
    expect(page.locator(".post-card").first).to_contain_text(title)
    page.goto("/account")
    expect(page.locator("#no-drafts")).to_be_visible()


def test_reader_comments_on_someone_elses_post_edits_and_deletes_the_comment(page: Page, api):
    author = create_user(api)
    post = create_post(api, author, f"Talk to me {unique('p')}")
    reader = create_user(api)

    page.goto(f"/posts/{post['id']}")
    expect(page.locator("#comment-login").get_by_role("link", name="Log in")).to_be_visible()
    expect(page.locator("#comment-form")).to_be_hidden()

    log_in(page, reader.email)
    page.goto(f"/posts/{post['id']}")
    comments = page.locator("#comments")
    comments.get_by_label("Your comment").fill("A first thought <b>not bold</b>")
    comments.get_by_role("button", name="Post comment").click()
    item = comments.locator(".comment")
    expect(item).to_have_count(1)
    expect(item.locator(".comment-content")).to_have_text("A first thought <b>not bold</b>")
    expect(page.locator("#comment-count")).to_have_text("1")

    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Edit your comment").fill("A second thought")
    shot(page, "comment-edit")
    item.get_by_role("button", name="Save comment").click()
    expect(item.locator(".comment-content")).to_have_text("A second thought")
    page.reload()
    expect(comments.locator(".comment-content")).to_have_text("A second thought")
    expect(comments.locator(".author")).to_have_text(reader.username)
    shot(page, "post-comments")

    page.once("dialog", lambda confirm: confirm.accept())
    comments.locator(".comment").get_by_role("button", name="Delete").click()
    expect(comments.locator(".comment")).to_have_count(0)
    expect(page.locator("#no-comments")).to_be_visible()
    page.reload()
    expect(page.locator("#comment-count")).to_have_text("0")


def test_post_author_deletes_a_strangers_comment_but_cannot_edit_it(page: Page, api):
    author = create_user(api)
    post = create_post(api, author, "Moderated")
    stranger = create_user(api)
    response = api.post(
        f"/api/posts/{post['id']}/comments", json={"content": "Spam"}, headers=stranger.headers
    )
    assert response.status_code == 201
    log_in(page, author.email)
    page.goto(f"/posts/{post['id']}")
    item = page.locator(".comment")
    expect(item.get_by_role("button", name="Delete")).to_be_visible()
    expect(item.get_by_role("button", name="Edit")).to_have_count(0)
    page.once("dialog", lambda confirm: confirm.accept())
    item.get_by_role("button", name="Delete").click()
    expect(page.locator(".comment")).to_have_count(0)


def test_hostile_markdown_runs_no_script_anywhere_it_is_shown(page: Page, api):
    page.add_init_script("window.__xss = undefined;")
    dialogs = watch_for_script(page)
    author = create_user(api)
    tag = unique("xss")
    post = create_post_with(api, author, "Hostile", XSS_MARKDOWN, [tag])
    reader = create_user(api)
    api.post(
        f"/api/posts/{post['id']}/comments",
        json={"content": "<img src=x onerror=alert('comment')>"},
        headers=reader.headers,
    )

    page.goto(f"/posts/{post['id']}")
    content = page.locator("#post-content")
    expect(content.get_by_role("heading", name="Harmless heading")).to_be_visible()
    assert (
        content.locator("script, iframe, svg, img[onerror], [onmouseover], [onload]").count() == 0
    )
    assert content.locator("a[href^='javascript'], a[href^='data']").count() == 0
    content.get_by_text("hover me").hover()
    content.get_by_text("raw link").click()  # text, not a link: nothing happens
    for link in content.get_by_role("link").all():
        assert (link.get_attribute("href") or "").startswith(("http:", "https:"))
    shot(page, "post-hostile-markdown")
    assert_no_script_ran(page, dialogs)

    for path in ("/", f"/tags/{tag}", f"/users/{author.id}/posts"):
        page.goto(path)
        expect(page.locator(".post-card").first).to_contain_text("Hostile")
        assert_no_script_ran(page, dialogs)

    # The preview inserts server-rendered HTML into the page: it must be as harmless.
    log_in(page, author.email)
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    dialog.get_by_label("Content").fill(XSS_MARKDOWN)
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.locator("[data-preview-body] h1")).to_have_text("Harmless heading")
    shot(page, "preview-hostile-markdown")
    assert_no_script_ran(page, dialogs)
    # Unsent text would make leaving ask first (beforeunload): the preview was all it was for.
    dialog.get_by_label("Content").fill("")

    # And the edit form that writes the returned HTML into the page after saving.
    page.goto(f"/posts/{post['id']}")
    assert path_of(page.url) == f"/posts/{post['id']}"
    assert_no_script_ran(page, dialogs)


def create_post_with(api, user, title: str, content: str, tags: list[str]) -> dict:
    response = api.post(
        "/api/posts", json={"title": title, "content": content, "tags": tags}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return response.json()
