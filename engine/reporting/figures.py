"""What `loket report` holds: the rows it is figured from and the figures it shows.

Definitions (the page's "Toelichting" says the same):

- lead time: `closed_at − created_at` of a closed case, in calendar days; also in working
  days, counted as `WorkingCalendar.working_days_between` counts them (working days that
  ended in between);
- percentiles by the nearest-rank method: the p-th percentile of n sorted values is the value
  at rank ⌈p·n/100⌉ (1-based). It is always one of the values, never an interpolation, so
  an auditor can point at the case; the median is the 50th percentile (the lower middle for
  an even count);
- on time: a closed case with `closed_at ≤ case_due` (the legal term, after extensions and
  suspensions); for types without a lead time `closed_at ≤ service_due`; a case with
  neither is not counted;
- time per state: each stay from entering a state to leaving it, open stays counted up to
  now; final states are not stays; states are listed in flow order (`flow_order`);
- overdue: open, not suspended, `state_due < now` (decided in the query, as `case list
  --overdue` decides it);
- per unit: an open case counts for the unit holding it; a closed case for the unit that
  closed it (the owner of the state it left for its final state); an escalation for the
  unit that held the case when it fired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from engine.core.definition import RequestType
from engine.core.views import iso
from engine.core.vocabulary import Rung

LONGEST = 10
"""How many of the longest-waiting open cases the report lists."""
FAILED_SHOWN = 50
"""How many failed emails the report lists (the newest); the count covers all of them."""
RUNG_NAMES = tuple(Rung)
"""The case-wide rungs in the order the report lists them, after the ladder places."""

# -- rows in -----------------------------------------------------------------------------------


class CaseFacts(NamedTuple):
    """One case, as far as the report needs it. The database works out `due` and the two
    flags, so that a hundred thousand rows carry three fewer instants to decode."""

    id: int
    ref: str
    type_key: str
    type_version: int
    state: str
    owner: str | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    state_entered_at: dt.datetime
    due: dt.datetime | None
    """The term that decides "on time": case_due, else service_due."""
    suspended: bool
    overdue: bool
    """Open, not suspended, state_due before the report's now (as `case list --overdue`)."""


class Move(NamedTuple):
    """A `created` or `transition` event: where a stay starts and the previous one ends."""

    case_id: int
    at: dt.datetime
    action: str
    from_state: str | None
    to_state: str | None


class EscalationFact(NamedTuple):
    fired_at: dt.datetime
    rung: str
    unit: str | None
    type_key: str


class FailedEmail(NamedTuple):
    id: int
    key: str
    to: str
    subject: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime


# -- figures out -------------------------------------------------------------------------------


def nearest_rank(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted values: the value at rank ⌈percent·n/100⌉."""
    if not ordered:
        return None
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def flow_order(rt: RequestType) -> list[str]:
    """The states as a case meets them: breadth-first from the initial state, following the
    transitions in their file order. A definition's `states` mapping cannot give this order:
    PostgreSQL keeps definitions as JSONB, which does not keep the order of keys."""
    order = [rt.initial]
    for state in order:
        for t in rt.transitions:
            if state in t.sources and t.dest not in order:
                order.append(t.dest)
    return order + sorted(set(rt.states) - set(order))


def rung_order(rung: str) -> tuple[int, int, str]:
    """Ladder places in number order, then the case-wide clocks, then anything else."""
    if rung.isdigit():
        return (0, int(rung), "")
    if rung in RUNG_NAMES:
        return (1, RUNG_NAMES.index(rung), "")
    return (2, 0, rung)


@dataclass(frozen=True)
class Spread:
    """How a figure is spread over cases: count, median and 90th percentile (nearest rank)."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        return cls(len(ordered), nearest_rank(ordered, 50), nearest_rank(ordered, 90))

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "median": _round(self.median), "p90": _round(self.p90)}


@dataclass(frozen=True)
class GroupFigures:
    """The figures of one request type, one unit, or everything."""

    key: str | None
    name: str
    open: int
    closed: int
    lead_days: Spread
    lead_working_days: Spread
    on_time: int
    on_time_counted: int
    overdue: int
    escalations: Mapping[str, int]

    @property
    def share_on_time(self) -> float | None:
        return self.on_time / self.on_time_counted if self.on_time_counted else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "open": self.open, "closed": self.closed,
            "lead_time_days": self.lead_days.as_json(),
            "lead_time_working_days": self.lead_working_days.as_json(),
            "on_time": {"on_time": self.on_time, "counted": self.on_time_counted,
                        "share": _round(self.share_on_time)},
            "overdue": self.overdue,
            "escalations": dict(self.escalations),
        }


@dataclass(frozen=True)
class StateFigures:
    """Time spent in one state of one request type, per stay."""

    type_key: str
    state: str
    label: str
    unit: str | None
    unit_name: str
    stays: int
    open_stays: int
    median_days: float | None
    mean_days: float | None
    total_days: float

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type_key, "state": self.state, "label": self.label, "unit": self.unit,
            "unit_name": self.unit_name, "stays": self.stays, "open_stays": self.open_stays,
            "median_days": _round(self.median_days), "mean_days": _round(self.mean_days),
            "total_days": _round(self.total_days),
        }


@dataclass(frozen=True)
class Waiting:
    """An open case that has waited long in its state."""

    ref: str
    type_key: str
    state: str
    label: str
    unit: str | None
    unit_name: str
    since: dt.datetime
    days: float
    suspended: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "type": self.type_key, "state": self.state, "state_label": self.label,
            "unit": self.unit, "unit_name": self.unit_name, "since": iso(self.since),
            "days_waiting": _round(self.days), "suspended": self.suspended,
        }


@dataclass(frozen=True)
class Report:
    municipality: str
    timezone: str
    now: dt.datetime
    types: list[GroupFigures]
    type_titles: Mapping[str, str]
    units: list[GroupFigures]
    total: GroupFigures
    states: list[StateFigures]
    escalations_by_day: list[tuple[dt.date, str, int]]
    """(local day, rung, count), by day then rung."""
    overdue: list[tuple[str | None, str, int]]
    """(unit, request type, count) of the cases overdue now."""
    longest: list[Waiting]
    failed_count: int
    failed: list[FailedEmail] = field(default_factory=list)

    @property
    def date(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.timezone)).date()

    def rungs(self) -> list[str]:
        """Every rung that fired anywhere, in ladder order."""
        seen = {rung for group in (*self.types, *self.units) for rung in group.escalations}
        return sorted(seen, key=rung_order)

    def as_json(self) -> dict[str, Any]:
        return {
            "municipality": self.municipality,
            "timezone": self.timezone,
            "now": iso(self.now),
            "date": self.date.isoformat(),
            "types": [g.as_json() | {"title": g.name} for g in self.types],
            "units": [g.as_json() for g in self.units],
            "total": self.total.as_json(),
            "time_per_state": [s.as_json() for s in self.states],
            "escalations_by_day": [{"date": d.isoformat(), "rung": r, "count": n}
                                   for d, r, n in self.escalations_by_day],
            "overdue": [{"unit": u, "type": t, "count": n} for u, t, n in self.overdue],
            "longest_waiting": [w.as_json() for w in self.longest],
            "failed_emails": {
                "count": self.failed_count,
                "items": [{"id": f.id, "key": f.key, "to": f.to, "subject": f.subject,
                           "attempts": f.attempts, "last_error": f.last_error,
                           "created_at": iso(f.created_at)} for f in self.failed],
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

