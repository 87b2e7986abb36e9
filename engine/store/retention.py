"""The SQL of retention (`engine.app.retention`): the closed cases a term may have passed, the
destruction of a batch of them with their tombstones, and the lease that keeps two runs apart.

Destroying a case deletes every row that belongs to it — every table with a `case_id` column
but the tombstones and the seals' recorded heads (see :func:`case_tables`), so a table added
later (an access log) is emptied with the case without being named here — and inserts its
tombstone, in one transaction per batch: a batch is destroyed wholly or not at all, so each
case is too. The tombstone's unique `case_id` makes a second destruction of the same case
impossible whatever runs at once.

A table of a case's rows that is itself chained or sealed (an access log with hashes) needs
its check taught that a tombstoned case's rows are gone on purpose, as `audit verify` is for
the seals' heads (`engine.store.audit.first_unkept_head`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.core.vocabulary import MailKind
from engine.store.db import has_function
from engine.store.tables import cases_t, meta_t, metadata, outbox_t, seal_heads_t, tombstones_t

BATCH = 500
"""Cases destroyed per transaction: all of a batch or none of it."""
LEASE_KEY = "retention_run"

_CANDIDATE = (cases_t.c.id, cases_t.c.ref, cases_t.c.type_key, cases_t.c.type_version, cases_t.c.closed_at,
              cases_t.c.redacted_at, cases_t.c.last_seq, cases_t.c.last_hash)


def case_tables() -> list[sa.Table]:
    """The tables whose rows belong to one case (by `case_id`), children before `cases`:
    destroyed with it. The tombstones and the seals' heads are what is left of it on purpose."""
    kept = {tombstones_t.name, seal_heads_t.name, cases_t.name}
    return [t for t in reversed(metadata.sorted_tables) if "case_id" in t.c and t.name not in kept]


def closed_before(conn: sa.Connection, type_key: str, before: dt.datetime, *, after_id: int = 0,
                  limit: int | None = None, unredacted: bool = False) -> Iterable[Any]:
    """The closed cases of ``type_key`` that closed before ``before``, in id order from after
    ``after_id``, streamed (at most ``limit``); with ``unredacted``, only those not redacted
    since they closed."""
    c = cases_t.c
    query = (sa.select(*_CANDIDATE).where(c.type_key == type_key, c.closed_at.is_not(None), c.closed_at < before,
                                          c.id > after_id).order_by(c.id))
    if unredacted:
        query = query.where(sa.or_(c.redacted_at.is_(None), c.redacted_at < c.closed_at))
    if limit is not None:
        query = query.limit(limit)
    return conn.execute(query, execution_options={"yield_per": 2000})


def count_closed(conn: sa.Connection, type_key: str) -> int:
    c = cases_t.c
    return int(conn.execute(sa.select(sa.func.count()).select_from(cases_t)
                            .where(c.type_key == type_key, c.closed_at.is_not(None))).scalar_one())


def lock_closed(conn: sa.Connection, ids: Sequence[int]) -> list[Any]:
    """Those of ``ids`` that are still closed cases, read again and locked against other writers
    (PostgreSQL; SQLite's write transaction holds the whole database)."""
    c = cases_t.c
    return list(conn.execute(sa.select(*_CANDIDATE).where(c.id.in_(ids), c.closed_at.is_not(None))
                             .order_by(c.id).with_for_update()).all())


DESTROY = "loket_destroy_cases"
"""The PostgreSQL function through which a retention run deletes the cases it tombstoned, once
the events are append-only for people's logins (`engine.store.grants`)."""
_DESTROY_CALL = sa.text(f"SELECT {DESTROY}(CAST(:ids AS bigint[]))")


def destroy(conn: sa.Connection, tombstones: Sequence[dict[str, Any]]) -> None:
    """Delete the cases the tombstones name with everything of theirs, and insert the tombstones.
    On PostgreSQL with `loket db grants` applied the deletions run in the owner's function,
    which checks each case against its tombstone first."""
    ids = [t["case_id"] for t in tombstones]
    conn.execute(sa.insert(tombstones_t), list(tombstones))
    _forget_in_reports(conn, ids)
    if conn.dialect.name == "postgresql" and has_function(conn, DESTROY):
        conn.execute(_DESTROY_CALL, {"ids": ids})
        return
    for table in case_tables():
        conn.execute(sa.delete(table).where(table.c.case_id.in_(ids)))
    conn.execute(sa.delete(cases_t).where(cases_t.c.id.in_(ids)))


_ERASED = {"nl": "[verwijderd]", "en": "[erased]"}


def _forget_in_reports(conn: sa.Connection, ids: Sequence[int]) -> None:
    """The operators' reports of undelivered mail name each failed message's address and
    subject: erase those of the destroyed cases' messages (the reports are kept)."""
    o = outbox_t.c
    # By case_id (indexed) first: the outbox holds every case's mail, the reports have no case.
    reports = conn.execute(sa.select(o.id, o.language, o.context)
                           .where(o.case_id.is_(None), o.kind == MailKind.DELIVERY_FAILED).with_for_update()).all()
    if not reports:
        return
    keys = set(conn.execute(sa.select(o.key).where(o.case_id.in_(ids))).scalars())
    for report in reports:
        context = dict(report.context or {})
        failed = list(context.get("failed") or [])
        mark = _ERASED.get(report.language, _ERASED["en"])
        erased = [{**f, "to": mark, "subject": mark} if isinstance(f, dict) and f.get("key") in keys else f
                  for f in failed]
        if erased != failed:
            conn.execute(sa.update(outbox_t).where(o.id == report.id).values(context={**context, "failed": erased}))


def tombstones_of(conn: sa.Connection, runs: Sequence[int]) -> Iterator[Any]:
    t = tombstones_t.c
    return iter(conn.execute(sa.select(tombstones_t).where(t.run.in_(runs)).order_by(t.id),
                             execution_options={"yield_per": 2000}))


def destroyed_per_run(conn: sa.Connection) -> list[tuple[Any, int]]:
    """(run, cases destroyed under it), in run order. The run as stored: a damaged value (SQLite
    keeps anything in any column) is one no recorded run matches, not a crash."""
    t = tombstones_t.c
    return [(run, int(n)) for run, n in
            conn.execute(sa.select(t.run, sa.func.count()).group_by(t.run).order_by(t.run)).all()]


# -- the lease: one run at a time ----------------------------------------------------------------


def read_lease(conn: sa.Connection) -> str | None:
    return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == LEASE_KEY)).scalar()


def take_lease(conn: sa.Connection, value: str, replacing: str | None) -> bool:
    """Take the lease: a new one when ``replacing`` is None, else only while it is still
    ``replacing`` (a stale lease another run may be taking over at the same time)."""
    if replacing is None:
        insert: Any = (postgresql.insert(meta_t) if conn.dialect.name == "postgresql" else sqlite.insert(meta_t))
        done = conn.execute(insert.values(key=LEASE_KEY, value=value).on_conflict_do_nothing()
                            .returning(meta_t.c.key)).first()
        return done is not None
    return swap_lease(conn, replacing, value)


def swap_lease(conn: sa.Connection, old: str, new: str) -> bool:
    done = conn.execute(sa.update(meta_t).where(meta_t.c.key == LEASE_KEY, meta_t.c.value == old).values(value=new))
    return done.rowcount == 1


def drop_lease(conn: sa.Connection, value: str) -> None:
    conn.execute(sa.delete(meta_t).where(meta_t.c.key == LEASE_KEY, meta_t.c.value == value))
