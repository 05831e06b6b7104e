"""The Alembic migrations build exactly the schema `models.py` describes, and run both ways."""

import warnings

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import models  # noqa: F401  (registers the tables)
from database import Base
from tests.servers import alembic_config, own_database


@pytest.fixture
def fresh_database_url():
    """An empty database on the test server, dropped afterwards."""
    with own_database("migrations") as url:
        yield url


def schema_differences(url) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # alembic notes that it skips expression indexes
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def index_definitions(url) -> dict[str, str]:
    """Every index as PostgreSQL spells it: catches expression indexes that autogenerate skips."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
            return dict(rows.all())
    finally:
        engine.dispose()


def test_migrations_build_the_models_schema(fresh_database_url):
    command.upgrade(alembic_config(fresh_database_url), "head")
    assert schema_differences(fresh_database_url) == []


def test_migrations_build_the_same_indexes_as_the_models(fresh_database_url):
    command.upgrade(alembic_config(fresh_database_url), "head")
    migrated = index_definitions(fresh_database_url)
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        Base.metadata.create_all(conn)
    engine.dispose()
    assert index_definitions(fresh_database_url) == migrated
    assert "lower((username)::text)" in migrated["uq_users_username_lower"]
    assert "UNIQUE" in migrated["uq_users_email_lower"]
    assert "date_posted DESC, id DESC" in migrated["ix_posts_date_posted_id"]


def test_downgrade_to_base_and_upgrade_again(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_engine(fresh_database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    command.upgrade(config, "head")
    assert schema_differences(fresh_database_url) == []


def test_upgrade_renders_existing_posts_and_keeps_them_published(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "5d1916e1dd2a")
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        user_id = conn.scalar(
            text(
                "INSERT INTO users (username, email, password_hash)"
                " VALUES ('old', 'old@example.com', 'x') RETURNING id"
            )
        )
        conn.execute(
            text(
                "INSERT INTO posts (title, content, user_id, date_posted)"
                " VALUES ('Old', 'Some **bold** <script>x</script>', :user, '2020-01-02T03:04:05Z')"
            ),
            {"user": user_id},
        )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        post = conn.execute(text("SELECT * FROM posts")).mappings().one()
    engine.dispose()
    assert (
        post["content_html"] == "<p>Some <strong>bold</strong> &lt;script&gt;x&lt;/script&gt;</p>\n"
    )
    assert post["excerpt"] == "Some bold <script>x</script>"
    assert post["reading_time_minutes"] == 1
    assert post["published"] is True and post["tags"] == []
    assert post["updated_at"] == post["first_published_at"] == post["date_posted"]


def test_downgrade_refuses_to_make_drafts_public(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "head")
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        user_id = conn.scalar(
            text(
                "INSERT INTO users (username, username_skeleton, email, password_hash)"
                " VALUES ('d', 'd', 'd@example.com', 'x') RETURNING id"
            )
        )
        conn.execute(
            text(
                "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
                " user_id, published) VALUES ('Draft', 'x', '<p>x</p>', 'x', 1, :user, false)"
            ),
            {"user": user_id},
        )
    with pytest.raises(RuntimeError, match="would become public"):
        command.downgrade(config, "base")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM posts WHERE NOT published")) == 1
    engine.dispose()


def test_username_skeleton_migration_backfills_and_renames_later_look_alikes(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "5d1916e1dd2a")
    # Allowed before: they differ in lower() but look alike. The oldest keeps its name.
    names = ["alice", "\u0430lice", "\uff41\uff4c\uff49\uff43\uff45", "ALICE\u200b", "bob"]
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        for n, name in enumerate(names):
            conn.execute(
                text(
                    "INSERT INTO users (username, email, password_hash) VALUES (:name, :email, 'x')"
                ),
                {"name": name, "email": f"user{n}@example.com"},
            )
    command.upgrade(config, "d4a9c3e8b2f0")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, username, username_skeleton FROM users ORDER BY id")
        ).all()
    engine.dispose()
    ids = [row.id for row in rows]
    assert [(row.username, row.username_skeleton) for row in rows] == [
        ("alice", "alice"),
        (f"\u0430lice-{ids[1]}", f"alice-{ids[1]}"),
        (f"\uff41\uff4c\uff49\uff43\uff45-{ids[2]}", f"alice-{ids[2]}"),
        (f"ALICE\u200b-{ids[3]}", f"alice-{ids[3]}"),
        ("bob", "bob"),
    ]
    assert "UNIQUE" in index_definitions(fresh_database_url)["uq_users_username_skeleton"]


def test_confusable_letters_migration_renames_later_look_alikes_and_goes_back(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "0c4e7d2a9f13")
    engine = create_engine(fresh_database_url)
    names = ["alice", "aIice", "b0b", "bob", "carol"]  # the 2nd and 4th look like older ones
    with engine.begin() as conn:
        for n, name in enumerate(names):
            conn.execute(
                text(
                    "INSERT INTO users (username, username_skeleton, email, password_hash)"
                    " VALUES (:name, :old_key, :email, 'x')"
                ),
                {"name": name, "old_key": f"{name}-old", "email": f"user{n}@example.com"},
            )
    command.upgrade(config, "e5f2a8c4b7d3")
    select_users = text("SELECT id, username, username_skeleton FROM users ORDER BY id")
    with engine.connect() as conn:
        rows = conn.execute(select_users).all()
    ids = [row.id for row in rows]
    assert [(row.username, row.username_skeleton) for row in rows] == [
        ("alice", "allce"),
        (f"aIice-{ids[1]}", f"allce-{ids[1]}"),
        ("b0b", "bob"),
        (f"bob-{ids[3]}", f"bob-{ids[3]}"),
        ("carol", "carol"),
    ]
    assert "UNIQUE" in index_definitions(fresh_database_url)["uq_users_username_skeleton"]
    command.downgrade(config, "0c4e7d2a9f13")
    with engine.connect() as conn:
        rows = conn.execute(select_users).all()
    engine.dispose()
    assert [row.username_skeleton for row in rows] == [
        "alice", f"aiice-{ids[1]}", "bOb", f"bob-{ids[3]}", "carol"
    ]  # fmt: skip
    assert "UNIQUE" in index_definitions(fresh_database_url)["uq_users_username_skeleton"]


def test_search_migration_computes_the_vector_of_existing_posts_and_goes_back(fresh_database_url):
    config = alembic_config(fresh_database_url)
    command.upgrade(config, "113ab9ab39ca")
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        user_id = conn.scalar(
            text(
                "INSERT INTO users (username, username_skeleton, email, password_hash)"
                " VALUES ('s', 's', 's@example.com', 'x') RETURNING id"
            )
        )
        conn.execute(
            text(
                "INSERT INTO posts (title, content, content_html, excerpt, reading_time_minutes,"
                " user_id, tags) VALUES ('Running', 'cats', '', '', 1, :user, '{testing}')"
            ),
            {"user": user_id},
        )
    command.upgrade(config, "0c4e7d2a9f13")
    with engine.connect() as conn:
        vector = conn.scalar(text("SELECT search_vector::text FROM posts"))
    assert vector == "'cat':3C 'run':1A 'test':2B"
    command.downgrade(config, "113ab9ab39ca")
    with engine.connect() as conn:
        assert "search_vector" not in conn.scalar(text("SELECT to_jsonb(posts) FROM posts"))
        assert conn.scalar(text("SELECT to_regproc('post_search_vector')")) is None
    engine.dispose()


def search_vector_definition(url) -> tuple[str, str]:
    """The function behind posts.search_vector and the column's generation expression."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            function = conn.scalar(text("SELECT pg_get_functiondef('post_search_vector'::regproc)"))
            expression = conn.scalar(
                text(
                    "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
                    " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                    " WHERE d.adrelid = 'posts'::regclass AND a.attname = 'search_vector'"
                )
            )
            return function, expression
    finally:
        engine.dispose()


