"""The Alembic migrations build exactly the schema `models.py` describes, and run both ways."""

import uuid
import warnings
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

import models  # noqa: F401  (registers the tables)
from database import Base
from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).parent.parent


@pytest.fixture
def fresh_database_url():
    """An empty database on the test server, dropped afterwards."""
    server = make_url(TEST_DATABASE_URL)
    name = f"{server.database}_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def alembic_config(url) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["configure_logging"] = False
    return config


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
