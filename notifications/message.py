"""Turning a rendered email into a MIME message ready for any transport.

The Message-ID is derived from the outbox key, not drawn at random: when a delivery is retried
after a lost reply (the server may have accepted the message before the connection dropped),
the second copy carries the same Message-ID, so mail clients and the directory transport
recognise it as the same message.

A message also says, in headers of its own, which case it is about and for whom
(:class:`Label`): the directory transport names its file after them, and a mail filter may
sort by them. They hold safe characters only, and never a resident's address.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email import quoprimime
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


#: The headers of a :class:`Label`, in the order of a file name.
LABEL_HEADERS = ("X-Loket-Queued", "X-Loket-Ref", "X-Loket-Kind", "X-Loket-Recipient")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_token(text: str, width: int = 64) -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_``, ``+``
    and ``-`` made one ``_``, cut to ``width``: fit for a header and a file name alike."""
    return _UNSAFE.sub("_", text)[:width].strip("._") or "_"


@dataclass(frozen=True)
class Label:
    """What a message is about, for whoever files it: the day it was queued (in the
    organisation's time), the case reference (a digest's: the first, ``+N`` more), the kind
    (``digest`` for a digest) and the recipient (a person's or unit's id; ``requester`` for
    the resident who applied, whose address must not show in a file name)."""

    queued: dt.date
    ref: str
    kind: str
    recipient: str

    def headers(self) -> tuple[tuple[str, str], ...]:
        values = (self.queued.isoformat(), self.ref, self.kind, self.recipient)
        return tuple(zip(LABEL_HEADERS, (safe_token(value) for value in values), strict=True))


def is_domain(text: str) -> bool:
    """Whether ``text`` is a domain name (``voorbeeld.nl``): letters, digits and hyphens in dotted labels."""
    return bool(_DOMAIN.fullmatch(text))


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID of the outbox row with ``key``: ``<wijkloket.{sha256 hex}@{domain}>``.

    Deterministic, so a retried message is recognisable; hashed, so the key (which names a
    case) does not show in the header.
    """
    if not is_domain(domain):
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
    label: Label | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message: plain text first, HTML as the richer part.

    ``sender`` is the configured From (``noreply@gemeente.example`` or
    ``Gemeente Voorbeeld <noreply@gemeente.example>``); ``date`` must be timezone-aware.
    A header value with a line break (an injection attempt) raises :class:`InvalidValue`,
    and so does a header that would carry one once read back; text that looks like an
    encoded word (``=?utf-8?q?…?=``) is defused first (:func:`defused`).
    """
    if date.tzinfo is None:
        raise InvalidValue("the Date of an email needs a timezone-aware datetime")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidValue(f"{message_id!r} is not a Message-ID of the form <left@right>")
    message = EmailMessage(policy=POLICY)
    try:
        message["Subject"] = defused(rendered.subject)
        message.set_raw("From", _header("From", sender))
        message["To"] = Address(display_name=defused(to_name or ""), addr_spec=to)
        message.set_raw("Date", _header("Date", format_datetime(date)))
        message["Message-ID"] = message_id
        # RFC 3834: tells auto-responders (out-of-office replies) not to answer.
        message.set_raw("Auto-Submitted", _header("Auto-Submitted", "auto-generated"))
        for name, value in label.headers() if label is not None else ():
            message.set_raw(name, _header(name, value))
        _check_addresses(message)
        _check_lines(message)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidValue(f"cannot build email to {to!r}: {exc}") from exc
    message.set_raw("MIME-Version", _MIME_VERSION)
    message.set_raw("Content-Type", POLICY.header_factory(
        "Content-Type", f'multipart/alternative; boundary="{_boundary(message_id)}"'))
    message.attach(_text_part(rendered.text, _PLAIN))
    message.attach(_text_part(rendered.html, _HTML))
    return message


# The parts are put together by hand: ``set_content`` and ``add_alternative`` parse the same
# few Content-* headers afresh for every message, and that was most of the cost of building one
# (bench/bench_email.py). Header objects are immutable, so these are made once and shared.
_MIME_VERSION = POLICY.header_factory("MIME-Version", "1.0")
_PLAIN = POLICY.header_factory("Content-Type", 'text/plain; charset="utf-8"')
_HTML = POLICY.header_factory("Content-Type", 'text/html; charset="utf-8"')
_WIDTH = POLICY.max_line_length or 78
_QUOTED_PRINTABLE = POLICY.header_factory("Content-Transfer-Encoding", "quoted-printable")


@functools.lru_cache(maxsize=1024)
def _header(name: str, value: str) -> BaseHeader:
    """The header ``name: value`` as the policy parses it, made once for a value that recurs
    (the configured From, the day, the label's tokens): parsing was most of what was left of
    the cost of a message. A value holding a line break is refused as ``message[name] = value``
    refuses it (``str.splitlines`` counts ``\\x85`` and ``\\u2028`` as breaks too)."""
    if len(value.splitlines()) > 1:
        raise ValueError(f"the {name} header may not contain a line break")
    return POLICY.header_factory(name, value)


def _text_part(text: str, content_type: BaseHeader) -> EmailMessage:
    """A utf-8 text part, quoted-printable, as ``set_content(text, cte="quoted-printable")``
    makes it: lines split at ``\\r``, ``\\n`` or ``\\r\\n``, joined by ``\\n``, one ``\\n`` at the
    end. Quoted-printable keeps every line 7-bit: any relay accepts it, with or without 8BITMIME."""
    body = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    part = EmailMessage(policy=POLICY)
    part.set_raw("Content-Type", content_type)
    part.set_raw("Content-Transfer-Encoding", _QUOTED_PRINTABLE)
    part.set_payload(quoprimime.body_encode(body.decode("latin-1"), _WIDTH))
    return part


def _boundary(message_id: str) -> str:
    """The multipart boundary of the message with ``message_id``: deterministic, like the
    Message-ID itself. It starts with ``=_``, which quoted-printable never writes (``=`` is
    always followed by two hex digits or a line end), so no line of an encoded part can match it."""
    return "=_wijkloket_" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]


def defused(text: str) -> str:
    """``text`` with every ``=?`` made ``= ?``, so that nothing in it reads as an RFC 2047
    encoded word.

    The standard library decodes encoded words in a header value it is *given*, as if the value
    came off the wire: a subject holding ``=?utf-8?q?=0D=0ABcc:_x?=`` would become a line break
    and a ``Bcc`` header when written out (Python before 3.11.10 writes it unchecked). What a
    resident or an official typed is text, never encoding.
    """
    return text.replace("=?", "= ?")


def _check_lines(message: EmailMessage) -> None:
    """No header may hold a line break once parsed: whatever slipped past :func:`defused`
    (a sender from the configuration, say) is refused rather than written."""
    for name, value in message.items():
        if "\r" in str(value) or "\n" in str(value):
            raise ValueError(f"the {name} header would break a line")


def _check_addresses(message: EmailMessage) -> None:
    """Parsing is lenient: a From or To that is not exactly one address is refused here."""
    for header in ("From", "To"):
        addresses = message[header].addresses
        if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
            raise ValueError(f"{header} must be exactly one address, got {message[header]!r}")
