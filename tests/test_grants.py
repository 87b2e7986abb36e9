"""PostgreSQL enforces append-only history (SPEC §13.3): `loket db grants [--apply]`.

Each test gets a database of its own on the test server, set up by its owner (`postgres`), with
`db grants --apply` run and login roles made for the people: members of `loket_users`, dropped
again afterwards (roles belong to the whole server, not to the database). Those logins then
connect with `psql` — and fail to rewrite history — and with `loket`, which keeps working for
them, redaction and retention included.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.store import grants as store_grants
from tests.conftest import ORG_FILE, PG_SERVER, WORKFLOWS, run_cli
from tests.test_identity import organisation, write

CLERK, HEAD, OPERATOR, AUDITOR = "c.devries", "a.jansen", "o.beheer", "d.smit"
NAME, MAIL = "Geertruida Zwanenburg", "g.zwanenburg.geheim@example.org"
LATER = "2029-03-05T10:00:00+01:00"
"""Past every retention term of the cases made at the test's start."""

pytestmark = pytest.mark.postgres


def _types(folder: Path) -> list[str]:
    """The bundled request types; bewonersinitiatief destroyed a year after it closed (melding
    is redacted after a year, as bundled)."""
    folder.mkdir(exist_ok=True)
    paths = []
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        if path.name == "organisation.yaml":
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "bewonersinitiatief.yaml":
            text += "\nretention: {after: {years: 1}, action: destroy}\n"
        (folder / path.name).write_text(text, encoding="utf-8")
        paths.append(str(folder / path.name))
    return paths


