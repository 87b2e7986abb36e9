"""Turning a rendered email into a MIME message ready for any transport.

The Message-ID is derived from the outbox key, not drawn at random: when a delivery is retried
after a lost reply (the server may have accepted the message before the connection dropped),
the second copy carries the same Message-ID, so mail clients and the directory transport
recognise it as the same message.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime

from engine.errors import InvalidValue
from notifications.render import RenderedEmail

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")


class _Registry(HeaderRegistry):
    """The standard header classes, each made once.

    The standard registry builds a new class for every header it is asked for (every
    ``message[name] = value``); that was the largest single cost of rendering an email.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


#: The default policy (RFC 5322 headers, ``\n`` line ends until sent) with that registry.
POLICY = email_policy.default.clone(header_factory=_Registry())


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID of the outbox row with ``key``: ``<wijkloket.{sha256 hex}@{domain}>``.

    Deterministic, so a retried message is recognisable; hashed, so the key (which names a
    case) does not show in the header.
    """
    if not _DOMAIN.fullmatch(domain):
        raise InvalidValue(f"message id domain {domain!r} is not a domain name")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"<wijkloket.{digest}@{domain}>"


def build_message(
    rendered: RenderedEmail,
    *,
    sender: str,
    to: str,
    to_name: str | None,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """A ``multipart/alternative`` message: plain text first, HTML as the richer part.

    ``sender`` is the configured From (``noreply@gemeente.example`` or
    ``Gemeente Voorbeeld <noreply@gemeente.example>``); ``date`` must be timezone-aware.
    A header value with a line break (an injection attempt) raises :class:`InvalidValue`.
    """
    if date.tzinfo is None:
        raise InvalidValue("the Date of an email needs a timezone-aware datetime")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidValue(f"{message_id!r} is not a Message-ID of the form <left@right>")
    message = EmailMessage(policy=POLICY)
    try:
        message["Subject"] = rendered.subject
        message["From"] = sender
        message["To"] = Address(display_name=to_name or "", addr_spec=to)
        message["Date"] = format_datetime(date)
        message["Message-ID"] = message_id
        # RFC 3834: tells auto-responders (out-of-office replies) not to answer.
        message["Auto-Submitted"] = "auto-generated"
        _check_addresses(message)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidValue(f"cannot build email to {to!r}: {exc}") from exc
    # Quoted-printable keeps every line 7-bit: any relay accepts it, with or without 8BITMIME.
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def _check_addresses(message: EmailMessage) -> None:
    """Parsing is lenient: a From or To that is not exactly one address is refused here."""
    for header in ("From", "To"):
        addresses = message[header].addresses
        if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
            raise ValueError(f"{header} must be exactly one address, got {message[header]!r}")
