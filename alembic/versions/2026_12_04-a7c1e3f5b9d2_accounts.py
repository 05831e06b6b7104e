"""accounts: verified email, pending email, roles, suspension; comment status and reports

Existing accounts are verified authors (they registered before verification existed) and
existing comments are approved (they were shown to everyone already).

Revision ID: a7c1e3f5b9d2
Revises: f1c3b5d7e9a2
Create Date: 2026-12-04 21:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a7c1e3f5b9d2"
down_revision: str | Sequence[str] | None = "f1c3b5d7e9a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added with `true` for the rows there are, then the default of new rows is false.
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.alter_column("users", "email_verified", server_default=sa.text("false"))
    op.add_column("users", sa.Column("pending_email", sa.String(length=320), nullable=True))
    op.add_column(
        "users",
        sa.Column("role", sa.String(length=10), server_default="author", nullable=False),
    )
    op.add_column("users", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_users_role"), "users", "role IN ('author', 'editor', 'admin')"
    )
    op.add_column(
        "comments",
        sa.Column("status", sa.String(length=10), server_default="approved", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_comments_status"), "comments", "status IN ('approved', 'pending', 'hidden')"
    )
    op.create_index(
        "ix_comments_pending_date_posted",
        "comments",
        ["date_posted", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "email_verification_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_verification_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_verification_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_verification_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_email_verification_tokens_user_id"),
        "email_verification_tokens",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "comment_reports",
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
            name=op.f("fk_comment_reports_comment_id_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_comment_reports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comment_id", "user_id", name=op.f("pk_comment_reports")),
    )
    op.create_index(
        op.f("ix_comment_reports_user_id"), "comment_reports", ["user_id"], unique=False
    )


def downgrade() -> None:
    # The old schema has no comment status and no suspension: a pending or hidden comment, and
    # a suspended account with all it wrote, would show to everyone. Refuse instead.
    connection = op.get_bind()
    held = connection.scalar(sa.text("SELECT count(*) FROM comments WHERE status <> 'approved'"))
    suspended = connection.scalar(
        sa.text("SELECT count(*) FROM users WHERE suspended_at IS NOT NULL")
    )
    if held or suspended:
        raise RuntimeError(
            f"{held} pending or hidden comment(s) and {suspended} suspended account(s) would"
            " become public: approve or delete those comments, lift the suspensions first"
        )
    op.drop_index(op.f("ix_comment_reports_user_id"), table_name="comment_reports")
    op.drop_table("comment_reports")
    op.drop_index(
        op.f("ix_email_verification_tokens_user_id"), table_name="email_verification_tokens"
    )
    op.drop_table("email_verification_tokens")
    op.drop_index("ix_comments_pending_date_posted", table_name="comments")
    op.drop_constraint(op.f("ck_comments_status"), "comments", type_="check")
    op.drop_column("comments", "status")
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.drop_column("users", "suspended_at")
    op.drop_column("users", "role")
    op.drop_column("users", "pending_email")
    op.drop_column("users", "email_verified")