class Place:
    """A database of its own, its owner's URL, and the login roles made for it."""

    def __init__(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        self.capsys, self.tmp_path = capsys, tmp_path
        self.name = f"loket_grants_{uuid.uuid4().hex[:10]}"
        self.admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = sa.engine.make_url(PG_SERVER).set(database=self.name).render_as_string(hide_password=False)
        self.roles: list[str] = []

    def role(self, *, member: bool = True) -> str:
        name = f"loket_test_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN' + (" IN ROLE loket_users" if member else ""))
        self.roles.append(name)
        return name

    def url_for(self, login: str | None) -> str:
        if login is None:
            return self.url
        return sa.engine.make_url(self.url).set(username=login).render_as_string(hide_password=False)

    def cli(self, *args: str, login: str | None = None, now: str | None = None) -> tuple[int, str, str]:
        extra = ("--now", now) if now else ()
        return run_cli(self.capsys, "--db", self.url_for(login), *extra, *args)

    def ok(self, *args: str, login: str | None = None, now: str | None = None) -> str:
        code, out, err = self.cli(*args, login=login, now=now)
        assert code == 0, err
        return out

    def psql(self, login: str, sql: str) -> subprocess.CompletedProcess[str]:
        dsn = sa.engine.make_url(self.url_for(login)).set(drivername="postgresql").render_as_string(
            hide_password=False)
        return subprocess.run(["psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              capture_output=True, text=True, timeout=60)

    def scalar(self, sql: str, **params: Any) -> Any:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()
        finally:
            engine.dispose()

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}"')
            for name in self.roles:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        self.admin.dispose()


@pytest.fixture
def place(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    for name in ("LOKET_DB", "LOKET_USER", "LOKET_NOW", "LOKET_DEBUG", "LOKET_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOKET_MAIL_DIR", str(tmp_path / "mail"))
    made = Place(capsys, tmp_path)
    try:
        yield made
    finally:
        made.close()


def _set_up(place: Place, tmp_path: Path, *init: str) -> tuple[Place, dict[str, str]]:
    """A database set up by its owner with `db grants --apply`, then an organisation whose
    clerk, head, operator and auditor each have a login in loket_users; and the worker's
    service role, a member that is nobody in the organisation."""
    place.ok("init", *init, "--org", str(ORG_FILE))
    place.ok("workflow", "load", *_types(tmp_path / "wf"))
    place.ok("db", "grants", "--apply")
    logins = {who: place.role() for who in (CLERK, HEAD, OPERATOR, AUDITOR, "worker")}
    org = organisation({k: v for k, v in logins.items() if k != "worker"})
    place.ok("org", "load", write(tmp_path / "org.yaml", org))
    return place, logins


@pytest.fixture
def town(place: Place, tmp_path: Path) -> tuple[Place, dict[str, str]]:
    """A simulation database set up by its owner with `db grants --apply`, then an organisation
    whose clerk, head, operator and auditor each have a login in loket_users; and the worker's
    service role, a member that is nobody in the organisation. Returns the place and person → login."""
    return _set_up(place, tmp_path, "--simulation")


def _history(place: Place) -> tuple[Any, ...]:
    return (place.scalar("SELECT count(*) FROM case_event"),
            place.scalar("SELECT md5(string_agg(hash || coalesce(comment, '') || coalesce(data::text, ''), ','"
                         " ORDER BY id)) FROM case_event"),
            place.scalar("SELECT md5(string_agg(digest, ',' ORDER BY id)) FROM audit_seal"),
            place.scalar("SELECT count(*) FROM audit_seal"))


# -- psql: a clerk's own login cannot rewrite history ---------------------------------------------


def test_a_clerk_connecting_with_psql_cannot_update_delete_or_truncate_events_or_seals(
        town: tuple[Place, dict[str, str]]) -> None:
    place, logins = town
    clerk = logins[CLERK]
    ref = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Straatfeest", "--data",
                              f"name={NAME}", "--json", login=clerk))["ref"]
    place.ok("case", "comment", ref, "Geen bezwaar van de buren", login=clerk)
    place.ok("audit", "seal", login=logins[AUDITOR])
    before = _history(place)
    assert before[0] >= 2 and before[3] == 1
    for table in ("case_event", "audit_seal", "audit_seal_head", "config_event", "retention_tombstone"):
        column = {"case_event": "comment = 'herschreven'", "audit_seal": "digest = 'x'",
                  "audit_seal_head": "hash = 'x'", "config_event": "actor = 'x'",
                  "retention_tombstone": "reason = 'x'"}[table]
        for statement in (f"UPDATE {table} SET {column}", f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"):
            done = place.psql(clerk, statement)
            assert done.returncode != 0, statement
            assert f"permission denied for table {table}" in done.stderr, (statement, done.stderr)
    assert _history(place) == before
    # The report's stay counts: written by the owner's trigger alone (adding a stay), never by hand.
    for statement in ("UPDATE stay_tally SET stays = stays + 1", "DELETE FROM stay_tally",
                      "INSERT INTO stay_tally VALUES (63, 'x', 'y', '', -1, 1, 0)"):
        done = place.psql(clerk, statement)
        assert "permission denied for table stay_tally" in done.stderr, (statement, done.stderr)
    # The simulation mark and the other settings are out of reach; the two keys of normal work not.
    done = place.psql(clerk, "INSERT INTO loket_meta (key, value) VALUES ('demo', 'true')")
    assert "row-level security" in done.stderr
    assert place.psql(clerk, "UPDATE loket_meta SET value = 'x' WHERE key = 'simulation'").returncode == 0
    assert place.scalar("SELECT value FROM loket_meta WHERE key = 'simulation'") == "true"
    # The owner's functions are no way around it: outside a redaction, or adding a value, refused.
    event = place.scalar("SELECT min(id) FROM case_event")
    done = place.psql(clerk, f"SELECT loket_erase_event({event}, '{{\"comment\": null}}')")
    assert "only be erased in the transaction that records the redaction" in done.stderr
    case_id = place.scalar("SELECT case_id FROM case_event WHERE id = :e", e=event)
    done = place.psql(clerk, f"""BEGIN;
        INSERT INTO case_event (case_id, seq, at, recorded_at, actor, action, prev_hash, hash)
             VALUES ({case_id}, 999, now(), now(), 'x', 'redacted', 'x', 'x');
        SELECT loket_erase_event({event}, '{{"data": {{"name": "Iemand Anders"}}}}');
        COMMIT;""")
    assert "an erasure only removes values" in done.stderr
    done = place.psql(clerk, f"SELECT loket_destroy_cases(ARRAY[{case_id}]::bigint[])")
    assert "is no closed case with its tombstone" in done.stderr
    assert _history(place) == before
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")


# -- the CLI keeps working for people's logins -----------------------------------------------------


def test_loket_works_for_logins_in_loket_users_redaction_retention_and_the_worker_included(
        town: tuple[Place, dict[str, str]]) -> None:
    place, logins = town
    clerk, head, operator, worker = logins[CLERK], logins[HEAD], logins[OPERATOR], logins["worker"]
    new = ("case", "new", "bewonersinitiatief", "--data", "title=Straatfeest", "--data", f"name={NAME}",
           "--data", f"email={MAIL}", "--json")
    kept = json.loads(place.ok(*new, login=clerk))["ref"]
    place.ok("case", "advance", kept, "in_behandeling", "--comment", f"Gebeld met {NAME}", login=clerk)
    place.ok("case", "comment", kept, f"{NAME} belt terug", login=clerk)
    assert kept in place.ok("case", "list", login=clerk)
    assert NAME in place.ok("case", "show", kept, login=clerk)
    # The head redacts: personal data, then the comments.
    out = place.ok("case", "redact", kept, "--reason", "verzoek van de bewoner", login=head)
    assert "redacted" in out or "erased" in out
    place.ok("case", "redact", kept, "--comments", "--reason", "vrije tekst", login=head)
    assert place.scalar("SELECT count(*) FROM case_event WHERE comment LIKE :n OR data::text LIKE :n",
                        n=f"%{NAME}%") == 0
    # A case destroyed by retention, one redacted by it (melding: redact after a year).
    gone = json.loads(place.ok(*new, login=clerk))["ref"]
    place.ok("case", "advance", gone, "intrekken", "--comment", "ingetrokken", login=clerk)
    stays = "SELECT count(*) FROM case_stay JOIN cases ON cases.id = case_stay.case_id WHERE cases.ref = :r"
    assert place.scalar(stays, r=gone) == 1 and place.scalar(stays, r=kept) == 1  # written by the clerk's login
    gone_id = place.scalar("SELECT id FROM cases WHERE ref = :r", r=gone)
    melding = json.loads(place.ok("case", "new", "melding", "--data", "omschrijving=Lamp kapot", "--data",
                                  "locatie=Dorpsstraat 1", "--data", f"melder_naam={NAME}", "--json",
                                  login=clerk))["ref"]
    place.ok("case", "advance", melding, "niet_in_behandeling_nemen", "--comment", "dubbel", login=clerk)
    # The worker's jobs under its service role: a sweep, delivery, and maintenance (refused: owner's).
    fired = json.loads(place.ok("escalate", "--json", login=worker, now=LATER))["fired"]
    assert fired and place.scalar("SELECT count(*) FROM escalation") > 0
    assert not place.ok("outbox", "send", login=worker, now=LATER).startswith("0 sent")
    out = place.ok("retention", "run", "--reason", "selectielijst 2020", "--json", login=operator, now=LATER)
    result = json.loads(out)
    assert (result["destroyed"], result["redacted"]) == (1, 1), out
    assert place.scalar("SELECT count(*) FROM cases WHERE ref = :r", r=gone) == 0
    assert place.scalar("SELECT count(*) FROM retention_tombstone WHERE ref = :r", r=gone) == 1
    assert place.scalar("SELECT count(*) FROM case_stay WHERE case_id = :i", i=gone_id) == 0  # by loket_destroy_cases
    code, _out, err = place.cli("db", "maintain", login=worker)
    assert code == 1 and err.startswith("Error: db maintain is a task for the installation's owner role"), err
    assert place.ok("audit", "seal", login=logins[AUDITOR])
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")
    assert place.ok("db", "maintain").startswith("rewrote")  # the owner's task
    assert place.ok("audit", "verify").startswith("ok:")


def test_the_worker_maintenance_under_a_service_role_says_it_is_the_owners_task(
        town: tuple[Place, dict[str, str]]) -> None:
    from engine.app.maintenance import run
    from engine.app.service import Loket
    from engine.store.db import open_engine

    place, logins = town
    ref = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Feest", "--data",
                              f"name={NAME}", "--json", login=logins[CLERK]))["ref"]
    place.ok("case", "redact", ref, "--reason", "verzoek", login=logins[HEAD])
    loket = Loket(open_engine(place.url_for(logins["worker"])))
    try:
        result = run(loket)
    finally:
        loket.engine.dispose()
    assert result is not None and not result.clean
    assert "owner role 'postgres'" in result.message
    assert place.scalar("SELECT count(*) FROM loket_meta WHERE key = 'erasure_pending'") == 1


