"""Per-IP rate limits on login, register, forgot-password and reset-password."""

import threading

import pytest
from httpx import ASGITransport, AsyncClient

import ratelimit
from config import Settings, settings
from main import app
from ratelimit import RateLimit, login_limit, parse_rate
from schemas import Detail

pytestmark = pytest.mark.anyio


@pytest.fixture
def limits_on(monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_enabled", True)


def login(client: AsyncClient):
    return client.post(
        "/api/users/token", data={"username": "nobody@example.com", "password": "whatever1"}
    )


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert response.json() == {"detail": Detail.RATE_LIMITED}
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_login_is_limited_per_client_ip(client, limits_on):
    allowed, _ = parse_rate(settings.rate_limit_login)
    for _ in range(allowed):
        assert (await login(client)).status_code == 401
    assert_rate_limited(await login(client))


async def test_another_client_ip_keeps_its_own_budget(client, limits_on):
    allowed, _ = parse_rate(settings.rate_limit_login)
    for _ in range(allowed):
        await login(client)
    assert (await login(client)).status_code == 429
    transport = ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with AsyncClient(transport=transport, base_url="http://test") as other:
        assert (await login(other)).status_code == 401


async def test_register_is_limited(client, limits_on):
    allowed, _ = parse_rate(settings.rate_limit_register)
    for n in range(allowed):
        response = await client.post(
            "/api/users",
            json={"username": f"user{n}", "email": f"user{n}@example.com", "password": "password1"},
        )
        assert response.status_code == 201
    response = await client.post(
        "/api/users", json={"username": "one", "email": "one@example.com", "password": "password1"}
    )
    assert_rate_limited(response)


async def test_forgot_and_reset_password_share_a_limit(client, limits_on):
    allowed, _ = parse_rate(settings.rate_limit_password_reset)
    for _ in range(allowed - 1):
        response = await client.post(
            "/api/users/forgot-password", json={"email": "nobody@example.com"}
        )
        assert response.status_code == 202
    response = await client.post(
        "/api/users/reset-password", json={"token": "guess", "new_password": "password1"}
    )
    assert response.status_code == 400
    assert_rate_limited(
        await client.post("/api/users/reset-password", json={"token": "x", "new_password": "p" * 8})
    )
    assert_rate_limited(
        await client.post("/api/users/forgot-password", json={"email": "nobody@example.com"})
    )


async def test_other_routes_are_not_limited(client, limits_on):
    for _ in range(30):
        assert (await client.get("/api/posts")).status_code == 200


async def test_limits_are_off_when_disabled(client):
    assert settings.rate_limit_enabled is False  # the suite's default
    allowed, _ = parse_rate(settings.rate_limit_login)
    for _ in range(allowed + 5):
        assert (await login(client)).status_code == 401


async def test_window_slides_so_a_client_may_try_again_later(client, limits_on, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    allowed, window = parse_rate(settings.rate_limit_login)
    for _ in range(allowed):
        await login(client)
    response = await login(client)
    assert response.status_code == 429
    assert response.headers["retry-after"] == str(window)
    now[0] += window
    assert (await login(client)).status_code == 401


def test_rates_are_read_from_settings(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_LOGIN", "3/hour")
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "true")
    configured = Settings()
    assert configured.rate_limit_enabled is True
    limit = RateLimit("login", configured.rate_limit_login)
    assert (limit.limit, limit.window) == (3, 3600)


def test_rate_limits_are_on_by_default():
    assert Settings.model_fields["rate_limit_enabled"].default is True


@pytest.mark.parametrize("rate", ["10/minute", "10 / Minute", "1/second", "100/day"])
def test_rate_strings_parse(rate):
    count, seconds = parse_rate(rate)
    assert count in (10, 1, 100)
    assert seconds in (60, 1, 86400)


@pytest.mark.parametrize("rate", ["ten/minute", "10/fortnight", "10"])
def test_malformed_rate_is_refused(rate):
    with pytest.raises((ValueError, KeyError)):
        parse_rate(rate)


async def test_idle_clients_are_forgotten_so_memory_stays_bounded(client, limits_on, monkeypatch):
    now = [5000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    for n in range(10_001):
        login_limit.hits[f"10.0.{n // 256}.{n % 256}"].append(now[0] - 3600)
    await login(client)
    assert len(login_limit.hits) == 1


async def test_limits_are_counted_on_the_event_loop_thread(client, limits_on, monkeypatch):
    """The windows are shared, unlocked state: every check must run on the one loop thread."""
    threads = []

    def monotonic():
        threads.append(threading.current_thread())
        return 1000.0

    monkeypatch.setattr(ratelimit.time, "monotonic", monotonic)
    await login(client)
    await client.post("/api/users/forgot-password", json={"email": "a@example.com"})
    assert threads
    assert set(threads) == {threading.main_thread()}
