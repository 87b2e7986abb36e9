"""Moving a running case to another version of its request type, as pure rules (SPEC §14).

A loaded version never changes; a procedure that changes gets a new version, and the cases
still running on an older one stay there until an operator moves them (`loket workflow
migrate`). Each case's state goes to the state of the same name in the new version, unless the
operator maps it (`--map OLD=NEW`); a state without a counterpart is refused for that case,
which stays as it was.

What the new version says is then applied as if the case had run under it from the start:
every deadline is counted again from the moment its clock started — the state's from entering
it, the service norm and the legal term from the case's creation — under the new version's
terms, and moved again by the case's own suspensions and extensions (`engine.core.derivation`,
as `case show --explain` counts). A clock whose term did not change keeps its date. The stay,
and so the rungs already fired in it, stays: the next sweep fires what the new dates make due,
once. An assignee without a role in the unit that now owns the case is released, as on a
hand-over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core import derivation
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, Change, Draft
from engine.core.definition import RequestType
from engine.core.derivation import Types
from engine.core.history import timestamp
from engine.core.organisation import Organisation
from engine.core.vocabulary import Action
from engine.errors import InvalidValue, NotFound, Refused

CLOCKS = ("state_due", "service_due", "case_due", "case_due_limit")
"""The deadline columns a migration counts again."""

CLOCK_ACTIONS = (Action.CREATED, Action.TRANSITION, Action.SUSPENDED, Action.RESUMED, Action.EXTENDED,
                 Action.MIGRATED)
"""The events a recount reads: where clocks started, stood still, moved on or changed version."""

REFUSED_CHANGED = 3
"""The exit code a case refused because it changed meanwhile carries in the listing; the rules'
refusals carry 1."""


class NotMigrated(Refused):
    """This case cannot move (its state has no counterpart, say); the others go ahead."""


# -- the operator's map ------------------------------------------------------------------------


def parse_map(items: Sequence[str]) -> dict[str, str]:
    """`--map OLD=NEW` options as a dict; a malformed or contradictory one is bad input."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = (part.strip() for part in item.partition("="))
        if not sep or not old or not new:
            raise InvalidValue(f"--map takes OLD=NEW (a state of the old version, one of the new), got {item!r}")
        if out.get(old, new) != new:
            raise InvalidValue(f"--map gives state '{old}' two places: '{out[old]}' and '{new}'")
        out[old] = new
    return out


def check_map(state_map: Mapping[str, str], old: Sequence[tuple[int, RequestType]], new: RequestType,
              to_version: int) -> None:
    """Every mapping must name a state some migrated version has and a state the new one has
    where a case can run (not a final one: a migration closes nothing)."""
    olds = ", ".join(f"v{v}" for v, _ in old)
    for source, dest in state_map.items():
        if not any(source in rt.states for _, rt in old):
            raise NotFound(f"--map {source}={dest}: {new.key} {olds} has no state '{source}'")
        if dest not in new.states:
            known = ", ".join(s for s, spec in new.states.items() if not spec.final)
            raise NotFound(f"--map {source}={dest}: {new.key} v{to_version} has no state '{dest}' (states: {known})")
        if new.states[dest].final:
            raise InvalidValue(f"--map {source}={dest}: '{dest}' is a final state of {new.key} v{to_version};"
                               " a migration moves running cases, it closes none")


# -- one case ----------------------------------------------------------------------------------


def target_state(case: Case, old: RequestType, new: RequestType, to_version: int,
                 state_map: Mapping[str, str]) -> str:
    """Where the case's state goes, or why it cannot go anywhere."""
    dest = state_map.get(case.state, case.state)
    if dest not in new.states:
        raise NotMigrated(f"state '{case.state}' is not in version {to_version}: map it with"
                          f" --map {case.state}=STATE")
    spec = new.states[dest]
    if spec.final:
        raise NotMigrated(f"state '{dest}' is final in version {to_version}: map '{case.state}' to a running"
                          " state with --map")
    if spec.paused != old.states[case.state].paused:
        stops = "stops" if old.states[case.state].paused else "does not stop"
        raise NotMigrated(f"state '{case.state}' {stops} the clock in version {case.type_version} but '{dest}'"
                          f" {'does not' if spec.paused else 'does'} in version {to_version}: move the case"
                          " on first, or map it to a state that counts time alike")
    return dest


