"""HEAD answers every GET route like GET without the body; OPTIONS lists a route's methods."""

import re

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from httpx import ASGITransport, AsyncClient
from starlette.routing import Mount

from config import settings
from main import app
from tests.servers import uvicorn_app
from tests.test_caching import write_blog
from tests.test_metrics import scrape, value
from tests.test_security import fresh_app_module

pytestmark = pytest.mark.anyio

# Headers that differ between any two requests.
PER_REQUEST = {"date", "x-request-id"}
# A file under each mount (the media folder is empty while pictures go to S3: a 404 there).
MOUNT_FILES = {
    "/static": "/static/profile_pics/default.jpg",
    "/docs/assets": "/docs/assets/favicon.png",
    "/media": "/media/profile_pics/none.jpg",
}
# Its body counts the requests that came before, HEAD included: the length may differ.
COUNTS_REQUESTS = {"/metrics"}


@pytest.fixture
async def ids(client, alice, bob) -> dict:
    """What fills a route's path parameters (a post with a comment), and the author's token."""
    blog = await write_blog(client, alice, bob)
    post = blog["post"]
    return {
        "user_id": post["user_id"],
        "post_id": post["id"],
        "slug": post["slug"],
        "name": "python",
        "number": 1,
        **blog,
    }


def filled(path: str, ids: dict) -> str:
    """A route's path with real ids from the fixture in its parameters."""
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: str(ids[m.group(1)]), path)


def schema_get_paths() -> list[str]:
    return [path for path, operations in app.openapi()["paths"].items() if "get" in operations]


def other_get_paths() -> list[str]:
    """Every GET route and mount of the app that the schema does not show (pages, docs...)."""
    in_schema = set(schema_get_paths())
    paths = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, Mount):
            paths.append(MOUNT_FILES[context.path or ""])
        elif "GET" in (context.methods or ()) and context.path not in in_schema:
            paths.append(context.path or "")
    return paths


async def assert_head_like_get(client, path: str, headers: dict) -> None:
    get = await client.get(path, headers=headers)
    head = await client.head(path, headers=headers)
    assert head.status_code == get.status_code, path
    assert head.content == b"", path
    compared = PER_REQUEST | ({"content-length"} if path in COUNTS_REQUESTS else set())
    get_headers = {k: v for k, v in get.headers.items() if k not in compared}
    head_headers = {k: v for k, v in head.headers.items() if k not in compared}
    assert head_headers == get_headers, path
    assert int(head.headers["content-length"]) == len(get.content) or path in COUNTS_REQUESTS
    # Every route is found (the missing picture aside): equal 404s would prove little.
    assert get.status_code == (404 if path == MOUNT_FILES["/media"] else 200), path


async def test_the_schema_and_the_walk_find_the_routes_they_should():
    assert {"/api/posts", "/api/posts/{post_id}", "/api/users/me"} <= set(schema_get_paths())
    others = other_get_paths()
    assert {"/", "/posts/{post_id}", "/docs", "/openapi.json", "/metrics"} <= set(others)
    assert "/static/profile_pics/default.jpg" in others
    # HEAD is not a second operation of every GET in the schema.
    assert not [path for path, ops in app.openapi()["paths"].items() if "head" in ops]


@pytest.mark.parametrize("path", schema_get_paths())
async def test_head_on_every_get_route_of_the_schema(client, ids, path):
    await assert_head_like_get(client, filled(path, ids), ids["headers"])


@pytest.mark.parametrize("path", other_get_paths())
async def test_head_on_every_page_and_mount(client, ids, path):
    await assert_head_like_get(client, filled(path, ids), {})


async def test_head_on_what_does_not_exist_is_a_404_without_body(client):
    for path in ("/api/posts/999999", "/posts/999999", "/nowhere"):
        head = await client.head(path)
        assert head.status_code == 404, path
        assert head.content == b""


async def test_head_on_a_route_without_get_is_still_refused(client):
    response = await client.head("/api/users")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
