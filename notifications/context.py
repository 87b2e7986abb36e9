"""The context of a notification email: every key a template may use, and samples of it.

The context is plain data (:class:`EmailContext`), prepared by the engine down to the
language-dependent words (:mod:`notifications.wording`), so that templates only lay it out and
an override template cannot call back into the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from engine.core.vocabulary import MailKind
from engine.errors import InvalidValue
from notifications.wording import format_moment, rung_label

KINDS: Final = (MailKind.ESCALATION, MailKind.REMINDER, MailKind.TIMEOUT)


class EmailEvent(TypedDict):
    """One line of a case's recent history, preformatted for reading."""

    at: str  # local date and time, already formatted
    actor: str  # a person's name, or "system"
    action: str  # the event's action code ("transition", "comment", ...); templates translate it
    summary: str  # one line: "ingediend → beoordeling", the comment, ... ("" when none)


class EmailContext(TypedDict):
    """Everything a notification template may use; the one place these keys are defined.

    Every value is plain data (str, int, None, lists and dicts of those): the sandbox stops
    method tricks on plain data, and nothing here can call back into the engine.
    """

    # -- every kind ------------------------------------------------------------------------
    municipality: str  # "Gemeente Voorbeeld"
    recipient_name: str  # who the email is addressed to
    ref: str  # case reference, "BI-2026-00042"
    type_title: str  # request type title
    state_label: str  # label of the case's current state (for `timeout`: the state it left)
    unit_name: str  # name of the unit owning that state
    assignee_name: str | None  # who holds the case; None when nobody does
    due: str  # the deadline this email is about, local time, preformatted (format_moment)
    events: list[EmailEvent]  # the last few events, oldest first
    command: str  # the command that opens the case: "loket case show BI-2026-00042"
    reader: str  # in which role the email reached its reader, after vacancies: one of READERS
    days_overdue: int  # whole working days past `due` (0: passed since today, or a reminder's
    #                    deadline still to come; `deadline_passed` tells which)
    # -- escalation ------------------------------------------------------------------------
    rung: NotRequired[int | str]  # 1-based place on the ladder, "service_norm" or "lead_time"
    rung_label: NotRequired[str]  # what that means, in the email's language (rung_label())
    extendable: NotRequired[bool]  # the case has a decision term a lead may extend (default true)
    # -- reminder --------------------------------------------------------------------------
    days_left: NotRequired[int]  # whole working days left before `due` (0 once it passed)
    deadline_passed: NotRequired[bool]  # the sweep ran late: `due` had passed when it fired
    # -- timeout ---------------------------------------------------------------------------
    to_state_label: NotRequired[str]  # the state the system moved the case to
    to_unit_name: NotRequired[str]  # the unit owning that state


_COMMON_KEYS: Final = (
    "municipality",
    "recipient_name",
    "ref",
    "type_title",
    "state_label",
    "unit_name",
    "assignee_name",
    "due",
    "events",
    "command",
    "reader",
    "days_overdue",
)
#: The keys each kind requires (a key not listed for a kind may still be passed).
REQUIRED_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    MailKind.ESCALATION: (*_COMMON_KEYS, "rung", "rung_label"),
    MailKind.REMINDER: (*_COMMON_KEYS, "days_left", "deadline_passed"),
    MailKind.TIMEOUT: (*_COMMON_KEYS, "to_state_label", "to_unit_name"),
}
EVENT_KEYS: Final = ("at", "actor", "action", "summary")


def sample_contexts(kind: str, language: str = "nl") -> list[EmailContext]:
    """Example contexts for ``kind``, one for each variant a template must handle.

    The first has an assignee and history (and, for a reminder, time left); the second has
    neither (a reminder due today); then a reminder that fired after its deadline had passed,
    working days ago and since today; between them every ``reader`` of :data:`~notifications.wording.READERS` for
    each kind. Used by :meth:`~notifications.render.Renderer.check` to try override templates before real mail
    depends on them, and handy for previewing a template.
    """
    if kind not in REQUIRED_KEYS:
        raise InvalidValue(f"unknown email kind {kind!r}; known: {', '.join(KINDS)}")
    zone = "Europe/Amsterdam"
    escalation = kind == MailKind.ESCALATION

    def moment(day: int, hour: int, minute: int) -> str:
        local = datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(zone))
        return format_moment(local, timezone=zone, language=language)

    def label(rung: int | str, to: str) -> str:
        return rung_label(rung, of=None if isinstance(rung, str) else 4, to=to, language=language)

    base: EmailContext = {
        "municipality": "Gemeente Voorbeeld",
        "recipient_name": "Bram Bakker",
        "ref": "BI-2026-00042",
        "type_title": "Bewonersinitiatief (wijkbudget)",
        "state_label": "Bijdrage openbare ruimte",
        "unit_name": "Openbare Ruimte",
        "assignee_name": "Chris de Vries",
        "due": moment(13, 23, 59),
        "events": [
            {
                "at": moment(2, 9, 12),
                "actor": "Anna Jansen",
                "action": "created",
                "summary": "Straatfeest Lindelaan",
            },
            {
                "at": moment(4, 14, 30),
                "actor": "Chris de Vries",
                "action": "transition",
                "summary": "In beoordeling → Bijdrage openbare ruimte",
            },
        ],
        "command": "loket case show BI-2026-00042",
        "reader": "lead" if escalation else "assignee",
        "days_overdue": 0 if kind == MailKind.REMINDER else 3,
        "rung": 2,
        "rung_label": label(2, "lead"),
        "days_left": 2,
        "deadline_passed": False,
        "to_state_label": "In beoordeling",
        "to_unit_name": "Wijkteam Noord",
    }
    bare: EmailContext = {
        **base,
        "assignee_name": None,
        "events": [],
        "reader": "administrator" if escalation else "lead",
        "days_overdue": 0,
        "rung": "lead_time",
        "rung_label": label("lead_time", "administrator"),
        "days_left": 0,
    }
    # A sweep that ran late: the reminder's deadline had passed when it fired.
    late: EmailContext = {
        **base,
        "reader": "head",
        "days_overdue": 36,
        "rung": 3,
        "rung_label": label(3, "head"),
        "days_left": 0,
        "deadline_passed": True,
    }
    late_today: EmailContext = {
        **late,
        "extendable": False,  # a type without a decision term: nobody is told to extend it
        "assignee_name": None,
        "reader": "person",
        "days_overdue": 0,
        "rung": 1,
        "rung_label": label(1, "Noor Genoemd"),
    }
    late_by_a_day: EmailContext = {
        **late,
        "reader": "assignee" if escalation else "administrator",
        "days_overdue": 1,
        "rung": 1,
        "rung_label": label(1, "assignee" if escalation else "administrator"),
    }
    return [base, bare, late, late_today, late_by_a_day]