def test_migrations_and_models_compute_the_search_vector_alike(fresh_database_url):
    command.upgrade(alembic_config(fresh_database_url), "head")
    migrated = search_vector_definition(fresh_database_url)
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        Base.metadata.create_all(conn)
    engine.dispose()
    assert search_vector_definition(fresh_database_url) == migrated
    function, expression = migrated
    assert "IMMUTABLE" in function and "'english'::regconfig" in function
    assert expression == "post_search_vector(title, tags, content)"


# --- The accounts migrations (a7c1e3f5b9d2, b8d2f4a6c0e3) on a database in use -----------------

BEFORE_ACCOUNTS = "f1c3b5d7e9a2"  # sessions: the revision a7c1e3f5b9d2 (accounts) follows


def insert_row(conn, table: str, **values) -> int:
    """One row of `table`, with the columns the revision at hand has; its id."""
    columns, params = ", ".join(values), ", ".join(f":{name}" for name in values)
    statement = f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING id"
    return conn.scalar(text(statement), values)


def insert_writer(conn, name: str) -> tuple[int, int]:
    """A user with a published post, as the schema before the accounts migrations has them:
    the user's id and the post's."""
    user = insert_row(conn, "users", username=name, username_skeleton=name,
                      email=f"{name}@example.com", password_hash="x")  # fmt: skip
    post = insert_row(conn, "posts", title=f"By {name}", content="x", content_html="<p>x</p>",
                      excerpt="x", reading_time_minutes=1, user_id=user)  # fmt: skip
    return user, post


