"""Keyset cursors: cursors.py on its own, then `cursor=` / `next_cursor` on every post list."""

import base64
import hashlib
import hmac
import string
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from config import settings
from cursors import (
    MAX_CURSOR_LENGTH,
    MAX_ID,
    TAG_BYTES,
    InvalidCursor,
    Position,
    cursor_key,
    decode_cursor,
    encode_cursor,
)
from queries import ListKind, page_statement
from schemas import Detail
from tests.conftest import create_test_post

KEY = cursor_key("a secret of the tests")
WHEN = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def signed(payload: bytes, key: bytes = KEY) -> str:
    """A cursor around any payload, signed as the app signs: what only a holder of the secret
    (or a bug in the encoder) could make; the decoder must still refuse a bad payload."""
    tag = hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(tag + payload).rstrip(b"=").decode()


# --- cursors.py ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "position",
    [
        Position(WHEN, 1),
        Position(WHEN, MAX_ID),
        Position(datetime(2026, 3, 1, tzinfo=UTC), 42),  # microseconds of zero are kept too
        Position(datetime(1, 1, 1, tzinfo=UTC), 7),
        Position(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 7),
    ],
)
def test_a_cursor_gives_back_its_position_to_the_microsecond(position):
    cursor = encode_cursor(position, KEY)
    assert decode_cursor(cursor, KEY) == position
    assert decode_cursor(cursor, KEY).date_posted.utcoffset() == timedelta(0)


def test_a_cursor_is_written_in_utc_whatever_the_servers_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        cursor = encode_cursor(Position(WHEN, 5), KEY)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert decode_cursor(cursor, KEY) == Position(WHEN, 5)


def test_a_date_in_another_zone_is_the_same_instant_in_utc():
    paris = WHEN.astimezone(timezone(timedelta(hours=2)))
    decoded = decode_cursor(encode_cursor(Position(paris, 5), KEY), KEY)
    assert decoded == Position(WHEN, 5)
    assert decoded.date_posted.tzinfo == UTC


def test_a_cursor_is_url_safe_short_and_opaque():
    cursor = encode_cursor(Position(WHEN, 123), KEY)
    assert set(cursor) <= set(BASE64URL)
    assert "2026" not in cursor and "123" not in cursor
    assert len(encode_cursor(Position(WHEN, MAX_ID), KEY)) == MAX_CURSOR_LENGTH  # the longest


@pytest.mark.parametrize("length", [MAX_CURSOR_LENGTH + 1, 10_000])
def test_a_string_longer_than_any_cursor_is_refused_before_decoding(length):
    with pytest.raises(InvalidCursor, match="not a cursor"):  # not "not signed": never decoded
        decode_cursor("A" * length, KEY)


def test_posts_of_one_microsecond_get_cursors_of_their_own():
    assert encode_cursor(Position(WHEN, 8), KEY) != encode_cursor(Position(WHEN, 9), KEY)


@pytest.mark.parametrize(
    "position",
    [
        Position(datetime(2026, 3, 1), 1),  # naive
        Position(WHEN, 0),
        Position(WHEN, -1),
        Position(WHEN, MAX_ID + 1),
    ],
)
def test_the_encoder_refuses_a_naive_date_or_an_id_outside_postgresql_integers(position):
    with pytest.raises(ValueError):
        encode_cursor(position, KEY)


