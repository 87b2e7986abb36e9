"""Outputs the user names never touch the database, a FIFO nobody reads is not waited for for
ever, and a reader that stops early (`| head`) ends the command quietly.

The pipes here are real: the command runs as a subprocess whose standard output is a pipe,
read by `head` or closed before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidValue
from engine.store import outfile
from engine.store.outfile import output_file, refuse_database
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
STAFF = "c.devries"
OUTPUTS = [["audit", "export", "-o"], ["audit", "export", "--output"], ["report", "--html"], ["report", "--public"]]


def only_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.fixture
def sim(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A simulation database `loket.db` in the current folder, with one case; its path."""
    monkeypatch.delenv("LOKET_NOW", raising=False)
    monkeypatch.delenv("LOKET_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "--now", "2026-03-02T09:00", "init", "--sample", "--simulation")[0] == 0
    code, _, err = run_cli(capsys, "--db", url, "--now", "2026-03-02T10:00", "--as", STAFF,
                           "case", "new", "bewonersinitiatief", "--data", "title=Straatfeest")
    assert code == 0, err
    yield tmp_path / "loket.db"


def intact(db: Path) -> bool:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM cases").fetchone()[0] == 1


# -- the database is never an output ------------------------------------------------------------


@pytest.mark.parametrize("command", OUTPUTS)
@pytest.mark.parametrize("name", ["loket.db", "./loket.db", "{tmp}/loket.db", "{tmp}/./sub/../loket.db",
                                  "loket.db-wal", "loket.db-shm", "loket.db-journal", "hard.db", "soft.db",
                                  "soft-wal"])
def test_no_output_option_writes_the_database_or_its_companions(
    sim: Path, capsys: pytest.CaptureFixture[str], command: list[str], name: str
) -> None:
    tmp = sim.parent
    (tmp / "sub").mkdir()
    os.link(sim, tmp / "hard.db")
    (tmp / "soft.db").symlink_to(sim)
    (tmp / "soft-wal").symlink_to(tmp / "loket.db-wal")  # dangling: the log does not exist now
    before = sim.read_bytes()
    code, _, err = run_cli(capsys, "--db", f"sqlite:///{sim}", *command, name.format(tmp=tmp))
    assert code == 2
    assert "refusing to write" in only_error(err) and "it is the database" in err
    assert sim.read_bytes() == before and intact(sim)
    assert not (tmp / "loket.db-wal").exists() or (tmp / "loket.db-wal").stat().st_size == 0
    assert not [p for p in tmp.iterdir() if p.name.endswith(".partial")]


def test_a_relative_database_url_is_protected_too(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--db", "sqlite:///loket.db", "audit", "export", "-o", str(sim))
    assert code == 2 and "it is the database (loket.db)" in only_error(err)


def test_the_database_behind_standard_output_is_refused(sim: Path) -> None:
    # `loket report --html /dev/stdout >> loket.db`: the name says nothing, the inode does.
    before = sim.read_bytes()
    with open(sim, "ab") as appended:
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--db", "sqlite:///loket.db",
                               "report", "--html", "/dev/stdout"],
                              stdout=appended, stderr=subprocess.PIPE, cwd=sim.parent, check=False)
    assert done.returncode == 2
    assert done.stderr.decode().startswith("Error: refusing to write /dev/stdout: it is the database")
    assert sim.read_bytes() == before


def test_other_outputs_beside_the_database_are_written(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("loket.db.jsonl", "loket.db-wal.txt", "events.jsonl"):
        code, _, err = run_cli(capsys, "--db", f"sqlite:///{sim}", "audit", "export", "-o", name)
        assert code == 0, err
        assert (sim.parent / name).read_text().count('"action":"created"') == 1


def test_the_guard_alone(tmp_path: Path) -> None:
    db = tmp_path / "data" / "loket.db"
    db.parent.mkdir()
    db.write_bytes(b"SQLite format 3\0")
    url = f"sqlite:///{db}"
    (tmp_path / "link").symlink_to(db.parent)
    for name in (db, tmp_path / "link" / "loket.db", tmp_path / "link" / "loket.db-journal"):
        with pytest.raises(InvalidValue, match="refusing to write"):
            refuse_database(str(name), url)
    refuse_database(str(tmp_path / "data" / "loket.db-walrus"), url)
    refuse_database(str(db), "postgresql+psycopg://someone@localhost/loket")  # no file to protect
    refuse_database(str(db), "sqlite://")  # in memory
    refuse_database(str(db), None)


# -- FIFOs ------------------------------------------------------------------------------------


def test_a_fifo_without_a_reader_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outfile, "FIFO_WAIT_SECONDS", 0.3)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InvalidValue, match=r"no reader on the FIFO after 0\.3 seconds"), \
            output_file(str(fifo), database=None) as out:
        out.write("never")
    assert time.monotonic() - started < 3


