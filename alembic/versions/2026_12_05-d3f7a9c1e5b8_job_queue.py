"""job queue: procrastinate's tables, types and functions, in a schema of their own

The schema is the one procrastinate ships (procrastinate/sql/schema.sql), created in the
`procrastinate` schema (jobs.py connects with that search_path), so the app's own tables and
models stay apart from it. A later procrastinate that changes its schema comes with its SQL
migrations in procrastinate/sql/migrations: a new revision runs those, in the same schema.

Revision ID: d3f7a9c1e5b8
Revises: c9e3a5b7d1f4
Create Date: 2026-12-05 09:00:00.000000

"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

# revision identifiers, used by Alembic.
revision: str = "d3f7a9c1e5b8"
down_revision: str | Sequence[str] | None = "c9e3a5b7d1f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "procrastinate"


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA {SCHEMA}")
    op.execute(f"SET LOCAL search_path TO {SCHEMA}")
    # Run as written (no parameters, so no placeholders): the driver takes it whole.
    op.get_bind().exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
    op.execute("RESET search_path")


def downgrade() -> None:
    op.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
