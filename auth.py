"""Password hashing (argon2 via pwdlib), JWT access tokens and the current-user dependency."""

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

import models
from config import settings
from database import SessionDep
from metrics import PASSWORD_HASHES_WAITING
from schemas import Detail

ALGORITHM = "HS256"


def _argon2_hasher() -> Argon2Hasher:
    costs = {
        "time_cost": settings.argon2_time_cost,
        "memory_cost": settings.argon2_memory_cost,
        "parallelism": settings.argon2_parallelism,
    }
    return Argon2Hasher(**{name: value for name, value in costs.items() if value is not None})


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
_hash_pool = ThreadPoolExecutor(
    max_workers=settings.password_hash_concurrency,
    thread_name_prefix="password-hash",
    initializer=_lower_thread_priority,
)


async def _in_hash_pool(function, *args):
    with PASSWORD_HASHES_WAITING.track_inprogress():
        return await asyncio.get_running_loop().run_in_executor(_hash_pool, function, *args)


async def hash_password(password: str) -> str:
    return await _in_hash_pool(password_hash.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Check a password; also return a fresh hash when the stored one uses outdated parameters."""
    return await _in_hash_pool(password_hash.verify_and_update, password, hashed or _DUMMY_HASH)


def create_access_token(user: models.User) -> str:
    expire = datetime.now(UTC) + timedelta(minutes=settings.access_token_expire_minutes)
    claims = {"sub": str(user.id), "ver": user.token_version, "exp": expire}
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/users/token", auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_user(
    token: Annotated[str | None, Depends(oauth2_scheme)], db: SessionDep
) -> models.User:
    if not token:
        raise _unauthorized(Detail.NOT_AUTHENTICATED)
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
        user_id = int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise _unauthorized(Detail.INVALID_TOKEN) from None
    user = await db.get(models.User, user_id) if -(2**31) <= user_id < 2**31 else None
    if user is None or claims.get("ver", 0) != user.token_version:
        raise _unauthorized(Detail.INVALID_TOKEN)
    return user


CurrentUser = Annotated[models.User, Depends(get_current_user)]
