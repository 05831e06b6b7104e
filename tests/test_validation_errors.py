"""422 bodies: what was wrong and where, never the submitted input; and no number that
Python's JSON parser accepts (NaN, Infinity, 1e400, 10**400) gives a 500 anywhere."""

import json
import re

import pytest

from errors import public_error
from main import app
from tests.conftest import create_test_post

pytestmark = pytest.mark.anyio

# Raw JSON: Python's parser accepts all of them; 1e400 becomes inf, the others stay huge ints.
NASTY_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "-1" + "0" * 400,
]
ERROR_KEYS = {"loc", "msg", "type", "ctx"}


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def valid_value(schema: dict, node: dict):
    """A value the field accepts, from its schema (its example when it has one)."""
    node = resolve(schema, node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if resolve(schema, o).get("type") != "null"]
            return valid_value(schema, options[0])
    if "examples" in node:
        return node["examples"][0]
    if "example" in node:
        return node["example"]
    kind = node.get("type")
    if kind == "string":
        if node.get("format") == "email":
            return "someone.new@example.com"
        text = "valid text Zq 1234"[: node.get("maxLength", 100)]
        return text.ljust(node.get("minLength", 0), "x")
    if kind in ("integer", "number"):
        return node.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return {}


def json_operations() -> list[tuple[str, str, dict]]:
    """Every operation of the OpenAPI schema that takes a JSON body, with a valid body."""
    schema = app.openapi()
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            body_schema = resolve(schema, content["application/json"]["schema"])
            body = {
                name: valid_value(schema, prop)
                for name, prop in body_schema.get("properties", {}).items()
            }
            operations.append((method.upper(), path, body))
    return operations


OPERATIONS = json_operations()


def test_the_schema_has_json_operations_to_check():
    paths = {(method, path) for method, path, _body in OPERATIONS}
    assert ("POST", "/api/users") in paths and ("PATCH", "/api/posts/{post_id}") in paths


@pytest.mark.parametrize(
    ("method", "path", "body"), OPERATIONS, ids=[f"{m} {p}" for m, p, _b in OPERATIONS]
)
async def test_non_finite_and_huge_numbers_in_any_json_field_are_a_4xx(
    client, alice, method, path, body
):
    user, headers = alice
    post = await create_test_post(client, headers)
    comment = await client.post(
        f"/api/posts/{post['id']}/comments", json={"content": "A comment"}, headers=headers
    )
    ids = {"user": user["id"], "comment": comment.json()["id"], "post": post["id"]}
    # Path parameters name the test's own resources, so each request reaches body validation.
    url = re.sub(r"\{(\w+)_id\}", lambda m: str(ids[m[1]]), path)
    bodies = list(NASTY_NUMBERS)  # the whole body
    for field in body:
        for number in NASTY_NUMBERS:
            text = json.dumps({**body, field: "__number__"})
            bodies.append(text.replace('"__number__"', number))
    for text in bodies:
        response = await client.request(
            method, url, content=text, headers={**headers, "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (text[:80], response.status_code)
        for error in response.json()["detail"]:
            assert set(error) <= ERROR_KEYS


async def test_a_validation_error_never_echoes_the_submitted_password(client):
    account = {"username": "alice", "email": "not an email", "password": "Sh0rt!"}
    response = await client.post("/api/users", json=account)
    assert response.status_code == 422
    assert "Sh0rt!" not in response.text
    assert "not an email" not in response.text
    errors = response.json()["detail"]
    assert {tuple(error["loc"]) for error in errors} == {("body", "email"), ("body", "password")}
    for error in errors:
        assert "input" not in error
        assert error["msg"] and error["type"]


async def test_nan_in_a_text_field_is_a_422_naming_the_field(client):
    response = await client.post(
        "/api/users/forgot-password",
        content=b'{"email": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "email"],
                "msg": "Input should be a valid string",
                "type": "string_type",
            }
        ]
    }


async def test_limits_stay_in_the_error_context(client):
    response = await client.get("/api/posts?limit=1000")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["ctx"] == {"le": 100}


def test_error_context_keeps_only_plain_json_values():
    error = {
        "loc": ("body", "title"),
        "msg": "Value error, nope",
        "type": "value_error",
        "input": "secret input",
        "url": "https://errors.pydantic.dev",
        "ctx": {
            "error": ValueError("nope"),
            "le": 100,
            "ge": float("nan"),
            "gt": float("inf"),
            "huge": 10**400,
            "pattern": "^[a-z]+$",
            "expected": ["a", "b"],
        },
    }
    assert public_error(error) == {
        "loc": ("body", "title"),
        "msg": "Value error, nope",
        "type": "value_error",
        "ctx": {"le": 100, "pattern": "^[a-z]+$", "expected": ["a", "b"]},
    }


def test_error_without_a_plain_context_has_no_ctx():
    error = {"loc": ("body",), "msg": "m", "type": "t", "ctx": {"error": ValueError("x")}}
    assert public_error(error) == {"loc": ("body",), "msg": "m", "type": "t"}
