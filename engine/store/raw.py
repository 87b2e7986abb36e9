"""Reading rows that may be damaged, value by value, past every decoder of the driver.

A row can be damaged so badly that it cannot even be read back: JSON that does not parse or
is not an object, a time that is no time, binary data in a text column (SQLite keeps any
value in any column). `RawReader` selects each checked column raw — on SQLite its storage
class and its bytes, on PostgreSQL its text — and decodes it here, one value at a time, so
that a damaged value becomes a finding (`Unreadable`, with what is wrong) instead of ending
the whole read. It is the careful pass of `audit verify` and `audit export`; the quick pass
reads as usual and only a damaged database pays for this one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

INT, TEXT, JSON, TIME = "int", "text", "json", "time"
"""What a checked column must hold. JSON here is always an object or null; a time is never null."""
TIME_OR_NULL, BOOL = "time-or-null", "bool"
"""A time that may be null (a deadline, say); true or false (SQLite stores 1 or 0)."""
INT_OR_NULL = "int-or-null"
"""A whole number that may be null (the event number of a case's instruction, say)."""
_OUTSIDE = "outside"
"""What PostgreSQL's raw read of a time that may be null gives for one Python cannot hold."""
_NO_TIME = "holds no time that can be read (infinite, or outside the years 1 to 9999)"

_FIRST_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_LAST_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


class Unreadable(Exception):
    """A stored value that cannot be decoded, or is not what its column must hold."""


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary data"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def shape(value: Any) -> str:
    """What a decoded JSON value that should have been an object (or null) is instead."""
    kind = ("array" if isinstance(value, list) else "string" if isinstance(value, str)
            else "boolean" if isinstance(value, bool) else "number")
    return f"holds a JSON {kind}, not an object"


def decode_value(kind: str, value: Any) -> Any:
    """A raw stored value as the quick pass would have read it; raises Unreadable if it cannot be."""
    if kind == TEXT:
        if value is None or type(value) is str:
            return value
        raise Unreadable(f"holds {_show(value)}, not text")
    if kind == INT_OR_NULL and value is None:
        return None
    if kind in (INT, INT_OR_NULL):
        if type(value) is int:
            return value
        raise Unreadable(f"holds {_show(value)}, not a whole number")
    if kind == JSON:
        if value is None:
            return None
        if type(value) in (int, float):
            # SQLite stores JSON text that is a number as that number (its JSON columns have
            # numeric affinity): what was written was a JSON number.
            raise Unreadable(shape(value))
        if type(value) is not str:
            raise Unreadable(f"holds {_show(value)}, not JSON")
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            raise Unreadable(f"holds {_show(value)}, which is not JSON") from None
        if decoded is not None and type(decoded) is not dict:
            raise Unreadable(shape(decoded))
        return decoded
    if kind == BOOL:
        if type(value) is bool:
            return value
        if type(value) is int and value in (0, 1):
            return bool(value)
        raise Unreadable(f"holds {_show(value)}, not true or false")
    if kind == TIME_OR_NULL:
        if value is None:
            return None
        if value == _OUTSIDE:
            raise Unreadable(_NO_TIME)
    if value is None:
        raise Unreadable(_NO_TIME)
    if type(value) is str:
        try:
            # Exactly as UTCDateTime reads SQLite's text; PostgreSQL's is formatted the same way.
            return dt.datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    raise Unreadable(f"holds {_show(value)}, not a time")


def sqlite_value(storage: str, raw: bytes | None) -> Any:
    """A value from its SQLite storage class and its bytes, without trusting either to be text."""
    if storage == "null" or raw is None:
        return None
    if storage == "integer":
        return int(raw)
    if storage == "real":
        return float(raw)
    if storage == "text":
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise Unreadable("holds text that is not valid UTF-8") from None
    return bytes(raw)


class RawReader:
    """Columns read past every decoder of the driver and SQLAlchemy, and decoded here one value
    at a time, so that a damaged value becomes a finding instead of ending the whole read."""

    def __init__(self, conn: sa.Connection, table: sa.Table, kinds: dict[str, str]) -> None:
        self.sqlite = conn.dialect.name == "sqlite"
        self.kinds = list(kinds.items())
        self.exprs: list[sa.ColumnElement[Any]] = []
        for name, kind in self.kinds:
            col = table.c[name]
            if self.sqlite:
                # The storage class and the stored bytes: SQLite keeps any value in any column.
                self.exprs += [sa.func.typeof(col), sa.cast(col, sa.LargeBinary)]
            elif kind == JSON:
                self.exprs.append(sa.cast(col, sa.Text))
            elif kind == TIME:
                # Python holds the years 1 to 9999 only: infinity and the rest come back as NULL.
                text = sa.func.to_char(sa.func.timezone("UTC", col), "YYYY-MM-DD HH24:MI:SS.US")
                self.exprs.append(sa.case((col.between(_FIRST_TIME, _LAST_TIME), text)))
            elif kind == TIME_OR_NULL:
                text = sa.func.to_char(sa.func.timezone("UTC", col), "YYYY-MM-DD HH24:MI:SS.US")
                self.exprs.append(sa.case((col.between(_FIRST_TIME, _LAST_TIME), text),
                                          (col.is_not(None), sa.literal(_OUTSIDE))))
            else:
                self.exprs.append(col)

    def decode(self, row: Sequence[Any], start: int = 0) -> tuple[dict[str, Any], str | None]:
        """The values from `row[start:]`, and what is wrong with the first damaged one (or None).
        A damaged value is left as it was read, or None if not even that was possible."""
        values: dict[str, Any] = {}
        damage = None
        width = 2 if self.sqlite else 1
        for i, (name, kind) in enumerate(self.kinds):
            at = start + i * width
            raw = None
            try:
                raw = sqlite_value(row[at], row[at + 1]) if self.sqlite else row[at]
                values[name] = decode_value(kind, raw)
            except Unreadable as exc:
                values[name] = raw
                if damage is None:
                    damage = f"{name} {exc}"
        return values, damage
