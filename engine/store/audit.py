"""The history's SQL for `loket audit`: the chains in batches, the seals and their heads, the export.

Every stream comes in case order (events by case id and seq), so that the checks can merge
cases with their events and keep memory flat however long the history is. Each stream has a
careful twin that reads every checked column raw (`engine.store.raw`) and carries what is
damaged instead of failing on it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from engine.core.replay import REPLAYED
from engine.store import config
from engine.store.raw import BOOL, INT, INT_OR_NULL, JSON, TEXT, TIME, TIME_OR_NULL, RawReader
from engine.store.tables import (
    cases_t,
    config_events_t,
    escalations_t,
    events_t,
    organisation_t,
    request_type_t,
    seal_heads_t,
    seals_t,
    tombstones_t,
)

CASE_BATCH = 2000
EVENT_BATCH = 5000
"""Rows fetched at a time: events are smaller and many more than cases."""

_EVENT_COLUMNS = {"case_id": INT, "seq": INT, "at": TIME, "recorded_at": TIME, "actor": TEXT,
                  "action": TEXT, "from_state": TEXT, "to_state": TEXT, "trigger": TEXT,
                  "comment": TEXT, "data": JSON, "digests": JSON, "salts": JSON, "prev_hash": TEXT,
                  "hash": TEXT}
_KINDS = {"ref": TEXT, "type_key": TEXT, "type_version": INT, "state": TEXT, "owner": TEXT, "assignee": TEXT,
          "data": JSON, "created_at": TIME, "created_by": TEXT, "state_entered_at": TIME, "stay": INT,
          "state_due": TIME_OR_NULL, "service_due": TIME_OR_NULL, "case_due": TIME_OR_NULL,
          "case_due_limit": TIME_OR_NULL, "next_fire_at": TIME_OR_NULL, "suspended_at": TIME_OR_NULL,
          "suspended_manually": BOOL, "closed_at": TIME_OR_NULL, "escalation_level": INT, "service_fired": BOOL,
          "lead_fired": BOOL, "last_seq": INT, "last_hash": TEXT, "salt": TEXT, "redacted_at": TIME_OR_NULL,
          "last_at": TIME_OR_NULL, "directive_seq": INT_OR_NULL, "directive_given_at": TIME_OR_NULL,
          "directive_state": TEXT, "directive_due": TIME_OR_NULL, "directive_met_at": TIME_OR_NULL,
          "directive_missed_at": TIME_OR_NULL}
_CASE_NAMES = ("id", "ref", "salt", *REPLAYED)
"""What the check reads of a case row: what its history decides, and where it is joined to it."""
_CASE_COLUMNS = {name: _KINDS[name] for name in _CASE_NAMES if name != "id"}
_HEAD_CASE_COLUMNS = {"id": INT, "ref": TEXT, "last_seq": INT, "last_hash": TEXT}
_ORGANISATION_COLUMNS = {"loaded_at": TIME, "data": JSON}
_TYPE_COLUMNS = {"key": TEXT, "version": INT, "prefix": TEXT, "loaded_at": TIME}
_EXPORT_CASE_COLUMNS = {"ref": TEXT, "type_key": TEXT, "type_version": INT}
_SEAL_COLUMNS = {"prev_digest": TEXT, "digest": TEXT, "cases": INT}
_HEAD_COLUMNS = {"case_id": INT, "ref": TEXT, "seq": INT, "hash": TEXT}


# -- chains ----------------------------------------------------------------------------------


def count_cases(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(cases_t)).scalar_one())


def chain_cases(conn: sa.Connection, ids: Sequence[int] | None = None) -> Iterable[Any]:
    """Every case row (or those of `ids`), as far as its history decides it, in id order."""
    query = sa.select(*(cases_t.c[name] for name in _CASE_NAMES)).order_by(cases_t.c.id)
    if ids is not None:
        query = query.where(cases_t.c.id.in_(sorted(ids)))
    return conn.execute(query, execution_options={"yield_per": CASE_BATCH})


def chain_events(conn: sa.Connection, ids: Sequence[int] | None = None) -> Iterator[Any]:
    """Every event (or those of the cases `ids`; a mapping per row) by case id and seq."""
    query = sa.select(events_t).order_by(events_t.c.case_id, events_t.c.seq)
    if ids is not None:
        query = query.where(events_t.c.case_id.in_(sorted(ids)))
    return iter(conn.execute(query, execution_options={"yield_per": EVENT_BATCH}).mappings())


def careful_events(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    """The events as `chain_events` reads them, each with `damage` (None if it read back well).

    An event whose case_id is unreadable is `lost`: it is placed where SQLite sorts it (numbers
    in order, text and binary data after them all) and reported as belonging to no case.
    """
    reader = RawReader(conn, events_t, _EVENT_COLUMNS)
    e = events_t.c
    query = sa.select(e.id, *reader.exprs).order_by(e.case_id, e.seq)
    for row in conn.execute(query, execution_options={"yield_per": EVENT_BATCH}):
        ev, damage = reader.decode(row, 1)
        ev["id"], ev["damage"], ev["lost"] = row[0], damage, False
        if type(ev["case_id"]) is not int:
            ev["lost"] = True
            ev["case_id"] = ev["case_id"] if type(ev["case_id"]) is float else math.inf
        yield ev


def careful_cases(conn: sa.Connection) -> Iterator[SimpleNamespace]:
    """The case rows as `chain_cases` reads them, each with `damage`."""
    reader = RawReader(conn, cases_t, _CASE_COLUMNS)
    query = sa.select(cases_t.c.id, *reader.exprs).order_by(cases_t.c.id)
    for row in conn.execute(query, execution_options={"yield_per": CASE_BATCH}):
        values, damage = reader.decode(row, 1)
        yield SimpleNamespace(id=row[0], damage=damage, **values)


def _careful_rows(conn: sa.Connection, table: sa.Table, kinds: dict[str, str], order: Any) -> list[SimpleNamespace]:
    reader = RawReader(conn, table, kinds)
    found = []
    for row in conn.execute(sa.select(table.c.id, *reader.exprs).order_by(order)):
        values, damage = reader.decode(row, 1)
        found.append(SimpleNamespace(id=row[0], damage=damage, **values))
    return found


def organisations(conn: sa.Connection, *, careful: bool) -> list[Any]:
    """Every organisation loaded (id, loaded_at, data), in load order; careful, each with its
    `damage`. The calendar a deadline was counted on is the one in force when it was written."""
    o = organisation_t.c
    if careful:
        return _careful_rows(conn, organisation_t, _ORGANISATION_COLUMNS, o.id)
    return list(conn.execute(sa.select(o.id, o.loaded_at, o.data).order_by(o.id)).all())


def type_versions(conn: sa.Connection, *, careful: bool) -> list[Any]:
    """Every request type version loaded (id, key, version, prefix, loaded_at), in load order;
    careful, each with its `damage`."""
    t = request_type_t.c
    if careful:
        return _careful_rows(conn, request_type_t, _TYPE_COLUMNS, t.id)
    return list(conn.execute(sa.select(t.id, t.key, t.version, t.prefix, t.loaded_at).order_by(t.id)).all())


# -- seals -----------------------------------------------------------------------------------


SEAL_LOCK = 0x6C6F6B6574_0002
"""The advisory lock key that seals queue on (PostgreSQL)."""


def lock_seals(conn: sa.Connection) -> None:
    """Make seals wait for each other on PostgreSQL (each must follow the one before it), to
    the end of the transaction. SQLite has one writer. A transaction that reads in one snapshot
    must be in its turn before that snapshot is taken: see :func:`seal_turn`."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SEAL_LOCK})")


