"""The configuration history (SPEC §13.1): every change to how the installation runs — an
organisation or request type loaded, a seal, the schema made or upgraded — is one event in a
hash chain of its own, like a case's (`engine.core.history`): who, when, what changed.

Each event names the rows it added (an organisation row with the digest of its data, request
type versions with theirs, a seal with its digest), so `audit verify` can tell a row written
behind the history's back — an organisation inserted with SQL that makes a clerk head of every
unit — from one that was loaded.

Pure: the store reads and writes the rows (`engine.store.config`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from engine.core.history import canonical, chain_hash, timestamp

ORG_LOAD = "org_load"
WORKFLOW_LOAD = "workflow_load"
AUDIT_SEAL = "audit_seal"
INIT = "init"
DB_GRANTS = "db_grants"
"""`loket db grants --apply`: the PostgreSQL privileges of people's logins (SPEC §13.3)."""
STAYS_REPAIRED = "stays_repaired"
"""`loket db repair-stays`: the `case_stay` rows of cases rebuilt from their history."""
HISTORY_STARTED = "history_started"
"""Written by the schema upgrade that introduced the history: what was configured before it."""

def data_digest(data: Any) -> str:
    """The digest of a stored definition (an organisation's data, a request type's definition)."""
    return hashlib.sha256(canonical(data)).hexdigest()


