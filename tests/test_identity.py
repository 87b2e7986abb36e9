"""Who is acting (SPEC §13.1), on SQLite and PostgreSQL: the login establishes it, `--as` is
believed only where the spec allows, the operator guards configuration, and every change to
the configuration is an event in a chain of its own that `audit verify` checks.

On SQLite the login is the operating-system user; the tests stand in for other users by
replacing `engine.app.identity.os_login` (one test uses the real one). On PostgreSQL it is the
connection's `session_user`: the tests create login roles in the test server and connect as
them, so PostgreSQL itself says who is there.
"""

from __future__ import annotations

import getpass
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app import identity as app_identity
from engine.core.identity import ESTABLISHED, Identity, require_service, resolve
from engine.core.organisation import parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import InvalidDefinition, Refused
from tests.conftest import ORG_FILE, WORKFLOWS, _truncate, run_cli

TYPES = sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml")
CLERK, HEAD, OPERATOR, AUDITOR, ASSISTANT = "c.devries", "a.jansen", "o.beheer", "d.smit", "s.secretaris"


def organisation(logins: dict[str, str], *, operator: bool = True) -> dict[str, Any]:
    """The sample organisation with an operator, an administrator's assistant and `logins`."""
    data = sample()
    if operator:
        data["people"].append({"id": OPERATOR, "name": "Olga Beheer", "email": "o.beheer@voorbeeld.example",
                               "roles": {"*": "operator"}})
    data["people"].append({"id": ASSISTANT, "name": "Sanne Secretaris", "email": "s.secretaris@voorbeeld.example"})
    data["administrators"][0]["assistants"] = [ASSISTANT]
    for person in data["people"]:
        if person["id"] in logins:
            person["login"] = logins[person["id"]]
    return data


def sample() -> dict[str, Any]:
    """The sample organisation as plain data (its dates as text)."""
    data = json.loads(json.dumps(load_file(ORG_FILE)[0], default=str))
    assert isinstance(data, dict)
    return data


def write(path: Path, data: dict[str, Any]) -> str:
    """An organisation file: JSON, which is YAML too."""
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return str(path)


class Installation:
    """One database, and a way to run `loket` as one login or another against it."""

    def __init__(self, kind: str, url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                 login_url: Callable[[str], str], owner: str) -> None:
        self.kind, self.url, self.capsys, self.monkeypatch = kind, url, capsys, monkeypatch
        self.login_url, self.owner = login_url, owner
        """`owner` is the login that made the database (and, in these tests, the operator's)."""

    def __call__(self, *args: str, login: str | None = None) -> tuple[int, str, str]:
        login = login or self.owner
        url = self.login_url(login)
        self.monkeypatch.setattr(app_identity, "os_login", lambda: login)
        return run_cli(self.capsys, "--db", url, *args)

    def ok(self, *args: str, login: str | None = None) -> str:
        code, out, err = self(*args, login=login)
        assert code == 0, err
        return out

    def sql(self, statement: str, **params: Any) -> None:
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
        engine.dispose()


