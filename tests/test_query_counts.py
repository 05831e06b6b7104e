"""Every read runs a fixed number of SQL statements, whatever the page size (no N+1), and the
public reads run them without a transaction around them."""

from contextlib import aclosing, contextmanager

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import select, text
from starlette.requests import Request

import models
from database import engine, get_db, get_read_db, read_engine
from main import app
from queries import COUNTED_UP_TO
from tests.conftest import create_test_user

pytestmark = pytest.mark.anyio

POSTS_PER_AUTHOR = 60


@contextmanager
def count_statements():
    """The queries (SELECT, EXPLAIN) sent to PostgreSQL inside the block, through SQLAlchemy or
    on psycopg directly (database.fetch_all), not the test's SAVEPOINTs."""
    statements = []
    execute = psycopg.AsyncCursor.execute

    async def record(cursor, query, *args, **kwargs):
        if str(query).lstrip().upper().startswith(("SELECT", "EXPLAIN")):
            statements.append(str(query))
        return await execute(cursor, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.AsyncCursor, "execute", record)
        yield statements


@pytest.fixture
async def authors(client, db_session) -> list[dict]:
    """Three authors with many posts each, so a page of 100 has three different authors."""
    users = [await create_test_user(client, name) for name in ("alice", "bob", "carol")]
    db_session.add_all(
        models.Post(title=f"Post {i}", content="Body", user_id=user["id"])
        for user in users
        for i in range(POSTS_PER_AUTHOR)
    )
    await db_session.commit()
    return users


async def statements_for(client, url: str) -> int:
    with count_statements() as statements:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return len(statements)


async def test_posts_list_runs_the_same_queries_for_one_post_or_a_hundred(client, engine, authors):
    one = await statements_for(client, "/api/posts?limit=1")
    hundred = await statements_for(client, "/api/posts?limit=100")
    assert one == hundred == 1  # the page with its authors and the total


async def test_user_posts_run_the_same_queries_for_one_post_or_a_hundred(client, engine, authors):
    user_id = authors[0]["id"]
    one = await statements_for(client, f"/api/users/{user_id}/posts?limit=1")
    hundred = await statements_for(client, f"/api/users/{user_id}/posts?limit=100")
    assert one == hundred == 2  # the user, then the page with its authors and the total


async def test_a_profile_is_read_in_one_query_by_the_public(client, engine, authors):
    """Anonymous readers cost no query for who they are: the profile alone."""
    assert await statements_for(client, f"/api/users/{authors[0]['id']}") == 1


async def test_a_page_past_the_end_counts_in_a_second_query(client, engine, authors):
    assert await statements_for(client, "/api/posts?skip=1000") == 2


async def test_a_large_list_estimates_its_total_in_one_more_query(client, engine, db_session):
    """Past COUNTED_UP_TO posts the page stops counting and asks the planner, whatever the
    table holds: two queries (three for a user's posts, with the user)."""
    user = await create_test_user(client, "dave")
    await db_session.execute(
        text(
            "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
            " user_id, date_posted)"
            " SELECT 'Post', 'Body', '<p>Body</p>', 'Body', 1, :user_id, now()"
            " FROM generate_series(1, :count)"
        ),
        {"user_id": user["id"], "count": COUNTED_UP_TO},
    )
    await db_session.commit()
    assert await statements_for(client, "/api/posts?limit=100") == 2
    assert await statements_for(client, f"/api/users/{user['id']}/posts") == 3


async def test_a_post_is_read_with_its_author_in_one_query(client, engine, authors):
    page = (await client.get("/api/posts?limit=1")).json()
    post_id = page["posts"][0]["id"]
    assert await statements_for(client, f"/api/posts/{post_id}") == 1


async def test_public_reads_run_without_begin_or_rollback():
    """The read connection is in autocommit mode: a read leaves no transaction to roll back."""
    async with aclosing(get_db()) as sessions:
        session = await anext(sessions)
        async with aclosing(get_read_db(session, Request({"type": "http"}))) as connections:
            connection = await anext(connections)
            await connection.execute(select(models.Post.id).limit(1))
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None
            assert raw.driver_connection.info.transaction_status == TransactionStatus.IDLE
        assert not session.in_transaction()  # the session itself never touched the database
    await read_engine.dispose()


