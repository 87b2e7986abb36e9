"""The report reads instants as integers, µs since the epoch, converted by the database: the
conversion is exact on both databases, and the builder's local days and working days from
them agree with the calendar's, around midnight, in the last second of a day and on the days
the clocks change."""

from __future__ import annotations

import datetime as dt
import random
from datetime import UTC

import sqlalchemy as sa

from engine.app.service import Loket
from engine.core.calendar import WorkingCalendar
from engine.reporting.builder import ReportBuilder, WorkingDayCounter
from engine.store.reports import micros
from engine.store.types import UTCDateTime

EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
US = dt.timedelta(microseconds=1)


def _moments() -> list[dt.datetime]:
    """Fractions that round the wrong way if the database rounds, and instants at the local
    midnights and last seconds around Amsterdam's clock changes of 2026 and New Year."""
    out = [dt.datetime(2026, 5, 4, 10, 0, 0, f, tzinfo=UTC) for f in (0, 1, 499_999, 500_000, 999_999)]
    for day, offset in ((dt.date(2026, 3, 28), 1), (dt.date(2026, 3, 29), 2), (dt.date(2026, 10, 25), 2),
                        (dt.date(2026, 10, 26), 1), (dt.date(2026, 12, 31), 1)):
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) - dt.timedelta(hours=offset)
        for delta in (dt.timedelta(0), dt.timedelta(seconds=-1), dt.timedelta(microseconds=-1),
                      dt.timedelta(seconds=-1, microseconds=-500_000), dt.timedelta(hours=1),
                      dt.timedelta(hours=2, microseconds=999_999)):
            out.append(midnight + delta)
    return out


def test_micros_is_exact_on_both_databases(loket: Loket) -> None:
    dialect = loket.engine.dialect.name
    moments = _moments()
    with loket.engine.connect() as conn:
        got = [conn.execute(sa.select(micros(sa.literal(m, UTCDateTime()), dialect))).scalar_one()
               for m in moments]
    assert got == [(m - EPOCH) // US for m in moments]


def test_working_days_from_micros_agree_with_the_counter(loket: Loket) -> None:
    cal = WorkingCalendar("Europe/Amsterdam", [dt.date(2026, 12, 28)])
    builder = ReportBuilder(now=dt.datetime(2027, 1, 10, tzinfo=UTC), org=loket.organisation(), calendar=cal,
                            latest=loket.latest_types(), type_of=loket.request_type)
    counter = WorkingDayCounter(cal)
    rng = random.Random(3)
    moments = _moments()
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    moments += [base + dt.timedelta(microseconds=rng.randrange(0, 365 * 86_400 * 10**6)) for _ in range(60)]
    for a in moments:
        for b in moments:
            assert builder._working_between((a - EPOCH) // US, (b - EPOCH) // US) == counter.between(a, b), (a, b)
