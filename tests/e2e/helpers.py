"""Steps the browser tests share: set the scene through the API, log in like a person, look."""

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Cookie, Locator, Page, Route, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
TEST_IMAGE = Path(__file__).resolve().parent.parent / "test_image.jpeg"


@dataclass
class User:
    id: int
    username: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique(prefix: str) -> str:
    """The browser tests share one database: every name they make is new."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def create_user(api: httpx.Client, username: str | None = None) -> User:
    username = username or unique("user")
    email = f"{unique('mail')}@example.com"
    response = api.post(
        "/api/users", json={"username": username, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    login = api.post("/api/users/token", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return User(response.json()["id"], username, email, PASSWORD, login.json()["access_token"])


def create_post(api: httpx.Client, user: User, title: str, content: str = "Some words.") -> dict:
    response = api.post(
        "/api/posts", json={"title": title, "content": content}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Fill the login form; the navigation then shows the account."""
    if not page.url.split("?")[0].endswith("/login"):
        page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#nav-account")).to_be_visible()


def cookies_of(page: Page) -> dict[str, Cookie]:
    """The cookies the page's browser context holds, by name (HttpOnly ones included)."""
    return {cookie["name"]: cookie for cookie in page.context.cookies() if "name" in cookie}


def with_cookie(session: str) -> dict[str, str]:
    """Headers that present a copy of a session cookie, as another client holding it would."""
    return {"Cookie": f"session={session}"}


def readable_by_scripts(page: Page) -> dict[str, object]:
    """What any script of the page can read: both storages, whole, and document.cookie."""
    return page.evaluate(
        """() => {
          const all = (storage) => Object.fromEntries(
            Array.from({length: storage.length}, (_, i) => storage.key(i))
              .map((key) => [key, storage.getItem(key)]));
          return {local: all(localStorage), session: all(sessionStorage), cookie: document.cookie};
        }"""
    )


def fill_post(form: Locator, title: str, content: str, tags: str = "") -> None:
    """Type a post into one of the editors (templates/_post_fields.html)."""
    form.get_by_label("Title").fill(title)
    form.get_by_label("Content").fill(content)
    form.get_by_label("Tags").fill(tags)


def preview(form: Locator) -> Locator:
    """Press the editor's Preview; answers where the rendered Markdown shows."""
    form.get_by_role("button", name="Preview").click()
    return form.locator("[data-preview-body]")


def save_draft(page: Page, title: str, content: str, tags: str = "") -> None:
    """Write a post in the "New post" dialog and keep it as a draft (the account page opens)."""
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    fill_post(dialog, title, content, tags)
    dialog.get_by_role("button", name="Save draft").click()


def shot(page: Page, name: str) -> None:
    """Keep a picture of the page for a person to look at (test-artifacts/ is git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def offline(page: Page) -> list[str]:
    """Abort every request of the page's context that would leave 127.0.0.1, workers' too, as
    on a machine with no internet; the list returned names them."""
    left = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_loopback)
    return left
