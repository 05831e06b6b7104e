"""HTTP caching: the one ETag helper of every cached route, and the cheap 304.

A cached route declares `dependencies=[CACHED]`. Its 200 then carries `ETag` (a hash of the
body) and `Cache-Control: no-cache` (use it, revalidate first), and a request whose
`If-None-Match` names that tag, or `*`, gets a 304 with no body. A 200 that says
`Cache-Control: ... no-store` (what depends on the token: `private`) gets no tag.

The validator is a hash of the body: correct by construction (same bytes, same tag, whichever
worker, machine or replica rendered them), and stable for as long as the content is, however
much else the database saw meanwhile: a feed reader polling once an hour gets its 304 if the
feed did not change. On its own it only saves bandwidth: the page is read and rendered to be
hashed. What makes the common 304 cheap is a second fact: PostgreSQL's snapshot
(`pg_current_snapshot()`, `xmin:xmax:in-progress xids`) says exactly which transactions a
statement sees, so two reads of one server under equal snapshots see the same data, and
render the same bytes. Each worker remembers, for the snapshot it last saw, the tag each URL
rendered to. A conditional request takes the snapshot on its read connection first (one
trivial query, before any data query); if it equals the remembered one, and the remembered
tag is the one asked for, the answer is a 304 before the route reads or renders anything.
Otherwise the route runs as usual, its body is hashed, and the comparison decides.

Why this and not:
- the snapshot as the tag itself: every commit anywhere in the cluster (another database,
  autoanalyze) changes it, so a client that revalidates less often than the database is
  written to would never get a 304; here that only costs a render, never the 304 itself;
- a version counter per table bumped by triggers: a row every write of that table must lock
  until it commits (writes serialise), a migration, and a trigger to get right for every
  table a page shows (posts, their authors, comments, tags);
- a sequence: not transactional (a rolled-back write bumps it, a committed one may be seen
  before its rows are), and invisible to a replica until the WAL carries it.

Limits, all on the side of a miss or of a copy newer than needed, never an older one:
- the snapshot must be read by a connection without writes of its own
  (pg_current_xact_id_if_assigned() is null): a snapshot does not show its own transaction's
  writes, so such a snapshot is not used (only a test's transaction is ever in that case);
- a change of the snapshot forgets everything remembered;
- a tag is remembered for the snapshot read just before the body: if something committed in
  between, every later snapshot of that server differs; only a request that had read the old
  one before that commit can still meet the tag, and its client holds the newer body;
- with reads spread over replicas behind one address, a lagging one may meet a snapshot a
  faster one already moved past: the client keeps a copy newer than that replica would send.
"""

import hashlib
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from fastapi import Depends, Request, Response
from sqlalchemy import Text, cast, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from database import before_read, fetch_sql
from models import PUBLIC as PUBLIC_POSTS

# The 200 of a cached route: a cache may keep it, and must ask before using it again.
REVALIDATE = "no-cache"
# What depends on the token (a draft seen by its author, /api/users/me...).
PRIVATE = "private, no-store"

# What a read sees is its snapshot and the clock: a scheduled post (queries.py) goes out
# at its time with no write. So the key of what a worker remembers is the snapshot and the
# next such moment still to come: it changes, as the pages do, when that moment passes.
NEXT_RELEASE = (
    f"(SELECT min(date_posted) FROM posts WHERE {PUBLIC_POSTS}"
    " AND date_posted > statement_timestamp())"
)
# No row when the connection's transaction wrote something: its snapshot does not show that.
SNAPSHOT = (
    f"SELECT pg_current_snapshot()::text, {NEXT_RELEASE}::text"
    " WHERE pg_current_xact_id_if_assigned() IS NULL"
)


def snapshot_key(snapshot: str, next_release: str | None) -> str:
    """What SNAPSHOT's row says, as STATEMENT_SNAPSHOT spells it."""
    return f"{snapshot} {next_release or ''}"


# The same, as a column of another query: its own snapshot, or NULL.
STATEMENT_SNAPSHOT = (
    select(
        cast(func.pg_current_snapshot(), Text)
        .concat(literal(" "))
        .concat(func.coalesce(cast(literal_column(NEXT_RELEASE), Text), ""))
    )
    .where(func.pg_current_xact_id_if_assigned().is_(None))
    .scalar_subquery()
)
# The scope key of a cached request's `Conditional`.
SCOPE_KEY = "blog.conditional"
ENTITY_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*(?:,|$)')
# Remembered tags per worker, for one snapshot: at most this many URLs (then forgotten at once).
MAX_REMEMBERED = 10_000
# A longer `If-None-Match` counts as none (a 200, never a wrong 304). A client holds one tag per
# URL, a cache a few: 8 KB is over two hundred. Without a bound, the server (which limits no
# header) parsed megabytes into a set of tags three times their size, on the event loop.
MAX_CONDITION_LENGTH = 8192


def requested_tags(header: str | None) -> frozenset[str] | None:
    """The opaque tags of an `If-None-Match` (weak or not: GET compares weakly); `None` for
    none, `{"*"}` for `*`. A malformed or overlong list counts as no condition."""
    if header is None or len(header) > MAX_CONDITION_LENGTH:
        return None
    if header.strip() == "*":
        return frozenset({"*"})
    tags, position = set(), 0
    while position < len(header):
        match = ENTITY_TAG.match(header, position)
        if match is None:
            return None
        tags.add(match.group(1))
        position = match.end()
    return frozenset(tags) or None


