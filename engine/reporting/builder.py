"""The report's figures from plain rows: no database, no clock but the `now` it is given.

`ReportBuilder` takes one case with its state changes at a time, then the escalations, and
`finish()` returns a `Report`. It keeps counts, and one number per lead time and per stay,
never the rows: memory follows the number of groups, states and stays, never the number of
events. The definitions of every figure are in `engine.reporting.figures`.
"""

from __future__ import annotations

import datetime as dt
import heapq
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType, StateSpec
from engine.core.durations import Duration
from engine.core.notices import summary_of
from engine.core.organisation import Organisation
from engine.core.results import OUTCOMES, REALISED
from engine.core.vocabulary import Action
from engine.reporting.dekking import DekkingTally
from engine.reporting.figures import (
    CLOCKS,
    LONGEST,
    AdminEvent,
    AreaFigures,
    CaseFacts,
    ClockShare,
    EscalationFact,
    FailedEmail,
    Filters,
    GroupFigures,
    Move,
    Realised,
    Report,
    Results,
    Spread,
    StateFigures,
    UnitFigures,
    Waiting,
    WeekFigures,
    flow_order,
    rung_order,
)

DAY = 86400.0
_LAST_SECOND = dt.time(23, 59, 59)
_TRANSITION = Action.TRANSITION
"""Looked up once: reading a member off its enum class costs more than the comparison, and
this one is compared for every state change."""
_CREATED, _SUSPENDED, _RESUMED = Action.CREATED, Action.SUSPENDED, Action.RESUMED
RECENT = 10
"""How many recently realised cases the report keeps (the public page shows them)."""
NO_OUTCOME = "none"
"""The outcome of a case closed in a final state that names none."""


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
    for span in spans(moves):
        if span.end is not None:
            yield span.state, max((span.end - span.start).total_seconds(), 0.0) / DAY, False
        elif not is_final(span.state):
            yield span.state, max((now - span.start).total_seconds(), 0.0) / DAY, True


class Span(NamedTuple):
    """One stay: its state, when it began and ended (None: still there), and the times its
    clock stood still within it (a stop still running has no end)."""

    state: str
    start: dt.datetime
    end: dt.datetime | None
    stops: tuple[tuple[dt.datetime, dt.datetime | None], ...]


def spans(moves: Iterable[Move]) -> Iterator[Span]:
    """The stays of one case from its moves in seq order (the last one may be a final state)."""
    state: str | None = None
    since: dt.datetime | None = None
    stops: list[tuple[dt.datetime, dt.datetime | None]] = []
    stopped: dt.datetime | None = None
    for move in moves:
        action = move.action
        if action == _SUSPENDED:
            if stopped is None:
                stopped = move.at
            continue
        if action == _RESUMED:
            if stopped is not None:
                stops.append((stopped, move.at))
                stopped = None
            continue
        if action == _TRANSITION and state is not None and since is not None:
            if stopped is not None:
                stops.append((stopped, move.at))
            yield Span(state, since, move.at, tuple(stops))
        elif action != _TRANSITION and action != _CREATED:
            continue
        state, since, stops, stopped = move.to_state, move.at, [], None
    if state is not None and since is not None:
        if stopped is not None:
            stops.append((stopped, None))
        yield Span(state, since, None, tuple(stops))


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


class _Clock:
    __slots__ = ("late", "met", "open_past")

    def __init__(self) -> None:
        self.met = self.late = self.open_past = 0

    def share(self) -> ClockShare:
        return ClockShare(self.met, self.late, self.open_past)


def _clocks() -> dict[str, _Clock]:
    return {name: _Clock() for name in CLOCKS}


