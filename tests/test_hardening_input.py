"""Malformed input of every kind gets a 4xx with a JSON body, never a 500."""

import json

import pytest
from starlette.requests import Request

from body_limit import BodyLimitMiddleware
from errors import UNSTORABLE_TEXT, on_unstorable_text
from main import app
from schemas import Detail
from security_headers import SecurityHeadersMiddleware
from tests.conftest import create_test_post

pytestmark = pytest.mark.anyio

BAD_IDS = [
    str(2**70),
    str(2**31),
    str(2**63),
    "-1",
    "0",
    "-0",
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "١٢",  # Arabic-Indic digits
    "１２",  # fullwidth digits
    "😀",
    "%00",
    "1%20OR%201=1",
    "9" * 5000,
    "x" * 5000,
]


@pytest.fixture
async def post_of_alice(client, alice) -> dict:
    _user, headers = alice
    return await create_test_post(client, headers)


def send_json(client, method: str, url: str, body, headers: dict | None = None):
    """JSON with escapes (`\\ud800`), as a hostile client can send what httpx would refuse."""
    return client.request(
        method,
        url,
        content=json.dumps(body).encode(),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def assert_client_error(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert isinstance(response.json()["detail"], str | list)


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_public_routes_answer_4xx_for_ids_out_of_range_or_not_numbers(client, bad_id):
    for path in (f"/api/users/{bad_id}", f"/api/users/{bad_id}/posts", f"/api/posts/{bad_id}"):
        assert_client_error(await client.get(path))


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_owner_routes_answer_4xx_for_bad_ids(client, alice, bad_id):
    _user, headers = alice
    post = {"title": "t", "content": "c"}
    picture = {"file": ("a.png", b"not an image", "image/png")}
    for response in (
        await client.put(f"/api/posts/{bad_id}", json=post, headers=headers),
        await client.patch(f"/api/posts/{bad_id}", json=post, headers=headers),
        await client.delete(f"/api/posts/{bad_id}", headers=headers),
        await client.patch(f"/api/users/{bad_id}", json={"username": "z"}, headers=headers),
        await client.delete(f"/api/users/{bad_id}", headers=headers),
        await client.patch(f"/api/users/{bad_id}/picture", files=picture, headers=headers),
        await client.delete(f"/api/users/{bad_id}/picture", headers=headers),
    ):
        assert_client_error(response)


async def test_largest_valid_id_is_a_plain_404(client):
    response = await client.get(f"/api/posts/{2**31 - 1}")
    assert response.status_code == 404
    assert response.json() == {"detail": Detail.POST_NOT_FOUND}


@pytest.mark.parametrize(
    "query",
    ["skip=-1", f"skip={2**70}", "limit=0", "limit=101", "limit=-5", "limit=abc", "skip=1.5"],
)
async def test_pagination_out_of_range_is_422(client, query):
    response = await client.get(f"/api/posts?{query}")
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"title": "nul \x00 byte", "content": "c"},
        {"title": "t", "content": "nul \x00 byte"},
        {"title": "\ud800 lone surrogate", "content": "c"},
        {"title": "t", "content": "\udfff"},
        {"title": "x" * 101, "content": "c"},
        {"title": "   ", "content": "c"},
        {"title": "t", "content": ""},
        {"title": None, "content": "c"},
        {"title": ["t"], "content": "c"},
        {"title": {"$gt": ""}, "content": "c"},
        {"title": 12, "content": 3.5},
        {},
    ],
)
async def test_hostile_post_fields_are_a_4xx(client, alice, body):
    _user, headers = alice
    assert_client_error(await send_json(client, "POST", "/api/posts", body, headers))


@pytest.mark.parametrize("field", ["title", "content"])
async def test_a_nul_character_is_refused_by_name(client, alice, field):
    """PostgreSQL text cannot hold NUL: the 422 says so, on the field that holds one."""
    _user, headers = alice
    body = {"title": "t", "content": "c", field: "nul \x00 byte"}
    response = await client.post("/api/posts", json=body, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["msg"] == "Value error, must not contain NUL characters"


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"null", b"[]", b'"text"', b"\xff\xfe\x00", b'{"title": "t", "content": "c"' * 3],
)
async def test_malformed_json_bodies_are_a_4xx(client, alice, content):
    _user, headers = alice
    response = await client.post(
        "/api/posts", content=content, headers={**headers, "Content-Type": "application/json"}
    )
    assert_client_error(response)


async def test_body_in_an_unexpected_content_type_is_a_4xx(client, alice):
    _user, headers = alice
    response = await client.post("/api/posts", data={"title": "t", "content": "c"}, headers=headers)
    assert_client_error(response)


