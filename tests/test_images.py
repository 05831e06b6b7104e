"""Hostile and unusual images: each gets a 4xx or a clean 300x300 JPEG, never a 500.

The images are made here with Pillow (or by hand, byte by byte, for the malformed ones).
"""

import struct
import threading
import zlib
from io import BytesIO

import anyio
import pytest
from PIL import Image, ImageOps
from PIL.JpegImagePlugin import JpegImageFile

import images
from images import MAX_PIXELS, InvalidImage, make_profile_picture
from schemas import Detail

pytestmark = pytest.mark.anyio

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    out = BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A few dozen bytes whose header promises a gigantic picture (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def decoded(picture: bytes) -> Image.Image:
    img = Image.open(BytesIO(picture))
    img.load()
    return img


def assert_clean_jpeg(picture: bytes) -> Image.Image:
    img = decoded(picture)
    assert img.format == "JPEG"
    assert img.size == (300, 300)
    assert img.mode == "RGB"
    assert not img.getexif()
    assert "exif" not in img.info and "comment" not in img.info
    return img


def close_to(pixel: object, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple), pixel
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


# --- Rejected: 400 with the contract's detail ------------------------------------------------


def test_the_picture_is_a_lanczos_crop_saved_at_jpeg_quality_85():
    """What an RGB picture without metadata goes through, and nothing else: a Lanczos fit to
    300x300 (the sharpest of Pillow's downscaling filters), saved at quality 85."""
    source = Image.radial_gradient("L").resize((640, 480)).convert("RGB")
    source.paste((200, 30, 30), (100, 100, 300, 200))  # edges, which the filters render apart
    expected = BytesIO()
    ImageOps.fit(source, images.SIZE, Image.Resampling.LANCZOS).save(expected, "JPEG", quality=85)
    made = Image.open(BytesIO(make_profile_picture(image_bytes_of(source))))
    wanted = Image.open(expected)
    assert isinstance(made, JpegImageFile) and isinstance(wanted, JpegImageFile)
    assert made.quantization == wanted.quantization  # the quality setting's tables
    assert made.tobytes() == wanted.tobytes()


def image_bytes_of(img: Image.Image) -> bytes:
    out = BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_decompression_bomb_header_is_rejected_before_decoding():
    with pytest.raises(InvalidImage):
        make_profile_picture(png_claiming(100_000, 100_000))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_just_over_the_pixel_limit_is_rejected():
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(InvalidImage, match="too large"):
        make_profile_picture(png_claiming(side, side))


@pytest.fixture(scope="module")
def png_over_25_megapixels() -> bytes:
    """A real, fully decodable greyscale PNG of 5000 x 5001 pixels (small once compressed)."""
    return encode(Image.new("L", (5000, 5001), 128), "PNG")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_real_image_over_25_megapixels_is_rejected_before_decoding(png_over_25_megapixels):
    with pytest.raises(InvalidImage, match="too large"):
        make_profile_picture(png_over_25_megapixels)


def test_image_of_25_megapixels_is_accepted():
    assert_clean_jpeg(make_profile_picture(encode(Image.new("L", (5000, 5000), 128), "PNG")))


def test_large_image_is_reduced_and_still_turned_by_its_exif_orientation():
    """Big enough to be box-reduced before turning: the orientation survives the reduction."""
    img = Image.new("RGBA", (2400, 1200), RED)
    img.paste(BLUE, (1200, 0, 2400, 1200))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    picture = assert_clean_jpeg(make_profile_picture(encode(img, "PNG", exif=exif)))
    assert close_to(picture.getpixel((150, 40)), RED)
    assert close_to(picture.getpixel((150, 260)), BLUE)


@pytest.mark.parametrize(
    ("size", "decoded_size"), [((1200, 2400), (600, 1200)), ((2400, 1200), (1200, 600))]
)
def test_a_large_jpeg_is_decoded_at_reduced_scale_its_shorter_side_twice_the_pictures(
    monkeypatch, size, decoded_size
):
    """A JPEG decodes at 1/2, 1/4 or 1/8 of its size for that fraction of the memory: the
    smallest such size whose shorter side is still 600 px, twice the picture's."""
    seen = []
    shrink = images.shrink

    def shrink_and_see(img: Image.Image) -> Image.Image:
        seen.append(img.size)
        return shrink(img)

    monkeypatch.setattr(images, "shrink", shrink_and_see)
    assert_clean_jpeg(make_profile_picture(encode(Image.new("RGB", size, RED), "JPEG")))
    assert seen == [decoded_size]


@pytest.mark.parametrize(
    ("mode", "size", "reduced"),
    [
        ("RGB", (1199, 5000), (1199, 5000)),  # under twice 600 px: kept as decoded
        ("RGB", (1200, 1300), (600, 650)),
        ("RGBA", (1800, 2000), (600, 667)),
        ("L", (2999, 2999), (750, 750)),
        ("P", (2400, 2400), (2400, 2400)),  # a mode `reduce` cannot do: converted at full size
    ],
)
def test_a_decoded_picture_is_reduced_by_a_whole_factor_its_shorter_side_twice_the_pictures(
    mode, size, reduced
):
    assert images.shrink(Image.new(mode, size)).size == reduced


def test_gif_with_huge_logical_screen_is_rejected():
    gif = bytearray(encode(Image.new("P", (2, 2)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen width and height
    with pytest.raises(InvalidImage):
        make_profile_picture(bytes(gif))


def test_truncated_jpeg_is_rejected():
    jpeg = encode(Image.effect_noise((400, 400), 50).convert("RGB"), "JPEG")
    with pytest.raises(InvalidImage):
        make_profile_picture(jpeg[: len(jpeg) // 2])


def test_corrupt_png_data_is_rejected():
    png = bytearray(encode(Image.effect_noise((64, 64), 50), "PNG"))
    png[60:120] = b"\xff" * 60  # inside the compressed pixel data
    with pytest.raises(InvalidImage):
        make_profile_picture(bytes(png))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"hello, I am a text file\n" * 10, bytes(range(256)) * 40],
    ids=["empty", "one-byte", "text", "random-bytes"],
)
def test_bytes_that_are_no_image_are_rejected(data):
    with pytest.raises(InvalidImage):
        make_profile_picture(data)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM"])
def test_real_image_in_a_format_outside_the_allow_list_is_rejected(fmt):
    with pytest.raises(InvalidImage):
        make_profile_picture(encode(Image.new("RGB", (32, 32), RED), fmt))


def test_svg_is_rejected():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    with pytest.raises(InvalidImage):
        make_profile_picture(svg)


def test_jpeg_with_garbage_exif_block_gives_an_image_or_a_rejection():
    jpeg = encode(Image.new("RGB", (50, 50), RED), "JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff")
    try:
        picture = make_profile_picture(jpeg)
    except InvalidImage:
        return
    assert_clean_jpeg(picture)


# --- Accepted: a clean JPEG whatever came in -------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_each_accepted_format_becomes_a_300px_jpeg(fmt):
    picture = make_profile_picture(encode(Image.new("RGB", (640, 480), RED), fmt))
    img = assert_clean_jpeg(picture)
    assert close_to(img.getpixel((150, 150)), RED)


def test_phone_camera_mpo_jpeg_is_accepted():
    first, second = Image.new("RGB", (120, 90), BLUE), Image.new("RGB", (60, 45), RED)
    mpo = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(BytesIO(mpo)).format == "MPO"
    img = assert_clean_jpeg(make_profile_picture(mpo))
    assert close_to(img.getpixel((150, 150)), BLUE)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_image_keeps_its_first_frame(fmt):
    frames = [Image.new("RGB", (80, 80), colour) for colour in (BLUE, RED, (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(BytesIO(data)), "n_frames", 1) == 3
    img = assert_clean_jpeg(make_profile_picture(data))
    assert close_to(img.getpixel((150, 150)), BLUE)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (100, 100), (0, 255, 255, 0))  # pure red in ink
    img = assert_clean_jpeg(make_profile_picture(encode(cmyk, "JPEG")))
    assert close_to(img.getpixel((150, 150)), RED)


def test_16_bit_greyscale_png_keeps_its_brightness():
    grey16 = Image.new("I;16", (100, 100), 65535)
    data = encode(grey16, "PNG")
    assert Image.open(BytesIO(data)).mode.startswith("I")
    img = assert_clean_jpeg(make_profile_picture(data))
    assert close_to(img.getpixel((150, 150)), WHITE, tolerance=5)


def test_palette_png_with_transparency_is_flattened_on_white():
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([*BLUE, *RED] + [0] * 762)
    palette.paste(1, (50, 0, 100, 100))  # right half red, left half transparent
    data = encode(palette, "PNG", transparency=0)
    img = assert_clean_jpeg(make_profile_picture(data))
    assert close_to(img.getpixel((20, 150)), WHITE)
    assert close_to(img.getpixel((280, 150)), RED)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_become_white(mode):
    transparent = Image.new(mode, (100, 100))  # every pixel fully transparent
    img = assert_clean_jpeg(make_profile_picture(encode(transparent, "PNG")))
    assert close_to(img.getpixel((150, 150)), WHITE)


@pytest.mark.parametrize("size", [(1, 1), (3000, 10), (10, 3000)])
def test_tiny_and_extreme_aspect_images_are_cut_to_a_square(size):
    assert_clean_jpeg(make_profile_picture(encode(Image.new("RGB", size, RED), "PNG")))


def jpeg_with_gps_and_orientation() -> bytes:
    """Landscape pixels, left red and right blue, that a viewer must turn 90 degrees clockwise."""
    img = Image.new("RGB", (400, 200), RED)
    img.paste(BLUE, (200, 0, 400, 200))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Spy Camera Inc."  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return encode(img, "JPEG", exif=exif, comment=b"GPS 48.8581 N 2.2944 E")


def test_exif_gps_and_comment_never_reach_the_stored_picture():
    data = jpeg_with_gps_and_orientation()
    assert Image.open(BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the upload does carry GPS
    picture = make_profile_picture(data)
    assert_clean_jpeg(picture)
    assert b"Exif" not in picture
    assert b"Spy Camera" not in picture
    assert b"48.8581" not in picture


def test_exif_orientation_is_applied_to_the_pixels():
    img = assert_clean_jpeg(make_profile_picture(jpeg_with_gps_and_orientation()))
    # Turned clockwise, the red left half is now on top and the blue right half at the bottom.
    assert close_to(img.getpixel((150, 40)), RED)
    assert close_to(img.getpixel((150, 260)), BLUE)
    unturned = ImageOps.fit(decoded(jpeg_with_gps_and_orientation()), (300, 300))
    assert not close_to(unturned.getpixel((150, 40)), RED)  # the check above means something


# --- Through the API -------------------------------------------------------------------------


async def upload(client, user_id: int, headers: dict, data: bytes, name: str, content_type: str):
    files = {"file": (name, data, content_type)}
    return await client.patch(f"/api/users/{user_id}/picture", files=files, headers=headers)


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (bytes(range(256)) * 40, "photo.jpg", "image/jpeg"),
        (b"just some text\n", "notes.png", "image/png"),
        (png_claiming(100_000, 100_000), "bomb.png", "image/png"),
        (encode(Image.new("RGB", (32, 32)), "BMP"), "photo.jpg", "image/jpeg"),
    ],
    ids=["random-bytes-named-jpg", "text-named-png", "decompression-bomb", "bmp-named-jpg"],
)
async def test_upload_of_a_file_that_is_no_accepted_image_is_rejected(
    client, alice, s3, data, name, content_type
):
    user, headers = alice
    response = await upload(client, user["id"], headers, data, name, content_type)
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_IMAGE}
    assert "Contents" not in s3.list_objects_v2(Bucket="test-bucket")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_upload_of_an_image_over_25_megapixels_is_a_400(
    client, alice, png_over_25_megapixels
):
    user, headers = alice
    response = await upload(
        client, user["id"], headers, png_over_25_megapixels, "big.png", "image/png"
    )
    assert response.status_code == 400
    assert response.json() == {"detail": Detail.INVALID_IMAGE}


async def test_upload_is_judged_by_its_bytes_not_its_name_or_type(client, alice):
    user, headers = alice
    png = encode(Image.new("RGB", (50, 50), RED), "PNG")
    response = await upload(client, user["id"], headers, png, "report.pdf", "application/pdf")
    assert response.status_code == 200
    assert response.json()["image_file"].endswith(".jpg")


async def test_uploaded_picture_in_the_bucket_has_no_exif(client, alice, s3):
    user, headers = alice
    data = jpeg_with_gps_and_orientation()
    response = await upload(client, user["id"], headers, data, "me.jpg", "image/jpeg")
    assert response.status_code == 200
    key = f"profile_pics/{response.json()['image_file']}"
    stored = s3.get_object(Bucket="test-bucket", Key=key)["Body"].read()
    img = assert_clean_jpeg(stored)
    assert b"Exif" not in stored
    assert close_to(img.getpixel((150, 40)), RED)


async def test_at_most_two_pictures_are_decoded_at_once(monkeypatch):
    """A burst of uploads queues for the decoder instead of taking memory all at once."""
    lock, release = threading.Lock(), threading.Event()
    running, peak, entered = 0, 0, threading.Semaphore(0)

    def blocking_decode(data: bytes) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        entered.release()
        release.wait(timeout=30)
        with lock:
            running -= 1
        return data

    monkeypatch.setattr(images, "make_profile_picture", blocking_decode)
    async with anyio.create_task_group() as tasks:
        for i in range(5):
            tasks.start_soon(images.process_profile_picture, bytes([i]))
        for _ in range(images.PROCESSING_SLOTS):  # wait until the slots are taken
            await anyio.to_thread.run_sync(entered.acquire)
        release.set()
    assert peak == images.PROCESSING_SLOTS == 2
