"""What a person may do to a case, and what it makes of it: each command is a pure function.

A command takes the case's definition, the organisation, the calendar, the case as read, the
time and the person acting (every command the same six, in that order), then its own
arguments, and whatever else the store had to read for it. It returns the `Change` to write
or raises the error the rules give. The service reads, calls one of these and writes; a dry
run calls the very same function and throws the change away.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, Change, Draft
from engine.core.definition import RequestType
from engine.core.durations import Duration, term_text
from engine.core.fields import check_free_text, parse_assignments
from engine.core.history import timestamp
from engine.core.organisation import Organisation
from engine.core.vocabulary import Action
from engine.errors import InvalidValue, NotFound, Refused, RoleRequired, TransitionNotAllowed

# -- who may act -----------------------------------------------------------------------------


def require_person(org: Organisation, actor: str | None) -> str:
    """The person acting, who must be one of the organisation's people to change a case."""
    if not actor:
        raise InvalidValue("this command changes a case: say who you are with --as PERSON")
    if actor not in org.people:
        if actor in org.administrators:
            raise RoleRequired(f"{actor} is an administrator: administrators do not advance, assign or change"
                               " cases (the unit does the work); they may comment (case comment) and give an"
                               " instruction (case direct) on cases of their portfolio")
        raise NotFound(f"unknown person '{actor}' (not in the organisation)")
    return actor


def require_speaker(org: Organisation, actor: str | None) -> str:
    """The person or administrator acting, for the commands an administrator may give too
    (`case comment`, `case direct`): whether they may on this case is the command's to say."""
    if actor and actor in org.administrators:
        return actor
    return require_person(org, actor)


def require_member(org: Organisation, actor: str, case: Case, what: str) -> None:
    """Any role in the unit holding the case allows `what`; an auditor's role does not."""
    if org.is_auditor(actor) and org.rank(actor, case.owner) == 0:
        raise RoleRequired(f"{actor} is an auditor: auditors read, they do not change cases")
    if not org.may(actor, case.owner, ("staff",)):
        where = f"unit '{case.owner}'" if case.owner else "an open unit"
        raise RoleRequired(f"{actor} may not {what} {case.ref}: it needs a role in {where}")


def check_assignee(org: Organisation, person: str, unit: str | None) -> None:
    """Only someone with a role in the unit can hold its case."""
    if person not in org.people:
        raise NotFound(f"unknown person '{person}' (not in the organisation)")
    if not org.may(person, unit, ("staff",)):
        raise Refused(f"{person} cannot hold this case: no role in unit '{unit}'")


def require_open(rt: RequestType, case: Case) -> None:
    if case.closed_at is not None:
        raise Refused(f"{case.ref} is closed ({rt.states[case.state].label})")


# -- what a person typed ---------------------------------------------------------------------


def free_text(text: str, what: str, *, multiline: bool) -> str:
    """Text a person typed, with Windows and old Mac line ends made plain newlines; control
    characters that could reach a terminal as escape sequences are refused."""
    return check_free_text(text.replace("\r\n", "\n").replace("\r", "\n"), what, multiline=multiline)


def reason_text(text: str | None) -> str:
    """The reason a suspension or an extension records: required, one line."""
    if not text or not text.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    return free_text(text, "--reason", multiline=False).strip()


def instruction_text(text: str | None) -> str:
    """What an instruction asks (`case direct --text`): required."""
    if not text or not text.strip():
        raise InvalidValue("an instruction needs text: give --text TEXT")
    return free_text(text, "--text", multiline=True).strip()


def comment_text(text: str) -> str:
    text = free_text(text, "a comment", multiline=True)
    if not text.strip():
        raise InvalidValue("a comment needs text")
    return text


# -- opening a case --------------------------------------------------------------------------


def opening_data(
    rt: RequestType, org: Organisation, actor: str, *, assignments: Sequence[str], assign: str | None
) -> dict[str, Any]:
    """The field values a new case starts with, once the rules allow `actor` to open it (and
    `assign`, if given, to hold it)."""
    data = {k: v for k, v in parse_assignments(rt.fields, list(assignments)).items() if v is not None}
    casework.check_required_fields(rt, data)
    owner = rt.states[rt.initial].owner
    if not org.may(actor, owner, ("staff",)):
        raise RoleRequired(f"{actor} may not open a {rt.key}: it needs a role in unit '{owner}'")
    if assign is not None:
        check_assignee(org, assign, owner)
    return data


