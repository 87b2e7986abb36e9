"""The report for a terminal: one titled table per figure (`loket report` without options)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from engine.core.views import local, table
from engine.reporting.figures import LONGEST, GroupFigures, Report


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _whole(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share(group: GroupFigures) -> str:
    share = group.share_on_time
    if share is None:
        return "-"
    return f"{group.on_time}/{group.on_time_counted} ({share:.0%})"


def _group_rows(
    groups: Iterable[GroupFigures], label: Callable[[GroupFigures], str]
) -> list[list[Any]]:
    return [[label(g), g.open, g.closed, _days(g.lead_days.median), _days(g.lead_days.p90),
             _whole(g.lead_working_days.median), _whole(g.lead_working_days.p90), _share(g),
             g.overdue] for g in groups]


def _rung_rows(groups: Iterable[GroupFigures], kind: str, rungs: Sequence[str]) -> list[list[Any]]:
    return [[f"{kind} {g.key or '-'}", *(g.escalations.get(r, 0) for r in rungs),
             sum(g.escalations.values())] for g in groups]


GROUP_HEADERS = [
    "open", "closed", "median days", "p90 days", "median wd", "p90 wd", "on time", "overdue",
]


def render_text(report: Report) -> str:
    """The report for a terminal: one titled section per figure."""
    tz = report.timezone
    out = [f"Report for {report.municipality} at {local(report.now, tz)} {tz}"]
    if report.failed_count:
        out.append(f"!! {report.failed_count} email(s) failed for good and reached nobody: see 'Failed emails'"
                   " below, and 'loket outbox retry --failed' once the cause is fixed")
    out += ["Lead times of closed cases in calendar days and working days (wd);"
            " percentiles by nearest rank.", ""]
    out += ["Per request type",
            table(["type", *GROUP_HEADERS],
                  [*_group_rows(report.types, lambda g: g.key or "-"),
                   *_group_rows([report.total], lambda g: "(all)")]), ""]
    out += ["Per unit (closed cases count for the unit that closed them)",
            table(["unit", *GROUP_HEADERS], _group_rows(report.units, lambda g: g.key or "-")), ""]
    out += ["Time per state (calendar days per stay; open stays counted up to now)",
            table(["type", "state", "unit", "stays", "open", "median", "mean", "total"],
                  [[s.type_key, s.state, s.unit, s.stays, s.open_stays, _days(s.median_days),
                    _days(s.mean_days), _days(s.total_days)] for s in report.states]), ""]
    rungs = report.rungs()
    rows = _rung_rows(report.types, "type", rungs) + _rung_rows(report.units, "unit", rungs)
    out += ["Escalations per rung", table(["by", *rungs, "total"], rows), ""]
    out += [f"Longest waiting (open cases, the {LONGEST} longest in their current state)"]
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

