"""case_stay: every ended stay of a case as a row of its own

The report grouped a year of state changes by pairing each with the next in Python; now each
stay is written when it ends, with the transition (`engine.core.stays`). Existing cases get
theirs from their history here, worked out by the same function, with the calendar and the
definitions stored in the database. Derived data without personal values: state keys, units,
instants.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from functools import cache

import sqlalchemy as sa
from alembic import op

import engine.store.schema

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    instant = engine.store.schema.UTCDateTime(timezone=True)
    op.create_table(
        "case_stay",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("stay", sa.Integer(), nullable=False),
        sa.Column("end_seq", sa.Integer(), nullable=False),
        sa.Column("type_key", sa.String(length=64), nullable=False),
        sa.Column("type_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("entered_at", instant, nullable=False),
        sa.Column("left_at", instant, nullable=False),
        sa.Column("days", sa.Float(), nullable=False),
        sa.Column("stay_us", sa.BigInteger(), nullable=False),
        sa.Column("due_at", instant, nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("met", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "stay"),
    )
    op.create_index("ix_case_stay_group", "case_stay", ["type_key", "state", "unit", "met", "days", "stay_us"], unique=False)
    op.create_index("ix_case_stay_state_days", "case_stay", ["type_key", "state", "days"], unique=False)
    op.create_index("ix_case_stay_unit_days", "case_stay", ["unit", "days"], unique=False)
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """The stays of the cases already stored, from their histories."""
    from engine.core.calendar import WorkingCalendar
    from engine.core.definition import RequestType, parse_request_type
    from engine.core.organisation import parse_organisation
    from engine.store import config, stays

    if conn.execute(sa.text("SELECT 1 FROM cases LIMIT 1")).first() is None:
        return
    data = config.organisation_data(conn)
    if data is None:  # cases without an organisation: nothing to judge them by
        return
    org = parse_organisation(data, "<stored organisation>")

    @cache
    def type_of(key: str, version: int) -> RequestType:
        return parse_request_type(config.definition_data(conn, key, version), None, f"{key} v{version}")

    stays.fill(conn, stays.expected(conn, WorkingCalendar(org.timezone, org.closed_days), type_of))


def downgrade() -> None:
    op.drop_index("ix_case_stay_unit_days", table_name="case_stay")
    op.drop_index("ix_case_stay_state_days", table_name="case_stay")
    op.drop_index("ix_case_stay_group", table_name="case_stay")
    op.drop_table("case_stay")
