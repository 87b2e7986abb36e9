"""The outbox table's statements: queueing, claiming under a lease, recording, requeueing.

Each function runs on the caller's connection, inside the caller's transaction: the caller
decides what belongs together (a claim commits before anything is sent; a retry's checks and
updates are one transaction). Claims lock with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
workers never take the same row; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.core.notices import Notice
from engine.core.vocabulary import OutboxStatus
from engine.store.tables import cases_t, events_t, outbox_t

_c = outbox_t.c
_CHUNK = 500
"""Keys or ids per ``IN (...)``: well below the bind-parameter limits of SQLite and psycopg."""


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


INTERRUPTED = "the delivery attempt did not finish: its sender stopped before the server answered"
GIVEN_UP = f"{INTERRUPTED}; given up, its lifetime being over"


def pending_row(notice: Notice, now: dt.datetime) -> dict[str, Any]:
    """The outbox row of a notice made at ``now``: pending, due at once, its facts as JSON."""
    return {
        "key": notice.key,
        "case_id": notice.case_id,
        "kind": notice.kind,
        "language": notice.language,
        "recipient": notice.recipient,
        "to_email": notice.to_email,
        "to_name": notice.to_name,
        "subject": notice.subject,
        "context": notice.facts.to_json(),
        "created_at": now,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }


def queue_new(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add the rows whose keys are not queued yet, in one statement: a key already there
    was decided by the change that queued it, which this one cannot be a second time."""
    # The dialect's own insert, imported here: importing the PostgreSQL dialect costs every
    # command's start-up (see bench/bench_cli.py) and only a PostgreSQL database needs it.
    insert: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert = pg_insert(outbox_t)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert(outbox_t)
    conn.execute(insert.on_conflict_do_nothing(index_elements=[_c.key]), list(rows))


def queue_once(conn: sa.Connection, row: dict[str, Any]) -> bool:
    """Add ``row`` unless a row with its key exists; whether it was added."""
    if conn.execute(sa.select(_c.id).where(_c.key == row["key"])).first() is not None:
        return False
    conn.execute(sa.insert(outbox_t).values(**row))
    return True


def claim(conn: sa.Connection, now: dt.datetime, batch: int, *, lease: dt.timedelta,
          owner: str) -> list[dict[str, Any]]:
    """Take up to ``batch`` due rows no live lease holds, leasing them to ``owner`` until
    ``now + lease``; the rows as claimed.

    A row still `sending` whose lease ran out belonged to a sender that stopped before it
    finished: if it was in flight, :func:`begin_attempt` already counted the attempt and set
    when to try again, so claiming it charges nothing; the rows of that batch it never got to
    are taken up as they were.
    """
    rows = conn.execute(
        sa.select(outbox_t)
        .where(_c.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)), _c.next_attempt_at <= now,
               sa.or_(_c.lease_until.is_(None), _c.lease_until < now))
        .order_by(_c.next_attempt_at, _c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).mappings().all()
    claimed = [dict(r) for r in rows]
    if claimed:
        for chunk in _chunks([row["id"] for row in claimed]):
            conn.execute(sa.update(outbox_t).where(_c.id.in_(chunk)).values(
                status=OutboxStatus.SENDING, lease_until=now + lease, lease_owner=owner))
    for row in claimed:
        row.update(status=OutboxStatus.SENDING, lease_until=now + lease, lease_owner=owner)
    return claimed


