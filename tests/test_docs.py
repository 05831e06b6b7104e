"""The interactive docs: served by the app under a strict policy; every request body has an example;
and no route of the app goes without a Content-Security-Policy."""

import re
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import schemas
from main import app

pytestmark = pytest.mark.anyio

# The policies of the contract, spelled out here rather than imported from the code they test.
# `base-uri` and `form-action` do not fall back to `default-src`: without them an injected
# <base> or <form> could point the page's relative URLs or a submission at another origin.
SWAGGER_UI_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; worker-src blob:"
)
DOCS_PAGES = {"/docs": SWAGGER_UI_POLICY, "/redoc": REDOC_POLICY}
JSON, FORM, MULTIPART = (
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
)


def requests_for_every_route() -> list[tuple[str, str]]:
    """(method, path) for each route and mount of the app, path parameters filled in.

    FastAPI keeps included routers as branches of app.routes; iter_route_contexts walks them.
    """
    requests = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):  # static files: one that exists, and one that does not
            static: StaticFiles = route.app  # type: ignore[assignment]  # every Mount here serves files
            files = sorted(
                f for d in static.all_directories for f in Path(d).iterdir() if f.is_file()
            )
            if files:
                requests.append(("GET", f"{context.path}/{files[0].name}"))
            requests.append(("GET", f"{context.path}/no-such-file.txt"))
        elif isinstance(route, Route):  # API routes, pages, /openapi.json, the docs pages
            assert context.path is not None and context.methods is not None
            path = re.sub(r"\{[^}]+\}", "1", context.path)
            requests += [(method, path) for method in sorted(context.methods)]
        else:
            raise AssertionError(f"a kind of route this test does not know: {route!r}")
    return requests


async def test_every_route_sends_a_content_security_policy(client):
    requests = requests_for_every_route()
    paths = {path for _, path in requests}
    assert {"/docs", "/redoc", "/openapi.json", "/api/posts", "/login", "/health"} <= paths
    mounts = {path.removesuffix("/no-such-file.txt") for path in paths if "no-such" in path}
    assert mounts == {"/docs/assets", "/static", "/media"}

    without = []
    for method, path in requests:
        response = await client.request(method, path)
        policy = response.headers.get("content-security-policy", "")
        if not ("script-src 'self'" in policy and "frame-ancestors 'none'" in policy):
            without.append((method, path, response.status_code, policy))
    assert without == []


@pytest.mark.parametrize("path", DOCS_PAGES)
async def test_docs_pages_have_their_own_strict_policy(client, path):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_PAGES[path]
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", DOCS_PAGES)
async def test_docs_pages_run_no_inline_code_and_load_everything_from_the_app(client, path):
    html = (await client.get(path)).text
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" for body in scripts)
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)

    assets = re.findall(r'\s(?:src|href)="([^"]*)"', html)
    assert len(assets) >= 3  # icon, styles or scripts, start-up code
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset


async def test_swagger_ui_starts_from_the_packaged_bundle_and_a_static_file(client):
    html = (await client.get("/docs")).text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/static/js/swagger-ui.js"):
        assert f'src="{asset}"' in html
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text


async def test_redoc_loads_its_standalone_bundle_after_the_logo_guard(client):
    html = (await client.get("/redoc")).text
    guard = html.index('src="/static/js/redoc-no-cdn.js"')
    assert guard < html.index('src="/docs/assets/redoc.standalone.js"')
    assert '<redoc spec-url="/openapi.json">' in html


# --- Examples ----------------------------------------------------------------------------------


def resolve(document: dict, schema: dict) -> dict:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def request_bodies(document: dict):
    """(method, path, media type, media type object) of every request body in the schema."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
                yield method, path, media_type, media


def examples_of(document: dict, media: dict) -> list:
    schema = resolve(document, media["schema"])
    found = list(schema.get("examples", []))
    found += [media["example"]] if "example" in media else []
    found += [example["value"] for example in media.get("examples", {}).values()]
    return found


async def test_every_json_and_form_request_body_has_an_example(client):
    document = (await client.get("/openapi.json")).json()
    bodies = list(request_bodies(document))
    # A picture upload (multipart) is a file to choose, not something to show an example of.
    assert {media_type for _, _, media_type, _ in bodies} == {JSON, FORM, MULTIPART}
    checked = {(m, p) for m, p, media_type, _ in bodies if media_type in (JSON, FORM)}
    assert {("post", "/api/posts"), ("post", "/api/users/token"), ("post", "/api/users")} <= checked

    without = [
        (method, path, media_type)
        for method, path, media_type, media in bodies
        if media_type in (JSON, FORM) and not examples_of(document, media)
    ]
    assert without == []


async def test_json_body_examples_are_valid_requests(client):
    document = (await client.get("/openapi.json")).json()
    for _, _, media_type, media in request_bodies(document):
        if media_type == JSON:
            model = getattr(schemas, media["schema"]["$ref"].rsplit("/", 1)[1])
            for example in examples_of(document, media):
                model.model_validate(example)  # raises, naming the field, when one is wrong


async def test_the_examples_register_log_in_and_write_a_post_as_shown(client):
    """What "Try it out" sends when nobody edits the examples works, in this order."""
    document = (await client.get("/openapi.json")).json()
    bodies = {
        (m, p, t): examples_of(document, media) for m, p, t, media in request_bodies(document)
    }

    user = bodies["post", "/api/users", JSON][0]
    assert (await client.post("/api/users", json=user)).status_code == 201
    form = bodies["post", "/api/users/token", FORM][0]
    assert form["username"] == user["email"] and form["password"] == user["password"]
    token = (await client.post("/api/users/token", data=form)).json()["access_token"]
    post = bodies["post", "/api/posts", JSON][0]
    response = await client.post(
        "/api/posts", json=post, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201
    assert response.json()["title"] == post["title"]
