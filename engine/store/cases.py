"""Every statement on cases, their events and the reference counters.

Each function takes the caller's connection, so a command reads and writes inside one
transaction. A case row unpacks straight into a `Case`; a write is guarded by the version the
writer read, and a writer that lost the race learns it from a False, not from an exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from engine.core.casework import CASE_FIELDS, Case
from engine.store.tables import cases_t, events_t, ref_counter_t

CASE_COLUMNS = tuple(cases_t.c[name] for name in CASE_FIELDS)
"""The case columns in the order of `Case`'s fields: a row unpacks straight into a Case."""
_SELECT_CASE = sa.select(*CASE_COLUMNS).where(cases_t.c.ref == sa.bindparam("ref"))
_INSERT_EVENT = sa.insert(events_t)
_UPDATES: dict[frozenset[str], sa.Update] = {}


def update_case(columns: frozenset[str]) -> sa.Update:
    """The guarded UPDATE of exactly these columns, built once per set of columns.

    Writing only what changed keeps the hot path's parameter handling small; the few
    distinct sets (advance, assign, sweep...) each compile once. Its parameters are the
    columns by name, and `_id` and `_version`: the row and the version that was read.
    """
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = _UPDATES[columns] = (
            sa.update(cases_t)
            .where(cases_t.c.id == sa.bindparam("_id"), cases_t.c.version == sa.bindparam("_version"))
            .values({name: sa.bindparam(name) for name in sorted(columns)})
        )
    return statement


# -- reading ---------------------------------------------------------------------------------


def case_by_ref(conn: sa.Connection, ref: str) -> Case | None:
    row = conn.execute(_SELECT_CASE, {"ref": ref}).first()
    return None if row is None else Case(*row)


def case_by_id(conn: sa.Connection, case_id: int) -> Case | None:
    row = conn.execute(sa.select(*CASE_COLUMNS).where(cases_t.c.id == case_id)).first()
    return None if row is None else Case(*row)


def listed(
    conn: sa.Connection,
    *,
    type_key: str | None,
    state: str | None,
    unit: str | None,
    assignee: str | None,
    overdue_at: dt.datetime | None,
    open_: bool | None,
    limit: int | None,
) -> Iterator[Case]:
    """The cases that pass every given filter, oldest first, fetched in chunks as they are
    consumed; `overdue_at` keeps the running ones whose state deadline lies before it."""
    c = cases_t.c
    query = sa.select(*CASE_COLUMNS).order_by(c.id)
    if type_key:
        query = query.where(c.type_key == type_key)
    if state:
        query = query.where(c.state == state)
    if unit:
        query = query.where(c.owner == unit)
    if assignee:
        query = query.where(c.assignee == assignee)
    if overdue_at is not None:
        query = query.where(c.state_due < overdue_at, c.suspended_at.is_(None), c.closed_at.is_(None))
    if open_ is True:
        query = query.where(c.closed_at.is_(None))
    elif open_ is False:
        query = query.where(c.closed_at.is_not(None))
    if limit:
        query = query.limit(limit)
    for row in conn.execute(query, execution_options={"yield_per": 1000}):
        yield Case(*row)


def state_in_use(conn: sa.Connection, state: str, type_key: str | None) -> bool:
    """Whether any case (of this type) is in `state`."""
    query = sa.select(cases_t.c.id).where(cases_t.c.state == state).limit(1)
    if type_key:
        query = query.where(cases_t.c.type_key == type_key)
    return conn.execute(query).first() is not None


def open_assigned(conn: sa.Connection) -> list[tuple[str, str]]:
    """(ref, assignee) of every open case someone holds, oldest first."""
    query = (sa.select(cases_t.c.ref, cases_t.c.assignee)
             .where(cases_t.c.closed_at.is_(None), cases_t.c.assignee.is_not(None)).order_by(cases_t.c.id))
    return [(ref, who) for ref, who in conn.execute(query)]


def open_on_versions(conn: sa.Connection, type_key: str, below: int) -> list[tuple[int, str, int]]:
    """(version, state, open cases) of the type's open cases on versions before `below`."""
    c = cases_t.c
    query = (sa.select(c.type_version, c.state, sa.func.count())
             .where(c.type_key == type_key, c.closed_at.is_(None), c.type_version < below)
             .group_by(c.type_version, c.state).order_by(c.type_version, c.state))
    return [(int(v), str(s), int(n)) for v, s, n in conn.execute(query)]


def migratable(
    conn: sa.Connection, type_key: str, versions: Sequence[int], *, after: int, limit: int,
    ids: Sequence[int] | None = None,
) -> list[Case]:
    """The next `limit` open cases of the type on one of `versions`, by id after `after` (a
    migration walks them batch by batch: its memory does not grow with the cases); only those
    among `ids` when given."""
    c = cases_t.c
    query = (sa.select(*CASE_COLUMNS)
             .where(c.type_key == type_key, c.closed_at.is_(None), c.type_version.in_(versions), c.id > after)
             .order_by(c.id).limit(limit))
    if ids is not None:
        query = query.where(c.id.in_(ids))
    return [Case(*row) for row in conn.execute(query)]