def claim_more(conn: sa.Connection, now: dt.datetime, wanted: Mapping[tuple[str, str], int], *,
               kinds: Iterable[str], lease: dt.timedelta, owner: str) -> list[dict[str, Any]]:
    """Claim, besides a batch, up to ``wanted[(to_email, language)]`` more due rows of
    ``kinds`` for each of these recipients, as :func:`claim` would (oldest due first, rows
    another sender holds skipped): a recipient's due firings then go out in one digest,
    however the batches fell. The rows as claimed."""
    kinds = tuple(kinds)
    claimed: list[dict[str, Any]] = []
    for (to_email, language), count in wanted.items():
        if count <= 0:
            continue
        rows = conn.execute(
            sa.select(outbox_t)
            .where(_c.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)), _c.next_attempt_at <= now,
                   sa.or_(_c.lease_until.is_(None), _c.lease_until < now), _c.to_email == to_email,
                   _c.language == language, _c.kind.in_(kinds))
            .order_by(_c.next_attempt_at, _c.id)
            .limit(count)
            .with_for_update(skip_locked=True)
        ).mappings().all()
        claimed += [dict(r) for r in rows]
    for chunk in _chunks([row["id"] for row in claimed]):
        conn.execute(sa.update(outbox_t).where(_c.id.in_(chunk)).values(
            status=OutboxStatus.SENDING, lease_until=now + lease, lease_owner=owner))
    for row in claimed:
        row.update(status=OutboxStatus.SENDING, lease_until=now + lease, lease_owner=owner)
    return claimed


def give_up_interrupted(conn: sa.Connection, now: dt.datetime, *, queued_before: dt.datetime) -> list[dict[str, Any]]:
    """Fail the rows queued before ``queued_before`` (their lifetime is over) whose last attempt
    never finished and whose lease ran out: a message that keeps killing its sender must end
    `failed` rather than be taken up for ever. The rows as they were, locked like a claim."""
    rows = [dict(r) for r in conn.execute(
        sa.select(outbox_t)
        .where(_c.status == OutboxStatus.SENDING, _c.lease_until < now, _c.last_error == INTERRUPTED,
               _c.created_at < queued_before)
        .order_by(_c.id)
        .with_for_update(skip_locked=True)
    ).mappings()]
    for chunk in _chunks([row["id"] for row in rows]):
        conn.execute(sa.update(outbox_t).where(_c.id.in_(chunk)).values(
            status=OutboxStatus.FAILED, lease_until=None, lease_owner=None, next_attempt_at=None,
            last_error=GIVEN_UP))
    for row in rows:
        row["last_error"] = GIVEN_UP
    return rows


def begin_attempt(conn: sa.Connection, row_id: int, *, owner: str, until: dt.datetime,
                  retry_at: dt.datetime) -> bool:
    """Before a message goes out: whether ``owner`` still holds its lease, and if so, count the
    attempt and renew the leases of all of the owner's rows until ``until``.

    The attempt is written ahead, with ``retry_at`` as its next try and :data:`INTERRUPTED` as
    its error, so that a sender killed while the server has the message leaves it to be tried
    again after its back-off, charged once, and the rest of its batch uncharged.
    """
    return begin_attempts(conn, [row_id], owner=owner, until=until, retry_at=retry_at)


def begin_attempts(conn: sa.Connection, row_ids: Sequence[int], *, owner: str, until: dt.datetime,
                   retry_at: dt.datetime) -> bool:
    """:func:`begin_attempt` for the rows of one message (a digest): all of them or none.

    Only when ``owner`` holds every one of them is the attempt counted for each; a message
    some of whose rows another sender took must not go out, or those would be sent twice.
    """
    mine = sa.and_(_c.lease_owner == owner, _c.status == OutboxStatus.SENDING)
    if len(row_ids) > 1:
        held = {row for row, in conn.execute(sa.select(_c.id).where(_c.id.in_(row_ids), mine).with_for_update())}
        if len(held) != len(set(row_ids)):
            return False
    counted = 0
    for chunk in _chunks(list(row_ids)):
        counted += conn.execute(sa.update(outbox_t).where(_c.id.in_(chunk), mine).values(
            attempts=_c.attempts + 1, last_error=INTERRUPTED, next_attempt_at=retry_at,
            lease_until=until)).rowcount
    if counted:
        conn.execute(sa.update(outbox_t).where(mine, _c.id.not_in(row_ids)).values(lease_until=until))
    return bool(counted)


