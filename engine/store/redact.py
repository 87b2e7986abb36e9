"""The SQL of erasing personal data (`engine.app.redact`): the events' values, and the bytes
the database files keep after the rows no longer hold them.

Erasing a value from a row leaves its old bytes on disk for a while, differently per database:

- SQLite runs with `secure_delete` (freed space is zeroed), but a changed page is written to
  the write-ahead log first; the old page stays in `loket.db` and in earlier log frames until
  a checkpoint copies the new page over it and the log is truncated. A reader that still sees
  the database as it was before (an open read transaction) holds the checkpoint back.
- PostgreSQL never overwrites a row: an UPDATE writes a new version and leaves the old one,
  with the value, as a dead tuple in the table file. Only rewriting the table (`VACUUM
  FULL`) is sure to drop those bytes, and it locks the table while it runs; it also copies
  the dead versions that a transaction older than the redaction might still read.

So a redaction records in `loket_meta` that the files still need this work (`mark_pending`),
and the work is done when it can be (`checkpoint`, `rewrite`) and then cleared.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.core.vocabulary import MailKind
from engine.store.db import has_function
from engine.store.tables import events_t, meta_t, outbox_t

PENDING_KEY = "erasure_pending"
"""The `loket_meta` row saying that erased values may still be in the database files. Its
value names the latest redaction: on PostgreSQL its transaction id (which also tells which
sessions may still read the old row versions), on SQLite a random token."""

REWRITTEN = ("cases", "case_event", "outbox")
#: What VACUUM VERBOSE says of the dead row versions it had to keep.
_KEPT = re.compile(r"(\d+) dead row versions cannot be removed yet")
"""The tables that hold personal values: the case rows, their events and their mail."""


def event_data(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """The id and data of each event of a case, in seq order."""
    return [dict(r) for r in conn.execute(
        sa.select(events_t.c.id, events_t.c.data)
        .where(events_t.c.case_id == case_id).order_by(events_t.c.seq)).mappings()]


def event_texts(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """What a redaction reads of each event of a case, in seq order: where its values and
    free text are, and whether the chain holds them by digest."""
    e = events_t.c
    return [dict(r) for r in conn.execute(
        sa.select(e.id, e.seq, e.action, e.comment, e.data, e.digests, e.salts)
        .where(e.case_id == case_id).order_by(e.seq)).mappings()]


ERASE = "loket_erase_event"
"""The PostgreSQL function through which a redaction erases an event's values once the events
are append-only for people's logins (`engine.store.grants`)."""
_ERASE_CALL = sa.text(f"SELECT {ERASE}(:id, CAST(:changes AS jsonb))")


def set_event(conn: sa.Connection, event_id: int, values: dict[str, Any]) -> None:
    """Write an event's erased columns (`data`, `comment`, `salts`), after the `redacted` event
    that records it was appended in the same transaction. On PostgreSQL with `loket db grants`
    applied, through the owner's function, which checks that the change only removes values."""
    if conn.dialect.name == "postgresql" and has_function(conn, ERASE):
        conn.execute(_ERASE_CALL, {"id": event_id, "changes": json.dumps(values)})
        return
    conn.execute(sa.update(events_t).where(events_t.c.id == event_id).values(**values))


_MAIL = outbox_t.c
MAIL_COLUMNS = ("id", "recipient", "status", "language", "to_email", "to_name", "subject", "context",
                "last_error")
"""What a redaction reads of a message, and may change (but `id` and `language`)."""


