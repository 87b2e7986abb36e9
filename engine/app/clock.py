"""The one clock of a run. Pure code takes `now` as an argument; only the edge asks a Clock."""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

from engine.errors import InvalidValue


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that only moves when told: for simulations (`--now`) and tests."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self.at

    def set(self, at: dt.datetime) -> None:
        self.at = at.astimezone(dt.UTC)

    def advance(self, delta: dt.timedelta) -> None:
        self.at += delta


def parse_now(text: str, timezone: str = "Europe/Amsterdam") -> dt.datetime:
    """An ISO-8601 instant; without a zone it is read as local time of the organisation."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(f"--now expects an ISO-8601 date or time, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidValue(f"--now {text!r} is beyond the range of dates that can be computed") from None
