"""Password hashing (argon2 via pwdlib), JWT access tokens and the current-user dependency."""

import asyncio
import hashlib
import hmac
import os
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import ColumnElement, Select, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import models
import sessions
from config import settings
from database import SessionDep, read_from_primary
from schemas import Detail

ALGORITHM = "HS256"
CANONICAL_ID = re.compile(r"[1-9][0-9]{0,9}")  # ASCII digits, no sign, no leading zero
T = TypeVar("T")


def _argon2_hasher() -> Argon2Hasher:
    costs = {
        "time_cost": settings.argon2_time_cost,
        "memory_cost": settings.argon2_memory_cost,
        "parallelism": settings.argon2_parallelism,
    }
    given = {name: value for name, value in costs.items() if value is not None}
    # pwdlib types its **kwargs as argon2's `Type` enum, though they are these ints.
    return Argon2Hasher(**given)  # type: ignore[arg-type]


password_hash = PasswordHash((_argon2_hasher(),))
# Verified when the email is unknown, so a login takes as long whether or not the account exists.
_DUMMY_HASH = password_hash.hash("dummy password for timing equality")


def _lower_thread_priority() -> None:
    """Linux schedules each thread on its own: this raises the nice value of this thread only."""
    if settings.password_hash_niceness and sys.platform == "linux":
        thread = threading.get_native_id()
        niceness = max(os.getpriority(os.PRIO_PROCESS, thread), settings.password_hash_niceness)
        os.setpriority(os.PRIO_PROCESS, thread, niceness)


# Argon2 is slow on purpose and takes memory. Hashes run off the event loop in a pool of their
# own: its size bounds the memory, its low priority keeps a burst of logins from starving reads.
HASH_WORKERS = settings.password_hash_concurrency
_hash_pool = ThreadPoolExecutor(
    max_workers=HASH_WORKERS,
    thread_name_prefix="password-hash",
    initializer=_lower_thread_priority,
)
# Hashes submitted and not finished (running or queued), in all and per account. Finished
# ones are counted off by the executor's thread, hence the lock.
_hash_jobs = 0
_hash_jobs_by_account: Counter[str] = Counter()
_hash_jobs_lock = threading.Lock()
# What a client is told to wait when the queue is full: a few hashes' time.
HASH_RETRY_AFTER_SECONDS = 2


def hashes_waiting() -> int:
    """Password hashes queued behind the running ones, in this worker."""
    return max(0, _hash_jobs - HASH_WORKERS)


def _hash_finished(account: str | None, _future: Future[Any]) -> None:
    global _hash_jobs
    with _hash_jobs_lock:
        _hash_jobs -= 1
        if account is not None:
            _hash_jobs_by_account[account] -= 1
            if not _hash_jobs_by_account[account]:
                del _hash_jobs_by_account[account]  # it holds only accounts in flight


async def _in_hash_pool(function: Callable[..., T], *args: object, account: str | None = None) -> T:
    """Run `function` in the hash pool, for `account` (ratelimit.account_key of its email;
    None: a hash for no account, such as the demo data's).

    Two refusals, both at once and before anything is queued:
    - 429 when the account already has PASSWORD_HASH_PER_ACCOUNT hashes in flight: however
      many requests one account sends at once, it holds that many places, and everyone
      else's logins wait behind at most those;
    - 503 when PASSWORD_HASH_MAX_WAITING wait already: a bounded queue turns a flood of
      logins from many accounts into quick refusals instead of minutes of waiting.
    """
    global _hash_jobs
    with _hash_jobs_lock:
        if account is not None and (
            _hash_jobs_by_account[account] >= settings.password_hash_per_account
        ):
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=Detail.RATE_LIMITED,
                headers={"Retry-After": str(HASH_RETRY_AFTER_SECONDS)},
            )
        if _hash_jobs - HASH_WORKERS >= settings.password_hash_max_waiting:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=Detail.PASSWORD_CHECKS_BUSY,
                headers={"Retry-After": str(HASH_RETRY_AFTER_SECONDS)},
            )
        _hash_jobs += 1
        if account is not None:
            _hash_jobs_by_account[account] += 1
    future = _hash_pool.submit(function, *args)
    future.add_done_callback(partial(_hash_finished, account))  # also when cancelled unrun
    return await asyncio.wrap_future(future)


async def hash_password(password: str, *, account: str | None) -> str:
    return await _in_hash_pool(password_hash.hash, password, account=account)


