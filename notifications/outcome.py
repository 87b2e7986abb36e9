"""What a transport answers for each message, and what a transport is.

A transport opens a :class:`Session`, which takes one message at a time and answers a
:class:`DeliveryResult` for it, so that the outbox records each outcome the moment it is
known; a session never raises for a delivery problem. Whether a failure is *permanent*
decides whether the outbox retries: only a refusal that names this message (a 5xx for its
recipient or its content) is permanent; anything about the connection is temporary, since the
same message may well go through later. A result that did not *reach* the server (no
connection could be opened) says nothing about the message at all.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message. ``permanent`` only matters when ``ok`` is false.

    A message accepted for some recipients but refused for others is ``ok`` (retrying would
    duplicate it for the ones that got it), with the refusals in ``error``. ``reached`` is
    false when no connection could be opened for it: nothing of it left, and every later
    message would fare the same right now.
    """

    message_id: str
    ok: bool
    error: str | None = None
    permanent: bool = False
    reached: bool = True

    @classmethod
    def delivered(cls, message_id: str, note: str | None = None) -> DeliveryResult:
        return cls(message_id, ok=True, error=note)

    @classmethod
    def failed(cls, message_id: str, error: str, *, permanent: bool = False,
               reached: bool = True) -> DeliveryResult:
        return cls(message_id, ok=False, error=error, permanent=permanent, reached=reached)


class Session(Protocol):
    """An open way out (an SMTP connection, a folder): one message at a time."""

    def send(self, message: EmailMessage) -> DeliveryResult: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Opens sessions. ``stop``, when set, ends a session's exchange under way promptly."""

    def open(self, stop: threading.Event | None = None) -> Session: ...


def send_all(transport: Transport, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
    """Send a batch through one session: a result per message, in order.

    Once a message did not reach the server, the rest are not tried: they get its result.
    """
    results: list[DeliveryResult] = []
    if not messages:
        return results
    session = transport.open()
    try:
        for message in messages:
            result = session.send(message)
            results.append(result)
            if not result.reached:
                break
    finally:
        session.close()
    unreached = results[-1]
    results += [DeliveryResult.failed(id_of(m), unreached.error or "", reached=False)
                for m in messages[len(results):]]
    return results


def id_of(message: EmailMessage) -> str:
    return str(message.get("Message-ID", "")).strip()