def opened(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    assign: str | None,
) -> Change:
    """A new case (see `casework.new_case`) entering its first state, as its history records it."""
    updates = casework.enter_state(rt, cal, case, rt.initial, now)
    drafts = [Draft(Action.CREATED, None, rt.initial, None, None, dict(case.data))]
    if assign is not None:
        updates["assignee"] = assign
        drafts.append(Draft(Action.ASSIGNED, data={"assignee": assign}))
    return Change(updates, drafts)


# -- the commands on a case ------------------------------------------------------------------


def advance(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    trigger: str, comment: str | None, assignments: Sequence[str], newest: tuple[int, RequestType] | None = None,
) -> Change:
    """`newest` is the newest version of the type (number and definition) when the case is on
    an older one: a trigger only that version has is refused as such, not as unknown."""
    if case.closed_at is not None:
        raise Refused(f"{case.ref} is closed ({rt.states[case.state].label}): nothing can fire")
    if newest is not None and not rt.has_trigger(trigger) and newest[1].has_trigger(trigger):
        version = newest[0]
        raise TransitionNotAllowed(
            f"'{trigger}' exists only in a newer version of {rt.key}: {case.ref} is on version {case.type_version}"
            f" (newest {version}); move it first with 'loket workflow migrate {rt.key} --to {version}"
            f" --case {case.ref}'")
    data = parse_assignments(rt.fields, list(assignments)) if assignments else None
    if data:
        casework.check_required_fields(rt, {**case.data, **data}, emptying=True)
    return casework.advance(rt, org, cal, case, trigger, actor, now, comment, data)


def assign(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    person: str,
) -> Change:
    require_open(rt, case)
    require_member(org, actor, case, "assign")
    check_assignee(org, person, case.owner)
    if case.assignee == person:
        raise Refused(f"{case.ref} is already assigned to {person}")
    return Change({"assignee": person}, [Draft(Action.ASSIGNED, data={"assignee": person})])


def comment(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    text: str, closed_by: str | None,
) -> Change:
    """`text` as checked by `comment_text`; `closed_by` the unit that held the case when it
    closed (for an open case, None)."""
    # A closed case still takes comments (a resident calls back), from the unit that held it.
    unit = case.owner if case.closed_at is None else closed_by
    if org.may(actor, unit, ("staff",)):
        return Change({}, [Draft(Action.COMMENT, comment=text.strip())])
    # The administrator of the type's portfolio, or an assistant on their behalf (SPEC §12.1).
    admin = org.acting_for(actor, rt.portfolio)
    if admin is None:
        if actor in org.administrators or any(actor in a.assistants for a in org.administrators.values()):
            raise RoleRequired(f"{actor} may not comment on {case.ref}: it needs a role in unit '{unit}'"
                               f" ({who_may_direct(org, rt)} may comment for the administrator)")
        require_member(org, actor, case.apply({"owner": unit}), "comment on")
    assert admin is not None
    return Change({}, [Draft(Action.COMMENT, comment=text.strip(), data=_on_behalf(actor, admin.id))])


def _on_behalf(actor: str, admin: str) -> dict[str, Any] | None:
    """An event's `on_behalf_of` (SPEC §12.1): the administrator an assistant acts for."""
    return {"on_behalf_of": admin} if actor != admin else None


def who_may_direct(org: Organisation, rt: RequestType) -> str:
    """Who may give instructions on cases of this type, for a refusal's message."""
    admin = org.administrator_for(rt.portfolio) if rt.portfolio else None
    if admin is None:
        return (f"nobody: request type '{rt.key}' has no portfolio held by an administrator" if rt.portfolio is None
                else f"nobody: no administrator holds portfolio '{rt.portfolio}'")
    helpers = f" or their assistant{'s' if len(admin.assistants) > 1 else ''} {', '.join(admin.assistants)}" \
        if admin.assistants else ""
    return f"only the administrator of portfolio '{rt.portfolio}' ({admin.id}){helpers}"


def direct(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    within: Duration, text: str,
) -> Change:
    """A bestuurlijke opdracht (SPEC §12.1): the case must leave its state within `within`.

    A second instruction while one is open replaces it, and its event says which it replaced.
    """
    admin = org.acting_for(actor, rt.portfolio)
    if admin is None:
        raise RoleRequired(f"{actor} may not give an instruction on {case.ref}: {who_may_direct(org, rt)}"
                           " may (case direct)")
    require_open(rt, case)
    due = cal.due(now, within)
    replaces = None
    if case.directive_open() and case.directive_given_at is not None and case.directive_due is not None:
        replaces = {"given_at": timestamp(case.directive_given_at), "due": timestamp(case.directive_due)}
    data: dict[str, Any] = {"text": text, "within": term_text(within), "due": timestamp(due), "state": case.state,
                            "replaces": replaces}
    data.update(_on_behalf(actor, admin.id) or {})
    updates = {"directive_seq": case.last_seq + 1, "directive_given_at": now, "directive_state": case.state,
               "directive_due": due, "directive_met_at": None, "directive_missed_at": None}
    return Change(updates, [Draft(Action.DIRECTED, data=data)])


