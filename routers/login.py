"""JSON API for logging in and out: bearer tokens with refresh, the pages' cookie session, and
the list of a user's sessions (sessions.py has the rules)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

import models
import sessions
from auth import (
    CurrentAuth,
    create_access_token,
    release_connection,
    verify_password,
)
from caching import PRIVATE_ROUTE
from config import settings
from database import SessionDep
from ratelimit import account_key, limit_login_per_account, login_limit, remember_device
from schemas import (
    LOGIN_FORM_OPENAPI,
    CsrfToken,
    Detail,
    RefreshRequest,
    ResourceId,
    SessionInfo,
    Token,
    errors,
)

router = APIRouter(prefix="/api/users", tags=["login"], responses=errors(503))
LOGIN_LIMITS = [Depends(login_limit), Depends(limit_login_per_account)]


def bad_credentials() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=Detail.BAD_CREDENTIALS,
        headers={"WWW-Authenticate": "Bearer"},
    )


def no_store(response: Response) -> None:
    """RFC 6749 5.1: a response carrying a token is never stored by a cache or the browser."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


async def check_credentials(
    db: AsyncSession, form: OAuth2PasswordRequestForm, response: Response
) -> models.User:
    """The user whose email and password the form holds, or a 401 (the same whether the email
    is unknown or the password wrong, and as slow)."""
    user = await db.scalar(
        select(models.User).where(func.lower(models.User.email) == form.username.lower())
    )
    # Argon2 takes a while: end the read's transaction first, so the connection goes back to
    # the pool during the hash instead of idling in a transaction.
    await release_connection(db)
    valid, new_hash = await verify_password(
        form.password, user.password_hash if user else None, account=account_key(form.username)
    )
    if user is None or not valid:
        raise bad_credentials()
    if user.suspended_at is not None:  # the right password: the account may be told
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=Detail.ACCOUNT_SUSPENDED)
    # Stored with outdated argon2 parameters: upgrade it, now that the password is known.
    if new_hash and not await upgrade_hash(db, user, new_hash):
        raise bad_credentials()  # the account was deleted, or its password changed, meanwhile
    remember_device(response, user.email)
    return user


async def upgrade_hash(db: AsyncSession, user: models.User, new_hash: str) -> bool:
    """Replace the user's hash only if it is still the one just verified (compare-and-set): a
    password changed during the login must not be reverted to the old one."""
    result = await db.execute(
        update(models.User)
        .where(models.User.id == user.id, models.User.password_hash == user.password_hash)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]  # an UPDATE's CursorResult


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def token_response(user: models.User, session: models.Session, refresh_token: str) -> Token:
    return Token(
        access_token=create_access_token(user, session.id),
        expires_in=settings.access_token_expire_minutes * 60,
        refresh_token=refresh_token,
    )


@router.post(
    "/token",
    openapi_extra=LOGIN_FORM_OPENAPI,
    response_model=Token,
    responses=errors(400, 401, 403, 413, 429),
    dependencies=LOGIN_LIMITS,
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: SessionDep,
    request: Request,
    response: Response,
) -> Token:
    """Log in with email (as `username`) and password: a bearer token and a refresh token."""
    user = await check_credentials(db, form, response)
    session, refresh_token = await sessions.start_session(
        db, user.id, sessions.TOKEN, user_agent(request)
    )
    await db.commit()
    no_store(response)
    return token_response(user, session, refresh_token)


@router.post("/token/refresh", response_model=Token, responses=errors(400, 401, 413))
async def refresh(data: RefreshRequest, db: SessionDep, response: Response) -> Token:
    """A new access token and refresh token for a refresh token, which is spent: presenting
    it again ends its whole session."""
    rotated = await sessions.rotate(db, data.refresh_token)
    user = await db.get(models.User, rotated[0].user_id) if rotated else None
    await release_connection(db)
    if rotated is None or user is None or user.suspended_at is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=Detail.INVALID_REFRESH_TOKEN,
            headers={"WWW-Authenticate": "Bearer"},
        )
    no_store(response)
    return token_response(user, *rotated)


