"""The organisation file: units, people and their roles, administrators, closed days.

Roles are ranked within a unit (staff < lead < head); `auditor` reads everything and changes
nothing; `operator` runs the installation (it is told when mail cannot be delivered) and
changes no case; `"*"` stands for every unit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.calendar import FIRST_YEAR, LAST_YEAR
from engine.core.checking import Checker
from engine.core.fields import EMAIL, parse_date
from engine.core.yamlfile import Locator, no_lines
from engine.errors import NotFound

RANKS = {"staff": 1, "lead": 2, "head": 3}
ROLES = (*RANKS, "auditor", "operator")
EVERY_UNIT_ONLY = ("operator",)
"""Roles that only make sense for every unit at once (``"*"``)."""
UNIT_KINDS = ("department", "partner")
LANGUAGES = ("nl", "en")
# Matched with fullmatch: `$` would also accept an id that ends in a newline.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED_IDS = ("system", "assignee", "lead", "head", "administrator", "requester", "unit")


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    kind: str
    email: str | None = None
    """The unit's shared mailbox: a hand-over to the unit is told there, rather than to its
    leads, and residents are given it as their contact."""


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    roles: Mapping[str, str] = field(default_factory=dict)
    login: str | None = None
    """The person's operating-system account and, on PostgreSQL, database login (SPEC §13.1)."""


@dataclass(frozen=True)
class Administrator:
    id: str
    name: str
    email: str
    portfolios: tuple[str, ...] = ()
    login: str | None = None
    assistants: tuple[str, ...] = ()
    """People who act for the administrator (SPEC §12.1): comment and give instructions on
    cases of the portfolios, recorded as theirs, on the administrator's behalf."""


@dataclass(frozen=True)
class Organisation:
    municipality: str
    language: str
    timezone: str
    closed_days: tuple[dt.date, ...]
    administrators: Mapping[str, Administrator]
    units: Mapping[str, Unit]
    people: Mapping[str, Person]
    mail_domain: str | None = None
    """The municipality's mail domain (``voorbeeld.nl``): mail is sent from it by default."""

    def person(self, person_id: str) -> Person:
        try:
            return self.people[person_id]
        except KeyError:
            raise NotFound(f"unknown person {person_id!r}") from None

    def rank(self, person_id: str, unit: str | None) -> int:
        """0 when the person holds no changing role in the unit, else staff 1, lead 2, head 3."""
        person = self.people.get(person_id)
        if person is None or unit is None:
            return 0
        return RANKS.get(person.roles.get(unit, ""), 0)

    def may(self, person_id: str, unit: str | None, roles: tuple[str, ...]) -> bool:
        """Whether the person holds one of `roles` (or a higher one) in `unit`."""
        have = self.rank(person_id, unit)
        return have > 0 and any(have >= RANKS[r] for r in roles)

    def is_auditor(self, person_id: str) -> bool:
        person = self.people.get(person_id)
        return person is not None and "auditor" in person.roles.values()

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[Person]] = {}
        for person in self.people.values():
            for unit, role in person.roles.items():
                index.setdefault((unit, role), []).append(person)
        object.__setattr__(self, "_holders", index)

    def holders(self, unit: str, role: str) -> list[Person]:
        """The people holding exactly this role in the unit (a unit's lead, its head), in file order."""
        return list(self._holders.get((unit, role), ()))  # type: ignore[attr-defined]

    def administrator_for(self, portfolio: str) -> Administrator | None:
        for admin in self.administrators.values():
            if portfolio in admin.portfolios:
                return admin
        return None

    def recipient(self, some_id: str) -> Person | Administrator | None:
        return self.people.get(some_id) or self.administrators.get(some_id)

    def portfolios(self) -> set[str]:
        return {p for a in self.administrators.values() for p in a.portfolios}

    def acting_for(self, person_id: str, portfolio: str | None) -> Administrator | None:
        """The administrator of `portfolio` when `person_id` is that administrator or one of
        their assistants (SPEC §12.1); None for anyone else."""
        admin = self.administrator_for(portfolio) if portfolio else None
        if admin is not None and (person_id == admin.id or person_id in admin.assistants):
            return admin
        return None

    # -- identity (SPEC §13.1) -----------------------------------------------------------------

    def logins(self) -> dict[str, str]:
        """Login → the id of the person or administrator who carries it."""
        found = {a.login: a.id for a in self.administrators.values() if a.login}
        found.update({p.login: p.id for p in self.people.values() if p.login})
        return found

    @property
    def identities_established(self) -> bool:
        """Whether anyone carries a `login`: then who acts is established by the login, and
        otherwise `--as` and the login name are taken as given (a single-office installation)."""
        return any(p.login for p in self.people.values()) or any(a.login for a in self.administrators.values())

    def operators(self) -> list[str]:
        """The people holding the operator role (`roles: {"*": operator}`), in file order."""
        return [p.id for p in self.people.values() if p.roles.get("*") == "operator"]

    def acts_for(self, person_id: str, administrator_id: str) -> bool:
        """Whether `person_id` is one of the administrator's assistants."""
        admin = self.administrators.get(administrator_id)
        return admin is not None and person_id in admin.assistants


