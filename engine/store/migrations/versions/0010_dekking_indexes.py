"""case_event: partial indexes for the bestuurlijke dekking's events; case_stay: the missed

The report read the administrators' events (escalations to them, instructions, their
comments) by scanning every event and reading its JSON; four partial indexes find each kind
instead (see engine/store/indexes.py, which declares them for schema.py and the mirror). Only
escalated, directed and comment events are entered. A fifth holds the ended stays whose
deadline was missed, by the local day it passed (the report counts them per day). Written out here as they stood at this
revision, so that a later change of the declaration does not change what this revision did.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMES = ("ix_case_event_escalated_to", "ix_case_event_directives", "ix_case_event_comment_actor",
         "ix_case_event_comment_behalf")


def _text(key: str, dialect: str) -> str:
    """A top-level JSON key of `data` as text, as engine.store.indexes.JSONText wrote it at
    this revision (an index on an expression serves a query holding the very same one)."""
    if dialect == "sqlite":
        return f"""CAST(JSON_EXTRACT(data, '$."{key}"') AS VARCHAR)"""
    return f"CAST(data ->> '{key}' AS VARCHAR)"


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    to, rung, behalf = (_text(key, dialect) for key in ("to", "rung", "on_behalf_of"))
    for name, key, where in zip(NAMES, (to, "case_id", "actor", behalf), (
        "action = 'escalated'",
        f"action = 'directed' OR action = 'escalated' AND {rung} = 'directive'",
        "action = 'comment'",
        f"action = 'comment' AND {behalf} IS NOT NULL",
    ), strict=True):
        bind.exec_driver_sql(f"CREATE INDEX {name} ON case_event ({key}) WHERE {where}")
    false = "0" if dialect == "sqlite" else "false"
    bind.exec_driver_sql(f"CREATE INDEX ix_case_stay_missed ON case_stay (due_on) WHERE met IS {false}")


def downgrade() -> None:
    op.drop_index("ix_case_stay_missed", table_name="case_stay")
    for name in reversed(NAMES):
        op.drop_index(name, table_name="case_event")
