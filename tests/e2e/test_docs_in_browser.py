"""The interactive docs in Chromium with every request off this machine refused, as offline."""

import json

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import create_user, offline, shot, unique

pytestmark = pytest.mark.e2e


def test_swagger_ui_authorizes_with_the_password_form_and_creates_a_post(page: Page, api):
    left = offline(page)
    user = create_user(api)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Blog API")

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").fill(user.email)
    dialog.locator("#oauth_password").fill(user.password)
    dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    expect(dialog).to_contain_text("Authorized")
    # The other way in, the pages' session cookie, is listed under the form.
    expect(dialog.locator(".auth-container")).to_have_count(2)
    expect(dialog.locator(".auth-container").nth(1)).to_contain_text("session")
    shot(page, "docs-authorized")
    dialog.get_by_role("button", name="Close").first.click()

    operation = page.locator("#operations-posts-create_post_api_posts_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    body = operation.locator("textarea.body-param__text")
    example = json.loads(body.input_value())
    assert example["title"] and example["content"]  # the schema's example, ready to send
    title = unique("Written from the docs ")
    body.fill(json.dumps({"title": title, "content": example["content"]}))
    operation.get_by_role("button", name="Execute").click()

    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_have_text("201")
    expect(response.locator(".response-col_description")).to_contain_text(title)
    shot(page, "docs-post-created")

    posts = api.get(f"/api/users/{user.id}/posts").json()["posts"]
    assert [post["title"] for post in posts] == [title]
    assert left == []


def test_redoc_renders_the_api_and_searches_it(page: Page):
    left = offline(page)
    page.goto("/redoc")
    expect(page.get_by_role("heading", name="Blog API", exact=False).first).to_be_visible()
    expect(page.get_by_role("heading", name="Create Post").first).to_be_visible()

    page.get_by_placeholder("Search...").fill("Create Post")  # the search runs in a worker
    results = page.locator("[data-role='search:results'] li")
    expect(results.filter(has_text="Create Post").first).to_be_visible()
    shot(page, "redoc")
    assert page.locator("img[src*='redoc.ly']").count() == 0
    assert left == []
