"""The working-day calendar of the Algemene termijnenwet (Atw), and deadlines counted on it.

Every deadline the product shows must be one an auditor can recompute by hand (SPEC §8), so
deadlines and suspensions come as a :class:`Derivation`: the instant and the lines that lead
to it.

The holidays are computed, not looked up: general holiday libraries follow custom (5 May only
in lustrum years), while the law makes 5 May a holiday every year. Days are counted in the
organisation's timezone, and every instant handed in must be timezone-aware: a naive datetime
is refused rather than silently read in the server's own zone. Instants handed out are UTC.

The calendar knows the years :data:`FIRST_YEAR` to :data:`LAST_YEAR`. A day, an instant or a
count outside them is refused with :class:`OutsideCalendar`, an
:class:`~engine.errors.InvalidValue` that names the range: a term counted from a day the
calendar knows, but running past its end (or, counted back, past its start), too. The checks
cost nothing per counted day: the years are checked once each, when a year's holidays are first
merged, and the public methods turn what that raises into a message with their own context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.durations import Duration
from engine.errors import InvalidValue

# The first year of Koningsdag (Wet viering Koningsdag). Before it the monarch's day fell on
# other dates under other rules, which this calendar does not claim to know.
FIRST_YEAR = 2014
# The holidays are those of the law as it stands; the calendar does not claim to know them
# further ahead than this. It is far enough that a term of the longest a Duration allows
# (about ten years) counted from any real date ends well inside.
LAST_YEAR = 2200

_RANGE = f"the working-day calendar ({FIRST_YEAR}–{LAST_YEAR})"

_DAY = timedelta(days=1)
_MEMO_SIZE = 50_000

# Fixed tables rather than strftime("%a"), whose output depends on the process's locale.
_WEEKDAY_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKEND_NL = {5: "zaterdag", 6: "zondag"}

_CLOSED_DAY = "sluitingsdag"

# Non-working days with the name of what closes them, e.g. (2026-04-27, "Koningsdag").
_Named = list[tuple[date, str]]


class OutsideCalendar(InvalidValue):
    """A day, instant or count outside the years the calendar knows (FIRST_YEAR-LAST_YEAR)."""


def _outside(day: date) -> OutsideCalendar:
    return OutsideCalendar(f"{day.isoformat()} is outside {_RANGE}")


def _on_calendar(day: date) -> date:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise _outside(day)
    return day


@dataclass(frozen=True)
class Derivation:
    """A computed instant (UTC) with the steps that explain it, one line each."""

    due: datetime
    steps: tuple[str, ...]


def easter(year: int) -> date:
    """Easter Sunday of a Gregorian year (the anonymous Gregorian computus)."""
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    lunar_correction = (century + 8) // 25
    solar_correction = (century - lunar_correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - solar_correction + 15) % 30
    leap_years, year_rest = divmod(year_of_century, 4)
    weekday_shift = (32 + 2 * century_rest + 2 * leap_years - epact - year_rest) % 7
    late_correction = (golden + 11 * epact + 22 * weekday_shift) // 451
    month, day = divmod(epact + weekday_shift - 7 * late_correction + 114, 31)
    return date(year, month, day + 1)


@cache
def _atw_holidays(year: int) -> Mapping[date, str]:
    """The holidays of Atw art. 3 in one year; read-only because the cache shares it."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise OutsideCalendar(f"the year {year} is outside {_RANGE}")
    sunday = easter(year)
    kings_day = date(year, 4, 27)
    if kings_day.weekday() == 6:
        kings_day = date(year, 4, 26)
    days = [
        (date(year, 1, 1), "Nieuwjaarsdag"),
        (sunday - timedelta(days=2), "Goede Vrijdag"),  # art. 3(2) equates it with a holiday
        (sunday + timedelta(days=1), "tweede Paasdag"),
        (kings_day, "Koningsdag"),
        (date(year, 5, 5), "Bevrijdingsdag"),
        (sunday + timedelta(days=39), "Hemelvaartsdag"),
        (sunday + timedelta(days=50), "tweede Pinksterdag"),
        (date(year, 12, 25), "eerste Kerstdag"),
        (date(year, 12, 26), "tweede Kerstdag"),
    ]
    names: dict[date, str] = {}
    for day, name in days:
        # Hemelvaartsdag is on 5 May when Easter is on 27 March (2016, 2157): name both.
        names[day] = f"{names[day]} en {name}" if day in names else name
    return MappingProxyType(dict(sorted(names.items())))


