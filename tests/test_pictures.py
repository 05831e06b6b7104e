"""Profile pictures: upload to S3, replace, delete; and the local-disk backend."""

import threading
from io import BytesIO

import boto3
import pytest
from PIL import Image

import storage
from config import settings
from schemas import Detail
from tests.conftest import TEST_BUCKET, bucket_keys, image_bytes, upload_picture

pytestmark = pytest.mark.anyio

S3_URL = f"https://{TEST_BUCKET}.s3.us-east-1.amazonaws.com/profile_pics/"


def stored_image(s3, image_file: str) -> Image.Image:
    body = s3.get_object(Bucket=TEST_BUCKET, Key=f"profile_pics/{image_file}")["Body"].read()
    return Image.open(BytesIO(body))


# --- Upload ----------------------------------------------------------------------------------


async def test_upload_picture_stores_a_300px_jpeg_in_s3(client, alice, s3):
    user, headers = alice
    response = await upload_picture(client, user, headers)
    assert response.status_code == 200
    body = response.json()
    image_file = body["image_file"]
    assert len(image_file) == 36 and image_file.endswith(".jpg")
    int(image_file.removesuffix(".jpg"), 16)  # a uuid hex
    assert body["image_path"] == S3_URL + image_file
    assert body["email"] == user["email"]
    assert bucket_keys(s3) == [f"profile_pics/{image_file}"]
    picture = stored_image(s3, image_file)
    assert (picture.format, picture.size, picture.mode) == ("JPEG", (300, 300), "RGB")


async def test_upload_crops_the_centre_square(client, alice, s3):
    user, headers = alice
    wide = Image.new("RGB", (900, 300), (255, 0, 0))
    wide.paste((0, 0, 255), (300, 0, 600, 300))  # a blue middle third between red sides
    out = BytesIO()
    wide.save(out, "PNG")
    body = (
        await upload_picture(client, user, headers, out.getvalue(), "wide.png", "image/png")
    ).json()
    r, g, b = stored_image(s3, body["image_file"]).convert("RGB").getpixel((150, 150))  # type: ignore[misc]  # an RGB pixel is a 3-tuple
    assert b > 200 and r < 50


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "JPEG"])
async def test_upload_accepts_each_supported_format(client, alice, s3, fmt):
    user, headers = alice
    response = await upload_picture(
        client, user, headers, image_bytes(fmt=fmt), f"pic.{fmt.lower()}"
    )
    assert response.status_code == 200
    assert stored_image(s3, response.json()["image_file"]).format == "JPEG"


async def test_picture_shows_on_the_public_profile_and_posts(client, alice, s3):
    user, headers = alice
    image_file = (await upload_picture(client, user, headers)).json()["image_file"]
    profile = (await client.get(f"/api/users/{user['id']}")).json()
    assert (profile["image_file"], profile["image_path"]) == (image_file, S3_URL + image_file)
    await client.post("/api/posts", json={"title": "t", "content": "c"}, headers=headers)
    post = (await client.get("/api/posts")).json()["posts"][0]
    assert post["author"]["image_path"] == S3_URL + image_file


async def test_new_upload_replaces_and_deletes_the_old_picture(client, alice, s3):
    user, headers = alice
    first = (await upload_picture(client, user, headers)).json()["image_file"]
    second = (await upload_picture(client, user, headers, image_bytes())).json()["image_file"]
    assert first != second
    assert bucket_keys(s3) == [f"profile_pics/{second}"]


async def test_upload_for_other_user_is_forbidden(client, alice, bob, s3):
    _, alice_headers = alice
    bob_user, _ = bob
    response = await upload_picture(client, bob_user, alice_headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.UPDATE_PICTURE_FORBIDDEN}
    assert bucket_keys(s3) == []


async def test_upload_without_token_is_unauthorized(client, alice):
    user, _ = alice
    response = await upload_picture(client, user, {})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("data", "name", "mime"),
    [
        (b"definitely not an image", "me.jpg", "image/jpeg"),
        (b"", "empty.png", "image/png"),
        (b"%PDF-1.4 fake", "doc.pdf", "application/pdf"),
    ],
)
async def test_upload_of_non_image_is_rejected(client, alice, s3, data, name, mime):
    user, headers = alice
    response = await upload_picture(client, user, headers, data, name, mime)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_IMAGE}
    assert bucket_keys(s3) == []


async def test_upload_of_unsupported_image_format_is_rejected(client, alice, s3):
    user, headers = alice
    response = await upload_picture(
        client, user, headers, image_bytes(fmt="BMP"), "me.bmp", "image/bmp"
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_IMAGE}


async def test_upload_over_the_size_limit_is_rejected(client, alice, s3, monkeypatch):
    user, headers = alice
    data = image_bytes()
    monkeypatch.setattr(settings, "max_upload_size_bytes", len(data) - 1)
    response = await upload_picture(client, user, headers, data, "me.png", "image/png")
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 0MB"}
    assert bucket_keys(s3) == []


