"""The per-case pass of the report takes a closed case's local days from a per-day offset
table and its working days from prefix sums, in integers: each figure equals the direct
computation (the calendar's local date, its ISO week, `WorkingDayCounter.between` of the
datetimes) over a wide range of instants — local midnights and last seconds, every change of
Amsterdam's clocks from 2020 to 2031, New Year around ISO week 53 — and a clock set back
gives no negative time."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC

import pytest

from engine.app.service import Loket
from engine.core.calendar import WorkingCalendar
from engine.reporting.builder import ReportBuilder, WorkingDayCounter
from engine.reporting.figures import CaseFacts
from engine.store.reports import _json

EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
ZONE = "Europe/Amsterdam"
HOLIDAYS = [dt.date(2026, 12, 28), dt.date(2027, 1, 1), dt.date(2020, 12, 31)]


def _us(moment: dt.datetime) -> int:
    return (moment - EPOCH) // US


def _clock_changes() -> Iterator[dt.datetime]:
    """Amsterdam's clock changes, 2020-2031: the last Sundays of March and October, 01:00 UTC."""
    for year in range(2020, 2032):
        for month in (3, 10):
            last = dt.date(year, month, 31)
            sunday = last - dt.timedelta(days=(last.weekday() + 1) % 7)
            yield dt.datetime(sunday.year, sunday.month, sunday.day, 1, tzinfo=UTC)


def _moments() -> list[dt.datetime]:
    """Instants around each clock change, around the local midnights and last seconds either
    side of them and of New Year (2020 and 2026 end in ISO week 53), and at random."""
    out = []
    nudges = (dt.timedelta(0), -US, dt.timedelta(seconds=-1), dt.timedelta(seconds=1),
              dt.timedelta(seconds=-1, microseconds=-500_000), dt.timedelta(microseconds=999_999))
    anchors = list(_clock_changes())
    for change in list(anchors):
        for hours in (-25, -2, -1, 1, 22, 23, 24):
            anchors.append(change + dt.timedelta(hours=hours))
    for year in (2020, 2021, 2026, 2027):
        for hour in (22, 23):  # local midnight in winter; an hour before it
            anchors.append(dt.datetime(year - 1, 12, 31, hour, tzinfo=UTC))
            anchors.append(dt.datetime(year, 1, 3, hour, tzinfo=UTC))
    out = [anchor + nudge for anchor in anchors for nudge in nudges]
    rng = random.Random(12)
    base = dt.datetime(2020, 1, 1, tzinfo=UTC)
    out += [base + dt.timedelta(microseconds=rng.randrange(0, 12 * 365 * 86_400 * 10**6)) for _ in range(150)]
    return sorted(out)


@pytest.fixture
def builder(loket: Loket) -> ReportBuilder:
    return ReportBuilder(now=dt.datetime(2032, 1, 1, tzinfo=UTC), org=loket.organisation(),
                         calendar=WorkingCalendar(ZONE, HOLIDAYS), latest=loket.latest_types(),
                         type_of=loket.request_type)


def _closed(case_id: int, created: dt.datetime, closed: dt.datetime) -> CaseFacts:
    return CaseFacts(case_id, f"M-{case_id}", "melding", 1, "afgehandeld", None, _us(created), _us(closed),
                     _us(closed), None, None, False, False, {})


def test_closed_cases_lead_times_and_weeks_equal_the_direct_computation(builder: ReportBuilder) -> None:
    cal = builder.calendar
    counter = WorkingDayCounter(cal)
    moments = _moments()
    rng = random.Random(5)
    pairs = [(a, b) for a in moments[::9] for b in moments[::6]]  # b before a too: a clock set back
    pairs += [(a, a + dt.timedelta(seconds=rng.choice((1, 59, 3600, 86399, 86400, 86401))))
              for a in moments]
    for table in (counter, builder.working_days):  # one table over all (each widening adds a margin)
        table.between(moments[0], moments[-1])
    weeks = builder._weeks
    expected: Counter[tuple[int, int]] = Counter()
    for number, (a, b) in enumerate(pairs, start=1):
        year, week, _ = cal.local_date(b).isocalendar()
        count = weeks[(year, week)][1] if (year, week) in weeks else 0
        builder.add_case(_closed(number, a, b), [])
        total = builder._total
        assert total.lead_working[-1] == counter.between(a, b), (a, b)
        assert total.lead[-1] == max((b - a).total_seconds(), 0.0) / 86400, (a, b)
        assert weeks[(year, week)][1] == count + 1, (a, b)
        expected[(year, week)] += 1
    assert {key: counts[1] for key, counts in weeks.items() if counts[1]} == expected
    assert min(builder._total.lead) == 0.0 and min(builder._total.lead_working) == 0  # some set back
    assert builder._recent
    for closed, _, realised, _ in builder._recent:
        assert realised.closed_on == cal.local_date(EPOCH + closed * US)


def test_week_of_an_instant_in_micros_equals_the_calendars(builder: ReportBuilder) -> None:
    cal = builder.calendar
    extremes = [dt.datetime(1969, 12, 31, 23, 30, tzinfo=UTC), dt.datetime(1960, 6, 1, 12, tzinfo=UTC),
                dt.datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC), dt.datetime(2150, 12, 31, 23, tzinfo=UTC)]
    for moment in _moments() + extremes:
        found = builder._week_of_us(_us(moment))
        year, week, _ = cal.local_date(moment).isocalendar()
        assert found is builder._weeks[(year, week)], moment
        assert found is builder._week_of_ts(_us(moment) / 1_000_000), moment


@pytest.mark.parametrize("text", [
    '{"title": "Bankje", "buurt": "Noord", "amount": "12,50"}', '{"a": [1, 2.5, null, true], "b": {"c": "\\u00e9"}}',
    '{}', '[]', '"x"', '12', ' {"a": 1}', '{"a": 1} ', '{"a": 1}\n', '{"a": 1}{"b": 2}', '{"a": NaN}',
    '{"a": 1, "a": 2}', '{"a"', ''])
def test_field_values_decode_as_json_loads(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except ValueError as error:
        with pytest.raises(type(error)):
            _json(text)
    else:
        assert _json(text) == expected and type(_json(text)) is type(expected)
