"""The notice a firing sends: who is told, and the facts of the firing as they stood then.

A firing's email is delivered later (by a worker, perhaps after the mail server was down for
days), but what it tells is fixed the moment it fires: the case's state, owner and assignee,
the deadline, who the rung reached. Those facts are a :class:`FiringFacts`, stored as JSON
in the outbox row's ``context`` and read back at delivery, where only what changes with time
(the recent events, the days left or overdue) is added. Rows outlive the code that wrote
them, so :meth:`FiringFacts.from_json` accepts what older versions did not yet record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case
from engine.core.definition import RequestType
from engine.core.history import timestamp
from engine.core.ladder import Firing, resolve
from engine.core.organisation import Organisation
from engine.core.vocabulary import FiringKind, MailKind
from engine.errors import InvalidValue


@dataclass(frozen=True, kw_only=True)
class FiringFacts:
    """What an email about one firing tells, fixed when it fired; the fields in the order of
    the stored JSON.

    A field that may be ``None`` is either nullable (written as ``null``: ``assignee_name``,
    ``due_at``, ``ladder_size``) or recorded only where it applies or since some version
    (left out of the JSON when ``None``).
    """

    municipality: str
    recipient_name: str
    ref: str
    type_title: str
    state_label: str
    """The state the case was in when the rung fired (for a timeout: the state it left)."""
    unit_name: str
    assignee_name: str | None
    due_at: str | None
    """The deadline the email names, as a chain timestamp: the state's for a ladder rung or a
    timeout, the breached clock's own for a breach."""
    command: str
    case_id: int
    event_seq: int | None = None
    """The number of the `escalated` (or timeout's) event that made the row; the email shows
    the history up to it. Rows from before it was recorded show the latest events."""
    rung: int | str
    ladder_size: int | None = None
    """How many rungs the state's ladder has, for a place on it; ``None`` for a breach."""
    asked: str | None = None
    """Whom the definition asked for, before vacancies moved the rung up."""
    resolved: str | None = None
    """The role (or person id) the rung reached after vacancies."""
    extendable: bool | None = None
    """The case has a decision term a lead may extend; not recorded by early versions."""
    days_overdue: int | None = None
    """Working days past the deadline when it fired (whenever there is a deadline)."""
    days_left: int | None = None
    """Working days left before the deadline when it fired (reminders)."""
    deadline_passed: bool | None = None
    """The deadline had passed when the reminder fired (a late sweep); reminders since it was
    recorded."""
    to_state_label: str | None = None
    """The state a timeout moved the case to."""
    to_unit_name: str | None = None
    """The unit owning that state."""
    summary: list[list[str]] | None = None
    """What the case is about: ``[label, value]`` of the type's `summary` fields (never a
    personal field), as they stood when it fired; not recorded by early versions."""

    def to_json(self) -> dict[str, Any]:
        """The stored form: every field, except those not recorded (``None`` and not nullable)."""
        # The instance's own dict holds the fields in their declared order (no slots).
        return {name: value for name, value in self.__dict__.items() if value is not None or name in _NULLABLE}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FiringFacts:
        """The facts of a stored row, also one written before a field was recorded.

        A row without the facts every version wrote is no row the sweep made: it is refused
        as :class:`InvalidValue`, the fault of that row alone.
        """
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise InvalidValue(f"the stored facts of the firing lack {', '.join(missing)}")
        return cls(**{name: data[name] for name in _FIELDS if name in data})


_FIELDS = tuple(f.name for f in fields(FiringFacts))
_NULLABLE = frozenset({"assignee_name", "due_at", "ladder_size"})
_REQUIRED = ("municipality", "recipient_name", "ref", "type_title", "state_label", "unit_name",
             "assignee_name", "command", "case_id", "rung")


