"""Lengths of time as the product's files and command line write them.

Two kinds, kept apart on purpose: a :class:`Duration` is a term in a request type
(``{working_days: 5}``) whose end depends on the calendar, so it stays symbolic until
:mod:`engine.core.calendar` resolves it; an interval (``2h30m``) is how often the worker runs,
plain elapsed time, so it becomes a :class:`~datetime.timedelta` at once.

Both parsers raise :class:`ValueError` with a message fit for the user: the definition loader
turns it into a problem with its place in the file, the CLI into its ``Error:`` line. For a
term that is an :class:`InvalidDuration`, also an :class:`~engine.errors.InvalidValue`.

Every length is bounded, so that none can run a deadline off the calendar or a timer off the
clock. A municipality's terms run from hours to months (the Awb's default decision term is
eight weeks, an extension adds weeks), so a term may be at most about ten years in any unit
(:data:`MAX_AMOUNT`): far beyond any real term, yet small enough that a deadline counted from
any day the calendar knows stays countable. A worker interval may be at most a day
(:data:`MAX_INTERVAL`): deadlines end at the end of a day, so a sweep less often than daily
would fire rungs days late, and longer waits overflow the scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from engine.errors import InvalidValue
from engine.errors import shown as _short

UNITS = ("working_days", "calendar_days", "weeks", "hours")

_DUTCH = {
    "working_days": ("werkdag", "werkdagen"),
    "calendar_days": ("kalenderdag", "kalenderdagen"),
    "weeks": ("week", "weken"),
    "hours": ("uur", "uur"),
}
_SINGULAR = {
    "working_days": "working day",
    "calendar_days": "calendar day",
    "weeks": "week",
    "hours": "hour",
}

_EXPECTED_UNIT = f"expected one of {', '.join(UNITS)}"

MAX_AMOUNT = {
    "working_days": 2610,  # 522 weeks of five working days
    "calendar_days": 3650,
    "weeks": 522,
    "hours": 87600,  # 3650 days
}
"""The largest amount of each unit: about ten years (see the module's docstring)."""

MAX_INTERVAL = timedelta(hours=24)
# More digits than this in one part of an interval is far beyond MAX_INTERVAL; checked before
# int(), which refuses very long digit strings with a message about Python, not the user.
_INTERVAL_DIGITS = 9


class InvalidDuration(InvalidValue, ValueError):
    """A term that cannot be one: an unknown unit, a negative, fractional or absurd amount.

    It is an :class:`InvalidValue`, so a :class:`Duration` built from the command line (``case
    extend --weeks N``) is refused with exit 2 like any bad value, and a :class:`ValueError`,
    so the definition checker reports it as a problem with its place in the file.
    """


# A bare number is seconds; otherwise hours, minutes and seconds in that order, each at most
# once. ASCII digits only: str.isdigit and \d would also take digits of other scripts.
_INTERVAL = re.compile(r"([0-9]+)|(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


@dataclass(frozen=True)
class Duration:
    """A term such as ``{working_days: 5}``.

    It validates itself so that no code path, parsed or built by hand, can carry a unit the
    calendar does not know or an amount beyond :data:`MAX_AMOUNT`: building one raises
    :class:`InvalidDuration`.
    """

    unit: str
    amount: int

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InvalidDuration(f"unknown unit {self.unit!r}; {_EXPECTED_UNIT}")
        # bool is an int to Python, but `working_days: true` in a file is a mistake.
        if type(self.amount) is not int or self.amount < 0:
            raise InvalidDuration(f"amount must be a whole number >= 0, got {_short(self.amount)}")
        most = MAX_AMOUNT[self.unit]
        if self.amount > most:
            raise InvalidDuration(
                f"{self.unit} must be at most {most} (about ten years), got {_short(self.amount)}"
            )

    def __str__(self) -> str:
        noun = _SINGULAR[self.unit]
        return f"{self.amount} {noun if self.amount == 1 else noun + 's'}"

    def label(self, language: str = "en") -> str:
        """The term in words of `language` ("nl" or "en"): for emails and diagrams, whose
        domain text is Dutch; the command line and its messages stay English."""
        if language != "nl":
            return str(self)
        one, many = _DUTCH[self.unit]
        return f"{self.amount} {one if self.amount == 1 else many}"


def parse_duration(value: object) -> Duration:
    """Read a term as written in a request type: a mapping with exactly one unit."""
    if not isinstance(value, Mapping):
        raise InvalidDuration(f"expected a duration like {{working_days: 5}}, got {_short(value)}")
    unknown = [key for key in value if key not in UNITS]
    if unknown:
        raise InvalidDuration(f"unknown unit {_short(unknown[0])}; {_EXPECTED_UNIT}")
    if not value:
        raise InvalidDuration(f"no unit given; {_EXPECTED_UNIT}")
    if len(value) > 1:
        *rest, last = value
        raise InvalidDuration(f"give exactly one unit, got {', '.join(rest)} and {last}")
    ((unit, amount),) = value.items()
    return Duration(unit, amount)


_TERM = re.compile(r"([0-9]{1,9})(wd|d|w|h)")
_TERM_UNITS = {"wd": "working_days", "d": "calendar_days", "w": "weeks", "h": "hours"}


def parse_term(text: str) -> Duration:
    """Read a term as written on the command line (``case direct --within``): ``5wd`` working
    days, ``10d`` calendar days, ``2w`` weeks, ``48h`` hours. Zero is refused: a term that
    has ended when it is given asks nothing."""
    spec = text.strip().lower()
    match = _TERM.fullmatch(spec)
    if match is None:
        raise InvalidDuration(f"expected a term like 5wd (working days), 10d (days), 2w (weeks) or 48h (hours),"
                              f" got {_short(text)}")
    amount, unit = int(match.group(1)), _TERM_UNITS[match.group(2)]
    if amount == 0:
        raise InvalidDuration(f"a term must be longer than zero, got {_short(text)}")
    return Duration(unit, amount)


def term_text(duration: Duration) -> str:
    """A term as the command line writes it (the inverse of :func:`parse_term`)."""
    suffix = {unit: short for short, unit in _TERM_UNITS.items()}[duration.unit]
    return f"{duration.amount}{suffix}"


def parse_interval(text: str) -> timedelta:
    """Read how often the worker runs: ``30s``, ``5m``, ``1h``, ``2h30m`` or ``90`` (seconds).

    Zero is refused: a schedule that fires continuously is never what was meant; so is more
    than :data:`MAX_INTERVAL`.
    """
    spec = text.strip().lower()
    match = _INTERVAL.fullmatch(spec)
    if not spec or match is None:
        raise ValueError(
            f"expected an interval like 30s, 5m, 1h or 2h30m (a bare number is seconds), "
            f"got {_short(text)}"
        )
    groups = match.groups()
    interval = MAX_INTERVAL + timedelta(seconds=1)  # what any part of too many digits is
    if all(len(group.lstrip("0")) <= _INTERVAL_DIGITS for group in groups if group):
        bare, hours, minutes, seconds = (int(group or 0) for group in groups)
        interval = timedelta(hours=hours, minutes=minutes, seconds=bare + seconds)
    if interval > MAX_INTERVAL:
        raise ValueError(f"interval is too long (at most 24h, a day), got {_short(text)}")
    if not interval:
        raise ValueError(f"interval must be longer than zero, got {_short(text)}")
    return interval


