"""Picture processing with Pillow: any supported image in, only its pixels out. A profile
picture becomes a clean 300x300 JPEG; a post's picture a WebP at most 1600 px wide.

Decoding is blocking and takes up to about 390 MB for the largest accepted image (measured,
see MAX_PIXELS): the app calls `process_profile_picture` and `process_post_image`, which run
it in a thread, a bounded number at a time (the same slots for both).
"""

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import TypeVar

import anyio
from PIL import Image, ImageOps

from config import settings

SIZE = (300, 300)
# A post's picture: as wide as a wide screen's column needs, never upscaled.
POST_IMAGE_MAX_WIDTH = 1600
# The WebP format's limit on either side: a picture that would still be taller is refused.
WEBP_MAX_SIDE = 16383
ORIENTATION = 0x0112  # the EXIF tag
# The EXIF orientations that turn the picture a quarter: its width is the stored height.
QUARTER_TURNS = frozenset({5, 6, 7, 8})
# Modes `Image.reduce` handles; the others (palette, 16-bit...) are converted at full size.
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")
# Recognised from the file's bytes, never its name or Content-Type. The JPEG decoder also
# reads the MPO files phone cameras write (a JPEG with a preview image appended).
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
# Above a 24 MP camera's photos (a bigger one is easily scaled down before upload), and what
# bounds the memory of a decode. Measured by bench/image_memory.py: the peak growth of the
# process for a 5000x5000 (25 MP) upload of at most 5 MB is 389 MB for WebP with alpha (libwebp
# decodes into a buffer of its own, then Pillow copies it), 290 MB for 16-bit PNG, 264 MB for
# palette PNG/GIF with transparency, 193 MB for PNG with alpha, under 10 MB for JPEG (decoded
# at reduced scale).
MAX_PIXELS = 25_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# Two decodes at once: a burst of uploads takes at most about 2 x 390 MB.
PROCESSING_SLOTS = 2
_processing_limiter = anyio.CapacityLimiter(PROCESSING_SLOTS)


class InvalidImage(ValueError):
    pass


class ProcessingBusy(RuntimeError):
    """IMAGE_MAX_WAITING uploads already wait for a slot: come back later."""


# What a client is told to wait when the queue is full: a few pictures' time.
RETRY_AFTER_SECONDS = 2


def images_waiting() -> int:
    """Uploads queued behind the ones being processed, in this worker."""
    return _processing_limiter.statistics().tasks_waiting


async def process_profile_picture(data: bytes) -> bytes:
    """`make_profile_picture` off the event loop, at most PROCESSING_SLOTS at once.

    Raises ProcessingBusy at once, rather than queue, when every slot is taken and
    IMAGE_MAX_WAITING uploads already wait.
    """
    return await in_a_slot(make_profile_picture, data)


@dataclass(frozen=True)
class PostImage:
    """A post's picture as stored: WebP bytes and the size they show at."""

    data: bytes
    width: int
    height: int


async def process_post_image(data: bytes) -> PostImage:
    """`make_post_image` off the event loop, in the slots profile pictures use (ProcessingBusy
    likewise)."""
    return await in_a_slot(make_post_image, data)


T = TypeVar("T")


async def in_a_slot(make: Callable[[bytes], T], data: bytes) -> T:
    """`make(data)` in a worker thread once one of the PROCESSING_SLOTS is free; ProcessingBusy
    when IMAGE_MAX_WAITING uploads already wait for one."""
    if _processing_limiter.available_tokens == 0 and images_waiting() >= settings.image_max_waiting:
        raise ProcessingBusy
    return await anyio.to_thread.run_sync(make, data, limiter=_processing_limiter)


