"""writing, round two: users' bio and created_at, posts' slug, replies, post images

Existing users get a `created_at` of their first post (or of now, for one who never wrote);
existing posts a slug of their title, as content.slugify makes it today.

Revision ID: c9e3a5b7d1f4
Revises: b8d2f4a6c0e3
Create Date: 2026-12-04 21:20:00.000000

"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c9e3a5b7d1f4"
down_revision: str | Sequence[str] | None = "b8d2f4a6c0e3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

posts = sa.table(
    "posts",
    sa.column("id", sa.Integer),
    sa.column("title", sa.String),
    sa.column("slug", sa.String),
)


def slugify(title: str) -> str:
    """As content.slugify when this revision was written (kept here, so that the migration
    does not change if the app's rule does)."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > 80:
        cut = slug[:81]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut[:80]
    return slug.strip("-") or "post"


def upgrade() -> None:
    if op.get_context().as_sql:
        raise RuntimeError("c9e3a5b7d1f4 computes slugs in Python: run it online, not --sql")
    op.add_column(
        "users", sa.Column("bio", sa.String(length=500), server_default="", nullable=False)
    )
    op.add_column(
        "users",
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.execute(
        "UPDATE users SET created_at = first.date_posted FROM"
        " (SELECT user_id, min(date_posted) AS date_posted FROM posts GROUP BY user_id) first"
        " WHERE first.user_id = users.id AND first.date_posted < users.created_at"
    )
    op.add_column(
        "posts", sa.Column("slug", sa.String(length=80), server_default="post", nullable=False)
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(posts.c.id, posts.c.title)).all()
    if rows:
        connection.execute(
            posts.update()
            .where(posts.c.id == sa.bindparam("post_id"))
            .values(slug=sa.bindparam("s")),
            [{"post_id": id_, "s": slugify(title)} for id_, title in rows],
        )
    op.add_column("comments", sa.Column("parent_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_comments_parent_id_comments"),
        "comments",
        "comments",
        ["parent_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_comments_parent_id"), "comments", ["parent_id"], unique=False)
    op.create_table(
        "post_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_post_images_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_images")),
        sa.UniqueConstraint("key", name=op.f("uq_post_images_key")),
    )
    op.create_index(op.f("ix_post_images_user_id"), "post_images", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_post_images_user_id"), table_name="post_images")
    op.drop_table("post_images")
    op.drop_index(op.f("ix_comments_parent_id"), table_name="comments")
    op.drop_constraint(op.f("fk_comments_parent_id_comments"), "comments", type_="foreignkey")
    op.drop_column("comments", "parent_id")
    op.drop_column("posts", "slug")
    op.drop_column("users", "created_at")
    op.drop_column("users", "bio")