@dataclass(frozen=True, kw_only=True)
class EventFacts:
    """What an email about one event of a case tells (a hand-over, an assignment, an
    acknowledgement to the resident, ...), fixed when the event was written; stored as JSON in
    the outbox row's ``context`` like :class:`FiringFacts`.

    Messages to residents never name a civil servant nor show internal keys: for them
    ``actor_name`` and ``comment`` are ``None``, and the unit (with its mailbox) is the contact.
    """

    municipality: str
    ref: str
    case_id: int
    event_seq: int
    """The number of the event that made the row (the email may show the history up to it)."""
    event: str
    """The :class:`~engine.core.vocabulary.NoticeEvent` the rule matched."""
    audience: str
    """``"resident"`` or ``"staff"``: decides the wording, and what may be shown."""
    recipient_name: str | None = None
    """The person's or unit's name for staff; ``None`` for a resident (their name may be personal)."""
    type_title: str
    summary: list[list[str]]
    """``[label, value]`` of the type's `summary` fields (never personal ones)."""
    state_label: str
    """The state the case is in after the event."""
    unit_name: str
    """The unit holding the case after the event ("" once closed: then the unit that closed it)."""
    unit_email: str | None = None
    """That unit's mailbox, when the organisation file gives one: the resident's contact."""
    from_unit_name: str | None = None
    """For a hand-over: the unit the case came from."""
    actor_name: str | None = None
    """Staff only: who did it, by name (``None`` for the system or for residents)."""
    comment: str | None = None
    """Staff only: the comment given with the step."""
    reason: str | None = None
    """For an extension or suspension: the reason given (told to the resident, Awb 4:14)."""
    decision_due: str | None = None
    """The decision date (the case's lead-time deadline) after the event, as a chain timestamp."""
    previous_due: str | None = None
    """For an extension: the decision date before it."""
    state_due: str | None = None
    """The deadline in the state the case is in now (staff messages)."""
    outcome: str | None = None
    """For `closed`: the final state's outcome word (granted, rejected, withdrawn, done), if any."""
    command: str | None = None
    """Staff only: the command that opens the case."""

    def to_json(self) -> dict[str, Any]:
        """The stored form: every field that has a value (``summary`` always)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventFacts:
        missing = [name for name in _EVENT_REQUIRED if name not in data]
        if missing:
            raise InvalidValue(f"the stored facts of the event lack {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


_EVENT_REQUIRED = ("municipality", "ref", "case_id", "event_seq", "event", "audience", "type_title",
                   "summary", "state_label", "unit_name")


@dataclass(frozen=True)
class Notice:
    """The email a firing asks for: to whom, in which language, and what it tells.

    ``key`` (``REF/stay/rung``) is unique per firing, so a firing never makes two messages and
    the Message-ID derived from it stays the same when the message is sent again.
    """

    key: str
    case_id: int
    kind: MailKind
    language: str
    recipient: str
    to_email: str
    to_name: str
    subject: str
    """A short subject for listings; the delivered message carries its rendered template's."""
    facts: FiringFacts | EventFacts


def notice_of(
    rt: RequestType,
    org: Organisation,
    cal: WorkingCalendar,
    case: Case,
    new: Case,
    firing: Firing,
    seq: int,
    now: dt.datetime,
) -> Notice | None:
    """The notice of a firing of ``case`` (``new``: the case after it) fired at ``now`` as
    event ``seq``; ``None`` when nobody can be told.

    A timeout is told to whoever the case's new state makes responsible (its assignee, or up
    the ladder of vacancies from there), since they must act on it now.
    """
    shared = firing_notice(rt, org, cal, case, new, firing, now)
    return None if shared is None else shared.notice(rt, case, seq)


