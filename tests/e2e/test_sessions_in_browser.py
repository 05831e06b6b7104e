"""The pages' session in Chromium: an HttpOnly cookie no script can read, a CSRF header on every
change, logging out that ends it, the session list on /account, and other sites refused."""

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, Request, expect

from tests.e2e.helpers import (
    TEST_IMAGE,
    cookies_of,
    create_post,
    create_user,
    fill_post,
    log_in,
    readable_by_scripts,
    save_draft,
    shot,
    unique,
    with_cookie,
)

pytestmark = pytest.mark.e2e

CSRF_FAILED = "CSRF token missing or invalid"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ISO_MILLISECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OTHER_BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def cookie_names(document_cookie: str) -> list[str]:
    return [pair.split("=", 1)[0] for pair in document_cookie.split("; ") if pair]


def assert_nothing_secret_is_readable(page: Page) -> None:
    """No storage holds anything, and document.cookie shows csrf_token alone (when logged in)."""
    readable = readable_by_scripts(page)
    assert readable["local"] == {}
    assert readable["session"] == {}
    assert cookie_names(str(readable["cookie"])) in ([], ["csrf_token"])


def test_logging_in_leaves_no_token_a_script_can_read_and_the_session_cookie_is_http_only(
    page: Page, api
):
    user = create_user(api)
    log_in(page, user.email)
    page.goto("/account")
    expect(page.locator("#session-list .session")).not_to_have_count(0)

    readable = readable_by_scripts(page)
    assert readable["local"] == {}
    assert readable["session"] == {}
    assert cookie_names(str(readable["cookie"])) == ["csrf_token"]

    cookies = cookies_of(page)
    session, csrf = cookies["session"], cookies["csrf_token"]
    assert session.get("httpOnly") is True
    assert (session.get("sameSite"), session.get("path")) == ("Lax", "/")
    assert csrf.get("httpOnly") is False
    assert (csrf.get("sameSite"), csrf.get("path")) == ("Lax", "/")
    assert readable["cookie"] == f"csrf_token={csrf.get('value')}"
    assert str(session.get("value")) not in str(readable)
    # Any other cookie the login set (the known-browser one) is no script's either.
    others = [name for name, cookie in cookies.items() if name != "csrf_token"]
    assert all(cookies[name].get("httpOnly") for name in others), cookies
    # The cookie alone is the session: another client holding a copy is this user.
    me = api.get("/api/users/me", headers=with_cookie(str(session.get("value"))))
    assert me.status_code == 200
    assert me.json()["id"] == user.id


def test_the_pages_work_by_cookie_and_send_the_csrf_token_with_every_change(
    page: Page, api, live_server
):
    """Write a post, comment, edit a draft, change the picture, log out: never a bearer token,
    always X-CSRF-Token on a change, nothing in storage at any step."""
    user = create_user(api)
    log_in(page, user.email)
    csrf = cookies_of(page)["csrf_token"].get("value")
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if "/api/" in request.url else None)

    title = f"By cookie {unique('c')}"
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    fill_post(dialog, title, "Written with the **session** cookie.")
    dialog.get_by_role("button", name="Publish").click()
    expect(page.locator("#post-title")).to_have_text(title)
    page.get_by_label("Your comment").fill("A comment by cookie")
    page.get_by_role("button", name="Post comment").click()
    expect(page.locator("#comment-list .comment-content")).to_have_text(["A comment by cookie"])
    assert_nothing_secret_is_readable(page)

    save_draft(page, f"Draft {unique('d')}", "A first go.")
    page.locator("#draft-list .draft").get_by_role("link", name="Edit").click()
    form = page.locator("#draft-form")
    expect(form.get_by_label("Content")).to_have_value("A first go.")
    form.get_by_label("Content").fill("A second go.")
    form.get_by_role("button", name="Save draft").click()
    expect(form.locator(".form-success")).to_have_text("Draft saved.")

    page.goto("/account")
    page.get_by_label("Choose an image").set_input_files(TEST_IMAGE)
    page.get_by_role("button", name="Upload picture").click()
    expect(page.get_by_text("Picture updated.")).to_be_visible()
    expect(page.locator("#nav-avatar")).to_have_attribute("src", re.compile(r"^/media/"))
    assert_nothing_secret_is_readable(page)

    page.get_by_role("button", name="Log out").first.click()
    expect(page).to_have_url(f"{live_server}/?notice=logged-out")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    changes = [request for request in sent if request.method in UNSAFE]
    assert {(request.method, path_only(request.url)) for request in changes} >= {
        ("POST", "/api/posts"),
        ("POST", "/api/posts/{}/comments"),
        ("PATCH", "/api/posts/{}"),
        ("PATCH", "/api/users/{}/picture"),
        ("DELETE", "/api/users/session"),
    }
    assert all(request.headers.get("x-csrf-token") == csrf for request in changes)
    assert not [request.url for request in sent if "authorization" in request.headers]
    assert_nothing_secret_is_readable(page)
    assert "session" not in cookies_of(page)
    assert "csrf_token" not in cookies_of(page)


