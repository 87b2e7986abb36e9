"""What changed in a case while a command was being planned, and whether that command cares.

A command reads a case, plans its change and writes it guarded by the version it read; on
PostgreSQL a colleague who wrote in between makes the guard miss. Most such misses are no
real conflict: six people commenting at once never contradict one another, and setting one
field does not contradict setting another. The service then plans again on the new row,
where every rule is checked again; only when something the command rests on changed
meanwhile is it refused (exit 3), so that the person looks at the case again.

Both sides speak of *aspects*: a case column ("state", "owner", "closed_at", ...) or one field
of the case's data ("data.amount"). A command rests on a set of aspects, `EVERYTHING` for
the commands whose rules read the case as a whole; a change touched a set of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.casework import CASE_FIELDS, Case
from engine.core.vocabulary import Action

ANY = "*"
"""In what a command rests on: every aspect. In what a change touched: something this module
cannot name (an action it does not know), which collides with whatever rests on anything."""

EVERYTHING = frozenset({ANY})
NOTHING: frozenset[str] = frozenset()
"""What a comment rests on: it adds to the history and changes nothing, so whatever happened
meanwhile, planning it again on the new row (which checks who may comment) is all it needs."""

BOOKKEEPING = frozenset({"id", "version", "last_seq", "last_hash", "last_at", "next_fire_at",
                         "escalation_level", "service_fired", "lead_fired", "directive_missed_at"})
"""Columns that move with every write or with a sweep's reminders: no rule of a person's
command reads them, so their moving is no reason to refuse one."""

_ASPECT_OF_ACTION = {
    Action.ASSIGNED: "assignee",
    Action.SUSPENDED: "suspended_at",
    Action.RESUMED: "suspended_at",
    Action.EXTENDED: "case_due",
    Action.DIRECTED: "directive_due",
}


def field(name: str) -> str:
    """The aspect of one data field."""
    return f"data.{name}"


def fields_and_state(names: Iterable[str]) -> frozenset[str]:
    """What setting these fields rests on: the fields themselves, and what its rules checked
    (the state and the unit holding the case, for who may change it; whether it is closed)."""
    return frozenset({*(field(n) for n in names), "state", "owner", "closed_at"})


def touched(before: Case, after: Case, events: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The aspects changed between two reads of a case, `events` being those recorded in
    between. The rows show where the case ended up; the events also show a change that was
    undone meanwhile (a field set and set back still contradicts a plan made before)."""
    aspects: set[str] = set()
    for name in CASE_FIELDS:
        if name in BOOKKEEPING or getattr(before, name) == getattr(after, name):
            continue
        if name == "data":
            keys = before.data.keys() | after.data.keys()
            aspects.update(field(k) for k in keys if before.data.get(k) != after.data.get(k))
        else:
            aspects.add(name)
    for event in events:
        aspects |= _touched_by(event)
    return frozenset(aspects)


def _touched_by(event: Mapping[str, Any]) -> set[str]:
    action, data = event["action"], event.get("data") or {}
    if action in (Action.COMMENT, Action.ESCALATED):
        return set()
    if action == Action.TRANSITION:
        return {"state", *(field(k) for k in data)}
    if action == Action.DATA_CHANGED:
        return {field(k) for k in data}
    if action == Action.REDACTED:
        return {field(k) for k in data.get("fields", ())}
    aspect = _ASPECT_OF_ACTION.get(action)
    return {aspect} if aspect else {ANY}


def collision(changed: frozenset[str], rests_on: frozenset[str]) -> list[str]:
    """The aspects a command rests on that changed meanwhile (empty: plan again)."""
    if not changed or not rests_on:
        return []
    if ANY in rests_on or ANY in changed:
        return sorted(changed)
    return sorted(changed & rests_on)
