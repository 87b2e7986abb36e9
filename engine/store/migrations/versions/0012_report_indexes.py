"""case_event, escalation: indexes for what is asked of them

Each table had an index on case_id alone beside a unique key that begins with case_id
((case_id, seq) and (case_id, stay, rung)), whose index finds a case's rows as well. The
second one cost every event and escalation written one more index entry, and it misled
PostgreSQL's planner: looking up an open case's state changes from a given seq, it chose the
index on case_id and filtered every event of the case, where the unique key's index goes to
the seq directly. Both are dropped.

The report counts the escalations per type, unit and rung, and per local day and rung. On
SQLite each count read every row of the table; an index of the columns each needs (the
period's bound included) is read instead: (type_key, unit, rung, fired_at), and (fired_at,
rung), which replaces the index on fired_at alone (it serves what that one did: the
period's bounds, the latest escalation).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (("case_event", "ix_case_event_case_id", ["case_id"]), ("escalation", "ix_escalation_case_id", ["case_id"]),
           ("escalation", "ix_escalation_fired_at", ["fired_at"]))
MADE = (("escalation", "ix_escalation_group", ["type_key", "unit", "rung", "fired_at"]),
        ("escalation", "ix_escalation_fired_at_rung", ["fired_at", "rung"]))


def upgrade() -> None:
    for table, name, _ in DROPPED:
        op.drop_index(name, table_name=table)
    for table, name, columns in MADE:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for table, name, _ in reversed(MADE):
        op.drop_index(name, table_name=table)
    for table, name, columns in reversed(DROPPED):
        op.create_index(name, table, columns)
