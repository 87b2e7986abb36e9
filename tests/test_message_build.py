"""``build_message`` puts the MIME parts together by hand; it must write what the standard
library's ``set_content``/``add_alternative`` wrote, read back the same way.

``reference`` below is the implementation it replaced, kept here as the yardstick.
"""

from __future__ import annotations

import email
import random
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart

import pytest

from engine.errors import InvalidValue
from notifications.message import POLICY, Label, build_message, defused, message_id_for
from notifications.render import RenderedEmail

NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
SENDER = "Gemeente Voorbeeld <noreply@gemeente.example>"
LABEL = Label(NOW.date(), "BI-2026-00042", "escalation", "c.devries")


def reference(rendered: RenderedEmail, *, sender: str, to: str, to_name: str | None,
              message_id: str, date: datetime, label: Label | None) -> EmailMessage:
    """The message as ``set_content`` and ``add_alternative`` made it."""
    message = EmailMessage(policy=POLICY)
    message["Subject"] = defused(rendered.subject)
    message["From"] = sender
    message["To"] = Address(display_name=defused(to_name or ""), addr_spec=to)
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    for name, value in label.headers() if label is not None else ():
        message[name] = value
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


BODIES = [
    "",
    "Hallo,\n\nEen korte regel.\n",
    "Zonder regeleinde aan het eind",
    "Ünïcödé: één, café, Ĳssel – “aanhalingstekens” — €5 😀\n",
    "x" * 200 + "\n" + "é" * 120,
    "spaties aan het eind   \nen tabs\t\t\nen een lege regel   \n\n",
    "a = b\n=\n==\n=?utf-8?q?=0D=0A?=\n=3D\n=_wijkloket_abc\n",
    "Windows\r\nregels\r\nen\rook oud Mac\r\n\r\n",
    "\n\n\n",
    "a line ending in = sign =\n. a dot line\n.\nFrom the start\n",
    "x" * 75 + "=" + "y" * 10 + "\n" + "z" * 76 + " " + "\n" + " " * 90,
    "<p>HTML &amp; <strong>vet</strong></p>\n<a href=\"https://example.org/?a=1&b=2\">link</a>",
    "\x00\x01 control \x0b\x0c form feed \x1c\x1d\x1e \x85 \u2028 \u2029 separators\n",
]


def random_body(rng: random.Random) -> str:
    alphabet = "ab cdé=\t\r\n.-–€😀Ü_?<>&\"'" + " " * 5
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))


CASES = [(text, html) for text in BODIES for html in ("", BODIES[3], BODIES[11])]
CASES += [(text, text) for text in BODIES]
CASES += [(random_body(rng), random_body(rng)) for rng in (random.Random(seed) for seed in range(40))]


def arguments(index: int) -> dict[str, object]:
    return {
        "sender": SENDER,
        "to": "a.jansen@gemeente.example",
        "to_name": ("Anna Jansen-Ünal", None, "A. \"de\" Vries, jr.")[index % 3],
        "message_id": message_id_for(f"escalation:BI-2026-{index:05}:1:2", "gemeente.example"),
        "date": NOW,
        "label": (LABEL, None)[index % 2],
    }


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def headers(message: MIMEPart) -> list[tuple[str, str]]:
    return [(name, str(value)) for name, value in message.items()
            if name != "Content-Type" or not value.startswith("multipart/")]


@pytest.mark.parametrize("index", range(len(CASES)))
def test_the_message_reads_back_as_the_standard_library_wrote_it(index: int) -> None:
    text, html = CASES[index]
    subject = ("Escalatie BI-2026-00042 – Bewonersinitiatief é " + "lang " * (index % 30)).strip()
    rendered = RenderedEmail(subject=subject, text=text, html=html)
    new = build_message(rendered, **arguments(index))  # type: ignore[arg-type]
    old = reference(rendered, **arguments(index))  # type: ignore[arg-type]
    new_raw, old_raw = new.as_bytes(), old.as_bytes()
    assert new_raw.isascii()
    mine, theirs = parse(new_raw), parse(old_raw)

    assert headers(mine) == headers(theirs)
    assert mine.get_content_type() == theirs.get_content_type() == "multipart/alternative"
    assert mine.get_boundary().startswith("=_")  # type: ignore[union-attr]
    new_parts, old_parts = list(mine.iter_parts()), list(theirs.iter_parts())
    assert len(new_parts) == len(old_parts) == 2
    for new_part, old_part in zip(new_parts, old_parts, strict=True):
        # The standard library gave the html part a MIME-Version of its own; once is enough.
        assert headers(new_part) == [item for item in headers(old_part) if item[0] != "MIME-Version"]
        assert new_part.get_content() == old_part.get_content()
        assert new_part.get_payload() == old_part.get_payload()  # the same quoted-printable
    # The headers are folded and encoded in a way of their own (read back the same, above),
    # each line within 78 columns (the Message-ID cannot be folded); the body is byte for byte
    # the same, but for the boundary and that one header.
    new_head, new_body = new_raw.split(b"\n\n", 1)
    assert max(len(line) for line in new_head.split(b"\n") if not line.startswith(b"Message-ID")) <= 78
    old_boundary = old.get_boundary()
    assert old_boundary is not None
    expected = old_raw.split(b"\n\n", 1)[1].replace(old_boundary.encode(), new.get_boundary().encode())  # type: ignore[union-attr]
    assert new_body == re.sub(rb"(text/html; charset=\"utf-8\"\nContent-Transfer-Encoding: "
                              rb"quoted-printable\n)MIME-Version: 1.0\n", rb"\1", expected)


def test_the_boundary_is_fixed_by_the_message_id_and_no_body_can_hold_it() -> None:
    first = build_message(RenderedEmail("s", "a", "b"), **arguments(1))  # type: ignore[arg-type]
    again = build_message(RenderedEmail("s", "c", "d"), **arguments(1))  # type: ignore[arg-type]
    other = build_message(RenderedEmail("s", "a", "b"), **arguments(2))  # type: ignore[arg-type]
    boundary = first.get_boundary()
    assert boundary is not None and boundary == again.get_boundary() != other.get_boundary()
    hostile = f"--{boundary}\nContent-Type: text/plain\n\nsmuggled\n--{boundary}--\n"
    message = build_message(RenderedEmail("s", hostile, hostile), **arguments(1))  # type: ignore[arg-type]
    parts = list(parse(message.as_bytes()).iter_parts())
    assert [part.get_content() for part in parts] == [hostile, hostile]
    assert first.as_bytes() == build_message(RenderedEmail("s", "a", "b"), **arguments(1)).as_bytes()  # type: ignore[arg-type]


@pytest.mark.parametrize("sender", [
    "noreply@gemeente.example\r\nBcc: x@evil.example",
    "Gemeente\x85Bcc: x@evil.example <noreply@gemeente.example>",
    "Gemeente\u2028Bcc <noreply@gemeente.example>",
    "=?utf-8?q?Gemeente=0D=0ABcc:_x@evil.example?= <noreply@gemeente.example>",
    "a@gemeente.example, x@evil.example",
])
def test_a_sender_with_a_line_break_is_refused_every_time(sender: str) -> None:
    """The From is parsed once per distinct value and kept; a bad one is refused each time,
    never kept."""
    for _ in range(2):
        with pytest.raises(InvalidValue):
            build_message(RenderedEmail("s", "a", "b"), **(arguments(1) | {"sender": sender}))  # type: ignore[arg-type]
