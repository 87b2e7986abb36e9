"""cases.directive_*: the administrator's instruction, the case's fourth clock (SPEC §12.1)

A `case direct` gives a case an instruction with a term; the row keeps the latest one (the
number of its `directed` event, when it was given, the state it was given in, its term, and
whether it was met or missed) so that the sweep finds a missed one by `next_fire_at` like any
other clock. No case has an instruction before this revision: the columns start empty.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.schema

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("directive_given_at", "directive_due", "directive_met_at", "directive_missed_at")


def upgrade() -> None:
    op.add_column("cases", sa.Column("directive_seq", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("directive_given_at", engine.store.schema.UTCDateTime(timezone=True),
                                     nullable=True))
    op.add_column("cases", sa.Column("directive_state", sa.String(length=64), nullable=True))
    for name in _TIMES[1:]:
        op.add_column("cases", sa.Column(name, engine.store.schema.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN, as 0002 does: batch mode trips over the events' foreign keys.
    for name in reversed(_TIMES):
        op.drop_column("cases", name)
    op.drop_column("cases", "directive_state")
    op.drop_column("cases", "directive_seq")
