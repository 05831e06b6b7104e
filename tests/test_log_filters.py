"""No token reaches a log line: the access logs' request lines, and the reset mail outside
development."""

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

import email_utils
import log_filters
from config import settings
from log_filters import REDACTED, RedactTokens, redact
from tests.conftest import create_test_user, free_port

ROOT = Path(__file__).parent.parent
TOKEN = "Zq3-live_reset_token_9XkP"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"/reset-password?token={TOKEN}", f"/reset-password?token={REDACTED}"),
        (f"/x?a=1&token={TOKEN}&b=2", f"/x?a=1&token={REDACTED}&b=2"),
        (f"/x?access_token={TOKEN}", f"/x?access_token={REDACTED}"),
        (f"/x?Reset_Token={TOKEN}#top", f"/x?Reset_Token={REDACTED}#top"),
        (
            f'"GET /reset-password?token={TOKEN} HTTP/1.1" 200',
            f'"GET /reset-password?token={REDACTED} HTTP/1.1" 200',
        ),
    ],
)
def test_token_values_in_query_strings_are_redacted(line, expected):
    assert redact(line) == expected


@pytest.mark.parametrize("line", ["/posts?skip=10&limit=5", "token=plain words", "/tokens/12"])
def test_lines_without_a_token_parameter_are_left_alone(line):
    assert redact(line) == line


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it: the request line is in the arguments."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_uvicorn_access_line_keeps_its_shape_without_the_token():
    record = access_record(f"/reset-password?token={TOKEN}")
    assert RedactTokens().filter(record) is True
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert TOKEN not in line
    assert line.startswith(f'127.0.0.1:5000 - "GET /reset-password?token={REDACTED} HTTP/1.1" 200')


def test_gunicorn_style_access_record_with_named_arguments_is_redacted():
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(r)s %(s)s", None, None
    )
    record.args = {"r": f"GET /reset-password?token={TOKEN} HTTP/1.1", "s": "200"}
    RedactTokens().filter(record)
    assert TOKEN not in record.getMessage()


def test_a_record_without_arguments_or_with_an_object_message_passes_through():
    plain = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "ok", None, None)
    assert RedactTokens().filter(plain) and plain.getMessage() == "ok"
    error = ValueError(f"/reset-password?token={TOKEN}")
    odd = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, error, None, None)
    assert RedactTokens().filter(odd) and odd.msg is error


def count_filters() -> list[int]:
    return [
        sum(isinstance(f, RedactTokens) for f in logging.getLogger(name).filters)
        for name in log_filters.ACCESS_LOGGERS
    ]


def test_the_app_installs_the_filter_on_the_access_loggers_once():
    assert count_filters() == [1, 1]  # by importing main (tests.conftest did)
    log_filters.install()
    assert count_filters() == [1, 1]


def test_uvicorn_access_log_never_shows_a_reset_token():
    """The real server with its own logging setup: the reset page's request line is logged
    without the token."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(60, server.kill)  # never outlives a hung start
    watchdog.start()
    try:
        started = []
        assert server.stdout is not None
        for line in server.stdout:
            started.append(line)
            if "Uvicorn running on" in line:
                break
        assert any("Uvicorn running on" in line for line in started), "".join(started)
        response = httpx.get(f"http://127.0.0.1:{port}/reset-password?token={TOKEN}", timeout=10)
        assert response.status_code == 200
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=30)
        watchdog.cancel()
    log = "".join(started) + rest
    assert f"GET /reset-password?token={REDACTED} HTTP/1.1" in log
    assert TOKEN not in log


@pytest.mark.anyio
async def test_reset_mail_without_mail_server_outside_development_logs_no_link(monkeypatch, caplog):
    monkeypatch.setattr(settings, "environment", "production")
    monkeypatch.setattr(settings, "mail_server", None)
    with caplog.at_level(logging.INFO, logger="email_utils"):
        await email_utils.send_password_reset_email(
            None, to_email="alice@example.com", username="alice", token=TOKEN
        )
    assert "not sent" in caplog.text
    assert TOKEN not in caplog.text
    assert "reset-password" not in caplog.text


@pytest.mark.anyio
async def test_forgot_password_outside_development_writes_no_reset_link_to_the_log(
    client, monkeypatch, caplog
):
    await create_test_user(client, "alice")
    caplog.clear()  # the registration's verification link, logged as in development
    monkeypatch.setattr(settings, "environment", "production")
    monkeypatch.setattr(settings, "mail_server", None)
    with caplog.at_level(logging.DEBUG):
        response = await client.post(
            "/api/users/forgot-password", json={"email": "alice@example.com"}
        )
    assert response.status_code == 202
    assert "password reset mail to alice@example.com not sent" in caplog.text
    assert "token=" not in caplog.text
