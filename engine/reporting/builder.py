"""The report's figures from plain rows: no database, no clock but the `now` it is given.

`ReportBuilder` takes one case with its state changes at a time, then the escalations, and
`finish()` returns a `Report`. It keeps counts, and one number per lead time and per stay,
never the rows: memory follows the number of groups, states and stays, never the number of
events. The definitions of every figure are in `engine.reporting.figures`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import groupby, islice
from operator import itemgetter
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from engine.core.calendar import FIRST_YEAR, LAST_YEAR, OutsideCalendar, WorkingCalendar
from engine.core.definition import RequestType, StateSpec
from engine.core.durations import Duration
from engine.core.notices import summary_of
from engine.core.organisation import Organisation
from engine.core.results import OUTCOMES, REALISED
from engine.core.vocabulary import Action
from engine.errors import CountsDrifted
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
    RawMove,
    Realised,
    Report,
    Results,
    Spread,
    StateFigures,
    UnitFigures,
    Waiting,
    WeekFigures,
    flow_order,
    rank_of,
    rung_order,
)

DAY = 86400.0
DAY_US = 86_400_000_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
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

    The table covers the days asked for so far with a margin either side, clamped to the
    calendar's years: it never asks the calendar for a day outside them. A count that reaches
    outside them is refused as the calendar refuses it (`OutsideCalendar`).
    """

    MARGIN = dt.timedelta(days=400)
    LOWEST = dt.date(FIRST_YEAR, 1, 1) - dt.timedelta(days=1)
    """The table's earliest possible day: the day before the calendar's first, which counts
    nothing and is never asked of the calendar (a count from the first day subtracts its sum)."""
    HIGHEST = dt.date(LAST_YEAR, 12, 31)

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self._zone = ZoneInfo(calendar.timezone)
        self._start = dt.date.max
        self._sums: list[int] = []
        """_sums[i]: the working days from _start through _start + i."""
        self._asked: tuple[dt.date, dt.date] | None = None
        """The days asked for so far (the table holds them, and its margins around them)."""
        self.first = 0
        """The proleptic ordinal of `_start`."""
        self.sums = self._sums
        """`_sums`, for a caller that reads the prefix sums itself (`first`: its index 0)."""

    def between(self, a: dt.datetime, b: dt.datetime) -> int:
        if b <= a:
            return 0
        cal = self.calendar
        # A day counts once it is over (its 23:59:59); only an instant in that last second
        # needs the calendar's exact end of day, the rest is told by the wall clock alone.
        local_a, local_b = a.astimezone(self._zone), b.astimezone(self._zone)
        first, last = local_a.date(), local_b.date()
        if first <= self.LOWEST or last > self.HIGHEST:
            return cal.working_days_between(a, b)  # the calendar's own refusal
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

    def between_days(self, first: int, last: int) -> int:
        """The working days from local day `first` through `last` (proleptic ordinals)."""
        if first > last:
            return 0
        low, high = dt.date.fromordinal(first - 1), dt.date.fromordinal(last)
        if not (self._covers(low) and self._covers(high)):
            self._cover(low, high)
        start = self._start.toordinal()
        return self._sums[last - start] - self._sums[first - 1 - start]

    def _covers(self, day: dt.date) -> bool:
        return 0 <= (day - self._start).days < len(self._sums) if self._sums else False

    def _cover(self, low: dt.date, high: dt.date) -> None:
        """Rebuild the table over [low, high] and the days asked for before, with a margin
        either side that stops at the calendar's first and last day."""
        if low < self.LOWEST or high > self.HIGHEST:
            day = low + dt.timedelta(days=1) if low < self.LOWEST else high
            raise OutsideCalendar(f"{day.isoformat()} is outside the working-day calendar ({FIRST_YEAR}–{LAST_YEAR})")
        if self._asked is not None:
            low, high = min(low, self._asked[0]), max(high, self._asked[1])
        self._asked = (low, high)
        start = max(low - self.MARGIN, self.LOWEST)
        end = min(high, self.HIGHEST - self.MARGIN) + self.MARGIN
        sums, count, d = [0], 0, start + dt.timedelta(days=1)
        if start > self.LOWEST:
            sums[0] = count = int(self.calendar.is_working_day(start))
        while d <= end:
            count += self.calendar.is_working_day(d)
            sums.append(count)
            d += dt.timedelta(days=1)
        self._start, self._sums = start, sums
        self.first, self.sums = start.toordinal(), sums


def stays(moves: Iterable[Move], now: dt.datetime,
          is_final: Callable[[str], bool]) -> Iterator[tuple[str, float, bool]]:
    """(state, days, still open) for each stay of one case, from its moves in seq order.

    A simulation clock can be set back, so a stay is never shorter than nothing.
    """
    for state, start, end, _ in spans(moves):
        if end is not None:
            yield state, max((end - start).total_seconds(), 0.0) / DAY, False
        elif not is_final(state):
            yield state, max((now - start).total_seconds(), 0.0) / DAY, True


Span = tuple[str, dt.datetime, "dt.datetime | None", "tuple[tuple[dt.datetime, dt.datetime | None], ...]"]
"""One stay: (state, when it began, when it ended or None while it lasts, the times its clock
stood still within it — a stop still running has no end). A plain tuple: one is made for
every stay the report reads."""


_NO_STOPS: tuple[tuple[dt.datetime, dt.datetime | None], ...] = ()


def spans(moves: Iterable[Any]) -> list[Any]:
    """The stays of one case from its moves in seq order (the last one may be a final state),
    as `Span`s, with the moves' instants as they come: datetimes from `Move`s, µs from
    `RawMove`s (the report's own stream). Run for every case the report reads, so it builds
    plain tuples and shares the empty tuple of stops that nearly every stay has."""
    out: list[Span] = []
    state: str | None = None
    since: dt.datetime | None = None
    stops: list[tuple[dt.datetime, dt.datetime | None]] | None = None
    stopped: dt.datetime | None = None
    for _, at, action, _, to_state in moves:
        if action == _TRANSITION:
            if state is not None and since is not None:
                if stopped is not None:
                    stops = [*(stops or ()), (stopped, at)]
                out.append((state, since, at, tuple(stops) if stops else _NO_STOPS))
        elif action == _SUSPENDED:
            if stopped is None:
                stopped = at
            continue
        elif action == _RESUMED:
            if stopped is not None:
                stops = [*(stops or ()), (stopped, at)]
                stopped = None
            continue
        elif action != _CREATED:
            continue
        state, since, stops, stopped = to_state, at, None, None
    if state is not None and since is not None:
        if stopped is not None:
            stops = [*(stops or ()), (stopped, None)]
        out.append((state, since, None, tuple(stops) if stops else _NO_STOPS))
    return out


