"""Tables: users, posts, comments, password-reset tokens, revoked access tokens, sessions."""

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.engine import Connection
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

import usernames
from content import render_post, slugify
from database import Base

MAX_TAG_LENGTH = 30


def _rendered(column: str) -> Callable[[DefaultExecutionContext], str | int]:
    """A column default derived from the row's Markdown `content`, for rows inserted without
    it (the routes render in a worker thread and pass every column themselves)."""

    def default(context: DefaultExecutionContext) -> str | int:
        parameters = context.get_current_parameters()  # type: ignore[no-untyped-call]
        return render_post(parameters["content"])[column]

    return default


# SQLAlchemy passes the context only to a default whose signature asks for it: mutmut's
# trampoline (`*args, **kwargs`) would hide it, so the function is left unmutated.
def _now_if_published(ctx: DefaultExecutionContext) -> datetime | None:  # pragma: no mutate block
    parameters = ctx.get_current_parameters()  # type: ignore[no-untyped-call]
    return datetime.now(UTC) if parameters["published"] else None


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
    bio: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Bumped when the password changes: access tokens carry it, so old tokens stop working.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Proven by the link mailed to it (accounts made before verification existed: true).
    email_verified: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # A new address waiting for its link to be used, when verification is required.
    pending_email: Mapped[str | None] = mapped_column(String(320), default=None)
    # "author", "editor" or "admin": what each may do is permissions.py's.
    role: Mapped[str] = mapped_column(String(10), default="author", server_default="author")
    # Set while an admin has suspended the account: it and all it wrote are hidden.
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    posts: Mapped[list["Post"]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )
    reset_tokens: Mapped[list["PasswordResetToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    comments: Mapped[list["Comment"]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("uq_users_username_lower", func.lower(username), unique=True),
        Index("uq_users_email_lower", func.lower(email), unique=True),
        Index("uq_users_username_skeleton", username_skeleton, unique=True),
        CheckConstraint("role IN ('author', 'editor', 'admin')", name="role"),
    )

    @validates("username")
    def _set_skeleton(self, _key: str, username: str) -> str:
        self.username_skeleton = usernames.username_skeleton(username)
        return username


SEARCH_VECTOR = "post_search_vector(title, tags, content)"
# The posts everyone sees (queries.visible_to), as the partial indexes' predicate.
PUBLIC = "published AND NOT author_suspended"


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # A draft's creation time until it is first published; from then on that moment.
    date_posted: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Rendered from `content` when it is written (content.py): pages never render Markdown.
    content_html: Mapped[str] = mapped_column(Text, default=_rendered("content_html"))
    excerpt: Mapped[str] = mapped_column(String(200), default=_rendered("excerpt"))
    reading_time_minutes: Mapped[int] = mapped_column(default=_rendered("reading_time_minutes"))
    # Normalised (content.py's rules are in schemas.Tags), distinct and sorted. An array on the
    # row rather than a table: a page needs no join, and a generated tsvector can weigh them.
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(MAX_TAG_LENGTH)), default=list, server_default=text("'{}'")
    )
    # content.slugify(title), kept current by `_set_slug`: the readable part of the post's URL.
    slug: Mapped[str] = mapped_column(String(80), default="post", server_default="post")
    published: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Whether the author is suspended (kept in step by the suspension routes): the public sees
    # `published AND NOT author_suspended`, which the partial indexes below hold exactly.
    author_suspended: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # Set once, when the post is first published: publishing again never moves `date_posted`.
    first_published_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=_now_if_published
    )
    # The last edit (or `date_posted`): what feeds and the sitemap call "updated".
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    author: Mapped[User] = relationship(back_populates="posts", lazy="joined", innerjoin=True)
    comments: Mapped[list["Comment"]] = relationship(
        back_populates="post", cascade="all, delete-orphan", passive_deletes=True
    )

    # INSERT ... RETURNING date_posted (and the other server defaults), no refresh.
    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        # The public lists: published posts, newest first, ties broken by id; their total is
        # an index-only count of this (smaller) partial index.
        Index(
            "ix_posts_date_posted_id",
            date_posted.desc(),
            id.desc(),
            postgresql_where=text(PUBLIC),
        ),
        # A user's posts, newest first (drafts too, for their author); serves the foreign key.
        Index("ix_posts_user_id_date_posted_id", user_id, date_posted.desc(), id.desc()),
        # The sitemap's user pages: the newest edit of each user's published posts, read from
        # the index alone for a range of users (routers/feeds.py).
        Index(
            "ix_posts_user_id_updated_at",
            user_id,
            updated_at,
            postgresql_where=text(PUBLIC),
        ),
        # A tag's posts: `tags @> ARRAY[...]` on published posts.
        Index(
            "ix_posts_tags",
            tags,
            postgresql_using="gin",
            postgresql_where=text(PUBLIC),
        ),
    )

    @validates("title")
    def _set_slug(self, _key: str, title: str) -> str:
        self.slug = slugify(title)
        return title


