"""Retention terms (SPEC §15): how long a closed case is kept, and what happens when that ends.

A request type may say ``retention: {after: {years: 7}, action: destroy}`` — the term the
municipality's selection list gives the kind of case, counted from the day the case closed
(in the organisation's time zone), and whether the case is then destroyed or only its personal
data erased (``redact``). ``after`` may also be written as text: ``7 years``, ``18 months``,
``10 jaar``. Pure: the store finds the cases, `engine.app.retention` carries the terms out.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.checking import Checker, type_name

ACTIONS = ("redact", "destroy")
RETENTION_KEYS = ("after", "action")
TERM_UNITS = ("years", "months", "weeks", "days")
MAX_YEARS = 200
"""A longer term is not a term: a case kept for good carries no `retention`."""

_WORDS = {
    "years": "years", "year": "years", "y": "years", "jaar": "years", "jaren": "years",
    "months": "months", "month": "months", "maanden": "months", "maand": "months",
    "weeks": "weeks", "week": "weeks", "w": "weeks", "weken": "weeks",
    "days": "days", "day": "days", "d": "days", "dagen": "days", "dag": "days",
}
_PART = re.compile(r"\s*([0-9]{1,6})\s*([a-z]+)\s*,?")


@dataclass(frozen=True)
class Term:
    """A period of calendar time: years and months count on the calendar (a case closed on
    29 February is due on 28 February of a year without one), weeks and days after them."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __str__(self) -> str:
        parts = [f"{n} {unit if n != 1 else unit[:-1]}"
                 for n, unit in ((self.years, "years"), (self.months, "months"), (self.days, "days")) if n]
        return ", ".join(parts) or "0 days"

    def after(self, day: dt.date) -> dt.date:
        """The day this term after ``day`` ends."""
        months = day.year * 12 + day.month - 1 + self.years * 12 + self.months
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return dt.date(year, month + 1, min(day.day, last)) + dt.timedelta(days=self.days)

    def label(self, language: str = "en") -> str:
        """The term in words; ``nl`` for Dutch (the destruction list)."""
        if language != "nl":
            return str(self)
        words = (("jaar", "jaar"), ("maand", "maanden"), ("dag", "dagen"))
        parts = [f"{n} {one if n == 1 else many}"
                 for n, (one, many) in zip((self.years, self.months, self.days), words, strict=True) if n]
        return ", ".join(parts) or "0 dagen"

    def as_data(self) -> dict[str, int]:
        return {unit: n for unit, n in (("years", self.years), ("months", self.months), ("days", self.days)) if n}


@dataclass(frozen=True)
class Retention:
    after: Term
    action: str
    """``redact`` (erase the personal data) or ``destroy`` (delete the case, leave a tombstone)."""

    def due_on(self, closed_on: dt.date) -> dt.date:
        """The day the term of a case closed on ``closed_on`` has passed."""
        return self.after.after(closed_on)

    def latest_closing(self, today: dt.date) -> dt.date:
        """A day no earlier than the last closing day whose term has passed by ``today``
        (used to narrow the search; :meth:`due_on` decides)."""
        back = Term(self.after.years, self.after.months, 0)
        months = today.year * 12 + today.month - 1 - back.years * 12 - back.months
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        # A few days of slack: 29 February + 1 year is 28 February, and a month back from the
        # 31st is the 30th; `due_on` decides for each case.
        back_day = dt.date(year, month + 1, min(today.day, last))
        return back_day - dt.timedelta(days=self.after.days - 4)


def parse_term(value: Any) -> Term:
    """``{years: 7}`` (also months, weeks, days) or text such as ``7 years`` / ``10 jaar``;
    ValueError saying what is wrong."""
    amounts: dict[str, int] = dict.fromkeys(TERM_UNITS, 0)
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"give at least one of {', '.join(TERM_UNITS)}, e.g. {{years: 7}}")
        for unit, amount in value.items():
            if unit not in TERM_UNITS:
                raise ValueError(f"unknown unit {unit!r}: expected {', '.join(TERM_UNITS)}")
            if type(amount) is not int or amount < 0:
                raise ValueError(f"{unit} must be a whole number of 0 or more, got {amount!r}")
            amounts[unit] += amount
    elif isinstance(value, str):
        text = value.strip().lower()
        pos = 0
        while pos < len(text):
            found = _PART.match(text, pos)
            if found is None or found.group(2) not in _WORDS:
                raise ValueError(f"cannot read {value!r}: write e.g. '7 years', '18 months' or {{years: 7}}")
            amounts[_WORDS[found.group(2)]] += int(found.group(1))
            pos = found.end()
        if not text:
            raise ValueError("the term is empty: write e.g. '7 years' or {years: 7}")
    else:
        raise ValueError(f"expected a mapping such as {{years: 7}} or text such as '7 years', got {type_name(value)}")
    term = Term(amounts["years"] + amounts["months"] // 12, amounts["months"] % 12,
                amounts["weeks"] * 7 + amounts["days"])
    if term.years * 366 + term.months * 31 + term.days == 0:
        raise ValueError("the term is zero: a case is kept at least a day after it closed")
    if term.years * 366 + term.months * 31 + term.days > MAX_YEARS * 366:
        raise ValueError(f"the term is longer than {MAX_YEARS} years: a case kept for good carries no retention")
    return term


def parse_retention(check: Checker, value: Any, has_personal: bool) -> Retention | None:
    """The ``retention`` key of a request type, every problem reported to ``check``."""
    if value is None:
        return None
    root = check.mapping(value, ("retention",))
    if root is None:
        return None
    check.keys(root, ("retention",), RETENTION_KEYS, required=("after", "action"))
    term: Term | None = None
    if "after" in root:
        try:
            term = parse_term(root["after"])
        except ValueError as exc:
            check.problem(("retention", "after"), f"invalid retention term: {exc}")
    action = root.get("action")
    if "action" in root and action not in ACTIONS:
        check.problem(("retention", "action"), f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        action = None
    if action == "redact" and not has_personal:
        check.problem(("retention", "action"), "action redact erases the personal fields, but no field is marked"
                                               " 'personal: true' (use destroy, or mark the fields)")
    if term is None or action is None:
        return None
    return Retention(term, str(action))
