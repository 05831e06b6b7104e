"""Peak memory of turning the worst accepted uploads into a profile picture.

Each case is a 5000x5000 image (25 megapixels, the largest accepted) of at most 5 MB, decoded
by `images.make_profile_picture` in a fresh process; the figure is the growth of the process's
peak resident set (VmHWM) over what it held before decoding: Pillow allocates pixels outside
Python's heap, where tracemalloc cannot see them.

    uv run python bench/image_memory.py
"""

import json
import subprocess
import sys
from io import BytesIO
from pathlib import Path
from tempfile import TemporaryDirectory

from PIL import Image

ROOT = Path(__file__).parent.parent
SIDE = 5000
ORIENTATION = 0x0112

# VmHWM is the peak resident set of this process's own memory (Linux); getrusage's ru_maxrss
# would carry over the peak of the parent that forked it.
MEASURE = """
import sys
sys.path.insert(0, sys.argv[2])
import images

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = peak_kb()
images.make_profile_picture(data)
print(before, peak_kb())
"""


def encode(img: Image.Image, fmt: str, rotated: bool = False, **options) -> bytes:
    if rotated:  # an EXIF orientation makes the pipeline turn the full-size image
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        options["exif"] = exif
    out = BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def cases() -> dict[str, bytes]:
    size = (SIDE, SIDE)
    palette = Image.new("P", size, 0)
    return {
        "JPEG RGB, rotated": encode(Image.new("RGB", size, "red"), "JPEG", rotated=True),
        "JPEG CMYK": encode(Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG"),
        "PNG RGB, rotated": encode(Image.new("RGB", size, "red"), "PNG", rotated=True),
        "PNG RGBA, rotated": encode(Image.new("RGBA", size, (255, 0, 0, 0)), "PNG", rotated=True),
        "PNG 16-bit grey, rotated": encode(Image.new("I;16", size, 300), "PNG", rotated=True),
        "PNG LA": encode(Image.new("LA", size), "PNG"),
        "PNG palette, transparent": encode(palette, "PNG", transparency=0),
        "GIF, transparent": encode(palette, "GIF", transparency=0),
        "WebP RGBA lossless, rotated": encode(
            Image.new("RGBA", size, (255, 0, 0, 0)), "WEBP", rotated=True, lossless=True
        ),
        "WebP RGBA lossy": encode(Image.new("RGBA", size, (255, 0, 0, 128)), "WEBP"),
        "WebP animated, 3 frames": encode(
            Image.new("RGBA", size, (255, 0, 0, 0)),
            "WEBP",
            save_all=True,
            append_images=[Image.new("RGBA", size, "blue"), Image.new("RGBA", size, "green")],
            lossless=True,
        ),
    }


def main() -> None:
    results = {}
    with TemporaryDirectory() as folder:
        for name, data in cases().items():
            assert len(data) <= 5 * 1024 * 1024, (name, len(data))
            path = Path(folder) / "upload"
            path.write_bytes(data)
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), str(ROOT)],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            before, after = map(int, run.stdout.split())  # kilobytes
            results[name] = {"bytes": len(data), "peak_mb": (after - before) // 1024}
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
