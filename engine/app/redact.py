"""Erasing a resident's personal data when its retention ends (AVG), without breaking the chain.

The chain commits to salted digests of personal values, never to the values, so removing
the values from the case and from every event — and the salt, which would let a guessed value
be confirmed — leaves every hash as it was. The case's mail is in the outbox, sent or not:
the resident's address is erased from it, and every personal value from what the messages
tell. "Erased" must also hold for the database files; the redaction records that they still
hold the old values (`engine.store.redact.mark_pending`), and `engine.app.maintenance` removes
them from the files as soon as that can be done without stalling anyone. Mail already
delivered (a `.eml` file, a mailbox) is out of the product's reach, and the command says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from engine.core.casework import Case, Change, Draft
from engine.core.fields import check_free_text
from engine.core.notify_rules import REQUESTER
from engine.core.vocabulary import Action, OutboxStatus
from engine.errors import InvalidValue, Refused, RoleRequired
from engine.store import redact as store

if TYPE_CHECKING:
    from engine.app.service import Loket


CANCELLED = "not sent: the resident's personal data was erased (case redact) before the message went out"
"""Why a message to the resident that was still waiting is given up: its address is gone.
`outbox retry` may queue it again, but with no address it fails at once."""
SHORTEST = 3
"""Personal values shorter than this are not searched for in the text of messages: a house
number or an initial would wipe out unrelated words, and identifies nobody on its own."""
_MARK = {"nl": "[verwijderd]", "en": "[erased]"}


class MailErased(NamedTuple):
    """What a redaction did to the case's mail."""

    changed: int
    """Messages from which something was erased."""
    cancelled: int
    """Messages to the resident that were still waiting, now `failed` with :data:`CANCELLED`."""
    delivered: int
    """Messages to the resident already sent: what reached them is out of reach."""


class Redacted(NamedTuple):
    case: Case
    fields: list[str]
    mail: MailErased


def redact(loket: Loket, ref: str, reason: str, *, actor: str | None, retention: bool = False) -> Redacted:
    """Erase case REF's personal data. With `retention`, a retention run does it
    (`engine.app.retention`): `actor` is the operator who runs it, whose role was checked there."""
    if not reason or not reason.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    check_free_text(reason, "--reason", multiline=False)
    org = loket.organisation()
    actor = actor if retention and actor else loket.require_person(actor)
    now = loket.clock.now()
    with loket.engine.begin() as conn:
        case = loket.get_case(ref, conn)
        rt = loket.type_of(case)
        events = store.event_data(conn, case.id)
        unit = loket.holding_unit(case, conn)
        if not retention and org.rank(actor, unit) < 3:
            raise RoleRequired(f"{actor} may not redact {case.ref}: it needs role head in unit '{unit}'")
        personal = rt.personal_fields()
        if not personal:
            raise Refused(f"{rt.key} has no personal fields: nothing to redact")
        present = set(personal & case.data.keys())
        for event in events:
            present |= personal & (event["data"] or {}).keys()
        if not present:
            # Redacted before, or never given: personal data entered after a redaction can be
            # erased by redacting again.
            done = f" (redacted on {case.redacted_at.date().isoformat()})" if case.redacted_at else ""
            raise Refused(f"{case.ref} holds no personal data{done}: nothing to redact")
        fields = sorted(present)
        values = {str(v) for source in (case.data, *(e["data"] or {} for e in events))
                  for k, v in source.items() if k in personal and v not in (None, "")}
        for event in events:
            data = event["data"] or {}
            if personal & data.keys():
                kept = {k: v for k, v in data.items() if k not in personal}
                store.set_event_data(conn, event["id"], kept)
        mail = _erase_mail(conn, case.id, values)
        kept_data = {k: v for k, v in case.data.items() if k not in personal}
        change = Change({"data": kept_data, "salt": None, "redacted_at": now},
                        [Draft(Action.REDACTED, data={"fields": fields, "reason": reason.strip()})])
        new = loket.write_case(conn, rt, case, change, actor, now)
        store.mark_pending(conn)
    return Redacted(new, fields, mail)


def mail_told(mail: MailErased) -> str:
    """What a person is told of the mail: what was erased, given up, and out of reach."""
    parts = [f"erased from {mail.changed} message(s) in the outbox"]
    if mail.cancelled:
        parts.append(f"{mail.cancelled} message(s) to the resident not yet sent are cancelled")
    return "; ".join(parts) + (
        f"; {mail.delivered} message(s) already delivered to the resident are out of reach (sent .eml files,"
        " mailboxes)" if mail.delivered else "; mail already delivered (sent .eml files, mailboxes) is out of reach")


def _erase_mail(conn: sa.Connection, case_id: int, values: set[str]) -> MailErased:
    """Erase the resident's address from the case's messages and every personal value from
    their text; give up the resident's messages that are still waiting."""
    secrets = sorted((v for v in values if len(v) >= SHORTEST), key=len, reverse=True)
    changed = cancelled = delivered = 0
    for row in store.mail_of(conn, case_id):
        mark = _MARK.get(row["language"], _MARK["en"])
        update: dict[str, Any] = {}
        for column in ("to_name", "subject", "context", "last_error"):
            scrubbed = _scrub(row[column], secrets, mark)
            if scrubbed != row[column]:
                update[column] = scrubbed
        if row["recipient"] == REQUESTER:
            if row["to_email"] or row["to_name"]:
                update.update(to_email="", to_name=None)
            if row["status"] in (OutboxStatus.PENDING, OutboxStatus.SENDING):
                update.update(status=OutboxStatus.FAILED, last_error=CANCELLED, next_attempt_at=None,
                              lease_until=None, lease_owner=None)
                cancelled += 1
            elif row["status"] == OutboxStatus.SENT:
                delivered += 1
        if update:
            store.set_mail(conn, row["id"], update)
            changed += 1
    return MailErased(changed, cancelled, delivered)


def _scrub(value: Any, secrets: list[str], mark: str) -> Any:
    """``value`` (text, or JSON made of lists and mappings) with every occurrence of a secret
    replaced by ``mark``."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, mark)
        return value
    if isinstance(value, list):
        return [_scrub(item, secrets, mark) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, secrets, mark) for key, item in value.items()}
    return value
