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
- medians and 90th percentiles by `percentile_disc` of the lead time in µs, at fractions
  whose rank `⌈f·n⌉` is the nearest rank `⌈p·n/100⌉` (checked per group, and looked up by
  rank where it is not);
- the area and the measures from the field values' JSONB text: the area decoded and told as
  the builder tells it; a measure summed as `numeric` only where its stored form is one the
  builder reads the same (a whole JSON number, or a decimal string in plain digits). Any
  other form, or two stored areas that would be told alike, and `closed_results` says the
  closed cases must be streamed after all (`Grouped.exact` false).

PostgreSQL only: SQLite has no `percentile_disc`, and its stream is within its floor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from engine.store.reports import Period, _local_seconds, micros
from engine.store.tables import cases_t
from engine.store.types import UTCDateTime

_c = cases_t.c

MEDIAN, P90 = 0.5, 0.9 - 1e-9
"""The fractions given to `percentile_disc`, whose row is `⌈f·n⌉` in floating point: for
0.5 that is the nearest rank `⌈50·n/100⌉` for every n; for 0.9 less 10⁻⁹ it is `⌈90·n/100⌉`
for every n below 10⁸ (0.9·n is a whole number or at least 0.1 above one, and 10⁻⁹·n lies
between the rounding error and 0.1). `rank_of` checks each group's count all the same."""


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
    kept: list[sa.ColumnElement[bool]] = []
    if filters.type_key is not None:
        kept.append(_c.type_key == filters.type_key)
    if filters.until is not None:
        kept.append(_c.created_at < filters.until)
    if filters.since is not None:
        kept.append(sa.or_(_c.closed_at.is_(None), _c.closed_at >= filters.since))
    closed = _c.closed_at.is_not(None)
    query = (sa.select(_c.type_key, _c.type_version, sa.func.min(_c.id),
                       sa.func.min(_c.created_at).filter(closed), sa.func.max(_c.closed_at))
             .where(*kept).group_by(_c.type_key, _c.type_version).order_by(sa.func.min(_c.id)))
    kind = UTCDateTime()
    return [(key, int(version), kind.process_result_value(first, conn.dialect),
             kind.process_result_value(last, conn.dialect))
            for key, version, _, first, last in conn.execute(query)]


def _data() -> sa.ColumnElement[Any]:
    return sa.type_coerce(_c.data, JSONB)


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
_WHOLE = r"^-?[0-9]+$"


def _measure(name: str) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[bool]]:
    """A measure's value as `numeric` (NULL where the builder counts none), and whether its
    stored form is one the builder might read otherwise (then the closed cases are streamed)."""
    value = _data()[name]
    kind = sa.func.jsonb_typeof(value)
    text = value.op("#>>")(sa.literal_column("'{}'"))
    number = sa.case(
        (sa.and_(kind == "number", text.op("~")(_WHOLE)), sa.cast(text, sa.Numeric)),
        (sa.and_(kind == "string", text.op("~")(_PLAIN_DECIMAL)),
         sa.cast(sa.func.replace(text, ",", "."), sa.Numeric)),
        else_=sa.null())
    # A number with a fraction or exponent (the builder reads it as a float), or a string
    # with a digit that is not plain (the builder's Decimal may read it, " 12" or "1e3").
    odd = sa.or_(sa.and_(kind == "number", text.op("!~")(_WHOLE)),
                 sa.and_(kind == "string", text.op("~")("[0-9]"), text.op("!~")(_PLAIN_DECIMAL)))
    return number, odd


def _local(column: sa.ColumnElement[Any], offsets: Sequence[tuple[datetime | None, int]]) -> sa.ColumnElement[int]:
    return _local_seconds(column, "postgresql", list(offsets))


@dataclass
class Grouped:
    """What `closed_results` read: per (type, version, state, area's JSON text, legal term
    counted as): how many, each measure's sum and its first case, and whether a stored form
    asks for the stream (`exact` false)."""

    exact: bool
    rows: list[tuple[str, int, str, str | None, int | None, int, dict[str, tuple[Any, int]]]]