# What full-text search matches (search.py): title, tags and content, weighted A, B
# and C. Computed by PostgreSQL on every write, so no code path can forget it. A column of the
# table but not of the mapped class: mapped, every INSERT and UPDATE would return it.
POST_SEARCH_VECTOR = Column(
    "search_vector", TSVECTOR, Computed(SEARCH_VECTOR, persisted=True), nullable=False
)
POSTS_TABLE = Base.metadata.tables["posts"]
POSTS_TABLE.append_column(POST_SEARCH_VECTOR)
# Search: `search_vector @@ websearch_to_tsquery(...)` on published posts.
Index(
    "ix_posts_search_vector",
    POST_SEARCH_VECTOR,
    postgresql_using="gin",
    postgresql_where=text(PUBLIC),
)


# A generated column needs an IMMUTABLE expression, and array_to_string is only STABLE: it
# calls each element's output function, which for some types (dates, floats) depends on
# settings. For varchar[] the output is the text itself, whatever the settings, so this
# wrapper is immutable in fact and is declared so. Its body is parsed when it is created (a
# SQL-standard body): 'english' is bound then, not looked up by search_path on each write.
# The Alembic revision 0c4e7d2a9f13 creates the same function (a frozen copy); create_all
# (the tests) creates it through this DDL, before the table that uses it.
SEARCH_VECTOR_FUNCTION = """\
CREATE FUNCTION post_search_vector(title varchar, tags varchar[], content text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', array_to_string(tags, ' ')), 'B')
    || setweight(to_tsvector('english', content), 'C')"""
DROP_SEARCH_VECTOR_FUNCTION = "DROP FUNCTION IF EXISTS post_search_vector(varchar, varchar[], text)"


def _create_search_function(_table: Table, connection: Connection, **_: object) -> None:
    connection.execute(text(SEARCH_VECTOR_FUNCTION))


def _drop_search_function(_table: Table, connection: Connection, **_: object) -> None:
    connection.execute(text(DROP_SEARCH_VECTOR_FUNCTION))


event.listen(POSTS_TABLE, "before_create", _create_search_function)
event.listen(POSTS_TABLE, "after_drop", _drop_search_function)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    # Deleting a user deletes their comments on everyone's posts; the index serves that.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(Text)
    date_posted: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # "approved" (seen by all), "pending" (awaiting a moderator) or "hidden" (by a moderator).
    status: Mapped[str] = mapped_column(String(10), default="approved", server_default="approved")
    # The top-level comment this one replies to (one level deep); its replies go with it.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), index=True, default=None
    )

    post: Mapped[Post] = relationship(back_populates="comments")
    author: Mapped[User] = relationship(back_populates="comments", lazy="joined", innerjoin=True)

    __mapper_args__ = {"eager_defaults": True}

    __table_args__ = (
        # A post's comments, oldest first, and their count (index-only) for comment_count.
        Index("ix_comments_post_id_date_posted_id", post_id, date_posted, id),
        # The moderation queue: pending comments, oldest first.
        Index(
            "ix_comments_pending_date_posted",
            date_posted,
            id,
            postgresql_where=text("status = 'pending'"),
        ),
        CheckConstraint("status IN ('approved', 'pending', 'hidden')", name="status"),
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


class Session(Base):
    """One login: of the OAuth2 form (`token`: a chain of refresh tokens) or of the pages
    (`cookie`: the secret of the `session` cookie). Ending it deletes the row: its refresh
    tokens go with it, and its access tokens (they carry its id) are refused."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "token" or "cookie"
    # SHA-256 of the cookie's secret (cookie sessions only; never the secret itself).
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    user_agent: Mapped[str] = mapped_column(String(200), default="", server_default="")


class RefreshToken(Base):
    """A refresh token of a `token` session, by its SHA-256. It works once: refreshing marks
    it spent and adds the next; a spent one presented again ends its whole session."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    spent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailVerificationToken(Base):
    """A link mailed to prove an address: the account's email, or the `pending_email` it is
    moving to. Single use; a new one replaces the user's older ones."""

    __tablename__ = "email_verification_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # only the SHA-256
    email: Mapped[str] = mapped_column(String(320))  # the address the link was sent to
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommentReport(Base):
    """One user's report of one comment (reported again: still one row)."""

    __tablename__ = "comment_reports"

    comment_id: Mapped[int] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PostImage(Base):
    """A picture uploaded for posts, counted against its uploader's quota."""

    __tablename__ = "post_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # post_images/<uuid hex>.webp
    size_bytes: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
