"""Need-to-know reads on both databases (SPEC §13.2): who may read a case from the command
line, who sees its personal values, and the access log (`loket audit access`)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app import identity as app_identity
from engine.app.service import Loket
from engine.core.yamlfile import load_file
from engine.store import access as log_store
from engine.store.db import open_engine, sqlite_path
from tests.conftest import ORG_FILE, run_cli

NAME = "Piet Klaassen"
CLERK, PARTNER, OTHER_DEPT, ADMIN, AUDITOR = "l.mulder", "r.dijkstra", "h.smits", "wethouder.wijken", "d.smit"


def only_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def at_partner(loket: Loket) -> str:
    """A bijdrage case with a resident's name, opened by the wijkteam and handed to the
    housing corporation (event #4)."""
    c = loket.new_case("bijdrage", [f"resident_name={NAME}", "title=Achterpad", "requested=Licht"], actor=CLERK)
    loket.advance(c.ref, "in_behandeling", actor=CLERK)
    loket.advance(c.ref, "vraag_woningcorporatie", actor=CLERK)
    return c.ref


def cli(capsys: pytest.CaptureFixture[str], url: str, who: str | None, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "--db", url, *(("--as", who) if who else ()), *args)


def ok(capsys: pytest.CaptureFixture[str], url: str, who: str | None, *args: str) -> str:
    code, out, err = cli(capsys, url, who, *args)
    assert code == 0, err
    return out


def log(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(ok(capsys, url, AUDITOR, "audit", "access", *args, "--json"))
    return entries


def test_a_partner_reads_while_it_holds_the_case_and_from_the_hand_over_on(
    db_url: str, at_partner: str, loket: Loket, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = at_partner
    shown = json.loads(ok(capsys, db_url, PARTNER, "case", "show", ref, "--json"))
    assert shown["data"]["resident_name"] == NAME
    assert [e["seq"] for e in shown["recent_events"]] == [3]  # the hand-over on; the wijkteam's #1, #2 not
    history = json.loads(ok(capsys, db_url, PARTNER, "audit", "history", ref, "--json"))
    assert [e["seq"] for e in history] == [3]
    code, _, err = cli(capsys, db_url, PARTNER, "case", "show", ref, "--explain")
    assert code == 1 and "a partner sees it from the hand-over on" in only_error(err)
    # The police, another partner, never held it.
    code, _, err = cli(capsys, db_url, "m.schouten", "case", "show", ref)
    assert code == 1 and only_error(err).startswith(f"Error: m.schouten may not read {ref}: it was never held")
    # Handed back, the housing corporation reads it no more.
    loket.advance(ref, "bijdrage_geweigerd", actor=PARTNER, comment="Geen budget")
    for command in (("case", "show", ref), ("case", "triggers", ref), ("audit", "history", ref)):
        code, out, err = cli(capsys, db_url, PARTNER, *command)
        assert code == 1 and out == ""
        assert "it is no longer held by woningcorporatie" in only_error(err)
    assert ok(capsys, db_url, PARTNER, "case", "list").strip() == "no cases"


def test_who_sees_personal_values_and_who_is_refused(
    db_url: str, at_partner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = at_partner
    # The wijkteam held it before: it reads the case, without the resident's name.
    clerk = json.loads(ok(capsys, db_url, CLERK, "case", "show", ref, "--json"))
    assert clerk["data"]["resident_name"] == "(hidden)" and clerk["data"]["title"] == "Achterpad"
    text = ok(capsys, db_url, ADMIN, "case", "show", ref)
    assert "resident_name    (afgeschermd)" in text and NAME not in text
    history = ok(capsys, db_url, ADMIN, "audit", "history", ref, "--json")
    assert NAME not in history and '"resident_name": "(hidden)"' in history
    assert NAME not in ok(capsys, db_url, "j.wolters", "case", "list", "--json")  # the assistant
    # Openbare Ruimte never held it: refused, and left out of its listing.
    code, out, err = cli(capsys, db_url, OTHER_DEPT, "case", "show", ref, "--json")
    assert code == 1 and out == "" and f"{OTHER_DEPT} may not read {ref}" in only_error(err)
    assert ok(capsys, db_url, OTHER_DEPT, "case", "list", "--json").strip() == "[]"
    # Auditors, and a single-office installation's login without --as, see everything.
    assert json.loads(ok(capsys, db_url, AUDITOR, "case", "show", ref, "--json"))["data"]["resident_name"] == NAME
    assert NAME in ok(capsys, db_url, None, "case", "show", ref)
    assert [c["ref"] for c in json.loads(ok(capsys, db_url, None, "case", "list", "--json"))] == [ref]


def test_case_list_limits_what_the_reader_may_read(
    db_url: str, loket: Loket, capsys: pytest.CaptureFixture[str]
) -> None:
    loket.new_case("melding", ["melder_naam=Jan", "omschrijving=Lamp kapot", "locatie=Dorpsstraat 1"],
                   actor="c.devries")
    refs = [loket.new_case("bijdrage", [f"resident_name={NAME}", "title=Bank"], actor=CLERK).ref for _ in range(3)]
    listed = json.loads(ok(capsys, db_url, "p.dejong", "case", "list", "--json"))
    assert listed == []  # Welzijn held none of them
    mine = json.loads(ok(capsys, db_url, ADMIN, "case", "list", "--limit", "2", "--json"))
    assert [c["ref"] for c in mine] == refs[:2]  # the melding is another portfolio's


def test_every_read_of_personal_values_is_logged_for_auditors(
    db_url: str, at_partner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = at_partner
    ok(capsys, db_url, PARTNER, "case", "show", ref)
    ok(capsys, db_url, CLERK, "case", "show", ref)  # hidden: not a read of personal values
    # From the hand-over on, the history holds no personal value: not logged either.
    ok(capsys, db_url, PARTNER, "audit", "history", ref, "--json")
    ok(capsys, db_url, PARTNER, "case", "list")  # text: shows no data
    ok(capsys, db_url, PARTNER, "case", "list", "--json")
    entries = log(capsys, db_url, ref)
    assert [(e["reader"], e["command"]) for e in entries] == [
        (PARTNER, "case show"), (PARTNER, "case list")]
    ok(capsys, db_url, AUDITOR, "audit", "history", ref)  # the whole history: the created event's values
    assert log(capsys, db_url, ref)[-1]["command"] == "audit history"
    assert entries[0]["login"] and entries[0]["ref"] == ref and entries[0]["at"].endswith("Z")
    # The auditor's own look at the log is no read of personal values.
    assert len(log(capsys, db_url)) == 3
    assert log(capsys, db_url, "--since", "2999-01-01") == []
    text = ok(capsys, db_url, AUDITOR, "audit", "access", ref)
    assert text.splitlines()[0].split() == ["AT", "READER", "LOGIN", "CASE", "COMMAND"]
    # For auditors only; an unknown case is exit 2.
    code, _, err = cli(capsys, db_url, CLERK, "audit", "access")
    assert code == 1 and only_error(err) == f"Error: audit access is for auditors ({AUDITOR}); you act as '{CLERK}'"
    code, _, err = cli(capsys, db_url, AUDITOR, "audit", "access", "XX-2026-00001")
    assert code == 2 and "unknown case" in only_error(err)
    # The log holds no values: nothing in it for a redaction to erase.
    engine = open_engine(db_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM access_log").fetchall()
        assert rows and not any(NAME in str(value) for row in rows for value in row)
        case_id = conn.exec_driver_sql(f"SELECT id FROM cases WHERE ref = '{ref}'").scalar_one()
    # Retention destroying the case takes its log rows with it.
    with engine.begin() as conn:
        assert log_store.forget_cases(conn, [case_id]) == len(rows)
    engine.dispose()
    assert log(capsys, db_url, ref) == []


def test_audit_export_is_for_auditors_and_logged_as_one_read(
    db_url: str, at_partner: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, db_url, CLERK, "audit", "export")
    assert code == 1 and out == "" and "audit export reads every unit's cases: it is for auditors" in only_error(err)
    assert log(capsys, db_url) == []
    ok(capsys, db_url, AUDITOR, "audit", "export", "--pseudonymise")
    assert log(capsys, db_url) == []  # no personal values left
    assert NAME in ok(capsys, db_url, AUDITOR, "audit", "export", "--type", "bijdrage")
    [entry] = log(capsys, db_url)
    assert (entry["reader"], entry["command"], entry["ref"], entry["detail"]) == (
        AUDITOR, "audit export", None, "--type bijdrage")


def test_a_busy_sqlite_database_neither_fails_nor_delays_a_read_and_shows_nothing_unlogged(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(sqlite_url)
    app = Loket(engine)
    app.load_organisation(ORG_FILE)
    app.load_request_types([str(ORG_FILE.parent / "bijdrage.yaml")])
    ref = app.new_case("bijdrage", [f"resident_name={NAME}", "title=Bank"], actor=CLERK).ref
    engine.dispose()
    path = sqlite_path(sqlite_url)
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock (a sweep, a migration)
    try:
        started = time.monotonic()
        code, out, err = cli(capsys, sqlite_url, CLERK, "case", "show", ref)
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 0 and took < 5, err  # not the 30 s a writer would wait
    assert "resident_name    (afgeschermd)" in out and NAME not in out
    assert only_error(err) == ("Warning: personal values hidden: the access log could not be written (the database"
                               " is busy); run the command again to see them")
    assert log(capsys, sqlite_url) == []
    # Free again: shown, and logged.
    assert NAME in ok(capsys, sqlite_url, CLERK, "case", "show", ref)
    assert [e["reader"] for e in log(capsys, sqlite_url)] == [CLERK]


def test_with_established_identities_a_login_that_is_nobody_reads_nothing(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(json.dumps(load_file(ORG_FILE)[0], default=str))
    for person in data["people"]:
        if person["id"] == CLERK:
            person["login"] = "lmulder"
    org_file = tmp_path / "org.yaml"
    org_file.write_text(json.dumps(data), encoding="utf-8")
    engine = open_engine(sqlite_url)
    app = Loket(engine)
    app.load_organisation(org_file)
    app.load_request_types([str(ORG_FILE.parent / "bijdrage.yaml")])
    ref = app.new_case("bijdrage", [f"resident_name={NAME}", "title=Bank"], actor=CLERK).ref
    engine.dispose()
    monkeypatch.setattr(app_identity, "os_login", lambda: "stranger")
    for command in (("case", "show", ref), ("case", "list"), ("audit", "history", ref)):
        code, out, err = cli(capsys, sqlite_url, None, *command)
        assert code == 1 and out == ""
        assert only_error(err).startswith("Error: your login 'stranger' maps to nobody in the organisation")
    monkeypatch.setattr(app_identity, "os_login", lambda: "lmulder")
    assert NAME in ok(capsys, sqlite_url, None, "case", "show", ref)
    with sa.create_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("SELECT reader, login FROM access_log").fetchall() == [(CLERK, "lmulder")]