GOOD = encode_cursor(Position(WHEN, 42), KEY)
# 52 bytes: the last character carries 2 bits of data and 4 unused ones; flip one of those.
ODD_LENGTH = encode_cursor(Position(WHEN, 123), KEY)
STRAY_BITS = ODD_LENGTH[:-1] + BASE64URL[BASE64URL.index(ODD_LENGTH[-1]) ^ 1]
MALFORMED = {
    "empty": "",
    "garbage": "not a cursor!",
    "huge": "A" * 10_000,
    "just over the length": "A" * (MAX_CURSOR_LENGTH + 1),
    "standard base64 alphabet": GOOD[:10] + "+/" + GOOD[12:],
    "padding": GOOD + "==",
    "impossible base64 length": "AAAAA",
    "stray bits in the last character": STRAY_BITS,
    "last character changed": GOOD[:-1] + ("B" if GOOD[-1] != "B" else "C"),
    "valid base64 of junk": base64.urlsafe_b64encode(b"x" * 40).decode().rstrip("="),
    "truncated": GOOD[:-4],
    "a character changed": ("B" if GOOD[20] != "B" else "C").join((GOOD[:20], GOOD[21:])),
    "unsigned payload": base64.urlsafe_b64encode(b"2026-03-01T12:30:45.123456+00:00 42")
    .decode()
    .rstrip("="),
    "signed with another key": encode_cursor(Position(WHEN, 42), cursor_key("another secret")),
    "NUL": GOOD[:5] + "\x00" + GOOD[5:],
    "non-ASCII": GOOD[:5] + "é" + GOOD[6:],
    "newline at the end": GOOD + "\n",
    # Signed (as only the app can), yet not what the encoder writes:
    "signed, naive timestamp": signed(b"2026-03-01T12:30:45.123456 42"),
    "signed, another offset": signed(b"2026-03-01T12:30:45.123456+02:00 42"),
    "signed, no microseconds": signed(b"2026-03-01T12:30:45+00:00 42"),
    "signed, not a date": signed(b"2026-02-30T12:30:45.123456+00:00 42"),
    "signed, id 0": signed(b"2026-03-01T12:30:45.123456+00:00 0"),
    "signed, id past integer": signed(f"2026-03-01T12:30:45.123456+00:00 {MAX_ID + 1}".encode()),
    "signed, id of eleven digits": signed(b"2026-03-01T12:30:45.123456+00:00 99999999999"),
    "signed, negative id": signed(b"2026-03-01T12:30:45.123456+00:00 -4"),
    "signed, leading zero": signed(b"2026-03-01T12:30:45.123456+00:00 042"),
    "signed, NUL": signed(b"2026-03-01T12:30:45.123456+00:00 42\x00"),
    "signed, non-ASCII digits": signed("2026-03-01T12:30:45.123456+00:00 ٤٢".encode()),
    "signed, empty": signed(b""),
}


@pytest.mark.parametrize("cursor", MALFORMED.values(), ids=MALFORMED.keys())
def test_the_decoder_refuses_anything_but_a_cursor_it_wrote(cursor):
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, KEY)


def test_the_signed_helper_makes_what_the_encoder_makes():
    """So the refusals above come from the payloads, not from a wrong signature."""
    assert signed(b"2026-03-01T12:30:45.123456+00:00 42") == GOOD


def test_a_second_spelling_of_the_same_bytes_is_refused():
    """Base64 ignores the unused bits of the last character: one cursor, one spelling."""
    padded = STRAY_BITS + "=" * (-len(STRAY_BITS) % 4)
    assert base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(ODD_LENGTH + "==")
    assert decode_cursor(ODD_LENGTH, KEY) == Position(WHEN, 123)
    with pytest.raises(InvalidCursor):
        decode_cursor(STRAY_BITS, KEY)


# --- The API ---------------------------------------------------------------------------------


async def add_posts(db_session, user_id: int, count: int, **columns) -> list[int]:
    """`count` posts by one user in one statement, each newer than every post before; their
    ids (`now()` would give all the posts of a test's transaction the same date)."""
    sets = {"date_posted": "clock_timestamp()", "published": "true"}
    sets |= {name: f":{name}" for name in columns}
    rows = await db_session.execute(
        text(
            "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
            f" user_id, date_posted, published, tags) SELECT 'Post ' || g, 'Body',"
            f" '<p>Body</p>', 'Body', 1, :user_id, {sets['date_posted']}, {sets['published']},"
            f" {sets.get('tags', 'ARRAY[]::varchar[]')}"
            " FROM generate_series(1, :count) g ORDER BY g RETURNING id"
        ),
        {"user_id": user_id, "count": count, **columns},
    )
    ids = list(rows.scalars())
    await db_session.commit()
    return ids