ORG_KEYS = ("municipality", "language", "timezone", "mail_domain", "closed_days", "administrators", "units",
            "people")


def parse_organisation(data: Any, file: str = "<organisation>", locate: Locator = no_lines) -> Organisation:
    """Build and validate an organisation; raises InvalidDefinition listing every problem."""
    check = Checker(file, locate)
    root = check.mapping(data, ())
    if root is None:
        check.raise_if_any()
        raise AssertionError("unreachable")
    check.keys(root, (), ORG_KEYS, required=("municipality", "units", "people"))
    municipality = _name(check, root.get("municipality"), ("municipality",)) or ""
    language = root.get("language", "nl")
    if language not in LANGUAGES:
        check.problem(("language",), f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    timezone = root.get("timezone", "Europe/Amsterdam")
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        check.problem(("timezone",), f"unknown timezone {timezone!r}")
    mail_domain = _domain(check, root["mail_domain"], ("mail_domain",)) if "mail_domain" in root else None
    closed = _closed_days(check, root.get("closed_days") or [])
    units = _units(check, root.get("units"))
    admins = _administrators(check, root.get("administrators") or [])
    people = _people(check, root.get("people"), units)
    for admin_id in admins:
        if admin_id in people:
            check.problem(("administrators",), f"id '{admin_id}' is both an administrator and a person")
    _check_assistants(check, root.get("administrators"), admins, people)
    _check_logins(check, root, admins, people)
    check.raise_if_any()
    return Organisation(municipality, str(language), str(timezone), closed, admins, units, people, mail_domain)


def _closed_days(check: Checker, value: Any) -> tuple[dt.date, ...]:
    if not isinstance(value, list):
        check.problem(("closed_days",), "expected a list of dates (YYYY-MM-DD)")
        return ()
    days = []
    for i, item in enumerate(value):
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            day = item
        elif isinstance(item, str):
            try:
                day = parse_date(item.strip())
            except ValueError as exc:
                check.problem(("closed_days", i), f"{exc}, got {item!r}")
                continue
        else:  # a number (20261228) or a date with a time
            check.problem(("closed_days", i), f"expected a date (YYYY-MM-DD), got {item!r}")
            continue
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            check.problem(("closed_days", i), f"closed day {day.isoformat()} is outside the working-day"
                                              f" calendar ({FIRST_YEAR}–{LAST_YEAR})")
            continue
        days.append(day)
    return tuple(sorted(set(days)))


def _units(check: Checker, value: Any) -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    root = check.mapping(value, ("units",))
    if root is None:
        return units
    if not root:
        check.problem(("units",), "an organisation needs at least one unit")
    for unit_id, spec in root.items():
        path = ("units", unit_id)
        if not isinstance(unit_id, str) or not _ID.fullmatch(unit_id) or unit_id == "*":
            check.problem(path, f"invalid unit id {unit_id!r}")
            continue
        body = check.mapping(spec, path)
        if body is None:
            continue
        check.keys(body, path, ("name", "kind", "email"), required=("name",))
        name = _name(check, body.get("name"), (*path, "name")) or unit_id
        kind = body.get("kind", "department")
        if kind not in UNIT_KINDS:
            check.problem((*path, "kind"), f"kind must be one of {', '.join(UNIT_KINDS)}, got {kind!r}")
        email = (_email(check, body["email"], (*path, "email")) or None) if "email" in body else None
        units[unit_id] = Unit(unit_id, name, str(kind), email)
    return units


def _administrators(check: Checker, value: Any) -> dict[str, Administrator]:
    admins: dict[str, Administrator] = {}
    if not isinstance(value, list):
        check.problem(("administrators",), "expected a list of administrators")
        return admins
    seen_portfolios: dict[str, str] = {}
    for i, item in enumerate(value):
        path = ("administrators", i)
        body = check.mapping(item, path)
        if body is None:
            continue
        check.keys(body, path, ("id", "name", "email", "portfolios", "login", "assistants"),
                   required=("id", "name", "email"))
        admin_id = _person_id(check, body.get("id"), (*path, "id"))
        name = _name(check, body.get("name"), (*path, "name")) or ""
        email = _email(check, body.get("email"), (*path, "email"))
        portfolios = body.get("portfolios") or []
        if not isinstance(portfolios, list) or not all(isinstance(p, str) for p in portfolios):
            check.problem((*path, "portfolios"), "expected a list of portfolio names")
            portfolios = []
        for j, p in enumerate(portfolios):
            # Matched exactly against a request type's portfolio, which is read stripped.
            if _name(check, p, (*path, "portfolios", j)) not in (None, p):
                check.problem((*path, "portfolios", j), f"portfolio {p!r} has spaces around it")
        for p in portfolios:
            if p in seen_portfolios:
                check.problem((*path, "portfolios"), f"portfolio '{p}' is also held by '{seen_portfolios[p]}'")
            seen_portfolios[p] = admin_id or "?"
        if admin_id:
            if admin_id in admins:
                check.problem((*path, "id"), f"duplicate administrator id '{admin_id}'")
            admins[admin_id] = Administrator(admin_id, name, email, tuple(portfolios),
                                             login=_login(check, body.get("login"), (*path, "login")),
                                             assistants=_assistant_ids(body))
    return admins


def _assistant_ids(body: Mapping[str, Any]) -> tuple[str, ...]:
    """An administrator's `assistants`, as far as they are a list of strings (checked, with
    the people they must name, by `_check_assistants`)."""
    value = body.get("assistants") or []
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(item for item in value if isinstance(item, str)))


