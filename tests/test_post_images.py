"""Pictures in posts: POST /api/posts/images stores a clean WebP (S3 or local disk), within a
rate limit and a quota per account; the sanitiser keeps those pictures and a post page names
its first one as og:image (SPEC.md, Part 3, "Writing, round two")."""

import re
import threading
from html.parser import HTMLParser
from io import BytesIO

import anyio
import pytest
from PIL import Image, ImageCms
from sqlalchemy import func, select, text

import images
import models
import storage
from config import settings
from content import render_markdown
from schemas import Detail
from storage import StorageError
from tests.conftest import (
    TEST_BUCKET,
    TEST_IMAGE,
    app_on_own_engine,
    auth_header,
    bucket_keys,
    image_bytes,
)
from tests.test_images import GPS_IFD, encode, jpeg_with_gps_and_orientation, png_claiming

pytestmark = pytest.mark.anyio

S3_PREFIX = f"https://{TEST_BUCKET}.s3.us-east-1.amazonaws.com/post_images/"
KEY = re.compile(r"post_images/[0-9a-f]{32}\.webp")
ORIGIN = settings.frontend_url.rstrip("/")
RED, BLUE = (255, 0, 0), (0, 0, 255)


async def upload(client, headers, data: bytes | None = None, name="photo.jpg", mime="image/jpeg"):
    """POST a picture for posts; by default the 1-pixel tests/test_image.jpeg."""
    data = TEST_IMAGE.read_bytes() if data is None else data
    return await client.post(
        "/api/posts/images", files={"file": (name, data, mime)}, headers=headers
    )


def key_of(url: str) -> str:
    """The bucket key an upload's S3 URL names."""
    assert url.startswith(S3_PREFIX), url
    return "post_images/" + url.removeprefix(S3_PREFIX)


def stored(s3, url: str) -> tuple[Image.Image, dict, bytes]:
    """The object an upload's URL names: decoded, its S3 metadata, its bytes."""
    obj = s3.get_object(Bucket=TEST_BUCKET, Key=key_of(url))
    raw = obj["Body"].read()
    img = Image.open(BytesIO(raw))
    img.load()
    return img, obj, raw


def assert_no_metadata(img: Image.Image) -> None:
    assert img.format == "WEBP"
    assert not img.getexif()
    assert not {"exif", "xmp", "icc_profile", "comment"} & set(img.info)


async def rows_of(db_session, user_id: int) -> list[tuple[str, int, int, int]]:
    PostImage = models.PostImage
    query = select(PostImage.key, PostImage.size_bytes, PostImage.width, PostImage.height)
    return [
        tuple(row) for row in await db_session.execute(query.where(PostImage.user_id == user_id))
    ]


@pytest.fixture
def local_storage(monkeypatch):
    """Pictures on local disk (MEDIA_DIR), as when S3_BUCKET_NAME is unset."""
    monkeypatch.setattr(settings, "s3_bucket_name", None)
    storage.get_storage.cache_clear()
    backend = storage.get_storage()
    assert isinstance(backend, storage.LocalStorage)
    yield backend
    storage.get_storage.cache_clear()


# --- Upload to S3 ----------------------------------------------------------------------------


async def test_a_real_picture_is_stored_in_s3_as_webp_and_counted(client, alice, s3, db_session):
    response = await upload(client, alice[1])
    assert response.status_code == 201
    body = response.json()
    assert body == {"url": body["url"], "width": 1, "height": 1}
    key = key_of(body["url"])
    assert KEY.fullmatch(key)
    assert bucket_keys(s3) == [key]
    img, obj, _ = stored(s3, body["url"])
    assert obj["ContentType"] == "image/webp"
    assert img.size == (1, 1)
    assert_no_metadata(img)
    assert await rows_of(db_session, alice[0]["id"]) == [(key, obj["ContentLength"], 1, 1)]


async def test_each_upload_gets_a_new_key(client, alice, s3):
    first = (await upload(client, alice[1])).json()["url"]
    second = (await upload(client, alice[1])).json()["url"]
    assert first != second
    assert len(bucket_keys(s3)) == 2


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "JPEG"])
async def test_each_accepted_format_becomes_webp(client, alice, s3, fmt):
    response = await upload(client, alice[1], image_bytes((80, 40), fmt=fmt), f"a.{fmt.lower()}")
    assert response.status_code == 201
    assert (response.json()["width"], response.json()["height"]) == (80, 40)
    assert stored(s3, response.json()["url"])[0].format == "WEBP"


async def test_a_wide_picture_is_scaled_down_to_1600_pixels(client, alice, s3):
    wide = Image.new("RGB", (4000, 1000), RED)
    wide.paste(BLUE, (2000, 0, 4000, 1000))
    body = (await upload(client, alice[1], encode(wide, "JPEG"))).json()
    assert (body["width"], body["height"]) == (1600, 400)
    img = stored(s3, body["url"])[0].convert("RGB")
    assert img.size == (1600, 400)
    assert img.getpixel((100, 200))[0] > 200 and img.getpixel((1500, 200))[2] > 200  # type: ignore[index]


