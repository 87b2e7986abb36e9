"""Finding the login that runs a command, and from it who acts (`engine.core.identity`).

- On PostgreSQL the login is the connection's `session_user`: the role PostgreSQL itself
  authenticated (password, LDAP, GSSAPI, certificate — whatever `pg_hba.conf` says), which
  `SET ROLE` cannot change.
- On SQLite it is the operating-system user that runs the process, from the user database
  (`pwd`), not from `$USER` or `$LOGNAME`, which anyone can set; the database file's
  permissions are the boundary there.

When identities are taken as given (nobody in the organisation has a `login`), the login name
is `getpass.getuser()` as before, environment included: nothing is established then anyway
(on PostgreSQL the login recorded with a change is still the `session_user`).
"""

from __future__ import annotations

import dataclasses
import getpass
import os

import sqlalchemy as sa

from engine.core.identity import Identity, resolve
from engine.core.organisation import Organisation


def os_login() -> str:
    """The operating-system account running this process (its effective user)."""
    try:
        import pwd
    except ImportError:  # not on a POSIX system
        return getpass.getuser()
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a user id without an entry (a container run with --user 12345)
        return str(os.geteuid())


def given_login() -> str:
    """The login name as a single-office installation takes it: `getpass.getuser()`."""
    try:
        return getpass.getuser()
    except OSError:  # no name for this user id anywhere
        return str(os.geteuid()) if hasattr(os, "geteuid") else "unknown"


def database_login(engine: sa.Engine) -> str:
    """The login the database authenticated (PostgreSQL), or the operating-system user (SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT session_user").scalar_one())
    return os_login()


def establish(engine: sa.Engine, org: Organisation | None, declared: str | None, *, simulation: bool) -> Identity:
    """Who runs this command on `engine` (see `engine.core.identity.resolve`).

    When identities are taken as given on PostgreSQL, the login name still names whom `--as`
    defaults to, but the login recorded (the configuration history, the access log) is the
    connection's `session_user`: the database refuses any other from a login in `loket_users`
    once `db grants --apply` has run (`engine.store.grants`)."""
    if org is not None and org.identities_established:
        return resolve(org, login=database_login(engine), declared=declared, simulation=simulation)
    found = resolve(org, login=given_login(), declared=declared, simulation=simulation)
    if engine.dialect.name == "postgresql":
        found = dataclasses.replace(found, login=database_login(engine))
    return found
