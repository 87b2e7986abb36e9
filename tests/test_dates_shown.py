"""Dates the product writes keep a four-digit year (SPEC §5 shows ISO dates): the C library's
strftime writes year 1 as `1`, so `--since 0001-01-02` once came back as "1-01-02". A period
limit outside the working-day calendar's years is accepted, as `audit export` accepts it: it
only bounds a period, and nothing is counted on the calendar from it."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.app.service import Loket
from engine.core.views import formatted, local
from engine.reporting.figures import WeekFigures
from tests.conftest import run_cli


@pytest.mark.parametrize("value, pattern, shown", [
    (dt.date(1, 1, 2), "%Y-%m-%d", "0001-01-02"),
    (dt.date(1, 1, 2), "%d-%m-%Y", "02-01-0001"),
    (dt.datetime(999, 12, 31, 23, 5), "%Y-%m-%d %H:%M", "0999-12-31 23:05"),
    (dt.date(2026, 3, 2), "%d-%m-%Y", "02-03-2026"),
])
def test_a_year_is_written_in_four_digits(value: dt.date, pattern: str, shown: str) -> None:
    assert formatted(value, pattern) == shown


def test_a_local_instant_in_year_one() -> None:
    assert local(dt.datetime(1, 1, 2, 12, 0, tzinfo=dt.UTC), "UTC") == "0001-01-02 12:00"


def test_a_week_of_year_one_is_labelled_with_four_digits() -> None:
    week = WeekFigures(year=1, week=1, monday=dt.date(1, 1, 1), received=0, closed=0, overdue=0)
    assert week.label == "0001-W01"


@pytest.mark.parametrize("args, shown", [
    (["report", "--since", "0001-01-02"], "(period from 0001-01-02 00:00 now)"),
    (["report", "--since", "0999-06-01", "--until", "2026-03-01"],
     "(period from 0999-06-01 00:00 before 2026-03-01 00:00)"),
    (["report", "--since", "0001-01-02", "--html", "-"], "vanaf 02-01-0001"),
])
def test_the_report_writes_early_period_limits_with_four_digit_years(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str], args: list[str], shown: str
) -> None:
    code, out, err = run_cli(capsys, "--db", db_url, *args)
    assert code == 0, err
    assert shown in out
    assert " 1-01-02" not in out and "02-01-1 " not in out and "-01-1<" not in out