async def verify_password(
    password: str, hashed: str | None, *, account: str
) -> tuple[bool, str | None]:
    """Check a password; also return a fresh hash when the stored one uses outdated parameters."""
    return await _in_hash_pool(
        password_hash.verify_and_update, password, hashed or _DUMMY_HASH, account=account
    )


def create_access_token(user: models.User, session_id: int | None = None) -> str:
    expire = datetime.now(UTC) + timedelta(minutes=settings.access_token_expire_minutes)
    # `jti` names this token, so logging out can revoke it alone; `sid` its session, so
    # ending the session ends it too.
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "ver": user.token_version,
        "exp": expire,
        "jti": uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/users/token", auto_error=False)
# The pages' session (sessions.py); shown in the OpenAPI schema as the other way in.
cookie_scheme = APIKeyCookie(name=sessions.SESSION_COOKIE, auto_error=False)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


@dataclass(frozen=True)
class AccessToken:
    """A bearer token whose signature and expiry were checked."""

    user_id: int
    version: int
    token_id: str  # the key of the revocation list
    expires_at: datetime
    session_id: int | None = None  # None: a token made without a session (by hand, or older)


def read_access_token(token: str) -> AccessToken:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
        subject, expires, version = claims["sub"], claims["exp"], claims.get("ver", 0)
        session_id = claims.get("sid")
        # Read strictly: `int()` would also take " 7", "07", "+7" or "٧" for the user 7, and
        # PyJWT an `exp` of 1.5 or "1700000000".
        if not (isinstance(subject, str) and CANONICAL_ID.fullmatch(subject)):
            raise ValueError("sub is not a canonical positive integer")
        if type(expires) is not int or type(version) is not int:  # not a bool, not a float
            raise ValueError("exp and ver must be integers")
        if session_id is not None and not (type(session_id) is int and 0 < session_id < 2**31):
            raise ValueError("sid must be a session's id")
        user_id = int(subject)
        jti = claims.get("jti")
        if jti is not None and not (isinstance(jti, str) and 0 < len(jti) <= 64):
            raise ValueError("unusable jti")
        return AccessToken(
            user_id=user_id,
            version=version,
            # A token made without `jti` (by hand, or by an older release) is named by its hash.
            token_id=jti or hashlib.sha256(token.encode()).hexdigest(),
            expires_at=datetime.fromtimestamp(expires, UTC),
            session_id=session_id,
        )
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, OSError):
        raise _unauthorized(Detail.INVALID_TOKEN) from None


async def release_connection(db: AsyncSession) -> None:
    """End the session's transaction, so its connection goes back to the pool.

    The dependencies that load what a route acts on (the current user, a user by id) call it:
    the route may then hash a password, decode an image or talk to S3 without holding a
    connection, and writes in a short transaction of its own. The objects already loaded stay
    usable (the sessions do not expire them on commit).
    """
    await db.commit()


@dataclass(frozen=True)
class Authenticated:
    """Who a request is, and by what: a bearer token (`token`) or the session cookie."""

    user: models.User
    session_id: int | None
    token: AccessToken | None  # None: by the cookie


def _live_session(session_id: Any, user_id: Any) -> ColumnElement[bool]:
    return exists().where(
        models.Session.id == session_id,
        models.Session.user_id == user_id,
        models.Session.expires_at > func.now(),
    )


def _user_of_token(access: AccessToken) -> Select[models.User]:
    """The token's user, if the token was not revoked and its session (if it names one) lives."""
    conditions = [
        models.User.id == access.user_id,
        models.User.suspended_at.is_(None),  # suspending ends the sessions; older tokens too
        ~exists().where(models.RevokedToken.jti == access.token_id),
    ]
    if access.session_id is not None:
        conditions.append(_live_session(access.session_id, models.User.id))
    return select(models.User).where(*conditions)


def _allowed_origins(request: Request) -> set[str]:
    """The app's own origins: FRONTEND_URL's, and the one the request was sent to."""
    frontend = urlsplit(settings.frontend_url)
    host = request.headers.get("host", "")
    return {
        f"{frontend.scheme}://{frontend.netloc}",
        f"{request.url.scheme}://{host}",
    }


