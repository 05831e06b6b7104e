"""Browser fixtures: the real app in a uvicorn subprocess, a mail sink, Debian's Chromium.

The app runs against its own database (the test server's database name plus `_e2e`), built by
the Alembic migrations, with pictures on local disk and reset mails sent by plain SMTP to an
aiosmtpd server on loopback that the tests read. Nothing here leaves 127.0.0.1.

Playwright is in the `e2e` dependency group, which `uv run` does not install unless asked
(`uv run --group e2e pytest -m e2e tests/e2e`). Without it, each test module here is collected
as one stand-in test marked e2e, without importing it: the suite's own run deselects them, and a
run that selects one stops at once with a usage error that gives that command.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
if PLAYWRIGHT:
    from playwright.sync_api import Browser, Page, expect, sync_playwright

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads a browser here
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 30
WITHOUT_PLAYWRIGHT = (
    "Playwright is not installed (it is in the `e2e` dependency group): run the browser tests "
    "with `uv run --group e2e pytest -m e2e tests/e2e`"
)

if PLAYWRIGHT:
    expect.set_options(timeout=10_000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Without Playwright ----------------------------------------------------------------------


class NeedsPlaywright(pytest.Item):
    """A test module's stand-in where Playwright is not installed; a run never gets to it."""

    def runtest(self) -> None:
        raise pytest.UsageError(WITHOUT_PLAYWRIGHT)


class UnimportedModule(pytest.File):
    """A test module collected without importing it: one stand-in, marked e2e like its tests."""

    def collect(self) -> Iterator[NeedsPlaywright]:
        stand_in = NeedsPlaywright.from_parent(self, name="needs_playwright")
        stand_in.add_marker(pytest.mark.e2e)
        yield stand_in


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if PLAYWRIGHT:
        return None
    return UnimportedModule.from_parent(parent, path=module_path)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A run that keeps a stand-in (`-m e2e`) stops here, before any test runs."""
    if any(isinstance(item, NeedsPlaywright) for item in session.items):
        raise pytest.UsageError(WITHOUT_PLAYWRIGHT)


# --- Database --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_database_url() -> Iterator[str]:
    """A fresh database next to the suite's one, migrated to head; dropped at the end.

    tests/conftest.py has already put the suite's database in DATABASE_URL: TEST_DATABASE_URL,
    or the embedded server it started when that is unset.
    """
    suite = make_url(os.environ["DATABASE_URL"])
    url = suite.set(database=f"{suite.database}_e2e")
    admin = create_engine(suite, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def recreate(create: bool) -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            if create:
                connection.execute(text(f'CREATE DATABASE "{url.database}"'))

    recreate(create=True)
    rendered = url.render_as_string(hide_password=False)
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    yield rendered
    recreate(create=False)
    admin.dispose()


# --- Mail ------------------------------------------------------------------------------------


class MailSink:
    """An SMTP server on loopback that keeps what it receives for the tests to read."""

    def __init__(self) -> None:
        self.received: queue.Queue[EmailMessage] = queue.Queue()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.received.put(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"

    def message_to(
        self, address: str, subject: str | None = None, timeout: float = 15
    ) -> EmailMessage:
        """The next mail for `address`, with `subject` if given: every registration also mails
        a verification link (blocks until it arrives, at most `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.received.get(timeout=max(deadline - time.monotonic(), 0.01))
            if message["To"] == address and subject in (None, message["Subject"]):
                return message


@pytest.fixture(scope="session")
def mail_sink():
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


# --- The app ---------------------------------------------------------------------------------


def wait_until_ready(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=base_url, trust_env=False, timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited during startup; see {log_path}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # readiness polling only
    raise RuntimeError(f"the app did not answer /health in {STARTUP_SECONDS}s; see {log_path}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, e2e_database_url, mail_sink) -> Iterator[str]:
    """The real app (`main:app`) under uvicorn on a free loopback port; yields its base URL."""
    _, mail_port = mail_sink
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("e2e-app")  # its own folder: no developer .env applies
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": e2e_database_url,
        "SECRET_KEY": "e2e-secret-key-for-browser-tests-only-0123456789",
        "DATA_DIR": str(workdir / "data"),
        "MEDIA_DIR": str(workdir / "media"),
        "S3_BUCKET_NAME": "",
        "RATE_LIMIT_ENABLED": "false",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mail_port),
        "MAIL_USE_TLS": "false",
        "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "",
        "FRONTEND_URL": base_url,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "e2e-app.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(ROOT)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, base_url, log_path)
            logger.info("App under test at %s (log: %s)", base_url, log_path)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def api(live_server):
    """An HTTP client on the running app, to set the scene quickly through the JSON API."""
    with httpx.Client(base_url=live_server, trust_env=False, timeout=10) as client:
        yield client


# --- The browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(live_server) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server):
    """Pages in fresh contexts (no shared storage); script errors and CSP violations fail."""
    contexts, problems = [], []

    def open_page(**options) -> Page:
        context = browser.new_context(base_url=live_server, **options)
        contexts.append(context)
        page = context.new_page()

        def on_console(message) -> None:
            # A 4xx answer logs "Failed to load resource": the tests provoke some on purpose.
            if message.type == "error" and not message.text.startswith("Failed to load resource"):
                problems.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(new_page) -> Page:
    return new_page(viewport={"width": 1280, "height": 800})
