"""Writing a file the user named (`audit export -o`, `report --html`), safely.

Every output a command writes to a name the user gives goes through :func:`output_file`, and
it takes the database URL: a typo such as `-o loket.db` must never replace the live database.
The database file and SQLite's companions (`-wal`, `-shm`, `-journal`) are refused whatever
name reaches them: compared by device and inode, so a hard link, a symbolic link, `./loket.db`
or an absolute path are all caught; a companion that does not exist yet is compared by its
resolved path.

The name `-` is standard output (`report --html -`), for a command with one output: the
caller refuses it where two outputs would go there at once (:func:`refuse_two_on_stdout`).
Standard output redirected into the database (`>> loket.db`) is refused like the name. A
file literally called `-` is still reached as `./-`.

A regular file (or a new one) is written to a temporary file beside it and renamed over it
at the end, so a run that fails half-way leaves the old file as it was and never a truncated
one. Whatever else stands at the path is written *through*, never replaced: a symbolic link
is followed to the file it names (the link stays), and a device, pipe or socket
(`/dev/stdout`, a FIFO a reader waits on) receives the output directly. A FIFO nobody reads is
waited for a few seconds, not for ever. A folder, a missing folder or a file the user may not
write is one clear error, not a traceback. A reader that goes away (`| head`) is not turned
into such an error: the `BrokenPipeError` reaches the caller, which ends quietly.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, Final

from engine.errors import InvalidValue

#: How long an output FIFO may stay without a reader before the command gives up.
FIFO_WAIT_SECONDS = 5.0
#: The files SQLite keeps beside a database, by the suffix it adds to the database's name.
COMPANIONS: Final = {"": "the database", "-wal": "the database's write-ahead log",
                     "-shm": "the database's shared-memory file", "-journal": "the database's journal"}


#: The name of standard output as an output file.
STDOUT: Final = "-"


def refuse_two_on_stdout(outputs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse (exit 2) when more than one of `outputs`, each `(option, path)`, would go to
    standard output (a path of `-`, or None for an output that always goes there): their
    bytes would run together."""
    on_stdout = [option if path is None else f"{option} {STDOUT}" for option, path in outputs
                 if path is None or path == STDOUT]
    if len(on_stdout) > 1:
        raise InvalidValue(f"{' and '.join(on_stdout)} would both write to standard output:"
                           " give a file name to all but one")