@contextmanager
def seal_turn(conn: sa.Connection) -> Iterator[None]:
    """Hold the seals' turn and the configuration history's (PostgreSQL), in that order, for the
    session, before a REPEATABLE READ transaction begins: a lock taken by a query inside it would
    come after its snapshot, which could then miss the seal that went before. (A table lock would
    not take a snapshot, but needs UPDATE privilege on the table: advisory locks need none.)"""
    if conn.dialect.name != "postgresql":
        yield
        return
    held: list[int] = []
    try:
        for key in (SEAL_LOCK, config.HISTORY_LOCK):  # one statement each: in this order
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
            held.append(key)
        conn.commit()
        yield
    finally:
        try:
            conn.rollback()  # a transaction an error left behind (none after a commit)
            for key in reversed(held):
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
            conn.commit()
        except sa.exc.DBAPIError:  # the session is gone, and its locks with it
            pass


def last_seal_digest(conn: sa.Connection) -> str | None:
    return conn.execute(sa.select(seals_t.c.digest).order_by(seals_t.c.id.desc()).limit(1)).scalar()


def add_seal(conn: sa.Connection, sealed_at: dt.datetime, prev_digest: str, digest: str, cases: int,
             events: int) -> int:
    """A new seal with its digest, holding a copy of every case row's chain head; its id. Added
    whole, never updated afterwards: the seals are append-only (`engine.store.grants`)."""
    seal_id: int = conn.execute(
        sa.insert(seals_t).values(sealed_at=sealed_at, recorded_at=dt.datetime.now(dt.UTC), cases=cases,
                                  events=events, prev_digest=prev_digest, digest=digest)
        .returning(seals_t.c.id)
    ).scalar_one()
    conn.execute(sa.insert(seal_heads_t).from_select(
        ["seal_id", "case_id", "ref", "seq", "hash"],
        sa.select(sa.literal(seal_id), cases_t.c.id, cases_t.c.ref, cases_t.c.last_seq, cases_t.c.last_hash),
    ))
    return seal_id


