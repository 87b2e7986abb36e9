"""cases.last_at: when a case's newest event happened

A simulation's clock (`--now`) may not go back before a case's last event; the row keeps that
moment so that the check costs no extra read. Existing rows get it from their history.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.schema

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("last_at", engine.store.schema.UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE cases SET last_at = (SELECT max(e.at) FROM case_event e WHERE e.case_id = cases.id)"
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35 and later have it): rebuilding the table, as Alembic's
    # batch mode would, trips over the foreign keys the events hold on it.
    op.drop_column("cases", "last_at")
