"""CPU time per request of the first page in this process, through the whole app with and
without the metrics and request-ID middleware, interleaved; for `run.py --middleware-cost`.

No network, no load generator: the requests are ASGI calls one after another, each a real
query on the database of DATABASE_URL, and `time.process_time()` counts this process's CPU
only, so other work on the machine barely moves the figures. Prints one JSON line.
"""

import asyncio
import json
import statistics
import sys
import time

from logs import RequestIdMiddleware
from main import app
from metrics import MetricsMiddleware

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/api/posts",
    "raw_path": b"/api/posts",
    "query_string": b"limit=10",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "app": app,  # set by `app.__call__`, bypassed here; http_methods.py reads `scope["app"]`
}


async def receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        sys.exit(f"the first page answered {message['status']}")


async def cpu_us_per_request(stack, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await stack({**SCOPE, "state": {}}, receive, send)
    return (time.process_time() - started) / requests * 1e6


async def main(rounds: int, requests: int) -> None:
    async with app.router.lifespan_context(app):
        measured = (MetricsMiddleware, RequestIdMiddleware)
        with_them = app.build_middleware_stack()
        app.user_middleware = [m for m in app.user_middleware if m.cls not in measured]
        without_them = app.build_middleware_stack()
        stacks = {"with": with_them, "without": without_them}
        for stack in stacks.values():
            await cpu_us_per_request(stack, requests // 4)  # warm up
        cpu: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(rounds):
            for name in ("with", "without") if round_ % 2 == 0 else ("without", "with"):
                cpu[name].append(await cpu_us_per_request(stacks[name], requests))
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    sys.stdout.write(json.dumps({"cpu_us": medians, "runs": cpu}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
