"""Tables: users, posts, password-reset tokens and revoked access tokens."""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

import usernames
from database import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50))
    # usernames.username_skeleton(username), kept current by `_set_skeleton`; unique, so two
    # names that look alike cannot both exist. Text: a skeleton can be longer than its name.
    username_skeleton: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    image_file: Mapped[str | None] = mapped_column(String(64), default=None)
    # Bumped when the password changes: access tokens carry it, so old tokens stop working.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")

    posts: Mapped[list["Post"]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )
    reset_tokens: Mapped[list["PasswordResetToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("uq_users_username_lower", func.lower(username), unique=True),
        Index("uq_users_email_lower", func.lower(email), unique=True),
        Index("uq_users_username_skeleton", username_skeleton, unique=True),
    )

    @validates("username")
    def _set_skeleton(self, _key: str, username: str) -> str:
        self.username_skeleton = usernames.username_skeleton(username)
        return username


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    date_posted: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    author: Mapped[User] = relationship(back_populates="posts", lazy="joined", innerjoin=True)

    __mapper_args__ = {"eager_defaults": True}  # INSERT ... RETURNING date_posted, no refresh

    __table_args__ = (
        # The list pages: newest first, ties broken by id.
        Index("ix_posts_date_posted_id", date_posted.desc(), id.desc()),
        # A user's posts, newest first; also serves the foreign key.
        Index("ix_posts_user_id_date_posted_id", user_id, date_posted.desc(), id.desc()),
    )


class PasswordResetToken(Base):
    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only the SHA-256 of the token is stored: a leaked table resets no password.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="reset_tokens")


class RevokedToken(Base):
    """Access tokens ended before their expiry (logout), until they would have expired anyway."""

    __tablename__ = "revoked_tokens"

    # The token's `jti` claim (or, for a token without one, the SHA-256 of the token).
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Past this moment the token is refused for its `exp` anyway: the row may go.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
