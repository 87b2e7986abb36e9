"""The template context of an outbox row: the facts fixed when its rung fired, and what is
read at delivery (the case's recent history, the days left or overdue by then).

A firing's row holds a :class:`~engine.core.notices.FiringFacts`; rows written by older
versions lack some of them, and the context is made up the way those versions meant it. An
event's row holds an :class:`~engine.core.notices.EventFacts`, made into its context by
:mod:`notifications.events`; :func:`row_context` picks the one a row's kind needs.

The recent history reads as the reader knows the case: people by name, states by label,
a step as the states it went between (a trigger's name is the definition's, not the reader's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from engine.core.casework import SYSTEM
from engine.core.notices import FiringFacts
from engine.core.views import event_detail
from engine.core.vocabulary import Action, MailKind
from engine.store import outbox as store
from notifications.context import KINDS
from notifications.events import event_context, plain_summary
from notifications.wording import format_moment, reader_of, rung_label

if TYPE_CHECKING:
    from engine.app.service import Loket
    from engine.core.organisation import Organisation

EVENTS_SHOWN = 5
#: What an email tells of an event (:func:`email_context`, :func:`event_line`): not its
#: chain's hashes, digests or salts, which would only be decoded to be dropped.
EVENT_COLUMNS = ("case_id", "seq", "at", "actor", "action", "from_state", "to_state", "trigger", "comment", "data")


def recent_events(loket: Loket, rows: Sequence[Mapping[str, Any]],
                  count: int = EVENTS_SHOWN) -> list[list[dict[str, Any]]]:
    """For each row, the last ``count`` events of its case up to the event that made the row
    (``event_seq`` in its context; without one, up to now), oldest first.

    One query for all the rows: reading them row by row cost more than rendering the emails.
    """
    windows = [(row["case_id"], row["context"].get("event_seq")) for row in rows if row["case_id"] is not None]
    by_case: dict[int, list[dict[str, Any]]] = {}
    if windows:
        with loket.read() as conn:
            by_case = store.event_windows(conn, windows, count, EVENT_COLUMNS)
    result = []
    for row in rows:
        events = by_case.get(row["case_id"], [])
        upto = row["context"].get("event_seq")
        if upto is not None:
            events = [event for event in events if event["seq"] <= upto]
        result.append(events[-count:])
    return result


TypeFacts = tuple[dict[str, str], frozenset[str]]
"""The state labels and the personal fields of a request type version, for event summaries."""


def type_facts(loket: Loket, rows: Sequence[Mapping[str, Any]]) -> list[TypeFacts]:
    """For each row, the facts of its case's request type: one query for all the rows, one
    lookup per type version (asking row by row cost a query per email)."""
    ids = {row["case_id"] for row in rows if row["case_id"] is not None}
    versions: dict[int, tuple[str, int]] = {}
    if ids:
        with loket.read() as conn:
            versions = store.case_types(conn, ids)
    known: dict[tuple[str, int], TypeFacts] = {}
    out: list[TypeFacts] = []
    for row in rows:
        version = versions.get(row["case_id"])
        if version is None:
            out.append(({}, frozenset()))
            continue
        if version not in known:
            rt = loket.request_type(*version)
            known[version] = ({name: state.label for name, state in rt.states.items()}, rt.personal_fields())
        out.append(known[version])
    return out


def row_context(loket: Loket, row: Mapping[str, Any], events: Sequence[dict[str, Any]] | None = None,
                facts: TypeFacts | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The template context of any outbox row with a template: a firing's
    (:func:`email_context`) or an event's (:func:`~notifications.events.event_context`)."""
    if row["kind"] in KINDS:
        return email_context(loket, row, events, facts, now)
    return event_context(loket.organisation(), row)