# More pages than any test here writes: a list whose next_cursor never ends fails, not hangs.
MAX_PAGES = 100


async def all_pages(client, path: str, limit: int, **params) -> list[dict]:
    """Every page of a list, following next_cursor from the first page."""
    pages = [(await client.get(path, params={"limit": limit, **params})).json()]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) <= MAX_PAGES, "next_cursor never ends"
        cursor = pages[-1]["next_cursor"]
        response = await client.get(path, params={"limit": limit, "cursor": cursor, **params})
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def ids_of(*pages: dict) -> list[int]:
    return [post["id"] for page in pages for post in page["posts"]]


@pytest.mark.anyio
async def test_cursor_pages_continue_the_list_while_new_posts_arrive(client, alice):
    _, headers = alice
    for number in range(7):
        await create_test_post(client, headers, title=f"Post {number}")
    before = (await client.get("/api/posts", params={"limit": 100})).json()

    first = (await client.get("/api/posts", params={"limit": 3})).json()
    pages = [first]
    while pages[-1]["next_cursor"]:
        assert len(pages) < 3, "next_cursor never ends"
        await create_test_post(client, headers, title="Written meanwhile")  # newer: before it
        cursor = pages[-1]["next_cursor"]
        pages.append((await client.get("/api/posts", params={"limit": 3, "cursor": cursor})).json())

    assert ids_of(*pages) == ids_of(before)  # no gap, no duplicate, the same order
    assert [len(page["posts"]) for page in pages] == [3, 3, 1]
    assert all(page["has_more"] == (page["next_cursor"] is not None) for page in pages)
    assert pages[-1]["next_cursor"] is None and pages[-1]["has_more"] is False
    assert all(page["skip"] == 0 and page["limit"] == 3 for page in pages)
    assert [page["total"] for page in pages] == [7, 8, 9]  # the whole list, as it is now


@pytest.mark.anyio
async def test_posts_of_the_same_microsecond_are_paged_by_id(client, db_session, alice):
    user, _ = alice
    ids = await add_posts(
        db_session, user["id"], 7, date_posted=datetime(2026, 1, 1, 9, 0, 0, 1, tzinfo=UTC)
    )
    pages = await all_pages(client, "/api/posts", limit=2)
    assert ids_of(*pages) == sorted(ids, reverse=True)
    assert len(pages) == 4


@pytest.mark.anyio
async def test_a_cursor_from_an_offset_page_continues_it(client, db_session, alice):
    user, _ = alice
    ids = sorted(await add_posts(db_session, user["id"], 9), reverse=True)
    offset_page = (await client.get("/api/posts", params={"skip": 2, "limit": 3})).json()
    assert ids_of(offset_page) == ids[2:5]
    assert offset_page["has_more"] is True
    rest = (
        await client.get("/api/posts", params={"cursor": offset_page["next_cursor"], "limit": 10})
    ).json()
    assert ids_of(rest) == ids[5:]
    assert rest["next_cursor"] is None and rest["has_more"] is False


@pytest.mark.anyio
async def test_the_last_page_has_no_cursor_even_when_full(client, db_session, alice):
    user, _ = alice
    await add_posts(db_session, user["id"], 4)
    for params in ({"limit": 4}, {"limit": 2, "skip": 2}, {"limit": 10}):
        page = (await client.get("/api/posts", params=params)).json()
        assert page["next_cursor"] is None
        assert page["has_more"] is False
    empty = (await client.get("/api/posts", params={"skip": 10})).json()
    assert empty == {
        "posts": [],
        "total": 4,
        "skip": 10,
        "limit": 10,
        "has_more": False,
        "next_cursor": None,
    }


