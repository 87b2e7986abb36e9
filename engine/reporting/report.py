"""`loket report`: how the organisation performs, figured from cases, their moves and escalations.

Two halves. The figures are pure: `ReportBuilder` takes plain rows — one case with its state
changes at a time, then escalations and failed emails — and `finish()` returns a `Report`. `gather`
feeds it from the database inside one read snapshot, streaming the cases (by id) and their
state changes (by case id and seq) side by side, so memory follows the number of groups,
states and stays, never the number of events held at once.

Definitions (the page's "Toelichting" says the same):

- lead time: `closed_at − created_at` of a closed case, in calendar days; also in working
  days, counted as `WorkingCalendar.working_days_between` counts them (working days that
  ended in between);
- percentiles by the nearest-rank method: the p-th percentile of n sorted values is the value
  at rank ⌈p·n/100⌉ (1-based). It is always one of the values, never an interpolation, so
  an auditor can point at the case; the median is the 50th percentile (the lower middle for
  an even count);
- on time: a closed case with `closed_at ≤ case_due` (the legal term, after extensions and
  suspensions); for types without a lead time `closed_at ≤ service_due`; a case with
  neither is not counted;
- time per state: each stay from entering a state to leaving it, open stays counted up to
  now; final states are not stays; states are listed in flow order (`flow_order`);
- overdue: open, not suspended, `state_due < now` (decided in the query, as `case list
  --overdue` decides it);
- per unit: an open case counts for the unit holding it; a closed case for the unit that
  closed it (the owner of the state it left for its final state); an escalation for the
  unit that held the case when it fired.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.app.views import iso, local, table
from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType, StateSpec
from engine.core.organisation import Organisation
from engine.store.schema import UTCDateTime, cases_t, escalations_t, events_t, outbox_t

if TYPE_CHECKING:
    from engine.app.service import Loket

DAY = 86400.0
LONGEST = 10
"""How many of the longest-waiting open cases the report lists."""
FAILED_SHOWN = 50
"""How many failed emails the report lists (the newest); the count covers all of them."""
STREAM_BATCH = 2000
_LAST_SECOND = dt.time(23, 59, 59)
RUNG_NAMES = ("service_norm", "lead_time", "timeout")


# -- rows in -----------------------------------------------------------------------------------


class CaseFacts(NamedTuple):
    """One case, as far as the report needs it. The database works out `due` and the two
    flags, so that a hundred thousand rows carry three fewer instants to decode."""

    id: int
    ref: str
    type_key: str
    type_version: int
    state: str
    owner: str | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    state_entered_at: dt.datetime
    due: dt.datetime | None
    """The term that decides "on time": case_due, else service_due."""
    suspended: bool
    overdue: bool
    """Open, not suspended, state_due before the report's now (as `case list --overdue`)."""


class Move(NamedTuple):
    """A `created` or `transition` event: where a stay starts and the previous one ends."""

    case_id: int
    at: dt.datetime
    action: str
    from_state: str | None
    to_state: str | None


class EscalationFact(NamedTuple):
    fired_at: dt.datetime
    rung: str
    unit: str | None
    type_key: str


class FailedEmail(NamedTuple):
    id: int
    key: str
    to: str
    subject: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime


# -- figures out -------------------------------------------------------------------------------


def nearest_rank(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted values: the value at rank ⌈percent·n/100⌉."""
    if not ordered:
        return None
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def flow_order(rt: RequestType) -> list[str]:
    """The states as a case meets them: breadth-first from the initial state, following the
    transitions in their file order. A definition's `states` mapping cannot give this order:
    PostgreSQL keeps definitions as JSONB, which does not keep the order of keys."""
    order = [rt.initial]
    for state in order:
        for t in rt.transitions:
            if state in t.sources and t.dest not in order:
                order.append(t.dest)
    return order + sorted(set(rt.states) - set(order))


def rung_order(rung: str) -> tuple[int, int, str]:
    """Ladder places in number order, then the case-wide clocks, then anything else."""
    if rung.isdigit():
        return (0, int(rung), "")
    if rung in RUNG_NAMES:
        return (1, RUNG_NAMES.index(rung), "")
    return (2, 0, rung)


@dataclass(frozen=True)
class Spread:
    """How a figure is spread over cases: count, median and 90th percentile (nearest rank)."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        return cls(len(ordered), nearest_rank(ordered, 50), nearest_rank(ordered, 90))

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "median": _round(self.median), "p90": _round(self.p90)}


