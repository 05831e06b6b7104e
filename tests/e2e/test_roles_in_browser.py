"""Roles in the pages: a user's page shows an editor's or admin's role; an admin changes a
role and suspends an account from the user's page; nobody else sees those controls."""

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from tests.e2e.helpers import create_post, create_user, log_in

pytestmark = pytest.mark.e2e


def make_admin(database_url: str, user_id: int) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": user_id})
    engine.dispose()


def test_an_admin_changes_a_role_and_suspends_from_the_users_page(
    page: Page, api, e2e_database_url
):
    admin = create_user(api)
    make_admin(e2e_database_url, admin.id)
    writer = create_user(api)
    create_post(api, writer, "Written before the suspension")

    page.goto(f"/users/{writer.id}/posts")
    expect(page.locator("#author-role")).to_have_count(0)  # an author shows no role
    expect(page.locator("#admin-controls")).to_be_hidden()  # logged out: no controls

    log_in(page, admin.email)
    page.goto(f"/users/{writer.id}/posts")
    controls = page.locator("#admin-controls")
    expect(controls).to_be_visible()
    controls.get_by_label("Role").select_option("editor")
    controls.get_by_role("button", name="Change role").click()
    expect(page.locator("#admin-done")).to_have_text("The role is now editor.")
    page.reload()
    expect(page.locator("#author-role")).to_have_text("Editor")

    page.once("dialog", lambda confirm: confirm.accept())
    controls.get_by_role("button", name="Suspend this account").click()
    expect(page.locator("#admin-done")).to_contain_text("Suspended")
    assert api.get(f"/api/users/{writer.id}").status_code == 404  # hidden from the public
    assert api.get("/api/users/me", headers=writer.headers).status_code == 401  # logged out


def test_others_see_no_admin_controls(page: Page, api):
    reader = create_user(api)
    writer = create_user(api)
    log_in(page, reader.email)
    page.goto(f"/users/{writer.id}/posts")
    expect(page.locator("h1")).to_contain_text(writer.username)
    expect(page.locator("#admin-controls")).to_be_hidden()
    expect(page.get_by_role("link", name="Moderation")).to_be_visible()
