"""A list's total is counted by PostgreSQL once per snapshot: while nothing commits, the pages
of a list reuse the count (queries.py, `fetch_page`); a commit makes them count again.

These tests need committed data and a snapshot that stays put, so they write through the app
on an engine of its own and read on a REPEATABLE READ transaction (one snapshot throughout).
"""

import json
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

import caching
import queries
from database import compiled_for_psycopg
from queries import ListKind, page_statement
from tests.conftest import (
    app_on_own_engine,
    create_test_post,
    create_user_and_login,
    one_snapshot,
)
from tests.test_cursors import plan_nodes
from tests.test_query_counts import count_statements

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    """A memo of this test's own: the values planted below never reach another test."""
    monkeypatch.setattr(queries, "counted_totals", caching.Remembered())
    monkeypatch.setattr(queries, "estimated_totals", caching.Remembered())


@pytest.fixture
async def writer(engine) -> AsyncIterator[tuple[AsyncClient, AsyncEngine, dict, dict]]:
    """The app committing for real (on the test database `engine` made), a user with two
    published posts: (client, the app's engine, user, headers)."""
    async with app_on_own_engine("totals") as (client, live_engine, _sessions):
        user, headers = await create_user_and_login(client, "totals")
        for title in ("One", "Two"):
            await create_test_post(client, headers, title=title)
        yield client, live_engine, user, headers


def plant(total: int) -> None:
    """Make every remembered total `total`: a page that shows it did not count."""
    memo = queries.counted_totals
    assert memo.values, "nothing was remembered"
    memo.values = dict.fromkeys(memo.values, total)


async def test_under_one_snapshot_a_list_is_counted_once(writer):
    client, engine, user, headers = writer
    url = f"/api/users/{user['id']}/posts"
    async with one_snapshot(engine) as (reader, _):
        assert (await reader.get(url)).json()["total"] == 2  # counted, and remembered
        assert list(queries.counted_totals.values.values()) == [2]
        plant(1000)
        page = (await reader.get(url)).json()
        assert page["total"] == 1000  # the same snapshot: the remembered count, not a new one
        assert len(page["posts"]) == 2  # the page itself is read as always
    await create_test_post(client, headers, title="Three")
    assert (await client.get(url)).json()["total"] == 3  # a commit: counted again


async def test_each_list_remembers_its_own_total(writer):
    client, engine, user, _headers = writer
    _, someone_else = await create_user_and_login(client, "totalsother")
    await create_test_post(client, someone_else, title="Three")
    async with one_snapshot(engine) as (reader, _):
        mine = (await reader.get(f"/api/users/{user['id']}/posts")).json()["total"]
        everyone = (await reader.get("/api/posts")).json()["total"]
        tagged = (await reader.get("/api/posts?tag=nothing-here")).json()["total"]
        assert (mine, everyone, tagged) == (2, 3, 0)
        # Again, from memory: each list's own count.
        assert (await reader.get(f"/api/users/{user['id']}/posts?limit=1")).json()["total"] == 2
        assert (await reader.get("/api/posts?limit=1")).json()["total"] == 3


async def test_each_search_remembers_its_own_total(writer):
    """Searches for other words under the same snapshot: each shows its own count, never the
    one remembered for another query."""
    _client, engine, _user, _headers = writer
    async with one_snapshot(engine) as (reader, _):
        totals = [
            (await reader.get("/api/posts", params={"q": q})).json()["total"]
            for q in ("one", "post", "one")
        ]
    assert totals == [1, 2, 1]  # "One" by its title; both by their content, "First post"


async def test_a_connection_that_has_written_always_counts(client, db_session):
    """The test's own transaction has written (its snapshot does not show its writes, so it
    has none to offer): every page counts, and sees the rows just written."""
    _, headers = await create_user_and_login(client, "counter")
    for expected in (1, 2, 3):
        await create_test_post(client, headers, title=f"Post {expected}")
        assert (await client.get("/api/posts")).json()["total"] == expected
    assert queries.counted_totals.values == {}


async def test_postgresql_skips_the_count_under_the_known_snapshot(writer):
    """What the memo saves: the count's subquery is never executed."""
    _client, engine, user, _headers = writer
    page, _ = page_statement(ListKind(by_user=True))
    sql, bound = compiled_for_psycopg(page)
    params = {**bound, "skip": 0, "limit": 11, "user_id": user["id"]}
    async with one_snapshot(engine) as (_, connection):
        snapshot = await connection.exec_driver_sql(caching.SNAPSHOT)
        values = list(snapshot.one())  # the snapshot, and the next scheduled moment
        known = caching.snapshot_key(values[0], values[1])
        counts = {}
        for known_snapshot in (None, known):
            plan = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}",
                {**params, "known_snapshot": known_snapshot},
            )
            nodes = plan_nodes(plan.scalar_one()[0]["Plan"])
            [count] = [
                node
                for node in nodes  # not the comment counts: a SubPlan, run for each post
                if node["Node Type"] == "Aggregate"
                and node["Parent Relationship"] == "InitPlan"
                # nor the snapshot's next scheduled moment (a min(), an aggregate too where
                # PostgreSQL does not turn it into an index probe with a LIMIT)
                and "date_posted > statement_timestamp()" not in json.dumps(node)
            ]
            counts[known_snapshot] = count["Actual Loops"]
    assert counts == {None: 1, known: 0}


async def test_under_one_snapshot_a_list_past_the_counted_bound_is_estimated_once(
    writer, monkeypatch
):
    """Past COUNTED_UP_TO the total is the planner's estimate: a round trip of its own, made
    once per snapshot like the count, not on every page."""
    _client, engine, _user, _headers = writer
    monkeypatch.setattr(queries, "COUNTED_UP_TO", 2)  # the writer's two posts reach it
    async with one_snapshot(engine) as (reader, _):
        with count_statements() as statements:
            first = (await reader.get("/api/posts")).json()
            again = (await reader.get("/api/posts")).json()
    estimates = [statement for statement in statements if statement.startswith("EXPLAIN")]
    assert len(estimates) == 1
    assert first["total"] == again["total"] >= 2
