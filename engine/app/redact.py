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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from engine.core.casework import Case, Change, Draft
from engine.core.fields import check_free_text
from engine.core.history import COMMENT, FIELD_ACTIONS, OWN, TEXT_KEYS
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
LISTED = 10
"""How many texts that cannot be erased a refusal names on its one line."""


class MailErased(NamedTuple):
    """What a redaction did to the case's mail."""

    changed: int
    """Messages from which something was erased."""
    cancelled: int
    """Messages to the resident that were still waiting, now `failed` with :data:`CANCELLED`."""
    delivered: int
    """Messages to the resident already sent: what reached them is out of reach."""


class NotErased(NamedTuple):
    """A text a redaction was asked to erase but could not."""

    seq: int
    what: str
    """``comment``, ``field 'NAME'``, ``instruction text`` or ``reason``."""
    why: str


OLD_FORMAT = ("written before free text entered the chain by digest (schema revision 0006): the chain"
              " hashes this text itself, so erasing it would break every hash after it")
OLD_FIELD = (OLD_FORMAT + "; the field's later values are kept too, or the case would disagree with"
             " its history")
_WHAT = {"text": "instruction text", "reason": "reason"}


@dataclass(frozen=True)
class Redacted:
    """What a redaction did. Iterating gives ``(case, fields, mail)``, as it did before free
    text could be erased."""

    case: Case
    fields: list[str]
    """The fields erased (personal ones, and the text fields asked for)."""
    mail: MailErased
    texts: int = 0
    """Comments, instruction texts and reasons erased."""
    not_erased: list[NotErased] = dataclass_field(default_factory=list)
    """The texts asked for that stay, each with why."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.case, self.fields, self.mail))


def redact(
    loket: Loket, ref: str, reason: str, *, actor: str | None, comments: bool = False,
    fields: Sequence[str] = (), retention: bool = False,
) -> Redacted:
    """Erase the case's personal data (without `comments` and `fields`: as before), or its
    comments (with instruction texts and typed reasons) and/or the values of `fields` (text
    or personal fields; a personal one erases all personal fields: they share one salt).
    With `retention`, a retention run does it (`engine.app.retention`): `actor` is the
    operator who runs it, whose role was checked there."""
    if not reason or not reason.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    check_free_text(reason, "--reason", multiline=False)
    org = loket.organisation()
    actor = actor if retention and actor else loket.require_person(actor)
    now = loket.clock.now()
    with loket.engine.begin() as conn:
        case = loket.get_case(ref, conn)
        rt = loket.type_of(case)
        unit = loket.holding_unit(case, conn)
        if not retention and org.rank(actor, unit) < 3:
            raise RoleRequired(f"{actor} may not redact {case.ref}: it needs role head in unit '{unit}'")
        personal = rt.personal_fields()
        texts: frozenset[str] = frozenset()
        for name in dict.fromkeys(fields):
            spec = rt.fields.get(name)
            if spec is None:
                raise InvalidValue(f"--field {name}: {rt.key} has no such field")
            if not spec.personal and spec.type != "text":
                raise InvalidValue(f"--field {name}: a {spec.type} field, not free text or personal data:"
                                   " nothing in it to erase")
            if not spec.personal:
                texts |= {name}
        whole = not comments and not fields
        do_personal = whole or bool(set(fields) & personal)
        if whole and not personal:
            raise Refused(f"{rt.key} has no personal fields: nothing to redact"
                          " (free text: --comments, --field F)")
        events = store.event_texts(conn, case.id)
        erasure = _Erasure(events, personal if do_personal else frozenset(), texts, comments)
        if do_personal and not (erasure.personal_present or personal & case.data.keys()) and not (comments or texts):
            # Redacted before, or never given: personal data entered after a redaction can be
            # erased by redacting again.
            done = f" (redacted on {case.redacted_at.date().isoformat()})" if case.redacted_at else ""
            raise Refused(f"{case.ref} holds no personal data{done}: nothing to redact")
        erased_fields = sorted(erasure.fields(case.data))
        if not erased_fields and not erasure.texts:
            if erasure.not_erased:
                shown = erasure.not_erased[:LISTED]
                listed = ", ".join(f"event {n.seq} ({n.what})" for n in shown) + (
                    f" and {len(erasure.not_erased) - len(shown)} more" if len(erasure.not_erased) > len(shown) else "")
                raise Refused(f"{case.ref}: none of the texts asked for can be erased, all {OLD_FORMAT}: {listed}")
            raise Refused(f"{case.ref} holds none of the texts asked for: nothing to redact")
        secrets = set(erasure.secrets)
        if do_personal:
            secrets |= {str(v) for k, v in case.data.items() if k in personal and v not in (None, "")}
        secrets |= {str(v) for k, v in case.data.items() if k in texts and k in erased_fields and v}
        mail = _erase_mail(conn, case.id, secrets, resident=do_personal)
        kept_data = {k: v for k, v in case.data.items() if k not in erased_fields}
        updates: dict[str, Any] = {"data": kept_data, "redacted_at": now}
        if do_personal:
            updates["salt"] = None
        record: dict[str, Any] = {"fields": erased_fields, "reason": reason.strip()}
        if comments or texts:
            record["texts"] = erasure.texts
            if erasure.not_erased:
                record["not_erased"] = [[n.seq, n.what] for n in erasure.not_erased]
        change = Change(updates, [Draft(Action.REDACTED, data=record)])
        new = loket.write_case(conn, rt, case, change, actor, now)
        # After the `redacted` event that records it: on PostgreSQL only a transaction that
        # appended one may erase the case's events (`engine.store.grants`).
        for event_id, values in erasure.updates.items():
            store.set_event(conn, event_id, values)
        store.mark_pending(conn)
    return Redacted(new, erased_fields, mail, erasure.texts, erasure.not_erased)


class _Erasure:
    """What erasing means for each event: the new values of its rows, the texts erased (to
    find in the mail), and what could not be erased."""

    def __init__(self, events: list[dict[str, Any]], personal: frozenset[str], texts: frozenset[str],
                 comments: bool) -> None:
        self.updates: dict[int, dict[str, Any]] = {}
        self.secrets: list[str] = []
        self.not_erased: list[NotErased] = []
        self.texts = 0
        self.personal_present = False
        self._personal = personal
        self._erased_fields: set[str] = set()
        blocked: dict[str, list[int]] = {}
        for event in events:
            for name, value in (event["data"] or {}).items():
                if name in texts and event["action"] in FIELD_ACTIONS and value not in (None, "") and not _own(
                        event, name):
                    blocked.setdefault(name, []).append(event["seq"])
        for name, seqs in blocked.items():
            self.not_erased.extend(NotErased(seq, f"field '{name}'", OLD_FIELD) for seq in seqs)
        fields = texts - blocked.keys()
        for event in events:
            self._event(event, fields, comments)
        self.not_erased.sort()

    def _event(self, event: dict[str, Any], fields: frozenset[str], comments: bool) -> None:
        data, salts = dict(event["data"] or {}), dict(event["salts"] or {})
        changed: dict[str, Any] = {}
        if self._personal & data.keys():
            self.personal_present = True
            self._erased_fields |= self._personal & data.keys()
            self.secrets += [str(data[k]) for k in self._personal & data.keys() if data[k] not in (None, "")]
            data = {k: v for k, v in data.items() if k not in self._personal}
            changed["data"] = data
        names: set[str] = set()
        if event["action"] in FIELD_ACTIONS:
            names |= fields & data.keys()
        if comments:
            names |= TEXT_KEYS.get(event["action"], frozenset()) & data.keys()
            if event["comment"]:
                if _own(event, COMMENT):
                    self.secrets.append(event["comment"])
                    salts.pop(COMMENT, None)
                    changed.update(comment=None, salts=salts or None)
                    self.texts += 1
                else:
                    self.not_erased.append(NotErased(event["seq"], "comment", OLD_FORMAT))
        for name in sorted(names):
            value = data[name]
            if value in (None, ""):
                continue
            what = f"field '{name}'" if event["action"] in FIELD_ACTIONS else _WHAT.get(name, name)
            if not _own(event, name):
                self.not_erased.append(NotErased(event["seq"], what, OLD_FORMAT))
                continue
            self.secrets.append(str(value))
            data = {k: v for k, v in data.items() if k != name}
            salts.pop(name, None)
            changed.update(data=data, salts=salts or None)
            if event["action"] in FIELD_ACTIONS:
                self._erased_fields.add(name)
            else:
                self.texts += 1
        if changed:
            self.updates[event["id"]] = changed

    def fields(self, row: dict[str, Any]) -> set[str]:
        """The fields erased, from the history or from the row."""
        return self._erased_fields | (self._personal & row.keys())


def _own(event: dict[str, Any], name: str) -> bool:
    """Whether the event holds `name` by a digest of its own salt (so it can be erased)."""
    digest = (event["digests"] or {}).get(name)
    return isinstance(digest, str) and digest.startswith(OWN)


def mail_told(mail: MailErased) -> str:
    """What a person is told of the mail: what was erased, given up, and out of reach."""
    parts = [f"erased from {mail.changed} message(s) in the outbox"]
    if mail.cancelled:
        parts.append(f"{mail.cancelled} message(s) to the resident not yet sent are cancelled")
    return "; ".join(parts) + (
        f"; {mail.delivered} message(s) already delivered to the resident are out of reach (sent .eml files,"
        " mailboxes)" if mail.delivered else "; mail already delivered (sent .eml files, mailboxes) is out of reach")


def _erase_mail(conn: sa.Connection, case_id: int, values: set[str], *, resident: bool = True) -> MailErased:
    """Erase every erased value from the text of the case's messages; with `resident` (personal
    data erased), also the resident's address, and give up their messages still waiting."""
    secrets = sorted((v for v in values if len(v) >= SHORTEST), key=len, reverse=True)
    changed = cancelled = delivered = 0
    for row in store.mail_of(conn, case_id):
        mark = _MARK.get(row["language"], _MARK["en"])
        update: dict[str, Any] = {}
        for column in ("to_name", "subject", "context", "last_error"):
            scrubbed = _scrub(row[column], secrets, mark)
            if scrubbed != row[column]:
                update[column] = scrubbed
        if resident and row["recipient"] == REQUESTER:
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