def event_content(*, seq: int, at: dt.datetime, recorded_at: dt.datetime, actor: str, login: str | None,
                  action: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """What a configuration event's hash covers: every column of it."""
    return {"seq": seq, "at": timestamp(at), "recorded_at": timestamp(recorded_at), "actor": actor,
            "login": login, "action": action, "detail": dict(detail)}


def config_hash(content: Mapping[str, Any], prev_hash: str) -> str:
    return chain_hash(content, prev_hash)


# -- what an organisation load changed ---------------------------------------------------------


def organisation_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two organisations' stored data, by id: people, their roles and
    logins, units, administrators (and their assistants) and the settings. No names or email
    addresses: the history keeps who changed what, the organisation rows keep the rest."""
    changes: dict[str, Any] = {} if before else {"first": True}
    before = before or {}
    settings = [key for key in ("municipality", "language", "timezone", "mail_domain", "closed_days")
                if before.get(key) != after.get(key)]
    if settings:
        changes["settings"] = settings
    old_units, new_units = dict(before.get("units") or {}), dict(after.get("units") or {})
    _added_removed(changes, "units", old_units, new_units)
    changed_units = sorted(u for u in old_units.keys() & new_units.keys() if old_units[u] != new_units[u])
    if changed_units:
        changes["units_changed"] = changed_units
    old_people = {p["id"]: p for p in before.get("people") or []}
    new_people = {p["id"]: p for p in after.get("people") or []}
    _added_removed(changes, "people", old_people, new_people)
    roles: dict[str, Any] = {}
    logins: dict[str, Any] = {}
    details: list[str] = []
    for pid in sorted(old_people.keys() & new_people.keys()):
        old, new = old_people[pid], new_people[pid]
        if (old.get("roles") or {}) != (new.get("roles") or {}):
            roles[pid] = {"before": old.get("roles") or {}, "after": new.get("roles") or {}}
        if old.get("login") != new.get("login"):
            logins[pid] = {"before": old.get("login"), "after": new.get("login")}
        if (old.get("name"), old.get("email")) != (new.get("name"), new.get("email")):
            details.append(pid)
    for pid in sorted(new_people.keys() - old_people.keys()):
        roles[pid] = {"before": {}, "after": new_people[pid].get("roles") or {}}
        if new_people[pid].get("login"):
            logins[pid] = {"before": None, "after": new_people[pid]["login"]}
    if roles:
        changes["roles"] = roles
    if details:
        changes["people_details"] = details
    old_admins = {a["id"]: a for a in before.get("administrators") or []}
    new_admins = {a["id"]: a for a in after.get("administrators") or []}
    _added_removed(changes, "administrators", old_admins, new_admins)
    changed_admins: dict[str, list[str]] = {}
    for aid in sorted(old_admins.keys() & new_admins.keys()):
        what = [key for key in ("name", "email", "portfolios", "assistants")
                if old_admins[aid].get(key) != new_admins[aid].get(key)]
        if old_admins[aid].get("login") != new_admins[aid].get("login"):
            logins[aid] = {"before": old_admins[aid].get("login"), "after": new_admins[aid].get("login")}
        if what:
            changed_admins[aid] = what
    for aid in sorted(new_admins.keys() - old_admins.keys()):
        if new_admins[aid].get("login"):
            logins[aid] = {"before": None, "after": new_admins[aid]["login"]}
    if changed_admins:
        changes["administrators_changed"] = changed_admins
    if logins:
        changes["logins"] = dict(sorted(logins.items()))
    return changes


def _added_removed(changes: dict[str, Any], name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    added, removed = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    if added:
        changes[f"{name}_added"] = added
    if removed:
        changes[f"{name}_removed"] = removed


def describe(action: str, detail: Mapping[str, Any]) -> str:
    """One line saying what a configuration event changed (`loket audit config`)."""
    if action == ORG_LOAD:
        changes = detail.get("changes") or {}
        if changes.get("first"):
            people, units, admins, logins = (len(changes.get(key) or ()) for key in (
                "people_added", "units_added", "administrators_added", "logins"))
            return (f"organisation {detail.get('organisation')} loaded, the first: {people} people, {units} units,"
                    f" {admins} administrators, {logins} login(s)")
        parts = []
        for key in ("people_added", "people_removed", "units_added", "units_removed", "administrators_added",
                    "administrators_removed"):
            if changes.get(key):
                parts.append(f"{key.replace('_', ' ')}: {_few(changes[key])}")
        for key in ("roles", "logins"):
            if changes.get(key):
                parts.append(f"{key} of {_few(list(changes[key]))}")
        if changes.get("administrators_changed"):
            parts.append(f"administrators changed: {_few(list(changes['administrators_changed']))}")
        if changes.get("settings"):
            parts.append(f"settings: {', '.join(changes['settings'])}")
        return f"organisation {detail.get('organisation')} loaded" + (f" ({'; '.join(parts)})" if parts
                                                                       else " (no change)")
    if action == WORKFLOW_LOAD:
        return "loaded " + ", ".join(f"{t['key']} v{t['version']}" for t in detail.get("types") or [])
    if action == AUDIT_SEAL:
        return f"seal {detail.get('seal')} ({detail.get('cases')} cases, digest {str(detail.get('digest'))[:12]}…)"
    if action == INIT:
        kind = "simulation database" if detail.get("simulation") else "database"
        schema = detail.get("schema") or {}
        if not schema:
            return f"made a {kind}"
        if schema.get("from") is None:
            return f"{kind} created (schema {schema.get('to')})"
        return f"{kind} schema upgraded from {schema.get('from')} to {schema.get('to')}"
    if action == DB_GRANTS:
        return (f"PostgreSQL privileges of role {detail.get('role')} applied (owner {detail.get('owner')},"
                f" SQL sha256 {str(detail.get('sha256'))[:12]}…)")
    if action == STAYS_REPAIRED:
        if detail.get("tally") is True:
            return "stay counts (stay_tally) counted again from the stay rows"
        refs, cases = list(detail.get("refs") or [])[:5], detail.get("cases") or 0
        named = (f": {', '.join(refs)}" + (f", … ({cases})" if cases > len(refs) else "")) if refs else ""
        return (f"stay rows of {detail.get('cases')} case(s) rebuilt from their history ({detail.get('removed')}"
                f" removed, {detail.get('written')} written){named}")
    if action == HISTORY_STARTED:
        return (f"history started at schema {detail.get('schema')}: {len(detail.get('organisations') or [])}"
                f" organisation(s), {len(detail.get('request_types') or [])} request type version(s),"
                f" {len(detail.get('seals') or [])} seal(s) loaded before")
    return action


def _few(ids: list[str], shown: int = 5) -> str:
    """Ids for one line: the first few, and how many there are when there are more."""
    return ", ".join(ids) if len(ids) <= shown else f"{', '.join(ids[:shown])}, … ({len(ids)})"
