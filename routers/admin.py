"""JSON API for admins: roles and suspensions (permissions.py says who may).

A suspended account's sessions end; its logins are refused (403 `Account suspended`) and its
tokens too; it, its posts and its comments are hidden from the public (posts carry
`author_suspended`, which every public read filters on) until the suspension is lifted.
"""

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import models
import sessions
from auth import CurrentUser
from database import SessionDep
from permissions import ADMIN, Action, can
from schemas import Detail, ResourceId, RoleChange, UserPublic, errors

router = APIRouter(prefix="/api/users", tags=["users"], responses=errors(503))


class LastAdmin(Exception):
    """Demoting this admin would leave the site with none."""


def ensure_can(user: models.User, action: Action, detail: str) -> None:
    if not can(user, action):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


async def locked_user_or_404(db: AsyncSession, user_id: int) -> models.User:
    user = await db.scalar(select(models.User).where(models.User.id == user_id).with_for_update())
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.USER_NOT_FOUND)
    return user


async def set_role(db: AsyncSession, user: models.User, role: str) -> None:
    """Give `user` (locked) the role; LastAdmin when it would leave no admin who is not
    suspended. The admins' rows are locked first, so two admins demoting each other at once
    take turns, and the second finds the first already gone."""
    if user.role == ADMIN and role != ADMIN:
        admins = (
            await db.scalars(
                select(models.User.id)
                .where(models.User.role == ADMIN, models.User.suspended_at.is_(None))
                .with_for_update()
            )
        ).all()
        if set(admins) <= {user.id}:
            raise LastAdmin
    user.role = role


@router.patch(
    "/{user_id}/role", response_model=UserPublic, responses=errors(400, 401, 403, 404, 413)
)
async def change_role(
    user_id: ResourceId, data: RoleChange, current: CurrentUser, db: SessionDep
) -> UserPublic:
    """Make a user an author, an editor or an admin (admins only)."""
    ensure_can(current, "change_role", Detail.CHANGE_ROLE_FORBIDDEN)
    user = await locked_user_or_404(db, user_id)
    try:
        await set_role(db, user, data.role)
    except LastAdmin:
        await db.rollback()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.LAST_ADMIN) from None
    await db.commit()
    return UserPublic.model_validate(user)


async def hide_posts_of(db: AsyncSession, user_id: int, hidden: bool) -> None:
    await db.execute(
        update(models.Post).where(models.Post.user_id == user_id).values(author_suspended=hidden)
    )


@router.post(
    "/{user_id}/suspension", response_model=UserPublic, responses=errors(400, 401, 403, 404)
)
async def suspend(user_id: ResourceId, current: CurrentUser, db: SessionDep) -> UserPublic:
    """Suspend an account (admins only): its sessions end, and it, its posts and its comments
    are hidden from the public until the suspension is lifted."""
    ensure_can(current, "suspend", Detail.SUSPEND_FORBIDDEN)
    if user_id == current.id:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.SUSPEND_SELF)
    user = await locked_user_or_404(db, user_id)
    if user.suspended_at is None:
        user.suspended_at = datetime.now(UTC)
    await hide_posts_of(db, user.id, hidden=True)
    await sessions.end_sessions(db, user.id)
    await db.commit()
    return UserPublic.model_validate(user)


@router.delete("/{user_id}/suspension", response_model=UserPublic, responses=errors(401, 403, 404))
async def lift_suspension(user_id: ResourceId, current: CurrentUser, db: SessionDep) -> UserPublic:
    """Lift a suspension (admins only): the account and all it wrote show again."""
    ensure_can(current, "suspend", Detail.SUSPEND_FORBIDDEN)
    user = await locked_user_or_404(db, user_id)
    user.suspended_at = None
    await hide_posts_of(db, user.id, hidden=False)
    await db.commit()
    return UserPublic.model_validate(user)
