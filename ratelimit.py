"""Per-client-IP rate limits for the endpoints that guess passwords or send mail.

Limits are on unless RATE_LIMIT_ENABLED=false; the rates are RATE_LIMIT_LOGIN,
RATE_LIMIT_REGISTER and RATE_LIMIT_PASSWORD_RESET ("10/minute", "100/hour"...). The client is
`request.client.host`: behind a reverse proxy, run uvicorn with `--proxy-headers` and
`--forwarded-allow-ips` set to the proxy, or every client shares the proxy's budget.

State lives in this process's memory: right for one worker. With several workers (or hosts)
each keeps its own window, so a client gets the limit once per worker. Two ways out:

- Let the reverse proxy enforce the limits instead (nginx `limit_req_zone $binary_remote_addr`
  on the four paths), and set RATE_LIMIT_ENABLED=false.
- Keep the windows in Redis, shared by every worker. Only `RateLimit.__call__` changes: make it
  `async` and, per request, run in one MULTI/EXEC on the key `ratelimit:{scope}:{ip}` a sorted
  set of hit times: `ZREMRANGEBYSCORE key -inf now-window`, `ZCARD key`, `ZADD key now now`,
  `EXPIRE key window`; refuse with 429 when ZCARD was >= the limit, with Retry-After from
  `ZRANGE key 0 0 WITHSCORES`. That is the same sliding window as below, with redis-py's
  `redis.asyncio` client (this project does not ship that backend).
"""

import math
import time
from collections import defaultdict, deque

from fastapi import HTTPException, Request, status

from config import settings
from metrics import RATE_LIMIT_REFUSALS
from schemas import Detail

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/minute' -> (10, 60)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip().lower()]


class RateLimit:
    """A sliding-window limit, used as a route dependency: `Depends(RateLimit(...))`."""

    def __init__(self, scope: str, rate: str):
        self.scope = scope
        self.limit, self.window = parse_rate(rate)
        self.hits: defaultdict[str, deque[float]] = defaultdict(deque)

    # async, so FastAPI runs it on the event loop: one thread touches `hits`, no lock needed
    # (a plain `def` dependency would run in the thread pool, many at once).
    async def __call__(self, request: Request) -> None:
        if not settings.rate_limit_enabled:
            return
        now = time.monotonic()
        key = request.client.host if request.client else "unknown"
        hits = self.hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry_after = max(1, math.ceil(hits[0] + self.window - now))
            RATE_LIMIT_REFUSALS.labels(self.scope).inc()
            raise HTTPException(
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                detail=Detail.RATE_LIMITED,
                headers={"Retry-After": str(retry_after)},
            )
        hits.append(now)
        if len(self.hits) > 10_000:  # forget idle clients so memory stays bounded
            for ip in [ip for ip, q in self.hits.items() if not q or q[-1] <= now - self.window]:
                del self.hits[ip]

    def reset(self) -> None:
        self.hits.clear()


login_limit = RateLimit("login", settings.rate_limit_login)
register_limit = RateLimit("register", settings.rate_limit_register)
password_reset_limit = RateLimit("password-reset", settings.rate_limit_password_reset)
ALL_LIMITS = (login_limit, register_limit, password_reset_limit)
