"""Who is acting (SPEC §13.1): established by the login, or taken as given.

When anyone in the organisation carries a `login`, the person acting is the one whose login
is the account that runs the command (on PostgreSQL the connection's authenticated
`session_user`, on SQLite the operating-system user): `--as` (or `LOKET_USER`) may then only
name that same person, an administrator the person assists, or anyone at all on a simulation
database. Without any `login`, `--as` and the login name are taken as given, as a
single-office installation always did.

Pure: the caller finds the login and says whether the database is a simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.organisation import Organisation
from engine.errors import InvalidValue, Refused

ESTABLISHED = "established"
"""Mode: identities are established by the login."""
AS_GIVEN = "taken as given"
"""Mode: nobody in the organisation has a login; `--as` and the login name are believed."""


@dataclass(frozen=True)
class Identity:
    """Who acts, and how that was decided.

    `actor` is the id whose rights apply (a person, an administrator, or — when identities
    are taken as given, or the login maps to nobody — just a name). `person` is whom the
    login maps to (None when nobody, or when identities are taken as given); when `actor` is
    an administrator that `person` assists, the action is the assistant's on the
    administrator's behalf (SPEC §12.1).
    """

    actor: str
    login: str
    person: str | None
    mode: str
    declared: bool = False
    """Whether `actor` came from `--as` / `LOKET_USER`."""
    assisting: bool = False
    """An assistant acting for their administrator: `person` acts, on behalf of `actor`."""

    @property
    def established(self) -> bool:
        return self.mode == ESTABLISHED

    def acting_person(self) -> str:
        """The actor of a command that changes something. With established identities, a
        login that maps to nobody acts as nobody: refused (exit 1), naming the login."""
        if self.established and self.person is None and not self.declared:
            raise Refused(f"your login '{self.login}' maps to nobody in the organisation (no person has"
                          f" 'login: {self.login}'); ask an operator to add it to the organisation file")
        return self.actor


def mode(org: Organisation | None) -> str:
    return ESTABLISHED if org is not None and org.identities_established else AS_GIVEN


def resolve(org: Organisation | None, *, login: str, declared: str | None, simulation: bool) -> Identity:
    """The identity of a run by `login` that declared `declared` (`--as`, or None).

    Refused (exit 1) when identities are established, the database is no simulation, and
    `declared` is neither the login's own person nor an administrator that person assists.
    """
    if declared is not None and not declared.strip():
        raise InvalidValue("--as (or LOKET_USER) is empty: give the id of a person in the organisation")
    if org is None or not org.identities_established:
        return Identity(declared or login, login, None, AS_GIVEN, declared is not None)
    person = org.logins().get(login)
    if declared is None:
        return Identity(person or login, login, person, ESTABLISHED)
    if declared in (person, login) and person is not None:
        return Identity(person, login, person, ESTABLISHED)
    if person is not None and org.acts_for(person, declared):
        return Identity(declared, login, person, ESTABLISHED, True, assisting=True)
    if simulation:
        return Identity(declared, login, person, ESTABLISHED, True)
    if person is None:
        whom = f"your login '{login}' maps to nobody in the organisation (no person has 'login: {login}')"
    else:
        who = org.recipient(person)
        whom = f"your login '{login}' is {person}" + (f" ({who.name})" if who is not None else "")
    raise Refused(f"--as {declared} is refused: {whom}; --as (or LOKET_USER) is only for a simulation"
                  " database, an assistant acting for their administrator, or yourself")


def require_operator(org: Organisation | None, identity: Identity, command: str, *,
                     auditors: bool = False) -> None:
    """Configuration is for an operator when the organisation names any (exit 1 otherwise,
    naming who may); without operators it stays open to whoever can write the database.
    With `auditors`, the organisation's auditors may too (a seal only adds protection)."""
    operators = org.operators() if org is not None else []
    if not operators or identity.actor in operators:
        return
    assert org is not None
    if auditors:
        operators += [p.id for p in org.people.values() if p.roles.get("*") == "auditor"]
        if identity.actor in operators:
            return
    acting = f"you act as '{identity.actor}'"
    if identity.established and identity.person is None and not identity.declared:
        acting = f"your login '{identity.login}' maps to nobody in the organisation"
    whom = "an operator or auditor" if auditors else "an operator"
    raise Refused(f"{command} is for {whom} ({', '.join(operators)}); {acting}")


def require_service(identity: Identity, command: str) -> None:
    """The worker acts as `system` and runs under a service account of its own: a login that
    is a person's is refused (exit 1), so that nobody's rights — or absence — hide in it."""
    if identity.established and identity.person is not None:
        raise Refused(f"{command} runs under a service account, not a person's login: '{identity.login}' is"
                      f" {identity.person}; run it as an account (a system user, or on PostgreSQL a role) that no"
                      " one in the organisation carries as their login")
