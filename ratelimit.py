"""Rate limits: 429 `Too many requests. Please try again later.` with `Retry-After`.

Every limit is a moving window ("10/minute": at most 10 hits in any 60 seconds), counted by
the `limits` library, and applies only when RATE_LIMIT_ENABLED is on (by default in
production). Three kinds of key:

- per client, on the routes that guess passwords or send mail: an IPv4 address, or an IPv6
  /64 (one host usually holds a whole /64, so it cannot rotate through it); a request whose
  client is unknown shares one key. Behind a reverse proxy run uvicorn with
  `--proxy-headers --forwarded-allow-ips <the proxy>`, or every client is the proxy;
- per account (the lower-cased email) on login and forgot-password, so guesses or mails
  aimed at one account from many addresses still meet a limit. So that this limit cannot
  lock the owner out, a browser that has logged in to the account before (it holds the
  signed `device_…` cookie the login set) passes it, and a successful password reset
  empties it;
- per logged-in user on password and email changes, picture uploads, posts, previews and
  verification mails asked for again.

The windows live in RATE_LIMIT_STORAGE_URL: `memory://` (this process; with N workers a
client gets N times the limit) or `redis://host:port/db` (shared by every worker and machine).
When the storage cannot be reached the request is served (fail open: a Redis outage must not
take logins down) and a warning is logged at most once a minute.
"""

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from limits import RateLimitItem, parse
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from auth import CurrentUser
from config import settings
from metrics import RATE_LIMIT_REFUSALS
from schemas import Detail

logger = logging.getLogger(__name__)

UNKNOWN_CLIENT = "unknown"
WARN_EVERY_SECONDS = 60
# A Redis that does not answer costs a limited request at most this long, then it is served.
REDIS_TIMEOUT_SECONDS = 0.5
# Idle keys forgotten per hit: more than one, so they go faster than new clients come.
EVICT_PER_HIT = 2


def now() -> float:
    """Wall-clock seconds, as `limits` stamps hits in Redis (one place for tests to move)."""
    return time.time()


@lru_cache
def parse_rate(rate: str) -> RateLimitItem:
    """'10/minute' -> at most 10 hits in any 60 seconds."""
    return parse(rate)


def client_key(request: Request) -> str:
    """IPv4: the address; IPv6: its /64; anything else (no client, a name): one shared key."""
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return UNKNOWN_CLIENT
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped:  # ::ffff:192.0.2.1 is an IPv4 client on a dual-stack socket
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Address(int(address) >> 64 << 64)
    return f"{network}/64"


def account_key(email: str) -> str:
    """The lower-cased email, hashed: a fixed size however long the login form's `username`,
    and no address kept in Redis."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class MemoryStorage(Storage, MovingWindowSupport):
    """Moving windows in this process's memory, at a cost per hit that does not depend on how
    many clients are stored.

    `limits`' own async memory storage is not that: each hit (re)starts a task that walks
    every stored key, one thread hop per key, so the whole event loop slows down as clients
    pile up. Here each key holds its last `limit` hit times (a bounded deque), and keys sit in
    one OrderedDict per window length in the order of their last hit, which is the order in
    which they go idle: a hit looks at its own key and forgets at most EVICT_PER_HIT idle keys
    from the front. Everything runs on the event loop between two awaits, so needs no lock.
    """

    STORAGE_SCHEME = None  # built by `storage_for`, not registered under a URL scheme

    def __init__(self) -> None:
        super().__init__()
        self.windows: dict[int, OrderedDict[str, deque[float]]] = {}

    @property
    def base_exceptions(self) -> type[Exception]:  # pragma: no cover - nothing to wrap
        return ValueError

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        timestamp = now()
        keys = self.windows.setdefault(expiry, OrderedDict())
        self._evict_idle(keys, timestamp - expiry)
        hits = keys.get(key)
        if hits is None:
            hits = keys[key] = deque(maxlen=limit)
        elif len(hits) > limit - amount and hits[amount - limit - 1] > timestamp - expiry:
            return False  # `limit - amount + 1` hits already in the window
        hits.extend([timestamp] * amount)  # the deque drops hits older than the last `limit`
        keys.move_to_end(key)
        return True

    @staticmethod
    def _evict_idle(keys: OrderedDict[str, deque[float]], cutoff: float) -> None:
        for _ in range(EVICT_PER_HIT):
            oldest = next(iter(keys), None)  # O(1): an OrderedDict keeps a linked list
            if oldest is None or keys[oldest][-1] > cutoff:
                return
            del keys[oldest]

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest hit still in the window, how many hits are in it)."""
        timestamp = now()
        keys = self.windows.get(expiry)
        hits = keys.get(key) if keys else None
        live = [hit for hit in hits or () if hit > timestamp - expiry]
        return (live[0], len(live)) if live else (timestamp, 0)

    async def clear(self, key: str) -> None:
        for keys in self.windows.values():
            keys.pop(key, None)

    async def reset(self) -> int:
        count = sum(len(keys) for keys in self.windows.values())
        self.windows.clear()
        return count

    async def check(self) -> bool:
        return True

    # Counters serve the fixed-window strategies, which this app does not use.
    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:  # pragma: no cover
        raise NotImplementedError

    async def get(self, key: str) -> int:  # pragma: no cover
        raise NotImplementedError

    async def get_expiry(self, key: str) -> float:  # pragma: no cover
        raise NotImplementedError


