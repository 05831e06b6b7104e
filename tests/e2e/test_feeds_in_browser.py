"""Feeds as a browser finds them: the page's feed link leads to a feed of the posts."""

import feedparser
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import create_post, create_user, unique

pytestmark = pytest.mark.e2e


def test_home_page_links_a_feed_whose_entries_open_their_posts(page: Page, live_server, api):
    author = create_user(api)
    title = unique("Feed post ")
    post = create_post(api, author, title, "Read me *in a feed reader*.")

    page.goto("/")
    feed_link = page.locator('head link[rel="alternate"][type="application/atom+xml"]')
    expect(feed_link).to_have_count(1)
    href = feed_link.get_attribute("href")
    assert href == "/feed.xml"
    expect(page.get_by_role("link", name="Atom feed")).to_be_visible()

    response = page.request.get(href)
    assert response.ok
    assert response.headers["content-type"] == "application/atom+xml"
    feed = feedparser.parse(response.body())
    assert not feed.bozo, feed.get("bozo_exception")
    entry = next(entry for entry in feed.entries if entry.title == title)
    assert entry.author == author.username
    assert "<em>in a feed reader</em>" in entry.content[0].value

    page.goto(entry.link)
    expect(page).to_have_url(f"{live_server}{post['url']}")
    expect(page.locator("#post-title")).to_have_text(title)
    canonical = page.locator('head link[rel="canonical"]')
    expect(canonical).to_have_attribute("href", f"{live_server}{post['url']}")
    expect(page.locator('head meta[property="og:type"]')).to_have_attribute("content", "article")