async def test_upload_over_the_default_limit_names_5mb(client, alice, s3):
    user, headers = alice
    too_big = b"\xff\xd8" + b"\0" * settings.max_upload_size_bytes
    response = await upload_picture(client, user, headers, too_big)
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 5MB"}


async def test_upload_without_file_is_422(client, alice):
    user, headers = alice
    response = await client.patch(f"/api/users/{user['id']}/picture", headers=headers)
    assert response.status_code == 422


# --- Delete ----------------------------------------------------------------------------------


async def test_delete_picture_removes_object_and_restores_default(client, alice, s3):
    user, headers = alice
    await upload_picture(client, user, headers)
    response = await client.delete(f"/api/users/{user['id']}/picture", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["image_file"], body["image_path"]) == (None, storage.DEFAULT_PICTURE_URL)
    assert bucket_keys(s3) == []


async def test_delete_picture_when_there_is_none_is_rejected(client, alice):
    user, headers = alice
    response = await client.delete(f"/api/users/{user['id']}/picture", headers=headers)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.NO_PICTURE}


async def test_delete_other_users_picture_is_forbidden(client, alice, bob, s3):
    alice_user, alice_headers = alice
    _, bob_headers = bob
    await upload_picture(client, alice_user, alice_headers)
    response = await client.delete(f"/api/users/{alice_user['id']}/picture", headers=bob_headers)
    assert response.status_code == 403
    assert response.json() == {"detail": Detail.DELETE_PICTURE_FORBIDDEN}
    assert len(bucket_keys(s3)) == 1


async def test_deleting_the_user_deletes_the_picture(client, alice, s3):
    user, headers = alice
    await upload_picture(client, user, headers)
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status_code == 204
    assert bucket_keys(s3) == []


# --- Backends --------------------------------------------------------------------------------


@pytest.fixture
def local_storage(monkeypatch):
    """Pictures on local disk (MEDIA_DIR), as when S3_BUCKET_NAME is unset."""
    monkeypatch.setattr(settings, "s3_bucket_name", None)
    storage.get_storage.cache_clear()
    backend = storage.get_storage()
    assert isinstance(backend, storage.LocalStorage)
    yield backend
    storage.get_storage.cache_clear()


async def test_local_storage_upload_is_served_under_media(client, alice, local_storage):
    user, headers = alice
    body = (await upload_picture(client, user, headers)).json()
    assert body["image_path"] == f"/media/profile_pics/{body['image_file']}"
    assert (settings.media_dir / "profile_pics" / body["image_file"]).is_file()
    served = await client.get(body["image_path"])
    assert served.status_code == 200
    assert Image.open(BytesIO(served.content)).size == (300, 300)


async def test_local_storage_replace_and_delete_remove_files(client, alice, local_storage):
    user, headers = alice
    first = (await upload_picture(client, user, headers)).json()["image_file"]
    second = (await upload_picture(client, user, headers, image_bytes())).json()["image_file"]
    folder = settings.media_dir / "profile_pics"
    assert not (folder / first).exists()
    await client.delete(f"/api/users/{user['id']}/picture", headers=headers)
    assert not (folder / second).exists()


async def test_local_storage_refuses_keys_outside_its_folder(tmp_path):
    backend = storage.LocalStorage(tmp_path / "media")
    with pytest.raises(storage.StorageError):
        await backend.save("../escape.jpg", b"x", "image/jpeg")
    assert not (tmp_path / "escape.jpg").exists()


def test_s3_url_with_custom_endpoint():
    backend = storage.S3Storage("pics", region="auto", endpoint_url="http://127.0.0.1:9000/")
    assert backend.url("profile_pics/a.jpg") == "http://127.0.0.1:9000/pics/profile_pics/a.jpg"


def test_s3_url_on_aws():
    backend = storage.S3Storage("pics", region="eu-west-3")
    assert backend.url("profile_pics/a.jpg") == (
        "https://pics.s3.eu-west-3.amazonaws.com/profile_pics/a.jpg"
    )


async def test_s3_client_is_built_off_the_event_loop(aws, monkeypatch):
    """Building a boto3 client loads service models from disk: never on the event loop."""
    built_in = []
    make_client = boto3.client

    def recording_client(*args, **kwargs):
        built_in.append(threading.current_thread())
        return make_client(*args, **kwargs)

    monkeypatch.setattr(boto3, "client", recording_client)
    backend = storage.S3Storage(TEST_BUCKET, region="us-east-1")
    await backend.save("profile_pics/x.jpg", b"x", "image/jpeg")
    assert len(built_in) == 1
    assert built_in[0] is not threading.main_thread()
    await backend.delete("profile_pics/x.jpg")
