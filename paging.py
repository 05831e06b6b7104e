"""Where a page of a list starts: after `skip` items, or right after the item a cursor names
(cursors.py), as the post lists of the API (routers/posts.py, routers/users.py) and the pages
take it; a deep page is marked as an expensive read, to wait its turn (database.py)."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from config import settings
from cursors import InvalidCursor, Position, cursor_key, decode_cursor
from database import mark_expensive_read
from schemas import CursorParam, Detail, Skip

# A page deeper than this walks over a thousand index entries (for its offset) on top of its
# count: it waits for a turn among the deep pages before it takes a read connection.
DEEP_SKIP = 1000


async def page_offset(request: Request, skip: Skip = 0) -> int:
    """`skip`; a deep page is marked as an expensive read. Declared before the read connection."""
    if skip >= DEEP_SKIP:
        mark_expensive_read(request)
    return skip


@dataclass(frozen=True)
class PageStart:
    """Where a page of a list starts: after `skip` posts, or right after a cursor's post."""

    skip: int = 0
    after: Position | None = None


async def page_start(request: Request, skip: Skip = 0, cursor: CursorParam = None) -> PageStart:
    """`start_at`; a deep page is marked as an expensive read (`page_offset`), so this is
    declared before the read connection."""
    return start_at(await page_offset(request, skip), cursor)


def start_at(skip: int, cursor: str | None) -> PageStart:
    """`skip`, or the position a cursor names; a cursor the app did not write is a 422."""
    if cursor is None:
        return PageStart(skip=skip)
    if skip:
        raise invalid_query("skip", Detail.CURSOR_WITH_SKIP)
    try:
        return PageStart(after=decode_cursor(cursor, cursor_key(settings.jwt_secret)))
    except InvalidCursor:
        raise invalid_query("cursor", Detail.INVALID_CURSOR) from None


def invalid_query(name: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own for a query parameter."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message}])


PageStartDep = Annotated[PageStart, Depends(page_start)]
