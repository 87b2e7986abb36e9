"""The escalation ladder as pure rules: which rungs are due for a case now, and for whom.

A rung's recipient is looked up when it fires, not when the case was made, and a vacancy
moves the rung up: no assignee → the lead, no lead → the head, no head → the administrator
of the request type's portfolio. A unit with several leads (or heads) escalates to the first
of them in the organisation file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from engine.core.calendar import WorkingCalendar
from engine.core.casework import SYSTEM, Case, rung_time
from engine.core.definition import RequestType
from engine.core.organisation import Organisation
from engine.core.vocabulary import FiringKind, Rung

UP = ("assignee", "lead", "head", "administrator")


@dataclass(frozen=True)
class Firing:
    rung: str
    """"1", "2", ... for ladder places; else a :class:`Rung`."""
    kind: FiringKind
    """A reminder (a `before` rung), an escalation or a timeout."""
    stay: int
    """The stay it belongs to; 0 for the case-wide clocks, which fire once per case."""
    due_at: dt.datetime
    recipient: str | None
    asked: str
    """What the definition asked for (e.g. "lead"), before vacancies moved it up."""
    place: int | None = None
    trigger: str | None = None
    also: bool = False
    """The same firing told to one more recipient (a lead-time breach to the responsible
    unit's head besides the administrator; a missed instruction to the holding unit's head):
    its own event and mail, but not a second escalation row."""

    def json_rung(self) -> int | str:
        return int(self.rung) if self.rung.isdigit() else self.rung


def resolve(org: Organisation, rt: RequestType, case: Case, target: str, unit: str | None) -> str | None:
    """The person (or administrator) id a rung addressed to `target` reaches now.

    A person named on the ladder who has since left the organisation is a vacancy too (a
    case keeps the type version that names them): the rung goes to the administrator, the
    top of the ladder, rather than to nobody.
    """
    if target not in UP:
        if org.recipient(target) is not None:
            return target
        target = "administrator"
    for step in UP[UP.index(target):]:
        if step == "assignee":
            if case.assignee and case.assignee in org.people:
                return case.assignee
        elif step in ("lead", "head"):
            holders = org.holders(unit, step) if unit else []
            if holders:
                return holders[0].id
        else:
            admin = org.administrator_for(rt.portfolio) if rt.portfolio else None
            if admin is not None:
                return admin.id
    return None


def due_firings(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime
) -> list[Firing]:
    """Everything due for this case at `now`, in the order it must fire: by the time each
    became due, ladder rungs in ladder order, breaches after rungs, a timeout after anything
    due at the same moment.

    A timeout moves the case on and so ends the stay: what would only have become due after
    it is left out. A sweep that runs late must not send an escalation about a state the case
    had left by then; a case-wide breach due later is fired in the next state (the sweep asks
    again after the timeout's transition).
    """
    directive = directive_firings(rt, org, case, now)
    if case.closed_at is not None or case.suspended_at is not None:
        return directive
    out: list[Firing] = directive
    if case.state_due is not None:
        for rung in rt.ladder(case.state):
            if rung.place <= case.escalation_level:
                continue
            at = rung_time(cal, case.state_due, rung)
            if at <= now:
                out.append(Firing(
                    rung=str(rung.place), kind=FiringKind.REMINDER if rung.before else FiringKind.ESCALATION,
                    stay=case.stay, due_at=at, recipient=resolve(org, rt, case, rung.to, case.owner),
                    asked=rung.to, place=rung.place,
                ))
    if case.service_due is not None and not case.service_fired and case.service_due <= now:
        out.append(Firing(Rung.SERVICE_NORM, FiringKind.ESCALATION, 0, case.service_due,
                          resolve(org, rt, case, "head", case.owner), "head"))
    if case.case_due is not None and not case.lead_fired and case.case_due <= now:
        admin = resolve(org, rt, case, "administrator", case.owner)
        out.append(Firing(Rung.LEAD_TIME, FiringKind.ESCALATION, 0, case.case_due, admin, "administrator"))
        if rt.responsible is not None:
            # The unit that answers for the term hears of its breach too (SPEC §12.3).
            head = resolve(org, rt, case, "head", rt.responsible)
            if head is not None and head != admin:
                out.append(Firing(Rung.LEAD_TIME, FiringKind.ESCALATION, 0, case.case_due, head, "head",
                                  also=True))
    timeout = rt.states[case.state].timeout
    if timeout is not None and case.state_due is not None:
        at = cal.offset(case.state_due, timeout.after)
        if at <= now:
            out = [firing for firing in out if firing.due_at <= at]
            out.append(Firing(Rung.TIMEOUT, FiringKind.TIMEOUT, case.stay, at, SYSTEM, SYSTEM,
                              trigger=timeout.trigger))
    out.sort(key=lambda firing: firing.due_at)  # stable: ties keep the order above
    return out


def directive_firings(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> list[Firing]:
    """A missed instruction (SPEC §12.1): its term ended before the case left the state it
    was given in. One firing to the administrator of the type's portfolio and one to the head
    of the unit holding the case (unless a vacancy makes that the administrator too). The
    stay is the number of the `directed` event: each instruction fires at most once."""
    if not case.directive_open() or case.directive_due is None or case.directive_due > now:
        return []
    stay = case.directive_seq or 0
    admin = resolve(org, rt, case, "administrator", case.owner)
    out = [Firing(Rung.DIRECTIVE, FiringKind.ESCALATION, stay, case.directive_due, admin, "administrator")]
    head = resolve(org, rt, case, "head", case.owner) if case.owner is not None else None
    if head is not None and head != admin:
        out.append(Firing(Rung.DIRECTIVE, FiringKind.ESCALATION, stay, case.directive_due, head, "head",
                          also=True))
    return out