@dataclass(frozen=True)
class GroupFigures:
    """The figures of one request type, one unit, or everything."""

    key: str | None
    name: str
    open: int
    closed: int
    lead_days: Spread
    lead_working_days: Spread
    on_time: int
    on_time_counted: int
    overdue: int
    escalations: Mapping[str, int]

    @property
    def share_on_time(self) -> float | None:
        return self.on_time / self.on_time_counted if self.on_time_counted else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "open": self.open, "closed": self.closed,
            "lead_time_days": self.lead_days.as_json(),
            "lead_time_working_days": self.lead_working_days.as_json(),
            "on_time": {"on_time": self.on_time, "counted": self.on_time_counted,
                        "share": _round(self.share_on_time)},
            "overdue": self.overdue,
            "escalations": dict(self.escalations),
        }


@dataclass(frozen=True)
class StateFigures:
    """Time spent in one state of one request type, per stay."""

    type_key: str
    state: str
    label: str
    unit: str | None
    unit_name: str
    stays: int
    open_stays: int
    median_days: float | None
    mean_days: float | None
    total_days: float

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type_key, "state": self.state, "label": self.label, "unit": self.unit,
            "unit_name": self.unit_name, "stays": self.stays, "open_stays": self.open_stays,
            "median_days": _round(self.median_days), "mean_days": _round(self.mean_days),
            "total_days": _round(self.total_days),
        }


@dataclass(frozen=True)
class Waiting:
    """An open case that has waited long in its state."""

    ref: str
    type_key: str
    state: str
    label: str
    unit: str | None
    unit_name: str
    since: dt.datetime
    days: float
    suspended: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "type": self.type_key, "state": self.state, "state_label": self.label,
            "unit": self.unit, "unit_name": self.unit_name, "since": iso(self.since),
            "days_waiting": _round(self.days), "suspended": self.suspended,
        }


