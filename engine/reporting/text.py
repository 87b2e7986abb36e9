"""The report for a terminal: one titled table per figure (`loket report` without options)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.core.results import OUTCOMES
from engine.core.views import local, table
from engine.reporting.figures import CLOCKS, LONGEST, ClockShare, GroupFigures, Report, UnitFigures

CLOCK_NAMES = {"state_deadlines": "state deadlines (per stay)", "service_norm": "service norm",
               "legal_term": "legal term"}


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _whole(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share(clock: ClockShare) -> str:
    share = clock.share
    if share is None:
        return "-"
    return f"{clock.met}/{clock.counted} ({share:.0%})"


def _amount(value: Any) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


def _group_rows(groups: Iterable[tuple[str, GroupFigures]]) -> list[list[Any]]:
    return [[label, g.received, g.open, g.closed, _days(g.lead_days.median), _days(g.lead_days.p90),
             _whole(g.lead_working_days.median), _whole(g.lead_working_days.p90), g.overdue]
            for label, g in groups]


def _rung_rows(groups: Iterable[GroupFigures | UnitFigures], kind: str, rungs: Sequence[str]) -> list[list[Any]]:
    return [[f"{kind} {g.key or '-'}", *(g.escalations.get(r, 0) for r in rungs),
             sum(g.escalations.values())] for g in groups]


GROUP_HEADERS = ["received", "open", "closed", "median days", "p90 days", "median wd", "p90 wd", "overdue"]


def _period(report: Report) -> str:
    f = report.filters
    tz = report.timezone
    parts = []
    if f.since is not None or f.until is not None:
        since = local(f.since, tz) if f.since is not None else "the start"
        until = f"before {local(f.until, tz)}" if f.until is not None else "now"
        parts.append(f"period from {since} {until}")
    if f.type_key is not None:
        parts.append(f"type {f.type_key}")
    if f.unit is not None:
        parts.append(f"unit {f.unit}")
    return "; ".join(parts) if parts else "all cases"


def _results_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    outcomes = [o for o in (*OUTCOMES, "none") if any(o in a.results.outcomes for a in report.areas)]
    rows = []
    for a in report.areas:
        measures = "; ".join(
            f"{name} " + ", ".join(f"{o} {_amount(v)}" for o, v in per.items())
            for name, per in a.results.measures.items())
        rows.append([a.type_key, a.area or "(none)", a.results.closed,
                     *(a.results.outcomes.get(o, 0) for o in outcomes), measures or "-"])
    return ["type", "area", "closed", *outcomes, "measure totals per outcome"], rows


def render_text(report: Report) -> str:
    """The report for a terminal: one titled section per figure."""
    tz = report.timezone
    out = [f"Report for {report.municipality} at {local(report.now, tz)} {tz} ({_period(report)})"]
    if report.failed_count:
        out.append(f"!! {report.failed_count} email(s) failed for good and reached nobody: see 'Failed emails'"
                   " below, and 'loket outbox retry --failed' once the cause is fixed")
    out += ["Lead times of cases closed in the period, in calendar days and working days (wd);"
            " percentiles by nearest rank. Open and overdue: now.", ""]
    out += ["Per request type",
            table(["type", *GROUP_HEADERS],
                  _group_rows([*((g.key or "-", g) for g in report.types), ("(all)", report.total)])), ""]
    out += ["Clocks, each on its own: met / counted (share); late and open past the term counted when it ended",
            table(["type", "clock", "met", "late", "open past", "share met"],
                  [[label, CLOCK_NAMES[name], g.clocks[name].met, g.clocks[name].late, g.clocks[name].open_past,
                    _share(g.clocks[name])]
                   for label, g in [*((g.key or "-", g) for g in report.types), ("(all)", report.total)]
                   for name in CLOCKS]), ""]
    headers, rows = _results_rows(report)
    out += ["Results per type and area (cases closed in the period, per outcome)"]
    out.append(table(headers, rows) if rows else "no cases closed in the period")
    out.append("")
    out += ["Per unit: the time the unit itself held cases (its own stays; open stays up to now)",
            table(["unit", "open", "overdue", "stays", "open stays", "held days", "median stay",
                   "state deadlines met"],
                  [[u.key or "-", u.open, u.overdue, u.stays, u.open_stays, _days(u.held_days),
                    _days(u.median_stay_days), _share(u.state_deadlines)] for u in report.units]), ""]
    out += ["Time per state (calendar days per stay; open stays counted up to now)",
            table(["type", "state", "unit", "stays", "open", "median", "mean", "total"],
                  [[s.type_key, s.state, s.unit, s.stays, s.open_stays, _days(s.median_days),
                    _days(s.mean_days), _days(s.total_days)] for s in report.states]), ""]
    rungs = report.rungs()
    rows = _rung_rows(report.types, "type", rungs) + _rung_rows(report.units, "unit", rungs)
    out += ["Escalations per rung", table(["by", *rungs, "total"], rows), ""]
    out += ["Bestuurlijke dekking (escalations to each administrator, reactions by comment or instruction"
            " in working days, instructions)",
            table(["administrator", "escalations", "reacted", "median wd", "max wd", "instructions",
                   "met", "missed", "replaced", "running"],
                  [[a.id, a.escalations, a.reacted, _whole(a.reaction_working_days.median),
                    "-" if a.slowest_reaction is None else a.slowest_reaction, a.given, a.met, a.missed,
                    a.replaced, a.running] for a in report.dekking]), ""]
    out += ["Per week (ISO weeks; overdue: state deadlines missed that week)"]
    out.append(table(["week", "received", "closed", "overdue"],
                     [[w.label, w.received, w.closed, w.overdue] for w in report.weeks])
               if report.weeks else "nothing in the period")
    out += ["", f"Longest waiting (open cases, the {LONGEST} longest in their current state)"]
    if report.longest:
        out.append(table(["ref", "type", "state", "unit", "since", "days", "clock"],
                         [[w.ref, w.type_key, w.state, w.unit, local(w.since, tz), _days(w.days),
                           "stopped" if w.suspended else "runs"] for w in report.longest]))
    else:
        out.append("no open cases")
    out += ["", f"Failed emails: {report.failed_count}"]
    if report.failed:
        rows = [[f.id, f.to, f.attempts, f.subject, f.last_error] for f in report.failed]
        out.append(table(["id", "to", "tries", "subject", "error"], rows))
    return "\n".join(out)