def firing_notice(
    rt: RequestType,
    org: Organisation,
    cal: WorkingCalendar,
    case: Case,
    new: Case,
    firing: Firing,
    now: dt.datetime,
) -> FiringNotice | None:
    """What :func:`notice_of` tells of this firing apart from the case's reference, id,
    summary and the number of its event: the same for every case in the same state, with the
    same deadlines, owner and assignee (the sweep makes it once for all of them)."""
    timeout = firing.kind == FiringKind.TIMEOUT
    recipient_id = resolve(org, rt, new, "assignee", new.owner) if timeout else firing.recipient
    who = org.recipient(recipient_id) if recipient_id else None
    if who is None or recipient_id is None:
        return None
    state = rt.states[case.state]
    assignee = org.people.get(case.assignee) if case.assignee else None
    # A ladder rung and a timeout are about the state's deadline (the one the email names); a
    # breach is about its own clock.
    due = case.state_due if firing.place is not None or timeout else firing.due_at
    days_left: int | None = None
    deadline_passed: bool | None = None
    if firing.kind == FiringKind.REMINDER and due is not None:
        # A reminder is meant to come before the deadline, but a sweep that did not run for a
        # while fires it afterwards: it is still sent (nothing else tells the assignee), and
        # says that the deadline has passed instead of that it ends today.
        days_left, deadline_passed = cal.working_days_between(now, due), due <= now
    facts = FiringFacts(
        municipality=org.municipality,
        recipient_name=who.name,
        ref="",  # the case's own, and those below: FiringNotice.notice
        type_title=rt.title,
        state_label=state.label,
        unit_name=unit_name(org, case.owner),
        assignee_name=assignee.name if assignee else None,
        due_at=timestamp(due),
        command="",
        case_id=0,
        event_seq=0,
        rung=firing.json_rung(),
        ladder_size=len(rt.ladder(case.state)) if firing.place is not None else None,
        asked=firing.asked,
        # A timeout's recipient was looked up in the state the case went to.
        resolved=role_of(org, new if timeout else case, recipient_id),
        # Only a type with a decision term and a maximum extension can be extended (`case extend`).
        extendable=case.case_due is not None and rt.max_extension is not None,
        days_overdue=cal.working_days_between(due, now) if due is not None else None,
        days_left=days_left,
        deadline_passed=deadline_passed,
        to_state_label=rt.states[new.state].label if timeout else None,
        to_unit_name=unit_name(org, new.owner) if timeout else None,
        summary=[],
    )
    return FiringNotice(
        key_tail=f"/{firing.stay}/{firing.rung}" + (f"/{recipient_id}" if firing.also else ""),
        kind=_MAIL_KIND[firing.kind],
        language=org.language,
        recipient=recipient_id,
        to_email=who.email,
        to_name=who.name,
        subject_around=subject_around(org.language, _MAIL_KIND[firing.kind], rt.title, state.label),
        facts=facts,
    )


@dataclass(frozen=True)
class FiringNotice:
    """A firing's notice with the case left out (see :func:`firing_notice`)."""

    key_tail: str
    """The key after the case's reference (``/stay/rung``, and ``/recipient`` for a copy)."""
    kind: MailKind
    language: str
    recipient: str
    to_email: str
    to_name: str
    subject_around: tuple[str, str]
    """The subject before and after the case's reference."""
    facts: FiringFacts
    """The facts, the case's own left empty."""

    def notice(self, rt: RequestType, case: Case, seq: int) -> Notice:
        """The notice of this firing of ``case`` as its event ``seq``."""
        facts = replace(self.facts, ref=case.ref, command=command_for(case.ref), case_id=case.id, event_seq=seq,
                        summary=summary_of(rt, case.data, self.language))
        return Notice(key=case.ref + self.key_tail, case_id=case.id, kind=self.kind, language=self.language,
                      recipient=self.recipient, to_email=self.to_email, to_name=self.to_name,
                      subject=self.subject(case.ref), facts=facts)

    def subject(self, ref: str) -> str:
        head, tail = self.subject_around
        return head + one_line(ref) + tail


def command_for(ref: str) -> str:
    """The command that shows a case, as a firing's email gives it."""
    return f"loket case show {ref}"


#: The mail kind of each kind of firing (the enum's lookup by value, made once).
_MAIL_KIND: Final[Mapping[str, MailKind]] = {kind.value: MailKind(kind.value) for kind in FiringKind}


