"""A token's `sub` at the edges of the 32-bit id range is refused cleanly, never a 500."""

import pytest

from tests.test_auth import expect_invalid_token, in_minutes, make_token

pytestmark = pytest.mark.anyio

EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1]


@pytest.mark.parametrize("user_id", EDGES)
async def test_a_token_for_an_id_at_the_edge_of_the_range_is_refused(client, user_id):
    token = make_token({"sub": str(user_id), "exp": in_minutes(5)})
    await expect_invalid_token(client, token)
