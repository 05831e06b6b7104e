"""Settings: the generated development secret, and what production refuses."""

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import MIN_SECRET_KEY_BITS, Settings, estimated_entropy_bits

ENV_EXAMPLE = Path(__file__).parent.parent / ".env.example"
PRODUCTION_DB = "postgresql+psycopg://blog:secret@db.internal:5432/blog"

# Long enough, but guessable: one character, two, a word or a counting pattern repeated.
PREDICTABLE_KEYS = [
    "a" * 64,
    "k" * 48,
    "ab" * 40,
    "password" * 8,
    "secret-key" * 7,
    "0123456789" * 7,
    "Ab1!" * 16,
    "my-jwt-secret-" * 4,
]
# Made with secrets.token_urlsafe(32), token_urlsafe(24), token_hex(32) and token_hex(16).
RANDOM_KEYS = [
    "8veH0Qt4zj6DD0OtcaI88iMNSjqZ1N50GvpMjt5gsMA",
    "0hcUp6p-7QFMGpXb8-ETY6bVWSUTWIg2",
    "0d67078d69e8f6b1641b3f77328b007e48e212586ca6b20b3019f0ec0a1b10fd",
    "0b1f6b5e9f3d2a47c8e16d03a9b2f574",
]
PRODUCTION: dict[str, Any] = {
    "_env_file": None,
    "environment": "production",
    "secret_key": RANDOM_KEYS[0],
    "database_url": PRODUCTION_DB,
    "mail_server": "smtp.example.com",
    "frontend_url": "https://blog.example.com",
}


def test_missing_secret_key_is_generated_once_and_kept_private(tmp_path, caplog):
    first = Settings(_env_file=None, secret_key=None, data_dir=tmp_path)
    key_file = tmp_path / "secret_key"
    assert key_file.read_text() == first.jwt_secret
    assert len(first.jwt_secret) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "generated one" in caplog.text
    assert first.jwt_secret not in caplog.text

    second = Settings(_env_file=None, secret_key=None, data_dir=tmp_path)
    assert second.secret_key == first.secret_key


def test_placeholder_secret_key_is_replaced_in_development(tmp_path):
    settings = Settings(_env_file=None, secret_key="change-me", data_dir=tmp_path)
    assert settings.jwt_secret != "change-me"


@pytest.mark.parametrize("secret_key", [None, "", "change-me", "too-short-for-production"])
def test_production_refuses_a_missing_placeholder_or_short_secret_key(tmp_path, secret_key):
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=secret_key, data_dir=tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_production_accepts_a_real_secret_key(tmp_path):
    settings = Settings(**PRODUCTION)
    assert settings.jwt_secret == RANDOM_KEYS[0]


def test_production_refuses_the_embedded_database(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(**{**PRODUCTION, "database_url": None})


@pytest.mark.parametrize("secret_key", PREDICTABLE_KEYS)
def test_production_refuses_a_long_but_predictable_secret_key(secret_key):
    with pytest.raises(ValidationError, match="SECRET_KEY is too predictable") as refused:
        Settings(**{**PRODUCTION, "secret_key": secret_key})
    assert secret_key[:8] not in str(refused.value)  # the error never quotes the key


@pytest.mark.parametrize("secret_key", RANDOM_KEYS)
def test_production_accepts_random_secret_keys(secret_key):
    settings = Settings(**{**PRODUCTION, "secret_key": secret_key})
    assert settings.jwt_secret == secret_key


@pytest.mark.parametrize("secret_key", PREDICTABLE_KEYS)
def test_entropy_estimate_of_predictable_keys_is_below_the_bar(secret_key):
    assert estimated_entropy_bits(secret_key) < MIN_SECRET_KEY_BITS


@pytest.mark.parametrize("secret_key", RANDOM_KEYS)
def test_entropy_estimate_of_random_keys_is_above_the_bar(secret_key):
    assert estimated_entropy_bits(secret_key) >= MIN_SECRET_KEY_BITS


def test_entropy_estimate_of_nothing_is_zero():
    assert estimated_entropy_bits("") == 0


def test_production_refuses_to_start_without_a_mail_server():
    """Without one, reset mails (live links with their tokens) would be written to the log."""
    with pytest.raises(ValidationError, match="MAIL_SERVER must be set"):
        Settings(**{**PRODUCTION, "mail_server": None})


@pytest.mark.parametrize(
    "frontend_url",
    ["http://blog.example.com", "http://localhost:8000", "https://", "blog.example.com", "ftp://x"],
)
def test_production_refuses_a_frontend_url_that_is_not_https(frontend_url):
    with pytest.raises(ValidationError, match="FRONTEND_URL must be an https://"):
        Settings(**{**PRODUCTION, "frontend_url": frontend_url})


def test_development_needs_no_mail_server_nor_https(tmp_path):
    settings = Settings(
        _env_file=None, data_dir=tmp_path, mail_server=None, frontend_url="http://localhost:8000"
    )
    assert settings.mail_server is None


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
