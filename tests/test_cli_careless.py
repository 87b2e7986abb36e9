"""What a careless user gets from `loket`: one `Error:` line, the SPEC's exit code, nothing
half-written. Each case here once ended in exit 70 ("unexpected ...") or did damage."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import run_cli

STAFF, LEAD = "c.devries", "b.bakker"


def only_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.fixture
def sim(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A simulation database with the sample municipality and one case, BI-2026-00001."""
    monkeypatch.delenv("LOKET_NOW", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "--now", "2026-03-02T09:00", "init", "--sample", "--simulation")[0] == 0
    code, _, err = run_cli(capsys, "--db", url, "--now", "2026-03-02T10:00", "--as", STAFF,
                           "case", "new", "bewonersinitiatief", "--data", "title=Straatfeest")
    assert code == 0, err
    yield url


def history(capsys: pytest.CaptureFixture[str], url: str, ref: str = "BI-2026-00001") -> str:
    code, out, err = run_cli(capsys, "--db", url, "audit", "history", ref, "--json")
    assert code == 0, err
    return out


# -- files the user names ---------------------------------------------------------------------


def test_export_writes_through_a_link_and_leaves_it_a_link(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "events.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    code, _, err = run_cli(capsys, "--db", sim, "audit", "export", "-o", str(link))
    assert code == 0, err
    assert link.is_symlink()
    assert real.read_text().count('"action":"created"') == 1


def test_export_to_a_device_writes_through_it(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "audit", "export", "-o", os.devnull)
    assert code == 0, err
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("command", [["audit", "export", "-o"], ["report", "--html"], ["report", "--public"]])
@pytest.mark.parametrize("target, words", [
    ("", "the output file name is empty"),
    ("{tmp}/missing/out", "no such folder"),
    ("{tmp}", "it is a folder"),
    ("/sys/wijkloket.out", "Permission denied"),
    ("/dev/full", "No space left on device"),
])
def test_an_output_that_cannot_be_written_is_one_error_with_exit_2(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], target: str, words: str
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, *command, target.format(tmp=tmp_path))
    assert code == 2
    assert words in only_error(err)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".tmp"))]
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("second, words", [
    ("{tmp}/missing/public.html", "no such folder"),
    ("{tmp}", "it is a folder"),
    ("/sys/wijkloket.out", "Permission denied"),
    ("", "the output file name is empty"),
])
def test_report_writes_neither_page_when_one_cannot_be_written(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], second: str, words: str
) -> None:
    """`report --html A --public B` with a bad B: one error, and A is not written either
    (or left as it was), so the command either writes both pages or none."""
    first = tmp_path / "rapport.html"
    code, _, err = run_cli(capsys, "--db", sim, "report", "--html", str(first), "--public",
                           second.format(tmp=tmp_path))
    assert code == 2
    assert words in only_error(err)
    assert not first.exists()
    # The other way round too.
    code, _, err = run_cli(capsys, "--db", sim, "report", "--public", str(first), "--html",
                           second.format(tmp=tmp_path))
    assert code == 2 and words in only_error(err)
    assert not first.exists()