# -- db grants itself --------------------------------------------------------------------------------


def test_the_sql_printed_is_what_apply_runs_and_applying_twice_changes_nothing(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    place.ok("init", "--sample")
    printed = place.ok("db", "grants")
    assert printed.startswith("BEGIN;\n") and printed.endswith("COMMIT;\n")
    ran: list[list[str]] = []
    real = store_grants.apply

    def spy(conn: Any, statements: list[str]) -> None:
        ran.append(list(statements))
        real(conn, statements)

    monkeypatch.setattr(store_grants, "apply", spy)
    place.ok("db", "grants", "--apply")
    assert store_grants.script(ran[0]) == printed
    acl = "SELECT string_agg(relname || '=' || coalesce(relacl::text, ''), ';' ORDER BY relname) FROM pg_class" \
          " WHERE relnamespace = 'public'::regnamespace"
    first = place.scalar(acl)
    place.ok("db", "grants", "--apply")
    assert store_grants.script(ran[1]) == printed == place.ok("db", "grants")
    assert place.scalar(acl) == first
    for table in store_grants.HISTORY:
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            assert place.scalar(f"SELECT has_table_privilege('loket_users', '{table}', '{privilege}')") is False
        assert place.scalar(f"SELECT has_table_privilege('loket_users', '{table}', 'INSERT')") is True
    assert place.scalar("SELECT has_function_privilege('public', 'loket_erase_event(bigint, jsonb)', 'EXECUTE')") \
        is False
    events = [e for e in json.loads(place.ok("audit", "config", "--json")) if e["action"] == "db_grants"]
    assert len(events) == 2 and events[0]["detail"]["role"] == "loket_users"
    assert place.ok("audit", "verify").startswith("ok:")


def test_every_table_has_a_rule_for_loket_users() -> None:
    assert store_grants.unruled_tables() == []
    assert set(store_grants.HISTORY) <= store_grants.PRIVILEGES.keys()
    for table in store_grants.HISTORY:
        assert "UPDATE" not in store_grants.PRIVILEGES[table] and "DELETE" not in store_grants.PRIVILEGES[table]


def test_grants_apply_is_the_operators_and_the_owners(town: tuple[Place, dict[str, str]]) -> None:
    place, logins = town
    code, _out, err = place.cli("db", "grants", "--apply", login=logins[CLERK])
    assert code == 1 and err.startswith("Error: db grants is for an operator"), err
    code, _out, err = place.cli("db", "grants", "--apply", login=logins[OPERATOR])
    assert code == 1 and err == (f"Error: db grants --apply is for the installation's owner role 'postgres' (it owns"
                                 f" the tables, and will own the functions); you are connected as"
                                 f" '{logins[OPERATOR]}'\n"), err
    # A member of the owner role acts as the owner for the transaction, and is recorded as themselves.
    with place.admin.connect() as conn:
        conn.exec_driver_sql(f'GRANT postgres TO "{logins[OPERATOR]}"')
    try:
        place.ok("db", "grants", "--apply", login=logins[OPERATOR])
    finally:
        with place.admin.connect() as conn:
            conn.exec_driver_sql(f'REVOKE postgres FROM "{logins[OPERATOR]}"')
    last = json.loads(place.ok("audit", "config", "--json"))[-1]
    assert (last["action"], last["actor"], last["login"]) == ("db_grants", OPERATOR, logins[OPERATOR])
    assert place.scalar("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'loket_erase_event'") \
        == "postgres"


def test_on_sqlite_db_grants_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "init")[0] == 0
    for args in ((), ("--apply",)):
        code, out, err = run_cli(capsys, "--db", url, "db", "grants", *args)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith("Error: db grants is a PostgreSQL feature"), err