def case_heads(conn: sa.Connection) -> Iterable[Any]:
    """(id, ref, last_seq, last_hash) of every case row, in id order: what a seal records."""
    c = cases_t.c
    return conn.execute(sa.select(c.id, c.ref, c.last_seq, c.last_hash).order_by(c.id),
                        execution_options={"yield_per": EVENT_BATCH})


def careful_case_heads(conn: sa.Connection) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The heads as `case_heads` reads them, each as its values and its damage."""
    reader = RawReader(conn, cases_t, _HEAD_CASE_COLUMNS)
    for row in conn.execute(sa.select(*reader.exprs).order_by(cases_t.c.id),
                            execution_options={"yield_per": EVENT_BATCH}):
        yield reader.decode(row)


def sealed_heads(conn: sa.Connection, seal_id: int) -> Iterable[Any]:
    """(case_id, ref, seq, hash) of every head a seal recorded, in case order."""
    hd = seal_heads_t.c
    return conn.execute(sa.select(hd.case_id, hd.ref, hd.seq, hd.hash).where(hd.seal_id == seal_id)
                        .order_by(hd.case_id), execution_options={"yield_per": EVENT_BATCH})


def careful_sealed_heads(conn: sa.Connection, seal_id: int) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The heads as `sealed_heads` reads them, each as its values and its damage."""
    reader = RawReader(conn, seal_heads_t, _HEAD_COLUMNS)
    hd = seal_heads_t.c
    query = sa.select(*reader.exprs).where(hd.seal_id == seal_id).order_by(hd.case_id)
    for row in conn.execute(query, execution_options={"yield_per": EVENT_BATCH}):
        yield reader.decode(row)


def seals(conn: sa.Connection, *, careful: bool) -> list[Any]:
    """The seals in order, with what the check needs (a seal's times are not part of its proof);
    careful, each with its `damage`."""
    s = seals_t.c
    if not careful:
        return list(conn.execute(sa.select(s.id, s.prev_digest, s.digest, s.cases).order_by(s.id)).all())
    reader = RawReader(conn, seals_t, _SEAL_COLUMNS)
    found = []
    for row in conn.execute(sa.select(s.id, *reader.exprs).order_by(s.id)):
        values, damage = reader.decode(row, 1)
        found.append(SimpleNamespace(id=row[0], damage=damage, **values))
    return found


