"""What `loket report` holds: the rows it is figured from and the figures it shows.

Definitions (the page's "Toelichting" and docs/report.md say the same):

- the period (`--since`, `--until`, until exclusive): a case counts as *received* in the
  week and period it was made, as *closed* in the period it closed; a stay counts in the
  period in which it ended (a stay still open ends "now"); an escalation when it fired;
- lead time: `closed_at − created_at` of a case closed in the period, in calendar days; also
  in working days, counted as `WorkingCalendar.working_days_between` counts them (working
  days that ended in between);
- percentiles by the nearest-rank method: the p-th percentile of n sorted values is the value
  at rank ⌈p·n/100⌉ (1-based). It is always one of the values, never an interpolation, so
  an auditor can point at the case; the median is the 50th percentile (the lower middle for
  an even count);
- the three clocks, each counted on its own (never one mixed "on time"): *state deadlines*
  per stay in a state with a deadline (its deadline moved by suspensions within the stay),
  the *service norm* (`service_due`) and the *legal term* (`case_due`, after extensions and
  suspensions) per case. A term is *met* when the stay ended or the case closed by it,
  counted when that happened; *late* when it ended or closed after it and *open past* when
  it is still open after it, both counted when the term ended. A term still running, or
  whose clock stands still now, is not counted yet;
- time per state: each stay from entering a state to leaving it, open stays counted up to
  now; final states are not stays; states are listed in flow order (`flow_order`);
- per unit: the time the unit itself held cases — the sum of the stays in the states it
  owns — never the time a case spent at another unit; an open case counts for the unit
  holding it; an escalation for the unit that held the case when it fired;
- overdue: open, not suspended, `state_due < now` (decided in the query, as `case list
  --overdue` decides it); the weekly trend's *overdue* counts state deadlines missed, in the
  week the deadline ended;
- outcomes and measures: a case closed in the period counts for the `outcome` of its final
  state (`none` when the state names none) and for the value of the type's `area` field
  (`None` when empty); each measure is summed per outcome;
- bestuurlijke dekking: see `engine.reporting.dekking`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
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
    """One case, as far as the report needs it. The database works out the two flags, and
    gives every instant as an integer, µs since the epoch: a number per instant instead of
    a datetime decoded per row (`engine.reporting.builder` makes the few datetimes it shows)."""

    id: int
    ref: str
    type_key: str
    type_version: int
    state: str
    owner: str | None
    created_at: int
    closed_at: int | None
    state_entered_at: int | None
    """None for a closed case (the report does not use it)."""
    service_due: int | None
    """For a closed case, as far as the report uses it: `engine.store.reports.MET_MARK` when
    met, else when it was missed (0 without a period); see `engine.store.reports.case_rows`."""
    case_due: int | None
    """Likewise."""
    suspended: bool
    """A truth value: 0 or 1 as SQLite gives it (`bool()` before it is shown)."""
    overdue: bool
    """Open, not suspended, state_due before the report's now (as `case list --overdue`);
    likewise 0 or 1 from SQLite."""
    data: Mapping[str, Any] | None
    """The field values of a closed case (its outcome's area, measures and summary); None
    for an open one, whose values the report does not need."""


class Move(NamedTuple):
    """A `created` or `transition` event: where a stay starts and the previous one ends; or a
    `suspended` or `resumed` event, which stops and restarts the stay's clock."""

    case_id: int
    at: dt.datetime
    action: str
    from_state: str | None
    to_state: str | None


class RawMove(NamedTuple):
    """A `Move` as the report streams it: its instant in µs since the epoch, converted by the
    database, so that no datetime is made per state change."""

    case_id: int
    at: int
    action: str
    from_state: str | None
    to_state: str | None


class EscalationFact(NamedTuple):
    fired_at: int
    """µs since the epoch."""
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


class AdminEvent(NamedTuple):
    """An event of the bestuurlijke dekking (the issue-12 contract): an `escalated` event to an
    administrator or with rung `directive`, a `directed` instruction, or a comment by an
    administrator or one of their assistants."""

    case_id: int
    seq: int
    at: dt.datetime
    actor: str
    action: str
    data: Mapping[str, Any] | None


@dataclass(frozen=True)
class Filters:
    """What `--since`, `--until` (exclusive), `--type` and `--unit` keep; None keeps all."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    type_key: str | None = None
    unit: str | None = None

    def within(self, moment: dt.datetime) -> bool:
        return ((self.since is None or moment >= self.since)
                and (self.until is None or moment < self.until))

    def as_json(self) -> dict[str, Any]:
        return {"since": iso(self.since) if self.since else None,
                "until": iso(self.until) if self.until else None,
                "type": self.type_key, "unit": self.unit}


# -- figures out -------------------------------------------------------------------------------


def rank_of(count: int, percent: int) -> int:
    """The nearest rank of a percentile of `count` values: ⌈percent·count/100⌉, at least 1."""
    return max(1, -(-percent * count // 100))


def nearest_rank(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted values: the value at rank ⌈percent·n/100⌉."""
    if not ordered:
        return None
    return ordered[rank_of(len(ordered), percent) - 1]


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


CLOCKS = ("state_deadlines", "service_norm", "legal_term")
"""The three clocks, each reported on its own."""


@dataclass(frozen=True)
class ClockShare:
    """How one clock's terms ended: met, late (left or closed after the term), or still open
    after it. The share met is of the three together."""

    met: int = 0
    late: int = 0
    open_past: int = 0

    @property
    def counted(self) -> int:
        return self.met + self.late + self.open_past

    @property
    def share(self) -> float | None:
        return self.met / self.counted if self.counted else None

    def as_json(self) -> dict[str, Any]:
        return {"met": self.met, "late": self.late, "open_past": self.open_past,
                "counted": self.counted, "share": _round(self.share)}


def measure_json(totals: Mapping[str, Mapping[str, Decimal]]) -> dict[str, dict[str, float]]:
    return {name: {outcome: _number(v) for outcome, v in per.items()} for name, per in totals.items()}


def _number(value: Decimal) -> float:
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class Results:
    """What the cases closed in the period came to: counts per outcome and, per measure,
    its total per outcome."""

    closed: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    measures: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "measures": measure_json(self.measures)}


