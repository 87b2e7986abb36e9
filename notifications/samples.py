"""Example contexts of an event's emails and of the digest, one for each variant a template
must handle: used to try override templates before real mail depends on them
(:meth:`~notifications.render.Renderer.check`), by the template tests, and handy for
previewing a template. The keys are those of :mod:`notifications.context`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.vocabulary import MailKind
from notifications.wording import format_day, format_moment, outcome_words, rung_label

ZONE = "Europe/Amsterdam"
SUMMARY = [["Titel", "Straatfeest Lindelaan"], ["Buurt", "Lindenbuurt"]]


def _at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo(ZONE))


def _day(month: int, day: int, language: str) -> str:
    return format_day(_at(month, day), timezone=ZONE, language=language)


def _moment(month: int, day: int, hour: int, minute: int, language: str) -> str:
    return format_moment(_at(month, day, hour, minute), timezone=ZONE, language=language)


def resident(kind: str, language: str) -> list[dict[str, Any]]:
    """A resident's email of ``kind``: the usual case, then one without a decision date or a
    unit mailbox (a type without a lead time), then one with every optional value empty."""
    base: dict[str, Any] = {
        "municipality": "Gemeente Voorbeeld",
        "ref": "BI-2026-00042",
        "type_title": "Bewonersinitiatief (wijkbudget)",
        "summary": SUMMARY,
        "state_label": "In beoordeling",
        "unit_name": "Wijkteam Noord",
        "unit_email": "wijkteam.noord@voorbeeld.nl",
        "event": _EVENTS.get(kind, "state"),
        "date": _day(3, 2, language),
        "decision_date": _day(4, 27, language),
        "previous_date": None,
        "reason": None,
        "outcome": None,
    }
    if kind == MailKind.RESIDENT_EXTENDED:
        base.update(decision_date=_day(5, 25, language), previous_date=_day(4, 27, language),
                    reason="Wij wachten op advies van de politie over de veiligheid.")
    elif kind == MailKind.RESIDENT_SUSPENDED:
        base.update(reason="Wij missen nog een tekening van de plek van het feest.")
    elif kind == MailKind.RESIDENT_CLOSED:
        base.update(state_label="Toegekend", outcome=outcome_words("granted", "Toegekend", language))
    bare = {**base, "unit_email": None, "decision_date": None, "summary": [], "state_label": "Ingediend"}
    if kind == MailKind.RESIDENT_CLOSED:
        bare.update(state_label="Afgehandeld", outcome=outcome_words(None, "Afgehandeld", language))
    if kind in (MailKind.RESIDENT_EXTENDED, MailKind.RESIDENT_SUSPENDED):
        bare.update(reason=None, previous_date=None)
    return [base, bare]


_EVENTS: dict[str, str] = {
    MailKind.RESIDENT_CREATED: "created",
    MailKind.RESIDENT_EXTENDED: "extended",
    MailKind.RESIDENT_SUSPENDED: "suspended",
    MailKind.RESIDENT_RESUMED: "resumed",
    MailKind.RESIDENT_CLOSED: "closed",
    MailKind.HANDED_OVER: "handed_over",
    MailKind.ASSIGNED: "assigned",
}


def staff(kind: str, language: str) -> list[dict[str, Any]]:
    """A staff email of ``kind``: a person's step with a comment and deadlines, then one the
    system made (a timeout), without comment, deadline or summary, then each event a
    `case_update` may be about."""
    base: dict[str, Any] = {
        "municipality": "Gemeente Voorbeeld",
        "recipient_name": "Woningcorporatie Lindestede",
        "ref": "BI-2026-00042",
        "type_title": "Bewonersinitiatief (wijkbudget)",
        "summary": SUMMARY,
        "state_label": "Advies woningcorporatie",
        "unit_name": "Woningcorporatie Lindestede",
        "from_unit_name": "Wijkteam Noord" if kind == MailKind.HANDED_OVER else None,
        "actor_name": "Chris de Vries",
        "comment": "Graag advies over het gebruik van het binnenterrein.",
        "event": _EVENTS.get(kind, "state"),
        "date": _moment(3, 4, 14, 30, language),
        "due": _moment(3, 13, 23, 59, language),
        "decision_date": _day(4, 27, language),
        "reason": None,
        "outcome": None,
        "command": "loket case show BI-2026-00042",
    }
    if kind == MailKind.ASSIGNED:
        base.update(recipient_name="Dirk Kok", unit_name="Wijkteam Noord", state_label="In beoordeling")
    bare = {**base, "actor_name": None, "comment": None, "due": None, "decision_date": None, "summary": []}
    variants = [base, bare]
    if kind == MailKind.CASE_UPDATE:
        variants += [
            {**base, "event": "trigger"},
            {**base, "event": "created", "actor_name": "Anna Jansen", "comment": None},
            {**base, "event": "suspended", "reason": "Wachten op de vergunning"},
            {**base, "event": "resumed"},
            {**base, "event": "extended", "reason": "Advies politie nodig"},
            {**bare, "event": "closed", "state_label": "Afgewezen", "unit_name": "",
             "outcome": outcome_words("rejected", "Afgewezen", language)},
            {**base, "event": "handed_over", "from_unit_name": "Wijkteam Noord"},
            {**base, "event": "assigned"},
        ]
    return variants


def digest(language: str) -> list[dict[str, Any]]:
    """A digest of an escalation, a reminder (in time and late) and a timeout over three
    cases, one with two firings; then the same for an administrator, with nothing optional."""

    def label(rung: int | str, to: str) -> str:
        return rung_label(rung, of=None if isinstance(rung, str) else 4, to=to, language=language)

    firing: dict[str, Any] = {
        "kind": "escalation", "state_label": "In beoordeling", "due": _moment(3, 13, 23, 59, language),
        "days_overdue": 3, "days_left": None, "deadline_passed": None, "rung": 2,
        "rung_label": label(2, "lead"), "reader": "lead", "extendable": True,
        "to_state_label": None, "to_unit_name": None,
    }
    reminder = {**firing, "kind": "reminder", "days_overdue": 0, "days_left": 2, "deadline_passed": False,
                "rung": 1, "rung_label": label(1, "lead"), "due": _moment(3, 18, 23, 59, language)}
    late = {**reminder, "days_overdue": 2, "days_left": 0, "deadline_passed": True}
    timeout = {**firing, "kind": "timeout", "state_label": "Aanvulling gevraagd", "rung": "timeout",
               "rung_label": label("timeout", "lead"), "to_state_label": "In beoordeling",
               "to_unit_name": "Wijkteam Noord", "extendable": False}
    event = {"at": _moment(3, 4, 14, 30, language), "actor": "Chris de Vries", "action": "transition",
             "summary": "Ingediend → In beoordeling"}
    case: dict[str, Any] = {
        "ref": "BI-2026-00042", "type_title": "Bewonersinitiatief (wijkbudget)", "summary": SUMMARY,
        "state_label": "In beoordeling", "unit_name": "Wijkteam Noord", "assignee_name": "Chris de Vries",
        "command": "loket case show BI-2026-00042", "events": [event], "firings": [firing, late],
    }
    other = {**case, "ref": "ME-2026-00007", "type_title": "Melding openbare ruimte",
             "summary": [["Omschrijving", "Lantaarnpaal kapot"]], "assignee_name": None, "events": [],
             "command": "loket case show ME-2026-00007", "firings": [timeout]}
    third = {**case, "ref": "BI-2026-00043", "command": "loket case show BI-2026-00043", "firings": [reminder]}
    base: dict[str, Any] = {
        "municipality": "Gemeente Voorbeeld", "recipient_name": "Bram Bakker", "count": 3,
        "escalations": 1, "reminders": 2, "timeouts": 1, "cases": [case, other, third],
    }
    plain = {**firing, "reader": "administrator", "rung": "lead_time", "extendable": False,
             "rung_label": label("lead_time", "administrator"), "days_overdue": 0}
    bare = {**base, "recipient_name": "Wethouder Wijken", "count": 2, "escalations": 2, "reminders": 0,
            "timeouts": 0, "cases": [{**other, "summary": [], "firings": [plain]},
                                     {**case, "events": [], "firings": [{**plain, "reader": "person"}]}]}
    return [base, bare]
