"""stay_tally: the ended stays counted per type, state, unit and deadline met, kept by triggers

The report grouped every row of `case_stay` for its time per state and unit and its state
deadlines: at a million cases, 5.9 million rows and 1.7 s of the server's time, the largest
part of the report beside its floor. The counts now stay up to date as rows are added or
removed: a trigger on `case_stay` adds each statement's rows to `stay_tally` in the same
transaction, so any snapshot sees the two agree. On PostgreSQL the trigger is one statement's
rows at once (a transition table) and runs as the owner role (people's logins only read the
tally); each session counts into its own row per group (`shard`: its backend's process id
modulo 64), so concurrent transitions do not queue on one row. SQLite counts row by row, all
in shard 0. Filled here from the rows there are. Written out as it stood at this revision.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MET = "CASE WHEN met IS NULL THEN -1 WHEN met THEN 1 ELSE 0 END"
_KEY = "shard, type_key, state, unit, met"

_PG_FUNCTION = f"""
CREATE FUNCTION loket_tally_stays() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {{schema}}, pg_temp AS $fn$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    INSERT INTO stay_tally AS t ({_KEY}, stays, stay_us)
    SELECT mod(pg_backend_pid(), 64), type_key, state, coalesce(unit, ''), {_MET}, -count(*), -sum(stay_us)
      FROM removed GROUP BY 2, 3, 4, 5 ORDER BY 2, 3, 4, 5
    ON CONFLICT ({_KEY}) DO UPDATE SET stays = t.stays + excluded.stays, stay_us = t.stay_us + excluded.stay_us;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO stay_tally AS t ({_KEY}, stays, stay_us)
    SELECT mod(pg_backend_pid(), 64), type_key, state, coalesce(unit, ''), {_MET}, count(*), sum(stay_us)
      FROM added GROUP BY 2, 3, 4, 5 ORDER BY 2, 3, 4, 5
    ON CONFLICT ({_KEY}) DO UPDATE SET stays = t.stays + excluded.stays, stay_us = t.stay_us + excluded.stay_us;
  END IF;
  RETURN NULL;
END $fn$"""

_PG_TRIGGERS = (
    "CREATE TRIGGER loket_tally_added AFTER INSERT ON case_stay REFERENCING NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION loket_tally_stays()",
    "CREATE TRIGGER loket_tally_removed AFTER DELETE ON case_stay REFERENCING OLD TABLE AS removed"
    " FOR EACH STATEMENT EXECUTE FUNCTION loket_tally_stays()",
    "CREATE TRIGGER loket_tally_changed AFTER UPDATE ON case_stay REFERENCING OLD TABLE AS removed"
    " NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION loket_tally_stays()",
)


def _sqlite_count(row: str, sign: str) -> str:
    met = f"CASE WHEN {row}.met IS NULL THEN -1 WHEN {row}.met THEN 1 ELSE 0 END"
    return (f"INSERT INTO stay_tally ({_KEY}, stays, stay_us) VALUES (0, {row}.type_key, {row}.state,"
            f" coalesce({row}.unit, ''), {met}, {sign}1, {sign}{row}.stay_us)"
            f" ON CONFLICT ({_KEY}) DO UPDATE SET stays = stays + excluded.stays,"
            " stay_us = stay_us + excluded.stay_us;")


_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER loket_tally_added AFTER INSERT ON case_stay BEGIN {_sqlite_count('NEW', '')} END",
    f"CREATE TRIGGER loket_tally_removed AFTER DELETE ON case_stay BEGIN {_sqlite_count('OLD', '-')} END",
    f"CREATE TRIGGER loket_tally_changed AFTER UPDATE ON case_stay BEGIN {_sqlite_count('OLD', '-')}"
    f" {_sqlite_count('NEW', '')} END",
)


def upgrade() -> None:
    op.create_table(
        "stay_tally",
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("type_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("met", sa.SmallInteger(), nullable=False),
        sa.Column("stays", sa.BigInteger(), nullable=False),
        sa.Column("stay_us", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("shard", "type_key", "state", "unit", "met"),
    )
    bind = op.get_bind()
    bind.exec_driver_sql(
        f"INSERT INTO stay_tally ({_KEY}, stays, stay_us) SELECT 0, type_key, state, coalesce(unit, ''), {_MET},"
        f" count(*), sum(stay_us) FROM case_stay GROUP BY type_key, state, coalesce(unit, ''), {_MET}")
    if bind.dialect.name == "postgresql":
        schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
        bind.exec_driver_sql(_PG_FUNCTION.format(schema=schema))
        for statement in _PG_TRIGGERS:
            bind.exec_driver_sql(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for name in ("loket_tally_added", "loket_tally_removed", "loket_tally_changed"):
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}" + (" ON case_stay" if bind.dialect.name == "postgresql"
                                                                 else ""))
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS loket_tally_stays()")
    op.drop_table("stay_tally")
