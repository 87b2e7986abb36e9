"""The closed cases' part of `loket report`, counted by PostgreSQL instead of streamed.

A closed case no longer changes: what the report counts of it (received and closed per type
and ISO week, the service norm and legal term met or late, outcome, area and measures, lead
time in calendar and working days, the recently realised) is worked out on the server here,
grouped, and only the groups come back. The open cases (and the closed ones of the
bestuurlijke dekking, for their reactions) are still streamed: see `engine.app.report`.

Every figure is the one the streamed pass gives, exactly (a test holds the two equal on both
paths, and the bench compares the outputs byte for byte):

- local days come from the organisation's UTC offsets bound as a `CASE` (as the escalations'
  days, `engine.store.reports.escalation_days`), never from the server's own zone data;
- working days from the calendar's prefix sums, bound as an array
  (`engine.reporting.builder.WorkingDayCounter`); an instant in the last second of its local
  day (where the calendar's end of day decides) is worked out again by the builder;
- medians and 90th percentiles by nearest rank, of the lead times in µs (worked out exactly
  from the interval between the two instants, `_lead`) that the database sorts and gathers per
  type and area;
- the area and the measures from the field values' JSONB text: the area decoded and told as
  the builder tells it; a measure summed as `numeric` only where its stored form is one the
  builder reads the same (a whole JSON number, or a decimal string in plain digits). Any
  other form, or two stored areas that would be told alike, and `closed_groups` says the
  closed cases must be streamed after all (`Groups.exact` false).

PostgreSQL only: on SQLite the report streams the closed cases, and is within its floor so.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.store.reports import Period, _cases_kept, _local_seconds, micros, whole_seconds
from engine.store.tables import cases_t
from engine.store.types import UTCDateTime

_c = cases_t.c

def supported(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


@dataclass(frozen=True)
class Version:
    """What the queries need of one version of a request type."""

    area: str | None
    measures: tuple[str, ...]
    realised: tuple[str, ...]
    """The final states whose outcome counts as realised."""


def _closed_kept(filters: Period) -> list[sa.ColumnElement[bool]]:
    """The closed cases the report reads (as `engine.store.reports._cases_kept`)."""
    out: list[sa.ColumnElement[bool]] = [_c.closed_at.is_not(None)]
    if filters.type_key is not None:
        out.append(_c.type_key == filters.type_key)
    if filters.until is not None:
        out.append(_c.created_at < filters.until)
    if filters.since is not None:
        out.append(_c.closed_at >= filters.since)
    return out


def _within(column: sa.ColumnElement[Any], filters: Period) -> sa.ColumnElement[bool]:
    conditions = []
    if filters.since is not None:
        conditions.append(column >= filters.since)
    if filters.until is not None:
        conditions.append(column < filters.until)
    return sa.and_(sa.true(), *conditions)


def _counted(filters: Period) -> list[sa.ColumnElement[bool]]:
    """The closed cases counted as closed: closed in the period."""
    return [*_closed_kept(filters), _within(_c.closed_at, filters)]


def versions_seen(conn: sa.Connection, filters: Period) -> list[tuple[str, int, datetime | None, datetime | None]]:
    """Each (type, version) of the cases the report reads, open or closed, in the order of its
    first case (the order the streamed pass meets them in), with the first `created_at` and
    the last `closed_at` of its closed cases: the span the zone's offsets must cover."""
    kept = _cases_kept(filters)
    closed = _c.closed_at.is_not(None)
    query = (sa.select(_c.type_key, _c.type_version, sa.func.min(_c.id),
                       sa.func.min(_c.created_at).filter(closed), sa.func.max(_c.closed_at))
             .where(*kept).group_by(_c.type_key, _c.type_version).order_by(sa.func.min(_c.id)))
    kind = UTCDateTime()
    return [(key, int(version), kind.process_result_value(first, conn.dialect),
             kind.process_result_value(last, conn.dialect))
            for key, version, _, first, last in conn.execute(query)]


def _pg() -> Any:
    """SQLAlchemy's PostgreSQL dialect, imported when first used: the report on SQLite never
    loads it (`tests/test_startup.py`)."""
    from sqlalchemy.dialects import postgresql

    return postgresql


