"""JSON API for users: accounts, profiles, passwords and profile pictures (logging in and the
sessions are in routers/login.py)."""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    HTTPException,
    Response,
    UploadFile,
    status,
)
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Row, bindparam, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import models
import sessions
from auth import (
    CurrentUser,
    ViewerId,
    hash_password,
    release_connection,
    verify_password,
)
from authors import read_profile
from body_limit import too_large
from caching import CACHED, PRIVATE_ROUTE, no_store
from config import settings
from database import Base, ReadDep, SessionDep
from email_utils import send_email_changed_notice, send_password_reset_email
from email_utils import send_verification_email as send_verification_email  # tests patch it
from images import RETRY_AFTER_SECONDS as IMAGE_RETRY_AFTER_SECONDS
from images import InvalidImage, ProcessingBusy, process_profile_picture
from paging import PageStartDep
from passwords import password_problem, personal_problem
from queries import fetch_posts_page
from ratelimit import (
    account_key,
    login_account_limit,
    password_change_limit,
    password_check_limit,
    password_reset_account_limit,
    password_reset_limit,
    register_limit,
    upload_limit,
)
from routers.verification import email_taken, issue_verification_token
from schemas import (
    Detail,
    ForgotPassword,
    Limit,
    Message,
    MessageResponse,
    PaginatedPosts,
    PasswordChange,
    ResetPassword,
    ResourceId,
    UserCreate,
    UserPrivate,
    UserPublic,
    UserUpdate,
    errors,
)
from storage import StorageError, delete_picture_quietly, get_storage, picture_key
from usernames import username_skeleton

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/users", tags=["users"], responses=errors(503))

# The database enforces uniqueness (also against concurrent requests); these name its indexes.
UNIQUE_VIOLATIONS = {
    "uq_users_username_lower": Detail.USERNAME_EXISTS,
    "uq_users_email_lower": Detail.EMAIL_EXISTS,
    "uq_users_username_skeleton": Detail.USERNAME_EXISTS,
}


def user_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.USER_NOT_FOUND)


async def commit_user(db: AsyncSession) -> None:
    """Commit; a duplicate username or email becomes a 400 with the contract's message.

    A user deleted by a concurrent request between our read and our write is a 404.
    """
    try:
        await db.commit()
    except StaleDataError:
        await db.rollback()
        raise user_not_found() from None
    except IntegrityError as exc:
        await db.rollback()
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint in UNIQUE_VIOLATIONS:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, UNIQUE_VIOLATIONS[constraint]
            ) from None
        raise


async def get_user_or_404(user_id: ResourceId, db: SessionDep) -> models.User:
    """A user as an ORM object, for the routes that change it (the connection goes back to the
    pool: the route writes in a transaction of its own)."""
    user = await db.get(models.User, user_id)
    await release_connection(db)
    if user is None:
        raise user_not_found()
    return user


UserDep = Annotated[models.User, Depends(get_user_or_404)]


def found(user: UserPublic | None) -> UserPublic:
    if user is None:
        raise user_not_found()
    return user


async def read_user_or_404(
    user_id: ResourceId, viewer_id: ViewerId, db: ReadDep, response: Response
) -> UserPublic:
    """A user's profile as the viewer may see it: one query on the read connection (two with a
    token: the viewer is read first, so their reads go to the primary). A suspended user is
    found by editors and admins only, and kept out of every cache."""
    user = found(await read_profile(db, user_id, viewer_id))
    if user.suspended:
        no_store(response)
    return user


async def read_public_user_or_404(user_id: ResourceId, db: ReadDep) -> UserPublic:
    """A user's profile as the public sees it, whoever asks (the feeds): one query."""
    return found(await read_profile(db, user_id, None))


UserReadDep = Annotated[UserPublic, Depends(read_user_or_404)]
PublicUserDep = Annotated[UserPublic, Depends(read_public_user_or_404)]


