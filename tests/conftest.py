"""Shared fixtures: a real PostgreSQL, a mocked S3 and an HTTP client on the app.

The classic pattern:
- the environment is set before anything from the app is imported;
- tables are created once per session on a `NullPool` engine;
- each test runs in one connection and an outer transaction that is rolled back at the end,
  the app's session joining it with savepoints, so a test can commit and still leave nothing;
- S3 is moto's `mock_aws`; the app's `get_db` is overridden to hand out the test session, and
  nothing else: the public reads take their connection from it (database.get_read_db).

The database is TEST_DATABASE_URL when set, else an embedded PostgreSQL in a temporary folder.
The whole suite runs on a pytest-xdist worker per core, each on a copy of that database
(tests/parallel.py); a file or a test runs in one process, on that database itself.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.parallel")  # a plugin of this conftest (pytest_plugins)
from tests import parallel  # noqa: E402

# --- Environment, before any app import ------------------------------------------------------
_scratch = Path(tempfile.mkdtemp(prefix="blog-tests-"))
_embedded = None


def remove_scratch(owner: int = os.getpid()) -> None:
    """At exit, however the run ended (a usage error never reaches pytest_unconfigure): stop
    the embedded server and remove the folder with its data. Not in a forked copy of this
    process (mutmut's sessions), which leaves them to this one."""
    if os.getpid() != owner:
        return
    if _embedded is not None:
        _embedded.cleanup()
    shutil.rmtree(_scratch, ignore_errors=True)


atexit.register(remove_scratch)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
if not TEST_DATABASE_URL:
    from embedded_postgres import start_embedded_postgres

    _embedded, TEST_DATABASE_URL = start_embedded_postgres(_scratch / "postgres")
    # xdist's workers, and the pytest runs that tests start, use this server too.
    os.environ["TEST_DATABASE_URL"] = TEST_DATABASE_URL
TEST_DATABASE_URL = parallel.own_database_url(TEST_DATABASE_URL)  # a worker's copy, under xdist

TEST_BUCKET = "test-bucket"
os.environ.update(
    {
        "ENVIRONMENT": "development",
        "DATABASE_URL": TEST_DATABASE_URL,
        "SECRET_KEY": "test-secret-key-for-the-suite-only-0123456789abcdef0123456789abcdef",
        "DATA_DIR": str(_scratch / "data"),
        "MEDIA_DIR": str(_scratch / "media"),
        "S3_BUCKET_NAME": TEST_BUCKET,
        "S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Empty means unset: a developer's .env must not point the tests at real services.
        "S3_ENDPOINT_URL": "",
        "S3_ACCESS_KEY_ID": "",
        "S3_SECRET_ACCESS_KEY": "",
        "MAIL_SERVER": "",
        "RATE_LIMIT_ENABLED": "",  # off, as in any development setup; tests turn it on
        "FRONTEND_URL": "http://testserver",
        # Cheap argon2 for speed; production keeps pwdlib's recommended parameters.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }
)
# The app's metrics go to a folder of this process's own (metrics.py), not to the one that the
# process starting this one made and left in the environment (xdist's controller, for a worker).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import logging  # noqa: E402
import socket  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from email.message import EmailMessage  # noqa: E402
from io import BytesIO  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
from httpx import ASGITransport, AsyncClient  # noqa: E402
from moto import mock_aws  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import delete, func, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import (  # noqa: E402
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool  # noqa: E402

import email_utils  # noqa: E402
import jobs  # noqa: E402
import models  # noqa: E402
from database import Base, get_db, make_sessionmaker  # noqa: E402
from main import app  # noqa: E402
from ratelimit import limiter  # noqa: E402
from routers.health import get_probe_engine, make_probe_engine  # noqa: E402

# tests.parallel: a worker per core for the whole suite, one process for a part of it.
pytest_plugins = ["anyio", "tests.parallel"]

# One INFO line per test request, formatted and captured three times, doubles the cost of a call.
logging.getLogger("httpx").setLevel(logging.WARNING)

TEST_IMAGE = Path(__file__).parent / "test_image.jpeg"
DEFAULT_PASSWORD = "correct horse battery"


@pytest.hookimpl(tryfirst=True)  # before pytest's own tmp_path factory reads the option
def pytest_configure(config):
    """tmp_path folders inside this run's scratch folder, not in the shared
    /tmp/pytest-of-<user>: every pytest run that starts (another checkout's, a test's own
    sub-run) resets that one to mode 0700, and an embedded PostgreSQL there (run as another
    user when the suite runs as root) loses access to its data folder."""
    if config.option.basetemp is None:
        # Made again for a second session in one process (mutmut's workers): the first one's
        # unconfigure removed it.
        _scratch.mkdir(mode=0o700, exist_ok=True)
        config.option.basetemp = _scratch / "tmp"
        # ...and so are the folders the app made inside it when first imported: the metrics'
        # and the media folder that /media serves.
        if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            Path(folder).mkdir(parents=True, exist_ok=True)
        Path(os.environ["MEDIA_DIR"]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


# Rows that tests committed and never removed, per table; counted before the tables are dropped.
ROWS_LEFT_BEHIND: dict[str, int] = {}


async def count_rows(conn: AsyncConnection) -> dict[str, int]:
    """Rows per table of the app's schema, only the tables that have some."""
    counts = {}
    for table in Base.metadata.sorted_tables:
        rows = await conn.scalar(select(func.count()).select_from(table))
        if rows:
            counts[table.name] = rows
    return counts


@pytest.fixture(scope="session")
async def engine():
    engine = create_async_engine(TEST_DATABASE_URL, poolclass=NullPool)
    ROWS_LEFT_BEHIND.clear()  # a second session in one process starts afresh
    own_copy = parallel.WORKER is not None  # made with the tables, dropped at the end
    if not own_copy:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        ROWS_LEFT_BEHIND.update(await count_rows(conn))
        if not own_copy:
            await conn.run_sync(Base.metadata.drop_all)
    await engine.dispose()


# Tests skipped in this run (a program such as pg_basebackup missing): with FAIL_ON_SKIP=1, as
# CI sets it, a skip fails the run, so a machine without the program cannot pass by skipping.
SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        SKIPPED.append(report.nodeid)


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown, even when stopped early
def pytest_sessionfinish(session):
    """A row some test left behind fails the run: a later test (in any order) could see it."""
    if hasattr(session.config, "workeroutput"):  # an xdist worker: its controller decides
        session.config.workeroutput["rows_left_behind"] = ROWS_LEFT_BEHIND
        return
    failing = ROWS_LEFT_BEHIND or (SKIPPED and os.environ.get("FAIL_ON_SKIP") == "1")
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """An xdist worker is done: the rows its tests left behind count for the run."""
    for table, rows in getattr(node, "workeroutput", {}).get("rows_left_behind", {}).items():
        ROWS_LEFT_BEHIND[table] = ROWS_LEFT_BEHIND.get(table, 0) + rows


def pytest_terminal_summary(terminalreporter):
    if SKIPPED and os.environ.get("FAIL_ON_SKIP") == "1":
        terminalreporter.section("skipped with FAIL_ON_SKIP=1", red=True)
        terminalreporter.line(f"{len(SKIPPED)} skipped: " + ", ".join(SKIPPED), red=True)
    if ROWS_LEFT_BEHIND:
        counts = ", ".join(f"{table}: {rows}" for table, rows in ROWS_LEFT_BEHIND.items())
        terminalreporter.section("rows left behind", red=True)
        terminalreporter.line(
            f"Tests left rows in the test database ({counts}). A test that commits through an "
            "engine of its own must delete what it made, or later tests see it.",
            red=True,
        )


@pytest.fixture
async def db_session(engine):
    """One connection, one outer transaction, rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        yield session
        await session.close()
        await transaction.rollback()


@pytest.fixture(scope="session")
def aws():
    """moto's `mock_aws` for the whole session, with the app's bucket and a client to inspect
    it: starting either per test costs more than most tests."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=TEST_BUCKET)
        yield client


@pytest.fixture
def s3(aws):
    """The app's bucket, empty when the test starts; for tests that look into it."""

    def empty_bucket():
        if TEST_BUCKET not in {bucket["Name"] for bucket in aws.list_buckets()["Buckets"]}:
            aws.create_bucket(Bucket=TEST_BUCKET)
        for obj in aws.list_objects_v2(Bucket=TEST_BUCKET).get("Contents", []):
            aws.delete_object(Bucket=TEST_BUCKET, Key=obj["Key"])

    empty_bucket()
    yield aws
    empty_bucket()


@pytest.fixture
async def client(db_session, aws):
    async def override_get_db():
        yield db_session

    app.dependency_overrides[get_db] = override_get_db
    await limiter.reset()
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c
    app.dependency_overrides.clear()


def serve_app_from(engine: AsyncEngine, read_engine: AsyncEngine) -> async_sessionmaker:
    """Give the app real, separate sessions and read connections on these engines, instead of
    the test's one connection (for races and database restarts); returns the sessionmaker."""
    sessions = make_sessionmaker(engine, read_engine)

    async def own_session():
        async with sessions() as session:
            yield session

    app.dependency_overrides[get_db] = own_session
    # Readiness keeps its own connections, to the same server.
    probe = make_probe_engine(engine.url)
    app.dependency_overrides[get_probe_engine] = lambda: probe
    return sessions


@asynccontextmanager
async def app_on_own_engine(
    prefix: str, **pool: Any
) -> AsyncIterator[tuple[AsyncClient, AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """An HTTP client on the app served from a pooled engine of its own (`pool`: its options),
    so requests run in real, concurrent transactions. Such requests commit: afterwards every
    user whose name starts with `prefix` (in any case) is deleted, with what hangs off them."""
    live_engine = create_async_engine(TEST_DATABASE_URL, **pool)
    sessions = serve_app_from(live_engine, live_engine)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
            yield client, live_engine, sessions
    finally:
        app.dependency_overrides.clear()
        async with sessions() as session:
            made_here = func.lower(models.User.username).startswith(prefix.lower())
            await session.execute(delete(models.User).where(made_here))
            await session.commit()
        await live_engine.dispose()


@asynccontextmanager
async def one_snapshot(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncClient, AsyncConnection]]:
    """An HTTP client on the app reading on one REPEATABLE READ transaction that writes
    nothing, and that transaction's connection: every request sees the same snapshot, as when
    nothing commits anywhere between them (caching.py, queries.py)."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="REPEATABLE READ")
        await connection.begin()
        session = AsyncSession(bind=connection, expire_on_commit=False)

        async def frozen_session() -> AsyncIterator[AsyncSession]:
            yield session

        app.dependency_overrides[get_db] = frozen_session
        try:
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
                yield c, connection
        finally:
            del app.dependency_overrides[get_db]
            await session.close()


# --- Helpers: keep each test to its point ----------------------------------------------------


async def create_test_user(
    client: AsyncClient,
    username: str = "alice",
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
) -> dict:
    email = email or f"{username}@example.com"
    response = await client.post(
        "/api/users", json={"username": username, "email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def login_user(client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> str:
    response = await client.post("/api/users/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_user_and_login(client: AsyncClient, username: str = "alice") -> tuple[dict, dict]:
    """A registered user and the headers that authenticate as them."""
    user = await create_test_user(client, username)
    return user, auth_header(await login_user(client, user["email"]))


async def create_test_post(
    client: AsyncClient, headers: dict, title: str = "Hello", content: str = "First post"
) -> dict:
    response = await client.post(
        "/api/posts", json={"title": title, "content": content}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


QUEUED_MAILS = text(
    "SELECT id, args FROM procrastinate.procrastinate_jobs"
    " WHERE task_name = 'send_mail' AND status = 'todo' ORDER BY id"
)


async def queued_mails(session: AsyncSession) -> list[tuple[str, dict]]:
    """The mails queued in this test's transaction, oldest first: (kind, fields) each."""
    rows = (await session.execute(QUEUED_MAILS)).all()
    return [(args["kind"], args["fields"]) for _, args in rows]


async def deliver_queued_mails(session: AsyncSession) -> int:
    """Send the mails that requests queued in this test's transaction, as the queue's worker
    does once they are committed (its own connections cannot see them before); how many."""
    rows = (await session.execute(QUEUED_MAILS)).all()
    for job_id, args in rows:
        await email_utils.deliver_mail(args["kind"], args["fields"])
        async with jobs.queue_search_path(session) as connection:  # for its triggers
            await connection.execute(
                text("DELETE FROM procrastinate.procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
    return len(rows)


def body_of(message: EmailMessage, kind: str) -> str:
    """The plain or HTML part of a mail, as text."""
    part = message.get_body((kind,))
    assert part is not None, f"the mail has no {kind} part"
    return str(part.get_content())


def free_port() -> int:
    """A TCP port nothing listens on yet, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_bytes(size=(64, 64), fmt="PNG", color=(30, 120, 200)) -> bytes:
    """A real image, made on the spot."""
    out = BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


async def upload_picture(
    client: AsyncClient,
    user: dict,
    headers: dict,
    data: bytes | None = None,
    name: str = "me.jpg",
    mime: str = "image/jpeg",
):
    """PATCH the user's picture; by default with the 1-pixel tests/test_image.jpeg."""
    data = TEST_IMAGE.read_bytes() if data is None else data
    return await client.patch(
        f"/api/users/{user['id']}/picture", files={"file": (name, data, mime)}, headers=headers
    )


def bucket_keys(s3) -> list[str]:
    return sorted(obj["Key"] for obj in s3.list_objects_v2(Bucket=TEST_BUCKET).get("Contents", []))


@pytest.fixture
async def alice(client) -> tuple[dict, dict]:
    return await create_user_and_login(client, "alice")


@pytest.fixture
async def bob(client) -> tuple[dict, dict]:
    return await create_user_and_login(client, "bob")
