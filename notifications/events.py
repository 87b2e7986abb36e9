"""The template context of an outbox row about an event of a case: an acknowledgement, an
extension, a decision for the resident who applied; a hand-over or an assignment for staff.

What such a message tells was fixed when the event was written (an
:class:`~engine.core.notices.EventFacts` in the row's ``context``); only the words are made
here, in the row's language. A resident's context is built from a short list of facts and
never carries a civil servant's name, a comment meant for colleagues or a command, whatever
the stored facts hold: the template cannot show what it is not given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.core.notices import EventFacts
from engine.core.organisation import Organisation
from engine.core.vocabulary import NoticeEvent
from engine.errors import InvalidValue
from notifications.context import RESIDENT_KINDS, STAFF_KINDS
from notifications.wording import format_day, format_moment, outcome_words, parse_moment


def event_context(org: Organisation, row: Mapping[str, Any]) -> dict[str, Any]:
    """The context of an event's row, by its kind: a resident's or a staff member's.

    A row whose stored facts are not an event's, or whose kind has no event template, is
    :class:`~engine.errors.InvalidValue`: the fault of that row alone.
    """
    kind, language = row["kind"], row["language"]
    if kind not in RESIDENT_KINDS and kind not in STAFF_KINDS:
        raise InvalidValue(f"outbox row of kind {kind!r} has no email template")
    facts = _facts(row["context"])
    tz = org.timezone
    made = row["created_at"]

    def day(text: str | None) -> str | None:
        moment = parse_moment(text)
        return format_day(moment, timezone=tz, language=language) if moment else None

    closed = facts.event == NoticeEvent.CLOSED or facts.outcome is not None
    common: dict[str, Any] = {
        "municipality": facts.municipality,
        "ref": facts.ref,
        "type_title": facts.type_title,
        "summary": plain_summary(facts.summary),
        "state_label": facts.state_label,
        # A closed case has no unit any more; the municipality answers for it.
        "unit_name": facts.unit_name or facts.municipality,
        "event": facts.event,
        "decision_date": day(facts.decision_due),
        "reason": facts.reason or None,
        "outcome": outcome_words(facts.outcome, facts.state_label, language) if closed else None,
    }
    if kind in RESIDENT_KINDS:
        return {
            **common,
            "unit_email": facts.unit_email or None,
            "date": format_day(made, timezone=tz, language=language),
            "previous_date": day(facts.previous_due),
        }
    due = parse_moment(facts.state_due)
    return {
        **common,
        "recipient_name": facts.recipient_name or row.get("to_name") or row["recipient"],
        "from_unit_name": facts.from_unit_name or None,
        "actor_name": facts.actor_name or None,
        "comment": facts.comment or None,
        "date": format_moment(made, timezone=tz, language=language),
        "due": format_moment(due, timezone=tz, language=language) if due else None,
        "command": facts.command or f"loket case show {facts.ref}",
    }


def _facts(stored: Mapping[str, Any]) -> EventFacts:
    """The stored facts of an event (a resident's row names nobody: ``recipient_name`` is left
    out). Facts that make no :class:`EventFacts` are
    :class:`~engine.errors.InvalidValue`, the fault of the row alone."""
    try:
        return EventFacts.from_json(stored)
    except TypeError as exc:
        raise InvalidValue(f"the stored facts of the event are not an event's: {exc}") from None


def plain_summary(summary: Any) -> list[list[str]]:
    """Stored ``[label, value]`` pairs as text, leaving out what has no value (a field left
    empty); none for a row from before summaries were recorded."""
    if summary is None:
        return []
    if not isinstance(summary, list):
        raise InvalidValue("the stored summary of the case is not a list")
    pairs = []
    for pair in summary:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidValue("the stored summary of the case holds something other than [label, value]")
        if pair[1] not in (None, ""):
            pairs.append([str(pair[0]), str(pair[1])])
    return pairs