def test_a_fifo_whose_reader_comes_late_is_written(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read_late() -> None:
        time.sleep(0.5)
        received.append(fifo.read_bytes())

    reader = threading.Thread(target=read_late)
    reader.start()
    with output_file(str(fifo), database=None) as out:
        out.write("x" * 300_000)  # more than a pipe holds: the writes wait for the reader
    reader.join(timeout=10)
    assert received == [b"x" * 300_000]


def test_export_to_a_fifo_nobody_reads_ends_with_exit_2(sim: Path) -> None:
    os.mkfifo(sim.parent / "pipe")
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--db", "sqlite:///loket.db",
                           "audit", "export", "-o", "pipe"],
                          capture_output=True, cwd=sim.parent, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == b"Error: cannot write pipe: no reader on the FIFO after 5 seconds\n"
    assert time.monotonic() - started < 30


# -- a reader that stops early ----------------------------------------------------------------


def loket(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), "--db", "sqlite:///loket.db", *args]


@pytest.fixture
def busy(sim: Path) -> Path:
    """The database of `sim` with enough history that an export is larger than a pipe holds."""
    import datetime as dt

    from engine.app.clock import FixedClock
    from engine.app.service import Loket
    from engine.store.db import open_engine

    engine = open_engine(f"sqlite:///{sim}")
    app = Loket(engine, FixedClock(dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)))
    for number in range(40):
        ref = app.new_case("bewonersinitiatief", [f"title=Buurtfeest {number}"], actor=STAFF).ref
        for line in range(5):
            app.comment(ref, f"Overleg {line} met de buurt over de afsluiting van de straat " * 3, actor=STAFF)
    engine.dispose()
    return sim


@pytest.mark.parametrize("args", [
    ["audit", "export"],
    ["audit", "export", "--format", "csv"],
    ["audit", "export", "-o", "/dev/stdout"],
    ["case", "list"],
    ["audit", "history", "BI-2026-00001"],
    ["report"],
    ["report", "--html", "/dev/stdout"],
    ["report", "--html", "-"],
    ["report", "--public", "-"],
    ["audit", "export", "-o", "-"],
    ["--help"],
])
def test_a_reader_gone_before_the_output_ends_the_command_quietly(busy: Path, args: list[str]) -> None:
    # The read end is closed before the command has written anything: its first write fails.
    process = subprocess.Popen(loket(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=busy.parent)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) in (0, 141)
    assert err == b""


