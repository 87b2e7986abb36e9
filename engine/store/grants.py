"""PostgreSQL's part in keeping history append-only (SPEC §13.3): the `loket_users` role and
what it may do, and the few privileged changes as functions of the installation's owner.

People's logins are members of `loket_users` (`CREATE ROLE name LOGIN IN ROLE loket_users`).
The role may read every table and add rows to them, but the history tables — the case events,
the seals and their heads, the configuration history, the tombstones, the access log, the
loaded organisations and request types — it may not UPDATE, DELETE or TRUNCATE. Only the work
rows change in normal work: the case rows (their history replays to them, and `audit verify`
checks that it does), the outbox, the reference counters, and two keys of `loket_meta` (the
redaction-pending mark and the retention lease; row-level security keeps the rest, such as
the simulation mark, out of its reach).

Two changes to history are part of the product, and run as functions owned by the owner role
(`SECURITY DEFINER`, with their `search_path` pinned, EXECUTE for `loket_users` only):

- `loket_erase_event(event_id, changes)`: a redaction's erasure of one event's values. It only
  removes: the new `data` and `salts` keep a subset of the old keys with the old values, the
  comment becomes NULL or stays; nothing else of the row can change. And only in a transaction
  that has appended a `redacted` event to that case's chain.
- `loket_destroy_cases(case_ids)`: a retention run's destruction. Each case must be closed and
  have a tombstone inserted in the same transaction, holding the case's ref and chain head and
  naming a recorded `retention_run` in the configuration history; then every row of the case
  goes, in every table that holds them (:func:`engine.store.retention.case_tables`).

The report's counts of the ended stays (`stay_tally`, schema 0014) are read-only to the role
too: a trigger on `case_stay`, a function that runs as the owner role, counts each row added
there, so a login can change them only by adding stays, which `audit verify` checks against
the history.

Nor may a login in `loket_users` add history in someone else's name: `BEFORE INSERT` triggers
(functions owned by the owner role) require a configuration event's or access-log line's
`login` to be the session's own `session_user`, and a case event's `actor` to be the person
the newest loaded organisation maps that login to (or an administrator the person assists);
only a login that maps to nobody — the worker's service role — may record `system` steps (or steps
under its own login name, as its retention runs do).
Likewise a tombstone's `destroyed_by` must be the login's person (or, for a login that maps to
nobody, that login's name or `system`), so a retention run cannot be put in someone else's name.
The actor and destroyer checks are off when nobody has a login and on a simulation database, as `--as` is;
the owner role, its members and superusers are not checked (they could drop the triggers).

What the functions cannot check, the CLI decides: who may redact (a unit's head, an operator's
retention run), which values to erase, and whether a retention term has passed.

All SQL is built here, printed by `loket db grants` and run as printed by `--apply`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.store.redact import ERASE, PENDING_KEY
from engine.store.retention import DESTROY, LEASE_KEY, case_tables
from engine.store.tables import metadata

GROUP = "loket_users"
"""The role whose members are people's logins (and the worker's service role)."""

READ, ADD, CHANGE = "SELECT", "SELECT, INSERT", "SELECT, INSERT, UPDATE"
PRIVILEGES: dict[str, str] = {
    "alembic_version": READ,
    "loket_meta": "SELECT, INSERT, UPDATE, DELETE",  # writes limited to META_KEYS by row-level security
    "organisation": ADD,
    "request_type": ADD,
    "ref_counter": CHANGE,
    "cases": CHANGE,
    "case_event": ADD,
    "escalation": ADD,
    "outbox": CHANGE,
    "audit_seal": ADD,
    "audit_seal_head": ADD,
    "config_event": ADD,
    "retention_tombstone": ADD,
    "access_log": ADD,
    "case_stay": ADD,  # derived from the history, written when a stay ends, never changed
    "stay_tally": READ,  # counted by the owner's trigger on case_stay (TALLY_FUNCTION)
}
"""What `loket_users` may do with each table: never UPDATE, DELETE or TRUNCATE of history."""
HISTORY = ("case_event", "audit_seal", "audit_seal_head", "config_event", "retention_tombstone", "access_log",
           "organisation", "request_type", "escalation", "case_stay")
"""The tables `loket_users` may only read and add to."""
META_KEYS = (PENDING_KEY, LEASE_KEY)
"""The `loket_meta` rows that normal work writes: a redaction's pending mark, the retention lease."""
RETENTION_RUN = "retention_run"
REDACTED = "redacted"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Installation:
    """What `grants_sql` needs to know of the database: its schema, the owner role of its
    tables, and the sequences behind their ids."""

    def __init__(self, schema: str, owner: str, sequences: dict[str, str]) -> None:
        self.schema = schema
        self.owner = owner
        self.sequences = sequences