def storage_for(url: str) -> Storage:
    if url.startswith("memory://"):
        return MemoryStorage()
    storage = storage_from_string(
        f"async+{url}",
        implementation="redispy",
        wrap_exceptions=True,  # any client error arrives as limits' StorageError
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        # redis-py retries 10 times by default. (limits types its pass-through options as
        # scalars; redis-py takes a Retry here.)
        retry=Retry(NoBackoff(), retries=0),  # type: ignore[arg-type]
    )
    assert isinstance(storage, Storage)  # an async+ URL always gives limits' async storage
    return storage


class Limiter:
    """The moving-window strategy on the configured storage; fails open when it is down."""

    def __init__(self, storage_url: str) -> None:
        self.storage = storage_for(storage_url)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.last_warning = -math.inf

    async def retry_after(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count a hit: None when allowed, else the seconds until the window lets one in."""
        try:
            if await self.strategy.hit(item, *identifiers):
                return None
            stats = await self.strategy.get_window_stats(item, *identifiers)
        except (StorageError, OSError) as exc:
            self._warn(exc)
            return None
        return max(1, math.ceil(stats.reset_time - now()))

    def _warn(self, exc: Exception) -> None:
        if now() - self.last_warning >= WARN_EVERY_SECONDS:
            self.last_warning = now()
            logger.warning("Rate-limit storage unavailable, serving without limits: %r", exc)

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        """Empty one window (fails open like a hit: nothing to clear when storage is down)."""
        try:
            await self.strategy.clear(item, *identifiers)
        except (StorageError, OSError) as exc:
            self._warn(exc)

    async def reset(self) -> None:
        await self.storage.reset()

    async def aclose(self) -> None:
        """Close the Redis client's connections (the memory storage holds none)."""
        bridge = getattr(self.storage, "bridge", None)  # limits' Redis storage, on redis-py
        if bridge is not None:
            await bridge.storage.aclose()


limiter = Limiter(settings.rate_limit_storage_url)


class RateLimit:
    """One limit: a scope and the setting that holds its rate (read on each request)."""

    def __init__(self, scope: str, setting: str) -> None:
        self.scope = scope
        self.setting = setting

    @property
    def rate(self) -> RateLimitItem:
        return parse_rate(getattr(settings, self.setting))

    async def hit(self, key: str) -> None:
        """Count a request under `key`; a 429 once the window is full."""
        if not settings.rate_limit_enabled:
            return
        retry_after = await limiter.retry_after(self.rate, self.scope, key)
        if retry_after is not None:
            RATE_LIMIT_REFUSALS.labels(self.scope).inc()
            raise HTTPException(
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                detail=Detail.RATE_LIMITED,
                headers={"Retry-After": str(retry_after)},
            )

    async def clear(self, key: str) -> None:
        """Forget the hits counted under `key`."""
        await limiter.clear(self.rate, self.scope, key)


class ClientRateLimit(RateLimit):
    """Per client address, as a route dependency: `Depends(login_limit)`."""

    async def __call__(self, request: Request) -> None:
        await self.hit(client_key(request))


class UserRateLimit(RateLimit):
    """Per logged-in user, as a route dependency (the user is loaded once per request)."""

    async def __call__(self, user: CurrentUser) -> None:
        await self.hit(str(user.id))


login_limit = ClientRateLimit("login", "rate_limit_login")
register_limit = ClientRateLimit("register", "rate_limit_register")
password_reset_limit = ClientRateLimit("password-reset", "rate_limit_password_reset")
comment_limit = ClientRateLimit("comment", "rate_limit_comment")
login_account_limit = RateLimit("login-account", "rate_limit_login_account")
password_reset_account_limit = RateLimit(
    "password-reset-account", "rate_limit_password_reset_account"
)
password_check_limit = ClientRateLimit("password-check", "rate_limit_password_check")
# Password and email changes share it: each is a guess at the current password.
password_change_limit = UserRateLimit("password-change", "rate_limit_password_change")
upload_limit = UserRateLimit("upload", "rate_limit_upload")
post_image_limit = UserRateLimit("post-image", "rate_limit_post_image")
post_limit = UserRateLimit("post", "rate_limit_post")
post_write_limit = UserRateLimit("post-write", "rate_limit_post_write")
preview_limit = UserRateLimit("preview", "rate_limit_preview")
verification_email_limit = UserRateLimit("verification-email", "rate_limit_verification_email")

DEVICE_COOKIE_PREFIX = "device_"
DEVICE_COOKIE_MAX_AGE = 180 * 24 * 3600
DEVICE_COOKIE_PATH = "/api/users"  # the logins: /api/users/token and /api/users/session


def device_cookie(email: str) -> tuple[str, str]:
    """(name, value) of the cookie that marks a browser that logged in to this account.

    The value is an HMAC of the account under the app's secret: it cannot be made without
    having logged in, and tells nothing of the account it belongs to.
    """
    key = account_key(email)
    signature = hmac.new(settings.jwt_secret.encode(), f"device:{key}".encode(), "sha256")
    return f"{DEVICE_COOKIE_PREFIX}{key[:16]}", signature.hexdigest()


def remember_device(response: Response, email: str) -> None:
    """After a successful login: this browser passes the account's login limit from now on."""
    name, value = device_cookie(email)
    response.set_cookie(
        name,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path=DEVICE_COOKIE_PATH,
        secure=settings.frontend_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


def is_known_device(request: Request, email: str) -> bool:
    name, value = device_cookie(email)
    return hmac.compare_digest(request.cookies.get(name, ""), value)


async def limit_login_per_account(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> None:
    """The login form is parsed once: FastAPI hands the route the same one.

    A browser that logged in to the account before is not counted: guesses from elsewhere
    cannot lock the owner out (it still meets the per-client limit).
    """
    if not is_known_device(request, form.username):
        await login_account_limit.hit(account_key(form.username))
