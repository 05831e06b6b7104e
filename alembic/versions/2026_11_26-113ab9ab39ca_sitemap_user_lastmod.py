"""sitemap: a user page's last change read from an index

Revision ID: 113ab9ab39ca
Revises: 9a7c5e3b1d01
Create Date: 2026-11-26 06:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "113ab9ab39ca"
down_revision: str | Sequence[str] | None = "9a7c5e3b1d01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_posts_user_id_updated_at",
        "posts",
        ["user_id", "updated_at"],
        unique=False,
        postgresql_where=sa.text("published"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(
        "ix_posts_user_id_updated_at", table_name="posts", postgresql_where=sa.text("published")
    )
