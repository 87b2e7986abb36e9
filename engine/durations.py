"""Lengths of time as the product's files and command line write them.

Two kinds, kept apart on purpose: a :class:`Duration` is a term in a request type
(``{working_days: 5}``) whose end depends on the calendar, so it stays symbolic until
:mod:`engine.calendar` resolves it; an interval (``2h30m``) is how often the worker runs,
plain elapsed time, so it becomes a :class:`~datetime.timedelta` at once.

Both parsers raise :class:`ValueError` with a message fit for the user: the definition loader
turns it into a problem with its place in the file, the CLI into its ``Error:`` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

UNITS = ("working_days", "calendar_days", "weeks", "hours")

_SINGULAR = {
    "working_days": "working day",
    "calendar_days": "calendar day",
    "weeks": "week",
    "hours": "hour",
}

_EXPECTED_UNIT = f"expected one of {', '.join(UNITS)}"

# A bare number is seconds; otherwise hours, minutes and seconds in that order, each at most
# once. ASCII digits only: str.isdigit and \d would also take digits of other scripts.
_INTERVAL = re.compile(r"([0-9]+)|(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


@dataclass(frozen=True)
class Duration:
    """A term such as ``{working_days: 5}``.

    It validates itself so that no code path, parsed or built by hand, can carry a unit the
    calendar does not know.
    """

    unit: str
    amount: int

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; {_EXPECTED_UNIT}")
        # bool is an int to Python, but `working_days: true` in a file is a mistake.
        if type(self.amount) is not int or self.amount < 0:
            raise ValueError(f"amount must be a whole number >= 0, got {self.amount!r}")

    def __str__(self) -> str:
        noun = _SINGULAR[self.unit]
        return f"{self.amount} {noun if self.amount == 1 else noun + 's'}"


def parse_duration(value: object) -> Duration:
    """Read a term as written in a request type: a mapping with exactly one unit."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a duration like {{working_days: 5}}, got {value!r}")
    unknown = [key for key in value if key not in UNITS]
    if unknown:
        raise ValueError(f"unknown unit {unknown[0]!r}; {_EXPECTED_UNIT}")
    if not value:
        raise ValueError(f"no unit given; {_EXPECTED_UNIT}")
    if len(value) > 1:
        *rest, last = value
        raise ValueError(f"give exactly one unit, got {', '.join(rest)} and {last}")
    ((unit, amount),) = value.items()
    return Duration(unit, amount)


def parse_interval(text: str) -> timedelta:
    """Read how often the worker runs: ``30s``, ``5m``, ``1h``, ``2h30m`` or ``90`` (seconds).

    Zero is refused: a schedule that fires continuously is never what was meant.
    """
    spec = text.strip().lower()
    match = _INTERVAL.fullmatch(spec)
    if not spec or match is None:
        raise ValueError(
            f"expected an interval like 30s, 5m, 1h or 2h30m (a bare number is seconds), "
            f"got {text!r}"
        )
    bare, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    try:
        interval = timedelta(hours=hours, minutes=minutes, seconds=bare + seconds)
    except OverflowError:
        raise ValueError(f"interval is too long, got {text!r}") from None
    if not interval:
        raise ValueError(f"interval must be longer than zero, got {text!r}")
    return interval
