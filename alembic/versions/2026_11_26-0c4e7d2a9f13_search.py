"""search: a generated tsvector of each post (title A, tags B, content C) and its GIN index

Revision ID: 0c4e7d2a9f13
Revises: 113ab9ab39ca
Create Date: 2026-11-26 06:30:00.000000

PostgreSQL computes the column for every existing post when it is added (the table is
rewritten once), then on every write. The function is models.SEARCH_VECTOR_FUNCTION, frozen
here as this revision created it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0c4e7d2a9f13"
down_revision: str | Sequence[str] | None = "113ab9ab39ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# IMMUTABLE in fact for these argument types (see models.py): array_to_string is STABLE only
# because some element types' text output depends on settings; varchar's does not.
CREATE_FUNCTION = """\
CREATE FUNCTION post_search_vector(title varchar, tags varchar[], content text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', array_to_string(tags, ' ')), 'B')
    || setweight(to_tsvector('english', content), 'C')"""


def upgrade() -> None:
    op.execute(CREATE_FUNCTION)
    op.add_column(
        "posts",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("post_search_vector(title, tags, content)", persisted=True),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_posts_search_vector",
        "posts",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
        postgresql_where=sa.text("published"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_posts_search_vector",
        table_name="posts",
        postgresql_using="gin",
        postgresql_where=sa.text("published"),
    )
    op.drop_column("posts", "search_vector")
    op.execute("DROP FUNCTION post_search_vector(varchar, varchar[], text)")