def path_only(url: str) -> str:
    """/api/posts/12/comments -> /api/posts/{}/comments: the route, whatever the ids."""
    return re.sub(r"/\d+", "/{}", re.sub(r"^https?://[^/]+|\?.*$", "", url))


def test_ending_another_session_from_the_account_page_logs_that_browser_out(
    page: Page, new_page, api, live_server
):
    user = create_user(api)  # logs in through the API too: a token session
    log_in(page, user.email)
    other = new_page(user_agent=OTHER_BROWSER)
    log_in(other, user.email)
    other_cookie = str(cookies_of(other)["session"].get("value"))

    page.goto("/account")
    sessions = page.locator("#session-list .session")
    expect(sessions).to_have_count(3)
    # Newest first: the other browser, this one, then the API's login.
    expect(sessions.locator(".session-client")).to_have_text(
        ["Firefox on Windows", "Chrome on Linux", re.compile(r"^python-httpx/")]
    )
    expect(sessions.nth(0).locator(".session-agent")).to_have_text(OTHER_BROWSER)
    expect(sessions.nth(1)).to_have_attribute("aria-current", "true")
    expect(sessions.nth(1).locator(".badge")).to_have_text("This browser")
    expect(sessions.nth(1).get_by_role("button")).to_have_count(0)  # this one logs out instead
    expect(sessions.nth(2).locator(".badge")).to_have_text("API token")
    times = sessions.nth(0).locator("time")
    expect(times).to_have_count(2)
    for time in times.all():
        expect(time).to_have_attribute("datetime", ISO_MILLISECONDS)
    expect(sessions.nth(2).locator(".session-agent")).to_have_count(0)  # its name says it all
    shot(page, "account-sessions")

    sessions.nth(0).get_by_role("button", name="End session").click()
    expect(page.get_by_text("The session has ended.")).to_be_visible()
    expect(sessions).to_have_count(2)
    expect(sessions.locator(".session-client")).to_have_text(
        ["Chrome on Linux", re.compile(r"^python-httpx/")]
    )
    assert api.get("/api/users/me", headers=with_cookie(other_cookie)).status_code == 401

    # The other browser learns it on its next request: logged out, sent to log in.
    other.goto("/account")
    expect(other).to_have_url(f"{live_server}/login?next=/account")
    expect(other.get_by_role("link", name="Log in")).to_be_visible()
    assert other.request.get("/api/users/me").status == 401

    page.get_by_role("button", name="End all other sessions").click()
    expect(page.get_by_text("Every other session has ended.")).to_be_visible()
    expect(sessions).to_have_count(1)
    expect(sessions.first).to_have_attribute("aria-current", "true")
    expect(page.get_by_role("button", name="End all other sessions")).to_be_hidden()
    assert api.get("/api/users/me", headers=user.headers).status_code == 401  # the API's too
    page.reload()  # this browser's session lives on
    expect(page.locator("#nav-username")).to_have_text(user.username)
    expect(sessions).to_have_count(1)


