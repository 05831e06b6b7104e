"""confusable letters: I, l, 1 (and i) are one letter in a username's skeleton, O and 0 too

Recomputes `users.username_skeleton` with usernames.py's fold of today. Where two existing
names now look alike (`alice` and `aIice`), the oldest account keeps its name and each later
one is renamed to `<name>-<id>` (logged); login is by email, so nobody is locked out.

Revision ID: e5f2a8c4b7d3
Revises: 0c4e7d2a9f13
Create Date: 2026-12-04 20:00:00.000000

"""

import unicodedata
from collections.abc import Callable, Sequence

import icu
import sqlalchemy as sa
from alembic import op

from usernames import rename_look_alikes

# revision identifiers, used by Alembic.
revision: str = "e5f2a8c4b7d3"
down_revision: str | Sequence[str] | None = "0c4e7d2a9f13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table(
    "users",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("username_skeleton", sa.Text),
)


def icu_skeleton(name: str) -> str:
    """The skeleton before this revision (d4a9c3e8b2f0's)."""
    return icu.SpoofChecker().getSkeleton(0, unicodedata.normalize("NFKC", name).casefold())


def skeleton(name: str) -> str:
    """As usernames.username_skeleton when this revision was written (kept here, so that the
    migration does not change if the app's rule does)."""
    return icu_skeleton(name).casefold().replace("i", "l")


def store(names: Callable[[list[tuple[int, str]]], dict[int, tuple[str, str]]]) -> None:
    connection = op.get_bind()
    rows = [tuple(row) for row in connection.execute(sa.select(users.c.id, users.c.username))]
    if not rows:
        return
    # The index is checked row by row: dropped while the skeletons change, then made again.
    op.drop_index("uq_users_username_skeleton", table_name="users")
    connection.execute(
        users.update()
        .where(users.c.id == sa.bindparam("user_id"))
        .values(username=sa.bindparam("name"), username_skeleton=sa.bindparam("key")),
        [
            {"user_id": user_id, "name": name, "key": key}
            for user_id, (name, key) in names(rows).items()
        ],
    )
    op.create_index("uq_users_username_skeleton", "users", ["username_skeleton"], unique=True)


def upgrade() -> None:
    if op.get_context().as_sql:
        raise RuntimeError("e5f2a8c4b7d3 computes skeletons in Python: run it online, not --sql")
    store(lambda rows: rename_look_alikes(rows, skeleton))


def downgrade() -> None:
    # Names distinct under the coarser fold are distinct under the finer one: no renaming.
    store(lambda rows: {user_id: (name, icu_skeleton(name)) for user_id, name in rows})
