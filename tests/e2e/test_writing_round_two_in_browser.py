"""Writing, round two, in Chromium: the site's own name, the authors and tags pages, a bio on the
user page, and editors that keep what is being written in the browser until it is saved.

With AXE_CORE_JS naming axe-core's axe.min.js (for instance after `npm install axe-core` in a
scratch folder), the new pages and the search page are also checked by axe-core.
"""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.e2e.conftest import ARTIFACTS, ROOT, free_port, wait_until_ready
from tests.e2e.helpers import User, create_post, create_user, fill_post, log_in, shot, unique

pytestmark = pytest.mark.e2e

SITE_NAME = "Ada's <notes>"
SITE_DESCRIPTION = "Engines & looms"
UNSENT = "unsent-post:"


# --- The app once more, with a name of its own ------------------------------------------------


@pytest.fixture(scope="module")
def named_site(tmp_path_factory, e2e_database_url, mail_sink) -> Iterator[str]:
    """The app with SITE_NAME and SITE_DESCRIPTION set, on the browser tests' database."""
    _, mail_port = mail_sink
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("e2e-named-app")
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": e2e_database_url,
        "SECRET_KEY": "e2e-secret-key-for-browser-tests-only-0123456789",
        "DATA_DIR": str(workdir / "data"),
        "MEDIA_DIR": str(workdir / "media"),
        "S3_BUCKET_NAME": "",
        "RATE_LIMIT_ENABLED": "false",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mail_port),
        "MAIL_USE_TLS": "false",
        "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "",
        "FRONTEND_URL": base_url,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
        "SITE_NAME": SITE_NAME,
        "SITE_DESCRIPTION": SITE_DESCRIPTION,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "e2e-named-app.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(ROOT)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, base_url, log_path)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def named_page(browser: Browser, named_site: str) -> Iterator[Page]:
    """A page of the named site in a fresh context; script errors fail the test."""
    context = browser.new_context(base_url=named_site, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    yield page
    context.close()
    assert not problems, problems


def test_the_site_name_and_description_are_in_every_title_and_header(
    named_page: Page, named_site: str
):
    page = named_page
    with httpx.Client(base_url=named_site, trust_env=False, timeout=10) as api:
        writer = create_user(api)
        draft = api.post(
            "/api/posts",
            json={"title": "Half done", "content": "Soon.", "published": False},
            headers=writer.headers,
        ).json()
    page.goto("/")
    expect(page).to_have_title(f"Latest posts · {SITE_NAME}")
    header = page.get_by_role("banner")
    expect(header.get_by_role("link", name=SITE_NAME, exact=True)).to_be_visible()
    expect(header.get_by_text(SITE_DESCRIPTION)).to_be_visible()
    header.get_by_role("link", name="Authors").click()
    expect(page).to_have_title(f"Authors · {SITE_NAME}")
    header.get_by_role("link", name="Tags").click()
    expect(page).to_have_title(f"Tags · {SITE_NAME}")
    # A title the editor's script sets keeps the name too.
    log_in(page, writer.email)
    page.goto(f"/account/drafts/{draft['id']}")
    expect(page).to_have_title(f"Edit draft: Half done · {SITE_NAME}")
    shot(page, "named-site-draft-editor")


# --- Authors, tags, the bio ---------------------------------------------------------------------


def set_bio(api: httpx.Client, user: User, bio: str) -> None:
    response = api.patch(f"/api/users/{user.id}", json={"bio": bio}, headers=user.headers)
    assert response.status_code == 200, response.text


def test_the_authors_page_lists_the_latest_writers_first_with_their_bio(page: Page, api):
    earlier, later = create_user(api), create_user(api)
    set_bio(api, earlier, "Writes about <b>engines</b>.")
    create_post(api, earlier, "Earlier words")
    create_post(api, later, "Later words")
    silent = create_user(api)  # nothing published: not an author

    page.goto("/")
    page.get_by_role("banner").get_by_role("link", name="Authors").click()
    expect(page).to_have_url(re.compile(r"/authors$"))
    cards = page.locator("#author-list article")
    expect(cards.nth(0).get_by_role("heading")).to_have_text(later.username)
    expect(cards.nth(1).get_by_role("heading")).to_have_text(earlier.username)
    expect(cards.nth(1)).to_contain_text("Writes about <b>engines</b>.")  # text, not markup
    expect(cards.nth(1).locator("b")).to_have_count(0)
    expect(cards.nth(0)).to_contain_text("1 post · last")
    expect(page.get_by_role("heading", name=silent.username)).to_have_count(0)
    shot(page, "authors")
    cards.nth(1).get_by_role("link", name=earlier.username).click()
    expect(page).to_have_url(re.compile(rf"/users/{earlier.id}/posts$"))


def test_the_tags_page_counts_each_tag_and_links_its_posts(page: Page, api):
    writer = create_user(api)
    tag = unique("tag")
    for title in ("First tagged", "Second tagged"):
        body = {"title": title, "content": "Words.", "tags": [tag]}
        assert api.post("/api/posts", json=body, headers=writer.headers).status_code == 201

    page.goto("/")
    page.get_by_role("banner").get_by_role("link", name="Tags").click()
    expect(page).to_have_url(re.compile(r"/tags$"))
    item = page.locator("#tag-list li").filter(has=page.get_by_role("link", name=f"#{tag}"))
    expect(item).to_have_text(f"#{tag} 2 posts")
    shot(page, "tags")
    item.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/tags/{tag}$"))
    expect(page.locator("#post-list .post-card")).to_have_count(2)


def test_the_user_page_shows_the_bio_line_by_line_as_text(page: Page, api):
    writer = create_user(api)
    set_bio(api, writer, "Engines & <i>looms</i>.\nAnd numbers.")
    page.goto(f"/users/{writer.id}/posts")
    bio = page.locator("#author-bio p")
    expect(bio).to_have_text(["Engines & <i>looms</i>.", "And numbers."])
    expect(page.locator("#author-bio i")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^Joined "))).to_be_visible()


# --- The editors keep unsent text -----------------------------------------------------------


def unsent_texts(page: Page) -> dict[str, str]:
    """What the editors keep in this browser's storage: only unsent posts, by key."""
    stored: dict[str, str] = page.evaluate("() => ({...localStorage})")
    assert all(key.startswith(UNSENT) for key in stored), stored
    return stored


def expect_leaving_to_ask(page: Page, asks: bool) -> None:
    """Whether a beforeunload handler is set: it asks before the page goes."""
    kind = "function" if asks else "object"  # null when cleared
    page.wait_for_function(f"() => typeof window.onbeforeunload === '{kind}'")


class Dialogs:
    """Every dialog the page opens, by type; beforeunload is answered `leave` (or stay)."""

    def __init__(self, page: Page, leave: bool) -> None:
        self.types: list[str] = []
        self.leave = leave
        page.on("dialog", self.answer)

    def answer(self, dialog: Dialog) -> None:
        self.types.append(dialog.type)
        if self.leave:
            dialog.accept()
        else:
            dialog.dismiss()


def open_new_post(page: Page):
    page.get_by_role("button", name="New post").click()
    return page.get_by_role("dialog", name="New post")


def test_the_new_post_dialog_keeps_its_text_across_a_reload_until_it_is_published(page: Page, api):
    writer = create_user(api)
    log_in(page, writer.email)
    title = f"Unsent {unique('u')}"
    dialog = open_new_post(page)
    dialog.get_by_label("Title").click()
    fill_post(dialog, title, "Words I would hate to lose.", "keep, these")
    expect_leaving_to_ask(page, True)
    assert [json for key, json in unsent_texts(page).items() if key.endswith(":new")]

    dialogs = Dialogs(page, leave=True)
    page.reload()
    expect(page.locator("#nav-account")).to_be_visible()
    assert dialogs.types == ["beforeunload"]  # it asked before the reload
    dialog = open_new_post(page)
    expect(dialog.get_by_label("Title")).to_have_value(title)
    expect(dialog.get_by_label("Content")).to_have_value("Words I would hate to lose.")
    expect(dialog.get_by_label("Tags")).to_have_value("keep, these")
    expect(dialog.get_by_text("Your unsent changes from this browser are back.")).to_be_visible()
    shot(page, "new-post-restored")

    dialog.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    assert dialogs.types == ["beforeunload"]  # publishing left without asking
    assert unsent_texts(page) == {}
    page.reload()
    dialog = open_new_post(page)
    expect(dialog.get_by_label("Title")).to_have_value("")
    expect(dialog.get_by_label("Content")).to_have_value("")
    expect(dialog.get_by_text("Your unsent changes from this browser are back.")).to_be_hidden()


def create_draft(api: httpx.Client, user: User, title: str) -> dict:
    body = {"title": title, "content": "The saved words.", "tags": ["first"], "published": False}
    response = api.post("/api/posts", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_draft_editor_keeps_changes_asks_before_leaving_and_forgets_them_once_saved(
    page: Page, api
):
    writer = create_user(api)
    draft = create_draft(api, writer, f"Draft {unique('d')}")
    log_in(page, writer.email)
    page.goto(f"/account/drafts/{draft['id']}")
    form = page.locator("#draft-form")
    content = form.get_by_label("Content")
    expect(content).to_have_value("The saved words.")
    expect_leaving_to_ask(page, False)  # nothing changed yet

    content.click()
    content.fill("Changed words, not saved yet.")
    expect_leaving_to_ask(page, True)
    staying = Dialogs(page, leave=False)
    page.get_by_role("banner").get_by_role("link", name="Posts").click()
    expect(content).to_have_value("Changed words, not saved yet.")  # stayed, text and all
    assert staying.types == ["beforeunload"]
    page.remove_listener("dialog", staying.answer)

    dialogs = Dialogs(page, leave=True)
    page.reload()
    expect(content).to_have_value("Changed words, not saved yet.")
    expect(form.get_by_text("Your unsent changes from this browser are back.")).to_be_visible()
    expect(form.get_by_label("Title")).to_have_value(draft["title"])
    key = f"{UNSENT}{writer.id}:post-{draft['id']}"
    assert key in unsent_texts(page)

    form.get_by_role("button", name="Save draft").click()
    expect(form.get_by_text("Draft saved.")).to_be_visible()
    expect_leaving_to_ask(page, False)
    assert key not in unsent_texts(page)
    page.reload()
    expect(content).to_have_value("Changed words, not saved yet.")  # now the server's
    expect(form.get_by_text("Your unsent changes from this browser are back.")).to_be_hidden()
    page.get_by_role("banner").get_by_role("link", name="Posts").click()
    expect(page).to_have_url(re.compile(r"/posts$"))
    assert dialogs.types == ["beforeunload"]  # only the first reload asked


def test_restored_changes_can_be_discarded_and_never_reach_another_account(page: Page, api):
    writer, other = create_user(api), create_user(api)
    draft = create_draft(api, writer, f"Draft {unique('d')}")
    log_in(page, writer.email)
    page.goto(f"/account/drafts/{draft['id']}")
    content = page.locator("#draft-form").get_by_label("Content")
    expect(content).to_have_value("The saved words.")
    content.click()
    content.fill("A change to throw away.")
    dialog = open_new_post(page)
    dialog.get_by_label("Title").fill("Not for the next account")
    dialog.get_by_role("button", name="Cancel").click()

    Dialogs(page, leave=True)
    page.reload()
    notice = page.locator("#draft-form").get_by_text("Your unsent changes")
    notice.get_by_role("button", name="Discard them").click()
    expect(content).to_have_value("The saved words.")
    expect(notice).to_be_hidden()
    assert list(unsent_texts(page)) == [f"{UNSENT}{writer.id}:new"]

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#nav-account")).to_be_hidden()
    log_in(page, other.email)
    expect(open_new_post(page).get_by_label("Title")).to_have_value("")


# --- axe-core -----------------------------------------------------------------------------------

AXE_CORE_JS = os.environ.get("AXE_CORE_JS", "")

if AXE_CORE_JS:  # the check exists where axe-core is at hand (see the module's docstring)

    def test_the_new_pages_and_the_search_page_pass_axe_core(page: Page, api):
        writer = create_user(api)
        set_bio(api, writer, "Writes about engines.\nAnd looms.")
        word = unique("axe")
        body = {"title": f"About {word}", "content": f"The {word} words.", "tags": ["axe"]}
        assert api.post("/api/posts", json=body, headers=writer.headers).status_code == 201
        source = Path(AXE_CORE_JS).read_text()
        for path in (
            "/authors",
            "/tags",
            f"/users/{writer.id}/posts",
            "/search",
            f"/search?q={word}",
        ):
            page.goto(path)
            page.evaluate(source)
            violations = page.evaluate(
                "async () => (await axe.run(document)).violations.map("
                "(v) => ({id: v.id, targets: v.nodes.map((n) => n.target.join(' '))}))"
            )
            assert violations == [], (path, violations)
