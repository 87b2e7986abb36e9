"""outbox.lease_owner: which delivery run holds a row's lease

A delivery renews the leases of its rows before every message and sends a row only while the
lease is still its own; a timestamp alone cannot tell two runs apart (two runs can claim at
the same instant). Rows leased by an older version have no owner: once their lease has run
out, any run takes them up, as before.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lease_owner", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "lease_owner")