class PgLogins:
    """Login roles in the test server, each allowed to use the test database; dropped after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []
        self.admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")

    def role(self) -> str:
        name = f"loket_test_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN')
            conn.exec_driver_sql(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{name}"')
            conn.exec_driver_sql(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{name}"')
        self.made.append(name)
        return name

    def url_for(self, login: str) -> str:
        if login == "postgres":
            return self.url
        return sa.engine.make_url(self.url).set(username=login).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as conn:
            for name in self.made:
                conn.exec_driver_sql(f'DROP OWNED BY "{name}"')
                conn.exec_driver_sql(f'DROP ROLE "{name}"')
        self.admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Installation, Callable[[], str]]]:
    """An empty database of each kind and a maker of logins for it; the operator's login is
    the one that made the database (`postgres` on the test server)."""
    for name in ("LOKET_DB", "LOKET_USER", "LOKET_NOW", "LOKET_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'loket.db'}"
        assert run_cli(capsys, "--db", url, "init")[0] == 0
        yield (Installation("sqlite", url, capsys, monkeypatch, lambda login: url, "postgres"),
               lambda: f"user{uuid.uuid4().hex[:6]}")
        return
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    logins = PgLogins(url)
    try:
        yield Installation("postgresql", url, capsys, monkeypatch, logins.url_for, "postgres"), logins.role
    finally:
        logins.drop()


@pytest.fixture
def installed(place: tuple[Installation, Callable[[], str]], tmp_path: Path) -> tuple[Installation, str]:
    """The sample municipality with logins: the operator is the database's maker, the clerk
    has a login of their own. Returns the installation and the clerk's login."""
    loket, new_login = place
    clerk = new_login()
    org = write(tmp_path / "org.yaml", organisation({OPERATOR: loket.owner, CLERK: clerk}))
    loket.ok("org", "load", org)
    loket.ok("workflow", "load", *TYPES)
    return loket, clerk


def only_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def config(loket: Installation) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(loket.ok("audit", "config", "--json"))
    return out


# -- the attacker's drill ------------------------------------------------------------------------


def test_a_clerk_cannot_make_themselves_head_with_as_and_an_evil_organisation(
    installed: tuple[Installation, str], tmp_path: Path
) -> None:
    """Issue 13: `--as nobody org load evil.yaml` made a clerk head of every unit."""
    loket, clerk = installed
    evil = organisation({OPERATOR: loket.owner, CLERK: clerk})
    for person in evil["people"]:
        if person["id"] == CLERK:
            person["roles"] = {unit: "head" for unit in evil["units"]}
    evil_file = write(tmp_path / "evil.yaml", evil)
    before = config(loket)
    for declared in ("nobody", OPERATOR, HEAD):
        code, _, err = loket("--as", declared, "org", "load", evil_file, login=clerk)
        assert code == 1
        assert only_error(err) == (
            f"Error: --as {declared} is refused: your login '{clerk}' is {CLERK} (Chris de Vries); --as (or"
            " LOKET_USER) is only for a simulation database, an assistant acting for their administrator, or yourself")
    code, _, err = loket("org", "load", evil_file, login=clerk)
    assert code == 1
    assert only_error(err) == f"Error: org load is for an operator ({OPERATOR}); you act as '{CLERK}'"
    shown = json.loads(loket.ok("org", "show", "--json"))
    assert next(p for p in shown["people"] if p["id"] == CLERK)["roles"] == {"wijkteam": "staff",
                                                                           "openbare_ruimte": "staff"}
    assert config(loket) == before
    # And the clerk's own steps still count as the clerk's.
    code, out, err = loket("case", "new", "bewonersinitiatief", "--data", "title=Feest", "--json", login=clerk)
    assert code == 0, err
    ref = json.loads(out)["ref"]
    # (Read by the clerk: the operator runs the installation and reads no cases, SPEC §13.2.)
    history = json.loads(loket.ok("audit", "history", ref, "--json", login=clerk))
    assert history[0]["actor"] == CLERK
    assert loket.ok("audit", "verify").startswith("ok: 1 cases")


def test_as_may_name_oneself_by_id_or_login(installed: tuple[Installation, str]) -> None:
    loket, clerk = installed
    for declared in (CLERK, clerk):
        code, out, err = loket("--as", declared, "case", "new", "bewonersinitiatief", "--data", "title=Feest",
                               "--json", login=clerk)
        assert code == 0, err
        assert json.loads(out)["assignee"] in (None, CLERK)


