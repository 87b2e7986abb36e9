"""Need-to-know reads (SPEC §13.2): who may read a case, who sees its personal values.

A case may be read by the people of a unit that holds or has held it, the administrator of its
portfolio and their assistants, and auditors. A partner's people (units of `kind: partner`)
read a case only while their unit holds it, and see its history from the hand-over to them
onwards. Personal values are shown only to the unit holding the case, the head of the unit that
closed it, and auditors; everyone else sees them hidden.

In a single-office installation (nobody has a `login`) a reading command run without `--as`
reads everything, as before: identities are taken as given there anyway. With `--as`, or when
identities are established, the rules apply to the person who acts; a login that maps to nobody
reads nothing.

Pure: the caller reads the case's hand-overs (`holdings`) from its events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.identity import Identity
from engine.core.organisation import Organisation
from engine.errors import Refused

HIDDEN_JSON = "(hidden)"
"""A personal value the reader may not see, in JSON."""
HIDDEN_TEXT = {"nl": "(afgeschermd)", "en": "(hidden)"}
"""The same in text, in the organisation's language."""

HOLDING_ACTIONS = ("created", "transition", "migrated")
"""The events that can move a case to another unit (the ones `holdings` reads)."""


@dataclass(frozen=True)
class Reader:
    """Who reads. `everything` when the rules do not apply (a single-office installation's
    login, without `--as`); otherwise `id` is the person or administrator whose rights apply."""

    id: str
    login: str
    everything: bool = False


@dataclass(frozen=True)
class Access:
    """What a reader may see of one case."""

    case: bool
    """Whether the case may be read at all (shown, listed, its history, its triggers)."""
    personal: bool
    """Whether its personal values are shown."""
    since_seq: int = 0
    """The history is shown from this event on (a partner: from the hand-over to it)."""
    reason: str = ""
    """Why not, when `case` is False (or `personal` is), for the refusal's message."""


EVERYTHING = Access(True, True)


def reader_of(identity: Identity) -> Reader:
    """The reader a command's identity makes. A login that maps to nobody, where identities
    are established, reads nothing: refused (exit 1), naming the login."""
    if not identity.established and not identity.declared:
        return Reader(identity.actor, identity.login, everything=True)
    if identity.established and identity.person is None and not identity.declared:
        raise Refused(f"your login '{identity.login}' maps to nobody in the organisation (no person has"
                      f" 'login: {identity.login}'): it reads nothing; ask an operator to add it to the"
                      " organisation file")
    return Reader(identity.actor, identity.login)


def holdings(
    events: Iterable[Mapping[str, Any]], first_version: int, owner_of: Callable[[int, str], str | None],
) -> list[tuple[int, str | None]]:
    """The case's holders in order: (seq of the event that moved it there, unit), one entry per
    change of unit. `events` are its created/transition/migrated events in order;
    `owner_of(version, state)` is the owner of a state in a version of its request type (None for
    a final state, or a state that version lacks)."""
    version = first_version
    out: list[tuple[int, str | None]] = []
    for event in events:
        if event["action"] == "migrated":
            data = event.get("data") or {}
            if isinstance(data.get("to_version"), int):
                version = data["to_version"]
        state = event.get("to_state")
        if state is None:
            continue
        unit = owner_of(version, state)
        if not out or out[-1][1] != unit:
            out.append((int(event["seq"]), unit))
    return out


def first_version(events: Iterable[Mapping[str, Any]], current: int) -> int:
    """The version a case was opened on: before its first migration's `from_version`."""
    for event in events:
        if event["action"] == "migrated":
            data = event.get("data") or {}
            if isinstance(data.get("from_version"), int):
                return int(data["from_version"])
    return current


def closing_unit(held: list[tuple[int, str | None]]) -> str | None:
    """The unit that closed a case: the last unit that held it."""
    for _seq, unit in reversed(held):
        if unit is not None:
            return unit
    return None


def quick(org: Organisation, reader: Reader, *, owner: str | None, portfolio: str | None) -> Access | None:
    """The decision when the case's hand-overs are not needed (everything, an auditor, the
    people of the department holding it, an administrator of its portfolio who holds no unit
    role); None when they are (`decide`)."""
    if reader.everything or org.is_auditor(reader.id):
        return EVERYTHING
    if owner is not None and org.rank(reader.id, owner) > 0 and _kind(org, owner) != "partner":
        return EVERYTHING
    if org.acting_for(reader.id, portfolio) is not None and not _units(org, reader.id):
        return Access(True, False)
    return None


def decide(
    org: Organisation, reader: Reader, *, ref: str, owner: str | None, portfolio: str | None,
    held: list[tuple[int, str | None]],
) -> Access:
    """What `reader` may see of case `ref`, now held by `owner` (None when closed), of a request
    type in `portfolio`, held over time as `held` says (see `holdings`)."""
    known = quick(org, reader, owner=owner, portfolio=portfolio)
    if known is not None:
        return known
    units = _units(org, reader.id)
    person = org.people.get(reader.id)
    closer = closing_unit(held) if owner is None else None
    holds_now = owner is not None and owner in units
    personal = holds_now or (person is not None and closer is not None and person.roles.get(closer) == "head")
    held_units = {unit for _seq, unit in held if unit is not None}
    if any(_kind(org, u) != "partner" for u in units & held_units) or org.acting_for(reader.id, portfolio):
        return Access(True, personal)
    if holds_now:
        assert owner is not None
        return Access(True, True, handed_over(held, owner))
    if personal:
        assert closer is not None
        return Access(True, True, handed_over(held, closer))
    partners = {u for u in units if _kind(org, u) == "partner"}
    if partners & held_units:
        why = (f"it is no longer held by {', '.join(sorted(partners & held_units))};"
               " a partner reads a case only while it holds it")
    elif reader.id not in org.people and reader.id not in org.administrators:
        why = f"'{reader.id}' is nobody in the organisation"
    else:
        why = f"it was never held by a unit {reader.id} belongs to"
        admin = org.administrator_for(portfolio) if portfolio else None
        if admin is not None:
            why += f", nor is {reader.id} its portfolio's administrator ({admin.id}) or their assistant"
    return Access(False, False, reason=f"{reader.id} may not read {ref}: {why} (need-to-know)")


def _kind(org: Organisation, unit: str) -> str:
    found = org.units.get(unit)
    return found.kind if found is not None else "department"


def handed_over(held: list[tuple[int, str | None]], unit: str) -> int:
    """The event that handed the case to `unit` for its current stay there."""
    for seq, holder in reversed(held):
        if holder == unit:
            return seq
    return 0


def _units(org: Organisation, reader: str) -> set[str]:
    person = org.people.get(reader)
    if person is None:
        return set()
    return {unit for unit, role in person.roles.items() if unit in org.units and role in ("staff", "lead", "head")}


def require(access: Access) -> Access:
    """The access, or exit 1 naming why the case may not be read."""
    if not access.case:
        raise Refused(access.reason)
    return access


def hide(data: Mapping[str, Any] | None, personal: frozenset[str], mark: str = HIDDEN_JSON) -> dict[str, Any] | None:
    """`data` with the values of personal fields replaced by `mark` (a value that is not there,
    or None, stays so: a hidden field never pretends to hold something)."""
    if data is None:
        return None
    return {k: (mark if k in personal and v is not None else v) for k, v in data.items()}


def shows_personal(data: Mapping[str, Any] | None, personal: frozenset[str]) -> bool:
    """Whether showing `data` shows any personal value (what the access log records)."""
    return bool(data) and any(v is not None for k, v in (data or {}).items() if k in personal)
