"""The fast way of making an email against a straightforward one, read back by the standard
library's parser: every template kind in Dutch and English, names and subjects with accents and
specials, long lines.

The fast way renders the bundled templates in a plain Jinja environment, writes the headers as
folded text and quoted-printable by ``str.replace``; the straightforward way renders them in the
bounded sandbox (an empty override folder) and builds the message with the standard library's
``set_content``/``add_alternative`` and header parser. What a reader sees must be the same.
"""

from __future__ import annotations

import email
import random
from datetime import UTC, datetime
from email import policy, quoprimime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from notifications.context import TEMPLATE_KINDS, sample_contexts
from notifications.message import Label, build_message, defused, message_id_for, quoted_printable
from notifications.render import RenderedEmail, Renderer
from notifications.wording import LANGUAGES
from tests.test_message_build import reference as stdlib_message

NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
SENDER = "Wijkloket Gemeente Voorbeeld <noreply@gemeente.example>"

NAMES = [
    None,
    "",
    "Anna Jansen",
    "Anna Jansen-Ünal",
    "Ĳsbrand van 't Hoff",
    "J. \"Sjaak\" de Vries, jr.",
    "Zoë O'Brien (wijkteam)",
    "Émile Ångström Çelik Øster Þór 😀",
    "a.jansen@gemeente.example",
    "=?utf-8?q?Bcc:_x@evil.example?=",
    "Lange Naam " * 9 + "Ünal",
    "Wilhelmina-Alexandra-Catharina-Beatrix-Juliana-Margriet-Irene-Christina-Ünal",
    "tab\there",
    "  dubbele  spaties  ",
]

SUBJECTS = [
    "",
    "Escalatie BI-2026-00042 – Bewonersinitiatief",
    "Herinnering: " + "heel lange onderwerpregel " * 8,
    "Überschrijding — “aanhalingstekens” en € 5 ",
    "x" * 100,
    "é" * 100,
    "=?utf-8?q?=0D=0ABcc:_x?= ingepakt",
    "a_b ?= =? _ = ? (haakjes) <punt> \"quote\" \\ slash",
]


def reference(rendered: RenderedEmail, *, to: str, to_name: str | None, message_id: str,
              label: Label | None) -> EmailMessage:
    """The message as the standard library makes it from the same parts."""
    return stdlib_message(rendered, sender=SENDER, to=to, to_name=to_name, message_id=message_id,
                          date=NOW, label=label)


def read_back(message: EmailMessage) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every header decoded (but the multipart Content-Type, whose boundary differs), and every
    part's type and decoded text, as a reader gets them from the bytes."""
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert raw.isascii()
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage) and not parsed.defects
    headers = [(name, str(value)) for name, value in parsed.items() if name != "Content-Type"]
    to = parsed["To"].addresses
    headers.append(("To address", repr([(a.display_name, a.addr_spec) for a in to])))
    parts = [(part.get_content_type(), part.get_content()) for part in parsed.iter_parts()]
    return headers, parts


def same_for_a_reader(built: EmailMessage, rendered: RenderedEmail, arguments: dict[str, Any]) -> None:
    """``built`` reads back as the reference does, or (where the standard library's own folding
    does not read back what it was given: it doubles a space before an encoded word it moves to
    the next line) as what it was made of."""
    mine, theirs = read_back(built), read_back(reference(rendered, **arguments))
    assert mine[1] == theirs[1]  # the parts: types and decoded text
    meant = {"Subject": defused(rendered.subject),
             "To address": repr([(defused(arguments["to_name"] or ""), arguments["to"])])}
    mine_headers, their_headers = dict(mine[0]), dict(theirs[0])
    assert list(mine_headers) == list(their_headers)
    for name, value in mine_headers.items():
        assert value == their_headers[name] or (name in meant and mine_headers[name] == meant[name]
                                                and their_headers[name] != meant[name]), name


def contexts() -> list[tuple[str, str, Any]]:
    return [(kind, language, sample) for kind in TEMPLATE_KINDS for language in LANGUAGES
            for sample in sample_contexts(kind, language)]


CONTEXTS = contexts()


@pytest.mark.parametrize("number", range(len(CONTEXTS)))
def test_every_template_reads_back_the_same_both_ways(number: int, tmp_path: Path) -> None:
    kind, language, sample = CONTEXTS[number]
    fast = Renderer(language).render(kind, sample)
    careful = Renderer(language, override_dir=tmp_path).render(kind, sample)  # the sandbox
    assert fast == careful
    rng = random.Random(number)
    for name in NAMES:
        label = Label(NOW.date(), f"BI-2026-{number:05}", kind, rng.choice(["c.devries", "requester", "x" * 80]))
        to = rng.choice(["a.jansen@gemeente.example", "o'brien+wijk@sub.gemeente.example"])
        arguments: dict[str, Any] = {"to": to, "to_name": name, "label": rng.choice([label, None]),
                                     "message_id": message_id_for(f"{kind}/{number}", "gemeente.example")}
        same_for_a_reader(build_message(fast, sender=SENDER, date=NOW, **arguments), fast, arguments)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subjects_and_long_lines_read_back_the_same(subject: str) -> None:
    text = "Regel " + "lang " * 40 + "einde  \n" + "=" * 100 + "\n\tTab aan het eind\t\n" + "é" * 90
    rendered = RenderedEmail(subject=subject, text=text, html=f"<p style=\"x\">{text}</p>")
    for name in NAMES:
        arguments: dict[str, Any] = {"to": "a.jansen@gemeente.example", "to_name": name,
                     "message_id": message_id_for(subject, "gemeente.example"), "label": None}
        built = build_message(rendered, sender=SENDER, date=NOW, **arguments)
        same_for_a_reader(built, rendered, arguments)
        head = built.as_bytes().split(b"\n\n", 1)[0]
        assert all(len(line) <= 78 for line in head.split(b"\n") if not line.startswith(b"Message-ID"))


def test_quoted_printable_is_the_standard_librarys_character_for_character() -> None:
    rng = random.Random(16)
    alphabet = "ab cdé=\t\n.-–€😀Ü_?<>&\"'\x00\x7f\x0c" + " " * 5 + "x" * 20
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
        data = text.encode("utf-8")
        assert quoted_printable(data) == quoprimime.body_encode(data.decode("latin-1"), 78)
        assert quoted_printable(data, 20) == quoprimime.body_encode(data.decode("latin-1"), 20)