def entity_tag(body: bytes) -> str:
    """The ETag of a body: weak, as the same content may one day be sent compressed.

    SHA-256, cut to 128 bits: CPUs hash it in hardware (x86's SHA extensions, ARMv8's), in
    half the time BLAKE2b takes here for a page of posts (14 against 26 µs for 17 KB)."""
    return f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'


def opaque(tag: str) -> str:
    return tag.removeprefix("W/").strip('"')


@dataclass
class Conditional:
    """A request to a cached route: its URL, the tags it holds and the snapshot it read."""

    url: str
    wanted: frozenset[str] | None
    snapshot: str | None = None

    def matches(self, tag: str) -> bool:
        return self.wanted is not None and ("*" in self.wanted or opaque(tag) in self.wanted)


V = TypeVar("V")


@dataclass
class Remembered(Generic[V]):
    """What this worker computed under one snapshot: a value per key (the tag of each URL
    here; the total of each list in queries.py)."""

    snapshot: str | None = None
    values: dict[Hashable, V] = field(default_factory=dict)

    def get(self, snapshot: str, key: Hashable) -> V | None:
        return self.values.get(key) if snapshot == self.snapshot else None

    def latest(self, key: Hashable) -> tuple[str, V] | None:
        """The value of `key` under the last snapshot seen, with that snapshot, if known."""
        value = self.values.get(key)
        return None if value is None or self.snapshot is None else (self.snapshot, value)

    def put(self, snapshot: str, key: Hashable, value: V) -> None:
        if snapshot != self.snapshot or len(self.values) >= MAX_REMEMBERED:
            self.snapshot, self.values = snapshot, {}
        self.values[key] = value


remembered: Remembered[str] = Remembered()


class NotModified(Exception):
    """Raised before the route reads: the client's copy is current (see `not_modified`)."""

    def __init__(self, tag: str):
        self.tag = tag


async def not_modified(request: Request, exc: Exception) -> Response:
    """The exception handler of `NotModified`: a 304 with the validator, no body."""
    assert isinstance(exc, NotModified)
    return Response(status_code=304, headers={"ETag": exc.tag, "Cache-Control": REVALIDATE})


async def check_snapshot(conditional: Conditional, connection: AsyncConnection) -> None:
    """On the read connection, before the route's first query: a 304 if this worker already
    rendered this URL under this very snapshot to a tag the client holds.

    The query goes straight to psycopg (`database.fetch_sql`): through SQLAlchemy's execution
    path it cost about as much CPU as all the rest of the 304 (bench/README.md).
    """
    rows = await fetch_sql(connection, SNAPSHOT)
    conditional.snapshot = snapshot_key(*rows[0]) if rows else None
    if conditional.snapshot is None:
        return
    tag = remembered.get(conditional.snapshot, conditional.url)
    if tag is not None and conditional.matches(tag):
        raise NotModified(tag)


def url_key(scope: Scope) -> str:
    """What the memo knows a URL by: a hash of its path and query, a few bytes however long
    the URL (the server takes 64 KB ones: kept whole, MAX_REMEMBERED of them were 640 MB)."""
    path = scope["path"].encode()  # decoded: may hold "?" (%3F), hence its length first
    url = b"%d:%s?%s" % (len(path), path, scope["query_string"])
    return hashlib.blake2b(url, digest_size=16).hexdigest()


async def conditional(request: Request) -> None:
    """Make this route's 200 carry an ETag and answer a matching `If-None-Match` with 304;
    a tag other than `*` is first checked against the snapshot, before the route reads."""
    state = Conditional(
        url_key(request.scope), requested_tags(request.headers.get("if-none-match"))
    )
    request.scope[SCOPE_KEY] = state
    if state.wanted and "*" not in state.wanted:
        before_read(request, partial(check_snapshot, state))


CACHED = Depends(conditional)


def no_store(response: Response) -> None:
    """Keep this answer out of every cache, and without an ETag: it depends on the token."""
    response.headers["Cache-Control"] = PRIVATE


async def private(response: Response) -> None:
    """Route dependency of what depends on the token (/api/users/me...): `no_store`."""
    no_store(response)


PRIVATE_ROUTE = Depends(private)


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key == name), None)


# A 304 carries the 200's headers but those describing its body.
BODY_HEADERS = {b"content-length", b"content-type"}


class ETagMiddleware:
    """Tags the 200 of every route that declared CACHED, and turns it into a 304 when the
    request's `If-None-Match` matches (pure ASGI; the body of a cached route is one JSON or XML
    document, held while it is hashed)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_tagged(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                state = scope.get(SCOPE_KEY)
                cache_control = header(message["headers"], b"cache-control") or b""
                if state is None or message["status"] != 200 or b"no-store" in cache_control:
                    await send(message)
                else:
                    start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await send_validated(start, b"".join(chunks), scope[SCOPE_KEY], send)

        await self.app(scope, receive, send_tagged)


async def send_validated(start: Message, body: bytes, state: Conditional, send: Send) -> None:
    """The 200 with its ETag, or a 304 when the client holds that tag; remember the tag."""
    tag = entity_tag(body)
    if state.snapshot is not None:
        remembered.put(state.snapshot, state.url, tag)
    headers = [(key, value) for key, value in start["headers"] if key != b"etag"]
    headers.append((b"etag", tag.encode()))
    if header(headers, b"cache-control") is None:
        headers.append((b"cache-control", REVALIDATE.encode()))
    if state.matches(tag):
        headers = [(key, value) for key, value in headers if key not in BODY_HEADERS]
        await send({**start, "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})