def test_a_script_request_without_the_csrf_header_changes_nothing(page: Page, api):
    user = create_user(api)
    log_in(page, user.email)
    title = f"Forged {unique('f')}"
    statuses = page.evaluate(
        """async (title) => {
          const csrf = document.cookie.match(/(?:^|; )csrf_token=([^;]*)/)[1];
          const post = (headers) => fetch("/api/posts", {method: "POST", body: JSON.stringify(
            {title, content: "Words"}), headers: {"Content-Type": "application/json", ...headers}});
          const answers = [
            await post({}),
            await post({"X-CSRF-Token": "0".repeat(csrf.length)}),
            await fetch("/api/users/me/sessions", {method: "DELETE"}),
            await fetch("/api/users/session", {method: "DELETE"}),
            await post({"X-CSRF-Token": csrf}),
          ];
          return Promise.all(answers.map(async (r) => [r.status, (await r.json()).detail ?? null]));
        }""",
        title,
    )
    assert statuses == [[403, CSRF_FAILED]] * 4 + [[201, None]]
    # Only the request with the token made a post; the session lives.
    mine = api.get(f"/api/users/{user.id}/posts").json()["posts"]
    assert [post["title"] for post in mine] == [title]
    page.reload()
    expect(page.locator("#nav-username")).to_have_text(user.username)


@pytest.fixture(scope="module")
def other_origin() -> Iterator[tuple[int, dict[str, str]]]:
    """Another web server on loopback, another port: its port, and the pages it serves by path
    (the tests fill them in). Reached as 127.0.0.1 it is the same site as the app (a site
    ignores ports), as localhost another site."""
    pages: dict[str, str] = {}

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test's own asserts say what happened

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], pages
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("host", "status", "detail"),
    [
        # Another port of this host: the same site, so the Lax cookie goes; the CSRF check stops it.
        ("127.0.0.1", 403, CSRF_FAILED),
        # Another site: SameSite=Lax keeps the cookie at home.
        ("localhost", 401, "Not authenticated"),
    ],
    ids=["same-site-other-origin", "other-site"],
)
def test_a_form_or_fetch_from_another_origin_changes_nothing(
    page: Page, api, live_server, other_origin, host, status, detail
):
    victim = create_user(api)
    post = create_post(api, victim, f"Target {unique('t')}")
    log_in(page, victim.email)
    port, pages = other_origin
    target = f"{live_server}/api/posts/{post['id']}/comments"
    # A form can send a JSON-looking body as text/plain; the page also tries fetch, with the
    # CSRF cookie when it can read it (cookies do not keep to a port).
    pages[f"/prize-{post['id']}"] = f"""<!doctype html><title>Win a prize</title>
      <form method="post" action="{target}" enctype="text/plain">
        <input type="hidden" name='{{"content": "forged by a form", "x": "' value='"}}'>
        <button>Claim your prize</button>
      </form>
      <script>
        window.tryFetch = async () => {{
          const csrf = (document.cookie.match(/(?:^|; )csrf_token=([^;]*)/) || [])[1] || "";
          const body = JSON.stringify({{content: "forged by fetch"}});
          const results = [csrf ? "read the csrf cookie" : "no csrf cookie"];
          try {{
            await fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
              headers: {{"Content-Type": "text/plain"}}, body}});
            results.push("sent opaque");
          }} catch (error) {{ results.push("blocked"); }}
          try {{
            const answer = await fetch("{target}", {{method: "POST", credentials: "include",
              headers: {{"Content-Type": "application/json", "X-CSRF-Token": csrf}}, body}});
            results.push(answer.status);
          }} catch (error) {{ results.push("blocked"); }}
          return results;
        }};
      </script>"""
    other_tab = page.context.new_page()  # its console: the CORS refusal is expected here
    other_tab.goto(f"http://{host}:{port}/prize-{post['id']}")
    expect(other_tab).to_have_title("Win a prize")

    # Even holding the CSRF token, a fetch with the header needs a CORS preflight, which the
    # API grants no other origin.
    can_read = "read the csrf cookie" if host == "127.0.0.1" else "no csrf cookie"
    assert other_tab.evaluate("tryFetch()") == [can_read, "sent opaque", "blocked"]
    with other_tab.expect_response(target) as answer:
        other_tab.get_by_role("button", name="Claim your prize").click()
    assert answer.value.status == status
    assert answer.value.json() == {"detail": detail}

    comments = api.get(f"/api/posts/{post['id']}/comments").json()
    assert comments["comments"] == []
    page.reload()  # the victim is still logged in
    expect(page.locator("#nav-username")).to_have_text(victim.username)