def first_unkept_head(conn: sa.Connection, seal_id: int) -> Any:
    """The first head a seal recorded that the history no longer holds as recorded, if any:
    (ref, seq, case_row — None if the case is gone, event_hash — None if the event is gone, hash).

    A case destroyed when its retention term ended is accounted for by its tombstone, when that
    holds the sealed head (same seq and hash) or a later one of the same case."""
    h, e, c, t = seal_heads_t.c, events_t.c, cases_t.c, tombstones_t.c
    destroyed = sa.and_(c.id.is_(None), t.case_id.is_not(None), t.ref == h.ref,
                        sa.or_(t.last_seq > h.seq, sa.and_(t.last_seq == h.seq, t.last_hash == h.hash)))
    return conn.execute(
        sa.select(h.ref, h.seq, c.id.label("case_row"), e.hash.label("event_hash"), h.hash)
        .select_from(seal_heads_t.outerjoin(cases_t, c.id == h.case_id)
                     .outerjoin(events_t, sa.and_(e.case_id == h.case_id, e.seq == h.seq))
                     .outerjoin(tombstones_t, t.case_id == h.case_id))
        .where(h.seal_id == seal_id, h.seq > 0,
               sa.or_(c.id.is_(None), e.hash.is_(None), e.hash != h.hash), sa.not_(destroyed))
        .order_by(h.case_id).limit(1)
    ).first()


# -- export ----------------------------------------------------------------------------------


def _export_conditions(type_key: str | None, until: dt.datetime | None) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if type_key is not None:
        conditions.append(cases_t.c.type_key == type_key)
    if until is not None:
        conditions.append(events_t.c.at < until)
    return conditions


def export_events(conn: sa.Connection, *, type_key: str | None, until: dt.datetime | None) -> Iterable[Any]:
    """The events (mappings, with their case's ref, type_key and type_version) of cases of
    `type_key` before `until`, by case id and seq."""
    query = (sa.select(events_t, cases_t.c.ref, cases_t.c.type_key, cases_t.c.type_version)
             .join(cases_t, cases_t.c.id == events_t.c.case_id)
             .where(*_export_conditions(type_key, until))
             .order_by(events_t.c.case_id, events_t.c.seq))
    return conn.execute(query, execution_options={"yield_per": EVENT_BATCH}).mappings()


def careful_export_events(
    conn: sa.Connection, *, type_key: str | None, until: dt.datetime | None
) -> Iterator[tuple[int, dict[str, Any], str | None, dict[str, Any], str | None]]:
    """The rows of `export_events`, read raw: (event row id, event, its damage, case, its damage)."""
    events = RawReader(conn, events_t, _EVENT_COLUMNS)
    cases = RawReader(conn, cases_t, _EXPORT_CASE_COLUMNS)
    query = (sa.select(events_t.c.id, *events.exprs, *cases.exprs)
             .join(cases_t, cases_t.c.id == events_t.c.case_id)
             .where(*_export_conditions(type_key, until))
             .order_by(events_t.c.case_id, events_t.c.seq))
    for row in conn.execute(query, execution_options={"yield_per": EVENT_BATCH}):
        ev, damage = events.decode(row, 1)
        case, case_damage = cases.decode(row, 1 + len(events.exprs))
        yield row[0], ev, damage, case, case_damage


def latest_instant(conn: sa.Connection) -> tuple[dt.datetime, str] | None:
    """The latest instant the history records — a case's event, an escalation, a configuration
    change, a seal or a destruction — and what recorded it; None on an empty database. A
    simulation's clock may not go back before it."""
    found: list[tuple[dt.datetime, str]] = []
    # The more telling record first: a seal or a destruction also records a configuration change.
    for column, what in ((events_t.c.at, "a case event"), (seals_t.c.sealed_at, "a seal"),
                         (tombstones_t.c.destroyed_at, "a destruction"), (escalations_t.c.fired_at, "an escalation"),
                         (config_events_t.c.at, "a configuration change")):
        value = conn.execute(sa.select(sa.func.max(column))).scalar()
        if value is not None:
            found.append((value, what))
    if not found:
        return None
    at, what = max(found, key=lambda item: item[0])
    if what == "a case event":
        ref = conn.execute(sa.select(cases_t.c.ref).join(events_t, events_t.c.case_id == cases_t.c.id)
                           .where(events_t.c.at == at).limit(1)).scalar()
        if ref is not None:
            what = f"an event of {ref}"
    return at, what
