"""The product's named words: event actions, rung kinds, firing kinds, mail kinds, outbox states.

Each is a `StrEnum`, so a member *is* its string: it is stored, hashed into the chain and
written to JSON exactly as the bare word was before, and comparing a stored value with a
member needs no conversion. New code names the member; the spellings are part of the
contract (SPEC §8, §10) and never change.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What an event records (the `action` of a history line)."""

    CREATED = "created"
    TRANSITION = "transition"
    ASSIGNED = "assigned"
    COMMENT = "comment"
    DATA_CHANGED = "data_changed"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    EXTENDED = "extended"
    ESCALATED = "escalated"
    REDACTED = "redacted"
    DIRECTED = "directed"
    """A bestuurlijke opdracht (SPEC §12.1): data ``{text, within, due, state, replaces}``."""


class Rung(StrEnum):
    """The rungs that are not a place on a ladder (those are "1", "2", ...)."""

    SERVICE_NORM = "service_norm"
    LEAD_TIME = "lead_time"
    TIMEOUT = "timeout"
    DIRECTIVE = "directive"
    """An administrator's instruction whose term ended before the case left its state."""


class FiringKind(StrEnum):
    """What a firing is: a `before` rung, an escalation (after a deadline), or a timeout."""

    REMINDER = "reminder"
    ESCALATION = "escalation"
    TIMEOUT = "timeout"


class MailKind(StrEnum):
    """What an outbox row tells, and so how it is rendered: a firing's template, or (for
    `delivery_failed`, the operators' summary of mail that could not be delivered) text of
    its own."""

    REMINDER = "reminder"
    ESCALATION = "escalation"
    TIMEOUT = "timeout"
    DELIVERY_FAILED = "delivery_failed"
    SEAL = "seal"
    """A new seal's digest, to the auditors, to keep outside the database (SPEC §13.4)."""
    # To the resident who applied (the type's `contact` field): plain Dutch (B1) or English.
    RESIDENT_CREATED = "resident_created"
    """Ontvangstbevestiging (Awb 4:3a): the reference and, with a lead time, the decision date."""
    RESIDENT_EXTENDED = "resident_extended"
    """Verdaging (Awb 4:14): the new decision date and the reason."""
    RESIDENT_SUSPENDED = "resident_suspended"
    """Opschorting: what is awaited, and that the decision date moves."""
    RESIDENT_RESUMED = "resident_resumed"
    """The clock runs again: the decision date as it now stands."""
    RESIDENT_CLOSED = "resident_closed"
    """The request is decided (or otherwise ended): the outcome."""
    RESIDENT_UPDATE = "resident_update"
    """Any other rule addressed to the resident (`{state: S}`, `{trigger: T}`, ...)."""
    # To staff and administrators: what the case is about and what is asked of the reader.
    HANDED_OVER = "handed_over"
    """The case now lies with the reader's unit: from whom, with what comment, until when."""
    ASSIGNED = "assigned"
    """Someone else gave the reader a case."""
    CASE_UPDATE = "case_update"
    """Any other rule addressed to staff (`{state: S}`, `{trigger: T}`, `closed`, ...)."""


class NoticeEvent(StrEnum):
    """What a notification rule (`notify: [{on: ...}]`) listens for."""

    CREATED = "created"
    HANDED_OVER = "handed_over"
    ASSIGNED = "assigned"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    EXTENDED = "extended"
    CLOSED = "closed"
    STATE = "state"
    """`{state: S}`: the case entered state S."""
    TRIGGER = "trigger"
    """`{trigger: T}`: step T was taken."""


class OutboxStatus(StrEnum):
    """Where a message is on its way out."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
