"""A picture keeps its brightness whatever the pixel format it was uploaded in."""

from io import BytesIO

import pytest
from PIL import Image

from images import make_profile_picture


def grey_level(picture: bytes) -> int:
    with Image.open(BytesIO(picture)) as img:
        red, green, blue = img.convert("RGB").getpixel((150, 150))  # type: ignore[misc]  # an RGB pixel is a 3-tuple
    assert red == green == blue or max(red, green, blue) - min(red, green, blue) <= 2
    return red


def test_a_mid_grey_16_bit_greyscale_picture_stays_mid_grey():
    """16-bit greyscale (0..65535) is scaled to 8 bits, not clipped to white."""
    upload = BytesIO()
    Image.new("I;16", (64, 64), 32768).save(upload, "PNG")
    assert abs(grey_level(make_profile_picture(upload.getvalue())) - 128) <= 3


def test_the_transparent_part_of_a_palette_picture_turns_white():
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0] * 256)  # every colour black: only transparency makes white
    upload = BytesIO()
    palette.save(upload, "PNG", transparency=0)
    assert grey_level(make_profile_picture(upload.getvalue())) >= 250


@pytest.mark.parametrize(("mode", "black"), [("RGB", (0, 0, 0)), ("L", 0)])
def test_the_colour_keyed_part_of_an_rgb_or_grey_png_turns_white(mode, black):
    """A PNG whose tRNS chunk makes one colour clear, as PNG optimisers write a picture whose
    pixels are all either opaque or clear."""
    upload = BytesIO()
    Image.new(mode, (64, 64), black).save(upload, "PNG", transparency=black)
    assert grey_level(make_profile_picture(upload.getvalue())) >= 250
