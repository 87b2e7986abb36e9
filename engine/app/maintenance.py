"""Work on the database files that no user's command should wait for: today, making erased
personal values leave them (see `engine.store.redact` for why they linger, per database).

A redaction erases the values from the rows at once and records that the files still need
work. On SQLite the redaction command does that work itself — a checkpoint that copies the
log into the database and truncates it — unless a reader of an older snapshot holds it back;
on PostgreSQL the work is a table rewrite, which locks the tables while it runs, so it is
left to `maintain`: the worker runs it on a schedule, an operator with `loket db maintain`.
Either way it retries until done, never waiting long for a lock, and says what it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from engine.errors import Refused
from engine.store import redact as store
from engine.store.db import busy_timeout_ms

if TYPE_CHECKING:
    from engine.app.service import Loket

SQLITE_WAIT = 10.0
"""How long a redaction on SQLite waits, at most, for readers of an older snapshot to end
(less when LOKET_BUSY_TIMEOUT is lower): long enough for another command's read, not for a
process that keeps a transaction open."""

MAINTENANCE_WAIT = 5.0
"""How long a maintenance run waits for sessions older than the last redaction to end."""

LOCK_TIMEOUT_MS = 2000
"""How long a table rewrite waits for its lock. While it waits, whoever comes after it waits
too; after this it gives up, and the next run tries again."""

GONE = "the erased values are gone from the database files"
SQLITE_HELD = ("another process still reads an older version of the database (an open read transaction),"
               " so the erased values stay in the database files until it ends; the worker's maintenance,"
               " or 'loket db maintain', removes them after that")
PG_LATER = ("the values are erased from the tables; their old row versions stay in the table files until the"
            " next maintenance run rewrites the tables (the worker does, or run 'loket db maintain')")
PG_REWRITTEN = ("rewrote the tables cases, case_event and outbox: the erased values are gone from the table"
                " files")


class Erasure(NamedTuple):
    clean: bool
    """Whether the database files hold no erased value any more."""
    message: str


def after_redaction(loket: Loket) -> Erasure:
    """What a redaction command does for the files, and what it tells the person."""
    if loket.engine.dialect.name == "sqlite":
        token = _pending(loket)
        if token is None:  # another process's maintenance got there first
            return Erasure(True, GONE)
        return _checkpoint(loket, token, wait=min(SQLITE_WAIT, busy_timeout_ms() / 1000))
    return Erasure(False, PG_LATER)


def maintain(loket: Loket) -> str | None:
    """Do the pending work on the files; what was done, or None when nothing was pending."""
    result = run(loket)
    return None if result is None else result.message


def maintain_job(loket: Loket, echo: Callable[[str], None]) -> None:
    """`maintain` as a worker job: a line in the worker's log when there was work."""
    line = maintain(loket)
    if line is not None:
        echo(f"maintenance: {line}")


def run(loket: Loket) -> Erasure | None:
    """`maintain`, with whether the files are clean afterwards."""
    token = _pending(loket)
    if token is None:
        return None
    if loket.engine.dialect.name == "sqlite":
        return _checkpoint(loket, token, wait=1.0)
    return _rewrite(loket, token)


def _pending(loket: Loket) -> str | None:
    with loket.read() as conn:
        return store.pending(conn)


def _clear(loket: Loket, token: str) -> None:
    with loket.engine.begin() as conn:
        store.clear_pending(conn, token)


def _checkpoint(loket: Loket, token: str, *, wait: float) -> Erasure:
    deadline = time.monotonic() + wait
    while not store.checkpoint(loket.engine):
        if time.monotonic() >= deadline:
            return Erasure(False, SQLITE_HELD)
        time.sleep(0.1)
    _clear(loket, token)
    return Erasure(True, GONE)


def _rewrite(loket: Loket, token: str) -> Erasure:
    from engine.app.grants import require_owner

    try:
        # Only the tables' owner may rewrite them: for anyone else VACUUM skips them with a
        # warning, which must not pass for a clean rewrite.
        require_owner(loket, "rewriting the tables")
    except Refused as exc:
        return Erasure(False, f"{exc}; the erased values stay in the table files until the owner runs"
                              " 'loket db maintain'")
    deadline = time.monotonic() + MAINTENANCE_WAIT
    while True:
        with loket.read() as conn:
            older = store.older_snapshots(conn, token)
        if not older:
            break
        if time.monotonic() >= deadline:
            return Erasure(False, f"{older} session(s) that began before the last redaction are still open and"
                                  " may read the old row versions: the tables are rewritten at a later run,"
                                  " after they end")
        time.sleep(0.25)
    kept = store.rewrite(loket.engine, lock_timeout_ms=LOCK_TIMEOUT_MS)
    if kept is None:
        return Erasure(False, f"other sessions kept using the tables for more than {LOCK_TIMEOUT_MS / 1000:g} s:"
                              " they are rewritten at a later run")
    if kept:
        # A transaction somewhere might still read them, so PostgreSQL copied them along:
        # the values they hold are not gone yet, and the next run rewrites again.
        return Erasure(False, f"{kept} old row version(s) could not be removed yet, as a transaction may still"
                              " read them: the tables are rewritten again at a later run")
    _clear(loket, token)
    return Erasure(True, PG_REWRITTEN)