def unit_name(org: Organisation, unit: str | None) -> str:
    """The name of a unit, or nothing for none (or one the organisation no longer has)."""
    found = org.units.get(unit) if unit else None
    return found.name if found else ""


def role_of(org: Organisation, case: Case, person: str) -> str:
    """Which role the recipient was reached in, after vacancies moved the rung up."""
    if person == case.assignee:
        return "assignee"
    for role in ("lead", "head"):
        if case.owner and any(p.id == person for p in org.holders(case.owner, role)):
            return role
    if person in org.administrators:
        return "administrator"
    return person


def summary_of(rt: RequestType, data: Mapping[str, Any], language: str) -> list[list[str]]:
    """``[label, value]`` of the type's summary fields that hold a value: what the case is
    about (the definition refuses a personal field there)."""
    out = []
    for name in rt.summary:
        value = data.get(name)
        if value is None or value == "":
            continue
        spec = rt.fields[name]
        if isinstance(value, bool):
            value = _YES_NO[language][value]
        out.append([spec.label or name, str(value)])
    return out


_YES_NO = {"nl": {True: "ja", False: "nee"}, "en": {True: "yes", False: "no"}}

_SUBJECTS: Mapping[str, Mapping[MailKind, str]] = {
    "nl": {MailKind.REMINDER: "Herinnering", MailKind.ESCALATION: "Escalatie",
           MailKind.TIMEOUT: "Termijn verlopen",
           MailKind.RESIDENT_CREATED: "Ontvangstbevestiging", MailKind.RESIDENT_EXTENDED: "Beslistermijn verlengd",
           MailKind.RESIDENT_SUSPENDED: "Behandeling opgeschort", MailKind.RESIDENT_RESUMED: "Behandeling hervat",
           MailKind.RESIDENT_CLOSED: "Afgehandeld", MailKind.RESIDENT_UPDATE: "Bericht over uw aanvraag",
           MailKind.HANDED_OVER: "Overgedragen", MailKind.ASSIGNED: "Toegewezen",
           MailKind.CASE_UPDATE: "Bijgewerkt"},
    "en": {MailKind.REMINDER: "Reminder", MailKind.ESCALATION: "Escalation", MailKind.TIMEOUT: "Term expired",
           MailKind.RESIDENT_CREATED: "Acknowledgement", MailKind.RESIDENT_EXTENDED: "Decision date extended",
           MailKind.RESIDENT_SUSPENDED: "Handling suspended", MailKind.RESIDENT_RESUMED: "Handling resumed",
           MailKind.RESIDENT_CLOSED: "Completed", MailKind.RESIDENT_UPDATE: "News about your request",
           MailKind.HANDED_OVER: "Handed over", MailKind.ASSIGNED: "Assigned", MailKind.CASE_UPDATE: "Updated"},
}
# Line and paragraph separators, and every control character: none may reach a mail header.
_BREAKS = {code: " " for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def subject(language: str, kind: MailKind, ref: str, title: str, state: str | None) -> str:
    """A short subject for listings; the delivered message carries the rendered template's.

    Built from the reference and the definition's own words (title, state label) only, never
    from field values or comments; a residents' subject names no state at all. Whatever the
    definition let through, it stays one line: a header can never be split from here.
    """
    head, tail = subject_around(language, kind, title, state)
    return head + one_line(ref) + tail


def subject_around(language: str, kind: MailKind, title: str, state: str | None) -> tuple[str, str]:
    """What :func:`subject` puts before and after the reference (the same for every case of a
    type and state)."""
    word = _SUBJECTS.get(language, _SUBJECTS["nl"])[kind]
    return one_line(f"{word} "), one_line(f": {title}" + (f" — {state}" if state else ""))


def one_line(text: str) -> str:
    """The text with every line break and control character made a space."""
    return text.translate(_BREAKS) if _BREAK.search(text) else text