def test_a_login_that_maps_to_nobody_is_refused_naming_the_login(
    installed: tuple[Installation, str], place: tuple[Installation, Callable[[], str]]
) -> None:
    loket, _clerk = installed
    stranger = place[1]()
    code, _, err = loket("case", "new", "bewonersinitiatief", "--data", "title=Feest", login=stranger)
    assert code == 1
    assert only_error(err).startswith(f"Error: your login '{stranger}' maps to nobody in the organisation")
    assert "None" not in err
    code, _, err = loket("--as", CLERK, "case", "new", "bewonersinitiatief", "--data", "title=Feest", login=stranger)
    assert code == 1
    assert only_error(err).startswith(f"Error: --as {CLERK} is refused: your login '{stranger}' maps to nobody")
    code, _, err = loket("workflow", "load", *TYPES, login=stranger)
    assert code == 1
    assert only_error(err) == (f"Error: workflow load is for an operator ({OPERATOR}); your login '{stranger}'"
                               " maps to nobody in the organisation")


def test_an_assistant_acts_for_their_administrator_and_for_nobody_else(installed: tuple[Installation, str],
                                                                        place: tuple[Installation, Callable[[], str]],
                                                                        tmp_path: Path) -> None:
    loket, clerk = installed
    assistant = place[1]()
    org = write(tmp_path / "org2.yaml", organisation({OPERATOR: loket.owner, CLERK: clerk, ASSISTANT: assistant}))
    loket.ok("org", "load", org)
    loket.ok("case", "new", "bewonersinitiatief", "--data", "title=Feest", login=clerk)
    out = loket.ok("--as", "wethouder.wijken", "case", "triggers", "BI-2026-00001", "--json", login=assistant)
    assert json.loads(out)["actor"] == "wethouder.wijken"
    for other in ("wethouder.zorg", HEAD):
        code, _, err = loket("--as", other, "case", "show", "BI-2026-00001", login=assistant)
        assert code == 1
        assert f"your login '{assistant}' is {ASSISTANT} (Sanne Secretaris)" in only_error(err)


def test_an_assistant_acting_as_the_administrator_is_recorded_as_themselves_on_their_behalf(
    installed: tuple[Installation, str], place: tuple[Installation, Callable[[], str]], tmp_path: Path
) -> None:
    """SPEC §12.1: an assistant's comment or instruction is the assistant's, on behalf of the
    administrator, whether they name themselves or the administrator with --as."""
    loket, clerk = installed
    assistant = place[1]()
    org = write(tmp_path / "org2.yaml", organisation({OPERATOR: loket.owner, CLERK: clerk, ASSISTANT: assistant}))
    loket.ok("org", "load", org)
    loket.ok("case", "new", "bewonersinitiatief", "--data", "title=Feest", login=clerk)
    loket.ok("--as", "wethouder.wijken", "case", "comment", "BI-2026-00001", "Graag voor vrijdag", login=assistant)
    loket.ok("case", "direct", "BI-2026-00001", "--within", "5wd", "--text", "Besluit nemen", login=assistant)
    events = json.loads(loket.ok("audit", "history", "BI-2026-00001", "--json", login=clerk))
    told = [(e["action"], e["actor"], (e["data"] or {}).get("on_behalf_of")) for e in events[-2:]]
    assert told == [("comment", ASSISTANT, "wethouder.wijken"), ("directed", ASSISTANT, "wethouder.wijken")]


