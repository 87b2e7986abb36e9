"""`WorkingDayCounter` (the report's working days from prefix sums) against the calendar it
stands for: its table widens as instants further apart are asked for, by the margin once,
never past the calendar's years, and near those bounds it counts as the calendar counts."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.core.calendar import FIRST_YEAR, LAST_YEAR, OutsideCalendar, WorkingCalendar
from engine.reporting.builder import WorkingDayCounter

UTC = dt.UTC
ZONE = "Europe/Amsterdam"
FIRST_DAY, LAST_DAY = dt.date(FIRST_YEAR, 1, 1), dt.date(LAST_YEAR, 12, 31)


class Watched(WorkingCalendar):
    """A calendar that fails the test when asked about a day outside its years (it would
    raise anyway; this names the counter as the one that asked)."""

    asked = 0

    def is_working_day(self, d: dt.date) -> bool:
        assert FIRST_DAY <= d <= LAST_DAY, f"the counter asked the calendar about {d}"
        self.asked += 1
        return super().is_working_day(d)


def local(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """That wall-clock time in Amsterdam, as UTC."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def table_span(counter: WorkingDayCounter) -> tuple[dt.date, dt.date]:
    return dt.date.fromordinal(counter.first), dt.date.fromordinal(counter.first + len(counter.sums) - 1)


def test_widening_again_and_again_adds_the_margin_once() -> None:
    """Instants ever further out on either side, in steps smaller than the margin: the table
    holds what was asked for plus the margin either side, however often it widened (it used to
    add the margin at every widening, until it reached 2014 and failed)."""
    cal = Watched(ZONE, [dt.date(2026, 12, 28)])
    counter = WorkingDayCounter(cal)
    middle = dt.datetime(2026, 6, 1, 10, tzinfo=UTC)
    earliest, latest = middle, middle
    for step in range(1, 41):
        a = middle - dt.timedelta(days=100 * step, hours=step)
        b = middle + dt.timedelta(days=37 * step, minutes=step)
        assert counter.between(a, b) == cal.working_days_between(a, b), step
        assert counter.between(a, middle) == cal.working_days_between(a, middle), step
        earliest, latest = a, b
        # The table holds what was asked for, and at most the margin more on either side.
        low, high = table_span(counter)
        asked_low, asked_high = cal.local_date(earliest) - dt.timedelta(days=1), cal.local_date(latest)
        margin = WorkingDayCounter.MARGIN
        assert max(asked_low - margin, FIRST_DAY - dt.timedelta(days=1)) <= low <= asked_low, step
        assert asked_high - dt.timedelta(days=1) <= high <= asked_high + margin, step
    assert earliest.year < 2016  # 4,000 days back: the old table had passed 2014 long before
    # Asking for days already covered does not rebuild the table.
    want = cal.working_days_between(earliest + dt.timedelta(days=3), latest)
    before = cal.asked
    assert counter.between(earliest + dt.timedelta(days=3), latest) == want
    assert cal.asked == before


def test_near_the_calendars_first_and_last_day_it_counts_as_the_calendar() -> None:
    cal = Watched(ZONE, [])
    counter = WorkingDayCounter(cal)
    start, end = FIRST_DAY, LAST_DAY
    moments = [local(start, 0, 0, 0), local(start, 0, 0, 1), local(start, 23, 59, 59), local(start, 23, 59, 58),
               local(start + dt.timedelta(days=1), 12), local(start + dt.timedelta(days=9), 8),
               local(start + dt.timedelta(days=300), 17),
               local(end, 0, 0, 0), local(end, 23, 59, 58), local(end, 23, 59, 59),
               local(end, 23, 59, 59) + dt.timedelta(microseconds=999_999),
               local(end - dt.timedelta(days=1), 23, 59, 59), local(end - dt.timedelta(days=250), 9)]
    for a in moments:
        for b in moments:
            if a.year == b.year:
                assert counter.between(a, b) == cal.working_days_between(a, b), (a, b)
    whole = counter.between(moments[0], moments[9])  # the whole calendar, in one table
    assert whole == cal.working_days_between(moments[0], moments[9]) > 47_000
    low, high = table_span(counter)
    assert (low, high) == (FIRST_DAY - dt.timedelta(days=1), LAST_DAY)
    # By local days, as the report's pass asks: from the first day, through the last.
    ordinal = FIRST_DAY.toordinal()
    assert counter.between_days(ordinal, ordinal + 9) == cal.working_days_between(
        local(start, 0), local(start + dt.timedelta(days=10), 0))
    assert counter.between_days(ordinal, LAST_DAY.toordinal()) == whole


def test_outside_the_calendar_it_refuses_as_the_calendar_does() -> None:
    cal = Watched(ZONE, [])
    counter = WorkingDayCounter(cal)
    inside = local(FIRST_DAY, 12)
    for a, b in ((local(FIRST_DAY, 0) - dt.timedelta(seconds=1), inside),
                 (local(FIRST_DAY - dt.timedelta(days=5), 12), inside),
                 (local(LAST_DAY, 12), local(LAST_DAY, 23, 59, 59) + dt.timedelta(seconds=1)),
                 (local(LAST_DAY - dt.timedelta(days=3), 12), local(LAST_DAY + dt.timedelta(days=3), 12))):
        with pytest.raises(OutsideCalendar) as expected:
            cal.working_days_between(a, b)
        with pytest.raises(OutsideCalendar) as got:
            counter.between(a, b)
        assert str(got.value) == str(expected.value)
    for first, last in ((FIRST_DAY - dt.timedelta(days=1), FIRST_DAY + dt.timedelta(days=3)),
                        (LAST_DAY - dt.timedelta(days=3), LAST_DAY + dt.timedelta(days=1))):
        with pytest.raises(OutsideCalendar, match="is outside the working-day calendar"):
            counter.between_days(first.toordinal(), last.toordinal())
    # Still counting inside afterwards.
    assert counter.between(inside, local(FIRST_DAY, 12) + dt.timedelta(days=30)) == cal.working_days_between(
        inside, inside + dt.timedelta(days=30))


@pytest.mark.parametrize("seed", [3, 11])
def test_random_instants_far_apart_agree_with_the_calendar(seed: int) -> None:
    """Instants spread over the calendar's years, asked in random order: every count equals
    the calendar's, and the table never holds a day outside the calendar."""
    cal: Any = Watched(ZONE, [dt.date(2030, 5, 6), dt.date(2150, 1, 2)])
    counter = WorkingDayCounter(cal)
    rng = random.Random(seed)
    span = int((local(LAST_DAY, 23, 59, 59) - local(FIRST_DAY, 0)).total_seconds())
    moments = [local(FIRST_DAY, 0) + dt.timedelta(seconds=rng.randrange(span)) for _ in range(6)]
    moments += [local(FIRST_DAY, 0) + dt.timedelta(days=rng.randrange(900), hours=rng.randrange(24))
                for _ in range(3)]
    for a in moments:
        for b in moments:
            assert counter.between(a, b) == cal.working_days_between(a, b), (a, b)
    low, high = table_span(counter)
    assert FIRST_DAY - dt.timedelta(days=1) <= low and high <= LAST_DAY