@dataclass(frozen=True)
class GroupFigures:
    """The figures of one request type or of everything."""

    key: str | None
    name: str
    received: int
    open: int
    closed: int
    lead_days: Spread
    lead_working_days: Spread
    clocks: Mapping[str, ClockShare]
    overdue: int
    escalations: Mapping[str, int]
    results: Results = field(default_factory=Results)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "received": self.received, "open": self.open,
            "closed": self.closed,
            "lead_time_days": self.lead_days.as_json(),
            "lead_time_working_days": self.lead_working_days.as_json(),
            "clocks": {name: self.clocks[name].as_json() for name in CLOCKS},
            "overdue": self.overdue,
            "escalations": dict(self.escalations),
            **self.results.as_json(),
        }


@dataclass(frozen=True)
class UnitFigures:
    """One unit: what it holds now, the time it held cases itself (the sum of its stays, open
    stays up to now), its state deadlines, and the escalations fired while it held a case.
    No lead time: a case's lead time belongs to every unit that held it, not to one."""

    key: str | None
    name: str
    open: int
    overdue: int
    stays: int
    open_stays: int
    held_days: float
    median_stay_days: float | None
    state_deadlines: ClockShare
    escalations: Mapping[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "open": self.open, "overdue": self.overdue,
            "held": {"stays": self.stays, "open_stays": self.open_stays,
                     "days": _round(self.held_days), "median_days_per_stay": _round(self.median_stay_days)},
            "state_deadlines": self.state_deadlines.as_json(),
            "escalations": dict(self.escalations),
        }


