"""Accounts in Chromium: forms, picture, password reset by mail, log out, deletion."""

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    PASSWORD,
    TEST_IMAGE,
    cookies_of,
    create_post,
    create_user,
    log_in,
    shot,
    with_cookie,
)

pytestmark = pytest.mark.e2e

DEFAULT_PICTURE = "/static/profile_pics/default.jpg"


def test_registration_errors_show_as_readable_messages_next_to_their_fields(page: Page, api):
    existing = create_user(api)
    page.goto("/register")
    page.get_by_label("Username").fill("")
    page.get_by_label("Email", exact=True).fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()

    expect(page.locator('[data-error-for="username"]')).to_have_text(
        "Should have at least 1 character"
    )
    expect(page.locator('[data-error-for="email"]')).to_have_text(
        re.compile(r"^Not a valid email address")
    )
    expect(page.locator('[data-error-for="password"]')).to_have_text(
        "Should have at least 8 characters"
    )
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main")).not_to_contain_text('"loc"')
    expect(page.locator("main")).not_to_contain_text("[{")
    shot(page, "register-errors")

    page.get_by_label("Username").fill(existing.username.upper())
    page.get_by_label("Email", exact=True).fill("someone-new@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert").filter(has_text="Username")).to_have_text(
        "Username already exists"
    )
    expect(page.locator('[data-error-for="password"]')).to_be_hidden()


def test_profile_picture_upload_shows_a_preview_then_the_picture_in_the_navigation(page: Page, api):
    user = create_user(api)
    log_in(page, user.email)
    page.get_by_role("link", name=user.username).click()
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_label("Username")).to_have_value(user.username)
    expect(page.locator("#nav-avatar")).to_have_attribute("src", DEFAULT_PICTURE)

    page.get_by_label("Choose an image").set_input_files(TEST_IMAGE)
    expect(page.locator("#picture-preview")).to_have_attribute(
        "src", re.compile(r"^data:image/jpeg;base64,")
    )
    page.get_by_role("button", name="Upload picture").click()
    expect(page.get_by_text("Picture updated.")).to_be_visible()
    stored = re.compile(r"^/media/profile_pics/[0-9a-f]{32}\.jpg$")
    expect(page.locator("#nav-avatar")).to_have_attribute("src", stored)
    page.wait_for_function(
        "() => { const img = document.getElementById('nav-avatar');"
        " return img.complete && img.naturalWidth === 300; }"
    )
    picture = page.request.get(page.locator("#nav-avatar").get_attribute("src") or "")
    assert picture.status == 200
    assert picture.headers["content-type"] == "image/jpeg"

    page.reload()  # the navigation knows the picture on every page
    expect(page.locator("#nav-avatar")).to_have_attribute("src", stored)
    expect(page.locator("#picture-preview")).to_have_attribute("src", stored)
    shot(page, "account")

    page.get_by_role("button", name="Remove picture").click()
    expect(page.get_by_text("Picture removed.")).to_be_visible()
    expect(page.locator("#nav-avatar")).to_have_attribute("src", DEFAULT_PICTURE)
    expect(page.get_by_role("button", name="Remove picture")).to_be_hidden()


def test_forgotten_password_is_reset_from_the_mailed_link_and_the_new_one_logs_in(
    page: Page, api, mail_sink, live_server
):
    sink, _ = mail_sink
    user = create_user(api)
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email", exact=True).fill(user.email)
    shot(page, "forgot-password")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("If an account exists"))

    mail = sink.message_to(user.email, "Reset your password")
    assert mail["Subject"] == "Reset your password"
    plain = mail.get_body(("plain",)).get_content()
    found = re.search(r"\S+/reset-password\?token=\S+", plain)
    assert found, plain
    link = found.group(0)
    assert link.startswith(f"{live_server}/reset-password?token=")
    assert f'href="{link}"' in mail.get_body(("html",)).get_content()

    response = page.goto(link)
    assert response is not None
    assert response.headers["referrer-policy"] == "no-referrer"
    page.get_by_label("New password").fill("short")
    page.get_by_role("button", name="Set new password").click()
    expect(page.locator('[data-error-for="new_password"]')).to_have_text(
        "Should have at least 8 characters"
    )
    shot(page, "reset-password")
    page.get_by_label("New password").fill("a brand new password")
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(f"{live_server}/login?notice=password-reset")

    page.get_by_label("Email", exact=True).fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password")
    log_in(page, user.email, "a brand new password")
    expect(page.locator("#nav-username")).to_have_text(user.username)

    page.goto(link)  # the link works once
    page.get_by_label("New password").fill("yet another password")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid or expired reset token")


