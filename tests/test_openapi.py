"""The OpenAPI schema tells the truth about the statuses each route can answer."""

import pytest

from main import app

pytestmark = pytest.mark.anyio

RATE_LIMITED = {
    ("post", "/api/users"),
    ("post", "/api/users/token"),
    ("post", "/api/users/session"),  # the login's limits
    ("post", "/api/users/forgot-password"),
    ("post", "/api/users/reset-password"),
    ("patch", "/api/users/me/password"),
    ("post", "/api/users/me/verification-email"),
    ("patch", "/api/users/{user_id}"),  # an email change checks the password
    ("post", "/api/posts/preview"),
    ("post", "/api/posts/images"),
    ("put", "/api/posts/{post_id}"),
    ("patch", "/api/posts/{post_id}"),
    ("patch", "/api/users/{user_id}/picture"),
    ("post", "/api/posts"),
    ("post", "/api/posts/{post_id}/comments"),
}


def api_operations():
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/"):
            for method, operation in operations.items():
                yield method, path, operation


def test_every_api_operation_documents_database_down_and_validation_errors():
    for method, path, operation in api_operations():
        assert "503" in operation["responses"], (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in operation["responses"], (method, path)


def test_every_operation_with_a_body_documents_malformed_and_oversized_bodies():
    for method, path, operation in api_operations():
        if "requestBody" in operation:
            assert {"400", "413"} <= set(operation["responses"]), (method, path)


def test_rate_limited_operations_document_429_and_only_those():
    documented = {
        (method, path) for method, path, op in api_operations() if "429" in op["responses"]
    }
    assert documented == RATE_LIMITED


def test_error_responses_share_the_detail_body():
    for method, path, operation in api_operations():
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")) and code != "422":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)


async def test_schema_is_served(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["paths"].keys() >= {"/api/users", "/api/posts", "/health/ready"}