def release(conn: sa.Connection, ids: Sequence[int], *, owner: str | None = None) -> None:
    """Give claimed rows back uncharged: pending, without lease. With ``owner``, only the rows
    whose lease is still that owner's (another sender may have taken the others)."""
    for chunk in _chunks(ids):
        query = sa.update(outbox_t).where(_c.id.in_(chunk), _c.status == OutboxStatus.SENDING)
        if owner is not None:
            query = query.where(_c.lease_owner == owner)
        conn.execute(query.values(status=OutboxStatus.PENDING, lease_until=None, lease_owner=None))


def release_owned(conn: sa.Connection, owner: str) -> int:
    """Give back every row ``owner`` still holds, uncharged; how many."""
    return int(conn.execute(sa.update(outbox_t).where(
        _c.lease_owner == owner, _c.status == OutboxStatus.SENDING).values(
        status=OutboxStatus.PENDING, lease_until=None, lease_owner=None)).rowcount)


def mark_sent(conn: sa.Connection, row_id: int, *, at: dt.datetime, attempts: int, note: str | None,
              subject: str) -> None:
    """A message the transport accepted; ``subject`` is the one it was sent with.

    Recorded whoever holds the lease now: the message has gone, and saying so is the best
    way to keep another sender from sending it again.
    """
    conn.execute(sa.update(outbox_t).where(_c.id == row_id).values(
        status=OutboxStatus.SENT, sent_at=at, attempts=attempts, lease_until=None, lease_owner=None,
        last_error=note, next_attempt_at=None, subject=subject))


def mark_failed(conn: sa.Connection, row_id: int, *, owner: str, attempts: int, error: str | None) -> bool:
    """A message given up on: it stays, `failed`, until someone queues it again. Only while
    ``owner`` holds it; whether it did."""
    return bool(conn.execute(sa.update(outbox_t).where(_c.id == row_id, _c.lease_owner == owner).values(
        status=OutboxStatus.FAILED, attempts=attempts, lease_until=None, lease_owner=None, last_error=error,
        next_attempt_at=None)).rowcount)


def mark_retry(conn: sa.Connection, row_id: int, *, owner: str, attempts: int, error: str | None,
               at: dt.datetime) -> bool:
    """A message to be tried again from ``at``. Only while ``owner`` holds it; whether it did."""
    return bool(conn.execute(sa.update(outbox_t).where(_c.id == row_id, _c.lease_owner == owner).values(
        status=OutboxStatus.PENDING, attempts=attempts, lease_until=None, lease_owner=None, last_error=error,
        next_attempt_at=at)).rowcount)


