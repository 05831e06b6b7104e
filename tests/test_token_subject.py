"""A token's `sub` at the edges of the 32-bit id range is refused cleanly, never a 500."""

import pytest

from tests.conftest import auth_header, create_test_post
from tests.test_auth import expect_invalid_token, in_minutes, make_token

pytestmark = pytest.mark.anyio

EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1]


@pytest.mark.parametrize("user_id", EDGES)
async def test_a_token_for_an_id_at_the_edge_of_the_range_is_refused(client, user_id):
    token = make_token({"sub": str(user_id), "exp": in_minutes(5)})
    await expect_invalid_token(client, token)


@pytest.mark.parametrize("user_id", EDGES)
async def test_a_public_read_with_such_a_token_is_anonymous(client, alice, user_id):
    """A public route reads a bad token as no one: the post is served as to anyone."""
    _, headers = alice
    post = await create_test_post(client, headers)
    token = make_token({"sub": str(user_id), "exp": in_minutes(5)})
    response = await client.get(f"/api/posts/{post['id']}", headers=auth_header(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == post["id"]