def installation(conn: sa.Connection) -> Installation | None:
    """The schema, owner and id sequences of the tables; None without a Wijkloket schema."""
    schema = str(conn.exec_driver_sql("SELECT current_schema()").scalar_one())
    owner = conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = :s AND tablename = 'case_event'"),
                         {"s": schema}).scalar()
    if owner is None:
        return None
    sequences = {}
    for table in metadata.sorted_tables:
        if "id" not in table.c:
            continue
        found = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                             {"t": f"{_quote(schema)}.{_quote(table.name)}"}).scalar()
        if found:
            sequences[table.name] = str(found)
    return Installation(schema, str(owner), sequences)


def unruled_tables() -> list[str]:
    """Tables without a rule in PRIVILEGES: a new table must say what `loket_users` may do."""
    return sorted(({t.name for t in metadata.sorted_tables} | {"alembic_version"}) - PRIVILEGES.keys())


def grants_sql(inst: Installation) -> list[str]:
    """The statements, in order, that `db grants --apply` runs in one transaction. Running
    them again changes nothing: the role is made only if absent, privileges are revoked and
    granted afresh, the policies and functions replaced."""
    missing = unruled_tables()
    if missing:
        raise ValueError(f"no privileges decided for table(s) {', '.join(missing)}")
    group, owner, schema = _quote(GROUP), _quote(inst.owner), _quote(inst.schema)
    out = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(GROUP)}) THEN"
        f" CREATE ROLE {group} NOLOGIN; END IF;"
        " EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"GRANT USAGE ON SCHEMA {schema} TO {group}",
    ]
    for table, privileges in PRIVILEGES.items():
        name = f"{schema}.{_quote(table)}"
        out.append(f"REVOKE ALL ON TABLE {name} FROM {group}")
        out.append(f"GRANT {privileges} ON TABLE {name} TO {group}")
    for table in sorted(inst.sequences):
        if "INSERT" in PRIVILEGES[table]:
            out.append(f"REVOKE ALL ON SEQUENCE {inst.sequences[table]} FROM {group}")
            out.append(f"GRANT USAGE ON SEQUENCE {inst.sequences[table]} TO {group}")
    meta = f"{schema}.{_quote('loket_meta')}"
    keys = ", ".join(_literal(k) for k in META_KEYS)
    out += [
        f"ALTER TABLE {meta} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS loket_users_read ON {meta}",
        f"CREATE POLICY loket_users_read ON {meta} FOR SELECT TO {group} USING (true)",
        f"DROP POLICY IF EXISTS loket_users_write ON {meta}",
        f"CREATE POLICY loket_users_write ON {meta} FOR ALL TO {group}"
        f" USING (key IN ({keys})) WITH CHECK (key IN ({keys}))",
    ]
    for name, signature, body in (_erase_function(), _destroy_function()):
        function = f"{schema}.{name}({signature})"
        out += [
            f"CREATE OR REPLACE FUNCTION {schema}.{name}({signature}) RETURNS integer LANGUAGE plpgsql"
            f" SECURITY DEFINER SET search_path = {schema}, pg_temp AS $fn${body}$fn$",
            f"ALTER FUNCTION {function} OWNER TO {owner}",
            f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {function} TO {group}",
        ]
    # Made by migration 0014 as whoever ran it: it counts as the owner role.
    out.append(f"ALTER FUNCTION {schema}.{TALLY_FUNCTION}() OWNER TO {owner}")
    for name, body, tables in (_login_trigger(inst.owner), _actor_trigger(inst.owner),
                               _destroyer_trigger(inst.owner)):
        function = f"{schema}.{name}()"
        out += [
            f"CREATE OR REPLACE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql"
            f" SET search_path = {schema}, pg_temp AS $fn${body}$fn$",
            f"ALTER FUNCTION {function} OWNER TO {owner}",
        ]
        for table in tables:
            out += [
                f"DROP TRIGGER IF EXISTS {name} ON {schema}.{_quote(table)}",
                f"CREATE TRIGGER {name} BEFORE INSERT ON {schema}.{_quote(table)}"
                f" FOR EACH ROW EXECUTE FUNCTION {function}",
            ]
    return out


