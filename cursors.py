"""Keyset cursors: the place after a post in a newest-first list, as an opaque string.

A cursor names the last post of a page by its sort key, (date_posted, id); the next page is
the posts strictly after it in (date_posted DESC, id DESC) order, read straight from the index
whatever the depth, and posts created meanwhile (newer, so before it) cannot shift it.

A cursor is signed (HMAC-SHA256 with a key derived from the app's secret): the API reads back
only the cursors it wrote, so a forged or altered one is refused like a malformed one, and the
format inside may change without any client depending on it (a cursor from before a change,
or from before the secret changed, is then refused, and the client starts from page one). What
it carries is no secret: a post's date and id are public.
"""

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime
from functools import cache
from typing import NamedTuple

# PostgreSQL `integer`: posts.id.
MAX_ID = 2**31 - 1
TAG_BYTES = 16  # of the HMAC-SHA256: 128 bits, beyond guessing
# The payload is what `encode_cursor` writes, and nothing else: a UTC timestamp with its
# microseconds (posts in the same second are still told apart, and in the same microsecond by
# id) and the post's id. ASCII only: `\d` of a bytes pattern matches 0-9 alone.
PAYLOAD = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) ([1-9]\d{0,9})")
# The longest cursor `encode_cursor` writes (an id of ten digits): anything longer is refused
# before any decoding.
MAX_CURSOR_LENGTH = 79
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class Position(NamedTuple):
    """The sort key of the last post seen."""

    date_posted: datetime
    id: int


class InvalidCursor(ValueError):
    """Not a cursor this app wrote with its current secret."""


@cache
def cursor_key(secret: str) -> bytes:
    """A key for cursors alone, derived from the app's secret: no cursor's tag is ever the
    signature of anything else signed with that secret."""
    return hmac.new(secret.encode(), b"keyset cursor", hashlib.sha256).digest()


def encode_cursor(position: Position, key: bytes) -> str:
    """The opaque cursor of `position` (a timezone-aware date, an id of PostgreSQL's range)."""
    date_posted, id_ = position
    if date_posted.utcoffset() is None:
        raise ValueError("a cursor's date must be timezone-aware")
    if not 1 <= id_ <= MAX_ID:
        raise ValueError(f"a cursor's id must be within 1..{MAX_ID}")
    stamp = date_posted.astimezone(UTC).isoformat(timespec="microseconds")
    payload = f"{stamp} {id_}".encode()
    return _base64url(_tag(payload, key) + payload)


def decode_cursor(cursor: str, key: bytes) -> Position:
    """The position a cursor names; InvalidCursor unless this app wrote it, exactly so."""
    if len(cursor) > MAX_CURSOR_LENGTH or not BASE64URL.fullmatch(cursor):
        raise InvalidCursor("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except binascii.Error:  # a length no base64 string has
        raise InvalidCursor("not a cursor") from None
    if _base64url(raw) != cursor:  # stray bits in the last character: one spelling only
        raise InvalidCursor("not a cursor")
    tag, payload = raw[:TAG_BYTES], raw[TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(payload, key)):
        raise InvalidCursor("not signed by this app")
    # Signed, so written by `encode_cursor`; checked all the same, in case of a bug there.
    match = PAYLOAD.fullmatch(payload)
    if match is None:
        raise InvalidCursor("not a position")
    try:
        date_posted = datetime.fromisoformat(match[1].decode())
    except ValueError:  # the 30th of February, hour 24...
        raise InvalidCursor("not a date") from None
    id_ = int(match[2])
    if id_ > MAX_ID:
        raise InvalidCursor("not a post id")
    return Position(date_posted, id_)


def _tag(payload: bytes, key: bytes) -> bytes:
    """HMAC-SHA256 of `payload`, cut to TAG_BYTES (one call into OpenSSL: every page of a
    list signs its next cursor)."""
    return hmac.digest(key, payload, "sha256")[:TAG_BYTES]


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