def _data() -> sa.ColumnElement[Any]:
    return sa.type_coerce(_c.data, _pg().JSONB)


def _per_version(versions: Mapping[tuple[str, int], Version], value: Any) -> sa.ColumnElement[Any]:
    """A `CASE` on the case's (type, version): `value(version)` for those it gives one for."""
    whens = [(sa.and_(_c.type_key == key, _c.type_version == number), found)
             for (key, number), spec in versions.items() if (found := value(spec)) is not None]
    return sa.case(*whens, else_=sa.null()) if whens else sa.null()


def area_text(versions: Mapping[tuple[str, int], Version]) -> sa.ColumnElement[Any]:
    """The area field's value as JSONB text: NULL where the builder tells no area (the
    version names none, the case has no such value, or it is null or empty)."""
    return _per_version(versions, lambda spec: None if spec.area is None else sa.func.nullif(
        sa.func.nullif(sa.cast(_data()[spec.area], sa.Text), 'null'), '""'))


_PLAIN_DECIMAL = r"^-?[0-9]+([.,][0-9]+)?$"


def _measure(value: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[bool]]:
    """A measure's stored JSONB value as `numeric` (NULL where the builder counts none), and
    whether its stored form is one the builder might read otherwise (then the closed cases are
    streamed): a number with a fraction (the builder reads it as a float, whose digits differ),
    or a string with a digit that is not plain (the builder's Decimal may read " 12" or "1e3").
    A whole number's text has no exponent and no point, so it is the same integer either way."""
    kind = sa.func.jsonb_typeof(value)
    text = value.op("#>>")(sa.literal_column("'{}'"))
    as_number = sa.cast(value, sa.Numeric)
    number = sa.case(
        (kind == "number", sa.case((sa.func.scale(as_number) == 0, as_number), else_=sa.null())),
        (kind == "string", sa.case((text.op("~")(_PLAIN_DECIMAL), sa.cast(sa.func.replace(text, ",", "."), sa.Numeric)),
                                   else_=sa.null())),
        else_=sa.null())
    odd = sa.case(
        (kind == "number", sa.func.scale(as_number) > 0),
        (kind == "string", sa.and_(text.op("!~")(_PLAIN_DECIMAL), text.op("~")("[0-9]"))),
        else_=sa.false())
    return number, odd


def _local(column: sa.ColumnElement[Any], offsets: Sequence[tuple[datetime | None, int]]) -> sa.ColumnElement[int]:
    """An instant column's local wall clock as whole seconds since 1970-01-01, from the
    zone's offsets (`engine.store.reports._local_seconds`)."""
    return _local_seconds(column, "postgresql", list(offsets))


def _term_kind(due: sa.ColumnElement[Any], filters: Period) -> sa.ColumnElement[Any]:
    """How a closed case's term counts: 0 met (closed by it, counted when it closed), 1 late
    (counted when the term ended), NULL when that moment is outside the period or there is
    no term."""
    return sa.case(
        (due.is_(None), sa.null()),
        (sa.and_(_c.closed_at <= due, _within(_c.closed_at, filters)), sa.literal(0)),
        (sa.and_(_c.closed_at > due, _within(due, filters)), sa.literal(1)),
        else_=sa.null())


@dataclass
class Groups:
    """What `closed_groups` counted of the closed cases, each list as the builder's
    `add_closed_*` takes it."""

    exact: bool
    """False when a measure's stored form is one the database could read otherwise than the
    builder: then the closed cases must be streamed."""
    results: list[tuple[str, int, str, str | None, int | None, int, dict[str, tuple[Any, int]]]]
    """Closed in the period, per (type, version, state, area's JSON text, legal term as
    counted in the period): how many, and per measure its sum and the id of its first case."""
    clocks: list[tuple[str, int | None, int | None, int]]
    """Per (type, service norm, legal term), each 0 met, 1 late, None not counted in the period."""
    received: list[tuple[str, int, int]]
    """Received in the period, per type and local day (days since 1970-01-01)."""
    closed: list[tuple[int, int]]
    """Closed in the period, per local day."""
    working: list[tuple[str, int, int]]
    """Closed in the period, per type and working days from receipt to closing."""
    edges: list[int]
    """The ids of those closed in the period with an instant in the last second of its local
    day: left to the builder (`edge_rows`)."""


