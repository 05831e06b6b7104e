"""Reading and writing posts in Chromium, as a person would."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.e2e.helpers import (
    PASSWORD,
    User,
    create_post,
    create_user,
    log_in,
    path_of,
    shot,
    unique,
)

pytestmark = pytest.mark.e2e

HOSTILE = "<img src=x onerror=alert(1)>"


def test_person_registers_logs_in_writes_edits_and_deletes_a_post(page: Page, live_server):
    name = unique("writer")
    email = f"{name}@example.com"
    page.goto("/register")
    shot(page, "register")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(f"{live_server}/login?notice=registered")
    expect(page.get_by_role("status")).to_have_text(re.compile("Your account is ready"))
    shot(page, "login")
    log_in(page, email)
    expect(page).to_have_url(f"{live_server}/")
    expect(page.locator("#nav-username")).to_have_text(name)

    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    dialog.get_by_label("Title").fill("My first post")
    dialog.get_by_label("Content").fill("Hello from the browser.\nA second line.")
    shot(page, "new-post-dialog")
    dialog.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(re.compile(r"/posts/\d+/my-first-post$"))
    post_path = path_of(page.url)
    expect(page.locator("#post-title")).to_have_text("My first post")
    expect(page.locator("#post-content")).to_have_text("Hello from the browser.\nA second line.")

    page.get_by_role("link", name="Blog", exact=True).click()
    first = page.locator(".post-card").first
    expect(first).to_contain_text("My first post")
    expect(first.get_by_role("link", name=name)).to_be_visible()
    shot(page, "home")

    first.get_by_role("link", name="My first post").click()
    expect(page).to_have_url(f"{live_server}{post_path}")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("#edit-post-form")
    expect(form.get_by_label("Title")).to_have_value("My first post")
    form.get_by_label("Title").fill("My first post, edited")
    shot(page, "post-edit")
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("#post-title")).to_have_text("My first post, edited")
    page.reload()
    expect(page.locator("#post-title")).to_have_text("My first post, edited")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    shot(page, "post")

    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{live_server}/?notice=post-deleted")
    expect(page.get_by_role("status")).to_have_text("The post has been deleted.")
    expect(page.get_by_text("My first post, edited")).to_have_count(0)
    assert page.request.get(post_path).status == 404


def test_other_user_sees_no_edit_controls_and_is_refused_when_forcing_them(page: Page, api):
    author = create_user(api)
    post = create_post(api, author, "Not yours to edit")
    reader = create_user(api)
    log_in(page, reader.email)

    page.goto(f"/posts/{post['id']}")
    expect(page.locator("#nav-username")).to_have_text(reader.username)
    expect(page.locator("#post-title")).to_have_text("Not yours to edit")
    expect(page.get_by_role("button", name="Edit")).to_be_hidden()
    expect(page.get_by_role("button", name="Delete")).to_be_hidden()

    forced = page.evaluate(
        """async (id) => {
          // The reader's own session, CSRF token included: only ownership can refuse.
          const csrf = document.cookie.match(/(?:^|; )csrf_token=([^;]*)/)[1];
          const headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf};
          const body = JSON.stringify({title: "Taken over", content: "Mine now"});
          const put = await fetch(`/api/posts/${id}`, {method: "PUT", headers, body});
          const del = await fetch(`/api/posts/${id}`, {method: "DELETE", headers});
          return [put.status, (await put.json()).detail, del.status, (await del.json()).detail];
        }""",
        post["id"],
    )
    assert forced == [
        403,
        "Not authorized to update this post",
        403,
        "Not authorized to delete this post",
    ]
    page.reload()
    expect(page.locator("#post-title")).to_have_text("Not yours to edit")


def show_fifteen_numbered_posts(page: Page, api) -> tuple[User, Locator]:
    """A new author's posts "Numbered 1" to "Numbered 15" and their page, the first ten shown."""
    author = create_user(api)
    for number in range(1, 16):
        create_post(api, author, f"Numbered {number} {author.username}")
    page.goto(f"/users/{author.id}/posts")
    cards = page.locator(".post-card")
    expect(cards).to_have_count(10)
    expect(cards.first).to_contain_text(f"Numbered 15 {author.username}")
    return author, cards


def test_load_more_appends_the_rest_of_fifteen_posts(page: Page, api, live_server):
    author, cards = show_fifteen_numbered_posts(page, api)
    page.get_by_role("link", name="Load more").click()
    expect(cards).to_have_count(15)
    expect(cards.last).to_contain_text(f"Numbered 1 {author.username}")
    expect(page.get_by_role("link", name="Load more")).to_be_hidden()
    expect(page).to_have_url(f"{live_server}/users/{author.id}/posts")  # appended, not navigated
    shot(page, "user-posts")

    # The same fifteen are the newest of all, so they open the home page too.
    page.goto("/")
    expect(cards).to_have_count(10)
    oldest = page.get_by_role("link", name=f"Numbered 1 {author.username}", exact=True)
    expect(oldest).to_have_count(0)
    page.get_by_role("link", name="Load more").click()
    expect(oldest).to_be_visible()
    assert cards.count() > 10