@pytest.mark.anyio
async def test_cursor_pages_of_a_tag_keep_to_the_tag(client, db_session, alice):
    user, _ = alice
    tagged = await add_posts(db_session, user["id"], 5, tags=["python"])
    await add_posts(db_session, user["id"], 4, tags=["go"])
    tagged += await add_posts(db_session, user["id"], 3, tags=["python", "web"])
    pages = await all_pages(client, "/api/posts", limit=2, tag="python")
    assert sorted(ids_of(*pages)) == sorted(tagged)
    assert ids_of(*pages) == ids_of((await client.get("/api/posts?tag=python&limit=100")).json())
    assert {page["total"] for page in pages} == {8}


@pytest.mark.anyio
async def test_cursor_pages_of_a_user_keep_to_the_user_and_hide_drafts(
    client, db_session, alice, bob
):
    user, _ = alice
    other, _ = bob
    mine = await add_posts(db_session, user["id"], 3)
    await add_posts(db_session, other["id"], 3)
    drafts = await add_posts(db_session, user["id"], 2, published=False)
    mine += await add_posts(db_session, user["id"], 3)

    for path in ("/api/posts", f"/api/users/{user['id']}/posts"):
        listed = ids_of(*await all_pages(client, path, limit=2))
        assert not set(drafts) & set(listed)
    listed = ids_of(*await all_pages(client, f"/api/users/{user['id']}/posts", limit=2))
    assert listed == ids_of((await client.get(f"/api/users/{user['id']}/posts?limit=100")).json())
    assert sorted(listed) == sorted(mine)


@pytest.mark.anyio
async def test_the_authors_own_cursor_pages_include_the_drafts(client, db_session, alice, bob):
    user, headers = alice
    other, _ = bob
    mine = await add_posts(db_session, user["id"], 3)
    await add_posts(db_session, other["id"], 2)
    mine += await add_posts(db_session, user["id"], 3, published=False)
    pages = [(await client.get("/api/users/me/posts?limit=4", headers=headers)).json()]
    cursor = pages[0]["next_cursor"]
    pages.append(
        (await client.get(f"/api/users/me/posts?limit=4&cursor={cursor}", headers=headers)).json()
    )
    assert ids_of(*pages) == sorted(mine, reverse=True)
    assert pages[-1]["next_cursor"] is None


LIST_PATHS = ["/api/posts", "/api/posts?tag=python", "/api/users/{id}/posts", "/api/users/me/posts"]


@pytest.mark.anyio
@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize("cursor", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_or_forged_cursor_is_a_422(client, alice, path, cursor):
    user, headers = alice
    response = await client.get(
        path.format(id=user["id"]), params={"cursor": cursor}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["query", "cursor"], "msg": Detail.INVALID_CURSOR, "type": "value_error"}
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("path", LIST_PATHS)
async def test_skip_with_a_cursor_is_a_422(client, db_session, alice, path):
    user, headers = alice
    await add_posts(db_session, user["id"], 3)
    cursor = await client.get(path.format(id=user["id"]), params={"limit": 1}, headers=headers)
    cursor = cursor.json()["next_cursor"]
    response = await client.get(
        path.format(id=user["id"]), params={"cursor": cursor, "skip": 1}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["query", "skip"], "msg": Detail.CURSOR_WITH_SKIP, "type": "value_error"}
    ]
    with_zero = {"cursor": cursor, "skip": 0}
    response = await client.get(path.format(id=user["id"]), params=with_zero, headers=headers)
    assert response.status_code == 200


@pytest.mark.anyio
async def test_a_search_has_no_cursor_and_refuses_one(client, db_session, alice):
    user, _ = alice
    await add_posts(db_session, user["id"], 3)
    listed = (await client.get("/api/posts", params={"limit": 1})).json()
    assert listed["next_cursor"] is not None
    searched = await client.get("/api/posts", params={"q": "post", "limit": 1})
    assert searched.status_code == 200
    assert searched.json()["has_more"] is True
    assert searched.json()["next_cursor"] is None  # relevance order: paged by skip
    response = await client.get("/api/posts", params={"q": "post", "cursor": listed["next_cursor"]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["query", "cursor"], "msg": Detail.CURSOR_WITH_SEARCH, "type": "value_error"}
    ]