def set_fields(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    assignments: Sequence[str],
) -> Change:
    require_open(rt, case)
    require_member(org, actor, case, "change")
    data = parse_assignments(rt.fields, list(assignments))
    changed = {k: v for k, v in data.items() if case.data.get(k) != v}
    if not changed:
        raise Refused(f"{case.ref} already holds these values; nothing changed")
    merged = {k: v for k, v in {**case.data, **changed}.items() if v is not None}
    casework.check_required_fields(rt, merged, emptying=True)
    return Change({"data": merged}, [Draft(Action.DATA_CHANGED, data=changed)])


def suspend(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    reason: str,
) -> Change:
    """Stop the clocks (opschorting, Awb 4:15): the resident must act first."""
    require_open(rt, case)
    require_member(org, actor, case, "suspend")
    if case.suspended_manually:
        raise Refused(f"{case.ref} is already suspended")
    if case.suspended_at is not None:
        raise Refused(f"{case.ref}'s clock already stands still in state '{case.state}'")
    return Change({"suspended_at": now, "suspended_manually": True},
                  [Draft(Action.SUSPENDED, data={"reason": reason})])


def resume(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str,
) -> Change:
    require_open(rt, case)
    require_member(org, actor, case, "resume")
    if not case.suspended_manually or case.suspended_at is None:
        raise Refused(f"{case.ref} is not suspended")
    if now < case.suspended_at:
        raise InvalidValue(f"{case.ref} was suspended at {timestamp(case.suspended_at)}: it cannot be"
                           f" resumed earlier, at {timestamp(now)}")
    updates = casework.resume_clocks(rt, cal, case, now, state_running=True)
    days = (cal.local_date(now) - cal.local_date(case.suspended_at)).days
    return Change(updates, [Draft(Action.RESUMED, data={"suspended_days": days})])


def extend(
    rt: RequestType, org: Organisation, cal: WorkingCalendar, case: Case, now: dt.datetime, actor: str, *,
    by: Duration, reason: str, last_extension: Mapping[str, Any] | None,
) -> Change:
    """Move the legal decision term (beslistermijn), within the type's max_extension;
    `last_extension` is the data of the case's last `extended` event, if any."""
    require_open(rt, case)
    answering = rt.answering_unit()
    if not org.may(actor, case.owner, ("lead",)) and not org.may(actor, answering, ("lead",)):
        # The unit that answers for the term may extend it whoever holds the case (SPEC §12.3).
        units = " or ".join(dict.fromkeys(f"'{u}'" for u in (answering, case.owner) if u is not None))
        raise RoleRequired(f"{actor} may not extend {case.ref}: it needs role lead or head in unit {units}")
    if case.case_due is None or rt.max_extension is None:
        raise Refused(f"{rt.key} has no extendable lead time (no lead_time/max_extension)")
    if by.unit not in ("weeks", "working_days") or by.amount < 1:
        raise InvalidValue(f"an extension is a positive number of weeks or working days, got {by}")
    # The same derivation `case show --explain` replays, counted from the deadline's day
    # (the day an earlier extension counted to, before the Atw moved it).
    base = casework.extension_base(case.case_due, last_extension, by)
    new_due = cal.deadline(base, by).due
    limit = case.case_due_limit
    if limit is not None and new_due > limit and by.unit in ("weeks", "calendar_days"):
        # The deadline may stand where the Atw moved it (after a suspension shifted it
        # onto a holiday, say), while the maximum was counted without that move: counted
        # from the day before the move, the extension may still fit.
        earlier = cal.before_moves(base)
        if earlier != base and cal.deadline(earlier, by).due <= limit:
            base, new_due = earlier, cal.deadline(earlier, by).due
    if limit is not None and new_due > limit:
        raise Refused(
            f"extending {case.ref} by {by} would pass the maximum extension of {rt.max_extension}"
            f" (the term may run until {cal.local_date(limit).isoformat()} at most)"
        )
    data = {"by": str(by), "unit": by.unit, "amount": by.amount, "reason": reason,
            "from": timestamp(case.case_due), "to": timestamp(new_due)}
    unmoved = cal.unmoved(base, by)
    if unmoved != new_due:
        data["unmoved"] = timestamp(unmoved)
    if base != case.case_due:
        data["counted_from"] = timestamp(base)  # so that --explain replays it as it was
    return Change({"case_due": new_due}, [Draft(Action.EXTENDED, data=data)])