TALLY_FUNCTION = "loket_tally_stays"
"""The trigger function (`SECURITY DEFINER`) that counts `case_stay`'s rows into `stay_tally`."""
LOGIN_CHECK = "loket_check_login"
"""The trigger that keeps a people's login from recording a row in another login's name."""
LOGIN_TABLES = ("config_event", "access_log")
"""The history tables whose rows record the login that wrote them."""
ACTOR_CHECK = "loket_check_actor"
"""The trigger that keeps a people's login from recording a case event as someone else."""
ACTOR_TABLES = ("case_event",)
"""The history tables whose rows record only who acted (an id in the organisation)."""
DESTROYER_CHECK = "loket_check_destroyer"
"""The trigger that keeps a people's login from recording a destruction as someone else's."""
DESTROYER_TABLES = ("retention_tombstone",)
"""The history tables whose rows record who destroyed a case."""
SYSTEM = "system"


def _checked(owner: str) -> str:
    """SQL: the session is a login in `loket_users` (whose rows the triggers check), not one that
    may act as the owner role (which could drop the triggers anyway), nor a superuser."""
    return (f"pg_has_role(session_user, {_literal(GROUP)}, 'MEMBER')"
            f" AND NOT pg_has_role(session_user, {_literal(owner)}, 'MEMBER')")


def _login_trigger(owner: str) -> tuple[str, str, tuple[str, ...]]:
    body = f"""
BEGIN
  IF {_checked(owner)} AND NEW.login IS DISTINCT FROM session_user::text THEN
    RAISE EXCEPTION '%: the login % may not record a row in the name of login %', TG_TABLE_NAME, session_user,
      coalesce(NEW.login, '(none)') USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
"""
    return LOGIN_CHECK, body, LOGIN_TABLES


def _mapped_person(owner: str) -> str:
    """SQL: the start of a trigger that lets the row pass unchecked for a session that is not
    `_checked`, on a simulation database and when identities are taken as given (nobody has a
    login), and otherwise puts in `me` the person (or administrator) the newest loaded
    organisation maps `session_user` to, NULL for nobody."""
    return f"""DECLARE
  org jsonb;
  people jsonb;
  admins jsonb;
  me text;
BEGIN
  IF NOT ({_checked(owner)}) THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT 1 FROM loket_meta WHERE key = 'simulation' AND value = 'true') THEN
    RETURN NEW;
  END IF;
  SELECT data::jsonb INTO org FROM organisation ORDER BY id DESC LIMIT 1;
  people := CASE WHEN jsonb_typeof(org -> 'people') = 'array' THEN org -> 'people' ELSE '[]'::jsonb END;
  admins := CASE WHEN jsonb_typeof(org -> 'administrators') = 'array' THEN org -> 'administrators'
                 ELSE '[]'::jsonb END;
  IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(people || admins) AS p
                  WHERE jsonb_typeof(p) = 'object' AND coalesce(p ->> 'login', '') <> '') THEN
    RETURN NEW;
  END IF;
  SELECT p.value ->> 'id' INTO me FROM jsonb_array_elements(people || admins) WITH ORDINALITY AS p(value, n)
   WHERE jsonb_typeof(p.value) = 'object' AND p.value ->> 'login' = session_user::text ORDER BY p.n LIMIT 1;"""