def rows(engine, query: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


def accounts_comments_and_posts(engine) -> tuple[list[tuple], ...]:
    """What the accounts migrations added, row by row, oldest first."""
    accounts = "SELECT username, email_verified, role, pending_email, suspended_at FROM users"
    return (
        rows(engine, f"{accounts} ORDER BY id"),
        rows(engine, "SELECT content, status FROM comments ORDER BY id"),
        rows(engine, "SELECT title, author_suspended FROM posts ORDER BY id"),
    )


def an_old_blog(config, engine) -> None:
    """At the revision before the accounts migrations: two writers, comments under a post."""
    command.upgrade(config, BEFORE_ACCOUNTS)
    with engine.begin() as conn:
        ada, post = insert_writer(conn, "ada")
        bob, _ = insert_writer(conn, "bob")
        for user, content in ((bob, "From Bob"), (ada, "From Ada")):
            insert_row(conn, "comments", post_id=post, user_id=user, content=content)


OLD_BLOG_MIGRATED = (
    [("ada", True, "author", None, None), ("bob", True, "author", None, None)],
    [("From Bob", "approved"), ("From Ada", "approved")],
    [("By ada", False), ("By bob", False)],
)


def test_existing_accounts_become_verified_authors_and_comments_approved(fresh_database_url):
    """They registered before verification existed, and everyone saw the comments already."""
    config, engine = alembic_config(fresh_database_url), create_engine(fresh_database_url)
    an_old_blog(config, engine)
    command.upgrade(config, "head")
    assert accounts_comments_and_posts(engine) == OLD_BLOG_MIGRATED
    # An account made from now on has its address to prove.
    with engine.begin() as conn:
        insert_row(conn, "users", username="new", username_skeleton="new",
                   email="new@example.com", password_hash="x")  # fmt: skip
    accounts, _, _ = accounts_comments_and_posts(engine)
    engine.dispose()
    assert accounts[-1] == ("new", False, "author", None, None)


def test_accounts_migrations_go_down_and_up_again_keeping_the_rows(fresh_database_url):
    config, engine = alembic_config(fresh_database_url), create_engine(fresh_database_url)
    an_old_blog(config, engine)
    command.upgrade(config, "head")
    command.downgrade(config, BEFORE_ACCOUNTS)
    schema = inspect(engine)
    assert {"email_verification_tokens", "comment_reports"}.isdisjoint(schema.get_table_names())
    added = {"email_verified", "pending_email", "role", "suspended_at"}
    assert added.isdisjoint(column["name"] for column in schema.get_columns("users"))
    assert "status" not in {column["name"] for column in schema.get_columns("comments")}
    assert "author_suspended" not in {column["name"] for column in schema.get_columns("posts")}
    kept = rows(engine, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts),"
                        " (SELECT count(*) FROM comments)")  # fmt: skip
    assert kept == [(2, 2, 2)]
    command.upgrade(config, "head")
    assert accounts_comments_and_posts(engine) == OLD_BLOG_MIGRATED
    engine.dispose()
    assert schema_differences(fresh_database_url) == []


def test_posts_of_accounts_suspended_before_b8d2f4a6c0e3_are_flagged_by_it(fresh_database_url):
    config, engine = alembic_config(fresh_database_url), create_engine(fresh_database_url)
    command.upgrade(config, "a7c1e3f5b9d2")
    with engine.begin() as conn:
        insert_writer(conn, "kept")
        suspended, _ = insert_writer(conn, "gone")
        conn.execute(
            text("UPDATE users SET suspended_at = now() WHERE id = :id"), {"id": suspended}
        )
    command.upgrade(config, "b8d2f4a6c0e3")
    flags = rows(engine, "SELECT title, author_suspended FROM posts ORDER BY id")
    engine.dispose()
    assert flags == [("By kept", False), ("By gone", True)]
    public = "WHERE (published AND (NOT author_suspended))"
    assert public in index_definitions(fresh_database_url)["ix_posts_date_posted_id"]


@pytest.mark.parametrize(
    "held_back",
    [
        "UPDATE comments SET status = 'hidden' WHERE content = 'From Bob'",
        "UPDATE comments SET status = 'pending' WHERE content = 'From Ada'",
        "UPDATE users SET suspended_at = now() WHERE username = 'bob'",
    ],
)
def test_accounts_downgrade_refuses_to_make_what_is_held_back_public(fresh_database_url, held_back):
    """The old schema has no comment status and no suspension: a hidden or pending comment, or a
    suspended account and all it wrote, would show to everyone."""
    config, engine = alembic_config(fresh_database_url), create_engine(fresh_database_url)
    an_old_blog(config, engine)
    command.upgrade(config, "head")
    with engine.begin() as conn:
        conn.execute(text(held_back))
    version = rows(engine, "SELECT version_num FROM alembic_version")
    with pytest.raises(RuntimeError, match="would become public"):
        command.downgrade(config, BEFORE_ACCOUNTS)
    # Nothing went: the downgrade runs in one transaction.
    assert rows(engine, "SELECT version_num FROM alembic_version") == version
    engine.dispose()
