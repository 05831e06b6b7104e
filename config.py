"""Settings, read from the environment and `.env` (see `.env.example`)."""

import logging
import math
import secrets
import zlib
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "your-secret-key-here"}
RATE_LIMIT_STORAGE_SCHEMES = {"memory", "redis", "rediss"}
# What a production SECRET_KEY must score in `estimated_entropy_bits`. The estimate is low for
# short random keys (32 random hex characters, 128 true bits, score 84 to 140; 43 URL-safe
# ones score 180 to 230), and keys of repeated words or few characters score under 60.
MIN_SECRET_KEY_BITS = 80


class Settings(BaseSettings):
    # An empty variable counts as unset, so `S3_BUCKET_NAME=` in .env means "use local disk".
    # Errors never quote the input: a refused SECRET_KEY must not reach the startup log.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_ignore_empty=True, hide_input_in_errors=True
    )

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
    # A session (one login) lasts this long: its refresh tokens and its cookie (sessions.py).
    refresh_token_expire_days: Annotated[int, Field(ge=1)] = 30
    # Unset: the session cookies are `Secure` in production, not in development (plain http).
    session_cookie_secure: bool | None = None
    # Unset: on in production, off in development. On: unverified users write drafts only.
    email_verification_required: bool | None = None
    email_verification_expire_hours: Annotated[int, Field(ge=1)] = 48
    # off: every comment shows at once; first: until one of the user's is approved; all.
    comment_moderation: Literal["off", "first", "all"] = "off"
    # Reports by this many users send a comment back to the moderation queue.
    comment_report_threshold: Annotated[int, Field(ge=1)] = 3
    # The site's own name and one line about it: page titles and headers, feeds, og:site_name.
    site_name: Annotated[str, Field(min_length=1, max_length=100)] = "Blog"
    site_description: Annotated[str, Field(max_length=300)] = ""
    # What one account may store of pictures for posts, all of them together.
    post_image_quota_bytes: Annotated[int, Field(ge=0)] = 100 * 1024 * 1024
    max_upload_size_bytes: int = 5 * 1024 * 1024
    posts_per_page: int = 10

    # Unset: on in production, off in development (ratelimit.py has the limits).
    rate_limit_enabled: bool | None = None
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
    # Runs of a mail's job before it is given up on (jobs.py: waits of 5 s doubling to 10 min).
    mail_max_attempts: Annotated[int, Field(ge=1)] = 20
    # The queue's worker runs in the app's process; false: `python -m worker` runs it apart.
    run_worker_in_app: bool = True

    # `memory://` (one process) or `redis://host:port/db` (shared by every worker and machine).
    rate_limit_storage_url: str = "memory://"
    # Per account (the lower-cased email), on top of the per-client limits above.
    rate_limit_login_account: str = "20/hour"
    rate_limit_password_reset_account: str = "3/hour"
    # Per logged-in user.
    rate_limit_password_change: str = "5/hour"
    rate_limit_upload: str = "10/hour"
    rate_limit_post: str = "30/hour"
    # Each renders Markdown: edits of posts (PUT, PATCH) and previews, per logged-in user.
    rate_limit_post_write: str = "60/hour"
    rate_limit_preview: str = "30/minute"
    # Per client, on password changes and profile changes (which check the password when the
    # email changes; login has its own limit above).
    rate_limit_password_check: str = "10/minute"
    # Per account: verification mails asked for again; pictures uploaded for posts.
    rate_limit_verification_email: str = "3/hour"
    rate_limit_post_image: str = "30/hour"
    # Per client, for writing comments.
    rate_limit_comment: str = "10/minute"

    @field_validator(
        "rate_limit_login",
        "rate_limit_register",
        "rate_limit_password_reset",
        "rate_limit_login_account",
        "rate_limit_password_reset_account",
        "rate_limit_password_change",
        "rate_limit_upload",
        "rate_limit_post",
        "rate_limit_post_write",
        "rate_limit_preview",
        "rate_limit_password_check",
        "rate_limit_verification_email",
        "rate_limit_post_image",
        "rate_limit_comment",
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        limits.parse(value)  # "10/minute", "100 per hour"...; a ValueError names the bad one
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        if urlsplit(value).scheme not in RATE_LIMIT_STORAGE_SCHEMES:
            raise ValueError("must start with memory://, redis:// or rediss://")
        return value

    # Back-pressure: how many requests may wait for a password hash / for image processing
    # (per worker) beyond those running. One more gets a 503 with Retry-After at once instead
    # of joining a queue it would leave only after the client gave up. A waiting hash holds no
    # connection and little memory: 64 hashes of pwdlib's argon2 are 5 to 20 seconds of work
    # on one thread. A waiting upload holds its body (up to MAX_UPLOAD_SIZE_BYTES).
    password_hash_max_waiting: Annotated[int, Field(ge=0)] = 64
    # Hashes one account may have running or waiting at once (per worker): one more gets a 429
    # at once, so a flood aimed at one account holds this many places in the queue, not all.
    password_hash_per_account: Annotated[int, Field(ge=1)] = 1
    image_max_waiting: Annotated[int, Field(ge=0)] = 8

    @property
    def jwt_secret(self) -> str:
        """The signing key: always set once validated (given, or generated in development)."""
        assert self.secret_key is not None, "the validator sets it"
        return self.secret_key.get_secret_value()

    # Longest a public read (on the read engine) may run before PostgreSQL cancels it and the
    # client gets a 503; 0 turns the limit off. Writes are not limited.
    db_read_statement_timeout_ms: Annotated[int, Field(ge=0)] = 2000

    # GET /metrics for Prometheus (metrics.py); false: no route, no per-request counting.
    metrics_enabled: bool = True
    # Set: a scrape of /metrics must send `Authorization: Bearer <token>` (else 401). Unset: it
    # answers whoever reaches the app, so the proxy must deny it.
    metrics_token: SecretStr | None = None
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
        elif (
            self.environment == "production" and estimated_entropy_bits(given) < MIN_SECRET_KEY_BITS
        ):
            raise ValueError(
                "SECRET_KEY is too predictable for production (repeated parts or few distinct"
                " characters): generate one, e.g."
                " python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.environment == "production" and not self.database_url:
            raise ValueError("DATABASE_URL must be set in production (no embedded database)")
        if self.environment == "production" and not self.mail_server:
            # Without it the reset mail, link and token included, would go to the log.
            raise ValueError("MAIL_SERVER must be set in production (reset mails must be sent)")
        if self.environment == "production" and not is_https_url(self.frontend_url):
            raise ValueError("FRONTEND_URL must be an https:// URL in production (reset links)")
        return self

    @model_validator(mode="after")
    def _rate_limits_on_in_production(self) -> "Settings":
        if self.rate_limit_enabled is None:
            self.rate_limit_enabled = self.environment == "production"
        if self.session_cookie_secure is None:
            self.session_cookie_secure = self.environment == "production"
        if self.email_verification_required is None:
            self.email_verification_required = self.environment == "production"
        return self


def estimated_entropy_bits(key: str) -> float:
    """A conservative estimate of the entropy of a key, in bits.

    The Shannon entropy per character of the key's own character frequencies (low when it
    uses few distinct characters: `aaaa...`, `abab...`), times the number of characters that
    survive zlib compression (fewer than the key's length when any part of it repeats:
    `password` eight times). A random key scores close to its true entropy; no estimate
    catches every pattern, which is why the advice stays "generate it with `secrets`".
    """
    if not key:
        return 0.0
    length = len(key)
    per_char = -sum(n / length * math.log2(n / length) for n in Counter(key).values())
    compressed = len(zlib.compress(key.encode(), 9)) - len(zlib.compress(b"", 9))
    return per_char * min(length, compressed)


def is_https_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname)


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


def site_url(path: str) -> str:
    """An absolute URL of the site's public origin (FRONTEND_URL), as feeds, the sitemap and
    canonical links need: never built from the request's Host header, which a client sets."""
    return settings.frontend_url.rstrip("/") + path
