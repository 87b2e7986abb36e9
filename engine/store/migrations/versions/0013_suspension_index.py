"""case_event: a partial index of the suspensions, by case

The report reads an open case's stay now. It looked up each open case's events for the move
that began that stay and the suspensions since: at a million cases, 35,000 open ones, about
1.3 s of reading event pages. The case's own row holds when its stay now began
(`state_entered_at`), so only the cases suspended since need their events read; this index
(of the `suspended` events alone, a few among millions) tells which. Only suspensions are
entered, so writing any other event costs nothing more. Written out as it stood at this
revision (engine/store/indexes.py declares it for schema.py and the mirror).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.get_bind().exec_driver_sql(
        "CREATE INDEX ix_case_event_suspended ON case_event (case_id) WHERE action = 'suspended'")


def downgrade() -> None:
    op.drop_index("ix_case_event_suspended", table_name="case_event")
