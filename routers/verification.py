"""JSON API for proving an email address: the link mailed on registering and on an email
change is used here, and asked for again.

Registering and changing the email (routers/users.py) issue their tokens with the functions
below. Every verification mail goes out by the name `routers.users.send_verification_email`,
which tests patch as they patch the reset mail.
"""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

import models
import sessions
from auth import CurrentUser
from config import settings
from database import SessionDep
from ratelimit import verification_email_limit
from schemas import Detail, Message, MessageResponse, VerifyEmail, errors

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/users", tags=["users"], responses=errors(503))

Token = models.EmailVerificationToken


async def issue_verification_token(db: AsyncSession, user_id: int, email: str) -> str:
    """A new token proving `email` is the user's, in place of their older ones; the caller
    commits. The user's row is locked first, so concurrent requests take turns and exactly one
    token stays valid."""
    await db.execute(select(models.User.id).where(models.User.id == user_id).with_for_update())
    await db.execute(delete(Token).where(Token.user_id == user_id))
    token = sessions.new_secret()
    expires_at = datetime.now(UTC) + timedelta(hours=settings.email_verification_expire_hours)
    db.add(
        Token(
            user_id=user_id, token_hash=sessions.digest(token), email=email, expires_at=expires_at
        )
    )
    return token


async def email_taken(db: AsyncSession, email: str, user_id: int) -> bool:
    """Whether another account has `email`, compared as the unique index compares."""
    other = await db.scalar(
        select(models.User.id)
        .where(func.lower(models.User.email) == email.lower(), models.User.id != user_id)
        .limit(1)
    )
    return other is not None


def invalid_verification_token() -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.INVALID_VERIFICATION_TOKEN)


@router.post("/verify-email", response_model=MessageResponse, responses=errors(400, 413))
async def verify_email(data: VerifyEmail, db: SessionDep) -> MessageResponse:
    """Prove an address with the token from the verification mail: the account's email is
    verified, or the address waiting to replace it becomes the email."""
    from routers import users  # it imports this module, so it is looked up once both are loaded

    valid = (Token.token_hash == sessions.digest(data.token), Token.expires_at > func.now())
    user_id = await db.scalar(select(Token.user_id).where(*valid))
    # The user's row first, then the token's, as an email change or a new link locks them.
    user = None if user_id is None else await db.get(models.User, user_id, with_for_update=True)
    # Deleting the token is how it is used: two requests with one token cannot both succeed.
    email = await db.scalar(delete(Token).where(*valid).returning(Token.email)) if user else None
    if user is None or email is None:
        await db.rollback()
        raise invalid_verification_token()
    if email == user.email:
        user.email_verified = True
    elif email == user.pending_email:
        await users.delete_reset_tokens(db, user.id)  # links sent to the old address die
        user.email, user.pending_email, user.email_verified = email, None, True
    else:  # an address the account no longer has nor waits for: the token is spent for nothing
        await db.commit()
        raise invalid_verification_token()
    # Another account may have taken the address meanwhile: the unique index says so (a 400).
    await users.commit_user(db)
    return MessageResponse(message=Message.EMAIL_VERIFIED)


@router.post(
    "/me/verification-email",
    response_model=MessageResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 401, 429),
    dependencies=[Depends(verification_email_limit)],
)
async def send_verification_email_again(user: CurrentUser, db: SessionDep) -> MessageResponse:
    """Mail a new verification link: to the address waiting to become your email, if there is
    one, else to your email; the links mailed before stop working."""
    from routers import users  # it imports this module, so it is looked up once both are loaded

    await db.refresh(user, with_for_update=True)  # as it is now, not as the login loaded it
    to_email = user.pending_email or (None if user.email_verified else user.email)
    if to_email is None:
        await db.rollback()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.EMAIL_ALREADY_VERIFIED)
    token = await issue_verification_token(db, user.id, to_email)
    await users.send_verification_email(db, to_email=to_email, username=user.username, token=token)
    await db.commit()
    return MessageResponse(message=Message.VERIFICATION_SENT)
