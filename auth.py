"""Password hashing (argon2 via pwdlib), JWT access tokens and the current-user dependency."""

import asyncio
import hashlib
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

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

import models
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


def create_access_token(user: models.User) -> str:
    expire = datetime.now(UTC) + timedelta(minutes=settings.access_token_expire_minutes)
    # `jti` names this token, so logging out can revoke it alone.
    claims = {
        "sub": str(user.id),
        "ver": user.token_version,
        "exp": expire,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/users/token", auto_error=False)


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


def read_access_token(token: str) -> AccessToken:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
        subject, expires, version = claims["sub"], claims["exp"], claims.get("ver", 0)
        # Read strictly: `int()` would also take " 7", "07", "+7" or "٧" for the user 7, and
        # PyJWT an `exp` of 1.5 or "1700000000".
        if not (isinstance(subject, str) and CANONICAL_ID.fullmatch(subject)):
            raise ValueError("sub is not a canonical positive integer")
        if type(expires) is not int or type(version) is not int:  # not a bool, not a float
            raise ValueError("exp and ver must be integers")
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
        )
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, OSError):
        raise _unauthorized(Detail.INVALID_TOKEN) from None


async def get_access_token(token: Annotated[str | None, Depends(oauth2_scheme)]) -> AccessToken:
    if not token:
        raise _unauthorized(Detail.NOT_AUTHENTICATED)
    return read_access_token(token)


async def release_connection(db: AsyncSession) -> None:
    """End the session's transaction, so its connection goes back to the pool.

    The dependencies that load what a route acts on (the current user, a user by id) call it:
    the route may then hash a password, decode an image or talk to S3 without holding a
    connection, and writes in a short transaction of its own. The objects already loaded stay
    usable (the sessions do not expire them on commit).
    """
    await db.commit()


async def get_current_user(
    token: Annotated[AccessToken, Depends(get_access_token)], db: SessionDep
) -> models.User:
    in_range = -(2**31) <= token.user_id < 2**31
    # One query loads the user and checks that the token was not revoked.
    user = (
        await db.scalar(
            select(models.User).where(
                models.User.id == token.user_id,
                ~exists().where(models.RevokedToken.jti == token.token_id),
            )
        )
        if in_range
        else None
    )
    await release_connection(db)
    if user is None or token.version != user.token_version:
        raise _unauthorized(Detail.INVALID_TOKEN)
    return user


CurrentUser = Annotated[models.User, Depends(get_current_user)]
CurrentToken = Annotated[AccessToken, Depends(get_access_token)]


# The token's user, if the token was not revoked: what a token must pass to show its drafts.
VIEWER_TOKEN_VERSION = select(models.User.token_version).where(
    models.User.id == bindparam("user_id"),
    ~exists().where(models.RevokedToken.jti == bindparam("token_id")),
)


async def get_viewer_id(
    token: Annotated[str | None, Depends(oauth2_scheme)], db: SessionDep
) -> int | None:
    """Who is reading a public route: the user of a valid token, else None (anonymous).

    A missing, bad, expired, revoked or outdated token reads as anonymous rather than a 401:
    the public stays public. It only decides whether the reader's own drafts are visible
    (routers.posts.visible_to). Anonymous readers cost no query. A reader with a token may be
    reading their own drafts: the request's reads then go to the primary, like the token check
    (routes declare the viewer before their read connection).
    """
    if not token:
        return None
    try:
        access = read_access_token(token)
    except HTTPException:
        return None
    if not -(2**31) <= access.user_id < 2**31:
        return None
    read_from_primary(db)
    params = {"user_id": access.user_id, "token_id": access.token_id}
    version = await db.scalar(VIEWER_TOKEN_VERSION, params)
    return access.user_id if version is not None and version == access.version else None


ViewerId = Annotated[int | None, Depends(get_viewer_id)]
