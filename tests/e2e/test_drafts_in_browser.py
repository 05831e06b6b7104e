"""Editing a draft in Chromium: the editor page loads it with the author's session; nobody else,
logged in or not, ever sees its text."""

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    User,
    create_user,
    fill_post,
    log_in,
    preview,
    save_draft,
    shot,
    unique,
)

pytestmark = pytest.mark.e2e

NOT_FOUND = "Draft not found"


def create_draft(api: httpx.Client, user: User, title: str, content: str) -> dict:
    body = {"title": title, "content": content, "tags": ["first"], "published": False}
    response = api.post("/api/posts", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_writer_opens_a_draft_from_the_account_edits_previews_saves_and_publishes_it(
    page: Page, api, live_server
):
    writer = create_user(api)
    title = f"Draft {unique('d')} <b>not bold</b>"
    log_in(page, writer.email)
    save_draft(page, title, "A first go.", tags="first")

    expect(page).to_have_url(re.compile(r"/account\?notice=draft-saved"))
    draft = page.locator("#draft-list .draft")
    expect(draft.get_by_role("link", name=title)).to_be_visible()
    shot(page, "account-draft-links")
    draft.get_by_role("link", name="Edit").click()
    expect(page).to_have_url(re.compile(r"/account/drafts/\d+$"))
    draft_id = int(page.url.rsplit("/", 1)[1])

    form = page.locator("#draft-form")
    expect(form.get_by_label("Title")).to_have_value(title)
    expect(form.get_by_label("Content")).to_have_value("A first go.")
    expect(form.get_by_label("Tags")).to_have_value("first")
    new_title = f"Ready {unique('r')}"
    fill_post(form, new_title, "Now **bold** and\n\n- one\n- two", "First, second")
    rendered = preview(form)
    expect(rendered.locator("strong")).to_have_text("bold")
    expect(rendered.locator("li")).to_have_count(2)
    shot(page, "draft-editor")

    form.get_by_role("button", name="Save draft").click()
    expect(form.locator(".form-success")).to_have_text("Draft saved.")
    expect(form.get_by_label("Tags")).to_have_value("first, second")
    assert api.get(f"/api/posts/{draft_id}").status_code == 404  # still a draft

    page.reload()
    expect(form.get_by_label("Title")).to_have_value(new_title)
    expect(form.get_by_label("Content")).to_have_value("Now **bold** and\n\n- one\n- two")
    expect(page).to_have_title(f"Edit draft: {new_title} · Blog")

    form.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(re.compile(rf"{live_server}/posts/{draft_id}/[a-z0-9-]+$"))
    expect(page.locator("#post-title")).to_have_text(new_title)
    expect(page.locator("#post-content strong")).to_have_text("bold")
    page.goto("/")
    expect(page.locator(".post-card").first).to_contain_text(new_title)
    page.goto("/account")
    expect(page.locator("#no-drafts")).to_be_visible()

    # A published post's editor is its own page.
    page.goto(f"/account/drafts/{draft_id}")
    expect(page).to_have_url(re.compile(rf"{live_server}/posts/{draft_id}/[a-z0-9-]+$"))


def test_another_user_opening_the_draft_editor_sees_not_found_never_the_text(page: Page, api):
    author = create_user(api)
    draft = create_draft(api, author, f"Secret {unique('s')}", "Secret words")
    stranger = create_user(api)
    log_in(page, stranger.email)

    for post_id in (draft["id"], 2**31 - 1):  # someone else's draft reads as a missing one
        page.goto(f"/account/drafts/{post_id}")
        expect(page.locator("#draft-heading")).to_have_text(NOT_FOUND)
        expect(page.locator("#draft-status")).to_contain_text("no draft of yours")
        expect(page.locator("#draft-form")).to_be_hidden()
        assert "Secret" not in page.content()
        assert page.locator("#draft-form input[name=title]").input_value() == ""
    shot(page, "draft-not-found")


def test_logged_out_reader_is_sent_to_log_in_then_back_to_the_draft(page: Page, api):
    author = create_user(api)
    draft = create_draft(api, author, "Mine to edit", "Words")
    page.goto(f"/account/drafts/{draft['id']}")
    expect(page).to_have_url(re.compile(rf"/login\?next=%2Faccount%2Fdrafts%2F{draft['id']}$"))
    assert "Mine to edit" not in page.content()

    log_in(page, author.email)
    expect(page.locator("#draft-form").get_by_label("Title")).to_have_value("Mine to edit")


def test_author_opening_their_draft_page_sees_it_marked_as_a_draft_others_a_404(page: Page, api):
    author = create_user(api)
    draft = create_draft(api, author, "Behind the 404", "Words")
    page.goto(f"/posts/{draft['id']}")
    expect(page.locator("h1")).to_have_text("Post not found")
    expect(page.locator("#draft-hint")).to_be_hidden()  # logged out: nothing to offer
    assert "Behind the 404" not in page.content()

    log_in(page, author.email)
    page.goto(f"/posts/{draft['id']}")  # the server knows the author by the session cookie
    expect(page.locator("#post-title")).to_have_text("Behind the 404")
    notice = page.locator("#draft-notice")
    expect(notice).to_contain_text("This is your draft: only you can see it.")
    expect(page.get_by_role("button", name="Edit")).to_be_visible()
    shot(page, "draft-page")
    notice.get_by_role("link", name="Open it in the editor").click()
    expect(page.locator("#draft-form").get_by_label("Title")).to_have_value("Behind the 404")

    stranger = create_user(api)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/\?notice=logged-out$"))  # landed: no race with it
    log_in(page, stranger.email)
    response = page.goto(f"/posts/{draft['id']}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Post not found")
    assert "Behind the 404" not in page.content()


def test_writer_schedules_a_post_finds_it_on_the_account_and_keeps_it_as_a_draft(
    page: Page, api, live_server
):
    writer = create_user(api)
    title = f"Later {unique('s')}"
    log_in(page, writer.email)
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    fill_post(dialog, title, "Out next summer.")
    dialog.get_by_label("Schedule (optional)").fill("2099-06-01T09:30")
    dialog.get_by_role("button", name="Publish").click()

    expect(page).to_have_url(re.compile(r"/account\?notice=post-scheduled#scheduled$"))
    scheduled = page.locator("#scheduled-list .draft")
    expect(scheduled.get_by_role("link", name=title)).to_be_visible()
    expect(scheduled).to_contain_text("Goes out on")
    expect(scheduled).to_contain_text("2099")
    expect(page.locator("#draft-list").get_by_role("link", name=title)).to_have_count(0)
    shot(page, "account-scheduled")
    # Nobody else sees it before its time.
    assert title not in api.get("/api/posts", params={"limit": 100}).text

    # The editor shows the time, in this browser's zone, as it was picked.
    scheduled.get_by_role("link", name="Edit").click()
    form = page.locator("#draft-form")
    expect(form.get_by_label("Schedule (optional)")).to_have_value("2099-06-01T09:30")
    expect(page.locator("#draft-status")).to_contain_text("Scheduled")
    page.go_back()

    page.locator("#scheduled-list .draft").get_by_role("button", name="Keep as a draft").click()
    expect(page.locator("#draft-list .draft").get_by_role("link", name=title)).to_be_visible()
    expect(page.locator("#no-scheduled")).to_be_visible()