def test_log_out_ends_the_session_on_the_server_and_the_navigation_offers_log_in(
    page: Page, api, live_server
):
    user = create_user(api)
    log_in(page, user.email)
    cookie = str(cookies_of(page)["session"].get("value"))
    assert api.get("/api/users/me", headers=with_cookie(cookie)).status_code == 200
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server}/?notice=logged-out")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(page.get_by_role("button", name="New post")).to_be_hidden()
    assert "session" not in cookies_of(page)
    assert "csrf_token" not in cookies_of(page)
    # A copy of the cookie (stolen, or another client's) is refused from now on.
    refused = api.get("/api/users/me", headers=with_cookie(cookie))
    assert refused.status_code == 401

    page.goto("/account")
    expect(page).to_have_url(f"{live_server}/login?next=/account")


def test_account_page_saves_the_profile_and_a_new_password_asks_to_log_in_again(
    page: Page, api, mail_sink, live_server
):
    user = create_user(api)
    log_in(page, user.email)
    page.goto("/account")
    renamed = f"{user.username}-renamed"
    page.get_by_label("Username").fill("")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator('[data-error-for="username"]')).to_have_text(
        "Should have at least 1 character"
    )
    page.get_by_label("Username").fill(renamed)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    expect(page.locator("#nav-username")).to_have_text(renamed)

    moved = f"moved-{user.email}"
    page.get_by_label("Email", exact=True).fill(moved)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("alert").filter(has_text="password")).to_have_text(
        "Current password is incorrect"
    )
    page.get_by_label("Password (to confirm a new address)").fill(PASSWORD)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    expect(page.locator("#account-summary")).to_contain_text(moved)
    # The old address hears of it.
    notice = mail_sink[0].message_to(user.email, "Your email address was changed")
    assert moved in notice.get_body(("plain",)).get_content()
    user.email = moved

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("my new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert").filter(has_text="password")).to_have_text(
        "Current password is incorrect"
    )
    cookie = str(cookies_of(page)["session"].get("value"))
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(f"{live_server}/login?notice=password-changed&next=/account")
    expect(page.get_by_role("status")).to_have_text(re.compile("Log in again"))
    expect(page.get_by_role("link", name="Log in")).to_be_visible()  # the session has ended
    assert api.get("/api/users/me", headers=with_cookie(cookie)).status_code == 401

    log_in(page, user.email, "my new password")
    expect(page).to_have_url(f"{live_server}/account")
    expect(page.get_by_label("Username")).to_have_value(renamed)


def test_deleting_the_account_logs_out_and_its_posts_are_gone(page: Page, api, live_server):
    user = create_user(api)
    post = create_post(api, user, "Soon gone")
    log_in(page, user.email)
    page.goto("/account")
    expect(page.get_by_label("Email", exact=True)).to_have_value(user.email)
    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete account").click()
    expect(page).to_have_url(f"{live_server}/?notice=account-deleted")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    assert page.request.get(f"/posts/{post['id']}").status == 404
    assert page.request.get(f"/users/{user.id}/posts").status == 404


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example/", "/\t/evil.example/"])
def test_login_never_follows_next_to_another_site(page: Page, api, live_server, target):
    """Browsers read each of these as another host; after logging in, the home page shows."""
    user = create_user(api)
    page.goto(f"/login?next={quote(target)}")
    log_in(page, user.email)
    expect(page).to_have_url(f"{live_server}/")
