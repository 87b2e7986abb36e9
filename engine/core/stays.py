"""A case's ended stays, worked out from its history: what `case_stay` holds (SPEC §11).

A stay begins with a `created` or `transition` event and ends with the next `transition`;
`suspended` and `resumed` stop and restart its clock (the state deadline moves by the time it
stood still, as the engine moves it). Other events (a `migrated` one included) neither begin
nor end one. This is the report's own reading of a history (`engine.reporting.builder.spans`),
kept per stay once it has ended, so that the report groups rows instead of pairing every
state change with the next.

A stay is judged by the definition the case was on when the stay ended (a `migrated` event
after it names the version it left): its unit (the state's owner) and its deadline (none in
a paused state). A stay in a final state is not
kept (the report counts no time in one). Nothing here is personal: state keys, units and
instants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType
from engine.core.vocabulary import Action

DAY = 86400.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MOVE_ACTIONS = (Action.CREATED, Action.TRANSITION, Action.SUSPENDED, Action.RESUMED)
"""The events that begin, end, stop or restart a stay."""


class StayMove(NamedTuple):
    """One event of `MOVE_ACTIONS`, as a stay needs it."""

    seq: int
    at: dt.datetime
    action: str
    to_state: str | None


class EndedStay(NamedTuple):
    """One stay that ended: (its number in the case's history, from 1; state; begun; ended;
    the seq of the event that ended it; the times its clock stood still)."""

    number: int
    state: str
    begun: dt.datetime
    ended: dt.datetime
    end_seq: int
    stops: tuple[tuple[dt.datetime, dt.datetime], ...]


def ended(moves: Iterable[StayMove]) -> list[EndedStay]:
    """The stays of one case that ended, from its moves in seq order (the same stays, with the
    same bounds and stops, as `engine.reporting.builder.spans` reads)."""
    out: list[EndedStay] = []
    state: str | None = None
    since: dt.datetime | None = None
    stops: list[tuple[dt.datetime, dt.datetime]] = []
    stopped: dt.datetime | None = None
    number = 0
    for seq, at, action, to_state in moves:
        if action == Action.TRANSITION:
            if state is not None and since is not None:
                if stopped is not None:
                    stops.append((stopped, at))
                out.append(EndedStay(number, state, since, at, seq, tuple(stops)))
        elif action == Action.SUSPENDED:
            if stopped is None:
                stopped = at
            continue
        elif action == Action.RESUMED:
            if stopped is not None:
                stops.append((stopped, at))
                stopped = None
            continue
        elif action != Action.CREATED:
            continue
        number += 1
        state, since, stops, stopped = to_state, at, [], None
    return out


def versions(stays: Sequence[EndedStay], migrations: Sequence[tuple[int, int]], current: int) -> list[int]:
    """The definition version each stay ended under: the version the first migration after its
    end (`(seq, from_version)` of each `migrated` event, in seq order) moved the case from, or
    the case's version now."""
    out = []
    for stay in stays:
        later = next((version for seq, version in migrations if seq > stay.end_seq), None)
        out.append(current if later is None else later)
    return out


def micros(moment: dt.datetime) -> int:
    """An aware instant as µs since the epoch, exactly."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def stay_days(begun: dt.datetime, ended: dt.datetime) -> float:
    """The stay's length in days, as the report has always figured it (from the POSIX seconds
    of its bounds, never below nothing: a simulation clock can be set back)."""
    days = micros(ended) / 1_000_000 - micros(begun) / 1_000_000
    return days / DAY if days > 0 else 0.0


def stay_due(cal: WorkingCalendar, rt: RequestType, stay: EndedStay) -> dt.datetime | None:
    """The state deadline of the stay as it stood when the stay ended, moved by the times its
    clock stood still; None for a state without one (or a paused state)."""
    spec = rt.states[stay.state]
    deadline = None if spec.paused else spec.deadline
    if deadline is None:
        return None
    due = cal.due(stay.begun, deadline)
    for start, end in stay.stops:
        due = cal.shift(due, start, end, exact=deadline.unit == "hours")
    return due


def rows(case_id: int, type_key: str, version: int, rt: RequestType, cal: WorkingCalendar,
         stays: Sequence[EndedStay]) -> list[dict[str, Any]]:
    """The `case_stay` rows of these ended stays of one case on definition `rt`; a stay in a
    final state (or in a state the definition does not hold) has none."""
    out = []
    for stay in stays:
        spec = rt.states.get(stay.state)
        if spec is None or spec.final:
            continue
        due = stay_due(cal, rt, stay)
        out.append({
            "case_id": case_id, "stay": stay.number, "end_seq": stay.end_seq, "type_key": type_key,
            "type_version": version, "state": stay.state, "unit": spec.owner, "entered_at": stay.begun,
            "left_at": stay.ended, "days": stay_days(stay.begun, stay.ended),
            "stay_us": max(micros(stay.ended) - micros(stay.begun), 0), "due_at": due,
            "due_on": None if due is None else cal.local_date(due),
            "met": None if due is None else stay.ended <= due,
        })
    return out
