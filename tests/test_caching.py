"""HTTP caching: ETags on the public GETs, 304 on a match, no-store on what the token decides."""

import pytest

import caching
from caching import Conditional, Remembered, entity_tag, requested_tags
from tests.conftest import create_test_post, create_user_and_login

pytestmark = pytest.mark.anyio


async def test_list_has_etag_and_304(client, alice):
    _, headers = alice
    await create_test_post(client, headers)
    first = await client.get("/api/posts")
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/api/posts", headers={"If-None-Match": tag})
    assert again.status_code == 304, again.text
    assert again.content == b""
    assert again.headers["etag"] == tag