@dataclass(frozen=True)
class AreaFigures:
    """The results of one request type in one area (the value of its `area` field; None for
    cases that left it empty)."""

    type_key: str
    area: str | None
    results: Results
    lead_days: Spread
    legal_term: ClockShare

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type_key, "area": self.area, "closed": self.results.closed,
                **self.results.as_json(), "lead_time_days": self.lead_days.as_json(),
                "legal_term": self.legal_term.as_json()}


@dataclass(frozen=True)
class WeekFigures:
    """One ISO week (local time): cases received, closed, and state deadlines missed."""

    year: int
    week: int
    monday: dt.date
    received: int
    closed: int
    overdue: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-W{self.week:02d}"

    def as_json(self) -> dict[str, Any]:
        return {"week": self.label, "monday": self.monday.isoformat(), "received": self.received,
                "closed": self.closed, "overdue": self.overdue}


@dataclass(frozen=True)
class AdminFigures:
    """Bestuurlijke dekking of one administrator (see `engine.reporting.dekking`)."""

    id: str
    name: str
    escalations: int
    reacted: int
    reaction_working_days: Spread
    slowest_reaction: int | None
    given: int
    met: int
    missed: int
    replaced: int
    running: int

    def as_json(self) -> dict[str, Any]:
        return {
            "administrator": self.id, "name": self.name,
            "escalations_received": self.escalations, "reacted": self.reacted,
            "unanswered": self.escalations - self.reacted,
            "reaction_working_days": self.reaction_working_days.as_json() | {"max": self.slowest_reaction},
            "instructions": {"given": self.given, "met": self.met, "missed": self.missed,
                             "replaced": self.replaced, "running": self.running},
        }


@dataclass(frozen=True)
class Realised:
    """A case recently realised (outcome granted or done), as the public page shows it: its
    type, the day it closed, its area and its summary fields — nothing else."""

    type_key: str
    closed_on: dt.date
    outcome: str
    area: str | None
    summary: tuple[tuple[str, str], ...]


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
    units: list[UnitFigures]
    total: GroupFigures
    states: list[StateFigures]
    escalations_by_day: list[tuple[dt.date, str, int]]
    """(local day, rung, count), by day then rung."""
    overdue: list[tuple[str | None, str, int]]
    """(unit, request type, count) of the cases overdue now."""
    longest: list[Waiting]
    failed_count: int
    failed: list[FailedEmail] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    areas: list[AreaFigures] = field(default_factory=list)
    weeks: list[WeekFigures] = field(default_factory=list)
    dekking: list[AdminFigures] = field(default_factory=list)
    realised: list[Realised] = field(default_factory=list)
    measure_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per type: measure field → its label."""
    area_labels: Mapping[str, str] = field(default_factory=dict)
    """Per type: the label of its area field."""

    @property
    def date(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.timezone)).date()

    def rungs(self) -> list[str]:
        """Every rung that fired anywhere, in ladder order."""
        seen = {rung for group in self.types for rung in group.escalations}
        seen |= {rung for unit in self.units for rung in unit.escalations}
        return sorted(seen, key=rung_order)

    def as_json(self) -> dict[str, Any]:
        return {
            "municipality": self.municipality,
            "timezone": self.timezone,
            "filters": self.filters.as_json(),
            "now": iso(self.now),
            "date": self.date.isoformat(),
            "types": [g.as_json() | {"title": g.name} for g in self.types],
            "units": [g.as_json() for g in self.units],
            "total": self.total.as_json(),
            "time_per_state": [s.as_json() for s in self.states],
            "escalations_by_day": [{"date": d.isoformat(), "rung": r, "count": n}
                                   for d, r, n in self.escalations_by_day],
            "results_by_area": [a.as_json() for a in self.areas],
            "weeks": [w.as_json() for w in self.weeks],
            "bestuurlijke_dekking": [a.as_json() for a in self.dekking],
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

