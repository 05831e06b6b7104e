"""Login and bearer tokens: every way a token can be missing, wrong or stale."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from config import settings
from schemas import Detail
from tests.conftest import DEFAULT_PASSWORD, auth_header, create_test_user, login_user

pytestmark = pytest.mark.anyio

SECRET = settings.jwt_secret


def make_token(claims: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def in_minutes(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# --- Login -----------------------------------------------------------------------------------


async def test_login_returns_bearer_token_for_the_user(client):
    user = await create_test_user(client)
    response = await client.post(
        "/api/users/token", data={"username": user["email"], "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user["id"])
    expected_exp = in_minutes(settings.access_token_expire_minutes).timestamp()
    assert abs(claims["exp"] - expected_exp) < 60


async def test_login_email_is_case_insensitive(client):
    await create_test_user(client, email="alice@example.com")
    assert await login_user(client, "ALICE@Example.com")


async def test_login_with_wrong_password_is_unauthorized(client):
    user = await create_test_user(client)
    response = await client.post(
        "/api/users/token", data={"username": user["email"], "password": "wrong password"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_with_unknown_email_gives_the_same_answer(client):
    response = await client.post(
        "/api/users/token", data={"username": "nobody@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.BAD_CREDENTIALS}


async def test_login_by_username_instead_of_email_fails(client):
    await create_test_user(client, "alice")
    response = await client.post(
        "/api/users/token", data={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401


async def test_login_with_json_instead_of_form_is_422(client):
    response = await client.post(
        "/api/users/token", json={"username": "a@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 422


async def test_login_without_password_is_422(client):
    response = await client.post("/api/users/token", data={"username": "a@example.com"})
    assert response.status_code == 422


# --- Tokens ----------------------------------------------------------------------------------


async def expect_invalid_token(client, token: str) -> None:
    response = await client.get("/api/users/me", headers=auth_header(token))
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.INVALID_TOKEN}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_valid_handmade_token_is_accepted(client):
    user = await create_test_user(client)
    token = make_token({"sub": str(user["id"]), "exp": in_minutes(5)})
    response = await client.get("/api/users/me", headers=auth_header(token))
    assert response.status_code == 200


async def test_garbage_token_is_rejected(client):
    await expect_invalid_token(client, "not.a.jwt")


async def test_expired_token_is_rejected(client):
    user = await create_test_user(client)
    await expect_invalid_token(client, make_token({"sub": str(user["id"]), "exp": in_minutes(-1)}))


async def test_token_signed_with_another_key_is_rejected(client):
    user = await create_test_user(client)
    token = make_token({"sub": str(user["id"]), "exp": in_minutes(5)}, key="another-key" * 4)
    await expect_invalid_token(client, token)


async def test_tampered_token_is_rejected(client):
    user = await create_test_user(client)
    other = await create_test_user(client, "bob")
    header, _, signature = make_token({"sub": str(user["id"]), "exp": in_minutes(5)}).split(".")
    forged_payload = make_token({"sub": str(other["id"]), "exp": in_minutes(5)}).split(".")[1]
    await expect_invalid_token(client, f"{header}.{forged_payload}.{signature}")


async def test_unsigned_token_is_rejected(client):
    user = await create_test_user(client)
    token = jwt.encode({"sub": str(user["id"]), "exp": in_minutes(5)}, "", algorithm="none")
    await expect_invalid_token(client, token)


async def test_token_with_other_hmac_algorithm_is_rejected(client):
    user = await create_test_user(client)
    token = make_token({"sub": str(user["id"]), "exp": in_minutes(5)}, algorithm="HS512")
    await expect_invalid_token(client, token)


async def test_token_without_exp_is_rejected(client):
    user = await create_test_user(client)
    await expect_invalid_token(client, make_token({"sub": str(user["id"])}))


async def test_token_without_sub_is_rejected(client):
    await expect_invalid_token(client, make_token({"exp": in_minutes(5)}))


@pytest.mark.parametrize("sub", ["abc", "", str(2**70), "-1", "1.5"])
async def test_token_with_unusable_sub_is_rejected(client, sub):
    await expect_invalid_token(client, make_token({"sub": sub, "exp": in_minutes(5)}))


@pytest.mark.parametrize(
    "sub", [" {id}", "{id} ", "0{id}", "+{id}", "{id}.0", "{arabic}", "{id}\n"]
)
async def test_a_sub_naming_the_user_in_a_non_canonical_form_is_rejected(client, sub):
    """`int()` reads each of these as the user's id; only the id as the token makes it counts."""
    user = await create_test_user(client)
    arabic = "".join(chr(0x0660 + int(digit)) for digit in str(user["id"]))
    claims = {"sub": sub.format(id=user["id"], arabic=arabic), "exp": in_minutes(5)}
    await expect_invalid_token(client, make_token(claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"ver": "0"},
        {"ver": 0.0},
        {"ver": False},
        {"exp": "{exp}"},
        {"exp": "{exp}.5"},
        {"exp": True},
    ],
)
async def test_ver_and_exp_must_be_integers(client, claims):
    user = await create_test_user(client)
    exp = int(in_minutes(5).timestamp())
    given = {k: v.format(exp=exp) if isinstance(v, str) else v for k, v in claims.items()}
    if given.get("exp") == f"{exp}.5":
        given["exp"] = exp + 0.5
    await expect_invalid_token(client, make_token({"sub": str(user["id"]), "exp": exp, **given}))


async def test_a_token_with_integer_claims_is_accepted(client):
    user = await create_test_user(client)
    claims = {"sub": str(user["id"]), "exp": int(in_minutes(5).timestamp()), "ver": 0}
    response = await client.get("/api/users/me", headers=auth_header(make_token(claims)))
    assert response.status_code == 200


async def test_token_of_unknown_user_is_rejected(client):
    await expect_invalid_token(client, make_token({"sub": "999999", "exp": in_minutes(5)}))


async def test_non_bearer_authorization_is_not_authenticated(client):
    response = await client.get("/api/users/me", headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}


async def test_empty_bearer_is_not_authenticated(client):
    response = await client.get("/api/users/me", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert response.json() == {"detail": Detail.NOT_AUTHENTICATED}