_Case = TypeVar("_Case", bound=Sequence[Any])
_NO_MOVES: tuple[Any, ...] = ()


def with_moves(cases: Iterable[_Case], moves: Iterable[Any]) -> Iterator[tuple[_Case, Sequence[Any]]]:
    """Each case (a `CaseFacts`, or the plain tuple of its fields) with its moves; both
    streams come in case-id order. Moves of cases that the case stream does not hold are
    skipped."""
    # Grouped by case id in C: this runs for every state change the report reads. A case
    # without moves (most of them, closed) shares one empty tuple.
    groups = groupby(moves, key=_CASE_ID)
    case_id, group = next(groups, _NO_GROUP)
    for case in cases:
        wanted = case[0]
        while case_id is not None and case_id < wanted:
            case_id, group = next(groups, _NO_GROUP)
        if case_id == wanted:
            yield case, list(group)
            case_id, group = next(groups, _NO_GROUP)
        else:
            yield case, _NO_MOVES

_CASE_ID = itemgetter(0)
_NO_GROUP: tuple[None, Iterator[Move]] = (None, iter(()))

MET, LATE, OPEN_PAST = 0, 1, 2
"""How a term ended: the index of its count in a clock's list [met, late, open past]."""


def _share(clock: list[int]) -> ClockShare:
    return ClockShare(*clock)


def _clocks() -> dict[str, list[int]]:
    return {name: [0, 0, 0] for name in CLOCKS}


def _spread(counted: Spread | None, values: Iterable[float]) -> Spread:
    """The spread the database worked out (`ReportBuilder.closed_grouped`), or that of the values."""
    return counted if counted is not None else Spread.of(values)


class _Results:
    __slots__ = ("closed", "firsts", "lead", "lead_spread", "legal", "measures", "outcomes")

    def __init__(self) -> None:
        self.closed = 0
        self.lead_spread: Spread | None = None
        """The lead times' spread as the database worked it out (`ReportBuilder.closed_grouped`)."""
        self.firsts: dict[str, tuple[int, int]] | None = None
        """Per measure, (first case with a value, the measure's place in its definition): the
        order the streamed pass meets them in, when the database summed them."""
        self.outcomes: Counter[str] = Counter()
        self.measures: dict[str, dict[str, Decimal]] = {}
        self.lead = array("d")
        self.legal = [0, 0, 0]

    def add(self, outcome: str, values: Iterable[tuple[str, Decimal]], days: float | None = None) -> None:
        self.closed += 1
        self.outcomes[outcome] += 1
        if days is not None:
            self.lead.append(days)
        for name, value in values:
            per = self.measures.setdefault(name, {})
            per[outcome] = per.get(outcome, Decimal(0)) + value

    def lead_figures(self) -> Spread:
        return _spread(self.lead_spread, self.lead)

    def results(self) -> Results:
        if self.firsts is not None:  # in the order the cases would have brought them
            firsts = self.firsts
            self.measures = {name: self.measures[name] for name in sorted(self.measures, key=firsts.__getitem__)}
        order = {o: i for i, o in enumerate((*OUTCOMES, NO_OUTCOME))}
        outcomes = dict(sorted(self.outcomes.items(), key=lambda kv: order.get(kv[0], len(order))))
        measures = {name: dict(sorted(per.items(), key=lambda kv: order.get(kv[0], len(order))))
                    for name, per in self.measures.items()}
        return Results(self.closed, outcomes, measures)


class _Tally:
    __slots__ = ("clocks", "closed", "escalations", "lead", "lead_spread", "lead_working", "open", "overdue",
                 "received", "results", "working_spread")

    def __init__(self) -> None:
        self.received = self.open = self.closed = self.overdue = 0
        self.lead = array("d")
        self.lead_working = array("q")
        self.lead_spread: Spread | None = None
        self.working_spread: Spread | None = None
        """Both spreads as the database worked them out (`ReportBuilder.closed_grouped`)."""
        self.escalations: Counter[str] = Counter()
        self.clocks = _clocks()
        self.results = _Results()

    def figures(self, key: str | None, name: str) -> GroupFigures:
        return GroupFigures(
            key=key, name=name, received=self.received, open=self.open, closed=self.closed,
            lead_days=_spread(self.lead_spread, self.lead),
            lead_working_days=_spread(self.working_spread, self.lead_working),
            clocks={n: _share(c) for n, c in self.clocks.items()}, overdue=self.overdue,
            escalations=dict(sorted(self.escalations.items(), key=lambda kv: rung_order(kv[0]))),
            results=self.results.results(),
        )


Window = Callable[..., list[float]]
"""`engine.store.reports.stay_window` of the report's connection and period: (offset, limit,
and which stays) → their days, shortest first."""


def _window_of(held: int, stored: int) -> tuple[int, int]:
    """The offset and limit `_median_of_parts` reads of `stored` sorted values beside `held`."""
    rank = rank_of(held + stored, 50)
    skip = max(0, rank - held - 1)
    return skip, rank - skip


def _answered(found: list[float], asked: tuple[int, int], offset: int, limit: int) -> list[float]:
    """A window looked up beforehand (`ReportBuilder.answer_windows`), for the same question."""
    assert (offset, limit) == asked
    return found


def _median_of_parts(parts: Sequence[array[float]], stored: int = 0,
                     window: Callable[[int, int], list[float]] | None = None) -> tuple[int, float | None]:
    """How many values and their median (nearest rank), of sorted arrays taken together: the
    values are kept once, per state of each definition, and never copied into one list. With
    `stored` values more on the database, sorted there, `window(offset, limit)` reads the few
    of them around the rank: of the values taken together up to the rank, at least `rank`
    less as many as the arrays hold are stored ones (the smallest of those), and all but the
    last of them come before the rank."""
    count = sum(map(len, parts))
    held = count
    count += stored
    if not count:
        return 0, None
    rank = rank_of(count, 50)
    filled = [part for part in parts if part]
    if stored:
        assert window is not None
        skip, limit = _window_of(held, stored)
        found = window(skip, limit)
        if len(found) != min(limit, stored - skip):
            raise CountsDrifted("the stay counts (stay_tally) say more ended stays than the stay rows (case_stay)"
                                " hold: 'loket audit verify' names the group, 'loket db repair-stays' counts"
                                " them again")
        filled.append(array("d", found))
        rank -= skip
    if len(filled) == 1:
        return count, filled[0][rank - 1]
    return count, next(islice(heapq.merge(*filled), rank - 1, None))