def closed_results(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version]) -> Grouped:
    """The cases closed in the period, per type, version, final state, area (JSON text) and
    how their legal term counts in the period (0 met, 1 late, None not in it): how many, and
    per measure the sum of its values and the id of the first case with one."""
    names = sorted({name for spec in versions.values() for name in spec.measures})
    measured = {name: _measure(name) for name in names}
    legal = _term_kind(_c.case_due, filters)
    area = area_text(versions)
    columns: list[Any] = [_c.type_key, _c.type_version, _c.state, area.label("area"), legal.label("legal"),
                          sa.func.count()]
    odd_any: list[sa.ColumnElement[bool]] = []
    for name in names:
        number, odd = measured[name]
        columns += [sa.func.sum(number), sa.func.min(_c.id).filter(number.is_not(None))]
        odd_any.append(odd)
    columns.append(sa.func.bool_or(sa.or_(*odd_any)) if odd_any else sa.false())
    query = (sa.select(*columns).where(*_counted(filters))
             .group_by(_c.type_key, _c.type_version, _c.state, sa.literal_column("area"), sa.literal_column("legal")))
    exact = True
    rows = []
    for row in conn.execute(query):
        key, version, state, area_json, legal_kind, count = row[:6]
        sums = {}
        for i, name in enumerate(names):
            total, first = row[6 + 2 * i], row[7 + 2 * i]
            if total is not None and name in versions[(key, version)].measures:
                sums[name] = (total, int(first))
        if row[-1]:
            exact = False
        rows.append((key, int(version), state, area_json, None if legal_kind is None else int(legal_kind),
                     int(count), sums))
    return Grouped(exact, rows)


def _term_kind(due: sa.ColumnElement[Any], filters: Period) -> sa.ColumnElement[Any]:
    """How a closed case's term counts: 0 met (closed by it, counted when it closed), 1 late
    (counted when the term ended), NULL when that moment is outside the period or there is
    no term."""
    return sa.case(
        (due.is_(None), sa.null()),
        (sa.and_(_c.closed_at <= due, _within(_c.closed_at, filters)), sa.literal(0)),
        (sa.and_(_c.closed_at > due, _within(due, filters)), sa.literal(1)),
        else_=sa.null())


def clock_counts(conn: sa.Connection, filters: Period) -> list[tuple[str, int | None, int | None, int]]:
    """The closed cases' service norm and legal term per type, as `_term_kind` counts them:
    (type, service, legal, how many)."""
    service, legal = _term_kind(_c.service_due, filters), _term_kind(_c.case_due, filters)
    query = (sa.select(_c.type_key, service.label("service"), legal.label("legal"), sa.func.count())
             .where(*_closed_kept(filters), sa.or_(service.is_not(None), legal.is_not(None)))
             .group_by(_c.type_key, sa.literal_column("service"), sa.literal_column("legal")))
    return [(key, s, lt, int(n)) for key, s, lt, n in conn.execute(query)]


