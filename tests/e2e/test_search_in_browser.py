"""Searching from the header, in Chromium."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import create_post, create_user, shot, unique

pytestmark = pytest.mark.e2e


def test_search_box_in_the_header_finds_posts_with_the_words_marked(page: Page, api, live_server):
    author = create_user(api)
    word = unique("zebra")  # one word, new in the shared database
    create_post(api, author, f"Striped {word} <b>bold</b>", f"A long text that ends with {word}.")
    create_post(api, author, "Something else", "Nothing to find here.")

    page.goto("/posts")
    box = page.get_by_role("searchbox", name="Search posts").first
    box.fill(word)
    box.press("Enter")

    expect(page).to_have_url(re.compile(rf"/search\?q={word}$"))
    results = page.locator("#search-results .post-card")
    expect(results).to_have_count(1)
    title = results.first.locator(".post-title")
    expect(title).to_have_text(f"Striped {word} <b>bold</b>")
    expect(title.locator("mark")).to_have_text(word)
    expect(title.locator("b")).to_have_count(0)
    expect(results.first.locator(".post-excerpt mark")).to_have_text(word)
    expect(page.locator("#search-total")).to_have_text("1 post found")
    shot(page, "search-results")
