"""Hooks for .ci/schemathesis: what its generator never makes.

Python's JSON parser accepts NaN, Infinity, 1e400 (which parses as Infinity) and integers of
any size; schemathesis only generates finite numbers of ordinary size, and its JSON encoder
refuses NaN. One generated JSON object body in four instead goes out as raw JSON text with one of
these in one of its fields (hypothesis picks which; the number of requests stays the same).

Random bytes are never an image: half the generated picture uploads carry a real one, so the
upload is fuzzed past Pillow too.
"""

import io
import json

import schemathesis
from hypothesis import strategies as st
from PIL import Image

NASTY_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "-1" + "0" * 400]
PLACEHOLDER = "__nasty_number__"


def with_number(body: dict, field: str, number: str) -> bytes:
    """The body as JSON text, one field's value replaced by the raw number."""
    text = json.dumps({**body, field: PLACEHOLDER})
    return text.replace(json.dumps(PLACEHOLDER), number).encode()


def takes_json(context) -> bool:
    # A form or multipart body sent as JSON text would only test the parser of another format.
    return any(body.media_type == "application/json" for body in context.operation.body)


@schemathesis.hook
def flatmap_body(context, body):
    if not isinstance(body, dict) or not body or not takes_json(context):
        return st.just(body)
    nasty = st.builds(
        with_number, st.just(body), st.sampled_from(sorted(body)), st.sampled_from(NASTY_NUMBERS)
    )
    # One body in four: the others stay as generated, so the run keeps its positive cases.
    return st.integers(0, 3).flatmap(lambda n: nasty if n == 0 else st.just(body))


def picture(size: tuple[int, int], image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, image_format)
    return buffer.getvalue()


PICTURES = [picture((40, 30), "PNG"), picture((30, 40), "JPEG"), picture((16, 16), "GIF")]


@(
    schemathesis.hook("flatmap_body")
    .apply_to(method="PATCH", path="/api/users/{user_id}/picture")
    .apply_to(method="POST", path="/api/posts/images")
)
def with_a_real_picture(context, body):
    # Only over a file's contents: a negative case whose `file` is no longer text or bytes (an
    # object, a number) must stay one.
    if not isinstance(body, dict) or not isinstance(body.get("file"), str | bytes):
        return st.just(body)
    real = st.sampled_from(PICTURES).map(lambda image: {**body, "file": image})
    return st.booleans().flatmap(lambda use_real: real if use_real else st.just(body))
