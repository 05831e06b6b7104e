"""After logging in, `?next=` leads back into the site and never to another one."""

from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.helpers import User, create_user, offline

pytestmark = pytest.mark.e2e

# Spellings that browsers resolve to another site, though some start with a single slash.
ELSEWHERE = {
    "backslash": "/\\evil.example/x",
    "two-backslashes": "\\\\evil.example/x",
    "slash-backslash-slash": "/\\/evil.example/x",
    "tab-inside": "/\t/evil.example/x",
    "newline-inside": "/\n/evil.example/x",
    "carriage-return-inside": "/\r/evil.example/x",
    "protocol-relative": "//evil.example/x",
    "three-slashes": "///evil.example/x",
    "absolute": "https://evil.example/x",
    "other-scheme-no-slashes": "https:evil.example/x",
    "javascript": "javascript:alert(document.domain)",
    "data": "data:text/html,<h1>evil</h1>",
    "userinfo-at": "//127.0.0.1@evil.example/x",
    "absolute-userinfo-at": "http://127.0.0.1@evil.example/x",
    "space-leading": "  //evil.example/x",
    "tab-leading": "\t//evil.example/x",
    "newline-leading": "\n//evil.example/x",
    # Same origin as parsed, but the path they resolve to starts with `//`: followed as a path,
    # that names another host. Dot segments are removed only once the URL is parsed.
    "dot-segment": "/.//evil.example/",
    "dot-dot-segment": "/..//evil.example/",
    "encoded-dot-segment": "/%2e//evil.example/",
    "encoded-dot-segment-upper": "/%2E//evil.example/",
    "encoded-dot-dot-segment": "/%2e%2e//evil.example/",
    "dot-dot-past-the-root-backslash": "/x/../../\\evil.example",
    "dot-dot-back-to-the-root": "/x/..//evil.example/",
    "dot-segment-backslash": "/./\\evil.example/",
    "dot-segment-tab": "/.\t//evil.example/",
    "dot-segment-newline": "/.\n/\\evil.example/",
    "dot-segment-three-slashes": "/.///evil.example/",
}
# Spellings that stay on this site, however odd the path they name.
HERE = {
    "encoded-slashes": ("%2F%2Fevil.example/x", "/%2F%2Fevil.example/x"),
    "at-in-path": ("/@evil.example", "/@evil.example"),
    "encoded-backslash": ("/%5Cevil.example", "/%5Cevil.example"),
    "encoded-tab": ("/%09/evil.example", "/%09/evil.example"),
    "query-and-fragment-kept": ("/account?x=1#y", "/account?x=1#y"),
    "slashes-in-the-query": ("/account?next=//evil.example", "/account?next=//evil.example"),
    "dot-segment-to-a-page": ("/./account", "/account"),
    "dot-dot-to-a-page": ("/x/../account", "/account"),
}


@pytest.fixture(scope="module")
def user(api) -> User:
    return create_user(api)


def stand_in_for_other_sites(page: Page) -> list[str]:
    """As `offline`, but another site's address gets a blank page of the test's own instead of a
    network error: a browser sent away lands there, and a failure names where it went. Nothing
    leaves 127.0.0.1; the list names the addresses asked for."""
    asked = []

    def stand_in(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            asked.append(route.request.url)
            route.fulfill(content_type="text/html", body="<title>Another site</title>")

    page.context.route("**/*", stand_in)
    return asked


def log_in_with_next(page: Page, user: User, next_value: str) -> None:
    page.goto(f"/login?next={quote(next_value, safe='')}")
    submit_login(page, user)


def submit_login(page: Page, user: User) -> None:
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: not urlsplit(url).path.startswith("/login"))


@pytest.mark.parametrize("next_value", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_next_leading_to_another_site_goes_to_the_home_page(
    page: Page, live_server, user, next_value
):
    elsewhere = stand_in_for_other_sites(page)
    log_in_with_next(page, user, next_value)
    expect(page).to_have_url(f"{live_server}/")
    expect(page.locator("#nav-account")).to_be_visible()
    assert elsewhere == []


@pytest.mark.parametrize(("next_value", "path"), HERE.values(), ids=HERE.keys())
def test_next_within_the_site_stays_within_it(page: Page, live_server, user, next_value, path):
    left = offline(page)
    log_in_with_next(page, user, next_value)
    expect(page).to_have_url(f"{live_server}{path}")
    assert left == []


def test_next_to_the_account_page_opens_it_after_logging_in(page: Page, live_server, user):
    page.goto("/account")  # logged out: the page sends the visitor to log in, then back
    expect(page).to_have_url(f"{live_server}/login?next=/account")
    submit_login(page, user)
    expect(page).to_have_url(f"{live_server}/account")
    expect(page.get_by_label("Username")).to_have_value(user.username)
