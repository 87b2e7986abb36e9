"""The access log (SPEC §13.2): writing a read of personal values, and reading the log back.

A read must neither fail nor wait long because the log cannot be written at once: on SQLite
the insert waits for another writer's lock at most `WAIT_MS`, on PostgreSQL at most as long for
a lock and for the statement; when it still cannot be made, `record` says so with a False and
the caller shows the case without its personal values (see `engine.app.access`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from engine.store.db import busy_timeout_ms
from engine.store.tables import access_t

WAIT_MS = 250
"""How long writing the log may wait for a busy database before the read goes on without it."""


def record(engine: sa.Engine, rows: Sequence[Mapping[str, Any]], *, wait_ms: int = WAIT_MS) -> bool:
    """Insert these log rows in one statement and one short transaction, waiting at most
    `wait_ms` for a busy database; False when it was too busy (or refused), and nothing was
    written."""
    if not rows:
        return True
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Before the transaction begins (BEGIN IMMEDIATE takes the write lock and would
                # wait the connection's full busy timeout): wait briefly, then give up.
                driver.execute(f"PRAGMA busy_timeout={wait_ms}")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    if not sqlite:
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wait_ms * 4}")
                    conn.execute(sa.insert(access_t), list(rows))
            finally:
                if sqlite:
                    driver.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")  # type: ignore[union-attr]
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error):
        # (SQLite's BEGIN IMMEDIATE goes straight to the driver: its error comes unwrapped.)
        return False
    return True


def entries(
    conn: sa.Connection, *, ref: str | None = None, since: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The log, oldest first: of one case (by ref) and/or from a moment on."""
    a = access_t.c
    query = sa.select(a.at, a.reader, a.login, a.ref, a.command, a.detail).order_by(a.at, a.id)
    if ref is not None:
        query = query.where(a.ref == ref)
    if since is not None:
        query = query.where(a.at >= since)
    return [dict(row) for row in conn.execute(query).mappings()]


def forget_cases(conn: sa.Connection, case_ids: Sequence[int]) -> int:
    """Delete the log rows of these cases (retention, when it destroys them); how many."""
    if not case_ids:
        return 0
    return int(conn.execute(sa.delete(access_t).where(access_t.c.case_id.in_(list(case_ids)))).rowcount)