def ensure_self(user: models.User, current: models.User, detail: str) -> None:
    if user.id != current.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def invalid_password(problem: str, field: str = "new_password") -> RequestValidationError:
    """A 422 like FastAPI's own, worded as pydantic words the rules of the other routes."""
    msg = f"Value error, {problem}"
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": msg}])


def hash_reset_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def delete_reset_tokens(db: AsyncSession, user_id: int) -> None:
    await db.execute(
        delete(models.PasswordResetToken).where(models.PasswordResetToken.user_id == user_id)
    )


async def set_password(db: AsyncSession, user: models.User, new_hash: str) -> None:
    """New hash (made before: no transaction waits for argon2), every reset token gone, every
    session ended, every access token issued so far invalid."""
    await delete_reset_tokens(db, user.id)
    await sessions.end_sessions(db, user.id)
    # Changed after the statement above, so a row deleted meanwhile shows at commit_user.
    user.password_hash = new_hash
    user.token_version += 1


def wrong_password() -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.WRONG_PASSWORD)


def check_new_password(password: str, *, username: str, email: str) -> None:
    """The rules registration checks with the account's own name and email (passwords.py)."""
    if problem := personal_problem(password, username=username, email=email):
        raise invalid_password(problem)


async def check_current_password(user: models.User, password: str | None) -> None:
    """The password the user typed, checked against the hash loaded with them (no connection
    is held meanwhile: the dependencies gave it back)."""
    account = account_key(user.email)
    valid = (
        password is not None
        and (await verify_password(password, user.password_hash, account=account))[0]
    )
    if not valid:
        raise wrong_password()


async def lock_verified_user(db: AsyncSession, user: models.User) -> None:
    """Start the write: lock the user's row and make sure the password just verified is still
    theirs. Another request may have changed it while this one hashed."""
    current_hash = await db.scalar(
        select(models.User.password_hash).where(models.User.id == user.id).with_for_update()
    )
    if current_hash is None:
        await db.rollback()
        raise user_not_found()
    if current_hash != user.password_hash:
        await db.rollback()
        raise wrong_password()


USERS_CLAIMING = select(models.User.username_skeleton, func.lower(models.User.email)).where(
    or_(
        models.User.username_skeleton == bindparam("skeleton"),
        func.lower(models.User.email) == bindparam("email"),
    )
)


async def ensure_unclaimed(db: AsyncSession, username: str, email: str) -> None:
    """A 400 when the username (or a name that looks like it) or the email is taken, before
    anything else is judged: whoever registers a taken address learns that first. The unique
    indexes still decide between two registrations at once (commit_user)."""
    skeleton = username_skeleton(username)
    rows = (await db.execute(USERS_CLAIMING, {"skeleton": skeleton, "email": email})).all()
    if any(taken_skeleton == skeleton for taken_skeleton, _email in rows):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, Detail.USERNAME_EXISTS)
    if rows:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, Detail.EMAIL_EXISTS)


@router.post(
    "",
    response_model=UserPrivate,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 413, 429),
    dependencies=[Depends(register_limit)],
)
async def create_user(data: UserCreate, db: SessionDep) -> models.User:
    """Register a new account; a link to verify its email is mailed to it."""
    email = data.email.lower()
    await ensure_unclaimed(db, data.username, email)
    await release_connection(db)  # no connection held during the hash
    problem = password_problem(data.password) or personal_problem(
        data.password, username=data.username, email=email
    )
    if problem:
        raise invalid_password(problem, field="password")
    # No account yet, so no per-account share: registrations are limited per client.
    password_hash = await hash_password(data.password, account=None)
    user = models.User(username=data.username, email=email, password_hash=password_hash)
    db.add(user)
    await commit_user(db)
    token = await issue_verification_token(db, user.id, user.email)
    await send_verification_email(db, to_email=user.email, username=user.username, token=token)
    await db.commit()
    return user


