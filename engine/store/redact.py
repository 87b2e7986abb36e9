"""The SQL of erasing personal data (`engine.app.redact`): the events' values, and the bytes
the database would otherwise keep on disk.

SQLite runs with `secure_delete` (freed bytes are zeroed), and its write-ahead log is
checkpointed and truncated afterwards; PostgreSQL rewrites the two tables (`VACUUM FULL`), as
dead row versions would otherwise keep the old values on disk until reused.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.store.schema import events_t


def event_data(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """The id and data of each event of a case, in seq order."""
    return [dict(r) for r in conn.execute(
        sa.select(events_t.c.id, events_t.c.data)
        .where(events_t.c.case_id == case_id).order_by(events_t.c.seq)).mappings()]


def set_event_data(conn: sa.Connection, event_id: int, data: dict[str, Any]) -> None:
    conn.execute(sa.update(events_t).where(events_t.c.id == event_id).values(data=data))


def scrub(engine: sa.Engine) -> None:
    """Leave no erased value in the database's files (see the module doc)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elif engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM FULL cases")
            conn.exec_driver_sql("VACUUM FULL case_event")
