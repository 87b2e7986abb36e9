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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType, StateSpec
from engine.core.organisation import Organisation
from engine.core.vocabulary import Action
from engine.reporting.figures import (
    LONGEST,
    CaseFacts,
    EscalationFact,
    FailedEmail,
    GroupFigures,
    Move,
    Report,
    Spread,
    StateFigures,
    Waiting,
    flow_order,
    rung_order,
)

DAY = 86400.0
_LAST_SECOND = dt.time(23, 59, 59)
_TRANSITION = Action.TRANSITION
"""Looked up once: reading a member off its enum class costs more than the comparison, and
this one is compared for every state change."""


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
        if move.action == _TRANSITION and state is not None and since is not None:
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
        closer = next((m.from_state for m in reversed(moves) if m.action == _TRANSITION), None)
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

