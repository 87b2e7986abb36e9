"""Pseudonyms for an export (SPEC §15, `loket audit export --pseudonymise`).

An export for a researcher or the ombudsman needs the course of cases, not who was involved:
personal values, free texts and people's ids are replaced by pseudonyms. Each pseudonym is an
HMAC of the value under a secret drawn at random for one export and never stored or shown:

- within one export the same value gets the same pseudonym, so a reader can still follow one
  civil servant's steps, or see that two comments were the same text;
- across exports the pseudonyms cannot be linked (a new secret each time), and without the
  secret a pseudonym cannot be turned back into its value, nor a guess confirmed.

What is replaced, per event:

- the actor (a person's id; the engine's own ``system`` stays);
- the comment;
- in the values of fields (``created``, ``data_changed`` and ``transition`` events): every
  personal field, every ``email`` field and every ``text`` field; other fields (choices, numbers, dates) stay, as
  they say what the case was about without saying who;
- in the data of other events: the people it names (``assignee``, ``released``, ``to``,
  ``on_behalf_of``, ``by`` where it is a person) and the texts people typed (``reason``,
  ``text``);
- the chain hashes are left out: with the other columns, they would let a reader confirm a
  guessed comment or value by recomputing them.

References, types, states, triggers and times stay: they are the course of the case.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

from engine.core.fields import FieldSpec
from engine.core.vocabulary import Action

SYSTEM: Final = "system"

#: Actions whose data holds field values (field name → value).
FIELD_ACTIONS: Final = frozenset({Action.CREATED, Action.DATA_CHANGED, Action.TRANSITION})
#: Keys of other events' data that name a person, per action (``*``: any action).
PERSON_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "*": frozenset({"on_behalf_of"}),
    Action.ASSIGNED: frozenset({"assignee", "released"}),
    Action.ESCALATED: frozenset({"to"}),
    Action.DIRECTED: frozenset({"by"}),
}
#: Keys of other events' data that hold text a person typed, per action (``*``: any action).
TEXT_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "*": frozenset({"text"}),
    Action.SUSPENDED: frozenset({"reason"}),
    Action.EXTENDED: frozenset({"reason"}),
    Action.REDACTED: frozenset({"reason"}),
}


class Pseudonyms:
    """The pseudonyms of one export; the secret lives only as long as this object."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def of(self, kind: str, value: Any) -> str:
        """The pseudonym of ``value`` as a ``kind`` (``persoon``, ``tekst``, ``gegeven``):
        the kind, then 12 hexadecimal characters."""
        text = f"{kind}\x00{value!r}" if not isinstance(value, str) else f"{kind}\x00{value}"
        mac = hmac.new(self._secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return f"{kind}-{mac[:12]}"

    def person(self, value: Any) -> Any:
        if value is None or value == SYSTEM:
            return value
        return self.of("persoon", value)

    def text(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        return self.of("tekst", value)

    def event(self, row: dict[str, Any], fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
        """An export row (see `engine.app.export`) with its people and texts replaced;
        ``fields``: the field specs of its case's request type version."""
        out = dict(row)
        out["actor"] = self.person(row.get("actor"))
        out["comment"] = self.text(row.get("comment"))
        out["prev_hash"] = out["hash"] = None
        data = row.get("data")
        if isinstance(data, dict):
            out["data"] = self._data(str(row.get("action")), data, fields)
        return out

    def _data(self, action: str, data: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
        if action in FIELD_ACTIONS:
            return {name: self._field(fields.get(name), value) for name, value in data.items()}
        people = PERSON_KEYS["*"] | PERSON_KEYS.get(action, frozenset())
        texts = TEXT_KEYS["*"] | TEXT_KEYS.get(action, frozenset())
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in people:
                out[key] = self.person(value)
            elif key in texts:
                out[key] = self.text(value)
            else:
                out[key] = value
        return out

    def _field(self, spec: FieldSpec | None, value: Any) -> Any:
        if value is None:
            return None
        if spec is None:
            # A field the type no longer knows: nothing says it is harmless.
            return self.of("gegeven", value)
        if spec.personal or spec.type == "email":
            return self.of("gegeven", value)
        if spec.type == "text":
            return self.text(value)
        return value
