"""Telling the operators about mail that could not be delivered.

A delivery run that gave up on messages queues one summary for each operator (a person with
``roles: {"*": operator}``) in the outbox itself, so it is retried, listed and reported like
any other message. Its key is derived from the messages it names, so queueing it twice adds
nothing; and a summary that fails in its turn is never summarised again (:func:`summarised`),
so a broken mail server cannot make the summaries breed. An organisation without operators
gets no summary: `outbox send`, the worker's log and `loket report` still say it.

The text is made here rather than from an override template: it is a message to whoever runs
the installation, not to civil servants about a case, and it must still be readable when the
templates are what broke.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from html import escape
from typing import Any, Final

from engine.core.organisation import Organisation
from engine.core.vocabulary import MailKind, OutboxStatus
from notifications.render import RenderedEmail
from notifications.wording import format_moment

OPERATOR: Final = "operator"
LISTED: Final = 50
"""At most this many messages are named in one summary; the count covers all of them."""


@dataclass(frozen=True)
class FailedMessage:
    """A message a delivery run gave up on."""

    key: str
    kind: str
    to: str
    subject: str
    error: str
    attempts: int
    created_at: str
    """ISO 8601, UTC."""


def summarised(failure: FailedMessage) -> bool:
    """Whether a failure belongs in a summary: every one except a summary's own."""
    return failure.kind != MailKind.DELIVERY_FAILED


def operators(org: Organisation) -> list[str]:
    """The ids of the people who hear about failed mail, in file order."""
    return [person.id for person in org.holders("*", OPERATOR)]


def summary_rows(org: Organisation, failures: Sequence[FailedMessage], now: dt.datetime) -> list[dict[str, Any]]:
    """One outbox row per operator, due at ``now``, naming ``failures``; none without them."""
    if not failures:
        return []
    digest = hashlib.sha256("\n".join(f"{f.key}#{f.attempts}" for f in failures).encode("utf-8")).hexdigest()
    context = {"count": len(failures), "failed": [asdict(f) for f in failures[:LISTED]]}
    rows = []
    for person_id in operators(org):
        person = org.people[person_id]
        rows.append({
            "key": f"delivery-failed/{digest[:24]}/{person.id}",
            "case_id": None,
            "kind": MailKind.DELIVERY_FAILED,
            "language": org.language,
            "recipient": person.id,
            "to_email": person.email,
            "to_name": person.name,
            "subject": _WORDS[org.language]["subject"].format(count=len(failures), municipality=org.municipality),
            "context": context,
            "created_at": now,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
        })
    return rows


_WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "nl": {
        "subject": "Wijkloket {municipality}: {count} e-mail(s) definitief niet afgeleverd",
        "greeting": "Beste {name},",
        "intro": "Het Wijkloket van {municipality} heeft {count} e-mail(s) definitief niet kunnen afleveren:",
        "line": "- {key} aan {to}: {subject}",
        "error": "  fout: {error}",
        "tries": "  {attempts} poging(en); in de wachtrij sinds {created}",
        "more": "... en nog {count}.",
        "advice": ("`loket outbox list --failed` toont ze alle. Zodra de oorzaak is verholpen (de"
                   " mailserver, een adres in het organisatiebestand), zet `loket outbox retry --failed`"
                   " ze opnieuw in de wachtrij."),
        "footer": "Dit bericht is automatisch verstuurd aan de beheerders (operator) van het Wijkloket.",
    },
    "en": {
        "subject": "Wijkloket {municipality}: {count} email(s) could not be delivered",
        "greeting": "Dear {name},",
        "intro": "The Wijkloket of {municipality} gave up delivering {count} email(s):",
        "line": "- {key} to {to}: {subject}",
        "error": "  error: {error}",
        "tries": "  {attempts} attempt(s); queued since {created}",
        "more": "... and {count} more.",
        "advice": ("`loket outbox list --failed` shows them all. Once the cause is fixed (the mail"
                   " server, an address in the organisation file), `loket outbox retry --failed` queues"
                   " them again."),
        "footer": "This message was sent automatically to the operators of the Wijkloket.",
    },
}


def render_summary(row: Mapping[str, Any], org: Organisation) -> RenderedEmail:
    """The email of a summary row, in its language: plain text, and the same as HTML."""
    words = _WORDS.get(row["language"], _WORDS["nl"])
    context = row["context"]
    failed = context.get("failed", [])
    lines = [words["greeting"].format(name=row["to_name"] or row["recipient"]), "",
             words["intro"].format(municipality=org.municipality, count=context.get("count", len(failed))), ""]
    for item in failed:
        created = dt.datetime.fromisoformat(item["created_at"])
        lines += [words["line"].format(**item), words["error"].format(**item),
                  words["tries"].format(attempts=item["attempts"], created=format_moment(
                      created, timezone=org.timezone, language=row["language"]))]
    hidden = int(context.get("count", len(failed))) - len(failed)
    if hidden > 0:
        lines.append(words["more"].format(count=hidden))
    lines += ["", words["advice"], "", words["footer"]]
    text = "\n".join(lines) + "\n"
    html = (f'<!DOCTYPE html>\n<html lang="{escape(row["language"])}"><head><meta charset="utf-8"></head>'
            f"<body><pre>{escape(text)}</pre></body></html>\n")
    return RenderedEmail(subject=row["subject"], text=text, html=html)