async def test_a_picture_narrower_than_1600_pixels_is_never_upscaled(client, alice, s3):
    body = (await upload(client, alice[1], image_bytes((1599, 300), fmt="PNG"), "p.png")).json()
    assert (body["width"], body["height"]) == (1599, 300)
    assert stored(s3, body["url"])[0].size == (1599, 300)


async def test_a_huge_camera_picture_is_reduced_to_1600_pixels(client, alice, s3):
    photo = encode(Image.new("RGB", (6000, 4000), (90, 140, 60)), "JPEG", quality=70)
    body = (await upload(client, alice[1], photo)).json()
    assert (body["width"], body["height"]) == (1600, 1067)
    assert stored(s3, body["url"])[0].size == (1600, 1067)


async def test_orientation_is_applied_and_gps_exif_and_comment_are_dropped(client, alice, s3):
    upload_data = jpeg_with_gps_and_orientation()  # 400x200, to be turned clockwise
    assert Image.open(BytesIO(upload_data)).getexif().get_ifd(GPS_IFD)
    body = (await upload(client, alice[1], upload_data)).json()
    assert (body["width"], body["height"]) == (200, 400)
    img, _, raw = stored(s3, body["url"])
    assert_no_metadata(img)
    assert b"Spy Camera" not in raw and b"48.8581" not in raw
    rgb = img.convert("RGB")
    # The red left half is now on top, the blue right half at the bottom.
    assert rgb.getpixel((100, 50))[0] > 200 and rgb.getpixel((100, 350))[2] > 200  # type: ignore[index]


async def test_an_icc_profile_and_xmp_are_dropped(client, alice, s3):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">Secret place</x:xmpmeta>'
    data = encode(Image.new("RGB", (50, 50), RED), "JPEG", icc_profile=profile, xmp=xmp)
    assert {"icc_profile", "xmp"} <= set(Image.open(BytesIO(data)).info)
    body = (await upload(client, alice[1], data)).json()
    assert_no_metadata(stored(s3, body["url"])[0])


async def test_transparency_is_kept(client, alice, s3):
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    clear.paste((255, 0, 0, 255), (0, 0, 20, 40))
    body = (await upload(client, alice[1], encode(clear, "PNG"), "logo.png", "image/png")).json()
    img = stored(s3, body["url"])[0]
    assert img.mode == "RGBA"
    assert img.getpixel((30, 20))[3] == 0 and img.getpixel((10, 20))[3] == 255  # type: ignore[index]


# --- Refusals --------------------------------------------------------------------------------


async def test_upload_without_login_is_401_and_stores_nothing(client, s3):
    response = await upload(client, {})
    assert response.status_code == 401
    assert bucket_keys(s3) == []


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"not an image at all", "x.jpg"),
        (TEST_IMAGE.read_bytes()[:200], "truncated.jpg"),
        (png_claiming(100_000, 100_000), "bomb.png"),  # a decompression bomb's header
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.svg"),
    ],
)
async def test_a_hostile_or_broken_file_is_400_and_stores_nothing(
    client, alice, s3, db_session, data, name
):
    response = await upload(client, alice[1], data, name)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_IMAGE}
    assert bucket_keys(s3) == []
    assert await rows_of(db_session, alice[0]["id"]) == []


def test_an_image_too_tall_for_webp_is_refused():
    with pytest.raises(images.InvalidImage, match="too tall"):
        images.make_post_image(encode(Image.new("L", (100, 16_400)), "PNG"))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_25_megapixels_is_refused_before_decoding():
    with pytest.raises(images.InvalidImage, match="too large"):
        images.make_post_image(png_claiming(5001, 5000))


def test_an_image_of_25_megapixels_is_accepted_and_scaled_down():
    picture = images.make_post_image(encode(Image.new("L", (5000, 5000), 128), "PNG"))
    assert (picture.width, picture.height) == (1600, 1600)


async def test_an_upload_over_the_size_limit_is_413(client, alice, s3, monkeypatch):
    monkeypatch.setattr(settings, "max_upload_size_bytes", 1000)
    response = await upload(client, alice[1], b"\xff" * 1001)
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 0MB"}
    assert bucket_keys(s3) == []


async def test_a_storage_failure_is_503_and_counts_nothing(
    client, alice, s3, db_session, monkeypatch
):
    async def broken_save(self, key, data, content_type):
        raise StorageError("S3 is down")

    monkeypatch.setattr(storage.S3Storage, "save", broken_save)
    response = await upload(client, alice[1])
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.UPLOAD_FAILED}
    assert await rows_of(db_session, alice[0]["id"]) == []