@router.get("/me", response_model=UserPrivate, responses=errors(401), dependencies=[PRIVATE_ROUTE])
async def read_me(user: CurrentUser) -> models.User:
    """The logged-in user, with email."""
    return user


@router.get(
    "/me/posts",
    response_model=PaginatedPosts,
    responses=errors(401),
    dependencies=[PRIVATE_ROUTE],
)
async def list_my_posts(
    start: PageStartDep, user: CurrentUser, db: SessionDep, limit: Limit = None
) -> PaginatedPosts:
    """Your own posts, drafts included, newest first; `cursor=` or `skip` pages on."""
    # Your own data: on the session (the primary) that just loaded you, never cached.
    return await fetch_posts_page(
        db, skip=start.skip, after=start.after, limit=limit, user_id=user.id, viewer_id=user.id
    )


@router.patch(
    "/me/password",
    response_model=MessageResponse,
    responses=errors(400, 401, 404, 413, 429),
    dependencies=[Depends(password_check_limit), Depends(password_change_limit), PRIVATE_ROUTE],
)
async def change_password(
    data: PasswordChange, user: CurrentUser, db: SessionDep
) -> MessageResponse:
    """Change the password; every access token issued before stops working."""
    await check_current_password(user, data.current_password)
    check_new_password(data.new_password, username=user.username, email=user.email)
    new_hash = await hash_password(data.new_password, account=account_key(user.email))
    await lock_verified_user(db, user)
    await set_password(db, user, new_hash)
    await commit_user(db)
    return MessageResponse(message=Message.PASSWORD_CHANGED)


@router.post(
    "/forgot-password",
    response_model=MessageResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 413, 429),
    dependencies=[Depends(password_reset_limit)],
)
async def forgot_password(data: ForgotPassword, db: SessionDep) -> MessageResponse:
    """Mail a single-use reset link; answers the same whether or not the account exists."""
    await password_reset_account_limit.hit(account_key(data.email))
    token = secrets.token_urlsafe(32)
    account = await replace_reset_token(db, data.email, token)
    if account is not None:  # queued with the token: both are committed, or neither
        await send_password_reset_email(
            db, to_email=account.email, username=account.username, token=token
        )
    await db.commit()
    return MessageResponse(message=Message.RESET_REQUESTED)


# The statements of a reset request, run alike whether or not the email has an account (with
# `user_id` NULL they match no row): the response time tells nothing about which emails exist.
# id, email and username of the account a reset is asked for.
Account = Row[int, str, str]
LOCK_ACCOUNT_BY_EMAIL = (
    select(models.User.id, models.User.email, models.User.username)
    .where(func.lower(models.User.email) == bindparam("email"))
    .with_for_update()
)
DELETE_RESET_TOKENS = delete(models.PasswordResetToken).where(
    models.PasswordResetToken.user_id == bindparam("user_id")
)
RESET_TOKENS = Base.metadata.tables[models.PasswordResetToken.__tablename__]
INSERT_RESET_TOKEN = insert(RESET_TOKENS).from_select(
    ["user_id", "token_hash", "expires_at"],
    select(
        models.User.id,
        bindparam("token_hash", type_=models.PasswordResetToken.token_hash.type),
        bindparam("expires_at", type_=models.PasswordResetToken.expires_at.type),
    ).where(models.User.id == bindparam("user_id")),
)


async def replace_reset_token(db: AsyncSession, email: str, token: str) -> Account | None:
    """Store the token's hash as the account's only reset token; the account, or None.

    The row lock makes concurrent requests for one account take turns: each deletes the
    tokens committed before it, so exactly one token stays valid.
    """
    account = (await db.execute(LOCK_ACCOUNT_BY_EMAIL, {"email": email.lower()})).first()
    user_id = account.id if account else None
    await db.execute(DELETE_RESET_TOKENS, {"user_id": user_id})
    expires_at = datetime.now(UTC) + timedelta(minutes=settings.reset_token_expire_minutes)
    await db.execute(
        INSERT_RESET_TOKEN,
        {"user_id": user_id, "token_hash": hash_reset_token(token), "expires_at": expires_at},
    )
    return account