async def test_sessions_still_read_inside_a_transaction():
    async with aclosing(get_db()) as sessions:
        session = await anext(sessions)
        await session.execute(select(models.Post.id).limit(1))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None
        assert raw.driver_connection.info.transaction_status == TransactionStatus.INTRANS
    await engine.dispose()


@pytest.mark.parametrize("path", ["/api/users/{id}/posts", "/users/{id}/posts"])
async def test_a_read_takes_one_connection_however_many_of_its_parts_read(
    client, db_session, authors, path
):
    """The user check and the page share the request's one read connection (and its one
    turn): two per request could leave every request holding one and waiting for another."""
    handed_out = []

    async def counting_read_db():
        handed_out.append(db_session.bind)
        yield db_session.bind

    app.dependency_overrides[get_read_db] = counting_read_db
    response = await client.get(path.format(id=authors[0]["id"]))
    assert response.status_code == 200
    assert len(handed_out) == 1


@pytest.fixture
async def discussed(client, db_session, authors) -> list[int]:
    """Every post tagged and commented on by every author: what a page shows grows, and the
    number of statements must not."""
    posts = (await db_session.scalars(select(models.Post))).all()
    for post in posts:
        post.tags = ["talk", f"by-{post.user_id}"]
    db_session.add_all(
        models.Comment(post_id=post.id, user_id=author["id"], content="Agreed")
        for post in posts
        for author in authors
    )
    await db_session.commit()
    return [post.id for post in posts]


async def test_posts_with_tags_and_comment_counts_still_take_one_query(client, engine, discussed):
    one = await statements_for(client, "/api/posts?limit=1")
    hundred = await statements_for(client, "/api/posts?limit=100")
    tagged = await statements_for(client, "/api/posts?tag=talk&limit=100")
    assert one == hundred == tagged == 1
    page = (await client.get("/api/posts?limit=100")).json()
    assert {post["comment_count"] for post in page["posts"]} == {3}


async def test_comments_run_the_same_queries_for_one_or_a_hundred(client, engine, discussed):
    post_id = discussed[0]
    one = await statements_for(client, f"/api/posts/{post_id}/comments?limit=1")
    all_ = await statements_for(client, f"/api/posts/{post_id}/comments?limit=100")
    assert one == all_ == 2  # the post's visibility, then the page with authors and total


async def test_a_post_page_with_its_comments_runs_a_fixed_number_of_queries(
    client, engine, discussed
):
    assert await statements_for(client, f"/posts/{discussed[0]}") == 2


async def test_a_tag_page_runs_one_query(client, engine, discussed):
    assert await statements_for(client, "/tags/talk") == 1


async def test_my_posts_run_a_fixed_number_of_queries(client, engine, authors):
    from tests.conftest import auth_header, login_user

    headers = auth_header(await login_user(client, authors[0]["email"]))
    for limit in (1, 100):
        with count_statements() as statements:
            response = await client.get(f"/api/users/me/posts?limit={limit}", headers=headers)
        assert response.status_code == 200
        assert len(statements) == 2  # the user, then the page


@pytest.mark.parametrize(
    ("path", "written"),
    [
        ("/api/posts?limit=7", "LIMIT 8 OFFSET 0"),  # one more: whether a next page exists
        ("/api/posts/{post}/comments?skip=2&limit=7", "LIMIT 7 OFFSET 2"),
    ],
)
async def test_a_page_s_limit_and_offset_are_written_in_its_sql(client, discussed, path, written):
    """Not parameters: each page size and depth is a statement of its own, which psycopg
    prepares and PostgreSQL then plans once (a generic plan), not on every request
    (database.fetch_all)."""
    with count_statements() as statements:
        response = await client.get(path.format(post=discussed[0]))
    assert response.status_code == 200
    assert [statement for statement in statements if written in statement]
