"""Settings: the generated development secret, and what production refuses."""

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings

ENV_EXAMPLE = Path(__file__).parent.parent / ".env.example"
PRODUCTION_DB = "postgresql+psycopg://blog:secret@db.internal:5432/blog"


def test_missing_secret_key_is_generated_once_and_kept_private(tmp_path, caplog):
    first = Settings(_env_file=None, secret_key=None, data_dir=tmp_path)
    key_file = tmp_path / "secret_key"
    assert key_file.read_text() == first.secret_key.get_secret_value()
    assert len(first.secret_key.get_secret_value()) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "generated one" in caplog.text
    assert first.secret_key.get_secret_value() not in caplog.text

    second = Settings(_env_file=None, secret_key=None, data_dir=tmp_path)
    assert second.secret_key == first.secret_key


def test_placeholder_secret_key_is_replaced_in_development(tmp_path):
    settings = Settings(_env_file=None, secret_key="change-me", data_dir=tmp_path)
    assert settings.secret_key.get_secret_value() != "change-me"


@pytest.mark.parametrize("secret_key", [None, "", "change-me", "too-short-for-production"])
def test_production_refuses_a_missing_placeholder_or_short_secret_key(tmp_path, secret_key):
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=secret_key, data_dir=tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_production_accepts_a_real_secret_key(tmp_path):
    key = "k" * 48
    settings = Settings(
        _env_file=None, environment="production", secret_key=key, database_url=PRODUCTION_DB
    )
    assert settings.secret_key.get_secret_value() == key


def test_production_refuses_the_embedded_database(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(_env_file=None, environment="production", secret_key="k" * 48)


@pytest.mark.parametrize(("setting", "value"), [("db_pool_size", 0), ("db_max_overflow", -1)])
def test_a_pool_without_connections_is_refused(tmp_path, setting, value):
    with pytest.raises(ValidationError, match=setting):
        Settings(_env_file=None, data_dir=tmp_path, **{setting: value})


def test_env_example_lists_every_setting():
    listed = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and line.lstrip("# ")[:1].isupper()
    }
    assert {name.upper() for name in Settings.model_fields} <= listed


def test_secret_key_is_hidden_in_repr(tmp_path):
    settings = Settings(_env_file=None, secret_key="s" * 40, data_dir=tmp_path)
    assert "s" * 40 not in repr(settings)


def test_empty_variables_count_as_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("S3_BUCKET_NAME", "")
    monkeypatch.setenv("MAIL_SERVER", "")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert (settings.s3_bucket_name, settings.mail_server) == (None, None)


def test_readme_documents_every_setting():
    readme = (ENV_EXAMPLE.parent / "README.md").read_text()
    assert [name.upper() for name in Settings.model_fields if name.upper() not in readme] == []
