"""`loket db grants` (SPEC §13.3): the SQL that makes history append-only for people's logins on
PostgreSQL, printed or applied (`engine.store.grants` builds it and says what it allows), and
the owner-only tasks that such a login is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from engine.core.confighistory import DB_GRANTS
from engine.core.identity import Identity
from engine.errors import ConfigurationError, Refused
from engine.store import grants as store

if TYPE_CHECKING:
    from engine.app.service import Loket

GROUP = store.GROUP


@dataclass(frozen=True)
class Grants:
    owner: str
    statements: list[str]

    @property
    def script(self) -> str:
        return store.script(self.statements)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()


def _postgres_only(loket: Loket) -> None:
    if loket.engine.dialect.name != "postgresql":
        raise ConfigurationError("db grants is a PostgreSQL feature: on SQLite the database file's permissions are"
                                 " the boundary (see docs/postgresql.md)")


def _installation(conn: sa.Connection) -> store.Installation:
    inst = store.installation(conn)
    if inst is None:
        raise ConfigurationError("the database has no Wijkloket schema in its search path: run 'loket init' first")
    return inst


def grants(loket: Loket) -> Grants:
    """The statements `apply` would run on this database."""
    _postgres_only(loket)
    with loket.read() as conn:
        inst = _installation(conn)
    return Grants(inst.owner, store.grants_sql(inst))


def apply(loket: Loket, by: Identity) -> Grants:
    """Run the statements in one transaction as the tables' owner role, with their event in the
    configuration history. An operator's command (when the organisation names operators), by a
    login that is the owner role, a member of it (it acts as the owner for the transaction,
    `SET LOCAL ROLE`), or a superuser."""
    _postgres_only(loket)
    loket.require_operator(by, "db grants")
    with loket.engine.begin() as conn:
        inst = _installation(conn)
        who = store.login_roles(conn, inst.owner)
        if not who["owner"]:
            raise Refused(f"db grants --apply is for the installation's owner role '{inst.owner}' (it owns the"
                          f" tables, and will own the functions); you are connected as '{who['user']}'")
        if who["user"] != inst.owner and not who["superuser"]:
            conn.execute(sa.text("SELECT set_config('role', :owner, true)"), {"owner": inst.owner})
        done = Grants(inst.owner, store.grants_sql(inst))
        store.apply(conn, done.statements)
        loket.record_config(conn, by, DB_GRANTS, {"role": GROUP, "owner": inst.owner, "sha256": done.sha256,
                                                  "statements": len(done.statements)})
    return done


def require_owner(loket: Loket, task: str) -> None:
    """Refuse (exit 1) an owner's task — a schema upgrade, a rewrite of the tables — to a login
    that is not the tables' owner role (nor a member of it, nor a superuser), on PostgreSQL."""
    if loket.engine.dialect.name != "postgresql":
        return
    with loket.read() as conn:
        inst = store.installation(conn)
        if inst is None:
            return
        who = store.login_roles(conn, inst.owner)
    if who["owner"]:
        return
    member = f", a member of {GROUP}" if who["member"] else ""
    raise Refused(f"{task} is a task for the installation's owner role '{inst.owner}': you are connected as"
                  f" '{who['user']}'{member}")
