"""The tamper-evident history: canonical JSON, salted digests of personal data, the hash chain.

Each event's hash is SHA-256 over the canonical JSON of its content followed by the previous
event's hash, so editing, deleting or inserting a row breaks every hash after it. Personal
values (fields marked `personal: true`) enter the chain only as salted digests: erasing the
value and the salt later (redaction, AVG) leaves the chain verifiable and the value unlinkable.
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
    # isoformat is several times faster than strftime, and this runs for every event written.
    if value.tzinfo is not _UTC:
        value = value.astimezone(_UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_salt() -> str:
    return secrets.token_hex(16)


def personal_digest(salt: str, field: str, value: Any) -> str:
    return hashlib.sha256(b"%s\x00%s\x00%s" % (salt.encode(), field.encode(), canonical(value))).hexdigest()


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
    """What the hash covers: every column of the event, personal values by digest only."""
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
        "comment": comment,
        "data": {k: v for k, v in (data or {}).items() if k not in digests},
        "digests": dict(digests),
    }


def chain_hash(content: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(content) + prev_hash.encode()).hexdigest()
