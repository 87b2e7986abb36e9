"""`case show --explain`: every deadline recomputed from the history, step by step.

The explanation is not a story told beside the stored dates: it replays the case's events
(entries into states, suspensions, paused states, extensions) through the same calendar
functions, so an auditor can follow each line by hand, and a mismatch with the stored value
is reported rather than hidden.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, extension_base, rung_time
from engine.core.definition import RequestType
from engine.core.durations import Duration, parse_term

if TYPE_CHECKING:
    from engine.app.service import Loket


@dataclass(frozen=True)
class _Pause:
    """One period the clocks stood still."""

    began: dt.datetime
    ended: dt.datetime | None
    """None while it lasts."""
    why: str
    manual: bool
    """A `case suspend`; a `clock: paused` state has no deadline of its own to stop."""
    seq: float
    """The event that ended it (infinity while it lasts): a deadline moves at resumption, so
    the shift is replayed there among the extensions, not where the pause began."""


def _pauses(rt: RequestType, events: Iterable[dict[str, Any]]) -> list[_Pause]:
    """Every period the clocks stood still, in the order they began."""
    out: list[_Pause] = []
    since: tuple[dt.datetime, str, bool] | None = None
    for e in events:
        action = e["action"]
        paused_state = (action in ("created", "transition") and e["to_state"] in rt.states
                        and rt.states[e["to_state"]].paused)
        if since is None and (action == "suspended" or paused_state):
            manual = action == "suspended"
            why = ("suspended: " + str((e["data"] or {}).get("reason", "")) if manual
                   else f"state '{e['to_state']}' pauses the clock")
            since = (e["at"], why, manual)
        elif since is not None and (action == "resumed"
                                    or (action == "transition" and not paused_state)):
            out.append(_Pause(since[0], e["at"], since[1], since[2], e["seq"]))
            since = None
    if since is not None:
        out.append(_Pause(since[0], None, since[1], since[2], math.inf))
    return out


def _replay(
    cal: WorkingCalendar,
    title: str,
    start: dt.datetime,
    duration: Duration,
    pauses: list[_Pause],
    extensions: list[dict[str, Any]],
    stored: dt.datetime | None,
) -> list[str]:
    derivation = cal.deadline(start, duration)
    lines = [f"{title} ({duration}):"]
    lines += [f"  {s}" for s in derivation.steps]
    due = derivation.due
    # In the order the service applied them: a suspension's shift when it ended, an
    # extension when it was given. Event numbers, not times, because both may share an instant.
    changes: list[tuple[float, _Pause | dict[str, Any]]] = [
        (p.seq, p) for p in pauses if p.began >= start
    ]
    changes += [(e["seq"], e) for e in extensions]
    last_extension: dict[str, Any] | None = None
    for _seq, item in sorted(changes, key=lambda c: c[0]):
        if isinstance(item, _Pause):
            if item.ended is None:
                lines.append(f"  the clock stands still since {cal.moment(item.began)}"
                             f" ({item.why}); on resumption this deadline moves later by the"
                             " days it stood still")
                continue
            exact = duration.unit == "hours"
            shifted = cal.explain_shift(due, item.began, item.ended, exact=exact)
            lines.append(f"  {item.why}")
            lines += [f"  {s}" for s in shifted.steps]
            due = shifted.due
        else:
            data = item["data"] or {}
            by = Duration(str(data.get("unit")), int(data.get("amount", 0)))
            if data.get("counted_from"):
                base = dt.datetime.fromisoformat(str(data["counted_from"]))
            else:  # recorded before extensions said where they counted from
                base = extension_base(due, last_extension, by)
            extended = cal.deadline(base, by)
            counted = ("counted from the deadline's day" if base == due else
                       f"counted on from {cal.local_date(base).isoformat()}, the day the term ran to"
                       " before the Atw moved it")
            lines.append(f"  extended by {by} on {cal.moment(item['at'])} by {item['actor']}"
                         f" ({data.get('reason', '')}), {counted}:")
            lines += [f"  {s}" for s in extended.steps]
            due = extended.due
            last_extension = data
    if stored is not None and stored != due:
        lines.append(f"  NOTE: the stored deadline {cal.moment(stored)} differs from this replay"
                     f" ({cal.moment(due)})")
    return lines


def explain_case(loket: Loket, case: Case) -> list[str]:
    rt = loket.type_of(case)
    cal = loket.calendar()
    _, events = loket.history(case.ref)
    pauses = _pauses(rt, events)
    extensions = [e for e in events if e["action"] == "extended"]
    lines: list[str] = [f"Deadlines of {case.ref}, on the working-day calendar of {loket.organisation().municipality}"
                        f" ({cal.timezone}; weekends, Atw holidays and the organisation's closed days do not count)"]
    state = rt.states[case.state]
    if state.deadline is not None and not state.final:
        lines.append("")
        entered = case.state_entered_at
        stay_pauses = [p for p in pauses if p.manual and p.began >= entered]
        lines += _replay(cal, f"State '{state.label}' deadline, from entering it", entered,
                         state.deadline, stay_pauses, [], case.state_due)
        due = case.state_due
        if due is not None:
            ladder = rt.ladder(case.state)
            if ladder:
                lines.append("  escalation ladder, counted from that deadline's day:")
            for rung in ladder:
                when = rung_time(cal, due, rung)
                direction = "before" if rung.before else "after"
                fired = " (fired)" if rung.place <= case.escalation_level else ""
                lines.append(f"    rung {rung.place}: {rung.offset} {direction} → {rung.to},"
                             f" at {cal.moment(when)}{fired}")
            if state.timeout is not None:
                when = cal.offset(due, state.timeout.after)
                lines.append(f"    timeout: {state.timeout.after} after → '{state.timeout.trigger}',"
                             f" at {cal.moment(when)}")
    elif state.paused:
        lines.append("")
        lines.append(f"State '{state.label}' pauses the clock: it has no deadline of its own.")
    if rt.service_norm is not None:
        lines.append("")
        lines += _replay(cal, "Service norm, from the case's creation", case.created_at,
                         rt.service_norm, pauses, [], case.service_due)
    if rt.lead_time is not None:
        lines.append("")
        lines += _replay(cal, "Legal decision term (beslistermijn), from the case's creation",
                         case.created_at, rt.lead_time, pauses, extensions, case.case_due)
        if rt.max_extension is not None and case.case_due_limit is not None:
            lines.append(f"  may be extended by at most {rt.max_extension}: until"
                         f" {cal.local_date(case.case_due_limit).isoformat()}")
    lines += _directive(cal, case, events)
    return lines


def _directive(cal: WorkingCalendar, case: Case, events: list[dict[str, Any]]) -> list[str]:
    """The latest instruction's term (SPEC §12.1), counted from when it was given; a
    suspension does not move it (it is the administrator's term, not one of the Awb)."""
    given = next((e for e in events if e["seq"] == case.directive_seq), None)
    if given is None or case.directive_given_at is None:
        return []
    data = given["data"] or {}
    try:
        within = parse_term(str(data.get("within")))
    except ValueError:
        return ["", f"Instruction (event {given['seq']}): its term {data.get('within')!r} cannot be read"]
    who = given["actor"] + (f" for {data['on_behalf_of']}" if data.get("on_behalf_of") else "")
    lines = [""]
    lines += _replay(cal, f"Instruction (bestuurlijke opdracht) by {who}, from when it was given in state"
                          f" '{case.directive_state}'", case.directive_given_at, within, [], [], case.directive_due)
    if case.directive_met_at is not None:
        lines.append(f"  met: the case left the state at {cal.moment(case.directive_met_at)}")
    elif case.directive_missed_at is not None:
        lines.append(f"  missed: escalated at {cal.moment(case.directive_missed_at)} to the administrator and"
                     " the head of the unit holding the case")
    else:
        lines.append("  open: met when the case leaves that state before the term ends; a suspension does not"
                     " stop this term")
    return lines
