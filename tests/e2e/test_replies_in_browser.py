"""Replies in Chromium: a logged-in reader answers a comment, the reply shows under it, and
stays there after a reload; a visitor who is not logged in gets no Reply button."""

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import create_post, create_user, log_in, shot, unique

pytestmark = pytest.mark.e2e


def test_reader_replies_to_a_comment_and_the_reply_stays_threaded(page: Page, api):
    author = create_user(api)
    post = create_post(api, author, f"Threads {unique('p')}")
    commenter = create_user(api)
    response = api.post(
        f"/api/posts/{post['id']}/comments",
        json={"content": "A first thought"},
        headers=commenter.headers,
    )
    assert response.status_code == 201, response.text
    parent = response.json()
    reader = create_user(api)

    log_in(page, reader.email)
    page.goto(post["url"])
    thread = page.locator(f"#comment-{parent['id']}")
    thread.get_by_role("button", name="Reply", exact=True).click()
    form = thread.locator(".reply-form")
    form.get_by_label("Your reply").fill("An answer <b>not bold</b>")
    form.get_by_role("button", name="Post reply").click()

    replies = page.locator(f"#replies-{parent['id']} > li.comment")
    expect(replies).to_have_count(1)
    expect(replies.locator(".comment-content")).to_have_text("An answer <b>not bold</b>")
    expect(replies.locator(".author")).to_have_text(reader.username)
    expect(form).to_have_count(0)
    expect(page.locator("#comment-count")).to_have_text("1")  # top-level comments
    shot(page, "reply-threaded")

    page.reload()
    expect(page.locator("#comments")).to_have_attribute("data-signed-in", "true")
    expect(replies).to_have_count(1)
    expect(replies.locator(".comment-content")).to_have_text("An answer <b>not bold</b>")
    expect(replies).to_have_attribute("data-parent-id", str(parent["id"]))
    expect(page.locator("#comment-list > li.comment")).to_have_count(1)
    # One level deep: a reply takes no reply of its own, but its author may delete it.
    expect(replies.get_by_role("button", name="Reply", exact=True)).to_have_count(0)
    page.once("dialog", lambda confirm: confirm.accept())
    replies.get_by_role("button", name="Delete").click()
    expect(replies).to_have_count(0)
    expect(page.locator("#comment-count")).to_have_text("1")
    page.reload()
    expect(page.locator("#comments")).to_have_attribute("data-signed-in", "true")
    expect(page.locator(f"#comment-{parent['id']} .comment-content")).to_have_text(
        "A first thought"
    )
    expect(replies).to_have_count(0)


def test_a_visitor_who_is_not_logged_in_gets_no_reply_button(page: Page, api):
    author = create_user(api)
    post = create_post(api, author, f"Quiet {unique('p')}")
    commenter = create_user(api)
    parent = api.post(
        f"/api/posts/{post['id']}/comments", json={"content": "Hello"}, headers=commenter.headers
    ).json()
    answer = api.post(
        f"/api/posts/{post['id']}/comments",
        json={"content": "Hello back", "parent_id": parent["id"]},
        headers=author.headers,
    )
    assert answer.status_code == 201, answer.text

    page.goto(post["url"])
    expect(page.locator("#comments")).to_have_attribute("data-signed-in", "false")
    expect(page.locator(f"#replies-{parent['id']} .comment-content")).to_have_text("Hello back")
    expect(page.get_by_role("button", name="Reply", exact=True)).to_have_count(0)
    expect(page.locator(".reply-form")).to_have_count(0)
    expect(page.locator("#comment-login").get_by_role("link", name="Log in")).to_be_visible()
