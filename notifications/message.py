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
import itertools
import re
from dataclasses import dataclass
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

    The per-message headers (Subject, To, Message-ID, the labels, the multipart Content-Type)
    are written as folded RFC 5322 text straight away (:func:`_fast_headers`) when their
    values are of the ordinary kind — one-line text, a plain ``local@domain`` address — and
    go through the standard library's header parser otherwise (:func:`_parsed_headers`).
    Either way a parser reads back the same values; parsing was most of the cost of a message.
    Nothing of a recipient is kept between messages.
    """
    if date.tzinfo is None:
        raise InvalidValue("the Date of an email needs a timezone-aware datetime")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidValue(f"{message_id!r} is not a Message-ID of the form <left@right>")
    message = EmailMessage(policy=POLICY)
    try:
        from_header = _header("From", sender)
        subject, to_name = defused(rendered.subject), defused(to_name or "")
        headers = _fast_headers(subject, to, to_name, message_id)
        if headers is None:
            _parsed_headers(message, subject, from_header, to, to_name, date, message_id, label)
        else:
            subject_value, to_value = headers
            message.set_raw("Subject", subject_value)
            message.set_raw("From", from_header)
            message.set_raw("To", to_value)
            message.set_raw("Date", _header("Date", format_datetime(date)))
            message.set_raw("Message-ID", message_id)
            message.set_raw("Auto-Submitted", _AUTO_SUBMITTED)
            for name, value in label.headers() if label is not None else ():
                # Safe tokens: no parsing needed unless too long for one line.
                message.set_raw(name, value if len(name) + len(value) < _WIDTH - 1
                                else POLICY.header_factory(name, value))
            _check_addresses(message, ("From",))
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidValue(f"cannot build email to {to!r}: {exc}") from exc
    message.set_raw("MIME-Version", _MIME_VERSION)
    message.set_raw("Content-Type", f'multipart/alternative;\n boundary="{_boundary(message_id)}"')
    message.attach(_text_part(rendered.text, _PLAIN))
    message.attach(_text_part(rendered.html, _HTML))
    return message


def _parsed_headers(message: EmailMessage, subject: str, from_header: BaseHeader, to: str,
                    to_name: str, date: datetime, message_id: str, label: Label | None) -> None:
    """The headers as the standard library parses and folds them: for any value
    :func:`_fast_headers` does not take (and the yardstick of the tests for those it does)."""
    message["Subject"] = subject
    message.set_raw("From", from_header)
    message["To"] = Address(display_name=to_name, addr_spec=to)
    message.set_raw("Date", _header("Date", format_datetime(date)))
    message["Message-ID"] = message_id
    message.set_raw("Auto-Submitted", _AUTO_SUBMITTED)
    for name, value in label.headers() if label is not None else ():
        message[name] = value
    _check_addresses(message)
    _check_lines(message)


# The parts are put together by hand: ``set_content`` and ``add_alternative`` parse the same
# few Content-* headers afresh for every message, and that was most of the cost of building one
# (bench/bench_email.py). Header objects are immutable, so these are made once and shared.
_MIME_VERSION = POLICY.header_factory("MIME-Version", "1.0")
_PLAIN = POLICY.header_factory("Content-Type", 'text/plain; charset="utf-8"')
_HTML = POLICY.header_factory("Content-Type", 'text/html; charset="utf-8"')
_WIDTH = POLICY.max_line_length or 78
_QUOTED_PRINTABLE = POLICY.header_factory("Content-Transfer-Encoding", "quoted-printable")
# RFC 3834: tells auto-responders (out-of-office replies) not to answer.
_AUTO_SUBMITTED = POLICY.header_factory("Auto-Submitted", "auto-generated")


@functools.lru_cache(maxsize=64)
def _header(name: str, value: str) -> BaseHeader:
    """The header ``name: value`` as the policy parses it, made once for a value that recurs
    (the configured From, the day): parsing was most of what was left of the cost of a
    message. A value holding a line break is refused as ``message[name] = value`` refuses it
    (``str.splitlines`` counts ``\\x85`` and ``\\u2028`` as breaks too)."""
    if len(value.splitlines()) > 1:
        raise ValueError(f"the {name} header may not contain a line break")
    return POLICY.header_factory(name, value)


# -- headers written directly -------------------------------------------------------------

#: A plain ``local@domain`` address (dot-atoms, no ``=`` or ``?``); anything else is parsed.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*"
                            r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
#: A word that may stand as it is: in unstructured text (the Subject) any printable ASCII, in
#: a display name an atom (RFC 5322 atext). Other words go into RFC 2047 encoded words.
_TEXT_WORD = re.compile(r"[!-~]{1,60}")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,60}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Characters an encoded word in a phrase may hold as they are (RFC 2047, 5 (3)).
_Q_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_ASCII = tuple(chr(c) if chr(c) in _Q_LITERAL else "_" if c == 32 else f"={c:02X}" for c in range(128))
#: Characters of encoded text in one encoded word: at most 66 in all, so that even the first,
#: after ``Subject: ``, ends within column 78 (RFC 2047 allows 75).
_EW_ROOM = 66 - len("=?utf-8?q??=")


def _fast_headers(subject: str, to: str, to_name: str, message_id: str) -> tuple[str, str] | None:
    """Subject and To as folded header text (RFC 5322 and 2047), or None when a value is not
    one this function takes: text that is not single-spaced one-line text, an address that is
    not a plain ``local@domain``, a Message-ID that is not ASCII."""
    if not (_PLAIN_ADDRESS.fullmatch(to) and message_id.isascii()
            and _ordinary(subject) and _ordinary(to_name)):
        return None
    try:
        subject_value = _fold(len("Subject: "), _tokens(subject, _TEXT_WORD))
        if not to_name:
            return subject_value, to
        if _ATOM.fullmatch(to_name.replace(" ", "")) and len(to_name) < 60:
            phrase = [to_name]
        elif to_name.isascii():
            phrase = ['"' + to_name.replace("\\", "\\\\").replace('"', '\\"') + '"']
            if len(phrase[0]) > 60:
                return None
        else:
            phrase = _tokens(to_name, _ATOM)
            if any(a.startswith("=?") and b.startswith("=?") for a, b in itertools.pairwise(phrase)):
                return None  # one encoded word per run: Python reads a phrase's next one with a space
        return subject_value, _fold(len("To: "), [*phrase, f"<{to}>"])
    except UnicodeEncodeError:  # a lone surrogate: let the standard library say what is wrong
        return None


def _ordinary(text: str) -> bool:
    """One line of words with single spaces between them and no control characters."""
    return not _CONTROL.search(text) and " ".join(text.split()) == text


def _tokens(text: str, literal: re.Pattern[str]) -> list[str]:
    """The words of ``text``, those ``literal`` matches as they are, every run of the others
    (with the spaces between them) as encoded words, which a reader joins up again."""
    tokens: list[str] = []
    run: list[str] = []
    for word in text.split(" ") if text else ():
        if literal.fullmatch(word):
            if run:
                tokens += _encoded_words(" ".join(run))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens += _encoded_words(" ".join(run))
    return tokens


def _encoded_words(text: str) -> list[str]:
    """``text`` as utf-8 "Q" encoded words of at most 66 characters, split between characters."""
    words: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        code = ord(char)
        piece = _Q_ASCII[code] if code < 128 else "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
        if size + len(piece) > _EW_ROOM:
            words.append("=?utf-8?q?" + "".join(current) + "?=")
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    words.append("=?utf-8?q?" + "".join(current) + "?=")
    return words


def _fold(used: int, tokens: list[str]) -> str:
    """``tokens`` separated by spaces, a line break before any that would pass column 78."""
    lines: list[str] = []
    line = ""
    for token in tokens:
        if line and used + len(line) + 1 + len(token) > _WIDTH:
            lines.append(line)
            line, used = " " + token, 0
        else:
            line = f"{line} {token}" if line else token
    lines.append(line)
    return "\n".join(lines)


# -- bodies -------------------------------------------------------------------------------


def _text_part(text: str, content_type: BaseHeader) -> EmailMessage:
    """A utf-8 text part, quoted-printable, as ``set_content(text, cte="quoted-printable")``
    makes it: lines split at ``\\r``, ``\\n`` or ``\\r\\n``, joined by ``\\n``, one ``\\n`` at the
    end. Quoted-printable keeps every line 7-bit: any relay accepts it, with or without 8BITMIME."""
    body = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    part = EmailMessage(policy=POLICY)
    part.set_raw("Content-Type", content_type)
    part.set_raw("Content-Transfer-Encoding", _QUOTED_PRINTABLE)
    part.set_payload(quoted_printable(body, _WIDTH))
    return part


#: The bytes quoted-printable writes as they are: tab, line ends, and printable ASCII but ``=``.
_QP_SAFE = bytes([9, 10, 13, *(c for c in range(32, 127) if c != ord("="))])


def quoted_printable(data: bytes, width: int = 78) -> str:
    """What ``email.quoprimime.body_encode(data.decode("latin-1"), width)`` returns, character
    for character, for ``data`` whose lines end in ``\n``.

    The escapes are made one kind of byte at a time with ``str.replace`` (``=3D`` for every
    ``=``, then ``=XX`` for each other byte the text holds that needs one: controls and every
    byte above 126) instead of one character at a time; only a line longer than ``width`` or
    ending in a space or tab is then looked at again: a soft break (``=``) before the
    ``width``-th column, never inside an escape, and the space at its end made visible.
    """
    if not data:
        return ""
    escaped = data.decode("latin-1").replace("=", "=3D")  # by far the most common: HTML attributes
    for byte in set(data.translate(None, _QP_SAFE)) - {ord("=")}:  # the few other kinds there are
        escaped = escaped.replace(chr(byte), f"={byte:02X}")
    lines = escaped.split("\n")
    if max(map(len, lines)) <= width and " \n" not in escaped and "\t\n" not in escaped \
            and escaped[-1] not in " \t":
        return escaped
    return "\n".join([line if len(line) <= width and line[-1:] not in _BLANKS else _wrapped(line, width)
                      for line in lines])


_BLANKS = (" ", "\t")


def _wrapped(line: str, width: int) -> str:
    """One escaped line cut into lines of at most ``width`` with soft breaks, its last blank
    escaped (as ``quoprimime.body_encode`` does)."""
    pieces = []
    start, last = 0, len(line) - 1 - width
    while start <= last:
        stop = start + width - 1
        cut = stop - 1 if line[stop - 2] == "=" else stop  # never split "=XX"
        if line[cut - 1] == "=":
            pieces.append(line[start:cut])
            start = cut - 1
        else:
            pieces.append(line[start:cut] + "=")
            start = cut
    if line[-1:] in _BLANKS:
        room = start - last
        blank = "=09" if line[-1] == "\t" else "=20"
        tail = blank if room >= 3 else line[-1] + "=\n" if room == 2 else "=\n" + blank
        pieces.append(line[start:-1] + tail)
    else:
        pieces.append(line[start:])
    return "\n".join(pieces)


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


def _check_addresses(message: EmailMessage, headers: tuple[str, ...] = ("From", "To")) -> None:
    """Parsing is lenient: a From or To that is not exactly one address is refused here."""
    for header in headers:
        addresses = message[header].addresses
        if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
            raise ValueError(f"{header} must be exactly one address, got {message[header]!r}")