def test_owner_tasks_are_refused_to_a_login_in_loket_users(town: tuple[Place, dict[str, str]]) -> None:
    place, logins = town
    code, _out, err = place.cli("db", "maintain", login=logins[CLERK])
    assert code == 1
    assert err == (f"Error: db maintain is a task for the installation's owner role 'postgres': you are connected"
                   f" as '{logins[CLERK]}', a member of loket_users\n")
    # A schema upgrade: the recorded revision set back, as if the code were newer than the database.
    engine = sa.create_engine(place.url)
    with engine.begin() as conn:
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0007'")
    try:
        code, _out, err = place.cli("init", login=logins[CLERK])
        assert code == 1 and err.startswith("Error: upgrading the schema is a task for the installation's owner"), err
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        engine.dispose()



def test_repairing_stay_rows_is_the_operators_and_the_owners(town: tuple[Place, dict[str, str]]) -> None:
    """`loket_users` may not delete from case_stay: the repair refuses such a login with one
    line and changes nothing; a member of the owner role (acting as it) repairs, recorded as
    themselves. `--check` only reads: any login may run it."""
    place, logins = town
    ref = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Bankje", "--json",
                              login=logins[CLERK]))["ref"]
    place.ok("case", "advance", ref, "in_behandeling", login=logins[CLERK])
    engine = sa.create_engine(place.url)
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("DELETE FROM case_stay").rowcount == 1
    finally:
        engine.dispose()
    code, out, err = place.cli("db", "repair-stays", "--check", login=logins[CLERK])
    assert (code, err) == (1, "") and out.startswith("1 case(s) whose stay rows differ from their history"), out
    code, _out, err = place.cli("db", "repair-stays", login=logins[CLERK])
    assert code == 1 and err.startswith("Error: db repair-stays is for an operator"), err
    code, out, err = place.cli("db", "repair-stays", login=logins[OPERATOR])
    assert (code, out) == (1, "")
    assert err == (f"Error: db repair-stays (it deletes rows of case_stay, which people's logins may only add to) is"
                   f" a task for the installation's owner role 'postgres': you are connected as"
                   f" '{logins[OPERATOR]}', a member of loket_users\n"), err
    # The privilege the refusal is about, and nothing written meanwhile.
    assert place.scalar(f"SELECT has_table_privilege('{logins[OPERATOR]}', 'case_stay', 'DELETE')") is False
    assert place.scalar("SELECT count(*) FROM case_stay") == 0
    code, _out, err = place.cli("audit", "verify", login=logins[CLERK])
    assert code == 1 and "case_stay: stay 1 of" in err and "is missing" in err, err
    with place.admin.connect() as conn:
        conn.exec_driver_sql(f'GRANT postgres TO "{logins[OPERATOR]}"')
    try:
        out = place.ok("db", "repair-stays", "--json", login=logins[OPERATOR])
    finally:
        with place.admin.connect() as conn:
            conn.exec_driver_sql(f'REVOKE postgres FROM "{logins[OPERATOR]}"')
    result = json.loads(out)
    assert (result["cases"], result["removed"], result["written"], result["refs"]) == (1, 0, 1, [ref])
    last = json.loads(place.ok("audit", "config", "--json"))[-1]
    assert (last["action"], last["actor"], last["login"]) == ("stays_repaired", OPERATOR, logins[OPERATOR])
    assert place.scalar("SELECT count(*) FROM case_stay") == 1
    assert place.ok("audit", "verify", login=logins[CLERK]).startswith("ok:")


