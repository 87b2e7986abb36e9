"""Redaction that really erases: the values leave the database files, a reader of an older
snapshot delays that without being run over, and no user's command waits for it.

A second connection holding a transaction open plays the other loket process (a report, an
export, a worker mid-sweep). The files are read as they lie on disk: SQLite's `loket.db*`, and
PostgreSQL's table files (the test server runs on this machine).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, START, WORKFLOWS, _truncate, run_cli

from engine.app import maintenance
from engine.app.clock import FixedClock
from engine.app.maintenance import after_redaction, maintain
from engine.app.redact import redact
from engine.app.service import Loket
from engine.app.verify import verify
from engine.store.db import open_engine

CLERK, HEAD = "c.devries", "a.jansen"
SECRET = b"Geertruida Zwanenburg"
MAIL = b"g.zwanenburg.geheim@example.org"


def _loket(url: str) -> Loket:
    loket = Loket(open_engine(url), FixedClock(START))
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    return loket


def _with_secret(loket: Loket, title: str = "Straatfeest") -> str:
    data = [f"title={title}", f"name={SECRET.decode()}", f"email={MAIL.decode()}"]
    return loket.new_case("bewonersinitiatief", data, actor=CLERK).ref


def _sqlite_files_holding(folder: Path, value: bytes) -> list[str]:
    return sorted(f.name for f in folder.glob("loket.db*") if value in f.read_bytes())


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_without_readers_the_values_leave_the_files_at_once(sqlite_url: str, tmp_path: Path) -> None:
    loket = _loket(sqlite_url)
    refs = [_with_secret(loket, f"Initiatief {i}") for i in range(3)]
    assert _sqlite_files_holding(tmp_path, SECRET)
    for ref in refs:
        redact(loket, ref, "bewaartermijn", actor=HEAD)

    assert after_redaction(loket) == (True, maintenance.GONE)

    # While this process still has the database open: no help from SQLite's checkpoint on close.
    assert _sqlite_files_holding(tmp_path, SECRET) == [] and _sqlite_files_holding(tmp_path, MAIL) == []
    assert maintain(loket) is None  # nothing left to do
    assert verify(loket).ok
    loket.engine.dispose()


def test_sqlite_a_reader_holding_old_pages_is_reported_and_the_next_maintenance_finishes(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loket = _loket(sqlite_url)
    ref = _with_secret(loket)
    reader = sqlite3.connect(tmp_path / "loket.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM case_event").fetchone()  # its snapshot: before the redaction
    monkeypatch.setenv("LOKET_BUSY_TIMEOUT", "0.5")  # how long the redaction waits for the reader

    started = time.monotonic()
    code, out, err = run_cli(capsys, "--db", sqlite_url, "--as", HEAD, "case", "redact", ref,
                             "--reason", "bewaartermijn")

    assert (code, err) == (0, "")
    assert time.monotonic() - started < 5
    assert out.startswith("redacted: email, name\n") and out.endswith(f"files: {maintenance.SQLITE_HELD}\n")
    assert _sqlite_files_holding(tmp_path, SECRET)  # the reader's pages
    assert run_cli(capsys, "--db", sqlite_url, "db", "maintain")[:2] == (3, maintenance.SQLITE_HELD + "\n")

    reader.execute("COMMIT")  # the reader ends; its connection stays open

    assert maintain(loket) == maintenance.GONE
    assert _sqlite_files_holding(tmp_path, SECRET) == [] and _sqlite_files_holding(tmp_path, MAIL) == []
    assert run_cli(capsys, "--db", sqlite_url, "db", "maintain")[:2] == (
        0, "nothing to do: no erased values wait to leave the database files\n")
    reader.close()
    assert verify(loket).ok
    loket.engine.dispose()


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg_table_files(loket: Loket) -> list[Path]:
    with loket.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")  # pages still in shared buffers go to the files
        return [Path(str(conn.execute(
            sa.text("SELECT current_setting('data_directory') || '/' || pg_relation_filepath(:t)"), {"t": table},
        ).scalar())) for table in ("cases", "case_event", "outbox")]


def _pg_files_holding(loket: Loket, value: bytes) -> list[str]:
    return [path.name for path in _pg_table_files(loket) if value in path.read_bytes()]


def _open_reader(url: str, *, snapshot: bool) -> tuple[sa.Engine, sa.Connection]:
    """Another session, in a transaction that has read the cases (so it holds a lock on the
    table) and, with `snapshot`, keeps seeing them as they were (REPEATABLE READ)."""
    engine = open_engine(url)
    conn = engine.connect()
    if snapshot:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    conn.exec_driver_sql("SELECT count(*) FROM cases").scalar()
    return engine, conn


class Timed(threading.Thread):
    """An action in a thread of its own: what it returned, and how long it took."""

    def __init__(self, action: Callable[[], object]) -> None:
        super().__init__()
        self.action = action
        self.result: object = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        self.result = self.action()
        self.seconds = time.monotonic() - started


@pytest.mark.postgres
def test_postgresql_redaction_beside_an_open_transaction_stalls_nobody_and_maintenance_erases(
    pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _truncate(pg_url)
    loket, other = _loket(pg_url), _loket(pg_url)
    erased = _with_secret(loket)
    unrelated = loket.new_case("bewonersinitiatief", ["title=Buurtmoestuin"], actor=CLERK).ref
    reader_engine, reader = _open_reader(pg_url, snapshot=True)

    redacting = Timed(lambda: redact(loket, erased, "bewaartermijn", actor=HEAD))
    commenting = Timed(lambda: other.comment(unrelated, "De bewoner belde terug", actor=CLERK))
    for thread in (redacting, commenting):
        thread.start()
    for thread in (redacting, commenting):
        thread.join(timeout=60)

    assert redacting.seconds < 2 and commenting.seconds < 2, (redacting.seconds, commenting.seconds)
    assert after_redaction(loket) == (False, maintenance.PG_LATER)
    # The reader's snapshot may still read the old row versions: a rewrite now would copy
    # them into the new files, so maintenance waits for it (not for long).
    monkeypatch.setattr(maintenance, "MAINTENANCE_WAIT", 0.5)
    code, out, _ = run_cli(capsys, "--db", pg_url, "db", "maintain")
    assert code == 3 and "1 session(s) that began before the last redaction are still open" in out

    reader.close()
    reader_engine.dispose()

    assert run_cli(capsys, "--db", pg_url, "db", "maintain")[:2] == (0, maintenance.PG_REWRITTEN + "\n")
    assert _pg_files_holding(loket, SECRET) == [] and _pg_files_holding(loket, MAIL) == []
    assert maintain(loket) is None
    assert verify(loket).ok
    for app in (loket, other):
        app.engine.dispose()


@pytest.mark.postgres
def test_postgresql_maintenance_gives_up_quickly_on_a_table_in_use_and_stalls_a_comment_at_most_that_long(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _truncate(pg_url)
    loket, other = _loket(pg_url), _loket(pg_url)
    erased = _with_secret(loket)
    unrelated = loket.new_case("bewonersinitiatief", ["title=Buurtmoestuin"], actor=CLERK).ref
    redact(loket, erased, "bewaartermijn", actor=HEAD)
    # A transaction that read the cases after the redaction: no old snapshot, but its lock
    # on the table stays until it ends, and a rewrite needs the table to itself.
    reader_engine, reader = _open_reader(pg_url, snapshot=False)
    monkeypatch.setattr(maintenance, "LOCK_TIMEOUT_MS", 500)

    rewriting = Timed(lambda: maintain(loket))
    rewriting.start()
    time.sleep(0.1)  # the rewrite now waits for its lock; a comment queues behind it
    commenting = Timed(lambda: other.comment(unrelated, "Tussendoor", actor=CLERK))
    commenting.start()
    for thread in (rewriting, commenting):
        thread.join(timeout=60)

    assert rewriting.result == ("other sessions kept using the tables for more than 0.5 s: they are rewritten"
                                " at a later run")
    assert rewriting.seconds < 2 and commenting.seconds < 1.5, (rewriting.seconds, commenting.seconds)
    reader.close()
    reader_engine.dispose()
    assert maintain(loket) == maintenance.PG_REWRITTEN
    assert _pg_files_holding(loket, SECRET) == []
    for app in (loket, other):
        app.engine.dispose()


def test_postgresql_a_rewrite_that_had_to_keep_old_row_versions_says_so_and_is_not_called_done(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot the check for older sessions did not see (here: one taken without touching
    the tables, skipped past that check) makes VACUUM FULL copy the old row versions, values
    and all. The rewrite counts them from PostgreSQL's own report and maintenance does not
    call the erasure done: the next run rewrites again."""
    from engine.store import redact as redact_store

    loket = _loket(pg_url)
    ref = _with_secret(loket)
    engine = open_engine(pg_url)
    old = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    old.begin()
    old.exec_driver_sql("SELECT 1").scalar()  # a snapshot from before the redaction, no table lock
    redact(loket, ref, "bewaartermijn", actor=HEAD)

    kept = redact_store.rewrite(loket.engine, lock_timeout_ms=2000)
    assert kept is not None and kept > 0
    assert _pg_files_holding(loket, SECRET)  # copied along, as the count said
    monkeypatch.setattr(redact_store, "older_snapshots", lambda conn, token: 0)  # the check is passed by
    done = maintenance.run(loket)
    assert done is not None and not done.clean and "could not be removed yet" in done.message

    old.close()
    engine.dispose()
    done = maintenance.run(loket)
    assert done is not None and done.clean and done.message == maintenance.PG_REWRITTEN
    assert _pg_files_holding(loket, SECRET) == [] and _pg_files_holding(loket, MAIL) == []
    loket.engine.dispose()