class _UnitTally:
    __slots__ = ("deadlines", "escalations", "held", "open", "open_stays", "overdue", "parts", "stored", "window")

    def __init__(self) -> None:
        self.open = self.overdue = self.open_stays = 0
        self.stored = 0
        """Ended stays counted on the database (`ReportBuilder.add_stored_stays`)."""
        self.window: Callable[[int, int], list[float]] | None = None
        self.held = 0
        """µs, summed exactly: a sum of floats would depend on the order of the stays."""
        self.parts: list[array[float]] = []
        """The days of each stay in the states the unit owns, one array per state of each
        definition (`_StateInfo.days`), shared with the states' tallies."""
        self.deadlines = [0, 0, 0]
        self.escalations: Counter[str] = Counter()

    def figures(self, key: str | None, name: str) -> UnitFigures:
        count, median = _median_of_parts(self.parts, self.stored, self.window)
        return UnitFigures(
            key=key, name=name, open=self.open, overdue=self.overdue, stays=count,
            open_stays=self.open_stays, held_days=self.held / DAY_US, median_stay_days=median,
            state_deadlines=_share(self.deadlines),
            escalations=dict(sorted(self.escalations.items(), key=lambda kv: rung_order(kv[0]))),
        )


class _StayTally:
    __slots__ = ("open", "parts", "stored", "total", "window")

    def __init__(self) -> None:
        self.stored = 0
        """Ended stays counted on the database (`ReportBuilder.add_stored_stays`)."""
        self.window: Callable[[int, int], list[float]] | None = None
        self.parts: list[array[float]] = []
        """The days of each stay, one array per definition holding the state."""
        self.open = 0
        self.total = 0
        """µs, summed exactly (as `_UnitTally.held`)."""


class _StateInfo:
    """One state of one definition, as each stay in it needs it: where its time is counted
    (None: not counted, for a final state or another unit's under --unit), its deadline (None
    for none, or a paused state), and that deadline's end per local day a stay can begin on."""

    __slots__ = ("days", "deadline", "dues", "exact", "held", "owner", "tally")

    def __init__(self, spec: StateSpec, tally: _StayTally | None, held: _UnitTally | None,
                 deadline: Duration | None) -> None:
        self.owner = spec.owner
        self.tally = tally
        self.held = held
        self.days: array[float] = array("d")
        """The days of each counted stay in this state of this definition: the medians of the
        state and of its unit are read from these arrays, kept once."""
        if tally is not None and held is not None:
            tally.parts.append(self.days)
            held.parts.append(self.days)
        self.deadline = deadline
        self.exact = deadline is not None and deadline.unit == "hours"
        self.dues: dict[int, float] = {}


def _summary(rt: RequestType, data: Mapping[str, Any], language: str) -> tuple[tuple[str, str], ...]:
    return tuple((label, value) for label, value in summary_of(rt, data, language))


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).replace(",", "."))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _lead_days(micros: int | None) -> float | None:
    """A lead time in µs as the days the streamed pass makes of it (never less than none)."""
    if micros is None:
        return None
    seconds = micros / 1_000_000
    return (seconds if seconds > 0.0 else 0.0) / DAY


def _spread_of_counts(counts: Mapping[int, int]) -> Spread:
    """`Spread.of` the values `counts` holds, each as often as it says."""
    total = sum(counts.values())
    if not total:
        return Spread(0, None, None)
    ranks = {percent: rank_of(total, percent) for percent in (50, 90)}
    found: dict[int, float] = {}
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        for percent, rank in ranks.items():
            if percent not in found and seen >= rank:
                found[percent] = value
    return Spread(total, found[50], found[90])


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FAST_US = 2**32 * 1_000_000
"""Instants (µs) from 1970 up to here (2106) take the integer way to their local day: below
it `int(µs / 10**6)` equals `µs // 10**6` (a float there is finer than a µs)."""

_Plan = tuple[RequestType, dict[str, "_StateInfo"], dict[str, str], "str | None", tuple[str, ...]]
"""(definition, its states' `_StateInfo`, each state's outcome, area field, measures)."""


