"""A path asked for with or without the trailing slash its route does not have.

A page is redirected to its own spelling by a relative Location, so the Host header, which any
client sets as it likes, never names where the browser goes. The API has one spelling per
route, as its schema lists them: the other is a 404 in JSON, with no Location at all.
"""

import pytest
from httpx import ASGITransport, AsyncClient

from main import app

pytestmark = pytest.mark.anyio

HOSTILE = {"Host": "evil.example"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/api/posts/", "/api/posts/1/", "/api/users/1/posts/"])
async def test_api_path_with_a_trailing_slash_is_not_found_and_names_no_host(client, method, path):
    response = await client.request(method, path, headers=HOSTILE)
    assert response.status_code == 404
    assert "location" not in response.headers
    if method != "HEAD":
        assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/login/", "/login"),
        ("/account/", "/account"),
        ("/posts/1/", "/posts/1"),
        ("/search/?q=python&tag=web", "/search?q=python&tag=web"),
        ("/health/", "/health"),
        ("/static", "/static/"),
    ],
)
async def test_page_path_with_the_other_spelling_redirects_to_a_relative_location(
    client, path, location
):
    response = await client.get(path, headers=HOSTILE)
    assert response.status_code == 307
    assert response.headers["location"] == location


async def test_the_relative_location_leads_to_the_page(client):
    response = await client.get("/login/", headers=HOSTILE, follow_redirects=True)
    assert response.status_code == 200
    # Resolved against the address the client asked, whatever its Host header claimed.
    assert str(response.url) == "http://test/login"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        # Each character that would end or change the path as a URL stays encoded.
        ("/tags/a%3Fb/", "/tags/a%3Fb"),
        ("/tags/a%23b/", "/tags/a%23b"),
        ("/tags/a%5Cb/", "/tags/a%5Cb"),
        ("/tags/caf%C3%A9/", "/tags/caf%C3%A9"),
        ("/tags/100%25/", "/tags/100%25"),
    ],
)
async def test_the_location_keeps_the_path_encoded(client, path, location):
    response = await client.get(path, headers=HOSTILE)
    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize("path", ["//evil.example/", "//evil.example", "/\\evil.example/", "//"])
async def test_no_location_starts_with_two_slashes(client, path):
    # In full: httpx would read a path of two slashes as another host.
    response = await client.get(f"http://test{path}", headers=HOSTILE)
    assert response.status_code == 404
    assert "location" not in response.headers


async def test_an_app_under_a_path_redirects_within_it(client):
    """Behind a proxy that serves the app under /blog (uvicorn --root-path /blog)."""
    transport = ASGITransport(app=app, root_path="/blog")
    async with AsyncClient(transport=transport, base_url="http://test") as under_a_path:
        response = await under_a_path.get("/blog/login/", headers=HOSTILE)
        assert response.status_code == 307
        assert response.headers["location"] == "/blog/login"
        response = await under_a_path.get("/blog/api/posts/", headers=HOSTILE)
        assert response.status_code == 404
        assert "location" not in response.headers