def clocks_changed(old: RequestType, new: RequestType, state: str, dest: str) -> bool:
    """Whether any of the case's terms differs between the versions (otherwise its dates stand
    and its history need not be read)."""
    return (old.lead_time != new.lead_time or old.service_norm != new.service_norm
            or old.max_extension != new.max_extension or old.states[state].deadline != new.states[dest].deadline)


@dataclass(frozen=True)
class Plan:
    """What moving one case makes of it."""

    change: Change
    state: str
    """The state it goes to."""
    released: str | None
    """The assignee it lets go, if any."""


def plan(
    old: RequestType,
    new: RequestType,
    to_version: int,
    org: Organisation,
    cal: WorkingCalendar,
    case: Case,
    now: dt.datetime,
    *,
    state_map: Mapping[str, str],
    events: Sequence[Mapping[str, Any]] | None,
    types: Types,
) -> Plan:
    """The change that moves `case` (on `old`, its version) to `new` (version `to_version`).

    `events` are the case's clock events in order (`CLOCK_ACTIONS`), needed only when
    `clocks_changed`; `types` gives any version by number (for states entered under one the
    case has left since).
    """
    if case.closed_at is not None:
        raise NotMigrated(f"{case.ref} is closed")
    if case.type_version == to_version:
        raise NotMigrated(f"{case.ref} is already on version {to_version}")
    dest = target_state(case, old, new, to_version, state_map)
    updates: dict[str, Any] = {"type_version": to_version, "state": dest, "owner": new.states[dest].owner}
    if clocks_changed(old, new, case.state, dest):
        if events is None:
            raise ValueError("the case's terms change: its clock events are needed")
        updates.update(recount(new, cal, case, dest, events, types))
    deadlines = {name: {"from": timestamp(getattr(case, name)), "to": timestamp(updates[name])}
                 for name in CLOCKS if name in updates and updates[name] != getattr(case, name)}
    data = {"from_version": case.type_version, "to_version": to_version, "state_map": dict(state_map)}
    if deadlines:
        data["deadlines"] = deadlines
    drafts = [Draft(Action.MIGRATED, case.state, dest, None, None, data)]
    released = None
    owner = updates["owner"]
    if case.assignee and owner != case.owner and not org.may(case.assignee, owner, ("staff",)):
        # As on a hand-over (`casework.advance`): the case went to a unit the assignee has no
        # role in; the vacancy rule reaches that unit's lead until someone there takes it.
        released = case.assignee
        updates["assignee"] = None
        drafts.append(Draft(Action.ASSIGNED, data={"assignee": None, "released": case.assignee,
                                                   "reason": f"no role in unit '{owner}'"}))
    return Plan(Change(updates, drafts), dest, released)


def recount(
    new: RequestType, cal: WorkingCalendar, case: Case, dest: str, events: Sequence[Mapping[str, Any]],
    types: Types,
) -> dict[str, Any]:
    """The case's deadlines under `new`, from the moments their clocks started."""
    along = derivation.versions_along(events, case.type_version, types)
    pauses = derivation.pauses(events, along)
    out: dict[str, Any] = {}
    spec = new.states[dest]
    if spec.paused or spec.deadline is None:
        out["state_due"] = None
    else:
        entered = case.state_entered_at
        stay = [p for p in pauses if p.manual and p.began >= entered]
        out["state_due"] = derivation.derive(cal, entered, spec.deadline, stay).due
    out["service_due"] = (derivation.derive(cal, case.created_at, new.service_norm, pauses).due
                          if new.service_norm else None)
    if new.lead_time is None:
        out["case_due"] = out["case_due_limit"] = None
        return out
    extended = derivation.extensions(events, along, new)
    out["case_due"] = derivation.derive(cal, case.created_at, new.lead_time, pauses, extended).due
    # The most it may be extended counts from the term as suspensions left it, before any extension.
    unextended = derivation.derive(cal, case.created_at, new.lead_time, pauses).due
    out["case_due_limit"] = cal.offset(unextended, new.max_extension) if new.max_extension else None
    return out
