"""access_log: every read of a case's personal values (SPEC §13.2)

Who read, when, which case, with which command: one row per read, not chained, holding no
values. Nothing was logged before this revision: the table starts empty.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.schema

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("ref", sa.String(length=32), nullable=True),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=400), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"], unique=False)
    op.create_index(op.f("ix_access_log_case_id"), "access_log", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_log_case_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
