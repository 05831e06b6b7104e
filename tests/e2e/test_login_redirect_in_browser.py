"""After logging in, `?next=` leads back into the site and never to another one."""

from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Page, expect

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
}
# Spellings that stay on this site, however odd the path they name.
HERE = {
    "encoded-slashes": ("%2F%2Fevil.example/x", "/%2F%2Fevil.example/x"),
    "at-in-path": ("/@evil.example", "/@evil.example"),
    "encoded-backslash": ("/%5Cevil.example", "/%5Cevil.example"),
}


@pytest.fixture(scope="module")
def user(api) -> User:
    return create_user(api)


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
    left = offline(page)
    log_in_with_next(page, user, next_value)
    expect(page).to_have_url(f"{live_server}/")
    expect(page.locator("#nav-account")).to_be_visible()
    assert left == []


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
