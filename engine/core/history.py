"""The tamper-evident history: canonical JSON, salted digests of personal data, the hash chain.

Each event's hash is SHA-256 over the canonical JSON of its content followed by the previous
event's hash, so editing, deleting or inserting a row breaks every hash after it. Personal
values (fields marked `personal: true`) enter the chain only as salted digests: erasing the
value and the salt later (redaction, AVG) leaves the chain verifiable and the value unlinkable.

Free text (SPEC §15) enters the chain the same way from schema revision 0006 on: an event's
comment, the values of its `text` fields, an instruction's text and a suspension's or
extension's reason are hashed by a digest under a salt of their own (kept in the event's
`salts`, outside the hash), so that one text can be erased with its salt without touching
another. Which form an item has is told by the event's `digests`, which the hash covers: a key
there (the comment's is :data:`COMMENT`) means "by digest", and a digest of its own salt
starts with :data:`OWN`. Events written before keep their texts in clear: turning one into the
other changes what is hashed, so an attacker cannot switch an event's format unnoticed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
_UTC = dt.UTC


def timestamp(value: dt.datetime | None) -> str | None:
    """The one textual form of an instant in the chain: UTC with microseconds."""
    if value is None:
        return None
    # The sweep writes the same few instants (its `now`, the deadlines of a day) over and over:
    # they are formatted once. An instant is a value, never somebody's data.
    found = _TIMESTAMPS.get(value)
    if found is None:
        if len(_TIMESTAMPS) >= 4096:
            _TIMESTAMPS.clear()
        found = _TIMESTAMPS[value] = _format(value)
    return found


def _format(value: dt.datetime) -> str:
    # isoformat is several times faster than strftime, and this runs for every event written.
    if value.tzinfo is not _UTC:
        value = value.astimezone(_UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


_TIMESTAMPS: dict[dt.datetime, str] = {}


def canonical(obj: Any) -> bytes:
    return _CANONICAL.encode(obj).encode()


# What `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` uses, made
# once: `dumps` with any option makes a new encoder for every call (every event hashed).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_salt() -> str:
    return secrets.token_hex(16)


def personal_digest(salt: str, field: str, value: Any) -> str:
    return hashlib.sha256(b"%s\x00%s\x00%s" % (salt.encode(), field.encode(), canonical(value))).hexdigest()


COMMENT = "#comment"
"""The key of an event's comment in its `digests` (no field name starts with '#')."""
OWN = "s:"
"""How a digest made under a salt of its own (free text) starts; a personal field's digest
under the case's salt is the bare 64 hexadecimal characters."""
FIELD_ACTIONS = frozenset({"created", "transition", "data_changed"})
"""The actions whose data holds field values (field name → value)."""
TEXT_KEYS: Mapping[str, frozenset[str]] = {
    "directed": frozenset({"text"}),
    "suspended": frozenset({"reason"}),
    "extended": frozenset({"reason"}),
}
"""Of the other actions, the data keys holding text a person typed (a redaction's own reason
stays in clear: it says why something is gone)."""


def own_digest(salt: str, name: str, value: Any) -> str:
    return OWN + personal_digest(salt, name, value)


def text_keys(action: str, text_fields: frozenset[str]) -> frozenset[str]:
    """The data keys of an event of `action` that are free text."""
    return text_fields if action in FIELD_ACTIONS else TEXT_KEYS.get(action, frozenset())


def free_text_digests(
    action: str, comment: str | None, data: Mapping[str, Any] | None, text_fields: frozenset[str],
    taken: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    """The digests and salts that stand in the chain for an event's free text: its comment and
    the text values in its data (those not in `taken`, already by digest as personal)."""
    digests: dict[str, str] = {}
    salts: dict[str, str] = {}
    if comment:
        salts[COMMENT] = salt = new_salt()
        digests[COMMENT] = own_digest(salt, COMMENT, comment)
    if data:
        for key in text_keys(action, text_fields):
            value = data.get(key)
            if isinstance(value, str) and value and key not in taken:
                salts[key] = salt = new_salt()
                digests[key] = own_digest(salt, key, value)
    return digests, salts


def digests_for(
    data: Mapping[str, Any] | None, personal: frozenset[str], salt: str | None
) -> dict[str, str]:
    """The salted digests that stand in the chain for the personal values in `data`."""
    if not data or not personal or salt is None:
        return {}
    return {k: personal_digest(salt, k, v) for k, v in data.items() if k in personal}


def event_content(
    *,
    ref: str,
    seq: int,
    at: dt.datetime,
    recorded_at: dt.datetime,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    trigger: str | None,
    comment: str | None,
    data: Mapping[str, Any] | None,
    digests: Mapping[str, str] | None,
) -> dict[str, Any]:
    """What the hash covers: every column of the event, personal values and (from revision 0006
    on) free text by digest only."""
    digests = digests or {}
    return {
        "case": ref,
        "seq": seq,
        "at": timestamp(at),
        "recorded_at": timestamp(recorded_at),
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "trigger": trigger,
        "comment": None if COMMENT in digests else comment,
        "data": {k: v for k, v in (data or {}).items() if k not in digests},
        "digests": dict(digests),
    }


def chain_hash(content: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(content) + prev_hash.encode()).hexdigest()


_STRING = json.encoder.encode_basestring  # what `_CANONICAL` writes a string with (ensure_ascii off)


class ContentTemplate:
    """The canonical JSON of events whose content differs only in its case, number and time of
    recording.

    The sweep writes the same `escalated` event (same time, data, state) for every case of a
    group, each with its own reference and number, and each batch with its own `recorded_at`:
    the JSON is the group's text with those filled in, byte for byte what :func:`canonical`
    makes of the whole content (keys sorted, each value through the same encoder), for a
    fraction of the work.
    """

    __slots__ = ("_parts",)

    _HOLES = ("case", "recorded_at", "seq")  # in the order of sorted keys

    def __init__(self, content: Mapping[str, Any]) -> None:
        """From one such content (its own case, number and `recorded_at` are ignored)."""
        if not all(isinstance(key, str) for key in content) or not set(self._HOLES) <= content.keys():
            raise ValueError("an event's content has string keys, among them 'case', 'recorded_at' and 'seq'")
        parts: list[str] = []
        text = "{"
        for n, key in enumerate(sorted(content)):
            text += ("," if n else "") + _STRING(key) + ":"
            if key in self._HOLES:
                parts.append(text)
                text = ""
            else:
                text += _CANONICAL.encode(content[key])
        parts.append(text + "}")
        self._parts = tuple(parts)

    def text(self, ref: str, seq: int, recorded_at: str) -> str:
        """The canonical JSON of the content for this case, number and time of recording (as
        :func:`timestamp` writes it)."""
        head, middle, before_seq, tail = self._parts
        return head + _STRING(ref) + middle + _STRING(recorded_at) + before_seq + int.__repr__(seq) + tail

    def chain_hash(self, ref: str, seq: int, recorded_at: str, prev_hash: str) -> str:
        """:func:`chain_hash` of the content for this case, number and time of recording."""
        return hashlib.sha256((self.text(ref, seq, recorded_at) + prev_hash).encode()).hexdigest()