@pytest.mark.parametrize(
    "account",
    [
        {"username": "nul\x00name", "email": "a@example.com", "password": "long enough pw"},
        {"username": "\ud83d", "email": "a@example.com", "password": "long enough pw"},
        {"username": "a", "email": "a\x00@example.com", "password": "long enough pw"},
        {"username": "a", "email": "not-an-email", "password": "long enough pw"},
        {"username": "a", "email": "a@example.com", "password": "\ud800" * 8},
        {"username": "a", "email": "a@example.com", "password": "p" * 100_000},
        {"username": "a" * 51, "email": "a@example.com", "password": "long enough pw"},
        {"username": "a", "email": f"{'a' * 400}@example.com", "password": "long enough pw"},
    ],
)
async def test_hostile_registrations_are_a_4xx(client, account):
    assert_client_error(await send_json(client, "POST", "/api/users", account))


async def test_unicode_username_and_content_round_trip(client):
    account = {"username": "Zoë 日本 🚀", "email": "zoe@example.com", "password": "pässwörd 🔑"}
    response = await client.post("/api/users", json=account)
    assert response.status_code == 201
    assert response.json()["username"] == "Zoë 日本 🚀"


@pytest.mark.parametrize(
    "form",
    [
        {"username": "nul\x00@example.com", "password": "password1"},
        {"username": "a@example.com", "password": "nul\x00password"},
        {"username": "x" * 100_000, "password": "password1"},
        {"username": "", "password": ""},
    ],
)
async def test_hostile_logins_are_a_4xx(client, form):
    response = await client.post("/api/users/token", data=form)
    assert_client_error(response)


@pytest.mark.parametrize(
    "body",
    [
        {"token": "nul\x00token", "new_password": "long enough pw"},
        {"token": "\ud800", "new_password": "long enough pw"},
        {"token": "t" * 201, "new_password": "long enough pw"},
        {"token": "t", "new_password": "nul\x00password"},
    ],
)
async def test_hostile_password_resets_are_a_4xx(client, body):
    assert_client_error(await send_json(client, "POST", "/api/users/reset-password", body))


@pytest.mark.parametrize("email", ["nul\x00@example.com", "\ud800@example.com", "a" * 1000])
async def test_hostile_forgot_password_emails_are_a_4xx(client, email):
    response = await send_json(client, "POST", "/api/users/forgot-password", {"email": email})
    assert_client_error(response)


# One hostile request per test: the test session, unlike the app's, outlives a failed flush.
@pytest.mark.parametrize(
    "body", [{"title": "\x00"}, {"content": "\ud800"}, {"title": None}, {"title": ""}]
)
async def test_hostile_updates_of_a_post_are_a_4xx(client, alice, post_of_alice, body):
    _user, headers = alice
    url = f"/api/posts/{post_of_alice['id']}"
    assert_client_error(await send_json(client, "PATCH", url, body, headers))


@pytest.mark.parametrize(
    "body", [{"username": "\x00"}, {"username": "\udc00"}, {"email": None}, {"username": ""}]
)
async def test_hostile_user_updates_are_a_4xx(client, alice, body):
    user, headers = alice
    url = f"/api/users/{user['id']}"
    assert_client_error(await send_json(client, "PATCH", url, body, headers))


async def test_unstorable_text_in_a_json_field_is_a_validation_error_on_that_field(client, alice):
    _user, headers = alice
    body = {"title": "nul \x00 byte", "content": "c"}
    response = await send_json(client, "POST", "/api/posts", body, headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "title"]
    assert "NUL" in error["msg"]


async def test_unstorable_text_that_reaches_the_database_is_answered_like_a_validation_error(
    client,
):
    form = {"username": "nul\x00@example.com", "password": "password1"}
    response = await client.post("/api/users/token", data=form)  # form fields: no schema
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": ["body"], "msg": UNSTORABLE_TEXT, "type": "value_error"}]
    }


@pytest.mark.parametrize(
    "path",
    [
        f"/posts/{2**70}",
        "/posts/-1",
        "/posts/%F0%9F%98%80",
        f"/users/{2**70}/posts",
        "/users/abc/posts",
        "/?skip=-1",
        f"/?skip={2**70}",
        "/?limit=1000",
        "/?page=%00",
        "/reset-password?token=%00%ED%A0%80",
        "/%ED%A0%80",
        "/" + "a" * 5000,
        "/api/%00",
        "/static/..%2f..%2fpyproject.toml",
        "/media/..%2f..%2fpyproject.toml",
    ],
)
async def test_hostile_page_and_file_urls_are_a_4xx_or_a_page(client, path):
    response = await client.get(path)
    assert response.status_code < 500
    assert "[project]" not in response.text


async def test_unstorable_text_on_a_page_gets_the_html_error_page():
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/posts/1",
        "query_string": b"",
        "headers": [],
        "app": app,
        "router": app.router,
    }
    error = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
    response = await on_unstorable_text(Request(scope), error)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")


async def test_middlewares_pass_non_http_scopes_through():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    for middleware in (BodyLimitMiddleware(inner), SecurityHeadersMiddleware(inner)):
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]  # never called for lifespan
    assert seen == ["lifespan", "lifespan"]