class _Results:
    __slots__ = ("closed", "lead", "legal", "measures", "outcomes")

    def __init__(self) -> None:
        self.closed = 0
        self.outcomes: Counter[str] = Counter()
        self.measures: dict[str, dict[str, Decimal]] = {}
        self.lead = array("d")
        self.legal = _Clock()

    def add(self, outcome: str, values: Iterable[tuple[str, Decimal]], days: float) -> None:
        self.closed += 1
        self.outcomes[outcome] += 1
        self.lead.append(days)
        for name, value in values:
            per = self.measures.setdefault(name, {})
            per[outcome] = per.get(outcome, Decimal(0)) + value

    def results(self) -> Results:
        order = {o: i for i, o in enumerate((*OUTCOMES, NO_OUTCOME))}
        outcomes = dict(sorted(self.outcomes.items(), key=lambda kv: order.get(kv[0], len(order))))
        measures = {name: dict(sorted(per.items(), key=lambda kv: order.get(kv[0], len(order))))
                    for name, per in self.measures.items()}
        return Results(self.closed, outcomes, measures)


class _Tally:
    __slots__ = ("clocks", "closed", "escalations", "lead", "lead_working", "open", "overdue",
                 "received", "results")

    def __init__(self) -> None:
        self.received = self.open = self.closed = self.overdue = 0
        self.lead = array("d")
        self.lead_working = array("q")
        self.escalations: Counter[str] = Counter()
        self.clocks = _clocks()
        self.results = _Results()

    def figures(self, key: str | None, name: str) -> GroupFigures:
        return GroupFigures(
            key=key, name=name, received=self.received, open=self.open, closed=self.closed,
            lead_days=Spread.of(self.lead), lead_working_days=Spread.of(self.lead_working),
            clocks={n: c.share() for n, c in self.clocks.items()}, overdue=self.overdue,
            escalations=dict(sorted(self.escalations.items(), key=lambda kv: rung_order(kv[0]))),
            results=self.results.results(),
        )


class _UnitTally:
    __slots__ = ("deadlines", "escalations", "held", "open", "open_stays", "overdue", "stays")

    def __init__(self) -> None:
        self.open = self.overdue = self.open_stays = 0
        self.held = 0.0
        self.stays = array("d")
        self.deadlines = _Clock()
        self.escalations: Counter[str] = Counter()

    def figures(self, key: str | None, name: str) -> UnitFigures:
        spread = Spread.of(self.stays)
        return UnitFigures(
            key=key, name=name, open=self.open, overdue=self.overdue, stays=spread.count,
            open_stays=self.open_stays, held_days=self.held, median_stay_days=spread.median,
            state_deadlines=self.deadlines.share(),
            escalations=dict(sorted(self.escalations.items(), key=lambda kv: rung_order(kv[0]))),
        )


