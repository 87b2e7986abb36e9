"""config_event: the chained history of configuration changes (SPEC §13.1)

Every organisation and request type loaded, every seal and every schema change from now on is
an event in a hash chain of its own. What a database already held is recorded by this
upgrade as the history's first event (`history_started`), so that `audit verify` accounts
for every organisation row, request type version and seal, the old ones included.

Revision ID: 0005
Revises: 0004
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import engine.store.schema
from engine.core.confighistory import HISTORY_STARTED, config_hash, data_digest, event_content
from engine.core.history import GENESIS

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "config_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", engine.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    assert table is not None
    conn = op.get_bind()
    organisation = sa.table("organisation", sa.column("id", sa.Integer), sa.column("data", sa.JSON))
    request_type = sa.table("request_type", sa.column("id", sa.Integer), sa.column("key", sa.String),
                            sa.column("version", sa.Integer), sa.column("definition", sa.JSON))
    seal = sa.table("audit_seal", sa.column("id", sa.Integer), sa.column("digest", sa.String))
    meta = sa.table("loket_meta", sa.column("key", sa.String), sa.column("value", sa.String))
    organisations = [{"organisation": row.id, "digest": data_digest(row.data)}
                     for row in conn.execute(sa.select(organisation).order_by(organisation.c.id))]
    types = [{"row": row.id, "key": row.key, "version": row.version, "digest": data_digest(row.definition)}
             for row in conn.execute(sa.select(request_type).order_by(request_type.c.id))]
    seals = [{"seal": row.id, "digest": row.digest} for row in conn.execute(sa.select(seal).order_by(seal.c.id))]
    simulation = conn.execute(sa.select(meta.c.value).where(meta.c.key == "simulation")).scalar() == "true"
    if not (organisations or types or seals or simulation):
        return  # a new database: `loket init` records its making
    now = dt.datetime.now(dt.UTC)
    detail = {"schema": revision, "simulation": simulation, "organisations": organisations,
              "request_types": types, "seals": seals}
    content = event_content(seq=1, at=now, recorded_at=now, actor="system", login=None,
                            action=HISTORY_STARTED, detail=detail)
    op.bulk_insert(table, [{"seq": 1, "at": now, "recorded_at": now, "actor": "system", "login": None,
                            "action": HISTORY_STARTED, "detail": detail, "prev_hash": GENESIS,
                            "hash": config_hash(content, GENESIS)}])


def downgrade() -> None:
    op.drop_table("config_event")