def test_seals_and_configuration_changes_by_logins_at_once_make_unbroken_chains(
        town: tuple[Place, dict[str, str]]) -> None:
    """The advisory locks that replaced the table locks keep seals and configuration events in
    one line, for logins that may not lock the tables."""
    import threading

    from engine.app.seal import seal
    from engine.app.service import Loket
    from engine.store.db import open_engine

    place, logins = town
    errors: list[BaseException] = []

    def sealer() -> None:
        loket = Loket(open_engine(place.url_for(logins[AUDITOR])))
        try:
            for _ in range(3):
                seal(loket, loket.identity())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            loket.engine.dispose()

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert place.scalar("SELECT count(*) FROM audit_seal") == 9
    assert place.ok("audit", "verify").startswith("ok:")


# -- rows in someone else's name ---------------------------------------------------------------------


def _forged_config_event(place: Place, login: str | None, actor: str) -> str:
    """An INSERT of a configuration event that fits the chain, in the name of `login`."""
    import datetime as dt

    from engine.core import confighistory

    seq = place.scalar("SELECT max(seq) FROM config_event") + 1
    prev = place.scalar("SELECT hash FROM config_event WHERE seq = :s", s=seq - 1)
    at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    detail = {"seal": 1, "digest": "0" * 64, "cases": 0, "events": 0}
    content = confighistory.event_content(seq=seq, at=at, recorded_at=at, actor=actor, login=login,
                                          action="audit_seal", detail=detail)
    written = "NULL" if login is None else f"'{login}'"
    return (f"INSERT INTO config_event (seq, at, recorded_at, actor, login, action, detail, prev_hash, hash)"
            f" VALUES ({seq}, '{at.isoformat()}', '{at.isoformat()}', '{actor}', {written}, 'audit_seal',"
            f" '{json.dumps(detail)}', '{prev}', '{confighistory.config_hash(content, prev)}')")