@pytest.mark.parametrize("same", ["{tmp}/pagina.html", "{tmp}/./pagina.html", "{tmp}/link.html"])
def test_report_refuses_one_file_for_both_pages(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], same: str
) -> None:
    """The public page would silently replace the internal report (or the other way round)."""
    page = tmp_path / "pagina.html"
    page.write_text("old\n")
    (tmp_path / "link.html").symlink_to(page)
    code, _, err = run_cli(capsys, "--db", sim, "report", "--html", str(page), "--public",
                           same.format(tmp=tmp_path))
    assert code == 2
    assert "--html and --public name the same file" in only_error(err)
    assert page.read_text() == "old\n"


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["case", "show", "BI-\udcff"],
    ["--as", STAFF, "case", "comment", "BI-2026-00001", "\udcff\udcfe"],
    ["--as", STAFF, "case", "new", "bewonersinitiatief", "--data", "title=\udcff"],
])
def test_an_argument_that_is_not_utf8_is_refused_up_front(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    before = history(capsys, sim)
    code, _, err = run_cli(capsys, "--db", sim, *args)
    assert code == 2
    assert "is not valid UTF-8" in only_error(err)
    assert history(capsys, sim) == before


@pytest.mark.parametrize("args", [
    ["case", "list", "--limit", "99999999999999999999999"],
    ["outbox", "list", "--limit", "99999999999999999999999"],
    ["workflow", "show", "bewonersinitiatief", "--version", "99999999999999999999999"],
    ["demo", "--seed", "99999999999999999999999"],
])
def test_numbers_beyond_what_the_database_holds_are_usage_errors(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, *args)
    assert code == 2
    assert "is not in the range" in only_error(err)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://postgres@127.0.0.1:notaport/x",
    "postgresql+psycopg://postgres@[::1:5432/x",
])
def test_a_malformed_database_url_is_one_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--db", url, "case", "list")
    assert code == 2
    assert "cannot parse database URL" in only_error(err)


# -- the database ------------------------------------------------------------------------------


