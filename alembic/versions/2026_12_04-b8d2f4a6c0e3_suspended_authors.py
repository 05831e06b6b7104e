"""suspended authors: posts.author_suspended, and the partial indexes of public posts

A suspended user's posts are hidden from the public. The flag lives on the post (kept in step
by the suspension routes), so the public lists keep counting and paging on partial indexes,
whose predicate becomes `published AND NOT author_suspended`.

Revision ID: b8d2f4a6c0e3
Revises: a7c1e3f5b9d2
Create Date: 2026-12-04 21:10:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b8d2f4a6c0e3"
down_revision: str | Sequence[str] | None = "a7c1e3f5b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns, method) of the partial indexes over the posts everyone sees.
PUBLIC_INDEXES = [
    ("ix_posts_date_posted_id", [sa.text("date_posted DESC"), sa.text("id DESC")], None),
    ("ix_posts_user_id_updated_at", ["user_id", "updated_at"], None),
    ("ix_posts_tags", ["tags"], "gin"),
    ("ix_posts_search_vector", ["search_vector"], "gin"),
]


def rebuild_indexes(predicate: str) -> None:
    for name, columns, method in PUBLIC_INDEXES:
        op.drop_index(name, table_name="posts")
        op.create_index(
            name,
            "posts",
            columns,
            unique=False,
            postgresql_using=method,
            postgresql_where=sa.text(predicate),
        )


def upgrade() -> None:
    op.add_column(
        "posts",
        sa.Column(
            "author_suspended", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.execute(
        "UPDATE posts SET author_suspended = true"
        " WHERE user_id IN (SELECT id FROM users WHERE suspended_at IS NOT NULL)"
    )
    rebuild_indexes("published AND NOT author_suspended")


def downgrade() -> None:
    rebuild_indexes("published")
    op.drop_column("posts", "author_suspended")
