"""`case_stay`: the ended stays of cases (`engine.core.stays`), written with the transition
that ends each, filled from the history for cases that existed before (migration 0009), and
recomputed from the history by `audit verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from engine.core import stays as core
from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType
from engine.core.vocabulary import Action
from engine.store.sweeps import insert_rows
from engine.store.tables import cases_t, events_t, stay_tally_t, stays_t

_e, _s = events_t.c, stays_t.c
COLUMNS = ("case_id", "stay", "end_seq", "type_key", "type_version", "state", "unit", "entered_at", "left_at",
           "days", "stay_us", "due_at", "due_on", "met")
"""The columns `engine.core.stays.rows` fills, in the order they are compared."""
BATCH = 2000


_ACTIONS = ", ".join(f"'{action.value}'" for action in core.MOVE_ACTIONS)
_MOVES_OF_ONE = (f"SELECT seq, at, action, to_state FROM {events_t.name} WHERE case_id = {{}}"
                 f" AND action IN ({_ACTIONS}) ORDER BY seq")
"""A transition a person makes reads its case's moves with it: straight through the driver,
in the transaction (SQLAlchemy's statement and row handling were most of its cost)."""


def _moves_of_one(conn: sa.Connection, case_id: int) -> list[core.StayMove]:
    from engine.store.reports import _instant

    driver: Any = conn.connection.driver_connection
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    cursor = driver.cursor()
    try:
        cursor.execute(_MOVES_OF_ONE.format(mark), (case_id,))
        out = []
        for seq, at, action, to in cursor.fetchall():
            moment = _instant(at)  # `at` is NOT NULL
            assert moment is not None
            out.append(core.StayMove(seq, moment, action, to))
        return out
    finally:
        cursor.close()


def moves(conn: sa.Connection, case_ids: Sequence[int]) -> dict[int, list[core.StayMove]]:
    """The `MOVE_ACTIONS` events of these cases, by case, in seq order."""
    if len(case_ids) == 1 and conn.dialect.name in ("sqlite", "postgresql"):
        return {case_ids[0]: _moves_of_one(conn, case_ids[0])}
    out: dict[int, list[core.StayMove]] = {case_id: [] for case_id in case_ids}
    query = (sa.select(_e.case_id, _e.seq, _e.at, _e.action, _e.to_state)
             .where(_e.case_id.in_(case_ids), _e.action.in_(core.MOVE_ACTIONS)).order_by(_e.case_id, _e.seq))
    for case_id, seq, at, action, to_state in conn.execute(query):
        out[case_id].append(core.StayMove(seq, at, action, to_state))
    return out


_BINDS: dict[str, list[Any]] = {}
"""Per dialect, each column's bind processor (as an INSERT would bind it), looked up once."""


def insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """A few rows (a person's transition) straight through the driver, each value bound as an
    INSERT binds it; a batch by bulk copy (`insert_rows`)."""
    if len(rows) > 20 or conn.dialect.name not in ("sqlite", "postgresql"):
        insert_rows(conn, stays_t, rows)
        return
    if not rows:
        return
    dialect = conn.dialect
    binds = _BINDS.get(dialect.name)
    if binds is None:
        binds = _BINDS[dialect.name] = [stays_t.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                                        for name in COLUMNS]
    mark = "?" if dialect.name == "sqlite" else "%s"
    statement = f"INSERT INTO {stays_t.name} ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    values = [[row[name] if bind is None or row[name] is None else bind(row[name])
               for name, bind in zip(COLUMNS, binds, strict=True)] for row in rows]
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        cursor.executemany(statement, values)
    finally:
        cursor.close()


