"""How a deadline stands now: its term counted from the moment its clock started, then every
suspension's shift and every extension, in the order the history holds them.

`case show --explain` prints the steps; `workflow migrate` takes the dates under the new
version's terms. Both count here, so a migrated case's explanation ends on the very dates the
migration stored.

A case may have moved between versions of its request type (`migrated` events): whether a
state stopped the clock is read in the version the case was on when it entered it, and an
extension counts on from where it counted under the term it was given under — only while
that term is still the case's (`extensions`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.calendar import WorkingCalendar
from engine.core.casework import extension_base
from engine.core.definition import RequestType
from engine.core.durations import Duration
from engine.core.vocabulary import Action

Types = Callable[[int], RequestType]
"""A version of the case's request type, by number."""


@dataclass(frozen=True)
class Pause:
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


@dataclass(frozen=True)
class Derived:
    due: dt.datetime
    steps: list[str]
    """Empty unless asked for (`derive(..., explain=True)`)."""


def first_version(events: Iterable[Mapping[str, Any]], current: int) -> int:
    """The version a case was made with: the one its first migration left, or the one it is on."""
    for e in events:
        if e["action"] == Action.MIGRATED:
            return int((e["data"] or {})["from_version"])
    return current


def versions_along(
    events: Sequence[Mapping[str, Any]], current: int, types: Types
) -> list[RequestType]:
    """For each event, the version of the request type the case was on once it was written."""
    rt = types(first_version(events, current))
    out = []
    for e in events:
        if e["action"] == Action.MIGRATED:
            rt = types(int((e["data"] or {})["to_version"]))
        out.append(rt)
    return out


def pauses(events: Sequence[Mapping[str, Any]], along: Sequence[RequestType]) -> list[Pause]:
    """Every period the clocks stood still, in the order they began; `along` as
    `versions_along` gives it."""
    out: list[Pause] = []
    since: tuple[dt.datetime, str, bool] | None = None
    for e, rt in zip(events, along, strict=True):
        action = e["action"]
        paused_state = (action in (Action.CREATED, Action.TRANSITION) and e["to_state"] in rt.states
                        and rt.states[e["to_state"]].paused)
        if since is None and (action == Action.SUSPENDED or paused_state):
            manual = action == Action.SUSPENDED
            why = ("suspended: " + str((e["data"] or {}).get("reason", "")) if manual
                   else f"state '{e['to_state']}' pauses the clock")
            since = (e["at"], why, manual)
        elif since is not None and (action == Action.RESUMED
                                    or (action == Action.TRANSITION and not paused_state)):
            out.append(Pause(since[0], e["at"], since[1], since[2], e["seq"]))
            since = None
    if since is not None:
        out.append(Pause(since[0], None, since[1], since[2], math.inf))
    return out


def extensions(
    events: Sequence[Mapping[str, Any]], along: Sequence[RequestType], current: RequestType
) -> list[dict[str, Any]]:
    """The `extended` events, as the legal term under `current` replays them. An extension
    given under another lead time keeps its length but not the day it was counted from
    (`counted_from`): that day belonged to the other term."""
    out = []
    for e, rt in zip(events, along, strict=True):
        if e["action"] != Action.EXTENDED:
            continue
        data = dict(e["data"] or {})
        if rt.lead_time != current.lead_time:
            data.pop("counted_from", None)
        out.append({**e, "data": data})
    return out


def derive(
    cal: WorkingCalendar,
    start: dt.datetime,
    duration: Duration,
    pauses: Iterable[Pause],
    extensions: Iterable[Mapping[str, Any]] = (),
    *,
    explain: bool = False,
) -> Derived:
    """The deadline of a term `duration` whose clock started at `start`, moved by every pause
    that began since and ended, and by every extension, in the order the service applied
    them; with the steps an auditor can recompute by hand when `explain`."""
    exact = duration.unit == "hours"
    if explain:
        derivation = cal.deadline(start, duration)
        due, steps = derivation.due, list(derivation.steps)
    else:
        due, steps = cal.due(start, duration), []
    # A suspension's shift when it ended, an extension when it was given. Event numbers, not
    # times, because both may share an instant.
    changes: list[tuple[float, Pause | Mapping[str, Any]]] = [(p.seq, p) for p in pauses if p.began >= start]
    changes += [(e["seq"], e) for e in extensions]
    last_extension: Mapping[str, Any] | None = None
    for _seq, item in sorted(changes, key=lambda c: c[0]):
        if isinstance(item, Pause):
            if item.ended is None:
                if explain:
                    steps.append(f"the clock stands still since {cal.moment(item.began)} ({item.why}); on"
                                 " resumption this deadline moves later by the days it stood still")
                continue
            if explain:
                shifted = cal.explain_shift(due, item.began, item.ended, exact=exact)
                steps.append(item.why)
                steps += shifted.steps
                due = shifted.due
            else:
                due = cal.shift(due, item.began, item.ended, exact=exact)
            continue
        data = item["data"] or {}
        by = Duration(str(data.get("unit")), int(data.get("amount", 0)))
        if data.get("counted_from"):
            base = dt.datetime.fromisoformat(str(data["counted_from"]))
        else:  # recorded before extensions said where they counted from, or under another term
            base = extension_base(due, last_extension, by)
        if explain:
            extended = cal.deadline(base, by)
            counted = ("counted from the deadline's day" if base == due else
                       f"counted on from {cal.local_date(base).isoformat()}, the day the term ran to"
                       " before the Atw moved it")
            steps.append(f"extended by {by} on {cal.moment(item['at'])} by {item['actor']}"
                         f" ({data.get('reason', '')}), {counted}:")
            steps += extended.steps
            due = extended.due
        else:
            due = cal.due(base, by)
        last_extension = data
    return Derived(due, steps)
