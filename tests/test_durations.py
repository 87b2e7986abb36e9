"""Terms as request types write them, and intervals as the worker's options write them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from engine.core.durations import MAX_AMOUNT, Duration, InvalidDuration, parse_duration, parse_interval
from engine.errors import InvalidValue


@pytest.mark.parametrize(
    ("value", "duration"),
    [
        # each of the four units
        ({"working_days": 5}, Duration("working_days", 5)),
        ({"calendar_days": 7}, Duration("calendar_days", 7)),
        ({"weeks": 8}, Duration("weeks", 8)),
        ({"hours": 48}, Duration("hours", 48)),
        # zero is a term too: `after: {working_days: 0}` fires at the deadline itself
        ({"working_days": 0}, Duration("working_days", 0)),
        # the longest term of each unit, about ten years
        ({"working_days": 2610}, Duration("working_days", 2610)),
        ({"calendar_days": 3650}, Duration("calendar_days", 3650)),
        ({"weeks": 522}, Duration("weeks", 522)),
        ({"hours": 87600}, Duration("hours", 87600)),
    ],
)
def test_parse_duration(value: object, duration: Duration) -> None:
    assert parse_duration(value) == duration


UNITS = "expected one of working_days, calendar_days, weeks, hours"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # not a mapping at all
        ("5wd", "expected a duration like {working_days: 5}, got '5wd'"),
        # an empty value in YAML
        (None, "expected a duration like {working_days: 5}, got None"),
        # a list is not a mapping either
        ([("weeks", 1)], "expected a duration like {working_days: 5}, got [('weeks', 1)]"),
        # a mapping without a unit
        ({}, f"no unit given; {UNITS}"),
        # a unit the calendar does not know
        ({"days": 5}, f"unknown unit 'days'; {UNITS}"),
        # an unknown unit is named even next to a known one
        ({"weeks": 1, "months": 2}, f"unknown unit 'months'; {UNITS}"),
        # two units
        ({"working_days": 5, "weeks": 1}, "give exactly one unit, got working_days and weeks"),
        # three units
        (
            {"working_days": 5, "weeks": 1, "hours": 2},
            "give exactly one unit, got working_days, weeks and hours",
        ),
        # text is not an amount
        ({"working_days": "x"}, "amount must be a whole number >= 0, got 'x'"),
        # nor is a number written as text
        ({"working_days": "5"}, "amount must be a whole number >= 0, got '5'"),
        # a negative amount
        ({"working_days": -1}, "amount must be a whole number >= 0, got -1"),
        # a fraction
        ({"weeks": 2.5}, "amount must be a whole number >= 0, got 2.5"),
        # a whole float is still a float
        ({"weeks": 2.0}, "amount must be a whole number >= 0, got 2.0"),
        # `working_days: true` is a mistake, although Python counts bool as int
        ({"working_days": True}, "amount must be a whole number >= 0, got True"),
        # an empty amount in YAML
        ({"hours": None}, "amount must be a whole number >= 0, got None"),
        # one more than the longest term, in each unit
        ({"working_days": 2611}, "working_days must be at most 2610 (about ten years), got 2611"),
        ({"calendar_days": 3651}, "calendar_days must be at most 3650 (about ten years), got 3651"),
        ({"weeks": 523}, "weeks must be at most 522 (about ten years), got 523"),
        ({"hours": 87601}, "hours must be at most 87600 (about ten years), got 87601"),
        # the tester's lead time: every case of the type crashed with OverflowError
        (
            {"weeks": 10**29},
            "weeks must be at most 522 (about ten years), got 100000000000000000000000000000",
        ),
        # the tester's state deadline; the message cuts a long number short
        (
            {"working_days": 10**70},
            f"working_days must be at most 2610 (about ten years), got 1{'0' * 59}… (71 characters)",
        ),
        # more digits than Python will turn into text: still a message, not a crash
        ({"hours": 10**5000}, "hours must be at most 87600 (about ten years), got a number too long to show"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


def test_a_duration_built_by_hand_is_checked_too() -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown unit 'months'; {UNITS}")):
        Duration("months", 1)


@pytest.mark.parametrize(
    ("unit", "amount"),
    [
        # `case extend --weeks 99999999999999999999` (crashed in the calendar)
        ("weeks", 99999999999999999999),
        # `case extend --weeks 999999`
        ("weeks", 999999),
        # `case extend --working-days 9999999999`
        ("working_days", 9999999999),
        # just past the bound
        ("weeks", MAX_AMOUNT["weeks"] + 1),
    ],
)
def test_a_term_from_the_command_line_is_refused_as_bad_input(unit: str, amount: int) -> None:
    """The CLI builds `Duration(unit, n)` itself: what that raises must be an exit-2 error."""
    with pytest.raises(InvalidValue, match=f"{unit} must be at most {MAX_AMOUNT[unit]}") as info:
        Duration(unit, amount)
    assert info.value.exit_code == 2
    # ... and still a ValueError, which the definition checker turns into a problem.
    assert isinstance(info.value, InvalidDuration)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        # plural
        (Duration("working_days", 5), "5 working days"),
        # singular
        (Duration("working_days", 1), "1 working day"),
        # zero takes the plural
        (Duration("working_days", 0), "0 working days"),
        # calendar days, singular
        (Duration("calendar_days", 1), "1 calendar day"),
        # a week
        (Duration("weeks", 1), "1 week"),
        # weeks
        (Duration("weeks", 8), "8 weeks"),
        # hours
        (Duration("hours", 8), "8 hours"),
        # an hour
        (Duration("hours", 1), "1 hour"),
    ],
)
def test_duration_reads_as_english(duration: Duration, text: str) -> None:
    assert str(duration) == text


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        # seconds
        ("30s", timedelta(seconds=30)),
        # minutes
        ("5m", timedelta(minutes=5)),
        # hours
        ("1h", timedelta(hours=1)),
        # hours and minutes combined
        ("2h30m", timedelta(hours=2, minutes=30)),
        # all three, zeros allowed inside
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        # a bare number is seconds
        ("90", timedelta(seconds=90)),
        # surrounding spaces, as a shell or an environment variable may leave them
        (" 5m ", timedelta(minutes=5)),
        # upper case
        ("1H30M", timedelta(hours=1, minutes=30)),
        # the longest interval: a day
        ("24h", timedelta(hours=24)),
        # a day in seconds
        ("86400", timedelta(days=1)),
        # leading zeros are not digits that count
        ("0000000000001s", timedelta(seconds=1)),
    ],
)
def test_parse_interval(text: str, interval: timedelta) -> None:
    assert parse_interval(text) == interval


SHAPE = "expected an interval like 30s, 5m, 1h or 2h30m (a bare number is seconds), got"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # empty
        ("", f"{SHAPE} ''"),
        # only spaces
        ("  ", f"{SHAPE} '  '"),
        # negative
        ("-5m", f"{SHAPE} '-5m'"),
        # an unknown unit
        ("5x", f"{SHAPE} '5x'"),
        # days are not a unit of intervals
        ("1d", f"{SHAPE} '1d'"),
        # a unit without a number
        ("m", f"{SHAPE} 'm'"),
        # fractions
        ("1.5h", f"{SHAPE} '1.5h'"),
        # the units out of order
        ("30m2h", f"{SHAPE} '30m2h'"),
        # a unit twice
        ("5m5m", f"{SHAPE} '5m5m'"),
        # a space inside
        ("5 m", f"{SHAPE} '5 m'"),
        # digits of another script
        ("٣٠", f"{SHAPE} '٣٠'"),
        # zero, bare
        ("0", "interval must be longer than zero, got '0'"),
        # zero with units
        ("0h0m", "interval must be longer than zero, got '0h0m'"),
        # more than timedelta can hold
        ("9999999999999h", "interval is too long (at most 24h, a day), got '9999999999999h'"),
        # timedelta holds it, the scheduler overflowed on it (exit 70)
        ("999999999h", "interval is too long (at most 24h, a day), got '999999999h'"),
        # one second more than a day
        ("24h1s", "interval is too long (at most 24h, a day), got '24h1s'"),
        # a day and a second, bare
        ("86401", "interval is too long (at most 24h, a day), got '86401'"),
        # more digits than int() takes: the message says why, and cuts the text short
        ("9" * 5000, f"interval is too long (at most 24h, a day), got '{'9' * 59}… (5000 characters)"),
    ],
)
def test_parse_interval_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_interval(text)


@pytest.mark.parametrize(
    ("unit", "amount", "nl", "en"),
    [
        ("working_days", 1, "1 werkdag", "1 working day"),  # singular
        ("working_days", 10, "10 werkdagen", "10 working days"),  # plural
        ("calendar_days", 7, "7 kalenderdagen", "7 calendar days"),
        ("weeks", 1, "1 week", "1 week"),  # the same word in both languages
        ("weeks", 6, "6 weken", "6 weeks"),
        ("hours", 4, "4 uur", "4 hours"),  # Dutch counts hours in the singular
    ],
)
def test_a_term_in_the_words_of_each_language(unit: str, amount: int, nl: str, en: str) -> None:
    term = Duration(unit, amount)
    assert (term.label("nl"), term.label("en"), str(term)) == (nl, en, en)
