"""escalation: the case's request type on each row

The report counts the escalations per request type. It joined every escalation to its case
for the type alone: at a million cases a hash join of two million escalations with a million
cases, 1.1 s of the server's time. A case's type never changes, so each escalation row now
holds it, filled here from the cases, and written by the sweep when it fires. On PostgreSQL
the table is then rewritten (the update left each row's old version behind): about a minute
for two million escalations.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("escalation", sa.Column("type_key", sa.String(length=64), nullable=True))
    op.get_bind().exec_driver_sql(
        "UPDATE escalation SET type_key = (SELECT cases.type_key FROM cases WHERE cases.id = escalation.case_id)")
    with op.batch_alter_table("escalation") as batch:
        batch.alter_column("type_key", existing_type=sa.String(length=64), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        # The update left every row's old version behind: the table twice its size, and every
        # scan of it reading both. Rewritten in id order (as it was written), in this
        # transaction (VACUUM FULL cannot run in one); SQLite's batch already made it anew.
        op.get_bind().exec_driver_sql("CLUSTER escalation USING escalation_pkey")
        op.get_bind().exec_driver_sql("ANALYZE escalation")


def downgrade() -> None:
    with op.batch_alter_table("escalation") as batch:
        batch.drop_column("type_key")