def _actor_trigger(owner: str) -> tuple[str, str, tuple[str, ...]]:
    """A case event names who acted, not the login: the current organisation (its newest loaded
    row) says whom the session's login maps to. That person may act as themselves, or for an
    administrator they assist; a login that maps to nobody (the worker's service role) only as
    `system` or under its own name (what the worker's retention runs record for it, as the
    tombstone check allows). Open when identities are taken as given (nobody has a login) and on a simulation
    database, where `--as` plays every part."""
    body = f"""
{_mapped_person(owner)}
  IF me IS NULL THEN
    IF NEW.actor IN (session_user::text, {_literal(SYSTEM)}) THEN
      RETURN NEW;
    END IF;
  ELSIF NEW.actor = me OR EXISTS (SELECT 1 FROM jsonb_array_elements(admins) AS a
                                   WHERE jsonb_typeof(a) = 'object' AND a ->> 'id' = NEW.actor
                                     AND jsonb_typeof(a -> 'assistants') = 'array' AND a -> 'assistants' ? me) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '%: the login % (%) may not record an event as %', TG_TABLE_NAME, session_user,
    coalesce(me, 'nobody in the organisation'), NEW.actor USING ERRCODE = 'insufficient_privilege';
END
"""
    return ACTOR_CHECK, body, ACTOR_TABLES


def _destroyer_trigger(owner: str) -> tuple[str, str, tuple[str, ...]]:
    """A tombstone names who destroyed the case (`destroyed_by`): the person the session's
    login maps to, or — for a login that maps to nobody, the worker's service role — that
    login's own name (what a retention run records for it) or `system`. Open on a simulation
    database and when identities are taken as given, as the actor check is."""
    body = f"""
{_mapped_person(owner)}
  IF me IS NULL THEN
    IF NEW.destroyed_by IN (session_user::text, {_literal(SYSTEM)}) THEN
      RETURN NEW;
    END IF;
  ELSIF NEW.destroyed_by = me THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '%: the login % (%) may not record a destruction by %', TG_TABLE_NAME, session_user,
    coalesce(me, 'nobody in the organisation'), NEW.destroyed_by USING ERRCODE = 'insufficient_privilege';
END
"""
    return DESTROYER_CHECK, body, DESTROYER_TABLES


_WRITTEN_HERE = "xmin = pg_current_xact_id()::xid"
"""A row inserted (or last updated) by the current transaction."""


def _only_removes(old: str, new: str) -> str:
    """SQL: the JSON object `new` keeps some of `old`'s keys with their values, and adds none."""
    return (f"COALESCE({new} IS NULL OR (jsonb_typeof({new}) = 'object' AND jsonb_typeof({old}) = 'object'"
            f" AND NOT EXISTS (SELECT 1 FROM jsonb_each({new}) AS kept"
            f" WHERE {old} -> kept.key IS DISTINCT FROM kept.value)), false)")