def mail_of(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """The case's outbox rows, sent or not, and the operators' reports of undelivered mail
    (which name the addresses they failed to reach), locked against a delivery run."""
    query = (sa.select(*(_MAIL[name] for name in MAIL_COLUMNS))
             .where(sa.or_(_MAIL.case_id == case_id, _MAIL.kind == MailKind.DELIVERY_FAILED))
             .order_by(_MAIL.id).with_for_update())
    return [dict(r) for r in conn.execute(query).mappings()]


def set_mail(conn: sa.Connection, row_id: int, values: dict[str, Any]) -> None:
    conn.execute(sa.update(outbox_t).where(_MAIL.id == row_id).values(**values))


# -- what is pending ---------------------------------------------------------------------------


def mark_pending(conn: sa.Connection) -> str:
    """Record, in the redaction's own transaction, that the files still hold erased values;
    returns the token naming this redaction. Concurrent redactions each leave their own
    token: the last one stays, and clearing an older one does nothing."""
    if conn.dialect.name == "postgresql":
        token = str(conn.exec_driver_sql("SELECT pg_current_xact_id()::xid::text").scalar_one())
        insert: Any = postgresql.insert(meta_t)
    else:
        token = uuid.uuid4().hex
        insert = sqlite.insert(meta_t)
    statement = insert.values(key=PENDING_KEY, value=token)
    conn.execute(statement.on_conflict_do_update(index_elements=[meta_t.c.key], set_={"value": token}))
    return token


def pending(conn: sa.Connection) -> str | None:
    """The token of the latest redaction whose values may still be in the files, if any."""
    return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == PENDING_KEY)).scalar()


def clear_pending(conn: sa.Connection, token: str) -> bool:
    """The files are clean up to the redaction `token` names: forget it, unless a later
    redaction has replaced it meanwhile. Returns whether it was cleared."""
    done = conn.execute(sa.delete(meta_t).where(meta_t.c.key == PENDING_KEY, meta_t.c.value == token))
    return done.rowcount == 1


# -- SQLite ------------------------------------------------------------------------------------


def checkpoint(engine: sa.Engine) -> bool:
    """Copy the whole write-ahead log into `loket.db` and truncate the log to nothing;
    False when a reader of an older snapshot (or a writer) kept part of it back.

    The checkpoint does not wait for others (busy timeout 0, so it never holds up a writer
    while waiting for readers): it copies what it can and says whether that was all.
    """
    with engine.connect() as conn:
        driver: Any = conn.connection.driver_connection
        busy_ms = driver.execute("PRAGMA busy_timeout").fetchone()[0]
        driver.execute("PRAGMA busy_timeout=0")
        try:
            busy, log, copied = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            driver.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    return bool(busy == 0 and log == copied)


# -- PostgreSQL --------------------------------------------------------------------------------


_OLDER_SNAPSHOTS = sa.text("""
    SELECT count(*) FROM (
        SELECT backend_xmin AS x FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
        UNION ALL
        SELECT backend_xid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
        UNION ALL
        SELECT xmin FROM pg_replication_slots
        UNION ALL
        SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
    ) AS held
    WHERE x IS NOT NULL AND age(x) >= age(CAST(:token AS xid))
""")


def older_snapshots(conn: sa.Connection, token: str) -> int:
    """How many sessions (or replication slots, or prepared transactions) began before the
    redaction `token` names and may still read the row versions it replaced: while one does,
    a rewrite would copy those versions, values and all, into the new table file."""
    return int(conn.execute(_OLDER_SNAPSHOTS, {"token": token}).scalar_one())


def rewrite(engine: sa.Engine, *, lock_timeout_ms: int) -> int | None:
    """Rewrite the tables that held the values (`VACUUM FULL`), leaving the dead row versions
    behind. It needs each table to itself; it waits at most `lock_timeout_ms` for that (and
    meanwhile holds up whoever comes after it no longer than that), else returns None.

    Returns how many dead row versions the rewrite had to keep because some transaction might
    still read them (PostgreSQL reports it per table): a kept version still holds the values
    it had, so only 0 means they are gone from the files."""
    kept = 0

    def count(diagnostic: Any) -> None:
        nonlocal kept
        found = _KEPT.search(diagnostic.message_detail or "")
        if found:
            kept += int(found.group(1))

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        driver = conn.connection.driver_connection
        driver.add_notice_handler(count)  # type: ignore[union-attr]
        conn.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
        try:
            for table in REWRITTEN:
                conn.exec_driver_sql(f"VACUUM (FULL, VERBOSE) {table}")
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                return None
            raise
        finally:
            conn.exec_driver_sql("RESET lock_timeout")
            driver.remove_notice_handler(count)  # type: ignore[union-attr]
    return kept