def check_csrf(request: Request, secret: str) -> None:
    """A request by cookie that may change something must prove it comes from the pages: the
    session's CSRF token in X-CSRF-Token (which another site cannot read, nor make a browser
    send), and, when the browser says where it comes from, this origin. 403 otherwise."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(sessions.CSRF_HEADER, "").encode()
    expected = sessions.csrf_token_for(secret).encode()
    origin = request.headers.get("origin")
    if not hmac.compare_digest(sent, expected) or (
        origin is not None and origin not in _allowed_origins(request)
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.CSRF_FAILED)


COOKIE_SESSION_USER = (
    select(models.User, models.Session.id, models.Session.last_used_at)
    .join(models.Session, models.Session.user_id == models.User.id)
    .where(
        models.Session.secret_hash == bindparam("secret_hash"),
        models.Session.kind == sessions.COOKIE,
        models.Session.expires_at > func.now(),
        models.User.suspended_at.is_(None),
    )
)


async def authenticate(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
    db: SessionDep,
) -> Authenticated:
    """The bearer token, or else the session cookie (with its CSRF check); 401 without either.

    One query loads the user and checks the token or cookie; then the connection goes back.
    """
    if token:
        access = read_access_token(token)
        in_range = -(2**31) <= access.user_id < 2**31
        user = await db.scalar(_user_of_token(access)) if in_range else None
        await release_connection(db)
        if user is None or access.version != user.token_version:
            raise _unauthorized(Detail.INVALID_TOKEN)
        return Authenticated(user=user, session_id=access.session_id, token=access)
    if not cookie:
        raise _unauthorized(Detail.NOT_AUTHENTICATED)
    row = (await db.execute(COOKIE_SESSION_USER, {"secret_hash": sessions.digest(cookie)})).first()
    if row is None:
        await release_connection(db)
        raise _unauthorized(Detail.INVALID_TOKEN)
    user, session_id, last_used_at = row
    check_csrf(request, cookie)
    now = datetime.now(UTC)
    if sessions.is_stale(last_used_at, now):
        await db.execute(
            update(models.Session).where(models.Session.id == session_id).values(last_used_at=now)
        )
    await release_connection(db)
    return Authenticated(user=user, session_id=session_id, token=None)


CurrentAuth = Annotated[Authenticated, Depends(authenticate)]


async def get_current_user(auth: CurrentAuth) -> models.User:
    return auth.user


CurrentUser = Annotated[models.User, Depends(get_current_user)]


# The token's user, if the token was not revoked: what a token must pass to show its drafts.
VIEWER_TOKEN_VERSION = select(models.User.token_version).where(
    models.User.id == bindparam("user_id"),
    models.User.suspended_at.is_(None),
    ~exists().where(models.RevokedToken.jti == bindparam("token_id")),
)
VIEWER_OF_SESSION = VIEWER_TOKEN_VERSION.where(
    _live_session(bindparam("session_id"), models.User.id)
)
VIEWER_OF_COOKIE = (
    select(models.Session.user_id)
    .join(models.User, models.User.id == models.Session.user_id)
    .where(
        models.Session.secret_hash == bindparam("secret_hash"),
        models.Session.kind == sessions.COOKIE,
        models.Session.expires_at > func.now(),
        models.User.suspended_at.is_(None),
    )
)


async def get_viewer_id(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
    db: SessionDep,
) -> int | None:
    """Who is reading a public route: the user of a valid token or session cookie, else None.

    A missing, bad, expired, revoked or outdated token reads as anonymous rather than a 401:
    the public stays public. It only decides whether the reader's own drafts are visible
    (queries.visible_to). Anonymous readers cost no query. A reader with a token may be
    reading their own drafts: the request's reads then go to the primary, like the token check
    (routes declare the viewer before their read connection).
    """
    if not token:
        if not cookie:
            return None
        read_from_primary(db)
        user_id: int | None = await db.scalar(
            VIEWER_OF_COOKIE, {"secret_hash": sessions.digest(cookie)}
        )
        return user_id
    try:
        access = read_access_token(token)
    except HTTPException:
        return None
    if not -(2**31) <= access.user_id < 2**31:
        return None
    read_from_primary(db)
    params = {"user_id": access.user_id, "token_id": access.token_id}
    if access.session_id is None:
        version = await db.scalar(VIEWER_TOKEN_VERSION, params)
    else:
        version = await db.scalar(VIEWER_OF_SESSION, {**params, "session_id": access.session_id})
    return access.user_id if version is not None and version == access.version else None


ViewerId = Annotated[int | None, Depends(get_viewer_id)]
