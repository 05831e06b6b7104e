"""What fuzzing the API from its own schema found (.ci/schemathesis): the schema and the API
disagreed. A field the schema calls nullable must take null; a boolean takes true or false only."""

import re

import pytest

from main import app
from tests.conftest import create_test_post
from tests.test_validation_errors import OPERATIONS, resolve

pytestmark = pytest.mark.anyio

SCHEMA = app.openapi()


def allows_null(node: dict) -> bool:
    node = resolve(SCHEMA, node)
    if node.get("type") == "null" or "null" in (node.get("type") or []):
        return True
    return any(allows_null(option) for option in node.get("anyOf", []) + node.get("oneOf", []))


def request_fields() -> list[tuple[str, str, str, dict]]:
    """(method, path, field, field schema) of every JSON request body of the schema."""
    fields = []
    for path, methods in SCHEMA["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = resolve(SCHEMA, content["application/json"]["schema"])
                for name, node in body.get("properties", {}).items():
                    fields.append((method.upper(), path, name, node))
    return fields


async def urls_of_own_resources(client, user: dict, headers: dict) -> dict[str, str]:
    """Each path of the schema with a post, a comment and the user of the test in it."""
    post = await create_test_post(client, headers)
    comment = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "A comment"}, headers=headers
    )
    [session] = (await client.get("/api/users/me/sessions", headers=headers)).json()
    ids = {
        "user": user["id"],
        "comment": comment.json()["id"],
        "post": post["id"],
        "session": session["id"],
    }
    return {
        path: re.sub(r"\{(\w+)_id\}", lambda m: str(ids[m[1]]), path) for path in SCHEMA["paths"]
    }


async def test_null_is_refused_exactly_where_the_schema_does_not_allow_it(client, alice):
    """The schema said PATCH fields were nullable while the API refused null with a 422: a
    client generated from the schema would send what the API refuses."""
    user, headers = alice
    urls = await urls_of_own_resources(client, user, headers)
    field_schemas = {(m, p, f): node for m, p, f, node in request_fields()}
    disagreements = []
    for method, path, body in OPERATIONS:
        for field in body:
            response = await client.request(
                method, urls[path], json={**body, field: None}, headers=headers
            )
            refused = response.status_code == 422
            if refused == allows_null(field_schemas[method, path, field]):
                disagreements.append((method, path, field, response.status_code))
    assert disagreements == []


def test_no_request_field_defaults_to_a_null_it_would_refuse():
    """A default is what leaving the field out means: null, where null is refused, was false."""
    defaults_to_null = [
        (method, path, field)
        for method, path, field, node in request_fields()
        if "default" in node and node["default"] is None and not allows_null(node)
    ]
    assert defaults_to_null == []


BOOLEAN_LOOKALIKES = [0, 1, "true", "false", "yes", 0.0]


@pytest.mark.parametrize("value", BOOLEAN_LOOKALIKES)
async def test_published_takes_only_true_or_false(client, alice, value):
    """`"published": 0` made a draft, though the schema says boolean: 0, 1 and "false" are
    refused rather than guessed at, on every route that takes the field."""
    _, headers = alice
    post = await create_test_post(client, headers)
    url = f"/api/posts/{post['id']}"
    requests = [
        ("POST", "/api/posts", {"title": "T", "content": "C", "published": value}),
        ("PUT", url, {"title": "T", "content": "C", "published": value}),
        ("PATCH", url, {"published": value}),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 422, (method, value)
        errors = response.json()["detail"]
        # Where the field may be left out, pydantic names each branch of `bool | None`.
        assert {tuple(error["loc"][:2]) for error in errors} == {("body", "published")}
        assert "bool_type" in {error["type"] for error in errors}
    assert (await client.get(url, headers=headers)).json()["published"] is True


@pytest.mark.parametrize("value", [True, False])
async def test_published_true_or_false_is_taken_as_it_is(client, alice, value):
    _, headers = alice
    post = await create_test_post(client, headers)
    url = f"/api/posts/{post['id']}"
    created = await client.post(
        "/api/posts", json={"title": "T", "content": "C", "published": value}, headers=headers
    )
    assert created.json()["published"] is value
    replaced = await client.put(
        url, json={"title": "T", "content": "C", "published": value}, headers=headers
    )
    assert replaced.json()["published"] is value
    patched = await client.patch(url, json={"published": not value}, headers=headers)
    assert patched.json()["published"] is (not value)