@router.post(
    "/reset-password",
    response_model=MessageResponse,
    responses=errors(400, 404, 413, 429),
    dependencies=[Depends(password_reset_limit)],
)
async def reset_password(data: ResetPassword, db: SessionDep) -> MessageResponse:
    """Set a new password with the token from the reset mail."""
    token_hash = hash_reset_token(data.token)
    valid = models.PasswordResetToken.token_hash == token_hash
    unexpired = models.PasswordResetToken.expires_at > func.now()
    # Check first, so a made-up token costs no hash; then hash with no connection held.
    found = (
        await db.execute(
            select(models.User.username, models.User.email)
            .join(models.PasswordResetToken)
            .where(valid, unexpired)
        )
    ).first()
    await release_connection(db)
    if found is None:
        raise invalid_reset_token()
    check_new_password(data.new_password, username=found.username, email=found.email)
    new_hash = await hash_password(data.new_password, account=account_key(found.email))
    # Deleting the token is how it is used: two requests with one token cannot both succeed.
    user_id = await db.scalar(
        delete(models.PasswordResetToken)
        .where(valid, unexpired)
        .returning(models.PasswordResetToken.user_id)
    )
    user = await db.get(models.User, user_id) if user_id is not None else None
    if user is None:
        await db.rollback()
        raise invalid_reset_token()
    await set_password(db, user, new_hash)
    await commit_user(db)
    # Whoever reads the account's mail is its owner: guesses by others no longer lock them out.
    await login_account_limit.clear(account_key(user.email))
    return MessageResponse(message=Message.PASSWORD_RESET)


def invalid_reset_token() -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.INVALID_RESET_TOKEN)


@router.get("/{user_id}", response_model=UserPublic, responses=errors(404), dependencies=[CACHED])
async def get_user(user: UserReadDep) -> UserPublic:
    """A user's public profile; a suspended user's, for editors and admins only."""
    return user


@router.get(
    "/{user_id}/posts", response_model=PaginatedPosts, responses=errors(404), dependencies=[CACHED]
)
async def list_user_posts(
    start: PageStartDep,
    user: UserReadDep,
    viewer_id: ViewerId,
    db: ReadDep,
    limit: Limit = None,
) -> PaginatedPosts:
    """A user's posts, newest first; `cursor=` or `skip` pages on. A suspended user's, for
    editors and admins only (the user's page loads more of them here)."""
    # An editor looking at a suspended user sees the posts the public does not.
    seen_as = viewer_id if user.suspended else None
    return await fetch_posts_page(
        db, skip=start.skip, after=start.after, limit=limit, user_id=user.id, viewer_id=seen_as
    )


@router.patch(
    "/{user_id}",
    response_model=UserPrivate,
    responses=errors(400, 401, 403, 404, 413, 429),
    # Per client, first: a flood of changes is refused before it costs a query.
    dependencies=[Depends(password_check_limit)],
)
async def update_user(
    data: UserUpdate,
    user: UserDep,
    current: CurrentUser,
    db: SessionDep,
) -> models.User:
    """Change your username and/or email; a new email needs `current_password`. With
    EMAIL_VERIFICATION_REQUIRED the new email waits in `pending_email` until its link is used."""
    ensure_self(user, current, Detail.UPDATE_USER_FORBIDDEN)
    changes = data.model_dump(exclude_unset=True, exclude={"current_password"})
    old_email = user.email
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    new_email = changes.get("email", old_email)
    pending = bool(settings.email_verification_required)
    token = None
    if new_email != old_email:
        # Whoever holds a token must not take the account over by moving its reset mail. Each
        # try is a guess at the password: limited as the password change is, before the hash.
        await password_change_limit.hit(str(user.id))
        await check_current_password(user, data.current_password)
        await lock_verified_user(db, user)
        if pending:  # the old address stays the account's until the new one proves itself
            if await email_taken(db, new_email, user.id):
                await db.rollback()
                raise HTTPException(status.HTTP_400_BAD_REQUEST, Detail.EMAIL_EXISTS)
            changes["pending_email"] = changes.pop("email")
        else:
            await delete_reset_tokens(db, user.id)  # links sent to the old address die
            changes.update(email_verified=False, pending_email=None)
        token = await issue_verification_token(db, user.id, new_email)
    for name, value in changes.items():
        setattr(user, name, value)
    if token is not None:  # both mails queued with the change itself
        await send_email_changed_notice(
            db, to_email=old_email, username=user.username, new_email=new_email, pending=pending
        )
        await send_verification_email(db, to_email=new_email, username=user.username, token=token)
    await commit_user(db)
    return user


