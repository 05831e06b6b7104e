"""X-Request-ID in and out, on every log line of the request; LOG_FORMAT=json."""

import contextlib
import io
import json
import logging
import re

import anyio
import httpx
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

import logs
from database import get_read_db
from main import app
from tests.conftest import create_test_user
from tests.servers import uvicorn_app

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{32}")
JSON_KEYS = {"time", "level", "logger", "message", "request_id"}
LOG_SERVER_USER = "logged-request@example.com"


@contextlib.contextmanager
def captured_lines(log_format: str = "json"):
    """The lines the app's own handler writes while the block runs."""
    handler = logs.make_handler(log_format)
    handler.setStream(out := io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: out.getvalue().splitlines()
    finally:
        root.removeHandler(handler)


def forgot_password(client, email: str, request_id: str):
    return client.post(
        "/api/users/forgot-password", json={"email": email}, headers={"X-Request-ID": request_id}
    )


async def test_a_request_without_an_id_gets_a_new_one_each_time(client):
    first, second = await client.get("/health"), await client.get("/health")
    assert GENERATED.fullmatch(first.headers["x-request-id"])
    assert GENERATED.fullmatch(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("given", ["abc-DEF_1.2", "7", "x" * 64, "0f1e2d3c-4b5a-6978-a5b4c3d2"])
async def test_a_sane_request_id_is_sent_back(client, given):
    response = await client.get("/health", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "hostile",
    [
        b"x" * 65,
        b"line\nbreak",
        b"crlf\r\nSet-Cookie: a=b",
        b'quo"te',
        b"it's",
        b"sp ace",
        b"",
        b"caf\xc3\xa9",
        b"nul\x00",
        b"<script>alert(1)</script>",
    ],  # fmt: skip
)
async def test_a_hostile_request_id_is_replaced_never_echoed_nor_logged(client, hostile):
    user = await create_test_user(client)
    with captured_lines() as lines:
        response = await client.post(
            "/api/users/forgot-password",
            json={"email": user["email"]},
            headers={"X-Request-ID": hostile},
        )
    assert response.status_code == 202
    replaced = response.headers["x-request-id"]
    assert GENERATED.fullmatch(replaced)
    assert response.headers.get_list("x-request-id") == [replaced]
    (mail,) = [json.loads(line) for line in lines()]
    assert mail["request_id"] == replaced
    assert not hostile or hostile.decode(errors="replace") not in lines()[0]


async def test_every_log_line_of_a_request_carries_its_id(client):
    alice = await create_test_user(client, "alice")
    bob = await create_test_user(client, "bob")
    with captured_lines() as lines:
        await forgot_password(client, alice["email"], "req-alice")
        await forgot_password(client, bob["email"], "req-bob")
    entries = [json.loads(line) for line in lines()]
    assert len(entries) == 2 and all(set(entry) >= JSON_KEYS for entry in entries)
    mails = {entry["request_id"]: entry["message"] for entry in entries}
    assert alice["email"] in mails["req-alice"] and bob["email"] in mails["req-bob"]


def test_a_line_outside_any_request_says_so():
    with captured_lines() as lines:
        logging.getLogger("blog.test").warning("between requests")
    (entry,) = [json.loads(line) for line in lines()]
    assert entry["request_id"] == logs.NO_REQUEST
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "blog.test",
        "between requests",
    )


async def test_text_lines_name_the_request_too(client):
    with captured_lines("text") as lines:
        await forgot_password(client, (await create_test_user(client))["email"], "text-id")
    assert [line for line in lines() if "[text-id]: MAIL_SERVER is not set" in line]


def test_json_lines_stay_one_line_with_a_multiline_message_and_a_traceback():
    with captured_lines() as lines:
        try:
            raise ValueError("first\nsecond")
        except ValueError:
            logging.getLogger("blog.test").exception("failed:\n%s", "details")
    (line,) = lines()
    entry = json.loads(line)
    assert entry["message"] == "failed:\ndetails"
    assert "ValueError: first\nsecond" in entry["exception"]


@pytest.fixture(scope="module")
async def json_server_process(engine, tmp_path_factory):
    """The app under uvicorn with LOG_FORMAT=json and its access log on, for this module."""
    async with uvicorn_app({"LOG_FORMAT": "json"}, tmp_path_factory.mktemp("json")) as server:
        yield server


@pytest.fixture
async def json_server(json_server_process, engine):
    """That server, its log from this test on, which begins as a server's own start does:
    with the answer to a GET /health."""
    server = json_server_process.from_now()
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/health")).status_code == 200
    yield server
    async with engine.begin() as connection:  # the server committed for real
        await connection.execute(text("DELETE FROM users WHERE email = :email"),
                                 {"email": LOG_SERVER_USER})  # fmt: skip


async def test_a_real_server_writes_json_lines_that_name_their_request(json_server):
    async with httpx.AsyncClient(base_url=json_server.url) as client:
        account = {"username": "logged", "email": LOG_SERVER_USER, "password": "password one"}
        assert (await client.post("/api/users", json=account)).status_code == 201
        response = await forgot_password(client, LOG_SERVER_USER, "reset-1")
        assert response.headers["x-request-id"] == "reset-1"
    await json_server.wait_for_log("MAIL_SERVER is not set")  # a task after the response

    entries = [json.loads(line) for line in json_server.log_lines()]
    assert all(set(entry) >= JSON_KEYS for entry in entries)
    of_request = [entry for entry in entries if entry["request_id"] == "reset-1"]
    assert {entry["logger"] for entry in of_request} == {"email_utils", "uvicorn.access"}
    assert [e for e in of_request if "forgot-password" in e["message"]]
    requests = {entry["request_id"] for entry in entries if entry["logger"] == "uvicorn.access"}
    assert len(requests) == 3 and "reset-1" in requests  # each its own: /health, register, reset


async def test_a_real_server_replaces_a_hostile_request_id(json_server):
    hostile = 'evil"' + "x" * 80
    port = int(json_server.url.rsplit(":", 1)[1])
    request = f"GET /health HTTP/1.1\r\nHost: t\r\nX-Request-ID: {hostile}\r\nConnection: close"
    answer = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"{request}\r\n\r\n".encode())
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                answer += await stream.receive()
    head = answer.decode().split("\r\n\r\n", 1)[0]
    assert head.startswith("HTTP/1.1 200")
    (sent_back,) = re.findall(r"(?im)^x-request-id: ([^\r\n]*)", head)
    assert GENERATED.fullmatch(sent_back)
    await json_server.wait_for_log(sent_back)
    assert hostile not in json_server.log.read_text()
    assert "evil" not in json_server.log.read_text()


async def test_an_unexpected_error_still_answers_with_the_request_id(client):
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.dependency_overrides[get_read_db] = broken
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as raw:
        response = await raw.get("/api/posts", headers={"X-Request-ID": "bug-1"})
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert response.headers["x-request-id"] == "bug-1"
