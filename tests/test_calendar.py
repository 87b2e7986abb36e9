"""The working-day calendar and deadlines (SPEC §5), one table per rule.

Times in the tables are Amsterdam wall times unless built with ``utc``; every row says which
rule it checks. In 2026: Easter is 5 April, Koningsdag Monday 27 April, 5 May a Tuesday,
Hemelvaartsdag 14 May, tweede Pinksterdag 25 May, Christmas Friday and Saturday, and summer
time runs from Sunday 29 March to Sunday 25 October.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.core.calendar import FIRST_YEAR, LAST_YEAR, WorkingCalendar, easter
from engine.core.durations import Duration
from engine.errors import InvalidValue

AMS = ZoneInfo("Europe/Amsterdam")

CAL = WorkingCalendar()
# Closed between Christmas and New Year (as in the sample organisation), and a bridge day.
CLOSED = WorkingCalendar(
    closed_days=[date(2026, 12, 28), date(2026, 12, 29)],
    closed_day_names={date(2026, 5, 15): "brugdag"},
)


RANGE = re.escape(f"the working-day calendar ({FIRST_YEAR}–{LAST_YEAR})")


def at(local: str) -> datetime:
    """An Amsterdam wall time as the UTC instant the engine stores."""
    return datetime.fromisoformat(local).replace(tzinfo=AMS).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def eod(year: int, month: int, day: int) -> datetime:
    """The end of an Amsterdam day, as a deadline is stored."""
    return CAL.end_of_day(date(year, month, day))


def wd(n: int) -> Duration:
    return Duration("working_days", n)


def cd(n: int) -> Duration:
    return Duration("calendar_days", n)


def wk(n: int) -> Duration:
    return Duration("weeks", n)


def hours(n: int) -> Duration:
    return Duration("hours", n)


# -- holidays --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "sunday"),
    [
        (2024, date(2024, 3, 31)),  # early Easter, in March
        (2025, date(2025, 4, 20)),  # Easter in April
        (2026, date(2026, 4, 5)),  # the year most tables here use
        (2027, date(2027, 3, 28)),  # back in March
        (2038, date(2038, 4, 25)),  # the latest date Easter can fall on
        (2285, date(2285, 3, 22)),  # the earliest date Easter can fall on
    ],
)
def test_easter_follows_the_gregorian_computus(year: int, sunday: date) -> None:
    assert easter(year) == sunday


def test_holidays_of_a_year_are_those_of_atw_article_3() -> None:
    assert CAL.holidays(2026) == {
        date(2026, 1, 1): "Nieuwjaarsdag",
        date(2026, 4, 3): "Goede Vrijdag",
        date(2026, 4, 6): "tweede Paasdag",
        date(2026, 4, 27): "Koningsdag",
        date(2026, 5, 5): "Bevrijdingsdag",
        date(2026, 5, 14): "Hemelvaartsdag",
        date(2026, 5, 25): "tweede Pinksterdag",
        date(2026, 12, 25): "eerste Kerstdag",
        date(2026, 12, 26): "tweede Kerstdag",
    }


@pytest.mark.parametrize(
    ("year", "kings_day"),
    [
        (2014, date(2014, 4, 26)),  # the first Koningsdag: 27 April a Sunday, so the 26th
        (2025, date(2025, 4, 26)),  # 27 April 2025 is a Sunday: Saturday the 26th instead
        (2026, date(2026, 4, 27)),  # 27 April on a Monday stays
        (2030, date(2030, 4, 27)),  # 27 April on a Saturday stays: only Sunday moves it
        (2031, date(2031, 4, 26)),  # 27 April 2031 is a Sunday again
    ],
)
def test_koningsdag_is_27_april_or_26_april_when_that_is_a_sunday(
    year: int, kings_day: date
) -> None:
    assert [d for d, name in CAL.holidays(year).items() if name == "Koningsdag"] == [kings_day]


@pytest.mark.parametrize(
    ("cal", "day", "why"),
    [
        # Nieuwjaarsdag
        (CAL, date(2026, 1, 1), "Nieuwjaarsdag"),
        # Goede Vrijdag is equated with a holiday by Atw art. 3(2)
        (CAL, date(2026, 4, 3), "Goede Vrijdag"),
        # Witte Donderdag is an ordinary working day
        (CAL, date(2026, 4, 2), None),
        # eerste Paasdag is not listed: it is closed only because it is a Sunday
        (CAL, date(2026, 4, 5), "zondag"),
        # tweede Paasdag
        (CAL, date(2026, 4, 6), "tweede Paasdag"),
        # Koningsdag on 27 April
        (CAL, date(2026, 4, 27), "Koningsdag"),
        # Koningsdag moved to Saturday 26 April 2025; the holiday's name wins over "zaterdag"
        (CAL, date(2025, 4, 26), "Koningsdag"),
        # and that Sunday 27 April is just a Sunday
        (CAL, date(2025, 4, 27), "zondag"),
        # 5 May is a holiday every year, also when it is no lustrum year (2026)
        (CAL, date(2026, 5, 5), "Bevrijdingsdag"),
        # Hemelvaartsdag, 39 days after Easter
        (CAL, date(2026, 5, 14), "Hemelvaartsdag"),
        # Hemelvaartsdag on 5 May (Easter on 27 March): both names
        (CAL, date(2016, 5, 5), "Bevrijdingsdag en Hemelvaartsdag"),
        # tweede Pinksterdag, 50 days after Easter
        (CAL, date(2026, 5, 25), "tweede Pinksterdag"),
        # eerste Kerstdag
        (CAL, date(2026, 12, 25), "eerste Kerstdag"),
        # tweede Kerstdag on a Saturday is named as the holiday
        (CAL, date(2026, 12, 26), "tweede Kerstdag"),
        # an ordinary Saturday
        (CAL, date(2026, 4, 4), "zaterdag"),
        # Oudejaarsdag is a working day
        (CAL, date(2026, 12, 31), None),
        # without closed days, the Monday after Christmas is a working day
        (CAL, date(2026, 12, 28), None),
        # a closed day of the organisation
        (CLOSED, date(2026, 12, 28), "sluitingsdag"),
        # a closed day given its own name
        (CLOSED, date(2026, 5, 15), "brugdag"),
        # a holiday that is also a closed day is named as the holiday
        (WorkingCalendar(closed_days=[date(2026, 12, 25)]), date(2026, 12, 25), "eerste Kerstdag"),
        # a closed day given an empty name still says why it is closed
        (
            WorkingCalendar(closed_day_names={date(2026, 6, 1): ""}),
            date(2026, 6, 1),
            "sluitingsdag",
        ),
    ],
)
def test_why_a_day_is_closed(cal: WorkingCalendar, day: date, why: str | None) -> None:
    assert cal.why_closed(day) == why
    assert cal.is_working_day(day) is (why is None)


def test_holidays_hands_out_a_copy_of_the_shared_cache() -> None:
    CAL.holidays(2026).clear()
    assert len(CAL.holidays(2026)) == 9


def test_years_before_koningsdag_are_refused() -> None:
    with pytest.raises(InvalidValue, match=f"2013-04-30 is outside {RANGE}"):
        CAL.is_working_day(date(2013, 4, 30))


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Europe/Amsterdm'"):
        WorkingCalendar("Europe/Amsterdm")


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a timezone-aware datetime"):
        CAL.local_date(datetime(2026, 4, 24, 10, 0))


@pytest.mark.parametrize(
    ("day", "working_day"),
    [
        # a working day is its own next working day
        (date(2026, 4, 24), date(2026, 4, 24)),
        # past the weekend and Koningsdag
        (date(2026, 4, 25), date(2026, 4, 28)),
        # past both Christmas days and the Sunday
        (date(2026, 12, 25), date(2026, 12, 28)),
    ],
)
def test_next_working_day_on_or_after(day: date, working_day: date) -> None:
    assert CAL.next_working_day_on_or_after(day) == working_day


def test_next_working_day_skips_closed_days() -> None:
    # Hemelvaartsdag, then the bridge day, then the weekend.
    assert CLOSED.next_working_day_on_or_after(date(2026, 5, 14)) == date(2026, 5, 18)


# -- instants --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        # 23:59:59 in winter time is still the same day
        (utc("2026-01-01 22:59:59"), date(2026, 1, 1)),
        # midnight in Amsterdam is the next day, while it is still 23:00 in UTC
        (utc("2026-01-01 23:00"), date(2026, 1, 2)),
        # summer time is UTC+2
        (utc("2026-06-30 22:30"), date(2026, 7, 1)),
        # an instant in another zone is converted too, not only UTC
        (datetime(2026, 1, 1, 20, 0, tzinfo=ZoneInfo("America/New_York")), date(2026, 1, 2)),
    ],
)
def test_local_date_is_the_day_in_the_calendars_zone(instant: datetime, day: date) -> None:
    assert CAL.local_date(instant) == day


@pytest.mark.parametrize(
    ("zone", "day", "end"),
    [
        # winter time: UTC+1
        ("Europe/Amsterdam", date(2026, 1, 15), utc("2026-01-15 22:59:59")),
        # summer time: UTC+2
        ("Europe/Amsterdam", date(2026, 7, 15), utc("2026-07-15 21:59:59")),
        # the Saturday before the clocks go forward is still winter time
        ("Europe/Amsterdam", date(2026, 3, 28), utc("2026-03-28 22:59:59")),
        # last Sunday of March: a day of 23 hours that ends in summer time
        ("Europe/Amsterdam", date(2026, 3, 29), utc("2026-03-29 21:59:59")),
        # the Saturday before the clocks go back is still summer time
        ("Europe/Amsterdam", date(2026, 10, 24), utc("2026-10-24 21:59:59")),
        # last Sunday of October: a day of 25 hours that ends in winter time
        ("Europe/Amsterdam", date(2026, 10, 25), utc("2026-10-25 22:59:59")),
        # Santiago's clocks went back at midnight: of the two 23:59:59s, the later ends the day
        ("America/Santiago", date(2019, 4, 6), utc("2019-04-07 03:59:59")),
    ],
)
def test_end_of_day_is_235959_local(zone: str, day: date, end: datetime) -> None:
    assert WorkingCalendar(zone).end_of_day(day) == end


# -- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cal", "start", "duration", "due_day"),
    [
        # Koningsdag and two weekends are skipped
        (CAL, at("2026-04-24 10:15"), wd(5), date(2026, 5, 4)),
        # Goede Vrijdag, the weekend and tweede Paasdag are skipped
        (CAL, at("2026-04-02 09:00"), wd(1), date(2026, 4, 7)),
        # 5 May is skipped in 2026, not a lustrum year
        (CAL, at("2026-05-04 09:00"), wd(1), date(2026, 5, 6)),
        # Hemelvaartsdag is skipped
        (CAL, at("2026-05-13 09:00"), wd(1), date(2026, 5, 15)),
        # the weekend and tweede Pinksterdag are skipped
        (CAL, at("2026-05-22 09:00"), wd(1), date(2026, 5, 26)),
        # both Christmas days are skipped
        (CAL, at("2026-12-23 09:00"), wd(3), date(2026, 12, 29)),
        # across the year end: Nieuwjaarsdag 2027 and the weekend after it are skipped
        (CAL, at("2026-12-23 09:00"), wd(6), date(2027, 1, 4)),
        # the organisation's closed days are skipped
        (CLOSED, at("2026-12-23 09:00"), wd(3), date(2026, 12, 31)),
        # counted from the local day: 00:30 Friday in Amsterdam is still Thursday in UTC
        (CAL, utc("2026-04-23 22:30"), wd(1), date(2026, 4, 28)),
        # zero working days: the end of the start day when it is a working day
        (CAL, at("2026-04-24 10:15"), wd(0), date(2026, 4, 24)),
        # zero working days from a Saturday: the next working day, past Koningsdag
        (CAL, at("2026-04-25 10:15"), wd(0), date(2026, 4, 28)),
        # counted across the start of summer time
        (CAL, at("2026-03-27 10:00"), wd(2), date(2026, 3, 31)),
        # counted across the end of summer time
        (CAL, at("2026-10-23 10:00"), wd(1), date(2026, 10, 26)),
        # calendar days: D + 7 is a working day, nothing moves
        (CAL, at("2026-04-24 10:00"), cd(7), date(2026, 5, 1)),
        # calendar days: D + 7 is Bevrijdingsdag, moved to the next working day (Atw art. 1)
        (CAL, at("2026-04-28 09:00"), cd(7), date(2026, 5, 6)),
        # D + 1 is a Saturday: moved past Sunday and Koningsdag; a term under 3 days has no art. 2
        (CAL, at("2026-04-24 09:00"), cd(1), date(2026, 4, 28)),
        # weeks: D + 56 is Koningsdag, moved to the next working day
        (CAL, at("2026-03-02 09:00"), wk(8), date(2026, 4, 28)),
        # weeks across the year end: D + 14 is Nieuwjaarsdag, moved past the weekend
        (CAL, at("2026-12-18 09:00"), wk(2), date(2027, 1, 4)),
        # Atw art. 2: 3 days from Witte Donderdag end on Tuesday, the only working day in the
        # term, so the term is extended to a second working day
        (CAL, at("2026-04-02 09:00"), cd(3), date(2026, 4, 8)),
        # Atw art. 2 at Christmas: Monday 28 December would be the term's one working day
        (CAL, at("2026-12-24 09:00"), cd(3), date(2026, 12, 29)),
        # a term of 2 days is too short for art. 2: moved to Monday only
        (CAL, at("2026-12-24 09:00"), cd(2), date(2026, 12, 28)),
        # closed days count as non-working days for art. 2 too
        (CLOSED, at("2026-12-24 09:00"), cd(5), date(2026, 12, 31)),
    ],
)
def test_deadline_in_days_ends_at_the_end_of_a_working_day(
    cal: WorkingCalendar, start: datetime, duration: Duration, due_day: date
) -> None:
    due = cal.deadline(start, duration).due
    assert due == cal.end_of_day(due_day)
    assert due.tzinfo is UTC
    assert due.astimezone(AMS).time().isoformat() == "23:59:59"


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        # ends 23:59:59 summer time (UTC+2) although counted from winter time
        (at("2026-03-27 10:00"), wd(2), utc("2026-03-31 21:59:59")),
        # ends 23:59:59 winter time (UTC+1) although counted from summer time
        (at("2026-10-23 10:00"), wd(1), utc("2026-10-26 22:59:59")),
        # hours: exactly N hours later
        (at("2026-04-24 10:15"), hours(8), utc("2026-04-24 16:15")),
        # hours are never moved, not even to leave a Saturday
        (at("2026-04-24 20:00"), hours(8), utc("2026-04-25 02:00")),
        # hours are real hours: across the night the clocks go forward, 22:00 + 8 is 07:00
        (at("2026-03-28 22:00"), hours(8), utc("2026-03-29 05:00")),
        # zero hours is the start itself
        (at("2026-04-24 10:15"), hours(0), utc("2026-04-24 08:15")),
    ],
)
def test_deadline_instant(start: datetime, duration: Duration, due: datetime) -> None:
    assert CAL.deadline(start, duration).due == due


@pytest.mark.parametrize(
    ("cal", "start", "duration", "steps"),
    [
        # working days: what was counted, what was skipped and why
        (
            CAL,
            at("2026-04-24 10:15"),
            wd(5),
            (
                "start 2026-04-24 (Fri) 10:15 Europe/Amsterdam",
                "counted 5 working days: 2026-04-28, 2026-04-29, 2026-04-30, 2026-05-01, "
                "2026-05-04",
                "skipped 2026-04-25 zaterdag, 2026-04-26 zondag, 2026-04-27 Koningsdag, "
                "2026-05-02 zaterdag, 2026-05-03 zondag",
                "due 2026-05-04 (Mon) 23:59:59 Europe/Amsterdam (2026-05-04 21:59:59 UTC)",
            ),
        ),
        # calendar days: the addition, then the move past a holiday
        (
            CAL,
            at("2026-04-28 09:00"),
            cd(7),
            (
                "start 2026-04-28 (Tue) 09:00 Europe/Amsterdam",
                "added 7 calendar days: 2026-04-28 + 7 = 2026-05-05 (Tue)",
                "moved from 2026-05-05 (Bevrijdingsdag) to 2026-05-06, the next working day "
                "(Atw art. 1)",
                "due 2026-05-06 (Wed) 23:59:59 Europe/Amsterdam (2026-05-06 21:59:59 UTC)",
            ),
        ),
        # weeks: a move past several days names each of them
        (
            CAL,
            at("2026-12-18 09:00"),
            wk(2),
            (
                "start 2026-12-18 (Fri) 09:00 Europe/Amsterdam",
                "added 2 weeks: 2026-12-18 + 14 days = 2027-01-01 (Fri)",
                "moved from 2027-01-01 (Nieuwjaarsdag) to 2027-01-04, the next working day "
                "(Atw art. 1); skipped 2027-01-02 zaterdag, 2027-01-03 zondag",
                "due 2027-01-04 (Mon) 23:59:59 Europe/Amsterdam (2027-01-04 22:59:59 UTC)",
            ),
        ),
        # the art. 2 extension has a line of its own
        (
            CAL,
            at("2026-12-24 09:00"),
            cd(3),
            (
                "start 2026-12-24 (Thu) 09:00 Europe/Amsterdam",
                "added 3 calendar days: 2026-12-24 + 3 = 2026-12-27 (Sun)",
                "moved from 2026-12-27 (zondag) to 2026-12-28, the next working day (Atw art. 1)",
                "extended from 2026-12-28 to 2026-12-29 so that the term holds two working days "
                "(Atw art. 2)",
                "due 2026-12-29 (Tue) 23:59:59 Europe/Amsterdam (2026-12-29 22:59:59 UTC)",
            ),
        ),
        # zero working days from a closed day, with the organisation's name for it
        (
            CLOSED,
            at("2026-12-28 08:30"),
            wd(0),
            (
                "start 2026-12-28 (Mon) 08:30 Europe/Amsterdam",
                "counted 0 working days: the start day 2026-12-28 (Mon) is not a working day",
                "moved from 2026-12-28 (sluitingsdag) to 2026-12-30, the next working day; "
                "skipped 2026-12-29 sluitingsdag",
                "due 2026-12-30 (Wed) 23:59:59 Europe/Amsterdam (2026-12-30 22:59:59 UTC)",
            ),
        ),
        # hours: seconds are shown when there are any, and the due time is exact
        (
            CAL,
            at("2026-03-28 22:00:30"),
            hours(8),
            (
                "start 2026-03-28 (Sat) 22:00:30 Europe/Amsterdam",
                "added 8 hours exactly; a term in hours is never moved",
                "due 2026-03-29 (Sun) 07:00:30 Europe/Amsterdam (2026-03-29 05:00:30 UTC)",
            ),
        ),
    ],
)
def test_derivation_steps_let_an_auditor_recompute_the_deadline(
    cal: WorkingCalendar, start: datetime, duration: Duration, steps: tuple[str, ...]
) -> None:
    assert cal.deadline(start, duration).steps == steps


# -- ladder offsets and timeouts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "duration", "before", "fires"),
    [
        # after 0 working days: the deadline itself
        (eod(2026, 4, 28), wd(0), False, eod(2026, 4, 28)),
        # a zero offset is the deadline itself, even an hours deadline on a Saturday
        (at("2026-04-25 14:00"), wd(0), False, at("2026-04-25 14:00")),
        # after N working days counts like a deadline: the weekend and Koningsdag are skipped
        (eod(2026, 4, 20), wd(5), False, eod(2026, 4, 28)),
        # the head's rung, 10 working days on: 5 May and Hemelvaartsdag are skipped
        (eod(2026, 5, 4), wd(10), False, eod(2026, 5, 20)),
        # counted from an hours deadline's local day, a Saturday: Koningsdag comes next
        (at("2026-04-25 14:00"), wd(1), False, eod(2026, 4, 28)),
        # counted into summer time, the rung still fires at 23:59:59 local
        (eod(2026, 3, 27), wd(1), False, utc("2026-03-30 21:59:59")),
        # calendar days after move forward past a holiday, like a deadline
        (eod(2026, 4, 28), cd(7), False, eod(2026, 5, 6)),
        # before N working days: counted backwards past Koningsdag and the weekend
        (eod(2026, 4, 28), wd(2), True, eod(2026, 4, 23)),
        # backwards across the year end, past Nieuwjaarsdag
        (eod(2027, 1, 4), wd(1), True, eod(2026, 12, 31)),
        # before 0 working days: the deadline itself
        (eod(2026, 4, 28), wd(0), True, eod(2026, 4, 28)),
        # calendar days before land on a Sunday: moved back to Friday, never forward
        (eod(2026, 5, 6), cd(3), True, eod(2026, 5, 1)),
        # a week before is Bevrijdingsdag: moved back to Monday
        (eod(2026, 5, 12), wk(1), True, eod(2026, 5, 4)),
        # hours after: exact
        (at("2026-04-24 10:00"), hours(4), False, at("2026-04-24 14:00")),
        # hours before: exact
        (at("2026-04-24 10:00"), hours(4), True, at("2026-04-24 06:00")),
        # hours are real hours: 24 of them across the night the clocks go back end at 22:00
        (at("2026-10-24 23:00"), hours(24), False, at("2026-10-25 22:00")),
    ],
)
def test_offset_counts_from_the_deadlines_day(
    deadline: datetime, duration: Duration, before: bool, fires: datetime
) -> None:
    assert CAL.offset(deadline, duration, before=before) == fires


# -- overdue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cal", "deadline", "now", "overdue"),
    [
        # at the deadline itself nothing is overdue yet
        (CAL, eod(2026, 4, 24), eod(2026, 4, 24), 0),
        # before the deadline: 0, never negative
        (CAL, eod(2026, 4, 24), at("2026-04-20 10:00"), 0),
        # the weekend and Koningsdag do not count, and Tuesday is not over yet
        (CAL, eod(2026, 4, 24), at("2026-04-28 12:00"), 0),
        # a working day counts at its last second
        (CAL, eod(2026, 4, 24), eod(2026, 4, 28), 1),
        # and goes on counting as one until the next working day is over
        (CAL, eod(2026, 4, 24), at("2026-04-29 12:00"), 1),
        # an hours deadline during a working day: that day counts once it is over
        (CAL, at("2026-04-28 10:00"), eod(2026, 4, 28), 1),
        # across Christmas and New Year: 24, 28-31 December, 4 and 5 January
        (CAL, eod(2026, 12, 23), eod(2027, 1, 5), 7),
        # the organisation's closed days do not count
        (CLOSED, eod(2026, 12, 23), eod(2027, 1, 5), 5),
    ],
)
def test_working_days_between(
    cal: WorkingCalendar, deadline: datetime, now: datetime, overdue: int
) -> None:
    assert cal.working_days_between(deadline, now) == overdue


# -- suspension ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "suspended", "resumed", "exact", "moved_to"),
    [
        # suspended and resumed on the same day: nothing moves
        (eod(2026, 3, 10), at("2026-03-02 09:00"), at("2026-03-02 16:00"), False, eod(2026, 3, 10)),
        # Monday to Thursday: 3 calendar days later
        (eod(2026, 3, 10), at("2026-03-02 09:00"), at("2026-03-05 14:00"), False, eod(2026, 3, 13)),
        # local dates count: an hour across midnight is one calendar day
        (eod(2026, 3, 10), at("2026-03-02 23:30"), at("2026-03-03 00:30"), False, eod(2026, 3, 11)),
        # shifted onto a Saturday: moved to the end of Monday
        (eod(2026, 3, 12), at("2026-03-02 09:00"), at("2026-03-04 14:00"), False, eod(2026, 3, 16)),
        # shifted onto Bevrijdingsdag: moved to the next working day
        (eod(2026, 4, 30), at("2026-04-01 09:00"), at("2026-04-06 09:00"), False, eod(2026, 5, 6)),
        # shifted across the start of summer time: still 23:59:59 local, not 72 hours later
        (eod(2026, 3, 27), at("2026-03-23 09:00"), at("2026-03-26 09:00"), False, eod(2026, 3, 30)),
        # exact (an hours deadline): later by exactly the time suspended
        (at("2026-03-02 18:00"), at("2026-03-02 10:00"), at("2026-03-02 13:30"), True,
         at("2026-03-02 21:30")),
        # exact: landing on a Saturday is not moved
        (at("2026-04-24 20:00"), at("2026-04-24 10:00"), at("2026-04-24 14:00"), True,
         at("2026-04-25 00:00")),
        # exact: the real time elapsed, 23 hours over the night the clocks go forward
        (at("2026-03-28 20:00"), at("2026-03-28 10:00"), at("2026-03-29 10:00"), True,
         at("2026-03-29 20:00")),
    ],
)  # fmt: skip
def test_shift_moves_a_deadline_by_the_time_the_clock_stood_still(
    deadline: datetime, suspended: datetime, resumed: datetime, exact: bool, moved_to: datetime
) -> None:
    assert CAL.shift(deadline, suspended, resumed, exact) == moved_to


@pytest.mark.parametrize(
    ("deadline", "suspended", "resumed", "exact", "steps"),
    [
        # in days: the days suspended, the shift and the move past the weekend
        (
            eod(2026, 3, 12),
            at("2026-03-02 09:00"),
            at("2026-03-04 14:00"),
            False,
            (
                "suspended 2026-03-02 (Mon) → 2026-03-04 (Wed): 2 calendar days",
                "shifted 2026-03-12 (Thu) + 2 = 2026-03-14 (Sat)",
                "moved from 2026-03-14 (zaterdag) to 2026-03-16, the next working day; "
                "skipped 2026-03-15 zondag",
                "due 2026-03-16 (Mon) 23:59:59 Europe/Amsterdam (2026-03-16 22:59:59 UTC)",
            ),
        ),
        # exact: the time that stood still, to the second
        (
            at("2026-03-02 18:00"),
            at("2026-03-02 10:00"),
            at("2026-03-05 13:30"),
            True,
            (
                "suspended 2026-03-02 (Mon) 10:00 Europe/Amsterdam → "
                "2026-03-05 (Thu) 13:30 Europe/Amsterdam: 75:30:00 (h:mm:ss)",
                "shifted 2026-03-02 (Mon) 18:00 Europe/Amsterdam + 75:30:00 (h:mm:ss) exactly; "
                "a term in hours is never moved",
                "due 2026-03-05 (Thu) 21:30:00 Europe/Amsterdam (2026-03-05 20:30:00 UTC)",
            ),
        ),
    ],
)
def test_explain_shift_says_how_the_deadline_moved(
    deadline: datetime,
    suspended: datetime,
    resumed: datetime,
    exact: bool,
    steps: tuple[str, ...],
) -> None:
    derivation = CAL.explain_shift(deadline, suspended, resumed, exact)
    assert derivation.steps == steps
    assert derivation.due == CAL.shift(deadline, suspended, resumed, exact)


def test_shift_refuses_a_resume_before_the_suspension() -> None:
    with pytest.raises(ValueError, match="before it was suspended"):
        CAL.shift(eod(2026, 3, 10), at("2026-03-05 09:00"), at("2026-03-02 09:00"), False)


@pytest.mark.parametrize("duration", [
    Duration("working_days", 0), Duration("working_days", 1), Duration("working_days", 10),
    Duration("calendar_days", 3), Duration("weeks", 8), Duration("hours", 30),
])
def test_the_fast_due_agrees_with_the_explained_deadline(duration: Duration) -> None:
    # Every start hour over a year with Easter, Koningsdag, Christmas and a closed day.
    cal = WorkingCalendar("Europe/Amsterdam", [date(2026, 12, 28)])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hours in range(0, 366 * 24, 7):
        moment = start + timedelta(hours=hours)
        assert cal.due(moment, duration) == cal.deadline(moment, duration).due, moment


# -- the calendar's years ---------------------------------------------------------------------

# The calendar knows 2014 to 2200. Outside them every public method refuses with InvalidValue
# (exit 2) naming the range, never a ValueError or OverflowError (exit 70); a term counted from
# a day it knows but running off its end (or, counted back, off its start) is refused too.
# Closed on its last day, so that the next working day after it lies beyond the calendar.
LAST_CLOSED = WorkingCalendar(closed_days=[date(2200, 12, 31)])
# West of UTC, so that the end of the last day Python can hold is beyond it in UTC.
NEW_YORK = WorkingCalendar("America/New_York")
FAR = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # in Amsterdam already past datetime's range

OUTSIDE: list[tuple[str, Callable[[], Any], str]] = [
    ("a year before Koningsdag's holidays",
     lambda: CAL.holidays(2013), "the year 2013 is outside"),
    ("a year after the last",
     lambda: CAL.holidays(2201), "the year 2201 is outside"),
    ("the first year of datetime",
     lambda: CAL.holidays(1), "the year 1 is outside"),
    ("a day after the last year",
     lambda: CAL.is_working_day(date(2201, 1, 1)), "2201-01-01 is outside"),
    ("why a day is closed, far ahead",
     lambda: CAL.why_closed(date(9999, 12, 31)), "9999-12-31 is outside"),
    ("the next working day after the calendar's last day",
     lambda: LAST_CLOSED.next_working_day_on_or_after(date(2200, 12, 31)),
     "looking for the next working day from 2200-12-31 runs past the end of"),
    ("the local day of the last instant Python can hold",
     lambda: CAL.local_date(datetime.max.replace(tzinfo=UTC)), "9999-12-31 is outside"),
    ("the end of the last day Python can hold, west of UTC",
     lambda: NEW_YORK.end_of_day(date(9999, 12, 31)), "9999-12-31 is outside"),
    ("a term in working days from the first day of datetime (--now 0001-01-02)",
     lambda: CAL.due(utc("0001-01-02 12:00"), wd(5)), "0001-01-02 is outside"),
    ("a term from the day before the first year, which used to count into 2014",
     lambda: CAL.due(at("2013-12-31 10:00"), wd(1)), "2013-12-31 is outside"),
    ("a term from an instant that cannot be shown in Amsterdam (--now 9999-12-31T23:59)",
     lambda: CAL.due(FAR, wd(5)), "9999-12-31 is outside"),
    ("a term in weeks from the far future, whose end overflowed date",
     lambda: CAL.due(at("9999-12-30 10:00"), wk(8)), "9999-12-30 is outside"),
    ("a term in working days that runs off the end",
     lambda: CAL.due(at("2200-12-20 10:00"), wd(10)),
     "a term of 10 working days from 2200-12-20 runs past the end of"),
    ("a term in weeks that runs off the end",
     lambda: CAL.due(at("2200-12-20 10:00"), wk(8)),
     "a term of 8 weeks from 2200-12-20 runs past the end of"),
    ("a term in hours that runs off the end",
     lambda: CAL.due(at("2200-12-31 10:00"), hours(48)),
     "a term of 48 hours from 2200-12-31 runs past the end of"),
    ("a term in hours from before the first year",
     lambda: CAL.due(at("2000-01-01 10:00"), hours(1)), "2000-01-01 is outside"),
    ("the longest term there is, from the far future",
     lambda: CAL.due(at("9000-01-01 10:00"), Duration("weeks", 522)), "9000-01-01 is outside"),
    ("the explained deadline, calendar days",
     lambda: CAL.deadline(at("2200-12-20 10:00"), cd(30)),
     "a term of 30 calendar days from 2200-12-20 runs past the end of"),
    ("the explained deadline, from before the first year",
     lambda: CAL.deadline(at("2013-12-31 10:00"), wd(0)), "2013-12-31 is outside"),
    ("where an extension counts on from, past the end without a day looked up",
     lambda: CAL.unmoved(at("2200-12-20 10:00"), wk(8)),
     "a term of 8 weeks from 2200-12-20 runs past the end of"),
    ("a rung after the deadline, past the end",
     lambda: CAL.offset(eod(2200, 12, 29), wd(5)),
     "counting 5 working days from 2200-12-29 runs past the end of"),
    ("a reminder before the deadline, past the start",
     lambda: CAL.offset(eod(2014, 1, 2), wd(5), before=True),
     "counting 5 working days back from 2014-01-02 runs past the start of"),
    ("a reminder in hours before the deadline, past the start",
     lambda: CAL.offset(eod(2014, 1, 2), hours(72), before=True),
     "counting 72 hours back from 2014-01-02 runs past the start of"),
    ("a reminder in weeks before the deadline, past the start",
     lambda: CAL.offset(eod(2014, 1, 2), wk(1), before=True),
     "counting 1 week back from 2014-01-02 runs past the start of"),
    ("days overdue since a deadline before the first year",
     lambda: CAL.working_days_between(at("2013-06-01 10:00"), at("2014-02-01 10:00")),
     "2013-06-01 is outside"),
    ("days overdue until an instant Python cannot show in Amsterdam",
     lambda: CAL.working_days_between(at("2200-12-01 10:00"), FAR), "9999-12-31 is outside"),
    ("a suspension that moves the deadline off the end",
     lambda: CAL.shift(eod(2200, 12, 20), at("2200-11-01 10:00"), at("2200-12-15 10:00"), False),
     "moving the deadline of 2200-12-20 by the suspension runs past the end of"),
    ("a suspension that moves a deadline in hours off the end",
     lambda: CAL.shift(eod(2200, 12, 30), at("2200-11-01 10:00"), at("2200-12-15 10:00"), True),
     "moving the deadline of 2200-12-30 by the suspension runs past the end of"),
    ("the explained suspension, likewise",
     lambda: CAL.explain_shift(eod(2200, 12, 20), at("2200-11-01 10:00"), at("2200-12-15 10:00"), False),
     "moving the deadline of 2200-12-20 by the suspension runs past the end of"),
    ("the explained suspension in hours, likewise",
     lambda: CAL.explain_shift(eod(2200, 12, 30), at("2200-11-01 10:00"), at("2200-12-15 10:00"), True),
     "moving the deadline of 2200-12-30 by the suspension runs past the end of"),
]


@pytest.mark.parametrize(("call", "message"), [r[1:] for r in OUTSIDE], ids=[r[0] for r in OUTSIDE])
def test_outside_the_calendars_years_is_refused_as_bad_input(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidValue, match=re.escape(message)) as info:
        call()
    assert re.search(RANGE, info.value.message), "the message names the calendar's years"
    assert info.value.exit_code == 2


INSIDE: list[tuple[str, Callable[[], Any], Any]] = [
    ("the first working day of the first year (1 January is Nieuwjaarsdag)",
     lambda: CAL.next_working_day_on_or_after(date(2014, 1, 1)), date(2014, 1, 2)),
    ("a term that ends on the calendar's last day is still counted",
     lambda: CAL.due(at("2200-12-30 10:00"), wd(1)), eod(2200, 12, 31)),
    ("the longest term there is, from today, ends well inside",
     lambda: CAL.due(at("2026-03-02 10:00"), Duration("working_days", 2610)).year, 2036),
    ("a reminder counted back to the first working day of the first year",
     lambda: CAL.offset(eod(2014, 1, 3), wd(1), before=True), eod(2014, 1, 2)),
    ("working days between two instants of the last year",
     lambda: CAL.working_days_between(eod(2200, 12, 29), eod(2200, 12, 31)), 2),
]


@pytest.mark.parametrize(("call", "result"), [r[1:] for r in INSIDE], ids=[r[0] for r in INSIDE])
def test_the_first_and_last_years_are_counted(call: Callable[[], Any], result: Any) -> None:
    assert call() == result
