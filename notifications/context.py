"""The context of a notification email: every key a template may use, and samples of it.

The context is plain data, prepared by the engine down to the language-dependent words
(:mod:`notifications.wording`), so that templates only lay it out and an override template
cannot call back into the engine. Three families of templates exist: a firing's
(:class:`EmailContext`: reminder, escalation, timeout), an event's (:class:`ResidentContext`
for the resident who applied, :class:`StaffContext` for a unit or a person given a case) and
the digest (:class:`DigestContext`), which lists several firings for one reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from engine.core.vocabulary import MailKind
from engine.errors import InvalidValue
from notifications import samples
from notifications.wording import format_moment, rung_label

#: The kinds of a firing's email, each rendered alone or as part of a digest.
KINDS: Final = (MailKind.ESCALATION, MailKind.REMINDER, MailKind.TIMEOUT)
#: The kinds of an event's email to the resident who applied.
RESIDENT_KINDS: Final = (MailKind.RESIDENT_CREATED, MailKind.RESIDENT_EXTENDED, MailKind.RESIDENT_SUSPENDED,
                         MailKind.RESIDENT_RESUMED, MailKind.RESIDENT_CLOSED, MailKind.RESIDENT_UPDATE)
#: The kinds of an event's email to staff: a unit, a person given a case, a role.
STAFF_KINDS: Final = (MailKind.HANDED_OVER, MailKind.ASSIGNED, MailKind.CASE_UPDATE)
#: The template of several firings for one reader, sent as one email (not an outbox kind).
DIGEST: Final = "digest"
#: Every template kind: the names a template file may start with.
TEMPLATE_KINDS: Final[tuple[str, ...]] = (*KINDS, *RESIDENT_KINDS, *STAFF_KINDS, DIGEST)


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
    summary: list[list[str]]  # what the case is about: [label, value] of the type's summary fields
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


class ResidentContext(TypedDict):
    """An email to the resident who applied: plain words, no staff names, no internal keys.
    Every key is always given (``None`` where it does not apply), whatever the kind."""

    municipality: str
    ref: str
    type_title: str
    summary: list[list[str]]  # [label, value] of the type's summary fields
    state_label: str  # the state after the event (final for `resident_closed`)
    unit_name: str  # the unit that holds (or closed) the request: the resident's contact
    unit_email: str | None  # that unit's mailbox, when the organisation file gives one
    event: str  # the NoticeEvent: created, extended, suspended, resumed, closed, state, trigger, ...
    date: str  # the day it happened: "2 maart 2026"
    decision_date: str | None  # the day the decision is due after the event: "15 mei 2026"
    previous_date: str | None  # resident_extended: the decision day before the extension
    reason: str | None  # resident_extended, resident_suspended: the reason given
    outcome: str | None  # resident_closed: "toegekend", "afgewezen", ... or the final state's label


class StaffContext(TypedDict):
    """An email to a unit or a person about one event: what the case is about, who did what,
    until when. Every key is always given (``None`` where it does not apply)."""

    municipality: str
    recipient_name: str  # the person's or the unit's name
    ref: str
    type_title: str
    summary: list[list[str]]
    state_label: str
    unit_name: str  # the unit holding the case now
    from_unit_name: str | None  # handed_over: the unit it came from
    actor_name: str | None  # who did it, by name (None: the system)
    comment: str | None  # the comment given with the step
    event: str  # the NoticeEvent the rule listened for
    date: str  # when it happened, local time (format_moment)
    due: str | None  # the deadline in the case's state now (format_moment)
    decision_date: str | None  # the day the decision is due ("15 mei 2026")
    reason: str | None
    outcome: str | None  # closed: the outcome in words
    command: str  # the command that opens the case


class DigestFiring(TypedDict):
    """One firing in a digest: what a single reminder, escalation or timeout email says."""

    kind: str  # reminder, escalation or timeout
    state_label: str
    due: str
    days_overdue: int
    days_left: int | None  # reminders
    deadline_passed: bool | None  # reminders
    rung: int | str
    rung_label: str
    reader: str
    extendable: bool
    to_state_label: str | None  # timeouts
    to_unit_name: str | None  # timeouts


class DigestCase(TypedDict):
    """One case in a digest, with every firing about it."""

    ref: str
    type_title: str
    summary: list[list[str]]
    state_label: str  # as the latest firing found it
    unit_name: str
    assignee_name: str | None
    command: str
    events: list[EmailEvent]  # the last few events, oldest first
    firings: list[DigestFiring]


class DigestContext(TypedDict):
    """Several firings for one reader, found due by one delivery run: one email."""

    municipality: str
    recipient_name: str
    count: int  # how many cases
    escalations: int  # how many firings of each kind
    reminders: int
    timeouts: int
    cases: list[DigestCase]  # escalated and timed-out cases first, then by reference


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
    "summary",
)
RESIDENT_KEYS: Final = tuple(ResidentContext.__annotations__)
STAFF_KEYS: Final = tuple(StaffContext.__annotations__)
DIGEST_KEYS: Final = tuple(DigestContext.__annotations__)
DIGEST_CASE_KEYS: Final = tuple(DigestCase.__annotations__)
DIGEST_FIRING_KEYS: Final = tuple(DigestFiring.__annotations__)
#: The keys each kind requires (a key not listed for a kind may still be passed).
REQUIRED_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    MailKind.ESCALATION: (*_COMMON_KEYS, "rung", "rung_label"),
    MailKind.REMINDER: (*_COMMON_KEYS, "days_left", "deadline_passed"),
    MailKind.TIMEOUT: (*_COMMON_KEYS, "to_state_label", "to_unit_name"),
    **{kind: RESIDENT_KEYS for kind in RESIDENT_KINDS},
    **{kind: STAFF_KEYS for kind in STAFF_KINDS},
    DIGEST: DIGEST_KEYS,
}
EVENT_KEYS: Final = ("at", "actor", "action", "summary")


def sample_contexts(kind: str, language: str = "nl") -> list[Any]:
    """Example contexts for ``kind``, one for each variant a template must handle.

    For an event's kinds and the digest, see :mod:`notifications.samples`; for a firing's:

    The first has an assignee and history (and, for a reminder, time left); the second has
    neither (a reminder due today); then a reminder that fired after its deadline had passed,
    working days ago and since today; between them every ``reader`` of :data:`~notifications.wording.READERS` for
    each kind. Used by :meth:`~notifications.render.Renderer.check` to try override templates before real mail
    depends on them, and handy for previewing a template.
    """
    if kind not in REQUIRED_KEYS:
        raise InvalidValue(f"unknown email kind {kind!r}; known: {', '.join(TEMPLATE_KINDS)}")
    if kind in RESIDENT_KINDS:
        return samples.resident(kind, language)
    if kind in STAFF_KINDS:
        return samples.staff(kind, language)
    if kind == DIGEST:
        return samples.digest(language)
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
        "summary": [["Titel", "Straatfeest Lindelaan"], ["Buurt", "Lindenbuurt"]],
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
        "summary": [],
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
    # An administrator's instruction whose term ended (SPEC §12.1), to the unit's head.
    directive: EmailContext = {
        **base,
        "reader": "head",
        "days_overdue": 1,
        "rung": "directive",
        "rung_label": label("directive", "head"),
    }
    return [base, bare, late, late_today, late_by_a_day, *([directive] if escalation else [])]