async def test_a_405_lists_every_method_of_the_path_as_options_does(client, method):
    response = await client.request(method, "/api/comments/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "PATCH, DELETE, OPTIONS"


# Each of these paths also matches a route with a parameter that has the method
# (/api/users/{user_id}, /api/posts/{post_id}): the router took "forgot-password" for a user id
# and answered 422. The path has a route of its own, whose methods are the path's.
SHADOWED = [
    ("PATCH", "/api/users/forgot-password", "POST, OPTIONS"),
    ("DELETE", "/api/users/token", "POST, OPTIONS"),
    ("GET", "/api/users/logout", "POST, OPTIONS"),
    ("HEAD", "/api/users/reset-password", "POST, OPTIONS"),
    ("PATCH", "/api/users/me", "GET, HEAD, OPTIONS"),
    ("DELETE", "/api/users/me", "GET, HEAD, OPTIONS"),
    ("PUT", "/api/posts/preview", "POST, OPTIONS"),
    ("DELETE", "/api/posts/preview", "POST, OPTIONS"),
]


@pytest.mark.parametrize(("method", "path", "allowed"), SHADOWED)
async def test_a_method_the_path_lacks_is_a_405_though_a_route_with_a_parameter_matches(
    client, alice, method, path, allowed
):
    _, headers = alice  # a valid token: no 401 stands in front of the answer
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    if method != "HEAD":
        assert response.json() == {"detail": "Method Not Allowed"}
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200


async def test_a_405_of_a_path_with_a_route_of_its_own_is_counted_on_that_route(client, alice):
    _, headers = alice
    labels = {"method": "PATCH", "route": "/api/users/forgot-password", "status": "405"}
    before = value(await scrape(client), "http_requests_total", **labels)
    await client.patch("/api/users/forgot-password", headers=headers)
    assert value(await scrape(client), "http_requests_total", **labels) - before == 1


@pytest.mark.parametrize(
    ("method", "status", "allowed"),
    [("PATCH", 422, None), ("PUT", 405, "GET, HEAD, PATCH, DELETE, OPTIONS")],
)
async def test_a_path_only_a_route_with_a_parameter_matches_has_that_route_s_methods(
    client, alice, method, status, allowed
):
    """`abc` is no user id, but no route names that path: PATCH is the route's, a 422 says why."""
    _, headers = alice
    response = await client.request(method, "/api/users/abc", json={}, headers=headers)
    assert response.status_code == status
    assert response.headers.get("allow") == allowed


async def test_head_is_counted_as_head_on_its_route(client, ids):
    labels = {"method": "HEAD", "route": "/api/posts/{post_id}", "status": "200"}
    before = value(await scrape(client), "http_requests_total", **labels)
    assert (await client.head(f"/api/posts/{ids['post_id']}")).status_code == 200
    after = value(await scrape(client), "http_requests_total", **labels)
    assert after - before == 1


# --- OPTIONS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/posts", "GET, HEAD, POST, OPTIONS"),
        ("/api/posts/1", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
        ("/api/tags", "GET, HEAD, OPTIONS"),
        ("/api/users", "POST, OPTIONS"),
        ("/api/users/me", "GET, HEAD, OPTIONS"),
        ("/api/users/forgot-password", "POST, OPTIONS"),
        ("/api/users/7", "GET, HEAD, PATCH, DELETE, OPTIONS"),
        ("/api/comments/1", "PATCH, DELETE, OPTIONS"),
        ("/static/css/main.css", "GET, HEAD, OPTIONS"),
        ("/", "GET, HEAD, OPTIONS"),
    ],
)
async def test_options_lists_the_methods_of_the_route(client, path, allowed):
    response = await client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allowed
    assert response.content == b""
    assert "x-content-type-options" in response.headers  # the security headers too


async def test_options_is_counted_on_its_route(client):
    labels = {"method": "OPTIONS", "route": "/api/posts/{post_id}", "status": "204"}
    before = value(await scrape(client), "http_requests_total", **labels)
    assert (await client.options("/api/posts/7")).status_code == 204
    assert value(await scrape(client), "http_requests_total", **labels) - before == 1


async def test_options_on_an_unknown_path_is_a_404(client):
    response = await client.options("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_without_cors_a_preflight_gets_the_methods_but_no_cross_origin_grant(client):
    assert settings.cors_origins == []
    response = await client.options(
        "/api/posts",
        headers={"Origin": "https://blog.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert "access-control-allow-origin" not in response.headers


async def test_with_cors_the_preflight_is_the_cors_middleware_s_and_options_lists_methods(
    monkeypatch,
):
    monkeypatch.setattr(settings, "cors_origins", ["https://blog.example"])
    cors_app = fresh_app_module("main_with_cors_options").app
    async with AsyncClient(transport=ASGITransport(app=cors_app), base_url="http://t") as client:
        preflight = await client.options(
            "/api/posts",
            headers={"Origin": "https://blog.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://blog.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "allow" not in preflight.headers  # answered before the route's methods
        refused = await client.options(
            "/api/posts",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 400
        plain = await client.options("/api/posts", headers={"Origin": "https://blog.example"})
        assert plain.status_code == 204
        assert plain.headers["allow"] == "GET, HEAD, POST, OPTIONS"
        assert plain.headers["access-control-allow-origin"] == "https://blog.example"


async def test_head_under_a_real_server(engine, tmp_path):
    """uvicorn reads the method from its own scope while the response goes out: HEAD must
    stay HEAD there (no body expected, logged as HEAD), though the app runs it as GET."""
    async with (
        uvicorn_app({}, tmp_path) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        for path in ("/api/posts", "/", "/static/css/main.css"):
            get, head = await client.get(path), await client.head(path)
            assert head.status_code == get.status_code == 200, path
            assert head.headers["content-length"] == str(len(get.content)), path
            assert head.content == b""
        await server.wait_for_log('"HEAD /static/css/main.css HTTP/1.1" 200')
    log = server.log.read_text()
    assert '"HEAD /api/posts HTTP/1.1" 200' in log
    assert "Exception in ASGI application" not in log
