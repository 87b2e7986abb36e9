"""Reading definition files with the line number of every key.

Validation reports each problem with its place in the file, so the loader keeps a map from
the path of every mapping key and sequence item to its line. The data itself is returned as
plain dicts and lists, so nothing downstream depends on the YAML library.

Anyone may hand `loket workflow validate` a file, so reading one is bounded: its size, how
deep it nests and how much its aliases repeat. The YAML library expands an alias into a copy
of what its anchor names (a 300-byte file of nested aliases stands for billions of values)
and recurses once per level of nesting, so both are counted while the file is composed, before
anything is built from it, and refused with the place in the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn

from engine.errors import InvalidDefinition, Problem

Path_ = tuple[Any, ...]
Locator = Callable[[Path_], int | None]

#: The largest definition file read (the bundled ones are a few KiB).
MAX_FILE_BYTES: Final = 1024 * 1024
#: The deepest nesting of mappings and lists, aliases expanded (the bundled files nest 5 deep).
MAX_DEPTH: Final = 50
#: How many values all the aliases (`*name`) of a file may repeat together.
MAX_ALIASED_VALUES: Final = 100_000


def no_lines(path: Path_) -> int | None:
    """The locator for data that did not come from a file (e.g. read back from the database)."""
    return None


def _too_large(filename: str, size: int | None) -> InvalidDefinition:
    """`size` None: a stream that went on past the limit."""
    what = f"is {size} bytes" if size is not None else "is larger"
    return InvalidDefinition([Problem(filename, "", f"the file {what}; the limit is {MAX_FILE_BYTES} bytes"
                                      f" ({MAX_FILE_BYTES // 1024} KiB)")])


def load_text(text: str, filename: str) -> tuple[Any, Locator]:
    """Parse YAML text; refuse malformed YAML and duplicate keys with their line, and a text
    beyond the bounds above."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise _too_large(filename, len(text.encode("utf-8", "surrogatepass")))
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.Constructor = _lenient_dates()
    yaml.Composer = _bounded_composer()
    try:
        raw = yaml.load(text)
        lines: dict[Path_, int] = {}
        data = _plain(raw, (), lines)
    except RecursionError:
        # The composer refuses deep nesting long before this; this is the net beneath it.
        raise InvalidDefinition([Problem(filename, "", f"nested deeper than {MAX_DEPTH} levels")]) from None
    except _Refused as exc:
        raise InvalidDefinition([Problem(filename, "", exc.message, exc.line)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = (exc.problem or exc.context or "malformed YAML").strip()
        raise InvalidDefinition([Problem(filename, "", f"malformed YAML: {reason}", line)]) from None
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed YAML"
        raise InvalidDefinition([Problem(filename, "", f"malformed YAML: {first}")]) from None
    except (ValueError, OverflowError) as exc:
        # A scalar the reader cannot turn into a value, such as an integer of thousands of digits.
        raise InvalidDefinition([Problem(filename, "", f"a value cannot be read: {exc}")]) from None

    def locate(path: Path_) -> int | None:
        # The closest enclosing node with a known line is the best place to point at.
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return lines.get(())

    return data, locate


_LENIENT: Any = None


def _lenient_dates() -> Any:
    """The round-trip constructor, except that a date-shaped scalar naming no real day
    (`2026-02-30`) stays text: the checker then refuses it on its own line, as it does
    `not a date`, instead of the reader failing the whole file without one."""
    global _LENIENT
    if _LENIENT is None:
        from ruamel.yaml.constructor import RoundTripConstructor

        class LenientDates(RoundTripConstructor):
            def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
                try:
                    return super().construct_yaml_timestamp(node, values)
                except (ValueError, OverflowError):
                    return str(node.value)

        LenientDates.add_constructor("tag:yaml.org,2002:timestamp", LenientDates.construct_yaml_timestamp)
        _LENIENT = LenientDates
    return _LENIENT


def load_file(path: str | Path) -> tuple[Any, Locator, str]:
    """Read a definition file; returns the data, its locator and the source text.

    The size is checked before reading (a regular file) and while reading (a pipe, such as
    `<(…)` in a shell), so a file beyond the limit is never read whole."""
    name = str(path)
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
            raise _too_large(name, info.st_size)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise _too_large(name, None)
        # Newlines as text mode reads them, which is how definitions have always been stored.
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise InvalidDefinition([Problem(name, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDefinition([Problem(name, "", f"cannot read file: {exc}")]) from None
    data, locate = load_text(text, name)
    return data, locate, text


class _Refused(Exception):
    """A bound of this module was reached, at `line`."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_BOUNDED: Any = None


def _bounded_composer() -> Any:
    """The YAML composer, counting as it goes: how deep each value nests and how many values
    it holds, with an alias counted as everything its anchor holds (anchors are composed once
    and aliases point at them, so counting is linear in the file even where the expansion is
    not). Refused: nesting deeper than MAX_DEPTH, more than MAX_ALIASED_VALUES values repeated
    by aliases, and an alias inside its own anchor (a structure that contains itself)."""
    global _BOUNDED
    if _BOUNDED is None:
        from ruamel.yaml.composer import Composer
        from ruamel.yaml.events import AliasEvent

        class BoundedComposer(Composer):
            def __init__(self, loader: Any = None) -> None:
                super().__init__(loader)
                self.counts: dict[int, tuple[int, int]] = {}  # id of an anchored node: (values, height)
                self.open: list[list[int]] = []  # per node being composed: [values, height] below it
                self.aliased = 0

            def refuse(self, message: str, event: Any) -> NoReturn:
                raise _Refused(message, event.start_mark.line + 1)

            def compose_node(self, parent: Any, index: Any) -> Any:
                event = self.parser.peek_event()
                if isinstance(event, AliasEvent):
                    node = super().compose_node(parent, index)
                    counted = self.counts.get(id(node))
                    if counted is None:
                        self.refuse(f"the alias *{event.anchor} is used inside its own anchor", event)
                    values, height = counted
                    self.aliased += values
                    if self.aliased > MAX_ALIASED_VALUES:
                        self.refuse(f"the aliases repeat more than {MAX_ALIASED_VALUES} values", event)
                    self.count(values, height, event)
                    return node
                if len(self.open) >= MAX_DEPTH:
                    self.refuse(f"nested deeper than {MAX_DEPTH} levels", event)
                self.open.append([0, 0])
                node = super().compose_node(parent, index)
                below, height = self.open.pop()
                if event.anchor is not None:
                    self.counts[id(node)] = (below + 1, height + 1)
                self.count(below + 1, height + 1, event)
                return node

            def count(self, values: int, height: int, event: Any) -> None:
                if not self.open:
                    return
                if len(self.open) + height > MAX_DEPTH:  # only an alias can get here
                    self.refuse(f"nested deeper than {MAX_DEPTH} levels (through the alias *{event.anchor})",
                                event)
                parent = self.open[-1]
                parent[0] += values
                parent[1] = max(parent[1], height)

        _BOUNDED = BoundedComposer
    return _BOUNDED


def _plain(node: Any, path: Path_, lines: dict[Path_, int]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                lines[(*path, key)] = node.lc.key(key)[0] + 1
            out[_scalar(key)] = _plain(value, (*path, key), lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            with contextlib.suppress(KeyError, TypeError, AttributeError, IndexError):
                lines[(*path, index)] = node.lc.item(index)[0] + 1
            items.append(_plain(value, (*path, index), lines))
        return items
    return _scalar(node)


def _scalar(value: Any) -> Any:
    # ruamel returns subclasses of str/int/float/bool that carry formatting; make them plain.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value