class _StayTally:
    __slots__ = ("days", "open", "total")

    def __init__(self) -> None:
        self.days = array("d")
        self.open = 0
        self.total = 0.0


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).replace(",", "."))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


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
        filters: Filters | None = None,
        admin_events: Mapping[int, Sequence[AdminEvent]] | None = None,
    ) -> None:
        self.now = now
        self.org = org
        self.calendar = calendar
        self.filters = filters or Filters()
        self.latest = {rt.key: rt for rt in latest if self.filters.type_key in (None, rt.key)}
        self.type_of = type_of
        self.working_days = WorkingDayCounter(calendar)
        self.admin_events = admin_events or {}
        self.dekking = DekkingTally(org, self.filters, self.working_days.between)
        self._types: dict[str, _Tally] = {key: _Tally() for key in self.latest}
        units = org.units if self.filters.unit is None else [self.filters.unit]
        self._units: dict[str | None, _UnitTally] = {unit: _UnitTally() for unit in units}
        self._total = _Tally()
        self._areas: dict[tuple[str, str | None], _Results] = {}
        self._stays: dict[tuple[str, str], _StayTally] = {}
        self._stay_versions: dict[tuple[str, str], int] = {}
        self._overdue: Counter[tuple[str | None, str]] = Counter()
        self._by_day: Counter[tuple[dt.date, str]] = Counter()
        self._weeks: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._longest: list[tuple[float, int, CaseFacts]] = []
        self._recent: list[tuple[dt.datetime, int, Realised]] = []
        self._dues: dict[tuple[dt.date, Duration], dt.datetime] = {}

    # -- one case ---------------------------------------------------------------------------

    def add_case(self, case: CaseFacts, moves: Sequence[Move]) -> None:
        rt = self.type_of(case.type_key, case.type_version)
        states = rt.states
        unit = self.filters.unit
        stays_of = [s for s in spans(moves) if not states[s.state].final] if moves else []
        if unit is not None and case.owner != unit and all(states[s.state].owner != unit for s in stays_of):
            return  # the unit never held it
        within = self.filters.within
        by_type = self._type(case.type_key)
        total = self._total
        if within(case.created_at):
            by_type.received += 1
            total.received += 1
            self._week(case.created_at)[0] += 1
        for stay in stays_of:
            self._add_stay(case, rt, stay, by_type)
        for name, due in (("service_norm", case.service_due), ("legal_term", case.case_due)):
            self._case_clock(case, name, due, by_type)
        events = self.admin_events.get(case.id)
        if events:
            self.dekking.add_case(events, moves, case.closed_at)
        if case.closed_at is None:
            if unit is None or case.owner == unit:
                self._add_open(case, by_type)
        elif within(case.closed_at):
            self._add_closed(case, rt, moves, by_type)

    def _add_stay(self, case: CaseFacts, rt: RequestType, stay: Span, by_type: _Tally) -> None:
        spec = rt.states[stay.state]
        owner = spec.owner
        if self.filters.unit is not None and owner != self.filters.unit:
            return
        end = stay.end if stay.end is not None else self.now
        if self.filters.within(end):
            days = max((end - stay.start).total_seconds(), 0.0) / DAY
            key = (case.type_key, stay.state)
            tally = self._stays.get(key)
            if tally is None:
                tally = self._stays[key] = _StayTally()
                self._stay_versions[key] = case.type_version
            tally.days.append(days)
            tally.total += days
            tally.open += stay.end is None
            held = self._unit(owner)
            held.stays.append(days)
            held.held += days
            held.open_stays += stay.end is None
        if spec.deadline is None or spec.paused:
            return
        due = self._stay_due(spec.deadline, stay)
        if due is None:
            return  # its clock stands still now: not decided yet
        if stay.end is not None and stay.end <= due:
            kind, when = "met", stay.end
        elif stay.end is not None:
            kind, when = "late", due
        elif due < self.now:
            kind, when = "open_past", due
        else:
            return
        if not self.filters.within(when):
            return
        for clock in (by_type.clocks["state_deadlines"], self._total.clocks["state_deadlines"],
                      self._unit(owner).deadlines):
            setattr(clock, kind, getattr(clock, kind) + 1)
        if kind != "met":
            self._week(due)[2] += 1

    def _stay_due(self, deadline: Duration, stay: Span) -> dt.datetime | None:
        """The stay's deadline, moved by the suspensions within it (as the engine moves it);
        None while its clock stands still."""
        cal = self.calendar
        if deadline.unit == "hours":
            due = cal.due(stay.start, deadline)
        else:
            key = (cal.local_date(stay.start), deadline)
            known = self._dues.get(key)
            if known is None:
                known = self._dues[key] = cal.due(stay.start, deadline)
            due = known
        for start, end in stay.stops:
            if end is None:
                return None
            due = cal.shift(due, start, end, exact=deadline.unit == "hours")
        return due

    def _case_clock(self, case: CaseFacts, name: str, due: dt.datetime | None, by_type: _Tally) -> None:
        if due is None:
            return
        closed = case.closed_at
        if closed is not None and closed <= due:
            kind, when = "met", closed
        elif closed is not None:
            kind, when = "late", due
        elif due < self.now and not case.suspended:
            kind, when = "open_past", due
        else:
            return
        if not self.filters.within(when):
            return
        for clock in (by_type.clocks[name], self._total.clocks[name]):
            setattr(clock, kind, getattr(clock, kind) + 1)
        if name == "legal_term" and case.closed_at is not None and self.filters.within(case.closed_at):
            area = self._area_of(case)
            legal = self._area(case.type_key, area).legal
            setattr(legal, kind, getattr(legal, kind) + 1)

    def _area_of(self, case: CaseFacts) -> str | None:
        rt = self.latest.get(case.type_key) or self.type_of(case.type_key, case.type_version)
        if rt.area is None or case.data is None:
            return None
        value = case.data.get(rt.area)
        return None if value is None or value == "" else str(value)

    def _add_closed(self, case: CaseFacts, rt: RequestType, moves: Sequence[Move], by_type: _Tally) -> None:
        assert case.closed_at is not None
        days = max((case.closed_at - case.created_at).total_seconds(), 0.0) / DAY
        working = self.working_days.between(case.created_at, case.closed_at)
        outcome = rt.states[case.state].outcome or NO_OUTCOME
        data = case.data or {}
        values = [(name, value) for name in rt.measures if (value := _decimal(data.get(name))) is not None]
        for tally in (by_type, self._total):
            tally.closed += 1
            tally.lead.append(days)
            tally.lead_working.append(working)
            tally.results.add(outcome, values, days)
        area = self._area_of(case)
        self._area(case.type_key, area).add(outcome, values, days)
        self._week(case.closed_at)[1] += 1
        if outcome in REALISED:
            item = (case.closed_at, case.id, Realised(
                type_key=case.type_key, closed_on=self.calendar.local_date(case.closed_at), outcome=outcome,
                area=area, summary=tuple((label, value) for label, value in summary_of(rt, data, self.org.language)),
            ))
            if len(self._recent) < RECENT:
                heapq.heappush(self._recent, item)
            elif item[:2] > self._recent[0][:2]:
                heapq.heapreplace(self._recent, item)

    def _area(self, key: str, area: str | None) -> _Results:
        found = self._areas.get((key, area))
        if found is None:
            found = self._areas[(key, area)] = _Results()
        return found

    def _week(self, moment: dt.datetime) -> list[int]:
        year, week, _ = self.calendar.local_date(moment).isocalendar()
        return self._weeks[(year, week)]

    def _add_open(self, case: CaseFacts, by_type: _Tally) -> None:
        for tally in (by_type, self._total):
            tally.open += 1
            tally.overdue += case.overdue
        held = self._unit(case.owner)
        held.open += 1
        held.overdue += case.overdue
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

    def _unit(self, unit: str | None) -> _UnitTally:
        tally = self._units.get(unit)
        if tally is None:
            tally = self._units[unit] = _UnitTally()
        return tally

    def add_escalation(self, escalation: EscalationFact) -> None:
        if self.filters.unit is not None and escalation.unit != self.filters.unit:
            return
        rung = escalation.rung
        self._type(escalation.type_key).escalations[rung] += 1
        self._unit(escalation.unit).escalations[rung] += 1
        self._total.escalations[rung] += 1
        self._by_day[(self.calendar.local_date(escalation.fired_at), rung)] += 1

    # -- the report -------------------------------------------------------------------------

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
            filters=self.filters,
            areas=self._area_figures(),
            weeks=self._week_figures(),
            dekking=self.dekking.finish(),
            realised=[r for _, _, r in sorted(self._recent, key=lambda item: item[:2], reverse=True)],
            measure_labels={key: {m: rt.fields[m].label or m for m in rt.measures} for key, rt in self.latest.items()},
            area_labels={key: rt.fields[rt.area].label or rt.area for key, rt in self.latest.items()
                         if rt.area is not None},
        )

    def _area_figures(self) -> list[AreaFigures]:
        rank = {key: i for i, key in enumerate(self._types)}
        keys = sorted(self._areas, key=lambda k: (rank.get(k[0], len(rank)), k[1] is None, k[1] or ""))
        out = []
        for key, area in keys:
            tally = self._areas[(key, area)]
            out.append(AreaFigures(type_key=key, area=area, results=tally.results(),
                                   lead_days=Spread.of(tally.lead), legal_term=tally.legal.share()))
        return out

    def _week_figures(self) -> list[WeekFigures]:
        """Every ISO week from the first to the last that holds anything, empty ones included."""
        if not self._weeks:
            return []
        first, last = min(self._weeks), max(self._weeks)
        monday = dt.date.fromisocalendar(first[0], first[1], 1)
        end = dt.date.fromisocalendar(last[0], last[1], 1)
        out = []
        while monday <= end:
            year, week, _ = monday.isocalendar()
            received, closed, overdue = self._weeks.get((year, week), (0, 0, 0))
            out.append(WeekFigures(year, week, monday, received, closed, overdue))
            monday += dt.timedelta(days=7)
        return out

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
