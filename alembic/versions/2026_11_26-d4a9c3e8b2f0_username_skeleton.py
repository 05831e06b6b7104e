"""username skeleton: one owner per confusable look of a username

Adds `users.username_skeleton` (the UTS #39 skeleton of the case-folded, NFKC name, see
usernames.py) under a unique index. Existing rows are back-filled; where older rows already
look alike, the oldest account keeps its name and each later one is renamed to
`<name>-<id>` (logged), since login is by email, nobody is locked out.

Revision ID: d4a9c3e8b2f0
Revises: b7e1a0c5d2f1
Create Date: 2026-11-26 03:30:00.000000

"""

import unicodedata
from collections.abc import Sequence

import icu
import sqlalchemy as sa
from alembic import op

from usernames import rename_look_alikes

# revision identifiers, used by Alembic.
revision: str = "d4a9c3e8b2f0"
down_revision: str | Sequence[str] | None = "b7e1a0c5d2f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


users = sa.table(
    "users",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("username_skeleton", sa.Text),
)


def skeleton(name: str) -> str:
    """As usernames.username_skeleton when this revision was written (kept here, so that the
    migration does not change if the app's rule does)."""
    return icu.SpoofChecker().getSkeleton(0, unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    if op.get_context().as_sql:
        raise RuntimeError("d4a9c3e8b2f0 computes skeletons in Python: run it online, not --sql")
    op.add_column("users", sa.Column("username_skeleton", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = [tuple(row) for row in connection.execute(sa.select(users.c.id, users.c.username))]
    if rows:
        connection.execute(
            users.update()
            .where(users.c.id == sa.bindparam("user_id"))
            .values(username=sa.bindparam("name"), username_skeleton=sa.bindparam("key")),
            [
                {"user_id": user_id, "name": name, "key": key}
                for user_id, (name, key) in rename_look_alikes(rows, skeleton).items()
            ],
        )
    op.alter_column("users", "username_skeleton", nullable=False)
    op.create_index("uq_users_username_skeleton", "users", ["username_skeleton"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_skeleton", table_name="users")
    op.drop_column("users", "username_skeleton")
