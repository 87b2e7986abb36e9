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


class Rung(StrEnum):
    """The rungs that are not a place on a ladder (those are "1", "2", ...)."""

    SERVICE_NORM = "service_norm"
    LEAD_TIME = "lead_time"
    TIMEOUT = "timeout"


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


class OutboxStatus(StrEnum):
    """Where a message is on its way out."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