def clock_events(
    conn: sa.Connection, case_ids: Sequence[int], actions: Sequence[str]
) -> dict[int, list[dict[str, Any]]]:
    """Of each case, its events of these actions in order, in one query."""
    e = events_t.c
    out: dict[int, list[dict[str, Any]]] = {case_id: [] for case_id in case_ids}
    if not case_ids:
        return out
    query = (sa.select(e.case_id, e.seq, e.at, e.actor, e.action, e.from_state, e.to_state, e.data)
             .where(e.case_id.in_(case_ids), e.action.in_(actions)).order_by(e.case_id, e.seq))
    for row in conn.execute(query).mappings():
        out[row["case_id"]].append(dict(row))
    return out


def history_rows(conn: sa.Connection, case_id: int) -> list[dict[str, Any]]:
    """Every event of the case in order, as stored. A value its column type cannot decode
    raises here (ValueError, TypeError or OverflowError)."""
    rows = conn.execute(
        sa.select(events_t).where(events_t.c.case_id == case_id).order_by(events_t.c.seq)
    ).mappings().all()
    return [dict(r) for r in rows]


def states_left(conn: sa.Connection, case_id: int) -> Iterable[str]:
    """The states the case left, newest first (fetched as they are consumed)."""
    return conn.execute(
        sa.select(events_t.c.from_state).where(events_t.c.case_id == case_id, events_t.c.from_state.is_not(None))
        .order_by(events_t.c.seq.desc())
    ).scalars()


def last_event_data(conn: sa.Connection, case_id: int, action: str) -> Any:
    """The data of the case's newest event of this action (None without one)."""
    return conn.execute(
        sa.select(events_t.c.data).where(events_t.c.case_id == case_id, events_t.c.action == action)
        .order_by(events_t.c.seq.desc()).limit(1)
    ).scalar()


def event_at(conn: sa.Connection, case_id: int, seq: int) -> dict[str, Any] | None:
    """The actor, time and data of the case's event number `seq` (None if it has none)."""
    row = conn.execute(
        sa.select(events_t.c.actor, events_t.c.at, events_t.c.data)
        .where(events_t.c.case_id == case_id, events_t.c.seq == seq)
    ).mappings().first()
    return None if row is None else dict(row)


def events_since(conn: sa.Connection, case_id: int, seq: int) -> list[dict[str, Any]]:
    """The actor, action and data of the case's events after `seq`, in order: what changed
    since a command read the case at that point."""
    rows = conn.execute(
        sa.select(events_t.c.actor, events_t.c.action, events_t.c.data)
        .where(events_t.c.case_id == case_id, events_t.c.seq > seq).order_by(events_t.c.seq)
    ).mappings().all()
    return [dict(r) for r in rows]


# -- writing ---------------------------------------------------------------------------------


def next_ref(conn: sa.Connection, prefix: str, year: int) -> str:
    """The next reference of this prefix and year (PREFIX-YEAR-NNNNN), counted under the
    caller's transaction: a number is never handed out twice, and a rolled-back case gives
    its number back."""
    c = ref_counter_t.c
    bump = (
        sa.update(ref_counter_t).where(c.prefix == prefix, c.year == year)
        .values(last=c.last + 1).returning(c.last)
    )
    number = conn.execute(bump).scalar()
    if number is None:
        conn.execute(_insert_ignore(conn, ref_counter_t, {"prefix": prefix, "year": year, "last": 0}))
        number = conn.execute(bump).scalar_one()
    return f"{prefix}-{year}-{number:05d}"


def insert_case(conn: sa.Connection, case: Case) -> int:
    """Store a new case (its `id` is ignored) and return the id the database gave it."""
    values = {name: getattr(case, name) for name in CASE_FIELDS if name != "id"}
    return int(conn.execute(sa.insert(cases_t).values(values).returning(cases_t.c.id)).scalar_one())


def update(conn: sa.Connection, columns: frozenset[str], params: Mapping[str, Any]) -> bool:
    """Write these columns (see `update_case`); False when the row is no longer at the
    version that was read."""
    return conn.execute(update_case(columns), params).rowcount == 1


def update_many(conn: sa.Connection, columns: frozenset[str], params: Sequence[Mapping[str, Any]]) -> None:
    """Write these columns of many cases in one driver call (see `update_case`); which rows the
    guard let through, `heads` tells: the rows whose chain head is the one written."""
    conn.execute(update_case(columns), params)


def heads(conn: sa.Connection, case_ids: Sequence[int]) -> dict[int, str]:
    """The chain head (`last_hash`) of each of these cases."""
    query = sa.select(cases_t.c.id, cases_t.c.last_hash).where(cases_t.c.id.in_(case_ids))
    return {case_id: head for case_id, head in conn.execute(query)}


def insert_events(conn: sa.Connection, events: list[dict[str, Any]]) -> bool:
    """Append chained events; False when another writer took one of their places first."""
    try:
        conn.execute(_INSERT_EVENT, events)
    except sa.exc.IntegrityError:
        return False
    return True


def _insert_ignore(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).values(values).on_conflict_do_nothing()
