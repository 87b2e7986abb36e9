"""What a case row must hold, rebuilt from its history by the functions that wrote it.

A case row is a cache of its history: every column a command writes follows from the events
it writes with it. `Replay` rebuilds the row event by event through the very functions the
commands and the sweep use (`casework.new_case`, `enter_state`, `resume_clocks`,
`next_fire_at`), so that writing and checking cannot drift apart; `audit verify` then
compares the stored row with the rebuilt one, and a row edited behind the chain's back — an
owner, a deadline, a `next_fire_at` set to nothing so that a case never escalates — is damage.

What the history cannot say, the replay does not claim:

- `version`, the optimistic lock, counts writes, and some writes record no event (a sweep that
  found nothing due after all only looks again later), so it cannot be replayed;
- `salt` is a secret: only the digests it made are in the chain;
- `id` and `ref` are where the row and its chain are joined, not something they say.

Deadlines are counted on the working-day calendar in force when each event was written: the
organisation loaded last at or before the event's time (`Calendars`). The one column a write
without an event changes is `next_fire_at`, so the row may also hold the value a calendar
loaded since the last event gives (`next_fire_candidates`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case
from engine.core.definition import RequestType
from engine.core.migration import CLOCKS
from engine.core.vocabulary import Action, Rung
from engine.errors import InvalidValue

REPLAYED = (
    "state", "assignee", "data", "type_key", "type_version", "owner", "created_at", "created_by",
    "state_entered_at", "stay", "state_due", "service_due", "case_due", "case_due_limit", "suspended_at",
    "suspended_manually", "closed_at", "escalation_level", "service_fired", "lead_fired", "next_fire_at",
    "last_seq", "last_hash", "last_at", "redacted_at",
    "directive_seq", "directive_given_at", "directive_state", "directive_due", "directive_met_at",
    "directive_missed_at",
)
"""The columns a history decides, in the order a check reports them."""
NOT_REPLAYED = ("id", "ref", "version", "salt")
"""The columns it does not (see the module's docstring)."""

T = TypeVar("T")
_CREATED = Action.CREATED
"""Looked up once: every event is compared with it."""


class ReplayError(Exception):
    """An event the replay cannot apply: its action or data is not what a command writes.

    `damaged` when its data does not even have the shape its action writes; otherwise it is
    a step the case could not have taken (a forged history with valid hashes, say).
    """

    def __init__(self, seq: int, what: str, *, damaged: bool = False) -> None:
        super().__init__(what)
        self.seq, self.what, self.damaged = seq, what, damaged


def in_force(loaded: Sequence[tuple[dt.datetime, T]], at: dt.datetime) -> T:
    """What was in force at `at`, of things loaded one after another (each with the time it
    was loaded): the last one loaded at or before `at`, or the first one if `at` is earlier
    than all of them (a simulation's clock set back before the first load)."""
    for when, item in reversed(loaded):
        if when <= at:
            return item
    return loaded[0][1]


def maybe_in_force(loaded: Sequence[tuple[dt.datetime, T]], at: dt.datetime) -> list[T]:
    """What may have been in force at `at`: the one `in_force` gives first, then the others
    loaded at that very instant and the one in force before it. A clock cannot tell whether
    a load or a write came first within one instant (a simulation's clock often stands still)."""
    found = [in_force(loaded, at)]
    for when, item in reversed(loaded):
        if when <= at:
            found.append(item)
        if when < at:
            break
    return list(dict.fromkeys(found))


class Calendars:
    """The working-day calendars of every organisation loaded, in load order."""

    def __init__(self, loaded: Sequence[tuple[dt.datetime, WorkingCalendar]]) -> None:
        if not loaded:
            raise ValueError("no organisation was ever loaded")
        self.loaded = list(loaded)
        self._only = self.loaded[0][1] if len(self.loaded) == 1 else None

    def at(self, when: dt.datetime) -> WorkingCalendar:
        return self._only or in_force(self.loaded, when)

    def since(self, when: dt.datetime) -> list[WorkingCalendar]:
        """The calendars loaded after `when`, which a later write may have counted with."""
        return [cal for loaded_at, cal in self.loaded if loaded_at > when]


def merged(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Field values after a change (`case set`, or fields given with a step): None empties a
    field, and an empty field has no key — as `commands.set_fields` and `casework.advance` do."""
    return {k: v for k, v in {**data, **changes}.items() if v is not None}


class Replay:
    """One case's row, rebuilt as its events are fed in order.

    `rt` is the version of the request type the case was made with and `calendars` the
    organisations' calendars. An event is a mapping with at least `seq`, `at`, `actor`,
    `action`, `from_state`, `to_state`, `trigger`, `data` and `hash`, as the history holds it
    (after a redaction its data lacks the personal values, and so does the row).
    """

    def __init__(
        self, rt: RequestType, version: int, calendars: Calendars, *, ref: str, case_id: int = 0,
        types: Callable[[int], RequestType] | None = None, alternatives: Sequence[int] = (),
    ) -> None:
        self.rt, self.version, self.calendars = rt, version, calendars
        self.ref, self.case_id = ref, case_id
        self.case: Case | None = None
        self.types = types
        """Any version of the type by number, for a case that moved to another (`migrated`)."""
        self._alternatives = [v for v in alternatives if v != version]
        """Other versions the case may have been made with (loaded at the very instant it was)."""
        self._fed: list[Mapping[str, Any]] | None = [] if self._alternatives and types is not None else None
        """The events fed so far, kept only while the version it was made with is in doubt."""
        self._start = (rt, version)

    def feed(self, event: Mapping[str, Any]) -> None:
        seq, at, action = event["seq"], event["at"], event["action"]
        data = event["data"] or {}
        if not isinstance(data, Mapping):
            raise ReplayError(seq, "data is not an object", damaged=True)
        if self._fed is not None:
            if action == Action.MIGRATED:
                self._settle(data)
            else:
                self._fed.append(event)
        try:
            if action == _CREATED:
                self._created(event, data)
            else:
                case = self._case(seq)
                updates = self._updates(case, event, data)
                if updates:
                    self.case = case.apply(updates)
        except (InvalidValue, ValueError, OverflowError) as exc:
            # A time outside the calendar's years, say: only a forged event can hold one.
            raise ReplayError(seq, f"cannot be replayed: {exc}") from None
        assert self.case is not None
        self.case.last_seq, self.case.last_hash, self.case.last_at = seq, event["hash"], at

    def _settle(self, data: Mapping[str, Any]) -> None:
        """At a case's first migration, the version it left is the one it was made with: when
        that is another of those in doubt, the history so far is replayed again on it."""
        fed, self._fed = self._fed or [], None
        made = data.get("from_version")
        if made == self.version or made not in self._alternatives or self.types is None:
            return
        self.rt, self.version, self.case = self.types(made), made, None
        for event in fed:
            self.feed(event)

    def result(self) -> Case:
        """The row as its history leaves it, `next_fire_at` as the last event's write set it."""
        case = self._case(0)
        assert case.last_at is not None
        case.next_fire_at = casework.next_fire_at(self.rt, self.calendars.at(case.last_at), case)
        return case

    def next_fire_candidates(self) -> list[dt.datetime | None]:
        """Every value `next_fire_at` may hold: the one `result` gives, and the ones a calendar
        loaded since the last event gives (a sweep that found nothing due recomputes it with
        the calendar it runs on, and writes no event)."""
        case = self.result()
        assert case.last_at is not None
        return [case.next_fire_at, *(casework.next_fire_at(self.rt, cal, case)
                                     for cal in self.calendars.since(case.last_at))]

    # -- the actions ---------------------------------------------------------------------------

    def _case(self, seq: int) -> Case:
        if self.case is None:
            raise ReplayError(seq, "the history does not begin with 'created'")
        return self.case

    def _created(self, event: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """`Loket.new_case`: `casework.new_case`, then `commands.opened` enters the first state."""
        rt, seq, at = self.rt, event["seq"], event["at"]
        if self.case is not None:
            raise ReplayError(seq, "a second 'created' event")
        if event["to_state"] != rt.initial:
            raise ReplayError(seq, f"created in state {event['to_state']!r}, but {rt.key} v{self.version}"
                                   f" starts in '{rt.initial}'")
        cal = self.calendars.at(at)
        case = casework.new_case(rt, self.version, cal, at, ref=self.ref, actor=event["actor"], data=dict(data))
        self.case = case.apply({"id": self.case_id, **casework.enter_state(rt, cal, case, rt.initial, at)})

    def _updates(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        apply = _ACTIONS.get(event["action"])
        if apply is None:
            raise ReplayError(event["seq"], f"unknown action {event['action']!r}")
        return apply(self, case, event, data)

    def _transition(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """`casework.advance` (a person's step, or a timeout the sweep fires); a release of the
        assignee on the hand-over is an `assigned` event of its own."""
        rt, seq, at = self.rt, event["seq"], event["at"]
        spec = rt.transition(case.state, event["trigger"]) if type(event["trigger"]) is str else None
        if event["from_state"] != case.state or spec is None or spec.dest != event["to_state"]:
            raise ReplayError(seq, f"the step {event['from_state']!r} → {event['to_state']!r} by"
                                   f" {event['trigger']!r} is not one {rt.key} v{self.version} has from"
                                   f" state '{case.state}'")
        updates = casework.enter_state(rt, self.calendars.at(at), case, spec.dest, at)
        if data:
            updates["data"] = merged(case.data, data)
        return updates

    def _assigned(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        assignee = data.get("assignee")
        if assignee is not None and type(assignee) is not str:
            raise ReplayError(event["seq"], "data.assignee is not a person's id", damaged=True)
        return {"assignee": assignee}

    def _data_changed(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        return {"data": merged(case.data, data)}

    def _suspended(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        return {"suspended_at": event["at"], "suspended_manually": True}

    def _resumed(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        at = event["at"]
        if case.suspended_at is None:
            raise ReplayError(event["seq"], "resumed, but the case's clock was running")
        return casework.resume_clocks(self.rt, self.calendars.at(at), case, at, state_running=True)

    def _extended(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The new decision deadline is recorded with the extension (`commands.extend`)."""
        return {"case_due": _instant(event["seq"], data.get("to"))}

    def _escalated(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """What the sweep writes for each firing (`engine.app.sweep`)."""
        rung = data.get("rung")
        if type(rung) is str and rung.isdigit():
            return {"escalation_level": max(case.escalation_level, int(rung))}
        if rung == Rung.SERVICE_NORM:
            return {"service_fired": True}
        if rung == Rung.LEAD_TIME:
            return {"lead_fired": True}
        if rung == Rung.DIRECTIVE:
            if case.directive_due is None:
                raise ReplayError(event["seq"], "a missed instruction, but none was given")
            # The administrator's and the head's events share their instant.
            return {"directive_missed_at": case.directive_missed_at or event["at"]}
        raise ReplayError(event["seq"], f"data.rung {rung!r} is no rung", damaged=True)

    def _redacted(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """`engine.app.redact`: the personal values go from the row (and the salt, which is not
        replayed)."""
        fields = data.get("fields", [])
        if type(fields) is not list or not all(type(name) is str for name in fields):
            raise ReplayError(event["seq"], "data.fields is not a list of field names", damaged=True)
        return {"data": {k: v for k, v in case.data.items() if k not in fields}, "redacted_at": event["at"]}

    def _comment(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _migrated(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """`engine.core.migration.plan`: the case moves to another version, its state to the
        one its map names (or the same), its owner to that state's; the deadlines it counted
        again are recorded with it (`data.deadlines`), as an extension records its new term. A
        release of the assignee is an `assigned` event of its own."""
        seq = event["seq"]
        source, dest, state_map = data.get("from_version"), data.get("to_version"), data.get("state_map")
        if type(source) is not int or type(dest) is not int or not isinstance(state_map, Mapping):
            raise ReplayError(seq, "data is not what a migration records", damaged=True)
        if source != self.version:
            raise ReplayError(seq, f"migrated from version {source}, but the case was on version {self.version}")
        if self.types is None:
            raise ReplayError(seq, "a migration, which this replay cannot follow (no other versions given)")
        try:
            new = self.types(dest)
        except Exception:
            raise ReplayError(seq, f"migrated to version {dest}, which {self.rt.key} does not have") from None
        state = state_map.get(case.state, case.state)
        if (event["from_state"] != case.state or event["to_state"] != state or state not in new.states
                or new.states[state].final):
            raise ReplayError(seq, f"the move {event['from_state']!r} → {event['to_state']!r} is not where the"
                                   f" map takes state '{case.state}' in version {dest}")
        updates: dict[str, Any] = {"type_version": dest, "state": state, "owner": new.states[state].owner}
        deadlines = data.get("deadlines") or {}
        if not isinstance(deadlines, Mapping):
            raise ReplayError(seq, "data.deadlines is not an object", damaged=True)
        for name, moved in deadlines.items():
            if name not in CLOCKS or not isinstance(moved, Mapping):
                raise ReplayError(seq, f"data.deadlines.{name} is no deadline's move", damaged=True)
            to = moved.get("to")
            updates[name] = None if to is None else _instant(seq, to, f"data.deadlines.{name}.to")
        self.rt, self.version = new, dest
        return updates

    def _directed(self, case: Case, event: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """`commands.direct`: the instruction becomes the case's latest, with the term it records."""
        seq = event["seq"]
        if data.get("state") != case.state:
            raise ReplayError(seq, f"an instruction given in state {data.get('state')!r}, but the case was in"
                                   f" '{case.state}'")
        return {"directive_seq": seq, "directive_given_at": event["at"], "directive_state": case.state,
                "directive_due": _instant(seq, data.get("due"), "data.due"),
                "directive_met_at": None, "directive_missed_at": None}


_ACTIONS: dict[str, Callable[[Replay, Case, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    Action.TRANSITION: Replay._transition, Action.ASSIGNED: Replay._assigned,
    Action.DATA_CHANGED: Replay._data_changed, Action.SUSPENDED: Replay._suspended, Action.RESUMED: Replay._resumed,
    Action.EXTENDED: Replay._extended, Action.ESCALATED: Replay._escalated, Action.REDACTED: Replay._redacted,
    Action.COMMENT: Replay._comment, Action.MIGRATED: Replay._migrated, Action.DIRECTED: Replay._directed,
}
"""What each action after `created` does to the row; looked up by the stored word."""


def _instant(seq: int, text: Any, where: str = "data.to") -> dt.datetime:
    """A new deadline an extension or a migration records (as `history.timestamp` writes it)."""
    try:
        when = dt.datetime.fromisoformat(text) if type(text) is str else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ReplayError(seq, f"{where} is not the new deadline", damaged=True)
    return when