def expected(conn: sa.Connection, cal: WorkingCalendar, type_of: Callable[[str, int], RequestType],
             after: int = 0, ids: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """The rows `case_stay` should hold for every case (from id `after` on; with `ids`, only
    for those cases), worked out from the history, in case id and stay order: the cases and
    their moves streamed side by side."""
    c = cases_t.c
    which = c.id > after if ids is None else c.id.in_(ids)
    cases = conn.execute(sa.select(c.id, c.type_key, c.type_version).where(which).order_by(c.id),
                         execution_options={"yield_per": BATCH})
    # A migration's event only for the version it names (`engine.core.stays.versions`).
    from_version = sa.case((_e.action == Action.MIGRATED, _e.data["from_version"].as_integer()), else_=sa.null())
    events = conn.execute(
        sa.select(_e.case_id, _e.seq, _e.at, _e.action, _e.to_state, from_version)
        .where(_e.action.in_((*core.MOVE_ACTIONS, Action.MIGRATED)),
               _e.case_id > after if ids is None else _e.case_id.in_(ids))
        .order_by(_e.case_id, _e.seq),
        execution_options={"yield_per": BATCH})
    groups = groupby(events, key=itemgetter(0))
    case_id, group = next(groups, (None, iter(())))
    for id_, key, version in cases:
        while case_id is not None and case_id < id_:
            case_id, group = next(groups, (None, iter(())))
        if case_id != id_:
            continue
        own, migrations = [], []
        for _, seq, at, action, to, left in group:
            if action == Action.MIGRATED:
                migrations.append((seq, int(left)))
            else:
                own.append(core.StayMove(seq, at, action, to))
        case_id, group = next(groups, (None, iter(())))
        ended = core.ended(own)
        if not migrations:
            yield from core.rows(id_, key, version, type_of(key, version), cal, ended)
            continue
        for stay, judged in zip(ended, core.versions(ended, migrations, version), strict=True):
            yield from core.rows(id_, key, judged, type_of(key, judged), cal, [stay])


def stored(conn: sa.Connection, ids: Sequence[int] | None = None) -> Iterable[Any]:
    """Every stored row (with `ids`, those of these cases), in case id and stay order."""
    query = sa.select(*(_s[name] for name in COLUMNS)).order_by(_s.case_id, _s.stay)
    if ids is not None:
        query = query.where(_s.case_id.in_(ids))
    return conn.execute(query, execution_options={"yield_per": BATCH})


Rows = list[tuple[Any, ...]]


def _per_case(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[int, Rows]]:
    for case_id, group in groupby(rows, key=itemgetter(0)):
        yield case_id, list(group)


def side_by_side(conn: sa.Connection, cal: WorkingCalendar, type_of: Callable[[str, int], RequestType],
                 ids: Sequence[int] | None = None) -> Iterator[tuple[int, Rows, Rows]]:
    """Per case whose stored rows are not what its history gives (every case, or those of
    `ids`): its id, the rows the history gives and the rows stored (as `COLUMNS` tuples), in
    case id order. Both are streamed in case order and merged, one case's rows held at a time."""
    want = _per_case(tuple(row[name] for name in COLUMNS) for row in expected(conn, cal, type_of, ids=ids))
    have = _per_case(tuple(row) for row in stored(conn, ids))
    w, h = next(want, None), next(have, None)
    while w is not None or h is not None:
        if h is None or (w is not None and w[0] < h[0]):
            assert w is not None
            yield w[0], w[1], []
            w = next(want, None)
        elif w is None or h[0] < w[0]:
            yield h[0], [], h[1]
            h = next(have, None)
        else:
            if w[1] != h[1]:
                yield w[0], w[1], h[1]
            w, h = next(want, None), next(have, None)


def rewrite(conn: sa.Connection, case_id: int, rows: Rows) -> int:
    """Replace the stored rows of one case by these (`COLUMNS` tuples); how many were removed."""
    removed = conn.execute(sa.delete(stays_t).where(_s.case_id == case_id)).rowcount
    insert(conn, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
    return int(removed)


def fill(conn: sa.Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Insert rows in batches; how many."""
    count, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            insert(conn, batch)
            count, batch = count + len(batch), []
    insert(conn, batch)
    return count + len(batch)


def ref_of(conn: sa.Connection, case_id: int) -> str | None:
    return conn.execute(sa.select(cases_t.c.ref).where(cases_t.c.id == case_id)).scalar()


def lock_cases(conn: sa.Connection, ids: Sequence[int]) -> None:
    """On PostgreSQL, lock these case rows for the transaction: a change to one of them (which
    writes its stays) waits for it, or it for the change (SQLite's writers take turns anyway)."""
    if conn.dialect.name == "postgresql" and ids:
        conn.execute(sa.select(cases_t.c.id).where(cases_t.c.id.in_(ids)).order_by(cases_t.c.id).with_for_update())


def tally_drift(conn: sa.Connection) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """The first group (type, state, unit, met) whose count in `stay_tally` is not what
    grouping `case_stay` gives: (the rows' figures, the tally's), each (type, state, unit,
    met, how many, µs together), with (…, 0, 0) for a group one side lacks; None when the
    two agree. The trigger of migration 0014 keeps them so; only a change made with the
    triggers off (or to the tally itself) can part them."""
    from engine.store.reports import grouped_stays, tallied

    rows = {row[:4]: row for row in grouped_stays(conn)}
    kept = {row[:4]: row for row in tallied(conn)}
    for key in sorted(rows.keys() | kept.keys(), key=lambda k: (k[0], k[1], k[2] or "", -2 if k[3] is None else k[3])):
        have, want = kept.get(key, (*key, 0, 0)), rows.get(key, (*key, 0, 0))
        if have != want:
            return want, have
    return None


def rebuild_tally(conn: sa.Connection) -> None:
    """Count `stay_tally` again from `case_stay`, in this transaction (the owner role's: people's
    logins may not write it). On PostgreSQL `case_stay` is locked against writers meanwhile
    (SHARE: they wait, readers do not), so no stay is counted twice or not at all."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {stays_t.name} IN SHARE MODE")
    conn.execute(sa.delete(stay_tally_t))
    met = sa.case((_s.met.is_(None), -1), (_s.met, 1), else_=0)
    unit = sa.func.coalesce(_s.unit, "")
    grouped = (sa.select(sa.literal(0), _s.type_key, _s.state, unit, met, sa.func.count(), sa.func.sum(_s.stay_us))
               .group_by(_s.type_key, _s.state, unit, met))
    conn.execute(sa.insert(stay_tally_t).from_select(
        ["shard", "type_key", "state", "unit", "met", "stays", "stay_us"], grouped))