@dataclass(frozen=True)
class Report:
    municipality: str
    timezone: str
    now: dt.datetime
    types: list[GroupFigures]
    type_titles: Mapping[str, str]
    units: list[GroupFigures]
    total: GroupFigures
    states: list[StateFigures]
    escalations_by_day: list[tuple[dt.date, str, int]]
    """(local day, rung, count), by day then rung."""
    overdue: list[tuple[str | None, str, int]]
    """(unit, request type, count) of the cases overdue now."""
    longest: list[Waiting]
    failed_count: int
    failed: list[FailedEmail] = field(default_factory=list)

    @property
    def date(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.timezone)).date()

    def rungs(self) -> list[str]:
        """Every rung that fired anywhere, in ladder order."""
        seen = {rung for group in (*self.types, *self.units) for rung in group.escalations}
        return sorted(seen, key=rung_order)

    def as_json(self) -> dict[str, Any]:
        return {
            "municipality": self.municipality,
            "timezone": self.timezone,
            "now": iso(self.now),
            "date": self.date.isoformat(),
            "types": [g.as_json() | {"title": g.name} for g in self.types],
            "units": [g.as_json() for g in self.units],
            "total": self.total.as_json(),
            "time_per_state": [s.as_json() for s in self.states],
            "escalations_by_day": [{"date": d.isoformat(), "rung": r, "count": n}
                                   for d, r, n in self.escalations_by_day],
            "overdue": [{"unit": u, "type": t, "count": n} for u, t, n in self.overdue],
            "longest_waiting": [w.as_json() for w in self.longest],
            "failed_emails": {
                "count": self.failed_count,
                "items": [{"id": f.id, "key": f.key, "to": f.to, "subject": f.subject,
                           "attempts": f.attempts, "last_error": f.last_error,
                           "created_at": iso(f.created_at)} for f in self.failed],
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the pure part -----------------------------------------------------------------------------


class WorkingDayCounter:
    """`WorkingCalendar.working_days_between`, answered from prefix sums over the days.

    The calendar walks day by day: right for one deadline, but for 100,000 lead times of
    weeks each it would be most of the report. This gives the same count (a test holds the
    two equal) in constant time per pair once the table covers the dates.
    """

    MARGIN = dt.timedelta(days=400)

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self._zone = ZoneInfo(calendar.timezone)
        self._start = dt.date.max
        self._sums: list[int] = []
        """_sums[i]: the working days from _start through _start + i."""

    def between(self, a: dt.datetime, b: dt.datetime) -> int:
        if b <= a:
            return 0
        cal = self.calendar
        # A day counts once it is over (its 23:59:59); only an instant in that last second
        # needs the calendar's exact end of day, the rest is told by the wall clock alone.
        local_a, local_b = a.astimezone(self._zone), b.astimezone(self._zone)
        first, last = local_a.date(), local_b.date()
        if local_a.time() >= _LAST_SECOND and cal.end_of_day(first) <= a:
            first += dt.timedelta(days=1)
        if local_b.time() < _LAST_SECOND or cal.end_of_day(last) > b:
            last -= dt.timedelta(days=1)
        if first > last:
            return 0
        before = first - dt.timedelta(days=1)
        if not (self._covers(before) and self._covers(last)):
            self._cover(before, last)
        return self._sums[(last - self._start).days] - self._sums[(before - self._start).days]

    def _covers(self, day: dt.date) -> bool:
        return 0 <= (day - self._start).days < len(self._sums) if self._sums else False

    def _cover(self, low: dt.date, high: dt.date) -> None:
        """Rebuild the table over [low, high] and what it held, with a margin either side."""
        if self._sums:
            low = min(low, self._start)
            high = max(high, self._start + dt.timedelta(days=len(self._sums) - 1))
        start, end = low - self.MARGIN, high + self.MARGIN
        sums, count, d = [], 0, start
        while d <= end:
            count += self.calendar.is_working_day(d)
            sums.append(count)
            d += dt.timedelta(days=1)
        self._start, self._sums = start, sums


def stays(moves: Iterable[Move], now: dt.datetime,
          is_final: Callable[[str], bool]) -> Iterator[tuple[str, float, bool]]:
    """(state, days, still open) for each stay of one case, from its moves in seq order.

    A simulation clock can be set back, so a stay is never shorter than nothing.
    """
    state: str | None = None
    since: dt.datetime | None = None
    for move in moves:
        if move.action == "transition" and state is not None and since is not None:
            yield state, max((move.at - since).total_seconds(), 0.0) / DAY, False
        state, since = move.to_state, move.at
    if state is not None and since is not None and not is_final(state):
        yield state, max((now - since).total_seconds(), 0.0) / DAY, True


def with_moves(
    cases: Iterable[CaseFacts], moves: Iterable[Move]
) -> Iterator[tuple[CaseFacts, list[Move]]]:
    """Each case with its moves; both streams come in case-id order. Moves of cases that the
    case stream does not hold are skipped."""
    pending = iter(moves)
    move = next(pending, None)
    for case in cases:
        own = []
        while move is not None and move.case_id <= case.id:
            if move.case_id == case.id:
                own.append(move)
            move = next(pending, None)
        yield case, own


class _Tally:
    __slots__ = ("closed", "escalations", "lead", "lead_working", "on_time", "on_time_counted",
                 "open", "overdue")

    def __init__(self) -> None:
        self.open = self.closed = self.on_time = self.on_time_counted = self.overdue = 0
        self.lead = array("d")
        self.lead_working = array("q")
        self.escalations: Counter[str] = Counter()

    def figures(self, key: str | None, name: str) -> GroupFigures:
        return GroupFigures(
            key=key, name=name, open=self.open, closed=self.closed,
            lead_days=Spread.of(self.lead), lead_working_days=Spread.of(self.lead_working),
            on_time=self.on_time, on_time_counted=self.on_time_counted, overdue=self.overdue,
            escalations=dict(sorted(self.escalations.items(), key=lambda kv: rung_order(kv[0]))),
        )


class _StayTally:
    __slots__ = ("days", "open", "total")

    def __init__(self) -> None:
        self.days = array("d")
        self.open = 0
        self.total = 0.0


class ReportBuilder:
    """Figures from plain rows: feed every case (with its moves) and every escalation, then
    `finish()` with the failed emails."""

    def __init__(
        self,
        *,
        now: dt.datetime,
        org: Organisation,
        calendar: WorkingCalendar,
        latest: Sequence[RequestType],
        type_of: Callable[[str, int], RequestType],
    ) -> None:
        self.now = now
        self.org = org
        self.calendar = calendar
        self.latest = {rt.key: rt for rt in latest}
        self.type_of = type_of
        self.working_days = WorkingDayCounter(calendar)
        self._types: dict[str, _Tally] = {key: _Tally() for key in self.latest}
        self._units: dict[str | None, _Tally] = {unit: _Tally() for unit in org.units}
        self._total = _Tally()
        self._stays: dict[tuple[str, str], _StayTally] = {}
        self._stay_versions: dict[tuple[str, str], int] = {}
        self._overdue: Counter[tuple[str | None, str]] = Counter()
        self._by_day: Counter[tuple[dt.date, str]] = Counter()
        self._longest: list[tuple[float, int, CaseFacts]] = []

    def add_case(self, case: CaseFacts, moves: Sequence[Move]) -> None:
        rt = self.type_of(case.type_key, case.type_version)
        by_type = self._type(case.type_key)
        for state, days, still_open in stays(moves, self.now, lambda s: rt.states[s].final):
            stay = self._stays.get((case.type_key, state))
            if stay is None:
                stay = self._stays[(case.type_key, state)] = _StayTally()
                self._stay_versions[(case.type_key, state)] = case.type_version
            stay.days.append(days)
            stay.total += days
            stay.open += still_open
        if case.closed_at is None:
            self._add_open(case, by_type)
            return
        closer = next((m.from_state for m in reversed(moves) if m.action == "transition"), None)
        unit = rt.states[closer].owner if closer is not None and closer in rt.states else None
        days = max((case.closed_at - case.created_at).total_seconds(), 0.0) / DAY
        working = self.working_days.between(case.created_at, case.closed_at)
        for tally in (by_type, self._unit(unit), self._total):
            tally.closed += 1
            tally.lead.append(days)
            tally.lead_working.append(working)
            if case.due is not None:
                tally.on_time_counted += 1
                tally.on_time += case.closed_at <= case.due

    def _add_open(self, case: CaseFacts, by_type: _Tally) -> None:
        for tally in (by_type, self._unit(case.owner), self._total):
            tally.open += 1
            tally.overdue += case.overdue
        if case.overdue:
            self._overdue[(case.owner, case.type_key)] += 1
        # A bounded heap whose top is the newest of the kept: it makes way for an older one.
        item = (-case.state_entered_at.timestamp(), -case.id, case)
        if len(self._longest) < LONGEST:
            heapq.heappush(self._longest, item)
        elif item > self._longest[0]:
            heapq.heapreplace(self._longest, item)

    def _type(self, key: str) -> _Tally:
        tally = self._types.get(key)
        if tally is None:
            tally = self._types[key] = _Tally()
        return tally

    def _unit(self, unit: str | None) -> _Tally:
        tally = self._units.get(unit)
        if tally is None:
            tally = self._units[unit] = _Tally()
        return tally

    def add_escalation(self, escalation: EscalationFact) -> None:
        rung = escalation.rung
        self._type(escalation.type_key).escalations[rung] += 1
        self._unit(escalation.unit).escalations[rung] += 1
        self._total.escalations[rung] += 1
        self._by_day[(self.calendar.local_date(escalation.fired_at), rung)] += 1

    def finish(self, failed: Sequence[FailedEmail] = (), failed_count: int = 0) -> Report:
        org = self.org
        types = [tally.figures(key, self._title(key)) for key, tally in self._types.items()]
        units = [tally.figures(unit, self.unit_name(unit)) for unit, tally in self._units.items()]
        return Report(
            municipality=org.municipality,
            timezone=org.timezone,
            now=self.now,
            types=types,
            type_titles={g.key: g.name for g in types if g.key is not None},
            units=units,
            total=self._total.figures(None, "Totaal"),
            states=self._state_figures(),
            escalations_by_day=[
                (day, rung, n) for (day, rung), n in
                sorted(self._by_day.items(), key=lambda kv: (kv[0][0], rung_order(kv[0][1])))
            ],
            overdue=[
                (unit, key, n) for (unit, key), n in
                sorted(self._overdue.items(), key=lambda kv: (self._unit_rank(kv[0][0]), kv[0][1]))
            ],
            longest=[self._waiting(case) for _, _, case in sorted(self._longest, reverse=True)],
            failed_count=failed_count,
            failed=list(failed),
        )

    def _title(self, key: str) -> str:
        rt = self.latest.get(key)
        return rt.title if rt is not None else key

    def unit_name(self, unit: str | None) -> str:
        if unit is None:
            return "-"
        found = self.org.units.get(unit)
        return found.name if found is not None else unit

    def _unit_rank(self, unit: str | None) -> int:
        return list(self._units).index(unit) if unit in self._units else len(self._units)

    def _state_spec(self, key: str, state: str, version: int) -> StateSpec:
        latest = self.latest.get(key)
        if latest is not None and state in latest.states:
            return latest.states[state]
        return self.type_of(key, version).states[state]

    def _state_figures(self) -> list[StateFigures]:
        type_rank = {key: i for i, key in enumerate(self._types)}

        flows = {key: flow_order(rt) for key, rt in self.latest.items()}

        def place(item: tuple[str, str]) -> tuple[int, int, str]:
            key, state = item
            order = flows.get(key, [])
            return (type_rank.get(key, len(type_rank)),
                    order.index(state) if state in order else len(order), state)

        out = []
        for key, state in sorted(self._stays, key=place):
            stay = self._stays[(key, state)]
            spec = self._state_spec(key, state, self._stay_versions[(key, state)])
            spread = Spread.of(stay.days)
            out.append(StateFigures(
                type_key=key, state=state, label=spec.label, unit=spec.owner,
                unit_name=self.unit_name(spec.owner), stays=spread.count, open_stays=stay.open,
                median_days=spread.median, mean_days=stay.total / spread.count,
                total_days=stay.total,
            ))
        return out

    def _waiting(self, case: CaseFacts) -> Waiting:
        rt = self.type_of(case.type_key, case.type_version)
        return Waiting(
            ref=case.ref, type_key=case.type_key, state=case.state,
            label=rt.states[case.state].label, unit=case.owner,
            unit_name=self.unit_name(case.owner),
            since=case.state_entered_at,
            days=max((self.now - case.state_entered_at).total_seconds(), 0.0) / DAY,
            suspended=case.suspended,
        )


# -- the database edge -------------------------------------------------------------------------

_c, _e, _x, _o = cases_t.c, events_t.c, escalations_t.c, outbox_t.c
CASES_QUERY = sa.select(
    _c.id, _c.ref, _c.type_key, _c.type_version, _c.state, _c.owner, _c.created_at, _c.closed_at,
    _c.state_entered_at, sa.func.coalesce(_c.case_due, _c.service_due),
    _c.suspended_at.is_not(None),
    # With state_due IS NOT NULL first, the conjunction is false, never NULL, for cases
    # without a state deadline.
    sa.and_(_c.closed_at.is_(None), _c.suspended_at.is_(None), _c.state_due.is_not(None),
            _c.state_due < sa.bindparam("now", type_=UTCDateTime())),
).order_by(_c.id)
MOVES_QUERY = (
    sa.select(_e.case_id, _e.at, _e.action, _e.from_state, _e.to_state)
    .where(_e.action.in_(("created", "transition")))
    .order_by(_e.case_id, _e.seq)
)
ESCALATIONS_QUERY = (
    sa.select(_x.fired_at, _x.rung, _x.unit, _c.type_key).join(cases_t, _c.id == _x.case_id)
)
FAILED_COUNT_QUERY = sa.select(sa.func.count()).select_from(outbox_t).where(_o.status == "failed")
FAILED_QUERY = (
    sa.select(_o.id, _o.key, _o.to_email, _o.subject, _o.attempts, _o.last_error, _o.created_at)
    .where(_o.status == "failed").order_by(_o.id.desc()).limit(FAILED_SHOWN)
)


def _snapshot(loket: Loket) -> sa.Connection:
    """A read-only connection whose queries all see one moment (WAL snapshot on SQLite,
    REPEATABLE READ on PostgreSQL), so the figures agree with each other."""
    conn = loket.read()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def gather(loket: Loket) -> Report:
    """The report at the loket's clock: five queries, two of them streamed side by side."""
    now = loket.clock.now()
    builder = ReportBuilder(
        now=now, org=loket.organisation(), calendar=loket.calendar(), latest=loket.latest_types(),
        type_of=loket.request_type,
    )
    with _snapshot(loket) as conn:
        streamed = conn.execution_options(yield_per=STREAM_BATCH)
        cases = map(CaseFacts._make, streamed.execute(CASES_QUERY, {"now": now}))
        moves = map(Move._make, streamed.execute(MOVES_QUERY))
        for case, own in with_moves(cases, moves):
            builder.add_case(case, own)
        for escalation in map(EscalationFact._make, streamed.execute(ESCALATIONS_QUERY)):
            builder.add_escalation(escalation)
        failed_count = conn.execute(FAILED_COUNT_QUERY).scalar_one()
        failed = [FailedEmail._make(row) for row in conn.execute(FAILED_QUERY)]
    return builder.finish(failed, failed_count)


# -- text --------------------------------------------------------------------------------------


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _whole(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share(group: GroupFigures) -> str:
    share = group.share_on_time
    if share is None:
        return "-"
    return f"{group.on_time}/{group.on_time_counted} ({share:.0%})"


def _group_rows(
    groups: Iterable[GroupFigures], label: Callable[[GroupFigures], str]
) -> list[list[Any]]:
    return [[label(g), g.open, g.closed, _days(g.lead_days.median), _days(g.lead_days.p90),
             _whole(g.lead_working_days.median), _whole(g.lead_working_days.p90), _share(g),
             g.overdue] for g in groups]


def _rung_rows(groups: Iterable[GroupFigures], kind: str, rungs: Sequence[str]) -> list[list[Any]]:
    return [[f"{kind} {g.key or '-'}", *(g.escalations.get(r, 0) for r in rungs),
             sum(g.escalations.values())] for g in groups]


GROUP_HEADERS = [
    "open", "closed", "median days", "p90 days", "median wd", "p90 wd", "on time", "overdue",
]


def render_text(report: Report) -> str:
    """The report for a terminal: one titled section per figure."""
    tz = report.timezone
    out = [f"Report for {report.municipality} at {local(report.now, tz)} {tz}",
           "Lead times of closed cases in calendar days and working days (wd);"
           " percentiles by nearest rank.", ""]
    out += ["Per request type",
            table(["type", *GROUP_HEADERS],
                  [*_group_rows(report.types, lambda g: g.key or "-"),
                   *_group_rows([report.total], lambda g: "(all)")]), ""]
    out += ["Per unit (closed cases count for the unit that closed them)",
            table(["unit", *GROUP_HEADERS], _group_rows(report.units, lambda g: g.key or "-")), ""]
    out += ["Time per state (calendar days per stay; open stays counted up to now)",
            table(["type", "state", "unit", "stays", "open", "median", "mean", "total"],
                  [[s.type_key, s.state, s.unit, s.stays, s.open_stays, _days(s.median_days),
                    _days(s.mean_days), _days(s.total_days)] for s in report.states]), ""]
    rungs = report.rungs()
    rows = _rung_rows(report.types, "type", rungs) + _rung_rows(report.units, "unit", rungs)
    out += ["Escalations per rung", table(["by", *rungs, "total"], rows), ""]
    out += [f"Longest waiting (open cases, the {LONGEST} longest in their current state)"]
    if report.longest:
        out.append(table(["ref", "type", "state", "unit", "since", "days", "clock"],
                         [[w.ref, w.type_key, w.state, w.unit, local(w.since, tz), _days(w.days),
                           "stopped" if w.suspended else "runs"] for w in report.longest]))
    else:
        out.append("no open cases")
    out += ["", f"Failed emails: {report.failed_count}"]
    if report.failed:
        rows = [[f.id, f.to, f.attempts, f.subject, f.last_error] for f in report.failed]
        out.append(table(["id", "to", "tries", "subject", "error"], rows))
    return "\n".join(out)


def run_report(
    loket: Loket, html: str | None, as_json: bool, echo: Callable[[str], None]
) -> Report:
    """The body of `loket report [--html FILE] [--json]`.

    With --html the page is written and one line says where; with --json the figures are
    printed as JSON (the page, if asked for, is still written); otherwise the text report.
    """
    report = gather(loket)
    if html is not None:
        from engine.reporting.report_html import write_page

        size = write_page(report, loket.latest_types(), html)
        if not as_json:
            echo(f"report page written to {html} ({size // 1024} KiB, {report.total.open} open and"
                 f" {report.total.closed} closed cases)")
    if as_json:
        echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    elif html is None:
        echo(render_text(report))
    return report
