"""Reading definition files with the line number of every key.

Validation reports each problem with its place in the file, so the loader keeps a map from
the path of every mapping key and sequence item to its line. The data itself is returned as
plain dicts and lists, so nothing downstream depends on the YAML library.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import InvalidDefinition, Problem

Path_ = tuple[Any, ...]
Locator = Callable[[Path_], int | None]


def no_lines(path: Path_) -> int | None:
    """The locator for data that did not come from a file (e.g. read back from the database)."""
    return None


def load_text(text: str, filename: str) -> tuple[Any, Locator]:
    """Parse YAML text; refuse malformed YAML and duplicate keys with their line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.Constructor = _lenient_dates()
    try:
        raw = yaml.load(text)
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
    lines: dict[Path_, int] = {}
    data = _plain(raw, (), lines)

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
    """Read a definition file; returns the data, its locator and the source text."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidDefinition([Problem(name, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDefinition([Problem(name, "", f"cannot read file: {exc}")]) from None
    data, locate = load_text(text, name)
    return data, locate, text


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