async def test_a_full_image_queue_is_503_at_once(client, alice, s3, monkeypatch):
    slots = anyio.CapacityLimiter(1)
    monkeypatch.setattr(images, "_processing_limiter", slots)
    monkeypatch.setattr(settings, "image_max_waiting", 0)
    holder = object()
    await slots.acquire_on_behalf_of(holder)  # the only slot is processing another picture
    try:
        response = await upload(client, alice[1])
    finally:
        slots.release_on_behalf_of(holder)
    assert response.status_code == 503
    assert response.json() == {"detail": Detail.IMAGES_BUSY}
    assert int(response.headers["retry-after"]) > 0
    assert bucket_keys(s3) == []
    assert (await upload(client, alice[1])).status_code == 201


async def test_pictures_are_processed_in_a_worker_thread_in_the_shared_slots(
    client, alice, s3, monkeypatch
):
    seen = []
    make = images.make_post_image

    def recording(data):
        seen.append((threading.current_thread(), images._processing_limiter.borrowed_tokens))
        return make(data)

    monkeypatch.setattr(images, "make_post_image", recording)
    assert (await upload(client, alice[1])).status_code == 201
    ((thread, borrowed),) = seen
    assert thread is not threading.main_thread()
    assert borrowed == 1  # one of the slots profile pictures use


# --- Rate limit and quota --------------------------------------------------------------------


async def test_uploads_are_limited_per_account(client, alice, bob, s3, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)
    monkeypatch.setattr(settings, "rate_limit_post_image", "2/hour")
    for _ in range(2):
        assert (await upload(client, alice[1])).status_code == 201
    refused = await upload(client, alice[1])
    assert refused.status_code == 429
    assert refused.json() == {"detail": Detail.RATE_LIMITED}
    assert int(refused.headers["retry-after"]) > 0
    assert (await upload(client, bob[1])).status_code == 201  # another account's own count
    assert len(bucket_keys(s3)) == 3


