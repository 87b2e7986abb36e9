"""The queries behind `loket report`: what it reads, and in which order.

The report figures medians and stays exactly, so it reads rows, not aggregates: the cases
by id and their `created`, `transition`, `suspended` and `resumed` events by case id and seq,
streamed in batches side by side (see `engine.reporting.builder.with_moves`), then the
escalations, then the failed emails. The database works out each case's two flags, and
sends the field values only of closed cases (their outcome's area, measures and summary).

The filters (type, since, until; see `engine.reporting.figures.Filters`) leave out in the database what cannot
count: cases of another type, made on or after `until`, or closed before `since`;
escalations outside the period. The rest (which stays, terms and events fall in the period;
which unit held a case) is decided by the builder, which sees each case's moves.
"""

from __future__ import annotations

import enum
import itertools
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.core.vocabulary import Action, OutboxStatus
from engine.store import indexes
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t, stay_tally_t, stays_t
from engine.store.types import JSONType, UTCDateTime

STREAM_BATCH = 2000
"""Rows fetched at a time from a streamed query."""

_c, _e, _x, _o, _s, _t = cases_t.c, events_t.c, escalations_t.c, outbox_t.c, stays_t.c, stay_tally_t.c


def _overdue(now: sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    """Whether a case is overdue at `now`: open, not suspended, its state deadline before now.
    With state_due IS NOT NULL first, the conjunction is false, never NULL, for cases
    without a state deadline."""
    return sa.and_(_c.closed_at.is_(None), _c.suspended_at.is_(None), _c.state_due.is_not(None),
                   _c.state_due < now)


CASES_QUERY = sa.select(
    _c.id, _c.ref, _c.type_key, _c.type_version, _c.state, _c.owner, _c.created_at, _c.closed_at,
    _c.state_entered_at, _c.service_due, _c.case_due,
    _c.suspended_at.is_not(None),
    _overdue(sa.bindparam("now", type_=UTCDateTime())),
    sa.type_coerce(sa.case((_c.closed_at.is_not(None), _c.data), else_=sa.null()), JSONType),
).order_by(_c.id)
"""Each case with its terms, whether it is suspended, whether it is overdue at `now` (open,
not suspended, state_due before now), and the field values of a closed one."""
MOVE_ACTIONS = _e.action.in_((Action.CREATED, Action.TRANSITION, Action.SUSPENDED, Action.RESUMED))
"""The events that move a case: the report pairs each with the next for the stays."""
MOVES_QUERY = (
    sa.select(_e.case_id, _e.at, _e.action, _e.from_state, _e.to_state)
    .where(MOVE_ACTIONS)
    .order_by(_e.case_id, _e.seq)
)
FAILED_COUNT_QUERY = (
    sa.select(sa.func.count()).select_from(outbox_t).where(_o.status == OutboxStatus.FAILED)
)
FAILED_QUERY = (
    sa.select(_o.id, _o.key, _o.to_email, _o.subject, _o.attempts, _o.last_error, _o.created_at)
    .where(_o.status == OutboxStatus.FAILED).order_by(_o.id.desc())
)
"""The emails that failed for good, newest first."""


def _streamed(conn: sa.Connection, query: sa.Select[Any], params: dict[str, Any] | None = None
              ) -> Iterable[sa.Row[Any]]:
    return conn.execute(query, params, execution_options={"yield_per": STREAM_BATCH})


def _instant(value: Any) -> datetime | None:
    """What `UTCDateTime` reads back, from the driver's own value: SQLite's text (UTC without
    its zone) or PostgreSQL's aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


_serial = itertools.count()


def _raw_streamed(conn: sa.Connection, query: sa.Select[Any], params: dict[str, Any] | None = None
                  ) -> Iterator[tuple[Any, ...]]:
    """The query's rows as the driver gives them, fetched `STREAM_BATCH` at a time through
    the DB-API cursor of `conn`'s connection (a server-side cursor on PostgreSQL), inside
    `conn`'s transaction.

    The report reads every case and every state change; SQLAlchemy's result rows and type
    processing of them were a third of its time. The caller converts the few columns that
    need it (instants with `_instant`)."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params(params)
    for name, value in values.items():
        # An IN list's values come as `<its bind's name>_1`, `_2`, ...
        bind = compiled.binds.get(name)
        if bind is None:
            bind = compiled.binds.get(name.rpartition("_")[0])
        processor = bind.type._cached_bind_processor(dialect) if bind is not None else None
        if processor is not None:
            value = processor(value)
        values[name] = value.value if isinstance(value, enum.Enum) else value
    conn.exec_driver_sql("SELECT 1").close()  # begins `conn`'s transaction (its snapshot) if need be
    driver = conn.connection.driver_connection
    assert driver is not None
    # On PostgreSQL a named cursor: the rows stay on the server until fetched.
    server_side = dialect.name == "postgresql"
    cursor = driver.cursor(name=f"loket_report_{next(_serial)}") if server_side else driver.cursor()
    try:
        if compiled.positional:
            cursor.execute(compiled.string, tuple(values[name] for name in compiled.positiontup or ()))
        else:
            cursor.execute(compiled.string, values)
        while batch := cursor.fetchmany(STREAM_BATCH):
            yield from batch
    finally:
        cursor.close()


def plain_plans(conn: sa.Connection) -> None:
    """PostgreSQL: for the rest of `conn`'s transaction, no JIT compilation (the report's
    queries are plain scans and groupings; at a million cases compiling them cost more than
    it saved, `bench/bench_report.py`), and cursors planned for all their rows
    (`cursor_tuple_fraction` 1): the report reads every row of the cases it streams, and
    planned for the first tenth PostgreSQL walked the million cases in id order for the 3.5%
    open, 0.33 s, where finding them by `closed_at` and sorting those takes 0.20 s."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1")


GROUPING_MEMORY = ("64MB", 8)
"""The `work_mem` and `hash_mem_multiplier` of the connections that group (`roomy`)."""


def roomy(conn: sa.Connection) -> None:
    """PostgreSQL: room for the report's groupings for the rest of `conn`'s transaction
    (`work_mem` and `hash_mem_multiplier`, `GROUPING_MEMORY`). With the defaults (4 MB, 2) the
    planner, which cannot tell how few groups a day, an area or a term gives, sorted the million
    closed cases on disk for two of their groupings instead of hashing them (1,875 groups, 8 MB
    in all; 3.4 → 2.4 s), and the lead times' ranks sorted on disk too. A hash table that does
    outgrow its room spills to disk as before."""
    if conn.dialect.name == "postgresql":
        memory, multiplier = GROUPING_MEMORY
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{memory}'")
        conn.exec_driver_sql(f"SET LOCAL hash_mem_multiplier = {multiplier}")


class Period(NamedTuple):
    """What the database can leave out: another request type, and what lies outside
    [since, until)."""

    type_key: str | None = None
    since: datetime | None = None
    until: datetime | None = None


ALL = Period()
"""No filter."""


def _cases_kept(filters: Period) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if filters.type_key is not None:
        out.append(_c.type_key == filters.type_key)
    if filters.until is not None:
        out.append(_c.created_at < filters.until)
    if filters.since is not None:
        out.append(sa.or_(_c.closed_at.is_(None), _c.closed_at >= filters.since))
    return out


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner `json.loads` ends in, called directly: `loads` wraps it in two Python frames
(the report decodes the field values of every closed case)."""


def _json(value: Any) -> Any:
    """`json.loads` of a text value, which the scanner alone answers when the text is one
    JSON value from start to end (leading or trailing blanks, or an error: `loads` itself)."""
    if not isinstance(value, str):
        return value
    try:
        found, end = _scan_json(value, 0)
    except StopIteration:
        return json.loads(value)
    return found if end == len(value) else json.loads(value)


MET_MARK = 2**62
"""A closed case's service norm or lead time that was met, as `case_rows` gives it: later
than any instant (the year 148,000), so that `closed <= due` holds."""


def case_rows(conn: sa.Connection, now: datetime, filters: Period = ALL, *,
              data_for: Collection[str] | None = None,
              open_and_dekking: tuple[Collection[int], tuple[Iterable[str], Iterable[str]]] | None = None,
              closed_only: bool = False) -> Iterator[tuple[Any, ...]]:
    """The rows of `CASES_QUERY` at `now`, of the cases the filters may count, in id order,
    as plain tuples: the instants in µs since the epoch (see `micros`), the two flags as
    booleans (0 and 1 on SQLite), the field values decoded — with `data_for`, only those of closed cases of these
    types (the others' are read by `case_data` for the few the report shows).

    A closed case's instants are converted only as far as the report uses them (each
    conversion costs the database a parse per row): its state_entered_at is None; a service
    norm or lead time it met (closed at or before it, compared on the stored values) is
    `MET_MARK`; one it missed is its instant under a period (`since` or `until`: it counts
    where it was missed), else 0 (it counts, whenever it was missed).

    With `open_and_dekking` (the cases of the bestuurlijke dekking and the administrators,
    as `move_rows` takes them), only the open cases and those closed ones: the others are
    counted on the database (`engine.store.closed`). With `closed_only`, only the closed
    cases."""
    dialect = conn.dialect.name
    columns = list(CASES_QUERY.selected_columns)
    if data_for is not None:
        # Spelled out, not IN: the streamed query is compiled with its values bound.
        wanted = (sa.and_(_c.closed_at.is_not(None), sa.or_(*(_c.type_key == key for key in sorted(data_for))))
                  if data_for else sa.false())
        columns[-1] = sa.type_coerce(sa.case((wanted, _c.data), else_=sa.null()), JSONType)
    converted = [micros(column, dialect) if isinstance(column.type, UTCDateTime) else column for column in columns]
    # A closed case's stay now and its dues as instants count only where the report needs
    # them: its stay not at all, a due met not (`closed <= due` holds for MET_MARK), a due
    # missed only as when it was missed, under a period.
    open_ = _c.closed_at.is_(None)
    converted[8] = sa.case((open_, converted[8]), else_=sa.null())
    for place, due in ((9, _c.service_due), (10, _c.case_due)):
        missed: sa.ColumnElement[Any] = (converted[place] if filters.since is not None or filters.until is not None
                                         else sa.literal(0, sa.BigInteger))
        converted[place] = sa.case((open_, converted[place]), (due.is_(None), sa.null()),
                                   (_c.closed_at <= due, sa.literal(MET_MARK, sa.BigInteger)), else_=missed)
    if dialect != "sqlite":
        # JSONB as its text, decoded here by the JSON scanner (`_json`): the driver's loader
        # makes the same values by `json.loads`, two Python frames per closed case dearer.
        converted[-1] = sa.cast(converted[-1], sa.Text)
    # `now` bound with its value: an IN list (`_of_dekking`) is rendered when the statement is
    # compiled, and every other value must be known by then.
    converted[12] = _overdue(sa.bindparam("now", now, type_=UTCDateTime()))
    query = CASES_QUERY.with_only_columns(*converted).where(*_cases_kept(filters))
    if open_and_dekking is not None:
        query = query.where(sa.or_(_c.closed_at.is_(None), *_of_dekking(_c.id, *open_and_dekking)))
    if closed_only:  # the closed ones after all (see `engine.app.report`)
        query = query.where(_c.closed_at.is_not(None))
    for row in _raw_streamed(conn, query):
        # The flags as the driver gives them (0 and 1 from SQLite); the field values' text decoded.
        values = row[13]
        yield row if values is None else (*row[:13], _json(values))


def case_data(conn: sa.Connection, case_ids: Sequence[int]) -> dict[int, Any]:
    """The field values of these cases, by id."""
    return {case_id: data for case_id, data in conn.execute(sa.select(_c.id, _c.data).where(_c.id.in_(case_ids)))}


def micros(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[int]:
    """An instant column as integer µs since the epoch, exactly, worked out by the database:
    a number is cheaper to fetch than an instant is to decode."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', UTC
        return _sqlite_seconds(column) * 1_000_000 + sa.cast(sa.func.substr(column, 21, 6), sa.BigInteger)
    return sa.cast(sa.extract("epoch", column) * 1_000_000, sa.BigInteger)


def whole_seconds(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[int]:
    """An instant column's whole seconds since the epoch, exactly. On PostgreSQL by
    `date_part`, a third of `EXTRACT`'s cost per row: it gives the µs divided by 10⁶ as a
    double, correctly rounded, and below 2⁵³ µs (the year 2255) that rounding never crosses a
    whole second (a fraction is a whole number of µs, more than the rounding from it), so its
    floor is exact."""
    if dialect == "postgresql":
        return sa.cast(sa.func.floor(sa.func.date_part("epoch", column)), sa.BigInteger)
    return _sqlite_seconds(column)


def _sqlite_seconds(column: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """SQLite: an instant's whole seconds since the epoch, from its text without the fraction
    (SQLite would round a fraction to the nearest second)."""
    whole = sa.func.substr(column, 1, 19)
    if sqlite3.sqlite_version_info >= (3, 38):
        return sa.func.unixepoch(whole)
    return sa.cast(sa.func.strftime("%s", whole), sa.BigInteger)


def move_rows(conn: sa.Connection, filters: Period = ALL, *, stored_stays: bool = False,
              dekking: Collection[int] = (), admins: tuple[Iterable[str], Iterable[str]] | None = None,
              ) -> Iterator[tuple[Any, ...]]:
    """Every case's `created`, `transition`, `suspended` and `resumed` events, streamed by
    case id and seq (only those of the type asked for, when one is), as plain tuples
    `(case id, µs since the epoch, action, from state, to state)`.

    With `stored_stays` (the report reads the ended stays from `case_stay`), only those of the
    open cases (for their stay now) and of the cases `dekking` (those with events of the
    bestuurlijke dekking; past `DEKKING_LISTED` of them, picked again by `admin_event_rows`'
    condition with `admins`, the administrators and who acts for them). On PostgreSQL an
    open case's only from the move that began its stay now, and none at all of an open case
    not suspended since (not of the dekking): its stay now is read from its row
    (`_moves_of_picked_cases`, `engine.app.report._begun_from_rows`)."""
    if stored_stays and stays_now_from_rows(conn):
        return _raw_streamed(conn, _moves_of_picked_cases(filters, dekking, admins))
    query = MOVES_QUERY.with_only_columns(
        _e.case_id, micros(_e.at, conn.dialect.name), _e.action, _e.from_state, _e.to_state)
    if filters.type_key is not None:
        query = query.where(_e.case_id.in_(sa.select(_c.id).where(_c.type_key == filters.type_key)))
    if stored_stays:
        query = query.where(sa.or_(_e.case_id.in_(sa.select(_c.id).where(_c.closed_at.is_(None))),
                                   *_of_dekking(_e.case_id, dekking, admins)))
    return _raw_streamed(conn, query)


def _of_dekking(case_id: sa.ColumnElement[int], dekking: Collection[int],
                admins: tuple[Iterable[str], Iterable[str]] | None) -> list[sa.ColumnElement[bool]]:
    """The condition (none, or one) that `case_id` is of a case of the bestuurlijke dekking:
    named by id, or past `DEKKING_LISTED` of them picked again by `admin_event_rows`'
    condition with `admins`."""
    if len(dekking) > DEKKING_LISTED and admins is not None:
        return [case_id.in_(_admin_event_ids(list(admins[0]), list(admins[1]), "case_id"))]
    return [case_id.in_(sorted(dekking))] if dekking else []


def stays_now_from_rows(conn: sa.Connection) -> bool:
    """Whether `move_rows` with `stored_stays` leaves out the open cases whose stay now the
    caller takes from their rows (`_moves_of_picked_cases`)."""
    return conn.dialect.name == "postgresql"


def _moves_of_picked_cases(filters: Period, dekking: Collection[int],
                           admins: tuple[Iterable[str], Iterable[str]] | None) -> sa.Select[Any]:
    """`move_rows` with `stored_stays` on PostgreSQL: the cases picked (open, or of the
    dekking), and each one's moves looked up by its index (`LATERAL`). Asked for the events
    whose case is picked, PostgreSQL's planner walks every event in case order and merges
    (a named cursor is planned for its first rows): at a million cases 3.3 s for the 3.5%
    open, where this took 1.3 s.

    An open case's stay now began at its `state_entered_at` (the instant of the `created` or
    `transition` event that began it: `audit verify` replays the column from them). Unless
    the case was suspended since (its `suspended` events are found on their own small
    partial index, `ix_case_event_suspended`), that one move is all the builder reads of it,
    and the caller makes it from the case's row (`engine.app.report`): its events are not
    looked up, and it has no rows here. Of the others (the suspended ones, and the dekking's
    cases) the moves are read from the events."""
    of_dekking = _of_dekking(_c.id, dekking, admins)
    typed = [_c.type_key == filters.type_key] if filters.type_key is not None else []
    stops = events_t.alias("stops")
    stopped = (sa.exists().where(stops.c.case_id == _c.id, indexes.suspensions(stops.c),
                                 stops.c.at >= _c.state_entered_at).correlate(cases_t))
    read = sa.or_(sa.and_(_c.closed_at.is_(None), stopped), *of_dekking)
    # An open case's moves from the one that began its stay now (the last `created` or
    # `transition`; found backwards on the (case, seq) index): the builder reads only that
    # stay of it. The dekking's cases' moves all: it pairs their escalations with them.
    began = events_t.alias("began")
    last_start = (sa.select(sa.func.max(began.c.seq))
                  .where(began.c.case_id == _c.id, began.c.action.in_((Action.CREATED, Action.TRANSITION)))
                  .correlate(cases_t).scalar_subquery())
    start = sa.case((sa.or_(*of_dekking), 0), else_=last_start) if of_dekking else last_start
    # Ordered within, so that the planner keeps it a lookup per case instead of flattening
    # it into the join it would merge.
    moves = (sa.select(_e.at, _e.action, _e.from_state, _e.to_state, _e.seq)
             .where(_e.case_id == _c.id, MOVE_ACTIONS, _e.seq >= start).order_by(_e.seq).lateral("moves"))
    return (sa.select(_c.id, micros(moves.c.at, "postgresql"), moves.c.action, moves.c.from_state, moves.c.to_state)
            .select_from(cases_t.join(moves, sa.true())).where(read, *typed).order_by(_c.id, moves.c.seq))


DEKKING_LISTED = 5000
"""Up to how many cases of the bestuurlijke dekking `move_rows` names by id."""


def _stays_kept(filters: Period, when: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if filters.type_key is not None:
        out.append(_s.type_key == filters.type_key)
    if filters.since is not None:
        out.append(when >= filters.since)
    if filters.until is not None:
        out.append(when < filters.until)
    return out


def stay_groups(conn: sa.Connection, filters: Period = ALL) -> list[tuple[str, str, str | None, int, int]]:
    """The ended stays (`case_stay`) that ended in the period, per type, state and unit: how
    many, and their µs together (integers: the sum is exact, whatever the order)."""
    query = (sa.select(_s.type_key, _s.state, _s.unit, sa.func.count(), sa.func.sum(_s.stay_us))
             .where(*_stays_kept(filters, _s.left_at)).group_by(_s.type_key, _s.state, _s.unit))
    return [(key, state, unit, int(n), int(us)) for key, state, unit, n, us in conn.execute(query)]


def stay_counts(conn: sa.Connection, filters: Period = ALL
                ) -> tuple[list[tuple[str, str, str | None, int, int]], list[tuple[str, str | None, bool, int]]]:
    """`stay_groups` and `stay_deadline_counts` together. Without `since` and `until` both
    count every ended stay (of the type asked for), so the counts per type, state, unit and
    met give both, and those `stay_tally` keeps up to date (`tallied`: schema 0014) rather
    than a pass over every row; with a period they differ (met ones counted where they
    ended, missed ones where their deadline passed), and each is its own query."""
    if filters.since is not None or filters.until is not None:
        return stay_groups(conn, filters), stay_deadline_counts(conn, filters)
    groups: dict[tuple[str, str, str | None], list[int]] = {}
    deadlines = []
    for key, state, unit, met, n, us in tallied(conn, filters.type_key):
        found = groups.get((key, state, unit))
        if found is None:
            found = groups[(key, state, unit)] = [0, 0]
        found[0] += int(n)
        found[1] += int(us)
        if met is not None:
            deadlines.append((key, unit, bool(met), int(n)))
    return [(key, state, unit, n, us) for (key, state, unit), (n, us) in groups.items()], deadlines


Tallied = list[tuple[str, str, str | None, bool | None, int, int]]


def tallied(conn: sa.Connection, type_key: str | None = None) -> Tallied:
    """Every ended stay (of the type asked for) counted per type, state, unit and met, as
    `stay_tally` holds them (its shards added up): (type, state, unit, met, how many, their
    µs together). What grouping `case_stay` gives, without reading its rows."""
    query = (sa.select(_t.type_key, _t.state, _t.unit, _t.met, sa.func.sum(_t.stays),
                       sa.type_coerce(sa.func.sum(_t.stay_us), sa.BigInteger))
             .group_by(_t.type_key, _t.state, _t.unit, _t.met).having(sa.func.sum(_t.stays) != 0))
    if type_key is not None:
        query = query.where(_t.type_key == type_key)
    return [(key, state, unit or None, None if met < 0 else met == 1, int(n), int(us))
            for key, state, unit, met, n, us in conn.execute(query)]


def grouped_stays(conn: sa.Connection) -> Tallied:
    """`tallied`'s answer worked out from the rows of `case_stay` (`audit verify` compares
    the two)."""
    query = (sa.select(_s.type_key, _s.state, _s.unit, _s.met, sa.func.count(),
                       sa.type_coerce(sa.func.sum(_s.stay_us), sa.BigInteger))
             .group_by(_s.type_key, _s.state, _s.unit, _s.met))
    return [(key, state, unit, None if met is None else bool(met), int(n), int(us))
            for key, state, unit, met, n, us in conn.execute(query)]


def _stay_window_query(filters: Period, offset: int, limit: int, *, type_key: str | None = None,
                       state: str | None = None, unit: tuple[str | None] | None = None) -> sa.Select[Any]:
    query = sa.select(_s.days).where(*_stays_kept(filters, _s.left_at))
    if type_key is not None:
        query = query.where(_s.type_key == type_key)
    if state is not None:
        query = query.where(_s.state == state)
    if unit is not None:
        query = query.where(_s.unit.is_(None) if unit[0] is None else _s.unit == unit[0])
    return query.order_by(_s.days).offset(offset).limit(limit)


def stay_window(conn: sa.Connection, filters: Period, offset: int, limit: int, *, type_key: str | None = None,
                state: str | None = None, unit: tuple[str | None] | None = None) -> list[float]:
    """The days of the ended stays that ended in the period, of this type and state or of
    this unit (`(unit,)`), from the `offset`-th shortest on, at most `limit`: a rank looked up
    on the database, off its index when no period is asked for."""
    query = _stay_window_query(filters, offset, limit, type_key=type_key, state=state, unit=unit)
    return [float(days) for days in conn.execute(query).scalars()]


def stay_windows(conn: sa.Connection, filters: Period, asks: Sequence[tuple[Mapping[str, Any], int, int]]
                 ) -> list[list[float]]:
    """`stay_window` for each of `asks` (its keywords, offset and limit), in one statement: one
    round trip and one plan instead of one per window. Each window comes back tagged, and is
    put in order here (the statement's order of rows is not promised)."""
    if not asks:
        return []
    parts = [sa.select(sa.literal(i).label("i"), window.c.days)
             for i, (which, offset, limit) in enumerate(asks)
             for window in (_stay_window_query(filters, offset, limit, **which).subquery(),)]
    found: list[list[float]] = [[] for _ in asks]
    for i, days in conn.execute(sa.union_all(*parts)):
        found[i].append(float(days))
    for window in found:
        window.sort()
    return found


def stay_version(conn: sa.Connection, type_key: str, state: str) -> int:
    """The first definition version a stay in this state was judged by."""
    return int(conn.execute(sa.select(sa.func.min(_s.type_version))
                            .where(_s.type_key == type_key, _s.state == state)).scalar_one())


def stay_deadline_counts(conn: sa.Connection, filters: Period = ALL) -> list[tuple[str, str | None, bool, int]]:
    """How the ended stays' deadlines went, per type, unit and met or not: a met one counted
    where it ended in the period, a missed one where its deadline passed in it."""
    where = sa.or_(sa.and_(_s.met.is_(True), *_stays_kept(filters, _s.left_at)),
                   sa.and_(_s.met.is_(False), *_stays_kept(filters, _s.due_at)))
    query = (sa.select(_s.type_key, _s.unit, _s.met, sa.func.count()).where(where)
             .group_by(_s.type_key, _s.state, _s.unit, _s.met))
    return [(key, unit, bool(was_met), int(n)) for key, unit, was_met, n in conn.execute(query)]


def missed_stay_days(conn: sa.Connection, filters: Period = ALL) -> list[tuple[Any, int]]:
    """The ended stays whose deadline passed in the period, per local day it passed on."""
    query = (sa.select(_s.due_on, sa.func.count()).where(_s.met.is_(False), *_stays_kept(filters, _s.due_at))
             .group_by(_s.due_on))
    return [(day, int(n)) for day, n in conn.execute(query)]


def escalation_rows(conn: sa.Connection, filters: Period = ALL) -> Iterator[tuple[Any, ...]]:
    """Every escalation (when, in µs since the epoch; rung; unit) with its case's request
    type, fired in the period and of the type asked for, streamed as plain tuples."""
    query = sa.select(micros(_x.fired_at, conn.dialect.name), _x.rung, _x.unit, _x.type_key)
    return _raw_streamed(conn, _escalations_kept(query, filters))


def _escalations_kept(query: sa.Select[Any], filters: Period) -> sa.Select[Any]:
    if filters.type_key is not None:
        query = query.where(_x.type_key == filters.type_key)
    if filters.since is not None:
        query = query.where(_x.fired_at >= filters.since)
    if filters.until is not None:
        query = query.where(_x.fired_at < filters.until)
    return query


def escalation_counts(conn: sa.Connection, filters: Period = ALL) -> list[tuple[str, str | None, str, int]]:
    """The escalations fired in the period (of the type asked for), per type, unit and rung:
    each row holds its case's type (schema 0011), so no join with the cases."""
    query = _escalations_kept(sa.select(_x.type_key, _x.unit, _x.rung, sa.func.count())
                              .group_by(_x.type_key, _x.unit, _x.rung), filters)
    return [(key, unit, rung, int(n)) for key, unit, rung, n in conn.execute(query)]


def escalation_span(conn: sa.Connection, filters: Period = ALL) -> tuple[datetime | None, datetime | None]:
    """When the first and the last escalation in the period fired, of any type: a span that
    holds those of the type asked for, read off the index on `fired_at` (two lookups, where
    one query of both would scan). What `escalation_days` needs: the zone's offsets over it."""
    def end(found: Any) -> sa.ScalarSelect[Any]:
        query = sa.select(found)
        if filters.since is not None:
            query = query.where(_x.fired_at >= filters.since)
        if filters.until is not None:
            query = query.where(_x.fired_at < filters.until)
        return query.scalar_subquery()

    first, last = conn.execute(sa.select(end(sa.func.min(_x.fired_at)), end(sa.func.max(_x.fired_at)))).one()
    kind = UTCDateTime()
    return (kind.process_result_value(first, conn.dialect), kind.process_result_value(last, conn.dialect))


def escalation_days(conn: sa.Connection, filters: Period, offsets: list[tuple[datetime | None, int]],
                    span: tuple[datetime | None, datetime | None] | None = None) -> list[tuple[int, str, int]]:
    """The escalations fired in the period, per local day (days since 1970-01-01 in the
    organisation's zone) and rung. `offsets`: the zone's UTC offset in seconds from each
    instant on (the first from the beginning, None), in order: local days are told on the
    database, exactly, from the instants' whole seconds.

    On SQLite the local days are a table of their UTC bounds (the period's within the first
    and the last), each joined to the escalations by a range of the index on (fired_at, rung):
    half the time of working out every escalation's day (`_day_bounds`). Not for one request
    type (SQLite would look the type up by its index for every day), nor when a clock change
    goes back across midnight, which makes the local day go back too: then every escalation's
    day is worked out. `span`: `escalation_span`'s answer, if the caller has it."""
    bounds = (_day_bounds(*(span or escalation_span(conn, filters)), offsets, filters, conn.dialect)
              if conn.dialect.name == "sqlite" and filters.type_key is None else [])
    if bounds:
        days = sa.values(sa.column("day", sa.BigInteger), sa.column("low", sa.String), sa.column("high", sa.String),
                         name="days", literal_binds=True).data(bounds).cte("days")  # SQLite: no `AS days (…)`
        query = (sa.select(days.c.day, _x.rung, sa.func.count())
                 .select_from(days.join(escalations_t, sa.and_(_x.fired_at >= days.c.low, _x.fired_at < days.c.high)))
                 .group_by(days.c.day, _x.rung))
    else:
        day = _local_day(_x.fired_at, conn.dialect.name, offsets)
        query = _escalations_kept(sa.select(day, _x.rung, sa.func.count()).group_by(day, _x.rung), filters)
    return [(int(d), rung, int(n)) for d, rung, n in conn.execute(query)]


_MOST_BOUNDED_DAYS = 20_000
"""Past this many local days (55 years) of escalations `escalation_days` works out each one's
day rather than write every day's bounds into the statement."""


def _day_bounds(first: datetime | None, last: datetime | None, offsets: list[tuple[datetime | None, int]],
                filters: Period, dialect: sa.Dialect) -> list[tuple[int, str, str]]:
    """Each local day from `first`'s through `last`'s (as `_local_day` tells them, by the
    zone's `offsets`) with the UTC instants it begins and ends at, as SQLite stores instants,
    the first and the last kept within the period of `filters`; none when there is no span,
    or when a clock change makes the local day go back (then no day is one range), or when
    the span is longer than `_MOST_BOUNDED_DAYS`."""
    if first is None or last is None:
        return []
    starts = [-(1 << 62)] + [int(start.timestamp()) for start, _ in offsets[1:] if start is not None]
    segments = list(zip(starts, [*starts[1:], 1 << 62], [offset for _, offset in offsets], strict=True))
    for (_, change, before), (_, _, after) in itertools.pairwise(segments):
        if (change + after) // 86400 < (change - 1 + before) // 86400:
            return []

    def text(moment: datetime) -> str:  # as SQLite holds an instant: text that sorts as they do
        return str(UTCDateTime().process_bind_param(moment, dialect))

    def local(second: int) -> int:
        return next((second + offset) // 86400 for start, end, offset in segments if start <= second < end)

    def begins(day: int) -> str:
        second = next(begin for start, end, offset in segments if (begin := max(start, day * 86400 - offset)) < end)
        return text(datetime.fromtimestamp(second, UTC))

    low, high = local(int(first.timestamp() // 1)), local(int(last.timestamp() // 1))
    if high - low >= _MOST_BOUNDED_DAYS:
        return []
    edges = [begins(day) for day in range(low, high + 2)]
    if filters.since is not None:
        edges[0] = max(edges[0], text(filters.since))
    if filters.until is not None:
        edges[-1] = min(edges[-1], text(filters.until))
    return [(day, edges[day - low], edges[day - low + 1]) for day in range(low, high + 1)]


def escalation_groups(conn: sa.Connection, filters: Period, offsets: list[tuple[datetime | None, int]],
                      span: tuple[datetime | None, datetime | None] | None = None
                      ) -> tuple[list[tuple[str, str | None, str, int]], list[tuple[int, str, int]]]:
    """`escalation_counts` and `escalation_days` together. On PostgreSQL in one pass over the
    escalations (`GROUPING SETS`, both hashed; the local day worked out once per row, in a
    subquery kept apart with `OFFSET 0`): at a million cases 0.8 s of the server's time where
    the two queries took 1.3 s. SQLite has no grouping sets: there, the two queries (`span`,
    if the caller has it: `escalation_span`'s answer, for `escalation_days`)."""
    if conn.dialect.name != "postgresql":
        return escalation_counts(conn, filters), escalation_days(conn, filters, offsets, span)
    rows = _escalations_kept(sa.select(_x.type_key.label("type_key"), _x.unit.label("unit"), _x.rung.label("rung"),
                                       _local_day(_x.fired_at, conn.dialect.name, offsets).label("day")),
                             filters).offset(0).subquery("fired")
    r = rows.c
    query = (sa.select(sa.func.grouping(r.type_key, r.day), r.type_key, r.unit, r.rung, r.day, sa.func.count())
             .group_by(sa.func.grouping_sets(sa.tuple_(r.type_key, r.unit, r.rung), sa.tuple_(r.day, r.rung))))
    counts: list[tuple[str, str | None, str, int]] = []
    days: list[tuple[int, str, int]] = []
    for which, key, unit, rung, day, n in conn.execute(query):
        if which == 1:  # grouped by type, unit and rung (the day left out)
            counts.append((key, unit, rung, int(n)))
        else:
            days.append((int(day), rung, int(n)))
    return counts, days


def _local_day(column: sa.ColumnElement[Any], dialect: str, offsets: list[tuple[datetime | None, int]]
               ) -> sa.ColumnElement[int]:
    """The local day of an instant column, days since 1970-01-01 in the zone whose UTC
    offsets `offsets` gives (see `escalation_days`)."""
    return sa.cast(_local_seconds(column, dialect, offsets) // 86400, sa.BigInteger)


def _local_seconds(column: sa.ColumnElement[Any], dialect: str, offsets: list[tuple[datetime | None, int]]
                   ) -> sa.ColumnElement[int]:
    """An instant column's local wall clock as whole seconds since 1970-01-01, in the zone
    whose UTC offsets `offsets` gives (see `escalation_days`)."""
    seconds = whole_seconds(column, dialect)
    offset: sa.ColumnElement[Any] = sa.literal(offsets[-1][1])
    if len(offsets) > 1:
        offset = sa.case(*((column < start, sa.literal(before))
                           for (_, before), (start, _) in itertools.pairwise(offsets)),
                         else_=sa.literal(offsets[-1][1]))
    return seconds + offset


def admin_event_rows(conn: sa.Connection, admins: Iterable[str], acting: Iterable[str],
                     filters: Period = ALL) -> Iterable[sa.Row[Any]]:
    """The events of the bestuurlijke dekking, by case id and seq: escalations to one of
    `admins` or of rung `directive`, instructions, and comments by one of `acting` (the
    administrators and their assistants) or on an administrator's behalf — found by their
    partial indexes (`engine.store.indexes`), not by a scan of every event."""
    query = (
        sa.select(_e.case_id, _e.seq, _e.at, _e.actor, _e.action, _e.data)
        .where(_e.id.in_(_admin_event_ids(list(admins), list(acting), "id")))
        .order_by(_e.case_id, _e.seq)
    )
    if filters.type_key is not None:
        query = query.where(_e.case_id.in_(sa.select(_c.id).where(_c.type_key == filters.type_key)))
    return _streamed(conn, query)


def _admin_event_ids(admins: list[str], acting: list[str], column: str) -> sa.CompoundSelect[Any]:
    """The `column` (id, case_id) of the events of the bestuurlijke dekking: one select per
    kind, each off its partial index (`engine.store.indexes`; its condition spelled as the
    index's, so that SQLite sees the query's WHERE holds the index's), together."""
    kinds: list[sa.Select[Any]] = []
    for where in (
        lambda e: sa.and_(indexes.escalated(e), indexes.escalated_to(e).in_(admins)),
        indexes.directives,
        lambda e: sa.and_(indexes.comments(e), e.actor.in_(acting)),
        lambda e: sa.and_(indexes.comments_on_behalf(e), indexes.on_behalf_of(e).in_(admins)),
    ):
        events = events_t.alias(f"dekking_{len(kinds)}")  # not correlated with an outer case_event
        kinds.append(sa.select(events.c[column]).where(where(events.c)))
    return sa.union(*kinds)


def failed_count(conn: sa.Connection) -> int:
    return int(conn.execute(FAILED_COUNT_QUERY).scalar_one())


def failed_rows(conn: sa.Connection, shown: int) -> list[sa.Row[Any]]:
    """The newest `shown` emails that failed for good."""
    return list(conn.execute(FAILED_QUERY.limit(shown)))
