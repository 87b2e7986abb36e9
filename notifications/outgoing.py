"""From claimed outbox rows to the messages that carry them: each row's context, the rows put
together in digests (:mod:`notifications.digest`), each message rendered and built.

A message answers for one row, or for a digest's rows; delivery records all the rows of a
message together, with the one outcome the server gave for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from engine.core.vocabulary import MailKind
from engine.errors import InvalidValue
from notifications import digest
from notifications.compose import recent_events, row_context, type_facts
from notifications.context import DIGEST, RESIDENT_KINDS
from notifications.failures import render_summary
from notifications.message import Label, build_message, message_id_for
from notifications.render import RenderedEmail, Renderer
from notifications.seals import render_seal

if TYPE_CHECKING:
    from engine.app.service import Loket
    from engine.core.organisation import Organisation

Row = dict[str, Any]
REQUESTER = "requester"
"""How a message to the resident who applied names its recipient in a file name."""

#: The kinds whose text is made in code rather than from a template, each always alone.
PLAIN: Final[Mapping[str, Callable[[Row, Organisation], RenderedEmail]]] = {
    MailKind.DELIVERY_FAILED: render_summary, MailKind.SEAL: render_seal,
}


@dataclass
class Outgoing:
    """A message ready to go, and the outbox rows it answers for (one, or a digest's)."""

    rows: list[Row]
    message: EmailMessage


class Composer:
    """Makes the messages of claimed rows, with a delivery run's renderers and sender."""

    def __init__(self, loket: Loket, renderers: Mapping[str, Renderer], sender: str, domain: str,
                 limit: int = digest.LIMIT) -> None:
        self.loket, self.renderers, self.sender, self.domain = loket, renderers, sender, domain
        self.limit = limit

    def compose(self, rows: Sequence[Row], now: dt.datetime) -> tuple[list[Outgoing], list[tuple[Row, str]]]:
        """The messages of ``rows``, and the rows whose own data makes no email, with why.

        A row whose context cannot be made is left out of its digest, which goes out without
        it; a digest that cannot be built as a whole (its address is refused) fails all its
        rows, which share that address.
        """
        org = self.loket.organisation()
        contexts: dict[int, dict[str, Any]] = {}
        broken: list[tuple[Row, str]] = []
        templated = [row for row in rows if row["kind"] not in PLAIN]
        for row, events, facts in zip(templated, recent_events(self.loket, templated),
                                      type_facts(self.loket, templated), strict=True):
            try:
                contexts[id(row)] = row_context(self.loket, row, events, facts, now)
            except InvalidValue as exc:
                broken.append((row, exc.message))
        ready: list[Outgoing] = []
        usable = [row for row in rows if row["kind"] in PLAIN or id(row) in contexts]
        for group in digest.groups(usable, self.limit):
            try:
                if group[0]["kind"] in PLAIN:
                    rendered = PLAIN[group[0]["kind"]](group[0], org)
                elif len(group) == 1:
                    rendered = self._renderer(group[0]).render(group[0]["kind"], contexts[id(group[0])])
                else:
                    data = digest.digest_context(group, [contexts[id(row)] for row in group])
                    rendered = self._renderer(group[0]).render(DIGEST, data)
                ready.append(Outgoing(group, self._build(group, rendered, now, org.timezone)))
                for row in group:
                    row["subject"] = rendered.subject  # what the listing shows once it is sent
            except InvalidValue as exc:
                broken += [(row, exc.message) for row in group]
        return ready, broken

    def _renderer(self, row: Row) -> Renderer:
        renderer = self.renderers.get(row["language"])
        if renderer is None:
            raise InvalidValue(f"no email templates in language {row['language']!r}")
        return renderer

    def _build(self, rows: list[Row], rendered: RenderedEmail, now: dt.datetime, timezone: str) -> EmailMessage:
        first = rows[0]
        return build_message(rendered, sender=self.sender, to=first["to_email"], to_name=first["to_name"],
                             date=now, message_id=message_id_for(digest.message_key(rows), self.domain),
                             label=label_of(rows, timezone))


def label_of(rows: Sequence[Row], timezone: str) -> Label:
    """The :class:`~notifications.message.Label` of a message: the day its first row was
    queued, local; its case (a digest's first, ``+N`` others); its kind; its recipient."""
    first = min(rows, key=lambda row: row["key"])
    refs = sorted({str(row["context"].get("ref") or row["key"].split("/", 1)[0]) for row in rows})
    queued = min(row["created_at"] for row in rows).astimezone(ZoneInfo(timezone)).date()
    ref = refs[0] if len(refs) == 1 else f"{refs[0]}+{len(refs) - 1}"
    kind = first["kind"] if len(rows) == 1 else DIGEST
    recipient = str(first["recipient"])
    if first["kind"] in RESIDENT_KINDS or "@" in recipient:
        recipient = REQUESTER
    return Label(queued=queued, ref=ref, kind=kind, recipient=recipient)