@pytest.mark.parametrize("args, reader", [
    (["audit", "export"], ["head", "-c", "5"]),
    (["audit", "export", "--format", "csv"], ["head", "-n", "1"]),
    (["audit", "export", "-o", "/dev/stdout"], ["head", "-c", "5"]),
    (["audit", "export", "-o", "-"], ["head", "-c", "5"]),
    (["audit", "history", "BI-2026-00001"], ["head", "-n", "2"]),
    (["case", "list"], ["head", "-n", "1"]),
])
def test_head_reads_what_it_wants_and_the_command_ends_quietly(
    busy: Path, args: list[str], reader: list[str]
) -> None:
    process = subprocess.Popen(loket(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=busy.parent)
    assert process.stdout is not None and process.stderr is not None
    head = subprocess.run(reader, stdin=process.stdout, capture_output=True, check=True)
    process.stdout.close()
    err = process.stderr.read()
    code = process.wait(timeout=60)
    assert head.stdout
    assert (code, err) in ((0, b""), (141, b""))
    if args[:2] == ["audit", "export"]:
        assert code == 141  # an export of 40 cases does not fit in a pipe: it was cut short


def test_an_export_into_a_fifo_whose_reader_stops_ends_quietly(busy: Path) -> None:
    fifo = busy.parent / "pipe"
    os.mkfifo(fifo)
    process = subprocess.Popen(loket("audit", "export", "-o", "pipe"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=busy.parent)
    with open(fifo, "rb") as reading:
        assert reading.read(5) == b'{"ref'
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (141, b"", b"")


# -- `-` is standard output, for one output ------------------------------------------------------


@pytest.mark.parametrize("args, starts", [
    (["report", "--html", "-"], b"<!DOCTYPE html>"),
    (["report", "--public", "-"], b"<!DOCTYPE html>"),
    (["audit", "export", "-o", "-"], b'{"ref":"BI-2026-00001"'),
    (["audit", "export", "--format", "csv", "--output", "-"], b"ref,"),
])
def test_a_dash_writes_to_standard_output_and_no_file_named_dash(sim: Path, args: list[str], starts: bytes) -> None:
    done = subprocess.run(loket(*args), capture_output=True, cwd=sim.parent, check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.startswith(starts)
    if args[0] == "report":
        assert done.stdout.rstrip().endswith(b"</html>")
    assert not (sim.parent / "-").exists()
    assert not [p for p in sim.parent.iterdir() if p.name.endswith(".partial")]


def test_one_page_on_standard_output_and_one_in_a_file(sim: Path) -> None:
    done = subprocess.run(loket("report", "--html", "-", "--public", "openbaar.html"), capture_output=True,
                          cwd=sim.parent, check=False)
    assert done.returncode == 0, done.stderr
    page = done.stdout.decode()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")  # the page alone
    assert done.stderr.decode().startswith("public results page written to openbaar.html")
    assert (sim.parent / "openbaar.html").read_text().startswith("<!DOCTYPE html>")
    assert not (sim.parent / "-").exists()


@pytest.mark.parametrize("args, message", [
    (["report", "--html", "-", "--public", "-"],
     "Error: --html - and --public - would both write to standard output: give a file name to all but one"),
    (["report", "--html", "-", "--json"],
     "Error: --html - and --json would both write to standard output: give a file name to all but one"),
    (["report", "--public", "-", "--html", "rapport.html", "--json"],
     "Error: --public - and --json would both write to standard output: give a file name to all but one"),
    (["--as", "o.beheer", "retention", "run", "--reason", "selectielijst", "--list", "-"],
     "Error: --list - would mix the destruction list with the run's summary on standard output,"
     " and the archivist needs a file: give a file name"),
])
def test_two_outputs_on_standard_output_are_refused_and_nothing_is_written(
    sim: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = sim.read_bytes()
    code, out, err = run_cli(capsys, "--db", f"sqlite:///{sim}", *args)
    assert (code, out) == (2, "")
    assert only_error(err) == message
    assert sorted(p.name for p in sim.parent.iterdir()) == ["loket.db"]  # no page, no `-`, no .partial
    assert sim.read_bytes() == before


@pytest.mark.parametrize("args", [["report", "--html", "-"], ["audit", "export", "-o", "-"]])
def test_standard_output_into_the_database_is_refused_for_a_dash(sim: Path, args: list[str]) -> None:
    # `loket report --html - >> loket.db`: `-` is checked like any name.
    before = sim.read_bytes()
    with open(sim, "ab") as appended:
        done = subprocess.run(loket(*args), stdout=appended, stderr=subprocess.PIPE, cwd=sim.parent, check=False)
    assert done.returncode == 2
    assert done.stderr.decode() == "Error: refusing to write standard output: it is the database (loket.db)\n"
    assert sim.read_bytes() == before


def test_a_file_named_dash_is_still_reached_as_dot_slash_dash(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--db", f"sqlite:///{sim}", "report", "--html", "./-")
    assert code == 0, err
    assert (sim.parent / "-").read_text().startswith("<!DOCTYPE html>")
    assert out.startswith("report page written to ./-")


@pytest.mark.parametrize("command, option", [(["report"], "--html"), (["report"], "--public"),
                                             (["audit", "export"], "--output")])
def test_help_says_what_a_dash_means(capsys: pytest.CaptureFixture[str], command: list[str], option: str) -> None:
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "standard output" in text[text.index(option):].split("--", 2)[1]
