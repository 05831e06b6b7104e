"""Usernames that impersonate: normalised, refused when they hide characters, and unique by
look (confusable skeleton), not only by spelling."""

import pytest
from sqlalchemy import select

import models
from schemas import Detail
from tests.conftest import DEFAULT_PASSWORD, create_test_user
from usernames import normalise_username, username_skeleton

pytestmark = pytest.mark.anyio


async def register(client, username: str, email: str = "new@example.com"):
    account = {"username": username, "email": email, "password": DEFAULT_PASSWORD}
    return await client.post("/api/users", json=account)


@pytest.mark.parametrize(
    ("existing", "look_alike"),
    [
        ("alice", "\u0430lice"),  # Cyrillic а
        ("alice", "\uff41\uff4c\uff49\uff43\uff45"),  # fullwidth
        ("alice", "\u0410LICE"),  # Cyrillic А, upper case
        ("alice", "al\u0456ce"),  # Ukrainian і
        ("b\u00f3b", "bo\u0301b"),  # composed and decomposed ó
        ("bo\u0301b", "b\u00f3b"),
        ("paypal", "paypa1"),
        ("modern", "rnodern"),
    ],
)
async def test_a_username_that_looks_like_a_taken_one_is_refused(client, existing, look_alike):
    await create_test_user(client, existing, email="first@example.com")
    response = await register(client, look_alike)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.USERNAME_EXISTS}


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("al\u200bice", "format characters (U+200B)"),  # zero-width space
        ("\u200b", "format characters (U+200B)"),
        ("ali\u00adce", "format characters (U+00AD)"),  # soft hyphen
        ("al\u200dice", "format characters (U+200D)"),  # zero-width joiner
        ("\u202eecila", "bidirectional control characters (U+202E)"),
        ("\u2066alice\u2069", "bidirectional control characters (U+2066)"),
        ("ali\u200fce", "bidirectional control characters (U+200F)"),
        ("ali\u0007ce", "control characters (U+0007)"),
        ("ali\nce", "control characters (U+000A)"),
        ("\u3164", "must contain a visible character"),  # Hangul filler
        ("\u3000\u3000", "String should have at least 1 character"),  # ideographic spaces
        ("\ufdfa" * 3, "at most 50 characters once normalised"),  # 3 characters, 54 in NFKC
    ],
)
async def test_a_username_hiding_characters_is_a_422_saying_why(client, username, reason):
    response = await register(client, username)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "username"]
    assert reason in error["msg"]


@pytest.mark.parametrize(
    ("submitted", "stored"),
    [
        ("\uff42\uff4f\uff42", "bob"),  # fullwidth
        ("bo\u0301b", "b\u00f3b"),  # decomposed to composed
        ("  \u2163 ", "IV"),  # Roman numeral four
        ("Zo\u00eb \u65e5\u672c \U0001f680", "Zo\u00eb \u65e5\u672c \U0001f680"),
    ],
)
async def test_usernames_are_stored_in_nfkc(client, db_session, submitted, stored):
    response = await register(client, submitted)
    assert response.status_code == 201
    assert response.json()["username"] == stored
    user = await db_session.get(models.User, response.json()["id"])
    assert user.username_skeleton == username_skeleton(stored)


async def test_renaming_to_a_look_alike_of_another_user_is_refused(client, alice, bob):
    user, headers = alice
    url = f"/api/users/{user['id']}"
    response = await client.patch(url, json={"username": "b\u043eb"}, headers=headers)  # о
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.USERNAME_EXISTS}


async def test_renaming_moves_the_skeleton_with_the_name(client, db_session, alice):
    user, headers = alice
    url = f"/api/users/{user['id']}"
    response = await client.patch(url, json={"username": "alicia"}, headers=headers)
    assert response.status_code == 200
    stored = await db_session.scalar(
        select(models.User.username_skeleton).where(models.User.id == user["id"])
    )
    assert stored == username_skeleton("alicia") == "allcla"  # i and l are one letter
    # The old look is free again, the new one is taken.
    assert (await register(client, "\u0430lice", "other@example.com")).status_code == 201
    taken = await register(client, "\u0430licia", "third@example.com")
    assert taken.json() == {"detail": Detail.USERNAME_EXISTS}


async def test_a_user_may_change_the_case_of_their_own_name(client, alice):
    user, headers = alice
    url = f"/api/users/{user['id']}"
    response = await client.patch(url, json={"username": "ALICE"}, headers=headers)
    assert response.status_code == 200


def test_normalising_keeps_ordinary_names_as_they_are():
    assert normalise_username("  Zoë-42_ok ") == "Zoë-42_ok"
    assert username_skeleton("paypa1") == username_skeleton("PAYPAL")
    assert username_skeleton("alice") != username_skeleton("alicia")


def test_a_name_of_exactly_50_characters_is_kept_and_51_refused():
    assert normalise_username("a" * 50) == "a" * 50
    with pytest.raises(ValueError, match=r"^must be at most 50 characters once normalised"):
        normalise_username("a" * 51)


def test_a_name_that_shows_nothing_is_refused_in_a_plain_sentence():
    with pytest.raises(ValueError) as refused:
        normalise_username("\u3164")  # Hangul filler
    assert str(refused.value) == "must contain a visible character"


@pytest.mark.parametrize(
    ("name", "look_alike"),
    [("alice", "aIice"), ("alice", "al1ce"), ("lan", "Ian"), ("bob", "b0b"), ("BOB", "B0B")],
)
def test_letters_a_sans_serif_font_draws_alike_are_one_letter(name, look_alike):
    assert username_skeleton(name) == username_skeleton(look_alike)


async def test_a_capital_i_for_an_l_does_not_register_beside_the_original(client, alice):
    response = await client.post(
        "/api/users",
        json={"username": "aIice", "email": "impostor@example.com", "password": "a passphrase!"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Username already exists"}