def _micros(moment: dt.datetime) -> int:
    """An aware instant as µs since the epoch, exactly."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def _instant(micros: int) -> dt.datetime:
    """µs since the epoch as the aware UTC datetime the database holds."""
    return _EPOCH + dt.timedelta(microseconds=micros)


def _span_instants(state: str, start: int, end: int | None, stops: tuple[tuple[int, int | None], ...]) -> Span:
    """A stay read in µs (`RawMove`) as the `Span` of datetimes the calendar works with."""
    return (state, _instant(start), None if end is None else _instant(end),
            tuple((_instant(a), None if b is None else _instant(b)) for a, b in stops))


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
        stored_stays: bool = False,
        data_of: Callable[[Sequence[int]], Mapping[int, Any]] | None = None,
    ) -> None:
        self.now = now
        self.data_of = data_of
        """The field values of closed cases by id, for the summaries of the recently realised
        ones whose values the case stream left out (`engine.store.reports.case_rows`'
        `data_for`): read for the few the report keeps, when it is finished."""
        self.stored_stays = stored_stays and (filters is None or filters.unit is None)
        """The ended stays come from `add_stored_stays` (grouped rows of `case_stay`): a case's
        moves count only for its stay now. Not under --unit, which must see every case's
        moves to tell whether the unit ever held it."""
        self.org = org
        self.calendar = calendar
        self.filters = filters or Filters()
        self.latest = {rt.key: rt for rt in latest if self.filters.type_key in (None, rt.key)}
        self.type_of = type_of
        self.working_days = WorkingDayCounter(calendar)
        self.admin_events = admin_events or {}
        self.dekking = DekkingTally(org, self.filters, self.working_days.between, now)
        self._types: dict[str, _Tally] = {key: _Tally() for key in self.latest}
        units = org.units if self.filters.unit is None else [self.filters.unit]
        self._units: dict[str | None, _UnitTally] = {unit: _UnitTally() for unit in units}
        self._total = _Tally()
        self._areas: dict[tuple[str, str | None], _Results] = {}
        self._stays: dict[tuple[str, str], _StayTally] = {}
        self._stay_versions: dict[tuple[str, str], int] = {}
        self._overdue: Counter[tuple[str | None, str]] = Counter()
        self._by_day: Counter[tuple[int, str]] = Counter()
        """(local day's ordinal, rung) → escalations fired that day."""
        self._weeks: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._longest: list[tuple[float, int, CaseFacts]] = []
        self._recent: list[tuple[int, int, Realised, RequestType | None]] = []
        """(closed, id, what the report shows, and the definition when its summary is still to
        be read: see `data_of`)."""
        self._dues: dict[tuple[int, int], dt.datetime] = {}
        """(local day's ordinal, id of the deadline) → the deadline of a stay begun that day."""
        self._offsets: dict[int, int | None] = {}
        """UTC day number → the organisation's UTC offset in seconds all that day (None: it changes)."""
        self._dates: dict[int, dt.date] = {}
        self._zone = ZoneInfo(calendar.timezone)
        self._week_keys: dict[int, tuple[int, int]] = {}
        """Local day's ordinal → its ISO (year, week)."""
        self._week_lists: dict[int, list[int]] = {}
        """Local day's ordinal → the counts of its ISO week in `_weeks`."""
        self._plans: dict[tuple[str, int], _Plan] = {}
        """(type key, version) → what its cases need of the definition (`_plan`)."""
        self._since, self._until, self._unit_filter = self.filters.since, self.filters.until, self.filters.unit
        self._unfiltered = self._since is None and self._until is None
        self._now_ts = now.timestamp()
        self._now_us = _micros(now)
        self._since_us = _micros(self._since) if self._since is not None else -(2**63)
        self._until_us = _micros(self._until) if self._until is not None else 2**63
        self._since_ts = self._since.timestamp() if self._since is not None else -math.inf
        self._until_ts = self._until.timestamp() if self._until is not None else math.inf
        self._infos: dict[int, dict[str, _StateInfo]] = {}
        self._keep: list[RequestType] = []
        self.closed_grouped = False
        """The closed cases are counted on the database (`add_closed_results` and the other
        `add_closed_*`, PostgreSQL): the case stream brings the open ones, and the closed ones
        only for the bestuurlijke dekking."""

    # -- one case ---------------------------------------------------------------------------

    def add_case(self, case: CaseFacts, moves: Sequence[RawMove]) -> None:
        """One case with its moves in seq order (`add_cases` of one)."""
        self.add_cases(((case, moves),))

    def add_cases(self, pairs: Iterable[tuple[Sequence[Any], Sequence[RawMove]]]) -> None:
        """Each case with its moves in seq order (`with_moves` pairs the two streams): a
        `CaseFacts`, or the plain tuple of its fields as `engine.store.reports.case_rows`
        gives it (a `CaseFacts` is made only of an open case, which the report may show).

        Runs for every case the report reads, so it is written for speed: what every case
        needs of the builder is bound to locals once per call, a definition's lookups are made
        once per version (`_plan`) and a type's tallies once per type, the calendar work once
        per local day; the fields are unpacked once and a closed case counted inline. Only an
        instant in the last second of a local day, on a day the clocks change or outside
        1970–2106 takes the general way (`_working_between`, `_week_of_us`, `_ordinal_of`)."""
        plans, infos_of = self._plans, self._type_parts
        parts_of: dict[str, tuple[_Tally, list[int], list[int], list[int], Any, Any, _Results]] = {}
        unit = self._unit_filter
        since, until, now_us = self._since_us, self._until_us, self._now_us
        total = self._total
        total_state, total_service, total_legal = (total.clocks[name] for name in CLOCKS)
        total_lead, total_working = total.lead.append, total.lead_working.append
        total_results = total.results
        total_outcomes = total_results.outcomes
        stored, admin_events, grouped = self.stored_stays, self.admin_events, self.closed_grouped
        areas, recent, realised = self._areas, self._recent, REALISED
        offsets, week_lists, week_list = self._offsets, self._week_lists, self._week_list
        local_seconds, counter = self._local_seconds, self.working_days
        for case, moves in pairs:
            (case_id, _, key, version, state, owner, created, closed, _, service_due, case_due,
             suspended, _, data) = case
            if grouped and closed is not None:
                # Counted on the database (`add_closed_*`): streamed for the bestuurlijke dekking only.
                events = admin_events.get(case_id)
                if events:
                    self._add_dekking(events, moves, closed)
                continue
            plan = plans.get((key, version))
            if plan is None:
                plan = self._plan(key, version)
            rt, info, outcomes, area_field, measures = plan
            if unit is not None and owner != unit and not any(
                    m.to_state in info and info[m.to_state].owner == unit for m in moves):
                continue  # the unit never held it
            parts = parts_of.get(key)
            if parts is None:
                parts = parts_of[key] = infos_of(key)
            by_type, type_state, type_service, type_legal, type_lead, type_working, type_results = parts
            # The local wall clock of `created` as seconds since 1970-01-01, from the per-day
            # offset table (None on a day the clocks change, or outside 1970–2106).
            if 0 <= created < _FAST_US:
                seconds = created // 1_000_000
                shift = offsets.get(seconds // 86400)
                local_created = seconds + shift if shift is not None else local_seconds(seconds)
            else:
                local_created = None
            if since <= created < until:
                by_type.received += 1
                total.received += 1
                if local_created is not None:
                    ordinal = local_created // 86400 + _EPOCH_ORDINAL
                    weeks = week_lists.get(ordinal)
                    if weeks is None:
                        weeks = week_list(ordinal)
                else:
                    weeks = self._week_of_us(created)
                weeks[0] += 1
            if moves:
                stays_of = spans(moves)
                if stored:  # only the stay now: the ended ones are in `case_stay`
                    stays_of = stays_of[-1:] if closed is None and stays_of[-1][2] is None else []
                self._add_stays(stays_of, info, type_state, total_state)
            counted = closed is not None and since <= closed < until
            area = None
            if counted and area_field is not None and data is not None:
                value = data.get(area_field)
                area = None if value is None or value == "" else str(value)
            area_tally = None
            if counted:
                area_tally = areas.get((key, area))
                if area_tally is None:
                    area_tally = areas[(key, area)] = _Results()
            # The case-wide terms, each counted where it was decided in the period.
            if service_due is not None:
                if closed is not None:
                    if closed <= service_due:
                        kind, when = MET, closed
                    else:
                        kind, when = LATE, service_due
                elif service_due < now_us and not suspended:
                    kind, when = OPEN_PAST, service_due
                else:
                    kind = when = -1
                if kind >= 0 and since <= when < until:
                    type_service[kind] += 1
                    total_service[kind] += 1
            if case_due is not None:
                if closed is not None:
                    if closed <= case_due:
                        kind, when = MET, closed
                    else:
                        kind, when = LATE, case_due
                elif case_due < now_us and not suspended:
                    kind, when = OPEN_PAST, case_due
                else:
                    kind = when = -1
                if kind >= 0 and since <= when < until:
                    type_legal[kind] += 1
                    total_legal[kind] += 1
                    if area_tally is not None:
                        area_tally.legal[kind] += 1
            if admin_events:
                events = admin_events.get(case_id)
                if events:
                    self._add_dekking(events, moves, closed)
            if closed is None:
                if unit is None or owner == unit:
                    self._add_open(CaseFacts._make(case), by_type)
                continue
            if area_tally is None:
                continue  # closed outside the period
            # A case closed in the period: its lead times, results, area and week; and among
            # the recently realised ones, when it is. As `(closed - created).total_seconds()`
            # of the datetimes would give it:
            outcome = outcomes[state]
            days = (closed - created) / 1_000_000
            days = (days if days > 0.0 else 0.0) / DAY
            # The local days of both instants from the per-day offset table (as
            # `_working_between` and `_week_of_ts` have them), the working days between them
            # from the prefix sums.
            closed_day = -1
            if closed <= created:
                working = 0
            elif created >= 0 and closed < _FAST_US:
                b = closed // 1_000_000
                shift = offsets.get(b // 86400)
                local_b = b + shift if shift is not None else local_seconds(b)
                if (local_created is None or local_b is None
                        or local_created % 86400 >= 86399 or local_b % 86400 >= 86399):
                    working = self._working_between(created, closed)
                    if local_b is not None:
                        closed_day = local_b // 86400 + _EPOCH_ORDINAL
                else:
                    first, closed_day = local_created // 86400 + _EPOCH_ORDINAL, local_b // 86400 + _EPOCH_ORDINAL
                    low, high = first - 1 - counter.first, closed_day - 1 - counter.first
                    sums = counter.sums
                    if first >= closed_day:
                        working = 0
                    elif low >= 0 and high < len(sums):
                        working = sums[high] - sums[low]
                    else:
                        working = counter.between_days(first, closed_day - 1)
            else:
                working = self._working_between(created, closed)
            values = ([(name, value) for name in measures if (value := _decimal((data or {}).get(name))) is not None]
                      if measures else [])
            by_type.closed += 1
            total.closed += 1
            type_lead(days)
            total_lead(days)
            type_working(working)
            total_working(working)
            if values:
                type_results.add(outcome, values)
                total_results.add(outcome, values)
                area_tally.add(outcome, values, days)
            else:  # `_Results.add` without values, inline
                type_results.closed += 1
                type_results.outcomes[outcome] += 1
                total_results.closed += 1
                total_outcomes[outcome] += 1
                area_tally.closed += 1
                area_tally.outcomes[outcome] += 1
                area_tally.lead.append(days)
            if closed_day < 0:
                closed_day = self._ordinal_of(closed / 1_000_000)
            weeks = week_lists.get(closed_day)
            if weeks is None:
                weeks = week_list(closed_day)
            weeks[1] += 1
            if outcome in realised:
                if len(recent) >= RECENT:
                    # `(closed, case_id) <= recent[0][:2]`: not among the newest kept.
                    newest_closed, newest_id = recent[0][:2]
                    if closed < newest_closed or (closed == newest_closed and case_id <= newest_id):
                        continue
                later = data is None and self.data_of is not None
                item = (closed, case_id, Realised(
                    type_key=key, closed_on=self._date_of(closed_day), outcome=outcome, area=area,
                    summary=() if later else _summary(rt, data or {}, self.org.language),
                ), rt if later else None)
                if len(recent) < RECENT:
                    heapq.heappush(recent, item)
                else:
                    heapq.heapreplace(recent, item)

    def _add_dekking(self, events: Sequence[AdminEvent], moves: Sequence[RawMove], closed: int | None) -> None:
        """One case of the bestuurlijke dekking: its events with its moves and closing, as instants."""
        self.dekking.add_case(events, [Move(m[0], _instant(m[1]), m[2], m[3], m[4]) for m in moves],
                              None if closed is None else _instant(closed))

    def _type_parts(self, key: str) -> tuple[_Tally, list[int], list[int], list[int], Any, Any, _Results]:
        """A type's tally and what `add_cases` counts in it, looked up once per call."""
        tally = self._type(key)
        state, service, legal = (tally.clocks[name] for name in CLOCKS)
        return tally, state, service, legal, tally.lead.append, tally.lead_working.append, tally.results

    # -- the closed cases, counted on the database ---------------------------------------

    def window_asks(self) -> list[tuple[dict[str, Any], int, int]]:
        """The rank lookups `finish` will make of the ended stays on the database (per state
        and per unit: `Window`'s which stays, offset and limit), so that they can be made
        beforehand, side by side (`answer_windows`)."""
        asks = []
        for tally in self._window_tallies():
            held = sum(map(len, tally.parts))
            skip, limit = _window_of(held, tally.stored)
            assert isinstance(tally.window, partial)
            asks.append((dict(tally.window.keywords), skip, limit))
        return asks

    def answer_windows(self, answers: Sequence[list[float]]) -> None:
        """The answers to `window_asks`, in its order: `finish` reads them instead of asking."""
        for tally, found in zip(self._window_tallies(), answers, strict=True):
            tally.window = partial(_answered, found, _window_of(sum(map(len, tally.parts)), tally.stored))

    def _window_tallies(self) -> list[_StayTally | _UnitTally]:
        tallies: list[_StayTally | _UnitTally] = [*self._stays.values(), *self._units.values()]
        return [tally for tally in tallies if tally.stored and tally.window is not None]

    def plan_versions(self, seen: Iterable[tuple[str, int]]) -> None:
        """Look the definitions up in the order the cases' stream would first meet them (the
        order of their first case): a state's label where no newer version holds it, and the
        units of the states, come from the version met first."""
        for key, version in seen:
            if (key, version) not in self._plans:
                self._plan(key, version)

    def working_prefix(self, first: dt.datetime, last: dt.datetime) -> tuple[int, list[int]]:
        """The working-day prefix sums covering every local day from `first` through `last`,
        and the local day (days since 1970-01-01) of their first: what
        `engine.store.closed.working_counts` counts from."""
        self.working_days.between_days(self._ordinal(first), self._ordinal(last))
        return self.working_days.first - _EPOCH_ORDINAL, list(self.working_days.sums)

    def add_closed_results(self, rows: Iterable[tuple[str, int, str, str | None, int | None, int,
                                                      Mapping[str, tuple[Decimal, int]]]],
                           area_of: Callable[[str | None], str | None]) -> None:
        """The cases closed in the period, grouped (`engine.store.closed.closed_results`):
        closed per type, outcome and area, the legal term per area, the measures' totals."""
        total = self._total
        for key, version, state, area_text, legal, count, sums in rows:
            plan = self._plans.get((key, version)) or self._plan(key, version)
            outcome = plan[2][state]
            area = area_of(area_text)
            by_type = self._type(key)
            area_tally = self._areas.get((key, area))
            if area_tally is None:
                area_tally = self._areas[(key, area)] = _Results()
            by_type.closed += count
            total.closed += count
            if legal is not None:
                area_tally.legal[legal] += count
            for results in (by_type.results, total.results, area_tally):
                results.closed += count
                results.outcomes[outcome] += count
                if results.firsts is None:
                    results.firsts = {}
                for name, (amount, first) in sums.items():
                    per = results.measures.setdefault(name, {})
                    per[outcome] = per.get(outcome, Decimal(0)) + amount
                    place = (first, plan[4].index(name))
                    known = results.firsts.get(name)
                    if known is None or place < known:
                        results.firsts[name] = place

    def add_closed_clocks(self, rows: Iterable[tuple[str, int | None, int | None, int]]) -> None:
        """The closed cases' service norm and legal term per type (`engine.store.closed.clock_counts`)."""
        total_service, total_legal = self._total.clocks["service_norm"], self._total.clocks["legal_term"]
        for key, service, legal, count in rows:
            clocks = self._type(key).clocks
            if service is not None:
                clocks["service_norm"][service] += count
                total_service[service] += count
            if legal is not None:
                clocks["legal_term"][legal] += count
                total_legal[legal] += count

    def add_closed_days(self, received: Iterable[tuple[str, int, int]], closed: Iterable[tuple[int, int]]) -> None:
        """The closed cases received in the period per type and local day, and those closed in
        it per local day (days since 1970-01-01): the weekly trend."""
        for key, day, count in received:
            self._type(key).received += count
            self._total.received += count
            ordinal = day + _EPOCH_ORDINAL
            (self._week_lists.get(ordinal) or self._week_list(ordinal))[0] += count
        for day, count in closed:
            ordinal = day + _EPOCH_ORDINAL
            (self._week_lists.get(ordinal) or self._week_list(ordinal))[1] += count

    def add_closed_spreads(self, leads: Iterable[tuple[str | None, str | None, bool, int, int | None, int | None]],
                           working: Iterable[tuple[str, int, int]], edges: Iterable[tuple[str, int, int]],
                           area_of: Callable[[str | None], str | None]) -> None:
        """The lead times' spreads of the cases closed in the period: in calendar days from
        the database's ranks (`engine.store.closed.lead_spreads`: µs, all together, per type,
        per type and area), in working days from their counts per type (`working_counts`),
        with those of the cases it left to the calendar (`edges`) counted here."""
        for key, area_text, per_area, count, median, p90 in leads:
            spread = Spread(count, _lead_days(median), _lead_days(p90))
            if key is None:
                self._total.lead_spread = spread
            elif not per_area:
                self._type(key).lead_spread = spread
            else:
                found = self._areas.get((key, area_of(area_text)))
                if found is not None:
                    found.lead_spread = spread
        counts: dict[str, Counter[int]] = defaultdict(Counter)
        for key, days, count in working:
            counts[key][days] += count
        for key, created, closed in edges:
            counts[key][self._working_between(created, closed)] += 1
        everything: Counter[int] = Counter()
        for key, per_type in counts.items():
            self._type(key).working_spread = _spread_of_counts(per_type)
            everything.update(per_type)
        self._total.working_spread = _spread_of_counts(everything)

    def add_closed_realised(self, rows: Iterable[tuple[int, str, int, str, int, Any]]) -> None:
        """The cases closed last in the period in a realised final state (`engine.store.closed.recent_realised`)."""
        for case_id, key, version, state, closed, data in rows:
            rt, _, outcomes, area_field, _ = self._plans.get((key, version)) or self._plan(key, version)
            area = None
            if area_field is not None and data is not None:
                value = data.get(area_field)
                area = None if value is None or value == "" else str(value)
            item = (closed, case_id, Realised(
                type_key=key, closed_on=self._date_of(self._ordinal_of(closed / 1_000_000)),
                outcome=outcomes[state], area=area, summary=_summary(rt, data or {}, self.org.language)), None)
            if len(self._recent) < RECENT:
                heapq.heappush(self._recent, item)
            elif item[:2] > self._recent[0][:2]:
                heapq.heapreplace(self._recent, item)

    def _plan(self, key: str, version: int) -> _Plan:
        """What every case of this version of a definition needs of it, looked up once."""
        rt = self.type_of(key, version)
        info = self._infos.get(id(rt))
        if info is None:
            info = self._state_infos(rt, version)
        plan = self._plans[(key, version)] = (
            rt, info, {name: spec.outcome or NO_OUTCOME for name, spec in rt.states.items()},
            rt.area, tuple(rt.measures))
        return plan

    def add_stored_stays(self, groups: Iterable[tuple[str, str, str | None, int, int]],
                         deadlines: Iterable[tuple[str, str | None, bool, int]],
                         missed: Iterable[tuple[dt.date, int]], window: Window,
                         version_of: Callable[[str, str], int]) -> None:
        """The ended stays, read grouped from `case_stay` after every case was added: how many
        and their µs together per type, state and unit (`engine.store.reports.stay_groups`); the
        deadlines counted per type, unit and met; the missed ones per local day their deadline
        passed. Their medians are ranks `window` looks up when the report is finished (per
        state, per unit), together with the stays now."""
        for key, state, unit, count, micros in groups:
            tally = self._stays.get((key, state))
            if tally is None:  # a state no case's definition holds now
                tally = self._stays[(key, state)] = _StayTally()
                self._stay_versions[(key, state)] = version_of(key, state)
            held = self._unit(unit)
            if not tally.stored:
                tally.window = partial(window, type_key=key, state=state)
            if not held.stored:
                held.window = partial(window, unit=(unit,))
            tally.stored += count
            held.stored += count
            tally.total += micros
            held.held += micros
        for key, unit, met, count in deadlines:
            kind = MET if met else LATE
            self._type(key).clocks["state_deadlines"][kind] += count
            self._total.clocks["state_deadlines"][kind] += count
            self._unit(unit).deadlines[kind] += count
        for day, count in missed:
            ordinal = day.toordinal()
            week = self._week_keys.get(ordinal)
            if week is None:
                year, number, _ = day.isocalendar()
                week = self._week_keys[ordinal] = (year, number)
            self._weeks[week][2] += count

    def _state_infos(self, rt: RequestType, version: int) -> dict[str, _StateInfo]:
        """What a stay in each state of this definition needs, looked up once per version."""
        infos = {}
        for name, spec in rt.states.items():
            key = (rt.key, name)
            tally = self._stays.get(key)
            if tally is None and not spec.final:
                tally = self._stays[key] = _StayTally()
                self._stay_versions[key] = version
            counted = not spec.final and (self._unit_filter is None or spec.owner == self._unit_filter)
            infos[name] = _StateInfo(
                spec, tally if counted else None, self._unit(spec.owner) if counted else None,
                None if spec.paused else spec.deadline)
        self._infos[id(rt)] = infos
        self._keep.append(rt)  # the id stays this definition's while the builder lives
        return infos

    def _add_stays(self, stays_of: list[Any], info: dict[str, _StateInfo],
                   type_deadlines: list[int], total_deadlines: list[int]) -> None:
        """Each stay: its time for the state and the unit that owns it, and its deadline.

        Runs for every stay the report reads, so it works in POSIX seconds and looks up each
        deadline once per local day it can start on."""
        now, now_us = self._now_ts, self._now_us
        since, until = self._since_ts, self._until_ts
        offsets = self._offsets
        for state, start, end, stops in stays_of:
            found = info[state]
            tally = found.tally
            if tally is None:
                continue  # a final state, or another unit's under --unit
            held = found.held
            assert held is not None
            # Instants in µs since the epoch; divided, the same floats as `datetime.timestamp()`.
            begun = start / 1_000_000
            left = end / 1_000_000 if end is not None else now
            if since <= left < until:
                days = left - begun
                days = days / DAY if days > 0 else 0.0
                found.days.append(days)
                held_us = (end if end is not None else now_us) - start
                if held_us > 0:
                    tally.total += held_us
                    held.held += held_us
                if end is None:
                    tally.open += 1
                    held.open_stays += 1
            deadline = found.deadline
            if deadline is None:
                continue
            if found.exact or stops:
                moved = self._stay_due(deadline, _span_instants(state, start, end, stops))
                if moved is None:
                    continue  # its clock stands still now: not decided yet
                due = moved.timestamp()
            else:
                # Any term but hours ends at the end of a day counted from the day it began.
                seconds = int(begun)
                offset = offsets.get(seconds // 86400)
                ordinal = ((seconds + offset) // 86400 + _EPOCH_ORDINAL if offset is not None
                           else self._ordinal_of(begun))
                cached = found.dues.get(ordinal)
                if cached is None:
                    cached = found.dues[ordinal] = self.calendar.due(_instant(start), deadline).timestamp()
                due = cached
            if end is not None:
                kind, when = (MET, left) if left <= due else (LATE, due)
            elif due < now:
                kind, when = OPEN_PAST, due
            else:
                continue
            if not since <= when < until:
                continue
            type_deadlines[kind] += 1
            total_deadlines[kind] += 1
            held.deadlines[kind] += 1
            if kind != MET:
                self._week_of_ts(due)[2] += 1

    def _within_us(self, moment: int) -> bool:
        """`_within` of an instant in µs since the epoch."""
        return self._since_us <= moment < self._until_us

    def _working_between(self, a: int, b: int) -> int:
        """`WorkingDayCounter.between` of two instants in µs since the epoch: the local days
        from the per-day offset table; only an instant in the last second of its local day,
        or on a day whose offset changes, is handed over as a datetime."""
        if b <= a:
            return 0
        local = []
        for moment in (a, b):
            seconds = moment // 1_000_000
            utc_day = seconds // 86400
            offset = self._offsets.get(utc_day, -1)
            if offset == -1:
                offset = self._offsets[utc_day] = self._offset_of(utc_day)
            if offset is None or (seconds + offset) % 86400 >= 86399:
                return self.working_days.between(_instant(a), _instant(b))
            local.append((seconds + offset) // 86400 + _EPOCH_ORDINAL)
        return self.working_days.between_days(local[0], local[1] - 1)

    def _local_seconds(self, seconds: int) -> int | None:
        """POSIX seconds plus the organisation's UTC offset (the local wall clock as seconds
        since 1970-01-01), when that offset holds all the UTC day; None on a day it changes."""
        utc_day = seconds // 86400
        offset = self._offsets.get(utc_day, -1)
        if offset == -1:
            offset = self._offsets[utc_day] = self._offset_of(utc_day)
        return None if offset is None else seconds + offset

    def _ordinal(self, moment: dt.datetime) -> int:
        return self._ordinal_of(moment.timestamp())

    def _ordinal_of(self, timestamp: float) -> int:
        """The proleptic ordinal of an instant's local date (`date.toordinal()`), the way the
        calendar's `local_date` has it, without a timezone conversion per call: the offset is
        looked up once per UTC day, and only on a day the offset changes is each instant
        converted."""
        seconds = int(timestamp // 1)
        utc_day = seconds // 86400
        offset = self._offsets.get(utc_day, -1)
        if offset == -1:
            offset = self._offsets[utc_day] = self._offset_of(utc_day)
        if offset is None:
            return self.calendar.local_date(dt.datetime.fromtimestamp(timestamp, dt.UTC)).toordinal()
        return (seconds + offset) // 86400 + _EPOCH_ORDINAL

    def _offset_of(self, utc_day: int) -> int | None:
        zone = self._zone
        first = dt.datetime.fromtimestamp(utc_day * 86400, dt.UTC)
        last = first + dt.timedelta(seconds=86399)
        before, after = first.astimezone(zone).utcoffset(), last.astimezone(zone).utcoffset()
        if before is None or before != after:
            return None
        return int(before.total_seconds())

    def _local_day(self, moment: dt.datetime) -> dt.date:
        return self._date_of(self._ordinal(moment))

    def _date_of(self, ordinal: int) -> dt.date:
        day = self._dates.get(ordinal)
        if day is None:
            day = self._dates[ordinal] = dt.date.fromordinal(ordinal)
        return day

    def _stay_due(self, deadline: Duration, stay: Span) -> dt.datetime | None:
        """The stay's deadline, moved by the suspensions within it (as the engine moves it);
        None while its clock stands still."""
        cal = self.calendar
        _, begun, _, stops = stay
        if deadline.unit == "hours":
            due = cal.due(begun, deadline)
        else:
            # Any term but hours ends at the end of a day counted from the day it started.
            key = (self._ordinal(begun), id(deadline))
            known = self._dues.get(key)
            if known is None:
                known = self._dues[key] = cal.due(begun, deadline)
            due = known
        for start, end in stops:
            if end is None:
                return None
            due = cal.shift(due, start, end, exact=deadline.unit == "hours")
        return due

    def _area_of(self, rt: RequestType, case: CaseFacts) -> str | None:
        area = rt.area
        if area is None or case.data is None:
            return None
        value = case.data.get(area)
        return None if value is None or value == "" else str(value)

    def _week_of_ts(self, timestamp: float) -> list[int]:
        seconds = int(timestamp)
        offset = self._offsets.get(seconds // 86400)
        ordinal = ((seconds + offset) // 86400 + _EPOCH_ORDINAL if offset is not None
                   else self._ordinal_of(timestamp))
        weeks = self._week_lists.get(ordinal)
        return weeks if weeks is not None else self._week_list(ordinal)

    def _week_of_us(self, moment: int) -> list[int]:
        """`_week_of_ts` of an instant in µs since the epoch, without the float."""
        if not 0 <= moment < _FAST_US:
            return self._week_of_ts(moment / 1_000_000)
        seconds = moment // 1_000_000
        offset = self._offsets.get(seconds // 86400)
        ordinal = ((seconds + offset) // 86400 + _EPOCH_ORDINAL if offset is not None
                   else self._ordinal_of(moment / 1_000_000))
        weeks = self._week_lists.get(ordinal)
        return weeks if weeks is not None else self._week_list(ordinal)

    def _week_list(self, ordinal: int) -> list[int]:
        """The counts [received, closed, overdue] of the ISO week holding this local day."""
        key = self._week_keys.get(ordinal)
        if key is None:
            year, week, _ = dt.date.fromordinal(ordinal).isocalendar()
            key = self._week_keys[ordinal] = (year, week)
        weeks = self._week_lists[ordinal] = self._weeks[key]
        return weeks

    def _add_open(self, case: CaseFacts, by_type: _Tally) -> None:
        for tally in (by_type, self._total):
            tally.open += 1
            tally.overdue += case.overdue
        held = self._unit(case.owner)
        held.open += 1
        held.overdue += case.overdue
        if case.overdue:
            self._overdue[(case.owner, case.type_key)] += 1
        entered = case.state_entered_at
        assert entered is not None  # an open case's
        # A bounded heap whose top is the newest of the kept: it makes way for an older one.
        item = (-(entered / 1_000_000), -case.id, case)
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
        if self._unit_filter is not None and escalation.unit != self._unit_filter:
            return
        rung = escalation.rung
        self._type(escalation.type_key).escalations[rung] += 1
        self._unit(escalation.unit).escalations[rung] += 1
        self._total.escalations[rung] += 1
        self._by_day[(self._ordinal_of(escalation.fired_at / 1_000_000), rung)] += 1

    def zone_offsets(self, first: dt.datetime | None, last: dt.datetime | None) -> list[tuple[dt.datetime | None, int]]:
        """The organisation's UTC offset (seconds) from each instant on, between `first` and
        `last`: the first from the beginning (None), then one per change of the clocks, found
        to the second. What `engine.store.reports.escalation_days` tells local days by."""
        zone = self._zone

        def offset(moment: dt.datetime) -> int:
            found = moment.astimezone(zone).utcoffset()
            return int(found.total_seconds()) if found is not None else 0

        if first is None or last is None:
            return [(None, offset(self.now))]
        out: list[tuple[dt.datetime | None, int]] = [(None, offset(first))]
        day = first.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= last:
            following = day + dt.timedelta(days=1)
            if offset(following) != out[-1][1]:
                low, high = day, following  # offset(low) is the old one, offset(high) the new
                while (high - low) > dt.timedelta(seconds=1):
                    middle = low + (high - low) / 2
                    middle = middle.replace(microsecond=0)
                    if middle <= low:
                        break
                    if offset(middle) == out[-1][1]:
                        low = middle
                    else:
                        high = middle
                out.append((high, offset(following)))
            day = following
        return out

    def add_escalation_counts(self, counts: Iterable[tuple[str, str | None, str, int]],
                              days: Iterable[tuple[int, str, int]]) -> None:
        """The escalations counted on the database (not under --unit): per type, unit and rung
        (`engine.store.reports.escalation_counts`), and per local day and rung (days since
        1970-01-01, `escalation_days`) — what `add_escalation` counts one by one."""
        for key, unit, rung, count in counts:
            self._type(key).escalations[rung] += count
            self._unit(unit).escalations[rung] += count
            self._total.escalations[rung] += count
        for day, rung, count in days:
            self._by_day[(day + _EPOCH_ORDINAL, rung)] += count

    # -- the report -------------------------------------------------------------------------

    def finish(self, failed: Sequence[FailedEmail] = (), failed_count: int = 0) -> Report:
        for infos in self._infos.values():
            for found in infos.values():
                if len(found.days) > 1:  # sorted in place, one array at a time
                    found.days[:] = array("d", sorted(found.days))
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
                (self._date_of(day), rung, n) for (day, rung), n in
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
            realised=self._realised(),
            measure_labels={key: {m: rt.fields[m].label or m for m in rt.measures} for key, rt in self.latest.items()},
            area_labels={key: rt.fields[rt.area].label or rt.area for key, rt in self.latest.items()
                         if rt.area is not None},
        )

    def _realised(self) -> list[Realised]:
        kept = sorted(self._recent, key=lambda item: item[:2], reverse=True)
        later = [case_id for _, case_id, _, rt in kept if rt is not None]
        values = self.data_of(later) if later and self.data_of is not None else {}
        language = self.org.language
        return [r if rt is None else dataclasses.replace(r, summary=_summary(rt, values.get(case_id) or {}, language))
                for _, case_id, r, rt in kept]

    def _area_figures(self) -> list[AreaFigures]:
        rank = {key: i for i, key in enumerate(self._types)}
        keys = sorted(self._areas, key=lambda k: (rank.get(k[0], len(rank)), k[1] is None, k[1] or ""))
        out = []
        for key, area in keys:
            tally = self._areas[(key, area)]
            out.append(AreaFigures(type_key=key, area=area, results=tally.results(),
                                   lead_days=tally.lead_figures(), legal_term=_share(tally.legal)))
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
            count, median = _median_of_parts(stay.parts, stay.stored, stay.window)
            if not count:
                continue  # a state no stay was counted in
            spec = self._state_spec(key, state, self._stay_versions[(key, state)])
            out.append(StateFigures(
                type_key=key, state=state, label=spec.label, unit=spec.owner,
                unit_name=self.unit_name(spec.owner), stays=count, open_stays=stay.open,
                median_days=median, mean_days=stay.total / DAY_US / count,
                total_days=stay.total / DAY_US,
            ))
        return out

    def _waiting(self, case: CaseFacts) -> Waiting:
        rt = self.type_of(case.type_key, case.type_version)
        entered = case.state_entered_at
        assert entered is not None  # an open case's
        return Waiting(
            ref=case.ref, type_key=case.type_key, state=case.state,
            label=rt.states[case.state].label, unit=case.owner,
            unit_name=self.unit_name(case.owner),
            since=_instant(entered),
            days=max((self.now - _instant(entered)).total_seconds(), 0.0) / DAY,
            suspended=bool(case.suspended),  # 0 or 1 from SQLite
        )
