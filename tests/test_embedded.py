"""Zero setup: with no DATABASE_URL the app runs its own PostgreSQL and migrates it."""

import pgserver
import pytest
from sqlalchemy import create_engine, inspect

import database
from config import settings


@pytest.fixture
def no_database_configured(monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "database_url", None)
    monkeypatch.setattr(settings, "data_dir", tmp_path / ".data")
    yield tmp_path / ".data"
    pgserver.get_server(tmp_path / ".data" / "postgres").cleanup()  # stop it now, not at exit


def test_embedded_postgres_starts_under_data_dir_and_migrates(no_database_configured):
    url = database.database_url()
    assert (no_database_configured / "postgres" / "PG_VERSION").is_file()
    database.upgrade_to_head(url)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"users", "posts", "password_reset_tokens", "alembic_version"} <= tables