class _ClosedByYear(dict[int, dict[date, str]]):
    """By year, the names of the holidays and the closed days, merged when first asked for.

    A dict with ``__missing__``, so that asking about a day costs one subscription: the
    escalation sweep asks about many.
    """

    def __init__(self, closed: Mapping[date, str]) -> None:
        super().__init__()
        self._closed = closed

    def __missing__(self, year: int) -> dict[date, str]:
        merged = {d: name for d, name in self._closed.items() if d.year == year}
        merged.update(_atw_holidays(year))  # the law's name wins over the organisation's
        self[year] = merged
        return merged


def _day(d: date) -> str:
    return f"{d.isoformat()} ({_WEEKDAY_EN[d.weekday()]})"


def _named(days: _Named) -> str:
    return ", ".join([f"{d.isoformat()} {why}" for d, why in days])


def _span(delta: timedelta) -> str:
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{seconds:02} (h:mm:ss)"


def _moved(passed: _Named, to: date, because: str = "") -> str:
    (first, why), *more = passed
    line = f"moved from {first.isoformat()} ({why}) to {to.isoformat()}, the next working day"
    line += because
    return f"{line}; skipped {_named(more)}" if more else line


class WorkingCalendar:
    """Which days count in one organisation, and the deadlines counted on them (SPEC §5)."""

    def __init__(
        self,
        timezone: str = "Europe/Amsterdam",
        closed_days: Iterable[date] = (),
        closed_day_names: Mapping[date, str] | None = None,
    ) -> None:
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {timezone!r}") from None
        self.timezone = timezone
        # A day given a name is closed even when closed_days leaves it out.
        named = {d: name or _CLOSED_DAY for d, name in (closed_day_names or {}).items()}
        self._closed = _ClosedByYear(dict.fromkeys(closed_days, _CLOSED_DAY) | named)
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _remember(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """Counted results, kept for the calendar's life (bounded).

        The sweep asks the same questions case after case: every case that entered a state on
        one day shares its deadline, its rungs and its days overdue.
        """
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = compute()
        return found

    # -- days ------------------------------------------------------------------------------

    def holidays(self, year: int) -> dict[date, str]:
        """The Atw holidays of a year in date order, without the organisation's closed days."""
        return dict(_atw_holidays(year))

    def is_working_day(self, d: date) -> bool:
        try:
            return d not in self._closed[d.year] and d.weekday() < 5
        except OutsideCalendar:
            raise _outside(d) from None

    def why_closed(self, d: date) -> str | None:
        """The Dutch name of what makes ``d`` a non-working day, or None for a working day.

        A holiday wins over a closed day, and both over the weekday: "eerste Kerstdag" tells
        an auditor more than "zaterdag".
        """
        try:
            return self._closed[d.year].get(d) or _WEEKEND_NL.get(d.weekday())
        except OutsideCalendar:
            raise _outside(d) from None

    def next_working_day_on_or_after(self, d: date) -> date:
        try:
            return self._first_working(d, _DAY)[0]
        except (OutsideCalendar, OverflowError):
            raise self._past(d, "looking for the next working day from {day}") from None

    def _first_working(self, d: date, step: timedelta) -> tuple[date, _Named]:
        """The first working day from ``d`` (included) in the direction of ``step``, and the
        non-working days passed on the way."""
        passed = []
        while (why := self.why_closed(d)) is not None:
            passed.append((d, why))
            d += step
        return d, passed

    def _count_working(self, d: date, n: int, step: timedelta) -> tuple[date, list[date], _Named]:
        """The ``n``-th working day from ``d`` (excluded) in the direction of ``step``, with
        the working days counted and the other days skipped.

        why_closed is inlined, and each skipped day keeps the name found for it, because this
        loop is most of the cost of a deadline and deadlines are computed in the sweep.
        """
        closed = self._closed
        counted: list[date] = []
        skipped: _Named = []
        while len(counted) < n:
            d += step
            why = closed[d.year].get(d) or _WEEKEND_NL.get(d.weekday())
            if why is None:
                counted.append(d)
            else:
                skipped.append((d, why))
        return d, counted, skipped

    # -- instants --------------------------------------------------------------------------

    def local_date(self, t: datetime) -> date:
        return self._local(t).date()

    def end_of_day(self, d: date) -> datetime:
        """23:59:59 local on ``d``, as UTC.

        Built from the local wall time, never by adding 24 hours in UTC, so that it stays
        23:59:59 across a DST change; fold=1 takes the later instant where a zone's clocks go
        back at midnight and 23:59:59 happens twice.
        """
        try:
            return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=self._tz, fold=1).astimezone(UTC)
        except OverflowError:  # within a day of the last datetime Python can hold
            raise _outside(d) from None

    def _local(self, t: datetime) -> datetime:
        if t.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got {t.isoformat()}")
        try:
            return t.astimezone(self._tz)
        except OverflowError:  # within a day of the first or last datetime Python can hold
            raise _outside(t.date()) from None

    def _past(
        self, at: date | datetime, what: str, backwards: bool = False
    ) -> OutsideCalendar:
        """The error for counting from ``at`` that left the calendar: ``at`` itself is outside
        it, or ``what`` (with ``{day}`` for the day counted from) ran past its end or start."""
        day = self.local_date(at) if isinstance(at, datetime) else at
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            return _outside(day)
        edge = "start" if backwards else "end"
        return OutsideCalendar(f"{what.format(day=day.isoformat())} runs past the {edge} of {_RANGE}")

    def _after_hours(self, start: datetime, hours: int, before: bool = False) -> datetime:
        """``start`` plus (or minus) exactly ``hours``, in UTC; both ends on the calendar."""
        delta = timedelta(hours=hours)
        return self._checked(self._checked(start).astimezone(UTC) + (-delta if before else delta))

    def _checked(self, t: datetime) -> datetime:
        """``t``, refused when its local day is outside the calendar.

        Only an instant in the first or last year is converted to find its local day: no zone
        is a year away from UTC.
        """
        if not FIRST_YEAR < t.year < LAST_YEAR:
            _on_calendar(self.local_date(t))
        return t

    def before_moves(self, deadline: datetime) -> datetime:
        """The end of the first of the non-working days right before the deadline's day (the
        deadline itself when there are none): where a term may have ended before the Atw
        moved it to this day."""
        day = self.local_date(deadline)
        earlier = day
        while not self.is_working_day(earlier - _DAY):
            earlier -= _DAY
        return deadline if earlier == day else self.end_of_day(earlier)

    def moment(self, instant: datetime) -> str:
        """An instant as people here read it: ``2026-03-30 (Mon) 11:00 Europe/Amsterdam``."""
        return self._instant(self._local(instant))

    def _instant(self, local: datetime) -> str:
        clock = local.time().isoformat("minutes" if local.second == 0 else "seconds")
        return f"{_day(local.date())} {clock} {self.timezone}"

    def _due(self, due: datetime) -> str:
        local = self._local(due)
        clock = local.time().isoformat("seconds")
        utc = due.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")
        return f"due {_day(local.date())} {clock} {self.timezone} ({utc} UTC)"

    # -- deadlines -------------------------------------------------------------------------

    def deadline(self, start: datetime, duration: Duration) -> Derivation:
        """When a term that starts at ``start`` ends, and how that follows."""
        local = self._local(start)
        _on_calendar(local.date())
        steps = [f"start {self._instant(local)}"]
        try:
            if duration.unit == "hours":
                due = self._after_hours(start, duration.amount)
                steps.append(f"added {duration} exactly; a term in hours is never moved")
            else:
                due = self.end_of_day(self._count_after(local.date(), duration, steps))
        except (OutsideCalendar, OverflowError):
            raise self._past(local.date(), f"a term of {duration} from {{day}}") from None
        steps.append(self._due(due))
        return Derivation(due, tuple(steps))

    def due(self, start: datetime, duration: Duration) -> datetime:
        """``deadline(start, duration).due`` without building its explanation.

        Every advance computes a deadline; only `case show --explain` reads the steps.
        """
        try:
            if duration.unit == "hours":
                return self._after_hours(start, duration.amount)
            day = self.local_date(start)
            if duration.unit == "working_days" and duration.amount > 0:
                return self._remember(("due", day, duration), lambda: self.end_of_day(
                    self._count_working(_on_calendar(day), duration.amount, _DAY)[0]))
            # Any other term but hours ends at the end of a day that follows from the start's day alone.
            return self._remember(("due", day, duration), lambda: self.deadline(start, duration).due)
        except (OutsideCalendar, OverflowError):
            raise self._past(start, f"a term of {duration} from {{day}}") from None

    def unmoved(self, start: datetime, duration: Duration) -> datetime:
        """Where a term in weeks or calendar days ends before the Atw moves it (art. 1 to the
        next working day, art. 2 to the second working day): the end of the day it counts to.

        A later extension counts on from here rather than from the moved day, so that extending
        twice reaches the same day as extending once by the sum. Terms in working days and
        hours are never moved; for them this is the deadline itself.
        """
        if duration.unit in ("weeks", "calendar_days"):
            try:
                day = _on_calendar(self.local_date(start))
                return self.end_of_day(_on_calendar(day + timedelta(days=self._calendar_days(duration))))
            except (OutsideCalendar, OverflowError):
                raise self._past(start, f"a term of {duration} from {{day}}") from None
        return self.due(start, duration)

    def offset(self, deadline: datetime, duration: Duration, before: bool = False) -> datetime:
        """When a ladder rung or timeout fires, counted from the deadline's own day.

        Counting backwards moves to the previous working day, never the next: a reminder
        pushed later by a weekend could come after the deadline it warns about (Atw art. 1(2)
        likewise leaves backward terms alone). A zero offset is the deadline itself, also for
        a deadline in hours that does not end at the end of a day.
        """
        try:
            if duration.amount == 0 or duration.unit == "hours":
                return self._after_hours(self._local(deadline), duration.amount, before)
            return self._remember(("offset", deadline, duration, before),
                                  lambda: self._offset_day(self.local_date(deadline), duration, before))
        except (OutsideCalendar, OverflowError):
            back = " back" if before else ""
            raise self._past(deadline, f"counting {duration}{back} from {{day}}", before) from None

    def _offset_day(self, day: date, duration: Duration, before: bool) -> datetime:
        _on_calendar(day)
        if not before:
            return self.end_of_day(self._count_after(day, duration, []))
        if duration.unit == "working_days":
            day = self._count_working(day, duration.amount, -_DAY)[0]
        else:
            back = timedelta(days=self._calendar_days(duration))
            day = self._first_working(day - back, -_DAY)[0]
        return self.end_of_day(day)

    def working_days_between(self, a: datetime, b: datetime) -> int:
        """How many working days ended in (a, b]: for a deadline ``a``, how many working days
        overdue a case is at ``b``. A working day counts only once it is over."""
        if b <= a:
            return 0
        return int(self._remember(("between", a, b), lambda: self._count_between(a, b)))

    def _count_between(self, a: datetime, b: datetime) -> int:
        # Both ends checked first: every day counted lies between them.
        first, last = _on_calendar(self.local_date(a)), _on_calendar(self.local_date(b))
        if self.end_of_day(first) <= a:
            first += _DAY
        if self.end_of_day(last) > b:
            last -= _DAY
        count = 0
        while first <= last:
            count += self.is_working_day(first)
            first += _DAY
        return count

    def shift(
        self, deadline: datetime, suspended_at: datetime, resumed_at: datetime, exact: bool
    ) -> datetime:
        """The deadline after a suspension; :meth:`explain_shift` says how (and must agree)."""
        if resumed_at < suspended_at:
            raise ValueError(
                f"resumed at {resumed_at.isoformat()}, before it was suspended at "
                f"{suspended_at.isoformat()}"
            )
        try:
            if exact:
                return self._checked(self._checked(deadline).astimezone(UTC) + (resumed_at - suspended_at))
            days = (self.local_date(resumed_at) - self.local_date(suspended_at)).days
            moved = _on_calendar(self.local_date(deadline)) + timedelta(days=days)
            return self.end_of_day(self._first_working(moved, _DAY)[0])
        except (OutsideCalendar, OverflowError):
            raise self._past(deadline, "moving the deadline of {day} by the suspension") from None

    def explain_shift(
        self, deadline: datetime, suspended_at: datetime, resumed_at: datetime, exact: bool
    ) -> Derivation:
        """Move a running deadline later by the time its clock stood still (Awb 4:15).

        A deadline in hours (``exact``) moves by exactly the time suspended. Any other moves
        by the calendar days between the local dates of suspension and resumption, so that a
        suspension within one day costs nothing, and still ends at the end of a working day.
        Each suspension's steps follow the deadline's own in an explanation.
        """
        if resumed_at < suspended_at:
            raise ValueError(
                f"resumed at {resumed_at.isoformat()}, before it was suspended at "
                f"{suspended_at.isoformat()}"
            )
        off, on = self._local(suspended_at), self._local(resumed_at)
        try:
            if exact:
                stood_still = resumed_at - suspended_at
                due = self._checked(self._checked(deadline).astimezone(UTC) + stood_still)
                steps = [
                    f"suspended {self._instant(off)} → {self._instant(on)}: {_span(stood_still)}",
                    f"shifted {self._instant(self._local(deadline))} + {_span(stood_still)} "
                    "exactly; a term in hours is never moved",
                ]
            else:
                days = (on.date() - off.date()).days
                old = _on_calendar(self.local_date(deadline))
                target = old + timedelta(days=days)
                unit = "calendar day" if days == 1 else "calendar days"
                steps = [
                    f"suspended {_day(off.date())} → {_day(on.date())}: {days} {unit}",
                    f"shifted {_day(old)} + {days} = {_day(target)}",
                ]
                day, passed = self._first_working(target, _DAY)
                if passed:
                    steps.append(_moved(passed, day))
                due = self.end_of_day(day)
        except (OutsideCalendar, OverflowError):
            raise self._past(deadline, "moving the deadline of {day} by the suspension") from None
        steps.append(self._due(due))
        return Derivation(due, tuple(steps))

    def _count_after(self, d: date, duration: Duration, steps: list[str]) -> date:
        """The day a term in days ends, counted from day ``d``; says why in ``steps``."""
        if duration.unit == "working_days":
            if duration.amount == 0:
                return self._zero_working_days(d, steps)
            day, counted, skipped = self._count_working(d, duration.amount, _DAY)
            steps.append(f"counted {duration}: {', '.join([c.isoformat() for c in counted])}")
            if skipped:
                steps.append(f"skipped {_named(skipped)}")
            return day
        days = self._calendar_days(duration)
        target = d + timedelta(days=days)
        in_days = "" if duration.unit == "calendar_days" else " days"
        steps.append(f"added {duration}: {d.isoformat()} + {days}{in_days} = {_day(target)}")
        day, passed = self._first_working(target, _DAY)
        if passed:
            steps.append(_moved(passed, day, " (Atw art. 1)"))
        if days >= 3:
            second = self._count_working(d, 2, _DAY)[0]
            if second > day:
                steps.append(
                    f"extended from {day.isoformat()} to {second.isoformat()} so that the term "
                    "holds two working days (Atw art. 2)"
                )
                day = second
        return day

    def _zero_working_days(self, d: date, steps: list[str]) -> date:
        day, passed = self._first_working(d, _DAY)
        if not passed:
            steps.append(f"counted 0 working days: the start day {_day(d)} is a working day")
            return day
        steps.append(f"counted 0 working days: the start day {_day(d)} is not a working day")
        steps.append(_moved(passed, day))
        return day

    @staticmethod
    def _calendar_days(duration: Duration) -> int:
        return duration.amount * 7 if duration.unit == "weeks" else duration.amount