def make_profile_picture(data: bytes) -> bytes:
    """Decode, orient, square-crop and resize; the output carries no EXIF (no GPS, no camera)."""
    try:
        # Only these decoders ever see the bytes (no EPS/Ghostscript, no exotic plugins).
        with Image.open(BytesIO(data), formats=ACCEPTED_FORMATS) as img:
            if img.width * img.height > MAX_PIXELS:
                raise InvalidImage("image dimensions too large")
            # JPEG: decode at reduced scale, cheaply. No mode: Pillow's draft only ever turns
            # RGB into L or YCbCr, which `to_rgb` would have to undo.
            img.draft(None, (SIZE[0] * 2, SIZE[1] * 2))
            picture = ImageOps.exif_transpose(shrink(img))  # the first frame of an animation
            picture = to_rgb(picture)
            picture = ImageOps.fit(picture, SIZE, Image.Resampling.LANCZOS)
            # Pillow copies `info` along and writes its comment into the JPEG: keep nothing of
            # the upload's metadata (EXIF, GPS, XMP, comments) but its pixels.
            picture.info = {}
            out = BytesIO()
            picture.save(out, "JPEG", quality=85)
            return out.getvalue()
    except InvalidImage:
        raise
    except Exception as exc:
        # Hostile files make Pillow raise a zoo of errors (UnidentifiedImageError, OSError,
        # DecompressionBombError, SyntaxError, struct.error from a bad EXIF block...): each
        # means "not an image we accept", never a server error.
        raise InvalidImage(f"{type(exc).__name__}: {exc}") from exc


def make_post_image(data: bytes) -> PostImage:
    """Decode, orient and scale down to at most POST_IMAGE_MAX_WIDTH wide (never up), as WebP:
    transparency kept, nothing of the upload's metadata (EXIF, GPS, XMP, ICC, comments)."""
    try:
        with Image.open(BytesIO(data), formats=ACCEPTED_FORMATS) as img:
            if img.width * img.height > MAX_PIXELS:
                raise InvalidImage("image dimensions too large")
            turned = img.getexif().get(ORIENTATION) in QUARTER_TURNS
            # JPEG: decode at the smallest scale still as wide as the picture, once turned.
            img.draft(None, (1, POST_IMAGE_MAX_WIDTH) if turned else (POST_IMAGE_MAX_WIDTH, 1))
            width = img.height if turned else img.width
            picture = reduce_by(img, width // (2 * POST_IMAGE_MAX_WIDTH))
            picture = to_web_mode(ImageOps.exif_transpose(picture))  # an animation's first frame
            if picture.width > POST_IMAGE_MAX_WIDTH:
                height = max(1, round(picture.height * POST_IMAGE_MAX_WIDTH / picture.width))
                size = (POST_IMAGE_MAX_WIDTH, height)
                picture = picture.resize(size, Image.Resampling.LANCZOS)
            if picture.height > WEBP_MAX_SIDE:
                raise InvalidImage("image too tall")
            picture.info = {}  # as for profile pictures: its pixels, nothing else
            out = BytesIO()
            picture.save(out, "WEBP", quality=85)
            return PostImage(out.getvalue(), picture.width, picture.height)
    except InvalidImage:
        raise
    except Exception as exc:  # as in make_profile_picture: a hostile file is no server error
        raise InvalidImage(f"{type(exc).__name__}: {exc}") from exc


def shrink(img: Image.Image) -> Image.Image:
    """Box-reduce a decoded image by a whole factor, its shorter side staying at least twice the
    output's, so that turning and converting it copies a small image, not 25 MP of it. The
    reduced image keeps `info` (EXIF orientation, transparency)."""
    return reduce_by(img, min(img.size) // (2 * min(SIZE)))


def reduce_by(img: Image.Image, factor: int) -> Image.Image:
    """`img` box-reduced by `factor` when that is 2 or more and its mode allows it."""
    if factor < 2 or img.mode not in REDUCIBLE_MODES:
        return img
    return img.reduce(factor)


def to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white and map every mode (P, CMYK, I;16, LA...) to RGB.

    Transparency is an alpha channel or a colour key: a palette entry, or the one RGB or grey
    value of a PNG's tRNS chunk (what PNG optimisers make of an RGBA image whose pixels are
    all either opaque or clear)."""
    img = to_8_bits(img)
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def to_web_mode(img: Image.Image) -> Image.Image:
    """RGBA when the image has transparency (an alpha channel or a colour key), else RGB: what
    WebP holds."""
    img = to_8_bits(img)
    return img.convert("RGBA" if img.has_transparency_data else "RGB")


def to_8_bits(img: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled from 0..65535 down to 0..255 (not clipped to white)."""
    if img.mode.startswith("I"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return img