def email_context(loket: Loket, row: Mapping[str, Any],
                  events: Sequence[dict[str, Any]] | None = None,
                  facts: TypeFacts | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The template context of an outbox row: its stored facts plus what is read at delivery.

    ``events`` and ``facts`` are the row's :func:`recent_events` and :func:`type_facts` when
    the caller read them for a whole batch. With ``now``, the moment of delivery, the days
    left or overdue are counted again then: a message delivered late (a mail server that was
    down for days, `outbox retry`) must not say a deadline is still ahead when it has passed.
    A row whose stored facts are not a firing's is :class:`~engine.errors.InvalidValue`.
    """
    fired = FiringFacts.from_json(row["context"])
    kind, language = row["kind"], row["language"]
    org = loket.organisation()
    tz = org.timezone
    due = dt.datetime.fromisoformat(fired.due_at.replace("Z", "+00:00")) if fired.due_at else None
    context: dict[str, Any] = {
        "municipality": fired.municipality, "recipient_name": fired.recipient_name, "ref": fired.ref,
        "type_title": fired.type_title, "state_label": fired.state_label, "unit_name": fired.unit_name,
        "assignee_name": fired.assignee_name, "command": fired.command, "rung": fired.rung,
        "summary": plain_summary(fired.summary),
    }
    for key in ("extendable", "days_overdue", "days_left", "deadline_passed", "to_state_label", "to_unit_name"):
        if getattr(fired, key) is not None:
            context[key] = getattr(fired, key)
    context["due"] = format_moment(due, timezone=tz, language=language) if due else "-"
    resolved = fired.resolved or fired.asked or ""
    context["reader"] = reader_of(resolved)
    if kind == MailKind.REMINDER and fired.deadline_passed is None:
        # A row the sweep wrote before reminders recorded this: its deadline had passed if
        # the row was made (the moment the rung fired) after it.
        made = row.get("created_at")
        context["deadline_passed"], context["days_overdue"] = False, 0
        if due is not None and made is not None and due <= made:
            context["deadline_passed"] = True
            context["days_overdue"] = loket.calendar().working_days_between(due, made)
    if now is not None and due is not None and now > (row.get("created_at") or now):
        cal = loket.calendar()
        if "days_overdue" in context:
            context["days_overdue"] = cal.working_days_between(due, now)
        if kind == MailKind.REMINDER:
            context["days_left"] = cal.working_days_between(now, due)
            context["deadline_passed"] = due <= now
            context["days_overdue"] = cal.working_days_between(due, now)
    if kind == MailKind.ESCALATION:
        context["extendable"] = True if fired.extendable is None else fired.extendable
    # Every firing's rung in words: the escalation email shows it, and so does a digest line.
    context["rung_label"] = rung_label(fired.rung, of=fired.ladder_size, to=resolved, language=language)
    labels, personal = type_facts(loket, [row])[0] if facts is None else facts
    context["events"] = [
        {"at": format_moment(e["at"], timezone=tz, language=language),
         "actor": _name_of(org, e["actor"], language), "action": e["action"],
         "summary": event_line(e, org, labels=labels, hide=personal, language=language)}
        for e in (recent_events(loket, [row])[0] if events is None else events)
    ]
    return context


def event_line(event: Mapping[str, Any], org: Organisation, *, labels: Mapping[str, str],
               hide: frozenset[str], language: str) -> str:
    """One event in an email's history: :func:`~engine.core.views.event_detail`, with the ids
    of people made names and a step shown as the states it went between."""
    action = event["action"]
    data = dict(event.get("data") or {})
    if action == Action.TRANSITION:
        source, target = event["from_state"], event["to_state"]
        text = f"{labels.get(source, source)} → {labels.get(target, target)}"
        return f"{text} — {event['comment']}" if event.get("comment") else text
    if action == Action.ESCALATED:
        rung = str(data.get("rung", ""))
        who = _name_of(org, str(data.get("to", "")))
        if rung.isdigit():
            text = rung_label(int(rung), of=None, to=who, language=language)
        elif rung in ("service_norm", "lead_time", "timeout", "directive"):
            text = f"{rung_label(rung, of=None, to=who, language=language)} → {who}"
        else:
            text = f"{rung} → {who}"
        return f"{text} — {event['comment']}" if event.get("comment") else text
    if action == Action.ASSIGNED:
        for key in ("assignee", "released"):
            if data.get(key):
                data[key] = _name_of(org, str(data[key]))
    return event_detail({**event, "data": data}, labels=labels, hide=hide, language=language)


#: How an email names what the engine did by itself (a sweep's escalation, a timeout).
AUTOMATIC: Final = {"nl": "Wijkloket (automatisch)", "en": "Wijkloket (automatic)"}


def _name_of(org: Organisation, actor: str, language: str | None = None) -> str:
    """The reader knows colleagues by name, not by login id; what the engine did itself is
    named as such (in the email's language), and people no longer in the organisation keep
    their id."""
    if actor == SYSTEM and language is not None:
        return AUTOMATIC.get(language, AUTOMATIC["nl"])
    who = org.recipient(actor)
    return who.name if who is not None else actor