def set_session_cookies(response: Response, secret: str, csrf_token: str) -> None:
    common = {
        "max_age": int(sessions.lifetime().total_seconds()),
        "path": "/",
        "secure": bool(settings.session_cookie_secure),
        "samesite": "lax",
    }
    response.set_cookie(sessions.SESSION_COOKIE, secret, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(sessions.CSRF_COOKIE, csrf_token, httponly=False, **common)  # type: ignore[arg-type]


@router.post(
    "/session",
    openapi_extra=LOGIN_FORM_OPENAPI,
    response_model=CsrfToken,
    responses=errors(400, 401, 403, 413, 429),
    dependencies=LOGIN_LIMITS,
)
async def log_in_with_cookie(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: SessionDep,
    request: Request,
    response: Response,
) -> CsrfToken:
    """Log in for the pages: sets the HttpOnly `session` cookie and the `csrf_token` cookie,
    whose value unsafe requests send back as `X-CSRF-Token`."""
    user = await check_credentials(db, form, response)
    _session, secret = await sessions.start_session(
        db, user.id, sessions.COOKIE, user_agent(request)
    )
    await db.commit()
    csrf_token = sessions.csrf_token_for(secret)
    set_session_cookies(response, secret, csrf_token)
    no_store(response)
    return CsrfToken(csrf_token=csrf_token)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403))
async def log_out_of_cookie(auth: CurrentAuth, db: SessionDep, response: Response) -> None:
    """End the cookie session of this request and clear its cookies."""
    if auth.session_id is not None:
        await sessions.end_session(db, auth.user.id, auth.session_id)
        await db.commit()
    for name in (sessions.SESSION_COOKIE, sessions.CSRF_COOKIE):
        response.delete_cookie(name, path="/")


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403))
async def logout(auth: CurrentAuth, db: SessionDep, response: Response) -> None:
    """Log out: the session of this request ends, and with it this token (until it would
    expire, the token itself is refused too)."""
    if auth.token is not None:
        await db.execute(
            pg_insert(models.RevokedToken)
            .values(jti=auth.token.token_id, expires_at=auth.token.expires_at)
            .on_conflict_do_nothing()
        )
    else:  # by cookie: the cookies go too
        for name in (sessions.SESSION_COOKIE, sessions.CSRF_COOKIE):
            response.delete_cookie(name, path="/")
    if auth.session_id is not None:
        await sessions.end_session(db, auth.user.id, auth.session_id)
    # Rows past their token's expiry protect nothing: logouts are rare, so each clears them.
    await db.execute(delete(models.RevokedToken).where(models.RevokedToken.expires_at < func.now()))
    await db.commit()


@router.get(
    "/me/sessions",
    response_model=list[SessionInfo],
    responses=errors(401),
    dependencies=[PRIVATE_ROUTE],
)
async def list_sessions(auth: CurrentAuth, db: SessionDep) -> list[SessionInfo]:
    """Your live sessions, newest first; `current` marks the one of this request."""
    rows = await db.scalars(
        select(models.Session)
        .where(models.Session.user_id == auth.user.id, models.Session.expires_at > func.now())
        .order_by(models.Session.created_at.desc(), models.Session.id.desc())
    )
    return [
        SessionInfo.model_validate(
            {
                "id": row.id,
                "kind": row.kind,
                "created_at": row.created_at,
                "last_used_at": row.last_used_at,
                "expires_at": row.expires_at,
                "user_agent": row.user_agent,
                "current": row.id == auth.session_id,
            }
        )
        for row in rows
    ]


@router.delete(
    "/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, 404),
)
async def end_session(session_id: ResourceId, auth: CurrentAuth, db: SessionDep) -> None:
    """End one of your sessions: its tokens and cookie are refused from now on."""
    if not await sessions.end_session(db, auth.user.id, session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.SESSION_NOT_FOUND)
    await db.commit()


@router.delete("/me/sessions", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403))
async def end_other_sessions(auth: CurrentAuth, db: SessionDep) -> None:
    """End every session but the one of this request."""
    await sessions.end_sessions(db, auth.user.id, keep=auth.session_id)
    await db.commit()
