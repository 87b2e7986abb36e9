"""The auditors' copy of a new seal's digest (SPEC §13.4).

`loket audit seal` queues one row per auditor with an email address in the seal's own
transaction; this renders it. An auditor keeps the digest outside the database (the mail
itself, a register, a ticket) and checks the database against it with
``loket audit verify --against DIGEST``: someone who rewrites history and recomputes every
chain and seal alike cannot recompute a digest that lies elsewhere.

Like the operators' summary, the text is made here rather than from an override template: it
is a record for the audit, and it must read the same whatever the templates say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from html import escape
from typing import Any, Final

from engine.core.organisation import Organisation
from notifications.render import RenderedEmail
from notifications.wording import format_moment

_WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "nl": {
        "subject": "Wijkloket {municipality}: zegel {seal} van de geschiedenis",
        "greeting": "Beste {name},",
        "intro": ("Op {at} is de geschiedenis van het Wijkloket van {municipality} verzegeld"
                  " (zegel {seal}: {cases} zaken, {events} gebeurtenissen). De vingerafdruk van dit zegel is:"),
        "keep": ("Bewaar deze vingerafdruk buiten het Wijkloket, bijvoorbeeld door dit bericht te bewaren."
                 " Zo controleert u later of niemand de geschiedenis heeft herschreven:"),
        "footer": "Dit bericht is automatisch verstuurd aan de auditors van het Wijkloket.",
    },
    "en": {
        "subject": "Wijkloket {municipality}: seal {seal} of the history",
        "greeting": "Dear {name},",
        "intro": ("On {at} the history of the Wijkloket of {municipality} was sealed"
                  " (seal {seal}: {cases} cases, {events} events). The digest of this seal is:"),
        "keep": ("Keep this digest outside the Wijkloket, for instance by keeping this message."
                 " Later you check that nobody rewrote the history with:"),
        "footer": "This message was sent automatically to the auditors of the Wijkloket.",
    },
}


def render_seal(row: Mapping[str, Any], org: Organisation) -> RenderedEmail:
    """The email of a seal row, in its language: plain text, and the same as HTML."""
    words = _WORDS.get(row["language"], _WORDS["nl"])
    context: Mapping[str, Any] = row["context"]
    at = format_moment(dt.datetime.fromisoformat(str(context["at"]).replace("Z", "+00:00")),
                       timezone=org.timezone, language=row["language"])
    facts = {"municipality": org.municipality, "seal": context["seal"], "cases": context["cases"],
             "events": context["events"], "at": at}
    text = "\n".join([
        words["greeting"].format(name=row["to_name"] or row["recipient"]), "",
        words["intro"].format(**facts), "", f"    {context['digest']}", "",
        words["keep"], "", f"    loket audit verify --against {context['digest']}", "",
        words["footer"],
    ]) + "\n"
    html = (f'<!DOCTYPE html>\n<html lang="{escape(row["language"])}"><head><meta charset="utf-8"></head>'
            f"<body><pre>{escape(text)}</pre></body></html>\n")
    return RenderedEmail(subject=words["subject"].format(**facts), text=text, html=html)