def test_load_more_asks_for_the_posts_after_the_last_one_shown(page: Page, api):
    """Posts written after the page was shown do not shift what "Load more" brings: it asks
    with the cursor of the last post shown, not with an offset."""
    author, cards = show_fifteen_numbered_posts(page, api)
    expect(cards.last).to_contain_text(f"Numbered 6 {author.username}")
    for number in range(16, 19):
        create_post(api, author, f"Numbered {number} {author.username}")

    with page.expect_response(lambda response: "/posts?" in response.url) as answer:
        page.get_by_role("link", name="Load more").click()
    query = parse_qs(urlsplit(answer.value.url).query)
    assert set(query) == {"cursor", "limit"}
    assert answer.value.ok
    expect(cards).to_have_count(15)
    appended = [cards.nth(index).locator("h2").inner_text() for index in range(10, 15)]
    assert appended == [f"Numbered {n} {author.username}" for n in range(5, 0, -1)]
    expect(page.get_by_role("link", name="Load more")).to_be_hidden()


def test_hostile_title_and_username_stay_text(page: Page, api):
    alerts = []

    def note_and_dismiss(dialog: Dialog) -> None:
        alerts.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note_and_dismiss)
    hostile_name = f"<b>{unique('x')}</b>"
    author = create_user(api, username=hostile_name)
    log_in(page, author.email)
    expect(page.locator("#nav-username")).to_have_text(hostile_name)

    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    dialog.get_by_label("Title").fill(HOSTILE)
    dialog.get_by_label("Content").fill("<script>alert(2)</script>")
    dialog.get_by_role("button", name="Publish").click()
    expect(page.locator("#post-title")).to_have_text(HOSTILE)  # rendered by the server
    expect(page.locator("#post-content")).to_have_text("<script>alert(2)</script>")
    post_path = path_of(page.url)

    # Rendered by the browser: the edit form writes the new title into the page.
    page.get_by_role("button", name="Edit").click()
    page.locator("#edit-post-form").get_by_label("Title").fill(f"{HOSTILE}!")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#post-title")).to_have_text(f"{HOSTILE}!")

    # Rendered by the browser again: "Load more" builds the card of the eleventh post.
    for number in range(10):
        create_post(api, author, f"Filler {number}")
    page.goto(f"/users/{author.id}/posts")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Posts by {hostile_name}")
    page.get_by_role("link", name="Load more").click()
    expect(page.get_by_role("link", name=f"{HOSTILE}!", exact=True)).to_be_visible()
    expect(page.locator(".post-card").last.locator(".author")).to_have_text(hostile_name)

    page.goto(post_path)
    expect(page.locator("#post-title")).to_have_text(f"{HOSTILE}!")
    assert page.locator("img[src='x'], b, script:not([src])").count() == 0
    assert alerts == []


def test_missing_post_user_and_page_show_the_html_404_page(page: Page):
    for path, heading in [
        ("/posts/999999", "Post not found"),
        ("/users/999999/posts", "User not found"),
        ("/no-such-page", "Not Found"),
    ]:
        response = page.goto(path)
        assert response is not None
        assert response.status == 404
        assert response.headers["content-type"].startswith("text/html")
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_role("link", name="Back to the posts")).to_be_visible()
    shot(page, "error-404")


def test_pages_show_their_content_without_javascript(new_page, api, live_server):
    author = create_user(api)
    post = create_post(api, author, "Readable without scripts", "Plain HTML works.")
    for number in range(11):
        create_post(api, author, f"Quiet post {number}")
    page = new_page(java_script_enabled=False)

    page.goto("/")
    expect(page.locator(".post-card")).to_have_count(10)
    shot(page, "home-without-javascript")
    page.get_by_role("link", name="Load more").click()  # a plain link to the next page
    expect(page).to_have_url(re.compile(rf"^{live_server}/posts\?cursor=[\w-]+$"))
    expect(page.get_by_role("link", name="Readable without scripts")).to_be_visible()

    page.goto(f"/posts/{post['id']}")
    expect(page.locator("#post-title")).to_have_text("Readable without scripts")
    expect(page.locator("#post-content")).to_have_text("Plain HTML works.")
    expect(page.get_by_role("button", name="Edit")).to_be_hidden()

    page.goto(f"/users/{author.id}/posts")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Posts by {author.username}")
    expect(page.locator(".post-card")).to_have_count(10)

    for path, heading, field in [
        ("/login", "Log in", "Email"),
        ("/register", "Create an account", "Username"),
        ("/forgot-password", "Forgot your password?", "Email"),
        ("/reset-password?token=abc", "Choose a new password", "New password"),
        ("/account", "Your account", "Current password"),
    ]:
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_label(field, exact=True)).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Log in")).to_be_visible()


def test_pages_follow_the_system_dark_mode_and_fit_a_phone(new_page, api):
    author = create_user(api)
    post = create_post(api, author, "A post on a small screen", "Short and sweet. " * 40)
    light = new_page(color_scheme="light")
    phone = new_page(color_scheme="dark", viewport={"width": 375, "height": 740}, is_mobile=True)
    background = "getComputedStyle(document.body).backgroundColor"

    light.goto("/")
    phone.goto("/")
    assert light.evaluate(background) == "rgb(245, 246, 248)"
    assert phone.evaluate(background) == "rgb(17, 19, 23)"
    shot(phone, "home-dark-phone")
    for path in ["/", f"/posts/{post['id']}", "/login", "/account", "/posts/999999"]:
        phone.goto(path)
        expect(phone.get_by_role("heading", level=1)).to_be_visible()
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
    phone.goto(f"/posts/{post['id']}")
    shot(phone, "post-dark-phone")