def test_a_write_on_a_locked_database_gives_up_with_exit_3(
    sim: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOKET_BUSY_TIMEOUT", "0.2")
    before = history(capsys, sim)
    with closing(sqlite3.connect(sim.removeprefix("sqlite:///"), isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-03T09:00", "--as", STAFF,
                               "case", "comment", "BI-2026-00001", "Even wachten")
        other.execute("ROLLBACK")
    assert code == 3
    assert only_error(err) == ("Error: the database is busy: another process kept it locked for 0.2 seconds;"
                               " nothing was written, try again")
    assert history(capsys, sim) == before


def test_a_bad_busy_timeout_is_a_configuration_error(
    sim: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOKET_BUSY_TIMEOUT", "soon")
    code, _, err = run_cli(capsys, "--db", sim, "case", "list")
    assert code == 2
    assert "LOKET_BUSY_TIMEOUT must be a number of seconds" in only_error(err)


def test_init_on_a_file_that_is_no_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(os.urandom(4096))
    before = junk.read_bytes()
    code, _, err = run_cli(capsys, "--db", f"sqlite:///{junk}", "init")
    assert code == 2
    assert only_error(err) == "Error: database error: file is not a database"
    assert junk.read_bytes() == before


# -- init is all or nothing --------------------------------------------------------------------


def test_init_with_a_bad_request_type_leaves_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "types"
    folder.mkdir()
    (folder / "leeg.yaml").write_text("")
    db = tmp_path / "new.db"
    org = Path(__file__).resolve().parent.parent / "workflows" / "organisation.yaml"
    code, out, err = run_cli(capsys, "--db", f"sqlite:///{db}", "init", "--org", str(org), "--workflows", str(folder))
    assert code == 2
    assert err.splitlines()[0] == "Error: 1 problem found; nothing was loaded"
    assert out == ""  # not "organisation: ... loaded" before the refusal
    assert not list(tmp_path.glob("new.db*"))


def test_init_of_an_existing_database_loads_organisation_and_types_together(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An organisation without the unit `politie`, which the bundled `bijdrage` needs: the
    # organisation is refused together with the types, and the database keeps the old one.
    org = (Path(__file__).resolve().parent.parent / "workflows" / "organisation.yaml").read_text()
    smaller = tmp_path / "kleiner.yaml"
    smaller.write_text(org.replace("Gemeente Voorbeeld", "Gemeente Kleiner"))
    folder = tmp_path / "types"
    folder.mkdir()
    (folder / "leeg.yaml").write_text("key: [")
    code, out, _ = run_cli(capsys, "--db", sim, "init", "--org", str(smaller), "--workflows", str(folder))
    assert code == 2 and out == ""
    code, out, _ = run_cli(capsys, "--db", sim, "org", "show")
    assert code == 0 and out.startswith("Gemeente Voorbeeld")


# -- the simulated clock -----------------------------------------------------------------------


def test_resuming_before_the_suspension_is_refused(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-20T10:00", "--as", STAFF,
                           "case", "suspend", "BI-2026-00001", "--reason", "Tekening ontbreekt")
    assert code == 0, err
    before = history(capsys, sim)
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-10T09:00", "--as", STAFF,
                           "case", "resume", "BI-2026-00001")
    assert code == 2
    assert "a simulation cannot go back in time" in only_error(err)
    assert history(capsys, sim) == before


@pytest.mark.parametrize("args", [
    ["case", "comment", "BI-2026-00001", "Terug in de tijd"],
    ["case", "advance", "BI-2026-00001", "in_behandeling"],
])
def test_a_simulation_cannot_go_back_before_a_case_changed(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    before = history(capsys, sim)
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-01T09:00", "--as", STAFF, *args)
    assert code == 2
    assert "a simulation cannot go back in time" in only_error(err)
    assert history(capsys, sim) == before


def _recorded(url: str) -> dict[str, int]:
    """How many rows each record of the history holds."""
    import sqlalchemy as sa

    from engine.store.db import open_engine

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return {name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                    for name in ("cases", "case_event", "config_event", "audit_seal", "access_log", "outbox")}
    finally:
        engine.dispose()


@pytest.fixture
def sim_any(db_url: str) -> str:
    """A simulation database with the sample municipality, on SQLite and on PostgreSQL; loaded
    at 2026-03-02 10:00 Amsterdam (09:00Z)."""
    from engine.app.clock import FixedClock
    from engine.app.service import Loket
    from engine.store.db import open_engine
    from tests.conftest import ORG_FILE, START, WORKFLOWS

    engine = open_engine(db_url)
    app = Loket(engine, FixedClock(START))
    with engine.begin() as conn:
        app.set_meta(conn, "simulation", "true")
        app.record_init(conn, None, before=None, simulation=True)
    app.load_organisation(ORG_FILE)
    app.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    engine.dispose()
    return db_url


@pytest.mark.parametrize("args", [
    ["--as", STAFF, "case", "new", "bewonersinitiatief", "--data", "title=Eerder"],
    ["--as", STAFF, "case", "comment", "BI-2026-00001", "Terug in de tijd"],
    ["--as", "d.smit", "audit", "seal"],
    ["escalate"],
    ["case", "list"],
    ["report", "--since", "2026-03-01"],
])
def test_a_simulation_clock_before_the_latest_recorded_instant_is_refused(
    sim_any: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Not only a change to a case that already has a later event: any run whose `--now` lies
    before what the database records anywhere (here a seal on 10 March) is refused before it
    reads or writes anything, so no history runs backwards."""
    code, _, err = run_cli(capsys, "--db", sim_any, "--now", "2026-03-02T11:00", "--as", STAFF,
                           "case", "new", "bewonersinitiatief", "--data", "title=Straatfeest")
    assert code == 0, err
    code, _, err = run_cli(capsys, "--db", sim_any, "--now", "2026-03-10T10:00", "--as", "d.smit", "audit", "seal")
    assert code == 0, err
    before = _recorded(sim_any)
    code, out, err = run_cli(capsys, "--db", sim_any, "--now", "2026-03-05T09:00", *args)
    assert code == 2 and out == ""
    assert only_error(err) == (
        "Error: --now 2026-03-05T08:00:00.000000Z is before the latest recorded instant of this database,"
        " 2026-03-10T09:00:00.000000Z (a seal): a simulation cannot go back in time")
    assert _recorded(sim_any) == before
    code, out, err = run_cli(capsys, "--db", sim_any, "audit", "verify")
    assert code == 0 and out.startswith("ok:"), err
    # The instant itself is not earlier: a run at the same moment goes ahead.
    code, _, err = run_cli(capsys, "--db", sim_any, "--now", "2026-03-10T10:00", "--as", STAFF,
                           "case", "comment", "BI-2026-00001", "Op tijd")
    assert code == 0, err


def test_init_records_a_new_simulation_at_its_now_and_refuses_an_earlier_one(
    sim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    from engine.store.db import open_engine

    engine = open_engine(sim)
    with engine.connect() as conn:
        made = conn.execute(sa.text("SELECT at FROM config_event WHERE action = 'init'")).scalar_one()
    engine.dispose()
    assert str(made).startswith("2026-03-02 08:00:00")  # 09:00 Amsterdam, not the computer's clock
    before = _recorded(sim)
    code, out, err = run_cli(capsys, "--db", sim, "--now", "2026-03-01", "init", "--sample", "--simulation")
    assert code == 2 and out == ""
    assert "2026-03-02T09:00:00.000000Z (an event of BI-2026-00001)" in only_error(err)
    assert _recorded(sim) == before


def test_resuming_before_the_suspension_is_refused_on_any_clock(sqlite_url: str) -> None:
    """The system clock is not held to the case's history (machines may lag by moments),
    but a resumption before its suspension is impossible on any clock."""
    import datetime as dt

    from engine.app.bundled import sample_paths
    from engine.app.clock import FixedClock
    from engine.app.service import Loket
    from engine.errors import InvalidValue
    from engine.store.db import migrate, open_engine

    class LaggingClock:
        """A clock that is not a simulation's, and can be set back like a lagging machine."""

        def __init__(self, at: dt.datetime) -> None:
            self.at = at

        def now(self) -> dt.datetime:
            return self.at

    engine = open_engine(sqlite_url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor=STAFF).ref
    clock = LaggingClock(dt.datetime(2026, 3, 3, 9, tzinfo=dt.UTC))
    loket.clock = clock
    loket.suspend(ref, "Tekening ontbreekt", actor=STAFF)
    clock.at -= dt.timedelta(seconds=5)
    with pytest.raises(InvalidValue, match="cannot be resumed earlier"):
        loket.resume(ref, actor=STAFF)
    assert loket.get_case(ref).suspended_at == dt.datetime(2026, 3, 3, 9, tzinfo=dt.UTC)
    clock.at += dt.timedelta(seconds=10)
    assert loket.resume(ref, actor=STAFF).suspended_at is None
    engine.dispose()


# -- what the terminal shows -------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["case", "comment", "BI-2026-00001", "Feest\x1b]0;pwned\x07"], "a comment may not hold control characters"),
    (["case", "advance", "BI-2026-00001", "in_behandeling", "--comment", "\x1b[2J"],
     "--comment may not hold control characters"),
    (["case", "suspend", "BI-2026-00001", "--reason", "regel 1\nregel 2"], "--reason must be one line"),
    (["case", "set", "BI-2026-00001", "title=Feest\x1b[2J"], "field 'title' must be one line"),
    (["case", "set", "BI-2026-00001", "title=Feest", "title=Braderie"], "field 'title' is given twice"),
])
def test_control_characters_in_what_a_user_types_are_refused(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    before = history(capsys, sim)
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-03T09:00", "--as", STAFF, *args)
    assert code == 2
    assert words in only_error(err)
    assert history(capsys, sim) == before


def test_a_comment_keeps_its_lines_and_the_terminal_shows_them_escaped(
    sim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-03T09:00", "--as", STAFF,
                           "case", "comment", "BI-2026-00001", "regel 1\r\nregel 2\tmet tab")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "--db", sim, "audit", "history", "BI-2026-00001", "--json")
    assert '"comment": "regel 1\\nregel 2\\tmet tab"' in out  # CR LF stored as LF
    code, out, _ = run_cli(capsys, "--db", sim, "audit", "history", "BI-2026-00001")
    assert code == 0
    assert "regel 1\\nregel 2\\tmet tab" in out
    # One table row per event: the line break stayed inside its row.
    assert len(out.strip().splitlines()) == 1 + 1 + 2  # title, header, 2 events


def test_what_reached_the_history_otherwise_is_still_shown_escaped(
    sim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Values stored before these checks (or by an import) cannot reach the terminal raw."""
    with closing(sqlite3.connect(sim.removeprefix("sqlite:///"))) as db, db:
        db.execute("UPDATE case_event SET comment = ? WHERE seq = 1", ("Feest\x1b]0;pwned\x07\x1b[2J",))
        db.execute("UPDATE cases SET data = ?", ('{"title": "Feest\\u001b[2J"}',))
    code, out, _ = run_cli(capsys, "--db", sim, "audit", "history", "BI-2026-00001")
    assert "\x1b" not in out and "\x07" not in out
    assert "Feest\\x1b]0;pwned\\x07\\x1b[2J" in out
    code, out, _ = run_cli(capsys, "--db", sim, "case", "show", "BI-2026-00001")
    assert code == 0
    assert "\x1b" not in out and "Feest\\x1b[2J" in out


def test_the_forecast_shows_local_times(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    # BI-2026-00001 entered `ingediend` Mon 03-02: rung 1 fires Thu 03-05 at 23:59:59 in
    # Amsterdam (22:59:59Z).
    code, out, err = run_cli(capsys, "--db", sim, "--now", "2026-03-02T12:00", "escalate", "--forecast", "4")
    assert code == 0, err
    assert out.splitlines()[1].startswith("2026-03-05 23:59  BI-2026-00001")


# -- who reads, what is listed -----------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--as", "nobody", "case", "show", "BI-2026-00001"], "unknown person 'nobody'"),
    (["--as", "nobody", "case", "triggers", "BI-2026-00001"], "unknown person 'nobody'"),
    (["--as", "nobody", "case", "list"], "unknown person 'nobody'"),
    (["--as", "", "case", "list"], "--as (or LOKET_USER) is empty"),
    (["case", "list", "--state", "nergens"], "unknown state 'nergens'"),
    (["case", "list", "--type", "melding", "--state", "ingediend"], "unknown state 'ingediend' in request type"),
])
def test_reading_with_a_name_that_names_nothing_is_an_error(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, *args)
    assert code == 2
    assert words in only_error(err)


@pytest.mark.parametrize("args", [
    ["case", "show", "BI-2026-00001"],
    ["case", "triggers", "BI-2026-00001"],
    ["case", "list"],
])
def test_an_administrator_may_read_the_case_an_escalation_sent_them(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run_cli(capsys, "--db", sim, "--as", "wethouder.wijken", *args)
    assert code == 0, err
    assert "BI-2026-00001" in out or "you (wethouder.wijken) may fire it now" in out


def test_reading_as_the_login_name_of_nobody_in_the_organisation_shows_no_triggers(
    sim: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOKET_USER", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "beheerder")
    code, out, err = run_cli(capsys, "--db", sim, "case", "show", "BI-2026-00001")
    assert code == 0, err
    assert "you (beheerder) may: nothing now" in out


def test_the_demo_in_a_folder_it_cannot_write_is_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "demo", "--days", "2", "--dir", "/sys/wijkloket-demo")
    assert code == 2 and out == ""
    assert only_error(err).startswith("Error: cannot run the demo in /sys/wijkloket-demo:")


@pytest.mark.parametrize("column, value", [("data", "not json"), ("at", "garbage")])
def test_reading_a_damaged_history_is_one_error_naming_verify(
    sim: str, capsys: pytest.CaptureFixture[str], column: str, value: str
) -> None:
    with closing(sqlite3.connect(sim.removeprefix("sqlite:///"))) as db, db:
        db.execute(f"UPDATE case_event SET {column} = ? WHERE seq = 1", (value,))
    for args in (["audit", "history", "BI-2026-00001"], ["case", "show", "BI-2026-00001", "--explain"]):
        code, _, err = run_cli(capsys, "--db", sim, *args)
        assert code == 1
        assert only_error(err).startswith("Error: the stored history of BI-2026-00001 cannot be read back (")
        assert "run 'loket audit verify' to find the damaged event" in err
    code, _, err = run_cli(capsys, "--db", sim, "audit", "verify")
    assert code == 1 and "BI-2026-00001 event 1" in err


def test_outbox_retry_through_the_command_line(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--db", sim, "outbox", "retry", "--failed")
    assert (code, out) == (0, "no failed messages to queue again\n"), err
    code, _, err = run_cli(capsys, "--db", sim, "outbox", "retry")
    assert code == 2 and only_error(err).startswith("Error: ")
    code, _, err = run_cli(capsys, "--db", sim, "outbox", "retry", "BI-2026-00001/1/9")
    assert code == 2 and "BI-2026-00001/1/9" in only_error(err)


def test_an_organisation_without_an_assignee_warns_about_their_open_cases(
    sim: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-02T11:00", "--as", STAFF,
                           "case", "assign", "BI-2026-00001", "l.mulder")
    assert code == 0, err
    source = (Path(__file__).resolve().parent.parent / "workflows" / "organisation.yaml").read_text()
    lines = source.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == "- id: l.mulder")
    without = tmp_path / "zonder-mulder.yaml"
    without.write_text("".join(lines[:start] + lines[start + 4:]))
    code, out, err = run_cli(capsys, "--db", sim, "org", "load", str(without))
    assert code == 0
    assert out.startswith("organisation loaded: Gemeente Voorbeeld (6 units, 23 people)")
    assert err == ("Warning: 1 open case(s) are assigned to people no longer in the organisation:"
                   " BI-2026-00001 (l.mulder); their reminders go to the unit's lead until 'loket case assign'"
                   " gives them to someone\n")


def test_a_suspended_case_is_listed_as_suspended_not_with_its_stale_deadline(
    sim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-03T09:00", "--as", STAFF,
                           "case", "suspend", "BI-2026-00001", "--reason", "Tekening ontbreekt")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "--db", sim, "--now", "2026-03-20T09:00", "case", "list")
    [row] = out.splitlines()[1:]
    assert row.split()[0] == "BI-2026-00001" and row.split()[-1] == "suspended"


@pytest.mark.parametrize("args", [
    ["case", "list", "--mine"],
    ["case", "advance", "BI-2026-00001", "in_behandeling"],
])
def test_an_administrator_who_tries_to_act_is_told_what_administrators_may_do(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-03T09:00", "--as", "wethouder.wijken", *args)
    assert code == 1
    assert ("wethouder.wijken is an administrator: administrators do not advance, assign or change cases (the unit"
            " does the work); they may comment (case comment) and give an instruction (case direct)") in only_error(err)


def test_the_outbox_listing_shows_the_keys_retry_takes(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--db", sim, "--now", "2026-03-20T09:00", "escalate")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "--db", sim, "outbox", "list")
    assert out.splitlines()[0].split()[:3] == ["ID", "KEY", "STATUS"]
    assert "BI-2026-00001/1/1" in out


def test_a_simulation_cannot_suspend_again_inside_a_suspension_it_already_ended(
    sim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(now: str, *args: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--db", sim, "--now", now, "--as", STAFF, "case", *args)

    assert run("2026-03-13T09:00", "suspend", "BI-2026-00001", "--reason", "w1")[0] == 0
    assert run("2026-03-23T09:00", "resume", "BI-2026-00001")[0] == 0
    before = history(capsys, sim)
    # The same days a second time would push the decision date twice for one wait.
    code, _, err = run("2026-03-14T09:00", "suspend", "BI-2026-00001", "--reason", "w2")
    assert code == 2
    assert "2026-03-23T08:00:00.000000Z (an event of BI-2026-00001)" in only_error(err)
    assert history(capsys, sim) == before
