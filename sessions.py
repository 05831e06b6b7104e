"""Sessions: one login each, refresh tokens rotated as RFC 9700 (4.14.2) says, and the cookie
the pages hold.

- A `token` session (the OAuth2 form, `POST /api/users/token`) holds a chain of refresh
  tokens. Each works once: refreshing spends it and issues the next. A spent one presented
  again was copied, so the whole session ends, strictly (no grace window): its newest refresh
  token and every access token it issued (they carry the session's id as `sid`) are refused.
- A `cookie` session (the pages, `POST /api/users/session`) holds the secret of the HttpOnly
  `session` cookie; its CSRF token is an HMAC of that secret under the app's key, so one
  session's CSRF token is worthless with another's cookie.

Secrets are `secrets.token_urlsafe(32)`, stored only as their SHA-256. A user has at most
MAX_SESSIONS live sessions (a new login ends the least recently used); expired ones are deleted
whenever someone logs in, so the tables do not grow without bound. Ending a session deletes
its row, and its refresh tokens with it.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import models
from config import settings

TOKEN, COOKIE = "token", "cookie"
MAX_SESSIONS = 50
USER_AGENT_LENGTH = 200
SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# A cookie session's `last_used_at` is written at most this often: not a write per request.
TOUCH_EVERY = timedelta(minutes=5)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token_for(secret: str) -> str:
    """The CSRF token of the cookie session whose secret is `secret` (signed double submit)."""
    key = settings.jwt_secret.encode()
    return hmac.new(key, b"csrf:" + secret.encode(), hashlib.sha256).hexdigest()


def lifetime() -> timedelta:
    return timedelta(days=settings.refresh_token_expire_days)


def is_stale(last_used_at: datetime, now: datetime) -> bool:
    return now - last_used_at >= TOUCH_EVERY


async def start_session(
    db: AsyncSession, user_id: int, kind: str, user_agent: str
) -> tuple[models.Session, str]:
    """A new session of `kind` for the user, and its secret (the first refresh token, or the
    cookie's value). The caller commits."""
    now = datetime.now(UTC)
    await db.execute(delete(models.Session).where(models.Session.expires_at <= now))
    newest = (
        select(models.Session.id)
        .where(models.Session.user_id == user_id)
        .order_by(models.Session.last_used_at.desc(), models.Session.id.desc())
        .limit(MAX_SESSIONS - 1)
    )
    await db.execute(
        delete(models.Session).where(
            models.Session.user_id == user_id, models.Session.id.not_in(newest.scalar_subquery())
        )
    )
    secret = new_secret()
    session = models.Session(
        user_id=user_id,
        kind=kind,
        secret_hash=digest(secret) if kind == COOKIE else None,
        created_at=now,
        last_used_at=now,
        expires_at=now + lifetime(),
        user_agent=user_agent[:USER_AGENT_LENGTH],
    )
    db.add(session)
    await db.flush()  # its id, for the refresh token and the access token's `sid`
    if kind == TOKEN:
        db.add(models.RefreshToken(token_hash=digest(secret), session_id=session.id))
    return session, secret


async def rotate(db: AsyncSession, refresh_token: str) -> tuple[models.Session, str] | None:
    """Spend `refresh_token` and issue the next of its session: (the session, the new token).

    None when the token is unknown, its session expired or ended, or it was spent already,
    in which case its session ends now. Spending is one UPDATE on the token's row: of two
    refreshes with one token at once, the second waits for the first and then finds it spent,
    so there are never two live chains. Commits.
    """
    token_hash = digest(refresh_token)
    now = datetime.now(UTC)
    session_id = await db.scalar(
        update(models.RefreshToken)
        .where(models.RefreshToken.token_hash == token_hash, models.RefreshToken.spent.is_(False))
        .values(spent=True)
        .returning(models.RefreshToken.session_id)
    )
    if session_id is None:
        replayed = await db.scalar(
            select(models.RefreshToken.session_id).where(
                models.RefreshToken.token_hash == token_hash
            )
        )
        if replayed is not None:  # spent before: copied. The whole session ends.
            await db.execute(delete(models.Session).where(models.Session.id == replayed))
        await db.commit()
        return None
    session = await db.scalar(
        select(models.Session).where(
            models.Session.id == session_id, models.Session.expires_at > now
        )
    )
    if session is None:
        await db.commit()
        return None
    secret = new_secret()
    db.add(models.RefreshToken(token_hash=digest(secret), session_id=session.id))
    session.last_used_at = now
    await db.commit()
    return session, secret


async def end_session(db: AsyncSession, user_id: int, session_id: int) -> bool:
    """End one of the user's sessions; False when the user has no such session."""
    ended = await db.scalar(
        delete(models.Session)
        .where(models.Session.id == session_id, models.Session.user_id == user_id)
        .returning(models.Session.id)
    )
    return ended is not None


async def end_sessions(db: AsyncSession, user_id: int, keep: int | None = None) -> None:
    """End every session of the user, but `keep` when given."""
    statement = delete(models.Session).where(models.Session.user_id == user_id)
    if keep is not None:
        statement = statement.where(models.Session.id != keep)
    await db.execute(statement)