def closed_groups(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version],
                  offsets: Sequence[tuple[datetime | None, int]], first: int, sums: Sequence[int]) -> Groups:
    """Everything the report counts of the closed cases but their lead times' ranks and the
    recently realised, in one pass over them (`GROUPING SETS`, each hashed): see `Groups`.

    Working days are counted from the prefix sums `sums` (index 0 the local day `first`, days
    since 1970-01-01: the builder's `WorkingDayCounter` over every local day of `offsets`'
    span): the days from the day of receipt through the day before closing, as a day counts
    once it is over."""
    names = sorted({name for spec in versions.values() for name in spec.measures})
    counted = _within(_c.closed_at, filters)
    # Three levels, each kept apart (OFFSET 0: the planner does not merge such a subquery into
    # the next, which would work every expression out again where it is used): the case's
    # own values, then what follows from its local seconds, then the groupings.
    columns: list[Any] = [
        _c.id.label("id"), _c.type_key.label("type_key"), _c.type_version.label("version"), _c.state.label("state"),
        sa.case((counted, area_text(versions)), else_=sa.null()).label("area"),
        counted.label("counted"), _within(_c.created_at, filters).label("received"),
        (_c.closed_at <= _c.created_at).label("backwards"),
        _term_kind(_c.service_due, filters).label("service"), _term_kind(_c.case_due, filters).label("legal"),
        _local(_c.created_at, offsets).label("created"), _local(_c.closed_at, offsets).label("closed"),
    ]
    for i, name in enumerate(names):  # the stored value, only where the version names the measure
        columns.append(sa.case((counted, _per_version(versions, lambda spec, name=name: _data()[name]
                                                      if name in spec.measures else None)),
                               else_=sa.null()).label(f"v{i}"))
    own = sa.select(*columns).where(*_closed_kept(filters)).offset(0).subquery("own")
    o = own.c
    measured = [_measure(sa.type_coerce(o[f"v{i}"], _pg().JSONB)) for i in range(len(names))]
    odd = sa.or_(*(found for _, found in measured)) if measured else sa.false()
    edge = sa.and_(o.counted, sa.or_(o.created % 86400 >= 86399, o.closed % 86400 >= 86399))
    # In parentheses: PostgreSQL takes a subscript only of a parenthesised cast.
    days = _pg().ARRAY(sa.BigInteger)
    table = sa.type_coerce(sa.sql.elements.Grouping(sa.cast(sa.bindparam("sums", list(sums), type_=days), days)), days)
    # sums are 1-based here: [day - first] is the sum through the day before `day`.
    through_eve = table[o.closed // 86400 - first] - table[o.created // 86400 - first]
    working = sa.case((o.backwards, 0), else_=sa.func.greatest(through_eve, 0))
    rows = sa.select(
        *(o[name] for name in ("id", "type_key", "version", "state", "area", "counted", "service", "legal")),
        sa.case((o.received, o.created // 86400), else_=sa.null()).label("received_day"),
        sa.case((o.counted, o.closed // 86400), else_=sa.null()).label("closed_day"),
        sa.case((sa.and_(o.counted, sa.not_(edge)), working), else_=sa.null()).label("working"),
        sa.case((edge, o.id), else_=sa.null()).label("edge"),
        *(number.label(f"m{i}") for i, (number, _) in enumerate(measured)), odd.label("odd"),
    ).offset(0).subquery("closed_cases")
    r = rows.c
    # Four groupings, each hashed: the results and both terms (a case's service norm in the
    # key too: a few more groups instead of a fifth grouping), receipt per day, closing per
    # day, working days.
    sets = {
        "results": (r.counted, r.type_key, r.version, r.state, r.area, r.service, r.legal),
        "received": (r.type_key, r.received_day),
        "closed": (r.closed_day,),
        "working": (r.type_key, r.working, r.edge),  # each case at an edge its own group (they are few)
    }
    grouped = [r.counted, r.type_key, r.version, r.state, r.area, r.service, r.legal, r.received_day,
               r.closed_day, r.working, r.edge]
    masks = {sum(1 << (len(grouped) - 1 - i) for i, column in enumerate(grouped) if column not in kept): name
             for name, kept in ((name, set(columns_)) for name, columns_ in sets.items())}
    # No `array_agg`: the planner reckons each group's array at 8 kB, and with it sorts a
    # million rows on disk rather than hash what it thinks too big (1,875 groups at a million).
    aggregates: list[Any] = [sa.func.count(), sa.func.bool_or(r.odd)]
    for i in range(len(names)):
        measure = r[f"m{i}"]
        aggregates += [sa.func.sum(measure), sa.func.min(r.id).filter(measure.is_not(None))]
    query = (sa.select(sa.func.grouping(*grouped), *grouped, *aggregates)
             .group_by(sa.func.grouping_sets(*(sa.tuple_(*columns_) for columns_ in sets.values()))))
    out = Groups(True, [], [], [], [], [], [])
    results: dict[tuple[str, int, str, str | None, int | None], list[Any]] = {}
    clocks: Counter[tuple[str, int | None, int | None]] = Counter()
    for row in conn.execute(query):
        kind = masks[row[0]]
        (is_counted, key, version, state, area_json, service, legal, received_day, closed_day, days,
         is_edge) = row[1:12]
        count, odd = int(row[12]), row[13]
        if kind == "results":
            if service is not None or legal is not None:
                clocks[(key, service, legal)] += count
            if not is_counted:
                continue
            if odd:
                out.exact = False
            found = results.get((key, version, state, area_json, legal))
            if found is None:
                found = results[(key, version, state, area_json, legal)] = [0, {}]
            found[0] += count
            for i, name in enumerate(names):
                total, first_id = row[14 + 2 * i], row[15 + 2 * i]
                if total is not None and name in versions[(key, version)].measures:
                    known = found[1].get(name)
                    found[1][name] = ((total, int(first_id)) if known is None
                                      else (known[0] + total, min(known[1], int(first_id))))
        elif kind == "received" and received_day is not None:
            out.received.append((key, int(received_day), count))
        elif kind == "closed" and closed_day is not None:
            out.closed.append((int(closed_day), count))
        elif kind == "working":
            if is_edge is not None:
                out.edges.append(int(is_edge))
            elif days is not None:
                out.working.append((key, int(days), count))
    out.results = [(key, int(version), state, area_json, legal, count, sums)
                   for (key, version, state, area_json, legal), (count, sums) in results.items()]
    out.clocks = [(key, service, legal, count) for (key, service, legal), count in clocks.items()]
    return out


def edge_rows(conn: sa.Connection, ids: Sequence[int]) -> list[tuple[str, int, int]]:
    """The cases `ids` (`Groups.edges`: an instant in the last second of its local day, where
    the calendar's end of day decides whether that day counts): (type, receipt µs, closing µs),
    for the builder to count."""
    if not ids:
        return []
    query = (sa.select(_c.type_key, micros(_c.created_at, "postgresql"), micros(_c.closed_at, "postgresql"))
             .where(_c.id == sa.any_(sa.cast(sa.bindparam("ids", list(ids), type_=_pg().ARRAY(sa.BigInteger)),
                                              _pg().ARRAY(sa.BigInteger)))).order_by(_c.id))
    return [(key, int(a), int(b)) for key, a, b in conn.execute(query)]


def _fraction(column: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """An instant column's µs within its second, exactly (`date_part` gives the seconds of the
    minute times 10⁶ as a double: a whole number below 6·10⁷)."""
    return sa.cast(sa.func.date_part("microseconds", column), sa.BigInteger) % 1_000_000


_EXACT_SECONDS = 2 ** 30
"""Below this many seconds (34 years) a lead time's µs are exact from the interval's seconds
as a double (`_lead`)."""


def _lead() -> sa.ColumnElement[int]:
    """A case's lead time in µs, exactly. The interval's seconds as a double carry the µs to
    well within half a µs below `_EXACT_SECONDS` (53 bits), so rounding gives them exactly, at a
    third of the cost of taking each instant apart; a longer one is worked out from whole
    seconds and µs."""
    seconds = sa.func.date_part("epoch", _c.closed_at - _c.created_at)
    whole = whole_seconds(_c.closed_at, "postgresql") - whole_seconds(_c.created_at, "postgresql")
    return sa.case((sa.func.abs(seconds) < _EXACT_SECONDS, sa.cast(sa.func.round(seconds * 1_000_000), sa.BigInteger)),
                   else_=whole * 1_000_000 + (_fraction(_c.closed_at) - _fraction(_c.created_at)))


def lead_spreads(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version]
                 ) -> list[tuple[str | None, str | None, bool, int, int | None, int | None]]:
    """The lead times of the cases closed in the period, in µs, for all of them, per type and
    per type and area (JSON text): (type or None, area or None, whether per area, how many, the
    median and the 90th percentile by nearest rank). The database sorts them once, by lead time
    alone (no text to compare), and gathers them per type and area (`array_agg`, hashed) in
    that order; each run is sorted here again, which costs one look at each value when it is
    in order already. A type's and all of them are those runs merged (a sort that finds the
    runs)."""
    leads = (sa.select(_c.type_key.label("type_key"), area_text(versions).label("area"), _lead().label("lead"))
             .where(*_counted(filters)).order_by(sa.literal_column("lead")).offset(0).subquery("leads"))
    query = sa.select(leads.c.type_key, leads.c.area, sa.func.array_agg(leads.c.lead)).group_by(leads.c.type_key,
                                                                                                  leads.c.area)
    out: list[tuple[str | None, str | None, bool, int, int | None, int | None]] = []
    per_type: dict[str, list[list[int]]] = {}
    for key, area_json, run in conn.execute(query):
        run.sort()
        out.append((key, area_json, True, *_ranked(run)))
        per_type.setdefault(key, []).append(run)
    runs = []
    for key, parts in per_type.items():
        merged = parts[0] if len(parts) == 1 else sorted(itertools.chain.from_iterable(parts))
        out.append((key, None, False, *_ranked(merged)))
        runs.append(merged)
    everything = runs[0] if len(runs) == 1 else sorted(itertools.chain.from_iterable(runs))
    out.append((None, None, False, *_ranked(everything)))
    return out


def _ranked(ordered: Sequence[int]) -> tuple[int, int | None, int | None]:
    """How many, the median and the 90th percentile (nearest rank) of sorted values."""
    if not ordered:
        return 0, None, None
    return len(ordered), ordered[nearest(len(ordered), 50) - 1], ordered[nearest(len(ordered), 90) - 1]


def nearest(count: int, percent: int) -> int:
    """The nearest rank of a percentile of `count` values (`engine.reporting.figures.rank_of`; the
    store does not import the reporting layer)."""
    return max(1, -(-percent * count // 100))


def recent_realised(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version], limit: int
                    ) -> list[tuple[int, str, int, str, int, Any]]:
    """The `limit` cases closed last in the period (by closing, then id) in a realised final
    state: (id, type, version, state, closing µs, field values)."""
    realised = [sa.and_(_c.type_key == key, _c.type_version == number, _c.state.in_(spec.realised))
                for (key, number), spec in versions.items() if spec.realised]
    if not realised:
        return []
    query = (sa.select(_c.id, _c.type_key, _c.type_version, _c.state, micros(_c.closed_at, "postgresql"), _c.data)
             .where(*_counted(filters), sa.or_(*realised))
             .order_by(_c.closed_at.desc(), _c.id.desc()).limit(limit))
    return [(int(i), key, int(v), state, int(closed), data) for i, key, v, state, closed, data in conn.execute(query)]


def decode_area(text: str | None) -> str | None:
    """The area as the builder tells it from a case's field value (`str` of it; None for no
    value or an empty one), from the value's JSONB text."""
    if text is None:
        return None
    value = json.loads(text)
    return None if value is None or value == "" else str(value)


def areas_distinct(texts: Iterable[tuple[str, str | None]]) -> bool:
    """Whether no two stored areas of one type are told alike (JSON 5 and "5")."""
    seen: dict[tuple[str, str | None], str | None] = {}
    for key, text in texts:
        told = (key, decode_area(text))
        if seen.setdefault(told, text) != text:
            return False
    return True
