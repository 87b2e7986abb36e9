"""Who hears of a change to a case, and what they are told: the notices of SPEC §11.1 as a
pure function of the change.

The service calls :func:`announce` with every change it writes, and writes the notices as
outbox rows in the same transaction as the events: a change and its mail are stored together
or not at all. Each notice's key is its event and its recipient (``REF/eSEQ/RECIPIENT``), so
whatever retries or races a change goes through, its mail is queued once.

Recipients are looked up at the moment of the change: a role nobody holds (a vacancy) or a
resident who left no address reaches nobody, and nothing fails. Nobody is told of their own
action; the resident never acts in the engine, so always hears.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from engine.core.casework import Case, Draft
from engine.core.definition import RequestType
from engine.core.history import timestamp
from engine.core.notices import EventFacts, Notice, subject, summary_of, unit_name
from engine.core.notify_rules import REQUESTER, Listening
from engine.core.organisation import Organisation
from engine.core.vocabulary import Action, MailKind, NoticeEvent

E = NoticeEvent
RESIDENT, STAFF = "resident", "staff"

# When one event matches several rules for one recipient, they get one message: the first
# of these kinds that applies. A resident hears first what the law asks to be told; staff
# first that the case is now theirs.
_RESIDENT_ORDER = (E.CREATED, E.CLOSED, E.EXTENDED, E.SUSPENDED, E.RESUMED, E.HANDED_OVER, E.ASSIGNED,
                   E.STATE, E.TRIGGER)
_STAFF_ORDER = (E.CREATED, E.HANDED_OVER, E.ASSIGNED, E.CLOSED, E.EXTENDED, E.SUSPENDED, E.RESUMED,
                E.STATE, E.TRIGGER)
_RESIDENT_KINDS = {E.CREATED: MailKind.RESIDENT_CREATED, E.EXTENDED: MailKind.RESIDENT_EXTENDED,
                   E.SUSPENDED: MailKind.RESIDENT_SUSPENDED, E.RESUMED: MailKind.RESIDENT_RESUMED,
                   E.CLOSED: MailKind.RESIDENT_CLOSED}
_STAFF_KINDS = {E.HANDED_OVER: MailKind.HANDED_OVER, E.ASSIGNED: MailKind.ASSIGNED}


class Recipient(NamedTuple):
    key: str
    """``requester``, a person's id, or ``unit:UNIT`` for a unit's mailbox: no personal data."""
    email: str
    name: str
    """The person's or unit's name; empty for the resident (their name may be personal)."""

    @property
    def audience(self) -> str:
        return RESIDENT if self.key == REQUESTER else STAFF


def announce(
    rt: RequestType, org: Organisation, new: Case, events: Sequence[tuple[int, Draft]], actor: str,
) -> list[Notice]:
    """The notices of a change by ``actor`` that left the case as ``new``; ``events`` are its
    drafts with the numbers they were given in the case's history.

    Everything a notice tells is in the drafts and the case after the change: the dates are
    the case's own as the change left them (its `case_due` is the decision date, counted by
    the calendar when the change was planned), so no clock or calendar is asked again here.
    """
    listeners = rt.notify.listeners
    out: list[Notice] = [notice for seq, draft in events if draft.action == Action.DIRECTED
                         for notice in _instruction(rt, org, new, seq, draft, actor)]
    if not listeners:
        return out
    for seq, draft in events:
        chosen: dict[str, tuple[int, NoticeEvent, Recipient]] = {}
        for event, target in _happened(rt, draft, actor):
            for role in listeners.get((event, target), ()):
                for who in _resolve(rt, org, new, draft, role):
                    if who.key == actor:
                        continue
                    order = _RESIDENT_ORDER if who.audience == RESIDENT else _STAFF_ORDER
                    rank = order.index(event)
                    if who.key not in chosen or rank < chosen[who.key][0]:
                        chosen[who.key] = (rank, event, who)
        for _, event, who in chosen.values():
            out.append(_notice(rt, org, new, seq, draft, event, who, actor))
    return out


def _instruction(rt: RequestType, org: Organisation, new: Case, seq: int, draft: Draft, actor: str) -> list[Notice]:
    """An administrator's instruction is told to whoever must carry it out, whatever the
    type's rules say: the unit holding the case (its mailbox, else its leads) and the
    assignee. Their message shows the instruction as its comment and its term as the due."""
    chosen: dict[str, Recipient] = {}
    for role in ("unit", "assignee"):
        for who in _resolve(rt, org, new, draft, role):
            if who.key != actor:
                chosen.setdefault(who.key, who)
    return [_notice(rt, org, new, seq, draft, E.DIRECTED, who, actor) for who in chosen.values()]


def _acting_name(org: Organisation, name: str, data: dict[str, object]) -> str:
    """Who acted, by name; an assistant as acting for their administrator (SPEC §12.1)."""
    admin = org.administrators.get(str(data.get("on_behalf_of") or ""))
    return f"{name} ({'namens' if org.language == 'nl' else 'for'} {admin.name})" if admin else name


def _happened(rt: RequestType, draft: Draft, actor: str) -> Iterator[Listening]:
    """The events of SPEC §11.1 one history event is: a step may hand the case over, enter a
    state, stop or restart its clock and close it at once."""
    action = draft.action
    if action in (Action.CREATED, Action.TRANSITION):
        dest = rt.states.get(draft.to_state or "")
        if action == Action.CREATED:
            yield E.CREATED, None
        else:
            yield E.TRIGGER, draft.trigger
            source = rt.states.get(draft.from_state or "")
            if dest is not None and source is not None:
                if dest.final:
                    yield E.CLOSED, None
                elif dest.owner != source.owner:
                    yield E.HANDED_OVER, None
                if dest.paused and not source.paused:
                    yield E.SUSPENDED, None
                elif source.paused and not dest.paused and not dest.final:
                    yield E.RESUMED, None
        if dest is not None:
            yield E.STATE, dest.name
    elif action == Action.ASSIGNED:
        assignee = (draft.data or {}).get("assignee")
        if assignee and assignee != actor:
            yield E.ASSIGNED, None
    elif action == Action.SUSPENDED:
        yield E.SUSPENDED, None
    elif action == Action.RESUMED:
        yield E.RESUMED, None
    elif action == Action.EXTENDED:
        yield E.EXTENDED, None


def _unit_after(rt: RequestType, new: Case, draft: Draft) -> str | None:
    """The unit holding the case after the event; once closed, the unit that closed it."""
    dest = rt.states.get(draft.to_state or "")
    if dest is not None:
        if not dest.final:
            return dest.owner
        source = rt.states.get(draft.from_state or "")
        return source.owner if source is not None else None
    return new.owner


def _resolve(rt: RequestType, org: Organisation, new: Case, draft: Draft, role: str) -> list[Recipient]:
    """Whom ``role`` reaches now; nobody when it is vacant or the resident left no address."""
    if role == REQUESTER:
        address = new.data.get(rt.contact) if rt.contact else None
        return [Recipient(REQUESTER, str(address), "")] if address else []
    if role == "assignee":
        assignee = (draft.data or {}).get("assignee") if draft.action == Action.ASSIGNED else new.assignee
        person = org.people.get(assignee) if assignee else None
        return [Recipient(person.id, person.email, person.name)] if person else []
    if role == "administrator":
        admin = org.administrator_for(rt.portfolio) if rt.portfolio else None
        return [Recipient(admin.id, admin.email, admin.name)] if admin else []
    if role in ("unit", "lead", "head"):
        unit = _unit_after(rt, new, draft)
        if unit is None or unit not in org.units:
            return []
        if role == "unit":
            found = org.units[unit]
            if found.email:
                return [Recipient(f"unit:{unit}", found.email, found.name)]
            holders = org.holders(unit, "lead") or org.holders(unit, "head")
        else:
            holders = org.holders(unit, role)
        return [Recipient(p.id, p.email, p.name) for p in holders]
    who = org.recipient(role)
    return [Recipient(who.id, who.email, who.name)] if who else []


def _notice(
    rt: RequestType, org: Organisation, new: Case, seq: int, draft: Draft, event: NoticeEvent, who: Recipient,
    actor: str,
) -> Notice:
    resident = who.audience == RESIDENT
    state = rt.states.get(draft.to_state or "") or rt.states[new.state]
    unit = _unit_after(rt, new, draft)
    data = draft.data or {}
    reason: str | None = None
    comment = draft.comment
    state_due = None if resident or state.name != new.state else timestamp(new.state_due)
    if event == E.DIRECTED:
        comment, state_due = str(data.get("text") or ""), timestamp(new.directive_due)
    if event in (E.EXTENDED, E.SUSPENDED):
        # A suspension by `case suspend` gives its reason; a step into a paused state (asking
        # the resident for more) gives it as the step's comment: what the resident must send.
        reason = data.get("reason") or draft.comment
    source = rt.states.get(draft.from_state or "")
    person = org.recipient(actor)
    facts = EventFacts(
        municipality=org.municipality,
        ref=new.ref,
        case_id=new.id,
        event_seq=seq,
        event=event,
        audience=who.audience,
        recipient_name=None if resident else who.name,
        type_title=rt.title,
        summary=summary_of(rt, new.data, org.language),
        state_label=state.label,
        unit_name=unit_name(org, unit),
        unit_email=org.units[unit].email if unit is not None and unit in org.units else None,
        from_unit_name=unit_name(org, source.owner) if event == E.HANDED_OVER and source else None,
        actor_name=None if resident or person is None else _acting_name(org, person.name, data),
        comment=None if resident else comment,
        reason=reason,
        decision_due=timestamp(new.case_due),
        previous_due=data.get("from") if event == E.EXTENDED else None,
        state_due=state_due,
        command=None if resident else f"loket case show {new.ref}",
        outcome=state.outcome if event == E.CLOSED else None,
    )
    kind = (_RESIDENT_KINDS.get(event, MailKind.RESIDENT_UPDATE) if resident
            else _STAFF_KINDS.get(event, MailKind.CASE_UPDATE))
    return Notice(
        key=f"{new.ref}/e{seq}/{who.key}",
        case_id=new.id,
        kind=kind,
        language=org.language,
        recipient=who.key,
        to_email=who.email,
        to_name=who.name,
        subject=subject(org.language, kind, new.ref, rt.title, None if resident else state.label),
        facts=facts,
    )