def _erase_function() -> tuple[str, str, str]:
    body = f"""
DECLARE
  ev record;
  new_data jsonb;
  new_comment text;
  new_salts jsonb;
BEGIN
  SELECT id, case_id, data, comment, salts INTO ev FROM case_event WHERE id = event_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION '{ERASE}: no event %', event_id USING ERRCODE = 'no_data_found';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM case_event AS r WHERE r.case_id = ev.case_id AND r.action = {_literal(REDACTED)}
                 AND r.{_WRITTEN_HERE}) THEN
    RAISE EXCEPTION '{ERASE}: event % may only be erased in the transaction that records the redaction of its case',
      event_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF changes IS NULL OR jsonb_typeof(changes) <> 'object'
     OR EXISTS (SELECT 1 FROM jsonb_object_keys(changes) AS k WHERE k NOT IN ('data', 'comment', 'salts')) THEN
    RAISE EXCEPTION '{ERASE}: changes may only name data, comment and salts' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  new_data := CASE WHEN changes ? 'data' THEN NULLIF(changes -> 'data', 'null'::jsonb) ELSE ev.data END;
  new_comment := CASE WHEN changes ? 'comment' THEN changes ->> 'comment' ELSE ev.comment END;
  new_salts := CASE WHEN changes ? 'salts' THEN NULLIF(changes -> 'salts', 'null'::jsonb) ELSE ev.salts END;
  IF NOT {_only_removes('ev.data', 'new_data')} OR NOT {_only_removes('ev.salts', 'new_salts')}
     OR (new_comment IS NOT NULL AND new_comment IS DISTINCT FROM ev.comment) THEN
    RAISE EXCEPTION '{ERASE}: an erasure only removes values; event % would gain or change one', event_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE case_event SET data = new_data, comment = new_comment, salts = new_salts WHERE id = event_id;
  RETURN 1;
END
"""
    return ERASE, "event_id bigint, changes jsonb", body


def _destroy_function() -> tuple[str, str, str]:
    deletes = "\n".join(f"  DELETE FROM {_quote(t.name)} WHERE case_id = ANY(case_ids);" for t in case_tables())
    body = f"""
DECLARE
  refused bigint;
  destroyed integer;
BEGIN
  SELECT u.id INTO refused FROM unnest(case_ids) AS u(id)
    LEFT JOIN cases AS c ON c.id = u.id
    LEFT JOIN retention_tombstone AS t ON t.case_id = u.id
   WHERE u.id IS NULL OR c.id IS NULL OR c.closed_at IS NULL OR t.id IS NULL OR NOT (t.{_WRITTEN_HERE})
      OR t.ref IS DISTINCT FROM c.ref OR t.last_seq IS DISTINCT FROM c.last_seq
      OR t.last_hash IS DISTINCT FROM c.last_hash
      OR NOT EXISTS (SELECT 1 FROM config_event AS e WHERE e.seq = t.run AND e.action = {_literal(RETENTION_RUN)})
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '{DESTROY}: case % is no closed case with its tombstone of a retention run in this transaction',
      refused USING ERRCODE = 'insufficient_privilege';
  END IF;
{deletes}
  DELETE FROM cases WHERE id = ANY(case_ids);
  GET DIAGNOSTICS destroyed = ROW_COUNT;
  RETURN destroyed;
END
"""
    return DESTROY, "case_ids bigint[]", body


def script(statements: list[str]) -> str:
    """The statements as one script for psql, in one transaction."""
    return "BEGIN;\n" + "".join(f"{s};\n" for s in statements) + "COMMIT;\n"


def apply(conn: sa.Connection, statements: list[str]) -> None:
    """Run the statements in the caller's transaction."""
    for statement in statements:
        conn.exec_driver_sql(statement.replace("%", "%%"))


# -- who runs it -------------------------------------------------------------------------------


def login_roles(conn: sa.Connection, owner: str) -> dict[str, Any]:
    """About the connection's role: `user` (current_user), `superuser`, `owner` (may act as
    the tables' owner role), `member` (a member of `loket_users`)."""
    row = conn.execute(sa.text(
        "SELECT current_user AS user, r.rolsuper AS superuser,"
        " pg_has_role(current_user, :owner, 'MEMBER') AS owner,"
        " CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = :group)"
        "   THEN pg_has_role(current_user, :group, 'MEMBER') ELSE false END AS member"
        " FROM pg_roles AS r WHERE r.rolname = current_user"), {"owner": owner, "group": GROUP}).mappings().one()
    return dict(row)