def test_the_operator_guards_configuration_and_init_of_a_new_database_needs_none(
    installed: tuple[Installation, str], tmp_path: Path
) -> None:
    loket, clerk = installed
    code, _, err = loket("workflow", "load", *TYPES, login=clerk)
    assert (code, only_error(err)) == (1, f"Error: workflow load is for an operator ({OPERATOR});"
                                          f" you act as '{CLERK}'")
    code, _, err = loket("audit", "seal", login=clerk)
    assert (code, only_error(err)) == (1, f"Error: audit seal is for an operator or auditor ({OPERATOR}, {AUDITOR});"
                                          f" you act as '{CLERK}'")
    code, _, err = loket("init", "--org", str(tmp_path / "org.yaml"), login=clerk)
    assert code == 1 and "init with files to load is for an operator" in only_error(err)
    code, _, err = loket("workflow", "migrate", "melding", "--to", "1", login=clerk)
    assert (code, only_error(err)) == (1, f"Error: workflow migrate is for an operator ({OPERATOR});"
                                          f" you act as '{CLERK}'")
    # Looking writes nothing and is anyone's: a dry run gets past the guard, to the bad input.
    code, _, err = loket("workflow", "migrate", "melding", "--to", "1", "--dry-run", login=clerk)
    assert (code, only_error(err)) == (2, "Error: melding has no version before 1: give --from M to move cases back")
    assert loket.ok("audit", "seal").startswith("seal 1:")
    assert loket.ok("workflow", "load", *TYPES).count("unchanged") == len(TYPES)
    # A new database: whoever makes it loads its first organisation.
    if loket.kind == "sqlite":
        fresh = f"sqlite:///{tmp_path / 'new.db'}"
        loket.monkeypatch.setattr(app_identity, "os_login", lambda: clerk)
        code, out, err = run_cli(loket.capsys, "--db", fresh, "init", "--org", str(tmp_path / "org.yaml"))
        assert code == 0, err
        assert "database ready" in out


def test_an_auditor_may_seal(place: tuple[Installation, Callable[[], str]], tmp_path: Path) -> None:
    loket, new_login = place
    auditor = new_login()
    loket.ok("org", "load", write(tmp_path / "org.yaml", organisation({OPERATOR: loket.owner, AUDITOR: auditor})))
    assert loket.ok("audit", "seal", login=auditor).startswith("seal 1:")
    assert config(loket)[-1]["actor"] == AUDITOR


def test_without_operators_configuration_stays_open(place: tuple[Installation, Callable[[], str]],
                                                    tmp_path: Path) -> None:
    loket, new_login = place
    clerk = new_login()
    org = write(tmp_path / "org.yaml", organisation({CLERK: clerk}, operator=False))
    loket.ok("org", "load", org)
    loket.ok("workflow", "load", *TYPES, login=clerk)
    assert config(loket)[-1]["actor"] == CLERK


# -- how the login is found -------------------------------------------------------------------------