def _rows(place: Place) -> tuple[Any, ...]:
    return (place.scalar("SELECT count(*) FROM case_event"), place.scalar("SELECT count(*) FROM config_event"),
            place.scalar("SELECT count(*) FROM access_log"),
            place.scalar("SELECT md5(string_agg(hash, ',' ORDER BY seq)) FROM config_event"))


@pytest.fixture
def office(place: Place, tmp_path: Path) -> tuple[Place, dict[str, str]]:
    """Like `town`, but no simulation: who acts is the login's person, `--as` included."""
    return _set_up(place, tmp_path)


def test_a_login_cannot_record_a_configuration_event_or_a_read_in_another_logins_name(
        town: tuple[Place, dict[str, str]]) -> None:
    place, logins = town
    clerk = logins[CLERK]
    before = _rows(place)
    for login, actor in ((logins[OPERATOR], OPERATOR), (None, "system"), ("postgres", "system")):
        done = place.psql(clerk, _forged_config_event(place, login, actor))
        assert done.returncode != 0
        assert f"config_event: the login {clerk} may not record a row in the name of login" in done.stderr, done.stderr
    done = place.psql(clerk, "INSERT INTO access_log (at, recorded_at, reader, login, command)"
                             f" VALUES (now(), now(), '{HEAD}', '{logins[HEAD]}', 'case show')")
    assert "access_log: the login" in done.stderr, done.stderr
    assert _rows(place) == before
    # The same row in the clerk's own name is theirs to add (and then stands under their login).
    done = place.psql(clerk, f"BEGIN; {_forged_config_event(place, clerk, CLERK)}; ROLLBACK;")
    assert done.returncode == 0, done.stderr
    # The CLI records the login PostgreSQL authenticated, so it passes.
    place.ok("audit", "seal", login=logins[AUDITOR])
    last = json.loads(place.ok("audit", "config", "--json"))[-1]
    assert (last["action"], last["actor"], last["login"]) == ("audit_seal", AUDITOR, logins[AUDITOR])
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")


def test_a_login_cannot_record_a_case_event_as_someone_else_and_the_cli_and_the_worker_still_can(
        office: tuple[Place, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from engine.app.clock import SystemClock

    place, logins = office
    clerk, operator, worker = logins[CLERK], logins[OPERATOR], logins["worker"]
    ref = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Straatfeest", "--data",
                              f"name={NAME}", "--json", login=clerk))["ref"]
    place.ok("case", "advance", ref, "in_behandeling", "--comment", "opgepakt", login=clerk)
    place.ok("case", "comment", ref, "Geen bezwaar van de buren", login=clerk)
    code, _out, err = place.cli("--as", HEAD, "case", "comment", ref, "namens de chef", login=clerk)
    assert code == 1 and "--as a.jansen is refused" in err, err
    before = _rows(place)
    case_id, seq, head = (place.scalar("SELECT id FROM cases WHERE ref = :r", r=ref),
                          place.scalar("SELECT last_seq FROM cases WHERE ref = :r", r=ref),
                          place.scalar("SELECT last_hash FROM cases WHERE ref = :r", r=ref))
    for actor in (HEAD, "system", OPERATOR):
        done = place.psql(clerk, "INSERT INTO case_event (case_id, seq, at, recorded_at, actor, action, comment,"
                                 f" prev_hash, hash) VALUES ({case_id}, {seq + 1}, now(), now(), '{actor}', 'comment',"
                                 f" 'akkoord', '{head}', '{'0' * 64}')")
        assert done.returncode != 0
        assert f"case_event: the login {clerk} ({CLERK}) may not record an event as {actor}" in done.stderr, \
            done.stderr
    done = place.psql(clerk, _forged_config_event(place, operator, OPERATOR))
    assert "may not record a row in the name of login" in done.stderr
    assert _rows(place) == before
    # The operator's own configuration change, and the worker's automatic steps, pass.
    org = organisation({k: v for k, v in logins.items() if k != "worker"})
    org["people"][0]["name"] += " (herzien)"
    place.ok("org", "load", write(tmp_path / "org2.yaml", org), login=operator)
    later = dt.datetime.fromisoformat(LATER)
    monkeypatch.setattr(SystemClock, "now", lambda self: later)
    code, _out, err = place.cli("escalate", login=clerk)  # a person's login may not act as the system
    assert code == 1 and err.startswith("Error: refused by the database: case_event: the login"), err
    assert "may not record an event as system" in err
    fired = json.loads(place.ok("escalate", "--json", login=worker))["fired"]
    assert fired
    assert place.scalar("SELECT count(*) FROM case_event WHERE actor = 'system'") > 0
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")


