"""Pictures in the editors, in Chromium: "Add picture", a dropped file and a pasted image are
uploaded and written into the Markdown at the cursor; the published post shows the picture
and names it as its og:image."""

import re

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from schemas import Detail
from tests.e2e.helpers import TEST_IMAGE, User, create_user, log_in, shot, unique

pytestmark = pytest.mark.e2e

PICTURE_URL = r"/media/post_images/[0-9a-f]{32}\.webp"


def create_draft(api: httpx.Client, user: User, title: str, content: str) -> dict:
    body = {"title": title, "content": content, "published": False}
    response = api.post("/api/posts", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def open_draft(page: Page, draft: dict) -> Locator:
    """The draft editor, once it has loaded the draft."""
    page.goto(f"/account/drafts/{draft['id']}")
    form = page.locator("#draft-form")
    expect(form.get_by_label("Content")).to_have_value(draft["content"])
    return form


def give_the_textarea(page: Page, form_id: str, event: str, name: str, mime: str) -> None:
    """Drop a file on the editor's text (`drop`), or paste it there (`paste`), as a person
    dragging it from their files or pasting a copied picture would."""
    page.evaluate(
        """async ([formId, event, name, mime, bytes]) => {
          const file = new File([new Uint8Array(bytes)], name, { type: mime });
          const data = new DataTransfer();
          data.items.add(file);
          const textarea = document.getElementById(formId).elements.content;
          const happening = event === "drop"
            ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true })
            : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
          textarea.dispatchEvent(happening);
        }""",
        [form_id, event, name, mime, list(TEST_IMAGE.read_bytes())],
    )


def test_the_add_picture_button_uploads_and_inserts_markdown_at_the_cursor(
    page: Page, api, live_server
):
    writer = create_user(api)
    log_in(page, writer.email)
    page.get_by_role("button", name="New post").click()
    dialog = page.get_by_role("dialog", name="New post")
    title = f"Pictured {unique('p')}"
    dialog.get_by_label("Title").fill(title)
    content = dialog.get_by_label("Content")
    content.fill("Before after")
    content.evaluate("(textarea) => textarea.setSelectionRange(7, 7)")  # between the words

    with page.expect_file_chooser() as chooser:
        dialog.get_by_role("button", name="Add picture").click()
    chooser.value.set_files(TEST_IMAGE)

    expect(content).to_have_value(re.compile(rf"^Before !\[test_image\]\({PICTURE_URL}\)after$"))
    expect(dialog.get_by_role("status")).to_have_text("Picture added.")
    picture_url = re.search(PICTURE_URL, content.input_value())
    assert picture_url is not None
    shot(page, "editor-picture-added")
    dialog.get_by_role("button", name="Publish").click()

    expect(page).to_have_url(re.compile(r"/posts/\d+/pictured-p[0-9a-f]{8}$"))
    picture = page.locator("#post-content img")
    expect(picture).to_have_attribute("src", picture_url[0])
    expect(picture).to_have_attribute("alt", "test_image")
    expect(picture).to_have_js_property("naturalWidth", 1)  # loaded: served, allowed by the CSP
    og_image = page.locator('meta[property="og:image"]')
    expect(og_image).to_have_attribute("content", f"{live_server}{picture_url[0]}")
    shot(page, "post-with-picture")


def test_a_file_dropped_on_the_draft_editor_is_uploaded_and_inserted(page: Page, api):
    writer = create_user(api)
    draft = create_draft(api, writer, f"Draft {unique('d')}", "Text")
    log_in(page, writer.email)
    form = open_draft(page, draft)

    give_the_textarea(page, "draft-form", "drop", "holiday photo.jpg", "image/jpeg")

    content = form.get_by_label("Content")
    expect(content).to_have_value(re.compile(rf"^Text!\[holiday photo\]\({PICTURE_URL}\)$"))
    form.get_by_role("button", name="Save draft").click()
    expect(form.locator(".form-success")).to_have_text("Draft saved.")
    saved = api.get(f"/api/posts/{draft['id']}", headers=writer.headers).json()
    assert re.search(rf"!\[holiday photo\]\({PICTURE_URL}\)", saved["content"])
    assert re.search(rf'<img src="{PICTURE_URL}" alt="holiday photo"', saved["content_html"])


def test_a_pasted_picture_is_uploaded_and_pasted_text_stays_text(page: Page, api):
    writer = create_user(api)
    draft = create_draft(api, writer, f"Draft {unique('d')}", "Intro")
    log_in(page, writer.email)
    form = open_draft(page, draft)
    content = form.get_by_label("Content")

    give_the_textarea(page, "draft-form", "paste", "image.png", "image/jpeg")
    expect(content).to_have_value(re.compile(rf"^Intro!\[image\]\({PICTURE_URL}\)$"))

    content.press("End")
    content.press_sequentially(" done")  # the editor still types as a textarea does
    expect(content).to_have_value(re.compile(rf"^Intro!\[image\]\({PICTURE_URL}\) done$"))


def test_a_file_that_is_no_picture_is_refused_in_the_form(page: Page, api, tmp_path):
    writer = create_user(api)
    draft = create_draft(api, writer, f"Draft {unique('d')}", "Unchanged")
    log_in(page, writer.email)
    form = open_draft(page, draft)
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"these are words, not pixels")

    with page.expect_file_chooser() as chooser:
        form.get_by_role("button", name="Add picture").click()
    chooser.value.set_files(fake)

    expect(form.locator(".form-error")).to_have_text(Detail.INVALID_IMAGE)
    expect(form.get_by_label("Content")).to_have_value("Unchanged")
    expect(form.get_by_role("button", name="Add picture")).to_be_enabled()
