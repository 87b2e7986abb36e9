"""Output files the user names (`audit export -o`, `report --html`): written safely, through
links and devices, with one clear error for what cannot be written."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from engine.errors import InvalidValue
from engine.store.outfile import output_file


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_new_file_gets_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with output_file(str(target), database=None) as out:
        out.write("a;b\r\n")
    assert target.read_bytes() == b"a;b\r\n"  # written as given: no newline translation
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert leftovers(tmp_path) == []


def test_an_existing_file_is_replaced_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    target.chmod(0o600)
    with output_file(str(target), database=None) as out:
        out.write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failure_half_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), output_file(str(target), database=None) as out:
        out.write("half")
        raise RuntimeError("the export stopped")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_link_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.html"
    real.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    with output_file(str(link), binary=True, database=None) as out:
        out.write(b"<p>new</p>")
    assert link.is_symlink()
    assert real.read_text() == "<p>new</p>"


def test_a_pipe_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with output_file(str(fifo), database=None) as out:
        out.write("line 1\nline 2\n")
    reader.join(timeout=10)
    assert received == [b"line 1\nline 2\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_device_is_written_through_not_replaced() -> None:
    with output_file(os.devnull, database=None) as out:
        out.write("nothing")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("name, message", [
    ("", "the output file name is empty"),
    ("   ", "the output file name is empty"),
    ("{tmp}", "it is a folder"),
    ("{tmp}/missing/out.csv", "no such folder"),
])
def test_what_cannot_be_written_is_one_clear_error(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message), output_file(name.format(tmp=tmp_path), database=None) as out:
        out.write("never")
    assert leftovers(tmp_path) == []


def test_a_folder_nobody_may_write_in_is_a_clear_error() -> None:
    # sysfs refuses new files even to root, so this holds whoever runs the tests.
    with pytest.raises(InvalidValue, match=r"cannot write /sys/wijkloket\.csv: Permission denied"), \
            output_file("/sys/wijkloket.csv", database=None) as out:
        out.write("never")


def test_a_full_device_is_a_clear_error() -> None:
    with pytest.raises(InvalidValue, match="cannot write /dev/full: No space left on device"), \
            output_file("/dev/full", database=None) as out:
        out.write("x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_standard_output_into_a_pipe_is_written_through() -> None:
    # /dev/stdout links to /proc/self/fd/1, whose target names a pipe by a path that does
    # not exist: the file must be opened by the name given, not by where the link points.
    import subprocess
    import sys

    program = ("from engine.store.outfile import output_file\n"
               "with output_file('/dev/stdout', database=None) as out:\n"
               "    out.write('een\\ntwee\\n')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True,  # stdout: a pipe
                          cwd=Path(__file__).resolve().parent.parent, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"een\ntwee\n", b"")