def test_a_noinherit_member_of_the_owner_role_applies_the_grants_with_the_role_set_at_connection(
        town: tuple[Place, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL 15: an administrative login created NOINHERIT, a member of the owner role, has
    none of the owner's privileges until it sets the role: its own `psql` session cannot touch
    history; `PGOPTIONS="-c role=OWNER"` makes the owner the current role for `db grants --apply`."""
    place, logins = town
    admin = logins[OPERATOR]
    with place.admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER ROLE "{admin}" NOINHERIT')
        conn.exec_driver_sql(f'GRANT postgres TO "{admin}"')
    try:
        done = place.psql(admin, "UPDATE config_event SET actor = 'x'")
        assert "permission denied for table config_event" in done.stderr, done.stderr
        code, _out, err = place.cli("db", "grants", "--apply", login=admin)
        assert code == 2 and "permission denied for table" in err, err  # no privileges without the role
        monkeypatch.setenv("PGOPTIONS", "-c role=postgres")
        place.ok("db", "grants", "--apply", login=admin)
    finally:
        with place.admin.connect() as conn:
            conn.exec_driver_sql(f'REVOKE postgres FROM "{admin}"')
    last = json.loads(place.ok("audit", "config", "--json"))[-1]
    assert (last["action"], last["actor"], last["login"]) == ("db_grants", OPERATOR, admin)
    assert place.ok("audit", "verify").startswith("ok:")


def _tombstone(destroyed_by: str) -> str:
    """An INSERT of a tombstone (of no real case) destroyed by `destroyed_by`."""
    return ("INSERT INTO retention_tombstone (case_id, ref, type_key, type_version, closed_at, term, due_on,"
            " destroyed_at, destroyed_by, reason, run, last_seq, last_hash) VALUES (999999, 'BI-2020-99999',"
            " 'bewonersinitiatief', 1, now(), '1 year', current_date, now(),"
            f" '{destroyed_by}', 'selectielijst', 1, 1, '{'0' * 64}')")


def test_a_login_cannot_record_a_destruction_by_someone_else_and_the_operators_run_still_can(
        office: tuple[Place, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from engine.app.clock import SystemClock

    place, logins = office
    clerk, operator, worker = logins[CLERK], logins[OPERATOR], logins["worker"]
    gone = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Straatfeest", "--json",
                               login=clerk))["ref"]
    place.ok("case", "advance", gone, "intrekken", "--comment", "ingetrokken", login=clerk)
    # A clerk's login puts a destruction in the operator's name, or the system's; the worker's
    # service role in a person's name: refused, and nothing is written.
    for login, who, by in ((clerk, CLERK, OPERATOR), (clerk, CLERK, "system"), (clerk, CLERK, worker),
                           (worker, "nobody in the organisation", OPERATOR)):
        done = place.psql(login, _tombstone(by))
        assert done.returncode != 0
        assert (f"retention_tombstone: the login {login} ({who}) may not record a destruction by {by}"
                in done.stderr), done.stderr
    assert place.scalar("SELECT count(*) FROM retention_tombstone") == 0
    # In one's own name it passes the check (rolled back here: no case stands behind it).
    for login, by in ((clerk, CLERK), (worker, worker), (worker, "system")):
        done = place.psql(login, f"BEGIN; {_tombstone(by)}; ROLLBACK;")
        assert done.returncode == 0, done.stderr
    # The operator's retention run records the operator, and passes.
    later = dt.datetime.fromisoformat(LATER)
    monkeypatch.setattr(SystemClock, "now", lambda self: later)
    result = json.loads(place.ok("retention", "run", "--reason", "selectielijst 2020", "--json", login=operator))
    assert result["destroyed"] == 1, result
    assert place.scalar("SELECT destroyed_by FROM retention_tombstone WHERE ref = :r", r=gone) == OPERATOR
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")


def test_the_destruction_check_is_open_on_a_simulation_database(town: tuple[Place, dict[str, str]]) -> None:
    """On a simulation database `--as` plays every part, so a destruction may name anyone."""
    place, logins = town
    done = place.psql(logins[CLERK], f"BEGIN; {_tombstone(OPERATOR)}; ROLLBACK;")
    assert done.returncode == 0, done.stderr


def test_the_workers_retention_runs_under_its_service_role_and_records_that_login(
        office: tuple[Place, dict[str, str]]) -> None:
    """`loket worker --retention-every` on a real database: its redactions and destructions
    stand in the service login's name, which the database's checks accept for that login (and
    for no other: a clerk's login may not record either in the worker's name)."""
    import datetime as dt

    from engine.app.clock import FixedClock
    from engine.app.retention import retention_job
    from engine.app.service import Loket
    from engine.store.db import open_engine

    place, logins = office
    clerk, worker = logins[CLERK], logins["worker"]
    gone = json.loads(place.ok("case", "new", "bewonersinitiatief", "--data", "title=Straatfeest", "--data",
                               f"name={NAME}", "--json", login=clerk))["ref"]
    place.ok("case", "advance", gone, "intrekken", "--comment", "ingetrokken", login=clerk)
    melding = json.loads(place.ok("case", "new", "melding", "--data", "omschrijving=Lamp kapot", "--data",
                                  "locatie=Dorpsstraat 1", "--data", f"melder_naam={NAME}", "--json",
                                  login=clerk))["ref"]
    place.ok("case", "advance", melding, "niet_in_behandeling_nemen", "--comment", "dubbel", login=clerk)
    lines: list[str] = []
    loket = Loket(open_engine(place.url_for(worker)), FixedClock(dt.datetime.fromisoformat(LATER)))
    try:
        retention_job(loket, "selectielijst 2020", loket.identity(), lines.append)
    finally:
        loket.engine.dispose()
    assert any("1 destroyed, 1 redacted" in line for line in lines), lines
    assert place.scalar("SELECT destroyed_by FROM retention_tombstone WHERE ref = :r", r=gone) == worker
    assert place.scalar("SELECT e.actor FROM case_event e JOIN cases c ON c.id = e.case_id"
                        " WHERE c.ref = :r AND e.action = 'redacted'", r=melding) == worker
    assert place.scalar("SELECT count(*) FROM case_event WHERE data::text LIKE :n", n=f"%{NAME}%") == 0
    # The worker's name is its own: a clerk's login may not put an event in it.
    case_id, seq, head = (place.scalar("SELECT id FROM cases WHERE ref = :r", r=melding),
                          place.scalar("SELECT last_seq FROM cases WHERE ref = :r", r=melding),
                          place.scalar("SELECT last_hash FROM cases WHERE ref = :r", r=melding))
    done = place.psql(clerk, "INSERT INTO case_event (case_id, seq, at, recorded_at, actor, action, comment,"
                             f" prev_hash, hash) VALUES ({case_id}, {seq + 1}, now(), now(), '{worker}', 'comment',"
                             f" 'x', '{head}', '{'0' * 64}')")
    assert f"may not record an event as {worker}" in done.stderr, done.stderr
    assert place.ok("audit", "verify", login=clerk).startswith("ok:")