@pytest.mark.postgres
def test_on_postgresql_the_session_user_is_who_acts(pg_url: str, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stand-in here: PostgreSQL says who connected. `SET ROLE` in the session would not
    change `session_user`, and neither do $USER or the operating-system account."""
    _truncate(pg_url)
    db_url = pg_url
    logins = PgLogins(db_url)
    try:
        clerk = logins.role()
        monkeypatch.setenv("USER", "postgres")
        org = write(tmp_path / "org.yaml", organisation({OPERATOR: "postgres", CLERK: clerk}))
        assert run_cli(capsys, "--db", db_url, "org", "load", org)[0] == 0
        assert run_cli(capsys, "--db", db_url, "workflow", "load", *TYPES)[0] == 0
        as_clerk = logins.url_for(clerk)
        code, out, err = run_cli(capsys, "--db", as_clerk, "case", "new", "bewonersinitiatief", "--data", "title=Feest",
                                 "--json")
        assert code == 0, err
        ref = json.loads(out)["ref"]
        code, out, err = run_cli(capsys, "--db", as_clerk, "audit", "history", ref, "--json")
        assert json.loads(out)[0]["actor"] == CLERK
        code, _, err = run_cli(capsys, "--db", as_clerk, "--as", HEAD, "case", "comment", ref, "Van het hoofd")
        assert code == 1 and f"your login '{clerk}' is {CLERK}" in err
        code, _, err = run_cli(capsys, "--db", as_clerk, "org", "load", org)
        assert code == 1 and "org load is for an operator" in err
        assert json.loads(run_cli(capsys, "--db", db_url, "audit", "config", "--json")[1])[0]["login"] == "postgres"
    finally:
        logins.drop()


def test_on_sqlite_the_operating_system_user_is_who_acts_not_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real account from the user database: setting $USER or $LOGNAME changes nothing."""
    for name in ("LOKET_DB", "LOKET_USER", "LOKET_NOW"):
        monkeypatch.delenv(name, raising=False)
    me = app_identity.os_login()
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    org = write(tmp_path / "org.yaml", organisation({CLERK: me}, operator=False))
    assert run_cli(capsys, "--db", url, "init", "--org", org)[0] == 0
    assert run_cli(capsys, "--db", url, "workflow", "load", *TYPES)[0] == 0
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, HEAD)
    code, out, err = run_cli(capsys, "--db", url, "case", "new", "bewonersinitiatief", "--data", "title=Feest",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["created_at"]
    code, out, _ = run_cli(capsys, "--db", url, "audit", "history", json.loads(out)["ref"], "--json")
    assert json.loads(out)[0]["actor"] == CLERK
    assert json.loads(run_cli(capsys, "--db", url, "audit", "config", "--json")[1])[-1]["login"] == me


def test_a_simulation_database_lets_as_play_every_part(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOKET_DB", "LOKET_USER", "LOKET_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(app_identity, "os_login", lambda: "cdevries")
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    org = write(tmp_path / "org.yaml", organisation({CLERK: "cdevries", OPERATOR: "obeheer"}))
    now = ("--now", "2026-03-02T10:00")
    assert run_cli(capsys, "--db", url, *now, "init", "--org", org, "--simulation")[0] == 0
    assert run_cli(capsys, "--db", url, *now, "--as", OPERATOR, "workflow", "load", *TYPES)[0] == 0
    code, _out, err = run_cli(capsys, "--db", url, *now, "--as", HEAD, "case", "new", "bewonersinitiatief",
                             "--data", "title=Feest", "--json")
    assert code == 0, err
    # ... but what that person may do still holds.
    code, _, err = run_cli(capsys, "--db", url, *now, "--as", "nobody", "case", "new", "bewonersinitiatief",
                           "--data", "title=Feest")
    assert code == 2 and "unknown person 'nobody'" in err
    code, _, err = run_cli(capsys, "--db", url, *now, "workflow", "load", *TYPES)
    assert code == 1 and "workflow load is for an operator (o.beheer); you act as 'c.devries'" in err


# -- the mode, and options where people type them ------------------------------------------------------


def test_org_show_says_which_mode_is_in_force(place: tuple[Installation, Callable[[], str]], tmp_path: Path) -> None:
    loket, _ = place
    loket.ok("org", "load", str(ORG_FILE))
    text = loket.ok("org", "show")
    assert ("identities: taken as given (nobody has a login: --as and the login name are believed); configuration"
            " open to whoever can write the database (no operator named)") in text
    shown = json.loads(loket.ok("org", "show", "--json"))
    assert (shown["identities"], shown["operators"]) == ("taken as given", [])
    loket.ok("org", "load", write(tmp_path / "org.yaml", organisation({OPERATOR: loket.owner})))
    text = loket.ok("org", "show")
    assert "identities: established by the login" in text
    assert f"configuration by the operators ({OPERATOR})" in text
    shown = json.loads(loket.ok("org", "show", "--json"))
    assert (shown["identities"], shown["operators"]) == (ESTABLISHED, [OPERATOR])
    assert next(p for p in shown["people"] if p["id"] == OPERATOR)["login"] == loket.owner
    assert shown["administrators"][0]["assistants"] == [ASSISTANT]


def test_global_options_may_follow_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOKET_DB", "LOKET_USER", "LOKET_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert run_cli(capsys, "init", "--sample", "--simulation", "--db", url, "--now", "2026-03-02T09:00")[0] == 0
    assert not (tmp_path / "loket.db").exists()
    code, out, err = run_cli(capsys, "case", "new", "bewonersinitiatief", "--data", "title=Feest", "--as", CLERK,
                             "--db", url, "--now", "2026-03-02T10:00", "--assign", "l.mulder", "--json")
    assert code == 0, err
    assert json.loads(out)["assignee"] == "l.mulder"
    code, out, err = run_cli(capsys, "case", "list", "--mine", "--as", "l.mulder", "--db", url, "--json")
    assert code == 0, err
    assert [c["ref"] for c in json.loads(out)] == ["BI-2026-00001"]
    # After the subcommand it wins over the one before it.
    code, out, err = run_cli(capsys, "--as", HEAD, "case", "list", "--mine", "--as", "l.mulder", "--db", url)
    assert code == 0 and "BI-2026-00001" in out, err
    code, out, err = run_cli(capsys, "--as", "l.mulder", "case", "list", "--mine", "--as", HEAD, "--db", url)
    assert (code, out) == (0, "no cases\n"), err
    code, _, err = run_cli(capsys, "case", "list", "--db", url, "--as")
    assert code == 2 and only_error(err).startswith("Error: Option '--as' requires an argument")


# -- the configuration history ----------------------------------------------------------------------


def test_every_configuration_change_is_a_chained_event_saying_who_and_what(
    installed: tuple[Installation, str], tmp_path: Path
) -> None:
    loket, clerk = installed
    promoted = organisation({OPERATOR: loket.owner, CLERK: clerk})
    for person in promoted["people"]:
        if person["id"] == CLERK:
            person["roles"] = {"wijkteam": "head"}
    promoted["people"] = [p for p in promoted["people"] if p["id"] != "t.visser"]
    loket.ok("org", "load", write(tmp_path / "promoted.yaml", promoted))
    loket.ok("audit", "seal")
    events = config(loket)
    assert [e["action"] for e in events] == [
        *(["init"] if loket.kind == "sqlite" else []), "org_load", "workflow_load", "org_load", "audit_seal"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    first_org, types, promotion, sealed = events[-4:]
    # The first organisation was loaded before anyone had a login: by the login name, as given;
    # on PostgreSQL the login recorded is still the one the database authenticated.
    assert first_org["actor"] == getpass.getuser()
    assert first_org["login"] == (getpass.getuser() if loket.kind == "sqlite" else loket.owner)
    assert (types["actor"], types["login"]) == (promotion["actor"], promotion["login"]) == (OPERATOR, loket.owner)
    assert first_org["detail"]["changes"]["people_added"][0] == HEAD
    assert [(t["key"], t["version"]) for t in types["detail"]["types"]] == [
        ("bewonersinitiatief", 1), ("bijdrage", 1), ("melding", 1)]
    assert promotion["detail"]["changes"] == {
        "people_removed": ["t.visser"],
        "roles": {CLERK: {"before": {"wijkteam": "staff", "openbare_ruimte": "staff"}, "after": {"wijkteam": "head"}}},
    }
    assert sealed["detail"]["seal"] == 1
    assert first_org["detail"]["changes"]["first"] is True and "first" not in promotion["detail"]["changes"]
    text = loket.ok("audit", "config")
    people = len(organisation({})["people"])  # the sample's, with the operator and the assistant
    assert f"organisation 1 loaded, the first: {people} people, 6 units, 3 administrators, 2 login(s)" in text
    assert "people removed: t.visser; roles of c.devries" in text
    assert "loaded bewonersinitiatief v1, bijdrage v1, melding v1" in text
    verified = loket.ok("audit", "verify")
    assert f"{len(events)} configuration changes, their history intact" in verified


TAMPERING = {
    "edited": ("UPDATE config_event SET actor = 'a.jansen' WHERE seq = :last - 1",
               "configuration history event {n} (workflow_load): its content does not match its hash (edited)"),
    "deleted": ("DELETE FROM config_event WHERE seq = :last - 1",
                "configuration history event {n}: missing (next stored is {m})"),
    "organisation inserted": (
        "INSERT INTO organisation (data, source, loaded_at) SELECT data, source, loaded_at FROM organisation",
        "organisation 2 is not in the configuration history: it was stored behind the history's back"),
    "organisation edited": (
        "UPDATE organisation SET data = replace(CAST(data AS TEXT), '\"staff\"', '\"head\"')"
        "::TEXTCAST",
        "organisation 1: its data differs from what the configuration history recorded (edited)"),
    "request type edited": (
        "UPDATE request_type SET definition = replace(CAST(definition AS TEXT), 'Ingediend', 'Binnen')::TEXTCAST"
        " WHERE key = 'bewonersinitiatief'",
        "request type bewonersinitiatief v1: its definition differs from what the configuration history recorded"
        " (edited)"),
    "made a simulation": (
        "INSERT INTO loket_meta (key, value) VALUES ('simulation', 'true')",
        "the database's simulation flag was changed behind the configuration history's back (the history says it"
        " is not a simulation database)"),
}


@pytest.mark.parametrize("what", list(TAMPERING))
def test_verify_names_tampering_with_the_configuration(installed: tuple[Installation, str], what: str) -> None:
    loket, _clerk = installed
    loket.ok("audit", "seal")
    last = len(config(loket))
    statement, words = TAMPERING[what]
    cast = "::json" if loket.kind == "postgresql" else ""
    loket.sql(statement.replace("::TEXTCAST", cast), last=last)
    code, out, err = loket("audit", "verify")
    assert (code, out) == (1, "")
    assert only_error(err) == "Error: " + words.format(n=last - 1, m=last)
    code, out, _ = loket("audit", "verify", "--json")
    assert code == 1 and json.loads(out)["failure"] == words.format(n=last - 1, m=last)
    code, _, err = loket("audit", "seal")
    assert code == 1 and "cannot seal" in err


def test_verify_names_a_seal_the_history_did_not_record(installed: tuple[Installation, str]) -> None:
    loket, _ = installed
    loket.ok("audit", "seal")
    loket.sql("DELETE FROM config_event WHERE action = 'audit_seal'")
    code, _, err = loket("audit", "verify")
    assert code == 1
    assert only_error(err) == ("Error: seal 1 is not in the configuration history: it was stored behind the"
                               " history's back")


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    (lambda d: d["people"][0].update(login="x") or d["people"][1].update(login="x"),
     "people[1].login: login 'x' is also given to 'a.jansen'"),
    (lambda d: d["people"][0].update(login="b.bakker"),
     "people[0].login: login 'b.bakker' of 'a.jansen' is the id of another person"),
    (lambda d: d["people"][0].update(login="has space"), "invalid login 'has space'"),
    (lambda d: d["people"][0].update(login=12), "invalid login 12"),
    (lambda d: d["administrators"][0].update(assistants=["nobody"]),
     "administrators[0].assistants[0]: unknown person 'nobody'"),
    (lambda d: d["administrators"][0].update(assistants="a.jansen"),
     "administrators[0].assistants: expected a list of person ids"),
])
def test_a_bad_login_or_assistant_is_refused_at_load(
    place: tuple[Installation, Callable[[], str]], tmp_path: Path, change: Callable[[dict[str, Any]], None],
    words: str,
) -> None:
    loket, _ = place
    data = organisation({})
    change(data)
    file = write(tmp_path / "bad.yaml", data)
    before = config(loket)
    code, out, err = loket("org", "load", file)
    assert (code, out) == (2, "")
    head, *problems = err.splitlines()
    assert head == "Error: 1 problem found; nothing was loaded"
    assert len(problems) == 1 and words in problems[0], err
    assert config(loket) == before
    with pytest.raises(InvalidDefinition):
        parse_organisation(data)


def test_an_empty_as_is_bad_input_in_either_mode(installed: tuple[Installation, str]) -> None:
    loket, clerk = installed
    code, _, err = loket("--as", " ", "case", "list", login=clerk)
    assert code == 2 and "--as (or LOKET_USER) is empty" in only_error(err)


# -- the pure rules ----------------------------------------------------------------------------------


def test_resolve_follows_the_spec() -> None:
    org = parse_organisation(organisation({CLERK: "cdevries", ASSISTANT: "ssec"}))
    plain = parse_organisation(sample())
    assert resolve(plain, login="root", declared="x", simulation=False) == Identity("x", "root", None,
                                                                                    "taken as given", True)
    assert resolve(org, login="cdevries", declared=None, simulation=False).actor == CLERK
    assert resolve(org, login="cdevries", declared=HEAD, simulation=True).actor == HEAD
    helper = resolve(org, login="ssec", declared="wethouder.wijken", simulation=False)
    assert (helper.actor, helper.person, helper.assisting) == ("wethouder.wijken", ASSISTANT, True)
    with pytest.raises(Refused):
        resolve(org, login="ssec", declared="wethouder.zorg", simulation=False)
    with pytest.raises(Refused, match="maps to nobody"):
        resolve(org, login="root", declared=None, simulation=False).acting_person()
    require_service(resolve(org, login="wijkloket", declared=None, simulation=False), "the worker")
    require_service(resolve(plain, login="cdevries", declared=None, simulation=False), "the worker")
    with pytest.raises(Refused, match="service account"):
        require_service(resolve(org, login="cdevries", declared=None, simulation=False), "the worker")


def test_the_worker_refuses_to_run_under_a_persons_login(installed: tuple[Installation, str]) -> None:
    loket, clerk = installed
    code, out, err = loket("worker", "--sweep-every", "1h", login=clerk)
    assert (code, out) == (1, "")
    assert only_error(err).startswith(f"Error: the worker runs under a service account, not a person's login:"
                                      f" '{clerk}' is {CLERK};")


def test_an_as_that_is_not_allowed_is_refused_by_every_command(installed: tuple[Installation, str]) -> None:
    loket, clerk = installed
    for command in (["audit", "verify"], ["report"], ["outbox", "list"], ["workflow", "list"]):
        assert loket(*command, login=clerk)[0] == 0
        code, out, err = loket("--as", HEAD, *command, login=clerk)
        assert (code, out) == (1, ""), command
        assert only_error(err).startswith(f"Error: --as {HEAD} is refused: your login '{clerk}' is {CLERK}")
    loket.monkeypatch.setenv("LOKET_USER", HEAD)
    code, _, err = loket("case", "list", login=clerk)
    assert code == 1 and f"--as {HEAD} is refused" in only_error(err)


def test_the_last_seal_removed_alone_is_named_by_the_configuration_history(installed: tuple[Installation, str]) -> None:
    """The seals' own chain cannot show its last seal gone; the configuration history recorded it."""
    loket, _ = installed
    loket.ok("audit", "seal")
    loket.sql("DELETE FROM audit_seal_head WHERE seal_id = 1")
    loket.sql("DELETE FROM audit_seal WHERE id = 1")
    code, _, err = loket("audit", "verify")
    assert (code, only_error(err)) == (1, "Error: seal 1, recorded in the configuration history, is gone")


@pytest.mark.postgres
def test_configuration_changes_at_once_on_postgresql_make_one_unbroken_chain(pg_url: str) -> None:
    """Loads and seals from several sessions at the same moment: each event follows the one
    before it (they wait for each other), none is lost, and the chain verifies."""
    import threading

    from engine.app.clock import FixedClock
    from engine.app.seal import seal
    from engine.app.service import Loket
    from engine.app.verify import verify
    from engine.store.db import open_engine
    from tests.conftest import START

    _truncate(pg_url)
    engine = open_engine(pg_url)
    Loket(engine, FixedClock(START)).load_organisation(ORG_FILE)
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def work(number: int) -> None:
        loket = Loket(engine, FixedClock(START))
        try:
            barrier.wait()
            for _ in range(3):
                if number % 2:
                    seal(loket)
                else:
                    loket.load_organisation(ORG_FILE)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    result = verify(Loket(engine, FixedClock(START)))
    assert result.ok, result.failure
    assert result.config_events == 1 + 4 * 3
    engine.dispose()
