"""Bestuurlijke dekking: what each administrator did with the escalations that reached them.

Read from the events of the issue-12 contract (SPEC §12.1), case by case:

- an administrator *received an escalation* when an `escalated` event has `data.to` equal
  to their id; it counts in the period in which it fired;
- a *reaction* is the first `comment` or `directed` event on the same case after it, by the
  administrator or on their behalf (`actor` is the administrator, or `data.on_behalf_of` is);
  its speed is the working days that ended between the escalation and the reaction (as the
  report counts lead times);
- an *instruction* (`directed`) counts in the period it was given, for the administrator it
  was given by or for. It is *met* when the case leaves `data.state` or closes by
  `data.due`; *replaced* when a newer instruction came before that; *missed* when the sweep
  fired it (an `escalated` event with `data.rung == "directive"` after it), or when its term
  ended first though no sweep has run since; otherwise it is still *running*.

A database without any of these events gives every administrator zeros, and the section says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.core.organisation import Organisation
from engine.core.vocabulary import Action, Rung
from engine.reporting.figures import AdminEvent, AdminFigures, Filters, Move, Spread

_COMMENT, _DIRECTED, _ESCALATED = Action.COMMENT, Action.DIRECTED, Action.ESCALATED
_TRANSITION = Action.TRANSITION


def acting_for(org: Organisation) -> dict[str, str]:
    """Who may act for which administrator: each administrator for themself, and the
    assistants the organisation file names (`administrators[].assistants`, when present)."""
    out: dict[str, str] = {}
    for admin in org.administrators.values():
        for assistant in getattr(admin, "assistants", ()) or ():
            out.setdefault(str(assistant), admin.id)
    for admin_id in org.administrators:
        out[admin_id] = admin_id
    return out


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class _Admin:
    __slots__ = ("escalations", "given", "met", "missed", "reacted", "reactions", "replaced", "running")

    def __init__(self) -> None:
        self.escalations = self.reacted = self.given = self.met = self.missed = 0
        self.replaced = self.running = 0
        self.reactions: list[int] = []


class DekkingTally:
    def __init__(self, org: Organisation, filters: Filters,
                 working_days: Callable[[dt.datetime, dt.datetime], int], now: dt.datetime) -> None:
        self.org = org
        self.now = now
        self.filters = filters
        self.working_days = working_days
        self.admins = {admin_id: _Admin() for admin_id in org.administrators}
        self.acting = acting_for(org)

    def _admin_of(self, event: AdminEvent) -> str | None:
        """The administrator a comment or instruction counts for, or None."""
        data = event.data or {}
        behalf = data.get("on_behalf_of")
        if isinstance(behalf, str) and behalf in self.admins:
            return behalf
        return self.acting.get(event.actor)

    def add_case(self, events: Sequence[AdminEvent], moves: Sequence[Move],
                 closed_at: dt.datetime | None) -> None:
        within = self.filters.within
        reactions = [(e.seq, e.at, who) for e in events if e.action in (_COMMENT, _DIRECTED)
                     and (who := self._admin_of(e)) is not None]
        for e in events:
            if e.action != _ESCALATED:
                continue
            to = (e.data or {}).get("to")
            tally = self.admins.get(to) if isinstance(to, str) else None
            if tally is None or not within(e.at):
                continue
            tally.escalations += 1
            first = next((at for seq, at, who in reactions if seq > e.seq and who == to), None)
            if first is not None:
                tally.reacted += 1
                tally.reactions.append(self.working_days(e.at, first))
        given = [e for e in events if e.action == _DIRECTED]
        for i, e in enumerate(given):
            who = self._admin_of(e)
            if who is None or not within(e.at):
                continue
            tally = self.admins[who]
            tally.given += 1
            data = e.data or {}
            due = _moment(data.get("due"))
            newer = given[i + 1] if i + 1 < len(given) else None
            left = next((m.at for m in moves if m.action == _TRANSITION and m.from_state == data.get("state")
                         and m.at >= e.at), None)
            ended = min((t for t in (left, closed_at) if t is not None and t >= e.at), default=None)
            if ended is not None and due is not None and ended <= due and (newer is None or ended <= newer.at):
                tally.met += 1
            elif newer is not None and (ended is None or newer.at < ended):
                tally.replaced += 1
            elif any(x.action == _ESCALATED and x.seq > e.seq and (newer is None or x.seq < newer.seq)
                     and (x.data or {}).get("rung") == Rung.DIRECTIVE for x in events):
                tally.missed += 1
            elif due is not None and (ended > due if ended is not None else due < self.now):
                tally.missed += 1  # its term ended first; the next sweep escalates it
            else:
                tally.running += 1

    def finish(self) -> list[AdminFigures]:
        admins: Mapping[str, Any] = self.org.administrators
        return [
            AdminFigures(
                id=admin_id, name=admins[admin_id].name, escalations=t.escalations, reacted=t.reacted,
                reaction_working_days=Spread.of(t.reactions),
                slowest_reaction=max(t.reactions) if t.reactions else None,
                given=t.given, met=t.met, missed=t.missed, replaced=t.replaced, running=t.running,
            )
            for admin_id, t in self.admins.items()
        ]
