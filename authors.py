"""Who writes here: the authors with a published post, whoever posted last first; and one
user's profile as a viewer may see it.

The /authors page's list (routers/pages.py), paged as the post lists are: after `skip` authors,
or after the author a cursor names (cursors.py: the author's last post's date and the author's
id take the place of a post's). Published means public (queries.visible_to(None)):
drafts make nobody an author, and a suspended author is not listed.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, bindparam, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import models
from config import settings
from cursors import Position, cursor_key, encode_cursor
from queries import sees_hidden, visible_to
from schemas import UserPublic

User, Post = models.User, models.Post

# Each author's published posts: how many, and when the last one came. One pass over the
# public posts, grouped: a blog has far fewer authors than posts.
_published = (
    select(
        Post.user_id,
        func.count().label("post_count"),
        func.max(Post.date_posted).label("last_posted"),
    )
    .where(visible_to(None))
    .group_by(Post.user_id)
    .subquery()
)
AUTHORS = (
    select(
        User.id,
        User.username,
        User.image_file,
        User.role,
        User.bio,
        User.created_at,
        _published.c.post_count,
        _published.c.last_posted,
    )
    .join(_published, _published.c.user_id == User.id)
    .order_by(_published.c.last_posted.desc(), User.id.desc())
)
AFTER_AUTHOR = tuple_(_published.c.last_posted, User.id) < tuple_(
    bindparam("after_date", type_=DateTime(timezone=True)),
    bindparam("after_id", type_=Integer),
)
AUTHOR_COUNT = select(func.count()).select_from(_published)


@dataclass(frozen=True)
class Author:
    user: UserPublic
    post_count: int
    last_posted: datetime


@dataclass(frozen=True)
class AuthorsPage:
    """A page of authors, shaped as PaginatedPosts is."""

    authors: list[Author]
    total: int
    skip: int
    limit: int
    has_more: bool
    next_cursor: str | None


async def fetch_authors_page(
    db: AsyncConnection | AsyncSession,
    *,
    skip: int = 0,
    after: Position | None = None,
    limit: int | None = None,
) -> AuthorsPage:
    """One page of authors, whoever published last first (ties: the newer account first)."""
    limit = limit or settings.posts_per_page
    statement = AUTHORS.where(AFTER_AUTHOR) if after else AUTHORS.offset(skip)
    params = {"after_date": after.date_posted, "after_id": after.id} if after else {}
    rows = (await db.execute(statement.limit(limit + 1), params)).all()
    rows, rest = rows[:limit], rows[limit:]
    authors = [
        Author(
            UserPublic.model_validate(
                {
                    "id": id_,
                    "username": username,
                    "image_file": image_file,
                    "role": role,
                    "bio": bio,
                    "created_at": created_at,
                }
            ),
            post_count,
            last_posted,
        )
        for id_, username, image_file, role, bio, created_at, post_count, last_posted in rows
    ]
    last = authors[-1] if rest else None
    return AuthorsPage(
        authors=authors,
        total=await db.scalar(AUTHOR_COUNT) or 0,
        skip=skip,
        limit=limit,
        has_more=bool(rest),
        next_cursor=author_cursor(last) if last else None,
    )


def author_cursor(author: Author) -> str:
    """Where the page after `author` starts."""
    position = Position(date_posted=author.last_posted, id=author.user.id)
    return encode_cursor(position, cursor_key(settings.jwt_secret))


# A user's profile: a suspended user's only for editors and admins (permissions: "see_hidden").
_PROFILE = select(
    User.id, User.username, User.image_file, User.role, User.bio, User.created_at, User.suspended_at
).where(User.id == bindparam("user_id"))
PUBLIC_PROFILE = _PROFILE.where(User.suspended_at.is_(None))
PROFILE_AS_VIEWER = _PROFILE.where(
    or_(User.suspended_at.is_(None), sees_hidden(bindparam("viewer_id")))
)


async def read_profile(
    db: AsyncConnection | AsyncSession, user_id: int, viewer_id: int | None
) -> UserPublic | None:
    """A user's profile if `viewer_id` may see it (None: the public): one query."""
    statement = PUBLIC_PROFILE if viewer_id is None else PROFILE_AS_VIEWER
    params = {"user_id": user_id, "viewer_id": viewer_id}
    row = (await db.execute(statement, params)).first()
    return None if row is None else UserPublic.model_validate(row)