def day_counts(conn: sa.Connection, filters: Period, offsets: Sequence[tuple[datetime | None, int]]
               ) -> tuple[list[tuple[str, int, int]], list[tuple[int, int]]]:
    """The closed cases received in the period per type and local day of receipt, and those
    closed in it per local day of closing (days since 1970-01-01 in the organisation's zone)."""
    received_day = sa.cast(_local(_c.created_at, offsets) // 86400, sa.BigInteger)
    received = (sa.select(_c.type_key, received_day.label("day"), sa.func.count())
                .where(*_closed_kept(filters), _within(_c.created_at, filters))
                .group_by(_c.type_key, sa.literal_column("day")))
    closed_day = sa.cast(_local(_c.closed_at, offsets) // 86400, sa.BigInteger)
    closed = (sa.select(closed_day.label("day"), sa.func.count()).where(*_counted(filters))
              .group_by(sa.literal_column("day")))
    return ([(key, int(day), int(n)) for key, day, n in conn.execute(received)],
            [(int(day), int(n)) for day, n in conn.execute(closed)])


def _lead_us() -> sa.ColumnElement[int]:
    return micros(_c.closed_at, "postgresql") - micros(_c.created_at, "postgresql")


def lead_spreads(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version]
                 ) -> list[tuple[str | None, str | None, bool, int, int | None, int | None]]:
    """The lead time in µs of the cases closed in the period, for all of them, per type and
    per type and area (JSON text): (type or None, area or None, whether per area, how many,
    the values at `MEDIAN` and `P90` by `percentile_disc`). Where a group's count makes
    `⌈f·n⌉` another rank than the nearest rank, its value is looked up by rank instead."""
    area = area_text(versions).label("area")
    lead = _lead_us()
    inner = sa.select(_c.type_key.label("type_key"), area, lead.label("lead")).where(*_counted(filters)).subquery()
    key, place = inner.c.type_key, inner.c.area
    query = (sa.select(key, place, sa.func.grouping(key, place), sa.func.count(),
                       sa.func.percentile_disc(sa.literal(MEDIAN)).within_group(inner.c.lead),
                       sa.func.percentile_disc(sa.literal(P90)).within_group(inner.c.lead))
             .group_by(sa.func.grouping_sets(sa.tuple_(), sa.tuple_(key), sa.tuple_(key, place))))
    out = []
    for type_key, area_json, grouping, count, median, p90 in conn.execute(query):
        per_area = grouping == 0
        of_type = grouping in (0, 1)
        values = []
        for fraction, percent, found in ((MEDIAN, 50, median), (P90, 90, p90)):
            rank = nearest(count, percent)
            if found is not None and math.ceil(fraction * count) != rank:
                found = _lead_at(conn, filters, versions, type_key if of_type else None, area_json, per_area, rank)
            values.append(None if found is None else int(found))
        out.append((type_key if of_type else None, area_json, per_area, int(count), values[0], values[1]))
    return out


def nearest(count: int, percent: int) -> int:
    """The nearest rank of a percentile of `count` values (`engine.reporting.figures.nearest_rank`)."""
    return max(1, -(-percent * count // 100))


def _lead_at(conn: sa.Connection, filters: Period, versions: Mapping[tuple[str, int], Version],
             type_key: str | None, area_json: str | None, per_area: bool, rank: int) -> int:
    query = sa.select(_lead_us().label("lead")).where(*_counted(filters))
    if type_key is not None:
        query = query.where(_c.type_key == type_key)
    if per_area:
        query = query.where(area_text(versions).is_not_distinct_from(area_json))
    return int(conn.execute(query.order_by(sa.literal_column("lead")).offset(rank - 1).limit(1)).scalar_one())


def working_counts(conn: sa.Connection, filters: Period, offsets: Sequence[tuple[datetime | None, int]],
                   first: int, sums: Sequence[int]) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """The working days from receipt to closing of the cases closed in the period, per type:
    (type, working days, how many), counted from the prefix sums `sums` (index 0 the local day
    `first`, days since 1970-01-01: the builder's `WorkingDayCounter` covering every local
    day of the span). A day counts once it is over; a case with an instant in the last second
    of its local day comes back on its own instead, (type, receipt µs, closing µs), for the
    builder to count with the calendar's end of day."""
    created, closed = _local(_c.created_at, offsets), _local(_c.closed_at, offsets)
    edge = sa.or_(created % 86400 >= 86399, closed % 86400 >= 86399)
    # In parentheses: PostgreSQL takes a subscript only of a parenthesised cast.
    table = sa.type_coerce(sa.sql.elements.Grouping(sa.cast(
        sa.bindparam("sums", list(sums), type_=ARRAY(sa.BigInteger)), ARRAY(sa.BigInteger))), ARRAY(sa.BigInteger))
    # Working days from the day of receipt through the day before closing: sums are 1-based.
    low = created // 86400 - first   # index (0-based) of the day of receipt, less one → its sum before
    high = closed // 86400 - 1 - first
    count = sa.func.greatest(table[high + 1] - table[low], 0)
    working = sa.case((_c.closed_at <= _c.created_at, 0), else_=count)
    plain = (sa.select(_c.type_key, working.label("working"), sa.func.count())
             .where(*_counted(filters), sa.not_(edge))
             .group_by(_c.type_key, sa.literal_column("working")))
    odd = (sa.select(_c.type_key, micros(_c.created_at, "postgresql"), micros(_c.closed_at, "postgresql"))
           .where(*_counted(filters), edge))
    return ([(key, int(w), int(n)) for key, w, n in conn.execute(plain)],
            [(key, int(a), int(b)) for key, a, b in conn.execute(odd)])


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