@pytest.mark.anyio
async def test_a_cursor_signed_with_the_previous_secret_is_a_422(client, alice, monkeypatch):
    user, headers = alice
    for _ in range(2):
        await create_test_post(client, headers)
    cursor = (await client.get("/api/posts?limit=1")).json()["next_cursor"]
    assert (await client.get("/api/posts", params={"cursor": cursor})).status_code == 200
    monkeypatch.setattr(settings, "secret_key", SecretStr("a new secret " * 4))
    assert (await client.get("/api/posts", params={"cursor": cursor})).status_code == 422


# --- The index serves it ---------------------------------------------------------------------


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


KINDS_AND_INDEXES = [
    (ListKind(), "ix_posts_date_posted_id"),
    (ListKind(by_user=True), "ix_posts_user_id_date_posted_id"),
    (ListKind(by_user=True, as_viewer=True), "ix_posts_user_id_date_posted_id"),
]


@pytest.mark.anyio
async def test_a_cursor_page_starts_its_index_scan_at_the_cursor(engine):
    """The exact statements the routes run, on a table of 100,000 posts as production keeps it
    (committed, vacuumed, analysed; in the test's transaction the planner would count the total
    with a sequential scan, since nothing is all-visible yet): the page's index scan starts at
    the cursor (an index condition), so nothing before it is read; no sequential scan of posts.
    """
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        user_ids = list(
            await connection.scalars(
                text(
                    "INSERT INTO users (username, username_skeleton, email, password_hash)"
                    " SELECT 'explain' || g, 'explain' || g, 'explain' || g || '@example.com', '-'"
                    " FROM generate_series(1, 10) g RETURNING id"
                )
            )
        )
        try:
            await connection.execute(
                text(
                    "INSERT INTO posts (title, content, content_html, excerpt,"
                    " reading_time_minutes, user_id, date_posted)"
                    " SELECT 'Post ' || g, repeat('Lorem ipsum ', 50), '<p>Lorem</p>', 'Lorem', 1,"
                    " (:user_ids)[1 + g % 10], now() - g * interval '1 second'"
                    " FROM generate_series(1, 100000) g"
                ),
                {"user_ids": user_ids},
            )
            await connection.execute(text("VACUUM ANALYZE posts"))
            for kind, index in KINDS_AND_INDEXES:
                nodes = await plan_of_cursor_page(connection, kind, user_ids[0])
                seq_scans = [node for node in nodes if node["Node Type"] == "Seq Scan"]
                assert not [node for node in seq_scans if node["Relation Name"] == "posts"]
                [page_scan] = [node for node in nodes if "ROW(" in node.get("Index Cond", "")]
                assert page_scan["Index Name"] == index
                assert "ROW(date_posted, id) < ROW(" in page_scan["Index Cond"]
                if kind.by_user:  # the user too is found in the index, not by a filter
                    assert "user_id = " in page_scan["Index Cond"], page_scan
        finally:
            await connection.execute(
                text("DELETE FROM users WHERE id = ANY(:ids)"), {"ids": user_ids}
            )
            await connection.execute(text("VACUUM ANALYZE posts"))


async def plan_of_cursor_page(connection, kind: ListKind, user_id: int) -> list[dict]:
    """The nodes of the plan of a cursor page halfway down the list, as the route runs it."""
    page, _ = page_statement(kind, after_cursor=True)
    compiled = page.compile(dialect=connection.dialect)
    params = compiled.construct_params(
        {
            "after_date": datetime.now(UTC) - timedelta(seconds=50_000),
            "after_id": MAX_ID,
            "limit": 11,
            "user_id": user_id,
            "viewer_id": user_id,
            "known_snapshot": None,
        }
    )
    explained = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)
    return plan_nodes(explained.scalar()[0]["Plan"])
