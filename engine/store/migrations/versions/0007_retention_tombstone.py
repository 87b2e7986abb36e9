"""retention_tombstone: what is left of a case destroyed when its retention term ended (SPEC §15)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import engine.store.schema

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_tombstone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("type_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("type_version", sa.Integer(), nullable=False),
        sa.Column("closed_at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("term", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("destroyed_at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("destroyed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
        sa.UniqueConstraint("ref"),
    )
    op.create_index(op.f("ix_retention_tombstone_run"), "retention_tombstone", ["run"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_retention_tombstone_run"), table_name="retention_tombstone")
    op.drop_table("retention_tombstone")