@router.delete(
    "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403, 404)
)
async def delete_user(user: UserDep, current: CurrentUser, db: SessionDep) -> None:
    """Delete your account, with its posts, reset tokens and picture."""
    ensure_self(user, current, Detail.DELETE_USER_FORBIDDEN)
    image_file = await lock_picture(db, user)
    await db.delete(user)
    await db.commit()
    if image_file:
        await delete_picture_quietly(image_file)


async def lock_picture(db: AsyncSession, user: models.User) -> str | None:
    """Lock the user's row and read its picture as it is now, not as it was when loaded.

    Concurrent uploads and deletes then queue up on the row, so no picture is left orphaned.
    """
    return await db.scalar(
        select(models.User.image_file).where(models.User.id == user.id).with_for_update()
    )


async def read_upload(file: UploadFile) -> bytes:
    """Read at most the allowed size (BodyLimitMiddleware already cut off far bigger bodies)."""
    limit = settings.max_upload_size_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise too_large()
    return data


@router.patch(
    "/{user_id}/picture",
    response_model=UserPrivate,
    responses=errors(400, 401, 403, 404, 413, 429, 503),
    dependencies=[Depends(upload_limit)],
)
async def upload_picture(
    file: UploadFile, user: UserDep, current: CurrentUser, db: SessionDep
) -> models.User:
    """Upload a profile picture (JPEG, PNG, GIF or WebP); stored as a 300x300 JPEG."""
    ensure_self(user, current, Detail.UPDATE_PICTURE_FORBIDDEN)
    data = await read_upload(file)
    try:
        picture = await process_profile_picture(data)
    except InvalidImage:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.INVALID_IMAGE) from None
    except ProcessingBusy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Detail.IMAGES_BUSY,
            headers={"Retry-After": str(IMAGE_RETRY_AFTER_SECONDS)},
        ) from None

    new_file = f"{uuid.uuid4().hex}.jpg"
    try:
        await get_storage().save(picture_key(new_file), picture, "image/jpeg")
    except StorageError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=Detail.UPLOAD_FAILED
        ) from None

    old_file = await lock_picture(db, user)
    user.image_file = new_file
    try:
        await db.commit()
    except Exception as exc:
        await delete_picture_quietly(new_file)  # the row did not change: drop the new object
        if isinstance(exc, StaleDataError):  # the account was deleted meanwhile
            raise user_not_found() from None
        raise
    if old_file:  # only now that the row points at the new picture
        await delete_picture_quietly(old_file)
    return user


@router.delete(
    "/{user_id}/picture", response_model=UserPrivate, responses=errors(400, 401, 403, 404)
)
async def delete_picture(user: UserDep, current: CurrentUser, db: SessionDep) -> models.User:
    """Remove your profile picture; the default one shows again."""
    ensure_self(user, current, Detail.DELETE_PICTURE_FORBIDDEN)
    old_file = await lock_picture(db, user)
    if old_file is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.NO_PICTURE)
    user.image_file = None
    await db.commit()
    await delete_picture_quietly(old_file)
    return user
