"""writing: Markdown rendered to HTML, tags, drafts, comments

Revision ID: 9a7c5e3b1d01
Revises: d4a9c3e8b2f0
Create Date: 2026-11-26 03:24:24.535595

Existing posts are back-filled: their Markdown is rendered (content.py), they stay published,
and their first publication and last edit are their `date_posted`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from content import render_post

# revision identifiers, used by Alembic.
revision: str = "9a7c5e3b1d01"
down_revision: str | Sequence[str] | None = "d4a9c3e8b2f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 500

posts = sa.table(
    "posts",
    sa.column("id", sa.Integer),
    sa.column("content", sa.Text),
    sa.column("content_html", sa.Text),
    sa.column("excerpt", sa.String),
    sa.column("reading_time_minutes", sa.Integer),
)


def backfill_rendered_content() -> None:
    """Render every existing post, a batch at a time (keyset on id: no OFFSET, no big list)."""
    connection = op.get_bind()
    update = (
        sa.update(posts)
        .where(posts.c.id == sa.bindparam("post_id"))
        .values(
            content_html=sa.bindparam("content_html"),
            excerpt=sa.bindparam("excerpt"),
            reading_time_minutes=sa.bindparam("reading_time_minutes"),
        )
    )
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(posts.c.id, posts.c.content)
            .where(posts.c.id > last_id)
            .order_by(posts.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        connection.execute(update, [{"post_id": id_, **render_post(text)} for id_, text in rows])
        last_id = rows[-1].id


def upgrade() -> None:
    op.add_column("posts", sa.Column("content_html", sa.Text(), nullable=True))
    op.add_column("posts", sa.Column("excerpt", sa.String(length=200), nullable=True))
    op.add_column("posts", sa.Column("reading_time_minutes", sa.Integer(), nullable=True))
    backfill_rendered_content()
    for column in ("content_html", "excerpt", "reading_time_minutes"):
        op.alter_column("posts", column, nullable=False)

    op.add_column(
        "posts",
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=30)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "posts",
        sa.Column("published", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.add_column(
        "posts", sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "posts",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.execute("UPDATE posts SET first_published_at = date_posted, updated_at = date_posted")

    # The public lists read published posts only: the index leaves drafts out.
    op.drop_index("ix_posts_date_posted_id", table_name="posts")
    op.create_index(
        "ix_posts_date_posted_id",
        "posts",
        [sa.literal_column("date_posted DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("published"),
    )
    op.create_index(
        "ix_posts_tags",
        "posts",
        ["tags"],
        unique=False,
        postgresql_using="gin",
        postgresql_where=sa.text("published"),
    )

    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "date_posted",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_comments_post_id_posts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_comments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index(
        "ix_comments_post_id_date_posted_id",
        "comments",
        ["post_id", "date_posted", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_comments_user_id"), "comments", ["user_id"], unique=False)


def downgrade() -> None:
    # The old schema has no drafts: each would become a public post. Refuse instead.
    drafts = op.get_bind().scalar(sa.text("SELECT count(*) FROM posts WHERE NOT published"))
    if drafts:
        raise RuntimeError(f"{drafts} draft(s) would become public: publish or delete them first")
    op.drop_index(op.f("ix_comments_user_id"), table_name="comments")
    op.drop_index("ix_comments_post_id_date_posted_id", table_name="comments")
    op.drop_table("comments")

    op.drop_index("ix_posts_tags", table_name="posts")
    op.drop_index("ix_posts_date_posted_id", table_name="posts")
    op.create_index(
        "ix_posts_date_posted_id",
        "posts",
        [sa.literal_column("date_posted DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    for column in (
        "updated_at",
        "first_published_at",
        "published",
        "tags",
        "reading_time_minutes",
        "excerpt",
        "content_html",
    ):
        op.drop_column("posts", column)