def listing(conn: sa.Connection, *, failed: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows in the order they were queued; with ``failed`` only those given up on."""
    query = sa.select(outbox_t).order_by(_c.id)
    if failed:
        query = query.where(_c.status == OutboxStatus.FAILED)
    if limit:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def kinds(conn: sa.Connection) -> dict[str, int]:
    """How many rows of each kind the outbox holds, sent or not, by kind."""
    query = sa.select(_c.kind, sa.func.count()).group_by(_c.kind).order_by(_c.kind)
    return {kind: int(count) for kind, count in conn.execute(query)}


# -- requeueing ------------------------------------------------------------------------------

class Queued(NamedTuple):
    """Where a row stands, as a requeue looks at it."""

    id: int
    key: str
    status: str
    lease_until: dt.datetime | None


_QUEUED = sa.select(_c.id, _c.key, _c.status, _c.lease_until)


def lock_keys(conn: sa.Connection, keys: Sequence[str]) -> dict[str, Queued]:
    """The rows with these keys by key, locked on PostgreSQL until the transaction ends;
    keys without a row are left out."""
    found: dict[str, Queued] = {}
    for chunk in _chunks(keys):
        query = _QUEUED.where(_c.key.in_(chunk)).order_by(_c.id).with_for_update()
        found.update((row.key, Queued(*row)) for row in conn.execute(query))
    return found


def lock_failed(conn: sa.Connection) -> list[Queued]:
    """Every `failed` row by id, locked like :func:`lock_keys`."""
    query = _QUEUED.where(_c.status == OutboxStatus.FAILED).order_by(_c.id).with_for_update()
    return [Queued(*row) for row in conn.execute(query)]


def requeue(conn: sa.Connection, ids: Sequence[int], now: dt.datetime) -> None:
    """Make these rows pending again, due at ``now``, with a fresh allowance of attempts.

    Only rows still `failed` change (the statement asks once more), so a row a worker took up
    meanwhile is never handed to a second one.
    """
    for chunk in _chunks(ids):
        conn.execute(sa.update(outbox_t).where(_c.id.in_(chunk), _c.status == OutboxStatus.FAILED).values(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, lease_until=None, lease_owner=None))


# -- what a message tells, read at delivery --------------------------------------------------


def event_windows(conn: sa.Connection, windows: Iterable[tuple[int, int | None]],
                  count: int, columns: tuple[str, ...] | None = None) -> dict[int, list[dict[str, Any]]]:
    """For each ``(case id, N)``, the events of that case numbered ``N - count + 1`` to ``N``
    (``N`` ``None``: up to its latest event); by case, in order, in one query. ``columns``
    names the columns to read (``case_id`` and ``seq`` among them), by default all.

    Events are numbered 1, 2, 3 ... per case without gaps (the hash chain depends on it), so
    a window is a range of numbers. Windows of one case are merged: the caller cuts each out.
    """
    e = events_t.c
    wanted = dict.fromkeys(windows)
    by_case: dict[int, list[dict[str, Any]]] = {}
    if not wanted:
        return by_case
    if all(upto is not None for _, upto in wanted):
        # The usual case (every row names its event): one statement per number of windows,
        # made once, its numbered parameters given at execution (building a hundred
        # SQLAlchemy expressions, or binding three hundred values into one, per batch cost
        # more than running the query).
        params: dict[str, int] = {}
        for number, (case_id, upto) in enumerate(wanted):
            assert upto is not None
            params[f"c{number}"], params[f"u{number}"], params[f"l{number}"] = case_id, upto, upto - count
        rows = conn.execute(_window_query(len(wanted), columns), params)
    else:
        conditions = []
        for case_id, upto in wanted:
            top: Any = upto if upto is not None else (
                sa.select(cases_t.c.last_seq).where(cases_t.c.id == case_id).scalar_subquery())
            conditions.append(sa.and_(e.case_id == case_id, e.seq <= top, e.seq > top - count))
        rows = conn.execute(_events_select(columns).where(sa.or_(*conditions)).order_by(e.case_id, e.seq))
    for event in rows.mappings():
        by_case.setdefault(event["case_id"], []).append(dict(event))
    return by_case


def _events_select(columns: tuple[str, ...] | None) -> sa.Select[Any]:
    return sa.select(events_t) if columns is None else sa.select(*(events_t.c[name] for name in columns))


@functools.lru_cache(maxsize=32)
def _window_query(windows: int, columns: tuple[str, ...] | None) -> sa.Select[Any]:
    """The events in ``windows`` numbered windows (parameters ``c0``, ``u0``, ``l0``, ...)."""
    where = " OR ".join(f"(case_id = :c{n} AND seq <= :u{n} AND seq > :l{n})" for n in range(windows))
    return _events_select(columns).where(sa.text(where)).order_by(events_t.c.case_id, events_t.c.seq)


def case_types(conn: sa.Connection, case_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """The request type key and version of each of these cases, by case id."""
    ids = set(case_ids)
    if not ids:
        return {}
    query = sa.select(cases_t.c.id, cases_t.c.type_key, cases_t.c.type_version).where(cases_t.c.id.in_(ids))
    return {found.id: (found.type_key, found.type_version) for found in conn.execute(query)}
