"""Settings, read from the environment and `.env` (see `.env.example`)."""

import logging
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "your-secret-key-here"}


class Settings(BaseSettings):
    # An empty variable counts as unset, so `S3_BUCKET_NAME=` in .env means "use local disk".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    environment: Literal["development", "production"] = "development"
    # Unset: an embedded PostgreSQL server is started under `data_dir` (development only).
    database_url: str | None = None
    # Per pool; a worker has two (database.py). Overflow connections are closed when returned,
    # so a steady load above the pool size would open one PostgreSQL backend per request.
    db_pool_size: Annotated[int, Field(ge=1)] = 5
    db_max_overflow: Annotated[int, Field(ge=0)] = 0
    # Unset: generated once and kept in `data_dir/secret_key` (development only).
    secret_key: SecretStr | None = None
    data_dir: Path = Path(".data")

    access_token_expire_minutes: int = 30
    reset_token_expire_minutes: int = 60
    max_upload_size_bytes: int = 5 * 1024 * 1024
    posts_per_page: int = 10

    rate_limit_enabled: bool = True
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/minute"
    rate_limit_password_reset: str = "5/minute"
    cors_origins: list[str] = []

    # Unset: argon2 parameters recommended by pwdlib. Tests use cheap ones.
    argon2_time_cost: int | None = None
    argon2_memory_cost: int | None = None
    argon2_parallelism: int | None = None
    # How many password hashes may run at once per worker (each takes 64 MB and a core).
    password_hash_concurrency: int = 1
    # Nice value of the hashing threads (Linux; 0 = as the app): hashes get the CPU time the
    # reads leave idle, so a burst of logins does not slow every other request down.
    password_hash_niceness: int = 19

    # Unset: pictures are stored on local disk under `media_dir` and served at /media.
    s3_bucket_name: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_endpoint_url: str | None = None
    media_dir: Path = Path("media")

    # Unset MAIL_SERVER: reset mails are written to the log instead of sent.
    mail_server: str | None = None
    mail_port: int = 587
    mail_username: str | None = None
    mail_password: SecretStr | None = None
    mail_from: str = "noreply@example.com"
    mail_use_tls: bool = True
    frontend_url: str = "http://localhost:8000"

    # GET /metrics for Prometheus (metrics.py); false: no route, no per-request counting.
    metrics_enabled: bool = True
    # Where each worker writes its metrics files. Unset: a folder of this server's own under
    # `data_dir/metrics`. Set (and emptied before each start) for gunicorn.
    prometheus_multiproc_dir: Path | None = None
    # text: one readable line per record; json: one JSON object a line, for log collectors.
    log_format: Literal["text", "json"] = "text"
    # A streaming replica for the public reads (database.py's read engine). Unset: DATABASE_URL.
    # Writes, and a logged-in user's reads of their own data, always go to DATABASE_URL.
    read_database_url: str | None = None

    @model_validator(mode="after")
    def _secret_key(self) -> "Settings":
        given = self.secret_key.get_secret_value() if self.secret_key else ""
        if given.strip().lower() in PLACEHOLDER_SECRETS:
            if self.environment == "production":
                raise ValueError("SECRET_KEY must be set to a random value in production")
            self.secret_key = SecretStr(load_or_create_secret_key(self.data_dir / "secret_key"))
        elif self.environment == "production" and len(given) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters in production")
        if self.environment == "production" and not self.database_url:
            raise ValueError("DATABASE_URL must be set in production (no embedded database)")
        return self


def load_or_create_secret_key(path: Path) -> str:
    """Development only: keep one random key on disk so tokens survive a restart."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    logger.warning("SECRET_KEY is not set: generated one and stored it in %s", path)
    return key


settings = Settings()
