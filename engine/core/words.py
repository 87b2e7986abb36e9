"""Dates in words, in the languages the product writes: `13 maart 2026`, `vrijdag`.

Spelled out here rather than taken from the system locale, which is rarely Dutch on a
server; emails, the report and the public page all say dates the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

DAYS: Final[Mapping[str, tuple[str, ...]]] = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS: Final[Mapping[str, tuple[str, ...]]] = {
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
           "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}


def long_date(day: dt.date, language: str = "nl") -> str:
    """`13 maart 2026` (nl) or `13 March 2026` (en)."""
    return f"{day.day} {MONTHS[language][day.month - 1]} {day.year}"
