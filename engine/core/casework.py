"""What happens to a case, as pure functions of (definition, organisation, calendar, case, now).

Each action checks the rules and returns a `Change`: the column values to write and the event
that records them. The service (`engine/app/service.py`) writes both in one transaction;
nothing here touches a database or a clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engine.core import machine
from engine.core.calendar import WorkingCalendar
from engine.core.conditions import failing
from engine.core.definition import RequestType, TransitionSpec
from engine.core.durations import Duration
from engine.core.history import (
    GENESIS,
    chain_hash,
    digests_for,
    event_content,
    free_text_digests,
    new_salt,
    timestamp,
)
from engine.core.organisation import Organisation
from engine.errors import (
    CommentRequired,
    ConditionFailed,
    MissingField,
    NotFound,
    Refused,
    RoleRequired,
    TransitionNotAllowed,
)

SYSTEM = "system"


@dataclass
class Case:
    """A snapshot of one `cases` row."""

    id: int
    ref: str
    type_key: str
    type_version: int
    state: str
    owner: str | None
    assignee: str | None
    data: dict[str, Any]
    created_at: dt.datetime
    created_by: str
    state_entered_at: dt.datetime
    stay: int
    state_due: dt.datetime | None
    service_due: dt.datetime | None
    case_due: dt.datetime | None
    case_due_limit: dt.datetime | None
    next_fire_at: dt.datetime | None
    suspended_at: dt.datetime | None
    suspended_manually: bool
    closed_at: dt.datetime | None
    escalation_level: int
    service_fired: bool
    lead_fired: bool
    version: int
    last_seq: int
    last_hash: str
    salt: str | None
    redacted_at: dt.datetime | None
    last_at: dt.datetime | None
    # The administrator's instruction (bestuurlijke opdracht, SPEC §12.1), the case's fourth
    # clock: the latest one given, with the number of its `directed` event.
    directive_seq: int | None = None
    directive_given_at: dt.datetime | None = None
    directive_state: str | None = None
    """The state the case was in when it was given: leaving it meets the instruction."""
    directive_due: dt.datetime | None = None
    directive_met_at: dt.datetime | None = None
    directive_missed_at: dt.datetime | None = None
    """When the sweep fired it as missed (its term ended before the case left the state)."""

    def directive_open(self) -> bool:
        """Whether an instruction was given and is neither met nor missed yet."""
        return (self.directive_due is not None and self.directive_met_at is None
                and self.directive_missed_at is None)

    def apply(self, updates: Mapping[str, Any]) -> Case:
        """A new snapshot with these columns changed; this one stays as it was."""
        unknown = updates.keys() - _FIELD_SET
        if unknown:
            raise TypeError(f"not a case column: {', '.join(sorted(unknown))}")
        new = object.__new__(Case)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(updates)
        return new


CASE_FIELDS = tuple(f.name for f in fields(Case))
_FIELD_SET = frozenset(CASE_FIELDS)


def new_case(
    rt: RequestType, version: int, cal: WorkingCalendar, now: dt.datetime, *, ref: str, actor: str,
    data: dict[str, Any],
) -> Case:
    """A case as it is made, before the store gives it its id (0 until then).

    Built through `Case` itself, so the row a new case starts as cannot drift from the
    fields a case has (and a test holds those to the table's columns). It is not yet in its
    first state: `enter_state` takes it there, as it takes it to every later one.
    """
    clocks = start_clocks(rt, cal, now)
    return Case(
        id=0, ref=ref, type_key=rt.key, type_version=version, state=rt.initial,
        owner=rt.states[rt.initial].owner, assignee=None, data=data, created_at=now, created_by=actor,
        state_entered_at=now, stay=0, state_due=None, service_due=clocks["service_due"],
        case_due=clocks["case_due"], case_due_limit=clocks["case_due_limit"], next_fire_at=None,
        suspended_at=None, suspended_manually=False, closed_at=None, escalation_level=0, service_fired=False,
        lead_fired=False, version=1, last_seq=0, last_hash=GENESIS,
        salt=new_salt() if rt.personal_fields() else None, redacted_at=None, last_at=None,
        directive_seq=None, directive_given_at=None, directive_state=None, directive_due=None,
        directive_met_at=None, directive_missed_at=None,
    )


@dataclass
class Draft:
    """An event before it is chained: what happened, not yet where in the history."""

    action: str
    from_state: str | None = None
    to_state: str | None = None
    trigger: str | None = None
    comment: str | None = None
    data: dict[str, Any] | None = None


@dataclass
class Change:
    updates: dict[str, Any] = field(default_factory=dict)
    drafts: list[Draft] = field(default_factory=list)


# -- rules -----------------------------------------------------------------------------------


def check_transition(
    rt: RequestType,
    org: Organisation,
    case: Case,
    trigger: str,
    actor: str,
    comment: str | None,
    data: Mapping[str, Any],
) -> TransitionSpec:
    """The transition `trigger` fires, or the reason the rules refuse it."""
    spec = rt.transition(case.state, trigger)
    if spec is None:
        if not rt.has_trigger(trigger):
            raise NotFound(f"request type '{rt.key}' has no trigger '{trigger}'")
        allowed = ", ".join(t.trigger for t in rt.transitions_from(case.state)) or "none"
        state = rt.states[case.state]
        raise TransitionNotAllowed(
            f"'{trigger}' is not allowed in state '{case.state}' ({state.label}) of {case.ref}"
            f" (possible here: {allowed})"
        )
    if case.suspended_manually:
        raise Refused(f"{case.ref} is suspended: resume it first")
    if actor != SYSTEM and not org.may(actor, case.owner, spec.roles):
        raise RoleRequired(
            f"{actor} may not fire '{trigger}' on {case.ref}: it needs role"
            f" {' or '.join(spec.roles)} in unit '{case.owner}'"
        )
    merged = {**case.data, **data} if data else case.data
    missing = [name for name in spec.requires if merged.get(name) in (None, "")]
    if missing:
        raise MissingField(
            f"'{trigger}' needs field{'s' if len(missing) > 1 else ''} {', '.join(missing)}:"
            f" give --data {missing[0]}=..."
        )
    if spec.comment_required and not (comment and comment.strip()):
        raise CommentRequired(f"'{trigger}' needs a comment: give --comment TEXT")
    if spec.when:
        broken = failing(spec.when, rt.fields, merged)
        if broken:
            raise ConditionFailed(
                f"'{trigger}' does not apply to {case.ref}: {'; '.join(str(c) for c in broken)}"
                " does not hold"
            )
    return spec


def allowed_triggers(rt: RequestType, org: Organisation, case: Case, actor: str | None) -> list[str]:
    """The triggers this actor may fire now (comments and missing fields they can still give)."""
    if actor is None or case.closed_at is not None or case.suspended_manually:
        return []
    out = []
    for spec in rt.transitions_from(case.state):
        if not org.may(actor, case.owner, spec.roles):
            continue
        if spec.when and failing(spec.when, rt.fields, case.data):
            continue
        out.append(spec.trigger)
    return out


def check_required_fields(rt: RequestType, data: Mapping[str, Any], *, emptying: bool = False) -> None:
    """Refuse data that lacks a required field; `emptying` when the change would empty one
    (`case set FIELD=`) rather than leave it out (`case new`)."""
    missing = [n for n, f in rt.fields.items() if f.required and data.get(n) in (None, "")]
    if missing:
        how = "it cannot be emptied" if emptying else f"give --data {missing[0]}=..."
        raise MissingField(f"{rt.key} needs field{'s' if len(missing) > 1 else ''} {', '.join(missing)}: {how}")


# -- clocks ----------------------------------------------------------------------------------


def enter_state(
    rt: RequestType, cal: WorkingCalendar, case: Case, dest: str, now: dt.datetime
) -> dict[str, Any]:
    """The column values for a case entering `dest` now: a new stay with its own deadline."""
    spec = rt.states[dest]
    updates: dict[str, Any] = {
        "state": dest,
        "owner": spec.owner,
        "state_entered_at": now,
        "stay": case.stay + 1,
        "escalation_level": 0,
    }
    if case.directive_open() and case.state == case.directive_state and case.directive_due is not None \
            and now < case.directive_due:
        # Leaving the state the instruction was given in, within its term, meets it (closing
        # the case is leaving it too). Left after the term, it stays due: the sweep fires it.
        updates["directive_met_at"] = now
    leaving = rt.states.get(case.state)
    if leaving is not None and leaving.paused and case.suspended_at is not None:
        updates.update(resume_clocks(rt, cal, case, now, state_running=False))
    if spec.final:
        updates.update(state_due=None, closed_at=now, owner=None, suspended_at=None,
                       suspended_manually=False)
    elif spec.paused:
        updates.update(state_due=None, suspended_at=updates.get("suspended_at", case.suspended_at) or now)
    else:
        updates["state_due"] = cal.due(now, spec.deadline) if spec.deadline else None
        updates["suspended_at"] = None
    return updates


def start_clocks(rt: RequestType, cal: WorkingCalendar, now: dt.datetime) -> dict[str, Any]:
    """The case-wide clocks, started when the case is made."""
    case_due = cal.due(now, rt.lead_time) if rt.lead_time else None
    limit = None
    if case_due is not None and rt.max_extension is not None:
        limit = cal.offset(case_due, rt.max_extension)
    return {
        "service_due": cal.due(now, rt.service_norm) if rt.service_norm else None,
        "case_due": case_due,
        "case_due_limit": limit,
    }


def resume_clocks(
    rt: RequestType, cal: WorkingCalendar, case: Case, now: dt.datetime, *, state_running: bool
) -> dict[str, Any]:
    """Every running deadline moves later by the time the clock stood still (Awb 4:15)."""
    assert case.suspended_at is not None
    start = case.suspended_at
    out: dict[str, Any] = {"suspended_at": None, "suspended_manually": False}
    columns = ["service_due", "case_due", "case_due_limit"]
    if state_running:
        columns.append("state_due")
    for column in columns:
        value = getattr(case, column)
        if value is None:
            continue
        exact = _is_hours(rt, column, case.state)
        out[column] = cal.shift(value, start, now, exact=exact)
    if (rt.max_extension is not None and case.case_due is not None and case.case_due_limit is not None
            and case.case_due_limit == cal.offset(case.case_due, rt.max_extension)):
        # Not extended yet: the maximum counts from the term as it now stands, as it did when
        # the case was made, so that a term the shift moved past a holiday may still be
        # extended by the whole maximum from where it ends.
        out["case_due_limit"] = cal.offset(out["case_due"], rt.max_extension)
    return out


def _is_hours(rt: RequestType, column: str, state: str) -> bool:
    duration = {
        "service_due": rt.service_norm,
        "case_due": rt.lead_time,
        "case_due_limit": rt.lead_time,
        "state_due": rt.states[state].deadline,
    }[column]
    return duration is not None and duration.unit == "hours"


def next_fire_at(rt: RequestType, cal: WorkingCalendar, case: Case) -> dt.datetime | None:
    """When a sweep next has work on this case: the earliest unfired rung, breach or timeout.

    An open instruction fires on its term even on a suspended or closed case (its term is
    the administrator's, not an Awb term that a suspension stops)."""
    directive = [case.directive_due] if case.directive_open() and case.directive_due is not None else []
    if case.closed_at is not None or case.suspended_at is not None:
        return min(directive) if directive else None
    times = directive
    if case.state_due is not None:
        for rung in rt.ladder(case.state):
            if rung.place > case.escalation_level:
                times.append(rung_time(cal, case.state_due, rung))
        timeout = rt.states[case.state].timeout
        if timeout is not None:
            times.append(cal.offset(case.state_due, timeout.after))
    if case.service_due is not None and not case.service_fired:
        times.append(case.service_due)
    if case.case_due is not None and not case.lead_fired:
        times.append(case.case_due)
    return min(times) if times else None


def extension_base(
    case_due: dt.datetime, last_extension: Mapping[str, Any] | None, by: Duration
) -> dt.datetime:
    """Where an extension of the decision term by `by` counts from, given the data of the last
    `extended` event.

    From the deadline, except for an extension in weeks or calendar days after one the Atw
    moved past a weekend or holiday: that counts on from the day the last one counted to, so
    that extending by 1 week and then by 5 ends where extending by 6 weeks at once would (and
    two extensions adding up to the maximum are not refused for the moves in between). Only
    while the deadline is still the one that extension set: once a suspension has shifted it,
    it counts from where it stands. Working days count from the deadline, the day the term
    really ended.
    """
    if (by.unit in ("weeks", "calendar_days") and last_extension and last_extension.get("unmoved")
            and last_extension.get("to") == timestamp(case_due)):
        return dt.datetime.fromisoformat(str(last_extension["unmoved"]))
    return case_due


def last_owner(rt: RequestType, states_left: Iterable[str]) -> str | None:
    """The owner of the newest state a case left that had one, given the states it left,
    newest first: the unit that held a case that no unit holds now (a closed one)."""
    for state in states_left:
        if state in rt.states and rt.states[state].owner is not None:
            return rt.states[state].owner
    return None


def rung_time(cal: WorkingCalendar, due: dt.datetime, rung: Any) -> dt.datetime:
    return cal.offset(due, rung.offset, before=rung.before)


# -- the history -----------------------------------------------------------------------------


def chain(
    case: Case,
    drafts: list[Draft],
    *,
    actor: str,
    at: dt.datetime,
    recorded_at: dt.datetime,
    personal: frozenset[str],
    text_fields: frozenset[str] = frozenset(),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Event rows for the drafts, linked onto the case's chain, and the new chain head; free
    text (the comment, `text_fields`' values, typed reasons) by a digest of its own salt."""
    rows = []
    seq, prev = case.last_seq, case.last_hash
    for draft in drafts:
        seq += 1
        digests = digests_for(draft.data, personal, case.salt)
        salts = None
        if draft.comment or draft.data:
            texts, salts = free_text_digests(draft.action, draft.comment, draft.data, text_fields, digests)
            if texts:
                digests = {**digests, **texts}
        content = event_content(
            ref=case.ref, seq=seq, at=at, recorded_at=recorded_at, actor=actor,
            action=draft.action, from_state=draft.from_state, to_state=draft.to_state,
            trigger=draft.trigger, comment=draft.comment, data=draft.data, digests=digests,
        )
        digest = chain_hash(content, prev)
        rows.append({
            "case_id": case.id, "seq": seq, "at": at, "recorded_at": recorded_at, "actor": actor,
            "action": draft.action, "from_state": draft.from_state, "to_state": draft.to_state,
            "trigger": draft.trigger, "comment": draft.comment, "data": draft.data,
            "digests": digests or None, "salts": salts or None, "prev_hash": prev, "hash": digest,
        })
        prev = digest
    return rows, {"last_seq": seq, "last_hash": prev}


def advance(
    rt: RequestType,
    org: Organisation,
    cal: WorkingCalendar,
    case: Case,
    trigger: str,
    actor: str,
    now: dt.datetime,
    comment: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Change:
    spec = check_transition(rt, org, case, trigger, actor, comment, data or {})
    dest = machine.fire(rt, case.state, trigger)
    updates = enter_state(rt, cal, case, dest, now)
    if data:
        # `FIELD=` empties a field: the key goes, as with `case set`.
        updates["data"] = {k: v for k, v in {**case.data, **data}.items() if v is not None}
    drafts = [Draft("transition", case.state, dest, spec.trigger, comment or None, dict(data) if data else None)]
    owner = updates.get("owner")
    if case.assignee and owner is not None and owner != case.owner and not org.may(case.assignee, owner, ("staff",)):
        # The case went to a unit the assignee has no role in: they could not act on it, and
        # its reminders would reach them rather than the unit. It is released (in the
        # history), and the ladder's vacancy rule reaches the new unit's lead until someone
        # there takes it.
        updates["assignee"] = None
        drafts.append(Draft("assigned", data={"assignee": None, "released": case.assignee,
                                              "reason": f"no role in unit '{owner}'"}))
    return Change(updates, drafts)
