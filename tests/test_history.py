"""The hash chain of SPEC §8, as pure functions: what an event's hash commits to.

The hash covers every column of the event; personal values enter only as salted digests, so
erasing a value (redaction) leaves the chain intact while changing it does not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest

from engine.core.history import (
    GENESIS,
    canonical,
    chain_hash,
    digests_for,
    event_content,
    new_salt,
    personal_digest,
    timestamp,
)

AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SALT = "0123456789abcdef0123456789abcdef"
PERSONAL = frozenset({"email", "name"})


def content(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ref": "BI-2026-00001",
        "seq": 2,
        "at": AT,
        "recorded_at": AT + dt.timedelta(milliseconds=5),
        "actor": "c.devries",
        "action": "transition",
        "from_state": "ingediend",
        "to_state": "beoordeling",
        "trigger": "in_behandeling",
        "comment": "ontvangen",
        "data": {"amount": "100", "email": "bewoner@voorbeeld.example"},
    }
    values.update(changes)
    values.setdefault("digests", digests_for(values["data"], PERSONAL, SALT))
    return event_content(**values)


def test_canonical_json_does_not_depend_on_key_order_or_spacing() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "é"}}
    b = {"a": {"x": "é", "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b) == '{"a":{"x":"é","y":[1,2]},"b":1}'.encode()


def test_timestamps_are_one_text_form_in_utc_whatever_the_zone() -> None:
    amsterdam = dt.timezone(dt.timedelta(hours=1))
    assert timestamp(AT) == "2026-03-02T09:00:00.000000Z"
    assert timestamp(AT.astimezone(amsterdam)) == "2026-03-02T09:00:00.000000Z"
    assert timestamp(None) is None


def test_the_hash_is_sha256_of_the_content_and_the_previous_hash() -> None:
    c = content()
    expected = hashlib.sha256(canonical(c) + GENESIS.encode()).hexdigest()
    assert chain_hash(c, GENESIS) == expected
    assert chain_hash(content(), GENESIS) == expected  # stable: same content, same hash
    assert chain_hash(c, "f" * 64) != expected  # the link to the previous event counts


CHANGES = [
    ("ref", "BI-2026-00002"),
    ("seq", 3),
    ("at", AT + dt.timedelta(microseconds=1)),
    ("recorded_at", AT),
    ("actor", "b.bakker"),
    ("action", "comment"),
    ("from_state", "besluit"),
    ("to_state", None),
    ("trigger", "naar_besluit"),
    ("comment", "ontvangen."),
    ("data", {"amount": "101", "email": "bewoner@voorbeeld.example"}),
    ("data", {"amount": "100", "email": "ander@voorbeeld.example"}),
    ("data", {"amount": "100", "email": "bewoner@voorbeeld.example", "title": "x"}),
]


@pytest.mark.parametrize(("name", "value"), CHANGES, ids=[f"{n}={v!r}"[:50] for n, v in CHANGES])
def test_changing_any_part_of_an_event_changes_its_hash(name: str, value: Any) -> None:
    assert chain_hash(content(**{name: value}), GENESIS) != chain_hash(content(), GENESIS)


def test_personal_values_enter_the_chain_only_as_digests() -> None:
    c = content()
    assert c["data"] == {"amount": "100"}
    assert set(c["digests"]) == {"email"}
    assert "bewoner@voorbeeld.example" not in canonical(c).decode()
    assert c["digests"]["email"] == personal_digest(SALT, "email", "bewoner@voorbeeld.example")


def test_a_digest_depends_on_salt_field_and_value() -> None:
    base = personal_digest(SALT, "email", "bewoner@voorbeeld.example")
    assert personal_digest(new_salt(), "email", "bewoner@voorbeeld.example") != base
    assert personal_digest(SALT, "name", "bewoner@voorbeeld.example") != base
    assert personal_digest(SALT, "email", "ander@voorbeeld.example") != base


def test_another_salt_gives_another_hash() -> None:
    data = {"amount": "100", "email": "bewoner@voorbeeld.example"}
    other = digests_for(data, PERSONAL, "f" * 32)
    assert chain_hash(content(digests=other), GENESIS) != chain_hash(content(), GENESIS)


def test_redacting_a_personal_value_keeps_the_content_and_hash() -> None:
    before = content()
    digests = before["digests"]
    after = content(data={"amount": "100"}, digests=digests)
    assert after == before
    assert chain_hash(after, GENESIS) == chain_hash(before, GENESIS)


def test_no_salt_or_no_personal_fields_means_no_digests() -> None:
    data = {"amount": "100", "email": "bewoner@voorbeeld.example"}
    assert digests_for(data, PERSONAL, None) == {}
    assert digests_for(data, frozenset(), SALT) == {}
    assert digests_for(None, PERSONAL, SALT) == {}
    assert new_salt() != new_salt()
    assert len(new_salt()) == 32
