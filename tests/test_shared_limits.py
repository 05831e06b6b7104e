"""Rate limits shared in Redis by two uvicorn workers, and served without Redis when it stops.

A real `--workers 2` server on a Redis the test starts itself: the login limit is met once,
whichever worker answers; stopped Redis means requests are served (fail open) with one
warning per worker.
"""

import json

import anyio
import httpx
import pytest

from tests.servers import redis_server, requests_per_worker, uvicorn_app, wait_until

pytestmark = pytest.mark.anyio

LOGIN = "/api/users/token"
STORAGE_DOWN = "Rate-limit storage unavailable"


def json_lines(lines: list[str]) -> list[str]:
    """The app's lines (uvicorn's supervisor, which never imports the app, writes text)."""
    return [line for line in lines if line.startswith("{")]


async def log_in(url: str, n: int) -> int:
    """One login on a connection of its own (so either worker may take it), each with an email
    of its own (so the per-account limit stays out of the way): its status."""
    form = {"username": f"nobody{n}@example.com", "password": "wrong password"}
    async with httpx.AsyncClient(base_url=url) as client:
        return (await client.post(LOGIN, data=form)).status_code


async def concurrent_logins(url: str, first: int, count: int) -> list[int]:
    statuses = [0] * count

    async def one(index: int) -> None:
        statuses[index] = await log_in(url, first + index)

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return statuses


async def test_two_workers_sharing_redis_let_five_logins_through_then_refuse(engine, tmp_path):
    with redis_server(tmp_path) as redis:
        env = {
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_LOGIN": "5/minute",
            "RATE_LIMIT_STORAGE_URL": redis.url,
            "LOG_FORMAT": "json",
        }
        async with uvicorn_app(env, tmp_path, workers=2, args=("--no-access-log",)) as server:
            (folder,) = (tmp_path / "data" / "metrics").iterdir()
            statuses: list[int] = []
            # Batches of logins at once, until both workers have answered some: with windows of
            # their own, the second worker would let five more through.
            for _batch in range(20):
                statuses += await concurrent_logins(server.url, len(statuses), 6)
                answered = {
                    worker
                    for status in (401, 429)
                    for worker in requests_per_worker(folder, LOGIN, status)
                }
                if len(answered) == 2:
                    break
            assert len(answered) == 2
            assert statuses.count(401) == 5
            assert statuses.count(429) == len(statuses) - 5

            def served() -> float:  # counted once the response has gone out
                return sum(requests_per_worker(folder, LOGIN, 401).values())

            await wait_until(lambda: served() == 5)
            before = requests_per_worker(folder, LOGIN, 401)
            redis.stop()
            after_stop = await concurrent_logins(server.url, len(statuses), 12)
            assert after_stop == [401] * 12  # served: checked, refused as a wrong password
            await wait_until(lambda: served() == 5 + 12)
            served_by = {
                worker
                for worker, count in requests_per_worker(folder, LOGIN, 401).items()
                if count > before.get(worker, 0)
            }
    warnings = [
        entry
        for entry in map(json.loads, json_lines(server.log_lines()))
        if STORAGE_DOWN in entry["message"]
    ]
    assert len(warnings) == len(served_by)  # one per worker that met the outage
    assert {entry["level"] for entry in warnings} == {"WARNING"}