def _check_assistants(check: Checker, value: Any, admins: Mapping[str, Administrator],
                      people: Mapping[str, Person]) -> None:
    """Each administrator's `assistants` must be a list of the ids of people in the file."""
    if not isinstance(value, list):
        return
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or "assistants" not in item:
            continue
        path = ("administrators", i, "assistants")
        assistants = item["assistants"]
        if assistants is None:
            continue
        if not isinstance(assistants, list):
            check.problem(path, "expected a list of person ids")
            continue
        for j, person_id in enumerate(assistants):
            if isinstance(person_id, str) and person_id in assistants[:j]:
                check.problem((*path, j), f"'{person_id}' is named twice")
            elif not isinstance(person_id, str) or person_id not in people:
                shown = person_id if isinstance(person_id, str) else repr(person_id)
                extra = (" (an administrator cannot assist another)"
                         if isinstance(person_id, str) and person_id in admins else "")
                check.problem((*path, j), f"unknown person '{shown}'{extra}: an assistant must be one of the"
                                          " organisation's people")


def _people(check: Checker, value: Any, units: Mapping[str, Unit]) -> dict[str, Person]:
    people: dict[str, Person] = {}
    if not isinstance(value, list):
        check.problem(("people",), "expected a list of people")
        return people
    for i, item in enumerate(value):
        path = ("people", i)
        body = check.mapping(item, path)
        if body is None:
            continue
        check.keys(body, path, ("id", "name", "email", "roles", "login"), required=("id", "name", "email"))
        person_id = _person_id(check, body.get("id"), (*path, "id"))
        name = _name(check, body.get("name"), (*path, "name")) or ""
        email = _email(check, body.get("email"), (*path, "email"))
        roles: dict[str, str] = {}
        raw_roles = body.get("roles") or {}
        if not isinstance(raw_roles, Mapping):
            check.problem((*path, "roles"), "expected a mapping of unit: role")
            raw_roles = {}
        for unit, role in raw_roles.items():
            if unit != "*" and unit not in units:
                check.problem((*path, "roles", unit), f"unknown unit {unit!r}")
            if role not in ROLES:
                check.problem((*path, "roles", unit), f"unknown role {role!r} (roles: {', '.join(ROLES)})")
            elif unit == "*" and role not in ("auditor", *EVERY_UNIT_ONLY):
                check.problem((*path, "roles", unit),
                              "only the auditor and operator roles may be given for every unit ('*')")
            elif unit != "*" and role in EVERY_UNIT_ONLY:
                check.problem((*path, "roles", unit), f"the {role} role is given for every unit at once ('*')")
            roles[str(unit)] = str(role)
        if person_id:
            if person_id in people:
                check.problem((*path, "id"), f"duplicate person id '{person_id}'")
            people[person_id] = Person(person_id, name, email, roles,
                                       _login(check, body.get("login"), (*path, "login")))
    return people


_LOGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]*")
LOGIN_MAX = 63
"""A PostgreSQL role name is at most 63 bytes; an operating-system account name is shorter."""


def _login(check: Checker, value: Any, path: tuple[Any, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _LOGIN.fullmatch(value) or len(value.encode()) > LOGIN_MAX:
        check.problem(path, f"invalid login {value!r} (an account name: letters, digits, '.', '_', '@' and '-',"
                            f" at most {LOGIN_MAX} bytes)")
        return None
    return value


def _check_logins(check: Checker, root: Mapping[str, Any], admins: Mapping[str, Administrator],
                  people: Mapping[str, Person]) -> None:
    """A login belongs to one person only, and is no other person's id: `--as` and the login
    name must never point at two different people."""
    places: dict[str, tuple[Any, ...]] = {}
    for key in ("administrators", "people"):
        for i, body in enumerate(root.get(key) or []):
            if isinstance(body, Mapping) and isinstance(body.get("id"), str):
                places.setdefault(body["id"], (key, i, "login"))
    holders: dict[str, str] = {}
    everyone: list[Person | Administrator] = [*admins.values(), *people.values()]
    for who in everyone:
        if who.login is None:
            continue
        path = places.get(who.id, ("people",))
        if who.login in holders:
            check.problem(path, f"login '{who.login}' is also given to '{holders[who.login]}'")
            continue
        holders[who.login] = who.id
        if who.login != who.id and (who.login in people or who.login in admins):
            check.problem(path, f"login '{who.login}' of '{who.id}' is the id of another person")


def _person_id(check: Checker, value: Any, path: tuple[Any, ...]) -> str | None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        check.problem(path, f"invalid id {value!r} (letters, digits, '.', '_' and '-')")
        return None
    if value in RESERVED_IDS:
        check.problem(path, f"'{value}' is a reserved word and cannot be an id")
        return None
    return value


def _name(check: Checker, value: Any, path: tuple[Any, ...]) -> str | None:
    """A name shown to people and written into email headers: see :meth:`Checker.one_line`."""
    return check.one_line(value, path, "a name")


def _email(check: Checker, value: Any, path: tuple[Any, ...]) -> str:
    if not isinstance(value, str) or not EMAIL.fullmatch(value):
        check.problem(path, f"invalid email address {value!r}")
        return ""
    return value


def _domain(check: Checker, value: Any, path: tuple[Any, ...]) -> str | None:
    """A mail domain: what may follow the `@` of an address."""
    if not isinstance(value, str) or not EMAIL.fullmatch(f"wijkloket@{value}"):
        check.problem(path, f"invalid mail domain {value!r} (a domain name such as voorbeeld.nl)")
        return None
    return value


def organisation_to_data(org: Organisation) -> dict[str, Any]:
    """The plain form stored in the database and read back through parse_organisation; keys
    an organisation does not use (a unit's mailbox, the mail domain) are left out."""
    data: dict[str, Any] = {
        "municipality": org.municipality,
        "language": org.language,
        "timezone": org.timezone,
    }
    if org.mail_domain is not None:
        data["mail_domain"] = org.mail_domain
    return {
        **data,
        "closed_days": [d.isoformat() for d in org.closed_days],
        "administrators": [
            {"id": a.id, "name": a.name, "email": a.email, "portfolios": list(a.portfolios),
             **({"login": a.login} if a.login else {}),
             **({"assistants": list(a.assistants)} if a.assistants else {})}
            for a in org.administrators.values()
        ],
        "units": {u.id: {"name": u.name, "kind": u.kind, **({"email": u.email} if u.email else {})}
                  for u in org.units.values()},
        "people": [
            {"id": p.id, "name": p.name, "email": p.email, "roles": dict(p.roles),
             **({"login": p.login} if p.login else {})}
            for p in org.people.values()
        ],
    }