def _stdout_stat() -> os.stat_result | None:
    try:
        return os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real descriptor (a test's capture)
        return None


def refuse_database(path: str, database: str | None) -> None:
    """Raise InvalidValue when writing `path` would write the database `database` (a URL) or
    one of its companion files. A PostgreSQL database (or None) has no file to protect."""
    from engine.store.db import sqlite_path

    db = sqlite_path(database) if database else None
    if db is None:
        return
    target: os.stat_result | None
    if path == STDOUT:
        target, resolved = _stdout_stat(), None
        path = "standard output"
    else:
        try:
            target = os.stat(path)  # through links: what would be written
        except OSError:
            target = None
        resolved = os.path.realpath(path)
    # SQLite names the companions after the database as opened; newer versions after the
    # file a link points to. Both are covered.
    for base in dict.fromkeys((db, os.path.realpath(db))):
        for suffix, what in COMPANIONS.items():
            name = base + suffix
            try:
                existing = os.stat(name)
            except OSError:
                existing = None
            same_file = (target is not None and existing is not None
                         and (target.st_dev, target.st_ino) == (existing.st_dev, existing.st_ino))
            if same_file or resolved == os.path.realpath(name):
                raise InvalidValue(f"refusing to write {path}: it is {what} ({name})")


def _open(where: Path | int, binary: bool) -> IO[Any]:
    """A path or an open file descriptor, for writing bytes or UTF-8 text (newlines as given)."""
    if binary:
        return open(where, "wb")
    return open(where, "w", encoding="utf-8", newline="")


def _cannot(path: str, exc: OSError) -> InvalidValue:
    return InvalidValue(f"cannot write {path}: {exc.strerror or exc}")


def _reader_gone(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE


def _open_fifo(path: str, binary: bool, wait: float) -> IO[Any]:
    """Open a FIFO for writing once a reader has it open, or refuse after `wait` seconds.

    A blocking open would wait for ever; without O_NONBLOCK there is no way to give up. The
    non-blocking open fails with ENXIO while nobody reads, so it is retried until the deadline;
    once open, the descriptor is made blocking again so that writes wait for a slow reader.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise _cannot(path, exc) from None
            if time.monotonic() >= deadline:
                raise InvalidValue(f"cannot write {path}: no reader on the FIFO after {wait:g} seconds") from None
            time.sleep(0.05)
    os.set_blocking(fd, True)
    return _open(fd, binary)


@contextmanager
def output_file(path: str, *, database: str | None, binary: bool = False) -> Iterator[IO[Any]]:
    """Open `path` for writing as described above; the rename happens when the block ends
    without an exception. `database` is the URL of the database the command has open (None
    when there is none): its files are refused."""
    if not path or not path.strip():
        raise InvalidValue("the output file name is empty")
    refuse_database(path, database)
    if path == STDOUT:
        with _stdout(binary) as handle:
            yield handle
        return
    try:
        mode = os.stat(path).st_mode  # through links: what is written to in the end
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _cannot(path, exc) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InvalidValue(f"cannot write {path}: it is a folder")
    if mode is not None and not stat.S_ISREG(mode):
        # Opened by the name given: `/dev/stdout` is a link to `/proc/self/fd/1`, which names
        # a pipe by a path that does not exist, but opens fine.
        try:
            handle = _open_fifo(path, binary, FIFO_WAIT_SECONDS) if stat.S_ISFIFO(mode) else _open(Path(path), binary)
        except OSError as exc:
            raise _cannot(path, exc) from None
        try:
            with handle:
                yield handle
        except OSError as exc:
            if _reader_gone(exc):
                raise
            raise _cannot(path, exc) from None
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise InvalidValue(f"cannot write {path}: no such folder {target.parent}")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        with _open(fd, binary) as handle:
            yield handle
        # mkstemp makes the file private (0600); give it the mode a new file would get, or
        # keep the mode of the file it replaces.
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _stdout(binary: bool) -> Iterator[IO[Any]]:
    """Standard output as an output file: what the block writes, flushed at its end. A reader
    that went away is the caller's to end quietly, as for any output."""
    sys.stdout.flush()
    handle: IO[Any] = sys.stdout.buffer if binary else sys.stdout
    yield handle
    handle.flush()


def write_all(outputs: Sequence[tuple[str, str, bytes]], *, database: str | None) -> None:
    """Write several outputs, each `(option, path, content)`, all or none: every file is
    opened (its temporary file made) before any is written, and the renames happen only when
    all were written, so an output that cannot be written leaves the others untouched too.
    Standard output (`-`, at most one of them) is written last, once every file is in place.
    Two options naming one file (by name, link or hard link) are refused: one would silently
    replace the other. A device or FIFO may be named twice (written through, twice)."""
    refuse_two_on_stdout([(option, path) for option, path, _ in outputs if path == STDOUT])
    if any(path == STDOUT for _, path, _ in outputs):
        refuse_database(STDOUT, database)
    to_stdout = [content for _, path, content in outputs if path == STDOUT]
    outputs = [output for output in outputs if output[1] != STDOUT]
    seen: dict[object, str] = {}
    for option, path, _ in outputs:
        try:
            found = os.stat(path)
        except OSError:
            found = None
        if found is not None and not stat.S_ISREG(found.st_mode):
            continue
        key: object = (found.st_dev, found.st_ino) if found is not None else os.path.realpath(path)
        if path and key in seen:
            raise InvalidValue(f"{seen[key]} and {option} name the same file {path}: one would replace the other")
        seen[key] = option
    with ExitStack() as stack:
        handles = [stack.enter_context(output_file(path, database=database, binary=True))
                   for _, path, _ in outputs]
        for handle, (_, _, content) in zip(handles, outputs, strict=True):
            handle.write(content)
    for content in to_stdout:
        with _stdout(binary=True) as out:
            out.write(content)
