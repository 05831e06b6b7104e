"""Upload size: a body over the limit is refused while it arrives, never read to its end.

The bodies are generators, so a "2 GB" upload costs the test only the bytes the app asks for.
"""

import pytest

from body_limit import MULTIPART_ALLOWANCE
from config import settings
from tests.conftest import TEST_IMAGE, upload_picture

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024
TWO_GB = 2 * 1024**3
BOUNDARY = "hardening-boundary"


class Body:
    """A multipart body of `size` file bytes, produced chunk by chunk; counts what was pulled."""

    def __init__(self, size: int):
        self.size = size
        self.sent = 0

    async def __aiter__(self):
        head = (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="huge.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        yield head
        left = self.size
        while left > 0:
            chunk = b"\xff" * min(CHUNK, left)
            left -= len(chunk)
            self.sent += len(chunk)
            yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    def length(self) -> int:
        return self.size + 200  # close enough for a declared length far over the limit


def multipart_headers(auth: dict, **extra: str) -> dict:
    return {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **extra}


async def test_upload_declaring_2gb_is_refused_before_reading_the_body(client, alice, s3):
    user, headers = alice
    body = Body(TWO_GB)
    response = await client.patch(
        f"/api/users/{user['id']}/picture",
        content=body,
        headers=multipart_headers(headers, **{"Content-Length": str(body.length())}),
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 5MB"}
    assert body.sent == 0
    assert "Contents" not in s3.list_objects_v2(Bucket="test-bucket")


async def test_chunked_upload_without_length_stops_being_read_past_the_limit(client, alice, s3):
    user, headers = alice
    body = Body(TWO_GB)
    response = await client.patch(
        f"/api/users/{user['id']}/picture", content=body, headers=multipart_headers(headers)
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 5MB"}
    assert body.sent <= settings.max_upload_size_bytes + MULTIPART_ALLOWANCE + CHUNK
    assert "Contents" not in s3.list_objects_v2(Bucket="test-bucket")


async def test_limit_and_its_message_follow_the_setting(client, alice, monkeypatch):
    monkeypatch.setattr(settings, "max_upload_size_bytes", 2 * 1024 * 1024)
    user, headers = alice
    body = Body(10 * 1024 * 1024)
    response = await client.patch(
        f"/api/users/{user['id']}/picture", content=body, headers=multipart_headers(headers)
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 2MB"}
    assert body.sent < 3 * 1024 * 1024


async def test_file_just_over_the_limit_inside_the_multipart_allowance_is_refused(client, alice):
    user, headers = alice
    data = b"\xff\xd8" + b"\0" * settings.max_upload_size_bytes  # limit + 2 bytes
    response = await client.patch(
        f"/api/users/{user['id']}/picture",
        files={"file": ("me.jpg", data, "image/jpeg")},
        headers=headers,
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 5MB"}


async def test_a_picture_of_exactly_the_limit_is_accepted(client, alice, monkeypatch):
    picture = TEST_IMAGE.read_bytes()
    monkeypatch.setattr(settings, "max_upload_size_bytes", len(picture))
    user, headers = alice
    response = await upload_picture(client, user, headers, data=picture)
    assert response.status_code == 200, response.text
    assert response.json()["image_file"]


async def test_oversized_json_body_is_refused_too(client, alice):
    _user, headers = alice
    sent = 0

    async def huge_json():
        nonlocal sent
        yield b'{"title": "t", "content": "'
        while sent < TWO_GB:
            sent += CHUNK
            yield b"a" * CHUNK

    response = await client.post(
        "/api/posts", content=huge_json(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert sent <= settings.max_upload_size_bytes + MULTIPART_ALLOWANCE + CHUNK


async def test_refused_upload_still_carries_the_security_headers(client, alice):
    user, headers = alice
    response = await client.patch(
        f"/api/users/{user['id']}/picture",
        content=Body(TWO_GB),
        headers=multipart_headers(headers, **{"Content-Length": str(TWO_GB)}),
    )
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_body_under_the_limit_reaches_the_route(client, alice):
    user, headers = alice
    body = Body(1024)  # not an image: the route, not the size guard, answers
    response = await client.patch(
        f"/api/users/{user['id']}/picture", content=body, headers=multipart_headers(headers)
    )
    assert response.status_code == 400
    assert body.sent == 1024
