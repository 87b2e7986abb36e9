"""Writing a file the user named (`audit export -o`, `report --html`), safely.

A regular file (or a new one) is written to a temporary file beside it and renamed over it
at the end, so a run that fails half-way leaves the old file as it was and never a truncated
one. Whatever else stands at the path is written *through*, never replaced: a symbolic link
is followed to the file it names (the link stays), and a device, pipe or socket
(`/dev/stdout`, a FIFO a reader waits on) receives the output directly. A folder, a missing
folder or a file the user may not write is one clear error, not a traceback.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from engine.errors import InvalidValue


def _open(where: Path | int, binary: bool) -> IO[Any]:
    """A path or an open file descriptor, for writing bytes or UTF-8 text (newlines as given)."""
    if binary:
        return open(where, "wb")
    return open(where, "w", encoding="utf-8", newline="")


def _cannot(path: str, exc: OSError) -> InvalidValue:
    return InvalidValue(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def output_file(path: str, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Open `path` for writing as described above; the rename happens when the block ends
    without an exception."""
    if not path or not path.strip():
        raise InvalidValue("the output file name is empty")
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
            handle = _open(Path(path), binary)
        except OSError as exc:
            raise _cannot(path, exc) from None
        try:
            with handle:
                yield handle
        except OSError as exc:
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
