"""`case show --explain`: every deadline recomputed from the history, step by step.

The explanation is not a story told beside the stored dates: it replays the case's events
(entries into states, suspensions, paused states, extensions) through the same calendar
functions (`engine.core.derivation`, which `workflow migrate` counts with too), so an auditor
can follow each line by hand, and a mismatch with the stored value is reported rather than
hidden. A migrated case says when it moved to which version first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from engine.core import derivation
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, rung_time
from engine.core.derivation import Pause, derive, versions_along
from engine.core.durations import Duration, parse_term
from engine.core.vocabulary import Action

if TYPE_CHECKING:
    from engine.app.service import Loket


def _replay(
    cal: WorkingCalendar,
    title: str,
    start: dt.datetime,
    duration: Duration,
    pauses: list[Pause],
    extensions: list[dict[str, Any]],
    stored: dt.datetime | None,
) -> list[str]:
    derived = derive(cal, start, duration, pauses, extensions, explain=True)
    lines = [f"{title} ({duration}):"]
    lines += [f"  {s}" for s in derived.steps]
    if stored is not None and stored != derived.due:
        lines.append(f"  NOTE: the stored deadline {cal.moment(stored)} differs from this replay"
                     f" ({cal.moment(derived.due)})")
    return lines


def _migrations(cal: WorkingCalendar, case: Case, events: list[dict[str, Any]]) -> list[str]:
    """A line for each move to another version: the dates below count under the newest."""
    lines = []
    for e in events:
        if e["action"] != Action.MIGRATED:
            continue
        data = e["data"] or {}
        moved = (f", state '{e['from_state']}' → '{e['to_state']}'" if e["from_state"] != e["to_state"] else "")
        lines.append(f"Migrated from version {data.get('from_version')} to version {data.get('to_version')}"
                     f" on {cal.moment(e['at'])} by {e['actor']}{moved}.")
    if lines:
        lines.append(f"Every date below is counted under the terms of version {case.type_version}, from the moment"
                     " its clock started, with the case's suspensions and extensions.")
    return lines


def explain_case(loket: Loket, case: Case) -> list[str]:
    rt = loket.type_of(case)
    cal = loket.calendar()
    _, events = loket.history(case.ref)
    along = versions_along(events, case.type_version, lambda v: loket.request_type(case.type_key, v))
    pauses = derivation.pauses(events, along)
    extensions = derivation.extensions(events, along, rt)
    lines: list[str] = [f"Deadlines of {case.ref}, on the working-day calendar of {loket.organisation().municipality}"
                        f" ({cal.timezone}; weekends, Atw holidays and the organisation's closed days do not count)"]
    lines += _migrations(cal, case, events)
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