async def test_an_upload_past_the_quota_is_413_and_leaves_nothing_behind(
    client, alice, bob, s3, db_session, monkeypatch
):
    first = (await upload(client, alice[1])).json()
    ((key, size, _, _),) = await rows_of(db_session, alice[0]["id"])
    monkeypatch.setattr(settings, "post_image_quota_bytes", size + size // 2)

    refused = await upload(client, alice[1])
    assert refused.status_code == 413
    assert refused.json() == {"detail": Detail.IMAGE_QUOTA_EXCEEDED}
    assert bucket_keys(s3) == [key] and first["url"].endswith(key)  # the stored copy removed
    assert len(await rows_of(db_session, alice[0]["id"])) == 1
    assert (await upload(client, bob[1])).status_code == 201  # a quota per account


async def test_a_full_quota_is_refused_before_any_decoding(client, alice, s3, monkeypatch):
    decoded: list[bytes] = []
    monkeypatch.setattr(images, "make_post_image", decoded.append)
    monkeypatch.setattr(settings, "post_image_quota_bytes", 0)
    response = await upload(client, alice[1])
    assert response.status_code == 413
    assert response.json() == {"detail": Detail.IMAGE_QUOTA_EXCEEDED}
    assert decoded == []


async def test_an_upload_waits_for_the_accounts_lock_so_uploads_cannot_pass_the_quota_together(
    engine, s3, monkeypatch
):
    """Another upload of the account holds its row (here the test, in an open transaction) and
    fills the quota: this upload waits for it, then counts what it wrote, and is refused."""
    size = len(images.make_post_image(TEST_IMAGE.read_bytes()).data)
    monkeypatch.setattr(settings, "post_image_quota_bytes", size + size // 2)
    async with app_on_own_engine("imagelock", pool_size=3) as (client, _, _):
        account = {"username": "imagelock", "email": "lock@example.com", "password": "pw lock 123"}
        user = (await client.post("/api/users", json=account)).json()
        token = await client.post(
            "/api/users/token", data={"username": account["email"], "password": account["password"]}
        )
        headers = auth_header(token.json()["access_token"])
        results = []

        async def upload_and_keep() -> None:
            results.append(await upload(client, headers))

        async with engine.connect() as other:
            await other.begin()
            await other.execute(
                text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user["id"]}
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(upload_and_keep)
                with anyio.fail_after(20):  # a guard: the upload must come to wait for the row
                    while not results and not await other.scalar(WAITING_FOR_A_LOCK):
                        await anyio.wait_all_tasks_blocked()
                row = {"user_id": user["id"], "key": "post_images/other.webp", "size": size}
                await other.execute(
                    text(
                        "INSERT INTO post_images (user_id, key, size_bytes, width, height)"
                        " VALUES (:user_id, :key, :size, 1, 1)"
                    ),
                    row,
                )
                await other.commit()
        (response,) = results
        assert response.status_code == 413
        assert response.json() == {"detail": Detail.IMAGE_QUOTA_EXCEEDED}
        assert bucket_keys(s3) == []  # the stored copy removed
        async with engine.connect() as check:
            count = select(func.count()).where(models.PostImage.user_id == user["id"])
            assert await check.scalar(count) == 1


WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database() AND pid <> pg_backend_pid()"
)


# --- Local disk ------------------------------------------------------------------------------


async def test_on_local_disk_the_picture_is_served_under_media(client, alice, local_storage):
    body = (await upload(client, alice[1])).json()
    assert re.fullmatch(r"/media/post_images/[0-9a-f]{32}\.webp", body["url"])
    assert (settings.media_dir / body["url"].removeprefix("/media/")).is_file()
    served = await client.get(body["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert Image.open(BytesIO(served.content)).size == (1, 1)


async def test_on_local_disk_a_refused_upload_leaves_no_file(
    client, alice, local_storage, monkeypatch
):
    folder = settings.media_dir / "post_images"
    before = set(folder.iterdir()) if folder.exists() else set()
    monkeypatch.setattr(settings, "post_image_quota_bytes", 1)  # less than any picture
    response = await upload(client, alice[1])
    assert response.status_code == 413
    assert response.json() == {"detail": Detail.IMAGE_QUOTA_EXCEEDED}
    assert set(folder.iterdir()) == before  # stored, then removed


# --- In posts --------------------------------------------------------------------------------


class OpenGraph(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.images: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "meta" and named.get("property") == "og:image":
            self.images.append(named.get("content"))


async def write(client, headers, content: str) -> dict:
    response = await client.post(
        "/api/posts", json={"title": "Pictured", "content": content}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_local_picture_stays_in_the_post_and_is_its_og_image(client, alice, local_storage):
    url = (await upload(client, alice[1])).json()["url"]
    post = await write(
        client, alice[1], f"Look:\n\n![a red dot]({url})\n\n![second](https://example.com/b.png)"
    )
    assert f'<img src="{url}" alt="a red dot"' in post["content_html"]
    page = (await client.get(post["url"])).text
    assert OpenGraph(page).images == [f"{ORIGIN}{url}"]


async def test_an_s3_picture_stays_in_the_post_and_is_its_og_image(client, alice, s3):
    url = (await upload(client, alice[1])).json()["url"]
    post = await write(
        client, alice[1], f"![dot]({url}) and ![other](https://example.com/a.png?x=1&y=2)"
    )
    assert f'<img src="{url}" alt="dot"' in post["content_html"]
    assert OpenGraph((await client.get(post["url"])).text).images == [url]


async def test_the_og_image_is_the_first_image_as_written(client, alice):
    post = await write(
        client, alice[1], "![a](https://example.com/a.png?x=1&y=2) ![b](https://example.com/b.png)"
    )
    assert OpenGraph((await client.get(post["url"])).text).images == [
        "https://example.com/a.png?x=1&y=2"
    ]


async def test_a_post_without_pictures_has_no_og_image(client, alice):
    post = await write(client, alice[1], "Words only, and a [link](https://example.com/a.png).")
    assert OpenGraph((await client.get(post["url"])).text).images == []


@pytest.mark.parametrize(
    "source",
    [
        "/media/post_images/" + "a" * 32 + ".webp",
        "https://bucket.s3.eu-west-3.amazonaws.com/post_images/" + "b" * 32 + ".webp",
    ],
)
def test_the_sanitiser_keeps_pictures_of_this_storage(source):
    assert f'<img src="{source}" alt="x"' in render_markdown(f"![x]({source})")


@pytest.mark.parametrize(
    "source",
    [
        "/media/profile_pics/" + "a" * 32 + ".jpg",
        "/media/post_images/../profile_pics/" + "a" * 28 + ".webp",
        "/media/post_images/" + "a" * 32 + ".webp?x",
        "/media/post_images/" + "A" * 32 + ".webp",
        "//evil.example/media/post_images/" + "a" * 32 + ".webp",
        "/api/users/me",
        "picture.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "mailto:someone@example.com",
        "javascript:alert(1)",
    ],
)
def test_the_sanitiser_still_refuses_other_relative_data_and_mailto_pictures(source):
    html = render_markdown(f"![x]({source})")
    assert "src=" not in html, html


def test_the_local_storage_url_of_a_new_picture_is_one_the_sanitiser_keeps(tmp_path):
    url = storage.LocalStorage(tmp_path).url(storage.new_post_image_key())
    assert f'src="{url}"' in render_markdown(f"![x]({url})")


# --- Routing ---------------------------------------------------------------------------------


async def test_the_images_path_is_no_post_id(client, alice):
    response = await client.get("/api/posts/images")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
